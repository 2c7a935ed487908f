//! Switchboard's RTP media layer.
//!
//! Protocol cores are sans-IO (bytes and the current time in, bytes and events out):
//! [`g711`], [`rtp`], [`rtcp`], [`jitter`], [`dtmf`]. [`recorder`] encodes the call to MP3 while
//! it runs, [`tts`] wraps espeak-ng, [`audio`] holds analysis helpers for tests, and [`session`]
//! is the thin tokio layer that ties them to UDP sockets.

pub mod audio;
pub mod dtmf;
pub mod g711;
pub mod jitter;
pub mod recorder;
pub mod resample;
pub mod rtcp;
pub mod rtp;
pub mod session;
pub mod tts;

/// Fuzzing entry point: run every parser that sees untrusted network bytes. Must never panic,
/// whatever the input (a cargo-fuzz target calls this).
pub fn parse_any(bytes: &[u8]) {
    let _ = rtp::RtpPacket::parse(bytes);
    let _ = rtcp::parse_compound(bytes);
    let _ = dtmf::TelephoneEvent::decode(bytes);
    if let Ok(text) = std::str::from_utf8(bytes) {
        let _ = dtmf::parse_dtmf_relay(text);
    }
    let _ = tts::parse_wav(bytes);
    if let Ok(p) = rtp::RtpPacket::parse(bytes) {
        // Whatever parses must serialise and parse back to the same packet.
        let again = rtp::RtpPacket::parse(&p.to_bytes());
        debug_assert_eq!(again.as_ref(), Ok(&p));
    }
}
