//! The gatekeeper: decides, for every inbound message, whether the bot answers, and records why.
//! It runs after ingest (a model call must never hold up a webhook's answer), per chat in arrival
//! order. A chat's pending messages are read together with the chat's facts in one read, and the
//! decisions the rules make alone are recorded together in one transaction (each decision with
//! its message, and for a message it answers, the turn), so a busy chat costs one read and one
//! write per batch rather than per message. Ingest names the chats it stored a message for
//! ([`PendingChats`]), so the gatekeeper searches the store for waiting messages only at
//! start-up and every few seconds as a safety net. Owner commands and discriminator calls are
//! decided one at a time. The turns a batch queues are claimed in its transaction when the scheduler
//! has free slots, and handed to it to run. Owner commands are carried out here and answered
//! through the outbox. Pending messages survive restarts and are decided then. The
//! discriminator's model use is metered with the gateway's prices into the chat's daily usage,
//! in the decision's own transaction, so it counts against the chat's model budget.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tracing::Instrument;

use crate::agent::Agent;
use crate::config::Config;
use crate::gate::commands::{OwnerCommand, help_text, refusal_text};
use crate::gate::discriminator::{
    ContextMessage, DEFAULT_PROMPT, Discriminator, DiscriminatorConfig, DiscriminatorInput,
};
use crate::gate::{AttentionMode, BotIdentity, ChatFacts, Incoming, Verdict, decide};
use crate::gateway::{Pricing, Tally};
use crate::metrics::Metrics;
use crate::scheduler::Scheduler;
use crate::store::gate::{self as gate_store, GateRecord, PendingBatch, PendingMessage};
use crate::store::outbox::{self, OutgoingMessage};
use crate::store::usage::UsageRecord;
use crate::store::{Store, StoreResult, now_ms};
use crate::workspace::Workspaces;

const IDLE_POLL: Duration = Duration::from_secs(5);
/// How long a chat whose messages could not be read or decided waits before the next attempt.
const RETRY_AFTER_ERROR: Duration = Duration::from_secs(1);
/// How many earlier messages the discriminator sees.
const RECENT: usize = 6;
/// Pending messages of one chat read and decided together.
const BATCH: usize = 256;
/// Where a chat's discriminator prompt lives, relative to its home.
pub const PROMPT_FILE: &str = ".picortex/prompts/discriminator.md";

/// How much of a batch [`Gatekeeper::decide_batch`] decided.
enum Batch {
    Whole,
    /// A message that needed I/O ended it; the rest are still pending.
    EndedEarly,
}

/// The chats ingest has stored a message for since the gatekeeper last looked, and the wake-up
/// that goes with them. The store stays the record of what waits: this only spares the
/// gatekeeper a search of it after every webhook.
#[derive(Default)]
pub struct PendingChats {
    chats: Mutex<HashSet<String>>,
    wake: Notify,
}

impl PendingChats {
    /// Called once a message for `chat_id` is committed.
    pub fn mark(&self, chat_id: &str) {
        if let Ok(mut chats) = self.chats.lock() {
            chats.insert(chat_id.to_owned());
        }
        self.wake.notify_one();
    }

    fn take(&self) -> HashSet<String> {
        self.chats
            .lock()
            .map(|mut chats| std::mem::take(&mut *chats))
            .unwrap_or_default()
    }
}

pub struct Gatekeeper {
    store: Store,
    agent: Arc<dyn Agent>,
    bot: BotIdentity,
    owner: Option<String>,
    discriminator: Option<Discriminator>,
    daily_calls: i64,
    utc_offset: time::UtcOffset,
    /// Chat homes, where each chat's discriminator prompt lives (only for agents with homes).
    workspaces: Option<Workspaces>,
    metrics: Arc<Metrics>,
    pending: Arc<PendingChats>,
    turns_wake: Arc<Notify>,
    outbox_wake: Arc<Notify>,
    busy_chats: Mutex<HashSet<String>>,
    /// Claims the turns the gate queues, when it has free slots.
    scheduler: Arc<Scheduler>,
    /// Prices the discriminator's tokens like the gateway does.
    pricing: Pricing,
}

/// The wake-ups the gatekeeper shares with ingest, the scheduler and the sender.
pub struct Wakes {
    pub gate: Arc<PendingChats>,
    pub turns: Arc<Notify>,
    pub outbox: Arc<Notify>,
}

