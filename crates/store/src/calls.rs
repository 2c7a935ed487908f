//! The calls repository: dispatch with idempotency, keyset and offset listing with every
//! filter, reads with or without the heavy details, context updates, deletion, and the
//! status transitions the engine writes.

use crate::events::NewEvent;
use crate::read::{Cols, Params};
use crate::row::{self, b, json_text};
use crate::{encode_cursor, Backend, Store, StoreError};
use serde_json::Value;
use sqlx::Row;
use switchboard_domain::*;

pub enum CreateCallOutcome {
    /// A new call, stored and (if outbound) queued for dispatch.
    Created(Call),
    /// The Idempotency-Key was seen before with the same body: the original call.
    Replayed(Call),
}

#[derive(Debug, Clone)]
pub struct CallPage {
    pub calls: Vec<Call>,
    /// Opaque cursor for the next page when there may be more (keyset paging).
    pub next_cursor: Option<String>,
    /// All matching rows (only when asked for).
    pub total: Option<i64>,
    pub has_more: bool,
}

/// A change the engine writes to a call. `status` is checked against the allowed transitions.
#[derive(Debug, Clone, Default)]
pub struct CallUpdate {
    pub status: Option<CallStatus>,
    pub started_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
    pub duration_seconds: Option<i64>,
    pub end_reason: Option<String>,
    pub sip_code: Option<i64>,
    pub recording: Option<RecordingMeta>,
    /// Answering-machine detection's verdict (`human`, `machine_start`, ...).
    pub answered_by: Option<String>,
    pub went_to_voicemail: Option<bool>,
    /// Queue the call's post-call analysis, in the same transaction as this (final) update.
    pub analyze: bool,
}

const LIGHT_COLS: &str = "c.seq, c.id, c.org_id, c.agent_id, c.contact_id, c.phone_number_id, c.campaign_id, \
    c.call_type, c.status, c.client_number, c.agent_phone_number, c.context, c.metadata, c.user_speaks_first, \
    c.created_at, c.started_at, c.ended_at, c.duration_seconds, c.end_reason, c.sip_code, c.went_to_voicemail, \
    c.call_success, c.answered_by, c.ring_timeout_seconds, c.recording, c.created_at AS k_created, c.start_key, c.end_key";

const JOINS: &str = "LEFT JOIN agents a ON a.id = c.agent_id \
    LEFT JOIN contacts ct ON ct.id = c.contact_id \
    LEFT JOIN phone_numbers p ON p.id = c.phone_number_id \
    LEFT JOIN campaigns cp ON cp.id = c.campaign_id";

const JOINED_COLS: &str = "a.name AS agent_name, a.seq AS agent_number, ct.identifier AS ct_identifier, \
    ct.contact_type AS ct_type, ct.first_name AS ct_first, ct.last_name AS ct_last, ct.email AS ct_email, \
    ct.created_at AS ct_created, p.seq AS phone_seq, cp.name AS campaign_name";

fn sort_col(o: OrderBy) -> &'static str {
    match o {
        OrderBy::CreatedAt => "created_at",
        OrderBy::StartedAt => "start_key",
        OrderBy::EndedAt => "end_key",
    }
}

/// What a details write does beside the details (see [`Store::modify_details_with`]).
pub(crate) struct DetailsExtra {
    pub event_type: &'static str,
    pub call_success: Option<bool>,
    pub dequeue_analysis: bool,
}

