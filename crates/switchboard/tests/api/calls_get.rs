//! GET /v1/call/{id} and GET /v1/call?id=: the call resource's shape (002) and Flyflow's (000),
//! payload shape parameters.

use crate::common::*;
use serde_json::{json, Value};
use switchboard_domain::{CallDetails, CallStatus};
use switchboard_store::CallUpdate;
use switchboard_testkit::{both, expect_error, status_json, Db, TestApp};

#[derive(Clone, Copy, Debug)]
enum T {
    Str,
    Num,
    Null,
    StrOrNull,
    ObjOrNull,
    AnyJson,
}

fn check_type(v: &Value, key: &str, t: T) {
    let x = v
        .get(key)
        .unwrap_or_else(|| panic!("field {key:?} missing from {v}"));
    let ok = match t {
        T::Str => x.is_string(),
        T::Num => x.is_number(),
        T::Null => x.is_null(),
        T::StrOrNull => x.is_string() || x.is_null(),
        T::ObjOrNull => x.is_object() || x.is_null(),
        T::AnyJson => true,
    };
    assert!(ok, "field {key:?} = {x} is not {t:?}");
}

fn is_rfc3339(v: &Value) -> bool {
    v.as_str().is_some_and(chrono_like)
}

/// `2024-01-31T23:59:59.123Z`-style UTC timestamps.
fn chrono_like(s: &str) -> bool {
    s.len() == 24
        && s.ends_with('Z')
        && s.as_bytes()[10] == b'T'
        && switchboard_domain::Timestamp::parse_param("t", s).is_ok()
}

/// The call resource (002): every documented field, with its JSON type.
fn assert_shape_002(v: &Value, answered: bool) {
    let (time, num, reason) = if answered {
        (T::Str, T::Num, T::Str)
    } else {
        (T::Null, T::Null, T::Null)
    };
    for (k, t) in [
        ("id", T::Str),
        ("agent_id", T::StrOrNull),
        ("status", T::Str),
        ("type", T::Str),
        ("contact", T::ObjOrNull),
        ("phone_id", T::StrOrNull),
        ("created_date", T::Str),
        ("recording_url", T::StrOrNull),
        ("start_time", time),
        ("end_time", time),
        ("duration", num),
        ("end_reason", reason),
    ] {
        check_type(v, k, t);
    }
    assert!([
        "dialing",
        "in_progress",
        "completed",
        "failed",
        "transferred",
        "no_answer"
    ]
    .contains(&v["status"].as_str().expect("status")));
    assert!(["inbound", "outbound"].contains(&v["type"].as_str().expect("type")));
    assert!(is_rfc3339(&v["created_date"]), "{}", v["created_date"]);
    if answered {
        assert!(
            is_rfc3339(&v["start_time"]) && is_rfc3339(&v["end_time"]),
            "{v}"
        );
    }
    if let Some(c) = v["contact"].as_object() {
        let c = Value::Object(c.clone());
        for (k, t) in [
            ("id", T::Str),
            ("created_date", T::Str),
            ("identifier", T::Str),
            ("contact_type", T::Str),
            ("first_name", T::StrOrNull),
            ("last_name", T::StrOrNull),
            ("email", T::StrOrNull),
        ] {
            check_type(&c, k, t);
        }
    }
}

/// Flyflow's call (000).
fn assert_shape_000(v: &Value) {
    for (k, t) in [
        ("id", T::Str),
        ("agent_id", T::StrOrNull),
        ("client_number", T::Str),
        ("context", T::AnyJson),
        ("status", T::Str),
        ("created_at", T::Str),
    ] {
        check_type(v, k, t);
    }
    assert!(v["context"].is_null() || v["context"].is_string() || v["context"].is_object());
    assert_eq!(v["created_at"], v["created_date"]);
}

