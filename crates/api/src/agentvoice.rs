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

async fn list_calls(
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
    let offset = q
        .opt("offset", |v| parse_non_negative("offset", v))?
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

async fn get_call(
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
