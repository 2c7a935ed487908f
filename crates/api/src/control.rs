//! Live-call commands (hang-up, transfer) as the API answers them, wherever the call is
//! carried: on this server, or on the replica that carries it (see
//! `engine/src/commands.rs`). A replica that is gone or does not answer is a 503 (with
//! Retry-After), never a silent success.

use crate::error::{ApiError, ApiResult};
use crate::AppState;
use axum::http::StatusCode;
use std::time::Duration;
use switchboard_domain::CallId;
use switchboard_store::Reached;

/// Hangs `call` up wherever it is live; with `wait_end`, waits that long at most for it to
/// end. `Ok(NotLive)` when no engine carries it (or the server runs without telephony).
pub(crate) async fn hangup(
    state: &AppState,
    call: CallId,
    wait_end: Option<Duration>,
) -> ApiResult<Reached> {
    let Some(c) = &state.control else {
        return Ok(Reached::NotLive);
    };
    answer(c.hangup_anywhere(call, wait_end).await?)
}

/// Blind transfer of `call` wherever it is live.
pub(crate) async fn transfer(state: &AppState, call: CallId, to: &str) -> ApiResult<Reached> {
    let Some(c) = &state.control else {
        return Ok(Reached::NotLive);
    };
    answer(c.transfer_anywhere(call, to.to_string()).await?)
}

/// The engine's name stays in the log (it names hosts); the client learns what happened and
/// when to retry.
fn answer(r: Reached) -> ApiResult<Reached> {
    match r {
        Reached::OwnerGone(_) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server carrying this call has stopped; the call will be closed as failed \
             (server_restarted) once its heartbeat is stale (--engine-stale-after); retry then",
        )),
        Reached::NoAnswer(_) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server carrying this call did not answer in time; retry shortly",
        )),
        r => Ok(r),
    }
}
