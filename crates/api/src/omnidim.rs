//! OmniDimension dialect (001): `/api/v1/...` with a Bearer key, as the published
//! `omnidimension` Python client calls it. Agents and phone numbers are addressed by their
//! stable integer numbers (`Agent::number`, `OwnedNumber::number_id`); call logs by the
//! call's UUID. Pages are 1-based (`pageno`, `pagesize`, default 30).
//!
//! Dispatch goes through `dispatch::dispatch`, listing through `store.list_calls`: this module
//! only translates names and shapes. Bodies are documented in `conformance/DIALECTS.md`.
//!
//! Errors are `{"error": "<snake_case reason>", "error_description": "<message>"}`, which is
//! what the client reads (`error_description`, then `error`).

use crate::auth::Org;
use crate::dispatch::{self, AgentRef, DispatchRequest};
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, QueryMap};
use crate::resource::{json_int, Obj};
use crate::resources::agent_patch;
use crate::v1::base_url;
use crate::views::recording_url;
use crate::AppState;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use switchboard_domain::*;
use switchboard_store::StoreError;

const DEFAULT_PAGE_SIZE: u32 = 30;
const MAX_PAGE_SIZE: u32 = 100;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/calls/dispatch", post(dispatch_call))
        .route("/api/v1/calls/logs", get(call_logs))
        .route("/api/v1/calls/logs/{id}", get(call_log))
        .route("/api/v1/agents", get(list_agents))
        .route("/api/v1/agents/create", post(create_agent))
        .route("/api/v1/agents/{id}", get(get_agent))
        .route("/api/v1/phone_number/list", get(list_numbers))
}

// ----- paging -----

struct PageNo {
    pageno: u64,
    pagesize: u32,
}

impl PageNo {
    fn parse(q: &QueryMap) -> ApiResult<PageNo> {
        let pageno = match q.get("pageno") {
            None => 1,
            // At most i64::MAX, as the document's int64 says.
            Some(v) => match v.trim().parse::<i64>() {
                Ok(n) if n >= 1 => n as u64,
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "pageno must be an integer of 1 or more, got {:?}",
                        clip(v)
                    )))
                }
            },
        };
        let pagesize = q
            .opt("pagesize", |v| parse_limit("pagesize", v, MAX_PAGE_SIZE))?
            .unwrap_or(DEFAULT_PAGE_SIZE);
        Ok(PageNo { pageno, pagesize })
    }
    fn offset(&self) -> u64 {
        (self.pageno - 1).saturating_mul(self.pagesize as u64)
    }
    /// The paging facts every OmniDimension list carries beside its items.
    fn facts(&self, total: i64, m: &mut Map<String, Value>) {
        let pages = if total <= 0 {
            0
        } else {
            (total + self.pagesize as i64 - 1) / self.pagesize as i64
        };
        m.insert("total_records".into(), json!(total));
        m.insert("pageno".into(), json!(self.pageno));
        m.insert("pagesize".into(), json!(self.pagesize));
        m.insert("total_pages".into(), json!(pages));
    }
}

fn clip(v: &str) -> String {
    v.chars().take(64).collect()
}

fn parse_int_id(what: &str, s: &str) -> ApiResult<i64> {
    s.trim()
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "{what} must be a positive integer, got {:?}",
                clip(s)
            ))
        })
}

// ----- calls -----

/// A call as an OmniDimension call log. The same object in the list and alone.
pub fn call_log_json(call: &Call, base: &str) -> Value {
    let d = call.details.as_ref();
    let to_number = match call.call_type {
        CallType::Outbound => Some(&call.client_number),
        CallType::Inbound => call.agent_phone_number.as_ref(),
    };
    json!({
        "id": call.id,
        "agent_id": call.agent_number,
        "agent_name": call.agent_name,
        "call_direction": call.call_type,
        "call_status": call.status,
        "from_number": call.from_number(),
        "to_number": to_number,
        "from_number_id": call.phone_number_number,
        "customer_number": call.client_number,
        "call_context": call.context,
        "call_duration": call.duration_seconds,
        "start_time": call.started_at,
        "end_time": call.ended_at,
        "end_reason": call.end_reason,
        "recording_url": recording_url(call, base),
        "transcript": d.and_then(|d| d.transcript.clone()),
        "transcript_formatted": d.and_then(|d| d.transcript_formatted.clone()),
        "call_summary": d.and_then(|d| d.call_description.clone()),
        "campaign_id": call.campaign_id,
        "created_at": call.created_at,
    })
}

