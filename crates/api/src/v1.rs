//! The `/v1` Calls API: Flyflow's calls (000, 003) and the call resource (002) in one
//! superset, plus Switchboard's own options (filters, order, fields, include, most_recent).

use crate::auth::Org;
use crate::dispatch::{self, AgentRef, DispatchRequest};
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, QueryMap};
use crate::listing::{parse_filter, parse_order, parse_shape, Shape};
use crate::views::call_v1;
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use switchboard_domain::*;
use switchboard_store::decode_cursor;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/call", post(create_call).get(get_call_by_query))
        .route("/v1/calls", get(list_calls))
        .route("/v1/call/context", post(set_context))
        .route("/v1/call/{id}", get(get_call).delete(delete_call))
        .route("/v1/call/{id}/hangup", post(hangup))
        .route("/v1/call/{id}/transfer", post(transfer))
        .route(
            "/v1/call/recording/{file}",
            get(crate::recording::get_recording),
        )
}

/// Base URL for absolute links: the configured public URL, or the request's Host.
pub fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(u) = &state.public_url {
        return u.trim_end_matches('/').to_string();
    }
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}")
}

pub fn parse_call_id(s: &str) -> ApiResult<CallId> {
    CallId::parse_param("id", s).map_err(ApiError::from)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateCallBody {
    to: Option<String>,
    from: Option<String>,
    agent_id: Option<String>,
    context: Option<Value>,
    metadata: Option<Value>,
    user_speaks_first: Option<bool>,
    campaign_id: Option<String>,
    /// Read as any JSON value so that `30.0` counts as the integer it is (JSON Schema's
    /// `integer`); checked by `parse_ring_timeout`.
    ring_timeout: Option<Value>,
}

#[utoipa::path(
    post, path = "/v1/call", tag = "calls",
    summary = "Dispatch an outbound call",
    description = "Queues an outbound call from `from` (a number bound to an agent) or with `agent_id`. With an `Idempotency-Key` header a repeat with the same body returns the original call (header `idempotent-replayed: true`); the same key with another body is a 422.",
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to retry: 1 to 255 visible ASCII characters", min_length = 1, max_length = 255, pattern = "^[!-~]+$")),
    request_body(content = schema::CreateCallBody, content_type = "application/json"),
    responses(
        (status = 201, description = "The call, queued (or the original call on an idempotent replay)", body = schema::CallV1),
        (status = 400, description = "Invalid field", body = crate::error::ErrorBody),
        (status = 404, description = "Agent or number not found", body = crate::error::ErrorBody),
        (status = 409, description = "Concurrency limit reached", body = crate::error::ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = crate::error::ErrorBody),
        (status = 415, description = "Content-Type is not JSON", body = crate::error::ErrorBody),
        (status = 422, description = "Idempotency-Key reused with another body, or a reference that does not exist", body = crate::error::ErrorBody)
    )
)]
pub(crate) async fn create_call(
    State(state): State<AppState>,
    Org(org): Org,
    headers: HeaderMap,
    body: JsonBody<CreateCallBody>,
) -> ApiResult<Response> {
    let b = body.value;
    let to = b.to.ok_or_else(|| {
        ApiError::bad_request("to is required: the E.164 number to call, e.g. +14155551234")
    })?;
    let to =
        PhoneNumber::parse(&to).map_err(|e| ApiError::bad_request(format!("to: {}", e.message)))?;
    let from = b
        .from
        .filter(|f| !f.trim().is_empty())
        .map(|f| {
            PhoneNumber::parse(&f)
                .map_err(|e| ApiError::bad_request(format!("from: {}", e.message)))
        })
        .transpose()?;
    let agent = b
        .agent_id
        .map(|a| AgentId::parse_param("agent_id", &a).map(AgentRef::Id))
        .transpose()?;
    if from.is_none() && agent.is_none() {
        return Err(ApiError::bad_request(
            "pass from (a number bound to an agent) or agent_id",
        ));
    }
    let req = DispatchRequest {
        to,
        agent,
        from,
        from_number_id: None,
        context: dispatch::parse_context(b.context)?,
        metadata: dispatch::parse_metadata(b.metadata)?,
        user_speaks_first: b.user_speaks_first.unwrap_or(false),
        campaign_id: b
            .campaign_id
            .map(|c| CampaignId::parse_param("campaign_id", &c))
            .transpose()?,
        ring_timeout_seconds: dispatch::parse_ring_timeout(match b.ring_timeout {
            None | Some(Value::Null) => None,
            Some(v) => Some(crate::resource::json_int(&v).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "ring_timeout must be an integer between 1 and 300 seconds, got {v}"
                ))
            })?),
        })?,
    };
    let (call, created) =
        dispatch::dispatch(&state, org, req, &headers, "/v1/call", &body.raw).await?;
    let base = base_url(&state, &headers);
    let shape = Shape {
        fields: Fields::Light,
        include: vec![],
    };
    let mut r = (StatusCode::CREATED, Json(call_v1(&call, &base, &shape))).into_response();
    if !created {
        r.headers_mut().insert(
            "idempotent-replayed",
            "true".parse().expect("static header"),
        );
    }
    Ok(r)
}

