//! Per-source flood protection for the SIP listener.
//!
//! Every message a source sends (well-formed or not: a malformed flood costs parsing
//! too) takes a token from that source IP's bucket, refilled at `per_second` up to
//! `burst`. A source with an empty bucket is first answered `503 Service Unavailable`
//! with `Retry-After` (RFC 3261 §21.5.4, §20.33: the overload answer a UAC backs off
//! from), then ignored for as long as it keeps exceeding (what it sends meanwhile keeps
//! draining its bucket, so the refill lets nothing of a sustained flood through):
//! answering a flood would double its cost to us. A source that slows below the rate
//! earns tokens back and is served again; once its bucket is full again the next excess
//! gets a 503 again.
//!
//! Exempt sources (the configured trunks, `--sip-trusted`) are never counted. The
//! decision ([`Limiter::check`]) is a pure function of the time it is given.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

/// Rate and burst per source IP.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Sustained messages per second a source may send.
    pub per_second: f64,
    /// Messages a source may send at once (bucket size), at least 1.
    pub burst: u32,
}

/// What to do with one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// Answer 503 with `Retry-After: retry_after` (seconds) and drop.
    Refuse {
        retry_after: u32,
    },
    /// Drop without an answer.
    Drop,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
    /// A 503 was sent since the bucket was last full.
    refused: bool,
}

/// The sans-IO limiter: token buckets per source IP.
#[derive(Debug)]
pub struct Limiter {
    limit: RateLimit,
    buckets: HashMap<IpAddr, Bucket>,
    exempt: HashSet<IpAddr>,
    max_sources: usize,
}

impl Limiter {
    /// `max_sources` bounds the table: a flood from many (spoofed) addresses cannot
    /// grow it without limit. When it is full of sources that are all still
    /// throttled, a new source is dropped (exempt ones never are).
    pub fn new(limit: RateLimit, max_sources: usize) -> Limiter {
        Limiter {
            limit: RateLimit {
                per_second: limit.per_second.max(f64::MIN_POSITIVE),
                burst: limit.burst.max(1),
            },
            buckets: HashMap::new(),
            exempt: HashSet::new(),
            max_sources: max_sources.max(1),
        }
    }

    pub fn set_exempt(&mut self, exempt: impl IntoIterator<Item = IpAddr>) {
        self.exempt = exempt.into_iter().collect();
        for ip in &self.exempt {
            self.buckets.remove(ip);
        }
    }

    pub fn is_exempt(&self, ip: &IpAddr) -> bool {
        self.exempt.contains(ip)
    }

    /// Sources currently tracked.
    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }

    /// The 503 of a [`Verdict::Refuse`] could not be sent (the message that hit the limit
    /// was too broken to answer): the next message over the limit gets it instead, so a
    /// source that mixes garbage into its flood still learns it is throttled.
    pub fn rearm(&mut self, ip: IpAddr) {
        if let Some(b) = self.buckets.get_mut(&ip) {
            b.refused = false;
        }
    }

    pub fn check(&mut self, ip: IpAddr, now: Instant) -> Verdict {
        if self.exempt.contains(&ip) {
            return Verdict::Pass;
        }
        let RateLimit { per_second, burst } = self.limit;
        let burst = f64::from(burst);
        if !self.buckets.contains_key(&ip) && self.buckets.len() >= self.max_sources {
            // Forget sources whose buckets have refilled: they are not flooding.
            self.buckets.retain(|_, b| {
                let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
                b.tokens + elapsed * per_second < burst
            });
            if self.buckets.len() >= self.max_sources {
                return Verdict::Drop;
            }
        }
        let b = self.buckets.entry(ip).or_insert(Bucket {
            tokens: burst,
            at: now,
            refused: false,
        });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * per_second).min(burst);
        b.at = now;
        if b.tokens >= burst {
            b.refused = false;
        }
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return Verdict::Pass;
        }
        if b.refused {
            // Silence while it keeps exceeding: what it sends over the limit keeps draining
            // its bucket (down to -burst), so a source flooding above the rate is never let
            // through on the refill; it is served again once it stays under the rate long
            // enough to earn tokens back (at most 2 × burst / rate seconds of quiet).
            b.tokens = (b.tokens - 1.0).max(-burst);
            return Verdict::Drop;
        }
        b.refused = true;
        // Come back once the bucket is full again (then the 503 is re-armed too).
        let secs = ((burst - b.tokens) / per_second).ceil();
        Verdict::Refuse {
            retry_after: secs.clamp(1.0, 3600.0) as u32,
        }
    }
}

