//! Serving recordings: `GET /v1/call/recording/{id}.mp3` (mono mix) and `{id}.stereo.mp3`
//! (caller left, agent right), with HTTP Range (RFC 9110 §14) for seeking players.

use crate::auth::Org;
use crate::error::{ApiError, ApiResult};
use crate::v1::parse_call_id;
use crate::AppState;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

fn recording_not_found() -> ApiError {
    // Exactly as Flyflow documents it (003).
    ApiError::not_found("Recording not found")
}

/// Parses a single `bytes=` range against the object size. `None` = serve the whole object.
fn parse_range(h: &str, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let spec = h.trim().strip_prefix("bytes=").ok_or(())?;
    if spec.contains(',') {
        // Multiple ranges would need multipart/byteranges; a full response is allowed instead.
        return Ok(None);
    }
    let (a, b) = spec.split_once('-').ok_or(())?;
    let (start, end) = if a.trim().is_empty() {
        let n: u64 = b.trim().parse().map_err(|_| ())?;
        if n == 0 {
            return Err(());
        }
        (size.saturating_sub(n), size - 1)
    } else {
        let s: u64 = a.trim().parse().map_err(|_| ())?;
        let e: u64 = if b.trim().is_empty() {
            size - 1
        } else {
            b.trim().parse().map_err(|_| ())?
        };
        (s, e.min(size - 1))
    };
    if size == 0 || start > end || start >= size {
        return Err(());
    }
    Ok(Some((start, end)))
}

#[utoipa::path(
    get, path = "/v1/call/recording/{file}", tag = "calls",
    summary = "Download a call's recording",
    description = "`<call id>.mp3` is the mono mix, `<call id>.stereo.mp3` the dual-channel file (caller left, agent right). Supports a single HTTP `Range: bytes=` range.",
    params(
        ("file" = String, Path, description = "`<call id>.mp3` or `<call id>.stereo.mp3`", pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}(\.stereo)?\.mp3$"),
        ("Range" = Option<String>, Header, description = "A single byte range, e.g. `bytes=0-1023`")
    ),
    responses(
        (status = 200, description = "The whole MP3", content_type = "audio/mpeg", body = String),
        (status = 206, description = "The requested range (Content-Range set)", content_type = "audio/mpeg", body = String),
        (status = 400, description = "Not a recording file name", body = crate::error::ErrorBody),
        (status = 404, description = "Recording not found", body = crate::error::ErrorBody),
        (status = 416, description = "Range cannot be served", body = crate::error::ErrorBody)
    )
)]
pub async fn get_recording(
    State(state): State<AppState>,
    Org(org): Org,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (id, stereo) = if let Some(id) = file.strip_suffix(".stereo.mp3") {
        (id, true)
    } else if let Some(id) = file.strip_suffix(".mp3") {
        (id, false)
    } else {
        return Err(ApiError::bad_request(
            "recording path must be /v1/call/recording/<call id>.mp3 or <call id>.stereo.mp3",
        ));
    };
    let id = parse_call_id(id)?;
    let call = state
        .store
        .get_call(org, id, false)
        .await
        .map_err(|_| recording_not_found())?;
    let meta = call.recording.ok_or_else(recording_not_found)?;
    let key = if stereo {
        meta.stereo_key.ok_or_else(recording_not_found)?
    } else {
        meta.key
    };
    let size = state
        .recordings
        .size(&key)
        .await?
        .ok_or_else(recording_not_found)?;
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(h) => match parse_range(h, size) {
            Ok(r) => r,
            Err(()) => {
                let mut r = ApiError::new(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    format!("Range {h:?} cannot be served; the recording has {size} bytes"),
                )
                .into_response();
                r.headers_mut().insert(
                    header::CONTENT_RANGE,
                    format!("bytes */{size}").parse().expect("ascii"),
                );
                return Ok(r);
            }
        },
        None => None,
    };
    let (status, start, end) = match range {
        Some((s, e)) => (StatusCode::PARTIAL_CONTENT, s, e),
        None => (StatusCode::OK, 0, size.saturating_sub(1)),
    };
    let data = if size == 0 {
        bytes::Bytes::new()
    } else {
        state.recordings.get_range(&key, start..end + 1).await?
    };
    let mut r = (status, Body::from(data)).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, "audio/mpeg".parse().expect("ascii"));
    h.insert(header::ACCEPT_RANGES, "bytes".parse().expect("ascii"));
    if status == StatusCode::PARTIAL_CONTENT {
        h.insert(
            header::CONTENT_RANGE,
            format!("bytes {start}-{end}/{size}")
                .parse()
                .expect("ascii"),
        );
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Ok(Some((0, 9))));
        assert_eq!(parse_range("bytes=90-", 100), Ok(Some((90, 99))));
        assert_eq!(parse_range("bytes=-10", 100), Ok(Some((90, 99))));
        assert_eq!(parse_range("bytes=50-500", 100), Ok(Some((50, 99))));
        assert!(parse_range("bytes=100-", 100).is_err());
        assert!(parse_range("bytes=9-0", 100).is_err());
        assert!(parse_range("items=0-1", 100).is_err());
    }
}
