//! `switchboard bench-agent`: the voice agent under load, and end of turn on mid-sentence
//! pauses. Prints figures, asserts nothing.
//!
//! 1. **Concurrent conversing calls** (`--concurrency 10,50,100`): the real server runs in
//!    process (as in `bench-calls`: SQLite on a temporary data dir, HTTP on port 0, SIP on a
//!    fixed loopback port, every call recorded), its LLM, STT and TTS pointed at fakes that speak
//!    the providers' real wire protocols over loopback HTTP after fixed delays: OpenAI chat
//!    completions (SSE), OpenAI transcriptions (multipart in, JSON out) and OpenAI speech (raw
//!    24 kHz PCM streamed in chunks). The trunk points at a sipp UAS that answers and loops a
//!    recorded caller (espeak-ng, 8 kHz μ-law, `rtp_stream`): a sentence and a pause long enough
//!    for the answer, another sentence, and a third one spoken over the agent's answer to it (a
//!    barge-in), then again. The calls are dispatched spread over one loop of that script (so
//!    their turns fall at all phases, not together) and each is hung up through the API
//!    `--seconds` after its dispatch (later if the ramp left no 10 s window with every call
//!    up); each call's `latency_metrics`, `interruptions`, `turn_events` and `events` are then
//!    read back with `GET /v1/call/{id}?include=metrics,diagnostics`. Barge-ins are also timed
//!    against the script (the call's clock starts with its media, when sipp starts the loop).
//!    CPU and RSS are measured as in bench-calls (a steady-state window, minus an idle
//!    baseline), each level in a child process of the same binary (unless `--in-process`); the
//!    fakes run in the parent, so their cost is not counted as ours.
//! 2. **End of turn on pauses** (`--pauses` alone, or after the levels unless
//!    `--skip-pauses`): no sockets. The conversation core with the real Silero VAD and Smart
//!    Turn model, wired as the per-call driver wires them (the model's answer arrives after its
//!    measured inference time), is fed sentences with a pause of 300-600 ms at a word boundary
//!    (the halves synthesised apart, or one sentence with an SSML break), and whole sentences;
//!    it reports how often the pause ended the turn and the end-of-turn delay on the sentence
//!    ends, and what the model says straight on the same audio.

use crate::bench_calls::{
    cpu_time, loadavg, mulaw, parse_range, percentile, raise_nofile, rss_kib, sipp_stat,
    spawn_sipp_uas, status_field, threads_cpu_time,
};
use crate::config::ServeConfig;
use crate::Application;
use anyhow::{bail, ensure, Context};
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use clap::Args;
use futures::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchboard_agent::conversation::{Action, Config, Conversation, Event};
use switchboard_agent::turn::TurnModel;
use switchboard_agent::vad::{Vad, VadModel};
use switchboard_domain::*;
use switchboard_store::Store;
use tokio::task::JoinHandle;

#[derive(Debug, Clone, Args)]
pub struct BenchAgentArgs {
    /// Concurrent conversing calls per level (comma-separated); empty: no load levels.
    #[arg(long, value_delimiter = ',', default_value = "100")]
    pub concurrency: Vec<usize>,
    /// Length of each call in seconds (then hung up through the API).
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// Fake STT: delay from the upload to the transcript.
    #[arg(long, default_value_t = 150)]
    pub stt_delay_ms: u64,
    /// Fake LLM: delay from the request to the first token.
    #[arg(long, default_value_t = 200)]
    pub llm_delay_ms: u64,
    /// Fake LLM: delay between streamed chunks (3 words each).
    #[arg(long, default_value_t = 15)]
    pub llm_chunk_ms: u64,
    /// Fake TTS: delay from the request to the first audio.
    #[arg(long, default_value_t = 100)]
    pub tts_delay_ms: u64,
    /// Fake TTS: audio per request (each reply sentence), in milliseconds.
    #[arg(long, default_value_t = 1800)]
    pub tts_audio_ms: u64,
    /// POST /v1/call requests in flight while dispatching a level.
    #[arg(long, default_value_t = 8)]
    pub dispatch_parallel: usize,
    /// Spread the calls' starts over this many milliseconds (default: one loop of the caller's
    /// script, at most a third of --seconds), so their turns do not all fall together.
    #[arg(long)]
    pub stagger_ms: Option<u64>,
    /// Server SIP port (UDP and TCP on 127.0.0.1); in-process levels use this + level index.
    #[arg(long, default_value_t = 17500)]
    pub sip_port: u16,
    /// Port of the sipp UAS (its control port is this + 50).
    #[arg(long, default_value_t = 17510)]
    pub sipp_port: u16,
    /// sipp's media port (-mp; it also uses this + 2).
    #[arg(long, default_value_t = 17600)]
    pub sipp_media_port: u16,
    /// Server RTP port range.
    #[arg(long, default_value = "50000-53999", value_parser = parse_range)]
    pub rtp_ports: (u16, u16),
    /// Idle time measured before a level (the CPU baseline), in milliseconds.
    #[arg(long, default_value_t = 3000)]
    pub idle_ms: u64,
    /// Wait after the last call is answered before the window opens, in milliseconds.
    #[arg(long, default_value_t = 3000)]
    pub settle_ms: u64,
    /// Run every level in this process instead of one child process per level (the fakes'
    /// CPU then counts as ours).
    #[arg(long)]
    pub in_process: bool,
    /// Only measure end of turn on mid-sentence pauses (no calls).
    #[arg(long)]
    pub pauses: bool,
    /// Do not run the pause measurement after the levels.
    #[arg(long)]
    pub skip_pauses: bool,
    /// Pauses inserted in the middle of the sentences, in milliseconds.
    #[arg(long, value_delimiter = ',', default_value = "300,400,500,600")]
    pub pause_ms: Vec<u64>,
    /// espeak-ng speaking rates (words per minute) of the pause utterances.
    #[arg(long, value_delimiter = ',', default_value = "150,130")]
    pub pause_wpm: Vec<u32>,
    /// How many of the built-in sentences the pause measurement uses (at most 8).
    #[arg(long, default_value_t = 8)]
    pub pause_sentences: usize,
    /// Speech (ms) the conversation needs since the model's last "incomplete" before asking
    /// it again (its `predict_min_speech`; 0 asks at every pause, as before it existed).
    #[arg(long, default_value_t = 160)]
    pub predict_min_speech_ms: u64,
    /// The agent's `settings.turn_detection`: `smart_turn` (the end-of-turn model decides at
    /// each pause) or `silence` (a fixed pause ends the turn; the model is never run).
    #[arg(long, default_value = "smart_turn", value_parser = switchboard_domain::entities::TURN_DETECTION_MODES)]
    pub turn_detection: String,
    /// Log every request the fake providers get (time, audio length) to stderr.
    #[arg(long, hide = true)]
    pub trace_fakes: bool,
    /// Print each level's result as one JSON line (used by the parent process).
    #[arg(long, hide = true)]
    pub json: bool,
    /// The parent's fake providers (child mode): LLM, STT and TTS base URLs.
    #[arg(long, hide = true, num_args = 3)]
    pub fake_urls: Option<Vec<String>>,
    /// Data directory; default: a new temporary directory (removed at the end).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

// ---------------------------------------------------------------------------------------------
// Figures

/// A distribution (nearest-rank percentiles); all zero when empty.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Dist {
    pub n: usize,
    pub mean: f64,
    pub min: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

impl Dist {
    pub fn of(mut v: Vec<f64>) -> Dist {
        v.retain(|x| x.is_finite());
        if v.is_empty() {
            return Dist::default();
        }
        v.sort_by(f64::total_cmp);
        Dist {
            n: v.len(),
            mean: v.iter().sum::<f64>() / v.len() as f64,
            min: v[0],
            p50: percentile(&v, 0.50),
            p90: percentile(&v, 0.90),
            p95: percentile(&v, 0.95),
            p99: percentile(&v, 0.99),
            max: v[v.len() - 1],
        }
    }

    /// A value of this distribution for a table ("-" when empty).
    fn show(&self, v: f64) -> String {
        if self.n == 0 {
            "-".into()
        } else {
            format!("{v:.1}")
        }
    }
}

/// What one load level measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LevelResult {
    pub calls: usize,
    pub seconds: u64,
    /// Why the level could not be measured.
    pub error: Option<String>,
    /// The longest call (longer than `seconds` when the ramp left no window otherwise).
    pub longest_call_s: f64,
    /// Seconds from the first POST to the last call in progress.
    pub ramp_s: f64,
    pub window_s: f64,
    /// Cores used by the process while idle (before the level).
    pub idle_cores: f64,
    /// Cores used during the window.
    pub load_cores: f64,
    /// (load - idle) / calls, in % of one core.
    pub cpu_pct_per_call: f64,
    /// Of `cpu_pct_per_call`, the end-of-turn model's threads (Smart Turn predictions, their
    /// features and resampling): the rest of a call's cost is the difference.
    pub model_cpu_pct_per_call: f64,
    pub rss_before_mb: f64,
    pub rss_window_mb: f64,
    pub mib_per_call: f64,
    /// The process's threads at the end of the window (the blocking pool grows with the
    /// end-of-turn model runs in flight).
    pub threads: u64,
    /// Calls whose final status is `completed`.
    pub completed: usize,
    /// Calls still not in a final status after the hang-ups.
    pub not_final: usize,
    pub end_reasons: BTreeMap<String, usize>,
    /// Caller sentences a call should get answered (those that end 2.5 s before the hang-up).
    pub sentences_per_call: usize,
    /// Barge-ins the script makes within a call's length.
    pub barge_ins_per_call: usize,
    /// Answered turns (replies that started playing) per call.
    pub turns_per_call: Dist,
    pub overhead_ms: Dist,
    pub voice_to_voice_ms: Dist,
    pub end_of_turn_ms: Dist,
    pub stt_ms: Dist,
    pub llm_first_token_ms: Dist,
    pub llm_first_sentence_ms: Dist,
    pub tts_first_audio_ms: Dist,
    /// Real interruptions, as the call records them: from the onset the VAD found (back-dated
    /// to the first voiced frame) to the last agent frame sent after the pause was asked.
    pub kept_talking_ms: Dist,
    /// From the scripted onset of the barge-in sentence to the agent's pause (jitter buffer,
    /// VAD, two voiced frames), ≈ (the clocks are aligned at media start).
    pub barge_detect_ms: Dist,
    /// From the scripted onset of the barge-in sentence to the last agent frame sent: what the
    /// caller hears of the agent after starting to speak (plus the network).
    pub barge_heard_ms: Dist,
    /// From a scripted sentence onset (not over the agent) to `user_speech_start`.
    pub speech_detect_ms: Dist,
    pub false_interruptions: usize,
    /// `agent-error` events in the calls' `events`, by stage.
    pub agent_errors: BTreeMap<String, usize>,
    pub error_sample: Option<String>,
    /// Silero VAD runs per call (from `quality_metrics`).
    pub vad_runs_per_call: f64,
    /// End-of-turn model answers per call (its `turn_prediction` events; predictions skipped
    /// as stale are not run and not counted).
    #[serde(default)]
    pub model_answers_per_call: f64,
    /// Requests the fake providers received during the level.
    pub llm_requests: u64,
    pub stt_requests: u64,
    pub tts_requests: u64,
    pub sipp_exit: i32,
    pub sipp_successful: Option<u64>,
    pub sipp_failed: Option<u64>,
    pub load_before: String,
    pub load_after: String,
}

