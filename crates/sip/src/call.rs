//! Calls: the UAC side of INVITE (§13.2), the UAS side (§13.3), dialogs (§12),
//! CANCEL (§9), BYE (§15), re-INVITE (§14), INFO DTMF and REFER (RFC 3515).
//!
//! Each call is one task that owns its dialog state; the endpoint routes
//! in-dialog requests to it through a channel, so no dialog state is shared.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};
use tracing::{debug, info, warn};

use crate::digest::Challenge;
use crate::endpoint::{
    lock, new_request, random_token, refresh_branch, Flow, Inner, SipEndpoint, SipError, Target,
    Transport, TxEvent, UasShared, ALLOW,
};
use crate::message::{HeaderAccess, Headers, Method, Request, Response};
use crate::sdp;
use crate::uri::{NameAddr, Uri};

/// What the engine hears about a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallEvent {
    /// 100 Trying received.
    Trying,
    /// 180/181/182 (or 183 without SDP).
    Ringing,
    /// 183 Session Progress with SDP: early media from the far end.
    EarlyMedia { remote_sdp: String },
    /// 2xx received and ACKed.
    Answered { remote_sdp: String },
    /// The INVITE ended without a call. `code` is the final status (408 for no
    /// response at all, 503 for transport failure, 487 after our CANCEL);
    /// `timed_out` is true when our ring timeout caused it.
    Failed {
        code: u16,
        reason: String,
        timed_out: bool,
    },
    /// The far end sent BYE (answered 200).
    RemoteHangup,
    /// DTMF via SIP INFO (application/dtmf-relay or application/dtmf).
    Dtmf(char),
    /// A re-INVITE was answered with our SDP (direction mirrored, RFC 3264 §6.1).
    ReInvite { remote_sdp: String, on_hold: bool },
    /// REFER answered 202 and the NOTIFY reported 2xx (RFC 3515).
    TransferAccepted,
    /// REFER refused, or NOTIFY reported a failure.
    TransferFailed { code: u16 },
    /// Last event of every call.
    Terminated,
}

#[derive(Debug)]
enum Command {
    Hangup,
    Refer(String),
    SetLocalSdp(String),
}

/// Control half of a call, cloneable.
#[derive(Debug, Clone)]
pub struct CallControl {
    cmd: mpsc::UnboundedSender<Command>,
}

impl CallControl {
    /// CANCEL while ringing, BYE once answered. Idempotent.
    pub fn hangup(&self) {
        let _ = self.cmd.send(Command::Hangup);
    }
    /// Blind transfer: REFER with `Refer-To: <target_uri>`.
    pub fn refer(&self, target_uri: &str) {
        let _ = self.cmd.send(Command::Refer(target_uri.to_string()));
    }
    /// Replace the SDP used to answer later re-INVITEs.
    pub fn set_local_sdp(&self, sdp: String) {
        let _ = self.cmd.send(Command::SetLocalSdp(sdp));
    }
}

/// A call in progress (outbound, or inbound after `accept`). Dropping the handle
/// hangs the call up.
#[derive(Debug)]
pub struct CallHandle {
    call_id: String,
    pub events: mpsc::UnboundedReceiver<CallEvent>,
    control: CallControl,
}

impl CallHandle {
    pub fn call_id(&self) -> &str {
        &self.call_id
    }
    pub async fn next_event(&mut self) -> Option<CallEvent> {
        self.events.recv().await
    }
    pub fn hangup(&self) {
        self.control.hangup();
    }
    pub fn refer(&self, target_uri: &str) {
        self.control.refer(target_uri);
    }
    pub fn control(&self) -> CallControl {
        self.control.clone()
    }
    pub fn split(self) -> (CallControl, mpsc::UnboundedReceiver<CallEvent>) {
        (self.control, self.events)
    }
}

/// Parameters of an outbound call.
#[derive(Debug, Clone)]
pub struct OutboundInvite {
    pub target: Target,
    /// Callee (E.164 or any user part), placed in the Request-URI and To.
    pub to_user: String,
    /// Caller id, placed in From.
    pub from_user: String,
    /// (username, password) for digest challenges.
    pub credentials: Option<(String, String)>,
    pub sdp_offer: String,
    /// How long to let it ring before CANCEL.
    pub ring_timeout: Duration,
    /// Extra headers for the INVITE (e.g. P-Asserted-Identity).
    pub extra_headers: Vec<(String, String)>,
}

/// A request routed by the endpoint to the call task owning its dialog.
#[derive(Debug)]
pub(crate) struct InDialog {
    pub(crate) req: Request,
    /// Server transaction key ("" for ACK, which has none).
    pub(crate) tx_key: String,
    pub(crate) flow: Flow,
}

/// Dialog state (§12).
struct Dialog {
    call_id: String,
    local_tag: String,
    local: NameAddr,
    remote: NameAddr,
    remote_target: Uri,
    /// Route set as Route header values, in the order to send (§12.1.1, §12.1.2).
    route_set: Vec<String>,
    local_cseq: u32,
    remote_cseq: Option<u32>,
    /// Transport and next hop for in-dialog requests.
    flow: Flow,
    contact_user: Option<String>,
}

