//! The HTTP API: the native `/v1` Calls API and resources, one module per vendor dialect,
//! authentication, the error envelope, and the OpenAPI document.
//!
//! Dialect modules only parse requests into domain values and render domain values into
//! their documented JSON; the rules (dispatch validation, idempotency, listing) live once in
//! `dispatch` and the store.

mod agentvoice;
pub mod auth;
mod control;
pub mod dispatch;
pub mod error;
mod events;
pub mod extract;
pub mod listing;
mod notes;
mod omnidim;
pub mod openapi;
mod openapi_links;
pub mod recording;
pub mod resource;
pub mod resources;
pub mod v1;
pub mod views;
mod webhooks;

use auth::{AuthFailureMessage, KeyCache, RateLimiter};
use axum::extract::Request;
use axum::http::{HeaderName, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use error::ApiError;
use std::sync::Arc;
use switchboard_store::{Recordings, Store};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

/// Live-call control the API needs from the telephony engine (hang-up). Implemented by the
/// engine; absent when the server runs without telephony.
pub trait CallControl: Send + Sync {
    /// Ends a live call: CANCEL while ringing, BYE once answered. The future resolves once
    /// the call has ended and its final status and recording are stored (dropping it does not
    /// cancel the hang-up). `None` if the call is not live on this process.
    fn hangup(
        &self,
        call: switchboard_domain::CallId,
    ) -> Option<futures::future::BoxFuture<'static, ()>>;
    /// A call was just queued: wake the dispatcher.
    fn dispatched(&self) {}
    /// Blind transfer of an answered call to an E.164 number or a sip: URI (validated).
    /// `false` if the call is not live on this process.
    fn transfer(&self, _call: switchboard_domain::CallId, _to: &str) -> bool {
        false
    }
    /// Hang-up of a call wherever it is live: on this process, or through the replica that
    /// carries it (bounded wait; see `switchboard_store::Reached`). With `wait_end`, also
    /// waits that long at most for the call to have ended. The default reaches this process
    /// only.
    fn hangup_anywhere(
        &self,
        call: switchboard_domain::CallId,
        wait_end: Option<std::time::Duration>,
    ) -> futures::future::BoxFuture<
        'static,
        Result<switchboard_store::Reached, switchboard_store::StoreError>,
    > {
        use switchboard_store::Reached;
        let ended = self.hangup(call);
        Box::pin(async move {
            Ok(match (ended, wait_end) {
                (None, _) => Reached::NotLive,
                (Some(_), None) => Reached::Accepted,
                (Some(ended), Some(d)) => match tokio::time::timeout(d, ended).await {
                    Ok(()) => Reached::Ended,
                    Err(_) => Reached::Accepted,
                },
            })
        })
    }
    /// Blind transfer wherever the call is live (see [`CallControl::hangup_anywhere`]).
    fn transfer_anywhere(
        &self,
        call: switchboard_domain::CallId,
        to: String,
    ) -> futures::future::BoxFuture<
        'static,
        Result<switchboard_store::Reached, switchboard_store::StoreError>,
    > {
        use switchboard_store::Reached;
        let r = if self.transfer(call, &to) {
            Reached::Accepted
        } else {
            Reached::NotLive
        };
        Box::pin(async move { Ok(r) })
    }
    /// A trunk was created, changed or deleted: bring registrations up to date (in the
    /// background; the API does not wait for the registrar).
    fn trunks_changed(&self) {}
    /// The registration of a trunk that registers: `{"state": "registered", "expires": N}`,
    /// `registering`, `failed` (with `code`, `reason`) or `unregistered`; `None` otherwise.
    fn trunk_registration(&self, _trunk: switchboard_domain::TrunkId) -> Option<serde_json::Value> {
        None
    }
}

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub recordings: Recordings,
    pub keys: Arc<KeyCache>,
    pub limiter: Arc<RateLimiter>,
    /// Absolute base URL for links we hand out (recording_url); taken from the Host header
    /// when not configured.
    pub public_url: Option<String>,
    pub control: Option<Arc<dyn CallControl>>,
    /// `--webhook-allow-private`: webhook URLs may point at private addresses.
    pub webhook_allow_private: bool,
}

