//! Database outage: the server runs on a PostgreSQL server of this test's own, which is
//! stopped (immediate mode: every connection dropped, as in a crash or failover) and started
//! again. While it is down the API answers 503 with a clear message and Retry-After, within a
//! few seconds (the pool's acquire timeout) and never a 500; once it is back requests succeed
//! again without restarting the server. A call dispatched during the outage is refused with
//! 503 and never created (so never dialed later): the client retries it.
//!
//! Ports: none fixed (PostgreSQL, HTTP and SIP on free or 0 ports).

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchboard::config::ServeConfig;
use switchboard::Application;
use switchboard_testkit::{hold_calls, PgInstance};

/// A 503 must come within the acquire timeout plus a margin for a loaded 2-core machine.
const ANSWER_WITHIN: Duration = Duration::from_secs(8);

struct Server {
    base: String,
    key: String,
    http: reqwest::Client,
}

impl Server {
    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key)
    }

    /// Sends a request; returns (status, Retry-After, JSON body, how long it took).
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Option<String>, Value, Duration) {
        let t = Instant::now();
        let mut r = self.req(method, path);
        if let Some(b) = body {
            r = r.json(b);
        }
        let resp = r
            .send()
            .await
            .expect("the server answers (no connection error)");
        let status = resp.status().as_u16();
        let retry = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        (status, retry, body, t.elapsed())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_answers_503_then_recovers() {
    let pg = PgInstance::start();
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServeConfig::for_tests(dir.path().to_path_buf(), Some(pg.url()));
    // The engine dials nothing: every accepted call stays queued and countable.
    hold_calls(&mut config);
    let app = Application::build(&config).await.expect("build");
    let (_, key) = app.first_run_key.clone().expect("first run key");
    let store = app.store().clone();
    let base = format!("http://{}", app.local_addr());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stop_rx.await;
    }));
    let s = Server {
        base,
        key,
        http: reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
    };
    use reqwest::Method;

    // Before: an agent with a number, and one call dispatched.
    let (st, _, agent, _) = s
        .send(Method::POST, "/v1/agents", Some(&json!({"name": "outage"})))
        .await;
    assert_eq!(st, 201, "{agent}");
    let agent_id = agent["id"].as_str().unwrap().to_string();
    let (st, _, n, _) = s
        .send(
            Method::POST,
            "/v1/phone-numbers",
            Some(&json!({"phone_number": "+14155550100", "agent_id": agent_id})),
        )
        .await;
    assert_eq!(st, 201, "{n}");
    let call_body = json!({"to": "+14155550199", "from": "+14155550100"});
    let (st, _, before, _) = s.send(Method::POST, "/v1/call", Some(&call_body)).await;
    assert_eq!(st, 201, "{before}");
    assert_eq!(store.queued_count().await.unwrap(), 1);

    // The outage.
    pg.stop();
    let down_at = Instant::now();
    let agent_path = format!("/v1/agents/{agent_id}");
    let probes: Vec<(Method, &str, Option<Value>)> = vec![
        (Method::GET, "/v1/calls", None),
        (Method::GET, agent_path.as_str(), None),
        (Method::POST, "/v1/call", Some(call_body.clone())),
        (
            Method::POST,
            "/v1/agents",
            Some(json!({"name": "during outage"})),
        ),
        (Method::GET, "/v1/calls", None),
    ];
    let mut seen = vec![];
    // Sequentially (each alone on the pool) and then all at once (several waiting together).
    for (m, p, b) in &probes {
        seen.push((p.to_string(), s.send(m.clone(), p, b.as_ref()).await));
    }
    let together = futures::future::join_all(
        probes
            .iter()
            .map(|(m, p, b)| async { (p.to_string(), s.send(m.clone(), p, b.as_ref()).await) }),
    )
    .await;
    seen.extend(together);
    for (path, (status, retry, body, took)) in &seen {
        assert_eq!(*status, 503, "{path} while the database is down: {body}");
        assert_eq!(
            body,
            &json!({"error": "Service Unavailable", "message": "the database is unavailable; retry shortly"}),
            "{path}"
        );
        let retry: u64 = retry
            .as_deref()
            .unwrap_or_else(|| panic!("{path}: 503 without Retry-After"))
            .parse()
            .expect("Retry-After in seconds");
        assert!((1..=60).contains(&retry), "{path}: Retry-After {retry}");
        assert!(
            *took < ANSWER_WITHIN,
            "{path} took {took:?} while the database is down"
        );
    }
    let slowest = seen.iter().map(|(_, r)| r.3).max().unwrap();
    // /healthz reports the outage too (its own body shape).
    let (st, _, h, _) = s.send(Method::GET, "/healthz", None).await;
    assert_eq!(st, 503, "{h}");
    let outage = down_at.elapsed();

    // The database returns: the same server answers again, no restart.
    pg.resume();
    let up_at = Instant::now();
    let recovered = loop {
        let (st, _, body, _) = s.send(Method::GET, "/v1/calls", None).await;
        if st == 200 {
            break (up_at.elapsed(), body);
        }
        assert_eq!(st, 503, "while reconnecting: {body}");
        assert!(
            up_at.elapsed() < Duration::from_secs(20),
            "no recovery 20 s after the database returned"
        );
        tokio::task::yield_now().await;
    };
    let (recovery, list) = recovered;
    // The call refused during the outage was never created, so it will never be dialed:
    // only the call from before is there, still queued once.
    let ids: Vec<&str> = list["calls"]
        .as_array()
        .expect("calls array")
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [before["id"].as_str().unwrap()], "{list}");
    assert_eq!(store.queued_count().await.unwrap(), 1);
    // Writes work again; the retried dispatch is accepted and queued once.
    let (st, _, after, _) = s.send(Method::POST, "/v1/call", Some(&call_body)).await;
    assert_eq!(st, 201, "{after}");
    assert_eq!(store.queued_count().await.unwrap(), 2);
    let (st, _, a, _) = s.send(Method::GET, &agent_path, None).await;
    assert_eq!(st, 200, "{a}");
    let (st, _, _, _) = s.send(Method::GET, "/healthz", None).await;
    assert_eq!(st, 200);
    eprintln!(
        "outage figures: {} requests during a {:.1} s outage, all 503, slowest {:.2} s; \
         recovery {:.2} s after the database accepted connections",
        seen.len() + 1,
        outage.as_secs_f64(),
        slowest.as_secs_f64(),
        recovery.as_secs_f64()
    );

    let _ = stop_tx.send(());
    server.await.unwrap().unwrap();
}
