//! Thin tokio layer: one task per call that owns the RTP (and RTCP) socket, paces outgoing
//! 20 ms G.711 packets on an interval, feeds received packets into the sans-IO cores (jitter
//! buffer, DTMF detector) and drives the recorder from the same tick so the two recorded channels
//! stay aligned with wall-clock time.
//!
//! Control goes through [`SessionHandle`]; what happens on the line comes back as
//! [`MediaEvent`]s on a bounded channel (never awaited by the media loop: if the consumer falls
//! behind, events are dropped and counted rather than stalling audio).

use crate::dtmf::{encode_digit, DtmfDetector, DtmfDigit, EventPacket};
use crate::g711::G711;
use crate::jitter::{
    Concealer, JitterBuffer, JitterConfig, JitterPacket, JitterStats, Playout, PushOutcome,
};
use crate::recorder::{CallRecorder, RecordingInfo, FRAME_SAMPLES};
use crate::rtcp::{self, ReportBlock, RtcpPacket, SenderInfo};
use crate::rtp::{looks_like_rtcp, RtpPacket};
use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use thiserror::Error;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tracing::{debug, warn};

/// Packetization time. Everything here assumes 20 ms frames (RFC 3551 §4.5.14 default ptime).
pub const PTIME: Duration = Duration::from_millis(20);

/// Bind an RTP socket on an even port within `[min_port, max_port]` and its RTCP socket on the
/// next (odd) port (RFC 3550 §11). The search starts at a random even port so concurrent calls
/// rarely race for the same pair.
pub async fn bind_rtp_pair(
    ip: IpAddr,
    min_port: u16,
    max_port: u16,
) -> io::Result<(UdpSocket, UdpSocket)> {
    let first_even = min_port.saturating_add(min_port % 2);
    if max_port < first_even.saturating_add(1) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "port range holds no even/odd pair",
        ));
    }
    let pairs = u32::from((max_port - 1 - first_even) / 2 + 1);
    let start = rand::random::<u32>() % pairs;
    for i in 0..pairs {
        let port = first_even + (((start + i) % pairs) * 2) as u16;
        let rtp = match UdpSocket::bind(SocketAddr::new(ip, port)).await {
            Ok(s) => s,
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
            Err(e) => return Err(e),
        };
        match UdpSocket::bind(SocketAddr::new(ip, port + 1)).await {
            Ok(rtcp) => return Ok((rtp, rtcp)),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        format!("no free RTP port pair in {min_port}..={max_port}"),
    ))
}

/// Session settings, mostly from the SDP offer/answer.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Where to send RTP (c= and m= of the remote SDP).
    pub remote: SocketAddr,
    /// Where to send RTCP; default is `remote` port + 1 (or `remote` itself when no RTCP socket
    /// is given, i.e. rtcp-mux, RFC 5761).
    pub remote_rtcp: Option<SocketAddr>,
    /// Audio payload type: 0 (PCMU) or 8 (PCMA).
    pub payload_type: u8,
    /// Negotiated telephone-event payload type (RFC 4733), usually 101.
    pub telephone_event_pt: Option<u8>,
    /// Symmetric RTP latching: accept the first source and send there from then on (for
    /// peers behind NAT whose SDP address is wrong). Otherwise only `remote` is accepted.
    pub latch_remote: bool,
    pub jitter: JitterConfig,
    /// Interval between RTCP reports (RFC 3550 §6.2 recommends 5 s minimum).
    pub rtcp_interval: Duration,
    /// SDES CNAME (§6.5.1).
    pub cname: String,
    /// Emit every received 20 ms frame (after jitter buffer and concealment) as
    /// [`MediaEvent::CallerAudio`], e.g. for speech recognition.
    pub emit_caller_audio: bool,
    /// Capacity of the event channel.
    pub event_capacity: usize,
}

impl SessionConfig {
    pub fn new(remote: SocketAddr, payload_type: u8) -> Self {
        Self {
            remote,
            remote_rtcp: None,
            payload_type,
            telephone_event_pt: Some(101),
            latch_remote: false,
            jitter: JitterConfig::default(),
            rtcp_interval: Duration::from_secs(5),
            cname: format!("switchboard-{:08x}@{}", rand::random::<u32>(), remote.ip()),
            emit_caller_audio: false,
            event_capacity: 1024,
        }
    }
}

