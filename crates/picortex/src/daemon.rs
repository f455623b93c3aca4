//! Wires the daemon together: store, model gateway, channel, agent, scheduler, outbox sender
//! and HTTP server, and hands back a handle that knows the bound address and can shut
//! everything down.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::agent::{Agent, EchoAgent};
use crate::channel::{Channel, LinqChannel};
use crate::config::{AgentKind, Config};
use crate::gatekeeper::{Gatekeeper, PendingChats, Wakes};
use crate::gateway::Gateway;
use crate::ingest::IngestConfig;
use crate::isolation::Isolation;
use crate::lifecycle::StoppedChats;
use crate::metrics::Metrics;
use crate::runner_agent::RunnerAgent;
use crate::scheduler::Scheduler;
use crate::sender::Sender;
use crate::server::{AppState, TokenBucket, router};
use crate::store::{Store, StoreResult};
use crate::workspace::Workspaces;

/// How long a stopping daemon waits for the requests in flight.
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

pub struct DaemonHandle {
    pub addr: SocketAddr,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    /// The model gateway (tests issue chat tokens and read its socket path from it).
    pub gateway: Arc<Gateway>,
    agent: Arc<dyn Agent>,
    scheduler: Arc<Scheduler>,
    tasks: Vec<JoinHandle<()>>,
    shutdown: CancellationToken,
}

impl DaemonHandle {
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops serving and stops the background tasks and running turns. Work in flight stays
    /// in the store and is resumed by the next start; the chats' processes live on.
    pub async fn shutdown(mut self) {
        self.stop().await;
    }

    /// Like [`Self::shutdown`], and then stops every chat's processes, so nothing is left
    /// running (`picortex demo`). Chats with no turn in flight are hibernated; a chat whose
    /// turn was cut short stays awake, and the next start runs that turn again.
    pub async fn shutdown_and_hibernate(mut self) -> StoreResult<StoppedChats> {
        self.stop().await;
        crate::lifecycle::hibernate_every_chat(&self.store, self.agent.as_ref(), "shutdown").await
    }

    async fn stop(&mut self) {
        self.shutdown.cancel();
        for t in &self.tasks {
            t.abort();
        }
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
        // Nothing claims turns any more; the running ones stop where they are.
        self.scheduler.stop().await;
    }

    /// Serves until `stop` completes (a signal, for `picortex serve`) or the server ends on its
    /// own, then stops as [`Self::shutdown`] does, after the requests in flight have been
    /// answered (for up to [`DRAIN_TIMEOUT`]): a webhook being stored gets its answer, so Linq
    /// need not send it again.
    pub async fn run_until(mut self, stop: impl std::future::Future<Output = ()>) {
        // The server is the last task (see `start_inner`).
        let Some(mut server) = self.tasks.pop() else {
            return;
        };
        tokio::select! {
            _ = &mut server => {}
            () = stop => {
                self.shutdown.cancel();
                if tokio::time::timeout(DRAIN_TIMEOUT, &mut server).await.is_err() {
                    tracing::warn!("requests still in flight after {} s; stopping anyway", DRAIN_TIMEOUT.as_secs());
                    server.abort();
                }
            }
        }
        self.stop().await;
    }
}

/// Starts the daemon on `listener` with `config` (already validated).
pub async fn start(config: Config, listener: TcpListener) -> anyhow::Result<DaemonHandle> {
    start_inner(config, listener, None).await
}

/// Like [`start`], with the agent supplied by the caller (benchmarks and tests measure the
/// pipeline around an agent they control).
pub async fn start_with_agent(
    config: Config,
    listener: TcpListener,
    agent: Arc<dyn Agent>,
) -> anyhow::Result<DaemonHandle> {
    start_inner(config, listener, Some(agent)).await
}

