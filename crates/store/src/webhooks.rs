//! Webhook endpoints, per-agent webhook secrets, and the delivery queue the worker
//! (crates/webhooks) claims with leases, like the dispatch queue.

use crate::events::NewEvent;
use crate::read::Params;
use crate::{row, Backend, Store, StoreError};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rand::RngCore;
use serde_json::{json, Value};
use switchboard_domain::{AgentId, OrgId, Timestamp};

/// A webhook endpoint of an organization (the secret is never part of it).
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookEndpoint {
    pub seq: i64,
    pub id: String,
    pub org_id: OrgId,
    pub url: String,
    pub events: Vec<String>,
    pub description: Option<String>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub failing_since: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl WebhookEndpoint {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "url": self.url,
            "events": self.events,
            "description": self.description,
            "enabled": self.enabled,
            "disabled_reason": self.disabled_reason,
            "failing_since": self.failing_since,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        })
    }
}

/// A change to an endpoint; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct WebhookEndpointPatch {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub description: Option<Option<String>>,
    pub enabled: Option<bool>,
}

/// One delivery attempt, as `GET /v1/webhook-endpoints/{id}/deliveries` lists them.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookAttempt {
    pub seq: i64,
    pub event_seq: i64,
    pub attempted_at: Timestamp,
    pub status_code: Option<i64>,
    pub response_ms: Option<i64>,
    pub error: Option<String>,
    pub next_retry_at: Option<Timestamp>,
}

/// A delivery claimed by a worker.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedDelivery {
    pub seq: i64,
    pub event_seq: i64,
    pub org_id: OrgId,
    /// An endpoint id or an agent id (see `target_kind`).
    pub target: String,
    /// `endpoint` or `agent`.
    pub target_kind: String,
    /// Attempts made before this one.
    pub attempts: i64,
}

/// Where a delivery goes, read at delivery time (a patched URL or rotated secret applies to
/// retries too).
#[derive(Debug, Clone)]
pub struct DeliveryTarget {
    pub url: String,
    pub secret: String,
    pub enabled: bool,
}

/// The result of one attempt, for [`Store::finish_delivery`].
#[derive(Debug, Clone)]
pub struct AttemptResult {
    pub attempted_at: Timestamp,
    pub status_code: Option<i64>,
    pub response_ms: Option<i64>,
    pub error: Option<String>,
    pub success: bool,
    /// When to try again after a failure; `None` = give up (the schedule is exhausted).
    pub next_retry_at: Option<Timestamp>,
}

/// A new signing secret: `whsec_` + base64 of 24 random bytes (Standard Webhooks format).
pub fn new_webhook_secret() -> String {
    let mut b = [0u8; 24];
    rand::thread_rng().fill_bytes(&mut b);
    format!("whsec_{}", STANDARD.encode(b))
}

const ENDPOINT_COLS: &str = "seq, id, org_id, url, event_types, description, enabled, \
    disabled_reason, failing_since, created_at, updated_at";

fn endpoint_from_row(r: &dyn crate::read::Cols) -> Result<WebhookEndpoint, StoreError> {
    Ok(WebhookEndpoint {
        seq: row::i(r, "seq")?,
        id: row::s(r, "id")?,
        org_id: row::uuid(r, "org_id")?,
        url: row::s(r, "url")?,
        events: serde_json::from_str(&row::s(r, "event_types")?)
            .map_err(|_| StoreError::Corrupt("event_types".into()))?,
        description: row::os(r, "description")?,
        enabled: row::i(r, "enabled")? != 0,
        disabled_reason: row::os(r, "disabled_reason")?,
        failing_since: row::ots(r, "failing_since")?,
        created_at: row::ts(r, "created_at")?,
        updated_at: row::ts(r, "updated_at")?,
    })
}

impl Store {
    /// Creates an endpoint; returns it with its secret (shown to the client this once).
    pub async fn create_webhook_endpoint(
        &self,
        org: OrgId,
        url: &str,
        events: &[String],
        description: Option<&str>,
    ) -> Result<(WebhookEndpoint, String), StoreError> {
        let id = uuid::Uuid::new_v4().to_string();
        let secret = new_webhook_secret();
        let now = Timestamp::now().micros();
        let _write = self.write_gate().await;
        sqlx::query(
            "INSERT INTO webhook_endpoints (id, org_id, url, event_types, description, secret, enabled, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $7)",
        )
        .bind(&id)
        .bind(org.to_string())
        .bind(url)
        .bind(serde_json::to_string(events).unwrap_or_default())
        .bind(description)
        .bind(&secret)
        .bind(now)
        .execute(&self.pool)
        .await?;
        drop(_write);
        Ok((self.get_webhook_endpoint(org, &id).await?, secret))
    }

