//! The one dispatch rule set, shared by every dialect: validate the request, resolve the
//! agent and caller-ID number inside the organization, store the call and queue it, with
//! Idempotency-Key semantics.

use crate::error::{ApiError, ApiResult};
use crate::AppState;
use axum::http::HeaderMap;
use serde_json::Value;
use sha2::{Digest, Sha256};
use switchboard_domain::*;
use switchboard_store::{CreateCallOutcome, StoreError};

#[derive(Debug, Clone, PartialEq)]
pub enum AgentRef {
    Id(AgentId),
    /// The agent's integer number (OmniDimension).
    Number(i64),
}

#[derive(Debug, Clone)]
pub struct DispatchRequest {
    pub to: PhoneNumber,
    pub agent: Option<AgentRef>,
    /// Caller ID: one of the organization's numbers (Flyflow `from`).
    pub from: Option<PhoneNumber>,
    /// Caller ID by the number's integer id (OmniDimension `from_number_id`).
    pub from_number_id: Option<i64>,
    pub context: Option<Value>,
    pub metadata: Option<Value>,
    pub user_speaks_first: bool,
    pub campaign_id: Option<CampaignId>,
    pub ring_timeout_seconds: Option<i64>,
}

/// Validates a `context` value: a string or a JSON object (null means none).
pub fn parse_context(v: Option<Value>) -> ApiResult<Option<Value>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v @ (Value::String(_) | Value::Object(_))) => Ok(Some(v)),
        Some(_) => Err(ApiError::bad_request(
            "context must be a string or a JSON object",
        )),
    }
}

pub fn parse_metadata(v: Option<Value>) -> ApiResult<Option<Value>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v @ Value::Object(_)) => Ok(Some(v)),
        Some(_) => Err(ApiError::bad_request("metadata must be a JSON object")),
    }
}

pub fn parse_ring_timeout(v: Option<i64>) -> ApiResult<Option<i64>> {
    match v {
        None => Ok(None),
        Some(n) if (1..=300).contains(&n) => Ok(Some(n)),
        Some(n) => Err(ApiError::bad_request(format!(
            "ring_timeout must be between 1 and 300 seconds, got {n}"
        ))),
    }
}

/// Reads an `Idempotency-Key` header: 1 to 255 visible ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let s = v
        .to_str()
        .map_err(|_| ApiError::bad_request("Idempotency-Key must be visible ASCII"))?;
    if s.is_empty() || s.len() > 255 || !s.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(ApiError::bad_request(
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
        ));
    }
    Ok(Some(s.to_string()))
}

/// Dispatches an outbound call. Returns the call and whether it was newly created (false
/// for an idempotent replay). `route` and `raw_body` make the idempotency fingerprint: the
/// same key with a different body (or through a different endpoint) is a 422.
pub async fn dispatch(
    state: &AppState,
    org: OrgId,
    req: DispatchRequest,
    headers: &HeaderMap,
    route: &str,
    raw_body: &[u8],
) -> ApiResult<(Call, bool)> {
    let idem = idempotency_key(headers)?.map(|k| {
        let mut h = Sha256::new();
        h.update(route.as_bytes());
        h.update([0]);
        h.update(raw_body);
        (k, hex::encode(h.finalize()))
    });
    let store = &state.store;
    let number = if let Some(from) = &req.from {
        Some(store.get_number_by_e164(org, from).await.map_err(|e| match e {
            StoreError::NotFound => ApiError::not_found(format!(
                "from number {from} is not a phone number of this organization; add it under /v1/phone-numbers first"
            )),
            e => e.into(),
        })?)
    } else if let Some(n) = req.from_number_id {
        Some(
            store
                .get_number_by_seq(org, n)
                .await
                .map_err(|e| ApiError::from_store(e, &format!("phone number {n}")))?,
        )
    } else {
        None
    };
    let agent = match &req.agent {
        Some(AgentRef::Id(id)) => Some(
            store
                .get_agent(org, *id)
                .await
                .map_err(|e| ApiError::from_store(e, &format!("agent {id}")))?,
        ),
        Some(AgentRef::Number(n)) => Some(
            store
                .get_agent_by_number(org, *n)
                .await
                .map_err(|e| ApiError::from_store(e, &format!("agent {n}")))?,
        ),
        None => match number.as_ref().and_then(|n| n.agent_id) {
            Some(id) => Some(store.get_agent(org, id).await?),
            None => None,
        },
    };
    let Some(agent) = agent else {
        return Err(ApiError::unprocessable(
            "no agent for this call: pass an agent id, or call from a number that is bound to an agent",
        ));
    };
    // Without an explicit caller ID, use a number bound to the agent if there is one.
    let number = match number {
        Some(n) => Some(n),
        None => {
            let page = store.list_numbers(org, None, 100).await?;
            page.items
                .into_iter()
                .find(|n| n.agent_id == Some(agent.id))
        }
    };
    if let Some(c) = req.campaign_id {
        store
            .get_campaign(org, c)
            .await
            .map_err(|e| ApiError::from_store(e, &format!("campaign {c}")))?;
    }
    let new = NewCall {
        org_id: org,
        agent_id: Some(agent.id),
        phone_number_id: number.as_ref().map(|n| n.id),
        campaign_id: req.campaign_id,
        call_type: CallType::Outbound,
        client_number: req.to.clone(),
        agent_phone_number: number.as_ref().map(|n| n.phone_number.clone()),
        context: req.context,
        metadata: req.metadata,
        user_speaks_first: req.user_speaks_first,
        ring_timeout_seconds: req.ring_timeout_seconds,
    };
    match store.create_call(new, idem).await? {
        CreateCallOutcome::Created(c) => {
            if let Some(control) = &state.control {
                control.dispatched();
            }
            tracing::info!(call_id = %c.id, to = %req.to.masked(), "call accepted and queued");
            Ok((c, true))
        }
        CreateCallOutcome::Replayed(c) => Ok((c, false)),
    }
}
