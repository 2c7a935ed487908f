//! Agents, phone numbers, SIP trunks, contacts and campaigns: CRUD, paging, validation.

use crate::common::*;
use serde_json::{json, Value};
use switchboard_testkit::{both, expect_error, status_json, Db, TestApp};

const NO_SUCH: &str = "3c90c3cc-0d44-4b50-8888-8dd25736052a";

/// Creates through POST (201) and checks GET returns the same object.
async fn create(app: &TestApp, plural: &str, body: Value) -> Value {
    let (s, v) = status_json(app.post_json(&format!("/v1/{plural}"), &body).await).await;
    assert_eq!(s, 201, "POST /v1/{plural} {body}: {v}");
    let id = v["id"].as_str().unwrap_or_else(|| panic!("no id in {v}"));
    let (s, got) = status_json(app.get(&format!("/v1/{plural}/{id}")).await).await;
    assert_eq!(s, 200);
    assert_eq!(got, v, "GET differs from the POST answer");
    v
}

async fn patch(app: &TestApp, plural: &str, id: &str, body: Value) -> Value {
    let (s, v) = status_json(app.patch_json(&format!("/v1/{plural}/{id}"), &body).await).await;
    assert_eq!(s, 200, "PATCH /v1/{plural}/{id} {body}: {v}");
    v
}

/// DELETE answers {id, deleted: true}; afterwards GET, PATCH and DELETE are 404.
async fn delete_then_gone(app: &TestApp, plural: &str, id: &str, what: &str) {
    let path = format!("/v1/{plural}/{id}");
    let (s, v) = status_json(app.delete(&path).await).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v, json!({"id": id, "deleted": true}));
    let expected = format!("{what} not found");
    assert_eq!(expect_error(app.get(&path).await, 404).await, expected);
    assert_eq!(expect_error(app.delete(&path).await, 404).await, expected);
    let (_, list) = status_json(app.get(&format!("/v1/{plural}?limit=100")).await).await;
    assert!(
        list[plural.replace('-', "_")]
            .as_array()
            .expect("list")
            .iter()
            .all(|x| x["id"] != id),
        "{id} still listed"
    );
}

/// A 400 whose message names `field`.
async fn bad(app: &TestApp, plural: &str, body: Value, field: &str) {
    let m = expect_error(app.post_json(&format!("/v1/{plural}"), &body).await, 400).await;
    assert!(
        m.contains(field),
        "POST /v1/{plural} {body}: message {m:?} does not name {field}"
    );
}

