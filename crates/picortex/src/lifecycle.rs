//! Chat lifecycle: a chat with no message for `idle_after` is hibernated (its runner, agent
//! and tmux server, or its whole sandbox, stop; its home stays), and the next message wakes
//! it (ingest marks it active in the message's own transaction; the turn starts the runner
//! again and the agent resumes its session). A background task does the transitions on an
//! interval; the owner can hibernate a chat by hand. Each transition is an audit event.
//!
//! A chat with no message for `archive_after` is archived: its home goes to
//! `<archive dir>/<chat dir>.tar.zst` (through the helper, which also removes the chat's user and
//! cgroup, or by the daemon itself), and its state becomes `archived`. The next message marks it
//! active again and its turn's `ensure_home` restores the home first (the workspace's per-chat
//! lock makes it wait for an archive in progress). A damaged archive is left as it was, the
//! chat becomes `failed` and its owner is told; its messages get a notice until the owner
//! restores or destroys it.
//!
//! Each transition is recorded before it is done, as `hibernating` or `archiving`, and set to
//! its end state after; a crash in between (of the daemon or of the sandbox helper) leaves the
//! chat in the in-between state, which the lifecycle task finishes on its next tick (the first
//! one runs at start-up). The workspace side is safe to repeat at any point
//! ([`picortex_sandbox::archive`]). A message arriving meanwhile wakes the chat whatever the
//! state, and its turn waits for the workspace's lock.
//!
//! States: `active`, `hibernating`, `hibernated`, `archiving`, `archived`, `failed` (damaged
//! archive), `destroyed` (workspace removed for good; the next message starts a fresh one).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::agent::Agent;
use crate::store::turns::chat_has_live_turn;
use crate::store::{self, Store, StoreResult};
use crate::workspace::{WorkspaceError, Workspaces};

/// What archiving one chat did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Archival {
    /// The chat is archived; its archive.
    Done(Option<PathBuf>),
    /// It was archived already.
    AlreadyArchived,
    /// A turn is queued or running; nothing was changed.
    Busy,
    /// Archiving failed; the chat is as it was (hibernated).
    Failed(String),
}

/// What restoring one chat did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restoral {
    /// The chat's home is back (or was there all along) and the chat is active.
    Done(PathBuf),
    /// The archive is damaged: it was left untouched and the chat is `failed`.
    Damaged(String),
    /// Something else failed; nothing was changed.
    Failed(String),
}

/// The chat's lifecycle state, `None` for an unknown chat.
pub fn state_of(conn: &rusqlite::Connection, chat_id: &str) -> StoreResult<Option<String>> {
    use rusqlite::OptionalExtension as _;
    Ok(conn
        .prepare_cached("SELECT state FROM chats WHERE id = ?1")?
        .query_row([chat_id], |r| r.get(0))
        .optional()?)
}

/// Whether the chat has no turn queued or running. Checked before its processes are stopped:
/// stopping waits for a running turn (the agent's chat lock), which must not hold up the
/// caller (the gatekeeper runs owner commands) for as long as the turn takes.
async fn is_idle(store: &Store, chat_id: &str) -> StoreResult<bool> {
    let id = chat_id.to_owned();
    store
        .read(move |conn| {
            Ok(!conn
                .prepare_cached(concat!("SELECT ", chat_has_live_turn!()))?
                .query_row([&id], |r| r.get::<_, bool>(0))?)
        })
        .await
}

async fn chat_state(store: &Store, chat_id: &str) -> StoreResult<Option<String>> {
    let id = chat_id.to_owned();
    store.read(move |conn| state_of(conn, &id)).await
}

