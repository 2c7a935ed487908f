//! What an agent does on reaching voicemail, and what post-call analysis asks (issue 10):
//! the agent fields `voicemail`, `success_criteria`, `analysis_schema`, `analysis_questions`.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::tools::check_json_schema;
use crate::ParseError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum VoicemailAction {
    /// End the call at once (end_reason `voicemail`).
    Hangup,
    /// Speak `message` after the beep (or once the greeting ended in silence), then hang up.
    LeaveMessage,
    /// Detect and record the verdict only; the conversation goes on.
    #[default]
    Continue,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Voicemail {
    pub action: VoicemailAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Parses an agent's `voicemail` (null means the default, `continue`).
pub fn parse_voicemail(v: &Value) -> Result<Voicemail, ParseError> {
    let m = match v {
        Value::Null => return Ok(Voicemail::default()),
        Value::Object(m) => m,
        _ => {
            return Err(ParseError::new(
                "voicemail must be an object: {\"action\": \"hangup\" | \"leave_message\" | \"continue\", \"message\": \"...\"}",
            ))
        }
    };
    if let Some(k) = m
        .keys()
        .find(|k| !["action", "message"].contains(&k.as_str()))
    {
        return Err(ParseError::new(format!(
            "voicemail: unknown field {k}; allowed: action, message"
        )));
    }
    let action = match m.get("action").and_then(Value::as_str) {
        Some("hangup") => VoicemailAction::Hangup,
        Some("leave_message") => VoicemailAction::LeaveMessage,
        Some("continue") | None => VoicemailAction::Continue,
        Some(_) => {
            return Err(ParseError::new(format!(
                "voicemail.action must be one of hangup, leave_message, continue, got {}",
                m["action"]
            )))
        }
    };
    if m.get("action").is_some_and(|a| !a.is_string()) {
        return Err(ParseError::new(format!(
            "voicemail.action must be one of hangup, leave_message, continue, got {}",
            m["action"]
        )));
    }
    let message = match m.get("message") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.trim().is_empty() && s.chars().count() <= 2000 => {
            Some(s.clone())
        }
        Some(_) => {
            return Err(ParseError::new(
                "voicemail.message must be a non-empty string of at most 2000 characters",
            ))
        }
    };
    if action == VoicemailAction::LeaveMessage && message.is_none() {
        return Err(ParseError::new(
            "voicemail.message is required when voicemail.action is leave_message",
        ));
    }
    Ok(Voicemail { action, message })
}

/// Checks `success_criteria` (text or null).
pub fn check_success_criteria(v: &Value) -> Result<(), ParseError> {
    match v {
        Value::Null => Ok(()),
        Value::String(s) if !s.trim().is_empty() && s.chars().count() <= 4000 => Ok(()),
        _ => Err(ParseError::new(
            "success_criteria must be a non-empty string of at most 4000 characters",
        )),
    }
}

/// Checks `analysis_schema`: a JSON Schema of an object, the shape of `structured_data_results`.
pub fn check_analysis_schema(v: &Value) -> Result<(), ParseError> {
    if v.is_null() {
        return Ok(());
    }
    check_json_schema(v, "analysis_schema")?;
    if v.get("type").and_then(Value::as_str) != Some("object") {
        return Err(ParseError::new(
            "analysis_schema must describe an object ({\"type\": \"object\", \"properties\": {...}})",
        ));
    }
    Ok(())
}

/// One of `analysis_questions`: asked of every finished conversation, answered in
/// `custom_analysis` under `name`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalysisQuestion {
    pub name: String,
    pub question: String,
    /// `string` (default), `boolean`, `number` or `enum` (then `choices`).
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub choices: Option<Vec<String>>,
}

impl AnalysisQuestion {
    /// The JSON Schema of the answer (null when the conversation does not tell).
    pub fn answer_schema(&self) -> Value {
        match self.kind.as_str() {
            "boolean" => json!({"type": ["boolean", "null"]}),
            "number" => json!({"type": ["number", "null"]}),
            "enum" => {
                let mut c: Vec<Value> = self
                    .choices
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .map(Value::String)
                    .collect();
                c.push(Value::Null);
                json!({"enum": c})
            }
            _ => json!({"type": ["string", "null"]}),
        }
    }
}

