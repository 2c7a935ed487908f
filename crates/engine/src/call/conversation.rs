//! THE seam between a call and its conversation. Everything that passes between the per-call
//! task and `switchboard_agent::driver::run` is here:
//!
//! - in: the agent as stored plus the call's own settings (`CallAgent`), the media session's
//!   `SessionControl` (play, pause, clear), and a stream of `MediaIn` (every caller frame and
//!   every count of agent samples sent), handed over without waiting;
//! - out: `AgentOutput`s while the call runs (the transcript after each turn, provider errors,
//!   hang-up, transfer), and the final `AgentReport` when the media ends.
//!
//! The call task (`call/mod.rs`) only calls [`AgentLink::start`], [`CallCtx::to_agent`],
//! [`AgentLink::next`], [`CallCtx::on_agent_output`] and [`CallCtx::finish_conversation`].

use super::writer::Write;
use super::CallCtx;
use crate::live::LocalEnd;
use serde_json::json;
use std::sync::Arc;
use switchboard_agent::driver::{AgentOutput, AgentReport, CallAgent, MediaIn, Providers};
use switchboard_domain::{Agent, Call, Timestamp};
use switchboard_media::session::SessionControl;
use tokio::sync::mpsc;

/// Frames the engine may hold for a conversation that is busy (10 s of audio).
const AGENT_QUEUE: usize = 1024;

/// The call's side of its conversation (see `switchboard_agent::driver`): the media events
/// go in, what the call keeps comes out, and the task returns the final report.
pub(super) struct AgentLink {
    media: mpsc::Sender<MediaIn>,
    out: mpsc::UnboundedReceiver<AgentOutput>,
    task: tokio::task::JoinHandle<AgentReport>,
}

impl AgentLink {
    /// Starts the conversation of an answered call on its media session (it greets, unless
    /// the caller speaks first).
    pub(super) fn start(
        providers: Providers,
        agent: &Agent,
        call: &Call,
        control: SessionControl,
        tool_secret: Option<String>,
    ) -> AgentLink {
        let call_agent = CallAgent {
            system_prompt: agent.system_prompt.clone(),
            initial_message: agent.initial_message.clone(),
            user_speaks_first: call.user_speaks_first,
            voice: agent.voice.clone(),
            language: agent.language.clone(),
            llm_model: agent.llm_model.clone(),
            settings: agent.settings.clone(),
            context: call.context.clone(),
            metadata: call.metadata.clone(),
            tools: agent_tools(agent),
            call_id: call.id.to_string(),
            tool_secret,
            screening: (call.call_type == switchboard_domain::CallType::Outbound)
                .then(|| agent_voicemail(agent)),
        };
        let (media_tx, media_rx) = mpsc::channel(AGENT_QUEUE);
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        let span = tracing::info_span!("agent", call_id = %call.id);
        let task = tokio::spawn(tracing::Instrument::instrument(
            switchboard_agent::driver::run(providers, call_agent, control, media_rx, out_tx),
            span,
        ));
        AgentLink {
            media: media_tx,
            out: out_rx,
            task,
        }
    }

    /// The conversation's next output; never resolves when there is no conversation, so it
    /// can sit in the call task's `select!`.
    pub(super) async fn next(link: Option<&mut AgentLink>) -> Option<AgentOutput> {
        match link {
            Some(l) => l.out.recv().await,
            None => std::future::pending().await,
        }
    }
}

/// The agent's tools as the conversation uses them (checked when the agent was saved; a
/// stored value that no longer parses is logged and ignored rather than failing the call).
fn agent_tools(agent: &Agent) -> Vec<switchboard_domain::tools::Tool> {
    match agent
        .tools
        .as_ref()
        .map(switchboard_domain::tools::parse_tools)
    {
        None => Vec::new(),
        Some(Ok(t)) => t,
        Some(Err(e)) => {
            tracing::warn!(agent_id = %agent.id, error = %e, "stored tools do not parse; none used");
            Vec::new()
        }
    }
}

/// The agent's `voicemail` setting (checked when saved; a stored value that no longer parses
/// falls back to the default, `continue`: detect and record only).
fn agent_voicemail(agent: &Agent) -> switchboard_domain::analysis::Voicemail {
    agent
        .voicemail
        .as_ref()
        .and_then(|v| switchboard_domain::analysis::parse_voicemail(v).ok())
        .unwrap_or_default()
}

