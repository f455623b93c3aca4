//! `gate`: what the attention gate costs per message, on this machine.
//!
//! 1. **Rules alone.** `picortex::gate::decide` in a tight loop over a realistic mix (group
//!    chatter in `mentions-only`, mentions and aliases, inline replies to the bot, owner and
//!    non-owner commands in both forms, attachments, DMs in `always`, `silent`), each call timed
//!    on its own with `Instant`.
//! 2. **The gatekeeper in the running daemon.** `picortex::daemon::start_with_agent` with an
//!    agent that notes when it is called; 1,000 signed group-message webhooks over 20 group chats
//!    in the default `mentions-only` mode, one at a time. Per message the daemon stores
//!    `gate_latency_us` (facts read + rules, measured by the gatekeeper) and `gate_at` (ms); for
//!    answered messages the agent's call time gives webhook 200 → agent called. Then five chats
//!    are switched to `discriminate` by the owner and 200 chatter messages are decided by the
//!    model (mock-model, no delay), one at a time.
//! 3. **The discriminator against mock-model.** `Discriminator::decide` (script answering
//!    `{"should_respond": false, …}`) next to the same HTTP POST made raw with reqwest (the same
//!    body, pre-serialized), interleaved in one run; once with no model delay and once with a
//!    fixed 50 ms delay.
//!
//! `cargo run --release -p picortex-bench --bin gate [-- --help]`.

use std::collections::HashMap;
use std::hint::black_box;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use clap::Parser;
use futures::future::BoxFuture;
use linq::webhook::{self, WebhookSecret};
use mock_model::{Script, Step};
use picortex::agent::{Agent, AgentError, TurnAccounting, TurnReply, TurnRequest};
use picortex::config::{AgentKind, Config, LinqConfig};
use picortex::daemon::DaemonHandle;
use picortex::gate::discriminator::{
    ANTHROPIC_VERSION, ContextMessage, DEFAULT_MODEL, DEFAULT_PROMPT, Discriminator,
    DiscriminatorConfig, DiscriminatorInput, SYSTEM_PROMPT, parse_decision, render_prompt,
};
use picortex::gate::{AttentionMode, BotIdentity, ChatFacts, Incoming, Verdict, decide};
use picortex::store::gate::PendingMessage;
use picortex_bench::machine::Machine;
use picortex_bench::sink::Sink;
use picortex_bench::stats::Summary;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use rusqlite::OptionalExtension as _;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// The aims from issue 5.
const AIM_RULES_P99: Duration = Duration::from_millis(1);
const AIM_MODEL_OVERHEAD: Duration = Duration::from_millis(10);

const BOT_LINE: &str = "+12025550100";
const OWNER: &str = "+15550000001";
const ALICE: &str = "+15550000002";
const BOB: &str = "+15550000003";
const CAROL: &str = "+15550000004";
const NO: &str = r#"{"should_respond": false, "reason": "x"}"#;

const CHATTER: &[&str] = &[
    "anyone for lunch?",
    "pie sounds good, see https://pi.dev later",
    "ok see you all at 1",
    "did you see the game last night? unbelievable finish, I was shouting at the tv",
    "I'm running 10 minutes late, save me a seat",
    "lol",
    "can someone send the photos from saturday",
    "the deploy went fine btw, thanks everyone for staying late",
    "who's bringing the projector tomorrow?",
    "So here's the plan for the weekend: we leave Friday around 6, stop for dinner somewhere \
     near the lake, then drive the last two hours to the cabin. Saturday is the long hike if \
     the weather holds, Sunday we clean up and head back before noon. Bring boots and a warm \
     layer, it gets cold at night. Let me know by Wednesday if you're in.",
];
const MENTIONS: &[&str] = &[
    "pi, what's 2+2?",
    "@pi can you summarize the thread?",
    "hey robo, remind me what we decided about the venue",
    "Pi: write a haiku about lunch",
    "what do you think, pi?",
];
const REPLIES: &[&str] = &["thanks!", "and what about tomorrow?", "hmm, are you sure?"];

