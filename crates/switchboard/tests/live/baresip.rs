//! baresip as a talking, listening phone for end-to-end tests: its microphone is a WAV file
//! (aufile), what it hears is written to WAV files (sndfile), it answers calls by itself, and
//! it is driven over ctrl_tcp (JSON netstrings: commands in, responses and call events out).
//! Each instance takes a block of ports from `base`: SIP `base` (and `base + 1`, where
//! baresip puts SIP over TLS), ctrl_tcp `base + 5`, RTP `base + 10 ..= base + 29`.
#![allow(dead_code)] // each test crate uses its own subset

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

/// baresip's ctrl_tcp connection: JSON netstrings, commands in, responses and events out.
pub struct Ctrl {
    stream: tokio::net::TcpStream,
    buf: Vec<u8>,
}

impl Ctrl {
    pub async fn connect(port: u16) -> Ctrl {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("baresip ctrl_tcp");
        Ctrl {
            stream,
            buf: Vec::new(),
        }
    }

    pub async fn command(&mut self, command: &str, params: &str) {
        let body = json!({"command": command, "params": params, "token": command}).to_string();
        let ns = format!("{}:{body},", body.len());
        self.stream.write_all(ns.as_bytes()).await.unwrap();
    }

    /// The next JSON message (response or event).
    async fn next_message(&mut self) -> Value {
        loop {
            if let Some(colon) = self.buf.iter().position(|&b| b == b':') {
                let len: usize = std::str::from_utf8(&self.buf[..colon])
                    .unwrap()
                    .parse()
                    .expect("netstring length");
                if self.buf.len() > colon + len {
                    let v: Value = serde_json::from_slice(&self.buf[colon + 1..colon + 1 + len])
                        .expect("ctrl_tcp JSON");
                    self.buf.drain(..colon + 2 + len); // payload and the trailing ','
                    return v;
                }
            }
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "baresip closed its control connection");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Waits (up to `secs`) for a call event of `kind`; earlier messages are skipped.
    pub async fn wait_event(&mut self, kind: &str, secs: u64) -> Value {
        let mut skipped = Vec::new();
        let found = tokio::time::timeout(Duration::from_secs(secs), async {
            loop {
                let m = self.next_message().await;
                if m["event"] == true && m["type"] == kind {
                    return m;
                }
                skipped.push(m);
            }
        })
        .await;
        match found {
            Ok(m) => m,
            Err(_) => panic!("baresip never reported {kind}; it said: {skipped:?}"),
        }
    }
}

pub struct Phone {
    child: Child,
    pub ctrl: Ctrl,
    pub dir: tempfile::TempDir,
    pub sip_port: u16,
}

impl Phone {
    /// Starts baresip as `user@127.0.0.1`, auto-answering, playing `mic` (8 kHz mono WAV).
    pub async fn start(user: &str, base: u16, mic: &Path) -> Phone {
        let dir = tempfile::tempdir().unwrap();
        let dumps = dir.path().join("heard");
        std::fs::create_dir_all(&dumps).unwrap();
        let config = format!(
            "poll_method epoll\n\
             net_interface 127.0.0.1\n\
             sip_listen 127.0.0.1:{base}\n\
             rtp_ports {}-{}\n\
             audio_source aufile,{mic}\n\
             audio_alert aufile,{mic}\n\
             audio_player aufile,/dev/null\n\
             module_path /usr/lib/baresip/modules\n\
             module g711.so\n\
             module aufile.so\n\
             module sndfile.so\n\
             snd_path {dumps}\n\
             module_app account.so\n\
             module_app menu.so\n\
             module_app ctrl_tcp.so\n\
             ctrl_tcp_listen 127.0.0.1:{}\n",
            base + 10,
            base + 29,
            base + 5,
            mic = mic.display(),
            dumps = dumps.display(),
        );
        std::fs::write(dir.path().join("config"), config).unwrap();
        std::fs::write(
            dir.path().join("accounts"),
            format!("<sip:{user}@127.0.0.1>;regint=0;answermode=auto\n"),
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
        // Ready once it says so on stdout (bounded); the rest of stdout is drained so baresip
        // never blocks on a full pipe.
        let out = child.stdout.take().unwrap();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            use tokio::io::AsyncBufReadExt;
            let mut lines = tokio::io::BufReader::new(out).lines();
            let mut ready = Some(ready_tx);
            while let Ok(Some(l)) = lines.next_line().await {
                if l.contains("baresip is ready.") {
                    if let Some(t) = ready.take() {
                        let _ = t.send(());
                    }
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(20), ready_rx)
            .await
            .expect("baresip never said it was ready")
            .expect("baresip exited before it was ready");
        let ctrl = Ctrl::connect(base + 5).await;
        Phone {
            child,
            ctrl,
            dir,
            sip_port: base,
        }
    }

    pub async fn command(&mut self, command: &str, params: &str) {
        self.ctrl.command(command, params).await
    }

    pub async fn wait_event(&mut self, kind: &str, secs: u64) -> Value {
        self.ctrl.wait_event(kind, secs).await
    }

    /// What the phone heard during its call (the decoded far-end audio), once the call has
    /// closed: 8 kHz mono samples.
    pub fn heard(&self) -> Vec<i16> {
        let dir = self.dir.path().join("heard");
        let files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.to_string_lossy().ends_with("-dec.wav"))
            .collect();
        assert_eq!(
            files.len(),
            1,
            "one decoded dump expected in {dir:?}: {files:?}"
        );
        let (ch, rate, chans) = switchboard_media::audio::read_wav(&files[0]).unwrap();
        assert_eq!((ch, rate), (1, 8000), "baresip dump format");
        chans.into_iter().next().unwrap()
    }
}

impl Drop for Phone {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}
