//! The offline speech loop the end-to-end voice tests rely on: espeak-ng speech, through
//! G.711 μ-law as on a phone line, is heard by the local STT server (scripts/stt_server.py,
//! faster-whisper tiny.en). Needs the test venv (scripts/test.sh makes it) and espeak-ng.

use std::time::Duration;
use switchboard_media::g711::{linear_to_ulaw, ulaw_to_linear};
use switchboard_testkit::speech::{espeak_8k, timeline, transcribe, word_overlap, Part};
use switchboard_testkit::stt::SttServer;

const SAID: &str = "I would like to book a table for two people tomorrow evening";

#[tokio::test]
async fn the_stt_server_hears_espeak_speech_clean_silent_and_through_ulaw() {
    let stt = SttServer::start().await;
    assert!(stt.base_url.starts_with("http://127.0.0.1:"));
    assert!(stt.base_url.ends_with("/v1"));

    let clean = espeak_8k(SAID);
    let heard = stt.transcribe(&clean).await;
    eprintln!("clean: {heard:?}");
    assert!(word_overlap(&heard, SAID) >= 0.7, "heard {heard:?}");

    let ulaw: Vec<i16> = clean
        .iter()
        .map(|&s| ulaw_to_linear(linear_to_ulaw(s)))
        .collect();
    let heard = transcribe(&stt.base_url, &ulaw).await;
    eprintln!("u-law: {heard:?}");
    assert!(word_overlap(&heard, SAID) >= 0.7, "heard {heard:?}");

    // A caller's script: silence while the agent greets, the utterance, silence.
    let script = timeline(&[
        Part::Silence(Duration::from_secs(3)),
        Part::speech(SAID),
        Part::Silence(Duration::from_secs(6)),
    ]);
    let heard = stt.transcribe(&script).await;
    eprintln!("timeline: {heard:?}");
    assert!(word_overlap(&heard, SAID) >= 0.7, "heard {heard:?}");

    // Silence is heard as nothing (no Whisper hallucination).
    let silence = timeline(&[Part::Silence(Duration::from_secs(2))]);
    assert_eq!(stt.transcribe(&silence).await, "");
}

#[tokio::test]
async fn the_stt_server_answers_in_the_openai_shapes() {
    let stt = SttServer::start().await;
    let wav = switchboard_testkit::speech::wav_bytes_8k(&espeak_8k("hello, how are you today"));
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let base = stt.base_url.trim_end_matches("/v1");
    let health: serde_json::Value = client
        .get(format!("{base}/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");

    // verbose_json with word timestamps, the body built by hand as any OpenAI client does.
    let boundary = "xXxBoundaryxXx";
    let mut body = Vec::new();
    for (name, value) in [
        ("model", "whisper-1"),
        ("response_format", "verbose_json"),
        ("timestamp_granularities[]", "word"),
        ("timestamp_granularities[]", "segment"),
    ] {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; \
             filename=\"a.wav\"\r\nContent-Type: audio/wav\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(&wav);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let resp = client
        .post(stt.transcriptions_url())
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["task"], "transcribe");
    assert_eq!(v["language"], "english");
    let duration = v["duration"].as_f64().unwrap();
    assert!((0.5..5.0).contains(&duration), "{v}");
    assert!(word_overlap(v["text"].as_str().unwrap(), "hello how are you today") >= 0.6);
    assert!(!v["segments"].as_array().unwrap().is_empty());
    let words = v["words"].as_array().unwrap();
    assert!(words.len() >= 3, "{v}");
    let mut last = 0.0;
    for w in words {
        let (start, end) = (w["start"].as_f64().unwrap(), w["end"].as_f64().unwrap());
        assert!(
            w["word"].is_string() && start >= last - 1e-6 && end >= start,
            "{v}"
        );
        last = start;
    }

    // A request without a file gets OpenAI's error body.
    let resp = client
        .post(stt.transcriptions_url())
        .header("content-type", format!("multipart/form-data; boundary={boundary}"))
        .body(format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n--{boundary}--\r\n"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let e: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(e["error"]["type"], "invalid_request_error");
}
