//! Turns in the store: queueing inbound messages into a chat's next turn, claiming runnable
//! turns (one running per chat), finishing a turn together with its reply's outbox row, and
//! recovering turns that were running when the daemon died.

use rusqlite::{Connection, OptionalExtension, params};

use super::{StoreError, StoreResult, now_ms, outbox};
use crate::agent::TurnAccounting;

/// How many times a turn may start before it is reported as failed (a run and one retry).
pub const MAX_TURN_ATTEMPTS: i64 = 2;
/// How many daemon restarts may interrupt one turn before it is reported as failed. A restart
/// does not use up an attempt (the runner keeps the turn going and the daemon reattaches), but
/// a turn that keeps coinciding with crashes must end somewhere.
pub const MAX_TURN_RESTARTS: i64 = 5;

/// Adds an inbound message to the chat's queued turn, creating one if none is waiting.
/// Messages that arrive while a turn runs therefore fold into the next turn.
pub fn enqueue(
    conn: &Connection,
    chat_id: &str,
    message_id: &str,
    request_id: &str,
    now: i64,
) -> StoreResult<i64> {
    let queued: Option<i64> = conn
        .prepare_cached(
            "SELECT id FROM turns WHERE chat_id = ?1 AND status = 'queued' ORDER BY id LIMIT 1",
        )?
        .query_row([chat_id], |r| r.get(0))
        .optional()?;
    let turn_id = match queued {
        Some(id) => id,
        None => {
            conn.prepare_cached(
        "INSERT INTO turns (chat_id, status, request_id, created_at) VALUES (?1, 'queued', ?2, ?3)",
    )?
    .execute(params![chat_id, request_id, now],
            )?;
            conn.last_insert_rowid()
        }
    };
    let joined = conn
        .prepare_cached("UPDATE messages SET turn_id = ?1 WHERE id = ?2 AND turn_id IS NULL")?
        .execute(params![turn_id, message_id])?;
    if joined == 0 {
        return Err(StoreError::Corrupt(format!(
            "message {message_id} is unknown or already in a turn"
        )));
    }
    Ok(turn_id)
}

/// One inbound message as the agent will see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptMessage {
    pub id: String,
    pub sender: String,
    pub text: String,
}

/// A claimed turn: everything the scheduler needs to run it.
#[derive(Debug, Clone)]
pub struct TurnWork {
    pub turn_id: i64,
    pub chat_id: String,
    pub is_group: bool,
    /// The chat's archive was found damaged (`failed`): the turn gets a notice, not a restore.
    pub chat_failed: bool,
    pub request_id: String,
    pub attempt: i64,
    pub messages: Vec<PromptMessage>,
    /// The chat's participants other than the bot.
    pub participants: Vec<String>,
    /// Messages the bot did not answer since its last reply, handed over as context.
    pub context: Vec<PromptMessage>,
}

impl TurnWork {
    /// The message the reply threads onto: the newest one the turn answers.
    pub fn reply_to(&self) -> Option<&str> {
        self.messages.last().map(|m| m.id.as_str())
    }
}

/// SQL that holds when chat `?1` has a turn queued or running. Each half searches its own
/// partial index (`turns_queued`, `turns_running`).
macro_rules! chat_has_live_turn {
    () => {
        "(EXISTS (SELECT 1 FROM turns WHERE chat_id = ?1 AND status = 'queued')
          OR EXISTS (SELECT 1 FROM turns WHERE chat_id = ?1 AND status = 'running'))"
    };
}
pub(crate) use chat_has_live_turn;

/// Whether any turn is queued: a cheap read that spares the single writer a claim job when
/// there is nothing to claim.
pub fn any_queued(conn: &Connection) -> StoreResult<bool> {
    Ok(conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM turns WHERE status = 'queued')")?
        .query_row([], |r| r.get(0))?)
}

