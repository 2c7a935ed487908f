//! Call control across replicas: commands (hang-up, transfer) for a live call that another
//! engine carries. The requester writes a row for the owning engine (`calls.engine_id`), the
//! owner acts on its live call and writes the outcome, the requester reads it and deletes the
//! row. The table works on both backends (the owner polls it); on PostgreSQL, NOTIFY wakes the
//! owner and the waiting requester at once (LISTEN on a connection of its own, see
//! [`Store::listen_call_commands`]).

use crate::{Backend, Store, StoreError};
use std::sync::Arc;
use std::time::Duration;
use switchboard_domain::{CallId, Timestamp};
use tokio::sync::Notify;

/// NOTIFY channel for new commands; the payload is the target engine's id.
const CHANNEL_COMMANDS: &str = "switchboard_call_commands";
/// NOTIFY channel for outcomes; the payload is the command's seq.
const CHANNEL_STATES: &str = "switchboard_call_command_states";

/// What a command asks the owning engine to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallCommandKind {
    Hangup,
    /// Blind transfer to the target as the API validated it (E.164 number or sip: URI).
    Transfer(String),
}

/// A command waiting for its engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallCommand {
    pub seq: i64,
    pub call_id: CallId,
    pub kind: CallCommandKind,
}

/// Where a command got to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandState {
    /// Written, not yet picked up by its engine.
    Pending,
    /// Picked up: its engine is acting on it (the requester can no longer withdraw it).
    Taken,
    /// The engine handed it to the live call.
    Accepted,
    /// The call is not live on that engine (still queued, or already ended).
    NotLive,
    /// A hang-up's call has ended: its final status and recording are stored.
    Ended,
}

impl CommandState {
    fn as_str(self) -> &'static str {
        match self {
            CommandState::Pending => "pending",
            CommandState::Taken => "taken",
            CommandState::Accepted => "accepted",
            CommandState::NotLive => "not_live",
            CommandState::Ended => "ended",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "pending" => CommandState::Pending,
            "taken" => CommandState::Taken,
            "accepted" => CommandState::Accepted,
            "not_live" => CommandState::NotLive,
            "ended" => CommandState::Ended,
            other => {
                return Err(StoreError::Corrupt(format!(
                    "call_commands.state {other:?}"
                )))
            }
        })
    }
}

