//! The read path. Statements are written once (`$N` placeholders, both engines) and their
//! rows decoded once, through [`Cols`], whichever driver fetched them.
//!
//! On PostgreSQL a read goes through sqlx's pool like everything else. On SQLite it does
//! not: sqlx runs each SQLite connection on a worker thread of its own, so every statement is
//! two hand-offs between that thread and the async task (about 0.2 ms for a 0.13 ms page on a
//! 2-vCPU machine, more than the query itself). Reads instead run on a plain SQLite
//! connection (rusqlite, the same SQLite library) on the calling thread. A read that runs
//! longer than [`INLINE_BUDGET`] (a wide `COUNT(*)`, an unindexed filter) is interrupted by
//! SQLite's progress handler and run again on the blocking pool, so no runtime thread (which
//! also carries RTP) is held for more than about that long; a read is safe to repeat.
//! Writes stay on sqlx, behind the write gate: WAL gives every read a consistent snapshot of
//! what was committed before it began.
//!
//! Measured on the 1M-call benchmark's first page (p50): rusqlite on the calling thread
//! 0.125 ms, inside a Tokio task 0.145, via `block_in_place` 0.184, via `spawn_blocking`
//! 0.226, via sqlx 0.35.

use crate::StoreError;
use rusqlite::{Connection, ErrorCode, OpenFlags};
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::{Arguments, Row};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a read may hold the calling thread before it moves to the blocking pool.
pub(crate) const INLINE_BUDGET: Duration = Duration::from_millis(2);

/// SQLite runs the progress handler every this many virtual machine instructions (a few
/// microseconds' worth), so the budget is kept to within that.
const PROGRESS_OPS: i32 = 1000;

/// How long a read waits for a lock on the blocking pool (WAL readers rarely wait: only
/// while a checkpoint resets the log).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Idle read connections kept open.
const MAX_IDLE: usize = 16;

/// One bound value. Kept as plain values so the same statement binds on either driver.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Text(String),
    Int(i64),
}

/// Builds `$N` placeholders while collecting the arguments, so dynamic filters never splice
/// a client value into SQL text.
#[derive(Debug, Clone, Default)]
pub(crate) struct Params {
    args: Vec<Arg>,
}

impl Params {
    pub(crate) fn new() -> Self {
        Self::default()
    }
    pub(crate) fn push_str(&mut self, v: impl Into<String>) -> String {
        self.args.push(Arg::Text(v.into()));
        format!("${}", self.args.len())
    }
    pub(crate) fn push_i64(&mut self, v: i64) -> String {
        self.args.push(Arg::Int(v));
        format!("${}", self.args.len())
    }
    /// The arguments for sqlx, in placeholder order.
    pub(crate) fn any(&self) -> AnyArguments<'static> {
        let mut a = AnyArguments::default();
        for v in &self.args {
            // Adding a String or an i64 to AnyArguments cannot fail.
            let _ = match v {
                Arg::Text(s) => a.add(s.clone()),
                Arg::Int(i) => a.add(*i),
            };
        }
        a
    }
}

/// Column access by name over a fetched row, whichever driver fetched it. A value of the
/// wrong type is corrupt data, never silently converted.
pub trait Cols {
    fn text(&self, col: &str) -> Result<Option<String>, StoreError>;
    fn int(&self, col: &str) -> Result<Option<i64>, StoreError>;
}

impl Cols for AnyRow {
    fn text(&self, col: &str) -> Result<Option<String>, StoreError> {
        Ok(self.try_get::<Option<String>, _>(col)?)
    }
    fn int(&self, col: &str) -> Result<Option<i64>, StoreError> {
        Ok(self.try_get::<Option<i64>, _>(col)?)
    }
}

/// A rusqlite row with its statement's column names.
struct LiteRow<'a, 'r> {
    row: &'a rusqlite::Row<'r>,
    names: &'a [String],
    /// Where the next lookup starts: decoders read columns mostly in SELECT order, so the
    /// name is nearly always found at the first comparison.
    next: Cell<usize>,
}