#[utoipa::path(
    get, path = "/v1/calls", tag = "calls",
    summary = "List calls",
    description = "Keyset-paged list of the organization's calls with filters; `most_recent=true` returns the single most recent matching call instead of a page.",
    params(schema::ListCallsQuery),
    responses(
        (status = 200, description = "A page of calls (or one call with most_recent=true; see openapi::raw_parts)", body = schema::CallList),
        (status = 400, description = "Invalid parameter; the message names it and its allowed values", body = crate::error::ErrorBody),
        (status = 404, description = "most_recent=true and no call matches", body = crate::error::ErrorBody),
        (status = 422, description = "`from` is later than `to`, or the cursor was made for another order", body = crate::error::ErrorBody)
    )
)]
pub(crate) async fn list_calls(
    State(state): State<AppState>,
    Org(org): Org,
    headers: HeaderMap,
    q: QueryMap,
) -> ApiResult<Response> {
    let filter = parse_filter(&q, &["client_number", "phone_number"])?;
    let (order_by, order) = parse_order(&q, OrderBy::CreatedAt)?;
    let shape = parse_shape(&q)?;
    let most_recent = q
        .opt("most_recent", |v| parse_bool("most_recent", v))?
        .unwrap_or(false);
    let limit = q
        .opt("limit", |v| parse_limit("limit", v, 100))?
        .unwrap_or(10);
    let after = match q.get("cursor") {
        Some(c) => {
            let pos = decode_cursor(c)?;
            if pos.order_by != order_by || pos.order != order {
                // A well-formed cursor that does not fit the other parameters: the request
                // is understood but cannot be served (RFC 9110 §15.5.21).
                return Err(ApiError::unprocessable(format!(
                    "cursor was made for order_by={}&order={}; pass the same order with it",
                    pos.order_by, pos.order
                )));
            }
            Some(pos)
        }
        None => None,
    };
    let base = base_url(&state, &headers);
    if most_recent {
        let query = CallListQuery {
            filter,
            order_by: OrderBy::StartedAt,
            order: Order::Desc,
            limit: 1,
            page: Page::After(None),
            with_details: shape.needs_details(),
            with_total: false,
        };
        let page = state.store.list_calls(org, &query).await?;
        return match page.calls.first() {
            Some(c) => Ok(Json(call_v1(c, &base, &shape)).into_response()),
            None => Err(ApiError::not_found("No calls found matching criteria")),
        };
    }
    let query = CallListQuery {
        filter,
        order_by,
        order,
        limit,
        page: Page::After(after),
        with_details: shape.needs_details(),
        with_total: false,
    };
    let page = state.store.list_calls(org, &query).await?;
    let calls: Vec<Value> = page
        .calls
        .iter()
        .map(|c| call_v1(c, &base, &shape))
        .collect();
    Ok(
        Json(json!({ "num_items": calls.len(), "cursor": page.next_cursor, "calls": calls }))
            .into_response(),
    )
}

async fn render_one(
    state: &AppState,
    org: OrgId,
    id: CallId,
    headers: &HeaderMap,
    q: &QueryMap,
) -> ApiResult<Response> {
    let shape = parse_shape(q)?;
    let call = state
        .store
        .get_call(org, id, true)
        .await
        .map_err(|e| ApiError::from_store(e, "Call"))?;
    Ok(Json(call_v1(&call, &base_url(state, headers), &shape)).into_response())
}

