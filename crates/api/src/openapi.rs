//! The OpenAPI 3.1 document (`GET /openapi.json`) and the reference page that renders it
//! (`GET /docs`), both generated from the code: each handler carries a `#[utoipa::path]`
//! annotation, and the JSON it builds by hand is described by the schema structs below.
//!
//! Adding a module's endpoints: annotate its handlers with `#[utoipa::path]` (give them
//! `pub(crate)` visibility) and either list them in `paths(...)` of [`NativeDoc`], or give the
//! module its own `#[derive(OpenApi)]` struct and add one line to [`document`]:
//! `doc.merge(crate::omnidim::ApiDoc::openapi());`.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;
use std::sync::OnceLock;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{RefOr, ResponseBuilder};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};

/// The reference page: plain HTML and inline JavaScript, no external assets.
const DOCS_HTML: &str = include_str!("docs.html");

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Switchboard API",
        description = "Self-hosted voice-AI call platform. The native `/v1` API: calls (Flyflow \
            calls and the call resource in one superset), recordings, and the agents, phone \
            numbers, SIP trunks, contacts and campaigns resources. Every error is \
            `{\"error\": \"<status reason>\", \"message\": \"<what is wrong and what is allowed>\"}`."
    ),
    paths(
        crate::v1::create_call,
        crate::v1::get_call_by_query,
        crate::v1::list_calls,
        crate::v1::set_context,
        crate::v1::get_call,
        crate::v1::delete_call,
        crate::v1::hangup,
        crate::v1::transfer,
        crate::recording::get_recording,
        crate::resources::list_agents,
        crate::resources::create_agent,
        crate::resources::get_agent,
        crate::resources::update_agent,
        crate::resources::delete_agent,
        crate::resources::flyflow_get_agent,
        crate::resources::flyflow_upsert_agent,
        crate::resources::flyflow_delete_agent,
        crate::resources::list_numbers,
        crate::resources::create_number,
        crate::resources::get_number,
        crate::resources::update_number,
        crate::resources::delete_number,
        crate::resources::list_trunks,
        crate::resources::create_trunk,
        crate::resources::get_trunk,
        crate::resources::update_trunk,
        crate::resources::delete_trunk,
        crate::resources::list_contacts,
        crate::resources::create_contact,
        crate::resources::get_contact,
        crate::resources::update_contact,
        crate::resources::delete_contact,
        crate::resources::list_campaigns,
        crate::resources::create_campaign,
        crate::resources::get_campaign,
        crate::resources::update_campaign,
        crate::resources::delete_campaign,
    ),
    components(schemas(ErrorBody, CallStatus, CallType, OrderBy, Order, Fields, Transport, CampaignStatus)),
    modifiers(&Security, &CommonErrors),
    security(("bearer" = []), ("api_key" = [], "organization_id" = [])),
    tags(
        (name = "calls", description = "Dispatch, list, read, update and delete calls; recordings"),
        (name = "agents", description = "Agents, including Flyflow's /v1/agent endpoints"),
        (name = "phone-numbers", description = "Phone numbers owned by the organization"),
        (name = "sip-trunks", description = "SIP trunks that carry the calls"),
        (name = "contacts", description = "People the organization calls"),
        (name = "campaigns", description = "Groups of calls"),
    )
)]
pub struct NativeDoc;

/// The whole document: the native API plus every dialect module's document.
pub fn document() -> utoipa::openapi::OpenApi {
    #[allow(unused_mut, reason = "dialect modules merge their documents here")]
    let mut doc = NativeDoc::openapi();
    // Dialects: one line each, e.g. `doc.merge(crate::omnidim::ApiDoc::openapi());`
    doc
}

/// `GET /openapi.json`: built once, served from memory.
pub async fn openapi_json() -> Response {
    static DOC: OnceLock<Value> = OnceLock::new();
    let v = DOC.get_or_init(|| serde_json::to_value(document()).unwrap_or(Value::Null));
    Json(v.clone()).into_response()
}

/// `GET /docs`: the API reference page.
pub async fn docs_page() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        DOCS_HTML,
    )
        .into_response()
}

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let c = openapi.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("`Authorization: Bearer <API key>`"))
                    .build(),
            ),
        );
        c.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "x-api-key",
                "The API key; sent together with x-organization-id",
            ))),
        );
        c.add_security_scheme(
            "organization_id",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "x-organization-id",
                "The organization the key belongs to; sent together with x-api-key",
            ))),
        );
    }
}

/// The errors every authenticated operation can answer, added to each operation as references
/// to shared responses, so the annotations list only what is specific to a handler.
struct CommonErrors;