impl Gatekeeper {
    pub fn new(
        config: &Config,
        store: Store,
        agent: Arc<dyn Agent>,
        metrics: Arc<Metrics>,
        wakes: Wakes,
        workspaces: Workspaces,
        scheduler: Arc<Scheduler>,
    ) -> anyhow::Result<Arc<Self>> {
        let a = &config.attention;
        let discriminator = match &config.agents.anthropic_api_key {
            Some(key) => Some(Discriminator::new(DiscriminatorConfig {
                base_url: config
                    .agents
                    .anthropic_base_url
                    .clone()
                    .unwrap_or_else(|| "https://api.anthropic.com".into()),
                api_key: key.clone(),
                model: a.discriminator_model.clone(),
                timeout: Duration::from_millis(a.discriminator_timeout_ms),
                max_tokens: 200,
            })?),
            None => {
                tracing::warn!(
                    "no ANTHROPIC_API_KEY: the discriminate modes fall back to answering DMs and staying quiet in groups"
                );
                None
            }
        };
        let workspaces = matches!(
            config.agent,
            crate::config::AgentKind::ClaudeCode | crate::config::AgentKind::Command
        )
        .then_some(workspaces);
        Ok(Arc::new(Self {
            store,
            agent,
            bot: BotIdentity {
                name: config.bot_name.clone(),
                aliases: a.aliases.clone(),
            },
            owner: config.owner.clone(),
            discriminator,
            daily_calls: a.discriminator_daily_calls,
            utc_offset: a.offset()?,
            workspaces,
            metrics,
            pending: wakes.gate,
            turns_wake: wakes.turns,
            outbox_wake: wakes.outbox,
            busy_chats: Mutex::new(HashSet::new()),
            scheduler,
            pricing: Pricing::new(config.gateway.prices.clone()),
        }))
    }

    pub async fn run(self: Arc<Self>) {
        // Chats named while their drain was still running: tried again when a drain ends.
        let mut deferred = HashSet::new();
        // The store is searched at start-up (messages left pending by the last run) and then
        // every IDLE_POLL, busy or not, as a safety net.
        let mut last_search: Option<Instant> = None;
        loop {
            let mut chats = self.pending.take();
            chats.extend(deferred.drain());
            if last_search.is_none_or(|at| at.elapsed() >= IDLE_POLL) {
                last_search = Some(Instant::now());
                match self.store.read(gate_store::chats_with_pending).await {
                    Ok(found) => chats.extend(found),
                    Err(e) => tracing::error!(error = %e, "gate: cannot read pending messages"),
                }
            }
            for chat_id in chats {
                if !self.claim(&chat_id) {
                    // Its drain may have read the chat before this message was stored.
                    deferred.insert(chat_id);
                    continue;
                }
                let me = self.clone();
                tokio::spawn(async move {
                    if me.drain_chat(&chat_id).await {
                        me.release(&chat_id);
                        me.pending.wake.notify_one();
                    } else {
                        // Left pending after an error: try again after a pause, not at once.
                        tokio::time::sleep(RETRY_AFTER_ERROR).await;
                        me.release(&chat_id);
                        me.pending.mark(&chat_id);
                    }
                });
            }
            tokio::select! {
                _ = self.pending.wake.notified() => {}
                _ = tokio::time::sleep(IDLE_POLL) => {}
            }
        }
    }

    fn claim(&self, chat_id: &str) -> bool {
        self.busy_chats
            .lock()
            .map(|mut s| s.insert(chat_id.to_owned()))
            .unwrap_or(false)
    }

    fn release(&self, chat_id: &str) {
        if let Ok(mut s) = self.busy_chats.lock() {
            s.remove(chat_id);
        }
    }

    /// Decides the chat's pending messages in order, a batch at a time: one read for the batch,
    /// the rules for each message, and one transaction for the decisions the rules made alone.
    /// Stops after a batch that took every waiting message (anything stored since is named by
    /// ingest and drained next). Returns false if a read or a write failed.
    async fn drain_chat(&self, chat_id: &str) -> bool {
        loop {
            let started = Instant::now();
            let chat = chat_id.to_owned();
            let batch = self
                .store
                .read(move |c| gate_store::pending_batch(c, &chat, BATCH))
                .await;
            let batch = match batch {
                Ok(Some(b)) => b,
                Ok(None) => return true,
                Err(e) => {
                    tracing::error!(error = %e, "gate: cannot read the pending messages");
                    return false;
                }
            };
            let took_all = batch.messages.len() < BATCH;
            match self.decide_batch(batch, started).await {
                Ok(Batch::Whole) if took_all => return true,
                Ok(_) => {}
                Err(e) => {
                    // Left pending: the next pass (or the next start) decides them.
                    tracing::error!(error = %e, "gate: could not record a decision");
                    return false;
                }
            }
        }
    }

