//! Native REST resources under /v1: agents, phone numbers, SIP trunks, contacts, campaigns.
//! Collections: `GET /v1/<plural>` (cursor paging) and `POST`; items: `GET`, `PATCH`,
//! `DELETE /v1/<plural>/{id}`. Flyflow's agent endpoints (`POST /v1/agent` upsert by name,
//! `GET|DELETE /v1/agent?id=`) sit beside them over the same store calls.

use crate::auth::Org;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, QueryMap};
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::{json, Map, Value};
use switchboard_domain::*;
use switchboard_store::{decode_seq_cursor, encode_seq_cursor, ResourcePage};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/agents", get(list_agents).post(create_agent))
        .route(
            "/v1/agents/{id}",
            get(get_agent).patch(update_agent).delete(delete_agent),
        )
        .route(
            "/v1/agent",
            get(flyflow_get_agent)
                .post(flyflow_upsert_agent)
                .delete(flyflow_delete_agent),
        )
        .route("/v1/phone-numbers", get(list_numbers).post(create_number))
        .route(
            "/v1/phone-numbers/{id}",
            get(get_number).patch(update_number).delete(delete_number),
        )
        .route("/v1/sip-trunks", get(list_trunks).post(create_trunk))
        .route(
            "/v1/sip-trunks/{id}",
            get(get_trunk).patch(update_trunk).delete(delete_trunk),
        )
        .route("/v1/contacts", get(list_contacts).post(create_contact))
        .route(
            "/v1/contacts/{id}",
            get(get_contact)
                .patch(update_contact)
                .delete(delete_contact),
        )
        .route("/v1/campaigns", get(list_campaigns).post(create_campaign))
        .route(
            "/v1/campaigns/{id}",
            get(get_campaign)
                .patch(update_campaign)
                .delete(delete_campaign),
        )
}

/// A JSON object body read field by field, so each error names the field and what it takes.
/// `Some(None)` = present and null (clear it), `None` = absent (leave it).
pub struct Obj(pub Map<String, Value>);

impl Obj {
    pub fn new(v: Value, allowed: &[&str]) -> ApiResult<Obj> {
        let Value::Object(m) = v else {
            return Err(ApiError::bad_request("request body must be a JSON object"));
        };
        if !allowed.is_empty() {
            if let Some(k) = m.keys().find(|k| !allowed.contains(&k.as_str())) {
                return Err(ApiError::bad_request(format!(
                    "unknown field {k:?}; allowed fields: {}",
                    allowed.join(", ")
                )));
            }
        }
        Ok(Obj(m))
    }
    pub fn string(&self, k: &str, max: usize) -> ApiResult<Option<Option<String>>> {
        match self.0.get(k) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(Value::String(s)) if s.chars().count() <= max => Ok(Some(Some(s.clone()))),
            Some(Value::String(_)) => Err(ApiError::bad_request(format!(
                "{k} must be at most {max} characters"
            ))),
            Some(_) => Err(ApiError::bad_request(format!("{k} must be a string"))),
        }
    }
    pub fn name(&self, k: &str) -> ApiResult<Option<String>> {
        match self.string(k, 200)? {
            None => Ok(None),
            Some(None) => Err(ApiError::bad_request(format!("{k} must not be null"))),
            Some(Some(s)) => Ok(Some(parse_name(k, &s, 200)?)),
        }
    }
    pub fn int(&self, k: &str, min: i64, max: i64) -> ApiResult<Option<Option<i64>>> {
        match self.0.get(k) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(v) => match v.as_i64() {
                Some(n) if (min..=max).contains(&n) => Ok(Some(Some(n))),
                _ => Err(ApiError::bad_request(format!(
                    "{k} must be an integer between {min} and {max}"
                ))),
            },
        }
    }
    pub fn boolean(&self, k: &str) -> ApiResult<Option<bool>> {
        match self.0.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(ApiError::bad_request(format!("{k} must be true or false"))),
        }
    }
    pub fn object(&self, k: &str) -> ApiResult<Option<Option<Value>>> {
        match self.0.get(k) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(v @ Value::Object(_)) => Ok(Some(Some(v.clone()))),
            Some(_) => Err(ApiError::bad_request(format!("{k} must be a JSON object"))),
        }
    }
    pub fn phone(&self, k: &str) -> ApiResult<Option<Option<PhoneNumber>>> {
        match self.string(k, 32)? {
            None => Ok(None),
            Some(None) => Ok(Some(None)),
            Some(Some(s)) => {
                Ok(Some(Some(PhoneNumber::parse(&s).map_err(|e| {
                    ApiError::bad_request(format!("{k}: {}", e.message))
                })?)))
            }
        }
    }
    pub fn uuid<T: std::str::FromStr<Err = ParseError> + From<uuid::Uuid>>(
        &self,
        k: &str,
    ) -> ApiResult<Option<Option<T>>> {
        match self.string(k, 64)? {
            None => Ok(None),
            Some(None) => Ok(Some(None)),
            Some(Some(s)) => Ok(Some(Some(
                uuid::Uuid::parse_str(s.trim())
                    .map(T::from)
                    .map_err(|_| ApiError::bad_request(format!("{k} must be a UUID, got {s:?}")))?,
            ))),
        }
    }
}

