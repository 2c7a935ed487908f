//! Wiring: configuration, the application (store + API + engine), startup and shutdown.
//! `main` stays thin; tests build the same `Application` on port 0.

pub mod config;

use anyhow::Context;
use config::ServeConfig;
use std::future::Future;
use std::net::SocketAddr;
use switchboard_api::AppState;
use switchboard_store::{Recordings, Store};
use tokio::net::TcpListener;

pub struct Application {
    listener: TcpListener,
    state: AppState,
    /// The default organization's key when this start created it (first start, empty store).
    pub first_run_key: Option<(String, String)>,
}

impl Application {
    /// Connects the store (migrating it), prepares recordings storage and binds the listener.
    pub async fn build(config: &ServeConfig) -> anyhow::Result<Application> {
        std::fs::create_dir_all(&config.store.data_dir)
            .with_context(|| format!("cannot create data dir {}", config.store.data_dir.display()))?;
        let store = Store::connect(&config.store.url(), config.db_pool).await.context("cannot open the database")?;
        let recordings = Recordings::local(&config.store.data_dir.join("recordings"))?;
        let first_run_key = if store.org_count().await? == 0 {
            let (org, key) = store.create_org("default").await?;
            Some((org.id.to_string(), key))
        } else {
            None
        };
        let listener = TcpListener::bind(config.listen).await.with_context(|| format!("cannot listen on {}", config.listen))?;
        let state = AppState::new(store, recordings, config.rate_limit, config.public_url.clone());
        Ok(Application { listener, state, first_run_key })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener has an address")
    }

    pub fn store(&self) -> &Store {
        &self.state.store
    }

    /// Serves until `shutdown` resolves, then finishes in-flight requests (graceful).
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let app = switchboard_api::router(self.state.clone());
        axum::serve(self.listener, app).with_graceful_shutdown(shutdown).await?;
        self.state.store.close().await;
        Ok(())
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
