//! API-key authentication: Bearer, or x-api-key with x-organization-id.

use reqwest::Method;
use serde_json::json;
use switchboard_testkit::{both, expect_error, status_json, Db, TestApp};

async fn missing_or_invalid_key_is_401(db: Db) {
    let app = TestApp::spawn_holding_calls(db).await;
    let c = &app.client;
    let url = app.url("/v1/calls");
    let cases = [
        ("no credentials", c.get(&url)),
        (
            "wrong bearer key",
            c.get(&url).bearer_auth("sk_not_a_real_key"),
        ),
        (
            "empty bearer",
            c.get(&url).header("authorization", "Bearer "),
        ),
        (
            "basic scheme",
            c.get(&url)
                .header("authorization", format!("Basic {}", app.api_key)),
        ),
        (
            "key without scheme",
            c.get(&url).header("authorization", app.api_key.clone()),
        ),
        (
            "wrong x-api-key",
            c.get(&url)
                .header("x-api-key", "sk_wrong")
                .header("x-organization-id", &app.org_id),
        ),
        (
            "x-organization-id alone",
            c.get(&url).header("x-organization-id", &app.org_id),
        ),
    ];
    for (what, rb) in cases {
        let r = rb.send().await.expect("request");
        let (s, v) = status_json(r).await;
        assert_eq!(s, 401, "{what}: {v}");
        assert_eq!(
            v,
            json!({"error": "Unauthorized", "message": "Invalid API key"}),
            "{what}"
        );
    }
    // Authentication comes before body validation and on every /v1 route.
    for (m, path) in [
        (Method::POST, "/v1/call"),
        (Method::GET, "/v1/call/3c90c3cc-0d44-4b50-8888-8dd25736052a"),
        (
            Method::DELETE,
            "/v1/call/3c90c3cc-0d44-4b50-8888-8dd25736052a",
        ),
        (Method::POST, "/v1/call/context"),
        (
            Method::GET,
            "/v1/call/recording/3c90c3cc-0d44-4b50-8888-8dd25736052a.mp3",
        ),
        (Method::GET, "/v1/agents"),
        (Method::POST, "/v1/agents"),
        (Method::GET, "/v1/phone-numbers"),
        (Method::GET, "/v1/sip-trunks"),
        (Method::GET, "/v1/contacts"),
        (Method::GET, "/v1/campaigns"),
    ] {
        let r = c
            .request(m.clone(), app.url(path))
            .body("{")
            .send()
            .await
            .expect("request");
        let msg = expect_error(r, 401).await;
        assert_eq!(msg, "Invalid API key", "{m} {path}");
    }
}
both!(missing_or_invalid_key_is_401);

async fn bearer_and_x_api_key_work(db: Db) {
    let app = TestApp::spawn_holding_calls(db).await;
    let c = &app.client;
    let url = app.url("/v1/calls");
    let cases = [
        ("Bearer", c.get(&url).bearer_auth(&app.api_key)),
        (
            "lower-case scheme",
            c.get(&url)
                .header("authorization", format!("bearer {}", app.api_key)),
        ),
        (
            "x-api-key + x-organization-id",
            c.get(&url)
                .header("x-api-key", &app.api_key)
                .header("x-organization-id", &app.org_id),
        ),
        (
            "x-organization-id in upper case",
            c.get(&url)
                .header("x-api-key", &app.api_key)
                .header("x-organization-id", app.org_id.to_uppercase()),
        ),
        (
            "Bearer + matching x-organization-id",
            c.get(&url)
                .bearer_auth(&app.api_key)
                .header("x-organization-id", &app.org_id),
        ),
    ];
    for (what, rb) in cases {
        let (s, v) = status_json(rb.send().await.expect("request")).await;
        assert_eq!(s, 200, "{what}: {v}");
        assert_eq!(v["num_items"], 0, "{what}: {v}");
    }
    // A second organization's key works too, for its own organization.
    let (org_b, key_b) = app.new_org("B").await;
    let r = c
        .get(&url)
        .header("x-api-key", &key_b)
        .header("x-organization-id", &org_b)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
    assert_eq!(app.get_with_key("/v1/agents", &key_b).await.status(), 200);
}
both!(bearer_and_x_api_key_work);

async fn x_api_key_with_another_orgs_id_is_401(db: Db) {
    let app = TestApp::spawn_holding_calls(db).await;
    let (org_b, key_b) = app.new_org("B").await;
    let c = &app.client;
    let url = app.url("/v1/calls");
    let cases = [
        (
            "A's key, B's id",
            c.get(&url)
                .header("x-api-key", &app.api_key)
                .header("x-organization-id", &org_b),
        ),
        (
            "B's key, A's id",
            c.get(&url)
                .header("x-api-key", &key_b)
                .header("x-organization-id", &app.org_id),
        ),
        (
            "Bearer A, B's id",
            c.get(&url)
                .bearer_auth(&app.api_key)
                .header("x-organization-id", &org_b),
        ),
        (
            "garbage id",
            c.get(&url)
                .header("x-api-key", &app.api_key)
                .header("x-organization-id", "not-an-org"),
        ),
    ];
    for (what, rb) in cases {
        let (s, v) = status_json(rb.send().await.expect("request")).await;
        assert_eq!(s, 401, "{what}: {v}");
        assert_eq!(
            v,
            json!({"error": "Unauthorized", "message": "Invalid API key"}),
            "{what}"
        );
    }
}
both!(x_api_key_with_another_orgs_id_is_401);
