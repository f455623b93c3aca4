//! Recording webhook events: the raw event, its dedupe key and what it means for chats,
//! messages, turns and deliveries, all in the one transaction that ingest waits on.

use rusqlite::{Connection, OptionalExtension, params};

use super::{StoreResult, now_ms, outbox};

/// The raw delivery as it arrived, kept verbatim for audit and replay.
#[derive(Debug, Clone)]
pub struct RawEvent {
    pub event_id: String,
    pub event_type: String,
    pub webhook_version: String,
    pub webhook_timestamp: i64,
    pub request_id: String,
    pub body: Vec<u8>,
}

/// A human's message to the bot, normalized from whichever payload version carried it.
#[derive(Debug, Clone)]
pub struct InboundMessage {
    pub id: String,
    pub chat_id: String,
    pub is_group: bool,
    pub our_handle: Option<String>,
    pub sender: String,
    pub text: String,
    pub parts_json: String,
    pub reply_to: Option<String>,
    pub reply_to_part: Option<i64>,
    pub sent_at: Option<String>,
}

/// Delivery progress of one of the bot's own messages, matched by idempotency key or id.
#[derive(Debug, Clone)]
pub struct OutboundProgress {
    pub idempotency_key: Option<String>,
    pub message_id: Option<String>,
    pub status: outbox::DeliveryStatus,
    pub error: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ReactionChange {
    pub message_id: String,
    pub handle: String,
    pub kind: String,
    pub custom_emoji: Option<String>,
    pub added: bool,
}

/// What an event asks the store to do besides keeping it.
#[derive(Debug, Clone)]
pub enum EventAction {
    Inbound(InboundMessage),
    Outbound(OutboundProgress),
    Reaction(ReactionChange),
    /// Kept for the record only, with the reason (own echo, unknown type, …).
    Ignore(&'static str),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestOutcome {
    /// The event id was seen before: nothing was done.
    Duplicate,
    /// The message was stored and waits for the attention gate.
    AwaitingGate,
    /// The event was recorded and applied (or deliberately ignored).
    Recorded { outcome: &'static str },
}

/// Stores the raw event and applies it, unless its id was already recorded.
pub fn record_event(
    conn: &Connection,
    raw: &RawEvent,
    action: &EventAction,
) -> StoreResult<IngestOutcome> {
    let now = now_ms();
    let outcome_label = match action {
        EventAction::Inbound(_) => "inbound",
        EventAction::Outbound(_) => "outbound-status",
        EventAction::Reaction(_) => "reaction",
        EventAction::Ignore(reason) => reason,
    };
    let inserted = conn.prepare_cached(
        "INSERT INTO webhook_events
             (event_id, event_type, webhook_version, webhook_timestamp, received_at, request_id, body, outcome)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (event_id) DO NOTHING",
    )?
    .execute(params![
            raw.event_id,
            raw.event_type,
            raw.webhook_version,
            raw.webhook_timestamp,
            now,
            raw.request_id,
            raw.body,
            outcome_label
        ],
    )?;
    if inserted == 0 {
        return Ok(IngestOutcome::Duplicate);
    }
    match action {
        EventAction::Inbound(m) => record_inbound(conn, m, &raw.request_id, now),
        EventAction::Outbound(p) => {
            outbox::apply_progress(conn, p, now)?;
            Ok(IngestOutcome::Recorded {
                outcome: outcome_label,
            })
        }
        EventAction::Reaction(r) => {
            apply_reaction(conn, r, now)?;
            Ok(IngestOutcome::Recorded {
                outcome: outcome_label,
            })
        }
        EventAction::Ignore(reason) => Ok(IngestOutcome::Recorded { outcome: reason }),
    }
}

fn record_inbound(
    conn: &Connection,
    m: &InboundMessage,
    request_id: &str,
    now: i64,
) -> StoreResult<IngestOutcome> {
    // A message to a sleeping, archived or destroyed chat (or one on its way there) wakes it:
    // its turn restores or makes the home and starts the runner again. A `failed` chat waits
    // for its owner.
    let woken = conn
        .prepare_cached(
            "UPDATE chats SET state = 'active' WHERE id = ?1 AND state IN
             ('hibernating', 'hibernated', 'archiving', 'archived', 'destroyed')",
        )?
        .execute([&m.chat_id])?;
    if woken > 0 {
        super::audit(
            conn,
            "lifecycle",
            "chat.woken",
            Some(&m.chat_id),
            &serde_json::json!({"request_id": request_id, "message_id": m.id}),
        )?;
    }
    conn.prepare_cached(
        "INSERT INTO chats (id, is_group, our_handle, created_at, updated_at, last_inbound_at)
         VALUES (?1, ?2, ?3, ?4, ?4, ?4)
         ON CONFLICT (id) DO UPDATE SET
             updated_at = excluded.updated_at,
             last_inbound_at = excluded.last_inbound_at,
             our_handle = COALESCE(chats.our_handle, excluded.our_handle),
             is_group = MAX(chats.is_group, excluded.is_group)",
    )?
    .execute(params![m.chat_id, m.is_group, m.our_handle, now])?;
    conn.prepare_cached(
        "INSERT INTO participants (chat_id, handle, is_me, joined_at) VALUES (?1, ?2, 0, ?3)
         ON CONFLICT DO NOTHING",
    )?
    .execute(params![m.chat_id, m.sender, now])?;
    if let Some(ours) = &m.our_handle {
        conn.prepare_cached(
            "INSERT INTO participants (chat_id, handle, is_me, joined_at) VALUES (?1, ?2, 1, ?3)
             ON CONFLICT DO NOTHING",
        )?
        .execute(params![m.chat_id, ours, now])?;
    }
    // The same message under a second event id (Linq retried with a new id) is still one message.
    // It waits for the attention gate, which decides (durably) whether it starts a turn.
    let inserted = conn
        .prepare_cached(
            "INSERT INTO messages
             (id, chat_id, direction, sender, text, parts_json, reply_to, reply_to_part, sent_at,
              delivery_status, created_at, gate_status, request_id)
         VALUES (?1, ?2, 'inbound', ?3, ?4, ?5, ?6, ?7, ?8, 'received', ?9, 'pending', ?10)
         ON CONFLICT (id) DO NOTHING",
        )?
        .execute(params![
            m.id,
            m.chat_id,
            m.sender,
            m.text,
            m.parts_json,
            m.reply_to,
            m.reply_to_part,
            m.sent_at,
            now,
            request_id
        ])?;
    if inserted == 0 {
        return Ok(IngestOutcome::Recorded {
            outcome: "message already stored",
        });
    }
    Ok(IngestOutcome::AwaitingGate)
}

fn apply_reaction(conn: &Connection, r: &ReactionChange, now: i64) -> StoreResult<()> {
    let emoji = r.custom_emoji.clone().unwrap_or_default();
    if r.added {
        conn.prepare_cached(
            "INSERT INTO reactions (message_id, handle, kind, custom_emoji, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
        )?
        .execute(params![r.message_id, r.handle, r.kind, emoji, now])?;
    } else {
        conn.prepare_cached(
        "DELETE FROM reactions WHERE message_id = ?1 AND handle = ?2 AND kind = ?3 AND custom_emoji = ?4",
    )?
    .execute(params![r.message_id, r.handle, r.kind, emoji],
        )?;
    }
    Ok(())
}

/// One stored message, as the API and tests read it back.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StoredMessage {
    pub id: String,
    pub chat_id: String,
    pub direction: String,
    pub sender: Option<String>,
    pub text: String,
    pub reply_to: Option<String>,
    pub delivery_status: Option<String>,
    pub created_at: i64,
}

pub fn chat_messages(conn: &Connection, chat_id: &str) -> StoreResult<Vec<StoredMessage>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, chat_id, direction, sender, text, reply_to, delivery_status, created_at
         FROM messages WHERE chat_id = ?1 ORDER BY rowid",
    )?;
    let rows = stmt.query_map([chat_id], |r| {
        Ok(StoredMessage {
            id: r.get(0)?,
            chat_id: r.get(1)?,
            direction: r.get(2)?,
            sender: r.get(3)?,
            text: r.get(4)?,
            reply_to: r.get(5)?,
            delivery_status: r.get(6)?,
            created_at: r.get(7)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Whether the chat is known (for tests and the API).
pub fn chat_exists(conn: &Connection, chat_id: &str) -> StoreResult<bool> {
    Ok(conn
        .query_row("SELECT 1 FROM chats WHERE id = ?1", [chat_id], |_| Ok(()))
        .optional()?
        .is_some())
}
