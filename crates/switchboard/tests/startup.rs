//! Start-up of the real `switchboard serve` binary: a bad setting is reported before
//! anything touches the database or the network, and logs written to a pipe carry no
//! terminal colour codes.
//!
//! Ports: none fixed. The "database" is a TCP listener on port 0 that counts the
//! connections it is offered; the server that does start listens on port 0.

use std::net::TcpListener;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const DEADLINE: Duration = Duration::from_secs(30);

fn serve(data_dir: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    c.arg("serve")
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // The settings under test come from flags; none may leak in from the environment.
    for (k, _) in std::env::vars() {
        if k.starts_with("SWITCHBOARD_") {
            c.env_remove(k);
        }
    }
    // Port 0 by default (through the environment, so a case's flag can override it).
    c.env("SWITCHBOARD_LISTEN", "127.0.0.1:0")
        .env("SWITCHBOARD_SIP_LISTEN", "127.0.0.1:0");
    c
}

#[tokio::test]
async fn bad_settings_are_reported_before_the_database_is_touched() {
    // A PostgreSQL stand-in: a listening socket. Had the server tried to connect (or
    // migrate), the connection would be waiting in its backlog.
    let db = TcpListener::bind("127.0.0.1:0").unwrap();
    db.set_nonblocking(true).unwrap();
    let db_url = format!(
        "postgres://switchboard:secret@127.0.0.1:{}/switchboard",
        db.local_addr().unwrap().port()
    );
    let cases: &[(&[&str], &str)] = &[
        (
            &["--recordings-url", "ftp://recordings.example.com"],
            "--recordings-url",
        ),
        (&["--public-url", "calls.example.com"], "--public-url"),
        (
            &["--engine-heartbeat", "30", "--engine-stale-after", "10"],
            "--engine-stale-after",
        ),
        (&["--sip-listen", "0.0.0.0:0"], "--public-ip"),
        (&["--public-ip", "0.0.0.0"], "--public-ip"),
        (&["--db-pool", "0"], "--db-pool"),
        (&["--sqlite-cache-kib", "10"], "--sqlite-cache-kib"),
        (&["--llm-url", "nonsense"], "--llm-url"),
    ];
    for (args, names) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let data_dir = tmp.path().join("data");
        let out = tokio::time::timeout(
            DEADLINE,
            serve(&data_dir)
                .args(["--database-url", &db_url])
                .args(*args)
                .output(),
        )
        .await
        .unwrap_or_else(|_| panic!("{args:?}: still running: it did not stop at the bad setting"))
        .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}: started anyway: {stderr}");
        assert!(
            stderr.contains(names),
            "{args:?}: the message does not name {names}: {stderr}"
        );
        // Nothing touched: no connection offered to the database, no data directory.
        assert!(
            matches!(db.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "{args:?}: the database was contacted before the bad setting was reported"
        );
        assert!(
            !data_dir.exists(),
            "{args:?}: the data directory was created"
        );
        assert!(
            !stderr.contains('\x1b'),
            "{args:?}: colour codes in {stderr:?}"
        );
    }

    // A database URL of no known kind is itself a bad setting, found without a connect.
    let tmp = tempfile::tempdir().unwrap();
    let out = serve(&tmp.path().join("data"))
        .args(["--database-url", "mysql://u@127.0.0.1/x"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--database-url"));
}

#[tokio::test]
async fn logs_through_a_pipe_carry_no_colour_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = serve(&tmp.path().join("data")).spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    // Read the start-up logs up to the "listening" line: the server is then up and
    // has logged at info level (agent, recordings, listening).
    tokio::time::timeout(DEADLINE, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let done = line.contains("listening");
            seen.push(line);
            if done {
                return;
            }
        }
        panic!("stderr closed before the server listened: {seen:#?}");
    })
    .await
    .unwrap_or_else(|_| panic!("server did not start: {seen:#?}"));
    child.kill().await.unwrap();
    assert!(seen.iter().any(|l| l.contains(" INFO ")), "{seen:#?}");
    for line in &seen {
        assert!(
            !line.contains('\x1b'),
            "colour codes in a piped log: {line:?}"
        );
    }
}

/// Start `serve` (extra flags appended) and read its logs up to the listening line:
/// the child, its HTTP address, its SIP port and the first-run API key.
async fn start_server(
    data_dir: &std::path::Path,
    extra: &[&str],
) -> (tokio::process::Child, String, u16, String) {
    let mut child = serve(data_dir).args(extra).spawn().unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap()).lines();
    let line = tokio::time::timeout(DEADLINE, async {
        while let Some(line) = err.next_line().await.unwrap() {
            if line.contains("listening") {
                return line;
            }
        }
        panic!("stderr closed before the server listened");
    })
    .await
    .expect("server did not start");
    // Keep draining stderr so the server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = err.next_line().await {} });
    let field = |name: &str| {
        let at = line
            .find(name)
            .unwrap_or_else(|| panic!("{name} in {line}"))
            + name.len();
        line[at..].split_whitespace().next().unwrap().to_string()
    };
    let addr = field("addr=");
    let sip_port = field("sip_port=").parse().unwrap();
    // The first start prints the default organization's key on stdout.
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    let key = match tokio::time::timeout(Duration::from_millis(500), out.next_line()).await {
        Ok(Ok(Some(l))) => serde_json::from_str::<serde_json::Value>(&l).unwrap()["api_key"]
            .as_str()
            .unwrap()
            .to_string(),
        _ => String::new(),
    };
    (child, addr, sip_port, key)
}

