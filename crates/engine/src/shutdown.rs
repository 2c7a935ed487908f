//! Graceful stop.

use crate::engine::{lock, Engine};
use crate::live::LocalEnd;

impl Engine {
    /// Graceful stop: take no new calls, let live calls end for the grace period, then hang
    /// up the rest and wait until each is written to the store.
    pub async fn shutdown(&self) {
        self.inner.stopping.send_replace(true);
        let deadline = tokio::time::Instant::now() + self.inner.cfg.shutdown_grace;
        loop {
            let mut set = std::mem::take(&mut *lock(&self.inner.tasks));
            if set.is_empty() {
                break;
            }
            tokio::select! {
                _ = async { while set.join_next().await.is_some() {} } => {}
                _ = tokio::time::sleep_until(deadline) => {
                    for l in lock(&self.inner.live).values() {
                        let _ = l.hangup.send(LocalEnd::Shutdown);
                    }
                    while set.join_next().await.is_some() {}
                }
            }
        }
        // After any sync in progress, so nothing registers behind our back.
        let _no_more_syncs = self.inner.reg_sync.lock().await;
        let regs = std::mem::take(&mut *lock(&self.inner.registrations));
        for (_, r) in regs.into_values() {
            // Unregisters (Expires: 0) before the endpoint stops.
            r.stop().await;
        }
        self.inner.sip.shutdown();
        self.inner.finished.send_replace(true);
        // Every call has ended: nothing of ours is left for the others to close.
        if let Err(e) = self.inner.store.engine_leave(&self.inner.engine_id).await {
            tracing::warn!(error = %e, "could not remove this engine from the engines table");
        }
    }
}
