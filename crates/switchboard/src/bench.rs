//! `switchboard bench`: seeds a database with many calls, starts the real server in-process on
//! port 0 and measures the calls API over real HTTP, beside the same queries run in-process
//! through the store (decoded into calls) and as the store's raw SQL (rows fetched, not
//! decoded). Prints a markdown table; asserts nothing.

use crate::config::ServeConfig;
use crate::Application;
use anyhow::Context;
use clap::Args;
use futures::stream::{self, StreamExt};
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use switchboard_domain::*;
use switchboard_store::{decode_cursor, BenchOrg, BenchSeedConfig, Store};

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Calls to seed (spread over the organizations).
    #[arg(long, default_value_t = 1_000_000)]
    pub calls: u64,
    /// Organizations to spread the calls over.
    #[arg(long, default_value_t = 4)]
    pub orgs: u32,
    /// Database URL (postgres://… for PostgreSQL; it must be empty or hold a previous bench
    /// seed); default: SQLite in the data directory.
    #[arg(long, env = "SWITCHBOARD_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Data directory; default: a new temporary directory. A directory from a previous run is
    /// reused without seeding again.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Timed requests per query.
    #[arg(long, default_value_t = 2000)]
    pub requests: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// Cursor steps (pages of 10) walked before timing the deep page.
    #[arg(long, default_value_t = 5000)]
    pub deep_steps: usize,
    /// Print each list query's SQL and the engine's plan for it.
    #[arg(long)]
    pub explain: bool,
}

/// Latencies of one series.
struct Stats {
    p50: Duration,
    p99: Duration,
    per_sec: f64,
}

fn stats(mut v: Vec<Duration>, wall: Duration) -> Stats {
    v.sort();
    let n = v.len().max(1);
    let at = |q: usize| v.get((n * q / 100).min(n - 1)).copied().unwrap_or_default();
    Stats {
        p50: at(50),
        p99: at(99),
        per_sec: v.len() as f64 / wall.as_secs_f64().max(1e-9),
    }
}

/// Runs `make(i)` for i in 0..n with `conc` in flight, after a short untimed warm-up.
async fn measure<F, Fut>(n: usize, conc: usize, make: F) -> anyhow::Result<Stats>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    for i in 0..(n / 10).clamp(10, 200) {
        make(i + n).await?;
    }
    let start = Instant::now();
    let results: Vec<anyhow::Result<Duration>> = stream::iter(0..n)
        .map(|i| {
            let f = make(i);
            async move {
                let t = Instant::now();
                f.await?;
                Ok(t.elapsed())
            }
        })
        .buffer_unordered(conc.max(1))
        .collect()
        .await;
    let wall = start.elapsed();
    let v = results.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    Ok(stats(v, wall))
}

/// A fixed-seed generator for picking ids and numbers (reproducible runs).
fn pick(i: usize, len: usize) -> usize {
    let mut x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    x ^= x >> 31;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 29;
    (x % len.max(1) as u64) as usize
}

fn list_query(filter: CallFilter, order_by: OrderBy, limit: u32, page: Page) -> CallListQuery {
    CallListQuery {
        filter,
        order_by,
        order: Order::Desc,
        limit,
        page,
        with_details: false,
        with_total: false,
    }
}