    /// Decides `batch` in order. Decisions the rules make alone are collected and recorded
    /// together; a message that needs I/O (an owner command, the discriminator) first records
    /// those before it, then is decided and recorded on its own, and ends the batch, since a
    /// command may change what the rules see for the messages after it.
    async fn decide_batch(&self, batch: PendingBatch, started: Instant) -> StoreResult<Batch> {
        let facts = batch.chat;
        let mode = facts
            .mode
            .as_deref()
            .and_then(AttentionMode::parse)
            .unwrap_or_else(|| AttentionMode::default_for(facts.is_group));
        let chat = ChatFacts {
            is_group: facts.is_group,
            display_name: facts.display_name.clone(),
            participants: facts.participants.clone(),
            owner: self.owner.clone(),
        };
        let mut decided = Vec::with_capacity(batch.messages.len());
        for pending in batch.messages {
            let msg = pending.message;
            let incoming = Incoming {
                sender: msg.sender.clone(),
                text: msg.text.clone(),
                has_non_text: msg.has_non_text(),
                replies_to_bot: pending.replies_to_bot,
            };
            let (record, reply) = match decide(mode, &self.bot, &chat, &incoming) {
                Verdict::Respond { rule, reason } => (
                    decision("respond", rule.as_str(), reason, elapsed_us(started), None),
                    None,
                ),
                Verdict::Skip { rule, reason } => (
                    decision("skip", rule.as_str(), reason, elapsed_us(started), None),
                    None,
                ),
                Verdict::Refuse { reason } => (
                    decision("refused", "Command", reason, elapsed_us(started), None),
                    Some(refusal_text()),
                ),
                verdict => {
                    self.record(decided, facts.accumulate, mode).await?;
                    let span = tracing::info_span!("gate", request_id = %msg.request_id, chat_id = %msg.chat_id, message_id = %msg.id);
                    let one = self
                        .decide_with_io(msg, verdict, mode, &chat, &incoming, started)
                        .instrument(span)
                        .await?;
                    self.record(vec![one], facts.accumulate, mode).await?;
                    return Ok(Batch::EndedEarly);
                }
            };
            decided.push(Decided {
                msg,
                record,
                reply,
                usage: None,
            });
        }
        self.record(decided, facts.accumulate, mode).await?;
        Ok(Batch::Whole)
    }

    /// Carries out an owner command or asks the discriminator.
    async fn decide_with_io(
        &self,
        msg: PendingMessage,
        verdict: Verdict,
        mode: AttentionMode,
        chat: &ChatFacts,
        incoming: &Incoming,
        started: Instant,
    ) -> StoreResult<Decided> {
        if let Verdict::Command(command) = verdict {
            let text = self.run_command(&msg, mode, command).await?;
            let record = decision(
                "command",
                "Command",
                "owner command".into(),
                elapsed_us(started),
                None,
            );
            return Ok(Decided {
                msg,
                record,
                reply: Some(text),
                usage: None,
            });
        }
        let m = msg.clone();
        let recent = self
            .store
            .read(move |c| gate_store::recent_messages(c, &m, RECENT))
            .await?;
        let (record, reply, usage) = self
            .ask_model(&msg, chat, incoming, &recent, started)
            .await?;
        Ok(Decided {
            msg,
            record,
            reply,
            usage,
        })
    }

