//! Recordings on S3, against a real S3 wire protocol: moto's server on loopback (see
//! `switchboard_testkit::moto`; scripts/test.sh provides it, and these tests fail rather than
//! pass without it). The bucket is created and inspected with plain S3 REST requests, not
//! through Switchboard's own client.
//!
//! Fixed sipp ports (see README): SIP 16700-16719, media 16720-16799, control 16680-16699.

use bytes::Bytes;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use switchboard_domain::{CallStatus, CallType, NewCall, PhoneNumber, Timestamp};
use switchboard_media::audio;
use switchboard_media::g711::G711;
use switchboard_media::recorder::CallRecorder;
use switchboard_store::{CallUpdate, CreateCallOutcome, Recordings, Store};
use switchboard_testkit::moto::{self, Moto};
use switchboard_testkit::{status_json, Db, TestApp};
use tokio::process::{Child, Command};

const BUCKET: &str = "switchboard-recordings";

fn scenarios() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios")
}

/// sipp on SIP port `port` (16700-16719), media and control ports derived from it.
fn sipp(scenario: &Path, port: u16) -> Child {
    assert!((16700..16720).contains(&port));
    let media = 16720 + (port - 16700) * 4;
    let control = 16680 + (port - 16700);
    Command::new("sipp")
        .args(["-sf", &scenario.display().to_string()])
        .args(["-i", "127.0.0.1", "-p", &port.to_string()])
        .args(["-mp", &media.to_string(), "-cp", &control.to_string()])
        .args(["-m", "1", "-nostdin", "-timeout", "40s"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("sipp is required: apt-get install sip-tester")
}

async fn sipp_done(mut child: Child) -> i32 {
    let st = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("sipp did not finish")
        .unwrap();
    st.code().unwrap_or(-1)
}

/// Every file under `dir` (recursively).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Polls until `cond` holds (bounded), returning what it saw last.
async fn eventually<T>(what: &str, secs: u64, mut f: impl AsyncFnMut() -> (bool, T)) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let (ok, v) = f().await;
        if ok {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {secs} s waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn decode(bytes: &[u8]) -> (usize, u32, Vec<Vec<i16>>) {
    audio::decode_mp3_bytes(bytes.to_vec()).expect("a decodable MP3")
}

/// (a) The storage interface itself against moto: put, size, ranged get, delete, under a
/// key prefix, and the spool: served before the upload, gone after it.
#[tokio::test]
async fn store_put_size_range_delete_and_upload_against_moto() {
    let moto = Moto::start().await;
    moto.create_bucket(BUCKET).await;
    let dir = tempfile::tempdir().unwrap();
    let rec = Recordings::from_url(
        Some(&format!("s3://{BUCKET}/store-test/")),
        dir.path(),
        &moto.options(),
    )
    .unwrap();
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(rec.size("o/a.mp3").await.unwrap(), None);
    rec.put("o/a.mp3", Bytes::from(data.clone())).await.unwrap();
    assert_eq!(rec.size("o/a.mp3").await.unwrap(), Some(100_000));
    let r = rec.get_range("o/a.mp3", 1000..1010).await.unwrap();
    assert_eq!(&r[..], &data[1000..1010]);
    let tail = rec.get_range("o/a.mp3", 99_990..100_000).await.unwrap();
    assert_eq!(&tail[..], &data[99_990..]);
    // Where it really is, seen through S3 itself: under the prefix.
    assert_eq!(moto.keys(BUCKET).await, vec!["store-test/o/a.mp3"]);
    assert_eq!(
        moto.get_object(BUCKET, "store-test/o/a.mp3").await.unwrap(),
        data
    );
    rec.delete("o/a.mp3").await.unwrap();
    assert_eq!(rec.size("o/a.mp3").await.unwrap(), None);
    assert!(moto.keys(BUCKET).await.is_empty());
    rec.delete("o/a.mp3").await.unwrap(); // deleting what is gone is fine

    // Spool: a recording written locally is served before its upload, uploaded by
    // upload_spooled (both files), and the spool is empty afterwards.
    let spool = dir.path().join("recordings-spool");
    assert_eq!(rec.write_root(), spool);
    std::fs::create_dir_all(spool.join("org")).unwrap();
    std::fs::write(spool.join("org/call.mp3"), b"mono-bytes").unwrap();
    std::fs::write(spool.join("org/call.stereo.mp3"), b"stereo-bytes").unwrap();
    assert_eq!(rec.spooled().await.unwrap(), vec!["org/call"]);
    assert_eq!(rec.size("org/call.mp3").await.unwrap(), Some(10));
    assert_eq!(
        &rec.get_range("org/call.stereo.mp3", 0..6).await.unwrap()[..],
        b"stereo"
    );
    let keys = rec.upload_spooled("org/call").await.unwrap();
    assert_eq!(keys, vec!["org/call.mp3", "org/call.stereo.mp3"]);
    assert!(files_under(&spool).is_empty(), "spool emptied");
    assert_eq!(
        moto.keys(BUCKET).await,
        vec!["store-test/org/call.mp3", "store-test/org/call.stereo.mp3"]
    );
    assert_eq!(
        &rec.get_range("org/call.mp3", 5..10).await.unwrap()[..],
        b"bytes"
    );

    // A long call's file (over UPLOAD_PART) goes up as a multipart upload, byte for byte.
    let big: Vec<u8> = (0..(switchboard_store::recordings::UPLOAD_PART * 2 + 12_345))
        .map(|i| (i % 253) as u8)
        .collect();
    std::fs::create_dir_all(spool.join("org")).unwrap();
    std::fs::write(spool.join("org/long.mp3"), &big).unwrap();
    rec.upload_spooled("org/long").await.unwrap();
    assert!(files_under(&spool).is_empty(), "spool emptied");
    assert_eq!(
        moto.get_object(BUCKET, "store-test/org/long.mp3")
            .await
            .unwrap(),
        big
    );
    assert_eq!(
        rec.size("org/long.mp3").await.unwrap(),
        Some(big.len() as u64)
    );
}

/// A failed upload (the bucket does not exist yet) keeps the spool file, which is served
/// meanwhile; nothing is lost.
#[tokio::test]
async fn failed_upload_keeps_the_spool_file() {
    let moto = Moto::start().await;
    let dir = tempfile::tempdir().unwrap();
    let rec =
        Recordings::from_url(Some("s3://not-created-yet"), dir.path(), &moto.options()).unwrap();
    let f = dir.path().join("recordings-spool/org/call.mp3");
    std::fs::create_dir_all(f.parent().unwrap()).unwrap();
    std::fs::write(&f, b"precious").unwrap();
    assert!(rec.check().await.is_err(), "a missing bucket is reported");
    let e = rec.upload_spooled("org/call").await.expect_err("no bucket");
    assert!(!e.to_string().contains(moto::SECRET_ACCESS_KEY));
    assert_eq!(std::fs::read(&f).unwrap(), b"precious");
    assert_eq!(rec.size("org/call.mp3").await.unwrap(), Some(8));
    moto.create_bucket("not-created-yet").await;
    rec.check().await.expect("the bucket answers");
    rec.upload_spooled("org/call").await.unwrap();
    assert!(!f.exists());
    assert_eq!(
        moto.get_object("not-created-yet", "org/call.mp3")
            .await
            .unwrap(),
        b"precious"
    );
}

/// Agent + trunk to 127.0.0.1:`sipp_port` + caller-ID number bound to both.
async fn setup_outbound(app: &TestApp, sipp_port: u16) {
    let (s, agent) = status_json(
        app.post_json(
            "/v1/agents",
            &json!({"name": "Agent", "initial_message": "Hello from Switchboard.", "max_duration_seconds": 60}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 201, "{agent}");
    let (s, trunk) = status_json(
        app.post_json(
            "/v1/sip-trunks",
            &json!({"name": "sipp", "host": "127.0.0.1", "port": sipp_port, "transport": "udp"}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 201, "{trunk}");
    let (s, num) = status_json(
        app.post_json(
            "/v1/phone-numbers",
            &json!({"phone_number": "+15550001111", "agent_id": agent["id"], "trunk_id": trunk["id"]}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 201, "{num}");
}

async fn wait_final(app: &TestApp, id: &str) -> Value {
    eventually("the call to end", 40, async || {
        let (_, c) = status_json(app.get(&format!("/v1/call/{id}")).await).await;
        let st = c["status"].as_str().unwrap_or("").to_string();
        (!matches!(st.as_str(), "dialing" | "in_progress"), c)
    })
    .await
}

/// Places a call to a sipp peer on `port` that answers, plays 3 s of a 1 kHz tone and hangs
/// up; returns the call id and the ended call.
async fn tone_call(app: &TestApp, port: u16) -> (String, Value) {
    setup_outbound(app, port).await;
    let tmp = tempfile::tempdir().unwrap();
    let pcm = audio::sine(1000.0, 8000, 8000 * 3, 12000.0);
    let tone = tmp.path().join("tone.ulaw");
    std::fs::write(&tone, G711::Pcmu.encode(&pcm)).unwrap();
    let scen = std::fs::read_to_string(scenarios().join("uas_play_bye.xml"))
        .unwrap()
        .replace("TONE_FILE", &tone.display().to_string())
        .replace("HOLD_MS", "3000");
    let scen_path = tmp.path().join("uas_play_bye.xml");
    std::fs::write(&scen_path, scen).unwrap();
    let peer = sipp(&scen_path, port);
    let (s, call) = status_json(
        app.post_json(
            "/v1/call",
            &json!({"from": "+15550001111", "to": "+14155550123"}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 201, "{call}");
    let id = call["id"].as_str().unwrap().to_string();
    let done = wait_final(app, &id).await;
    assert_eq!(sipp_done(peer).await, 0, "sipp scenario failed");
    assert_eq!(done["status"], "completed", "{done}");
    assert!(done["recording_url"].is_string(), "{done}");
    (id, done)
}

/// (b) A real call with the server on S3: recorded into the spool, uploaded at the end,
/// served with Range from the bucket, decodable with the far end's tone, deleted with the call.
#[tokio::test]
async fn call_recording_is_uploaded_to_s3_served_with_range_and_deleted() {
    let moto = Moto::start().await;
    moto.create_bucket(BUCKET).await;
    let opts = moto.options();
    let app = TestApp::spawn_with(Db::Sqlite, |c| {
        c.recordings_url = Some(format!("s3://{BUCKET}/calls"));
        c.recordings_options = opts;
    })
    .await;
    let spool = app.data_dir.join("recordings-spool");
    assert!(spool.is_dir(), "spool folder made at start");
    assert!(
        !app.data_dir.join("recordings").exists(),
        "no local recordings folder on S3"
    );
    let (id, done) = tone_call(&app, 16700).await;

    // In the bucket, seen through the S3 API; the spool is empty afterwards.
    let org = &app.org_id;
    let mono_key = format!("calls/{org}/{id}.mp3");
    let stereo_key = format!("calls/{org}/{id}.stereo.mp3");
    let keys = eventually("both objects in the bucket", 30, async || {
        let k = moto.keys(BUCKET).await;
        (k.contains(&mono_key) && k.contains(&stereo_key), k)
    })
    .await;
    assert_eq!(keys.len(), 2, "{keys:?}");
    let left = eventually("the spool to empty", 10, async || {
        let f = files_under(&spool);
        (f.is_empty(), f)
    })
    .await;
    assert!(left.is_empty());
    let mono = moto.get_object(BUCKET, &mono_key).await.unwrap();
    let stereo = moto.get_object(BUCKET, &stereo_key).await.unwrap();
    assert_eq!(done["recording"]["size_bytes"], mono.len(), "{done}");

    // The whole file through the API is the object, and it decodes with the tone in it.
    let r = app.get(&format!("/v1/call/recording/{id}.mp3")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().to_vec(), mono);
    let (ch, rate, samples) = decode(&mono);
    assert_eq!((ch, rate), (1, 8000));
    assert!(samples[0].len() > 8000 * 2, "recording too short");
    let r = app
        .get(&format!("/v1/call/recording/{id}.stereo.mp3"))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().to_vec(), stereo);
    let (ch, _, chans) = decode(&stereo);
    assert_eq!(ch, 2);
    let caller = &chans[0][..8000 * 2];
    let ratio = audio::tone_ratio(caller, 8000, 1000.0);
    assert!(
        ratio > 0.5,
        "1 kHz tone share in the caller channel: {ratio}"
    );

    // Range: 206 with exactly those bytes of the object.
    let r = app
        .request(
            reqwest::Method::GET,
            &format!("/v1/call/recording/{id}.mp3"),
        )
        .header("Range", "bytes=100-1099")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes 100-1099/{}", mono.len()).as_str()
    );
    assert_eq!(r.bytes().await.unwrap().to_vec(), mono[100..1100].to_vec());
    let r = app
        .request(
            reqwest::Method::GET,
            &format!("/v1/call/recording/{id}.stereo.mp3"),
        )
        .header("Range", "bytes=-500")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(
        r.bytes().await.unwrap().to_vec(),
        stereo[stereo.len() - 500..].to_vec()
    );

    // DELETE removes the objects from the bucket.
    let r = app.delete(&format!("/v1/call/{id}")).await;
    assert_eq!(r.status(), 200);
    assert!(moto.keys(BUCKET).await.is_empty(), "objects deleted");
    let r = app.get(&format!("/v1/call/recording/{id}.mp3")).await;
    assert_eq!(r.status(), 404);
    app.stop().await;
}

/// The store is down when the call ends (its bucket does not exist yet): the call still
/// ends normally, its recording is served from the spool meanwhile, and the engine's retries
/// upload it once the bucket is there.
#[tokio::test]
async fn upload_is_retried_and_the_spool_is_served_meanwhile() {
    let moto = Moto::start().await;
    let opts = moto.options();
    let bucket = "created-after-the-call";
    let app = TestApp::spawn_with(Db::Sqlite, |c| {
        c.recordings_url = Some(format!("s3://{bucket}"));
        c.recordings_options = opts;
    })
    .await;
    let (id, _) = tone_call(&app, 16701).await;
    let spool_file = app
        .data_dir
        .join(format!("recordings-spool/{}/{id}.mp3", app.org_id));
    // The first attempt fails; the spool file stays and is what the API serves.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let spooled = std::fs::read(&spool_file).expect("spool file kept after a failed upload");
    let r = app.get(&format!("/v1/call/recording/{id}.mp3")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().to_vec(), spooled);
    let (_, _, s) = decode(&spooled);
    assert!(s[0].len() > 8000 * 2);

    moto.create_bucket(bucket).await;
    let key = format!("{}/{id}.mp3", app.org_id);
    let obj = eventually("the retried upload", 30, async || {
        let o = moto.get_object(bucket, &key).await;
        (o.is_some(), o)
    })
    .await;
    assert_eq!(obj.unwrap(), spooled);
    eventually("the spool to empty", 10, async || {
        (
            files_under(&app.data_dir.join("recordings-spool")).is_empty(),
            (),
        )
    })
    .await;
    let r = app.get(&format!("/v1/call/recording/{id}.mp3")).await;
    assert_eq!(r.bytes().await.unwrap().to_vec(), spooled);
    app.stop().await;
}

/// DELETE of a live call on S3: the call is hung up, and its recording (finished after the
/// row is gone) ends up neither in the bucket nor in the spool.
#[tokio::test]
async fn deleting_a_live_call_leaves_nothing_in_the_bucket_or_spool() {
    let moto = Moto::start().await;
    moto.create_bucket(BUCKET).await;
    let opts = moto.options();
    let app = TestApp::spawn_with(Db::Sqlite, |c| {
        c.recordings_url = Some(format!("s3://{BUCKET}"));
        c.recordings_options = opts;
    })
    .await;
    setup_outbound(&app, 16702).await;
    let peer = sipp(&scenarios().join("uas_answer_wait_bye.xml"), 16702);
    let (s, call) = status_json(
        app.post_json(
            "/v1/call",
            &json!({"from": "+15550001111", "to": "+14155550123"}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 201, "{call}");
    let id = call["id"].as_str().unwrap().to_string();
    eventually("the call to be answered", 30, async || {
        let (_, c) = status_json(app.get(&format!("/v1/call/{id}")).await).await;
        (c["status"] == "in_progress", ())
    })
    .await;
    let spool = app.data_dir.join("recordings-spool");
    eventually("the recorder to write", 10, async || {
        (!files_under(&spool).is_empty(), ())
    })
    .await;
    let r = app.delete(&format!("/v1/call/{id}")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(sipp_done(peer).await, 0, "sipp did not get our BYE");
    eventually("the spool to empty", 15, async || {
        (files_under(&spool).is_empty(), ())
    })
    .await;
    // Give a (wrong) late upload the time it would need, then look at the bucket.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        moto.keys(BUCKET).await.is_empty(),
        "{:?}",
        moto.keys(BUCKET).await
    );
    app.stop().await;
}

/// A free loopback TCP port (bound, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// (c) Recovery: the state a crash leaves (a call row in_progress, its partial recording in
/// the spool), then a real `switchboard serve` process configured for S3 through
/// --recordings-url and the AWS_* environment: the call is closed as server_restarted and its
/// recording uploaded and served. The secret never shows in the server's output.
#[tokio::test]
async fn interrupted_call_is_closed_and_its_spooled_recording_uploaded_at_start() {
    let moto = Moto::start().await;
    moto.create_bucket(BUCKET).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();

    // The crashed server's state.
    let store = Store::connect(&switchboard_store::sqlite_url_for_dir(data), 2)
        .await
        .unwrap();
    let (org, key) = store.create_org("default").await.unwrap();
    let new = NewCall {
        org_id: org.id,
        agent_id: None,
        phone_number_id: None,
        campaign_id: None,
        call_type: CallType::Outbound,
        client_number: PhoneNumber::parse("+14155550123").unwrap(),
        agent_phone_number: None,
        context: None,
        metadata: None,
        user_speaks_first: false,
        ring_timeout_seconds: None,
    };
    let call = match store.create_call(new, None).await.unwrap() {
        CreateCallOutcome::Created(c) | CreateCallOutcome::Replayed(c) => c,
    };
    store.complete_dispatch(call.id).await.unwrap();
    let started = Timestamp(Timestamp::now().micros() - 3_000_000);
    store
        .update_call(
            call.id,
            CallUpdate {
                status: Some(CallStatus::InProgress),
                started_at: Some(started),
                sip_code: Some(200),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    store.close().await;
    // 2 s of the caller's 1 kHz tone, flushed as the recorder does, never finished (crash).
    let base = data
        .join("recordings-spool")
        .join(org.id.to_string())
        .join(call.id.to_string());
    std::fs::create_dir_all(base.parent().unwrap()).unwrap();
    let mut rec = CallRecorder::create(&base).unwrap();
    let tone = audio::sine(1000.0, 8000, 8000 * 2, 12000.0);
    for frame in tone.chunks(160) {
        rec.push_frame(Some(frame), None).unwrap();
    }
    rec.flush().unwrap();
    drop(rec);
    let partial = std::fs::read(base.with_extension("mp3")).unwrap();
    assert!(!partial.is_empty());

    // Start the real server on S3.
    let port = free_port();
    let log = tempfile::NamedTempFile::new().unwrap();
    let server = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--sip-listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .args(["--recordings-url", &format!("s3://{BUCKET}/rec")])
        .envs(moto.env())
        .env("RUST_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(log.reopen().unwrap())
        .spawn()
        .expect("start switchboard");
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let guard = KillOnDrop(server);
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let base_url = format!("http://127.0.0.1:{port}");
    let get = |path: String| {
        let c = client.clone();
        let k = key.clone();
        let b = base_url.clone();
        async move { c.get(format!("{b}{path}")).bearer_auth(k).send().await }
    };
    let one = eventually("the server to answer", 30, async || {
        match get(format!("/v1/call/{}", call.id)).await {
            Ok(r) if r.status() == 200 => (true, r.json::<Value>().await.unwrap()),
            _ => (false, Value::Null),
        }
    })
    .await;
    assert_eq!(one["status"], "failed", "{one}");
    assert_eq!(one["end_reason"], "server_restarted");

    let mono_key = format!("rec/{}/{}.mp3", org.id, call.id);
    let stereo_key = format!("rec/{}/{}.stereo.mp3", org.id, call.id);
    eventually("the partial recording in the bucket", 30, async || {
        let k = moto.keys(BUCKET).await;
        (k.contains(&mono_key) && k.contains(&stereo_key), ())
    })
    .await;
    assert_eq!(moto.get_object(BUCKET, &mono_key).await.unwrap(), partial);
    eventually("the spool to empty", 10, async || {
        (files_under(&data.join("recordings-spool")).is_empty(), ())
    })
    .await;
    let r = get(format!("/v1/call/recording/{}.stereo.mp3", call.id))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let stereo = r.bytes().await.unwrap().to_vec();
    assert_eq!(stereo, moto.get_object(BUCKET, &stereo_key).await.unwrap());
    let (_, _, chans) = decode(&stereo);
    let ratio = audio::tone_ratio(&chans[0][..8000], 8000, 1000.0);
    assert!(ratio > 0.5, "tone in the partial recording: {ratio}");
    let r = get(format!("/v1/call/recording/{}.mp3", call.id))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().to_vec(), partial);
    drop(guard);
    let out = std::fs::read_to_string(log.path()).unwrap();
    assert!(out.contains("recordings store"), "server log: {out}");
    assert!(
        !out.contains(moto::SECRET_ACCESS_KEY),
        "the secret key appeared in the server's output"
    );
}

/// A bad --recordings-url stops the start with an error naming the setting and what is
/// allowed, and never echoes credentials.
#[test]
fn bad_recordings_url_is_a_startup_error() {
    let dir = tempfile::tempdir().unwrap();
    for (url, must_not_show) in [
        ("gs://bucket/x", None),
        ("s3:///", None),
        (
            "s3://AKIAEXAMPLE:topsecretvalue@bucket/x",
            Some("topsecretvalue"),
        ),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--sip-listen",
                "127.0.0.1:0",
            ])
            .arg("--data-dir")
            .arg(dir.path())
            .env("SWITCHBOARD_RECORDINGS_URL", url)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{url} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("SWITCHBOARD_RECORDINGS_URL"), "{url}: {err}");
        assert!(err.contains("s3://BUCKET"), "{url}: {err}");
        if let Some(secret) = must_not_show {
            assert!(!err.contains(secret), "{url}: {err}");
        }
    }
}
