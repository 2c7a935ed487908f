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

#[utoipa::path(
    get, path = "/v1/events", tag = "events",
    summary = "List events",
    description = "The organization's events in the order they were written, oldest first, kept for `--event-retention-days`. Keep the `cursor` of the last page and pass it as `after` to read only what came since: a client that was down misses nothing.",
    params(schema::EventsQuery),
    responses(
        (status = 200, description = "A page of events", body = schema::EventList),
        (status = 400, description = "Invalid parameter; the message names it and its allowed values", body = crate::error::ErrorBody)
    )
)]
pub(crate) async fn list_events(
    State(s): State<AppState>,
    Org(org): Org,
    q: QueryMap,
) -> ApiResult<Response> {
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

#[utoipa::path(
    get, path = "/v1/events/{id}", tag = "events",
    summary = "Get an event",
    params(("id" = String, Path, description = "The event's id (`evt_` and 16 hex digits)", pattern = r"^evt_[0-7][0-9a-fA-F]{15}$")),
    responses(
        (status = 200, description = "The event", body = schema::Event),
        (status = 400, description = "Not an event id", body = crate::error::ErrorBody),
        (status = 404, description = "Event not found (or past retention)", body = crate::error::ErrorBody)
    )
)]
pub(crate) async fn get_event(
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

// ----- OpenAPI schema -----

/// The shapes of the event log's JSON (`Event::to_json`).
#[allow(
    dead_code,
    reason = "the types exist for the OpenAPI document only; nothing constructs them"
)]
pub mod schema {
    use serde_json::Value;
    use utoipa::{IntoParams, ToSchema};

    /// The type of an event.
    #[derive(ToSchema)]
    pub enum EventType {
        #[schema(rename = "call.created")]
        CallCreated,
        #[schema(rename = "call.ringing")]
        CallRinging,
        #[schema(rename = "call.answered")]
        CallAnswered,
        #[schema(rename = "call.ended")]
        CallEnded,
        #[schema(rename = "call.transcript")]
        CallTranscript,
        #[schema(rename = "call.analyzed")]
        CallAnalyzed,
        #[schema(rename = "recording.ready")]
        RecordingReady,
        #[schema(rename = "webhook_endpoint.disabled")]
        WebhookEndpointDisabled,
    }

    /// An event, as listed and as delivered in a webhook's `data`'s envelope.
    #[derive(ToSchema)]
    pub struct Event {
        /// `evt_` and 16 hex digits; unique, and sorting as text sorts by creation.
        #[schema(example = "evt_00000000000004d2")]
        pub id: String,
        #[schema(rename = "type", inline)]
        pub event_type: EventType,
        /// When the change was written (RFC 3339, UTC).
        pub created_at: String,
        /// The call the event is about, if any.
        pub call_id: Option<uuid::Uuid>,
        /// The event's number among its call's events (1, 2, ...): orders a call's events.
        pub sequence: Option<i64>,
        /// The call as `GET /v1/call/{id}?fields=full&include=transcript` shows it at that
        /// moment (`call.*`), `{call_id, index, turn}` (`call.transcript`),
        /// `{call_id, recording_url, recording}` (`recording.ready`), or the endpoint
        /// (`webhook_endpoint.disabled`).
        pub data: Value,
    }

    /// A page of events.
    #[derive(ToSchema)]
    pub struct EventList {
        pub num_items: usize,
        /// The last event's id (or the `after` given when the page is empty): pass it as
        /// `after` next time.
        pub cursor: Option<String>,
        pub has_more: bool,
        pub events: Vec<Event>,
    }

    #[derive(IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct EventsQuery {
        /// Only events after this event id (the `cursor` of the previous page).
        #[param(pattern = r"^evt_[0-7][0-9a-fA-F]{15}$")]
        pub after: Option<String>,
        /// Comma-separated event types (e.g. `call.ended,call.analyzed`).
        #[param(
            rename = "type",
            pattern = r"^(call\.(created|ringing|answered|ended|transcript|analyzed)|recording\.ready|webhook_endpoint\.disabled)(,(call\.(created|ringing|answered|ended|transcript|analyzed)|recording\.ready|webhook_endpoint\.disabled))*$"
        )]
        pub event_type: Option<String>,
        /// Only this call's events.
        #[param(
            pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
        )]
        pub call_id: Option<uuid::Uuid>,
        /// Page size (default 100).
        #[param(minimum = 1, maximum = 1000)]
        pub limit: Option<u32>,
    }
}
