//! AgentVoice dialect (004): `/api/calls` with x-api-key + x-organization-id.

use crate::AppState;
use axum::Router;

pub fn routes() -> Router<AppState> {
    Router::new()
}
