//! The disk's own flush latency while a phase runs: a thread overwrites one 4 KiB block of a
//! file beside the data and `fdatasync`s it at a fixed interval. A shared disk's stalls show
//! here whatever the daemon does, so a slow request can be told apart from a slow disk in the
//! same window.

use std::fs::File;
use std::os::unix::fs::FileExt as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const BLOCK: usize = 4096;

/// A running probe; [`FlushProbe::finish`] stops it and hands back what it measured.
pub struct FlushProbe {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<std::io::Result<Vec<Duration>>>,
}

impl FlushProbe {
    /// Starts probing with a file in `dir`, one overwrite and `fdatasync` every `interval`.
    pub fn start(dir: &Path, interval: Duration) -> std::io::Result<FlushProbe> {
        let file = File::create(dir.join("flush-probe"))?;
        // The block exists on disk before the first timed flush, so each probe overwrites it
        // and no flush has file size or allocation to record.
        file.write_all_at(&[0u8; BLOCK], 0)?;
        file.sync_all()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("flush-probe".into())
            .spawn(move || {
                let mut block = [0u8; BLOCK];
                let mut latencies = Vec::new();
                let started = Instant::now();
                let mut next = Duration::ZERO;
                while !stopping.load(Ordering::Relaxed) {
                    if let Some(wait) = next.checked_sub(started.elapsed()) {
                        std::thread::sleep(wait);
                    }
                    block[0] = block[0].wrapping_add(1);
                    let at = Instant::now();
                    file.write_all_at(&block, 0)?;
                    file.sync_data()?;
                    latencies.push(at.elapsed());
                    next += interval;
                }
                Ok(latencies)
            })?;
        Ok(FlushProbe { stop, thread })
    }

    /// Stops the probe and returns the latency of each overwrite and flush, in order.
    pub fn finish(self) -> std::io::Result<Vec<Duration>> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .map_err(|_| std::io::Error::other("the flush probe panicked"))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_until_finished() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let probe = FlushProbe::start(dir.path(), Duration::from_millis(1))?;
        std::thread::sleep(Duration::from_millis(30));
        let latencies = probe.finish()?;
        assert!(!latencies.is_empty());
        assert_eq!(
            std::fs::metadata(dir.path().join("flush-probe"))?.len(),
            4096
        );
        Ok(())
    }
}
