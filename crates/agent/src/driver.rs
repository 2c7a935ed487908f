//! The per-call async driver: wires the [`Conversation`] core to the call's media (caller
//! frames in, agent audio out through [`SessionControl`]), to the providers (one task per LLM
//! request and a TTS worker, both aborted to cancel), to the VAD and the end-of-turn model,
//! and reports what the call keeps through [`AgentOutput`]s.
//!
//! The engine's per-call task forwards the media events ([`MediaIn`]) and consumes the
//! outputs; that pair of channels is the one seam between a call and its conversation.

use crate::conversation::{self, Action, Config, Conversation, Event};
use crate::providers::{
    Llm, LlmEvent, LlmRequest, ProviderError, Stt, SttEvent, SttOptions, Tts, TtsRequest,
};
use crate::screening::{Screening, Step};
use crate::turn::TurnModel;
use crate::vad::{Vad, VadModel};
use futures::StreamExt;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use switchboard_media::session::SessionControl;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// What the engine forwards from the media session.
#[derive(Debug)]
pub enum MediaIn {
    /// One 20 ms caller frame (8 kHz).
    Caller(Vec<i16>),
    /// Agent samples sent in this tick.
    Played(usize),
}

/// What the conversation tells the engine as the call runs.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentOutput {
    /// The transcript so far (after each finished turn), to be stored now.
    Transcript {
        transcript: String,
        transcript_formatted: Value,
        latency_metrics: Value,
    },
    /// A provider failed; the call goes on.
    Error { stage: String, message: String },
    /// End the call (the audio queued so far has played).
    Hangup { reason: String },
    /// Blind-transfer the caller to this number (the `transfer_call` tool; the audio queued
    /// so far has played).
    Transfer { to: String },
    /// Outbound calls: who answered (answering-machine detection), at each decision and when
    /// a machine's greeting ends.
    AnsweredBy(crate::amd::AmdResult),
}

/// Everything a call keeps from its conversation, returned when the driver ends.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentReport {
    pub transcript: Option<String>,
    pub transcript_formatted: Option<Value>,
    pub latency_metrics: Option<Value>,
    pub turn_events: Option<Value>,
    pub interruptions: Option<Value>,
    /// Usage (tokens, characters, audio seconds) and provider errors.
    pub quality_metrics: Option<Value>,
    /// Tool calls: every execution, a summary, and per-tool usage (diagnostics).
    pub action_executions: Option<Value>,
    pub action_summary: Option<Value>,
    pub tool_usage: Option<Value>,
}

/// Checks a URL the server is about to call on a caller's behalf (a webhook tool): `Err` with
/// the reason when it must not be called (private, loopback or metadata addresses). Given by
/// the binary, which owns that policy (`--webhook-allow-private`).
pub type UrlGuard =
    Arc<dyn Fn(String) -> futures::future::BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// The providers and models shared by every call of the server.
#[derive(Clone)]
pub struct Providers {
    pub llm: Option<Arc<dyn Llm>>,
    /// Default model when the agent names none.
    pub llm_model: String,
    pub stt: Option<Arc<dyn Stt>>,
    pub tts: Arc<dyn Tts>,
    /// The built-in voice, for fallbacks that must not depend on a failing provider.
    pub local_tts: Arc<dyn Tts>,
    pub vad: Option<VadModel>,
    pub turn: Option<TurnModel>,
    /// Checked before every webhook tool request (the address is re-resolved each time, like
    /// event webhooks at delivery). `None`: no check.
    pub tool_url_guard: Option<UrlGuard>,
    /// The tool webhooks' HTTP client ([`tool_client`]), shared by the server's calls: a client
    /// holds a connection pool and parsed TLS roots, and one per call cost ~2,200 allocations
    /// and ~110 KiB each (the soak's heap profile). `None`: each call builds its own.
    pub tool_client: Option<reqwest::Client>,
}