/// What the session reports.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaEvent {
    /// First RTP packet of a (new) remote SSRC accepted.
    MediaStarted { ssrc: u32, from: SocketAddr },
    /// The remote address was latched to the first packet's source.
    RemoteLatched(SocketAddr),
    /// One key press (RFC 4733), reported once per event.
    Dtmf(DtmfDigit),
    /// All audio queued with [`SessionHandle::play`] has been sent.
    PlaybackFinished,
    /// All digits queued with [`SessionHandle::send_dtmf`] have been sent.
    DtmfSent,
    /// One 20 ms frame of received audio (only with `emit_caller_audio`).
    CallerAudio(Vec<i16>),
    /// Samples of queued agent audio sent in this tick (only with `emit_caller_audio`, only
    /// when some were sent). Comes before the same tick's `CallerAudio`, so a consumer knows
    /// exactly how much of what it queued has gone out on the wire (barge-in accounting).
    AgentPlayed(usize),
    /// The remote sent an RTCP BYE (§6.6).
    RemoteBye,
}

/// Counters of one session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionStats {
    pub local_ssrc: u32,
    pub remote_ssrc: Option<u32>,
    pub packets_sent: u64,
    /// Payload octets sent (as in the SR, §6.4.1).
    pub octets_sent: u64,
    pub send_errors: u64,
    /// Valid RTP packets accepted from the remote.
    pub packets_received: u64,
    /// Datagrams that failed RTP parsing.
    pub parse_errors: u64,
    /// Datagrams from an address other than the remote.
    pub unexpected_source: u64,
    /// Packets with a payload type we do not play (e.g. comfort noise).
    pub unknown_payload: u64,
    pub ssrc_changes: u64,
    pub dtmf_digits: u64,
    pub rtcp_sent: u64,
    pub rtcp_received: u64,
    pub rtcp_errors: u64,
    /// Events dropped because the event channel was full.
    pub events_dropped: u64,
    pub recording_errors: u64,
    /// Jitter buffer counters (received, duplicates, lost, late, reordered, jitter...).
    pub jitter: JitterStats,
}

/// Result of [`SessionHandle::stop`].
#[derive(Debug, Clone)]
pub struct StopReport {
    pub stats: SessionStats,
    /// The finished recording, if a recorder was given and it did not fail.
    pub recording: Option<RecordingInfo>,
    /// Why the recording failed, if it did.
    pub recording_error: Option<String>,
}

/// Errors of the handle.
#[derive(Debug, Error)]
pub enum SessionError {
    #[error("media session has ended")]
    Closed,
    #[error("invalid DTMF digit {0:?}")]
    BadDigit(char),
}

enum Command {
    Play(Vec<i16>),
    ClearPlayback,
    PausePlayback(bool),
    SendDtmf(String, u32),
    SetRemote(SocketAddr),
    SetHold(bool),
    Stats(oneshot::Sender<SessionStats>),
    Stop(oneshot::Sender<StopReport>),
}

/// Control of a running session. Dropping it without [`stop`](Self::stop) also ends the session
/// (and finishes the recording). The playback controls are those of [`SessionControl`]
/// (through `Deref`); this handle adds what only the call's owner does (re-INVITE, hold,
/// stats, stop).
#[derive(Debug)]
pub struct SessionHandle {
    control: SessionControl,
    task: JoinHandle<()>,
    local_ssrc: u32,
}

impl std::ops::Deref for SessionHandle {
    type Target = SessionControl;
    fn deref(&self) -> &SessionControl {
        &self.control
    }
}

impl SessionHandle {
    /// A cheap clonable control for another task (the conversation) to queue, pause and clear
    /// agent audio and send digits.
    pub fn control(&self) -> SessionControl {
        self.control.clone()
    }

    /// Change the remote address (re-INVITE); latching, if enabled, may happen again.
    pub async fn set_remote(&self, addr: SocketAddr) -> Result<(), SessionError> {
        self.control.send(Command::SetRemote(addr)).await
    }

