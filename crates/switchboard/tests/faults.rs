//! Faults while calls are live (issue 13): the database goes away under 20 live calls, and the
//! recordings disk fills up during a call. Real parts only: a PostgreSQL server of the test's
//! own stopped in immediate mode, a tmpfs mounted as the recordings directory, sipp peers
//! streaming audio, MP3 files decoded and measured.
//!
//! Ports (see README): sipp SIP 18600-18609, media 18610-18649 (4 per sipp: sipp also takes
//! media + 2), control 18650-18659.
//!
//! The disk-full test mounts a tmpfs, which needs root (CI runs as root); elsewhere it fails
//! and says so.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use switchboard_media::audio;
use switchboard_media::g711::G711;
use switchboard_testkit::PgInstance;

#[path = "live/server.rs"]
mod live_server;
use live_server::Server;

#[path = "live/sipp.rs"]
mod live_sipp;
use live_sipp::Sipp;

fn scenarios() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios")
}

/// A sipp UAS answering `calls` calls, each streaming a 1 kHz tone and hanging up after
/// `hold_ms`; its SIP messages are traced to `<dir>/<port>_messages.log`.
fn sipp_uas(dir: &Path, port: u16, calls: u32, hold_ms: u32) -> Sipp {
    let pcm = audio::sine(1000.0, 8000, 8000 * (hold_ms as usize / 1000 + 2), 12000.0);
    let tone = dir.join(format!("tone-{port}.ulaw"));
    std::fs::write(&tone, G711::Pcmu.encode(&pcm)).unwrap();
    let scen = std::fs::read_to_string(scenarios().join("uas_play_bye.xml"))
        .unwrap()
        .replace("TONE_FILE", &tone.display().to_string())
        .replace("HOLD_MS", &hold_ms.to_string());
    let path = dir.join(format!("uas-{port}.xml"));
    std::fs::write(&path, scen).unwrap();
    let n = port - 18600;
    Sipp::spawn_ports(
        &path,
        port,
        18610 + 4 * n,
        18650 + n,
        &[
            // (after spawn_ports' own -m 1 and -timeout: sipp takes the last value given)
            "-m".into(),
            calls.to_string(),
            "-l".into(),
            (calls + 5).to_string(),
            "-timeout".into(),
            "150s".into(),
            "-trace_msg".into(),
            "-message_file".into(),
            dir.join(format!("{port}_messages.log"))
                .display()
                .to_string(),
        ],
    )
}

/// The X-Switchboard-Call-Id of every INVITE a sipp trace received (retransmissions of one
/// INVITE count once: they share the Via branch).
fn invites_received(log: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut seen = std::collections::BTreeSet::new();
    let mut ids = vec![];
    for msg in text.split("message received").skip(1) {
        if !msg.contains("INVITE sip:") || !msg.lines().any(|l| l.starts_with("INVITE ")) {
            continue;
        }
        let header = |name: &str| {
            msg.lines()
                .find(|l| l.to_ascii_lowercase().starts_with(name))
                .map(|l| l.split_once(':').unwrap().1.trim().to_string())
        };
        let branch = header("via").unwrap_or_default();
        if seen.insert(branch) {
            ids.push(header("x-switchboard-call-id").unwrap_or_default());
        }
    }
    ids
}

/// Agent with a greeting, a trunk to sipp on `port`, and a caller-ID number bound to both.
async fn route(srv: &Server, port: u16, number: &str) {
    let agent = srv
        .create(
            "/v1/agents",
            json!({"name": format!("agent {port}"), "initial_message": "Hello, this is Switchboard."}),
        )
        .await;
    let trunk = srv
        .create(
            "/v1/sip-trunks",
            json!({"name": format!("sipp {port}"), "host": "127.0.0.1", "port": port, "transport": "udp"}),
        )
        .await;
    srv.create(
        "/v1/phone-numbers",
        json!({"phone_number": number, "agent_id": agent, "trunk_id": trunk}),
    )
    .await;
}

fn ms_since_epoch(v: &Value) -> i64 {
    let t = switchboard_domain::Timestamp::parse_param("t", v.as_str().expect("a time")).unwrap();
    t.micros() / 1000
}

fn now_ms() -> i64 {
    switchboard_domain::Timestamp::now().micros() / 1000
}

/// The caller channel of a recording (left of the stereo file): 1 s windows of the tone,
/// from 0.5 s after the start to 0.5 s before the end; returns the weakest window's RMS.
fn weakest_second(stereo: &Path) -> (f64, usize) {
    let (ch, rate, pcm) = audio::decode_mp3(stereo).expect("the stereo recording decodes");
    assert_eq!((ch, rate), (2, 8000));
    let left = &pcm[0];
    let windows: Vec<f64> = left[4000..left.len().saturating_sub(4000)]
        .chunks(8000)
        .filter(|w| w.len() == 8000)
        .map(audio::rms)
        .collect();
    (
        windows.iter().copied().fold(f64::INFINITY, f64::min),
        left.len(),
    )
}

