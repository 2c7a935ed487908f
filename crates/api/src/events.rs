//! `GET /v1/events`: the organization's event log, in order, keyset-paged by event id. A
//! client keeps the last id it processed and passes it as `after` to catch up on everything
//! it missed (events are kept for `--event-retention-days`).

use crate::auth::Org;
use crate::error::{ApiError, ApiResult};
use crate::extract::QueryMap;
use crate::AppState;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use switchboard_domain::{parse_limit, CallId};
use switchboard_store::{parse_event_id, EventQuery, EVENT_TYPES};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/events", get(list_events))
        .route("/v1/events/{id}", get(get_event))
}

/// Parses an event id (`evt_…`) given as `param`.
pub(crate) fn event_seq(param: &str, v: &str) -> ApiResult<i64> {
    parse_event_id(v).ok_or_else(|| {
        ApiError::bad_request(format!(
            "{param} must be an event id (evt_ followed by 16 hex digits) as returned by GET /v1/events"
        ))
    })
}

/// `type=a,b`: each must be a known event type.
pub(crate) fn event_types(v: &str, allow_star: bool) -> ApiResult<Vec<String>> {
    let mut out = Vec::new();
    for t in v.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        if !(EVENT_TYPES.contains(&t) || (allow_star && t == "*")) {
            return Err(ApiError::bad_request(format!(
                "unknown event type {t:?}; event types: {}{}",
                EVENT_TYPES.join(", "),
                if allow_star { ", or * for all" } else { "" }
            )));
        }
        out.push(t.to_string());
    }
    Ok(out)
}

async fn list_events(State(s): State<AppState>, Org(org): Org, q: QueryMap) -> ApiResult<Response> {
    let after = q.get("after").map(|v| event_seq("after", v)).transpose()?;
    let types = q
        .get("type")
        .map(|v| event_types(v, false))
        .transpose()?
        .unwrap_or_default();
    let call_id = q.opt("call_id", |v| v.parse::<CallId>())?;
    let limit = q
        .opt("limit", |v| parse_limit("limit", v, 1000))?
        .unwrap_or(100);
    let page = s
        .store
        .list_events(
            org,
            &EventQuery {
                after,
                types,
                call_id,
                limit,
            },
        )
        .await?;
    // The cursor is the last event's id: also when there is no more, so a client stores it
    // and asks again later from there.
    let cursor = page
        .events
        .last()
        .map(|e| e.id())
        .or_else(|| q.get("after").map(str::to_string));
    let events: Vec<Value> = page.events.iter().map(|e| e.to_json()).collect();
    Ok(Json(json!({
        "num_items": events.len(),
        "cursor": cursor,
        "has_more": page.has_more,
        "events": events,
    }))
    .into_response())
}

async fn get_event(
    State(s): State<AppState>,
    Org(org): Org,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let seq = event_seq("event id", &id)?;
    let ev = s
        .store
        .get_event(org, seq)
        .await
        .map_err(|e| ApiError::from_store(e, "event"))?;
    Ok(Json(ev.to_json()).into_response())
}