/// Parses `analysis_questions`: strings (named q1, q2, …) or `{name, question, type, choices}`.
pub fn parse_analysis_questions(v: &Value) -> Result<Vec<AnalysisQuestion>, ParseError> {
    let items = match v {
        Value::Null => return Ok(Vec::new()),
        Value::Array(a) if a.len() <= 20 => a,
        _ => {
            return Err(ParseError::new(
                "analysis_questions must be an array of at most 20 questions (strings or {name, question, type})",
            ))
        }
    };
    let mut out: Vec<AnalysisQuestion> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("analysis_questions[{i}]");
        let q = match item {
            Value::String(s) if !s.trim().is_empty() && s.chars().count() <= 1000 => {
                AnalysisQuestion {
                    name: format!("q{}", i + 1),
                    question: s.clone(),
                    kind: "string".into(),
                    choices: None,
                }
            }
            Value::Object(m) => {
                if let Some(k) = m
                    .keys()
                    .find(|k| !["name", "question", "type", "choices"].contains(&k.as_str()))
                {
                    return Err(ParseError::new(format!(
                        "{at}: unknown field {k}; allowed: name, question, type, choices"
                    )));
                }
                let name = m.get("name").and_then(Value::as_str).unwrap_or("");
                if name.is_empty()
                    || name.len() > 64
                    || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                {
                    return Err(ParseError::new(format!(
                        "{at}.name must be 1 to 64 characters of a-z, A-Z, 0-9 and _"
                    )));
                }
                let question = m
                    .get("question")
                    .and_then(Value::as_str)
                    .filter(|s| !s.trim().is_empty() && s.chars().count() <= 1000)
                    .ok_or_else(|| {
                        ParseError::new(format!(
                            "{at}.question must be a non-empty string of at most 1000 characters"
                        ))
                    })?;
                let kind = match m.get("type") {
                    None | Some(Value::Null) => "string".to_string(),
                    Some(Value::String(t))
                        if ["string", "boolean", "number", "enum"].contains(&t.as_str()) =>
                    {
                        t.clone()
                    }
                    Some(t) => {
                        return Err(ParseError::new(format!(
                            "{at}.type must be one of string, boolean, number, enum, got {t}"
                        )))
                    }
                };
                let choices = match m.get("choices") {
                    None | Some(Value::Null) => None,
                    Some(Value::Array(c))
                        if !c.is_empty()
                            && c.len() <= 50
                            && c.iter().all(|x| x.as_str().is_some_and(|s| !s.is_empty())) =>
                    {
                        Some(c.iter().filter_map(|x| x.as_str().map(String::from)).collect())
                    }
                    Some(_) => {
                        return Err(ParseError::new(format!(
                            "{at}.choices must be an array of 1 to 50 non-empty strings"
                        )))
                    }
                };
                if (kind == "enum") != choices.is_some() {
                    return Err(ParseError::new(format!(
                        "{at}: choices go with type enum, and type enum needs choices"
                    )));
                }
                AnalysisQuestion {
                    name: name.to_string(),
                    question: question.to_string(),
                    kind,
                    choices,
                }
            }
            _ => {
                return Err(ParseError::new(format!(
                    "{at} must be a question (a string of at most 1000 characters) or {{name, question, type}}"
                )))
            }
        };
        if out.iter().any(|o| o.name == q.name) {
            return Err(ParseError::new(format!(
                "{at}.name {} is used twice; names must be unique",
                q.name
            )));
        }
        out.push(q);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voicemail_settings() {
        assert_eq!(
            parse_voicemail(&Value::Null).unwrap().action,
            VoicemailAction::Continue
        );
        let v =
            parse_voicemail(&json!({"action": "leave_message", "message": "Hi {{name}}"})).unwrap();
        assert_eq!(v.message.as_deref(), Some("Hi {{name}}"));
        for (v, says) in [
            (json!({"action": "leave_message"}), "message is required"),
            (json!({"action": "shout"}), "must be one of"),
            (json!({"action": 3}), "must be one of"),
            (json!({"action": "hangup", "extra": 1}), "unknown field"),
            (json!("hangup"), "must be an object"),
        ] {
            assert!(
                parse_voicemail(&v).unwrap_err().message.contains(says),
                "{v}"
            );
        }
    }

    #[test]
    fn analysis_settings() {
        assert!(check_analysis_schema(
            &json!({"type": "object", "properties": {"date": {"type": "string"}}})
        )
        .is_ok());
        assert!(check_analysis_schema(&json!({"type": "array"})).is_err());
        assert!(check_analysis_schema(&json!({"type": "object", "properties": 3})).is_err());
        let q = parse_analysis_questions(&json!([
            "Did they ask about pricing?",
            {"name": "interested", "question": "Is the caller interested?", "type": "boolean"},
            {"name": "tier", "question": "Which plan?", "type": "enum", "choices": ["basic", "pro"]}
        ]))
        .unwrap();
        assert_eq!(q[0].name, "q1");
        assert_eq!(
            q[2].answer_schema(),
            json!({"enum": ["basic", "pro", null]})
        );
        assert!(
            parse_analysis_questions(&json!([{"name": "x", "question": "y", "type": "enum"}]))
                .is_err()
        );
        assert!(parse_analysis_questions(
            &json!([{"name": "x", "question": "y"}, {"name": "x", "question": "z"}])
        )
        .is_err());
        assert!(check_success_criteria(&json!("")).is_err());
    }
}
