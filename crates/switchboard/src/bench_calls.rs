//! `switchboard bench-calls`: the telephony load benchmark. Prints figures, asserts nothing.
//!
//! 1. **Concurrent recorded calls** (`--concurrency 100,250,500`): the real server runs
//!    in-process (SQLite on a temporary data dir, HTTP on port 0, SIP on a fixed loopback
//!    port), its trunk points at a `sipp` UAS that answers, streams a 1 kHz tone with
//!    `rtp_stream` for the call's length and hangs up with BYE. All calls are dispatched
//!    through `POST /v1/call`; once every call is `in_progress`, a steady-state window
//!    measures the process's CPU time (getrusage, minus an idle baseline measured before) and
//!    RSS growth (/proc/self/status, against the RSS before the level). After the calls end,
//!    every call's `audio_metrics` (the engine's RTP counters) is read back. Each level runs in
//!    a child process of the same binary (unless `--in-process`), so that one level's heap does
//!    not hide the next level's memory growth.
//! 2. **Dispatch latency**: a trunk points at a UDP socket the bench binds itself; the bench
//!    sends `POST /v1/call` and timestamps the request start and the arrival of the INVITE
//!    datagram. It answers `603 Decline` (RFC 3261 §8.2.6) so the calls end at once.

use crate::config::ServeConfig;
use crate::Application;
use anyhow::{bail, Context};
use clap::Args;
use futures::stream::{self, StreamExt};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switchboard_domain::*;
use switchboard_store::Store;
use tokio::net::UdpSocket;
use tokio::sync::Notify;

#[derive(Debug, Clone, Args)]
pub struct BenchCallsArgs {
    /// Concurrent answered, recorded calls per level (comma-separated); empty: no load levels.
    #[arg(long, value_delimiter = ',', default_value = "100,250,500")]
    pub concurrency: Vec<usize>,
    /// Length of each call in seconds (the sipp peer streams a tone, then sends BYE).
    #[arg(long, default_value_t = 30)]
    pub seconds: u64,
    /// POST /v1/call requests in flight while dispatching a level.
    #[arg(long, default_value_t = 8)]
    pub dispatch_parallel: usize,
    /// Dispatch-latency samples (POST /v1/call → INVITE on the wire); 0 skips the test.
    #[arg(long, default_value_t = 500)]
    pub dispatch_calls: usize,
    /// Dispatch-latency requests in flight (1 = sequential).
    #[arg(long, default_value_t = 1)]
    pub dispatch_concurrency: usize,
    /// Server SIP port (UDP and TCP on 127.0.0.1).
    #[arg(long, default_value_t = 17080)]
    pub sip_port: u16,
    /// Port of the sipp UAS (its control port is this + 50).
    #[arg(long, default_value_t = 17000)]
    pub sipp_port: u16,
    /// sipp's media port (-mp).
    #[arg(long, default_value_t = 17100)]
    pub sipp_media_port: u16,
    /// UDP port the bench answers INVITEs on (603) for the dispatch-latency test.
    #[arg(long, default_value_t = 17090)]
    pub decline_port: u16,
    /// Server RTP port range.
    #[arg(long, default_value = "30000-39999", value_parser = parse_range)]
    pub rtp_ports: (u16, u16),
    /// Idle time measured before a level (the CPU baseline), in milliseconds.
    #[arg(long, default_value_t = 3000)]
    pub idle_ms: u64,
    /// Wait after the last call is answered before the window opens (greetings synthesised).
    #[arg(long, default_value_t = 2000)]
    pub settle_ms: u64,
    /// Run every level in this process instead of one child process per level.
    #[arg(long)]
    pub in_process: bool,
    /// Print each level's result as one JSON line (used by the parent process).
    #[arg(long, hide = true)]
    pub json: bool,
    /// Data directory; default: a new temporary directory (removed at the end).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// SIP flood during each level's steady-state window (issue 13): INVITEs per second to
    /// an unknown number from a sipp UAC on 127.0.0.2 (0: none). See `bench_flood.rs`.
    #[arg(long, default_value_t = 0)]
    pub flood_invites: u32,
    /// Datagrams per second (malformed SIP and INVITEs, in turn) from the bench's own socket
    /// on 127.0.0.3 during the window, which counts the answers it gets (0: none).
    #[arg(long, default_value_t = 0)]
    pub flood_malformed: u32,
    /// Soak instead of load levels (issue 13): keep the first `--concurrency` value of calls
    /// live for this many seconds (e.g. 1800), each `--seconds` long, a new call as each
    /// ends; prints memory, open files and database size over time. See `bench_soak.rs`.
    #[arg(long, default_value_t = 0)]
    pub soak_seconds: u64,
    /// The server's SQLite page cache per connection in KiB (`serve --sqlite-cache-kib`).
    #[arg(long, default_value_t = switchboard_store::DEFAULT_SQLITE_CACHE_KIB)]
    pub sqlite_cache_kib: u32,
}

