//! Tenant isolation: another organization's rows do not exist for you, on every endpoint.

use crate::common::*;
use serde_json::json;
use switchboard_testkit::{both, expect_error, status_json, Db, TestApp};

async fn other_orgs_rows_do_not_exist(db: Db) {
    let app = TestApp::spawn_holding_calls(db).await;
    // Organization A (the default one) owns one of everything.
    let (agent, from) = agent_with_number(&app, "+14155550100").await;
    let number = app.get("/v1/phone-numbers").await;
    let (_, numbers) = status_json(number).await;
    let number_id = numbers["phone_numbers"][0]["id"]
        .as_str()
        .expect("number id")
        .to_string();
    let (s, trunk) = status_json(
        app.post_json(
            "/v1/sip-trunks",
            &json!({"name": "carrier", "host": "sip.example.com", "password": "pw"}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 201, "{trunk}");
    let (s, contact) = status_json(
        app.post_json("/v1/contacts", &json!({"identifier": "+14155550111"}))
            .await,
    )
    .await;
    assert_eq!(s, 201, "{contact}");
    let (s, campaign) = status_json(
        app.post_json(
            "/v1/campaigns",
            &json!({"name": "spring", "agent_id": agent}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 201, "{campaign}");
    let call = dispatch(
        &app,
        &json!({"to": "+14155550199", "from": from, "campaign_id": campaign["id"]}),
    )
    .await;
    let call_id = call["id"].as_str().expect("call id").to_string();
    put_recording(&app, call_id.parse().expect("uuid"), b"ID3 fake mp3 bytes").await;

    let (_org_b, key_b) = app.new_org("B").await;
    let resources = [
        ("agents", agent.clone(), "Agent", json!({"voice": "x"})),
        (
            "phone-numbers",
            number_id.clone(),
            "Phone number",
            json!({"label": "x"}),
        ),
        (
            "sip-trunks",
            trunk["id"].as_str().expect("id").to_string(),
            "SIP trunk",
            json!({"name": "x"}),
        ),
        (
            "contacts",
            contact["id"].as_str().expect("id").to_string(),
            "Contact",
            json!({"first_name": "x"}),
        ),
        (
            "campaigns",
            campaign["id"].as_str().expect("id").to_string(),
            "Campaign",
            json!({"name": "x"}),
        ),
    ];
    for (plural, id, what, patch) in &resources {
        let path = format!("/v1/{plural}/{id}");
        let expected = format!("{what} not found");
        assert_eq!(
            expect_error(app.get_with_key(&path, &key_b).await, 404).await,
            expected,
            "GET {path}"
        );
        assert_eq!(
            expect_error(app.patch_json_with_key(&path, patch, &key_b).await, 404).await,
            expected,
            "PATCH {path}"
        );
        assert_eq!(
            expect_error(app.delete_with_key(&path, &key_b).await, 404).await,
            expected,
            "DELETE {path}"
        );
        let (s, list) = status_json(app.get_with_key(&format!("/v1/{plural}"), &key_b).await).await;
        assert_eq!(s, 200);
        assert_eq!(list["num_items"], 0, "B lists A's {plural}: {list}");
        assert_eq!(list["cursor"], json!(null));
    }
    // Flyflow's agent endpoints.
    expect_error(
        app.get_with_key(&format!("/v1/agent?id={agent}"), &key_b)
            .await,
        404,
    )
    .await;
    expect_error(
        app.delete_with_key(&format!("/v1/agent?id={agent}"), &key_b)
            .await,
        404,
    )
    .await;

    // Calls.
    let m = expect_error(
        app.get_with_key(&format!("/v1/call/{call_id}"), &key_b)
            .await,
        404,
    )
    .await;
    assert_eq!(m, "Call not found");
    expect_error(
        app.get_with_key(&format!("/v1/call?id={call_id}"), &key_b)
            .await,
        404,
    )
    .await;
    let (s, list) = status_json(app.get_with_key("/v1/calls", &key_b).await).await;
    assert_eq!(
        (s.as_u16(), list["num_items"].clone(), list["calls"].clone()),
        (200, json!(0), json!([]))
    );
    for q in [
        format!("agent_id={agent}"),
        format!("campaign_id={}", campaign["id"].as_str().expect("id")),
        "client_number=%2B14155550199".into(),
    ] {
        let (s, list) =
            status_json(app.get_with_key(&format!("/v1/calls?{q}"), &key_b).await).await;
        assert_eq!(
            (s.as_u16(), list["num_items"].clone()),
            (200, json!(0)),
            "{q}"
        );
    }
    let m = expect_error(
        app.get_with_key("/v1/calls?most_recent=true", &key_b).await,
        404,
    )
    .await;
    assert_eq!(m, "No calls found matching criteria");
    let m = expect_error(
        app.get_with_key(&format!("/v1/call/recording/{call_id}.mp3"), &key_b)
            .await,
        404,
    )
    .await;
    assert_eq!(m, "Recording not found");
    let m = expect_error(
        app.post_json_with_key(
            "/v1/call/context",
            &json!({"id": call_id, "context": "mine now"}),
            &key_b,
        )
        .await,
        404,
    )
    .await;
    assert_eq!(m, "Call not found");
    expect_error(
        app.post_json_with_key(&format!("/v1/call/{call_id}/hangup"), &json!({}), &key_b)
            .await,
        404,
    )
    .await;
    let m = expect_error(
        app.delete_with_key(&format!("/v1/call/{call_id}"), &key_b)
            .await,
        404,
    )
    .await;
    assert_eq!(m, "Call not found");

    // B cannot use A's agent, number or campaign by reference either.
    expect_error(
        app.post_json_with_key(
            "/v1/call",
            &json!({"to": "+14155550122", "agent_id": agent}),
            &key_b,
        )
        .await,
        404,
    )
    .await;
    expect_error(
        app.post_json_with_key(
            "/v1/call",
            &json!({"to": "+14155550122", "from": from}),
            &key_b,
        )
        .await,
        404,
    )
    .await;
    expect_error(
        app.post_json_with_key(
            "/v1/phone-numbers",
            &json!({"phone_number": "+14155550333", "agent_id": agent}),
            &key_b,
        )
        .await,
        422,
    )
    .await;
    expect_error(
        app.post_json_with_key(
            "/v1/campaigns",
            &json!({"name": "x", "agent_id": agent}),
            &key_b,
        )
        .await,
        422,
    )
    .await;
    // B may register the same E.164 number and reuse A's names: they are per organization.
    let (s, v) = status_json(
        app.post_json_with_key(
            "/v1/agents",
            &json!({"name": format!("agent {from}")}),
            &key_b,
        )
        .await,
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = status_json(
        app.post_json_with_key("/v1/phone-numbers", &json!({"phone_number": from}), &key_b)
            .await,
    )
    .await;
    assert_eq!(s, 201, "{v}");

    // Nothing of A's was touched.
    for (plural, id, _, _) in &resources {
        let (s, v) = status_json(app.get(&format!("/v1/{plural}/{id}")).await).await;
        assert_eq!(s, 200, "A's {plural} {id}: {v}");
    }
    let (s, v) = status_json(app.get(&format!("/v1/call/{call_id}")).await).await;
    assert_eq!(s, 200);
    assert_eq!(v["context"], json!(null), "B's context update leaked: {v}");
    assert_eq!(
        app.get(&format!("/v1/call/recording/{call_id}.mp3"))
            .await
            .status(),
        200
    );
    let (_, list) = status_json(app.get("/v1/calls").await).await;
    assert_eq!(list["num_items"], 1);
}
both!(other_orgs_rows_do_not_exist);
