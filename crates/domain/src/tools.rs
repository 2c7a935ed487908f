//! An agent's tools: what its LLM may do during a call (issue 10).
//!
//! The agent resource carries them as `tools`, a JSON array of
//! `{"type": "end_call"}`, `{"type": "transfer_call", "destinations": [{"number", "description"}]}`,
//! `{"type": "send_dtmf"}` and
//! `{"type": "webhook", "name", "description", "parameters", "url", "method", "headers", "timeout_ms"}`.
//! [`parse_tools`] checks such an array (a 400 names the first thing wrong) and normalises it
//! (defaults filled in); [`Tool::definition`] is what the LLM sees (an OpenAI tool definition);
//! [`Tool::check_arguments`] validates the LLM's arguments before anything runs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::{ParseError, PhoneNumber};

/// How long a webhook tool may take when the agent does not say.
pub const DEFAULT_TOOL_TIMEOUT_MS: u64 = 10_000;
/// At most this many tools per agent (an LLM chooses poorly among more).
pub const MAX_TOOLS: usize = 32;

/// Digits `send_dtmf` may send (RFC 4733 §3.2 events 0-15).
pub const DTMF_DIGITS: &str = "0123456789*#ABCD";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Destination {
    pub number: PhoneNumber,
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookTool {
    pub name: String,
    pub description: String,
    /// JSON Schema of the arguments (an object schema).
    pub parameters: Value,
    pub url: String,
    pub method: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub timeout_ms: u64,
}

/// One tool of an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Tool {
    EndCall {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
    },
    TransferCall {
        destinations: Vec<Destination>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
    },
    SendDtmf {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
    },
    Webhook(WebhookTool),
}

impl Tool {
    /// The function name the LLM calls.
    pub fn name(&self) -> &str {
        match self {
            Tool::EndCall { .. } => "end_call",
            Tool::TransferCall { .. } => "transfer_call",
            Tool::SendDtmf { .. } => "send_dtmf",
            Tool::Webhook(w) => &w.name,
        }
    }

    /// The OpenAI tool definition (`{"type":"function","function":{name,description,parameters}}`).
    pub fn definition(&self) -> Value {
        let (description, parameters) = match self {
            Tool::EndCall { description } => (
                description.clone().unwrap_or_else(|| {
                    "End the call. Use it once the conversation is over, after saying goodbye."
                        .into()
                }),
                json!({"type": "object", "properties": {}, "additionalProperties": false}),
            ),
            Tool::TransferCall {
                destinations,
                description,
            } => {
                let list: Vec<String> = destinations
                    .iter()
                    .map(|d| format!("{}: {}", d.number, d.description))
                    .collect();
                (
                    format!(
                        "{} Destinations: {}.",
                        description.clone().unwrap_or_else(|| {
                            "Transfer the caller to a person or department (the call leaves this agent)."
                                .into()
                        }),
                        list.join("; ")
                    ),
                    json!({
                        "type": "object",
                        "properties": {"destination": {
                            "type": "string",
                            "enum": destinations.iter().map(|d| d.number.as_str()).collect::<Vec<_>>(),
                            "description": "The number to transfer to, one of the listed destinations"
                        }},
                        "required": ["destination"],
                        "additionalProperties": false
                    }),
                )
            }
            Tool::SendDtmf { description } => (
                description.clone().unwrap_or_else(|| {
                    "Press keys on the phone keypad (for automated menus).".into()
                }),
                json!({
                    "type": "object",
                    "properties": {"digits": {
                        "type": "string",
                        "pattern": "^[0-9*#A-D]{1,32}$",
                        "description": "The keys to press, in order: 0-9, * and #"
                    }},
                    "required": ["digits"],
                    "additionalProperties": false
                }),
            ),
            Tool::Webhook(w) => (w.description.clone(), w.parameters.clone()),
        };
        json!({"type": "function", "function": {
            "name": self.name(), "description": description, "parameters": parameters
        }})
    }

