//! Streamed chat completions over the OpenAI wire protocol (`POST {base}/chat/completions` with
//! `stream: true`), which OpenAI, Azure OpenAI, Groq, OpenRouter, vLLM, the llama.cpp server and
//! Ollama (`/v1`) all speak.
//!
//! The response is a server-sent-event stream: `data: {json}` lines, events separated by a blank
//! line, `:` comment lines (OpenRouter's keep-alives), CRLF or LF line endings, and a final
//! `data: [DONE]`. The bytes arrive split anywhere, so [`SseParser`] buffers until a whole line
//! is there. Text deltas are yielded as they come; tool-call fragments are joined by their
//! `index` and yielded whole when the choice finishes.
//!
//! This module also holds the small HTTP helpers the STT and TTS clients share (error bodies,
//! key redaction, URL joining).

use super::{Llm, LlmEvent, LlmRequest, LlmUsage, ProviderError};
use bytes::Bytes;
use futures::stream::{BoxStream, Stream, StreamExt};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION};
use serde_json::{json, Value};
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::time::Duration;

const PROVIDER: &str = "llm";

/// How long the stream may stay silent after its first byte before it is declared broken (a
/// slow local model can pause between tokens, so this is generous).
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// An OpenAI-compatible chat-completions client.
///
/// `base_url` is the API root including its version, e.g. `https://api.openai.com/v1`,
/// `https://api.groq.com/openai/v1`, `http://localhost:11434/v1` (Ollama) or
/// `http://localhost:8080/v1` (llama.cpp, vLLM). `timeout` bounds connecting and waiting for the
/// response headers and the first body bytes.
#[derive(Clone)]
pub struct OpenAiLlm {
    base_url: String,
    api_key: Option<String>,
    timeout: Duration,
    idle_timeout: Duration,
    headers: Vec<(HeaderName, HeaderValue)>,
    query: Vec<(String, String)>,
    client: reqwest::Client,
}

impl fmt::Debug for OpenAiLlm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiLlm")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl OpenAiLlm {
    /// A client for the API at `base_url`; `api_key` is sent as `Authorization: Bearer KEY`
    /// when set (local servers usually need none).
    pub fn new(base_url: impl Into<String>, api_key: Option<String>, timeout: Duration) -> Self {
        Self {
            base_url: base_url.into().trim_end_matches('/').to_string(),
            api_key: api_key.filter(|k| !k.is_empty()),
            timeout,
            idle_timeout: DEFAULT_IDLE_TIMEOUT.max(timeout),
            headers: Vec::new(),
            query: Vec::new(),
            client: http_client(timeout),
        }
    }

    /// Adds a header to every request (Azure: `with_header("api-key", KEY)` with no bearer
    /// key; OpenRouter: `HTTP-Referer`, `X-Title`). Invalid names or values are ignored with a
    /// warning. Header values are marked sensitive so they are never logged.
    pub fn with_header(mut self, name: impl AsRef<str>, value: impl AsRef<str>) -> Self {
        match (
            HeaderName::from_bytes(name.as_ref().as_bytes()),
            HeaderValue::from_str(value.as_ref()),
        ) {
            (Ok(n), Ok(mut v)) => {
                v.set_sensitive(true);
                self.headers.push((n, v));
            }
            _ => tracing::warn!(header = name.as_ref(), "ignoring invalid LLM header"),
        }
        self
    }

    /// Adds a query parameter to every request (Azure: `with_query("api-version", "2024-10-21")`).
    pub fn with_query(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.query.push((name.into(), value.into()));
        self
    }

    /// How long the stream may pause between two reads once it has started (default 60 s, and
    /// never less than the connect timeout).
    pub fn with_idle_timeout(mut self, idle: Duration) -> Self {
        self.idle_timeout = idle;
        self
    }

    fn secrets(&self) -> Vec<String> {
        let mut s: Vec<String> = self.api_key.iter().cloned().collect();
        s.extend(
            self.headers
                .iter()
                .filter_map(|(_, v)| v.to_str().ok())
                .filter(|v| v.len() >= 8)
                .map(str::to_string),
        );
        s.extend(
            self.query
                .iter()
                .filter(|(k, v)| v.len() >= 8 && k.to_ascii_lowercase().contains("key"))
                .map(|(_, v)| v.clone()),
        );
        s
    }
}