/// PostgreSQL stops for 20 s while 20 calls are live (they end during the outage) and 5
/// more wait in the queue over the organization's cap; dispatches keep arriving. The live
/// calls keep their audio and recordings; the API answers 503; once the database is back,
/// every call's end is written (with the time it happened), nothing is left non-final, and
/// each queued call is dialed exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_with_live_calls_loses_nothing() {
    let pg = PgInstance::start();
    let url = pg.url();
    let srv = Server::start_at(tempfile::tempdir().unwrap(), None, |c| {
        c.store.database_url = Some(url);
        c.telephony.max_calls_per_org = 20;
    })
    .await;
    let tmp = tempfile::tempdir().unwrap();
    route(&srv, 18600, "+15550006000").await;
    route(&srv, 18601, "+15550006001").await;
    // The live calls end ~10 s after they are answered: inside the outage.
    let live_peer = sipp_uas(tmp.path(), 18600, 20, 10_000);
    let queued_peer = sipp_uas(tmp.path(), 18601, 5, 1_000);

    let mut live = vec![];
    for i in 0..20 {
        live.push(
            srv.dispatch("+15550006000", &format!("+1415555{:04}", 6100 + i))
                .await,
        );
    }
    for id in &live {
        srv.wait_status(id, "in_progress").await;
    }
    // Over the cap of 20: these wait in the dispatch queue.
    let mut queued = vec![];
    for i in 0..5 {
        queued.push(
            srv.dispatch("+15550006001", &format!("+1415555{:04}", 6200 + i))
                .await,
        );
    }

    // The outage.
    let pg = std::sync::Arc::new(pg);
    let p = pg.clone();
    tokio::task::spawn_blocking(move || p.stop()).await.unwrap();
    let down_at = Instant::now();
    let down_ms = now_ms();
    let mut refused = 0;
    for i in 0..3 {
        let (st, body) = srv
            .post(
                "/v1/call",
                json!({"from": "+15550006001", "to": format!("+1415555{:04}", 6300 + i)}),
            )
            .await;
        assert_eq!(st, 503, "a dispatch while the database is down: {body}");
        assert_eq!(
            body["message"], "the database is unavailable; retry shortly",
            "{body}"
        );
        refused += 1;
    }
    let (st, body) = srv.get("/v1/calls").await;
    assert_eq!(st, 503, "{body}");
    // The live calls run to their end (sipp hangs up each after 10 s) with the database away.
    assert_eq!(
        live_peer.finish().await,
        0,
        "the live calls' peer saw a failure"
    );
    let calls_ended_ms = now_ms();
    assert!(
        down_at.elapsed() < Duration::from_secs(20),
        "the live calls should end inside the outage (took {:?})",
        down_at.elapsed()
    );
    // The rest of the 20 s; the fault's length is the point here, not a synchronisation.
    tokio::time::sleep(Duration::from_secs(20).saturating_sub(down_at.elapsed())).await;
    let p = pg.clone();
    tokio::task::spawn_blocking(move || p.resume())
        .await
        .unwrap();
    let up_at = Instant::now();
    let up_ms = now_ms();

    // Every live call's end is written, with the time it happened (during the outage).
    let mut recovered = Duration::ZERO;
    for id in &live {
        let c = srv.wait_final(id).await;
        recovered = recovered.max(up_at.elapsed());
        assert_eq!(c["status"], "completed", "{c}");
        assert_eq!(c["end_reason"], "customer-ended-call", "{c}");
        let ended = ms_since_epoch(&c["end_time"]);
        assert!(
            (down_ms..=calls_ended_ms + 1000).contains(&ended),
            "ended at {ended}, outage {down_ms}..{up_ms}: {c}"
        );
        let rec = &c["recording"];
        assert_eq!(rec["incomplete"], false, "{c}");
        let ms = rec["duration_ms"].as_i64().unwrap();
        assert!((9_000..=12_000).contains(&ms), "recorded {ms} ms: {c}");
    }
    // The audio went on through the outage: each recording holds the tone in every second.
    let data = srv
        .dir
        .as_ref()
        .unwrap()
        .path()
        .join("recordings")
        .join(&srv.org);
    for id in &live {
        let (weakest, samples) = weakest_second(&data.join(format!("{id}.stereo.mp3")));
        assert!(
            weakest > 2000.0,
            "{id}: a second without the caller's audio (rms {weakest:.0}, {samples} samples)"
        );
    }
    // The queued calls are dialed after the database returns, each exactly once.
    for id in &queued {
        let c = srv.wait_final(id).await;
        assert_eq!(c["status"], "completed", "{c}");
        assert!(ms_since_epoch(&c["start_time"]) >= up_ms - 1000, "{c}");
    }
    assert_eq!(
        queued_peer.finish().await,
        0,
        "the queued calls' peer saw a failure"
    );
    let mut dialed = invites_received(&tmp.path().join("18601_messages.log"));
    dialed.sort();
    let mut want = queued.clone();
    want.sort();
    assert_eq!(dialed, want, "each queued call dialed exactly once");
    // Nothing left: no call non-final, no queue row that could dial again later, and the
    // calls refused during the outage were never created.
    let (st, list) = srv.get("/v1/calls?limit=100").await;
    assert_eq!(st, 200, "{list}");
    let calls = list["calls"].as_array().expect("calls");
    assert_eq!(calls.len(), 25, "{list}");
    assert!(calls.iter().all(|c| c["status"] == "completed"), "{list}");
    eprintln!(
        "outage with live calls: 20 live + 5 queued, outage 20 s, {refused} dispatches refused \
         with 503 meanwhile; 0 lost, 0 non-final; every end written {:.2} s after the database \
         returned",
        recovered.as_secs_f64()
    );
    srv.join().await;
}

