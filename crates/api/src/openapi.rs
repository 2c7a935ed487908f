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
use serde_json::Value;
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
    ),
    components(schemas(
        crate::error::ErrorBody,
        crate::v1::schema::CallStatus,
        crate::v1::schema::CallType,
        crate::v1::schema::OrderBy,
        crate::v1::schema::Order,
        crate::v1::schema::Fields,
        crate::resources::trunks::Transport,
        crate::resources::campaigns::CampaignStatus,
    )),
    modifiers(&Security, &CommonErrors),
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
    )
)]
pub struct NativeDoc;

/// The whole document: the native API plus every dialect module's document.
pub fn document() -> utoipa::openapi::OpenApi {
    #[allow(unused_mut, reason = "dialect modules merge their documents here")]
    let mut doc = NativeDoc::openapi();
    // Dialects: one line each, e.g. `doc.merge(crate::omnidim::ApiDoc::openapi());`
    doc.merge(crate::notes::ApiDoc::openapi());
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