/// Wake-ups from PostgreSQL's NOTIFY for one engine: `for_me` when a command for this engine
/// was written (by any process), `states` when any command's outcome changed. The listening
/// task ends when this value is dropped.
pub struct CommandSignals {
    pub for_me: Arc<Notify>,
    pub states: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for CommandSignals {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Store {
    /// The engine recorded as carrying `call` (`None`: queued, or from before ownership).
    pub async fn call_engine(&self, call: CallId) -> Result<Option<String>, StoreError> {
        let r: Option<(Option<String>,)> =
            sqlx::query_as("SELECT engine_id FROM calls WHERE id = $1")
                .bind(call.to_string())
                .fetch_optional(&self.pool)
                .await?;
        Ok(r.and_then(|(e,)| e))
    }

    /// Writes a command for `engine` (the call's owner) and wakes it; returns its seq.
    pub async fn send_call_command(
        &self,
        call: CallId,
        engine: &str,
        kind: &CallCommandKind,
    ) -> Result<i64, StoreError> {
        let (name, arg) = match kind {
            CallCommandKind::Hangup => ("hangup", None),
            CallCommandKind::Transfer(to) => ("transfer", Some(to.as_str())),
        };
        let now = Timestamp::now().micros();
        let seq = {
            let _write = self.write_gate().await;
            let (seq,): (i64,) = sqlx::query_as(
                "INSERT INTO call_commands (call_id, engine_id, kind, arg, state, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, 'pending', $5, $5) RETURNING seq",
            )
            .bind(call.to_string())
            .bind(engine)
            .bind(name)
            .bind(arg)
            .bind(now)
            .fetch_one(&self.pool)
            .await?;
            seq
        };
        self.notify(CHANNEL_COMMANDS, engine).await?;
        Ok(seq)
    }

    /// A command's state; `None` once its row is gone.
    pub async fn call_command_state(&self, seq: i64) -> Result<Option<CommandState>, StoreError> {
        let r: Option<(String,)> = sqlx::query_as("SELECT state FROM call_commands WHERE seq = $1")
            .bind(seq)
            .fetch_optional(&self.pool)
            .await?;
        r.map(|(s,)| CommandState::parse(&s)).transpose()
    }

    /// Withdraws a command its engine has not picked up: `true` if it was still pending (and
    /// is now gone, so it will never be acted on), `false` if the engine already took it.
    pub async fn withdraw_call_command(&self, seq: i64) -> Result<bool, StoreError> {
        let _write = self.write_gate().await;
        let r = sqlx::query("DELETE FROM call_commands WHERE seq = $1 AND state = 'pending'")
            .bind(seq)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Removes a command once its requester has read the outcome.
    pub async fn delete_call_command(&self, seq: i64) -> Result<(), StoreError> {
        let _write = self.write_gate().await;
        sqlx::query("DELETE FROM call_commands WHERE seq = $1")
            .bind(seq)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Commands waiting for `engine`, oldest first.
    pub async fn pending_call_commands(
        &self,
        engine: &str,
    ) -> Result<Vec<CallCommand>, StoreError> {
        let rows: Vec<(i64, String, String, Option<String>)> = sqlx::query_as(
            "SELECT seq, call_id, kind, arg FROM call_commands \
             WHERE engine_id = $1 AND state = 'pending' ORDER BY seq",
        )
        .bind(engine)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(seq, call, kind, arg)| {
                let call_id = call
                    .parse()
                    .map_err(|_| StoreError::Corrupt(format!("call_commands.call_id {call:?}")))?;
                let kind = match (kind.as_str(), arg) {
                    ("hangup", _) => CallCommandKind::Hangup,
                    ("transfer", Some(to)) => CallCommandKind::Transfer(to),
                    (k, _) => return Err(StoreError::Corrupt(format!("call_commands.kind {k:?}"))),
                };
                Ok(CallCommand { seq, call_id, kind })
            })
            .collect()
    }

    /// Takes a pending command (pending → taken): `false` if its requester withdrew it, in
    /// which case it must not be acted on.
    pub async fn take_call_command(&self, seq: i64) -> Result<bool, StoreError> {
        let _write = self.write_gate().await;
        let r = sqlx::query(
            "UPDATE call_commands SET state = 'taken', updated_at = $2 \
             WHERE seq = $1 AND state = 'pending'",
        )
        .bind(seq)
        .bind(Timestamp::now().micros())
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Records a command's outcome and wakes whoever waits for it.
    pub async fn set_call_command_state(
        &self,
        seq: i64,
        state: CommandState,
    ) -> Result<(), StoreError> {
        {
            let _write = self.write_gate().await;
            sqlx::query("UPDATE call_commands SET state = $2, updated_at = $3 WHERE seq = $1")
                .bind(seq)
                .bind(state.as_str())
                .bind(Timestamp::now().micros())
                .execute(&self.pool)
                .await?;
        }
        self.notify(CHANNEL_STATES, &seq.to_string()).await
    }

    /// Deletes commands last touched before `before` (their requester gave up or died).
    pub async fn prune_call_commands(&self, before: Timestamp) -> Result<u64, StoreError> {
        let _write = self.write_gate().await;
        let r = sqlx::query("DELETE FROM call_commands WHERE updated_at < $1")
            .bind(before.micros())
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }

    /// PostgreSQL NOTIFY (a no-op on SQLite, where the table is polled).
    async fn notify(&self, channel: &str, payload: &str) -> Result<(), StoreError> {
        if self.backend != Backend::Postgres {
            return Ok(());
        }
        // pg_notify returns `void`, which the Any driver cannot decode: wrap it so the one
        // column is an integer.
        sqlx::query("SELECT 1 AS sent FROM (SELECT pg_notify($1, $2)) AS n")
            .bind(channel)
            .bind(payload)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// On PostgreSQL, LISTENs (on a connection of its own, reconnecting after a failure) for
    /// commands addressed to `engine` and for outcome changes; `None` on SQLite. Notifications
    /// lost while the connection is down are caught by the callers' polling.
    pub fn listen_call_commands(&self, engine: &str) -> Option<CommandSignals> {
        let url = self.pg_url.clone()?;
        let for_me = Arc::new(Notify::new());
        let states = Arc::new(Notify::new());
        let (me, mine, st) = (engine.to_string(), for_me.clone(), states.clone());
        let task = tokio::spawn(async move {
            let mut warned = false;
            loop {
                let mut listener = match sqlx::postgres::PgListener::connect(&url).await {
                    Ok(l) => l,
                    Err(e) => {
                        if !warned {
                            tracing::warn!(error = %e, "cannot LISTEN for call commands; polling meanwhile");
                            warned = true;
                        }
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                };
                if let Err(e) = listener
                    .listen_all([CHANNEL_COMMANDS, CHANNEL_STATES])
                    .await
                {
                    if !warned {
                        tracing::warn!(error = %e, "cannot LISTEN for call commands; polling meanwhile");
                        warned = true;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                warned = false;
                // Anything written while we were not listening is found by a poll now.
                mine.notify_one();
                st.notify_waiters();
                loop {
                    match listener.recv().await {
                        Ok(n) if n.channel() == CHANNEL_COMMANDS => {
                            if n.payload() == me {
                                mine.notify_one();
                            }
                        }
                        Ok(_) => st.notify_waiters(),
                        Err(e) => {
                            tracing::warn!(error = %e, "LISTEN connection for call commands lost; reconnecting");
                            break;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        Some(CommandSignals {
            for_me,
            states,
            task,
        })
    }
}

/// Where a hang-up or transfer of a live call got to, wherever the call is carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reached {
    /// Handed to the live call (on this replica or the one carrying it). For a hang-up that
    /// was to be waited for: the call had not ended when the wait ran out.
    Accepted,
    /// The hung-up call has ended: its final status and recording are stored.
    Ended,
    /// The call is live nowhere: still queued, already ended, or carried by no engine.
    NotLive,
    /// The engine carrying the call (named) has stopped beating or left: its calls are closed
    /// by the other engines' sweep after `--engine-stale-after`.
    OwnerGone(String),
    /// The engine carrying the call (named) is alive but did not answer in time.
    NoAnswer(String),
}

impl Store {
    /// How many commands are stored (finished ones are deleted by their requester): for
    /// tests and diagnostics.
    pub async fn call_command_count(&self) -> Result<i64, StoreError> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM call_commands")
            .fetch_one(&self.pool)
            .await?;
        Ok(n)
    }
}
