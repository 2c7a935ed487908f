//! A scripted fake LLM speaking the real OpenAI Chat Completions protocol, for tests of the
//! voice agent: `POST /v1/chat/completions` on 127.0.0.1 at port 0, answering from a queue of
//! [`Reply`]s (then a default reply), and recording every request body so a test can assert on
//! the messages the agent sent.
//!
//! With `"stream": true` the answer is Server-Sent Events exactly as OpenAI sends them:
//!
//! ```text
//! data: {"id":"chatcmpl-…","object":"chat.completion.chunk","created":…,"model":…,
//!        "choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}
//! data: {… "choices":[{"index":0,"delta":{"content":"Sure, a table "},"finish_reason":null}]}
//! data: {… "choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}
//! data: {… "choices":[],"usage":{"prompt_tokens":…,"completion_tokens":…,"total_tokens":…}}
//! data: [DONE]
//! ```
//!
//! (a few words per content chunk; the usage chunk only with
//! `"stream_options":{"include_usage":true}`, and then every other chunk carries
//! `"usage":null`, as OpenAI does). A tool call streams as
//! `delta.tool_calls[{index:0,id:"call_…",type:"function",function:{name,arguments:""}}]`,
//! then argument fragments `delta.tool_calls[{index:0,function:{arguments:"…"}}]`, then
//! `finish_reason:"tool_calls"`. Without `stream` (or with `false`) the answer is one
//! `chat.completion` object.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The text answered when the queue is empty and no other default was set.
pub const DEFAULT_TEXT: &str = "This is the fake model's default reply.";

/// Words per streamed content chunk.
const WORDS_PER_CHUNK: usize = 3;
/// Characters per streamed tool-call arguments fragment.
const ARGS_PER_CHUNK: usize = 12;

/// One scripted answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// An assistant message, streamed a few words per chunk; `finish_reason: "stop"`.
    Text(String),
    /// One function call, `finish_reason: "tool_calls"`.
    ToolCall { name: String, arguments: Value },
    /// An error response with this status and OpenAI's error body
    /// (`{"error":{"message","type","param","code"}}`).
    Status(u16, String),
    /// Accept the request and never answer (until the fake is dropped).
    Hang,
}

impl Reply {
    pub fn text(s: impl Into<String>) -> Reply {
        Reply::Text(s.into())
    }
    pub fn tool_call(name: impl Into<String>, arguments: Value) -> Reply {
        Reply::ToolCall {
            name: name.into(),
            arguments,
        }
    }
}

struct Script {
    queue: VecDeque<Reply>,
    default: Reply,
    first_token: Duration,
    between_chunks: Duration,
    requests: Vec<Value>,
}

struct Shared {
    script: Mutex<Script>,
    /// The number of requests recorded so far.
    count: watch::Sender<usize>,
    /// Becomes true when the fake is dropped: hanging and streaming answers end.
    closed: watch::Sender<bool>,
    key: Option<String>,
}