#[utoipa::path(
    post, path = "/api/v1/calls/dispatch", tag = "omnidimension", operation_id = "omnidim_dispatch_call",
    summary = "Dispatch a call (OmniDimension)",
    description = "Queues an outbound call by the agent's integer id, optionally from one of the organization's numbers by its integer id. `Idempotency-Key` works as on `POST /v1/call`.",
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to retry: 1 to 255 visible ASCII characters", min_length = 1, max_length = 255, pattern = "^[!-~]+$")),
    request_body(content = schema::DispatchBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Queued (or the original call on an idempotent replay)", body = schema::Dispatched),
        (status = 400, description = "Invalid or unknown field", body = crate::error::OmniErrorBody),
        (status = 404, description = "Agent or phone number not found", body = crate::error::OmniErrorBody),
        (status = 409, description = "Concurrency limit reached", body = crate::error::OmniErrorBody),
        (status = 422, description = "Idempotency-Key reused with another body", body = crate::error::OmniErrorBody)
    )
)]
pub(crate) async fn dispatch_call(
    State(state): State<AppState>,
    Org(org): Org,
    headers: HeaderMap,
    body: JsonBody<Value>,
) -> ApiResult<Response> {
    let o = Obj::new(
        body.value.clone(),
        &["agent_id", "to_number", "call_context", "from_number_id"],
    )?;
    let agent = match o.0.get("agent_id") {
        Some(v @ Value::Number(_)) if json_int(v).is_some_and(|n| n >= 1) => {
            json_int(v).unwrap_or_default()
        }
        None | Some(Value::Null) => {
            return Err(ApiError::bad_request(
                "agent_id is required: the agent's integer id",
            ))
        }
        Some(_) => {
            return Err(ApiError::bad_request(
                "agent_id must be a positive integer (the agent's id)",
            ))
        }
    };
    let to =
        match o.0.get("to_number") {
            Some(Value::String(s)) => PhoneNumber::parse(s)
                .map_err(|e| ApiError::bad_request(format!("to_number: {}", e.message)))?,
            None | Some(Value::Null) => return Err(ApiError::bad_request(
                "to_number is required: the number to call with country code, e.g. +15551234567",
            )),
            Some(_) => {
                return Err(ApiError::bad_request(
                    "to_number must be a string like +15551234567",
                ))
            }
        };
    let from_number_id = match o.0.get("from_number_id") {
        None | Some(Value::Null) => None,
        Some(v @ Value::Number(_)) if json_int(v).is_some_and(|n| n >= 1) => json_int(v),
        Some(_) => {
            return Err(ApiError::bad_request(
                "from_number_id must be a positive integer (see phone_number/list) or null",
            ))
        }
    };
    // The client sends `call_context={}` when none is given: an empty object is no context.
    let context = match o.0.get("call_context").cloned() {
        Some(Value::Object(m)) if m.is_empty() => None,
        v => dispatch::parse_context(v)
            .map_err(|_| ApiError::bad_request("call_context must be a JSON object or a string"))?,
    };
    let req = DispatchRequest {
        to,
        agent: Some(AgentRef::Number(agent)),
        from: None,
        from_number_id,
        context,
        metadata: None,
        user_speaks_first: false,
        campaign_id: None,
        ring_timeout_seconds: None,
    };
    let (call, created) = dispatch::dispatch(
        &state,
        org,
        req,
        &headers,
        "/api/v1/calls/dispatch",
        &body.raw,
    )
    .await?;
    let log = call_log_json(&call, &base_url(&state, &headers));
    let mut r = Json(json!({
        "success": true,
        "status": "dispatched",
        "call_log_id": call.id,
        "call_log": log,
    }))
    .into_response();
    if !created {
        r.headers_mut().insert(
            "idempotent-replayed",
            "true".parse().expect("static header"),
        );
    }
    Ok(r)
}

