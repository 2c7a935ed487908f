//! RTP fixed header, CSRC list, header extension and padding (RFC 3550 §5.1, §5.3.1).
//!
//! Parsing never panics: every length is checked against the buffer before it is used, and a
//! malformed packet yields an [`RtpError`] saying what was wrong.

use thiserror::Error;

/// Size of the fixed RTP header (RFC 3550 §5.1).
pub const RTP_HEADER_LEN: usize = 12;

/// Why an RTP packet was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RtpError {
    /// Shorter than the 12-byte fixed header.
    #[error("packet too short: {len} bytes")]
    TooShort { len: usize },
    /// The version field is not 2 (RFC 3550 §5.1 "version (V): 2 bits").
    #[error("unsupported RTP version {0}")]
    BadVersion(u8),
    /// The CSRC count promises more identifiers than the packet holds.
    #[error("CSRC list of {count} entries does not fit in {len} bytes")]
    CsrcOverflow { count: usize, len: usize },
    /// The extension header (RFC 3550 §5.3.1) is truncated or its length runs past the end.
    #[error("header extension does not fit in the packet")]
    ExtensionOverflow,
    /// The padding count (last octet, RFC 3550 §5.1 "padding (P)") is zero or exceeds the payload.
    #[error("invalid padding length {padding} with {available} bytes after the header")]
    BadPadding { padding: usize, available: usize },
    /// The payload type lies in the RTCP range 72..=76 (SR..APP with marker set), i.e. this is
    /// RTCP that arrived on the RTP path (RFC 5761 §4).
    #[error("payload type {0} collides with RTCP packet types")]
    RtcpPayloadType(u8),
}

/// An RTP header extension (RFC 3550 §5.3.1): 16-bit profile-defined value plus data words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpExtension {
    /// "defined by profile" field.
    pub profile: u16,
    /// Extension data; its length is a multiple of 4 on the wire.
    pub data: Vec<u8>,
}

/// A parsed (or to-be-sent) RTP packet. The payload excludes any padding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpPacket {
    /// Marker bit; for audio it flags the first packet of a talkspurt (RFC 3551 §4.1).
    pub marker: bool,
    /// 7-bit payload type.
    pub payload_type: u8,
    /// Sequence number (increments by one per packet, wraps at 2^16).
    pub sequence: u16,
    /// Sampling instant of the first octet of the payload, in clock-rate units.
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
    /// Contributing sources (at most 15).
    pub csrc: Vec<u32>,
    /// Optional header extension.
    pub extension: Option<RtpExtension>,
    /// Number of padding octets (including the count octet) to emit when serialising; on parse,
    /// the number that were stripped. 0 = no padding.
    pub padding: u8,
    /// The payload.
    pub payload: Vec<u8>,
}

impl RtpPacket {
    /// A simple packet with no CSRC, extension or padding.
    pub fn new(
        payload_type: u8,
        sequence: u16,
        timestamp: u32,
        ssrc: u32,
        payload: Vec<u8>,
    ) -> Self {
        Self {
            marker: false,
            payload_type: payload_type & 0x7F,
            sequence,
            timestamp,
            ssrc,
            csrc: Vec::new(),
            extension: None,
            padding: 0,
            payload,
        }
    }

    /// Parse and validate a packet (RFC 3550 §5.1 layout; validity checks of Appendix A.1 that
    /// apply to a single packet).
    pub fn parse(buf: &[u8]) -> Result<Self, RtpError> {
        if buf.len() < RTP_HEADER_LEN {
            return Err(RtpError::TooShort { len: buf.len() });
        }
        let b0 = buf[0];
        let version = b0 >> 6;
        if version != 2 {
            return Err(RtpError::BadVersion(version));
        }
        let has_padding = b0 & 0x20 != 0;
        let has_extension = b0 & 0x10 != 0;
        let cc = usize::from(b0 & 0x0F);
        let marker = buf[1] & 0x80 != 0;
        let payload_type = buf[1] & 0x7F;
        // RFC 5761 §4: values 64..=95 of the second octet (without marker) belong to RTCP when
        // multiplexed; 72..=76 are the ones real RTCP packets (200..=204) produce.
        if (72..=76).contains(&payload_type) {
            return Err(RtpError::RtcpPayloadType(payload_type));
        }
        let sequence = u16::from_be_bytes([buf[2], buf[3]]);
        let timestamp = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
        let ssrc = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);

