//! The API contract (issue 13): `schemathesis run --checks all` against the real server, on
//! SQLite and on PostgreSQL. Every operation of `/openapi.json` is exercised with generated
//! valid and invalid requests (examples, coverage, fuzzing) and through the document's links
//! (stateful: created ids are read, changed and deleted); every response must match its
//! documented status, headers and schema, invalid input must be refused, valid input
//! accepted, and nothing may answer 5xx. The run is bounded (`--max-examples`, a fixed
//! `--seed`) so each backend takes well under two minutes.
//!
//! schemathesis comes from the test venv (`SWITCHBOARD_TEST_VENV`, pinned in
//! `scripts/requirements-test.txt`); its settings are in `contract/schemathesis.toml`, and
//! `contract/safety_hooks.py` keeps generated trunks and webhook URLs from sending anything
//! off this machine (a trunk's `register` is turned off, numeric hosts point at loopback).
//! The server listens on port 0 (no fixed ports). It holds dispatched calls in the queue
//! (nothing is dialed) and lets webhook URLs name any host (`--webhook-allow-private`, as
//! every test server does): whether a host resolves to a public address is the DNS's answer,
//! which no schema can state, and the test machine has no DNS.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use switchboard_testkit::{both, hold_calls, Db, TestApp};

/// Examples per operation and phase: enough to reach every parameter and body shape, few
/// enough for a debug build on 2 cores.
const MAX_EXAMPLES: &str = "10";
const SEED: &str = "1";
/// A run that takes longer than this is a failure in itself (a hang, or a server that slows
/// down under load).
const TIME_LIMIT: Duration = Duration::from_secs(300);

fn schemathesis() -> PathBuf {
    let venv = switchboard_testkit::stt::venv_path();
    let bin = venv.join("bin/schemathesis");
    assert!(
        bin.is_file(),
        "{} is missing: install the test requirements into the venv \
         ({}/bin/pip install -r scripts/requirements-test.txt), as scripts/test.sh does",
        bin.display(),
        venv.display()
    );
    bin
}