fn required<T>(v: Option<T>, k: &str, what: &str) -> ApiResult<T> {
    v.ok_or_else(|| ApiError::bad_request(format!("{k} is required: {what}")))
}

/// Page parameters of a resource list: `limit` (1..=100, default 10) and `cursor`.
fn page_params(q: &QueryMap) -> ApiResult<(Option<i64>, u32)> {
    let after = q.opt("cursor", decode_seq_cursor)?;
    let limit = q
        .opt("limit", |v| parse_limit("limit", v, 100))?
        .unwrap_or(10);
    Ok((after, limit))
}

fn page_json<T: Serialize>(
    key: &str,
    page: ResourcePage<T>,
    render: impl Fn(&T) -> Value,
) -> Response {
    let items: Vec<Value> = page.items.iter().map(render).collect();
    Json(json!({ "num_items": items.len(), "cursor": page.next_after.map(encode_seq_cursor), key: items })).into_response()
}

fn to_json<T: Serialize>(t: &T) -> Value {
    serde_json::to_value(t).unwrap_or(Value::Null)
}

fn created(v: Value) -> Response {
    (StatusCode::CREATED, Json(v)).into_response()
}

fn deleted<T: std::fmt::Display>(id: T) -> Response {
    Json(json!({ "id": id.to_string(), "deleted": true })).into_response()
}

// ----- agents -----

const AGENT_FIELDS: &[&str] = &[
    "name",
    "system_prompt",
    "initial_message",
    "voice",
    "language",
    "llm_model",
    "webhook_url",
    "max_duration_seconds",
    "ring_timeout_seconds",
    "settings",
];

pub fn agent_patch(o: &Obj) -> ApiResult<AgentPatch> {
    Ok(AgentPatch {
        name: o.name("name")?,
        system_prompt: o.string("system_prompt", 100_000)?,
        initial_message: o.string("initial_message", 10_000)?,
        voice: o.string("voice", 200)?,
        language: o.string("language", 35)?,
        llm_model: o.string("llm_model", 200)?,
        webhook_url: match o.string("webhook_url", 2048)? {
            Some(Some(u)) if !(u.starts_with("http://") || u.starts_with("https://")) => {
                return Err(ApiError::bad_request(
                    "webhook_url must be an http:// or https:// URL",
                ))
            }
            other => other,
        },
        max_duration_seconds: o.int("max_duration_seconds", 1, 86_400)?,
        ring_timeout_seconds: o.int("ring_timeout_seconds", 1, 300)?,
        settings: match o.object("settings")? {
            Some(Some(v)) => {
                switchboard_domain::check_agent_settings(&v)
                    .map_err(|e| ApiError::bad_request(e.message))?;
                Some(Some(v))
            }
            other => other,
        },
    })
}

fn parse_agent_id(s: &str) -> ApiResult<AgentId> {
    Ok(AgentId::parse_param("agent id", s)?)
}

#[utoipa::path(
    get, path = "/v1/agents", tag = "agents", summary = "List agents",
    params(crate::openapi::PageQuery),
    responses(
        (status = 200, description = "A page, oldest first", body = crate::openapi::AgentList),
        (status = 400, description = "Invalid limit or cursor", body = crate::openapi::ErrorBody)
    )
)]
pub(crate) async fn list_agents(
    State(s): State<AppState>,
    Org(org): Org,
    q: QueryMap,
) -> ApiResult<Response> {
    let (after, limit) = page_params(&q)?;
    Ok(page_json(
        "agents",
        s.store.list_agents(org, after, limit).await?,
        to_json,
    ))
}

#[utoipa::path(
    post, path = "/v1/agents", tag = "agents", summary = "Create a agent",
    request_body(content = crate::openapi::AgentInput, content_type = "application/json"),
    responses(
        (status = 201, description = "Created", body = crate::openapi::Agent),
        (status = 400, description = "Invalid or missing field", body = crate::openapi::ErrorBody),
        (status = 409, description = "Conflicts with an existing one", body = crate::openapi::ErrorBody),
        (status = 415, description = "Content-Type is not JSON", body = crate::openapi::ErrorBody),
        (status = 422, description = "A referenced id does not exist", body = crate::openapi::ErrorBody)
    )
)]
pub(crate) async fn create_agent(
    State(s): State<AppState>,
    Org(org): Org,
    b: JsonBody<Value>,
) -> ApiResult<Response> {
    let o = Obj::new(b.value, AGENT_FIELDS)?;
    let p = agent_patch(&o)?;
    required(p.name.as_ref(), "name", "the agent's unique name")?;
    Ok(created(to_json(&s.store.create_agent(org, p).await?)))
}

#[utoipa::path(
    get, path = "/v1/agents/{id}", tag = "agents", summary = "Get a agent",
    params(("id" = uuid::Uuid, Path, description = "The agent's id")),
    responses(
        (status = 200, description = "The agent", body = crate::openapi::Agent),
        (status = 400, description = "Invalid id", body = crate::openapi::ErrorBody),
        (status = 404, description = "Not found", body = crate::openapi::ErrorBody)
    )
)]
pub(crate) async fn get_agent(
    State(s): State<AppState>,
    Org(org): Org,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let a = s
        .store
        .get_agent(org, parse_agent_id(&id)?)
        .await
        .map_err(|e| ApiError::from_store(e, "Agent"))?;
    Ok(Json(to_json(&a)).into_response())
}

