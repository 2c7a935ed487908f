//! Webhook endpoints (`/v1/webhook-endpoints`): create (the secret is shown once), list, get,
//! patch (url, events, description, enabled), delete, rotate-secret, the attempts made at an
//! endpoint, and the retry of one delivery. Also the signing secret of an agent's
//! `webhook_url`, readable by its organization. URLs go through the SSRF guard.

use crate::auth::Org;
use crate::error::{ApiError, ApiResult};
use crate::events::{event_seq, event_types};
use crate::extract::{JsonBody, QueryMap};
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use switchboard_domain::{parse_limit, AgentId};
use switchboard_store::{
    decode_seq_cursor, encode_seq_cursor, event_id, WebhookAttempt, WebhookEndpointPatch,
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/webhook-endpoints",
            get(list_endpoints).post(create_endpoint),
        )
        .route(
            "/v1/webhook-endpoints/{id}",
            get(get_endpoint)
                .patch(update_endpoint)
                .delete(delete_endpoint),
        )
        .route(
            "/v1/webhook-endpoints/{id}/rotate-secret",
            post(rotate_secret),
        )
        .route(
            "/v1/webhook-endpoints/{id}/deliveries",
            get(list_deliveries),
        )
        .route(
            "/v1/webhook-endpoints/{id}/deliveries/{event_id}/retry",
            post(retry_delivery),
        )
        .route("/v1/agents/{id}/webhook-secret", get(agent_secret))
}

const FIELDS: &[&str] = &["url", "events", "description", "enabled"];

fn object(v: Value, allowed: &[&str]) -> ApiResult<Map<String, Value>> {
    let Value::Object(m) = v else {
        return Err(ApiError::bad_request("request body must be a JSON object"));
    };
    if let Some(k) = m.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(ApiError::bad_request(format!(
            "unknown field {k:?}; allowed fields: {}",
            allowed.join(", ")
        )));
    }
    Ok(m)
}

async fn checked_url(s: &AppState, v: &Value) -> ApiResult<String> {
    let Some(u) = v.as_str() else {
        return Err(ApiError::bad_request("url must be a string"));
    };
    if u.len() > 2048 {
        return Err(ApiError::bad_request("url is longer than 2048 characters"));
    }
    switchboard_webhooks::ssrf::check_url(u, s.webhook_allow_private)
        .await
        .map(|_| u.trim().to_string())
        .map_err(ApiError::bad_request)
}

fn events_field(v: &Value) -> ApiResult<Vec<String>> {
    let Some(list) = v.as_array() else {
        return Err(ApiError::bad_request(
            "events must be an array of event types, or [\"*\"] for all",
        ));
    };
    let mut out = Vec::new();
    for t in list {
        let Some(t) = t.as_str() else {
            return Err(ApiError::bad_request("events must hold strings"));
        };
        out.extend(event_types(t, true)?);
    }
    if out.is_empty() {
        return Err(ApiError::bad_request(
            "events must name at least one event type, or \"*\" for all",
        ));
    }
    Ok(out)
}

fn description_field(v: &Value) -> ApiResult<Option<String>> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.len() <= 1000 => Ok(Some(s.clone())),
        Value::String(_) => Err(ApiError::bad_request(
            "description is longer than 1000 characters",
        )),
        _ => Err(ApiError::bad_request("description must be a string")),
    }
}

