//! The dashboard (issue 12): server-rendered HTML pages for the people who run the agents,
//! on the API's port. Sign-in by email and password (Argon2id), sessions in the database,
//! a per-session CSRF token on every state change, roles (owner, admin, viewer) and the
//! organization of the signed-in user scoping every read and write.
//!
//! Reads and writes go through the same code as the API: the call listing parses its filters
//! with `switchboard_api::listing` (the AgentVoice parameters), hang-up, delete and the
//! recording are the `/v1` handlers called with the user's organization.
//!
//! Assets (one CSS and one JS file, no build step) are embedded with `include_str!`; pages
//! make no external requests (the Content-Security-Policy says so).

mod auth;
mod calls;
mod html;
mod pages;
mod try_agent;

pub use auth::{generate_password, hash_password, verify_password, Role, MIN_PASSWORD};
pub use pages::valid_email;

use axum::extract::Request;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::middleware::{from_fn, map_response, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use futures::FutureExt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;
use switchboard_agent::providers::Tts;
use switchboard_api::error::ApiError;
use switchboard_api::AppState;
use switchboard_store::Store;
use tokio::sync::Semaphore;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

/// The dashboard's state: the API's (store, recordings, engine control) plus sign-in state.
#[derive(Clone)]
pub struct Dash {
    pub api: AppState,
    /// `Secure` on the session cookie: set when `--public-url` is https.
    pub secure_cookies: bool,
    pub login_limiter: Arc<auth::LoginLimiter>,
    /// The server's configured TTS (what calls speak with), for the agent page's voice
    /// preview; `None`: the preview answers 503.
    pub tts: Option<Arc<dyn Tts>>,
    /// Voice previews synthesising at once (each may be an espeak-ng process or a paid
    /// provider request): beyond it, 429.
    pub previews: Arc<Semaphore>,
}

/// The dashboard's routes, ready to merge into the API router (no fallback of its own), with
/// the API's request layers of their own (the API router's do not reach merged routes):
/// request id, trace span, and a panic caught as a 500 page.
///
/// `tts` is the provider calls speak with (the agent page's voice preview uses it).
pub fn router(api: AppState, tts: Option<Arc<dyn Tts>>) -> Router {
    let secure_cookies = api
        .public_url
        .as_deref()
        .is_some_and(|u| u.to_ascii_lowercase().starts_with("https://"));
    let state = Dash {
        api,
        secure_cookies,
        login_limiter: Arc::new(auth::LoginLimiter::default()),
        tts,
        previews: Arc::new(Semaphore::new(try_agent::MAX_PREVIEWS)),
    };
    let routes = Router::new()
        .route("/", get(|| async { Redirect::to("/overview") }))
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/overview", get(pages::overview))
        .route("/calls", get(calls::calls_page))
        .route("/calls/rows", get(calls::calls_rows))
        .route("/calls/{id}", get(calls::call_page))
        .route("/calls/{id}/recording.mp3", get(calls::recording))
        .route(
            "/calls/{id}/recording.stereo.mp3",
            get(calls::recording_stereo),
        )
        .route("/calls/{id}/hangup", post(calls::hangup))
        .route("/calls/{id}/transfer", post(calls::transfer))
        .route("/calls/{id}/delete", post(calls::delete))
        .route("/agents", get(pages::agents))
        .route(
            "/agents/{id}",
            get(pages::agent_page).post(pages::agent_save),
        )
        .route("/agents/{id}/preview.wav", get(try_agent::preview))
        .route("/agents/{id}/call", post(try_agent::test_call))
        .route("/numbers", get(pages::numbers))
        .route("/trunks", get(pages::trunks))
        .route("/contacts", get(pages::contacts))
        .route("/campaigns", get(pages::campaigns))
        .route("/users", get(pages::users).post(pages::invite_user))
        .route("/users/{id}/remove", post(pages::remove_user))
        .route("/keys", get(pages::keys).post(pages::create_key))
        .route("/keys/{seq}/revoke", post(pages::revoke_key))
        .route("/assets/app.css", get(css))
        .route("/assets/app.js", get(js))
        .with_state(state);
    with_layers(routes)
}

/// The layers every dashboard route gets, innermost first: the panic guard, the security
/// headers (on the 500 page too), the trace span (named like the API's, with the request id),
/// the request id echoed back, and a request id made when the client sent none.
fn with_layers(routes: Router) -> Router {
    let x_request_id = HeaderName::from_static("x-request-id");
    routes
        .layer(from_fn(catch_panic))
        .layer(map_response(security_headers))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let id = req
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-");
            tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path(), org_id = tracing::field::Empty)
        }))
        .layer(PropagateRequestIdLayer::new(x_request_id.clone()))
        .layer(SetRequestIdLayer::new(x_request_id, MakeRequestUuid))
}