pub(crate) fn call_from_row(r: &dyn Cols, with_details: bool) -> Result<Call, StoreError> {
    let contact = match row::ouuid::<ContactId>(r, "contact_id")? {
        Some(id) => match row::os(r, "ct_identifier")? {
            Some(identifier) => Some(ContactSummary {
                id,
                identifier,
                contact_type: row::os(r, "ct_type")?.unwrap_or_else(|| "call".into()),
                first_name: row::os(r, "ct_first")?,
                last_name: row::os(r, "ct_last")?,
                email: row::os(r, "ct_email")?,
                created_date: row::ts(r, "ct_created")?,
            }),
            None => None,
        },
        None => None,
    };
    let recording = match row::os(r, "recording")? {
        Some(t) => {
            Some(serde_json::from_str(&t).map_err(|_| StoreError::Corrupt("recording".into()))?)
        }
        None => None,
    };
    let details = if with_details {
        Some(match row::os(r, "details")? {
            Some(t) => {
                serde_json::from_str(&t).map_err(|_| StoreError::Corrupt("details".into()))?
            }
            None => CallDetails::default(),
        })
    } else {
        None
    };
    Ok(Call {
        id: row::uuid(r, "id")?,
        seq: row::i(r, "seq")?,
        org_id: row::uuid(r, "org_id")?,
        agent_id: row::ouuid(r, "agent_id")?,
        agent_name: row::os(r, "agent_name")?,
        agent_number: row::oi(r, "agent_number")?,
        contact,
        phone_number_id: row::ouuid(r, "phone_number_id")?,
        phone_number_number: row::oi(r, "phone_seq")?,
        campaign_id: row::ouuid(r, "campaign_id")?,
        campaign_name: row::os(r, "campaign_name")?,
        call_type: CallType::parse(&row::s(r, "call_type")?)
            .map_err(|_| StoreError::Corrupt("call_type".into()))?,
        status: CallStatus::parse(&row::s(r, "status")?)
            .map_err(|_| StoreError::Corrupt("status".into()))?,
        client_number: row::phone(r, "client_number")?,
        agent_phone_number: row::ophone(r, "agent_phone_number")?,
        context: row::ojson(r, "context")?,
        metadata: row::ojson(r, "metadata")?,
        user_speaks_first: row::i(r, "user_speaks_first")? != 0,
        created_at: row::ts(r, "created_at")?,
        started_at: row::ots(r, "started_at")?,
        ended_at: row::ots(r, "ended_at")?,
        duration_seconds: row::oi(r, "duration_seconds")?,
        end_reason: row::os(r, "end_reason")?,
        sip_code: row::oi(r, "sip_code")?,
        went_to_voicemail: row::ob(r, "went_to_voicemail")?,
        call_success: row::ob(r, "call_success")?,
        answered_by: row::os(r, "answered_by")?,
        ring_timeout_seconds: row::oi(r, "ring_timeout_seconds")?,
        recording,
        details,
    })
}

fn filter_conds(p: &mut Params, org: OrgId, f: &CallFilter) -> Vec<String> {
    let mut conds = vec![format!("c.org_id = {}", p.push_str(org.to_string()))];
    if let Some(a) = f.agent_id {
        conds.push(format!("c.agent_id = {}", p.push_str(a.to_string())));
    }
    if let Some(n) = &f.client_number {
        conds.push(format!("c.client_number = {}", p.push_str(n.to_string())));
    }
    if let Some(c) = f.contact_id {
        conds.push(format!("c.contact_id = {}", p.push_str(c.to_string())));
    }
    if let Some(c) = f.campaign_id {
        conds.push(format!("c.campaign_id = {}", p.push_str(c.to_string())));
    }
    if let Some(s) = f.status {
        conds.push(format!("c.status = {}", p.push_str(s.as_str().to_string())));
    }
    if let Some(t) = f.call_type {
        conds.push(format!(
            "c.call_type = {}",
            p.push_str(t.as_str().to_string())
        ));
    }
    if let Some(from) = f.from {
        conds.push(format!("c.start_key >= {}", p.push_i64(from.micros())));
    }
    if let Some(to) = f.to {
        conds.push(format!("c.start_key <= {}", p.push_i64(to.micros())));
    }
    conds
}