#[derive(Debug, Parser)]
#[command(about = "Attention gate decision cost of the picortex daemon")]
struct Args {
    /// Timed calls of `gate::decide` (after as many again for warm-up).
    #[arg(long, default_value_t = 200_000)]
    decide_calls: usize,
    /// Group messages sent to the daemon in mentions-only mode.
    #[arg(long, default_value_t = 1000)]
    messages: usize,
    /// Group chats they are spread over.
    #[arg(long, default_value_t = 20)]
    chats: usize,
    /// Chatter messages decided by the model in the daemon (discriminate mode, 5 chats).
    #[arg(long, default_value_t = 200)]
    model_messages: usize,
    /// Discriminator calls (and as many raw POSTs) with no model delay.
    #[arg(long, default_value_t = 500)]
    discriminator_calls: usize,
    /// Discriminator calls (and as many raw POSTs) with the fixed model delay.
    #[arg(long, default_value_t = 400)]
    delayed_calls: usize,
    /// The fixed model delay, ms.
    #[arg(long, default_value_t = 50)]
    delay_ms: u64,
    /// Where the temporary data directory is created (not a tmpfs)
    /// [default: <workspace>/target/bench-tmp].
    #[arg(long)]
    tmp_dir: Option<std::path::PathBuf>,
    /// Do not write the daemon's JSON logs (by default at info, to daemon.log in the
    /// temporary directory).
    #[arg(long)]
    no_daemon_logs: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.chats >= 5, "--chats must be at least 5");
    let tmp_root = args.tmp_dir.clone().unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("target")
            .join("bench-tmp")
    });
    std::fs::create_dir_all(&tmp_root)
        .with_context(|| format!("creating {}", tmp_root.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix("gate-")
        .tempdir_in(&tmp_root)
        .with_context(|| format!("creating a temporary directory in {}", tmp_root.display()))?;
    let machine = Machine::describe(tmp.path());
    if !args.no_daemon_logs {
        picortex_bench::harness::log_daemon_to(tmp.path())?;
    }

    eprintln!("rules: {} timed calls of gate::decide", args.decide_calls);
    let rules = measure_rules(args.decide_calls.max(1));

    let (daemon_rt, load_rt) = picortex_bench::harness::runtimes()?;
    let model = load_rt.block_on(async {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        mock_model::start(Script::new().default_text(NO), listener).await
    })?;
    let daemon = measure_daemon(&args, tmp.path(), &model, &daemon_rt, &load_rt)?;
    let model_calls = load_rt.block_on(measure_discriminator(&args, &model))?;
    load_rt.block_on(model.shutdown());
    drop(daemon_rt);
    drop(load_rt);
    print_report(&args, &machine, &rules, &daemon, &model_calls);
    Ok(())
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn bot() -> BotIdentity {
    BotIdentity {
        name: "pi".into(),
        aliases: vec!["robo".into()],
    }
}

fn group_facts() -> ChatFacts {
    ChatFacts {
        is_group: true,
        display_name: Some("Climbing crew".into()),
        participants: vec![ALICE.into(), BOB.into(), CAROL.into(), OWNER.into()],
        owner: Some(OWNER.into()),
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Rules alone
// ---------------------------------------------------------------------------------------------

struct RuleCase {
    kind: &'static str,
    mode: AttentionMode,
    chat: ChatFacts,
    msg: Incoming,
}

struct RuleFigures {
    all: Summary,
    by_kind: Vec<(&'static str, Summary)>,
    clock_floor: Summary,
    cases: usize,
    ask_model: usize,
    mean_batched: Duration,
}

fn rule_cases() -> Vec<RuleCase> {
    let group = group_facts();
    let dm = ChatFacts {
        is_group: false,
        display_name: None,
        participants: vec![ALICE.into()],
        owner: Some(OWNER.into()),
    };
    let msg = |sender: &str, text: &str| Incoming {
        sender: sender.into(),
        text: text.into(),
        has_non_text: false,
        replies_to_bot: false,
    };
    let mut cases = Vec::new();
    let mut add = |kind, mode, chat: &ChatFacts, m: Incoming| {
        cases.push(RuleCase {
            kind,
            mode,
            chat: chat.clone(),
            msg: m,
        });
    };
    let mo = AttentionMode::MentionsOnly;
    for (i, text) in CHATTER.iter().enumerate() {
        let sender = [ALICE, BOB, CAROL, OWNER][i % 4];
        add("chatter (skip)", mo, &group, msg(sender, text));
    }
    for text in MENTIONS {
        add("mention", mo, &group, msg(BOB, text));
    }
    for text in REPLIES {
        let mut m = msg(CAROL, text);
        m.replies_to_bot = true;
        add("reply to the bot", mo, &group, m);
    }
    for (sender, text) in [
        (OWNER, "/picortex status"),
        (OWNER, "/picortex attention discriminate quiet"),
        (OWNER, "pi, be quieter here"),
        (OWNER, "hey pi louder please"),
        (ALICE, "/picortex louder"),
        (ALICE, "pi, only answer when mentioned"),
    ] {
        add("command", mo, &group, msg(sender, text));
    }
    let mut attachment = msg(ALICE, "");
    attachment.has_non_text = true;
    add("attachment only", mo, &group, attachment);
    add(
        "DM, always",
        AttentionMode::Always,
        &dm,
        msg(ALICE, CHATTER[3]),
    );
    add(
        "DM, always",
        AttentionMode::Always,
        &dm,
        msg(ALICE, CHATTER[9]),
    );
    add(
        "silent",
        AttentionMode::Silent,
        &group,
        msg(BOB, "pi, are you there?"),
    );
    add(
        "mention",
        AttentionMode::Discriminate,
        &group,
        msg(BOB, MENTIONS[2]),
    );
    cases
}

fn measure_rules(calls: usize) -> RuleFigures {
    let cases = rule_cases();
    let bot = bot();
    let mut ask_model = 0;
    // Warm-up, and the batched mean (one Instant pair around all calls).
    let started = Instant::now();
    for i in 0..calls {
        let c = &cases[i % cases.len()];
        let v = decide(
            black_box(c.mode),
            black_box(&bot),
            black_box(&c.chat),
            black_box(&c.msg),
        );
        if matches!(v, Verdict::AskModel) {
            ask_model += 1;
        }
        black_box(v);
    }
    let mean_batched = started.elapsed() / u32::try_from(calls).unwrap_or(u32::MAX);
    let mut all = Vec::with_capacity(calls);
    let mut by_kind: HashMap<&'static str, Vec<Duration>> = HashMap::new();
    let mut floor = Vec::with_capacity(calls);
    for i in 0..calls {
        let c = &cases[i % cases.len()];
        let t0 = Instant::now();
        let v = decide(
            black_box(c.mode),
            black_box(&bot),
            black_box(&c.chat),
            black_box(&c.msg),
        );
        let took = t0.elapsed();
        black_box(v);
        all.push(took);
        by_kind.entry(c.kind).or_default().push(took);
        let t0 = Instant::now();
        floor.push(black_box(t0).elapsed());
    }
    let summary = |v: &mut Vec<Duration>| {
        Summary::of(v).unwrap_or(Summary {
            count: 0,
            p50: Duration::ZERO,
            p90: Duration::ZERO,
            p99: Duration::ZERO,
            p999: Duration::ZERO,
            max: Duration::ZERO,
            mean: Duration::ZERO,
        })
    };
    let mut kinds: Vec<(&'static str, Summary)> = by_kind
        .into_iter()
        .map(|(k, mut v)| (k, summary(&mut v)))
        .collect();
    kinds.sort_by_key(|(k, _)| *k);
    RuleFigures {
        all: summary(&mut all),
        by_kind: kinds,
        clock_floor: summary(&mut floor),
        cases: cases.len(),
        ask_model,
        mean_batched,
    }
}

// ---------------------------------------------------------------------------------------------
// 2. The gatekeeper in the daemon
// ---------------------------------------------------------------------------------------------

/// Notes when the agent is called for each message (by its text) and answers "ok".
#[derive(Default)]
struct Recorder {
    waiters: Mutex<HashMap<String, oneshot::Sender<Instant>>>,
}

impl Recorder {
    fn expect(&self, text: &str) -> oneshot::Receiver<Instant> {
        let (tx, rx) = oneshot::channel();
        lock(&self.waiters).insert(text.to_owned(), tx);
        rx
    }
}

impl Agent for Recorder {
    fn name(&self) -> &'static str {
        "recorder"
    }

    fn run_turn(&self, request: TurnRequest) -> BoxFuture<'_, Result<TurnReply, AgentError>> {
        let called = Instant::now();
        {
            let mut waiters = lock(&self.waiters);
            for m in &request.messages {
                if let Some(w) = waiters.remove(&m.text) {
                    let _ = w.send(called);
                }
            }
        }
        Box::pin(async {
            Ok(TurnReply {
                text: "ok".into(),
                attachments: Vec::new(),
                accounting: TurnAccounting::default(),
            })
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Chatter,
    Mention,
    ReplyToBot,
    OwnerCommand,
    OtherCommand,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Chatter => "chatter",
            Kind::Mention => "mention",
            Kind::ReplyToBot => "reply to the bot",
            Kind::OwnerCommand => "owner command",
            Kind::OtherCommand => "someone else's command",
        }
    }
}

/// One message sent to the daemon.
struct Sent {
    kind: Kind,
    /// Wall clock (ms since the epoch, fractional) when its 200 came back.
    acked_wall_ms: f64,
    /// Webhook 200 → agent called, for answered messages.
    to_agent: Option<Duration>,
    /// The webhook POST until its 200 (ingest: verify, parse, one durable commit).
    ingest: Duration,
}

/// What the store says about one message.
struct Decided {
    status: String,
    rule: String,
    latency_us: i64,
    gate_at: i64,
}

struct DaemonFigures {
    sent: HashMap<String, Sent>,
    decided: HashMap<String, Decided>,
    model_decided: Vec<Decided>,
    elapsed: Duration,
    model_elapsed: Duration,
    chats: usize,
    breakdown: FactsBreakdown,
}

struct GroupChat {
    id: String,
    handles: HashMap<&'static str, String>,
}

impl GroupChat {
    fn new() -> Self {
        GroupChat {
            id: uuid::Uuid::new_v4().to_string(),
            handles: [OWNER, ALICE, BOB, CAROL]
                .into_iter()
                .map(|h| (h, uuid::Uuid::new_v4().to_string()))
                .collect(),
        }
    }
}

/// A signed 2026-02-03 `message.received` in a group chat. Returns the message id, the
/// headers and the body.
fn group_webhook(
    secret: &WebhookSecret,
    chat: &GroupChat,
    sender: &'static str,
    text: &str,
    reply_to: Option<&str>,
) -> anyhow::Result<(String, HeaderMap, Bytes)> {
    let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .context("formatting the time")?;
    let event_id = uuid::Uuid::new_v4().to_string();
    let message_id = uuid::Uuid::new_v4().to_string();
    let handle = |id: &str, number: &str, is_me: bool| {
        json!({
            "id": id, "handle": number, "service": "iMessage",
            "joined_at": "2026-01-04T05:48:51.321Z", "is_me": is_me,
            "left_at": null, "status": "active"
        })
    };
    let body = json!({
        "api_version": "v3",
        "webhook_version": "2026-02-03",
        "event_type": "message.received",
        "event_id": event_id,
        "created_at": now,
        "trace_id": uuid::Uuid::new_v4().simple().to_string(),
        "partner_id": "bench-partner",
        "data": {
            "id": message_id,
            "direction": "inbound",
            "service": "iMessage",
            "chat": {
                "id": chat.id,
                "is_group": true,
                "health_status": {
                    "status": "HEALTHY",
                    "doc_url": "https://docs.linqapp.com/guides/chats/chat-health",
                    "updated_at": now
                },
                "owner_handle": handle("bot-handle", BOT_LINE, true)
            },
            "sender_handle": handle(&chat.handles[sender], sender, false),
            "parts": [{"type": "text", "value": text}],
            "effect": null,
            "reply_to": reply_to.map(|id| json!({"message_id": id, "part_index": 0})),
            "sent_at": now,
            "delivered_at": null,
            "read_at": null
        }
    });
    let body = Bytes::from(serde_json::to_vec(&body)?);
    let signature = webhook::sign(secret, &event_id, timestamp, &body);
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    for (name, value) in [
        (webhook::HEADER_ID, event_id),
        (webhook::HEADER_TIMESTAMP, timestamp.to_string()),
        (webhook::HEADER_SIGNATURE, signature),
    ] {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_str(&value)?,
        );
    }
    Ok((message_id, headers, body))
}

/// A small deterministic generator (xorshift), so every run sends the same mix.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn wall_ms() -> f64 {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos() as f64 / 1e6
}

struct Poster {
    client: reqwest::Client,
    url: String,
    secret: WebhookSecret,
}

impl Poster {
    /// POSTs one group message and returns (message id, the instant and wall time of its 200).
    async fn post(
        &self,
        chat: &GroupChat,
        sender: &'static str,
        text: &str,
        reply_to: Option<&str>,
    ) -> anyhow::Result<(String, Instant, f64, Duration)> {
        let (id, headers, body) = group_webhook(&self.secret, chat, sender, text, reply_to)?;
        let sent = Instant::now();
        let resp = self
            .client
            .post(&self.url)
            .headers(headers)
            .body(body)
            .send()
            .await?;
        let (acked, wall) = (Instant::now(), wall_ms());
        let status = resp.status();
        let _ = resp.bytes().await;
        anyhow::ensure!(status.as_u16() == 200, "webhook answered {status}");
        Ok((id, acked, wall, acked - sent))
    }
}

fn measure_daemon(
    args: &Args,
    tmp: &Path,
    model: &mock_model::MockModelHandle,
    daemon_rt: &tokio::runtime::Runtime,
    load_rt: &tokio::runtime::Runtime,
) -> anyhow::Result<DaemonFigures> {
    let sink = load_rt.block_on(Sink::start())?;
    let secret = WebhookSecret::generate();
    let mut config = Config {
        port: 0,
        data_dir: tmp.join("data"),
        workspace_root: tmp.join("chats"),
        agent: AgentKind::Echo,
        owner: Some(OWNER.into()),
        bot_name: "pi".into(),
        linq: LinqConfig {
            api_key: format!("bench_{}", uuid::Uuid::new_v4().simple()),
            base_url: sink.base_url(),
            webhook_secret: secret.as_str().to_owned(),
            phone: Some(BOT_LINE.to_owned()),
        },
        ..Config::default()
    };
    config.attention.aliases = vec!["robo".into()];
    config.agents.anthropic_base_url = Some(model.base_url());
    config.agents.anthropic_api_key = Some("k".into());
    let recorder = Arc::new(Recorder::default());
    let daemon = daemon_rt.block_on(async {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        picortex::daemon::start_with_agent(config, listener, recorder.clone()).await
    })?;
    let poster = Poster {
        client: reqwest::Client::builder()
            .http1_only()
            .no_proxy()
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(30))
            .build()?,
        url: format!("{}/api/linq/inbound", daemon.base_url()),
        secret,
    };
    let result = load_rt.block_on(drive_daemon(args, &daemon, &poster, &recorder));
    load_rt.block_on(daemon.shutdown());
    sink.stop();
    result
}

async fn drive_daemon(
    args: &Args,
    daemon: &DaemonHandle,
    poster: &Poster,
    recorder: &Recorder,
) -> anyhow::Result<DaemonFigures> {
    let chats: Vec<GroupChat> = (0..args.chats).map(|_| GroupChat::new()).collect();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut sent = HashMap::new();
    eprintln!(
        "daemon, mentions-only: {} group messages over {} chats, one at a time",
        args.messages, args.chats
    );
    let started = Instant::now();
    for i in 0..args.messages {
        let chat = &chats[i % chats.len()];
        let roll = rng.below(100);
        let anyone = [ALICE, BOB, CAROL, OWNER][rng.below(4)];
        let mut kind = match roll {
            0..60 => Kind::Chatter,
            60..80 => Kind::Mention,
            80..92 => Kind::ReplyToBot,
            92..96 => Kind::OwnerCommand,
            _ => Kind::OtherCommand,
        };
        let bot_message = if kind == Kind::ReplyToBot {
            let id = chat.id.clone();
            let found: Option<String> = daemon
                .store
                .read(move |c| {
                    Ok(c.query_row(
                        "SELECT id FROM messages WHERE chat_id = ?1 AND direction = 'outbound'
                         ORDER BY rowid DESC LIMIT 1",
                        [id],
                        |r| r.get(0),
                    )
                    .optional()?)
                })
                .await?;
            if found.is_none() {
                kind = Kind::Mention;
            }
            found
        } else {
            None
        };
        // A unique tag makes each answered message recognisable in the agent's turn.
        let (sender, text) = match kind {
            Kind::Chatter => (
                anyone,
                format!("{} [{i}]", CHATTER[rng.below(CHATTER.len())]),
            ),
            Kind::Mention => (
                anyone,
                format!("{} [{i}]", MENTIONS[rng.below(MENTIONS.len())]),
            ),
            Kind::ReplyToBot => (
                anyone,
                format!("{} [{i}]", REPLIES[rng.below(REPLIES.len())]),
            ),
            Kind::OwnerCommand => (
                OWNER,
                ["/picortex status", "/picortex help"][rng.below(2)].to_owned(),
            ),
            Kind::OtherCommand => (ALICE, "/picortex attention always".to_owned()),
        };
        let answered = matches!(kind, Kind::Mention | Kind::ReplyToBot);
        let called = answered.then(|| recorder.expect(&text));
        let (id, acked, acked_wall_ms, ingest) = poster
            .post(chat, sender, &text, bot_message.as_deref())
            .await?;
        let to_agent = match called {
            Some(rx) => Some(
                tokio::time::timeout(Duration::from_secs(20), rx)
                    .await
                    .with_context(|| format!("message {i} ({text:?}) was not answered"))?
                    .context("the recorder dropped the waiter")?
                    .saturating_duration_since(acked),
            ),
            None => None,
        };
        sent.insert(
            id,
            Sent {
                kind,
                acked_wall_ms,
                to_agent,
                ingest,
            },
        );
    }
    wait_until_decided(daemon).await?;
    let elapsed = started.elapsed();
    let decided = read_decisions(daemon).await?;
    let breakdown = measure_facts(daemon).await?;

    // Discriminate mode in five chats: the owner switches them, then chatter, one at a time,
    // each decided before the next is sent.
    eprintln!(
        "daemon, discriminate: {} chatter messages over 5 chats, one decision at a time",
        args.model_messages
    );
    for chat in chats.iter().take(5) {
        let (id, ..) = poster
            .post(chat, OWNER, "/picortex attention discriminate", None)
            .await?;
        wait_for(daemon, &id).await?;
    }
    let started = Instant::now();
    let mut model_ids = Vec::new();
    for i in 0..args.model_messages {
        let chat = &chats[i % 5];
        let sender = [ALICE, BOB, CAROL][rng.below(3)];
        let text = format!("{} [m{i}]", CHATTER[rng.below(CHATTER.len())]);
        let (id, ..) = poster.post(chat, sender, &text, None).await?;
        wait_for(daemon, &id).await?;
        model_ids.push(id);
    }
    let model_elapsed = started.elapsed();
    let all = read_decisions(daemon).await?;
    let model_decided = model_ids
        .iter()
        .filter_map(|id| all.get(id))
        .map(|d| Decided {
            status: d.status.clone(),
            rule: d.rule.clone(),
            latency_us: d.latency_us,
            gate_at: d.gate_at,
        })
        .collect();
    Ok(DaemonFigures {
        sent,
        decided,
        model_decided,
        elapsed,
        model_elapsed,
        chats: args.chats,
        breakdown,
    })
}

/// Where the gatekeeper's per-message time goes besides the rules: the hop to a reader on the
/// blocking pool (an empty `Store::read`), and the SQL of `store::gate::facts` run directly on
/// a connection of this thread for every inbound message (three passes).
struct FactsBreakdown {
    hop: Vec<Duration>,
    sql: Vec<Duration>,
}

async fn measure_facts(daemon: &DaemonHandle) -> anyhow::Result<FactsBreakdown> {
    let mut hop = Vec::with_capacity(1000);
    for _ in 0..1000 {
        let t0 = Instant::now();
        daemon.store.read(|_| Ok(())).await?;
        hop.push(t0.elapsed());
    }
    let path = daemon.store.path().to_owned();
    let sql = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<Duration>> {
        let conn = rusqlite::Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )?;
        let mut stmt = conn.prepare(
            "SELECT id, chat_id, COALESCE(sender, ''), text, parts_json, reply_to,
                    COALESCE(request_id, ''), created_at
             FROM messages WHERE direction = 'inbound' ORDER BY rowid",
        )?;
        let messages = stmt
            .query_map([], PendingMessage::from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        let mut times = Vec::with_capacity(messages.len() * 3);
        for _ in 0..3 {
            for m in &messages {
                let t0 = Instant::now();
                let facts = picortex::store::gate::facts(&conn, m, 6)
                    .map_err(|e| anyhow::anyhow!("facts: {e}"))?;
                times.push(t0.elapsed());
                black_box(facts);
            }
        }
        Ok(times)
    })
    .await??;
    Ok(FactsBreakdown { hop, sql })
}

async fn wait_until_decided(daemon: &DaemonHandle) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let pending: i64 = daemon
            .store
            .read(|c| {
                Ok(c.query_row(
                    "SELECT COUNT(*) FROM messages WHERE gate_status = 'pending'",
                    [],
                    |r| r.get(0),
                )?)
            })
            .await?;
        if pending == 0 {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{pending} messages still pending after 60 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls (every millisecond) until the gate has decided message `id`.
async fn wait_for(daemon: &DaemonHandle, id: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let id2 = id.to_owned();
        let status: Option<String> = daemon
            .store
            .read(move |c| {
                Ok(c.query_row(
                    "SELECT gate_status FROM messages WHERE id = ?1",
                    [id2],
                    |r| r.get(0),
                )
                .optional()?
                .flatten())
            })
            .await?;
        if status.is_some_and(|s| s != "pending") {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "message {id} not decided within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

async fn read_decisions(daemon: &DaemonHandle) -> anyhow::Result<HashMap<String, Decided>> {
    Ok(daemon
        .store
        .read(|c| {
            let mut stmt = c.prepare(
                "SELECT id, gate_status, COALESCE(gate_rule, ''), COALESCE(gate_latency_us, -1),
                        COALESCE(gate_at, 0)
                 FROM messages WHERE direction = 'inbound'",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    Decided {
                        status: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                        rule: r.get(2)?,
                        latency_us: r.get(3)?,
                        gate_at: r.get(4)?,
                    },
                ))
            })?;
            Ok(rows.collect::<Result<HashMap<_, _>, _>>()?)
        })
        .await?)
}

