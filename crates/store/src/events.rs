//! Events: an outbox written in the same transaction as the change it describes, which is
//! also the organization's replayable event log (`GET /v1/events`).
//!
//! Every event row gets a `seq` (its order and, as `evt_<16 hex digits>`, its id) and, for a
//! call's event, a per-call sequence number from `calls.event_seq` (bumping it row-locks the
//! call, so a call's numbers are gap-free and in commit order). The same transaction fans the
//! event out into `webhook_deliveries` for every enabled endpoint that subscribes to its type
//! and for the agent's `webhook_url`; the delivery worker (crates/webhooks) sends them.
//!
//! Commit order = seq order, or a reader paging `after=<last id>` could skip an event whose
//! transaction took a lower seq but committed after the reader's page: SQLite has one writer
//! (and our write gate), so its transactions never overlap; on PostgreSQL each event writer
//! takes one advisory transaction lock just before its insert, the last statements of its
//! transaction, so event writers commit one after another (the lock is held for the insert
//! and the commit only).

use crate::calls::call_from_row;
use crate::read::Params;
use crate::{row, Backend, Store, StoreError};
use serde_json::{json, Value};
use sqlx::AnyConnection;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use switchboard_domain::*;

/// Every event type, as clients name them.
pub const EVENT_TYPES: &[&str] = &[
    "call.created",
    "call.ringing",
    "call.answered",
    "call.ended",
    "call.transcript",
    "call.analyzed",
    "recording.ready",
    "webhook_endpoint.disabled",
];

/// Renders a call as the API shows it (the `/v1` call object with every field); the event's
/// `data` is that snapshot, taken in the transaction of the change.
pub type CallRenderer = Arc<dyn Fn(&Call) -> Value + Send + Sync>;

/// Shared by the clones of one `Store`.
#[derive(Default)]
pub(crate) struct Hub {
    /// Signalled after every commit that wrote webhook deliveries: wakes the worker at once
    /// (polling covers other processes).
    pub(crate) deliveries: tokio::sync::Notify,
    renderer: OnceLock<CallRenderer>,
    /// Recordings go to a remote store: `recording.ready` waits for the upload.
    recordings_remote: AtomicBool,
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub seq: i64,
    pub event_type: String,
    pub org_id: OrgId,
    pub call_id: Option<CallId>,
    pub agent_id: Option<AgentId>,
    /// Its number among the call's events (1, 2, ...).
    pub call_seq: Option<i64>,
    pub created_at: Timestamp,
    pub data: Value,
}

impl Event {
    pub fn id(&self) -> String {
        event_id(self.seq)
    }

    /// The API's event object: `{id, type, created_at, call_id, sequence, data}`.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id(),
            "type": self.event_type,
            "created_at": self.created_at,
            "call_id": self.call_id,
            "sequence": self.call_seq,
            "data": self.data,
        })
    }
}

/// `evt_` + the seq as 16 hex digits: unique, and sorting as text sorts by creation.
pub fn event_id(seq: i64) -> String {
    format!("evt_{seq:016x}")
}

/// The seq of an event id (`None` if it is not one).
pub fn parse_event_id(s: &str) -> Option<i64> {
    let hex = s.trim().strip_prefix("evt_")?;
    if hex.len() != 16 {
        return None;
    }
    i64::from_str_radix(hex, 16).ok().filter(|v| *v >= 0)
}

/// An event to write inside a transaction.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub org_id: OrgId,
    pub event_type: &'static str,
    pub call_id: Option<CallId>,
    pub agent_id: Option<AgentId>,
    pub data: Value,
}

impl NewEvent {
    fn for_call(event_type: &'static str, call: &Call, data: Value) -> NewEvent {
        NewEvent {
            org_id: call.org_id,
            event_type,
            call_id: Some(call.id),
            agent_id: call.agent_id,
            data,
        }
    }
}

/// A page of the event log.
#[derive(Debug, Clone)]
pub struct EventPage {
    pub events: Vec<Event>,
    pub has_more: bool,
}

/// `GET /v1/events` parameters.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    /// The seq of the last event seen.
    pub after: Option<i64>,
    pub types: Vec<String>,
    pub call_id: Option<CallId>,
    pub limit: u32,
}

const EVENT_COLS: &str = "seq, event_type, org_id, call_id, agent_id, call_seq, created_at, data";

