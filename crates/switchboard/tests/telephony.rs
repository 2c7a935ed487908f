//! End-to-end telephony: the real server places and receives calls over SIP with real sipp
//! peers on loopback, and the recordings are decoded and checked for the audio itself.
//!
//! Fixed sipp ports (see README): SIP 16060-16079 (16060-16067 used), media 16400+, control SIP+200.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use switchboard_media::audio;
use switchboard_media::g711::G711;

#[path = "live/server.rs"]
mod live_server;
use live_server::Server;

/// Agent + trunk to 127.0.0.1:`sipp_port` + caller-ID number bound to both.
async fn setup_outbound(srv: &Server, sipp_port: u16, greeting: &str) -> String {
    let (s, agent) = srv
        .post(
            "/v1/agents",
            json!({"name": "Agent", "initial_message": greeting, "max_duration_seconds": 60}),
        )
        .await;
    assert_eq!(s, 201, "{agent}");
    let (s, trunk) = srv
        .post(
            "/v1/sip-trunks",
            json!({"name": "sipp", "host": "127.0.0.1", "port": sipp_port, "transport": "udp"}),
        )
        .await;
    assert_eq!(s, 201, "{trunk}");
    let (s, num) = srv
        .post("/v1/phone-numbers", json!({"phone_number": "+15550001111", "agent_id": agent["id"], "trunk_id": trunk["id"]}))
        .await;
    assert_eq!(s, 201, "{num}");
    agent["id"].as_str().unwrap().to_string()
}

fn scenarios() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios")
}

#[path = "live/sipp.rs"]
mod live_sipp;
use live_sipp::Sipp;

impl Sipp {
    /// sipp on SIP `port` (16060-16079), media 16400 + 4n, control port + 200.
    fn spawn(scenario: &Path, port: u16, extra: &[String]) -> Sipp {
        Sipp::spawn_ports(
            scenario,
            port,
            16400 + (port - 16060) * 4,
            port + 200,
            extra,
        )
    }
}

/// Writes `seconds` of a 1 kHz tone as raw mu-law (what sipp's rtp_stream plays).
fn tone_file(dir: &Path, seconds: u32) -> PathBuf {
    let pcm = audio::sine(1000.0, 8000, (8000 * seconds) as usize, 12000.0);
    let p = dir.join("tone.ulaw");
    std::fs::write(&p, G711::Pcmu.encode(&pcm)).unwrap();
    p
}

fn decode(bytes: &[u8], dir: &Path, name: &str) -> (usize, u32, Vec<Vec<i16>>) {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    audio::decode_mp3(&p).unwrap()
}

fn secs(v: &Value) -> f64 {
    chrono_like(v.as_str().unwrap())
}

/// Seconds since the epoch of an RFC 3339 UTC time with milliseconds.
fn chrono_like(s: &str) -> f64 {
    let t = switchboard_domain::Timestamp::parse_param("t", s).unwrap();
    t.micros() as f64 / 1e6
}

