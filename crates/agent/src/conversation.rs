//! The conversation core, without IO: fed the caller's 20 ms frames (with the VAD's speech
//! probability), the providers' events and the time, it answers with [`Action`]s. Time is the
//! call's clock (`Duration` since answer, the recording's clock), passed in by the caller, so
//! turn-taking, barge-in, silence and latency are tested on scripted timelines.
//!
//! Turn-taking: speech starts after a few voiced frames; after a short pause the end-of-turn
//! model is asked ([`Action::PredictTurn`]); "complete" ends the turn at once, "incomplete"
//! waits up to `max_pause` for more speech. Without a model a fixed pause ends the turn. The
//! model costs ~0.2 s of CPU per answer, most of a conversing call's CPU, so it is asked once
//! per pause and only about new speech: a pause after less than `predict_min_speech` of speech
//! since its last "incomplete" keeps that verdict, and a turn shorter than that in all (a
//! cough, a breath) ends by `fixed_pause` without asking it.
//!
//! Barge-in is two-stage (as in LiveKit Agents): the agent's audio pauses at the caller's
//! speech onset; speech that lasts `interrupt_min_speech` (or transcribes to more than a
//! backchannel) commits the interruption (playback cleared, LLM and TTS cancelled, the agent
//! turn keeps only the words played); a short backchannel ("uh-huh", "okay") or nothing
//! resumes the paused audio. While the agent talks, caller audio must also be loud enough
//! relative to what we just sent, so the agent's own echo does not interrupt it.

use crate::providers::{LlmEvent, LlmUsage, ProviderError, SttEvent, SttInput, Word};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::time::Duration;
use switchboard_domain::tools::{check_dtmf, Tool};

const FRAME: Duration = Duration::from_millis(20);
const FRAME_SAMPLES: usize = 160;
const RATE: f64 = 8000.0;

/// What a conversation is told at the start of a call.
#[derive(Debug, Clone)]
pub struct Config {
    /// The whole system message (prompt + call context), already filled.
    pub system_message: String,
    /// Spoken first unless `user_speaks_first` (already filled).
    pub initial_message: Option<String>,
    pub user_speaks_first: bool,
    /// Whether an LLM is configured: without one the agent greets and listens.
    pub has_llm: bool,
    /// Whether an STT is configured: without one nothing the caller says is understood.
    pub has_stt: bool,
    /// Whether an end-of-turn model is available ([`Action::PredictTurn`] is only asked then).
    pub has_turn_model: bool,
    pub interruptible: bool,
    pub silence_timeout: Duration,
    pub max_reprompts: u32,
    pub reprompt_message: String,
    pub goodbye_message: String,
    /// Spoken when a provider fails or is too slow.
    pub fallback_message: String,
    /// From the end of the caller's turn to the fallback when no reply audio is ready.
    pub response_timeout: Duration,
    /// Pause after speech before the end-of-turn model is asked.
    pub min_pause: Duration,
    /// Pause that ends a turn whatever the model says (and without a model: `fixed_pause`).
    pub max_pause: Duration,
    pub fixed_pause: Duration,
    /// Voiced speech needed since the model's last "incomplete" (or since the turn's start)
    /// before it is asked again at a pause; with less, the last verdict stands (or, with none,
    /// `fixed_pause` ends the turn).
    pub predict_min_speech: Duration,
    /// Probability at or above which the end-of-turn model's "complete" is believed.
    pub turn_threshold: f32,
    /// VAD probability at or above which a frame is voiced.
    pub vad_threshold: f32,
    /// Voiced frames in a row that start the caller's speech.
    pub speech_start_frames: u32,
    /// Caller speech over the agent that commits a barge-in by its length alone.
    pub interrupt_min_speech: Duration,
    /// How long a paused (possibly false) interruption waits for its transcript.
    pub false_interruption_timeout: Duration,
    /// Caller energy needed over the agent's recent output energy to count while the agent
    /// talks (echo suppression), as an amplitude ratio (0.18 ≈ -15 dB).
    pub echo_ratio: f64,
    /// The agent's tools (their definitions go to the LLM with every request).
    pub tools: Vec<Tool>,
    /// Said once when a tool has not answered after `tool_filler_after`.
    pub filler_message: String,
    pub tool_filler_after: Duration,
    /// Said by `end_call` / `transfer_call` when the LLM said nothing with the call.
    pub end_call_message: String,
    pub transfer_message: String,
    /// Rounds of tool calls one reply may make before the agent gives up on it.
    pub max_tool_rounds: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            system_message: String::new(),
            initial_message: None,
            user_speaks_first: false,
            has_llm: true,
            has_stt: true,
            has_turn_model: true,
            interruptible: true,
            silence_timeout: Duration::from_secs(8),
            max_reprompts: 2,
            reprompt_message: "Are you still there?".into(),
            goodbye_message: "I haven't heard from you, so I'll end the call now. Goodbye.".into(),
            fallback_message: "Sorry, I'm having trouble right now. Could you say that again?"
                .into(),
            response_timeout: Duration::from_millis(2000),
            min_pause: Duration::from_millis(200),
            max_pause: Duration::from_millis(1200),
            fixed_pause: Duration::from_millis(700),
            predict_min_speech: Duration::from_millis(160),
            turn_threshold: 0.5,
            vad_threshold: 0.5,
            speech_start_frames: 3,
            interrupt_min_speech: Duration::from_millis(500),
            false_interruption_timeout: Duration::from_millis(1500),
            echo_ratio: 0.18,
            tools: Vec::new(),
            filler_message: "One moment.".into(),
            tool_filler_after: Duration::from_millis(1000),
            end_call_message: "Thank you for calling. Goodbye.".into(),
            transfer_message: "Please hold while I transfer your call.".into(),
            max_tool_rounds: 5,
        }
    }
}

/// What happens on the line or at a provider.
#[derive(Debug)]
pub enum Event<'a> {
    /// One 20 ms caller frame and the VAD's speech probability for it.
    Frame {
        samples: &'a [i16],
        vad: f32,
    },
    /// Agent samples that went out on the wire in this tick.
    AgentPlayed(usize),
    /// The end-of-turn model's answer to [`Action::PredictTurn`].
    TurnPrediction {
        id: u64,
        complete: f32,
    },
    Stt(SttEvent),
    Llm {
        reply: u64,
        event: Result<LlmEvent, ProviderError>,
    },
    /// A chunk of synthesised audio for a segment (segments arrive in order).
    TtsAudio {
        seg: u64,
        samples: Vec<i16>,
    },
    /// The segment's synthesis finished (or failed).
    TtsDone {
        seg: u64,
        error: Option<ProviderError>,
    },
    /// The answer to [`Action::RunTool`]: the tool's result, or what went wrong.
    ToolResult {
        reply: u64,
        call_id: String,
        result: Result<Value, String>,
    },
}

/// What the core asks its driver to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Queue agent audio for playback.
    Play(Vec<i16>),
    /// Pause (true) or resume (false) queued agent audio.
    PausePlayback(bool),
    /// Drop all queued agent audio.
    ClearPlayback,
    Stt(SttInput),
    /// Ask the end-of-turn model about this turn's audio (8 kHz); answer with
    /// [`Event::TurnPrediction`].
    PredictTurn {
        id: u64,
        audio: Vec<i16>,
    },
    StartLlm {
        reply: u64,
        messages: Vec<Value>,
    },
    CancelLlm {
        reply: u64,
    },
    /// Synthesise one segment; `local` = the built-in voice (fallbacks must not depend on the
    /// provider that may be failing). Segments are synthesised and delivered in order.
    Synthesize {
        seg: u64,
        text: String,
        local: bool,
    },
    /// Drop every pending and running synthesis.
    CancelTts,
    /// A finished turn, to be kept on the call now (a crash keeps what was said so far).
    Turn(TurnRecord),
    /// A provider failed; record it on the call.
    Error {
        stage: &'static str,
        message: String,
    },
    /// End the call with this end reason once the audio queued so far has played.
    Hangup {
        reason: &'static str,
    },
    /// Run a webhook tool; answer with [`Event::ToolResult`]. `arguments` were checked
    /// against the tool's schema.
    RunTool {
        reply: u64,
        call_id: String,
        name: String,
        arguments: Value,
    },
    /// Send these keys as RFC 4733 telephone events (checked: 0-9, *, #, A-D).
    SendDtmf(String),
    /// Blind-transfer the caller (REFER) once the audio queued so far has played.
    Transfer {
        to: String,
    },
}

/// One tool execution, as `action_executions` keeps it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActionExecution {
    pub tool: String,
    pub call_id: String,
    pub arguments: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// ms from the answer.
    pub started_ms: u64,
    pub duration_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TurnRecord {
    pub speaker: &'static str,
    pub text: String,
    pub start_ms: u64,
    pub end_ms: u64,
    pub interrupted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub words: Option<Vec<Word>>,
    /// On `tool_call` / `tool_result` entries: `{id, name, arguments}` / `{id, name, result |
    /// error}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<Value>,
}

/// Per-reply timings, ms.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TurnLatency {
    pub turn: usize,
    pub voice_to_voice_ms: Option<f64>,
    pub end_of_turn_ms: Option<f64>,
    pub stt_ms: Option<f64>,
    pub llm_first_token_ms: Option<f64>,
    pub llm_first_sentence_ms: Option<f64>,
    pub tts_first_audio_ms: Option<f64>,
    pub overhead_ms: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Interruption {
    pub at_ms: u64,
    /// From the caller's speech onset to the last agent frame sent.
    pub agent_kept_talking_ms: Option<u64>,
    pub false_interruption: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caller_text: Option<String>,
}

/// Usage counters of the call.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Usage {
    pub llm_requests: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub tts_characters: u64,
    pub tts_audio_seconds: f64,
    pub stt_audio_seconds: f64,
}

#[derive(Debug, PartialEq, Clone, Copy)]
enum Agent {
    Idle,
    /// Waiting for the caller's transcript before asking the LLM.
    AwaitingTranscript,
    /// A reply is under way (LLM and/or TTS and/or playback).
    Replying,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum ReplyKind {
    Llm,
    Greeting,
    Reprompt,
    Goodbye,
    Fallback,
}

struct Segment {
    id: u64,
    text: String,
    samples: usize,
    done: bool,
    /// When its first and last samples went out.
    first_played: Option<Duration>,
    last_played: Option<Duration>,
}

impl Segment {
    fn new(id: u64, text: String) -> Self {
        Segment {
            id,
            text,
            samples: 0,
            done: false,
            first_played: None,
            last_played: None,
        }
    }
}

/// What a reply does once its audio has played.
#[derive(Debug, Clone, PartialEq)]
enum After {
    Hangup(&'static str),
    Transfer(String),
}

struct Reply {
    id: u64,
    kind: ReplyKind,
    llm_active: bool,
    llm_done: bool,
    /// Text not yet cut into a segment.
    pending_text: String,
    segments: Vec<Segment>,
    /// Samples queued for playback and how many of them have been sent.
    queued: usize,
    played: usize,
    first_played_at: Option<Duration>,
    last_played_at: Option<Duration>,
    started_at: Duration,
    first_token_at: Option<Duration>,
    first_sentence_at: Option<Duration>,
    first_tts_request_at: Option<Duration>,
    first_audio_at: Option<Duration>,
    paused: bool,
    /// Tool calls streamed in the current LLM round: (id, name, arguments).
    tool_calls: Vec<(String, String, String)>,
    /// Tool entries of the transcript, each after this many segments.
    tool_entries: Vec<(usize, TurnRecord)>,
    /// Tool calls still running, and when the batch started.
    pending_tools: Vec<String>,
    tools_since: Option<Duration>,
    filler_said: bool,
    /// The last LLM round that asked for tools also said something.
    round_spoke: bool,
    tool_rounds: u32,
    /// Segments from here on are the text of the current LLM round (its assistant message).
    round_from: usize,
    after: Option<After>,
}

impl Reply {
    fn new(id: u64, kind: ReplyKind, now: Duration) -> Self {
        Reply {
            id,
            kind,
            llm_active: false,
            llm_done: true,
            pending_text: String::new(),
            segments: Vec::new(),
            queued: 0,
            played: 0,
            first_played_at: None,
            last_played_at: None,
            started_at: now,
            first_token_at: None,
            first_sentence_at: None,
            first_tts_request_at: None,
            first_audio_at: None,
            paused: false,
            tool_calls: Vec::new(),
            tool_entries: Vec::new(),
            pending_tools: Vec::new(),
            tools_since: None,
            filler_said: false,
            round_spoke: false,
            tool_rounds: 0,
            round_from: 0,
            after: None,
        }
    }

    /// Counts samples that went out against the segments they belong to.
    fn mark_played(&mut self, n: usize, now: Duration) {
        let (from, to) = (self.played, self.played + n);
        self.played = to;
        let mut start = 0;
        for s in &mut self.segments {
            let end = start + s.samples;
            if end > from && start < to {
                s.first_played.get_or_insert(now);
                s.last_played = Some(now);
            }
            start = end;
        }
    }

