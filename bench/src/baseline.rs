//! The raw cost of storing the same webhooks with plain SQLite: the daemon's `webhook_events`
//! row shape (same columns, same primary key and index, same body bytes), WAL with
//! `synchronous=FULL` like the daemon, inserted either one transaction per row (a receiver
//! that commits each webhook on its own) or in batches; and one per transaction at a fixed
//! pace, each timed from when it was due, as the daemon's latency phase is.

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::{Connection, params};

/// One row to insert: the event id and the exact body bytes.
#[derive(Debug, Clone)]
pub struct Row {
    pub event_id: String,
    pub body: bytes::Bytes,
}

/// How a baseline run went.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    pub rows: usize,
    pub per_transaction: usize,
    pub elapsed: Duration,
}

impl Outcome {
    pub fn rows_per_sec(&self) -> f64 {
        self.rows as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS webhook_events (
    event_id          TEXT PRIMARY KEY,
    event_type        TEXT NOT NULL,
    webhook_version   TEXT NOT NULL,
    webhook_timestamp INTEGER NOT NULL,
    received_at       INTEGER NOT NULL,
    request_id        TEXT NOT NULL,
    body              BLOB NOT NULL,
    outcome           TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_events_by_time ON webhook_events(received_at);
";

/// Creates a fresh database at `path` and commits `rows` one per transaction, row *i* due at
/// start + *i* / `rate`: each waits for its due time (or goes at once when a stalled commit
/// made it late) and its latency runs from the due time to its durable commit, so a stall
/// counts against every row it delays. This is the tail a plain SQLite receiver that commits
/// each webhook as it arrives has on this disk at this moment (SQLite's own checkpoints
/// included, as in the other baselines). Returns the latencies in row order.
pub fn paced(path: &Path, rows: &[Row], rate: f64) -> rusqlite::Result<Vec<Duration>> {
    let (conn, request_ids) = open_fresh(path, rows)?;
    let mut stmt = conn.prepare(INSERT)?;
    let mut latencies = Vec::with_capacity(rows.len());
    let started = Instant::now();
    for (i, (row, request_id)) in rows.iter().zip(&request_ids).enumerate() {
        let due = started + Duration::from_secs_f64(i as f64 / rate);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        conn.execute_batch("BEGIN IMMEDIATE")?;
        insert(&mut stmt, row, request_id)?;
        conn.execute_batch("COMMIT")?;
        latencies.push(due.elapsed());
    }
    Ok(latencies)
}

/// Creates a fresh database at `path` and inserts `rows`, `per_transaction` to a commit
/// (1: every row is its own durable transaction). Only the inserts and commits are timed.
pub fn run(path: &Path, rows: &[Row], per_transaction: usize) -> rusqlite::Result<Outcome> {
    let per_transaction = per_transaction.max(1);
    let (conn, request_ids) = open_fresh(path, rows)?;
    let mut stmt = conn.prepare(INSERT)?;
    let started = Instant::now();
    for (chunk, ids) in rows
        .chunks(per_transaction)
        .zip(request_ids.chunks(per_transaction))
    {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        for (row, request_id) in chunk.iter().zip(ids) {
            insert(&mut stmt, row, request_id)?;
        }
        conn.execute_batch("COMMIT")?;
    }
    let elapsed = started.elapsed();
    Ok(Outcome {
        rows: rows.len(),
        per_transaction,
        elapsed,
    })
}

const INSERT: &str = "INSERT INTO webhook_events
     (event_id, event_type, webhook_version, webhook_timestamp, received_at, request_id, body, outcome)
 VALUES (?1, 'message.received', '2026-02-03', ?2, ?3, ?4, ?5, 'inbound')
 ON CONFLICT (event_id) DO NOTHING";

/// A fresh database at `path` configured like the daemon's, and a request id per row
/// (the daemon makes them before its write, so they stay out of the timing).
fn open_fresh(path: &Path, rows: &[Row]) -> rusqlite::Result<(Connection, Vec<String>)> {
    let conn = Connection::open(path)?;
    conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;")?;
    conn.execute_batch(SCHEMA)?;
    let request_ids = rows
        .iter()
        .map(|_| uuid::Uuid::new_v4().to_string())
        .collect();
    Ok((conn, request_ids))
}

fn insert(stmt: &mut rusqlite::Statement<'_>, row: &Row, request_id: &str) -> rusqlite::Result<()> {
    let now = now_ms();
    stmt.execute(params![
        row.event_id,
        now / 1000,
        now,
        request_id,
        row.body.as_ref()
    ])?;
    Ok(())
}

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` small rows with distinct event ids.
    fn rows(n: usize) -> Vec<Row> {
        (0..n)
            .map(|i| Row {
                event_id: format!("evt-{i}"),
                body: bytes::Bytes::from(format!("{{\"n\":{i}}}")),
            })
            .collect()
    }

    /// How many rows the baseline database at `path` holds.
    fn stored(path: &Path) -> rusqlite::Result<i64> {
        Connection::open(path)?.query_row("SELECT COUNT(*) FROM webhook_events", [], |r| r.get(0))
    }

    #[test]
    fn inserts_every_row_once() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("b.db");
        let outcome = run(&path, &rows(25), 10)?;
        assert_eq!(outcome.rows, 25);
        assert_eq!(stored(&path)?, 25);
        Ok(())
    }

    #[test]
    fn paced_commits_every_row_and_times_each() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("c.db");
        let latencies = paced(&path, &rows(20), 2_000.0)?;
        assert_eq!(latencies.len(), 20);
        assert_eq!(stored(&path)?, 20);
        Ok(())
    }
}