async fn agents_crud(db: Db) {
    let app = TestApp::spawn_holding_calls(db).await;
    let a = create(&app, "agents", json!({"name": " Sales ", "system_prompt": "Be brief.", "max_duration_seconds": 600, "settings": {"k": 1}})).await;
    assert_eq!(a["name"], "Sales", "name is trimmed");
    assert_eq!(a["system_prompt"], "Be brief.");
    assert_eq!(a["max_duration_seconds"], 600);
    assert_eq!(a["settings"], json!({"k": 1}));
    assert_eq!(a["voice"], json!(null));
    assert!(a["number"].is_i64(), "{a}");
    assert!(a["created_at"].is_string() && a["updated_at"].is_string());
    assert!(a.get("org_id").is_none(), "org_id is internal: {a}");
    let id = a["id"].as_str().expect("id");

    let p = patch(
        &app,
        "agents",
        id,
        json!({"voice": "alloy", "system_prompt": null}),
    )
    .await;
    assert_eq!(
        (
            p["voice"].clone(),
            p["system_prompt"].clone(),
            p["name"].clone()
        ),
        (json!("alloy"), json!(null), json!("Sales"))
    );
    assert_eq!(p["number"], a["number"], "the number is stable");
    let (_, got) = status_json(app.get(&format!("/v1/agents/{id}")).await).await;
    assert_eq!(got, p);

    // Names are unique per organization: on create and on rename.
    let m = expect_error(
        app.post_json("/v1/agents", &json!({"name": "Sales"})).await,
        409,
    )
    .await;
    assert!(m.contains("already exists"), "{m}");
    let b = create(&app, "agents", json!({"name": "Support"})).await;
    let m = expect_error(
        app.patch_json(
            &format!("/v1/agents/{}", b["id"].as_str().expect("id")),
            &json!({"name": "Sales"}),
        )
        .await,
        409,
    )
    .await;
    assert!(m.contains("Sales"), "{m}");

    bad(&app, "agents", json!({}), "name").await;
    bad(&app, "agents", json!({"name": ""}), "name").await;
    bad(&app, "agents", json!({"name": 5}), "name").await;
    bad(
        &app,
        "agents",
        json!({"name": "x", "max_duration_seconds": "long"}),
        "max_duration_seconds",
    )
    .await;
    bad(
        &app,
        "agents",
        json!({"name": "x", "max_duration_seconds": 0}),
        "max_duration_seconds",
    )
    .await;
    bad(
        &app,
        "agents",
        json!({"name": "x", "ring_timeout_seconds": 301}),
        "ring_timeout_seconds",
    )
    .await;
    bad(
        &app,
        "agents",
        json!({"name": "x", "webhook_url": "ftp://example.com"}),
        "webhook_url",
    )
    .await;
    bad(
        &app,
        "agents",
        json!({"name": "x", "settings": [1]}),
        "settings",
    )
    .await;
    bad(
        &app,
        "agents",
        json!({"name": "x", "settings": {"turn_detection": "vad"}}),
        "settings.turn_detection must be one of smart_turn, silence, got \"vad\"",
    )
    .await;
    bad(
        &app,
        "agents",
        json!({"name": "x", "settings": {"turn_detection": "silence", "end_of_turn_silence_seconds": 9}}),
        "settings.end_of_turn_silence_seconds must be a number from 0.2 to 5, got 9",
    )
    .await;
    bad(
        &app,
        "agents",
        json!({"name": "x", "language": "x".repeat(36)}),
        "language",
    )
    .await;
    bad(
        &app,
        "agents",
        json!({"name": "x", "nmae": "typo"}),
        "unknown field \"nmae\"",
    )
    .await;
    bad(&app, "agents", json!(["name"]), "JSON object").await;
    let m = expect_error(
        app.patch_json(&format!("/v1/agents/{id}"), &json!({"voice": 7}))
            .await,
        400,
    )
    .await;
    assert!(m.contains("voice"), "{m}");
    let m = expect_error(app.get("/v1/agents/123").await, 400).await;
    assert!(m.contains("agent id must be a UUID"), "{m}");
    assert_eq!(
        expect_error(
            app.patch_json(&format!("/v1/agents/{NO_SUCH}"), &json!({"voice": "x"}))
                .await,
            404
        )
        .await,
        "Agent not found"
    );

    // Flyflow's endpoints read the same agents.
    let (s, f) = status_json(app.get(&format!("/v1/agent?id={id}")).await).await;
    assert_eq!((s.as_u16(), f), (200, p.clone()));

    delete_then_gone(&app, "agents", id, "Agent").await;
}
both!(agents_crud);