/// Marks up to `limit` runnable turns as running and returns them. A turn is runnable when it
/// is its chat's oldest queued turn and the chat has no running turn.
pub fn claim_runnable(conn: &Connection, limit: usize) -> StoreResult<Vec<TurnWork>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let now = now_ms();
    // Without `INDEXED BY` the planner walks the whole table in id order to spare a sort; the
    // partial index holds only the queued turns (a chat's new messages join its queued turn).
    let mut stmt = conn.prepare_cached(
        "SELECT t.id, t.chat_id, t.request_id, t.attempts, c.is_group, c.state = 'failed'
         FROM turns t INDEXED BY turns_queued JOIN chats c ON c.id = t.chat_id
         WHERE t.status = 'queued'
           AND NOT EXISTS (SELECT 1 FROM turns r WHERE r.chat_id = t.chat_id AND r.status = 'running')
           AND t.id = (SELECT MIN(q.id) FROM turns q WHERE q.chat_id = t.chat_id AND q.status = 'queued')
         ORDER BY t.id",
    )?;
    // No `LIMIT ?`: a bound limit makes SQLite re-prepare the statement on every use.
    let picked = stmt
        .query_map([], turn_work)?
        .take(limit)
        .collect::<Result<Vec<_>, _>>()?;
    let mut claimed = Vec::with_capacity(picked.len());
    for mut work in picked {
        work.attempt += 1;
        conn.prepare_cached(
        "UPDATE turns SET status = 'running', attempts = attempts + 1, started_at = ?2 WHERE id = ?1",
    )?
    .execute(params![work.turn_id, now],
        )?;
        work.messages = turn_messages(conn, work.turn_id)?;
        work.participants = participants(conn, &work.chat_id)?;
        work.context = context_messages(conn, work.turn_id)?;
        claimed.push(work);
    }
    Ok(claimed)
}

/// A turn from a row of `id, chat_id, request_id, attempts, is_group, state = 'failed'`;
/// `attempt` is the attempts so far, and the messages are loaded separately.
fn turn_work(r: &rusqlite::Row<'_>) -> rusqlite::Result<TurnWork> {
    Ok(TurnWork {
        turn_id: r.get(0)?,
        chat_id: r.get(1)?,
        request_id: r.get(2)?,
        attempt: r.get(3)?,
        is_group: r.get(4)?,
        chat_failed: r.get(5)?,
        messages: Vec::new(),
        participants: Vec::new(),
        context: Vec::new(),
    })
}

