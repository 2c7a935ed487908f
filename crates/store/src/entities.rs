//! Agents, phone numbers, SIP trunks, contacts and campaigns: each states its table, its
//! columns and its patch rules as an [`Entity`]; reading, paging and writing them is the
//! generic code in `entity.rs`. The named methods at the end are what the rest of the code
//! calls them by.

use crate::entity::{Entity, Val};
use crate::read::{Cols, Params};
use crate::row::{self, json_text};
use crate::{Store, StoreError};
use switchboard_domain::*;

/// Applies one field of a patch: `None` leaves the field as it is.
fn set<T>(slot: &mut T, v: Option<T>) {
    if let Some(v) = v {
        *slot = v;
    }
}

impl Entity for Agent {
    const TABLE: &'static str = "agents";
    type Id = AgentId;
    type Patch = AgentPatch;

    fn key(&self) -> (OrgId, AgentId) {
        (self.org_id, self.id)
    }
    fn from_row(r: &dyn Cols) -> Result<Self, StoreError> {
        Ok(Agent {
            id: row::uuid(r, "id")?,
            number: row::i(r, "seq")?,
            org_id: row::uuid(r, "org_id")?,
            name: row::s(r, "name")?,
            system_prompt: row::os(r, "system_prompt")?,
            initial_message: row::os(r, "initial_message")?,
            voice: row::os(r, "voice")?,
            language: row::os(r, "language")?,
            llm_model: row::os(r, "llm_model")?,
            webhook_url: row::os(r, "webhook_url")?,
            max_duration_seconds: row::oi(r, "max_duration_seconds")?,
            ring_timeout_seconds: row::oi(r, "ring_timeout_seconds")?,
            settings: row::ojson(r, "settings")?,
            tools: row::ojson(r, "tools")?,
            voicemail: row::ojson(r, "voicemail")?,
            success_criteria: row::os(r, "success_criteria")?,
            analysis_schema: row::ojson(r, "analysis_schema")?,
            analysis_questions: row::ojson(r, "analysis_questions")?,
            created_at: row::ts(r, "created_at")?,
            updated_at: row::ts(r, "updated_at")?,
        })
    }
    fn new(org: OrgId, patch: AgentPatch) -> Result<Self, StoreError> {
        let now = Timestamp::now();
        let mut a = Agent {
            id: AgentId::new(),
            number: 0,
            org_id: org,
            name: String::new(),
            system_prompt: None,
            initial_message: None,
            voice: None,
            language: None,
            llm_model: None,
            webhook_url: None,
            max_duration_seconds: None,
            ring_timeout_seconds: None,
            settings: None,
            tools: None,
            voicemail: None,
            success_criteria: None,
            analysis_schema: None,
            analysis_questions: None,
            created_at: now,
            updated_at: now,
        };
        a.apply(patch);
        Ok(a)
    }
    fn apply(&mut self, p: AgentPatch) {
        set(&mut self.name, p.name);
        set(&mut self.system_prompt, p.system_prompt);
        set(&mut self.initial_message, p.initial_message);
        set(&mut self.voice, p.voice);
        set(&mut self.language, p.language);
        set(&mut self.llm_model, p.llm_model);
        set(&mut self.webhook_url, p.webhook_url);
        set(&mut self.max_duration_seconds, p.max_duration_seconds);
        set(&mut self.ring_timeout_seconds, p.ring_timeout_seconds);
        set(&mut self.settings, p.settings);
        set(&mut self.tools, p.tools);
        set(&mut self.voicemail, p.voicemail);
        set(&mut self.success_criteria, p.success_criteria);
        set(&mut self.analysis_schema, p.analysis_schema);
        set(&mut self.analysis_questions, p.analysis_questions);
    }
    fn columns(&self) -> Vec<(&'static str, Val)> {
        vec![
            ("name", (&self.name).into()),
            ("system_prompt", (&self.system_prompt).into()),
            ("initial_message", (&self.initial_message).into()),
            ("voice", (&self.voice).into()),
            ("language", (&self.language).into()),
            ("llm_model", (&self.llm_model).into()),
            ("webhook_url", (&self.webhook_url).into()),
            ("max_duration_seconds", self.max_duration_seconds.into()),
            ("ring_timeout_seconds", self.ring_timeout_seconds.into()),
            ("settings", json_text(&self.settings).into()),
            ("tools", json_text(&self.tools).into()),
            ("voicemail", json_text(&self.voicemail).into()),
            ("success_criteria", (&self.success_criteria).into()),
            ("analysis_schema", json_text(&self.analysis_schema).into()),
            (
                "analysis_questions",
                json_text(&self.analysis_questions).into(),
            ),
            ("created_at", self.created_at.micros().into()),
            ("updated_at", self.updated_at.micros().into()),
        ]
    }
    fn set_seq(&mut self, seq: i64) {
        self.number = seq;
    }
    fn touch(&mut self) {
        self.updated_at = Timestamp::now();
    }
    fn unique_conflict(&self) -> Option<String> {
        Some(format!("an agent named {:?} already exists", self.name))
    }
}

