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

/// An endpoint id from the path: a UUID (anything else is a 400 before the store sees it;
/// PostgreSQL refuses some strings, e.g. with a NUL, outright).
fn endpoint_id(s: &str) -> ApiResult<String> {
    uuid::Uuid::parse_str(s.trim())
        .map(|u| u.to_string())
        .map_err(|_| {
            ApiError::bad_request(format!(
                "webhook endpoint id must be a UUID, got {:?}",
                s.chars().take(64).collect::<String>()
            ))
        })
}

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
        Value::String(s) if s.chars().count() <= 1000 => Ok(Some(s.clone())),
        Value::String(_) => Err(ApiError::bad_request(
            "description is longer than 1000 characters",
        )),
        _ => Err(ApiError::bad_request("description must be a string")),
    }
}

#[utoipa::path(
    post, path = "/v1/webhook-endpoints", tag = "webhooks",
    summary = "Create a webhook endpoint",
    description = "Registers a URL that receives the organization's events of the given types, signed the Standard Webhooks way (`webhook-id`, `webhook-timestamp`, `webhook-signature`). The answer carries the signing `secret` (`whsec_...`): it is shown this once (see rotate-secret). URLs that resolve to loopback, private, link-local or metadata addresses are refused unless the server runs with `--webhook-allow-private`.",
    request_body(content = schema::WebhookEndpointCreate, content_type = "application/json"),
    responses(
        (status = 201, description = "The endpoint, with its secret", body = schema::WebhookEndpointCreated),
        (status = 400, description = "Invalid or unknown field, unknown event type, or a URL that is not public http(s)", body = crate::error::ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = crate::error::ErrorBody),
        (status = 415, description = "Content-Type is not JSON", body = crate::error::ErrorBody)
    )
)]
pub(crate) async fn create_endpoint(
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
    let enabled = match m.get("enabled") {
        None => true,
        Some(v) => v
            .as_bool()
            .ok_or_else(|| ApiError::bad_request("enabled must be true or false"))?,
    };
    let (mut ep, secret) = s
        .store
        .create_webhook_endpoint(org, &url, &events, description.as_deref())
        .await?;
    if !enabled {
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

#[utoipa::path(
    get, path = "/v1/webhook-endpoints", tag = "webhooks",
    summary = "List webhook endpoints",
    params(schema::ListEndpointsQuery),
    responses(
        (status = 200, description = "A page of endpoints (secrets are never listed)", body = schema::WebhookEndpointList),
        (status = 400, description = "Invalid cursor or limit", body = crate::error::ErrorBody)
    )
)]
pub(crate) async fn list_endpoints(
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

#[utoipa::path(
    get, path = "/v1/webhook-endpoints/{id}", tag = "webhooks",
    summary = "Get a webhook endpoint",
    params(("id" = uuid::Uuid, Path, description = "The endpoint's id")),
    responses(
        (status = 200, description = "The endpoint", body = schema::WebhookEndpoint),
        (status = 400, description = "Invalid id", body = crate::error::ErrorBody),
        (status = 404, description = "Endpoint not found", body = crate::error::ErrorBody)
    )
)]
pub(crate) async fn get_endpoint(
    State(s): State<AppState>,
    Org(org): Org,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = endpoint_id(&id)?;
    let ep = s
        .store
        .get_webhook_endpoint(org, &id)
        .await
        .map_err(|e| ApiError::from_store(e, "webhook endpoint"))?;
    Ok(Json(ep.to_json()).into_response())
}

#[utoipa::path(
    patch, path = "/v1/webhook-endpoints/{id}", tag = "webhooks",
    summary = "Update a webhook endpoint",
    description = "Changes the given fields. `enabled: true` re-enables an endpoint that was disabled after failing too long. A new URL applies to pending retries too.",
    params(("id" = uuid::Uuid, Path, description = "The endpoint's id")),
    request_body(content = schema::WebhookEndpointPatch, content_type = "application/json"),
    responses(
        (status = 200, description = "The updated endpoint", body = schema::WebhookEndpoint),
        (status = 400, description = "Invalid or unknown field", body = crate::error::ErrorBody),
        (status = 404, description = "Endpoint not found", body = crate::error::ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = crate::error::ErrorBody),
        (status = 415, description = "Content-Type is not JSON", body = crate::error::ErrorBody)
    )
)]
pub(crate) async fn update_endpoint(
    State(s): State<AppState>,
    Org(org): Org,
    Path(id): Path<String>,
    b: JsonBody<Value>,
) -> ApiResult<Response> {
    let id = endpoint_id(&id)?;
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

#[utoipa::path(
    delete, path = "/v1/webhook-endpoints/{id}", tag = "webhooks",
    summary = "Delete a webhook endpoint",
    description = "Its pending deliveries are dropped.",
    params(("id" = uuid::Uuid, Path, description = "The endpoint's id")),
    responses(
        (status = 200, description = "Deleted", body = crate::resource::Deleted),
        (status = 400, description = "Invalid id", body = crate::error::ErrorBody),
        (status = 404, description = "Endpoint not found", body = crate::error::ErrorBody)
    )
)]
pub(crate) async fn delete_endpoint(
    State(s): State<AppState>,
    Org(org): Org,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = endpoint_id(&id)?;
    s.store
        .delete_webhook_endpoint(org, &id)
        .await
        .map_err(|e| ApiError::from_store(e, "webhook endpoint"))?;
    Ok(Json(json!({"id": id, "deleted": true})).into_response())
}