/// Archives `chat_id` unless a turn is queued or running. Its processes are stopped first
/// (outside the home lock: a turn holds the agent's chat lock while it waits for the home), then,
/// holding the workspace's home lock, the state is recorded in a transaction that checks the chat
/// is idle, and the home is archived. A message arriving meanwhile marks the chat active and its
/// turn waits for the lock, then restores the home.
pub async fn archive(
    store: &Store,
    agent: &dyn Agent,
    workspaces: &Workspaces,
    chat_id: &str,
    actor: &'static str,
) -> StoreResult<Archival> {
    match chat_state(store, chat_id).await?.as_deref() {
        Some("archived") => return Ok(Archival::AlreadyArchived),
        Some("failed") => {
            return Ok(Archival::Failed(
                "the chat's archive is damaged; restore it first".into(),
            ));
        }
        Some("destroyed") => {
            return Ok(Archival::Failed(
                "the chat's workspace was destroyed; there is nothing to archive".into(),
            ));
        }
        _ => {}
    }
    if !is_idle(store, chat_id).await? {
        return Ok(Archival::Busy);
    }
    if let Err(e) = agent.stop_chat(chat_id).await {
        tracing::warn!(chat_id, error = %e, "archiving: stopping the chat's processes failed");
    }
    let lock = workspaces.home_lock(chat_id);
    let _held = lock.lock().await;
    let id = chat_id.to_owned();
    let marked = store
        .write(move |conn| {
            let changed = conn
                .prepare_cached(concat!(
                    "UPDATE chats SET state = 'archiving' WHERE id = ?1
                     AND state IN ('active', 'hibernating', 'hibernated', 'archiving')
                     AND NOT ",
                    chat_has_live_turn!()
                ))?
                .execute([&id])?;
            Ok(changed > 0)
        })
        .await?;
    if !marked {
        // Another archive of this chat may have finished while this one waited for the lock.
        return Ok(match chat_state(store, chat_id).await?.as_deref() {
            Some("archived") => Archival::AlreadyArchived,
            _ => Archival::Busy,
        });
    }
    let started = std::time::Instant::now();
    let result = workspaces.archive(chat_id).await;
    let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let id = chat_id.to_owned();
    match result {
        Ok(archive) => {
            let path = archive.as_ref().map(|p| p.display().to_string());
            store
                .write(move |conn| {
                    // Unless a message woke the chat meanwhile: its turn restores the home.
                    conn.prepare_cached(
                        "UPDATE chats SET state = 'archived' WHERE id = ?1 AND state = 'archiving'",
                    )?
                    .execute([&id])?;
                    store::audit(
                        conn,
                        actor,
                        "chat.archived",
                        Some(&id),
                        &serde_json::json!({ "archive": path, "elapsed_ms": elapsed_ms }),
                    )
                })
                .await?;
            Ok(Archival::Done(archive))
        }
        Err(e) => {
            let message = e.to_string();
            let detail = message.clone();
            // The home is intact (archives are verified before anything is removed): back to
            // hibernated, unless a message has woken the chat meanwhile.
            store
                .write(move |conn| {
                    conn.prepare_cached(
                        "UPDATE chats SET state = 'hibernated' WHERE id = ?1 AND state = 'archiving'",
                    )?
                    .execute([&id])?;
                    store::audit(
                        conn,
                        actor,
                        "chat.archive_failed",
                        Some(&id),
                        &serde_json::json!({ "stage": "archive", "error": detail }),
                    )
                })
                .await?;
            Ok(Archival::Failed(message))
        }
    }
}

/// Brings the chat's home back (restoring it from its archive if it has one) and marks the chat
/// active; a damaged archive marks it `failed` instead (see [`mark_failed`]).
pub async fn restore(
    store: &Store,
    workspaces: &Workspaces,
    chat_id: &str,
    actor: &'static str,
) -> StoreResult<Restoral> {
    let was = chat_state(store, chat_id).await?;
    match workspaces.ensure_home(chat_id).await {
        Ok(home) => {
            let id = chat_id.to_owned();
            let restored = matches!(was.as_deref(), Some("archived" | "failed"));
            store
                .write(move |conn| {
                    conn.prepare_cached(
                        "UPDATE chats SET state = 'active' WHERE id = ?1
                         AND state IN ('hibernating', 'hibernated', 'archiving', 'archived',
                                       'failed', 'destroyed')",
                    )?
                    .execute([&id])?;
                    if restored {
                        store::audit(
                            conn,
                            actor,
                            "chat.restored",
                            Some(&id),
                            &serde_json::json!({}),
                        )?;
                    }
                    Ok(())
                })
                .await?;
            Ok(Restoral::Done(home))
        }
        Err(WorkspaceError::ArchiveDamaged(message)) => {
            mark_failed(store, chat_id, actor, &message).await?;
            Ok(Restoral::Damaged(message))
        }
        Err(e) => Ok(Restoral::Failed(e.to_string())),
    }
}

