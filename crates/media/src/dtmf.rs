//! DTMF: RFC 4733 telephone-event payloads (decode, once-per-event detection, encoding) and the
//! SIP INFO `application/dtmf-relay` body format.

use thiserror::Error;

/// Errors decoding DTMF representations.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DtmfError {
    #[error("telephone-event payload too short: {0} bytes")]
    TooShort(usize),
    #[error("not a DTMF digit: {0:?}")]
    BadDigit(String),
    #[error("dtmf-relay body has no Signal line")]
    NoSignal,
}

/// Map an RFC 4733 §3.2 event code to its character (0-9, *, #, A-D); 16 (flash) and others
/// have no digit.
pub fn event_to_char(event: u8) -> Option<char> {
    match event {
        0..=9 => Some((b'0' + event) as char),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some((b'A' + event - 12) as char),
        _ => None,
    }
}

/// Map a DTMF character to its RFC 4733 §3.2 event code (case-insensitive A-D).
pub fn char_to_event(c: char) -> Option<u8> {
    match c.to_ascii_uppercase() {
        d @ '0'..='9' => Some(d as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        l @ 'A'..='D' => Some(l as u8 - b'A' + 12),
        _ => None,
    }
}

/// One telephone-event payload (RFC 4733 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// Event code (§3.2).
    pub event: u8,
    /// E bit: this is (one of the retransmissions of) the final packet of the event.
    pub end: bool,
    /// Power level in -dBm0, 0..=63 (R bit is reserved and ignored).
    pub volume: u8,
    /// Duration so far, in timestamp units, counted from the event's RTP timestamp.
    pub duration: u16,
}

impl TelephoneEvent {
    /// Decode the first 4-byte event block. Extra bytes are ignored (RFC 2198 redundancy is
    /// not negotiated by us).
    pub fn decode(payload: &[u8]) -> Result<Self, DtmfError> {
        if payload.len() < 4 {
            return Err(DtmfError::TooShort(payload.len()));
        }
        Ok(Self {
            event: payload[0],
            end: payload[1] & 0x80 != 0,
            volume: payload[1] & 0x3F,
            duration: u16::from_be_bytes([payload[2], payload[3]]),
        })
    }

    /// The 4-byte wire form.
    pub fn encode(&self) -> [u8; 4] {
        let d = self.duration.to_be_bytes();
        [
            self.event,
            u8::from(self.end) << 7 | (self.volume & 0x3F),
            d[0],
            d[1],
        ]
    }
}

/// A detected key press.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfDigit {
    /// The digit, or `None` for events without one (e.g. flash, 16).
    pub digit: Option<char>,
    /// RFC 4733 event code.
    pub event: u8,
    /// Duration in timestamp units (the largest seen for the event).
    pub duration: u16,
    /// RTP timestamp identifying the event.
    pub timestamp: u32,
}

/// Turns a stream of telephone-event packets into one [`DtmfDigit`] per event.
///
/// RFC 4733 §2.5.1: all packets of one event carry the same RTP timestamp (the event start), the
/// end packet is sent three times (§2.5.1.4), and updates may be lost or reordered. So an event
/// is identified by its timestamp and reported once, when its first end packet arrives or, if
/// every end packet was lost, when a packet of a newer event shows up (§2.5.2.4 — the receiver
/// must treat the start of a new event as the end of the previous one).
#[derive(Debug, Default)]
pub struct DtmfDetector {
    /// The event in progress and not yet reported.
    current: Option<DtmfDigit>,
    /// Timestamps of recently reported events, so late retransmissions are ignored.
    reported: Vec<u32>,
}

impl DtmfDetector {
    pub fn new() -> Self {
        Self::default()
    }

    fn was_reported(&self, ts: u32) -> bool {
        self.reported.contains(&ts)
    }

    fn mark_reported(&mut self, ts: u32) {
        if self.reported.len() >= 16 {
            self.reported.remove(0);
        }
        self.reported.push(ts);
    }

    /// Feed one telephone-event RTP packet (its timestamp and payload). Returns at most two
    /// digits: a previous event completed implicitly, and/or this one if it ended.
    pub fn on_packet(
        &mut self,
        timestamp: u32,
        payload: &[u8],
    ) -> Result<Vec<DtmfDigit>, DtmfError> {
        let ev = TelephoneEvent::decode(payload)?;
        let mut out = Vec::new();
        if self.was_reported(timestamp) {
            return Ok(out);
        }
        // A packet from an older event (by wrapping timestamp order) than the one in progress is
        // a straggler: ignore it rather than reporting out of order.
        if let Some(cur) = self.current {
            if cur.timestamp != timestamp {
                if (timestamp.wrapping_sub(cur.timestamp) as i32) < 0 {
                    return Ok(out);
                }
                self.current = None;
                self.mark_reported(cur.timestamp);
                out.push(cur);
            }
        }
        let entry = self.current.get_or_insert(DtmfDigit {
            digit: event_to_char(ev.event),
            event: ev.event,
            duration: 0,
            timestamp,
        });
        entry.duration = entry.duration.max(ev.duration);
        if ev.end {
            let done = *entry;
            self.current = None;
            self.mark_reported(timestamp);
            out.push(done);
        }
        Ok(out)
    }