/// A tmpfs of `bytes` mounted on `dir` for the life of the value.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, bytes: u64) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("mount(8)");
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs as the recordings disk, which needs root (CI runs \
             as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .args(["-l"])
            .arg(&self.0)
            .status();
    }
}

/// The recordings disk fills up during a call: the call goes on to its normal end, the
/// recording keeps what was written (it plays) and is marked incomplete with the reason,
/// nothing panics; once space returns, the next call is recorded whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_recordings_disk_marks_the_recording_incomplete_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let recordings = dir.path().join("recordings");
    let disk = Tmpfs::mount(&recordings, 1 << 20);
    // Leave room for ~4 s of the two files (32 + 48 kbit/s = 10 KB/s).
    let filler = recordings.join("filler");
    let free = |p: &Path| {
        let out = std::process::Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(p)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .unwrap()
            .trim()
            .parse::<u64>()
            .unwrap()
    };
    std::fs::write(&filler, vec![7u8; (free(&recordings) - 40_000) as usize]).unwrap();
    let srv = Server::start_at(dir, None, |_| {}).await;
    route(&srv, 18602, "+15550006002").await;
    let tmp = tempfile::tempdir().unwrap();

    // A 12 s call on a disk with room for ~4 s.
    let peer = sipp_uas(tmp.path(), 18602, 1, 12_000);
    let id = srv.dispatch("+15550006002", "+14155556400").await;
    let c = srv.wait_final(&id).await;
    assert_eq!(peer.finish().await, 0, "the peer saw a failure");
    assert_eq!(c["status"], "completed", "the call goes on to its end: {c}");
    assert_eq!(c["end_reason"], "customer-ended-call", "{c}");
    assert!(c["duration"].as_i64().unwrap() >= 11, "{c}");
    let rec = &c["recording"];
    assert_eq!(rec["incomplete"], true, "{c}");
    let why = rec["incomplete_reason"].as_str().unwrap();
    assert!(why.contains("No space left on device"), "{why}");
    let partial_ms = rec["duration_ms"].as_i64().unwrap();
    let ms = partial_ms;
    assert!(
        (1_000..=6_000).contains(&ms),
        "recorded {ms} ms of a 12 s call: {c}"
    );
    // What was written is served and plays, with the caller's tone, for as long as it says.
    let (st, mp3) = srv.bytes(&format!("/v1/call/recording/{id}.mp3")).await;
    assert_eq!(st, 200);
    assert_eq!(mp3.len() as i64, rec["size_bytes"].as_i64().unwrap());
    let (_, _, pcm) = audio::decode_mp3_bytes(mp3).expect("the partial recording decodes");
    assert!(
        (pcm[0].len() as i64 - ms * 8).abs() < 8000,
        "{} samples for {ms} ms",
        pcm[0].len()
    );
    assert!(audio::tone_ratio(&pcm[0][2000..6000], 8000, 1000.0) > 0.5);
    let (st, health) = srv.get("/healthz").await;
    assert_eq!(st, 200, "{health}");

    // Space returns: the next call is recorded whole.
    std::fs::remove_file(&filler).unwrap();
    let peer = sipp_uas(tmp.path(), 18602, 1, 3_000);
    let id = srv.dispatch("+15550006002", "+14155556401").await;
    let c = srv.wait_final(&id).await;
    assert_eq!(peer.finish().await, 0);
    let rec = &c["recording"];
    assert_eq!(rec["incomplete"], false, "{c}");
    assert!(rec["incomplete_reason"].is_null(), "{c}");
    let ms = rec["duration_ms"].as_i64().unwrap();
    assert!((2_500..=4_500).contains(&ms), "{c}");
    let (st, mp3) = srv
        .bytes(&format!("/v1/call/recording/{id}.stereo.mp3"))
        .await;
    assert_eq!(st, 200);
    let (_, _, pcm) = audio::decode_mp3_bytes(mp3).expect("decodes");
    assert!(audio::tone_ratio(&pcm[0][4000..16000], 8000, 1000.0) > 0.5);
    eprintln!(
        "disk full: the first call recorded {partial_ms} ms of 12 s and was marked incomplete \
         ({why}); the next call after space returned recorded {ms} ms of 3 s, whole"
    );
    srv.join().await;
    drop(disk);
}