        let mut offset = RTP_HEADER_LEN;
        let csrc_end = offset + cc * 4;
        if csrc_end > buf.len() {
            return Err(RtpError::CsrcOverflow {
                count: cc,
                len: buf.len(),
            });
        }
        let csrc = buf[offset..csrc_end]
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        offset = csrc_end;

        let extension = if has_extension {
            // §5.3.1: 16-bit profile value, 16-bit length in 32-bit words (excluding this word).
            if offset + 4 > buf.len() {
                return Err(RtpError::ExtensionOverflow);
            }
            let profile = u16::from_be_bytes([buf[offset], buf[offset + 1]]);
            let words = usize::from(u16::from_be_bytes([buf[offset + 2], buf[offset + 3]]));
            let start = offset + 4;
            let end = start + words * 4;
            if end > buf.len() {
                return Err(RtpError::ExtensionOverflow);
            }
            offset = end;
            Some(RtpExtension {
                profile,
                data: buf[start..end].to_vec(),
            })
        } else {
            None
        };

        let mut end = buf.len();
        let mut padding = 0u8;
        if has_padding {
            // §5.1: the last octet counts the padding octets including itself, so it must be at
            // least 1 and must not eat into the header.
            let count = usize::from(buf[buf.len() - 1]);
            let available = buf.len() - offset;
            if count == 0 || count > available {
                return Err(RtpError::BadPadding {
                    padding: count,
                    available,
                });
            }
            end -= count;
            padding = count as u8;
        }

        Ok(Self {
            marker,
            payload_type,
            sequence,
            timestamp,
            ssrc,
            csrc,
            extension,
            padding,
            payload: buf[offset..end].to_vec(),
        })
    }

    /// Serialised length in bytes.
    pub fn wire_len(&self) -> usize {
        RTP_HEADER_LEN
            + self.csrc.len().min(15) * 4
            + self
                .extension
                .as_ref()
                .map_or(0, |e| 4 + e.data.len().div_ceil(4) * 4)
            + self.payload.len()
            + usize::from(self.padding)
    }

    /// Append the wire form to `out`. At most 15 CSRCs are written (the field is 4 bits);
    /// extension data is zero-padded to a 32-bit boundary as §5.3.1 requires.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.reserve(self.wire_len());
        let cc = self.csrc.len().min(15);
        let mut b0 = 2u8 << 6 | cc as u8;
        if self.padding > 0 {
            b0 |= 0x20;
        }
        if self.extension.is_some() {
            b0 |= 0x10;
        }
        out.push(b0);
        out.push(u8::from(self.marker) << 7 | (self.payload_type & 0x7F));
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        for c in &self.csrc[..cc] {
            out.extend_from_slice(&c.to_be_bytes());
        }
        if let Some(ext) = &self.extension {
            let words = ext.data.len().div_ceil(4);
            out.extend_from_slice(&ext.profile.to_be_bytes());
            out.extend_from_slice(&(words.min(u16::MAX as usize) as u16).to_be_bytes());
            out.extend_from_slice(&ext.data);
            out.resize(out.len() + (words * 4 - ext.data.len()), 0);
        }
        out.extend_from_slice(&self.payload);
        if self.padding > 0 {
            out.resize(out.len() + usize::from(self.padding) - 1, 0);
            out.push(self.padding);
        }
    }

    /// The wire form as a new buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.wire_len());
        self.write_to(&mut out);
        out
    }
}

