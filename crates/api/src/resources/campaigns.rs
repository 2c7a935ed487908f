//! `/v1/campaigns`: groups of calls, optionally with the agent that places them.

use crate::error::{ApiError, ApiResult};
use crate::resource::{required, Obj, Patch, Resource};
use switchboard_domain::CampaignPatch;
use utoipa::ToSchema;

pub(crate) struct Campaigns;

impl Resource for Campaigns {
    type Entity = switchboard_domain::Campaign;
    const WHAT: &'static str = "Campaign";
    const ID_PARAM: &'static str = "campaign id";
    const LIST_KEY: &'static str = "campaigns";
    const FIELDS: &'static [&'static str] = &["name", "agent_id", "status"];

    fn patch(o: &Obj) -> ApiResult<CampaignPatch> {
        Ok(CampaignPatch {
            name: o.name("name")?,
            agent_id: o.uuid("agent_id")?,
            status: match o.string("status", 32)? {
                Some(Some(v)) => Some(switchboard_domain::CampaignStatus::parse_param(
                    "status", &v,
                )?),
                Some(None) => {
                    return Err(ApiError::bad_request(
                        "status must be one of draft, active, paused, completed",
                    ))
                }
                None => None,
            },
        })
    }
    fn check_create(p: &Patch<Self>) -> ApiResult<()> {
        required(p.name.as_ref(), "name", "the campaign's name")?;
        Ok(())
    }
}

crate::resource::resource_endpoints! {
    resource: Campaigns, tag: "campaigns", path: "/v1/campaigns", item: "/v1/campaigns/{id}",
    one: "a" "campaign", many: "campaigns",
    schema: Campaign, input: CampaignInput, list: CampaignList { campaigns },
    handlers: list_campaigns, create_campaign, get_campaign, update_campaign, delete_campaign,
}

// ----- OpenAPI schema -----

#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum CampaignStatus {
    Draft,
    Active,
    Paused,
    Completed,
}

#[derive(ToSchema)]
pub struct Campaign {
    pub id: uuid::Uuid,
    pub name: String,
    pub agent_id: Option<uuid::Uuid>,
    pub status: CampaignStatus,
    pub created_at: String,
}

/// Campaign fields; `name` is required on create.
#[derive(ToSchema)]
pub struct CampaignInput {
    #[schema(min_length = 1, max_length = 200, pattern = r"\S", nullable = false)]
    pub name: Option<String>,
    /// The agent that places its calls (a 422 if the organization has none with this id).
    #[schema(
        pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
    pub agent_id: Option<uuid::Uuid>,
    #[schema(nullable = false)]
    pub status: Option<CampaignStatus>,
}
