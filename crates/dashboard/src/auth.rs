//! Sign-in, sessions, CSRF and roles.
//!
//! - Passwords: Argon2id (RFC 9106) with the crate's default parameters (19 MiB, t=2, p=1,
//!   the OWASP minimum), PHC strings in `users.password_hash`.
//! - Sessions: a random 256-bit token in the `sb_session` cookie (HttpOnly, SameSite=Lax,
//!   Secure behind https), its SHA-256 in `sessions`; 12 hours.
//! - CSRF: every POST must carry the session's random token (hidden `csrf` field or the
//!   `x-csrf-token` header) and, when the browser sends `Origin`, come from our own origin.
//! - Sign-in attempts: 5 failures per email per 15 minutes, then 429 until the window ends.

use crate::html::{esc, Notice};
use crate::Dash;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use rand::RngCore;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use switchboard_api::error::ApiError;
use switchboard_domain::{OrgId, Timestamp};
use switchboard_store::User;

pub const COOKIE: &str = "sb_session";
const SESSION_HOURS: i64 = 12;
const MAX_FAILURES: u32 = 5;
const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Shortest password `user create --password-stdin` and invitations accept.
pub const MIN_PASSWORD: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Viewer,
    Admin,
    Owner,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "owner" => Some(Role::Owner),
            "admin" => Some(Role::Admin),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Viewer => "viewer",
        }
    }
}

pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

fn random_hex(bytes: usize) -> String {
    let mut raw = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut raw);
    hex::encode(raw)
}

/// A generated password: 128 random bits as 32 hex characters.
pub fn generate_password() -> String {
    random_hex(16)
}

/// Failed sign-ins per email (lower-cased), in a fixed window.
#[derive(Default)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl LoginLimiter {
    /// `Err(seconds to wait)` while the email is locked out.
    fn check(&self, email: &str) -> Result<(), u64> {
        let m = self.failures.lock().map_err(|_| 1u64)?;
        match m.get(email) {
            Some((n, since)) if *n >= MAX_FAILURES && since.elapsed() < FAILURE_WINDOW => {
                Err((FAILURE_WINDOW - since.elapsed()).as_secs().max(1))
            }
            _ => Ok(()),
        }
    }
    fn fail(&self, email: &str) {
        if let Ok(mut m) = self.failures.lock() {
            if m.len() > 100_000 {
                m.retain(|_, (_, since)| since.elapsed() < FAILURE_WINDOW);
            }
            let e = m.entry(email.to_string()).or_insert((0, Instant::now()));
            if e.1.elapsed() >= FAILURE_WINDOW {
                *e = (0, Instant::now());
            }
            e.0 += 1;
        }
    }
    fn clear(&self, email: &str) {
        if let Ok(mut m) = self.failures.lock() {
            m.remove(email);
        }
    }
}

/// The signed-in user of a request.
pub struct Me {
    pub user: User,
    pub role: Role,
    pub csrf: String,
    token: String,
}

impl Me {
    pub fn org(&self) -> OrgId {
        self.user.org_id
    }
    /// Changes need owner or admin: a viewer sees everything and changes nothing.
    pub fn can_change(&self) -> bool {
        self.role >= Role::Admin
    }
    pub fn require_change(&self) -> Result<(), ApiError> {
        if self.can_change() {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "viewers can look at everything but change nothing; ask an owner or admin",
            ))
        }
    }
    pub fn require_owner(&self) -> Result<(), ApiError> {
        if self.role == Role::Owner {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "only an owner of the organization can do this",
            ))
        }
    }
    /// CSRF check for a state change: the session's token (form field or header, compared in
    /// constant time) and, when the browser says where the request comes from, our origin.
    pub fn check_csrf(
        &self,
        headers: &HeaderMap,
        form: &HashMap<String, String>,
    ) -> Result<(), ApiError> {
        same_origin(headers)?;
        let given = headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .or(form.get("csrf").map(String::as_str))
            .unwrap_or("");
        if !constant_time_eq(given.as_bytes(), self.csrf.as_bytes()) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "the form's CSRF token is missing or stale; reload the page and try again",
            ));
        }
        Ok(())
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `Origin` (sent by browsers on every POST) must name the host the request was sent to.
fn same_origin(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin_host = url::Url::parse(origin).ok().and_then(|u| {
        let h = u.host_str()?.to_string();
        Some(match u.port() {
            Some(p) => format!("{h}:{p}"),
            None => h,
        })
    });
    if origin_host.as_deref() == Some(host) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "cross-site request refused (Origin does not match this site)",
        ))
    }
}

