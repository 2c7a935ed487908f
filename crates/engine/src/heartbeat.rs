//! This engine's heartbeat in the `engines` table, and the sweep that closes the live calls
//! of engines that stopped beating.

use crate::config::EngineConfig;
use crate::engine::Inner;
use crate::recovery;
use std::sync::Arc;
use switchboard_domain::Timestamp;

/// Heartbeats older than this mark an engine as gone.
pub(crate) fn stale_threshold(cfg: &EngineConfig) -> Timestamp {
    let micros = i64::try_from(cfg.engine_stale_after.as_micros()).unwrap_or(i64::MAX);
    Timestamp(Timestamp::now().micros().saturating_sub(micros))
}

/// Keeps this engine's heartbeat fresh and closes the live calls of engines that stopped
/// beating (a replica that crashed and did not come back), so no call stays `dialing` or
/// `in_progress` forever.
pub(crate) async fn heartbeat(inner: Arc<Inner>) {
    let mut stop = inner.stopping.subscribe();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(inner.cfg.heartbeat_interval) => {}
            _ = stop.changed() => return,
        }
        if let Err(e) = inner.store.engine_heartbeat(&inner.engine_id).await {
            tracing::error!(error = %e, "engine heartbeat failed");
            continue;
        }
        let stale_before = stale_threshold(&inner.cfg);
        match inner
            .store
            .orphaned_live_calls(&inner.engine_id, false, stale_before)
            .await
        {
            Ok(orphans) if !orphans.is_empty() => {
                if let Err(e) = recovery::close_interrupted_calls(
                    &inner.store,
                    &inner.cfg.recordings_dir,
                    orphans,
                )
                .await
                {
                    tracing::error!(error = %e, "closing orphaned calls failed");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "looking for orphaned calls failed"),
        }
    }
}
