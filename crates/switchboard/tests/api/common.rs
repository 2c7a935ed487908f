//! Shared seeding helpers.

use serde_json::{json, Value};
use switchboard_domain::{Agent, Call, CallId, CallStatus, OrgId, RecordingMeta, Timestamp};
use switchboard_store::CallUpdate;
use switchboard_testkit::{status_json, TestApp};

/// Creates an agent through the API (as the default organization); returns its JSON.
pub async fn create_agent(app: &TestApp, name: &str) -> Value {
    let (s, v) = status_json(app.post_json("/v1/agents", &json!({ "name": name })).await).await;
    assert_eq!(s, 201, "{v}");
    v
}

/// Registers a number (optionally bound to an agent) through the API; returns its JSON.
pub async fn create_number(app: &TestApp, number: &str, agent_id: Option<&str>) -> Value {
    let (s, v) = status_json(
        app.post_json(
            "/v1/phone-numbers",
            &json!({ "phone_number": number, "agent_id": agent_id }),
        )
        .await,
    )
    .await;
    assert_eq!(s, 201, "{v}");
    v
}

/// An agent bound to a number, ready for `POST /v1/call` with `from`.
pub async fn agent_with_number(app: &TestApp, number: &str) -> (String, String) {
    let agent = create_agent(app, &format!("agent {number}")).await;
    let id = agent["id"].as_str().expect("agent id").to_string();
    create_number(app, number, Some(&id)).await;
    (id, number.to_string())
}

/// Dispatches a call through the API and checks it was accepted.
pub async fn dispatch(app: &TestApp, body: &Value) -> Value {
    let (s, v) = status_json(app.post_json("/v1/call", body).await).await;
    assert_eq!(s, 201, "POST /v1/call {body}: {v}");
    v
}

pub fn ts(s: &str) -> Timestamp {
    Timestamp::parse_param("ts", s).expect("test timestamp")
}

/// A call that ran from `started` to `ended` and ended with `status`, seeded through the store.
pub async fn seed_ended(
    app: &TestApp,
    org: OrgId,
    agent: Option<&Agent>,
    to: &str,
    status: CallStatus,
    started: &str,
    ended: &str,
) -> Call {
    let c = app.seed_call(org, agent, to).await;
    let (s, e) = (ts(started), ts(ended));
    app.store
        .update_call(
            c.id,
            CallUpdate {
                status: Some(status),
                started_at: Some(s),
                ended_at: Some(e),
                duration_seconds: Some((e.micros() - s.micros()) / 1_000_000),
                end_reason: Some("hangup".into()),
                sip_code: Some(200),
                recording: None,
                ..Default::default()
            },
        )
        .await
        .expect("update_call")
}

/// The ids of a calls page, in order.
pub fn ids(page: &Value) -> Vec<String> {
    page["calls"]
        .as_array()
        .unwrap_or_else(|| panic!("no calls array in {page}"))
        .iter()
        .map(|c| c["id"].as_str().expect("id").to_string())
        .collect()
}

/// Writes `data` as the call's mono recording (`<call id>.mp3` in the recordings storage) and
/// points the call at it. Returns the object key.
pub async fn put_recording(app: &TestApp, call: CallId, data: &[u8]) -> String {
    let key = format!("{call}.mp3");
    app.recordings
        .put(&key, data.to_vec().into())
        .await
        .expect("put recording");
    let meta = RecordingMeta {
        key: key.clone(),
        stereo_key: None,
        duration_ms: Some(1000),
        size_bytes: Some(data.len() as i64),
        sha256: None,
        incomplete_reason: None,
    };
    app.store
        .update_call(
            call,
            CallUpdate {
                recording: Some(meta),
                ..Default::default()
            },
        )
        .await
        .expect("set recording");
    key
}
