//! The organization's configuration: agents, phone numbers, SIP trunks, contacts, campaigns.

use crate::call::string_enum;
use crate::{
    AgentId, CampaignId, ContactId, OrgId, ParseError, PhoneNumber, PhoneNumberId, Timestamp,
    TrunkId,
};
use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Organization {
    pub id: OrgId,
    pub name: String,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Agent {
    pub id: AgentId,
    /// Stable integer number, unique across the installation; never reused.
    pub number: i64,
    #[serde(skip)]
    pub org_id: OrgId,
    pub name: String,
    pub system_prompt: Option<String>,
    pub initial_message: Option<String>,
    pub voice: Option<String>,
    pub language: Option<String>,
    pub llm_model: Option<String>,
    pub webhook_url: Option<String>,
    pub max_duration_seconds: Option<i64>,
    pub ring_timeout_seconds: Option<i64>,
    pub settings: Option<Value>,
    /// What the agent may do during a call (see `tools`), normalised.
    pub tools: Option<Value>,
    /// What to do on reaching voicemail (see `analysis::Voicemail`).
    pub voicemail: Option<Value>,
    /// Post-call analysis: what success means, the shape of `structured_data_results`, and
    /// the questions answered in `custom_analysis`.
    pub success_criteria: Option<String>,
    pub analysis_schema: Option<Value>,
    pub analysis_questions: Option<Value>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Every agent field a client can set. `None` leaves a field as it is on update.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentPatch {
    pub name: Option<String>,
    pub system_prompt: Option<Option<String>>,
    pub initial_message: Option<Option<String>>,
    pub voice: Option<Option<String>>,
    pub language: Option<Option<String>>,
    pub llm_model: Option<Option<String>>,
    pub webhook_url: Option<Option<String>>,
    pub max_duration_seconds: Option<Option<i64>>,
    pub ring_timeout_seconds: Option<Option<i64>>,
    pub settings: Option<Option<Value>>,
    pub tools: Option<Option<Value>>,
    pub voicemail: Option<Option<Value>>,
    pub success_criteria: Option<Option<String>>,
    pub analysis_schema: Option<Option<Value>>,
    pub analysis_questions: Option<Option<Value>>,
}

/// A number the organization owns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OwnedNumber {
    pub id: PhoneNumberId,
    /// Stable integer number (OmniDimension's `from_number_id`).
    pub number_id: i64,
    #[serde(skip)]
    pub org_id: OrgId,
    pub phone_number: PhoneNumber,
    pub label: Option<String>,
    pub agent_id: Option<AgentId>,
    pub trunk_id: Option<TrunkId>,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct OwnedNumberPatch {
    pub phone_number: Option<PhoneNumber>,
    pub label: Option<Option<String>>,
    pub agent_id: Option<Option<AgentId>>,
    pub trunk_id: Option<Option<TrunkId>>,
}

string_enum!(Transport, "transport" { Udp = "udp", Tcp = "tcp" });

/// A SIP trunk (a carrier or a PBX). The password is write-only: it is never serialized.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trunk {
    pub id: TrunkId,
    #[serde(skip)]
    pub org_id: OrgId,
    pub name: String,
    pub host: String,
    pub port: u16,
    pub transport: Transport,
    pub username: Option<String>,
    #[serde(skip)]
    pub password: Option<String>,
    pub default_caller_id: Option<PhoneNumber>,
    pub is_default: bool,
    pub register: bool,
    /// Source addresses (IPs) allowed to send inbound calls through this trunk.
    pub inbound_sources: Vec<String>,
    pub created_at: Timestamp,
}

impl Trunk {
    /// Shown instead of the password so a client can tell whether one is set.
    pub fn has_password(&self) -> bool {
        self.password.as_deref().is_some_and(|p| !p.is_empty())
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrunkPatch {
    pub name: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub transport: Option<Transport>,
    pub username: Option<Option<String>>,
    pub password: Option<Option<String>>,
    pub default_caller_id: Option<Option<PhoneNumber>>,
    pub is_default: Option<bool>,
    pub register: Option<bool>,
    pub inbound_sources: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Contact {
    pub id: ContactId,
    #[serde(skip)]
    pub org_id: OrgId,
    pub identifier: PhoneNumber,
    pub contact_type: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub created_date: Timestamp,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContactPatch {
    pub identifier: Option<PhoneNumber>,
    pub contact_type: Option<String>,
    pub first_name: Option<Option<String>>,
    pub last_name: Option<Option<String>>,
    pub email: Option<Option<String>>,
}

string_enum!(CampaignStatus, "status" {
    Draft = "draft",
    Active = "active",
    Paused = "paused",
    Completed = "completed",
});

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Campaign {
    pub id: CampaignId,
    #[serde(skip)]
    pub org_id: OrgId,
    pub name: String,
    pub agent_id: Option<AgentId>,
    pub status: CampaignStatus,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct CampaignPatch {
    pub name: Option<String>,
    pub agent_id: Option<Option<AgentId>>,
    pub status: Option<CampaignStatus>,
}

/// A short human-entered text field: trimmed, non-empty, bounded.
pub fn parse_name(param: &str, s: &str, max: usize) -> Result<String, ParseError> {
    let t = s.trim();
    if t.is_empty() || t.chars().count() > max {
        return Err(ParseError::new(format!(
            "{param} must be a non-empty string of at most {max} characters"
        )));
    }
    Ok(t.to_string())
}

/// How an agent decides that the caller has finished a turn (agent `settings.turn_detection`):
/// `smart_turn` (the default) asks the end-of-turn model at each pause that follows new
/// speech; `silence` ends the turn after `end_of_turn_silence_seconds` of silence, without the
/// model (most of a conversing call's CPU; see BENCHMARKS.md "Voice agent").
pub const TURN_DETECTION_MODES: [&str; 2] = ["smart_turn", "silence"];

/// Checks the conversation keys of an agent's `settings` (other keys are the client's own and
/// kept as sent): `interruptible` (boolean), `silence_timeout_seconds` (number, 1-3600),
/// `max_reprompts` (integer, 0-10), `response_timeout_seconds` (number, 0.5-30),
/// `turn_detection` (`smart_turn` or `silence`), `end_of_turn_silence_seconds` (number,
/// 0.2-5), `reprompt_message`, `goodbye_message`,
/// `fallback_message` (strings up to 2000 characters).
pub fn check_agent_settings(settings: &Value) -> Result<(), ParseError> {
    let Some(m) = settings.as_object() else {
        return Err(ParseError::new("settings must be a JSON object"));
    };
    if let Some(v) = m.get("interruptible") {
        if !v.is_boolean() {
            return Err(ParseError::new(format!(
                "settings.interruptible must be true or false, got {v}"
            )));
        }
    }
    if let Some(v) = m.get("turn_detection") {
        if !matches!(v.as_str(), Some(mode) if TURN_DETECTION_MODES.contains(&mode)) {
            return Err(ParseError::new(format!(
                "settings.turn_detection must be one of {}, got {v}",
                TURN_DETECTION_MODES.join(", ")
            )));
        }
    }
    let number = |k: &str, lo: f64, hi: f64, integer: bool| -> Result<(), ParseError> {
        let Some(v) = m.get(k) else { return Ok(()) };
        // An integer may be written `2.0` (JSON Schema's `integer` counts it).
        let ok = match (integer, v.as_f64()) {
            (true, Some(x)) => x.fract() == 0.0 && (lo..=hi).contains(&x),
            (false, Some(x)) => (lo..=hi).contains(&x),
            _ => false,
        };
        if ok {
            return Ok(());
        }
        let kind = if integer { "an integer" } else { "a number" };
        Err(ParseError::new(format!(
            "settings.{k} must be {kind} from {lo} to {hi}, got {v}"
        )))
    };
    number("silence_timeout_seconds", 1.0, 3600.0, false)?;
    number("response_timeout_seconds", 0.5, 30.0, false)?;
    number("max_reprompts", 0.0, 10.0, true)?;
    number("end_of_turn_silence_seconds", 0.2, 5.0, false)?;
    for k in ["reprompt_message", "goodbye_message", "fallback_message"] {
        if let Some(v) = m.get(k) {
            match v.as_str() {
                Some(s) if s.chars().count() <= 2000 && !s.trim().is_empty() => {}
                _ => {
                    return Err(ParseError::new(format!(
                        "settings.{k} must be a non-empty string of at most 2000 characters"
                    )))
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod settings_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn conversation_settings_are_checked() {
        assert!(check_agent_settings(&json!({"interruptible": false, "silence_timeout_seconds": 2.5, "max_reprompts": 0, "own": [1]})).is_ok());
        let e = check_agent_settings(&json!({"interruptible": "no"})).unwrap_err();
        assert_eq!(
            e.message,
            "settings.interruptible must be true or false, got \"no\""
        );
        assert_eq!(
            check_agent_settings(&json!({"silence_timeout_seconds": 0}))
                .unwrap_err()
                .message,
            "settings.silence_timeout_seconds must be a number from 1 to 3600, got 0"
        );
        assert!(check_agent_settings(&json!({"max_reprompts": 11})).is_err());
        assert!(check_agent_settings(&json!({"max_reprompts": 1.5})).is_err());
        assert!(check_agent_settings(&json!({"goodbye_message": ""})).is_err());
        assert!(check_agent_settings(
            &json!({"turn_detection": "silence", "end_of_turn_silence_seconds": 0.5})
        )
        .is_ok());
        assert!(check_agent_settings(&json!({"turn_detection": "smart_turn"})).is_ok());
        assert_eq!(
            check_agent_settings(&json!({"turn_detection": "vad"}))
                .unwrap_err()
                .message,
            "settings.turn_detection must be one of smart_turn, silence, got \"vad\""
        );
        assert!(check_agent_settings(&json!({"turn_detection": true})).is_err());
        assert_eq!(
            check_agent_settings(&json!({"end_of_turn_silence_seconds": 0.1}))
                .unwrap_err()
                .message,
            "settings.end_of_turn_silence_seconds must be a number from 0.2 to 5, got 0.1"
        );
        assert!(check_agent_settings(&json!({"end_of_turn_silence_seconds": "1"})).is_err());
    }
}