struct Row {
    name: String,
    server: Stats,
    store: Stats,
    raw: Stats,
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

/// A fresh scratch directory name for one benchmark run: the process id alone is not enough,
/// since tests run several benchmarks in one process at once and each removes its own
/// directory when it ends.
pub(crate) fn scratch_dir(kind: &str) -> std::path::PathBuf {
    static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!("switchboard-{kind}-{}-{n}", std::process::id()))
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| scratch_dir("bench"));
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let url = args
        .database_url
        .clone()
        .unwrap_or_else(|| switchboard_store::sqlite_url_for_dir(&data_dir));
    let backend = if url.starts_with("postgres") {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    let store = Store::connect(&url, 8)
        .await
        .context("cannot open the database")?;
    let meta = data_dir.join("bench-orgs.json");
    let existing = store.bench_call_count().await?;
    let orgs: Vec<BenchOrg> = if existing == 0 {
        eprintln!(
            "seeding {} calls over {} organizations into {backend} ...",
            args.calls, args.orgs
        );
        let t = Instant::now();
        let cfg = BenchSeedConfig {
            calls: args.calls,
            orgs: args.orgs,
            ..Default::default()
        };
        let orgs = store
            .bench_seed(&cfg, |n| {
                if n % 200_000 == 0 || n == args.calls {
                    eprintln!("  {n} calls, {:.0} s", t.elapsed().as_secs_f64());
                }
            })
            .await?;
        eprintln!("seeded in {:.1} s", t.elapsed().as_secs_f64());
        std::fs::write(&meta, serde_json::to_vec(&orgs)?)?;
        orgs
    } else {
        let raw = std::fs::read(&meta).with_context(|| {
            format!(
                "the database holds {existing} calls but {} is missing; use an empty database",
                meta.display()
            )
        })?;
        eprintln!("reusing the {existing} calls already seeded");
        serde_json::from_slice(&raw)?
    };
    let total_calls = store.bench_call_count().await?;
    let t = Instant::now();
    store.analyze().await?;
    eprintln!(
        "planner statistics refreshed in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let mut cfg = ServeConfig::for_tests(data_dir.clone(), args.database_url.clone());
    cfg.db_pool = (args.concurrency as u32 + 2).max(8);
    // The server gets a multi-threaded runtime of its own, as in `serve`; the client side
    // (this function) runs on the caller's single-threaded runtime, like a separate load
    // generator process, so its socket wake-ups do not pass through the server's threads.
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("server")
        .build()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    let server = server_rt.spawn(async move {
        let app = Application::build(&cfg).await?;
        let _ = addr_tx.send(app.local_addr());
        app.run_until_stopped(async move {
            let _ = stop_rx.await;
        })
        .await
    });
    let app_addr = match addr_rx.await {
        Ok(a) => a,
        Err(_) => return server.await?.context("the server did not start"),
    };
    // A minimal keep-alive HTTP/1.1 client (as wrk or a load balancer speaks it), so the
    // figure is the server's latency on the wire and not a client library's own overhead.
    let client = WireClient::new(app_addr);
    let get = |org: &BenchOrg, path: String| {
        let (client, key) = (&client, org.api_key.clone());
        async move {
            let (status, body) = client.get(&path, &key).await?;
            anyhow::ensure!(
                (200..300).contains(&status),
                "{status}: {}",
                String::from_utf8_lossy(&body)
            );
            Ok(body)
        }
    };

    let n = args.requests;
    let c = args.concurrency;
    let norgs = orgs.len();
    let mut rows = Vec::new();

    // The server's fixed cost with no database work: an authenticated request refused by
    // parameter validation (400). What is left of a query's server time above the engine's
    // is about this much.
    let floor = measure(n, c, |i| {
        let (client, key) = (&client, orgs[i % norgs].api_key.clone());
        async move {
            let (status, _) = client.get("/v1/calls?limit=0", &key).await?;
            anyhow::ensure!(status == 400, "expected 400, got {status}");
            Ok(())
        }
    })
    .await?;

    // (1) First page, newest first.
    {
        let name = "first page `GET /v1/calls?limit=10`".to_string();
        let server = measure(n, c, |i| {
            let f = get(&orgs[i % norgs], "/v1/calls?limit=10".into());
            async move { f.await.map(|_| ()) }
        })
        .await?;
        let q = list_query(
            CallFilter::default(),
            OrderBy::CreatedAt,
            10,
            Page::After(None),
        );
        let st = measure(n, c, |i| {
            let (s, q, org) = (&store, &q, orgs[i % norgs].org_id);
            async move { s.list_calls(org, q).await.map(|_| ()).map_err(Into::into) }
        })
        .await?;
        let raw = measure(n, c, |i| {
            let (s, q, org) = (&store, &q, orgs[i % norgs].org_id);
            async move {
                s.bench_raw_list_calls(org, q)
                    .await
                    .map(|_| ())
                    .map_err(Into::into)
            }
        })
        .await?;
        explain(&store, &args, &name, orgs[0].org_id, &q).await?;
        rows.push(Row {
            name,
            server,
            store: st,
            raw,
        });
    }

    // (2) The page after `deep_steps` cursor steps.
    {
        let org = &orgs[0];
        let t = Instant::now();
        let mut cursor: Option<String> = None;
        for _ in 0..args.deep_steps {
            let path = match &cursor {
                Some(cur) => format!("/v1/calls?limit=10&cursor={cur}"),
                None => "/v1/calls?limit=10".into(),
            };
            let body = get(org, path).await?;
            let v: serde_json::Value = serde_json::from_slice(&body)?;
            match v["cursor"].as_str() {
                Some(cur) => cursor = Some(cur.to_string()),
                None => break,
            }
        }
        let cursor = cursor.context("no cursor after the walk: too few calls")?;
        eprintln!(
            "walked {} pages in {:.1} s",
            args.deep_steps,
            t.elapsed().as_secs_f64()
        );
        let name = format!("page after {} cursor steps", args.deep_steps);
        let path = format!("/v1/calls?limit=10&cursor={cursor}");
        let server = measure(n, c, |_| {
            let f = get(org, path.clone());
            async move { f.await.map(|_| ()) }
        })
        .await?;
        let pos = decode_cursor(&cursor)?;
        let q = list_query(
            CallFilter::default(),
            OrderBy::CreatedAt,
            10,
            Page::After(Some(pos)),
        );
        let st = measure(n, c, |_| {
            let (s, q) = (&store, &q);
            async move {
                s.list_calls(org.org_id, q)
                    .await
                    .map(|_| ())
                    .map_err(Into::into)
            }
        })
        .await?;
        let raw = measure(n, c, |_| {
            let (s, q) = (&store, &q);
            async move {
                s.bench_raw_list_calls(org.org_id, q)
                    .await
                    .map(|_| ())
                    .map_err(Into::into)
            }
        })
        .await?;
        explain(&store, &args, &name, org.org_id, &q).await?;
        rows.push(Row {
            name,
            server,
            store: st,
            raw,
        });
    }

    // (3) Filtered by agent and status.
    {
        let name = "filter `agent_id` + `status=completed`".to_string();
        let agent_of = |i: usize| {
            let o = &orgs[i % norgs];
            (o, o.agents[pick(i, o.agents.len())])
        };
        let server = measure(n, c, |i| {
            let (o, a) = agent_of(i);
            let f = get(
                o,
                format!("/v1/calls?limit=10&agent_id={a}&status=completed"),
            );
            async move { f.await.map(|_| ()) }
        })
        .await?;
        let q_for = |a: AgentId| {
            let filter = CallFilter {
                agent_id: Some(a),
                status: Some(CallStatus::Completed),
                ..Default::default()
            };
            list_query(filter, OrderBy::CreatedAt, 10, Page::After(None))
        };
        let st = measure(n, c, |i| {
            let (o, a) = agent_of(i);
            let (s, q, org) = (&store, q_for(a), o.org_id);
            async move { s.list_calls(org, &q).await.map(|_| ()).map_err(Into::into) }
        })
        .await?;
        let raw = measure(n, c, |i| {
            let (o, a) = agent_of(i);
            let (s, q, org) = (&store, q_for(a), o.org_id);
            async move {
                s.bench_raw_list_calls(org, &q)
                    .await
                    .map(|_| ())
                    .map_err(Into::into)
            }
        })
        .await?;
        explain(
            &store,
            &args,
            &name,
            orgs[0].org_id,
            &q_for(orgs[0].agents[0]),
        )
        .await?;
        rows.push(Row {
            name,
            server,
            store: st,
            raw,
        });
    }

    // (4) One call by id.
    {
        let name = "`GET /v1/call/{id}` (random ids)".to_string();
        let call_of = |i: usize| {
            let o = &orgs[i % norgs];
            (o, o.sample_calls[pick(i, o.sample_calls.len())])
        };
        let server = measure(n, c, |i| {
            let (o, id) = call_of(i);
            let f = get(o, format!("/v1/call/{id}"));
            async move { f.await.map(|_| ()) }
        })
        .await?;
        let st = measure(n, c, |i| {
            let (o, id) = call_of(i);
            let (s, org) = (&store, o.org_id);
            async move {
                s.get_call(org, id, true)
                    .await
                    .map(|_| ())
                    .map_err(Into::into)
            }
        })
        .await?;
        let raw = measure(n, c, |i| {
            let (o, id) = call_of(i);
            let (s, org) = (&store, o.org_id);
            async move {
                anyhow::ensure!(
                    s.bench_raw_get_call(org, id, true).await?,
                    "call {id} not found"
                );
                Ok(())
            }
        })
        .await?;
        rows.push(Row {
            name,
            server,
            store: st,
            raw,
        });
    }

    // (5) The most recent call with a number.
    {
        let name = "`most_recent=true` by `client_number`".to_string();
        let number_of = |i: usize| {
            let o = &orgs[i % norgs];
            (o, o.sample_numbers[pick(i, o.sample_numbers.len())].clone())
        };
        let server = measure(n, c, |i| {
            let (o, num) = number_of(i);
            let f = get(
                o,
                format!(
                    "/v1/calls?most_recent=true&client_number={}",
                    num.replace('+', "%2B")
                ),
            );
            async move { f.await.map(|_| ()) }
        })
        .await?;
        let q_for = |num: &str| -> anyhow::Result<CallListQuery> {
            let filter = CallFilter {
                client_number: Some(PhoneNumber::parse(num)?),
                ..Default::default()
            };
            Ok(list_query(filter, OrderBy::StartedAt, 1, Page::After(None)))
        };
        let st = measure(n, c, |i| {
            let (o, num) = number_of(i);
            let (s, q, org) = (&store, q_for(&num), o.org_id);
            async move { s.list_calls(org, &q?).await.map(|_| ()).map_err(Into::into) }
        })
        .await?;
        let raw = measure(n, c, |i| {
            let (o, num) = number_of(i);
            let (s, q, org) = (&store, q_for(&num), o.org_id);
            async move {
                s.bench_raw_list_calls(org, &q?)
                    .await
                    .map(|_| ())
                    .map_err(Into::into)
            }
        })
        .await?;
        explain(
            &store,
            &args,
            &name,
            orgs[0].org_id,
            &q_for(&orgs[0].sample_numbers[0])?,
        )
        .await?;
        rows.push(Row {
            name,
            server,
            store: st,
            raw,
        });
    }

    // (D) The dashboard's calls page (issue 12): the whole HTML page of 50 rows with its
    // filter lists, signed in with a session cookie; store and raw SQL are its listing query.
    {
        let name = "dashboard `GET /calls` (HTML page, 50 rows)".to_string();
        let mut cookies = Vec::new();
        for org in &orgs {
            // A user per organization with a session made directly (no Argon2 here: the
            // bench times pages, not sign-in). Random emails: a reused database keeps users.
            let user = store
                .create_user(
                    org.org_id,
                    &format!(
                        "bench-{}@bench.invalid",
                        switchboard_dashboard::generate_password()
                    ),
                    "not-a-hash",
                    "viewer",
                )
                .await?;
            let token = switchboard_dashboard::generate_password();
            let expires = switchboard_domain::Timestamp(
                switchboard_domain::Timestamp::now().micros() + 3_600_000_000,
            );
            store
                .create_session(user.id, &token, "bench-csrf", expires)
                .await?;
            cookies.push(format!("cookie:sb_session={token}"));
        }
        let server = measure(n, c, |i| {
            let (client, cookie) = (&client, cookies[i % norgs].clone());
            async move {
                let (status, body) = client.get("/calls", &cookie).await?;
                anyhow::ensure!(
                    status == 200,
                    "{status}: {}",
                    String::from_utf8_lossy(&body)
                );
                Ok(())
            }
        })
        .await?;
        let q = list_query(
            CallFilter::default(),
            OrderBy::CreatedAt,
            50,
            Page::After(None),
        );
        let st = measure(n, c, |i| {
            let (s, q, org) = (&store, &q, orgs[i % norgs].org_id);
            async move { s.list_calls(org, q).await.map(|_| ()).map_err(Into::into) }
        })
        .await?;
        let raw = measure(n, c, |i| {
            let (s, q, org) = (&store, &q, orgs[i % norgs].org_id);
            async move {
                s.bench_raw_list_calls(org, q)
                    .await
                    .map(|_| ())
                    .map_err(Into::into)
            }
        })
        .await?;
        rows.push(Row {
            name,
            server,
            store: st,
            raw,
        });
    }

    let _ = stop_tx.send(());
    server.await??;
    server_rt.shutdown_background();
    store.close().await;

    println!(
        "\n{backend}: {total_calls} calls over {norgs} organizations; {n} timed requests per query, concurrency {c}; times in ms.\n"
    );
    println!("| query | server p50 | server p99 | server req/s | store p50 | store p99 | raw SQL p50 | raw SQL p99 | server/store (p50) | server/raw SQL (p50) |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {:.0} | {} | {} | {} | {} | {:.2} | {:.2} |",
            r.name,
            ms(r.server.p50),
            ms(r.server.p99),
            r.server.per_sec,
            ms(r.store.p50),
            ms(r.store.p99),
            ms(r.raw.p50),
            ms(r.raw.p99),
            r.server.p50.as_secs_f64() / r.store.p50.as_secs_f64().max(1e-9),
            r.server.p50.as_secs_f64() / r.raw.p50.as_secs_f64().max(1e-9),
        );
    }
    let (first, deep) = (&rows[0], &rows[1]);
    println!(
        "\nserver floor (auth + a 400 from parameter validation, no database): p50 {} ms, p99 {} ms",
        ms(floor.p50),
        ms(floor.p99)
    );
    println!(
        "\ndeep page / first page (server p50): {:.2}",
        deep.server.p50.as_secs_f64() / first.server.p50.as_secs_f64().max(1e-9)
    );
    if args.data_dir.is_none() {
        eprintln!(
            "data left in {} (pass --data-dir to reuse it)",
            data_dir.display()
        );
    }
    Ok(())
}