impl std::fmt::Debug for Providers {
    // Names only: a provider's settings hold its API key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Providers")
            .field("llm", &self.llm.is_some())
            .field("llm_model", &self.llm_model)
            .field("stt", &self.stt.as_ref().map(|s| s.name()))
            .field("tts", &self.tts.name())
            .field("vad", &self.vad.is_some())
            .field("turn", &self.turn.is_some())
            .field("tool_url_guard", &self.tool_url_guard.is_some())
            .finish()
    }
}

impl Providers {
    /// The built-in voice only: the agent greets with espeak-ng and listens.
    pub fn builtin(voice: &str) -> Providers {
        let tts: Arc<dyn Tts> = Arc::new(crate::providers::tts::EspeakTts::new(voice));
        Providers {
            llm: None,
            llm_model: String::new(),
            stt: None,
            tts: tts.clone(),
            local_tts: tts,
            vad: None,
            turn: None,
            tool_url_guard: None,
            tool_client: None,
        }
    }
}

/// One call's agent, resolved by the engine.
#[derive(Debug, Clone, Default)]
pub struct CallAgent {
    pub system_prompt: Option<String>,
    pub initial_message: Option<String>,
    pub user_speaks_first: bool,
    pub voice: Option<String>,
    pub language: Option<String>,
    pub llm_model: Option<String>,
    /// The agent's `settings` object (`interruptible`, `silence_timeout_seconds`,
    /// `max_reprompts`, …).
    pub settings: Option<Value>,
    pub context: Option<Value>,
    pub metadata: Option<Value>,
    /// The agent's tools (checked when the agent was saved).
    pub tools: Vec<switchboard_domain::tools::Tool>,
    /// The call's id (webhook tools send it) and the secret that signs tool requests.
    pub call_id: String,
    pub tool_secret: Option<String>,
    /// Outbound calls: screen for answering machines and do what the agent's `voicemail`
    /// says (see `screening`). `None`: inbound, no screening.
    pub screening: Option<switchboard_domain::analysis::Voicemail>,
}

impl CallAgent {
    /// The conversation settings of this call.
    pub fn config(&self, p: &Providers) -> Config {
        let fill = |t: &Option<String>| {
            t.as_deref()
                .map(|t| crate::template::fill(t, self.context.as_ref(), self.metadata.as_ref()))
        };
        let mut cfg = Config {
            system_message: crate::template::system_message(
                self.system_prompt.as_deref(),
                self.context.as_ref(),
                self.metadata.as_ref(),
            ),
            initial_message: fill(&self.initial_message),
            user_speaks_first: self.user_speaks_first,
            has_llm: p.llm.is_some(),
            has_stt: p.stt.is_some(),
            has_turn_model: p.turn.is_some(),
            tools: self.tools.clone(),
            ..Config::default()
        };
        if let Some(s) = self.settings.as_ref().and_then(Value::as_object) {
            if let Some(b) = s.get("interruptible").and_then(Value::as_bool) {
                cfg.interruptible = b;
            }
            if let Some(t) = s.get("silence_timeout_seconds").and_then(Value::as_f64) {
                cfg.silence_timeout = Duration::from_secs_f64(t.clamp(1.0, 3600.0));
            }
            if let Some(t) = s.get("response_timeout_seconds").and_then(Value::as_f64) {
                cfg.response_timeout = Duration::from_secs_f64(t.clamp(0.5, 30.0));
            }
            if let Some(n) = s.get("max_reprompts").and_then(Value::as_u64) {
                cfg.max_reprompts = n.min(100) as u32;
            }
            if s.get("turn_detection").and_then(Value::as_str) == Some("silence") {
                // The turn ends on a silence of fixed length; the model is never asked.
                cfg.has_turn_model = false;
                if let Some(t) = s.get("end_of_turn_silence_seconds").and_then(Value::as_f64) {
                    cfg.fixed_pause = Duration::from_secs_f64(t.clamp(0.2, 5.0));
                }
            }
            let text = |k: &str| {
                s.get(k)
                    .and_then(Value::as_str)
                    .filter(|t| !t.trim().is_empty())
                    .map(|t| {
                        crate::template::fill(t, self.context.as_ref(), self.metadata.as_ref())
                    })
            };
            if let Some(t) = text("reprompt_message") {
                cfg.reprompt_message = t;
            }
            if let Some(t) = text("goodbye_message") {
                cfg.goodbye_message = t;
            }
            if let Some(t) = text("fallback_message") {
                cfg.fallback_message = t;
            }
        }
        cfg
    }
}

