//! The OpenAPI 3.1 document (`GET /openapi.json`) and the reference page that renders it
//! (`GET /docs`), both generated from the code: each handler carries a `#[utoipa::path]`
//! annotation, and the JSON it builds by hand is described by schema structs that sit beside
//! the code producing it (`v1::schema`, `resources::*`, `resource`, `error`). This module only
//! collects them.
//!
//! Adding a module's endpoints: annotate its handlers with `#[utoipa::path]` (give them
//! `pub(crate)` visibility) and either list them in `paths(...)` of [`NativeDoc`], or give the
//! module its own `#[derive(OpenApi)]` struct and add one line to [`document`]:
//! `doc.merge(crate::omnidim::ApiDoc::openapi());`. A resource declared with
//! `resource_endpoints!` has five handlers to list here.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use std::sync::OnceLock;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

/// The reference page: plain HTML and inline JavaScript, no external assets.
const DOCS_HTML: &str = include_str!("docs.html");

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Switchboard API",
        description = "Self-hosted voice-AI call platform. Every JSON route the server answers: \
            the native `/v1` API (calls — Flyflow calls and the call resource in one superset —, \
            recordings, notes, events, webhook endpoints, and the agents, phone numbers, SIP \
            trunks, contacts and campaigns resources), the AgentVoice dialect (`/api/calls`), \
            the OmniDimension dialect (`/api/v1/...`), `/healthz`, this document and `/docs`. \
            The dashboard's HTML pages (`/login`, `/overview`, `/calls`, ...) share the port but \
            are not part of the API and are not described here. Every error is \
            `{\"error\": \"<status reason>\", \"message\": \"<what is wrong and what is allowed>\"}` \
            (OmniDimension: `{\"error\": \"<snake_case reason>\", \"error_description\": ...}`, \
            as its client reads it). Optional query parameters given empty (`?cursor=`) count as \
            absent (`allowEmptyValue`). A 400 means a value outside its documented shape; a 422 a \
            request whose values are each valid but cannot be served together or in the \
            current state (an id that does not exist, an Idempotency-Key reused with another \
            body, `from` later than `to`, a cursor of another order, two tools of one name). \
            No string, in a body or a parameter, may contain the NUL character (U+0000): it is a \
            400 (PostgreSQL cannot store it). \
            Every operation may answer 503 with `Retry-After` while the database is unreachable."
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
        crate::resources::agents::list_agents,
        crate::resources::agents::create_agent,
        crate::resources::agents::get_agent,
        crate::resources::agents::update_agent,
        crate::resources::agents::delete_agent,
        crate::resources::agents::flyflow_get_agent,
        crate::resources::agents::flyflow_upsert_agent,
        crate::resources::agents::flyflow_delete_agent,
        crate::resources::numbers::list_numbers,
        crate::resources::numbers::create_number,
        crate::resources::numbers::get_number,
        crate::resources::numbers::update_number,
        crate::resources::numbers::delete_number,
        crate::resources::trunks::list_trunks,
        crate::resources::trunks::create_trunk,
        crate::resources::trunks::get_trunk,
        crate::resources::trunks::update_trunk,
        crate::resources::trunks::delete_trunk,
        crate::resources::contacts::list_contacts,
        crate::resources::contacts::create_contact,
        crate::resources::contacts::get_contact,
        crate::resources::contacts::update_contact,
        crate::resources::contacts::delete_contact,
        crate::resources::campaigns::list_campaigns,
        crate::resources::campaigns::create_campaign,
        crate::resources::campaigns::get_campaign,
        crate::resources::campaigns::update_campaign,
        crate::resources::campaigns::delete_campaign,
        crate::events::list_events,
        crate::events::get_event,
        crate::webhooks::create_endpoint,
        crate::webhooks::list_endpoints,
        crate::webhooks::get_endpoint,
        crate::webhooks::update_endpoint,
        crate::webhooks::delete_endpoint,
        crate::webhooks::rotate_secret,
        crate::webhooks::list_deliveries,
        crate::webhooks::retry_delivery,
        crate::webhooks::agent_secret,
        crate::healthz,
        openapi_json,
        docs_page,
    ),
    components(schemas(
        crate::error::ErrorBody,
        crate::error::OmniErrorBody,
        crate::v1::schema::CallStatus,
        crate::v1::schema::CallList,
        crate::v1::schema::CallType,
        crate::v1::schema::OrderBy,
        crate::v1::schema::Order,
        crate::v1::schema::Fields,
        crate::resources::trunks::Transport,
        crate::resources::campaigns::CampaignStatus,
    )),
    security(("bearer" = []), ("api_key" = [], "organization_id" = [])),
    tags(
        (name = "calls", description = "Dispatch, list, read, update and delete calls; recordings"),
        (name = "agents", description = "Agents, including Flyflow's /v1/agent endpoints"),
        (name = "phone-numbers", description = "Phone numbers owned by the organization"),
        (name = "sip-trunks", description = "SIP trunks that carry the calls"),
        (name = "contacts", description = "People the organization calls"),
        (name = "campaigns", description = "Groups of calls"),
        (name = "events", description = "The organization's event log, replayable from any point"),
        (name = "webhooks", description = "Endpoints that receive the events, signed the Standard Webhooks way, with their delivery attempts"),
        (name = "agentvoice", description = "The AgentVoice dialect: its calls list and call, with its parameter names and payloads"),
        (name = "omnidimension", description = "The OmniDimension dialect (`/api/v1`), as its Python client calls it: agents and phone numbers by integer id, call logs, dispatch"),
        (name = "service", description = "Health check and this document"),
    )
)]
pub struct NativeDoc;

