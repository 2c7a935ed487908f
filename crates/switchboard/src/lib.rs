//! Wiring: configuration, the application (store + API + engine), startup and shutdown.
//! `main` stays thin; tests build the same `Application` on port 0.

pub mod agent_config;
pub mod bench;
pub mod bench_agent;
pub mod bench_calls;
pub mod config;

use anyhow::Context;
use config::ServeConfig;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use switchboard_api::AppState;
use switchboard_engine::{Engine, EngineConfig};
use switchboard_store::{Recordings, Store};
use tokio::net::{TcpListener, UdpSocket};

/// The engine as the API sees it: hang-up and dispatch wake-up.
struct EngineControl(Engine);

impl switchboard_api::CallControl for EngineControl {
    fn hangup(
        &self,
        call: switchboard_domain::CallId,
    ) -> Option<futures::future::BoxFuture<'static, ()>> {
        Some(Box::pin(self.0.hangup(call)?))
    }
    fn dispatched(&self) {
        self.0.notify_dispatch();
    }
    fn transfer(&self, call: switchboard_domain::CallId, to: &str) -> bool {
        self.0.transfer(call, to)
    }
    fn trunks_changed(&self) {
        let engine = self.0.clone();
        tokio::spawn(async move {
            if let Err(e) = engine.sync_registrations().await {
                tracing::error!(error = %e, "could not bring trunk registrations up to date");
            }
        });
    }
    fn trunk_registration(&self, trunk: switchboard_domain::TrunkId) -> Option<serde_json::Value> {
        use switchboard_engine::RegistrationState as S;
        Some(match self.0.registration_state(trunk)? {
            S::Registering => serde_json::json!({"state": "registering"}),
            S::Registered { expires } => {
                serde_json::json!({"state": "registered", "expires": expires})
            }
            S::Failed { code, reason } => {
                serde_json::json!({"state": "failed", "code": code, "reason": reason})
            }
            S::Unregistered => serde_json::json!({"state": "unregistered"}),
        })
    }
}

pub struct Application {
    listener: TcpListener,
    state: AppState,
    engine: Engine,
    webhooks: switchboard_webhooks::WebhookWorker,
    /// The default organization's key when this start created it (first start, empty store).
    pub first_run_key: Option<(String, String)>,
}

