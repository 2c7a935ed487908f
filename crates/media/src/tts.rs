//! Offline text-to-speech with `espeak-ng` run as a subprocess, returning 8 kHz mono samples
//! ready for G.711.
//!
//! The text is passed as a single argv element after `--` (no shell, and a text starting with
//! '-' is not taken for an option). espeak-ng writes a WAV stream to stdout whose RIFF/data
//! sizes are placeholders (it cannot seek a pipe), so the WAV is parsed by hand, trusting the
//! bytes actually received.

use crate::resample::resample;
use std::process::Output;
use thiserror::Error;

/// Output sample rate.
pub const TTS_RATE: u32 = 8000;

/// TTS errors.
#[derive(Debug, Error)]
pub enum TtsError {
    #[error("espeak-ng is not installed (apt-get install espeak-ng)")]
    NotInstalled,
    #[error("running espeak-ng: {0}")]
    Io(std::io::Error),
    #[error("espeak-ng failed: {0}")]
    Failed(String),
    #[error("bad WAV from espeak-ng: {0}")]
    BadWav(&'static str),
}

/// Decoded PCM WAV (16-bit only, channels averaged to mono).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wav {
    pub sample_rate: u32,
    pub samples: Vec<i16>,
}

/// Parse a 16-bit PCM WAV, tolerating the oversized chunk lengths of streamed WAVs.
pub fn parse_wav(bytes: &[u8]) -> Result<Wav, TtsError> {
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(TtsError::BadWav("not RIFF/WAVE"));
    }
    let mut at = 12;
    let mut fmt: Option<(u16, u16, u32, u16)> = None;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let size = u32::from_le_bytes([bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]])
            as usize;
        let body_start = at + 8;
        let body_end = body_start.saturating_add(size).min(bytes.len());
        let body = &bytes[body_start..body_end];
        match id {
            b"fmt " => {
                if body.len() < 16 {
                    return Err(TtsError::BadWav("short fmt chunk"));
                }
                let le16 = |i: usize| u16::from_le_bytes([body[i], body[i + 1]]);
                let rate = u32::from_le_bytes([body[4], body[5], body[6], body[7]]);
                fmt = Some((le16(0), le16(2), rate, le16(14)));
            }
            b"data" => {
                let (format, channels, rate, bits) =
                    fmt.ok_or(TtsError::BadWav("data before fmt"))?;
                if format != 1 || bits != 16 || channels == 0 || rate == 0 {
                    return Err(TtsError::BadWav("only 16-bit PCM is supported"));
                }
                let ch = usize::from(channels);
                let samples = body
                    .chunks_exact(2 * ch)
                    .map(|frame| {
                        let sum: i32 = frame
                            .chunks_exact(2)
                            .map(|s| i32::from(i16::from_le_bytes([s[0], s[1]])))
                            .sum();
                        (sum / ch as i32) as i16
                    })
                    .collect();
                return Ok(Wav {
                    sample_rate: rate,
                    samples,
                });
            }
            _ => {}
        }
        // Chunks are word aligned.
        at = body_start.saturating_add(size).saturating_add(size & 1);
    }
    Err(TtsError::BadWav("no data chunk"))
}

fn command(text: &str, voice: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new("espeak-ng");
    cmd.arg("--stdout").arg("-v").arg(voice).arg("--").arg(text);
    cmd
}

fn finish(output: std::io::Result<Output>) -> Result<Vec<i16>, TtsError> {
    let output = output.map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => TtsError::NotInstalled,
        _ => TtsError::Io(e),
    })?;
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
    // espeak-ng exits 0 for an unknown voice but prints an error and no audio.
    if !output.status.success() || (output.stdout.is_empty() && !stderr.is_empty()) {
        return Err(TtsError::Failed(if stderr.is_empty() {
            output.status.to_string()
        } else {
            stderr
        }));
    }
    let wav = parse_wav(&output.stdout)?;
    Ok(resample(&wav.samples, wav.sample_rate, TTS_RATE))
}

/// Synthesize `text` with espeak-ng voice `voice` (e.g. "en", "en-us", "de"); returns 8 kHz
/// mono samples. Blocking: use [`synthesize_async`] from async code.
pub fn synthesize(text: &str, voice: &str) -> Result<Vec<i16>, TtsError> {
    finish(command(text, voice).output())
}

/// Async variant of [`synthesize`] (tokio process; the resampling runs on the blocking pool).
pub async fn synthesize_async(text: &str, voice: &str) -> Result<Vec<i16>, TtsError> {
    let output = tokio::process::Command::from(command(text, voice))
        .output()
        .await;
    tokio::task::spawn_blocking(move || finish(output))
        .await
        .map_err(|e| TtsError::Failed(e.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::rms_windows;

    fn espeak_available() -> bool {
        std::process::Command::new("espeak-ng")
            .arg("--version")
            .output()
            .is_ok()
    }

    #[test]
    fn synthesizes_plausible_speech() {
        if !espeak_available() {
            // The TTS test is meaningful only with the binary; CI installs espeak-ng.
            assert!(matches!(
                synthesize("hi", "en"),
                Err(TtsError::NotInstalled)
            ));
            return;
        }
        let text = "Hello, thank you for calling Switchboard. How can I help you today?";
        let pcm = synthesize(text, "en").unwrap();
        let secs = pcm.len() as f64 / 8000.0;
        // ~12 words at espeak's default 175 wpm: about 3-5 s.
        assert!((2.0..8.0).contains(&secs), "duration {secs}s");
        let windows = rms_windows(&pcm, 160);
        let voiced = windows.iter().filter(|&&r| r > 500.0).count();
        let silent = windows.iter().filter(|&&r| r < 50.0).count();
        assert!(
            voiced as f64 > windows.len() as f64 * 0.4,
            "voiced {voiced}/{}",
            windows.len()
        );
        assert!(silent > 0, "speech has pauses");
        // A leading '-' must be spoken, not parsed as an option.
        let dash = synthesize("-v is not an option", "en").unwrap();
        assert!(dash.len() > 8000);
    }

    #[tokio::test]
    async fn async_and_errors() {
        if !espeak_available() {
            return;
        }
        let pcm = synthesize_async("one two three", "en").await.unwrap();
        assert!(pcm.len() > 4000);
        assert!(matches!(
            synthesize("hello", "nosuchvoice"),
            Err(TtsError::Failed(_))
        ));
    }

    #[test]
    fn wav_parser() {
        let mut w = Vec::new();
        w.extend_from_slice(b"RIFF\xff\xff\xff\x7fWAVEfmt ");
        w.extend_from_slice(&16u32.to_le_bytes());
        w.extend_from_slice(&[1, 0, 2, 0]);
        w.extend_from_slice(&22050u32.to_le_bytes());
        w.extend_from_slice(&(22050u32 * 4).to_le_bytes());
        w.extend_from_slice(&[4, 0, 16, 0]);
        w.extend_from_slice(b"data\xff\xff\xff\x7f");
        for s in [100i16, 300, -100, -300] {
            w.extend_from_slice(&s.to_le_bytes());
        }
        w.push(0); // a truncated trailing byte is ignored
        let wav = parse_wav(&w).unwrap();
        assert_eq!(
            wav,
            Wav {
                sample_rate: 22050,
                samples: vec![200, -200]
            }
        );
        assert!(parse_wav(b"RIFF").is_err());
        assert!(parse_wav(&w[..36]).is_err());
    }
}
