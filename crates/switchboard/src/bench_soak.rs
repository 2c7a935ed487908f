//! `switchboard bench-calls --soak-seconds T --concurrency N --seconds S` (issue 13): N calls
//! kept live for T seconds, each S seconds long (a sipp UAS answers, streams a tone, hangs
//! up; the call is recorded), a new call dispatched as each ends. Samples the process's
//! resident memory, open files and the database and recordings sizes every 30 s, so the
//! curves show whether anything grows per call after warm-up; at the end every call must be
//! final and every recording must decode to the length it claims. Prints figures, asserts
//! nothing (the exit code is non-zero only when the bench itself fails).

use crate::bench_calls::{
    loadavg, raise_nofile, rss_kib, spawn_sipp_uas, status_field, Bench, BenchCallsArgs,
};
use futures::StreamExt;
use std::path::Path;
use std::time::{Duration, Instant};
use switchboard_domain::*;

/// What a soak left behind (the figures are printed).
#[derive(Debug, Clone, Default)]
pub struct SoakResult {
    pub calls: usize,
    pub dispatch_errors: u64,
    /// Calls per final status (and any left live).
    pub by_status: std::collections::BTreeMap<String, usize>,
    pub recordings_ok: usize,
    pub recordings_bad: usize,
    pub without_recording: usize,
    /// Open files at the first sample and after every call ended.
    pub fds_start: usize,
    pub fds_end: usize,
    /// Files under the soak's data directory (recordings, the database) still open after
    /// every call ended, apart from the database's own: must be 0.
    pub files_open_in_data_dir: usize,
}

struct Sample {
    at_s: f64,
    created: usize,
    finished: i64,
    rss_mib: f64,
    /// The anonymous part of the RSS (heaps: what can leak) and the file-backed part (the
    /// binary's pages, the model files), from /proc/self/status.
    anon_mib: f64,
    file_mib: f64,
    threads: u64,
    /// Tokio tasks alive (the server's and this client's): a per-call task that outlives its
    /// call shows up here as a count that climbs with the calls finished.
    tasks: usize,
    fds: usize,
    db_bytes: u64,
    recordings_bytes: u64,
}

fn open_files() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Bytes under `p` (files only, recursively).
fn tree_bytes(p: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => tree_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Open files of this process under `dir`, apart from the database's.
fn open_under(dir: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir("/proc/self/fd") else {
        return 0;
    };
    rd.flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter(|p| p.starts_with(dir))
        .filter(|p| {
            !p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("switchboard.db"))
        })
        .count()
}

