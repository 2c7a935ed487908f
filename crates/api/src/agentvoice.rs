//! AgentVoice dialect (004): `GET /api/calls` and `GET /api/calls/{id}` with `x-api-key` +
//! `x-organization-id`. Parses the documented parameters into the shared list query
//! (`listing`), reads through the store, renders with `views::call_agentvoice`.
//!
//! Errors keep the service-wide envelope, with the documented text in `error` when 004 names
//! one (`"Invalid order_by parameter"`, `"Authentication failed"`, `"Call not found"`,
//! `"No calls found matching criteria"`) and the detail in `message`.

use crate::auth::Org;
use crate::error::{ApiError, ApiResult};
use crate::extract::QueryMap;
use crate::listing::{parse_filter, parse_order, parse_shape, Shape};
use crate::v1::base_url;
use crate::views::call_agentvoice;
use crate::AppState;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use switchboard_domain::*;

/// Default and largest page size (004: "default 50, max: 100").
const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 100;

const INVALID_ORDER_BY: &str = "Invalid order_by parameter";
const CALL_NOT_FOUND: &str = "Call not found";
const NO_CALLS: &str = "No calls found matching criteria";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/calls", get(list_calls))
        .route("/api/calls/{id}", get(get_call))
}

fn order(q: &QueryMap) -> ApiResult<(OrderBy, Order)> {
    if let Some(v) = q.get("order_by") {
        OrderBy::parse_param("order_by", v).map_err(|_| {
            ApiError::bad_request(format!(
                "{INVALID_ORDER_BY}: order_by must be one of started_at, ended_at, created_at, got {:?}",
                v.chars().take(64).collect::<String>()
            ))
        })?;
    }
    parse_order(q, OrderBy::StartedAt)
}

#[utoipa::path(
    get, path = "/api/calls", tag = "agentvoice", operation_id = "agentvoice_list_calls",
    summary = "List calls (AgentVoice)",
    description = "Offset-paged list of the organization's calls with AgentVoice's filters and payloads; `most_recent=true` returns the single most recent matching call instead of a page. Errors carry AgentVoice's documented text in `error` (`Invalid order_by parameter`, `Authentication failed`, `No calls found matching criteria`) and the detail in `message`.",
    params(schema::ListQuery),
    responses(
        (status = 200, description = "A page of calls (or one call with most_recent=true; see openapi::raw_parts)", body = schema::AgentVoiceCallList),
        (status = 400, description = "Invalid parameter; the message names it and its allowed values", body = crate::error::ErrorBody),
        (status = 404, description = "most_recent=true and no call matches", body = crate::error::ErrorBody),
        (status = 422, description = "`from` is later than `to`", body = crate::error::ErrorBody)
    )
)]
pub(crate) async fn list_calls(
    State(state): State<AppState>,
    Org(org): Org,
    headers: HeaderMap,
    q: QueryMap,
) -> ApiResult<Response> {
    let filter = parse_filter(&q, &["phone_number"])?;
    let (order_by, order) = order(&q)?;
    let shape = parse_shape(&q)?;
    let most_recent = q
        .opt("most_recent", |v| parse_bool("most_recent", v))?
        .unwrap_or(false);
    let limit = q
        .opt("limit", |v| parse_limit("limit", v, MAX_LIMIT))?
        .unwrap_or(DEFAULT_LIMIT);
    // At most i64::MAX, as the document's int64 says.
    let offset = q
        .opt("offset", |v| {
            parse_non_negative("offset", v).and_then(|n| {
                if n <= i64::MAX as u64 {
                    Ok(n)
                } else {
                    Err(ParseError::new(format!(
                        "offset must be at most {}, got {n}",
                        i64::MAX
                    )))
                }
            })
        })?
        .unwrap_or(0);
    let base = base_url(&state, &headers);
    if most_recent {
        // "The most recent matching call": latest start (a call not started yet counts from
        // its creation), whatever order was asked for the list.
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
            Some(c) => Ok(Json(call_agentvoice(c, &base, &shape)).into_response()),
            None => Err(ApiError::not_found(NO_CALLS)),
        };
    }
    let query = CallListQuery {
        filter,
        order_by,
        order,
        limit,
        page: Page::Offset(offset),
        with_details: shape.needs_details(),
        with_total: true,
    };
    let page = state.store.list_calls(org, &query).await?;
    let data: Vec<Value> = page
        .calls
        .iter()
        .map(|c| call_agentvoice(c, &base, &shape))
        .collect();
    let total = page.total.unwrap_or(0);
    Ok(Json(json!({
        "data": data,
        "pagination": {
            "total": total,
            "limit": limit,
            "offset": offset,
            "has_more": page.has_more,
        }
    }))
    .into_response())
}

#[utoipa::path(
    get, path = "/api/calls/{id}", tag = "agentvoice", operation_id = "agentvoice_get_call",
    summary = "Get a call (AgentVoice)",
    params(
        ("id" = String, Path, description = "The call's id; an id that is not a UUID is simply not found"),
        schema::ShapeQuery
    ),
    responses(
        (status = 200, description = "The call", body = schema::AgentVoiceCall),
        (status = 400, description = "Invalid shape parameter", body = crate::error::ErrorBody),
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
    let shape: Shape = parse_shape(&q)?;
    // 004's own example asks for "abc-123": an id that cannot exist is simply not found.
    let Ok(id) = CallId::parse_param("id", &id) else {
        return Err(ApiError::not_found(CALL_NOT_FOUND));
    };
    let call = state
        .store
        .get_call(org, id, shape.needs_details())
        .await
        .map_err(|e| ApiError::from_store(e, "Call"))?;
    Ok(Json(call_agentvoice(&call, &base_url(&state, &headers), &shape)).into_response())
}

