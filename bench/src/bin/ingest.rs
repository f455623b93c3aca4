//! `ingest`: verified webhook ingestion of the real picortex daemon on this machine.
//!
//! Starts the daemon in-process (echo agent, data in a temporary directory on the same disk as
//! the workspace, replies going to an in-process Linq stand-in), then:
//!
//! 1. throughput: `--connections` keep-alive HTTP/1.1 connections POST pre-signed
//!    `message.received` webhooks to `/api/linq/inbound` as fast as they are answered; only
//!    200s count as accepted;
//! 2. latency: an open loop offers `--rate` webhooks per second for `--seconds`, each measured
//!    from when it was due (no coordinated omission);
//! 3. baseline: the same number of rows with the same body bytes inserted into a plain
//!    `webhook_events` table on the same disk, (a) one durable transaction per row and
//!    (b) `--batch` rows per transaction.
//!
//! Prints a markdown report: the figures, their ratios, CPU time by thread group and what the
//! machine was. `cargo run --release -p picortex-bench --bin ingest [-- --quick]`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use linq::webhook::WebhookSecret;
use picortex::config::{AgentKind, Config, LinqConfig};
use picortex::daemon::DaemonHandle;
use picortex_bench::baseline::{self, Row};
use picortex_bench::cpu::{Snapshot, Usage};
use picortex_bench::flush_probe::FlushProbe;
use picortex_bench::load::{self, ClosedLoop, OpenLoop};
use picortex_bench::machine::Machine;
use picortex_bench::sink::Sink;
use picortex_bench::stats::{Summary, ms, per_sec};
use picortex_bench::webhooks::{self, BOT_LINE, Chat, SignedWebhook};
use tokio::net::TcpListener;

/// The aims from the issue.
const AIM_ACCEPTED_PER_SEC: f64 = 5_000.0;
const AIM_P99: Duration = Duration::from_millis(5);
/// A request sent later than this after it was due counts as late.
const LATE: Duration = Duration::from_millis(1);
/// How often the flush probe writes during the latency phase: often enough to see a stall
/// that holds up a few webhooks, seldom enough to add little to the disk's load.
const FLUSH_PROBE_INTERVAL: Duration = Duration::from_millis(10);
/// How long the reply pipeline may take to drain between phases.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Parser)]
#[command(about = "Webhook ingestion benchmark of the picortex daemon")]
struct Args {
    /// A short run (3,000 webhooks, 3 s at the fixed rate) to check the setup.
    #[arg(long)]
    quick: bool,
    /// Webhooks in the throughput phase [default: 20000, quick: 3000].
    #[arg(long)]
    webhooks: Option<usize>,
    /// Concurrent keep-alive connections in the throughput phase.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Offered rate of the latency phase, webhooks per second.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Length of the latency phase in seconds [default: 10, quick: 3].
    #[arg(long)]
    seconds: Option<f64>,
    /// Seconds of quiet between the throughput and the latency phases. 0 starts the latency
    /// phase as soon as the replies have drained, on the WAL the burst left; a few seconds
    /// let the store checkpoint and start its WAL over, as a pause in real traffic does.
    #[arg(long, default_value_t = 0.0)]
    pause: f64,
    /// Distinct chats the webhooks are spread over.
    #[arg(long, default_value_t = 50)]
    chats: usize,
    /// Rows per transaction in baseline (b).
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// Where the temporary data directory is created; it must be on the disk being measured,
    /// not a tmpfs [default: <workspace>/target/bench-tmp].
    #[arg(long)]
    tmp_dir: Option<PathBuf>,
    /// Do not write the daemon's JSON logs (by default they go, at info level as in
    /// production, to daemon.log in the temporary directory).
    #[arg(long)]
    no_daemon_logs: bool,
    /// Keep the temporary directory (databases and daemon log) and print its path.
    #[arg(long)]
    keep: bool,
}

struct Plan {
    webhooks: usize,
    warmup: usize,
    connections: usize,
    rate: f64,
    paced: usize,
    seconds: f64,
    pause: Duration,
    chats: usize,
    batch: usize,
    daemon_logs: bool,
}

