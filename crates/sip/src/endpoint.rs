//! The SIP endpoint: transport (UDP + optional TCP, RFC 3261 §18), the transaction
//! layer (§17) and request dispatch for a UA core (§8.2). Call and dialog logic
//! lives in [`crate::call`], registration in [`crate::register`].

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, watch, Notify};
use tokio::time::{sleep, sleep_until, Instant};
use tracing::{debug, info, warn};

use crate::call::{self, InDialog, IncomingCall};
use crate::flood::{FloodGuard, FloodStats, Verdict};
use crate::message::{
    error_response, error_response_with, find_header_end, parse_message, HeaderAccess, Headers,
    Method, ParseError, Request, Response, SipMessage, MAX_MESSAGE_SIZE,
};
use crate::uri::{NameAddr, Uri};

/// Methods we implement (advertised in Allow, §20.5).
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, REFER, NOTIFY";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }
    /// Unreliable transports need retransmission timers (§17.1.1.2, §17.1.2.2).
    pub fn reliable(self) -> bool {
        self == Transport::Tcp
    }
}

/// Where a message came from / goes to: transport plus the peer's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Flow {
    pub transport: Transport,
    pub remote: SocketAddr,
}

/// A SIP server to send requests to (trunk, registrar).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub transport: Transport,
}

