//! The delivery worker.
//!
//! One loop claims due deliveries and starts one task per attempt. Concurrency is bounded
//! per target (endpoint or agent URL: `per_target`) and in total (`max_in_flight`); a target
//! at its bound is left out of the next claims, so a slow endpoint holds only its own slots
//! and never delays another's deliveries. The loop never runs on the calls' path: events are
//! written by the store in the calls' transactions, and this worker only reads them.
//! A claim is a lease longer than any attempt can take (a claimed row waits at most one
//! attempt behind its target's others), so a worker that dies (kill -9) leaves rows another
//! worker or its next life sends again: at least once.

use crate::sign;
use crate::ssrf::{literal_forbidden, GuardedResolver};
use rand::Rng;
use serde_json::json;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchboard_domain::Timestamp;
use switchboard_store::{AttemptResult, ClaimedDelivery, Store, StoreError};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// The worker's name on its claims; stable across restarts, so a restarted worker takes
    /// its own claims back at once.
    pub worker_id: String,
    /// Deliver to loopback/private/link-local addresses too (tests, closed networks).
    pub allow_private: bool,
    /// Delays before the 2nd, 3rd, ... attempts; after the last, the delivery has failed.
    pub retry_schedule: Vec<Duration>,
    /// An endpoint whose attempts all failed for this long is disabled.
    pub disable_after: Duration,
    /// A 2xx within this time is a success.
    pub timeout: Duration,
    pub per_target: u32,
    pub max_in_flight: usize,
    /// How often to look for due rows without a wake-up (retries, other processes' events).
    pub poll_interval: Duration,
    /// Events (and their deliveries) older than this are deleted.
    pub event_retention: Duration,
    pub prune_interval: Duration,
}

impl WebhookConfig {
    pub fn new(worker_id: String) -> Self {
        Self {
            worker_id,
            allow_private: false,
            retry_schedule: parse_schedule("5s,5m,30m,2h,5h,10h,10h").unwrap_or_default(),
            disable_after: Duration::from_secs(5 * 86400),
            timeout: Duration::from_secs(10),
            per_target: 8,
            max_in_flight: 256,
            poll_interval: Duration::from_secs(1),
            event_retention: Duration::from_secs(30 * 86400),
            prune_interval: Duration::from_secs(3600),
        }
    }
}

/// `250ms`, `5s`, `5m`, `2h`, `5d` (a bare number is seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 500ms, 5s, 5m, 2h or 5d"))?;
    let ms = match unit {
        "ms" => 1,
        "" | "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("{s:?}: the unit must be ms, s, m, h or d")),
    };
    Ok(Duration::from_millis(n.saturating_mul(ms)))
}

/// A comma-separated list of durations.
pub fn parse_schedule(s: &str) -> Result<Vec<Duration>, String> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(parse_duration)
        .collect()
}

/// The running worker (and the retention task); stops when [`WebhookWorker::stop`] is called
/// or the value is dropped.
pub struct WebhookWorker {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl WebhookWorker {
    pub async fn start(store: Store, cfg: WebhookConfig) -> Result<WebhookWorker, StoreError> {
        let released = store.release_delivery_claims(&cfg.worker_id).await?;
        if released > 0 {
            tracing::info!(
                released,
                "webhook deliveries claimed by this worker's previous life are sent again"
            );
        }
        let (stop, rx) = watch::channel(false);
        let cfg = Arc::new(cfg);
        let tasks = vec![
            tokio::spawn(run(store.clone(), cfg.clone(), rx.clone())),
            tokio::spawn(prune(store, cfg, rx)),
        ];
        Ok(WebhookWorker { stop, tasks })
    }

    /// Stops claiming; attempts in flight are abandoned (their leases run out or are taken
    /// back at the next start, and they are sent again: at least once).
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
    }
}