/// Everything measured against the daemon.
struct DaemonFigures {
    burst: ClosedLoop,
    burst_cpu: Usage,
    drain_after_warmup: Drain,
    drain_after_burst: Drain,
    drain_after_paced: Drain,
    paced: OpenLoop,
    paced_cpu: Usage,
    /// The flush probe's latencies during the latency phase.
    paced_flushes: Vec<Duration>,
    /// The WAL file's size in bytes at the start and the end of each phase (throughput,
    /// latency): a WAL that grows during a phase is appended to by every commit.
    wal_sizes: [(u64, u64); 2],
    check: StoreCheck,
    sink_sends: u64,
    sink_other_calls: u64,
    sink_unexpected: u64,
}

/// What the store holds after the run, to confirm every 200 was a stored event.
struct StoreCheck {
    events: i64,
    inbound_messages: i64,
    turns: Vec<(String, i64)>,
    deliveries: Vec<(String, i64)>,
}

struct BaselineFigures {
    /// How long the stopped daemon's last checkpoint and writeback took before the baselines.
    settled: Duration,
    /// One row per transaction at the latency phase's pace: each commit's latency from its
    /// due time.
    paced: Option<Summary>,
    single: baseline::Outcome,
    single_cpu: Usage,
    batched: baseline::Outcome,
    batched_cpu: Usage,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let seconds = args.seconds.unwrap_or(if args.quick { 3.0 } else { 10.0 });
    anyhow::ensure!(
        args.rate > 0.0 && seconds > 0.0,
        "--rate and --seconds must be positive"
    );
    let plan = Plan {
        webhooks: args
            .webhooks
            .unwrap_or(if args.quick { 3_000 } else { 20_000 }),
        warmup: (args.connections * 4).max(500),
        connections: args.connections.max(1),
        rate: args.rate,
        paced: (args.rate * seconds).round().max(1.0) as usize,
        seconds,
        pause: Duration::try_from_secs_f64(args.pause).context("--pause")?,
        chats: args.chats.max(1),
        batch: args.batch.max(1),
        daemon_logs: !args.no_daemon_logs,
    };

    let workspace = picortex_bench::harness::workspace_root()?;
    let tmp = picortex_bench::harness::scratch_dir(args.tmp_dir.as_deref(), &workspace, "ingest-")?;
    let machine = Machine::describe(tmp.path());
    if machine.data_fs.contains("tmpfs") {
        eprintln!(
            "warning: {} is on {}; fsync costs nothing there, so the figures mean little",
            tmp.path().display(),
            machine.data_fs
        );
    }
    if plan.daemon_logs {
        picortex_bench::harness::log_daemon_to(tmp.path())?;
    }

    // The daemon gets a runtime of its own, sized like `picortex serve` (one worker per CPU);
    // the load generator and the Linq stand-in share another.
    let (daemon_rt, load_rt) = picortex_bench::harness::runtimes()?;

    let sink = load_rt.block_on(Sink::start())?;
    let secret = WebhookSecret::generate();
    let config = Config {
        port: 0,
        data_dir: tmp.path().join("data"),
        workspace_root: tmp.path().join("chats"),
        agent: AgentKind::Echo,
        linq: LinqConfig {
            api_key: format!("bench_{}", uuid::Uuid::new_v4().simple()),
            base_url: sink.base_url(),
            webhook_secret: secret.as_str().to_owned(),
            phone: Some(BOT_LINE.to_owned()),
        },
        ..Config::default()
    };
    let database = config.database_path();
    let daemon = daemon_rt.block_on(async {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        picortex::daemon::start(config, listener).await
    })?;

    eprintln!(
        "daemon on {} (data in {}), sink on {}",
        daemon.base_url(),
        tmp.path().display(),
        sink.base_url()
    );
    let daemon_figures = load_rt.block_on(measure_daemon(
        &plan,
        &secret,
        &daemon,
        load_rt.handle().clone(),
        tmp.path(),
    ));
    let (sink_sends, sink_other_calls, sink_unexpected) =
        (sink.sends(), sink.other_calls(), sink.unexpected());
    load_rt.block_on(daemon.shutdown());
    sink.stop();
    let mut daemon_figures = daemon_figures?;
    daemon_figures.sink_sends = sink_sends;
    daemon_figures.sink_other_calls = sink_other_calls;
    daemon_figures.sink_unexpected = sink_unexpected;
    drop(daemon_rt);
    drop(load_rt);
    let settled = settle(&wal_of(&database));

    let mut baseline_figures = measure_baseline(&plan, &secret, tmp.path())?;
    baseline_figures.settled = settled;
    print_report(&plan, &machine, &daemon_figures, &baseline_figures);

