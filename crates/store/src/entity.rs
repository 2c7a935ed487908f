//! The one shape of a stored resource (agents, phone numbers, SIP trunks, contacts,
//! campaigns, and whatever comes next): a table scoped to an organization, rows addressed by
//! a UUID `id` and ordered by `seq`. A resource implements [`Entity`] (its table, how a row
//! decodes, which columns it writes, how a patch applies) and gets get, cursor and offset
//! pages, count, create, update and delete from the generic functions below.
//!
//! Updates load the row, apply the patch in Rust and write every column back, so the patch
//! rules live in one place (`Entity::apply`).

use crate::read::{Cols, Params};
use crate::row;
use crate::{Store, StoreError};
use std::fmt::Display;
use switchboard_domain::{AgentId, OrgId, TrunkId};

/// One page of a resource list, in creation order.
#[derive(Debug, Clone)]
pub struct ResourcePage<T> {
    pub items: Vec<T>,
    /// The last seq on this page, when there may be more.
    pub next_after: Option<i64>,
}

/// A column value to write: text or integer, either possibly null.
pub enum Val {
    Text(Option<String>),
    Int(Option<i64>),
}

impl From<&String> for Val {
    fn from(v: &String) -> Val {
        Val::Text(Some(v.clone()))
    }
}
impl From<String> for Val {
    fn from(v: String) -> Val {
        Val::Text(Some(v))
    }
}
impl From<&str> for Val {
    fn from(v: &str) -> Val {
        Val::Text(Some(v.to_string()))
    }
}
impl From<&Option<String>> for Val {
    fn from(v: &Option<String>) -> Val {
        Val::Text(v.clone())
    }
}
impl From<Option<String>> for Val {
    fn from(v: Option<String>) -> Val {
        Val::Text(v)
    }
}
impl From<i64> for Val {
    fn from(v: i64) -> Val {
        Val::Int(Some(v))
    }
}
impl From<Option<i64>> for Val {
    fn from(v: Option<i64>) -> Val {
        Val::Int(v)
    }
}
impl From<bool> for Val {
    fn from(v: bool) -> Val {
        Val::Int(Some(row::b(v)))
    }
}

/// A stored resource. Implement this for a new resource (plus a migration for its table);
/// see `entities.rs` for the five there are.
pub trait Entity: Sized + Send + Sync + 'static {
    /// Its table, which has `seq` (the creation order), `id`, `org_id` and `columns()`.
    const TABLE: &'static str;
    type Id: Copy + Display + From<uuid::Uuid> + Send + Sync;
    /// Every field a client can set; `None` leaves a field as it is.
    type Patch: Send;

    /// The organization and id of the row.
    fn key(&self) -> (OrgId, Self::Id);
    fn from_row(r: &dyn Cols) -> Result<Self, StoreError>;
    /// The row a create writes: defaults, then the patch. `Conflict` when a field the row
    /// cannot do without is missing (the API checks required fields before).
    fn new(org: OrgId, patch: Self::Patch) -> Result<Self, StoreError>;
    fn apply(&mut self, patch: Self::Patch);
    /// Every column besides `org_id`, `id` and `seq`, as written by create and update.
    fn columns(&self) -> Vec<(&'static str, Val)>;

    /// The creation order given by the database, for resources that show it.
    fn set_seq(&mut self, _seq: i64) {}
    /// Called before an update is written (e.g. to move `updated_at`).
    fn touch(&mut self) {}
    /// The message of a unique-constraint violation (a 409), when the table has one.
    fn unique_conflict(&self) -> Option<String> {
        None
    }
    /// The agent and trunk the row refers to, checked to be the organization's own.
    fn refs(&self) -> (Option<AgentId>, Option<TrunkId>) {
        (None, None)
    }
    /// A statement run before the write, in the same transaction, with `$1` = org_id and
    /// `$2` = id (e.g. "only one default per organization").
    fn before_write(&self) -> Option<&'static str> {
        None
    }
}

