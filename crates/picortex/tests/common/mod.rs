//! Shared fixtures for picortex's integration tests: a linq-sim on loopback, a daemon wired to
//! it (in-process or as a child process), and helpers to text the bot and read its replies back
//! through the real v3 API.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use linq::webhook::WebhookSecret;
use picortex::config::Config;
use serde_json::{Value, json};
use tokio::net::TcpListener;

pub const BOT_LINE: &str = "+12025550100";

pub struct Sim {
    pub handle: linq_sim::SimHandle,
    pub api_key: String,
    pub secret: WebhookSecret,
    pub http: reqwest::Client,
}

impl Sim {
    /// Starts a simulator whose webhooks go to `webhook_url`.
    pub async fn start(webhook_url: &str) -> Sim {
        let secret = WebhookSecret::generate();
        let api_key = format!("test_{}", uuid::Uuid::new_v4().simple());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let handle = linq_sim::start(
            linq_sim::SimConfig {
                api_key: api_key.clone(),
                bot_line: BOT_LINE.into(),
                webhook: Some((webhook_url.to_owned(), secret.clone())),
                lifecycle_delay: Duration::from_millis(20),
                ..linq_sim::SimConfig::default()
            },
            listener,
        )
        .await
        .unwrap();
        Sim {
            handle,
            api_key,
            secret,
            http: reqwest::Client::new(),
        }
    }

    pub fn url(&self) -> String {
        self.handle.base_url()
    }

    /// Texts the bot through the simulator's admin API. Returns (chat_id, message_id).
    pub async fn text(&self, body: Value) -> (String, String) {
        sim_text(&self.http, &self.url(), body).await
    }

    /// The chat as the simulator's page shows it, if the simulator knows it.
    pub async fn page_chat(&self, chat_id: &str) -> Option<Value> {
        sim_page_chat(&self.http, &self.url(), chat_id).await
    }

    pub async fn dm(&self, from: &str, text: &str) -> (String, String) {
        self.text(json!({"from": from, "text": text})).await
    }

    pub async fn set_faults(&self, faults: Value) {
        let resp = self
            .http
            .put(format!("{}/sim/faults", self.url()))
            .json(&faults)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "set faults: {}", resp.status());
    }

    /// Every message of a chat, oldest first, through the real `GET /v3/chats/{id}/messages`
    /// (all pages; the API lists newest first).
    pub async fn messages(&self, chat_id: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut req = self
                .http
                .get(format!("{}/v3/chats/{chat_id}/messages", self.url()))
                .bearer_auth(&self.api_key)
                .query(&[("limit", "100")]);
            if let Some(c) = &cursor {
                req = req.query(&[("cursor", c.as_str())]);
            }
            let resp = req.send().await.unwrap();
            assert!(
                resp.status().is_success(),
                "list messages: {}",
                resp.status()
            );
            let v: Value = resp.json().await.unwrap();
            out.extend(v["messages"].as_array().cloned().unwrap_or_default());
            match v["next_cursor"].as_str() {
                Some(c) if !c.is_empty() => cursor = Some(c.to_owned()),
                _ => break,
            }
        }
        out.reverse();
        out
    }

    /// The bot's messages in a chat.
    pub async fn bot_messages(&self, chat_id: &str) -> Vec<Value> {
        self.messages(chat_id)
            .await
            .into_iter()
            .filter(|m| m["is_from_me"].as_bool() == Some(true))
            .collect()
    }
}

