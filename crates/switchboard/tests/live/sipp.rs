//! sipp as a peer of the end-to-end tests: one scenario, one call, started and killed by the
//! test. Each test file lays out its own fixed ports (see README) in a `Sipp::spawn` of its own.
#![allow(dead_code)] // each test crate uses its own subset

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

pub struct Sipp {
    child: Child,
}

impl Sipp {
    /// sipp on SIP `port` with its media on `media` and its control socket on `control`.
    pub fn spawn_ports(
        scenario: &Path,
        port: u16,
        media: u16,
        control: u16,
        extra: &[String],
    ) -> Sipp {
        let mut args: Vec<String> = vec![
            "-sf".into(),
            scenario.display().to_string(),
            "-i".into(),
            "127.0.0.1".into(),
            "-p".into(),
            port.to_string(),
            "-mp".into(),
            media.to_string(),
            "-cp".into(),
            control.to_string(),
            "-m".into(),
            "1".into(),
            "-nostdin".into(),
            "-timeout".into(),
            "40s".into(),
        ];
        args.extend(extra.iter().cloned());
        let child = Command::new("sipp")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("sipp is required: apt-get install sip-tester");
        Sipp { child }
    }

    /// Waits (bounded) for the scenario to end; sipp's exit code (0: every step passed).
    pub async fn finish(mut self) -> i32 {
        let st = tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .expect("sipp did not finish")
            .unwrap();
        st.code().unwrap_or(-1)
    }
}
