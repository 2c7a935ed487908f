//! The calls list query as a typed value: filters, order, paging, payload shape.

use crate::call::string_enum;
use crate::{
    AgentId, CallStatus, CallType, CampaignId, ContactId, ParseError, PhoneNumber, Timestamp,
};

string_enum!(OrderBy, "order_by" {
    StartedAt = "started_at",
    EndedAt = "ended_at",
    CreatedAt = "created_at",
});

string_enum!(Order, "order" { Asc = "asc", Desc = "desc" });

string_enum!(Fields, "fields" { Light = "light", Full = "full" });

string_enum!(IncludeGroup, "include" {
    Transcript = "transcript",
    Metrics = "metrics",
    Diagnostics = "diagnostics",
    Actions = "actions",
});

impl IncludeGroup {
    /// Parses a comma-separated list like `transcript,metrics`.
    pub fn parse_list(s: &str) -> Result<Vec<IncludeGroup>, ParseError> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let g = IncludeGroup::parse(part)?;
            if !out.contains(&g) {
                out.push(g);
            }
        }
        Ok(out)
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallFilter {
    pub agent_id: Option<AgentId>,
    /// Matches the customer's number (`client_number`, AgentVoice `phone_number`).
    pub client_number: Option<PhoneNumber>,
    pub contact_id: Option<ContactId>,
    pub campaign_id: Option<CampaignId>,
    pub status: Option<CallStatus>,
    pub call_type: Option<CallType>,
    /// Calls starting at or after this instant (on `started_at`, or `created_at` for calls
    /// not started yet).
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
}

/// The position after the last row of a page: the sort key and the tie-breaker. Encoded into
/// an opaque cursor by the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeysetPosition {
    pub order_by: OrderBy,
    pub order: Order,
    pub key: i64,
    pub seq: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Page {
    /// Keyset paging (Flyflow `cursor`): correct while calls are being inserted.
    After(Option<KeysetPosition>),
    /// Offset paging (AgentVoice `offset`, OmniDimension `pageno`).
    Offset(u64),
}

#[derive(Debug, Clone, PartialEq)]
pub struct CallListQuery {
    pub filter: CallFilter,
    pub order_by: OrderBy,
    pub order: Order,
    pub limit: u32,
    pub page: Page,
    /// Load the heavy details (transcript, analysis...) too.
    pub with_details: bool,
    /// Count all matching rows (offset paging needs `total`).
    pub with_total: bool,
}

/// Parses a page size: an integer in `1..=max`.
pub fn parse_limit(param: &str, s: &str, max: u32) -> Result<u32, ParseError> {
    match s.trim().parse::<i64>() {
        Ok(n) if (1..=max as i64).contains(&n) => Ok(n as u32),
        _ => Err(ParseError::new(format!(
            "{param} must be an integer between 1 and {max}, got {:?}",
            crate::phone::clip(s)
        ))),
    }
}

/// Parses a non-negative integer such as an offset.
pub fn parse_non_negative(param: &str, s: &str) -> Result<u64, ParseError> {
    s.trim().parse::<u64>().map_err(|_| {
        ParseError::new(format!(
            "{param} must be a non-negative integer, got {:?}",
            crate::phone::clip(s)
        ))
    })
}

pub fn parse_bool(param: &str, s: &str) -> Result<bool, ParseError> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" | "" => Ok(false),
        _ => Err(ParseError::new(format!(
            "{param} must be true or false, got {:?}",
            crate::phone::clip(s)
        ))),
    }
}
