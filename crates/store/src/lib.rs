//! The only crate with SQL. One schema and one set of queries serve SQLite (embedded, WAL)
//! and PostgreSQL, through sqlx's `Any` driver: placeholders are `$N` (both engines accept
//! them), times are BIGINT microseconds, booleans BIGINT 0/1, JSON is TEXT.

mod analysis;
mod bench;
mod calls;
mod commands;
mod cursor;
mod engines;
mod entities;
mod entity;
mod error;
mod events;
mod migrate;
mod orgs;
mod queue;
mod read;
pub mod recordings;
mod row;
// Issue 12: dashboard users, sessions, named API keys.
mod users;
mod webhooks;

pub use analysis::{ClaimedAnalysis, Note};
pub use bench::{BenchOrg, BenchSeedConfig};
pub use calls::{CallPage, CallUpdate, CreateCallOutcome};
pub use commands::{CallCommand, CallCommandKind, CommandSignals, CommandState, Reached};
pub use cursor::{decode_cursor, decode_seq_cursor, encode_cursor, encode_seq_cursor};
pub use entity::{Entity, ResourcePage, Val};
pub use error::StoreError;
pub use events::{
    event_id, parse_event_id, subscribes, CallRenderer, Event, EventPage, EventQuery, NewEvent,
    EVENT_TYPES,
};
pub use orgs::hash_key;
pub use queue::ClaimedDispatch;
pub use read::Cols;
pub use recordings::{Recordings, StoreOptions};
pub use webhooks::*;
// Issue 12 (dashboard).
pub use users::{ApiKeyInfo, DayStatusCount, SessionUser, User};

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A handle to the database. Cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// SQLite allows one writer at a time, and a connection that finds the lock taken sleeps
    /// in SQLite's busy handler (1, 2, 5 ... 100 ms steps) instead of queueing. Every write of
    /// this process (calls, queue, engines, resources, organizations) takes this gate first, so
    /// writes queue in-process, in order, and never sleep on each other. `None` on PostgreSQL, whose row locks need no help.
    write_gate: Option<Arc<tokio::sync::Mutex<()>>>,
    /// SQLite's read path (see `read`); `None` on PostgreSQL and in-memory SQLite.
    readers: Option<Arc<read::Readers>>,
    /// Event outbox state shared by the clones (see `events`).
    hub: Arc<events::Hub>,
    /// PostgreSQL only: the URL again, for the LISTEN connection of call commands (see
    /// `commands`), which cannot be a pooled `Any` connection.
    pg_url: Option<Arc<str>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .finish()
    }
}

/// The SQLite URL for a data directory: `<dir>/switchboard.db`, created if missing.
pub fn sqlite_url_for_dir(dir: &Path) -> String {
    // sqlx percent-decodes the path; '%', '?' and '#' in a directory name are escaped so
    // they stay part of it.
    let path = dir.join("switchboard.db").display().to_string();
    let path = path
        .replace('%', "%25")
        .replace('?', "%3F")
        .replace('#', "%23");
    format!("sqlite://{path}?mode=rwc")
}

/// See `acquire_timeout` in [`Store::connect`].
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// SQLite's page cache per connection, in KiB, unless the server is told otherwise
/// (`--sqlite-cache-kib`): SQLite's own default. It is a bound, not a reservation: pages are
/// allocated as they are read, and in WAL mode a connection drops its whole cache when another
/// connection has written since its last read (the wal-index header changed), which on this
/// server happens several times per call second. So the caches stay small: a heap profile of
/// the soak (BENCHMARKS.md "Reliability") found ~5 MiB held by SQLite in all, pool and readers
/// together, with the database at 12 MiB. The setting bounds the worst case (up to `--db-pool`
/// pool connections plus 16 idle readers, each up to this much) for deployments that need it.
pub const DEFAULT_SQLITE_CACHE_KIB: u32 = 2000;

/// The accepted range of `--sqlite-cache-kib`: SQLite needs at least a few pages (10 is its
/// floor), and beyond 1 GiB per connection a setting is a typo.
pub const SQLITE_CACHE_KIB_RANGE: std::ops::RangeInclusive<u32> = 64..=1_048_576;

