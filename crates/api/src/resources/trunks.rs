//! `/v1/sip-trunks`: the carriers and PBXs that carry the calls. Their own parts: the password
//! is write-only (shown as `has_password`), each shows its live registration, and every change
//! makes the engine re-register.

use crate::error::{ApiError, ApiResult};
use crate::resource::{required, to_json, Obj, Patch, Resource};
use crate::AppState;
use serde_json::{json, Value};
use switchboard_domain::{Trunk, TrunkPatch};
use utoipa::ToSchema;

pub(crate) struct Trunks;

impl Resource for Trunks {
    type Entity = Trunk;
    const WHAT: &'static str = "SIP trunk";
    const ID_PARAM: &'static str = "trunk id";
    const LIST_KEY: &'static str = "sip_trunks";
    const FIELDS: &'static [&'static str] = &[
        "name",
        "host",
        "port",
        "transport",
        "username",
        "password",
        "default_caller_id",
        "is_default",
        "register",
        "inbound_sources",
    ];

    fn patch(o: &Obj) -> ApiResult<TrunkPatch> {
        let host = match o.string("host", 253)? {
            Some(None) => return Err(ApiError::bad_request("host must not be null")),
            Some(Some(h)) => {
                let h = h.trim().to_string();
                if h.is_empty()
                    || !h.chars().all(|c| {
                        c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']')
                    })
                {
                    return Err(ApiError::bad_request(
                        "host must be a hostname or IP address",
                    ));
                }
                Some(h)
            }
            None => None,
        };
        let transport = match o.string("transport", 8)? {
            Some(Some(t)) => Some(switchboard_domain::Transport::parse_param("transport", &t)?),
            Some(None) => return Err(ApiError::bad_request("transport must be one of udp, tcp")),
            None => None,
        };
        let inbound_sources = match o.0.get("inbound_sources") {
            None | Some(Value::Null) => None,
            Some(Value::Array(a)) => {
                let mut out = Vec::new();
                for v in a {
                    let ip = v
                        .as_str()
                        .and_then(|s| s.trim().parse::<std::net::IpAddr>().ok())
                        .ok_or_else(|| {
                            ApiError::bad_request("inbound_sources must be a list of IP addresses")
                        })?;
                    out.push(ip.to_string());
                }
                Some(out)
            }
            Some(_) => {
                return Err(ApiError::bad_request(
                    "inbound_sources must be a list of IP addresses",
                ))
            }
        };
        Ok(TrunkPatch {
            name: o.name("name")?,
            host,
            port: o.int("port", 1, 65535)?.map(|p| p.unwrap_or(5060) as u16),
            transport,
            username: o.string("username", 200)?,
            password: o.string("password", 200)?,
            default_caller_id: o.phone("default_caller_id")?,
            is_default: o.boolean("is_default")?,
            register: o.boolean("register")?,
            inbound_sources,
        })
    }

    fn check_create(p: &Patch<Self>) -> ApiResult<()> {
        required(p.name.as_ref(), "name", "a name for the trunk")?;
        required(p.host.as_ref(), "host", "the trunk's SIP host name or IP")?;
        Ok(())
    }

    /// Never the password, only whether one is set; and the live state of its registration
    /// when it registers.
    fn render(s: &AppState, t: &Trunk) -> Value {
        let mut v = to_json(t);
        if let Value::Object(m) = &mut v {
            m.insert("has_password".into(), Value::Bool(t.has_password()));
            let reg = s.control.as_ref().map(|c| {
                c.trunk_registration(t.id).unwrap_or_else(|| {
                    // Just created or changed: the engine starts it in the background.
                    let pending = t.register && t.username.is_some() && t.has_password();
                    if pending {
                        json!({"state": "registering"})
                    } else {
                        Value::Null
                    }
                })
            });
            m.insert("registration".into(), reg.unwrap_or(Value::Null));
        }
        v
    }

    fn changed(s: &AppState) {
        if let Some(c) = &s.control {
            c.trunks_changed();
        }
    }
}

crate::resource::resource_endpoints! {
    resource: Trunks, tag: "sip-trunks", path: "/v1/sip-trunks", item: "/v1/sip-trunks/{id}",
    one: "a" "SIP trunk", many: "SIP trunks",
    schema: SipTrunk, input: SipTrunkInput, list: SipTrunkList { sip_trunks },
    handlers: list_trunks, create_trunk, get_trunk, update_trunk, delete_trunk,
}

// ----- OpenAPI schema -----

#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum Transport {
    Udp,
    Tcp,
}

/// A SIP trunk; the password is never shown, only `has_password`.
#[derive(ToSchema)]
pub struct SipTrunk {
    pub id: uuid::Uuid,
    pub name: String,
    pub host: String,
    pub port: u16,
    pub transport: Transport,
    pub username: Option<String>,
    pub default_caller_id: Option<String>,
    pub is_default: bool,
    pub register: bool,
    pub inbound_sources: Vec<String>,
    pub created_at: String,
    pub has_password: bool,
    /// Live state of the registration when `register` is set (and credentials are given):
    /// `{"state": "registering" | "registered" | "failed" | "unregistered", "expires": seconds
    /// granted, "code", "reason" of a failure}`; null when the trunk does not register.
    pub registration: Option<TrunkRegistration>,
}

#[derive(ToSchema)]
pub struct TrunkRegistration {
    pub state: String,
    pub expires: Option<u32>,
    pub code: Option<u16>,
    pub reason: Option<String>,
}

/// SIP trunk fields; `name` and `host` are required on create.
#[derive(ToSchema)]
pub struct SipTrunkInput {
    #[schema(min_length = 1, max_length = 200, pattern = r"\S", nullable = false)]
    pub name: Option<String>,
    /// Hostname or IP address.
    #[schema(
        min_length = 1,
        max_length = 253,
        pattern = r"^[A-Za-z0-9.:\[\]-]+$",
        nullable = false
    )]
    pub host: Option<String>,
    /// Default 5060 (null sets the default back).
    #[schema(minimum = 1, maximum = 65535)]
    pub port: Option<i64>,
    #[schema(nullable = false)]
    pub transport: Option<Transport>,
    #[schema(max_length = 200)]
    pub username: Option<String>,
    /// Write-only: never shown (see `has_password`).
    #[schema(max_length = 200, write_only)]
    pub password: Option<String>,
    /// E.164.
    #[schema(pattern = r"^\+[1-9][0-9]{7,14}$")]
    pub default_caller_id: Option<String>,
    pub is_default: Option<bool>,
    pub register: Option<bool>,
    /// IP addresses (v4 or v6) allowed to send inbound calls.
    #[schema(value_type = Option<Vec<String>>)]
    pub inbound_sources: Option<Vec<String>>,
}

/// `SipTrunkInput.inbound_sources` as JSON Schema (see `openapi::raw_parts`).
pub(crate) fn ip_list() -> Value {
    json!({"oneOf": [
        {"type": "array", "items": {"type": "string", "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]}},
        {"type": "null"}
    ]})
}
