//! The in-process server against more real peers: kamailio as a trunk that checks digest
//! credentials (with a sipp UAS behind it), baresip as an inbound caller that talks and sends
//! RFC 4733 DTMF, and graceful shutdown with a live call on a sipp UAS.
//!
//! Fixed loopback ports (see README): sipp SIP 16800-16819 (media 16820 + 4n, control
//! 16960 + n), kamailio 16900, baresip SIP 16910 (ctrl_tcp 16929, RTP 16930-16959).
//! Configurations and scenarios are in `tests/peers/` (plus the shared `tests/scenarios/`).

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchboard::config::ServeConfig;
use switchboard_domain::CallStatus;
use switchboard_media::audio;
use switchboard_media::g711::G711;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

// ---------------------------------------------------------------------------------------------
// The server (in process) and the API.

#[path = "live/server.rs"]
mod live_server;
use live_server::Server;

#[path = "live/baresip.rs"]
mod live_baresip;
use live_baresip::Ctrl;

fn peers_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers")
}

fn scenarios() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios")
}

/// A template from `tests/peers/` with its placeholders replaced, written into `dir`.
fn instantiate(dir: &Path, name: &str, subst: &[(&str, String)]) -> PathBuf {
    let mut text = std::fs::read_to_string(peers_dir().join(name)).unwrap();
    for (k, v) in subst {
        text = text.replace(k, v);
    }
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Writes `seconds` of a 1 kHz tone as raw mu-law (what sipp's rtp_stream plays).
fn tone_ulaw(dir: &Path, seconds: u32) -> PathBuf {
    let pcm = audio::sine(1000.0, 8000, (8000 * seconds) as usize, 12000.0);
    let p = dir.join("tone.ulaw");
    std::fs::write(&p, G711::Pcmu.encode(&pcm)).unwrap();
    p
}

/// Writes `seconds` of a tone at `freq` as a 16-bit mono 8 kHz WAV (what baresip's aufile reads).
fn tone_wav(dir: &Path, freq: f64, seconds: u32) -> PathBuf {
    let pcm = audio::sine(freq, 8000, (8000 * seconds) as usize, 12000.0);
    let data: Vec<u8> = pcm.iter().flat_map(|s| s.to_le_bytes()).collect();
    let mut wav = Vec::with_capacity(44 + data.len());
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
    wav.extend_from_slice(&1u16.to_le_bytes()); // mono
    wav.extend_from_slice(&8000u32.to_le_bytes());
    wav.extend_from_slice(&16000u32.to_le_bytes()); // byte rate
    wav.extend_from_slice(&2u16.to_le_bytes()); // block align
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&(data.len() as u32).to_le_bytes());
    wav.extend_from_slice(&data);
    let p = dir.join("tone.wav");
    std::fs::write(&p, wav).unwrap();
    p
}

fn decode(bytes: &[u8], dir: &Path, name: &str) -> (usize, u32, Vec<Vec<i16>>) {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    audio::decode_mp3(&p).unwrap()
}

/// The stereo recording's caller (left) channel, checked for the far end's 1 kHz tone.
async fn assert_tone_in_caller_channel(srv: &Server, id: &str, dir: &Path) {
    let (st, stereo) = srv
        .bytes(&format!("/v1/call/recording/{id}.stereo.mp3"))
        .await;
    assert_eq!(st, 200);
    let (ch, rate, chans) = decode(&stereo, dir, &format!("{id}.stereo.mp3"));
    assert_eq!((ch, rate), (2, 8000));
    assert!(chans[0].len() >= 8000 * 2, "recording shorter than 2 s");
    // Skip the first half second (RTP start-up), then look at two seconds.
    let caller = &chans[0][4000..4000 + 8000 * 2];
    let share = audio::tone_ratio(caller, 8000, 1000.0);
    assert!(share > 0.5, "1 kHz tone share in caller channel: {share}");
    // And it is there most of the time, not a short burst in silence.
    let loud = audio::rms(caller);
    assert!(loud > 3000.0, "caller channel RMS {loud}");
    let (st, mono) = srv.bytes(&format!("/v1/call/recording/{id}.mp3")).await;
    assert_eq!(st, 200);
    let (ch, _, s) = decode(&mono, dir, &format!("{id}.mp3"));
    assert_eq!(ch, 1);
    assert!(s[0].len() >= 8000 * 2);
}

// ---------------------------------------------------------------------------------------------
// Peers.

/// Lines a peer prints, collected by a reader task; waiters are woken on every new line.
#[derive(Clone)]
struct Lines {
    seen: Arc<Mutex<Vec<String>>>,
    count: tokio::sync::watch::Receiver<usize>,
}

impl Lines {
    fn follow(stream: impl AsyncRead + Unpin + Send + 'static) -> Lines {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = tokio::sync::watch::channel(0usize);
        let s = seen.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                let n = {
                    let mut v = s.lock().unwrap();
                    v.push(l);
                    v.len()
                };
                let _ = tx.send(n);
            }
        });
        Lines { seen, count: rx }
    }

    fn matching(&self, needle: &str) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// Distinct lines containing `needle`, from the needle on: a request retransmitted over
    /// UDP logs the same line again and is counted once.
    fn distinct(&self, needle: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for l in self.seen.lock().unwrap().iter() {
            if let Some(i) = l.find(needle) {
                let tail = l[i..].to_string();
                if !out.contains(&tail) {
                    out.push(tail);
                }
            }
        }
        out
    }

    /// Waits (bounded) until at least `n` lines contain `needle`.
    async fn wait_for(&self, needle: &str, n: usize) {
        let mut rx = self.count.clone();
        let done = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                if self.matching(needle) >= n {
                    return;
                }
                if rx.changed().await.is_err() {
                    // The peer exited: its lines are final.
                    assert!(self.matching(needle) >= n, "peer exited first");
                    return;
                }
            }
        })
        .await;
        assert!(
            done.is_ok(),
            "never saw {n} line(s) with {needle:?}; got:\n{}",
            self.seen.lock().unwrap().join("\n")
        );
    }
}

