//! Configuration: one TOML file, every key also settable by environment. The environment names
//! in [`ENV_KEYS`] are fixed (deploy files and scripts rely on them) and win over the file.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("environment variable {name}={value:?} is not valid: {message}")]
    Env {
        name: &'static str,
        value: String,
        message: String,
    },
    #[error("{0}")]
    Invalid(String),
}

/// Which agent answers turns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum AgentKind {
    /// Replies "echo: <text>"; no model, no workspace. For tests and first runs.
    #[default]
    Echo,
    ClaudeCode,
    Command,
}

impl std::str::FromStr for AgentKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "echo" => Ok(Self::Echo),
            "claude-code" => Ok(Self::ClaudeCode),
            "command" => Ok(Self::Command),
            other => Err(format!(
                "unknown agent {other:?} (expected claude-code, command or echo)"
            )),
        }
    }
}

/// How chats are kept apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum IsolationMode {
    /// The sandbox helper when picortex can use it (running as root, or a helper socket
    /// configured), otherwise Landlock alone, reported as degraded.
    #[default]
    Auto,
    /// Each chat its own Linux user in namespaces, a cgroup, Landlock and seccomp; the daemon
    /// refuses to start without the helper.
    Sandbox,
    /// Landlock alone: chats share the daemon's user (a developer's machine).
    Landlock,
}