impl Application {
    /// Connects the store (migrating it), prepares recordings storage and binds the listener.
    pub async fn build(config: &ServeConfig) -> anyhow::Result<Application> {
        std::fs::create_dir_all(&config.store.data_dir).with_context(|| {
            format!("cannot create data dir {}", config.store.data_dir.display())
        })?;
        // Settings are checked before anything touches the database or the network.
        let (providers, agent_summary) = config
            .agent
            .providers(&config.telephony.tts_voice)
            .context("agent settings")?;
        tracing::info!("agent: {agent_summary}");
        let store = Store::connect(&config.store.url(), config.db_pool)
            .await
            .context("cannot open the database")?;
        let recordings = Recordings::from_url(
            config.recordings_url.as_deref(),
            &config.store.data_dir,
            &config.recordings_options,
        )?;
        tracing::info!(recordings = %recordings, "recordings store");
        if let Err(e) = recordings.check().await {
            // Not fatal: calls are recorded into the spool and uploaded once it answers.
            tracing::warn!(recordings = %recordings, error = %e, "recordings store does not answer; recordings wait in the spool");
        }
        let first_run_key = if store.org_count().await? == 0 {
            let (org, key) = store.create_org("default").await?;
            Some((org.id.to_string(), key))
        } else {
            None
        };
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let t = &config.telephony;
        // TCP on the same port as UDP (port 0 in tests: take the port UDP got).
        let (sip_udp, sip_tcp) = bind_sip(t.sip_listen).await?;
        let sip_addr = sip_udp.local_addr()?;
        let engine_cfg = EngineConfig {
            public_ip: t.public_ip,
            rtp_ip: t.rtp_ip.unwrap_or(sip_addr.ip()),
            rtp_port_min: t.rtp_ports.0,
            rtp_port_max: t.rtp_ports.1,
            default_ring_timeout: Duration::from_secs(t.ring_timeout),
            trusted_sources: t.sip_trusted.clone(),
            max_calls_per_org: t.max_calls_per_org,
            shutdown_grace: Duration::from_secs(t.shutdown_grace),
            recordings_dir: recordings.write_root().to_path_buf(),
            recordings: Some(recordings.clone()),
            tts_voice: t.tts_voice.clone(),
            agent: Some(providers),
            poll_interval: Duration::from_millis(250),
            engine_id: t.engine_id.clone(),
            heartbeat_interval: Duration::from_secs(t.engine_heartbeat),
            engine_stale_after: Duration::from_secs(t.engine_stale_after),
        };
        // Events render calls the way the API shows them; with a remote recordings store,
        // recording.ready waits for the upload.
        switchboard_api::install_event_renderer(&store, config.public_url.as_deref());
        store.set_recordings_remote(recordings.spool_dir().is_some());
        let engine = Engine::start(engine_cfg, store.clone(), sip_udp, Some(sip_tcp)).await?;
        let webhooks = start_webhooks(&store, &config.events, engine.engine_id()).await?;
        let mut state = AppState::new(
            store,
            recordings,
            config.rate_limit,
            config.public_url.clone(),
        );
        state.control = Some(Arc::new(EngineControl(engine.clone())));
        state.webhook_allow_private = config.events.webhook_allow_private;
        Ok(Application {
            listener,
            state,
            engine,
            webhooks,
            first_run_key,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    pub fn store(&self) -> &Store {
        &self.state.store
    }

    /// The recordings store the API serves from.
    pub fn recordings(&self) -> &Recordings {
        &self.state.recordings
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The SIP port (UDP and TCP).
    pub fn sip_port(&self) -> u16 {
        self.engine.sip_port()
    }

    /// Serves until `shutdown` resolves, then finishes in-flight requests (graceful).
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let app = switchboard_api::router(self.state.clone());
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let engine = self.engine.clone();
        let watcher = tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
            // Live calls get their grace period while HTTP drains in-flight requests.
            engine.shutdown().await;
        });
        let mut rx = stop_rx.clone();
        // TCP_NODELAY: a response leaves in however many writes hyper makes without waiting for
        // the client's ACK of the previous segment (Nagle), which otherwise delays bodies.
        let listener = axum::serve::ListenerExt::tap_io(self.listener, |tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "could not set TCP_NODELAY");
            }
        });
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.wait_for(|v| *v).await;
            })
            .await?;
        let _ = watcher.await;
        self.webhooks.stop().await;
        self.state.store.close().await;
        Ok(())
    }
}

/// The webhook delivery worker (and the event log's retention), named after the engine so
/// a restarted node takes its own claims back at once.
async fn start_webhooks(
    store: &Store,
    c: &config::EventsConfig,
    engine_id: &str,
) -> anyhow::Result<switchboard_webhooks::WebhookWorker> {
    let mut w = switchboard_webhooks::WebhookConfig::new(format!("{engine_id}/webhooks"));
    w.allow_private = c.webhook_allow_private;
    w.retry_schedule = c.webhook_retry_schedule.clone();
    w.disable_after = c.webhook_disable_after;
    w.timeout = c.webhook_timeout;
    w.per_target = c.webhook_concurrency;
    w.poll_interval = c.webhook_poll;
    w.event_retention = Duration::from_secs(c.event_retention_days * 86400);
    Ok(switchboard_webhooks::WebhookWorker::start(store.clone(), w).await?)
}

/// Binds SIP UDP and TCP on the same port. With port 0 (tests), the port UDP got may already
/// be in use for TCP (an outgoing connection's ephemeral port, say): try another one.
async fn bind_sip(addr: SocketAddr) -> anyhow::Result<(UdpSocket, TcpListener)> {
    let mut attempts = 0;
    loop {
        let udp = UdpSocket::bind(addr)
            .await
            .with_context(|| format!("cannot bind SIP UDP {addr}"))?;
        let got = udp.local_addr()?;
        match TcpListener::bind(got).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(_) if addr.port() == 0 && attempts < 20 => attempts += 1,
            Err(e) => return Err(e).with_context(|| format!("cannot bind SIP TCP {got}")),
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutdown requested");
}
