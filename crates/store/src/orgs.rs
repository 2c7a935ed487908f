//! Organizations and API keys.

use crate::{row, Store, StoreError};
use rand::RngCore;
use sha2::{Digest, Sha256};
use switchboard_domain::{OrgId, Organization, Timestamp};

/// Hash under which a key is stored and looked up.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

impl Store {
    /// Creates an organization with one API key. The key is returned once and stored only as
    /// a hash.
    pub async fn create_org(&self, name: &str) -> Result<(Organization, String), StoreError> {
        let org = Organization {
            id: OrgId::new(),
            name: name.to_string(),
            created_at: Timestamp::now(),
        };
        let mut raw = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut raw);
        let key = format!("sk_{}", hex::encode(raw));
        let _write = self.write_gate().await;
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO organizations (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(org.id.to_string())
            .bind(&org.name)
            .bind(org.created_at.micros())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO api_keys (key_hash, org_id, prefix, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(hash_key(&key))
        .bind(org.id.to_string())
        .bind(&key[..10])
        .bind(org.created_at.micros())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((org, key))
    }

    pub async fn org_count(&self) -> Result<i64, StoreError> {
        let n: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM organizations")
            .fetch_one(&self.pool)
            .await?;
        Ok(n.0)
    }

    /// The organization a key belongs to, if any.
    pub async fn org_for_key(&self, key: &str) -> Result<Option<OrgId>, StoreError> {
        let r = sqlx::query("SELECT org_id FROM api_keys WHERE key_hash = $1")
            .bind(hash_key(key))
            .fetch_optional(&self.pool)
            .await?;
        r.map(|r| row::uuid(&r, "org_id")).transpose()
    }

    pub async fn org_max_concurrent_calls(&self, org: OrgId) -> Result<Option<i64>, StoreError> {
        let r = sqlx::query("SELECT max_concurrent_calls FROM organizations WHERE id = $1")
            .bind(org.to_string())
            .fetch_optional(&self.pool)
            .await?;
        match r {
            Some(r) => row::oi(&r, "max_concurrent_calls"),
            None => Err(StoreError::NotFound),
        }
    }

    /// Sets (or with `None` clears, back to `--max-calls-per-org`) the organization's cap on
    /// concurrent calls. No API sets it yet; benches and operators' tooling do.
    pub async fn set_org_max_concurrent_calls(
        &self,
        org: OrgId,
        max: Option<i64>,
    ) -> Result<(), StoreError> {
        let _write = self.write_gate().await;
        let r = sqlx::query("UPDATE organizations SET max_concurrent_calls = $1 WHERE id = $2")
            .bind(max)
            .bind(org.to_string())
            .execute(&self.pool)
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}