    /// Records `decided` (in order) in one transaction: each decision with its message, the
    /// turns it queues, its model use and its reply.
    async fn record(
        &self,
        decided: Vec<Decided>,
        accumulate: bool,
        mode: AttentionMode,
    ) -> StoreResult<()> {
        if decided.is_empty() {
            return Ok(());
        }
        for d in &decided {
            let r = &d.record;
            let m = &d.msg;
            let span = tracing::info_span!("gate", request_id = %m.request_id, chat_id = %m.chat_id, message_id = %m.id);
            let _entered = span.enter();
            tracing::info!(
                target: "gate.decision",
                decision = r.status,
                rule = %r.rule,
                reason = %r.reason,
                latency_us = r.latency_us,
                cost_usd = r.cost_usd.unwrap_or(0.0),
                mode = mode.as_str(),
                "gate.decision"
            );
        }
        let statuses: Vec<&'static str> = decided.iter().map(|d| d.record.status).collect();
        let answers = statuses.iter().filter(|s| **s == "respond").count();
        let slots = self.scheduler.reserve(answers);
        let written = self
            .store
            .write_background(move |c| {
                let (mut turns, mut replies) = (0usize, 0usize);
                for d in &decided {
                    let m = &d.msg;
                    if gate_store::record(c, m, &d.record, accumulate)?.is_some() {
                        turns += 1;
                    }
                    if let Some(usage) = &d.usage {
                        crate::store::usage::add(c, usage)?;
                    }
                    if let Some(text) = &d.reply {
                        outbox::enqueue(
                            c,
                            &m.chat_id,
                            None,
                            &OutgoingMessage {
                                text: text.clone(),
                                reply_to: Some(m.id.clone()),
                                attachments: Vec::new(),
                            },
                            &m.request_id,
                            now_ms(),
                        )?;
                        replies += 1;
                    }
                }
                // The turns just queued start at once if they can, claimed in this transaction.
                let claimed = if turns > 0 && slots > 0 {
                    crate::store::turns::claim_runnable(c, slots)?
                } else {
                    Vec::new()
                };
                Ok((turns, replies, claimed))
            })
            .await;
        let (turns, replies, claimed) = match written {
            Ok(w) => w,
            Err(e) => {
                self.scheduler.unreserve(slots);
                return Err(e);
            }
        };
        let started = claimed.len();
        self.scheduler.unreserve(slots - started);
        self.scheduler.start(claimed);
        for status in statuses {
            match status {
                "respond" => Metrics::inc(&self.metrics.gate_respond),
                "skip" => Metrics::inc(&self.metrics.gate_skip),
                _ => Metrics::inc(&self.metrics.gate_command),
            }
        }
        if turns > started {
            // Some stay queued (the chat's turn is running, or no slot was free): the scheduler
            // claims them when a turn finishes; waking it now costs one read and covers any case.
            self.turns_wake.notify_one();
        }
        if replies > 0 {
            self.outbox_wake.notify_one();
        }
        Ok(())
    }

    /// The discriminate modes: the budget, then the model, then the fallback on failure. With
    /// the decision comes the model use to meter, when the model answered.
    async fn ask_model(
        &self,
        msg: &PendingMessage,
        chat: &ChatFacts,
        incoming: &Incoming,
        recent: &[gate_store::RecentMessage],
        started: Instant,
    ) -> StoreResult<(GateRecord, Option<String>, Option<UsageRecord>)> {
        let day = self.today();
        let (chat_id, d) = (msg.chat_id.clone(), day.clone());
        let (calls, _, _) = self
            .store
            .read(move |c| gate_store::spend(c, &chat_id, &d))
            .await?;
        if calls >= self.daily_calls {
            self.tell_owner_of_budget(&msg.chat_id, &day).await?;
            // Over budget: mentions-only until midnight. decide() found no mention or reply.
            return Ok((
                decision(
                    "skip",
                    "Budget",
                    format!(
                        "discriminator budget of {} calls used today; mentions only until midnight",
                        self.daily_calls
                    ),
                    elapsed_us(started),
                    None,
                ),
                None,
                None,
            ));
        }
        let Some(discriminator) = &self.discriminator else {
            return Ok((
                self.fallback(chat.is_group, "no model configured", started),
                None,
                None,
            ));
        };
        let prompt = self.prompt_for(&msg.chat_id).await;
        let context: Vec<ContextMessage> = recent
            .iter()
            .map(|r| ContextMessage {
                sender: r.sender.clone(),
                text: r.text.clone(),
                from_bot: r.from_bot,
            })
            .collect();
        let input = DiscriminatorInput {
            prompt_template: &prompt,
            chat,
            bot: &self.bot,
            recent: &context,
            incoming,
        };
        let outcome = discriminator.decide(&input).await;
        let mut usage = None;
        let mut record = match outcome {
            Ok(o) => {
                let tally = Tally {
                    model: Some(discriminator.config().model.clone()),
                    input: i64::try_from(o.input_tokens).unwrap_or(i64::MAX),
                    output: i64::try_from(o.output_tokens).unwrap_or(i64::MAX),
                    ..Tally::default()
                };
                usage = Some(
                    self.pricing
                        .record(&msg.chat_id, i64::from(o.attempts), &tally),
                );
                decision(
                    if o.should_respond { "respond" } else { "skip" },
                    "Model",
                    o.reason,
                    elapsed_us(started),
                    Some(o.cost_usd),
                )
            }
            Err(e) => self.fallback(chat.is_group, &e.to_string(), started),
        };
        // Counted against today's budget in the decision's own transaction.
        record.model_call_day = Some(day);
        Ok((record, None, usage))
    }

