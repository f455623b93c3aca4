//! The canonical store: one SQLite file in WAL mode, migrations compiled into the binary, one
//! writer thread that commits in batches (group commit), and a small pool of readers.
//!
//! Every write is a closure run inside its own savepoint of a shared transaction; its caller is
//! answered only after that transaction's `COMMIT` has returned, and with `synchronous=FULL`
//! that means the write is on disk. Many concurrent writers therefore share one fsync, so
//! durability does not cap throughput.
//!
//! While webhooks stream in (urgent writes arriving on average less than [`BUSY_GAP`] apart),
//! writes no client is waiting on (the reply pipeline's: [`Store::write_background`]) are held
//! for up to [`BACKGROUND_HOLD`] and committed together, so the commits a webhook waits for carry
//! only other urgent writes, and the pipeline's writes for many messages share one commit
//! instead of each stage of each message (the gate's decision, the finished turn, the accepted
//! delivery) taking its own. Each commit costs a write of every page it touches and about
//! 150 µs of kernel time for its fsync on this kind of machine; in paired runs at 1,000
//! webhooks/s holding cut the writer's CPU per webhook by a fifth. (p99 there moves with the
//! shared disk more than with either policy: when the disk's own flushes stall for tens of
//! milliseconds, every commit waits behind them: docs/benchmarks.md.) When traffic is sparse,
//! as when people text, nothing is held: background writes go into the next commit and add
//! nothing to a reply's latency.
//!
//! WAL checkpoints (copying committed pages back into the database file) run on a connection
//! and thread of their own, so a commit never waits for one. Only the writer can start the WAL
//! over, at the first transaction after every frame has been copied, so under a steady stream
//! of commits the WAL grows (each commit appending to it) and starts over at the next quiet
//! moment. Every way tried of making it start over under load (the writer checkpointing past a
//! bound; the checkpointer copying the last frames with the writer paused) stalled commits and
//! tripled p99 at 1,000 webhooks/s, which appending did not (a WAL written over zeros instead
//! of growing left p99 where it was). The WAL is kept bounded by escalating to a blocking
//! checkpoint only past [`WAL_HARD_LIMIT_FRAMES`].

pub mod gate;
pub mod messages;
pub mod outbox;
pub mod turns;
pub mod usage;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;

/// The most writes taken off the channel for one commit (held writes that fall due join them);
/// bounds the latency of the first write in a batch.
const MAX_BATCH: usize = 512;
/// How long a background write may be held, while webhooks stream in, for a commit it shares
/// with other background writes. Each stage of a reply (decision, claim, finish) waits up to
/// this once, so it bounds what holding adds to a reply under load.
const BACKGROUND_HOLD: Duration = Duration::from_millis(2);
/// Background writes are held only while urgent writes arrive on average closer together than
/// this (more than 500 a second): then the writer is busy with them, and a background commit
/// of its own would delay them.
const BUSY_GAP: Duration = Duration::from_millis(2);
/// Readers kept open for reuse: as many as the blocking pool runs reads at once under load, so
/// a busy daemon does not open (and parse the schema of) a fresh connection per read.
const MAX_IDLE_READERS: usize = 32;
/// Database bytes mapped into memory: every commit invalidates each other connection's page
/// cache, and re-reading pages through the mapping costs no copy and no allocation.
const MMAP_BYTES: i64 = 256 << 20;
/// How long the checkpointer lets commits accumulate before copying them back. Each copy
/// ends with an fsync of the database file that shares the disk with the WAL's; every 250 ms
/// (with the writer checkpointing too) made p99 at 1,000 webhooks/s 25-38 ms, every 3 s 9-13 ms
/// (docs/benchmarks.md).
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(3);
/// WAL size (in pages, 4 GiB) past which a checkpoint holds up the writer to bound the file.
/// Under a steady stream of commits the WAL only grows (see the module's comment) and starts
/// over at the first quiet moment, so only a flood lasting minutes reaches this; the stall it
/// costs is long (about a second at 1 GiB on this kind of disk: docs/benchmarks.md).
const WAL_HARD_LIMIT_FRAMES: i64 = 1 << 20;
/// Bytes a WAL file is cut back to when it starts over. A burst leaves a long WAL; kept, the
/// next burst overwrites it in place, while cutting hundreds of MiB off it stalls the
/// filesystem's journal, and every flush on the disk behind it, for tens of milliseconds. At
/// 1,000 webhooks/s after a pause, p99 was 2.1-2.5 ms with the file kept and 30-53 ms with it
/// cut back to 64 MiB (docs/benchmarks.md). The daemon empties it when it stops.
const JOURNAL_SIZE_LIMIT: i64 = 1 << 30;

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/0001_initial.sql")),
    (2, include_str!("../../migrations/0002_attention.sql")),
    (3, include_str!("../../migrations/0003_gateway.sql")),
    (4, include_str!("../../migrations/0004_lookup_indexes.sql")),
    (5, include_str!("../../migrations/0005_fewer_pages.sql")),
];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("commit failed: {0}")]
    Commit(String),
    #[error(
        "the store's writer did not take the write (stopped, or the transaction failed to begin)"
    )]
    WriterGone,
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