async fn contract(db: Db) {
    // The server's warnings and errors go to the test's output: a 5xx schemathesis reports
    // comes with the error the server logged for it.
    let _ = tracing_subscriber::fmt()
        .with_env_filter("warn")
        .with_ansi(false)
        .with_test_writer()
        .try_init();
    let app = TestApp::spawn_with(db, hold_calls).await;
    let config = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/contract/schemathesis.toml");
    let report_dir = app.data_dir.join("schemathesis-report");
    let started = Instant::now();
    let child = tokio::process::Command::new(schemathesis())
        .arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(format!("{}/openapi.json", app.base))
        .args(["--checks", "all"])
        .args([
            "--header",
            &format!("Authorization: Bearer {}", app.api_key),
        ])
        .args(["--max-examples", MAX_EXAMPLES, "--seed", SEED])
        // One worker: hypothesis parses source in its worker threads, and CPython 3.11's
        // parser is not safe to run from two threads at once ("AST constructor recursion
        // depth mismatch", CPython issue 106905).
        .args([
            "--workers",
            "1",
            "--no-color",
            "--generation-database",
            "none",
        ])
        .args(["--request-timeout", "20"])
        // The bounded examples go to the API's own parameters and bodies; generated
        // x-api-key / x-organization-id values would only turn them into 401s. The
        // `ignored_auth` check still sends every operation without credentials.
        .args(["--generation-with-security-parameters", "false"])
        // No string of the API may hold U+0000 (PostgreSQL cannot store it; the API answers
        // 400, pinned in `found_by_the_contract`): a rule of the whole document, stated in its
        // description, that would otherwise take a pattern on every string and object key.
        .args(["--generation-allow-x00", "false"])
        .arg("--report-dir")
        .arg(&report_dir)
        // Keeps the server from reaching anything off this machine (see the module's text).
        .env("PYTHONPATH", config.parent().expect("contract dir"))
        .env("SCHEMATHESIS_HOOKS", "safety_hooks")
        // Its crash cache (`.schemathesis/`) goes with the test's data, not the source tree.
        .current_dir(&app.data_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start schemathesis");
    let out = tokio::time::timeout(TIME_LIMIT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("schemathesis did not finish within {TIME_LIMIT:?}"))
        .expect("schemathesis ran");
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Its closing summary, for the figures (operations, test cases) in the test log.
    let summary = stdout
        .find("SUMMARY")
        .map(|i| &stdout[i..])
        .unwrap_or(&stdout);
    println!(
        "schemathesis on {db:?} in {:.1} s:\n{summary}",
        elapsed.as_secs_f64()
    );
    assert!(
        out.status.success(),
        "schemathesis found failures on {db:?} (exit {:?}):\n{stdout}\n{stderr}",
        out.status.code()
    );
    // Every phase ran, the stateful one included (the links resolved and chained real ids).
    for phase in ["Examples", "Coverage", "Fuzzing", "Stateful"] {
        assert!(
            summary.contains(&format!("✅ {phase}")),
            "phase {phase} did not pass on {db:?}:\n{stdout}"
        );
    }
    let operations = summary
        .lines()
        .find_map(|l| l.trim().strip_prefix("Tested: "))
        .and_then(|n| n.trim().parse::<usize>().ok())
        .expect("the summary names the operations tested");
    let documented = app
        .get("/openapi.json")
        .await
        .json::<serde_json::Value>()
        .await
        .expect("the document")["paths"]
        .as_object()
        .expect("paths")
        .values()
        .flat_map(|item| item.as_object().into_iter().flat_map(|m| m.keys()))
        .filter(|k| ["get", "post", "put", "patch", "delete"].contains(&k.as_str()))
        .count();
    // schemathesis leaves out the one operation that serves the document it tests
    // (GET /openapi.json); every other one is tested.
    assert_eq!(
        operations,
        documented - 1,
        "every documented operation is tested on {db:?}"
    );
    // The server is still healthy after it.
    assert_eq!(app.get("/healthz").await.status(), 200);
}

/// What the contract run found, each pinned by a plain request: values the document admits
/// are accepted, and checks across values answer 422, not 400.
async fn found_by_the_contract(db: Db) {
    let app = TestApp::spawn_with(db, hold_calls).await;
    let status = |r: reqwest::Response| r.status().as_u16();
    // Two tools of one name: each valid, together not.
    let dup =
        serde_json::json!({"name": "dup", "tools": [{"type": "end_call"}, {"type": "end_call"}]});
    assert_eq!(status(app.post_json("/v1/agents", &dup).await), 422);
    let agent = app
        .post_json("/v1/agents", &serde_json::json!({"name": "a"}))
        .await
        .json::<serde_json::Value>()
        .await
        .expect("agent");
    // `30.0` is the integer 30 (JSON Schema's `integer`).
    let call =
        serde_json::json!({"to": "+14155550100", "agent_id": agent["id"], "ring_timeout": 30.0});
    assert_eq!(status(app.post_json("/v1/call", &call).await), 201);
    assert_eq!(status(app.post_json("/v1/call", &call).await), 201);
    let call =
        serde_json::json!({"to": "+14155550100", "agent_id": agent["id"], "ring_timeout": 30.5});
    assert_eq!(status(app.post_json("/v1/call", &call).await), 400);
    // An empty query value is absent; a cursor is plain text, and one of another order is 422.
    assert_eq!(status(app.get("/v1/agents?cursor=&limit=").await), 200);
    let page = app
        .get("/v1/calls?limit=1&order_by=started_at")
        .await
        .json::<serde_json::Value>()
        .await
        .expect("page");
    let cursor = page["cursor"].as_str().unwrap_or("");
    assert!(cursor.starts_with("c1.started_at.desc."), "{page}");
    assert_eq!(
        status(app.get(&format!("/v1/calls?cursor={cursor}")).await),
        422
    );
    // pageno stops where int64 does.
    assert_eq!(
        status(app.get("/api/v1/agents?pageno=9223372036854775808").await),
        400
    );
    assert_eq!(
        status(app.get("/api/v1/agents?pageno=9223372036854775807").await),
        200
    );
    // A webhook endpoint: `enabled` must be a boolean (and nothing is created otherwise);
    // the description's limit counts characters, not bytes.
    let bad =
        serde_json::json!({"url": "http://hooks.example/x", "events": ["*"], "enabled": "no"});
    assert_eq!(
        status(app.post_json("/v1/webhook-endpoints", &bad).await),
        400
    );
    let list = app
        .get("/v1/webhook-endpoints")
        .await
        .json::<serde_json::Value>()
        .await
        .expect("list");
    assert_eq!(list["num_items"], 0, "{list}");
    let ok = serde_json::json!({"url": "http://hooks.example/x", "events": ["*"], "description": "é".repeat(1000)});
    assert_eq!(
        status(app.post_json("/v1/webhook-endpoints", &ok).await),
        201
    );
    // A NUL character in any string is a 400 on both backends (PostgreSQL refuses to store
    // one: it was a 500 there), and so is an endpoint id that is not a UUID.
    let nul = serde_json::json!({"name": "t", "host": "pbx.example", "password": "a\u{0}b"});
    let r = app.post_json("/v1/sip-trunks", &nul).await;
    assert_eq!(r.status(), 400);
    let v = r.json::<serde_json::Value>().await.expect("error body");
    assert!(
        v["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("password must not contain NUL"),
        "{v}"
    );
    let nul_key = serde_json::json!({"name": "t", "settings": {"a\u{0}": 1}});
    assert_eq!(status(app.post_json("/v1/agents", &nul_key).await), 400);
    assert_eq!(status(app.get("/v1/webhook-endpoints/%00").await), 400);
    assert_eq!(
        status(app.get("/v1/webhook-endpoints/not-an-id").await),
        400
    );
}

both!(contract, found_by_the_contract);