    fn fallback(&self, is_group: bool, why: &str, started: Instant) -> GateRecord {
        let respond = crate::gate::discriminator::fallback(is_group);
        decision(
            if respond { "respond" } else { "skip" },
            "Fallback",
            format!(
                "discriminator unavailable ({why}); {}",
                if respond {
                    "answering in a DM"
                } else {
                    "staying quiet in a group"
                }
            ),
            elapsed_us(started),
            None,
        )
    }

    async fn tell_owner_of_budget(&self, chat_id: &str, day: &str) -> StoreResult<()> {
        let Some(owner) = self.owner.clone() else {
            return Ok(());
        };
        let (chat, day, limit) = (chat_id.to_owned(), day.to_owned(), self.daily_calls);
        let told = self
            .store
            .write_background(move |c| {
                if !gate_store::mark_budget_notice(c, &chat, &day)? {
                    return Ok(false);
                }
                let text = format!(
                    "Heads up: the chat {chat} used its {limit} attention checks for today, so until midnight I'll only answer there when mentioned."
                );
                gate_store::tell_owner(c, &owner, text, "budget-notice", None)
            })
            .await?;
        if told {
            self.outbox_wake.notify_one();
        }
        Ok(())
    }

    /// The chat's discriminator prompt: its `.picortex/prompts/discriminator.md` (seeded from
    /// the default the first time), or the default for chats without a home.
    async fn prompt_for(&self, chat_id: &str) -> String {
        let Some(workspaces) = &self.workspaces else {
            return DEFAULT_PROMPT.to_owned();
        };
        if workspaces.ensure_home(chat_id).await.is_err() {
            return DEFAULT_PROMPT.to_owned();
        }
        match workspaces.read_text(chat_id, PROMPT_FILE).await {
            Ok(text) if !text.trim().is_empty() => text,
            _ => DEFAULT_PROMPT.to_owned(),
        }
    }

    fn today(&self) -> String {
        let now = time::OffsetDateTime::now_utc().to_offset(self.utc_offset);
        let d = now.date();
        format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
    }