/// Texts the bot through the admin API of the simulator at `sim_url`, as its page does.
/// Returns (chat_id, message_id).
pub async fn sim_text(http: &reqwest::Client, sim_url: &str, body: Value) -> (String, String) {
    let resp = http
        .post(format!("{sim_url}/sim/inbound"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let v: Value = resp.json().await.unwrap();
    assert!(status.is_success(), "sim inbound failed: {status} {v}");
    (
        v["chat_id"].as_str().unwrap().to_owned(),
        v["message_id"].as_str().unwrap().to_owned(),
    )
}

/// The chat `chat_id` from the state the page of the simulator at `sim_url` shows
/// (`/sim/api/state`): its messages, typing and delivery states.
pub async fn sim_page_chat(http: &reqwest::Client, sim_url: &str, chat_id: &str) -> Option<Value> {
    let state: Value = http
        .get(format!("{sim_url}/sim/api/state"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    state["chats"]
        .as_array()?
        .iter()
        .find(|c| c["id"] == chat_id)
        .cloned()
}

pub fn text_of(message: &Value) -> String {
    message["parts"]
        .as_array()
        .map(|parts| {
            parts
                .iter()
                .filter_map(|p| p["value"].as_str())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

pub fn reply_to_of(message: &Value) -> Option<String> {
    message["reply_to"]["message_id"]
        .as_str()
        .map(str::to_owned)
}

/// A daemon configuration pointing at `sim`, with its database under `data_dir`.
pub fn daemon_config(sim: &Sim, data_dir: &Path) -> Config {
    let mut config = Config {
        data_dir: data_dir.to_owned(),
        port: 0,
        ..Config::default()
    };
    config.linq.api_key = sim.api_key.clone();
    config.linq.base_url = sim.url();
    config.linq.webhook_secret = sim.secret.as_str().to_owned();
    config.linq.phone = Some(BOT_LINE.into());
    config.outbox.backoff_base_ms = 50;
    config.outbox.backoff_max_ms = 1000;
    config.outbox.max_attempts = 50;
    config
}

/// The simulator and an in-process daemon, wired together.
pub struct Stack {
    pub sim: Sim,
    pub daemon: picortex::daemon::DaemonHandle,
    pub data: tempfile::TempDir,
}

impl Stack {
    pub async fn start() -> Stack {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Stack {
        Self::start_inner(tweak, None).await
    }

    /// With an agent the test controls.
    pub async fn start_with_agent(
        tweak: impl FnOnce(&mut Config),
        agent: std::sync::Arc<dyn picortex::agent::Agent>,
    ) -> Stack {
        Self::start_inner(tweak, Some(agent)).await
    }

    async fn start_inner(
        tweak: impl FnOnce(&mut Config),
        agent: Option<std::sync::Arc<dyn picortex::agent::Agent>>,
    ) -> Stack {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let sim = Sim::start(&format!("http://{addr}/api/linq/inbound")).await;
        let data = tempfile::tempdir().unwrap();
        let mut config = daemon_config(&sim, data.path());
        tweak(&mut config);
        let daemon = match agent {
            Some(agent) => picortex::daemon::start_with_agent(config, listener, agent).await,
            None => picortex::daemon::start(config, listener).await,
        }
        .unwrap();
        Stack { sim, daemon, data }
    }

    pub fn inbound_url(&self) -> String {
        format!("{}/api/linq/inbound", self.daemon.base_url())
    }
}

/// Polls `check` until it returns Some or `timeout` passes.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// HTTP headers as (name, value) pairs.
pub type Headers = Vec<(String, String)>;

/// Signs `body` as Linq would and returns the Standard Webhooks headers.
pub fn signed_headers(secret: &WebhookSecret, id: &str, ts: i64, body: &[u8]) -> Headers {
    vec![
        ("webhook-id".into(), id.into()),
        ("webhook-timestamp".into(), ts.to_string()),
        (
            "webhook-signature".into(),
            linq::webhook::sign(secret, id, ts, body),
        ),
        ("content-type".into(), "application/json".into()),
    ]
}

pub fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

pub fn picortex_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_picortex"))
}

/// `picortex-runner` from the same build as the `picortex` binary under test.
pub fn runner_bin() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| sibling_bin("picortex-runner")).clone()
}

/// `picortex-sandbox` (the privileged helper) from the same build.
pub fn sandbox_bin() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| sibling_bin("picortex-sandbox"))
        .clone()
}

/// Another package's binary (its package and binary share `name`), which `cargo test -p
/// picortex` would not rebuild, built once here next to the `picortex` binary.
fn sibling_bin(name: &str) -> PathBuf {
    let mut cmd = std::process::Command::new(env!("CARGO"));
    cmd.args(["build", "--quiet", "-p", name, "--bin", name]);
    if !cfg!(debug_assertions) {
        cmd.arg("--release");
    }
    let status = cmd.status().expect("run cargo build");
    assert!(status.success(), "building {name} failed");
    let bin = picortex_bin().with_file_name(name);
    assert!(bin.is_file(), "{} is missing", bin.display());
    bin
}

/// Whether tmux is installed; tests that need it print SKIP and return when it is not.
pub fn have_tmux() -> bool {
    let ok = std::process::Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        println!("SKIP: tmux is not installed");
    }
    ok
}

/// Configures `config` to run turns through the runner with the `command` agent.
pub fn use_command_agent(config: &mut Config, workspace_root: &Path, command: &[&str]) {
    config.agent = picortex::config::AgentKind::Command;
    config.agents.command = command.iter().map(|s| s.to_string()).collect();
    config.agents.runner_bin = Some(runner_bin());
    config.isolation.helper_bin = Some(sandbox_bin());
    config.workspace_root = workspace_root.to_owned();
}

/// The chat's home under `root` (first choice of directory name).
pub fn chat_home(root: &Path, chat_id: &str) -> PathBuf {
    root.join(picortex::workspace::chat_dir_name(chat_id))
}

/// Stops every chat under `root` (tests clean up after themselves): a sandboxed chat's jail,
/// user, group and home go; an unsandboxed chat's tmux server is stopped.
pub fn cleanup_chats(root: &Path) {
    let provisioner = picortex_sandbox::provision::Provisioner::new(root);
    if let Ok(entries) = std::fs::read_dir(root) {
        for e in entries.flatten() {
            let sandboxed = std::fs::read_to_string(e.path().join(".picortex/chat_id"))
                .ok()
                .and_then(|chat_id| provisioner.find(&chat_id).ok().flatten());
            if let Some(chat) = sandboxed {
                let _ = picortex_sandbox::jail::stop(&chat.name);
                let _ = provisioner.destroy(&chat);
                continue;
            }
            let sock = e.path().join(".picortex/tmux.sock");
            if sock.exists() {
                let _ = std::process::Command::new("tmux")
                    .arg("-S")
                    .arg(&sock)
                    .arg("kill-server")
                    .output();
            }
        }
    }
    // Chat users whose home (under `root`) is gone: an archived chat's account is removed
    // with it, but a test that failed midway can leave one behind.
    if nix::unistd::geteuid().is_root()
        && let Ok(passwd) = std::fs::read_to_string("/etc/passwd")
    {
        for line in passwd.lines() {
            let fields: Vec<&str> = line.split(':').collect();
            if let [name, _, _, _, _, home, ..] = fields[..]
                && name.starts_with("chat-")
                && Path::new(home).starts_with(root)
            {
                for tool in ["userdel", "groupdel"] {
                    let _ = std::process::Command::new(tool)
                        .arg("--")
                        .arg(name)
                        .output();
                }
            }
        }
    }
}

/// Every process's `/proc/<pid>` directory with the text of its `status` (processes that end
/// while this reads are left out).
pub fn process_statuses() -> Vec<(PathBuf, String)> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| {
            let status = std::fs::read_to_string(entry.path().join("status")).ok()?;
            Some((entry.path(), status))
        })
        .collect()
}

