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
    /// Where archived chats are kept (`<name>.tar.zst`); without it archiving is refused.
    #[arg(long)]
    pub archive_dir: Option<PathBuf>,
    /// The sandbox's init executable (default: this binary).
    #[arg(long)]
    pub init_exe: Option<PathBuf>,
    /// Stop when the process that started this one ends (a daemon that starts its own helper;
    /// the chats' sandboxes live on and the next helper finds them).
    #[arg(long, hide = true)]
    pub exit_with_parent: bool,
}

/// Serves until the process is stopped. Call [`crate::jail::run_init_if_requested`] first
/// thing in `main`, before this.
pub fn serve(args: ServeArgs) -> anyhow::Result<()> {
    if args.exit_with_parent {
        let parent = nix::unistd::getppid();
        nix::sys::prctl::set_pdeathsig(Some(nix::sys::signal::Signal::SIGTERM))
            .context("asking to stop with the daemon")?;
        // The daemon may have ended before the request above took effect.
        anyhow::ensure!(
            nix::unistd::getppid() == parent,
            "the daemon that started this helper has already ended"
        );
    }
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
        archive_dir: args.archive_dir,
    };
    let server = crate::server::Server::bind(config).context("starting the helper")?;
    server.serve().context("serving")?;
    Ok(())
}