#[tokio::test]
async fn outbound_call_is_dialed_answered_recorded_and_completed() {
    let srv = Server::start().await;
    setup_outbound(
        &srv,
        16060,
        "Hello, this is Switchboard calling about your appointment.",
    )
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let tone = tone_file(tmp.path(), 3);
    let scen = std::fs::read_to_string(scenarios().join("uas_play_bye.xml"))
        .unwrap()
        .replace("TONE_FILE", &tone.display().to_string())
        .replace("HOLD_MS", "4000");
    let scen_path = tmp.path().join("uas_play_bye.xml");
    std::fs::write(&scen_path, scen).unwrap();
    let sipp = Sipp::spawn(&scen_path, 16060, &[]);

    let (s, call) = srv
        .post(
            "/v1/call",
            json!({"from": "+15550001111", "to": "+14155550123", "context": "e2e"}),
        )
        .await;
    assert_eq!(s, 201, "{call}");
    assert_eq!(call["status"], "dialing");
    let id = call["id"].as_str().unwrap().to_string();
    let live = srv.wait_status(&id, "in_progress").await;
    assert!(live["start_time"].is_string());
    let done = srv.wait_final(&id).await;
    assert_eq!(sipp.finish().await, 0, "sipp scenario failed");
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["end_reason"], "customer-ended-call");
    let (start, end) = (secs(&done["start_time"]), secs(&done["end_time"]));
    let talk = end - start;
    assert!((3.5..6.0).contains(&talk), "talk time {talk}");
    assert!(done["duration"].as_i64().unwrap() >= 3);
    let url = done["recording_url"].as_str().expect("recording_url");
    assert!(url.ends_with(&format!("/v1/call/recording/{id}.mp3")));

    // The RTP counters are kept on the call: 3 s of tone is 150 packets, none lost.
    let (st, with_metrics) = srv.get(&format!("/v1/call/{id}?include=metrics")).await;
    assert_eq!(st, 200);
    let m = &with_metrics["audio_metrics"];
    let received = m["packets_received"].as_u64().unwrap_or(0);
    assert!(received > 100, "packets_received {received}: {m}");
    assert_eq!(m["lost"], 0, "{m}");
    assert!(m["packets_sent"].as_u64().unwrap_or(0) > 150, "{m}");
    assert!(m["jitter_ms"].is_number(), "{m}");

    // Mono mix: decodes, and its length matches the call within 0.5 s.
    let (st, mono) = srv.bytes(&format!("/v1/call/recording/{id}.mp3")).await;
    assert_eq!(st, 200);
    let (ch, rate, samples) = decode(&mono, tmp.path(), "mono.mp3");
    assert_eq!((ch, rate), (1, 8000));
    let rec_secs = samples[0].len() as f64 / 8000.0;
    assert!(
        (rec_secs - talk).abs() < 0.5,
        "recording {rec_secs}s vs call {talk}s"
    );

    // Dual channel: the far end's tone on the left (caller), the greeting on the right.
    let (st, stereo) = srv
        .bytes(&format!("/v1/call/recording/{id}.stereo.mp3"))
        .await;
    assert_eq!(st, 200);
    let (ch, _, chans) = decode(&stereo, tmp.path(), "stereo.mp3");
    assert_eq!(ch, 2);
    let caller = &chans[0][..8000 * 3];
    let agent = &chans[1][..8000 * 3];
    let tone_in_caller = audio::tone_ratio(caller, 8000, 1000.0);
    assert!(
        tone_in_caller > 0.5,
        "1 kHz tone share in caller channel: {tone_in_caller}"
    );
    assert!(
        audio::rms(agent) > 300.0,
        "greeting energy in agent channel: {}",
        audio::rms(agent)
    );
    let tone_in_agent = audio::tone_ratio(agent, 8000, 1000.0);
    assert!(
        tone_in_agent < 0.2,
        "caller's tone leaked into agent channel: {tone_in_agent}"
    );
    srv.join().await;
}

#[tokio::test]
async fn outbound_rejections_map_to_status_reason_and_code() {
    let srv = Server::start().await;
    setup_outbound(&srv, 16061, "Hi").await;
    let tmp = tempfile::tempdir().unwrap();
    let template = std::fs::read_to_string(scenarios().join("uas_reject.xml")).unwrap();
    for (code, status, reason) in [
        (486, "no_answer", "busy"),
        (603, "no_answer", "declined"),
        (480, "no_answer", "no-answer"),
        (404, "failed", "number-not-found"),
        (503, "failed", "service-unavailable"),
    ] {
        let p = tmp.path().join(format!("reject_{code}.xml"));
        std::fs::write(
            &p,
            template.replace(
                "SIP/2.0 480 Rejected By Test",
                &format!("SIP/2.0 {code} Rejected By Test"),
            ),
        )
        .unwrap();
        let sipp = Sipp::spawn(&p, 16061, &[]);
        let (s, call) = srv
            .post(
                "/v1/call",
                json!({"from": "+15550001111", "to": "+14155550123"}),
            )
            .await;
        assert_eq!(s, 201);
        let done = srv.wait_final(call["id"].as_str().unwrap()).await;
        assert_eq!(sipp.finish().await, 0);
        assert_eq!(done["status"], status, "{code}: {done}");
        assert_eq!(done["end_reason"], reason, "{code}");
        assert_eq!(done["sip_code"], code, "{code}");
        assert!(done["end_time"].is_string());
        assert!(done["start_time"].is_null());
    }
    srv.join().await;
}