impl AppState {
    pub fn new(
        store: Store,
        recordings: Recordings,
        rate_limit_per_sec: u32,
        public_url: Option<String>,
    ) -> Self {
        Self {
            store,
            recordings,
            keys: Arc::new(KeyCache::default()),
            limiter: Arc::new(RateLimiter::new(rate_limit_per_sec)),
            public_url,
            control: None,
            webhook_allow_private: false,
        }
    }
}

fn authed(router: Router<AppState>, state: &AppState, msg: &'static str) -> Router<AppState> {
    router
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_auth,
        ))
        .layer(axum::Extension(AuthFailureMessage(msg)))
}

/// Event data shows calls as `GET /v1/call/{id}` does with every field: the `/v1` call object
/// with the full details and the transcript. Links are absolute with `--public-url`, else
/// relative to the API root (an event outlives the request that caused it).
pub fn install_event_renderer(store: &Store, public_url: Option<&str>) {
    let base = public_url.unwrap_or("").trim_end_matches('/').to_string();
    let shape = listing::Shape {
        fields: switchboard_domain::Fields::Full,
        include: vec![switchboard_domain::IncludeGroup::Transcript],
    };
    store.set_call_renderer(Arc::new(move |call| views::call_v1(call, &base, &shape)));
}

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    let x_request_id = HeaderName::from_static("x-request-id");
    let v1 = authed(
        v1::routes()
            .merge(resources::routes())
            .merge(events::routes())
            .merge(webhooks::routes())
            .merge(notes::routes()),
        &state,
        "Invalid API key",
    );
    let agentvoice = authed(agentvoice::routes(), &state, "Authentication failed")
        .layer(middleware::map_response(agentvoice::error_shape));
    let omnidim = authed(omnidim::routes(), &state, "Invalid API key")
        .layer(middleware::map_response(omnidim::error_shape));
    Router::new()
        .merge(v1)
        .merge(agentvoice)
        .merge(omnidim)
        .route("/healthz", get(healthz))
        .route("/openapi.json", get(openapi::openapi_json))
        .route("/docs", get(openapi::docs_page))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(CatchPanicLayer::custom(|_| ApiError::internal().into_response()))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request| {
                let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
                tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path(), org_id = tracing::field::Empty)
            }),
        )
        .layer(PropagateRequestIdLayer::new(x_request_id.clone()))
        .layer(SetRequestIdLayer::new(x_request_id, MakeRequestUuid))
}

/// `GET /healthz`'s body.
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "schema only")]
pub(crate) struct Health {
    #[schema(inline)]
    status: HealthState,
}

#[derive(utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code, reason = "schema only")]
enum HealthState {
    Ok,
    Unavailable,
}

#[utoipa::path(
    get, path = "/healthz", tag = "service", summary = "Check the server's health",
    description = "200 when the database answers, 503 when it does not. No authentication.",
    security(()),
    responses(
        (status = 200, description = "The server and its database answer", body = Health, example = json!({"status": "ok"})),
        (status = 503, description = "The database does not answer", body = Health, example = json!({"status": "unavailable"}))
    )
)]
pub(crate) async fn healthz(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> Response {
    match state.store.ping().await {
        Ok(()) => Json(serde_json::json!({"status": "ok"})).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "health check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({"status": "unavailable"})),
            )
                .into_response()
        }
    }
}

async fn not_found(req: Request) -> ApiError {
    ApiError::not_found(format!(
        "no route for {} {}; see /openapi.json",
        req.method(),
        req.uri().path()
    ))
}

async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{} is not allowed on {}; see /openapi.json",
            req.method(),
            req.uri().path()
        ),
    )
}
