//! GET /v1/calls: limits, every filter, order, most_recent, cursor paging (also while calls
//! are being inserted), hostile values.

use crate::common::*;
use serde_json::{json, Value};
use std::collections::HashSet;
use switchboard_domain::{
    Agent, CallStatus, CallType, CampaignId, CampaignPatch, NewCall, OrgId, PhoneNumber,
};
use switchboard_store::{CallUpdate, CreateCallOutcome};
use switchboard_testkit::{both, expect_error, status_json, Db, TestApp};

async fn list(app: &TestApp, query: &str) -> Value {
    let (s, v) = status_json(app.get(&format!("/v1/calls{query}")).await).await;
    assert_eq!(s, 200, "GET /v1/calls{query}: {v}");
    assert_eq!(
        v["num_items"],
        v["calls"].as_array().map(Vec::len).unwrap_or(usize::MAX),
        "{v}"
    );
    v
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

async fn new_call(
    app: &TestApp,
    org: OrgId,
    agent: &Agent,
    to: &str,
    call_type: CallType,
    campaign: Option<CampaignId>,
) -> String {
    let new = NewCall {
        org_id: org,
        agent_id: Some(agent.id),
        phone_number_id: None,
        campaign_id: campaign,
        call_type,
        client_number: PhoneNumber::parse(to).expect("E.164"),
        agent_phone_number: None,
        context: None,
        metadata: None,
        user_speaks_first: false,
        ring_timeout_seconds: None,
    };
    match app.store.create_call(new, None).await.expect("create_call") {
        CreateCallOutcome::Created(c) => c.id.to_string(),
        CreateCallOutcome::Replayed(_) => panic!("no idempotency key, no replay"),
    }
}

async fn limits(db: Db) {
    let app = TestApp::spawn_holding_calls(db).await;
    let org = app.org();
    for i in 0..12 {
        app.seed_call(org, None, &format!("+1415555{:04}", i)).await;
    }
    let v = list(&app, "").await;
    assert_eq!(v["num_items"], 10, "default limit is 10");
    assert!(v["cursor"].is_string(), "more pages: {}", v["cursor"]);
    let v = list(&app, "?limit=100").await;
    assert_eq!(v["num_items"], 12);
    assert_eq!(v["cursor"], json!(null));
    let v = list(&app, "?limit=1").await;
    assert_eq!(v["num_items"], 1);
    let v = list(&app, "?limit=12").await;
    assert_eq!(
        (v["num_items"].clone(), v["cursor"].clone()),
        (json!(12), json!(null)),
        "an exactly full last page has no cursor"
    );
    for bad in ["0", "101", "1000", "abc", "-1", "1.5", "10%20OR%201=1"] {
        let m = expect_error(app.get(&format!("/v1/calls?limit={bad}")).await, 400).await;
        assert!(
            m.starts_with("limit must be an integer between 1 and 100"),
            "limit={bad}: {m}"
        );
    }
    // An empty value counts as absent.
    assert_eq!(list(&app, "?limit=&cursor=").await["num_items"], 10);
}
both!(limits);

async fn filters(db: Db) {
    let app = TestApp::spawn_holding_calls(db).await;
    let org = app.org();
    let a1 = app.seed_agent(org, "a1").await;
    let a2 = app.seed_agent(org, "a2").await;
    let campaign = app
        .store
        .create_campaign(
            org,
            CampaignPatch {
                name: Some("spring".into()),
                ..Default::default()
            },
        )
        .await
        .expect("campaign");
    let c1 = seed_ended(
        &app,
        org,
        Some(&a1),
        "+14155550001",
        CallStatus::Completed,
        "2024-01-10T10:00:00Z",
        "2024-01-10T10:05:00Z",
    )
    .await
    .id
    .to_string();
    let c2 = seed_ended(
        &app,
        org,
        Some(&a2),
        "+14155550002",
        CallStatus::Failed,
        "2024-02-10T10:00:00Z",
        "2024-02-10T10:00:10Z",
    )
    .await;
    let contact2 = c2.contact.as_ref().expect("contact").id.to_string();
    let c2 = c2.id.to_string();
    let c3 = seed_ended(
        &app,
        org,
        Some(&a1),
        "+14155550002",
        CallStatus::NoAnswer,
        "2024-03-10T10:00:00Z",
        "2024-03-10T10:00:30Z",
    )
    .await
    .id
    .to_string();
    let c4 = new_call(&app, org, &a2, "+14155550003", CallType::Inbound, None).await;
    app.store
        .update_call(
            c4.parse().expect("uuid"),
            CallUpdate {
                status: Some(CallStatus::InProgress),
                started_at: Some(ts("2024-03-20T00:00:00Z")),
                ..Default::default()
            },
        )
        .await
        .expect("update");
    let c5 = new_call(
        &app,
        org,
        &a1,
        "+14155550005",
        CallType::Outbound,
        Some(campaign.id),
    )
    .await; // dialing, started "now"
    let all = sorted(vec![
        c1.clone(),
        c2.clone(),
        c3.clone(),
        c4.clone(),
        c5.clone(),
    ]);
    assert_eq!(sorted(ids(&list(&app, "?limit=100").await)), all);

    let cases: Vec<(String, Vec<&String>)> = vec![
        (format!("agent_id={}", a1.id), vec![&c1, &c3, &c5]),
        (format!("agent_id={}", a2.id), vec![&c2, &c4]),
        ("client_number=%2B14155550002".into(), vec![&c2, &c3]),
        ("client_number=+14155550002".into(), vec![&c2, &c3]), // '+' left unencoded
        ("phone_number=%2B14155550002".into(), vec![&c2, &c3]),
        ("client_number=%2B1%20(415)%20555-0001".into(), vec![&c1]),
        ("client_number=%2B19995550000".into(), vec![]),
        (format!("contact_id={contact2}"), vec![&c2, &c3]),
        (format!("campaign_id={}", campaign.id), vec![&c5]),
        ("status=completed".into(), vec![&c1]),
        ("status=failed".into(), vec![&c2]),
        ("status=no_answer".into(), vec![&c3]),
        ("status=in_progress".into(), vec![&c4]),
        ("status=dialing".into(), vec![&c5]),
        ("status=transferred".into(), vec![]),
        ("call_type=inbound".into(), vec![&c4]),
        ("call_type=outbound".into(), vec![&c1, &c2, &c3, &c5]),
        ("from=2024-02-01&to=2024-03-15".into(), vec![&c2, &c3]),
        (
            "from=2024-02-01T00:00:00Z&to=2024-03-15T00:00:00Z".into(),
            vec![&c2, &c3],
        ),
        (
            "from=2024-02-01T00:00:00%2B00:00&to=2024-03-15T00:00:00%2B00:00".into(),
            vec![&c2, &c3],
        ),
        (
            "from=2024-02-01T00:00:00+00:00&to=2024-03-15T00:00:00+00:00".into(),
            vec![&c2, &c3],
        ), // '+' unencoded
        (
            "from=2024-02-01T02:00:00+02:00&to=2024-03-15T00:00:00".into(),
            vec![&c2, &c3],
        ),
        ("from=2024-03-01".into(), vec![&c3, &c4, &c5]),
        ("to=2024-01-31".into(), vec![&c1]),
        (
            "from=2024-01-10T10:00:00Z&to=2024-01-10T10:00:00Z".into(),
            vec![&c1],
        ), // bounds are inclusive
        (format!("agent_id={}&status=no_answer", a1.id), vec![&c3]),
        (
            format!(
                "agent_id={}&client_number=%2B14155550002&from=2024-03-01",
                a1.id
            ),
            vec![&c3],
        ),
        (format!("agent_id={}&call_type=inbound", a1.id), vec![]),
    ];
    for (q, expected) in cases {
        let got = sorted(ids(&list(&app, &format!("?limit=100&{q}")).await));
        assert_eq!(got, sorted(expected.into_iter().cloned().collect()), "?{q}");
    }

    let bad: &[(&str, &str)] = &[
        ("agent_id=nope", "agent_id must be a UUID"),
        ("contact_id=1", "contact_id must be a UUID"),
        ("campaign_id=spring", "campaign_id must be a UUID"),
        ("client_number=4155550002", "client_number:"),
        ("phone_number=%2B1", "phone_number:"),
        (
            "status=busy",
            "status must be one of dialing, in_progress, completed, failed, transferred, no_answer",
        ),
        (
            "call_type=both",
            "call_type must be one of inbound, outbound",
        ),
        ("from=yesterday", "from must be an ISO 8601 date"),
        ("to=2024-13-01", "to must be an ISO 8601 date"),
        ("from=2024-01-01T25:00:00Z", "from must be an ISO 8601 date"),
    ];
    // Each value valid, together selecting nothing: a 422, not a 400 (the OpenAPI document
    // states what a 400 means: a value outside its documented shape).
    let m = expect_error(
        app.get("/v1/calls?from=2024-03-01&to=2024-02-01").await,
        422,
    )
    .await;
    assert!(m.contains("from must not be later than to"), "{m}");
    for (q, needle) in bad {
        let m = expect_error(app.get(&format!("/v1/calls?{q}")).await, 400).await;
        assert!(m.contains(needle), "?{q}: {m}");
    }
}
both!(filters);

/// Three ended calls created in the order x, y, z whose start and end times sort differently.
async fn seed_xyz(app: &TestApp) -> (String, String, String) {
    let org = app.org();
    let x = seed_ended(
        app,
        org,
        None,
        "+14155550001",
        CallStatus::Completed,
        "2024-01-03T00:00:00Z",
        "2024-01-05T00:00:00Z",
    )
    .await;
    let y = seed_ended(
        app,
        org,
        None,
        "+14155550002",
        CallStatus::Completed,
        "2024-01-01T00:00:00Z",
        "2024-01-06T00:00:00Z",
    )
    .await;
    let z = seed_ended(
        app,
        org,
        None,
        "+14155550003",
        CallStatus::Failed,
        "2024-01-02T00:00:00Z",
        "2024-01-04T00:00:00Z",
    )
    .await;
    (x.id.to_string(), y.id.to_string(), z.id.to_string())
}

async fn order(db: Db) {
    let app = TestApp::spawn_holding_calls(db).await;
    let (x, y, z) = seed_xyz(&app).await;
    let cases = [
        ("", [&z, &y, &x]), // created_at desc by default
        ("?order=desc", [&z, &y, &x]),
        ("?order=asc", [&x, &y, &z]),
        ("?order_by=created_at&order=asc", [&x, &y, &z]),
        ("?order_by=created_at&order=desc", [&z, &y, &x]),
        ("?order_by=started_at", [&x, &z, &y]),
        ("?order_by=started_at&order=asc", [&y, &z, &x]),
        ("?order_by=ended_at&order=desc", [&y, &x, &z]),
        ("?order_by=ended_at&order=asc", [&z, &x, &y]),
    ];
    for (q, expected) in cases {
        let expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
        assert_eq!(ids(&list(&app, q).await), expected, "{q}");
        // Paging one call at a time gives the same sequence.
        let sep = if q.is_empty() { "?" } else { "&" };
        let paged = page_all(&app, &format!("{q}{sep}limit=1")).await;
        assert_eq!(paged, expected, "{q} paged");
    }
    let m = expect_error(app.get("/v1/calls?order_by=foo").await, 400).await;
    assert!(
        m.contains("order_by must be one of started_at, ended_at, created_at"),
        "{m}"
    );
    let m = expect_error(app.get("/v1/calls?order=up").await, 400).await;
    assert!(m.contains("order must be one of asc, desc"), "{m}");
    let m = expect_error(
        app.get("/v1/calls?order_by=created_at;DROP%20TABLE%20calls")
            .await,
        400,
    )
    .await;
    assert!(m.contains("order_by must be one of"), "{m}");
    // A cursor only works with the order it was made for.
    let first = list(&app, "?order_by=started_at&limit=1").await;
    let c = first["cursor"].as_str().expect("cursor");
    let m = expect_error(app.get(&format!("/v1/calls?limit=1&cursor={c}")).await, 422).await;
    assert!(
        m.contains("cursor was made for order_by=started_at&order=desc"),
        "{m}"
    );
}
both!(order);

/// Follows the cursor from the first page to the end; returns every id in order.
async fn page_all(app: &TestApp, query: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..200 {
        let q = match &cursor {
            Some(c) => format!("{query}&cursor={c}"),
            None => query.to_string(),
        };
        let page = list(app, &q).await;
        out.extend(ids(&page));
        match page["cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
    panic!("paging {query} did not end");
}

async fn most_recent(db: Db) {
    let app = TestApp::spawn_holding_calls(db).await;
    let m = expect_error(app.get("/v1/calls?most_recent=true").await, 404).await;
    assert_eq!(m, "No calls found matching criteria");
    let (x, y, z) = seed_xyz(&app).await;
    let (s, v) = status_json(app.get("/v1/calls?most_recent=true").await).await;
    assert_eq!(s, 200);
    assert!(
        v.get("calls").is_none() && v.get("num_items").is_none(),
        "one call, not a page: {v}"
    );
    assert_eq!(v["id"], json!(x), "x started last");
    let (_, v) = status_json(app.get("/v1/calls?most_recent=true&status=failed").await).await;
    assert_eq!(v["id"], json!(z));
    let (_, v) = status_json(
        app.get("/v1/calls?most_recent=true&to=2024-01-01T12:00:00Z")
            .await,
    )
    .await;
    assert_eq!(v["id"], json!(y));
    let (_, v) = status_json(app.get("/v1/calls?most_recent=1&fields=full").await).await;
    assert_eq!(v["id"], json!(x));
    assert!(v.get("transcript").is_some(), "fields=full applies: {v}");
    let m = expect_error(
        app.get("/v1/calls?most_recent=true&status=no_answer").await,
        404,
    )
    .await;
    assert_eq!(m, "No calls found matching criteria");
    let m = expect_error(
        app.get("/v1/calls?most_recent=true&client_number=%2B19995550000")
            .await,
        404,
    )
    .await;
    assert_eq!(m, "No calls found matching criteria");
    let v = list(&app, "?most_recent=false").await;
    assert_eq!(v["num_items"], 3);
    let m = expect_error(app.get("/v1/calls?most_recent=perhaps").await, 400).await;
    assert!(m.contains("most_recent must be true or false"), "{m}");
}
both!(most_recent);

async fn cursor_visits_every_call_once(db: Db) {
    let app = TestApp::spawn_holding_calls(db).await;
    let org = app.org();
    let mut created = Vec::new();
    for i in 0..23 {
        created.push(
            app.seed_call(org, None, &format!("+1415555{:04}", i))
                .await
                .id
                .to_string(),
        );
    }
    for (q, expect_order) in [
        ("?limit=5", true),
        ("?limit=5&order=asc", false),
        ("?limit=7&order_by=started_at", true),
        ("?limit=4&order_by=ended_at&order=asc", false),
    ] {
        let seen = page_all(&app, q).await;
        assert_eq!(seen.len(), 23, "{q}: {seen:?}");
        assert_eq!(
            seen.iter().collect::<HashSet<_>>().len(),
            23,
            "{q}: duplicates"
        );
        assert_eq!(sorted(seen.clone()), sorted(created.clone()), "{q}");
        // created_at/started_at/ended_at all equal creation time for calls that never ran.
        let mut want = created.clone();
        if expect_order {
            want.reverse();
        }
        assert_eq!(seen, want, "{q}: creation order");
    }
}
both!(cursor_visits_every_call_once);

async fn cursor_is_stable_while_calls_are_inserted(db: Db) {
    let app = TestApp::spawn_holding_calls(db).await;
    let org = app.org();
    let mut pre = Vec::new();
    for i in 0..12 {
        pre.push(
            app.seed_call(org, None, &format!("+1415555{:04}", i))
                .await
                .id
                .to_string(),
        );
    }
    let mut n = 100;
    for (query, newest_first) in [
        ("?limit=4", true),
        ("?limit=4&order=asc", false),
        ("?limit=5&order_by=started_at", true),
    ] {
        let mut seen: Vec<String> = Vec::new();
        let mut inserted: Vec<String> = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..50 {
            let q = match &cursor {
                Some(c) => format!("{query}&cursor={c}"),
                None => query.to_string(),
            };
            let page = list(&app, &q).await;
            seen.extend(ids(&page));
            // New calls arrive between every two pages.
            for _ in 0..3 {
                n += 1;
                inserted.push(
                    app.seed_call(org, None, &format!("+1415556{n:04}"))
                        .await
                        .id
                        .to_string(),
                );
            }
            match page["cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        assert_eq!(
            seen.iter().collect::<HashSet<_>>().len(),
            seen.len(),
            "{query}: a call appeared twice: {seen:?}"
        );
        let seen_pre: Vec<&String> = seen.iter().filter(|id| pre.contains(id)).collect();
        let mut want: Vec<&String> = pre.iter().collect();
        if newest_first {
            want.reverse();
        }
        assert_eq!(
            seen_pre, want,
            "{query}: every pre-existing call exactly once, in order"
        );
        if newest_first {
            // Newer calls sort before the cursor: they never show up in this walk.
            assert!(
                seen.iter().all(|id| !inserted.contains(id)),
                "{query}: a call inserted during paging appeared"
            );
        } else {
            // Oldest first: new calls come after every pre-existing one.
            let first_new = seen
                .iter()
                .position(|id| inserted.contains(id))
                .unwrap_or(seen.len());
            assert!(
                seen[first_new..].iter().all(|id| inserted.contains(id)),
                "{query}: a new call shifted the old ones"
            );
        }
        pre.extend(inserted);
    }
}
both!(cursor_is_stable_while_calls_are_inserted);

async fn garbage_cursor_is_400(db: Db) {
    let app = TestApp::spawn_holding_calls(db).await;
    app.seed_call(app.org(), None, "+14155550001").await;
    let resource_cursor = {
        app.seed_agent(app.org(), "a").await;
        app.seed_agent(app.org(), "b").await;
        let (_, v) = status_json(app.get("/v1/agents?limit=1").await).await;
        v["cursor"].as_str().expect("agents cursor").to_string()
    };
    for c in [
        "garbage!",
        "Zm9v",
        "' OR 1=1 --",
        "%00",
        "YzE6Y3JlYXRlZF9hdDpkZXNjOng6eQ",
        resource_cursor.as_str(),
    ] {
        let m = expect_error(
            app.get(&format!("/v1/calls?cursor={}", url_escape(c)))
                .await,
            400,
        )
        .await;
        assert!(m.starts_with("cursor is not valid"), "{c}: {m}");
    }
}
both!(garbage_cursor_is_400);

fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Values that look like SQL are just values: refused where the parameter has a format,
/// stored and returned verbatim where it is free text. Never a 500.
async fn sql_looking_values_are_just_values(db: Db) {
    let app = TestApp::spawn_holding_calls(db).await;
    let (_, from) = agent_with_number(&app, "+14155550100").await;
    dispatch(&app, &json!({"to": "+14155550199", "from": from})).await;
    let hostile = [
        "' OR 1=1 --",
        "%",
        "\"",
        "'; DROP TABLE calls; --",
        "\\",
        "_",
        "1' UNION SELECT * FROM api_keys --",
    ];
    for (i, h) in hostile.iter().enumerate() {
        let h = *h;
        let e = url_escape(h);
        for param in [
            "client_number",
            "phone_number",
            "agent_id",
            "contact_id",
            "campaign_id",
            "status",
            "call_type",
            "from",
            "to",
            "order_by",
            "order",
            "fields",
            "include",
            "limit",
            "cursor",
            "most_recent",
        ] {
            let r = app.get(&format!("/v1/calls?{param}={e}")).await;
            let m = expect_error(r, 400).await;
            assert!(
                m.contains(param) || (param == "cursor" && m.contains("cursor")),
                "{param}={h}: {m}"
            );
        }
        for path in [
            format!("/v1/call/{e}"),
            format!("/v1/call?id={e}"),
            format!("/v1/agents/{e}"),
            format!("/v1/call/recording/{e}.mp3"),
        ] {
            let s = app.get(&path).await.status();
            assert!(s == 400 || s == 404, "{path}: {s}");
        }
        // Unknown parameters are ignored.
        assert_eq!(
            list(&app, &format!("?limit=100&search={e}")).await["num_items"],
            1 + i
        );
        // Free text is stored and read back verbatim.
        let name = format!("agent {h}");
        let (s, a) = status_json(
            app.post_json("/v1/agents", &json!({"name": name, "system_prompt": h}))
                .await,
        )
        .await;
        assert_eq!(s, 201, "{a}");
        let (_, got) = status_json(
            app.get(&format!("/v1/agents/{}", a["id"].as_str().expect("id")))
                .await,
        )
        .await;
        assert_eq!(
            (got["name"].clone(), got["system_prompt"].clone()),
            (json!(name), json!(h))
        );
        let c = dispatch(
            &app,
            &json!({"to": "+14155550199", "from": from, "context": h, "metadata": {h: h}}),
        )
        .await;
        let (_, got) = status_json(
            app.get(&format!("/v1/call/{}", c["id"].as_str().expect("id")))
                .await,
        )
        .await;
        assert_eq!(
            (got["context"].clone(), got["metadata"].clone()),
            (json!(h), json!({h: h}))
        );
        let (s, _) = status_json(
            app.post_json(
                "/v1/contacts",
                &json!({"identifier": "+14155550777", "first_name": h, "last_name": h}),
            )
            .await,
        )
        .await;
        assert!(s == 201 || s == 409);
    }
    // Everything is still there.
    let (_, agents) = status_json(app.get("/v1/agents?limit=100").await).await;
    assert_eq!(agents["num_items"], 1 + hostile.len());
    assert_eq!(
        list(&app, "?limit=100").await["num_items"],
        1 + hostile.len()
    );
}
both!(sql_looking_values_are_just_values);