/// End of turn on pauses, for one way of making the pause and one pause length.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PauseRow {
    /// How the pause was made (see [`PauseVariant`]).
    pub variant: String,
    pub pause_ms: u64,
    pub utterances: usize,
    /// Turns ended during the inserted pause.
    pub ended_in_pause: usize,
    /// Turns ended elsewhere before the sentence's end (a pause of the voice itself).
    pub ended_elsewhere: usize,
    /// The end-of-turn model's answers that arrived within the pause ("complete").
    pub complete_at_pause: Dist,
}

/// What the model makes of the first half of the sentences, whatever the pause.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PauseVariant {
    /// `apart`: the two halves synthesised separately (espeak-ng reads the first half as a
    /// finished sentence, with a final fall); `break`: the sentence synthesised whole with an
    /// SSML `<break>` at the same word (the first half keeps its continuing intonation), the
    /// break then replaced by the pause.
    pub name: String,
    /// Smart Turn on the first half + 200 ms of silence (what it is asked at the pause).
    pub first_half_complete: Dist,
    /// How many of those say "complete" (≥ 0.5): the share a pause would end with an instant
    /// model.
    pub first_half_over: usize,
}

/// The pause measurement.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PauseResult {
    pub rows: Vec<PauseRow>,
    pub variants: Vec<PauseVariant>,
    /// Whole sentences (no pause inserted) that ended early.
    pub whole_sentences: usize,
    pub whole_ended_early: usize,
    /// Sentence ends (every utterance's final end), from the last voiced frame.
    pub eot_ms: Dist,
    /// The ends the model decided (under the 1.2 s limit).
    pub eot_model_ms: Dist,
    /// The same ends as `eot_ms`, from the last sample of speech in the audio.
    pub eot_from_audio_ms: Dist,
    /// Ends decided by the model (under the 1.2 s limit), by the limit, and never.
    pub ends_by_model: usize,
    pub ends_by_limit: usize,
    pub not_ended: usize,
    /// The model's first answer after the sentence ends.
    pub complete_at_end: Dist,
    /// Turn model inference time (this process, one at a time).
    pub predict_ms: Dist,
    /// The model straight on each whole sentence + 200 ms of silence: at 8 kHz as on a call
    /// (upsampled to 16 kHz by the model's front end), and at 16 kHz from espeak-ng directly
    /// (full band): does the telephone band change its answer?
    pub complete_8k: Dist,
    pub complete_16k: Dist,
    pub complete_8k_over: usize,
    pub complete_16k_over: usize,
    pub wpm: Vec<u32>,
    pub sentences: usize,
}

/// Everything one run measured.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub command: String,
    pub levels: Vec<LevelResult>,
    pub pauses: Option<PauseResult>,
}

// ---------------------------------------------------------------------------------------------
// Audio: espeak-ng, WAV, resampling

/// `text` spoken by espeak-ng (`-v en-us -s wpm`): samples and their rate.
fn espeak(text: &str, wpm: u32) -> anyhow::Result<(Vec<i16>, u32)> {
    espeak_with(text, wpm, false)
}

/// Like [`espeak`]; `ssml`: the text is SSML (`-m`).
fn espeak_with(text: &str, wpm: u32, ssml: bool) -> anyhow::Result<(Vec<i16>, u32)> {
    let mut cmd = std::process::Command::new("espeak-ng");
    cmd.args(["--stdout", "-v", "en-us", "-s", &wpm.to_string()]);
    if ssml {
        cmd.arg("-m");
    }
    let out = cmd
        .args(["--", text])
        .output()
        .context("espeak-ng is required: apt-get install espeak-ng")?;
    ensure!(
        out.status.success() && !out.stdout.is_empty(),
        "espeak-ng failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    parse_wav(&out.stdout)
}

/// 16-bit mono PCM WAV → (samples, rate). A data chunk longer than the file (espeak-ng's
/// `--stdout` cannot seek back to write its length) runs to the end.
fn parse_wav(b: &[u8]) -> anyhow::Result<(Vec<i16>, u32)> {
    ensure!(
        b.len() >= 12 && &b[0..4] == b"RIFF" && &b[8..12] == b"WAVE",
        "not a WAV file"
    );
    let mut i = 12;
    let mut rate = None;
    while i + 8 <= b.len() {
        let id = &b[i..i + 4];
        let len = u32::from_le_bytes([b[i + 4], b[i + 5], b[i + 6], b[i + 7]]) as usize;
        let body = i + 8;
        if id == b"fmt " {
            ensure!(body + 16 <= b.len(), "short fmt chunk");
            let u16at = |o: usize| u16::from_le_bytes([b[body + o], b[body + o + 1]]);
            ensure!(
                u16at(0) == 1 && u16at(2) == 1 && u16at(14) == 16,
                "not 16-bit mono PCM"
            );
            rate = Some(u32::from_le_bytes([
                b[body + 4],
                b[body + 5],
                b[body + 6],
                b[body + 7],
            ]));
        } else if id == b"data" {
            let end = body.saturating_add(len).min(b.len());
            let samples = b[body..end]
                .chunks_exact(2)
                .map(|p| i16::from_le_bytes([p[0], p[1]]))
                .collect();
            return Ok((samples, rate.context("data before fmt")?));
        }
        i = body.saturating_add(len).saturating_add(len & 1);
    }
    bail!("WAV without data")
}

/// Band-limited resampling (windowed sinc, Hann window, 16 zero crossings each side). For
/// fixtures made once at start; not a streaming resampler.
fn resample(x: &[i16], from: u32, to: u32) -> Vec<i16> {
    if from == to || x.is_empty() {
        return x.to_vec();
    }
    let ratio = f64::from(to) / f64::from(from);
    // Cut-off in cycles per input sample, a little under the lower Nyquist.
    let fc = 0.5 * ratio.min(1.0) * 0.92;
    let half = (16.0 / (2.0 * fc)).ceil() as i64;
    let n_out = (x.len() as f64 * ratio).round() as usize;
    let pi = std::f64::consts::PI;
    (0..n_out)
        .map(|j| {
            let t = j as f64 / ratio;
            let c = t.floor() as i64;
            let mut acc = 0.0;
            for k in (c - half + 1).max(0)..=(c + half).min(x.len() as i64 - 1) {
                let d = t - k as f64;
                let s = if d.abs() < 1e-9 {
                    2.0 * fc
                } else {
                    (2.0 * pi * fc * d).sin() / (pi * d)
                };
                let w = 0.5 + 0.5 * (pi * d / half as f64).cos();
                acc += f64::from(x[k as usize]) * s * w;
            }
            acc.round().clamp(-32768.0, 32767.0) as i16
        })
        .collect()
}

/// Drops the near-silence espeak-ng leaves before and after the speech.
fn trim(x: &[i16]) -> Vec<i16> {
    let loud = |s: &i16| s.unsigned_abs() > 200;
    let Some(a) = x.iter().position(loud) else {
        return Vec::new();
    };
    let b = x.iter().rposition(loud).unwrap_or(a);
    x[a..=b].to_vec()
}

/// `text` at 8 kHz, trimmed.
fn speech_8k(text: &str, wpm: u32) -> anyhow::Result<Vec<i16>> {
    let (s, rate) = espeak(text, wpm)?;
    Ok(trim(&resample(&s, rate, 8000)))
}

fn silence_8k(ms: u64) -> Vec<i16> {
    vec![0; (ms * 8) as usize]
}

// ---------------------------------------------------------------------------------------------
// The caller

/// One piece of the caller's loop.
#[derive(Debug, Clone, Copy)]
enum Part {
    Silence(u64),
    Say(&'static str),
    /// Spoken over the agent's answer to the previous sentence.
    BargeIn(&'static str),
}

/// What the sipp UAS plays, looped: the greeting plays during the first silence; each pause
/// after a sentence leaves room for the answer (end of turn ≤ 1.2 s + providers ~0.5 s + two
/// 1.8 s sentences); the barge-in comes 2.5 s after a sentence, while the answer plays.
///
/// The sentences are ones Smart Turn calls complete when espeak-ng says them (0.98, 0.89 and
/// 0.92 at 150 wpm): it calls most of espeak-ng's statements incomplete (see the pause
/// measurement), and then every turn would end at the 1.2 s limit and the end of turn would
/// measure the voice, not the server.
const CALLER: &[Part] = &[
    Part::Silence(3000),
    Part::Say("I need to move my reservation from Friday to Saturday at eight."),
    Part::Silence(6000),
    Part::Say("Could you tell me if you are open tomorrow?"),
    Part::Silence(2500),
    Part::BargeIn("Is there parking near the restaurant?"),
    Part::Silence(6000),
];

/// A sentence of the caller's loop: start and end (ms in the loop), spoken over the agent.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Sentence {
    start: u64,
    end: u64,
    barge_in: bool,
}

/// The caller's loop as 8 kHz samples, and its sentences.
fn caller_audio() -> anyhow::Result<(Vec<i16>, Vec<Sentence>)> {
    let mut out = Vec::new();
    let mut starts = Vec::new();
    for p in CALLER {
        match *p {
            Part::Silence(ms) => out.extend(silence_8k(ms)),
            Part::Say(t) | Part::BargeIn(t) => {
                let start = out.len() as u64 / 8;
                out.extend(speech_8k(t, 150)?);
                starts.push(Sentence {
                    start,
                    end: out.len() as u64 / 8,
                    barge_in: matches!(p, Part::BargeIn(_)),
                });
            }
        }
    }
    // Whole 20 ms packets.
    out.resize(out.len().div_ceil(160) * 160, 0);
    Ok((out, starts))
}

/// Sentences a call of `seconds` playing the loop should get answered (ended 2.5 s before
/// the hang-up), and how many of them are barge-ins.
fn script_counts(loop_ms: u64, sentences: &[Sentence], seconds: u64) -> (usize, usize) {
    let (mut n, mut barge) = (0, 0);
    let mut base = 0;
    while base < seconds * 1000 {
        for s in sentences {
            if base + s.end + 2500 <= seconds * 1000 {
                n += 1;
                barge += usize::from(s.barge_in);
            }
        }
        base += loop_ms.max(1);
    }
    (n, barge)
}

const AGENT_SCENARIO: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<!-- switchboard bench-agent: answers, loops a recorded caller until the BYE. -->
<scenario name="bench_agent_uas">
  <recv request="INVITE" crlf="true"/>
  <send retrans="500">
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=sipp 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
    ]]>
  </send>
  <recv request="ACK" crlf="true"/>
  <nop>
    <action>
      <exec rtp_stream="CALLER_FILE,-1,0"/>
    </action>
  </nop>
  <recv request="BYE"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
