//! The dashboard's people (users with a role in one organization), their sign-in sessions and
//! the organization's named API keys. Passwords arrive here already hashed (Argon2id, in the
//! dashboard crate); session tokens and keys are stored only as SHA-256 hashes.

use crate::{hash_key, row, Store, StoreError};
use rand::RngCore;
use sqlx::any::AnyRow;
use switchboard_domain::{OrgId, Timestamp};
use uuid::Uuid;

/// A person who signs in to the dashboard.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: Uuid,
    pub org_id: OrgId,
    pub email: String,
    /// `owner`, `admin` or `viewer` (checked by the dashboard).
    pub role: String,
    pub created_at: Timestamp,
}

/// A live session: who it belongs to and its CSRF token.
#[derive(Debug, Clone)]
pub struct SessionUser {
    pub user: User,
    pub csrf_token: String,
}

/// One API key as its owners see it (never the key itself).
#[derive(Debug, Clone)]
pub struct ApiKeyInfo {
    pub seq: i64,
    pub name: Option<String>,
    /// The first characters of the key (`sk_` + 7), enough to recognise it.
    pub prefix: String,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
}

fn user_from(r: &AnyRow) -> Result<User, StoreError> {
    Ok(User {
        id: row::uuid(r, "id")?,
        org_id: row::uuid(r, "org_id")?,
        email: row::s(r, "email")?,
        role: row::s(r, "role")?,
        created_at: row::ts(r, "created_at")?,
    })
}

/// A fresh random key `sk_` + 64 hex characters, as `create_org` makes them.
pub(crate) fn new_api_key() -> String {
    let mut raw = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut raw);
    format!("sk_{}", hex::encode(raw))
}

impl Store {
    /// Adds a user. The email must be unique across organizations (sign-in is by email alone).
    pub async fn create_user(
        &self,
        org: OrgId,
        email: &str,
        password_hash: &str,
        role: &str,
    ) -> Result<User, StoreError> {
        let user = User {
            id: Uuid::new_v4(),
            org_id: org,
            email: email.to_lowercase(),
            role: role.to_string(),
            created_at: Timestamp::now(),
        };
        let _write = self.write_gate().await;
        sqlx::query(
            "INSERT INTO users (id, org_id, email, password_hash, role, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(user.id.to_string())
        .bind(org.to_string())
        .bind(&user.email)
        .bind(password_hash)
        .bind(&user.role)
        .bind(user.created_at.micros())
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::from(e).unique_as("a user with this email already exists"))?;
        Ok(user)
    }

    /// The user with this email and their password hash, for sign-in.
    pub async fn user_by_email(&self, email: &str) -> Result<Option<(User, String)>, StoreError> {
        let r = sqlx::query("SELECT * FROM users WHERE email = $1")
            .bind(email.to_lowercase())
            .fetch_optional(&self.pool)
            .await?;
        r.map(|r| Ok((user_from(&r)?, row::s(&r, "password_hash")?)))
            .transpose()
    }

