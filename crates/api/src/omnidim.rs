//! OmniDimension dialect (001): `/api/v1/...` with a Bearer key.

use crate::AppState;
use axum::Router;

pub fn routes() -> Router<AppState> {
    Router::new()
}