/// Marks the chat `failed` after its archive was found damaged (the archive stays as it was,
/// for the owner to inspect), with a `chat.archive_failed` audit event.
pub async fn mark_failed(
    store: &Store,
    chat_id: &str,
    actor: &'static str,
    error: &str,
) -> StoreResult<()> {
    let (id, detail) = (chat_id.to_owned(), error.to_owned());
    store
        .write(move |conn| mark_failed_in(conn, &id, actor, &detail).map(drop))
        .await
}

/// [`mark_failed`] inside the caller's transaction; whether the chat was not failed before
/// (so its owner is told once, not at every message).
pub fn mark_failed_in(
    conn: &rusqlite::Connection,
    chat_id: &str,
    actor: &'static str,
    error: &str,
) -> StoreResult<bool> {
    let changed = conn
        .prepare_cached("UPDATE chats SET state = 'failed' WHERE id = ?1 AND state != 'failed'")?
        .execute([chat_id])?;
    store::audit(
        conn,
        actor,
        "chat.archive_failed",
        Some(chat_id),
        &serde_json::json!({ "stage": "restore", "error": error }),
    )?;
    Ok(changed > 0)
}

/// What destroying one chat's workspace did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destruction {
    /// The home and archive (whichever there were) are gone; the chat is `destroyed`.
    Done { existed: bool },
    /// A turn is queued or running; nothing was changed.
    Busy,
    /// Removing failed; what is left is as the error says.
    Failed(String),
}

/// Removes the chat's workspace for good (its processes, home, archive, and with the sandbox
/// its user), unless a turn is queued or running, and marks the chat `destroyed`. Its messages
/// stay in the store; a new message starts a fresh workspace.
pub async fn destroy(
    store: &Store,
    agent: &dyn Agent,
    workspaces: &Workspaces,
    chat_id: &str,
    actor: &'static str,
) -> StoreResult<Destruction> {
    if !is_idle(store, chat_id).await? {
        return Ok(Destruction::Busy);
    }
    if let Err(e) = agent.stop_chat(chat_id).await {
        tracing::warn!(chat_id, error = %e, "destroying: stopping the chat's processes failed");
    }
    let existed = match workspaces.destroy(chat_id).await {
        Ok(existed) => existed,
        Err(e) => return Ok(Destruction::Failed(e.to_string())),
    };
    let id = chat_id.to_owned();
    store
        .write(move |conn| {
            conn.prepare_cached("UPDATE chats SET state = 'destroyed' WHERE id = ?1")?
                .execute([&id])?;
            store::audit(
                conn,
                actor,
                "chat.destroyed",
                Some(&id),
                &serde_json::json!({ "existed": existed }),
            )
        })
        .await?;
    Ok(Destruction::Done { existed })
}

/// What hibernating one chat did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hibernation {
    /// The chat is hibernated now.
    Done,
    /// It was hibernated already.
    AlreadyAsleep,
    /// A turn is queued or running; nothing was stopped.
    Busy,
    /// Its processes could not be stopped; it stays `hibernating` and the lifecycle task
    /// tries again on its next tick.
    Failed(String),
}

/// Hibernates `chat_id` unless a turn is queued or running: `hibernating` is recorded first, in
/// a transaction that checks the chat is idle, then its processes are stopped, then it is
/// `hibernated` (a message that arrives in between wakes it again, and its turn waits for the
/// stop to finish). A stop that failed leaves it `hibernating`, for the next tick to finish.
pub async fn hibernate(
    store: &Store,
    agent: &dyn Agent,
    chat_id: &str,
    actor: &'static str,
) -> StoreResult<Hibernation> {
    let id = chat_id.to_owned();
    let outcome = store
        .write(move |conn| {
            let state = state_of(conn, &id)?;
            if matches!(state.as_deref(), Some("hibernated" | "archived")) {
                return Ok(Hibernation::AlreadyAsleep);
            }
            let changed = conn
                .prepare_cached(concat!(
                    "UPDATE chats SET state = 'hibernating' WHERE id = ?1
                     AND state IN ('active', 'hibernating')
                     AND NOT ",
                    chat_has_live_turn!()
                ))?
                .execute([&id])?;
            if changed == 0 {
                return Ok(Hibernation::Busy);
            }
            Ok(Hibernation::Done)
        })
        .await?;
    if outcome != Hibernation::Done {
        return Ok(outcome);
    }
    if let Err(e) = agent.stop_chat(chat_id).await {
        tracing::warn!(chat_id, error = %e, "hibernating: stopping the chat's processes failed");
        return Ok(Hibernation::Failed(e.to_string()));
    }
    let id = chat_id.to_owned();
    store
        .write(move |conn| mark_hibernated(conn, &id, "hibernating", actor, &serde_json::json!({})))
        .await?;
    Ok(outcome)
}