/// A frame's speech probability without the neural VAD: a plain energy detector (used when
/// the model cannot be loaded).
fn energy_vad(frame: &[i16]) -> f32 {
    let rms = switchboard_media::audio::rms(frame);
    // -40 dBFS and up counts as voice.
    if rms > 327.0 {
        0.9
    } else {
        0.0
    }
}

enum Internal {
    /// An event of LLM request `seq` (one per request; a reply with tool rounds makes several
    /// requests under the same reply id, and a finished round's stragglers must not reach the
    /// next one).
    Llm(u64, u64, Result<LlmEvent, ProviderError>),
    /// Request `seq`'s stream ended without `Done`.
    LlmEnded(u64, u64),
    TtsAudio(u64, Vec<i16>),
    TtsDone(u64, Option<ProviderError>),
    Prediction(u64, f32),
    ToolResult(u64, String, Result<Value, String>),
    /// The LLM's judgement of the callee's first words (answering-machine detection).
    AmdJudgement(Option<crate::amd::LlmJudgement>),
}

/// A client for tool webhooks. Tool webhooks never follow redirects: the URL the agent was
/// saved with is the one called.
pub fn tool_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default()
}

/// Runs one call's conversation until `media` closes (the call ended) or the conversation
/// hangs up. Returns what the call keeps.
pub async fn run(
    providers: Providers,
    agent: CallAgent,
    control: SessionControl,
    mut media: mpsc::Receiver<MediaIn>,
    out: mpsc::UnboundedSender<AgentOutput>,
) -> AgentReport {
    let cfg = agent.config(&providers);
    let start = Instant::now();
    let mut conv = Conversation::new(cfg);
    let mut vad = providers.vad.as_ref().map(Vad::new);
    let (itx, mut irx) = mpsc::unbounded_channel::<Internal>();
    let mut stt = providers.stt.as_ref().map(|s| {
        s.open(SttOptions {
            language: agent.language.clone(),
            prompt: None,
        })
    });
    let mut llm_task: Option<(u64, JoinHandle<()>)> = None;
    // The current LLM request (see `Internal::Llm`).
    let mut llm_seq = 0u64;
    let tts_job = |itx: mpsc::UnboundedSender<Internal>| {
        spawn_tts_worker(providers.clone(), agent.clone(), itx)
    };
    let (mut tts_tx, mut tts_worker) = tts_job(itx.clone());
    let model = agent
        .llm_model
        .clone()
        .filter(|m| !m.trim().is_empty())
        .unwrap_or_else(|| providers.llm_model.clone());
    let mut stt_dropped = 0u64;
    let mut turns_written = 0usize;
    let tool_defs: Vec<Value> = agent.tools.iter().map(|t| t.definition()).collect();
    // The server's client; without one (the built-in voice, which has no LLM), built at the
    // first tool call, if any.
    let mut tool_client = providers.tool_client.clone();
    let mut tool_tasks: Vec<JoinHandle<()>> = Vec::new();
    let mut screen = agent.screening.clone().map(Screening::new);
    let mut amd_task: Option<JoinHandle<()>> = None;
    let wanted_prediction = Arc::new(AtomicU64::new(u64::MAX));

    if !screen.as_ref().is_some_and(Screening::holding) {
        conv.start(Duration::ZERO);
    }
    loop {
        // The prediction still wanted (`u64::MAX`: none), read by the queued model jobs.
        wanted_prediction.store(
            conv.wanted_prediction().unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        // Carry out what the core asked for.
        for a in conv.drain() {
            match a {
                Action::Play(s) => {
                    let _ = control.play(s).await;
                }
                Action::PausePlayback(p) => {
                    let _ = control.pause_playback(p).await;
                }
                Action::ClearPlayback => {
                    let _ = control.clear_playback().await;
                }
                Action::Stt(input) => {
                    if let Some(s) = &stt {
                        if s.input.try_send(input).is_err() {
                            stt_dropped += 1;
                        }
                    }
                }
                Action::PredictTurn { id, audio } => {
                    if let Some(m) = providers.turn.clone() {
                        let itx = itx.clone();
                        let wanted = wanted_prediction.clone();
                        let queued = turn_pool().try_send(Box::new(move || {
                            // Asked again or answered by speech while it waited in the
                            // queue: skip the ~0.2 s of CPU, nobody will use the answer.
                            if wanted.load(Ordering::Relaxed) != id {
                                return;
                            }
                            let p = m.predict(&audio).unwrap_or(1.0);
                            let _ = itx.send(Internal::Prediction(id, p));
                        }));
                        if queued.is_err() {
                            // The pool is behind: no answer, so the pause limit ends the turn.
                            tracing::debug!("end-of-turn model busy; the pause limit decides");
                        }
                    }
                }
                Action::StartLlm { reply, messages } => {
                    if let Some((_, t)) = llm_task.take() {
                        t.abort();
                    }
                    if let Some(llm) = providers.llm.clone() {
                        let req = LlmRequest {
                            model: model.clone(),
                            messages,
                            tools: tool_defs.clone(),
                            temperature: None,
                            max_tokens: Some(400),
                        };
                        let itx = itx.clone();
                        llm_seq += 1;
                        let seq = llm_seq;
                        let task = tokio::spawn(async move {
                            match llm.stream(req).await {
                                Ok(mut s) => {
                                    while let Some(ev) = s.next().await {
                                        let stop = matches!(ev, Err(_) | Ok(LlmEvent::Done { .. }));
                                        if itx.send(Internal::Llm(reply, seq, ev)).is_err() || stop
                                        {
                                            return;
                                        }
                                    }
                                    let _ = itx.send(Internal::LlmEnded(reply, seq));
                                }
                                Err(e) => {
                                    let _ = itx.send(Internal::Llm(reply, seq, Err(e)));
                                }
                            }
                        });
                        llm_task = Some((reply, task));
                    }
                }
                Action::CancelLlm { reply } => {
                    if let Some((r, t)) = llm_task.take() {
                        if r == reply {
                            t.abort();
                        } else {
                            llm_task = Some((r, t));
                        }
                    }
                }
                Action::Synthesize { seg, text, local } => {
                    let _ = tts_tx.send((seg, text, local));
                }
                Action::CancelTts => {
                    // Aborting the worker drops its stream, which cancels the request.
                    tts_worker.abort();
                    (tts_tx, tts_worker) = tts_job(itx.clone());
                }
                Action::Turn(_) => {
                    turns_written += 1;
                    let turns = conv.turns();
                    let _ = out.send(AgentOutput::Transcript {
                        transcript: conversation::transcript_text(turns),
                        transcript_formatted: serde_json::to_value(turns).unwrap_or(Value::Null),
                        latency_metrics: conv.latency_metrics(),
                    });
                }
                Action::Error { stage, message } => {
                    tracing::warn!(stage, error = %message, "agent provider error");
                    let _ = out.send(AgentOutput::Error {
                        stage: stage.to_string(),
                        message,
                    });
                }
                Action::Hangup { reason } => {
                    let _ = out.send(AgentOutput::Hangup {
                        reason: reason.to_string(),
                    });
                }
                Action::Transfer { to } => {
                    let _ = out.send(AgentOutput::Transfer { to });
                }
                Action::SendDtmf(digits) => {
                    if let Err(e) = control.send_dtmf(&digits, 160).await {
                        tracing::warn!(error = %e, "send_dtmf failed");
                    }
                }
                Action::RunTool {
                    reply,
                    call_id,
                    name,
                    arguments,
                } => {
                    let tool = agent.tools.iter().find_map(|t| match t {
                        switchboard_domain::tools::Tool::Webhook(w) if w.name == name => {
                            Some(w.clone())
                        }
                        _ => None,
                    });
                    let ctx = crate::tools::ToolCallContext {
                        call_id: agent.call_id.clone(),
                        tool_call_id: call_id.clone(),
                        secret: agent.tool_secret.clone(),
                    };
                    let client = tool_client.get_or_insert_with(self::tool_client).clone();
                    let itx = itx.clone();
                    let guard = providers.tool_url_guard.clone();
                    tool_tasks.retain(|t| !t.is_finished());
                    tool_tasks.push(tokio::spawn(async move {
                        let checked = match (&tool, guard) {
                            (Some(w), Some(g)) => g(w.url.clone()).await,
                            _ => Ok(()),
                        };
                        let result = match (tool, checked) {
                            (_, Err(why)) => Err(format!("the tool's URL was refused: {why}")),
                            (Some(w), Ok(())) => {
                                crate::tools::call_webhook(&client, &w, &ctx, &arguments).await
                            }
                            (None, Ok(())) => Err(format!("there is no webhook tool named {name}")),
                        };
                        let _ = itx.send(Internal::ToolResult(reply, call_id, result));
                    }));
                }
            }
        }
        let deadline = conv.next_deadline().map(|d| start + d);
        let timer = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        let stt_ev = async {
            match stt.as_mut() {
                Some(s) => s.events.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            m = media.recv() => {
                let now = start.elapsed();
                match m {
                    None => break,
                    Some(MediaIn::Caller(frame)) => {
                        let p = match vad.as_mut() {
                            Some(v) => v.push_frame(&frame),
                            None => energy_vad(&frame),
                        };
                        if let Some(sc) = screen.as_mut().filter(|s| s.listening() || s.holding()) {
                            let (steps, stt_in) = sc.on_frame(now, &frame, p);
                            if let Some(st) = &stt {
                                for i in stt_in {
                                    if st.input.try_send(i).is_err() {
                                        stt_dropped += 1;
                                    }
                                }
                            }
                            screening_steps(steps, now, &mut conv, &out, &agent);
                        }
                        if !screen.as_ref().is_some_and(Screening::holding) {
                            conv.handle(now, Event::Frame { samples: &frame, vad: p });
                        }
                    }
                    Some(MediaIn::Played(n)) => conv.handle(now, Event::AgentPlayed(n)),
                }
            }
            ev = stt_ev => match ev {
                Some(e) => {
                    let now = start.elapsed();
                    if let (Some(sc), SttEvent::Final { text, .. }) = (screen.as_mut(), &e) {
                        let steps = sc.on_transcript(now, text);
                        screening_steps(steps, now, &mut conv, &out, &agent);
                        if let (Some(messages), Some(llm)) = (sc.judgement_request(), providers.llm.clone()) {
                            amd_task = Some(spawn_amd_judgement(llm, model.clone(), messages, itx.clone()));
                        }
                    }
                    // While the conversation is held, the callee's words are the screening's.
                    if !screen.as_ref().is_some_and(Screening::holding) {
                        conv.handle(now, Event::Stt(e));
                    }
                }
                None => {
                    // The recognition session ended (a streaming provider closed): the
                    // conversation goes on without it.
                    stt = None;
                    conv.handle(start.elapsed(), Event::Stt(SttEvent::Error(ProviderError::Connect {
                        provider: "stt",
                        message: "recognition session closed".into(),
                    })));
                }
            },
            Some(i) = irx.recv() => {
                let now = start.elapsed();
                match i {
                    Internal::Llm(_, seq, _) | Internal::LlmEnded(_, seq) if seq != llm_seq => {
                        // A superseded request's last words.
                    }
                    Internal::Llm(reply, _, ev) => conv.handle(now, Event::Llm { reply, event: ev }),
                    Internal::LlmEnded(reply, _) => {
                        // A stream that ends without `Done` is a broken one.
                        conv.handle(now, Event::Llm { reply, event: Err(ProviderError::Protocol {
                            provider: "llm",
                            message: "stream ended without a finish".into(),
                        }) });
                    }
                    Internal::TtsAudio(seg, samples) => conv.handle(now, Event::TtsAudio { seg, samples }),
                    Internal::TtsDone(seg, error) => conv.handle(now, Event::TtsDone { seg, error }),
                    Internal::Prediction(id, p) => conv.handle(now, Event::TurnPrediction { id, complete: p }),
                    Internal::ToolResult(reply, call_id, result) => {
                        conv.handle(now, Event::ToolResult { reply, call_id, result });
                    }
                    Internal::AmdJudgement(j) => {
                        if let (Some(sc), Some(j)) = (screen.as_mut(), j) {
                            let steps = sc.on_llm(now, j);
                            screening_steps(steps, now, &mut conv, &out, &agent);
                        }
                    }
                }
            }
            _ = timer => conv.tick(start.elapsed()),
        }
    }
    // The call is over: queued predictions of it are not worth running.
    wanted_prediction.store(u64::MAX, Ordering::Relaxed);
    if let Some((_, t)) = llm_task.take() {
        t.abort();
    }
    tts_worker.abort();
    if let Some(t) = amd_task {
        t.abort();
    }
    for t in tool_tasks {
        t.abort();
    }
    conv.finish(start.elapsed());
    let _ = conv.drain();
    if stt_dropped > 0 {
        tracing::warn!(stt_dropped, "caller audio frames dropped before the STT");
    }
    report(&conv, turns_written, vad.as_ref().map(Vad::model_runs))
}

/// Carries out what call screening decided.
fn screening_steps(
    steps: Vec<Step>,
    now: Duration,
    conv: &mut Conversation,
    out: &mpsc::UnboundedSender<AgentOutput>,
    agent: &CallAgent,
) {
    for step in steps {
        match step {
            Step::Report(r) => {
                tracing::info!(answered_by = %r.answered_by, confidence = r.confidence, decision_ms = r.decision_ms, "answering-machine detection");
                let _ = out.send(AgentOutput::AnsweredBy(r));
            }
            Step::StartConversation => conv.start(now),
            Step::LeaveMessage(text) => {
                let text =
                    crate::template::fill(&text, agent.context.as_ref(), agent.metadata.as_ref());
                conv.leave_message(now, &text);
            }
            Step::Hangup(reason) => {
                let _ = out.send(AgentOutput::Hangup {
                    reason: reason.to_string(),
                });
            }
        }
    }
}

/// Asks the LLM whether the callee's first words are a person or a machine's greeting.
fn spawn_amd_judgement(
    llm: Arc<dyn Llm>,
    model: String,
    messages: Vec<Value>,
    itx: mpsc::UnboundedSender<Internal>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let text = crate::analysis::complete(llm.as_ref(), &model, messages, 60).await;
        let judgement = match text {
            Ok(t) => crate::amd::parse_llm_answer(&t).ok(),
            Err(e) => {
                tracing::debug!(error = %e, "answering-machine judgement failed");
                None
            }
        };
        let _ = itx.send(Internal::AmdJudgement(judgement));
    })
}