impl Store {
    /// Connects and brings the schema up to date. Safe to call from several processes at once
    /// (the server and `org create`): migrations run under a lock on each backend.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Store, StoreError> {
        Self::connect_with_cache(url, max_connections, DEFAULT_SQLITE_CACHE_KIB).await
    }

    /// [`Store::connect`] with SQLite's page cache per connection set to `sqlite_cache_kib`
    /// KiB (see [`DEFAULT_SQLITE_CACHE_KIB`]); ignored on PostgreSQL.
    pub async fn connect_with_cache(
        url: &str,
        max_connections: u32,
        sqlite_cache_kib: u32,
    ) -> Result<Store, StoreError> {
        if !SQLITE_CACHE_KIB_RANGE.contains(&sqlite_cache_kib) {
            return Err(StoreError::Config(format!(
                "the SQLite cache must be {} to {} KiB per connection, not {sqlite_cache_kib}",
                SQLITE_CACHE_KIB_RANGE.start(),
                SQLITE_CACHE_KIB_RANGE.end()
            )));
        }
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            return Err(StoreError::Config(
                "database URL must start with sqlite: or postgres://".into(),
            ));
        };
        let opts = AnyConnectOptions::from_str(url)
            .map_err(|e| StoreError::Config(format!("invalid database URL: {e}")))?;
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            // How long a request waits for a connection. When the database is down, every
            // acquire waits this long (sqlx keeps retrying a refused connect until then), so it
            // bounds how long an API request hangs before its 503. The engine's dispatch loop
            // tries again on its next tick either way. Still long enough for a saturated pool
            // to hand over a connection on a loaded machine.
            .acquire_timeout(ACQUIRE_TIMEOUT)
            // A pooled SQLite connection is a file handle in this process: it cannot go stale,
            // so the ping before each use is a wasted round trip to its worker thread. A
            // PostgreSQL connection can (server restart), so it is still checked.
            .test_before_acquire(backend == Backend::Postgres)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets readers run beside the one writer; busy_timeout makes a
                        // second process (org create) wait for the lock instead of failing.
                        // A negative cache_size is in KiB (sqlite.org/pragma.html#pragma_cache_size).
                        conn.execute(
                            format!(
                                "PRAGMA journal_mode=WAL; PRAGMA busy_timeout=10000; \
                                 PRAGMA foreign_keys=ON; PRAGMA synchronous=NORMAL; \
                                 PRAGMA cache_size=-{sqlite_cache_kib};"
                            )
                            .as_str(),
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(opts)
            .await?;
        let write_gate =
            (backend == Backend::Sqlite).then(|| Arc::new(tokio::sync::Mutex::new(())));
        let readers = match backend {
            Backend::Sqlite => read::Readers::for_url(url, sqlite_cache_kib).map(Arc::new),
            Backend::Postgres => None,
        };
        let store = Store {
            pool,
            backend,
            write_gate,
            readers,
            hub: Arc::default(),
            pg_url: (backend == Backend::Postgres).then(|| Arc::from(url)),
        };
        migrate::run(&store).await?;
        Ok(store)
    }

    /// Taken around every write (see `write_gate`); held until dropped.
    pub(crate) async fn write_gate(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match &self.write_gate {
            Some(g) => Some(g.lock().await),
            None => None,
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub async fn close(&self) {
        if let Some(r) = &self.readers {
            r.close();
        }
        self.pool.close().await;
    }

    /// Runs a read-only statement and decodes every row (see `read` for the path it takes).
    pub(crate) async fn fetch<T: Send + 'static>(
        &self,
        sql: &str,
        p: &read::Params,
        decode: impl Fn(&dyn read::Cols) -> Result<T, StoreError> + Send + Sync + 'static,
    ) -> Result<Vec<T>, StoreError> {
        match &self.readers {
            Some(r) => r.fetch(sql, p, Arc::new(decode)).await,
            None => {
                let rows = sqlx::query_with(sql, p.any()).fetch_all(&self.pool).await?;
                rows.iter().map(|r| decode(r)).collect()
            }
        }
    }

    /// [`Store::fetch`] for at most one row; no row is `NotFound`.
    pub(crate) async fn fetch_one<T: Send + 'static>(
        &self,
        sql: &str,
        p: &read::Params,
        decode: impl Fn(&dyn read::Cols) -> Result<T, StoreError> + Send + Sync + 'static,
    ) -> Result<T, StoreError> {
        self.fetch(sql, p, decode)
            .await?
            .into_iter()
            .next()
            .ok_or(StoreError::NotFound)
    }

    /// Liveness of the database, for /healthz.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}
