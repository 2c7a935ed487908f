//! Smoke test of `switchboard bench-calls`: 2 recorded calls of 3 s against sipp and 10
//! dispatch-latency samples, in-process. Checks that it runs and counts, never its timings.
//!
//! Ports (bench-calls' reserved range 17000-17099): server SIP 17070 (dispatch phase 17079),
//! sipp 17010 (control 17060, media 17106/17108), 603 responder 17095, RTP 38000-38999.

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
