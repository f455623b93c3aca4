//! The attention gate in the store: messages waiting for a decision, what the gate needs to
//! know about their chat, recording each decision (and, for a message it answers, queueing its
//! turn with the skipped messages since the last answer as context) in one transaction, the
//! chat's attention mode, and the discriminator's daily spend.

use rusqlite::{Connection, OptionalExtension, params};

use super::{StoreResult, now_ms, turns};

/// An inbound message the gate has not decided on yet.
#[derive(Debug, Clone)]
pub struct PendingMessage {
    pub id: String,
    pub chat_id: String,
    pub sender: String,
    pub text: String,
    pub parts_json: String,
    pub reply_to: Option<String>,
    pub request_id: String,
    pub created_at: i64,
}

impl PendingMessage {
    /// The message from a row of `id, chat_id, COALESCE(sender, ''), text, parts_json, reply_to,
    /// COALESCE(request_id, ''), created_at`.
    pub fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(PendingMessage {
            id: r.get(0)?,
            chat_id: r.get(1)?,
            sender: r.get(2)?,
            text: r.get(3)?,
            parts_json: r.get(4)?,
            reply_to: r.get(5)?,
            request_id: r.get(6)?,
            created_at: r.get(7)?,
        })
    }

    /// Whether the message carries anything but text (images, voice, files, app cards).
    pub fn has_non_text(&self) -> bool {
        serde_json::from_str::<Vec<serde_json::Value>>(&self.parts_json)
            .map(|parts| parts.iter().any(|p| p["type"] != "text"))
            .unwrap_or(false)
    }
}

/// Chats with messages awaiting the gate.
pub fn chats_with_pending(conn: &Connection) -> StoreResult<Vec<String>> {
    let mut stmt =
        conn.prepare_cached("SELECT DISTINCT chat_id FROM messages WHERE gate_status = 'pending'")?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The chat's messages awaiting the gate, oldest first, at most `limit`.
pub fn pending(conn: &Connection, chat_id: &str, limit: usize) -> StoreResult<Vec<PendingMessage>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, chat_id, COALESCE(sender, ''), text, parts_json, reply_to,
                COALESCE(request_id, ''), created_at
         FROM messages WHERE chat_id = ?1 AND gate_status = 'pending'
         ORDER BY created_at, rowid",
    )?;
    // No `LIMIT ?`: a bound limit makes SQLite re-prepare the statement on every use.
    let rows = stmt.query_map([chat_id], PendingMessage::from_row)?;
    Ok(rows.take(limit).collect::<Result<_, _>>()?)
}

/// One earlier message of the chat, for the discriminator's context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentMessage {
    pub sender: String,
    pub text: String,
    pub from_bot: bool,
}

/// What the gate knows about a chat: the same for every message it decides there until an
/// owner command changes it.
#[derive(Debug, Clone)]
pub struct ChatGateFacts {
    pub is_group: bool,
    pub display_name: Option<String>,
    /// Participants other than the bot.
    pub participants: Vec<String>,
    /// The chat's attention mode, if the owner set one.
    pub mode: Option<String>,
    /// Whether skipped messages are handed to the next answered turn (`accumulate`, the default)
    /// or dropped.
    pub accumulate: bool,
}

/// What the gate knows about one message and its chat.
#[derive(Debug, Clone)]
pub struct GateFacts {
    pub chat: ChatGateFacts,
    /// The message answers one of the bot's messages inline.
    pub replies_to_bot: bool,
    /// Up to `recent` messages before this one, oldest first.
    pub recent: Vec<RecentMessage>,
}

/// A message awaiting the gate with what the rules need to know about it.
#[derive(Debug, Clone)]
pub struct PendingDecision {
    pub message: PendingMessage,
    pub replies_to_bot: bool,
}

/// A chat's messages awaiting the gate, oldest first, with the chat's facts: one read for all
/// of them, since the rules decide most messages without any further I/O.
#[derive(Debug, Clone)]
pub struct PendingBatch {
    pub chat: ChatGateFacts,
    pub messages: Vec<PendingDecision>,
}

