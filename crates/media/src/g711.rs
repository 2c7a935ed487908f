//! ITU-T G.711 companding: PCMU (mu-law, RTP payload type 0) and PCMA (A-law, payload type 8),
//! see RFC 3551 §4.5.14. Encoding follows the classic reference algorithm (Sun Microsystems'
//! public-domain `g711.c`, which matches the ITU tables); decoding is a 256-entry table built at
//! compile time, because decode runs for every received sample and a lookup is the cheapest form.

/// mu-law bias added before finding the segment (G.711 §2, 0x84 = 33 << 2 in 16-bit scale).
const ULAW_BIAS: i32 = 0x84;
/// Largest magnitude that still fits the top mu-law segment after biasing.
const ULAW_CLIP: i32 = 32635;

/// Encode one 16-bit linear sample to mu-law.
#[inline]
pub fn linear_to_ulaw(sample: i16) -> u8 {
    let mut pcm = i32::from(sample);
    let sign = if pcm < 0 {
        pcm = -pcm;
        0x80
    } else {
        0
    };
    pcm = pcm.min(ULAW_CLIP) + ULAW_BIAS;
    // pcm is in [132, 32767]: the segment (exponent) is the position of the top bit minus 7.
    let exponent = (31 - pcm.leading_zeros() as i32) - 7;
    let mantissa = (pcm >> (exponent + 3)) & 0x0F;
    // G.711 transmits mu-law codes bit-inverted.
    !((sign | (exponent << 4) | mantissa) as u8)
}

/// Encode one 16-bit linear sample to A-law.
#[inline]
pub fn linear_to_alaw(sample: i16) -> u8 {
    // A-law works on 13-bit magnitudes.
    let mut pcm = i32::from(sample) >> 3;
    let mask = if pcm >= 0 {
        0xD5
    } else {
        // One's complement for negatives, as in the reference encoder.
        pcm = -pcm - 1;
        0x55
    };
    // Segment end points (13-bit) of the 8 A-law segments.
    const SEG_END: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];
    let seg = SEG_END.iter().position(|&end| pcm <= end).unwrap_or(8) as i32;
    if seg >= 8 {
        return (0x7F ^ mask) as u8;
    }
    let mut aval = seg << 4;
    aval |= if seg < 2 {
        (pcm >> 1) & 0x0F
    } else {
        (pcm >> seg) & 0x0F
    };
    // Even bits are inverted on the line (XOR 0x55), sign bit set for positive values.
    (aval ^ mask) as u8
}

const fn ulaw_decode_slow(code: u8) -> i16 {
    let u = !code;
    let t = ((((u & 0x0F) as i32) << 3) + ULAW_BIAS) << ((u & 0x70) >> 4);
    if u & 0x80 != 0 {
        (ULAW_BIAS - t) as i16
    } else {
        (t - ULAW_BIAS) as i16
    }
}

const fn alaw_decode_slow(code: u8) -> i16 {
    let a = code ^ 0x55;
    let mut t = ((a & 0x0F) as i32) << 4;
    let seg = ((a & 0x70) >> 4) as i32;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= seg - 1;
        }
    }
    if a & 0x80 != 0 {
        t as i16
    } else {
        -t as i16
    }
}

const fn build_table(alaw: bool) -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = if alaw {
            alaw_decode_slow(i as u8)
        } else {
            ulaw_decode_slow(i as u8)
        };
        i += 1;
    }
    table
}

static ULAW_TABLE: [i16; 256] = build_table(false);
static ALAW_TABLE: [i16; 256] = build_table(true);

/// Decode one mu-law code to 16-bit linear.
#[inline]
pub fn ulaw_to_linear(code: u8) -> i16 {
    ULAW_TABLE[code as usize]
}

/// Decode one A-law code to 16-bit linear.
#[inline]
pub fn alaw_to_linear(code: u8) -> i16 {
    ALAW_TABLE[code as usize]
}

/// The two G.711 laws, identified by their static RTP payload types (RFC 3551 table 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum G711 {
    /// mu-law, payload type 0.
    Pcmu,
    /// A-law, payload type 8.
    Pcma,
}

impl G711 {
    /// Map a static payload type to the codec (0 = PCMU, 8 = PCMA).
    pub fn from_payload_type(pt: u8) -> Option<Self> {
        match pt {
            0 => Some(Self::Pcmu),
            8 => Some(Self::Pcma),
            _ => None,
        }
    }

    /// The static RTP payload type of this codec.
    pub fn payload_type(self) -> u8 {
        match self {
            Self::Pcmu => 0,
            Self::Pcma => 8,
        }
    }

    /// Encode samples, appending one byte per sample to `out`.
    pub fn encode_into(self, samples: &[i16], out: &mut Vec<u8>) {
        out.reserve(samples.len());
        match self {
            Self::Pcmu => out.extend(samples.iter().map(|&s| linear_to_ulaw(s))),
            Self::Pcma => out.extend(samples.iter().map(|&s| linear_to_alaw(s))),
        }
    }