/// The words of the field `name` (such as `"Uid:"`) of a process's `status`.
pub fn status_field<'a>(status: &'a str, name: &str) -> Vec<&'a str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .map(|v| v.split_whitespace().collect())
        .unwrap_or_default()
}

/// The Claude Code CLI for tests: `PICORTEX_CLAUDE_BIN`, else `claude` on PATH. None (and a
/// SKIP line) when it is not installed.
pub fn claude_bin() -> Option<PathBuf> {
    let found = match std::env::var_os("PICORTEX_CLAUDE_BIN") {
        Some(bin) => Some(PathBuf::from(bin)).filter(|b| b.is_file()),
        None => std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("claude"))
                .find(|c| c.is_file())
        }),
    };
    if found.is_none() {
        println!("SKIP: claude CLI not installed (npm install -g @anthropic-ai/claude-code)");
    }
    found
}

/// Starts the scripted model server on loopback.
pub async fn mock_model(script: mock_model::Script) -> mock_model::MockModelHandle {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    mock_model::start(script, listener).await.unwrap()
}

/// Configures `config` to run Claude Code (through the runner) against `model`.
pub fn use_claude_agent(config: &mut Config, workspace_root: &Path, claude: &Path, model: &str) {
    config.agent = picortex::config::AgentKind::ClaudeCode;
    config.agents.claude_bin = claude.to_owned();
    config.agents.runner_bin = Some(runner_bin());
    config.agents.anthropic_base_url = Some(model.to_owned());
    config.agents.anthropic_api_key = Some("test-key-not-secret".into());
    config.isolation.helper_bin = Some(sandbox_bin());
    config.workspace_root = workspace_root.to_owned();
}