impl Dialog {
    /// §12.2.1.1: Request-URI = remote target, Route = route set, From/To with tags.
    fn request(&mut self, inner: &Inner, method: Method) -> Request {
        if method != Method::Ack {
            self.local_cseq += 1;
        }
        let mut r = new_request(
            inner,
            method,
            self.remote_target.clone(),
            &self.local,
            &self.remote,
            &self.call_id,
            self.local_cseq,
            self.flow.transport,
        );
        for route in &self.route_set {
            r.headers.push("Route", route.clone());
        }
        r
    }
}

fn user_of(na: Option<NameAddr>) -> String {
    na.and_then(|n| n.uri.user).unwrap_or_default()
}

/// Checks on an out-of-dialog INVITE before the engine sees it.
pub(crate) fn validate_incoming(req: &Request) -> Result<(), (u16, &'static str)> {
    // §8.2.3 / §21.4.7: our 2xx carries SDP; a caller whose Accept excludes it
    // could not take our answer (RFC 4475 §3.3.15).
    let accept = req.headers.get_all("Accept");
    if !accept.is_empty()
        && !accept.iter().any(|a| {
            let t = a
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            matches!(t.as_str(), "application/sdp" | "application/*" | "*/*")
        })
    {
        return Err((406, "Not Acceptable"));
    }
    if req.body.is_empty() {
        // Offerless INVITE (offer in our 200, §13.2.1) is not supported by the
        // engine's API, which always answers an offer.
        return Err((488, "Not Acceptable Here"));
    }
    if req.content_type().as_deref() != Some("application/sdp") {
        return Err((415, "Unsupported Media Type"));
    }
    if sdp::parse(&req.body).is_err() {
        return Err((400, "Bad Request - malformed SDP"));
    }
    Ok(())
}

/// An INVITE waiting for the engine's decision. Dropping it without a decision
/// answers 480 Temporarily Unavailable so the transaction never hangs.
pub struct IncomingCall {
    inner: Arc<Inner>,
    tx_key: String,
    req: Request,
    flow: Flow,
    shared: Arc<UasShared>,
    done: bool,
    pub call_id: String,
    pub request_uri_user: String,
    pub from_user: String,
    pub from_display: Option<String>,
    pub to_user: String,
    pub source: SocketAddr,
    pub transport: Transport,
    pub remote_sdp: String,
}

