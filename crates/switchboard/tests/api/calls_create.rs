//! POST /v1/call: dispatch, validation, Idempotency-Key.

use crate::common::*;
use reqwest::Method;
use serde_json::{json, Value};
use switchboard_testkit::{both, expect_error, status_json, Db, TestApp};

async fn create_call_dials_queues_and_creates_contact(db: Db) {
    let app = TestApp::spawn_holding_calls(db).await;
    let (agent, from) = agent_with_number(&app, "+14155550100").await;
    let (_, numbers) = status_json(app.get("/v1/phone-numbers").await).await;
    let number_id = numbers["phone_numbers"][0]["id"].clone();

    let call = dispatch(&app, &json!({"to": "+1 415 555 0199", "from": from, "context": {"order": 42}, "metadata": {"crm": "x"}})).await;
    assert_eq!(call["status"], "dialing");
    assert!(
        uuid::Uuid::parse_str(call["id"].as_str().expect("id")).is_ok(),
        "{call}"
    );
    assert_eq!(call["agent_id"], json!(agent));
    assert_eq!(call["client_number"], "+14155550199", "to is normalised");
    assert_eq!(call["to_number"], "+14155550199");
    assert_eq!(call["from_number"], json!(from));
    assert_eq!(call["phone_id"], number_id);
    assert_eq!(call["type"], "outbound");
    assert_eq!(call["context"], json!({"order": 42}));
    assert_eq!(call["metadata"], json!({"crm": "x"}));
    assert_eq!(
        (
            call["start_time"].clone(),
            call["end_time"].clone(),
            call["recording_url"].clone()
        ),
        (json!(null), json!(null), json!(null))
    );
    assert_eq!(app.store.queued_count().await.expect("queued_count"), 1);

    // The contact was created on first sight of the number, and is embedded in the call.
    let (_, contacts) = status_json(app.get("/v1/contacts").await).await;
    assert_eq!(contacts["num_items"], 1, "{contacts}");
    let contact = &contacts["contacts"][0];
    assert_eq!(contact["identifier"], "+14155550199");
    assert_eq!(call["contact"]["id"], contact["id"]);
    assert_eq!(call["contact"]["identifier"], "+14155550199");

    // agent_id alone: the caller ID is a number bound to the agent.
    let second = dispatch(
        &app,
        &json!({"to": "+14155550199", "agent_id": agent, "context": "plain text"}),
    )
    .await;
    assert_eq!(second["from_number"], json!(from));
    assert_eq!(second["context"], "plain text");
    assert_ne!(second["id"], call["id"]);
    assert_eq!(
        second["contact"]["id"], contact["id"],
        "the same number reuses its contact"
    );
    let (_, contacts) = status_json(app.get("/v1/contacts").await).await;
    assert_eq!(contacts["num_items"], 1);
    assert_eq!(app.store.queued_count().await.expect("queued_count"), 2);

    // The calls list and the call resource show them.
    let (_, list) = status_json(app.get("/v1/calls").await).await;
    assert_eq!(
        ids(&list),
        [
            second["id"].as_str().expect("id"),
            call["id"].as_str().expect("id")
        ]
    );
}
both!(create_call_dials_queues_and_creates_contact);

async fn post_raw(
    app: &TestApp,
    content_type: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    let mut rb = app.request(Method::POST, "/v1/call").body(body);
    if let Some(ct) = content_type {
        rb = rb.header("content-type", ct);
    }
    rb.send().await.expect("send")
}