#[utoipa::path(
    patch, path = "/v1/agents/{id}", tag = "agents", summary = "Update a agent",
    params(("id" = uuid::Uuid, Path, description = "The agent's id")),
    request_body(content = crate::openapi::AgentInput, content_type = "application/json"),
    responses(
        (status = 200, description = "Updated; absent fields are kept, null clears", body = crate::openapi::Agent),
        (status = 400, description = "Invalid field", body = crate::openapi::ErrorBody),
        (status = 404, description = "Not found", body = crate::openapi::ErrorBody),
        (status = 409, description = "Conflicts with an existing one", body = crate::openapi::ErrorBody),
        (status = 422, description = "A referenced id does not exist", body = crate::openapi::ErrorBody)
    )
)]
pub(crate) async fn update_agent(
    State(s): State<AppState>,
    Org(org): Org,
    Path(id): Path<String>,
    b: JsonBody<Value>,
) -> ApiResult<Response> {
    let id = parse_agent_id(&id)?;
    let p = agent_patch(&Obj::new(b.value, AGENT_FIELDS)?)?;
    let a = s
        .store
        .update_agent(org, id, p)
        .await
        .map_err(|e| ApiError::from_store(e, "Agent"))?;
    Ok(Json(to_json(&a)).into_response())
}

#[utoipa::path(
    delete, path = "/v1/agents/{id}", tag = "agents", summary = "Delete a agent",
    params(("id" = uuid::Uuid, Path, description = "The agent's id")),
    responses(
        (status = 200, description = "Deleted", body = crate::openapi::Deleted),
        (status = 400, description = "Invalid id", body = crate::openapi::ErrorBody),
        (status = 404, description = "Not found", body = crate::openapi::ErrorBody)
    )
)]
pub(crate) async fn delete_agent(
    State(s): State<AppState>,
    Org(org): Org,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = parse_agent_id(&id)?;
    s.store
        .delete_agent(org, id)
        .await
        .map_err(|e| ApiError::from_store(e, "Agent"))?;
    Ok(deleted(id))
}

/// Flyflow `upsert_agent`: the client sends every parameter, unset ones as null, so null
/// means "not given" here. Its own names (`voice_id`, `webhook`) map onto ours; its other
/// options (tools, filler words, endpointing...) are kept in `settings`.
#[utoipa::path(
    post, path = "/v1/agent", tag = "agents", summary = "Create or update an agent by name (Flyflow upsert_agent)",
    request_body(content = crate::openapi::FlyflowAgentInput, content_type = "application/json"),
    responses(
        (status = 200, description = "Updated (an agent with this name existed)", body = crate::openapi::Agent),
        (status = 201, description = "Created", body = crate::openapi::Agent),
        (status = 400, description = "Invalid field", body = crate::openapi::ErrorBody),
        (status = 415, description = "Content-Type is not JSON", body = crate::openapi::ErrorBody)
    )
)]
pub(crate) async fn flyflow_upsert_agent(
    State(s): State<AppState>,
    Org(org): Org,
    b: JsonBody<Value>,
) -> ApiResult<Response> {
    let Value::Object(mut m) = b.value else {
        return Err(ApiError::bad_request("request body must be a JSON object"));
    };
    m.retain(|_, v| !v.is_null());
    for (theirs, ours) in [("voice_id", "voice"), ("webhook", "webhook_url")] {
        if let Some(v) = m.remove(theirs) {
            m.insert(ours.into(), v);
        }
    }
    let mut settings = Map::new();
    let keys: Vec<String> = m
        .keys()
        .filter(|k| !AGENT_FIELDS.contains(&k.as_str()))
        .cloned()
        .collect();
    for k in keys {
        if let Some(v) = m.remove(&k) {
            settings.insert(k, v);
        }
    }
    if !settings.is_empty() {
        m.insert("settings".into(), Value::Object(settings));
    }
    let o = Obj::new(Value::Object(m), AGENT_FIELDS)?;
    let p = agent_patch(&o)?;
    required(
        p.name.as_ref(),
        "name",
        "the agent's name (agents are upserted by name)",
    )?;
    let (agent, is_new) = s.store.upsert_agent_by_name(org, p).await?;
    let status = if is_new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(to_json(&agent))).into_response())
}

fn query_id(q: &QueryMap) -> ApiResult<AgentId> {
    parse_agent_id(
        q.get("id")
            .ok_or_else(|| ApiError::bad_request("id is required: ?id=<agent id>"))?,
    )
}

#[utoipa::path(
    get, path = "/v1/agent", tag = "agents", summary = "Get an agent by ?id= (Flyflow)",
    params(crate::openapi::AgentIdQuery),
    responses(
        (status = 200, description = "The agent", body = crate::openapi::Agent),
        (status = 400, description = "Missing or invalid id", body = crate::openapi::ErrorBody),
        (status = 404, description = "Agent not found", body = crate::openapi::ErrorBody)
    )
)]
pub(crate) async fn flyflow_get_agent(
    State(s): State<AppState>,
    Org(org): Org,
    q: QueryMap,
) -> ApiResult<Response> {
    let a = s
        .store
        .get_agent(org, query_id(&q)?)
        .await
        .map_err(|e| ApiError::from_store(e, "Agent"))?;
    Ok(Json(to_json(&a)).into_response())
}

