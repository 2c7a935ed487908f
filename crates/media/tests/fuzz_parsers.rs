//! Property-style robustness test: random and mutated datagrams through every network parser.
//! A fixed-seed PRNG keeps it reproducible; any panic fails the test.

use switchboard_media::dtmf::{DtmfDetector, TelephoneEvent};
use switchboard_media::jitter::{JitterBuffer, JitterConfig, JitterPacket};
use switchboard_media::parse_any;
use switchboard_media::rtcp::{self, ReportBlock, SenderInfo};
use switchboard_media::rtp::{RtpExtension, RtpPacket};

/// SplitMix64: tiny, good enough to generate test inputs.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn seeds() -> Vec<Vec<u8>> {
    let mut full = RtpPacket::new(0, 1, 160, 7, vec![0xFF; 160]);
    full.csrc = vec![1, 2];
    full.extension = Some(RtpExtension {
        profile: 0xBEDE,
        data: vec![1, 2, 3, 4],
    });
    full.padding = 3;
    let block = ReportBlock {
        ssrc: 1,
        fraction_lost: 3,
        cumulative_lost: 5,
        highest_seq: 9,
        jitter: 2,
        last_sr: 0,
        delay_since_last_sr: 0,
    };
    vec![
        RtpPacket::new(8, 65535, u32::MAX, 1, vec![0xD5; 20]).to_bytes(),
        full.to_bytes(),
        rtcp::build_compound(1, Some(&SenderInfo::default()), &[block], "cname@host", true),
        rtcp::build_compound(1, None, &[block, block], "", false),
        TelephoneEvent { event: 11, end: true, volume: 10, duration: 800 }.encode().to_vec(),
        b"Signal=5\r\nDuration=160\r\n".to_vec(),
        b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x40\x1f\x00\x00\x80\x3e\x00\x00\x02\x00\x10\x00data\xff\xff\xff\xff\x01\x02".to_vec(),
    ]
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(0x5EED_0001);
    for _ in 0..200_000 {
        let len = rng.below(96);
        let mut b = rng.bytes(len);
        // Make a good share look like RTP/RTCP version 2 so deeper paths are reached.
        if len > 0 && rng.below(2) == 0 {
            b[0] = 0x80 | (b[0] & 0x3F);
        }
        parse_any(&b);
    }
}

#[test]
fn mutated_valid_packets_never_panic() {
    let mut rng = Rng(0x5EED_0002);
    let seeds = seeds();
    for s in &seeds {
        parse_any(s);
    }
    let mut parsed_ok = 0;
    for _ in 0..200_000 {
        let mut b = seeds[rng.below(seeds.len())].clone();
        for _ in 0..1 + rng.below(4) {
            match rng.below(4) {
                0 if !b.is_empty() => {
                    let i = rng.below(b.len());
                    b[i] ^= 1 << rng.below(8);
                }
                1 if !b.is_empty() => {
                    let i = rng.below(b.len());
                    b[i] = rng.next() as u8;
                }
                2 => b.truncate(rng.below(b.len() + 1)),
                _ => {
                    let n = rng.below(8);
                    b.extend(rng.bytes(n));
                }
            }
        }
        parse_any(&b);
        if let Ok(p) = RtpPacket::parse(&b) {
            parsed_ok += 1;
            // Whatever parses re-serialises to something that parses to the same packet.
            assert_eq!(RtpPacket::parse(&p.to_bytes()).unwrap(), p);
        }
    }
    assert!(
        parsed_ok > 1000,
        "mutations should still often be valid RTP ({parsed_ok})"
    );
}

#[test]
fn random_streams_through_jitter_buffer_and_dtmf_detector() {
    // Arbitrary sequence numbers/timestamps (wraps, jumps, duplicates) must never panic and the
    // buffer must stay bounded.
    let mut rng = Rng(0x5EED_0003);
    let mut jb = JitterBuffer::new(JitterConfig::default());
    let mut det = DtmfDetector::new();
    let t0 = std::time::Instant::now();
    let (mut seq, mut ts) = (rng.next() as u16, rng.next() as u32);
    for i in 0..100_000u64 {
        match rng.below(10) {
            0 => seq = rng.next() as u16,
            1 => ts = rng.next() as u32,
            2 => seq = seq.wrapping_sub(rng.below(5) as u16),
            _ => {
                seq = seq.wrapping_add(1);
                ts = ts.wrapping_add(160);
            }
        }
        let now = t0 + std::time::Duration::from_micros(i * 20_000 + rng.below(30_000) as u64);
        if rng.below(8) == 0 {
            jb.note(seq, ts);
            let n = rng.below(6);
            let _ = det.on_packet(ts, &rng.bytes(n));
        } else {
            let packet = JitterPacket {
                sequence: seq,
                timestamp: ts,
                payload_type: 0,
                marker: false,
                payload: vec![0xFF; 160],
            };
            jb.push(packet, now);
        }
        if rng.below(2) == 0 {
            jb.pop();
        }
        assert!(jb.buffered() <= 200, "buffer grew to {}", jb.buffered());
        if i % 1000 == 0 {
            let _ = jb.reception_report();
        }
    }
}
