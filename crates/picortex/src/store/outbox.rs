//! The outbox in the store: replies waiting to be delivered, their idempotency keys, attempts
//! and backoff, and their delivery status as the channel reports it afterwards.

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::{StoreError, StoreResult, now_ms};

/// A message picortex wants to send, independent of the channel that carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutgoingMessage {
    pub text: String,
    /// The message this one answers inline, if any.
    pub reply_to: Option<String>,
    /// Files to attach (absolute paths beneath the chat's home).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<String>,
}

/// Where a delivery stands. Only moves forward (a late `sent` never undoes a `read`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DeliveryStatus {
    Pending,
    /// The channel accepted it (Linq's 202).
    Accepted,
    Sent,
    Delivered,
    Read,
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Accepted => "accepted",
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Read => "read",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "accepted" => Self::Accepted,
            "sent" => Self::Sent,
            "delivered" => Self::Delivered,
            "read" => Self::Read,
            "failed" => Self::Failed,
            _ => return None,
        })
    }
}

/// Queues a message for delivery with a fresh idempotency key. Returns the outbox row id.
pub fn enqueue(
    conn: &Connection,
    chat_id: &str,
    turn_id: Option<i64>,
    message: &OutgoingMessage,
    request_id: &str,
    now: i64,
) -> StoreResult<i64> {
    let content = serde_json::to_string(message).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    conn.prepare_cached(
        "INSERT INTO outbox (chat_id, turn_id, idempotency_key, content_json, status, next_attempt_at, request_id, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?6, ?5, ?5)",
    )?
    .execute(params![
            chat_id,
            turn_id,
            // Time-ordered, so each new key goes to the end of its unique index.
            uuid::Uuid::now_v7().to_string(),
            content,
            now,
            request_id
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// A pending delivery, ready to send.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: i64,
    pub chat_id: String,
    pub idempotency_key: String,
    pub message: OutgoingMessage,
    pub attempts: i64,
    pub request_id: String,
}

/// Deliveries whose next attempt is due, oldest first: only the oldest pending row of each
/// chat, so a chat's messages (a reply split in parts, consecutive replies) arrive in order.
pub fn due(conn: &Connection, now: i64, limit: usize) -> StoreResult<Vec<Delivery>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, chat_id, idempotency_key, content_json, attempts, request_id FROM outbox o
         WHERE status = 'pending' AND next_attempt_at <= ?1
           AND id = (SELECT MIN(p.id) FROM outbox p WHERE p.chat_id = o.chat_id AND p.status = 'pending')
         ORDER BY next_attempt_at, id",
    )?;
    // The limit is applied here, not as `LIMIT ?`: SQLite plans with a bound LIMIT's value and
    // so re-prepares the statement every time it is bound (see `store::tests`).
    let rows = stmt.query_map([now], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, i64>(4)?,
            r.get::<_, String>(5)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows.take(limit) {
        let (id, chat_id, idempotency_key, content, attempts, request_id) = row?;
        let message = serde_json::from_str(&content)
            .map_err(|e| StoreError::Corrupt(format!("outbox row {id}: {e}")))?;
        out.push(Delivery {
            id,
            chat_id,
            idempotency_key,
            message,
            attempts,
            request_id,
        });
    }
    Ok(out)
}

/// When the earliest pending delivery due after `now` is due, if any.
pub fn next_due_after(conn: &Connection, now: i64) -> StoreResult<Option<i64>> {
    Ok(conn
        .prepare_cached(
            "SELECT MIN(next_attempt_at) FROM outbox WHERE status = 'pending' AND next_attempt_at > ?1",
        )?
        .query_row([now], |r| r.get(0))
        .optional()?
        .flatten())
}

/// The channel accepted the delivery: record its message id and the outbound message itself.
pub fn mark_accepted(
    conn: &Connection,
    d: &Delivery,
    channel_message_id: &str,
    our_handle: Option<&str>,
) -> StoreResult<()> {
    let now = now_ms();
    conn.prepare_cached(
        "UPDATE outbox SET status = 'accepted', attempts = attempts + 1, channel_message_id = ?2,
             last_error = NULL, updated_at = ?3
         WHERE id = ?1 AND status = 'pending'",
    )?
    .execute(params![d.id, channel_message_id, now])?;
    // The delivery's status webhooks may have been recorded first (the channel can report
    // `message.sent` before this commit), so the message takes the row's status as it is now.
    conn.prepare_cached(
        "INSERT INTO messages (id, chat_id, direction, sender, text, parts_json, reply_to, delivery_status, created_at)
         VALUES (?1, ?2, 'outbound', ?3, ?4, ?5, ?6,
                 COALESCE((SELECT status FROM outbox WHERE id = ?8), 'accepted'), ?7)
         ON CONFLICT (id) DO NOTHING",
    )?
    .execute(params![
            channel_message_id,
            d.chat_id,
            our_handle,
            d.message.text,
            serde_json::json!([{"type": "text", "value": d.message.text}]).to_string(),
            d.message.reply_to,
            now,
            d.id
        ],
    )?;
    Ok(())
}

/// A retryable failure: try again at `next_attempt_at`.
pub fn mark_retry(
    conn: &Connection,
    id: i64,
    error: &str,
    next_attempt_at: i64,
) -> StoreResult<()> {
    conn.prepare_cached(
        "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, next_attempt_at = ?3, updated_at = ?4
         WHERE id = ?1 AND status = 'pending'",
    )?
    .execute(params![id, error, next_attempt_at, now_ms()],
    )?;
    Ok(())
}

/// A permanent failure: stop trying and leave it visible to the owner.
pub fn mark_failed(conn: &Connection, d: &Delivery, error: &str) -> StoreResult<()> {
    conn.prepare_cached(
        "UPDATE outbox SET status = 'failed', attempts = attempts + 1, last_error = ?2, updated_at = ?3
         WHERE id = ?1 AND status = 'pending'",
    )?
    .execute(params![d.id, error, now_ms()],
    )?;
    super::audit(
        conn,
        "picortex",
        "delivery.failed",
        Some(&d.chat_id),
        &serde_json::json!({"outbox_id": d.id, "error": error, "request_id": d.request_id}),
    )?;
    Ok(())
}

/// Follows a `message.sent/delivered/read/failed` event into the outbox and messages tables.
pub fn apply_progress(
    conn: &Connection,
    p: &super::messages::OutboundProgress,
    now: i64,
) -> StoreResult<()> {
    // Two lookups rather than one `OR`, so each uses its index.
    let find =
        |sql: &str, key: &Option<String>| -> StoreResult<Option<(i64, String, Option<String>)>> {
            let Some(key) = key else { return Ok(None) };
            Ok(conn
                .prepare_cached(sql)?
                .query_row([key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()?)
        };
    let row = match find(
        "SELECT id, status, channel_message_id FROM outbox WHERE idempotency_key = ?1",
        &p.idempotency_key,
    )? {
        Some(row) => Some(row),
        None => find(
            "SELECT id, status, channel_message_id FROM outbox WHERE channel_message_id = ?1 LIMIT 1",
            &p.message_id,
        )?,
    };
    let Some((id, current, known_message_id)) = row else {
        return Ok(()); // Not one of ours (or sent by another tool on the same line).
    };
    let current = DeliveryStatus::parse(&current).unwrap_or(DeliveryStatus::Pending);
    let advances = p.status > current && current != DeliveryStatus::Failed;
    if !advances {
        return Ok(());
    }
    let message_id = known_message_id.or_else(|| p.message_id.clone());
    conn.prepare_cached(
        "UPDATE outbox SET status = ?2, channel_message_id = COALESCE(channel_message_id, ?3),
             last_error = COALESCE(?4, last_error), updated_at = ?5
         WHERE id = ?1",
    )?
    .execute(params![id, p.status.as_str(), message_id, p.error, now])?;
    if let Some(mid) = message_id {
        conn.prepare_cached("UPDATE messages SET delivery_status = ?2 WHERE id = ?1")?
            .execute(params![mid, p.status.as_str()])?;
    }
    Ok(())
}

/// One outbox row, for /health, the API and tests.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OutboxRow {
    pub id: i64,
    pub chat_id: String,
    pub turn_id: Option<i64>,
    pub status: String,
    pub attempts: i64,
    pub text: String,
    pub reply_to: Option<String>,
    pub channel_message_id: Option<String>,
    pub last_error: Option<String>,
}

pub fn all(conn: &Connection) -> StoreResult<Vec<OutboxRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, chat_id, turn_id, status, attempts, content_json, channel_message_id, last_error
         FROM outbox ORDER BY id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, Option<i64>>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, i64>(4)?,
            r.get::<_, String>(5)?,
            r.get::<_, Option<String>>(6)?,
            r.get::<_, Option<String>>(7)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, chat_id, turn_id, status, attempts, content, channel_message_id, last_error) =
            row?;
        let message: OutgoingMessage = serde_json::from_str(&content)
            .map_err(|e| StoreError::Corrupt(format!("outbox row {id}: {e}")))?;
        out.push(OutboxRow {
            id,
            chat_id,
            turn_id,
            status,
            attempts,
            text: message.text,
            reply_to: message.reply_to,
            channel_message_id,
            last_error,
        });
    }
    Ok(out)
}

