//! The calls this engine carries: one entry per live call, through which the API reaches it
//! (hang-up, blind transfer), and the per-organization cap on concurrent calls.

use crate::engine::{lock, Engine, Inner};
use std::future::Future;
use std::sync::Arc;
use switchboard_domain::{CallId, OrgId};
use tokio::sync::mpsc;

/// Why we are ending a call ourselves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum LocalEnd {
    Api,
    MaxDuration,
    Shutdown,
    /// The agent said goodbye after nobody spoke (`inactivity`).
    Inactivity,
    /// The agent ended the call.
    Agent,
    /// Answering-machine detection: a machine answered (hung up at once, or after the
    /// voicemail message), or a fax.
    Voicemail,
    Fax,
}

pub(crate) struct LiveCall {
    org: OrgId,
    pub(crate) hangup: mpsc::UnboundedSender<LocalEnd>,
    /// Refer-To URIs for a blind transfer (RFC 3515) of the answered call.
    transfer: mpsc::UnboundedSender<String>,
    /// host:port a transfer to a bare phone number is addressed to: the trunk the call went
    /// out through, or the peer an inbound call came from.
    refer_domain: String,
}

/// What the call's task receives from the API: hang-up requests and transfer targets.
pub(crate) struct LiveRx {
    pub(crate) hangup: mpsc::UnboundedReceiver<LocalEnd>,
    pub(crate) transfer: mpsc::UnboundedReceiver<String>,
}

/// Enters a call in the live table; the call's task owns the receivers until it returns.
pub(crate) fn add_live(inner: &Inner, id: CallId, org: OrgId, refer_domain: String) -> LiveRx {
    let (hangup_tx, hangup_rx) = mpsc::unbounded_channel();
    let (transfer_tx, transfer_rx) = mpsc::unbounded_channel();
    lock(&inner.live).insert(
        id,
        LiveCall {
            org,
            hangup: hangup_tx,
            transfer: transfer_tx,
            refer_domain,
        },
    );
    LiveRx {
        hangup: hangup_rx,
        transfer: transfer_rx,
    }
}

/// Asks a live call's task for a blind transfer (see [`Engine::transfer`]); the API and the
/// agent's `transfer_call` tool both come through here.
pub(crate) fn transfer_live(inner: &Inner, call: CallId, to: &str) -> bool {
    match lock(&inner.live).get(&call) {
        Some(l) => {
            let uri = if to.starts_with('+') {
                format!("sip:{to}@{}", l.refer_domain)
            } else {
                to.to_string()
            };
            l.transfer.send(uri).is_ok()
        }
        None => false,
    }
}

/// True while this engine carries the call.
pub(crate) fn is_live(inner: &Inner, id: CallId) -> bool {
    lock(&inner.live).contains_key(&id)
}

pub(crate) fn remove_live(inner: &Inner, id: CallId) {
    lock(&inner.live).remove(&id);
}

impl Engine {
    /// Ends a live call (CANCEL while ringing, BYE once answered). The future resolves once
    /// the call has fully ended; it need not be awaited. `None` if the call is not live here.
    pub fn hangup(&self, call: CallId) -> Option<impl Future<Output = ()> + Send + 'static> {
        let tx = lock(&self.inner.live).get(&call)?.hangup.clone();
        tx.send(LocalEnd::Api).ok()?;
        // The call's task owns the receiver and drops it only when it returns, after the
        // final status and the recording's metadata are stored.
        Some(async move { tx.closed().await })
    }

    /// Blind transfer of an answered call (REFER, RFC 3515) to `to`: an E.164 number (sent
    /// as `sip:<number>@<the call's trunk or peer>`) or a `sip:`/`sips:` URI. `false` if the
    /// call is not live here. The call ends as `transferred` once the far end reports the
    /// transfer succeeded (NOTIFY with a 2xx sipfrag); a failure is recorded in its events.
    pub fn transfer(&self, call: CallId, to: &str) -> bool {
        transfer_live(&self.inner, call, to)
    }

    pub fn live_count(&self) -> usize {
        lock(&self.inner.live).len()
    }
}

/// Runs a call's task in the engine's set, which graceful shutdown waits on.
pub(crate) fn spawn_call(inner: &Arc<Inner>, fut: impl Future<Output = ()> + Send + 'static) {
    let mut tasks = lock(&inner.tasks);
    // Reap finished tasks so the set does not grow with every call.
    while tasks.try_join_next().is_some() {}
    tasks.spawn(fut);
}

pub(crate) fn org_live(inner: &Inner, org: OrgId) -> i64 {
    lock(&inner.live).values().filter(|l| l.org == org).count() as i64
}

pub(crate) async fn org_cap(inner: &Inner, org: OrgId) -> i64 {
    match inner.store.org_max_concurrent_calls(org).await {
        Ok(Some(n)) if n > 0 => n,
        _ => inner.cfg.max_calls_per_org,
    }
}
