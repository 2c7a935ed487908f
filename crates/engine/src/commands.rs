//! Call control across replicas. A hang-up or transfer asked of this engine for a call it
//! does not carry goes to the engine that does (`calls.engine_id`) through the
//! `call_commands` table (`store/src/commands.rs`): we write the command, the owner (woken
//! by NOTIFY on PostgreSQL, else by its poll) acts on its live call and writes the outcome,
//! and we wait for it, bounded. An owner whose heartbeat is stale is not asked at all.

use crate::engine::{Engine, Inner};
use crate::heartbeat::stale_threshold;
use crate::live::transfer_live;
use std::sync::Arc;
use std::time::Duration;
use switchboard_domain::{CallId, Timestamp};
use switchboard_store::{
    CallCommand, CallCommandKind, CommandSignals, CommandState, Reached, StoreError,
};
use tokio::time::Instant;

/// How long a requester waits for the owning engine to take up a command (it acts at once:
/// handing a hang-up or REFER to a live call is a channel send and a row update).
pub(crate) const ANSWER_WAIT: Duration = Duration::from_secs(5);
/// Extra time for an owner that took the command just as the wait ran out.
const TAKEN_GRACE: Duration = Duration::from_secs(2);
/// Commands older than this were abandoned by their requester (which deletes its own).
const PRUNE_AFTER: Duration = Duration::from_secs(3600);

/// This engine's wake-ups for commands: NOTIFY on PostgreSQL, `None` on SQLite (polling).
pub(crate) struct Commands {
    signals: Option<CommandSignals>,
}

impl Commands {
    pub(crate) fn new(store: &switchboard_store::Store, engine_id: &str) -> Commands {
        Commands {
            signals: store.listen_call_commands(engine_id),
        }
    }

    /// How often a requester re-reads its command's state: NOTIFY normally wakes it first.
    fn requester_poll(&self) -> Duration {
        match self.signals {
            Some(_) => Duration::from_millis(500),
            None => Duration::from_millis(50),
        }
    }

    /// How often the owner looks for commands without being woken.
    fn owner_poll(&self) -> Duration {
        match self.signals {
            Some(_) => Duration::from_secs(1),
            None => Duration::from_millis(250),
        }
    }

    async fn command_for_me(&self) {
        match &self.signals {
            Some(s) => s.for_me.notified().await,
            None => std::future::pending().await,
        }
    }
}

impl Engine {
    /// Hangs up a call wherever it is live: here at once, else through the engine carrying
    /// it. With `wait_end`, also waits (that long at most) for the call to end, so its final
    /// status and recording are stored ([`Reached::Ended`]; [`Reached::Accepted`] when the
    /// wait ran out).
    pub async fn hangup_anywhere(
        &self,
        call: CallId,
        wait_end: Option<Duration>,
    ) -> Result<Reached, StoreError> {
        if let Some(ended) = self.hangup(call) {
            return Ok(match wait_end {
                None => Reached::Accepted,
                Some(d) => match tokio::time::timeout(d, ended).await {
                    Ok(()) => Reached::Ended,
                    Err(_) => Reached::Accepted,
                },
            });
        }
        self.remote(call, CallCommandKind::Hangup, wait_end).await
    }

    /// Blind transfer (see [`Engine::transfer`]) of a call wherever it is live.
    pub async fn transfer_anywhere(&self, call: CallId, to: &str) -> Result<Reached, StoreError> {
        if self.transfer(call, to) {
            return Ok(Reached::Accepted);
        }
        self.remote(call, CallCommandKind::Transfer(to.to_string()), None)
            .await
    }

    async fn remote(
        &self,
        call: CallId,
        kind: CallCommandKind,
        wait_end: Option<Duration>,
    ) -> Result<Reached, StoreError> {
        let inner = &self.inner;
        let Some(owner) = inner.store.call_engine(call).await? else {
            return Ok(Reached::NotLive);
        };
        if owner == inner.engine_id {
            // Ours, but not in the live table: claimed and not yet dialing, or just ended.
            return Ok(Reached::NotLive);
        }
        let alive = inner
            .store
            .engine_heartbeat_at(&owner)
            .await?
            .is_some_and(|at| at >= stale_threshold(&inner.cfg));
        if !alive {
            tracing::warn!(call_id = %call, engine = %owner, "call is carried by an engine that stopped beating; command not sent");
            return Ok(Reached::OwnerGone(owner));
        }
        let seq = inner.store.send_call_command(call, &owner, &kind).await?;
        let outcome = self.await_outcome(seq, &owner, wait_end).await;
        if let Err(e) = inner.store.delete_call_command(seq).await {
            // Left for the owner's pruning.
            tracing::warn!(error = %e, "could not delete a finished call command");
        }
        if let Ok(Reached::NoAnswer(_)) = &outcome {
            tracing::warn!(call_id = %call, engine = %owner, "engine carrying the call did not answer a command in time");
        }
        outcome
    }