#[utoipa::path(
    get, path = "/api/v1/calls/logs", tag = "omnidimension", operation_id = "omnidim_list_call_logs",
    summary = "List call logs (OmniDimension)",
    description = "Newest first, paged by `pageno` (1-based) and `pagesize`.",
    params(schema::CallLogsQuery),
    responses(
        (status = 200, description = "A page of call logs", body = schema::CallLogPage),
        (status = 400, description = "Invalid parameter", body = crate::error::OmniErrorBody)
    )
)]
pub(crate) async fn call_logs(
    State(state): State<AppState>,
    Org(org): Org,
    headers: HeaderMap,
    q: QueryMap,
) -> ApiResult<Response> {
    let page = PageNo::parse(&q)?;
    let status = q.opt("call_status", |v| CallStatus::parse_param("call_status", v))?;
    let mut filter = CallFilter {
        status,
        ..Default::default()
    };
    let mut no_such_agent = false;
    if let Some(a) = q.get("agentid") {
        let n = parse_int_id("agentid", a)?;
        match state.store.get_agent_by_number(org, n).await {
            Ok(agent) => filter.agent_id = Some(agent.id),
            Err(StoreError::NotFound) => no_such_agent = true,
            Err(e) => return Err(e.into()),
        }
    }
    let mut m = Map::new();
    let (logs, total) = if no_such_agent {
        // A filter on an agent this organization does not have matches nothing.
        (Vec::new(), 0)
    } else {
        let query = CallListQuery {
            filter,
            order_by: OrderBy::CreatedAt,
            order: Order::Desc,
            limit: page.pagesize,
            page: Page::Offset(page.offset()),
            with_details: true,
            with_total: true,
        };
        let p = state.store.list_calls(org, &query).await?;
        let base = base_url(&state, &headers);
        (
            p.calls.iter().map(|c| call_log_json(c, &base)).collect(),
            p.total.unwrap_or(0),
        )
    };
    m.insert("call_log_data".into(), Value::Array(logs));
    page.facts(total, &mut m);
    Ok(Json(Value::Object(m)).into_response())
}

async fn call_log_handler(
    state: &AppState,
    org: OrgId,
    id: &str,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let not_found = || ApiError::not_found(format!("call log {:?} not found", clip(id)));
    let id = CallId::parse_param("id", id).map_err(|_| not_found())?;
    let call = state
        .store
        .get_call(org, id, true)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => not_found(),
            e => e.into(),
        })?;
    Ok(Json(call_log_json(&call, &base_url(state, headers))).into_response())
}

#[utoipa::path(
    get, path = "/api/v1/calls/logs/{id}", tag = "omnidimension", operation_id = "omnidim_get_call_log",
    summary = "Get a call log (OmniDimension)",
    params(("id" = String, Path, description = "The call's id (a UUID; anything else is not found)")),
    responses(
        (status = 200, description = "The call log", body = schema::CallLog),
        (status = 404, description = "Call log not found", body = crate::error::OmniErrorBody)
    )
)]
pub(crate) async fn call_log(
    State(state): State<AppState>,
    Org(org): Org,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    call_log_handler(&state, org, &id, &headers).await
}

// ----- agents -----

/// An agent as OmniDimension shows it: its integer id, the welcome message and the
/// context breakdown it was created with.
fn agent_json(a: &Agent) -> Value {
    let settings = a.settings.as_ref().and_then(Value::as_object);
    let mut m = Map::new();
    m.insert("id".into(), json!(a.number));
    m.insert("uuid".into(), json!(a.id));
    m.insert("name".into(), json!(a.name));
    m.insert("welcome_message".into(), json!(a.initial_message));
    m.insert(
        "context_breakdown".into(),
        settings
            .and_then(|s| s.get("context_breakdown"))
            .cloned()
            .unwrap_or(json!([])),
    );
    m.insert("system_prompt".into(), json!(a.system_prompt));
    m.insert("voice".into(), json!(a.voice));
    m.insert("llm_model".into(), json!(a.llm_model));
    m.insert("language".into(), json!(a.language));
    // The rest of the configuration as the client sent it (call_type, transcriber, ...).
    if let Some(s) = settings {
        for (k, v) in s {
            if !m.contains_key(k) && k != "context_breakdown" {
                m.insert(k.clone(), v.clone());
            }
        }
    }
    m.insert("created_at".into(), json!(a.created_at));
    m.insert("updated_at".into(), json!(a.updated_at));
    Value::Object(m)
}