#[utoipa::path(
    delete, path = "/v1/agent", tag = "agents", summary = "Delete an agent by ?id= (Flyflow)",
    params(crate::openapi::AgentIdQuery),
    responses(
        (status = 200, description = "Deleted", body = crate::openapi::Deleted),
        (status = 400, description = "Missing or invalid id", body = crate::openapi::ErrorBody),
        (status = 404, description = "Agent not found", body = crate::openapi::ErrorBody)
    )
)]
pub(crate) async fn flyflow_delete_agent(
    State(s): State<AppState>,
    Org(org): Org,
    q: QueryMap,
) -> ApiResult<Response> {
    let id = query_id(&q)?;
    s.store
        .delete_agent(org, id)
        .await
        .map_err(|e| ApiError::from_store(e, "Agent"))?;
    Ok(deleted(id))
}

// ----- phone numbers -----

const NUMBER_FIELDS: &[&str] = &["phone_number", "label", "agent_id", "trunk_id"];

fn number_patch(o: &Obj) -> ApiResult<OwnedNumberPatch> {
    Ok(OwnedNumberPatch {
        phone_number: match o.phone("phone_number")? {
            Some(None) => return Err(ApiError::bad_request("phone_number must not be null")),
            other => other.flatten(),
        },
        label: o.string("label", 200)?,
        agent_id: o.uuid("agent_id")?,
        trunk_id: o.uuid("trunk_id")?,
    })
}

/// Store conflicts on references (an agent or trunk id that does not exist here) are the
/// client's input error.
fn ref_error(e: switchboard_store::StoreError, what: &str) -> ApiError {
    match e {
        switchboard_store::StoreError::Conflict(m) if m.ends_with("does not exist") => {
            ApiError::unprocessable(m)
        }
        e => ApiError::from_store(e, what),
    }
}

#[utoipa::path(
    get, path = "/v1/phone-numbers", tag = "phone-numbers", summary = "List phone numbers",
    params(crate::openapi::PageQuery),
    responses(
        (status = 200, description = "A page, oldest first", body = crate::openapi::PhoneNumberList),
        (status = 400, description = "Invalid limit or cursor", body = crate::openapi::ErrorBody)
    )
)]
pub(crate) async fn list_numbers(
    State(s): State<AppState>,
    Org(org): Org,
    q: QueryMap,
) -> ApiResult<Response> {
    let (after, limit) = page_params(&q)?;
    Ok(page_json(
        "phone_numbers",
        s.store.list_numbers(org, after, limit).await?,
        to_json,
    ))
}

#[utoipa::path(
    post, path = "/v1/phone-numbers", tag = "phone-numbers", summary = "Create a phone number",
    request_body(content = crate::openapi::PhoneNumberInput, content_type = "application/json"),
    responses(
        (status = 201, description = "Created", body = crate::openapi::PhoneNumber),
        (status = 400, description = "Invalid or missing field", body = crate::openapi::ErrorBody),
        (status = 409, description = "Conflicts with an existing one", body = crate::openapi::ErrorBody),
        (status = 415, description = "Content-Type is not JSON", body = crate::openapi::ErrorBody),
        (status = 422, description = "A referenced id does not exist", body = crate::openapi::ErrorBody)
    )
)]
pub(crate) async fn create_number(
    State(s): State<AppState>,
    Org(org): Org,
    b: JsonBody<Value>,
) -> ApiResult<Response> {
    let p = number_patch(&Obj::new(b.value, NUMBER_FIELDS)?)?;
    required(
        p.phone_number.as_ref(),
        "phone_number",
        "the E.164 number, e.g. +14155551234",
    )?;
    Ok(created(to_json(
        &s.store
            .create_number(org, p)
            .await
            .map_err(|e| ref_error(e, "Phone number"))?,
    )))
}

fn parse_number_id(s: &str) -> ApiResult<PhoneNumberId> {
    Ok(PhoneNumberId::parse_param("phone number id", s)?)
}

#[utoipa::path(
    get, path = "/v1/phone-numbers/{id}", tag = "phone-numbers", summary = "Get a phone number",
    params(("id" = uuid::Uuid, Path, description = "The phone number's id")),
    responses(
        (status = 200, description = "The phone number", body = crate::openapi::PhoneNumber),
        (status = 400, description = "Invalid id", body = crate::openapi::ErrorBody),
        (status = 404, description = "Not found", body = crate::openapi::ErrorBody)
    )
)]
pub(crate) async fn get_number(
    State(s): State<AppState>,
    Org(org): Org,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let n = s
        .store
        .get_number(org, parse_number_id(&id)?)
        .await
        .map_err(|e| ApiError::from_store(e, "Phone number"))?;
    Ok(Json(to_json(&n)).into_response())
}

