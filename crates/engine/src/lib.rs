//! The call engine: takes accepted calls off the durable dispatch queue and places them over
//! SIP, answers inbound INVITEs for owned numbers, runs one task per call that drives the SIP
//! dialog and the RTP session (with its recorder), and writes every status transition
//! through the store.
//!
//! Status follows the signalling: INVITE sent → dialing; 200 OK → in_progress; BYE from
//! either side → completed; 486/600/603 and 408/480/487 or ring timeout → no_answer; any other
//! failure → failed; accepted REFER → transferred.

mod recovery;
mod upload;

use serde_json::json;
use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchboard_agent::driver::{AgentOutput, AgentReport, CallAgent, MediaIn, Providers};
use switchboard_domain::*;
use switchboard_media::recorder::CallRecorder;
use switchboard_media::session::{
    bind_rtp_pair, MediaEvent, RtpSession, SessionConfig, SessionHandle, SessionStats,
};
use switchboard_sip::sdp::{self, Codec, Direction};
pub use switchboard_sip::RegistrationState;
use switchboard_sip::{
    CallEvent, CallHandle, EndpointConfig, IncomingCall, OutboundInvite, SipEndpoint, Target,
};
use switchboard_store::{CallUpdate, ClaimedDispatch, Recordings, Store, StoreError};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinSet;

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Address advertised in SDP and Contact (default: the SIP socket's address).
    pub public_ip: Option<IpAddr>,
    /// Address RTP sockets bind to.
    pub rtp_ip: IpAddr,
    pub rtp_port_min: u16,
    pub rtp_port_max: u16,
    /// Ring timeout when neither the call nor its agent sets one.
    pub default_ring_timeout: Duration,
    /// Sources allowed to send inbound calls to numbers whose trunk lists no sources.
    pub trusted_sources: Vec<IpAddr>,
    /// Concurrent calls per organization when the organization sets no cap.
    pub max_calls_per_org: i64,
    /// How long graceful shutdown lets live calls end by themselves.
    pub shutdown_grace: Duration,
    /// Where the recorder writes as a call runs: the local recordings root, or the spool
    /// folder of a remote store.
    pub recordings_dir: PathBuf,
    /// The recordings store. A remote one (S3) gets each call's spool files uploaded when the
    /// call ends (see `upload`); `None` or local: the files in `recordings_dir` are the store.
    pub recordings: Option<Recordings>,
    /// espeak-ng voice for the greeting when no agent providers are configured.
    pub tts_voice: String,
    /// The conversation's providers and models (LLM, STT, TTS, VAD, end of turn), shared by
    /// every call. `None`: the built-in voice only (greet and listen).
    pub agent: Option<Providers>,
    /// How often the queue is polled when nothing wakes the dispatcher.
    pub poll_interval: Duration,
    /// This engine's name in the database (`calls.engine_id`, `engines`). Stable across
    /// restarts of the same node, so a restart closes exactly its own interrupted calls;
    /// default `<hostname>:<SIP port>`. Replicas sharing a database need distinct ids.
    pub engine_id: Option<String>,
    /// How often the engine records that it is alive and looks for orphaned calls.
    pub heartbeat_interval: Duration,
    /// An engine silent for this long is dead: its live calls are closed by the others.
    pub engine_stale_after: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            public_ip: None,
            rtp_ip: IpAddr::from([127, 0, 0, 1]),
            rtp_port_min: 20000,
            rtp_port_max: 30000,
            default_ring_timeout: Duration::from_secs(30),
            trusted_sources: vec![IpAddr::from([127, 0, 0, 1])],
            max_calls_per_org: 50,
            shutdown_grace: Duration::from_secs(10),
            recordings_dir: PathBuf::from("./switchboard-data/recordings"),
            recordings: None,
            tts_voice: "en".into(),
            agent: None,
            poll_interval: Duration::from_millis(250),
            engine_id: None,
            heartbeat_interval: Duration::from_secs(5),
            engine_stale_after: Duration::from_secs(30),
        }
    }
}

/// Why we are ending a call ourselves.
#[derive(Debug, Clone, Copy, PartialEq)]
enum LocalEnd {
    Api,
    MaxDuration,
    Shutdown,
    /// The agent said goodbye after nobody spoke (`inactivity`).
    Inactivity,
    /// The agent ended the call.
    Agent,
}

struct LiveCall {
    org: OrgId,
    hangup: mpsc::UnboundedSender<LocalEnd>,
    /// Refer-To URIs for a blind transfer (RFC 3515) of the answered call.
    transfer: mpsc::UnboundedSender<String>,
    /// host:port a transfer to a bare phone number is addressed to: the trunk the call went
    /// out through, or the peer an inbound call came from.
    refer_domain: String,
}

