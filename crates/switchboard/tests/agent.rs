//! The voice agent end to end: a real SIP phone (baresip) that speaks recorded speech
//! (espeak-ng) and records what it hears, a real local STT (faster-whisper tiny.en behind the
//! OpenAI transcription API, `scripts/stt_server.py` in the test venv), the LLM as a scripted
//! fake speaking the real OpenAI SSE protocol over HTTP, espeak-ng TTS.
//!
//! Fixed loopback ports (see README): baresip blocks of 40 from 17200 (SIP base and base + 1,
//! ctrl_tcp base + 5, RTP base + 10..29); the server on port 0 (RTP 40000-49999).

use serde_json::{json, Value};
use std::time::Duration;
use switchboard_testkit::fake_llm::{FakeLlm, Reply};
use switchboard_testkit::speech::{self, Part};
use switchboard_testkit::stt::SttServer;
use tokio::sync::OnceCell;

#[path = "live/server.rs"]
mod live_server;
use live_server::Server;

#[path = "live/baresip.rs"]
mod baresip;
use baresip::Phone;

/// One STT server for the whole file (loading the model takes seconds; the tests run on
/// runtimes of their own, so it must outlive each of them: it drains its pipes on threads).
static STT: OnceCell<SttServer> = OnceCell::const_new();

async fn stt() -> &'static SttServer {
    STT.get_or_init(SttServer::start).await
}

/// A server whose agents converse through the given LLM and the local STT, speaking with
/// espeak-ng's en-us voice (heard reliably by tiny.en).
async fn server(llm: &FakeLlm, stt: &SttServer) -> Server {
    let (llm_url, stt_url) = (llm.base_url.clone(), stt.base_url.clone());
    Server::start_at(tempfile::tempdir().unwrap(), None, move |c| {
        c.agent.llm_url = Some(llm_url);
        c.agent.llm_api_key = Some("sk-test-never-shown".into());
        c.agent.llm_model = "fake-model".into();
        c.agent.stt_provider = Some("openai".into());
        c.agent.stt_url = Some(stt_url);
        c.agent.stt_model = Some("tiny.en".into());
        c.telephony.tts_voice = "en-us".into();
    })
    .await
}

/// An agent, a trunk that points at the phone, and our number bound to both.
async fn setup(srv: &Server, phone_port: u16, agent: Value) -> String {
    let agent = srv.create("/v1/agents", agent).await;
    let trunk = srv
        .create(
            "/v1/sip-trunks",
            json!({"name": "phone", "host": "127.0.0.1", "port": phone_port, "transport": "udp"}),
        )
        .await;
    srv.create(
        "/v1/phone-numbers",
        json!({"phone_number": "+15550001000", "agent_id": agent, "trunk_id": trunk}),
    )
    .await;
    agent
}

fn mic(dir: &std::path::Path, parts: &[Part]) -> std::path::PathBuf {
    let p = dir.join("mic.wav");
    speech::write_wav_8k(&p, &speech::timeline(parts));
    p
}

async fn full_call(srv: &Server, id: &str) -> Value {
    let (s, c) = srv
        .get(&format!(
            "/v1/call/{id}?include=transcript,metrics,diagnostics"
        ))
        .await;
    assert_eq!(s, 200, "{c}");
    c
}

/// Bounded wait for a future the test cannot go on without.
async fn within<T>(secs: u64, what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .unwrap_or_else(|_| panic!("{what} did not happen within {secs} s"))
}