#[utoipa::path(
    post, path = "/v1/webhook-endpoints/{id}/rotate-secret", tag = "webhooks",
    summary = "Rotate an endpoint's signing secret",
    description = "A new secret, shown this once; every delivery from now on (retries included) is signed with it.",
    params(("id" = uuid::Uuid, Path, description = "The endpoint's id")),
    responses(
        (status = 200, description = "The new secret", body = schema::RotatedSecret),
        (status = 400, description = "Invalid id", body = crate::error::ErrorBody),
        (status = 404, description = "Endpoint not found", body = crate::error::ErrorBody)
    )
)]
pub(crate) async fn rotate_secret(
    State(s): State<AppState>,
    Org(org): Org,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = endpoint_id(&id)?;
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

#[utoipa::path(
    get, path = "/v1/webhook-endpoints/{id}/deliveries", tag = "webhooks",
    summary = "List delivery attempts",
    description = "The attempts made at this endpoint, newest first: event, time, status code, response time, error and next retry.",
    params(("id" = uuid::Uuid, Path, description = "The endpoint's id"), schema::ListDeliveriesQuery),
    responses(
        (status = 200, description = "A page of attempts", body = schema::DeliveryList),
        (status = 400, description = "Invalid cursor or limit", body = crate::error::ErrorBody),
        (status = 404, description = "Endpoint not found", body = crate::error::ErrorBody)
    )
)]
pub(crate) async fn list_deliveries(
    State(s): State<AppState>,
    Org(org): Org,
    Path(id): Path<String>,
    q: QueryMap,
) -> ApiResult<Response> {
    let id = endpoint_id(&id)?;
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

#[utoipa::path(
    post, path = "/v1/webhook-endpoints/{id}/deliveries/{event_id}/retry", tag = "webhooks",
    summary = "Retry a delivery",
    description = "Sends the event to this endpoint again, at once (also after it succeeded or gave up).",
    params(
        ("id" = uuid::Uuid, Path, description = "The endpoint's id"),
        ("event_id" = String, Path, description = "The event's id (`evt_` and 16 hex digits)", pattern = r"^evt_[0-7][0-9a-fA-F]{15}$")
    ),
    responses(
        (status = 202, description = "Queued for delivery", body = schema::RetryAccepted),
        (status = 400, description = "Not an event id", body = crate::error::ErrorBody),
        (status = 404, description = "Endpoint not found, or the event was never for this endpoint", body = crate::error::ErrorBody)
    )
)]
pub(crate) async fn retry_delivery(
    State(s): State<AppState>,
    Org(org): Org,
    Path((id, event)): Path<(String, String)>,
) -> ApiResult<Response> {
    let id = endpoint_id(&id)?;
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

#[utoipa::path(
    get, path = "/v1/agents/{id}/webhook-secret", tag = "webhooks",
    summary = "Get the signing secret of an agent's webhook_url",
    description = "The agent's `webhook_url` receives its calls' events, signed with this per-agent secret (made on first use).",
    params(("id" = uuid::Uuid, Path, description = "The agent's id")),
    responses(
        (status = 200, description = "The secret", body = schema::AgentWebhookSecret),
        (status = 400, description = "Invalid id", body = crate::error::ErrorBody),
        (status = 404, description = "Agent not found", body = crate::error::ErrorBody)
    )
)]
pub(crate) async fn agent_secret(
    State(s): State<AppState>,
    Org(org): Org,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = endpoint_id(&id)?;
    let agent: AgentId = id.parse()?;
    let secret = s
        .store
        .agent_webhook_secret(org, agent)
        .await
        .map_err(|e| ApiError::from_store(e, "agent"))?;
    Ok(Json(json!({"agent_id": agent, "secret": secret})).into_response())
}

// ----- OpenAPI schema -----

/// The shapes of the webhook endpoints' JSON (`WebhookEndpoint::to_json`, `attempt_json`).
#[allow(
    dead_code,
    reason = "the types exist for the OpenAPI document only; nothing constructs them"
)]
pub mod schema {
    use utoipa::{IntoParams, ToSchema};