/// Moves the chat from `from` to `hibernated` and records `chat.hibernated` with `detail`,
/// unless it has left `from` meanwhile (a message woke it). Returns whether it moved.
fn mark_hibernated(
    conn: &rusqlite::Connection,
    chat_id: &str,
    from: &str,
    actor: &str,
    detail: &serde_json::Value,
) -> StoreResult<bool> {
    let changed = conn
        .prepare_cached("UPDATE chats SET state = 'hibernated' WHERE id = ?1 AND state = ?2")?
        .execute([chat_id, from])?;
    if changed > 0 {
        store::audit(conn, actor, "chat.hibernated", Some(chat_id), detail)?;
    }
    Ok(changed > 0)
}

/// What [`hibernate_every_chat`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StoppedChats {
    /// Chats put to sleep.
    pub hibernated: usize,
    /// Chats with a turn queued or cut short: their processes were stopped, and they stay
    /// awake so that the next start runs the turn.
    pub with_work: usize,
}

/// Stops the processes of every chat that is awake, for a daemon that stops and leaves nothing
/// running. Idle chats are hibernated as the owner's `hibernate` would; a chat with work left
/// keeps its state and its turn, and only its processes stop (its turns must not be running:
/// the scheduler is stopped first). A chat whose processes could not be stopped is logged and
/// not counted.
pub async fn hibernate_every_chat(
    store: &Store,
    agent: &dyn Agent,
    actor: &'static str,
) -> StoreResult<StoppedChats> {
    let awake = store
        .read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id FROM chats WHERE state IN ('active', 'hibernating') ORDER BY id",
            )?;
            let ids = stmt.query_map([], |r| r.get::<_, String>(0))?;
            Ok(ids.collect::<Result<Vec<_>, _>>()?)
        })
        .await?;
    let mut done = StoppedChats::default();
    for chat_id in awake {
        match hibernate(store, agent, &chat_id, actor).await? {
            Hibernation::Done => done.hibernated += 1,
            Hibernation::AlreadyAsleep | Hibernation::Failed(_) => {}
            Hibernation::Busy => match agent.stop_chat(&chat_id).await {
                Ok(()) => done.with_work += 1,
                Err(e) => {
                    tracing::warn!(chat_id, error = %e, "could not stop a chat's processes");
                }
            },
        }
    }
    Ok(done)
}

/// The background task that hibernates idle chats.
pub struct Lifecycle {
    store: Store,
    agent: Arc<dyn Agent>,
    idle_after: Duration,
    interval: Duration,
    /// Set for archiving: the workspaces and `archive_after` (0: never).
    workspaces: Option<Workspaces>,
    archive_after: Duration,
}