/// Tools, voicemail and analysis settings: normalised on the way in, shown as stored,
/// cleared with null, and refused with a message naming what is wrong.
async fn agents_keep_tools_voicemail_and_analysis_settings(db: Db) {
    let app = TestApp::spawn_holding_calls(db).await;
    let a = create(
        &app,
        "agents",
        json!({
            "name": "Desk",
            "tools": [
                {"type": "end_call"},
                {"type": "transfer_call", "destinations": [{"number": "+1 415 555 0100", "description": "Sales"}]},
                {"type": "webhook", "name": "lookup_order", "description": "Find an order",
                 "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}},
                 "url": "https://example.com/orders"}
            ],
            "voicemail": {"action": "leave_message", "message": "Hi {{name}}, call us back."},
            "success_criteria": "The caller booked a table.",
            "analysis_schema": {"type": "object", "properties": {"party_size": {"type": "integer"}}},
            "analysis_questions": ["Did they mention allergies?"]
        }),
    )
    .await;
    assert_eq!(a["tools"][1]["destinations"][0]["number"], "+14155550100");
    assert_eq!(a["tools"][2]["method"], "POST");
    assert_eq!(a["tools"][2]["timeout_ms"], 10000);
    assert_eq!(a["voicemail"]["action"], "leave_message");
    assert_eq!(a["success_criteria"], "The caller booked a table.");
    assert_eq!(
        a["analysis_schema"]["properties"]["party_size"]["type"],
        "integer"
    );
    assert_eq!(
        a["analysis_questions"][0],
        json!({"name": "q1", "question": "Did they mention allergies?", "type": "string"})
    );
    let id = a["id"].as_str().unwrap();
    let p = patch(
        &app,
        "agents",
        id,
        json!({"tools": null, "voicemail": {"action": "hangup"}}),
    )
    .await;
    assert!(p["tools"].is_null());
    assert_eq!(p["voicemail"], json!({"action": "hangup"}));
    assert_eq!(
        p["success_criteria"], "The caller booked a table.",
        "untouched"
    );
    for (body, says) in [
        (
            json!({"name": "y", "tools": [{"type": "teleport"}]}),
            "tools[0].type",
        ),
        (
            json!({"name": "y", "tools": {"type": "end_call"}}),
            "tools must be an array",
        ),
        (
            json!({"name": "y", "tools": [{"type": "webhook", "name": "a", "description": "d", "url": "https://x.io", "parameters": {"type": "object", "properties": 3}}]}),
            "tools[0].parameters",
        ),
        (
            json!({"name": "y", "voicemail": {"action": "leave_message"}}),
            "voicemail.message",
        ),
        (
            json!({"name": "y", "success_criteria": 5}),
            "success_criteria",
        ),
        (
            json!({"name": "y", "analysis_schema": {"type": "array"}}),
            "analysis_schema",
        ),
        (
            json!({"name": "y", "analysis_questions": [7]}),
            "analysis_questions[0]",
        ),
    ] {
        bad(&app, "agents", body, says).await;
    }
}

both!(agents_keep_tools_voicemail_and_analysis_settings);

async fn phone_numbers_crud(db: Db) {
    let app = TestApp::spawn_holding_calls(db).await;
    let agent = create_agent(&app, "Sales").await;
    let agent_id = agent["id"].as_str().expect("id");
    let n = create(
        &app,
        "phone-numbers",
        json!({"phone_number": "+1 (415) 555-0100", "label": "main"}),
    )
    .await;
    assert_eq!(n["phone_number"], "+14155550100", "normalised to E.164");
    assert_eq!(
        (
            n["label"].clone(),
            n["agent_id"].clone(),
            n["trunk_id"].clone()
        ),
        (json!("main"), json!(null), json!(null))
    );
    assert!(n["number_id"].is_i64(), "{n}");
    let id = n["id"].as_str().expect("id");

    let p = patch(
        &app,
        "phone-numbers",
        id,
        json!({"agent_id": agent_id, "label": null}),
    )
    .await;
    assert_eq!(
        (p["agent_id"].clone(), p["label"].clone()),
        (json!(agent_id), json!(null))
    );
    assert_eq!(p["phone_number"], "+14155550100");

    let m = expect_error(
        app.post_json(
            "/v1/phone-numbers",
            &json!({"phone_number": "+14155550100"}),
        )
        .await,
        409,
    )
    .await;
    assert!(
        m.contains("+14155550100") && m.contains("already registered"),
        "{m}"
    );
    let other = create(
        &app,
        "phone-numbers",
        json!({"phone_number": "+14155550101"}),
    )
    .await;
    let m = expect_error(
        app.patch_json(
            &format!("/v1/phone-numbers/{}", other["id"].as_str().expect("id")),
            &json!({"phone_number": "+14155550100"}),
        )
        .await,
        409,
    )
    .await;
    assert!(m.contains("already registered"), "{m}");

    let m = expect_error(
        app.patch_json(
            &format!("/v1/phone-numbers/{id}"),
            &json!({"agent_id": NO_SUCH}),
        )
        .await,
        422,
    )
    .await;
    assert!(
        m.contains("agent_id") && m.contains("does not exist"),
        "{m}"
    );
    expect_error(
        app.post_json(
            "/v1/phone-numbers",
            &json!({"phone_number": "+14155550102", "trunk_id": NO_SUCH}),
        )
        .await,
        422,
    )
    .await;
    bad(
        &app,
        "phone-numbers",
        json!({"phone_number": "4155550100"}),
        "phone_number",
    )
    .await;
    bad(
        &app,
        "phone-numbers",
        json!({"phone_number": "+1415555010x"}),
        "phone_number",
    )
    .await;
    bad(
        &app,
        "phone-numbers",
        json!({"label": "no number"}),
        "phone_number is required",
    )
    .await;
    bad(
        &app,
        "phone-numbers",
        json!({"phone_number": "+14155550103", "agent_id": "nope"}),
        "agent_id must be a UUID",
    )
    .await;
    bad(
        &app,
        "phone-numbers",
        json!({"phone_number": "+14155550103", "number": 1}),
        "unknown field \"number\"",
    )
    .await;

    delete_then_gone(&app, "phone-numbers", id, "Phone number").await;
}
both!(phone_numbers_crud);