pub fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// Parses an `application/x-www-form-urlencoded` body (the last value of a name wins).
pub fn form(body: &Bytes) -> HashMap<String, String> {
    url::form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

impl FromRequestParts<Dash> for Me {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, state: &Dash) -> Result<Me, Response> {
        let Some(token) = cookie_value(&parts.headers, COOKIE) else {
            return Err(not_signed_in(parts));
        };
        match state.api.store.session(&token).await {
            Ok(Some(s)) => {
                let Some(role) = Role::parse(&s.user.role) else {
                    tracing::error!(user = %s.user.id, role = %s.user.role, "user has an unknown role");
                    return Err(ApiError::internal().into_response());
                };
                // The request's trace span (see `with_layers`) names the organization, as the
                // API's auth does for keys.
                tracing::Span::current().record("org_id", tracing::field::display(s.user.org_id));
                Ok(Me {
                    user: s.user,
                    role,
                    csrf: s.csrf_token,
                    token,
                })
            }
            Ok(None) => Err(not_signed_in(parts)),
            Err(e) => Err(ApiError::from(e).into_response()),
        }
    }
}

/// A page asks for sign-in (303 to /login, coming back afterwards); anything else (a
/// form post, the live rows, a recording, a voice preview) gets a 401.
fn not_signed_in(parts: &Parts) -> Response {
    let path = parts.uri.path();
    let is_page = parts.method == Method::GET
        && !path.ends_with(".mp3")
        && !path.ends_with(".wav")
        && !path.starts_with("/calls/rows");
    if is_page {
        let back = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let next: String = url::form_urlencoded::byte_serialize(back.as_bytes()).collect();
        Redirect::to(&format!("/login?next={next}")).into_response()
    } else {
        ApiError::unauthorized("sign in first (your session has ended or never began)")
            .into_response()
    }
}

/// Only a local path may be a post-login destination (no open redirect to another site).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_string(),
        _ => "/overview".to_string(),
    }
}

fn login_html(next: &str, email: &str, notice: Option<Notice>) -> String {
    let notice = notice.map(|n| n.html()).unwrap_or_default();
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in · Switchboard</title><link rel="stylesheet" href="/assets/app.css"></head>
<body class="login"><main id="main"><h1>Switchboard</h1>
<form method="post" action="/login" class="card">
<h2>Sign in</h2>{notice}
<input type="hidden" name="next" value="{next}">
<label for="email">Email</label>
<input id="email" name="email" type="email" autocomplete="username" required value="{email}" autofocus>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form></main></body></html>"#,
        next = esc(next),
        email = esc(email),
    )
}

pub async fn login_page(
    State(state): State<Dash>,
    headers: HeaderMap,
    q: switchboard_api::extract::QueryMap,
) -> Response {
    // Already signed in: straight on.
    if let Some(t) = cookie_value(&headers, COOKIE) {
        if let Ok(Some(_)) = state.api.store.session(&t).await {
            return Redirect::to(&safe_next(q.get("next"))).into_response();
        }
    }
    Html(login_html(&safe_next(q.get("next")), "", None)).into_response()
}