/// Counts of deliveries by status, for /health.
pub fn counts(conn: &Connection) -> StoreResult<Vec<(String, i64)>> {
    let mut stmt = conn.prepare_cached("SELECT status, COUNT(*) FROM outbox GROUP BY status")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::messages::OutboundProgress;

    /// Linq can report `message.sent` before the sender has recorded the 202 (the status
    /// webhook's commit wins the race): the delivery and its outbound message both end `sent`.
    #[tokio::test]
    async fn a_status_recorded_before_the_acceptance_is_kept() {
        let (_dir, store) = crate::store::temp_store();
        let (delivery_status, message_status) = store
            .write(|c| {
                c.execute(
                    "INSERT INTO chats (id, created_at, updated_at) VALUES ('c1', 1, 1)",
                    [],
                )?;
                let message = OutgoingMessage {
                    text: "hi".into(),
                    reply_to: None,
                    attachments: vec![],
                };
                let id = enqueue(c, "c1", None, &message, "r1", 1)?;
                let key: String = c.query_row(
                    "SELECT idempotency_key FROM outbox WHERE id = ?1",
                    [id],
                    |r| r.get(0),
                )?;
                let progress = OutboundProgress {
                    idempotency_key: Some(key.clone()),
                    message_id: Some("out-1".into()),
                    status: DeliveryStatus::Sent,
                    error: None,
                };
                apply_progress(c, &progress, 2)?;
                let delivery = Delivery {
                    id,
                    chat_id: "c1".into(),
                    idempotency_key: key,
                    message,
                    attempts: 0,
                    request_id: "r1".into(),
                };
                mark_accepted(c, &delivery, "out-1", Some("+12025550100"))?;
                let delivery_status: String =
                    c.query_row("SELECT status FROM outbox WHERE id = ?1", [id], |r| {
                        r.get(0)
                    })?;
                let message_status: String = c.query_row(
                    "SELECT delivery_status FROM messages WHERE id = 'out-1'",
                    [],
                    |r| r.get(0),
                )?;
                Ok((delivery_status, message_status))
            })
            .await
            .unwrap();
        assert_eq!(delivery_status, "sent");
        assert_eq!(message_status, "sent");
    }
}