    if args.keep {
        let kept = tmp.keep();
        eprintln!("kept {}", kept.display());
    }
    Ok(())
}

async fn measure_daemon(
    plan: &Plan,
    secret: &WebhookSecret,
    daemon: &DaemonHandle,
    runtime: tokio::runtime::Handle,
    probe_dir: &Path,
) -> anyhow::Result<DaemonFigures> {
    let url = format!("{}/api/linq/inbound", daemon.base_url());
    let client = load::client(plan.connections * 2)?;
    let chats = Chat::many(plan.chats);

    eprintln!(
        "warm-up: {} webhooks over {} connections",
        plan.warmup, plan.connections
    );
    let warmup = Arc::new(webhooks::build(
        secret,
        &chats,
        plan.warmup,
        unix_now(),
        "warm-up",
    )?);
    let warm = load::closed_loop(&client, &url, warmup, plan.connections).await;
    anyhow::ensure!(
        warm.failures.total() == 0,
        "warm-up requests failed: {}",
        warm.failures.describe()
    );
    let drain_after_warmup = drain(daemon).await?;

    let burst_hooks = Arc::new(webhooks::build(
        secret,
        &chats,
        plan.webhooks,
        unix_now(),
        "throughput",
    )?);
    eprintln!(
        "throughput: {} webhooks over {} connections",
        plan.webhooks, plan.connections
    );
    let wal_before_burst = wal_size(daemon);
    let before = Snapshot::take();
    let burst = load::closed_loop(&client, &url, burst_hooks, plan.connections).await;
    let burst_cpu = before.until(&Snapshot::take());
    let wal_after_burst = wal_size(daemon);
    eprintln!(
        "  {} accepted/s, failures: {}",
        per_sec(burst.accepted_per_sec()),
        burst.failures.describe()
    );
    let drain_after_burst = drain(daemon).await?;

    let paced_hooks = Arc::new(webhooks::build(
        secret,
        &chats,
        plan.paced,
        unix_now(),
        "latency",
    )?);
    eprintln!(
        "latency: {} webhooks at {}/s offered",
        plan.paced,
        per_sec(plan.rate)
    );
    if !plan.pause.is_zero() {
        eprintln!("quiet for {:.1} s", plan.pause.as_secs_f64());
        tokio::time::sleep(plan.pause).await;
    }
    let wal_before_paced = wal_size(daemon);
    let probe = FlushProbe::start(probe_dir, FLUSH_PROBE_INTERVAL)?;
    let before = Snapshot::take();
    let paced = load::open_loop(
        runtime,
        &client,
        &url,
        paced_hooks,
        plan.rate,
        Duration::from_secs(30),
    )
    .await?;
    let paced_cpu = before.until(&Snapshot::take());
    let paced_flushes = probe.finish()?;
    let wal_after_paced = wal_size(daemon);
    let drain_after_paced = drain(daemon).await?;

    let check = daemon
        .store
        .read(|c| {
            let count = |sql: &str| c.query_row(sql, [], |r| r.get::<_, i64>(0));
            Ok(StoreCheck {
                events: count("SELECT COUNT(*) FROM webhook_events")?,
                inbound_messages: count(
                    "SELECT COUNT(*) FROM messages WHERE direction = 'inbound'",
                )?,
                turns: picortex::store::turns::counts(c)?,
                deliveries: picortex::store::outbox::counts(c)?,
            })
        })
        .await?;
    Ok(DaemonFigures {
        burst,
        burst_cpu,
        drain_after_warmup,
        drain_after_burst,
        drain_after_paced,
        paced,
        paced_cpu,
        paced_flushes,
        wal_sizes: [
            (wal_before_burst, wal_after_burst),
            (wal_before_paced, wal_after_paced),
        ],
        check,
        sink_sends: 0,
        sink_other_calls: 0,
        sink_unexpected: 0,
    })
}

/// How a wait for the reply pipeline ended.
#[derive(Debug, Clone, Copy)]
struct Drain {
    waited: Duration,
    /// Work still open when the wait ended (0: drained).
    open: i64,
}

impl Drain {
    fn describe(&self) -> String {
        if self.open == 0 {
            format!("drained in {:.2} s", self.waited.as_secs_f64())
        } else {
            format!(
                "NOT drained after {:.0} s ({} messages, turns or deliveries still open)",
                self.waited.as_secs_f64(),
                self.open
            )
        }
    }
}

