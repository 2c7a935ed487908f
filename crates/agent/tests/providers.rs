//! The provider clients against local fakes that speak each service's real wire protocol over
//! real sockets: OpenAI-style SSE chat completions, multipart transcriptions, Deepgram's live
//! WebSocket, OpenAI's raw-PCM speech and ElevenLabs' μ-law stream, plus espeak-ng.

use axum::body::Body;
use axum::extract::{Path, RawQuery};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use futures::SinkExt;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switchboard_agent::providers::llm::OpenAiLlm;
use switchboard_agent::providers::stt::{DeepgramStt, OpenAiStt};
use switchboard_agent::providers::tts::{ElevenLabsTts, EspeakTts, OpenAiTts};
use switchboard_agent::providers::{
    Llm, LlmEvent, LlmRequest, LlmUsage, ProviderError, Stt, SttEvent, SttInput, SttOptions, Tts,
    TtsRequest, Word,
};
use switchboard_media::audio::{rms, sine, tone_ratio};
use switchboard_media::g711::G711;
use tokio::sync::{mpsc, Notify};
use tokio_tungstenite::tungstenite::handshake::server::{
    ErrorResponse, Request, Response as WsResponse,
};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

// ---------------------------------------------------------------------------------------------
// Helpers

/// Serves `app` on an ephemeral loopback port; returns `http://127.0.0.1:PORT`.
async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// Fails the test instead of hanging when an expected thing never happens.
async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Splits bytes at awkward places: 1, 7, 3, 13, 2, 29, 5, ... bytes (cutting through lines,
/// `data:` prefixes, JSON and multi-byte UTF-8).
fn awkward_pieces(data: &[u8]) -> Vec<Bytes> {
    let sizes = [1usize, 7, 3, 13, 2, 29, 5, 64, 11];
    let mut out = Vec::new();
    let mut at = 0;
    let mut i = 0;
    while at < data.len() {
        let n = sizes[i % sizes.len()].min(data.len() - at);
        out.push(Bytes::copy_from_slice(&data[at..at + n]));
        at += n;
        i += 1;
    }
    out
}

/// A streamed body sending each piece as its own chunk.
fn pieces_body(pieces: Vec<Bytes>) -> Body {
    Body::from_stream(stream::iter(pieces.into_iter().map(Ok::<_, Infallible>)))
}

/// A streamed body fed from a channel (the fake decides when to send what).
fn channel_body(rx: mpsc::Receiver<Bytes>) -> Body {
    Body::from_stream(stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    }))
}

async fn collect<T>(mut s: BoxStream<'static, T>) -> Vec<T> {
    let mut out = Vec::new();
    while let Some(x) = within("the end of the stream", s.next()).await {
        out.push(x);
    }
    out
}

fn sse(chunks: &[Value]) -> String {
    let mut s = String::new();
    for c in chunks {
        s.push_str(&format!("data: {c}\n\n"));
    }
    s
}

// ---------------------------------------------------------------------------------------------
// LLM

#[derive(Debug, Clone)]
struct SeenRequest {
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    body: Value,
}

/// A fake `/v1/chat/completions` that records each request and answers with `respond`.
async fn llm_fake<F>(respond: F) -> (String, Arc<Mutex<Vec<SeenRequest>>>)
where
    F: Fn(&Value) -> Response + Clone + Send + Sync + 'static,
{
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let app = Router::new().route(
        "/v1/chat/completions",
        post(
            move |RawQuery(query): RawQuery, headers: HeaderMap, body: Bytes| {
                let respond = respond.clone();
                let log = log.clone();
                async move {
                    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let resp = respond(&body);
                    log.lock().unwrap().push(SeenRequest {
                        path: "/v1/chat/completions".into(),
                        query,
                        headers,
                        body,
                    });
                    resp
                }
            },
        ),
    );
    (format!("{}/v1/", serve(app).await), seen)
}

fn sse_response(text: String, crlf: bool) -> Response {
    let text = if crlf {
        text.replace('\n', "\r\n")
    } else {
        text
    };
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(pieces_body(awkward_pieces(text.as_bytes())))
        .unwrap()
}

fn chunk(delta: Value, finish: Option<&str>) -> Value {
    json!({
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    })
}

fn text_stream_body() -> String {
    let mut chunks = vec![chunk(json!({"role": "assistant", "content": ""}), None)];
    for t in ["Hel", "lo", ", wör", "ld — ", "ça va?"] {
        chunks.push(chunk(json!({"content": t}), None));
    }
    chunks.push(chunk(json!({}), Some("stop")));
    chunks.push(json!({
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [],
        "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
    }));
    let mut s = sse(&chunks);
    s.push_str("data: [DONE]\n\n");
    s
}

fn llm_request(tools: Vec<Value>) -> LlmRequest {
    LlmRequest {
        model: "gpt-4o-mini".into(),
        messages: vec![
            json!({"role": "system", "content": "You are a receptionist."}),
            json!({"role": "user", "content": "Hi"}),
        ],
        tools,
        temperature: Some(0.5),
        max_tokens: Some(200),
    }
}

