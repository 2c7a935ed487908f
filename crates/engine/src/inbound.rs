//! The inbound side: an INVITE for a number we own is accepted when its source is allowed
//! for that number (the trunk's `inbound_sources`, else `--sip-trusted`), stored as an
//! inbound call and answered; then the call's task takes over (`call`).

use crate::call::CallCtx;
use crate::engine::Inner;
use crate::live::{add_live, org_cap, org_live, remove_live, spawn_call};
use serde_json::json;
use std::net::IpAddr;
use std::sync::Arc;
use switchboard_domain::*;
use switchboard_sip::sdp::{self, Codec};
use switchboard_sip::IncomingCall;
use switchboard_store::CallUpdate;
use tokio::sync::mpsc;

pub(crate) async fn inbound_loop(inner: Arc<Inner>, mut incoming: mpsc::Receiver<IncomingCall>) {
    let mut stop = inner.stopping.subscribe();
    let mut finished = inner.finished.subscribe();
    loop {
        tokio::select! {
            _ = finished.changed() => return,
            inc = incoming.recv() => match inc {
                Some(inc) => {
                    if *stop.borrow() {
                        inc.reject(503, "Service Unavailable");
                        continue;
                    }
                    let i = inner.clone();
                    spawn_call(&inner, async move { answer_inbound(i, inc).await });
                }
                None => return,
            },
            _ = stop.changed() => {}
        }
    }
}

/// E.164 from a SIP user part ("+14155551234" or "14155551234").
fn e164_of(user: &str) -> Option<PhoneNumber> {
    let u = user.trim();
    let u = u.strip_prefix('+').unwrap_or(u);
    PhoneNumber::parse(&format!("+{u}")).ok()
}

async fn answer_inbound(inner: Arc<Inner>, inc: IncomingCall) {
    let Some(called) = e164_of(&inc.request_uri_user).or_else(|| e164_of(&inc.to_user)) else {
        return inc.reject(404, "Not Found");
    };
    let owners = match inner.store.find_numbers_everywhere(&called).await {
        Ok(o) => o,
        Err(e) => {
            tracing::error!(error = %e, "inbound lookup failed");
            return inc.reject(500, "Server Internal Error");
        }
    };
    if owners.is_empty() {
        return inc.reject(404, "Not Found");
    }
    // Which organization may receive this call from this source: the number's trunk lists
    // its allowed sources; numbers without such a list accept only trusted sources.
    let src = inc.source.ip();
    let mut chosen = None;
    for n in owners {
        let trunk = match n.trunk_id {
            Some(t) => inner.store.get_trunk(n.org_id, t).await.ok(),
            None => None,
        };
        let allowed = match trunk.as_ref().filter(|t| !t.inbound_sources.is_empty()) {
            Some(t) => t
                .inbound_sources
                .iter()
                .any(|s| s.parse::<IpAddr>().ok() == Some(src)),
            None => inner.cfg.trusted_sources.contains(&src),
        };
        if allowed {
            chosen = Some(n);
            break;
        }
    }
    let Some(number) = chosen else {
        tracing::warn!(source = %src, "inbound call from a source not allowed for the number");
        return inc.reject(403, "Forbidden");
    };
    let Some(agent_id) = number.agent_id else {
        return inc.reject(480, "Temporarily Unavailable");
    };
    let Some(caller) = e164_of(&inc.from_user) else {
        return inc.reject(403, "Forbidden - caller number must be E.164");
    };
    if org_live(&inner, number.org_id) >= org_cap(&inner, number.org_id).await {
        return inc.reject(486, "Busy Here");
    }
    let offer = match sdp::parse(inc.remote_sdp.as_bytes()) {
        Ok(o) => o,
        Err(_) => return inc.reject(400, "Bad Request - malformed SDP"),
    };
    let (rtp, rtcp) = match inner.bind_rtp().await {
        Ok(p) => p,
        Err(_) => return inc.reject(503, "Service Unavailable"),
    };
    let port = rtp.local_addr().map(|a| a.port()).unwrap_or(0);
    let answer = match sdp::negotiate(
        &offer,
        inner.sip.public_ip(),
        port,
        &[Codec::Pcmu, Codec::Pcma],
    ) {
        Ok(a) => a,
        Err(e) => return inc.reject(e.status(), "Not Acceptable Here"),
    };
    let new = NewCall {
        org_id: number.org_id,
        agent_id: Some(agent_id),
        phone_number_id: Some(number.id),
        campaign_id: None,
        call_type: CallType::Inbound,
        client_number: caller,
        agent_phone_number: Some(number.phone_number.clone()),
        context: None,
        metadata: Some(json!({"sip_call_id": inc.call_id})),
        user_speaks_first: false,
        ring_timeout_seconds: None,
    };
    let call = match inner.store.create_call(new, None).await {
        Ok(switchboard_store::CreateCallOutcome::Created(c))
        | Ok(switchboard_store::CreateCallOutcome::Replayed(c)) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot store inbound call");
            return inc.reject(500, "Server Internal Error");
        }
    };
    if let Err(e) = inner.store.set_call_engine(call.id, &inner.engine_id).await {
        tracing::error!(call_id = %call.id, error = %e, "cannot record the engine carrying the call");
    }
    let live_rx = add_live(&inner, call.id, call.org_id, inc.source.to_string());
    inc.ringing();
    let handle = match inc.accept(answer.sdp.to_string()) {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(call_id = %call.id, error = %e, "inbound call gone before answer");
            remove_live(&inner, call.id);
            let now = Timestamp::now();
            let _ = inner
                .store
                .update_call(
                    call.id,
                    CallUpdate {
                        status: Some(CallStatus::NoAnswer),
                        ended_at: Some(now),
                        end_reason: Some("caller-cancelled".into()),
                        ..Default::default()
                    },
                )
                .await;
            return;
        }
    };
    let now = Timestamp::now();
    let _ = inner
        .store
        .update_call(
            call.id,
            CallUpdate {
                status: Some(CallStatus::InProgress),
                started_at: Some(now),
                sip_code: Some(200),
                ..Default::default()
            },
        )
        .await;
    tracing::info!(call_id = %call.id, "inbound call answered");
    let agent = inner.store.get_agent(call.org_id, agent_id).await.ok();
    let ctx = CallCtx::new(
        inner.clone(),
        call,
        agent,
        (rtp, rtcp),
        live_rx,
        Some(answer.params),
    );
    ctx.drive(handle).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164_from_sip_user() {
        assert_eq!(e164_of("14155551234").unwrap().as_str(), "+14155551234");
        assert_eq!(e164_of("+14155551234").unwrap().as_str(), "+14155551234");
        assert!(e164_of("sipp").is_none());
    }
}