impl Entity for OwnedNumber {
    const TABLE: &'static str = "phone_numbers";
    type Id = PhoneNumberId;
    type Patch = OwnedNumberPatch;

    fn key(&self) -> (OrgId, PhoneNumberId) {
        (self.org_id, self.id)
    }
    fn from_row(r: &dyn Cols) -> Result<Self, StoreError> {
        Ok(OwnedNumber {
            id: row::uuid(r, "id")?,
            number_id: row::i(r, "seq")?,
            org_id: row::uuid(r, "org_id")?,
            phone_number: row::phone(r, "phone_number")?,
            label: row::os(r, "label")?,
            agent_id: row::ouuid(r, "agent_id")?,
            trunk_id: row::ouuid(r, "trunk_id")?,
            created_at: row::ts(r, "created_at")?,
        })
    }
    fn new(org: OrgId, patch: OwnedNumberPatch) -> Result<Self, StoreError> {
        let number = patch
            .phone_number
            .clone()
            .ok_or_else(|| StoreError::Conflict("phone_number is required".into()))?;
        let mut n = OwnedNumber {
            id: PhoneNumberId::new(),
            number_id: 0,
            org_id: org,
            phone_number: number,
            label: None,
            agent_id: None,
            trunk_id: None,
            created_at: Timestamp::now(),
        };
        n.apply(patch);
        Ok(n)
    }
    fn apply(&mut self, p: OwnedNumberPatch) {
        set(&mut self.phone_number, p.phone_number);
        set(&mut self.label, p.label);
        set(&mut self.agent_id, p.agent_id);
        set(&mut self.trunk_id, p.trunk_id);
    }
    fn columns(&self) -> Vec<(&'static str, Val)> {
        vec![
            ("phone_number", self.phone_number.to_string().into()),
            ("label", (&self.label).into()),
            ("agent_id", self.agent_id.map(|a| a.to_string()).into()),
            ("trunk_id", self.trunk_id.map(|t| t.to_string()).into()),
            ("created_at", self.created_at.micros().into()),
        ]
    }
    fn set_seq(&mut self, seq: i64) {
        self.number_id = seq;
    }
    fn unique_conflict(&self) -> Option<String> {
        Some(format!("{} is already registered", self.phone_number))
    }
    fn refs(&self) -> (Option<AgentId>, Option<TrunkId>) {
        (self.agent_id, self.trunk_id)
    }
}

impl Entity for Trunk {
    const TABLE: &'static str = "sip_trunks";
    type Id = TrunkId;
    type Patch = TrunkPatch;

