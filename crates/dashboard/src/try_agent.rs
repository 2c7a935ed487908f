//! The agent page's two ways to try an agent before it takes real calls:
//!
//! - `GET /agents/{id}/preview.wav?text=&voice=&language=`: a sample in the agent's voice,
//!   spoken by the server's configured TTS provider (the one calls use, with the agent's
//!   `voice` and `language` overriding its default exactly as in a call). A parameter that is
//!   present overrides the saved agent (so unsaved edits in the form can be heard; present but
//!   empty = the provider's default); an absent one takes the saved value. The text is the
//!   greeting, else a default sentence; at most [`MAX_PREVIEW_CHARS`] characters.
//!   A GET: it changes nothing, so viewers may use it too (hearing the agent is seeing it) and
//!   no CSRF token is involved; the session cookie is `SameSite=Lax`, so another site cannot
//!   make a signed-in browser fetch it as a sub-resource. Cost is bounded by the length cap and
//!   [`MAX_PREVIEWS`] syntheses at once per process.
//! - `POST /agents/{id}/call` (`to`, `csrf`): places an outbound call with this agent through
//!   `switchboard_api::dispatch::dispatch`, the rules `POST /v1/call` uses (caller ID: a number
//!   bound to the agent, as there), then shows the new call's page.

use crate::auth::{form, Me};
use crate::html::layout;
use crate::pages::{agent_form, agent_id, TestCallInput};
use crate::Dash;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use futures::StreamExt;
use std::time::Duration;
use switchboard_agent::providers::stt::wav_bytes;
use switchboard_agent::providers::{ProviderError, TtsRequest};
use switchboard_api::dispatch::{dispatch, AgentRef, DispatchRequest};
use switchboard_api::error::{ApiError, ApiResult};
use switchboard_api::extract::QueryMap;
use switchboard_domain::*;

/// Previews synthesising at once in this process.
pub const MAX_PREVIEWS: usize = 4;
/// The longest preview text, in characters (about 20 s of speech).
pub const MAX_PREVIEW_CHARS: usize = 300;
/// The most a voice or language value may be (the API's own cap for these agent fields).
const MAX_VOICE_CHARS: usize = 200;
/// A provider that has not finished by then is given up on.
const PREVIEW_TIMEOUT: Duration = Duration::from_secs(20);
/// TTS output is 8 kHz mono; more than a minute of it for 300 characters is a provider fault.
const RATE: u32 = 8000;
const MAX_SAMPLES: usize = 60 * RATE as usize;

/// The greeting as a listener would hear it: `{{customer.first_name}}` placeholders (filled
/// from each call's context) are read as their name, "first name".
fn speakable(template: &str) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let name = after[..end].trim();
        out.push_str(&name.rsplit('.').next().unwrap_or(name).replace('_', " "));
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

/// A query value: `Some(None)` present but empty (the provider's default), `None` absent.
/// The text's length is checked once it is known (it may come from the saved agent).
fn given(q: &QueryMap, name: &str) -> ApiResult<Option<Option<String>>> {
    let Some(v) = q.0.get(name) else {
        return Ok(None);
    };
    let v = v.trim();
    if name != "text" && (v.chars().count() > MAX_VOICE_CHARS || v.chars().any(char::is_control)) {
        return Err(ApiError::bad_request(format!(
            "{name} must be at most {MAX_VOICE_CHARS} characters, without control characters"
        )));
    }
    Ok(Some((!v.is_empty()).then(|| v.to_string())))
}

/// The preview's request: the text to speak and the voice, from the query or the saved agent.
fn preview_request(a: &Agent, q: &QueryMap) -> ApiResult<TtsRequest> {
    let greeting = match given(q, "text")? {
        Some(t) => t,
        None => a.initial_message.clone(),
    };
    let text = match greeting.map(|g| speakable(&g)) {
        Some(g) if !g.trim().is_empty() => g.trim().to_string(),
        _ => format!(
            "Hello, this is {}. This is how I sound on a call.",
            speakable(&a.name)
        ),
    };
    let n = text.chars().count();
    if n > MAX_PREVIEW_CHARS {
        return Err(ApiError::bad_request(format!(
            "text: a preview speaks at most {MAX_PREVIEW_CHARS} characters and this greeting has {n}; preview a shorter part of it"
        )));
    }
    Ok(TtsRequest {
        text,
        voice: given(q, "voice")?.unwrap_or_else(|| a.voice.clone()),
        language: given(q, "language")?.unwrap_or_else(|| a.language.clone()),
    })
}

