//! The throwaway PostgreSQL server shared by every test of one test process.
//!
//! `SWITCHBOARD_TEST_PG_URL` names an existing server to use instead. Otherwise the first
//! caller runs `initdb` into a temporary directory and starts `postgres` on a free loopback
//! port; a watchdog process stops the server and removes the directory when this process
//! exits, however it exits (the watchdog waits for end-of-file on a pipe whose only writer is
//! this process, so even a SIGKILLed test run leaves nothing behind).

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};

/// A running server: its admin URL (database `postgres`) and the pipe that keeps the
/// watchdog waiting. The pipe is never written to; it closes when the process exits.
struct Server {
    admin_url: String,
    _watchdog: Option<Mutex<ChildStdin>>,
}

static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();

/// The admin URL (`postgres://…/postgres`) of the throwaway PostgreSQL server, started once
/// per test process on first use. Panics with instructions if PostgreSQL is not installed:
/// tests are never skipped silently.
pub fn postgres_url() -> String {
    match SERVER.get_or_init(start_or_env) {
        Ok(s) => s.admin_url.clone(),
        Err(e) => panic!("{e}"),
    }
}

/// The URL of database `name` on the same server as `admin`.
pub(crate) fn database_url(admin: &str, name: &str) -> String {
    let mut u = url::Url::parse(admin).expect("admin URL parses");
    u.set_path(&format!("/{name}"));
    u.to_string()
}