async fn create_endpoint(
    State(s): State<AppState>,
    Org(org): Org,
    b: JsonBody<Value>,
) -> ApiResult<Response> {
    let m = object(b.value, FIELDS)?;
    let url = match m.get("url") {
        Some(v) => checked_url(&s, v).await?,
        None => return Err(ApiError::bad_request("url is required")),
    };
    let events = match m.get("events") {
        Some(v) => events_field(v)?,
        None => {
            return Err(ApiError::bad_request(
                "events is required: an array of event types, or [\"*\"] for all",
            ))
        }
    };
    let description = m
        .get("description")
        .map(description_field)
        .transpose()?
        .flatten();
    let (mut ep, secret) = s
        .store
        .create_webhook_endpoint(org, &url, &events, description.as_deref())
        .await?;
    if m.get("enabled") == Some(&Value::Bool(false)) {
        ep = s
            .store
            .update_webhook_endpoint(
                org,
                &ep.id,
                WebhookEndpointPatch {
                    enabled: Some(false),
                    ..Default::default()
                },
            )
            .await?;
    }
    let mut v = ep.to_json();
    v["secret"] = json!(secret);
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

async fn list_endpoints(
    State(s): State<AppState>,
    Org(org): Org,
    q: QueryMap,
) -> ApiResult<Response> {
    let after = q.opt("cursor", decode_seq_cursor)?;
    let limit = q
        .opt("limit", |v| parse_limit("limit", v, 100))?
        .unwrap_or(100);
    let (eps, more) = s.store.list_webhook_endpoints(org, after, limit).await?;
    let cursor = if more {
        eps.last().map(|e| encode_seq_cursor(e.seq))
    } else {
        None
    };
    let items: Vec<Value> = eps.iter().map(|e| e.to_json()).collect();
    Ok(
        Json(json!({"num_items": items.len(), "cursor": cursor, "webhook_endpoints": items}))
            .into_response(),
    )
}

async fn get_endpoint(
    State(s): State<AppState>,
    Org(org): Org,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let ep = s
        .store
        .get_webhook_endpoint(org, &id)
        .await
        .map_err(|e| ApiError::from_store(e, "webhook endpoint"))?;
    Ok(Json(ep.to_json()).into_response())
}

async fn update_endpoint(
    State(s): State<AppState>,
    Org(org): Org,
    Path(id): Path<String>,
    b: JsonBody<Value>,
) -> ApiResult<Response> {
    let m = object(b.value, FIELDS)?;
    let mut p = WebhookEndpointPatch::default();
    if let Some(v) = m.get("url") {
        p.url = Some(checked_url(&s, v).await?);
    }
    if let Some(v) = m.get("events") {
        p.events = Some(events_field(v)?);
    }
    if let Some(v) = m.get("description") {
        p.description = Some(description_field(v)?);
    }
    if let Some(v) = m.get("enabled") {
        p.enabled = Some(
            v.as_bool()
                .ok_or_else(|| ApiError::bad_request("enabled must be true or false"))?,
        );
    }
    let ep = s
        .store
        .update_webhook_endpoint(org, &id, p)
        .await
        .map_err(|e| ApiError::from_store(e, "webhook endpoint"))?;
    Ok(Json(ep.to_json()).into_response())
}

async fn delete_endpoint(
    State(s): State<AppState>,
    Org(org): Org,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    s.store
        .delete_webhook_endpoint(org, &id)
        .await
        .map_err(|e| ApiError::from_store(e, "webhook endpoint"))?;
    Ok(Json(json!({"id": id, "deleted": true})).into_response())
}

async fn rotate_secret(
    State(s): State<AppState>,
    Org(org): Org,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let secret = s
        .store
        .rotate_webhook_secret(org, &id)
        .await
        .map_err(|e| ApiError::from_store(e, "webhook endpoint"))?;
    Ok(Json(json!({"id": id, "secret": secret})).into_response())
}

fn attempt_json(a: &WebhookAttempt) -> Value {
    json!({
        "event_id": event_id(a.event_seq),
        "attempted_at": a.attempted_at,
        "status_code": a.status_code,
        "response_time_ms": a.response_ms,
        "error": a.error,
        "next_retry_at": a.next_retry_at,
        "success": a.error.is_none(),
    })
}

async fn list_deliveries(
    State(s): State<AppState>,
    Org(org): Org,
    Path(id): Path<String>,
    q: QueryMap,
) -> ApiResult<Response> {
    let before = q.opt("cursor", decode_seq_cursor)?;
    let limit = q
        .opt("limit", |v| parse_limit("limit", v, 100))?
        .unwrap_or(50);
    let (attempts, more) = s
        .store
        .list_webhook_attempts(org, &id, before, limit)
        .await
        .map_err(|e| ApiError::from_store(e, "webhook endpoint"))?;
    let cursor = if more {
        attempts.last().map(|a| encode_seq_cursor(a.seq))
    } else {
        None
    };
    let items: Vec<Value> = attempts.iter().map(attempt_json).collect();
    Ok(
        Json(json!({"num_items": items.len(), "cursor": cursor, "deliveries": items}))
            .into_response(),
    )
}

async fn retry_delivery(
    State(s): State<AppState>,
    Org(org): Org,
    Path((id, event)): Path<(String, String)>,
) -> ApiResult<Response> {
    let seq = event_seq("event id", &event)?;
    s.store
        .get_webhook_endpoint(org, &id)
        .await
        .map_err(|e| ApiError::from_store(e, "webhook endpoint"))?;
    s.store
        .retry_webhook_delivery(org, &id, seq)
        .await
        .map_err(|e| ApiError::from_store(e, "event"))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"endpoint_id": id, "event_id": event_id(seq), "state": "pending"})),
    )
        .into_response())
}

async fn agent_secret(
    State(s): State<AppState>,
    Org(org): Org,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let agent: AgentId = id.parse()?;
    let secret = s
        .store
        .agent_webhook_secret(org, agent)
        .await
        .map_err(|e| ApiError::from_store(e, "agent"))?;
    Ok(Json(json!({"agent_id": agent, "secret": secret})).into_response())
}