    /// Encode samples to a new buffer.
    pub fn encode(self, samples: &[i16]) -> Vec<u8> {
        let mut out = Vec::with_capacity(samples.len());
        self.encode_into(samples, &mut out);
        out
    }

    /// Decode bytes, appending one sample per byte to `out`.
    pub fn decode_into(self, bytes: &[u8], out: &mut Vec<i16>) {
        let table = match self {
            Self::Pcmu => &ULAW_TABLE,
            Self::Pcma => &ALAW_TABLE,
        };
        out.extend(bytes.iter().map(|&b| table[b as usize]));
    }

    /// Decode bytes to a new buffer.
    pub fn decode(self, bytes: &[u8]) -> Vec<i16> {
        let mut out = Vec::with_capacity(bytes.len());
        self.decode_into(bytes, &mut out);
        out
    }

    /// The code for digital silence (what an idle line carries).
    pub fn silence_byte(self) -> u8 {
        match self {
            Self::Pcmu => linear_to_ulaw(0),
            Self::Pcma => linear_to_alaw(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulaw_known_values() {
        // Values from the G.711 mu-law table (16-bit scale).
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(ulaw_to_linear(0xFF), 0);
        assert_eq!(ulaw_to_linear(0x7F), 0); // "negative zero"
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(linear_to_ulaw(i16::MAX), 0x80);
        assert_eq!(linear_to_ulaw(i16::MIN), 0x00);
        assert_eq!(linear_to_ulaw(-1), 0x7F);
        assert_eq!(ulaw_to_linear(0xF0), 120);
    }

    #[test]
    fn alaw_known_values() {
        assert_eq!(linear_to_alaw(0), 0xD5);
        assert_eq!(alaw_to_linear(0xD5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
        assert_eq!(alaw_to_linear(0xAA), 32256);
        assert_eq!(alaw_to_linear(0x2A), -32256);
        assert_eq!(linear_to_alaw(i16::MAX), 0xAA);
        assert_eq!(linear_to_alaw(i16::MIN), 0x2A);
    }

    #[test]
    fn table_matches_reference_decoder() {
        for c in 0..=255u8 {
            assert_eq!(ulaw_to_linear(c), ulaw_decode_slow(c));
            assert_eq!(alaw_to_linear(c), alaw_decode_slow(c));
        }
    }

    #[test]
    fn roundtrip_error_is_bounded_by_segment_step() {
        // Logarithmic companding: the error grows with magnitude, about 1/32 of it for mu-law
        // (4-bit mantissa, rounding to the segment step) and similar for A-law.
        for s in i16::MIN..=i16::MAX {
            let x = i32::from(s);
            let mag = x.abs();
            let u = i32::from(ulaw_to_linear(linear_to_ulaw(s)));
            let a = i32::from(alaw_to_linear(linear_to_alaw(s)));
            // Top of range clips at the largest code (32124 / 32256).
            let u_bound = (mag + ULAW_BIAS) / 16 + 1 + (mag - 32124).max(0);
            let a_bound = mag / 16 + 16 + (mag - 32256).max(0);
            assert!((u - x).abs() <= u_bound, "ulaw {s} -> {u}");
            assert!((a - x).abs() <= a_bound, "alaw {s} -> {a}");
            // Sign is preserved (or the value decodes to a near-zero code).
            assert!(
                u == 0 || (u > 0) == (x > 0) || mag < 8,
                "ulaw sign {s} -> {u}"
            );
            assert!((a > 0) == (x >= 0), "alaw sign {s} -> {a}");
        }
    }

    #[test]
    fn decoded_values_are_fixed_points() {
        // Encoding a decoded value must give back the same code (except mu-law's -0).
        for c in 0..=255u8 {
            if c != 0x7F {
                assert_eq!(linear_to_ulaw(ulaw_to_linear(c)), c, "ulaw code {c:#x}");
            }
            assert_eq!(linear_to_alaw(alaw_to_linear(c)), c, "alaw code {c:#x}");
        }
    }

    #[test]
    fn codec_helpers() {
        let samples: Vec<i16> = (0..160)
            .map(|i| ((i * 397) % 20000 - 10000) as i16)
            .collect();
        for codec in [G711::Pcmu, G711::Pcma] {
            let bytes = codec.encode(&samples);
            assert_eq!(bytes.len(), 160);
            let back = codec.decode(&bytes);
            assert_eq!(back.len(), 160);
            assert_eq!(G711::from_payload_type(codec.payload_type()), Some(codec));
            assert_eq!(
                codec.decode(&[codec.silence_byte()])[0].abs(),
                if codec == G711::Pcmu { 0 } else { 8 }
            );
        }
        assert_eq!(G711::from_payload_type(18), None);
    }
}