/// RFC 3261 §17.1.1.1 timer values. Defaults are the RFC's.
#[derive(Debug, Clone, Copy)]
pub struct Timers {
    pub t1: Duration,
    pub t2: Duration,
    pub t4: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// Address put in Via, Contact (and by the engine into SDP). Defaults to the UDP
    /// socket's local IP, which is wrong when bound to 0.0.0.0 — set it then.
    pub public_ip: Option<IpAddr>,
    pub user_agent: String,
    pub timers: Timers,
    /// Incoming calls waiting for the engine; more are answered 503 (§21.5.4).
    pub incoming_queue: usize,
    /// Per-source flood protection ([`crate::flood`]); when `None`, one attached to
    /// the UDP socket's address with [`crate::flood::guard_socket`] is used, if any.
    pub flood: Option<Arc<FloodGuard>>,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        EndpointConfig {
            public_ip: None,
            user_agent: concat!("switchboard/", env!("CARGO_PKG_VERSION")).to_string(),
            timers: Timers::default(),
            incoming_queue: 64,
            flood: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SipError {
    #[error("cannot resolve {0}")]
    Resolve(String),
    #[error("transport error: {0}")]
    Io(#[from] io::Error),
    #[error("the call was cancelled by the caller")]
    Cancelled,
    #[error("a final response was already sent")]
    AlreadyAnswered,
    #[error("invalid SDP: {0}")]
    Sdp(#[from] crate::sdp::SdpError),
    #[error("invalid argument: {0}")]
    Invalid(String),
}

/// Transaction-layer event delivered to the transaction user (§17.1).
#[derive(Debug)]
pub(crate) enum TxEvent {
    Response(Response),
    /// Timer B / F fired (§17.1.1.2, §17.1.2.2): treated as 408 by the TU.
    Timeout,
    /// §8.1.3.1: a transport failure is treated as 503.
    TransportError,
}

/// State of one server transaction (§17.2), keyed by branch, sent-by and method.
struct ServerTx {
    flow: Flow,
    is_invite: bool,
    /// Last response sent, re-sent when the request is retransmitted (§17.2.1, §17.2.2).
    last: Option<Vec<u8>>,
    final_status: Option<u16>,
    acked: bool,
    /// For INVITE: the request (to build 487 on CANCEL) and the UAS call state.
    invite: Option<(Request, Arc<UasShared>)>,
}

/// Shared between the endpoint (CANCEL handling) and an [`IncomingCall`].
pub(crate) struct UasShared {
    pub(crate) to_tag: String,
    pub(crate) cancelled: AtomicBool,
    pub(crate) notify: Notify,
}

pub(crate) struct Inner {
    pub(crate) cfg: EndpointConfig,
    pub(crate) public_ip: IpAddr,
    udp: Arc<UdpSocket>,
    /// Outgoing datagrams, written by one task: `try_send_to` on a tokio socket
    /// fails spuriously before readiness is known, and queueing keeps senders sync
    /// (usable from Drop and under locks).
    udp_out: mpsc::UnboundedSender<(Vec<u8>, SocketAddr)>,
    pub(crate) udp_port: u16,
    pub(crate) tcp_port: Option<u16>,
    tcp_conns: Mutex<HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>>,
    client_txs: Mutex<HashMap<String, mpsc::UnboundedSender<Response>>>,
    server_txs: Mutex<HashMap<String, ServerTx>>,
    pub(crate) dialogs: Mutex<HashMap<(String, String), mpsc::UnboundedSender<InDialog>>>,
    incoming: mpsc::Sender<IncomingCall>,
    shutdown: watch::Sender<bool>,
}

/// Lock a std mutex, recovering from poisoning: every critical section here is a
/// plain map operation, so a panic elsewhere cannot leave the map inconsistent.
/// Lets through at most [`LogThrottle::PER_SECOND`] log lines a second; the rest are counted
/// and the count is reported with the next line let through.
struct LogThrottle {
    window: std::sync::atomic::AtomicU64,
    used: std::sync::atomic::AtomicU64,
    skipped: std::sync::atomic::AtomicU64,
}

impl LogThrottle {
    const PER_SECOND: u64 = 5;

    const fn new() -> LogThrottle {
        LogThrottle {
            window: std::sync::atomic::AtomicU64::new(0),
            used: std::sync::atomic::AtomicU64::new(0),
            skipped: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// `Some(lines not logged since the last one)` when this line may be logged.
    fn allow(&self) -> Option<u64> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if self.window.swap(now, Ordering::Relaxed) != now {
            self.used.store(0, Ordering::Relaxed);
        }
        if self.used.fetch_add(1, Ordering::Relaxed) < Self::PER_SECOND {
            Some(self.skipped.swap(0, Ordering::Relaxed))
        } else {
            self.skipped.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

static MALFORMED_LOG: LogThrottle = LogThrottle::new();

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) fn random_token() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Branch ids start with the RFC 3261 magic cookie (§8.1.1.7).
pub(crate) fn new_branch() -> String {
    format!("z9hG4bK{}", random_token())
}

/// Server transaction key (§17.2.3). ACK maps to its INVITE transaction; CANCEL
/// callers compute the INVITE key themselves. The flow the request came in on is
/// part of the key: a retransmission comes from where the original came from, and
/// two peers that happen to pick the same branch and sent-by (RFC 4475's
/// cparam01/cparam02 do) are two transactions, not one answered to the wrong peer.
fn server_key(req: &Request, method: &Method, flow: Flow) -> String {
    let via = req.top_via();
    let (branch, sent_by) = match &via {
        Some(v) => (
            v.branch().unwrap_or("").to_string(),
            format!("{}:{}", v.host, v.port.unwrap_or(5060)),
        ),
        None => (String::new(), String::new()),
    };
    let from = format!("{}/{}", flow.transport.as_str(), flow.remote);
    // A bare magic cookie identifies nothing (RFC 4475 §3.2.1): fall back to the
    // RFC 2543 rule then, as for a branch without the cookie.
    if branch.starts_with("z9hG4bK") && branch.len() > "z9hG4bK".len() {
        format!("{branch}|{sent_by}|{method}|{from}")
    } else {
        // RFC 2543 peers: fall back to the §17.2.3 tuple of the request.
        let cseq = req.cseq().map(|c| c.seq).unwrap_or(0);
        let from_tag = req.header_from().and_then(|f| f.tag().map(str::to_string));
        format!(
            "{}|{}|{cseq}|{}|{sent_by}|{method}|{from}",
            req.call_id(),
            from_tag.unwrap_or_default(),
            req.uri
        )
    }
}

fn client_key(branch: &str, method: &Method) -> String {
    format!("{branch}|{method}")
}

/// Handle to a running SIP endpoint. Cheap to clone.
#[derive(Clone)]
pub struct SipEndpoint {
    pub(crate) inner: Arc<Inner>,
}

impl SipEndpoint {
    /// Start serving on sockets bound by the caller (port 0 in tests). Incoming
    /// calls arrive on the returned receiver; if it is dropped, INVITEs get 503.
    pub fn start(
        config: EndpointConfig,
        udp_socket: UdpSocket,
        tcp_listener: Option<TcpListener>,
    ) -> io::Result<(SipEndpoint, mpsc::Receiver<IncomingCall>)> {
        let udp_addr = udp_socket.local_addr()?;
        let tcp_port = match &tcp_listener {
            Some(l) => Some(l.local_addr()?.port()),
            None => None,
        };
        let public_ip = config.public_ip.unwrap_or(udp_addr.ip());
        let mut config = config;
        if config.flood.is_none() {
            config.flood = crate::flood::take_guard(udp_addr);
        }
        let (incoming_tx, incoming_rx) = mpsc::channel(config.incoming_queue.max(1));
        let (shutdown, _) = watch::channel(false);
        let (udp_out, udp_out_rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            cfg: config,
            public_ip,
            udp: Arc::new(udp_socket),
            udp_out,
            udp_port: udp_addr.port(),
            tcp_port,
            tcp_conns: Mutex::new(HashMap::new()),
            client_txs: Mutex::new(HashMap::new()),
            server_txs: Mutex::new(HashMap::new()),
            dialogs: Mutex::new(HashMap::new()),
            incoming: incoming_tx,
            shutdown,
        });
        tokio::spawn(udp_writer(inner.udp.clone(), udp_out_rx));
        tokio::spawn(udp_loop(inner.clone()));
        if let Some(l) = tcp_listener {
            tokio::spawn(tcp_accept_loop(inner.clone(), l));
        }
        Ok((SipEndpoint { inner }, incoming_rx))
    }

    /// The IP the endpoint advertises (use it in SDP).
    pub fn public_ip(&self) -> IpAddr {
        self.inner.public_ip
    }
    pub fn udp_port(&self) -> u16 {
        self.inner.udp_port
    }
    pub fn tcp_port(&self) -> Option<u16> {
        self.inner.tcp_port
    }

    /// What flood protection refused so far (zeros without it).
    pub fn flood_stats(&self) -> FloodStats {
        self.inner.cfg.flood.as_ref().map_or(
            FloodStats {
                refused: 0,
                dropped: 0,
            },
            |g| g.stats(),
        )
    }

    /// Stop the receive loops. Calls in progress see no further messages.
    pub fn shutdown(&self) {
        self.inner.shutdown.send_replace(true);
    }
}

impl Inner {
    pub(crate) fn local_port(&self, t: Transport) -> u16 {
        match t {
            Transport::Udp => self.udp_port,
            Transport::Tcp => self.tcp_port.unwrap_or(self.udp_port),
        }
    }

    pub(crate) fn host_port(&self, t: Transport) -> String {
        match self.public_ip {
            IpAddr::V6(ip) => format!("[{ip}]:{}", self.local_port(t)),
            IpAddr::V4(ip) => format!("{ip}:{}", self.local_port(t)),
        }
    }

    pub(crate) fn via(&self, t: Transport, branch: &str) -> String {
        // rport (RFC 3581) so responses find us through NAT.
        format!(
            "SIP/2.0/{} {};rport;branch={branch}",
            t.as_str(),
            self.host_port(t)
        )
    }

    pub(crate) fn contact(&self, user: Option<&str>, t: Transport) -> NameAddr {
        let mut uri = Uri::sip(user, &self.public_ip_host(), Some(self.local_port(t)));
        if t == Transport::Tcp {
            uri.params.push(("transport".into(), Some("tcp".into())));
        }
        NameAddr::new(uri)
    }

    pub(crate) fn public_ip_host(&self) -> String {
        match self.public_ip {
            IpAddr::V6(ip) => format!("[{ip}]"),
            IpAddr::V4(ip) => ip.to_string(),
        }
    }

    /// Send without waiting. UDP uses a non-blocking send (a full socket buffer is
    /// reported, and the retransmission timers recover); TCP queues to the
    /// connection's writer task.
    pub(crate) fn send_now(&self, flow: Flow, bytes: Vec<u8>) -> io::Result<()> {
        match flow.transport {
            Transport::Udp => self
                .udp_out
                .send((bytes, flow.remote))
                .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "endpoint stopped")),
            Transport::Tcp => {
                let conns = lock(&self.tcp_conns);
                let tx = conns
                    .get(&flow.remote)
                    .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "no connection"))?;
                tx.try_send(bytes)
                    .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "connection closed"))
            }
        }
    }