// ---------------------------------------------------------------------------------------------
// 3. The discriminator against mock-model
// ---------------------------------------------------------------------------------------------

struct ModelRound {
    delay_ms: u64,
    discriminator: Vec<Duration>,
    raw: Vec<Duration>,
    /// discriminator − raw, call by call (paired; negative counted as zero).
    paired: Vec<Duration>,
    paired_negative: usize,
}

struct ModelFigures {
    rounds: Vec<ModelRound>,
    render: Summary,
    parse: Summary,
    prompt_bytes: usize,
}

fn context_messages() -> Vec<ContextMessage> {
    [
        (ALICE, CHATTER[0], false),
        (BOB, CHATTER[1], false),
        (CAROL, MENTIONS[0], false),
        (BOT_LINE, "4. Anything else?", true),
        (ALICE, CHATTER[3], false),
        (OWNER, CHATTER[9], false),
    ]
    .into_iter()
    .map(|(sender, text, from_bot)| ContextMessage {
        sender: sender.into(),
        text: text.into(),
        from_bot,
    })
    .collect()
}

async fn measure_discriminator(
    args: &Args,
    model: &mock_model::MockModelHandle,
) -> anyhow::Result<ModelFigures> {
    let chat = group_facts();
    let bot = bot();
    let recent = context_messages();
    let incoming = Incoming {
        sender: BOB.into(),
        text: CHATTER[7].into(),
        has_non_text: false,
        replies_to_bot: false,
    };
    let input = DiscriminatorInput {
        prompt_template: DEFAULT_PROMPT,
        chat: &chat,
        bot: &bot,
        recent: &recent,
        incoming: &incoming,
    };
    let discriminator = Discriminator::new(DiscriminatorConfig::new(model.base_url(), "k"))?;
    let prompt = render_prompt(&input);
    let body = Bytes::from(serde_json::to_vec(&json!({
        "model": DEFAULT_MODEL,
        "max_tokens": 200,
        "temperature": 0,
        "system": SYSTEM_PROMPT,
        "messages": [{"role": "user", "content": prompt}],
    }))?);
    let raw_client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let url = format!("{}/v1/messages", model.base_url());
    let raw_call = || async {
        let t0 = Instant::now();
        let resp = raw_client
            .post(&url)
            .header("x-api-key", "k")
            .header("anthropic-version", ANTHROPIC_VERSION)
            .header(CONTENT_TYPE, "application/json")
            .body(body.clone())
            .send()
            .await?;
        let status = resp.status();
        let bytes = resp.bytes().await?;
        let took = t0.elapsed();
        anyhow::ensure!(status.is_success(), "raw POST answered {status}");
        black_box(bytes);
        anyhow::Ok(took)
    };
    let disc_call = || async {
        let t0 = Instant::now();
        let decision = discriminator.decide(&input).await;
        let took = t0.elapsed();
        let decision = decision.map_err(|e| anyhow::anyhow!("discriminator: {e}"))?;
        anyhow::ensure!(
            !decision.should_respond && decision.attempts == 1,
            "unexpected decision {decision:?}"
        );
        anyhow::Ok(took)
    };

    let mut rounds = Vec::new();
    for (delay_ms, calls) in [
        (0, args.discriminator_calls),
        (args.delay_ms, args.delayed_calls),
    ] {
        let step = Step::text(NO);
        let step = if delay_ms > 0 {
            step.delay_ms(delay_ms)
        } else {
            step
        };
        model
            .set_script(Script::new().default_step(step))
            .map_err(|e| anyhow::anyhow!("mock-model script: {e}"))?;
        eprintln!("discriminator: {calls} calls and {calls} raw POSTs, model delay {delay_ms} ms");
        for _ in 0..calls.min(50) {
            disc_call().await?;
            raw_call().await?;
        }
        let mut round = ModelRound {
            delay_ms,
            discriminator: Vec::with_capacity(calls),
            raw: Vec::with_capacity(calls),
            paired: Vec::with_capacity(calls),
            paired_negative: 0,
        };
        for i in 0..calls {
            // Alternate which goes first, so neither always gets the warmer connection.
            let (d, r) = if i % 2 == 0 {
                let d = disc_call().await?;
                (d, raw_call().await?)
            } else {
                let r = raw_call().await?;
                (disc_call().await?, r)
            };
            round.discriminator.push(d);
            round.raw.push(r);
            match d.checked_sub(r) {
                Some(diff) => round.paired.push(diff),
                None => {
                    round.paired.push(Duration::ZERO);
                    round.paired_negative += 1;
                }
            }
        }
        rounds.push(round);
    }
    model.clear_requests();

    // The CPU parts on their own: rendering the prompt and reading the answer.
    let mut render = Vec::with_capacity(10_000);
    let mut parse = Vec::with_capacity(10_000);
    for _ in 0..10_000 {
        let t0 = Instant::now();
        black_box(render_prompt(black_box(&input)));
        render.push(t0.elapsed());
        let t0 = Instant::now();
        let _ = black_box(parse_decision(black_box(NO)));
        parse.push(t0.elapsed());
    }
    let zero = Summary {
        count: 0,
        p50: Duration::ZERO,
        p90: Duration::ZERO,
        p99: Duration::ZERO,
        p999: Duration::ZERO,
        max: Duration::ZERO,
        mean: Duration::ZERO,
    };
    Ok(ModelFigures {
        rounds,
        render: Summary::of(&mut render).unwrap_or(zero),
        parse: Summary::of(&mut parse).unwrap_or(zero),
        prompt_bytes: prompt.len(),
    })
}

