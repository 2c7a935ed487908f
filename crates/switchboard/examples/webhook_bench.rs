//! Webhook delivery figures (issue 11), on the real server (`Application`, in this process)
//! and a real HTTP receiver in this process on loopback. Prints figures, asserts only that
//! nothing was lost.
//!
//! 1. **Event → first delivery attempt**: `--events` events, one at a time (each waits for
//!    its delivery); latency = arrival at the receiver − the event's `created_at` (taken
//!    inside the writing transaction, before its commit): p50, p99, max.
//! 2. **Sustained deliveries per second**: a backlog of `--burst` events is written (8
//!    writers) while the receiver holds the endpoint's first requests, then released; rate =
//!    burst / time to drain.
//! 3. **The same while `--calls` calls are live** (0 skips): a sipp UAS answers every call
//!    and streams a tone into it for `--call-seconds`; each call has an agent (greeting,
//!    VAD, recording). Once all are in progress, phase 2 runs again with `--calls-burst`
//!    events; when the calls have ended, every call's RTP counters (`audio_metrics`) are
//!    read back: late and lost packets must be 0.
//! 4. **kill -9 in a burst** (`--kill-burst`, 0 skips): the `switchboard` binary (`--bin`,
//!    default: beside this example's directory, i.e. `target/release/switchboard`) serves the
//!    same database; 8 writers here write the burst; once a third of it has been delivered
//!    the server is SIGKILLed (the writers go on), then started again. Counts: events written,
//!    distinct `webhook-id`s delivered, duplicates (at-least-once), ids delivered that were
//!    never written ("invented"), and the time from the restart to the last delivery.
//!
//! The events are `call.created` of calls written through the store and taken off the
//! dispatch queue at once (the engine dials nothing for them and no dispatcher churns on
//! them); the engine's sweep is slowed to an hour so that it does not close those calls.
//!
//! ```text
//! cargo build --release -p switchboard --bin switchboard --example webhook_bench
//! target/release/examples/webhook_bench [--events 300] [--burst 2000] [--calls 100]
//!   [--call-seconds 30] [--calls-burst 2000] [--kill-burst 1000] [--database-url postgres://…]
//! ```
//!
//! Ports (the bench's own range 18400-18499): sipp UAS 18400 (control 18450, media 18402),
//! the in-process server's RTP 41000-41999; the killed binary listens on a free port.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use futures::stream::{self, StreamExt};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switchboard::bench_calls::{cpu_time, raise_nofile, spawn_sipp_uas, write_tone, TONE_SCENARIO};
use switchboard::config::ServeConfig;
use switchboard::Application;
use switchboard_domain::{
    CallFilter, CallId, CallListQuery, CallStatus, CallType, NewCall, Order, OrderBy, OrgId, Page,
    PhoneNumber, Timestamp,
};
use switchboard_store::{CreateCallOutcome, EventQuery, Store};
use tokio::sync::{Notify, Semaphore};

#[derive(Clone)]
struct Rx {
    /// webhook-id → (first arrival in µs since the epoch, arrivals).
    got: Arc<Mutex<HashMap<String, (i64, usize)>>>,
    /// Every arrival, duplicates included.
    arrivals: Arc<AtomicUsize>,
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
    rx.got.lock().unwrap().entry(id).or_insert((at, 0)).1 += 1;
    rx.arrivals.fetch_add(1, Ordering::Relaxed);
    rx.notify.notify_waiters();
    "ok"
}

impl Rx {
    fn distinct(&self) -> usize {
        self.got.lock().unwrap().len()
    }

    /// Waits until `n` distinct ids have arrived; `false` after `limit`.
    async fn wait_distinct(&self, n: usize, limit: Duration) -> bool {
        let until = Instant::now() + limit;
        loop {
            let w = self.notify.notified();
            if self.distinct() >= n {
                return true;
            }
            if Instant::now() > until {
                return false;
            }
            let _ = tokio::time::timeout(Duration::from_millis(50), w).await;
        }
    }

    /// Holds every request from now on (in flight at the receiver).
    fn hold(&self) {
        let n = self.gate.available_permits();
        self.gate.forget_permits(n);
    }

    fn release(&self) {
        self.gate.add_permits(Semaphore::MAX_PERMITS / 2);
    }
}

