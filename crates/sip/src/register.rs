//! Registration with a registrar, kept fresh (RFC 3261 §10.2).

use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tokio::time::sleep;
use tracing::{info, warn};

use crate::digest::Challenge;
use crate::endpoint::{new_request, random_token, SipEndpoint, Target, TxEvent};
use crate::message::{Method, Response};
use crate::uri::{NameAddr, Uri};

#[derive(Debug, Clone)]
pub struct RegisterConfig {
    pub registrar: Target,
    pub username: String,
    pub password: String,
    /// Domain of the address-of-record; defaults to the registrar host.
    pub domain: Option<String>,
    /// Requested binding lifetime (§10.2.1.1).
    pub expires: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationState {
    Registering,
    /// Bound for `expires` seconds as granted by the registrar.
    Registered {
        expires: u32,
    },
    /// The last attempt failed; it is retried after a back-off.
    Failed {
        code: u16,
        reason: String,
    },
    Unregistered,
}

/// A running registration. `stop()` removes the binding (Expires: 0).
#[derive(Debug)]
pub struct Registration {
    pub state: watch::Receiver<RegistrationState>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Registration {
    /// Unregister and wait for the task to finish (bounded by the transaction timers).
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if self.stop.is_some() {
            self.task.abort();
        }
    }
}

/// When to refresh a binding granted for `granted` seconds: well before expiry
/// (§10.2.4 leaves the margin to the UA) — halfway for short bindings, 30 s early
/// for long ones.
pub fn refresh_after(granted: u32) -> Duration {
    if granted > 120 {
        Duration::from_secs(u64::from(granted - 30))
    } else {
        Duration::from_millis(u64::from(granted.max(1)) * 500)
    }
}

fn granted_expires(r: &Response, requested: u32, contact_uri: &Uri) -> u32 {
    // §10.2.4: the Contact's expires parameter wins over the Expires header.
    for c in r.headers.get_all("Contact") {
        if let Ok(na) = NameAddr::parse(c) {
            if na.uri.host == contact_uri.host && na.uri.port == contact_uri.port {
                if let Some(e) =
                    crate::uri::param(&na.params, "expires").and_then(|e| e.parse().ok())
                {
                    return e;
                }
            }
        }
    }
    r.headers
        .get("Expires")
        .and_then(|e| e.trim().parse().ok())
        .unwrap_or(requested)
}

impl SipEndpoint {
    /// Register and keep the registration refreshed until stopped.
    pub fn register(&self, cfg: RegisterConfig) -> Registration {
        let (state_tx, state_rx) = watch::channel(RegistrationState::Registering);
        let (stop_tx, mut stop_rx) = oneshot::channel();
        let inner = self.inner.clone();
        let task = tokio::spawn(async move {
            let t = cfg.registrar.transport;
            let domain = cfg
                .domain
                .clone()
                .unwrap_or_else(|| cfg.registrar.host.clone());
            let aor = NameAddr::new(Uri::sip(Some(&cfg.username), &domain, None));
            let ruri = Uri::sip(None, &domain, Some(cfg.registrar.port));
            let call_id = format!("{}@{}", random_token(), inner.public_ip_host());
            let contact = inner.contact(Some(&cfg.username), t);
            let requested = cfg.expires.as_secs().min(u64::from(u32::MAX)) as u32;
            let mut cseq = 0u32;
            let mut challenge: Option<(Challenge, bool)> = None;
            let mut nc = 0u32;
            let mut stopping = false;
            loop {
                let expires = if stopping { 0 } else { requested };
                let mut attempt = 0;
                let outcome = loop {
                    attempt += 1;
                    // §10.2: same Call-ID for all registrations, CSeq increasing.
                    cseq += 1;
                    let from = aor.clone().with_tag(&random_token());
                    let mut req = new_request(
                        &inner,
                        Method::Register,
                        ruri.clone(),
                        &from,
                        &aor,
                        &call_id,
                        cseq,
                        t,
                    );
                    req.headers.push("Contact", contact.to_string());
                    req.headers.push("Expires", expires.to_string());
                    if let Some((ch, proxy)) = &challenge {
                        // Reuse the last challenge (nc counts up) to save a round trip.
                        nc += 1;
                        let v = ch.respond(
                            "REGISTER",
                            &ruri.to_string(),
                            &cfg.username,
                            &cfg.password,
                            &random_token(),
                            nc,
                        );
                        req.headers.push(
                            if *proxy {
                                "Proxy-Authorization"
                            } else {
                                "Authorization"
                            },
                            v,
                        );
                    }
                    let flow = match inner
                        .resolve(&cfg.registrar.host, cfg.registrar.port, t)
                        .await
                    {
                        Ok(f) => f,
                        Err(_) => break Err((503, "Cannot resolve registrar".to_string())),
                    };
                    let mut rx = inner.client_tx(req, flow).await;
                    let resp = loop {
                        match rx.recv().await {
                            Some(TxEvent::Response(r)) if r.is_provisional() => continue,
                            Some(TxEvent::Response(r)) => break Ok(r),
                            Some(TxEvent::Timeout) | None => {
                                break Err((408, "Request Timeout".to_string()))
                            }
                            Some(TxEvent::TransportError) => {
                                break Err((503, "Transport Error".to_string()))
                            }
                        }
                    };
                    match resp {
                        Ok(r) if (r.status == 401 || r.status == 407) && attempt == 1 => {
                            // §22.2: answer the challenge once per attempt.
                            let (h, proxy) = if r.status == 401 {
                                ("WWW-Authenticate", false)
                            } else {
                                ("Proxy-Authenticate", true)
                            };
                            match r.headers.get(h).and_then(Challenge::parse) {
                                Some(ch) => {
                                    challenge = Some((ch, proxy));
                                    nc = 0;
                                }
                                None => break Err((r.status, r.reason.clone())),
                            }
                        }
                        Ok(r) if r.is_success() => {
                            break Ok(granted_expires(&r, expires, &contact.uri))
                        }
                        Ok(r) => break Err((r.status, r.reason.clone())),
                        Err(e) => break Err(e),
                    }
                };
                if stopping {
                    state_tx.send_replace(RegistrationState::Unregistered);
                    return;
                }
                let wait = match outcome {
                    Ok(granted) => {
                        info!(granted, "registered");
                        state_tx.send_replace(RegistrationState::Registered { expires: granted });
                        refresh_after(granted)
                    }
                    Err((code, reason)) => {
                        warn!(code, %reason, "registration failed");
                        challenge = None;
                        state_tx.send_replace(RegistrationState::Failed { code, reason });
                        Duration::from_secs(30).min(refresh_after(requested.max(2)))
                    }
                };
                tokio::select! {
                    _ = sleep(wait) => {}
                    _ = &mut stop_rx => stopping = true,
                }
            }
        });
        Registration {
            state: state_rx,
            stop: Some(stop_tx),
            task,
        }
    }
}