pub type StoreResult<T> = Result<T, StoreError>;

type Completion = Box<dyn FnOnce(Result<(), String>) + Send>;
type WriteJob = Box<dyn FnOnce(&Connection) -> Completion + Send>;

/// Whether someone is waiting on a write's commit.
#[derive(Clone, Copy)]
enum Urgency {
    /// Commit in the next transaction (a webhook, an owner's request).
    Now,
    /// While urgent writes stream in, may wait up to [`BACKGROUND_HOLD`] to share a commit
    /// with other background writes.
    Background,
}

/// Handle to the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: std::sync::mpsc::Sender<(Urgency, WriteJob)>,
    readers: Mutex<Vec<Connection>>,
}

impl Store {
    /// Opens (creating if needed) the database at `path`, applies pending migrations and starts
    /// the writer thread.
    pub fn open(path: &Path) -> StoreResult<Store> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut conn = Connection::open(path)?;
        configure(&conn)?;
        migrate(&mut conn)?;
        // The writer never checkpoints: the checkpointer does, on its own connection. A WAL
        // left long after a burst keeps up to JOURNAL_SIZE_LIMIT of its length when it starts
        // over.
        conn.execute_batch(&format!(
            "PRAGMA wal_autocheckpoint=0; PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT};"
        ))?;
        let checkpointer = Connection::open(path)?;
        configure(&checkpointer)?;
        let (committed_tx, committed_rx) = std::sync::mpsc::sync_channel::<()>(1);
        std::thread::Builder::new()
            .name("store-checkpoint".into())
            .spawn(move || checkpoint_loop(&checkpointer, &committed_rx))?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer_loop(conn, rx, committed_tx))?;
        Ok(Store {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                writer: tx,
                readers: Mutex::new(Vec::new()),
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `f` in the writer's next transaction and returns its result once the transaction is
    /// durably committed. An error from `f` rolls back only `f`'s own changes.
    pub async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        self.submit(Urgency::Now, f).await
    }

    /// [`Store::write`] for work no client is waiting on (the reply pipeline): while webhooks
    /// stream in it may wait up to [`BACKGROUND_HOLD`] to be committed together with other
    /// such writes, which keeps the commits webhooks wait for small and few.
    pub async fn write_background<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        self.submit(Urgency::Background, f).await
    }

    async fn submit<T, F>(&self, urgency: Urgency, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let (done_tx, done_rx) = oneshot::channel::<StoreResult<T>>();
        let job: WriteJob = Box::new(move |conn| {
            let outcome = in_savepoint(conn, f);
            Box::new(move |commit| {
                let result = match commit {
                    Ok(()) => outcome,
                    Err(e) => Err(StoreError::Commit(e)),
                };
                let _ = done_tx.send(result);
            })
        });
        self.inner
            .writer
            .send((urgency, job))
            .map_err(|_| StoreError::WriterGone)?;
        done_rx.await.map_err(|_| StoreError::WriterGone)?
    }

    /// Runs `f` on a read connection on the blocking pool. Readers see the last commit.
    pub async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let conn = match inner.readers.lock().ok().and_then(|mut r| r.pop()) {
                Some(c) => c,
                None => open_reader(&inner.path)?,
            };
            let result = f(&conn);
            if let Ok(mut pool) = inner.readers.lock()
                && pool.len() < MAX_IDLE_READERS
            {
                pool.push(conn);
            }
            result
        })
        .await
        .map_err(|e| StoreError::Commit(format!("reader task failed: {e}")))?
    }

    /// Checks that the database answers a trivial query.
    pub async fn ping(&self) -> bool {
        self.read(|c| Ok(c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?))
            .await
            .is_ok()
    }

    /// Writes a consistent copy of the live database to `dest` (online backup).
    pub async fn backup_to(&self, dest: PathBuf) -> StoreResult<()> {
        self.read(move |conn| {
            let mut target = Connection::open(&dest)?;
            let backup = rusqlite::backup::Backup::new(conn, &mut target)?;
            backup.run_to_completion(256, Duration::from_millis(0), None)?;
            Ok(())
        })
        .await
    }
}