/// The JSON body of a streamed chat-completion request.
pub fn request_body(req: &LlmRequest) -> Value {
    let mut body = json!({
        "model": req.model,
        "messages": req.messages,
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    if !req.tools.is_empty() {
        body["tools"] = Value::Array(req.tools.clone());
    }
    if let Some(t) = req.temperature {
        body["temperature"] = json!(t);
    }
    if let Some(m) = req.max_tokens {
        body["max_tokens"] = json!(m);
    }
    body
}

#[async_trait::async_trait]
impl Llm for OpenAiLlm {
    async fn stream(
        &self,
        req: LlmRequest,
    ) -> Result<BoxStream<'static, Result<LlmEvent, ProviderError>>, ProviderError> {
        let secrets = self.secrets();
        let url = join_url(&self.base_url, "chat/completions");
        let mut headers = HeaderMap::new();
        if let Some(key) = &self.api_key {
            let mut v = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| {
                ProviderError::Local {
                    provider: PROVIDER,
                    message: "the API key is not a valid header value".into(),
                }
            })?;
            v.set_sensitive(true);
            headers.insert(AUTHORIZATION, v);
        }
        for (n, v) in &self.headers {
            headers.insert(n.clone(), v.clone());
        }
        let builder = self
            .client
            .post(&url)
            .query(&self.query)
            .headers(headers)
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .json(&request_body(&req));
        let response = match tokio::time::timeout(self.timeout, builder.send()).await {
            Err(_) => return Err(timeout_error(PROVIDER, self.timeout)),
            Ok(Err(e)) => return Err(connect_error(PROVIDER, e, &secrets)),
            Ok(Ok(r)) => r,
        };
        if !response.status().is_success() {
            return Err(status_error(PROVIDER, response, &secrets).await);
        }
        let body = response.bytes_stream();
        Ok(sse_events(body, self.timeout, self.idle_timeout, secrets).boxed())
    }
}

/// Turns the response body into events. Dropping the stream drops the body, which aborts the
/// request.
fn sse_events<S>(
    body: S,
    first_timeout: Duration,
    idle_timeout: Duration,
    secrets: Vec<String>,
) -> impl Stream<Item = Result<LlmEvent, ProviderError>> + Send + 'static
where
    S: Stream<Item = Result<Bytes, reqwest::Error>> + Send + Unpin + 'static,
{
    struct State<S> {
        body: S,
        parser: SseParser,
        acc: ChunkAccumulator,
        out: VecDeque<Result<LlmEvent, ProviderError>>,
        got_bytes: bool,
        over: bool,
        first_timeout: Duration,
        idle_timeout: Duration,
        secrets: Vec<String>,
    }
    let state = State {
        body,
        parser: SseParser::default(),
        acc: ChunkAccumulator::default(),
        out: VecDeque::new(),
        got_bytes: false,
        over: false,
        first_timeout,
        idle_timeout,
        secrets,
    };
    futures::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(item) = st.out.pop_front() {
                return Some((item, st));
            }
            if st.over {
                return None;
            }
            let wait = if st.got_bytes {
                st.idle_timeout
            } else {
                st.first_timeout
            };
            let next = tokio::time::timeout(wait, st.body.next()).await;
            let events = match next {
                Err(_) => {
                    st.over = true;
                    st.out.push_back(Err(timeout_error(PROVIDER, wait)));
                    continue;
                }
                Ok(Some(Err(e))) => {
                    st.over = true;
                    st.out
                        .push_back(Err(connect_error(PROVIDER, e, &st.secrets)));
                    continue;
                }
                Ok(Some(Ok(bytes))) => {
                    st.got_bytes = true;
                    st.parser.feed(&bytes)
                }
                Ok(None) => {
                    st.over = true;
                    st.parser.finish()
                }
            };
            for data in events {
                match st.acc.handle(&data) {
                    Ok(evs) => st.out.extend(evs.into_iter().map(Ok)),
                    Err(e) => {
                        st.out.push_back(Err(e));
                        st.over = true;
                        break;
                    }
                }
                if st.acc.done {
                    st.over = true;
                    break;
                }
            }
            if st.over && !st.acc.done && st.out.iter().all(Result::is_ok) {
                // The body ended without `[DONE]`.
                match st.acc.end_without_done() {
                    Ok(evs) => st.out.extend(evs.into_iter().map(Ok)),
                    Err(e) => st.out.push_back(Err(e)),
                }
            }
        }
    })
}