    /// Make sure a flow can carry a request: for TCP, connect if needed (§18.1.1).
    pub(crate) async fn ensure_flow(self: &Arc<Self>, flow: Flow) -> io::Result<()> {
        if flow.transport == Transport::Udp || lock(&self.tcp_conns).contains_key(&flow.remote) {
            return Ok(());
        }
        let stream = tokio::time::timeout(self.cfg.timers.t1 * 64, TcpStream::connect(flow.remote))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timeout"))??;
        spawn_tcp_connection(self.clone(), stream, flow.remote);
        Ok(())
    }

    /// Resolve a host/port into a flow (numeric IPs directly, else DNS A/AAAA;
    /// RFC 3263 NAPTR/SRV is not implemented: trunks are configured with a port).
    pub(crate) async fn resolve(
        &self,
        host: &str,
        port: u16,
        t: Transport,
    ) -> Result<Flow, SipError> {
        let h = host.trim_start_matches('[').trim_end_matches(']');
        let remote = match h.parse::<IpAddr>() {
            Ok(ip) => SocketAddr::new(ip, port),
            Err(_) => tokio::net::lookup_host((h, port))
                .await
                .map_err(|_| SipError::Resolve(host.to_string()))?
                .next()
                .ok_or_else(|| SipError::Resolve(host.to_string()))?,
        };
        Ok(Flow {
            transport: t,
            remote,
        })
    }

    // ---------------------------------------------------------------- client tx

    /// Start a client transaction (§17.1) for `req` over `flow`. The request must
    /// carry a top Via with a fresh branch. Events end with a final response or
    /// Timeout/TransportError; for INVITE, 2xx retransmissions keep arriving for
    /// 64*T1 so the TU can re-ACK them (RFC 6026 "Accepted" state).
    pub(crate) async fn client_tx(
        self: &Arc<Self>,
        req: Request,
        flow: Flow,
    ) -> mpsc::UnboundedReceiver<TxEvent> {
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let branch = req.top_via().and_then(|v| v.branch().map(str::to_string));
        let Some(branch) = branch else {
            let _ = ev_tx.send(TxEvent::TransportError);
            return ev_rx;
        };
        let key = client_key(&branch, &req.method);
        let (resp_tx, resp_rx) = mpsc::unbounded_channel();
        lock(&self.client_txs).insert(key.clone(), resp_tx);
        if let Err(e) = self.ensure_flow(flow).await {
            warn!(error = %e, remote = %flow.remote, "cannot open transport");
            lock(&self.client_txs).remove(&key);
            let _ = ev_tx.send(TxEvent::TransportError);
            return ev_rx;
        }
        let inner = self.clone();
        tokio::spawn(async move {
            let is_invite = req.method == Method::Invite;
            if is_invite {
                invite_client_tx(&inner, req, flow, resp_rx, ev_tx).await;
            } else {
                non_invite_client_tx(&inner, req, flow, resp_rx, ev_tx).await;
            }
            lock(&inner.client_txs).remove(&key);
        });
        ev_rx
    }

    // ---------------------------------------------------------------- server tx

