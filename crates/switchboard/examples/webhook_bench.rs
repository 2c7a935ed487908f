//! Webhook delivery figures (issue 11), on the real server (`Application`, port 0) and a real
//! HTTP receiver in this process on loopback:
//!
//! 1. event → first delivery attempt: `--events` events, one at a time (each waits for its
//!    delivery), latency = arrival at the receiver − the event's `created_at` (taken inside
//!    the writing transaction, before its commit): p50, p99, max.
//! 2. sustained deliveries per second: a backlog of `--burst` events is written while the
//!    receiver holds the endpoint's first requests, then released; rate = burst / time to
//!    drain.
//!
//! `cargo run --release -p switchboard --example webhook_bench -- [--events 300] [--burst 2000]
//!  [--database-url postgres://…]` (default: SQLite in a temporary directory)

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switchboard::config::ServeConfig;
use switchboard::Application;
use switchboard_domain::{CallType, NewCall, OrgId, PhoneNumber, Timestamp};
use switchboard_store::{parse_event_id, Store};
use tokio::sync::{Notify, Semaphore};

#[derive(Clone)]
struct Rx {
    /// webhook-id → arrival (µs since the epoch).
    got: Arc<Mutex<HashMap<String, i64>>>,
    notify: Arc<Notify>,
    gate: Arc<Semaphore>,
}

async fn receive(State(rx): State<Rx>, headers: HeaderMap, _body: Bytes) -> &'static str {
    let at = Timestamp::now().micros();
    let _p = rx.gate.acquire().await;
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    rx.got.lock().unwrap().entry(id).or_insert(at);
    rx.notify.notify_waiters();
    "ok"
}

fn arg(name: &str) -> Option<String> {
    let a: Vec<String> = std::env::args().collect();
    a.iter()
        .position(|x| x == name)
        .and_then(|i| a.get(i + 1).cloned())
}

async fn new_call(store: &Store, org: OrgId, i: usize) -> anyhow::Result<()> {
    let new = NewCall {
        org_id: org,
        agent_id: None,
        phone_number_id: None,
        campaign_id: None,
        call_type: CallType::Outbound,
        client_number: PhoneNumber::parse(&format!("+1415{:07}", i % 10_000_000))
            .map_err(|e| anyhow::anyhow!(e.message))?,
        agent_phone_number: None,
        context: None,
        metadata: None,
        user_speaks_first: false,
        ring_timeout_seconds: None,
    };
    store.create_call(new, None).await?;
    Ok(())
}

async fn wait_count(rx: &Rx, n: usize) {
    loop {
        let w = rx.notify.notified();
        if rx.got.lock().unwrap().len() >= n {
            return;
        }
        let _ = tokio::time::timeout(Duration::from_millis(50), w).await;
    }
}

fn pct(v: &[f64], p: f64) -> f64 {
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let events: usize = arg("--events")
        .map(|v| v.parse())
        .transpose()?
        .unwrap_or(300);
    let burst: usize = arg("--burst")
        .map(|v| v.parse())
        .transpose()?
        .unwrap_or(2000);
    let dir = tempfile::tempdir()?;
    let mut cfg = ServeConfig::for_tests(dir.path().to_path_buf(), arg("--database-url"));
    // The engine places no call: the calls here only make events.
    cfg.telephony.max_calls_per_org = 0;
    cfg.db_pool = 16;
    let app = Application::build(&cfg).await?;
    let (org, _) = app.first_run_key.clone().expect("fresh store");
    let org: OrgId = org.parse().map_err(|_| anyhow::anyhow!("org id"))?;
    let store = app.store().clone();
    let backend = store.backend();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stop_rx.await;
    }));

    let rx = Rx {
        got: Arc::default(),
        notify: Arc::default(),
        gate: Arc::new(Semaphore::new(Semaphore::MAX_PERMITS)),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    let router = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(rx.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });
    store
        .create_webhook_endpoint(org, &url, &["*".to_string()], None)
        .await?;

    // 1. Latency, one event at a time.
    for i in 0..events {
        new_call(&store, org, i).await?;
        wait_count(&rx, i + 1).await;
    }
    let page = store
        .list_events(
            org,
            &switchboard_store::EventQuery {
                limit: events as u32,
                ..Default::default()
            },
        )
        .await?;
    let got = rx.got.lock().unwrap().clone();
    let mut lat: Vec<f64> = page
        .events
        .iter()
        .filter_map(|e| {
            got.get(&e.id())
                .map(|at| (at - e.created_at.micros()) as f64 / 1000.0)
        })
        .collect();
    lat.sort_by(f64::total_cmp);
    println!(
        "backend {:?}: event -> first attempt over {} events: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        backend,
        lat.len(),
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        lat.last().copied().unwrap_or(0.0)
    );

    // 2. Throughput: a held backlog, then released.
    let held = rx.gate.available_permits();
    rx.gate.forget_permits(held);
    let before = rx.got.lock().unwrap().len();
    let writers = 8;
    let per = burst / writers;
    let t_write = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per {
                new_call(&store, org, 1_000_000 + w * per + i).await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let write_s = t_write.elapsed().as_secs_f64();
    let total = per * writers;
    let t0 = Instant::now();
    rx.gate.add_permits(Semaphore::MAX_PERMITS / 2);
    wait_count(&rx, before + total).await;
    let drain = t0.elapsed().as_secs_f64();
    println!(
        "backend {backend:?}: {total} events written in {write_s:.2} s ({:.0} events/s, 8 writers); \
         backlog delivered in {drain:.2} s: {:.0} deliveries/s to one local endpoint",
        total as f64 / write_s,
        total as f64 / drain
    );
    let all: std::collections::HashSet<i64> = rx
        .got
        .lock()
        .unwrap()
        .keys()
        .filter_map(|k| parse_event_id(k))
        .collect();
    assert_eq!(all.len(), before + total, "every event delivered once");
    let _ = stop_tx.send(());
    let _ = server.await;
    Ok(())
}