/// An incremental server-sent-events parser: feed it bytes as they arrive, get back the `data`
/// of each complete event (multi-line data joined with `\n`). Comments and other fields
/// (`event:`, `id:`, `retry:`) are skipped; LF, CRLF and CR line endings are accepted.
#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
    data: Option<String>,
}

impl SseParser {
    /// Consumes `bytes` and returns the data of every event completed by them.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<String> {
        self.buf.extend_from_slice(bytes);
        let mut events = Vec::new();
        let mut start = 0;
        while let Some(rel) = self.buf[start..]
            .iter()
            .position(|&b| b == b'\n' || b == b'\r')
        {
            let end = start + rel;
            let next = if self.buf[end] == b'\r' {
                match self.buf.get(end + 1) {
                    // A CR at the end of what we have: its LF may be in the next read.
                    None => break,
                    Some(b'\n') => end + 2,
                    Some(_) => end + 1,
                }
            } else {
                end + 1
            };
            let line = String::from_utf8_lossy(&self.buf[start..end]).into_owned();
            self.line(&line, &mut events);
            start = next;
        }
        self.buf.drain(..start);
        events
    }

    /// The body ended: a last event not followed by a blank line still counts.
    pub fn finish(&mut self) -> Vec<String> {
        let mut events = Vec::new();
        if !self.buf.is_empty() {
            let rest = std::mem::take(&mut self.buf);
            let line = String::from_utf8_lossy(&rest);
            let line = line.trim_end_matches(['\r', '\n']).to_string();
            self.line(&line, &mut events);
        }
        if let Some(d) = self.data.take() {
            events.push(d);
        }
        events
    }

    fn line(&mut self, line: &str, events: &mut Vec<String>) {
        if line.is_empty() {
            if let Some(d) = self.data.take() {
                events.push(d);
            }
            return;
        }
        if line.starts_with(':') {
            return;
        }
        let (field, value) = match line.find(':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(' ').unwrap_or(v))
            }
            None => (line, ""),
        };
        if field == "data" {
            match &mut self.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            }
        }
    }
}

#[derive(Debug, Default)]
struct PartialToolCall {
    id: String,
    name: String,
    arguments: String,
}

/// Folds `chat.completion.chunk` objects into events.
#[derive(Debug, Default)]
struct ChunkAccumulator {
    tools: BTreeMap<u64, PartialToolCall>,
    finish_reason: Option<String>,
    usage: Option<LlmUsage>,
    done: bool,
}