    /// Build a response to `req` per §8.2.6.2: copy Via, From, To, Call-ID, CSeq;
    /// add our To tag when given and the To header has none.
    pub(crate) fn make_response(
        &self,
        req: &Request,
        status: u16,
        reason: &str,
        to_tag: Option<&str>,
    ) -> Response {
        let mut headers = Headers::new();
        for v in req.headers.get_all("Via") {
            headers.push("Via", v);
        }
        headers.push("From", req.headers.get("From").unwrap_or_default());
        let to = req.headers.get("To").unwrap_or_default().to_string();
        let to = match (to_tag, req.header_to()) {
            // Copy the To exactly and append the tag (§8.2.6.2): re-printing it
            // could lose quoted-pairs such as RFC 4475 §3.1.1.2's quoted NUL.
            (Some(tag), Some(na)) if na.tag().is_none() && status > 100 => {
                format!("{to};tag={tag}")
            }
            _ => to,
        };
        headers.push("To", to);
        headers.push("Call-ID", req.call_id());
        headers.push("CSeq", req.headers.get("CSeq").unwrap_or_default());
        headers.push("Server", self.cfg.user_agent.clone());
        Response {
            status,
            reason: reason.to_string(),
            headers,
            body: Vec::new(),
        }
    }

    /// Send a response within server transaction `key`. Returns false when the
    /// transaction is gone or already has a final response (e.g. CANCEL won).
    pub(crate) fn send_response(self: &Arc<Self>, key: &str, resp: Response) -> bool {
        let bytes = resp.to_bytes();
        let (flow, is_invite) = {
            let mut map = lock(&self.server_txs);
            let Some(tx) = map.get_mut(key) else {
                return false;
            };
            if tx.final_status.is_some() {
                return false;
            }
            tx.last = Some(bytes.clone());
            if resp.status >= 200 {
                tx.final_status = Some(resp.status);
            }
            (tx.flow, tx.is_invite)
        };
        if let Err(e) = self.send_now(flow, bytes.clone()) {
            warn!(error = %e, remote = %flow.remote, "failed to send response");
        }
        if resp.status < 200 {
            return true;
        }
        let t = self.cfg.timers;
        if is_invite && resp.status >= 300 {
            // §17.2.1 Completed: retransmit (Timer G, UDP only) until ACK or Timer H.
            let inner = self.clone();
            let key = key.to_string();
            tokio::spawn(async move {
                let deadline_h = Instant::now() + t.t1 * 64;
                let mut interval = t.t1;
                loop {
                    let wake = if flow.transport.reliable() {
                        deadline_h
                    } else {
                        (Instant::now() + interval).min(deadline_h)
                    };
                    sleep_until(wake).await;
                    let acked = lock(&inner.server_txs).get(&key).is_none_or(|tx| tx.acked);
                    if acked {
                        // Timer I (Confirmed → Terminated): T4 on UDP, 0 on TCP.
                        let wait = if flow.transport.reliable() {
                            Duration::ZERO
                        } else {
                            t.t4
                        };
                        sleep(wait).await;
                        break;
                    }
                    if Instant::now() >= deadline_h {
                        debug!(%key, "Timer H: no ACK for final response");
                        break;
                    }
                    let _ = inner.send_now(flow, bytes.clone());
                    interval = (interval * 2).min(t.t2);
                }
                lock(&inner.server_txs).remove(&key);
            });
        } else {
            // Non-INVITE: Timer J keeps absorbing retransmissions (64*T1 on UDP).
            // INVITE 2xx: keep the entry 64*T1 so retransmitted INVITEs are not
            // taken for new calls (RFC 6026 Accepted state).
            let wait = if flow.transport.reliable() && !is_invite {
                Duration::ZERO
            } else {
                t.t1 * 64
            };
            self.schedule_remove(key.to_string(), wait);
        }
        true
    }

    fn schedule_remove(self: &Arc<Self>, key: String, after: Duration) {
        let inner = self.clone();
        tokio::spawn(async move {
            sleep(after).await;
            lock(&inner.server_txs).remove(&key);
        });
    }

    /// Answer a request statelessly-in-spirit: create the transaction and send.
    fn reply(self: &Arc<Self>, key: &str, req: &Request, status: u16, reason: &str) {
        let mut resp = self.make_response(req, status, reason, Some(&random_token()));
        if status == 405 || status == 200 && req.method == Method::Options {
            resp.headers.push("Allow", ALLOW);
        }
        if req.method == Method::Options && status == 200 {
            resp.headers.push("Accept", "application/sdp");
        }
        self.send_response(key, resp);
    }

    // ---------------------------------------------------------------- dispatch

    fn handle_datagram(self: &Arc<Self>, data: &[u8], flow: Flow) {
        // CRLF keep-alives (RFC 5626 §3.5.1) and stray whitespace are ignored.
        if data.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        if let Some(guard) = &self.cfg.flood {
            // Before parsing: a flood of garbage must cost as little as one of requests.
            match guard.check(flow.remote.ip()) {
                Verdict::Pass => {}
                Verdict::Drop => return,
                Verdict::Refuse { retry_after } => {
                    // §21.5.4 / §20.33: 503 with Retry-After, once; then silence.
                    let err = ParseError {
                        status: 503,
                        reason: "Service Unavailable",
                        detail: "rate limit".into(),
                    };
                    let extra = [("Retry-After", retry_after.to_string())];
                    match error_response_with(data, &err, &self.cfg.user_agent, &extra) {
                        Some(resp) => {
                            warn!(remote = %flow.remote, retry_after, "SIP source over its rate limit: 503, then ignored while it keeps exceeding");
                            let _ = self.send_now(flow, resp);
                        }
                        // Too broken to answer: the next message over the limit gets it.
                        None => guard.rearm(flow.remote.ip()),
                    }
                    return;
                }
            }
        }
        match parse_message(data) {
            Ok(SipMessage::Request(r)) => self.handle_request(r, flow),
            Ok(SipMessage::Response(r)) => self.handle_response(r),
            Err(e) => self.reject_malformed(data, &e, flow),
        }
    }

