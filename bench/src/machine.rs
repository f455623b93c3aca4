//! What the figures were measured on: CPUs, CPU model, kernel, the filesystem holding the data,
//! the load average when the run started, the date and the commit.

use std::path::Path;

/// A description of the machine and of where the data lives.
#[derive(Debug, Clone)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub kernel: String,
    /// Filesystem type and device of the data directory, e.g. `ext4 on /dev/vda`.
    pub data_fs: String,
    pub loadavg: String,
    pub date: String,
    /// `git describe --always --dirty` of the checkout, when the benchmark runs (normally the
    /// one it was just built from by `cargo run`).
    pub commit: String,
}

impl Machine {
    /// Describes this machine, with the filesystem that holds `data_dir`. Anything that cannot
    /// be read is reported as `unknown`.
    pub fn describe(data_dir: &Path) -> Machine {
        let unknown = || "unknown".to_owned();
        let read = |p: &str| std::fs::read_to_string(p).ok();
        Machine {
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model: read("/proc/cpuinfo")
                .and_then(|s| {
                    s.lines()
                        .find(|l| l.starts_with("model name"))
                        .and_then(|l| l.split_once(':'))
                        .map(|(_, v)| v.trim().to_owned())
                })
                .unwrap_or_else(unknown),
            kernel: read("/proc/sys/kernel/osrelease")
                .map(|s| format!("Linux {}", s.trim()))
                .unwrap_or_else(unknown),
            data_fs: read("/proc/self/mounts")
                .and_then(|mounts| filesystem_of(&mounts, data_dir))
                .unwrap_or_else(unknown),
            loadavg: read("/proc/loadavg")
                .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
                .unwrap_or_else(unknown),
            date: time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_else(|_| unknown()),
            commit: git_describe().unwrap_or_else(unknown),
        }
    }
}

/// The checkout this crate was built from, as `git describe --always --dirty` sees it now.
fn git_describe() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_owned())
}

/// The mount that holds `path` (longest mount point that is a prefix of it), as
/// `<fstype> on <device> (<mount point>)`.
fn filesystem_of(mounts: &str, path: &Path) -> Option<String> {
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    mounts
        .lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let device = f.next()?;
            let mount_point = f.next()?.replace("\\040", " ");
            let fstype = f.next()?;
            path.starts_with(&mount_point)
                .then(|| (mount_point, format!("{fstype} on {device}")))
        })
        .max_by_key(|(mount_point, _)| mount_point.len())
        .map(|(mount_point, fs)| format!("{fs} ({mount_point})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_deepest_mount() {
        let mounts =
            "/dev/vda / ext4 rw 0 0\ntmpfs /tmp tmpfs rw 0 0\n/dev/vdb /work/data xfs rw 0 0\n";
        assert_eq!(
            filesystem_of(mounts, Path::new("/work/data/x/y")).as_deref(),
            Some("xfs on /dev/vdb (/work/data)")
        );
        assert_eq!(
            filesystem_of(mounts, Path::new("/tmp/abc")).as_deref(),
            Some("tmpfs on tmpfs (/tmp)")
        );
        assert_eq!(
            filesystem_of(mounts, Path::new("/work/database")).as_deref(),
            Some("ext4 on /dev/vda (/)")
        );
    }
}