    /// The reply's transcript entries in order: agent text split by the tool calls made
    /// between its sentences. `played_only` keeps only the words that went out (a cut reply).
    fn entries(&self, played_only: bool, now: Duration) -> Vec<TurnRecord> {
        let mut out = Vec::new();
        let mut bounds: Vec<usize> = self.tool_entries.iter().map(|(b, _)| *b).collect();
        bounds.push(self.segments.len());
        bounds.dedup();
        let mut from = 0;
        let mut start_samples = 0;
        let mut tools = self.tool_entries.iter().peekable();
        for b in bounds {
            let b = b.max(from);
            let part = &self.segments[from..b];
            let end_samples = start_samples + part.iter().map(|s| s.samples).sum::<usize>();
            let text = if played_only {
                self.played_text_of(from..b)
            } else {
                self.text_of(from..b)
            };
            if !text.is_empty() {
                let first = part.iter().find_map(|s| s.first_played);
                let last = part.iter().rev().find_map(|s| s.last_played);
                let cut =
                    played_only && (self.played < end_samples || part.iter().any(|s| !s.done));
                out.push(TurnRecord {
                    speaker: "agent",
                    text,
                    start_ms: ms(first.unwrap_or(now)),
                    end_ms: ms(last.unwrap_or(now)),
                    interrupted: cut,
                    words: None,
                    tool: None,
                });
            }
            while let Some((at, _)) = tools.peek() {
                if *at > b {
                    break;
                }
                out.push(tools.next().expect("peeked").1.clone());
            }
            from = b;
            start_samples = end_samples;
        }
        out
    }

    fn finished(&self) -> bool {
        self.llm_done
            && self.pending_tools.is_empty()
            && self.pending_text.trim().is_empty()
            && self.segments.iter().all(|s| s.done)
            && self.played >= self.queued
    }

    /// The words of these segments that actually went out: whole segments played, and of
    /// the one cut off the share of its characters matching the share of its audio played.
    fn played_text_of(&self, range: std::ops::Range<usize>) -> String {
        let before: usize = self.segments[..range.start].iter().map(|s| s.samples).sum();
        let mut left = self.played.saturating_sub(before);
        let mut out = String::new();
        for s in &self.segments[range] {
            if left == 0 {
                break;
            }
            if left >= s.samples && s.done {
                push_words(&mut out, &s.text);
                left -= s.samples;
            } else {
                let share = left as f64 / s.samples.max(1) as f64;
                let cut = (s.text.len() as f64 * share).round() as usize;
                // Whole words only: drop the one being spoken.
                let mut end = cut.min(s.text.len());
                while end > 0 && !s.text.is_char_boundary(end) {
                    end -= 1;
                }
                let partial = &s.text[..end];
                let partial = match partial.rfind(char::is_whitespace) {
                    Some(i) if end < s.text.len() => &partial[..i],
                    _ => partial,
                };
                push_words(&mut out, partial);
                break;
            }
        }
        out
    }

    fn text_of(&self, range: std::ops::Range<usize>) -> String {
        let mut out = String::new();
        for s in &self.segments[range] {
            push_words(&mut out, &s.text);
        }
        out
    }

    fn full_text(&self) -> String {
        let mut out = String::new();
        for s in &self.segments {
            push_words(&mut out, &s.text);
        }
        out
    }
}

fn push_words(out: &mut String, text: &str) {
    let t = text.trim();
    if t.is_empty() {
        return;
    }
    if !out.is_empty() {
        out.push(' ');
    }
    out.push_str(t);
}

/// The caller's side of the turn-taking.
struct UserTurn {
    onset: Duration,
    last_voiced: Duration,
    voiced: Duration,
    audio: Vec<i16>,
    /// Id of the pause prediction asked for (and not yet answered), and `voiced` when it was
    /// asked.
    asked: Option<(u64, Duration)>,
    /// The model's verdict on this pause was "incomplete" (or the last one is reused).
    said_incomplete: bool,
    /// `voiced` as of the audio the model last called incomplete.
    incomplete_at: Option<Duration>,
}

/// A barge-in being decided: the agent's audio is paused.
struct PendingInterruption {
    onset: Duration,
    stopped_at: Option<Duration>,
    /// Speech of the interruption ended; waiting for its transcript (or, after a blip, for
    /// more speech) until this deadline.
    deadline: Option<Duration>,
    /// The speech was a blip (under 120 ms voiced): not transcribed; more speech before the
    /// deadline makes it real, none makes it a click or a breath.
    blip: bool,
}

pub struct Conversation {
    cfg: Config,
    messages: Vec<Value>,
    turns: Vec<TurnRecord>,
    actions: Vec<Action>,
    agent: Agent,
    reply: Option<Reply>,
    next_id: u64,
    // caller side
    voiced_run: u32,
    pre_roll: VecDeque<i16>,
    user: Option<UserTurn>,
    /// Finals received for the current turn.
    transcript: String,
    words: Vec<Word>,
    /// Turn ended, transcript awaited: (turn end time, onset, last voiced, speech ms).
    awaiting: Option<(Duration, Duration, Duration)>,
    turn_ended_at: Option<Duration>,
    stt_final_at: Option<Duration>,
    response_deadline: Option<Duration>,
    /// The STT is between SpeechStart and SpeechEnd, and how many SpeechEnds still await
    /// their final transcript.
    stt_open: bool,
    stt_pending: u32,
    /// Finals still to come for speech that was dismissed (drop them).
    stt_discard: u32,
    /// (last voiced caller frame, turn end) of the turn the reply under way answers.
    pending_latency: Option<(Duration, Duration)>,
    interruption: Option<PendingInterruption>,
    /// Echo suppression: RMS of the agent audio being sent, and until when an echo of it may
    /// still come back.
    echo_ref: f64,
    echo_until: Duration,
    // silence
    silence_since: Option<Duration>,
    reprompts: u32,
    hangup_after_reply: Option<&'static str>,
    // records
    latencies: Vec<TurnLatency>,
    interruptions: Vec<Interruption>,
    events: Vec<Value>,
    usage: Usage,
    errors: Vec<Value>,
    executions: Vec<ActionExecution>,
    now: Duration,
    ended: bool,
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

fn msf(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e4).round() / 10.0
}

fn rms(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let sum: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    (sum / samples.len() as f64).sqrt()
}

/// Words that acknowledge without taking the turn.
fn is_backchannel(text: &str) -> bool {
    const WORDS: &[&str] = &[
        "uh-huh", "uh", "huh", "mhm", "mm", "mmm", "hmm", "um", "umm", "okay", "ok", "yeah", "yep",
        "yes", "right", "sure", "alright", "aha", "ah", "oh", "i", "see", "got", "it", "cool",
        "uhhuh", "mm-hmm", "hm",
    ];
    let words: Vec<String> = text
        .split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric() && c != '-')
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect();
    words.len() <= 3 && words.iter().all(|w| WORDS.contains(&w.as_str()))
}

/// Where a sentence ends in `text`: after `.`, `!`, `?` (or `;`, `:` once it is long) followed
/// by whitespace. Very long runs without punctuation are cut at a comma or a space.
fn sentence_end(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let long = i >= 60;
        let stop = matches!(b, b'.' | b'!' | b'?') || (long && matches!(b, b';' | b':'));
        if stop && i + 1 < bytes.len() && bytes[i + 1].is_ascii_whitespace() {
            // "Dr. Smith", "e.g. this": an abbreviation's dot ends nothing.
            if b == b'.' {
                let word = text[..i]
                    .rsplit(|c: char| c.is_whitespace())
                    .next()
                    .unwrap_or("")
                    .to_ascii_lowercase();
                if [
                    "mr", "mrs", "ms", "dr", "st", "e.g", "i.e", "vs", "etc", "no",
                ]
                .contains(&word.as_str())
                {
                    continue;
                }
            }
            return Some(i + 1);
        }
    }
    if text.len() > 160 {
        return text[..160]
            .rfind(", ")
            .map(|i| i + 1)
            .or_else(|| text[..160].rfind(' '));
    }
    None
}

impl Conversation {
    pub fn new(cfg: Config) -> Self {
        let messages = if cfg.system_message.trim().is_empty() {
            Vec::new()
        } else {
            vec![json!({"role": "system", "content": cfg.system_message})]
        };
        Conversation {
            cfg,
            messages,
            turns: Vec::new(),
            actions: Vec::new(),
            agent: Agent::Idle,
            reply: None,
            next_id: 1,
            voiced_run: 0,
            pre_roll: VecDeque::new(),
            user: None,
            transcript: String::new(),
            words: Vec::new(),
            awaiting: None,
            turn_ended_at: None,
            stt_final_at: None,
            response_deadline: None,
            stt_open: false,
            stt_pending: 0,
            stt_discard: 0,
            pending_latency: None,
            interruption: None,
            echo_ref: 0.0,
            echo_until: Duration::ZERO,
            silence_since: None,
            reprompts: 0,
            hangup_after_reply: None,
            latencies: Vec::new(),
            interruptions: Vec::new(),
            events: Vec::new(),
            usage: Usage::default(),
            errors: Vec::new(),
            executions: Vec::new(),
            now: Duration::ZERO,
            ended: false,
        }
    }

    fn id(&mut self) -> u64 {
        let i = self.next_id;
        self.next_id += 1;
        i
    }

    fn act(&mut self, a: Action) {
        self.actions.push(a);
    }

    fn event(&mut self, kind: &str, extra: Value) {
        let mut e = json!({"type": kind, "at_ms": ms(self.now)});
        if let (Value::Object(m), Value::Object(x)) = (&mut e, extra) {
            m.extend(x);
        }
        self.events.push(e);
    }

    /// Start of the call (media is up).
    pub fn start(&mut self, now: Duration) {
        self.now = now;
        match self.cfg.initial_message.clone() {
            Some(text) if !self.cfg.user_speaks_first && !text.trim().is_empty() => {
                self.speak(ReplyKind::Greeting, &text, false);
            }
            _ => self.silence_since = Some(now),
        }
    }

    /// Speaks a voicemail message (the greeting of an answering machine has ended) and then
    /// hangs up with reason `voicemail`. Used instead of [`Conversation::start`] on a call
    /// answered by a machine: nothing of the conversation has happened, nothing follows.
    pub fn leave_message(&mut self, now: Duration, text: &str) {
        self.now = now;
        self.event("voicemail_message", json!({}));
        self.hangup_after_reply = Some("voicemail");
        self.speak(ReplyKind::Goodbye, text, false);
    }

    /// The end-of-turn prediction whose answer is still wanted, if any: one asked earlier
    /// that is no longer this is stale (the caller spoke again, or the turn ended), and
    /// computing it would be wasted CPU.
    pub fn wanted_prediction(&self) -> Option<u64> {
        self.user.as_ref().and_then(|u| u.asked.map(|a| a.0))
    }

