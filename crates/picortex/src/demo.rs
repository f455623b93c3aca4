//! `picortex demo`: the simulator and the daemon in one process on loopback, wired together
//! with generated secrets and a local data directory, so one command shows the whole path.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context as _;
use tokio::net::TcpListener;

use crate::config::{AgentKind, Config};
use crate::daemon::{self, DaemonHandle};

pub struct DemoOptions {
    pub port: u16,
    pub sim_port: u16,
    pub data_dir: PathBuf,
}

pub struct Demo {
    pub daemon: DaemonHandle,
    pub sim: linq_sim::SimHandle,
    pub bot_line: String,
    pub agent: AgentKind,
}

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

pub async fn start(opts: DemoOptions) -> anyhow::Result<Demo> {
    let daemon_listener = TcpListener::bind(SocketAddr::new(LOOPBACK, opts.port))
        .await
        .with_context(|| format!("binding the daemon to port {} (try --port 0)", opts.port))?;
    let sim_listener = TcpListener::bind(SocketAddr::new(LOOPBACK, opts.sim_port))
        .await
        .with_context(|| {
            format!(
                "binding the simulator to port {} (try --sim-port 0)",
                opts.sim_port
            )
        })?;
    let daemon_addr = daemon_listener.local_addr()?;
    let secret = linq::webhook::WebhookSecret::generate();
    let api_key = format!("demo_{}", uuid::Uuid::new_v4().simple());
    let sim_config = linq_sim::SimConfig {
        api_key: api_key.clone(),
        webhook: Some((
            format!("http://{daemon_addr}/api/linq/inbound"),
            secret.clone(),
        )),
        ..linq_sim::SimConfig::default()
    };
    let bot_line = sim_config.bot_line.clone();
    let sim = linq_sim::start(sim_config, sim_listener)
        .await
        .context("starting the simulator")?;

    let mut config = Config {
        data_dir: opts.data_dir,
        agent: AgentKind::Echo,
        ..Config::default()
    };
    config.linq.api_key = api_key;
    config.linq.base_url = sim.base_url();
    config.linq.webhook_secret = secret.as_str().to_owned();
    config.linq.phone = Some(bot_line.clone());
    let agent = config.agent;
    let daemon = daemon::start(config, daemon_listener).await?;
    Ok(Demo {
        daemon,
        sim,
        bot_line,
        agent,
    })
}
