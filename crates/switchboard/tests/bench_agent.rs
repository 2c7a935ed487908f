//! Smoke test of `switchboard bench-agent`: 2 conversing calls of 20 s against sipp and the
//! fake providers, in-process, then a one-sentence pause measurement. Checks that it runs and
//! reports figures, never their values.
//!
//! Ports (bench-agent's reserved range: SIP 17500-17599, sipp media 17600-17649, RTP
//! 50000-54999): server SIP 17530, sipp 17520 (control 17570, media 17620/17622), RTP
//! 54000-54999 (the bench's default is 50000-53999).

use clap::Parser;
use switchboard::config::{Cli, Command};

/// Warnings and errors of the in-process server go to the test's output, so a failure shows
/// its cause (a 500 names only "it has been logged").
fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
        .with_test_writer()
        .try_init();
}

fn args(extra: &[&str]) -> switchboard::bench_agent::BenchAgentArgs {
    let mut argv = vec!["switchboard", "bench-agent"];
    argv.extend_from_slice(extra);
    let cli = Cli::try_parse_from(argv).unwrap();
    let Command::BenchAgent(args) = cli.command else {
        panic!("not bench-agent");
    };
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_agent_runs_with_two_calls() {
    logs();
    let a = args(&[
        "--concurrency",
        "2",
        "--seconds",
        "20",
        "--idle-ms",
        "200",
        "--settle-ms",
        "300",
        "--stagger-ms",
        "500",
        "--in-process",
        "--skip-pauses",
        "--sip-port",
        "17530",
        "--sipp-port",
        "17520",
        "--sipp-media-port",
        "17620",
        "--rtp-ports",
        "54000-54999",
    ]);
    let report = switchboard::bench_agent::measure(a).await.unwrap();
    assert!(report.command.contains("bench-agent"), "{}", report.command);
    let level = &report.levels[0];
    assert_eq!(level.calls, 2);
    assert_eq!(level.completed, 2, "{level:?}");
    assert_eq!(level.not_final, 0, "{level:?}");
    assert!(level.overhead_ms.n > 0, "no answered turn: {level:?}");
    assert!(level.turns_per_call.mean > 0.0, "{level:?}");
    assert!(level.overhead_ms.p50.is_finite() && level.overhead_ms.p99 >= level.overhead_ms.p50);
    assert!(
        level.voice_to_voice_ms.n > 0 && level.end_of_turn_ms.n > 0,
        "{level:?}"
    );
    assert!(
        level.llm_requests > 0 && level.stt_requests > 0 && level.tts_requests > 0,
        "{level:?}"
    );
    assert_eq!(level.sipp_exit, 0, "{level:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_agent_measures_pauses() {
    logs();
    let a = args(&[
        "--pauses",
        "--pause-sentences",
        "1",
        "--pause-wpm",
        "150",
        "--pause-ms",
        "500",
    ]);
    let report = switchboard::bench_agent::measure(a).await.unwrap();
    assert!(report.levels.is_empty());
    let p = report.pauses.expect("pause figures");
    // One sentence: whole, and with the pause made two ways.
    assert_eq!(p.whole_sentences, 1);
    assert_eq!(p.rows.len(), 2, "{p:?}");
    assert!(p.rows.iter().all(|r| r.utterances == 1), "{p:?}");
    assert_eq!(p.ends_by_model + p.ends_by_limit + p.not_ended, 3, "{p:?}");
    assert!(p.predict_ms.n > 0, "{p:?}");
}