    /// Takes the actions produced so far.
    pub fn drain(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    /// When the core next needs [`Conversation::tick`] if nothing else happens.
    pub fn next_deadline(&self) -> Option<Duration> {
        let mut d: Option<Duration> = None;
        let mut take = |t: Option<Duration>| {
            if let Some(t) = t {
                d = Some(d.map_or(t, |x| x.min(t)));
            }
        };
        take(self.response_deadline);
        take(self.interruption.as_ref().and_then(|i| i.deadline));
        take(self.reply.as_ref().and_then(|r| {
            (!r.pending_tools.is_empty() && !r.filler_said)
                .then_some(r.tools_since? + self.cfg.tool_filler_after)
        }));
        if self.agent == Agent::Idle && self.user.is_none() && !self.ended && self.cfg.has_llm {
            take(self.silence_since.map(|s| s + self.cfg.silence_timeout));
        }
        d
    }

    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// Advances time; fires timers that are due.
    pub fn tick(&mut self, now: Duration) {
        self.now = now;
        self.maybe_say_filler();
        if let Some(t) = self.response_deadline {
            if now >= t {
                self.response_deadline = None;
                self.response_timed_out();
            }
        }
        if let Some(t) = self.interruption.as_ref().and_then(|i| i.deadline) {
            if now >= t {
                // No more speech after a blip, or no transcript in time: a noise or a
                // backchannel we could not hear; resume.
                self.user = None;
                self.end_user_turn_audio();
                self.resolve_interruption(false, None);
            }
        }
        // Without an LLM the agent only listens: nobody to re-prompt with.
        if self.agent == Agent::Idle && self.user.is_none() && !self.ended && self.cfg.has_llm {
            if let Some(since) = self.silence_since {
                if now >= since + self.cfg.silence_timeout {
                    self.on_silence();
                }
            }
        }
    }

    pub fn handle(&mut self, now: Duration, ev: Event<'_>) {
        self.now = now;
        match ev {
            Event::Frame { samples, vad } => self.on_frame(samples, vad),
            Event::AgentPlayed(n) => self.on_played(n),
            Event::TurnPrediction { id, complete } => self.on_prediction(id, complete),
            Event::Stt(e) => self.on_stt(e),
            Event::Llm { reply, event } => self.on_llm(reply, event),
            Event::TtsAudio { seg, samples } => self.on_tts_audio(seg, samples),
            Event::TtsDone { seg, error } => self.on_tts_done(seg, error),
            Event::ToolResult {
                reply,
                call_id,
                result,
            } => self.on_tool_result(reply, call_id, result),
        }
        self.tick(now);
    }

    // ---- caller audio ------------------------------------------------------------------

    fn agent_talking(&self) -> bool {
        self.reply
            .as_ref()
            .is_some_and(|r| r.queued > r.played && !r.paused)
    }

    fn on_frame(&mut self, samples: &[i16], vad: f32) {
        let level = rms(samples);
        let mut voiced = vad >= self.cfg.vad_threshold;
        // Echo suppression: while we talk (and shortly after), caller audio must be clearly
        // louder than an echo of what we sent would be.
        if voiced
            && (self.agent_talking() || self.now < self.echo_until)
            && level < self.echo_ref * self.cfg.echo_ratio
        {
            voiced = false;
        }

        // Pre-roll for the onset (the STT gets a little audio before the detector fired).
        self.pre_roll.extend(samples.iter().copied());
        while self.pre_roll.len() > FRAME_SAMPLES * 15 {
            self.pre_roll.pop_front();
        }

        if self.cfg.has_stt {
            self.act(Action::Stt(SttInput::Audio(samples.to_vec())));
        }

        if voiced {
            self.voiced_run += 1;
        } else {
            self.voiced_run = 0;
        }

        match self.user.as_mut() {
            None => {
                // Barge-in pauses sooner than a turn starts: two voiced frames over the agent.
                let needed = if self.agent_talking() {
                    2
                } else {
                    self.cfg.speech_start_frames
                };
                if self.voiced_run >= needed {
                    self.on_speech_start();
                }
            }
            Some(u) => {
                u.audio.extend_from_slice(samples);
                if voiced {
                    u.last_voiced = self.now;
                    u.voiced += FRAME;
                    if u.asked.is_some() || u.said_incomplete {
                        // Speaking again: the pause was not the end.
                        u.asked = None;
                        u.said_incomplete = false;
                    }
                    self.open_stt();
                    self.check_interruption_commit();
                } else {
                    self.on_pause();
                }
            }
        }
    }

    fn on_speech_start(&mut self) {
        let onset = self
            .now
            .saturating_sub(FRAME * self.voiced_run.saturating_sub(1));
        let audio: Vec<i16> = self.pre_roll.iter().copied().collect();
        self.user = Some(UserTurn {
            onset,
            last_voiced: self.now,
            voiced: FRAME * self.voiced_run,
            audio,
            asked: None,
            said_incomplete: false,
            incomplete_at: None,
        });
        self.silence_since = None;
        self.event("user_speech_start", json!({}));
        self.open_stt();
        match self.agent {
            Agent::Replying if self.agent_talking() || self.reply_has_pending_audio() => {
                if self.cfg.interruptible
                    && !matches!(
                        self.reply.as_ref().map(|r| r.kind),
                        Some(ReplyKind::Goodbye)
                    )
                {
                    if let Some(r) = self.reply.as_mut() {
                        r.paused = true;
                    }
                    self.act(Action::PausePlayback(true));
                    self.interruption = Some(PendingInterruption {
                        onset,
                        stopped_at: None,
                        deadline: None,
                        blip: false,
                    });
                    self.event("interruption_start", json!({}));
                }
            }
            Agent::Replying => {
                // Speaking again before any reply audio: the caller was not done. Drop the
                // reply being prepared; the turn goes on and its text accumulates.
                if self
                    .reply
                    .as_ref()
                    .is_some_and(|r| r.kind == ReplyKind::Llm)
                {
                    self.cancel_reply();
                    self.agent = Agent::Idle;
                    self.response_deadline = None;
                    self.event("reply_dropped", json!({"reason": "caller resumed"}));
                }
            }
            Agent::AwaitingTranscript => {
                // The turn resumes; the transcript of its first part is kept when it comes.
                self.agent = Agent::Idle;
                self.response_deadline = None;
            }
            Agent::Idle => {}
        }
    }

    fn reply_has_pending_audio(&self) -> bool {
        self.reply
            .as_ref()
            .is_some_and(|r| r.queued > r.played || r.first_audio_at.is_some() && !r.finished())
    }

    fn check_interruption_commit(&mut self) {
        let Some(i) = &self.interruption else { return };
        let Some(u) = &self.user else { return };
        // Long enough to be a turn, or speaking again after a short pause (a backchannel is
        // one short burst): real.
        if u.voiced >= self.cfg.interrupt_min_speech || i.deadline.is_some() {
            self.resolve_interruption(true, None);
        }
    }

    fn on_pause(&mut self) {
        let Some(u) = self.user.as_mut() else { return };
        let silent = self.now.saturating_sub(u.last_voiced);
        // A paused interruption whose speech stopped short: ask for its transcript.
        if self.interruption.is_some() && silent >= self.cfg.min_pause {
            let already = self
                .interruption
                .as_ref()
                .is_some_and(|i| i.deadline.is_some());
            if !already {
                if u.voiced < Duration::from_millis(120) || !self.cfg.has_stt {
                    // A click, a breath, or the first syllable of a word whose consonants
                    // the VAD does not hear: wait briefly for more speech.
                    let deadline = self.now + Duration::from_millis(300);
                    if let Some(i) = self.interruption.as_mut() {
                        i.deadline = Some(deadline);
                        i.blip = true;
                    }
                    return;
                }
                let deadline = self.now + self.cfg.false_interruption_timeout;
                if let Some(i) = self.interruption.as_mut() {
                    i.deadline = Some(deadline);
                }
                self.end_user_turn_audio();
            }
            return;
        }
        if self.interruption.is_some() {
            return;
        }
        if self.cfg.has_turn_model {
            // Speech the model has not judged yet.
            let new_speech = u.voiced.saturating_sub(u.incomplete_at.unwrap_or_default());
            if silent >= self.cfg.max_pause {
                self.end_user_turn();
            } else if silent < self.cfg.min_pause || u.asked.is_some() || u.said_incomplete {
                // Not yet, or the model's answer for this pause is awaited or given.
            } else if new_speech < self.cfg.predict_min_speech {
                if u.incomplete_at.is_some() {
                    // A syllable since the model said "incomplete": its verdict stands.
                    u.said_incomplete = true;
                } else if silent >= self.cfg.fixed_pause {
                    // Too little speech for the model to judge: a fixed pause decides.
                    self.end_user_turn();
                }
            } else {
                let id = self.next_id;
                self.next_id += 1;
                let u = self.user.as_mut().expect("checked above");
                u.asked = Some((id, u.voiced));
                // The model looks at the last 8 s.
                let keep = (8 * 8000).min(u.audio.len());
                let audio = u.audio[u.audio.len() - keep..].to_vec();
                self.act(Action::PredictTurn { id, audio });
            }
        } else if silent >= self.cfg.fixed_pause {
            self.end_user_turn();
        }
    }

    fn on_prediction(&mut self, id: u64, complete: f32) {
        let Some(u) = self.user.as_mut() else { return };
        let Some((asked, voiced)) = u.asked.filter(|a| a.0 == id) else {
            return; // stale: the caller spoke again since
        };
        debug_assert_eq!(asked, id);
        u.asked = None;
        if complete < self.cfg.turn_threshold {
            u.incomplete_at = Some(voiced);
        }
        self.event(
            "turn_prediction",
            json!({"complete": (f64::from(complete) * 1000.0).round() / 1000.0}),
        );
        if complete >= self.cfg.turn_threshold {
            self.end_user_turn();
        } else if let Some(u) = self.user.as_mut() {
            u.said_incomplete = true;
        }
    }

    /// Tells the STT the utterance ended (without deciding anything about the turn).
    fn end_user_turn_audio(&mut self) {
        if self.cfg.has_stt && self.stt_open {
            self.stt_open = false;
            self.stt_pending += 1;
            self.act(Action::Stt(SttInput::SpeechEnd));
        }
    }

    /// Speech (re)starts for the STT: per-utterance providers buffer from here.
    fn open_stt(&mut self) {
        if self.cfg.has_stt && !self.stt_open {
            self.stt_open = true;
            self.act(Action::Stt(SttInput::SpeechStart));
        }
    }

    fn end_user_turn(&mut self) {
        let Some(u) = self.user.take() else { return };
        self.end_user_turn_audio();
        self.usage.stt_audio_seconds += (u.audio.len() as f64 / RATE * 100.0).round() / 100.0;
        self.turn_ended_at = Some(self.now);
        self.event(
            "user_turn_end",
            json!({"speech_ms": ms(u.voiced), "silence_ms": ms(self.now - u.last_voiced)}),
        );
        self.awaiting = Some((self.now, u.onset, u.last_voiced));
        if self.cfg.has_stt {
            self.agent = Agent::AwaitingTranscript;
            if self.cfg.has_llm {
                self.response_deadline = Some(self.now + self.cfg.response_timeout);
            }
            if self.stt_pending == 0 {
                // Everything said was transcribed already (the turn's last words came back
                // while it was still open).
                self.finish_turn_with_transcript();
            }
        } else {
            self.awaiting = None;
            self.silence_since = Some(self.now);
        }
    }

    // ---- transcripts -------------------------------------------------------------------

    fn on_stt(&mut self, ev: SttEvent) {
        match ev {
            SttEvent::Interim { text } => {
                // A long interim over the agent commits a barge-in early.
                if self.interruption.is_some()
                    && !is_backchannel(&text)
                    && text.split_whitespace().count() >= 3
                {
                    self.resolve_interruption(true, Some(text));
                }
            }
            SttEvent::Final { text, words } => {
                let text = text.trim().to_string();
                if self.stt_discard > 0 {
                    // The transcript of a backchannel or a noise already dismissed.
                    self.stt_discard -= 1;
                    self.stt_pending = self.stt_pending.saturating_sub(1);
                    return;
                }
                if let Some(i) = &self.interruption {
                    if i.deadline.is_some() && !i.blip {
                        // The transcript of a short interruption decides it.
                        let real = !text.is_empty() && !is_backchannel(&text);
                        self.stt_pending = self.stt_pending.saturating_sub(1);
                        if real {
                            // The agent stops; the caller's turn goes on until turn-taking
                            // says it ended (they often go on after "Excuse me.").
                            push_words(&mut self.transcript, &text);
                            self.words.extend(words);
                            self.stt_final_at = Some(self.now);
                            self.resolve_interruption(true, Some(text));
                        } else {
                            self.resolve_interruption(false, Some(text));
                        }
                        return;
                    }
                }
                self.stt_pending = self.stt_pending.saturating_sub(1);
                push_words(&mut self.transcript, &text);
                self.words.extend(words);
                self.stt_final_at = Some(self.now);
                if self.agent == Agent::AwaitingTranscript
                    && self.user.is_none()
                    && self.stt_pending == 0
                {
                    self.finish_turn_with_transcript();
                }
            }
            SttEvent::Error(e) => {
                self.stt_pending = self.stt_pending.saturating_sub(1);
                self.error("stt", &e.to_string());
                if self.agent == Agent::AwaitingTranscript
                    && self.user.is_none()
                    && self.stt_pending == 0
                {
                    if self.transcript.is_empty() {
                        self.awaiting = None;
                        self.response_deadline = None;
                        self.agent = Agent::Idle;
                        self.speak(
                            ReplyKind::Fallback,
                            &self.cfg.fallback_message.clone(),
                            true,
                        );
                    } else {
                        self.finish_turn_with_transcript();
                    }
                }
            }
        }
    }

    /// The caller's turn is over and transcribed: keep it and answer.
    fn finish_turn_with_transcript(&mut self) {
        let text = std::mem::take(&mut self.transcript);
        let words = std::mem::take(&mut self.words);
        let (ended_at, onset, last_voiced) = self
            .awaiting
            .take()
            .unwrap_or((self.now, self.now, self.now));
        if self.stt_final_at.is_none() {
            self.stt_final_at = Some(self.now);
        }
        if text.is_empty() {
            // Noise: nothing to answer.
            self.agent = Agent::Idle;
            self.response_deadline = None;
            self.silence_since = Some(self.now);
            self.event("empty_transcript", json!({}));
            return;
        }
        self.reprompts = 0;
        let turn = TurnRecord {
            speaker: "user",
            text: text.clone(),
            start_ms: ms(onset),
            end_ms: ms(last_voiced),
            interrupted: false,
            words: (!words.is_empty()).then_some(words),
            tool: None,
        };
        self.turns.push(turn.clone());
        self.act(Action::Turn(turn));
        self.messages.push(json!({"role": "user", "content": text}));
        if self.cfg.has_llm {
            self.turn_ended_at = Some(ended_at);
            self.pending_latency = Some((last_voiced, ended_at));
            self.start_llm();
        } else {
            self.agent = Agent::Idle;
            self.silence_since = Some(self.now);
        }
    }
}

impl Conversation {
    // ---- replies -------------------------------------------------------------------------

    fn start_llm(&mut self) {
        self.cancel_reply();
        let id = self.id();
        let mut r = Reply::new(id, ReplyKind::Llm, self.now);
        r.llm_active = true;
        r.llm_done = false;
        self.reply = Some(r);
        self.agent = Agent::Replying;
        self.usage.llm_requests += 1;
        if self.response_deadline.is_none() {
            self.response_deadline = Some(self.now + self.cfg.response_timeout);
        }
        self.act(Action::StartLlm {
            reply: id,
            messages: self.messages.clone(),
        });
    }

