//! Switchboard's canonical domain model: pure types and rules, no IO.
//!
//! Every vendor dialect (Flyflow, OmniDimension, AgentVoice, the call resource) is rendered
//! from these types; business rules live here once. Values are parsed, not validated: a
//! `PhoneNumber` or a `CallStatus` that exists is valid.

pub mod analysis;
pub mod call;
pub mod entities;
pub mod error;
pub mod ids;
pub mod phone;
pub mod query;
pub mod signing;
pub mod time;
pub mod tools;

pub use call::*;
pub use entities::*;
pub use error::ParseError;
pub use ids::*;
pub use phone::PhoneNumber;
pub use query::*;
pub use time::Timestamp;