/// The SQL and arguments of one calls page: shared by `list_calls` and the benchmark's
/// raw-SQL timing, so both run exactly the same statement.
pub(crate) fn list_calls_sql(org: OrgId, q: &CallListQuery) -> (String, Params) {
    let mut p = Params::new();
    let mut conds = filter_conds(&mut p, org, &q.filter);
    // Conditions so far are the filter; the total counts them, not the cursor.
    let col = sort_col(q.order_by);
    let (cmp, dir) = match q.order {
        Order::Asc => (">", "ASC"),
        Order::Desc => ("<", "DESC"),
    };
    let mut offset = 0u64;
    match &q.page {
        Page::After(Some(pos)) => {
            let k = p.push_i64(pos.key);
            let s = p.push_i64(pos.seq);
            // Expanded row comparison: lets both engines range-scan (key, seq) indexes.
            conds.push(format!(
                "c.{col} {cmp}= {k} AND (c.{col} {cmp} {k} OR c.seq {cmp} {s})"
            ));
        }
        Page::After(None) => {}
        Page::Offset(o) => offset = *o,
    }
    let limit = p.push_i64(q.limit as i64 + 1);
    let off = p.push_i64(offset as i64);
    let details = if q.with_details { ", c.details" } else { "" };
    // Page the calls table alone first, then join the few rows of the page: the joins
    // never touch more rows than the page holds.
    let sql = format!(
        "SELECT c.*, {JOINED_COLS} FROM (SELECT {LIGHT_COLS}{details} FROM calls c WHERE {} \
         ORDER BY c.{col} {dir}, c.seq {dir} LIMIT {limit} OFFSET {off}) c {JOINS} ORDER BY c.{col} {dir}, c.seq {dir}",
        conds.join(" AND ")
    );
    (sql, p)
}

/// The SQL of one call by org and id (`$1`, `$2`).
pub(crate) fn get_call_sql(with_details: bool) -> String {
    format!(
        "SELECT {LIGHT_COLS}, {JOINED_COLS}{} FROM calls c {JOINS} WHERE c.org_id = $1 AND c.id = $2",
        if with_details { ", c.details" } else { "" }
    )
}

impl Store {
    /// Stores a new call, its contact (created on first sight of the number) and, for an
    /// outbound call, its dispatch queue entry, in one transaction. With an idempotency key,
    /// a repeat with the same body hash returns the original call instead.
    pub async fn create_call(
        &self,
        new: NewCall,
        idempotency: Option<(String, String)>,
    ) -> Result<CreateCallOutcome, StoreError> {
        let id = CallId::new();
        let now = Timestamp::now();
        let _write = self.write_gate().await;
        let mut tx = self.pool.begin().await?;
        if let Some((key, hash)) = &idempotency {
            // Write first: on SQLite a transaction that starts with a write takes the lock at
            // once instead of failing to upgrade later; on PostgreSQL a concurrent duplicate
            // waits here on the primary key until the first commits.
            let inserted = sqlx::query(
                "INSERT INTO idempotency_keys (org_id, idem_key, request_hash, call_id, created_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (org_id, idem_key) DO NOTHING",
            )
            .bind(new.org_id.to_string())
            .bind(key)
            .bind(hash)
            .bind(id.to_string())
            .bind(now.micros())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 0 {
                let r = sqlx::query("SELECT request_hash, call_id FROM idempotency_keys WHERE org_id = $1 AND idem_key = $2")
                    .bind(new.org_id.to_string())
                    .bind(key)
                    .fetch_one(&mut *tx)
                    .await?;
                tx.rollback().await?;
                if &row::s(&r, "request_hash")? != hash {
                    return Err(StoreError::IdempotencyMismatch);
                }
                let original: CallId = row::uuid(&r, "call_id")?;
                return Ok(CreateCallOutcome::Replayed(
                    self.get_call(new.org_id, original, true).await?,
                ));
            }
        }
        sqlx::query(
            "INSERT INTO contacts (id, org_id, identifier, contact_type, created_at) VALUES ($1, $2, $3, 'call', $4) \
             ON CONFLICT (org_id, identifier) DO NOTHING",
        )
        .bind(ContactId::new().to_string())
        .bind(new.org_id.to_string())
        .bind(new.client_number.to_string())
        .bind(now.micros())
        .execute(&mut *tx)
        .await?;
        let contact = sqlx::query("SELECT id FROM contacts WHERE org_id = $1 AND identifier = $2")
            .bind(new.org_id.to_string())
            .bind(new.client_number.to_string())
            .fetch_one(&mut *tx)
            .await?;
        let contact_id = row::s(&contact, "id")?;
        sqlx::query(
            "INSERT INTO calls (id, org_id, agent_id, contact_id, phone_number_id, campaign_id, call_type, status, \
             client_number, agent_phone_number, context, metadata, user_speaks_first, created_at, start_key, end_key, \
             ring_timeout_seconds, updated_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$14,$14,$15,$14)",
        )
        .bind(id.to_string())
        .bind(new.org_id.to_string())
        .bind(new.agent_id.map(|a| a.to_string()))
        .bind(contact_id)
        .bind(new.phone_number_id.map(|a| a.to_string()))
        .bind(new.campaign_id.map(|a| a.to_string()))
        .bind(new.call_type.as_str())
        .bind(CallStatus::Dialing.as_str())
        .bind(new.client_number.to_string())
        .bind(new.agent_phone_number.as_ref().map(|p| p.to_string()))
        .bind(json_text(&new.context))
        .bind(json_text(&new.metadata))
        .bind(b(new.user_speaks_first))
        .bind(now.micros())
        .bind(new.ring_timeout_seconds)
        .execute(&mut *tx)
        .await?;
        if new.call_type == CallType::Outbound {
            sqlx::query(
                "INSERT INTO dispatch_queue (call_id, org_id, enqueued_at, not_before, attempts) VALUES ($1, $2, $3, $3, 0)",
            )
            .bind(id.to_string())
            .bind(new.org_id.to_string())
            .bind(now.micros())
            .execute(&mut *tx)
            .await?;
        }
        // The outbox: call.created commits with the call.
        let call = Store::call_in_tx(&mut tx, new.org_id, id).await?;
        let data = self.render_call(&call);
        let ev = NewEvent {
            org_id: call.org_id,
            event_type: "call.created",
            call_id: Some(call.id),
            agent_id: call.agent_id,
            data,
        };
        self.emit_event(&mut tx, &ev).await?;
        tx.commit().await?;
        self.events_committed();
        Ok(CreateCallOutcome::Created(
            self.get_call(new.org_id, id, true).await?,
        ))
    }

