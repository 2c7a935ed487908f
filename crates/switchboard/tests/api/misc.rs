//! Health, routing errors, request ids, the rate limit.

use reqwest::Method;
use serde_json::json;
use switchboard_testkit::{both, expect_error, status_json, Db, TestApp};

async fn healthz(db: Db) {
    let app = TestApp::spawn(db).await;
    let (s, v) = status_json(
        app.client
            .get(app.url("/healthz"))
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(
        (s.as_u16(), v),
        (200, json!({"status": "ok"})),
        "no key needed"
    );
}
both!(healthz);

async fn unknown_route_and_wrong_method_are_json(db: Db) {
    let app = TestApp::spawn_holding_calls(db).await;
    let (s, v) = status_json(app.client.get(app.url("/nope")).send().await.expect("send")).await;
    assert_eq!(s, 404);
    assert_eq!(v["error"], "Not Found");
    assert!(
        v["message"]
            .as_str()
            .expect("message")
            .contains("GET /nope"),
        "{v}"
    );
    let m = expect_error(app.get("/v1/nope").await, 404).await;
    assert!(m.contains("/v1/nope"), "{m}");
    for (method, path) in [
        (Method::DELETE, "/v1/calls"),
        (Method::PUT, "/v1/call"),
        (
            Method::PATCH,
            "/v1/call/3c90c3cc-0d44-4b50-8888-8dd25736052a",
        ),
        (
            Method::POST,
            "/v1/agents/3c90c3cc-0d44-4b50-8888-8dd25736052a",
        ),
        (Method::POST, "/healthz"),
    ] {
        let r = app
            .request(method.clone(), path)
            .send()
            .await
            .expect("send");
        let m = expect_error(r, 405).await;
        assert!(
            m.contains(&format!("{method} is not allowed on {path}")),
            "{m}"
        );
    }
}
both!(unknown_route_and_wrong_method_are_json);

async fn request_ids_are_returned(db: Db) {
    let app = TestApp::spawn_holding_calls(db).await;
    let r = app.get("/v1/calls").await;
    let id = r
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("x-request-id")
        .to_string();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
    let r = app
        .request(Method::GET, "/v1/calls")
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .expect("send");
    assert_eq!(r.headers()["x-request-id"], "trace-me-42");
    let r = app
        .client
        .get(app.url("/v1/calls"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
    assert!(
        r.headers().get("x-request-id").is_some(),
        "errors carry the request id too"
    );
}
both!(request_ids_are_returned);

async fn rate_limit_is_429_with_retry_after(db: Db) {
    // 2 requests per second, burst 4, per organization.
    let app = TestApp::spawn_with(db, |c| {
        switchboard_testkit::hold_calls(c);
        c.rate_limit = 2;
    })
    .await;
    let mut statuses = Vec::new();
    let mut limited = None;
    for _ in 0..30 {
        let r = app.get("/v1/calls").await;
        statuses.push(r.status().as_u16());
        if r.status() == 429 && limited.is_none() {
            limited = Some(r);
        }
    }
    assert_eq!(
        &statuses[..4],
        [200, 200, 200, 200],
        "the burst is allowed: {statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );
    let r = limited.unwrap_or_else(|| panic!("no 429 in {statuses:?}"));
    let retry: u64 = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    let m = expect_error(r, 429).await;
    assert!(m.contains("rate limit"), "{m}");
    // Another organization has its own bucket; health checks are not limited.
    let (_, key_b) = app.new_org("B").await;
    assert_eq!(app.get_with_key("/v1/calls", &key_b).await.status(), 200);
    for _ in 0..10 {
        assert_eq!(
            app.client
                .get(app.url("/healthz"))
                .send()
                .await
                .expect("send")
                .status(),
            200
        );
    }
    // A bad key is a 401, not a 429, even while the organization is limited.
    assert_eq!(
        app.get_with_key("/v1/calls", "sk_wrong").await.status(),
        401
    );
}
both!(rate_limit_is_429_with_retry_after);