impl Shared {
    fn script(&self) -> std::sync::MutexGuard<'_, Script> {
        self.script.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The fake server; stops when dropped.
pub struct FakeLlm {
    /// `http://127.0.0.1:PORT/v1`: an OpenAI client's base URL.
    pub base_url: String,
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl FakeLlm {
    /// A fake that accepts any (or no) `Authorization`.
    pub async fn start() -> FakeLlm {
        Self::spawn(None).await
    }

    /// A fake that answers 401 with OpenAI's `invalid_api_key` error body unless the request
    /// carries `Authorization: Bearer <key>`.
    pub async fn start_with_key(key: impl Into<String>) -> FakeLlm {
        Self::spawn(Some(key.into())).await
    }

    async fn spawn(key: Option<String>) -> FakeLlm {
        let shared = Arc::new(Shared {
            script: Mutex::new(Script {
                queue: VecDeque::new(),
                default: Reply::Text(DEFAULT_TEXT.to_string()),
                first_token: Duration::ZERO,
                between_chunks: Duration::ZERO,
                requests: Vec::new(),
            }),
            count: watch::channel(0).0,
            closed: watch::channel(false).0,
            key,
        });
        let app = Router::new()
            .route("/v1/chat/completions", post(chat_completions))
            .route("/chat/completions", post(chat_completions))
            .fallback(|| async {
                error_response(404, "Unknown request URL (fake LLM)".to_string())
            })
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake LLM to a free port");
        let addr = listener.local_addr().expect("local address");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeLlm {
            base_url: format!("http://{addr}/v1"),
            addr,
            shared,
            server,
        }
    }

    /// Queues a reply; queued replies are used in order, one per request.
    pub fn push_reply(&self, r: Reply) {
        self.shared.script().queue.push_back(r);
    }

    /// The reply used when the queue is empty (initially `Reply::Text(DEFAULT_TEXT)`).
    pub fn set_default_reply(&self, r: Reply) {
        self.shared.script().default = r;
    }

    /// Delay before the first token (or before a non-streaming or error answer), and between
    /// streamed chunks. Both zero initially.
    pub fn set_delays(&self, first_token: Duration, between_chunks: Duration) {
        let mut s = self.shared.script();
        s.first_token = first_token;
        s.between_chunks = between_chunks;
    }

    /// Every request body received on the chat completions route, in order (including those
    /// refused with 401; a body that is not JSON is recorded as a JSON string).
    pub fn requests(&self) -> Vec<Value> {
        self.shared.script().requests.clone()
    }

    /// Resolves, with [`FakeLlm::requests`], once at least `n` requests have arrived.
    pub async fn wait_requests(&self, n: usize) -> Vec<Value> {
        let mut rx = self.shared.count.subscribe();
        rx.wait_for(|c| *c >= n)
            .await
            .expect("the fake LLM's state outlives its receivers");
        self.requests()
    }
}

impl Drop for FakeLlm {
    fn drop(&mut self) {
        self.shared.closed.send_replace(true);
        self.server.abort();
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// OpenAI's error body for a status.
pub fn error_body(status: u16, message: &str) -> Value {
    let (kind, code) = match status {
        401 => ("invalid_request_error", json!("invalid_api_key")),
        404 => ("invalid_request_error", json!("unknown_url")),
        429 => ("requests", json!("rate_limit_exceeded")),
        400..=499 => ("invalid_request_error", Value::Null),
        _ => ("server_error", Value::Null),
    };
    json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
}

fn error_response(status: u16, message: String) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (code, axum::Json(error_body(status, &message))).into_response()
}

async fn chat_completions(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let parsed: Result<Value, _> = serde_json::from_slice(&body);
    let recorded = match &parsed {
        Ok(v) => v.clone(),
        Err(_) => Value::String(String::from_utf8_lossy(&body).into_owned()),
    };
    let n = {
        let mut s = shared.script();
        s.requests.push(recorded);
        s.requests.len()
    };
    shared.count.send_replace(n);

    if let Some(key) = &shared.key {
        let sent = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if sent != Some(key.as_str()) {
            let msg = match sent {
                None => "You didn't provide an API key. You need to provide your API key in an \
                         Authorization header using Bearer auth (i.e. Authorization: Bearer \
                         YOUR_KEY)."
                    .to_string(),
                Some(_) => "Incorrect API key provided (fake LLM).".to_string(),
            };
            return error_response(401, msg);
        }
    }
    let req = match parsed {
        Ok(v) if v.is_object() => v,
        _ => {
            return error_response(
                400,
                "We could not parse the JSON body of your request.".to_string(),
            )
        }
    };
    if !req["messages"].is_array() {
        return error_response(400, "Missing required parameter: 'messages'.".to_string());
    }

    let (reply, first_token, between) = {
        let mut s = shared.script();
        let r = s.queue.pop_front().unwrap_or_else(|| s.default.clone());
        (r, s.first_token, s.between_chunks)
    };
    let mut closed = shared.closed.subscribe();
    if matches!(reply, Reply::Hang) {
        let _ = closed.wait_for(|c| *c).await;
        return error_response(503, "The fake LLM was stopped.".to_string());
    }
    if !first_token.is_zero() {
        tokio::select! {
            _ = tokio::time::sleep(first_token) => {}
            _ = closed.wait_for(|c| *c) => {
                return error_response(503, "The fake LLM was stopped.".to_string());
            }
        }
    }
    if let Reply::Status(status, message) = reply {
        return error_response(status, message);
    }

    let model = req["model"].as_str().unwrap_or("gpt-fake").to_string();
    let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
    let usage = usage(&req, &reply);
    if req["stream"].as_bool() != Some(true) {
        return axum::Json(completion(&id, &model, &reply, usage)).into_response();
    }
    let include_usage = req["stream_options"]["include_usage"].as_bool() == Some(true);
    let events = stream_events(&id, &model, &reply, include_usage.then_some(usage));
    let stream = futures::stream::unfold(
        (events.into_iter().enumerate(), closed),
        move |(mut events, mut closed)| async move {
            let (i, event) = events.next()?;
            // The first content follows the role chunk at once; later chunks are spaced.
            if i >= 2 && !between.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(between) => {}
                    _ = closed.wait_for(|c| *c) => return None,
                }
            }
            Some((Ok::<_, std::convert::Infallible>(event), (events, closed)))
        },
    );
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(stream))
        .expect("a valid response")
}