/// A loopback port free right now, for a daemon child process that must keep its port across
/// restarts. It is taken below the kernel's ephemeral range (32768 and up here), so while the
/// daemon is down between a kill and its restart no outgoing connection or port-0 listener of
/// another test can be handed the port.
pub fn free_port() -> u16 {
    use std::hash::{BuildHasher as _, RandomState};
    let seed = RandomState::new().hash_one(std::process::id());
    for i in 0..1000u64 {
        let port = 20_000 + ((seed.wrapping_add(i.wrapping_mul(7_919))) % 12_000) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port between 20000 and 32000");
}

/// What a test that runs the daemon as a child process starts with: the daemon's port (the
/// same across restarts), the simulator delivering webhooks to it, and a data directory.
pub async fn child_daemon_parts() -> (u16, Sim, tempfile::TempDir) {
    let port = free_port();
    let sim = Sim::start(&format!("http://127.0.0.1:{port}/api/linq/inbound")).await;
    (port, sim, tempfile::tempdir().unwrap())
}

/// Writes a TOML config for a daemon child process pointing at `sim`, its data under `data`;
/// `extra` is inserted verbatim before the `[linq]` section (top-level keys, then sections).
pub fn write_daemon_config(sim: &Sim, data: &Path, port: u16, extra: &str) -> PathBuf {
    let config = daemon_config(sim, data);
    let path = data.join("picortex.toml");
    std::fs::write(
        &path,
        format!(
            "port = {port}\ndata_dir = {:?}\n{extra}\n[linq]\napi_key = {:?}\nbase_url = {:?}\nwebhook_secret = {:?}\nphone = {:?}\n[outbox]\nbackoff_base_ms = 50\nbackoff_max_ms = 1000\nmax_attempts = 50\n",
            data.display().to_string(),
            config.linq.api_key,
            config.linq.base_url,
            config.linq.webhook_secret,
            BOT_LINE,
        ),
    )
    .unwrap();
    path
}

/// The TOML a child daemon needs to run `command` as its agent with chats under `root` (the
/// child-process counterpart of [`use_command_agent`]): `agent` and `workspace_root`, then the
/// `[agents]` and `[isolation]` sections. Put other top-level keys before it, sections after.
pub fn command_agent_toml(root: &Path, command: &[&str]) -> String {
    format!(
        "agent = \"command\"\nworkspace_root = {:?}\n[agents]\nrunner_bin = {:?}\ncommand = {:?}\n[isolation]\nhelper_bin = {:?}\n",
        root.display().to_string(),
        runner_bin().display().to_string(),
        command,
        sandbox_bin().display().to_string(),
    )
}

/// `picortex serve` as a child process, for tests that SIGKILL it. Its log is appended to
/// `daemon.log` beside the config file.
pub struct DaemonProcess {
    child: tokio::process::Child,
}

impl DaemonProcess {
    pub fn spawn(config_path: &Path) -> DaemonProcess {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(config_path.with_file_name("daemon.log"))
            .unwrap();
        let child = tokio::process::Command::new(picortex_bin())
            .arg("serve")
            .arg("--config")
            .arg(config_path)
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("spawn picortex serve");
        DaemonProcess { child }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Sends SIGTERM (what systemd sends to stop it) and waits up to 30 s for it to exit.
    pub async fn sigterm(&mut self) -> std::process::ExitStatus {
        if let Some(pid) = self.child.id() {
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            )
            .unwrap();
        }
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("the daemon did not stop within 30 s of SIGTERM")
            .unwrap()
    }

    pub async fn sigkill(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = self.child.wait().await;
    }
}

/// Removes the chats under its directory (users, jails, homes) when dropped, so a test cleans
/// up after itself even when it fails.
pub struct Cleanup(pub PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        cleanup_chats(&self.0);
    }
}

/// The texts of the first `n` (or more) bot replies in the chat, waiting up to 90 s for them.
pub async fn replies(sim: &Sim, chat_id: &str, n: usize) -> Vec<String> {
    eventually(
        Duration::from_secs(90),
        &format!("{n} replies in {chat_id}"),
        || async {
            let r = sim.bot_messages(chat_id).await;
            (r.len() >= n).then(|| r.iter().map(text_of).collect::<Vec<_>>())
        },
    )
    .await
}