impl std::fmt::Debug for IncomingCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IncomingCall")
            .field("call_id", &self.call_id)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl IncomingCall {
    pub(crate) fn new(
        inner: Arc<Inner>,
        tx_key: String,
        req: Request,
        flow: Flow,
        shared: Arc<UasShared>,
    ) -> Self {
        let from = req.header_from();
        IncomingCall {
            call_id: req.call_id().to_string(),
            request_uri_user: req.uri.user.clone().unwrap_or_default(),
            from_display: from.as_ref().and_then(|f| f.display.clone()),
            from_user: user_of(from),
            to_user: user_of(req.header_to()),
            source: flow.remote,
            transport: flow.transport,
            remote_sdp: String::from_utf8_lossy(&req.body).into_owned(),
            inner,
            tx_key,
            req,
            flow,
            shared,
            done: false,
        }
    }

    /// Any header of the INVITE (first value).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.req.headers.get(name)
    }

    pub fn is_cancelled(&self) -> bool {
        self.shared.cancelled.load(Ordering::SeqCst)
    }

    /// Resolves when the caller CANCELs (487 has then been sent).
    pub async fn cancelled(&self) {
        loop {
            // Register interest before checking the flag, so a CANCEL landing in
            // between cannot be missed (notify_waiters only wakes registered waiters).
            let notified = self.shared.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }

    fn response(&self, status: u16, reason: &str) -> Response {
        let mut r = self
            .inner
            .make_response(&self.req, status, reason, Some(&self.shared.to_tag));
        if status > 100 && status < 300 {
            // §12.1.1: dialog-creating responses carry Contact (and Record-Route).
            for rr in self.req.headers.get_all("Record-Route") {
                r.headers.push("Record-Route", rr);
            }
            let contact = self
                .inner
                .contact(Some(&self.request_uri_user), self.flow.transport);
            r.headers.push("Contact", contact.to_string());
        }
        r
    }

    /// Send 180 Ringing.
    pub fn ringing(&self) {
        let r = self.response(180, "Ringing");
        self.inner.send_response(&self.tx_key, r);
    }

    /// Refuse the call with a final status (e.g. 486, 488, 603).
    pub fn reject(mut self, code: u16, reason: &str) {
        self.done = true;
        let code = if (300..700).contains(&code) {
            code
        } else {
            500
        };
        let r = self.response(code, reason);
        self.inner.send_response(&self.tx_key, r);
    }

    /// Answer 200 OK with our SDP and get the call handle (§13.3.1.4).
    pub fn accept(mut self, sdp_answer: String) -> Result<CallHandle, SipError> {
        let local_sdp = sdp::parse(sdp_answer.as_bytes())?;
        self.done = true;
        let mut resp = self.response(200, "OK");
        resp.headers.push("Allow", ALLOW);
        resp.headers.push("Content-Type", "application/sdp");
        resp.body = sdp_answer.into_bytes();
        let resp_bytes = resp.to_bytes();

        // §12.1.1: UAS dialog: route set = Record-Route in order, remote target =
        // Contact, remote seq = the INVITE's CSeq.
        let remote_target = self.req.contact().map(|c| c.uri).unwrap_or_else(|| {
            Uri::sip(
                None,
                &self.flow.remote.ip().to_string(),
                Some(self.flow.remote.port()),
            )
        });
        let route_set: Vec<String> = self
            .req
            .headers
            .get_all("Record-Route")
            .iter()
            .map(|s| s.to_string())
            .collect();
        let from = self
            .req
            .header_from()
            .ok_or(SipError::Invalid("From".into()))?;
        let to = self
            .req
            .header_to()
            .ok_or(SipError::Invalid("To".into()))?
            .with_tag(&self.shared.to_tag);
        let invite_cseq = self.req.cseq().map(|c| c.seq).unwrap_or(0);
        let dialog = Dialog {
            call_id: self.call_id.clone(),
            local_tag: self.shared.to_tag.clone(),
            local: to,
            remote: from,
            remote_target,
            route_set,
            local_cseq: rand::random::<u16>() as u32,
            remote_cseq: Some(invite_cseq),
            flow: self.flow,
            contact_user: Some(self.request_uri_user.clone()),
        };
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (dlg_tx, dlg_rx) = mpsc::unbounded_channel();
        lock(&self.inner.dialogs).insert((self.call_id.clone(), dialog.local_tag.clone()), dlg_tx);
        if !self.inner.send_response(&self.tx_key, resp) {
            lock(&self.inner.dialogs).remove(&(self.call_id.clone(), dialog.local_tag.clone()));
            return Err(if self.is_cancelled() {
                SipError::Cancelled
            } else {
                SipError::AlreadyAnswered
            });
        }
        info!(call_id = %self.call_id, "incoming call answered");
        let inner = self.inner.clone();
        let mut state = DialogTask {
            inner,
            dialog,
            events: events_tx,
            local_sdp: Some(local_sdp),
            pending_2xx: Some(Pending2xx {
                cseq: invite_cseq,
                bytes: resp_bytes,
                flow: self.flow,
                interval: self.inner.cfg.timers.t1,
                next: Instant::now() + self.inner.cfg.timers.t1,
                give_up: Instant::now() + self.inner.cfg.timers.t1 * 64,
            }),
            ack_bytes: None,
            invite_tx: None,
        };
        tokio::spawn(async move { state.run(cmd_rx, dlg_rx).await });
        Ok(CallHandle {
            call_id: self.call_id.clone(),
            events: events_rx,
            control: CallControl { cmd: cmd_tx },
        })
    }
}

impl Drop for IncomingCall {
    fn drop(&mut self) {
        if !self.done {
            let r = self.response(480, "Temporarily Unavailable");
            self.inner.send_response(&self.tx_key, r);
        }
    }
}

impl SipEndpoint {
    /// Place a call. Returns at once; progress arrives as [`CallEvent`]s.
    /// Fails fast (nothing sent) when an argument would produce an invalid or
    /// injectable message: user parts, host, extra header names/values, SDP.
    pub fn invite(&self, inv: OutboundInvite) -> Result<CallHandle, SipError> {
        validate_outbound(&inv)?;
        let call_id = format!("{}@{}", random_token(), self.inner.public_ip_host());
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let inner = self.inner.clone();
        let cid = call_id.clone();
        tokio::spawn(async move {
            run_uac(inner, inv, cid, events_tx.clone(), cmd_rx).await;
            let _ = events_tx.send(CallEvent::Terminated);
        });
        Ok(CallHandle {
            call_id,
            events: events_rx,
            control: CallControl { cmd: cmd_tx },
        })
    }
}