impl Lifecycle {
    pub fn new(
        store: Store,
        agent: Arc<dyn Agent>,
        config: &crate::config::LifecycleConfig,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            agent,
            idle_after: Duration::from_secs(config.idle_after_secs),
            interval: Duration::from_secs(config.interval_secs.max(1)),
            workspaces: None,
            archive_after: Duration::ZERO,
        })
    }

    /// The task that also archives chats idle for `archive_after_secs`, in `workspaces`
    /// (built with its archive directory).
    pub fn with_archiving(
        store: Store,
        agent: Arc<dyn Agent>,
        workspaces: Workspaces,
        config: &crate::config::LifecycleConfig,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            agent,
            idle_after: Duration::from_secs(config.idle_after_secs),
            interval: Duration::from_secs(config.interval_secs.max(1)),
            workspaces: Some(workspaces),
            archive_after: Duration::from_secs(config.archive_after_secs),
        })
    }

    /// Runs until the task is aborted; `idle_after` 0 turns hibernation off, `archive_after`
    /// 0 archiving. The first tick is at once, so transitions a crash interrupted are finished
    /// at start-up.
    pub async fn run(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = self.finish_interrupted().await {
                tracing::warn!(error = %e, "lifecycle: finishing interrupted transitions failed");
            }
            if self.idle_after.is_zero() && self.archive_after.is_zero() {
                continue;
            }
            if !self.idle_after.is_zero()
                && let Err(e) = self.hibernate_idle().await
            {
                tracing::warn!(error = %e, "lifecycle: looking for idle chats failed");
            }
            if let Err(e) = self.archive_idle().await {
                tracing::warn!(error = %e, "lifecycle: looking for chats to archive failed");
            }
        }
    }

    /// Finishes the transitions a crash interrupted: chats left `hibernating` are stopped and
    /// hibernated, chats left `archiving` are archived (the workspace side picks up wherever it
    /// stopped). Returns how many were finished.
    pub async fn finish_interrupted(&self) -> StoreResult<usize> {
        let stuck = self
            .store
            .read(|conn| {
                let mut stmt = conn.prepare_cached(
                    "SELECT id, state FROM chats WHERE state IN ('hibernating', 'archiving')",
                )?;
                let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
                Ok(rows.collect::<Result<Vec<(String, String)>, _>>()?)
            })
            .await?;
        let mut finished = 0;
        for (chat_id, state) in stuck {
            tracing::info!(
                chat_id,
                state,
                "lifecycle: finishing an interrupted transition"
            );
            let done = match (state.as_str(), &self.workspaces) {
                // Still in progress here (archiving holds the home's lock throughout), not
                // interrupted: leave it to finish.
                ("archiving", Some(workspaces))
                    if workspaces.home_lock(&chat_id).try_lock().is_err() =>
                {
                    false
                }
                ("archiving", Some(workspaces)) => matches!(
                    archive(
                        &self.store,
                        self.agent.as_ref(),
                        workspaces,
                        &chat_id,
                        "lifecycle"
                    )
                    .await?,
                    Archival::Done(_)
                ),
                ("archiving", None) => {
                    // Archiving is off now: the home was never removed, so the chat sleeps.
                    let id = chat_id.clone();
                    self.store
                        .write(move |conn| {
                            let detail = serde_json::json!({
                                "from": "archiving",
                                "reason": "archiving is off; the home was kept"
                            });
                            mark_hibernated(conn, &id, "archiving", "lifecycle", &detail)
                        })
                        .await?
                }
                _ => {
                    hibernate(&self.store, self.agent.as_ref(), &chat_id, "lifecycle").await?
                        == Hibernation::Done
                }
            };
            finished += usize::from(done);
        }
        Ok(finished)
    }

    /// Chats in one of `states` whose last message is older than `idle_for`.
    async fn idle_chats(
        &self,
        states: &'static [&'static str],
        idle_for: Duration,
    ) -> StoreResult<Vec<String>> {
        let cutoff = store::now_ms() - i64::try_from(idle_for.as_millis()).unwrap_or(i64::MAX);
        self.store
            .read(move |conn| {
                let mut stmt = conn.prepare_cached(
                    "SELECT id, state FROM chats WHERE COALESCE(last_inbound_at, created_at) < ?1",
                )?;
                let rows = stmt.query_map([cutoff], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })?;
                let mut ids = Vec::new();
                for row in rows {
                    let (id, state) = row?;
                    if states.contains(&state.as_str()) {
                        ids.push(id);
                    }
                }
                Ok(ids)
            })
            .await
    }

    /// Hibernates every active chat whose last message is older than `idle_after`.
    pub async fn hibernate_idle(&self) -> StoreResult<usize> {
        let idle = self.idle_chats(&["active"], self.idle_after).await?;
        let mut hibernated = 0;
        for chat_id in idle {
            if hibernate(&self.store, self.agent.as_ref(), &chat_id, "lifecycle").await?
                == Hibernation::Done
            {
                tracing::info!(chat_id, "chat hibernated after being idle");
                hibernated += 1;
            }
        }
        Ok(hibernated)
    }

    /// Archives every hibernated (or active but idle) chat whose last message is older than
    /// `archive_after`.
    pub async fn archive_idle(&self) -> StoreResult<usize> {
        let Some(workspaces) = &self.workspaces else {
            return Ok(0);
        };
        if self.archive_after.is_zero() {
            return Ok(0);
        }
        let idle = self
            .idle_chats(&["active", "hibernated"], self.archive_after)
            .await?;
        let mut archived = 0;
        for chat_id in idle {
            match archive(
                &self.store,
                self.agent.as_ref(),
                workspaces,
                &chat_id,
                "lifecycle",
            )
            .await?
            {
                Archival::Done(_) => {
                    tracing::info!(chat_id, "chat archived after being idle");
                    archived += 1;
                }
                Archival::Failed(error) => {
                    tracing::warn!(chat_id, error, "archiving an idle chat failed");
                }
                Archival::AlreadyArchived | Archival::Busy => {}
            }
        }
        Ok(archived)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chat a crash left `archiving` sleeps once archiving is switched off, and says so in
    /// its audit trail like every other transition.
    #[tokio::test]
    async fn an_abandoned_archive_is_audited() {
        let (_dir, store) = crate::store::temp_store();
        store
            .write(|c| {
                c.execute(
                    "INSERT INTO chats (id, state, created_at, updated_at) VALUES ('c1', 'archiving', 1, 1)",
                    [],
                )?;
                Ok(())
            })
            .await
            .unwrap();
        let lifecycle = Lifecycle::new(
            store.clone(),
            Arc::new(crate::agent::EchoAgent),
            &crate::config::LifecycleConfig::default(),
        );
        assert_eq!(lifecycle.finish_interrupted().await.unwrap(), 1);
        let (state, kinds) = store
            .read(|c| {
                let state: String =
                    c.query_row("SELECT state FROM chats WHERE id = 'c1'", [], |r| r.get(0))?;
                let mut stmt =
                    c.prepare("SELECT kind FROM audit_events WHERE chat_id = 'c1' ORDER BY id")?;
                let kinds = stmt
                    .query_map([], |r| r.get::<_, String>(0))?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((state, kinds))
            })
            .await
            .unwrap();
        assert_eq!(state, "hibernated");
        assert_eq!(kinds, ["chat.hibernated"]);
    }

    /// An echo agent whose chats' processes cannot be stopped.
    struct Unstoppable;

    impl Agent for Unstoppable {
        fn name(&self) -> &'static str {
            "unstoppable"
        }

        fn run_turn(
            &self,
            request: crate::agent::TurnRequest,
        ) -> futures::future::BoxFuture<'_, Result<crate::agent::TurnReply, crate::agent::AgentError>>
        {
            crate::agent::EchoAgent.run_turn(request)
        }

        fn stop_chat<'a>(
            &'a self,
            _chat_id: &'a str,
        ) -> futures::future::BoxFuture<'a, Result<(), crate::agent::AgentError>> {
            Box::pin(async { Err(crate::agent::AgentError::Retryable("kill refused".into())) })
        }
    }

    /// A chat whose processes could not be stopped is not reported asleep: the owner hears
    /// why, and it stays `hibernating` for the lifecycle task's next tick to finish.
    #[tokio::test]
    async fn a_stop_that_fails_is_reported_and_left_for_the_next_tick() {
        let (_dir, store) = crate::store::temp_store();
        store
            .write(|c| {
                c.execute(
                    "INSERT INTO chats (id, state, created_at, updated_at) VALUES ('c1', 'active', 1, 1)",
                    [],
                )?;
                Ok(())
            })
            .await
            .unwrap();
        let outcome = hibernate(&store, &Unstoppable, "c1", "owner")
            .await
            .unwrap();
        assert_eq!(
            outcome,
            Hibernation::Failed("agent failed, retryable: kill refused".into())
        );
        let state = store.read(|c| state_of(c, "c1")).await.unwrap();
        assert_eq!(state.as_deref(), Some("hibernating"));
        let stopped = hibernate_every_chat(&store, &Unstoppable, "shutdown")
            .await
            .unwrap();
        assert_eq!(stopped, StoppedChats::default(), "nothing was stopped");
    }
}
