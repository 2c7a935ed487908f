//! The durable dispatch queue. An accepted outbound call has a row here until the engine has
//! put its INVITE on the wire. Claims are leases: a claimer that dies leaves a row whose lease
//! runs out and is claimed again, so an accepted call is always dialed.

use crate::{row, Backend, Store, StoreError};
use switchboard_domain::{CallId, OrgId, Timestamp};

/// A claimed entry of a leased queue (dispatches, post-call analyses).
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedDispatch {
    pub call_id: CallId,
    pub org_id: OrgId,
    /// Including this claim.
    pub attempts: i64,
}

/// The queues that share one shape (`call_id`, `org_id`, `not_before`, `attempts`,
/// `claimed_by`, `claimed_until`) and one claiming rule.
#[derive(Debug, Clone, Copy)]
pub(crate) enum LeasedQueue {
    Dispatch,
    Analysis,
}

impl LeasedQueue {
    fn table(self) -> &'static str {
        match self {
            LeasedQueue::Dispatch => "dispatch_queue",
            LeasedQueue::Analysis => "analysis_queue",
        }
    }
}

impl Store {
    /// Claims up to `n` ready entries of `queue` for `worker` for `lease_micros`.
    pub(crate) async fn claim_leased(
        &self,
        queue: LeasedQueue,
        worker: &str,
        n: u32,
        lease_micros: i64,
    ) -> Result<Vec<ClaimedDispatch>, StoreError> {
        let now = Timestamp::now().micros();
        // PostgreSQL: SKIP LOCKED lets several replicas claim disjoint rows without waiting on
        // each other. SQLite has one writer at a time, so the plain subquery is already safe.
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let table = queue.table();
        let sql = format!(
            "UPDATE {table} SET claimed_by = $1, claimed_until = $2, attempts = attempts + 1 \
             WHERE seq IN (SELECT seq FROM {table} WHERE not_before <= $3 \
             AND (claimed_until IS NULL OR claimed_until < $3) ORDER BY seq LIMIT $4{lock}) \
             RETURNING call_id, org_id, attempts"
        );
        let _write = self.write_gate().await;
        let rows = sqlx::query(&sql)
            .bind(worker)
            .bind(now + lease_micros)
            .bind(now)
            .bind(n as i64)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(ClaimedDispatch {
                    call_id: row::uuid(r, "call_id")?,
                    org_id: row::uuid(r, "org_id")?,
                    attempts: row::i(r, "attempts")?,
                })
            })
            .collect()
    }

    /// Claims up to `n` ready entries for `worker` for `lease_micros`.
    pub async fn claim_dispatches(
        &self,
        worker: &str,
        n: u32,
        lease_micros: i64,
    ) -> Result<Vec<ClaimedDispatch>, StoreError> {
        let claimed = self
            .claim_leased(LeasedQueue::Dispatch, worker, n, lease_micros)
            .await?;
        if !claimed.is_empty() {
            // The claiming engine carries these calls from now on (see engines.rs).
            let _write = self.write_gate().await;
            sqlx::query(
                "UPDATE calls SET engine_id = $1 WHERE id IN \
                 (SELECT call_id FROM dispatch_queue WHERE claimed_by = $1)",
            )
            .bind(worker)
            .execute(&self.pool)
            .await?;
        }
        Ok(claimed)
    }

    /// Removes an entry once its INVITE is on the wire (or the call was finalized).
    pub async fn complete_dispatch(&self, call: CallId) -> Result<(), StoreError> {
        let _write = self.write_gate().await;
        sqlx::query("DELETE FROM dispatch_queue WHERE call_id = $1")
            .bind(call.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Puts a claimed entry back, to be retried no earlier than `not_before` (e.g. the
    /// organization is at its concurrent-call cap).
    pub async fn release_dispatch(
        &self,
        call: CallId,
        not_before: Timestamp,
    ) -> Result<(), StoreError> {
        let _write = self.write_gate().await;
        sqlx::query("UPDATE dispatch_queue SET claimed_by = NULL, claimed_until = NULL, not_before = $1 WHERE call_id = $2")
            .bind(not_before.micros())
            .bind(call.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn queued_count(&self) -> Result<i64, StoreError> {
        let n: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM dispatch_queue")
            .fetch_one(&self.pool)
            .await?;
        Ok(n.0)
    }
}
