//! Where the CPU time went during a phase: this process's threads grouped by name (from
//! `/proc/self/task/*/stat`) and the whole host (from `/proc/stat`), so the rest of the machine's
//! load (other processes on a shared box) is visible next to the figures; and how many bytes
//! this process sent to storage (`write_bytes` of `/proc/self/io`).
//!
//! Times are in clock ticks of 10 ms (`CLK_TCK` = 100 on Linux), so short phases are coarse.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const TICK: Duration = Duration::from_millis(10);

/// The group the process's main thread is reported under.
pub const MAIN_THREAD: &str = "main";

/// CPU time used so far, per thread and for the host.
#[derive(Debug, Clone)]
pub struct Snapshot {
    at: Instant,
    /// tid → (thread name, user + system ticks).
    threads: BTreeMap<u32, (String, u64)>,
    /// Host-wide busy and total ticks, summed over all CPUs.
    host_busy: u64,
    host_total: u64,
    /// Bytes this process has caused to be written to storage.
    written: u64,
}

/// CPU used between two snapshots.
#[derive(Debug, Clone)]
pub struct Usage {
    pub wall: Duration,
    /// Thread group (name with a trailing number or `-N` removed) → CPU time.
    pub groups: BTreeMap<String, Duration>,
    /// This process, all threads.
    pub process: Duration,
    /// Every process on the host, kernel included.
    pub host_busy: Duration,
    /// CPU time the host had (wall × CPUs, as the kernel counts it).
    pub host_total: Duration,
    /// Bytes this process caused to be written to storage (page-cache pages it dirtied,
    /// whenever they reach the disk).
    pub written_bytes: u64,
}

impl Usage {
    /// Busy CPU time of everything else on the host in this window.
    pub fn others(&self) -> Duration {
        self.host_busy.saturating_sub(self.process)
    }
}

impl Snapshot {
    /// Reads the current counters. Unreadable entries are skipped (a thread may exit while we
    /// read), so this never fails; on a system without `/proc` it is simply empty.
    pub fn take() -> Snapshot {
        let mut threads = BTreeMap::new();
        if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
            for entry in dir.flatten() {
                let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
                    continue;
                };
                if let Some((name, ticks)) = std::fs::read_to_string(entry.path().join("stat"))
                    .ok()
                    .and_then(|s| parse_task_stat(&s))
                {
                    // The main thread is named after the executable; call it what it is.
                    let name = if tid == std::process::id() {
                        MAIN_THREAD.to_owned()
                    } else {
                        name
                    };
                    threads.insert(tid, (name, ticks));
                }
            }
        }
        let (host_busy, host_total) = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| parse_host_stat(&s))
            .unwrap_or((0, 0));
        let written = std::fs::read_to_string("/proc/self/io")
            .ok()
            .and_then(|s| parse_write_bytes(&s))
            .unwrap_or(0);
        Snapshot {
            at: Instant::now(),
            threads,
            host_busy,
            host_total,
            written,
        }
    }

    /// What was used from `self` until `later`. Threads that exited in between are not
    /// counted; threads born in between count from zero.
    pub fn until(&self, later: &Snapshot) -> Usage {
        let mut groups: BTreeMap<String, Duration> = BTreeMap::new();
        let mut process = Duration::ZERO;
        for (tid, (name, ticks)) in &later.threads {
            let before = self.threads.get(tid).map_or(0, |(_, t)| *t);
            let used = TICK * u32::try_from(ticks.saturating_sub(before)).unwrap_or(u32::MAX);
            process += used;
            *groups.entry(group_of(name)).or_default() += used;
        }
        let ticks = |n: u64| TICK * u32::try_from(n).unwrap_or(u32::MAX);
        Usage {
            wall: later.at.saturating_duration_since(self.at),
            groups,
            process,
            host_busy: ticks(later.host_busy.saturating_sub(self.host_busy)),
            host_total: ticks(later.host_total.saturating_sub(self.host_total)),
            written_bytes: later.written.saturating_sub(self.written),
        }
    }
}

/// `name` without a trailing thread number, so a pool's threads add up under one name.
fn group_of(name: &str) -> String {
    name.trim_end_matches(|c: char| c.is_ascii_digit())
        .trim_end_matches(['-', '_', '.', ' '])
        .to_owned()
}

/// (comm, utime + stime) from `/proc/<pid>/task/<tid>/stat`. The name may contain spaces and
/// parentheses, so fields are counted from the last `)`.
fn parse_task_stat(text: &str) -> Option<(String, u64)> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let name = text.get(open + 1..close)?.to_owned();
    let rest: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    // rest[0] is field 3 (state); utime and stime are fields 14 and 15.
    let utime: u64 = rest.get(11)?.parse().ok()?;
    let stime: u64 = rest.get(12)?.parse().ok()?;
    Some((name, utime + stime))
}

/// (busy, total) ticks from the aggregate `cpu` line of `/proc/stat`; idle and iowait are not
/// busy, guest time is already inside user time.
fn parse_host_stat(text: &str) -> Option<(u64, u64)> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    let total: u64 = fields.iter().sum();
    let idle = fields.get(3)? + fields.get(4)?;
    Some((total.saturating_sub(idle), total))
}

/// `write_bytes` from `/proc/<pid>/io`.
fn parse_write_bytes(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_task_stat_with_odd_names() {
        let line = "1234 (tokio (rt) 1) S 1 2 3 4 5 6 7 8 9 10 250 31 0 0 20 0 1 0";
        assert_eq!(
            parse_task_stat(line),
            Some(("tokio (rt) 1".to_owned(), 281))
        );
    }

    #[test]
    fn parses_host_stat() {
        let text = "cpu  100 5 50 1000 20 3 2 7 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n";
        assert_eq!(parse_host_stat(text), Some((167, 1187)));
    }

    #[test]
    fn parses_write_bytes() {
        let text = "rchar: 10\nwchar: 20\nread_bytes: 4096\nwrite_bytes: 81920\ncancelled_write_bytes: 0\n";
        assert_eq!(parse_write_bytes(text), Some(81920));
    }

    #[test]
    fn groups_pool_threads() {
        assert_eq!(group_of("picortex-rt-3"), "picortex-rt");
        assert_eq!(group_of("store-writer"), "store-writer");
        assert_eq!(group_of("ingest"), "ingest");
    }
}