    /// Hold: stop sending RTP (the timeline and recording continue, agent side silent).
    pub async fn set_hold(&self, hold: bool) -> Result<(), SessionError> {
        self.control.send(Command::SetHold(hold)).await
    }

    /// Current counters.
    pub async fn stats(&self) -> Result<SessionStats, SessionError> {
        let (tx, rx) = oneshot::channel();
        self.control.send(Command::Stats(tx)).await?;
        rx.await.map_err(|_| SessionError::Closed)
    }

    /// Our SSRC.
    pub fn local_ssrc(&self) -> u32 {
        self.local_ssrc
    }

    /// Stop the session: send RTCP BYE, finish the recording, return the counters.
    pub async fn stop(self) -> Result<StopReport, SessionError> {
        let (tx, rx) = oneshot::channel();
        self.control.send(Command::Stop(tx)).await?;
        let report = rx.await.map_err(|_| SessionError::Closed)?;
        let _ = self.task.await;
        Ok(report)
    }
}

/// The playback side of a session, clonable: what the conversation holds. It does not keep
/// the session alive once [`SessionHandle::stop`] has run (calls then return `Closed`).
#[derive(Debug, Clone)]
pub struct SessionControl {
    tx: mpsc::Sender<Command>,
}

impl SessionControl {
    async fn send(&self, cmd: Command) -> Result<(), SessionError> {
        self.tx.send(cmd).await.map_err(|_| SessionError::Closed)
    }

    /// Queue agent audio (8 kHz samples). It is sent after what is already queued and also goes
    /// to the recorder's agent channel.
    pub async fn play(&self, samples: Vec<i16>) -> Result<(), SessionError> {
        self.send(Command::Play(samples)).await
    }

    /// Drop queued agent audio (barge-in).
    pub async fn clear_playback(&self) -> Result<(), SessionError> {
        self.send(Command::ClearPlayback).await
    }

    /// Pause (true) or resume (false) the queued agent audio without dropping it: silence goes
    /// out while paused. Barge-in pauses at the caller's speech onset and resumes if the
    /// interruption turns out to be a backchannel.
    pub async fn pause_playback(&self, pause: bool) -> Result<(), SessionError> {
        self.send(Command::PausePlayback(pause)).await
    }

    /// Send digits as RFC 4733 events, each lasting `duration_ms`.
    pub async fn send_dtmf(&self, digits: &str, duration_ms: u32) -> Result<(), SessionError> {
        if let Some(bad) = digits
            .chars()
            .find(|c| crate::dtmf::char_to_event(*c).is_none())
        {
            return Err(SessionError::BadDigit(bad));
        }
        self.send(Command::SendDtmf(digits.to_string(), duration_ms))
            .await
    }
}

/// Entry point; see the module docs.
pub struct RtpSession;

impl RtpSession {
    /// Start the session task. `rtcp_socket` `None` means RTCP is multiplexed on the RTP socket.
    /// Must be called within a tokio runtime.
    pub fn start(
        config: SessionConfig,
        socket: UdpSocket,
        rtcp_socket: Option<UdpSocket>,
        recorder: Option<CallRecorder>,
    ) -> (SessionHandle, mpsc::Receiver<MediaEvent>) {
        let (cmd_tx, cmd_rx) = mpsc::channel(64);
        let (ev_tx, ev_rx) = mpsc::channel(config.event_capacity.max(1));
        // RFC 3550 §5.1: SSRC, initial sequence number and timestamp are random.
        let local_ssrc = rand::random::<u32>();
        let codec = G711::from_payload_type(config.payload_type).unwrap_or(G711::Pcmu);
        let remote_rtcp = config.remote_rtcp;
        let state = State {
            rtp: Arc::new(socket),
            rtcp: rtcp_socket.map(Arc::new),
            remote: config.remote,
            remote_rtcp,
            latched: false,
            codec,
            jb: JitterBuffer::new(config.jitter),
            concealer: Concealer::new(),
            dtmf_rx: DtmfDetector::new(),
            stats: SessionStats {
                local_ssrc,
                ..SessionStats::default()
            },
            events: ev_tx,
            recorder,
            seq: rand::random(),
            ts: rand::random(),
            marker_next: true,
            hold: false,
            play: VecDeque::new(),
            playing: false,
            paused: false,
            dtmf_queue: VecDeque::new(),
            dtmf_active: None,
            dtmf_gap: 0,
            last_sr: None,
            sent_since_report: false,
            out_buf: Vec::with_capacity(256),
            payload_buf: Vec::with_capacity(FRAME_SAMPLES),
            frame_buf: Vec::with_capacity(FRAME_SAMPLES),
            config,
        };
        let task = tokio::spawn(run(state, cmd_rx));
        (
            SessionHandle {
                control: SessionControl { tx: cmd_tx },
                task,
                local_ssrc,
            },
            ev_rx,
        )
    }
}

