//! Engine liveness, so several engines (replicas) can share one database: each live call
//! names the engine carrying it (`calls.engine_id`), each engine keeps a heartbeat, and the
//! calls of an engine that stopped beating are orphans that any engine may close.

use crate::{row, Store, StoreError};
use switchboard_domain::{CallId, Timestamp};

impl Store {
    /// Records that `engine` is alive now (first call: registers it).
    pub async fn engine_heartbeat(&self, engine: &str) -> Result<(), StoreError> {
        let _write = self.write_gate().await;
        let now = Timestamp::now().micros();
        sqlx::query(
            "INSERT INTO engines (id, started_at, heartbeat_at) VALUES ($1, $2, $2) \
             ON CONFLICT (id) DO UPDATE SET heartbeat_at = $2",
        )
        .bind(engine)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// When `engine` last beat, if it is registered.
    pub async fn engine_heartbeat_at(&self, engine: &str) -> Result<Option<Timestamp>, StoreError> {
        let r: Option<(i64,)> = sqlx::query_as("SELECT heartbeat_at FROM engines WHERE id = $1")
            .bind(engine)
            .fetch_optional(&self.pool)
            .await?;
        Ok(r.map(|(t,)| Timestamp(t)))
    }

    /// An engine that stops cleanly leaves: its calls are all ended by then.
    pub async fn engine_leave(&self, engine: &str) -> Result<(), StoreError> {
        let _write = self.write_gate().await;
        sqlx::query("DELETE FROM engines WHERE id = $1")
            .bind(engine)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Marks a live call as carried by `engine`.
    pub async fn set_call_engine(&self, call: CallId, engine: &str) -> Result<(), StoreError> {
        let _write = self.write_gate().await;
        sqlx::query("UPDATE calls SET engine_id = $1 WHERE id = $2")
            .bind(engine)
            .bind(call.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Live calls (dialing or in progress, not waiting in the dispatch queue) that no living
    /// engine carries: those of engines whose last heartbeat is older than `stale_before` or
    /// that left,
    /// those of `own_previous_life` when given (the engine restarting under the same id), and
    /// calls that name no engine (from before ownership was recorded) once they are older
    /// than `stale_before` or no other engine is alive at all.
    pub async fn orphaned_live_calls(
        &self,
        me: &str,
        own_previous_life: bool,
        stale_before: Timestamp,
    ) -> Result<Vec<CallId>, StoreError> {
        let rows = sqlx::query(
            "SELECT id FROM calls WHERE status IN ('dialing', 'in_progress') \
             AND NOT EXISTS (SELECT 1 FROM dispatch_queue q WHERE q.call_id = calls.id) \
             AND ( \
               ($2 = 1 AND engine_id = $1) \
               OR (engine_id <> $1 AND engine_id NOT IN \
                   (SELECT id FROM engines WHERE heartbeat_at >= $3)) \
               OR (engine_id IS NULL AND (created_at < $3 OR NOT EXISTS \
                   (SELECT 1 FROM engines WHERE heartbeat_at >= $3 AND id <> $1))) \
             )",
        )
        .bind(me)
        .bind(i64::from(own_previous_life))
        .bind(stale_before.micros())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| row::uuid(r, "id")).collect()
    }

    /// Releases the queue claims `engine` held in a previous life, so its queued calls are
    /// dialed at once rather than when the leases run out. Other engines' claims are theirs.
    pub async fn release_engine_claims(&self, engine: &str) -> Result<(), StoreError> {
        let _write = self.write_gate().await;
        sqlx::query(
            "UPDATE dispatch_queue SET claimed_by = NULL, claimed_until = NULL WHERE claimed_by = $1",
        )
        .bind(engine)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
