//! Call control across replicas: two live servers on one database. A call live on server A is
//! hung up, transferred and deleted through server B's API, and the far end (a real sipp)
//! sees the BYE or the REFER; a call whose server is gone or silent gets a 503, and nothing
//! is done to it.
//!
//! Fixed sipp ports (see README): SIP 18300-18309 (PostgreSQL 18300-18302, SQLite
//! 18303-18305), media 18320 + 4n, control 18360 + n.

use crate::common::{agent_with_number, dispatch};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use switchboard::config::ServeConfig;
use switchboard::Application;
use switchboard_domain::{CallId, CallStatus, Timestamp};
use switchboard_store::CallUpdate;
use switchboard_testkit::{both, expect_error, status_json, Db, TestApp};

#[path = "../live/sipp.rs"]
mod live_sipp;
use live_sipp::Sipp;

/// sipp on SIP `port` (18300-18309), media 18320 + 4n, control 18360 + n.
fn sipp(scenario: &Path, port: u16) -> Sipp {
    let n = port - 18300;
    Sipp::spawn_ports(scenario, port, 18320 + n * 4, 18360 + n, &[])
}

/// A replica's settings: its own engine id; heartbeats far apart, so no sweep closes the
/// test's seeded calls of "dead" engines while it runs.
fn replica(c: &mut ServeConfig, id: &str) {
    c.telephony.engine_id = Some(id.into());
    c.telephony.engine_heartbeat = 60;
    c.telephony.engine_stale_after = 120;
}

/// A second server on A's database and data directory (shared recordings folder).
struct ServerB {
    base: String,
    key: String,
    client: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl ServerB {
    async fn start(a: &TestApp, configure: impl FnOnce(&mut ServeConfig)) -> ServerB {
        let mut cfg = a.test_db().serve_config();
        configure(&mut cfg);
        let app = Application::build(&cfg).await.unwrap();
        assert!(
            app.first_run_key.is_none(),
            "the store is shared, not fresh"
        );
        let base = format!("http://{}", app.local_addr());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            app.run_until_stopped(async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        ServerB {
            base,
            key: a.api_key.clone(),
            client: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            stop: Some(tx),
            task: Some(task),
        }
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key)
    }

    async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.req(reqwest::Method::POST, path)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn delete(&self, path: &str) -> reqwest::Response {
        self.req(reqwest::Method::DELETE, path)
            .send()
            .await
            .unwrap()
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(30), t)
                .await
                .expect("server B did not stop")
                .unwrap();
        }
    }
}

async fn call_json(app: &TestApp, id: &str) -> (u16, Value) {
    let (s, v) = status_json(app.get(&format!("/v1/call/{id}")).await).await;
    (s.as_u16(), v)
}

/// Polls (bounded) until the call has left `dialing`/`in_progress`.
async fn wait_final(app: &TestApp, id: &str) -> Value {
    for _ in 0..300 {
        let (_, c) = call_json(app, id).await;
        if !matches!(c["status"].as_str(), Some("dialing" | "in_progress")) {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("call {id} never ended");
}

async fn wait_in_progress(app: &TestApp, id: &str) {
    for _ in 0..300 {
        let (_, c) = call_json(app, id).await;
        match c["status"].as_str() {
            Some("in_progress") => return,
            Some("dialing") => tokio::time::sleep(Duration::from_millis(50)).await,
            _ => panic!("call {id} did not get answered: {c}"),
        }
    }
    panic!("call {id} was never answered");
}

/// Every file under `dir` whose name holds `id`, with its size.
fn files_of(dir: &Path, id: &str) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else if p.file_name().unwrap().to_string_lossy().contains(id) {
                out.push((p.clone(), e.metadata().unwrap().len()));
            }
        }
    }
    out
}

fn scenarios() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests")
}