    /// One call of the organization; another organization's call is `NotFound`.
    pub async fn get_call(
        &self,
        org: OrgId,
        id: CallId,
        with_details: bool,
    ) -> Result<Call, StoreError> {
        let sql = get_call_sql(with_details);
        let mut p = Params::new();
        p.push_str(org.to_string());
        p.push_str(id.to_string());
        self.fetch_one(&sql, &p, move |r| call_from_row(r, with_details))
            .await
    }

    /// A call by id alone, for the engine (which works across organizations).
    pub async fn get_call_any_org(&self, id: CallId) -> Result<Call, StoreError> {
        let r = sqlx::query("SELECT org_id FROM calls WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        self.get_call(row::uuid(&r, "org_id")?, id, true).await
    }

    pub async fn list_calls(&self, org: OrgId, q: &CallListQuery) -> Result<CallPage, StoreError> {
        let (sql, p) = list_calls_sql(org, q);
        let col = sort_col(q.order_by);
        let with_details = q.with_details;
        let mut rows = self
            .fetch(&sql, &p, move |r| {
                Ok((
                    call_from_row(r, with_details)?,
                    row::i(r, col)?,
                    row::i(r, "seq")?,
                ))
            })
            .await?;
        let has_more = rows.len() > q.limit as usize;
        rows.truncate(q.limit as usize);
        let last_key = rows.last().map(|(_, key, seq)| (*key, *seq));
        let calls = rows.into_iter().map(|(c, _, _)| c).collect();
        let next_cursor = match (has_more, last_key) {
            (true, Some((key, seq))) => Some(encode_cursor(&KeysetPosition {
                order_by: q.order_by,
                order: q.order,
                key,
                seq,
            })),
            _ => None,
        };
        let total = if q.with_total {
            let mut cp = Params::new();
            let conds = filter_conds(&mut cp, org, &q.filter);
            let sql = format!(
                "SELECT COUNT(*) AS n FROM calls c WHERE {}",
                conds.join(" AND ")
            );
            Some(self.fetch_one(&sql, &cp, |r| row::i(r, "n")).await?)
        } else {
            None
        };
        Ok(CallPage {
            calls,
            next_cursor,
            total,
            has_more,
        })
    }

    /// Replaces a call's context.
    pub async fn set_call_context(
        &self,
        org: OrgId,
        id: CallId,
        context: Option<Value>,
    ) -> Result<Call, StoreError> {
        let write = self.write_gate().await;
        let done = sqlx::query(
            "UPDATE calls SET context = $1, updated_at = $2 WHERE org_id = $3 AND id = $4",
        )
        .bind(json_text(&context))
        .bind(Timestamp::now().micros())
        .bind(org.to_string())
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        drop(write);
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        self.get_call(org, id, true).await
    }

    /// Deletes a call with its transcript and details (same row) and its queue entry;
    /// returns the recording so the caller can erase the audio objects.
    pub async fn delete_call(
        &self,
        org: OrgId,
        id: CallId,
    ) -> Result<Option<RecordingMeta>, StoreError> {
        let call = self.get_call(org, id, false).await?;
        let _write = self.write_gate().await;
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM dispatch_queue WHERE call_id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM idempotency_keys WHERE org_id = $1 AND call_id = $2")
            .bind(org.to_string())
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM calls WHERE org_id = $1 AND id = $2")
            .bind(org.to_string())
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(call.recording)
    }

    /// Applies an engine update. A status change must be an allowed transition from the
    /// current status (checked and written atomically), so a late event cannot rewrite how a
    /// call ended. Returns the updated call, or `Conflict` if the transition is not allowed.
    pub async fn update_call(&self, id: CallId, u: CallUpdate) -> Result<Call, StoreError> {
        let current = self.get_call_any_org(id).await?;
        if let Some(next) = u.status {
            if next != current.status && !current.status.can_become(next) {
                return Err(StoreError::Conflict(format!(
                    "call {id} cannot go from {} to {next}",
                    current.status
                )));
            }
        }
        let status = u.status.unwrap_or(current.status);
        let started = u.started_at.or(current.started_at);
        let ended = u.ended_at.or(current.ended_at);
        let recording = u.recording.clone().or(current.recording.clone());
        let write = self.write_gate().await;
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE calls SET status=$1, started_at=$2, ended_at=$3, start_key=$4, end_key=$5, duration_seconds=$6, \
             end_reason=$7, sip_code=$8, recording=$9, updated_at=$10, answered_by=$13, went_to_voicemail=$14 \
             WHERE id=$11 AND status=$12",
        )
        .bind(status.as_str())
        .bind(started.map(|t| t.micros()))
        .bind(ended.map(|t| t.micros()))
        .bind(started.unwrap_or(current.created_at).micros())
        .bind(ended.unwrap_or(current.created_at).micros())
        .bind(u.duration_seconds.or(current.duration_seconds))
        .bind(u.end_reason.clone().or(current.end_reason.clone()))
        .bind(u.sip_code.or(current.sip_code))
        .bind(recording.clone().map(|r| serde_json::to_string(&r).unwrap_or_default()))
        .bind(Timestamp::now().micros())
        .bind(id.to_string())
        .bind(current.status.as_str())
        .bind(u.answered_by.clone().or(current.answered_by.clone()))
        .bind(
            u.went_to_voicemail
                .or(current.went_to_voicemail)
                .map(|b| b as i64),
        )
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            tx.rollback().await?;
            drop(write);
            // Someone else moved the status in between: re-evaluate against the new state.
            return Box::pin(self.update_call(id, u)).await;
        }
        // The outbox: the events of this change commit with it. The call after the change
        // is the one read above with the same fields replaced (no second read).
        let after = Call {
            status,
            started_at: started,
            ended_at: ended,
            duration_seconds: u.duration_seconds.or(current.duration_seconds),
            end_reason: u.end_reason.clone().or(current.end_reason.clone()),
            sip_code: u.sip_code.or(current.sip_code),
            recording,
            answered_by: u.answered_by.clone().or(current.answered_by.clone()),
            went_to_voicemail: u.went_to_voicemail.or(current.went_to_voicemail),
            ..current.clone()
        };
        if u.analyze && after.status.is_final() {
            crate::analysis::enqueue(&mut tx, &after).await?;
        }
        let events = self.call_change_events(&current, &after);
        for ev in &events {
            self.emit_event(&mut tx, ev).await?;
        }
        tx.commit().await?;
        drop(write);
        if !events.is_empty() {
            self.events_committed();
        }
        self.get_call_any_org(id).await
    }

    /// Appends an event (a DTMF digit and the like) to the call's details.
    pub async fn append_call_event(&self, id: CallId, event: Value) -> Result<(), StoreError> {
        self.modify_call_details(id, move |details| {
            match details.events.as_mut().and_then(Value::as_array_mut) {
                Some(list) => list.push(event),
                None => details.events = Some(Value::Array(vec![event])),
            }
        })
        .await
    }

    /// Read-modify-write of a call's details in one transaction (the other fields are kept).
    /// Turns added to `transcript_formatted` are emitted as `call.transcript` events in the
    /// same transaction.
    pub async fn modify_call_details(
        &self,
        id: CallId,
        change: impl FnOnce(&mut CallDetails),
    ) -> Result<(), StoreError> {
        self.modify_details_with(id, change, None).await
    }

    /// [`Store::modify_call_details`], plus what `extra` asks for in the same transaction: an
    /// event whose data is the whole call after the change (`call.analyzed`), the
    /// `call_success` column, and the end of the call's analysis job.
    pub(crate) async fn modify_details_with(
        &self,
        id: CallId,
        change: impl FnOnce(&mut CallDetails),
        extra: Option<DetailsExtra>,
    ) -> Result<(), StoreError> {
        let event_type = extra.as_ref().map(|e| e.event_type);
        let _write = self.write_gate().await;
        let mut tx = self.pool.begin().await?;
        // Touch the row first so SQLite takes the write lock before the read (see create_call).
        sqlx::query("UPDATE calls SET updated_at = $1 WHERE id = $2")
            .bind(Timestamp::now().micros())
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        let lock = if self.backend == Backend::Postgres {
            " FOR UPDATE"
        } else {
            ""
        };
        let r = sqlx::query(&format!("SELECT details FROM calls WHERE id = $1{lock}"))
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound)?;
        let mut details: CallDetails = match r.try_get::<Option<String>, _>("details")? {
            Some(t) => {
                serde_json::from_str(&t).map_err(|_| StoreError::Corrupt("details".into()))?
            }
            None => CallDetails::default(),
        };
        let before = details.transcript_formatted.clone();
        change(&mut details);
        let grew = crate::events::turn_count(&details.transcript_formatted)
            > crate::events::turn_count(&before);
        sqlx::query("UPDATE calls SET details = $1 WHERE id = $2")
            .bind(serde_json::to_string(&details).unwrap_or_default())
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        if let Some(x) = &extra {
            if let Some(ok) = x.call_success {
                sqlx::query("UPDATE calls SET call_success = $1 WHERE id = $2")
                    .bind(ok as i64)
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await?;
            }
            if x.dequeue_analysis {
                sqlx::query("DELETE FROM analysis_queue WHERE call_id = $1")
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await?;
            }
        }
        let mut emitted = false;
        if grew || event_type.is_some() {
            let org: OrgId = row::uuid(
                &sqlx::query("SELECT org_id FROM calls WHERE id = $1")
                    .bind(id.to_string())
                    .fetch_one(&mut *tx)
                    .await?,
                "org_id",
            )?;
            let call = Store::call_in_tx(&mut tx, org, id).await?;
            let mut events = self.transcript_events(&call, &before, &details.transcript_formatted);
            if let Some(t) = event_type {
                events.push(NewEvent {
                    org_id: call.org_id,
                    event_type: t,
                    call_id: Some(call.id),
                    agent_id: call.agent_id,
                    data: self.render_call(&call),
                });
            }
            for ev in &events {
                self.emit_event(&mut tx, ev).await?;
            }
            emitted = !events.is_empty();
        }
        tx.commit().await?;
        if emitted {
            self.events_committed();
        }
        Ok(())
    }

    /// Writes the heavy details of a call (transcript, analysis...) as a whole.
    pub async fn set_call_details(
        &self,
        id: CallId,
        details: &CallDetails,
    ) -> Result<(), StoreError> {
        let _write = self.write_gate().await;
        sqlx::query("UPDATE calls SET details = $1, updated_at = $2 WHERE id = $3")
            .bind(serde_json::to_string(details).unwrap_or_default())
            .bind(Timestamp::now().micros())
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
