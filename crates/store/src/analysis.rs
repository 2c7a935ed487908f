//! Post-call analysis: the durable queue its worker drains, and the call's notes.
//!
//! A queue row is written in the same transaction as the call's final status
//! ([`crate::CallUpdate::analyze`]), so a crash between the two cannot lose an analysis. The
//! worker claims rows with a lease like the dispatch queue (`FOR UPDATE SKIP LOCKED` on
//! PostgreSQL, so replicas claim disjoint rows), and deletes a row only once the result, or
//! the final failure, is stored on the call. A worker that dies mid-analysis leaves a row whose
//! lease runs out and is claimed again after restart.

use crate::{Store, StoreError};
use serde::Serialize;
use sqlx::AnyConnection;
use switchboard_domain::{Call, CallDetails, CallId, OrgId, Timestamp};

/// A claimed analysis: the same shape as a claimed dispatch (one leased-queue rule).
pub type ClaimedAnalysis = crate::queue::ClaimedDispatch;

/// One note on a call (`POST /v1/call/{id}/notes`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Note {
    pub id: String,
    pub text: String,
    pub created_at: Timestamp,
}

/// Queues the analysis of a call that just ended, inside the caller's transaction.
pub(crate) async fn enqueue(conn: &mut AnyConnection, call: &Call) -> Result<(), StoreError> {
    let now = Timestamp::now().micros();
    sqlx::query(
        "INSERT INTO analysis_queue (call_id, org_id, enqueued_at, not_before, attempts) \
         VALUES ($1, $2, $3, $3, 0) ON CONFLICT (call_id) DO NOTHING",
    )
    .bind(call.id.to_string())
    .bind(call.org_id.to_string())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

impl Store {
    /// Claims up to `n` analyses that are due, for `worker`, for `lease_micros`.
    pub async fn claim_analyses(
        &self,
        worker: &str,
        n: u32,
        lease_micros: i64,
    ) -> Result<Vec<ClaimedAnalysis>, StoreError> {
        self.claim_leased(crate::queue::LeasedQueue::Analysis, worker, n, lease_micros)
            .await
    }

    /// Releases what `worker` had claimed in a previous life of this node (a restart does not
    /// wait for the leases to run out).
    pub async fn release_analysis_claims(&self, worker: &str) -> Result<(), StoreError> {
        let _write = self.write_gate().await;
        sqlx::query(
            "UPDATE analysis_queue SET claimed_by = NULL, claimed_until = NULL WHERE claimed_by = $1",
        )
        .bind(worker)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// An attempt failed: retry no earlier than `not_before`, keeping the reason.
    pub async fn retry_analysis(
        &self,
        call: CallId,
        not_before: Timestamp,
        error: &str,
    ) -> Result<(), StoreError> {
        let _write = self.write_gate().await;
        sqlx::query(
            "UPDATE analysis_queue SET claimed_by = NULL, claimed_until = NULL, not_before = $1, \
             last_error = $2 WHERE call_id = $3",
        )
        .bind(not_before.micros())
        .bind(error)
        .bind(call.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Stores the outcome of a call's analysis on the call (details, and `call_success` when
    /// judged), emits `call.analyzed` and removes the queue row, in one transaction.
    pub async fn record_call_analysis(
        &self,
        id: CallId,
        call_success: Option<bool>,
        change: impl FnOnce(&mut CallDetails),
    ) -> Result<(), StoreError> {
        self.modify_details_with(
            id,
            change,
            Some(crate::calls::DetailsExtra {
                event_type: "call.analyzed",
                call_success,
                dequeue_analysis: true,
            }),
        )
        .await
    }

    /// Analyses queued and not yet stored (for tests and the health of the worker).
    pub async fn pending_analyses(&self) -> Result<i64, StoreError> {
        let n: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM analysis_queue")
            .fetch_one(&self.pool)
            .await?;
        Ok(n.0)
    }

    /// Adds a note to a call of the organization (404 for another organization's call).
    pub async fn add_call_note(
        &self,
        org: OrgId,
        id: CallId,
        text: String,
    ) -> Result<Note, StoreError> {
        // Tenancy first: the details write below addresses the call by id alone.
        self.get_call(org, id, false).await?;
        let note = Note {
            id: uuid::Uuid::new_v4().to_string(),
            text,
            created_at: Timestamp::now(),
        };
        let value = serde_json::to_value(&note).unwrap_or_default();
        self.modify_call_details(id, move |d| {
            match d.notes.as_mut().and_then(serde_json::Value::as_array_mut) {
                Some(list) => list.push(value),
                None => d.notes = Some(serde_json::Value::Array(vec![value])),
            }
        })
        .await?;
        Ok(note)
    }
}
