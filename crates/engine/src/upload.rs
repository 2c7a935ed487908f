//! Moving finished recordings from the local spool to a remote store (S3).
//!
//! The recorder writes `<spool>/<org>/<call>.mp3` and `.stereo.mp3` as the call runs. When
//! the call has ended (or was closed by start-up recovery) the files are uploaded to the keys
//! `<org>/<call>.mp3` / `.stereo.mp3` and then removed from the spool. A failed upload is
//! logged and retried with exponential backoff; the spool file stays until an upload
//! succeeds, and until then the API serves the spool file (see `Recordings`), so the call's
//! recording metadata always points at something that can be served. Whatever is still in
//! the spool at the next start is uploaded then. With the local backend all of this is a
//! no-op: the spool is the store.

use std::time::Duration;
use switchboard_domain::CallId;
use switchboard_store::{Recordings, Store, StoreError};

/// First retry delay; doubles up to [`MAX_DELAY`].
const FIRST_DELAY: Duration = Duration::from_secs(1);
const MAX_DELAY: Duration = Duration::from_secs(300);

/// Uploads the spooled recording of an ended call in the background (retrying until it
/// succeeds or the call is deleted). `rel` is `<org>/<call>`.
pub(crate) fn spawn_upload(recordings: &Recordings, store: &Store, call: CallId, rel: String) {
    if recordings.spool_dir().is_none() {
        return;
    }
    let (recordings, store) = (recordings.clone(), store.clone());
    tokio::spawn(async move { upload_with_retry(&recordings, &store, call, &rel).await });
}

/// At start: uploads what earlier runs left in the spool, for calls that have ended (start-up
/// recovery has closed the interrupted ones before this runs).
pub(crate) fn spawn_sweep(recordings: &Recordings, store: &Store) {
    if recordings.spool_dir().is_none() {
        return;
    }
    let (recordings, store) = (recordings.clone(), store.clone());
    tokio::spawn(async move {
        let rels = match recordings.spooled().await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "cannot list spooled recordings");
                return;
            }
        };
        for rel in rels {
            let Some(id) = rel
                .rsplit('/')
                .next()
                .and_then(|c| c.parse::<CallId>().ok())
            else {
                tracing::warn!(file = %rel, "spool holds a file that is not a call's recording; left there");
                continue;
            };
            match store.get_call_any_org(id).await {
                Ok(call) if call.status.is_final() => {
                    tracing::info!(call_id = %id, "uploading a recording left in the spool");
                    let (r, s) = (recordings.clone(), store.clone());
                    tokio::spawn(async move { upload_with_retry(&r, &s, id, &rel).await });
                }
                Ok(_) => {}
                Err(StoreError::NotFound) => {
                    tracing::warn!(call_id = %id, "spooled recording of an unknown call; left in the spool");
                }
                Err(e) => {
                    tracing::error!(call_id = %id, error = %e, "spool sweep: cannot load call")
                }
            }
        }
    });
}

async fn upload_with_retry(recordings: &Recordings, store: &Store, call: CallId, rel: &str) {
    let mut delay = FIRST_DELAY;
    let mut attempt = 1u32;
    loop {
        if deleted(store, call).await {
            // DELETE /v1/call erased the call (while it was live, or while this upload was
            // waiting to be retried): its recording goes too, spool file and object alike.
            erase(recordings, rel).await;
            return;
        }
        match recordings.upload_spooled(rel).await {
            Ok(keys) => {
                if deleted(store, call).await {
                    // Deleted while the upload was in flight: the objects just written go.
                    erase(recordings, rel).await;
                } else if !keys.is_empty() {
                    tracing::info!(call_id = %call, store = %recordings, attempt, "recording uploaded");
                    // Now servable from the remote store: recording.ready.
                    if let Err(e) = store.recording_stored(call).await {
                        tracing::warn!(call_id = %call, error = %e, "could not record recording.ready");
                    }
                }
                return;
            }
            Err(e) => {
                tracing::warn!(call_id = %call, store = %recordings, attempt, retry_in_s = delay.as_secs(), error = %e,
                    "recording upload failed; the spool file is kept and the upload retried");
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MAX_DELAY);
        attempt += 1;
    }
}

async fn deleted(store: &Store, call: CallId) -> bool {
    matches!(
        store.get_call_any_org(call).await,
        Err(StoreError::NotFound)
    )
}

async fn erase(recordings: &Recordings, rel: &str) {
    for key in [format!("{rel}.mp3"), format!("{rel}.stereo.mp3")] {
        if let Err(e) = recordings.delete(&key).await {
            tracing::warn!(key = %key, error = %e, "could not erase the recording of a deleted call");
        }
    }
}