async fn run_text_stream(crlf_and_comments: bool) {
    let (base, seen) = llm_fake(move |_| {
        let mut body = text_stream_body();
        if crlf_and_comments {
            body = format!(": OPENROUTER PROCESSING\n\n{body}")
                .replace("data: [DONE]", ": keep-alive\nevent: done\ndata: [DONE]");
        }
        sse_response(body, crlf_and_comments)
    })
    .await;
    let llm = OpenAiLlm::new(base, Some("sk-test-123".into()), Duration::from_secs(5));
    let events = collect(llm.stream(llm_request(vec![])).await.unwrap()).await;
    let events: Vec<LlmEvent> = events.into_iter().map(Result::unwrap).collect();
    let tokens: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            LlmEvent::Token(t) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(tokens, ["Hel", "lo", ", wör", "ld — ", "ça va?"]);
    assert_eq!(tokens.concat(), "Hello, wörld — ça va?");
    assert_eq!(
        events.last().unwrap(),
        &LlmEvent::Done {
            finish_reason: Some("stop".into()),
            usage: Some(LlmUsage {
                prompt_tokens: 12,
                completion_tokens: 5
            }),
        }
    );
    assert_eq!(events.len(), 6);

    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    let req = &seen[0];
    assert_eq!(req.path, "/v1/chat/completions");
    assert_eq!(req.headers["authorization"], "Bearer sk-test-123");
    assert_eq!(req.body["model"], "gpt-4o-mini");
    assert_eq!(req.body["stream"], true);
    assert_eq!(req.body["stream_options"]["include_usage"], true);
    assert_eq!(req.body["messages"], json!(llm_request(vec![]).messages));
    assert_eq!(req.body["temperature"], 0.5);
    assert_eq!(req.body["max_tokens"], 200);
    assert!(
        req.body.get("tools").is_none(),
        "no tools key without tools"
    );
}

#[tokio::test]
async fn llm_streams_tokens_split_at_awkward_boundaries() {
    run_text_stream(false).await;
}

#[tokio::test]
async fn llm_streams_with_crlf_and_comments() {
    run_text_stream(true).await;
}

#[tokio::test]
async fn llm_reassembles_tool_calls() {
    let (base, seen) = llm_fake(|_| {
        let tc = |v: Value| chunk(json!({"tool_calls": [v]}), None);
        let chunks = vec![
            chunk(json!({"role": "assistant", "content": null}), None),
            tc(json!({"index": 0, "id": "call_abc", "type": "function",
                      "function": {"name": "transfer_call", "arguments": ""}})),
            tc(json!({"index": 1, "id": "call_def", "type": "function",
                      "function": {"name": "end_call", "arguments": "{}"}})),
            tc(json!({"index": 0, "function": {"arguments": "{\"departm"}})),
            tc(json!({"index": 0, "function": {"arguments": "ent\": \"sales\"}"}})),
            chunk(json!({}), Some("tool_calls")),
        ];
        let mut body = sse(&chunks);
        body.push_str("data: [DONE]\n\n");
        sse_response(body, false)
    })
    .await;
    let llm = OpenAiLlm::new(base, None, Duration::from_secs(5));
    let tools = vec![json!({"type": "function", "function": {
        "name": "transfer_call", "description": "Transfer", "parameters": {"type": "object"}}})];
    let events: Vec<LlmEvent> = collect(llm.stream(llm_request(tools.clone())).await.unwrap())
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        events,
        vec![
            LlmEvent::ToolCall {
                id: "call_abc".into(),
                name: "transfer_call".into(),
                arguments: "{\"department\": \"sales\"}".into(),
            },
            LlmEvent::ToolCall {
                id: "call_def".into(),
                name: "end_call".into(),
                arguments: "{}".into(),
            },
            LlmEvent::Done {
                finish_reason: Some("tool_calls".into()),
                usage: None
            },
        ]
    );
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0].body["tools"], json!(tools));
    assert!(
        seen[0].headers.get("authorization").is_none(),
        "no key, no header"
    );
}