struct State {
    config: SessionConfig,
    rtp: Arc<UdpSocket>,
    rtcp: Option<Arc<UdpSocket>>,
    remote: SocketAddr,
    remote_rtcp: Option<SocketAddr>,
    latched: bool,
    codec: G711,
    jb: JitterBuffer,
    concealer: Concealer,
    dtmf_rx: DtmfDetector,
    stats: SessionStats,
    events: mpsc::Sender<MediaEvent>,
    recorder: Option<CallRecorder>,
    seq: u16,
    ts: u32,
    marker_next: bool,
    hold: bool,
    play: VecDeque<i16>,
    playing: bool,
    /// Queued agent audio is held (barge-in in progress); silence goes out instead.
    paused: bool,
    dtmf_queue: VecDeque<(char, u32)>,
    /// Event timestamp and the packets still to send for the digit in progress.
    dtmf_active: Option<(u32, VecDeque<EventPacket>)>,
    dtmf_gap: u32,
    /// Middle 32 bits of the last SR's NTP time and when it arrived (for LSR/DLSR).
    last_sr: Option<(u32, Instant)>,
    sent_since_report: bool,
    out_buf: Vec<u8>,
    payload_buf: Vec<u8>,
    frame_buf: Vec<i16>,
}

async fn recv_opt(
    sock: &Option<Arc<UdpSocket>>,
    buf: &mut [u8],
) -> io::Result<(usize, SocketAddr)> {
    match sock {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

async fn run(mut st: State, mut cmd_rx: mpsc::Receiver<Command>) {
    let mut tick = tokio::time::interval(PTIME);
    // Burst: after a stall, catch up so the recorded timeline keeps matching wall-clock time.
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let first_rtcp = tokio::time::Instant::now() + st.config.rtcp_interval;
    let mut rtcp_timer = tokio::time::interval_at(
        first_rtcp,
        st.config.rtcp_interval.max(Duration::from_millis(100)),
    );
    rtcp_timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let rtp_sock = st.rtp.clone();
    let rtcp_sock = st.rtcp.clone();
    let mut buf = vec![0u8; 2048];
    let mut rtcp_buf = vec![0u8; 2048];
    loop {
        tokio::select! {
            cmd = cmd_rx.recv() => match cmd {
                Some(Command::Stop(reply)) => {
                    let report = st.shutdown().await;
                    let _ = reply.send(report);
                    return;
                }
                Some(cmd) => st.on_command(cmd),
                None => {
                    // Handle dropped: end the call cleanly anyway.
                    st.shutdown().await;
                    return;
                }
            },
            r = rtp_sock.recv_from(&mut buf) => match r {
                Ok((n, from)) => st.on_datagram(&buf[..n], from, Instant::now()),
                Err(e) => {
                    // Not fatal (e.g. ICMP errors surfaced on some platforms).
                    debug!(error = %e, "rtp recv error");
                }
            },
            r = recv_opt(&rtcp_sock, &mut rtcp_buf) => match r {
                Ok((n, from)) => st.on_rtcp(&rtcp_buf[..n], from),
                Err(e) => debug!(error = %e, "rtcp recv error"),
            },
            due = tick.tick() => {
                // Behind schedule (the task was not polled for a while): the burst of ticks
                // would play out before the packets already waiting in the socket are read,
                // and count them late. Read those first; on time this costs nothing.
                if due.elapsed() > PTIME / 2 {
                    for _ in 0..64 {
                        match rtp_sock.try_recv_from(&mut buf) {
                            Ok((n, from)) => st.on_datagram(&buf[..n], from, Instant::now()),
                            Err(_) => break,
                        }
                    }
                }
                st.on_tick().await
            }
            _ = rtcp_timer.tick() => st.send_rtcp(false).await,
        }
    }
}

impl State {
    fn emit(&mut self, ev: MediaEvent) {
        if self.events.try_send(ev).is_err() {
            self.stats.events_dropped += 1;
        }
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Play(samples) => {
                if !samples.is_empty() {
                    self.play.extend(samples);
                    self.playing = true;
                }
            }
            Command::ClearPlayback => {
                self.play.clear();
                self.paused = false;
            }
            Command::PausePlayback(p) => self.paused = p,
            Command::SendDtmf(digits, ms) => {
                self.dtmf_queue.extend(digits.chars().map(|c| (c, ms)))
            }
            Command::SetRemote(addr) => {
                self.remote = addr;
                self.latched = false;
            }
            Command::SetHold(hold) => {
                if self.hold && !hold {
                    // First packet after resuming starts a new talkspurt.
                    self.marker_next = true;
                }
                self.hold = hold;
            }
            Command::Stats(reply) => {
                let _ = reply.send(self.snapshot());
            }
            Command::Stop(_) => {}
        }
    }

    fn snapshot(&self) -> SessionStats {
        let mut s = self.stats.clone();
        s.jitter = self.jb.stats();
        s
    }

    fn rtcp_dest(&self) -> SocketAddr {
        match (self.remote_rtcp, &self.rtcp) {
            (Some(a), _) => a,
            (None, Some(_)) => {
                SocketAddr::new(self.remote.ip(), self.remote.port().wrapping_add(1))
            }
            (None, None) => self.remote,
        }
    }

    async fn send_packet(&mut self, pt: u8, marker: bool, timestamp: u32, payload_len_hint: usize) {
        let mut pkt = RtpPacket::new(
            pt,
            self.seq,
            timestamp,
            self.stats.local_ssrc,
            std::mem::take(&mut self.payload_buf),
        );
        pkt.marker = marker;
        self.out_buf.clear();
        pkt.write_to(&mut self.out_buf);
        self.payload_buf = pkt.payload;
        self.seq = self.seq.wrapping_add(1);
        match self.rtp.send_to(&self.out_buf, self.remote).await {
            Ok(_) => {
                self.stats.packets_sent += 1;
                self.stats.octets_sent += payload_len_hint as u64;
                self.sent_since_report = true;
            }
            Err(e) => {
                self.stats.send_errors += 1;
                debug!(error = %e, remote = %self.remote, "rtp send failed");
            }
        }
    }

    /// Outgoing side of one tick; returns the agent frame to record (None = silence).
    async fn send_tick(&mut self) -> Option<Vec<i16>> {
        if self.hold {
            return None;
        }
        // RFC 4733 digit in progress: one event packet per tick, audio paused.
        if let Some(te) = self.config.telephone_event_pt {
            if self.dtmf_active.is_none() && self.dtmf_gap == 0 {
                if let Some((digit, ms)) = self.dtmf_queue.pop_front() {
                    let duration = (ms.max(40) * 8).min(u32::from(u16::MAX)) as u16;
                    if let Ok(packets) = encode_digit(digit, duration, FRAME_SAMPLES as u16, 10) {
                        self.dtmf_active = Some((self.ts, packets.into()));
                    }
                }
            }
            if let Some((event_ts, packets)) = &mut self.dtmf_active {
                let event_ts = *event_ts;
                if let Some(p) = packets.pop_front() {
                    let done = packets.is_empty();
                    self.payload_buf.clear();
                    self.payload_buf.extend_from_slice(&p.payload);
                    self.send_packet(te, p.marker, event_ts, 4).await;
                    if done {
                        self.dtmf_active = None;
                        // A short pause between digits (3 ticks) like a human dialler.
                        self.dtmf_gap = 3;
                        if self.dtmf_queue.is_empty() {
                            self.emit(MediaEvent::DtmfSent);
                        }
                    }
                    return None;
                }
            }
        } else if !self.dtmf_queue.is_empty() {
            warn!("no telephone-event payload type negotiated; dropping queued DTMF");
            self.dtmf_queue.clear();
        }
        self.dtmf_gap = self.dtmf_gap.saturating_sub(1);

        // Audio: queued agent audio, else silence (a continuous stream keeps NAT bindings and
        // the far end's RTP timeout happy).
        self.frame_buf.clear();
        let n = if self.paused {
            0
        } else {
            self.play.len().min(FRAME_SAMPLES)
        };
        self.frame_buf.extend(self.play.drain(..n));
        let had_audio = n > 0;
        self.frame_buf.resize(FRAME_SAMPLES, 0);
        if self.playing && self.play.is_empty() {
            self.playing = false;
            self.emit(MediaEvent::PlaybackFinished);
        }
        if n > 0 && self.config.emit_caller_audio {
            self.emit(MediaEvent::AgentPlayed(n));
        }
        self.payload_buf.clear();
        self.codec
            .encode_into(&self.frame_buf, &mut self.payload_buf);
        let marker = std::mem::take(&mut self.marker_next);
        let (pt, ts) = (self.codec.payload_type(), self.ts);
        self.send_packet(pt, marker, ts, FRAME_SAMPLES).await;
        had_audio.then(|| self.frame_buf.clone())
    }

    async fn on_tick(&mut self) {
        let agent = self.send_tick().await;
        // RFC 3550 §5.1: the timestamp advances with the sampling clock, also while silent/held.
        self.ts = self.ts.wrapping_add(FRAME_SAMPLES as u32);

        let caller: Option<Vec<i16>> = match self.jb.pop() {
            Playout::NotReady => None,
            Playout::Audio(p) => match G711::from_payload_type(p.payload_type) {
                Some(codec) => {
                    let frame = codec.decode(&p.payload);
                    self.concealer.good(&frame);
                    Some(frame)
                }
                None => None,
            },
            Playout::Concealed => Some(self.concealer.conceal(FRAME_SAMPLES)),
        };
        if self.config.emit_caller_audio {
            let frame = caller.clone().unwrap_or_else(|| vec![0; FRAME_SAMPLES]);
            self.emit(MediaEvent::CallerAudio(frame));
        }
        if let Some(rec) = &mut self.recorder {
            if let Err(e) = rec.push_frame(caller.as_deref(), agent.as_deref()) {
                // Keep the call going. The recorder keeps what it wrote and records no more
                // (returned once); stop() reports the recording as incomplete.
                warn!(error = %e, "recording failed; the rest of the call is not recorded");
                self.stats.recording_errors += 1;
            }
        }
    }

    fn on_datagram(&mut self, data: &[u8], from: SocketAddr, now: Instant) {
        if looks_like_rtcp(data) {
            // RFC 5761 demultiplexing (rtcp-mux or a peer sending RTCP to the RTP port).
            self.on_rtcp(data, from);
            return;
        }
        if from != self.remote {
            if self.config.latch_remote && !self.latched {
                debug!(old = %self.remote, new = %from, "latching remote RTP address");
                self.remote = from;
                self.latched = true;
                self.emit(MediaEvent::RemoteLatched(from));
            } else {
                self.stats.unexpected_source += 1;
                debug!(%from, expected = %self.remote, "dropping RTP from unexpected source");
                return;
            }
        }
        self.latched = true;
        let pkt = match RtpPacket::parse(data) {
            Ok(p) => p,
            Err(e) => {
                self.stats.parse_errors += 1;
                debug!(%from, error = %e, "dropping malformed RTP");
                return;
            }
        };
        if self.stats.remote_ssrc != Some(pkt.ssrc) {
            if self.stats.remote_ssrc.is_some() {
                // A new stream (e.g. after a transfer): start fresh, keep the counters.
                self.stats.ssrc_changes += 1;
                self.jb.reset();
                self.dtmf_rx = DtmfDetector::new();
            }
            self.stats.remote_ssrc = Some(pkt.ssrc);
            self.emit(MediaEvent::MediaStarted {
                ssrc: pkt.ssrc,
                from,
            });
        }
        self.stats.packets_received += 1;
        if Some(pkt.payload_type) == self.config.telephone_event_pt {
            if self.jb.note(pkt.sequence, pkt.timestamp) == PushOutcome::Duplicate {
                return;
            }
            match self.dtmf_rx.on_packet(pkt.timestamp, &pkt.payload) {
                Ok(digits) => {
                    for d in digits {
                        self.stats.dtmf_digits += 1;
                        self.emit(MediaEvent::Dtmf(d));
                    }
                }
                Err(e) => {
                    self.stats.parse_errors += 1;
                    debug!(error = %e, "bad telephone-event payload");
                }
            }
        } else if G711::from_payload_type(pkt.payload_type).is_some() {
            let jp = JitterPacket {
                sequence: pkt.sequence,
                timestamp: pkt.timestamp,
                payload_type: pkt.payload_type,
                marker: pkt.marker,
                payload: pkt.payload,
            };
            self.jb.push(jp, now);
        } else {
            self.stats.unknown_payload += 1;
            self.jb.note(pkt.sequence, pkt.timestamp);
        }
    }

    fn on_rtcp(&mut self, data: &[u8], from: SocketAddr) {
        if from.ip() != self.remote.ip() {
            self.stats.unexpected_source += 1;
            return;
        }
        match rtcp::parse_compound(data) {
            Ok(packets) => {
                self.stats.rtcp_received += 1;
                for p in packets {
                    match p {
                        RtcpPacket::SenderReport { info, .. } => {
                            self.last_sr = Some((rtcp::ntp_middle(info.ntp), Instant::now()));
                        }
                        RtcpPacket::Bye { .. } => self.emit(MediaEvent::RemoteBye),
                        _ => {}
                    }
                }
            }
            Err(e) => {
                self.stats.rtcp_errors += 1;
                debug!(%from, error = %e, "dropping malformed RTCP");
            }
        }
    }

    async fn send_rtcp(&mut self, bye: bool) {
        let mut blocks = Vec::new();
        if let (Some(ssrc), Some(rr)) = (self.stats.remote_ssrc, self.jb.reception_report()) {
            let (last_sr, dlsr) = match self.last_sr {
                // DLSR in units of 1/65536 s (§6.4.1).
                Some((lsr, at)) => (lsr, (at.elapsed().as_secs_f64() * 65536.0) as u32),
                None => (0, 0),
            };
            blocks.push(ReportBlock {
                ssrc,
                fraction_lost: rr.fraction_lost,
                cumulative_lost: rr.cumulative_lost,
                highest_seq: rr.highest_seq,
                jitter: rr.jitter,
                last_sr,
                delay_since_last_sr: dlsr,
            });
        }
        // §6.4: SR if we sent RTP since the last report, else RR.
        let info = SenderInfo {
            ntp: rtcp::ntp_now(),
            rtp_timestamp: self.ts,
            packet_count: self.stats.packets_sent as u32,
            octet_count: self.stats.octets_sent as u32,
        };
        let sender = self.sent_since_report.then_some(&info);
        let bytes = rtcp::build_compound(
            self.stats.local_ssrc,
            sender,
            &blocks,
            &self.config.cname,
            bye,
        );
        self.sent_since_report = false;
        let dest = self.rtcp_dest();
        let sock = self.rtcp.as_ref().unwrap_or(&self.rtp);
        match sock.send_to(&bytes, dest).await {
            Ok(_) => self.stats.rtcp_sent += 1,
            Err(e) => debug!(error = %e, %dest, "rtcp send failed"),
        }
    }

    async fn shutdown(&mut self) -> StopReport {
        self.send_rtcp(true).await;
        if let Some(d) = self.dtmf_rx.flush() {
            self.stats.dtmf_digits += 1;
            self.emit(MediaEvent::Dtmf(d));
        }
        let mut recording = None;
        // A write error during the call is not an error here: the recording keeps what was
        // written and says why it is incomplete (`RecordingInfo::incomplete`).
        let mut recording_error = None;
        if let Some(rec) = self.recorder.take() {
            // Final flush + fsync: keep it off the async workers.
            match tokio::task::spawn_blocking(move || rec.finish()).await {
                Ok(Ok(info)) => recording = Some(info),
                Ok(Err(e)) => recording_error = Some(e.to_string()),
                Err(e) => recording_error = Some(e.to_string()),
            }
        }
        StopReport {
            stats: self.snapshot(),
            recording,
            recording_error,
        }
    }
}
