//! Switchboard's SIP layer: a compact RFC 3261 user agent (transport,
//! transactions, dialogs, digest auth) and SDP offer/answer (RFC 3264/8866).
//!
//! The engine uses [`SipEndpoint`], [`OutboundInvite`], [`CallHandle`],
//! [`IncomingCall`] and [`sdp`]; the wire-level modules are public for tests and
//! fuzzing ([`parse_message`]).

pub mod call;
pub mod digest;
pub mod endpoint;
pub mod flood;
pub mod message;
pub mod register;
pub mod sdp;
pub mod uri;

pub use call::{CallControl, CallEvent, CallHandle, IncomingCall, OutboundInvite};
pub use endpoint::{EndpointConfig, SipEndpoint, SipError, Target, Timers, Transport};
pub use flood::{FloodGuard, FloodStats, RateLimit};
pub use message::{parse_message, ParseError, SipMessage};
pub use register::{RegisterConfig, Registration, RegistrationState};