pub async fn login(State(state): State<Dash>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(e) = same_origin(&headers) {
        return e.into_response();
    }
    let f = form(&body);
    let email = f
        .get("email")
        .map(|e| e.trim().to_lowercase())
        .unwrap_or_default();
    let password = f.get("password").cloned().unwrap_or_default();
    let next = safe_next(f.get("next").map(String::as_str));
    let page = |status: StatusCode, msg: &str| {
        (
            status,
            Html(login_html(&next, &email, Some(Notice::error(msg)))),
        )
            .into_response()
    };
    if email.is_empty() || password.is_empty() {
        return page(StatusCode::BAD_REQUEST, "Enter your email and password.");
    }
    if let Err(wait) = state.login_limiter.check(&email) {
        let mut r = page(
            StatusCode::TOO_MANY_REQUESTS,
            &format!(
                "Too many failed sign-ins for this email; try again in {} minutes.",
                wait.div_ceil(60)
            ),
        );
        r.headers_mut().insert(
            header::RETRY_AFTER,
            wait.to_string().parse().expect("digits"),
        );
        return r;
    }
    let found = match state.api.store.user_by_email(&email).await {
        Ok(f) => f,
        Err(e) => return ApiError::from(e).into_response(),
    };
    // An unknown email costs the same hash as a known one (no user enumeration by timing).
    let (user, phc) = match found {
        Some((u, h)) => (Some(u), h),
        None => (None, dummy_hash().to_string()),
    };
    let ok = tokio::task::spawn_blocking(move || verify_password(&password, &phc))
        .await
        .unwrap_or(false);
    let user = match (ok, user) {
        (true, Some(u)) => u,
        _ => {
            state.login_limiter.fail(&email);
            return page(StatusCode::UNAUTHORIZED, "Wrong email or password.");
        }
    };
    state.login_limiter.clear(&email);
    let token = random_hex(32);
    let csrf = random_hex(32);
    let expires = Timestamp(Timestamp::now().micros() + SESSION_HOURS * 3_600_000_000);
    if let Err(e) = state
        .api
        .store
        .create_session(user.id, &token, &csrf, expires)
        .await
    {
        return ApiError::from(e).into_response();
    }
    tracing::info!(user = %user.id, org_id = %user.org_id, "dashboard sign-in");
    let cookie = format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{}",
        SESSION_HOURS * 3600,
        if state.secure_cookies { "; Secure" } else { "" }
    );
    let mut r = Redirect::to(&next).into_response();
    r.headers_mut()
        .insert(header::SET_COOKIE, cookie.parse().expect("ascii cookie"));
    r
}

pub async fn logout(
    State(state): State<Dash>,
    me: Me,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    me.check_csrf(&headers, &form(&body))?;
    state.api.store.delete_session(&me.token).await?;
    let cookie = format!(
        "{COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{}",
        if state.secure_cookies { "; Secure" } else { "" }
    );
    let mut r = Redirect::to("/login").into_response();
    r.headers_mut()
        .insert(header::SET_COOKIE, cookie.parse().expect("ascii cookie"));
    Ok(r)
}

/// The Argon2id hash of a random password nobody knows, verified against when the email is
/// unknown so both paths take the same time.
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| hash_password(&random_hex(16)).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2id_round_trip() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$v=19$"), "{h}");
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("correct horse batterY", &h));
        assert!(!verify_password("anything", "not a PHC string"));
    }

    #[test]
    fn only_local_paths_are_post_login_destinations() {
        assert_eq!(
            safe_next(Some("/calls?status=failed")),
            "/calls?status=failed"
        );
        for bad in [
            "https://evil.example/",
            "//evil.example/x",
            "/\\evil.example",
            "calls",
        ] {
            assert_eq!(safe_next(Some(bad)), "/overview", "{bad}");
        }
        assert_eq!(safe_next(None), "/overview");
    }

    #[test]
    fn origin_must_match_host() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "127.0.0.1:8080".parse().unwrap());
        assert!(
            same_origin(&h).is_ok(),
            "no Origin: allowed (token still checked)"
        );
        h.insert(header::ORIGIN, "http://127.0.0.1:8080".parse().unwrap());
        assert!(same_origin(&h).is_ok());
        h.insert(header::ORIGIN, "http://127.0.0.1:9090".parse().unwrap());
        assert!(same_origin(&h).is_err());
        h.insert(header::ORIGIN, "null".parse().unwrap());
        assert!(same_origin(&h).is_err());
    }

    #[test]
    fn sign_in_lockout_after_five_failures() {
        let l = LoginLimiter::default();
        for _ in 0..MAX_FAILURES {
            assert!(l.check("a@example.com").is_ok());
            l.fail("a@example.com");
        }
        let wait = l.check("a@example.com").unwrap_err();
        assert!(wait > 0 && wait <= FAILURE_WINDOW.as_secs());
        assert!(l.check("b@example.com").is_ok(), "per email");
        l.clear("a@example.com");
        assert!(l.check("a@example.com").is_ok());
    }
}
