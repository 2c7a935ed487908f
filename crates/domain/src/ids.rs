//! Typed UUID identifiers, so a CallId can never be passed where an AgentId is meant.

use crate::ParseError;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            pub fn new() -> Self {
                Self(Uuid::new_v4())
            }
            /// Parses a client-supplied id; the error names the parameter.
            pub fn parse_param(param: &str, s: &str) -> Result<Self, ParseError> {
                Uuid::parse_str(s.trim()).map(Self).map_err(|_| {
                    ParseError::new(format!(
                        "{param} must be a UUID like 3c90c3cc-0d44-4b50-8888-8dd25736052a, got {:?}",
                        crate::phone::clip(s)
                    ))
                })
            }
        }

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                Self(u)
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = ParseError;
            fn from_str(s: &str) -> Result<Self, ParseError> {
                Self::parse_param($what, s)
            }
        }
    };
}

uuid_id!(
    /// An organization (tenant). Every row in the store belongs to exactly one.
    OrgId, "organization_id");
uuid_id!(CallId, "call id");
uuid_id!(AgentId, "agent_id");
uuid_id!(ContactId, "contact_id");
uuid_id!(PhoneNumberId, "phone_number_id");
uuid_id!(TrunkId, "trunk_id");
uuid_id!(CampaignId, "campaign_id");
