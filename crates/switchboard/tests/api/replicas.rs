//! Several engines on one database: each closes only the calls of engines that died or left,
//! never the calls another living engine carries.

use crate::common::{agent_with_number, dispatch};
use serde_json::json;
use std::time::Duration;
use switchboard::Application;
use switchboard_domain::{CallId, CallStatus, Timestamp};
use switchboard_store::CallUpdate;
use switchboard_testkit::{both, hold_calls, Db, TestApp};

fn replica(c: &mut switchboard::config::ServeConfig, id: &str) {
    hold_calls(c);
    c.telephony.engine_id = Some(id.into());
    c.telephony.engine_heartbeat = 1;
    c.telephony.engine_stale_after = 2;
}

/// A call taken off the queue and marked live, carried by `engine`.
async fn live_call(app: &TestApp, engine: &str) -> CallId {
    let v = dispatch(app, &json!({"from": "+15550007777", "to": "+14155550100"})).await;
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

async fn status(app: &TestApp, id: CallId) -> (String, serde_json::Value) {
    let v: serde_json::Value = app
        .get(&format!("/v1/call/{id}"))
        .await
        .json()
        .await
        .unwrap();
    (
        v["status"].as_str().unwrap_or("").to_string(),
        v["end_reason"].clone(),
    )
}

/// Polls (bounded: the sweep runs every second) until the call is closed.
async fn wait_closed(app: &TestApp, id: CallId) {
    for _ in 0..100 {
        let (st, reason) = status(app, id).await;
        if st == "failed" {
            assert_eq!(reason, "server_restarted");
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("call {id} of a dead engine was never closed");
}

async fn wait_two_heartbeats(app: &TestApp, engine: &str) {
    let mut last = Timestamp::now();
    let mut seen = 0;
    for _ in 0..100 {
        let at = app.store.engine_heartbeat_at(engine).await.unwrap();
        if let Some(at) = at.filter(|t| *t > last) {
            last = at;
            seen += 1;
            if seen == 2 {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("engine {engine} stopped beating");
}

async fn replicas_close_only_the_calls_of_dead_engines(db: Db) {
    let a = TestApp::spawn_with(db, |c| replica(c, "node-a")).await;
    // A second replica on the same database, running beside the first.
    let mut cfg = a.test_db().serve_config();
    replica(&mut cfg, "node-b");
    let b = Application::build(&cfg).await.unwrap();
    assert!(b.first_run_key.is_none(), "the store is shared, not fresh");
    let (stop_b, rx) = tokio::sync::oneshot::channel::<()>();
    let b_task = tokio::spawn(async move {
        b.run_until_stopped(async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });

    agent_with_number(&a, "+15550007777").await;
    let of_a = live_call(&a, "node-a").await;
    let of_b = live_call(&a, "node-b").await;
    // An engine that beat once and died: stale after 2 s.
    a.store.engine_heartbeat("node-dead").await.unwrap();
    let of_dead = live_call(&a, "node-dead").await;

    wait_closed(&a, of_dead).await;
    // Both living engines have swept since: each sweeps right after its heartbeat, so a
    // second heartbeat after this point means a whole sweep ran. Their calls are untouched.
    for engine in ["node-a", "node-b"] {
        wait_two_heartbeats(&a, engine).await;
    }
    assert_eq!(status(&a, of_a).await.0, "in_progress");
    assert_eq!(status(&a, of_b).await.0, "in_progress");

    // Replica B stops (leaves): what it carried is closed by A.
    let _ = stop_b.send(());
    b_task.await.unwrap();
    wait_closed(&a, of_b).await;
    assert_eq!(status(&a, of_a).await.0, "in_progress");
    a.stop().await;
}
both!(replicas_close_only_the_calls_of_dead_engines);