#[utoipa::path(
    get, path = "/api/v1/agents", tag = "omnidimension", operation_id = "omnidim_list_agents",
    summary = "List agents (OmniDimension)",
    params(schema::PageQuery),
    responses(
        (status = 200, description = "A page of agents (`bots`)", body = schema::AgentPage),
        (status = 400, description = "Invalid pageno or pagesize", body = crate::error::OmniErrorBody)
    )
)]
pub(crate) async fn list_agents(
    State(state): State<AppState>,
    Org(org): Org,
    q: QueryMap,
) -> ApiResult<Response> {
    let page = PageNo::parse(&q)?;
    let agents = state
        .store
        .list_agents_offset(org, page.offset(), page.pagesize)
        .await?;
    let total = state.store.count_agents(org).await?;
    let mut m = Map::new();
    m.insert(
        "bots".into(),
        Value::Array(agents.iter().map(agent_json).collect()),
    );
    page.facts(total, &mut m);
    Ok(Json(Value::Object(m)).into_response())
}

#[utoipa::path(
    get, path = "/api/v1/agents/{id}", tag = "omnidimension", operation_id = "omnidim_get_agent",
    summary = "Get an agent by its integer id (OmniDimension)",
    params(("id" = i64, Path, description = "The agent's integer id", minimum = 1)),
    responses(
        (status = 200, description = "The agent", body = schema::OmniAgent),
        (status = 400, description = "Not a positive integer", body = crate::error::OmniErrorBody),
        (status = 404, description = "Agent not found", body = crate::error::OmniErrorBody)
    )
)]
pub(crate) async fn get_agent(
    State(state): State<AppState>,
    Org(org): Org,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let n = parse_int_id("agent id", &id)?;
    let a = state
        .store
        .get_agent_by_number(org, n)
        .await
        .map_err(|e| ApiError::from_store(e, &format!("agent {n}")))?;
    Ok(Json(agent_json(&a)).into_response())
}

/// The system prompt from a context breakdown: each enabled section's title and body.
fn prompt_from_breakdown(sections: &[Value]) -> ApiResult<String> {
    let mut parts = Vec::new();
    for (i, s) in sections.iter().enumerate() {
        let bad = || {
            ApiError::bad_request(format!(
                "context_breakdown[{i}] must be an object with string title and body"
            ))
        };
        let s = s.as_object().ok_or_else(bad)?;
        let title = s.get("title").and_then(Value::as_str).ok_or_else(bad)?;
        let body = s.get("body").and_then(Value::as_str).ok_or_else(bad)?;
        let enabled = match s.get("is_enabled") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err(ApiError::bad_request(format!(
                    "context_breakdown[{i}].is_enabled must be true or false"
                )))
            }
        };
        if enabled {
            parts.push(format!("## {}\n{}", title.trim(), body.trim()));
        }
    }
    Ok(parts.join("\n\n"))
}