    fn reject_malformed(&self, data: &[u8], e: &ParseError, flow: Flow) {
        // Logged at most a few times a second: a stream of garbage (under the flood limit,
        // or from an exempt source) must not turn into a stream of log writes.
        let suppressed = MALFORMED_LOG.allow();
        match error_response(data, e, &self.cfg.user_agent) {
            Some(resp) => {
                if let Some(more) = suppressed {
                    warn!(remote = %flow.remote, error = %e, not_logged_before = more, "malformed SIP request answered");
                }
                let _ = self.send_now(flow, resp);
            }
            None => {
                if let Some(more) = suppressed {
                    warn!(remote = %flow.remote, error = %e, not_logged_before = more, "malformed SIP message dropped");
                }
            }
        }
    }

    fn handle_response(&self, resp: Response) {
        // §17.1.3: match on the top Via branch and the CSeq method.
        let (Some(via), Some(cseq)) = (resp.top_via(), resp.cseq()) else {
            return;
        };
        let key = client_key(via.branch().unwrap_or(""), &cseq.method);
        let tx = lock(&self.client_txs).get(&key).cloned();
        match tx {
            Some(tx) => {
                let _ = tx.send(resp);
            }
            // §18.1.2: a response matching no transaction is discarded.
            None => debug!(status = resp.status, "stray response dropped"),
        }
    }

    fn handle_request(self: &Arc<Self>, req: Request, flow: Flow) {
        let tx_method = if req.method == Method::Ack {
            Method::Invite
        } else {
            req.method.clone()
        };
        let key = server_key(&req, &tx_method, flow);

        if req.method == Method::Ack {
            // §17.2.1: ACK for a non-2xx final belongs to the INVITE transaction.
            let mut map = lock(&self.server_txs);
            if let Some(tx) = map.get_mut(&key) {
                if tx.final_status.is_some_and(|s| s >= 300) {
                    tx.acked = true;
                    return;
                }
            }
            drop(map);
            // ACK for 2xx is an in-dialog request with its own branch (§13.2.2.4).
            self.route_in_dialog(req, String::new(), flow);
            return;
        }

        {
            let mut map = lock(&self.server_txs);
            if let Some(tx) = map.get(&key) {
                // Retransmission: repeat the last response, if any (§17.2.1/§17.2.2).
                if let Some(last) = tx.last.clone() {
                    let flow = tx.flow;
                    drop(map);
                    let _ = self.send_now(flow, last);
                }
                return;
            }
            map.insert(
                key.clone(),
                ServerTx {
                    flow,
                    is_invite: req.method == Method::Invite,
                    last: None,
                    final_status: None,
                    acked: false,
                    invite: None,
                },
            );
        }

        // §8.2.2.3: refuse extensions we do not support.
        if !matches!(req.method, Method::Cancel) {
            let required: Vec<&str> = req.headers.get_all("Require");
            if !required.is_empty() {
                let mut resp =
                    self.make_response(&req, 420, "Bad Extension", Some(&random_token()));
                resp.headers.push("Unsupported", required.join(", "));
                self.send_response(&key, resp);
                return;
            }
        }

        match req.method {
            Method::Cancel => self.handle_cancel(&key, req, flow),
            _ if req.header_to().is_some_and(|t| t.tag().is_some()) => {
                self.route_in_dialog(req, key, flow)
            }
            Method::Invite => self.new_incoming_call(key, req, flow),
            Method::Options => self.reply(&key, &req, 200, "OK"),
            // Dialog-bound methods without a dialog (§12.2.2, §15).
            Method::Bye
            | Method::Info
            | Method::Refer
            | Method::Notify
            | Method::Prack
            | Method::Update => self.reply(&key, &req, 481, "Call/Transaction Does Not Exist"),
            // Known but not supported here (§8.2.1): 405 with Allow.
            Method::Register | Method::Subscribe | Method::Message | Method::Publish => {
                self.reply(&key, &req, 405, "Method Not Allowed")
            }
            // Unknown method (§21.5.2).
            Method::Other(_) | Method::Ack => self.reply(&key, &req, 501, "Not Implemented"),
        }
    }

    fn route_in_dialog(self: &Arc<Self>, req: Request, key: String, flow: Flow) {
        let to_tag = req.header_to().and_then(|t| t.tag().map(str::to_string));
        let dkey = (req.call_id().to_string(), to_tag.unwrap_or_default());
        let sender = lock(&self.dialogs).get(&dkey).cloned();
        let is_ack = req.method == Method::Ack;
        match sender {
            Some(s) => {
                if let Err(mpsc::error::SendError(d)) = s.send(InDialog {
                    req,
                    tx_key: key.clone(),
                    flow,
                }) {
                    if !is_ack {
                        self.reply(&key, &d.req, 481, "Call/Transaction Does Not Exist");
                    }
                }
            }
            // §12.2.2: a request for an unknown dialog gets 481 (an ACK is dropped).
            None if !is_ack => self.reply(&key, &req, 481, "Call/Transaction Does Not Exist"),
            None => debug!("ACK for unknown dialog dropped"),
        }
    }