fn validate_outbound(inv: &OutboundInvite) -> Result<(), SipError> {
    let bad = |what: &str| Err(SipError::Invalid(what.to_string()));
    for (what, user) in [("to_user", &inv.to_user), ("from_user", &inv.from_user)] {
        // Reuse the URI grammar so nothing reaches the wire that we would reject.
        if Uri::parse(&format!("sip:{user}@h")).map(|u| u.user) != Ok(Some(user.clone())) {
            return bad(what);
        }
    }
    if crate::uri::parse_hostport(&inv.target.host).is_err() {
        return bad("target host");
    }
    for (n, v) in &inv.extra_headers {
        // Header injection guard: token name, no CR/LF or other controls in value.
        if n.is_empty()
            || !n.bytes().all(crate::message::is_token_char)
            || v.bytes().any(|b| b.is_ascii_control() && b != b'\t')
        {
            return bad("extra header");
        }
    }
    sdp::parse(inv.sdp_offer.as_bytes())?;
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CancelReason {
    TimedOut,
    Hangup,
}

fn reason_of(r: &Response) -> String {
    r.reason.clone()
}

/// Build the CANCEL for an INVITE (§9.1): same Request-URI, Call-ID, From, To,
/// CSeq number, Route and the same single top Via (so it matches the same branch).
fn build_cancel(invite: &Request) -> Request {
    let mut h = Headers::new();
    if let Some(v) = invite.headers.get_all("Via").first() {
        h.push("Via", *v);
    }
    h.push("Max-Forwards", "70");
    h.push("From", invite.headers.get("From").unwrap_or_default());
    h.push("To", invite.headers.get("To").unwrap_or_default());
    h.push("Call-ID", invite.call_id());
    let seq = invite.cseq().map(|c| c.seq).unwrap_or(1);
    h.push("CSeq", format!("{seq} CANCEL"));
    for r in invite.headers.get_all("Route") {
        h.push("Route", r);
    }
    Request {
        method: Method::Cancel,
        uri: invite.uri.clone(),
        headers: h,
        body: Vec::new(),
    }
}

async fn run_uac(
    inner: Arc<Inner>,
    inv: OutboundInvite,
    call_id: String,
    events: mpsc::UnboundedSender<CallEvent>,
    mut cmd_rx: mpsc::UnboundedReceiver<Command>,
) {
    let fail = |code: u16, reason: &str, timed_out: bool| {
        let _ = events.send(CallEvent::Failed {
            code,
            reason: reason.to_string(),
            timed_out,
        });
    };
    let t = inv.target.transport;
    let flow = match inner.resolve(&inv.target.host, inv.target.port, t).await {
        Ok(f) => f,
        Err(e) => {
            warn!(%call_id, error = %e, "cannot resolve trunk");
            return fail(503, "Service Unavailable", false);
        }
    };
    let mut ruri = Uri::sip(Some(&inv.to_user), &inv.target.host, Some(inv.target.port));
    if t == Transport::Tcp {
        ruri.params.push(("transport".into(), Some("tcp".into())));
    }
    let local_tag = random_token();
    let from = NameAddr::new(Uri::sip(
        Some(&inv.from_user),
        &inner.public_ip_host(),
        None,
    ))
    .with_tag(&local_tag);
    let to = NameAddr::new(Uri::sip(
        Some(&inv.to_user),
        &inv.target.host,
        Some(inv.target.port),
    ));
    let mut cseq = 1;
    let mut invite = new_request(&inner, Method::Invite, ruri, &from, &to, &call_id, cseq, t);
    invite.headers.push(
        "Contact",
        inner.contact(Some(&inv.from_user), t).to_string(),
    );
    invite.headers.push("Allow", ALLOW);
    for (n, v) in &inv.extra_headers {
        invite.headers.push(n.clone(), v.clone());
    }
    invite.headers.push("Content-Type", "application/sdp");
    invite.body = inv.sdp_offer.clone().into_bytes();

    // Register the dialog id before sending so a fast BYE after 200 is routed here.
    let (dlg_tx, mut dlg_rx) = mpsc::unbounded_channel();
    let dkey = (call_id.clone(), local_tag.clone());
    lock(&inner.dialogs).insert(dkey.clone(), dlg_tx);
    let _guard = DialogGuard {
        inner: inner.clone(),
        key: dkey,
    };

    info!(%call_id, transport = t.as_str(), "placing outbound call");
    let mut tx = inner.client_tx(invite.clone(), flow).await;
    let ring_deadline = Instant::now() + inv.ring_timeout;
    let mut cancel: Option<CancelReason> = None;
    let mut cancel_deadline: Option<Instant> = None;
    let mut provisional = false;
    let mut auth_tried = false;
    let mut auth_header: Option<(String, String)> = None;
    let t1 = inner.cfg.timers.t1;

    let send_cancel = |invite: &Request, deadline: &mut Option<Instant>| {
        let c = build_cancel(invite);
        let inner = inner.clone();
        *deadline = Some(Instant::now() + t1 * 64);
        tokio::spawn(async move {
            let mut rx = inner.client_tx(c, flow).await;
            while rx.recv().await.is_some() {}
        });
    };

    let ok = loop {
        tokio::select! {
            ev = tx.recv() => match ev {
                None | Some(TxEvent::Timeout) => {
                    return fail(408, "Request Timeout", cancel == Some(CancelReason::TimedOut));
                }
                Some(TxEvent::TransportError) => return fail(503, "Service Unavailable", false),
                Some(TxEvent::Response(r)) if r.status == 100 => {
                    provisional = true;
                    let _ = events.send(CallEvent::Trying);
                    if cancel.is_some() && cancel_deadline.is_none() {
                        send_cancel(&invite, &mut cancel_deadline);
                    }
                }
                Some(TxEvent::Response(r)) if r.is_provisional() => {
                    provisional = true;
                    let ev = if r.status == 183 && !r.body.is_empty() {
                        CallEvent::EarlyMedia { remote_sdp: String::from_utf8_lossy(&r.body).into_owned() }
                    } else {
                        CallEvent::Ringing
                    };
                    let _ = events.send(ev);
                    // §9.1: CANCEL only after a provisional response.
                    if cancel.is_some() && cancel_deadline.is_none() {
                        send_cancel(&invite, &mut cancel_deadline);
                    }
                }
                Some(TxEvent::Response(r)) if r.is_success() => break r,
                Some(TxEvent::Response(r)) if (r.status == 401 || r.status == 407)
                    && !auth_tried && cancel.is_none() && inv.credentials.is_some() =>
                {
                    // §22.2: retry once with credentials, new CSeq and branch.
                    auth_tried = true;
                    let (hdr_in, hdr_out) = if r.status == 401 {
                        ("WWW-Authenticate", "Authorization")
                    } else {
                        ("Proxy-Authenticate", "Proxy-Authorization")
                    };
                    let Some(ch) = r.headers.get(hdr_in).and_then(Challenge::parse) else {
                        return fail(r.status, &reason_of(&r), false);
                    };
                    let (user, pass) = inv.credentials.clone().unwrap_or_default();
                    let value = ch.respond("INVITE", &invite.uri.to_string(), &user, &pass, &random_token(), 1);
                    cseq += 1;
                    refresh_branch(&inner, &mut invite, t);
                    invite.headers.set("CSeq", format!("{cseq} INVITE"));
                    invite.headers.push(hdr_out, value.clone());
                    auth_header = Some((hdr_out.to_string(), value));
                    provisional = false;
                    tx = inner.client_tx(invite.clone(), flow).await;
                }
                Some(TxEvent::Response(r)) => {
                    info!(%call_id, status = r.status, "outbound call failed");
                    return fail(r.status, &reason_of(&r), cancel == Some(CancelReason::TimedOut));
                }
            },
            _ = sleep_until(ring_deadline), if cancel.is_none() => {
                info!(%call_id, "ring timeout, cancelling");
                cancel = Some(CancelReason::TimedOut);
                if provisional {
                    send_cancel(&invite, &mut cancel_deadline);
                }
            }
            c = cmd_rx.recv(), if cancel.is_none() => match c {
                Some(Command::Hangup) | None => {
                    cancel = Some(CancelReason::Hangup);
                    if provisional {
                        send_cancel(&invite, &mut cancel_deadline);
                    }
                }
                Some(_) => {}
            },
            _ = sleep_until(cancel_deadline.unwrap_or_else(Instant::now)), if cancel_deadline.is_some() => {
                // §9.1: no final response 64*T1 after CANCEL — give up on the INVITE.
                return fail(487, "Request Terminated", cancel == Some(CancelReason::TimedOut));
            }
            Some(d) = dlg_rx.recv() => {
                // Early-dialog requests are not supported; refuse cleanly.
                if d.req.method != Method::Ack {
                    let r = inner.make_response(&d.req, 481, "Call/Transaction Does Not Exist", None);
                    inner.send_response(&d.tx_key, r);
                }
            }
        }
    };

    // 2xx: build the dialog (§12.1.2): route set = Record-Route reversed, remote
    // target = Contact, remote tag = To tag.
    let remote = ok.header_to().unwrap_or_else(|| to.clone());
    let remote_target = ok
        .contact()
        .map(|c| c.uri)
        .unwrap_or_else(|| invite.uri.clone());
    let mut route_set: Vec<String> = ok
        .headers
        .get_all("Record-Route")
        .iter()
        .map(|s| s.to_string())
        .collect();
    route_set.reverse();
    let next_hop = match route_set.first().and_then(|r| NameAddr::parse(r).ok()) {
        Some(r) => r.uri,
        None => remote_target.clone(),
    };
    let dflow = match inner
        .resolve(&next_hop.host, next_hop.port.unwrap_or(5060), t)
        .await
    {
        Ok(f) if t == Transport::Udp => f,
        // On TCP keep using the connection we have (RFC 5923-style reuse).
        _ => flow,
    };
    let mut dialog = Dialog {
        call_id: call_id.clone(),
        local_tag: local_tag.clone(),
        local: from,
        remote,
        remote_target,
        route_set,
        local_cseq: cseq,
        remote_cseq: None,
        flow: dflow,
        contact_user: Some(inv.from_user.clone()),
    };
    // §13.2.2.4: ACK the 2xx in a new transaction-less request, same CSeq number.
    let mut ack = dialog.request(&inner, Method::Ack);
    ack.headers.set("CSeq", format!("{cseq} ACK"));
    if let Some((n, v)) = &auth_header {
        ack.headers.push(n.clone(), v.clone());
    }
    let ack_bytes = ack.to_bytes();
    let _ = inner.ensure_flow(dflow).await;
    let _ = inner.send_now(dflow, ack_bytes.clone());

    if let Some(reason) = cancel {
        // The 2xx crossed our CANCEL (§9.1): confirm and tear down with BYE.
        let bye = dialog.request(&inner, Method::Bye);
        let mut rx = inner.client_tx(bye, dflow).await;
        while let Some(ev) = rx.recv().await {
            if matches!(ev, TxEvent::Response(ref r) if r.status >= 200) {
                break;
            }
        }
        return fail(487, "Request Terminated", reason == CancelReason::TimedOut);
    }

    info!(%call_id, "outbound call answered");
    let _ = events.send(CallEvent::Answered {
        remote_sdp: String::from_utf8_lossy(&ok.body).into_owned(),
    });
    let local_sdp = sdp::parse(inv.sdp_offer.as_bytes()).ok();
    let mut task = DialogTask {
        inner: inner.clone(),
        dialog,
        events: events.clone(),
        local_sdp,
        pending_2xx: None,
        ack_bytes: Some(ack_bytes),
        invite_tx: Some(tx),
    };
    task.run_inner(&mut cmd_rx, &mut dlg_rx).await;
}

/// Removes the dialog routing entry when the call task ends.
struct DialogGuard {
    inner: Arc<Inner>,
    key: (String, String),
}

impl Drop for DialogGuard {
    fn drop(&mut self) {
        lock(&self.inner.dialogs).remove(&self.key);
    }
}

/// A 2xx we (UAS) retransmit until its ACK arrives (§13.3.1.4).
struct Pending2xx {
    cseq: u32,
    bytes: Vec<u8>,
    flow: Flow,
    interval: Duration,
    next: Instant,
    give_up: Instant,
}

/// The confirmed-dialog phase shared by both call directions.
struct DialogTask {
    inner: Arc<Inner>,
    dialog: Dialog,
    events: mpsc::UnboundedSender<CallEvent>,
    local_sdp: Option<sdp::SessionDescription>,
    pending_2xx: Option<Pending2xx>,
    /// UAC: our ACK, re-sent for every retransmitted 2xx (§13.2.2.4).
    ack_bytes: Option<Vec<u8>>,
    invite_tx: Option<mpsc::UnboundedReceiver<TxEvent>>,
}

enum Outcome {
    Continue,
    End,
}

async fn recv_opt(rx: &mut Option<mpsc::UnboundedReceiver<TxEvent>>) -> Option<TxEvent> {
    match rx {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}

impl DialogTask {
    async fn run(
        &mut self,
        mut cmd_rx: mpsc::UnboundedReceiver<Command>,
        mut dlg_rx: mpsc::UnboundedReceiver<InDialog>,
    ) {
        let _guard = DialogGuard {
            inner: self.inner.clone(),
            key: (self.dialog.call_id.clone(), self.dialog.local_tag.clone()),
        };
        self.run_inner(&mut cmd_rx, &mut dlg_rx).await;
        let _ = self.events.send(CallEvent::Terminated);
    }

    async fn run_inner(
        &mut self,
        cmd_rx: &mut mpsc::UnboundedReceiver<Command>,
        dlg_rx: &mut mpsc::UnboundedReceiver<InDialog>,
    ) {
        let mut bye_tx: Option<mpsc::UnboundedReceiver<TxEvent>> = None;
        let mut refer_tx: Option<mpsc::UnboundedReceiver<TxEvent>> = None;
        let mut cmds_open = true;
        let mut deferred_refer: Option<String> = None;
        loop {
            let next_2xx = self.pending_2xx.as_ref().map(|p| p.next.min(p.give_up));
            tokio::select! {
                c = cmd_rx.recv(), if cmds_open && bye_tx.is_none() => match c {
                    Some(Command::Hangup) | None => {
                        if c.is_none() { cmds_open = false; }
                        debug!(call_id = %self.dialog.call_id, "sending BYE");
                        let bye = self.dialog.request(&self.inner, Method::Bye);
                        bye_tx = Some(self.inner.client_tx(bye, self.dialog.flow).await);
                    }
                    Some(Command::Refer(target)) => {
                        if Uri::parse(&target).is_err() {
                            let _ = self.events.send(CallEvent::TransferFailed { code: 400 });
                            continue;
                        }
                        if self.pending_2xx.is_some() {
                            // A re-INVITE we answered is not ACKed yet: let that
                            // transaction finish before starting another (§14.2).
                            deferred_refer = Some(target);
                        } else {
                            refer_tx = Some(self.send_refer(&target).await);
                        }
                    }
                    Some(Command::SetLocalSdp(s)) => match sdp::parse(s.as_bytes()) {
                        Ok(sd) => self.local_sdp = Some(sd),
                        Err(e) => warn!(error = %e, "ignoring invalid local SDP"),
                    },
                },
                ev = recv_opt(&mut bye_tx) => match ev {
                    Some(TxEvent::Response(r)) if r.is_provisional() => {}
                    // Any final response or a timeout ends the dialog (§15.1.1).
                    _ => return,
                },
                ev = recv_opt(&mut refer_tx) => match ev {
                    Some(TxEvent::Response(r)) if r.is_provisional() => {}
                    Some(TxEvent::Response(r)) if r.is_success() => { refer_tx = None; }
                    Some(TxEvent::Response(r)) => {
                        let _ = self.events.send(CallEvent::TransferFailed { code: r.status });
                        refer_tx = None;
                    }
                    Some(TxEvent::Timeout) | None => {
                        let _ = self.events.send(CallEvent::TransferFailed { code: 408 });
                        refer_tx = None;
                    }
                    Some(TxEvent::TransportError) => {
                        let _ = self.events.send(CallEvent::TransferFailed { code: 503 });
                        refer_tx = None;
                    }
                },
                ev = recv_opt(&mut self.invite_tx) => match ev {
                    Some(TxEvent::Response(r)) if r.is_success() => {
                        if let Some(a) = &self.ack_bytes {
                            let _ = self.inner.send_now(self.dialog.flow, a.clone());
                        }
                    }
                    Some(_) => {}
                    None => self.invite_tx = None,
                },
                _ = sleep_until(next_2xx.unwrap_or_else(Instant::now)), if next_2xx.is_some() => {
                    if let Some(p) = &mut self.pending_2xx {
                        if Instant::now() >= p.give_up {
                            // §13.3.1.4: no ACK within 64*T1 — end the dialog with BYE.
                            warn!(call_id = %self.dialog.call_id, "no ACK for 2xx, sending BYE");
                            self.pending_2xx = None;
                            let bye = self.dialog.request(&self.inner, Method::Bye);
                            bye_tx = Some(self.inner.client_tx(bye, self.dialog.flow).await);
                        } else {
                            // §13.3.1.4: retransmitted on every transport, because a
                            // proxy may forward it over UDP further on.
                            let _ = self.inner.send_now(p.flow, p.bytes.clone());
                            p.interval = (p.interval * 2).min(self.inner.cfg.timers.t2);
                            p.next = Instant::now() + p.interval;
                        }
                    }
                }
                d = dlg_rx.recv() => {
                    let Some(d) = d else { return };
                    if let Outcome::End = self.on_request(d) {
                        return;
                    }
                    if self.pending_2xx.is_none() {
                        if let Some(t) = deferred_refer.take() {
                            refer_tx = Some(self.send_refer(&t).await);
                        }
                    }
                }
            }
        }
    }

    /// REFER with Refer-To (RFC 3515 §2.4); progress comes back as NOTIFY.
    async fn send_refer(&mut self, target: &str) -> mpsc::UnboundedReceiver<TxEvent> {
        let mut r = self.dialog.request(&self.inner, Method::Refer);
        r.headers.push("Refer-To", format!("<{target}>"));
        r.headers
            .push("Referred-By", format!("<{}>", self.dialog.local.uri));
        let contact = self.inner.contact(
            self.dialog.contact_user.as_deref(),
            self.dialog.flow.transport,
        );
        r.headers.push("Contact", contact.to_string());
        self.inner.client_tx(r, self.dialog.flow).await
    }

    fn respond(&self, d: &InDialog, status: u16, reason: &str) {
        let r = self.inner.make_response(&d.req, status, reason, None);
        self.inner.send_response(&d.tx_key, r);
    }

    fn on_request(&mut self, d: InDialog) -> Outcome {
        let req = &d.req;
        let cseq = req.cseq().map(|c| c.seq).unwrap_or(0);
        if req.method == Method::Ack {
            if self.pending_2xx.as_ref().is_some_and(|p| p.cseq == cseq) {
                self.pending_2xx = None;
            }
            return Outcome::Continue;
        }
        // §12.2.2: lower CSeq than the last one seen → 500.
        if let Some(last) = self.dialog.remote_cseq {
            if cseq < last || (cseq == last && req.method != Method::Invite) {
                self.respond(&d, 500, "Server Internal Error");
                return Outcome::Continue;
            }
        }
        self.dialog.remote_cseq = Some(cseq);
        match &req.method {
            Method::Bye => {
                self.respond(&d, 200, "OK");
                info!(call_id = %self.dialog.call_id, "remote hangup");
                let _ = self.events.send(CallEvent::RemoteHangup);
                return Outcome::End;
            }
            Method::Info => match parse_dtmf_info(req) {
                Some(c) => {
                    self.respond(&d, 200, "OK");
                    let _ = self.events.send(CallEvent::Dtmf(c));
                }
                None => self.respond(&d, 415, "Unsupported Media Type"),
            },
            Method::Invite => self.on_reinvite(&d),
            Method::Notify => {
                self.respond(&d, 200, "OK");
                if let Some(code) = sipfrag_status(&req.body) {
                    if (200..300).contains(&code) {
                        let _ = self.events.send(CallEvent::TransferAccepted);
                    } else if code >= 300 {
                        let _ = self.events.send(CallEvent::TransferFailed { code });
                    }
                }
            }
            Method::Options => self.respond(&d, 200, "OK"),
            _ => {
                let mut r = self
                    .inner
                    .make_response(req, 405, "Method Not Allowed", None);
                r.headers.push("Allow", ALLOW);
                self.inner.send_response(&d.tx_key, r);
            }
        }
        Outcome::Continue
    }

    /// §14.2: answer a re-INVITE. Our SDP keeps codec and port; the direction
    /// mirrors the offer so hold (RFC 3264 §8.4) is acknowledged.
    fn on_reinvite(&mut self, d: &InDialog) {
        let req = &d.req;
        if let Some(c) = req.contact() {
            self.dialog.remote_target = c.uri; // §12.2.2 target refresh
        }
        let Some(local) = self.local_sdp.clone() else {
            self.respond(d, 488, "Not Acceptable Here");
            return;
        };
        let answered = if req.body.is_empty() {
            // Offerless re-INVITE: our 200 carries an offer (current SDP).
            let mut l = local.clone();
            l.origin.session_version += 1;
            Ok((l, None))
        } else {
            sdp::parse(&req.body)
                .map_err(sdp::NegotiationError::from)
                .and_then(|offer| sdp::reanswer(&local, &offer))
                .map(|(a, p)| (a, Some(p)))
        };
        let (answer, params) = match answered {
            Ok(x) => x,
            Err(_) => {
                self.respond(d, 488, "Not Acceptable Here");
                return;
            }
        };
        self.local_sdp = Some(answer.clone());
        let mut r = self.inner.make_response(req, 200, "OK", None);
        r.headers.push(
            "Contact",
            self.inner
                .contact(
                    self.dialog.contact_user.as_deref(),
                    self.dialog.flow.transport,
                )
                .to_string(),
        );
        r.headers.push("Content-Type", "application/sdp");
        r.body = answer.to_string().into_bytes();
        let bytes = r.to_bytes();
        if self.inner.send_response(&d.tx_key, r) {
            let t1 = self.inner.cfg.timers.t1;
            self.pending_2xx = Some(Pending2xx {
                cseq: req.cseq().map(|c| c.seq).unwrap_or(0),
                bytes,
                flow: d.flow,
                interval: t1,
                next: Instant::now() + t1,
                give_up: Instant::now() + t1 * 64,
            });
        }
        let _ = self.events.send(CallEvent::ReInvite {
            remote_sdp: String::from_utf8_lossy(&req.body).into_owned(),
            on_hold: params.is_some_and(|p| p.on_hold),
        });
    }
}

/// DTMF from INFO: `application/dtmf-relay` ("Signal=5\r\nDuration=160") or
/// `application/dtmf` (the digit alone).
fn parse_dtmf_info(req: &Request) -> Option<char> {
    let body = std::str::from_utf8(&req.body).ok()?;
    let digit = match req.content_type()?.as_str() {
        "application/dtmf-relay" => body.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            k.trim().eq_ignore_ascii_case("signal").then(|| v.trim())
        })?,
        "application/dtmf" => body.trim(),
        _ => return None,
    };
    let mut chars = digit.chars();
    let c = chars.next()?.to_ascii_uppercase();
    let c = match (c, chars.next()) {
        (c, None) if c.is_ascii_digit() || "*#ABCD".contains(c) => c,
        // "Signal=10"/"11" are * and # in some implementations (RFC 4733 event codes).
        ('1', Some('0')) if digit.len() == 2 => '*',
        ('1', Some('1')) if digit.len() == 2 => '#',
        _ => return None,
    };
    Some(c)
}