pub(crate) fn event_from_row(r: &dyn crate::read::Cols) -> Result<Event, StoreError> {
    Ok(Event {
        seq: row::i(r, "seq")?,
        event_type: row::s(r, "event_type")?,
        org_id: row::uuid(r, "org_id")?,
        call_id: row::ouuid(r, "call_id")?,
        agent_id: row::ouuid(r, "agent_id")?,
        call_seq: row::oi(r, "call_seq")?,
        created_at: row::ts(r, "created_at")?,
        data: row::ojson(r, "data")?.unwrap_or(Value::Null),
    })
}

/// Lock key of the PostgreSQL advisory lock that orders event writers.
const EVENT_ORDER_LOCK: i64 = 7318245502;

/// Does an endpoint's list of types (`["*"]` = all) take this type?
pub fn subscribes(types: &[String], event_type: &str) -> bool {
    types.iter().any(|t| t == "*" || t == event_type)
}

/// How many turns a `transcript_formatted` value holds.
pub(crate) fn turn_count(v: &Option<Value>) -> usize {
    turns(v).len()
}

/// The committed turns of a `transcript_formatted` value.
fn turns(v: &Option<Value>) -> &[Value] {
    v.as_ref()
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

impl Store {
    /// Renders calls in event data (set once at start by the API wiring; without it a short
    /// built-in rendering is used).
    pub fn set_call_renderer(&self, f: CallRenderer) {
        let _ = self.hub.renderer.set(f);
    }

    /// Recordings are uploaded to a remote store after the call: `recording.ready` is emitted
    /// by [`Store::recording_stored`] once uploaded, not when the metadata is written.
    pub fn set_recordings_remote(&self, remote: bool) {
        self.hub.recordings_remote.store(remote, Ordering::Relaxed);
    }

    /// Resolves when some commit of this process wrote webhook deliveries.
    pub async fn deliveries_written(&self) {
        self.hub.deliveries.notified().await
    }

    pub(crate) fn wake_deliveries(&self) {
        self.hub.deliveries.notify_one();
    }

    pub(crate) fn render_call(&self, call: &Call) -> Value {
        match self.hub.renderer.get() {
            Some(f) => f(call),
            None => json!({
                "id": call.id,
                "agent_id": call.agent_id,
                "status": call.status,
                "type": call.call_type,
                "client_number": call.client_number,
                "created_at": call.created_at,
                "start_time": call.started_at,
                "end_time": call.ended_at,
                "duration": call.duration_seconds,
                "end_reason": call.end_reason,
                "sip_code": call.sip_code,
            }),
        }
    }

    fn recording_data(&self, call: &Call) -> Value {
        let rendered = self.render_call(call);
        json!({
            "call_id": call.id,
            "recording_url": rendered.get("recording_url").cloned().unwrap_or(Value::Null),
            "recording": rendered.get("recording").cloned().unwrap_or(Value::Null),
        })
    }

    /// The events a call update causes (status and recording changes), `before` → `after`.
    pub(crate) fn call_change_events(&self, before: &Call, after: &Call) -> Vec<NewEvent> {
        let mut out = Vec::new();
        if before.status != after.status {
            if after.status == CallStatus::InProgress {
                out.push(NewEvent::for_call(
                    "call.answered",
                    after,
                    self.render_call(after),
                ));
            } else if after.status.is_final() {
                out.push(NewEvent::for_call(
                    "call.ended",
                    after,
                    self.render_call(after),
                ));
            }
        }
        if before.recording.is_none()
            && after.recording.is_some()
            && !self.hub.recordings_remote.load(Ordering::Relaxed)
        {
            out.push(NewEvent::for_call(
                "recording.ready",
                after,
                self.recording_data(after),
            ));
        }
        out
    }

    /// `call.transcript` for each turn in `after` beyond those in `before`.
    pub(crate) fn transcript_events(
        &self,
        call: &Call,
        before: &Option<Value>,
        after: &Option<Value>,
    ) -> Vec<NewEvent> {
        let (old, new) = (turns(before), turns(after));
        (old.len()..new.len())
            .map(|i| {
                NewEvent::for_call(
                    "call.transcript",
                    call,
                    json!({"call_id": call.id, "index": i, "turn": new[i]}),
                )
            })
            .collect()
    }

    /// Writes one event (and its webhook deliveries) on a connection inside the caller's
    /// transaction; returns its seq. The caller commits, then calls [`Store::events_committed`].
    /// On SQLite the caller holds the write gate. Public so that other writers of call state
    /// (post-call analysis) can emit their event in their own transaction.
    pub async fn emit_event(
        &self,
        conn: &mut AnyConnection,
        ev: &NewEvent,
    ) -> Result<i64, StoreError> {
        let now = Timestamp::now().micros();
        // The call's counter first (this row-locks the call; see the module comment for
        // why the order lock comes last).
        let call_seq: Option<i64> = match ev.call_id {
            Some(c) => {
                let r = sqlx::query(
                    "UPDATE calls SET event_seq = event_seq + 1 WHERE id = $1 RETURNING event_seq",
                )
                .bind(c.to_string())
                .fetch_optional(&mut *conn)
                .await?;
                match r {
                    Some(r) => Some(row::i(&r, "event_seq")?),
                    None => None,
                }
            }
            None => None,
        };
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(EVENT_ORDER_LOCK)
                .execute(&mut *conn)
                .await?;
        }
        let r = sqlx::query(
            "INSERT INTO events (org_id, event_type, call_id, agent_id, call_seq, created_at, data) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING seq",
        )
        .bind(ev.org_id.to_string())
        .bind(ev.event_type)
        .bind(ev.call_id.map(|c| c.to_string()))
        .bind(ev.agent_id.map(|a| a.to_string()))
        .bind(call_seq)
        .bind(now)
        .bind(ev.data.to_string())
        .fetch_one(&mut *conn)
        .await?;
        let seq = row::i(&r, "seq")?;
        // Fan-out: the organization's enabled endpoints that take this type...
        let endpoints = sqlx::query(
            "SELECT id, event_types FROM webhook_endpoints WHERE org_id = $1 AND enabled = 1",
        )
        .bind(ev.org_id.to_string())
        .fetch_all(&mut *conn)
        .await?;
        let mut targets: Vec<(String, &'static str)> = Vec::new();
        for e in &endpoints {
            let types: Vec<String> =
                serde_json::from_str(&row::s(e, "event_types")?).unwrap_or_default();
            if subscribes(&types, ev.event_type) {
                targets.push((row::s(e, "id")?, "endpoint"));
            }
        }
        // ... and the agent's own webhook_url, for its calls' events.
        if let (Some(agent), Some(_)) = (ev.agent_id, ev.call_id) {
            let a = sqlx::query("SELECT webhook_url FROM agents WHERE id = $1")
                .bind(agent.to_string())
                .fetch_optional(&mut *conn)
                .await?;
            if let Some(a) = a {
                if row::os(&a, "webhook_url")?.is_some_and(|u| !u.trim().is_empty()) {
                    targets.push((agent.to_string(), "agent"));
                }
            }
        }
        for (target, kind) in targets {
            sqlx::query(
                "INSERT INTO webhook_deliveries (event_seq, org_id, target, target_kind, state, attempts, \
                 next_attempt_at, created_at) VALUES ($1, $2, $3, $4, 'pending', 0, $5, $5)",
            )
            .bind(seq)
            .bind(ev.org_id.to_string())
            .bind(target)
            .bind(kind)
            .bind(now)
            .execute(&mut *conn)
            .await?;
        }
        Ok(seq)
    }

    /// After the commit of a transaction that emitted events: wakes the delivery worker.
    pub fn events_committed(&self) {
        self.wake_deliveries();
    }

    /// Emits events in a transaction of their own (call updates made elsewhere).
    async fn emit_alone(&self, events: &[NewEvent]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let _write = self.write_gate().await;
        let mut tx = self.pool.begin().await?;
        for ev in events {
            self.emit_event(&mut tx, ev).await?;
        }
        tx.commit().await?;
        self.events_committed();
        Ok(())
    }

    /// The far end is ringing (180/183): `call.ringing`, once per call, while it is dialing.
    pub async fn call_ringing(&self, id: CallId) -> Result<(), StoreError> {
        let call = self.get_call_any_org(id).await?;
        if call.status != CallStatus::Dialing {
            return Ok(());
        }
        let mut p = Params::new();
        p.push_str(id.to_string());
        let seen = self
            .fetch(
                "SELECT seq FROM events WHERE call_id = $1 AND event_type = 'call.ringing'",
                &p,
                |r| row::i(r, "seq"),
            )
            .await?;
        if !seen.is_empty() {
            return Ok(());
        }
        let data = self.render_call(&call);
        self.emit_alone(&[NewEvent::for_call("call.ringing", &call, data)])
            .await
    }

    /// A remote store now holds the call's recording (after the upload): `recording.ready`.
    pub async fn recording_stored(&self, id: CallId) -> Result<(), StoreError> {
        let call = self.get_call_any_org(id).await?;
        if call.recording.is_none() {
            return Ok(());
        }
        let data = self.recording_data(&call);
        self.emit_alone(&[NewEvent::for_call("recording.ready", &call, data)])
            .await
    }

    /// The organization's events in order, after a cursor.
    pub async fn list_events(&self, org: OrgId, q: &EventQuery) -> Result<EventPage, StoreError> {
        let mut p = Params::new();
        let mut conds = vec![format!("org_id = {}", p.push_str(org.to_string()))];
        if let Some(after) = q.after {
            conds.push(format!("seq > {}", p.push_i64(after)));
        }
        if !q.types.is_empty() {
            let list: Vec<String> = q.types.iter().map(|t| p.push_str(t.clone())).collect();
            conds.push(format!("event_type IN ({})", list.join(", ")));
        }
        if let Some(c) = q.call_id {
            conds.push(format!("call_id = {}", p.push_str(c.to_string())));
        }
        let limit = p.push_i64(q.limit as i64 + 1);
        let sql = format!(
            "SELECT {EVENT_COLS} FROM events WHERE {} ORDER BY seq LIMIT {limit}",
            conds.join(" AND ")
        );
        let mut events = self.fetch(&sql, &p, event_from_row).await?;
        let has_more = events.len() > q.limit as usize;
        events.truncate(q.limit as usize);
        Ok(EventPage { events, has_more })
    }

    /// One event of the organization.
    pub async fn get_event(&self, org: OrgId, seq: i64) -> Result<Event, StoreError> {
        let mut p = Params::new();
        p.push_str(org.to_string());
        p.push_i64(seq);
        self.fetch_one(
            &format!("SELECT {EVENT_COLS} FROM events WHERE org_id = $1 AND seq = $2"),
            &p,
            event_from_row,
        )
        .await
    }

    /// An event by seq, any organization (the delivery worker).
    pub async fn get_event_any_org(&self, seq: i64) -> Result<Event, StoreError> {
        let r = sqlx::query(&format!("SELECT {EVENT_COLS} FROM events WHERE seq = $1"))
            .bind(seq)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        event_from_row(&r)
    }

    /// Retention: deletes events created before `before`, with their deliveries and
    /// attempts, in batches (short transactions). Returns the number of events deleted.
    pub async fn prune_events(&self, before: Timestamp) -> Result<u64, StoreError> {
        let mut total = 0;
        loop {
            let _write = self.write_gate().await;
            let mut tx = self.pool.begin().await?;
            let n = sqlx::query(
                "DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE created_at < $1 \
                 ORDER BY created_at LIMIT 5000)",
            )
            .bind(before.micros())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            sqlx::query(
                "DELETE FROM webhook_deliveries WHERE seq IN (SELECT seq FROM webhook_deliveries \
                 WHERE created_at < $1 ORDER BY created_at LIMIT 5000)",
            )
            .bind(before.micros())
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "DELETE FROM webhook_attempts WHERE seq IN (SELECT seq FROM webhook_attempts \
                 WHERE attempted_at < $1 ORDER BY attempted_at LIMIT 5000)",
            )
            .bind(before.micros())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            total += n;
            if n < 5000 {
                return Ok(total);
            }
        }
    }

    /// Reads a call inside a transaction (after its own writes).
    pub(crate) async fn call_in_tx(
        conn: &mut AnyConnection,
        org: OrgId,
        id: CallId,
    ) -> Result<Call, StoreError> {
        let r = sqlx::query(&crate::calls::get_call_sql(true))
            .bind(org.to_string())
            .bind(id.to_string())
            .fetch_optional(&mut *conn)
            .await?
            .ok_or(StoreError::NotFound)?;
        call_from_row(&r, true)
    }
}