async fn start_inner(
    config: Config,
    listener: TcpListener,
    agent: Option<Arc<dyn Agent>>,
) -> anyhow::Result<DaemonHandle> {
    config.validate()?;
    let config = config
        .with_absolute_paths()
        .context("resolving the data and workspace directories")?;
    let secret = linq::webhook::WebhookSecret::parse(&config.linq.webhook_secret)
        .context("LINQ_WEBHOOK_SECRET")?;
    let store = Store::open(&config.database_path())
        .with_context(|| format!("opening {}", config.database_path().display()))?;
    let addr = listener.local_addr()?;
    let (gateway, gateway_tasks) = Gateway::start(&config, store.clone())
        .await
        .context("starting the model gateway")?;
    // Only agents that run in chat workspaces need the sandbox (the echo agent runs none).
    let isolation = match (&agent, config.agent) {
        (None, AgentKind::ClaudeCode | AgentKind::Command) => Isolation::setup(&config).await?,
        _ => Isolation::Landlock,
    };
    let workspaces = Workspaces::with_isolation(&config.workspace_root, &isolation)
        .with_archive_dir(config.lifecycle.archive_dir(&config.data_dir));
    match workspaces.sweep_leftovers().await {
        Ok(names) if names.is_empty() => {}
        Ok(names) => tracing::warn!(?names, "removed what interrupted transitions left"),
        Err(e) => tracing::warn!(error = %e, "could not clean up after interrupted transitions"),
    }
    let agent: Arc<dyn Agent> = match (agent, config.agent) {
        (Some(agent), _) => agent,
        (None, AgentKind::Echo) => Arc::new(EchoAgent),
        (None, AgentKind::ClaudeCode | AgentKind::Command) => {
            // Inside a chat's network namespace the gateway is the forwarder on loopback.
            let base_url = if workspaces.sandboxed() {
                crate::gateway::NAMESPACE_BASE_URL.to_owned()
            } else {
                gateway.agent_base_url(addr)
            };
            Arc::new(
                RunnerAgent::from_config(&config)
                    .context("configuring the agent runner")?
                    .in_workspaces(workspaces.clone())
                    .through_gateway(gateway.clone(), base_url),
            )
        }
    };
    let client = linq::Client::new(linq::ClientConfig {
        base_url: config.linq.base_url.clone(),
        api_key: config.linq.api_key.clone(),
        ..linq::ClientConfig::default()
    })
    .context("building the Linq client")?;
    let channel: Arc<dyn Channel> = Arc::new(LinqChannel::new(
        client,
        config.linq.phone.clone(),
        workspaces.clone(),
    ));
    let metrics = Arc::new(Metrics::default());
    let pending_chats = Arc::new(PendingChats::default());
    let turns_wake = Arc::new(Notify::new());
    let outbox_wake = Arc::new(Notify::new());
    let isolation_report = if config.agent == AgentKind::Echo {
        serde_json::json!({
            "status": "not-needed",
            "mode": "none",
            "reason": "the echo agent answers inside the daemon and runs nothing in chat workspaces",
        })
    } else {
        isolation.report().await
    };
    let tmux_version = tmux_version().await;

    let scheduler = Scheduler::new(
        store.clone(),
        agent.clone(),
        channel.clone(),
        &config.turns,
        metrics.clone(),
        turns_wake.clone(),
        outbox_wake.clone(),
        config.gateway.chat_daily_budget_usd,
        config.owner.clone(),
    );
    let gatekeeper = Gatekeeper::new(
        &config,
        store.clone(),
        agent.clone(),
        metrics.clone(),
        Wakes {
            gate: pending_chats.clone(),
            turns: turns_wake.clone(),
            outbox: outbox_wake.clone(),
        },
        workspaces.clone(),
        scheduler.clone(),
    )
    .context("configuring the attention gate")?;
    let sender = Sender::new(
        store.clone(),
        channel,
        config.outbox.clone(),
        metrics.clone(),
        outbox_wake.clone(),
    );
    let state = Arc::new(AppState {
        store: store.clone(),
        metrics: metrics.clone(),
        ingest: IngestConfig { secret },
        pending_chats,
        started: Instant::now(),
        agent_name: agent.name(),
        tmux_version,
        isolation: isolation_report,
        webhook_body_limit: config.webhook_body_limit,
        frontend_log_bucket: TokenBucket::new(20, 1.0),
        api_token: config.api_token.clone(),
        agent: agent.clone(),
        workspaces: workspaces.clone(),
    });
    let shutdown = CancellationToken::new();
    let app = router(state).merge(gateway.tcp_routes());
    let stop = shutdown.clone();
    let server = tokio::spawn(async move {
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "http server stopped");
        }
    });
    let lifecycle = crate::lifecycle::Lifecycle::with_archiving(
        store.clone(),
        agent.clone(),
        workspaces.clone(),
        &config.lifecycle,
    );
    let mut tasks = gateway_tasks;
    tasks.extend([
        tokio::spawn(lifecycle.run()),
        tokio::spawn(gatekeeper.run()),
        tokio::spawn(scheduler.clone().run()),
        tokio::spawn(sender.run()),
        // Last: `run_until` waits for the HTTP server.
        server,
    ]);
    tracing::info!(%addr, agent = agent.name(), db = %config.database_path().display(), "picortex daemon listening");
    Ok(DaemonHandle {
        addr,
        store,
        metrics,
        gateway,
        agent,
        scheduler,
        tasks,
        shutdown,
    })
}

async fn tmux_version() -> Option<String> {
    let out = tokio::process::Command::new("tmux")
        .arg("-V")
        .output()
        .await
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}