    async fn await_outcome(
        &self,
        seq: i64,
        owner: &str,
        wait_end: Option<Duration>,
    ) -> Result<Reached, StoreError> {
        let inner = &self.inner;
        let commands = &inner.commands;
        let mut answer_by = Instant::now() + ANSWER_WAIT;
        let mut extended = false;
        let mut end_by: Option<Instant> = None;
        loop {
            // Registered (enabled) before the read, so a NOTIFY that arrives between the read
            // and the wait still wakes us.
            let mut notified = commands
                .signals
                .as_ref()
                .map(|s| Box::pin(s.states.notified()));
            if let Some(n) = notified.as_mut() {
                n.as_mut().enable();
            }
            let state = inner.store.call_command_state(seq).await?;
            if let Some(r) = step(state, wait_end, &mut end_by, owner) {
                return Ok(r);
            }
            let deadline = end_by.unwrap_or(answer_by);
            let woken = async {
                match notified {
                    Some(n) => n.await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = woken => {}
                _ = tokio::time::sleep(commands.requester_poll()) => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
            let now = Instant::now();
            match end_by {
                // Accepted, and the hang-up's call did not end in time.
                Some(t) if now >= t => return Ok(Reached::Accepted),
                Some(_) => {}
                None if now >= answer_by => {
                    if inner.store.withdraw_call_command(seq).await? {
                        // Still pending, now withdrawn: it will never be acted on.
                        return Ok(Reached::NoAnswer(owner.to_string()));
                    }
                    if extended {
                        return Ok(Reached::NoAnswer(owner.to_string()));
                    }
                    // Taken just now: its outcome follows in a moment.
                    extended = true;
                    answer_by = now + TAKEN_GRACE;
                }
                None => {}
            }
        }
    }
}

/// One look at a command's state: `Some` when the wait is over.
fn step(
    state: Option<CommandState>,
    wait_end: Option<Duration>,
    end_by: &mut Option<Instant>,
    owner: &str,
) -> Option<Reached> {
    match state {
        Some(CommandState::Pending | CommandState::Taken) => None,
        Some(CommandState::Accepted) => match wait_end {
            None => Some(Reached::Accepted),
            Some(d) => {
                end_by.get_or_insert_with(|| Instant::now() + d);
                None
            }
        },
        Some(CommandState::Ended) => Some(Reached::Ended),
        Some(CommandState::NotLive) => Some(Reached::NotLive),
        // Only its requester deletes a command before an hour has passed.
        None => Some(Reached::NoAnswer(owner.to_string())),
    }
}

/// The owner's side: runs the commands addressed to this engine until it has finished
/// stopping (a hang-up during the graceful drain still reaches its call).
pub(crate) async fn serve_commands(inner: Arc<Inner>) {
    let mut finished = inner.finished.subscribe();
    let mut failing = false;
    let mut pruned_at: Option<Instant> = None;
    loop {
        match inner.store.pending_call_commands(&inner.engine_id).await {
            Ok(cmds) => {
                failing = false;
                for cmd in cmds {
                    if let Err(e) = run(&inner, &cmd).await {
                        tracing::warn!(call_id = %cmd.call_id, error = %e, "call command failed");
                    }
                }
            }
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "cannot read call commands; retrying");
            }
            Err(_) => {}
        }
        if pruned_at.is_none_or(|t| t.elapsed() >= PRUNE_AFTER / 6) {
            pruned_at = Some(Instant::now());
            let micros = i64::try_from(PRUNE_AFTER.as_micros()).unwrap_or(i64::MAX);
            let before = Timestamp(Timestamp::now().micros() - micros);
            if let Err(e) = inner.store.prune_call_commands(before).await {
                tracing::debug!(error = %e, "pruning call commands failed");
            }
        }
        tokio::select! {
            _ = inner.commands.command_for_me() => {}
            _ = tokio::time::sleep(inner.commands.owner_poll()) => {}
            r = finished.changed() => {
                if r.is_err() || *finished.borrow() {
                    return;
                }
            }
        }
    }
}

async fn run(inner: &Arc<Inner>, cmd: &CallCommand) -> Result<(), StoreError> {
    if !inner.store.take_call_command(cmd.seq).await? {
        // Withdrawn by its requester, which has already answered its client.
        return Ok(());
    }
    match &cmd.kind {
        CallCommandKind::Hangup => {
            let engine = Engine {
                inner: inner.clone(),
            };
            let Some(ended) = engine.hangup(cmd.call_id) else {
                return inner
                    .store
                    .set_call_command_state(cmd.seq, CommandState::NotLive)
                    .await;
            };
            tracing::info!(call_id = %cmd.call_id, "hang-up asked by another engine");
            // Accepted is written before `ended` can be, so it never overwrites it.
            inner
                .store
                .set_call_command_state(cmd.seq, CommandState::Accepted)
                .await?;
            let (store, seq) = (inner.store.clone(), cmd.seq);
            tokio::spawn(async move {
                ended.await;
                if let Err(e) = store.set_call_command_state(seq, CommandState::Ended).await {
                    tracing::warn!(error = %e, "could not record that a hung-up call ended");
                }
            });
            Ok(())
        }
        CallCommandKind::Transfer(to) => {
            let state = if transfer_live(inner, cmd.call_id, to) {
                tracing::info!(call_id = %cmd.call_id, "transfer asked by another engine");
                CommandState::Accepted
            } else {
                CommandState::NotLive
            };
            inner.store.set_call_command_state(cmd.seq, state).await
        }
    }
}