fn report(conv: &Conversation, _turns_written: usize, vad_runs: Option<u64>) -> AgentReport {
    let turns = conv.turns();
    let has_turns = !turns.is_empty();
    let usage = conv.usage();
    AgentReport {
        transcript: has_turns.then(|| conv.transcript_text()),
        transcript_formatted: has_turns.then(|| serde_json::to_value(turns).unwrap_or(Value::Null)),
        latency_metrics: Some(conv.latency_metrics()),
        turn_events: Some(Value::Array(conv.turn_events().to_vec())),
        interruptions: Some(serde_json::to_value(conv.interruptions()).unwrap_or(Value::Null)),
        quality_metrics: Some(json!({
            "usage": usage,
            "errors": conv.errors(),
            "vad_model_runs": vad_runs,
        })),
        action_executions: Some(
            serde_json::to_value(conv.action_executions()).unwrap_or(Value::Null),
        ),
        action_summary: Some(conv.action_summary()),
        tool_usage: Some(conv.tool_usage()),
    }
}

type TtsJob = (u64, String, bool);

type TurnJob = Box<dyn FnOnce() + Send>;

/// Names of the end-of-turn model's threads start with this (`turn-model-0`, ...); the
/// benchmark reads their CPU time apart from the rest of the process.
pub const TURN_MODEL_THREAD_PREFIX: &str = "turn-model-";

