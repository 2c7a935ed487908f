//! The SIP flood of `bench-calls --flood-invites N --flood-malformed M` (issue 13): while a
//! level's calls are live, untrusted sources hammer the SIP port, and the API is timed.
//!
//! - a `sipp` UAC on 127.0.0.2 sends `N` INVITEs per second to a number nobody owns (it
//!   sends and moves on: a flooder does not wait for answers);
//! - a socket of the bench's own on 127.0.0.3 sends `M` datagrams per second, alternating
//!   malformed SIP and INVITEs, and counts what comes back: the per-source limiter answers
//!   the first burst, then one `503` with `Retry-After`, then nothing;
//! - `GET /v1/calls?limit=20` every 20 ms measures the API's latency meanwhile.
//!
//! The live calls' own figures (late and lost packets) come from the level as usual.

use anyhow::Context;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;

/// The flooding sipp's ports on 127.0.0.2 (inside bench-calls' 17000-17099).
const SIPP_FLOOD_PORT: u16 = 17040;

/// INVITE sent and forgotten: sipp counts one call per INVITE.
const FLOOD_SCENARIO: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="flood">
  <send>
    <![CDATA[
      INVITE sip:+15557770000@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:+15559998888@[local_ip]:[local_port]>;tag=[pid]F[call_number]
      To: <sip:+15557770000@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:flood@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
</scenario>
"#;

/// What the flood saw.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct FloodResult {
    pub seconds: f64,
    /// INVITEs the sipp UAC created (its `TotalCallCreated`).
    pub sipp_invites: Option<u64>,
    pub sipp_exit: i32,
    /// Datagrams the bench's own flooder sent, and the answers it got back (retransmitted
    /// final responses included: RFC 3261 §17.2.1 repeats them until an ACK the flooder never
    /// sends).
    pub own_sent: u64,
    pub own_answers: u64,
    /// Distinct requests that got any answer (by Call-ID; an answer without one counts once
    /// per distinct text).
    pub own_answered_requests: u64,
    pub own_503: u64,
    pub own_503_with_retry_after: u64,
    /// Seconds from the flood's start to the last answer the own flooder got.
    pub own_last_answer_s: f64,
    pub api_samples: usize,
    pub api_p50_ms: f64,
    pub api_p99_ms: f64,
    pub api_max_ms: f64,
    pub api_errors: u64,
}

pub(crate) struct Flood {
    started: Instant,
    sipp: Option<(tokio::process::Child, std::path::PathBuf)>,
    stop: Arc<AtomicBool>,
    own: tokio::task::JoinHandle<(u64, u64, u64, u64, u64, f64)>,
    api: tokio::task::JoinHandle<(Vec<f64>, u64)>,
}

/// Malformed and well-formed requests, in turn (RFC 3261 §16.3 / §8.2 checks fail on the
/// first three; the last is a valid INVITE to an unknown number).
fn own_datagram(i: u64, target: SocketAddr) -> Vec<u8> {
    match i % 4 {
        0 => b"INVITE sip:+15557770000@x SIP/2.0\r\n\r\n".to_vec(),
        1 => (0..200u8).map(|b| b.wrapping_mul(37) ^ (i as u8)).collect(),
        2 => format!(
            "OPTIONS sip:{target} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.3:1;branch=z9hG4bKm{i}\r\n\
             From: <sip:m@127.0.0.3>;tag=m\r\nTo: <sip:{target}>\r\nCall-ID: m{i}\r\nCSeq: x OPTIONS\r\n\
             Content-Length: 0\r\n\r\n"
        )
        .into_bytes(),
        _ => format!(
            "INVITE sip:+15557770001@{target} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.3:1;branch=z9hG4bKi{i}\r\n\
             From: <sip:+15559998888@127.0.0.3>;tag=i{i}\r\nTo: <sip:+15557770001@{target}>\r\n\
             Call-ID: i{i}\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        )
        .into_bytes(),
    }
}

impl Flood {
    pub(crate) async fn start(
        sip: SocketAddr,
        api_base: String,
        api_key: String,
        invites_per_s: u32,
        own_per_s: u32,
        seconds: u64,
        data_dir: &Path,
    ) -> anyhow::Result<Flood> {
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let sipp = if invites_per_s > 0 {
            let scen = data_dir.join("flood.xml");
            std::fs::write(&scen, FLOOD_SCENARIO)?;
            let stat = data_dir.join("flood_stat.csv");
            let child = tokio::process::Command::new("sipp")
                .args([
                    "-sf".to_string(),
                    scen.display().to_string(),
                    "-i".into(),
                    "127.0.0.2".into(),
                    "-p".into(),
                    SIPP_FLOOD_PORT.to_string(),
                    "-cp".into(),
                    (SIPP_FLOOD_PORT + 1).to_string(),
                    "-mp".into(),
                    (SIPP_FLOOD_PORT + 2).to_string(),
                    "-r".into(),
                    invites_per_s.to_string(),
                    "-m".into(),
                    (u64::from(invites_per_s) * seconds).to_string(),
                    "-nostdin".into(),
                    "-timeout".into(),
                    format!("{}s", seconds + 30),
                    "-trace_stat".into(),
                    "-stf".into(),
                    stat.display().to_string(),
                    "-fd".into(),
                    "1".into(),
                    sip.to_string(),
                ])
                .current_dir(data_dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .context("sipp is required: apt-get install sip-tester")?;
            Some((child, stat))
        } else {
            None
        };

        // The bench's own flooder: sends on a fixed schedule, counts answers.
        let sock = UdpSocket::bind("127.0.0.3:0")
            .await
            .context("binding 127.0.0.3")?;
        let st = stop.clone();
        let own = tokio::spawn(async move {
            let (sent, answers, s503, s503ra) = (
                AtomicU64::new(0),
                AtomicU64::new(0),
                AtomicU64::new(0),
                AtomicU64::new(0),
            );
            let mut last_answer = 0.0f64;
            let mut answered = std::collections::HashSet::<String>::new();
            let period = Duration::from_secs_f64(1.0 / f64::from(own_per_s.max(1)));
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut buf = vec![0u8; 4096];
            let t0 = Instant::now();
            loop {
                if st.load(Ordering::Relaxed) {
                    break;
                }
                tokio::select! {
                    _ = tick.tick(), if own_per_s > 0 => {
                        let i = sent.fetch_add(1, Ordering::Relaxed);
                        let _ = sock.send_to(&own_datagram(i, sip), sip).await;
                    }
                    r = sock.recv_from(&mut buf) => {
                        if let Ok((n, _)) = r {
                            answers.fetch_add(1, Ordering::Relaxed);
                            last_answer = t0.elapsed().as_secs_f64();
                            let text = String::from_utf8_lossy(&buf[..n]);
                            let key = text
                                .lines()
                                .find(|l| l.to_ascii_lowercase().starts_with("call-id:"))
                                .map_or_else(|| text.to_string(), str::to_string);
                            answered.insert(key);
                            if text.starts_with("SIP/2.0 503") {
                                s503.fetch_add(1, Ordering::Relaxed);
                                if text.lines().any(|l| l.to_ascii_lowercase().starts_with("retry-after:")) {
                                    s503ra.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        }
                    }
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                }
            }
            (
                sent.into_inner(),
                answers.into_inner(),
                answered.len() as u64,
                s503.into_inner(),
                s503ra.into_inner(),
                last_answer,
            )
        });

        // The API's latency meanwhile.
        let st = stop.clone();
        let api = tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut lat = vec![];
            let mut errors = 0u64;
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while !st.load(Ordering::Relaxed) {
                tick.tick().await;
                let t = Instant::now();
                let r = client
                    .get(format!("{api_base}/v1/calls?limit=20"))
                    .bearer_auth(&api_key)
                    .send()
                    .await;
                match r {
                    Ok(resp) if resp.status().is_success() => {
                        let _ = resp.bytes().await;
                        lat.push(t.elapsed().as_secs_f64() * 1000.0);
                    }
                    _ => errors += 1,
                }
            }
            (lat, errors)
        });
        Ok(Flood {
            started,
            sipp,
            stop,
            own,
            api,
        })
    }

    pub(crate) async fn stop(self) -> FloodResult {
        self.stop.store(true, Ordering::Relaxed);
        let seconds = self.started.elapsed().as_secs_f64();
        let (
            own_sent,
            own_answers,
            own_answered_requests,
            own_503,
            own_503_with_retry_after,
            own_last_answer_s,
        ) = self.own.await.unwrap_or_default();
        let (mut lat, api_errors) = self.api.await.unwrap_or_default();
        lat.sort_by(f64::total_cmp);
        let (mut sipp_invites, mut sipp_exit) = (None, -1);
        if let Some((mut child, stat)) = self.sipp {
            let _ = child.kill().await;
            sipp_exit = child.wait().await.ok().and_then(|s| s.code()).unwrap_or(-1);
            sipp_invites = crate::bench_calls::sipp_stat_column(&stat, "TotalCallCreated");
        }
        FloodResult {
            seconds,
            sipp_invites,
            sipp_exit,
            own_sent,
            own_answers,
            own_answered_requests,
            own_503,
            own_503_with_retry_after,
            own_last_answer_s,
            api_samples: lat.len(),
            api_p50_ms: crate::bench_calls::percentile(&lat, 0.5),
            api_p99_ms: crate::bench_calls::percentile(&lat, 0.99),
            api_max_ms: lat.last().copied().unwrap_or(f64::NAN),
            api_errors,
        }
    }
}