    /// Cancels whatever reply is under way (LLM, TTS, queued audio).
    fn cancel_reply(&mut self) {
        if let Some(mut r) = self.reply.take() {
            self.abandon_tools(&mut r, "cancelled: the reply was dropped");
            // Tools that ran are part of the call even if the reply is dropped.
            for (_, t) in std::mem::take(&mut r.tool_entries) {
                self.turns.push(t.clone());
                self.act(Action::Turn(t));
            }
            if r.llm_active && !r.llm_done {
                self.act(Action::CancelLlm { reply: r.id });
            }
            if r.segments.iter().any(|s| !s.done) {
                self.act(Action::CancelTts);
            }
            if r.queued > r.played {
                self.act(Action::ClearPlayback);
            }
        }
    }

    /// Speaks a fixed text (greeting, reprompt, goodbye, fallback) as its own reply.
    fn speak(&mut self, kind: ReplyKind, text: &str, local: bool) {
        self.cancel_reply();
        let id = self.id();
        let mut r = Reply::new(id, kind, self.now);
        let seg = self.id();
        r.segments.push(Segment::new(seg, text.to_string()));
        r.first_tts_request_at = Some(self.now);
        self.reply = Some(r);
        self.agent = Agent::Replying;
        self.silence_since = None;
        self.usage.tts_characters += text.chars().count() as u64;
        self.act(Action::Synthesize {
            seg,
            text: text.to_string(),
            local,
        });
    }

    fn on_llm(&mut self, reply: u64, event: Result<LlmEvent, ProviderError>) {
        let current = self
            .reply
            .as_ref()
            .is_some_and(|r| r.id == reply && r.llm_active);
        if !current {
            return;
        }
        match event {
            Ok(LlmEvent::Token(t)) => {
                let now = self.now;
                let r = self.reply.as_mut().expect("checked");
                r.first_token_at.get_or_insert(now);
                r.pending_text.push_str(&t);
                while let Some(end) =
                    sentence_end(&self.reply.as_ref().expect("checked").pending_text)
                {
                    let r = self.reply.as_mut().expect("checked");
                    let sentence: String = r.pending_text.drain(..end).collect();
                    self.push_segment(sentence);
                }
            }
            Ok(LlmEvent::ToolCall {
                id,
                name,
                arguments,
            }) => {
                // Run once the round is complete (`Done`): the model may call several.
                if let Some(r) = self.reply.as_mut() {
                    r.tool_calls.push((id, name, arguments));
                }
            }
            Ok(LlmEvent::Done { usage, .. }) => {
                if let Some(LlmUsage {
                    prompt_tokens,
                    completion_tokens,
                }) = usage
                {
                    self.usage.prompt_tokens += prompt_tokens;
                    self.usage.completion_tokens += completion_tokens;
                }
                let rest = {
                    let r = self.reply.as_mut().expect("checked");
                    r.llm_done = true;
                    r.llm_active = false;
                    std::mem::take(&mut r.pending_text)
                };
                if !rest.trim().is_empty() {
                    self.push_segment(rest);
                }
                if self
                    .reply
                    .as_ref()
                    .is_some_and(|r| !r.tool_calls.is_empty())
                {
                    self.run_tools();
                    return;
                }
                let nothing = self.reply.as_ref().is_some_and(|r| r.segments.is_empty());
                if nothing {
                    // The model chose to say nothing.
                    self.reply = None;
                    self.agent = Agent::Idle;
                    self.response_deadline = None;
                    self.silence_since = Some(self.now);
                } else {
                    self.maybe_finish_reply();
                }
            }
            Err(e) => {
                self.error("llm", &e.to_string());
                let played_any = self.reply.as_ref().is_some_and(|r| r.queued > 0);
                let after_tools = self
                    .reply
                    .as_ref()
                    .is_some_and(|r| r.tool_rounds > 0 && r.segments.len() == r.round_from);
                if let Some(r) = self.reply.as_mut() {
                    r.llm_done = true;
                    r.llm_active = false;
                    r.pending_text.clear();
                    r.tool_calls.clear();
                }
                if after_tools {
                    // The answer to a tool's result failed: say so after what is playing,
                    // in the built-in voice, rather than leave the caller waiting.
                    self.push_segment_in(self.cfg.fallback_message.clone(), true);
                    self.maybe_finish_reply();
                } else if played_any {
                    self.maybe_finish_reply();
                } else {
                    self.response_deadline = None;
                    self.speak(
                        ReplyKind::Fallback,
                        &self.cfg.fallback_message.clone(),
                        true,
                    );
                }
            }
        }
    }

    fn push_segment(&mut self, text: String) {
        self.push_segment_in(text, false);
    }

    // ---- tools -------------------------------------------------------------------------

