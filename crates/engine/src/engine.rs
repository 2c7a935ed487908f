//! The engine handle, the state its tasks share, and the start: recovery of this node's
//! previous life, the SIP endpoint, then the dispatcher, inbound and heartbeat tasks.

use crate::config::EngineConfig;
use crate::dispatcher::dispatcher;
use crate::heartbeat::{heartbeat, stale_threshold};
use crate::inbound::inbound_loop;
use crate::live::LiveCall;
use crate::registrations::RegistrationKey;
use crate::{recovery, upload};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use switchboard_domain::{CallId, TrunkId};
use switchboard_media::session::bind_rtp_pair;
use switchboard_sip::{EndpointConfig, SipEndpoint};
use switchboard_store::{Store, StoreError};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;

/// What the engine's tasks share: the dispatcher, the inbound loop, every call's task and the
/// API-facing [`Engine`] methods.
pub(crate) struct Inner {
    pub(crate) engine_id: String,
    pub(crate) cfg: EngineConfig,
    pub(crate) store: Store,
    pub(crate) sip: SipEndpoint,
    pub(crate) live: Mutex<HashMap<CallId, LiveCall>>,
    pub(crate) wake: Notify,
    /// Wakes the post-call analysis worker when a call with a conversation ends.
    pub(crate) analysis_wake: Notify,
    pub(crate) stopping: watch::Sender<bool>,
    /// Set once shutdown has finished: the inbound loop (which answers 503 while draining)
    /// ends, so nothing keeps the SIP endpoint and its sockets alive.
    pub(crate) finished: watch::Sender<bool>,
    pub(crate) tasks: Mutex<JoinSet<()>>,
    /// Running registrations by trunk, with the settings they were started from.
    pub(crate) registrations:
        Mutex<HashMap<TrunkId, (RegistrationKey, switchboard_sip::Registration)>>,
    /// Serializes [`Engine::sync_registrations`] so two syncs never race on one trunk.
    pub(crate) reg_sync: tokio::sync::Mutex<()>,
    /// Wake-ups for call commands across replicas (see `commands`).
    pub(crate) commands: crate::commands::Commands,
}

impl Inner {
    /// An RTP/RTCP socket pair (RFC 3550 §11: even and next odd port) in the configured range.
    pub(crate) async fn bind_rtp(&self) -> std::io::Result<(UdpSocket, UdpSocket)> {
        bind_rtp_pair(
            self.cfg.rtp_ip,
            self.cfg.rtp_port_min,
            self.cfg.rtp_port_max,
        )
        .await
    }
}

/// Handle to the running engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<Inner>,
}

/// Locks a std mutex; a poisoned lock (a panic while it was held) is used as it is rather
/// than stopping the engine.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
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
        let commands = crate::commands::Commands::new(&store, &engine_id);
        let inner = Arc::new(Inner {
            engine_id,
            cfg,
            store,
            sip,
            live: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            analysis_wake: Notify::new(),
            stopping,
            finished,
            tasks: Mutex::new(JoinSet::new()),
            registrations: Mutex::new(HashMap::new()),
            reg_sync: tokio::sync::Mutex::new(()),
            commands,
        });
        let engine = Engine { inner };
        engine.sync_registrations().await?;
        let inner = engine.inner.clone();
        tokio::spawn(dispatcher(inner.clone()));
        tokio::spawn(inbound_loop(inner.clone(), incoming));
        tokio::spawn(heartbeat(inner.clone()));
        tokio::spawn(crate::analysis::worker(inner.clone()));
        tokio::spawn(crate::commands::serve_commands(inner.clone()));
        Ok(engine)
    }

    pub fn sip_port(&self) -> u16 {
        self.inner.sip.udp_port()
    }

    /// Wakes the dispatcher: a call was just queued (dispatch in milliseconds, not a poll).
    pub fn notify_dispatch(&self) {
        self.inner.wake.notify_one();
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