/// The documented error text for a detail message: 004's table names the error
/// ("Invalid order_by parameter"), the message may say more.
fn error_title(message: &str) -> &str {
    if message.starts_with(INVALID_ORDER_BY) {
        INVALID_ORDER_BY
    } else {
        message
    }
}

/// Response middleware for the AgentVoice routes (outside authentication, so the 401 gets it
/// too): rewrites `{"error": "<reason>", "message": m}` into `{"error": <documented text>,
/// "message": m}`.
pub async fn error_shape(resp: Response) -> Response {
    if !(resp.status().is_client_error() || resp.status().is_server_error()) {
        return resp;
    }
    let is_json = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_json {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, crate::extract::MAX_BODY).await else {
        return ApiError::internal().into_response();
    };
    let new = match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(mut m)) => {
            match m.get("message").and_then(Value::as_str).map(str::to_string) {
                Some(msg) => {
                    m.insert("error".into(), Value::String(error_title(&msg).to_string()));
                    serde_json::to_vec(&Value::Object(m)).unwrap_or_else(|_| bytes.to_vec())
                }
                None => bytes.to_vec(),
            }
        }
        _ => bytes.to_vec(),
    };
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(new))
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(list_calls, get_call),
    components(schemas(schema::AgentVoiceCallList))
)]
pub struct ApiDoc;

// ----- OpenAPI schema -----

/// The shapes of the AgentVoice JSON (`views::call_agentvoice`, the list page).
#[allow(dead_code, reason = "schema only")]
pub mod schema {
    use crate::v1::schema::{CallStatus, CallType, Fields, Order, OrderBy};
    use serde_json::Value;
    use utoipa::{IntoParams, ToSchema};

    /// Query parameters of `GET /api/calls`.
    #[derive(IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct ListQuery {
        /// Only calls of this agent.
        #[param(
            pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
        )]
        pub agent_id: Option<uuid::Uuid>,
        /// Only calls with this customer number (E.164).
        #[param(pattern = r"^\+[1-9][0-9]{7,14}$")]
        pub phone_number: Option<String>,
        #[param(
            pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
        )]
        pub contact_id: Option<uuid::Uuid>,
        #[param(
            pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
        )]
        pub campaign_id: Option<uuid::Uuid>,
        #[param(inline)]
        pub status: Option<CallStatus>,
        #[param(inline)]
        pub call_type: Option<CallType>,
        /// Calls starting at or after this instant (RFC 3339 date-time, or a date).
        #[param(format = DateTime)]
        pub from: Option<String>,
        /// Calls starting at or before this instant; not earlier than `from`.
        #[param(format = DateTime)]
        pub to: Option<String>,
        /// Sort key (default `started_at`).
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
        /// Return the single most recent matching call instead of a page; 404 if none.
        pub most_recent: Option<bool>,
        /// Page size, 1 to 100 (default 50).
        #[param(minimum = 1, maximum = 100)]
        pub limit: Option<u32>,
        /// Calls to skip (default 0).
        #[param(minimum = 0)]
        pub offset: Option<i64>,
    }

    /// Payload shape of one call.
    #[derive(IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct ShapeQuery {
        #[param(inline)]
        pub fields: Option<Fields>,
        /// Comma-separated detail groups: `transcript`, `metrics`, `diagnostics`, `actions`.
        #[param(
            pattern = r"^(transcript|metrics|diagnostics|actions)(,(transcript|metrics|diagnostics|actions))*$"
        )]
        pub include: Option<String>,
    }

    /// A call in AgentVoice's light payload; `fields=full` and the `include` groups add the
    /// heavy fields below `created_at`.
    #[derive(ToSchema)]
    pub struct AgentVoiceCall {
        pub id: uuid::Uuid,
        pub agent_id: Option<uuid::Uuid>,
        pub agent_name: Option<String>,
        pub contact_id: Option<uuid::Uuid>,
        pub contact_first_name: Option<String>,
        pub contact_last_name: Option<String>,
        pub contact_email: Option<String>,
        /// The customer's number.
        pub phone_number: String,
        /// The organization's number the call used.
        pub phone_number_called_from: Option<String>,
        pub call_type: CallType,
        pub status: CallStatus,
        pub call_success: Option<bool>,
        pub went_to_voicemail: Option<bool>,
        /// Seconds.
        pub call_duration: Option<i64>,
        pub started_at: Option<String>,
        pub ended_at: Option<String>,
        pub ended_reason: Option<String>,
        pub recording_url: Option<String>,
        pub campaign_id: Option<uuid::Uuid>,
        pub campaign_name: Option<String>,
        pub created_at: String,
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

    #[derive(ToSchema)]
    pub struct Pagination {
        /// Matching calls in all.
        pub total: i64,
        pub limit: u32,
        pub offset: u64,
        pub has_more: bool,
    }

    /// A page of calls.
    #[derive(ToSchema)]
    pub struct AgentVoiceCallList {
        pub data: Vec<AgentVoiceCall>,
        pub pagination: Pagination,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles() {
        assert_eq!(
            error_title("Invalid order_by parameter: order_by must be one of"),
            "Invalid order_by parameter"
        );
        assert_eq!(error_title("Call not found"), "Call not found");
    }
}