impl ChunkAccumulator {
    fn handle(&mut self, data: &str) -> Result<Vec<LlmEvent>, ProviderError> {
        let data = data.trim();
        if data == "[DONE]" {
            self.done = true;
            let mut out = self.flush_tools();
            out.push(LlmEvent::Done {
                finish_reason: self.finish_reason.take(),
                usage: self.usage.take(),
            });
            return Ok(out);
        }
        if data.is_empty() {
            return Ok(Vec::new());
        }
        let chunk: Value = serde_json::from_str(data).map_err(|e| ProviderError::Protocol {
            provider: PROVIDER,
            message: format!("malformed stream chunk: {e}"),
        })?;
        if let Some(err) = chunk.get("error").filter(|e| !e.is_null()) {
            // OpenRouter and vLLM report failures mid-stream this way.
            return Err(ProviderError::Protocol {
                provider: PROVIDER,
                message: format!("error in stream: {}", message_of(err)),
            });
        }
        let mut out = Vec::new();
        if let Some(u) = chunk
            .get("usage")
            .filter(|u| u.is_object())
            .or_else(|| chunk.pointer("/x_groq/usage"))
        {
            self.usage = Some(LlmUsage {
                prompt_tokens: u["prompt_tokens"].as_u64().unwrap_or(0),
                completion_tokens: u["completion_tokens"].as_u64().unwrap_or(0),
            });
        }
        let Some(choice) = chunk
            .get("choices")
            .and_then(Value::as_array)
            .and_then(|c| {
                c.iter()
                    .find(|ch| ch["index"].as_u64().unwrap_or(0) == 0)
                    .or(c.first())
            })
        else {
            return Ok(out);
        };
        let delta = &choice["delta"];
        if let Some(text) = delta["content"].as_str() {
            if !text.is_empty() {
                out.push(LlmEvent::Token(text.to_string()));
            }
        }
        if let Some(calls) = delta["tool_calls"].as_array() {
            for (pos, call) in calls.iter().enumerate() {
                let index = call["index"].as_u64().unwrap_or(pos as u64);
                let entry = self.tools.entry(index).or_default();
                if let Some(id) = call["id"].as_str().filter(|s| !s.is_empty()) {
                    entry.id = id.to_string();
                }
                if let Some(name) = call.pointer("/function/name").and_then(Value::as_str) {
                    if !name.is_empty() {
                        entry.name = name.to_string();
                    }
                }
                if let Some(args) = call.pointer("/function/arguments") {
                    match args {
                        Value::String(s) => entry.arguments.push_str(s),
                        Value::Null => {}
                        // Some servers send the arguments as an object, not a string.
                        other => entry.arguments.push_str(&other.to_string()),
                    }
                }
            }
        }
        if let Some(reason) = choice["finish_reason"].as_str() {
            self.finish_reason = Some(reason.to_string());
            out.extend(self.flush_tools());
        }
        Ok(out)
    }

    fn flush_tools(&mut self) -> Vec<LlmEvent> {
        std::mem::take(&mut self.tools)
            .into_values()
            .map(|t| LlmEvent::ToolCall {
                id: t.id,
                name: t.name,
                arguments: t.arguments,
            })
            .collect()
    }