#[utoipa::path(
    patch, path = "/v1/phone-numbers/{id}", tag = "phone-numbers", summary = "Update a phone number",
    params(("id" = uuid::Uuid, Path, description = "The phone number's id")),
    request_body(content = crate::openapi::PhoneNumberInput, content_type = "application/json"),
    responses(
        (status = 200, description = "Updated; absent fields are kept, null clears", body = crate::openapi::PhoneNumber),
        (status = 400, description = "Invalid field", body = crate::openapi::ErrorBody),
        (status = 404, description = "Not found", body = crate::openapi::ErrorBody),
        (status = 409, description = "Conflicts with an existing one", body = crate::openapi::ErrorBody),
        (status = 422, description = "A referenced id does not exist", body = crate::openapi::ErrorBody)
    )
)]
pub(crate) async fn update_number(
    State(s): State<AppState>,
    Org(org): Org,
    Path(id): Path<String>,
    b: JsonBody<Value>,
) -> ApiResult<Response> {
    let id = parse_number_id(&id)?;
    let p = number_patch(&Obj::new(b.value, NUMBER_FIELDS)?)?;
    let n = s
        .store
        .update_number(org, id, p)
        .await
        .map_err(|e| ref_error(e, "Phone number"))?;
    Ok(Json(to_json(&n)).into_response())
}

#[utoipa::path(
    delete, path = "/v1/phone-numbers/{id}", tag = "phone-numbers", summary = "Delete a phone number",
    params(("id" = uuid::Uuid, Path, description = "The phone number's id")),
    responses(
        (status = 200, description = "Deleted", body = crate::openapi::Deleted),
        (status = 400, description = "Invalid id", body = crate::openapi::ErrorBody),
        (status = 404, description = "Not found", body = crate::openapi::ErrorBody)
    )
)]
pub(crate) async fn delete_number(
    State(s): State<AppState>,
    Org(org): Org,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = parse_number_id(&id)?;
    s.store
        .delete_number(org, id)
        .await
        .map_err(|e| ApiError::from_store(e, "Phone number"))?;
    Ok(deleted(id))
}

// ----- SIP trunks -----

const TRUNK_FIELDS: &[&str] = &[
    "name",
    "host",
    "port",
    "transport",
    "username",
    "password",
    "default_caller_id",
    "is_default",
    "register",
    "inbound_sources",
];

fn trunk_patch(o: &Obj) -> ApiResult<TrunkPatch> {
    let host = match o.string("host", 253)? {
        Some(None) => return Err(ApiError::bad_request("host must not be null")),
        Some(Some(h)) => {
            let h = h.trim().to_string();
            if h.is_empty()
                || !h
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
            {
                return Err(ApiError::bad_request(
                    "host must be a hostname or IP address",
                ));
            }
            Some(h)
        }
        None => None,
    };
    let transport = match o.string("transport", 8)? {
        Some(Some(t)) => Some(Transport::parse_param("transport", &t)?),
        Some(None) => return Err(ApiError::bad_request("transport must be one of udp, tcp")),
        None => None,
    };
    let inbound_sources = match o.0.get("inbound_sources") {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) => {
            let mut out = Vec::new();
            for v in a {
                let ip = v
                    .as_str()
                    .and_then(|s| s.trim().parse::<std::net::IpAddr>().ok())
                    .ok_or_else(|| {
                        ApiError::bad_request("inbound_sources must be a list of IP addresses")
                    })?;
                out.push(ip.to_string());
            }
            Some(out)
        }
        Some(_) => {
            return Err(ApiError::bad_request(
                "inbound_sources must be a list of IP addresses",
            ))
        }
    };
    Ok(TrunkPatch {
        name: o.name("name")?,
        host,
        port: o.int("port", 1, 65535)?.map(|p| p.unwrap_or(5060) as u16),
        transport,
        username: o.string("username", 200)?,
        password: o.string("password", 200)?,
        default_caller_id: o.phone("default_caller_id")?,
        is_default: o.boolean("is_default")?,
        register: o.boolean("register")?,
        inbound_sources,
    })
}

/// A trunk as shown to clients: never the password, only whether one is set; and the live
/// state of its registration when it registers.
fn trunk_json(s: &AppState, t: &Trunk) -> Value {
    let mut v = to_json(t);
    if let Value::Object(m) = &mut v {
        m.insert("has_password".into(), Value::Bool(t.has_password()));
        let reg = s.control.as_ref().map(|c| {
            c.trunk_registration(t.id).unwrap_or_else(|| {
                // Just created or changed: the engine starts it in the background.
                let pending = t.register && t.username.is_some() && t.has_password();
                if pending {
                    json!({"state": "registering"})
                } else {
                    Value::Null
                }
            })
        });
        m.insert("registration".into(), reg.unwrap_or(Value::Null));
    }
    v
}

fn trunks_changed(s: &AppState) {
    if let Some(c) = &s.control {
        c.trunks_changed();
    }
}

fn parse_trunk_id(s: &str) -> ApiResult<TrunkId> {
    Ok(TrunkId::parse_param("trunk id", s)?)
}

#[utoipa::path(
    get, path = "/v1/sip-trunks", tag = "sip-trunks", summary = "List SIP trunks",
    params(crate::openapi::PageQuery),
    responses(
        (status = 200, description = "A page, oldest first", body = crate::openapi::SipTrunkList),
        (status = 400, description = "Invalid limit or cursor", body = crate::openapi::ErrorBody)
    )
)]
pub(crate) async fn list_trunks(
    State(s): State<AppState>,
    Org(org): Org,
    q: QueryMap,
) -> ApiResult<Response> {
    let (after, limit) = page_params(&q)?;
    Ok(page_json(
        "sip_trunks",
        s.store.list_trunks(org, after, limit).await?,
        |t| trunk_json(&s, t),
    ))
}

