//! API-key authentication and the per-organization rate limit. A request carries either
//! `Authorization: Bearer KEY` or the pair `x-api-key` + `x-organization-id`; the key's
//! organization scopes everything the request reads or writes.

use crate::error::ApiError;
use crate::AppState;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use switchboard_domain::OrgId;
use switchboard_store::hash_key;

/// The authenticated organization, put in the request's extensions by [`require_auth`].
#[derive(Debug, Clone, Copy)]
pub struct Org(pub OrgId);

impl<S: Send + Sync> FromRequestParts<S> for Org {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Org>()
            .copied()
            .ok_or_else(|| ApiError::unauthorized("Invalid API key"))
    }
}

/// How a dialect words its 401 (each vendor documents its own message).
#[derive(Clone, Copy)]
pub struct AuthFailureMessage(pub &'static str);

/// Caches key-hash → organization for a short while, so a hot path does not pay a database
/// round trip per request. Keys are never revoked through the API today; the TTL bounds how
/// long a key deleted in the database by hand keeps working.
#[derive(Default)]
pub struct KeyCache {
    entries: Mutex<HashMap<String, (OrgId, Instant)>>,
}

const KEY_TTL: Duration = Duration::from_secs(30);

impl KeyCache {
    fn get(&self, hash: &str) -> Option<OrgId> {
        let m = self.entries.lock().ok()?;
        m.get(hash)
            .filter(|(_, t)| t.elapsed() < KEY_TTL)
            .map(|(o, _)| *o)
    }
    /// Forgets every cached key, so a key revoked in the dashboard stops working at once
    /// on this process.
    pub fn clear(&self) {
        if let Ok(mut m) = self.entries.lock() {
            m.clear();
        }
    }
    fn put(&self, hash: String, org: OrgId) {
        if let Ok(mut m) = self.entries.lock() {
            if m.len() > 10_000 {
                m.clear();
            }
            m.insert(hash, (org, Instant::now()));
        }
    }
}

/// A token bucket per organization: `rate` requests per second with a burst of twice that.
pub struct RateLimiter {
    rate: f64,
    buckets: Mutex<HashMap<OrgId, (f64, Instant)>>,
}

impl RateLimiter {
    pub fn new(rate_per_sec: u32) -> Self {
        Self {
            rate: rate_per_sec as f64,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// `Ok` if allowed, or `Err(seconds until a token is available)`.
    fn check(&self, org: OrgId) -> Result<(), f64> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let burst = self.rate * 2.0;
        let Ok(mut m) = self.buckets.lock() else {
            return Ok(());
        };
        let now = Instant::now();
        let (tokens, last) = m.entry(org).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * self.rate).min(burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err((1.0 - *tokens) / self.rate)
        }
    }
}

fn header<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// Middleware: authenticates, rate-limits, and records the organization for the handlers.
pub async fn require_auth(
    State(state): State<AppState>,
    axum::Extension(msg): axum::Extension<AuthFailureMessage>,
    mut req: Request,
    next: Next,
) -> Response {
    let fail = || ApiError::unauthorized(msg.0).into_response();
    let bearer = header(&req, "authorization").and_then(|v| {
        let (scheme, rest) = v.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
    });
    let (key, claimed_org) = match (bearer, header(&req, "x-api-key")) {
        (Some(k), _) => (
            k.to_string(),
            header(&req, "x-organization-id").map(str::to_string),
        ),
        (None, Some(k)) => (
            k.to_string(),
            header(&req, "x-organization-id").map(str::to_string),
        ),
        (None, None) => return fail(),
    };
    let hash = hash_key(&key);
    let org = match state.keys.get(&hash) {
        Some(o) => o,
        None => match state.store.org_for_key(&key).await {
            Ok(Some(o)) => {
                state.keys.put(hash, o);
                // Last-used time for the dashboard's key list: written on a cache miss only
                // (at most once per KEY_TTL per key and process), never on the request's path.
                let store = state.store.clone();
                tokio::spawn(async move {
                    if let Err(e) = store.touch_api_key(&key).await {
                        tracing::debug!(error = %e, "could not record the key's last use");
                    }
                });
                o
            }
            Ok(None) => return fail(),
            Err(e) => return ApiError::from(e).into_response(),
        },
    };
    // With x-organization-id, the key must belong to that organization.
    if let Some(claimed) = claimed_org {
        if !claimed.eq_ignore_ascii_case(&org.to_string()) {
            return fail();
        }
    }
    if let Err(wait) = state.limiter.check(org) {
        let mut r = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "rate limit of {} requests per second for this organization exceeded; retry after the Retry-After delay",
                state.limiter.rate
            ),
        )
        .into_response();
        let secs = wait.ceil().max(1.0) as u64;
        r.headers_mut().insert("retry-after", secs.into());
        return r;
    }
    tracing::Span::current().record("org_id", tracing::field::display(org));
    req.extensions_mut().insert(Org(org));
    next.run(req).await
}
