//! The binary as a subprocess: `org create` beside a running server, and the first start of
//! `serve` printing the default organization's key once.

use serde_json::Value;
use std::process::Stdio;
use std::time::Duration;
use switchboard_testkit::{both, status_json, Db, TestApp, TestDb};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

fn switchboard() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    // Flags only: no setting of the developer's environment leaks in.
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("SWITCHBOARD_") {
            c.env_remove(k);
        }
    }
    c.env("RUST_LOG", "info,sqlx=warn")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    c
}

async fn org_create_beside_a_running_server(db: Db) {
    let app = TestApp::spawn_holding_calls(db).await;
    let out = switchboard()
        .args(["org", "create", "Acme Inc"])
        .args(app.test_db().cli_args())
        .output()
        .await
        .expect("run switchboard org create");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "org create failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one JSON line on stdout: {stdout:?}");
    let v: Value = serde_json::from_str(lines[0]).expect("JSON line");
    let org = v["organization_id"]
        .as_str()
        .expect("organization_id")
        .to_string();
    let key = v["api_key"].as_str().expect("api_key").to_string();
    assert!(uuid::Uuid::parse_str(&org).is_ok(), "{org}");
    assert!(key.starts_with("sk_") && key.len() > 40, "{key}");
    assert_ne!(org, app.org_id);

    // The running server accepts the key at once, for that organization only.
    let (s, v) = status_json(app.get_with_key("/v1/agents", &key).await).await;
    assert_eq!(
        (s.as_u16(), v["num_items"].clone()),
        (200, serde_json::json!(0))
    );
    let r = app
        .client
        .get(app.url("/v1/calls"))
        .header("x-api-key", &key)
        .header("x-organization-id", &org)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let r = app
        .client
        .get(app.url("/v1/calls"))
        .header("x-api-key", &key)
        .header("x-organization-id", &app.org_id)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
    let (s, a) = status_json(
        app.post_json_with_key(
            "/v1/agents",
            &serde_json::json!({"name": "acme agent"}),
            &key,
        )
        .await,
    )
    .await;
    assert_eq!(s, 201, "{a}");
    let (_, mine) = status_json(app.get("/v1/agents").await).await;
    assert_eq!(
        mine["num_items"], 0,
        "the default organization does not see Acme's agent"
    );
    assert_eq!(app.store.org_count().await.expect("org_count"), 2);

    // A bad name is refused with a message, and creates nothing.
    let out = switchboard()
        .args(["org", "create", "   "])
        .args(app.test_db().cli_args())
        .output()
        .await
        .expect("run");
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("name"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(app.store.org_count().await.expect("org_count"), 2);
}
both!(org_create_beside_a_running_server);

/// A `switchboard serve` subprocess, with its address read from its JSON log.
struct Served {
    child: Child,
    addr: String,
    stdout: BufReader<tokio::process::ChildStdout>,
}

async fn serve(db: &TestDb) -> Served {
    let mut child = switchboard()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--sip-listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ])
        .args(db.cli_args())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn switchboard serve");
    let stderr = child.stderr.take().expect("stderr");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stderr).lines();
    let mut seen = Vec::new();
    // Bounded wait for the "listening" log line (the subprocess needs a moment to start).
    let addr = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.expect("read stderr") {
            seen.push(line.clone());
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                if let Some(a) = v["fields"]["addr"].as_str() {
                    return Some(a.to_string());
                }
            }
        }
        None
    })
    .await;
    let addr = match addr {
        Ok(Some(a)) => a,
        _ => {
            let _ = child.start_kill();
            panic!(
                "switchboard serve did not report its address; stderr so far:\n{}",
                seen.join("\n")
            );
        }
    };
    // Keep draining stderr so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Served {
        child,
        addr,
        stdout: BufReader::new(stdout),
    }
}

impl Served {
    /// The next line on stdout (bounded wait).
    async fn line(&mut self) -> String {
        let mut line = String::new();
        tokio::time::timeout(Duration::from_secs(10), self.stdout.read_line(&mut line))
            .await
            .expect("a line on stdout")
            .expect("read stdout");
        line
    }

    /// SIGTERM (graceful shutdown) to this child by its pid, then everything it printed.
    async fn stop(mut self) -> String {
        let pid = self.child.id().expect("running child has a pid");
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let exit = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("server stops on SIGTERM")
            .expect("wait");
        assert!(exit.success(), "serve exited with {exit}");
        let mut out = String::new();
        self.stdout.read_to_string(&mut out).await.expect("stdout");
        out
    }
}

async fn serve_prints_the_default_key_only_on_first_start(db: Db) {
    let store = TestDb::new(db).await;
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");

    let mut first = serve(&store).await;
    let line = first.line().await;
    let v: Value = serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("first start prints a JSON line ({e}): {line:?}"));
    let key = v["api_key"].as_str().expect("api_key").to_string();
    let org = v["organization_id"]
        .as_str()
        .expect("organization_id")
        .to_string();
    assert!(key.starts_with("sk_"), "{v}");
    assert!(uuid::Uuid::parse_str(&org).is_ok());
    assert!(
        v["note"].as_str().is_some_and(|n| n.contains("only once")),
        "{v}"
    );
    let r = client
        .get(format!("http://{}/v1/calls", first.addr))
        .bearer_auth(&key)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let rest = first.stop().await;
    assert_eq!(rest, "", "only one line on stdout");

    let second = serve(&store).await;
    let url = format!("http://{}/v1/calls", second.addr);
    // The key printed on the first start works on the second.
    let r = client
        .get(&url)
        .bearer_auth(&key)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let r = client
        .get(&url)
        .header("x-api-key", &key)
        .header("x-organization-id", &org)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let r = client
        .get(&url)
        .bearer_auth("sk_wrong")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
    let out = second.stop().await;
    assert_eq!(out, "", "the second start prints no key");
}
both!(serve_prints_the_default_key_only_on_first_start);