/// The whole document: the native API plus every dialect module's document. The shared
/// responses (401, 429, 500, 503, and 400/413/415 of a JSON body), the security schemes and
/// the links between operations are added after the merge, so they reach every module's
/// operations alike.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = NativeDoc::openapi();
    // Dialects: one line each.
    doc.merge(crate::notes::ApiDoc::openapi());
    doc.merge(crate::agentvoice::ApiDoc::openapi());
    doc.merge(crate::omnidim::ApiDoc::openapi());
    Security.modify(&mut doc);
    CommonErrors.modify(&mut doc);
    doc
}

/// The document as served: [`document`] as JSON, with the links between operations.
pub fn document_json() -> Value {
    let mut v = serde_json::to_value(document()).unwrap_or(Value::Null);
    for (at, schema) in raw_parts() {
        match v.pointer_mut(at) {
            Some(slot) => *slot = schema,
            None => debug_assert!(false, "no {at} in the document"),
        }
    }
    // A call needs an agent: `agent_id`, or `from` (a number bound to one).
    v["components"]["schemas"]["CreateCallBody"]["anyOf"] = json!([
        {"required": ["agent_id"], "properties": {"agent_id": {"type": "string"}}},
        {"required": ["from"], "properties": {"from": {"type": "string", "minLength": 1}}}
    ]);
    closed_bodies(&mut v);
    create_bodies(&mut v);
    empty_query_values(&mut v);
    crate::openapi_links::add_links(&mut v);
    v
}

/// A resource's create and update take the same fields, and a create also needs some: its
/// body is `<Input>Create`, the input with these fields required (and not null).
const CREATE_REQUIRES: &[(&str, &str, &[&str])] = &[
    ("create_agent", "AgentInput", &["name"]),
    ("create_number", "PhoneNumberInput", &["phone_number"]),
    ("create_trunk", "SipTrunkInput", &["name", "host"]),
    ("create_contact", "ContactInput", &["identifier"]),
    ("create_campaign", "CampaignInput", &["name"]),
];