impl Modify for CommonErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let common = [
            ("401", "Unauthorized", "Missing or invalid API key"),
            (
                "429",
                "TooManyRequests",
                "The organization's rate limit was exceeded; retry after a moment",
            ),
            (
                "500",
                "InternalError",
                "An unexpected error; it has been logged",
            ),
        ];
        let c = openapi.components.get_or_insert_with(Default::default);
        for (_, name, desc) in common {
            let resp = ResponseBuilder::new()
                .description(desc)
                .content(
                    "application/json",
                    utoipa::openapi::ContentBuilder::new()
                        .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                            "ErrorBody",
                        ))))
                        .build(),
                )
                .build();
            c.responses.insert(name.to_string(), RefOr::T(resp));
        }
        for item in openapi.paths.paths.values_mut() {
            let ops = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ];
            for op in ops.into_iter().flatten() {
                for (code, name, _) in common {
                    op.responses
                        .responses
                        .entry(code.to_string())
                        .or_insert_with(|| {
                            RefOr::Ref(utoipa::openapi::Ref::new(format!(
                                "#/components/responses/{name}"
                            )))
                        });
                }
            }
        }
    }
}

// ----- shared shapes -----

/// The one error envelope of every endpoint.
#[derive(ToSchema)]
#[schema(example = json!({"error": "Bad Request", "message": "limit must be an integer between 1 and 100, got \"0\""}))]
pub struct ErrorBody {
    /// The HTTP status reason, e.g. `Bad Request`.
    pub error: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

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

#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum Transport {
    Udp,
    Tcp,
}

#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum CampaignStatus {
    Draft,
    Active,
    Paused,
    Completed,
}

/// `{"id": ..., "deleted": true}`.
#[derive(ToSchema)]
pub struct Deleted {
    pub id: uuid::Uuid,
    pub deleted: bool,
}

// ----- query parameters -----

/// Query parameters of `GET /v1/calls`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListCallsQuery {
    /// Only calls of this agent.
    pub agent_id: Option<uuid::Uuid>,
    /// Only calls with this customer number (E.164, e.g. +14155551234).
    #[param(pattern = r"^\+[1-9][0-9]{1,14}$")]
    pub client_number: Option<String>,
    /// Same as `client_number` (AgentVoice's name for it).
    #[param(pattern = r"^\+[1-9][0-9]{1,14}$")]
    pub phone_number: Option<String>,
    /// Only calls with this contact.
    pub contact_id: Option<uuid::Uuid>,
    /// Only calls of this campaign.
    pub campaign_id: Option<uuid::Uuid>,
    #[param(inline)]
    pub status: Option<CallStatus>,
    #[param(inline)]
    pub call_type: Option<CallType>,
    /// Calls starting at or after this instant (ISO 8601 date or date-time; UTC if no offset).
    pub from: Option<String>,
    /// Calls starting at or before this instant; not earlier than `from`.
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
    /// The `cursor` of the previous page, unchanged; pass the same `order_by` and `order`.
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
    pub id: uuid::Uuid,
    #[param(inline)]
    pub fields: Option<Fields>,
    /// Comma-separated detail groups: `transcript`, `metrics`, `diagnostics`, `actions`.
    pub include: Option<String>,
}

/// Paging of a resource list.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page size, 1 to 100 (default 10).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `cursor` of the previous page, unchanged.
    pub cursor: Option<String>,
}

/// Flyflow's `?id=` of an agent.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AgentIdQuery {
    /// The agent's id.
    pub id: uuid::Uuid,
}

// ----- calls -----

/// `POST /v1/call`. Pass `from` (a number bound to an agent) or `agent_id`, or both.
#[derive(ToSchema)]
pub struct CreateCallBody {
    /// The E.164 number to call.
    #[schema(example = "+14155551234", pattern = r"^\+[1-9][0-9]{1,14}$")]
    pub to: String,
    /// One of the organization's numbers; its agent answers unless `agent_id` is given.
    pub from: Option<String>,
    pub agent_id: Option<uuid::Uuid>,
    /// Free-form JSON object handed to the agent.
    #[schema(value_type = Option<Object>)]
    pub context: Option<Value>,
    /// Free-form JSON object kept with the call.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    /// Wait for the callee to speak first (default false).
    pub user_speaks_first: Option<bool>,
    pub campaign_id: Option<uuid::Uuid>,
    /// Seconds to let it ring, 1 to 300.
    #[schema(minimum = 1, maximum = 300)]
    pub ring_timeout: Option<i64>,
}

