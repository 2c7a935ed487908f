//! A real S3 endpoint for tests: moto's server (`moto_server`, PyPI `moto[server]`, pinned in
//! scripts/requirements-test.txt) on 127.0.0.1 at a free port, stopped when dropped. Buckets
//! are created and objects inspected with plain S3 REST requests (path-style), independently
//! of Switchboard's own S3 client. moto reads the caller's access key from the Authorization
//! header and does not verify the signature, so the requests carry a SigV4-shaped header
//! with a dummy signature: enough to be the bucket owner (anonymous reads get 403).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use switchboard_store::StoreOptions;

/// The test credentials moto accepts (any value works; these are not secrets).
pub const ACCESS_KEY_ID: &str = "testing-access-key";
pub const SECRET_ACCESS_KEY: &str = "testing-secret-key-not-to-be-logged";
pub const REGION: &str = "us-east-1";

const HOW_TO_GET_IT: &str = "S3 tests need moto's server. Run scripts/test.sh (it makes the \
     venv .venv from scripts/requirements-test.txt and exports SWITCHBOARD_TEST_MOTO), or: \
     python3 -m venv .venv && .venv/bin/pip install -r scripts/requirements-test.txt && \
     export SWITCHBOARD_TEST_MOTO=$PWD/.venv/bin/moto_server";

/// `SWITCHBOARD_TEST_MOTO`, else the workspace's `.venv/bin/moto_server`; panics with how to
/// get it otherwise (an S3 test never passes without S3).
pub fn moto_server_path() -> PathBuf {
    if let Some(p) = std::env::var_os("SWITCHBOARD_TEST_MOTO") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "SWITCHBOARD_TEST_MOTO={} does not exist. {HOW_TO_GET_IT}",
            p.display()
        );
        return p;
    }
    let default = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/moto_server");
    assert!(
        default.is_file(),
        "SWITCHBOARD_TEST_MOTO is not set and {} does not exist. {HOW_TO_GET_IT}",
        default.display()
    );
    default
}

pub struct Moto {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    child: Child,
    http: reqwest::Client,
    _log: tempfile::NamedTempFile,
}

impl Moto {
    /// Starts moto on a free loopback port and waits until it answers.
    pub async fn start() -> Moto {
        let bin = moto_server_path();
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
            l.local_addr().expect("address").port()
        };
        let log = tempfile::NamedTempFile::new().expect("log file");
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.reopen().expect("log").try_clone().expect("log"))
            .stderr(log.reopen().expect("log"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}. {HOW_TO_GET_IT}", bin.display()));
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!(
                "AWS4-HMAC-SHA256 Credential={ACCESS_KEY_ID}/20250101/{REGION}/s3/aws4_request, \
                 SignedHeaders=host, Signature=0000"
            )
            .parse()
            .expect("ascii header"),
        );
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("HTTP client");
        let mut moto = Moto {
            endpoint: format!("http://127.0.0.1:{port}"),
            child,
            http,
            _log: log,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = moto.http.get(format!("{}/", moto.endpoint)).send().await {
                if r.status().is_success() {
                    return moto;
                }
            }
            if let Ok(Some(st)) = moto.child.try_wait() {
                let out = std::fs::read_to_string(moto._log.path()).unwrap_or_default();
                panic!("moto_server exited ({st}) before answering:\n{out}");
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not answer within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Object store options pointing Switchboard at this server.
    pub fn options(&self) -> StoreOptions {
        StoreOptions(
            [
                ("aws_endpoint", self.endpoint.as_str()),
                ("aws_access_key_id", ACCESS_KEY_ID),
                ("aws_secret_access_key", SECRET_ACCESS_KEY),
                ("aws_region", REGION),
                ("aws_allow_http", "true"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        )
    }

    /// The `AWS_*` environment that points a `switchboard` process at this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY.into()),
            ("AWS_REGION", REGION.into()),
            ("AWS_ALLOW_HTTP", "true".into()),
        ]
    }

    /// CreateBucket (`PUT /BUCKET`).
    pub async fn create_bucket(&self, bucket: &str) {
        let r = self
            .http
            .put(format!("{}/{bucket}", self.endpoint))
            .send()
            .await
            .expect("CreateBucket request");
        assert!(
            r.status().is_success(),
            "CreateBucket {bucket}: {} {}",
            r.status(),
            r.text().await.unwrap_or_default()
        );
    }

    /// GetObject: the object's bytes, or `None` on 404.
    pub async fn get_object(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        let r = self
            .http
            .get(format!("{}/{bucket}/{key}", self.endpoint))
            .send()
            .await
            .expect("GetObject request");
        if r.status() == reqwest::StatusCode::NOT_FOUND {
            return None;
        }
        assert!(r.status().is_success(), "GetObject {key}: {}", r.status());
        Some(r.bytes().await.expect("object body").to_vec())
    }

    /// PutObject.
    pub async fn put_object(&self, bucket: &str, key: &str, data: Vec<u8>) {
        let r = self
            .http
            .put(format!("{}/{bucket}/{key}", self.endpoint))
            .body(data)
            .send()
            .await
            .expect("PutObject request");
        assert!(r.status().is_success(), "PutObject {key}: {}", r.status());
    }

    /// ListObjectsV2: every key in the bucket.
    pub async fn keys(&self, bucket: &str) -> Vec<String> {
        let r = self
            .http
            .get(format!("{}/{bucket}?list-type=2", self.endpoint))
            .send()
            .await
            .expect("ListObjectsV2 request");
        assert!(r.status().is_success(), "ListObjectsV2: {}", r.status());
        let xml = r.text().await.expect("listing body");
        let mut keys = Vec::new();
        let mut rest = xml.as_str();
        while let Some(i) = rest.find("<Key>") {
            let after = &rest[i + 5..];
            let j = after.find("</Key>").expect("closing </Key>");
            keys.push(after[..j].to_string());
            rest = &after[j..];
        }
        keys.sort();
        keys
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