#[utoipa::path(
    post, path = "/api/v1/agents/create", tag = "omnidimension", operation_id = "omnidim_create_agent",
    summary = "Create an agent (OmniDimension)",
    description = "The system prompt is made of the enabled `context_breakdown` sections; `welcome_message` is the greeting; `voice.voice_id` and `model.model` name the voice and LLM model. Every other field is kept as sent and shown back with the agent.",
    request_body(content = schema::CreateAgentBody, content_type = "application/json"),
    responses(
        (status = 201, description = "The agent", body = schema::OmniAgent),
        (status = 400, description = "Invalid or missing field", body = crate::error::OmniErrorBody),
        (status = 409, description = "An agent with this name exists", body = crate::error::OmniErrorBody)
    )
)]
pub(crate) async fn create_agent(
    State(state): State<AppState>,
    Org(org): Org,
    body: JsonBody<Value>,
) -> ApiResult<Response> {
    let Value::Object(mut m) = body.value else {
        return Err(ApiError::bad_request("request body must be a JSON object"));
    };
    m.retain(|_, v| !v.is_null());
    let name = m
        .remove("name")
        .ok_or_else(|| ApiError::bad_request("name is required: a name for the agent"))?;
    let breakdown = match m.get("context_breakdown") {
        Some(Value::Array(a)) => prompt_from_breakdown(a)?,
        None => {
            return Err(ApiError::bad_request(
                "context_breakdown is required: a list of {title, body, is_enabled} sections",
            ))
        }
        Some(_) => {
            return Err(ApiError::bad_request(
                "context_breakdown must be a list of {title, body, is_enabled} sections",
            ))
        }
    };
    let mut fields = Map::new();
    fields.insert("name".into(), name);
    if let Some(w) = m.remove("welcome_message") {
        fields.insert("initial_message".into(), w);
    }
    if !breakdown.is_empty() {
        fields.insert("system_prompt".into(), Value::String(breakdown));
    }
    // voice {provider, voice_id} and model {model} also name our voice and LLM model; the
    // objects themselves stay in settings with everything else. Their named fields are
    // checked: a voice_id that is not a string would otherwise be kept and never used.
    for (obj, fields) in [
        ("voice", &["provider", "voice_id"][..]),
        ("model", &["model"][..]),
    ] {
        match m.get(obj) {
            None | Some(Value::Null) => {}
            Some(Value::Object(o)) => {
                for f in fields {
                    if !matches!(o.get(*f), None | Some(Value::Null) | Some(Value::String(_))) {
                        return Err(ApiError::bad_request(format!("{obj}.{f} must be a string")));
                    }
                }
            }
            Some(_) => {
                return Err(ApiError::bad_request(format!(
                    "{obj} must be an object ({})",
                    fields.join(", ")
                )))
            }
        }
    }
    if let Some(v) = m
        .get("voice")
        .and_then(|v| v.get("voice_id"))
        .and_then(Value::as_str)
    {
        fields.insert("voice".into(), json!(v));
    }
    if let Some(v) = m
        .get("model")
        .and_then(|v| v.get("model"))
        .and_then(Value::as_str)
    {
        fields.insert("llm_model".into(), json!(v));
    }
    fields.insert("settings".into(), Value::Object(m));
    let p = agent_patch(&Obj::new(Value::Object(fields), &[])?)?;
    let agent = state.store.create_agent(org, p).await?;
    Ok((StatusCode::CREATED, Json(agent_json(&agent))).into_response())
}

// ----- phone numbers -----

#[utoipa::path(
    get, path = "/api/v1/phone_number/list", tag = "omnidimension", operation_id = "omnidim_list_numbers",
    summary = "List phone numbers (OmniDimension)",
    params(schema::PageQuery),
    responses(
        (status = 200, description = "A page of phone numbers", body = schema::NumberPage),
        (status = 400, description = "Invalid pageno or pagesize", body = crate::error::OmniErrorBody)
    )
)]
pub(crate) async fn list_numbers(
    State(state): State<AppState>,
    Org(org): Org,
    q: QueryMap,
) -> ApiResult<Response> {
    let page = PageNo::parse(&q)?;
    let numbers = state
        .store
        .list_numbers_offset(org, page.offset(), page.pagesize)
        .await?;
    let total = state.store.count_numbers(org).await?;
    // Bound agents by their integer id, each looked up once.
    let mut agents: HashMap<AgentId, i64> = HashMap::new();
    for n in &numbers {
        if let Some(a) = n.agent_id {
            if let std::collections::hash_map::Entry::Vacant(e) = agents.entry(a) {
                if let Ok(agent) = state.store.get_agent(org, a).await {
                    e.insert(agent.number);
                }
            }
        }
    }
    let items: Vec<Value> = numbers
        .iter()
        .map(|n| {
            json!({
                "id": n.number_id,
                "uuid": n.id,
                "phone_number": n.phone_number,
                "name": n.label,
                "agent_id": n.agent_id.and_then(|a| agents.get(&a).copied()),
                "created_at": n.created_at,
            })
        })
        .collect();
    let mut m = Map::new();
    m.insert("phone_numbers".into(), Value::Array(items));
    page.facts(total, &mut m);
    Ok(Json(Value::Object(m)).into_response())
}

