//! A chat's control group: where it lives (below the helper's own cgroup, in `picortex/<name>`),
//! its limits (memory without extra swap, pids, a share of one CPU), who is in it, and its
//! removal. cgroup v2 when the unified hierarchy is mounted at `/sys/fs/cgroup`, otherwise the v1
//! `memory`, `pids` and `cpu` hierarchies.

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::{JailError, Limits};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// The v1 hierarchies a sandbox needs.
const V1_CONTROLLERS: [&str; 3] = ["memory", "pids", "cpu"];
/// The CPU quota's period. A long one (the kernel's maximum, 1 s) keeps a chat's average at
/// its share while letting a short burst (an agent starting, a turn) run at full speed: with
/// 100 ms periods a quarter CPU throttles every burst after 25 ms, which made a first Claude Code
/// turn about five times slower in the sandbox benchmark.
const CPU_PERIOD_US: u64 = 1_000_000;

/// Which cgroup interface the host offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupVersion {
    V1,
    V2,
}

pub(crate) fn version() -> CgroupVersion {
    if Path::new(CGROUP_ROOT).join("cgroup.controllers").exists() {
        CgroupVersion::V2
    } else {
        CgroupVersion::V1
    }
}

/// One chat's cgroup: a directory per hierarchy (one on v2, three on v1).
#[derive(Debug)]
pub(crate) struct Cgroup {
    version: CgroupVersion,
    /// (controller, directory); the controller is "" on v2.
    dirs: Vec<(&'static str, PathBuf)>,
}

impl Cgroup {
    /// Where the chat's cgroup is (whether or not it exists yet).
    pub(crate) fn for_chat(name: &str) -> Result<Self, JailError> {
        let own = std::fs::read_to_string("/proc/self/cgroup").map_err(|source| JailError::Io {
            what: "reading /proc/self/cgroup".into(),
            source,
        })?;
        let version = version();
        let dirs = match version {
            CgroupVersion::V2 => {
                let path = own_path(&own, None)?;
                vec![("", chat_dir(Path::new(CGROUP_ROOT), &path, name))]
            }
            CgroupVersion::V1 => V1_CONTROLLERS
                .iter()
                .map(|&controller| {
                    let path = own_path(&own, Some(controller))?;
                    let mount = Path::new(CGROUP_ROOT).join(controller);
                    Ok((controller, chat_dir(&mount, &path, name)))
                })
                .collect::<Result<_, JailError>>()?,
        };
        Ok(Self { version, dirs })
    }

    /// Creates the directories (reusing ones left behind) and writes the limits.
    pub(crate) fn create(&self, limits: &Limits) -> Result<(), JailError> {
        let quota = CPU_PERIOD_US * u64::from(limits.cpu_percent.max(1)) / 100;
        match self.version {
            CgroupVersion::V2 => {
                let (_, dir) = &self.dirs[0];
                // Controllers must be enabled in every ancestor's subtree_control; the helper's
                // own cgroup may refuse (it has processes), in which case the limits below fail
                // with a clear path.
                if let Some(parent) = dir.parent() {
                    mkdir_all(parent)?;
                    if let Some(own) = parent.parent() {
                        let _ = write(&own.join("cgroup.subtree_control"), "+memory +pids +cpu");
                    }
                    let _ = write(&parent.join("cgroup.subtree_control"), "+memory +pids +cpu");
                }
                mkdir_all(dir)?;
                write(&dir.join("memory.max"), &limits.memory_bytes.to_string())?;
                write_if_present(&dir.join("memory.swap.max"), "0")?;
                write(&dir.join("pids.max"), &limits.pids.to_string())?;
                write(&dir.join("cpu.max"), &format!("{quota} {CPU_PERIOD_US}"))?;
                // Unused quota carries over up to one more quota (kernels with burst support).
                let _ = write_if_present(&dir.join("cpu.max.burst"), &quota.to_string());
            }
            CgroupVersion::V1 => {
                for (controller, dir) in &self.dirs {
                    mkdir_all(dir)?;
                    match *controller {
                        "memory" => {
                            let bytes = limits.memory_bytes.to_string();
                            // memsw must stay ≥ the memory limit, so order the writes by
                            // direction; writing both twice covers raising and lowering.
                            let memsw = dir.join("memory.memsw.limit_in_bytes");
                            let _ = write_if_present(&memsw, &bytes);
                            write(&dir.join("memory.limit_in_bytes"), &bytes)?;
                            write_if_present(&memsw, &bytes)?;
                        }
                        "pids" => write(&dir.join("pids.max"), &limits.pids.to_string())?,
                        "cpu" => {
                            write(&dir.join("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string())?;
                            write(&dir.join("cpu.cfs_quota_us"), &quota.to_string())?;
                            let burst = dir.join("cpu.cfs_burst_us");
                            let _ = write_if_present(&burst, &quota.to_string());
                        }
                        _ => {}
                    }
                }
            }
        }
        Ok(())
    }

    /// Each hierarchy's `cgroup.procs`, open for writing: a stage writes `0` to each to join.
    pub(crate) fn join_files(&self) -> Result<Vec<File>, JailError> {
        self.dirs
            .iter()
            .map(|(_, dir)| {
                let path = dir.join("cgroup.procs");
                OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(|source| JailError::Cgroup { path, source })
            })
            .collect()
    }

    /// Host pids of the processes in the cgroup (empty when it does not exist).
    pub(crate) fn members(&self) -> Result<Vec<i32>, JailError> {
        let mut pids = Vec::new();
        for (_, dir) in &self.dirs {
            let path = dir.join("cgroup.procs");
            match std::fs::read_to_string(&path) {
                Ok(text) => pids.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok())),
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(source) => return Err(JailError::Cgroup { path, source }),
            }
        }
        pids.sort_unstable();
        pids.dedup();
        Ok(pids)
    }