fn db_bytes(dir: &Path) -> u64 {
    ["switchboard.db", "switchboard.db-wal", "switchboard.db-shm"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
        .map(|m| m.len())
        .sum()
}

pub async fn run(args: &BenchCallsArgs, n: usize, root: &Path) -> anyhow::Result<SoakResult> {
    let dir = root.join("soak");
    std::fs::create_dir_all(&dir)?;
    raise_nofile();
    let (bench, scen) = Bench::with_tone_peer(args, args.sip_port, &dir, n).await?;
    let soak = Duration::from_secs(args.soak_seconds);
    let (mut sipp, _stat) = spawn_sipp_uas(
        &scen,
        &dir,
        args.sipp_port,
        args.sipp_media_port,
        10_000_000,
        soak.as_secs() + args.seconds,
    )?;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let start = Instant::now();
    let mut ids: Vec<CallId> = vec![];
    let mut samples: Vec<Sample> = vec![];
    let mut next_sample = start;
    let every = Duration::from_secs(30);
    let mut dispatch_errors = 0u64;
    eprintln!(
        "soak: {n} calls of {} s kept live for {} s ...",
        args.seconds, args.soak_seconds
    );
    loop {
        let live =
            bench.count(CallStatus::Dialing).await? + bench.count(CallStatus::InProgress).await?;
        let done = start.elapsed() >= soak;
        // Sampled before this round's dispatches: every call created so far is live or over.
        if Instant::now() >= next_sample || (done && live == 0) {
            let s = Sample {
                at_s: start.elapsed().as_secs_f64(),
                created: ids.len(),
                finished: ids.len() as i64 - live,
                rss_mib: rss_kib() as f64 / 1024.0,
                anon_mib: status_field("RssAnon") as f64 / 1024.0,
                file_mib: status_field("RssFile") as f64 / 1024.0,
                threads: status_field("Threads"),
                tasks: tokio::runtime::Handle::current()
                    .metrics()
                    .num_alive_tasks(),
                fds: open_files(),
                db_bytes: db_bytes(&dir),
                recordings_bytes: tree_bytes(&dir.join("recordings")),
            };
            eprintln!(
                "soak {:>6.0} s: {} calls created, {} finished, RSS {:.1} MiB (anon {:.1}, file {:.1}), {} threads, {} tasks, {} open files, database {:.1} MiB, load {}",
                s.at_s,
                s.created,
                s.finished,
                s.rss_mib,
                s.anon_mib,
                s.file_mib,
                s.threads,
                s.tasks,
                s.fds,
                s.db_bytes as f64 / 1048576.0,
                loadavg()
            );
            samples.push(s);
            next_sample += every;
        }
        if !done {
            for _ in (live as usize)..n {
                match bench.dispatch("+15550001111", ids.len()).await {
                    Ok(id) => ids.push(id),
                    Err(e) => {
                        dispatch_errors += 1;
                        eprintln!("soak: dispatch failed: {e:#}");
                    }
                }
            }
        }
        if done && live == 0 {
            break;
        }
        if done && start.elapsed() > soak + Duration::from_secs(args.seconds + 120) {
            eprintln!("soak: {live} calls still live 120 s after the last should have ended");
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let _ = sipp.kill().await;
    let files_open_in_data_dir = open_under(&dir);

    // Every call final; every recording decodes to the length it claims.
    let mut by_status: std::collections::BTreeMap<String, usize> = Default::default();
    let (mut decoded, mut bad, mut missing) = (0usize, vec![], 0usize);
    let mut recordings = vec![];
    for id in &ids {
        let call = bench.store.get_call(bench.org, *id, false).await?;
        *by_status.entry(call.status.to_string()).or_default() += 1;
        match call.recording {
            Some(r) => recordings.push((*id, r)),
            None => missing += 1,
        }
    }
    let rec_root = dir.join("recordings");
    let checks = futures::stream::iter(recordings.into_iter().map(|(id, r)| {
        let path = rec_root.join(&r.key);
        tokio::task::spawn_blocking(move || {
            let ok = switchboard_media::audio::decode_mp3(&path)
                .map(|(_, rate, pcm)| {
                    let ms = pcm[0].len() as i64 * 1000 / i64::from(rate);
                    (ms - r.duration_ms.unwrap_or(0)).abs() < 1000 && r.incomplete_reason.is_none()
                })
                .unwrap_or(false);
            (id, ok)
        })
    }))
    .buffer_unordered(2);
    let results: Vec<_> = checks.collect().await;
    for r in results {
        match r {
            Ok((_, true)) => decoded += 1,
            Ok((id, false)) => bad.push(id),
            Err(_) => {}
        }
    }
    bench.stop().await?;

    println!(
        "\nSoak: {n} concurrent calls of {} s for {} s ({} calls; {} dispatch errors)\n",
        args.seconds,
        args.soak_seconds,
        ids.len(),
        dispatch_errors
    );
    println!(
        "| time | calls finished | RSS | RSS anon | RSS file | threads | tasks | open files | database | database per call | recordings |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for s in &samples {
        let per_call = if s.created > 0 {
            s.db_bytes as f64 / s.created as f64 / 1024.0
        } else {
            0.0
        };
        println!(
            "| {:.0} s | {} | {:.1} MiB | {:.1} MiB | {:.1} MiB | {} | {} | {} | {:.1} MiB | {:.2} KiB | {:.0} MiB |",
            s.at_s,
            s.finished,
            s.rss_mib,
            s.anon_mib,
            s.file_mib,
            s.threads,
            s.tasks,
            s.fds,
            s.db_bytes as f64 / 1048576.0,
            per_call,
            s.recordings_bytes as f64 / 1048576.0
        );
    }
    // Growth after warm-up: from the first sample past a fifth of the run to the last one
    // taken while calls were live.
    let warm = samples
        .iter()
        .find(|s| s.at_s >= soak.as_secs_f64() / 5.0)
        .or(samples.first());
    let last_live = samples
        .iter()
        .rev()
        .find(|s| s.at_s <= soak.as_secs_f64() + 1.0)
        .or(samples.last());
    if let (Some(a), Some(b)) = (warm, last_live) {
        let calls = (b.finished - a.finished).max(1) as f64;
        println!(
            "\nafter warm-up ({:.0} s → {:.0} s, {} calls): RSS {:+.1} MiB ({:+.2} KiB per call; anon {:+.1} MiB), open files {:+}, database {:+.2} KiB per call",
            a.at_s,
            b.at_s,
            b.finished - a.finished,
            b.rss_mib - a.rss_mib,
            (b.rss_mib - a.rss_mib) * 1024.0 / calls,
            b.anon_mib - a.anon_mib,
            b.fds as i64 - a.fds as i64,
            (b.db_bytes as f64 - a.db_bytes as f64) / 1024.0 / calls,
        );
    }
    println!("files under the data directory still open after the last call: {files_open_in_data_dir} (the database's apart)");
    println!(
        "calls by status: {by_status:?}; recordings: {decoded} decode to their stated length, {} do not{}, {missing} calls without one",
        bad.len(),
        if bad.is_empty() {
            String::new()
        } else {
            format!(" (e.g. {})", bad[0])
        }
    );
    Ok(SoakResult {
        calls: ids.len(),
        dispatch_errors,
        by_status,
        recordings_ok: decoded,
        recordings_bad: bad.len(),
        without_recording: missing,
        fds_start: samples.first().map(|s| s.fds).unwrap_or(0),
        fds_end: samples.last().map(|s| s.fds).unwrap_or(0),
        files_open_in_data_dir,
    })
}