impl std::str::FromStr for IsolationMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "sandbox" => Ok(Self::Sandbox),
            "landlock" => Ok(Self::Landlock),
            other => Err(format!(
                "unknown isolation mode {other:?} (expected auto, sandbox or landlock)"
            )),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IsolationConfig {
    /// `PICORTEX_ISOLATION`.
    pub mode: IsolationMode,
    /// A picortex-sandbox helper that is already running (production: started by systemd as
    /// root, the daemon as its own user); `PICORTEX_SANDBOX_SOCKET`. Unset: a daemon running as
    /// root starts its own helper.
    pub helper_socket: Option<PathBuf>,
    /// The helper binary a root daemon starts (default: `picortex-sandbox` next to picortex's
    /// binary, else picortex itself, which carries the helper as `picortex sandbox`).
    pub helper_bin: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP server binds to.
    pub bind: IpAddr,
    /// Port of the HTTP server (webhooks, API, UI); 0 picks a free one.
    pub port: u16,
    /// Database and logs.
    pub data_dir: PathBuf,
    /// Where chat workspaces live.
    pub workspace_root: PathBuf,
    /// The owner's handle (E.164).
    pub owner: Option<String>,
    /// The bot's name, as people address it.
    pub bot_name: String,
    pub agent: AgentKind,
    /// How the runner starts each agent kind.
    pub agents: AgentsConfig,
    pub linq: LinqConfig,
    pub attention: AttentionConfig,
    pub turns: TurnsConfig,
    pub outbox: OutboxConfig,
    /// Largest webhook body accepted, in bytes (larger: 413).
    pub webhook_body_limit: usize,
    /// Bearer token for the owner's API (`/api/chats/…`); unset: the API is off.
    pub api_token: Option<String>,
    /// The model gateway, the agents' only way to the model.
    pub gateway: GatewayConfig,
    /// How chats are kept apart.
    pub isolation: IsolationConfig,
    /// When idle chats are hibernated.
    pub lifecycle: LifecycleConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LifecycleConfig {
    /// A chat with no message for this long is hibernated (its processes stop, its home
    /// stays); 0 never hibernates.
    pub idle_after_secs: u64,
    /// How often the lifecycle task looks for idle chats.
    pub interval_secs: u64,
    /// A chat with no message for this long is archived (its home compressed to
    /// `<archive_dir>/<chat dir>.tar.zst`, its user removed); 0 never archives.
    pub archive_after_secs: u64,
    /// Where archives are kept (default `<data dir>/archive`).
    pub archive_dir: Option<PathBuf>,
}

impl LifecycleConfig {
    /// The archive directory, `<data_dir>/archive` unless configured.
    pub fn archive_dir(&self, data_dir: &Path) -> PathBuf {
        self.archive_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("archive"))
    }
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        Self {
            idle_after_secs: 7 * 24 * 3600,
            interval_secs: 300,
            archive_after_secs: 30 * 24 * 3600,
            archive_dir: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LinqConfig {
    pub api_key: String,
    pub base_url: String,
    pub webhook_secret: String,
    /// The bot's line (E.164).
    pub phone: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentsConfig {
    /// The `picortex-runner` binary (default: next to the `picortex` binary).
    pub runner_bin: Option<PathBuf>,
    /// A runner with no turn for this long exits; the next turn starts it again.
    pub idle_timeout_secs: u64,
    /// Claude Code's CLI (`PICORTEX_CLAUDE_BIN`).
    pub claude_bin: PathBuf,
    /// `--permission-mode` for Claude Code.
    pub claude_permission_mode: Option<String>,
    /// `--allowedTools` for Claude Code.
    pub claude_allowed_tools: Vec<String>,
    /// A Claude Code stream silent this long fails the turn.
    pub watchdog_secs: u64,
    /// The `command` agent: the program and its arguments (the prompt goes to its stdin).
    pub command: Vec<String>,
    /// The model API behind the gateway (`ANTHROPIC_BASE_URL`; unset: Anthropic's).
    pub anthropic_base_url: Option<String>,
    /// The real `ANTHROPIC_API_KEY`. Only the gateway (and the discriminator) use it; agents
    /// get their chat's gateway token instead.
    pub anthropic_api_key: Option<String>,
}

impl Default for AgentsConfig {
    fn default() -> Self {
        Self {
            runner_bin: None,
            idle_timeout_secs: 900,
            claude_bin: PathBuf::from("claude"),
            claude_permission_mode: Some("acceptEdits".into()),
            claude_allowed_tools: Vec::new(),
            watchdog_secs: 180,
            command: Vec::new(),
            anthropic_base_url: None,
            anthropic_api_key: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AttentionConfig {
    /// Other names people call the bot by (the bot's name always counts).
    pub aliases: Vec<String>,
    /// The small model that decides, in the discriminate modes, whether to answer.
    pub discriminator_model: String,
    pub discriminator_timeout_ms: u64,
    /// Discriminator calls per chat per day; past it the chat falls back to mentions-only
    /// until midnight and the owner is told once.
    pub discriminator_daily_calls: i64,
    /// The owner's local time zone as an offset from UTC, for "midnight" (e.g. "-05:00").
    pub utc_offset: String,
}

impl Default for AttentionConfig {
    fn default() -> Self {
        Self {
            aliases: Vec::new(),
            discriminator_model: "claude-haiku-4-5".into(),
            discriminator_timeout_ms: 5000,
            discriminator_daily_calls: 500,
            utc_offset: "+00:00".into(),
        }
    }
}

impl AttentionConfig {
    /// The configured offset, checked by [`Config::validate`].
    pub fn offset(&self) -> Result<time::UtcOffset, ConfigError> {
        let format =
            time::macros::format_description!("[offset_hour sign:mandatory]:[offset_minute]");
        time::UtcOffset::parse(&self.utc_offset, &format).map_err(|e| {
            ConfigError::Invalid(format!(
                "attention.utc_offset {:?} is not an offset like \"-05:00\": {e}",
                self.utc_offset
            ))
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TurnsConfig {
    /// Turns running at once across all chats.
    pub max_concurrent: usize,
    /// A turn running longer than this is interrupted and the chat told.
    pub timeout_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutboxConfig {
    /// Attempts before a delivery is marked failed.
    pub max_attempts: i64,
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
    /// Deliveries in flight at once.
    pub concurrency: usize,
}

/// `[gateway]`: the reverse proxy every agent reaches the model through (see
/// [`crate::gateway`]). The upstream and the real key are `agents.anthropic_base_url` and
/// `agents.anthropic_api_key` (`ANTHROPIC_BASE_URL`, `ANTHROPIC_API_KEY`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// Model spend allowed per chat per UTC day, in USD; 0 means unlimited.
    pub chat_daily_budget_usd: f64,
    /// `ANTHROPIC_BASE_URL` as the agent sees it. Unset: the daemon's own port,
    /// `http://127.0.0.1:<port>/gateway` (no network namespace); the isolated mode sets the
    /// forwarder inside the chat's namespace, `http://127.0.0.1:7824`.
    pub agent_base_url: Option<String>,
    /// Serve the gateway on `<data_dir>/run/gateway/gateway.sock` too (for the forwarders),
    /// and the egress proxy on `proxy.sock` beside it (it refuses every host while the
    /// allowlists below are empty).
    pub socket: bool,
    /// Connecting to the upstream gives up after this long.
    pub connect_timeout_secs: u64,
    /// Prices per million tokens by model; the first entry whose `model` the model id contains
    /// applies (unknown models are priced like a mid-range one, never as free).
    pub prices: Vec<ModelPrice>,
    /// Hosts every sandboxed chat may reach through the egress proxy (see
    /// [`crate::gateway::egress`]): exact host names (`"registry.npmjs.org"`), a leading `*.`
    /// for every subdomain (`"*.pythonhosted.org"`, not the bare domain), or IP literals
    /// (`"10.0.0.5"`, `"[fd00::5]"`), which are taken as meant, private or not. No scheme, path
    /// or port: ports are `allow_ports`. Empty (the default): no egress beyond the model.
    pub allow_hosts: Vec<String>,
    /// Extra hosts for one chat, by chat id: `[gateway.chat_allow_hosts] "<chat id>" = […]`.
    pub chat_allow_hosts: BTreeMap<String, Vec<String>>,
    /// The ports an allowed host may be reached on (default 443).
    pub allow_ports: Vec<u16>,
    /// Host names (exact, also allowlisted above) that may resolve to private, loopback or
    /// link-local addresses, e.g. a registry mirror on the LAN. Every other name that resolves
    /// only to such addresses is refused, so a public name cannot be pointed at the host's or
    /// the LAN's services (DNS rebinding).
    pub allow_private_hosts: Vec<String>,
}

/// What a model costs, USD per million tokens.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    /// A fragment of the model id, e.g. `"haiku-4"`.
    pub model: String,
    pub input: f64,
    pub output: f64,
    /// Default: a tenth of `input`.
    #[serde(default)]
    pub cache_read: Option<f64>,
    /// Default: 1.25 × `input`.
    #[serde(default)]
    pub cache_write: Option<f64>,
}

impl ModelPrice {
    pub fn new(model: &str, input: f64, output: f64) -> Self {
        Self {
            model: model.into(),
            input,
            output,
            cache_read: None,
            cache_write: None,
        }
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        // Anthropic's list prices (2025); estimates for budgets, not a bill.
        let prices = [
            ("haiku-4", 1.00, 5.00),
            ("3-5-haiku", 0.80, 4.00),
            ("3-haiku", 0.25, 1.25),
            ("sonnet", 3.00, 15.00),
            ("opus-4-1", 15.00, 75.00),
            ("opus-4-2025", 15.00, 75.00),
            ("opus-4", 5.00, 25.00),
            ("opus", 15.00, 75.00),
        ]
        .into_iter()
        .map(|(m, i, o)| ModelPrice::new(m, i, o))
        .collect();
        Self {
            chat_daily_budget_usd: 5.0,
            agent_base_url: None,
            socket: true,
            connect_timeout_secs: 10,
            prices,
            allow_hosts: Vec::new(),
            chat_allow_hosts: BTreeMap::new(),
            allow_ports: vec![443],
            allow_private_hosts: Vec::new(),
        }
    }
}

impl GatewayConfig {
    /// Checks the egress allowlists: every entry a host pattern, ports that can be connected
    /// to, private hosts that are exact names on some allowlist.
    pub fn validate_egress(&self) -> Result<(), ConfigError> {
        use crate::gateway::egress::HostPattern;
        let check = |key: &str, entries: &[String]| -> Result<Vec<HostPattern>, ConfigError> {
            entries
                .iter()
                .map(|entry| {
                    HostPattern::parse(entry).map_err(|why| {
                        ConfigError::Invalid(format!("gateway.{key} entry {entry:?}: {why}"))
                    })
                })
                .collect()
        };
        let mut patterns = check("allow_hosts", &self.allow_hosts)?;
        for (chat, entries) in &self.chat_allow_hosts {
            if chat.trim().is_empty() {
                return Err(ConfigError::Invalid(
                    "gateway.chat_allow_hosts has an empty chat id; use the Linq chat id".into(),
                ));
            }
            patterns.extend(check(&format!("chat_allow_hosts.{chat:?}"), entries)?);
        }
        if !patterns.is_empty() && self.allow_ports.is_empty() {
            return Err(ConfigError::Invalid(
                "gateway.allow_ports is empty, so no allowlisted host could be reached; the usual value is [443]".into(),
            ));
        }
        if self.allow_ports.contains(&0) {
            return Err(ConfigError::Invalid(
                "gateway.allow_ports contains 0, which no connection can use".into(),
            ));
        }
        for (entry, pattern) in self
            .allow_private_hosts
            .iter()
            .zip(check("allow_private_hosts", &self.allow_private_hosts)?)
        {
            if !matches!(pattern, HostPattern::Name(_)) {
                return Err(ConfigError::Invalid(format!(
                    "gateway.allow_private_hosts entry {entry:?} must be an exact host name (IP literals on an allowlist may be private already; wildcards may not)"
                )));
            }
            if !patterns.contains(&pattern) {
                return Err(ConfigError::Invalid(format!(
                    "gateway.allow_private_hosts entry {entry:?} is on no allowlist; add it to gateway.allow_hosts or a chat's gateway.chat_allow_hosts too"
                )));
            }
        }
        Ok(())
    }
}

pub const DEFAULT_PORT: u16 = 7823;
pub const DEFAULT_LINQ_BASE_URL: &str = "https://api.linqapp.com/api/partner";

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: IpAddr::from([127, 0, 0, 1]),
            port: DEFAULT_PORT,
            data_dir: PathBuf::from("./picortex-data"),
            workspace_root: PathBuf::from("/srv/picortex/chats"),
            owner: None,
            bot_name: "pi".into(),
            agent: AgentKind::Echo,
            agents: AgentsConfig::default(),
            linq: LinqConfig::default(),
            attention: AttentionConfig::default(),
            turns: TurnsConfig::default(),
            outbox: OutboxConfig::default(),
            webhook_body_limit: 256 * 1024,
            api_token: None,
            gateway: GatewayConfig::default(),
            isolation: IsolationConfig::default(),
            lifecycle: LifecycleConfig::default(),
        }
    }
}

impl Default for LinqConfig {
    fn default() -> Self {
        Self {
            api_key: String::new(),
            base_url: DEFAULT_LINQ_BASE_URL.into(),
            webhook_secret: String::new(),
            phone: None,
        }
    }
}

impl Default for TurnsConfig {
    fn default() -> Self {
        Self {
            max_concurrent: 4,
            timeout_secs: 600,
        }
    }
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            max_attempts: 12,
            backoff_base_ms: 500,
            backoff_max_ms: 5 * 60 * 1000,
            concurrency: 8,
        }
    }
}

/// The environment variables that override the file.
pub const ENV_KEYS: &[&str] = &[
    "PICORTEX_PORT",
    "PICORTEX_DATA_DIR",
    "PICORTEX_WORKSPACE_ROOT",
    "PICORTEX_OWNER",
    "PICORTEX_BOT_NAME",
    "PICORTEX_AGENT",
    "PICORTEX_CLAUDE_BIN",
    "LINQ_API_KEY",
    "LINQ_BASE_URL",
    "LINQ_WEBHOOK_SECRET",
    "LINQ_PHONE",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "PICORTEX_API_TOKEN",
    "PICORTEX_ISOLATION",
    "PICORTEX_SANDBOX_SOCKET",
];

impl Config {
    /// Defaults, then the TOML file (if given), then the environment.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let mut config = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                toml::from_str(&text).map_err(|e| ConfigError::Parse {
                    path: path.to_owned(),
                    message: e.to_string(),
                })?
            }
            None => Config::default(),
        };
        config.apply_env(|name| std::env::var(name).ok())?;
        Ok(config)
    }

    /// The same configuration with its directories made absolute, against the current
    /// directory: `useradd` refuses a relative home (the demo's default `.demo-data` is one),
    /// and a child process started elsewhere must find the same places.
    pub fn with_absolute_paths(mut self) -> std::io::Result<Config> {
        self.data_dir = std::path::absolute(&self.data_dir)?;
        self.workspace_root = std::path::absolute(&self.workspace_root)?;
        Ok(self)
    }

    /// Applies overrides from `lookup` (the environment, or a map in tests).
    pub fn apply_env(
        &mut self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        if let Some(v) = get("PICORTEX_PORT") {
            self.port = v
                .parse()
                .map_err(|e: std::num::ParseIntError| ConfigError::Env {
                    name: "PICORTEX_PORT",
                    value: v.clone(),
                    message: e.to_string(),
                })?;
        }
        if let Some(v) = get("PICORTEX_DATA_DIR") {
            self.data_dir = v.into();
        }
        if let Some(v) = get("PICORTEX_WORKSPACE_ROOT") {
            self.workspace_root = v.into();
        }
        if let Some(v) = get("PICORTEX_OWNER") {
            self.owner = Some(v);
        }
        if let Some(v) = get("PICORTEX_BOT_NAME") {
            self.bot_name = v;
        }
        if let Some(v) = get("PICORTEX_AGENT") {
            self.agent = v.parse().map_err(|message| ConfigError::Env {
                name: "PICORTEX_AGENT",
                value: v.clone(),
                message,
            })?;
        }
        if let Some(v) = get("PICORTEX_ISOLATION") {
            self.isolation.mode = v.parse().map_err(|message| ConfigError::Env {
                name: "PICORTEX_ISOLATION",
                value: v.clone(),
                message,
            })?;
        }
        if let Some(v) = get("PICORTEX_SANDBOX_SOCKET") {
            self.isolation.helper_socket = Some(v.into());
        }
        if let Some(v) = get("PICORTEX_API_TOKEN") {
            self.api_token = Some(v);
        }
        if let Some(v) = get("PICORTEX_CLAUDE_BIN") {
            self.agents.claude_bin = v.into();
        }
        if let Some(v) = get("ANTHROPIC_API_KEY") {
            self.agents.anthropic_api_key = Some(v);
        }
        if let Some(v) = get("ANTHROPIC_BASE_URL") {
            self.agents.anthropic_base_url = Some(v);
        }
        if let Some(v) = get("LINQ_API_KEY") {
            self.linq.api_key = v;
        }
        if let Some(v) = get("LINQ_BASE_URL") {
            self.linq.base_url = v;
        }
        if let Some(v) = get("LINQ_WEBHOOK_SECRET") {
            self.linq.webhook_secret = v;
        }
        if let Some(v) = get("LINQ_PHONE") {
            self.linq.phone = Some(v);
        }
        Ok(())
    }

    /// Checks what the daemon cannot run without, with a message that says how to fix it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.linq.api_key.is_empty() {
            return Err(ConfigError::Invalid(
                "linq.api_key is empty: set LINQ_API_KEY or [linq] api_key".into(),
            ));
        }
        if let Err(e) = linq::webhook::WebhookSecret::parse(&self.linq.webhook_secret) {
            return Err(ConfigError::Invalid(format!(
                "linq.webhook_secret is not usable ({e}): set LINQ_WEBHOOK_SECRET to the whsec_… secret of your webhook subscription"
            )));
        }
        if self.agent == AgentKind::Command && self.agents.command.is_empty() {
            return Err(ConfigError::Invalid(
                "agent = \"command\" needs agents.command = [\"program\", \"arg\", …]".into(),
            ));
        }
        self.attention.offset()?;
        if self.api_token.as_ref().is_some_and(|t| t.len() < 24) {
            return Err(ConfigError::Invalid(
                "api_token must be at least 24 characters (e.g. openssl rand -hex 24)".into(),
            ));
        }
        let g = &self.gateway;
        if !g.chat_daily_budget_usd.is_finite() || g.chat_daily_budget_usd < 0.0 {
            return Err(ConfigError::Invalid(
                "gateway.chat_daily_budget_usd must be 0 (unlimited) or more".into(),
            ));
        }
        if let Some(p) = g.prices.iter().find(|p| {
            [Some(p.input), Some(p.output), p.cache_read, p.cache_write]
                .into_iter()
                .flatten()
                .any(|v| !v.is_finite() || v < 0.0)
                || p.model.trim().is_empty()
        }) {
            return Err(ConfigError::Invalid(format!(
                "gateway.prices entry {:?} needs a model fragment and prices of 0 or more",
                p.model
            )));
        }
        if let Some(url) = &g.agent_base_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(ConfigError::Invalid(format!(
                "gateway.agent_base_url {url:?} must be an http:// or https:// URL"
            )));
        }
        g.validate_egress()?;
        if self.turns.max_concurrent == 0 {
            return Err(ConfigError::Invalid(
                "turns.max_concurrent must be at least 1".into(),
            ));
        }
        if self.outbox.concurrency == 0 || self.outbox.max_attempts < 1 {
            return Err(ConfigError::Invalid(
                "outbox.concurrency and outbox.max_attempts must be at least 1".into(),
            ));
        }
        Ok(())
    }

    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("picortex.db")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// The demo's default data directory is relative; the daemon works with absolute ones.
    #[test]
    fn directories_are_made_absolute() {
        let config = Config {
            data_dir: ".demo-data".into(),
            workspace_root: ".demo-data/chats".into(),
            ..Config::default()
        }
        .with_absolute_paths()
        .unwrap();
        let here = std::env::current_dir().unwrap();
        assert_eq!(config.data_dir, here.join(".demo-data"));
        assert_eq!(config.workspace_root, here.join(".demo-data/chats"));
    }

    #[test]
    fn file_then_environment() {
        let mut c: Config = toml::from_str(
            r#"
            port = 9000
            bot_name = "robo"
            [linq]
            api_key = "from-file"
            [turns]
            max_concurrent = 2
            "#,
        )
        .unwrap();
        let env: HashMap<&str, &str> = [
            ("LINQ_API_KEY", "from-env"),
            ("PICORTEX_AGENT", "echo"),
            ("PICORTEX_PORT", " "),
        ]
        .into();
        c.apply_env(|k| env.get(k).map(|v| v.to_string())).unwrap();
        assert_eq!(c.port, 9000, "blank env values count as unset");
        assert_eq!(c.linq.api_key, "from-env");
        assert_eq!(c.bot_name, "robo");
        assert_eq!(c.turns.max_concurrent, 2);
        assert_eq!(c.turns.timeout_secs, 600);
    }

    #[test]
    fn the_gateway_section_parses_and_is_checked() {
        let c: Config = toml::from_str(
            r#"
            [gateway]
            chat_daily_budget_usd = 2.5
            agent_base_url = "http://127.0.0.1:7824"
            prices = [{ model = "haiku", input = 1.0, output = 5.0, cache_read = 0.2 }]
            "#,
        )
        .unwrap();
        assert_eq!(c.gateway.chat_daily_budget_usd, 2.5);
        assert_eq!(c.gateway.prices.len(), 1);
        assert_eq!(c.gateway.prices[0].cache_read, Some(0.2));
        assert!(c.gateway.socket, "defaults fill the rest");
        let mut bad = c.clone();
        bad.linq.api_key = "k".into();
        bad.linq.webhook_secret = linq::webhook::WebhookSecret::generate().as_str().to_owned();
        bad.validate().unwrap();
        bad.gateway.chat_daily_budget_usd = -1.0;
        let err = bad.validate().unwrap_err();
        assert!(err.to_string().contains("chat_daily_budget_usd"), "{err}");
        bad.gateway.chat_daily_budget_usd = 0.0;
        bad.gateway.agent_base_url = Some("127.0.0.1:7824".into());
        assert!(bad.validate().is_err());
    }

    #[test]
    fn bad_values_are_explained() {
        let mut c = Config::default();
        let err = c
            .apply_env(|k| (k == "PICORTEX_AGENT").then(|| "gpt".to_string()))
            .unwrap_err();
        assert!(err.to_string().contains("PICORTEX_AGENT"), "{err}");
        assert!(toml::from_str::<Config>("nonsense = 1").is_err());
        let err = Config::default().validate().unwrap_err();
        assert!(err.to_string().contains("LINQ_API_KEY"), "{err}");
    }
}