/// Up to `limit` of the chat's pending messages with the chat's facts, or `None` when nothing
/// waits.
pub fn pending_batch(
    conn: &Connection,
    chat_id: &str,
    limit: usize,
) -> StoreResult<Option<PendingBatch>> {
    let pending = pending(conn, chat_id, limit)?;
    if pending.is_empty() {
        return Ok(None);
    }
    let chat = chat_facts(conn, chat_id)?;
    let messages = pending
        .into_iter()
        .map(|message| {
            let replies_to_bot = replies_to_bot(conn, message.reply_to.as_deref())?;
            Ok(PendingDecision {
                message,
                replies_to_bot,
            })
        })
        .collect::<StoreResult<_>>()?;
    Ok(Some(PendingBatch { chat, messages }))
}

/// Everything the gate knows about one message, read on its own (the gate benchmark times this;
/// the gatekeeper reads [`pending_batch`] and, for the discriminator, [`recent_messages`]).
pub fn facts(conn: &Connection, msg: &PendingMessage, recent: usize) -> StoreResult<GateFacts> {
    Ok(GateFacts {
        chat: chat_facts(conn, &msg.chat_id)?,
        replies_to_bot: replies_to_bot(conn, msg.reply_to.as_deref())?,
        recent: recent_messages(conn, msg, recent)?,
    })
}