    pub async fn get_webhook_endpoint(
        &self,
        org: OrgId,
        id: &str,
    ) -> Result<WebhookEndpoint, StoreError> {
        let mut p = Params::new();
        p.push_str(org.to_string());
        p.push_str(id.to_string());
        self.fetch_one(
            &format!("SELECT {ENDPOINT_COLS} FROM webhook_endpoints WHERE org_id = $1 AND id = $2"),
            &p,
            endpoint_from_row,
        )
        .await
    }

    /// The organization's endpoints after `after` (a seq), oldest first; (page, has_more).
    pub async fn list_webhook_endpoints(
        &self,
        org: OrgId,
        after: Option<i64>,
        limit: u32,
    ) -> Result<(Vec<WebhookEndpoint>, bool), StoreError> {
        let mut p = Params::new();
        p.push_str(org.to_string());
        p.push_i64(after.unwrap_or(0));
        p.push_i64(limit as i64 + 1);
        let mut v = self
            .fetch(
                &format!(
                    "SELECT {ENDPOINT_COLS} FROM webhook_endpoints WHERE org_id = $1 AND seq > $2 \
                     ORDER BY seq LIMIT $3"
                ),
                &p,
                endpoint_from_row,
            )
            .await?;
        let more = v.len() > limit as usize;
        v.truncate(limit as usize);
        Ok((v, more))
    }

    /// Applies a patch. Enabling an endpoint clears its disabled reason and failure run.
    pub async fn update_webhook_endpoint(
        &self,
        org: OrgId,
        id: &str,
        patch: WebhookEndpointPatch,
    ) -> Result<WebhookEndpoint, StoreError> {
        let cur = self.get_webhook_endpoint(org, id).await?;
        let enabled = patch.enabled.unwrap_or(cur.enabled);
        let (reason, failing) = if enabled {
            (None, if cur.enabled { cur.failing_since } else { None })
        } else if cur.enabled {
            (Some("disabled by the API".to_string()), cur.failing_since)
        } else {
            (cur.disabled_reason.clone(), cur.failing_since)
        };
        let _write = self.write_gate().await;
        sqlx::query(
            "UPDATE webhook_endpoints SET url = $1, event_types = $2, description = $3, enabled = $4, \
             disabled_reason = $5, failing_since = $6, updated_at = $7 WHERE org_id = $8 AND id = $9",
        )
        .bind(patch.url.unwrap_or(cur.url))
        .bind(serde_json::to_string(&patch.events.unwrap_or(cur.events)).unwrap_or_default())
        .bind(patch.description.unwrap_or(cur.description))
        .bind(enabled as i64)
        .bind(reason)
        .bind(failing.map(|t| t.micros()))
        .bind(Timestamp::now().micros())
        .bind(org.to_string())
        .bind(id)
        .execute(&self.pool)
        .await?;
        drop(_write);
        self.get_webhook_endpoint(org, id).await
    }

