//! The real server in process for end-to-end tests with SIP peers (telephony.rs, peers.rs):
//! started on a fresh or a kept data directory, driven through its HTTP API, stopped the way
//! SIGTERM stops `serve`.
#![allow(dead_code)] // each test crate uses its own subset

use serde_json::{json, Value};
use std::time::Duration;
use switchboard::config::ServeConfig;
use switchboard::Application;

pub struct Server {
    pub base: String,
    /// The organization and its API key.
    pub org: String,
    pub key: String,
    pub sip_port: u16,
    pub client: reqwest::Client,
    /// The data directory (`None` for a remote server).
    pub dir: Option<tempfile::TempDir>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    /// A server running in another process (started by the test), reached over HTTP only.
    pub fn remote(base: &str, key: String, sip_port: u16) -> Server {
        Server {
            base: base.to_string(),
            org: String::new(),
            key,
            sip_port,
            client: reqwest::Client::new(),
            dir: None,
            stop: None,
            task: None,
        }
    }

    pub async fn start() -> Server {
        Self::start_at(tempfile::tempdir().unwrap(), None, |_| {}).await
    }

    /// Starts on `dir` (a fresh one, or the one a previous server left, then with the
    /// organization and key it created).
    pub async fn start_at(
        dir: tempfile::TempDir,
        org_key: Option<(String, String)>,
        tweak: impl FnOnce(&mut ServeConfig),
    ) -> Server {
        let mut cfg = ServeConfig::for_tests(dir.path().to_path_buf(), None);
        tweak(&mut cfg);
        let app = Application::build(&cfg).await.unwrap();
        let (org, key) = org_key.unwrap_or_else(|| app.first_run_key.clone().unwrap());
        let base = format!("http://{}", app.local_addr());
        let sip_port = app.sip_port();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            app.run_until_stopped(async move {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        Server {
            base,
            org,
            key,
            sip_port,
            client: reqwest::Client::new(),
            dir: Some(dir),
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Sends `method path` with `key` (and a JSON body if given).
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.unwrap()
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .send(reqwest::Method::POST, path, &self.key, Some(body))
            .await;
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self.send(reqwest::Method::GET, path, &self.key, None).await;
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    /// DELETE with the given API key (the server's own organization or another); the status.
    pub async fn delete_as(&self, path: &str, key: &str) -> u16 {
        let r = self.send(reqwest::Method::DELETE, path, key, None).await;
        r.status().as_u16()
    }

    pub async fn bytes(&self, path: &str) -> (u16, Vec<u8>) {
        let r = self.send(reqwest::Method::GET, path, &self.key, None).await;
        (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
    }

    pub async fn create(&self, path: &str, body: Value) -> String {
        let (s, v) = self.post(path, body).await;
        assert_eq!(s, 201, "{path}: {v}");
        v["id"].as_str().unwrap().to_string()
    }

    pub async fn dispatch(&self, from: &str, to: &str) -> String {
        let (s, call) = self.post("/v1/call", json!({"from": from, "to": to})).await;
        assert_eq!(s, 201, "{call}");
        assert_eq!(call["status"], "dialing");
        call["id"].as_str().unwrap().to_string()
    }

    /// Polls the call until it reaches a final status (bounded).
    pub async fn wait_final(&self, id: &str) -> Value {
        for _ in 0..300 {
            let (_, c) = self.get(&format!("/v1/call/{id}")).await;
            let st = c["status"].as_str().unwrap_or("");
            if !matches!(st, "dialing" | "in_progress") {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("call {id} never ended");
    }

    pub async fn wait_status(&self, id: &str, status: &str) -> Value {
        for _ in 0..300 {
            let (_, c) = self.get(&format!("/v1/call/{id}")).await;
            if c["status"] == status {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("call {id} never reached {status}");
    }

    /// Sends the stop signal (what SIGTERM does in `main`).
    pub fn signal_stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }

    /// Waits for the server to finish (bounded) and hands back its data directory.
    pub async fn join(mut self) -> tempfile::TempDir {
        self.signal_stop();
        if let Some(t) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(30), t)
                .await
                .expect("server did not stop within 30 s")
                .unwrap();
        }
        self.dir.take().unwrap()
    }
}
