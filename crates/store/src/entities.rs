//! Agents, phone numbers, SIP trunks, contacts and campaigns: plain CRUD scoped to an
//! organization. Updates load the row, apply the patch in Rust and write every column back,
//! so the patch rules live in one place.

use crate::read::{Cols, Params};
use crate::row::{self, b, json_text};
use crate::{Store, StoreError};
use switchboard_domain::*;

/// One page of a resource list, in creation order.
#[derive(Debug, Clone)]
pub struct ResourcePage<T> {
    pub items: Vec<T>,
    /// The last seq on this page, when there may be more.
    pub next_after: Option<i64>,
}

/// A row with its seq, so list pages know where they ended.
trait FromRow: Sized + Send + 'static {
    const TABLE: &'static str;
    fn from_row(r: &dyn Cols) -> Result<Self, StoreError>;
}

impl FromRow for Agent {
    const TABLE: &'static str = "agents";
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
            created_at: row::ts(r, "created_at")?,
            updated_at: row::ts(r, "updated_at")?,
        })
    }
}

impl FromRow for OwnedNumber {
    const TABLE: &'static str = "phone_numbers";
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
}

impl FromRow for Trunk {
    const TABLE: &'static str = "sip_trunks";
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
}

impl FromRow for Contact {
    const TABLE: &'static str = "contacts";
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
}

impl FromRow for Campaign {
    const TABLE: &'static str = "campaigns";
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
}

impl Store {
    async fn get_by<T: FromRow>(
        &self,
        org: OrgId,
        col: &str,
        val: String,
    ) -> Result<T, StoreError> {
        let sql = format!(
            "SELECT * FROM {} WHERE org_id = $1 AND {col} = $2",
            T::TABLE
        );
        let mut p = Params::new();
        p.push_str(org.to_string());
        p.push_str(val);
        self.fetch_one(&sql, &p, T::from_row).await
    }

    /// A row by its per-organization integer (`seq`), which some clients address agents and
    /// numbers by.
    async fn get_by_seq<T: FromRow>(&self, org: OrgId, seq: i64) -> Result<T, StoreError> {
        let sql = format!("SELECT * FROM {} WHERE org_id = $1 AND seq = $2", T::TABLE);
        let mut p = Params::new();
        p.push_str(org.to_string());
        p.push_i64(seq);
        self.fetch_one(&sql, &p, T::from_row).await
    }

    async fn list_of<T: FromRow>(
        &self,
        org: OrgId,
        after: Option<i64>,
        limit: u32,
    ) -> Result<ResourcePage<T>, StoreError> {
        let sql = format!(
            "SELECT * FROM {} WHERE org_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            T::TABLE
        );
        let mut p = Params::new();
        p.push_str(org.to_string());
        p.push_i64(after.unwrap_or(0));
        p.push_i64(limit as i64 + 1);
        let mut rows = self
            .fetch(&sql, &p, |r| Ok((row::i(r, "seq")?, T::from_row(r)?)))
            .await?;
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let last = rows.last().map(|(seq, _)| *seq);
        Ok(ResourcePage {
            items: rows.into_iter().map(|(_, item)| item).collect(),
            next_after: if more { last } else { None },
        })
    }

    /// One page of a resource by offset, in creation order (OmniDimension's `pageno` paging).
    async fn offset_of<T: FromRow>(
        &self,
        org: OrgId,
        offset: u64,
        limit: u32,
    ) -> Result<Vec<T>, StoreError> {
        let sql = format!(
            "SELECT * FROM {} WHERE org_id = $1 ORDER BY seq LIMIT $2 OFFSET $3",
            T::TABLE
        );
        let mut p = Params::new();
        p.push_str(org.to_string());
        p.push_i64(limit as i64);
        p.push_i64(i64::try_from(offset).unwrap_or(i64::MAX));
        self.fetch(&sql, &p, T::from_row).await
    }

    /// Counts an organization's rows of a resource (for offset paging totals).
    async fn count_of<T: FromRow>(&self, org: OrgId) -> Result<i64, StoreError> {
        let sql = format!("SELECT COUNT(*) AS n FROM {} WHERE org_id = $1", T::TABLE);
        let mut p = Params::new();
        p.push_str(org.to_string());
        self.fetch_one(&sql, &p, |r| row::i(r, "n")).await
    }