#[utoipa::path(
    post, path = "/v1/sip-trunks", tag = "sip-trunks", summary = "Create a SIP trunk",
    request_body(content = crate::openapi::SipTrunkInput, content_type = "application/json"),
    responses(
        (status = 201, description = "Created", body = crate::openapi::SipTrunk),
        (status = 400, description = "Invalid or missing field", body = crate::openapi::ErrorBody),
        (status = 409, description = "Conflicts with an existing one", body = crate::openapi::ErrorBody),
        (status = 415, description = "Content-Type is not JSON", body = crate::openapi::ErrorBody),
        (status = 422, description = "A referenced id does not exist", body = crate::openapi::ErrorBody)
    )
)]
pub(crate) async fn create_trunk(
    State(s): State<AppState>,
    Org(org): Org,
    b: JsonBody<Value>,
) -> ApiResult<Response> {
    let p = trunk_patch(&Obj::new(b.value, TRUNK_FIELDS)?)?;
    required(p.name.as_ref(), "name", "a name for the trunk")?;
    required(p.host.as_ref(), "host", "the trunk's SIP host name or IP")?;
    let t = s.store.create_trunk(org, p).await?;
    trunks_changed(&s);
    Ok(created(trunk_json(&s, &t)))
}

#[utoipa::path(
    get, path = "/v1/sip-trunks/{id}", tag = "sip-trunks", summary = "Get a SIP trunk",
    params(("id" = uuid::Uuid, Path, description = "The SIP trunk's id")),
    responses(
        (status = 200, description = "The SIP trunk", body = crate::openapi::SipTrunk),
        (status = 400, description = "Invalid id", body = crate::openapi::ErrorBody),
        (status = 404, description = "Not found", body = crate::openapi::ErrorBody)
    )
)]
pub(crate) async fn get_trunk(
    State(s): State<AppState>,
    Org(org): Org,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let t = s
        .store
        .get_trunk(org, parse_trunk_id(&id)?)
        .await
        .map_err(|e| ApiError::from_store(e, "SIP trunk"))?;
    Ok(Json(trunk_json(&s, &t)).into_response())
}

#[utoipa::path(
    patch, path = "/v1/sip-trunks/{id}", tag = "sip-trunks", summary = "Update a SIP trunk",
    params(("id" = uuid::Uuid, Path, description = "The SIP trunk's id")),
    request_body(content = crate::openapi::SipTrunkInput, content_type = "application/json"),
    responses(
        (status = 200, description = "Updated; absent fields are kept, null clears", body = crate::openapi::SipTrunk),
        (status = 400, description = "Invalid field", body = crate::openapi::ErrorBody),
        (status = 404, description = "Not found", body = crate::openapi::ErrorBody),
        (status = 409, description = "Conflicts with an existing one", body = crate::openapi::ErrorBody),
        (status = 422, description = "A referenced id does not exist", body = crate::openapi::ErrorBody)
    )
)]
pub(crate) async fn update_trunk(
    State(s): State<AppState>,
    Org(org): Org,
    Path(id): Path<String>,
    b: JsonBody<Value>,
) -> ApiResult<Response> {
    let id = parse_trunk_id(&id)?;
    let p = trunk_patch(&Obj::new(b.value, TRUNK_FIELDS)?)?;
    let t = s
        .store
        .update_trunk(org, id, p)
        .await
        .map_err(|e| ApiError::from_store(e, "SIP trunk"))?;
    trunks_changed(&s);
    Ok(Json(trunk_json(&s, &t)).into_response())
}

#[utoipa::path(
    delete, path = "/v1/sip-trunks/{id}", tag = "sip-trunks", summary = "Delete a SIP trunk",
    params(("id" = uuid::Uuid, Path, description = "The SIP trunk's id")),
    responses(
        (status = 200, description = "Deleted", body = crate::openapi::Deleted),
        (status = 400, description = "Invalid id", body = crate::openapi::ErrorBody),
        (status = 404, description = "Not found", body = crate::openapi::ErrorBody)
    )
)]
pub(crate) async fn delete_trunk(
    State(s): State<AppState>,
    Org(org): Org,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = parse_trunk_id(&id)?;
    s.store
        .delete_trunk(org, id)
        .await
        .map_err(|e| ApiError::from_store(e, "SIP trunk"))?;
    trunks_changed(&s);
    Ok(deleted(id))
}

// ----- contacts -----

const CONTACT_FIELDS: &[&str] = &[
    "identifier",
    "contact_type",
    "first_name",
    "last_name",
    "email",
];

fn contact_patch(o: &Obj) -> ApiResult<ContactPatch> {
    let email = match o.string("email", 320)? {
        Some(Some(e)) if !e.contains('@') || e.contains(char::is_whitespace) => {
            return Err(ApiError::bad_request(
                "email must be an address like name@example.com",
            ))
        }
        other => other,
    };
    Ok(ContactPatch {
        identifier: match o.phone("identifier")? {
            Some(None) => return Err(ApiError::bad_request("identifier must not be null")),
            other => other.flatten(),
        },
        contact_type: o.name("contact_type")?,
        first_name: o.string("first_name", 200)?,
        last_name: o.string("last_name", 200)?,
        email,
    })
}

