//! RTCP (RFC 3550 §6): building compound SR/RR + SDES CNAME (+ BYE) packets and parsing incoming
//! compound packets far enough to validate them and read sender/receiver reports.
//!
//! Parsing never panics; malformed input yields an [`RtcpError`].

use std::time::{SystemTime, UNIX_EPOCH};
use thiserror::Error;

pub const PT_SR: u8 = 200;
pub const PT_RR: u8 = 201;
pub const PT_SDES: u8 = 202;
pub const PT_BYE: u8 = 203;
pub const PT_APP: u8 = 204;
/// SDES item type CNAME (§6.5.1).
const SDES_CNAME: u8 = 1;

/// Why an RTCP packet was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RtcpError {
    #[error("RTCP packet too short")]
    TooShort,
    #[error("unsupported RTCP version {0}")]
    BadVersion(u8),
    #[error("RTCP length field runs past the datagram")]
    BadLength,
    #[error("padding bit set on a packet that is not last, or bad padding count")]
    BadPadding,
    #[error("first packet of a compound must be SR or RR, got {0}")]
    NotReportFirst(u8),
    #[error("report count {count} does not fit packet type {pt}")]
    BadReportCount { pt: u8, count: u8 },
    #[error("malformed SDES chunk")]
    BadSdes,
}

/// One reception report block (§6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    /// The source this block reports on.
    pub ssrc: u32,
    pub fraction_lost: u8,
    /// 24-bit signed on the wire.
    pub cumulative_lost: i32,
    pub highest_seq: u32,
    pub jitter: u32,
    /// Middle 32 bits of the NTP timestamp of the last SR received from `ssrc` (0 if none).
    pub last_sr: u32,
    /// Delay since that SR, in 1/65536 s (0 if none).
    pub delay_since_last_sr: u32,
}

/// Sender information of an SR (§6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SenderInfo {
    /// 64-bit NTP timestamp (seconds since 1900 in the high word, fraction in the low word).
    pub ntp: u64,
    pub rtp_timestamp: u32,
    pub packet_count: u32,
    pub octet_count: u32,
}

/// A parsed RTCP packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtcpPacket {
    SenderReport {
        ssrc: u32,
        info: SenderInfo,
        reports: Vec<ReportBlock>,
    },
    ReceiverReport {
        ssrc: u32,
        reports: Vec<ReportBlock>,
    },
    /// SDES chunks reduced to (SSRC, CNAME if present).
    Sdes(Vec<(u32, Option<String>)>),
    Bye {
        ssrcs: Vec<u32>,
    },
    /// APP or an unknown type: validated for length only.
    Other {
        packet_type: u8,
    },
}

/// Current wall clock as a 64-bit NTP timestamp (§4).
pub fn ntp_now() -> u64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    // 70 years (incl. 17 leap days) between the NTP era (1900) and the Unix epoch.
    let secs = d.as_secs() + 2_208_988_800;
    let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

/// The "middle 32 bits" of an NTP timestamp, as used by LSR (§6.4.1).
pub fn ntp_middle(ntp: u64) -> u32 {
    (ntp >> 16) as u32
}

fn push_header(out: &mut Vec<u8>, count: u8, pt: u8) -> usize {
    let start = out.len();
    out.push(0x80 | (count & 0x1F));
    out.push(pt);
    out.extend_from_slice(&[0, 0]); // length, patched by finish_packet
    start
}

/// Patch the length field: packet length in 32-bit words minus one (§6.4.1).
fn finish_packet(out: &mut [u8], start: usize) {
    let words = ((out.len() - start) / 4 - 1) as u16;
    out[start + 2..start + 4].copy_from_slice(&words.to_be_bytes());
}

fn push_block(out: &mut Vec<u8>, b: &ReportBlock) {
    out.extend_from_slice(&b.ssrc.to_be_bytes());
    out.push(b.fraction_lost);
    let lost = b.cumulative_lost.clamp(-0x80_0000, 0x7F_FFFF) as u32 & 0x00FF_FFFF;
    out.extend_from_slice(&lost.to_be_bytes()[1..]);
    out.extend_from_slice(&b.highest_seq.to_be_bytes());
    out.extend_from_slice(&b.jitter.to_be_bytes());
    out.extend_from_slice(&b.last_sr.to_be_bytes());
    out.extend_from_slice(&b.delay_since_last_sr.to_be_bytes());
}