pub fn chat_facts(conn: &Connection, chat_id: &str) -> StoreResult<ChatGateFacts> {
    let (is_group, display_name): (bool, Option<String>) = conn
        .prepare_cached("SELECT is_group, display_name FROM chats WHERE id = ?1")?
        .query_row([chat_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let mut stmt = conn.prepare_cached(
        "SELECT handle FROM participants WHERE chat_id = ?1 AND is_me = 0 AND left_at IS NULL
         ORDER BY joined_at, handle",
    )?;
    let participants = stmt
        .query_map([chat_id], |r| r.get(0))?
        .collect::<Result<Vec<String>, _>>()?;
    let config: Option<(Option<String>, String)> = conn
        .prepare_cached("SELECT attention_mode, settings_json FROM chat_config WHERE chat_id = ?1")?
        .query_row([chat_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let (mode, settings) = config.unwrap_or((None, "{}".into()));
    let accumulate = serde_json::from_str::<serde_json::Value>(&settings)
        .ok()
        .and_then(|v| v["context"].as_str().map(|c| c != "drop"))
        .unwrap_or(true);
    Ok(ChatGateFacts {
        is_group,
        display_name,
        participants,
        mode,
        accumulate,
    })
}

/// Whether `reply_to` names one of the bot's own messages.
fn replies_to_bot(conn: &Connection, reply_to: Option<&str>) -> StoreResult<bool> {
    let Some(target) = reply_to else {
        return Ok(false);
    };
    Ok(conn
        .prepare_cached("SELECT 1 FROM messages WHERE id = ?1 AND direction = 'outbound'")?
        .query_row([target], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Up to `recent` messages of the chat before `msg`, oldest first.
pub fn recent_messages(
    conn: &Connection,
    msg: &PendingMessage,
    recent: usize,
) -> StoreResult<Vec<RecentMessage>> {
    // Rowids grow in arrival order, which is the order people saw the messages in.
    let mut stmt = conn.prepare_cached(
        "SELECT COALESCE(sender, ''), text, direction = 'outbound' FROM messages
         WHERE chat_id = ?1 AND rowid < (SELECT rowid FROM messages WHERE id = ?2)
         ORDER BY rowid DESC",
    )?;
    // No `LIMIT ?`: a bound limit makes SQLite re-prepare the statement on every use; the index
    // walks the chat backwards, so taking the first rows reads only those.
    let mut rows = stmt
        .query_map(params![msg.chat_id, msg.id], |r| {
            Ok(RecentMessage {
                sender: r.get(0)?,
                text: r.get(1)?,
                from_bot: r.get(2)?,
            })
        })?
        .take(recent)
        .collect::<Result<Vec<_>, _>>()?;
    rows.reverse();
    Ok(rows)
}

/// A decision, as stored with the message.
#[derive(Debug, Clone)]
pub struct GateRecord {
    /// `respond`, `skip`, `command` or `refused`.
    pub status: &'static str,
    pub rule: String,
    pub reason: String,
    pub latency_us: i64,
    pub cost_usd: Option<f64>,
    /// The local day a discriminator call made for this decision counts against, if one was.
    pub model_call_day: Option<String>,
}

/// Records the gate's decision on `msg`. For `respond`, also queues the message into its chat's
/// next turn and attaches the skipped messages since the last answer as that turn's context
/// (when the chat accumulates). Returns the turn id, if one was queued. A message that is no
/// longer pending (decided before a crash) is left alone.
pub fn record(
    conn: &Connection,
    msg: &PendingMessage,
    decision: &GateRecord,
    accumulate: bool,
) -> StoreResult<Option<i64>> {
    let now = now_ms();
    let changed = conn
        .prepare_cached(
            "UPDATE messages SET gate_status = ?2, gate_rule = ?3, gate_reason = ?4,
             gate_latency_us = ?5, gate_cost_usd = ?6, gate_at = ?7
         WHERE id = ?1 AND gate_status = 'pending'",
        )?
        .execute(params![
            msg.id,
            decision.status,
            decision.rule,
            decision.reason,
            decision.latency_us,
            decision.cost_usd,
            now
        ])?;
    if changed == 0 {
        return Ok(None);
    }
    if let Some(day) = &decision.model_call_day {
        add_spend(conn, &msg.chat_id, day, decision.cost_usd.unwrap_or(0.0))?;
    }
    if decision.status != "respond" {
        return Ok(None);
    }
    let turn_id = turns::enqueue(conn, &msg.chat_id, &msg.id, &msg.request_id, now)?;
    if accumulate {
        conn.prepare_cached(
            "UPDATE messages SET context_turn_id = ?1
             WHERE chat_id = ?2 AND gate_status = 'skip' AND context_turn_id IS NULL
               AND rowid < (SELECT rowid FROM messages WHERE id = ?3)",
        )?
        .execute(params![turn_id, msg.chat_id, msg.id])?;
    }
    Ok(Some(turn_id))
}

/// Sets the chat's attention mode (the owner's command).
pub fn set_mode(conn: &Connection, chat_id: &str, mode: &str) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO chat_config (chat_id, attention_mode, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (chat_id) DO UPDATE SET attention_mode = excluded.attention_mode,
             updated_at = excluded.updated_at",
    )?
    .execute(params![chat_id, mode, now_ms()])?;
    super::audit(
        conn,
        "owner",
        "attention.mode",
        Some(chat_id),
        &serde_json::json!({"mode": mode}),
    )
}

/// The discriminator's use today: (calls, cost, whether the owner was told of the cap).
pub fn spend(conn: &Connection, chat_id: &str, day: &str) -> StoreResult<(i64, f64, bool)> {
    Ok(conn
        .query_row(
            "SELECT calls, cost_usd, budget_notice_sent FROM discriminator_spend
             WHERE chat_id = ?1 AND day = ?2",
            params![chat_id, day],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?
        .unwrap_or((0, 0.0, false)))
}

pub fn add_spend(conn: &Connection, chat_id: &str, day: &str, cost: f64) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO discriminator_spend (chat_id, day, calls, cost_usd) VALUES (?1, ?2, 1, ?3)
         ON CONFLICT (chat_id, day) DO UPDATE SET calls = calls + 1, cost_usd = cost_usd + ?3",
    )?
    .execute(params![chat_id, day, cost])?;
    Ok(())
}

/// Marks the owner as told that the chat hit its daily discriminator budget. Returns false if
/// they were told already today.
pub fn mark_budget_notice(conn: &Connection, chat_id: &str, day: &str) -> StoreResult<bool> {
    conn.prepare_cached(
        "INSERT INTO discriminator_spend (chat_id, day) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
    )?
    .execute(params![chat_id, day])?;
    let changed = conn
        .prepare_cached(
            "UPDATE discriminator_spend SET budget_notice_sent = 1
         WHERE chat_id = ?1 AND day = ?2 AND budget_notice_sent = 0",
        )?
        .execute(params![chat_id, day])?;
    Ok(changed == 1)
}

/// The owner's one-to-one chat, where notices for the owner go.
pub fn owner_dm(conn: &Connection, owner: &str) -> StoreResult<Option<String>> {
    Ok(conn
        .query_row(
            "SELECT c.id FROM chats c JOIN participants p ON p.chat_id = c.id
             WHERE c.is_group = 0 AND p.handle = ?1 AND p.is_me = 0
             ORDER BY c.updated_at DESC LIMIT 1",
            [owner],
            |r| r.get(0),
        )
        .optional()?)
}

/// Queues `text` for the owner in their DM (the most recent one-to-one chat with them), unless
/// there is none or it is `except_chat` (where the news is told already). Whether it was
/// queued; the caller wakes the outbox.
pub fn tell_owner(
    conn: &Connection,
    owner: &str,
    text: String,
    request_id: &str,
    except_chat: Option<&str>,
) -> StoreResult<bool> {
    let Some(dm) = owner_dm(conn, owner)?.filter(|dm| Some(dm.as_str()) != except_chat) else {
        return Ok(false);
    };
    super::outbox::enqueue(
        conn,
        &dm,
        None,
        &super::outbox::OutgoingMessage {
            text,
            reply_to: None,
            attachments: Vec::new(),
        },
        request_id,
        now_ms(),
    )?;
    Ok(true)
}

/// One recorded decision, for status replies, the API and tests.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DecisionRow {
    pub message_id: String,
    pub sender: String,
    pub text: String,
    pub status: String,
    pub rule: Option<String>,
    pub reason: Option<String>,
    pub latency_us: Option<i64>,
    pub cost_usd: Option<f64>,
}

pub fn recent_decisions(
    conn: &Connection,
    chat_id: &str,
    limit: usize,
) -> StoreResult<Vec<DecisionRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, COALESCE(sender, ''), text, gate_status, gate_rule, gate_reason,
                gate_latency_us, gate_cost_usd
         FROM messages WHERE chat_id = ?1 AND gate_status IS NOT NULL AND gate_status != 'pending'
         ORDER BY gate_at DESC, rowid DESC",
    )?;
    // No `LIMIT ?`: a bound limit makes SQLite re-prepare the statement on every use.
    let rows = stmt.query_map([chat_id], |r| {
        Ok(DecisionRow {
            message_id: r.get(0)?,
            sender: r.get(1)?,
            text: r.get(2)?,
            status: r.get(3)?,
            rule: r.get(4)?,
            reason: r.get(5)?,
            latency_us: r.get(6)?,
            cost_usd: r.get(7)?,
        })
    })?;
    Ok(rows.take(limit).collect::<Result<_, _>>()?)
}

/// Decisions of the last 24 hours by status and rule, for /health.
pub fn counts_24h(conn: &Connection) -> StoreResult<Vec<(String, i64)>> {
    let since = now_ms() - 24 * 3600 * 1000;
    let mut stmt = conn.prepare_cached(
        "SELECT gate_status || ':' || COALESCE(gate_rule, ''), COUNT(*) FROM messages
         WHERE gate_at >= ?1 GROUP BY 1",
    )?;
    let rows = stmt.query_map([since], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The chat's agent spend today (sum of turn costs since `since_ms`).
pub fn turn_spend_since(conn: &Connection, chat_id: &str, since_ms: i64) -> StoreResult<f64> {
    Ok(conn.query_row(
        "SELECT COALESCE(SUM(cost_usd), 0) FROM turns
         WHERE chat_id = ?1 AND finished_at >= ?2 AND cost_usd IS NOT NULL",
        params![chat_id, since_ms],
        |r| r.get(0),
    )?)
}

/// The agent session the chat's turns last ran in.
pub fn last_session(conn: &Connection, chat_id: &str) -> StoreResult<Option<String>> {
    Ok(conn
        .query_row(
            "SELECT session_id FROM turns WHERE chat_id = ?1 AND session_id IS NOT NULL
             ORDER BY id DESC LIMIT 1",
            [chat_id],
            |r| r.get(0),
        )
        .optional()?)
}