    /// Report an event still in progress (call at the end of the stream).
    pub fn flush(&mut self) -> Option<DtmfDigit> {
        let cur = self.current.take()?;
        self.mark_reported(cur.timestamp);
        Some(cur)
    }
}

/// One RTP packet's worth of a digit being sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventPacket {
    /// Marker bit: set on the first packet of the event (RFC 4733 §2.5.1.2).
    pub marker: bool,
    /// Payload (4 bytes).
    pub payload: [u8; 4],
}

/// Build the packet train for one digit (RFC 4733 §2.5.1): the first packet with the marker
/// bit, one update per `interval` samples with growing duration, then the final packet three
/// times (§2.5.1.4). All packets share the RTP timestamp of the event start, which the sender
/// supplies. `volume` is in -dBm0 (10 is typical).
pub fn encode_digit(
    digit: char,
    duration: u16,
    interval: u16,
    volume: u8,
) -> Result<Vec<EventPacket>, DtmfError> {
    let event = char_to_event(digit).ok_or_else(|| DtmfError::BadDigit(digit.to_string()))?;
    let interval = interval.max(1);
    let duration = duration.max(interval);
    let mut out = Vec::new();
    let mut d = interval;
    loop {
        let end = d >= duration;
        let ev = TelephoneEvent {
            event,
            end,
            volume,
            duration: d.min(duration),
        };
        let payload = ev.encode();
        if end {
            for _ in 0..3 {
                // Only the very first packet of the event carries the marker.
                out.push(EventPacket {
                    marker: out.is_empty(),
                    payload,
                });
            }
            break;
        }
        out.push(EventPacket {
            marker: out.is_empty(),
            payload,
        });
        d = d.saturating_add(interval);
    }
    Ok(out)
}

/// A digit carried in a SIP INFO body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SipInfoDtmf {
    pub digit: char,
    /// Duration in milliseconds, if given.
    pub duration_ms: Option<u32>,
}