    fn handle_cancel(self: &Arc<Self>, key: &str, req: Request, flow: Flow) {
        // §9.2: CANCEL matches the INVITE transaction with the same branch.
        let invite_key = server_key(&req, &Method::Invite, flow);
        let pending = {
            let map = lock(&self.server_txs);
            map.get(&invite_key).and_then(|tx| tx.invite.clone())
        };
        let Some((invite, shared)) = pending else {
            self.reply(key, &req, 481, "Call/Transaction Does Not Exist");
            return;
        };
        self.send_response(
            key,
            self.make_response(&req, 200, "OK", Some(&shared.to_tag)),
        );
        let resp = self.make_response(&invite, 487, "Request Terminated", Some(&shared.to_tag));
        if self.send_response(&invite_key, resp) {
            info!(call_id = %invite.call_id(), "incoming call cancelled by caller");
            shared.cancelled.store(true, Ordering::SeqCst);
            shared.notify.notify_waiters();
        }
    }

    fn new_incoming_call(self: &Arc<Self>, key: String, req: Request, flow: Flow) {
        let shared = Arc::new(UasShared {
            to_tag: random_token(),
            cancelled: AtomicBool::new(false),
            notify: Notify::new(),
        });
        // §17.2.1: 100 Trying straight away stops the caller's INVITE retransmits.
        self.send_response(&key, self.make_response(&req, 100, "Trying", None));
        if let Some(tx) = lock(&self.server_txs).get_mut(&key) {
            tx.invite = Some((req.clone(), shared.clone()));
        }
        match call::validate_incoming(&req) {
            Ok(()) => {}
            Err((code, reason)) => {
                let mut resp = self.make_response(&req, code, reason, Some(&shared.to_tag));
                if code == 415 {
                    // §21.4.13 / §8.2.3: list the body types we understand.
                    resp.headers.push("Accept", "application/sdp");
                }
                self.send_response(&key, resp);
                return;
            }
        }
        let call = IncomingCall::new(self.clone(), key.clone(), req.clone(), flow, shared.clone());
        if let Err(e) = self.incoming.try_send(call) {
            // The engine is saturated or gone: §21.5.4 503 (the IncomingCall's Drop
            // would send 480; answer explicitly and disarm it).
            let call = match e {
                mpsc::error::TrySendError::Full(c) | mpsc::error::TrySendError::Closed(c) => c,
            };
            call.reject(503, "Service Unavailable");
        }
    }
}

// -------------------------------------------------------------------- client txs

/// INVITE client transaction, §17.1.1 (Figure 5).
async fn invite_client_tx(
    inner: &Arc<Inner>,
    req: Request,
    flow: Flow,
    mut resp_rx: mpsc::UnboundedReceiver<Response>,
    ev: mpsc::UnboundedSender<TxEvent>,
) {
    let t = inner.cfg.timers;
    let bytes = req.to_bytes();
    if inner.send_now(flow, bytes.clone()).is_err() {
        let _ = ev.send(TxEvent::TransportError);
        return;
    }
    let reliable = flow.transport.reliable();
    let timer_b = Instant::now() + t.t1 * 64;
    let mut timer_a = t.t1;
    let mut next_a = Instant::now() + timer_a;
    let mut proceeding = false;
    // Calling / Proceeding
    let final_resp = loop {
        tokio::select! {
            r = resp_rx.recv() => {
                let Some(r) = r else { return };
                if r.is_provisional() {
                    proceeding = true;
                    let _ = ev.send(TxEvent::Response(r));
                } else {
                    break r;
                }
            }
            _ = sleep_until(next_a), if !proceeding && !reliable => {
                // Timer A: retransmit, doubling (§17.1.1.2).
                let _ = inner.send_now(flow, bytes.clone());
                timer_a *= 2;
                next_a = Instant::now() + timer_a;
            }
            _ = sleep_until(timer_b), if !proceeding => {
                let _ = ev.send(TxEvent::Timeout);
                return;
            }
        }
    };
    if final_resp.is_success() {
        // Terminated per RFC 3261; we linger 64*T1 (RFC 6026 Accepted) and pass
        // 2xx retransmissions to the TU, which re-sends its ACK (§13.2.2.4).
        let _ = ev.send(TxEvent::Response(final_resp));
        let end = Instant::now() + t.t1 * 64;
        loop {
            tokio::select! {
                r = resp_rx.recv() => match r {
                    Some(r) if r.is_success() => { let _ = ev.send(TxEvent::Response(r)); }
                    Some(_) => {}
                    None => return,
                },
                _ = sleep_until(end) => return,
            }
        }
    }
    // Completed: ACK the non-2xx final (§17.1.1.3) and absorb retransmissions
    // for Timer D (≥32 s on UDP, 0 on TCP).
    let ack = build_non2xx_ack(&req, &final_resp).to_bytes();
    let _ = inner.send_now(flow, ack.clone());
    let _ = ev.send(TxEvent::Response(final_resp));
    if reliable {
        return;
    }
    let timer_d = Instant::now() + Duration::from_secs(32).max(t.t1 * 64);
    loop {
        tokio::select! {
            r = resp_rx.recv() => match r {
                Some(r) if r.status >= 300 => { let _ = inner.send_now(flow, ack.clone()); }
                Some(_) => {}
                None => return,
            },
            _ = sleep_until(timer_d) => return,
        }
    }
}

