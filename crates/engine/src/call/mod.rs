//! The per-call task, shared by outbound and inbound calls: [`CallCtx::drive`] follows the
//! SIP dialog, starts the media on answer (`media.rs`) and with it the conversation
//! (`conversation.rs`, the one seam where the call's audio and control reach the agent),
//! obeys the API (hang-up, transfer) and max duration, and writes the final status.

mod conversation;
mod media;
pub(crate) mod writer;

use crate::engine::Inner;
use crate::live::{remove_live, LiveRx, LocalEnd};
use crate::upload;
use conversation::AgentLink;
use media::Media;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use switchboard_agent::driver::MediaIn;
use switchboard_domain::*;
use switchboard_media::session::MediaEvent;
use switchboard_sip::sdp::{self, Codec};
use switchboard_sip::{CallEvent, CallHandle};
use switchboard_store::CallUpdate;
use tokio::net::UdpSocket;
use writer::{CallWriter, Write};

pub(crate) struct CallCtx {
    inner: Arc<Inner>,
    call: Call,
    agent: Option<Agent>,
    rtp: Option<(UdpSocket, UdpSocket)>,
    /// What the API sends the call (hang-up, transfer), through the live table.
    live: LiveRx,
    /// Media already negotiated (inbound calls are answered before the loop starts).
    answered: Option<sdp::MediaParams>,
    /// The conversation, once media runs and the call has an agent.
    link: Option<AgentLink>,
    /// The call's database writes, in order, retried through a database outage.
    writer: CallWriter,
}

/// Maps a final non-2xx INVITE outcome to status and end_reason.
fn failure_outcome(code: u16, timed_out: bool, local: Option<LocalEnd>) -> (CallStatus, String) {
    if timed_out {
        return (CallStatus::NoAnswer, "ring-timeout".into());
    }
    if code == 487 && local.is_some() {
        return (CallStatus::NoAnswer, "cancelled-before-answer".into());
    }
    match code {
        486 | 600 => (CallStatus::NoAnswer, "busy".into()),
        603 => (CallStatus::NoAnswer, "declined".into()),
        408 | 480 | 487 => (CallStatus::NoAnswer, "no-answer".into()),
        404 | 484 | 604 => (CallStatus::Failed, "number-not-found".into()),
        401 | 407 => (CallStatus::Failed, "trunk-authentication-failed".into()),
        // Carriers answer 403 to credentials they do not accept, or to a caller not allowed
        // to call there.
        403 => (CallStatus::Failed, "forbidden".into()),
        503 => (CallStatus::Failed, "service-unavailable".into()),
        c => (CallStatus::Failed, format!("sip-error-{c}")),
    }
}

impl CallCtx {
    pub(crate) fn new(
        inner: Arc<Inner>,
        call: Call,
        agent: Option<Agent>,
        rtp: (UdpSocket, UdpSocket),
        live: LiveRx,
        answered: Option<sdp::MediaParams>,
    ) -> CallCtx {
        let writer = CallWriter::start(inner.store.clone(), call.id);
        CallCtx {
            writer,
            inner,
            call,
            agent,
            rtp: Some(rtp),
            live,
            answered,
            link: None,
        }
    }

    /// Queues a change of the call (written in order, retried through an outage).
    fn set(&self, u: CallUpdate) {
        self.writer.send(Write::Update(Box::new(u)));
    }

    fn event(&self, ev: serde_json::Value) {
        self.writer.send(Write::Event(ev));
    }

