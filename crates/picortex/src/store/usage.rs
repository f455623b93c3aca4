//! Model use per chat: the gateway's per-chat tokens (stored as hashes only) and the metered
//! tokens, requests and cost per chat per UTC day that the daily budget is checked against.

use rusqlite::{Connection, OptionalExtension as _, params};

use super::{StoreResult, now_ms};

/// One finished model request (or several summed), to be added to a chat's day.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageRecord {
    pub chat_id: String,
    /// `YYYY-MM-DD` in UTC.
    pub day: String,
    pub requests: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_read_tokens: i64,
    pub cache_write_tokens: i64,
    /// USD × 1 000 000.
    pub cost_micros: i64,
}

/// A chat's totals for one day.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DayUsage {
    pub requests: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_read_tokens: i64,
    pub cache_write_tokens: i64,
    pub cost_micros: i64,
}

/// Adds `record` to its chat's day (inside the caller's write).
pub fn add(conn: &Connection, record: &UsageRecord) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO gateway_usage (chat_id, day, requests, input_tokens, output_tokens,
             cache_read_tokens, cache_write_tokens, cost_micros)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (chat_id, day) DO UPDATE SET
             requests = requests + excluded.requests,
             input_tokens = input_tokens + excluded.input_tokens,
             output_tokens = output_tokens + excluded.output_tokens,
             cache_read_tokens = cache_read_tokens + excluded.cache_read_tokens,
             cache_write_tokens = cache_write_tokens + excluded.cache_write_tokens,
             cost_micros = cost_micros + excluded.cost_micros",
    )?
    .execute(params![
        record.chat_id,
        record.day,
        record.requests,
        record.input_tokens,
        record.output_tokens,
        record.cache_read_tokens,
        record.cache_write_tokens,
        record.cost_micros,
    ])?;
    Ok(())
}

/// The chat's totals for `day` (zeros when it used nothing).
pub fn day_usage(conn: &Connection, chat_id: &str, day: &str) -> StoreResult<DayUsage> {
    Ok(conn
        .prepare_cached(
            "SELECT requests, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,
                    cost_micros
             FROM gateway_usage WHERE chat_id = ?1 AND day = ?2",
        )?
        .query_row(params![chat_id, day], |r| {
            Ok(DayUsage {
                requests: r.get(0)?,
                input_tokens: r.get(1)?,
                output_tokens: r.get(2)?,
                cache_read_tokens: r.get(3)?,
                cache_write_tokens: r.get(4)?,
                cost_micros: r.get(5)?,
            })
        })
        .optional()?
        .unwrap_or_default())
}

/// The chat's spend on `day`, in micro-dollars.
pub fn spent_micros(conn: &Connection, chat_id: &str, day: &str) -> StoreResult<i64> {
    Ok(conn
        .prepare_cached("SELECT cost_micros FROM gateway_usage WHERE chat_id = ?1 AND day = ?2")?
        .query_row(params![chat_id, day], |r| r.get(0))
        .optional()?
        .unwrap_or(0))
}

/// Records `token_hash` as the chat's gateway token (replacing an earlier one).
pub fn put_token(conn: &Connection, chat_id: &str, token_hash: &str) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO gateway_tokens (chat_id, token_hash, created_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (chat_id) DO UPDATE SET token_hash = excluded.token_hash,
             created_at = excluded.created_at
         WHERE token_hash <> excluded.token_hash",
    )?
    .execute(params![chat_id, token_hash, now_ms()])?;
    Ok(())
}

/// The chat whose token hashes to `token_hash`, and the stored hash (for the caller's
/// constant-time comparison).
pub fn chat_for_token(
    conn: &Connection,
    token_hash: &str,
) -> StoreResult<Option<(String, String)>> {
    Ok(conn
        .prepare_cached("SELECT chat_id, token_hash FROM gateway_tokens WHERE token_hash = ?1")?
        .query_row([token_hash], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

/// Whether the chat's stored token hash is `token_hash` (so issuing it again needs no write).
pub fn has_token(conn: &Connection, chat_id: &str, token_hash: &str) -> StoreResult<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM gateway_tokens WHERE chat_id = ?1 AND token_hash = ?2")?
        .query_row(params![chat_id, token_hash], |_| Ok(()))
        .optional()?
        .is_some())
}