pub(crate) fn parse_range(s: &str) -> Result<(u16, u16), String> {
    let (a, b) = s.split_once('-').ok_or("expected MIN-MAX")?;
    let a: u16 = a.trim().parse().map_err(|_| "MIN must be a port")?;
    let b: u16 = b.trim().parse().map_err(|_| "MAX must be a port")?;
    if a >= b {
        return Err("MIN must be below MAX".into());
    }
    Ok((a, b))
}

/// What one load level measured.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct LevelResult {
    pub calls: usize,
    pub seconds: u64,
    /// Seconds from the first POST to the last call in progress.
    pub ramp_s: f64,
    pub window_s: f64,
    /// Cores used by the process while idle (before the level).
    pub idle_cores: f64,
    /// Cores used during the window.
    pub load_cores: f64,
    /// (load - idle) / calls, in % of one core.
    pub cpu_pct_per_call: f64,
    pub rss_before_mb: f64,
    pub rss_window_mb: f64,
    pub kib_per_call: f64,
    pub completed: usize,
    pub with_metrics: usize,
    pub expected_packets: u64,
    pub received_min: u64,
    pub received_mean: f64,
    pub lost_total: u64,
    pub lost_max: u64,
    pub late_total: u64,
    pub late_max: u64,
    /// Calls with at least one late packet.
    pub calls_with_late: usize,
    /// Jitter-buffer playout restarts, all calls.
    pub resyncs_total: u64,
    pub concealed_total: u64,
    pub jitter_mean_ms: f64,
    pub jitter_max_ms: f64,
    pub sent_mean: f64,
    pub sipp_exit: i32,
    pub sipp_successful: Option<u64>,
    pub sipp_failed: Option<u64>,
    pub load_before: String,
    pub load_after: String,
    /// What the SIP flood saw, when one ran during the window.
    pub flood: Option<crate::bench_flood::FloodResult>,
}

/// Dispatch-latency result.
#[derive(Debug, Clone, Default)]
pub struct DispatchResult {
    pub n: usize,
    pub concurrency: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub api_p50_ms: f64,
    pub api_p99_ms: f64,
    pub missing: usize,
    pub load: String,
}

/// Process CPU time (user + system, all threads) so far, from /proc/self/stat (clock ticks of
/// 10 ms; the windows are many seconds long).
pub fn cpu_time() -> Duration {
    std::fs::read_to_string("/proc/self/stat").map_or(Duration::ZERO, |s| stat_cpu_time(&s))
}

/// CPU time (user + system) so far of this process's live threads whose name starts with
/// `prefix` (from /proc/self/task/*/stat; a thread that has exited is no longer counted, so
/// only long-lived threads such as the end-of-turn model pool are measured this way).
pub fn threads_cpu_time(prefix: &str) -> Duration {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("stat")).ok())
        .filter(|stat| {
            // The name is field 2, in parentheses.
            stat.split_once('(')
                .is_some_and(|(_, rest)| rest.starts_with(prefix))
        })
        .map(|stat| stat_cpu_time(&stat))
        .sum()
}