/// A handler that panics answers 500 instead of dropping the connection: an HTML page naming
/// the request id (to find the logged panic) for a browser, the API's JSON error otherwise.
/// The panic message itself goes to the log only (it may hold data).
async fn catch_panic(req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_string();
    let html = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    match AssertUnwindSafe(next.run(req)).catch_unwind().await {
        Ok(r) => r,
        Err(panic) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(request_id = %id, panic = %msg, "dashboard handler panicked");
            if html {
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Html(format!(
                        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Something went wrong · Switchboard</title><link rel="stylesheet" href="/assets/app.css"></head>
<body class="login"><main id="main"><h1>Something went wrong</h1>
<p class="notice error" role="alert">An unexpected error occurred; it has been logged with request id <code>{}</code>.</p>
<p><a href="/overview">Back to the overview</a></p></main></body></html>"#,
                        html::esc(&id)
                    )),
                )
                    .into_response()
            } else {
                ApiError::internal().into_response()
            }
        }
    }
}

/// Expired sessions are dropped at each sign-in and, so an idle server's table does not keep
/// them, every `every` (at most `SESSION_PURGE_BATCH` rows a time; the rest wait for the next
/// round). Runs until the task is aborted.
pub fn spawn_session_purge(store: Store, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match store.purge_expired_sessions(SESSION_PURGE_BATCH).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(sessions = n, "expired dashboard sessions purged"),
                Err(e) => tracing::warn!(error = %e, "cannot purge expired dashboard sessions"),
            }
        }
    })
}

/// How often `serve` purges expired sessions, and how many at most per round.
pub const SESSION_PURGE_EVERY: Duration = Duration::from_secs(600);
pub const SESSION_PURGE_BATCH: i64 = 1000;

const CSS: &str = include_str!("../assets/app.css");
const JS: &str = include_str!("../assets/app.js");

async fn css() -> Response {
    asset(CSS, "text/css; charset=utf-8")
}

async fn js() -> Response {
    asset(JS, "text/javascript; charset=utf-8")
}

fn asset(body: &'static str, ctype: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, ctype),
            // Small and embedded: an hour of caching, revalidated after (no ETag machinery).
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// Every dashboard response: nothing but our own origin may load (no CDN, fonts, analytics),
/// no framing (clickjacking), no MIME sniffing, no referrer leaving the site.
async fn security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; media-src 'self'; style-src 'self'; \
             script-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        // Pages show one user's data: never kept by shared caches.
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use tower::ServiceExt;

    async fn buggy() -> &'static str {
        panic!("handler bug with a secret-ish detail")
    }

    fn boom() -> Router {
        with_layers(Router::new().route("/boom", get(buggy)))
    }

    #[tokio::test]
    async fn a_panicking_handler_is_a_500_page_with_the_request_id() {
        let r = boom()
            .oneshot(
                axum::http::Request::builder()
                    .uri("/boom")
                    .header(header::ACCEPT, "text/html,*/*")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
        assert_eq!(id.len(), 36, "a UUID request id: {id}");
        assert!(r.headers().contains_key(header::CONTENT_SECURITY_POLICY));
        let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        let body = String::from_utf8(body.to_vec()).unwrap();
        assert!(
            body.contains("Something went wrong") && body.contains(&id),
            "{body}"
        );
        assert!(
            !body.contains("secret-ish"),
            "the panic message stays in the log"
        );
    }

    #[tokio::test]
    async fn a_panic_for_a_script_is_the_json_error_and_keeps_a_given_request_id() {
        let r = boom()
            .oneshot(
                axum::http::Request::builder()
                    .uri("/boom")
                    .header("x-request-id", "req-123")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(r.headers()["x-request-id"], "req-123");
        let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(v["error"].is_string() && v["message"].is_string(), "{v}");
    }
}