fn create_bodies(doc: &mut Value) {
    for (op_id, input, required) in CREATE_REQUIRES {
        let mut schema = doc["components"]["schemas"][*input].clone();
        schema["required"] = json!(required);
        let name = format!("{input}Create");
        doc["components"]["schemas"][&name] = schema;
        if let Some(paths) = doc["paths"].as_object_mut() {
            for item in paths.values_mut() {
                for op in item
                    .as_object_mut()
                    .into_iter()
                    .flat_map(|m| m.values_mut())
                {
                    if op["operationId"] == *op_id {
                        op["requestBody"]["content"]["application/json"]["schema"] =
                            json!({"$ref": format!("#/components/schemas/{name}")});
                    }
                }
            }
        }
    }
}

/// Every optional query parameter given empty (`?cursor=`) counts as absent (`QueryMap`):
/// `allowEmptyValue` says so, parameter by parameter.
fn empty_query_values(doc: &mut Value) {
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for item in paths.values_mut() {
        for op in item
            .as_object_mut()
            .into_iter()
            .flat_map(|m| m.values_mut())
        {
            let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) else {
                continue;
            };
            for p in params {
                if p["in"] == "query" && p["required"] != true {
                    p["allowEmptyValue"] = Value::Bool(true);
                }
            }
        }
    }
}

/// Request bodies whose unknown fields are kept (Flyflow's and OmniDimension's agent bodies
/// keep every other option in the agent's `settings`); every other body refuses unknown
/// fields with a 400, which the document says with `additionalProperties: false`.
const OPEN_BODIES: &[&str] = &["FlyflowAgentInput", "CreateAgentBody"];

fn closed_bodies(doc: &mut Value) {
    let mut names = Vec::new();
    if let Some(paths) = doc["paths"].as_object() {
        for item in paths.values() {
            for op in item.as_object().into_iter().flat_map(|m| m.values()) {
                let r = &op["requestBody"]["content"]["application/json"]["schema"]["$ref"];
                if let Some(name) = r.as_str().and_then(|r| r.rsplit('/').next()) {
                    if !OPEN_BODIES.contains(&name) {
                        names.push(name.to_string());
                    }
                }
            }
        }
    }
    for name in names {
        if let Some(m) = doc["components"]["schemas"][&name].as_object_mut() {
            m.entry("additionalProperties")
                .or_insert(Value::Bool(false));
        }
    }
}

#[utoipa::path(
    get, path = "/openapi.json", tag = "service", summary = "Get this OpenAPI document",
    security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object))
)]
/// `GET /openapi.json`: built once, served from memory.
pub async fn openapi_json() -> Response {
    static DOC: OnceLock<Value> = OnceLock::new();
    let v = DOC.get_or_init(document_json);
    Json(v.clone()).into_response()
}

#[utoipa::path(
    get, path = "/docs", tag = "service", summary = "Read the API reference page",
    description = "This document rendered as HTML (no external assets).",
    security(()),
    responses((status = 200, description = "The reference page", content_type = "text/html", body = String))
)]
/// `GET /docs`: the API reference page.
pub async fn docs_page() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        DOCS_HTML,
    )
        .into_response()
}

/// A JSON object or a string, or null (a call's `context`).
fn object_or_string() -> Value {
    json!({"oneOf": [{"type": "object"}, {"type": "string"}, {"type": "null"}]})
}

/// Parts of the document written as JSON Schema, for shapes the derive cannot state (unions,
/// nested rules): (JSON pointer into the document, the schema), applied to the serialized
/// document. The pointed-at places hold a placeholder from the derive.
fn raw_parts() -> Vec<(&'static str, Value)> {
    let mut v = crate::resources::agents::raw_schemas();
    v.push((
        "/components/schemas/SipTrunkInput/properties/inbound_sources",
        crate::resources::trunks::ip_list(),
    ));
    for s in ["CreateCallBody", "ContextBody", "CallV1"] {
        let p: &'static str =
            Box::leak(format!("/components/schemas/{s}/properties/context").into_boxed_str());
        v.push((p, object_or_string()));
    }
    // A calls list answers a page, or with most_recent=true the one call.
    for (path, page, one) in [
        ("~1v1~1calls", "CallList", "CallV1"),
        ("~1api~1calls", "AgentVoiceCallList", "AgentVoiceCall"),
    ] {
        let p: &'static str = Box::leak(
            format!("/paths/{path}/get/responses/200/content/application~1json/schema")
                .into_boxed_str(),
        );
        v.push((
            p,
            json!({"oneOf": [
                {"$ref": format!("#/components/schemas/{page}")},
                {"$ref": format!("#/components/schemas/{one}")}
            ]}),
        ));
    }
    v
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