</scenario>
"#;

// ---------------------------------------------------------------------------------------------
// Fake providers

/// What the fake providers say and when.
#[derive(Debug, Clone)]
struct FakeSpec {
    stt_delay: Duration,
    llm_delay: Duration,
    llm_chunk: Duration,
    tts_delay: Duration,
    /// Two sentences: two TTS requests per reply.
    reply: String,
    transcript: String,
    /// Raw 24 kHz 16-bit LE PCM returned for every speech request.
    tts_pcm: Bytes,
    trace: bool,
}

struct FakeState {
    spec: FakeSpec,
    started: Instant,
    llm_requests: AtomicU64,
    stt_requests: AtomicU64,
    tts_requests: AtomicU64,
}

/// The three fake services, each on its own loopback port; stop when dropped.
struct Fakes {
    llm_url: String,
    stt_url: String,
    tts_url: String,
    state: Arc<FakeState>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Fakes {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl FakeState {
    fn trace(&self, what: std::fmt::Arguments<'_>) {
        if self.spec.trace {
            eprintln!(
                "fake {:9.3} s: {what}",
                self.started.elapsed().as_secs_f64()
            );
        }
    }
}

impl Fakes {
    async fn start(spec: FakeSpec) -> anyhow::Result<Fakes> {
        let state = Arc::new(FakeState {
            spec,
            started: Instant::now(),
            llm_requests: AtomicU64::new(0),
            stt_requests: AtomicU64::new(0),
            tts_requests: AtomicU64::new(0),
        });
        let mut tasks = Vec::new();
        let serve = |router: Router<Arc<FakeState>>| {
            let state = state.clone();
            async move {
                let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                let addr = l.local_addr()?;
                let app = router
                    .layer(DefaultBodyLimit::max(16 << 20))
                    .with_state(state);
                let task = tokio::spawn(async move {
                    let _ = axum::serve(l, app).await;
                });
                anyhow::Ok((format!("http://{addr}/v1"), task))
            }
        };
        let (llm_url, t) =
            serve(Router::new().route("/v1/chat/completions", post(fake_chat))).await?;
        tasks.push(t);
        let (stt_url, t) =
            serve(Router::new().route("/v1/audio/transcriptions", post(fake_transcription)))
                .await?;
        tasks.push(t);
        let (tts_url, t) =
            serve(Router::new().route("/v1/audio/speech", post(fake_speech))).await?;
        tasks.push(t);
        Ok(Fakes {
            llm_url,
            stt_url,
            tts_url,
            state,
            tasks,
        })
    }

    fn counts(&self) -> (u64, u64, u64) {
        let s = &self.state;
        (
            s.llm_requests.load(Ordering::Relaxed),
            s.stt_requests.load(Ordering::Relaxed),
            s.tts_requests.load(Ordering::Relaxed),
        )
    }
}

fn openai_error(status: StatusCode, message: &str) -> Response {
    let body = json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": null}});
    (status, axum::Json(body)).into_response()
}

/// Items sent after a wait each, as a streamed body.
fn timed_body(items: Vec<(Duration, Bytes)>) -> Body {
    Body::from_stream(stream::iter(items).then(|(wait, bytes)| async move {
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        Ok::<_, Infallible>(bytes)
    }))
}

/// `POST /v1/chat/completions` with `"stream": true`: OpenAI's SSE chunks (role, content a few
/// words at a time, finish, usage when asked, `[DONE]`).
async fn fake_chat(State(s): State<Arc<FakeState>>, body: Bytes) -> Response {
    s.llm_requests.fetch_add(1, Ordering::Relaxed);
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return openai_error(StatusCode::BAD_REQUEST, "We could not parse the JSON body.");
    };
    if req["messages"].as_array().is_none_or(|m| m.is_empty()) {
        return openai_error(StatusCode::BAD_REQUEST, "'messages' is a required property");
    }
    if req["stream"] != true {
        return openai_error(StatusCode::BAD_REQUEST, "the bench's fake only streams");
    }
    let model = req["model"].as_str().unwrap_or("fake").to_string();
    s.trace(format_args!(
        "llm request, {} messages",
        req["messages"].as_array().map_or(0, Vec::len)
    ));
    let chunk = |choices: Value, usage: Value| {
        let c = json!({"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 0,
                       "model": model, "choices": choices, "usage": usage});
        Bytes::from(format!("data: {c}\n\n"))
    };
    let delta =
        |d: Value, finish: Value| json!([{"index": 0, "delta": d, "finish_reason": finish}]);
    let mut items = vec![(
        Duration::ZERO,
        chunk(
            delta(json!({"role": "assistant", "content": ""}), Value::Null),
            Value::Null,
        ),
    )];
    let words: Vec<&str> = s.spec.reply.split_inclusive(' ').collect();
    for (i, piece) in words.chunks(3).enumerate() {
        let wait = if i == 0 {
            s.spec.llm_delay
        } else {
            s.spec.llm_chunk
        };
        items.push((
            wait,
            chunk(
                delta(json!({"content": piece.concat()}), Value::Null),
                Value::Null,
            ),
        ));
    }
    items.push((
        Duration::ZERO,
        chunk(delta(json!({}), json!("stop")), Value::Null),
    ));
    if req.pointer("/stream_options/include_usage") == Some(&json!(true)) {
        let usage = json!({"prompt_tokens": 50, "completion_tokens": words.len(), "total_tokens": 50 + words.len()});
        items.push((Duration::ZERO, chunk(json!([]), usage)));
    }
    items.push((Duration::ZERO, Bytes::from_static(b"data: [DONE]\n\n")));
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(timed_body(items))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// Seconds of audio in the first WAV found in `body` (16-bit mono 8 kHz as the agent sends).
fn wav_seconds(body: &[u8]) -> Option<f64> {
    let riff = body.windows(4).position(|w| w == b"RIFF")?;
    let rest = &body[riff..];
    let data = rest.windows(4).position(|w| w == b"data")?;
    let len = rest.get(data + 4..data + 8)?;
    let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]);
    Some(f64::from(len) / 16000.0)
}

/// `POST /v1/audio/transcriptions` (multipart with a `file` part): `{"text": …}` after the
/// delay, in the `verbose_json` shape.
async fn fake_transcription(
    State(s): State<Arc<FakeState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    s.stt_requests.fetch_add(1, Ordering::Relaxed);
    let multipart = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data") && v.contains("boundary="));
    let has_file = body.windows(13).any(|w| w == b"name=\"file\"; ");
    if !multipart || !has_file {
        return openai_error(StatusCode::BAD_REQUEST, "expected multipart with a file");
    }
    let duration = wav_seconds(&body).unwrap_or(0.0);
    s.trace(format_args!("stt request, {duration:.2} s of audio"));
    tokio::time::sleep(s.spec.stt_delay).await;
    axum::Json(
        json!({"task": "transcribe", "language": "english", "duration": duration,
                      "text": s.spec.transcript, "words": []}),
    )
    .into_response()
}

/// `POST /v1/audio/speech` with `response_format: "pcm"`: the stored clip, first bytes after
/// the delay, then 100 ms of audio every 25 ms.
async fn fake_speech(State(s): State<Arc<FakeState>>, body: Bytes) -> Response {
    s.tts_requests.fetch_add(1, Ordering::Relaxed);
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return openai_error(StatusCode::BAD_REQUEST, "We could not parse the JSON body.");
    };
    if req["input"].as_str().is_none_or(|t| t.trim().is_empty()) {
        return openai_error(StatusCode::BAD_REQUEST, "'input' is a required property");
    }
    if req["response_format"] != "pcm" {
        return openai_error(StatusCode::BAD_REQUEST, "the bench's fake only speaks pcm");
    }
    s.trace(format_args!("tts request: {}", req["input"]));
    const CHUNK: usize = 4800; // 100 ms at 24 kHz, 16-bit
    let pcm = s.spec.tts_pcm.clone();
    let items: Vec<(Duration, Bytes)> = (0..pcm.len())
        .step_by(CHUNK)
        .enumerate()
        .map(|(i, o)| {
            let wait = if i == 0 {
                s.spec.tts_delay
            } else {
                Duration::from_millis(25)
            };
            (wait, pcm.slice(o..(o + CHUNK).min(pcm.len())))
        })
        .collect();
    Response::builder()
        .header(header::CONTENT_TYPE, "audio/pcm")
        .body(timed_body(items))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// The agent's voice: an espeak-ng sentence at 24 kHz, fitted to `ms` (padded with silence or
/// cut with a short fade), peaking at -9 dBFS.
fn tts_clip(ms: u64) -> anyhow::Result<Bytes> {
    let (s, rate) = espeak("Certainly, I can help you with that right away.", 175)?;
    let mut x = trim(&resample(&s, rate, 24_000));
    let n = (ms * 24) as usize;
    if x.len() > n {
        x.truncate(n);
        let fade = 240.min(n);
        for i in 0..fade {
            let k = n - fade + i;
            x[k] = (f64::from(x[k]) * (fade - i) as f64 / fade as f64) as i16;
        }
    }
    x.resize(n, 0);
    let peak = x.iter().map(|s| s.unsigned_abs()).max().unwrap_or(1).max(1);
    let gain = 11_600.0 / f64::from(peak);
    let mut b = Vec::with_capacity(n * 2);
    for s in x {
        b.extend_from_slice(&((f64::from(s) * gain) as i16).to_le_bytes());
    }
    Ok(Bytes::from(b))
}

