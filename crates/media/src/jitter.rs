//! Receive-side reorder/jitter buffer for one RTP stream (one SSRC), sans-IO.
//!
//! Packets are pushed as they arrive together with the arrival time; the owner pulls one frame
//! per 20 ms tick with [`JitterBuffer::pop`]. Ordering and duplicate detection use the extended
//! sequence number (RFC 3550 Appendix A.1); *playout* is driven by the RTP timestamp, so gaps
//! that are not losses (RFC 4733 events sharing the sequence space, silence suppression) keep the
//! timeline right. Every tick yields exactly one frame's worth of output (audio, concealment or
//! "not started"), so whatever is fed downstream (the recorder) stays continuous.
//!
//! Statistics follow RFC 3550: cumulative loss is expected minus received (A.3), interarrival
//! jitter is the smoothed transit-time difference (A.8, §6.4.1).

use std::collections::BTreeMap;
use std::time::Instant;

/// Packets further behind the highest sequence number than this are treated as a possible
/// sender restart rather than reordering (RFC 3550 A.1 MAX_MISORDER).
const MAX_MISORDER: i64 = 100;
/// Size of the ring remembering recently seen sequence numbers, for duplicate detection.
const SEEN_RING: usize = 1024;

/// Tuning for a [`JitterBuffer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JitterConfig {
    /// RTP clock rate of the audio payload (8000 for G.711, RFC 3551 §4.5.14).
    pub clock_rate: u32,
    /// Samples per playout frame (160 = 20 ms at 8 kHz).
    pub frame_samples: u32,
    /// Frames to collect before playout starts (the added latency that absorbs jitter).
    pub target_depth: u32,
    /// If more than this many frames are buffered ahead of playout, skip ahead to
    /// `target_depth` (bounds latency when the sender's clock runs fast or after a burst).
    pub max_depth: u32,
}

impl Default for JitterConfig {
    fn default() -> Self {
        Self {
            clock_rate: 8000,
            frame_samples: 160,
            target_depth: 3,
            max_depth: 25,
        }
    }
}

/// A buffered packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JitterPacket {
    pub sequence: u16,
    pub timestamp: u32,
    pub payload_type: u8,
    pub marker: bool,
    pub payload: Vec<u8>,
}

/// What one tick produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Playout {
    /// Playout has not started (nothing received yet, or still filling to the target depth).
    NotReady,
    /// The packet due now.
    Audio(JitterPacket),
    /// Nothing arrived for this slot: the caller should conceal (see [`Concealer`]).
    Concealed,
}

/// What happened to a pushed packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// Stored for playout (in order).
    Buffered,
    /// Stored for playout, but it arrived after a higher sequence number.
    Reordered,
    /// Already seen: dropped.
    Duplicate,
    /// Its playout time has passed: dropped.
    Late,
    /// Counted for statistics only (non-audio packet of the same stream).
    Noted,
}

/// Counters for one stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JitterStats {
    /// Distinct packets received (audio and noted non-audio; duplicates excluded, late included).
    pub received: u64,
    /// Duplicates dropped.
    pub duplicates: u64,
    /// Cumulative packets lost: expected minus received (RFC 3550 A.3), never negative here.
    pub lost: u64,
    /// Packets that arrived after their playout slot and were dropped.
    pub late: u64,
    /// Packets that arrived after a higher sequence number (still played if in time).
    pub reordered: u64,
    /// Frames for which concealment was emitted.
    pub concealed: u64,
    /// Packets discarded to bring the buffer back to its target depth.
    pub overflow_dropped: u64,
    /// Times the buffer restarted playout (sender restart or sustained delay jump).
    pub resyncs: u64,
    /// Interarrival jitter estimate in RTP timestamp units (RFC 3550 A.8).
    pub jitter: u32,
    /// Extended highest sequence number received (RFC 3550 §6.4.1).
    pub highest_seq: u32,
}

/// Reception statistics for one RTCP report block interval (RFC 3550 §6.4.1, A.3).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReceptionReport {
    /// Fraction lost since the previous report, fixed point /256.
    pub fraction_lost: u8,
    /// Cumulative number lost, clamped to the 24-bit signed field.
    pub cumulative_lost: i32,
    /// Extended highest sequence number received.
    pub highest_seq: u32,
    /// Interarrival jitter in timestamp units.
    pub jitter: u32,
}