struct Inner {
    engine_id: String,
    cfg: EngineConfig,
    store: Store,
    sip: SipEndpoint,
    live: Mutex<HashMap<CallId, LiveCall>>,
    wake: Notify,
    stopping: watch::Sender<bool>,
    /// Set once shutdown has finished: the inbound loop (which answers 503 while draining)
    /// ends, so nothing keeps the SIP endpoint and its sockets alive.
    finished: watch::Sender<bool>,
    tasks: Mutex<JoinSet<()>>,
    /// Running registrations by trunk, with the settings they were started from.
    registrations: Mutex<HashMap<TrunkId, (RegistrationKey, switchboard_sip::Registration)>>,
    /// Serializes [`Engine::sync_registrations`] so two syncs never race on one trunk.
    reg_sync: tokio::sync::Mutex<()>,
}

/// What a registration depends on: a change of any of these re-registers.
#[derive(PartialEq, Eq)]
struct RegistrationKey {
    host: String,
    port: u16,
    transport: Transport,
    username: String,
    password: String,
}

/// Handle to the running engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Engine {
    /// Closes what a previous life left live, then starts the SIP endpoint on the given
    /// sockets (bound by the caller), the dispatcher and the inbound handler.
    pub async fn start(
        cfg: EngineConfig,
        store: Store,
        udp: UdpSocket,
        tcp: Option<TcpListener>,
    ) -> Result<Engine, StoreError> {
        let engine_id = match &cfg.engine_id {
            Some(id) => id.clone(),
            None => default_engine_id(udp.local_addr().map(|a| a.port()).unwrap_or(0)),
        };
        // This node's previous life: its live calls are closed, its queue claims released
        // (so its queued calls are dialed at once); other engines' calls are left alone
        // unless their heartbeat has gone stale.
        let stale_before = stale_threshold(&cfg);
        let orphans = store
            .orphaned_live_calls(&engine_id, true, stale_before)
            .await?;
        recovery::close_interrupted_calls(&store, &cfg.recordings_dir, orphans).await?;
        if let Some(r) = &cfg.recordings {
            // Uploads what is left in the spool, the interrupted calls' partial files included.
            upload::spawn_sweep(r, &store);
        }
        store.release_engine_claims(&engine_id).await?;
        store.engine_heartbeat(&engine_id).await?;
        let ep_cfg = EndpointConfig {
            public_ip: cfg.public_ip,
            ..EndpointConfig::default()
        };
        let (sip, incoming) = SipEndpoint::start(ep_cfg, udp, tcp)
            .map_err(|e| StoreError::Config(format!("SIP: {e}")))?;
        let (stopping, _) = watch::channel(false);
        let (finished, _) = watch::channel(false);
        let inner = Arc::new(Inner {
            engine_id,
            cfg,
            store,
            sip,
            live: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            stopping,
            finished,
            tasks: Mutex::new(JoinSet::new()),
            registrations: Mutex::new(HashMap::new()),
            reg_sync: tokio::sync::Mutex::new(()),
        });
        let engine = Engine { inner };
        engine.sync_registrations().await?;
        let inner = engine.inner.clone();
        tokio::spawn(dispatcher(inner.clone()));
        tokio::spawn(inbound_loop(inner.clone(), incoming));
        tokio::spawn(heartbeat(inner.clone()));
        Ok(engine)
    }

    /// Brings the running registrations in line with the trunks in the store: trunks that ask
    /// for it (`register` with credentials) get a REGISTER, refreshed before expiry by the SIP
    /// layer (RFC 3261 §10.2.4); a trunk deleted, changed or no longer registering has its
    /// binding removed first (Expires: 0, §10.2.2) so the old and new bindings never overlap.
    /// Called at start and whenever the API changes a trunk.
    pub async fn sync_registrations(&self) -> Result<(), StoreError> {
        let _one_at_a_time = self.inner.reg_sync.lock().await;
        if *self.inner.stopping.borrow() {
            return Ok(());
        }
        let mut wanted = HashMap::new();
        for t in self.inner.store.all_trunks().await? {
            if let (true, Some(user), Some(pass)) = (t.register, &t.username, &t.password) {
                let key = RegistrationKey {
                    host: t.host.clone(),
                    port: t.port,
                    transport: t.transport,
                    username: user.clone(),
                    password: pass.clone(),
                };
                wanted.insert(t.id, (key, trunk_target(&t)));
            }
        }
        let stale: Vec<_> = {
            let mut regs = lock(&self.inner.registrations);
            let gone: Vec<TrunkId> = regs
                .iter()
                .filter(|(id, (key, _))| wanted.get(id).is_none_or(|(k, _)| k != key))
                .map(|(id, _)| *id)
                .collect();
            gone.into_iter()
                .filter_map(|id| regs.remove(&id).map(|(_, r)| (id, r)))
                .collect()
        };
        for (id, r) in stale {
            tracing::info!(trunk = %id, "removing the registration to trunk");
            r.stop().await;
        }
        let mut regs = lock(&self.inner.registrations);
        for (id, (key, target)) in wanted {
            if regs.contains_key(&id) {
                continue;
            }
            tracing::info!(trunk = %id, "registering to trunk");
            let reg = self.inner.sip.register(switchboard_sip::RegisterConfig {
                registrar: target,
                username: key.username.clone(),
                password: key.password.clone(),
                domain: None,
                expires: Duration::from_secs(3600),
            });
            regs.insert(id, (key, reg));
        }
        Ok(())
    }

    /// The state of a trunk's registration, `None` when the trunk does not register.
    pub fn registration_state(&self, trunk: TrunkId) -> Option<switchboard_sip::RegistrationState> {
        lock(&self.inner.registrations)
            .get(&trunk)
            .map(|(_, r)| r.state.borrow().clone())
    }

    pub fn sip_port(&self) -> u16 {
        self.inner.sip.udp_port()
    }

    /// Wakes the dispatcher: a call was just queued (dispatch in milliseconds, not a poll).
    pub fn notify_dispatch(&self) {
        self.inner.wake.notify_one();
    }

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
        match lock(&self.inner.live).get(&call) {
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

    pub fn live_count(&self) -> usize {
        lock(&self.inner.live).len()
    }

    /// Graceful stop: take no new calls, let live calls end for the grace period, then hang
    /// up the rest and wait until each is written to the store.
    pub async fn shutdown(&self) {
        self.inner.stopping.send_replace(true);
        let deadline = tokio::time::Instant::now() + self.inner.cfg.shutdown_grace;
        loop {
            let mut set = std::mem::take(&mut *lock(&self.inner.tasks));
            if set.is_empty() {
                break;
            }
            tokio::select! {
                _ = async { while set.join_next().await.is_some() {} } => {}
                _ = tokio::time::sleep_until(deadline) => {
                    for l in lock(&self.inner.live).values() {
                        let _ = l.hangup.send(LocalEnd::Shutdown);
                    }
                    while set.join_next().await.is_some() {}
                }
            }
        }
        // After any sync in progress, so nothing registers behind our back.
        let _no_more_syncs = self.inner.reg_sync.lock().await;
        let regs = std::mem::take(&mut *lock(&self.inner.registrations));
        for (_, r) in regs.into_values() {
            // Unregisters (Expires: 0) before the endpoint stops.
            r.stop().await;
        }
        self.inner.sip.shutdown();
        self.inner.finished.send_replace(true);
        // Every call has ended: nothing of ours is left for the others to close.
        if let Err(e) = self.inner.store.engine_leave(&self.inner.engine_id).await {
            tracing::warn!(error = %e, "could not remove this engine from the engines table");
        }
    }

    /// This engine's id in the database.
    pub fn engine_id(&self) -> &str {
        &self.inner.engine_id
    }
}