async fn get_call_shapes(db: Db) {
    let app = TestApp::spawn_holding_calls(db).await;
    let (agent, from) = agent_with_number(&app, "+14155550100").await;
    let call = dispatch(
        &app,
        &json!({"to": "+14155550199", "from": from, "context": "hello"}),
    )
    .await;
    let id = call["id"].as_str().expect("id").to_string();

    let (s, v) = status_json(app.get(&format!("/v1/call/{id}")).await).await;
    assert_eq!(s, 200);
    assert_shape_002(&v, false);
    assert_shape_000(&v);
    assert_eq!(
        (v["id"].clone(), v["agent_id"].clone(), v["status"].clone()),
        (json!(id), json!(agent), json!("dialing"))
    );
    assert_eq!(
        (v["client_number"].clone(), v["context"].clone()),
        (json!("+14155550199"), json!("hello"))
    );
    assert_eq!(v["recording"], json!(null));
    let (s, by_query) = status_json(app.get(&format!("/v1/call?id={id}")).await).await;
    assert_eq!(s, 200);
    assert_eq!(by_query, v, "?id= and /{{id}} render the same call");
    // Upper-case UUIDs are the same id.
    let (s, upper) = status_json(app.get(&format!("/v1/call/{}", id.to_uppercase())).await).await;
    assert_eq!((s.as_u16(), upper["id"].clone()), (200, json!(id)));

    // Once the call has run and was recorded.
    app.store
        .update_call(
            id.parse().expect("uuid"),
            CallUpdate {
                status: Some(CallStatus::Completed),
                started_at: Some(ts("2024-05-01T10:00:00Z")),
                ended_at: Some(ts("2024-05-01T10:01:30Z")),
                duration_seconds: Some(90),
                end_reason: Some("customer-ended-call".into()),
                sip_code: Some(200),
                recording: None,
                ..Default::default()
            },
        )
        .await
        .expect("update");
    put_recording(&app, id.parse().expect("uuid"), b"ID3.....").await;
    let (_, v) = status_json(app.get(&format!("/v1/call/{id}")).await).await;
    assert_shape_002(&v, true);
    assert_shape_000(&v);
    assert_eq!(
        (
            v["status"].clone(),
            v["duration"].clone(),
            v["end_reason"].clone()
        ),
        (json!("completed"), json!(90), json!("customer-ended-call"))
    );
    assert_eq!(
        (v["start_time"].clone(), v["end_time"].clone()),
        (
            json!("2024-05-01T10:00:00.000Z"),
            json!("2024-05-01T10:01:30.000Z")
        )
    );
    assert_eq!(
        v["recording_url"],
        json!(format!("{}/v1/call/recording/{id}.mp3", app.base))
    );
    assert_eq!(v["recording"]["url"], v["recording_url"]);
    assert_eq!(v["sip_code"], 200);
}
both!(get_call_shapes);

async fn get_call_errors(db: Db) {
    let app = TestApp::spawn_holding_calls(db).await;
    for path in [
        "/v1/call/not-a-uuid",
        "/v1/call?id=not-a-uuid",
        "/v1/call/3c90c3cc0d444b5088888dd25736052",
        "/v1/call/'%20OR%201=1%20--",
    ] {
        let m = expect_error(app.get(path).await, 400).await;
        assert!(m.contains("must be a UUID"), "{path}: {m}");
    }
    let m = expect_error(app.get("/v1/call").await, 400).await;
    assert!(m.contains("id is required"), "{m}");
    let unknown = uuid::Uuid::new_v4();
    assert_eq!(
        expect_error(app.get(&format!("/v1/call/{unknown}")).await, 404).await,
        "Call not found"
    );
    assert_eq!(
        expect_error(app.get(&format!("/v1/call?id={unknown}")).await, 404).await,
        "Call not found"
    );
    let (_, from) = agent_with_number(&app, "+14155550100").await;
    let call = dispatch(&app, &json!({"to": "+14155550199", "from": from})).await;
    let id = call["id"].as_str().expect("id");
    let m = expect_error(
        app.get(&format!("/v1/call/{id}?fields=everything")).await,
        400,
    )
    .await;
    assert!(m.contains("fields must be one of light, full"), "{m}");
    let m = expect_error(
        app.get(&format!("/v1/call/{id}?include=transcript,secrets"))
            .await,
        400,
    )
    .await;
    assert!(
        m.contains("include must be one of transcript, metrics, diagnostics, actions"),
        "{m}"
    );
}
both!(get_call_errors);