#[utoipa::path(
    get, path = "/v1/call/{id}", tag = "calls",
    summary = "Get a call",
    params(("id" = uuid::Uuid, Path, description = "The call's id"), schema::CallShapeQuery),
    responses(
        (status = 200, description = "The call", body = schema::CallV1),
        (status = 400, description = "Invalid id or shape parameter", body = crate::error::ErrorBody),
        (status = 404, description = "Call not found", body = crate::error::ErrorBody)
    )
)]
pub(crate) async fn get_call(
    State(state): State<AppState>,
    Org(org): Org,
    Path(id): Path<String>,
    headers: HeaderMap,
    q: QueryMap,
) -> ApiResult<Response> {
    render_one(&state, org, parse_call_id(&id)?, &headers, &q).await
}

#[utoipa::path(
    get, path = "/v1/call", tag = "calls",
    summary = "Get a call by ?id=",
    params(schema::CallByIdQuery),
    responses(
        (status = 200, description = "The call", body = schema::CallV1),
        (status = 400, description = "Missing or invalid id", body = crate::error::ErrorBody),
        (status = 404, description = "Call not found", body = crate::error::ErrorBody)
    )
)]
pub(crate) async fn get_call_by_query(
    State(state): State<AppState>,
    Org(org): Org,
    headers: HeaderMap,
    q: QueryMap,
) -> ApiResult<Response> {
    let id = q
        .get("id")
        .ok_or_else(|| ApiError::bad_request("id is required: GET /v1/call?id=<call id>"))?;
    render_one(&state, org, parse_call_id(id)?, &headers, &q).await
}

/// How long `DELETE /v1/call/{id}` waits for a live call to end (a BYE answered, the
/// recording closed) before erasing it anyway.
const HANGUP_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

#[utoipa::path(
    delete, path = "/v1/call/{id}", tag = "calls",
    summary = "Delete a call",
    description = "Hangs the call up if it is live, then deletes it with its transcript, details and recordings.",
    params(("id" = uuid::Uuid, Path, description = "The call's id")),
    responses(
        (status = 200, description = "Deleted", body = crate::resource::Deleted),
        (status = 400, description = "Invalid id", body = crate::error::ErrorBody),
        (status = 404, description = "Call not found", body = crate::error::ErrorBody),
        (status = 503, description = "The call is live on another server that is gone or did not answer; nothing was deleted", body = crate::error::ErrorBody)
    )
)]
pub async fn delete_call(
    State(state): State<AppState>,
    Org(org): Org,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = parse_call_id(&id)?;
    // Only the organization's own call is touched (another's id is a 404 like a missing one).
    let call = state
        .store
        .get_call(org, id, false)
        .await
        .map_err(|e| ApiError::from_store(e, "Call"))?;
    // A live call (here or on another replica) is hung up and waited for, so its recorder
    // has closed its files and stored their keys before we erase them; nothing writes to what
    // we delete. Its replica gone or silent: 503, nothing deleted.
    if !call.status.is_final()
        && crate::control::hangup(&state, id, Some(HANGUP_WAIT)).await?
            == switchboard_store::Reached::Accepted
    {
        tracing::warn!(call_id = %id, "call did not end in time; deleting it anyway");
    }
    let recording = state
        .store
        .delete_call(org, id)
        .await
        .map_err(|e| ApiError::from_store(e, "Call"))?;
    if let Some(r) = recording {
        state.recordings.delete(&r.key).await?;
        if let Some(k) = &r.stereo_key {
            state.recordings.delete(k).await?;
        }
    }
    Ok(Json(json!({ "id": id, "deleted": true })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ContextBody {
    id: Option<String>,
    context: Option<Value>,
}

#[utoipa::path(
    post, path = "/v1/call/context", tag = "calls",
    summary = "Replace a call's context",
    request_body(content = schema::ContextBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The updated call", body = schema::CallV1),
        (status = 400, description = "Invalid body", body = crate::error::ErrorBody),
        (status = 404, description = "Call not found", body = crate::error::ErrorBody)
    )
)]
pub(crate) async fn set_context(
    State(state): State<AppState>,
    Org(org): Org,
    headers: HeaderMap,
    body: JsonBody<ContextBody>,
) -> ApiResult<Response> {
    let b = body.value;
    let id = b.id.ok_or_else(|| {
        ApiError::bad_request("id is required: the call whose context to replace")
    })?;
    let id = parse_call_id(&id)?;
    let context = dispatch::parse_context(b.context)?;
    let call = state
        .store
        .set_call_context(org, id, context)
        .await
        .map_err(|e| ApiError::from_store(e, "Call"))?;
    let shape = Shape {
        fields: Fields::Light,
        include: vec![],
    };
    Ok(Json(call_v1(&call, &base_url(&state, &headers), &shape)).into_response())
}

#[utoipa::path(
    post, path = "/v1/call/{id}/hangup", tag = "calls",
    summary = "Hang up a live call",
    description = "CANCEL while ringing, BYE once answered.",
    params(("id" = uuid::Uuid, Path, description = "The call's id")),
    responses(
        (status = 202, description = "Hang-up started", body = schema::CallV1),
        (status = 400, description = "Invalid id", body = crate::error::ErrorBody),
        (status = 404, description = "Call not found", body = crate::error::ErrorBody),
        (status = 409, description = "The call already ended, or is not live on any server yet", body = crate::error::ErrorBody),
        (status = 503, description = "The call is live on another server that is gone or did not answer", body = crate::error::ErrorBody)
    )
)]
pub async fn hangup(
    State(state): State<AppState>,
    Org(org): Org,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let id = parse_call_id(&id)?;
    let call = state
        .store
        .get_call(org, id, false)
        .await
        .map_err(|e| ApiError::from_store(e, "Call"))?;
    if call.status.is_final() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("call already ended with status {}", call.status),
        ));
    }
    let live =
        crate::control::hangup(&state, id, None).await? != switchboard_store::Reached::NotLive;
    if !live {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "call is not live on any server yet (still queued); try again once it is dialing",
        ));
    }
    Ok(accepted(&state, &headers, &call))
}

