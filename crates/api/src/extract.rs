//! Request extraction that reports problems in our JSON error shape, with messages that name
//! the parameter: query strings are read raw, bodies as bytes then parsed.

use crate::error::ApiError;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use bytes::Bytes;
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use switchboard_domain::ParseError;

/// Largest request body accepted.
pub const MAX_BODY: usize = 1024 * 1024;

/// Query parameters as a map (the last value of a repeated name wins). Unknown parameters
/// are simply never looked at. Empty values count as absent (`?cursor=` from a client that
/// serializes `None` as empty).
#[derive(Debug, Default, Clone)]
pub struct QueryMap(pub HashMap<String, String>);

impl QueryMap {
    pub fn parse(raw: Option<&str>) -> Self {
        let mut m = HashMap::new();
        if let Some(q) = raw {
            for (k, v) in url::form_urlencoded::parse(q.as_bytes()) {
                m.insert(k.into_owned(), v.into_owned());
            }
        }
        Self(m)
    }
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0
            .get(k)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }
    /// Parses a parameter if present.
    pub fn opt<T>(
        &self,
        k: &str,
        f: impl FnOnce(&str) -> Result<T, ParseError>,
    ) -> Result<Option<T>, ApiError> {
        self.get(k).map(f).transpose().map_err(ApiError::from)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for QueryMap {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Ok(QueryMap::parse(parts.uri.query()))
    }
}

/// A JSON body: 415 unless the content type is JSON, 413 over 1 MiB, 400 for malformed JSON
/// or wrong field types (serde's message names the field and the expected type).
pub struct JsonBody<T> {
    pub value: T,
    /// The raw bytes, for idempotency hashing.
    pub raw: Bytes,
}

pub async fn read_body(req: Request) -> Result<Bytes, ApiError> {
    let body = req.into_body();
    match http_body_util::Limited::new(body, MAX_BODY).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is larger than the {MAX_BODY} bytes (1 MiB) allowed"),
        )),
        Err(_) => Err(ApiError::bad_request("could not read the request body")),
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, _: &S) -> Result<Self, ApiError> {
        let ct = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let mime = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if !(mime == "application/json" || mime.ends_with("+json")) {
            return Err(ApiError::new(
                axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "Content-Type must be application/json, got {:?}",
                    if ct.is_empty() { "none" } else { ct }
                ),
            ));
        }
        let raw = read_body(req).await?;
        let value = parse_json(&raw)?;
        Ok(JsonBody { value, raw })
    }
}

pub fn parse_json<T: DeserializeOwned>(raw: &[u8]) -> Result<T, ApiError> {
    // A NUL character (`\u0000`) in any string: SQLite would store it, PostgreSQL refuses
    // text holding it; no field of the API takes one. Only bodies that spell the escape are
    // walked.
    if raw.windows(6).any(|w| w.eq_ignore_ascii_case(b"\\u0000")) {
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(raw) {
            if let Some(at) = nul_at(&v, String::new()) {
                return Err(ApiError::bad_request(format!(
                    "{at} must not contain NUL characters (\\u0000)"
                )));
            }
        }
    }
    serde_json::from_slice(raw).map_err(|e| {
        let what = if e.is_syntax() || e.is_eof() {
            "malformed JSON"
        } else {
            "invalid request body"
        };
        ApiError::bad_request(format!("{what}: {e}"))
    })
}

/// Where a NUL character is in a JSON value: the field's path (`tools[0].name`, or `body`
/// for the top level), keys included.
fn nul_at(v: &serde_json::Value, at: String) -> Option<String> {
    use serde_json::Value;
    let here = || {
        if at.is_empty() {
            "body".to_string()
        } else {
            at.clone()
        }
    };
    match v {
        Value::String(s) if s.contains('\0') => Some(here()),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .find_map(|(i, x)| nul_at(x, format!("{}[{i}]", here()))),
        Value::Object(m) => m.iter().find_map(|(k, x)| {
            let path = if at.is_empty() {
                k.clone()
            } else {
                format!("{at}.{k}")
            };
            if k.contains('\0') {
                Some(here())
            } else {
                nul_at(x, path)
            }
        }),
        _ => None,
    }
}
