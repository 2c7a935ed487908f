//! What the engine is started with.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;
use switchboard_agent::driver::Providers;
use switchboard_store::Recordings;

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
    /// Delays before each retry of a failed post-call analysis; after the last, the failure
    /// is recorded on the call.
    pub analysis_retry_schedule: Vec<Duration>,
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
            analysis_retry_schedule: [10, 60, 300, 1800, 7200].map(Duration::from_secs).to_vec(),
        }
    }
}