#[tokio::test]
async fn ring_timeout_and_hangup_while_ringing() {
    let srv = Server::start().await;
    setup_outbound(&srv, 16062, "Hi").await;
    let scen = scenarios().join("uas_ring_cancel.xml");
    // Ring timeout set on the call: 1 s, then CANCEL → no_answer / ring-timeout.
    let sipp = Sipp::spawn(&scen, 16062, &[]);
    let (_, call) = srv
        .post(
            "/v1/call",
            json!({"from": "+15550001111", "to": "+14155550123", "ring_timeout": 1}),
        )
        .await;
    let done = srv.wait_final(call["id"].as_str().unwrap()).await;
    assert_eq!(sipp.finish().await, 0);
    assert_eq!(done["status"], "no_answer", "{done}");
    assert_eq!(done["end_reason"], "ring-timeout");

    // Hang-up through the API while ringing: CANCEL.
    let sipp = Sipp::spawn(&scen, 16062, &[]);
    let (_, call) = srv
        .post(
            "/v1/call",
            json!({"from": "+15550001111", "to": "+14155550123"}),
        )
        .await;
    let id = call["id"].as_str().unwrap();
    let mut accepted = false;
    for _ in 0..200 {
        let (s, _) = srv.post(&format!("/v1/call/{id}/hangup"), json!({})).await;
        if s == 202 {
            accepted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(accepted, "hangup never accepted");
    let done = srv.wait_final(id).await;
    assert_eq!(sipp.finish().await, 0);
    assert_eq!(done["status"], "no_answer", "{done}");
    assert_eq!(done["end_reason"], "cancelled-before-answer");
    srv.join().await;
}

#[tokio::test]
async fn hangup_through_the_api_while_talking() {
    let srv = Server::start().await;
    setup_outbound(&srv, 16063, "Hi there").await;
    let sipp = Sipp::spawn(&scenarios().join("uas_answer_wait_bye.xml"), 16063, &[]);
    let (_, call) = srv
        .post(
            "/v1/call",
            json!({"from": "+15550001111", "to": "+14155550123"}),
        )
        .await;
    let id = call["id"].as_str().unwrap();
    srv.wait_status(id, "in_progress").await;
    let (s, body) = srv.post(&format!("/v1/call/{id}/hangup"), json!({})).await;
    assert_eq!(s, 202, "{body}");
    let done = srv.wait_final(id).await;
    assert_eq!(sipp.finish().await, 0, "sipp did not get our BYE");
    assert_eq!(done["status"], "completed");
    assert_eq!(done["end_reason"], "agent-ended-call");
    let (s, _) = srv.post(&format!("/v1/call/{id}/hangup"), json!({})).await;
    assert_eq!(s, 409);
    srv.join().await;
}

#[tokio::test]
async fn inbound_call_is_routed_recorded_and_captures_dtmf() {
    let srv = Server::start().await;
    let (_, agent) = srv
        .post(
            "/v1/agents",
            json!({"name": "Inbound", "initial_message": "Thanks for calling."}),
        )
        .await;
    let (s, _) = srv
        .post(
            "/v1/phone-numbers",
            json!({"phone_number": "+15550001111", "agent_id": agent["id"]}),
        )
        .await;
    assert_eq!(s, 201);
    let target = format!("127.0.0.1:{}", srv.sip_port);
    let sipp = Sipp::spawn(
        &scenarios().join("uac_dtmf_bye.xml"),
        16064,
        std::slice::from_ref(&target),
    );
    assert_eq!(sipp.finish().await, 0, "inbound scenario failed");
    let (_, list) = srv.get("/v1/calls?call_type=inbound").await;
    assert_eq!(list["num_items"], 1, "{list}");
    let id = list["calls"][0]["id"].as_str().unwrap().to_string();
    let done = srv.wait_final(&id).await;
    assert_eq!(done["type"], "inbound");
    assert_eq!(done["agent_id"], agent["id"]);
    assert_eq!(done["client_number"], "+15559998888");
    assert_eq!(done["status"], "completed");
    assert_eq!(done["end_reason"], "customer-ended-call");
    let events = done["events"].as_array().expect("events");
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "dtmf" && e["digit"] == "5"),
        "{events:?}"
    );
    let (st, mp3) = srv.bytes(&format!("/v1/call/recording/{id}.mp3")).await;
    assert_eq!(st, 200);
    let tmp = tempfile::tempdir().unwrap();
    let (_, _, s) = decode(&mp3, tmp.path(), "in.mp3");
    assert!(s[0].len() > 8000, "recording too short");

    // An unknown number is refused with 404.
    let p = tmp.path().join("unknown.xml");
    let scen = std::fs::read_to_string(scenarios().join("uac_unknown.xml")).unwrap();
    std::fs::write(&p, scen).unwrap();
    let sipp = Sipp::spawn(&p, 16065, &[target]);
    assert_eq!(sipp.finish().await, 0, "expected 404 for an unknown number");
    srv.join().await;
}

