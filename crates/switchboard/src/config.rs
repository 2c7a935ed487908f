//! Every setting has a flag and a `SWITCHBOARD_*` environment variable.

use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "switchboard",
    version,
    about = "Self-hosted voice-AI call platform"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (HTTP API).
    Serve(Box<ServeConfig>),
    /// Seed many calls and measure the calls API against the database engine.
    Bench(crate::bench::BenchArgs),
    /// Telephony load: concurrent recorded calls against a sipp peer, and dispatch latency.
    BenchCalls(crate::bench_calls::BenchCallsArgs),
    /// Voice-agent load: concurrent conversing calls against fake providers (overhead, turn
    /// latency, barge-in, CPU and memory per call), and end of turn on mid-sentence pauses.
    BenchAgent(crate::bench_agent::BenchAgentArgs),
    /// Manage organizations.
    Org {
        #[command(subcommand)]
        command: OrgCommand,
    },
    /// Manage dashboard users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
}

/// Dashboard users (issue 12).
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user who signs in to the dashboard; prints {"email", "password" (when
    /// generated), "organization_id", "role"} as one JSON line.
    Create {
        /// The sign-in email.
        email: String,
        /// The organization: its id or its name.
        #[arg(long)]
        org: String,
        /// owner (everything, users and API keys), admin (changes calls and agents) or viewer
        /// (sees everything, changes nothing).
        #[arg(long, value_parser = ["owner", "admin", "viewer"])]
        role: String,
        /// Read the password from the first line of stdin instead of generating one.
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        store: StoreConfig,
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
    #[arg(
        long,
        env = "SWITCHBOARD_DATA_DIR",
        default_value = "./switchboard-data"
    )]
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
    /// SQLite only: the page cache of each database connection, in KiB (64 to 1048576; the
    /// default is SQLite's own). A bound: the server holds up to `--db-pool` + 16 connections.
    #[arg(long, env = "SWITCHBOARD_SQLITE_CACHE_KIB", default_value_t = switchboard_store::DEFAULT_SQLITE_CACHE_KIB)]
    pub sqlite_cache_kib: u32,
    /// Where recordings are stored: unset = `<data-dir>/recordings`; `s3://BUCKET[/PREFIX]` =
    /// S3 (credentials, region and endpoint from the standard AWS_* environment variables),
    /// with calls recorded into `<data-dir>/recordings-spool` and uploaded when they end;
    /// `file:///PATH` = another local folder.
    #[arg(long, env = "SWITCHBOARD_RECORDINGS_URL")]
    pub recordings_url: Option<String>,
    /// Object store options that override the AWS_* environment (tests, embedding); no flag.
    #[arg(skip)]
    pub recordings_options: switchboard_store::StoreOptions,
    #[command(flatten)]
    pub telephony: TelephonyConfig,
    #[command(flatten)]
    pub agent: crate::agent_config::AgentConfig,
    #[command(flatten)]
    pub events: EventsConfig,
}

