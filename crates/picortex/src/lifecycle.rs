//! Chat lifecycle: a chat with no message for `idle_after` is hibernated (its runner, agent
//! and tmux server, or its whole sandbox, stop; its home stays), and the next message wakes
//! it (ingest marks it active in the message's own transaction; the turn starts the runner
//! again and the agent resumes its session). A background task does the transitions on an
//! interval; the owner can hibernate a chat by hand. Each transition is an audit event.

use std::sync::Arc;
use std::time::Duration;

use crate::agent::Agent;
use crate::store::{self, Store, StoreResult};

/// What hibernating one chat did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hibernation {
    /// The chat is hibernated now.
    Done,
    /// It was hibernated already.
    AlreadyAsleep,
    /// A turn is queued or running; nothing was stopped.
    Busy,
}

/// Hibernates `chat_id` unless a turn is queued or running: the state is recorded first, in a
/// transaction that checks the chat is idle, then its processes are stopped (a message that
/// arrives in between wakes it again, and its turn waits for the stop to finish).
pub async fn hibernate(
    store: &Store,
    agent: &dyn Agent,
    chat_id: &str,
    actor: &'static str,
) -> StoreResult<Hibernation> {
    let id = chat_id.to_owned();
    let outcome = store
        .write(move |conn| {
            let state: Option<String> = conn
                .prepare_cached("SELECT state FROM chats WHERE id = ?1")?
                .query_row([&id], |r| r.get(0))
                .ok();
            if state.as_deref() == Some("hibernated") {
                return Ok(Hibernation::AlreadyAsleep);
            }
            let changed = conn
                .prepare_cached(
                    "UPDATE chats SET state = 'hibernated' WHERE id = ?1 AND state = 'active'
                     AND NOT EXISTS (SELECT 1 FROM turns WHERE chat_id = ?1
                                     AND status IN ('queued', 'running'))",
                )?
                .execute([&id])?;
            if changed == 0 {
                return Ok(Hibernation::Busy);
            }
            store::audit(
                conn,
                actor,
                "chat.hibernated",
                Some(&id),
                &serde_json::json!({}),
            )?;
            Ok(Hibernation::Done)
        })
        .await?;
    if outcome == Hibernation::Done
        && let Err(e) = agent.stop_chat(chat_id).await
    {
        // The state stands: the next turn starts whatever still runs or was half stopped.
        tracing::warn!(chat_id, error = %e, "hibernating: stopping the chat's processes failed");
    }
    Ok(outcome)
}

/// The background task that hibernates idle chats.
pub struct Lifecycle {
    store: Store,
    agent: Arc<dyn Agent>,
    idle_after: Duration,
    interval: Duration,
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
        })
    }

    /// Runs until the task is aborted; `idle_after` 0 turns hibernation off.
    pub async fn run(self: Arc<Self>) {
        if self.idle_after.is_zero() {
            return;
        }
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = self.hibernate_idle().await {
                tracing::warn!(error = %e, "lifecycle: looking for idle chats failed");
            }
        }
    }

    /// Hibernates every active chat whose last message is older than `idle_after`.
    pub async fn hibernate_idle(&self) -> StoreResult<usize> {
        let cutoff =
            store::now_ms() - i64::try_from(self.idle_after.as_millis()).unwrap_or(i64::MAX);
        let idle: Vec<String> = self
            .store
            .read(move |conn| {
                let mut stmt = conn.prepare_cached(
                    "SELECT id FROM chats WHERE state = 'active'
                     AND COALESCE(last_inbound_at, created_at) < ?1",
                )?;
                let rows = stmt.query_map([cutoff], |r| r.get(0))?;
                Ok(rows.collect::<Result<_, _>>()?)
            })
            .await?;
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
}