const FULL_ONLY: &[&str] = &[
    "post_call_analysis",
    "call_description",
    "custom_analysis",
    "structured_data_results",
    "notes",
    "enhanced_context",
];

async fn fields_and_include_groups(db: Db) {
    let app = TestApp::spawn_holding_calls(db).await;
    let (_, from) = agent_with_number(&app, "+14155550100").await;
    let call = dispatch(&app, &json!({"to": "+14155550199", "from": from})).await;
    let id = call["id"].as_str().expect("id").to_string();
    let details = CallDetails {
        transcript: Some("agent: hi\nuser: hello".into()),
        quality_metrics: Some(json!({"mos": 4.2})),
        turn_events: Some(json!([])),
        action_summary: Some(json!({"n": 0})),
        ..Default::default()
    };
    app.store
        .set_call_details(id.parse().expect("uuid"), &details)
        .await
        .expect("details");

    let get_raw = |q: &'static str| {
        let app = &app;
        let id = id.clone();
        async move {
            let r = app.get(&format!("/v1/call/{id}{q}")).await;
            assert_eq!(r.status(), 200, "{q}");
            let text = r.text().await.expect("body");
            let v: Value = serde_json::from_str(&text).expect("JSON");
            (text, v)
        }
    };
    let (_, light) = get_raw("").await;
    for k in [
        "transcript",
        "quality_metrics",
        "turn_events",
        "action_summary",
        "post_call_analysis",
    ] {
        assert!(light.get(k).is_none(), "light payload has {k}");
    }
    let (_, full) = get_raw("?fields=full").await;
    assert_eq!(full["transcript"], "agent: hi\nuser: hello");
    assert_eq!(full["quality_metrics"], json!({"mos": 4.2}));
    for k in FULL_ONLY
        .iter()
        .chain(&["transcript_formatted", "action_executions"])
    {
        assert!(
            full.get(*k).is_some_and(Value::is_null),
            "full payload lacks {k} (null): {full}"
        );
    }
    let (_, t) = get_raw("?include=transcript").await;
    assert_eq!(
        (t["transcript"].clone(), t["transcript_formatted"].clone()),
        (json!("agent: hi\nuser: hello"), json!(null))
    );
    assert!(
        t.get("quality_metrics").is_none() && t.get("post_call_analysis").is_none(),
        "{t}"
    );
    let (_, m) = get_raw("?include=metrics").await;
    assert_eq!(m["quality_metrics"], json!({"mos": 4.2}));
    assert!(
        m.get("latency_metrics").is_some()
            && m.get("audio_metrics").is_some()
            && m.get("transcript").is_none()
    );
    let (_, d) = get_raw("?include=diagnostics").await;
    assert_eq!(d["turn_events"], json!([]));
    assert!(
        d.get("interruptions").is_some()
            && d.get("tool_usage").is_some()
            && d.get("transcript").is_none()
    );
    let (_, a) = get_raw("?include=actions").await;
    assert_eq!(a["action_summary"], json!({"n": 0}));
    assert!(a.get("action_executions").is_some() && a.get("transcript").is_none());

    // Groups together, repeated, and with fields=full: each field once.
    let (text, all) =
        get_raw("?fields=full&include=transcript,metrics,diagnostics,actions,transcript").await;
    for k in [
        "transcript",
        "transcript_formatted",
        "quality_metrics",
        "latency_metrics",
        "audio_metrics",
        "turn_events",
        "action_executions",
        "action_summary",
    ] {
        assert!(all.get(k).is_some(), "{k} missing");
        assert_eq!(
            text.matches(&format!("\"{k}\":")).count(),
            1,
            "{k} appears more than once in {text}"
        );
    }
    for k in FULL_ONLY {
        assert!(all.get(*k).is_some(), "{k} missing with full+include");
    }
    // The light fields are all still there.
    for k in light.as_object().expect("object").keys() {
        assert!(all.get(k).is_some(), "{k} lost");
    }
    // The calls list honours the same parameters.
    let (s, list) = status_json(app.get("/v1/calls?fields=full&include=metrics").await).await;
    assert_eq!(s, 200);
    assert_eq!(list["calls"][0]["transcript"], "agent: hi\nuser: hello");
    assert_eq!(list["calls"][0]["quality_metrics"], json!({"mos": 4.2}));
    let (_, list) = status_json(app.get("/v1/calls?fields=light").await).await;
    assert!(list["calls"][0].get("transcript").is_none());
    let (_, list) = status_json(app.get("/v1/calls?include=transcript").await).await;
    assert_eq!(list["calls"][0]["transcript"], "agent: hi\nuser: hello");
    assert!(list["calls"][0].get("quality_metrics").is_none());
}
both!(fields_and_include_groups);