/// A real `switchboard serve` process on fixed ports (HTTP 16500, SIP 16501).
fn spawn_server(dir: &Path) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:16500",
            "--sip-listen",
            "127.0.0.1:16501",
            "--rtp-ports",
            "16600-16699",
        ])
        .args(["--max-calls-per-org", "1", "--data-dir"])
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start switchboard")
}

async fn wait_http(client: &reqwest::Client) {
    for _ in 0..200 {
        if client
            .get("http://127.0.0.1:16500/healthz")
            .send()
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("server did not start");
}

#[tokio::test]
async fn kill_9_with_calls_live_and_queued_then_restart() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let mut first = spawn_server(dir.path());
    let line = std::io::BufReader::new(first.stdout.take().unwrap())
        .lines()
        .next()
        .unwrap()
        .unwrap();
    let key = serde_json::from_str::<Value>(&line).unwrap()["api_key"]
        .as_str()
        .unwrap()
        .to_string();
    let client = reqwest::Client::new();
    wait_http(&client).await;
    let srv = Server::remote("http://127.0.0.1:16500", key, 16501);
    setup_outbound(&srv, 16066, "Hello").await;
    // Call 1 is answered and stays up; call 2 waits in the queue (cap of 1 per organization).
    let sipp = Sipp::spawn(&scenarios().join("uas_answer_wait_bye.xml"), 16066, &[]);
    let (_, c1) = srv
        .post(
            "/v1/call",
            json!({"from": "+15550001111", "to": "+14155550001"}),
        )
        .await;
    let id1 = c1["id"].as_str().unwrap().to_string();
    srv.wait_status(&id1, "in_progress").await;
    let (_, c2) = srv
        .post(
            "/v1/call",
            json!({"from": "+15550001111", "to": "+14155550002"}),
        )
        .await;
    let id2 = c2["id"].as_str().unwrap().to_string();
    // Let the recorder flush some audio (it writes every 0.5 s) before the crash.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    drop(sipp);

    // Restart: the live call is closed as failed/server_restarted with its partial recording;
    // the queued call is dialed and completes.
    let sipp = Sipp::spawn(&scenarios().join("uas_answer_bye.xml"), 16066, &[]);
    let mut second = spawn_server(dir.path());
    wait_http(&client).await;
    let (_, one) = srv.get(&format!("/v1/call/{id1}")).await;
    assert_eq!(one["status"], "failed", "{one}");
    assert_eq!(one["end_reason"], "server_restarted");
    assert!(one["end_time"].is_string());
    let (st, mp3) = srv.bytes(&format!("/v1/call/recording/{id1}.mp3")).await;
    assert_eq!(st, 200, "partial recording kept");
    let tmp = tempfile::tempdir().unwrap();
    let (_, _, s) = decode(&mp3, tmp.path(), "partial.mp3");
    assert!(!s[0].is_empty());
    let two = srv.wait_final(&id2).await;
    assert_eq!(sipp.finish().await, 0);
    assert_eq!(two["status"], "completed", "{two}");
    let (_, live) = srv.get("/v1/calls?status=in_progress").await;
    assert_eq!(live["num_items"], 0);
    let (_, dialing) = srv.get("/v1/calls?status=dialing").await;
    assert_eq!(dialing["num_items"], 0);
    let _ = second.kill();
    let _ = second.wait();
}

