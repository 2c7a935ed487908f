//! Wiring: configuration, the application (store + API + engine), startup and shutdown.
//! `main` stays thin; tests build the same `Application` on port 0.

pub mod agent_config;
pub mod bench;
pub mod bench_agent;
pub mod bench_calls;
pub mod bench_flood;
pub mod bench_soak;
pub mod config;

use anyhow::Context;
use config::ServeConfig;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use switchboard_api::AppState;
use switchboard_engine::{Engine, EngineConfig};
use switchboard_sip::{FloodGuard, RateLimit};
use switchboard_store::{Recordings, Store};
use tokio::net::{TcpListener, UdpSocket};

/// The engine as the API sees it: hang-up and dispatch wake-up (and the SIP flood
/// guard's exempt set, which follows the trunks).
struct EngineControl(Engine, Option<Arc<FloodExempt>>);

/// Keeps the SIP flood guard's exempt set equal to --sip-trusted plus every trunk's
/// inbound sources and (resolved) host.
struct FloodExempt {
    guard: Arc<FloodGuard>,
    store: Store,
    trusted: Vec<std::net::IpAddr>,
}

impl FloodExempt {
    async fn refresh(&self) {
        let mut exempt = self.trusted.clone();
        match self.store.all_trunks().await {
            Ok(trunks) => {
                for trunk in trunks {
                    exempt.extend(
                        trunk
                            .inbound_sources
                            .iter()
                            .filter_map(|s| s.parse::<std::net::IpAddr>().ok()),
                    );
                    match trunk.host.trim_matches(['[', ']']).parse() {
                        Ok(ip) => exempt.push(ip),
                        Err(_) => {
                            let lookup = tokio::net::lookup_host((trunk.host.as_str(), trunk.port));
                            match tokio::time::timeout(Duration::from_secs(2), lookup).await {
                                Ok(Ok(addrs)) => exempt.extend(addrs.map(|a| a.ip())),
                                _ => {
                                    tracing::warn!(trunk = %trunk.id, "trunk host does not resolve; not exempt from the SIP rate limit")
                                }
                            }
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read trunks for the SIP rate limit's exempt list")
            }
        }
        self.guard.set_exempt(exempt);
    }
}

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
    fn hangup_anywhere(
        &self,
        call: switchboard_domain::CallId,
        wait_end: Option<Duration>,
    ) -> futures::future::BoxFuture<
        'static,
        Result<switchboard_store::Reached, switchboard_store::StoreError>,
    > {
        let engine = self.0.clone();
        Box::pin(async move { engine.hangup_anywhere(call, wait_end).await })
    }
    fn transfer_anywhere(
        &self,
        call: switchboard_domain::CallId,
        to: String,
    ) -> futures::future::BoxFuture<
        'static,
        Result<switchboard_store::Reached, switchboard_store::StoreError>,
    > {
        let engine = self.0.clone();
        Box::pin(async move { engine.transfer_anywhere(call, &to).await })
    }
    fn trunks_changed(&self) {
        if let Some(f) = self.1.clone() {
            tokio::spawn(async move { f.refresh().await });
        }
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

/// Checks of settings clap cannot make alone (their form, and how they combine),
/// run before the store is opened. Each error names the flag.
pub fn validate_settings(config: &ServeConfig) -> anyhow::Result<()> {
    use anyhow::bail;
    if let Some(url) = &config.store.database_url {
        let scheme = url.split_once(':').map(|(s, _)| s.to_ascii_lowercase());
        if !matches!(
            scheme.as_deref(),
            Some("sqlite" | "postgres" | "postgresql")
        ) {
            bail!("--database-url must be a sqlite:… or postgres://… URL");
        }
    }
    if let Some(url) = &config.public_url {
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"));
        if rest
            .is_none_or(|r| r.is_empty() || r.starts_with('/') || r.contains(char::is_whitespace))
        {
            bail!("--public-url must be an absolute http:// or https:// URL, e.g. https://calls.example.com");
        }
    }
    if config.db_pool == 0 {
        bail!("--db-pool must be at least 1");
    }
    let cache = switchboard_store::SQLITE_CACHE_KIB_RANGE;
    if !cache.contains(&config.sqlite_cache_kib) {
        bail!(
            "--sqlite-cache-kib must be {} to {} (KiB of page cache per SQLite connection), not {}",
            cache.start(),
            cache.end(),
            config.sqlite_cache_kib
        );
    }
    let t = &config.telephony;
    if t.public_ip.is_some_and(|ip| ip.is_unspecified()) {
        bail!(
            "--public-ip must be an address peers can reach, not {}",
            t.public_ip.unwrap_or(t.sip_listen.ip())
        );
    }
    if t.public_ip.is_none() && t.sip_listen.ip().is_unspecified() {
        // The listen address would end up in Via, Contact and SDP, where 0.0.0.0 means nothing.
        bail!("--sip-listen {} listens on every interface: set --public-ip to the address peers reach", t.sip_listen);
    }
    if t.sip_rate_limit > 0 && t.sip_rate_burst == 0 {
        bail!("--sip-rate-burst must be at least 1 when --sip-rate-limit is on");
    }
    if t.engine_stale_after <= t.engine_heartbeat {
        bail!(
            "--engine-stale-after ({} s) must be longer than --engine-heartbeat ({} s), or live engines are taken for dead",
            t.engine_stale_after,
            t.engine_heartbeat
        );
    }
    Ok(())
}

/// The email of the owner the first start creates (issue 12); more users with `user create`.
pub const FIRST_OWNER_EMAIL: &str = "owner@switchboard.local";

/// `switchboard user create EMAIL --org ORG --role ROLE [--password-stdin]` (issue 12): prints
/// `{"email", "password" (when generated), "organization_id", "role"}`.
pub async fn user_create(
    email: &str,
    org: &str,
    role: &str,
    password_stdin: bool,
    store: &config::StoreConfig,
) -> anyhow::Result<()> {
    use anyhow::bail;
    let email = email.trim().to_lowercase();
    if !switchboard_dashboard::valid_email(&email) {
        bail!("EMAIL must look like name@example.com, got {email:?}");
    }
    if switchboard_dashboard::Role::parse(role).is_none() {
        bail!("--role must be owner, admin or viewer");
    }
    let (password, generated) = if password_stdin {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        let p = line.trim_end_matches(['\r', '\n']).to_string();
        if p.chars().count() < switchboard_dashboard::MIN_PASSWORD {
            bail!(
                "the password read from stdin must have at least {} characters",
                switchboard_dashboard::MIN_PASSWORD
            );
        }
        (p, false)
    } else {
        (switchboard_dashboard::generate_password(), true)
    };
    std::fs::create_dir_all(&store.data_dir)?;
    let s = Store::connect(&store.url(), 2).await?;
    let org_id = match s.find_org(org).await {
        Ok(o) => o,
        Err(switchboard_store::StoreError::NotFound) => {
            bail!("--org: no organization with id or name {org:?}")
        }
        Err(e) => bail!("--org: {e}"),
    };
    let hash = switchboard_dashboard::hash_password(&password).map_err(anyhow::Error::msg)?;
    let created = s.create_user(org_id, &email, &hash, role).await;
    s.close().await;
    if let Err(e) = created {
        bail!("{e}");
    }
    let mut out = serde_json::json!({"email": email, "organization_id": org_id, "role": role});
    if generated {
        out["password"] = password.into();
    }
    println!("{out}");
    Ok(())
}

pub struct Application {
    listener: TcpListener,
    state: AppState,
    engine: Engine,
    webhooks: switchboard_webhooks::WebhookWorker,
    /// The default organization's key when this start created it (first start, empty store).
    pub first_run_key: Option<(String, String)>,
    /// The dashboard owner (email, password) created with it (issue 12).
    pub first_run_login: Option<(String, String)>,
    public_url: Option<String>,
    /// The configured TTS provider, for the dashboard's voice preview.
    preview_tts: Arc<dyn switchboard_agent::providers::Tts>,
}

impl Application {
    /// Connects the store (migrating it), prepares recordings storage and binds the listener.
    pub async fn build(config: &ServeConfig) -> anyhow::Result<Application> {
        // Every setting is checked before anything touches the database or the network
        // (migrations included): a typo is reported at once, not after a connect timeout.
        validate_settings(config)?;
        let (providers, agent_summary) = config
            .agent
            .providers(
                &config.telephony.tts_voice,
                config.events.webhook_allow_private,
            )
            .context("agent settings")?;
        // A bad URL is refused before anything is created; a good one creates its folders.
        let recordings = Recordings::from_url(
            config.recordings_url.as_deref(),
            &config.store.data_dir,
            &config.recordings_options,
        )
        .context("--recordings-url")?;
        std::fs::create_dir_all(&config.store.data_dir).with_context(|| {
            format!("cannot create data dir {}", config.store.data_dir.display())
        })?;
        tracing::info!("agent: {agent_summary}");
        let store =
            Store::connect_with_cache(&config.store.url(), config.db_pool, config.sqlite_cache_kib)
                .await
                .context("cannot open the database")?;
        tracing::info!(recordings = %recordings, "recordings store");
        if let Err(e) = recordings.check().await {
            // Not fatal: calls are recorded into the spool and uploaded once it answers.
            tracing::warn!(recordings = %recordings, error = %e, "recordings store does not answer; recordings wait in the spool");
        }
        let (first_run_key, first_run_login) = if store.org_count().await? == 0 {
            let (org, key) = store.create_org("default").await?;
            // Dashboard (issue 12): the default organization's first owner.
            let password = switchboard_dashboard::generate_password();
            let p = password.clone();
            let hash =
                tokio::task::spawn_blocking(move || switchboard_dashboard::hash_password(&p))
                    .await?
                    .map_err(anyhow::Error::msg)?;
            store
                .create_user(org.id, FIRST_OWNER_EMAIL, &hash, "owner")
                .await?;
            (
                Some((org.id.to_string(), key)),
                Some((FIRST_OWNER_EMAIL.to_string(), password)),
            )
        } else {
            (None, None)
        };
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let t = &config.telephony;
        // TCP on the same port as UDP (port 0 in tests: take the port UDP got).
        let (sip_udp, sip_tcp) = bind_sip(t.sip_listen).await?;
        let sip_addr = sip_udp.local_addr()?;
        // Flood protection for the SIP listener, attached to the socket the engine's
        // endpoint will run on; trunks and --sip-trusted are exempt.
        let flood = (t.sip_rate_limit > 0).then(|| {
            let guard = FloodGuard::new(
                RateLimit {
                    per_second: f64::from(t.sip_rate_limit),
                    burst: t.sip_rate_burst,
                },
                t.sip_trusted.iter().copied(),
            );
            switchboard_sip::flood::guard_socket(sip_addr, guard.clone());
            Arc::new(FloodExempt {
                guard,
                store: store.clone(),
                trusted: t.sip_trusted.clone(),
            })
        });
        if let Some(f) = &flood {
            f.refresh().await;
        }
        // The dashboard's voice preview speaks with the provider calls use.
        let preview_tts = providers.tts.clone();
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
            analysis_retry_schedule: config.agent.analysis_retry_schedule.clone(),
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
        state.control = Some(Arc::new(EngineControl(engine.clone(), flood)));
        state.webhook_allow_private = config.events.webhook_allow_private;
        Ok(Application {
            listener,
            state,
            engine,
            webhooks,
            first_run_key,
            first_run_login,
            public_url: config.public_url.clone(),
            preview_tts,
        })
    }

    /// Where the dashboard is reached: --public-url, else the listening address.
    pub fn dashboard_base(&self) -> String {
        match &self.public_url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => format!("http://{}", self.local_addr()),
        }
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
        // The dashboard (issue 12) shares the port; its routes merge into the API's.
        let app = switchboard_api::router(self.state.clone()).merge(switchboard_dashboard::router(
            self.state.clone(),
            Some(self.preview_tts.clone()),
        ));
        let purge = switchboard_dashboard::spawn_session_purge(
            self.state.store.clone(),
            switchboard_dashboard::SESSION_PURGE_EVERY,
        );
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
        purge.abort();
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
        raise_recv_buffer(&udp);
        let got = udp.local_addr()?;
        match TcpListener::bind(got).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(_) if addr.port() == 0 && attempts < 20 => attempts += 1,
            Err(e) => return Err(e).with_context(|| format!("cannot bind SIP TCP {got}")),
        }
    }
}

/// The SIP UDP receive buffer asked for. A burst of datagrams (a flood, or many trunks
/// retransmitting at once) queues here until the endpoint reads it; with the kernel default
/// (~208 KiB) a burst of 1,000 INVITEs overflows it and datagrams are dropped before the flood
/// limiter can tell good sources from bad ones.
pub const SIP_RECV_BUFFER: usize = 4 * 1024 * 1024;

/// Raises SO_RCVBUF on the SIP UDP socket and logs what the kernel granted (it caps the request
/// at net.core.rmem_max, and Linux reports twice the usable size for its bookkeeping). Never
/// fatal: a smaller buffer only means more loss under a burst.
fn raise_recv_buffer(udp: &UdpSocket) -> Option<usize> {
    let sock = socket2::SockRef::from(udp);
    let before = sock.recv_buffer_size().ok();
    if let Err(e) = sock.set_recv_buffer_size(SIP_RECV_BUFFER) {
        tracing::warn!(error = %e, requested = SIP_RECV_BUFFER, "could not raise the SIP UDP receive buffer");
    }
    let granted = sock.recv_buffer_size().ok();
    match granted {
        Some(g) if g < SIP_RECV_BUFFER => tracing::info!(
            requested = SIP_RECV_BUFFER,
            granted = g,
            default = before,
            "SIP UDP receive buffer (capped by net.core.rmem_max; raise it with sysctl for bigger bursts)"
        ),
        Some(g) => tracing::info!(requested = SIP_RECV_BUFFER, granted = g, "SIP UDP receive buffer"),
        None => {}
    }
    granted
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The SIP socket's receive buffer ends up at least as large as a fresh socket's (the kernel
    /// default) and, where the kernel allows it, larger.
    #[tokio::test]
    async fn sip_udp_receive_buffer_is_raised() {
        let plain = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let default = socket2::SockRef::from(&plain).recv_buffer_size().unwrap();
        let (udp, _tcp) = bind_sip("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let granted = socket2::SockRef::from(&udp).recv_buffer_size().unwrap();
        assert!(granted >= default, "granted {granted} < default {default}");
        // rmem_max above the default (as on any stock Linux): the raise took effect.
        let max = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok());
        if let Some(max) = max.filter(|m| *m > default) {
            assert!(
                granted > default,
                "granted {granted}, default {default}, rmem_max {max}"
            );
        }
    }
}