/// A trunk to sipp on `port` with a caller-ID number of its own, bound to `agent`; the
/// number to dispatch from.
async fn trunk_to(app: &TestApp, agent: &str, port: u16, number: &str) -> String {
    let (s, trunk) = status_json(
        app.post_json(
            "/v1/sip-trunks",
            &json!({"name": format!("sipp {port}"), "host": "127.0.0.1", "port": port, "transport": "udp"}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 201, "{trunk}");
    let (s, num) = status_json(
        app.post_json(
            "/v1/phone-numbers",
            &json!({"phone_number": number, "agent_id": agent, "trunk_id": trunk["id"]}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 201, "{num}");
    number.to_string()
}

async fn calls_live_on_one_replica_are_controlled_through_another(db: Db) {
    let base: u16 = match db {
        Db::Postgres => 18300,
        Db::Sqlite => 18303,
    };
    let a = TestApp::spawn_with(db, |c| replica(c, "node-a")).await;
    let (s, agent) = status_json(
        a.post_json(
            "/v1/agents",
            &json!({"name": "Agent", "initial_message": "Hello", "max_duration_seconds": 60}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 201, "{agent}");
    let agent = agent["id"].as_str().unwrap().to_string();

    // Three far ends: one waits for our BYE (hang-up), one expects a REFER to the number
    // given, addressed to its own trunk, then a BYE (transfer), one waits for a BYE (delete).
    let tmp = tempfile::tempdir().unwrap();
    let refer = std::fs::read_to_string(scenarios().join("peers/uas_refer.xml"))
        .unwrap()
        .replace("16813", &(base + 1).to_string());
    let refer_path = tmp.path().join("uas_refer.xml");
    std::fs::write(&refer_path, refer).unwrap();
    let wait_bye = scenarios().join("scenarios/uas_answer_wait_bye.xml");
    let sipp_hangup = sipp(&wait_bye, base);
    let sipp_transfer = sipp(&refer_path, base + 1);
    let sipp_delete = sipp(&wait_bye, base + 2);
    let mut ids = Vec::new();
    for (i, port) in [base, base + 1, base + 2].into_iter().enumerate() {
        let from = trunk_to(
            &a,
            &agent,
            port,
            &format!("+1555{:07}", u32::from(port) * 10 + i as u32),
        )
        .await;
        let v = dispatch(&a, &json!({"from": from, "to": "+14155550123"})).await;
        ids.push(v["id"].as_str().unwrap().to_string());
    }
    // Only A runs yet, so A dials all three: they are A's live calls.
    for id in &ids {
        wait_in_progress(&a, id).await;
        let owner = a.store.call_engine(id.parse().unwrap()).await.unwrap();
        assert_eq!(owner.as_deref(), Some("node-a"));
    }

    let b = ServerB::start(&a, |c| replica(c, "node-b")).await;

    // Hang-up through B: A's call gets our BYE.
    let r = b
        .post(&format!("/v1/call/{}/hangup", ids[0]), json!({}))
        .await;
    let (s, v) = status_json(r).await;
    assert_eq!(s, 202, "{v}");
    assert_eq!(sipp_hangup.finish().await, 0, "sipp did not get the BYE");
    let done = wait_final(&a, &ids[0]).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["end_reason"], "agent-ended-call", "{done}");
    // Ended now: B says so like A would.
    let r = b
        .post(&format!("/v1/call/{}/hangup", ids[0]), json!({}))
        .await;
    expect_error(r, 409).await;

    // Transfer through B: a bad target is refused by B itself, a good one reaches A's call,
    // whose far end sees the REFER to the number at its own trunk (not at B's anything).
    let r = b
        .post(
            &format!("/v1/call/{}/transfer", ids[1]),
            json!({"to": "not a number"}),
        )
        .await;
    expect_error(r, 400).await;
    let r = b
        .post(
            &format!("/v1/call/{}/transfer", ids[1]),
            json!({"to": "+15550009999"}),
        )
        .await;
    let (s, v) = status_json(r).await;
    assert_eq!(s, 202, "{v}");
    assert_eq!(
        sipp_transfer.finish().await,
        0,
        "sipp did not see the expected REFER and BYE"
    );
    let done = wait_final(&a, &ids[1]).await;
    assert_eq!(done["status"], "transferred", "{done}");

    // Delete through B: A hangs up, waits for its recorder, and B erases the call and the
    // files A wrote (one data directory, as replicas share their recordings store).
    let data = a.data_dir.clone();
    assert!(
        !files_of(&data, &ids[2]).is_empty(),
        "no recording written during the call"
    );
    let r = b.delete(&format!("/v1/call/{}", ids[2])).await;
    let (s, v) = status_json(r).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["deleted"], true);
    assert_eq!(sipp_delete.finish().await, 0, "sipp did not get the BYE");
    let (s, _) = call_json(&a, &ids[2]).await;
    assert_eq!(s, 404);
    assert_eq!(files_of(&data, &ids[2]), vec![], "recording files left");

    // Every command was answered and cleaned up by its requester.
    assert_eq!(a.store.call_command_count().await.unwrap(), 0);
    b.stop().await;
    a.stop().await;
}
both!(calls_live_on_one_replica_are_controlled_through_another);

/// A call taken off the queue and marked live, carried by `engine` (seeded: no SIP).
async fn live_call(app: &TestApp, from: &str, engine: &str) -> CallId {
    let v = dispatch(app, &json!({"from": from, "to": "+14155550100"})).await;
    let id: CallId = v["id"].as_str().unwrap().parse().unwrap();
    app.store.complete_dispatch(id).await.unwrap();
    app.store.set_call_engine(id, engine).await.unwrap();
    let u = CallUpdate {
        status: Some(CallStatus::InProgress),
        started_at: Some(Timestamp::now()),
        ..Default::default()
    };
    app.store.update_call(id, u).await.unwrap();
    id
}

async fn expect_503(r: reqwest::Response) -> String {
    assert!(
        r.headers().get("retry-after").is_some(),
        "503 without Retry-After"
    );
    expect_error(r, 503).await
}

/// The engine carrying a call has left (or its heartbeat is stale): hang-up, transfer and
/// delete answer 503 at once and touch nothing. An engine that beats but does not serve its
/// commands: 503 after the bounded wait, and the command is withdrawn. A call recorded as
/// this engine's that it does not carry is not live: 409.
async fn unreachable_replicas_answer_503(db: Db) {
    let app = TestApp::spawn_with(db, |c| {
        switchboard_testkit::hold_calls(c);
        replica(c, "node-b");
    })
    .await;
    let (_, from) = agent_with_number(&app, "+15550007777").await;

    let gone = live_call(&app, &from, "node-gone").await;
    let t = Instant::now();
    let msg = expect_503(
        app.post_json(&format!("/v1/call/{gone}/hangup"), &json!({}))
            .await,
    )
    .await;
    assert!(msg.contains("stopped"), "{msg}");
    expect_503(
        app.post_json(
            &format!("/v1/call/{gone}/transfer"),
            &json!({"to": "+15550009999"}),
        )
        .await,
    )
    .await;
    expect_503(app.delete(&format!("/v1/call/{gone}")).await).await;
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "a gone engine is not waited for"
    );
    let (s, v) = call_json(&app, &gone.to_string()).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("in_progress")), "{v}");
    assert_eq!(app.store.call_command_count().await.unwrap(), 0);

    // Alive by its heartbeat, but nobody serves its commands.
    app.store.engine_heartbeat("node-silent").await.unwrap();
    let silent = live_call(&app, &from, "node-silent").await;
    let t = Instant::now();
    let (hangup, transfer, delete) = (
        format!("/v1/call/{silent}/hangup"),
        format!("/v1/call/{silent}/transfer"),
        format!("/v1/call/{silent}"),
    );
    let (empty, target) = (json!({}), json!({"to": "+15550009999"}));
    let (h, tr, d) = tokio::join!(
        app.post_json(&hangup, &empty),
        app.post_json(&transfer, &target),
        app.delete(&delete),
    );
    let waited = t.elapsed();
    for r in [h, tr, d] {
        let msg = expect_503(r).await;
        assert!(msg.contains("did not answer"), "{msg}");
    }
    assert!(
        waited >= Duration::from_secs(5) && waited < Duration::from_secs(12),
        "bounded wait of 5 s, took {waited:?}"
    );
    let (s, v) = call_json(&app, &silent.to_string()).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("in_progress")), "{v}");
    // Withdrawn: the silent engine will never act on them later.
    assert_eq!(app.store.call_command_count().await.unwrap(), 0);
    assert!(app
        .store
        .pending_call_commands("node-silent")
        .await
        .unwrap()
        .is_empty());

    // Recorded as this engine's own, but not in its live table.
    let mine = live_call(&app, &from, "node-b").await;
    let r = app
        .post_json(&format!("/v1/call/{mine}/hangup"), &json!({}))
        .await;
    expect_error(r, 409).await;
    app.stop().await;
}
both!(unreachable_replicas_answer_503);