fn default_engine_id(sip_port: u16) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}:{sip_port}")
}

fn stale_threshold(cfg: &EngineConfig) -> Timestamp {
    let micros = i64::try_from(cfg.engine_stale_after.as_micros()).unwrap_or(i64::MAX);
    Timestamp(Timestamp::now().micros().saturating_sub(micros))
}

/// Keeps this engine's heartbeat fresh and closes the live calls of engines that stopped
/// beating (a replica that crashed and did not come back), so no call stays `dialing` or
/// `in_progress` forever.
async fn heartbeat(inner: Arc<Inner>) {
    let mut stop = inner.stopping.subscribe();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(inner.cfg.heartbeat_interval) => {}
            _ = stop.changed() => return,
        }
        if let Err(e) = inner.store.engine_heartbeat(&inner.engine_id).await {
            tracing::error!(error = %e, "engine heartbeat failed");
            continue;
        }
        let stale_before = stale_threshold(&inner.cfg);
        match inner
            .store
            .orphaned_live_calls(&inner.engine_id, false, stale_before)
            .await
        {
            Ok(orphans) if !orphans.is_empty() => {
                if let Err(e) = recovery::close_interrupted_calls(
                    &inner.store,
                    &inner.cfg.recordings_dir,
                    orphans,
                )
                .await
                {
                    tracing::error!(error = %e, "closing orphaned calls failed");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "looking for orphaned calls failed"),
        }
    }
}

