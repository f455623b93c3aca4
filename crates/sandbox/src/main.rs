//! `picortex-sandbox`: the privileged helper binary. `serve` binds the helper's socket and serves
//! the service user's typed requests ([`picortex_sandbox::server`]); the same executable is the
//! init process of every chat's sandbox.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "picortex-sandbox",
    version,
    about = "picortex's privileged sandbox helper"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the helper's unix socket (run as root).
    Serve(picortex_sandbox::cli::ServeArgs),
}

fn main() -> anyhow::Result<()> {
    // Sandbox stages re-execute this binary; they must run before anything else (threads, logs).
    picortex_sandbox::jail::run_init_if_requested();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match cli.command {
        Command::Serve(args) => picortex_sandbox::cli::serve(args),
    }
}