/// End-of-turn predictions run on a small pool of their own: ~0.2 s of CPU each, so never on
/// the runtime threads (which carry RTP), and not on Tokio's blocking pool either, whose
/// threads grow with demand and each keep the model's working memory (~26 MiB) while they
/// live. One thread per core, a bounded queue; when it is full the prediction is skipped.
fn turn_pool() -> &'static std::sync::mpsc::SyncSender<TurnJob> {
    static POOL: std::sync::OnceLock<std::sync::mpsc::SyncSender<TurnJob>> =
        std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let (tx, rx) = std::sync::mpsc::sync_channel::<TurnJob>(4 * threads);
        let rx = Arc::new(std::sync::Mutex::new(rx));
        for i in 0..threads {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("{TURN_MODEL_THREAD_PREFIX}{i}"))
                .spawn(move || loop {
                    let job = match rx.lock() {
                        Ok(r) => r.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start an end-of-turn model thread");
            }
        }
        tx
    })
}

/// Synthesises segments one after the other, in order, streaming each one's chunks back.
fn spawn_tts_worker(
    p: Providers,
    agent: CallAgent,
    itx: mpsc::UnboundedSender<Internal>,
) -> (mpsc::UnboundedSender<TtsJob>, JoinHandle<()>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<TtsJob>();
    let task = tokio::spawn(async move {
        while let Some((seg, text, local)) = rx.recv().await {
            let tts = if local { &p.local_tts } else { &p.tts };
            let req = TtsRequest {
                text,
                voice: if local { None } else { agent.voice.clone() },
                language: agent.language.clone(),
            };
            let error = match tts.synthesize(req).await {
                Ok(mut s) => {
                    let mut err = None;
                    while let Some(chunk) = s.next().await {
                        match chunk {
                            Ok(samples) => {
                                let _ = itx.send(Internal::TtsAudio(seg, samples));
                            }
                            Err(e) => {
                                err = Some(e);
                                break;
                            }
                        }
                    }
                    err
                }
                Err(e) => Some(e),
            };
            let _ = itx.send(Internal::TtsDone(seg, error));
        }
    });
    (tx, task)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn silence_turn_detection_leaves_the_model_out_and_sets_the_pause() {
        let mut p = Providers::builtin("en-us");
        p.turn = Some(TurnModel::load().expect("the embedded model loads"));
        let agent = |settings: Value| CallAgent {
            settings: Some(settings),
            ..CallAgent::default()
        };
        let default = agent(json!({})).config(&p);
        assert!(default.has_turn_model);
        let model = agent(json!({"turn_detection": "smart_turn"})).config(&p);
        assert!(model.has_turn_model);
        assert_eq!(model.fixed_pause, default.fixed_pause);
        let silence = agent(json!({"turn_detection": "silence"})).config(&p);
        assert!(!silence.has_turn_model);
        assert_eq!(silence.fixed_pause, Duration::from_millis(700));
        let tuned =
            agent(json!({"turn_detection": "silence", "end_of_turn_silence_seconds": 0.45}))
                .config(&p);
        assert!(!tuned.has_turn_model);
        assert_eq!(tuned.fixed_pause, Duration::from_millis(450));
        // The pause length belongs to the silence mode; with the model it changes nothing.
        let ignored = agent(json!({"end_of_turn_silence_seconds": 2})).config(&p);
        assert!(ignored.has_turn_model);
        assert_eq!(ignored.fixed_pause, default.fixed_pause);
    }
}
