//! The canonical call: one record that holds every field any supported API documents.

use crate::{
    AgentId, CallId, CampaignId, ContactId, OrgId, ParseError, PhoneNumber, PhoneNumberId,
    Timestamp,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

macro_rules! string_enum {
    ($(#[$doc:meta])* $name:ident, $param:literal { $($variant:ident = $s:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name { $(#[serde(rename = $s)] $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $s),+ }
            }
            /// Parses a client value; the error lists every allowed value.
            pub fn parse_param(param: &str, s: &str) -> Result<Self, ParseError> {
                match s.trim() {
                    $($s => Ok($name::$variant),)+
                    other => Err(ParseError::new(format!(
                        "{param} must be one of {}, got {:?}",
                        [$($s),+].join(", "),
                        crate::phone::clip(other)
                    ))),
                }
            }
            pub fn parse(s: &str) -> Result<Self, ParseError> {
                Self::parse_param($param, s)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use string_enum;

string_enum!(
    /// The status set of the call resource (002): every API renders these values.
    CallStatus, "status" {
        Dialing = "dialing",
        InProgress = "in_progress",
        Completed = "completed",
        Failed = "failed",
        Transferred = "transferred",
        NoAnswer = "no_answer",
    }
);

string_enum!(CallType, "call_type" { Inbound = "inbound", Outbound = "outbound" });

impl CallStatus {
    pub fn is_final(self) -> bool {
        !matches!(self, CallStatus::Dialing | CallStatus::InProgress)
    }

    /// The allowed transitions. A final status never changes again, so a late SIP response
    /// or a restart sweep cannot rewrite how a call ended.
    pub fn can_become(self, next: CallStatus) -> bool {
        use CallStatus::*;
        matches!(
            (self, next),
            (Dialing, InProgress | NoAnswer)
                | (Dialing | InProgress, Completed | Failed | Transferred)
        )
    }
}

/// The contact on the other end of a call, as embedded in the call resource.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContactSummary {
    pub id: ContactId,
    pub identifier: String,
    pub contact_type: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub created_date: Timestamp,
}

/// The recording of an answered call, once written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordingMeta {
    /// Object-store key of the mono MP3.
    pub key: String,
    /// Object-store key of the dual-channel MP3 (caller left, agent right), if written.
    pub stereo_key: Option<String>,
    pub duration_ms: Option<i64>,
    pub size_bytes: Option<i64>,
    pub sha256: Option<String>,
    /// Why the recording stops before the call did (the recordings disk filled up, the server
    /// stopped mid-call); `None` for a recording of the whole call. What was written before
    /// plays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incomplete_reason: Option<String>,
}

/// The heavy parts of a call: transcript, analysis, metrics, diagnostics, actions. Loaded only
/// when a full payload or an include group asks for them. Each field is null until a part of
/// the system fills it; nothing is invented.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CallDetails {
    pub transcript: Option<String>,
    pub transcript_formatted: Option<Value>,
    pub post_call_analysis: Option<Value>,
    pub call_description: Option<String>,
    pub custom_analysis: Option<Value>,
    pub structured_data_results: Option<Value>,
    pub notes: Option<Value>,
    pub action_executions: Option<Value>,
    pub action_summary: Option<Value>,
    pub quality_metrics: Option<Value>,
    pub latency_metrics: Option<Value>,
    pub audio_metrics: Option<Value>,
    pub enhanced_context: Option<Value>,
    pub turn_events: Option<Value>,
    pub interruptions: Option<Value>,
    pub tool_usage: Option<Value>,
    /// Events during the call (DTMF digits and the like), in order.
    pub events: Option<Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub id: CallId,
    /// Insertion order; the keyset tie-breaker.
    pub seq: i64,
    pub org_id: OrgId,
    pub agent_id: Option<AgentId>,
    pub agent_name: Option<String>,
    /// The agent's stable integer number (OmniDimension addresses agents by integer).
    pub agent_number: Option<i64>,
    pub contact: Option<ContactSummary>,
    pub phone_number_id: Option<PhoneNumberId>,
    pub phone_number_number: Option<i64>,
    pub campaign_id: Option<CampaignId>,
    pub campaign_name: Option<String>,
    pub call_type: CallType,
    pub status: CallStatus,
    /// The customer's number (the far end), E.164.
    pub client_number: PhoneNumber,
    /// Our number: the caller ID of an outbound call, the called number of an inbound one.
    pub agent_phone_number: Option<PhoneNumber>,
    /// String or JSON object, as the client sent it.
    pub context: Option<Value>,
    pub metadata: Option<Value>,
    pub user_speaks_first: bool,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
    pub duration_seconds: Option<i64>,
    pub end_reason: Option<String>,
    pub sip_code: Option<i64>,
    pub went_to_voicemail: Option<bool>,
    pub call_success: Option<bool>,
    /// Who answered an outbound call, by answering-machine detection: `human`,
    /// `machine_start`, `machine_end_beep`, `machine_end_silence`, `fax` or `unknown`.
    pub answered_by: Option<String>,
    pub ring_timeout_seconds: Option<i64>,
    pub recording: Option<RecordingMeta>,
    /// `None` when the store was asked for a light record.
    pub details: Option<CallDetails>,
}

impl Call {
    /// Where the call's MP3 is served. Relative to the API root so it stays right behind any
    /// proxy; the API layer makes it absolute.
    pub fn recording_path(&self) -> Option<String> {
        self.recording
            .as_ref()
            .map(|_| format!("/v1/call/recording/{}.mp3", self.id))
    }

    /// `phone_number_called_from` in the AgentVoice sense: who placed the call.
    pub fn from_number(&self) -> Option<&PhoneNumber> {
        match self.call_type {
            CallType::Outbound => self.agent_phone_number.as_ref(),
            CallType::Inbound => Some(&self.client_number),
        }
    }
}

/// What a dispatch request resolved to, ready to be stored and queued.
#[derive(Debug, Clone)]
pub struct NewCall {
    pub org_id: OrgId,
    pub agent_id: Option<AgentId>,
    pub phone_number_id: Option<PhoneNumberId>,
    pub campaign_id: Option<CampaignId>,
    pub call_type: CallType,
    pub client_number: PhoneNumber,
    pub agent_phone_number: Option<PhoneNumber>,
    pub context: Option<Value>,
    pub metadata: Option<Value>,
    pub user_speaks_first: bool,
    pub ring_timeout_seconds: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_statuses_never_change() {
        for s in CallStatus::ALL {
            for n in CallStatus::ALL {
                if s.is_final() {
                    assert!(!s.can_become(*n), "{s} -> {n}");
                }
            }
        }
        assert!(CallStatus::Dialing.can_become(CallStatus::InProgress));
        assert!(!CallStatus::InProgress.can_become(CallStatus::NoAnswer));
    }

    #[test]
    fn status_parse_lists_allowed() {
        let e = CallStatus::parse("busy").unwrap_err();
        assert_eq!(
            e.message,
            "status must be one of dialing, in_progress, completed, failed, transferred, no_answer, got \"busy\""
        );
    }
}