async fn sip_trunks_crud_never_show_the_password(db: Db) {
    let app = TestApp::spawn_holding_calls(db).await;
    let t = create(
        &app,
        "sip-trunks",
        json!({"name": "carrier", "host": "sip.example.com", "port": 5080, "transport": "tcp", "username": "u", "password": "s3cret",
               "inbound_sources": ["10.0.0.1"], "default_caller_id": "+14155550100"}),
    )
    .await;
    let no_password = |v: &Value| {
        assert!(v.get("password").is_none(), "password leaked: {v}");
        assert!(
            !v.to_string().contains("s3cret"),
            "password value leaked: {v}"
        );
    };
    no_password(&t);
    assert_eq!(t["has_password"], true);
    assert_eq!(
        (
            t["port"].clone(),
            t["transport"].clone(),
            t["username"].clone()
        ),
        (json!(5080), json!("tcp"), json!("u"))
    );
    assert_eq!(t["inbound_sources"], json!(["10.0.0.1"]));
    let id = t["id"].as_str().expect("id");
    let (_, list) = status_json(app.get("/v1/sip-trunks").await).await;
    no_password(&list);
    assert_eq!(list["sip_trunks"][0]["has_password"], true);

    let p = patch(&app, "sip-trunks", id, json!({"name": "renamed"})).await;
    no_password(&p);
    assert_eq!(
        (
            p["name"].clone(),
            p["has_password"].clone(),
            p["host"].clone()
        ),
        (json!("renamed"), json!(true), json!("sip.example.com"))
    );
    let p = patch(&app, "sip-trunks", id, json!({"password": null})).await;
    assert_eq!(p["has_password"], false);
    no_password(&p);

    let t2 = create(
        &app,
        "sip-trunks",
        json!({"name": "pbx", "host": "10.1.2.3"}),
    )
    .await;
    assert_eq!(
        (
            t2["port"].clone(),
            t2["transport"].clone(),
            t2["has_password"].clone()
        ),
        (json!(5060), json!("udp"), json!(false))
    );

    bad(&app, "sip-trunks", json!({"name": "x"}), "host is required").await;
    bad(&app, "sip-trunks", json!({"host": "h"}), "name is required").await;
    bad(
        &app,
        "sip-trunks",
        json!({"name": "x", "host": "bad host!"}),
        "host",
    )
    .await;
    bad(
        &app,
        "sip-trunks",
        json!({"name": "x", "host": "h", "port": 70000}),
        "port",
    )
    .await;
    bad(
        &app,
        "sip-trunks",
        json!({"name": "x", "host": "h", "port": "5060"}),
        "port",
    )
    .await;
    bad(
        &app,
        "sip-trunks",
        json!({"name": "x", "host": "h", "transport": "sctp"}),
        "transport",
    )
    .await;
    bad(
        &app,
        "sip-trunks",
        json!({"name": "x", "host": "h", "inbound_sources": ["not-an-ip"]}),
        "inbound_sources",
    )
    .await;
    bad(
        &app,
        "sip-trunks",
        json!({"name": "x", "host": "h", "is_default": "yes"}),
        "is_default",
    )
    .await;
    bad(
        &app,
        "sip-trunks",
        json!({"name": "x", "host": "h", "secret": "x"}),
        "unknown field \"secret\"",
    )
    .await;

    delete_then_gone(&app, "sip-trunks", id, "SIP trunk").await;
}
both!(sip_trunks_crud_never_show_the_password);

