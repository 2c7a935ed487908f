/// Errors from the store. `NotFound` and `Conflict` are the client's business; `Db` is ours
/// and must never reach a client in detail.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    #[error("idempotency key reused with a different request body")]
    IdempotencyMismatch,
    #[error("configuration: {0}")]
    Config(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    /// From the SQLite read path (see `read`).
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error("object store: {0}")]
    Object(#[from] object_store::Error),
    /// A local recording file (the spool) could not be read, written or removed.
    #[error("recording file: {0}")]
    File(String),
}

impl StoreError {
    /// Maps a unique-key violation to a client-facing conflict with the given message.
    pub(crate) fn unique_as(self, message: impl Into<String>) -> StoreError {
        match &self {
            StoreError::Db(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                StoreError::Conflict(message.into())
            }
            _ => self,
        }
    }
}

impl StoreError {
    /// True when the database could not be reached at all (connection refused or reset, the
    /// pool timed out waiting for a connection, the server shutting down, SQLite unable to
    /// open its file), as opposed to a bad query or bad data. The caller may retry the same
    /// request once the database is back; the API answers 503 with Retry-After.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Db(e) => sqlx_unavailable(e),
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, _)) => {
                f.code == rusqlite::ErrorCode::CannotOpen
            }
            _ => false,
        }
    }
}

fn sqlx_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => match db.code() {
            // PostgreSQL SQLSTATE class 08 (connection exception) and 57P01..57P03
            // (admin/crash shutdown, cannot connect now): the server went away or is starting.
            // SQLite result code 14 (SQLITE_CANTOPEN): "unable to open database file".
            Some(code) => {
                code.starts_with("08")
                    || matches!(code.as_ref(), "57P01" | "57P02" | "57P03" | "14")
            }
            None => false,
        },
        _ => false,
    }
}
