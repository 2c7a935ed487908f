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
use serde_json::{json, Map, Value};
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
    one: "an" "agent", many: "agents",
    schema: Agent, input: AgentInput, list: AgentList { agents },
    handlers: list_agents, create_agent, get_agent, update_agent, delete_agent,
}

/// Tools and analysis questions are named, and a name may appear once. Each item can be
/// valid on its own while two of them clash: that is a 422 (RFC 9110 §15.5.21), checked
/// before the items' own rules so the answer does not depend on which rule runs first.
fn unique_names(o: &Obj) -> ApiResult<()> {
    let tool_name = |t: &Value| match t.get("type").and_then(Value::as_str) {
        Some("webhook") => t.get("name").and_then(Value::as_str).map(str::to_string),
        Some(kind) => Some(kind.to_string()),
        None => None,
    };
    let question_name = |(i, q): (usize, &Value)| match q {
        Value::String(_) => Some(format!("q{}", i + 1)),
        _ => q.get("name").and_then(Value::as_str).map(str::to_string),
    };
    let lists: [(&str, Vec<String>); 2] = [
        (
            "tools",
            o.0.get("tools")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(tool_name).collect())
                .unwrap_or_default(),
        ),
        (
            "analysis_questions",
            o.0.get("analysis_questions")
                .and_then(Value::as_array)
                .map(|a| a.iter().enumerate().filter_map(question_name).collect())
                .unwrap_or_default(),
        ),
    ];
    for (field, names) in lists {
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = names.iter().find(|n| !seen.insert(n.as_str())) {
            return Err(ApiError::unprocessable(format!(
                "{field}: the name {dup:?} is used twice; names must be unique"
            )));
        }
    }
    Ok(())
}

/// The agent fields of a body (also OmniDimension's, which maps its own names first).
pub fn agent_patch(o: &Obj) -> ApiResult<AgentPatch> {
    unique_names(o)?;
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
    /// Unique within the organization, 1 to 200 characters (not only spaces).
    #[schema(min_length = 1, max_length = 200, pattern = r"\S", nullable = false)]
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
    /// An absolute http:// or https:// URL; it receives the agent's calls' events.
    #[schema(
        max_length = 2048,
        pattern = r"^https?://[A-Za-z][A-Za-z0-9-]{0,62}(\.[A-Za-z][A-Za-z0-9-]{0,62}){0,8}(:[1-9][0-9]{0,3})?(/[A-Za-z0-9._~/-]*)?$"
    )]
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
    /// `turn_detection` (`smart_turn`, the default: the end-of-turn model decides at each
    /// pause; or `silence`: a pause of `end_of_turn_silence_seconds`, 0.2-5, default 0.7,
    /// ends the turn, for a third of the CPU), `reprompt_message`, `goodbye_message`,
    /// `fallback_message`
    /// (spoken when a provider fails). Other keys are kept as sent.
    #[schema(value_type = Option<Object>)]
    pub settings: Option<Value>,
    /// What the agent's LLM may do during a call: `{"type": "end_call"}`,
    /// `{"type": "transfer_call", "destinations": [{"number", "description"}]}`,
    /// `{"type": "send_dtmf"}`, `{"type": "webhook", "name", "description", "parameters"
    /// (JSON Schema of an object), "url", "method" (default POST), "headers", "timeout_ms"
    /// (100-120000, default 10000)}`. At most 32; names (a built-in tool's name is its type)
    /// must be unique: a repeated name is a 422.
    #[schema(value_type = Option<Object>)]
    pub tools: Option<Value>,
    /// On reaching voicemail: `{"action": "hangup" | "leave_message" | "continue",
    /// "message": "..."}` (message required with leave_message; default continue).
    #[schema(value_type = Option<Object>)]
    pub voicemail: Option<Value>,
    /// What a successful call achieves, judged after the call (`call_success`).
    #[schema(max_length = 4000, min_length = 1, pattern = r"\S")]
    pub success_criteria: Option<String>,
    /// JSON Schema (of an object) of `structured_data_results`.
    #[schema(value_type = Option<Object>)]
    pub analysis_schema: Option<Value>,
    /// Questions answered in `custom_analysis`: strings, or `{name, question, type (string |
    /// boolean | number | enum), choices}`. At most 20; names (`q<n>` for the n-th question
    /// given as a string) must be unique: a repeated name is a 422.
    #[schema(value_type = Option<Object>)]
    pub analysis_questions: Option<Value>,
}