    fn key(&self) -> (OrgId, TrunkId) {
        (self.org_id, self.id)
    }
    fn from_row(r: &dyn Cols) -> Result<Self, StoreError> {
        let sources: Vec<String> = serde_json::from_str(&row::s(r, "inbound_sources")?)
            .map_err(|_| StoreError::Corrupt("inbound_sources".into()))?;
        Ok(Trunk {
            id: row::uuid(r, "id")?,
            org_id: row::uuid(r, "org_id")?,
            name: row::s(r, "name")?,
            host: row::s(r, "host")?,
            port: u16::try_from(row::i(r, "port")?)
                .map_err(|_| StoreError::Corrupt("port".into()))?,
            transport: Transport::parse(&row::s(r, "transport")?)
                .map_err(|_| StoreError::Corrupt("transport".into()))?,
            username: row::os(r, "username")?,
            password: row::os(r, "password")?,
            default_caller_id: row::ophone(r, "default_caller_id")?,
            is_default: row::i(r, "is_default")? != 0,
            register: row::i(r, "register")? != 0,
            inbound_sources: sources,
            created_at: row::ts(r, "created_at")?,
        })
    }
    fn new(org: OrgId, patch: TrunkPatch) -> Result<Self, StoreError> {
        let mut t = Trunk {
            id: TrunkId::new(),
            org_id: org,
            name: String::new(),
            host: String::new(),
            port: 5060,
            transport: Transport::Udp,
            username: None,
            password: None,
            default_caller_id: None,
            is_default: false,
            register: false,
            inbound_sources: Vec::new(),
            created_at: Timestamp::now(),
        };
        t.apply(patch);
        Ok(t)
    }
    fn apply(&mut self, p: TrunkPatch) {
        set(&mut self.name, p.name);
        set(&mut self.host, p.host);
        set(&mut self.port, p.port);
        set(&mut self.transport, p.transport);
        set(&mut self.username, p.username);
        set(&mut self.password, p.password);
        set(&mut self.default_caller_id, p.default_caller_id);
        set(&mut self.is_default, p.is_default);
        set(&mut self.register, p.register);
        set(&mut self.inbound_sources, p.inbound_sources);
    }
    fn columns(&self) -> Vec<(&'static str, Val)> {
        let sources = serde_json::to_string(&self.inbound_sources).unwrap_or_else(|_| "[]".into());
        vec![
            ("name", (&self.name).into()),
            ("host", (&self.host).into()),
            ("port", i64::from(self.port).into()),
            ("transport", self.transport.as_str().into()),
            ("username", (&self.username).into()),
            ("password", (&self.password).into()),
            (
                "default_caller_id",
                self.default_caller_id
                    .as_ref()
                    .map(|p| p.to_string())
                    .into(),
            ),
            ("is_default", self.is_default.into()),
            ("register", self.register.into()),
            ("inbound_sources", (&sources).into()),
            ("created_at", self.created_at.micros().into()),
        ]
    }
    fn before_write(&self) -> Option<&'static str> {
        // One default trunk per organization.
        self.is_default
            .then_some("UPDATE sip_trunks SET is_default = 0 WHERE org_id = $1 AND id <> $2")
    }
}

impl Entity for Contact {
    const TABLE: &'static str = "contacts";
    type Id = ContactId;
    type Patch = ContactPatch;

    fn key(&self) -> (OrgId, ContactId) {
        (self.org_id, self.id)
    }
    fn from_row(r: &dyn Cols) -> Result<Self, StoreError> {
        Ok(Contact {
            id: row::uuid(r, "id")?,
            org_id: row::uuid(r, "org_id")?,
            identifier: row::phone(r, "identifier")?,
            contact_type: row::s(r, "contact_type")?,
            first_name: row::os(r, "first_name")?,
            last_name: row::os(r, "last_name")?,
            email: row::os(r, "email")?,
            created_date: row::ts(r, "created_at")?,
        })
    }
    fn new(org: OrgId, patch: ContactPatch) -> Result<Self, StoreError> {
        let identifier = patch
            .identifier
            .clone()
            .ok_or_else(|| StoreError::Conflict("identifier is required".into()))?;
        let mut c = Contact {
            id: ContactId::new(),
            org_id: org,
            identifier,
            contact_type: "call".into(),
            first_name: None,
            last_name: None,
            email: None,
            created_date: Timestamp::now(),
        };
        c.apply(patch);
        Ok(c)
    }
    fn apply(&mut self, p: ContactPatch) {
        set(&mut self.identifier, p.identifier);
        set(&mut self.contact_type, p.contact_type);
        set(&mut self.first_name, p.first_name);
        set(&mut self.last_name, p.last_name);
        set(&mut self.email, p.email);
    }
    fn columns(&self) -> Vec<(&'static str, Val)> {
        vec![
            ("identifier", self.identifier.to_string().into()),
            ("contact_type", (&self.contact_type).into()),
            ("first_name", (&self.first_name).into()),
            ("last_name", (&self.last_name).into()),
            ("email", (&self.email).into()),
            ("created_at", self.created_date.micros().into()),
        ]
    }
    fn unique_conflict(&self) -> Option<String> {
        Some(format!("a contact for {} already exists", self.identifier))
    }
}