/// 202 with the call (light) as it was when a hang-up or transfer was handed to the engine.
fn accepted(state: &AppState, headers: &HeaderMap, call: &Call) -> Response {
    let shape = Shape {
        fields: Fields::Light,
        include: vec![],
    };
    (
        StatusCode::ACCEPTED,
        Json(call_v1(call, &base_url(state, headers), &shape)),
    )
        .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TransferBody {
    to: Option<String>,
}

/// A transfer target: an E.164 number, or a SIP URI that cannot break out of the Refer-To
/// header (no whitespace, angle brackets or quotes: RFC 3261 §25.1 URI characters only).
fn parse_transfer_target(to: Option<String>) -> ApiResult<String> {
    let to = to.ok_or_else(|| {
        ApiError::bad_request("to is required: an E.164 number (+14155550123) or a sip: URI")
    })?;
    let t = to.trim();
    if t.starts_with("sip:") || t.starts_with("sips:") {
        let ok = t.len() <= 256
            && t.contains('@')
            && t.chars()
                .all(|c| c.is_ascii_graphic() && !matches!(c, '<' | '>' | '"'));
        if !ok {
            return Err(ApiError::bad_request(
                "to: not a valid SIP URI; expected sip:user@host[:port] (at most 256 characters)",
            ));
        }
        return Ok(t.to_string());
    }
    let n = PhoneNumber::parse(t).map_err(|e| {
        ApiError::bad_request(format!(
            "to: {}; pass an E.164 number (+14155550123) or a sip: URI",
            e.message
        ))
    })?;
    Ok(n.to_string())
}

#[utoipa::path(
    post, path = "/v1/call/{id}/transfer", tag = "calls",
    summary = "Transfer an answered call",
    description = "Blind transfer (SIP REFER, RFC 3515) to an E.164 number, sent to the call's trunk (or the peer an inbound call came from), or to a sip: URI. The call ends as `transferred` once the far end reports success; a refusal is recorded in the call's events and the call goes on.",
    params(("id" = uuid::Uuid, Path, description = "The call's id")),
    request_body(content = schema::TransferBody, content_type = "application/json"),
    responses(
        (status = 202, description = "Transfer requested", body = schema::CallV1),
        (status = 400, description = "Invalid id or target", body = crate::error::ErrorBody),
        (status = 404, description = "Call not found", body = crate::error::ErrorBody),
        (status = 409, description = "The call is not answered, already ended, or not live on any server", body = crate::error::ErrorBody),
        (status = 503, description = "The call is live on another server that is gone or did not answer", body = crate::error::ErrorBody)
    )
)]
pub(crate) async fn transfer(
    State(state): State<AppState>,
    Org(org): Org,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: JsonBody<TransferBody>,
) -> ApiResult<Response> {
    let id = parse_call_id(&id)?;
    let call = transfer_call(&state, org, id, body.value.to).await?;
    Ok(accepted(&state, &headers, &call))
}

