//! Recovery: calls that were live when their engine died (this node's previous life at
//! start-up, or another replica whose heartbeat went stale) are closed as `failed` with
//! end_reason `server_restarted`, keeping whatever recording they had written (the
//! recorder flushes as it goes, so the partial MP3 plays).

use sha2::{Digest, Sha256};
use std::path::Path;
use switchboard_domain::{CallId, CallStatus, RecordingMeta, Timestamp};
use switchboard_store::{CallUpdate, Store, StoreError};

pub(crate) async fn close_interrupted_calls(
    store: &Store,
    recordings_dir: &Path,
    orphans: Vec<CallId>,
) -> Result<(), StoreError> {
    for id in orphans {
        let call = store.get_call_any_org(id).await?;
        let now = Timestamp::now();
        let rel = format!("{}/{}", call.org_id, call.id);
        let mono = recordings_dir.join(format!("{rel}.mp3"));
        let recording = match tokio::fs::read(&mono).await {
            Ok(bytes) if !bytes.is_empty() => Some(RecordingMeta {
                key: format!("{rel}.mp3"),
                stereo_key: recordings_dir
                    .join(format!("{rel}.stereo.mp3"))
                    .exists()
                    .then(|| format!("{rel}.stereo.mp3")),
                duration_ms: None,
                size_bytes: Some(bytes.len() as i64),
                sha256: Some(hex::encode(Sha256::digest(&bytes))),
                incomplete_reason: Some(
                    "the server stopped during the call; the recording holds the call up to \
                     its last write"
                        .into(),
                ),
            }),
            _ => None,
        };
        let u = CallUpdate {
            status: Some(CallStatus::Failed),
            ended_at: Some(now),
            duration_seconds: call
                .started_at
                .map(|s| (now.micros() - s.micros()) / 1_000_000),
            end_reason: Some("server_restarted".into()),
            recording,
            ..Default::default()
        };
        store.update_call(id, u).await?;
        tracing::warn!(call_id = %id, "call was live when the server stopped; closed as server_restarted");
    }
    Ok(())
}