/// Status code of a message/sipfrag body ("SIP/2.0 200 OK").
fn sipfrag_status(body: &[u8]) -> Option<u16> {
    let s = std::str::from_utf8(body).ok()?;
    let line = s.lines().next()?;
    let rest = line.trim().strip_prefix("SIP/2.0 ")?;
    rest.get(..3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(ct: &str, body: &str) -> Request {
        let mut headers = Headers::new();
        headers.push("Content-Type", ct);
        Request {
            method: Method::Info,
            uri: Uri::sip(None, "x", None),
            headers,
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn dtmf_bodies() {
        assert_eq!(
            parse_dtmf_info(&info(
                "application/dtmf-relay",
                "Signal=5\r\nDuration=160\r\n"
            )),
            Some('5')
        );
        assert_eq!(
            parse_dtmf_info(&info("application/dtmf-relay", "Signal= #\r\n")),
            Some('#')
        );
        assert_eq!(
            parse_dtmf_info(&info("application/dtmf-relay", "Signal=11\r\n")),
            Some('#')
        );
        assert_eq!(parse_dtmf_info(&info("application/dtmf", "7")), Some('7'));
        assert_eq!(parse_dtmf_info(&info("application/dtmf", "xx")), None);
        assert_eq!(parse_dtmf_info(&info("text/plain", "7")), None);
    }

    #[test]
    fn sipfrag() {
        assert_eq!(sipfrag_status(b"SIP/2.0 200 OK\r\n"), Some(200));
        assert_eq!(sipfrag_status(b"SIP/2.0 603 Declined"), Some(603));
        assert_eq!(sipfrag_status(b"garbage"), None);
    }

    #[test]
    fn cancel_copies_invite_identity() {
        let raw = "INVITE sip:1@h SIP/2.0\r\nVia: SIP/2.0/UDP a:1;branch=z9hG4bKq\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:1@h>\r\nCall-ID: c\r\nCSeq: 7 INVITE\r\nContent-Length: 0\r\n\r\n";
        let crate::message::SipMessage::Request(inv) =
            crate::message::parse_message(raw.as_bytes()).unwrap()
        else {
            panic!()
        };
        let c = build_cancel(&inv);
        assert_eq!(c.headers.get("CSeq"), Some("7 CANCEL"));
        assert_eq!(c.top_via().unwrap().branch(), Some("z9hG4bKq"));
        assert_eq!(c.uri, inv.uri);
        let _ = crate::endpoint::new_branch();
    }
}