/// The transfer rules, shared with the dashboard: the target is checked, the call must be
/// answered and live here. Returns the call as it was when the transfer was handed over.
pub async fn transfer_call(
    state: &AppState,
    org: OrgId,
    id: CallId,
    to: Option<String>,
) -> ApiResult<Call> {
    let to = parse_transfer_target(to)?;
    let call = state
        .store
        .get_call(org, id, false)
        .await
        .map_err(|e| ApiError::from_store(e, "Call"))?;
    if call.status != CallStatus::InProgress {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "only an answered call (status in_progress) can be transferred; this one is {}",
                call.status
            ),
        ));
    }
    let live =
        crate::control::transfer(state, id, &to).await? != switchboard_store::Reached::NotLive;
    if !live {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "call is not live on any server",
        ));
    }
    Ok(call)
}

// ----- OpenAPI schema -----

/// The shapes of the calls API's requests and of the call JSON `views` renders.
pub mod schema {
    use serde_json::Value;
    use utoipa::{IntoParams, ToSchema};

    /// The status of a call.
    #[derive(ToSchema)]
    #[schema(rename_all = "snake_case")]
    pub enum CallStatus {
        Dialing,
        InProgress,
        Completed,
        Failed,
        Transferred,
        NoAnswer,
    }

    #[derive(ToSchema)]
    #[schema(rename_all = "snake_case")]
    pub enum CallType {
        Inbound,
        Outbound,
    }

    /// Sort key of a calls listing.
    #[derive(ToSchema)]
    #[schema(rename_all = "snake_case")]
    pub enum OrderBy {
        StartedAt,
        EndedAt,
        CreatedAt,
    }

    #[derive(ToSchema)]
    #[schema(rename_all = "snake_case")]
    pub enum Order {
        Asc,
        Desc,
    }

    /// Payload size: `light` (default) or `full` (adds transcript, analysis, metrics, actions).
    #[derive(ToSchema)]
    #[schema(rename_all = "snake_case")]
    pub enum Fields {
        Light,
        Full,
    }