fn participants(conn: &Connection, chat_id: &str) -> StoreResult<Vec<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT handle FROM participants WHERE chat_id = ?1 AND is_me = 0 AND left_at IS NULL
         ORDER BY joined_at, handle",
    )?;
    let rows = stmt.query_map([chat_id], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn context_messages(conn: &Connection, turn_id: i64) -> StoreResult<Vec<PromptMessage>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, COALESCE(sender, ''), text FROM messages WHERE context_turn_id = ?1 ORDER BY rowid",
    )?;
    let rows = stmt.query_map([turn_id], |r| {
        Ok(PromptMessage {
            id: r.get(0)?,
            sender: r.get(1)?,
            text: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn turn_messages(conn: &Connection, turn_id: i64) -> StoreResult<Vec<PromptMessage>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, COALESCE(sender, ''), text FROM messages WHERE turn_id = ?1 ORDER BY rowid",
    )?;
    let rows = stmt.query_map([turn_id], |r| {
        Ok(PromptMessage {
            id: r.get(0)?,
            sender: r.get(1)?,
            text: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Finishes a running turn and, in the same transaction, queues its reply (one or more
/// messages, sent in order) for delivery. Returns false (and changes nothing) if the turn was
/// not running, so a late or repeated finish can never queue a second reply.
pub fn finish(
    conn: &Connection,
    work: &TurnWork,
    reply: &[outbox::OutgoingMessage],
    accounting: &TurnAccounting,
) -> StoreResult<bool> {
    let now = now_ms();
    let usage = accounting.usage.as_ref().map(|u| u.to_string());
    let changed = conn.prepare_cached(
        "UPDATE turns SET status = 'done', finished_at = ?2, session_id = ?3, cost_usd = ?4, usage_json = ?5
         WHERE id = ?1 AND status = 'running'",
    )?
    .execute(params![work.turn_id, now, accounting.session_id, accounting.cost_usd, usage],
    )?;
    if changed == 0 {
        return Ok(false);
    }
    for message in reply {
        outbox::enqueue(
            conn,
            &work.chat_id,
            Some(work.turn_id),
            message,
            &work.request_id,
            now,
        )?;
    }
    Ok(true)
}

/// Fails a running turn for good and tells the chat (`notice`), so the failure is visible.
pub fn fail(conn: &Connection, work: &TurnWork, error: &str, notice: &str) -> StoreResult<bool> {
    let now = now_ms();
    let changed = conn.prepare_cached(
        "UPDATE turns SET status = 'failed', finished_at = ?2, error = ?3 WHERE id = ?1 AND status = 'running'",
    )?
    .execute(params![work.turn_id, now, error],
    )?;
    if changed == 0 {
        return Ok(false);
    }
    let notice = outbox::OutgoingMessage {
        text: notice.to_owned(),
        reply_to: work.reply_to().map(str::to_owned),
        attachments: Vec::new(),
    };
    outbox::enqueue(
        conn,
        &work.chat_id,
        Some(work.turn_id),
        &notice,
        &work.request_id,
        now,
    )?;
    super::audit(
        conn,
        "picortex",
        "turn.failed",
        Some(&work.chat_id),
        &serde_json::json!({"turn_id": work.turn_id, "error": error, "request_id": work.request_id}),
    )?;
    Ok(true)
}

/// Puts a running turn back in the queue after a retryable failure (the next claim retries it).
pub fn requeue(conn: &Connection, turn_id: i64, error: &str) -> StoreResult<()> {
    conn.prepare_cached(
        "UPDATE turns SET status = 'queued', error = ?2 WHERE id = ?1 AND status = 'running'",
    )?
    .execute(params![turn_id, error])?;
    Ok(())
}

pub fn failure_notice(request_id: &str) -> String {
    format!("Sorry, I couldn't finish that one. (request id {request_id})")
}

/// After a restart: turns that were running were interrupted by the restart, not by their
/// agent, so they go back in the queue without using up an attempt (with a runner, the next
/// claim reattaches to the turn still running there). A turn interrupted by too many restarts
/// is reported as failed in its chat. Returns (requeued, failed).
pub fn recover_interrupted(conn: &Connection) -> StoreResult<(usize, usize)> {
    let requeued = conn.prepare_cached(
        "UPDATE turns SET status = 'queued', attempts = MAX(attempts - 1, 0), restarts = restarts + 1,
             error = 'interrupted by a restart'
         WHERE status = 'running' AND restarts + 1 < ?1",
    )?
    .execute([MAX_TURN_RESTARTS],
    )?;
    let mut stmt = conn.prepare(
        "SELECT t.id, t.chat_id, t.request_id, t.attempts, c.is_group, c.state = 'failed'
         FROM turns t JOIN chats c ON c.id = t.chat_id WHERE t.status = 'running'",
    )?;
    let doomed = stmt
        .query_map([], turn_work)?
        .collect::<Result<Vec<_>, _>>()?;
    let failed = doomed.len();
    for mut work in doomed {
        work.messages = turn_messages(conn, work.turn_id)?;
        fail(
            conn,
            &work,
            "interrupted by daemon restarts too many times",
            &failure_notice(&work.request_id),
        )?;
    }
    Ok((requeued, failed))
}

/// Counts of turns by status, for /health.
pub fn counts(conn: &Connection) -> StoreResult<Vec<(String, i64)>> {
    let mut stmt = conn.prepare_cached("SELECT status, COUNT(*) FROM turns GROUP BY status")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}