/// Waits until no message waits at the attention gate, no turn is queued or running and no
/// delivery is pending, so one phase's replies do not run into the next phase; gives up after
/// [`DRAIN_TIMEOUT`].
async fn drain(daemon: &DaemonHandle) -> anyhow::Result<Drain> {
    let started = Instant::now();
    loop {
        let open = daemon.store.read(open_work).await?;
        if open == 0 || started.elapsed() >= DRAIN_TIMEOUT {
            if open > 0 {
                eprintln!(
                    "  warning: {open} messages, turns or deliveries still open after {} s",
                    DRAIN_TIMEOUT.as_secs()
                );
            }
            return Ok(Drain {
                waited: started.elapsed(),
                open,
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Messages waiting at the attention gate (when the schema has one), queued or running turns
/// and pending deliveries.
fn open_work(c: &rusqlite::Connection) -> picortex::store::StoreResult<i64> {
    let turns = picortex::store::turns::counts(c)?;
    let deliveries = picortex::store::outbox::counts(c)?;
    let open = |rows: &[(String, i64)], states: &[&str]| -> i64 {
        rows.iter()
            .filter(|(s, _)| states.contains(&s.as_str()))
            .map(|(_, n)| n)
            .sum()
    };
    let has_gate: bool = c.query_row(
        "SELECT EXISTS (SELECT 1 FROM pragma_table_info('messages') WHERE name = 'gate_status')",
        [],
        |r| r.get(0),
    )?;
    let gated: i64 = if has_gate {
        c.query_row(
            "SELECT COUNT(*) FROM messages WHERE gate_status = 'pending'",
            [],
            |r| r.get(0),
        )?
    } else {
        0
    };
    Ok(gated + open(&turns, &["queued", "running"]) + open(&deliveries, &["pending"]))
}

fn measure_baseline(
    plan: &Plan,
    secret: &WebhookSecret,
    dir: &Path,
) -> anyhow::Result<BaselineFigures> {
    // The same number of rows as the throughput phase, with bodies of the same shape and size.
    let hooks: Vec<SignedWebhook> = webhooks::build(
        secret,
        &Chat::many(plan.chats),
        plan.webhooks.max(plan.paced),
        unix_now(),
        "throughput",
    )?;
    let all_rows: Vec<Row> = hooks
        .into_iter()
        .map(|h| Row {
            event_id: h.event_id,
            body: h.body,
        })
        .collect();
    // First, nearest in time to the daemon's latency phase.
    eprintln!(
        "baseline (c): {} rows at {}/s, one transaction each",
        plan.paced,
        per_sec(plan.rate)
    );
    let mut latencies = baseline::paced(
        &dir.join("baseline-c.db"),
        &all_rows[..plan.paced],
        plan.rate,
    )?;
    let paced = Summary::of(&mut latencies);
    let rows = &all_rows[..plan.webhooks];
    eprintln!("baseline (a): {} rows, one transaction each", rows.len());
    let before = Snapshot::take();
    let single = baseline::run(&dir.join("baseline-a.db"), rows, 1)?;
    let single_cpu = before.until(&Snapshot::take());
    eprintln!("  {} rows/s", per_sec(single.rows_per_sec()));
    eprintln!(
        "baseline (b): {} rows, {} per transaction",
        rows.len(),
        plan.batch
    );
    let before = Snapshot::take();
    let batched = baseline::run(&dir.join("baseline-b.db"), rows, plan.batch)?;
    let batched_cpu = before.until(&Snapshot::take());
    eprintln!("  {} rows/s", per_sec(batched.rows_per_sec()));
    Ok(BaselineFigures {
        settled: Duration::ZERO,
        paced,
        single,
        single_cpu,
        batched,
        batched_cpu,
    })
}

/// Waits until the stopped daemon's store has finished with the disk, so that the baselines
/// measure the disk and not the daemon's leftovers: its checkpointer's last checkpoint (it
/// empties or removes the WAL at `wal`, which can have grown to a GiB under load), then the
/// writeback of everything dirty. Gives up after [`DRAIN_TIMEOUT`]. Returns how long it took.
fn settle(wal: &Path) -> Duration {
    let started = Instant::now();
    eprintln!("waiting for the daemon's last checkpoint and the writeback");
    while std::fs::metadata(wal).is_ok_and(|m| m.len() > 0) && started.elapsed() < DRAIN_TIMEOUT {
        std::thread::sleep(Duration::from_millis(50));
    }
    nix::unistd::sync();
    started.elapsed()
}

/// The size of the daemon's WAL file now (0 if there is none).
fn wal_size(daemon: &DaemonHandle) -> u64 {
    std::fs::metadata(wal_of(daemon.store.path())).map_or(0, |m| m.len())
}

/// The WAL file of the SQLite database at `database`.
fn wal_of(database: &Path) -> PathBuf {
    let mut wal = database.as_os_str().to_owned();
    wal.push("-wal");
    PathBuf::from(wal)
}

fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn print_report(plan: &Plan, m: &Machine, d: &DaemonFigures, b: &BaselineFigures) {
    let accepted_rate = d.burst.accepted_per_sec();
    let single_rate = b.single.rows_per_sec();
    let batched_rate = b.batched.rows_per_sec();
    let mut burst_lat = d.burst.latencies.clone();
    let burst_sum = Summary::of(&mut burst_lat);
    let mut paced_lat = d.paced.latencies.clone();
    let paced_sum = Summary::of(&mut paced_lat);
    let mut service = d.paced.service_times.clone();
    let service_sum = Summary::of(&mut service);
    let mut lags = d.paced.dispatch_lags.clone();
    let lag_sum = Summary::of(&mut lags);
    let fmt4 = |s: Option<Summary>| {
        s.map_or("n/a".into(), |s| {
            format!(
                "{} / {} / {} / {} ms",
                ms(s.p50),
                ms(s.p90),
                ms(s.p99),
                ms(s.max)
            )
        })
    };

    println!("## Webhook ingestion, {}", m.date);
    println!();
    println!(
        "Machine: {} × {}, {}, data on {}; load average at start {}. Checkout at run time: {}.",
        m.cpus, m.cpu_model, m.kernel, m.data_fs, m.loadavg, m.commit
    );
    println!(
        "Run: {} webhooks over {} connections; {} s of quiet; {}/s offered for {} s; {} chats; daemon logs {}.",
        per_sec(plan.webhooks as f64),
        plan.connections,
        plan.pause.as_secs_f64(),
        per_sec(plan.rate),
        plan.seconds,
        plan.chats,
        if plan.daemon_logs {
            "on (JSON, info, to a file)"
        } else {
            "off"
        }
    );
    println!();
    println!("| figure | value |");
    println!("|---|---|");
    println!(
        "| daemon: accepted webhooks/s ({} connections, closed loop) | **{}** ({} of {} in {:.2} s; non-200: {}) |",
        plan.connections,
        per_sec(accepted_rate),
        d.burst.accepted,
        d.burst.sent,
        d.burst.elapsed.as_secs_f64(),
        d.burst.failures.describe()
    );
    println!(
        "| closed-loop latency p50 / p90 / p99 / max | {} |",
        fmt4(burst_sum)
    );
    println!(
        "| daemon at {}/s offered for {} s (open loop, from due time): p50 / p90 / p99 / max | **{}** ({} of {} accepted; non-200: {}) |",
        per_sec(plan.rate),
        plan.seconds,
        fmt4(paced_sum),
        d.paced.accepted,
        plan.paced,
        d.paced.failures.describe()
    );
    println!(
        "| same, from actual send (server's share) p50 / p90 / p99 / max | {} |",
        fmt4(service_sum)
    );
    let mut flushes = d.paced_flushes.clone();
    let stalls = disk_stalls(&flushes);
    println!(
        "| the disk meanwhile: 4 KiB overwrite + fdatasync every {} ms: p50 / p90 / p99 / max; over {} ms | {}; {} of {} ({} ms in all) |",
        FLUSH_PROBE_INTERVAL.as_millis(),
        AIM_P99.as_millis(),
        fmt4(Summary::of(&mut flushes)),
        stalls.len(),
        flushes.len(),
        stalls.iter().sum::<Duration>().as_millis(),
    );
    println!(
        "| late sends (> {} ms behind schedule) | {} of {} (lag p99 {} ms, max {} ms) |",
        LATE.as_millis(),
        d.paced.late(LATE),
        d.paced.sent,
        lag_sum.map_or("n/a".into(), |s| ms(s.p99)),
        lag_sum.map_or("n/a".into(), |s| ms(s.max)),
    );
    for (phase, usage, accepted) in [
        ("throughput", &d.burst_cpu, d.burst.accepted),
        ("latency", &d.paced_cpu, d.paced.accepted),
    ] {
        println!(
            "| daemon CPU per accepted webhook, {phase} phase: all daemon threads / store-writer | {} / {} µs |",
            micros_per(daemon_cpu(usage), accepted),
            micros_per(
                usage.groups.get(WRITER_THREAD).copied().unwrap_or_default(),
                accepted
            ),
        );
    }
    println!(
        "| before the baselines: the stopped daemon's last checkpoint and writeback | {:.1} s |",
        b.settled.as_secs_f64()
    );
    println!(
        "| baseline (c): 1 insert per transaction at {}/s for {} s, WAL + synchronous=FULL (from due time): p50 / p90 / p99 / max | {} |",
        per_sec(plan.rate),
        plan.seconds,
        fmt4(b.paced)
    );
    if let (Some(daemon), Some(raw)) = (paced_sum, b.paced) {
        println!(
            "| daemon p99 at {}/s ÷ baseline (c) p99 | **{:.2}×** |",
            per_sec(plan.rate),
            daemon.p99.as_secs_f64() / raw.p99.as_secs_f64().max(f64::EPSILON)
        );
    }
    let mib = |bytes: u64| format!("{:.0}", bytes as f64 / f64::from(1 << 20));
    println!(
        "| WAL file at the start → end of the throughput phase; of the latency phase | {} → {} MiB; {} → {} MiB |",
        mib(d.wal_sizes[0].0),
        mib(d.wal_sizes[0].1),
        mib(d.wal_sizes[1].0),
        mib(d.wal_sizes[1].1),
    );
    let kib_per = |usage: &Usage, n: usize| {
        format!(
            "{:.1}",
            usage.written_bytes as f64 / 1024.0 / n.max(1) as f64
        )
    };
    println!(
        "| written to storage per accepted webhook (this process, replies included): throughput / latency phase; per row, baseline (a) | {} / {} KiB; {} KiB |",
        kib_per(&d.burst_cpu, d.burst.accepted),
        kib_per(&d.paced_cpu, d.paced.accepted),
        kib_per(&b.single_cpu, b.single.rows),
    );
    println!(
        "| baseline (a): 1 insert per transaction, WAL + synchronous=FULL | {} rows/s ({} rows in {:.2} s) |",
        per_sec(single_rate),
        b.single.rows,
        b.single.elapsed.as_secs_f64()
    );
    println!(
        "| baseline (b): {} inserts per transaction, WAL + synchronous=FULL | {} rows/s ({} rows in {:.2} s) |",
        b.batched.per_transaction,
        per_sec(batched_rate),
        b.batched.rows,
        b.batched.elapsed.as_secs_f64()
    );
    println!(
        "| daemon accepted/s ÷ baseline (a) | **{:.2}×** |",
        accepted_rate / single_rate.max(f64::EPSILON)
    );
    println!(
        "| daemon accepted/s ÷ baseline (b) | **{:.3}×** |",
        accepted_rate / batched_rate.max(f64::EPSILON)
    );
    println!();
    let verdict = |ok: bool| if ok { "met" } else { "missed" };
    let latency_met = paced_sum.is_some_and(|s| s.p99 < AIM_P99)
        && d.paced.failures.total() == 0
        && (plan.rate - 1000.0).abs() < f64::EPSILON;
    // A stall of the disk holds every commit on it, so a miss says whether the probe saw one.
    let disk_note = if latency_met {
        String::new()
    } else if stalls.is_empty() {
        " (the disk's own flushes stayed under that meanwhile)".to_owned()
    } else {
        format!(
            " (the disk's own flushes took over {} ms {} times meanwhile, {} ms in all)",
            AIM_P99.as_millis(),
            stalls.len(),
            stalls.iter().sum::<Duration>().as_millis()
        )
    };
    println!(
        "Aims: ≥ {} accepted/s: {}; p99 < {} ms at {}/s: {}{}.",
        per_sec(AIM_ACCEPTED_PER_SEC),
        verdict(accepted_rate >= AIM_ACCEPTED_PER_SEC && d.burst.failures.total() == 0),
        AIM_P99.as_millis(),
        per_sec(plan.rate),
        verdict(latency_met),
        disk_note
    );
    println!();
    println!(
        "Store after the run: {} webhook events, {} inbound messages; turns {}; deliveries {}; \
         the Linq stand-in answered {} send requests and {} typing/read calls ({} to unexpected routes).",
        d.check.events,
        d.check.inbound_messages,
        describe_counts(&d.check.turns),
        describe_counts(&d.check.deliveries),
        d.sink_sends,
        d.sink_other_calls,
        d.sink_unexpected,
    );
    println!();
    println!(
        "Reply pipeline (gate, turns, deliveries): after the warm-up {}; after the throughput \
         phase {}; after the latency phase {}.",
        d.drain_after_warmup.describe(),
        d.drain_after_burst.describe(),
        d.drain_after_paced.describe()
    );
    if d.drain_after_warmup.open > 0 || d.drain_after_burst.open > 0 {
        println!(
            "A phase that starts before the pipeline drained runs on top of its backlog, so its \
             figures are worse than the offered load alone would make them."
        );
    }
    println!();
    print_cpu(&[
        ("throughput", &d.burst_cpu),
        ("latency", &d.paced_cpu),
        ("baseline (a)", &b.single_cpu),
        ("baseline (b)", &b.batched_cpu),
    ]);
}

/// The daemon's store writer thread (named by `picortex::store`).
const WRITER_THREAD: &str = "store-writer";
/// Threads of this binary that are not the daemon: the load generator's runtime (which also
/// serves the Linq stand-in), the open-loop dispatcher and the main thread.
const NOT_DAEMON: &[&str] = &[
    "loadgen-rt",
    "dispatcher",
    "flush-probe",
    picortex_bench::cpu::MAIN_THREAD,
];

/// The probe's flushes that took longer than the latency aim: stalls of the disk itself.
fn disk_stalls(flushes: &[Duration]) -> Vec<Duration> {
    flushes.iter().copied().filter(|f| *f > AIM_P99).collect()
}

/// CPU time of the daemon's threads: everything in the process but the load generator.
fn daemon_cpu(usage: &Usage) -> Duration {
    usage
        .groups
        .iter()
        .filter(|(name, _)| !NOT_DAEMON.contains(&name.as_str()))
        .map(|(_, t)| *t)
        .sum()
}

fn micros_per(total: Duration, count: usize) -> String {
    if count == 0 {
        return "n/a".into();
    }
    format!("{:.0}", total.as_secs_f64() * 1e6 / count as f64)
}

fn describe_counts(rows: &[(String, i64)]) -> String {
    if rows.is_empty() {
        return "none".into();
    }
    rows.iter()
        .map(|(s, n)| format!("{s} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// CPU seconds (and share of one core) by thread group for each phase.
fn print_cpu(phases: &[(&str, &Usage)]) {
    let mut groups: Vec<&String> = phases
        .iter()
        .flat_map(|(_, u)| u.groups.iter())
        .filter(|(_, t)| !t.is_zero())
        .map(|(g, _)| g)
        .collect();
    groups.sort();
    groups.dedup();
    let cell = |used: Duration, wall: Duration| {
        format!(
            "{:.2} s ({:.0}%)",
            used.as_secs_f64(),
            100.0 * used.as_secs_f64() / wall.as_secs_f64().max(f64::EPSILON)
        )
    };
    println!("CPU time by thread (share of one core over the phase's wall time):");
    println!();
    let header: Vec<String> = phases
        .iter()
        .map(|(name, u)| format!("{name} ({:.2} s)", u.wall.as_secs_f64()))
        .collect();
    println!("| thread | {} |", header.join(" | "));
    println!("|---|{}", "---|".repeat(phases.len()));
    for group in groups {
        let cells: Vec<String> = phases
            .iter()
            .map(|(_, u)| cell(u.groups.get(group).copied().unwrap_or_default(), u.wall))
            .collect();
        println!("| {group} | {} |", cells.join(" | "));
    }
    let row = |label: &str, f: &dyn Fn(&Usage) -> Duration| {
        let cells: Vec<String> = phases.iter().map(|(_, u)| cell(f(u), u.wall)).collect();
        println!("| {label} | {} |", cells.join(" | "));
    };
    row("this process", &|u| u.process);
    row("other processes on the host", &|u| u.others());
}