impl Store {
    /// A row by the value of one of its columns.
    pub(crate) async fn get_by<T: Entity>(
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

    pub async fn get<T: Entity>(&self, org: OrgId, id: T::Id) -> Result<T, StoreError> {
        self.get_by(org, "id", id.to_string()).await
    }

    /// A row by its per-organization integer (`seq`), which some clients address agents and
    /// numbers by.
    pub async fn get_by_seq<T: Entity>(&self, org: OrgId, seq: i64) -> Result<T, StoreError> {
        let sql = format!("SELECT * FROM {} WHERE org_id = $1 AND seq = $2", T::TABLE);
        let mut p = Params::new();
        p.push_str(org.to_string());
        p.push_i64(seq);
        self.fetch_one(&sql, &p, T::from_row).await
    }

    /// One page after the cursor `after` (a seq), in creation order.
    pub async fn list<T: Entity>(
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

    /// One page by offset, in creation order (OmniDimension's `pageno` paging).
    pub async fn list_offset<T: Entity>(
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

    /// Counts an organization's rows (for offset paging totals).
    pub async fn count<T: Entity>(&self, org: OrgId) -> Result<i64, StoreError> {
        let sql = format!("SELECT COUNT(*) AS n FROM {} WHERE org_id = $1", T::TABLE);
        let mut p = Params::new();
        p.push_str(org.to_string());
        self.fetch_one(&sql, &p, |r| row::i(r, "n")).await
    }

    pub async fn create<T: Entity>(&self, org: OrgId, patch: T::Patch) -> Result<T, StoreError> {
        let mut t = T::new(org, patch)?;
        self.check_refs(org, t.refs()).await?;
        if let Some(seq) = self.write(&t, true).await? {
            t.set_seq(seq);
        }
        Ok(t)
    }

    pub async fn update<T: Entity>(
        &self,
        org: OrgId,
        id: T::Id,
        patch: T::Patch,
    ) -> Result<T, StoreError> {
        let mut t: T = self.get(org, id).await?;
        t.apply(patch);
        t.touch();
        self.check_refs(org, t.refs()).await?;
        self.write(&t, false).await?;
        Ok(t)
    }

    pub async fn delete<T: Entity>(&self, org: OrgId, id: T::Id) -> Result<(), StoreError> {
        let sql = format!("DELETE FROM {} WHERE org_id = $1 AND id = $2", T::TABLE);
        let _write = self.write_gate().await;
        let done = sqlx::query(&sql)
            .bind(org.to_string())
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Checks that the agent and trunk a row refers to belong to the same organization.
    async fn check_refs(
        &self,
        org: OrgId,
        (agent, trunk): (Option<AgentId>, Option<TrunkId>),
    ) -> Result<(), StoreError> {
        if let Some(a) = agent {
            self.get::<switchboard_domain::Agent>(org, a)
                .await
                .map_err(|e| match e {
                    StoreError::NotFound => {
                        StoreError::Conflict(format!("agent_id {a} does not exist"))
                    }
                    e => e,
                })?;
        }
        if let Some(t) = trunk {
            self.get::<switchboard_domain::Trunk>(org, t)
                .await
                .map_err(|e| match e {
                    StoreError::NotFound => {
                        StoreError::Conflict(format!("trunk_id {t} does not exist"))
                    }
                    e => e,
                })?;
        }
        Ok(())
    }

    /// Writes every column of the row (INSERT or UPDATE); an insert returns the new seq.
    async fn write<T: Entity>(&self, t: &T, insert: bool) -> Result<Option<i64>, StoreError> {
        let cols = t.columns();
        let n = cols.len();
        let sql = if insert {
            let names: Vec<&str> = cols.iter().map(|(c, _)| *c).collect();
            let marks: Vec<String> = (1..=n + 2).map(|i| format!("${i}")).collect();
            format!(
                "INSERT INTO {} ({}, org_id, id) VALUES ({}) RETURNING seq",
                T::TABLE,
                names.join(", "),
                marks.join(",")
            )
        } else {
            let sets: Vec<String> = cols
                .iter()
                .enumerate()
                .map(|(i, (c, _))| format!("{c}=${}", i + 1))
                .collect();
            format!(
                "UPDATE {} SET {} WHERE org_id=${} AND id=${}",
                T::TABLE,
                sets.join(", "),
                n + 1,
                n + 2
            )
        };
        let mut q = sqlx::query(&sql);
        for (_, v) in cols {
            q = match v {
                Val::Text(s) => q.bind(s),
                Val::Int(i) => q.bind(i),
            };
        }
        let (org, id) = t.key();
        let q = q.bind(org.to_string()).bind(id.to_string());
        let unique = |e: sqlx::Error| match t.unique_conflict() {
            Some(m) => StoreError::from(e).unique_as(m),
            None => StoreError::from(e),
        };
        let _write = self.write_gate().await;
        let mut tx = match t.before_write() {
            Some(pre) => {
                let mut tx = self.pool.begin().await?;
                sqlx::query(pre)
                    .bind(org.to_string())
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await?;
                Some(tx)
            }
            None => None,
        };
        let seq = match (&mut tx, insert) {
            (Some(tx), true) => Some(q.fetch_one(&mut **tx).await.map_err(unique)?),
            (Some(tx), false) => q.execute(&mut **tx).await.map(|_| None).map_err(unique)?,
            (None, true) => Some(q.fetch_one(&self.pool).await.map_err(unique)?),
            (None, false) => q.execute(&self.pool).await.map(|_| None).map_err(unique)?,
        };
        if let Some(tx) = tx {
            tx.commit().await?;
        }
        seq.map(|r| row::i(&r, "seq")).transpose()
    }
}
