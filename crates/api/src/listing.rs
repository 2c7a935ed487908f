//! Parsing of the calls-list query parameters shared by the dialects, into the domain's
//! `CallListQuery`.

use crate::error::{ApiError, ApiResult};
use crate::extract::QueryMap;
use switchboard_domain::*;

/// The filters every calls listing understands. `number_params` names the parameters that
/// filter on the customer's number (`client_number` for Flyflow, `phone_number` for
/// AgentVoice; /v1 accepts both).
pub fn parse_filter(q: &QueryMap, number_params: &[&str]) -> ApiResult<CallFilter> {
    let mut client_number = None;
    for p in number_params {
        if let Some(v) = q.get(p) {
            client_number = Some(
                PhoneNumber::parse(v)
                    .map_err(|e| ApiError::bad_request(format!("{p}: {}", e.message)))?,
            );
        }
    }
    let f = CallFilter {
        agent_id: q.opt("agent_id", |v| AgentId::parse_param("agent_id", v))?,
        client_number,
        contact_id: q.opt("contact_id", |v| ContactId::parse_param("contact_id", v))?,
        campaign_id: q.opt("campaign_id", |v| CampaignId::parse_param("campaign_id", v))?,
        status: q.opt("status", |v| CallStatus::parse_param("status", v))?,
        call_type: q.opt("call_type", |v| CallType::parse_param("call_type", v))?,
        from: q.opt("from", |v| Timestamp::parse_param("from", v))?,
        to: q.opt("to", |v| Timestamp::parse_param("to", v))?,
    };
    if let (Some(a), Some(b)) = (f.from, f.to) {
        if a > b {
            // Each value is valid, together they select nothing: a 422 (RFC 9110 §15.5.21).
            return Err(ApiError::unprocessable("from must not be later than to"));
        }
    }
    Ok(f)
}

/// The payload shape asked for: `fields` and `include` groups.
#[derive(Debug, Clone, PartialEq)]
pub struct Shape {
    pub fields: Fields,
    pub include: Vec<IncludeGroup>,
}

impl Shape {
    pub fn needs_details(&self) -> bool {
        self.fields == Fields::Full || !self.include.is_empty()
    }
}

pub fn parse_shape(q: &QueryMap) -> ApiResult<Shape> {
    Ok(Shape {
        fields: q
            .opt("fields", |v| Fields::parse_param("fields", v))?
            .unwrap_or(Fields::Light),
        include: q
            .opt("include", IncludeGroup::parse_list)?
            .unwrap_or_default(),
    })
}

pub fn parse_order(q: &QueryMap, default_by: OrderBy) -> ApiResult<(OrderBy, Order)> {
    Ok((
        q.opt("order_by", |v| OrderBy::parse_param("order_by", v))?
            .unwrap_or(default_by),
        q.opt("order", |v| Order::parse_param("order", v))?
            .unwrap_or(Order::Desc),
    ))
}