impl Entity for Campaign {
    const TABLE: &'static str = "campaigns";
    type Id = CampaignId;
    type Patch = CampaignPatch;

    fn key(&self) -> (OrgId, CampaignId) {
        (self.org_id, self.id)
    }
    fn from_row(r: &dyn Cols) -> Result<Self, StoreError> {
        Ok(Campaign {
            id: row::uuid(r, "id")?,
            org_id: row::uuid(r, "org_id")?,
            name: row::s(r, "name")?,
            agent_id: row::ouuid(r, "agent_id")?,
            status: CampaignStatus::parse(&row::s(r, "status")?)
                .map_err(|_| StoreError::Corrupt("status".into()))?,
            created_at: row::ts(r, "created_at")?,
        })
    }
    fn new(org: OrgId, patch: CampaignPatch) -> Result<Self, StoreError> {
        let mut c = Campaign {
            id: CampaignId::new(),
            org_id: org,
            name: String::new(),
            agent_id: None,
            status: CampaignStatus::Draft,
            created_at: Timestamp::now(),
        };
        c.apply(patch);
        Ok(c)
    }
    fn apply(&mut self, p: CampaignPatch) {
        set(&mut self.name, p.name);
        set(&mut self.agent_id, p.agent_id);
        set(&mut self.status, p.status);
    }
    fn columns(&self) -> Vec<(&'static str, Val)> {
        vec![
            ("name", (&self.name).into()),
            ("agent_id", self.agent_id.map(|a| a.to_string()).into()),
            ("status", self.status.as_str().into()),
            ("created_at", self.created_at.micros().into()),
        ]
    }
    fn refs(&self) -> (Option<AgentId>, Option<TrunkId>) {
        (self.agent_id, None)
    }
}

/// The names the engine, the dialects and the tests call the generic functions by.
macro_rules! named {
    ($($t:ty: $get:ident, $list:ident, $create:ident, $update:ident, $delete:ident;)*) => {
        impl Store {
            $(
                pub async fn $get(&self, org: OrgId, id: <$t as Entity>::Id) -> Result<$t, StoreError> {
                    self.get(org, id).await
                }
                pub async fn $list(
                    &self,
                    org: OrgId,
                    after: Option<i64>,
                    limit: u32,
                ) -> Result<crate::ResourcePage<$t>, StoreError> {
                    self.list(org, after, limit).await
                }
                pub async fn $create(
                    &self,
                    org: OrgId,
                    patch: <$t as Entity>::Patch,
                ) -> Result<$t, StoreError> {
                    self.create(org, patch).await
                }
                pub async fn $update(
                    &self,
                    org: OrgId,
                    id: <$t as Entity>::Id,
                    patch: <$t as Entity>::Patch,
                ) -> Result<$t, StoreError> {
                    self.update(org, id, patch).await
                }
                pub async fn $delete(&self, org: OrgId, id: <$t as Entity>::Id) -> Result<(), StoreError> {
                    self.delete::<$t>(org, id).await
                }
            )*
        }
    };
}