/// Append a Sender Report (§6.4.1). At most 31 blocks fit the RC field; extra are ignored.
pub fn write_sender_report(
    out: &mut Vec<u8>,
    ssrc: u32,
    info: &SenderInfo,
    reports: &[ReportBlock],
) {
    let reports = &reports[..reports.len().min(31)];
    let start = push_header(out, reports.len() as u8, PT_SR);
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.extend_from_slice(&info.ntp.to_be_bytes());
    out.extend_from_slice(&info.rtp_timestamp.to_be_bytes());
    out.extend_from_slice(&info.packet_count.to_be_bytes());
    out.extend_from_slice(&info.octet_count.to_be_bytes());
    reports.iter().for_each(|b| push_block(out, b));
    finish_packet(out, start);
}

/// Append a Receiver Report (§6.4.2).
pub fn write_receiver_report(out: &mut Vec<u8>, ssrc: u32, reports: &[ReportBlock]) {
    let reports = &reports[..reports.len().min(31)];
    let start = push_header(out, reports.len() as u8, PT_RR);
    out.extend_from_slice(&ssrc.to_be_bytes());
    reports.iter().for_each(|b| push_block(out, b));
    finish_packet(out, start);
}

/// Append an SDES packet with a single chunk carrying CNAME (§6.5, §6.5.1). The CNAME is cut to
/// 255 bytes; the item list is ended by null octets up to the next 32-bit boundary.
pub fn write_sdes_cname(out: &mut Vec<u8>, ssrc: u32, cname: &str) {
    let start = push_header(out, 1, PT_SDES);
    out.extend_from_slice(&ssrc.to_be_bytes());
    let mut name = &cname.as_bytes()[..cname.len().min(255)];
    // Keep it valid UTF-8 on a cut.
    while std::str::from_utf8(name).is_err() {
        name = &name[..name.len() - 1];
    }
    out.push(SDES_CNAME);
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    // At least one null octet terminates the list, then pad to a word boundary.
    out.push(0);
    while !(out.len() - start).is_multiple_of(4) {
        out.push(0);
    }
    finish_packet(out, start);
}

/// Append a BYE for one source (§6.6).
pub fn write_bye(out: &mut Vec<u8>, ssrc: u32) {
    let start = push_header(out, 1, PT_BYE);
    out.extend_from_slice(&ssrc.to_be_bytes());
    finish_packet(out, start);
}