fn fake_spec(args: &BenchAgentArgs) -> anyhow::Result<FakeSpec> {
    Ok(FakeSpec {
        stt_delay: Duration::from_millis(args.stt_delay_ms),
        llm_delay: Duration::from_millis(args.llm_delay_ms),
        llm_chunk: Duration::from_millis(args.llm_chunk_ms),
        tts_delay: Duration::from_millis(args.tts_delay_ms),
        reply: "Certainly, I can help you with that. Let me check what we have for you.".into(),
        transcript: "I would like to book a table for two people tomorrow evening.".into(),
        tts_pcm: tts_clip(args.tts_audio_ms)?,
        trace: args.trace_fakes,
    })
}

/// Base URLs of the providers the server talks to.
#[derive(Debug, Clone)]
struct ProviderUrls {
    llm: String,
    stt: String,
    tts: String,
}

// ---------------------------------------------------------------------------------------------
// The server

/// The in-process server, configured with the fake providers.
struct Server {
    base: String,
    key: String,
    store: Store,
    org: OrgId,
    client: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
}

const NUMBER: &str = "+15550003333";

impl Server {
    async fn start(
        args: &BenchAgentArgs,
        sip_port: u16,
        data_dir: &Path,
        max_calls: i64,
        urls: &ProviderUrls,
    ) -> anyhow::Result<Self> {
        let mut cfg = ServeConfig::for_tests(data_dir.to_path_buf(), None);
        cfg.db_pool = 16;
        cfg.telephony.sip_listen = SocketAddr::from(([127, 0, 0, 1], sip_port));
        cfg.telephony.rtp_ports = args.rtp_ports;
        cfg.telephony.max_calls_per_org = max_calls;
        cfg.telephony.shutdown_grace = 2;
        cfg.agent.llm_url = Some(urls.llm.clone());
        cfg.agent.llm_api_key = Some("sk-bench".into());
        cfg.agent.llm_model = "bench-model".into();
        cfg.agent.stt_provider = Some("openai".into());
        cfg.agent.stt_url = Some(urls.stt.clone());
        cfg.agent.stt_model = Some("whisper-1".into());
        cfg.agent.tts_provider = "openai".into();
        cfg.agent.tts_url = Some(urls.tts.clone());
        // The previous level's server may still hold the SIP port for a moment.
        let mut tries = 0;
        let app = loop {
            match Application::build(&cfg).await {
                Ok(app) => break app,
                Err(e) if tries < 50 && format!("{e:#}").contains("SIP") => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(e),
            }
        };
        let (org, key) = app
            .first_run_key
            .clone()
            .context("the bench needs a fresh data directory")?;
        let org: OrgId = org.parse()?;
        let store = app.store().clone();
        let base = format!("http://{}", app.local_addr());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until_stopped(async move {
            let _ = rx.await;
        }));
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()?;
        Ok(Server {
            base,
            key,
            store,
            org,
            client,
            stop: Some(tx),
            task,
        })
    }

    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .json(&body)
            .send()
            .await?;
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        ensure!(status.is_success(), "POST {path}: {status}: {v}");
        Ok(v)
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .send()
            .await?;
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        ensure!(status.is_success(), "GET {path}: {status}: {v}");
        Ok(v)
    }

    /// The conversing agent + a trunk to 127.0.0.1:`port` + our number bound to both.
    async fn setup(
        &self,
        port: u16,
        max_duration: u64,
        turn_detection: &str,
    ) -> anyhow::Result<()> {
        let agent = self
            .post(
                "/v1/agents",
                json!({
                    "name": "Bench agent",
                    "system_prompt": "You are the booking assistant of a restaurant. Answer in two short sentences.",
                    "initial_message": "Hello, how can I help?",
                    "max_duration_seconds": max_duration,
                    // Never re-prompt: the caller's loop has long pauses.
                    "settings": {"silence_timeout_seconds": 3600, "max_reprompts": 0, "turn_detection": turn_detection},
                }),
            )
            .await?;
        let trunk = self
            .post(
                "/v1/sip-trunks",
                json!({"name": format!("bench-agent {port}"), "host": "127.0.0.1", "port": port, "transport": "udp"}),
            )
            .await?;
        self.post(
            "/v1/phone-numbers",
            json!({"phone_number": NUMBER, "agent_id": agent["id"], "trunk_id": trunk["id"]}),
        )
        .await?;
        Ok(())
    }

    async fn dispatch(&self, i: usize) -> anyhow::Result<String> {
        let to = format!("+1415{:07}", 6_000_000 + i % 3_000_000);
        let v = self
            .post("/v1/call", json!({"from": NUMBER, "to": to}))
            .await?;
        Ok(v["id"].as_str().context("no call id")?.to_string())
    }

    async fn count(&self, status: CallStatus) -> anyhow::Result<i64> {
        let q = CallListQuery {
            filter: CallFilter {
                status: Some(status),
                ..Default::default()
            },
            order_by: OrderBy::CreatedAt,
            order: Order::Desc,
            limit: 1,
            page: Page::After(None),
            with_details: false,
            with_total: true,
        };
        Ok(self
            .store
            .list_calls(self.org, &q)
            .await?
            .total
            .unwrap_or(0))
    }

    async fn live(&self) -> anyhow::Result<i64> {
        Ok(self.count(CallStatus::InProgress).await? + self.count(CallStatus::Dialing).await?)
    }

    async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.task.await??;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// One level

/// What the calls' records say, summed over a level.
#[derive(Default)]
struct Collected {
    turns_per_call: Vec<f64>,
    overhead: Vec<f64>,
    v2v: Vec<f64>,
    eot: Vec<f64>,
    stt: Vec<f64>,
    ttft: Vec<f64>,
    ttfs: Vec<f64>,
    tts: Vec<f64>,
    kept: Vec<f64>,
    false_interruptions: usize,
    completed: usize,
    not_final: usize,
    end_reasons: BTreeMap<String, usize>,
    agent_errors: BTreeMap<String, usize>,
    error_sample: Option<String>,
    vad_runs: Vec<f64>,
    model_answers: Vec<f64>,
    /// Scripted barge-in onset → the agent paused (`interruption_start`).
    barge_detect: Vec<f64>,
    /// Scripted barge-in onset → the last agent frame sent.
    barge_heard: Vec<f64>,
    /// Scripted sentence onset → `user_speech_start` (turns not over the agent).
    speech_detect: Vec<f64>,
}

/// Where a moment of the call falls in the caller's loop: ms since the last scripted onset
/// (barge-in onsets only, or the other ones), if under a second.
fn since_onset(loop_ms: u64, sentences: &[Sentence], t: u64, barge: bool) -> Option<u64> {
    let p = t % loop_ms.max(1);
    sentences
        .iter()
        .filter(|s| s.barge_in == barge)
        .map(|s| (p + loop_ms - s.start) % loop_ms.max(1))
        .min()
        .filter(|lag| *lag < 1000)
}