/// A non-blank string of at most `max` characters.
fn text(max: u32) -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": max, "pattern": "\\S"})
}

fn nullable(v: Value) -> Value {
    json!({"oneOf": [v, {"type": "null"}]})
}

/// A JSON Schema describing an object (`{"type": "object", ...}`); other keywords are the
/// client's.
fn object_schema_value() -> Value {
    json!({
        "type": "object",
        "properties": {
            "type": {"type": "string", "enum": ["object"]},
            "properties": {
                "type": "object",
                "additionalProperties": {"oneOf": [
                    {"type": "boolean"},
                    {
                        "type": "object",
                        "properties": {"type": {"type": "string", "enum": ["string", "number", "integer", "boolean", "object", "array", "null"]}}
                    }
                ]}
            }
        },
        "required": ["type"]
    })
}

fn object_json_schema() -> Value {
    nullable(object_schema_value())
}

/// The parts of `AgentInput` written as JSON Schema (see `openapi::raw_parts`).
pub(crate) fn raw_schemas() -> Vec<(&'static str, Value)> {
    let at = "/components/schemas/AgentInput/properties/";
    vec![
        ("settings", settings_schema()),
        ("tools", tools_schema()),
        ("voicemail", voicemail_schema()),
        ("analysis_schema", object_json_schema()),
        ("analysis_questions", questions_schema()),
    ]
    .into_iter()
    .map(|(k, v)| (leak(format!("{at}{k}")), v))
    .collect()
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn settings_schema() -> Value {
    nullable(json!({
        "type": "object",
        "properties": {
            "interruptible": {"type": "boolean"},
            "silence_timeout_seconds": {"type": "number", "minimum": 1, "maximum": 3600},
            "response_timeout_seconds": {"type": "number", "minimum": 0.5, "maximum": 30},
            "max_reprompts": {"type": "integer", "minimum": 0, "maximum": 10},
            "turn_detection": {"type": "string", "enum": switchboard_domain::entities::TURN_DETECTION_MODES},
            "end_of_turn_silence_seconds": {"type": "number", "minimum": 0.2, "maximum": 5},
            "reprompt_message": text(2000),
            "goodbye_message": text(2000),
            "fallback_message": text(2000)
        }
    }))
}

fn tools_schema() -> Value {
    let simple = |kind: &str| {
        json!({
            "type": "object",
            "properties": {
                "type": {"type": "string", "enum": [kind]},
                "description": nullable(text(1000))
            },
            "required": ["type"],
            "additionalProperties": false
        })
    };
    nullable(json!({
        "type": "array",
        "maxItems": 32,
        "items": {"oneOf": [
            simple("end_call"),
            simple("send_dtmf"),
            {
                "type": "object",
                "properties": {
                    "type": {"type": "string", "enum": ["transfer_call"]},
                    "description": nullable(text(1000)),
                    "destinations": {
                        "type": "array", "minItems": 1, "maxItems": 20,
                        "items": {
                            "type": "object",
                            "properties": {
                                "number": {"type": "string", "pattern": "^\\+[1-9][0-9]{7,14}$"},
                                "description": text(500)
                            },
                            "required": ["number", "description"]
                        }
                    }
                },
                "required": ["type", "destinations"],
                "additionalProperties": false
            },
            {
                "type": "object",
                "properties": {
                    "type": {"type": "string", "enum": ["webhook"]},
                    "name": {"type": "string", "pattern": "^(?!(end_call|transfer_call|send_dtmf)$)[A-Za-z0-9_-]{1,64}$"},
                    "description": text(1000),
                    "parameters": object_schema_value(),
                    "url": {"type": "string", "format": "uri", "pattern": "^https?://[A-Za-z][A-Za-z0-9-]{0,62}(\\.[A-Za-z][A-Za-z0-9-]{0,62}){0,8}(:[1-9][0-9]{0,3})?(/[A-Za-z0-9._~/-]*)?$"},
                    "method": nullable(json!({"type": "string", "enum": ["GET", "POST", "PUT", "PATCH", "DELETE"]})),
                    "headers": nullable(json!({
                        "type": "object",
                        "propertyNames": {"pattern": "^[A-Za-z0-9_-]+$"},
                        "additionalProperties": {"type": "string", "pattern": "^[^\\r\\n]*$"}
                    })),
                    "timeout_ms": nullable(json!({"type": "integer", "minimum": 100, "maximum": 120000}))
                },
                "required": ["type", "name", "description", "url"],
                "additionalProperties": false
            }
        ]}
    }))
}

fn voicemail_schema() -> Value {
    nullable(json!({"oneOf": [
        {
            "type": "object",
            "properties": {
                "action": {"type": "string", "enum": ["hangup", "continue"]},
                "message": nullable(text(2000))
            },
            "additionalProperties": false
        },
        {
            "type": "object",
            "properties": {
                "action": {"type": "string", "enum": ["leave_message"]},
                "message": text(2000)
            },
            "required": ["action", "message"],
            "additionalProperties": false
        }
    ]}))
}

fn questions_schema() -> Value {
    let name = json!({"type": "string", "pattern": "^[A-Za-z0-9_]{1,64}$"});
    let choices = json!({"type": "array", "minItems": 1, "maxItems": 50, "items": {"type": "string", "minLength": 1}});
    nullable(json!({
        "type": "array",
        "maxItems": 20,
        "items": {"oneOf": [
            text(1000),
            {
                "type": "object",
                "properties": {
                    "name": name,
                    "question": text(1000),
                    "type": nullable(json!({"type": "string", "enum": ["string", "boolean", "number"]})),
                    "choices": {"type": "null"}
                },
                "required": ["name", "question"],
                "additionalProperties": false
            },
            {
                "type": "object",
                "properties": {
                    "name": name,
                    "question": text(1000),
                    "type": {"type": "string", "enum": ["enum"]},
                    "choices": choices
                },
                "required": ["name", "question", "type", "choices"],
                "additionalProperties": false
            }
        ]}
    }))
}

/// Flyflow `upsert_agent`: the agent fields plus Flyflow's own names (`voice_id` for `voice`,
/// `webhook` for `webhook_url`); any other field is kept in `settings`. Null means "not given".
#[derive(ToSchema)]
pub struct FlyflowAgentInput {
    /// Agents are upserted by name: 1 to 200 characters, not only spaces.
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub name: String,
    #[schema(max_length = 100000)]
    pub system_prompt: Option<String>,
    #[schema(max_length = 10000)]
    pub initial_message: Option<String>,
    /// The voice (`voice`).
    #[schema(max_length = 200)]
    pub voice_id: Option<String>,
    /// The agent's `webhook_url`: an absolute http:// or https:// URL.
    #[schema(
        max_length = 2048,
        pattern = r"^https?://[A-Za-z][A-Za-z0-9-]{0,62}(\.[A-Za-z][A-Za-z0-9-]{0,62}){0,8}(:[1-9][0-9]{0,3})?(/[A-Za-z0-9._~/-]*)?$"
    )]
    pub webhook: Option<String>,
    #[schema(max_length = 200)]
    pub llm_model: Option<String>,
    #[schema(max_length = 35)]
    pub language: Option<String>,
}

/// Flyflow's `?id=` of an agent.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AgentIdQuery {
    /// The agent's id.
    #[param(
        pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
    pub id: uuid::Uuid,
}
