//! `/v1/contacts`: the people an organization calls (a call's `client_number` upserts one).

use crate::error::{ApiError, ApiResult};
use crate::resource::{required, Obj, Patch, Resource};
use switchboard_domain::ContactPatch;
use utoipa::ToSchema;

pub(crate) struct Contacts;

impl Resource for Contacts {
    type Entity = switchboard_domain::Contact;
    const WHAT: &'static str = "Contact";
    const ID_PARAM: &'static str = "contact id";
    const LIST_KEY: &'static str = "contacts";
    const FIELDS: &'static [&'static str] = &[
        "identifier",
        "contact_type",
        "first_name",
        "last_name",
        "email",
    ];

    fn patch(o: &Obj) -> ApiResult<ContactPatch> {
        let email = match o.string("email", 320)? {
            Some(Some(e)) if !e.contains('@') || e.contains(char::is_whitespace) => {
                return Err(ApiError::bad_request(
                    "email must be an address like name@example.com",
                ))
            }
            other => other,
        };
        Ok(ContactPatch {
            identifier: match o.phone("identifier")? {
                Some(None) => return Err(ApiError::bad_request("identifier must not be null")),
                other => other.flatten(),
            },
            contact_type: o.name("contact_type")?,
            first_name: o.string("first_name", 200)?,
            last_name: o.string("last_name", 200)?,
            email,
        })
    }
    fn check_create(p: &Patch<Self>) -> ApiResult<()> {
        required(
            p.identifier.as_ref(),
            "identifier",
            "the contact's E.164 number",
        )?;
        Ok(())
    }
}

crate::resource::resource_endpoints! {
    resource: Contacts, tag: "contacts", path: "/v1/contacts", item: "/v1/contacts/{id}",
    one: "a" "contact", many: "contacts",
    schema: Contact, input: ContactInput, list: ContactList { contacts },
    handlers: list_contacts, create_contact, get_contact, update_contact, delete_contact,
}

// ----- OpenAPI schema -----

#[derive(ToSchema)]
pub struct Contact {
    pub id: uuid::Uuid,
    pub identifier: String,
    pub contact_type: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub created_date: String,
}

/// Contact fields; `identifier` is required on create.
#[derive(ToSchema)]
pub struct ContactInput {
    /// The contact's E.164 number.
    #[schema(pattern = r"^\+[1-9][0-9]{7,14}$", nullable = false)]
    pub identifier: Option<String>,
    #[schema(min_length = 1, max_length = 200, pattern = r"\S", nullable = false)]
    pub contact_type: Option<String>,
    #[schema(max_length = 200)]
    pub first_name: Option<String>,
    #[schema(max_length = 200)]
    pub last_name: Option<String>,
    /// An address like name@example.com: one `@` at least, no spaces.
    #[schema(max_length = 320, pattern = r"^\S*@\S*$")]
    pub email: Option<String>,
}