/// Events and webhook delivery.
#[derive(Debug, Clone, Args)]
pub struct EventsConfig {
    /// Days events stay in the event log (GET /v1/events) before a background task deletes them.
    #[arg(long, env = "SWITCHBOARD_EVENT_RETENTION_DAYS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3650))]
    pub event_retention_days: u64,
    /// Let webhook URLs reach loopback, private and link-local addresses (closed networks, tests).
    #[arg(long, env = "SWITCHBOARD_WEBHOOK_ALLOW_PRIVATE")]
    pub webhook_allow_private: bool,
    /// Delays before each retry of a failed delivery (comma-separated, units ms/s/m/h/d; jittered ±20 %).
    #[arg(long, env = "SWITCHBOARD_WEBHOOK_RETRY_SCHEDULE", default_value = "5s,5m,30m,2h,5h,10h,10h", value_parser = switchboard_webhooks::parse_schedule)]
    pub webhook_retry_schedule: std::vec::Vec<std::time::Duration>,
    /// An endpoint whose deliveries all fail for this long is disabled (webhook_endpoint.disabled).
    #[arg(long, env = "SWITCHBOARD_WEBHOOK_DISABLE_AFTER", default_value = "5d", value_parser = switchboard_webhooks::parse_duration)]
    pub webhook_disable_after: std::time::Duration,
    /// A delivery succeeds on a 2xx answer within this time.
    #[arg(long, env = "SWITCHBOARD_WEBHOOK_TIMEOUT", default_value = "10s", value_parser = switchboard_webhooks::parse_duration)]
    pub webhook_timeout: std::time::Duration,
    /// Concurrent deliveries per endpoint (a slow endpoint holds only these).
    #[arg(long, env = "SWITCHBOARD_WEBHOOK_CONCURRENCY", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub webhook_concurrency: u32,
    /// How often the delivery worker looks for due retries and other replicas' events.
    #[arg(long, env = "SWITCHBOARD_WEBHOOK_POLL", default_value = "1s", value_parser = switchboard_webhooks::parse_duration)]
    pub webhook_poll: std::time::Duration,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            event_retention_days: 30,
            webhook_allow_private: false,
            webhook_retry_schedule: switchboard_webhooks::parse_schedule("5s,5m,30m,2h,5h,10h,10h")
                .unwrap_or_default(),
            webhook_disable_after: std::time::Duration::from_secs(5 * 86400),
            webhook_timeout: std::time::Duration::from_secs(10),
            webhook_concurrency: 8,
            webhook_poll: std::time::Duration::from_secs(1),
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct TelephonyConfig {
    /// SIP listen address (UDP and TCP).
    #[arg(long, env = "SWITCHBOARD_SIP_LISTEN", default_value = "127.0.0.1:5060")]
    pub sip_listen: SocketAddr,
    /// Public IP put in SDP and Contact (default: the SIP listen address).
    #[arg(long, env = "SWITCHBOARD_PUBLIC_IP")]
    pub public_ip: Option<std::net::IpAddr>,
    /// IP the RTP sockets bind to (default: the SIP listen IP).
    #[arg(long, env = "SWITCHBOARD_RTP_IP")]
    pub rtp_ip: Option<std::net::IpAddr>,
    /// RTP port range, MIN-MAX.
    #[arg(long, env = "SWITCHBOARD_RTP_PORTS", default_value = "20000-30000", value_parser = parse_range)]
    pub rtp_ports: (u16, u16),
    /// Default ring timeout in seconds (an agent or a call may set its own).
    #[arg(long, env = "SWITCHBOARD_RING_TIMEOUT", default_value_t = 30)]
    pub ring_timeout: u64,
    /// Concurrent calls per organization (an organization may set its own); more wait in the queue.
    #[arg(long, env = "SWITCHBOARD_MAX_CALLS_PER_ORG", default_value_t = 50)]
    pub max_calls_per_org: i64,
    /// Source IPs trusted to send inbound calls to numbers whose trunk lists no sources (comma-separated).
    #[arg(
        long,
        env = "SWITCHBOARD_SIP_TRUSTED",
        default_value = "127.0.0.1",
        value_delimiter = ','
    )]
    pub sip_trusted: Vec<std::net::IpAddr>,
    /// SIP messages per second each source IP may send; a source over it is answered 503
    /// with Retry-After, then ignored while it keeps exceeding. The trunks' addresses and
    /// --sip-trusted are never limited. 0 turns it off.
    #[arg(long, env = "SWITCHBOARD_SIP_RATE_LIMIT", default_value_t = 50)]
    pub sip_rate_limit: u32,
    /// SIP messages a source IP may send at once above --sip-rate-limit (the bucket size).
    #[arg(long, env = "SWITCHBOARD_SIP_RATE_BURST", default_value_t = 100)]
    pub sip_rate_burst: u32,
    /// Seconds graceful shutdown lets live calls finish before hanging up.
    #[arg(long, env = "SWITCHBOARD_SHUTDOWN_GRACE", default_value_t = 10)]
    pub shutdown_grace: u64,
    /// espeak-ng voice used for the agent's greeting.
    #[arg(long, env = "SWITCHBOARD_TTS_VOICE", default_value = "en")]
    pub tts_voice: String,
    /// This engine's id in the database; replicas sharing one database need distinct ids.
    /// Default: `<hostname>:<SIP port>`, stable across restarts of the node.
    #[arg(long, env = "SWITCHBOARD_ENGINE_ID")]
    pub engine_id: Option<String>,
    /// Seconds between heartbeats (and sweeps for calls of dead engines).
    #[arg(long, env = "SWITCHBOARD_ENGINE_HEARTBEAT", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub engine_heartbeat: u64,
    /// Seconds without a heartbeat after which an engine counts as dead and its live calls
    /// are closed as failed / server_restarted by the others.
    #[arg(long, env = "SWITCHBOARD_ENGINE_STALE_AFTER", default_value_t = 30, value_parser = clap::value_parser!(u64).range(2..=86400))]
    pub engine_stale_after: u64,
}

fn parse_range(s: &str) -> Result<(u16, u16), String> {
    let (a, b) = s
        .split_once('-')
        .ok_or("expected MIN-MAX, e.g. 20000-30000")?;
    let a: u16 = a.trim().parse().map_err(|_| "MIN must be a port number")?;
    let b: u16 = b.trim().parse().map_err(|_| "MAX must be a port number")?;
    if a >= b {
        return Err("MIN must be below MAX".into());
    }
    Ok((a, b))
}

impl ServeConfig {
    /// A configuration for tests and benchmarks: port 0, the given store, no rate limit.
    pub fn for_tests(data_dir: PathBuf, database_url: Option<String>) -> Self {
        Self {
            listen: "127.0.0.1:0".parse().expect("literal address"),
            store: StoreConfig {
                data_dir,
                database_url,
            },
            rate_limit: 0,
            public_url: None,
            log_format: "text".into(),
            db_pool: 8,
            sqlite_cache_kib: switchboard_store::DEFAULT_SQLITE_CACHE_KIB,
            recordings_url: None,
            recordings_options: Default::default(),
            telephony: TelephonyConfig {
                sip_listen: "127.0.0.1:0".parse().expect("literal address"),
                public_ip: None,
                rtp_ip: None,
                rtp_ports: (40000, 49999),
                ring_timeout: 30,
                max_calls_per_org: 50,
                sip_trusted: vec!["127.0.0.1".parse().expect("literal address")],
                sip_rate_limit: 50,
                sip_rate_burst: 100,
                shutdown_grace: 5,
                tts_voice: "en".into(),
                engine_id: None,
                engine_heartbeat: 5,
                engine_stale_after: 30,
            },
            agent: Default::default(),
            events: EventsConfig {
                webhook_allow_private: true,
                ..Default::default()
            },
        }
    }
}
