//! Events and webhooks (issue 11): the outbox written with each change, the event log, and
//! delivery to a real HTTP receiver in this process (port 0) that verifies every signature
//! with the Standard Webhooks algorithm, written here from the specification (HMAC-SHA256 over
//! "id.timestamp.body" with the base64 key of the whsec_ secret), independently of the
//! server's code. Failures and slow answers are injected by the receiver; the restart test
//! kills the real binary with SIGKILL in the middle of a burst. No fixed ports.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switchboard_domain::{CallDetails, CallId, CallStatus, RecordingMeta, Timestamp};
use switchboard_store::CallUpdate;
use switchboard_testkit::{both, expect_error, hold_calls, status_json, Db, TestApp, TestDb};
use tokio::sync::{Notify, Semaphore};

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: Vec<u8>,
    pub at: Instant,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("webhook body is JSON")
    }

    /// Standard Webhooks verification: the signed content is `{id}.{timestamp}.{body}`, the
    /// key the base64 after `whsec_`, the header a space-separated list of `v1,<base64>`.
    pub fn verifies(&self, secret: &str) -> bool {
        let key = STANDARD
            .decode(secret.strip_prefix("whsec_").expect("whsec_ secret"))
            .expect("base64 secret");
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
        mac.update(format!("{}.{}.", self.id, self.timestamp).as_bytes());
        mac.update(&self.body);
        let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
        let now = Timestamp::now().micros() / 1_000_000;
        let ts: i64 = self.timestamp.parse().unwrap_or(0);
        (now - ts).abs() < 300 && self.signature.split(' ').any(|s| s == expected)
    }
}

/// How the receiver answers a path: a status, after an optional gate (a semaphore the test
/// adds permits to), failing the first `fail_first` requests with 500.
#[derive(Clone, Default)]
pub struct Mode {
    pub status: u16,
    pub fail_first: usize,
    pub gate: Option<Arc<Semaphore>>,
    pub redirect_to: Option<String>,
}

#[derive(Clone, Default)]
pub struct Receiver {
    pub base: String,
    got: Arc<Mutex<Vec<Received>>>,
    modes: Arc<Mutex<HashMap<String, Mode>>>,
    counts: Arc<Mutex<HashMap<String, usize>>>,
    changed: Arc<Notify>,
}

async fn receive(
    State(r): State<Receiver>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let h = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let mode = r.modes.lock().unwrap().get(&path).cloned().unwrap_or(Mode {
        status: 200,
        ..Default::default()
    });
    let n = {
        let mut c = r.counts.lock().unwrap();
        let e = c.entry(path.clone()).or_default();
        *e += 1;
        *e
    };
    if let Some(g) = &mode.gate {
        // Held until the test adds a permit (a slow endpoint, or one cut off by a kill).
        let _p = g.acquire().await;
    }
    r.got.lock().unwrap().push(Received {
        path: path.clone(),
        id: h("webhook-id"),
        timestamp: h("webhook-timestamp"),
        signature: h("webhook-signature"),
        body: body.to_vec(),
        at: Instant::now(),
    });
    r.changed.notify_waiters();
    if let Some(to) = mode.redirect_to {
        return (StatusCode::FOUND, [("location", to)]).into_response();
    }
    let status = if n <= mode.fail_first {
        500
    } else {
        mode.status
    };
    StatusCode::from_u16(status).unwrap().into_response()
}

impl Receiver {
    pub async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut r = Receiver {
            base: format!("http://{}", listener.local_addr().unwrap()),
            ..Default::default()
        };
        let app = axum::Router::new()
            .route("/hook/{path}", axum::routing::post(receive))
            .with_state(r.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        r.base.push_str("/hook");
        r
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.base)
    }

    pub fn set(&self, path: &str, mode: Mode) {
        self.modes.lock().unwrap().insert(path.to_string(), mode);
    }

    pub fn got(&self, path: &str) -> Vec<Received> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// Requests that reached `path` (answered or still held at its gate).
    pub fn arrived(&self, path: &str) -> usize {
        self.counts.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    /// Waits (bounded) until `cond` holds over the requests received so far.
    pub async fn wait_until(&self, what: &str, limit: Duration, cond: impl Fn(&Receiver) -> bool) {
        let deadline = Instant::now() + limit;
        loop {
            let changed = self.changed.notified();
            if cond(self) {
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!("receiver: timed out waiting for {what}");
            }
            // Woken by each request, and re-checked at least every 100 ms (requests held at
            // a gate count on arrival, before they notify).
            let _ = tokio::time::timeout(left.min(Duration::from_millis(100)), changed).await;
        }
    }
}