/// `POST /v1/call/context`.
#[derive(ToSchema)]
pub struct ContextBody {
    /// The call whose context to replace.
    pub id: uuid::Uuid,
    /// The new context (a JSON object) or null to clear it.
    #[schema(value_type = Option<Object>)]
    pub context: Option<Value>,
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
    #[schema(value_type = Option<Object>)]
    pub context: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    pub user_speaks_first: bool,
    pub campaign_id: Option<uuid::Uuid>,
    /// Final SIP response code.
    pub sip_code: Option<i64>,
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

// ----- resources -----

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

#[derive(ToSchema)]
pub struct AgentList {
    pub num_items: u32,
    pub cursor: Option<String>,
    pub agents: Vec<Agent>,
}

#[derive(ToSchema)]
pub struct PhoneNumber {
    pub id: uuid::Uuid,
    /// Stable integer id.
    pub number_id: i64,
    pub phone_number: String,
    pub label: Option<String>,
    pub agent_id: Option<uuid::Uuid>,
    pub trunk_id: Option<uuid::Uuid>,
    pub created_at: String,
}

/// Phone number fields; `phone_number` is required on create.
#[derive(ToSchema)]
pub struct PhoneNumberInput {
    /// E.164.
    #[schema(pattern = r"^\+[1-9][0-9]{1,14}$")]
    pub phone_number: Option<String>,
    #[schema(max_length = 200)]
    pub label: Option<String>,
    /// The agent that answers calls to this number.
    pub agent_id: Option<uuid::Uuid>,
    pub trunk_id: Option<uuid::Uuid>,
}

#[derive(ToSchema)]
pub struct PhoneNumberList {
    pub num_items: u32,
    pub cursor: Option<String>,
    pub phone_numbers: Vec<PhoneNumber>,
}

/// A SIP trunk; the password is never shown, only `has_password`.
#[derive(ToSchema)]
pub struct SipTrunk {
    pub id: uuid::Uuid,
    pub name: String,
    pub host: String,
    pub port: u16,
    pub transport: Transport,
    pub username: Option<String>,
    pub default_caller_id: Option<String>,
    pub is_default: bool,
    pub register: bool,
    pub inbound_sources: Vec<String>,
    pub created_at: String,
    pub has_password: bool,
    /// Live state of the registration when `register` is set (and credentials are given):
    /// `{"state": "registering" | "registered" | "failed" | "unregistered", "expires": seconds
    /// granted, "code", "reason" of a failure}`; null when the trunk does not register.
    pub registration: Option<TrunkRegistration>,
}

/// Where to transfer the call.
#[derive(ToSchema)]
pub struct TransferBody {
    /// An E.164 number (`+14155550123`) or a SIP URI (`sip:desk@pbx.example.com`).
    pub to: String,
}

#[derive(ToSchema)]
pub struct TrunkRegistration {
    pub state: String,
    pub expires: Option<u32>,
    pub code: Option<u16>,
    pub reason: Option<String>,
}

/// SIP trunk fields; `name` and `host` are required on create.
#[derive(ToSchema)]
pub struct SipTrunkInput {
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    /// Hostname or IP address.
    #[schema(max_length = 253)]
    pub host: Option<String>,
    /// Default 5060.
    #[schema(minimum = 1, maximum = 65535)]
    pub port: Option<i64>,
    pub transport: Option<Transport>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub default_caller_id: Option<String>,
    pub is_default: Option<bool>,
    pub register: Option<bool>,
    /// IP addresses allowed to send inbound calls.
    pub inbound_sources: Option<Vec<String>>,
}

#[derive(ToSchema)]
pub struct SipTrunkList {
    pub num_items: u32,
    pub cursor: Option<String>,
    pub sip_trunks: Vec<SipTrunk>,
}

#[derive(ToSchema)]
pub struct Contact {
    pub id: uuid::Uuid,
    pub identifier: String,
    pub contact_type: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub created_date: String,
}

/// Contact fields; `identifier` is required on create.
#[derive(ToSchema)]
pub struct ContactInput {
    /// The contact's E.164 number.
    #[schema(pattern = r"^\+[1-9][0-9]{1,14}$")]
    pub identifier: Option<String>,
    #[schema(min_length = 1, max_length = 200)]
    pub contact_type: Option<String>,
    #[schema(max_length = 200)]
    pub first_name: Option<String>,
    #[schema(max_length = 200)]
    pub last_name: Option<String>,
    #[schema(max_length = 320)]
    pub email: Option<String>,
}

#[derive(ToSchema)]
pub struct ContactList {
    pub num_items: u32,
    pub cursor: Option<String>,
    pub contacts: Vec<Contact>,
}

#[derive(ToSchema)]
pub struct Campaign {
    pub id: uuid::Uuid,
    pub name: String,
    pub agent_id: Option<uuid::Uuid>,
    pub status: CampaignStatus,
    pub created_at: String,
}

/// Campaign fields; `name` is required on create.
#[derive(ToSchema)]
pub struct CampaignInput {
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    pub agent_id: Option<uuid::Uuid>,
    pub status: Option<CampaignStatus>,
}

#[derive(ToSchema)]
pub struct CampaignList {
    pub num_items: u32,
    pub cursor: Option<String>,
    pub campaigns: Vec<Campaign>,
}

#[cfg(test)]
mod tests {
    #[test]
    fn document_is_3_1_and_lists_the_calls_api() {
        let v = serde_json::to_value(super::document()).unwrap();
        assert!(v["openapi"].as_str().unwrap().starts_with("3.1"));
        for p in [
            "/v1/calls",
            "/v1/call",
            "/v1/call/{id}",
            "/v1/call/recording/{file}",
            "/v1/agents",
            "/v1/agent",
        ] {
            assert!(v["paths"].get(p).is_some(), "missing {p}");
        }
        assert!(v["components"]["schemas"].get("ErrorBody").is_some());
        assert!(v["components"]["securitySchemes"].get("bearer").is_some());
    }
}