/// §17.1.1.3: the ACK for a non-2xx final has the INVITE's Request-URI, Call-ID,
/// From, CSeq number, top Via and Route, and the response's To (with its tag).
fn build_non2xx_ack(invite: &Request, resp: &Response) -> Request {
    let mut h = Headers::new();
    if let Some(v) = invite.headers.get_all("Via").first() {
        h.push("Via", *v);
    }
    h.push("Max-Forwards", "70");
    h.push("From", invite.headers.get("From").unwrap_or_default());
    h.push("To", resp.headers.get("To").unwrap_or_default());
    h.push("Call-ID", invite.call_id());
    let seq = invite.cseq().map(|c| c.seq).unwrap_or(1);
    h.push("CSeq", format!("{seq} ACK"));
    for r in invite.headers.get_all("Route") {
        h.push("Route", r);
    }
    Request {
        method: Method::Ack,
        uri: invite.uri.clone(),
        headers: h,
        body: Vec::new(),
    }
}

/// Non-INVITE client transaction, §17.1.2 (Figure 6).
async fn non_invite_client_tx(
    inner: &Arc<Inner>,
    req: Request,
    flow: Flow,
    mut resp_rx: mpsc::UnboundedReceiver<Response>,
    ev: mpsc::UnboundedSender<TxEvent>,
) {
    let t = inner.cfg.timers;
    let bytes = req.to_bytes();
    if inner.send_now(flow, bytes.clone()).is_err() {
        let _ = ev.send(TxEvent::TransportError);
        return;
    }
    let reliable = flow.transport.reliable();
    let timer_f = Instant::now() + t.t1 * 64;
    let mut timer_e = t.t1;
    let mut next_e = Instant::now() + timer_e;
    let mut proceeding = false;
    loop {
        tokio::select! {
            r = resp_rx.recv() => {
                let Some(r) = r else { return };
                if r.is_provisional() {
                    proceeding = true;
                    let _ = ev.send(TxEvent::Response(r));
                } else {
                    let _ = ev.send(TxEvent::Response(r));
                    break;
                }
            }
            _ = sleep_until(next_e), if !reliable => {
                // Timer E: T1 doubling up to T2 in Trying, T2 in Proceeding.
                let _ = inner.send_now(flow, bytes.clone());
                timer_e = if proceeding { t.t2 } else { (timer_e * 2).min(t.t2) };
                next_e = Instant::now() + timer_e;
            }
            _ = sleep_until(timer_f) => {
                let _ = ev.send(TxEvent::Timeout);
                return;
            }
        }
    }
    // Completed: Timer K (T4 on UDP) absorbs response retransmissions.
    if !reliable {
        let end = Instant::now() + t.t4;
        while tokio::time::timeout_at(end, resp_rx.recv())
            .await
            .is_ok_and(|r| r.is_some())
        {}
    }
}

// -------------------------------------------------------------------- transports

async fn udp_writer(udp: Arc<UdpSocket>, mut rx: mpsc::UnboundedReceiver<(Vec<u8>, SocketAddr)>) {
    while let Some((bytes, to)) = rx.recv().await {
        if let Err(e) = udp.send_to(&bytes, to).await {
            // Lost datagrams are recovered by the §17 retransmission timers.
            debug!(error = %e, %to, "UDP send failed");
        }
    }
}

async fn udp_loop(inner: Arc<Inner>) {
    // 64 KiB: the largest datagram; bigger-than-allowed ones are parsed far enough
    // to be answered 513 rather than being silently truncated.
    let mut buf = vec![0u8; 65_536];
    let mut stop = inner.shutdown.subscribe();
    loop {
        tokio::select! {
            r = inner.udp.recv_from(&mut buf) => match r {
                Ok((n, src)) => inner.handle_datagram(&buf[..n], Flow { transport: Transport::Udp, remote: src }),
                // ICMP port unreachable surfaces as ECONNREFUSED on some OSes; keep going.
                Err(e) => debug!(error = %e, "UDP receive error"),
            },
            _ = stop.changed() => return,
        }
    }
}

async fn tcp_accept_loop(inner: Arc<Inner>, listener: TcpListener) {
    let mut stop = inner.shutdown.subscribe();
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, remote)) => spawn_tcp_connection(inner.clone(), stream, remote),
                Err(e) => {
                    warn!(error = %e, "TCP accept failed");
                    // Back off so a persistent error (EMFILE) cannot spin the loop.
                    sleep(Duration::from_millis(100)).await;
                }
            },
            _ = stop.changed() => return,
        }
    }
}

/// Result of trying to cut one message off a stream buffer (§18.3 framing).
#[derive(Debug, PartialEq, Eq)]
pub enum Framed {
    Incomplete,
    /// A complete message occupying the first `n` bytes.
    Message(usize),
    /// Leading CRLF keep-alive bytes to skip.
    Skip(usize),
    Invalid(ParseError),
}

/// Stream framing: headers end at CRLFCRLF and Content-Length (mandatory on
/// streams, §18.3/§20.14) gives the body length. Pure function, fuzzable.
pub fn frame(buf: &[u8]) -> Framed {
    let skip = buf
        .iter()
        .take_while(|b| **b == b'\r' || **b == b'\n')
        .count();
    if skip > 0 {
        return Framed::Skip(skip);
    }
    let Some(hdr_end) = find_header_end(buf) else {
        if buf.len() > MAX_MESSAGE_SIZE {
            return Framed::Invalid(ParseError {
                status: 513,
                reason: "Message Too Large",
                detail: "header section too large".into(),
            });
        }
        return Framed::Incomplete;
    };
    let head = String::from_utf8_lossy(&buf[..hdr_end]);
    let mut cl = None;
    for line in head.split("\r\n").skip(1) {
        if let Some((n, v)) = line.split_once(':') {
            let n = n.trim();
            if n.eq_ignore_ascii_case("content-length") || n.eq_ignore_ascii_case("l") {
                // Two lengths leave the framing unknowable (RFC 4475 §3.3.9): the
                // stream cannot be resynchronised, so it is an error like a bad one.
                let dup = cl.is_some();
                cl = v.trim().parse::<usize>().ok();
                if cl.is_none() || dup {
                    return Framed::Invalid(ParseError {
                        status: 400,
                        reason: "Bad Request",
                        detail: "malformed Content-Length".into(),
                    });
                }
            }
        }
    }
    let cl = cl.unwrap_or(0);
    if hdr_end + cl > MAX_MESSAGE_SIZE {
        return Framed::Invalid(ParseError {
            status: 513,
            reason: "Message Too Large",
            detail: "message too large".into(),
        });
    }
    if buf.len() < hdr_end + cl {
        return Framed::Incomplete;
    }
    Framed::Message(hdr_end + cl)
}