    async fn run_command(
        &self,
        msg: &PendingMessage,
        mode: AttentionMode,
        command: OwnerCommand,
    ) -> StoreResult<String> {
        let set_mode = |new: AttentionMode| {
            let chat = msg.chat_id.clone();
            async move {
                self.store
                    .write_background(move |c| gate_store::set_mode(c, &chat, new.as_str()))
                    .await
                    .map(|_| new)
            }
        };
        Ok(match command {
            OwnerCommand::Attention(new) => {
                let new = set_mode(new).await?;
                format!("Attention here is now {}.", new.as_str())
            }
            OwnerCommand::Louder => {
                let new = set_mode(mode.louder()).await?;
                format!("Louder: attention here is now {}.", new.as_str())
            }
            OwnerCommand::Quieter => {
                let new = set_mode(mode.quieter()).await?;
                format!("Quieter: attention here is now {}.", new.as_str())
            }
            OwnerCommand::Status => self.status_text(&msg.chat_id, mode).await?,
            OwnerCommand::Reset => match self.agent.reset(&msg.chat_id).await {
                Ok(()) => "Done: the next message here starts a fresh session.".into(),
                Err(e) => format!("I couldn't reset this chat's session: {e}"),
            },
            OwnerCommand::Hibernate => {
                use crate::lifecycle::{Hibernation, hibernate};
                match hibernate(&self.store, self.agent.as_ref(), &msg.chat_id, "owner").await? {
                    Hibernation::Done => "Done: this chat is asleep now (its workspace is kept); \
                                          the next message wakes it."
                        .into(),
                    Hibernation::AlreadyAsleep => "This chat is already asleep.".into(),
                    Hibernation::Busy => {
                        "This chat is still working on a message; ask again when it has answered."
                            .into()
                    }
                    Hibernation::Failed(e) => format!(
                        "I couldn't stop this chat's processes ({e}); I'll keep trying in the \
                         background."
                    ),
                }
            }
            OwnerCommand::Archive => match &self.workspaces {
                None => {
                    "Archiving needs the chat workspaces, which this daemon does not have.".into()
                }
                Some(workspaces) => {
                    use crate::lifecycle::{Archival, archive};
                    match archive(
                        &self.store,
                        self.agent.as_ref(),
                        workspaces,
                        &msg.chat_id,
                        "owner",
                    )
                    .await?
                    {
                        Archival::Done(_) => "Done: this chat is archived (its workspace is \
                                              compressed and put away); the next message brings \
                                              it back."
                            .into(),
                        Archival::AlreadyArchived => "This chat is already archived.".into(),
                        Archival::Busy => "This chat is still working on a message; ask again \
                                           when it has answered."
                            .into(),
                        Archival::Failed(e) => format!("I couldn't archive this chat: {e}"),
                    }
                }
            },
            OwnerCommand::Restore => match &self.workspaces {
                None => {
                    "Restoring needs the chat workspaces, which this daemon does not have.".into()
                }
                Some(workspaces) => {
                    use crate::lifecycle::{Restoral, restore};
                    match restore(&self.store, workspaces, &msg.chat_id, "owner").await? {
                        Restoral::Done(_) => "Done: this chat's workspace is here.".into(),
                        Restoral::Damaged(e) => format!(
                            "This chat's archive is damaged, so I left it as it is and marked \
                             the chat failed: {e}"
                        ),
                        Restoral::Failed(e) => format!("I couldn't restore this chat: {e}"),
                    }
                }
            },
            OwnerCommand::Help | OwnerCommand::Unknown(_) => help_text(&self.bot),
        })
    }

    async fn status_text(&self, chat_id: &str, mode: AttentionMode) -> StoreResult<String> {
        let (chat, day) = (chat_id.to_owned(), self.today());
        let midnight_ms = {
            let now = time::OffsetDateTime::now_utc().to_offset(self.utc_offset);
            let midnight = now.replace_time(time::Time::MIDNIGHT);
            (midnight.unix_timestamp_nanos() / 1_000_000) as i64
        };
        let (session, turn_spend, (calls, gate_spend, _), decisions) = self
            .store
            .read(move |c| {
                Ok((
                    gate_store::last_session(c, &chat)?,
                    gate_store::turn_spend_since(c, &chat, midnight_ms)?,
                    gate_store::spend(c, &chat, &day)?,
                    gate_store::recent_decisions(c, &chat, 4)?,
                ))
            })
            .await?;
        let mut lines = vec![
            format!("Attention: {}", mode.as_str()),
            format!("Agent: {}", self.agent.name()),
            format!("Session: {}", session.as_deref().unwrap_or("none yet")),
            format!(
                "Spend today: ${turn_spend:.4} on answers, ${gate_spend:.4} on {calls} attention checks"
            ),
        ];
        if !decisions.is_empty() {
            lines.push("Last decisions:".into());
            for d in decisions.iter().take(3) {
                let preview: String = d.text.chars().take(30).collect();
                lines.push(format!(
                    "• {} \"{}\": {} ({})",
                    d.sender,
                    preview,
                    d.status,
                    d.reason.as_deref().unwrap_or("")
                ));
            }
        }
        Ok(lines.join("\n"))
    }
}

/// A decision made, waiting to be recorded.
struct Decided {
    msg: PendingMessage,
    record: GateRecord,
    /// The answer to send (a command's, a refusal).
    reply: Option<String>,
    /// The discriminator's model use, to meter with the decision.
    usage: Option<UsageRecord>,
}

fn elapsed_us(started: Instant) -> i64 {
    i64::try_from(started.elapsed().as_micros()).unwrap_or(i64::MAX)
}

fn decision(
    status: &'static str,
    rule: &str,
    reason: String,
    latency_us: i64,
    cost_usd: Option<f64>,
) -> GateRecord {
    GateRecord {
        status,
        rule: rule.to_ascii_lowercase(),
        reason,
        latency_us,
        cost_usd,
        model_call_day: None,
    }
}