/// The jitter buffer. See the module docs.
#[derive(Debug)]
pub struct JitterBuffer {
    cfg: JitterConfig,
    epoch: Option<Instant>,
    base_seq: i64,
    highest_seq: Option<i64>,
    /// Extended and raw timestamp of the most recent in-order packet, to extend later ones.
    ts_ref: (i64, u32),
    seen: Vec<i64>,
    buffer: BTreeMap<i64, (i64, JitterPacket)>,
    playout_ts: Option<i64>,
    fill_ticks: u32,
    /// A.1 probation: the next sequence number that would confirm a restart.
    restart_probe: Option<u16>,
    in_order_late: u32,
    transit: Option<f64>,
    jitter: f64,
    /// Distinct packets of the current sequence-number space (for A.3 loss accounting).
    received: u64,
    /// Received and lost counts of earlier streams (before an SSRC change or sender restart).
    received_carried: u64,
    lost_carried: u64,
    expected_prior: i64,
    received_prior: u64,
    stats: JitterStats,
}

impl JitterBuffer {
    pub fn new(cfg: JitterConfig) -> Self {
        Self {
            cfg,
            epoch: None,
            base_seq: 0,
            highest_seq: None,
            ts_ref: (0, 0),
            seen: vec![i64::MIN; SEEN_RING],
            buffer: BTreeMap::new(),
            playout_ts: None,
            fill_ticks: 0,
            restart_probe: None,
            in_order_late: 0,
            transit: None,
            jitter: 0.0,
            received: 0,
            received_carried: 0,
            lost_carried: 0,
            expected_prior: 0,
            received_prior: 0,
            stats: JitterStats::default(),
        }
    }

    pub fn config(&self) -> &JitterConfig {
        &self.cfg
    }

    /// Forget the stream (e.g. the SSRC changed). Counters are kept.
    pub fn reset(&mut self) {
        let stats = self.stats;
        let received_carried = self.received_carried + self.received;
        let lost_carried = self.lost_carried + self.cumulative_lost().max(0) as u64;
        *self = Self::new(self.cfg);
        self.stats = stats;
        self.received_carried = received_carried;
        self.lost_carried = lost_carried;
    }

    /// Number of packets waiting for playout.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// Current counters.
    pub fn stats(&self) -> JitterStats {
        let mut s = self.stats;
        s.received = self.received_carried + self.received;
        s.lost = self.lost_carried + self.cumulative_lost().max(0) as u64;
        s.jitter = self.jitter as u32;
        s.highest_seq = self.highest_seq.unwrap_or(0) as u32;
        s
    }

    fn cumulative_lost(&self) -> i64 {
        match self.highest_seq {
            Some(h) => (h - self.base_seq + 1) - self.received as i64,
            None => 0,
        }
    }