    /// The LLM round ended with tool calls: check and run them. Built-ins act here; webhook
    /// tools go to the driver ([`Action::RunTool`]) and answer with [`Event::ToolResult`].
    fn run_tools(&mut self) {
        let now = self.now;
        let r = self.reply.as_mut().expect("a reply is under way");
        let calls = std::mem::take(&mut r.tool_calls);
        r.tool_rounds += 1;
        let too_many = r.tool_rounds > self.cfg.max_tool_rounds;
        let round_text = r.text_of(r.round_from..r.segments.len());
        r.round_from = r.segments.len();
        r.round_spoke = !round_text.trim().is_empty();
        let reply_id = r.id;
        // The assistant message that asked for the tools (OpenAI requires it before their
        // results), with the text said in the same round.
        let tool_calls: Vec<Value> = calls
            .iter()
            .map(|(id, name, args)| {
                json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}})
            })
            .collect();
        self.messages.push(json!({
            "role": "assistant",
            "content": if round_text.is_empty() { Value::Null } else { Value::String(round_text) },
            "tool_calls": tool_calls,
        }));
        for (call_id, name, args) in calls {
            let arguments: Value =
                serde_json::from_str(&args).unwrap_or_else(|_| Value::String(args.clone()));
            self.push_tool_entry(
                "tool_call",
                format!("{name}({args})"),
                json!({"id": call_id, "name": name, "arguments": arguments}),
            );
            self.executions.push(ActionExecution {
                tool: name.clone(),
                call_id: call_id.clone(),
                arguments: arguments.clone(),
                result: None,
                error: None,
                started_ms: ms(now),
                duration_ms: None,
            });
            self.event("tool_call", json!({"name": name, "id": call_id}));
            let tool = self.cfg.tools.iter().find(|t| t.name() == name).cloned();
            let outcome: Option<Result<Value, String>> = if too_many {
                Some(Err(
                    "too many tool calls in one reply; answer the caller without tools".into(),
                ))
            } else {
                match tool {
                    None => Some(Err(format!(
                        "there is no tool named {name}; the tools are: {}",
                        self.cfg
                            .tools
                            .iter()
                            .map(|t| t.name().to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))),
                    Some(tool) => match tool.check_arguments(&args) {
                        Err(e) => Some(Err(e)),
                        Ok(a) => self.run_tool(reply_id, &call_id, &tool, a),
                    },
                }
            };
            if let Some(result) = outcome {
                self.tool_done(&call_id, result);
            }
        }
        let r = self.reply.as_mut().expect("a reply is under way");
        if r.pending_tools.is_empty() {
            self.tools_complete();
        } else {
            r.tools_since = Some(now);
            r.filler_said = false;
            // The filler (and the tool's answer) stand in for the reply audio.
            self.response_deadline = None;
        }
    }

    /// Runs one checked tool call; `None` while it runs elsewhere.
    fn run_tool(
        &mut self,
        reply: u64,
        call_id: &str,
        tool: &Tool,
        args: Value,
    ) -> Option<Result<Value, String>> {
        let r = self.reply.as_mut().expect("a reply is under way");
        match tool {
            Tool::EndCall { .. } => {
                r.after = Some(After::Hangup("agent_hangup"));
                Some(Ok(json!({"status": "the call ends after your last words"})))
            }
            Tool::TransferCall { .. } => {
                let to = args["destination"].as_str().unwrap_or_default().to_string();
                r.after = Some(After::Transfer(to.clone()));
                Some(Ok(json!({"status": "transferring", "destination": to})))
            }
            Tool::SendDtmf { .. } => {
                let digits = args["digits"].as_str().unwrap_or_default().to_string();
                if let Err(e) = check_dtmf(&digits) {
                    return Some(Err(e));
                }
                self.act(Action::SendDtmf(digits.clone()));
                Some(Ok(json!({"status": "sent", "digits": digits})))
            }
            Tool::Webhook(w) => {
                r.pending_tools.push(call_id.to_string());
                self.act(Action::RunTool {
                    reply,
                    call_id: call_id.to_string(),
                    name: w.name.clone(),
                    arguments: args,
                });
                None
            }
        }
    }

    fn push_tool_entry(&mut self, speaker: &'static str, text: String, tool: Value) {
        let now = self.now;
        let r = self.reply.as_mut().expect("a reply is under way");
        let at = r.segments.len();
        r.tool_entries.push((
            at,
            TurnRecord {
                speaker,
                text,
                start_ms: ms(now),
                end_ms: ms(now),
                interrupted: false,
                words: None,
                tool: Some(tool),
            },
        ));
    }

    /// A tool answered (or failed): the LLM is told, the execution recorded.
    fn tool_done(&mut self, call_id: &str, result: Result<Value, String>) {
        let now = self.now;
        let (name, content) = {
            let Some(x) = self
                .executions
                .iter_mut()
                .rev()
                .find(|x| x.call_id == call_id)
            else {
                return;
            };
            x.duration_ms = Some(ms(now).saturating_sub(x.started_ms));
            let content = match &result {
                Ok(Value::String(s)) => s.clone(),
                Ok(v) => v.to_string(),
                Err(e) => json!({"error": e}).to_string(),
            };
            match &result {
                Ok(v) => x.result = Some(v.clone()),
                Err(e) => x.error = Some(e.clone()),
            }
            (x.tool.clone(), content)
        };
        if let Some(r) = self.reply.as_mut() {
            r.pending_tools.retain(|id| id != call_id);
        }
        let detail = match &result {
            Ok(v) => json!({"id": call_id, "name": name, "result": v}),
            Err(e) => json!({"id": call_id, "name": name, "error": e}),
        };
        if result.is_err() {
            self.event("tool_error", json!({"name": name, "id": call_id}));
        }
        if self.reply.is_some() {
            self.push_tool_entry("tool_result", content.clone(), detail);
        }
        self.messages
            .push(json!({"role": "tool", "tool_call_id": call_id, "content": content}));
    }

    fn on_tool_result(&mut self, reply: u64, call_id: String, result: Result<Value, String>) {
        let current = self
            .reply
            .as_ref()
            .is_some_and(|r| r.id == reply && r.pending_tools.contains(&call_id));
        if !current {
            return; // a dropped reply's tool: its result was already given up on
        }
        self.tool_done(&call_id, result);
        if self
            .reply
            .as_ref()
            .is_some_and(|r| r.pending_tools.is_empty())
        {
            self.tools_complete();
        }
    }

    /// Every tool of the round answered: the LLM goes on with their results, unless the call
    /// is ending or being transferred.
    fn tools_complete(&mut self) {
        let now = self.now;
        let r = self.reply.as_mut().expect("a reply is under way");
        r.tools_since = None;
        match r.after.clone() {
            Some(after) => {
                r.llm_done = true;
                r.llm_active = false;
                // Nothing said in the round that ended or moved the call (a filler while an
                // earlier tool ran does not count): the caller still hears why.
                if !r.round_spoke {
                    let text = match after {
                        After::Hangup(_) => self.cfg.end_call_message.clone(),
                        After::Transfer(_) => self.cfg.transfer_message.clone(),
                    };
                    self.push_segment(text);
                }
                self.maybe_finish_reply();
            }
            None => {
                r.llm_active = true;
                r.llm_done = false;
                r.round_from = r.segments.len();
                let id = r.id;
                self.usage.llm_requests += 1;
                self.response_deadline = Some(now + self.cfg.response_timeout);
                self.act(Action::StartLlm {
                    reply: id,
                    messages: self.messages.clone(),
                });
            }
        }
    }

    /// The LLM history must answer every tool call it made: tools still running when their
    /// reply is dropped are answered "cancelled" (their late results are ignored).
    fn abandon_tools(&mut self, r: &mut Reply, why: &str) {
        let now = self.now;
        for call_id in std::mem::take(&mut r.pending_tools) {
            if let Some(x) = self
                .executions
                .iter_mut()
                .rev()
                .find(|x| x.call_id == call_id)
            {
                x.error = Some(why.to_string());
                x.duration_ms = Some(ms(now).saturating_sub(x.started_ms));
            }
            self.messages.push(json!({
                "role": "tool", "tool_call_id": call_id, "content": json!({"error": why}).to_string()
            }));
        }
    }

    /// A tool is slow: say the filler once, between sentences, never over one.
    fn maybe_say_filler(&mut self) {
        let now = self.now;
        let due = self.reply.as_ref().is_some_and(|r| {
            !r.pending_tools.is_empty()
                && !r.filler_said
                && !r.paused
                && r.tools_since
                    .is_some_and(|t| now >= t + self.cfg.tool_filler_after)
                && r.played >= r.queued
                && r.segments.iter().all(|s| s.done)
        });
        if due {
            if let Some(r) = self.reply.as_mut() {
                r.filler_said = true;
            }
            self.event("tool_filler", json!({}));
            self.push_segment(self.cfg.filler_message.clone());
        }
    }

    fn push_segment_in(&mut self, text: String, local: bool) {
        let text = text.trim().to_string();
        if text.is_empty() {
            return;
        }
        let seg = self.id();
        let now = self.now;
        let r = self.reply.as_mut().expect("a reply is under way");
        r.first_sentence_at.get_or_insert(now);
        r.first_tts_request_at.get_or_insert(now);
        r.segments.push(Segment::new(seg, text.clone()));
        self.usage.tts_characters += text.chars().count() as u64;
        self.act(Action::Synthesize { seg, text, local });
    }

    fn on_tts_audio(&mut self, seg: u64, samples: Vec<i16>) {
        let now = self.now;
        let Some(r) = self.reply.as_mut() else { return };
        let Some(s) = r.segments.iter_mut().find(|s| s.id == seg) else {
            return; // a cancelled reply's audio
        };
        if samples.is_empty() {
            return;
        }
        s.samples += samples.len();
        r.queued += samples.len();
        r.first_audio_at.get_or_insert(now);
        self.usage.tts_audio_seconds += samples.len() as f64 / RATE;
        self.echo_ref = self.echo_ref.max(rms(&samples));
        // Audio is ready: the fallback timer is no longer needed.
        self.response_deadline = None;
        self.act(Action::Play(samples));
    }

    fn on_tts_done(&mut self, seg: u64, error: Option<ProviderError>) {
        let Some(r) = self.reply.as_mut() else { return };
        let Some(s) = r.segments.iter_mut().find(|s| s.id == seg) else {
            return;
        };
        s.done = true;
        if let Some(e) = error {
            let kind = r.kind;
            let had_audio = r.queued > 0;
            self.error("tts", &e.to_string());
            if !had_audio && kind != ReplyKind::Fallback {
                self.response_deadline = None;
                // Keep what the LLM said in the history; the caller hears the fallback.
                let text = self
                    .reply
                    .as_ref()
                    .map(|r| r.full_text())
                    .unwrap_or_default();
                if !text.is_empty() && kind == ReplyKind::Llm {
                    self.messages
                        .push(json!({"role": "assistant", "content": text}));
                }
                self.reply = None;
                self.speak(
                    ReplyKind::Fallback,
                    &self.cfg.fallback_message.clone(),
                    true,
                );
                return;
            }
        }
        self.maybe_finish_reply();
    }

    fn on_played(&mut self, n: usize) {
        let now = self.now;
        self.echo_until = now + Duration::from_millis(300);
        if let Some(r) = self.reply.as_mut() {
            r.mark_played(n, now);
            r.last_played_at = Some(now);
            if r.first_played_at.is_none() {
                r.first_played_at = Some(now);
                let kind = r.kind;
                self.event(
                    "agent_speech_start",
                    json!({"kind": format!("{kind:?}").to_lowercase()}),
                );
                self.record_latency();
            }
        }
        if let Some(i) = self.interruption.as_mut() {
            // Still sending after the pause was asked: the agent kept talking until now.
            i.stopped_at = Some(now);
        }
        self.maybe_finish_reply();
    }

    fn record_latency(&mut self) {
        let Some((last_voiced, ended_at)) = self.pending_latency.take() else {
            return;
        };
        let Some(r) = self.reply.as_ref() else { return };
        if r.kind != ReplyKind::Llm {
            return;
        }
        let first_played = r.first_played_at.unwrap_or(self.now);
        let v2v = first_played.saturating_sub(last_voiced);
        let eot = ended_at.saturating_sub(last_voiced);
        let stt = self.stt_final_at.map(|t| t.saturating_sub(ended_at));
        let ttft = r.first_token_at.map(|t| t.saturating_sub(r.started_at));
        let ttfs = r.first_sentence_at.map(|t| t.saturating_sub(r.started_at));
        // TTS: from the request of the segment that played first to its first audio.
        let tts = match (r.first_sentence_at, r.first_audio_at) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a)),
            _ => None,
        };
        let providers =
            eot + stt.unwrap_or_default() + ttfs.unwrap_or_default() + tts.unwrap_or_default();
        let overhead = v2v.saturating_sub(providers);
        let turn = self.turns.len();
        self.latencies.push(TurnLatency {
            turn,
            voice_to_voice_ms: Some(msf(v2v)),
            end_of_turn_ms: Some(msf(eot)),
            stt_ms: stt.map(msf),
            llm_first_token_ms: ttft.map(msf),
            llm_first_sentence_ms: ttfs.map(msf),
            tts_first_audio_ms: tts.map(msf),
            overhead_ms: Some(msf(overhead)),
        });
        self.stt_final_at = None;
    }

    fn maybe_finish_reply(&mut self) {
        let done = self
            .reply
            .as_ref()
            .is_some_and(|r| r.finished() && !r.paused);
        if !done {
            return;
        }
        let r = self.reply.take().expect("checked");
        self.agent = Agent::Idle;
        self.response_deadline = None;
        let entries = r.entries(false, self.now);
        let spoke = entries.iter().any(|t| t.speaker == "agent");
        for t in entries {
            self.turns.push(t.clone());
            self.act(Action::Turn(t));
        }
        // Earlier rounds' text went into the history with their tool calls.
        let text = r.text_of(r.round_from..r.segments.len());
        if !text.is_empty() {
            self.messages
                .push(json!({"role": "assistant", "content": text}));
        }
        if spoke {
            self.event("agent_speech_end", json!({}));
        }
        self.silence_since = Some(self.now);
        if let Some(after) = r.after {
            self.ended = true;
            match after {
                After::Hangup(reason) => self.act(Action::Hangup { reason }),
                After::Transfer(to) => self.act(Action::Transfer { to }),
            }
        } else if r.kind == ReplyKind::Goodbye {
            if let Some(reason) = self.hangup_after_reply.take() {
                self.ended = true;
                self.act(Action::Hangup { reason });
            }
        }
    }

    fn resolve_interruption(&mut self, real: bool, caller_text: Option<String>) {
        let Some(i) = self.interruption.take() else {
            return;
        };
        let kept = i.stopped_at.map(|s| ms(s.saturating_sub(i.onset)));
        self.interruptions.push(Interruption {
            at_ms: ms(i.onset),
            agent_kept_talking_ms: Some(kept.unwrap_or(0)),
            false_interruption: !real,
            caller_text: caller_text.clone().filter(|t| !t.is_empty()),
        });
        if real {
            self.event("interruption", json!({}));
            if let Some(mut r) = self.reply.take() {
                self.abandon_tools(&mut r, "cancelled: the caller interrupted");
                let played = r.played_text_of(r.round_from..r.segments.len());
                if r.llm_active && !r.llm_done {
                    self.act(Action::CancelLlm { reply: r.id });
                }
                if r.segments.iter().any(|s| !s.done) {
                    self.act(Action::CancelTts);
                }
                self.act(Action::ClearPlayback);
                let mut entries = r.entries(true, i.onset);
                if let Some(last) = entries.iter_mut().rev().find(|t| t.speaker == "agent") {
                    last.interrupted = true;
                }
                for t in entries {
                    self.turns.push(t.clone());
                    self.act(Action::Turn(t));
                }
                if r.played > 0 && r.kind != ReplyKind::Fallback && !played.is_empty() {
                    self.messages
                        .push(json!({"role": "assistant", "content": played}));
                }
            }
            self.agent = Agent::Idle;
            self.response_deadline = None;
        } else {
            self.event("false_interruption", json!({"text": caller_text}));
            // The backchannel is not a turn: forget it (and the transcripts still to come for
            // it) and resume the agent.
            self.user = None;
            self.transcript.clear();
            self.words.clear();
            self.stt_discard = self.stt_pending;
            if let Some(r) = self.reply.as_mut() {
                r.paused = false;
            }
            self.act(Action::PausePlayback(false));
            self.maybe_finish_reply();
        }
    }

    fn response_timed_out(&mut self) {
        let waiting = matches!(self.agent, Agent::AwaitingTranscript | Agent::Replying)
            && self
                .reply
                .as_ref()
                .is_none_or(|r| r.queued == 0 && r.kind == ReplyKind::Llm);
        if !waiting {
            return;
        }
        let stage = if self.agent == Agent::AwaitingTranscript {
            "stt"
        } else {
            "llm"
        };
        self.error(
            stage,
            &format!(
                "no reply audio {} ms after the caller's turn ended",
                self.cfg.response_timeout.as_millis()
            ),
        );
        self.awaiting = None;
        self.transcript.clear();
        self.words.clear();
        // A transcript that comes after this belongs to the turn given up on.
        self.stt_discard = self.stt_pending;
        self.speak(
            ReplyKind::Fallback,
            &self.cfg.fallback_message.clone(),
            true,
        );
    }

    fn on_silence(&mut self) {
        if self.reprompts < self.cfg.max_reprompts {
            self.reprompts += 1;
            self.event("reprompt", json!({"n": self.reprompts}));
            let text = self.cfg.reprompt_message.clone();
            self.speak(ReplyKind::Reprompt, &text, false);
        } else {
            self.event("inactivity", json!({}));
            self.hangup_after_reply = Some("inactivity");
            let text = self.cfg.goodbye_message.clone();
            self.speak(ReplyKind::Goodbye, &text, false);
        }
    }

    fn error(&mut self, stage: &'static str, message: &str) {
        self.errors
            .push(json!({"stage": stage, "message": message, "at_ms": ms(self.now)}));
        self.act(Action::Error {
            stage,
            message: message.to_string(),
        });
    }

    // ---- records -----------------------------------------------------------------------

    pub fn turns(&self) -> &[TurnRecord] {
        &self.turns
    }

    pub fn messages(&self) -> &[Value] {
        &self.messages
    }

    pub fn interruptions(&self) -> &[Interruption] {
        &self.interruptions
    }

    pub fn latencies(&self) -> &[TurnLatency] {
        &self.latencies
    }

    pub fn usage(&self) -> &Usage {
        &self.usage
    }

    pub fn turn_events(&self) -> &[Value] {
        &self.events
    }

    pub fn errors(&self) -> &[Value] {
        &self.errors
    }

    /// `action_executions`: every tool call with its arguments, result or error and timing.
    pub fn action_executions(&self) -> &[ActionExecution] {
        &self.executions
    }

    /// `action_summary`: counts by tool and outcome, and the tools in the order used.
    pub fn action_summary(&self) -> Value {
        let failed = self.executions.iter().filter(|x| x.error.is_some()).count();
        let mut tools: Vec<&str> = Vec::new();
        for x in &self.executions {
            if !tools.contains(&x.tool.as_str()) {
                tools.push(&x.tool);
            }
        }
        json!({
            "total": self.executions.len(),
            "succeeded": self.executions.len() - failed,
            "failed": failed,
            "tools_used": tools,
        })
    }

    /// `tool_usage` (diagnostics): per tool, calls, errors and durations.
    pub fn tool_usage(&self) -> Value {
        let mut m = serde_json::Map::new();
        for x in &self.executions {
            let e = m
                .entry(x.tool.clone())
                .or_insert_with(|| json!({"calls": 0, "errors": 0, "total_ms": 0, "max_ms": 0}));
            e["calls"] = json!(e["calls"].as_u64().unwrap_or(0) + 1);
            if x.error.is_some() {
                e["errors"] = json!(e["errors"].as_u64().unwrap_or(0) + 1);
            }
            let d = x.duration_ms.unwrap_or(0);
            e["total_ms"] = json!(e["total_ms"].as_u64().unwrap_or(0) + d);
            e["max_ms"] = json!(e["max_ms"].as_u64().unwrap_or(0).max(d));
        }
        Value::Object(m)
    }

    /// The call is over: an agent turn cut by the hang-up is kept with the words played.
    pub fn finish(&mut self, now: Duration) {
        self.now = now;
        if let Some(mut r) = self.reply.take() {
            self.abandon_tools(&mut r, "cancelled: the call ended");
            for t in r.entries(true, now) {
                self.turns.push(t.clone());
                self.act(Action::Turn(t));
            }
        }
        self.ended = true;
    }

    /// `transcript`: one `Agent: …` / `User: …` line per turn.
    pub fn transcript_text(&self) -> String {
        transcript_text(&self.turns)
    }

    /// `latency_metrics`: per turn and per call (p50, p90, p99, min, max, values).
    pub fn latency_metrics(&self) -> Value {
        latency_metrics(&self.latencies)
    }
}

pub fn transcript_text(turns: &[TurnRecord]) -> String {
    let mut s = String::new();
    for t in turns
        .iter()
        .filter(|t| matches!(t.speaker, "agent" | "user"))
    {
        if !s.is_empty() {
            s.push('\n');
        }
        s.push_str(if t.speaker == "agent" {
            "Agent: "
        } else {
            "User: "
        });
        s.push_str(&t.text);
    }
    s
}