#[tokio::test]
async fn llm_401_reports_the_service_message_without_the_key() {
    let key = "sk-secret-key-0123456789";
    let (base, _) = llm_fake(move |_| {
        (
            StatusCode::UNAUTHORIZED,
            [("content-type", "application/json")],
            json!({"error": {
                "message": format!("Incorrect API key provided: {key}. You can find your API key at https://platform.openai.com/account/api-keys."),
                "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}})
            .to_string(),
        )
            .into_response()
    })
    .await;
    let llm = OpenAiLlm::new(base, Some(key.into()), Duration::from_secs(5));
    let err = match llm.stream(llm_request(vec![])).await {
        Err(e) => e,
        Ok(_) => panic!("a 401 must fail"),
    };
    match &err {
        ProviderError::Status {
            status, message, ..
        } => {
            assert_eq!(*status, 401);
            assert!(message.contains("Incorrect API key provided"), "{message}");
        }
        other => panic!("expected Status, got {other:?}"),
    }
    assert!(!err.to_string().contains(key), "{err}");
    assert!(!format!("{err:?}").contains(key));
    assert!(!format!("{llm:?}").contains(key));
}

#[tokio::test]
async fn llm_stream_cut_before_done_is_a_protocol_error() {
    let (base, _) = llm_fake(|_| {
        let chunks = vec![
            chunk(json!({"content": "Half"}), None),
            chunk(json!({"content": " an answ"}), None),
        ];
        sse_response(sse(&chunks), false)
    })
    .await;
    let llm = OpenAiLlm::new(base, None, Duration::from_secs(5));
    let items = collect(llm.stream(llm_request(vec![])).await.unwrap()).await;
    assert_eq!(items.len(), 3, "{items:?}");
    assert_eq!(items[0], Ok(LlmEvent::Token("Half".into())));
    assert_eq!(items[1], Ok(LlmEvent::Token(" an answ".into())));
    assert!(
        matches!(&items[2], Err(ProviderError::Protocol { .. })),
        "{:?}",
        items[2]
    );
}

#[tokio::test]
async fn llm_malformed_chunk_is_a_protocol_error() {
    let (base, _) = llm_fake(|_| {
        let mut body = sse(&[chunk(json!({"content": "ok"}), None)]);
        body.push_str("data: {\"choices\":[{\"delta\":\n\n");
        body.push_str("data: [DONE]\n\n");
        sse_response(body, false)
    })
    .await;
    let llm = OpenAiLlm::new(base, None, Duration::from_secs(5));
    let items = collect(llm.stream(llm_request(vec![])).await.unwrap()).await;
    assert_eq!(items[0], Ok(LlmEvent::Token("ok".into())));
    assert!(
        matches!(&items[1], Err(ProviderError::Protocol { .. })),
        "{items:?}"
    );
    assert_eq!(items.len(), 2, "nothing after the error");
}

#[tokio::test]
async fn llm_finish_without_done_still_completes() {
    // Some servers close the body after the finishing chunk without `[DONE]`.
    let (base, _) = llm_fake(|_| {
        let chunks = vec![
            chunk(json!({"content": "Bye"}), None),
            chunk(json!({}), Some("length")),
        ];
        sse_response(sse(&chunks), false)
    })
    .await;
    let llm = OpenAiLlm::new(base, None, Duration::from_secs(5));
    let items = collect(llm.stream(llm_request(vec![])).await.unwrap()).await;
    assert_eq!(
        items,
        vec![
            Ok(LlmEvent::Token("Bye".into())),
            Ok(LlmEvent::Done {
                finish_reason: Some("length".into()),
                usage: None
            })
        ]
    );
}

#[tokio::test]
async fn llm_server_that_never_answers_times_out() {
    // Accepts connections and never says anything.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    let timeout = Duration::from_millis(300);
    let llm = OpenAiLlm::new(format!("http://{addr}/v1"), None, timeout);
    let started = Instant::now();
    let result = within("the timeout", llm.stream(llm_request(vec![]))).await;
    let elapsed = started.elapsed();
    assert!(
        matches!(result, Err(ProviderError::Connect { .. })),
        "{:?}",
        result.err()
    );
    assert!(elapsed >= timeout, "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
}

#[tokio::test]
async fn llm_headers_then_silence_times_out_in_the_stream() {
    let (base, _) = llm_fake(|_| {
        let never = stream::pending::<Result<Bytes, Infallible>>();
        Response::builder()
            .header("content-type", "text/event-stream")
            .body(Body::from_stream(never))
            .unwrap()
    })
    .await;
    let llm = OpenAiLlm::new(base, None, Duration::from_millis(300));
    let started = Instant::now();
    let items = collect(llm.stream(llm_request(vec![])).await.unwrap()).await;
    assert!(
        matches!(items.as_slice(), [Err(ProviderError::Connect { .. })]),
        "{items:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn llm_connection_refused_is_connect() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let llm = OpenAiLlm::new(format!("http://{addr}/v1"), None, Duration::from_secs(2));
    let result = llm.stream(llm_request(vec![])).await;
    assert!(matches!(result, Err(ProviderError::Connect { .. })));
}

#[tokio::test]
async fn llm_azure_style_header_and_query() {
    let (base, seen) = llm_fake(|_| sse_response(text_stream_body(), false)).await;
    let llm = OpenAiLlm::new(base, None, Duration::from_secs(5))
        .with_header("api-key", "azure-key-42")
        .with_query("api-version", "2024-10-21");
    let items = collect(llm.stream(llm_request(vec![])).await.unwrap()).await;
    assert!(items.iter().all(Result::is_ok));
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0].headers["api-key"], "azure-key-42");
    assert_eq!(seen[0].query.as_deref(), Some("api-version=2024-10-21"));
    assert!(seen[0].headers.get("authorization").is_none());
}

// ---------------------------------------------------------------------------------------------
// STT: OpenAI-compatible, per utterance

#[derive(Debug, Clone)]
struct Upload {
    auth: Option<String>,
    fields: HashMap<String, String>,
    file_name: String,
    file_type: String,
    rate: u32,
    channels: u16,
    bits: u16,
    samples: Vec<i16>,
}

/// One multipart part: (filename, content type, bytes).
type Part = (Option<String>, Option<String>, Vec<u8>);

/// A minimal multipart/form-data parser: name → part.
fn parse_multipart(content_type: &str, body: &[u8]) -> HashMap<String, Part> {
    let boundary = content_type
        .split(';')
        .find_map(|p| p.trim().strip_prefix("boundary="))
        .expect("boundary")
        .trim_matches('"');
    let delim = format!("--{boundary}").into_bytes();
    let find = |hay: &[u8], needle: &[u8], from: usize| {
        hay[from..]
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|p| p + from)
    };
    let mut parts = HashMap::new();
    let mut at = find(body, &delim, 0).expect("first boundary") + delim.len();
    loop {
        if body[at..].starts_with(b"--") {
            break;
        }
        at += 2; // CRLF after the boundary
        let head_end = find(body, b"\r\n\r\n", at).expect("part headers");
        let head = String::from_utf8_lossy(&body[at..head_end]).to_string();
        let content_start = head_end + 4;
        let next = find(body, &delim, content_start).expect("next boundary");
        let content = body[content_start..next - 2].to_vec(); // minus CRLF
        let mut name = None;
        let mut filename = None;
        let mut ctype = None;
        for line in head.split("\r\n") {
            let lower = line.to_ascii_lowercase();
            if lower.starts_with("content-disposition:") {
                for attr in line.split(';').map(str::trim) {
                    if let Some(v) = attr.strip_prefix("name=") {
                        name = Some(v.trim_matches('"').to_string());
                    }
                    if let Some(v) = attr.strip_prefix("filename=") {
                        filename = Some(v.trim_matches('"').to_string());
                    }
                }
            } else if lower.starts_with("content-type:") {
                ctype = Some(line["content-type:".len()..].trim().to_string());
            }
        }
        parts.insert(name.expect("part name"), (filename, ctype, content));
        at = next + delim.len();
    }
    parts
}

fn parse_upload(headers: &HeaderMap, body: &[u8]) -> Upload {
    let ct = headers["content-type"].to_str().unwrap();
    assert!(ct.starts_with("multipart/form-data"), "{ct}");
    let mut parts = parse_multipart(ct, body);
    let (file_name, file_type, wav) = parts.remove("file").expect("file part");
    let le16 = |i: usize| u16::from_le_bytes([wav[i], wav[i + 1]]);
    let le32 = |i: usize| u32::from_le_bytes([wav[i], wav[i + 1], wav[i + 2], wav[i + 3]]);
    assert_eq!(&wav[0..4], b"RIFF");
    assert_eq!(&wav[8..16], b"WAVEfmt ");
    assert_eq!(le16(20), 1, "PCM");
    assert_eq!(&wav[36..40], b"data");
    let data_len = le32(40) as usize;
    assert_eq!(data_len, wav.len() - 44, "data size matches");
    assert_eq!(le32(4) as usize, wav.len() - 8, "RIFF size matches");
    let samples = wav[44..]
        .chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect();
    Upload {
        auth: headers
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_string()),
        fields: parts
            .into_iter()
            .map(|(k, (_, _, v))| (k, String::from_utf8(v).unwrap()))
            .collect(),
        file_name: file_name.unwrap_or_default(),
        file_type: file_type.unwrap_or_default(),
        rate: le32(24),
        channels: le16(22),
        bits: le16(34),
        samples,
    }
}

/// The fake transcription server. Utterances are recognised by their last sample:
/// 1111 waits until the 2222 request has arrived (so both are in flight at once), 3333 fails
/// with a 500, 4444 gets plain `{"text":..}`.
async fn whisper_fake() -> (String, mpsc::UnboundedReceiver<Upload>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let second_arrived = Arc::new(Notify::new());
    let app = Router::new().route(
        "/v1/audio/transcriptions",
        post(move |headers: HeaderMap, body: Bytes| {
            let tx = tx.clone();
            let second_arrived = second_arrived.clone();
            async move {
                let upload = parse_upload(&headers, &body);
                let marker = *upload.samples.last().unwrap();
                let _ = tx.send(upload);
                let verbose = |text: &str, word: &str, start: f64, end: f64| {
                    Json(json!({
                        "task": "transcribe", "language": "english", "duration": 0.8,
                        "text": text,
                        "words": [{"word": word, "start": start, "end": end}],
                        "segments": [],
                    }))
                };
                match marker {
                    1111 => {
                        second_arrived.notified().await;
                        verbose(" First one.", "First", 0.1, 0.4).into_response()
                    }
                    2222 => {
                        second_arrived.notify_one();
                        verbose("Second.", "Second", 0.25, 0.5).into_response()
                    }
                    3333 => (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        Json(json!({"error": {"message": "model overloaded", "type": "server_error"}})),
                    )
                        .into_response(),
                    _ => Json(json!({"text": "plain"})).into_response(),
                }
            }
        }),
    );
    (format!("{}/v1", serve(app).await), rx)
}

async fn send_frames(input: &mpsc::Sender<SttInput>, value: i16, frames: usize) {
    for _ in 0..frames {
        input.send(SttInput::Audio(vec![value; 160])).await.unwrap();
    }
}

async fn next_event(events: &mut mpsc::Receiver<SttEvent>) -> SttEvent {
    within("an STT event", events.recv())
        .await
        .expect("session ended")
}

#[tokio::test]
async fn openai_stt_transcribes_utterances_in_order_with_offsets() {
    let (base, mut uploads) = whisper_fake().await;
    let stt = OpenAiStt::new(
        base,
        Some("sk-stt".into()),
        "whisper-1",
        Duration::from_secs(5),
    );
    assert_eq!(stt.name(), "openai");
    let mut session = stt.open(SttOptions {
        language: Some("en-US".into()),
        prompt: Some("Switchboard".into()),
    });
    let input = session.input.clone();
    // 1 s of background (value 7), then a 0.5 s utterance.
    send_frames(&input, 7, 50).await;
    input.send(SttInput::SpeechStart).await.unwrap();
    send_frames(&input, 1111, 25).await;
    input.send(SttInput::SpeechEnd).await.unwrap();
    // 0.2 s gap, then the second utterance while the first is still being transcribed.
    send_frames(&input, 7, 10).await;
    input.send(SttInput::SpeechStart).await.unwrap();
    send_frames(&input, 2222, 25).await;
    input.send(SttInput::SpeechEnd).await.unwrap();

    // Utterance 1 starts 300 ms (pre-roll) before SpeechStart at 1000 ms.
    assert_eq!(
        next_event(&mut session.events).await,
        SttEvent::Final {
            text: "First one.".into(),
            words: vec![Word {
                word: "First".into(),
                start_ms: 700 + 100,
                end_ms: 700 + 400
            }],
        }
    );
    // Utterance 2: SpeechStart at 1000 + 500 + 200 = 1700 ms, minus 300 ms of pre-roll.
    assert_eq!(
        next_event(&mut session.events).await,
        SttEvent::Final {
            text: "Second.".into(),
            words: vec![Word {
                word: "Second".into(),
                start_ms: 1400 + 250,
                end_ms: 1400 + 500
            }],
        }
    );

    let first = uploads.recv().await.unwrap();
    let second = uploads.recv().await.unwrap();
    let (first, second) = if first.samples.last() == Some(&1111) {
        (first, second)
    } else {
        (second, first)
    };
    for u in [&first, &second] {
        assert_eq!((u.rate, u.channels, u.bits), (8000, 1, 16));
        assert_eq!(u.auth.as_deref(), Some("Bearer sk-stt"));
        assert_eq!(u.file_name, "utterance.wav");
        assert_eq!(u.file_type, "audio/wav");
        assert_eq!(u.fields["model"], "whisper-1");
        assert_eq!(u.fields["response_format"], "verbose_json");
        assert_eq!(u.fields["timestamp_granularities[]"], "word");
        assert_eq!(u.fields["language"], "en");
        assert_eq!(u.fields["prompt"], "Switchboard");
    }
    // 300 ms of pre-roll, then the utterance.
    assert_eq!(first.samples.len(), 2400 + 25 * 160);
    assert!(first.samples[..2400].iter().all(|&s| s == 7));
    assert!(first.samples[2400..].iter().all(|&s| s == 1111));
    // The second's pre-roll holds the gap and the first utterance's tail.
    assert_eq!(second.samples.len(), 2400 + 25 * 160);
    assert!(second.samples[..800].iter().all(|&s| s == 1111));
    assert!(second.samples[800..2400].iter().all(|&s| s == 7));
    assert!(second.samples[2400..].iter().all(|&s| s == 2222));

    // A failing request is reported and the session goes on.
    input.send(SttInput::SpeechStart).await.unwrap();
    send_frames(&input, 3333, 10).await;
    input.send(SttInput::SpeechEnd).await.unwrap();
    match next_event(&mut session.events).await {
        SttEvent::Error(ProviderError::Status {
            status, message, ..
        }) => {
            assert_eq!(status, 500);
            assert!(message.contains("model overloaded"), "{message}");
        }
        other => panic!("expected an Error, got {other:?}"),
    }
    input.send(SttInput::SpeechStart).await.unwrap();
    send_frames(&input, 4444, 10).await;
    input.send(SttInput::SpeechEnd).await.unwrap();
    assert_eq!(
        next_event(&mut session.events).await,
        SttEvent::Final {
            text: "plain".into(),
            words: vec![]
        }
    );

    // Closing the input ends the session once everything is answered.
    drop(input);
    drop(session.input);
    assert_eq!(within("the session end", session.events.recv()).await, None);
}

// ---------------------------------------------------------------------------------------------
// STT: Deepgram streaming

#[derive(Debug, Clone, PartialEq)]
enum DgLog {
    Handshake { uri: String, auth: Option<String> },
    Binary(Vec<u8>),
    Text(Value),
}

#[derive(Clone, Copy, PartialEq)]
enum DgMode {
    Normal,
    Reject,
    CloseAfterKeepAlive,
}

/// A fake Deepgram live endpoint on `ws://127.0.0.1:PORT`.
async fn deepgram_fake(mode: DgMode) -> (String, mpsc::UnboundedReceiver<DgLog>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let log = tx.clone();
                // The callback's error type is tungstenite's, not ours.
                #[allow(clippy::result_large_err)]
                let callback = move |req: &Request, resp: WsResponse| {
                    let _ = log.send(DgLog::Handshake {
                        uri: req.uri().to_string(),
                        auth: req
                            .headers()
                            .get("authorization")
                            .map(|v| v.to_str().unwrap().to_string()),
                    });
                    if mode == DgMode::Reject {
                        let mut err = ErrorResponse::new(Some(
                            r#"{"err_code":"INVALID_AUTH","err_msg":"Invalid credentials.","request_id":"x"}"#
                                .to_string(),
                        ));
                        *err.status_mut() = StatusCode::UNAUTHORIZED;
                        return Err(err);
                    }
                    Ok(resp)
                };
                let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(sock, callback).await else {
                    return;
                };
                let mut frames = 0;
                while let Some(Ok(msg)) = ws.next().await {
                    match msg {
                        Message::Binary(b) => {
                            let _ = tx.send(DgLog::Binary(b.to_vec()));
                            frames += 1;
                            if frames == 5 {
                                let interim = json!({
                                    "type": "Results", "channel_index": [0, 1],
                                    "duration": 0.1, "start": 0.0, "is_final": false,
                                    "speech_final": false,
                                    "channel": {"alternatives": [{"transcript": "hello",
                                        "confidence": 0.9, "words": [{"word": "hello",
                                        "start": 0.08, "end": 0.3, "confidence": 0.9}]}]},
                                    "metadata": {"request_id": "r"}, "from_finalize": false,
                                });
                                ws.send(Message::text(interim.to_string())).await.unwrap();
                            }
                        }
                        Message::Text(t) => {
                            let v: Value = serde_json::from_str(t.as_str()).unwrap();
                            let _ = tx.send(DgLog::Text(v.clone()));
                            match v["type"].as_str().unwrap() {
                                "Finalize" => {
                                    let meta = json!({"type": "SpeechStarted", "timestamp": 0.0});
                                    ws.send(Message::text(meta.to_string())).await.unwrap();
                                    let fin = json!({
                                        "type": "Results", "channel_index": [0, 1],
                                        "duration": 0.2, "start": 0.0, "is_final": true,
                                        "speech_final": true, "from_finalize": true,
                                        "channel": {"alternatives": [{
                                            "transcript": "Hello world.", "confidence": 0.98,
                                            "words": [
                                                {"word": "hello", "start": 0.08, "end": 0.32,
                                                 "confidence": 0.99, "punctuated_word": "Hello"},
                                                {"word": "world", "start": 0.32, "end": 0.6,
                                                 "confidence": 0.97, "punctuated_word": "world."}
                                            ]}]},
                                    });
                                    ws.send(Message::text(fin.to_string())).await.unwrap();
                                }
                                "KeepAlive" if mode == DgMode::CloseAfterKeepAlive => {
                                    let frame = CloseFrame {
                                        code: CloseCode::Error,
                                        reason: "NET-0001 timeout".into(),
                                    };
                                    let _ = ws.close(Some(frame)).await;
                                }
                                "CloseStream" => {
                                    let meta = json!({"type": "Metadata", "duration": 0.2});
                                    let _ = ws.send(Message::text(meta.to_string())).await;
                                    let _ = ws.close(None).await;
                                }
                                _ => {}
                            }
                        }
                        _ => {}
                    }
                }
            });
        }
    });
    (format!("ws://{addr}"), rx)
}