fn spawn_call(inner: &Arc<Inner>, fut: impl std::future::Future<Output = ()> + Send + 'static) {
    let mut tasks = lock(&inner.tasks);
    // Reap finished tasks so the set does not grow with every call.
    while tasks.try_join_next().is_some() {}
    tasks.spawn(fut);
}

fn org_live(inner: &Inner, org: OrgId) -> i64 {
    lock(&inner.live).values().filter(|l| l.org == org).count() as i64
}

async fn org_cap(inner: &Inner, org: OrgId) -> i64 {
    match inner.store.org_max_concurrent_calls(org).await {
        Ok(Some(n)) if n > 0 => n,
        _ => inner.cfg.max_calls_per_org,
    }
}

/// Takes calls off the queue. Woken by the API on every dispatch, and polls as a safety net
/// (another replica's dispatch, a released entry coming due).
async fn dispatcher(inner: Arc<Inner>) {
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
    if let Err(e) = inner.store.update_call(id, u).await {
        tracing::error!(call_id = %id, error = %e, "could not fail call");
    }
    let _ = inner.store.complete_dispatch(id).await;
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
    if call.status != CallStatus::Dialing {
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
    let (rtp, rtcp) = match bind_rtp_pair(
        inner.cfg.rtp_ip,
        inner.cfg.rtp_port_min,
        inner.cfg.rtp_port_max,
    )
    .await
    {
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
    let (hangup_tx, hangup_rx) = mpsc::unbounded_channel();
    let (transfer_tx, transfer_rx) = mpsc::unbounded_channel();
    lock(&inner.live).insert(
        id,
        LiveCall {
            org: call.org_id,
            hangup: hangup_tx,
            transfer: transfer_tx,
            refer_domain: format!("{}:{}", invite.target.host, invite.target.port),
        },
    );
    let handle = match inner.sip.invite(invite) {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(call_id = %id, error = %e, "INVITE could not be sent");
            lock(&inner.live).remove(&id);
            return fail_before_wire(&inner, id, "trunk-unreachable").await;
        }
    };
    // The INVITE is on the wire: from here a crash leaves a live call that the next start
    // closes as server_restarted, instead of dialing the person twice.
    if let Err(e) = inner.store.complete_dispatch(id).await {
        tracing::error!(call_id = %id, error = %e, "could not remove dispatched call from the queue");
    }
    tracing::info!(call_id = %id, to = %call.client_number.masked(), "INVITE sent");
    let ctx = CallCtx {
        inner: inner.clone(),
        call,
        agent,
        rtp: Some((rtp, rtcp)),
        hangup_rx,
        transfer_rx,
        answered: None,
        link: None,
    };
    ctx.drive(handle).await;
}

/// The RTP counters of a call as users see them in `audio_metrics`.
fn audio_metrics(s: &SessionStats) -> serde_json::Value {
    let j = &s.jitter;
    json!({
        "packets_received": s.packets_received,
        "packets_sent": s.packets_sent,
        "lost": j.lost,
        "late": j.late,
        "duplicates": j.duplicates,
        "reordered": j.reordered,
        "concealed": j.concealed,
        "overflow_dropped": j.overflow_dropped,
        "resyncs": j.resyncs,
        // RFC 3550 A.8 interarrival jitter, timestamp units of the 8 kHz clock → ms.
        "jitter_ms": f64::from(j.jitter) / 8.0,
        "parse_errors": s.parse_errors,
        "unexpected_source": s.unexpected_source,
        "unknown_payload": s.unknown_payload,
        "ssrc_changes": s.ssrc_changes,
        "send_errors": s.send_errors,
        "dtmf_digits": s.dtmf_digits,
        "rtcp_sent": s.rtcp_sent,
        "rtcp_received": s.rtcp_received,
        "events_dropped": s.events_dropped,
        "recording_errors": s.recording_errors,
    })
}

fn trunk_target(trunk: &Trunk) -> Target {
    Target {
        host: trunk.host.clone(),
        port: trunk.port,
        transport: match trunk.transport {
            Transport::Udp => switchboard_sip::Transport::Udp,
            Transport::Tcp => switchboard_sip::Transport::Tcp,
        },
    }
}

fn rand_u64() -> u64 {
    uuid::Uuid::new_v4().as_u64_pair().0 >> 1
}

struct CallCtx {
    inner: Arc<Inner>,
    call: Call,
    agent: Option<Agent>,
    rtp: Option<(UdpSocket, UdpSocket)>,
    hangup_rx: mpsc::UnboundedReceiver<LocalEnd>,
    transfer_rx: mpsc::UnboundedReceiver<String>,
    /// Media already negotiated (inbound calls are answered before the loop starts).
    answered: Option<sdp::MediaParams>,
    /// The conversation, once media runs and the call has an agent.
    link: Option<AgentLink>,
}

/// The call's side of its conversation (see `switchboard_agent::driver`): the media events
/// go in, what the call keeps comes out, and the task returns the final report.
struct AgentLink {
    media: mpsc::Sender<MediaIn>,
    out: mpsc::UnboundedReceiver<AgentOutput>,
    task: tokio::task::JoinHandle<AgentReport>,
}

/// Frames the engine may hold for a conversation that is busy (10 s of audio).
const AGENT_QUEUE: usize = 1024;

/// Maps a final non-2xx INVITE outcome to status and end_reason.
fn failure_outcome(code: u16, timed_out: bool, local: Option<LocalEnd>) -> (CallStatus, String) {
    if timed_out {
        return (CallStatus::NoAnswer, "ring-timeout".into());
    }
    if code == 487 && local.is_some() {
        return (CallStatus::NoAnswer, "cancelled-before-answer".into());
    }
    match code {
        486 | 600 => (CallStatus::NoAnswer, "busy".into()),
        603 => (CallStatus::NoAnswer, "declined".into()),
        408 | 480 | 487 => (CallStatus::NoAnswer, "no-answer".into()),
        404 | 484 | 604 => (CallStatus::Failed, "number-not-found".into()),
        401 | 407 => (CallStatus::Failed, "trunk-authentication-failed".into()),
        // Carriers answer 403 to credentials they do not accept, or to a caller not allowed
        // to call there.
        403 => (CallStatus::Failed, "forbidden".into()),
        503 => (CallStatus::Failed, "service-unavailable".into()),
        c => (CallStatus::Failed, format!("sip-error-{c}")),
    }
}

impl CallCtx {
    fn recording_base(&self) -> (PathBuf, String) {
        let rel = format!("{}/{}", self.call.org_id, self.call.id);
        (self.inner.cfg.recordings_dir.join(&rel), rel)
    }

    async fn set(&self, u: CallUpdate) {
        if let Err(e) = self.inner.store.update_call(self.call.id, u).await {
            tracing::warn!(call_id = %self.call.id, error = %e, "call update refused");
        }
    }

    async fn event(&self, ev: serde_json::Value) {
        if let Err(e) = self.inner.store.append_call_event(self.call.id, ev).await {
            tracing::warn!(call_id = %self.call.id, error = %e, "could not record call event");
        }
    }

    /// Keeps the media session's counters on the call (`audio_metrics`, shown with
    /// `include=metrics`). Written before the final status so a finished call has them.
    async fn store_audio_metrics(&self, stats: &SessionStats) {
        let m = audio_metrics(stats);
        if let Err(e) = self
            .inner
            .store
            .modify_call_details(self.call.id, move |d| d.audio_metrics = Some(m))
            .await
        {
            tracing::warn!(call_id = %self.call.id, error = %e, "could not store audio metrics");
        }
    }

    /// Hands a media event to the conversation without waiting: if it is that far behind,
    /// the frame is dropped (and the conversation hears a gap) rather than stalling the call.
    fn to_agent(&self, m: MediaIn) {
        if let Some(l) = &self.link {
            if l.media.try_send(m).is_err() {
                tracing::debug!(call_id = %self.call.id, "conversation behind; media event dropped");
            }
        }
    }

    async fn store_agent_report(&self, r: AgentReport) {
        let res = self
            .inner
            .store
            .modify_call_details(self.call.id, move |d| {
                if r.transcript.is_some() {
                    d.transcript = r.transcript;
                    d.transcript_formatted = r.transcript_formatted;
                }
                d.latency_metrics = r.latency_metrics;
                d.turn_events = r.turn_events;
                d.interruptions = r.interruptions;
                d.quality_metrics = r.quality_metrics;
            })
            .await;
        if let Err(e) = res {
            tracing::warn!(call_id = %self.call.id, error = %e, "could not store the conversation");
        }
    }

    /// Starts RTP + recorder for negotiated media and the conversation (which greets).
    async fn start_media(
        &mut self,
        params: &sdp::MediaParams,
    ) -> Option<(SessionHandle, mpsc::Receiver<MediaEvent>)> {
        let (rtp, rtcp) = self.rtp.take()?;
        let remote = params
            .remote_rtp
            .unwrap_or_else(|| SocketAddr::new(IpAddr::from([0, 0, 0, 0]), 9));
        let mut cfg = SessionConfig::new(remote, params.payload_type);
        cfg.telephone_event_pt = params.telephone_event_pt;
        cfg.cname = format!("switchboard-{}", self.call.id);
        let (base, _) = self.recording_base();
        if let Some(dir) = base.parent() {
            let _ = tokio::fs::create_dir_all(dir).await;
        }
        let recorder = match CallRecorder::create(&base) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::error!(call_id = %self.call.id, error = %e, "recorder could not start");
                None
            }
        };
        let providers = self
            .inner
            .cfg
            .agent
            .clone()
            .unwrap_or_else(|| Providers::builtin(&self.inner.cfg.tts_voice));
        if self.agent.is_some() {
            cfg.emit_caller_audio = true;
        }
        let (session, events) = RtpSession::start(cfg, rtp, Some(rtcp), recorder);
        if params.on_hold {
            let _ = session.set_hold(true).await;
        }
        if let Some(a) = &self.agent {
            let call_agent = CallAgent {
                system_prompt: a.system_prompt.clone(),
                initial_message: a.initial_message.clone(),
                user_speaks_first: self.call.user_speaks_first,
                voice: a.voice.clone(),
                language: a.language.clone(),
                llm_model: a.llm_model.clone(),
                settings: a.settings.clone(),
                context: self.call.context.clone(),
                metadata: self.call.metadata.clone(),
            };
            let (media_tx, media_rx) = mpsc::channel(AGENT_QUEUE);
            let (out_tx, out_rx) = mpsc::unbounded_channel();
            let control = session.control();
            let span = tracing::info_span!("agent", call_id = %self.call.id);
            let task = tokio::spawn(tracing::Instrument::instrument(
                switchboard_agent::driver::run(providers, call_agent, control, media_rx, out_tx),
                span,
            ));
            self.link = Some(AgentLink {
                media: media_tx,
                out: out_rx,
                task,
            });
        }
        Some((session, events))
    }

    async fn drive(mut self, mut sip: CallHandle) {
        let id = self.call.id;
        let mut media: Option<(SessionHandle, mpsc::Receiver<MediaEvent>)> = None;
        let mut started: Option<Timestamp> = None;
        let mut local_end: Option<LocalEnd> = None;
        let mut max_timer: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
        let max_duration = self
            .agent
            .as_ref()
            .and_then(|a| a.max_duration_seconds)
            .map(|s| Duration::from_secs(s as u64));
        if let Some(params) = self.answered.clone() {
            media = self.start_media(&params).await;
            started = Some(Timestamp::now());
            max_timer = max_duration.map(|d| Box::pin(tokio::time::sleep(d)));
        }
        let mut outcome: Option<(CallStatus, String, Option<i64>)> = None;
        loop {
            let media_ev = async {
                match media.as_mut() {
                    Some((_, rx)) => rx.recv().await,
                    None => std::future::pending().await,
                }
            };
            let timer = async {
                match max_timer.as_mut() {
                    Some(t) => t.as_mut().await,
                    None => std::future::pending().await,
                }
            };
            let agent_out = async {
                match self.link.as_mut() {
                    Some(l) => l.out.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                ev = sip.next_event() => match ev {
                    None | Some(CallEvent::Terminated) => break,
                    Some(CallEvent::Trying | CallEvent::Ringing | CallEvent::EarlyMedia { .. }) => {}
                    Some(CallEvent::Answered { remote_sdp }) => {
                        let params = sdp::parse(remote_sdp.as_bytes()).ok().and_then(|s| sdp::media_params(&s, &[Codec::Pcmu, Codec::Pcma]).ok());
                        let now = Timestamp::now();
                        started = Some(now);
                        let answered = CallUpdate { status: Some(CallStatus::InProgress), started_at: Some(now), sip_code: Some(200), ..Default::default() };
                        match params {
                            Some(p) => {
                                // Media starts beside the status write, not after it: under
                                // database load the write can take seconds, and the far end's
                                // RTP would pile up unread meanwhile (then play late).
                                let store = self.inner.store.clone();
                                let write = async move {
                                    if let Err(e) = store.update_call(id, answered).await {
                                        tracing::warn!(call_id = %id, error = %e, "call update refused");
                                    }
                                };
                                media = tokio::join!(write, self.start_media(&p)).1;
                            }
                            None => {
                                self.set(answered).await;
                                tracing::warn!(call_id = %id, "answer had no usable SDP; hanging up");
                                outcome = Some((CallStatus::Failed, "incompatible-media".into(), Some(488)));
                                sip.hangup();
                            }
                        }
                        max_timer = max_duration.map(|d| Box::pin(tokio::time::sleep(d)));
                        if local_end.is_some() {
                            sip.hangup();
                        }
                    }
                    Some(CallEvent::Failed { code, reason, timed_out }) => {
                        let (status, why) = failure_outcome(code, timed_out, local_end);
                        tracing::info!(call_id = %id, code, reason = %reason, status = %status, "call not connected");
                        outcome = Some((status, why, Some(code as i64)));
                    }
                    Some(CallEvent::RemoteHangup) => {
                        outcome.get_or_insert((CallStatus::Completed, "customer-ended-call".into(), None));
                    }
                    Some(CallEvent::Dtmf(d)) => {
                        self.event(json!({"type": "dtmf", "digit": d.to_string(), "via": "sip-info", "at": Timestamp::now()})).await;
                    }
                    Some(CallEvent::ReInvite { remote_sdp, on_hold }) => {
                        if let Some((s, _)) = &media {
                            let _ = s.set_hold(on_hold).await;
                            if let Some(addr) = sdp::parse(remote_sdp.as_bytes()).ok().and_then(|d| sdp::media_params(&d, &[Codec::Pcmu, Codec::Pcma]).ok()).and_then(|p| p.remote_rtp) {
                                let _ = s.set_remote(addr).await;
                            }
                        }
                        self.event(json!({"type": if on_hold { "hold" } else { "resume" }, "at": Timestamp::now()})).await;
                    }
                    Some(CallEvent::TransferAccepted) => {
                        outcome = Some((CallStatus::Transferred, "transferred".into(), None));
                        sip.hangup();
                    }
                    Some(CallEvent::TransferFailed { code }) => {
                        self.event(json!({"type": "transfer-failed", "code": code, "at": Timestamp::now()})).await;
                    }
                },
                Some(me) = media_ev => match me {
                    MediaEvent::Dtmf(d) => {
                        if let Some(c) = d.digit {
                            self.event(json!({"type": "dtmf", "digit": c.to_string(), "via": "rfc4733", "at": Timestamp::now()})).await;
                        }
                    }
                    MediaEvent::CallerAudio(frame) => self.to_agent(MediaIn::Caller(frame)),
                    MediaEvent::AgentPlayed(n) => self.to_agent(MediaIn::Played(n)),
                    _ => {}
                },
                Some(out) = agent_out => match out {
                    AgentOutput::Transcript { transcript, transcript_formatted, latency_metrics } => {
                        // Kept as the call runs: a crash keeps what was said so far.
                        let r = self.inner.store.modify_call_details(id, move |d| {
                            d.transcript = Some(transcript);
                            d.transcript_formatted = Some(transcript_formatted);
                            d.latency_metrics = Some(latency_metrics);
                        }).await;
                        if let Err(e) = r {
                            tracing::warn!(call_id = %id, error = %e, "could not store the transcript");
                        }
                    }
                    AgentOutput::Error { stage, message } => {
                        self.event(json!({"type": "agent-error", "stage": stage, "message": message, "at": Timestamp::now()})).await;
                    }
                    AgentOutput::Hangup { reason } => {
                        local_end.get_or_insert(if reason == "inactivity" { LocalEnd::Inactivity } else { LocalEnd::Agent });
                        sip.hangup();
                    }
                },
                _ = timer => {
                    max_timer = None;
                    local_end = Some(LocalEnd::MaxDuration);
                    sip.hangup();
                }
                Some(uri) = self.transfer_rx.recv() => {
                    if started.is_some() && outcome.is_none() {
                        tracing::info!(call_id = %id, "blind transfer requested (REFER)");
                        sip.refer(&uri);
                        self.event(json!({"type": "transfer-requested", "to": uri, "at": Timestamp::now()})).await;
                    }
                }
                Some(why) = self.hangup_rx.recv() => {
                    local_end.get_or_insert(why);
                    sip.hangup();
                }
            }
        }
        // Final state.
        let now = Timestamp::now();
        let (status, reason, code) = match outcome {
            Some(o) => o,
            None if started.is_some() => {
                let why = match local_end {
                    Some(LocalEnd::Api) => "agent-ended-call",
                    Some(LocalEnd::MaxDuration) => "max-duration-reached",
                    Some(LocalEnd::Shutdown) => "server-shutdown",
                    Some(LocalEnd::Inactivity) => "inactivity",
                    Some(LocalEnd::Agent) => "agent-ended-call",
                    None => "call-ended",
                };
                (CallStatus::Completed, why.to_string(), None)
            }
            None => (CallStatus::Failed, "signalling-ended".into(), None),
        };
        let mut u = CallUpdate {
            status: Some(status),
            ended_at: Some(now),
            end_reason: Some(reason),
            sip_code: code,
            ..Default::default()
        };
        if let Some(s) = started {
            u.duration_seconds = Some(((now.micros() - s.micros()) as f64 / 1e6).round() as i64);
        }
        // The conversation ends with the media: what it kept is stored before the final status.
        if let Some(link) = self.link.take() {
            drop(link.media);
            match link.task.await {
                Ok(report) => self.store_agent_report(report).await,
                Err(e) => tracing::error!(call_id = %id, error = %e, "conversation task failed"),
            }
        }
        if let Some((session, _)) = media.take() {
            match session.stop().await {
                Ok(report) => {
                    self.store_audio_metrics(&report.stats).await;
                    if let Some(r) = report.recording {
                        let (_, rel) = self.recording_base();
                        u.recording = Some(RecordingMeta {
                            key: format!("{rel}.mp3"),
                            stereo_key: Some(format!("{rel}.stereo.mp3")),
                            duration_ms: Some(r.duration_ms as i64),
                            size_bytes: Some(r.size_bytes as i64),
                            sha256: Some(r.sha256_hex),
                        });
                    } else if let Some(e) = report.recording_error {
                        tracing::error!(call_id = %id, error = %e, "recording failed");
                    }
                }
                Err(e) => {
                    tracing::error!(call_id = %id, error = %e, "media session did not stop cleanly")
                }
            }
        }
        let recorded = u.recording.is_some();
        self.set(u).await;
        if let (true, Some(r)) = (recorded, &self.inner.cfg.recordings) {
            upload::spawn_upload(r, &self.inner.store, id, self.recording_base().1);
        }
        lock(&self.inner.live).remove(&id);
        tracing::info!(call_id = %id, status = %status, "call ended");
    }
}