/// The errors every operation can answer, added to each operation as references to shared
/// responses, so the annotations list only what is specific to a handler: 401 and 429 behind
/// authentication, 500 and 503 (database unreachable) everywhere the database is used, and
/// 400 (malformed JSON), 413 and 415 wherever a JSON body is read. The OmniDimension routes
/// get the same responses in their own error shape.
struct CommonErrors;

/// (status, component name, description, needs authentication, needs a body).
const COMMON: &[(&str, &str, &str, bool, bool)] = &[
    ("400", "BadRequest", "Malformed JSON, or a field of the wrong type", false, true),
    ("401", "Unauthorized", "Missing or invalid API key", true, false),
    ("413", "PayloadTooLarge", "Body over 1 MiB", false, true),
    ("415", "UnsupportedMediaType", "Content-Type is not application/json", false, true),
    (
        "429",
        "TooManyRequests",
        "The organization's rate limit was exceeded; retry after the Retry-After delay",
        true,
        false,
    ),
    ("500", "InternalError", "An unexpected error; it has been logged", false, false),
    (
        "503",
        "ServiceUnavailable",
        "The database is unreachable (or the replica carrying a live call did not answer); retry after the Retry-After delay",
        false,
        false,
    ),
];

fn error_response(desc: &str, schema: &str, retry_after: bool) -> utoipa::openapi::Response {
    let mut b = ResponseBuilder::new().description(desc).content(
        "application/json",
        utoipa::openapi::ContentBuilder::new()
            .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                schema,
            ))))
            .build(),
    );
    if retry_after {
        b = b.header(
            "Retry-After",
            utoipa::openapi::HeaderBuilder::new()
                .schema(
                    utoipa::openapi::ObjectBuilder::new()
                        .schema_type(utoipa::openapi::schema::Type::Integer),
                )
                .description(Some("Seconds to wait before retrying"))
                .build(),
        );
    }
    b.build()
}

impl Modify for CommonErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let c = openapi.components.get_or_insert_with(Default::default);
        for (code, name, desc, _, _) in COMMON {
            let retry = matches!(*code, "429" | "503");
            c.responses.insert(
                name.to_string(),
                RefOr::T(error_response(desc, "ErrorBody", retry)),
            );
            c.responses.insert(
                format!("Omni{name}"),
                RefOr::T(error_response(desc, "OmniErrorBody", retry)),
            );
        }
        for (path, item) in openapi.paths.paths.iter_mut() {
            // The document and its page touch nothing that can fail; /healthz documents its
            // own 503.
            if matches!(path.as_str(), "/openapi.json" | "/docs") {
                continue;
            }
            let public = path == "/healthz";
            let prefix = if path.starts_with("/api/v1/") {
                "Omni"
            } else {
                ""
            };
            let ops = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ];
            for op in ops.into_iter().flatten() {
                let has_body = op.request_body.is_some();
                for (code, name, _, authed, body) in COMMON {
                    if (*authed && public) || (*body && !has_body) {
                        continue;
                    }
                    if public && *code == "503" {
                        continue;
                    }
                    op.responses
                        .responses
                        .entry(code.to_string())
                        .or_insert_with(|| {
                            RefOr::Ref(utoipa::openapi::Ref::new(format!(
                                "#/components/responses/{prefix}{name}"
                            )))
                        });
                }
            }
        }
    }
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