fn start_or_env() -> Result<Server, String> {
    if let Ok(u) = std::env::var("SWITCHBOARD_TEST_PG_URL") {
        let mut url = url::Url::parse(&u)
            .map_err(|e| format!("SWITCHBOARD_TEST_PG_URL={u:?} is not a URL: {e}"))?;
        if url.path().is_empty() || url.path() == "/" {
            url.set_path("/postgres");
        }
        return Ok(Server {
            admin_url: url.to_string(),
            _watchdog: None,
        });
    }
    let mut last = String::new();
    // A free port found by binding port 0 can be taken by someone else before postgres binds
    // it; retry a few times with a new port.
    for _ in 0..3 {
        match start_local() {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn is_root() -> bool {
    // /proc/self belongs to the effective user; no unsafe libc call needed.
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// Finds the directory holding `initdb`, `pg_ctl` and `postgres`.
fn find_bin_dir() -> Result<PathBuf, String> {
    let has_all = |d: &Path| {
        ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|b| d.join(b).is_file())
    };
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    let mut versioned: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    // Newest major version first.
    versioned.sort_by_key(|p| {
        std::cmp::Reverse(
            p.parent()
                .and_then(|v| v.file_name())
                .and_then(|v| v.to_str())
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(0),
        )
    });
    candidates.extend(versioned);
    candidates.push(PathBuf::from("/usr/local/bin"));
    candidates.push(PathBuf::from("/usr/local/pgsql/bin"));
    candidates.into_iter().find(|d| has_all(d)).ok_or_else(|| {
        "PostgreSQL tests need initdb, pg_ctl and postgres (Debian: apt-get install postgresql; looked in PATH, \
         /usr/lib/postgresql/*/bin, /usr/local/bin), or SWITCHBOARD_TEST_PG_URL=postgres://user:pass@host:port \
         pointing at a server where the user may CREATE DATABASE"
            .to_string()
    })
}

/// A command run as the `postgres` system user when we are root (initdb and postgres refuse
/// to run as root), as ourselves otherwise.
fn pg_command(root: bool, program: &Path) -> Command {
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn run(mut c: Command, what: &str) -> Result<(), String> {
    let out = c
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{what} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| format!("cannot find a free port: {e}"))?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

fn start_local() -> Result<Server, String> {
    let bin = find_bin_dir()?;
    let root = is_root();
    let dir = tempfile::Builder::new()
        .prefix("switchboard-pg-")
        .tempdir()
        .map_err(|e| format!("cannot create a temp dir: {e}"))?
        // The watchdog removes it once the server has stopped.
        .keep();
    let cleanup_now = |e: String| {
        let _ = std::fs::remove_dir_all(&dir);
        e
    };
    if root {
        // The `postgres` user must own the cluster directory.
        let mut c = Command::new("chown");
        c.arg("postgres:").arg(&dir);
        run(
            c,
            "chown postgres: <tempdir> (is there a `postgres` system user?)",
        )
        .map_err(cleanup_now)?;
    }
    let data = dir.join("data");
    let mut c = pg_command(root, &bin.join("initdb"));
    c.arg("-D")
        .arg(&data)
        .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"]);
    run(c, "initdb").map_err(cleanup_now)?;
    let port = free_port().map_err(cleanup_now)?;
    let opts = format!(
        "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
         -c full_page_writes=off -c max_connections=300 -c shared_buffers=32MB",
        dir.display()
    );
    let mut c = pg_command(root, &bin.join("pg_ctl"));
    c.arg("-D")
        .arg(&data)
        .arg("-l")
        .arg(dir.join("server.log"))
        .args(["-w", "-t", "60", "-o", &opts, "start"]);
    if let Err(e) = run(c, "pg_ctl start") {
        let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
        return Err(cleanup_now(format!("{e}\nserver log:\n{log}")));
    }
    let pid = std::fs::read_to_string(data.join("postmaster.pid"))
        .ok()
        .and_then(|s| s.lines().next().and_then(|l| l.trim().parse::<u32>().ok()))
        .ok_or_else(|| cleanup_now("postgres started but postmaster.pid is unreadable".into()))?;
    // The watchdog: blocks reading its stdin until this process exits (our end of the pipe
    // is close-on-exec, so no other child holds it), then stops the server (SIGINT = fast
    // shutdown), waits for it and removes the directory. Its own process group keeps a
    // Ctrl-C aimed at the test run from killing it before it has cleaned up.
    let script = r#"cat >/dev/null; kill -INT "$1" 2>/dev/null; i=0
while kill -0 "$1" 2>/dev/null && [ "$i" -lt 200 ]; do sleep 0.05; i=$((i+1)); done
kill -KILL "$1" 2>/dev/null; rm -rf "$2""#;
    let child = Command::new("sh")
        .args(["-c", script, "switchboard-pg-watchdog"])
        .arg(pid.to_string())
        .arg(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            let _ = Command::new("kill")
                .args(["-INT", &pid.to_string()])
                .status();
            return Err(format!("cannot start the PostgreSQL watchdog: {e}"));
        }
    };
    // `child` is dropped without waiting: the watchdog outlives us by design.
    let stdin = child.stdin.take().expect("piped stdin");
    Ok(Server {
        admin_url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
        _watchdog: Some(Mutex::new(stdin)),
    })
}

/// A PostgreSQL server of one test's own, which the test may stop and start again (a database
/// outage) without disturbing the shared server other tests use. Same port across restarts,
/// so a server under test reconnects to the same URL. Stopped and removed on drop; a watchdog
/// (as for the shared server) cleans up if the test process dies instead.
pub struct PgInstance {
    bin: PathBuf,
    root: bool,
    dir: PathBuf,
    opts: String,
    port: u16,
    _watchdog: ChildStdin,
}

impl PgInstance {
    /// initdb + start on a free loopback port. Panics with the server log if it cannot.
    // The watchdog is never waited for: it outlives this process by design.
    #[allow(clippy::zombie_processes)]
    pub fn start() -> PgInstance {
        let bin = find_bin_dir().unwrap_or_else(|e| panic!("{e}"));
        let root = is_root();
        let dir = tempfile::Builder::new()
            .prefix("switchboard-pg-own-")
            .tempdir()
            .expect("temp dir")
            .keep();
        if root {
            let mut c = Command::new("chown");
            c.arg("postgres:").arg(&dir);
            run(c, "chown postgres: <tempdir>").unwrap_or_else(|e| panic!("{e}"));
        }
        let mut c = pg_command(root, &bin.join("initdb"));
        c.arg("-D").arg(dir.join("data")).args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
        ]);
        run(c, "initdb").unwrap_or_else(|e| panic!("{e}"));
        // The watchdog stops whatever server runs on the directory (its pid changes on each
        // restart, so it goes through pg_ctl) and removes it once this process has exited.
        let mut stop = vec![];
        if root {
            stop.extend(["runuser", "-u", "postgres", "--"].map(String::from));
        }
        stop.push(bin.join("pg_ctl").display().to_string());
        let script = r#"cat >/dev/null; dir="$1"; shift; "$@" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1; rm -rf "$dir""#;
        let mut child = Command::new("sh")
            .args(["-c", script, "switchboard-pg-watchdog"])
            .arg(&dir)
            .args(&stop)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start the PostgreSQL watchdog");
        let watchdog = child.stdin.take().expect("piped stdin");
        let port = free_port().unwrap_or_else(|e| panic!("{e}"));
        // synchronous_commit stays on: an immediate stop must not lose committed rows (the
        // WAL is in the OS cache when a commit returns; fsync=off only skips flushing it).
        let opts = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off \
             -c full_page_writes=off -c max_connections=100 -c shared_buffers=16MB",
            dir.display()
        );
        let pg = PgInstance {
            bin,
            root,
            dir,
            opts,
            port,
            _watchdog: watchdog,
        };
        pg.resume();
        pg
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    fn pg_ctl(&self) -> Command {
        let mut c = pg_command(self.root, &self.bin.join("pg_ctl"));
        c.arg("-D").arg(self.dir.join("data"));
        c
    }

    /// Stops the server the way a crash or a failover does to its clients: `immediate` mode
    /// drops every connection at once, without waiting for them to finish. Returns once the
    /// server has exited (the port refuses connections).
    pub fn stop(&self) {
        let mut c = self.pg_ctl();
        c.args(["-m", "immediate", "-w", "-t", "30", "stop"]);
        run(c, "pg_ctl stop").unwrap_or_else(|e| panic!("{e}"));
    }

    /// Starts the server (again) on the same port and data; returns once it accepts
    /// connections.
    pub fn resume(&self) {
        let mut c = self.pg_ctl();
        c.arg("-l")
            .arg(self.dir.join("server.log"))
            .args(["-w", "-t", "60", "-o", &self.opts, "start"]);
        if let Err(e) = run(c, "pg_ctl start") {
            let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
            panic!("{e}\nserver log:\n{log}");
        }
    }
}

impl Drop for PgInstance {
    fn drop(&mut self) {
        let mut c = self.pg_ctl();
        c.args(["-m", "immediate", "-w", "stop"]);
        let _ = c
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