async fn context_update(db: Db) {
    let app = TestApp::spawn_holding_calls(db).await;
    let (_, from) = agent_with_number(&app, "+14155550100").await;
    let call = dispatch(
        &app,
        &json!({"to": "+14155550199", "from": from, "context": "old"}),
    )
    .await;
    let id = call["id"].as_str().expect("id");
    let (s, v) = status_json(
        app.post_json(
            "/v1/call/context",
            &json!({"id": id, "context": "new context"}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (s.as_u16(), v["context"].clone(), v["id"].clone()),
        (200, json!("new context"), json!(id))
    );
    assert_shape_000(&v);
    let (_, got) = status_json(app.get(&format!("/v1/call/{id}")).await).await;
    assert_eq!(got["context"], "new context");
    let obj = json!({"customer": {"name": "Ada", "tier": 2}, "notes": ["a", "b"]});
    let (s, v) = status_json(
        app.post_json("/v1/call/context", &json!({"id": id, "context": obj}))
            .await,
    )
    .await;
    assert_eq!((s.as_u16(), v["context"].clone()), (200, obj.clone()));
    let (_, got) = status_json(app.get(&format!("/v1/call/{id}")).await).await;
    assert_eq!(got["context"], obj, "replaced, not merged");

    let m = expect_error(
        app.post_json("/v1/call/context", &json!({"id": id, "context": ["a"]}))
            .await,
        400,
    )
    .await;
    assert_eq!(m, "context must be a string or a JSON object");
    expect_error(
        app.post_json("/v1/call/context", &json!({"id": id, "context": 5}))
            .await,
        400,
    )
    .await;
    let m = expect_error(
        app.post_json("/v1/call/context", &json!({"context": "x"}))
            .await,
        400,
    )
    .await;
    assert!(m.contains("id is required"), "{m}");
    let m = expect_error(
        app.post_json("/v1/call/context", &json!({"id": "x", "context": "x"}))
            .await,
        400,
    )
    .await;
    assert!(m.contains("must be a UUID"), "{m}");
    let m = expect_error(
        app.post_json(
            "/v1/call/context",
            &json!({"id": uuid::Uuid::new_v4(), "context": "x"}),
        )
        .await,
        404,
    )
    .await;
    assert_eq!(m, "Call not found");
    let (_, got) = status_json(app.get(&format!("/v1/call/{id}")).await).await;
    assert_eq!(got["context"], obj, "refused updates changed nothing");
    // null clears it.
    let (_, v) = status_json(
        app.post_json("/v1/call/context", &json!({"id": id, "context": null}))
            .await,
    )
    .await;
    assert_eq!(v["context"], json!(null));
}
both!(context_update);