async fn contacts_crud(db: Db) {
    let app = TestApp::spawn_holding_calls(db).await;
    let c = create(
        &app,
        "contacts",
        json!({"identifier": "+14155550100", "first_name": "Ada", "email": "ada@example.com"}),
    )
    .await;
    assert_eq!(
        (
            c["identifier"].clone(),
            c["first_name"].clone(),
            c["last_name"].clone()
        ),
        (json!("+14155550100"), json!("Ada"), json!(null))
    );
    assert_eq!(c["email"], "ada@example.com");
    assert!(
        c["contact_type"].is_string() && c["created_date"].is_string(),
        "{c}"
    );
    let id = c["id"].as_str().expect("id");
    let p = patch(
        &app,
        "contacts",
        id,
        json!({"last_name": "Lovelace", "email": null}),
    )
    .await;
    assert_eq!(
        (
            p["last_name"].clone(),
            p["email"].clone(),
            p["first_name"].clone()
        ),
        (json!("Lovelace"), json!(null), json!("Ada"))
    );

    let m = expect_error(
        app.post_json("/v1/contacts", &json!({"identifier": "+14155550100"}))
            .await,
        409,
    )
    .await;
    assert!(m.contains("already exists"), "{m}");
    bad(
        &app,
        "contacts",
        json!({"first_name": "x"}),
        "identifier is required",
    )
    .await;
    bad(
        &app,
        "contacts",
        json!({"identifier": "555-0100"}),
        "identifier",
    )
    .await;
    bad(
        &app,
        "contacts",
        json!({"identifier": "+14155550101", "email": "not an email"}),
        "email",
    )
    .await;
    bad(
        &app,
        "contacts",
        json!({"identifier": "+14155550101", "first_name": ["x"]}),
        "first_name",
    )
    .await;
    bad(
        &app,
        "contacts",
        json!({"identifier": "+14155550101", "phone": "x"}),
        "unknown field \"phone\"",
    )
    .await;

    delete_then_gone(&app, "contacts", id, "Contact").await;
}
both!(contacts_crud);

async fn campaigns_crud(db: Db) {
    let app = TestApp::spawn_holding_calls(db).await;
    let agent = create_agent(&app, "Sales").await;
    let agent_id = agent["id"].as_str().expect("id");
    let c = create(
        &app,
        "campaigns",
        json!({"name": "Q1", "agent_id": agent_id, "status": "active"}),
    )
    .await;
    assert_eq!(
        (
            c["name"].clone(),
            c["agent_id"].clone(),
            c["status"].clone()
        ),
        (json!("Q1"), json!(agent_id), json!("active"))
    );
    let d = create(&app, "campaigns", json!({"name": "Q2"})).await;
    assert_eq!(
        (d["status"].clone(), d["agent_id"].clone()),
        (json!("draft"), json!(null))
    );
    let id = c["id"].as_str().expect("id");
    let p = patch(
        &app,
        "campaigns",
        id,
        json!({"status": "paused", "agent_id": null}),
    )
    .await;
    assert_eq!(
        (
            p["status"].clone(),
            p["agent_id"].clone(),
            p["name"].clone()
        ),
        (json!("paused"), json!(null), json!("Q1"))
    );

    let m = expect_error(
        app.post_json("/v1/campaigns", &json!({"name": "x", "agent_id": NO_SUCH}))
            .await,
        422,
    )
    .await;
    assert!(m.contains("does not exist"), "{m}");
    bad(
        &app,
        "campaigns",
        json!({"status": "active"}),
        "name is required",
    )
    .await;
    let m = expect_error(
        app.post_json("/v1/campaigns", &json!({"name": "x", "status": "running"}))
            .await,
        400,
    )
    .await;
    assert!(
        m.contains("status must be one of draft, active, paused, completed"),
        "{m}"
    );
    bad(
        &app,
        "campaigns",
        json!({"name": "x", "agent_id": 12}),
        "agent_id",
    )
    .await;
    bad(
        &app,
        "campaigns",
        json!({"name": "x", "budget": 12}),
        "unknown field \"budget\"",
    )
    .await;

    delete_then_gone(&app, "campaigns", id, "Campaign").await;
}
both!(campaigns_crud);

