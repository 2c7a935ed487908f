//! Webhook tools against a real HTTP receiver on loopback: the request carries the call id
//! and the arguments, is signed the Standard Webhooks way (verified here independently of the
//! signing code), and slow, failing, redirecting and unreachable tools become errors the LLM
//! is told about.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::any;
use axum::Router;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchboard_agent::tools::{call_webhook, ToolCallContext};
use switchboard_domain::tools::{parse_tools, Tool, WebhookTool};

#[derive(Default)]
struct Seen {
    requests: Vec<(String, HeaderMap, Option<String>, String)>,
}

type Shared = Arc<Mutex<Seen>>;

async fn receiver(
    State(seen): State<Shared>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> axum::response::Response {
    let body = String::from_utf8_lossy(&body).to_string();
    seen.lock()
        .unwrap()
        .requests
        .push((method.to_string(), headers, q, body));
    match uri.path() {
        "/ok" => (StatusCode::OK, r#"{"status":"shipped","eta":"tomorrow"}"#).into_response(),
        "/text" => (StatusCode::OK, "plain words").into_response(),
        "/fail" => (StatusCode::INTERNAL_SERVER_ERROR, "database down").into_response(),
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            (StatusCode::OK, "late").into_response()
        }
        "/redirect" => (
            StatusCode::FOUND,
            [("location", "http://169.254.169.254/latest/meta-data")],
        )
            .into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn serve() -> (String, Shared) {
    let seen: Shared = Arc::default();
    let app = Router::new()
        .route("/{*path}", any(receiver))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), seen)
}

fn tool(base: &str, path: &str, method: &str, timeout_ms: u64) -> WebhookTool {
    let t = parse_tools(&json!([{
        "type": "webhook", "name": "lookup_order", "description": "Find an order",
        "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}, "n": {"type": "integer"}}},
        "url": format!("{base}{path}"), "method": method, "timeout_ms": timeout_ms,
        "headers": {"Authorization": "Bearer tool-token"}
    }]))
    .unwrap();
    match t.into_iter().next() {
        Some(Tool::Webhook(w)) => w,
        _ => unreachable!(),
    }
}

fn ctx() -> ToolCallContext {
    ToolCallContext {
        call_id: "6f1c3a52-0000-4000-8000-000000000001".into(),
        tool_call_id: "call_abc".into(),
        // 32 random bytes, base64, as the platform issues them.
        secret: Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()),
    }
}

/// The Standard Webhooks verification, written from the specification.
fn verify(secret: &str, headers: &HeaderMap, body: &str) -> bool {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .unwrap();
    let id = headers["webhook-id"].to_str().unwrap();
    let ts = headers["webhook-timestamp"].to_str().unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.{body}").as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    headers["webhook-signature"]
        .to_str()
        .unwrap()
        .split(' ')
        .any(|s| s == format!("v1,{expected}"))
}

#[tokio::test]
async fn a_post_tool_is_signed_carries_the_call_and_returns_json() {
    let (base, seen) = serve().await;
    let client = reqwest::Client::new();
    let r = call_webhook(
        &client,
        &tool(&base, "/ok", "POST", 2000),
        &ctx(),
        &json!({"order_id": "42"}),
    )
    .await
    .unwrap();
    assert_eq!(r, json!({"status": "shipped", "eta": "tomorrow"}));
    let s = seen.lock().unwrap();
    let (method, headers, _, body) = &s.requests[0];
    assert_eq!(method, "POST");
    let b: Value = serde_json::from_str(body).unwrap();
    assert_eq!(
        b,
        json!({"call_id": ctx().call_id, "tool": "lookup_order", "tool_call_id": "call_abc", "arguments": {"order_id": "42"}})
    );
    assert_eq!(headers["x-switchboard-call-id"], ctx().call_id.as_str());
    assert_eq!(headers["authorization"], "Bearer tool-token");
    assert_eq!(headers["content-type"], "application/json");
    assert!(verify(ctx().secret.as_deref().unwrap(), headers, body));
    let ts: i64 = headers["webhook-timestamp"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now - ts).abs() <= 5);
    // A tampered body does not verify.
    assert!(!verify(
        ctx().secret.as_deref().unwrap(),
        headers,
        &body.replace("42", "43")
    ));
}

#[tokio::test]
async fn a_get_tool_sends_arguments_as_query_and_text_comes_back_as_text() {
    let (base, seen) = serve().await;
    let client = reqwest::Client::new();
    let r = call_webhook(
        &client,
        &tool(&base, "/text", "GET", 2000),
        &ctx(),
        &json!({"order_id": "A 1", "n": 3}),
    )
    .await
    .unwrap();
    assert_eq!(r, json!("plain words"));
    let s = seen.lock().unwrap();
    let (method, headers, q, body) = &s.requests[0];
    assert_eq!(method, "GET");
    assert!(body.is_empty());
    let q = q.as_deref().unwrap();
    assert!(
        q.contains("order_id=A+1") || q.contains("order_id=A%201"),
        "{q}"
    );
    assert!(q.contains("n=3") && q.contains("call_id="), "{q}");
    assert!(verify(ctx().secret.as_deref().unwrap(), headers, ""));
}

#[tokio::test]
async fn failures_timeouts_redirects_and_unreachable_tools_are_errors_with_reasons() {
    let (base, _seen) = serve().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let args = json!({"order_id": "42"});
    let e = call_webhook(&client, &tool(&base, "/fail", "POST", 2000), &ctx(), &args)
        .await
        .unwrap_err();
    assert!(e.contains("HTTP 500") && e.contains("database down"), "{e}");
    let started = std::time::Instant::now();
    let e = call_webhook(&client, &tool(&base, "/slow", "POST", 300), &ctx(), &args)
        .await
        .unwrap_err();
    assert!(e.contains("within 300 ms"), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the timeout cut it"
    );
    let e = call_webhook(
        &client,
        &tool(&base, "/redirect", "POST", 2000),
        &ctx(),
        &args,
    )
    .await
    .unwrap_err();
    assert!(e.contains("HTTP 302"), "redirects are not followed: {e}");
    // A port nobody listens on.
    let sock = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", sock.local_addr().unwrap());
    drop(sock);
    let e = call_webhook(&client, &tool(&dead, "/x", "POST", 2000), &ctx(), &args)
        .await
        .unwrap_err();
    assert!(e.contains("could not reach the tool"), "{e}");
    assert!(!e.contains("127.0.0.1"), "no URL in the error: {e}");
}