async fn create_call_validation(db: Db) {
    let app = TestApp::spawn_holding_calls(db).await;
    let (agent, from) = agent_with_number(&app, "+14155550100").await;
    create_number(&app, "+14155550111", None).await; // ours, bound to no agent

    let cases: Vec<(Value, u16, &str)> = vec![
        (
            json!({"to": "4155550199", "from": from}),
            400,
            "to: \"4155550199\" is not an E.164 phone number",
        ),
        (json!({"to": "+1415abc0199", "agent_id": agent}), 400, "to:"),
        (json!({"to": "' OR 1=1 --", "agent_id": agent}), 400, "to:"),
        (json!({"from": from}), 400, "to is required"),
        (
            json!({"to": 14155550199u64, "from": from}),
            400,
            "invalid request body: invalid type",
        ),
        (
            json!({"to": "+14155550199", "from": from, "user_speaks_first": "yes"}),
            400,
            "invalid request body",
        ),
        (
            json!({"to": "+14155550199", "from": from, "speed": 2}),
            400,
            "unknown field `speed`",
        ),
        (json!({"to": "+14155550199"}), 400, "pass from"),
        (json!({"to": "+14155550199", "from": "415"}), 400, "from:"),
        (
            json!({"to": "+14155550199", "agent_id": "agent-7"}),
            400,
            "agent_id must be a UUID",
        ),
        (
            json!({"to": "+14155550199", "from": from, "context": [1, 2]}),
            400,
            "context must be a string or a JSON object",
        ),
        (
            json!({"to": "+14155550199", "from": from, "metadata": "x"}),
            400,
            "metadata must be a JSON object",
        ),
        (
            json!({"to": "+14155550199", "from": from, "ring_timeout": 0}),
            400,
            "ring_timeout must be between 1 and 300",
        ),
        (
            json!({"to": "+14155550199", "from": from, "campaign_id": "3c90c3cc-0d44-4b50-8888-8dd25736052a"}),
            404,
            "campaign",
        ),
        (
            json!({"to": "+14155550199", "from": "+14155550999"}),
            404,
            "+14155550999 is not a phone number of this organization",
        ),
        (
            json!({"to": "+14155550199", "agent_id": "3c90c3cc-0d44-4b50-8888-8dd25736052a"}),
            404,
            "not found",
        ),
        (
            json!({"to": "+14155550199", "from": "+14155550111"}),
            422,
            "no agent for this call",
        ),
        (
            json!("to +14155550199"),
            400,
            "invalid request body: invalid type",
        ),
    ];
    for (body, status, needle) in cases {
        let m = expect_error(app.post_json("/v1/call", &body).await, status).await;
        assert!(m.contains(needle), "{body}: message {m:?} lacks {needle:?}");
    }
    let good = json!({"to": "+14155550199", "from": from}).to_string();
    let m = expect_error(
        post_raw(
            &app,
            Some("application/json"),
            r#"{"to": "+14155550199", "from": "#,
        )
        .await,
        400,
    )
    .await;
    assert!(m.starts_with("malformed JSON"), "{m}");
    let m = expect_error(post_raw(&app, None, good.clone()).await, 415).await;
    assert_eq!(m, "Content-Type must be application/json, got \"none\"");
    expect_error(
        post_raw(
            &app,
            Some("application/x-www-form-urlencoded"),
            "to=%2B14155550199",
        )
        .await,
        415,
    )
    .await;
    let big = json!({"to": "+14155550199", "from": from, "context": "x".repeat(1024 * 1024 + 10)})
        .to_string();
    let m = expect_error(post_raw(&app, Some("application/json"), big).await, 413).await;
    assert!(m.contains("1 MiB"), "{m}");
    let r = app
        .request(Method::POST, "/v1/call")
        .header("idempotency-key", "k".repeat(256))
        .json(&json!({"to": "+14155550199", "from": from}))
        .send()
        .await
        .expect("send");
    let m = expect_error(r, 400).await;
    assert!(m.contains("Idempotency-Key"), "{m}");

    // Nothing was written by any refused request.
    assert_eq!(app.store.queued_count().await.expect("queued_count"), 0);
    let (_, list) = status_json(app.get("/v1/calls").await).await;
    assert_eq!(list["num_items"], 0);
    let (_, contacts) = status_json(app.get("/v1/contacts").await).await;
    assert_eq!(contacts["num_items"], 0, "{contacts}");

    // And the server still works.
    let r = post_raw(&app, Some("application/json"), good).await;
    assert_eq!(r.status(), 201);
}
both!(create_call_validation);

async fn idempotency_key_replays_and_refuses_a_different_body(db: Db) {
    let app = TestApp::spawn_holding_calls(db).await;
    let (_agent, from) = agent_with_number(&app, "+14155550100").await;
    let body = json!({"to": "+14155550199", "from": from, "context": "first"});
    let post = |key: &'static str, body: Value| {
        let app = &app;
        async move {
            app.request(Method::POST, "/v1/call")
                .header("idempotency-key", key)
                .json(&body)
                .send()
                .await
                .expect("send")
        }
    };
    let r = post("order-42", body.clone()).await;
    assert_eq!(r.status(), 201);
    assert!(r.headers().get("idempotent-replayed").is_none());
    let (_, first) = status_json(r).await;

    let r = post("order-42", body.clone()).await;
    assert_eq!(r.status(), 201);
    assert_eq!(
        r.headers()
            .get("idempotent-replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    let (_, again) = status_json(r).await;
    assert_eq!(again["id"], first["id"]);
    assert_eq!(again, first, "a replay returns the original call");
    assert_eq!(app.store.queued_count().await.expect("queued_count"), 1);

    // Concurrent retries of the same request: still one call.
    let replies = futures::future::join_all((0..6).map(|_| post("order-42", body.clone()))).await;
    for r in replies {
        let (s, v) = status_json(r).await;
        assert_eq!((s.as_u16(), v["id"].clone()), (201, first["id"].clone()));
    }
    assert_eq!(app.store.queued_count().await.expect("queued_count"), 1);

    let m = expect_error(
        post(
            "order-42",
            json!({"to": "+14155550199", "from": from, "context": "second"}),
        )
        .await,
        422,
    )
    .await;
    assert!(m.contains("Idempotency-Key"), "{m}");
    assert_eq!(app.store.queued_count().await.expect("queued_count"), 1);

    // Another key (or none) is another call.
    let (_, other) = status_json(post("order-43", body.clone()).await).await;
    assert_ne!(other["id"], first["id"]);
    dispatch(&app, &body).await;
    assert_eq!(app.store.queued_count().await.expect("queued_count"), 3);
    let (_, list) = status_json(app.get("/v1/calls").await).await;
    assert_eq!(list["num_items"], 3);

    // Keys are per organization: B's "order-42" is B's own call.
    let (_org_b, key_b) = app.new_org("B").await;
    let agent_b = status_json(
        app.post_json_with_key("/v1/agents", &json!({"name": "b"}), &key_b)
            .await,
    )
    .await
    .1;
    let r = app
        .request_with_key(Method::POST, "/v1/call", &key_b)
        .header("idempotency-key", "order-42")
        .json(&json!({"to": "+14155550199", "agent_id": agent_b["id"]}))
        .send()
        .await
        .expect("send");
    let (s, b_call) = status_json(r).await;
    assert_eq!(s, 201, "{b_call}");
    assert_ne!(b_call["id"], first["id"]);
}
both!(idempotency_key_replays_and_refuses_a_different_body);