    /// Data for an RTCP report block; also starts a new interval for `fraction_lost` (A.3).
    /// `None` before anything was received (§6.4: no block for a source we never heard).
    pub fn reception_report(&mut self) -> Option<ReceptionReport> {
        let highest = self.highest_seq?;
        let expected = highest - self.base_seq + 1;
        let expected_interval = expected - self.expected_prior;
        let received_interval = self.received as i64 - self.received_prior as i64;
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost_interval = expected_interval - received_interval;
        let fraction_lost = if expected_interval <= 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / expected_interval).min(255) as u8
        };
        Some(ReceptionReport {
            fraction_lost,
            // 24-bit signed field (§6.4.1).
            cumulative_lost: self.cumulative_lost().clamp(-0x80_0000, 0x7F_FFFF) as i32,
            highest_seq: highest as u32,
            jitter: self.jitter as u32,
        })
    }

    /// Extend a 16-bit sequence number to the one nearest the highest seen (A.1).
    fn extend_seq(&self, seq: u16) -> i64 {
        match self.highest_seq {
            None => i64::from(seq),
            Some(h) => h + i64::from(seq.wrapping_sub(h as u16) as i16),
        }
    }

    fn extend_ts(&self, ts: u32) -> i64 {
        self.ts_ref.0 + i64::from(ts.wrapping_sub(self.ts_ref.1) as i32)
    }

    /// Sequence bookkeeping shared by audio and non-audio packets. Returns the extended
    /// sequence number, or the outcome if the packet must be dropped.
    fn account(&mut self, seq: u16, ts: u32) -> Result<(i64, bool), PushOutcome> {
        let mut first = self.highest_seq.is_none();
        let mut ext = self.extend_seq(seq);
        if first {
            self.base_seq = ext;
            self.highest_seq = Some(ext);
            self.ts_ref = (i64::from(ts), ts);
        }
        let highest = self.highest_seq.unwrap_or(ext);
        if ext < highest - MAX_MISORDER {
            // A.1: a large jump back is either a very late packet or the sender restarted its
            // sequence. Accept the restart only when the next packet confirms it.
            if self.restart_probe == Some(seq) {
                self.restart_probe = None;
                self.restart();
                // A new sequence space: carry this one's counts over and start A.3 afresh.
                self.received_carried += self.received;
                self.lost_carried += self.cumulative_lost().max(0) as u64;
                self.received = 0;
                self.expected_prior = 0;
                self.received_prior = 0;
                self.seen.fill(i64::MIN);
                ext = i64::from(seq);
                self.base_seq = ext;
                self.highest_seq = Some(ext);
                self.ts_ref = (i64::from(ts), ts);
                first = true;
            } else {
                self.restart_probe = Some(seq.wrapping_add(1));
                self.stats.late += 1;
                return Err(PushOutcome::Late);
            }
        }
        let slot = ext.rem_euclid(SEEN_RING as i64) as usize;
        if self.seen[slot] == ext {
            self.stats.duplicates += 1;
            return Err(PushOutcome::Duplicate);
        }
        self.seen[slot] = ext;
        self.received += 1;
        let in_order = first || ext > self.highest_seq.unwrap_or(ext);
        if in_order {
            let ext_ts = self.extend_ts(ts);
            self.highest_seq = Some(ext);
            self.ts_ref = (ext_ts, ts);
        } else if !first {
            self.stats.reordered += 1;
        }
        Ok((ext, in_order))
    }

    fn restart(&mut self) {
        self.buffer.clear();
        self.playout_ts = None;
        self.fill_ticks = 0;
        self.transit = None;
        self.in_order_late = 0;
        self.stats.resyncs += 1;
    }

    /// Account a packet of this stream that is not audio for playout (an RFC 4733 event, comfort
    /// noise): it takes part in loss/duplicate statistics but is not buffered.
    pub fn note(&mut self, seq: u16, ts: u32) -> PushOutcome {
        match self.account(seq, ts) {
            Ok(_) => PushOutcome::Noted,
            Err(outcome) => outcome,
        }
    }

    /// Push an audio packet that arrived at `now`.
    pub fn push(&mut self, packet: JitterPacket, now: Instant) -> PushOutcome {
        let (ext, in_order) = match self.account(packet.sequence, packet.timestamp) {
            Ok(v) => v,
            Err(outcome) => return outcome,
        };
        let ext_ts = self.extend_ts(packet.timestamp);
        self.update_jitter(packet.timestamp, now);

        if let Some(play) = self.playout_ts {
            if ext_ts < play {
                self.stats.late += 1;
                if in_order {
                    // In-order yet behind playout: the network delay (or the sender's clock)
                    // jumped. After a few in a row, restart playout around the new delay.
                    self.in_order_late += 1;
                    if self.in_order_late > self.cfg.target_depth {
                        self.restart();
                        self.insert(ext, ext_ts, packet);
                        return PushOutcome::Buffered;
                    }
                }
                return PushOutcome::Late;
            }
            self.in_order_late = 0;
        }
        self.insert(ext, ext_ts, packet);
        self.enforce_max_depth();
        if in_order {
            PushOutcome::Buffered
        } else {
            PushOutcome::Reordered
        }
    }

    fn insert(&mut self, ext: i64, ext_ts: i64, packet: JitterPacket) {
        self.buffer.insert(ext, (ext_ts, packet));
    }

    fn enforce_max_depth(&mut self) {
        let frame = i64::from(self.cfg.frame_samples);
        let (Some(play), Some((_, (newest_ts, _)))) =
            (self.playout_ts, self.buffer.last_key_value())
        else {
            return;
        };
        if newest_ts - play <= i64::from(self.cfg.max_depth) * frame {
            return;
        }
        let new_play = newest_ts - i64::from(self.cfg.target_depth) * frame;
        self.buffer.retain(|_, (ts, _)| {
            let keep = *ts >= new_play;
            if !keep {
                self.stats.overflow_dropped += 1;
            }
            keep
        });
        self.playout_ts = Some(new_play);
    }

    /// RFC 3550 A.8: J += (|D| - J) / 16 with D the change in relative transit time, both in
    /// timestamp units. Arrival time is measured from the first packet's arrival.
    fn update_jitter(&mut self, ts: u32, now: Instant) {
        let epoch = *self.epoch.get_or_insert(now);
        let arrival =
            now.saturating_duration_since(epoch).as_secs_f64() * f64::from(self.cfg.clock_rate);
        let transit = arrival - f64::from(ts);
        if let Some(prev) = self.transit {
            let mut d = transit - prev;
            // Timestamps wrap at 2^32; the true difference is the small one.
            let wrap = 4_294_967_296.0;
            if d > wrap / 2.0 {
                d -= wrap;
            } else if d < -wrap / 2.0 {
                d += wrap;
            }
            self.jitter += (d.abs() - self.jitter) / 16.0;
        }
        self.transit = Some(transit);
    }

    /// Pull the frame for this tick. Call exactly once per `frame_samples` of real time.
    pub fn pop(&mut self) -> Playout {
        let frame = i64::from(self.cfg.frame_samples);
        let play = match self.playout_ts {
            Some(p) => p,
            None => {
                let Some((_, (first_ts, _))) = self.buffer.first_key_value() else {
                    return Playout::NotReady;
                };
                let first_ts = *first_ts;
                self.fill_ticks += 1;
                if self.fill_ticks <= self.cfg.target_depth {
                    return Playout::NotReady;
                }
                self.playout_ts = Some(first_ts);
                // A burst may have filled the buffer beyond max_depth while starting.
                self.enforce_max_depth();
                self.playout_ts.unwrap_or(first_ts)
            }
        };
        // Anything wholly before the playout point can only be here after a realignment.
        while let Some(entry) = self.buffer.first_entry() {
            if entry.get().0 + frame <= play {
                entry.remove();
                self.stats.late += 1;
            } else {
                break;
            }
        }
        if let Some(entry) = self.buffer.first_entry() {
            let ts = entry.get().0;
            if ts < play + frame {
                // Due now (possibly off-grid after a gap, e.g. talkspurt resuming after DTMF):
                // realign the playout clock to this packet.
                let (_, packet) = entry.remove();
                self.playout_ts = Some(ts + frame);
                return Playout::Audio(packet);
            }
        }
        self.playout_ts = Some(play + frame);
        self.stats.concealed += 1;
        Playout::Concealed
    }
}