fn parse_contact_id(s: &str) -> ApiResult<ContactId> {
    Ok(ContactId::parse_param("contact id", s)?)
}

#[utoipa::path(
    get, path = "/v1/contacts", tag = "contacts", summary = "List contacts",
    params(crate::openapi::PageQuery),
    responses(
        (status = 200, description = "A page, oldest first", body = crate::openapi::ContactList),
        (status = 400, description = "Invalid limit or cursor", body = crate::openapi::ErrorBody)
    )
)]
pub(crate) async fn list_contacts(
    State(s): State<AppState>,
    Org(org): Org,
    q: QueryMap,
) -> ApiResult<Response> {
    let (after, limit) = page_params(&q)?;
    Ok(page_json(
        "contacts",
        s.store.list_contacts(org, after, limit).await?,
        to_json,
    ))
}

#[utoipa::path(
    post, path = "/v1/contacts", tag = "contacts", summary = "Create a contact",
    request_body(content = crate::openapi::ContactInput, content_type = "application/json"),
    responses(
        (status = 201, description = "Created", body = crate::openapi::Contact),
        (status = 400, description = "Invalid or missing field", body = crate::openapi::ErrorBody),
        (status = 409, description = "Conflicts with an existing one", body = crate::openapi::ErrorBody),
        (status = 415, description = "Content-Type is not JSON", body = crate::openapi::ErrorBody),
        (status = 422, description = "A referenced id does not exist", body = crate::openapi::ErrorBody)
    )
)]
pub(crate) async fn create_contact(
    State(s): State<AppState>,
    Org(org): Org,
    b: JsonBody<Value>,
) -> ApiResult<Response> {
    let p = contact_patch(&Obj::new(b.value, CONTACT_FIELDS)?)?;
    required(
        p.identifier.as_ref(),
        "identifier",
        "the contact's E.164 number",
    )?;
    Ok(created(to_json(&s.store.create_contact(org, p).await?)))
}

#[utoipa::path(
    get, path = "/v1/contacts/{id}", tag = "contacts", summary = "Get a contact",
    params(("id" = uuid::Uuid, Path, description = "The contact's id")),
    responses(
        (status = 200, description = "The contact", body = crate::openapi::Contact),
        (status = 400, description = "Invalid id", body = crate::openapi::ErrorBody),
        (status = 404, description = "Not found", body = crate::openapi::ErrorBody)
    )
)]
pub(crate) async fn get_contact(
    State(s): State<AppState>,
    Org(org): Org,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let c = s
        .store
        .get_contact(org, parse_contact_id(&id)?)
        .await
        .map_err(|e| ApiError::from_store(e, "Contact"))?;
    Ok(Json(to_json(&c)).into_response())
}

#[utoipa::path(
    patch, path = "/v1/contacts/{id}", tag = "contacts", summary = "Update a contact",
    params(("id" = uuid::Uuid, Path, description = "The contact's id")),
    request_body(content = crate::openapi::ContactInput, content_type = "application/json"),
    responses(
        (status = 200, description = "Updated; absent fields are kept, null clears", body = crate::openapi::Contact),
        (status = 400, description = "Invalid field", body = crate::openapi::ErrorBody),
        (status = 404, description = "Not found", body = crate::openapi::ErrorBody),
        (status = 409, description = "Conflicts with an existing one", body = crate::openapi::ErrorBody),
        (status = 422, description = "A referenced id does not exist", body = crate::openapi::ErrorBody)
    )
)]
pub(crate) async fn update_contact(
    State(s): State<AppState>,
    Org(org): Org,
    Path(id): Path<String>,
    b: JsonBody<Value>,
) -> ApiResult<Response> {
    let id = parse_contact_id(&id)?;
    let p = contact_patch(&Obj::new(b.value, CONTACT_FIELDS)?)?;
    let c = s
        .store
        .update_contact(org, id, p)
        .await
        .map_err(|e| ApiError::from_store(e, "Contact"))?;
    Ok(Json(to_json(&c)).into_response())
}

#[utoipa::path(
    delete, path = "/v1/contacts/{id}", tag = "contacts", summary = "Delete a contact",
    params(("id" = uuid::Uuid, Path, description = "The contact's id")),
    responses(
        (status = 200, description = "Deleted", body = crate::openapi::Deleted),
        (status = 400, description = "Invalid id", body = crate::openapi::ErrorBody),
        (status = 404, description = "Not found", body = crate::openapi::ErrorBody)
    )
)]
pub(crate) async fn delete_contact(
    State(s): State<AppState>,
    Org(org): Org,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = parse_contact_id(&id)?;
    s.store
        .delete_contact(org, id)
        .await
        .map_err(|e| ApiError::from_store(e, "Contact"))?;
    Ok(deleted(id))
}

// ----- campaigns -----

const CAMPAIGN_FIELDS: &[&str] = &["name", "agent_id", "status"];

