//! The chat's view of the filesystem, built by the init in its new mount namespace: everything
//! private (nothing propagates back to the host), a fresh /proc for the new PID namespace,
//! private tmpfs on /tmp, /var/tmp and /dev/shm, empty tmpfs over the workspace root, the hidden
//! paths, /run and any directory others may not search above the home or an exec directory,
//! and then, bound back in, the chat's own home at its usual path, any exec directory that was
//! under a covered path or a private tmp (read-only), and the gateway's directory (read-only).

use std::os::fd::{AsRawFd as _, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::{OFlag, open};
use nix::mount::{MsFlags, mount};
use nix::sys::stat::Mode;

use super::{GATEWAY_DIR_INSIDE, JailError, SandboxSpec};

/// Directories every sandbox gets a private, empty, world-writable (sticky) tmpfs on.
const PRIVATE_TMP: [&str; 3] = ["/tmp", "/var/tmp", "/dev/shm"];

/// A host directory to bring back after the covering mounts, opened before they hide it.
struct BindBack {
    source: OwnedFd,
    target: PathBuf,
    flags: MsFlags,
}

pub(crate) fn build(spec: &SandboxSpec) -> Result<(), JailError> {
    mount_or(
        None,
        "/",
        None,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None,
        "making / private",
    )?;

    let mut covers: Vec<PathBuf> = vec![spec.workspace_root.clone(), PathBuf::from("/run")];
    covers.extend(spec.hide.iter().cloned());
    // A directory the chat needs below one its user may not search (e.g. a checkout under a
    // 0700 /root) could not be reached even when bound back: cover that ancestor too, so the
    // way down goes through the cover's own searchable directories.
    let needed = std::iter::once(&spec.home).chain(spec.exec_dirs.iter());
    covers.extend(needed.filter_map(|dir| closed_ancestor(dir)));
    // Parents first, so a hidden path inside an already covered one is simply gone.
    covers.sort_by_key(|p| p.components().count());
    covers.dedup();
    let covered = |path: &Path| {
        covers.iter().any(|c| path.starts_with(c))
            || PRIVATE_TMP.iter().any(|t| path.starts_with(t))
    };

    let mut binds: Vec<BindBack> = Vec::new();
    if covered(&spec.home) {
        binds.push(BindBack {
            source: open_path(&spec.home)?,
            target: spec.home.clone(),
            flags: MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        });
    }
    for dir in &spec.exec_dirs {
        if covered(dir) && dir.is_dir() {
            binds.push(BindBack {
                source: open_path(dir)?,
                target: dir.clone(),
                flags: MsFlags::MS_RDONLY | MsFlags::MS_NODEV,
            });
        }
    }
    if let Some(gateway) = &spec.gateway_dir {
        binds.push(BindBack {
            source: open_path(gateway)?,
            target: PathBuf::from(GATEWAY_DIR_INSIDE),
            flags: MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        });
    }

    // /proc first: the bind-backs below go through /proc/self/fd, and this /proc shows only the
    // new PID namespace.
    mount_or(
        Some("proc"),
        "/proc",
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None,
        "mounting /proc",
    )?;
    let tmp_options = format!("mode=1777,size={}", spec.limits.memory_bytes);
    for dir in PRIVATE_TMP {
        if Path::new(dir).is_dir() {
            mount_or(
                Some("tmpfs"),
                dir,
                Some("tmpfs"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                Some(&tmp_options),
                &format!("mounting a private {dir}"),
            )?;
        }
    }
    for cover in &covers {
        hide(cover)?;
    }
    // Shallow targets first: a directory bound back over an ancestor of a deeper one (the
    // runner's directory above the home, say) would otherwise shadow it. What was hidden inside
    // a bound directory is hidden again before anything deeper is bound.
    binds.sort_by_key(|b| b.target.components().count());
    for bind in &binds {
        std::fs::create_dir_all(&bind.target).map_err(|source| JailError::Io {
            what: format!("creating the mount point {}", bind.target.display()),
            source,
        })?;
        let source = format!("/proc/self/fd/{}", bind.source.as_raw_fd());
        let what = format!("binding {} back", bind.target.display());
        mount_or(
            Some(source.as_str()),
            &bind.target,
            None,
            MsFlags::MS_BIND,
            None,
            &what,
        )?;
        mount_or(
            None,
            &bind.target,
            None,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | bind.flags,
            None,
            &what,
        )?;
        for cover in covers
            .iter()
            .filter(|c| c.starts_with(&bind.target) && **c != bind.target)
        {
            hide(cover)?;
        }
    }
    Ok(())
}

/// Covers `dir` with a small empty tmpfs. A path that does not exist (or is inside something
/// already covered) has nothing to hide.
fn hide(dir: &Path) -> Result<(), JailError> {
    if !dir.is_dir() {
        return Ok(());
    }
    mount_or(
        Some("tmpfs"),
        dir,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=0755,size=1m,nr_inodes=1024"),
        &format!("hiding {}", dir.display()),
    )
}

/// The highest ancestor of `path` (below `/`) that others may not search, if any.
fn closed_ancestor(path: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    path.ancestors()
        .skip(1)
        .filter(|a| a.parent().is_some())
        .filter(|a| {
            std::fs::metadata(a).is_ok_and(|m| m.is_dir() && m.permissions().mode() & 0o001 == 0)
        })
        .last()
        .map(Path::to_owned)
}

fn open_path(path: &Path) -> Result<OwnedFd, JailError> {
    open(
        path,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(JailError::sys(format!("opening {}", path.display())))
}

fn mount_or<P: AsRef<Path> + ?Sized>(
    source: Option<&str>,
    target: &P,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
    what: &str,
) -> Result<(), JailError> {
    mount(source, target.as_ref(), fstype, flags, data).map_err(JailError::sys(what))
}