fn options(call_id: &str, from: &tokio::net::UdpSocket) -> Vec<u8> {
    let via = from.local_addr().unwrap();
    format!(
        "OPTIONS sip:sb@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {via};branch=z9hG4bK{call_id}\r\n\
From: <sip:t@127.0.0.1>;tag=1\r\nTo: <sip:sb@127.0.0.1>\r\nCall-ID: {call_id}\r\n\
CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// Sends `n` OPTIONS from `from`, then has `probe` (exempt) send one: when its answer
/// is back, the server has handled every earlier datagram (one receive loop, in
/// order). Returns the statuses `from` got, by Call-ID, and its Retry-After values.
async fn flood(
    from: &tokio::net::UdpSocket,
    probe: &tokio::net::UdpSocket,
    to: &str,
    n: usize,
    tag: &str,
) -> (Vec<u16>, Vec<String>) {
    for i in 0..n {
        from.send_to(&options(&format!("{tag}{i}"), from), to)
            .await
            .unwrap();
    }
    let probe_id = format!("{tag}-probe");
    probe.send_to(&options(&probe_id, probe), to).await.unwrap();
    let mut buf = vec![0u8; 65536];
    loop {
        let (len, _) = tokio::time::timeout(DEADLINE, probe.recv_from(&mut buf))
            .await
            .expect("probe unanswered")
            .unwrap();
        let text = String::from_utf8_lossy(&buf[..len]);
        if text.contains(&format!("Call-ID: {probe_id}\r\n")) {
            assert!(text.starts_with("SIP/2.0 200 "), "{text}");
            break;
        }
    }
    let (mut statuses, mut retry) = (Vec::new(), Vec::new());
    while let Ok((len, _)) = from.try_recv_from(&mut buf) {
        let text = String::from_utf8_lossy(&buf[..len]).into_owned();
        statuses.push(text[8..11].parse().unwrap());
        if let Some(v) = text
            .split("\r\n")
            .find_map(|l| l.strip_prefix("Retry-After: "))
        {
            retry.push(v.to_string());
        }
    }
    (statuses, retry)
}

#[tokio::test]
async fn the_sip_listener_throttles_a_flooding_source_but_not_trusted_ones_or_trunks() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let limits = ["--sip-rate-limit", "1", "--sip-rate-burst", "3"];
    let (mut child, addr, sip_port, key) = start_server(&data, &limits).await;
    let to = format!("127.0.0.1:{sip_port}");
    let trusted = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let flooder = tokio::net::UdpSocket::bind("127.0.0.2:0").await.unwrap();

    // 127.0.0.2 is nobody's: its burst of 3 (plus at most a token refilled while
    // sending), one 503 with Retry-After, then nothing.
    let t0 = std::time::Instant::now();
    let (got, retry) = flood(&flooder, &trusted, &to, 60, "f").await;
    let refilled = t0.elapsed().as_secs_f64().ceil() as usize;
    let ok = got.iter().filter(|s| **s == 200).count();
    assert!((3..=3 + refilled).contains(&ok), "{got:?}");
    assert_eq!(got.iter().filter(|s| **s == 503).count(), 1, "{got:?}");
    assert_eq!(got.len(), ok + 1, "more than one refusal: {got:?}");
    assert_eq!(retry.len(), 1);
    assert!(
        (1..=3).contains(&retry[0].parse::<u32>().unwrap()),
        "{retry:?}"
    );

    // --sip-trusted (127.0.0.1 by default) is never throttled.
    let other = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (got, _) = flood(&other, &trusted, &to, 60, "t").await;
    assert_eq!(got, vec![200; 60]);

    // A trunk's inbound source is exempt: create one, restart (the exempt set is
    // read at start, and after every trunk change), and flood from it.
    let client = reqwest::Client::new();
    let r = client
        .post(format!("http://{addr}/v1/sip-trunks"))
        .bearer_auth(&key)
        .json(&serde_json::json!({"name": "carrier", "host": "127.0.0.4", "inbound_sources": ["127.0.0.3"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    child.kill().await.unwrap();
    let (mut child, _, sip_port, _) = start_server(&data, &limits).await;
    let to = format!("127.0.0.1:{sip_port}");
    let carrier = tokio::net::UdpSocket::bind("127.0.0.3:0").await.unwrap();
    let (got, _) = flood(&carrier, &trusted, &to, 60, "c").await;
    assert_eq!(got, vec![200; 60]);
    // The throttle is per source: 127.0.0.2 is still limited on this run.
    let (got, _) = flood(&flooder, &trusted, &to, 20, "g").await;
    assert!(got.contains(&503), "{got:?}");
    child.kill().await.unwrap();
}
