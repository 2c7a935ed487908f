//! Test support for Switchboard: [`TestApp`] runs the real server (the same
//! `Application` `main` runs) on port 0 over a fresh database, SQLite or PostgreSQL, with an
//! HTTP client and the default organization's API key ready.
//!
//! ```text
//! use switchboard_testkit::{both, Db, TestApp};
//!
//! async fn healthz(db: Db) {
//!     let app = TestApp::spawn(db).await;
//!     assert_eq!(app.get("/healthz").await.status(), 200);
//! }
//! both!(healthz); // tests `healthz::sqlite` and `healthz::postgres`
//! ```

pub mod fake_llm;
pub mod moto;
mod pg;
pub mod speech;
pub mod stt;

pub use pg::{postgres_url, PgInstance};

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use switchboard::config::ServeConfig;
use switchboard::Application;
use switchboard_domain::{Agent, AgentPatch, Call, CallType, NewCall, OrgId, PhoneNumber};
use switchboard_store::{CreateCallOutcome, Recordings, Store};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The database backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// Instantiates `async fn name(db: Db)` once per backend, as `#[tokio::test]`s
/// `name::sqlite` and `name::postgres` (filter with `cargo test sqlite` or `postgres`).
#[macro_export]
macro_rules! both {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[::tokio::test]
            async fn sqlite() {
                super::$name($crate::Db::Sqlite).await
            }
            #[::tokio::test]
            async fn postgres() {
                super::$name($crate::Db::Postgres).await
            }
        }
    )+};
}

/// Adjusts a configuration so the engine dials nothing: with a per-organization cap of 0
/// concurrent calls every claimed dispatch goes straight back to the queue, so accepted calls
/// stay `dialing`, `store.queued_count()` counts them, and no SIP leaves the process.
pub fn hold_calls(config: &mut ServeConfig) {
    config.telephony.max_calls_per_org = 0;
}

/// A fresh, empty store: a new temporary data directory, and on PostgreSQL a new database
/// `sb_test_<random>` on the throwaway server (dropped again when this value is dropped).
pub struct TestDb {
    pub db: Db,
    /// `None` for SQLite: the database lives in the data directory.
    pub database_url: Option<String>,
    dir: tempfile::TempDir,
    /// (admin URL, database name) of a PostgreSQL database to drop at the end.
    pg: Option<(String, String)>,
}

impl TestDb {
    pub async fn new(db: Db) -> TestDb {
        let dir = tempfile::Builder::new()
            .prefix("switchboard-test-")
            .tempdir()
            .expect("create a temp dir");
        let (database_url, pg) = match db {
            Db::Sqlite => (None, None),
            Db::Postgres => {
                use sqlx::Connection;
                let admin = postgres_url();
                let name = format!("sb_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = sqlx::PgConnection::connect(&admin)
                    .await
                    .unwrap_or_else(|e| {
                        panic!("cannot connect to the test PostgreSQL at {admin}: {e}")
                    });
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
                let _ = conn.close().await;
                (Some(pg::database_url(&admin, &name)), Some((admin, name)))
            }
        };
        TestDb {
            db,
            database_url,
            dir,
            pg,
        }
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// A server configuration on this store: port 0, no rate limit.
    pub fn serve_config(&self) -> ServeConfig {
        ServeConfig::for_tests(self.data_dir().to_path_buf(), self.database_url.clone())
    }

    /// The command-line flags that point the `switchboard` binary at this store.
    pub fn cli_args(&self) -> Vec<String> {
        let mut v = vec![
            "--data-dir".to_string(),
            self.data_dir().display().to_string(),
        ];
        if let Some(u) = &self.database_url {
            v.push("--database-url".into());
            v.push(u.clone());
        }
        v
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((admin, name)) = self.pg.take() else {
            return;
        };
        // Drop is synchronous and may run inside a runtime: do the async work on a thread of
        // its own. WITH (FORCE) ends the server's pooled connections that are still open.
        let done = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                use sqlx::Connection;
                if let Ok(mut c) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut c)
                        .await;
                    let _ = c.close().await;
                }
            });
        });
        let _ = done.join();
    }
}