#[path = "live/sipp.rs"]
mod live_sipp;
use live_sipp::Sipp;

impl Sipp {
    /// sipp on SIP `port` (16800-16819); media and control ports derive from it.
    fn spawn(scenario: &Path, port: u16, extra: &[String]) -> Sipp {
        assert!((16800..16820).contains(&port));
        let n = port - 16800;
        Sipp::spawn_ports(scenario, port, 16820 + n * 4, 16960 + n, extra)
    }
}

/// Kamailio in the foreground (its own process group, killed as a group on drop) with the
/// config from `tests/peers/kamailio.cfg`; its log goes to stderr, which the test reads.
struct Kamailio {
    child: Child,
    log: Lines,
    _dir: tempfile::TempDir,
}

impl Kamailio {
    async fn start(upstream_port: u16, user: &str, password: &str) -> Kamailio {
        let dir = tempfile::tempdir().unwrap();
        let cfg = instantiate(
            dir.path(),
            "kamailio.cfg",
            &[
                ("LISTEN_PORT", "16900".into()),
                ("UPSTREAM_PORT", upstream_port.to_string()),
                ("AUTH_USER", user.into()),
                ("AUTH_PASSWORD", password.into()),
            ],
        );
        let mut child = Command::new("/usr/sbin/kamailio")
            .arg("-DD") // no daemon; the workers are its children
            .arg("-E") // log to stderr
            .arg("-f")
            .arg(&cfg)
            .arg("-Y")
            .arg(dir.path())
            .arg("-P")
            .arg(dir.path().join("kamailio.pid"))
            .arg("-w")
            .arg(dir.path())
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("kamailio is required: apt-get install kamailio");
        let log = Lines::follow(child.stderr.take().unwrap());
        let k = Kamailio {
            child,
            log,
            _dir: dir,
        };
        // The first worker logs this once the UDP socket is bound and served.
        k.log.wait_for("SBPEER ready", 1).await;
        k
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        // The main process and the workers it forked share the group we gave it.
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .status();
        }
    }
}

/// baresip with a config dir in a tempdir: its microphone is a WAV tone, it has no audio
/// player, and it is driven over ctrl_tcp (JSON netstrings: commands in, responses and call
/// events out).
struct Baresip {
    _child: Child,
    ctrl: Ctrl,
    _dir: tempfile::TempDir,
}