    /// The body ended without `[DONE]`: fine if the choice had finished, else truncated.
    fn end_without_done(&mut self) -> Result<Vec<LlmEvent>, ProviderError> {
        self.done = true;
        if self.finish_reason.is_none() {
            return Err(ProviderError::Protocol {
                provider: PROVIDER,
                message: "stream ended before the completion finished".into(),
            });
        }
        let mut out = self.flush_tools();
        out.push(LlmEvent::Done {
            finish_reason: self.finish_reason.take(),
            usage: self.usage.take(),
        });
        Ok(out)
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP helpers shared by the provider clients.

/// A client with a connect timeout and no overall timeout (streams may last long).
pub(crate) fn http_client(connect_timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// `{base}/{path}` with exactly one slash between them.
pub(crate) fn join_url(base: &str, path: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}

/// Replaces every occurrence of each secret in `message`.
pub(crate) fn redact(message: &str, secrets: &[String]) -> String {
    let mut m = message.to_string();
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        m = m.replace(s.as_str(), "<redacted>");
    }
    m
}

pub(crate) fn timeout_error(provider: &'static str, after: Duration) -> ProviderError {
    ProviderError::Connect {
        provider,
        message: format!("no response within {} ms", after.as_millis()),
    }
}

/// A transport error, without its URL (which may carry a key in the query), with its causes.
pub(crate) fn connect_error(
    provider: &'static str,
    e: reqwest::Error,
    secrets: &[String],
) -> ProviderError {
    let timed_out = e.is_timeout();
    let e = e.without_url();
    let mut text = String::new();
    let mut src: Option<&dyn std::error::Error> = Some(&e);
    while let Some(err) = src {
        let part = err.to_string();
        if !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
        src = err.source();
    }
    let message = redact(&text, secrets);
    ProviderError::Connect {
        provider,
        message: if timed_out {
            format!("timed out: {message}")
        } else {
            message
        },
    }
}

/// The human message in a JSON error value: `{"message":..}`, a string, `{"detail":..}`...
fn message_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Object(o) => {
            for k in ["message", "err_msg", "detail", "error", "msg", "reason"] {
                if let Some(inner) = o.get(k).filter(|x| !x.is_null()) {
                    return message_of(inner);
                }
            }
            v.to_string()
        }
        Value::Array(a) => a.iter().map(message_of).collect::<Vec<_>>().join("; "),
        other => other.to_string(),
    }
}

/// The service's error message from an error body: OpenAI's `{"error":{"message":..}}`,
/// ElevenLabs' `{"detail":{"message":..}}`, FastAPI's `{"detail":..}`, Deepgram's
/// `{"err_msg":..}`, or the text itself (shortened).
pub(crate) fn error_message(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        if v.is_object() {
            return message_of(&v);
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let mut short: String = text.chars().take(300).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    short
}

/// A non-2xx response as [`ProviderError::Status`] with the service's message.
pub(crate) async fn status_error(
    provider: &'static str,
    response: reqwest::Response,
    secrets: &[String],
) -> ProviderError {
    let status = response.status();
    // Error bodies are small; bound the read anyway.
    let body = tokio::time::timeout(Duration::from_secs(5), async {
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(Ok(chunk)) = stream.next().await {
            body.extend_from_slice(&chunk);
            if body.len() > 64 * 1024 {
                break;
            }
        }
        body
    })
    .await
    .unwrap_or_default();
    let mut message = error_message(&body);
    if message.is_empty() {
        message = status.canonical_reason().unwrap_or("error").to_string();
    }
    ProviderError::Status {
        provider,
        status: status.as_u16(),
        message: redact(&message, secrets),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_parser_handles_any_split_and_line_ending() {
        let text =
            ": keep-alive\r\ndata: {\"a\":1}\r\n\r\nevent: x\ndata: b\ndata: c\n\ndata:[DONE]\r\r";
        for step in 1..text.len() {
            let mut p = SseParser::default();
            let mut got = Vec::new();
            for piece in text.as_bytes().chunks(step) {
                got.extend(p.feed(piece));
            }
            got.extend(p.finish());
            assert_eq!(got, vec!["{\"a\":1}", "b\nc", "[DONE]"], "step {step}");
        }
    }

    #[test]
    fn error_messages() {
        assert_eq!(
            error_message(br#"{"error":{"message":"bad key","type":"x"}}"#),
            "bad key"
        );
        assert_eq!(
            error_message(br#"{"detail":{"status":"invalid_api_key","message":"Invalid"}}"#),
            "Invalid"
        );
        assert_eq!(error_message(b"plain text\n"), "plain text");
        assert_eq!(
            redact("key sk-123 here", &["sk-123".into()]),
            "key <redacted> here"
        );
    }

    #[test]
    fn body_has_tools_only_when_given() {
        let req = LlmRequest {
            model: "m".into(),
            ..Default::default()
        };
        let b = request_body(&req);
        assert!(b.get("tools").is_none());
        assert_eq!(b["stream"], true);
        assert_eq!(b["stream_options"]["include_usage"], true);
    }
}