    /// Checks the LLM's arguments (a JSON text) against the tool's parameters. The error says
    /// what is wrong in words the LLM can act on.
    pub fn check_arguments(&self, arguments: &str) -> Result<Value, String> {
        let args: Value = if arguments.trim().is_empty() {
            json!({})
        } else {
            serde_json::from_str(arguments)
                .map_err(|e| format!("arguments are not valid JSON: {e}"))?
        };
        let def = self.definition();
        let schema = &def["function"]["parameters"];
        schema_errors(schema, &args).map_err(|e| match e {
            SchemaCheck::Unusable(e) => format!("the tool's parameter schema is unusable: {e}"),
            SchemaCheck::Invalid(e) => format!("invalid arguments: {e}"),
        })?;
        Ok(args)
    }
}

/// Why a value did not pass [`schema_errors`].
#[derive(Debug, Clone, PartialEq)]
pub enum SchemaCheck {
    /// The schema itself cannot be compiled.
    Unusable(String),
    /// The value breaks the schema: the first few errors, each with where it is.
    Invalid(String),
}

/// Checks `value` against a JSON Schema. Used for tool arguments and for the LLM's post-call
/// analysis, so both explain a mismatch the same way (words an LLM can act on).
pub fn schema_errors(schema: &Value, value: &Value) -> Result<(), SchemaCheck> {
    let validator =
        jsonschema::validator_for(schema).map_err(|e| SchemaCheck::Unusable(e.to_string()))?;
    let errors: Vec<String> = validator
        .iter_errors(value)
        .take(3)
        .map(|e| {
            let at = e.instance_path().to_string();
            if at.is_empty() {
                e.to_string()
            } else {
                format!("{at}: {e}")
            }
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(SchemaCheck::Invalid(errors.join("; ")))
    }
}

fn text(
    m: &serde_json::Map<String, Value>,
    k: &str,
    at: &str,
    max: usize,
) -> Result<Option<String>, ParseError> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.trim().is_empty() && s.chars().count() <= max => {
            Ok(Some(s.clone()))
        }
        Some(v) => Err(ParseError::new(format!(
            "{at}.{k} must be a non-empty string of at most {max} characters, got {v}"
        ))),
    }
}

/// Checks that `schema` is a usable JSON Schema (draft 2020-12 unless it says otherwise).
pub fn check_json_schema(schema: &Value, at: &str) -> Result<(), ParseError> {
    if !schema.is_object() {
        return Err(ParseError::new(format!(
            "{at} must be a JSON Schema object"
        )));
    }
    if let Some(s) = schema.get("$schema") {
        // Only the drafts the validator carries: a remote meta-schema is never fetched.
        let known = s.as_str().is_some_and(|s| {
            s.starts_with("https://json-schema.org/") || s.starts_with("http://json-schema.org/")
        });
        if !known {
            return Err(ParseError::new(format!(
                "{at}.$schema must name a json-schema.org draft (4, 6, 7, 2019-09 or 2020-12), got {s}"
            )));
        }
    }
    jsonschema::meta::validate(schema)
        .map_err(|e| ParseError::new(format!("{at} is not a valid JSON Schema: {e}")))?;
    jsonschema::validator_for(schema)
        .map_err(|e| ParseError::new(format!("{at} is not a usable JSON Schema: {e}")))?;
    Ok(())
}