/// Rough token counts (about 4 characters a token), enough for a plausible `usage` object.
fn usage(req: &Value, reply: &Reply) -> Value {
    let prompt_chars: usize = req["messages"]
        .as_array()
        .map(|ms| ms.iter().map(|m| m.to_string().len()).sum())
        .unwrap_or(0);
    let completion_chars = match reply {
        Reply::Text(t) => t.len(),
        Reply::ToolCall { name, arguments } => name.len() + arguments.to_string().len(),
        _ => 0,
    };
    let p = prompt_chars.div_ceil(4).max(1);
    let c = completion_chars.div_ceil(4).max(1);
    json!({"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c})
}

fn call_id() -> String {
    format!("call_{}", &uuid::Uuid::new_v4().simple().to_string()[..24])
}

/// The non-streaming `chat.completion` object.
fn completion(id: &str, model: &str, reply: &Reply, usage: Value) -> Value {
    let (message, finish) = match reply {
        Reply::ToolCall { name, arguments } => (
            json!({
                "role": "assistant",
                "content": null,
                "tool_calls": [{
                    "id": call_id(),
                    "type": "function",
                    "function": {"name": name, "arguments": arguments.to_string()},
                }],
                "refusal": null,
            }),
            "tool_calls",
        ),
        Reply::Text(t) => (
            json!({"role": "assistant", "content": t, "refusal": null}),
            "stop",
        ),
        Reply::Status(..) | Reply::Hang => unreachable!("answered before"),
    };
    json!({
        "id": id,
        "object": "chat.completion",
        "created": now_secs(),
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
        "usage": usage,
        "system_fingerprint": null,
    })
}

/// `text` cut into pieces of a few words, each keeping its trailing whitespace: the pieces
/// concatenate back to `text`.
pub fn split_words(text: &str) -> Vec<String> {
    let words: Vec<&str> = text.split_inclusive(char::is_whitespace).collect();
    words.chunks(WORDS_PER_CHUNK).map(|c| c.concat()).collect()
}

fn split_chars(s: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    chars.chunks(n).map(|c| c.iter().collect()).collect()
}

/// Every SSE event of a streamed answer, `data: …\n\n` each, ending with `data: [DONE]`.
fn stream_events(id: &str, model: &str, reply: &Reply, usage: Option<Value>) -> Vec<Bytes> {
    let created = now_secs();
    let with_usage = usage.is_some();
    let chunk = |delta: Value, finish: Value| {
        let mut c = json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": null,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        });
        if with_usage {
            c["usage"] = Value::Null;
        }
        c
    };
    let mut chunks = Vec::new();
    match reply {
        Reply::Text(text) => {
            chunks.push(chunk(
                json!({"role": "assistant", "content": "", "refusal": null}),
                Value::Null,
            ));
            for piece in split_words(text) {
                chunks.push(chunk(json!({"content": piece}), Value::Null));
            }
            chunks.push(chunk(json!({}), json!("stop")));
        }
        Reply::ToolCall { name, arguments } => {
            chunks.push(chunk(
                json!({
                    "role": "assistant",
                    "content": null,
                    "tool_calls": [{
                        "index": 0,
                        "id": call_id(),
                        "type": "function",
                        "function": {"name": name, "arguments": ""},
                    }],
                    "refusal": null,
                }),
                Value::Null,
            ));
            for piece in split_chars(&arguments.to_string(), ARGS_PER_CHUNK) {
                chunks.push(chunk(
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}),
                    Value::Null,
                ));
            }
            chunks.push(chunk(json!({}), json!("tool_calls")));
        }
        Reply::Status(..) | Reply::Hang => unreachable!("answered before"),
    }
    if let Some(usage) = usage {
        chunks.push(json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": null,
            "choices": [],
            "usage": usage,
        }));
    }
    let mut events: Vec<Bytes> = chunks
        .into_iter()
        .map(|c| Bytes::from(format!("data: {c}\n\n")))
        .collect();
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn client() -> reqwest::Client {
        reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("HTTP client")
    }

    fn chat(stream: bool, include_usage: bool) -> Value {
        let mut body = json!({
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "You are a restaurant booking agent."},
                {"role": "user", "content": "I would like to book a table."},
            ],
        });
        if stream {
            body["stream"] = json!(true);
        }
        if include_usage {
            body["stream_options"] = json!({"include_usage": true});
        }
        body
    }

    /// Parses an SSE body strictly: `data: ` lines separated by blank lines, ending with
    /// `[DONE]`. Returns the JSON chunks.
    fn parse_sse(body: &str) -> Vec<Value> {
        assert!(
            body.ends_with("data: [DONE]\n\n"),
            "ends with [DONE]: {body:?}"
        );
        let mut out = Vec::new();
        for event in body.split("\n\n").filter(|e| !e.is_empty()) {
            let data = event
                .strip_prefix("data: ")
                .unwrap_or_else(|| panic!("not a data event: {event:?}"));
            assert!(!data.contains('\n'), "one line per event: {event:?}");
            if data == "[DONE]" {
                continue;
            }
            out.push(serde_json::from_str(data).expect("each chunk is JSON"));
        }
        out
    }

    async fn post(url: &str, body: &Value) -> reqwest::Response {
        client()
            .post(format!("{url}/chat/completions"))
            .json(body)
            .send()
            .await
            .expect("request")
    }

    #[tokio::test]
    async fn streams_text_as_openai_chunks() {
        let llm = FakeLlm::start().await;
        let said = "Sure, a table for two tomorrow evening. What time would you like?";
        llm.push_reply(Reply::text(said));
        let resp = post(&llm.base_url, &chat(true, false)).await;
        assert_eq!(resp.status(), 200);
        assert!(resp.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"));
        let chunks = parse_sse(&resp.text().await.unwrap());
        assert!(chunks.len() >= 5, "a few words per chunk: {chunks:?}");
        let mut text = String::new();
        for (i, c) in chunks.iter().enumerate() {
            assert_eq!(c["object"], "chat.completion.chunk");
            assert_eq!(c["model"], "gpt-4o-mini");
            assert_eq!(c["id"], chunks[0]["id"]);
            assert!(c["id"].as_str().unwrap().starts_with("chatcmpl-"));
            assert!(c["created"].as_u64().unwrap() > 1_600_000_000);
            assert!(c.get("usage").is_none(), "no usage unless asked: {c}");
            let choice = &c["choices"][0];
            assert_eq!(choice["index"], 0);
            if i == 0 {
                assert_eq!(choice["delta"]["role"], "assistant");
            }
            if i + 1 == chunks.len() {
                assert_eq!(choice["finish_reason"], "stop");
                assert_eq!(choice["delta"], json!({}));
            } else {
                assert!(choice["finish_reason"].is_null());
                text.push_str(choice["delta"]["content"].as_str().unwrap());
            }
        }
        assert_eq!(text, said);
        let reqs = llm.requests();
        assert_eq!(reqs.len(), 1);
        assert_eq!(
            reqs[0]["messages"][1]["content"],
            "I would like to book a table."
        );
    }

    #[tokio::test]
    async fn usage_chunk_only_with_include_usage() {
        let llm = FakeLlm::start().await;
        let resp = post(&llm.base_url, &chat(true, true)).await;
        let chunks = parse_sse(&resp.text().await.unwrap());
        let (last, rest) = chunks.split_last().unwrap();
        assert_eq!(last["choices"], json!([]));
        let u = &last["usage"];
        assert_eq!(
            u["total_tokens"].as_u64().unwrap(),
            u["prompt_tokens"].as_u64().unwrap() + u["completion_tokens"].as_u64().unwrap()
        );
        assert!(rest
            .iter()
            .all(|c| c["usage"].is_null() && c.get("usage").is_some()));
        assert_eq!(rest.last().unwrap()["choices"][0]["finish_reason"], "stop");
        // The default reply, as the queue is empty.
        let text: String = rest
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(text, DEFAULT_TEXT);
    }

    #[tokio::test]
    async fn streams_a_tool_call_in_fragments() {
        let llm = FakeLlm::start().await;
        let args = json!({"party_size": 2, "date": "tomorrow", "time": "19:00"});
        llm.push_reply(Reply::tool_call("book_table", args.clone()));
        let chunks = parse_sse(
            &post(&llm.base_url, &chat(true, false))
                .await
                .text()
                .await
                .unwrap(),
        );
        let first = &chunks[0]["choices"][0]["delta"];
        assert_eq!(first["role"], "assistant");
        let call = &first["tool_calls"][0];
        assert_eq!(call["index"], 0);
        assert_eq!(call["type"], "function");
        assert_eq!(call["function"]["name"], "book_table");
        assert_eq!(call["function"]["arguments"], "");
        assert!(call["id"].as_str().unwrap().starts_with("call_"));
        let mut arguments = String::new();
        let fragments = &chunks[1..chunks.len() - 1];
        assert!(fragments.len() > 1, "arguments arrive in fragments");
        for c in fragments {
            let tc = &c["choices"][0]["delta"]["tool_calls"][0];
            assert_eq!(tc["index"], 0);
            assert!(tc.get("id").is_none());
            arguments.push_str(tc["function"]["arguments"].as_str().unwrap());
        }
        assert_eq!(serde_json::from_str::<Value>(&arguments).unwrap(), args);
        assert_eq!(
            chunks.last().unwrap()["choices"][0]["finish_reason"],
            "tool_calls"
        );
    }

    #[tokio::test]
    async fn answers_non_streaming_requests_with_a_completion() {
        let llm = FakeLlm::start().await;
        llm.push_reply(Reply::text("A summary."));
        llm.push_reply(Reply::tool_call("end_call", json!({"reason": "done"})));
        let resp = post(&llm.base_url, &chat(false, false)).await;
        assert_eq!(resp.status(), 200);
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(v["choices"][0]["message"]["role"], "assistant");
        assert_eq!(v["choices"][0]["message"]["content"], "A summary.");
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        assert!(v["usage"]["total_tokens"].as_u64().unwrap() > 0);

        let mut body = chat(false, false);
        body["stream"] = json!(false);
        let v: Value = post(&llm.base_url, &body).await.json().await.unwrap();
        let call = &v["choices"][0]["message"]["tool_calls"][0];
        assert_eq!(call["function"]["name"], "end_call");
        assert_eq!(
            serde_json::from_str::<Value>(call["function"]["arguments"].as_str().unwrap()).unwrap(),
            json!({"reason": "done"})
        );
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(llm.requests().len(), 2);
    }

    #[tokio::test]
    async fn queued_replies_in_order_then_the_default() {
        let llm = FakeLlm::start().await;
        llm.set_default_reply(Reply::text("default"));
        llm.push_reply(Reply::text("one"));
        llm.push_reply(Reply::Status(429, "Rate limit reached".into()));
        llm.push_reply(Reply::text("two"));
        let text = |v: Value| v["choices"][0]["message"]["content"].clone();

        let r = post(&llm.base_url, &chat(false, false)).await;
        assert_eq!(text(r.json().await.unwrap()), "one");
        let r = post(&llm.base_url, &chat(true, false)).await;
        assert_eq!(r.status(), 429);
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["message"], "Rate limit reached");
        assert_eq!(e["error"]["code"], "rate_limit_exceeded");
        assert!(e["error"]["type"].is_string());
        let r = post(&llm.base_url, &chat(false, false)).await;
        assert_eq!(text(r.json().await.unwrap()), "two");
        let r = post(&llm.base_url, &chat(false, false)).await;
        assert_eq!(text(r.json().await.unwrap()), "default");
        assert_eq!(llm.requests().len(), 4);
    }

    #[tokio::test]
    async fn checks_the_api_key_when_configured() {
        let llm = FakeLlm::start_with_key("sk-test-123").await;
        let r = post(&llm.base_url, &chat(true, false)).await;
        assert_eq!(r.status(), 401);
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["code"], "invalid_api_key");
        assert_eq!(e["error"]["type"], "invalid_request_error");
        let r = client()
            .post(format!("{}/chat/completions", llm.base_url))
            .bearer_auth("sk-wrong")
            .json(&chat(false, false))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        let r = client()
            .post(format!("{}/chat/completions", llm.base_url))
            .bearer_auth("sk-test-123")
            .json(&chat(true, false))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        parse_sse(&r.text().await.unwrap());
    }

    #[tokio::test]
    async fn hang_never_answers_and_wait_requests_sees_it() {
        let llm = FakeLlm::start().await;
        llm.push_reply(Reply::Hang);
        let url = format!("{}/chat/completions", llm.base_url);
        let pending = tokio::spawn(async move {
            reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_millis(500))
                .build()
                .unwrap()
                .post(url)
                .json(&chat(true, false))
                .send()
                .await
        });
        let reqs = llm.wait_requests(1).await;
        assert_eq!(reqs[0]["stream"], true);
        let err = pending
            .await
            .unwrap()
            .expect_err("a hanging reply never answers");
        assert!(err.is_timeout(), "{err}");
        // The next request gets the default reply.
        let r = post(&llm.base_url, &chat(false, false)).await;
        assert_eq!(r.status(), 200);
    }

    #[tokio::test]
    async fn delays_the_first_token_and_the_chunks() {
        let llm = FakeLlm::start().await;
        llm.set_delays(Duration::from_millis(300), Duration::from_millis(50));
        llm.push_reply(Reply::text("one two three four five six seven eight nine"));
        let started = Instant::now();
        let mut resp = post(&llm.base_url, &chat(true, false)).await;
        let mut first_content = None;
        let mut body = String::new();
        while let Some(bytes) = resp.chunk().await.unwrap() {
            body.push_str(std::str::from_utf8(&bytes).unwrap());
            if first_content.is_none() && body.contains("\"content\":\"one ") {
                first_content = Some(started.elapsed());
            }
        }
        let total = started.elapsed();
        let first = first_content.expect("the first words arrived");
        assert!(
            first >= Duration::from_millis(300),
            "first token after {first:?}"
        );
        // Three content chunks and the stop chunk are spaced by 50 ms each after the first.
        assert!(
            total >= first + Duration::from_millis(150),
            "first {first:?}, total {total:?}"
        );
        assert_eq!(parse_sse(&body).len(), 5);
    }

    #[test]
    fn split_words_concatenates_back() {
        for t in ["", "one", "a b c d e f g", "  lead and trail  ", "x\ny z w"] {
            assert_eq!(split_words(t).concat(), t);
        }
        assert_eq!(split_words("a b c d"), vec!["a b c ", "d"]);
    }
}