    pub async fn list_users(&self, org: OrgId) -> Result<Vec<User>, StoreError> {
        let rows = sqlx::query("SELECT * FROM users WHERE org_id = $1 ORDER BY seq")
            .bind(org.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(user_from).collect()
    }

    /// Removes a user of the organization (their sessions go with them). `NotFound` for
    /// another organization's user.
    pub async fn delete_user(&self, org: OrgId, id: Uuid) -> Result<(), StoreError> {
        let _write = self.write_gate().await;
        let mut tx = self.pool.begin().await?;
        // Sessions first: the dashboard must not rely on ON DELETE CASCADE alone.
        sqlx::query(
            "DELETE FROM sessions WHERE user_id IN \
             (SELECT id FROM users WHERE org_id = $1 AND id = $2)",
        )
        .bind(org.to_string())
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        let done = sqlx::query("DELETE FROM users WHERE org_id = $1 AND id = $2")
            .bind(org.to_string())
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Stores a session under the hash of its token.
    pub async fn create_session(
        &self,
        user: Uuid,
        token: &str,
        csrf_token: &str,
        expires_at: Timestamp,
    ) -> Result<(), StoreError> {
        // Expired sessions are dropped whenever someone signs in (and periodically, see
        // `purge_expired_sessions`): the table stays small.
        self.purge_expired_sessions(1000).await?;
        let _write = self.write_gate().await;
        let now = Timestamp::now().micros();
        sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(hash_key(token))
        .bind(user.to_string())
        .bind(csrf_token)
        .bind(now)
        .bind(expires_at.micros())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Deletes up to `limit` expired sessions (a bounded statement, however many piled up);
    /// returns how many.
    pub async fn purge_expired_sessions(&self, limit: i64) -> Result<u64, StoreError> {
        let _write = self.write_gate().await;
        let done = sqlx::query(
            "DELETE FROM sessions WHERE token_hash IN \
             (SELECT token_hash FROM sessions WHERE expires_at < $1 LIMIT $2)",
        )
        .bind(Timestamp::now().micros())
        .bind(limit)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// The unexpired session with this token, with its user.
    pub async fn session(&self, token: &str) -> Result<Option<SessionUser>, StoreError> {
        let r = sqlx::query(
            "SELECT u.*, s.csrf_token FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.token_hash = $1 AND s.expires_at > $2",
        )
        .bind(hash_key(token))
        .bind(Timestamp::now().micros())
        .fetch_optional(&self.pool)
        .await?;
        r.map(|r| {
            Ok(SessionUser {
                user: user_from(&r)?,
                csrf_token: row::s(&r, "csrf_token")?,
            })
        })
        .transpose()
    }

    /// Ends a session (sign-out).
    pub async fn delete_session(&self, token: &str) -> Result<(), StoreError> {
        let _write = self.write_gate().await;
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(hash_key(token))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// An organization by id or by name (`user create --org`). A name shared by several
    /// organizations is ambiguous: `Conflict`.
    pub async fn find_org(&self, id_or_name: &str) -> Result<OrgId, StoreError> {
        if let Ok(id) = Uuid::parse_str(id_or_name) {
            let r = sqlx::query("SELECT id FROM organizations WHERE id = $1")
                .bind(id.to_string())
                .fetch_optional(&self.pool)
                .await?;
            if let Some(r) = r {
                return row::uuid(&r, "id");
            }
        }
        let rows = sqlx::query("SELECT id FROM organizations WHERE name = $1")
            .bind(id_or_name)
            .fetch_all(&self.pool)
            .await?;
        match rows.as_slice() {
            [] => Err(StoreError::NotFound),
            [r] => row::uuid(r, "id"),
            _ => Err(StoreError::Conflict(format!(
                "{} organizations are named {id_or_name:?}; pass the id",
                rows.len()
            ))),
        }
    }

    /// The organization's API keys, oldest first.
    pub async fn list_api_keys(&self, org: OrgId) -> Result<Vec<ApiKeyInfo>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, name, prefix, created_at, last_used_at FROM api_keys \
             WHERE org_id = $1 ORDER BY seq",
        )
        .bind(org.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ApiKeyInfo {
                    seq: row::i(r, "seq")?,
                    name: row::os(r, "name")?,
                    prefix: row::s(r, "prefix")?,
                    created_at: row::ts(r, "created_at")?,
                    last_used_at: row::ots(r, "last_used_at")?,
                })
            })
            .collect()
    }

    /// A new named key for the organization; the key is returned once.
    pub async fn create_api_key(&self, org: OrgId, name: &str) -> Result<String, StoreError> {
        let key = new_api_key();
        let _write = self.write_gate().await;
        sqlx::query(
            "INSERT INTO api_keys (key_hash, org_id, prefix, created_at, name) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(hash_key(&key))
        .bind(org.to_string())
        .bind(&key[..10])
        .bind(Timestamp::now().micros())
        .bind(name)
        .execute(&self.pool)
        .await?;
        Ok(key)
    }

    /// Revokes (deletes) one of the organization's keys. `NotFound` for another's.
    pub async fn revoke_api_key(&self, org: OrgId, seq: i64) -> Result<(), StoreError> {
        let _write = self.write_gate().await;
        let done = sqlx::query("DELETE FROM api_keys WHERE org_id = $1 AND seq = $2")
            .bind(org.to_string())
            .bind(seq)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Records that a key was just used. Called by the API when a key is looked up in the
    /// database (at most once per key-cache period), so not a write per request.
    pub async fn touch_api_key(&self, key: &str) -> Result<(), StoreError> {
        let _write = self.write_gate().await;
        sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE key_hash = $2")
            .bind(Timestamp::now().micros())
            .bind(hash_key(key))
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// One bucket of the dashboard overview: calls of one UTC day with one status.
#[derive(Debug, Clone)]
pub struct DayStatusCount {
    /// Days since 1970-01-01 (UTC).
    pub day: i64,
    pub status: String,
    pub calls: i64,
    /// Sum of `duration_seconds` of these calls.
    pub duration_seconds: i64,
}

impl Store {
    /// Calls per UTC day and status created since `since` (the overview's charts).
    pub async fn calls_per_day(
        &self,
        org: OrgId,
        since: Timestamp,
    ) -> Result<Vec<DayStatusCount>, StoreError> {
        // Integer division of BIGINT microseconds is a whole day on both engines; the SUM is
        // cast back to BIGINT (PostgreSQL widens it to NUMERIC).
        let rows = sqlx::query(
            "SELECT created_at / 86400000000 AS day, status, COUNT(*) AS n, \
             CAST(COALESCE(SUM(duration_seconds), 0) AS BIGINT) AS dur \
             FROM calls WHERE org_id = $1 AND created_at >= $2 \
             GROUP BY created_at / 86400000000, status",
        )
        .bind(org.to_string())
        .bind(since.micros())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DayStatusCount {
                    day: row::i(r, "day")?,
                    status: row::s(r, "status")?,
                    calls: row::i(r, "n")?,
                    duration_seconds: row::i(r, "dur")?,
                })
            })
            .collect()
    }

    /// Creation time and `details.latency_metrics` of the newest calls (at most `limit`) created
    /// since `since` that have latency figures: the overview's latency chart.
    pub async fn recent_latencies(
        &self,
        org: OrgId,
        since: Timestamp,
        limit: i64,
    ) -> Result<Vec<(Timestamp, serde_json::Value)>, StoreError> {
        let rows = sqlx::query(
            "SELECT created_at, details FROM calls WHERE org_id = $1 AND created_at >= $2 \
             AND details IS NOT NULL ORDER BY created_at DESC LIMIT $3",
        )
        .bind(org.to_string())
        .bind(since.micros())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::new();
        for r in &rows {
            if let Some(d) = row::ojson(r, "details")? {
                if let Some(m) = d.get("latency_metrics").filter(|m| !m.is_null()) {
                    out.push((row::ts(r, "created_at")?, m.clone()));
                }
            }
        }
        Ok(out)
    }

    /// Calls live right now (dialing or in progress).
    pub async fn live_call_count(&self, org: OrgId) -> Result<i64, StoreError> {
        let r = sqlx::query(
            "SELECT COUNT(*) AS n FROM calls WHERE org_id = $1 \
             AND status IN ('dialing', 'in_progress')",
        )
        .bind(org.to_string())
        .fetch_one(&self.pool)
        .await?;
        row::i(&r, "n")
    }
}
