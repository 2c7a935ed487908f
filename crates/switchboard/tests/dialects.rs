//! The vendor dialects over HTTP: every request of the AgentVoice document (004) and the
//! call resource (002), the OmniDimension endpoints (001) and cross-dialect read-back, against
//! a seeded data set (agents, contacts with names and emails, a campaign, both call types,
//! every status, transcripts and metrics), on SQLite and PostgreSQL.

use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashSet};
use switchboard_domain::*;
use switchboard_store::{CallUpdate, CreateCallOutcome};
use switchboard_testkit::{both, status_json, Db, TestApp};

const LIGHT: &[&str] = &[
    "id",
    "agent_id",
    "agent_name",
    "contact_id",
    "contact_first_name",
    "contact_last_name",
    "contact_email",
    "phone_number",
    "phone_number_called_from",
    "call_type",
    "status",
    "call_success",
    "went_to_voicemail",
    "call_duration",
    "started_at",
    "ended_at",
    "ended_reason",
    "recording_url",
    "campaign_id",
    "campaign_name",
    "created_at",
];
const FULL_EXTRA: &[&str] = &[
    "transcript",
    "transcript_formatted",
    "post_call_analysis",
    "call_description",
    "custom_analysis",
    "structured_data_results",
    "notes",
    "action_executions",
    "action_summary",
    "quality_metrics",
    "enhanced_context",
];

fn group(g: &str) -> &'static [&'static str] {
    match g {
        "transcript" => &["transcript", "transcript_formatted"],
        "metrics" => &["quality_metrics", "latency_metrics", "audio_metrics"],
        "diagnostics" => &["turn_events", "interruptions", "tool_usage"],
        "actions" => &["action_executions", "action_summary"],
        _ => panic!("unknown group {g}"),
    }
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect()
}

fn set(parts: &[&[&str]]) -> BTreeSet<String> {
    parts
        .iter()
        .flat_map(|p| p.iter().map(|s| s.to_string()))
        .collect()
}

struct Seed {
    app: TestApp,
    agents: Vec<Agent>,
    campaign: Campaign,
    contact: Contact,
    number: OwnedNumber,
    /// Every call of the default organization, as the store has it now (with details).
    calls: Vec<Call>,
    other_key: String,
    other_org: String,
    other_call: CallId,
    other_agent_number: i64,
    other_number_id: i64,
}

fn ts(s: &str) -> Timestamp {
    Timestamp::parse_param("t", s).unwrap()
}

/// A server whose engine never places a call (a cap of 0 concurrent calls keeps every
/// dispatched call queued, status `dialing`), so the seeded statuses stay as written.
async fn spawn(db: Db) -> TestApp {
    TestApp::spawn_with(db, |c| c.telephony.max_calls_per_org = 0).await
}

