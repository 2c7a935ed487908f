//! The call engine: takes accepted calls off the durable dispatch queue and places them over
//! SIP, answers inbound INVITEs for owned numbers, runs one task per call that drives the SIP
//! dialog and the RTP session (with its recorder), and writes every status transition
//! through the store.
//!
//! Status follows the signalling: INVITE sent → dialing; 200 OK → in_progress; BYE from
//! either side → completed; 486/600/603 and 408/480/487 or ring timeout → no_answer; any other
//! failure → failed; accepted REFER → transferred.
//!
//! Where things are:
//! - `config`: [`EngineConfig`], everything the engine is started with.
//! - `engine`: the [`Engine`] handle, the state its tasks share, and `Engine::start`.
//! - `live`: the table of calls this engine carries (API hang-up and transfer reach a call
//!   through it) and the per-organization cap.
//! - `commands`: hang-up and transfer of a call another engine (replica) carries, through
//!   the `call_commands` table (and NOTIFY on PostgreSQL), and serving those addressed here.
//! - `dispatcher`: the outbound queue → INVITE.
//! - `inbound`: inbound INVITEs → which organization and agent, or a rejection.
//! - `call`: the per-call task (`CallCtx::drive`), shared by both directions; its media
//!   (`call/media.rs`: RTP, recorder, audio metrics) and THE seam to the conversation
//!   (`call/conversation.rs`: what goes to `switchboard_agent::driver::run` and what comes
//!   back).
//! - `registrations`: REGISTER bindings that follow the trunks in the store.
//! - `heartbeat`, `recovery`: this engine's liveness, and closing calls whose engine died.
//! - `upload`: finished recordings to a remote store.
//! - `analysis`: the post-call analysis worker (durable queue → LLM → `call.analyzed`).
//! - `shutdown`: the graceful stop.

mod analysis;
mod call;
mod commands;
mod config;
mod dispatcher;
mod engine;
mod heartbeat;
mod inbound;
mod live;
mod recovery;
mod registrations;
mod shutdown;
mod upload;

pub use config::EngineConfig;
pub use engine::Engine;
pub use switchboard_sip::RegistrationState;