const UTTERANCE: &str = "I would like to book a table for two people tomorrow evening.";
const REPLY: &str = "Certainly. I have booked a table for two people tomorrow evening at seven.";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_converses_on_a_real_call() {
    let stt = stt().await;
    let llm = FakeLlm::start().await;
    llm.push_reply(Reply::Text(REPLY.into()));
    let srv = server(&llm, stt).await;
    setup(
        &srv,
        17200,
        json!({
            "name": "Booking",
            "system_prompt": "You are the booking assistant of {{restaurant}}.",
            "initial_message": "Hello, this is Ana from {{restaurant}}.",
            "settings": {"silence_timeout_seconds": 3, "max_reprompts": 1, "response_timeout_seconds": 6},
        }),
    )
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let mic = mic(
        tmp.path(),
        &[
            Part::silence_ms(4000),
            Part::speech(UTTERANCE),
            Part::silence_ms(40_000),
        ],
    );
    let mut phone = Phone::start("+14155550123", 17200, &mic).await;
    let (s, call) = srv
        .post(
            "/v1/call",
            json!({"from": "+15550001000", "to": "+14155550123",
                   "context": {"restaurant": "Luigi's", "party": "Smith"}}),
        )
        .await;
    assert_eq!(s, 201, "{call}");
    let id = call["id"].as_str().unwrap().to_string();
    within(20, "answer", phone.wait_event("CALL_ESTABLISHED", 20)).await;

    // The caller's words reached the LLM, after the system message with the call's context.
    let reqs = within(40, "the LLM request", llm.wait_requests(1)).await;
    let msgs = reqs[0]["messages"].as_array().unwrap();
    assert_eq!(reqs[0]["model"], "fake-model");
    assert_eq!(reqs[0]["stream"], true);
    assert_eq!(msgs[0]["role"], "system");
    let system = msgs[0]["content"].as_str().unwrap();
    assert!(system.contains("booking assistant of Luigi's"), "{system}");
    assert!(
        system.contains(r#""party":"Smith""#),
        "context kept as JSON: {system}"
    );
    assert_eq!(msgs[1]["role"], "assistant");
    assert_eq!(msgs[1]["content"], "Hello, this is Ana from Luigi's.");
    assert_eq!(msgs[2]["role"], "user");
    let said = msgs[2]["content"].as_str().unwrap();
    let overlap = speech::word_overlap(said, UTTERANCE);
    assert!(overlap >= 0.6, "the LLM got {said:?} ({overlap})");

    // Nobody speaks after the reply: one re-prompt, then goodbye and hang-up.
    within(
        60,
        "the agent's hang-up",
        phone.wait_event("CALL_CLOSED", 60),
    )
    .await;
    let done = srv.wait_final(&id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["end_reason"], "inactivity", "{done}");

    let c = full_call(&srv, &id).await;
    let turns = c["transcript_formatted"]
        .as_array()
        .expect("transcript_formatted");
    let who: Vec<&str> = turns
        .iter()
        .map(|t| t["speaker"].as_str().unwrap())
        .collect();
    assert_eq!(
        who,
        ["agent", "user", "agent", "agent", "agent"],
        "{turns:?}"
    );
    assert_eq!(turns[0]["text"], "Hello, this is Ana from Luigi's.");
    assert_eq!(turns[2]["text"], REPLY);
    assert_eq!(turns[3]["text"], "Are you still there?");
    let mut last = 0;
    for t in turns {
        let (a, b) = (
            t["start_ms"].as_u64().unwrap(),
            t["end_ms"].as_u64().unwrap(),
        );
        assert!(a >= last && b > a, "turn times run forward: {turns:?}");
        assert_eq!(t["interrupted"], false);
        last = b;
    }
    // The caller spoke from about 4 s into the call (the phone's script), for about 3.5 s.
    let (ua, ub) = (
        turns[1]["start_ms"].as_u64().unwrap(),
        turns[1]["end_ms"].as_u64().unwrap(),
    );
    assert!(
        (3500..5000).contains(&ua) && ub - ua > 2000,
        "user turn {ua}-{ub}"
    );
    let text = c["transcript"].as_str().unwrap();
    assert!(
        text.starts_with("Agent: Hello, this is Ana from Luigi's.\nUser: "),
        "{text}"
    );
    assert!(text.contains(&format!("\nAgent: {REPLY}\n")), "{text}");

    // Latency of the one answered turn, with its parts.
    let lat = &c["latency_metrics"];
    let v2v = lat["voice_to_voice_ms"]["values"].as_array().unwrap();
    assert_eq!(v2v.len(), 1, "{lat}");
    let turn = &lat["turns"][0];
    for k in [
        "end_of_turn_ms",
        "stt_ms",
        "llm_first_token_ms",
        "tts_first_audio_ms",
        "overhead_ms",
    ] {
        assert!(turn[k].as_f64().is_some(), "{k} in {turn}");
    }
    let v = v2v[0].as_f64().unwrap();
    assert!(
        v > turn["end_of_turn_ms"].as_f64().unwrap() && v < 10_000.0,
        "{lat}"
    );
    assert!(c["turn_events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["type"] == "reprompt"));
    assert_eq!(c["interruptions"], json!([]));

    // The phone heard the greeting and the reply.
    let heard = phone.heard();
    let heard_text = stt.transcribe(&heard).await;
    assert!(
        speech::word_overlap(&heard_text, "Hello, this is Ana from Luigi's.") >= 0.5,
        "{heard_text}"
    );
    assert!(
        speech::word_overlap(&heard_text, REPLY) >= 0.5,
        "the phone heard {heard_text:?}"
    );

    // The key never shows: not in the call.
    assert!(!c.to_string().contains("sk-test-never-shown"));
    // DELETE erases the transcript with the call.
    let (s, _) = srv.get(&format!("/v1/call/{id}")).await;
    assert_eq!(s, 200);
    assert_eq!(
        srv.delete_as(&format!("/v1/call/{id}"), &srv.key).await,
        200
    );
    let (s, _) = srv.get(&format!("/v1/call/{id}?include=transcript")).await;
    assert_eq!(s, 404);
}

const PITCH: &str = "Thank you for calling Luigi's restaurant. We are open every day from noon until eleven in the evening, and we serve fresh pasta, pizza from our wood oven, and wines from Italy and California.";
const QUESTION: &str = "Excuse me. Are you open on Sunday evening?";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn barge_in_stops_the_agent_and_a_failing_llm_gets_the_fallback() {
    let stt = stt().await;
    let llm = FakeLlm::start().await;
    llm.push_reply(Reply::Status(500, "The server had an error".into()));
    let srv = server(&llm, stt).await;
    setup(
        &srv,
        17240,
        json!({
            "name": "Pitch",
            "initial_message": PITCH,
            "settings": {"silence_timeout_seconds": 3, "max_reprompts": 0},
        }),
    )
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let mic = mic(
        tmp.path(),
        &[
            Part::silence_ms(3000),
            Part::speech(QUESTION),
            Part::silence_ms(40_000),
        ],
    );
    let mut phone = Phone::start("+14155550124", 17240, &mic).await;
    let id = srv.dispatch("+15550001000", "+14155550124").await;
    within(20, "answer", phone.wait_event("CALL_ESTABLISHED", 20)).await;
    let reqs = within(40, "the LLM request", llm.wait_requests(1)).await;
    let said = reqs[0]["messages"].as_array().unwrap().last().unwrap()["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        speech::word_overlap(&said, QUESTION) >= 0.5,
        "the LLM got {said:?}"
    );
    within(
        60,
        "the agent's hang-up",
        phone.wait_event("CALL_CLOSED", 60),
    )
    .await;
    let done = srv.wait_final(&id).await;
    assert_eq!(done["end_reason"], "inactivity", "{done}");

    let c = full_call(&srv, &id).await;
    let turns = c["transcript_formatted"].as_array().unwrap();
    // The pitch was cut: it keeps only the words played, far fewer than written.
    assert_eq!(turns[0]["speaker"], "agent");
    assert_eq!(turns[0]["interrupted"], true, "{turns:?}");
    let played = turns[0]["text"].as_str().unwrap();
    assert!(
        PITCH.starts_with(played) && played.len() < PITCH.len() / 2,
        "{played:?}"
    );
    assert_eq!(turns[1]["speaker"], "user");
    // The LLM failed: the fallback was spoken, and the error is on the call.
    assert_eq!(
        turns[2]["text"],
        "Sorry, I'm having trouble right now. Could you say that again?"
    );
    let errors: Vec<&Value> = c["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "agent-error")
        .collect();
    assert_eq!(errors.len(), 1, "{}", c["events"]);
    assert_eq!(errors[0]["stage"], "llm");
    assert!(errors[0]["message"].as_str().unwrap().contains("500"));
    let ints = c["interruptions"].as_array().unwrap();
    assert_eq!(ints.len(), 1, "{ints:?}");
    assert_eq!(ints[0]["false_interruption"], false);
    let kept = ints[0]["agent_kept_talking_ms"].as_u64().unwrap();
    assert!(
        kept <= 200,
        "agent kept talking {kept} ms after the caller began"
    );

    // What the phone heard: the pitch until about 3 s, then nothing, then the fallback.
    let heard = phone.heard();
    let at = |s: f64| (s * 8000.0) as usize;
    let before = switchboard_media::audio::rms(&heard[at(1.0)..at(2.8)]);
    let onset = ints[0]["at_ms"].as_u64().unwrap() as f64 / 1000.0;
    let after = switchboard_media::audio::rms(&heard[at(onset + 0.4)..at(onset + 1.4)]);
    assert!(before > 500.0, "the pitch was heard (rms {before})");
    assert!(
        after < before / 20.0,
        "the agent stopped: rms {after} after vs {before} before"
    );
    let heard_text = stt.transcribe(&heard[at(onset + 0.4)..]).await;
    assert!(
        speech::word_overlap(
            &heard_text,
            "Sorry, I'm having trouble right now. Could you say that again?"
        ) >= 0.5,
        "the phone heard {heard_text:?}"
    );
}
