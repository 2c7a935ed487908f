//! Speech fixtures for SIP peers: what a test caller says (espeak-ng at 8 kHz, laid out on a
//! timeline of silences and utterances, written as a WAV for baresip's `aufile` source), and
//! what it heard (posted to the offline STT server of [`crate::stt`]).
//!
//! ```text
//! use switchboard_testkit::speech::{timeline, write_wav_8k, Part};
//! let script = timeline(&[
//!     Part::Silence(Duration::from_secs(3)), // the agent greets
//!     Part::Speech("I would like to book a table for two people tomorrow evening".into()),
//!     Part::Silence(Duration::from_secs(6)), // the agent answers
//! ]);
//! write_wav_8k(dir.join("caller.wav"), &script);
//! ```

use std::path::Path;
use std::time::Duration;
use switchboard_media::resample::resample;
use switchboard_media::tts::parse_wav;

/// The sample rate of every buffer here: G.711 telephone audio.
pub const RATE: u32 = 8000;

/// The espeak-ng voice and rate (words per minute) that Whisper tiny.en hears most reliably.
pub const VOICE: &str = "en-us";
pub const WPM: u32 = 150;

/// `text` spoken by espeak-ng (`-v en-us -s 150`), as 8 kHz mono samples. Panics if
/// espeak-ng is missing or fails (a speech test cannot run without it).
///
/// `switchboard_media::tts::synthesize` runs espeak-ng at its default rate (175 wpm) with no
/// way to set it, so espeak-ng is run here directly; its WAV parser and resampler are reused.
pub fn espeak_8k(text: &str) -> Vec<i16> {
    let out = std::process::Command::new("espeak-ng")
        .args(["--stdout", "-v", VOICE, "-s", &WPM.to_string(), "--", text])
        .output()
        .unwrap_or_else(|e| panic!("cannot run espeak-ng ({e}): apt-get install espeak-ng"));
    assert!(
        out.status.success() && !out.stdout.is_empty(),
        "espeak-ng failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let wav = parse_wav(&out.stdout).unwrap_or_else(|e| panic!("espeak-ng output: {e}"));
    resample(&wav.samples, wav.sample_rate, RATE)
}

/// A 16-bit PCM mono WAV at 8 kHz with `samples`.
pub fn wav_bytes_8k(samples: &[i16]) -> Vec<u8> {
    let data_len = u32::try_from(samples.len() * 2).expect("WAV under 4 GiB");
    let mut b = Vec::with_capacity(44 + samples.len() * 2);
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data_len).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes()); // PCM
    b.extend_from_slice(&1u16.to_le_bytes()); // mono
    b.extend_from_slice(&RATE.to_le_bytes());
    b.extend_from_slice(&(RATE * 2).to_le_bytes()); // byte rate
    b.extend_from_slice(&2u16.to_le_bytes()); // block align
    b.extend_from_slice(&16u16.to_le_bytes()); // bits per sample
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        b.extend_from_slice(&s.to_le_bytes());
    }
    b
}

/// Writes `samples` as a 16-bit PCM mono 8 kHz WAV (what baresip's `aufile` plays).
pub fn write_wav_8k(path: impl AsRef<Path>, samples: &[i16]) {
    let path = path.as_ref();
    std::fs::write(path, wav_bytes_8k(samples))
        .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

/// One piece of a caller's script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Digital silence of this length.
    Silence(Duration),
    /// An utterance, spoken by [`espeak_8k`].
    Speech(String),
}

impl Part {
    pub fn silence_ms(ms: u64) -> Part {
        Part::Silence(Duration::from_millis(ms))
    }
    pub fn speech(text: impl Into<String>) -> Part {
        Part::Speech(text.into())
    }
}

/// The samples of `d` of silence at 8 kHz.
pub fn silence(d: Duration) -> Vec<i16> {
    vec![0; (d.as_secs_f64() * f64::from(RATE)).round() as usize]
}

/// The parts one after the other, as 8 kHz samples.
pub fn timeline(parts: &[Part]) -> Vec<i16> {
    let mut out = Vec::new();
    for p in parts {
        match p {
            Part::Silence(d) => out.extend(silence(*d)),
            Part::Speech(text) => out.extend(espeak_8k(text)),
        }
    }
    out
}

/// One part of a form: (name, filename, content type, bytes).
type FormPart<'a> = (&'a str, Option<&'a str>, Option<&'a str>, &'a [u8]);