async fn seed(db: Db) -> Seed {
    let app = spawn(db).await;
    let org = app.org();
    let s = &app.store;
    let a1 = app.seed_agent(org, "Sales Agent").await;
    let a2 = app.seed_agent(org, "Support Agent").await;
    let contact = s
        .create_contact(
            org,
            ContactPatch {
                identifier: Some(PhoneNumber::parse("+14155551234").unwrap()),
                contact_type: Some("call".into()),
                first_name: Some(Some("John".into())),
                last_name: Some(Some("Doe".into())),
                email: Some(Some("john@example.com".into())),
            },
        )
        .await
        .unwrap();
    s.create_contact(
        org,
        ContactPatch {
            identifier: Some(PhoneNumber::parse("+14155550000").unwrap()),
            contact_type: Some("call".into()),
            first_name: Some(Some("Jane".into())),
            last_name: Some(Some("Roe".into())),
            email: Some(Some("jane@example.com".into())),
        },
    )
    .await
    .unwrap();
    let campaign = s
        .create_campaign(
            org,
            CampaignPatch {
                name: Some("January Outreach".into()),
                agent_id: Some(Some(a1.id)),
                status: None,
            },
        )
        .await
        .unwrap();
    let number = s
        .create_number(
            org,
            OwnedNumberPatch {
                phone_number: Some(PhoneNumber::parse("+17375551234").unwrap()),
                label: Some(Some("main".into())),
                agent_id: Some(Some(a1.id)),
                trunk_id: None,
            },
        )
        .await
        .unwrap();
    let tos = ["+14155551234", "+14155550000", "+14155559999"];
    let mut ids = Vec::new();
    for i in 0..12usize {
        let agent = if i % 2 == 0 { &a1 } else { &a2 };
        let inbound = i % 4 == 3;
        let new = NewCall {
            org_id: org,
            agent_id: Some(agent.id),
            phone_number_id: Some(number.id),
            campaign_id: (i % 3 == 0).then_some(campaign.id),
            call_type: if inbound {
                CallType::Inbound
            } else {
                CallType::Outbound
            },
            client_number: PhoneNumber::parse(tos[i % 3]).unwrap(),
            agent_phone_number: Some(number.phone_number.clone()),
            context: Some(json!(format!("context {i}"))),
            metadata: None,
            user_speaks_first: false,
            ring_timeout_seconds: None,
        };
        let call = match s.create_call(new, None).await.unwrap() {
            CreateCallOutcome::Created(c) | CreateCallOutcome::Replayed(c) => c,
        };
        let status = CallStatus::ALL[i % 6];
        let start = ts(&format!("2024-01-{:02}T10:00:00Z", i + 1));
        let dur = 60 + i as i64 * 10;
        let end = Timestamp(start.micros() + dur * 1_000_000);
        let u = match status {
            CallStatus::Dialing => None,
            CallStatus::InProgress => Some(CallUpdate {
                status: Some(status),
                started_at: Some(start),
                ..Default::default()
            }),
            CallStatus::Completed | CallStatus::Transferred => Some(CallUpdate {
                status: Some(status),
                started_at: Some(start),
                ended_at: Some(end),
                duration_seconds: Some(dur),
                end_reason: Some("customer-ended-call".into()),
                ..Default::default()
            }),
            CallStatus::Failed => Some(CallUpdate {
                status: Some(status),
                ended_at: Some(start),
                end_reason: Some("sip-503".into()),
                sip_code: Some(503),
                ..Default::default()
            }),
            CallStatus::NoAnswer => Some(CallUpdate {
                status: Some(status),
                ended_at: Some(start),
                end_reason: Some("no-answer".into()),
                ..Default::default()
            }),
        };
        if let Some(u) = u {
            s.update_call(call.id, u).await.unwrap();
        }
        if matches!(status, CallStatus::Completed | CallStatus::Transferred) {
            let d = CallDetails {
                transcript: Some(format!("Agent: hello {i}\nUser: hi")),
                transcript_formatted: Some(
                    json!([{"speaker": "agent", "text": format!("hello {i}"), "t": 0.0}]),
                ),
                quality_metrics: Some(json!({"mos": 4.2})),
                latency_metrics: Some(json!({"p50_ms": 700})),
                action_summary: Some(json!("none")),
                ..Default::default()
            };
            s.set_call_details(call.id, &d).await.unwrap();
        }
        ids.push(call.id);
    }
    // A recording on the first completed call.
    let key = format!("{}.mp3", ids[2]);
    app.recordings
        .put(&key, vec![0xffu8, 0xfb, 0x90, 0x00].into())
        .await
        .unwrap();
    s.update_call(
        ids[2],
        CallUpdate {
            recording: Some(RecordingMeta {
                key,
                stereo_key: None,
                duration_ms: Some(1000),
                size_bytes: Some(4),
                sha256: None,
                incomplete_reason: None,
            }),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mut calls = Vec::new();
    for id in ids {
        calls.push(s.get_call(org, id, true).await.unwrap());
    }
    let (other_org, other_key) = app.new_org("other").await;
    let oorg: OrgId = other_org.parse().unwrap();
    let oa = app.seed_agent(oorg, "Other Agent").await;
    let other_call = app.seed_call(oorg, Some(&oa), "+14155551234").await.id;
    let on = s
        .create_number(
            oorg,
            OwnedNumberPatch {
                phone_number: Some(PhoneNumber::parse("+17375550000").unwrap()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    Seed {
        app,
        agents: vec![a1, a2],
        campaign,
        contact,
        number,
        calls,
        other_key,
        other_org,
        other_call,
        other_agent_number: oa.number,
        other_number_id: on.number_id,
    }
}

impl Seed {
    /// An AgentVoice request: `x-api-key` + `x-organization-id`.
    async fn av(&self, path_and_query: &str) -> (StatusCode, Value) {
        let r = self
            .app
            .client
            .get(self.app.url(path_and_query))
            .header("x-api-key", &self.app.api_key)
            .header("x-organization-id", &self.app.org_id)
            .send()
            .await
            .unwrap();
        status_json(r).await
    }
    async fn av_text(&self, path_and_query: &str) -> String {
        let r = self
            .app
            .client
            .get(self.app.url(path_and_query))
            .header("x-api-key", &self.app.api_key)
            .header("x-organization-id", &self.app.org_id)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.text().await.unwrap()
    }
    fn ids(&self, pred: impl Fn(&Call) -> bool) -> HashSet<String> {
        self.calls
            .iter()
            .filter(|c| pred(c))
            .map(|c| c.id.to_string())
            .collect()
    }
}

fn start_key(c: &Call) -> i64 {
    c.started_at.unwrap_or(c.created_at).micros()
}

fn data_ids(v: &Value) -> Vec<String> {
    v["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no data array: {v}"))
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect()
}

fn is_uuid(v: &Value) -> bool {
    v.as_str().is_some_and(|s| uuid::Uuid::parse_str(s).is_ok())
}

fn is_time(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| Timestamp::parse_param("t", s).is_ok() && s.ends_with('Z'))
}

/// Types of the light AgentVoice object, and its values against the stored call.
fn check_light(v: &Value, c: &Call, base: &str) {
    assert!(is_uuid(&v["id"]) && v["id"] == c.id.to_string(), "{v}");
    assert_eq!(v["agent_id"], json!(c.agent_id), "{v}");
    assert_eq!(v["agent_name"], json!(c.agent_name));
    assert_eq!(v["contact_id"], json!(c.contact.as_ref().map(|c| c.id)));
    assert!(is_uuid(&v["contact_id"]));
    assert!(v["contact_first_name"].is_string() || v["contact_first_name"].is_null());
    assert!(v["contact_email"].is_string() || v["contact_email"].is_null());
    assert_eq!(v["phone_number"], c.client_number.as_str());
    assert_eq!(v["phone_number_called_from"], json!(c.from_number()));
    assert_eq!(v["call_type"], c.call_type.as_str());
    assert_eq!(v["status"], c.status.as_str());
    assert!(v["call_success"].is_boolean() || v["call_success"].is_null());
    assert!(v["went_to_voicemail"].is_boolean() || v["went_to_voicemail"].is_null());
    assert_eq!(v["call_duration"], json!(c.duration_seconds));
    assert!(v["call_duration"].is_i64() || v["call_duration"].is_null());
    assert!(v["started_at"].is_null() || is_time(&v["started_at"]));
    assert_eq!(v["started_at"].is_null(), c.started_at.is_none());
    assert_eq!(v["ended_at"].is_null(), c.ended_at.is_none());
    assert_eq!(v["ended_reason"], json!(c.end_reason));
    match &c.recording {
        Some(_) => assert_eq!(
            v["recording_url"],
            format!("{base}/v1/call/recording/{}.mp3", c.id)
        ),
        None => assert!(v["recording_url"].is_null()),
    }
    assert_eq!(v["campaign_id"], json!(c.campaign_id));
    assert_eq!(v["campaign_name"], json!(c.campaign_name));
    assert!(is_time(&v["created_at"]));
}

async fn agentvoice_list_documented_requests(db: Db) {
    let s = seed(db).await;
    let base = s.app.base.clone();
    // Example Request (curl, fetch, and requests with params): the same query.
    for q in [
        "/api/calls?limit=10&order=desc",
        "/api/calls?order=desc&limit=10",
    ] {
        let (st, v) = s.av(q).await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(keys(&v), set(&[&["data", "pagination"]]));
        assert_eq!(
            v["pagination"],
            json!({"total": 12, "limit": 10, "offset": 0, "has_more": true})
        );
        let items = v["data"].as_array().unwrap();
        assert_eq!(items.len(), 10);
        // Default order_by is started_at, descending.
        let mut expect: Vec<&Call> = s.calls.iter().collect();
        expect.sort_by_key(|c| std::cmp::Reverse((start_key(c), c.seq)));
        let want: Vec<String> = expect.iter().take(10).map(|c| c.id.to_string()).collect();
        assert_eq!(data_ids(&v), want);
        for item in items {
            assert_eq!(
                keys(item),
                set(&[LIGHT]),
                "light payload is exactly the documented fields"
            );
            let c = s
                .calls
                .iter()
                .find(|c| c.id.to_string() == item["id"])
                .unwrap();
            check_light(item, c, &base);
        }
    }
    // Defaults: limit 50, offset 0.
    let (_, v) = s.av("/api/calls").await;
    assert_eq!(
        v["pagination"],
        json!({"total": 12, "limit": 50, "offset": 0, "has_more": false})
    );
    // The seeded contact's names and email, and the campaign's name.
    let (_, v) = s
        .av(&format!("/api/calls?contact_id={}", s.contact.id))
        .await;
    let items = v["data"].as_array().unwrap();
    assert_eq!(items.len(), 4);
    for it in items {
        assert_eq!(it["contact_first_name"], "John");
        assert_eq!(it["contact_last_name"], "Doe");
        assert_eq!(it["contact_email"], "john@example.com");
        assert_eq!(it["phone_number"], "+14155551234");
    }
    let (_, v) = s
        .av(&format!(
            "/api/calls?campaign_id={}&order_by=started_at&order=desc",
            s.campaign.id
        ))
        .await;
    assert_eq!(
        data_ids(&v).into_iter().collect::<HashSet<_>>(),
        s.ids(|c| c.campaign_id == Some(s.campaign.id))
    );
    for it in v["data"].as_array().unwrap() {
        assert_eq!(it["campaign_name"], "January Outreach");
    }
    // Every order_by, both directions.
    for (ob, key) in [
        ("started_at", start_key as fn(&Call) -> i64),
        ("ended_at", |c: &Call| {
            c.ended_at.unwrap_or(c.created_at).micros()
        }),
        ("created_at", |c: &Call| c.created_at.micros()),
    ] {
        for order in ["asc", "desc"] {
            let (st, v) = s
                .av(&format!("/api/calls?order_by={ob}&order={order}"))
                .await;
            assert_eq!(st, 200);
            let mut expect: Vec<&Call> = s.calls.iter().collect();
            expect.sort_by_key(|c| (key(c), c.seq));
            if order == "desc" {
                expect.reverse();
            }
            let want: Vec<String> = expect.iter().map(|c| c.id.to_string()).collect();
            assert_eq!(data_ids(&v), want, "order_by={ob}&order={order}");
        }
    }
}

async fn agentvoice_filters(db: Db) {
    let s = seed(db).await;
    let a1 = &s.agents[0];
    // Phone number: encoded (curl %2B, fetch encodeURIComponent, requests) and raw '+'.
    let want = s.ids(|c| c.client_number.as_str() == "+14155551234");
    for q in [
        "/api/calls?phone_number=%2B14155551234",
        "/api/calls?phone_number=+14155551234",
    ] {
        let (st, v) = s.av(q).await;
        assert_eq!(st, 200, "{q}: {v}");
        assert_eq!(
            data_ids(&v).into_iter().collect::<HashSet<_>>(),
            want,
            "{q}"
        );
        assert_eq!(v["pagination"]["total"], want.len());
    }
    let cases: Vec<(String, HashSet<String>)> = vec![
        (
            format!("agent_id={}&status=completed", a1.id),
            s.ids(|c| c.agent_id == Some(a1.id) && c.status == CallStatus::Completed),
        ),
        (
            format!("agent_id={}", a1.id),
            s.ids(|c| c.agent_id == Some(a1.id)),
        ),
        (
            format!("campaign_id={}", s.campaign.id),
            s.ids(|c| c.campaign_id == Some(s.campaign.id)),
        ),
        (
            "call_type=inbound".into(),
            s.ids(|c| c.call_type == CallType::Inbound),
        ),
        (
            "call_type=outbound".into(),
            s.ids(|c| c.call_type == CallType::Outbound),
        ),
        (
            format!(
                "contact_id={}&call_type=inbound&order=desc&limit=5&fields=full",
                s.contact.id
            ),
            {
                s.ids(|c| {
                    c.contact.as_ref().map(|x| x.id) == Some(s.contact.id)
                        && c.call_type == CallType::Inbound
                })
            },
        ),
        (
            "from=2024-01-01T00:00:00Z&to=2024-01-31T23:59:59Z".into(),
            {
                let (f, t) = (
                    ts("2024-01-01T00:00:00Z").micros(),
                    ts("2024-01-31T23:59:59Z").micros(),
                );
                s.ids(|c| (f..=t).contains(&start_key(c)))
            },
        ),
        (
            "from=2024-01-01T00%3A00%3A00Z&to=2024-01-05T23%3A59%3A59Z".into(),
            {
                let (f, t) = (
                    ts("2024-01-01T00:00:00Z").micros(),
                    ts("2024-01-05T23:59:59Z").micros(),
                );
                s.ids(|c| (f..=t).contains(&start_key(c)))
            },
        ),
        (format!("agent_id={}", uuid::Uuid::new_v4()), HashSet::new()),
    ];
    for st in CallStatus::ALL {
        let (code, v) = s.av(&format!("/api/calls?status={st}")).await;
        assert_eq!(code, 200);
        let want = s.ids(|c| c.status == *st);
        assert!(!want.is_empty(), "seed has every status");
        assert_eq!(
            data_ids(&v).into_iter().collect::<HashSet<_>>(),
            want,
            "status={st}"
        );
    }
    for (q, want) in cases {
        let (st, v) = s.av(&format!("/api/calls?{q}")).await;
        assert_eq!(st, 200, "{q}: {v}");
        let got: Vec<String> = data_ids(&v);
        assert_eq!(got.len(), got.iter().collect::<HashSet<_>>().len());
        assert_eq!(got.into_iter().collect::<HashSet<_>>(), want, "{q}");
        assert_eq!(v["pagination"]["total"], want.len(), "{q}");
    }
    // Another organization's ids filter to nothing (never another org's data).
    let (_, v) = s
        .av(&format!("/api/calls?contact_id={}", uuid::Uuid::new_v4()))
        .await;
    assert_eq!(v["pagination"]["total"], 0);
}

async fn agentvoice_payload_modes(db: Db) {
    let s = seed(db).await;
    let completed = s
        .calls
        .iter()
        .find(|c| c.status == CallStatus::Completed)
        .unwrap();
    // fields=full: light + the 11 documented fields, with the stored values.
    let (st, v) = s.av("/api/calls?fields=full").await;
    assert_eq!(st, 200);
    for it in v["data"].as_array().unwrap() {
        assert_eq!(keys(it), set(&[LIGHT, FULL_EXTRA]));
        if it["id"] == completed.id.to_string() {
            assert_eq!(
                it["transcript"],
                json!(completed.details.as_ref().unwrap().transcript)
            );
            assert!(it["transcript_formatted"].is_array());
            assert_eq!(it["quality_metrics"], json!({"mos": 4.2}));
        }
    }
    // include groups alone and combined; "transcript,metrics" encoded as requests does.
    let combos: &[&[&str]] = &[
        &["transcript"],
        &["metrics"],
        &["diagnostics"],
        &["actions"],
        &["transcript", "metrics"],
        &["transcript", "metrics", "diagnostics", "actions"],
    ];
    for groups in combos {
        let mut want = set(&[LIGHT]);
        for g in *groups {
            want.extend(group(g).iter().map(|s| s.to_string()));
        }
        for sep in [",", "%2C"] {
            let q = format!("/api/calls?include={}", groups.join(sep));
            let (st, v) = s.av(&q).await;
            assert_eq!(st, 200, "{q}");
            for it in v["data"].as_array().unwrap() {
                assert_eq!(keys(it), want, "{q}");
            }
        }
        // With fields=full: the union, each key once (checked on the raw text).
        let q = format!("/api/calls?fields=full&include={}", groups.join(","));
        let (_, v) = s.av(&q).await;
        let mut want_full = set(&[LIGHT, FULL_EXTRA]);
        for g in *groups {
            want_full.extend(group(g).iter().map(|s| s.to_string()));
        }
        for it in v["data"].as_array().unwrap() {
            assert_eq!(keys(it), want_full, "{q}");
        }
        let raw = s.av_text(&q).await;
        for k in &want_full {
            assert_eq!(
                raw.matches(&format!("\"{k}\":")).count(),
                12,
                "{q}: key {k} once per call"
            );
        }
    }
    let (_, v) = s
        .av(&format!(
            "/api/calls/{}?include=transcript,metrics",
            completed.id
        ))
        .await;
    assert_eq!(v["latency_metrics"], json!({"p50_ms": 700}));
    assert_eq!(v["audio_metrics"], Value::Null);
}

async fn agentvoice_single_and_most_recent(db: Db) {
    let s = seed(db).await;
    let base = s.app.base.clone();
    let c = &s.calls[2];
    // GET /api/calls/:id, light and ?fields=full.
    let (st, v) = s.av(&format!("/api/calls/{}", c.id)).await;
    assert_eq!(st, 200);
    assert_eq!(keys(&v), set(&[LIGHT]));
    check_light(&v, c, &base);
    assert!(v["recording_url"].as_str().unwrap().ends_with(".mp3"));
    let (st, v) = s.av(&format!("/api/calls/{}?fields=full", c.id)).await;
    assert_eq!(st, 200);
    assert_eq!(keys(&v), set(&[LIGHT, FULL_EXTRA]));
    let (_, v) = s
        .av(&format!(
            "/api/calls/{}?include=transcript,metrics,diagnostics,actions",
            c.id
        ))
        .await;
    let mut want = set(&[LIGHT]);
    for g in ["transcript", "metrics", "diagnostics", "actions"] {
        want.extend(group(g).iter().map(|s| s.to_string()));
    }
    assert_eq!(keys(&v), want);
    // The document's own example id, an unknown UUID and another organization's call.
    for id in [
        "abc-123".to_string(),
        uuid::Uuid::new_v4().to_string(),
        s.other_call.to_string(),
    ] {
        for q in [
            "",
            "?include=transcript,metrics,diagnostics,actions",
            "?fields=full",
        ] {
            let (st, v) = s.av(&format!("/api/calls/{id}{q}")).await;
            assert_eq!(st, 404, "{id}: {v}");
            assert_eq!(v["error"], "Call not found");
            assert_eq!(v["message"], "Call not found");
        }
    }
    // most_recent=true: one object, the latest start among the matches.
    let mut matching: Vec<&Call> = s
        .calls
        .iter()
        .filter(|c| c.client_number.as_str() == "+14155551234")
        .collect();
    matching.sort_by_key(|c| std::cmp::Reverse((start_key(c), c.seq)));
    for q in [
        "/api/calls?phone_number=%2B14155551234&most_recent=true",
        "/api/calls?most_recent=true&phone_number=%2B14155551234",
        "/api/calls?phone_number=+14155551234&most_recent=true",
    ] {
        let (st, v) = s.av(q).await;
        assert_eq!(st, 200);
        assert_eq!(keys(&v), set(&[LIGHT]), "{q}: a single call object");
        assert_eq!(v["id"], matching[0].id.to_string());
    }
    let (st, v) = s.av("/api/calls?most_recent=true&include=transcript").await;
    assert_eq!(st, 200);
    assert!(v.get("transcript").is_some());
    let (st, v) = s
        .av("/api/calls?phone_number=%2B19998887777&most_recent=true")
        .await;
    assert_eq!(st, 404);
    assert_eq!(v["error"], "No calls found matching criteria");
    let (st, _) = s.av("/api/calls?most_recent=false&limit=1").await;
    assert_eq!(st, 200);
}

async fn agentvoice_pagination(db: Db) {
    let app = spawn(db).await;
    let org = app.org();
    let agent = app.seed_agent(org, "Pager").await;
    for i in 0..57 {
        app.seed_call(org, Some(&agent), &format!("+1415555{:04}", i))
            .await;
    }
    let get = |q: String| {
        let r = app
            .client
            .get(app.url(&q))
            .header("x-api-key", &app.api_key)
            .header("x-organization-id", &app.org_id)
            .send();
        async move { status_json(r.await.unwrap()).await }
    };
    // Page 2 with 25 per page, as the document shows.
    let (st, v) = get("/api/calls?limit=25&offset=25".into()).await;
    assert_eq!(st, 200);
    assert_eq!(
        v["pagination"],
        json!({"total": 57, "limit": 25, "offset": 25, "has_more": true})
    );
    assert_eq!(v["data"].as_array().unwrap().len(), 25);
    for (limit, offset, n, more) in [
        (25, 50, 7, false),
        (100, 0, 57, false),
        (56, 0, 56, true),
        (57, 0, 57, false),
        (10, 57, 0, false),
        (10, 500, 0, false),
        (1, 56, 1, false),
    ] {
        let (st, v) = get(format!("/api/calls?limit={limit}&offset={offset}")).await;
        assert_eq!(st, 200);
        assert_eq!(
            v["pagination"],
            json!({"total": 57, "limit": limit, "offset": offset, "has_more": more}),
            "{limit}/{offset}"
        );
        assert_eq!(v["data"].as_array().unwrap().len(), n);
    }
    // Walking pages sees each call once.
    let mut seen = HashSet::new();
    let mut offset = 0;
    loop {
        let (_, v) = get(format!(
            "/api/calls?limit=10&offset={offset}&order_by=created_at"
        ))
        .await;
        for id in data_ids(&v) {
            assert!(seen.insert(id), "duplicate across pages");
        }
        if !v["pagination"]["has_more"].as_bool().unwrap() {
            break;
        }
        offset += 10;
    }
    assert_eq!(seen.len(), 57);
}

async fn agentvoice_errors(db: Db) {
    let s = seed(db).await;
    for q in [
        "order_by=duration",
        "order_by=STARTED_AT",
        "order_by=name&order=asc",
    ] {
        let (st, v) = s.av(&format!("/api/calls?{q}")).await;
        assert_eq!(st, 400, "{q}");
        assert_eq!(v["error"], "Invalid order_by parameter");
        let m = v["message"].as_str().unwrap();
        assert!(
            m.contains("Invalid order_by parameter")
                && m.contains("started_at, ended_at, created_at"),
            "{m}"
        );
    }
    for q in [
        "limit=0",
        "limit=101",
        "limit=abc",
        "limit=-5",
        "limit=1.5",
        "offset=-1",
        "offset=x",
        "order=up",
        "fields=huge",
        "include=bogus",
        "include=transcript,nope",
        "most_recent=maybe",
        "status=busy",
        "call_type=sideways",
        "agent_id=42",
        "contact_id=abc",
        "campaign_id=' OR 1=1 --",
        "phone_number=4155551234",
        "phone_number=%2B1abc",
        "from=yesterday",
        "to=2024-13-01",
    ] {
        let (st, v) = s.av(&format!("/api/calls?{q}")).await;
        assert_eq!(st, 400, "{q}: {v}");
        assert!(
            v["error"].is_string() && v["message"].is_string(),
            "{q}: {v}"
        );
    }
    // Two valid dates that select nothing together: 422 (a 400 is a value outside its
    // documented shape; 004 documents no status for this case).
    let (st, v) = s.av("/api/calls?from=2024-02-01&to=2024-01-01").await;
    assert_eq!(st, 422, "{v}");
    assert_eq!(v["message"], "from must not be later than to", "{v}");
    let c = s.calls[0].id;
    for q in ["fields=huge", "include=bogus"] {
        let (st, _) = s.av(&format!("/api/calls/{c}?{q}")).await;
        assert_eq!(st, 400, "{q}");
    }
    // 401: missing headers, a wrong key, a wrong or another organization's id.
    let url = s.app.url("/api/calls");
    let tries = vec![
        s.app.client.get(&url),
        s.app
            .client
            .get(&url)
            .header("x-organization-id", &s.app.org_id),
        s.app
            .client
            .get(&url)
            .header("x-api-key", "sk_wrong_key_123456")
            .header("x-organization-id", &s.app.org_id),
        s.app
            .client
            .get(&url)
            .header("x-api-key", &s.app.api_key)
            .header("x-organization-id", &s.other_org),
        s.app
            .client
            .get(&url)
            .header("x-api-key", &s.other_key)
            .header("x-organization-id", &s.app.org_id),
        s.app
            .client
            .get(&url)
            .header("x-api-key", &s.app.api_key)
            .header("x-organization-id", "not-an-org"),
        s.app.client.get(s.app.url(&format!("/api/calls/{c}"))),
    ];
    for t in tries {
        let (st, v) = status_json(t.send().await.unwrap()).await;
        assert_eq!(st, 401, "{v}");
        assert_eq!(v["error"], "Authentication failed");
        assert_eq!(v["message"], "Authentication failed");
    }
    // The other organization sees only its own call.
    let r = s
        .app
        .client
        .get(&url)
        .header("x-api-key", &s.other_key)
        .header("x-organization-id", &s.other_org)
        .send()
        .await
        .unwrap();
    let (st, v) = status_json(r).await;
    assert_eq!(st, 200);
    assert_eq!(data_ids(&v), vec![s.other_call.to_string()]);
}

/// 002: `GET /v1/call/{id}` carries every documented field with its documented type and
/// nullability.
async fn call_resource(db: Db) {
    let s = seed(db).await;
    let statuses = [
        "dialing",
        "in_progress",
        "completed",
        "failed",
        "transferred",
        "no_answer",
    ];
    for c in &s.calls {
        let (st, v) = status_json(s.app.get(&format!("/v1/call/{}", c.id)).await).await;
        assert_eq!(st, 200);
        for k in [
            "id",
            "agent_id",
            "status",
            "type",
            "contact",
            "phone_id",
            "created_date",
            "recording_url",
            "start_time",
            "end_time",
            "duration",
            "end_reason",
        ] {
            assert!(v.get(k).is_some(), "documented field {k} missing: {v}");
        }
        assert!(is_uuid(&v["id"]));
        assert_eq!(v["id"], c.id.to_string());
        assert!(is_uuid(&v["agent_id"]) || v["agent_id"].is_null());
        assert!(statuses.contains(&v["status"].as_str().unwrap()));
        assert_eq!(v["status"], c.status.as_str());
        assert!(["inbound", "outbound"].contains(&v["type"].as_str().unwrap()));
        assert_eq!(v["type"], c.call_type.as_str());
        let contact = &v["contact"];
        for k in ["id", "created_date", "identifier", "contact_type"] {
            assert!(contact.get(k).is_some(), "contact.{k}: {contact}");
        }
        assert!(is_uuid(&contact["id"]) && is_time(&contact["created_date"]));
        assert_eq!(contact["identifier"], c.client_number.as_str());
        assert_eq!(contact["contact_type"], "call");
        assert!(is_uuid(&v["phone_id"]) || v["phone_id"].is_null());
        assert_eq!(v["phone_id"], s.number.id.to_string());
        assert!(is_time(&v["created_date"]));
        assert_eq!(v["start_time"].is_null(), c.started_at.is_none());
        assert!(v["start_time"].is_null() || is_time(&v["start_time"]));
        assert_eq!(v["end_time"].is_null(), c.ended_at.is_none());
        assert!(v["end_time"].is_null() || is_time(&v["end_time"]));
        // duration: integer seconds, null until the call has ended.
        assert_eq!(v["duration"], json!(c.duration_seconds));
        if c.ended_at.is_none() {
            assert!(v["duration"].is_null() && v["end_reason"].is_null());
        }
        assert!(v["end_reason"].is_string() || v["end_reason"].is_null());
        assert_eq!(v["recording_url"].is_null(), c.recording.is_none());
    }
    let started = s
        .calls
        .iter()
        .find(|c| c.status == CallStatus::Completed)
        .unwrap();
    let (_, v) = status_json(s.app.get(&format!("/v1/call/{}", started.id)).await).await;
    assert_eq!(v["start_time"], "2024-01-03T10:00:00.000Z");
    assert_eq!(v["duration"], 80);
    assert_eq!(v["end_time"], "2024-01-03T10:01:20.000Z");
    // Path id is a UUID; unknown and another organization's ids are 404.
    for (id, code) in [
        ("abc-123".to_string(), 400),
        (uuid::Uuid::new_v4().to_string(), 404),
        (s.other_call.to_string(), 404),
    ] {
        let (st, v) = status_json(s.app.get(&format!("/v1/call/{id}")).await).await;
        assert_eq!(st.as_u16(), code, "{id}: {v}");
        assert!(v["message"].is_string());
    }
    let r = s
        .app
        .client
        .get(s.app.url(&format!("/v1/call/{}", s.calls[0].id)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

// ----- OmniDimension -----

async fn omni(
    s: &Seed,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
    key: Option<&str>,
) -> (StatusCode, Value) {
    let mut rb = s
        .app
        .client
        .request(method, s.app.url(path))
        .bearer_auth(key.unwrap_or(&s.app.api_key));
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    status_json(rb.send().await.unwrap()).await
}

fn omni_error(v: &Value) {
    assert_eq!(keys(v), set(&[&["error", "error_description"]]), "{v}");
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| !e.is_empty() && !e.contains(' ')),
        "{v}"
    );
    assert!(
        v["error_description"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{v}"
    );
}

async fn omnidim_endpoints(db: Db) {
    let s = seed(db).await;
    use reqwest::Method as M;
    let a1 = &s.agents[0];
    // Agents by integer id.
    let (st, v) = omni(
        &s,
        M::GET,
        "/api/v1/agents?pageno=1&pagesize=30",
        None,
        None,
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["total_records"], 2);
    assert_eq!(v["pageno"], 1);
    assert_eq!(v["pagesize"], 30);
    assert_eq!(v["total_pages"], 1);
    let bots = v["bots"].as_array().unwrap();
    assert_eq!(bots.len(), 2);
    assert_eq!(bots[0]["id"], a1.number);
    assert_eq!(bots[0]["name"], "Sales Agent");
    let (_, v) = omni(&s, M::GET, "/api/v1/agents?pageno=2&pagesize=1", None, None).await;
    assert_eq!(v["bots"][0]["id"], s.agents[1].number);
    assert_eq!(v["total_pages"], 2);
    let (st, v) = omni(
        &s,
        M::GET,
        &format!("/api/v1/agents/{}", a1.number),
        None,
        None,
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(v["id"], a1.number);
    // Create: welcome_message → initial_message, enabled sections → system prompt.
    let body = json!({
        "name": "Omni Agent",
        "context_breakdown": [
            {"title": "Role", "body": "You book tables.", "is_enabled": true},
            {"title": "Hidden", "body": "secret", "is_enabled": false}
        ],
        "welcome_message": "Hello from Omni",
        "call_type": "Outgoing",
        "voice": {"provider": "eleven_labs", "voice_id": "v123"},
        "model": {"model": "gpt-4o-mini", "temperature": 0.3}
    });
    let (st, v) = omni(&s, M::POST, "/api/v1/agents/create", Some(body), None).await;
    assert_eq!(st, 201, "{v}");
    let n = v["id"].as_i64().unwrap();
    assert_eq!(v["welcome_message"], "Hello from Omni");
    assert_eq!(v["call_type"], "Outgoing");
    let stored = s
        .app
        .store
        .get_agent_by_number(s.app.org(), n)
        .await
        .unwrap();
    assert_eq!(stored.initial_message.as_deref(), Some("Hello from Omni"));
    assert_eq!(
        stored.system_prompt.as_deref(),
        Some("## Role\nYou book tables.")
    );
    assert_eq!(stored.voice.as_deref(), Some("v123"));
    assert_eq!(stored.llm_model.as_deref(), Some("gpt-4o-mini"));
    assert_eq!(
        stored.settings.as_ref().unwrap()["context_breakdown"][1]["title"],
        "Hidden"
    );
    // Phone numbers.
    let (st, v) = omni(
        &s,
        M::GET,
        "/api/v1/phone_number/list?pageno=1&pagesize=30",
        None,
        None,
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(v["total_records"], 1);
    assert_eq!(v["phone_numbers"][0]["id"], s.number.number_id);
    assert_eq!(v["phone_numbers"][0]["phone_number"], "+17375551234");
    assert_eq!(v["phone_numbers"][0]["agent_id"], a1.number);
    // Call logs: paging facts, filters, the log's fields.
    let (st, v) = omni(
        &s,
        M::GET,
        "/api/v1/calls/logs?pageno=2&pagesize=5",
        None,
        None,
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(v["total_records"], 12);
    assert_eq!(v["total_pages"], 3);
    assert_eq!(v["call_log_data"].as_array().unwrap().len(), 5);
    let (_, v) = omni(&s, M::GET, "/api/v1/calls/logs", None, None).await;
    assert_eq!(v["pagesize"], 30);
    assert_eq!(v["call_log_data"].as_array().unwrap().len(), 12);
    let (_, v) = omni(
        &s,
        M::GET,
        &format!(
            "/api/v1/calls/logs?agentid={}&call_status=completed",
            a1.number
        ),
        None,
        None,
    )
    .await;
    let want = s.ids(|c| c.agent_id == Some(a1.id) && c.status == CallStatus::Completed);
    let got: HashSet<String> = v["call_log_data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(got, want);
    assert_eq!(v["total_records"], want.len());
    for agentid in [999_999_999, s.other_agent_number] {
        let (st, v) = omni(
            &s,
            M::GET,
            &format!("/api/v1/calls/logs?agentid={agentid}"),
            None,
            None,
        )
        .await;
        assert_eq!(st, 200);
        assert_eq!(v["total_records"], 0);
    }
    let c = s
        .calls
        .iter()
        .find(|c| c.status == CallStatus::Completed)
        .unwrap();
    let (st, v) = omni(
        &s,
        M::GET,
        &format!("/api/v1/calls/logs/{}", c.id),
        None,
        None,
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(v["call_status"], "completed");
    assert_eq!(v["call_duration"], json!(c.duration_seconds));
    assert_eq!(
        v["transcript"],
        json!(c.details.as_ref().unwrap().transcript)
    );
    assert_eq!(v["agent_id"], json!(c.agent_number));
    assert_eq!(v["from_number_id"], s.number.number_id);
    // Errors: the client's shape, sensible codes, never 500.
    let bad: Vec<(M, String, Option<Value>, u16)> = vec![
        (M::GET, "/api/v1/calls/logs?pageno=0".into(), None, 400),
        (M::GET, "/api/v1/calls/logs?pagesize=0".into(), None, 400),
        (M::GET, "/api/v1/calls/logs?pagesize=101".into(), None, 400),
        (M::GET, "/api/v1/calls/logs?agentid=abc".into(), None, 400),
        (
            M::GET,
            "/api/v1/calls/logs?call_status=busy".into(),
            None,
            400,
        ),
        (M::GET, "/api/v1/calls/logs/not-a-uuid".into(), None, 404),
        (
            M::GET,
            format!("/api/v1/calls/logs/{}", s.other_call),
            None,
            404,
        ),
        (M::GET, "/api/v1/agents/abc".into(), None, 400),
        (M::GET, "/api/v1/agents/999999999".into(), None, 404),
        (
            M::GET,
            format!("/api/v1/agents/{}", s.other_agent_number),
            None,
            404,
        ),
        (M::GET, "/api/v1/agents?pagesize=1000".into(), None, 400),
        (
            M::GET,
            "/api/v1/phone_number/list?pageno=-1".into(),
            None,
            400,
        ),
        (
            M::POST,
            "/api/v1/agents/create".into(),
            Some(json!({"name": "x"})),
            400,
        ),
        (
            M::POST,
            "/api/v1/agents/create".into(),
            Some(json!({"name": "x", "context_breakdown": "nope"})),
            400,
        ),
        (
            M::POST,
            "/api/v1/agents/create".into(),
            Some(json!({"name": 5, "context_breakdown": []})),
            400,
        ),
        (
            M::POST,
            "/api/v1/agents/create".into(),
            Some(json!({"name": "Sales Agent", "context_breakdown": []})),
            409,
        ),
        (
            M::POST,
            "/api/v1/calls/dispatch".into(),
            Some(json!({"agent_id": "1", "to_number": "+15551234567"})),
            400,
        ),
        (
            M::POST,
            "/api/v1/calls/dispatch".into(),
            Some(json!({"agent_id": a1.number, "to_number": "5551234567"})),
            400,
        ),
        (
            M::POST,
            "/api/v1/calls/dispatch".into(),
            Some(json!({"agent_id": a1.number, "to_number": 15551234567i64})),
            400,
        ),
        (
            M::POST,
            "/api/v1/calls/dispatch".into(),
            Some(json!({"to_number": "+15551234567"})),
            400,
        ),
        (
            M::POST,
            "/api/v1/calls/dispatch".into(),
            Some(json!({"agent_id": 999_999_999, "to_number": "+15551234567"})),
            404,
        ),
        (
            M::POST,
            "/api/v1/calls/dispatch".into(),
            Some(json!({"agent_id": s.other_agent_number, "to_number": "+15551234567"})),
            404,
        ),
        (
            M::POST,
            "/api/v1/calls/dispatch".into(),
            Some(
                json!({"agent_id": a1.number, "to_number": "+15551234567", "from_number_id": s.other_number_id}),
            ),
            404,
        ),
        (
            M::POST,
            "/api/v1/calls/dispatch".into(),
            Some(
                json!({"agent_id": a1.number, "to_number": "+15551234567", "from_number_id": "1"}),
            ),
            400,
        ),
        (
            M::POST,
            "/api/v1/calls/dispatch".into(),
            Some(json!({"agent_id": a1.number, "to_number": "+15551234567", "call_context": 5})),
            400,
        ),
        (
            M::POST,
            "/api/v1/calls/dispatch".into(),
            Some(json!([1, 2])),
            400,
        ),
    ];
    for (m, path, body, code) in bad {
        let (st, v) = omni(&s, m.clone(), &path, body.clone(), None).await;
        assert_eq!(st.as_u16(), code, "{m} {path} {body:?}: {v}");
        omni_error(&v);
    }
    let r = s
        .app
        .client
        .post(s.app.url("/api/v1/calls/dispatch"))
        .bearer_auth(&s.app.api_key)
        .body("{")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    let (st, v) = status_json(r).await;
    assert_eq!(st, 400);
    omni_error(&v);
    let r = s
        .app
        .client
        .post(s.app.url("/api/v1/calls/dispatch"))
        .bearer_auth(&s.app.api_key)
        .body("agent_id=1")
        .send()
        .await
        .unwrap();
    let (st, v) = status_json(r).await;
    assert_eq!(st, 415);
    omni_error(&v);
    let (st, v) = omni(
        &s,
        M::GET,
        "/api/v1/agents",
        None,
        Some("sk_not_a_real_key_000"),
    )
    .await;
    assert_eq!(st, 401);
    omni_error(&v);
    assert_eq!(v["error"], "unauthorized");
}

/// A call dispatched through one dialect reads back the same through every other, and all
/// of them share dispatch validation and idempotency.
async fn cross_dialect(db: Db) {
    let s = seed(db).await;
    use reqwest::Method as M;
    let a1 = &s.agents[0];
    // OmniDimension dispatch, as the client sends it (call_context={} when none).
    let body = json!({"agent_id": a1.number, "to_number": "+15551234567", "call_context": {"order": 42}, "from_number_id": s.number.number_id});
    let r = s
        .app
        .client
        .post(s.app.url("/api/v1/calls/dispatch"))
        .bearer_auth(&s.app.api_key)
        .header("idempotency-key", "omni-1")
        .json(&body)
        .send()
        .await
        .unwrap();
    let (st, v) = status_json(r).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["success"], true);
    let omni_id = v["call_log_id"].as_str().unwrap().to_string();
    assert_eq!(v["call_log"]["call_status"], "dialing");
    // Replay: the same call; a different body with the same key: 422 in OmniDimension's shape.
    let r = s
        .app
        .client
        .post(s.app.url("/api/v1/calls/dispatch"))
        .bearer_auth(&s.app.api_key)
        .header("idempotency-key", "omni-1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()
            .get("idempotent-replayed")
            .map(|v| v.to_str().unwrap()),
        Some("true")
    );
    let (_, v2) = status_json(r).await;
    assert_eq!(v2["call_log_id"], omni_id.as_str());
    let mut other = body.clone();
    other["to_number"] = json!("+15550000000");
    let r = s
        .app
        .client
        .post(s.app.url("/api/v1/calls/dispatch"))
        .bearer_auth(&s.app.api_key)
        .header("idempotency-key", "omni-1")
        .json(&other)
        .send()
        .await
        .unwrap();
    let (st, v) = status_json(r).await;
    assert_eq!(st, 422);
    omni_error(&v);
    // Empty call_context is no context; without from_number_id the agent's bound number is used.
    let (st, v) = omni(&s, M::POST, "/api/v1/calls/dispatch", Some(json!({"agent_id": a1.number, "to_number": "+15557654321", "call_context": {}, "from_number_id": null})), None).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["call_log"]["call_context"], Value::Null);
    assert_eq!(v["call_log"]["from_number"], "+17375551234");
    // Flyflow dispatch from the bound number.
    let (st, v) = status_json(s.app.post_json("/v1/call", &json!({"from": "+17375551234", "to": "+15559876543", "context": "ff", "user_speaks_first": false})).await).await;
    assert_eq!(st, 201, "{v}");
    let ff_id = v["id"].as_str().unwrap().to_string();
    for id in [&omni_id, &ff_id] {
        let call = s
            .app
            .store
            .get_call(s.app.org(), id.parse().unwrap(), true)
            .await
            .unwrap();
        let (_, v1) = status_json(s.app.get(&format!("/v1/call/{id}")).await).await;
        let (_, ff) = status_json(s.app.get(&format!("/v1/call?id={id}")).await).await;
        let (_, av) = s.av(&format!("/api/calls/{id}")).await;
        let (_, om) = omni(&s, M::GET, &format!("/api/v1/calls/logs/{id}"), None, None).await;
        assert_eq!(v1, ff);
        for v in [&v1, &av, &om] {
            assert_eq!(v["id"], id.as_str());
            assert!(!v["agent_id"].is_null());
        }
        assert_eq!(v1["agent_id"], a1.id.to_string());
        assert_eq!(av["agent_id"], a1.id.to_string());
        assert_eq!(om["agent_id"], a1.number);
        assert_eq!(v1["status"], "dialing");
        assert_eq!(av["status"], "dialing");
        assert_eq!(om["call_status"], "dialing");
        assert_eq!(v1["client_number"], call.client_number.as_str());
        assert_eq!(av["phone_number"], call.client_number.as_str());
        assert_eq!(om["to_number"], call.client_number.as_str());
        assert_eq!(av["phone_number_called_from"], "+17375551234");
        assert_eq!(om["from_number"], "+17375551234");
        assert_eq!(v1["context"], om["call_context"]);
        assert_eq!(v1["created_at"], av["created_at"]);
        assert_eq!(av["created_at"], om["created_at"]);
        assert_eq!(v1["phone_id"], s.number.id.to_string());
    }
    // Both appear once in every list.
    let (_, av) = s.av("/api/calls?limit=100").await;
    let (_, om) = omni(&s, M::GET, "/api/v1/calls/logs?pagesize=100", None, None).await;
    let (_, ff) = status_json(s.app.get("/v1/calls?limit=100").await).await;
    for id in [&omni_id, &ff_id] {
        assert_eq!(data_ids(&av).iter().filter(|x| x == &id).count(), 1);
        assert_eq!(
            om["call_log_data"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|x| x["id"] == id.as_str())
                .count(),
            1
        );
        assert_eq!(
            ff["calls"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|x| x["id"] == id.as_str())
                .count(),
            1
        );
    }
    assert_eq!(av["pagination"]["total"], 15);
    assert_eq!(om["total_records"], 15);
    // Same validation: a bad number is refused by every dialect.
    let (st, _) = status_json(
        s.app
            .post_json("/v1/call", &json!({"from": "+17375551234", "to": "12345"}))
            .await,
    )
    .await;
    assert_eq!(st, 400);
    let (st, _) = omni(
        &s,
        M::POST,
        "/api/v1/calls/dispatch",
        Some(json!({"agent_id": a1.number, "to_number": "12345"})),
        None,
    )
    .await;
    assert_eq!(st, 400);
}

both!(
    agentvoice_list_documented_requests,
    agentvoice_filters,
    agentvoice_payload_modes,
    agentvoice_single_and_most_recent,
    agentvoice_pagination,
    agentvoice_errors,
    call_resource,
    omnidim_endpoints,
    cross_dialect,
);
