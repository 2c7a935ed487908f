//! Webhook tools: the HTTP request a tool call becomes, signed, with its timeout.
//!
//! Requests are signed the Standard Webhooks way (the platform's own event webhooks use the
//! same scheme), so one verifier serves both: `webhook-id` (unique per tool call),
//! `webhook-timestamp` (Unix seconds) and `webhook-signature: v1,<base64 HMAC-SHA256 of
//! "id.timestamp.body">` keyed with the agent's webhook secret (`whsec_<base64>`; the bytes
//! after the prefix are the key). The call id travels in the body and in `x-switchboard-call-id`.
//!
//! POST, PUT and PATCH send `{"call_id", "tool", "tool_call_id", "arguments"}` as JSON; GET
//! and DELETE send the arguments as query parameters (scalars only; others as JSON text).
//! A 2xx answer is the result (JSON if it parses, else its text, at most 16 KiB); anything
//! else, a timeout or a connection failure is an error the LLM is told about.

use serde_json::{json, Value};
use std::time::Duration;
use switchboard_domain::signing;
use switchboard_domain::tools::WebhookTool;

/// Longest tool answer passed to the LLM.
pub const MAX_RESULT_BYTES: usize = 16 * 1024;

/// Who is calling the tool: the call, the tool call and the signing secret.
#[derive(Debug, Clone)]
pub struct ToolCallContext {
    pub call_id: String,
    pub tool_call_id: String,
    pub secret: Option<String>,
}

/// Calls a webhook tool. The error says what went wrong in words the LLM can relay.
pub async fn call_webhook(
    client: &reqwest::Client,
    tool: &WebhookTool,
    ctx: &ToolCallContext,
    arguments: &Value,
) -> Result<Value, String> {
    let method = reqwest::Method::from_bytes(tool.method.as_bytes())
        .map_err(|_| format!("unsupported method {}", tool.method))?;
    let with_body = matches!(tool.method.as_str(), "POST" | "PUT" | "PATCH");
    let body = if with_body {
        json!({
            "call_id": ctx.call_id,
            "tool": tool.name,
            "tool_call_id": ctx.tool_call_id,
            "arguments": arguments,
        })
        .to_string()
    } else {
        String::new()
    };
    let mut req = client
        .request(method, &tool.url)
        .timeout(Duration::from_millis(tool.timeout_ms));
    if !with_body {
        let mut q: Vec<(String, String)> = vec![("call_id".into(), ctx.call_id.clone())];
        if let Some(m) = arguments.as_object() {
            for (k, v) in m {
                let v = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                q.push((k.clone(), v));
            }
        }
        req = req.query(&q);
    }
    for (k, v) in &tool.headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let id = format!("tool_{}", ctx.tool_call_id);
    let ts = chrono_now();
    req = req
        .header("x-switchboard-call-id", ctx.call_id.as_str())
        .header("webhook-id", id.as_str())
        .header("webhook-timestamp", ts.to_string());
    if let Some(key) = ctx.secret.as_deref().and_then(signing::secret_key) {
        req = req.header(
            "webhook-signature",
            signing::sign(&key, &id, ts, body.as_bytes()),
        );
    }
    if with_body {
        req = req
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
    }
    let resp = req.send().await.map_err(|e| {
        if e.is_timeout() {
            format!("the tool did not answer within {} ms", tool.timeout_ms)
        } else {
            format!("could not reach the tool: {}", without_url(&e))
        }
    })?;
    let status = resp.status();
    let bytes = resp.bytes().await.map_err(|e| {
        if e.is_timeout() {
            format!("the tool did not answer within {} ms", tool.timeout_ms)
        } else {
            format!("the tool's answer broke off: {}", without_url(&e))
        }
    })?;
    let cut = &bytes[..bytes.len().min(MAX_RESULT_BYTES)];
    let text = String::from_utf8_lossy(cut).to_string();
    if !status.is_success() {
        let snippet: String = text.chars().take(300).collect();
        return Err(format!(
            "the tool answered HTTP {}: {snippet}",
            status.as_u16()
        ));
    }
    if text.trim().is_empty() {
        return Ok(json!({"status": status.as_u16()}));
    }
    Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// reqwest errors name the URL, whose query may carry arguments: keep only the cause.
fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_connect() {
        "connection failed"
    } else if e.is_redirect() {
        "redirects are not followed"
    } else if e.is_body() || e.is_decode() {
        "bad response body"
    } else {
        "request failed"
    };
    match std::error::Error::source(e) {
        Some(src) => format!("{kind}: {src}"),
        None => kind.to_string(),
    }
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