fn configure(conn: &Connection) -> StoreResult<()> {
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.set_prepared_statement_cache_capacity(64);
    // WAL so readers never block the writer; FULL so a commit is on disk before we say so;
    // savepoint sub-journals in memory, not a temporary file per write job.
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;
         PRAGMA temp_store=MEMORY;",
    )?;
    Ok(())
}

fn open_reader(path: &Path) -> StoreResult<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "mmap_size", MMAP_BYTES)?;
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> StoreResult<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL);",
    )?;
    let current: i64 = conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        [],
        |r| r.get(0),
    )?;
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
            (version, now_ms()),
        )?;
        tx.commit()?;
        tracing::info!(version, "applied database migration");
    }
    Ok(())
}

fn in_savepoint<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> StoreResult<T>,
) -> StoreResult<T> {
    // Cached statements: this runs for every write, so it should not re-parse SQL each time.
    conn.prepare_cached("SAVEPOINT job")?.execute([])?;
    match f(conn) {
        Ok(v) => {
            conn.prepare_cached("RELEASE job")?.execute([])?;
            Ok(v)
        }
        Err(e) => {
            conn.execute_batch("ROLLBACK TO job; RELEASE job")?;
            Err(e)
        }
    }
}

fn writer_loop(
    conn: Connection,
    rx: std::sync::mpsc::Receiver<(Urgency, WriteJob)>,
    committed: std::sync::mpsc::SyncSender<()>,
) {
    let mut queue = WriteQueue::default();
    let mut batch: Vec<WriteJob> = Vec::with_capacity(MAX_BATCH);
    let mut open = true;
    while open || queue.has_held() {
        if open {
            let first = receive(&rx, queue.held_due());
            let at = Instant::now();
            match first {
                Received::Write(urgency, job) => queue.push(urgency, job, at),
                Received::Due => {}
                Received::Closed => open = false,
            }
            for (urgency, job) in rx.try_iter().take(MAX_BATCH) {
                queue.push(urgency, job, at);
            }
        }
        // Once every sender is gone, whatever is held is committed at once.
        queue.take_batch(&mut batch, Instant::now(), !open);
        if batch.is_empty() {
            continue;
        }
        let commit = run_batch(&conn, &mut batch);
        // A full slot already means "there is something to checkpoint".
        let _ = committed.try_send(());
        for done in commit.completions {
            done(commit.result.clone());
        }
    }
}

enum Received {
    Write(Urgency, WriteJob),
    /// The held writes are due.
    Due,
    /// Every sender is gone.
    Closed,
}

