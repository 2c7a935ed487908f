//! The call's database writes, in order and off the call's loop.
//!
//! Why a writer: a call keeps its audio, its recording and its conversation while the
//! database is away (a PostgreSQL restart or failover), so its writes must neither block the
//! loop that feeds the agent and answers SIP nor be lost. Each write is queued here, applied
//! in the order the call made it (a status never overtakes the one before it, which
//! `CallStatus::can_become` would then refuse), and retried with backoff for as long as the
//! database is *unavailable*; any other error is final and logged, as before. The call task
//! waits for the queue to drain only at its very end, after the final status was queued.

use std::sync::Arc;
use std::time::Duration;
use switchboard_domain::{CallDetails, CallId};
use switchboard_store::{CallUpdate, Store, StoreError};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// A change to the call's details (transcript, metrics, report), re-applied on each attempt.
pub(crate) type DetailsChange = Arc<dyn Fn(&mut CallDetails) + Send + Sync>;

/// One queued write.
pub(crate) enum Write {
    Update(Box<CallUpdate>),
    Event(serde_json::Value),
    Details(&'static str, DetailsChange),
    /// `call.ringing` (the store checks the call is still dialing).
    Ringing,
}

impl Write {
    fn what(&self) -> &'static str {
        match self {
            Write::Update(_) => "call update",
            Write::Event(_) => "call event",
            Write::Details(what, _) => what,
            Write::Ringing => "call.ringing",
        }
    }

    async fn apply(&self, store: &Store, id: CallId) -> Result<(), StoreError> {
        match self {
            Write::Update(u) => store.update_call(id, (**u).clone()).await.map(drop),
            Write::Event(ev) => store.append_call_event(id, ev.clone()).await,
            Write::Details(_, change) => {
                let change = change.clone();
                store.modify_call_details(id, move |d| change(d)).await
            }
            Write::Ringing => store.call_ringing(id).await,
        }
    }
}

pub(crate) struct CallWriter {
    /// `None` once finished.
    tx: Option<mpsc::UnboundedSender<Write>>,
    task: Option<JoinHandle<()>>,
}

impl CallWriter {
    pub(crate) fn start(store: Store, id: CallId) -> CallWriter {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(store, id, rx));
        CallWriter {
            tx: Some(tx),
            task: Some(task),
        }
    }

    /// Queues a write; never waits.
    pub(crate) fn send(&self, w: Write) {
        match &self.tx {
            // The receiver lives until the queue is drained: a send cannot fail.
            Some(tx) => drop(tx.send(w)),
            None => tracing::error!(
                what = w.what(),
                "call write after the call's last one; dropped"
            ),
        }
    }

    /// Waits until every queued write is applied (or has failed for good). Writes sent after
    /// this are a bug and are logged.
    pub(crate) async fn finish(&mut self) {
        self.tx = None;
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

async fn run(store: Store, id: CallId, mut rx: mpsc::UnboundedReceiver<Write>) {
    while let Some(w) = rx.recv().await {
        if let Err(e) = retry_unavailable(|| w.apply(&store, id)).await {
            tracing::warn!(call_id = %id, error = %e, what = w.what(), "call write refused");
        }
    }
}

/// The first wait after a failed attempt; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Runs `op` until it succeeds or fails with an error other than "the database is
/// unavailable". There is no deadline: giving up would leave the call non-final in the
/// database while this process lives; if the process dies instead, the next start closes the
/// call (`recovery.rs`).
pub(crate) async fn retry_unavailable<F, Fut, T>(mut op: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut backoff = FIRST_BACKOFF;
    let mut failed_since: Option<std::time::Instant> = None;
    loop {
        match op().await {
            Ok(v) => {
                if let Some(t) = failed_since {
                    tracing::info!(
                        waited_ms = t.elapsed().as_millis() as u64,
                        "database write went through after an outage"
                    );
                }
                return Ok(v);
            }
            Err(e) if e.is_unavailable() => {
                if failed_since.is_none() {
                    tracing::warn!(error = %e, "database unavailable; the write is kept and retried");
                    failed_since = Some(std::time::Instant::now());
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            Err(e) => return Err(e),
        }
    }
}