impl LiteRow<'_, '_> {
    fn value(&self, col: &str) -> Result<rusqlite::types::ValueRef<'_>, StoreError> {
        let n = self.names.len();
        let start = self.next.get();
        let i = (0..n)
            .map(|k| (start + k) % n)
            .find(|&i| self.names[i] == col)
            .ok_or_else(|| StoreError::Corrupt(format!("no column {col}")))?;
        self.next.set(i + 1);
        Ok(self.row.get_ref(i)?)
    }
}

impl Cols for LiteRow<'_, '_> {
    fn text(&self, col: &str) -> Result<Option<String>, StoreError> {
        use rusqlite::types::ValueRef;
        match self.value(col)? {
            ValueRef::Null => Ok(None),
            ValueRef::Text(t) => String::from_utf8(t.to_vec())
                .map(Some)
                .map_err(|_| StoreError::Corrupt(format!("{col} is not UTF-8"))),
            _ => Err(StoreError::Corrupt(format!("{col} is not text"))),
        }
    }
    fn int(&self, col: &str) -> Result<Option<i64>, StoreError> {
        use rusqlite::types::ValueRef;
        match self.value(col)? {
            ValueRef::Null => Ok(None),
            ValueRef::Integer(i) => Ok(Some(i)),
            _ => Err(StoreError::Corrupt(format!("{col} is not an integer"))),
        }
    }
}

/// Decodes one row; shared by both drivers and by the inline and blocking runs.
pub(crate) type Decode<T> = dyn Fn(&dyn Cols) -> Result<T, StoreError> + Send + Sync;

/// The SQLite read connections of one database file.
pub(crate) struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    /// Page cache per connection, KiB (see `DEFAULT_SQLITE_CACHE_KIB`).
    cache_kib: u32,
}

impl Readers {
    /// Readers for a `sqlite:` URL, or `None` for an in-memory database (which only its own
    /// connection can see, so reads stay on sqlx there).
    pub(crate) fn for_url(url: &str, cache_kib: u32) -> Option<Readers> {
        // The file sqlx opens, parsed the way sqlx parses it (percent-decoding included), so
        // both drivers always open the same database.
        if !url.starts_with("sqlite:") {
            return None;
        }
        let opts = <sqlx::sqlite::SqliteConnectOptions as std::str::FromStr>::from_str(url).ok()?;
        let path = opts.get_filename();
        let name = path.to_string_lossy();
        if name.is_empty() || name == ":memory:" || name.starts_with("file:") {
            // sqlx names an in-memory database `file:sqlx-in-memory-N`.
            return None;
        }
        if url
            .split_once('?')
            .is_some_and(|(_, q)| q.contains("mode=memory"))
        {
            return None;
        }
        Some(Readers {
            path: path.to_path_buf(),
            idle: Mutex::new(Vec::new()),
            cache_kib,
        })
    }

    /// An idle connection, or a new one that never waits for a lock.
    fn checkout(&self) -> Result<Connection, StoreError> {
        if let Some(c) = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop() {
            return Ok(c);
        }
        open(&self.path, self.cache_kib, Duration::ZERO)
    }