fn spawn_tcp_connection(inner: Arc<Inner>, stream: TcpStream, remote: SocketAddr) {
    let (mut rd, mut wr) = stream.into_split();
    // Bounded queue: a peer that stops reading must not grow our memory.
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(256);
    lock(&inner.tcp_conns).insert(remote, tx);
    let flow = Flow {
        transport: Transport::Tcp,
        remote,
    };
    tokio::spawn(async move {
        while let Some(b) = rx.recv().await {
            if wr.write_all(&b).await.is_err() {
                break;
            }
        }
    });
    tokio::spawn(async move {
        let mut stop = inner.shutdown.subscribe();
        let mut buf: Vec<u8> = Vec::with_capacity(4096);
        let mut chunk = vec![0u8; 16 * 1024];
        // A message begun but not finished within 64*T1 is never coming (RFC 4475
        // §3.1.2.2: a Content-Length larger than the body on a stream): close, so a
        // peer cannot hold a connection and its buffer open by never finishing.
        // The clock runs from the message's first byte, so trickling does not reset it.
        let incomplete_limit = inner.cfg.timers.t1 * 64;
        let mut begun: Option<Instant> = None;
        'conn: loop {
            let deadline = begun.map(|b| b + incomplete_limit);
            let n = tokio::select! {
                r = rd.read(&mut chunk) => match r { Ok(0) | Err(_) => break, Ok(n) => n },
                _ = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                    debug!(%remote, "incomplete SIP message timed out; closing");
                    break;
                }
                _ = stop.changed() => break,
            };
            buf.extend_from_slice(&chunk[..n]);
            loop {
                match frame(&buf) {
                    Framed::Incomplete => break,
                    Framed::Skip(n) => {
                        buf.drain(..n);
                    }
                    Framed::Message(n) => {
                        let msg: Vec<u8> = buf.drain(..n).collect();
                        inner.handle_datagram(&msg, flow);
                    }
                    Framed::Invalid(e) => {
                        // A framing error desynchronises the stream: answer if we
                        // can, then close it (§18.3).
                        inner.reject_malformed(&buf, &e, flow);
                        break 'conn;
                    }
                }
            }
            begun = match (buf.is_empty(), begun) {
                (true, _) => None,
                (false, None) => Some(Instant::now()),
                (false, b) => b,
            };
        }
        lock(&inner.tcp_conns).remove(&remote);
        debug!(%remote, "TCP connection closed");
    });
}

/// Build a fresh request with the mandatory headers of §8.1.1.
#[expect(
    clippy::too_many_arguments,
    reason = "each argument is one mandatory header of RFC 3261 §8.1.1"
)]
pub(crate) fn new_request(
    inner: &Inner,
    method: Method,
    uri: Uri,
    from: &NameAddr,
    to: &NameAddr,
    call_id: &str,
    cseq: u32,
    t: Transport,
) -> Request {
    let mut h = Headers::new();
    h.push("Via", inner.via(t, &new_branch()));
    h.push("Max-Forwards", "70");
    h.push("From", from.to_string());
    h.push("To", to.to_string());
    h.push("Call-ID", call_id);
    h.push("CSeq", format!("{cseq} {method}"));
    h.push("User-Agent", inner.cfg.user_agent.clone());
    Request {
        method,
        uri,
        headers: h,
        body: Vec::new(),
    }
}

/// Replace the top Via with one carrying a fresh branch (new transaction, §8.1.1.7).
pub(crate) fn refresh_branch(inner: &Inner, req: &mut Request, t: Transport) {
    let vias: Vec<String> = req
        .headers
        .get_all("Via")
        .iter()
        .skip(1)
        .map(|s| s.to_string())
        .collect();
    req.headers.remove("Via");
    let mut new_headers = Headers::new();
    new_headers.push("Via", inner.via(t, &new_branch()));
    for v in vias {
        new_headers.push("Via", v);
    }
    for (n, v) in req.headers.iter() {
        new_headers.push(n, v);
    }
    req.headers = new_headers;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing() {
        let m = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 3\r\n\r\nabcNEXT";
        assert_eq!(frame(m), Framed::Message(m.len() - 4));
        assert_eq!(frame(&m[..20]), Framed::Incomplete);
        assert_eq!(frame(b"\r\n\r\nX"), Framed::Skip(4));
        let bad = b"OPTIONS sip:a@b SIP/2.0\r\nl: x\r\n\r\n";
        assert!(matches!(frame(bad), Framed::Invalid(e) if e.status == 400));
        let huge = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 999999\r\n\r\n";
        assert!(matches!(frame(huge), Framed::Invalid(e) if e.status == 513));
    }
}