/// Summary statistics of one series (nearest-rank percentiles).
pub fn stats(values: &[f64]) -> Value {
    if values.is_empty() {
        return Value::Null;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| v[((p / 100.0 * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    json!({
        "p50": pct(50.0), "p90": pct(90.0), "p99": pct(99.0),
        "min": v[0], "max": v[v.len() - 1], "values": values,
    })
}

pub fn latency_metrics(turns: &[TurnLatency]) -> Value {
    let series = |f: fn(&TurnLatency) -> Option<f64>| -> Value {
        stats(&turns.iter().filter_map(f).collect::<Vec<_>>())
    };
    json!({
        "turns": turns,
        "voice_to_voice_ms": series(|t| t.voice_to_voice_ms),
        "end_of_turn_ms": series(|t| t.end_of_turn_ms),
        "stt_ms": series(|t| t.stt_ms),
        "llm_first_token_ms": series(|t| t.llm_first_token_ms),
        "llm_first_sentence_ms": series(|t| t.llm_first_sentence_ms),
        "tts_first_audio_ms": series(|t| t.tts_first_audio_ms),
        "overhead_ms": series(|t| t.overhead_ms),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scripted world around the core: the caller's voice activity by time, a media queue
    /// played 160 samples per 20 ms tick, and providers that answer after set delays.
    struct World {
        c: Conversation,
        now: Duration,
        queue: usize,
        paused: bool,
        /// Time ranges (ms) in which the caller speaks.
        speech: Vec<(u64, u64)>,
        /// What the STT returns for the next utterances.
        finals: VecDeque<String>,
        stt_delay: Duration,
        llm_reply: Result<Vec<&'static str>, ProviderError>,
        llm_delay: Duration,
        tts_delay: Duration,
        turn_complete: f32,
        turn_delay: Duration,
        pending: Vec<(Duration, Ev)>,
        log: Vec<(u64, Action)>,
        played_total: usize,
        last_played_at: Option<Duration>,
        /// Amplitude of the caller's voiced frames.
        caller_level: i16,
        /// Scripted LLM rounds (one per request) taking precedence over `llm_reply`.
        llm_rounds: VecDeque<Vec<LlmEvent>>,
        /// How webhook tools answer, and after how long.
        tool_result: Result<Value, String>,
        tool_delay: Duration,
    }

    #[derive(Debug, Clone)]
    enum Ev {
        Stt(SttEvent),
        Llm(u64, Result<LlmEvent, ProviderError>),
        Audio(u64, usize),
        TtsDone(u64),
        Prediction(u64, f32),
        Tool(u64, String, Result<Value, String>),
    }

    impl World {
        fn new(cfg: Config) -> World {
            World {
                c: Conversation::new(cfg),
                now: Duration::ZERO,
                queue: 0,
                paused: false,
                speech: Vec::new(),
                finals: VecDeque::new(),
                stt_delay: Duration::from_millis(150),
                llm_reply: Ok(vec![
                    "Sure, ",
                    "I can help. ",
                    "What time ",
                    "works for you?",
                ]),
                llm_delay: Duration::from_millis(300),
                tts_delay: Duration::from_millis(100),
                turn_complete: 0.9,
                turn_delay: Duration::from_millis(20),
                pending: Vec::new(),
                log: Vec::new(),
                played_total: 0,
                last_played_at: None,
                caller_level: 4000,
                llm_rounds: VecDeque::new(),
                tool_result: Ok(json!({"found": true})),
                tool_delay: Duration::from_millis(200),
            }
        }

        fn take_actions(&mut self) {
            for a in self.c.drain() {
                let at = self.now;
                match &a {
                    Action::Play(s) => self.queue += s.len(),
                    Action::PausePlayback(p) => self.paused = *p,
                    Action::ClearPlayback => {
                        self.queue = 0;
                        self.paused = false;
                    }
                    Action::Stt(SttInput::SpeechEnd) => {
                        let text = self.finals.pop_front().unwrap_or_default();
                        self.pending.push((
                            at + self.stt_delay,
                            Ev::Stt(SttEvent::Final {
                                text,
                                words: vec![],
                            }),
                        ));
                    }
                    Action::PredictTurn { id, .. } => self.pending.push((
                        at + self.turn_delay,
                        Ev::Prediction(*id, self.turn_complete),
                    )),
                    Action::StartLlm { reply, .. } if !self.llm_rounds.is_empty() => {
                        let round = self.llm_rounds.pop_front().expect("checked");
                        let n = round.len() as u64;
                        for (i, e) in round.into_iter().enumerate() {
                            self.pending.push((
                                at + self.llm_delay + Duration::from_millis(30 * i as u64),
                                Ev::Llm(*reply, Ok(e)),
                            ));
                        }
                        self.pending.push((
                            at + self.llm_delay + Duration::from_millis(30 * n),
                            Ev::Llm(
                                *reply,
                                Ok(LlmEvent::Done {
                                    finish_reason: None,
                                    usage: None,
                                }),
                            ),
                        ));
                    }
                    Action::RunTool { reply, call_id, .. } => self.pending.push((
                        at + self.tool_delay,
                        Ev::Tool(*reply, call_id.clone(), self.tool_result.clone()),
                    )),
                    Action::StartLlm { reply, .. } => match &self.llm_reply {
                        Ok(tokens) => {
                            for (i, t) in tokens.iter().enumerate() {
                                self.pending.push((
                                    at + self.llm_delay + Duration::from_millis(30 * i as u64),
                                    Ev::Llm(*reply, Ok(LlmEvent::Token(t.to_string()))),
                                ));
                            }
                            self.pending.push((
                                at + self.llm_delay
                                    + Duration::from_millis(30 * tokens.len() as u64),
                                Ev::Llm(
                                    *reply,
                                    Ok(LlmEvent::Done {
                                        finish_reason: Some("stop".into()),
                                        usage: Some(LlmUsage {
                                            prompt_tokens: 10,
                                            completion_tokens: 5,
                                        }),
                                    }),
                                ),
                            ));
                        }
                        Err(e) => self
                            .pending
                            .push((at + self.llm_delay, Ev::Llm(*reply, Err(e.clone())))),
                    },
                    Action::CancelLlm { reply } => self
                        .pending
                        .retain(|(_, e)| !matches!(e, Ev::Llm(r, _) if r == reply)),
                    Action::Synthesize { seg, text, .. } => {
                        // 60 ms of audio per character, in two chunks.
                        let n = text.len() * 480;
                        self.pending
                            .push((at + self.tts_delay, Ev::Audio(*seg, n / 2)));
                        self.pending.push((
                            at + self.tts_delay + Duration::from_millis(10),
                            Ev::Audio(*seg, n - n / 2),
                        ));
                        self.pending.push((
                            at + self.tts_delay + Duration::from_millis(10),
                            Ev::TtsDone(*seg),
                        ));
                    }
                    Action::CancelTts => self
                        .pending
                        .retain(|(_, e)| !matches!(e, Ev::Audio(..) | Ev::TtsDone(_))),
                    _ => {}
                }
                self.log.push((ms(at), a));
            }
        }

        fn speaking(&self) -> bool {
            let t = ms(self.now);
            self.speech.iter().any(|&(a, b)| t >= a && t < b)
        }

        /// Runs until `until_ms`.
        fn run(&mut self, until_ms: u64) {
            while ms(self.now) < until_ms {
                self.now += FRAME;
                // Provider events due.
                self.pending.sort_by_key(|(t, _)| *t);
                while let Some(pos) = self.pending.iter().position(|(t, _)| *t <= self.now) {
                    let (_, e) = self.pending.remove(pos);
                    let now = self.now;
                    match e {
                        Ev::Stt(s) => self.c.handle(now, Event::Stt(s)),
                        Ev::Llm(r, ev) => self.c.handle(
                            now,
                            Event::Llm {
                                reply: r,
                                event: ev,
                            },
                        ),
                        Ev::Audio(seg, n) => self.c.handle(
                            now,
                            Event::TtsAudio {
                                seg,
                                samples: vec![3000; n],
                            },
                        ),
                        Ev::TtsDone(seg) => self.c.handle(now, Event::TtsDone { seg, error: None }),
                        Ev::Prediction(id, p) => self
                            .c
                            .handle(now, Event::TurnPrediction { id, complete: p }),
                        Ev::Tool(reply, call_id, result) => self.c.handle(
                            now,
                            Event::ToolResult {
                                reply,
                                call_id,
                                result,
                            },
                        ),
                    }
                    self.take_actions();
                }
                // Media tick: agent audio out, then the caller frame.
                if self.queue > 0 && !self.paused {
                    let n = self.queue.min(FRAME_SAMPLES);
                    self.queue -= n;
                    self.played_total += n;
                    self.last_played_at = Some(self.now);
                    self.c.handle(self.now, Event::AgentPlayed(n));
                    self.take_actions();
                }
                let voiced = self.speaking();
                let frame = vec![if voiced { self.caller_level } else { 0 }; FRAME_SAMPLES];
                self.c.handle(
                    self.now,
                    Event::Frame {
                        samples: &frame,
                        vad: if voiced { 0.95 } else { 0.02 },
                    },
                );
                self.take_actions();
                self.c.tick(self.now);
                self.take_actions();
            }
        }

        fn actions(&self) -> impl Iterator<Item = &(u64, Action)> {
            self.log.iter()
        }

        fn first(&self, f: impl Fn(&Action) -> bool) -> Option<u64> {
            self.log.iter().find(|(_, a)| f(a)).map(|(t, _)| *t)
        }
    }

    fn cfg() -> Config {
        Config {
            system_message: "You book tables.".into(),
            initial_message: Some("Hello, this is Ana.".into()),
            ..Config::default()
        }
    }

    #[test]
    fn greets_listens_answers_and_keeps_the_turns() {
        let mut w = World::new(cfg());
        w.c.start(Duration::ZERO);
        w.take_actions();
        w.speech = vec![(2000, 3500)];
        w.finals.push_back("I would like a table for two.".into());
        w.run(8000);
        let turns = w.c.turns();
        assert_eq!(turns.len(), 3, "{turns:?}");
        assert_eq!(
            (turns[0].speaker, turns[0].text.as_str()),
            ("agent", "Hello, this is Ana.")
        );
        assert_eq!(
            (turns[1].speaker, turns[1].text.as_str()),
            ("user", "I would like a table for two.")
        );
        assert_eq!(turns[1].start_ms, 2000);
        assert_eq!(turns[1].end_ms, 3480);
        assert_eq!(turns[2].text, "Sure, I can help. What time works for you?");
        assert!(!turns[2].interrupted);
        // The first sentence went to TTS before the LLM had finished.
        let synth: Vec<u64> = w
            .actions()
            .filter(|(_, a)| matches!(a, Action::Synthesize { .. }))
            .map(|(t, _)| *t)
            .collect();
        let done = w.first(|a| matches!(a, Action::Turn(t) if t.speaker == "agent" && t.text.starts_with("Sure"))).unwrap();
        assert_eq!(synth.len(), 3, "greeting + two sentences");
        assert!(synth[1] < synth[2]);
        // The LLM saw the system message and the caller's words.
        let msgs = w.c.messages();
        assert_eq!(msgs[0]["role"], "system");
        assert_eq!(msgs[1]["content"], "Hello, this is Ana.");
        assert_eq!(msgs[2]["content"], "I would like a table for two.");
        assert!(done > 3500);
        // Latency: turn end 200 ms of pause + 20 ms prediction; v2v covers stt + llm + tts.
        let lat = &w.c.latencies()[0];
        let eot = lat.end_of_turn_ms.unwrap();
        assert!((200.0..=260.0).contains(&eot), "{lat:?}");
        let v2v = lat.voice_to_voice_ms.unwrap();
        assert!(v2v >= eot + 150.0 + 300.0 + 100.0, "{lat:?}");
        assert!(lat.overhead_ms.unwrap() < 120.0, "{lat:?}");
        let m = w.c.latency_metrics();
        assert_eq!(m["voice_to_voice_ms"]["values"][0], v2v);
        assert_eq!(w.c.usage().prompt_tokens, 10);
        assert_eq!(w.c.transcript_text(), "Agent: Hello, this is Ana.\nUser: I would like a table for two.\nAgent: Sure, I can help. What time works for you?");
    }

    #[test]
    fn an_incomplete_turn_waits_for_more_speech() {
        let mut w = World::new(Config {
            initial_message: None,
            ..cfg()
        });
        w.turn_complete = 0.1;
        w.c.start(Duration::ZERO);
        w.speech = vec![(500, 1500), (2100, 2600)];
        w.finals.push_back("I would like a table for two.".into());
        w.run(6000);
        // The 600 ms pause was not the end (the model said incomplete, under max_pause).
        let ends: Vec<_> =
            w.c.turn_events()
                .iter()
                .filter(|e| e["type"] == "user_turn_end")
                .collect();
        assert_eq!(ends.len(), 1, "{:?}", w.c.turn_events());
        // Without a positive prediction the turn ends at max_pause.
        assert_eq!(ends[0]["at_ms"], 2580 + 1200);
        assert_eq!(w.c.turns()[0].start_ms, 500);
    }

    #[test]
    fn without_the_model_a_fixed_silence_ends_the_turn() {
        // Agent setting `turn_detection: "silence"` (or no model loaded).
        let mut w = World::new(Config {
            initial_message: None,
            has_turn_model: false,
            fixed_pause: Duration::from_millis(500),
            ..cfg()
        });
        w.c.start(Duration::ZERO);
        // A 300 ms pause inside the turn, then a 600 ms one.
        w.speech = vec![(500, 1200), (1500, 2100), (2700, 3200)];
        w.finals.push_back("I would like a table".into());
        w.finals.push_back("for two.".into());
        w.run(6000);
        assert!(predictions(&w).is_empty(), "the model is never asked");
        let ends = turn_ends(&w);
        assert_eq!(ends.len(), 2, "{:?}", w.c.turn_events());
        // Speech ends 20 ms before the scripted end (the last voiced frame); 500 ms later the
        // turn is over, the 300 ms pause did not end it.
        assert_eq!(ends[0]["at_ms"], 2080 + 500);
        assert_eq!(w.c.turns()[0].start_ms, 500);
    }

    fn predictions(w: &World) -> Vec<u64> {
        w.actions()
            .filter(|(_, a)| matches!(a, Action::PredictTurn { .. }))
            .map(|(t, _)| *t)
            .collect()
    }

    fn turn_ends(w: &World) -> Vec<Value> {
        w.c.turn_events()
            .iter()
            .filter(|e| e["type"] == "user_turn_end")
            .cloned()
            .collect()
    }

    #[test]
    fn real_speech_after_an_incomplete_verdict_asks_the_model_again() {
        let mut w = World::new(Config {
            initial_message: None,
            ..cfg()
        });
        w.turn_complete = 0.1;
        w.c.start(Duration::ZERO);
        w.speech = vec![(500, 1500), (2100, 2600)];
        w.finals.push_back("I would like a table for two.".into());
        w.run(6000);
        // Once per pause (200 ms into it), not on every silent frame of it.
        assert_eq!(predictions(&w), vec![1680, 2780], "{:?}", w.c.turn_events());
    }

    #[test]
    fn a_syllable_after_an_incomplete_verdict_keeps_it_without_asking_again() {
        let mut w = World::new(Config {
            initial_message: None,
            ..cfg()
        });
        w.turn_complete = 0.1;
        w.c.start(Duration::ZERO);
        // 100 ms of speech (under predict_min_speech) after the model said incomplete.
        w.speech = vec![(500, 1500), (2100, 2200)];
        w.finals.push_back("I would like a table for two.".into());
        w.run(6000);
        assert_eq!(predictions(&w), vec![1680], "{:?}", w.c.turn_events());
        // The verdict stands: the pause limit ends the turn, counted from the syllable.
        let ends = turn_ends(&w);
        assert_eq!(ends.len(), 1, "{:?}", w.c.turn_events());
        assert_eq!(ends[0]["at_ms"], 2180 + 1200);
    }

    #[test]
    fn a_syllable_after_a_complete_verdict_that_came_too_late_asks_again() {
        // The caller spoke again before the answer: the answer is stale and the new pause
        // is judged on its own, however short the new speech.
        let mut w = World::new(Config {
            initial_message: None,
            ..cfg()
        });
        w.turn_complete = 0.9;
        w.c.start(Duration::ZERO);
        // Asked at 1680, answered at 1780; the caller speaks again (100 ms) from 1700.
        w.turn_delay = Duration::from_millis(100);
        w.speech = vec![(500, 1500), (1700, 1800)];
        w.finals.push_back("Yes.".into());
        w.run(4000);
        assert_eq!(predictions(&w), vec![1680, 1980], "{:?}", w.c.turn_events());
        let ends = turn_ends(&w);
        assert_eq!(ends.len(), 1, "{:?}", w.c.turn_events());
        assert_eq!(ends[0]["at_ms"], 2080);
    }

    #[test]
    fn a_very_short_turn_is_not_judged_by_the_model() {
        let mut w = World::new(Config {
            initial_message: None,
            ..cfg()
        });
        w.c.start(Duration::ZERO);
        // 100 ms of voiced audio: a cough or a breath, nothing the model can judge.
        w.speech = vec![(500, 600)];
        w.finals.push_back(String::new());
        w.run(3000);
        assert!(predictions(&w).is_empty(), "{:?}", w.c.turn_events());
        let ends = turn_ends(&w);
        assert_eq!(ends.len(), 1, "{:?}", w.c.turn_events());
        // Ended by the fixed pause, as without a model.
        assert_eq!(ends[0]["at_ms"], 580 + 700);
        assert_eq!(ends[0]["silence_ms"], 700);
    }

    #[test]
    fn the_wanted_prediction_is_dropped_when_the_caller_speaks_again() {
        let mut w = World::new(Config {
            initial_message: None,
            ..cfg()
        });
        w.c.start(Duration::ZERO);
        w.speech = vec![(500, 1500), (1720, 2500)];
        w.finals.push_back("I would like a table for two.".into());
        assert_eq!(w.c.wanted_prediction(), None);
        w.run(1680);
        let asked = w
            .actions()
            .find_map(|(_, a)| match a {
                Action::PredictTurn { id, .. } => Some(*id),
                _ => None,
            })
            .expect("asked at 1680");
        assert_eq!(w.c.wanted_prediction(), Some(asked));
        // Answer withheld; the caller speaks again: nobody wants it any more.
        w.pending.clear();
        w.run(1740);
        assert_eq!(w.c.wanted_prediction(), None);
    }

    #[test]
    fn barge_in_pauses_at_once_then_cuts_the_agent() {
        let mut w = World::new(cfg());
        w.c.start(Duration::ZERO);
        w.take_actions();
        // The greeting is 19 chars * 60 ms ≈ 1.1 s of audio from ~120 ms; talk over it.
        w.speech = vec![(600, 1800)];
        w.finals
            .push_back("Actually I need to cancel my booking".into());
        w.run(5000);
        let pause = w.first(|a| *a == Action::PausePlayback(true)).unwrap();
        assert!(pause <= 600 + 40, "paused at {pause}");
        let clear = w.first(|a| *a == Action::ClearPlayback).unwrap();
        assert!((1060..=1120).contains(&clear), "cleared at {clear}");
        let i = &w.c.interruptions()[0];
        assert!(!i.false_interruption);
        assert!(i.agent_kept_talking_ms.unwrap() <= 40, "{i:?}");
        let greeting = &w.c.turns()[0];
        assert!(greeting.interrupted);
        assert!(
            greeting.text.len() < "Hello, this is Ana.".len(),
            "{greeting:?}"
        );
        assert_eq!(w.c.turns()[1].text, "Actually I need to cancel my booking");
        // The interrupted turn holds only what was played.
        assert_eq!(w.c.messages()[1]["content"], greeting.text.as_str());
    }

    #[test]
    fn a_backchannel_resumes_the_agent() {
        let mut w = World::new(cfg());
        w.c.start(Duration::ZERO);
        w.take_actions();
        w.speech = vec![(500, 760)];
        w.finals.push_back("uh-huh".into());
        w.run(4000);
        assert!(w.first(|a| *a == Action::PausePlayback(true)).is_some());
        assert!(w.first(|a| *a == Action::PausePlayback(false)).is_some());
        assert!(w.first(|a| *a == Action::ClearPlayback).is_none());
        assert!(w.c.interruptions()[0].false_interruption);
        let t = &w.c.turns()[0];
        assert_eq!(t.text, "Hello, this is Ana.");
        assert!(!t.interrupted);
        assert_eq!(w.c.turns().len(), 1, "the backchannel is no turn");
        assert_eq!(w.played_total, "Hello, this is Ana.".len() * 480);
    }

    #[test]
    fn a_short_interruption_that_transcribes_to_words_is_real() {
        let mut w = World::new(cfg());
        w.c.start(Duration::ZERO);
        w.take_actions();
        w.speech = vec![(500, 800)];
        w.finals.push_back("stop".into());
        w.run(5000);
        assert!(!w.c.interruptions()[0].false_interruption);
        assert!(w.c.turns()[0].interrupted);
        let user: Vec<_> = w.c.turns().iter().filter(|t| t.speaker == "user").collect();
        assert_eq!(user.len(), 1, "{:?}", w.c.turns());
        assert_eq!(user[0].text, "stop");
        assert_eq!((user[0].start_ms, user[0].end_ms), (500, 780));
        // One SpeechEnd for one utterance, and the LLM answered it.
        let ends = w
            .actions()
            .filter(|(_, a)| *a == Action::Stt(SttInput::SpeechEnd))
            .count();
        assert_eq!(ends, 1);
        assert!(w.first(|a| matches!(a, Action::StartLlm { .. })).is_some());
    }

    #[test]
    fn speaking_again_after_a_short_burst_commits_and_keeps_both_parts() {
        let mut w = World::new(cfg());
        w.c.start(Duration::ZERO);
        w.take_actions();
        w.speech = vec![(500, 800), (1100, 2000)];
        w.finals.push_back("wait".into());
        w.finals.push_back("I want to cancel".into());
        w.run(6000);
        let i = &w.c.interruptions()[0];
        assert!(!i.false_interruption, "{i:?}");
        let user: Vec<_> = w.c.turns().iter().filter(|t| t.speaker == "user").collect();
        assert_eq!(user.len(), 1, "{:?}", w.c.turns());
        assert_eq!(user[0].text, "wait I want to cancel");
        assert_eq!((user[0].start_ms, user[0].end_ms), (500, 1980));
    }

    #[test]
    fn a_blip_resumes_unless_speech_follows() {
        // A lone 60 ms blip: resumed after a short wait, nothing transcribed is kept.
        let mut w = World::new(cfg());
        w.c.start(Duration::ZERO);
        w.take_actions();
        w.speech = vec![(500, 560)];
        w.run(4000);
        assert!(w.c.interruptions()[0].false_interruption);
        assert_eq!(w.c.turns().len(), 1);
        assert!(!w.c.turns()[0].interrupted);
        // A blip followed by speech within 300 ms: one real interruption from the blip on.
        let mut w = World::new(cfg());
        w.c.start(Duration::ZERO);
        w.take_actions();
        w.speech = vec![(500, 560), (820, 1800)];
        w.finals.push_back("excuse me are you open".into());
        w.run(5000);
        assert_eq!(w.c.interruptions().len(), 1, "{:?}", w.c.interruptions());
        assert!(!w.c.interruptions()[0].false_interruption);
        assert_eq!(w.c.interruptions()[0].at_ms, 500);
        let user: Vec<_> = w.c.turns().iter().filter(|t| t.speaker == "user").collect();
        assert_eq!(user[0].text, "excuse me are you open");
        assert_eq!(user[0].start_ms, 500);
    }

    #[test]
    fn the_agents_own_echo_does_not_interrupt_it() {
        // The VAD hears speech, but at -20 dB under what the agent sends: an echo.
        let mut w = World::new(cfg());
        w.caller_level = 300;
        w.c.start(Duration::ZERO);
        w.take_actions();
        w.speech = vec![(400, 1100)];
        w.run(3000);
        assert!(w.first(|a| matches!(a, Action::PausePlayback(_))).is_none());
        assert!(w.c.interruptions().is_empty());
        assert!(!w.c.turns()[0].interrupted);
        // The same level once the agent is quiet is a caller speaking.
        w.speech = vec![(3000, 4000)];
        w.finals.push_back("hello".into());
        w.run(6000);
        assert_eq!(w.c.turns()[1].text, "hello");
    }

    #[test]
    fn not_interruptible_plays_through() {
        let mut w = World::new(Config {
            interruptible: false,
            ..cfg()
        });
        w.c.start(Duration::ZERO);
        w.take_actions();
        w.speech = vec![(400, 1500)];
        w.finals.push_back("hello hello".into());
        w.run(3000);
        assert!(w
            .first(|a| matches!(a, Action::PausePlayback(_) | Action::ClearPlayback))
            .is_none());
        assert!(!w.c.turns()[0].interrupted);
    }

    #[test]
    fn silence_reprompts_then_hangs_up() {
        let mut w = World::new(Config {
            silence_timeout: Duration::from_secs(2),
            ..cfg()
        });
        w.c.start(Duration::ZERO);
        w.take_actions();
        w.run(20_000);
        let texts: Vec<&str> = w.c.turns().iter().map(|t| t.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "Hello, this is Ana.",
                "Are you still there?",
                "Are you still there?",
                "I haven't heard from you, so I'll end the call now. Goodbye."
            ]
        );
        let hang = w
            .first(|a| {
                *a == Action::Hangup {
                    reason: "inactivity",
                }
            })
            .unwrap();
        // The goodbye was played to the end before the hang-up.
        assert!(hang >= ms(w.last_played_at.unwrap()));
        // Each reprompt came 2 s after the previous agent turn ended.
        assert_eq!(w.c.turns()[1].start_ms - w.c.turns()[0].end_ms, 2000 + 100);
    }

    #[test]
    fn llm_failure_speaks_the_fallback_locally() {
        let mut w = World::new(cfg());
        w.llm_reply = Err(ProviderError::Status {
            provider: "openai",
            status: 500,
            message: "boom".into(),
        });
        w.c.start(Duration::ZERO);
        w.take_actions();
        w.speech = vec![(2000, 3000)];
        w.finals.push_back("hello there".into());
        w.run(8000);
        assert!(w
            .first(|a| matches!(a, Action::Error { stage: "llm", .. }))
            .is_some());
        let fb = w
            .first(|a| matches!(a, Action::Synthesize { local: true, .. }))
            .unwrap();
        assert!(fb - 2980 <= 2500, "fallback at {fb}");
        assert_eq!(
            w.c.turns().last().unwrap().text,
            Config::default().fallback_message
        );
    }

    #[test]
    fn a_slow_llm_gets_the_fallback_within_the_budget() {
        let mut w = World::new(cfg());
        w.llm_delay = Duration::from_secs(10);
        w.c.start(Duration::ZERO);
        w.take_actions();
        w.speech = vec![(2000, 3000)];
        w.finals.push_back("hello there".into());
        w.run(8000);
        let fb = w
            .first(|a| matches!(a, Action::Synthesize { local: true, .. }))
            .unwrap();
        assert!(fb > 2980 && fb - 2980 <= 2500, "fallback at {fb}");
        assert!(w.first(|a| matches!(a, Action::CancelLlm { .. })).is_some());
    }

    #[test]
    fn a_slow_stt_gets_the_fallback_and_its_late_transcript_is_dropped() {
        let mut w = World::new(cfg());
        w.stt_delay = Duration::from_secs(4);
        w.c.start(Duration::ZERO);
        w.take_actions();
        w.speech = vec![(2000, 3000), (10000, 11000)];
        w.finals.push_back("too late".into());
        w.finals.push_back("second turn".into());
        w.run(9500);
        w.stt_delay = Duration::from_millis(150);
        w.run(16000);
        assert!(w
            .first(|a| matches!(a, Action::Error { stage: "stt", .. }))
            .is_some());
        let user: Vec<_> = w.c.turns().iter().filter(|t| t.speaker == "user").collect();
        assert_eq!(user.len(), 1, "{:?}", w.c.turns());
        assert_eq!(user[0].text, "second turn");
    }

    #[test]
    fn user_speaks_first_waits() {
        let mut w = World::new(Config {
            user_speaks_first: true,
            ..cfg()
        });
        w.c.start(Duration::ZERO);
        w.take_actions();
        w.run(1000);
        assert!(
            w.log.is_empty()
                || w.first(|a| matches!(a, Action::Synthesize { .. }))
                    .is_none()
        );
    }

    #[test]
    fn without_llm_it_listens_and_transcribes() {
        let mut w = World::new(Config {
            has_llm: false,
            ..cfg()
        });
        w.c.start(Duration::ZERO);
        w.take_actions();
        w.speech = vec![(2000, 3000)];
        w.finals.push_back("hello there".into());
        w.run(6000);
        assert_eq!(w.c.turns().len(), 2);
        assert!(w.first(|a| matches!(a, Action::StartLlm { .. })).is_none());
    }

    #[test]
    fn sentences_are_cut_at_boundaries() {
        assert_eq!(sentence_end("Hello there. How"), Some(12));
        assert_eq!(sentence_end("Wait... what"), Some(7));
        assert_eq!(sentence_end("No end yet"), None);
        assert_eq!(sentence_end("Ask Dr. Smith. Now"), Some(14));
        assert_eq!(sentence_end("Is it 3.5 now? yes"), Some(14));
        assert!(is_backchannel("Uh-huh."));
        assert!(is_backchannel("okay yeah"));
        assert!(!is_backchannel("okay but I want to cancel"));
        assert!(!is_backchannel("stop"));
    }

    #[test]
    fn percentiles() {
        let s = stats(&[5.0, 1.0, 3.0, 2.0, 4.0]);
        assert_eq!(s["p50"], 3.0);
        assert_eq!(s["p99"], 5.0);
        assert_eq!(s["min"], 1.0);
    }

    fn tool_cfg() -> Config {
        Config {
            tools: switchboard_domain::tools::parse_tools(&json!([
                {"type": "end_call"},
                {"type": "transfer_call", "destinations": [{"number": "+14155550100", "description": "Sales"}]},
                {"type": "send_dtmf"},
                {"type": "webhook", "name": "lookup_order", "description": "Find an order",
                 "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
                 "url": "http://127.0.0.1:9/orders"}
            ]))
            .unwrap(),
            ..cfg()
        }
    }

    fn tok(t: &str) -> LlmEvent {
        LlmEvent::Token(t.into())
    }

    fn call(id: &str, name: &str, args: &str) -> LlmEvent {
        LlmEvent::ToolCall {
            id: id.into(),
            name: name.into(),
            arguments: args.into(),
        }
    }

    /// A caller question at 2.0-3.0 s, the greeting before it.
    fn asked(w: &mut World) {
        w.c.start(Duration::ZERO);
        w.take_actions();
        w.speech = vec![(2000, 3000)];
        w.finals.push_back("Where is my order 42?".into());
    }

    #[test]
    fn a_slow_webhook_tool_gets_one_filler_between_sentences_and_its_result_goes_to_the_llm() {
        let mut w = World::new(tool_cfg());
        asked(&mut w);
        w.llm_rounds.push_back(vec![
            tok("Let me check that for you. "),
            call("call_1", "lookup_order", r#"{"order_id":"42"}"#),
        ]);
        w.llm_rounds
            .push_back(vec![tok("Your order ships tomorrow.")]);
        w.tool_delay = Duration::from_millis(2500);
        w.run(12_000);
        let synth: Vec<(u64, String)> = w
            .actions()
            .filter_map(|(t, a)| match a {
                Action::Synthesize { text, .. } => Some((*t, text.clone())),
                _ => None,
            })
            .collect();
        let texts: Vec<&str> = synth.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(
            texts,
            [
                "Hello, this is Ana.",
                "Let me check that for you.",
                "One moment.",
                "Your order ships tomorrow."
            ]
        );
        let run = w.first(|a| matches!(a, Action::RunTool { name, arguments, .. } if name == "lookup_order" && arguments["order_id"] == "42")).unwrap();
        // The filler comes 1 s after the tool started, and only once the first sentence has
        // played out (it is 26 characters: 1.56 s of audio).
        let filler = synth[2].0;
        assert!(filler >= run + 1000, "filler at {filler}, tool at {run}");
        let sentence_end = w
            .log
            .iter()
            .filter(|(t, a)| *t < filler && matches!(a, Action::Play(_)))
            .count();
        assert!(sentence_end > 0);
        // The second LLM request carries the tool call and its result.
        let starts: Vec<&Vec<Value>> = w
            .actions()
            .filter_map(|(_, a)| match a {
                Action::StartLlm { messages, .. } => Some(messages),
                _ => None,
            })
            .collect();
        assert_eq!(starts.len(), 2);
        let m = starts[1];
        let n = m.len();
        assert_eq!(m[n - 2]["role"], "assistant");
        assert_eq!(m[n - 2]["content"], "Let me check that for you.");
        assert_eq!(
            m[n - 2]["tool_calls"][0]["function"]["name"],
            "lookup_order"
        );
        assert_eq!(m[n - 1]["role"], "tool");
        assert_eq!(m[n - 1]["tool_call_id"], "call_1");
        assert_eq!(m[n - 1]["content"], r#"{"found":true}"#);
        // Transcript: agent text, the tool call, the filler, the result, the answer — in order.
        let kinds: Vec<(&str, &str)> =
            w.c.turns()
                .iter()
                .map(|t| (t.speaker, t.text.as_str()))
                .collect();
        assert_eq!(
            kinds,
            [
                ("agent", "Hello, this is Ana."),
                ("user", "Where is my order 42?"),
                ("agent", "Let me check that for you."),
                ("tool_call", r#"lookup_order({"order_id":"42"})"#),
                ("agent", "One moment."),
                ("tool_result", r#"{"found":true}"#),
                ("agent", "Your order ships tomorrow."),
            ]
        );
        let x = &w.c.action_executions()[0];
        assert_eq!(
            (x.tool.as_str(), x.duration_ms),
            ("lookup_order", Some(2500))
        );
        assert_eq!(x.result, Some(json!({"found": true})));
        assert_eq!(w.c.action_summary()["succeeded"], 1);
        assert_eq!(w.c.tool_usage()["lookup_order"]["calls"], 1);
        // The history ends with the answer only (the filler is not the model's).
        assert_eq!(
            w.c.messages().last().unwrap()["content"],
            "Your order ships tomorrow."
        );
        assert!(!w.c.transcript_text().contains("lookup_order"));
    }

    #[test]
    fn a_fast_tool_gets_no_filler_and_a_failed_one_is_told_to_the_llm() {
        let mut w = World::new(tool_cfg());
        asked(&mut w);
        w.llm_rounds
            .push_back(vec![call("c1", "lookup_order", r#"{"order_id":"42"}"#)]);
        w.llm_rounds
            .push_back(vec![tok("Sorry, I could not look that up.")]);
        w.tool_delay = Duration::from_millis(300);
        w.tool_result = Err("HTTP 500 from the tool".into());
        w.run(10_000);
        assert!(w
            .first(|a| matches!(a, Action::Synthesize { text, .. } if text == "One moment."))
            .is_none());
        let tool_msg =
            w.c.messages()
                .iter()
                .find(|m| m["role"] == "tool")
                .unwrap()
                .clone();
        assert!(tool_msg["content"].as_str().unwrap().contains("HTTP 500"));
        assert!(w.first(|a| matches!(a, Action::Synthesize { text, .. } if text.starts_with("Sorry, I could not"))).is_some());
        assert_eq!(
            w.c.action_executions()[0].error.as_deref(),
            Some("HTTP 500 from the tool")
        );
        // The first round said nothing: its assistant message has no content, only the call.
        let asked_msg =
            w.c.messages()
                .iter()
                .find(|m| m.get("tool_calls").is_some())
                .unwrap();
        assert!(asked_msg["content"].is_null());
    }

    #[test]
    fn bad_arguments_and_unknown_tools_go_back_to_the_llm_without_running() {
        let mut w = World::new(tool_cfg());
        asked(&mut w);
        w.llm_rounds.push_back(vec![
            call("c1", "lookup_order", r#"{"id":42}"#),
            call("c2", "launch_rocket", "{}"),
        ]);
        w.llm_rounds
            .push_back(vec![tok("What is the order number?")]);
        w.run(8000);
        assert!(w.first(|a| matches!(a, Action::RunTool { .. })).is_none());
        let results: Vec<String> =
            w.c.messages()
                .iter()
                .filter(|m| m["role"] == "tool")
                .map(|m| m["content"].as_str().unwrap().to_string())
                .collect();
        assert_eq!(results.len(), 2);
        assert!(results[0].contains("order_id"), "{}", results[0]);
        assert!(
            results[1].contains("no tool named launch_rocket"),
            "{}",
            results[1]
        );
        assert_eq!(w.c.action_summary()["failed"], 2);
    }

    #[test]
    fn end_call_says_goodbye_then_hangs_up_and_dtmf_is_sent() {
        let mut w = World::new(tool_cfg());
        asked(&mut w);
        w.llm_rounds.push_back(vec![
            tok("Thanks for calling, goodbye! "),
            call("c1", "send_dtmf", r#"{"digits":"1#"}"#),
            call("c2", "end_call", "{}"),
        ]);
        w.run(12_000);
        assert!(w
            .first(|a| matches!(a, Action::SendDtmf(d) if d == "1#"))
            .is_some());
        let bye = w
            .first(|a| {
                matches!(
                    a,
                    Action::Hangup {
                        reason: "agent_hangup"
                    }
                )
            })
            .expect("hung up");
        // Only after the goodbye played out.
        assert!(bye >= w.last_played_at.map(ms).unwrap());
        assert!(w.c.is_ended());
        assert_eq!(w.c.usage().llm_requests, 1, "no LLM round after end_call");
    }

    #[test]
    fn transfer_call_transfers_to_the_chosen_destination_after_speaking() {
        let mut w = World::new(tool_cfg());
        asked(&mut w);
        w.llm_rounds.push_back(vec![call(
            "c1",
            "transfer_call",
            r#"{"destination":"+14155550100"}"#,
        )]);
        w.run(12_000);
        let said = w.first(|a| matches!(a, Action::Synthesize { text, .. } if text == "Please hold while I transfer your call.")).expect("transfer message");
        let t = w
            .first(|a| matches!(a, Action::Transfer { to } if to == "+14155550100"))
            .expect("transferred");
        assert!(t > said);
        // A destination not listed is refused by the schema.
        let mut w = World::new(tool_cfg());
        asked(&mut w);
        w.llm_rounds.push_back(vec![call(
            "c1",
            "transfer_call",
            r#"{"destination":"+19995550100"}"#,
        )]);
        w.llm_rounds
            .push_back(vec![tok("I can only transfer you to sales.")]);
        w.run(10_000);
        assert!(w.first(|a| matches!(a, Action::Transfer { .. })).is_none());
    }

    #[test]
    fn barge_in_during_a_tool_answers_it_cancelled_and_ignores_its_late_result() {
        let mut w = World::new(tool_cfg());
        asked(&mut w);
        w.llm_rounds.push_back(vec![
            tok("Let me look that up, it can take a little while. "),
            call("c1", "lookup_order", r#"{"order_id":"42"}"#),
        ]);
        w.llm_rounds.push_back(vec![tok("Okay.")]);
        w.tool_delay = Duration::from_millis(4000);
        // The caller talks over the first sentence.
        w.speech = vec![(2000, 3000), (4500, 5600)];
        w.finals.push_back("Actually never mind, cancel it.".into());
        w.run(12_000);
        let msgs = w.c.messages();
        let i = msgs
            .iter()
            .position(|m| m["role"] == "tool")
            .expect("answered");
        assert!(msgs[i]["content"].as_str().unwrap().contains("cancelled"));
        // Then the caller's words, and the late result never shows up.
        assert_eq!(msgs[i + 1]["role"], "user");
        assert!(msgs.iter().filter(|m| m["role"] == "tool").count() == 1);
        assert!(w.c.action_executions()[0]
            .error
            .as_deref()
            .unwrap()
            .contains("interrupted"));
    }
}