    fn checkin(&self, c: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(c);
        }
    }

    /// Drops the idle connections (the store is closing).
    pub(crate) fn close(&self) {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Runs a read: on the calling thread within the budget, else on the blocking pool.
    pub(crate) async fn fetch<T: Send + 'static>(
        &self,
        sql: &str,
        p: &Params,
        decode: std::sync::Arc<Decode<T>>,
    ) -> Result<Vec<T>, StoreError> {
        // A new connection reads the schema (for its cache size), which a writer's exclusive
        // lock keeps out: then it is opened on the pool too.
        let conn = match self.checkout() {
            Ok(conn) => {
                let deadline = Instant::now() + INLINE_BUDGET;
                conn.progress_handler(PROGRESS_OPS, Some(move || Instant::now() >= deadline));
                let first = run(&conn, sql, p, &*decode);
                conn.progress_handler(0, None::<fn() -> bool>);
                match first {
                    Err(e) if moves_to_pool(&e) => Some(conn),
                    done => {
                        self.checkin(conn);
                        return done;
                    }
                }
            }
            Err(e) if moves_to_pool(&e) => None,
            Err(e) => return Err(e),
        };
        let (sql, p) = (sql.to_string(), p.clone());
        let (path, cache_kib) = (self.path.clone(), self.cache_kib);
        let (conn, res) = tokio::task::spawn_blocking(move || {
            let conn = match conn {
                Some(c) => c,
                None => match open(&path, cache_kib, BUSY_TIMEOUT) {
                    Ok(c) => c,
                    Err(e) => return (None, Err(e)),
                },
            };
            let res = conn
                .busy_timeout(BUSY_TIMEOUT)
                .map_err(StoreError::from)
                .and_then(|_| run(&conn, &sql, &p, &*decode));
            let _ = conn.busy_timeout(Duration::ZERO);
            (Some(conn), res)
        })
        .await
        .map_err(|e| StoreError::Config(format!("read task failed: {e}")))?;
        if let Some(conn) = conn {
            self.checkin(conn);
        }
        res
    }

    /// Runs a statement on the calling thread and touches every value of every row without
    /// decoding: the database engine's own share of a read, for the benchmark.
    pub(crate) fn raw(&self, sql: &str, p: &Params) -> Result<usize, StoreError> {
        let conn = self.checkout()?;
        let res = (|| {
            let mut st = prepare(&conn, sql, p)?;
            let n = st.column_count();
            let mut rows = st.raw_query();
            let mut count = 0;
            while let Some(r) = rows.next()? {
                for i in 0..n {
                    std::hint::black_box(r.get_ref(i)?);
                }
                count += 1;
            }
            Ok(count)
        })();
        self.checkin(conn);
        res
    }
}

/// Opens a reader connection; opening waits up to `wait` for a lock, the connection it
/// returns never waits (rusqlite opens with a 5 s busy timeout; on the calling thread a read
/// must not wait for a lock at all: it moves to the blocking pool instead, see `fetch`).
fn open(path: &Path, cache_kib: u32, wait: Duration) -> Result<Connection, StoreError> {
    let c = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    c.busy_timeout(wait)?;
    // A reader never writes; query_only makes sure of it. A negative cache_size is in KiB;
    // setting it loads the schema, the step that can meet a lock.
    c.execute_batch(&format!(
        "PRAGMA query_only = ON; PRAGMA cache_size = -{cache_kib};"
    ))?;
    c.busy_timeout(Duration::ZERO)?;
    c.set_prepared_statement_cache_capacity(64);
    Ok(c)
}

/// An interrupted read (over budget) or one that met a lock: run it again off the runtime.
fn moves_to_pool(e: &StoreError) -> bool {
    matches!(e, StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, _))
        if matches!(f.code, ErrorCode::OperationInterrupted | ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked))
}

/// A cached statement with every `$N` bound (SQLite treats `$N` as a named parameter; a
/// name that occurs twice is one parameter).
fn prepare<'c>(
    conn: &'c Connection,
    sql: &str,
    p: &Params,
) -> Result<rusqlite::CachedStatement<'c>, StoreError> {
    let mut st = conn.prepare_cached(sql)?;
    for (i, a) in p.args.iter().enumerate() {
        let Some(ix) = st.parameter_index(&format!("${}", i + 1))? else {
            continue;
        };
        match a {
            Arg::Text(s) => st.raw_bind_parameter(ix, s)?,
            Arg::Int(v) => st.raw_bind_parameter(ix, v)?,
        }
    }
    Ok(st)
}