/// Waits for the next write, but only until `due` when writes are held.
fn receive(rx: &std::sync::mpsc::Receiver<(Urgency, WriteJob)>, due: Option<Instant>) -> Received {
    use std::sync::mpsc::RecvTimeoutError;
    let received = match due {
        None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        Some(due) => rx.recv_timeout(due.saturating_duration_since(Instant::now())),
    };
    match received {
        Ok((urgency, job)) => Received::Write(urgency, job),
        Err(RecvTimeoutError::Timeout) => Received::Due,
        Err(RecvTimeoutError::Disconnected) => Received::Closed,
    }
}

/// The writes the writer has taken but not yet run: urgent ones go into the next transaction;
/// background ones too when traffic is sparse, and while it is busy they are held until the
/// oldest of them has waited [`BACKGROUND_HOLD`], then all go together.
#[derive(Default)]
struct WriteQueue {
    now: Vec<WriteJob>,
    held: Vec<WriteJob>,
    held_since: Option<Instant>,
    urgent: ArrivalRate,
}

impl WriteQueue {
    fn push(&mut self, urgency: Urgency, job: WriteJob, at: Instant) {
        match urgency {
            Urgency::Now => {
                self.urgent.note(at);
                self.now.push(job);
            }
            Urgency::Background if self.urgent.busy(at) => {
                self.held_since.get_or_insert(at);
                self.held.push(job);
            }
            Urgency::Background => self.now.push(job),
        }
    }

    fn has_held(&self) -> bool {
        !self.held.is_empty()
    }

    /// When the held writes must go into a transaction.
    fn held_due(&self) -> Option<Instant> {
        self.held_since.map(|since| since + BACKGROUND_HOLD)
    }

    /// Moves the next transaction's writes into `batch`: every one not held, and the held ones
    /// once due (or at once when `flush`).
    fn take_batch(&mut self, batch: &mut Vec<WriteJob>, now: Instant, flush: bool) {
        if flush || self.held_due().is_some_and(|due| now >= due) {
            batch.append(&mut self.held);
            self.held_since = None;
        }
        batch.append(&mut self.now);
    }
}

/// How closely urgent writes follow each other: a moving average of the gaps between them
/// (each gap counted up to [`ArrivalRate::LONGEST_GAP`], so one quiet spell does not hide the
/// next burst for long), and the time since the last.
struct ArrivalRate {
    last: Option<Instant>,
    mean_gap: Duration,
}

impl Default for ArrivalRate {
    /// No urgent write yet: as if the last came long ago.
    fn default() -> Self {
        ArrivalRate {
            last: None,
            mean_gap: Self::LONGEST_GAP,
        }
    }
}

impl ArrivalRate {
    /// The weight of the newest gap in the average: 1/8.
    const NEWEST_OF: u32 = 8;
    /// The most one gap counts for.
    const LONGEST_GAP: Duration = Duration::from_millis(20);

    fn note(&mut self, at: Instant) {
        let gap = self.last.map_or(Self::LONGEST_GAP, |last| {
            at.saturating_duration_since(last).min(Self::LONGEST_GAP)
        });
        self.mean_gap = (self.mean_gap * (Self::NEWEST_OF - 1) + gap) / Self::NEWEST_OF;
        self.last = Some(at);
    }

    /// Whether urgent writes are streaming in at `at`: on average less than [`BUSY_GAP`]
    /// apart, the last of them less than that ago.
    fn busy(&self, at: Instant) -> bool {
        self.last.is_some_and(|last| {
            at.saturating_duration_since(last) < BUSY_GAP && self.mean_gap < BUSY_GAP
        })
    }
}