async fn explain(
    store: &Store,
    args: &BenchArgs,
    name: &str,
    org: OrgId,
    q: &CallListQuery,
) -> anyhow::Result<()> {
    if !args.explain {
        return Ok(());
    }
    let (sql, plan) = store.bench_explain_list_calls(org, q).await?;
    eprintln!(
        "\n-- {name}\n{sql}\n{}",
        plan.iter()
            .map(|l| format!("   {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    Ok(())
}

/// One kept-alive HTTP/1.1 connection and its read buffer.
struct WireConn {
    stream: tokio::net::TcpStream,
    buf: Vec<u8>,
}

/// A pool of kept-alive HTTP/1.1 connections speaking the bare protocol: one request line and
/// two headers out, the status line and `Content-Length` body in (RFC 9112 §6.3). Enough for
/// the server's JSON answers, which always carry a length.
struct WireClient {
    addr: std::net::SocketAddr,
    idle: std::sync::Mutex<Vec<WireConn>>,
}

impl WireClient {
    fn new(addr: std::net::SocketAddr) -> Self {
        Self {
            addr,
            idle: std::sync::Mutex::new(Vec::new()),
        }
    }

    async fn get(&self, path: &str, key: &str) -> anyhow::Result<(u16, Vec<u8>)> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let pooled = self.idle.lock().map_err(|_| anyhow::anyhow!("pool"))?.pop();
        let mut conn = match pooled {
            Some(c) => c,
            None => {
                let stream = tokio::net::TcpStream::connect(self.addr).await?;
                stream.set_nodelay(true)?;
                WireConn {
                    stream,
                    buf: Vec::with_capacity(16 * 1024),
                }
            }
        };
        // `cookie:NAME=VALUE` instead of a key: a dashboard session (issue 12).
        let auth = match key.strip_prefix("cookie:") {
            Some(c) => format!("cookie: {c}"),
            None => format!("authorization: Bearer {key}"),
        };
        let req = format!(
            "GET {path} HTTP/1.1\r\nhost: {}\r\n{auth}\r\n\r\n",
            self.addr
        );
        conn.stream.write_all(req.as_bytes()).await?;
        conn.buf.clear();
        let (status, head_len, body_len) = loop {
            let mut chunk = [0u8; 8192];
            let n = conn.stream.read(&mut chunk).await?;
            anyhow::ensure!(n > 0, "server closed the connection");
            conn.buf.extend_from_slice(&chunk[..n]);
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut resp = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(head_len) = resp.parse(&conn.buf)? {
                let len = resp
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| {
                        std::str::from_utf8(h.value)
                            .ok()?
                            .trim()
                            .parse::<usize>()
                            .ok()
                    })
                    .context("response without Content-Length")?;
                break (resp.code.unwrap_or(0), head_len, len);
            }
        };
        while conn.buf.len() < head_len + body_len {
            let mut chunk = [0u8; 8192];
            let n = conn.stream.read(&mut chunk).await?;
            anyhow::ensure!(n > 0, "server closed the connection mid-body");
            conn.buf.extend_from_slice(&chunk[..n]);
        }
        let body = conn.buf[head_len..head_len + body_len].to_vec();
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(conn);
        }
        Ok((status, body))
    }
}
