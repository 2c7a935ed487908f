//! `/v1/agents`, and Flyflow's agent endpoints (`POST /v1/agent` upsert by name,
//! `GET|DELETE /v1/agent?id=`) beside them over the same store calls.

use crate::auth::Org;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{JsonBody, QueryMap};
use crate::resource::{deleted, required, to_json, Deleted, Obj, Patch, Resource};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Map, Value};
use switchboard_domain::{AgentId, AgentPatch};
use utoipa::{IntoParams, ToSchema};

pub(crate) struct Agents;

impl Resource for Agents {
    type Entity = switchboard_domain::Agent;
    const WHAT: &'static str = "Agent";
    const ID_PARAM: &'static str = "agent id";
    const LIST_KEY: &'static str = "agents";
    const FIELDS: &'static [&'static str] = &[
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

    fn patch(o: &Obj) -> ApiResult<AgentPatch> {
        agent_patch(o)
    }
    fn check_create(p: &Patch<Self>) -> ApiResult<()> {
        required(p.name.as_ref(), "name", "the agent's unique name")?;
        Ok(())
    }
}

crate::resource::resource_endpoints! {
    resource: Agents, tag: "agents", path: "/v1/agents", item: "/v1/agents/{id}",
    one: "agent", many: "agents",
    schema: Agent, input: AgentInput, list: AgentList { agents },
    handlers: list_agents, create_agent, get_agent, update_agent, delete_agent,
}

/// The agent fields of a body (also OmniDimension's, which maps its own names first).
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

// ----- Flyflow's /v1/agent -----

pub(crate) fn flyflow_routes() -> Router<AppState> {
    Router::new().route(
        "/v1/agent",
        get(flyflow_get_agent)
            .post(flyflow_upsert_agent)
            .delete(flyflow_delete_agent),
    )
}

/// Flyflow `upsert_agent`: the client sends every parameter, unset ones as null, so null
/// means "not given" here. Its own names (`voice_id`, `webhook`) map onto ours; its other
/// options (tools, filler words, endpointing...) are kept in `settings`.
#[utoipa::path(
    post, path = "/v1/agent", tag = "agents", summary = "Create or update an agent by name (Flyflow upsert_agent)",
    request_body(content = FlyflowAgentInput, content_type = "application/json"),
    responses(
        (status = 200, description = "Updated (an agent with this name existed)", body = Agent),
        (status = 201, description = "Created", body = Agent),
        (status = 400, description = "Invalid field", body = ErrorBody),
        (status = 415, description = "Content-Type is not JSON", body = ErrorBody)
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
        .filter(|k| !Agents::FIELDS.contains(&k.as_str()))
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
    let o = Obj::new(Value::Object(m), Agents::FIELDS)?;
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
    let id = q
        .get("id")
        .ok_or_else(|| ApiError::bad_request("id is required: ?id=<agent id>"))?;
    Ok(AgentId::parse_param("agent id", id)?)
}

#[utoipa::path(
    get, path = "/v1/agent", tag = "agents", summary = "Get an agent by ?id= (Flyflow)",
    params(AgentIdQuery),
    responses(
        (status = 200, description = "The agent", body = Agent),
        (status = 400, description = "Missing or invalid id", body = ErrorBody),
        (status = 404, description = "Agent not found", body = ErrorBody)
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
    params(AgentIdQuery),
    responses(
        (status = 200, description = "Deleted", body = Deleted),
        (status = 400, description = "Missing or invalid id", body = ErrorBody),
        (status = 404, description = "Agent not found", body = ErrorBody)
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

// ----- OpenAPI schema -----

#[derive(ToSchema)]
pub struct Agent {
    pub id: uuid::Uuid,
    /// Stable integer id.
    pub number: i64,
    pub name: String,
    pub system_prompt: Option<String>,
    pub initial_message: Option<String>,
    pub voice: Option<String>,
    pub language: Option<String>,
    pub llm_model: Option<String>,
    pub webhook_url: Option<String>,
    pub max_duration_seconds: Option<i64>,
    pub ring_timeout_seconds: Option<i64>,
    #[schema(value_type = Option<Object>)]
    pub settings: Option<Value>,
    pub created_at: String,
    pub updated_at: String,
}

/// Agent fields; `name` is required on create. Unknown fields are rejected; null clears.
#[derive(ToSchema)]
pub struct AgentInput {
    /// Unique within the organization, 1 to 200 characters.
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    #[schema(max_length = 100000)]
    pub system_prompt: Option<String>,
    #[schema(max_length = 10000)]
    pub initial_message: Option<String>,
    #[schema(max_length = 200)]
    pub voice: Option<String>,
    #[schema(max_length = 35)]
    pub language: Option<String>,
    #[schema(max_length = 200)]
    pub llm_model: Option<String>,
    /// An http:// or https:// URL.
    #[schema(max_length = 2048)]
    pub webhook_url: Option<String>,
    #[schema(minimum = 1, maximum = 86400)]
    pub max_duration_seconds: Option<i64>,
    #[schema(minimum = 1, maximum = 300)]
    pub ring_timeout_seconds: Option<i64>,
    /// Conversation settings: `interruptible` (boolean, default true: the caller can talk
    /// over the agent), `silence_timeout_seconds` (1-3600, default 8: re-prompt after this
    /// much silence), `max_reprompts` (0-10, default 2: then goodbye and hang-up with
    /// end_reason `inactivity`), `response_timeout_seconds` (0.5-30, default 2: the fallback is
    /// spoken when no reply audio is ready this long after the caller's turn),
    /// `reprompt_message`, `goodbye_message`, `fallback_message`
    /// (spoken when a provider fails). Other keys are kept as sent.
    #[schema(value_type = Option<Object>)]
    pub settings: Option<Value>,
}

/// Flyflow `upsert_agent`: the agent fields plus Flyflow's own names (`voice_id` for `voice`,
/// `webhook` for `webhook_url`); any other field is kept in `settings`. Null means "not given".
#[derive(ToSchema)]
pub struct FlyflowAgentInput {
    /// Agents are upserted by name.
    pub name: String,
    pub system_prompt: Option<String>,
    pub initial_message: Option<String>,
    pub voice_id: Option<String>,
    pub webhook: Option<String>,
    pub llm_model: Option<String>,
    pub language: Option<String>,
}

/// Flyflow's `?id=` of an agent.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AgentIdQuery {
    /// The agent's id.
    pub id: uuid::Uuid,
}