    async fn delete_of<T: FromRow>(&self, org: OrgId, id: String) -> Result<(), StoreError> {
        let sql = format!("DELETE FROM {} WHERE org_id = $1 AND id = $2", T::TABLE);
        let _write = self.write_gate().await;
        let done = sqlx::query(&sql)
            .bind(org.to_string())
            .bind(id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    // ----- agents -----

    pub async fn get_agent(&self, org: OrgId, id: AgentId) -> Result<Agent, StoreError> {
        self.get_by(org, "id", id.to_string()).await
    }
    pub async fn get_agent_by_number(&self, org: OrgId, number: i64) -> Result<Agent, StoreError> {
        self.get_by_seq(org, number).await
    }
    pub async fn get_agent_by_name(&self, org: OrgId, name: &str) -> Result<Agent, StoreError> {
        self.get_by(org, "name", name.to_string()).await
    }
    pub async fn list_agents(
        &self,
        org: OrgId,
        after: Option<i64>,
        limit: u32,
    ) -> Result<ResourcePage<Agent>, StoreError> {
        self.list_of(org, after, limit).await
    }
    /// Agents by offset, in creation order.
    pub async fn list_agents_offset(
        &self,
        org: OrgId,
        offset: u64,
        limit: u32,
    ) -> Result<Vec<Agent>, StoreError> {
        self.offset_of(org, offset, limit).await
    }
    pub async fn count_agents(&self, org: OrgId) -> Result<i64, StoreError> {
        self.count_of::<Agent>(org).await
    }
    pub async fn delete_agent(&self, org: OrgId, id: AgentId) -> Result<(), StoreError> {
        self.delete_of::<Agent>(org, id.to_string()).await
    }

    /// Creates an agent; `patch.name` is required.
    pub async fn create_agent(&self, org: OrgId, patch: AgentPatch) -> Result<Agent, StoreError> {
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
            created_at: now,
            updated_at: now,
        };
        apply_agent_patch(&mut a, patch);
        let _write = self.write_gate().await;
        let r = sqlx::query(
            "INSERT INTO agents (id, org_id, name, system_prompt, initial_message, voice, language, llm_model, \
             webhook_url, max_duration_seconds, ring_timeout_seconds, settings, created_at, updated_at) \
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14) RETURNING seq",
        )
        .bind(a.id.to_string())
        .bind(org.to_string())
        .bind(&a.name)
        .bind(&a.system_prompt)
        .bind(&a.initial_message)
        .bind(&a.voice)
        .bind(&a.language)
        .bind(&a.llm_model)
        .bind(&a.webhook_url)
        .bind(a.max_duration_seconds)
        .bind(a.ring_timeout_seconds)
        .bind(json_text(&a.settings))
        .bind(now.micros())
        .bind(now.micros())
        .fetch_one(&self.pool)
        .await
        .map_err(|e| StoreError::from(e).unique_as(format!("an agent named {:?} already exists", a.name)))?;
        a.number = row::i(&r, "seq")?;
        Ok(a)
    }

    pub async fn update_agent(
        &self,
        org: OrgId,
        id: AgentId,
        patch: AgentPatch,
    ) -> Result<Agent, StoreError> {
        let mut a = self.get_agent(org, id).await?;
        apply_agent_patch(&mut a, patch);
        a.updated_at = Timestamp::now();
        let _write = self.write_gate().await;
        sqlx::query(
            "UPDATE agents SET name=$1, system_prompt=$2, initial_message=$3, voice=$4, language=$5, llm_model=$6, \
             webhook_url=$7, max_duration_seconds=$8, ring_timeout_seconds=$9, settings=$10, updated_at=$11 \
             WHERE org_id=$12 AND id=$13",
        )
        .bind(&a.name)
        .bind(&a.system_prompt)
        .bind(&a.initial_message)
        .bind(&a.voice)
        .bind(&a.language)
        .bind(&a.llm_model)
        .bind(&a.webhook_url)
        .bind(a.max_duration_seconds)
        .bind(a.ring_timeout_seconds)
        .bind(json_text(&a.settings))
        .bind(a.updated_at.micros())
        .bind(org.to_string())
        .bind(id.to_string())
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::from(e).unique_as(format!("an agent named {:?} already exists", a.name)))?;
        Ok(a)
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

    // ----- phone numbers -----

    pub async fn get_number(
        &self,
        org: OrgId,
        id: PhoneNumberId,
    ) -> Result<OwnedNumber, StoreError> {
        self.get_by(org, "id", id.to_string()).await
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
    pub async fn list_numbers(
        &self,
        org: OrgId,
        after: Option<i64>,
        limit: u32,
    ) -> Result<ResourcePage<OwnedNumber>, StoreError> {
        self.list_of(org, after, limit).await
    }
    /// Phone numbers by offset, in creation order.
    pub async fn list_numbers_offset(
        &self,
        org: OrgId,
        offset: u64,
        limit: u32,
    ) -> Result<Vec<OwnedNumber>, StoreError> {
        self.offset_of(org, offset, limit).await
    }
    pub async fn count_numbers(&self, org: OrgId) -> Result<i64, StoreError> {
        self.count_of::<OwnedNumber>(org).await
    }
    pub async fn delete_number(&self, org: OrgId, id: PhoneNumberId) -> Result<(), StoreError> {
        self.delete_of::<OwnedNumber>(org, id.to_string()).await
    }

    /// Checks that the agent and trunk a number is bound to belong to the same organization.
    async fn check_refs(
        &self,
        org: OrgId,
        agent: Option<AgentId>,
        trunk: Option<TrunkId>,
    ) -> Result<(), StoreError> {
        if let Some(a) = agent {
            self.get_agent(org, a).await.map_err(|e| match e {
                StoreError::NotFound => {
                    StoreError::Conflict(format!("agent_id {a} does not exist"))
                }
                e => e,
            })?;
        }
        if let Some(t) = trunk {
            self.get_trunk(org, t).await.map_err(|e| match e {
                StoreError::NotFound => {
                    StoreError::Conflict(format!("trunk_id {t} does not exist"))
                }
                e => e,
            })?;
        }
        Ok(())
    }

    pub async fn create_number(
        &self,
        org: OrgId,
        patch: OwnedNumberPatch,
    ) -> Result<OwnedNumber, StoreError> {
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
        apply_number_patch(&mut n, patch);
        self.check_refs(org, n.agent_id, n.trunk_id).await?;
        let _write = self.write_gate().await;
        let r = sqlx::query(
            "INSERT INTO phone_numbers (id, org_id, phone_number, label, agent_id, trunk_id, created_at) \
             VALUES ($1,$2,$3,$4,$5,$6,$7) RETURNING seq",
        )
        .bind(n.id.to_string())
        .bind(org.to_string())
        .bind(n.phone_number.to_string())
        .bind(&n.label)
        .bind(n.agent_id.map(|a| a.to_string()))
        .bind(n.trunk_id.map(|a| a.to_string()))
        .bind(n.created_at.micros())
        .fetch_one(&self.pool)
        .await
        .map_err(|e| StoreError::from(e).unique_as(format!("{} is already registered", n.phone_number)))?;
        n.number_id = row::i(&r, "seq")?;
        Ok(n)
    }

    pub async fn update_number(
        &self,
        org: OrgId,
        id: PhoneNumberId,
        patch: OwnedNumberPatch,
    ) -> Result<OwnedNumber, StoreError> {
        let mut n = self.get_number(org, id).await?;
        apply_number_patch(&mut n, patch);
        self.check_refs(org, n.agent_id, n.trunk_id).await?;
        let _write = self.write_gate().await;
        sqlx::query("UPDATE phone_numbers SET phone_number=$1, label=$2, agent_id=$3, trunk_id=$4 WHERE org_id=$5 AND id=$6")
            .bind(n.phone_number.to_string())
            .bind(&n.label)
            .bind(n.agent_id.map(|a| a.to_string()))
            .bind(n.trunk_id.map(|a| a.to_string()))
            .bind(org.to_string())
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::from(e).unique_as(format!("{} is already registered", n.phone_number)))?;
        Ok(n)
    }

    // ----- trunks -----

    pub async fn get_trunk(&self, org: OrgId, id: TrunkId) -> Result<Trunk, StoreError> {
        self.get_by(org, "id", id.to_string()).await
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
    pub async fn list_trunks(
        &self,
        org: OrgId,
        after: Option<i64>,
        limit: u32,
    ) -> Result<ResourcePage<Trunk>, StoreError> {
        self.list_of(org, after, limit).await
    }
    pub async fn delete_trunk(&self, org: OrgId, id: TrunkId) -> Result<(), StoreError> {
        self.delete_of::<Trunk>(org, id.to_string()).await
    }

    pub async fn create_trunk(&self, org: OrgId, patch: TrunkPatch) -> Result<Trunk, StoreError> {
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
        apply_trunk_patch(&mut t, patch);
        self.write_trunk(&t, true).await?;
        Ok(t)
    }

    pub async fn update_trunk(
        &self,
        org: OrgId,
        id: TrunkId,
        patch: TrunkPatch,
    ) -> Result<Trunk, StoreError> {
        let mut t = self.get_trunk(org, id).await?;
        apply_trunk_patch(&mut t, patch);
        self.write_trunk(&t, false).await?;
        Ok(t)
    }

    async fn write_trunk(&self, t: &Trunk, insert: bool) -> Result<(), StoreError> {
        let _write = self.write_gate().await;
        let mut tx = self.pool.begin().await?;
        if t.is_default {
            // One default trunk per organization.
            sqlx::query("UPDATE sip_trunks SET is_default = 0 WHERE org_id = $1 AND id <> $2")
                .bind(t.org_id.to_string())
                .bind(t.id.to_string())
                .execute(&mut *tx)
                .await?;
        }
        let sql = if insert {
            "INSERT INTO sip_trunks (name, host, port, transport, username, password, default_caller_id, is_default, \
             register, inbound_sources, created_at, org_id, id) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13)"
        } else {
            "UPDATE sip_trunks SET name=$1, host=$2, port=$3, transport=$4, username=$5, password=$6, \
             default_caller_id=$7, is_default=$8, register=$9, inbound_sources=$10, created_at=$11 \
             WHERE org_id=$12 AND id=$13"
        };
        sqlx::query(sql)
            .bind(&t.name)
            .bind(&t.host)
            .bind(t.port as i64)
            .bind(t.transport.as_str())
            .bind(&t.username)
            .bind(&t.password)
            .bind(t.default_caller_id.as_ref().map(|p| p.to_string()))
            .bind(b(t.is_default))
            .bind(b(t.register))
            .bind(serde_json::to_string(&t.inbound_sources).unwrap_or_else(|_| "[]".into()))
            .bind(t.created_at.micros())
            .bind(t.org_id.to_string())
            .bind(t.id.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    // ----- contacts -----

    pub async fn get_contact(&self, org: OrgId, id: ContactId) -> Result<Contact, StoreError> {
        self.get_by(org, "id", id.to_string()).await
    }
    pub async fn list_contacts(
        &self,
        org: OrgId,
        after: Option<i64>,
        limit: u32,
    ) -> Result<ResourcePage<Contact>, StoreError> {
        self.list_of(org, after, limit).await
    }
    pub async fn delete_contact(&self, org: OrgId, id: ContactId) -> Result<(), StoreError> {
        self.delete_of::<Contact>(org, id.to_string()).await
    }

    pub async fn create_contact(
        &self,
        org: OrgId,
        patch: ContactPatch,
    ) -> Result<Contact, StoreError> {
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
        apply_contact_patch(&mut c, patch);
        self.write_contact(&c, true).await?;
        Ok(c)
    }

    pub async fn update_contact(
        &self,
        org: OrgId,
        id: ContactId,
        patch: ContactPatch,
    ) -> Result<Contact, StoreError> {
        let mut c = self.get_contact(org, id).await?;
        apply_contact_patch(&mut c, patch);
        self.write_contact(&c, false).await?;
        Ok(c)
    }

    async fn write_contact(&self, c: &Contact, insert: bool) -> Result<(), StoreError> {
        let sql = if insert {
            "INSERT INTO contacts (identifier, contact_type, first_name, last_name, email, created_at, org_id, id) \
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8)"
        } else {
            "UPDATE contacts SET identifier=$1, contact_type=$2, first_name=$3, last_name=$4, email=$5, created_at=$6 \
             WHERE org_id=$7 AND id=$8"
        };
        let _write = self.write_gate().await;
        sqlx::query(sql)
            .bind(c.identifier.to_string())
            .bind(&c.contact_type)
            .bind(&c.first_name)
            .bind(&c.last_name)
            .bind(&c.email)
            .bind(c.created_date.micros())
            .bind(c.org_id.to_string())
            .bind(c.id.to_string())
            .execute(&self.pool)
            .await
            .map_err(|e| {
                StoreError::from(e)
                    .unique_as(format!("a contact for {} already exists", c.identifier))
            })?;
        Ok(())
    }

    // ----- campaigns -----

    pub async fn get_campaign(&self, org: OrgId, id: CampaignId) -> Result<Campaign, StoreError> {
        self.get_by(org, "id", id.to_string()).await
    }
    pub async fn list_campaigns(
        &self,
        org: OrgId,
        after: Option<i64>,
        limit: u32,
    ) -> Result<ResourcePage<Campaign>, StoreError> {
        self.list_of(org, after, limit).await
    }
    pub async fn delete_campaign(&self, org: OrgId, id: CampaignId) -> Result<(), StoreError> {
        self.delete_of::<Campaign>(org, id.to_string()).await
    }

    pub async fn create_campaign(
        &self,
        org: OrgId,
        patch: CampaignPatch,
    ) -> Result<Campaign, StoreError> {
        let mut c = Campaign {
            id: CampaignId::new(),
            org_id: org,
            name: String::new(),
            agent_id: None,
            status: CampaignStatus::Draft,
            created_at: Timestamp::now(),
        };
        apply_campaign_patch(&mut c, patch);
        self.check_refs(org, c.agent_id, None).await?;
        self.write_campaign(&c, true).await?;
        Ok(c)
    }

    pub async fn update_campaign(
        &self,
        org: OrgId,
        id: CampaignId,
        patch: CampaignPatch,
    ) -> Result<Campaign, StoreError> {
        let mut c = self.get_campaign(org, id).await?;
        apply_campaign_patch(&mut c, patch);
        self.check_refs(org, c.agent_id, None).await?;
        self.write_campaign(&c, false).await?;
        Ok(c)
    }

    async fn write_campaign(&self, c: &Campaign, insert: bool) -> Result<(), StoreError> {
        let sql = if insert {
            "INSERT INTO campaigns (name, agent_id, status, created_at, org_id, id) VALUES ($1,$2,$3,$4,$5,$6)"
        } else {
            "UPDATE campaigns SET name=$1, agent_id=$2, status=$3, created_at=$4 WHERE org_id=$5 AND id=$6"
        };
        let _write = self.write_gate().await;
        sqlx::query(sql)
            .bind(&c.name)
            .bind(c.agent_id.map(|a| a.to_string()))
            .bind(c.status.as_str())
            .bind(c.created_at.micros())
            .bind(c.org_id.to_string())
            .bind(c.id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

fn set<T>(slot: &mut T, v: Option<T>) {
    if let Some(v) = v {
        *slot = v;
    }
}

fn apply_agent_patch(a: &mut Agent, p: AgentPatch) {
    set(&mut a.name, p.name);
    set(&mut a.system_prompt, p.system_prompt);
    set(&mut a.initial_message, p.initial_message);
    set(&mut a.voice, p.voice);
    set(&mut a.language, p.language);
    set(&mut a.llm_model, p.llm_model);
    set(&mut a.webhook_url, p.webhook_url);
    set(&mut a.max_duration_seconds, p.max_duration_seconds);
    set(&mut a.ring_timeout_seconds, p.ring_timeout_seconds);
    set(&mut a.settings, p.settings);
}

fn apply_number_patch(n: &mut OwnedNumber, p: OwnedNumberPatch) {
    set(&mut n.phone_number, p.phone_number);
    set(&mut n.label, p.label);
    set(&mut n.agent_id, p.agent_id);
    set(&mut n.trunk_id, p.trunk_id);
}

fn apply_trunk_patch(t: &mut Trunk, p: TrunkPatch) {
    set(&mut t.name, p.name);
    set(&mut t.host, p.host);
    set(&mut t.port, p.port);
    set(&mut t.transport, p.transport);
    set(&mut t.username, p.username);
    set(&mut t.password, p.password);
    set(&mut t.default_caller_id, p.default_caller_id);
    set(&mut t.is_default, p.is_default);
    set(&mut t.register, p.register);
    set(&mut t.inbound_sources, p.inbound_sources);
}

fn apply_contact_patch(c: &mut Contact, p: ContactPatch) {
    set(&mut c.identifier, p.identifier);
    set(&mut c.contact_type, p.contact_type);
    set(&mut c.first_name, p.first_name);
    set(&mut c.last_name, p.last_name);
    set(&mut c.email, p.email);
}

fn apply_campaign_patch(c: &mut Campaign, p: CampaignPatch) {
    set(&mut c.name, p.name);
    set(&mut c.agent_id, p.agent_id);
    set(&mut c.status, p.status);
}