/// A compound packet as §6.1 requires: SR when we have sent data since the last report (else RR),
/// then SDES with CNAME, optionally BYE last.
pub fn build_compound(
    ssrc: u32,
    sender: Option<&SenderInfo>,
    reports: &[ReportBlock],
    cname: &str,
    bye: bool,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    match sender {
        Some(info) => write_sender_report(&mut out, ssrc, info, reports),
        None => write_receiver_report(&mut out, ssrc, reports),
    }
    write_sdes_cname(&mut out, ssrc, cname);
    if bye {
        write_bye(&mut out, ssrc);
    }
    out
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn parse_blocks(body: &[u8], count: usize) -> Vec<ReportBlock> {
    body.chunks_exact(24)
        .take(count)
        .map(|b| {
            // Sign-extend the 24-bit cumulative loss.
            let raw = u32::from_be_bytes([0, b[5], b[6], b[7]]);
            let lost = ((raw << 8) as i32) >> 8;
            ReportBlock {
                ssrc: be32(b, 0),
                fraction_lost: b[4],
                cumulative_lost: lost,
                highest_seq: be32(b, 8),
                jitter: be32(b, 12),
                last_sr: be32(b, 16),
                delay_since_last_sr: be32(b, 20),
            }
        })
        .collect()
}

fn parse_one(pt: u8, count: u8, body: &[u8]) -> Result<RtcpPacket, RtcpError> {
    let bad_count = RtcpError::BadReportCount { pt, count };
    match pt {
        PT_SR => {
            if body.len() < 24 + usize::from(count) * 24 {
                return Err(bad_count);
            }
            let info = SenderInfo {
                ntp: (u64::from(be32(body, 4)) << 32) | u64::from(be32(body, 8)),
                rtp_timestamp: be32(body, 12),
                packet_count: be32(body, 16),
                octet_count: be32(body, 20),
            };
            Ok(RtcpPacket::SenderReport {
                ssrc: be32(body, 0),
                info,
                reports: parse_blocks(&body[24..], count.into()),
            })
        }
        PT_RR => {
            if body.len() < 4 + usize::from(count) * 24 {
                return Err(bad_count);
            }
            Ok(RtcpPacket::ReceiverReport {
                ssrc: be32(body, 0),
                reports: parse_blocks(&body[4..], count.into()),
            })
        }
        PT_SDES => {
            let mut chunks = Vec::new();
            let mut at = 0;
            for _ in 0..count {
                if at + 4 > body.len() {
                    return Err(RtcpError::BadSdes);
                }
                let ssrc = be32(body, at);
                at += 4;
                let mut cname = None;
                loop {
                    let Some(&item) = body.get(at) else {
                        return Err(RtcpError::BadSdes);
                    };
                    if item == 0 {
                        // End of list: skip to the next 32-bit boundary (§6.5).
                        at = (at + 4) & !3;
                        break;
                    }
                    let len = usize::from(*body.get(at + 1).ok_or(RtcpError::BadSdes)?);
                    let text = body.get(at + 2..at + 2 + len).ok_or(RtcpError::BadSdes)?;
                    if item == SDES_CNAME {
                        cname = Some(String::from_utf8_lossy(text).into_owned());
                    }
                    at += 2 + len;
                }
                chunks.push((ssrc, cname));
            }
            Ok(RtcpPacket::Sdes(chunks))
        }
        PT_BYE => {
            if body.len() < usize::from(count) * 4 {
                return Err(bad_count);
            }
            Ok(RtcpPacket::Bye {
                ssrcs: (0..usize::from(count)).map(|i| be32(body, i * 4)).collect(),
            })
        }
        other => Ok(RtcpPacket::Other { packet_type: other }),
    }
}

/// Parse and validate a compound RTCP datagram with the checks of RFC 3550 Appendix A.2:
/// version 2 everywhere, the first packet is SR or RR, only the last packet may be padded, and
/// the length fields add up exactly to the datagram size.
pub fn parse_compound(buf: &[u8]) -> Result<Vec<RtcpPacket>, RtcpError> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < buf.len() {
        let rest = &buf[at..];
        if rest.len() < 4 {
            return Err(RtcpError::TooShort);
        }
        let version = rest[0] >> 6;
        if version != 2 {
            return Err(RtcpError::BadVersion(version));
        }
        let padded = rest[0] & 0x20 != 0;
        let count = rest[0] & 0x1F;
        let pt = rest[1];
        let len = (usize::from(u16::from_be_bytes([rest[2], rest[3]])) + 1) * 4;
        if len > rest.len() {
            return Err(RtcpError::BadLength);
        }
        if out.is_empty() && pt != PT_SR && pt != PT_RR {
            return Err(RtcpError::NotReportFirst(pt));
        }
        let mut body = &rest[4..len];
        if padded {
            let is_last = at + len == buf.len();
            let pad = usize::from(*body.last().ok_or(RtcpError::BadPadding)?);
            if !is_last || pad == 0 || pad > body.len() {
                return Err(RtcpError::BadPadding);
            }
            body = &body[..body.len() - pad];
        }
        out.push(parse_one(pt, count, body)?);
        at += len;
    }
    if out.is_empty() {
        return Err(RtcpError::TooShort);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block() -> ReportBlock {
        ReportBlock {
            ssrc: 0xAABBCCDD,
            fraction_lost: 64,
            cumulative_lost: -3,
            highest_seq: 0x0001_0005,
            jitter: 42,
            last_sr: 0x1234_5678,
            delay_since_last_sr: 65536,
        }
    }

    #[test]
    fn sr_sdes_bye_roundtrip() {
        let info = SenderInfo {
            ntp: ntp_now(),
            rtp_timestamp: 160_000,
            packet_count: 1000,
            octet_count: 160_000,
        };
        let buf = build_compound(7, Some(&info), &[block()], "agent@switchboard", true);
        assert_eq!(buf.len() % 4, 0);
        assert_eq!(buf[1], PT_SR);
        let parsed = parse_compound(&buf).unwrap();
        assert_eq!(parsed.len(), 3);
        assert_eq!(
            parsed[0],
            RtcpPacket::SenderReport {
                ssrc: 7,
                info,
                reports: vec![block()]
            }
        );
        assert_eq!(
            parsed[1],
            RtcpPacket::Sdes(vec![(7, Some("agent@switchboard".into()))])
        );
        assert_eq!(parsed[2], RtcpPacket::Bye { ssrcs: vec![7] });
    }

    #[test]
    fn rr_layout_known_bytes() {
        let mut out = Vec::new();
        write_receiver_report(&mut out, 1, &[block()]);
        // Header: V=2 RC=1, PT=201, length = (8 + 24)/4 - 1 = 7 words.
        assert_eq!(&out[..4], &[0x81, 201, 0, 7]);
        assert_eq!(out.len(), 32);
        // Cumulative lost -3 as 24-bit two's complement.
        assert_eq!(&out[13..16], &[0xFF, 0xFF, 0xFD]);
        let parsed = parse_compound(&out).unwrap();
        assert_eq!(
            parsed,
            vec![RtcpPacket::ReceiverReport {
                ssrc: 1,
                reports: vec![block()]
            }]
        );
    }

    #[test]
    fn sdes_padding_for_every_name_length() {
        for n in 0..12 {
            let name = "x".repeat(n);
            let buf = build_compound(9, None, &[], &name, false);
            assert_eq!(buf.len() % 4, 0);
            let parsed = parse_compound(&buf).unwrap();
            assert_eq!(parsed[1], RtcpPacket::Sdes(vec![(9, Some(name))]));
        }
    }

    #[test]
    fn rejects_malformed() {
        let good = build_compound(9, None, &[block()], "c", false);
        assert_eq!(parse_compound(&[]), Err(RtcpError::TooShort));
        assert_eq!(parse_compound(&good[..3]), Err(RtcpError::TooShort));
        let mut b = good.clone();
        b[0] = 0x41;
        assert_eq!(parse_compound(&b), Err(RtcpError::BadVersion(1)));
        assert_eq!(
            parse_compound(&good[..good.len() - 4]),
            Err(RtcpError::BadLength)
        );
        let mut b = good.clone();
        b.extend_from_slice(&[0x80]);
        assert_eq!(parse_compound(&b), Err(RtcpError::TooShort));
        // SDES first is not a valid compound.
        let mut sdes = Vec::new();
        write_sdes_cname(&mut sdes, 1, "a");
        assert_eq!(
            parse_compound(&sdes),
            Err(RtcpError::NotReportFirst(PT_SDES))
        );
        // RC claims 2 blocks, only 1 present.
        let mut b = good.clone();
        b[0] = 0x82;
        assert_eq!(
            parse_compound(&b),
            Err(RtcpError::BadReportCount {
                pt: PT_RR,
                count: 2
            })
        );
        // Padding on the first (non-last) packet.
        let mut b = good.clone();
        b[0] |= 0x20;
        assert_eq!(parse_compound(&b), Err(RtcpError::BadPadding));
        // SDES item length running past the packet.
        let mut b = good.clone();
        let sdes_at = 32;
        b[sdes_at + 9] = 200;
        assert_eq!(parse_compound(&b), Err(RtcpError::BadSdes));
    }

    #[test]
    fn ntp_helpers() {
        let n = ntp_now();
        // After 2020 and before 2100, in NTP seconds.
        assert!((n >> 32) > 3_786_825_600 && (n >> 32) < 6_311_433_600);
        assert_eq!(ntp_middle(0x1122_3344_5566_7788), 0x3344_5566);
    }
}