/// True if the datagram looks like RTCP rather than RTP, by the second octet (RFC 5761 §4:
/// RTCP packet types 192..=223 never clash with dynamic RTP payload types).
pub fn looks_like_rtcp(buf: &[u8]) -> bool {
    buf.len() >= 2 && (192..=223).contains(&buf[1])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RtpPacket {
        let mut p = RtpPacket::new(0, 65535, 0xDEADBEEF, 0x12345678, vec![1, 2, 3, 4, 5]);
        p.marker = true;
        p
    }

    #[test]
    fn roundtrip_basic() {
        let p = sample();
        let bytes = p.to_bytes();
        assert_eq!(bytes.len(), 17);
        assert_eq!(bytes[0], 0x80);
        assert_eq!(bytes[1], 0x80);
        assert_eq!(RtpPacket::parse(&bytes).unwrap(), p);
    }

    #[test]
    fn roundtrip_full() {
        let mut p = sample();
        p.csrc = vec![1, 2, 3];
        p.extension = Some(RtpExtension {
            profile: 0xBEDE,
            data: vec![9, 8, 7, 6, 5, 4, 3, 2],
        });
        p.padding = 4;
        let bytes = p.to_bytes();
        assert_eq!(bytes.len(), p.wire_len());
        assert_eq!(bytes.len(), 12 + 12 + 4 + 8 + 5 + 4);
        assert_eq!(RtpPacket::parse(&bytes).unwrap(), p);
    }

    #[test]
    fn known_bytes() {
        // V=2, PT=8, seq=1, ts=160, ssrc=0x01020304, payload d5 d5.
        let bytes = [0x80, 0x08, 0x00, 0x01, 0, 0, 0, 160, 1, 2, 3, 4, 0xd5, 0xd5];
        let p = RtpPacket::parse(&bytes).unwrap();
        assert_eq!(
            (p.payload_type, p.sequence, p.timestamp, p.ssrc),
            (8, 1, 160, 0x01020304)
        );
        assert!(!p.marker);
        assert_eq!(p.payload, vec![0xd5, 0xd5]);
    }

    #[test]
    fn rejects_malformed() {
        assert_eq!(
            RtpPacket::parse(&[0x80; 11]),
            Err(RtpError::TooShort { len: 11 })
        );
        let mut b = sample().to_bytes();
        b[0] = 0x40 | (b[0] & 0x3F);
        assert_eq!(RtpPacket::parse(&b), Err(RtpError::BadVersion(1)));

        let mut b = sample().to_bytes();
        b[0] |= 0x0F; // 15 CSRCs promised, 5 payload bytes present
        assert!(matches!(
            RtpPacket::parse(&b),
            Err(RtpError::CsrcOverflow { count: 15, .. })
        ));

        let mut b = sample().to_bytes();
        b[0] |= 0x10; // extension flag but only 5 bytes follow with a huge length
        b[12] = 0;
        b[13] = 0;
        b[14] = 0xFF;
        b[15] = 0xFF;
        assert_eq!(RtpPacket::parse(&b), Err(RtpError::ExtensionOverflow));
        let mut b = vec![0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xBE];
        assert_eq!(RtpPacket::parse(&b), Err(RtpError::ExtensionOverflow));
        b.truncate(12);
        assert_eq!(RtpPacket::parse(&b), Err(RtpError::ExtensionOverflow));

        let mut b = sample().to_bytes();
        b[0] |= 0x20;
        *b.last_mut().unwrap() = 0;
        assert!(matches!(
            RtpPacket::parse(&b),
            Err(RtpError::BadPadding { padding: 0, .. })
        ));
        *b.last_mut().unwrap() = 6; // only 5 bytes after the header
        assert!(matches!(
            RtpPacket::parse(&b),
            Err(RtpError::BadPadding {
                padding: 6,
                available: 5
            })
        ));
        *b.last_mut().unwrap() = 5; // whole payload is padding: valid, empty payload
        assert!(RtpPacket::parse(&b).unwrap().payload.is_empty());
    }

    #[test]
    fn rtcp_is_not_rtp() {
        let rr = [0x80, 201, 0, 1, 0, 0, 0, 1];
        assert!(looks_like_rtcp(&rr));
        let mut b = rr.to_vec();
        b.extend_from_slice(&[0; 8]);
        assert_eq!(RtpPacket::parse(&b), Err(RtpError::RtcpPayloadType(73)));
        assert!(!looks_like_rtcp(&sample().to_bytes()));
    }
}