impl Collected {
    /// Barge-in and speech onsets against the script: the call's conversation clock starts
    /// with its media, when sipp starts the loop (give or take the ACK's trip).
    fn add_onsets(&mut self, call: &Value, loop_ms: u64, starts: &[Sentence]) {
        let events = call["turn_events"].as_array().cloned().unwrap_or_default();
        let interruptions = call["interruptions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let at = |e: &Value| e["at_ms"].as_u64().unwrap_or(0);
        for e in &events {
            let t = at(e);
            match e["type"].as_str() {
                Some("interruption_start") => {
                    let Some(lag) = since_onset(loop_ms, starts, t, true) else {
                        continue;
                    };
                    self.barge_detect.push(lag as f64);
                    // Its record: onset back-dated by a frame or two, and how long frames went
                    // on after the pause was asked.
                    let rec = interruptions
                        .iter()
                        .find(|i| at(i) <= t && at(i) + 200 >= t);
                    let kept = rec.and_then(|i| i["agent_kept_talking_ms"].as_u64());
                    let last_frame = match (rec, kept) {
                        (Some(i), Some(k)) if k > 0 => (at(i) + k).max(t),
                        _ => t,
                    };
                    self.barge_heard.push((last_frame + lag - t) as f64);
                }
                Some("user_speech_start") => {
                    let barge_in = events
                        .iter()
                        .any(|x| x["type"] == "interruption_start" && at(x) == t);
                    if !barge_in {
                        if let Some(lag) = since_onset(loop_ms, starts, t, false) {
                            self.speech_detect.push(lag as f64);
                        }
                    }
                }
                _ => {}
            }
        }
    }

    fn add(&mut self, call: &Value) {
        let status = call["status"].as_str().unwrap_or("");
        if status == "completed" {
            self.completed += 1;
        }
        if matches!(status, "dialing" | "in_progress" | "queued" | "") {
            self.not_final += 1;
        }
        let reason = call["end_reason"].as_str().unwrap_or("none").to_string();
        *self.end_reasons.entry(reason).or_default() += 1;
        let turns = call
            .pointer("/latency_metrics/turns")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        self.turns_per_call.push(turns.len() as f64);
        for t in &turns {
            let put = |v: &mut Vec<f64>, k: &str| {
                if let Some(x) = t[k].as_f64() {
                    v.push(x);
                }
            };
            put(&mut self.overhead, "overhead_ms");
            put(&mut self.v2v, "voice_to_voice_ms");
            put(&mut self.eot, "end_of_turn_ms");
            put(&mut self.stt, "stt_ms");
            put(&mut self.ttft, "llm_first_token_ms");
            put(&mut self.ttfs, "llm_first_sentence_ms");
            put(&mut self.tts, "tts_first_audio_ms");
        }
        for i in call["interruptions"].as_array().into_iter().flatten() {
            if i["false_interruption"].as_bool().unwrap_or(false) {
                self.false_interruptions += 1;
            } else if let Some(k) = i["agent_kept_talking_ms"].as_f64() {
                self.kept.push(k);
            }
        }
        let answers = call["turn_events"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["type"] == "turn_prediction")
            .count();
        self.model_answers.push(answers as f64);
        for e in call["events"].as_array().into_iter().flatten() {
            if e["type"] == "agent-error" {
                let stage = e["stage"].as_str().unwrap_or("?").to_string();
                *self.agent_errors.entry(stage.clone()).or_default() += 1;
                if self.error_sample.is_none() {
                    self.error_sample =
                        Some(format!("{stage}: {}", e["message"].as_str().unwrap_or("")));
                }
            }
        }
        if let Some(r) = call
            .pointer("/quality_metrics/vad_model_runs")
            .and_then(Value::as_f64)
        {
            self.vad_runs.push(r);
        }
    }
}

async fn run_level(
    args: &BenchAgentArgs,
    n: usize,
    sip_port: u16,
    data_dir: &Path,
    urls: &ProviderUrls,
) -> anyhow::Result<LevelResult> {
    std::fs::create_dir_all(data_dir)?;
    let nofile = raise_nofile();
    if nofile < (n as u64) * 8 + 256 {
        eprintln!("warning: open-files limit {nofile} may be too low for {n} calls (ulimit -n)");
    }
    let srv = Server::start(args, sip_port, data_dir, (n as i64) * 2 + 10, urls).await?;
    srv.setup(args.sipp_port, args.seconds + 120, &args.turn_detection)
        .await?;

    // The caller: one sipp UAS for every call of the level, looping the recorded caller.
    let (audio, starts) = caller_audio()?;
    let loop_ms = audio.len() as u64 / 8;
    let (sentences_per_call, barge_ins_per_call) = script_counts(loop_ms, &starts, args.seconds);
    let caller = data_dir.join("caller.ulaw");
    std::fs::write(
        &caller,
        audio.iter().map(|&s| mulaw(s)).collect::<Vec<u8>>(),
    )?;
    let scen = data_dir.join("bench_agent_uas.xml");
    std::fs::write(
        &scen,
        AGENT_SCENARIO.replace("CALLER_FILE", &caller.display().to_string()),
    )?;
    let (mut sipp, stat) = spawn_sipp_uas(
        &scen,
        data_dir,
        args.sipp_port,
        args.sipp_media_port,
        n,
        args.seconds,
    )?;
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Idle baseline: the server running, no calls.
    let rss0 = rss_kib();
    let (c0, t0) = (cpu_time(), Instant::now());
    tokio::time::sleep(Duration::from_millis(args.idle_ms)).await;
    let idle_cores = (cpu_time() - c0).as_secs_f64() / t0.elapsed().as_secs_f64();
    let rss_before = rss_kib().max(rss0);
    let load_before = loadavg();

    // The calls start spread over (by default) one loop of the caller, so that their turns
    // fall at all phases of the loop as on a real server, not all at once.
    let stagger = Duration::from_millis(
        args.stagger_ms
            .unwrap_or_else(|| loop_ms.min(args.seconds * 1000 / 3)),
    );
    eprintln!(
        "level {n}: dispatching {n} conversing calls over {:.1} s ...",
        stagger.as_secs_f64()
    );
    let ramp = Instant::now();
    let srv_ref = &srv;
    let permits = tokio::sync::Semaphore::new(args.dispatch_parallel.max(1));
    let permits = &permits;
    let dispatched: Vec<(String, Instant)> = stream::iter(0..n)
        .map(|i| async move {
            tokio::time::sleep_until((ramp + stagger.mul_f64(i as f64 / n as f64)).into()).await;
            let _permit = permits.acquire().await?;
            let id = srv_ref.dispatch(i).await?;
            anyhow::Ok((id, Instant::now()))
        })
        .buffer_unordered(n.max(1))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        // Dialing first: a call answered between the two counts is counted twice, never missed.
        let dialing = srv.count(CallStatus::Dialing).await?;
        let up = srv.count(CallStatus::InProgress).await?;
        if up as usize >= n {
            break;
        }
        if up + dialing < n as i64 {
            bail!("level {n}: only {up} calls in progress, {dialing} dialing; the rest ended early (see the calls' end_reason)");
        }
        if Instant::now() > deadline {
            bail!("level {n}: only {up} of {n} calls in progress after 120 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let all_up = Instant::now();
    let ramp_s = ramp.elapsed().as_secs_f64();
    eprintln!("level {n}: all in progress after {ramp_s:.1} s");

    // Each call is hung up `seconds` after its dispatch, but not before a steady-state window
    // of 10 s with every call up (an overloaded server answers slowly: then calls run longer).
    let mut order = dispatched.clone();
    order.sort_by_key(|(_, at)| *at);
    let open = all_up + Duration::from_millis(args.settle_ms);
    let min_end = open + Duration::from_secs(11);
    let ends: Vec<Instant> = order
        .iter()
        .map(|(_, at)| (*at + Duration::from_secs(args.seconds)).max(min_end))
        .collect();
    let longest_call_s = order
        .iter()
        .zip(&ends)
        .map(|((_, at), end)| end.duration_since(*at).as_secs_f64())
        .fold(0.0, f64::max);
    if longest_call_s > args.seconds as f64 + 0.5 {
        eprintln!("level {n}: the ramp took {ramp_s:.1} s: calls run up to {longest_call_s:.0} s for a 10 s window");
    }
    // Steady state: after the greetings, before the first hang-up.
    let close = ends.iter().min().copied().unwrap_or(min_end) - Duration::from_millis(1000);
    tokio::time::sleep_until(open.into()).await;
    let model_threads = switchboard_agent::driver::TURN_MODEL_THREAD_PREFIX;
    let (c1, m1, t1) = (cpu_time(), threads_cpu_time(model_threads), Instant::now());
    tokio::time::sleep_until(close.into()).await;
    let window = t1.elapsed().as_secs_f64();
    let load_cores = (cpu_time() - c1).as_secs_f64() / window;
    let model_cores = threads_cpu_time(model_threads)
        .saturating_sub(m1)
        .as_secs_f64()
        / window;
    let rss_window = rss_kib();
    let threads = status_field("Threads");

    eprintln!("level {n}: hanging up ...");
    for ((id, _), end) in order.iter().zip(&ends) {
        tokio::time::sleep_until((*end).into()).await;
        if let Err(e) = srv.post(&format!("/v1/call/{id}/hangup"), json!({})).await {
            eprintln!("level {n}: hang-up of {id}: {e:#}");
        }
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while srv.live().await? > 0 {
        if Instant::now() > deadline {
            eprintln!("level {n}: calls still live 60 s after the hang-ups; reading what is there");
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let sipp_exit = match tokio::time::timeout(Duration::from_secs(30), sipp.wait()).await {
        Ok(Ok(s)) => s.code().unwrap_or(-1),
        _ => {
            let _ = sipp.kill().await;
            -1
        }
    };
    let (sipp_successful, sipp_failed) = sipp_stat(&stat);
    let load_after = loadavg();

    let calls: Vec<Value> = stream::iter(order.iter())
        .map(|(id, _)| {
            let srv = &srv;
            async move {
                srv.get(&format!("/v1/call/{id}?include=metrics,diagnostics"))
                    .await
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    let mut c = Collected::default();
    for call in &calls {
        c.add(call);
        c.add_onsets(call, loop_ms, &starts);
    }
    srv.stop().await?;
    let vad_runs = Dist::of(c.vad_runs);
    let model_answers = Dist::of(c.model_answers);
    Ok(LevelResult {
        calls: n,
        seconds: args.seconds,
        longest_call_s,
        ramp_s,
        window_s: window,
        idle_cores,
        load_cores,
        cpu_pct_per_call: (load_cores - idle_cores) / n as f64 * 100.0,
        model_cpu_pct_per_call: model_cores / n as f64 * 100.0,
        rss_before_mb: rss_before as f64 / 1024.0,
        rss_window_mb: rss_window as f64 / 1024.0,
        mib_per_call: (rss_window as f64 - rss_before as f64) / 1024.0 / n as f64,
        threads,
        completed: c.completed,
        not_final: c.not_final,
        end_reasons: c.end_reasons,
        sentences_per_call,
        barge_ins_per_call,
        turns_per_call: Dist::of(c.turns_per_call),
        overhead_ms: Dist::of(c.overhead),
        voice_to_voice_ms: Dist::of(c.v2v),
        end_of_turn_ms: Dist::of(c.eot),
        stt_ms: Dist::of(c.stt),
        llm_first_token_ms: Dist::of(c.ttft),
        llm_first_sentence_ms: Dist::of(c.ttfs),
        tts_first_audio_ms: Dist::of(c.tts),
        kept_talking_ms: Dist::of(c.kept),
        barge_detect_ms: Dist::of(c.barge_detect),
        barge_heard_ms: Dist::of(c.barge_heard),
        speech_detect_ms: Dist::of(c.speech_detect),
        false_interruptions: c.false_interruptions,
        agent_errors: c.agent_errors,
        error_sample: c.error_sample,
        vad_runs_per_call: vad_runs.mean,
        model_answers_per_call: model_answers.mean,
        sipp_exit,
        sipp_successful,
        sipp_failed,
        load_before,
        load_after,
        ..Default::default()
    })
}

/// Runs one level in a child process of this binary (the fakes stay here) and reads its JSON
/// line.
async fn run_level_child(
    args: &BenchAgentArgs,
    n: usize,
    data_dir: &Path,
    urls: &ProviderUrls,
) -> anyhow::Result<LevelResult> {
    let exe = std::env::current_exe()?;
    let stagger: Vec<String> = args
        .stagger_ms
        .map(|v| vec!["--stagger-ms".into(), v.to_string()])
        .unwrap_or_default();
    let out = tokio::process::Command::new(exe)
        .args([
            "bench-agent".to_string(),
            "--concurrency".into(),
            n.to_string(),
            "--seconds".into(),
            args.seconds.to_string(),
            "--dispatch-parallel".into(),
            args.dispatch_parallel.to_string(),
            "--sip-port".into(),
            args.sip_port.to_string(),
            "--sipp-port".into(),
            args.sipp_port.to_string(),
            "--sipp-media-port".into(),
            args.sipp_media_port.to_string(),
            "--rtp-ports".into(),
            format!("{}-{}", args.rtp_ports.0, args.rtp_ports.1),
            "--idle-ms".into(),
            args.idle_ms.to_string(),
            "--settle-ms".into(),
            args.settle_ms.to_string(),
            "--turn-detection".into(),
            args.turn_detection.clone(),
            "--in-process".into(),
            "--skip-pauses".into(),
            "--json".into(),
            "--fake-urls".into(),
            urls.llm.clone(),
            urls.stt.clone(),
            urls.tts.clone(),
            "--data-dir".into(),
            data_dir.display().to_string(),
        ])
        .args(stagger)
        // Provider errors are counted in the tables; one log line each would drown them.
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "error".into()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?
        .wait_with_output()
        .await?;
    ensure!(out.status.success(), "level {n} failed ({})", out.status);
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .context("no result line from the level's process")?;
    Ok(serde_json::from_str(line)?)
}

// ---------------------------------------------------------------------------------------------
// End of turn on pauses

/// Sentences cut where a speaker may stop to think.
const PAUSE_SENTENCES: &[(&str, &str)] = &[
    (
        "I would like to book a table for",
        "two people tomorrow evening.",
    ),
    ("Could you tell me if you are open on", "Sunday afternoon?"),
    (
        "My name is John and my phone number is",
        "five five five, one two three four.",
    ),
    (
        "I need to move my reservation from Friday to",
        "Saturday at eight.",
    ),
    (
        "We will be arriving a little later than",
        "we planned, around nine.",
    ),
    (
        "Can I order the vegetarian menu with",
        "a glass of red wine?",
    ),
    (
        "The address for the delivery is",
        "twelve Main Street, apartment four.",
    ),
    (
        "I am calling because my order from yesterday",
        "never arrived.",
    ),
];

/// One utterance through the conversation core: the turn-end events (at ms, silence ms) and
/// the model's answers (at ms, probability).
struct Run {
    ends: Vec<(u64, u64)>,
    predictions: Vec<(u64, f64)>,
}

fn run_turn_taking(
    predict_min_speech: Duration,
    vad_model: &VadModel,
    turn: &TurnModel,
    audio: &[i16],
    predict_ms: &mut Vec<f64>,
) -> Run {
    let cfg = Config {
        has_llm: false,
        has_stt: false,
        has_turn_model: true,
        user_speaks_first: true,
        predict_min_speech,
        ..Config::default()
    };
    let mut conv = Conversation::new(cfg);
    let mut vad = Vad::new(vad_model);
    conv.start(Duration::ZERO);
    let _ = conv.drain();
    // Answers of the model, delivered once its (measured) inference time has passed, as the
    // driver's blocking task would deliver them.
    let mut pending: Vec<(Duration, u64, f32)> = Vec::new();
    for (i, frame) in audio.chunks_exact(160).enumerate() {
        let now = Duration::from_millis(20 * (i as u64 + 1));
        pending.sort_by_key(|p| p.0);
        while pending.first().is_some_and(|p| p.0 <= now) {
            let (at, id, p) = pending.remove(0);
            conv.handle(at, Event::TurnPrediction { id, complete: p });
            let _ = conv.drain();
        }
        let p = vad.push_frame(frame);
        conv.handle(
            now,
            Event::Frame {
                samples: frame,
                vad: p,
            },
        );
        for a in conv.drain() {
            if let Action::PredictTurn { id, audio } = a {
                let t = Instant::now();
                let p = turn.predict(&audio).unwrap_or(1.0);
                let dt = t.elapsed();
                predict_ms.push(dt.as_secs_f64() * 1000.0);
                pending.push((now + dt, id, p));
            }
        }
    }
    let mut run = Run {
        ends: Vec::new(),
        predictions: Vec::new(),
    };
    for e in conv.turn_events() {
        let at = e["at_ms"].as_u64().unwrap_or(0);
        match e["type"].as_str() {
            Some("user_turn_end") => run.ends.push((at, e["silence_ms"].as_u64().unwrap_or(0))),
            Some("turn_prediction") => run
                .predictions
                .push((at, e["complete"].as_f64().unwrap_or(0.0))),
            _ => {}
        }
    }
    run
}

/// The halves of `a b` synthesised as one sentence with an SSML break between them (the
/// longest stretch of near-silence), trimmed.
fn halves_with_break(a: &str, b: &str, wpm: u32) -> anyhow::Result<(Vec<i16>, Vec<i16>)> {
    let ssml = format!("<speak>{a} <break time=\"1000ms\"/> {b}</speak>");
    let (s, rate) = espeak_with(&ssml, wpm, true)?;
    let x = trim(&resample(&s, rate, 8000));
    let (mut best, mut start) = ((0, 0), None);
    for (i, v) in x.iter().enumerate() {
        if v.unsigned_abs() <= 200 {
            let s0 = *start.get_or_insert(i);
            if i + 1 - s0 > best.1 - best.0 {
                best = (s0, i + 1);
            }
        } else {
            start = None;
        }
    }
    ensure!(best.1 - best.0 >= 4000, "no break found in {ssml:?}");
    Ok((x[..best.0].to_vec(), x[best.1..].to_vec()))
}

/// Smart Turn on `speech` + 200 ms of silence at 8 kHz, as the conversation asks it.
fn complete_after_200ms(turn: &TurnModel, speech: &[i16]) -> f64 {
    let mut x = speech.to_vec();
    x.extend(silence_8k(200));
    f64::from(turn.predict(&x).unwrap_or(f32::NAN))
}

/// Smart Turn on espeak-ng's full band (16 kHz, never through 8 kHz) + 200 ms of silence.
fn complete_full_band(turn: &TurnModel, text: &str, wpm: u32) -> anyhow::Result<f64> {
    let (w, rate) = espeak(text, wpm)?;
    let mut x: Vec<f32> = trim(&resample(&w, rate, 16_000))
        .iter()
        .map(|&s| f32::from(s) / 32768.0)
        .collect();
    x.extend(std::iter::repeat_n(0.0, 3200));
    // The model's window: the last 8 s, zero-padded at the start.
    let n = switchboard_agent::turn::WINDOW_SAMPLES_16K;
    let mut window = vec![0.0f32; n.saturating_sub(x.len())];
    window.extend_from_slice(&x[x.len().saturating_sub(n)..]);
    let p = turn
        .predict_features(&turn.features(&window))
        .unwrap_or(f32::NAN);
    Ok(f64::from(p))
}

/// Runs the pause measurement (about a minute in release; far longer in a debug build).
pub fn measure_pauses(args: &BenchAgentArgs) -> anyhow::Result<PauseResult> {
    let vad_model = VadModel::load().context("Silero VAD")?;
    let turn = TurnModel::load().context("Smart Turn model")?;
    let min_speech = Duration::from_millis(args.predict_min_speech_ms);
    let sentences = &PAUSE_SENTENCES[..args.pause_sentences.clamp(1, PAUSE_SENTENCES.len())];
    const LEAD_MS: u64 = 500;
    const TAIL_MS: u64 = 2000;
    const VARIANTS: [&str; 2] = ["apart", "break"];
    let mut rows: Vec<PauseRow> = Vec::new();
    let mut at_pause: BTreeMap<(usize, u64), Vec<f64>> = BTreeMap::new();
    let mut first_half: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut predict_ms = Vec::new();
    let (mut eot, mut eot_model, mut eot_audio, mut complete_end) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut complete_8k, mut complete_16k) = (Vec::new(), Vec::new());
    let mut r = PauseResult {
        wpm: args.pause_wpm.clone(),
        sentences: sentences.len(),
        ..Default::default()
    };
    // The sentence's final end: the first turn end after its last sample.
    let mut final_end = |run: &Run, speech_end: u64, r: &mut PauseResult| {
        match run.ends.iter().find(|(at, _)| *at >= speech_end) {
            Some(&(at, silence)) => {
                eot.push(silence as f64);
                eot_audio.push(at as f64 - speech_end as f64);
                if silence >= 1200 {
                    r.ends_by_limit += 1;
                } else {
                    r.ends_by_model += 1;
                    eot_model.push(silence as f64);
                }
            }
            None => r.not_ended += 1,
        }
        if let Some(&(_, p)) = run
            .predictions
            .iter()
            .find(|(at, _)| *at >= speech_end && *at <= speech_end + 1300)
        {
            complete_end.push(p);
        }
    };
    for &wpm in &args.pause_wpm {
        for (a, b) in sentences {
            let text = format!("{a} {b}");
            let whole = speech_8k(&text, wpm)?;
            let p8 = complete_after_200ms(&turn, &whole);
            let p16 = complete_full_band(&turn, &text, wpm)?;
            complete_8k.push(p8);
            complete_16k.push(p16);
            let halves = [
                (speech_8k(a, wpm)?, speech_8k(b, wpm)?),
                halves_with_break(a, b, wpm)?,
            ];
            let firsts: Vec<f64> = halves
                .iter()
                .map(|(first, _)| complete_after_200ms(&turn, first))
                .collect();
            eprintln!(
                "pauses: {wpm} wpm: {a} | {b}: complete {p8:.2} (full band {p16:.2}); first half apart {:.2}, with a break {:.2}",
                firsts[0], firsts[1]
            );
            for (v, p) in firsts.into_iter().enumerate() {
                first_half[v].push(p);
            }
            // The whole sentence, no pause inserted.
            let mut audio = silence_8k(LEAD_MS);
            audio.extend(&whole);
            let speech_end = LEAD_MS + whole.len() as u64 / 8;
            audio.extend(silence_8k(TAIL_MS));
            let run = run_turn_taking(min_speech, &vad_model, &turn, &audio, &mut predict_ms);
            r.whole_sentences += 1;
            if run.ends.iter().any(|(at, _)| *at < speech_end) {
                r.whole_ended_early += 1;
            }
            final_end(&run, speech_end, &mut r);
            for (v, (first, second)) in halves.iter().enumerate() {
                for &pause in &args.pause_ms {
                    let mut audio = silence_8k(LEAD_MS);
                    audio.extend(first);
                    let pause_start = LEAD_MS + first.len() as u64 / 8;
                    audio.extend(silence_8k(pause));
                    audio.extend(second);
                    let speech_end = pause_start + pause + second.len() as u64 / 8;
                    audio.extend(silence_8k(TAIL_MS));
                    let run =
                        run_turn_taking(min_speech, &vad_model, &turn, &audio, &mut predict_ms);
                    let i = match rows
                        .iter()
                        .position(|x| x.variant == VARIANTS[v] && x.pause_ms == pause)
                    {
                        Some(i) => i,
                        None => {
                            rows.push(PauseRow {
                                variant: VARIANTS[v].into(),
                                pause_ms: pause,
                                ..Default::default()
                            });
                            rows.len() - 1
                        }
                    };
                    let row = &mut rows[i];
                    row.utterances += 1;
                    // The second half's onset is detected a few frames in: a turn end up to
                    // then belongs to the pause.
                    let in_pause = |at: u64| at >= pause_start && at <= pause_start + pause + 60;
                    let early: Vec<u64> = run
                        .ends
                        .iter()
                        .map(|e| e.0)
                        .filter(|&at| at < speech_end)
                        .collect();
                    if early.iter().any(|&at| in_pause(at)) {
                        row.ended_in_pause += 1;
                    } else if !early.is_empty() {
                        row.ended_elsewhere += 1;
                    }
                    if let Some(&(_, p)) = run.predictions.iter().find(|(at, _)| in_pause(*at)) {
                        at_pause.entry((v, pause)).or_default().push(p);
                    }
                    final_end(&run, speech_end, &mut r);
                }
            }
        }
    }
    for row in &mut rows {
        let v = VARIANTS.iter().position(|n| *n == row.variant).unwrap_or(0);
        row.complete_at_pause = Dist::of(at_pause.remove(&(v, row.pause_ms)).unwrap_or_default());
    }
    r.rows = rows;
    r.variants = VARIANTS
        .iter()
        .zip(first_half)
        .map(|(name, v)| PauseVariant {
            name: name.to_string(),
            first_half_over: v.iter().filter(|p| **p >= 0.5).count(),
            first_half_complete: Dist::of(v),
        })
        .collect();
    r.eot_ms = Dist::of(eot);
    r.eot_model_ms = Dist::of(eot_model);
    r.eot_from_audio_ms = Dist::of(eot_audio);
    r.complete_at_end = Dist::of(complete_end);
    r.predict_ms = Dist::of(predict_ms);
    r.complete_8k_over = complete_8k.iter().filter(|p| **p >= 0.5).count();
    r.complete_16k_over = complete_16k.iter().filter(|p| **p >= 0.5).count();
    r.complete_8k = Dist::of(complete_8k);
    r.complete_16k = Dist::of(complete_16k);
    Ok(r)
}

// ---------------------------------------------------------------------------------------------
// Printing

fn pass(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

fn print_levels(args: &BenchAgentArgs, all: &[LevelResult]) {
    for r in all {
        if let Some(e) = &r.error {
            println!("\nlevel {}: not measured: {e}", r.calls);
        }
    }
    let levels: Vec<&LevelResult> = all.iter().filter(|r| r.error.is_none()).collect();
    let levels = levels.as_slice();
    if levels.is_empty() {
        return;
    }
    println!(
        "\nConversing calls: providers faked over loopback HTTP at STT {} ms, LLM first token {} ms (then 3 words / {} ms), TTS first audio {} ms ({} ms of 24 kHz audio per sentence, 2 sentences per reply); every call recorded; the agent's turn_detection: {}.\n",
        args.stt_delay_ms, args.llm_delay_ms, args.llm_chunk_ms, args.tts_delay_ms, args.tts_audio_ms, args.turn_detection
    );
    println!("Latency per answered turn, all turns of all calls (ms):\n");
    println!("| calls | turns | our overhead p50 | p99 | max | voice-to-voice p50 | p99 | end of turn p50 | p99 | STT p50 | LLM first token p50 | LLM first sentence p50 | TTS first audio p50 |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in levels {
        let (o, v, e) = (&r.overhead_ms, &r.voice_to_voice_ms, &r.end_of_turn_ms);
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.calls,
            o.n,
            o.show(o.p50),
            o.show(o.p99),
            o.show(o.max),
            v.show(v.p50),
            v.show(v.p99),
            e.show(e.p50),
            e.show(e.p99),
            r.stt_ms.show(r.stt_ms.p50),
            r.llm_first_token_ms.show(r.llm_first_token_ms.p50),
            r.llm_first_sentence_ms.show(r.llm_first_sentence_ms.p50),
            r.tts_first_audio_ms.show(r.tts_first_audio_ms.p50),
        );
    }
    println!("\nBarge-in (the caller speaks over the agent's answer; agent kept talking = caller onset → last agent frame sent):\n");
    println!("| calls | real interruptions (script: {} per call) | agent_kept_talking_ms p50 | p95 | max | false interruptions | ≈ scripted onset → agent paused p50 / p95 | ≈ scripted onset → last agent frame p50 / p95 / max | (turn start: scripted onset → user_speech_start p50 / p95) |", levels.first().map_or(0, |r| r.barge_ins_per_call));
    println!("|---:|---:|---:|---:|---:|---:|---|---|---|");
    for r in levels {
        let k = &r.kept_talking_ms;
        let (d, h, s) = (&r.barge_detect_ms, &r.barge_heard_ms, &r.speech_detect_ms);
        println!(
            "| {} | {} | {} ms | {} ms | {} ms | {} | {} / {} ms | {} / {} / {} ms | {} / {} ms |",
            r.calls,
            k.n,
            k.show(k.p50),
            k.show(k.p95),
            k.show(k.max),
            r.false_interruptions,
            d.show(d.p50),
            d.show(d.p95),
            h.show(h.p50),
            h.show(h.p95),
            h.show(h.max),
            s.show(s.p50),
            s.show(s.p95),
        );
    }
    println!("\nCost (switchboard process only: the fakes and sipp run in other processes), over the steady-state window:\n");
    println!("| calls | CPU % of a core per call | of which the end-of-turn model | the rest | calls per core | RSS per call | RSS before → window | threads | VAD runs per call | end-of-turn model runs per call | window | ramp | longest call | load avg before → after |");
    println!("|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---|");
    for r in levels {
        let per_core = if r.cpu_pct_per_call > 0.0 {
            format!("{:.0}", 100.0 / r.cpu_pct_per_call)
        } else {
            "-".into()
        };
        println!(
            "| {} | {:.3} | {:.3} | {:.3} | {} | {:.2} MiB | {:.1} → {:.1} MiB | {} | {:.0} | {:.1} | {:.1} s | {:.1} s | {:.0} s | {} → {} |",
            r.calls,
            r.cpu_pct_per_call,
            r.model_cpu_pct_per_call,
            r.cpu_pct_per_call - r.model_cpu_pct_per_call,
            per_core,
            r.mib_per_call,
            r.rss_before_mb,
            r.rss_window_mb,
            r.threads,
            r.vad_runs_per_call,
            r.model_answers_per_call,
            r.window_s,
            r.ramp_s,
            r.longest_call_s,
            r.load_before,
            r.load_after,
        );
    }
    // The first model prediction on each pool thread allocates its scratch (the 8 s window's
    // intermediate tensors, tens of MiB per thread): a fixed cost that the per-call average
    // spreads over few calls at a low level. The slope between levels is what a call adds.
    if levels.len() >= 2 {
        println!("\nMarginal cost of one more conversing call (the slope between consecutive levels: the fixed cost of the model pool's threads and scratch cancels out):\n");
        println!("| levels | RSS per added call | CPU % of a core per added call |");
        println!("|---|---:|---:|");
        for pair in levels.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            let added = b.calls as f64 - a.calls as f64;
            if added <= 0.0 {
                continue;
            }
            let rss =
                (b.rss_window_mb - b.rss_before_mb - (a.rss_window_mb - a.rss_before_mb)) / added;
            let cpu =
                (b.cpu_pct_per_call * b.calls as f64 - a.cpu_pct_per_call * a.calls as f64) / added;
            println!("| {} → {} | {rss:.2} MiB | {cpu:.3} |", a.calls, b.calls);
        }
    }
    println!("\nCalls:\n");
    println!("| calls | completed | not final | turns answered per call mean (min–max) of {} caller sentences | agent errors | end reasons | provider requests LLM / STT / TTS | sipp |", levels.first().map_or(0, |r| r.sentences_per_call));
    println!("|---:|---:|---:|---|---|---|---|---|");
    for r in levels {
        let t = &r.turns_per_call;
        let errors = if r.agent_errors.is_empty() {
            "0".to_string()
        } else {
            r.agent_errors
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let reasons = r
            .end_reasons
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ");
        println!(
            "| {} | {} | {} | {:.1} ({:.0}–{:.0}) | {} | {} | {} / {} / {} | exit {}, ok {:?}, failed {:?} |",
            r.calls,
            r.completed,
            r.not_final,
            t.mean,
            t.min,
            t.max,
            errors,
            reasons,
            r.llm_requests,
            r.stt_requests,
            r.tts_requests,
            r.sipp_exit,
            r.sipp_successful,
            r.sipp_failed,
        );
        if let Some(e) = &r.error_sample {
            println!("  level {}: first agent error: {e}", r.calls);
        }
    }
    println!();
    for r in levels {
        println!(
            "Targets at {} calls: overhead p50 {} ≤ 15 ms {}, p99 {} ≤ 40 ms {}; end of turn p50 {} ≤ 400 ms {}; barge-in agent_kept_talking_ms p95 {} ≤ 100 ms {} (≈ {} ms from the caller's scripted onset); CPU {:.3} % ≤ 0.5 % {} (end-of-turn model {:.3} %, the rest {:.3} %); RSS {:.2} MiB ≤ 2 MiB {}",
            r.calls,
            r.overhead_ms.show(r.overhead_ms.p50),
            pass(r.overhead_ms.n > 0 && r.overhead_ms.p50 <= 15.0),
            r.overhead_ms.show(r.overhead_ms.p99),
            pass(r.overhead_ms.n > 0 && r.overhead_ms.p99 <= 40.0),
            r.end_of_turn_ms.show(r.end_of_turn_ms.p50),
            pass(r.end_of_turn_ms.n > 0 && r.end_of_turn_ms.p50 <= 400.0),
            r.kept_talking_ms.show(r.kept_talking_ms.p95),
            pass(r.kept_talking_ms.n > 0 && r.kept_talking_ms.p95 <= 100.0),
            r.barge_heard_ms.show(r.barge_heard_ms.p95),
            r.cpu_pct_per_call,
            pass(r.cpu_pct_per_call <= 0.5),
            r.model_cpu_pct_per_call,
            r.cpu_pct_per_call - r.model_cpu_pct_per_call,
            r.mib_per_call,
            pass(r.mib_per_call <= 2.0),
        );
    }
}

fn print_pauses(p: &PauseResult) {
    let prob = |d: &Dist, v: f64| {
        if d.n == 0 {
            "-".to_string()
        } else {
            format!("{v:.2}")
        }
    };
    println!(
        "\nEnd of turn on mid-sentence pauses: the conversation core with Silero VAD and Smart Turn v3 (asked after 200 ms of silence, its answer used when it arrives, \"complete\" ≥ 0.5 ends the turn, 1.2 s ends it anyway), no sockets; {} sentences spoken by espeak-ng en-us at {} wpm, with a pause at a word boundary inside the sentence. apart = the two halves synthesised separately (espeak-ng gives the first half a sentence-final fall); break = one sentence with an SSML break there (continuing intonation), the break replaced by the pause.\n",
        p.sentences,
        p.wpm.iter().map(u32::to_string).collect::<Vec<_>>().join(" and ")
    );
    println!("| halves | pause | utterances | turn ended in the pause | share | model answers that arrived in the pause: n, \"complete\" p50 / max | turn ended elsewhere before the end |");
    println!("|---|---:|---:|---:|---:|---|---:|");
    for row in &p.rows {
        let c = &row.complete_at_pause;
        println!(
            "| {} | {} ms | {} | {} | {:.0} % | {}, {} / {} | {} |",
            row.variant,
            row.pause_ms,
            row.utterances,
            row.ended_in_pause,
            row.ended_in_pause as f64 * 100.0 / row.utterances.max(1) as f64,
            c.n,
            prob(c, c.p50),
            prob(c, c.max),
            row.ended_elsewhere,
        );
    }
    for v in &p.variants {
        let total: usize = p
            .rows
            .iter()
            .filter(|r| r.variant == v.name)
            .map(|r| r.utterances)
            .sum();
        let ended: usize = p
            .rows
            .iter()
            .filter(|r| r.variant == v.name)
            .map(|r| r.ended_in_pause)
            .sum();
        let f = &v.first_half_complete;
        println!(
            "\n{}: {ended} of {total} pauses ended the turn ({:.0} %). Smart Turn on the first half + 200 ms: \"complete\" p50 {}, {} of {} ≥ 0.5 (the share of pauses ≥ 200 ms that would end the turn if its answer were instant).",
            v.name,
            ended as f64 * 100.0 / total.max(1) as f64,
            prob(f, f.p50),
            v.first_half_over,
            f.n,
        );
    }
    println!(
        "\nWhole sentences without a pause: {} of {} ended before their end.",
        p.whole_ended_early, p.whole_sentences
    );
    let (e, m, a) = (&p.eot_ms, &p.eot_model_ms, &p.eot_from_audio_ms);
    println!("\nClean sentence ends (every utterance's last word), end of turn from the last voiced frame:\n");
    println!("| ends | p50 | p90 | p99 | max | decided by the model | its p50 / p90 | by the 1.2 s limit | never | from the last sample of speech p50 / p99 | model's first answer after the end p50 | model inference p50 / p99 |");
    println!("|---:|---:|---:|---:|---:|---:|---|---:|---:|---|---:|---|");
    println!(
        "| {} | {} ms | {} ms | {} ms | {} ms | {} | {} / {} ms | {} | {} | {} / {} ms | {} | {} / {} ms |",
        e.n,
        e.show(e.p50),
        e.show(e.p90),
        e.show(e.p99),
        e.show(e.max),
        p.ends_by_model,
        m.show(m.p50),
        m.show(m.p90),
        p.ends_by_limit,
        p.not_ended,
        a.show(a.p50),
        a.show(a.p99),
        prob(&p.complete_at_end, p.complete_at_end.p50),
        p.predict_ms.show(p.predict_ms.p50),
        p.predict_ms.show(p.predict_ms.p99),
    );
    let utterances = p.whole_sentences + p.rows.iter().map(|r| r.utterances).sum::<usize>();
    println!(
        "\nEnd-of-turn model runs: {} for {} utterances ({:.2} each).",
        p.predict_ms.n,
        utterances,
        p.predict_ms.n as f64 / utterances.max(1) as f64
    );
    let (c8, c16) = (&p.complete_8k, &p.complete_16k);
    println!(
        "\nSmart Turn straight on the {} whole sentences + 200 ms of silence: \"complete\" p50 {} (min {}, max {}; {} ≥ 0.5) from the 8 kHz telephone audio, p50 {} (min {}, max {}; {} ≥ 0.5) from espeak-ng's full band at 16 kHz.",
        c8.n,
        prob(c8, c8.p50),
        prob(c8, c8.min),
        prob(c8, c8.max),
        p.complete_8k_over,
        prob(c16, c16.p50),
        prob(c16, c16.min),
        prob(c16, c16.max),
        p.complete_16k_over,
    );
}

/// The command line as run (or, from a test, the equivalent one).
fn command_line(args: &BenchAgentArgs) -> String {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("bench-agent") {
        return argv.join(" ");
    }
    let list = |v: &[usize]| v.iter().map(usize::to_string).collect::<Vec<_>>().join(",");
    format!(
        "switchboard bench-agent --concurrency {} --seconds {} --sip-port {} --sipp-port {} --sipp-media-port {} --rtp-ports {}-{}{}",
        list(&args.concurrency),
        args.seconds,
        args.sip_port,
        args.sipp_port,
        args.sipp_media_port,
        args.rtp_ports.0,
        args.rtp_ports.1,
        if args.in_process { " --in-process" } else { "" }
    )
}

// ---------------------------------------------------------------------------------------------
// Entry points

/// Runs the levels and the pause measurement, prints the tables (unless `--json`).
pub async fn run(args: BenchAgentArgs) -> anyhow::Result<()> {
    measure(args).await.map(|_| ())
}

/// Like [`run`], and returns the figures.
pub async fn measure(args: BenchAgentArgs) -> anyhow::Result<Report> {
    let temp = args.data_dir.is_none();
    let root = args
        .data_dir
        .clone()
        .unwrap_or_else(|| crate::bench::scratch_dir("bench-agent"));
    std::fs::create_dir_all(&root)?;
    let result = measure_in(&args, &root, temp).await;
    if temp {
        let _ = std::fs::remove_dir_all(&root);
    }
    result
}

async fn measure_in(args: &BenchAgentArgs, root: &Path, temp: bool) -> anyhow::Result<Report> {
    let mut report = Report {
        command: command_line(args),
        ..Default::default()
    };
    let levels: Vec<usize> = if args.pauses {
        Vec::new()
    } else {
        args.concurrency
            .iter()
            .copied()
            .filter(|n| *n > 0)
            .collect()
    };
    if !levels.is_empty() {
        // The parent's fakes, unless this is a level's child process.
        let (fakes, urls) = match args.fake_urls.as_deref() {
            Some([llm, stt, tts]) => (
                None,
                ProviderUrls {
                    llm: llm.clone(),
                    stt: stt.clone(),
                    tts: tts.clone(),
                },
            ),
            _ => {
                let f = Fakes::start(fake_spec(args)?).await?;
                let urls = ProviderUrls {
                    llm: f.llm_url.clone(),
                    stt: f.stt_url.clone(),
                    tts: f.tts_url.clone(),
                };
                (Some(f), urls)
            }
        };
        for (i, &n) in levels.iter().enumerate() {
            let dir = root.join(format!("level-{n}"));
            let before = fakes.as_ref().map(Fakes::counts);
            let result = if args.in_process {
                if levels.len() == 1 && args.json {
                    // Child mode: the parent gave us our own directory.
                    run_level(args, n, args.sip_port, root, &urls).await
                } else {
                    // A stopped server's SIP socket may linger in this process: one port per level.
                    run_level(args, n, args.sip_port + i as u16, &dir, &urls).await
                }
            } else {
                run_level_child(args, n, &dir, &urls).await
            };
            let mut r = match result {
                Ok(r) => r,
                // The child reports its own failure; the parent records it and goes on.
                Err(e) if args.json => return Err(e),
                Err(e) => {
                    eprintln!("level {n} failed: {e:#}");
                    LevelResult {
                        calls: n,
                        seconds: args.seconds,
                        error: Some(format!("{e:#}")),
                        ..Default::default()
                    }
                }
            };
            if let (Some(f), Some((l0, s0, t0))) = (&fakes, before) {
                let (l1, s1, t1) = f.counts();
                (r.llm_requests, r.stt_requests, r.tts_requests) = (l1 - l0, s1 - s0, t1 - t0);
            }
            if args.json {
                println!("{}", serde_json::to_string(&r)?);
            }
            if temp {
                let _ = std::fs::remove_dir_all(&dir);
            }
            report.levels.push(r);
        }
    }
    if args.pauses || !args.skip_pauses {
        eprintln!("end of turn on pauses ...");
        let a = args.clone();
        report.pauses = Some(tokio::task::spawn_blocking(move || measure_pauses(&a)).await??);
    }
    if !args.json {
        println!(
            "\nswitchboard bench-agent: {} s calls; {} cores; open-files limit {}\ncommand: {}",
            args.seconds,
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(0),
            raise_nofile(),
            report.command
        );
        if !report.levels.is_empty() {
            print_levels(args, &report.levels);
        }
        if let Some(p) = &report.pauses {
            print_pauses(p);
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resampling_keeps_a_tone_and_its_level() {
        let x: Vec<i16> = (0..22050)
            .map(|i| {
                ((i as f64 * 2.0 * std::f64::consts::PI * 440.0 / 22050.0).sin() * 10000.0) as i16
            })
            .collect();
        for to in [8000, 24000] {
            let y = resample(&x, 22050, to);
            assert_eq!(y.len(), to as usize);
            let mid = &y[y.len() / 4..3 * y.len() / 4];
            let peak = mid.iter().map(|s| s.unsigned_abs()).max().unwrap();
            assert!((9800..=10200).contains(&peak), "{to}: {peak}");
        }
    }

    #[test]
    fn wav_round_trip_and_multipart_duration() {
        let samples: Vec<i16> = (0..1600).map(|i| i as i16).collect();
        let wav = switchboard_agent::providers::stt::wav_bytes(&samples, 8000);
        let (back, rate) = parse_wav(&wav).unwrap();
        assert_eq!((back, rate), (samples, 8000));
        let mut body =
            b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"u.wav\"\r\n\r\n"
                .to_vec();
        body.extend_from_slice(&wav);
        assert_eq!(wav_seconds(&body), Some(0.2));
    }

    #[test]
    fn the_script_counts_sentences_and_barge_ins() {
        let s = |start, barge_in| Sentence {
            start,
            end: start + 500,
            barge_in,
        };
        let starts = [s(1000, false), s(5000, false), s(9000, true)];
        // Sentence ends 1.5, 5.5, 9.5, 11.5, 15.5, 19.5, 21.5 s: answers due by 25 s.
        assert_eq!(script_counts(10_000, &starts, 25), (7, 2));
        assert_eq!(script_counts(10_000, &starts, 24), (7, 2));
        assert_eq!(script_counts(10_000, &starts, 23), (6, 2));
        assert_eq!(since_onset(10_000, &starts, 19_100, true), Some(100));
        assert_eq!(since_onset(10_000, &starts, 20_300, true), None);
        assert_eq!(since_onset(10_000, &starts, 25_150, false), Some(150));
        assert_eq!(since_onset(10_000, &starts, 10_500, true), None);
    }
}