/// utime + stime of a /proc stat line (process or thread).
fn stat_cpu_time(stat: &str) -> Duration {
    // Fields after the command name (which is in parentheses and may contain spaces):
    // state is field 3; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    let ticks = f.get(10).copied().unwrap_or(0) + f.get(11).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// Resident set size in KiB (VmRSS).
pub(crate) fn rss_kib() -> u64 {
    status_field("VmRSS")
}

/// A `/proc/self/status` field in its own unit (KiB for sizes); 0 when it is not there.
pub(crate) fn status_field(name: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// The machine's load averages, as `uptime` prints them.
pub(crate) fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Raises the soft open-files limit to the hard limit (each call holds 2 UDP sockets and 2
/// recording files; sipp, our child, inherits the limit too). Returns the soft limit.
pub fn raise_nofile() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut l = getrlimit(Resource::Nofile);
    if l.current < l.maximum {
        l.current = l.maximum;
        let _ = setrlimit(Resource::Nofile, l);
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

pub(crate) fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// The in-process server with an agent, a trunk to `trunk_port` and a caller-ID number.
pub(crate) struct Bench {
    pub(crate) base: String,
    pub(crate) key: String,
    pub(crate) org: OrgId,
    pub(crate) store: Store,
    client: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Bench {
    pub(crate) async fn start(
        args: &BenchCallsArgs,
        sip_port: u16,
        data_dir: &Path,
        max_calls: i64,
    ) -> anyhow::Result<Self> {
        let mut cfg = ServeConfig::for_tests(data_dir.to_path_buf(), None);
        cfg.db_pool = 16;
        cfg.sqlite_cache_kib = args.sqlite_cache_kib;
        cfg.telephony.sip_listen = SocketAddr::from(([127, 0, 0, 1], sip_port));
        cfg.telephony.rtp_ports = args.rtp_ports;
        cfg.telephony.max_calls_per_org = max_calls;
        cfg.telephony.shutdown_grace = 2;
        // The previous level's server may still hold the SIP port for a moment.
        let mut tries = 0;
        let app = loop {
            match Application::build(&cfg).await {
                Ok(app) => break app,
                Err(e) if tries < 50 && format!("{e:#}").contains("SIP") => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(e),
            }
        };
        let (org, key) = app
            .first_run_key
            .clone()
            .context("the bench needs a fresh data directory")?;
        let org: OrgId = org.parse()?;
        let store = app.store().clone();
        let base = format!("http://{}", app.local_addr());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until_stopped(async move {
            let _ = rx.await;
        }));
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()?;
        Ok(Bench {
            base,
            key,
            org,
            store,
            client,
            stop: Some(tx),
            task,
        })
    }

    /// The server set up for `n` concurrent calls of `--seconds` to the sipp UAS on
    /// `--sipp-port`, and that UAS's scenario (a tone for the call's length, then BYE).
    pub(crate) async fn with_tone_peer(
        args: &BenchCallsArgs,
        sip_port: u16,
        data_dir: &Path,
        n: usize,
    ) -> anyhow::Result<(Bench, PathBuf)> {
        let bench = Bench::start(args, sip_port, data_dir, (n as i64) * 2 + 10).await?;
        bench
            .setup(args.sipp_port, "+15550001111", args.seconds + 120)
            .await?;
        let tone = data_dir.join("tone.ulaw");
        write_tone(&tone, args.seconds)?;
        let scen = data_dir.join("bench_uas.xml");
        std::fs::write(
            &scen,
            TONE_SCENARIO
                .replace("TONE_FILE", &tone.display().to_string())
                .replace("HOLD_MS", &(args.seconds * 1000).to_string()),
        )?;
        Ok((bench, scen))
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
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

    /// Agent (short greeting) + trunk to 127.0.0.1:`port` + number bound to both.
    pub(crate) async fn setup(
        &self,
        port: u16,
        number: &str,
        max_duration: u64,
    ) -> anyhow::Result<()> {
        let agent = self
            .post(
                "/v1/agents",
                json!({"name": format!("Bench {port}"), "initial_message": "Hello.",
                       "max_duration_seconds": max_duration}),
            )
            .await?;
        let trunk = self
            .post(
                "/v1/sip-trunks",
                json!({"name": format!("bench {port}"), "host": "127.0.0.1", "port": port, "transport": "udp"}),
            )
            .await?;
        self.post(
            "/v1/phone-numbers",
            json!({"phone_number": number, "agent_id": agent["id"], "trunk_id": trunk["id"]}),
        )
        .await?;
        Ok(())
    }

    pub(crate) async fn dispatch(&self, from: &str, i: usize) -> anyhow::Result<CallId> {
        let to = format!("+1415{:07}", 5_000_000 + i % 4_000_000);
        let v = self
            .post("/v1/call", json!({"from": from, "to": to}))
            .await?;
        Ok(v["id"].as_str().context("no call id")?.parse()?)
    }

    pub(crate) async fn count(&self, status: CallStatus) -> anyhow::Result<i64> {
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
        Ok(self
            .store
            .list_calls(self.org, &q)
            .await?
            .total
            .unwrap_or(0))
    }

    pub(crate) async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.task.await??;
        Ok(())
    }
}

pub const TONE_SCENARIO: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<!-- switchboard bench-calls: answers, streams a tone for the call's length, then BYE. -->
<scenario name="bench_uas_tone_bye">
  <recv request="INVITE" crlf="true">
    <action>
      <ereg regexp="sip:[^>]*" search_in="hdr" header="Contact:" assign_to="contact"/>
      <ereg regexp=".*" search_in="hdr" header="From:" assign_to="remote_from"/>
    </action>
  </recv>
  <send retrans="500">
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=sipp 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
    ]]>
  </send>
  <recv request="ACK" crlf="true"/>
  <nop>
    <action>
      <exec rtp_stream="TONE_FILE,1,0"/>
    </action>
  </nop>
  <pause milliseconds="HOLD_MS"/>
  <send retrans="500">
    <![CDATA[
      BYE [$contact] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:callee@[local_ip]:[local_port]>;tag=[pid]SIPpTag01[call_number]
      To: [$remote_from]
      Call-ID: [call_id]
      CSeq: 1 BYE
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="200" crlf="true"/>
</scenario>
"#;

/// `seconds` of a 1 kHz tone as raw mu-law (what sipp's rtp_stream plays).
pub fn write_tone(path: &Path, seconds: u64) -> anyhow::Result<()> {
    let n = 8000 * seconds as usize;
    let bytes: Vec<u8> = (0..n)
        .map(|i| {
            let x = (2.0 * std::f64::consts::PI * 1000.0 * i as f64 / 8000.0).sin() * 12000.0;
            mulaw(x as i16)
        })
        .collect();
    std::fs::write(path, bytes)?;
    Ok(())
}

/// G.711 mu-law encoding of one sample (ITU-T G.711).
pub(crate) fn mulaw(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    let mut s = i32::from(sample);
    let sign = if s < 0 {
        s = -s;
        0x80
    } else {
        0
    };
    s = (s + BIAS).min(32635 + BIAS);
    let exp = (31 - (s as u32).leading_zeros()).saturating_sub(7).min(7);
    let mant = (s >> (exp + 3)) & 0x0F;
    !(sign | ((exp as i32) << 4) | mant) as u8
}

/// sipp's final SuccessfulCall(C) / FailedCall(C) from its -trace_stat file.
pub fn sipp_stat(path: &Path) -> (Option<u64>, Option<u64>) {
    (
        sipp_stat_column(path, "SuccessfulCall(C)"),
        sipp_stat_column(path, "FailedCall(C)"),
    )
}

/// The last row's value of one column of sipp's `-trace_stat` CSV (`;`-separated).
pub fn sipp_stat_column(path: &Path, name: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header = lines.next()?;
    let last = lines.next_back()?;
    let i = header.split(';').position(|c| c == name)?;
    last.split(';').nth(i)?.trim().parse().ok()
}

/// One sipp UAS running `scen` for all `n` calls of a level (control port `sipp_port + 50`),
/// with its statistics written to the returned file.
pub fn spawn_sipp_uas(
    scen: &Path,
    data_dir: &Path,
    sipp_port: u16,
    media_port: u16,
    n: usize,
    seconds: u64,
) -> anyhow::Result<(tokio::process::Child, PathBuf)> {
    let stat = data_dir.join("sipp_stat.csv");
    let sipp = tokio::process::Command::new("sipp")
        .args([
            "-sf".into(),
            scen.display().to_string(),
            "-i".into(),
            "127.0.0.1".into(),
            "-mi".into(),
            "127.0.0.1".into(),
            "-p".into(),
            sipp_port.to_string(),
            "-mp".into(),
            media_port.to_string(),
            "-cp".into(),
            (sipp_port + 50).to_string(),
            "-m".into(),
            n.to_string(),
            "-l".into(),
            (n + 10).to_string(),
            "-nostdin".into(),
            "-timeout".into(),
            format!("{}s", seconds + 300),
            "-trace_stat".into(),
            "-stf".into(),
            stat.display().to_string(),
            "-fd".into(),
            "1".into(),
        ])
        .current_dir(data_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("sipp is required: apt-get install sip-tester")?;
    Ok((sipp, stat))
}

async fn run_level(
    args: &BenchCallsArgs,
    n: usize,
    sip_port: u16,
    data_dir: &Path,
) -> anyhow::Result<LevelResult> {
    std::fs::create_dir_all(data_dir)?;
    let nofile = raise_nofile();
    if nofile < (n as u64) * 6 + 256 {
        eprintln!("warning: open-files limit {nofile} may be too low for {n} calls (ulimit -n)");
    }
    let (bench, scen) = Bench::with_tone_peer(args, sip_port, data_dir, n).await?;
    let (mut sipp, stat) = spawn_sipp_uas(
        &scen,
        data_dir,
        args.sipp_port,
        args.sipp_media_port,
        n,
        args.seconds,
    )?;
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Idle baseline: the server running, no calls.
    let rss0 = rss_kib();
    let (c0, t0) = (cpu_time(), Instant::now());
    tokio::time::sleep(Duration::from_millis(args.idle_ms)).await;
    let idle_cores = (cpu_time() - c0).as_secs_f64() / t0.elapsed().as_secs_f64();
    let rss_before = rss_kib().max(rss0);
    let load_before = loadavg();

    // Dispatch every call, then wait until all are in progress.
    eprintln!("level {n}: dispatching {n} calls ...");
    let ramp = Instant::now();
    let ids: Vec<CallId> = stream::iter(0..n)
        .map(|i| bench.dispatch("+15550001111", i))
        .buffer_unordered(args.dispatch_parallel.max(1))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        // Dialing first: a call answered between the two counts is counted twice, never missed.
        let dialing = bench.count(CallStatus::Dialing).await?;
        let up = bench.count(CallStatus::InProgress).await?;
        if up as usize >= n {
            break;
        }
        if up + dialing < n as i64 {
            bail!("level {n}: only {up} calls in progress, {dialing} dialing; the rest ended early (see the calls' end_reason)");
        }
        if Instant::now() > deadline {
            bail!("level {n}: only {up} of {n} calls in progress after 120 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let all_up = Instant::now();
    let ramp_s = ramp.elapsed().as_secs_f64();
    eprintln!("level {n}: all in progress after {ramp_s:.1} s");

    // Steady state: after the greetings, before the first BYE. sipp hangs up `seconds` after
    // its 200 OK is acknowledged, and no call can be answered before the first POST (the
    // in_progress write itself may lag behind the answer under database load).
    let open = all_up + Duration::from_millis(args.settle_ms);
    let close = ramp + Duration::from_secs(args.seconds) - Duration::from_millis(1000);
    if close <= open + Duration::from_millis(500) {
        bail!("level {n}: no steady-state window (the ramp took {ramp_s:.1} s); raise --seconds");
    }
    tokio::time::sleep_until(open.into()).await;
    let (c1, t1) = (cpu_time(), Instant::now());
    let flood = if args.flood_invites > 0 || args.flood_malformed > 0 {
        eprintln!(
            "level {n}: flooding the SIP port ({} INVITE/s from 127.0.0.2, {} datagrams/s from 127.0.0.3)",
            args.flood_invites, args.flood_malformed
        );
        Some(
            crate::bench_flood::Flood::start(
                SocketAddr::from(([127, 0, 0, 1], sip_port)),
                bench.base.clone(),
                bench.key.clone(),
                args.flood_invites,
                args.flood_malformed,
                (close - open).as_secs() + 1,
                data_dir,
            )
            .await?,
        )
    } else {
        None
    };
    tokio::time::sleep_until(close.into()).await;
    let flood = match flood {
        Some(f) => Some(f.stop().await),
        None => None,
    };
    let window = t1.elapsed().as_secs_f64();
    let load_cores = (cpu_time() - c1).as_secs_f64() / window;
    let rss_window = rss_kib();

    // The calls end (sipp's BYE); read the engine's counters back.
    let deadline = Instant::now() + Duration::from_secs(args.seconds + 120);
    while bench.count(CallStatus::InProgress).await? + bench.count(CallStatus::Dialing).await? > 0 {
        if Instant::now() > deadline {
            eprintln!("level {n}: calls still live; reading what is there");
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let sipp_exit = match tokio::time::timeout(Duration::from_secs(30), sipp.wait()).await {
        Ok(Ok(s)) => s.code().unwrap_or(-1),
        _ => {
            let _ = sipp.kill().await;
            -1
        }
    };
    let (sipp_successful, sipp_failed) = sipp_stat(&stat);
    let load_after = loadavg();

    let mut r = LevelResult {
        calls: n,
        seconds: args.seconds,
        ramp_s,
        window_s: window,
        idle_cores,
        load_cores,
        cpu_pct_per_call: (load_cores - idle_cores) / n as f64 * 100.0,
        rss_before_mb: rss_before as f64 / 1024.0,
        rss_window_mb: rss_window as f64 / 1024.0,
        kib_per_call: (rss_window as f64 - rss_before as f64) / n as f64,
        expected_packets: args.seconds * 50,
        received_min: u64::MAX,
        sipp_exit,
        sipp_successful,
        sipp_failed,
        load_before,
        load_after,
        flood,
        ..Default::default()
    };
    let (mut recv_sum, mut sent_sum, mut jit_sum) = (0u64, 0u64, 0f64);
    for id in &ids {
        let call = bench.store.get_call(bench.org, *id, true).await?;
        if call.status == CallStatus::Completed {
            r.completed += 1;
        }
        let Some(m) = call.details.and_then(|d| d.audio_metrics) else {
            continue;
        };
        let u = |k: &str| m[k].as_u64().unwrap_or(0);
        r.with_metrics += 1;
        recv_sum += u("packets_received");
        sent_sum += u("packets_sent");
        r.received_min = r.received_min.min(u("packets_received"));
        r.lost_total += u("lost");
        r.lost_max = r.lost_max.max(u("lost"));
        r.late_total += u("late");
        r.late_max = r.late_max.max(u("late"));
        r.calls_with_late += usize::from(u("late") > 0);
        r.resyncs_total += u("resyncs");
        r.concealed_total += u("concealed");
        let j = m["jitter_ms"].as_f64().unwrap_or(0.0);
        jit_sum += j;
        r.jitter_max_ms = r.jitter_max_ms.max(j);
    }
    if r.with_metrics > 0 {
        let k = r.with_metrics as f64;
        r.received_mean = recv_sum as f64 / k;
        r.sent_mean = sent_sum as f64 / k;
        r.jitter_mean_ms = jit_sum / k;
    } else {
        r.received_min = 0;
    }
    bench.stop().await?;
    Ok(r)
}

/// Parsed headers of an INVITE, enough to answer it (RFC 3261 §8.2.6).
struct Invite {
    vias: Vec<String>,
    from: String,
    to: String,
    call_id: String,
    cseq: String,
    switchboard_id: Option<String>,
}

fn parse_request(text: &str) -> Option<(String, Invite)> {
    let mut lines = text.split("\r\n");
    let method = lines.next()?.split(' ').next()?.to_string();
    let mut inv = Invite {
        vias: Vec::new(),
        from: String::new(),
        to: String::new(),
        call_id: String::new(),
        cseq: String::new(),
        switchboard_id: None,
    };
    for l in lines {
        if l.is_empty() {
            break;
        }
        let Some((name, value)) = l.split_once(':') else {
            continue;
        };
        let value = value.trim().to_string();
        match name.trim().to_ascii_lowercase().as_str() {
            "via" | "v" => inv.vias.push(value),
            "from" | "f" => inv.from = value,
            "to" | "t" => inv.to = value,
            "call-id" | "i" => inv.call_id = value,
            "cseq" => inv.cseq = value,
            "x-switchboard-call-id" => inv.switchboard_id = Some(value),
            _ => {}
        }
    }
    Some((method, inv))
}

fn decline(inv: &Invite) -> String {
    let mut s = String::from("SIP/2.0 603 Decline\r\n");
    for v in &inv.vias {
        s.push_str(&format!("Via: {v}\r\n"));
    }
    let to = if inv.to.contains(";tag=") {
        inv.to.clone()
    } else {
        // A stable tag per dialog so retransmitted INVITEs get the same answer.
        let h = inv.call_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        format!("{};tag=bench{:x}", inv.to, h)
    };
    s.push_str(&format!(
        "From: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {}\r\nContent-Length: 0\r\n\r\n",
        inv.from, inv.call_id, inv.cseq
    ));
    s
}

/// Answers every INVITE with 603 and notes when each call's first INVITE arrived.
async fn decliner(
    sock: UdpSocket,
    arrived: Arc<Mutex<HashMap<String, Instant>>>,
    wake: Arc<Notify>,
) {
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok((len, from)) = sock.recv_from(&mut buf).await else {
            continue;
        };
        let at = Instant::now();
        let text = String::from_utf8_lossy(&buf[..len]);
        let Some((method, inv)) = parse_request(&text) else {
            continue;
        };
        if method != "INVITE" {
            continue; // ACK for our 603 (and anything else) needs no answer.
        }
        if let Some(id) = &inv.switchboard_id {
            let mut m = arrived.lock().unwrap_or_else(|p| p.into_inner());
            m.entry(id.clone()).or_insert(at);
            drop(m);
            wake.notify_waiters();
        }
        let _ = sock.send_to(decline(&inv).as_bytes(), from).await;
    }
}

async fn run_dispatch(args: &BenchCallsArgs, data_dir: &Path) -> anyhow::Result<DispatchResult> {
    std::fs::create_dir_all(data_dir)?;
    raise_nofile();
    let sock = UdpSocket::bind(SocketAddr::from(([127, 0, 0, 1], args.decline_port)))
        .await
        .with_context(|| format!("cannot bind UDP {}", args.decline_port))?;
    let arrived: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let wake = Arc::new(Notify::new());
    let responder = tokio::spawn(decliner(sock, arrived.clone(), wake.clone()));
    // Its own SIP port: a stopped server's SIP socket may linger in this process.
    let bench = Bench::start(args, args.sip_port + 9, data_dir, 10_000).await?;
    bench.setup(args.decline_port, "+15550002222", 60).await?;

    let one = |i: usize| {
        let (bench, arrived, wake) = (&bench, arrived.clone(), wake.clone());
        async move {
            let start = Instant::now();
            let id = bench.dispatch("+15550002222", i).await?;
            let api = start.elapsed();
            let key = id.to_string();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            loop {
                let notified = wake.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if let Some(at) = arrived.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
                    return anyhow::Ok((Some(at.duration_since(start)), api));
                }
                if tokio::time::timeout_at(deadline, notified).await.is_err() {
                    return Ok((None, api));
                }
            }
        }
    };
    // Warm-up (connections, statement cache), untimed.
    for i in 0..20 {
        one(1_000_000 + i).await?;
    }
    let load = loadavg();
    let results: Vec<_> = stream::iter(0..args.dispatch_calls)
        .map(one)
        .buffer_unordered(args.dispatch_concurrency.max(1))
        .collect()
        .await;
    let mut wire = Vec::new();
    let mut api = Vec::new();
    let mut missing = 0;
    for r in results {
        let (w, a) = r?;
        api.push(a.as_secs_f64() * 1000.0);
        match w {
            Some(w) => wire.push(w.as_secs_f64() * 1000.0),
            None => missing += 1,
        }
    }
    wire.sort_by(f64::total_cmp);
    api.sort_by(f64::total_cmp);
    // Let the declined calls finish before the server stops.
    tokio::time::sleep(Duration::from_millis(500)).await;
    bench.stop().await?;
    responder.abort();
    Ok(DispatchResult {
        n: args.dispatch_calls,
        concurrency: args.dispatch_concurrency.max(1),
        p50_ms: percentile(&wire, 0.50),
        p99_ms: percentile(&wire, 0.99),
        max_ms: wire.last().copied().unwrap_or(f64::NAN),
        api_p50_ms: percentile(&api, 0.50),
        api_p99_ms: percentile(&api, 0.99),
        missing,
        load,
    })
}

/// Runs one level in a child process of this binary and reads its JSON line.
async fn run_level_child(
    args: &BenchCallsArgs,
    n: usize,
    data_dir: &Path,
) -> anyhow::Result<LevelResult> {
    let exe = std::env::current_exe()?;
    let out = tokio::process::Command::new(exe)
        .args([
            "bench-calls".to_string(),
            "--concurrency".into(),
            n.to_string(),
            "--seconds".into(),
            args.seconds.to_string(),
            "--dispatch-parallel".into(),
            args.dispatch_parallel.to_string(),
            "--dispatch-calls".into(),
            "0".into(),
            "--sip-port".into(),
            args.sip_port.to_string(),
            "--sipp-port".into(),
            args.sipp_port.to_string(),
            "--sipp-media-port".into(),
            args.sipp_media_port.to_string(),
            "--rtp-ports".into(),
            format!("{}-{}", args.rtp_ports.0, args.rtp_ports.1),
            "--idle-ms".into(),
            args.idle_ms.to_string(),
            "--settle-ms".into(),
            args.settle_ms.to_string(),
            "--flood-invites".into(),
            args.flood_invites.to_string(),
            "--flood-malformed".into(),
            args.flood_malformed.to_string(),
            "--in-process".into(),
            "--json".into(),
            "--data-dir".into(),
            data_dir.display().to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?
        .wait_with_output()
        .await?;
    anyhow::ensure!(out.status.success(), "level {n} failed ({})", out.status);
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .context("no result line from the level's process")?;
    Ok(serde_json::from_str(line)?)
}

fn print_levels(levels: &[LevelResult]) {
    println!("\nConcurrent answered, recorded calls (sipp UAS streaming a tone; CPU and memory of the switchboard process over the steady-state window).\n");
    println!("| calls | CPU % of a core per call | calls per core | memory per call | packets received per call (expected) | lost | late | jitter mean / max | ramp | window | load avg before → after |");
    println!("|---:|---:|---:|---:|---|---:|---:|---|---:|---:|---|");
    for r in levels {
        let per_core = if r.cpu_pct_per_call > 0.0 {
            format!("{:.0}", 100.0 / r.cpu_pct_per_call)
        } else {
            "-".into()
        };
        println!(
            "| {} | {:.3} | {} | {:.0} KiB | min {} / mean {:.0} ({}) | {} (max {}/call) | {} (max {}/call) | {:.2} / {:.2} ms | {:.1} s | {:.1} s | {} → {} |",
            r.calls,
            r.cpu_pct_per_call,
            per_core,
            r.kib_per_call,
            r.received_min,
            r.received_mean,
            r.expected_packets,
            r.lost_total,
            r.lost_max,
            r.late_total,
            r.late_max,
            r.jitter_mean_ms,
            r.jitter_max_ms,
            r.ramp_s,
            r.window_s,
            r.load_before,
            r.load_after,
        );
    }
    println!();
    for r in levels {
        println!(
            "level {}: process {:.3} cores under load, {:.3} idle; RSS {:.1} → {:.1} MiB; {} of {} calls completed, {} with audio_metrics; packets sent mean {:.0}; concealed {}; {} calls with late packets, {} playout restarts; sipp exit {} (successful {:?}, failed {:?})",
            r.calls,
            r.load_cores,
            r.idle_cores,
            r.rss_before_mb,
            r.rss_window_mb,
            r.completed,
            r.calls,
            r.with_metrics,
            r.sent_mean,
            r.concealed_total,
            r.calls_with_late,
            r.resyncs_total,
            r.sipp_exit,
            r.sipp_successful,
            r.sipp_failed,
        );
        if let Some(f) = &r.flood {
            println!(
                "level {} under a SIP flood for {:.1} s: sipp sent {:?} INVITEs from 127.0.0.2 (exit {}); the own flooder on 127.0.0.3 sent {} datagrams and {} of them were answered ({} answers with retransmissions; {} × 503, {} with Retry-After; last answer {:.2} s after the start); API GET /v1/calls meanwhile: {} requests, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, {} errors; live calls: {} late packets, {} lost",
                r.calls,
                f.seconds,
                f.sipp_invites,
                f.sipp_exit,
                f.own_sent,
                f.own_answered_requests,
                f.own_answers,
                f.own_503,
                f.own_503_with_retry_after,
                f.own_last_answer_s,
                f.api_samples,
                f.api_p50_ms,
                f.api_p99_ms,
                f.api_max_ms,
                f.api_errors,
                r.late_total,
                r.lost_total,
            );
        }
    }
}

/// Everything one run measured.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub levels: Vec<LevelResult>,
    pub dispatch: Option<DispatchResult>,
    pub soak: Option<crate::bench_soak::SoakResult>,
}

/// Runs the levels and the dispatch test, prints the tables (unless `--json`).
pub async fn run(args: BenchCallsArgs) -> anyhow::Result<()> {
    measure(args).await.map(|_| ())
}

/// Like [`run`], and returns the figures.
pub async fn measure(args: BenchCallsArgs) -> anyhow::Result<Report> {
    let temp = args.data_dir.is_none();
    let root = args
        .data_dir
        .clone()
        .unwrap_or_else(|| crate::bench::scratch_dir("bench-calls"));
    std::fs::create_dir_all(&root)?;
    let result = measure_in(&args, &root, temp).await;
    if temp {
        // The recordings take about 585 KiB per call-minute.
        let _ = std::fs::remove_dir_all(&root);
    }
    result
}

async fn measure_in(args: &BenchCallsArgs, root: &Path, temp: bool) -> anyhow::Result<Report> {
    if args.soak_seconds > 0 {
        let n = args.concurrency.first().copied().unwrap_or(100).max(1);
        let soak = crate::bench_soak::run(args, n, root).await?;
        return Ok(Report {
            soak: Some(soak),
            ..Default::default()
        });
    }
    let args = args.clone();
    let root = root.to_path_buf();
    let levels: Vec<usize> = args
        .concurrency
        .iter()
        .copied()
        .filter(|n| *n > 0)
        .collect();
    let mut results = Vec::new();
    for (i, &n) in levels.iter().enumerate() {
        let dir = root.join(format!("level-{n}"));
        let r = if args.in_process {
            if levels.len() == 1 && args.json {
                // Child mode: the parent gave us our own directory.
                run_level(&args, n, args.sip_port, &root).await?
            } else {
                // A stopped server's SIP socket may linger in this process: one port per level.
                run_level(&args, n, args.sip_port + i as u16, &dir).await?
            }
        } else {
            run_level_child(&args, n, &dir).await?
        };
        if args.json {
            println!("{}", serde_json::to_string(&r)?);
        }
        if temp {
            let _ = std::fs::remove_dir_all(&dir);
        }
        results.push(r);
    }
    let dispatch = if args.dispatch_calls > 0 {
        eprintln!("dispatch latency: {} calls ...", args.dispatch_calls);
        Some(run_dispatch(&args, &root.join("dispatch")).await?)
    } else {
        None
    };
    if !args.json {
        println!(
            "\nswitchboard bench-calls: {} s calls; {} cores; open-files limit {}",
            args.seconds,
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(0),
            raise_nofile()
        );
        if !results.is_empty() {
            print_levels(&results);
        }
        if let Some(d) = &dispatch {
            println!(
                "\nDispatch latency, POST /v1/call start → INVITE datagram received ({} calls, {} in flight, load avg {}):\n",
                d.n, d.concurrency, d.load
            );
            println!(
                "| p50 | p99 | max | POST response p50 | POST response p99 | INVITE missing |"
            );
            println!("|---:|---:|---:|---:|---:|---:|");
            println!(
                "| {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {} |",
                d.p50_ms, d.p99_ms, d.max_ms, d.api_p50_ms, d.api_p99_ms, d.missing
            );
        }
    }
    Ok(Report {
        levels: results,
        dispatch,
        soak: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The benches' memory and thread columns come from /proc/self/status: the fields they
    /// read are found (this test process has threads and anonymous and file-backed pages), an
    /// unknown one reads as 0 rather than as a neighbour's value.
    #[test]
    fn status_fields_are_read_by_exact_name() {
        assert!(status_field("Threads") >= 1);
        assert!(status_field("RssAnon") > 0);
        assert!(status_field("RssFile") > 0);
        assert!(status_field("VmRSS") >= status_field("RssAnon"));
        assert_eq!(status_field("Rss"), 0, "a prefix of RssAnon is not a field");
        assert_eq!(status_field("NoSuchField"), 0);
    }

    #[test]
    fn mulaw_matches_the_reference_points() {
        assert_eq!(mulaw(0), 0xFF);
        assert_eq!(mulaw(-1), 0x7F);
        assert_eq!(mulaw(32767), 0x80);
        assert_eq!(mulaw(-32768), 0x00);
    }

    #[test]
    fn decline_echoes_the_transaction_headers() {
        let req = "INVITE sip:+1415@127.0.0.1:17090 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:17080;branch=z9hG4bK1\r\nFrom: <sip:+1555@127.0.0.1>;tag=a\r\nTo: <sip:+1415@127.0.0.1>\r\nCall-ID: abc\r\nCSeq: 1 INVITE\r\nX-Switchboard-Call-Id: 42\r\nContent-Length: 0\r\n\r\n";
        let (m, inv) = parse_request(req).unwrap();
        assert_eq!(m, "INVITE");
        assert_eq!(inv.switchboard_id.as_deref(), Some("42"));
        let r = decline(&inv);
        assert!(r.starts_with("SIP/2.0 603 Decline\r\n"));
        assert!(r.contains("Via: SIP/2.0/UDP 127.0.0.1:17080;branch=z9hG4bK1\r\n"));
        assert!(r.contains("To: <sip:+1415@127.0.0.1>;tag=bench"));
        assert!(r.contains("CSeq: 1 INVITE\r\n"));
        assert!(r.ends_with("\r\n\r\n"));
    }
}