#[tokio::test]
async fn deepgram_streams_mulaw_and_reports_interim_then_final() {
    let (base, mut log) = deepgram_fake(DgMode::Normal).await;
    let stt = DeepgramStt::new(Some(base), "dg-key", "nova-2");
    assert_eq!(stt.name(), "deepgram");
    let mut session = stt.open(SttOptions {
        language: Some("en".into()),
        prompt: None,
    });
    session.input.send(SttInput::SpeechStart).await.unwrap();
    for _ in 0..10 {
        session
            .input
            .send(SttInput::Audio(vec![1000; 160]))
            .await
            .unwrap();
    }
    assert_eq!(
        next_event(&mut session.events).await,
        SttEvent::Interim {
            text: "hello".into()
        }
    );
    session.input.send(SttInput::SpeechEnd).await.unwrap();
    assert_eq!(
        next_event(&mut session.events).await,
        SttEvent::Final {
            text: "Hello world.".into(),
            words: vec![
                Word {
                    word: "Hello".into(),
                    start_ms: 80,
                    end_ms: 320
                },
                Word {
                    word: "world.".into(),
                    start_ms: 320,
                    end_ms: 600
                },
            ],
        }
    );
    // Closing the input sends CloseStream; the server closes and the session ends cleanly.
    drop(session.input);
    assert_eq!(within("the session end", session.events.recv()).await, None);

    let mut entries = Vec::new();
    while let Ok(e) = log.try_recv() {
        entries.push(e);
    }
    let DgLog::Handshake { uri, auth } = &entries[0] else {
        panic!("{:?}", entries[0])
    };
    assert_eq!(auth.as_deref(), Some("Token dg-key"));
    let (path, query) = uri.split_once('?').unwrap();
    assert_eq!(path, "/v1/listen");
    let mut params: Vec<&str> = query.split('&').collect();
    params.sort_unstable();
    assert_eq!(
        params,
        [
            "channels=1",
            "encoding=mulaw",
            "interim_results=true",
            "language=en",
            "model=nova-2",
            "punctuate=true",
            "sample_rate=8000"
        ]
    );
    let frames: Vec<&Vec<u8>> = entries
        .iter()
        .filter_map(|e| match e {
            DgLog::Binary(b) => Some(b),
            _ => None,
        })
        .collect();
    assert_eq!(frames.len(), 10);
    assert!(frames.iter().all(|f| f.len() == 160));
    assert_eq!(frames.iter().map(|f| f.len()).sum::<usize>(), 1600);
    let decoded = G711::Pcmu.decode(frames[0]);
    assert!(
        decoded.iter().all(|&s| (s - 1000).abs() < 40),
        "{decoded:?}"
    );
    let texts: Vec<&str> = entries
        .iter()
        .filter_map(|e| match e {
            DgLog::Text(v) => v["type"].as_str(),
            _ => None,
        })
        .collect();
    assert_eq!(texts, ["Finalize", "CloseStream"]);
}

