//! `/v1/phone-numbers`: the numbers an organization owns, each optionally bound to the agent
//! that answers it and the trunk that carries it.

use crate::error::{ApiError, ApiResult};
use crate::resource::{required, Obj, Patch, Resource};
use switchboard_domain::{OwnedNumber, OwnedNumberPatch};
use utoipa::ToSchema;

pub(crate) struct Numbers;

impl Resource for Numbers {
    type Entity = OwnedNumber;
    const WHAT: &'static str = "Phone number";
    const ID_PARAM: &'static str = "phone number id";
    const LIST_KEY: &'static str = "phone_numbers";
    const FIELDS: &'static [&'static str] = &["phone_number", "label", "agent_id", "trunk_id"];

    fn patch(o: &Obj) -> ApiResult<OwnedNumberPatch> {
        Ok(OwnedNumberPatch {
            phone_number: match o.phone("phone_number")? {
                Some(None) => return Err(ApiError::bad_request("phone_number must not be null")),
                other => other.flatten(),
            },
            label: o.string("label", 200)?,
            agent_id: o.uuid("agent_id")?,
            trunk_id: o.uuid("trunk_id")?,
        })
    }
    fn check_create(p: &Patch<Self>) -> ApiResult<()> {
        required(
            p.phone_number.as_ref(),
            "phone_number",
            "the E.164 number, e.g. +14155551234",
        )?;
        Ok(())
    }
}

crate::resource::resource_endpoints! {
    resource: Numbers, tag: "phone-numbers", path: "/v1/phone-numbers",
    item: "/v1/phone-numbers/{id}", one: "a" "phone number", many: "phone numbers",
    schema: PhoneNumber, input: PhoneNumberInput, list: PhoneNumberList { phone_numbers },
    handlers: list_numbers, create_number, get_number, update_number, delete_number,
}

// ----- OpenAPI schema -----

#[derive(ToSchema)]
pub struct PhoneNumber {
    pub id: uuid::Uuid,
    /// Stable integer id.
    pub number_id: i64,
    pub phone_number: String,
    pub label: Option<String>,
    pub agent_id: Option<uuid::Uuid>,
    pub trunk_id: Option<uuid::Uuid>,
    pub created_at: String,
}

/// Phone number fields; `phone_number` is required on create.
#[derive(ToSchema)]
pub struct PhoneNumberInput {
    /// E.164.
    #[schema(pattern = r"^\+[1-9][0-9]{7,14}$", nullable = false)]
    pub phone_number: Option<String>,
    #[schema(max_length = 200)]
    pub label: Option<String>,
    /// The agent that answers calls to this number (a 422 if the organization has none
    /// with this id).
    #[schema(
        pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
    pub agent_id: Option<uuid::Uuid>,
    /// The trunk that carries its calls (a 422 if the organization has none with this id).
    #[schema(
        pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
    pub trunk_id: Option<uuid::Uuid>,
}