// ---------------------------------------------------------------------------------------------
// The report
// ---------------------------------------------------------------------------------------------

fn us(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e6)
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "**missed**" }
}

/// Nearest-rank percentiles of signed values.
fn signed_percentiles(mut v: Vec<f64>) -> Option<(f64, f64, f64, f64)> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let rank = (q * v.len() as f64).ceil() as usize;
        v[rank.clamp(1, v.len()) - 1]
    };
    Some((at(0.5), at(0.9), at(0.99), v[v.len() - 1]))
}

fn print_report(
    args: &Args,
    m: &Machine,
    rules: &RuleFigures,
    d: &DaemonFigures,
    model: &ModelFigures,
) {
    println!("## Attention gate, {}", m.date);
    println!();
    println!(
        "Machine: {} × {}, {}, data on {}; load average at start {}. Code: {}. Daemon logs: {}.",
        m.cpus,
        m.cpu_model,
        m.kernel,
        m.data_fs,
        m.loadavg,
        m.commit,
        if args.no_daemon_logs {
            "off"
        } else {
            "on (JSON, info, to a file)"
        }
    );
    println!();

    println!(
        "### Rules: `gate::decide`, {} calls over {} cases, each timed alone (µs)",
        rules.all.count, rules.cases
    );
    println!();
    println!("| µs | calls | p50 | p90 | p99 | p99.9 | max |");
    println!("|---|---|---|---|---|---|---|");
    let row = |name: &str, s: &Summary| {
        println!(
            "| {name} | {} | {} | {} | {} | {} | {} |",
            s.count,
            us(s.p50),
            us(s.p90),
            us(s.p99),
            us(s.p999),
            us(s.max)
        );
    };
    row("**all rule-decided messages**", &rules.all);
    for (kind, s) in &rules.by_kind {
        row(kind, s);
    }
    row("(clock floor: an empty Instant pair)", &rules.clock_floor);
    println!();
    println!(
        "Mean over {} untimed calls in one batch: {} µs. Verdicts that asked the model: {}.",
        rules.all.count,
        us(rules.mean_batched),
        rules.ask_model
    );
    println!();

    // The daemon, mentions-only.
    println!(
        "### The gatekeeper in the daemon: {} group messages over {} chats, mentions-only, one at a time ({:.1} s)",
        d.sent.len(),
        d.chats,
        d.elapsed.as_secs_f64()
    );
    println!();
    println!("| ms | messages | p50 | p90 | p99 | max |");
    println!("|---|---|---|---|---|---|");
    let mut by_kind: HashMap<Kind, Vec<Duration>> = HashMap::new();
    let mut all_latency = Vec::new();
    let mut to_agent = Vec::new();
    let mut gate_at = Vec::new();
    let mut ingest = Vec::new();
    let mut statuses: HashMap<(Kind, String, String), usize> = HashMap::new();
    let mut undecided = 0;
    for (id, s) in &d.sent {
        let Some(dec) = d.decided.get(id) else {
            undecided += 1;
            continue;
        };
        *statuses
            .entry((s.kind, dec.status.clone(), dec.rule.clone()))
            .or_default() += 1;
        if dec.latency_us >= 0 {
            let l = Duration::from_micros(dec.latency_us as u64);
            all_latency.push(l);
            by_kind.entry(s.kind).or_default().push(l);
        }
        if let Some(t) = s.to_agent {
            to_agent.push(t);
        }
        ingest.push(s.ingest);
        if dec.gate_at > 0 {
            gate_at.push(dec.gate_at as f64 - s.acked_wall_ms);
        }
    }
    let row4 = |name: &str, v: &mut Vec<Duration>| {
        let n = v.len();
        match Summary::of(v) {
            Some(s) => println!(
                "| {name} | {n} | {} | {} | {} | {} |",
                ms(s.p50),
                ms(s.p90),
                ms(s.p99),
                ms(s.max)
            ),
            None => println!("| {name} | 0 | n/a | n/a | n/a | n/a |"),
        }
    };
    let mut all_sorted = all_latency.clone();
    let all_summary = Summary::of(&mut all_sorted);
    row4(
        "**`gate_latency_us`, all (facts read + rules)**",
        &mut all_latency,
    );
    let mut kinds: Vec<_> = by_kind.into_iter().collect();
    kinds.sort_by_key(|(k, _)| k.label());
    for (kind, mut v) in kinds {
        row4(&format!("`gate_latency_us`, {}", kind.label()), &mut v);
    }
    row4(
        "of which: an empty `Store::read` (hop to the blocking pool and back)",
        &mut d.breakdown.hop.clone(),
    );
    row4(
        "of which: `store::gate::facts` SQL alone, on one connection",
        &mut d.breakdown.sql.clone(),
    );
    row4(
        "webhook 200 → agent called (answered messages: gate + turn claim)",
        &mut to_agent,
    );
    row4(
        "for scale: webhook POST → 200 (ingest, one durable commit)",
        &mut ingest,
    );
    if let Some((p50, p90, p99, max)) = signed_percentiles(gate_at.clone()) {
        println!(
            "| webhook 200 → `gate_at` (wall clock, ±1 ms: the column has ms resolution) | {} | {p50:.2} | {p90:.2} | {p99:.2} | {max:.2} |",
            gate_at.len()
        );
    }
    println!();
    let mut status_lines: Vec<String> = statuses
        .iter()
        .map(|((k, s, r), n)| format!("{} → {s}/{r} ×{n}", k.label()))
        .collect();
    status_lines.sort();
    println!(
        "Decisions: {}; undecided: {undecided}.",
        status_lines.join(", ")
    );
    println!();
    println!(
        "Aim: rule-decided p99 < {} ms: `gate::decide` {} (p99 {} µs); in the daemon (facts read + rules) {} (p99 {} ms).",
        AIM_RULES_P99.as_millis(),
        verdict(rules.all.p99 < AIM_RULES_P99 && rules.ask_model == 0),
        us(rules.all.p99),
        verdict(all_summary.is_some_and(|s| s.p99 < AIM_RULES_P99) && undecided == 0),
        all_summary.map_or("n/a".into(), |s| ms(s.p99))
    );
    println!();

    // The discriminator.
    println!(
        "### Discriminator against mock-model (loopback; prompt {} bytes), interleaved with the same POST made raw",
        model.prompt_bytes
    );
    println!();
    println!("| ms | model delay | calls | p50 | p90 | p99 | max |");
    println!("|---|---|---|---|---|---|---|");
    let mut aims = Vec::new();
    for round in &model.rounds {
        let mut disc = round.discriminator.clone();
        let mut raw = round.raw.clone();
        let mut paired = round.paired.clone();
        let (ds, rs, ps) = (
            Summary::of(&mut disc),
            Summary::of(&mut raw),
            Summary::of(&mut paired),
        );
        let line = |name: &str, s: Option<Summary>| {
            if let Some(s) = s {
                println!(
                    "| {name} | {} ms | {} | {} | {} | {} | {} |",
                    round.delay_ms,
                    s.count,
                    ms(s.p50),
                    ms(s.p90),
                    ms(s.p99),
                    ms(s.max)
                );
            }
        };
        line("`Discriminator::decide`", ds);
        line("raw reqwest POST, same body", rs);
        line(
            &format!(
                "paired difference, call by call ({} negative, counted 0)",
                round.paired_negative
            ),
            ps,
        );
        if let (Some(ds), Some(rs)) = (ds, rs) {
            let over = |a: Duration, b: Duration| a.saturating_sub(b);
            println!(
                "| **overhead: decide − raw** | {} ms | | {} | {} | {} | |",
                round.delay_ms,
                ms(over(ds.p50, rs.p50)),
                ms(over(ds.p90, rs.p90)),
                ms(over(ds.p99, rs.p99)),
            );
            aims.push((
                round.delay_ms,
                over(ds.p50, rs.p50),
                over(ds.p99, rs.p99),
                ps,
                rs,
            ));
        }
    }
    // The daemon's model-decided messages.
    let mut model_latency: Vec<Duration> = d
        .model_decided
        .iter()
        .filter(|x| x.latency_us >= 0)
        .map(|x| Duration::from_micros(x.latency_us as u64))
        .collect();
    let model_rules: Vec<&str> = d.model_decided.iter().map(|x| x.rule.as_str()).collect();
    let by_model = model_rules.iter().filter(|r| **r == "model").count();
    let skipped = d
        .model_decided
        .iter()
        .filter(|x| x.status == "skip")
        .count();
    let model_at = d.model_decided.iter().filter(|x| x.gate_at > 0).count();
    let in_daemon = Summary::of(&mut model_latency);
    if let Some(s) = in_daemon {
        println!(
            "| in the daemon: `gate_latency_us`, discriminate mode | 0 ms | {} | {} | {} | {} | {} |",
            s.count,
            ms(s.p50),
            ms(s.p90),
            ms(s.p99),
            ms(s.max)
        );
    }
    println!();
    println!(
        "CPU parts alone: `render_prompt` p50 {} µs / p99 {} µs; `parse_decision` p50 {} µs / p99 {} µs. \
         In the daemon: {} messages decided by the model ({} by rule `model`, {} skipped, {} with `gate_at`) in {:.1} s.",
        us(model.render.p50),
        us(model.render.p99),
        us(model.parse.p50),
        us(model.parse.p99),
        d.model_decided.len(),
        by_model,
        skipped,
        model_at,
        d.model_elapsed.as_secs_f64()
    );
    println!();
    let aim = AIM_MODEL_OVERHEAD.as_millis();
    let mut raw_no_delay = None;
    for (delay, over50, over99, paired, raw) in aims {
        if delay == 0 {
            raw_no_delay = Some(raw);
        }
        println!(
            "Aim: `Discriminator::decide` overhead beyond the model's latency < {aim} ms, model \
             delay {delay} ms: {} (decide − raw: p50 {} ms, p99 {} ms; paired call by call: \
             p50 {} ms, p99 {} ms).",
            verdict(over99 < AIM_MODEL_OVERHEAD),
            ms(over50),
            ms(over99),
            paired.map_or("n/a".into(), |p| ms(p.p50)),
            paired.map_or("n/a".into(), |p| ms(p.p99)),
        );
        println!();
    }
    if let (Some(gate), Some(raw)) = (in_daemon, raw_no_delay) {
        let over50 = gate.p50.saturating_sub(raw.p50);
        let over99 = gate.p99.saturating_sub(raw.p99);
        println!(
            "Aim, in the daemon (the gatekeeper's whole decision with the model, no delay): \
             {} (`gate_latency_us` − raw POST: p50 {} ms, p99 {} ms).",
            verdict(over99 < AIM_MODEL_OVERHEAD),
            ms(over50),
            ms(over99),
        );
        println!();
    }
}
