//! A call's media: the RTP session with its recorder, started once the SDP is negotiated,
//! and what is kept of it when it stops (the recording's metadata, `audio_metrics`).

use super::conversation::AgentLink;
use super::writer::Write;
use super::CallCtx;
use serde_json::json;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use switchboard_domain::RecordingMeta;
use switchboard_media::recorder::CallRecorder;
use switchboard_media::session::{
    MediaEvent, RtpSession, SessionConfig, SessionHandle, SessionStats,
};
use switchboard_sip::sdp;
use tokio::sync::mpsc;

/// A running media session and the events it reports (DTMF, caller audio, played samples).
pub(super) type Media = (SessionHandle, mpsc::Receiver<MediaEvent>);

impl CallCtx {
    /// `<recordings_dir>/<org>/<call>` (without extension) and the key prefix `<org>/<call>`.
    pub(super) fn recording_base(&self) -> (PathBuf, String) {
        let rel = format!("{}/{}", self.call.org_id, self.call.id);
        (self.inner.cfg.recordings_dir.join(&rel), rel)
    }

    /// Starts RTP + recorder for negotiated media and, when the call has an agent, the
    /// conversation (which greets).
    pub(super) async fn start_media(&mut self, params: &sdp::MediaParams) -> Option<Media> {
        let (rtp, rtcp) = self.rtp.take()?;
        let remote = params
            .remote_rtp
            .unwrap_or_else(|| SocketAddr::new(IpAddr::from([0, 0, 0, 0]), 9));
        let mut cfg = SessionConfig::new(remote, params.payload_type);
        cfg.telephone_event_pt = params.telephone_event_pt;
        cfg.cname = format!("switchboard-{}", self.call.id);
        let (base, _) = self.recording_base();
        if let Some(dir) = base.parent() {
            let _ = tokio::fs::create_dir_all(dir).await;
        }
        let recorder = match CallRecorder::create(&base) {
            Ok(r) => Some(r),
            Err(e) => {
                // The call goes on unrecorded (say, the recordings disk is full); the call
                // says why it has no recording.
                tracing::error!(call_id = %self.call.id, error = %e, "recorder could not start");
                self.event(serde_json::json!({"type": "recording-failed", "reason": format!("the recording could not start: {e}"), "at": switchboard_domain::Timestamp::now()}));
                None
            }
        };
        let providers = self.providers();
        if self.agent.is_some() {
            cfg.emit_caller_audio = true;
        }
        let (session, events) = RtpSession::start(cfg, rtp, Some(rtcp), recorder);
        if params.on_hold {
            let _ = session.set_hold(true).await;
        }
        if let Some(a) = &self.agent {
            let secret = self.tool_secret(a).await;
            self.link = Some(AgentLink::start(
                providers,
                a,
                &self.call,
                session.control(),
                secret,
            ));
        }
        Some((session, events))
    }

    /// Stops the media session; stores its counters and returns the recording's metadata.
    pub(super) async fn stop_media(&self, session: SessionHandle) -> Option<RecordingMeta> {
        let id = self.call.id;
        let mut recording = None;
        match session.stop().await {
            Ok(report) => {
                self.store_audio_metrics(&report.stats);
                if let Some(r) = report.recording {
                    let (_, rel) = self.recording_base();
                    let incomplete_reason = r.incomplete.map(|e| {
                        tracing::error!(call_id = %id, error = %e, recorded_ms = r.duration_ms, "recording incomplete");
                        format!(
                            "the recording stops after {:.1} s of the call: {e}",
                            r.duration_ms as f64 / 1000.0
                        )
                    });
                    recording = Some(RecordingMeta {
                        key: format!("{rel}.mp3"),
                        stereo_key: Some(format!("{rel}.stereo.mp3")),
                        duration_ms: Some(r.duration_ms as i64),
                        size_bytes: Some(r.size_bytes as i64),
                        sha256: Some(r.sha256_hex),
                        incomplete_reason,
                    });
                } else if let Some(e) = report.recording_error {
                    tracing::error!(call_id = %id, error = %e, "recording failed");
                    self.event(serde_json::json!({"type": "recording-failed", "reason": e, "at": switchboard_domain::Timestamp::now()}));
                }
            }
            Err(e) => {
                tracing::error!(call_id = %id, error = %e, "media session did not stop cleanly")
            }
        }
        recording
    }

    /// Keeps the media session's counters on the call (`audio_metrics`, shown with
    /// `include=metrics`). Written before the final status so a finished call has them.
    fn store_audio_metrics(&self, stats: &SessionStats) {
        let m = audio_metrics(stats);
        self.writer.send(Write::Details(
            "audio metrics",
            std::sync::Arc::new(move |d| d.audio_metrics = Some(m.clone())),
        ));
    }
}

/// The RTP counters of a call as users see them in `audio_metrics`.
fn audio_metrics(s: &SessionStats) -> serde_json::Value {
    let j = &s.jitter;
    json!({
        "packets_received": s.packets_received,
        "packets_sent": s.packets_sent,
        "lost": j.lost,
        "late": j.late,
        "duplicates": j.duplicates,
        "reordered": j.reordered,
        "concealed": j.concealed,
        "overflow_dropped": j.overflow_dropped,
        "resyncs": j.resyncs,
        // RFC 3550 A.8 interarrival jitter, timestamp units of the 8 kHz clock → ms.
        "jitter_ms": f64::from(j.jitter) / 8.0,
        "parse_errors": s.parse_errors,
        "unexpected_source": s.unexpected_source,
        "unknown_payload": s.unknown_payload,
        "ssrc_changes": s.ssrc_changes,
        "send_errors": s.send_errors,
        "dtmf_digits": s.dtmf_digits,
        "rtcp_sent": s.rtcp_sent,
        "rtcp_received": s.rtcp_received,
        "events_dropped": s.events_dropped,
        "recording_errors": s.recording_errors,
    })
}