impl Baresip {
    async fn start(caller: &str) -> Baresip {
        let dir = tempfile::tempdir().unwrap();
        let wav = tone_wav(dir.path(), 1000.0, 20);
        let conf = instantiate(
            dir.path(),
            "baresip.conf",
            &[("TONE_WAV", wav.display().to_string())],
        );
        std::fs::rename(conf, dir.path().join("config")).unwrap();
        std::fs::write(
            dir.path().join("accounts"),
            format!("<sip:{caller}@127.0.0.1>;regint=0\n"),
        )
        .unwrap();
        let mut child = Command::new("baresip")
            .arg("-f")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("baresip is required: apt-get install baresip");
        let out = Lines::follow(child.stdout.take().unwrap());
        out.wait_for("baresip is ready.", 1).await;
        let ctrl = Ctrl::connect(16929).await;
        Baresip {
            _child: child,
            ctrl,
            _dir: dir,
        }
    }

    async fn command(&mut self, command: &str, params: &str) {
        self.ctrl.command(command, params).await
    }

    /// Waits (bounded) for a call event of `kind` and returns it; earlier messages are skipped.
    async fn wait_event(&mut self, kind: &str) -> Value {
        self.ctrl.wait_event(kind, 20).await
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Kamailio as a trunk that challenges every INVITE with 407.

#[tokio::test]
async fn kamailio_trunk_checks_the_digest_and_relays_the_call() {
    let tmp = tempfile::tempdir().unwrap();
    let k = Kamailio::start(16801, "trunkuser", "s3cret").await;
    let srv = Server::start().await;
    let agent = srv
        .create(
            "/v1/agents",
            json!({"name": "Agent", "initial_message": "Hello from the trunk test.", "max_duration_seconds": 60}),
        )
        .await;
    let mut trunks = Vec::new();
    for (name, user, password) in [
        ("kamailio", "trunkuser", "s3cret"),
        ("kamailio-wrong-password", "trunkuser", "not-the-password"),
        ("kamailio-unknown-user", "nobody", "s3cret"),
    ] {
        trunks.push(
            srv.create(
                "/v1/sip-trunks",
                json!({"name": name, "host": "127.0.0.1", "port": 16900, "transport": "udp",
                       "username": user, "password": password}),
            )
            .await,
        );
    }
    for (number, trunk) in [
        ("+15550001111", &trunks[0]),
        ("+15550002222", &trunks[1]),
        ("+15550003333", &trunks[2]),
    ] {
        srv.create(
            "/v1/phone-numbers",
            json!({"phone_number": number, "agent_id": agent, "trunk_id": trunk}),
        )
        .await;
    }
    // The far end behind the proxy. It takes one call (-m 1) and its scenario starts with
    // receiving an INVITE: it sees nothing of the refused calls (else that call would have
    // been answered, and the last one could not complete).
    let tone = tone_ulaw(tmp.path(), 4);
    let scen = instantiate(
        tmp.path(),
        "uas_proxied_tone_bye.xml",
        &[
            ("TONE_FILE", tone.display().to_string()),
            ("HOLD_MS", "3000".into()),
        ],
    );
    let sipp = Sipp::spawn(&scen, 16801, &[]);

    // Wrong password: one retry with credentials, a second 407, then failed. Nothing relayed.
    let bad = srv.dispatch("+15550002222", "+14155550123").await;
    let done = srv.wait_final(&bad).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["sip_code"], 407, "{done}");
    assert_eq!(done["end_reason"], "trunk-authentication-failed");
    assert!(done["start_time"].is_null());
    assert!(done["end_time"].is_string());
    k.log.wait_for("SBPEER challenge", 2).await;
    let invites = k.log.distinct("SBPEER INVITE");
    assert_eq!(invites.len(), 2, "INVITEs seen by kamailio: {invites:?}");
    let call_id_of = |l: &str| l.split("callid=").nth(1).unwrap_or("").to_string();
    assert_eq!(call_id_of(&invites[0]), call_id_of(&invites[1]), "one call");
    // The second challenge is for the retry, which carried (wrong) credentials for our user.
    let challenges = k.log.distinct("SBPEER challenge");
    assert_eq!(challenges.len(), 2, "{challenges:?}");
    assert!(
        challenges[1].contains("rc=-2 user=trunkuser"),
        "{challenges:?}"
    );
    assert_eq!(k.log.matching("SBPEER authenticated"), 0);

    // Credentials the trunk refuses outright (403 to the retry): failed, 403 kept, no loop.
    let refused = srv.dispatch("+15550003333", "+14155550123").await;
    let done = srv.wait_final(&refused).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["sip_code"], 403, "{done}");
    assert_eq!(done["end_reason"], "forbidden");
    k.log.wait_for("SBPEER forbidden", 1).await;
    assert_eq!(k.log.distinct("SBPEER INVITE").len(), 4);
    assert_eq!(k.log.distinct("SBPEER challenge").len(), 3);
    assert_eq!(k.log.distinct("SBPEER forbidden").len(), 1);
    assert_eq!(k.log.matching("SBPEER authenticated"), 0);

