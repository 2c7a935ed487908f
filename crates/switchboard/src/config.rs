//! Every setting has a flag and a `SWITCHBOARD_*` environment variable.

use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "switchboard", version, about = "Self-hosted voice-AI call platform")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (HTTP API).
    Serve(ServeConfig),
    /// Manage organizations.
    Org {
        #[command(subcommand)]
        command: OrgCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Create an organization and print its id and API key as one JSON line.
    Create {
        /// The organization's name.
        name: String,
        #[command(flatten)]
        store: StoreConfig,
    },
}

#[derive(Debug, Clone, Args)]
pub struct StoreConfig {
    /// Data directory: the SQLite database and the recordings live here.
    #[arg(long, env = "SWITCHBOARD_DATA_DIR", default_value = "./switchboard-data")]
    pub data_dir: PathBuf,
    /// Database URL (postgres://… for PostgreSQL); default: SQLite in the data directory.
    #[arg(long, env = "SWITCHBOARD_DATABASE_URL")]
    pub database_url: Option<String>,
}

impl StoreConfig {
    pub fn url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| switchboard_store::sqlite_url_for_dir(&self.data_dir))
    }
}

#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// Address the HTTP API listens on.
    #[arg(long, env = "SWITCHBOARD_LISTEN", default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub store: StoreConfig,
    /// Requests per second allowed per organization (burst twice that); 0 turns it off.
    #[arg(long, env = "SWITCHBOARD_RATE_LIMIT", default_value_t = 200)]
    pub rate_limit: u32,
    /// Public base URL used in links the API returns (recording_url); default: the request's Host.
    #[arg(long, env = "SWITCHBOARD_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Log format: text or json.
    #[arg(long, env = "SWITCHBOARD_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
    /// Database connections in the pool.
    #[arg(long, env = "SWITCHBOARD_DB_POOL", default_value_t = 16)]
    pub db_pool: u32,
}

impl ServeConfig {
    /// A configuration for tests and benchmarks: port 0, the given store, no rate limit.
    pub fn for_tests(data_dir: PathBuf, database_url: Option<String>) -> Self {
        Self {
            listen: "127.0.0.1:0".parse().expect("literal address"),
            store: StoreConfig { data_dir, database_url },
            rate_limit: 0,
            public_url: None,
            log_format: "text".into(),
            db_pool: 8,
        }
    }
}
