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
        "tools",
        "voicemail",
        "success_criteria",
        "analysis_schema",
        "analysis_questions",
    ];

    fn patch(o: &Obj) -> ApiResult<AgentPatch> {
        agent_patch(o)
    }
    fn check_create(p: &Patch<Self>) -> ApiResult<()> {
        required(p.name.as_ref(), "name", "the agent's unique name")?;
        Ok(())
    }
    async fn check(s: &AppState, p: &AgentPatch) -> ApiResult<()> {
        check_webhook_url(s, p).await
    }
}

/// An agent's `webhook_url` receives its calls' events, and its webhook tools' URLs are called
/// during calls: both go through the same SSRF guard as webhook endpoints (400 for loopback, private, link-local or metadata addresses unless
/// `--webhook-allow-private`), when it is saved and again at each delivery.
async fn check_webhook_url(s: &AppState, p: &AgentPatch) -> ApiResult<()> {
    if let Some(Some(u)) = &p.webhook_url {
        switchboard_webhooks::ssrf::check_url_field("webhook_url", u, s.webhook_allow_private)
            .await
            .map_err(ApiError::bad_request)?;
    }
    // Webhook tools are requests the server makes on the LLM's behalf: the same guard.
    if let Some(Some(tools)) = &p.tools {
        let tools = switchboard_domain::tools::parse_tools(tools)
            .map_err(|e| ApiError::bad_request(e.message))?;
        for (i, t) in tools.iter().enumerate() {
            if let switchboard_domain::tools::Tool::Webhook(w) = t {
                let field = format!("tools[{i}].url");
                switchboard_webhooks::ssrf::check_url_field(
                    &field,
                    &w.url,
                    s.webhook_allow_private,
                )
                .await
                .map_err(ApiError::bad_request)?;
            }
        }
    }
    Ok(())
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
        tools: checked(o.any("tools"), |v| {
            switchboard_domain::tools::parse_tools(v)
                .map(|t| switchboard_domain::tools::tools_json(&t))
        })?,
        voicemail: checked(o.any("voicemail"), |v| {
            switchboard_domain::analysis::parse_voicemail(v)
                .map(|v| serde_json::to_value(v).unwrap_or(Value::Null))
        })?,
        success_criteria: checked(o.any("success_criteria"), |v| {
            switchboard_domain::analysis::check_success_criteria(v).map(|_| v.clone())
        })?
        .map(|v| v.and_then(|v| v.as_str().map(String::from))),
        analysis_schema: checked(o.any("analysis_schema"), |v| {
            switchboard_domain::analysis::check_analysis_schema(v).map(|_| v.clone())
        })?,
        analysis_questions: checked(o.any("analysis_questions"), |v| {
            switchboard_domain::analysis::parse_analysis_questions(v)
                .map(|q| serde_json::to_value(q).unwrap_or(Value::Null))
        })?,
    })
}

/// A field checked (and normalised) by a domain rule; null clears, absent leaves as is.
fn checked(
    v: Option<Option<Value>>,
    check: impl Fn(&Value) -> Result<Value, switchboard_domain::ParseError>,
) -> ApiResult<Option<Option<Value>>> {
    match v {
        Some(Some(v)) => Ok(Some(Some(
            check(&v).map_err(|e| ApiError::bad_request(e.message))?,
        ))),
        other => Ok(other),
    }
}

/// The fields Flyflow's `upsert_agent` maps onto ours: its own `tools` (another shape) stay in
/// `settings` with its other options.
const FLYFLOW_FIELDS: &[&str] = &[
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
        .filter(|k| !FLYFLOW_FIELDS.contains(&k.as_str()))
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
    check_webhook_url(&s, &p).await?;
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
    #[schema(value_type = Option<Vec<Object>>)]
    pub tools: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub voicemail: Option<Value>,
    pub success_criteria: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub analysis_schema: Option<Value>,
    #[schema(value_type = Option<Vec<Object>>)]
    pub analysis_questions: Option<Value>,
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
    /// What the agent's LLM may do during a call: `{"type": "end_call"}`,
    /// `{"type": "transfer_call", "destinations": [{"number", "description"}]}`,
    /// `{"type": "send_dtmf"}`, `{"type": "webhook", "name", "description", "parameters"
    /// (JSON Schema of an object), "url", "method" (default POST), "headers", "timeout_ms"
    /// (100-120000, default 10000)}`. At most 32, names unique.
    #[schema(value_type = Option<Vec<Object>>)]
    pub tools: Option<Value>,
    /// On reaching voicemail: `{"action": "hangup" | "leave_message" | "continue",
    /// "message": "..."}` (message required with leave_message; default continue).
    #[schema(value_type = Option<Object>)]
    pub voicemail: Option<Value>,
    /// What a successful call achieves, judged after the call (`call_success`).
    #[schema(max_length = 4000)]
    pub success_criteria: Option<String>,
    /// JSON Schema (of an object) of `structured_data_results`.
    #[schema(value_type = Option<Object>)]
    pub analysis_schema: Option<Value>,
    /// Questions answered in `custom_analysis`: strings, or `{name, question, type (string |
    /// boolean | number | enum), choices}`. At most 20.
    #[schema(value_type = Option<Vec<Object>>)]
    pub analysis_questions: Option<Value>,
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