/// Simple packet loss concealment for 20 ms frames: the first lost frame repeats the previous
/// good frame at half amplitude (masks a single lost packet well), later ones are silence, so a
/// long gap never produces a buzzing loop.
#[derive(Debug, Default, Clone)]
pub struct Concealer {
    last: Vec<i16>,
    run: u32,
}

impl Concealer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Remember a good frame.
    pub fn good(&mut self, frame: &[i16]) {
        self.last.clear();
        self.last.extend_from_slice(frame);
        self.run = 0;
    }

    /// Produce a concealment frame of `len` samples.
    pub fn conceal(&mut self, len: usize) -> Vec<i16> {
        self.run += 1;
        if self.run == 1 && self.last.len() == len {
            self.last.iter().map(|&s| s / 2).collect()
        } else {
            vec![0; len]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn pkt(seq: u16, ts: u32) -> JitterPacket {
        JitterPacket {
            sequence: seq,
            timestamp: ts,
            payload_type: 0,
            marker: false,
            payload: vec![seq as u8; 160],
        }
    }

    fn seq_of(p: Playout) -> Option<u16> {
        match p {
            Playout::Audio(p) => Some(p.sequence),
            _ => None,
        }
    }

    /// Push `n` in-order packets starting at (seq, ts) and start playout.
    fn started(seq: u16, ts: u32) -> (JitterBuffer, Instant) {
        let mut jb = JitterBuffer::new(JitterConfig::default());
        let t0 = Instant::now();
        jb.push(pkt(seq, ts), t0);
        for _ in 0..3 {
            assert_eq!(jb.pop(), Playout::NotReady);
        }
        (jb, t0)
    }

    #[test]
    fn in_order_stream_plays_every_packet() {
        let (mut jb, t0) = started(100, 1000);
        let mut played = Vec::new();
        for i in 1..50u16 {
            jb.push(
                pkt(100 + i, 1000 + 160 * u32::from(i)),
                t0 + Duration::from_millis(20 * u64::from(i)),
            );
            played.push(seq_of(jb.pop()).unwrap());
        }
        assert_eq!(played, (100..149).collect::<Vec<_>>());
        let s = jb.stats();
        assert_eq!(
            (
                s.received,
                s.lost,
                s.duplicates,
                s.late,
                s.reordered,
                s.concealed
            ),
            (50, 0, 0, 0, 0, 0)
        );
        assert_eq!(s.jitter, 0, "perfectly paced arrivals have zero jitter");
    }

    #[test]
    fn sequence_and_timestamp_wraparound() {
        let start_ts = u32::MAX - 160 * 5 + 1;
        let (mut jb, t0) = started(65533, start_ts);
        let mut played = Vec::new();
        for i in 1..20u16 {
            let seq = 65533u16.wrapping_add(i);
            let ts = start_ts.wrapping_add(160 * u32::from(i));
            jb.push(pkt(seq, ts), t0 + Duration::from_millis(20 * u64::from(i)));
            played.push(seq_of(jb.pop()).unwrap());
        }
        let expected: Vec<u16> = (0..19u16).map(|i| 65533u16.wrapping_add(i)).collect();
        assert_eq!(played, expected);
        let s = jb.stats();
        assert_eq!(s.lost, 0);
        assert_eq!(s.highest_seq, 65536 + 16, "extended seq counts one cycle");
    }

    #[test]
    fn reorder_within_window_is_fixed() {
        let mut jb = JitterBuffer::new(JitterConfig::default());
        let t = Instant::now();
        for seq in [0u16, 2, 1, 3, 5, 4] {
            jb.push(pkt(seq, u32::from(seq) * 160), t);
        }
        let mut out = Vec::new();
        for _ in 0..9 {
            if let Some(s) = seq_of(jb.pop()) {
                out.push(s);
            }
        }
        assert_eq!(out, vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(jb.stats().reordered, 2);
        assert_eq!(jb.stats().lost, 0);
    }

    #[test]
    fn duplicates_are_dropped_and_counted() {
        let (mut jb, t0) = started(10, 0);
        assert_eq!(jb.push(pkt(10, 0), t0), PushOutcome::Duplicate);
        assert_eq!(jb.push(pkt(11, 160), t0), PushOutcome::Buffered);
        assert_eq!(jb.push(pkt(11, 160), t0), PushOutcome::Duplicate);
        assert_eq!(seq_of(jb.pop()), Some(10));
        assert_eq!(seq_of(jb.pop()), Some(11));
        // A duplicate of an already played packet is still a duplicate, not "late".
        assert_eq!(jb.push(pkt(10, 0), t0), PushOutcome::Duplicate);
        let s = jb.stats();
        assert_eq!((s.duplicates, s.received, s.late), (3, 2, 0));
    }

    #[test]
    fn loss_is_concealed_and_counted() {
        let (mut jb, t0) = started(0, 0);
        // 1 and 2 never arrive.
        jb.push(pkt(3, 480), t0);
        jb.push(pkt(4, 640), t0);
        let outs: Vec<Playout> = (0..5).map(|_| jb.pop()).collect();
        assert_eq!(seq_of(outs[0].clone()), Some(0));
        assert_eq!(outs[1], Playout::Concealed);
        assert_eq!(outs[2], Playout::Concealed);
        assert_eq!(seq_of(outs[3].clone()), Some(3));
        assert_eq!(seq_of(outs[4].clone()), Some(4));
        let s = jb.stats();
        assert_eq!((s.lost, s.concealed), (2, 2));
        let rr = jb.reception_report().unwrap();
        assert_eq!(rr.cumulative_lost, 2);
        assert_eq!(rr.fraction_lost, (2 * 256 / 5) as u8);
        assert_eq!(rr.highest_seq, 4);
        // Next interval without loss reports fraction 0 but keeps the cumulative count.
        jb.push(pkt(5, 800), t0);
        let rr = jb.reception_report().unwrap();
        assert_eq!((rr.fraction_lost, rr.cumulative_lost), (0, 2));
    }

    #[test]
    fn late_packet_is_dropped() {
        let (mut jb, t0) = started(0, 0);
        jb.push(pkt(2, 320), t0);
        assert_eq!(seq_of(jb.pop()), Some(0));
        assert_eq!(jb.pop(), Playout::Concealed); // slot of 1
        assert_eq!(jb.push(pkt(1, 160), t0), PushOutcome::Late);
        assert_eq!(seq_of(jb.pop()), Some(2));
        let s = jb.stats();
        assert_eq!((s.late, s.lost, s.concealed, s.received), (1, 0, 1, 3));
    }

    #[test]
    fn non_audio_packets_keep_the_timeline() {
        // Audio 0..=2, then an RFC 4733 event using seq 3..=6 (all same timestamp), audio resumes
        // at seq 7 with a timestamp 4 frames later: no loss, no lateness.
        let (mut jb, t0) = started(0, 0);
        jb.push(pkt(1, 160), t0);
        jb.push(pkt(2, 320), t0);
        for seq in 3..=6 {
            assert_eq!(jb.note(seq, 480), PushOutcome::Noted);
        }
        jb.push(pkt(7, 480 + 4 * 160), t0);
        let outs: Vec<Playout> = (0..8).map(|_| jb.pop()).collect();
        let audio: Vec<u16> = outs.iter().cloned().filter_map(seq_of).collect();
        assert_eq!(audio, vec![0, 1, 2, 7]);
        assert_eq!(outs.iter().filter(|p| **p == Playout::Concealed).count(), 4);
        assert_eq!(jb.stats().lost, 0);
    }

    #[test]
    fn overflow_skips_ahead() {
        let (mut jb, t0) = started(0, 0);
        // Sender burst of 40 frames at once: latency is capped at max_depth.
        for i in 1..40u16 {
            jb.push(pkt(i, u32::from(i) * 160), t0);
        }
        let first = seq_of(jb.pop()).unwrap();
        assert!(first >= 40 - 1 - 25, "skipped ahead, first played {first}");
        assert!(jb.stats().overflow_dropped > 0);
    }

    #[test]
    fn jitter_estimate_follows_a8() {
        let mut jb = JitterBuffer::new(JitterConfig::default());
        let t0 = Instant::now();
        // Alternate 0 ms and 10 ms extra delay: |D| = 80 samples each packet after the first.
        for i in 0..200u32 {
            let extra = if i % 2 == 0 { 0 } else { 10 };
            jb.push(
                pkt(i as u16, i * 160),
                t0 + Duration::from_millis(u64::from(i) * 20 + extra),
            );
        }
        let j = jb.stats().jitter;
        assert!((78..=80).contains(&j), "jitter {j}");
    }

    #[test]
    fn sender_restart_is_accepted_after_confirmation() {
        let (mut jb, t0) = started(30000, 0);
        assert_eq!(seq_of(jb.pop()), Some(30000));
        // Two consecutive packets from a far-away sequence number: restart.
        assert_eq!(jb.push(pkt(5, 900_000), t0), PushOutcome::Late);
        assert_eq!(jb.push(pkt(6, 900_160), t0), PushOutcome::Buffered);
        assert_eq!(jb.stats().resyncs, 1);
        assert_eq!((jb.stats().received, jb.stats().lost), (2, 0));
        let mut got = None;
        for _ in 0..5 {
            if let Some(s) = seq_of(jb.pop()) {
                got = Some(s);
                break;
            }
        }
        assert_eq!(got, Some(6));
    }

    #[test]
    fn counters_survive_a_new_stream() {
        let (mut jb, t0) = started(100, 0);
        jb.push(pkt(103, 480), t0); // 101, 102 lost
        jb.reset(); // e.g. SSRC change
        jb.push(pkt(9000, 77), t0);
        jb.push(pkt(9001, 237), t0);
        let s = jb.stats();
        assert_eq!((s.received, s.lost), (4, 2));
        let rr = jb.reception_report().unwrap();
        assert_eq!(
            (rr.cumulative_lost, rr.highest_seq),
            (0, 9001),
            "report block covers the new stream"
        );
    }

    #[test]
    fn concealer_fades_then_silences() {
        let mut c = Concealer::new();
        c.good(&[1000; 160]);
        assert_eq!(c.conceal(160), vec![500; 160]);
        assert_eq!(c.conceal(160), vec![0; 160]);
        c.good(&[10; 160]);
        assert_eq!(c.conceal(160)[0], 5);
    }
}
