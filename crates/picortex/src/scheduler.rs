//! The turn scheduler: claims runnable turns (one at a time per chat, at most
//! `turns.max_concurrent` overall), runs each through the agent with a timeout, and finishes it
//! together with its reply's outbox row in one transaction. A retryable agent failure gets one
//! more attempt; after that the chat is told plainly, with the request id. A chat whose model
//! budget for the day is used up gets one message saying so instead of a turn.
//! The gatekeeper claims the turns it queues in the transaction that queues them, with slots
//! reserved here, so an answered message needs no claim of its own; the scheduler's loop claims
//! the rest (turns queued behind a running one, retries, turns recovered after a restart).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::agent::{Agent, AgentError, TurnReply, TurnRequest};
use crate::channel::Channel;
use crate::config::TurnsConfig;
use crate::metrics::Metrics;
use crate::shaping;
use crate::store::outbox::OutgoingMessage;
use crate::store::turns::{self, MAX_TURN_ATTEMPTS, TurnWork};
use crate::store::{Store, StoreResult};

const IDLE_POLL: Duration = Duration::from_secs(5);
/// iMessage drops a typing indicator after a while; refresh it this often during a turn.
const TYPING_REFRESH: Duration = Duration::from_secs(20);
/// A turn that answers sooner than this shows no typing indicator: one shown for a moment is
/// not seen before the answer replaces it, and would cost two API calls (start and stop) per
/// turn.
const TYPING_DELAY: Duration = Duration::from_millis(500);

pub struct Scheduler {
    store: Store,
    agent: Arc<dyn Agent>,
    channel: Arc<dyn Channel>,
    max_concurrent: usize,
    timeout: Duration,
    metrics: Arc<Metrics>,
    /// Woken by ingest when a message is queued and by finished turns.
    wake: Arc<Notify>,
    /// Woken when a reply lands in the outbox.
    outbox_wake: Arc<Notify>,
    /// Turn slots taken: turns running, and slots reserved for a claim in progress.
    running: AtomicUsize,
    /// Set once turns left running by a previous process have been recovered; until then
    /// nothing else may claim turns (recovery would take them for interrupted ones).
    recovered: AtomicBool,
    /// `gateway.chat_daily_budget_usd` (0: unlimited).
    daily_budget_usd: f64,
    /// The owner's handle, told in their DM when a chat's workspace is found damaged.
    owner: Option<String>,
    /// Cancelled when the daemon stops: running turns are dropped where they are.
    stopping: CancellationToken,
    /// The tasks running turns, so that [`Scheduler::stop`] returns once none is left.
    turn_tasks: TaskTracker,
}