/// A [`Limiter`] shared by the endpoint's receive loops and whoever keeps the exempt
/// set current, with counters of what it refused.
#[derive(Debug)]
pub struct FloodGuard {
    limiter: Mutex<Limiter>,
    refused: AtomicU64,
    dropped: AtomicU64,
}

/// Counters since start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FloodStats {
    /// Messages answered 503.
    pub refused: u64,
    /// Messages dropped unanswered.
    pub dropped: u64,
}

impl FloodGuard {
    /// Up to 65 536 tracked sources.
    pub fn new(limit: RateLimit, exempt: impl IntoIterator<Item = IpAddr>) -> Arc<FloodGuard> {
        let mut limiter = Limiter::new(limit, 65_536);
        limiter.set_exempt(exempt);
        Arc::new(FloodGuard {
            limiter: Mutex::new(limiter),
            refused: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        })
    }

    /// Replace the exempt set (trunks were added or changed).
    pub fn set_exempt(&self, exempt: impl IntoIterator<Item = IpAddr>) {
        crate::endpoint::lock(&self.limiter).set_exempt(exempt);
    }

    pub fn is_exempt(&self, ip: &IpAddr) -> bool {
        crate::endpoint::lock(&self.limiter).is_exempt(ip)
    }

    pub fn check(&self, ip: IpAddr) -> Verdict {
        let v = crate::endpoint::lock(&self.limiter).check(ip, Instant::now());
        match v {
            Verdict::Pass => {}
            Verdict::Refuse { .. } => {
                self.refused.fetch_add(1, Ordering::Relaxed);
            }
            Verdict::Drop => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        v
    }

    /// See [`Limiter::rearm`]; the refusal is not counted as a 503 sent.
    pub fn rearm(&self, ip: IpAddr) {
        crate::endpoint::lock(&self.limiter).rearm(ip);
        self.refused.fetch_sub(1, Ordering::Relaxed);
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    pub fn stats(&self) -> FloodStats {
        FloodStats {
            refused: self.refused.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }
}

fn registry() -> &'static Mutex<HashMap<SocketAddr, Arc<FloodGuard>>> {
    static R: OnceLock<Mutex<HashMap<SocketAddr, Arc<FloodGuard>>>> = OnceLock::new();
    R.get_or_init(Default::default)
}

/// Attach `guard` to the UDP socket bound at `local`: the [`crate::SipEndpoint`]
/// started on that socket picks it up (when its own config names none). This lets
/// the binary protect an endpoint whose configuration another crate builds.
pub fn guard_socket(local: SocketAddr, guard: Arc<FloodGuard>) {
    crate::endpoint::lock(registry()).insert(local, guard);
}

pub(crate) fn take_guard(local: SocketAddr) -> Option<Arc<FloodGuard>> {
    crate::endpoint::lock(registry()).remove(&local)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn burst_then_one_503_then_silence_then_recovery() {
        let t0 = Instant::now();
        let mut l = Limiter::new(
            RateLimit {
                per_second: 10.0,
                burst: 5,
            },
            100,
        );
        let a = ip("192.0.2.1");
        for _ in 0..5 {
            assert_eq!(l.check(a, t0), Verdict::Pass);
        }
        // Empty bucket: refill to full takes 5 / 10 s → Retry-After 1.
        assert_eq!(l.check(a, t0), Verdict::Refuse { retry_after: 1 });
        for _ in 0..100 {
            assert_eq!(l.check(a, t0), Verdict::Drop);
        }
        // 100 ms later one token was earned, but the drops drained the bucket: a source
        // that keeps exceeding stays silenced, and gets no new 503.
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(l.check(a, t1), Verdict::Drop);
        assert_eq!(l.check(a, t1), Verdict::Drop);
        // Another source is not affected.
        assert_eq!(l.check(ip("192.0.2.2"), t1), Verdict::Pass);
        // Quiet long enough for a full bucket: the whole burst, and a 503 re-armed.
        let t2 = t1 + Duration::from_millis(1100);
        for _ in 0..5 {
            assert_eq!(l.check(a, t2), Verdict::Pass);
        }
        assert!(matches!(l.check(a, t2), Verdict::Refuse { .. }));
    }

    #[test]
    fn an_unanswerable_message_over_the_limit_passes_the_503_on() {
        let t0 = Instant::now();
        let mut l = Limiter::new(
            RateLimit {
                per_second: 1.0,
                burst: 2,
            },
            100,
        );
        let a = ip("192.0.2.9");
        assert_eq!(l.check(a, t0), Verdict::Pass);
        assert_eq!(l.check(a, t0), Verdict::Pass);
        assert!(matches!(l.check(a, t0), Verdict::Refuse { .. }));
        // That message was garbage: no 503 could be built from it.
        l.rearm(a);
        assert!(matches!(l.check(a, t0), Verdict::Refuse { .. }));
        assert_eq!(l.check(a, t0), Verdict::Drop);
    }

    #[test]
    fn sustained_rate_is_served_and_retry_after_covers_the_refill() {
        let t0 = Instant::now();
        let mut l = Limiter::new(
            RateLimit {
                per_second: 2.0,
                burst: 20,
            },
            100,
        );
        let a = ip("192.0.2.1");
        // Exactly at the rate, forever: never refused.
        for i in 0..200u64 {
            assert_eq!(
                l.check(a, t0 + Duration::from_millis(500 * i)),
                Verdict::Pass
            );
        }
        let t = t0 + Duration::from_secs(1000);
        for _ in 0..20 {
            assert_eq!(l.check(a, t), Verdict::Pass);
        }
        // 20 tokens at 2/s: 10 s to be full again.
        assert_eq!(l.check(a, t), Verdict::Refuse { retry_after: 10 });
    }

    #[test]
    fn exempt_sources_are_never_counted() {
        let t0 = Instant::now();
        let mut l = Limiter::new(
            RateLimit {
                per_second: 1.0,
                burst: 1,
            },
            100,
        );
        let trunk = ip("198.51.100.7");
        l.set_exempt([trunk]);
        for _ in 0..10_000 {
            assert_eq!(l.check(trunk, t0), Verdict::Pass);
        }
        assert_eq!(l.tracked(), 0);
        // Exempting a throttled source lifts its throttle at once.
        let a = ip("192.0.2.1");
        assert_eq!(l.check(a, t0), Verdict::Pass);
        assert!(matches!(l.check(a, t0), Verdict::Refuse { .. }));
        l.set_exempt([trunk, a]);
        assert_eq!(l.check(a, t0), Verdict::Pass);
    }

    #[test]
    fn the_table_is_bounded_and_idle_sources_are_forgotten() {
        let t0 = Instant::now();
        let mut l = Limiter::new(
            RateLimit {
                per_second: 1.0,
                burst: 2,
            },
            3,
        );
        for i in 1..=3 {
            let a = ip(&format!("192.0.2.{i}"));
            assert_eq!(l.check(a, t0), Verdict::Pass);
        }
        // Full of sources still below a full bucket: a fourth is dropped.
        assert_eq!(l.check(ip("192.0.2.4"), t0), Verdict::Drop);
        assert_eq!(l.tracked(), 3);
        // Two seconds on, all three are full again and forgotten: room for new ones.
        let t1 = t0 + Duration::from_secs(2);
        assert_eq!(l.check(ip("192.0.2.4"), t1), Verdict::Pass);
        assert_eq!(l.tracked(), 1);
    }
}
