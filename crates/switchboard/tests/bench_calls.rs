//! Smoke test of `switchboard bench-calls`: 2 recorded calls of 3 s against sipp and 10
//! dispatch-latency samples, in-process. Checks that it runs and counts, never its timings.
//!
//! Ports (bench-calls' reserved range 17000-17099): server SIP 17070 (dispatch phase 17079),
//! sipp 17010 (control 17060, media 17106/17108), 603 responder 17095, RTP 38000-38999.
//! The flood test: server SIP 17071, sipp 17011 (control 17061, media 17112/17114), the
//! flooding sipp on 127.0.0.2:17040-17042, RTP 37000-37999. The soak test: server SIP 17072,
//! sipp 17012 (control 17062, media 17118/17120), RTP 36000-36999.

use clap::Parser;
use switchboard::config::{Cli, Command};

#[tokio::test]
async fn bench_calls_runs_with_two_calls() {
    let cli = Cli::try_parse_from([
        "switchboard",
        "bench-calls",
        "--concurrency",
        "2",
        "--seconds",
        "3",
        "--idle-ms",
        "200",
        "--settle-ms",
        "300",
        "--dispatch-calls",
        "10",
        "--in-process",
        "--sip-port",
        "17070",
        "--sipp-port",
        "17010",
        "--sipp-media-port",
        "17106",
        "--decline-port",
        "17095",
        "--rtp-ports",
        "38000-38999",
    ])
    .unwrap();
    let Command::BenchCalls(args) = cli.command else {
        panic!("not bench-calls");
    };
    let report = switchboard::bench_calls::measure(args).await.unwrap();
    let level = &report.levels[0];
    assert_eq!(level.calls, 2);
    assert_eq!(level.completed, 2, "{level:?}");
    assert_eq!(level.with_metrics, 2, "{level:?}");
    assert!(level.received_min > 100, "{level:?}");
    assert_eq!(level.sipp_exit, 0, "{level:?}");
    let d = report.dispatch.unwrap();
    assert_eq!((d.n, d.missing), (10, 0), "{d:?}");
}

fn args(extra: &[&str]) -> switchboard::bench_calls::BenchCallsArgs {
    let mut argv = vec!["switchboard", "bench-calls"];
    argv.extend_from_slice(extra);
    let Command::BenchCalls(args) = Cli::try_parse_from(argv).unwrap().command else {
        panic!("not bench-calls");
    };
    args
}

/// The SIP flood of issue 13 at smoke scale: 5 live calls while 1,000 INVITEs/s and 200
/// malformed datagrams/s arrive from untrusted sources. The live calls lose no packet and
/// complete, the API answers every request, and the flooding source is throttled (it gets
/// a 503 with Retry-After and far fewer answers than it sent). The figures at 50 calls are
/// in BENCHMARKS.md ("Reliability").
#[tokio::test]
async fn live_calls_survive_a_sip_flood() {
    let args = args(&[
        "--concurrency",
        "5",
        "--seconds",
        "10",
        "--idle-ms",
        "200",
        "--settle-ms",
        "300",
        "--dispatch-calls",
        "0",
        "--in-process",
        "--sip-port",
        "17071",
        "--sipp-port",
        "17011",
        "--sipp-media-port",
        "17112",
        "--rtp-ports",
        "37000-37999",
        "--flood-invites",
        "1000",
        "--flood-malformed",
        "200",
    ]);
    let report = switchboard::bench_calls::measure(args).await.unwrap();
    let level = &report.levels[0];
    assert_eq!(level.completed, 5, "{level:?}");
    assert_eq!(level.with_metrics, 5, "{level:?}");
    assert_eq!(level.lost_total, 0, "{level:?}");
    assert_eq!(level.sipp_exit, 0, "{level:?}");
    let f = level.flood.as_ref().expect("a flood ran");
    assert!(f.sipp_invites.unwrap_or(0) > 1000, "{f:?}");
    assert!(f.api_samples > 50, "{f:?}");
    assert_eq!(f.api_errors, 0, "{f:?}");
    assert!(f.own_503_with_retry_after >= 1, "{f:?}");
    // 200/s against a limit of 50/s (burst 100): the burst, one 503, then silence while it
    // keeps exceeding.
    assert!(f.own_answered_requests <= 110, "throttled: {f:?}");
    assert!(f.own_sent > 1000, "{f:?}");
}

/// A short soak: calls cycle (answered, recorded, hung up, replaced) and afterwards every
/// call is final, every recording decodes to its stated length, and no file stays open.
/// The 30-minute figures are in BENCHMARKS.md ("Reliability").
#[tokio::test]
async fn a_short_soak_leaves_every_call_final_and_every_recording_playable() {
    let args = args(&[
        "--concurrency",
        "4",
        "--seconds",
        "3",
        "--soak-seconds",
        "12",
        "--dispatch-calls",
        "0",
        "--in-process",
        "--sip-port",
        "17072",
        "--sipp-port",
        "17012",
        "--sipp-media-port",
        "17118",
        "--rtp-ports",
        "36000-36999",
    ]);
    let report = switchboard::bench_calls::measure(args).await.unwrap();
    let s = report.soak.expect("a soak ran");
    assert!(s.calls >= 8, "calls cycled: {s:?}");
    assert_eq!(s.by_status.get("completed"), Some(&s.calls), "{s:?}");
    assert_eq!(
        (s.recordings_ok, s.recordings_bad, s.without_recording),
        (s.calls, 0, 0),
        "{s:?}"
    );
    assert_eq!(s.files_open_in_data_dir, 0, "files left open: {s:?}");
}