impl Scheduler {
    // Each argument is a different collaborator the daemon wires in; a builder adds nothing.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Store,
        agent: Arc<dyn Agent>,
        channel: Arc<dyn Channel>,
        limits: &TurnsConfig,
        metrics: Arc<Metrics>,
        wake: Arc<Notify>,
        outbox_wake: Arc<Notify>,
        daily_budget_usd: f64,
        owner: Option<String>,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            agent,
            channel,
            max_concurrent: limits.max_concurrent,
            timeout: Duration::from_secs(limits.timeout_secs),
            metrics,
            wake,
            outbox_wake,
            running: AtomicUsize::new(0),
            recovered: AtomicBool::new(false),
            daily_budget_usd,
            owner,
            stopping: CancellationToken::new(),
            turn_tasks: TaskTracker::new(),
        })
    }

    /// Cuts every running turn short where it is, for a daemon that is stopping, and returns
    /// once none is left. Each stays `running` in the store and the next start recovers it, as
    /// after a crash; the agent's processes are left as they are.
    pub async fn stop(&self) {
        self.stopping.cancel();
        self.turn_tasks.close();
        self.turn_tasks.wait().await;
    }

    /// Requeues turns a previous process left running, then schedules until dropped.
    pub async fn run(self: Arc<Self>) {
        match self.store.write(turns::recover_interrupted).await {
            Ok((0, 0)) => {}
            Ok((requeued, failed)) => {
                tracing::warn!(requeued, failed, "recovered turns interrupted by a restart");
                self.outbox_wake.notify_one();
            }
            Err(e) => tracing::error!(error = %e, "could not recover interrupted turns"),
        }
        self.recovered.store(true, Ordering::SeqCst);
        loop {
            let free = self.reserve(self.max_concurrent);
            // Claiming is a write; ask the (parallel) readers first whether anything waits.
            let queued = free > 0 && self.store.read(turns::any_queued).await.unwrap_or(true);
            let claimed = if queued {
                self.store
                    .write_background(move |c| turns::claim_runnable(c, free))
                    .await
                    .unwrap_or_else(|e| {
                        tracing::error!(error = %e, "could not claim turns");
                        Vec::new()
                    })
            } else {
                Vec::new()
            };
            self.unreserve(free - claimed.len());
            self.start(claimed);
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(IDLE_POLL) => {}
            }
        }
    }

    /// Reserves up to `wanted` free turn slots for a claim and returns how many it got (none
    /// before recovery). Each slot is then either taken by a claimed turn ([`Self::start`]) or
    /// given back ([`Self::unreserve`]). The gatekeeper claims the turns it queues itself, in
    /// the transaction that queues them, sparing a read and a write per answered message.
    pub fn reserve(&self, wanted: usize) -> usize {
        if !self.recovered.load(Ordering::SeqCst) {
            return 0;
        }
        let mut reserved = 0;
        let _ = self
            .running
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |running| {
                reserved = self.max_concurrent.saturating_sub(running).min(wanted);
                Some(running + reserved)
            });
        reserved
    }

    /// Gives back reserved slots no claimed turn took.
    pub fn unreserve(&self, slots: usize) {
        if slots > 0 {
            self.running.fetch_sub(slots, Ordering::SeqCst);
        }
    }

    /// Runs turns claimed with reserved slots, one slot each. A turn that ends hands its slot
    /// to the runnable turn it claimed in the transaction that ended it, if there was one; the
    /// last turn frees the slot and wakes the scheduler to claim what waits.
    pub fn start(self: &Arc<Self>, claimed: Vec<TurnWork>) {
        for work in claimed {
            let me = self.clone();
            self.turn_tasks.spawn(async move {
                let turns = async {
                    let mut next = Some(work);
                    while let Some(work) = next.take() {
                        let span = tracing::info_span!("turn", request_id = %work.request_id, chat_id = %work.chat_id, turn_id = work.turn_id);
                        next = me.run_turn(work).instrument(span).await;
                    }
                };
                me.stopping.run_until_cancelled(turns).await;
                me.running.fetch_sub(1, Ordering::SeqCst);
                me.wake.notify_one();
            });
        }
    }

    /// Turns the chat's typing indicator on, after [`TYPING_DELAY`], until the returned sender
    /// fires (or is dropped).
    fn show_typing(&self, chat_id: &str) -> tokio::sync::oneshot::Sender<()> {
        let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        let channel = self.channel.clone();
        let chat_id = chat_id.to_owned();
        tokio::spawn(async move {
            tokio::select! {
                _ = &mut stop_rx => return,
                _ = tokio::time::sleep(TYPING_DELAY) => {}
            }
            loop {
                if let Err(e) = channel.typing(&chat_id, true).await {
                    tracing::debug!(error = %e, "typing indicator not shown");
                }
                tokio::select! {
                    _ = &mut stop_rx => break,
                    _ = tokio::time::sleep(TYPING_REFRESH) => {}
                }
            }
            if let Err(e) = channel.typing(&chat_id, false).await {
                tracing::debug!(error = %e, "typing indicator not cleared");
            }
        });
        stop_tx
    }

    /// When the chat's model spend today has reached the budget: the message it gets instead.
    async fn budget_used_up(&self, chat_id: &str) -> Option<String> {
        if self.daily_budget_usd <= 0.0 {
            return None;
        }
        let (chat, day) = (chat_id.to_owned(), crate::gateway::utc_day());
        let spent = self
            .store
            .read(move |c| crate::store::usage::spent_micros(c, &chat, &day))
            .await;
        match spent {
            Ok(spent) if crate::gateway::over_budget(self.daily_budget_usd, spent) => {
                Some(crate::gateway::budget_message(self.daily_budget_usd))
            }
            Ok(_) => None,
            // Unknown spend does not stop a turn; the gateway checks again per request.
            Err(e) => {
                tracing::warn!(error = %e, "could not read the chat's model spend");
                None
            }
        }
    }

    /// Fails the turn of a chat whose archived workspace is damaged, with a notice in the chat,
    /// in one transaction that (given the damage just found) marks the chat failed and, the
    /// first time, tells the owner in their DM. A chat already failed is not restored again:
    /// the owner repairs or destroys it.
    async fn fail_damaged(&self, work: &TurnWork, damage: Option<String>) -> StoreResult<bool> {
        let notice = format!(
            "I can't open this conversation's workspace: its archive is damaged, so I've kept it \
             as it is for the owner to look at. (request id {})",
            work.request_id
        );
        let (w, owner) = (work.clone(), self.owner.clone());
        let told = self
            .store
            .write_background(move |c| {
                let error = damage.clone().unwrap_or_else(|| {
                    "the chat is failed: its archive is damaged (not restored again)".into()
                });
                if !turns::fail(c, &w, &error, &notice)? {
                    return Ok(false);
                }
                let Some(damage) = damage else {
                    return Ok(false);
                };
                if !crate::lifecycle::mark_failed_in(c, &w.chat_id, "picortex", &damage)? {
                    return Ok(false);
                }
                let Some(owner) = owner else {
                    return Ok(false);
                };
                let text = format!(
                    "Heads up: a message came to the chat {chat}, but its archived workspace is \
                     damaged ({damage}). I left the archive as it is and marked the chat failed; \
                     its messages get an apology until you repair the archive and run \
                     `picortex chat restore {chat}`, or start it afresh with \
                     `picortex chat destroy {chat}`.",
                    chat = w.chat_id
                );
                crate::store::gate::tell_owner(c, &owner, text, "archive-notice", Some(&w.chat_id))
            })
            .await?;
        Metrics::inc(&self.metrics.turns_failed);
        self.outbox_wake.notify_one();
        Ok(told)
    }

    /// Records a turn's end with `end` and, in the same transaction, claims the runnable turn
    /// (if any) that takes over its slot: a queued turn starts without another commit or a
    /// wait for the scheduler to wake.
    async fn end_turn<R>(
        &self,
        end: impl FnOnce(&rusqlite::Connection) -> StoreResult<R> + Send + 'static,
    ) -> StoreResult<Option<TurnWork>> {
        self.store
            .write_background(move |c| {
                end(c)?;
                Ok(turns::claim_runnable(c, 1)?.pop())
            })
            .await
    }

    /// Runs one turn to its recorded end, and returns the turn that takes over its slot.
    async fn run_turn(&self, work: TurnWork) -> Option<TurnWork> {
        if work.chat_failed {
            match self.fail_damaged(&work, None).await {
                Ok(_) => tracing::info!(status = "failed", "turn refused: the chat is failed"),
                Err(e) => tracing::error!(error = %e, "could not record a turn's outcome"),
            }
            return None;
        }
        if let Some(text) = self.budget_used_up(&work.chat_id).await {
            let message = OutgoingMessage {
                text,
                reply_to: work.reply_to().map(str::to_owned),
                attachments: Vec::new(),
            };
            let w = work.clone();
            // Done with that reply, in one transaction: nothing is lost, and a repeat finish
            // of the same turn changes nothing.
            let finished = self
                .end_turn(move |c| {
                    turns::finish(c, &w, &[message], &crate::agent::TurnAccounting::default())
                })
                .await;
            if finished.is_ok() {
                tracing::info!(
                    status = "done",
                    reason = "budget",
                    "turn answered without the agent: model budget used up"
                );
            }
            return self.ended("done", finished);
        }
        Metrics::inc(&self.metrics.turns_started);
        let started = std::time::Instant::now();
        tracing::info!(
            attempt = work.attempt,
            messages = work.messages.len(),
            agent = self.agent.name(),
            "turn started"
        );
        let request = TurnRequest {
            turn_id: work.turn_id,
            chat_id: work.chat_id.clone(),
            is_group: work.is_group,
            request_id: work.request_id.clone(),
            messages: work.messages.clone(),
            participants: work.participants.clone(),
            context: work.context.clone(),
        };
        // Linq refuses typing indicators in groups, so only DMs get one.
        let typing = (!work.is_group).then(|| self.show_typing(&work.chat_id));
        let outcome =
            match tokio::time::timeout(self.timeout, self.agent.run_turn(request.clone())).await {
                Ok(result) => result,
                Err(_) => {
                    self.agent.interrupt(&request).await;
                    Err(AgentError::TimedOut(self.timeout))
                }
            };
        if let Some(stop) = typing {
            let _ = stop.send(());
        }
        let elapsed_ms = started.elapsed().as_millis() as u64;
        let (status, write) = match outcome {
            Ok(reply) => {
                let messages = shape(&reply, work.reply_to());
                let accounting = reply.accounting.clone();
                let w = work.clone();
                if messages.is_empty() {
                    let notice = turns::failure_notice(&work.request_id);
                    let ended = self
                        .end_turn(move |c| turns::fail(c, &w, "the agent gave no answer", &notice))
                        .await;
                    ("failed", ended)
                } else {
                    let ended = self
                        .end_turn(move |c| turns::finish(c, &w, &messages, &accounting))
                        .await;
                    ("done", ended)
                }
            }
            Err(AgentError::WorkspaceDamaged(damage)) => {
                tracing::error!(error = %damage, "the chat's archive is damaged");
                match self.fail_damaged(&work, Some(damage)).await {
                    Ok(told) => tracing::info!(owner_told = told, "chat marked failed"),
                    Err(e) => tracing::error!(error = %e, "could not record a turn's outcome"),
                }
                return None;
            }
            Err(AgentError::Retryable(e)) if work.attempt < MAX_TURN_ATTEMPTS => {
                tracing::warn!(error = %e, "turn failed, retrying once");
                let id = work.turn_id;
                let ended = self.end_turn(move |c| turns::requeue(c, id, &e)).await;
                ("requeued", ended)
            }
            Err(e) => {
                let error = e.to_string();
                let notice = match &e {
                    AgentError::TimedOut(limit) => format!(
                        "That was taking longer than {} so I stopped. Try a smaller ask? (request id {})",
                        human_duration(*limit),
                        work.request_id
                    ),
                    _ => turns::failure_notice(&work.request_id),
                };
                let w = work.clone();
                let ended = self
                    .end_turn(move |c| turns::fail(c, &w, &error, &notice))
                    .await;
                ("failed", ended)
            }
        };
        if write.is_ok() {
            tracing::info!(status, elapsed_ms, "turn finished");
        }
        self.ended(status, write)
    }

    /// Counts a turn whose end `write` recorded as `status`, wakes the sender for its reply,
    /// and returns the turn that takes over its slot. A failed write is logged: the turn stays
    /// `running` in the store, and the next start recovers it.
    fn ended(
        &self,
        status: &'static str,
        write: StoreResult<Option<TurnWork>>,
    ) -> Option<TurnWork> {
        match write {
            Ok(next) => {
                match status {
                    "failed" => Metrics::inc(&self.metrics.turns_failed),
                    "done" => Metrics::inc(&self.metrics.turns_done),
                    _ => {}
                }
                self.outbox_wake.notify_one();
                next
            }
            Err(e) => {
                tracing::error!(error = %e, "could not record a turn's outcome");
                None
            }
        }
    }
}

/// The reply as the messages to send: markdown made readable in iMessage and split at sensible
/// boundaries, each threaded onto the message it answers, attachments with the last one.
fn shape(reply: &TurnReply, reply_to: Option<&str>) -> Vec<OutgoingMessage> {
    let mut texts = shaping::shape_reply(&reply.text);
    if texts.is_empty() && !reply.attachments.is_empty() {
        texts.push(String::new());
    }
    let count = texts.len();
    texts
        .into_iter()
        .enumerate()
        .map(|(i, text)| OutgoingMessage {
            text,
            reply_to: reply_to.map(str::to_owned),
            attachments: if i + 1 == count {
                reply
                    .attachments
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect()
            } else {
                Vec::new()
            },
        })
        .collect()
}

fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs >= 120 && secs.is_multiple_of(60) {
        format!("{} minutes", secs / 60)
    } else {
        format!("{secs} seconds")
    }
}