named! {
    Agent: get_agent, list_agents, create_agent, update_agent, delete_agent;
    OwnedNumber: get_number, list_numbers, create_number, update_number, delete_number;
    Trunk: get_trunk, list_trunks, create_trunk, update_trunk, delete_trunk;
    Contact: get_contact, list_contacts, create_contact, update_contact, delete_contact;
    Campaign: get_campaign, list_campaigns, create_campaign, update_campaign, delete_campaign;
}

/// What is particular to one resource: other lookups, Flyflow's upsert, the trunks the
/// engine registers.
impl Store {
    pub async fn get_agent_by_number(&self, org: OrgId, number: i64) -> Result<Agent, StoreError> {
        self.get_by_seq(org, number).await
    }
    pub async fn get_agent_by_name(&self, org: OrgId, name: &str) -> Result<Agent, StoreError> {
        self.get_by(org, "name", name.to_string()).await
    }
    pub async fn list_agents_offset(
        &self,
        org: OrgId,
        offset: u64,
        limit: u32,
    ) -> Result<Vec<Agent>, StoreError> {
        self.list_offset(org, offset, limit).await
    }
    pub async fn count_agents(&self, org: OrgId) -> Result<i64, StoreError> {
        self.count::<Agent>(org).await
    }

    /// Creates the agent, or updates the one with the same name (Flyflow's upsert).
    pub async fn upsert_agent_by_name(
        &self,
        org: OrgId,
        patch: AgentPatch,
    ) -> Result<(Agent, bool), StoreError> {
        let name = patch.name.clone().unwrap_or_default();
        match self.get_agent_by_name(org, &name).await {
            Ok(existing) => Ok((self.update_agent(org, existing.id, patch).await?, false)),
            Err(StoreError::NotFound) => match self.create_agent(org, patch.clone()).await {
                Ok(a) => Ok((a, true)),
                // Lost a race with a concurrent upsert of the same name: update theirs.
                Err(StoreError::Conflict(_)) => {
                    let existing = self.get_agent_by_name(org, &name).await?;
                    Ok((self.update_agent(org, existing.id, patch).await?, false))
                }
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    pub async fn get_number_by_seq(&self, org: OrgId, seq: i64) -> Result<OwnedNumber, StoreError> {
        self.get_by_seq(org, seq).await
    }
    pub async fn get_number_by_e164(
        &self,
        org: OrgId,
        number: &PhoneNumber,
    ) -> Result<OwnedNumber, StoreError> {
        self.get_by(org, "phone_number", number.to_string()).await
    }
    /// Every organization's ownership of a number (inbound routing picks among them).
    pub async fn find_numbers_everywhere(
        &self,
        number: &PhoneNumber,
    ) -> Result<Vec<OwnedNumber>, StoreError> {
        let mut p = Params::new();
        p.push_str(number.to_string());
        self.fetch(
            "SELECT * FROM phone_numbers WHERE phone_number = $1",
            &p,
            OwnedNumber::from_row,
        )
        .await
    }
    pub async fn list_numbers_offset(
        &self,
        org: OrgId,
        offset: u64,
        limit: u32,
    ) -> Result<Vec<OwnedNumber>, StoreError> {
        self.list_offset(org, offset, limit).await
    }
    pub async fn count_numbers(&self, org: OrgId) -> Result<i64, StoreError> {
        self.count::<OwnedNumber>(org).await
    }

    pub async fn default_trunk(&self, org: OrgId) -> Result<Option<Trunk>, StoreError> {
        let mut p = Params::new();
        p.push_str(org.to_string());
        let rows = self
            .fetch(
                "SELECT * FROM sip_trunks WHERE org_id = $1 AND is_default = 1 ORDER BY seq LIMIT 1",
                &p,
                Trunk::from_row,
            )
            .await?;
        Ok(rows.into_iter().next())
    }
    pub async fn all_trunks(&self) -> Result<Vec<Trunk>, StoreError> {
        self.fetch(
            "SELECT * FROM sip_trunks ORDER BY seq",
            &Params::new(),
            Trunk::from_row,
        )
        .await
    }
}
