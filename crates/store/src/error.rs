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