/// Copies committed WAL pages back into the database at most every [`CHECKPOINT_INTERVAL`]
/// while commits arrive, without blocking the writer (`PASSIVE`); when the WAL has grown past
/// [`WAL_HARD_LIMIT_FRAMES`] anyway (readers kept it pinned), `RESTART` waits for them so the
/// file cannot grow without bound. Ends with a final `TRUNCATE` when the writer has stopped.
///
/// The copying runs in the idle I/O class: its burst of database pages and their fsync then
/// queue behind the writer's WAL writes, which webhooks wait on, instead of ahead of them. In
/// paired runs at 1,000 webhooks/s this lowered p99 in 6 of 7 (docs/benchmarks.md). The
/// checkpoints that hold up the writer run in the normal class.
fn checkpoint_loop(conn: &Connection, committed: &std::sync::mpsc::Receiver<()>) {
    let checkpoint = |mode: &str| -> rusqlite::Result<(i64, i64, i64)> {
        conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
    };
    set_io_class(IoClass::Idle);
    while committed.recv().is_ok() {
        std::thread::sleep(CHECKPOINT_INTERVAL);
        let _ = committed.try_recv();
        match checkpoint("PASSIVE") {
            Ok((_, wal_frames, _)) if wal_frames > WAL_HARD_LIMIT_FRAMES => {
                set_io_class(IoClass::BestEffort);
                if let Err(e) = checkpoint("RESTART") {
                    tracing::warn!(error = %e, wal_frames, "store: bounding checkpoint failed");
                }
                set_io_class(IoClass::Idle);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "store: checkpoint failed"),
        }
    }
    set_io_class(IoClass::BestEffort);
    if let Err(e) = checkpoint("TRUNCATE") {
        tracing::debug!(error = %e, "store: final checkpoint skipped");
    }
}

/// An I/O scheduling class for the calling thread (`ioprio_set(2)`).
#[derive(Clone, Copy, Debug)]
enum IoClass {
    /// Served when no other I/O waits (the block scheduler's aging still bounds the wait).
    Idle,
    /// The default class, at its middle level.
    BestEffort,
}

/// Puts the calling thread in `class`. Block schedulers without priorities (`none`) ignore it;
/// a refusal is logged and changes nothing else.
fn set_io_class(class: IoClass) {
    const IOPRIO_WHO_PROCESS: nix::libc::c_long = 1;
    const CLASS_SHIFT: u32 = 13;
    let priority: nix::libc::c_long = match class {
        IoClass::Idle => 3 << CLASS_SHIFT,
        IoClass::BestEffort => (2 << CLASS_SHIFT) | 4,
    };
    // SAFETY: ioprio_set takes three integers and reads or writes no memory of this process;
    // `who` 0 with IOPRIO_WHO_PROCESS is the calling thread.
    #[allow(unsafe_code)]
    let result =
        unsafe { nix::libc::syscall(nix::libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, priority) };
    if result != 0 {
        tracing::debug!(?class, error = %std::io::Error::last_os_error(), "store: I/O priority not set");
    }
}

struct BatchOutcome {
    result: Result<(), String>,
    completions: Vec<Completion>,
}

fn run_batch(conn: &Connection, batch: &mut Vec<WriteJob>) -> BatchOutcome {
    // Cached like every statement on the writer: `execute_batch` would parse it every batch.
    if let Err(e) = conn
        .prepare_cached("BEGIN IMMEDIATE")
        .and_then(|mut s| s.execute([]))
    {
        // Nothing ran. Dropping the jobs drops their reply channels, so every caller gets
        // `WriterGone` and nothing is acknowledged that was not written.
        tracing::error!(error = %e, "store: could not begin a write transaction");
        batch.clear();
        return BatchOutcome {
            result: Err(e.to_string()),
            completions: Vec::new(),
        };
    }
    let completions: Vec<Completion> = batch.drain(..).map(|job| job(conn)).collect();
    let result = conn
        .prepare_cached("COMMIT")
        .and_then(|mut s| s.execute([]))
        .map(|_| ())
        .map_err(|e| {
            let _ = conn.execute_batch("ROLLBACK");
            e.to_string()
        });
    BatchOutcome {
        result,
        completions,
    }
}

/// A store in a fresh temporary directory, for tests; the directory goes with its guard.
#[cfg(test)]
pub(crate) fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = Store::open(&dir.path().join("t.db")).expect("a fresh store opens");
    (dir, store)
}