/// Parses and normalises an agent's `tools` (null or an array).
pub fn parse_tools(v: &Value) -> Result<Vec<Tool>, ParseError> {
    let items = match v {
        Value::Null => return Ok(Vec::new()),
        Value::Array(a) => a,
        _ => return Err(ParseError::new("tools must be an array of tool objects")),
    };
    if items.len() > MAX_TOOLS {
        return Err(ParseError::new(format!(
            "tools holds {} tools; at most {MAX_TOOLS} are allowed",
            items.len()
        )));
    }
    let mut out: Vec<Tool> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("tools[{i}]");
        let Some(m) = item.as_object() else {
            return Err(ParseError::new(format!("{at} must be an object")));
        };
        let kind = m.get("type").and_then(Value::as_str).unwrap_or("");
        let known: &[&str] = match kind {
            "end_call" | "send_dtmf" => &["type", "description"],
            "transfer_call" => &["type", "description", "destinations"],
            "webhook" => &[
                "type",
                "name",
                "description",
                "parameters",
                "url",
                "method",
                "headers",
                "timeout_ms",
            ],
            _ => {
                return Err(ParseError::new(format!(
                    "{at}.type must be one of end_call, transfer_call, send_dtmf, webhook, got {}",
                    m.get("type")
                        .map_or("nothing".to_string(), Value::to_string)
                )))
            }
        };
        if let Some(k) = m.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(ParseError::new(format!(
                "{at}: unknown field {k} for a {kind} tool; allowed: {}",
                known.join(", ")
            )));
        }
        let description = text(m, "description", &at, 1000)?;
        let tool = match kind {
            "end_call" => Tool::EndCall { description },
            "send_dtmf" => Tool::SendDtmf { description },
            "transfer_call" => {
                let Some(list) = m.get("destinations").and_then(Value::as_array) else {
                    return Err(ParseError::new(format!(
                        "{at}.destinations must be a non-empty array of {{number, description}}"
                    )));
                };
                if list.is_empty() || list.len() > 20 {
                    return Err(ParseError::new(format!(
                        "{at}.destinations must hold 1 to 20 destinations"
                    )));
                }
                let mut destinations = Vec::new();
                for (j, d) in list.iter().enumerate() {
                    let dat = format!("{at}.destinations[{j}]");
                    let Some(dm) = d.as_object() else {
                        return Err(ParseError::new(format!("{dat} must be an object")));
                    };
                    let number = dm.get("number").and_then(Value::as_str).ok_or_else(|| {
                        ParseError::new(format!(
                            "{dat}.number is required (E.164, like +14155550123)"
                        ))
                    })?;
                    let number = PhoneNumber::parse(number)
                        .map_err(|e| ParseError::new(format!("{dat}.number: {}", e.message)))?;
                    let description = text(dm, "description", &dat, 500)?.ok_or_else(|| {
                        ParseError::new(format!(
                            "{dat}.description is required: the LLM chooses the destination by it"
                        ))
                    })?;
                    destinations.push(Destination {
                        number,
                        description,
                    });
                }
                Tool::TransferCall {
                    destinations,
                    description,
                }
            }
            _ => {
                let name = m.get("name").and_then(Value::as_str).unwrap_or("");
                let valid_name = !name.is_empty()
                    && name.len() <= 64
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                if !valid_name {
                    return Err(ParseError::new(format!(
                        "{at}.name must be 1 to 64 characters of a-z, A-Z, 0-9, _ and -"
                    )));
                }
                if ["end_call", "transfer_call", "send_dtmf"].contains(&name) {
                    return Err(ParseError::new(format!(
                        "{at}.name {name} is a built-in tool's name; choose another"
                    )));
                }
                let description = description.ok_or_else(|| {
                    ParseError::new(format!(
                        "{at}.description is required: the LLM decides when to call the tool by it"
                    ))
                })?;
                let parameters = m
                    .get("parameters")
                    .cloned()
                    .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
                check_json_schema(&parameters, &format!("{at}.parameters"))?;
                if parameters.get("type").and_then(Value::as_str) != Some("object") {
                    return Err(ParseError::new(format!(
                        "{at}.parameters must be an object schema ({{\"type\": \"object\", ...}}): function arguments are a JSON object"
                    )));
                }
                let url = m.get("url").and_then(Value::as_str).unwrap_or("");
                let parsed = url::Url::parse(url).ok();
                if !parsed
                    .as_ref()
                    .is_some_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
                {
                    return Err(ParseError::new(format!(
                        "{at}.url must be an absolute http:// or https:// URL, got {url:?}"
                    )));
                }
                let method = match m.get("method") {
                    None | Some(Value::Null) => "POST".to_string(),
                    Some(Value::String(s))
                        if ["GET", "POST", "PUT", "PATCH", "DELETE"]
                            .contains(&s.to_ascii_uppercase().as_str()) =>
                    {
                        s.to_ascii_uppercase()
                    }
                    Some(v) => {
                        return Err(ParseError::new(format!(
                            "{at}.method must be one of GET, POST, PUT, PATCH, DELETE, got {v}"
                        )))
                    }
                };
                let mut headers = BTreeMap::new();
                match m.get("headers") {
                    None | Some(Value::Null) => {}
                    Some(Value::Object(h)) => {
                        for (k, v) in h {
                            let ok_name = !k.is_empty()
                                && k.bytes()
                                    .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
                            let Some(val) = v.as_str().filter(|s| {
                                ok_name && !s.bytes().any(|b| b == b'\r' || b == b'\n')
                            }) else {
                                return Err(ParseError::new(format!(
                                    "{at}.headers must map header names (letters, digits, - and _) to single-line strings; {k:?} does not"
                                )));
                            };
                            headers.insert(k.clone(), val.to_string());
                        }
                    }
                    Some(_) => {
                        return Err(ParseError::new(format!(
                            "{at}.headers must be an object of header names to strings"
                        )))
                    }
                }
                let timeout_ms = match m.get("timeout_ms") {
                    None | Some(Value::Null) => DEFAULT_TOOL_TIMEOUT_MS,
                    // `5000.0` is the integer 5000 too (JSON Schema's `integer`).
                    Some(v) => match v.as_u64().or_else(|| {
                        v.as_f64()
                            .filter(|x| x.fract() == 0.0 && (0.0..1e15).contains(x))
                            .map(|x| x as u64)
                    }) {
                        Some(n) if (100..=120_000).contains(&n) => n,
                        _ => {
                            return Err(ParseError::new(format!(
                                "{at}.timeout_ms must be an integer from 100 to 120000, got {v}"
                            )))
                        }
                    },
                };
                Tool::Webhook(WebhookTool {
                    name: name.to_string(),
                    description,
                    parameters,
                    url: url.to_string(),
                    method,
                    headers,
                    timeout_ms,
                })
            }
        };
        if out.iter().any(|t| t.name() == tool.name()) {
            return Err(ParseError::new(format!(
                "{at}: a tool named {} is already listed; tool names must be unique",
                tool.name()
            )));
        }
        out.push(tool);
    }
    Ok(out)
}