    /// Query parameters of `GET /v1/calls`.
    #[derive(IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct ListCallsQuery {
        /// Only calls of this agent.
        #[param(
            pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
        )]
        pub agent_id: Option<uuid::Uuid>,
        /// Only calls with this customer number (E.164, e.g. +14155551234).
        #[param(pattern = r"^\+[1-9][0-9]{7,14}$")]
        pub client_number: Option<String>,
        /// Same as `client_number` (AgentVoice's name for it).
        #[param(pattern = r"^\+[1-9][0-9]{7,14}$")]
        pub phone_number: Option<String>,
        /// Only calls with this contact.
        #[param(
            pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
        )]
        pub contact_id: Option<uuid::Uuid>,
        /// Only calls of this campaign.
        #[param(
            pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
        )]
        pub campaign_id: Option<uuid::Uuid>,
        #[param(inline)]
        pub status: Option<CallStatus>,
        #[param(inline)]
        pub call_type: Option<CallType>,
        /// Calls starting at or after this instant (RFC 3339 date-time; a date or a date-time
        /// without offset, taken as UTC, is accepted too).
        #[param(format = DateTime)]
        pub from: Option<String>,
        /// Calls starting at or before this instant; not earlier than `from`.
        #[param(format = DateTime)]
        pub to: Option<String>,
        /// Sort key (default `created_at`).
        #[param(inline)]
        pub order_by: Option<OrderBy>,
        /// Sort direction (default `desc`).
        #[param(inline)]
        pub order: Option<Order>,
        #[param(inline)]
        pub fields: Option<Fields>,
        /// Comma-separated detail groups: `transcript`, `metrics`, `diagnostics`, `actions`.
        #[param(
            pattern = r"^(transcript|metrics|diagnostics|actions)(,(transcript|metrics|diagnostics|actions))*$"
        )]
        pub include: Option<String>,
        /// Return the single most recent matching call (by start time) instead of a page; 404 if none.
        pub most_recent: Option<bool>,
        /// Page size, 1 to 100 (default 10).
        #[param(minimum = 1, maximum = 100)]
        pub limit: Option<u32>,
        /// The `cursor` of the previous page, unchanged; pass the same `order_by` and `order`
        /// (a cursor made for another order is a 422).
        #[param(
            pattern = r"^c1\.(started_at|ended_at|created_at)\.(asc|desc)\.-?[0-9]{1,18}\.[0-9]{1,18}$"
        )]
        pub cursor: Option<String>,
    }

    /// Payload shape of a single call.
    #[derive(IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct CallShapeQuery {
        #[param(inline)]
        pub fields: Option<Fields>,
        /// Comma-separated detail groups: `transcript`, `metrics`, `diagnostics`, `actions`.
        #[param(
            pattern = r"^(transcript|metrics|diagnostics|actions)(,(transcript|metrics|diagnostics|actions))*$"
        )]
        pub include: Option<String>,
    }

    /// `GET /v1/call?id=`: the call id plus the payload shape.
    #[derive(IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct CallByIdQuery {
        /// The call's id.
        #[param(
            pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
        )]
        pub id: uuid::Uuid,
        #[param(inline)]
        pub fields: Option<Fields>,
        /// Comma-separated detail groups: `transcript`, `metrics`, `diagnostics`, `actions`.
        #[param(
            pattern = r"^(transcript|metrics|diagnostics|actions)(,(transcript|metrics|diagnostics|actions))*$"
        )]
        pub include: Option<String>,
    }

    /// `POST /v1/call`. Pass `from` (a number bound to an agent) or `agent_id`, or both.
    #[derive(ToSchema)]
    pub struct CreateCallBody {
        /// The E.164 number to call.
        #[schema(example = "+14155551234", pattern = r"^\+[1-9][0-9]{7,14}$")]
        pub to: String,
        /// One of the organization's numbers (E.164); its agent answers unless `agent_id` is
        /// given. Empty = not given.
        #[schema(pattern = r"^(\+[1-9][0-9]{7,14})?$")]
        pub from: Option<String>,
        #[schema(
            pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
        )]
        pub agent_id: Option<uuid::Uuid>,
        /// Handed to the agent: a JSON object or a string.
        #[schema(value_type = Option<Object>)]
        pub context: Option<Value>,
        /// Free-form JSON object kept with the call.
        #[schema(value_type = Option<Object>)]
        pub metadata: Option<Value>,
        /// Wait for the callee to speak first (default false).
        pub user_speaks_first: Option<bool>,
        #[schema(
            pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
        )]
        pub campaign_id: Option<uuid::Uuid>,
        /// Seconds to let it ring, 1 to 300.
        #[schema(minimum = 1, maximum = 300)]
        pub ring_timeout: Option<i64>,
    }

    /// `POST /v1/call/context`.
    #[derive(ToSchema)]
    pub struct ContextBody {
        /// The call whose context to replace.
        #[schema(
            pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
        )]
        pub id: uuid::Uuid,
        /// The new context (a JSON object or a string), or null to clear it.
        #[schema(value_type = Option<Object>)]
        pub context: Option<Value>,
    }

    /// Who answered an outbound call.
    #[derive(ToSchema)]
    #[schema(rename_all = "snake_case")]
    pub enum AnsweredBy {
        Human,
        MachineStart,
        MachineEndBeep,
        MachineEndSilence,
        Fax,
        Unknown,
    }

    /// Where to transfer the call.
    #[derive(ToSchema)]
    pub struct TransferBody {
        /// An E.164 number (`+14155550123`) or a SIP URI (`sip:desk@pbx.example.com`; at most
        /// 256 visible ASCII characters, no `<`, `>` or `"`).
        #[schema(
            max_length = 256,
            pattern = r#"^(\+[1-9][0-9]{7,14}|sips?:[!#-;=?-~]*@[!#-;=?-~]*)$"#
        )]
        pub to: String,
    }

    /// The contact embedded in a call.
    #[derive(ToSchema)]
    pub struct CallContact {
        pub id: uuid::Uuid,
        pub created_date: String,
        pub identifier: String,
        pub contact_type: String,
        pub first_name: Option<String>,
        pub last_name: Option<String>,
        pub email: Option<String>,
    }

    /// Facts of a call's recording.
    #[derive(ToSchema)]
    pub struct RecordingInfo {
        /// Mono MP3.
        pub url: String,
        /// Dual-channel MP3 (caller left, agent right), if written.
        pub stereo_url: Option<String>,
        pub duration_ms: Option<i64>,
        pub size_bytes: Option<i64>,
        pub sha256: Option<String>,
        /// True when the recording stops before the call did (the recordings disk filled
        /// up, the server stopped mid-call).
        pub incomplete: bool,
        /// Why it stops early; null for a recording of the whole call.
        pub incomplete_reason: Option<String>,
    }

    /// A call. The light payload always has the fields up to `events`; `fields=full` and the
    /// `include` groups add the heavy fields below it (null until something fills them).
    #[derive(ToSchema)]
    pub struct CallV1 {
        pub id: uuid::Uuid,
        pub agent_id: Option<uuid::Uuid>,
        pub status: CallStatus,
        #[schema(rename = "type")]
        pub call_type: CallType,
        pub contact: Option<CallContact>,
        pub phone_id: Option<uuid::Uuid>,
        /// Creation time, RFC 3339 UTC.
        pub created_date: String,
        pub created_at: String,
        pub recording_url: Option<String>,
        pub start_time: Option<String>,
        pub end_time: Option<String>,
        /// Seconds.
        pub duration: Option<i64>,
        pub end_reason: Option<String>,
        pub client_number: String,
        pub from_number: Option<String>,
        pub to_number: Option<String>,
        /// A JSON object or a string, as given (see `openapi::raw_parts`).
        #[schema(value_type = Option<Object>)]
        pub context: Option<Value>,
        #[schema(value_type = Option<Object>)]
        pub metadata: Option<Value>,
        pub user_speaks_first: bool,
        pub campaign_id: Option<uuid::Uuid>,
        /// Final SIP response code.
        pub sip_code: Option<i64>,
        /// Outbound calls: who answered, by answering-machine detection.
        #[schema(value_type = Option<String>, example = "human")]
        pub answered_by: Option<AnsweredBy>,
        /// True when an outbound call reached voicemail or an answering machine.
        pub went_to_voicemail: Option<bool>,
        /// Whether the call met the agent's `success_criteria` (post-call analysis).
        pub call_success: Option<bool>,
        pub recording: Option<RecordingInfo>,
        #[schema(value_type = Option<Vec<Object>>)]
        pub events: Option<Value>,
        pub transcript: Option<String>,
        pub transcript_formatted: Option<Value>,
        pub post_call_analysis: Option<Value>,
        pub call_description: Option<String>,
        pub custom_analysis: Option<Value>,
        pub structured_data_results: Option<Value>,
        pub notes: Option<Value>,
        pub action_executions: Option<Value>,
        pub action_summary: Option<Value>,
        pub quality_metrics: Option<Value>,
        pub latency_metrics: Option<Value>,
        pub audio_metrics: Option<Value>,
        pub enhanced_context: Option<Value>,
        pub turn_events: Option<Value>,
        pub interruptions: Option<Value>,
        pub tool_usage: Option<Value>,
    }

    /// A page of calls.
    #[derive(ToSchema)]
    pub struct CallList {
        pub num_items: u32,
        /// Pass as `cursor` for the next page; null on the last page.
        pub cursor: Option<String>,
        pub calls: Vec<CallV1>,
    }
}