    pub(crate) async fn drive(mut self, mut sip: CallHandle) {
        let id = self.call.id;
        let mut media: Option<Media> = None;
        let mut started: Option<Timestamp> = None;
        let mut rang = false;
        let mut local_end: Option<LocalEnd> = None;
        let mut max_timer: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
        let max_duration = self
            .agent
            .as_ref()
            .and_then(|a| a.max_duration_seconds)
            .map(|s| Duration::from_secs(s as u64));
        if let Some(params) = self.answered.clone() {
            media = self.start_media(&params).await;
            started = Some(Timestamp::now());
            max_timer = max_duration.map(|d| Box::pin(tokio::time::sleep(d)));
        }
        let mut outcome: Option<(CallStatus, String, Option<i64>)> = None;
        loop {
            let media_ev = async {
                match media.as_mut() {
                    Some((_, rx)) => rx.recv().await,
                    None => std::future::pending().await,
                }
            };
            let timer = async {
                match max_timer.as_mut() {
                    Some(t) => t.as_mut().await,
                    None => std::future::pending().await,
                }
            };
            let agent_out = AgentLink::next(self.link.as_mut());
            tokio::select! {
                ev = sip.next_event() => match ev {
                    None | Some(CallEvent::Terminated) => break,
                    Some(CallEvent::Trying) => {}
                    Some(CallEvent::Ringing | CallEvent::EarlyMedia { .. }) => {
                        // `call.ringing` once per call, through the writer (a few reads and a
                        // write that must not delay the answer).
                        if !rang {
                            rang = true;
                            self.writer.send(Write::Ringing);
                        }
                    }
                    Some(CallEvent::Answered { remote_sdp }) => {
                        let params = sdp::parse(remote_sdp.as_bytes()).ok().and_then(|s| sdp::media_params(&s, &[Codec::Pcmu, Codec::Pcma]).ok());
                        let now = Timestamp::now();
                        started = Some(now);
                        let answered = CallUpdate { status: Some(CallStatus::InProgress), started_at: Some(now), sip_code: Some(200), ..Default::default() };
                        match params {
                            Some(p) => {
                                // The write is queued, never awaited here: under database load
                                // (or an outage) it can take seconds, and the far end's RTP
                                // would pile up unread meanwhile (then play late).
                                self.set(answered);
                                media = self.start_media(&p).await;
                            }
                            None => {
                                self.set(answered);
                                tracing::warn!(call_id = %id, "answer had no usable SDP; hanging up");
                                outcome = Some((CallStatus::Failed, "incompatible-media".into(), Some(488)));
                                sip.hangup();
                            }
                        }
                        max_timer = max_duration.map(|d| Box::pin(tokio::time::sleep(d)));
                        if local_end.is_some() {
                            sip.hangup();
                        }
                    }
                    Some(CallEvent::Failed { code, reason, timed_out }) => {
                        let (status, why) = failure_outcome(code, timed_out, local_end);
                        tracing::info!(call_id = %id, code, reason = %reason, status = %status, "call not connected");
                        outcome = Some((status, why, Some(code as i64)));
                    }
                    Some(CallEvent::RemoteHangup) => {
                        outcome.get_or_insert((CallStatus::Completed, "customer-ended-call".into(), None));
                    }
                    Some(CallEvent::Dtmf(d)) => {
                        self.event(json!({"type": "dtmf", "digit": d.to_string(), "via": "sip-info", "at": Timestamp::now()}));
                    }
                    Some(CallEvent::ReInvite { remote_sdp, on_hold }) => {
                        if let Some((s, _)) = &media {
                            let _ = s.set_hold(on_hold).await;
                            if let Some(addr) = sdp::parse(remote_sdp.as_bytes()).ok().and_then(|d| sdp::media_params(&d, &[Codec::Pcmu, Codec::Pcma]).ok()).and_then(|p| p.remote_rtp) {
                                let _ = s.set_remote(addr).await;
                            }
                        }
                        self.event(json!({"type": if on_hold { "hold" } else { "resume" }, "at": Timestamp::now()}));
                    }
                    Some(CallEvent::TransferAccepted) => {
                        outcome = Some((CallStatus::Transferred, "transferred".into(), None));
                        sip.hangup();
                    }
                    Some(CallEvent::TransferFailed { code }) => {
                        self.event(json!({"type": "transfer-failed", "code": code, "at": Timestamp::now()}));
                    }
                },
                Some(me) = media_ev => match me {
                    MediaEvent::Dtmf(d) => {
                        if let Some(c) = d.digit {
                            self.event(json!({"type": "dtmf", "digit": c.to_string(), "via": "rfc4733", "at": Timestamp::now()}));
                        }
                    }
                    MediaEvent::CallerAudio(frame) => self.to_agent(MediaIn::Caller(frame)),
                    MediaEvent::AgentPlayed(n) => self.to_agent(MediaIn::Played(n)),
                    _ => {}
                },
                Some(out) = agent_out => {
                    if let Some(why) = self.on_agent_output(out).await {
                        local_end.get_or_insert(why);
                        sip.hangup();
                    }
                }
                _ = timer => {
                    max_timer = None;
                    local_end = Some(LocalEnd::MaxDuration);
                    sip.hangup();
                }
                Some(uri) = self.live.transfer.recv() => {
                    if started.is_some() && outcome.is_none() {
                        tracing::info!(call_id = %id, "blind transfer requested (REFER)");
                        sip.refer(&uri);
                        self.event(json!({"type": "transfer-requested", "to": uri, "at": Timestamp::now()}));
                    }
                }
                Some(why) = self.live.hangup.recv() => {
                    local_end.get_or_insert(why);
                    sip.hangup();
                }
            }
        }
        // Final state.
        let now = Timestamp::now();
        let (status, reason, code) = match outcome {
            Some(o) => o,
            None if started.is_some() => {
                let why = match local_end {
                    Some(LocalEnd::Api) => "agent-ended-call",
                    Some(LocalEnd::MaxDuration) => "max-duration-reached",
                    Some(LocalEnd::Shutdown) => "server-shutdown",
                    Some(LocalEnd::Inactivity) => "inactivity",
                    Some(LocalEnd::Agent) => "agent-ended-call",
                    Some(LocalEnd::Voicemail) => "voicemail",
                    Some(LocalEnd::Fax) => "fax",
                    None => "call-ended",
                };
                (CallStatus::Completed, why.to_string(), None)
            }
            None => (CallStatus::Failed, "signalling-ended".into(), None),
        };
        let mut u = CallUpdate {
            status: Some(status),
            ended_at: Some(now),
            end_reason: Some(reason),
            sip_code: code,
            ..Default::default()
        };
        if let Some(s) = started {
            u.duration_seconds = Some(((now.micros() - s.micros()) as f64 / 1e6).round() as i64);
        }
        // The conversation ends with the media: what it kept is stored before the final status.
        u.analyze = self.finish_conversation().await;
        if let Some((session, _)) = media.take() {
            u.recording = self.stop_media(session).await;
        }
        let recorded = u.recording.is_some();
        let analyze = u.analyze;
        self.set(u);
        // Every write of the call is in before anything that reads its final state (the
        // analysis worker, the upload) starts, and before the live entry goes.
        self.writer.finish().await;
        if analyze {
            self.inner.analysis_wake.notify_one();
        }
        if let (true, Some(r)) = (recorded, &self.inner.cfg.recordings) {
            upload::spawn_upload(r, &self.inner.store, id, self.recording_base().1);
        }
        remove_live(&self.inner, id);
        tracing::info!(call_id = %id, status = %status, "call ended");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_follow_the_sip_code() {
        assert_eq!(
            failure_outcome(486, false, None),
            (CallStatus::NoAnswer, "busy".into())
        );
        assert_eq!(
            failure_outcome(603, false, None),
            (CallStatus::NoAnswer, "declined".into())
        );
        assert_eq!(failure_outcome(480, false, None).0, CallStatus::NoAnswer);
        assert_eq!(
            failure_outcome(487, true, None),
            (CallStatus::NoAnswer, "ring-timeout".into())
        );
        assert_eq!(failure_outcome(404, false, None).0, CallStatus::Failed);
        assert_eq!(
            failure_outcome(403, false, None),
            (CallStatus::Failed, "forbidden".into())
        );
        assert_eq!(failure_outcome(503, false, None).0, CallStatus::Failed);
        assert_eq!(
            failure_outcome(487, false, Some(LocalEnd::Api)).1,
            "cancelled-before-answer"
        );
    }
}
