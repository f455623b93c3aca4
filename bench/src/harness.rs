//! What every benchmark binary sets the daemon up with: its JSON logs written to a file in the
//! scratch directory (as `picortex serve` would log, but off the terminal), and two tokio
//! runtimes, one for the daemon sized like `picortex serve` (a worker per CPU) and one for the
//! load generator and stand-ins, so their threads can be told apart in the CPU figures.

use std::path::Path;
use std::sync::Arc;

/// Sends the daemon's logs (JSON, `info`) to `dir/daemon.log`.
pub fn log_daemon_to(dir: &Path) -> anyhow::Result<()> {
    let log = std::fs::File::create(dir.join("daemon.log"))?;
    // try_init: a subscriber set earlier in the process stays.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .with_writer(Arc::new(log))
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .flatten_event(true)
        .try_init();
    Ok(())
}

/// The daemon's runtime (threads `picortex-rt`) and the load side's (`loadgen-rt`, 2 workers).
pub fn runtimes() -> anyhow::Result<(tokio::runtime::Runtime, tokio::runtime::Runtime)> {
    let daemon = tokio::runtime::Builder::new_multi_thread()
        .thread_name("picortex-rt")
        .enable_all()
        .build()?;
    let load = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("loadgen-rt")
        .enable_all()
        .build()?;
    Ok((daemon, load))
}