pub async fn preview(
    State(state): State<Dash>,
    me: Me,
    Path(id): Path<String>,
    q: QueryMap,
) -> ApiResult<Response> {
    let a: Agent = state
        .api
        .store
        .get(me.org(), agent_id(&id)?)
        .await
        .map_err(|e| ApiError::from_store(e, "Agent"))?;
    let req = preview_request(&a, &q)?;
    let Some(tts) = state.tts.clone() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "this server has no text-to-speech configured",
        ));
    };
    let Ok(_permit) = state.previews.clone().try_acquire_owned() else {
        let mut r = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("{MAX_PREVIEWS} previews are being made right now; try again in a moment"),
        )
        .into_response();
        r.headers_mut()
            .insert(header::RETRY_AFTER, "1".parse().expect("digits"));
        return Ok(r);
    };
    let started = std::time::Instant::now();
    let spoken = tokio::time::timeout(PREVIEW_TIMEOUT, async {
        let mut stream = tts.synthesize(req).await?;
        let mut pcm = Vec::new();
        while let Some(chunk) = stream.next().await {
            pcm.extend(chunk?);
            if pcm.len() > MAX_SAMPLES {
                pcm.truncate(MAX_SAMPLES);
                break;
            }
        }
        Ok::<_, ProviderError>(pcm)
    })
    .await;
    let pcm = match spoken {
        Ok(Ok(pcm)) if !pcm.is_empty() => pcm,
        Ok(Ok(_)) => {
            return Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                format!(
                    "the text-to-speech provider ({}) returned no audio",
                    tts.name()
                ),
            ))
        }
        // A local provider's failure is almost always the voice (espeak-ng has no such voice).
        Ok(Err(e @ ProviderError::Local { .. })) => {
            return Err(ApiError::unprocessable(format!(
                "this voice cannot be spoken: {e}"
            )))
        }
        Ok(Err(e)) => {
            tracing::warn!(agent_id = %a.id, error = %e, "voice preview failed");
            return Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                format!("the text-to-speech provider failed: {e}"),
            ));
        }
        Err(_) => {
            return Err(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "the text-to-speech provider did not finish within {} s",
                    PREVIEW_TIMEOUT.as_secs()
                ),
            ))
        }
    };
    tracing::info!(agent_id = %a.id, provider = tts.name(), seconds = pcm.len() as f64 / f64::from(RATE), elapsed_ms = started.elapsed().as_millis() as u64, "voice preview");
    Ok(([(header::CONTENT_TYPE, "audio/wav")], wav_bytes(&pcm, RATE)).into_response())
}

pub async fn test_call(
    State(state): State<Dash>,
    me: Me,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let f = form(&body);
    me.check_csrf(&headers, &f)?;
    me.require_change()?;
    let aid = agent_id(&id)?;
    let a: Agent = state
        .api
        .store
        .get(me.org(), aid)
        .await
        .map_err(|e| ApiError::from_store(e, "Agent"))?;
    let raw = f.get("to").map(|s| s.trim()).unwrap_or("").to_string();
    // Bad input is shown beside the field it concerns, the number kept for correction.
    let page = |status: StatusCode, message: String| {
        let body = agent_form(
            &me,
            &a,
            None,
            Some(TestCallInput {
                to: &raw,
                error: &message,
            }),
        );
        (
            status,
            layout(&me, "/agents", &format!("Agent {}", a.name), &body),
        )
            .into_response()
    };
    let to = match PhoneNumber::parse(&raw) {
        Ok(to) => to,
        Err(e) => return Ok(page(StatusCode::BAD_REQUEST, e.message)),
    };
    let req = DispatchRequest {
        to,
        agent: Some(AgentRef::Id(aid)),
        from: None,
        from_number_id: None,
        context: None,
        metadata: None,
        user_speaks_first: false,
        campaign_id: None,
        ring_timeout_seconds: None,
    };
    // No Idempotency-Key: each click is a new call, as each POST /v1/call without one is.
    match dispatch(
        &state.api,
        me.org(),
        req,
        &HeaderMap::new(),
        "dashboard",
        b"",
    )
    .await
    {
        Ok((call, _)) => {
            tracing::info!(call_id = %call.id, agent_id = %aid, user = %me.user.id, "dashboard test call");
            Ok(Redirect::to(&format!("/calls/{}", call.id)).into_response())
        }
        Err(e) if e.status.is_client_error() => Ok(page(e.status, e.message)),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_read_as_their_names() {
        assert_eq!(
            speakable("Hi {{ customer.first_name }}, this is {{agent}}."),
            "Hi first name, this is agent."
        );
        assert_eq!(speakable("Unclosed {{ brace"), "Unclosed {{ brace");
    }
}