/// `tools` as stored and shown: the normalised array.
pub fn tools_json(tools: &[Tool]) -> Value {
    serde_json::to_value(tools).unwrap_or(Value::Array(Vec::new()))
}

/// Checks the digits of a `send_dtmf` call.
pub fn check_dtmf(digits: &str) -> Result<(), String> {
    if digits.is_empty() || digits.len() > 32 {
        return Err("digits must hold 1 to 32 keys".into());
    }
    match digits.chars().find(|c| !DTMF_DIGITS.contains(*c)) {
        Some(c) => Err(format!("{c:?} is not a phone key; allowed: 0-9, *, #, A-D")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_kind_and_fills_defaults() {
        let tools = parse_tools(&json!([
            {"type": "end_call"},
            {"type": "transfer_call", "destinations": [{"number": "+14155550100", "description": "Sales"}]},
            {"type": "send_dtmf"},
            {"type": "webhook", "name": "lookup_order", "description": "Find an order",
             "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
             "url": "https://example.com/orders"}
        ]))
        .unwrap();
        assert_eq!(tools.len(), 4);
        let Tool::Webhook(w) = &tools[3] else {
            panic!()
        };
        assert_eq!((w.method.as_str(), w.timeout_ms), ("POST", 10_000));
        let back = tools_json(&tools);
        assert_eq!(back[3]["timeout_ms"], 10_000);
        assert_eq!(back[0], json!({"type": "end_call"}));
        assert_eq!(
            parse_tools(&back).unwrap(),
            tools,
            "the stored form parses to itself"
        );
        let def = tools[1].definition();
        assert_eq!(def["function"]["name"], "transfer_call");
        assert_eq!(
            def["function"]["parameters"]["properties"]["destination"]["enum"],
            json!(["+14155550100"])
        );
    }

    #[test]
    fn rejects_what_is_wrong_with_a_message() {
        for (v, says) in [
            (json!({"type": "end_call"}), "must be an array"),
            (
                json!([{"type": "teleport"}]),
                "tools[0].type must be one of",
            ),
            (
                json!([{"type": "transfer_call", "destinations": []}]),
                "1 to 20",
            ),
            (
                json!([{"type": "transfer_call", "destinations": [{"number": "555", "description": "x"}]}]),
                "destinations[0].number",
            ),
            (
                json!([{"type": "transfer_call", "destinations": [{"number": "+14155550100"}]}]),
                "description is required",
            ),
            (
                json!([{"type": "webhook", "name": "bad name", "description": "d", "url": "https://x.io"}]),
                ".name must be",
            ),
            (
                json!([{"type": "webhook", "name": "end_call", "description": "d", "url": "https://x.io"}]),
                "built-in",
            ),
            (
                json!([{"type": "webhook", "name": "a", "description": "d", "url": "ftp://x.io"}]),
                ".url must be",
            ),
            (
                json!([{"type": "webhook", "name": "a", "description": "d", "url": "https://x.io", "parameters": {"type": "nope"}}]),
                "not a valid JSON Schema",
            ),
            (
                json!([{"type": "webhook", "name": "a", "description": "d", "url": "https://x.io", "parameters": {"type": "string"}}]),
                "object schema",
            ),
            (
                json!([{"type": "webhook", "name": "a", "description": "d", "url": "https://x.io", "timeout_ms": 5}]),
                "timeout_ms",
            ),
            (
                json!([{"type": "webhook", "name": "a", "description": "d", "url": "https://x.io", "headers": {"X": "a\r\nb"}}]),
                "headers",
            ),
            (
                json!([{"type": "webhook", "name": "a", "description": "d", "url": "https://x.io", "parameters": {"$schema": "https://evil.example/s", "type": "object"}}]),
                "$schema",
            ),
            (
                json!([{"type": "end_call"}, {"type": "end_call"}]),
                "unique",
            ),
            (
                json!([{"type": "end_call", "destinations": []}]),
                "unknown field destinations",
            ),
        ] {
            let e = parse_tools(&v).unwrap_err().message;
            assert!(e.contains(says), "{v}: {e}");
        }
    }

    #[test]
    fn arguments_are_checked_against_the_schema() {
        let tools = parse_tools(&json!([
            {"type": "webhook", "name": "book", "description": "Book a slot",
             "parameters": {"type": "object", "properties": {"day": {"type": "string", "enum": ["mon", "tue"]}, "people": {"type": "integer", "minimum": 1}}, "required": ["day"]},
             "url": "http://127.0.0.1:9/book"},
            {"type": "send_dtmf"}
        ]))
        .unwrap();
        assert_eq!(
            tools[0]
                .check_arguments(r#"{"day":"mon","people":2}"#)
                .unwrap(),
            json!({"day": "mon", "people": 2})
        );
        let e = tools[0].check_arguments(r#"{"people":0}"#).unwrap_err();
        assert!(e.contains("day") && e.contains("invalid arguments"), "{e}");
        assert!(tools[0]
            .check_arguments("{not json")
            .unwrap_err()
            .contains("not valid JSON"));
        assert!(tools[1].check_arguments(r#"{"digits":"12#"}"#).is_ok());
        assert!(tools[1].check_arguments(r#"{"digits":"12x"}"#).is_err());
        assert!(check_dtmf("0*#A").is_ok());
        assert!(check_dtmf("").is_err() && check_dtmf("1 2").is_err());
    }
}
