//! Standard Webhooks signatures: the one implementation lives in `switchboard_domain::signing`
//! (the agent's webhook tools sign the same way).

pub use switchboard_domain::signing::{secret_key, sign, verify};
