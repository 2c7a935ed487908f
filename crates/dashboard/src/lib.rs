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

pub use auth::{generate_password, hash_password, verify_password, Role, MIN_PASSWORD};
pub use pages::valid_email;

use axum::http::{header, HeaderValue};
use axum::middleware::map_response;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;
use switchboard_api::AppState;

/// The dashboard's state: the API's (store, recordings, engine control) plus sign-in state.
#[derive(Clone)]
pub struct Dash {
    pub api: AppState,
    /// `Secure` on the session cookie: set when `--public-url` is https.
    pub secure_cookies: bool,
    pub login_limiter: Arc<auth::LoginLimiter>,
}

/// The dashboard's routes, ready to merge into the API router (no fallback of its own).
pub fn router(api: AppState) -> Router {
    let secure_cookies = api
        .public_url
        .as_deref()
        .is_some_and(|u| u.to_ascii_lowercase().starts_with("https://"));
    let state = Dash {
        api,
        secure_cookies,
        login_limiter: Arc::new(auth::LoginLimiter::default()),
    };
    Router::new()
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
        .layer(map_response(security_headers))
        .with_state(state)
}

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