/// The real server on `127.0.0.1:<port 0>` over a fresh database, running on a tokio task
/// until this value is dropped (or [`TestApp::stop`] is awaited).
pub struct TestApp {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub addr: SocketAddr,
    /// The default organization (created on the server's first start).
    pub org_id: String,
    pub api_key: String,
    /// The dashboard owner the first start created: (email, password) (issue 12).
    pub owner_login: (String, String),
    pub client: reqwest::Client,
    /// The server's store (same pool): seed or inspect rows directly.
    pub store: Store,
    /// The server's recordings storage (`<data_dir>/recordings` unless configured otherwise).
    pub recordings: Recordings,
    pub data_dir: PathBuf,
    /// `None` on SQLite.
    pub database_url: Option<String>,
    pub backend: Db,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
    // Last: dropped after the server has been told to stop.
    db: TestDb,
}

impl TestApp {
    /// A server on a fresh database with the default test configuration.
    pub async fn spawn(db: Db) -> TestApp {
        Self::spawn_with(db, |_| {}).await
    }

    /// A server whose engine holds every accepted call in the dispatch queue (see
    /// [`hold_calls`]): for API tests, where a call must stay `dialing` and queued.
    pub async fn spawn_holding_calls(db: Db) -> TestApp {
        Self::spawn_with(db, hold_calls).await
    }

    /// A server on a fresh database, with the configuration adjusted by `configure`
    /// (e.g. `|c| c.rate_limit = 2`).
    pub async fn spawn_with(db: Db, configure: impl FnOnce(&mut ServeConfig)) -> TestApp {
        Self::spawn_on(TestDb::new(db).await, configure).await
    }