    /// Deletes an endpoint with its pending deliveries and its attempts.
    pub async fn delete_webhook_endpoint(&self, org: OrgId, id: &str) -> Result<(), StoreError> {
        self.get_webhook_endpoint(org, id).await?;
        let _write = self.write_gate().await;
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM webhook_endpoints WHERE org_id = $1 AND id = $2")
            .bind(org.to_string())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM webhook_deliveries WHERE target = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM webhook_attempts WHERE target = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A new secret for the endpoint; the old one stops signing at once.
    pub async fn rotate_webhook_secret(&self, org: OrgId, id: &str) -> Result<String, StoreError> {
        let secret = new_webhook_secret();
        let _write = self.write_gate().await;
        let done = sqlx::query(
            "UPDATE webhook_endpoints SET secret = $1, updated_at = $2 WHERE org_id = $3 AND id = $4",
        )
        .bind(&secret)
        .bind(Timestamp::now().micros())
        .bind(org.to_string())
        .bind(id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(secret)
    }

    /// The secret that signs the agent's `webhook_url` deliveries, made on first use.
    pub async fn agent_webhook_secret(
        &self,
        org: OrgId,
        agent: AgentId,
    ) -> Result<String, StoreError> {
        let get = || async {
            let r = sqlx::query("SELECT webhook_secret FROM agents WHERE org_id = $1 AND id = $2")
                .bind(org.to_string())
                .bind(agent.to_string())
                .fetch_optional(&self.pool)
                .await?
                .ok_or(StoreError::NotFound)?;
            row::os(&r, "webhook_secret")
        };
        if let Some(s) = get().await? {
            return Ok(s);
        }
        {
            let _write = self.write_gate().await;
            // Conditional: two first users race to one secret.
            sqlx::query(
                "UPDATE agents SET webhook_secret = $1 WHERE org_id = $2 AND id = $3 AND webhook_secret IS NULL",
            )
            .bind(new_webhook_secret())
            .bind(org.to_string())
            .bind(agent.to_string())
            .execute(&self.pool)
            .await?;
        }
        get().await?.ok_or(StoreError::NotFound)
    }

    /// Attempts at an endpoint, newest first, before the attempt `before` (a seq).
    pub async fn list_webhook_attempts(
        &self,
        org: OrgId,
        endpoint: &str,
        before: Option<i64>,
        limit: u32,
    ) -> Result<(Vec<WebhookAttempt>, bool), StoreError> {
        self.get_webhook_endpoint(org, endpoint).await?;
        let mut p = Params::new();
        p.push_str(endpoint.to_string());
        p.push_i64(before.unwrap_or(i64::MAX));
        p.push_i64(limit as i64 + 1);
        let mut v = self
            .fetch(
                "SELECT seq, event_seq, attempted_at, status_code, response_ms, error, next_retry_at \
                 FROM webhook_attempts WHERE target = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3",
                &p,
                |r| {
                    Ok(WebhookAttempt {
                        seq: row::i(r, "seq")?,
                        event_seq: row::i(r, "event_seq")?,
                        attempted_at: row::ts(r, "attempted_at")?,
                        status_code: row::oi(r, "status_code")?,
                        response_ms: row::oi(r, "response_ms")?,
                        error: row::os(r, "error")?,
                        next_retry_at: row::ots(r, "next_retry_at")?,
                    })
                },
            )
            .await?;
        let more = v.len() > limit as usize;
        v.truncate(limit as usize);
        Ok((v, more))
    }

    /// Sends an event to an endpoint again now: its delivery goes back to pending (or is
    /// created, for an event of the organization the endpoint never had).
    pub async fn retry_webhook_delivery(
        &self,
        org: OrgId,
        endpoint: &str,
        event_seq: i64,
    ) -> Result<(), StoreError> {
        self.get_webhook_endpoint(org, endpoint).await?;
        self.get_event(org, event_seq).await?;
        let now = Timestamp::now().micros();
        {
            let _write = self.write_gate().await;
            let done = sqlx::query(
                "UPDATE webhook_deliveries SET state = 'pending', next_attempt_at = $1, claimed_by = NULL, \
                 claimed_until = NULL WHERE target = $2 AND event_seq = $3",
            )
            .bind(now)
            .bind(endpoint)
            .bind(event_seq)
            .execute(&self.pool)
            .await?;
            if done.rows_affected() == 0 {
                sqlx::query(
                    "INSERT INTO webhook_deliveries (event_seq, org_id, target, target_kind, state, attempts, \
                     next_attempt_at, created_at) VALUES ($1, $2, $3, 'endpoint', 'pending', 0, $4, $4) \
                     ON CONFLICT (target, event_seq) DO NOTHING",
                )
                .bind(event_seq)
                .bind(org.to_string())
                .bind(endpoint)
                .bind(now)
                .execute(&self.pool)
                .await?;
            }
        }
        self.wake_deliveries();
        Ok(())
    }

    /// Claims up to `n` due deliveries for `worker` for `lease_micros`: at most `per_target`
    /// for any one target, none for the targets in `busy` (already at their concurrency in
    /// this worker), oldest due first. PostgreSQL: `FOR UPDATE SKIP LOCKED`, so replicas
    /// claim disjoint rows without waiting on each other.
    pub async fn claim_deliveries(
        &self,
        worker: &str,
        n: u32,
        per_target: u32,
        lease_micros: i64,
        busy: &[String],
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        let now = Timestamp::now().micros();
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let mut excl = String::new();
        for i in 0..busy.len() {
            excl.push_str(if i == 0 { " AND target NOT IN (" } else { ", " });
            excl.push_str(&format!("${}", i + 6));
        }
        if !busy.is_empty() {
            excl.push(')');
        }
        // Candidates are locked (PostgreSQL) in the innermost query; the window keeps at most
        // per_target of them per target, so one target with a backlog cannot fill the batch.
        let sql = format!(
            "UPDATE webhook_deliveries SET claimed_by = $1, claimed_until = $2 WHERE seq IN ( \
               SELECT seq FROM ( \
                 SELECT seq, ROW_NUMBER() OVER (PARTITION BY target ORDER BY next_attempt_at, seq) AS rn, \
                        next_attempt_at AS due FROM ( \
                   SELECT seq, target, next_attempt_at FROM webhook_deliveries \
                   WHERE state = 'pending' AND next_attempt_at <= $3 \
                   AND (claimed_until IS NULL OR claimed_until < $3){excl} \
                   ORDER BY next_attempt_at, seq LIMIT 512{lock}) cand \
               ) ranked WHERE rn <= $4 ORDER BY due, seq LIMIT $5) \
             RETURNING seq, event_seq, org_id, target, target_kind, attempts"
        );
        let mut q = sqlx::query(&sql)
            .bind(worker)
            .bind(now + lease_micros)
            .bind(now)
            .bind(per_target as i64)
            .bind(n as i64);
        for b in busy {
            q = q.bind(b);
        }
        let _write = self.write_gate().await;
        let rows = q.fetch_all(&self.pool).await?;
        drop(_write);
        let mut v = rows
            .iter()
            .map(|r| {
                Ok(ClaimedDelivery {
                    seq: row::i(r, "seq")?,
                    event_seq: row::i(r, "event_seq")?,
                    org_id: row::uuid(r, "org_id")?,
                    target: row::s(r, "target")?,
                    target_kind: row::s(r, "target_kind")?,
                    attempts: row::i(r, "attempts")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        v.sort_by_key(|d| d.seq);
        Ok(v)
    }

    /// Puts back the claims of `worker` (its previous life, at start).
    pub async fn release_delivery_claims(&self, worker: &str) -> Result<u64, StoreError> {
        let _write = self.write_gate().await;
        Ok(sqlx::query(
            "UPDATE webhook_deliveries SET claimed_by = NULL, claimed_until = NULL \
             WHERE claimed_by = $1 AND state = 'pending'",
        )
        .bind(worker)
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    /// Where a claimed delivery goes now; `None` if its endpoint or agent (or the agent's
    /// webhook_url) is gone.
    pub async fn delivery_target(
        &self,
        d: &ClaimedDelivery,
    ) -> Result<Option<DeliveryTarget>, StoreError> {
        if d.target_kind == "agent" {
            let r = sqlx::query("SELECT webhook_url FROM agents WHERE id = $1")
                .bind(&d.target)
                .fetch_optional(&self.pool)
                .await?;
            let Some(url) = r
                .map(|r| row::os(&r, "webhook_url"))
                .transpose()?
                .flatten()
                .filter(|u| !u.trim().is_empty())
            else {
                return Ok(None);
            };
            let agent: AgentId = d
                .target
                .parse()
                .map_err(|_| StoreError::Corrupt("delivery target".into()))?;
            let secret = self.agent_webhook_secret(d.org_id, agent).await?;
            return Ok(Some(DeliveryTarget {
                url,
                secret,
                enabled: true,
            }));
        }
        let r = sqlx::query("SELECT url, secret, enabled FROM webhook_endpoints WHERE id = $1")
            .bind(&d.target)
            .fetch_optional(&self.pool)
            .await?;
        match r {
            None => Ok(None),
            Some(r) => Ok(Some(DeliveryTarget {
                url: row::s(&r, "url")?,
                secret: row::s(&r, "secret")?,
                enabled: row::i(&r, "enabled")? != 0,
            })),
        }
    }

    /// Drops a delivery whose target is gone.
    pub async fn drop_delivery(&self, seq: i64) -> Result<(), StoreError> {
        let _write = self.write_gate().await;
        sqlx::query("DELETE FROM webhook_deliveries WHERE seq = $1")
            .bind(seq)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records an attempt and its consequences in one transaction: the delivery succeeds,
    /// waits for its retry, or fails for good; an endpoint's run of failures starts or ends,
    /// and an endpoint failing for `disable_after_micros` is disabled with a
    /// `webhook_endpoint.disabled` event. Returns true if this disabled the endpoint.
    pub async fn finish_delivery(
        &self,
        worker: &str,
        d: &ClaimedDelivery,
        a: &AttemptResult,
        disable_after_micros: i64,
    ) -> Result<bool, StoreError> {
        let now = Timestamp::now();
        let (state, next) = if a.success {
            ("succeeded", None)
        } else if let Some(t) = a.next_retry_at {
            ("pending", Some(t))
        } else {
            ("failed", None)
        };
        let _write = self.write_gate().await;
        let mut tx = self.pool.begin().await?;
        // Only while the claim is still ours: a lease that ran out belongs to another worker,
        // which will send (at least once) and record its own attempt.
        let done = sqlx::query(
            "UPDATE webhook_deliveries SET state = $1, attempts = attempts + 1, next_attempt_at = $2, \
             claimed_by = NULL, claimed_until = NULL WHERE seq = $3 AND claimed_by = $4",
        )
        .bind(state)
        .bind(next.unwrap_or(now).micros())
        .bind(d.seq)
        .bind(worker)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO webhook_attempts (delivery_seq, target, event_seq, attempted_at, status_code, \
             response_ms, error, next_retry_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(d.seq)
        .bind(&d.target)
        .bind(d.event_seq)
        .bind(a.attempted_at.micros())
        .bind(a.status_code)
        .bind(a.response_ms)
        .bind(&a.error)
        .bind(if done.rows_affected() > 0 {
            next.map(|t| t.micros())
        } else {
            None
        })
        .execute(&mut *tx)
        .await?;
        let mut disabled = false;
        if d.target_kind == "endpoint" {
            if a.success {
                sqlx::query("UPDATE webhook_endpoints SET failing_since = NULL WHERE id = $1 AND failing_since IS NOT NULL")
                    .bind(&d.target)
                    .execute(&mut *tx)
                    .await?;
            } else {
                sqlx::query(
                    "UPDATE webhook_endpoints SET failing_since = $1 WHERE id = $2 AND failing_since IS NULL",
                )
                .bind(a.attempted_at.micros())
                .bind(&d.target)
                .execute(&mut *tx)
                .await?;
                let r = sqlx::query(
                    "UPDATE webhook_endpoints SET enabled = 0, disabled_reason = $1, updated_at = $2 \
                     WHERE id = $3 AND enabled = 1 AND failing_since <= $4 RETURNING org_id, url, failing_since",
                )
                .bind("failing for too long: every delivery attempt failed since failing_since")
                .bind(now.micros())
                .bind(&d.target)
                .bind(now.micros() - disable_after_micros)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(r) = r {
                    disabled = true;
                    let ev = NewEvent {
                        org_id: row::uuid(&r, "org_id")?,
                        event_type: "webhook_endpoint.disabled",
                        call_id: None,
                        agent_id: None,
                        data: json!({
                            "id": d.target,
                            "url": row::s(&r, "url")?,
                            "failing_since": row::ots(&r, "failing_since")?,
                            "last_error": a.error,
                            "last_status_code": a.status_code,
                        }),
                    };
                    self.emit_event(&mut tx, &ev).await?;
                    // Its other pending deliveries stop here (a retry request re-sends one).
                    sqlx::query(
                        "UPDATE webhook_deliveries SET state = 'failed' WHERE target = $1 AND state = 'pending'",
                    )
                    .bind(&d.target)
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        tx.commit().await?;
        if disabled {
            self.events_committed();
        }
        Ok(disabled)
    }

    /// Marks a claimed delivery failed without an HTTP attempt (its endpoint is disabled).
    pub async fn fail_delivery(&self, d: &ClaimedDelivery, why: &str) -> Result<(), StoreError> {
        let _write = self.write_gate().await;
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE webhook_deliveries SET state = 'failed', claimed_by = NULL, claimed_until = NULL WHERE seq = $1",
        )
        .bind(d.seq)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO webhook_attempts (delivery_seq, target, event_seq, attempted_at, error) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(d.seq)
        .bind(&d.target)
        .bind(d.event_seq)
        .bind(Timestamp::now().micros())
        .bind(why)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deliveries by state (`pending`, `succeeded`, `failed`) for one target: tests and the
    /// benchmark.
    pub async fn count_deliveries(&self, target: &str, state: &str) -> Result<i64, StoreError> {
        let r = sqlx::query(
            "SELECT COUNT(*) AS n FROM webhook_deliveries WHERE target = $1 AND state = $2",
        )
        .bind(target)
        .bind(state)
        .fetch_one(&self.pool)
        .await?;
        row::i(&r, "n")
    }
}
