//! The voice agent: a conversation engine driven by audio frames, provider events and time.
//!
//! - [`conversation`]: the sans-IO core. Fed caller frames, provider events and the clock, it
//!   answers with actions (play these samples, pause/clear playback, start or cancel a request,
//!   write this turn). Turn-taking, barge-in, silence and latency live here and are unit-tested
//!   on scripted timelines without sockets.
//! - [`driver`]: the thin async layer, one per call, that wires the core to the call's media
//!   and to the providers.
//! - [`providers`]: LLM, STT and TTS clients behind one trait each.
//! - [`vad`] and [`turn`]: voice activity (energy gate + Silero) and end of turn (Smart Turn v3).

pub mod amd;
pub mod analysis;
pub mod conversation;
pub mod driver;
pub mod providers;
mod qdq;
pub mod screening;
pub mod template;
pub mod tools;
pub mod turn;
pub mod vad;