impl Drop for WebhookWorker {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn prune(store: Store, cfg: Arc<WebhookConfig>, mut stop: watch::Receiver<bool>) {
    loop {
        let before = Timestamp(Timestamp::now().micros() - cfg.event_retention.as_micros() as i64);
        match store.prune_events(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "events past their retention deleted"),
            Err(e) => tracing::warn!(error = %e, "event retention: prune failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(cfg.prune_interval) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

#[derive(Default)]
struct TargetSlots {
    in_flight: u32,
    waiting: VecDeque<ClaimedDelivery>,
}

async fn run(store: Store, cfg: Arc<WebhookConfig>, mut stop: watch::Receiver<bool>) {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(cfg.timeout)
        .connect_timeout(cfg.timeout)
        .user_agent("Switchboard-Webhooks/1")
        .no_proxy();
    if !cfg.allow_private {
        builder = builder.dns_resolver(Arc::new(GuardedResolver));
    }
    let client = match builder.build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "webhook delivery disabled: cannot build the HTTP client");
            return;
        }
    };
    // Longer than any attempt (timeout) plus one wait behind the target's other attempt.
    let lease = (cfg.timeout * 3 + Duration::from_secs(30)).as_micros() as i64;
    let mut slots: HashMap<String, TargetSlots> = HashMap::new();
    let mut running: JoinSet<String> = JoinSet::new();
    let mut held = 0usize; // in flight + waiting
    loop {
        if *stop.borrow() {
            break;
        }
        let mut full_batch = false;
        let free = cfg.max_in_flight.saturating_sub(held);
        if free > 0 {
            let busy: Vec<String> = slots
                .iter()
                .filter(|(_, s)| s.in_flight as usize + s.waiting.len() >= cfg.per_target as usize)
                .map(|(t, _)| t.clone())
                .collect();
            match store
                .claim_deliveries(&cfg.worker_id, free as u32, cfg.per_target, lease, &busy)
                .await
            {
                Ok(claimed) => {
                    full_batch = claimed.len() == free;
                    held += claimed.len();
                    for d in claimed {
                        slots
                            .entry(d.target.clone())
                            .or_default()
                            .waiting
                            .push_back(d);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "webhook deliveries: claim failed"),
            }
        }
        for s in slots.values_mut() {
            while s.in_flight < cfg.per_target {
                let Some(d) = s.waiting.pop_front() else {
                    break;
                };
                s.in_flight += 1;
                let (store, client, cfg) = (store.clone(), client.clone(), cfg.clone());
                running.spawn(async move {
                    let target = d.target.clone();
                    attempt(&store, &client, &cfg, d).await;
                    target
                });
            }
        }
        let finished = |t: String, slots: &mut HashMap<String, TargetSlots>, held: &mut usize| {
            *held -= 1;
            if let Some(s) = slots.get_mut(&t) {
                s.in_flight -= 1;
                if s.in_flight == 0 && s.waiting.is_empty() {
                    slots.remove(&t);
                }
            }
        };
        while let Some(r) = running.try_join_next() {
            if let Ok(t) = r {
                finished(t, &mut slots, &mut held);
            }
        }
        if full_batch {
            continue;
        }
        tokio::select! {
            _ = store.deliveries_written() => {}
            Some(r) = running.join_next(), if !running.is_empty() => {
                if let Ok(t) = r {
                    finished(t, &mut slots, &mut held);
                }
            }
            _ = tokio::time::sleep(cfg.poll_interval) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    running.abort_all();
    while running.join_next().await.is_some() {}
    if let Err(e) = store.release_delivery_claims(&cfg.worker_id).await {
        tracing::debug!(error = %e, "could not release webhook claims at stop");
    }
}

/// The retry delay with ±20 % jitter (so endpoints that failed together do not retry in
/// lockstep).
fn jittered(d: Duration) -> Duration {
    d.mul_f64(rand::thread_rng().gen_range(0.8..1.2))
}

async fn attempt(store: &Store, client: &reqwest::Client, cfg: &WebhookConfig, d: ClaimedDelivery) {
    if let Err(e) = try_attempt(store, client, cfg, &d).await {
        // The lease runs out and the delivery is tried again.
        tracing::warn!(delivery = d.seq, error = %e, "webhook delivery could not be recorded");
    }
}

async fn try_attempt(
    store: &Store,
    client: &reqwest::Client,
    cfg: &WebhookConfig,
    d: &ClaimedDelivery,
) -> Result<(), StoreError> {
    let ev = match store.get_event_any_org(d.event_seq).await {
        Ok(ev) => ev,
        Err(StoreError::NotFound) => return store.drop_delivery(d.seq).await,
        Err(e) => return Err(e),
    };
    let Some(target) = store.delivery_target(d).await? else {
        // The endpoint was deleted, or the agent's webhook_url removed.
        return store.drop_delivery(d.seq).await;
    };
    if !target.enabled {
        return store.fail_delivery(d, "endpoint is disabled").await;
    }
    let attempted_at = Timestamp::now();
    let mut body = json!({
        "type": ev.event_type,
        "timestamp": ev.created_at,
        "data": ev.data,
    });
    if let Some(c) = ev.call_id {
        body["call_id"] = json!(c);
        body["sequence"] = json!(ev.call_seq);
    }
    let body = body.to_string();
    let started = Instant::now();
    let outcome: Result<u16, String> = async {
        let url = reqwest::Url::parse(&target.url).map_err(|e| format!("invalid url: {e}"))?;
        if !cfg.allow_private {
            if let Some(why) = literal_forbidden(&url) {
                return Err(why);
            }
        }
        let key = sign::secret_key(&target.secret).ok_or("the signing secret is not valid")?;
        let ts = attempted_at.micros() / 1_000_000;
        let msg_id = ev.id();
        let sig = sign::sign(&key, &msg_id, ts, body.as_bytes());
        let resp = client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", &msg_id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", sig)
            .body(body.clone())
            .send()
            .await
            .map_err(|e| describe(&e, cfg.timeout))?;
        Ok(resp.status().as_u16())
    }
    .await;
    let response_ms = started.elapsed().as_millis() as i64;
    let (status_code, error) = match outcome {
        Ok(code) if (200..300).contains(&code) => (Some(code as i64), None),
        Ok(code) if (300..400).contains(&code) => (
            Some(code as i64),
            Some(format!("HTTP {code}: redirects are not followed")),
        ),
        Ok(code) => (Some(code as i64), Some(format!("HTTP {code}"))),
        Err(e) => (None, Some(e)),
    };
    let success = error.is_none();
    let next_retry_at = if success {
        None
    } else {
        cfg.retry_schedule
            .get(d.attempts as usize)
            .map(|delay| Timestamp(Timestamp::now().micros() + jittered(*delay).as_micros() as i64))
    };
    if !success {
        tracing::info!(event_id = %ev.id(), target = %d.target, attempt = d.attempts + 1, error = ?error,
            retry = next_retry_at.is_some(), "webhook delivery failed");
    }
    let result = AttemptResult {
        attempted_at,
        status_code,
        response_ms: Some(response_ms),
        error,
        success,
        next_retry_at,
    };
    let disabled = store
        .finish_delivery(
            &cfg.worker_id,
            d,
            &result,
            cfg.disable_after.as_micros() as i64,
        )
        .await?;
    if disabled {
        tracing::warn!(endpoint = %d.target, "webhook endpoint disabled: it failed for too long");
    }
    Ok(())
}

/// A transport error in words, without the URL's query (it may carry a token).
fn describe(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!("no response within {} s", timeout.as_secs_f64());
    }
    let mut msg = if e.is_connect() {
        "connection failed".to_string()
    } else {
        "request failed".to_string()
    };
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("5d").unwrap(), Duration::from_secs(432000));
        assert!(parse_duration("5y").is_err());
        assert_eq!(parse_schedule("5s,5m,30m,2h,5h,10h,10h").unwrap().len(), 7);
    }
}