/// A `multipart/form-data` body.
fn multipart(boundary: &str, parts: &[FormPart<'_>]) -> Vec<u8> {
    let mut b = Vec::new();
    for (name, filename, ctype, data) in parts {
        b.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let mut disp = format!("Content-Disposition: form-data; name=\"{name}\"");
        if let Some(f) = filename {
            disp.push_str(&format!("; filename=\"{f}\""));
        }
        b.extend_from_slice(disp.as_bytes());
        b.extend_from_slice(b"\r\n");
        if let Some(t) = ctype {
            b.extend_from_slice(format!("Content-Type: {t}\r\n").as_bytes());
        }
        b.extend_from_slice(b"\r\n");
        b.extend_from_slice(data);
        b.extend_from_slice(b"\r\n");
    }
    b.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    b
}

/// What the STT server at `stt_base_url` (`http://127.0.0.1:PORT/v1`, see
/// [`crate::stt::SttServer`]) hears in these 8 kHz samples: the trimmed text (empty for
/// silence). Panics on any HTTP or server error.
pub async fn transcribe(stt_base_url: &str, samples: &[i16]) -> String {
    let boundary = format!("switchboard-testkit-{}", uuid::Uuid::new_v4().simple());
    let wav = wav_bytes_8k(samples);
    let body = multipart(
        &boundary,
        &[
            ("file", Some("audio.wav"), Some("audio/wav"), &wav),
            ("model", None, None, b"whisper-1"),
            ("response_format", None, None, b"json"),
            ("language", None, None, b"en"),
        ],
    );
    let url = format!(
        "{}/audio/transcriptions",
        stt_base_url.trim_end_matches('/')
    );
    let resp = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("HTTP client")
        .post(&url)
        .header(
            reqwest::header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    assert!(status.is_success(), "POST {url}: {status}: {text}");
    let v: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("POST {url}: not JSON ({e}): {text}"));
    v["text"]
        .as_str()
        .unwrap_or_else(|| panic!("POST {url}: no text in {v}"))
        .trim()
        .to_string()
}

/// Lower-case words of `s` with punctuation removed: for comparing transcripts.
pub fn words(s: &str) -> Vec<String> {
    s.split_whitespace()
        .map(|w| {
            w.chars()
                .filter(|c| c.is_alphanumeric() || *c == '\'')
                .collect::<String>()
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// The fraction (0..=1) of `expected`'s words that occur in `heard` (in any order): a
/// tolerant check of a transcript, e.g. `assert!(word_overlap(&heard, said) >= 0.7)`.
pub fn word_overlap(heard: &str, expected: &str) -> f64 {
    let exp = words(expected);
    if exp.is_empty() {
        return 1.0;
    }
    let mut got = words(heard);
    let mut hits = 0usize;
    for w in &exp {
        if let Some(i) = got.iter().position(|g| g == w) {
            got.swap_remove(i);
            hits += 1;
        }
    }
    hits as f64 / exp.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wav_round_trips_through_the_media_parser() {
        let samples: Vec<i16> = (0..800).map(|i| (i * 37 % 2000 - 1000) as i16).collect();
        let wav = parse_wav(&wav_bytes_8k(&samples)).expect("valid WAV");
        assert_eq!(wav.sample_rate, RATE);
        assert_eq!(wav.samples, samples);
    }

    #[test]
    fn timeline_lays_silence_and_speech_end_to_end() {
        let t = timeline(&[
            Part::Silence(Duration::from_millis(500)),
            Part::speech("hello there"),
            Part::silence_ms(250),
        ]);
        assert!(t[..4000].iter().all(|&s| s == 0), "leading silence");
        assert!(
            t[t.len() - 2000..].iter().all(|&s| s == 0),
            "trailing silence"
        );
        let speech = &t[4000..t.len() - 2000];
        let secs = speech.len() as f64 / f64::from(RATE);
        assert!((0.4..3.0).contains(&secs), "speech lasts {secs} s");
        let peak = speech.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
        assert!(peak > 1000, "speech is audible (peak {peak})");
    }

    #[test]
    fn overlap_ignores_case_punctuation_and_order() {
        assert_eq!(word_overlap("Hello, World!", "hello world"), 1.0);
        assert_eq!(word_overlap("world", "hello world"), 0.5);
        assert_eq!(word_overlap("", "a b c d"), 0.0);
    }
}