async fn inbound_loop(inner: Arc<Inner>, mut incoming: mpsc::Receiver<IncomingCall>) {
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
    let (rtp, rtcp) = match bind_rtp_pair(
        inner.cfg.rtp_ip,
        inner.cfg.rtp_port_min,
        inner.cfg.rtp_port_max,
    )
    .await
    {
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
    let (hangup_tx, hangup_rx) = mpsc::unbounded_channel();
    let (transfer_tx, transfer_rx) = mpsc::unbounded_channel();
    lock(&inner.live).insert(
        call.id,
        LiveCall {
            org: call.org_id,
            hangup: hangup_tx,
            transfer: transfer_tx,
            refer_domain: inc.source.to_string(),
        },
    );
    inc.ringing();
    let handle = match inc.accept(answer.sdp.to_string()) {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(call_id = %call.id, error = %e, "inbound call gone before answer");
            lock(&inner.live).remove(&call.id);
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
    let ctx = CallCtx {
        inner: inner.clone(),
        call,
        agent,
        rtp: Some((rtp, rtcp)),
        hangup_rx,
        transfer_rx,
        answered: Some(answer.params),
        link: None,
    };
    ctx.drive(handle).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_follow_the_sip_code() {
        assert_eq!(
            failure_outcome(486, false, None),
            (CallStatus::NoAnswer, "busy".into())
        );
        assert_eq!(
            failure_outcome(603, false, None),
            (CallStatus::NoAnswer, "declined".into())
        );
        assert_eq!(failure_outcome(480, false, None).0, CallStatus::NoAnswer);
        assert_eq!(
            failure_outcome(487, true, None),
            (CallStatus::NoAnswer, "ring-timeout".into())
        );
        assert_eq!(failure_outcome(404, false, None).0, CallStatus::Failed);
        assert_eq!(
            failure_outcome(403, false, None),
            (CallStatus::Failed, "forbidden".into())
        );
        assert_eq!(failure_outcome(503, false, None).0, CallStatus::Failed);
        assert_eq!(
            failure_outcome(487, false, Some(LocalEnd::Api)).1,
            "cancelled-before-answer"
        );
    }

    #[test]
    fn e164_from_sip_user() {
        assert_eq!(e164_of("14155551234").unwrap().as_str(), "+14155551234");
        assert_eq!(e164_of("+14155551234").unwrap().as_str(), "+14155551234");
        assert!(e164_of("sipp").is_none());
    }
}
