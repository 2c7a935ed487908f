//! Notes on a call (issue 10): `POST /v1/call/{id}/notes` adds one, `GET` lists them; they
//! appear as `notes` in full call payloads (AgentVoice `fields=full`, `/v1` full).

use crate::auth::Org;
use crate::error::{ApiError, ApiResult};
use crate::extract::JsonBody;
use crate::v1::parse_call_id;
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::{OpenApi, ToSchema};

/// Longest note accepted, in characters.
const MAX_NOTE: usize = 10_000;

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/call/{id}/notes", post(add_note).get(list_notes))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NoteBody {
    text: Option<String>,
}

/// A note on a call.
#[derive(ToSchema)]
#[allow(dead_code, reason = "schema only")]
pub struct Note {
    pub id: uuid::Uuid,
    pub text: String,
    pub created_at: String,
}

/// Body of `POST /v1/call/{id}/notes`.
#[derive(ToSchema)]
#[allow(dead_code, reason = "schema only")]
pub struct NewNote {
    /// The note, 1 to 10,000 characters (not only spaces; trimmed).
    #[schema(min_length = 1, max_length = 10000, pattern = r"\S")]
    pub text: String,
}

/// The notes of a call, oldest first.
#[derive(ToSchema)]
#[allow(dead_code, reason = "schema only")]
pub struct NoteList {
    pub data: Vec<Note>,
}

#[utoipa::path(
    post, path = "/v1/call/{id}/notes", tag = "calls",
    summary = "Add a note to a call",
    params(("id" = uuid::Uuid, Path, description = "The call's id")),
    request_body(content = NewNote, content_type = "application/json"),
    responses(
        (status = 201, description = "The note", body = Note),
        (status = 400, description = "Invalid id or text", body = crate::error::ErrorBody),
        (status = 404, description = "Call not found", body = crate::error::ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = crate::error::ErrorBody),
        (status = 415, description = "Body is not JSON", body = crate::error::ErrorBody)
    )
)]
pub(crate) async fn add_note(
    State(state): State<AppState>,
    Org(org): Org,
    Path(id): Path<String>,
    body: JsonBody<NoteBody>,
) -> ApiResult<Response> {
    let id = parse_call_id(&id)?;
    let text = body
        .value
        .text
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::bad_request("text is required: a non-empty string"))?;
    if text.chars().count() > MAX_NOTE {
        return Err(ApiError::bad_request(format!(
            "text is longer than the {MAX_NOTE} characters allowed"
        )));
    }
    let note = state
        .store
        .add_call_note(org, id, text)
        .await
        .map_err(|e| ApiError::from_store(e, "Call"))?;
    Ok((StatusCode::CREATED, Json(note)).into_response())
}

#[utoipa::path(
    get, path = "/v1/call/{id}/notes", tag = "calls",
    summary = "List a call's notes",
    params(("id" = uuid::Uuid, Path, description = "The call's id")),
    responses(
        (status = 200, description = "The notes, oldest first", body = NoteList),
        (status = 400, description = "Invalid id", body = crate::error::ErrorBody),
        (status = 404, description = "Call not found", body = crate::error::ErrorBody)
    )
)]
pub(crate) async fn list_notes(
    State(state): State<AppState>,
    Org(org): Org,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = parse_call_id(&id)?;
    let call = state
        .store
        .get_call(org, id, true)
        .await
        .map_err(|e| ApiError::from_store(e, "Call"))?;
    let notes = call
        .details
        .and_then(|d| d.notes)
        .unwrap_or_else(|| json!([]));
    Ok(Json(json!({ "data": notes })))
}

#[derive(OpenApi)]
#[openapi(
    paths(add_note, list_notes),
    components(schemas(Note, NewNote, NoteList))
)]
pub struct ApiDoc;