// ----- errors -----

/// Response middleware for the OmniDimension routes (outside authentication, so the 401 gets
/// it too): `{"error": "<reason>", "message": m}` becomes `{"error": "<snake_case reason>",
/// "error_description": m}`.
pub async fn error_shape(resp: Response) -> Response {
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
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
    let message = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_string());
    let new = json!({ "error": error_code(status), "error_description": message });
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    Response::from_parts(
        parts,
        Body::from(serde_json::to_vec(&new).unwrap_or_default()),
    )
}

/// `Not Found` → `not_found`.
fn error_code(status: StatusCode) -> String {
    status
        .canonical_reason()
        .unwrap_or("error")
        .to_ascii_lowercase()
        .replace([' ', '-'], "_")
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(
    dispatch_call,
    call_logs,
    call_log,
    list_agents,
    get_agent,
    create_agent,
    list_numbers
))]
pub struct ApiDoc;

// ----- OpenAPI schema -----

/// The shapes of the OmniDimension JSON (`call_log_json`, `agent_json`, the pages).
#[allow(dead_code, reason = "schema only")]
pub mod schema {
    use crate::v1::schema::{CallStatus, CallType};
    use serde_json::Value;
    use utoipa::{IntoParams, ToSchema};

    /// `pageno` and `pagesize` of a list.
    #[derive(IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct PageQuery {
        /// Page number, from 1 (default 1).
        #[param(minimum = 1)]
        pub pageno: Option<i64>,
        /// Page size, 1 to 100 (default 30).
        #[param(minimum = 1, maximum = 100)]
        pub pagesize: Option<u32>,
    }

    #[derive(IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct CallLogsQuery {
        /// Page number, from 1 (default 1).
        #[param(minimum = 1)]
        pub pageno: Option<i64>,
        /// Page size, 1 to 100 (default 30).
        #[param(minimum = 1, maximum = 100)]
        pub pagesize: Option<u32>,
        /// Only calls with this status.
        #[param(inline)]
        pub call_status: Option<CallStatus>,
        /// Only calls of the agent with this integer id (none match if it does not exist).
        #[param(minimum = 1)]
        pub agentid: Option<i64>,
    }

    /// `POST /api/v1/calls/dispatch`.
    #[derive(ToSchema)]
    pub struct DispatchBody {
        /// The agent's integer id.
        #[schema(minimum = 1)]
        pub agent_id: i64,
        /// The number to call, E.164.
        #[schema(pattern = r"^\+[1-9][0-9]{7,14}$", example = "+15551234567")]
        pub to_number: String,
        /// Handed to the agent: a JSON object (`{}` = none) or a string.
        #[schema(value_type = Option<Object>)]
        pub call_context: Option<Value>,
        /// Caller ID: the integer id of one of the organization's numbers.
        #[schema(minimum = 1)]
        pub from_number_id: Option<i64>,
    }

    /// A call as an OmniDimension call log.
    #[derive(ToSchema)]
    pub struct CallLog {
        pub id: uuid::Uuid,
        /// The agent's integer id.
        pub agent_id: Option<i64>,
        pub agent_name: Option<String>,
        pub call_direction: CallType,
        pub call_status: CallStatus,
        pub from_number: Option<String>,
        pub to_number: Option<String>,
        /// The integer id of the organization's number the call used.
        pub from_number_id: Option<i64>,
        pub customer_number: String,
        pub call_context: Option<Value>,
        /// Seconds.
        pub call_duration: Option<i64>,
        pub start_time: Option<String>,
        pub end_time: Option<String>,
        pub end_reason: Option<String>,
        pub recording_url: Option<String>,
        pub transcript: Option<String>,
        pub transcript_formatted: Option<Value>,
        pub call_summary: Option<String>,
        pub campaign_id: Option<uuid::Uuid>,
        pub created_at: String,
    }

    /// What a dispatch answers.
    #[derive(ToSchema)]
    pub struct Dispatched {
        /// Always true.
        pub success: bool,
        /// Always `dispatched`.
        pub status: String,
        pub call_log_id: uuid::Uuid,
        pub call_log: CallLog,
    }

    #[derive(ToSchema)]
    pub struct CallLogPage {
        pub call_log_data: Vec<CallLog>,
        pub total_records: i64,
        pub pageno: u64,
        pub pagesize: u32,
        pub total_pages: i64,
    }

    /// A section of an agent's prompt.
    #[derive(ToSchema)]
    pub struct ContextSection {
        pub title: String,
        pub body: String,
        /// Default true.
        pub is_enabled: Option<bool>,
    }

    #[derive(ToSchema)]
    pub struct VoiceChoice {
        pub provider: Option<String>,
        /// The voice (at most 200 characters).
        #[schema(max_length = 200)]
        pub voice_id: Option<String>,
    }

    #[derive(ToSchema)]
    pub struct ModelChoice {
        /// The LLM model (at most 200 characters).
        #[schema(max_length = 200)]
        pub model: Option<String>,
    }

    /// `POST /api/v1/agents/create`. Other fields are kept as sent (null = not given).
    #[derive(ToSchema)]
    pub struct CreateAgentBody {
        /// Unique within the organization, 1 to 200 characters (not only spaces).
        #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
        pub name: String,
        /// The prompt's sections.
        pub context_breakdown: Vec<ContextSection>,
        /// The greeting (at most 10,000 characters).
        #[schema(max_length = 10000)]
        pub welcome_message: Option<String>,
        pub voice: Option<VoiceChoice>,
        pub model: Option<ModelChoice>,
    }

    /// An agent as OmniDimension shows it, plus whatever other fields it was created with.
    #[derive(ToSchema)]
    pub struct OmniAgent {
        /// The agent's integer id.
        pub id: i64,
        pub uuid: uuid::Uuid,
        pub name: String,
        pub welcome_message: Option<String>,
        #[schema(value_type = Vec<Object>)]
        pub context_breakdown: Value,
        pub system_prompt: Option<String>,
        pub voice: Option<String>,
        pub llm_model: Option<String>,
        pub language: Option<String>,
        pub created_at: String,
        pub updated_at: String,
    }

    #[derive(ToSchema)]
    pub struct AgentPage {
        pub bots: Vec<OmniAgent>,
        pub total_records: i64,
        pub pageno: u64,
        pub pagesize: u32,
        pub total_pages: i64,
    }

    #[derive(ToSchema)]
    pub struct OmniNumber {
        /// The number's integer id (`from_number_id` of a dispatch).
        pub id: i64,
        pub uuid: uuid::Uuid,
        pub phone_number: String,
        pub name: Option<String>,
        /// The bound agent's integer id.
        pub agent_id: Option<i64>,
        pub created_at: String,
    }

    #[derive(ToSchema)]
    pub struct NumberPage {
        pub phone_numbers: Vec<OmniNumber>,
        pub total_records: i64,
        pub pageno: u64,
        pub pagesize: u32,
        pub total_pages: i64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        assert_eq!(error_code(StatusCode::NOT_FOUND), "not_found");
        assert_eq!(
            error_code(StatusCode::UNPROCESSABLE_ENTITY),
            "unprocessable_entity"
        );
        assert_eq!(
            error_code(StatusCode::TOO_MANY_REQUESTS),
            "too_many_requests"
        );
    }

    #[test]
    fn prompt_joins_enabled_sections() {
        let s = vec![
            json!({"title": "Role", "body": "You sell.", "is_enabled": true}),
            json!({"title": "Off", "body": "hidden", "is_enabled": false}),
            json!({"title": "Tone", "body": "Be kind."}),
        ];
        assert_eq!(
            prompt_from_breakdown(&s).unwrap(),
            "## Role\nYou sell.\n\n## Tone\nBe kind."
        );
        assert!(prompt_from_breakdown(&[json!({"title": 1, "body": "x"})]).is_err());
    }
}