#[tokio::test]
async fn deepgram_rejected_key_is_a_status_error() {
    let (base, _log) = deepgram_fake(DgMode::Reject).await;
    let stt = DeepgramStt::new(Some(base), "dg-wrong-key-123", "nova-2");
    let mut session = stt.open(SttOptions::default());
    match next_event(&mut session.events).await {
        SttEvent::Error(e) => {
            assert!(
                matches!(&e, ProviderError::Status { status: 401, message, .. } if message.contains("Invalid credentials")),
                "{e:?}"
            );
            assert!(!e.to_string().contains("dg-wrong-key-123"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(within("the session end", session.events.recv()).await, None);
}

#[tokio::test]
async fn deepgram_keepalive_when_idle_and_unexpected_close_is_an_error() {
    let (base, mut log) = deepgram_fake(DgMode::CloseAfterKeepAlive).await;
    let stt =
        DeepgramStt::new(Some(base), "dg-key", "nova-3").with_keepalive(Duration::from_millis(100));
    let mut session = stt.open(SttOptions::default());
    // No audio at all: the client must keep the socket alive...
    loop {
        match within("a KeepAlive", log.recv()).await.unwrap() {
            DgLog::Text(v) => {
                assert_eq!(v, json!({"type": "KeepAlive"}));
                break;
            }
            DgLog::Handshake { .. } => {}
            other => panic!("{other:?}"),
        }
    }
    // ...and the server closing on its own is reported.
    match next_event(&mut session.events).await {
        SttEvent::Error(ProviderError::Connect { message, .. }) => {
            assert!(message.contains("NET-0001"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn deepgram_wss_failure_is_an_error_not_a_panic() {
    // A TCP server that hangs up: the TLS handshake fails (and the rustls config is built).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            drop(sock);
        }
    });
    let stt = DeepgramStt::new(Some(format!("wss://{addr}")), "k", "nova-2");
    let mut session = stt.open(SttOptions::default());
    assert!(matches!(
        next_event(&mut session.events).await,
        SttEvent::Error(ProviderError::Connect { .. })
    ));
}

// ---------------------------------------------------------------------------------------------
// TTS

/// Max deviation from the 1 kHz sine recurrence x[n+1] = 2cos(w)x[n] - x[n-1]: a click or a
/// dropped/duplicated sample at a chunk boundary shows up as a large residual.
fn sine_discontinuity(x: &[i16], rate: f64, freq: f64) -> f64 {
    let c = 2.0 * (2.0 * std::f64::consts::PI * freq / rate).cos();
    x.windows(3)
        .map(|w| (f64::from(w[2]) - c * f64::from(w[1]) + f64::from(w[0])).abs())
        .fold(0.0, f64::max)
}

/// Sends `first` at once, waits for `gate`, then the rest in odd-sized pieces with pauses.
fn gated_stream(data: Vec<u8>, first: usize, gate: Arc<Notify>, sent: Arc<AtomicUsize>) -> Body {
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        sent.store(first, Ordering::SeqCst);
        if tx
            .send(Bytes::copy_from_slice(&data[..first]))
            .await
            .is_err()
        {
            return;
        }
        gate.notified().await;
        let sizes = [1001usize, 333, 7, 2999, 1, 4097];
        let mut at = first;
        let mut i = 0;
        while at < data.len() {
            let n = sizes[i % sizes.len()].min(data.len() - at);
            tokio::time::sleep(Duration::from_millis(3)).await;
            if tx
                .send(Bytes::copy_from_slice(&data[at..at + n]))
                .await
                .is_err()
            {
                return;
            }
            at += n;
            sent.store(at, Ordering::SeqCst);
            i += 1;
        }
    });
    channel_body(rx)
}

#[tokio::test]
async fn openai_tts_streams_24k_pcm_as_continuous_8k() {
    let pcm24: Vec<u8> = sine(1000.0, 24000, 24000, 8000.0)
        .iter()
        .flat_map(|s| s.to_le_bytes())
        .collect();
    let total = pcm24.len();
    let gate = Arc::new(Notify::new());
    let sent = Arc::new(AtomicUsize::new(0));
    let seen: Arc<Mutex<Option<(HeaderMap, Value)>>> = Arc::default();
    let app = {
        let (gate, sent, seen) = (gate.clone(), sent.clone(), seen.clone());
        Router::new().route(
            "/v1/audio/speech",
            post(move |headers: HeaderMap, Json(body): Json<Value>| {
                *seen.lock().unwrap() = Some((headers, body));
                let body = gated_stream(pcm24.clone(), 4801, gate.clone(), sent.clone());
                async move {
                    Response::builder()
                        .header("content-type", "application/octet-stream")
                        .body(body)
                        .unwrap()
                }
            }),
        )
    };
    let base = format!("{}/v1", serve(app).await);
    let tts = OpenAiTts::new(base, Some("sk-tts".into()), "gpt-4o-mini-tts", "alloy");
    assert_eq!(tts.name(), "openai");
    let mut stream = tts
        .synthesize(TtsRequest {
            text: "Hello there".into(),
            voice: None,
            language: Some("en".into()),
        })
        .await
        .unwrap();
    // The first chunk arrives while the server still holds most of the audio.
    let first = within("the first chunk", stream.next())
        .await
        .unwrap()
        .unwrap();
    assert!(!first.is_empty());
    assert!(
        sent.load(Ordering::SeqCst) < total,
        "playback waited for everything"
    );
    gate.notify_one();
    let mut out = first;
    let mut chunks = 1;
    while let Some(c) = within("the next chunk", stream.next()).await {
        out.extend(c.unwrap());
        chunks += 1;
    }
    assert!(chunks > 3, "{chunks} chunks");
    // 1 s of audio at 8 kHz (plus the filter's few-sample tail).
    assert!((8_000..8_040).contains(&out.len()), "{} samples", out.len());
    let steady = &out[40..out.len() - 40];
    assert!(tone_ratio(steady, 8000, 1000.0) > 0.98);
    assert!(
        (rms(steady) - 8000.0 / 2f64.sqrt()).abs() < 200.0,
        "rms {}",
        rms(steady)
    );
    let jump = sine_discontinuity(steady, 8000.0, 1000.0);
    assert!(jump < 30.0, "discontinuity {jump}");

    let (headers, body) = seen.lock().unwrap().clone().unwrap();
    assert_eq!(headers["authorization"], "Bearer sk-tts");
    assert_eq!(
        body,
        json!({"model": "gpt-4o-mini-tts", "input": "Hello there", "voice": "alloy",
               "response_format": "pcm"})
    );
}

#[tokio::test]
async fn openai_tts_error_has_the_service_message() {
    let app = Router::new().route(
        "/v1/audio/speech",
        post(|| async {
            (
                StatusCode::BAD_REQUEST,
                Json(
                    json!({"error": {"message": "Input should be at most 4096 characters",
                                      "type": "invalid_request_error"}}),
                ),
            )
        }),
    );
    let base = format!("{}/v1", serve(app).await);
    let tts = OpenAiTts::new(base, Some("sk-tts-secret".into()), "tts-1", "alloy");
    let err = match tts
        .synthesize(TtsRequest {
            text: "x".into(),
            ..Default::default()
        })
        .await
    {
        Err(e) => e,
        Ok(_) => panic!("must fail"),
    };
    assert!(
        matches!(&err, ProviderError::Status { status: 400, message, .. } if message.contains("at most 4096")),
        "{err:?}"
    );
    assert!(!err.to_string().contains("sk-tts-secret"));
}

#[tokio::test]
async fn elevenlabs_streams_mulaw() {
    let tone = sine(1000.0, 8000, 4000, 8000.0);
    let ulaw = G711::Pcmu.encode(&tone);
    let total = ulaw.len();
    let gate = Arc::new(Notify::new());
    let sent = Arc::new(AtomicUsize::new(0));
    type Seen = (String, Option<String>, HeaderMap, Value);
    let seen: Arc<Mutex<Option<Seen>>> = Arc::default();
    let app = {
        let (gate, sent, seen, ulaw) = (gate.clone(), sent.clone(), seen.clone(), ulaw.clone());
        Router::new().route(
            "/v1/text-to-speech/{voice}/stream",
            post(
                move |Path(voice): Path<String>,
                      RawQuery(query): RawQuery,
                      headers: HeaderMap,
                      Json(body): Json<Value>| {
                    let ok = headers.get("xi-api-key").is_some_and(|k| k == "el-key");
                    *seen.lock().unwrap() = Some((voice, query, headers, body));
                    let body = gated_stream(ulaw.clone(), 801, gate.clone(), sent.clone());
                    async move {
                        if !ok {
                            return (
                                StatusCode::UNAUTHORIZED,
                                Json(json!({"detail": {"status": "invalid_api_key",
                                                      "message": "Invalid API key"}})),
                            )
                                .into_response();
                        }
                        Response::builder()
                            .header("content-type", "audio/basic")
                            .body(body)
                            .unwrap()
                    }
                },
            ),
        )
    };
    let base = serve(app).await;
    let tts = ElevenLabsTts::new(
        Some(base.clone()),
        "el-key",
        "eleven_flash_v2_5",
        "voice-xyz",
    );
    assert_eq!(tts.name(), "elevenlabs");
    let mut stream = tts
        .synthesize(TtsRequest {
            text: "Hola".into(),
            voice: None,
            language: Some("es-ES".into()),
        })
        .await
        .unwrap();
    let first = within("the first chunk", stream.next())
        .await
        .unwrap()
        .unwrap();
    assert!(sent.load(Ordering::SeqCst) < total);
    gate.notify_one();
    let mut out = first;
    while let Some(c) = within("the next chunk", stream.next()).await {
        out.extend(c.unwrap());
    }
    assert_eq!(out.len(), 4000, "0.5 s at 8 kHz");
    assert_eq!(out, G711::Pcmu.decode(&ulaw));
    assert!(tone_ratio(&out, 8000, 1000.0) > 0.98);

    let (voice, query, headers, body) = seen.lock().unwrap().clone().unwrap();
    assert_eq!(voice, "voice-xyz");
    assert_eq!(query.as_deref(), Some("output_format=ulaw_8000"));
    assert_eq!(headers["xi-api-key"], "el-key");
    assert_eq!(
        body,
        json!({"text": "Hola", "model_id": "eleven_flash_v2_5", "language_code": "es"})
    );

    // A bad key: the service's message, never the key.
    let bad = ElevenLabsTts::new(Some(base), "el-wrong-key", "eleven_flash_v2_5", "voice-xyz");
    let err = match bad
        .synthesize(TtsRequest {
            text: "Hola".into(),
            voice: Some("other-voice".into()),
            language: None,
        })
        .await
    {
        Err(e) => e,
        Ok(_) => panic!("must fail"),
    };
    assert_eq!(
        err,
        ProviderError::Status {
            provider: "elevenlabs",
            status: 401,
            message: "Invalid API key".into()
        }
    );
    assert!(!err.to_string().contains("el-wrong-key"));
    assert_eq!(seen.lock().unwrap().as_ref().unwrap().0, "other-voice");
}

#[tokio::test]
async fn espeak_says_hello_world() {
    let tts = EspeakTts::new("en");
    assert_eq!(tts.name(), "espeak");
    let chunks = collect(
        tts.synthesize(TtsRequest {
            text: "hello world".into(),
            voice: None,
            language: Some("en-US".into()),
        })
        .await
        .expect("espeak-ng is installed"),
    )
    .await;
    let pcm: Vec<i16> = chunks.into_iter().flat_map(Result::unwrap).collect();
    let secs = pcm.len() as f64 / 8000.0;
    assert!((0.4..3.0).contains(&secs), "{secs} s");
    assert!(rms(&pcm) > 300.0, "rms {}", rms(&pcm));
    // A voice that does not exist is a Local error.
    let err = match tts
        .synthesize(TtsRequest {
            text: "hi".into(),
            voice: Some("nosuchvoice".into()),
            language: None,
        })
        .await
    {
        Err(e) => e,
        Ok(_) => panic!("must fail"),
    };
    assert!(
        matches!(
            err,
            ProviderError::Local {
                provider: "espeak",
                ..
            }
        ),
        "{err:?}"
    );
}
