//! Shared helpers for the integration tests: our endpoint on port 0 and a sipp
//! launcher that records the child's pid and kills it when dropped.

#![allow(dead_code)] // each test binary uses a subset

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use switchboard_sip::{CallEvent, CallHandle, EndpointConfig, IncomingCall, SipEndpoint};
use tokio::net::{TcpListener, UdpSocket};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// Upper bound for any single awaited event: a safety net, not a synchroniser.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

pub async fn endpoint(with_tcp: bool) -> (SipEndpoint, mpsc::Receiver<IncomingCall>) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .with_test_writer()
        .try_init();
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let tcp = if with_tcp {
        Some(TcpListener::bind("127.0.0.1:0").await.unwrap())
    } else {
        None
    };
    SipEndpoint::start(EndpointConfig::default(), udp, tcp).unwrap()
}

pub fn scenario(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/scenarios")
        .join(name)
}

/// A running sipp. Killed (by its recorded pid, via the child handle) on drop.
pub struct Sipp {
    child: Child,
    pub pid: u32,
    pub port: u16,
}

/// Ports for one sipp instance (see README.md): SIP `port` (15060-15079), media
/// [`media_port`] (sipp also binds media+2 for video, hence the stride of 4) and
/// control `port + 200` — fixed, disjoint, so tests can run in parallel.
pub fn spawn_sipp(scenario: &std::path::Path, port: u16, extra: &[&str]) -> Sipp {
    let sipp = which("sipp").expect("sipp not installed: apt-get install -y sip-tester");
    let port_s = port.to_string();
    let mp = media_port(port).to_string();
    let cp = (port + 200).to_string();
    let mut args: Vec<&str> = vec![
        "-sf",
        scenario.to_str().unwrap(),
        "-i",
        "127.0.0.1",
        "-p",
        &port_s,
        "-mp",
        &mp,
        "-cp",
        &cp,
        "-m",
        "1",
        "-nostdin",
        "-timeout",
        "30s",
    ];
    args.extend_from_slice(extra);
    // Debug aid: SIPP_TRACE_DIR=/tmp/x writes sipp's message trace there.
    let trace = std::env::var("SIPP_TRACE_DIR")
        .ok()
        .map(|d| format!("{d}/sipp-{port}.log"));
    if let Some(t) = &trace {
        args.extend_from_slice(&[
            "-trace_msg",
            "-message_file",
            t,
            "-trace_err",
            "-error_file",
            t,
        ]);
    }
    let child = Command::new(sipp)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn sipp");
    let pid = child.id().expect("sipp pid");
    Sipp { child, pid, port }
}

impl Sipp {
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Wait for sipp to finish its single call; returns its exit code
    /// (0 = the scenario completed successfully).
    pub async fn finish(mut self) -> i32 {
        let status = tokio::time::timeout(Duration::from_secs(40), self.child.wait())
            .await
            .expect("sipp did not finish")
            .expect("wait for sipp");
        if !status.success() {
            let mut err = String::new();
            if let Some(mut e) = self.child.stderr.take() {
                use tokio::io::AsyncReadExt;
                let _ = e.read_to_string(&mut err).await;
            }
            eprintln!("sipp (pid {}) stderr: {err}", self.pid);
        }
        status.code().unwrap_or(-1)
    }
}

pub fn media_port(sip_port: u16) -> u16 {
    15400 + (sip_port - 15060) * 4
}

fn which(bin: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(bin))
            .find(|p| p.is_file())
    })
}

pub async fn next(call: &mut CallHandle) -> CallEvent {
    tokio::time::timeout(EVENT_TIMEOUT, call.next_event())
        .await
        .expect("timed out waiting for a call event")
        .expect("event stream closed")
}

/// Next event that is not Trying (100 is optional and may or may not be sent).
pub async fn next_significant(call: &mut CallHandle) -> CallEvent {
    loop {
        match next(call).await {
            CallEvent::Trying => continue,
            ev => return ev,
        }
    }
}
