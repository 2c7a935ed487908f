//! The native REST resources under /v1: agents, phone numbers, SIP trunks, contacts,
//! campaigns. Each module states only what is its own (see `crate::resource` for the shape
//! they share): the fields a body may have and their checks, what a create requires, how it
//! is shown, side effects, and its OpenAPI schema.

pub mod agents;
pub mod campaigns;
pub mod contacts;
pub mod numbers;
pub mod trunks;

use crate::AppState;
use axum::Router;

pub use agents::agent_patch;

pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(agents::routes())
        .merge(agents::flyflow_routes())
        .merge(numbers::routes())
        .merge(trunks::routes())
        .merge(contacts::routes())
        .merge(campaigns::routes())
}