/// Sizes of the files under `dir` whose name holds `id` (a call's recordings, as written).
fn files_of(dir: &Path, id: &str) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else if p.file_name().unwrap().to_string_lossy().contains(id) {
                out.push((p.clone(), e.metadata().unwrap().len()));
            }
        }
    }
    out
}

fn total(files: &[(PathBuf, u64)]) -> u64 {
    files.iter().map(|f| f.1).sum()
}

/// DELETE of a live call: another organization's DELETE is a 404 that leaves the call
/// talking; the owner's hangs up (sipp gets the BYE), waits for the recorder to close, and
/// erases the call with every recording file it had been writing.
#[tokio::test]
async fn deleting_a_live_call_hangs_up_and_erases_its_recording() {
    let srv = Server::start().await;
    setup_outbound(&srv, 16067, "Hello").await;
    let sipp = Sipp::spawn(&scenarios().join("uas_answer_wait_bye.xml"), 16067, &[]);
    let id = srv.dispatch("+15550001111", "+14155550123").await;
    srv.wait_status(&id, "in_progress").await;
    let data = srv.dir.as_ref().unwrap().path().to_path_buf();

    // The recording is being written while the call runs.
    let mut before = Vec::new();
    for _ in 0..100 {
        before = files_of(&data, &id);
        if total(&before) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(total(&before) > 0, "no recording written during the call");

    // Another organization: 404, and the call goes on (its recording keeps growing).
    let store = switchboard_store::Store::connect(&switchboard_store::sqlite_url_for_dir(&data), 1)
        .await
        .unwrap();
    let (_, other_key) = store.create_org("other").await.unwrap();
    store.close().await;
    let s = srv.delete_as(&format!("/v1/call/{id}"), &other_key).await;
    assert_eq!(s, 404);
    let after_404 = total(&files_of(&data, &id));
    let mut grew = false;
    for _ in 0..100 {
        if total(&files_of(&data, &id)) >= after_404 + 4096 {
            grew = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        grew,
        "the recording stopped growing after another tenant's DELETE"
    );
    let (_, still) = srv.get(&format!("/v1/call/{id}")).await;
    assert_eq!(still["status"], "in_progress", "{still}");

    // The owner: the call is hung up, then erased with its files.
    let s = srv.delete_as(&format!("/v1/call/{id}"), &srv.key).await;
    assert_eq!(s, 200);
    assert_eq!(sipp.finish().await, 0, "sipp did not get our BYE");
    let (s, _) = srv.get(&format!("/v1/call/{id}")).await;
    assert_eq!(s, 404);
    let (s, body) = srv.bytes(&format!("/v1/call/recording/{id}.mp3")).await;
    assert_eq!(s, 404, "{}", String::from_utf8_lossy(&body));
    assert_eq!(files_of(&data, &id), vec![], "recording files left behind");
    srv.join().await;
}