impl CallCtx {
    /// The secret that signs the agent's webhook tools: its per-agent webhook secret (the one
    /// its `webhook_url` deliveries use), made on first use. Only fetched when it has such
    /// tools.
    pub(super) async fn tool_secret(&self, agent: &Agent) -> Option<String> {
        let has_webhooks = agent_tools(agent)
            .iter()
            .any(|t| matches!(t, switchboard_domain::tools::Tool::Webhook(_)));
        if !has_webhooks {
            return None;
        }
        match self
            .inner
            .store
            .agent_webhook_secret(self.call.org_id, agent.id)
            .await
        {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(call_id = %self.call.id, error = %e, "no webhook secret; tool requests go unsigned");
                None
            }
        }
    }

    /// The conversation's providers: the configured ones, else the built-in voice only.
    pub(super) fn providers(&self) -> Providers {
        self.inner
            .cfg
            .agent
            .clone()
            .unwrap_or_else(|| Providers::builtin(&self.inner.cfg.tts_voice))
    }

    /// Hands a media event to the conversation without waiting: if it is that far behind,
    /// the frame is dropped (and the conversation hears a gap) rather than stalling the call.
    pub(super) fn to_agent(&self, m: MediaIn) {
        if let Some(l) = &self.link {
            if l.media.try_send(m).is_err() {
                tracing::debug!(call_id = %self.call.id, "conversation behind; media event dropped");
            }
        }
    }

    /// Keeps what the conversation reports while the call runs. `Some` when the conversation
    /// ends the call (the call task then hangs up with that reason).
    pub(super) async fn on_agent_output(&self, out: AgentOutput) -> Option<LocalEnd> {
        let id = self.call.id;
        match out {
            AgentOutput::Transcript {
                transcript,
                transcript_formatted,
                latency_metrics,
            } => {
                // Kept as the call runs: a crash keeps what was said so far.
                self.writer.send(Write::Details(
                    "transcript",
                    Arc::new(move |d| {
                        d.transcript = Some(transcript.clone());
                        d.transcript_formatted = Some(transcript_formatted.clone());
                        d.latency_metrics = Some(latency_metrics.clone());
                    }),
                ));
                None
            }
            AgentOutput::Error { stage, message } => {
                self.event(json!({"type": "agent-error", "stage": stage, "message": message, "at": Timestamp::now()}));
                None
            }
            AgentOutput::Transfer { to } => {
                // The same path as `POST /v1/call/{id}/transfer`: REFER, then the call ends
                // as `transferred` when the far end reports success.
                if !crate::live::transfer_live(&self.inner, id, &to) {
                    self.event(json!({"type": "transfer-failed", "to": to, "reason": "the call is no longer live", "at": Timestamp::now()}));
                }
                None
            }
            AgentOutput::Hangup { reason } => Some(match reason.as_str() {
                "inactivity" => LocalEnd::Inactivity,
                "voicemail" => LocalEnd::Voicemail,
                "fax" => LocalEnd::Fax,
                _ => LocalEnd::Agent,
            }),
            AgentOutput::AnsweredBy(r) => {
                let answered_by = r.answered_by;
                let u = switchboard_store::CallUpdate {
                    answered_by: Some(answered_by.as_str().to_string()),
                    went_to_voicemail: Some(answered_by.is_machine()),
                    ..Default::default()
                };
                self.set(u);
                let mut ev = serde_json::to_value(&r).unwrap_or_default();
                ev["type"] = json!("answering-machine-detection");
                ev["at"] = json!(Timestamp::now());
                self.event(ev);
                None
            }
        }
    }

    /// The conversation ends with the media: its report is stored before the final status.
    /// True when the caller said something and an LLM is configured: the call gets a post-call
    /// analysis (calls with no conversation — unanswered, voicemail — get no LLM request).
    pub(super) async fn finish_conversation(&mut self) -> bool {
        let Some(link) = self.link.take() else {
            return false;
        };
        drop(link.media);
        match link.task.await {
            Ok(report) => {
                let caller_spoke = report
                    .transcript_formatted
                    .as_ref()
                    .and_then(|t| t.as_array())
                    .is_some_and(|turns| {
                        turns.iter().any(|t| {
                            t["speaker"] == "user"
                                && t["text"].as_str().is_some_and(|x| !x.trim().is_empty())
                        })
                    });
                self.store_agent_report(report);
                caller_spoke && self.providers().llm.is_some()
            }
            Err(e) => {
                tracing::error!(call_id = %self.call.id, error = %e, "conversation task failed");
                false
            }
        }
    }

    fn store_agent_report(&self, r: AgentReport) {
        self.writer.send(Write::Details(
            "conversation report",
            Arc::new(move |d| {
                let r = r.clone();
                if r.transcript.is_some() {
                    d.transcript = r.transcript;
                    d.transcript_formatted = r.transcript_formatted;
                }
                d.latency_metrics = r.latency_metrics;
                d.turn_events = r.turn_events;
                d.interruptions = r.interruptions;
                d.quality_metrics = r.quality_metrics;
                d.action_executions = r.action_executions;
                d.action_summary = r.action_summary;
                d.tool_usage = r.tool_usage;
            }),
        ));
    }
}
