//! The HTTP boundary's one error type. Every error leaves as
//! `{"error": "<status reason>", "message": "<what is wrong, what is allowed>"}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use switchboard_domain::ParseError;
use switchboard_store::StoreError;
use utoipa::ToSchema;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
    pub fn bad_request(m: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, m)
    }
    pub fn not_found(m: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, m)
    }
    pub fn unprocessable(m: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, m)
    }
    pub fn unauthorized(m: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, m)
    }
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "An unexpected error occurred; it has been logged",
        )
    }

    /// The database cannot be reached: the request may be retried unchanged shortly.
    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the database is unavailable; retry shortly",
        )
    }

    /// Maps a store error, naming the missing resource for a 404.
    pub fn from_store(e: StoreError, what: &str) -> Self {
        match e {
            StoreError::NotFound => Self::not_found(format!("{what} not found")),
            other => other.into(),
        }
    }
}

impl From<ParseError> for ApiError {
    fn from(e: ParseError) -> Self {
        Self::bad_request(e.message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::not_found("Not found"),
            StoreError::Conflict(m) => Self::new(StatusCode::CONFLICT, m),
            StoreError::IdempotencyMismatch => Self::unprocessable(
                "Idempotency-Key was already used with a different request body; use a new key for a new request",
            ),
            other if other.is_unavailable() => {
                tracing::warn!(error = %other, "database unavailable");
                Self::unavailable()
            }
            other => {
                // Logged in full here, never shown to the client.
                tracing::error!(error = %other, "store error");
                Self::internal()
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let reason = self.status.canonical_reason().unwrap_or("Error");
        let body = serde_json::json!({ "error": reason, "message": self.message });
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            // RFC 9110 §10.2.3: tells clients when to retry instead of hammering a server
            // whose database is away.
            return (
                self.status,
                [(axum::http::header::RETRY_AFTER, RETRY_AFTER_SECS)],
                Json(body),
            )
                .into_response();
        }
        (self.status, Json(body)).into_response()
    }
}

/// Seconds a client should wait before retrying a 503.
pub const RETRY_AFTER_SECS: &str = "2";

pub type ApiResult<T> = Result<T, ApiError>;

/// The one error envelope of every endpoint.
#[derive(ToSchema)]
#[schema(example = json!({"error": "Bad Request", "message": "limit must be an integer between 1 and 100, got \"0\""}))]
pub struct ErrorBody {
    /// The HTTP status reason, e.g. `Bad Request`.
    pub error: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

/// The error envelope of the OmniDimension dialect (`/api/v1/...`), which its client reads:
/// the reason in snake_case and the message as `error_description`.
#[derive(ToSchema)]
#[schema(example = json!({"error": "not_found", "error_description": "agent 7 not found"}))]
#[allow(dead_code, reason = "schema only")]
pub struct OmniErrorBody {
    /// The HTTP status reason in snake_case, e.g. `bad_request`.
    pub error: String,
    /// What is wrong and what is allowed.
    pub error_description: String,
}