async fn create_endpoint(app: &TestApp, url: &str, events: Value) -> (String, String) {
    let (s, v) = status_json(
        app.post_json(
            "/v1/webhook-endpoints",
            &json!({"url": url, "events": events, "description": "test"}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let secret = v["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"), "{secret}");
    (v["id"].as_str().unwrap().to_string(), secret)
}

/// The attempts listed for an endpoint, once `n` are recorded (the receiver sees a request
/// just before the worker records its answer).
async fn wait_attempts(app: &TestApp, ep: &str, n: usize) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (s, v) = status_json(
            app.get(&format!("/v1/webhook-endpoints/{ep}/deliveries"))
                .await,
        )
        .await;
        assert_eq!(s, 200, "{v}");
        if v["num_items"].as_u64() >= Some(n as u64) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{n} attempts never recorded: {v}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn events(app: &TestApp, query: &str) -> Value {
    let (s, v) = status_json(app.get(&format!("/v1/events{query}")).await).await;
    assert_eq!(s, 200, "{v}");
    v
}

/// A call taken through its whole life through the store (as the engine writes it):
/// created, answered, two transcript turns, ended with a recording.
async fn call_life(app: &TestApp) -> CallId {
    let call = app.seed_call(app.org(), None, "+14155550100").await;
    let id = call.id;
    app.store.complete_dispatch(id).await.unwrap();
    app.store.call_ringing(id).await.unwrap();
    app.store.call_ringing(id).await.unwrap(); // a second 180: still one event
    let now = Timestamp::now();
    app.store
        .update_call(
            id,
            CallUpdate {
                status: Some(CallStatus::InProgress),
                started_at: Some(now),
                sip_code: Some(200),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    for n in 1..=2 {
        let turns: Vec<Value> = (0..n)
            .map(|i| json!({"speaker": if i % 2 == 0 {"agent"} else {"user"}, "text": format!("turn {i}")}))
            .collect();
        app.store
            .modify_call_details(id, move |d: &mut CallDetails| {
                d.transcript_formatted = Some(Value::Array(turns));
            })
            .await
            .unwrap();
    }
    app.store
        .update_call(
            id,
            CallUpdate {
                status: Some(CallStatus::Completed),
                ended_at: Some(Timestamp(now.micros() + 3_000_000)),
                duration_seconds: Some(3),
                end_reason: Some("customer-ended-call".into()),
                recording: Some(RecordingMeta {
                    key: format!("{}/{id}.mp3", app.org_id),
                    stereo_key: None,
                    duration_ms: Some(3000),
                    size_bytes: Some(1234),
                    sha256: None,
                    incomplete_reason: None,
                }),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    id
}

const LIFE: &[&str] = &[
    "call.created",
    "call.ringing",
    "call.answered",
    "call.transcript",
    "call.transcript",
    "call.ended",
    "recording.ready",
];

async fn events_are_logged_in_order_and_delivered_signed(db: Db) {
    let app = TestApp::spawn_holding_calls(db).await;
    let rx = Receiver::start().await;
    let (ep, secret) = create_endpoint(&app, &rx.url("all"), json!(["*"])).await;
    let (_, ended_secret) = create_endpoint(&app, &rx.url("ended"), json!(["call.ended"])).await;
    let id = call_life(&app).await;

    // The log: every change, in order, with the call's own sequence numbers.
    let v = events(&app, "").await;
    let types: Vec<&str> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, LIFE, "{v}");
    let list = v["events"].as_array().unwrap();
    for (i, e) in list.iter().enumerate() {
        assert_eq!(e["sequence"], json!(i + 1), "{e}");
        assert_eq!(e["call_id"], json!(id.to_string()));
        assert!(e["id"].as_str().unwrap().starts_with("evt_"));
        assert!(e["created_at"].is_string());
    }
    let ids: Vec<&str> = list.iter().map(|e| e["id"].as_str().unwrap()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "ids sort in creation order");
    // call.ended carries the whole call: final status, end reason, duration, SIP code,
    // the transcript.
    let ended = &list[5]["data"];
    assert_eq!(ended["id"], json!(id.to_string()));
    assert_eq!(ended["status"], "completed");
    assert_eq!(ended["end_reason"], "customer-ended-call");
    assert_eq!(ended["duration"], 3);
    assert_eq!(ended["sip_code"], 200);
    assert_eq!(ended["transcript_formatted"].as_array().unwrap().len(), 2);
    assert_eq!(list[4]["data"]["turn"]["text"], "turn 1");
    assert_eq!(list[4]["data"]["index"], 1);
    assert_eq!(
        list[6]["data"]["recording_url"],
        format!("/v1/call/recording/{id}.mp3")
    );

    // Keyset paging: pages of 3 from the cursor return everything once, in order.
    let mut seen = Vec::new();
    let mut after = String::new();
    loop {
        let v = events(&app, &format!("?limit=3{after}")).await;
        for e in v["events"].as_array().unwrap() {
            seen.push(e["id"].as_str().unwrap().to_string());
        }
        if v["has_more"] == false {
            // Caught up: the cursor is the last id, to resume from later.
            assert_eq!(v["cursor"].as_str(), seen.last().map(String::as_str));
            break;
        }
        after = format!("&after={}", v["cursor"].as_str().unwrap());
    }
    assert_eq!(seen, ids);
    // Filters.
    let v = events(&app, "?type=call.transcript,call.ended").await;
    assert_eq!(v["num_items"], 3, "{v}");
    let v = events(&app, &format!("?call_id={id}&after={}", ids[5])).await;
    assert_eq!(v["events"][0]["type"], "recording.ready");
    assert_eq!(v["num_items"], 1);
    let v = events(&app, &format!("?call_id={}", CallId::new())).await;
    assert_eq!(v["num_items"], 0);
    let (s, one) = status_json(app.get(&format!("/v1/events/{}", ids[0])).await).await;
    assert_eq!(
        (s.as_u16(), one["type"].clone()),
        (200, json!("call.created"))
    );

    // Delivery: each event once to the "*" endpoint, signed; only call.ended to the other.
    rx.wait_until("7 deliveries", Duration::from_secs(20), |r| {
        r.got("all").len() >= LIFE.len() && !r.got("ended").is_empty()
    })
    .await;
    let got = rx.got("all");
    let got_ids: Vec<&str> = got.iter().map(|r| r.id.as_str()).collect();
    let mut want = ids.clone();
    want.sort();
    let mut got_sorted = got_ids.clone();
    got_sorted.sort();
    assert_eq!(got_sorted, want, "each event id delivered once");
    for r in &got {
        assert!(r.verifies(&secret), "signature of {} does not verify", r.id);
        assert!(
            !r.verifies(&ended_secret),
            "another endpoint's secret verifies"
        );
        let b = r.json();
        let e = list.iter().find(|e| e["id"] == r.id.as_str()).unwrap();
        assert_eq!(b["type"], e["type"]);
        assert_eq!(b["data"], e["data"]);
        assert_eq!(b["timestamp"], e["created_at"]);
        assert_eq!(b["sequence"], e["sequence"]);
    }
    let ended_got = rx.got("ended");
    assert_eq!(ended_got.len(), 1);
    assert_eq!(ended_got[0].json()["type"], "call.ended");
    assert!(ended_got[0].verifies(&ended_secret));

    // The attempts are listed per endpoint.
    let v = wait_attempts(&app, &ep, LIFE.len()).await;
    let d = v["deliveries"].as_array().unwrap();
    assert_eq!(d.len(), LIFE.len(), "{v}");
    for a in d {
        assert_eq!(a["status_code"], 200, "{a}");
        assert!(a["response_time_ms"].as_i64().is_some());
        assert!(a["error"].is_null() && a["next_retry_at"].is_null());
    }

    // Retention: events older than the cutoff go.
    let n = app
        .store
        .prune_events(Timestamp(Timestamp::now().micros() + 1))
        .await
        .unwrap();
    assert_eq!(n, LIFE.len() as u64);
    assert_eq!(events(&app, "").await["num_items"], 0);
}

async fn endpoints_crud_and_validation(db: Db) {
    let app = TestApp::spawn_holding_calls(db).await;
    let rx = Receiver::start().await;
    let (id, secret) = create_endpoint(&app, &rx.url("a"), json!(["call.ended"])).await;
    let (s, v) = status_json(app.get(&format!("/v1/webhook-endpoints/{id}")).await).await;
    assert_eq!(s, 200);
    assert!(
        v.get("secret").is_none(),
        "secret shown only at creation: {v}"
    );
    assert_eq!(v["events"], json!(["call.ended"]));
    assert_eq!(v["enabled"], true);
    let (s, v) = status_json(
        app.patch_json(
            &format!("/v1/webhook-endpoints/{id}"),
            &json!({"url": rx.url("b"), "events": ["*"], "enabled": false}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (v["url"].clone(), v["events"].clone(), v["enabled"].clone()),
        (json!(rx.url("b")), json!(["*"]), json!(false))
    );
    let (s, v) = status_json(app.get("/v1/webhook-endpoints").await).await;
    assert_eq!((s.as_u16(), v["num_items"].clone()), (200, json!(1)));
    let (s, v) = status_json(
        app.post_json(
            &format!("/v1/webhook-endpoints/{id}/rotate-secret"),
            &json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 200);
    let new = v["secret"].as_str().unwrap();
    assert!(new.starts_with("whsec_") && new != secret);

    for (body, field) in [
        (json!({"events": ["*"]}), "url"),
        (
            json!({"url": "ftp://example.com/x", "events": ["*"]}),
            "http",
        ),
        (
            json!({"url": rx.url("a"), "events": ["call.exploded"]}),
            "call.exploded",
        ),
        (json!({"url": rx.url("a"), "events": []}), "events"),
        (json!({"url": rx.url("a"), "events": "*"}), "events"),
        (
            json!({"url": rx.url("a"), "events": ["*"], "colour": 1}),
            "colour",
        ),
    ] {
        let m = expect_error(app.post_json("/v1/webhook-endpoints", &body).await, 400).await;
        assert!(m.contains(field), "{body}: {m}");
    }
    let m = expect_error(app.get("/v1/events?after=nope").await, 400).await;
    assert!(m.contains("after"), "{m}");
    let m = expect_error(app.get("/v1/events?type=call.nope").await, 400).await;
    assert!(m.contains("call.nope"), "{m}");
    expect_error(app.get("/v1/events?call_id=12").await, 400).await;
    expect_error(app.get("/v1/events/evt_00000000000000ff").await, 404).await;
    expect_error(
        app.post_json(
            &format!("/v1/webhook-endpoints/{id}/deliveries/evt_00000000000000ff/retry"),
            &json!({}),
        )
        .await,
        404,
    )
    .await;
    let (s, _) = status_json(app.delete(&format!("/v1/webhook-endpoints/{id}")).await).await;
    assert_eq!(s, 200);
    expect_error(app.get(&format!("/v1/webhook-endpoints/{id}")).await, 404).await;
}

async fn failures_are_retried_and_a_slow_endpoint_delays_no_other(db: Db) {
    let app = TestApp::spawn_with(db, |c| {
        hold_calls(c);
        c.events.webhook_retry_schedule = vec![Duration::from_millis(200); 3];
        c.events.webhook_concurrency = 2;
        c.events.webhook_poll = Duration::from_millis(100);
    })
    .await;
    let rx = Receiver::start().await;
    let gate = Arc::new(Semaphore::new(0));
    rx.set(
        "slow",
        Mode {
            status: 200,
            gate: Some(gate.clone()),
            ..Default::default()
        },
    );
    rx.set(
        "flaky",
        Mode {
            status: 200,
            fail_first: 2,
            ..Default::default()
        },
    );
    let (_slow, _) = create_endpoint(&app, &rx.url("slow"), json!(["call.created"])).await;
    let (fast, fast_secret) = create_endpoint(&app, &rx.url("fast"), json!(["call.created"])).await;
    let (flaky, flaky_secret) =
        create_endpoint(&app, &rx.url("flaky"), json!(["call.ended"])).await;

    // 20 events while the slow endpoint holds every request it gets.
    for i in 0..20 {
        app.seed_call(app.org(), None, &format!("+1415555{:04}", 1000 + i))
            .await;
    }
    rx.wait_until("20 fast deliveries", Duration::from_secs(20), |r| {
        r.got("fast").len() >= 20
    })
    .await;
    // The slow endpoint has its two slots taken and nothing answered yet.
    assert!(rx.got("slow").is_empty());
    assert!(
        rx.arrived("slow") <= 2,
        "per-endpoint concurrency: {}",
        rx.arrived("slow")
    );
    assert!(rx.got("fast").iter().all(|r| r.verifies(&fast_secret)));
    let fast_ids: HashSet<String> = rx.got("fast").iter().map(|r| r.id.clone()).collect();
    assert_eq!(fast_ids.len(), 20, "each event once");
    // Released, the slow endpoint gets all 20 too.
    gate.add_permits(1000);
    rx.wait_until("20 slow deliveries", Duration::from_secs(30), |r| {
        r.got("slow").len() >= 20
    })
    .await;

    // A failing endpoint: two 500s, then success; the same webhook-id every time.
    let call = app.seed_call(app.org(), None, "+14155550199").await;
    app.store
        .update_call(
            call.id,
            CallUpdate {
                status: Some(CallStatus::NoAnswer),
                end_reason: Some("busy".into()),
                sip_code: Some(486),
                ended_at: Some(Timestamp::now()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    rx.wait_until(
        "3 attempts at the flaky endpoint",
        Duration::from_secs(20),
        |r| r.got("flaky").len() >= 3,
    )
    .await;
    let got = rx.got("flaky");
    assert!(got
        .iter()
        .all(|r| r.id == got[0].id && r.verifies(&flaky_secret)));
    assert_eq!(got[0].json()["data"]["sip_code"], 486);
    // Retries waited for the schedule (200 ms ± 20 %).
    assert!(got[1].at - got[0].at >= Duration::from_millis(150));
    let v = wait_attempts(&app, &flaky, 3).await;
    let codes: Vec<i64> = v["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status_code"].as_i64().unwrap())
        .collect();
    // Newest first.
    assert_eq!(codes, vec![200, 500, 500], "{v}");
    assert!(v["deliveries"][1]["next_retry_at"].is_string());
    assert_eq!(v["deliveries"][1]["error"], "HTTP 500");
    assert_eq!(
        app.store
            .count_deliveries(&flaky, "succeeded")
            .await
            .unwrap(),
        1
    );

    // Manual retry of a delivered event sends it again.
    let event_id = got[0].id.clone();
    let (s, _) = status_json(
        app.post_json(
            &format!("/v1/webhook-endpoints/{flaky}/deliveries/{event_id}/retry"),
            &json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 202);
    rx.wait_until("the retried delivery", Duration::from_secs(20), |r| {
        r.got("flaky").len() >= 4
    })
    .await;
    assert_eq!(rx.got("flaky")[3].id, event_id);
    // The fast endpoint also took the last call's call.created.
    wait_attempts(&app, &fast, 21).await;
    assert_eq!(
        app.store
            .count_deliveries(&fast, "succeeded")
            .await
            .unwrap(),
        21
    );
}

async fn an_endpoint_failing_too_long_is_disabled(db: Db) {
    let app = TestApp::spawn_with(db, |c| {
        hold_calls(c);
        c.events.webhook_retry_schedule = vec![Duration::from_millis(100); 20];
        c.events.webhook_disable_after = Duration::from_millis(500);
        c.events.webhook_poll = Duration::from_millis(50);
    })
    .await;
    let rx = Receiver::start().await;
    rx.set(
        "down",
        Mode {
            status: 503,
            ..Default::default()
        },
    );
    let (down, _) = create_endpoint(&app, &rx.url("down"), json!(["call.created"])).await;
    let (_, watch_secret) =
        create_endpoint(&app, &rx.url("watch"), json!(["webhook_endpoint.disabled"])).await;
    app.seed_call(app.org(), None, "+14155550123").await;
    rx.wait_until("the disabled event", Duration::from_secs(30), |r| {
        !r.got("watch").is_empty()
    })
    .await;
    let w = &rx.got("watch")[0];
    assert!(w.verifies(&watch_secret));
    assert_eq!(w.json()["type"], "webhook_endpoint.disabled");
    assert_eq!(w.json()["data"]["id"], down);
    let (_, v) = status_json(app.get(&format!("/v1/webhook-endpoints/{down}")).await).await;
    assert_eq!(v["enabled"], false, "{v}");
    assert!(v["disabled_reason"].as_str().unwrap().contains("failing"));
    let tries = rx.got("down").len();
    assert!(tries >= 2, "{tries}");
    let v = events(&app, "?type=webhook_endpoint.disabled").await;
    assert_eq!(v["num_items"], 1);
    // Disabled: new events are not sent to it.
    app.seed_call(app.org(), None, "+14155550124").await;
    let (_, v) = status_json(
        app.patch_json(
            &format!("/v1/webhook-endpoints/{down}"),
            &json!({"enabled": true}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (v["enabled"].clone(), v["disabled_reason"].clone()),
        (json!(true), Value::Null)
    );
    assert_eq!(rx.got("down").len(), tries);
}

async fn agents_webhook_url_gets_its_calls_events(db: Db) {
    let app = TestApp::spawn_holding_calls(db).await;
    let rx = Receiver::start().await;
    let (s, a) = status_json(
        app.post_json(
            "/v1/agents",
            &json!({"name": "hooked", "webhook_url": rx.url("agent")}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 201, "{a}");
    let agent_id = a["id"].as_str().unwrap().to_string();
    // Flyflow's upsert_agent names it `webhook`.
    let (s, f) = status_json(
        app.post_json(
            "/v1/agent",
            &json!({"name": "flyflow", "webhook": rx.url("flyflow")}),
        )
        .await,
    )
    .await;
    assert!(s.is_success(), "{f}");
    let (s, v) = status_json(
        app.get(&format!("/v1/agents/{agent_id}/webhook-secret"))
            .await,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let secret = v["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"));
    let agent = app
        .store
        .get_agent(app.org(), agent_id.parse().unwrap())
        .await
        .unwrap();
    let flyflow_agent = app
        .store
        .get_agent_by_name(app.org(), "flyflow")
        .await
        .unwrap();
    let call = app.seed_call(app.org(), Some(&agent), "+14155550140").await;
    app.seed_call(app.org(), Some(&flyflow_agent), "+14155550141")
        .await;
    app.seed_call(app.org(), None, "+14155550142").await; // no agent: not sent
    rx.wait_until("agent deliveries", Duration::from_secs(20), |r| {
        !r.got("agent").is_empty() && !r.got("flyflow").is_empty()
    })
    .await;
    let got = rx.got("agent");
    assert_eq!(got.len(), 1);
    assert!(got[0].verifies(&secret));
    assert_eq!(got[0].json()["data"]["id"], json!(call.id.to_string()));
    let (_, v) = status_json(
        app.get(&format!("/v1/agents/{}/webhook-secret", flyflow_agent.id))
            .await,
    )
    .await;
    assert!(rx.got("flyflow")[0].verifies(v["secret"].as_str().unwrap()));
    // The secret is stable until... always (read twice, same value).
    let (_, again) = status_json(
        app.get(&format!("/v1/agents/{agent_id}/webhook-secret"))
            .await,
    )
    .await;
    assert_eq!(again["secret"], json!(secret));
}

async fn tenants_never_see_each_others_events_or_endpoints(db: Db) {
    let app = TestApp::spawn_holding_calls(db).await;
    let rx = Receiver::start().await;
    let (_, key_b) = app.new_org("other").await;
    let (ep_a, _) = create_endpoint(&app, &rx.url("a"), json!(["*"])).await;
    let (s, v) = status_json(
        app.post_json_with_key(
            "/v1/webhook-endpoints",
            &json!({"url": rx.url("b"), "events": ["*"]}),
            &key_b,
        )
        .await,
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let id = call_life(&app).await;
    let a = events(&app, "").await;
    assert_eq!(a["num_items"], json!(LIFE.len()));
    let first = a["events"][0]["id"].as_str().unwrap().to_string();
    let (_, b) = status_json(app.get_with_key("/v1/events", &key_b).await).await;
    assert_eq!(b["num_items"], 0, "{b}");
    let (_, b) = status_json(
        app.get_with_key(&format!("/v1/events?call_id={id}"), &key_b)
            .await,
    )
    .await;
    assert_eq!(b["num_items"], 0, "{b}");
    expect_error(
        app.get_with_key(&format!("/v1/events/{first}"), &key_b)
            .await,
        404,
    )
    .await;
    let (_, l) = status_json(app.get_with_key("/v1/webhook-endpoints", &key_b).await).await;
    assert_eq!(l["num_items"], 1);
    assert_ne!(l["webhook_endpoints"][0]["id"], json!(ep_a));
    for path in [
        format!("/v1/webhook-endpoints/{ep_a}"),
        format!("/v1/webhook-endpoints/{ep_a}/deliveries"),
    ] {
        expect_error(app.get_with_key(&path, &key_b).await, 404).await;
    }
    expect_error(
        app.patch_json_with_key(
            &format!("/v1/webhook-endpoints/{ep_a}"),
            &json!({"enabled": false}),
            &key_b,
        )
        .await,
        404,
    )
    .await;
    expect_error(
        app.post_json_with_key(
            &format!("/v1/webhook-endpoints/{ep_a}/rotate-secret"),
            &json!({}),
            &key_b,
        )
        .await,
        404,
    )
    .await;
    expect_error(
        app.post_json_with_key(
            &format!("/v1/webhook-endpoints/{ep_a}/deliveries/{first}/retry"),
            &json!({}),
            &key_b,
        )
        .await,
        404,
    )
    .await;
    expect_error(
        app.delete_with_key(&format!("/v1/webhook-endpoints/{ep_a}"), &key_b)
            .await,
        404,
    )
    .await;
    rx.wait_until("org A's deliveries", Duration::from_secs(20), |r| {
        r.got("a").len() >= LIFE.len()
    })
    .await;
    assert!(
        rx.got("b").is_empty(),
        "org B's endpoint got org A's events"
    );
}

async fn private_addresses_are_refused_and_redirects_not_followed(db: Db) {
    let app = TestApp::spawn_with(db, |c| {
        hold_calls(c);
        c.events.webhook_allow_private = false;
        c.events.webhook_retry_schedule = vec![];
    })
    .await;
    for (url, why) in [
        ("http://127.0.0.1:9/x", "loopback"),
        ("http://localhost:9/x", "loopback"),
        ("http://10.0.0.8/x", "private"),
        ("http://169.254.169.254/latest/meta-data", "metadata"),
        ("http://[::1]/x", "loopback"),
        ("http://[fe80::1]/x", "link-local"),
    ] {
        let m = expect_error(
            app.post_json(
                "/v1/webhook-endpoints",
                &json!({"url": url, "events": ["*"]}),
            )
            .await,
            400,
        )
        .await;
        assert!(
            m.contains(why) && m.contains("--webhook-allow-private"),
            "{url}: {m}"
        );
        // An agent's webhook_url gets its calls' events: the same guard when it is saved,
        // through every route that sets it, and nothing is written.
        let m = expect_error(
            app.post_json("/v1/agents", &json!({"name": "ssrf", "webhook_url": url}))
                .await,
            400,
        )
        .await;
        assert!(m.contains("webhook_url") && m.contains(why), "{url}: {m}");
        let m = expect_error(
            app.post_json("/v1/agent", &json!({"name": "ssrf", "webhook": url}))
                .await,
            400,
        )
        .await;
        assert!(m.contains("webhook_url") && m.contains(why), "{url}: {m}");
    }
    let (s, agents) = status_json(app.get("/v1/agents").await).await;
    assert_eq!(
        (s.as_u16(), agents["num_items"].as_u64()),
        (200, Some(0)),
        "{agents}"
    );
    // A public address is accepted (an IP literal: no DNS needed), a private one is refused
    // on update too, and the stored URL stays as it was.
    let (s, agent) = status_json(
        app.post_json(
            "/v1/agents",
            &json!({"name": "public", "webhook_url": "https://93.184.216.34/hook"}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 201, "{agent}");
    let path = format!("/v1/agents/{}", agent["id"].as_str().unwrap());
    let m = expect_error(
        app.patch_json(&path, &json!({"webhook_url": "http://192.168.1.10/x"}))
            .await,
        400,
    )
    .await;
    assert!(m.contains("webhook_url") && m.contains("private"), "{m}");
    // The agent's webhook tools are called by the server too: same guard, per tool.
    let tool = |url: &str| {
        json!({"tools": [{"type": "end_call"}, {"type": "webhook", "name": "lookup",
            "description": "Look something up", "url": url,
            "parameters": {"type": "object", "properties": {}}}]})
    };
    let m = expect_error(
        app.patch_json(&path, &tool("http://169.254.169.254/latest"))
            .await,
        400,
    )
    .await;
    assert!(m.contains("tools[1].url"), "{m}");
    let (s, ok) = status_json(
        app.patch_json(&path, &tool("https://93.184.216.34/lookup"))
            .await,
    )
    .await;
    assert_eq!(s, 200, "{ok}");
    let (_, still) = status_json(app.get(&path).await).await;
    assert_eq!(
        still["webhook_url"], "https://93.184.216.34/hook",
        "{still}"
    );
    // Checked again at delivery: an endpoint stored with a loopback address (as if its
    // name had re-resolved) gets no request, and the attempt says why.
    let rx = Receiver::start().await;
    let (ep, _) = app
        .store
        .create_webhook_endpoint(app.org(), &rx.url("sneaky"), &["*".to_string()], None)
        .await
        .unwrap();
    let name_url = rx.url("named").replace("127.0.0.1", "localhost");
    let (named, _) = app
        .store
        .create_webhook_endpoint(app.org(), &name_url, &["*".to_string()], None)
        .await
        .unwrap();
    app.seed_call(app.org(), None, "+14155550160").await;
    for id in [&ep.id, &named.id] {
        let mut failed = 0;
        for _ in 0..200 {
            failed = app.store.count_deliveries(id, "failed").await.unwrap();
            if failed == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(failed, 1, "delivery to {id} did not fail");
        let (_, v) = status_json(
            app.get(&format!("/v1/webhook-endpoints/{id}/deliveries"))
                .await,
        )
        .await;
        let err = v["deliveries"][0]["error"]
            .as_str()
            .unwrap_or("")
            .to_string();
        assert!(err.contains("refused"), "{v}");
    }
    assert_eq!(rx.arrived("sneaky") + rx.arrived("named"), 0);
}

async fn redirects_are_not_followed(db: Db) {
    let app = TestApp::spawn_with(db, |c| {
        hold_calls(c);
        c.events.webhook_retry_schedule = vec![];
    })
    .await;
    let rx = Receiver::start().await;
    rx.set(
        "moved",
        Mode {
            status: 200,
            redirect_to: Some(rx.url("target")),
            ..Default::default()
        },
    );
    let (ep, _) = create_endpoint(&app, &rx.url("moved"), json!(["*"])).await;
    app.seed_call(app.org(), None, "+14155550170").await;
    rx.wait_until("the redirecting answer", Duration::from_secs(20), |r| {
        !r.got("moved").is_empty()
    })
    .await;
    let v = wait_attempts(&app, &ep, 1).await;
    assert_eq!(v["deliveries"][0]["status_code"], 302, "{v}");
    assert!(v["deliveries"][0]["error"]
        .as_str()
        .unwrap()
        .contains("redirect"));
    assert_eq!(rx.arrived("target"), 0);
}

both!(
    events_are_logged_in_order_and_delivered_signed,
    endpoints_crud_and_validation,
    failures_are_retried_and_a_slow_endpoint_delays_no_other,
    an_endpoint_failing_too_long_is_disabled,
    agents_webhook_url_gets_its_calls_events,
    tenants_never_see_each_others_events_or_endpoints,
    private_addresses_are_refused_and_redirects_not_followed,
    redirects_are_not_followed,
);

// ----- kill -9 in the middle of a burst -----

fn serve(db: &TestDb, http: &str) -> tokio::process::Child {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchboard"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("SWITCHBOARD_") {
            c.env_remove(k);
        }
    }
    c.env("RUST_LOG", "warn")
        .arg("serve")
        .args(db.cli_args())
        .args(["--listen", http, "--sip-listen", "127.0.0.1:0"])
        .args(["--engine-id", "kill-test", "--max-calls-per-org", "0"])
        .args(["--webhook-allow-private", "--webhook-poll", "100ms"])
        .args(["--webhook-retry-schedule", "200ms,200ms,200ms,200ms,200ms"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true);
    c.spawn().expect("start switchboard serve")
}

async fn wait_healthy(client: &reqwest::Client, base: &str) {
    for _ in 0..400 {
        if let Ok(r) = client.get(format!("{base}/healthz")).send().await {
            if r.status() == 200 {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("server at {base} never became healthy");
}

async fn deliveries_survive_kill_9_and_restart(db: Db) {
    let tdb = TestDb::new(db).await;
    let store = switchboard_store::Store::connect(
        &tdb.database_url
            .clone()
            .unwrap_or_else(|| switchboard_store::sqlite_url_for_dir(tdb.data_dir())),
        4,
    )
    .await
    .unwrap();
    let (org, _key) = store.create_org("kill").await.unwrap();
    let rx = Receiver::start().await;
    // The receiver holds every request until released: the server is killed with requests
    // in flight and most of the burst not yet sent.
    let gate = Arc::new(Semaphore::new(0));
    rx.set(
        "k",
        Mode {
            status: 200,
            gate: Some(gate.clone()),
            ..Default::default()
        },
    );
    let (_ep, secret) = store
        .create_webhook_endpoint(org.id, &rx.url("k"), &["*".to_string()], None)
        .await
        .unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let http = format!("127.0.0.1:{port}");
    let base = format!("http://{http}");
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut server = serve(&tdb, &http);
    wait_healthy(&client, &base).await;
    // A burst of 1,000 events, written by 4 writers beside the server (as another replica's
    // calls would be); the server is killed while they are still writing.
    const BURST: usize = 1000;
    let written = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (store, written) = (store.clone(), written.clone());
        writers.push(tokio::spawn(async move {
            for i in (w..BURST).step_by(4) {
                let new = switchboard_domain::NewCall {
                    org_id: org.id,
                    agent_id: None,
                    phone_number_id: None,
                    campaign_id: None,
                    call_type: switchboard_domain::CallType::Outbound,
                    client_number: switchboard_domain::PhoneNumber::parse(&format!(
                        "+1415556{:04}",
                        i
                    ))
                    .unwrap(),
                    agent_phone_number: None,
                    context: None,
                    metadata: None,
                    user_speaks_first: false,
                    ring_timeout_seconds: None,
                };
                store.create_call(new, None).await.unwrap();
                written.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }));
    }
    rx.wait_until("requests in flight", Duration::from_secs(30), |r| {
        r.arrived("k") >= 4
    })
    .await;
    for _ in 0..600 {
        if written.load(std::sync::atomic::Ordering::Relaxed) >= BURST / 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // SIGKILL: no graceful stop, no claim released.
    server.start_kill().unwrap();
    let _ = server.wait().await;
    let at_kill = written.load(std::sync::atomic::Ordering::Relaxed);
    gate.add_permits(100_000);
    let mut server = serve(&tdb, &http);
    wait_healthy(&client, &base).await;
    for w in writers {
        w.await.unwrap();
    }
    let mut want = HashSet::new();
    let mut after = None;
    loop {
        let page = store
            .list_events(
                org.id,
                &switchboard_store::EventQuery {
                    after,
                    limit: 500,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        want.extend(page.events.iter().map(|e| e.id()));
        after = page.events.last().map(|e| e.seq).or(after);
        if !page.has_more {
            break;
        }
    }
    assert_eq!(want.len(), BURST);
    // Not asserted (timing): normally the kill lands with most of the burst still unwritten.
    eprintln!("killed with {at_kill} of {BURST} events written");
    rx.wait_until(
        "every event after the restart",
        Duration::from_secs(120),
        |r| {
            let ids: HashSet<String> = r.got("k").iter().map(|x| x.id.clone()).collect();
            ids.len() >= BURST
        },
    )
    .await;
    let got = rx.got("k");
    let ids: HashSet<String> = got.iter().map(|x| x.id.clone()).collect();
    assert_eq!(ids, want, "every webhook-id delivered, none invented");
    assert!(got.iter().all(|r| r.verifies(&secret)));
    server.start_kill().unwrap();
    let _ = server.wait().await;
    store.close().await;
}

both!(deliveries_survive_kill_9_and_restart);