    /// Removes the directories; ones already gone are fine.
    pub(crate) fn remove(&self) -> Result<(), JailError> {
        for (_, dir) in &self.dirs {
            match std::fs::remove_dir(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(JailError::Cgroup {
                        path: dir.clone(),
                        source,
                    });
                }
            }
        }
        Ok(())
    }
}

/// The helper's own cgroup path in a hierarchy, from `/proc/self/cgroup` (`id:controllers:path`;
/// v2 is the line with id 0 and no controllers).
fn own_path(proc_self_cgroup: &str, controller: Option<&str>) -> Result<String, JailError> {
    proc_self_cgroup
        .lines()
        .find_map(|line| {
            let mut fields = line.splitn(3, ':');
            let (_id, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
            let matches = match controller {
                None => controllers.is_empty(),
                Some(wanted) => controllers.split(',').any(|c| c == wanted),
            };
            matches.then(|| path.to_owned())
        })
        .ok_or_else(|| {
            JailError::CgroupLayout(format!(
                "no {} hierarchy in /proc/self/cgroup",
                controller.unwrap_or("unified")
            ))
        })
}

fn chat_dir(mount: &Path, own: &str, name: &str) -> PathBuf {
    mount
        .join(own.trim_start_matches('/'))
        .join("picortex")
        .join(name)
}

fn mkdir_all(dir: &Path) -> Result<(), JailError> {
    std::fs::create_dir_all(dir).map_err(|source| JailError::Cgroup {
        path: dir.to_path_buf(),
        source,
    })
}

fn write(path: &Path, value: &str) -> Result<(), JailError> {
    std::fs::write(path, value).map_err(|source| JailError::Cgroup {
        path: path.to_path_buf(),
        source,
    })
}

fn write_if_present(path: &Path, value: &str) -> Result<(), JailError> {
    if path.exists() {
        write(path, value)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_own_paths_in_both_versions() {
        let text = "9:name=systemd:/\n8:pids:/a\n2:cpu,cpuacct:/b/c\n4:memory:/m\n0::/unified\n";
        assert_eq!(own_path(text, Some("pids")).unwrap(), "/a");
        assert_eq!(own_path(text, Some("cpu")).unwrap(), "/b/c");
        assert_eq!(own_path(text, Some("memory")).unwrap(), "/m");
        assert_eq!(own_path(text, None).unwrap(), "/unified");
        assert!(own_path(text, Some("blkio")).is_err());
        assert_eq!(
            chat_dir(Path::new("/sys/fs/cgroup/pids"), "/", "chat-01234567"),
            PathBuf::from("/sys/fs/cgroup/pids/picortex/chat-01234567")
        );
    }
}