    /// A webhook endpoint (its secret is shown only at creation and rotation).
    #[derive(ToSchema)]
    pub struct WebhookEndpoint {
        pub id: uuid::Uuid,
        pub url: String,
        /// Event types it receives, or `["*"]` for all.
        pub events: Vec<String>,
        pub description: Option<String>,
        /// `false` once disabled (by a PATCH, or after failing for `--webhook-disable-after`).
        pub enabled: bool,
        /// Why it was disabled by the server.
        pub disabled_reason: Option<String>,
        /// Start of the current run of failures (RFC 3339), `null` after a success.
        pub failing_since: Option<String>,
        pub created_at: String,
        pub updated_at: String,
    }

    /// A new endpoint, with its signing secret (shown this once).
    #[derive(ToSchema)]
    pub struct WebhookEndpointCreated {
        pub id: uuid::Uuid,
        pub url: String,
        pub events: Vec<String>,
        pub description: Option<String>,
        pub enabled: bool,
        pub disabled_reason: Option<String>,
        pub failing_since: Option<String>,
        pub created_at: String,
        pub updated_at: String,
        /// `whsec_` and the base64 key: verify signatures with it.
        #[schema(example = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]
        pub secret: String,
    }

    /// An event type a webhook endpoint can take, or `*` for all.
    #[derive(ToSchema)]
    pub enum EventFilter {
        #[schema(rename = "*")]
        All,
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

    #[derive(ToSchema)]
    pub struct WebhookEndpointCreate {
        /// A public http(s) URL (at most 2048 characters).
        #[schema(
            max_length = 2048,
            pattern = r"^https?://[A-Za-z][A-Za-z0-9-]{0,62}(\.[A-Za-z][A-Za-z0-9-]{0,62}){0,8}(:[1-9][0-9]{0,3})?(/[A-Za-z0-9._~/-]*)?$"
        )]
        pub url: String,
        /// Event types (see the `events` tag), or `["*"]` for all.
        #[schema(min_items = 1, inline)]
        pub events: Vec<EventFilter>,
        /// At most 1000 characters.
        #[schema(max_length = 1000)]
        pub description: Option<String>,
        /// Default `true`.
        #[schema(nullable = false)]
        pub enabled: Option<bool>,
    }

    #[derive(ToSchema)]
    pub struct WebhookEndpointPatch {
        #[schema(
            max_length = 2048,
            pattern = r"^https?://[A-Za-z][A-Za-z0-9-]{0,62}(\.[A-Za-z][A-Za-z0-9-]{0,62}){0,8}(:[1-9][0-9]{0,3})?(/[A-Za-z0-9._~/-]*)?$",
            nullable = false
        )]
        pub url: Option<String>,
        #[schema(min_items = 1, nullable = false, inline)]
        pub events: Option<Vec<EventFilter>>,
        /// `null` clears it.
        #[schema(max_length = 1000)]
        pub description: Option<String>,
        #[schema(nullable = false)]
        pub enabled: Option<bool>,
    }

    #[derive(ToSchema)]
    pub struct WebhookEndpointList {
        pub num_items: usize,
        /// Pass as `cursor` for the next page; `null` on the last.
        pub cursor: Option<String>,
        pub webhook_endpoints: Vec<WebhookEndpoint>,
    }

    #[derive(IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct ListEndpointsQuery {
        /// The previous page's `cursor`.
        #[param(pattern = r"^s1\.[0-9]{1,18}$")]
        pub cursor: Option<String>,
        /// Page size (default 100).
        #[param(minimum = 1, maximum = 100)]
        pub limit: Option<u32>,
    }

    #[derive(ToSchema)]
    pub struct RotatedSecret {
        pub id: uuid::Uuid,
        pub secret: String,
    }

    /// One attempt to deliver an event to the endpoint.
    #[derive(ToSchema)]
    pub struct DeliveryAttempt {
        pub event_id: String,
        pub attempted_at: String,
        /// The endpoint's HTTP status, `null` when no response came (timeout, refused).
        pub status_code: Option<u16>,
        pub response_time_ms: Option<i64>,
        /// What went wrong; `null` for a 2xx.
        pub error: Option<String>,
        /// When it is tried again; `null` after a success or the last attempt.
        pub next_retry_at: Option<String>,
        pub success: bool,
    }

    #[derive(ToSchema)]
    pub struct DeliveryList {
        pub num_items: usize,
        /// Pass as `cursor` for the next (older) page; `null` on the last.
        pub cursor: Option<String>,
        pub deliveries: Vec<DeliveryAttempt>,
    }

    #[derive(IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct ListDeliveriesQuery {
        /// The previous page's `cursor`.
        #[param(pattern = r"^s1\.[0-9]{1,18}$")]
        pub cursor: Option<String>,
        /// Page size (default 50).
        #[param(minimum = 1, maximum = 100)]
        pub limit: Option<u32>,
    }

    #[derive(ToSchema)]
    pub struct RetryAccepted {
        pub endpoint_id: uuid::Uuid,
        pub event_id: String,
        /// Always `pending`.
        pub state: String,
    }

    #[derive(ToSchema)]
    pub struct AgentWebhookSecret {
        pub agent_id: uuid::Uuid,
        pub secret: String,
    }
}