    /// A server on a store prepared by the caller.
    pub async fn spawn_on(db: TestDb, configure: impl FnOnce(&mut ServeConfig)) -> TestApp {
        let mut config = db.serve_config();
        configure(&mut config);
        let app = Application::build(&config)
            .await
            .unwrap_or_else(|e| panic!("Application::build: {e:#}"));
        let (org_id, api_key) = app
            .first_run_key
            .clone()
            .expect("a fresh store gets a default organization on the first start");
        let expected = match db.db {
            Db::Sqlite => switchboard_store::Backend::Sqlite,
            Db::Postgres => switchboard_store::Backend::Postgres,
        };
        assert_eq!(
            app.store().backend(),
            expected,
            "the server runs on the backend asked for"
        );
        let owner_login = app
            .first_run_login
            .clone()
            .expect("a fresh store gets a dashboard owner on the first start");
        let addr = app.local_addr();
        let store = app.store().clone();
        let recordings = app.recordings().clone();
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            if let Err(e) = app
                .run_until_stopped(async {
                    let _ = rx.await;
                })
                .await
            {
                eprintln!("test server stopped with an error: {e:#}");
            }
        });
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .expect("HTTP client");
        TestApp {
            base: format!("http://{addr}"),
            addr,
            org_id,
            api_key,
            owner_login,
            client,
            store,
            recordings,
            data_dir: config.store.data_dir.clone(),
            database_url: db.database_url.clone(),
            backend: db.db,
            shutdown: Some(tx),
            server: Some(server),
            db,
        }
    }

    /// Stops the server gracefully and waits until it has finished.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.server.take() {
            let _ = h.await;
        }
    }

    /// The fresh store this server runs on (data dir and database URL).
    pub fn test_db(&self) -> &TestDb {
        &self.db
    }

    /// The default organization's id, typed.
    pub fn org(&self) -> OrgId {
        self.org_id.parse().expect("org id is a UUID")
    }

    /// Creates another organization through the store; returns (organization id, API key).
    pub async fn new_org(&self, name: &str) -> (String, String) {
        let (org, key) = self.store.create_org(name).await.expect("create_org");
        (org.id.to_string(), key)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request with `Authorization: Bearer <default key>`.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.request_with_key(method, path, &self.api_key)
    }

    /// A request with `Authorization: Bearer <key>`.
    pub fn request_with_key(&self, method: Method, path: &str, key: &str) -> RequestBuilder {
        self.client.request(method, self.url(path)).bearer_auth(key)
    }

    pub async fn get(&self, path: &str) -> Response {
        send(self.request(Method::GET, path)).await
    }
    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        send(self.request(Method::POST, path).json(body)).await
    }
    pub async fn patch_json(&self, path: &str, body: &Value) -> Response {
        send(self.request(Method::PATCH, path).json(body)).await
    }
    pub async fn delete(&self, path: &str) -> Response {
        send(self.request(Method::DELETE, path)).await
    }

    pub async fn get_with_key(&self, path: &str, key: &str) -> Response {
        send(self.request_with_key(Method::GET, path, key)).await
    }
    pub async fn post_json_with_key(&self, path: &str, body: &Value, key: &str) -> Response {
        send(self.request_with_key(Method::POST, path, key).json(body)).await
    }
    pub async fn patch_json_with_key(&self, path: &str, body: &Value, key: &str) -> Response {
        send(self.request_with_key(Method::PATCH, path, key).json(body)).await
    }
    pub async fn delete_with_key(&self, path: &str, key: &str) -> Response {
        send(self.request_with_key(Method::DELETE, path, key)).await
    }

    /// An agent of organization `org`, created through the store.
    pub async fn seed_agent(&self, org: OrgId, name: &str) -> Agent {
        let patch = AgentPatch {
            name: Some(name.to_string()),
            ..Default::default()
        };
        self.store
            .create_agent(org, patch)
            .await
            .expect("create_agent")
    }

    /// An outbound call (status dialing, queued) of organization `org`, created through the
    /// store; adjust it with `store.update_call`.
    pub async fn seed_call(&self, org: OrgId, agent: Option<&Agent>, to: &str) -> Call {
        let new = NewCall {
            org_id: org,
            agent_id: agent.map(|a| a.id),
            phone_number_id: None,
            campaign_id: None,
            call_type: CallType::Outbound,
            client_number: PhoneNumber::parse(to).expect("E.164 number"),
            agent_phone_number: None,
            context: None,
            metadata: None,
            user_speaks_first: false,
            ring_timeout_seconds: None,
        };
        match self
            .store
            .create_call(new, None)
            .await
            .expect("create_call")
        {
            CreateCallOutcome::Created(c) | CreateCallOutcome::Replayed(c) => c,
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.server.take() {
            h.abort();
        }
    }
}

async fn send(rb: RequestBuilder) -> Response {
    rb.send()
        .await
        .unwrap_or_else(|e| panic!("HTTP request failed: {e}"))
}

/// The status and the JSON body of a response; panics (showing the body) if it is not JSON.
pub async fn status_json(resp: Response) -> (StatusCode, Value) {
    let status = resp.status();
    let text = resp
        .text()
        .await
        .unwrap_or_else(|e| panic!("reading the body of a {status} response: {e}"));
    let v = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{status} response is not JSON ({e}): {text:?}"));
    (status, v)
}

/// Asserts that `resp` is the API's error envelope with `status`: exactly the keys `error`
/// (the status's reason phrase) and `message` (non-empty). Returns the message.
pub async fn expect_error(resp: Response, status: u16) -> String {
    let url = resp.url().clone();
    let (got, v) = status_json(resp).await;
    assert_eq!(
        got.as_u16(),
        status,
        "{url}: expected {status}, got {got} with {v}"
    );
    let reason = got.canonical_reason().unwrap_or("Error");
    assert_eq!(v["error"], reason, "{url}: error field of {v}");
    let msg = v["message"]
        .as_str()
        .unwrap_or_else(|| panic!("{url}: no message string in {v}"));
    assert!(!msg.is_empty(), "{url}: empty message");
    assert_eq!(
        v.as_object().map(|o| o.len()),
        Some(2),
        "{url}: error body has extra keys: {v}"
    );
    msg.to_string()
}