/// Every resource list pages oldest first with an opaque cursor and visits each row once.
async fn resource_lists_page_with_cursor(db: Db) {
    let app = TestApp::spawn_holding_calls(db).await;
    type Body = fn(usize) -> Value;
    let kinds: [(&str, Body); 5] = [
        ("agents", |i| json!({"name": format!("agent {i}")})),
        (
            "phone-numbers",
            |i| json!({"phone_number": format!("+1415555020{i}")}),
        ),
        (
            "sip-trunks",
            |i| json!({"name": format!("trunk {i}"), "host": format!("h{i}.example.com")}),
        ),
        (
            "contacts",
            |i| json!({"identifier": format!("+1415555030{i}")}),
        ),
        ("campaigns", |i| json!({"name": format!("campaign {i}")})),
    ];
    for (plural, body) in kinds {
        let key = plural.replace('-', "_");
        let mut created = Vec::new();
        for i in 0..5 {
            let (s, v) = status_json(app.post_json(&format!("/v1/{plural}"), &body(i)).await).await;
            assert_eq!(s, 201, "{v}");
            created.push(v["id"].as_str().expect("id").to_string());
        }
        let (_, all) = status_json(app.get(&format!("/v1/{plural}")).await).await;
        assert_eq!(
            all["num_items"], 5,
            "default limit 10 holds all five {plural}"
        );
        assert_eq!(all["cursor"], json!(null));
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        let mut sizes = Vec::new();
        loop {
            let path = match &cursor {
                Some(c) => format!("/v1/{plural}?limit=2&cursor={c}"),
                None => format!("/v1/{plural}?limit=2"),
            };
            let (s, page) = status_json(app.get(&path).await).await;
            assert_eq!(s, 200, "{page}");
            let items = page[&key]
                .as_array()
                .unwrap_or_else(|| panic!("no {key} in {page}"));
            assert_eq!(page["num_items"], items.len());
            sizes.push(items.len());
            seen.extend(
                items
                    .iter()
                    .map(|x| x["id"].as_str().expect("id").to_string()),
            );
            match page["cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
            assert!(sizes.len() < 10, "paging does not end");
        }
        assert_eq!(
            seen, created,
            "{plural}: every row once, oldest first (pages {sizes:?})"
        );
        assert_eq!(sizes, [2, 2, 1]);
        for q in ["limit=0", "limit=101", "limit=abc"] {
            let m = expect_error(app.get(&format!("/v1/{plural}?{q}")).await, 400).await;
            assert!(
                m.contains("limit must be an integer between 1 and 100"),
                "{q}: {m}"
            );
        }
        let m = expect_error(app.get(&format!("/v1/{plural}?cursor=garbage!")).await, 400).await;
        assert!(m.contains("cursor"), "{m}");
    }
}
both!(resource_lists_page_with_cursor);

/// Body handling shared by every resource: JSON only, well-formed, at most 1 MiB.
async fn resource_bodies_are_checked(db: Db) {
    let app = TestApp::spawn_holding_calls(db).await;
    let r = app
        .request(reqwest::Method::POST, "/v1/agents")
        .body(r#"{"name":"x"}"#)
        .send()
        .await
        .expect("send");
    let m = expect_error(r, 415).await;
    assert!(m.contains("Content-Type must be application/json"), "{m}");
    let r = app
        .request(reqwest::Method::POST, "/v1/agents")
        .header("content-type", "text/plain")
        .body(r#"{"name":"x"}"#)
        .send()
        .await
        .expect("send");
    expect_error(r, 415).await;
    let r = app
        .request(reqwest::Method::POST, "/v1/agents")
        .header("content-type", "application/json; charset=utf-8")
        .body(r#"{"name":"ok"}"#)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 201);
    let r = app
        .request(reqwest::Method::POST, "/v1/agents")
        .header("content-type", "application/json")
        .body(r#"{"name":"#)
        .send()
        .await
        .expect("send");
    let m = expect_error(r, 400).await;
    assert!(m.starts_with("malformed JSON"), "{m}");
    let r = app
        .request(
            reqwest::Method::PATCH,
            "/v1/agents/3c90c3cc-0d44-4b50-8888-8dd25736052a",
        )
        .header("content-type", "application/json")
        .body("")
        .send()
        .await
        .expect("send");
    expect_error(r, 400).await;
}
both!(resource_bodies_are_checked);