fn run<T>(
    conn: &Connection,
    sql: &str,
    p: &Params,
    decode: &Decode<T>,
) -> Result<Vec<T>, StoreError> {
    let mut st = prepare(conn, sql, p)?;
    let names: Vec<String> = st.column_names().into_iter().map(String::from).collect();
    let mut rows = st.raw_query();
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(decode(&LiteRow {
            row,
            names: &names,
            next: Cell::new(0),
        })?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;

    #[test]
    fn only_file_databases_get_readers() {
        let r = Readers::for_url("sqlite:///var/lib/sb/switchboard.db?mode=rwc", 512).unwrap();
        assert_eq!(r.path, PathBuf::from("/var/lib/sb/switchboard.db"));
        assert_eq!(
            Readers::for_url("sqlite:data.db", 512).unwrap().path,
            PathBuf::from("data.db")
        );
        assert!(Readers::for_url("sqlite::memory:", 512).is_none());
        assert!(Readers::for_url("sqlite://x.db?mode=memory", 512).is_none());
        assert!(Readers::for_url("postgres://localhost/x", 512).is_none());
        // A data directory with characters that mean something in a URL.
        let odd = std::path::Path::new("/tmp/a b%41?c#d");
        let url = crate::sqlite_url_for_dir(odd);
        assert_eq!(
            Readers::for_url(&url, 512).unwrap().path,
            odd.join("switchboard.db")
        );
    }

    async fn file_store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&crate::sqlite_url_for_dir(dir.path()), 4)
            .await
            .unwrap();
        assert!(
            store.readers.is_some(),
            "a file database reads through rusqlite"
        );
        (dir, store)
    }

    /// A short read runs on the calling thread; one that outlasts the inline budget is
    /// interrupted and finished on the blocking pool, with the full, correct result.
    #[tokio::test(flavor = "current_thread")]
    async fn long_reads_move_off_the_calling_thread() {
        let (_dir, store) = file_store().await;
        let here = std::thread::current().id();
        let mut p = Params::new();
        let k = p.push_i64(3);
        let short = store
            .fetch(&format!("SELECT {k} + 1 AS n"), &p, |r| {
                Ok((crate::row::i(r, "n")?, std::thread::current().id()))
            })
            .await
            .unwrap();
        assert_eq!(short, vec![(4, here)]);

        // Counting two million generated rows takes far longer than the budget.
        let mut p = Params::new();
        let upto = p.push_i64(2_000_000);
        let sql = format!(
            "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r WHERE x < {upto}) \
             SELECT COUNT(*) AS n, SUM(x) AS s FROM r"
        );
        let long = store
            .fetch(&sql, &p, |r| {
                Ok((
                    crate::row::i(r, "n")?,
                    crate::row::i(r, "s")?,
                    std::thread::current().id(),
                ))
            })
            .await
            .unwrap();
        assert_eq!(long.len(), 1);
        assert_eq!(
            (long[0].0, long[0].1),
            (2_000_000, 2_000_000 * 2_000_001 / 2)
        );
        assert_ne!(
            long[0].2, here,
            "the long read finished off the runtime thread"
        );

        // The connection came back and still reads inline, without the budget's handler.
        let again = store
            .fetch("SELECT 7 AS n", &Params::new(), |r| {
                Ok((crate::row::i(r, "n")?, std::thread::current().id()))
            })
            .await
            .unwrap();
        assert_eq!(again, vec![(7, here)]);
    }

    /// A read that meets a lock does not wait on the calling thread: it moves to the blocking
    /// pool, waits there, and returns once the lock is gone. (A rollback-journal database, where
    /// an exclusive transaction keeps readers out; under WAL that takes a checkpoint or
    /// recovery, which cannot be arranged on cue.)
    #[tokio::test(flavor = "current_thread")]
    async fn a_locked_database_is_waited_for_off_the_calling_thread() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain.db");
        let locker = Connection::open(&file).unwrap();
        locker
            .execute_batch("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1), (2);")
            .unwrap();
        let readers = std::sync::Arc::new(
            Readers::for_url(&format!("sqlite://{}", file.display()), 512).unwrap(),
        );
        let here = std::thread::current().id();
        locker
            .execute_batch("BEGIN EXCLUSIVE; INSERT INTO t VALUES (3);")
            .unwrap();
        let r = readers.clone();
        let read = tokio::spawn(async move {
            let decode: std::sync::Arc<Decode<(i64, std::thread::ThreadId)>> =
                std::sync::Arc::new(|r: &dyn Cols| {
                    Ok((crate::row::i(r, "n")?, std::thread::current().id()))
                });
            r.fetch("SELECT COUNT(*) AS n FROM t", &Params::new(), decode)
                .await
        });
        // Let the read make its inline attempt: it meets the lock and parks on the pool.
        tokio::task::yield_now().await;
        locker.execute_batch("COMMIT;").unwrap();
        let rows = read.await.unwrap().unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].0, 3, "the read saw the committed transaction");
        assert_ne!(
            rows[0].1, here,
            "the locked read waited on the blocking pool"
        );
        // Connections, new or back from the pool, never wait for a lock inline.
        let back = readers.checkout().unwrap();
        let fresh = readers.checkout().unwrap();
        for c in [&back, &fresh] {
            let ms: i64 = c
                .query_row("PRAGMA busy_timeout", [], |r| r.get(0))
                .unwrap();
            assert_eq!(ms, 0);
        }
    }

    /// A data directory whose name has URL syntax in it: sqlx (writes) and the readers open
    /// the same file, so a read sees the write.
    #[tokio::test]
    async fn odd_directory_names_are_one_database_for_both_drivers() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("a b%41?c#d");
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::connect(&crate::sqlite_url_for_dir(&dir), 2)
            .await
            .unwrap();
        assert!(dir.join("switchboard.db").exists());
        let (org, _) = store.create_org("odd").await.unwrap();
        let agent = store
            .create_agent(
                org.id,
                switchboard_domain::AgentPatch {
                    name: Some("Ada".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let read = store.get_agent(org.id, agent.id).await.unwrap();
        assert_eq!(read.name, "Ada");
        store.close().await;
    }

    /// Both drivers decode the same row the same way, and a value of the wrong type is an
    /// error rather than a conversion.
    #[tokio::test]
    async fn both_read_paths_agree_on_types() {
        let (_dir, store) = file_store().await;
        let sql = "SELECT 'abc' AS t, 42 AS i, NULL AS z";
        let decode = |r: &dyn Cols| {
            Ok((
                r.text("t")?,
                r.int("i")?,
                r.text("z")?,
                r.int("z")?,
                r.int("t").is_err(),
                r.text("i").is_err(),
                r.text("missing").is_err(),
            ))
        };
        let lite = store.fetch(sql, &Params::new(), decode).await.unwrap();
        let rows = sqlx::query(sql).fetch_all(store.pool()).await.unwrap();
        let any: Vec<_> = rows.iter().map(|r| decode(r).unwrap()).collect();
        let want = (
            Some("abc".to_string()),
            Some(42),
            None,
            None,
            true,
            true,
            true,
        );
        assert_eq!(lite, vec![want.clone()]);
        assert_eq!(any, vec![want]);
    }

    /// `--sqlite-cache-kib` reaches every kind of connection (the sqlx pool's and the
    /// readers'), the default applies without it, and a value out of range is refused.
    #[tokio::test]
    async fn every_connection_gets_the_configured_page_cache() {
        let dir = tempfile::tempdir().unwrap();
        let url = crate::sqlite_url_for_dir(dir.path());
        let cache_of = |store: Store| async move {
            let pooled: i64 = sqlx::query_scalar("PRAGMA cache_size")
                .fetch_one(store.pool())
                .await
                .unwrap();
            let decode: std::sync::Arc<Decode<i64>> =
                std::sync::Arc::new(|r: &dyn Cols| crate::row::i(r, "cache_size"));
            let read = store
                .readers
                .as_ref()
                .expect("a file database has readers")
                .fetch("PRAGMA cache_size", &Params::new(), decode)
                .await
                .unwrap();
            store.close().await;
            (pooled, read)
        };
        let store = Store::connect_with_cache(&url, 2, 300).await.unwrap();
        // A negative cache_size is in KiB.
        assert_eq!(cache_of(store).await, (-300, vec![-300]));
        let store = Store::connect(&url, 2).await.unwrap();
        let d = -i64::from(crate::DEFAULT_SQLITE_CACHE_KIB);
        assert_eq!(cache_of(store).await, (d, vec![d]));
        for bad in [0, 63, 1_048_577] {
            match Store::connect_with_cache(&url, 2, bad).await {
                Err(crate::StoreError::Config(m)) => {
                    assert!(m.contains("64 to 1048576"), "{bad}: {m}")
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
    }
}
