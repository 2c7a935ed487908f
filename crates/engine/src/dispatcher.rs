//! The outbound side: takes accepted calls off the durable dispatch queue, checks the
//! organization's cap, picks the trunk and caller ID, and sends the INVITE; then the call's
//! task takes over (`call`).

use crate::call::writer::retry_unavailable;
use crate::call::CallCtx;
use crate::engine::Inner;
use crate::live::{add_live, is_live, org_cap, org_live, remove_live, spawn_call};
use crate::registrations::trunk_target;
use std::sync::Arc;
use std::time::Duration;
use switchboard_domain::*;
use switchboard_sip::sdp::{self, Direction};
use switchboard_sip::OutboundInvite;
use switchboard_store::{CallUpdate, ClaimedDispatch, StoreError};

/// Takes calls off the queue. Woken by the API on every dispatch, and polls as a safety net
/// (another replica's dispatch, a released entry coming due).
pub(crate) async fn dispatcher(inner: Arc<Inner>) {
    // Claims carry the engine id, so a restart releases exactly its own (engines.rs).
    let worker = inner.engine_id.clone();
    let mut stop = inner.stopping.subscribe();
    loop {
        if *stop.borrow() {
            return;
        }
        match inner.store.claim_dispatches(&worker, 16, 30_000_000).await {
            Ok(claimed) => {
                let n = claimed.len();
                for c in claimed {
                    let i = inner.clone();
                    spawn_call(&inner, async move { place_call(i, c).await });
                }
                if n == 16 {
                    continue;
                }
            }
            Err(e) => tracing::error!(error = %e, "claiming dispatches failed"),
        }
        tokio::select! {
            _ = inner.wake.notified() => {}
            _ = tokio::time::sleep(inner.cfg.poll_interval) => {}
            _ = stop.changed() => {}
        }
    }
}

/// Writes a final state for a call that never reached the wire.
async fn fail_before_wire(inner: &Inner, id: CallId, reason: &str) {
    let now = Timestamp::now();
    let u = CallUpdate {
        status: Some(CallStatus::Failed),
        ended_at: Some(now),
        end_reason: Some(reason.into()),
        ..Default::default()
    };
    if let Err(e) = retry_unavailable(|| inner.store.update_call(id, u.clone())).await {
        tracing::error!(call_id = %id, error = %e, "could not fail call");
    }
    let _ = retry_unavailable(|| inner.store.complete_dispatch(id)).await;
}

async fn place_call(inner: Arc<Inner>, claim: ClaimedDispatch) {
    let id = claim.call_id;
    let call = match inner.store.get_call_any_org(id).await {
        Ok(c) => c,
        Err(StoreError::NotFound) => return,
        Err(e) => {
            tracing::error!(call_id = %id, error = %e, "cannot load queued call");
            return;
        }
    };
    // Already dialed: a call that went on (its status written), or one this engine is
    // carrying whose queue row outlived a database outage (its removal still being retried).
    if call.status != CallStatus::Dialing || is_live(&inner, id) {
        let _ = inner.store.complete_dispatch(id).await;
        return;
    }
    if org_live(&inner, call.org_id) >= org_cap(&inner, call.org_id).await {
        // Over the organization's cap: the call waits in the queue.
        let _ = inner
            .store
            .release_dispatch(id, Timestamp(Timestamp::now().micros() + 500_000))
            .await;
        return;
    }
    let agent = match call.agent_id {
        Some(a) => inner.store.get_agent(call.org_id, a).await.ok(),
        None => None,
    };
    let number = match call.phone_number_id {
        Some(n) => inner.store.get_number(call.org_id, n).await.ok(),
        None => None,
    };
    let trunk = match number.as_ref().and_then(|n| n.trunk_id) {
        Some(t) => inner.store.get_trunk(call.org_id, t).await.ok(),
        None => inner.store.default_trunk(call.org_id).await.ok().flatten(),
    };
    let Some(trunk) = trunk else {
        return fail_before_wire(&inner, id, "no-trunk-configured").await;
    };
    let Some(caller_id) = call
        .agent_phone_number
        .clone()
        .or(trunk.default_caller_id.clone())
    else {
        return fail_before_wire(&inner, id, "no-caller-id").await;
    };
    let (rtp, rtcp) = match inner.bind_rtp().await {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(call_id = %id, error = %e, "no RTP port");
            return fail_before_wire(&inner, id, "no-media-port").await;
        }
    };
    let rtp_port = rtp.local_addr().map(|a| a.port()).unwrap_or(0);
    let offer = sdp::build_offer(
        inner.sip.public_ip(),
        rtp_port,
        rand_u64(),
        1,
        Direction::SendRecv,
    );
    let ring = call
        .ring_timeout_seconds
        .or(agent.as_ref().and_then(|a| a.ring_timeout_seconds))
        .map(|s| Duration::from_secs(s as u64))
        .unwrap_or(inner.cfg.default_ring_timeout);
    let invite = OutboundInvite {
        target: trunk_target(&trunk),
        to_user: call.client_number.to_string(),
        from_user: caller_id.to_string(),
        credentials: match (&trunk.username, &trunk.password) {
            (Some(u), Some(p)) => Some((u.clone(), p.clone())),
            _ => None,
        },
        sdp_offer: offer.to_string(),
        ring_timeout: ring,
        extra_headers: vec![("X-Switchboard-Call-Id".into(), id.to_string())],
    };
    if *inner.stopping.borrow() {
        // Claimed just before a graceful stop began: no new call during the drain; it stays
        // queued for the next start.
        let _ = inner.store.release_dispatch(id, Timestamp::now()).await;
        return;
    }
    let refer_domain = format!("{}:{}", invite.target.host, invite.target.port);
    let live_rx = add_live(&inner, id, call.org_id, refer_domain);
    let handle = match inner.sip.invite(invite) {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(call_id = %id, error = %e, "INVITE could not be sent");
            remove_live(&inner, id);
            return fail_before_wire(&inner, id, "trunk-unreachable").await;
        }
    };
    // The INVITE is on the wire: from here a crash leaves a live call that the next start
    // closes as server_restarted, instead of dialing the person twice. While the database is
    // away the removal is retried beside the call (which must not wait for it); until it
    // lands, the live-table check above keeps this engine from dialing the row again.
    let store = inner.store.clone();
    tokio::spawn(async move {
        if let Err(e) = retry_unavailable(|| store.complete_dispatch(id)).await {
            tracing::error!(call_id = %id, error = %e, "could not remove dispatched call from the queue");
        }
    });
    tracing::info!(call_id = %id, to = %call.client_number.masked(), "INVITE sent");
    let ctx = CallCtx::new(inner.clone(), call, agent, (rtp, rtcp), live_rx, None);
    ctx.drive(handle).await;
}

fn rand_u64() -> u64 {
    uuid::Uuid::new_v4().as_u64_pair().0 >> 1
}
