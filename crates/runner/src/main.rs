//! `picortex-runner`: started by the daemon in a chat's tmux window `agent`, in the chat's home.
//! See [`picortex_runner::cli`] for its command line.

use clap::Parser as _;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    picortex_runner::cli::run(picortex_runner::cli::Args::parse()).await
}