    // Right password: 407, retry with credentials, relayed to sipp, answered, tone, BYE from
    // the far end through the proxy.
    let good = srv.dispatch("+15550001111", "+14155550123").await;
    let live = srv.wait_status(&good, "in_progress").await;
    assert!(live["start_time"].is_string());
    let done = srv.wait_final(&good).await;
    assert_eq!(sipp.finish().await, 0, "sipp behind kamailio failed");
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["end_reason"], "customer-ended-call");
    assert_eq!(k.log.distinct("SBPEER INVITE").len(), 6);
    assert_eq!(k.log.distinct("SBPEER challenge").len(), 4);
    assert_eq!(
        k.log.distinct("SBPEER authenticated user=trunkuser").len(),
        1
    );
    // The dialog followed the proxy's Record-Route: our ACK of the 200 and the far end's BYE
    // came to kamailio with its Route header (loose_route), and it relayed them.
    k.log.wait_for("SBPEER routed ACK", 1).await;
    k.log.wait_for("SBPEER routed BYE", 1).await;
    assert_tone_in_caller_channel(&srv, &good, tmp.path()).await;
    srv.join().await;
    drop(k);
}

// ---------------------------------------------------------------------------------------------
// 2. baresip as an inbound caller: audio and RFC 4733 DTMF.