fn campaign_patch(o: &Obj) -> ApiResult<CampaignPatch> {
    Ok(CampaignPatch {
        name: o.name("name")?,
        agent_id: o.uuid("agent_id")?,
        status: match o.string("status", 32)? {
            Some(Some(v)) => Some(CampaignStatus::parse_param("status", &v)?),
            Some(None) => {
                return Err(ApiError::bad_request(
                    "status must be one of draft, active, paused, completed",
                ))
            }
            None => None,
        },
    })
}

fn parse_campaign_id(s: &str) -> ApiResult<CampaignId> {
    Ok(CampaignId::parse_param("campaign id", s)?)
}

#[utoipa::path(
    get, path = "/v1/campaigns", tag = "campaigns", summary = "List campaigns",
    params(crate::openapi::PageQuery),
    responses(
        (status = 200, description = "A page, oldest first", body = crate::openapi::CampaignList),
        (status = 400, description = "Invalid limit or cursor", body = crate::openapi::ErrorBody)
    )
)]
pub(crate) async fn list_campaigns(
    State(s): State<AppState>,
    Org(org): Org,
    q: QueryMap,
) -> ApiResult<Response> {
    let (after, limit) = page_params(&q)?;
    Ok(page_json(
        "campaigns",
        s.store.list_campaigns(org, after, limit).await?,
        to_json,
    ))
}

#[utoipa::path(
    post, path = "/v1/campaigns", tag = "campaigns", summary = "Create a campaign",
    request_body(content = crate::openapi::CampaignInput, content_type = "application/json"),
    responses(
        (status = 201, description = "Created", body = crate::openapi::Campaign),
        (status = 400, description = "Invalid or missing field", body = crate::openapi::ErrorBody),
        (status = 409, description = "Conflicts with an existing one", body = crate::openapi::ErrorBody),
        (status = 415, description = "Content-Type is not JSON", body = crate::openapi::ErrorBody),
        (status = 422, description = "A referenced id does not exist", body = crate::openapi::ErrorBody)
    )
)]
pub(crate) async fn create_campaign(
    State(s): State<AppState>,
    Org(org): Org,
    b: JsonBody<Value>,
) -> ApiResult<Response> {
    let p = campaign_patch(&Obj::new(b.value, CAMPAIGN_FIELDS)?)?;
    required(p.name.as_ref(), "name", "the campaign's name")?;
    Ok(created(to_json(
        &s.store
            .create_campaign(org, p)
            .await
            .map_err(|e| ref_error(e, "Campaign"))?,
    )))
}

#[utoipa::path(
    get, path = "/v1/campaigns/{id}", tag = "campaigns", summary = "Get a campaign",
    params(("id" = uuid::Uuid, Path, description = "The campaign's id")),
    responses(
        (status = 200, description = "The campaign", body = crate::openapi::Campaign),
        (status = 400, description = "Invalid id", body = crate::openapi::ErrorBody),
        (status = 404, description = "Not found", body = crate::openapi::ErrorBody)
    )
)]
pub(crate) async fn get_campaign(
    State(s): State<AppState>,
    Org(org): Org,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let c = s
        .store
        .get_campaign(org, parse_campaign_id(&id)?)
        .await
        .map_err(|e| ApiError::from_store(e, "Campaign"))?;
    Ok(Json(to_json(&c)).into_response())
}

#[utoipa::path(
    patch, path = "/v1/campaigns/{id}", tag = "campaigns", summary = "Update a campaign",
    params(("id" = uuid::Uuid, Path, description = "The campaign's id")),
    request_body(content = crate::openapi::CampaignInput, content_type = "application/json"),
    responses(
        (status = 200, description = "Updated; absent fields are kept, null clears", body = crate::openapi::Campaign),
        (status = 400, description = "Invalid field", body = crate::openapi::ErrorBody),
        (status = 404, description = "Not found", body = crate::openapi::ErrorBody),
        (status = 409, description = "Conflicts with an existing one", body = crate::openapi::ErrorBody),
        (status = 422, description = "A referenced id does not exist", body = crate::openapi::ErrorBody)
    )
)]
pub(crate) async fn update_campaign(
    State(s): State<AppState>,
    Org(org): Org,
    Path(id): Path<String>,
    b: JsonBody<Value>,
) -> ApiResult<Response> {
    let id = parse_campaign_id(&id)?;
    let p = campaign_patch(&Obj::new(b.value, CAMPAIGN_FIELDS)?)?;
    let c = s
        .store
        .update_campaign(org, id, p)
        .await
        .map_err(|e| ref_error(e, "Campaign"))?;
    Ok(Json(to_json(&c)).into_response())
}

#[utoipa::path(
    delete, path = "/v1/campaigns/{id}", tag = "campaigns", summary = "Delete a campaign",
    params(("id" = uuid::Uuid, Path, description = "The campaign's id")),
    responses(
        (status = 200, description = "Deleted", body = crate::openapi::Deleted),
        (status = 400, description = "Invalid id", body = crate::openapi::ErrorBody),
        (status = 404, description = "Not found", body = crate::openapi::ErrorBody)
    )
)]
pub(crate) async fn delete_campaign(
    State(s): State<AppState>,
    Org(org): Org,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = parse_campaign_id(&id)?;
    s.store
        .delete_campaign(org, id)
        .await
        .map_err(|e| ApiError::from_store(e, "Campaign"))?;
    Ok(deleted(id))
}