/// Parse an `application/dtmf-relay` body ("Signal=5\r\nDuration=160"). Keys are
/// case-insensitive, whitespace and either line ending are tolerated. Besides the characters
/// 0-9 * # A-D, the numeric event codes 10-15 are accepted for * # A-D, as some devices send them.
pub fn parse_dtmf_relay(body: &str) -> Result<SipInfoDtmf, DtmfError> {
    let mut signal = None;
    let mut duration_ms = None;
    for line in body.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim();
        match key.trim().to_ascii_lowercase().as_str() {
            "signal" => {
                let digit = match value.parse::<u8>() {
                    Ok(code @ 10..=15) => event_to_char(code),
                    _ => {
                        let mut chars = value.chars();
                        match (chars.next(), chars.next()) {
                            (Some(c), None) if char_to_event(c).is_some() => {
                                Some(c.to_ascii_uppercase())
                            }
                            _ => None,
                        }
                    }
                };
                signal = Some(digit.ok_or_else(|| DtmfError::BadDigit(value.to_string()))?);
            }
            "duration" => duration_ms = value.parse().ok(),
            _ => {}
        }
    }
    Ok(SipInfoDtmf {
        digit: signal.ok_or(DtmfError::NoSignal)?,
        duration_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_roundtrip_and_known_bytes() {
        // Digit 5, end, volume 10, duration 800 (RFC 4733 §2.3 layout).
        let ev = TelephoneEvent {
            event: 5,
            end: true,
            volume: 10,
            duration: 800,
        };
        assert_eq!(ev.encode(), [5, 0x8A, 0x03, 0x20]);
        assert_eq!(TelephoneEvent::decode(&ev.encode()).unwrap(), ev);
        // Reserved bit is ignored.
        assert_eq!(
            TelephoneEvent::decode(&[11, 0x4A, 0, 160]).unwrap().volume,
            10
        );
        assert_eq!(
            TelephoneEvent::decode(&[1, 2, 3]),
            Err(DtmfError::TooShort(3))
        );
    }

    #[test]
    fn char_mapping() {
        for (c, e) in [
            ('0', 0),
            ('9', 9),
            ('*', 10),
            ('#', 11),
            ('A', 12),
            ('d', 15),
        ] {
            assert_eq!(char_to_event(c), Some(e));
            assert_eq!(event_to_char(e), Some(c.to_ascii_uppercase()));
        }
        assert_eq!(char_to_event('x'), None);
        assert_eq!(event_to_char(16), None);
    }

    fn feed(det: &mut DtmfDetector, ts: u32, packets: &[EventPacket]) -> Vec<DtmfDigit> {
        packets
            .iter()
            .flat_map(|p| det.on_packet(ts, &p.payload).unwrap())
            .collect()
    }

    #[test]
    fn encoder_packet_train() {
        let pk = encode_digit('7', 800, 160, 10).unwrap();
        // 160, 320, 480, 640 updates, then the end (800) three times.
        assert_eq!(pk.len(), 4 + 3);
        assert!(pk[0].marker);
        assert!(pk[1..].iter().all(|p| !p.marker));
        let evs: Vec<_> = pk
            .iter()
            .map(|p| TelephoneEvent::decode(&p.payload).unwrap())
            .collect();
        assert_eq!(
            evs.iter().map(|e| e.duration).collect::<Vec<_>>(),
            vec![160, 320, 480, 640, 800, 800, 800]
        );
        assert_eq!(evs.iter().filter(|e| e.end).count(), 3);
        assert!(encode_digit('x', 800, 160, 10).is_err());
        let short = encode_digit('1', 100, 160, 10).unwrap();
        assert_eq!(short.len(), 3);
        assert!(short[0].marker && !short[1].marker);
    }

    #[test]
    fn detector_reports_each_event_once() {
        let mut det = DtmfDetector::new();
        let mut digits = Vec::new();
        for (i, c) in "12#".chars().enumerate() {
            digits.extend(feed(
                &mut det,
                1000 + i as u32 * 4000,
                &encode_digit(c, 800, 160, 10).unwrap(),
            ));
        }
        assert_eq!(
            digits.iter().map(|d| d.digit.unwrap()).collect::<String>(),
            "12#"
        );
        assert!(digits.iter().all(|d| d.duration == 800));
        // Late retransmission of an old end packet: ignored.
        let again = encode_digit('1', 800, 160, 10).unwrap();
        assert!(feed(&mut det, 1000, &again).is_empty());
        assert_eq!(det.flush(), None);
    }

    #[test]
    fn same_digit_twice_is_two_events() {
        let mut det = DtmfDetector::new();
        let pk = encode_digit('5', 480, 160, 10).unwrap();
        let mut digits = feed(&mut det, 0, &pk);
        digits.extend(feed(&mut det, 2000, &pk));
        assert_eq!(digits.len(), 2);
    }

    #[test]
    fn lost_end_packets_reported_by_next_event() {
        let mut det = DtmfDetector::new();
        let pk = encode_digit('3', 800, 160, 10).unwrap();
        // Only the non-end updates of '3' arrive.
        assert!(feed(&mut det, 0, &pk[..4]).is_empty());
        let d = feed(&mut det, 5000, &encode_digit('4', 320, 160, 10).unwrap());
        assert_eq!(d.iter().map(|d| d.digit.unwrap()).collect::<String>(), "34");
        assert_eq!(d[0].duration, 640);
        // An update without end, flushed at stream end.
        assert!(feed(
            &mut det,
            9000,
            &encode_digit('9', 800, 160, 10).unwrap()[..2]
        )
        .is_empty());
        assert_eq!(det.flush().unwrap().digit, Some('9'));
    }

    #[test]
    fn reordered_end_before_update() {
        let mut det = DtmfDetector::new();
        let pk = encode_digit('8', 640, 160, 10).unwrap();
        assert_eq!(pk.len(), 6);
        let order = vec![pk[0], pk[3], pk[1], pk[2], pk[4], pk[5]];
        let d = feed(&mut det, 77, &order);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].digit, Some('8'));
    }

    #[test]
    fn sip_info_bodies() {
        assert_eq!(
            parse_dtmf_relay("Signal=5\r\nDuration=160\r\n").unwrap(),
            SipInfoDtmf {
                digit: '5',
                duration_ms: Some(160)
            }
        );
        assert_eq!(
            parse_dtmf_relay("signal = #\nduration= 250").unwrap().digit,
            '#'
        );
        assert_eq!(
            parse_dtmf_relay("Signal=*").unwrap(),
            SipInfoDtmf {
                digit: '*',
                duration_ms: None
            }
        );
        assert_eq!(parse_dtmf_relay("Signal=11\r\n").unwrap().digit, '#');
        assert_eq!(parse_dtmf_relay("Signal=b").unwrap().digit, 'B');
        assert_eq!(parse_dtmf_relay("Duration=160"), Err(DtmfError::NoSignal));
        assert!(matches!(
            parse_dtmf_relay("Signal=55"),
            Err(DtmfError::BadDigit(_))
        ));
        assert!(matches!(
            parse_dtmf_relay("Signal=x"),
            Err(DtmfError::BadDigit(_))
        ));
    }
}