#[tokio::test]
async fn baresip_calls_in_talks_and_sends_rfc4733_dtmf() {
    // No globally trusted sources: inbound calls are allowed per number, by its trunk's
    // inbound_sources.
    let srv = Server::start_at(tempfile::tempdir().unwrap(), None, |c| {
        c.telephony.sip_trusted = vec![];
    })
    .await;
    let agent = srv
        .create(
            "/v1/agents",
            json!({"name": "Inbound", "initial_message": "Thanks for calling."}),
        )
        .await;
    // The trunk is never dialed here; it only lists where inbound calls may come from.
    let trunk = srv
        .create(
            "/v1/sip-trunks",
            json!({"name": "carrier", "host": "127.0.0.1", "port": 16909, "transport": "udp",
                   "inbound_sources": ["127.0.0.1"]}),
        )
        .await;
    srv.create(
        "/v1/phone-numbers",
        json!({"phone_number": "+15550001111", "agent_id": agent, "trunk_id": trunk}),
    )
    .await;
    // Owned, but without a trunk listing sources and with nothing trusted: refused.
    srv.create(
        "/v1/phone-numbers",
        json!({"phone_number": "+15550003333", "agent_id": agent}),
    )
    .await;
    let mut b = Baresip::start("+15559998888").await;

    b.command(
        "dial",
        &format!("sip:+15550001111@127.0.0.1:{}", srv.sip_port),
    )
    .await;
    b.wait_event("CALL_ESTABLISHED").await;
    let (_, list) = srv.get("/v1/calls?call_type=inbound").await;
    assert_eq!(list["num_items"], 1, "{list}");
    let id = list["calls"][0]["id"].as_str().unwrap().to_string();
    let live = srv.wait_status(&id, "in_progress").await;
    assert_eq!(live["type"], "inbound");
    assert_eq!(live["agent_id"], agent.as_str());
    assert_eq!(live["client_number"], "+15559998888");

    // Digits as RFC 4733 telephone-events, back to back in one command.
    let digits = "19#*0";
    b.command("sndcode", digits).await;
    let mut got = String::new();
    for _ in 0..200 {
        let (_, c) = srv.get(&format!("/v1/call/{id}")).await;
        got = c["events"]
            .as_array()
            .map(|evs| {
                evs.iter()
                    .filter(|e| e["type"] == "dtmf")
                    .inspect(|e| assert_eq!(e["via"], "rfc4733", "{e}"))
                    .map(|e| e["digit"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default();
        if got.len() >= digits.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(got, digits, "DTMF digits in the call's events, in order");

    // Let the recording hold at least 3 s of the caller's tone before hanging up.
    for _ in 0..200 {
        let (_, c) = srv.get(&format!("/v1/call/{id}")).await;
        let start =
            switchboard_domain::Timestamp::parse_param("t", c["start_time"].as_str().unwrap())
                .unwrap();
        if switchboard_domain::Timestamp::now().micros() - start.micros() >= 3_000_000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    b.command("hangup", "").await;
    b.wait_event("CALL_CLOSED").await;
    let done = srv.wait_final(&id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["end_reason"], "customer-ended-call");
    let tmp = tempfile::tempdir().unwrap();
    assert_tone_in_caller_channel(&srv, &id, tmp.path()).await;

    // A number nobody owns: baresip is told 404; an owned number whose source is not
    // allowed: 403. Neither creates a call.
    for (number, code) in [("+15557770000", "404"), ("+15550003333", "403")] {
        b.command("dial", &format!("sip:{number}@127.0.0.1:{}", srv.sip_port))
            .await;
        let closed = b.wait_event("CALL_CLOSED").await;
        let why = closed["param"].as_str().unwrap_or("");
        assert!(why.starts_with(code), "{number}: baresip was told {closed}");
    }
    let (_, list) = srv.get("/v1/calls").await;
    assert_eq!(
        list["num_items"], 1,
        "only the answered call exists: {list}"
    );
    b.command("quit", "").await;
    srv.join().await;
}

// ---------------------------------------------------------------------------------------------
// 3. Graceful shutdown with a live call.

#[tokio::test]
async fn graceful_shutdown_drains_then_hangs_up_live_calls() {
    use switchboard_store::{CreateCallOutcome, Store};
    let grace = 3u64;
    let mut srv = Server::start_at(tempfile::tempdir().unwrap(), None, |c| {
        c.telephony.shutdown_grace = grace;
        c.telephony.max_calls_per_org = 1;
    })
    .await;
    let agent = srv
        .create(
            "/v1/agents",
            json!({"name": "Agent", "initial_message": "Hi", "max_duration_seconds": 60}),
        )
        .await;
    let trunk = srv
        .create(
            "/v1/sip-trunks",
            json!({"name": "sipp", "host": "127.0.0.1", "port": 16802, "transport": "udp"}),
        )
        .await;
    let number = srv
        .create(
            "/v1/phone-numbers",
            json!({"phone_number": "+15550001111", "agent_id": agent, "trunk_id": trunk}),
        )
        .await;
    // The far end answers and waits for our BYE.
    let sipp = Sipp::spawn(&scenarios().join("uas_answer_wait_bye.xml"), 16802, &[]);
    let live = srv.dispatch("+15550001111", "+14155550001").await;
    srv.wait_status(&live, "in_progress").await;
    // A second dispatch waits in the queue behind the organization's cap of one call; the cap
    // frees when the live call is hung up, which must not dial it during the drain.
    let behind_cap = srv.dispatch("+15550001111", "+14155550002").await;
    // A second connection to the same SQLite database (as `switchboard org create` does),
    // used to queue a call while HTTP is already closed, and to read the end state.
    let store = Store::connect(
        &switchboard_store::sqlite_url_for_dir(srv.dir.as_ref().unwrap().path()),
        1,
    )
    .await
    .unwrap();

    let stopped_at = tokio::time::Instant::now();
    srv.signal_stop();
    // The HTTP listener closes in the same step as the engine starts draining.
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let mut refused = false;
    for _ in 0..100 {
        if fresh
            .get(format!("{}/healthz", srv.base))
            .send()
            .await
            .is_err()
        {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "HTTP still accepting after the stop signal");
    // A dispatch queued during the drain (what the API does: call + queue row in one
    // transaction). A running dispatcher would claim it within its 250 ms poll.
    let queued_in_drain = match store
        .create_call(
            switchboard_domain::NewCall {
                org_id: srv.org.parse().unwrap(),
                agent_id: Some(agent.parse().unwrap()),
                phone_number_id: Some(number.parse().unwrap()),
                campaign_id: None,
                call_type: switchboard_domain::CallType::Outbound,
                client_number: switchboard_domain::PhoneNumber::parse("+14155550003").unwrap(),
                agent_phone_number: Some(
                    switchboard_domain::PhoneNumber::parse("+15550001111").unwrap(),
                ),
                context: None,
                metadata: None,
                user_speaks_first: false,
                ring_timeout_seconds: None,
            },
            None,
        )
        .await
        .unwrap()
    {
        CreateCallOutcome::Created(c) => c.id,
        CreateCallOutcome::Replayed(_) => unreachable!("no idempotency key"),
    };
    // A new inbound call during the drain is refused with 503.
    let inbound = Sipp::spawn(
        &peers_dir().join("uac_expect_503.xml"),
        16803,
        &[format!("127.0.0.1:{}", srv.sip_port)],
    );
    assert_eq!(inbound.finish().await, 0, "expected 503 during the drain");
    assert!(
        stopped_at.elapsed() < Duration::from_secs(grace),
        "the drain checks ran past the grace period"
    );
    // The live call gets its grace period, then our BYE, which sipp receives and answers.
    assert_eq!(sipp.finish().await, 0, "sipp did not get our BYE");
    let waited = stopped_at.elapsed();
    assert!(
        waited >= Duration::from_millis(grace * 1000 - 300),
        "hung up after {waited:?}, before the {grace} s grace period"
    );
    let (org, key) = (srv.org.clone(), srv.key.clone());
    let dir = srv.join().await;

    // The live call ended completed/server-shutdown; both new calls are still queued and
    // dialing (none was dialed during the drain); nothing else is live.
    let one = store.get_call_any_org(live.parse().unwrap()).await.unwrap();
    assert_eq!(one.status, CallStatus::Completed);
    assert_eq!(one.end_reason.as_deref(), Some("server-shutdown"));
    for id in [behind_cap.parse().unwrap(), queued_in_drain] {
        let c = store.get_call_any_org(id).await.unwrap();
        assert_eq!(c.status, CallStatus::Dialing, "{id}");
    }
    assert_eq!(store.queued_count().await.unwrap(), 2);
    store.close().await;

    // Next start: both queued calls are dialed and complete; nothing stays live.
    let sipp = Sipp::spawn(
        &scenarios().join("uas_answer_bye.xml"),
        16802,
        &["-m".into(), "2".into()],
    );
    let srv = Server::start_at(dir, Some((org, key)), |_| {}).await;
    let (_, one) = srv.get(&format!("/v1/call/{live}")).await;
    assert_eq!(one["status"], "completed", "{one}");
    assert_eq!(one["end_reason"], "server-shutdown");
    assert!(one["end_time"].is_string());
    assert!(one["duration"].as_i64().unwrap() >= grace as i64, "{one}");
    for id in [behind_cap, queued_in_drain.to_string()] {
        let c = srv.wait_final(&id).await;
        assert_eq!(c["status"], "completed", "{c}");
    }
    assert_eq!(sipp.finish().await, 0);
    for status in ["dialing", "in_progress"] {
        let (_, l) = srv.get(&format!("/v1/calls?status={status}")).await;
        assert_eq!(l["num_items"], 0, "{status}: {l}");
    }
    srv.join().await;
}

/// A trunk created through the API while the server runs registers at once (no restart), its
/// state shows on the trunk, and deleting it removes the binding (Expires: 0).
#[tokio::test]
async fn trunk_created_while_running_registers_and_deleted_unregisters() {
    let srv = Server::start().await;
    let sipp = Sipp::spawn(&peers_dir().join("uas_registrar.xml"), 16810, &[]);
    let (s, trunk) = srv
        .post(
            "/v1/sip-trunks",
            json!({"name": "registrar", "host": "127.0.0.1", "port": 16810,
                   "username": "reguser", "password": "regpass", "register": true}),
        )
        .await;
    assert_eq!(s, 201, "{trunk}");
    assert!(trunk.get("password").is_none(), "{trunk}");
    assert_eq!(trunk["has_password"], true);
    assert!(
        ["registering", "registered"]
            .contains(&trunk["registration"]["state"].as_str().unwrap_or("")),
        "{trunk}"
    );
    let id = trunk["id"].as_str().unwrap().to_string();
    // The registrar answers within milliseconds; poll the trunk (bounded) until it shows.
    let mut registration = Value::Null;
    for _ in 0..200 {
        let (s, t) = srv.get(&format!("/v1/sip-trunks/{id}")).await;
        assert_eq!(s, 200, "{t}");
        registration = t["registration"].clone();
        if registration["state"] != "registering" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(registration["state"], "registered", "{registration}");
    assert_eq!(registration["expires"], 3600, "{registration}");

    // A trunk that does not register shows no registration.
    let (_, plain) = srv
        .post(
            "/v1/sip-trunks",
            json!({"name": "plain", "host": "127.0.0.1", "port": 16811}),
        )
        .await;
    assert!(plain["registration"].is_null(), "{plain}");

    let s = srv
        .delete_as(&format!("/v1/sip-trunks/{id}"), &srv.key)
        .await;
    assert_eq!(s, 200);
    // sipp exits 0 only after the un-REGISTER with Expires: 0 arrived and was answered.
    assert_eq!(sipp.finish().await, 0, "registrar scenario failed");
}

/// A stopped server lets go of its SIP port: the same process can start again on it at once
/// (nothing of the engine outlives its shutdown).
#[tokio::test]
async fn sip_port_is_released_when_the_server_stops() {
    let fixed = |c: &mut ServeConfig| {
        c.telephony.sip_listen = "127.0.0.1:16812".parse().unwrap();
    };
    let srv = Server::start_at(tempfile::tempdir().unwrap(), None, fixed).await;
    assert_eq!(srv.sip_port, 16812);
    let (org, key) = (srv.org.clone(), srv.key.clone());
    let dir = srv.join().await;
    let again = Server::start_at(dir, Some((org, key)), fixed).await;
    assert_eq!(again.sip_port, 16812);
    let (s, _) = again.get("/v1/agents").await;
    assert_eq!(s, 200);
    again.join().await;
}

/// A blind transfer through the API: REFER to the number given, addressed to the call's trunk;
/// once the far end reports success the call ends as `transferred`. Bad targets and calls that
/// are not answered are refused with the reason.
#[tokio::test]
async fn answered_call_is_transferred_through_the_api() {
    let srv = Server::start().await;
    let agent = srv.create("/v1/agents", json!({"name": "Transfer"})).await;
    let trunk = srv
        .create(
            "/v1/sip-trunks",
            json!({"name": "sipp", "host": "127.0.0.1", "port": 16813}),
        )
        .await;
    srv.create(
        "/v1/phone-numbers",
        json!({"phone_number": "+15550001313", "agent_id": agent, "trunk_id": trunk}),
    )
    .await;
    let sipp = Sipp::spawn(&peers_dir().join("uas_refer.xml"), 16813, &[]);
    let id = srv.dispatch("+15550001313", "+14155550113").await;

    // Bad targets: 400 naming what is allowed.
    for bad in [
        json!({}),
        json!({"to": "12"}),
        json!({"to": "sip:x@y>\r\nX-Evil: 1"}),
    ] {
        let (s, e) = srv
            .post(&format!("/v1/call/{id}/transfer"), bad.clone())
            .await;
        assert_eq!(s, 400, "{bad}: {e}");
        assert!(e["message"].as_str().unwrap().contains("to"), "{e}");
    }
    srv.wait_status(&id, "in_progress").await;
    let (s, body) = srv
        .post(
            &format!("/v1/call/{id}/transfer"),
            json!({"to": "+15550009999"}),
        )
        .await;
    assert_eq!(s, 202, "{body}");
    let done = srv.wait_final(&id).await;
    assert_eq!(
        sipp.finish().await,
        0,
        "sipp did not see the expected REFER and BYE"
    );
    assert_eq!(done["status"], "transferred", "{done}");
    assert_eq!(done["end_reason"], "transferred");
    let events = done["events"].as_array().expect("events");
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "transfer-requested"
                && e["to"] == "sip:+15550009999@127.0.0.1:16813"),
        "{events:?}"
    );
    // An ended call cannot be transferred.
    let (s, e) = srv
        .post(
            &format!("/v1/call/{id}/transfer"),
            json!({"to": "+15550009999"}),
        )
        .await;
    assert_eq!(s, 409, "{e}");
    srv.join().await;
}