fn arg(name: &str) -> Option<String> {
    let a: Vec<String> = std::env::args().collect();
    a.iter()
        .position(|x| x == name)
        .and_then(|i| a.get(i + 1).cloned())
}

fn num(name: &str, default: usize) -> anyhow::Result<usize> {
    Ok(arg(name).map(|v| v.parse()).transpose()?.unwrap_or(default))
}

/// One `call.created` event: a call written through the store, then taken off the queue so
/// nothing dials it.
async fn new_event(store: &Store, org: OrgId, i: usize) -> anyhow::Result<()> {
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
    let call = match store.create_call(new, None).await? {
        CreateCallOutcome::Created(c) | CreateCallOutcome::Replayed(c) => c,
    };
    store.complete_dispatch(call.id).await?;
    Ok(())
}

/// `n` events from 8 writers, numbered from `from`.
async fn write_burst(store: &Store, org: OrgId, from: usize, n: usize) -> anyhow::Result<()> {
    let writers = 8;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        let (lo, hi) = (from + n * w / writers, from + n * (w + 1) / writers);
        tasks.push(tokio::spawn(async move {
            for i in lo..hi {
                new_event(&store, org, i).await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

fn pct(v: &[f64], p: f64) -> f64 {
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// The last event's seq of `org` (the cursor for "events written after this point").
async fn last_seq(store: &Store, org: OrgId) -> anyhow::Result<Option<i64>> {
    let mut after = None;
    loop {
        let page = store
            .list_events(
                org,
                &EventQuery {
                    after,
                    limit: 1000,
                    ..Default::default()
                },
            )
            .await?;
        if let Some(e) = page.events.last() {
            after = Some(e.seq);
        }
        if !page.has_more {
            return Ok(after);
        }
    }
}

/// Every event id of `org` after `after`.
async fn event_ids_after(
    store: &Store,
    org: OrgId,
    mut after: Option<i64>,
) -> anyhow::Result<Vec<(String, i64)>> {
    let mut out = Vec::new();
    loop {
        let page = store
            .list_events(
                org,
                &EventQuery {
                    after,
                    limit: 1000,
                    ..Default::default()
                },
            )
            .await?;
        for e in &page.events {
            out.push((e.id(), e.created_at.micros()));
        }
        after = page.events.last().map(|e| e.seq).or(after);
        if !page.has_more {
            return Ok(out);
        }
    }
}

/// A held backlog of `n` events, released at once: (write s, drain s).
async fn backlog(
    rx: &Rx,
    store: &Store,
    org: OrgId,
    from: usize,
    n: usize,
) -> anyhow::Result<(f64, f64)> {
    rx.hold();
    let before = rx.distinct();
    let t_write = Instant::now();
    write_burst(store, org, from, n).await?;
    let write_s = t_write.elapsed().as_secs_f64();
    let t0 = Instant::now();
    rx.release();
    anyhow::ensure!(
        rx.wait_distinct(before + n, Duration::from_secs(600)).await,
        "backlog not delivered within 10 minutes"
    );
    Ok((write_s, t0.elapsed().as_secs_f64()))
}

async fn count_calls(store: &Store, org: OrgId, status: CallStatus) -> anyhow::Result<i64> {
    let q = CallListQuery {
        filter: CallFilter {
            status: Some(status),
            ..Default::default()
        },
        order_by: OrderBy::CreatedAt,
        order: Order::Desc,
        limit: 1,
        page: Page::After(None),
        with_details: false,
        with_total: true,
    };
    Ok(store.list_calls(org, &q).await?.total.unwrap_or(0))
}

struct Api {
    base: String,
    key: String,
    client: reqwest::Client,
}

impl Api {
    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .json(&body)
            .send()
            .await?;
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        anyhow::ensure!(status.is_success(), "POST {path}: {status}: {v}");
        Ok(v)
    }
}

/// Phase 3: `n` live calls (organization of their own, cap raised for it), a backlog burst
/// while they run, then their RTP counters.
/// Phase 3's size: `n` calls of `seconds`, and a backlog of `burst` events while they run.
struct LiveCalls {
    n: usize,
    seconds: u64,
    burst: usize,
}

async fn with_live_calls(
    rx: &Rx,
    store: &Store,
    events_org: OrgId,
    base: &str,
    data_dir: &Path,
    size: LiveCalls,
) -> anyhow::Result<()> {
    let LiveCalls { n, seconds, burst } = size;
    let nofile = raise_nofile();
    if nofile < (n as u64) * 6 + 256 {
        eprintln!("warning: open-files limit {nofile} may be too low for {n} calls");
    }
    let (org, key) = store.create_org("calls").await?;
    store
        .set_org_max_concurrent_calls(org.id, Some(n as i64 * 2 + 10))
        .await?;
    let api = Api {
        base: base.to_string(),
        key,
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .no_proxy()
            .build()?,
    };
    let sipp_port = 18400;
    let agent = api
        .post(
            "/v1/agents",
            json!({"name": "Bench", "initial_message": "Hello.", "max_duration_seconds": seconds + 120}),
        )
        .await?;
    let trunk = api
        .post(
            "/v1/sip-trunks",
            json!({"name": "sipp", "host": "127.0.0.1", "port": sipp_port, "transport": "udp"}),
        )
        .await?;
    let from = "+15550001111";
    api.post(
        "/v1/phone-numbers",
        json!({"phone_number": from, "agent_id": agent["id"], "trunk_id": trunk["id"]}),
    )
    .await?;
    let dir = data_dir.join("bench-calls");
    std::fs::create_dir_all(&dir)?;
    let tone = dir.join("tone.ulaw");
    write_tone(&tone, seconds)?;
    let scen = dir.join("uas.xml");
    std::fs::write(
        &scen,
        TONE_SCENARIO
            .replace("TONE_FILE", &tone.display().to_string())
            .replace("HOLD_MS", &(seconds * 1000).to_string()),
    )?;
    let (mut sipp, _stat) = spawn_sipp_uas(&scen, &dir, sipp_port, 18402, n, seconds)?;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let ramp = Instant::now();
    let ids: Vec<CallId> = stream::iter(0..n)
        .map(|i| {
            let api = &api;
            async move {
                let to = format!("+1415{:07}", 5_000_000 + i);
                let v = api
                    .post("/v1/call", json!({"from": from, "to": to}))
                    .await?;
                anyhow::Ok(v["id"].as_str().unwrap_or("").parse::<CallId>()?)
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    loop {
        let up = count_calls(store, org.id, CallStatus::InProgress).await?;
        if up as usize >= n {
            break;
        }
        anyhow::ensure!(
            ramp.elapsed() < Duration::from_secs(120),
            "only {up} of {n} calls in progress after 120 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ramp_s = ramp.elapsed().as_secs_f64();
    // After the greetings, as bench-calls does.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (cpu0, t0) = (cpu_time(), Instant::now());
    let (write_s, drain_s) = backlog(rx, store, events_org, 3_000_000, burst).await?;
    let cores = (cpu_time() - cpu0).as_secs_f64() / t0.elapsed().as_secs_f64();
    let still = count_calls(store, org.id, CallStatus::InProgress).await?;
    println!(
        "with {n} live calls (all up after {ramp_s:.1} s): {burst} events written in {write_s:.2} s, \
         backlog delivered in {drain_s:.2} s: {:.0} deliveries/s; {still} calls still live at the end \
         of the drain; process CPU {cores:.2} cores; load {}",
        burst as f64 / drain_s,
        loadavg()
    );
    if (still as usize) < n {
        println!("  warning: some calls ended before the drain did: raise --call-seconds");
    }

    // The calls end (sipp's BYE); read the engine's counters back.
    let until = Instant::now() + Duration::from_secs(seconds + 120);
    while count_calls(store, org.id, CallStatus::InProgress).await?
        + count_calls(store, org.id, CallStatus::Dialing).await?
        > 0
    {
        anyhow::ensure!(
            Instant::now() < until,
            "calls still live long after their end"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(30), sipp.wait()).await;
    let _ = sipp.kill().await;
    let (mut with_metrics, mut completed, mut late, mut lost, mut calls_with_late) =
        (0usize, 0usize, 0u64, 0u64, 0usize);
    let (mut received, mut jitter_max) = (0u64, 0f64);
    for id in &ids {
        let call = store.get_call(org.id, *id, true).await?;
        completed += usize::from(call.status == CallStatus::Completed);
        let Some(m) = call.details.and_then(|d| d.audio_metrics) else {
            continue;
        };
        let u = |k: &str| m[k].as_u64().unwrap_or(0);
        with_metrics += 1;
        late += u("late");
        lost += u("lost");
        received += u("packets_received");
        calls_with_late += usize::from(u("late") > 0);
        jitter_max = jitter_max.max(m["jitter_ms"].as_f64().unwrap_or(0.0));
    }
    println!(
        "  the {n} calls: {completed} completed, {with_metrics} with RTP counters; packets received \
         {received} (expected about {}), late {late} ({calls_with_late} calls with any), lost {lost}, \
         max jitter {jitter_max:.1} ms",
        n as u64 * seconds * 50
    );
    Ok(())
}

/// Phase 4: the binary killed with SIGKILL in the middle of a burst, then restarted.
async fn kill_in_burst(
    rx: &Rx,
    store: &Store,
    org: OrgId,
    bin: &Path,
    data_dir: &Path,
    database_url: Option<&str>,
    n: usize,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        bin.is_file(),
        "{} not found: cargo build --release -p switchboard --bin switchboard (or pass --bin)",
        bin.display()
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let http = format!("127.0.0.1:{port}");
    let serve = || {
        let mut c = tokio::process::Command::new(bin);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("SWITCHBOARD_") {
                c.env_remove(k);
            }
        }
        c.env("RUST_LOG", "error")
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", &http, "--sip-listen", "127.0.0.1:0"])
            .args(["--engine-id", "bench-kill", "--max-calls-per-org", "0"])
            .args(["--engine-heartbeat", "3600", "--engine-stale-after", "7200"])
            .arg("--webhook-allow-private")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true);
        if let Some(u) = database_url {
            c.args(["--database-url", u]);
        }
        c.spawn()
    };
    let client = reqwest::Client::builder().no_proxy().build()?;
    let healthy = |client: reqwest::Client, base: String| async move {
        for _ in 0..600 {
            if let Ok(r) = client.get(format!("{base}/healthz")).send().await {
                if r.status() == 200 {
                    return true;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    };
    let base = format!("http://{http}");
    let before_seq = last_seq(store, org).await?;
    let before_ids: HashSet<String> = rx.got.lock().unwrap().keys().cloned().collect();
    let arrivals0 = rx.arrivals.load(Ordering::Relaxed);
    let mut server = serve()?;
    anyhow::ensure!(
        healthy(client.clone(), base.clone()).await,
        "server never became healthy"
    );

    let writer = {
        let store = store.clone();
        tokio::spawn(async move { write_burst(&store, org, 4_000_000, n).await })
    };
    // Kill once a third of the burst has been delivered, with the writers still going.
    let kill_at = n / 3;
    let until = Instant::now() + Duration::from_secs(120);
    while rx.arrivals.load(Ordering::Relaxed) - arrivals0 < kill_at {
        anyhow::ensure!(Instant::now() < until, "deliveries never started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.start_kill()?;
    let _ = server.wait().await;
    let delivered_at_kill = rx.arrivals.load(Ordering::Relaxed) - arrivals0;
    let writer_done_at_kill = writer.is_finished();
    let restart = Instant::now();
    let mut server = serve()?;
    anyhow::ensure!(
        healthy(client.clone(), base).await,
        "server never came back"
    );
    writer.await??;
    let written = event_ids_after(store, org, before_seq).await?;
    let want: HashSet<String> = written.iter().map(|(id, _)| id.clone()).collect();
    let all = rx
        .wait_distinct(before_ids.len() + want.len(), Duration::from_secs(300))
        .await;
    let after_restart = restart.elapsed().as_secs_f64();
    let got = rx.got.lock().unwrap().clone();
    let new_ids: HashSet<String> = got
        .keys()
        .filter(|k| !before_ids.contains(*k))
        .cloned()
        .collect();
    let invented = new_ids.difference(&want).count();
    let missing = want.difference(&new_ids).count();
    let arrivals = rx.arrivals.load(Ordering::Relaxed) - arrivals0;
    let duplicates = arrivals - new_ids.len();
    println!(
        "kill -9 in a burst of {n} events: killed after {delivered_at_kill} deliveries (writers {}); \
         after the restart: {} of {} written events delivered ({missing} missing), {invented} invented, \
         {duplicates} delivered twice or more (at least once), last one {after_restart:.1} s after the restart{}",
        if writer_done_at_kill { "done" } else { "still writing" },
        new_ids.len() - invented,
        want.len(),
        if all { "" } else { " (TIMED OUT)" }
    );
    server.start_kill()?;
    let _ = server.wait().await;
    anyhow::ensure!(missing == 0 && invented == 0, "events lost or invented");
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let events = num("--events", 300)?;
    let burst = num("--burst", 2000)?;
    let calls = num("--calls", 100)?;
    let call_seconds = num("--call-seconds", 30)? as u64;
    let calls_burst = num("--calls-burst", 2000)?;
    let kill_burst = num("--kill-burst", 1000)?;
    let database_url = arg("--database-url");
    let bin = match arg("--bin") {
        Some(b) => PathBuf::from(b),
        // target/<profile>/examples/webhook_bench → target/<profile>/switchboard
        None => std::env::current_exe()?
            .parent()
            .and_then(|p| p.parent())
            .map(|p| p.join("switchboard"))
            .unwrap_or_default(),
    };
    let dir = tempfile::tempdir()?;
    let mut cfg = ServeConfig::for_tests(dir.path().to_path_buf(), database_url.clone());
    // The event-only calls are never dialed (cap 0; the live calls' organization has a cap of
    // its own) nor swept while the bench runs.
    cfg.telephony.max_calls_per_org = 0;
    cfg.telephony.engine_heartbeat = 3600;
    cfg.telephony.engine_stale_after = 7200;
    cfg.telephony.rtp_ports = (41000, 41999);
    cfg.db_pool = 16;
    let app = Application::build(&cfg).await?;
    let (org, _) = app.first_run_key.clone().expect("fresh store");
    let org: OrgId = org.parse().map_err(|_| anyhow::anyhow!("org id"))?;
    let store = app.store().clone();
    let backend = store.backend();
    let base = format!("http://{}", app.local_addr());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stop_rx.await;
    }));

    let rx = Rx {
        got: Arc::default(),
        arrivals: Arc::default(),
        notify: Arc::default(),
        gate: Arc::new(Semaphore::new(Semaphore::MAX_PERMITS / 2)),
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
    println!("backend {backend:?}, load before {}", loadavg());

    // 1. Latency, one event at a time.
    for i in 0..events {
        new_event(&store, org, i).await?;
        anyhow::ensure!(
            rx.wait_distinct(i + 1, Duration::from_secs(30)).await,
            "event {i} not delivered within 30 s"
        );
    }
    let written = event_ids_after(&store, org, None).await?;
    let got = rx.got.lock().unwrap().clone();
    let mut lat: Vec<f64> = written
        .iter()
        .filter_map(|(id, created)| got.get(id).map(|(at, _)| (at - created) as f64 / 1000.0))
        .collect();
    lat.sort_by(f64::total_cmp);
    println!(
        "event -> first attempt over {} events: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        lat.len(),
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        lat.last().copied().unwrap_or(0.0)
    );

    // 2. Throughput: a held backlog, then released.
    if burst > 0 {
        let (write_s, drain_s) = backlog(&rx, &store, org, 1_000_000, burst).await?;
        println!(
            "{burst} events written in {write_s:.2} s ({:.0} events/s, 8 writers); backlog \
             delivered in {drain_s:.2} s: {:.0} deliveries/s to one local endpoint",
            burst as f64 / write_s,
            burst as f64 / drain_s
        );
    }

    // 3. The same with live calls.
    if calls > 0 {
        let size = LiveCalls {
            n: calls,
            seconds: call_seconds,
            burst: calls_burst,
        };
        with_live_calls(&rx, &store, org, &base, dir.path(), size).await?;
    }
    let _ = stop_tx.send(());
    server.await??;

    // 4. kill -9 of the binary in a burst. The in-process server closed its store; the
    // writers here get one of their own (rendering events as the server does).
    let store = Store::connect(
        &database_url
            .clone()
            .unwrap_or_else(|| switchboard_store::sqlite_url_for_dir(dir.path())),
        8,
    )
    .await?;
    switchboard_api::install_event_renderer(&store, None);
    if kill_burst > 0 {
        kill_in_burst(
            &rx,
            &store,
            org,
            &bin,
            dir.path(),
            database_url.as_deref(),
            kill_burst,
        )
        .await?;
    }
    let arrivals = rx.arrivals.load(Ordering::Relaxed);
    let distinct = rx.distinct();
    println!("all phases: {arrivals} requests for {distinct} distinct events");
    store.close().await;
    Ok(())
}
