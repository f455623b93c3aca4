//! The helper's command line, shared by the `picortex-sandbox` binary and the hidden
//! `picortex sandbox` subcommand (so `picortex demo` and a root daemon can start the helper from
//! the one binary they have).

use std::path::PathBuf;

use anyhow::Context as _;

/// `serve`: bind the helper's socket and serve the service user's requests.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// The unix socket to bind (a stale socket there is replaced).
    #[arg(long)]
    pub socket: PathBuf,
    /// The service user's uid: the only peer served (0 allows root, and only then).
    #[arg(long)]
    pub allow_uid: u32,
    /// The socket's group (mode 0660).
    #[arg(long)]
    pub group: Option<String>,
    /// Where chat homes live.
    #[arg(long, default_value = "/srv/picortex/chats")]
    pub workspace_root: PathBuf,
    /// The audit log (one JSON line per request), appended to.
    #[arg(long)]
    pub audit_log: PathBuf,
    /// A host path hidden inside every sandbox (repeatable).
    #[arg(long)]
    pub hide: Vec<PathBuf>,
    /// The daemon's model gateway directory, relayed into each sandbox.
    #[arg(long)]
    pub gateway_dir: Option<PathBuf>,
    /// The sandbox's init executable (default: this binary).
    #[arg(long)]
    pub init_exe: Option<PathBuf>,
}

/// Serves until the process is stopped. Call [`crate::jail::run_init_if_requested`] first
/// thing in `main`, before this.
pub fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let init_exe = match args.init_exe {
        Some(path) => path,
        None => std::env::current_exe().context("finding this executable for the sandbox init")?,
    };
    let config = crate::server::ServerConfig {
        socket: args.socket,
        allow_uid: args.allow_uid,
        group: args.group,
        workspace_root: args.workspace_root,
        audit_log: args.audit_log,
        hide: args.hide,
        gateway_dir: args.gateway_dir,
        init_exe,
    };
    let server = crate::server::Server::bind(config).context("starting the helper")?;
    server.serve().context("serving")?;
    Ok(())
}