/// Appends an audit event (inside the caller's write).
pub fn audit(
    conn: &Connection,
    actor: &str,
    kind: &str,
    chat_id: Option<&str>,
    detail: &serde_json::Value,
) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO audit_events (at, actor, kind, chat_id, detail_json) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(rusqlite::params![now_ms(), actor, kind, chat_id, detail.to_string()],
    )?;
    Ok(())
}

/// Milliseconds since the Unix epoch, the store's unit of time.
pub fn now_ms() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    (now.unix_timestamp_nanos() / 1_000_000) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noop_job() -> WriteJob {
        Box::new(|_| Box::new(|_| {}))
    }

    /// A queue that has seen urgent writes every 100 µs up to `at`.
    fn busy_queue(at: Instant) -> WriteQueue {
        let mut queue = WriteQueue::default();
        for i in (1..=64u32).rev() {
            queue.urgent.note(at - Duration::from_micros(100) * i);
        }
        queue
    }

    #[test]
    fn background_writes_are_held_only_while_urgent_ones_stream_in() {
        let start = Instant::now();
        let mut batch = Vec::new();

        // Sparse traffic: a background write goes into the next commit.
        let mut queue = WriteQueue::default();
        queue.push(Urgency::Now, noop_job(), start);
        queue.take_batch(&mut batch, start, false);
        let later = start + Duration::from_millis(50);
        queue.push(Urgency::Background, noop_job(), later);
        assert!(!queue.has_held());
        queue.take_batch(&mut batch, later, false);
        assert_eq!(batch.len(), 2);
        batch.clear();

        // Busy: held until the oldest has waited BACKGROUND_HOLD; urgent writes go at once.
        let mut queue = busy_queue(start);
        queue.push(Urgency::Background, noop_job(), start);
        let due = queue.held_due().unwrap();
        assert_eq!(due, start + BACKGROUND_HOLD);
        queue.push(Urgency::Now, noop_job(), start);
        queue.push(
            Urgency::Background,
            noop_job(),
            start + Duration::from_micros(100),
        );
        queue.take_batch(&mut batch, due - Duration::from_micros(1), false);
        assert_eq!(batch.len(), 1);
        assert!(queue.has_held());
        batch.clear();
        queue.take_batch(&mut batch, due, false);
        assert_eq!(batch.len(), 2);
        assert!(!queue.has_held());
        assert_eq!(queue.held_due(), None);
        batch.clear();

        // When the urgent writes stop, holding stops too.
        let quiet = start + BUSY_GAP * 2;
        queue.push(Urgency::Background, noop_job(), quiet);
        assert!(!queue.has_held());
        queue.take_batch(&mut batch, quiet, false);
        assert_eq!(batch.len(), 1);
        batch.clear();

        // When the writer is closing, held writes go at once.
        let mut queue = busy_queue(start);
        queue.push(Urgency::Background, noop_job(), start);
        assert!(queue.has_held());
        queue.take_batch(&mut batch, start, true);
        assert_eq!(batch.len(), 1);
        assert!(!queue.has_held());
    }

    /// The writer waits for the next write only until held writes fall due, and sees when
    /// every sender is gone.
    #[test]
    fn the_writer_wakes_for_held_writes_and_for_closing() {
        let (tx, rx) = std::sync::mpsc::channel::<(Urgency, WriteJob)>();
        let due = Instant::now() + Duration::from_millis(5);
        assert!(matches!(receive(&rx, Some(due)), Received::Due));
        assert!(Instant::now() >= due);
        tx.send((Urgency::Background, noop_job())).unwrap();
        assert!(matches!(
            receive(&rx, Some(Instant::now())),
            Received::Write(Urgency::Background, _)
        ));
        drop(tx);
        assert!(matches!(receive(&rx, None), Received::Closed));
    }

    #[test]
    fn a_burst_counts_as_busy_within_a_few_dozen_writes_and_a_pause_ends_it() {
        let start = Instant::now();
        let mut rate = ArrivalRate::default();
        let mut at = start;
        let mut busy_after = None;
        for i in 0..100 {
            rate.note(at);
            if busy_after.is_none() && rate.busy(at) {
                busy_after = Some(i);
            }
            at += Duration::from_micros(500);
        }
        assert!(busy_after.is_some_and(|n| n < 40), "{busy_after:?}");
        assert!(!rate.busy(at + BUSY_GAP));
    }

    /// The checkpointer's thread really changes class (as `ionice`, from util-linux, reads it).
    #[test]
    fn the_io_class_is_the_threads_own() {
        if std::process::Command::new("ionice")
            .arg("-V")
            .output()
            .is_err()
        {
            println!("SKIP: ionice (util-linux) is not installed");
            return;
        }
        let read = |tid: i32| {
            let out = std::process::Command::new("ionice")
                .args(["-p", &tid.to_string()])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        };
        let (idle, back) = std::thread::spawn(move || {
            let tid = nix::unistd::gettid().as_raw();
            set_io_class(IoClass::Idle);
            let idle = read(tid);
            set_io_class(IoClass::BestEffort);
            (idle, read(tid))
        })
        .join()
        .unwrap();
        assert_eq!(idle, "idle");
        assert_eq!(back, "best-effort: prio 4");
        assert_ne!(read(nix::unistd::gettid().as_raw()), "idle");
        println!("PASS: the checkpointer's thread moves to the idle I/O class and back");
    }

    #[tokio::test]
    async fn background_writes_are_committed_without_other_traffic() {
        let (_dir, store) = temp_store();
        store
            .write(|c| Ok(c.execute_batch("CREATE TABLE t (v INTEGER)")?))
            .await
            .unwrap();
        let handles: Vec<_> = (0..10)
            .map(|i| {
                let s = store.clone();
                tokio::spawn(async move {
                    s.write_background(move |c| Ok(c.execute("INSERT INTO t VALUES (?1)", [i])?))
                        .await
                })
            })
            .collect();
        for h in handles {
            h.await.unwrap().unwrap();
        }
        let count: i64 = store
            .read(|c| Ok(c.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(count, 10);
    }

    /// The writer keeps a long WAL's length when it starts over (see JOURNAL_SIZE_LIMIT), and
    /// leaves checkpoints to the checkpointer.
    #[tokio::test]
    async fn the_writer_keeps_the_wal_long_and_never_checkpoints() {
        let (_dir, store) = temp_store();
        let pragma = |name: &'static str| {
            move |c: &Connection| -> StoreResult<i64> {
                Ok(c.pragma_query_value(None, name, |r| r.get(0))?)
            }
        };
        assert_eq!(
            store.write(pragma("journal_size_limit")).await.unwrap(),
            JOURNAL_SIZE_LIMIT
        );
        assert_eq!(store.write(pragma("wal_autocheckpoint")).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn writes_are_durable_and_isolated_per_job() {
        let (dir, store) = temp_store();
        let handles: Vec<_> = (0..50)
            .map(|i| {
                let s = store.clone();
                tokio::spawn(async move {
                    s.write(move |c| {
                        c.execute(
                            "INSERT INTO audit_events (at, actor, kind) VALUES (?1, 'test', 'x')",
                            [i],
                        )?;
                        if i % 10 == 0 {
                            return Err(StoreError::Corrupt("fail on purpose".into()));
                        }
                        Ok(i)
                    })
                    .await
                })
            })
            .collect();
        let mut ok = 0;
        for h in handles {
            if h.await.unwrap().is_ok() {
                ok += 1;
            }
        }
        assert_eq!(ok, 45);
        let rows: i64 = store
            .read(|c| Ok(c.query_row("SELECT COUNT(*) FROM audit_events", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(rows, 45, "failed jobs roll back only their own rows");
        // Re-opening applies no migration twice.
        drop(store);
        let again = Store::open(&dir.path().join("t.db")).unwrap();
        assert!(again.ping().await);
    }

    /// SQLite plans with the value bound to a `LIMIT ?`, so a statement with one is re-prepared
    /// every time it is bound: the statement cache then saves nothing (it cost the gatekeeper's
    /// and the sender's hot reads a re-parse each). Limits are applied while reading rows.
    #[test]
    fn no_statement_binds_its_limit() {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch("CREATE TABLE t (a INTEGER PRIMARY KEY); INSERT INTO t VALUES (1), (2);")
            .unwrap();
        let reprepares = |sql: &str, bind: &[&dyn rusqlite::ToSql]| {
            for _ in 0..3 {
                let mut stmt = c.prepare_cached(sql).unwrap();
                let rows: Vec<i64> = stmt
                    .query_map(bind, |r| r.get(0))
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .unwrap();
                assert!(!rows.is_empty());
            }
            c.prepare_cached(sql)
                .unwrap()
                .get_status(rusqlite::StatementStatus::RePrepare)
        };
        assert!(
            reprepares("SELECT a FROM t LIMIT ?1", &[&5]) > 0,
            "SQLite changed"
        );
        assert_eq!(reprepares("SELECT a FROM t WHERE a > ?1", &[&0]), 0);
        let sources = [
            include_str!("gate.rs"),
            include_str!("messages.rs"),
            include_str!("outbox.rs"),
            include_str!("turns.rs"),
            include_str!("usage.rs"),
            include_str!("../lifecycle.rs"),
        ];
        for source in sources {
            let code = source.lines().filter(|l| !l.trim_start().starts_with("//"));
            for line in code {
                assert!(!line.contains("LIMIT ?"), "a bound LIMIT: {line}");
            }
        }
    }

    /// A database from before migration 5 keeps its turns' messages when `turn_messages`
    /// becomes `messages.turn_id`: a queued turn is claimed with the message it had.
    #[tokio::test]
    async fn turn_messages_move_into_messages() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            let mut conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL);",
            )
            .unwrap();
            let tx = conn.transaction().unwrap();
            for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v <= 4) {
                tx.execute_batch(sql).unwrap();
                tx.execute("INSERT INTO schema_migrations VALUES (?1, 0)", [version])
                    .unwrap();
            }
            tx.execute_batch(
                "INSERT INTO chats (id, created_at, updated_at) VALUES ('c1', 1, 1);
                 INSERT INTO messages (id, chat_id, direction, sender, text, created_at, gate_status)
                     VALUES ('m1', 'c1', 'inbound', '+1555', 'first', 1, 'respond'),
                            ('m2', 'c1', 'inbound', '+1555', 'second', 2, 'skip');
                 INSERT INTO turns (chat_id, status, request_id, created_at) VALUES ('c1', 'queued', 'r', 1);
                 INSERT INTO turn_messages (turn_id, message_id) VALUES (1, 'm1');",
            )
            .unwrap();
            tx.commit().unwrap();
        }
        let store = Store::open(&path).unwrap();
        let (work, leftover) = store
            .write(|c| {
                let work = turns::claim_runnable(c, 4)?;
                let leftover: i64 = c.query_row(
                    "SELECT COUNT(*) FROM sqlite_schema WHERE name = 'turn_messages'",
                    [],
                    |r| r.get(0),
                )?;
                Ok((work, leftover))
            })
            .await
            .unwrap();
        assert_eq!(leftover, 0);
        assert_eq!(work.len(), 1);
        let texts: Vec<&str> = work[0].messages.iter().map(|m| m.text.as_str()).collect();
        assert_eq!(texts, ["first"]);
    }

    #[tokio::test]
    async fn backup_produces_a_readable_copy() {
        let (dir, store) = temp_store();
        store
            .write(|c| {
                c.execute(
                    "INSERT INTO audit_events (at, actor, kind) VALUES (1, 'a', 'b')",
                    [],
                )?;
                Ok(())
            })
            .await
            .unwrap();
        let dest = dir.path().join("copy.db");
        store.backup_to(dest.clone()).await.unwrap();
        let copy = Connection::open(dest).unwrap();
        let n: i64 = copy
            .query_row("SELECT COUNT(*) FROM audit_events", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
    }
}
