//! Per-chat Linux users, groups and homes, and the file operations the helper performs inside a
//! home on the daemon's behalf.
//!
//! A chat's user and its home share one name (`chat-<8 hex>[-<n>]`, see [`crate::ids`]). The home
//! lies under the workspace root, is mode 0700 and owned by the user, and has the same layout as
//! the unprivileged daemon's homes (`picortex::workspace`): `.picortex/` with `chat_id`, `turns/`
//! and `prompts/`, `.tmp/`, a `.gitignore` keeping runtime state out of git, and a git repository
//! whose first commit holds the seed files. `.picortex/chat_id` is written last, so a home
//! without it is never adopted; a different id there means a hash collision and the next suffix
//! is tried.
//!
//! Users and groups are made with `groupadd`/`useradd` and removed with `userdel`/`groupdel`,
//! always with an argument vector, never a shell. A failed provisioning removes whatever it made.
//!
//! Files inside a home are reached only through descriptors: the home is opened without following
//! symlinks, and paths below it are resolved with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS
//! | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV)` (or component by component with `O_NOFOLLOW` when
//! directories are created), on a short-lived thread whose filesystem uid and gid are the chat
//! user's, so the kernel checks the chat's rights rather than root's.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Write as _};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, RenameFlags, ResolveFlag, openat, openat2, renameat2};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, UnixAddr, connect, socket};
use nix::sys::stat::{Mode, SFlag, fstat, mkdirat};
use nix::unistd::{Gid, Group, Uid, UnlinkatFlags, User, fchown, setfsgid, setfsuid, unlinkat};

use crate::archive::{self, ArchiveError};
use crate::ids;
use crate::protocol::{ErrorKind, HelperError, SeedFile, validate_relative_path};

/// Where `useradd`, `groupadd`, `userdel` and `groupdel` are looked for.
const ADMIN_TOOL_DIRS: &[&str] = &["/usr/sbin", "/sbin", "/usr/bin", "/bin"];
/// The PATH programs started by the helper see.
const SAFE_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// The login shell of every chat user: none. The sandbox is the only way in.
const NO_LOGIN_SHELL: &str = "/usr/sbin/nologin";
/// What `.gitignore` holds in every home (identical to the unprivileged layout).
pub const GITIGNORE: &str = ".picortex/*\n!.picortex/prompts/\n.tmp/\n";
/// The largest file the bridge copies.
pub const MAX_COPY_BYTES: u64 = 1 << 30;
/// The most bytes of `.picortex/chat_id` read (chat ids are far shorter).
const MAX_MARKER_BYTES: u64 = 1024;

/// A provisioned chat: its user, group and home.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

/// A chat's name and home if it exists, and the first unused name and home for it.
struct Located {
    found: Option<(String, PathBuf)>,
    free: Option<(String, PathBuf)>,
}

/// Creates, finds and removes chats under one workspace root.
pub struct Provisioner {
    root: PathBuf,
    /// `useradd` and friends lock `/etc/passwd` themselves and fail rather than wait, so the
    /// helper runs one at a time.
    accounts: Mutex<()>,
    /// One lock per chat base name: colliding chat ids share the suffix search.
    chats: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    /// Where archived homes are kept ([`crate::archive`]); provisioning restores from there.
    archive_dir: Option<PathBuf>,
}

impl Provisioner {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            accounts: Mutex::new(()),
            chats: Mutex::new(HashMap::new()),
            archive_dir: None,
        }
    }

    /// Archives go to (and are restored from) `archive_dir`.
    pub fn with_archive_dir(mut self, archive_dir: Option<PathBuf>) -> Self {
        self.archive_dir = archive_dir;
        self
    }

    /// Writes the chat's home to its verified archive, then removes the home, user and group.
    /// The caller holds the chat's lock and has stopped its sandbox (and so its cgroup).
    pub fn archive(&self, chat: &ChatUser) -> Result<archive::ArchiveReport, HelperError> {
        let dir = self.archive_dir.as_deref().ok_or_else(|| {
            HelperError::new(
                ErrorKind::InvalidArgument,
                "the helper has no --archive-dir",
            )
        })?;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| io_error(dir, e))?;
        let report = archive::archive_home(&chat.home, dir, &chat.name).map_err(archive_error)?;
        self.destroy(chat)?;
        Ok(report)
    }

    /// Brings an archived chat back under `name`/`home` (both free): a new user (perhaps with a
    /// new uid; the old owner's files are handed to it, others keep theirs), the home restored
    /// and verified, and only then the archive removed. `None` when the chat has no archive.
    fn restore(
        &self,
        chat_id: &str,
        name: &str,
        home: &Path,
    ) -> Result<Option<ChatUser>, HelperError> {
        let Some(dir) = self.archive_dir.as_deref() else {
            return Ok(None);
        };
        let path = archive::archive_path(dir, name);
        if path.symlink_metadata().is_err() {
            return Ok(None);
        }
        match archive::read_marker(&path).map_err(archive_error)? {
            Some(owner) if owner == chat_id => {}
            // A colliding chat's archive under this name: not ours.
            _ => return Ok(None),
        }
        let mut undo = Rollback::new(name, home);
        let (uid, gid) = {
            let _accounts = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
            if lookup_user(name)?.is_some() || Group::from_name(name).ok().flatten().is_some() {
                remove_account(name)?;
            }
            undo.account = true;
            run_admin(
                "useradd",
                &[
                    OsStr::new("--no-create-home"),
                    OsStr::new("--no-log-init"),
                    OsStr::new("--user-group"),
                    OsStr::new("--home-dir"),
                    home.as_os_str(),
                    OsStr::new("--shell"),
                    OsStr::new(NO_LOGIN_SHELL),
                    OsStr::new("--comment"),
                    OsStr::new("picortex chat"),
                    OsStr::new("--"),
                    OsStr::new(name),
                ],
            )?;
            lookup_user(name)?.ok_or_else(|| {
                HelperError::system(format!("useradd succeeded but {name} does not exist"))
            })?
        };
        // restore_home never leaves a partial home behind, so only the account needs undoing.
        archive::restore_home(&path, home, Some(archive::Reown { uid, gid }))
            .map_err(archive_error)?;
        undo.disarm();
        std::fs::remove_file(&path).map_err(|e| io_error(&path, e))?;
        Ok(Some(ChatUser {
            name: name.to_owned(),
            uid,
            gid,
            home: home.to_owned(),
        }))
    }

    /// At start-up: removes what transitions cut short by a crash left behind
    /// ([`archive::sweep_leftovers`]), and the accounts of homes whose removal or restore was
    /// interrupted and that are not there now (a restore makes its account again). Returns the
    /// names it cleaned up after.
    pub fn sweep_leftovers(&self) -> Result<Vec<String>, HelperError> {
        let names = archive::sweep_leftovers(&self.root, self.archive_dir.as_deref())
            .map_err(archive_error)?;
        let _accounts = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
        for name in &names {
            if ids::validate_chat_name(name).is_ok() && !self.root.join(name).exists() {
                remove_account(name)?;
            }
        }
        Ok(names)
    }

    /// Removes every archive of the chat ([`archive::remove_chat_archives`]); whether there was
    /// one. Destroying a chat uses it.
    pub fn discard_archives(&self, chat_id: &str) -> Result<bool, HelperError> {
        check_chat_id(chat_id)?;
        match self.archive_dir.as_deref() {
            Some(dir) => archive::remove_chat_archives(dir, chat_id).map_err(archive_error),
            None => Ok(false),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The lock serialising every change to one chat (and to chats whose ids collide with it).
    pub fn chat_lock(&self, chat_id: &str) -> Arc<Mutex<()>> {
        let mut chats = self.chats.lock().unwrap_or_else(PoisonError::into_inner);
        chats
            .entry(ids::chat_dir_name(chat_id))
            .or_insert_with(|| Arc::new(Mutex::new(())))
            .clone()
    }

    /// Where the chat lives, if anywhere, and the first free name for it. Every suffix is
    /// looked at: destroying a colliding chat leaves a gap that must not hide the chats after it.
    fn locate(&self, chat_id: &str) -> Result<Located, HelperError> {
        let mut free = None;
        for n in 0..=ids::MAX_SUFFIX {
            let name = ids::chat_name_with_suffix(chat_id, n);
            let home = self.root.join(&name);
            match read_marker(&home) {
                Ok(Some(owner)) if owner == chat_id => {
                    return Ok(Located {
                        found: Some((name, home)),
                        free,
                    });
                }
                Ok(Some(_)) => {}
                // A marker that is a symlink (or otherwise refused) is nobody's we can trust.
                Err(e) if e.kind == ErrorKind::PathRefused => {}
                Err(e) => return Err(e),
                // A directory without its marker is someone's half-made home: never adopt it.
                Ok(None) if home.symlink_metadata().is_ok() => {}
                Ok(None) => {
                    if free.is_none() {
                        free = Some((name, home));
                    }
                }
            }
        }
        Ok(Located { found: None, free })
    }

    /// The chat's user and home if it is provisioned. The caller holds the chat's lock.
    pub fn find(&self, chat_id: &str) -> Result<Option<ChatUser>, HelperError> {
        check_chat_id(chat_id)?;
        let Some((name, home)) = self.locate(chat_id)?.found else {
            return Ok(None);
        };
        let (uid, gid) = lookup_user(&name)?.ok_or_else(|| {
            HelperError::system(format!(
                "{name}: the home exists but the user does not (provision again to repair)"
            ))
        })?;
        Ok(Some(ChatUser {
            name,
            uid,
            gid,
            home,
        }))
    }

    /// Creates the chat's user, group and home, or returns them if they exist (`created` false).
    /// The caller holds the chat's lock.
    pub fn provision(
        &self,
        chat_id: &str,
        seed_files: &[SeedFile],
    ) -> Result<(ChatUser, bool), HelperError> {
        check_chat_id(chat_id)?;
        for seed in seed_files {
            validate_relative_path(&seed.path)?;
        }
        self.ensure_root()?;
        match self.locate(chat_id)? {
            Located {
                found: Some((name, home)),
                ..
            } => {
                if let Some(dir) = self.archive_dir.as_deref() {
                    archive::remove_stale_archive(dir, &name, chat_id).map_err(archive_error)?;
                }
                let chat = match lookup_user(&name)? {
                    Some((uid, gid)) => ChatUser {
                        name,
                        uid,
                        gid,
                        home,
                    },
                    None => self.repair_user(&name, &home)?,
                };
                Ok((chat, false))
            }
            Located {
                free: Some((name, home)),
                ..
            } => {
                // An archived chat comes back under the name its archive carries; any suffix
                // may hold it, so every one is looked at before a new home is made.
                for n in 0..=ids::MAX_SUFFIX {
                    let candidate = ids::chat_name_with_suffix(chat_id, n);
                    let candidate_home = self.root.join(&candidate);
                    if candidate_home.symlink_metadata().is_ok() {
                        continue;
                    }
                    if let Some(chat) = self.restore(chat_id, &candidate, &candidate_home)? {
                        return Ok((chat, false));
                    }
                }
                let chat = self.create(chat_id, &name, &home, seed_files)?;
                Ok((chat, true))
            }
            Located { .. } => Err(HelperError::system(format!(
                "no free name for chat {chat_id:?} after {} collisions",
                ids::MAX_SUFFIX
            ))),
        }
    }

    /// Removes the chat's user, group and home. The caller holds the chat's lock and has stopped
    /// its sandbox (this stops nothing itself).
    pub fn destroy(&self, chat: &ChatUser) -> Result<(), HelperError> {
        remove_home(&chat.home)?;
        let _accounts = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
        remove_account(&chat.name)
    }

    fn ensure_root(&self) -> Result<(), HelperError> {
        if self.root.is_dir() {
            return Ok(());
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(&self.root)
            .map_err(|e| io_error(&self.root, e))
    }

    fn create(
        &self,
        chat_id: &str,
        name: &str,
        home: &Path,
        seed_files: &[SeedFile],
    ) -> Result<ChatUser, HelperError> {
        let mut undo = Rollback::new(name, home);
        let (uid, gid) = {
            let _accounts = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
            // A user without a home is left over from a provisioning that was killed midway
            // (rollback could not run); the chat's lock is held, so it is nobody else's.
            if lookup_user(name)?.is_some() || Group::from_name(name).ok().flatten().is_some() {
                remove_account(name)?;
            }
            undo.account = true;
            // `--user-group` makes the chat's own group in the same call (one process fewer).
            run_admin(
                "useradd",
                &[
                    OsStr::new("--no-create-home"),
                    OsStr::new("--no-log-init"),
                    OsStr::new("--user-group"),
                    OsStr::new("--home-dir"),
                    home.as_os_str(),
                    OsStr::new("--shell"),
                    OsStr::new(NO_LOGIN_SHELL),
                    OsStr::new("--comment"),
                    OsStr::new("picortex chat"),
                    OsStr::new("--"),
                    OsStr::new(name),
                ],
            )?;
            lookup_user(name)?.ok_or_else(|| {
                HelperError::system(format!("useradd succeeded but {name} does not exist"))
            })?
        };
        undo.home = true;
        build_home(chat_id, home, uid, gid, seed_files).map_err(|e| {
            HelperError::system(format!("provisioning {name} failed and was undone: {e}"))
        })?;
        undo.disarm();
        Ok(ChatUser {
            name: name.to_owned(),
            uid,
            gid,
            home: home.to_owned(),
        })
    }

    /// The home and its marker exist but the user is gone (deleted by hand, or a restore):
    /// recreate the account and give it the home back.
    fn repair_user(&self, name: &str, home: &Path) -> Result<ChatUser, HelperError> {
        let (uid, gid) = {
            let _accounts = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
            if Group::from_name(name).ok().flatten().is_none() {
                run_admin("groupadd", &[OsStr::new("--"), OsStr::new(name)])?;
            }
            run_admin(
                "useradd",
                &[
                    OsStr::new("--no-create-home"),
                    OsStr::new("--no-log-init"),
                    OsStr::new("--no-user-group"),
                    OsStr::new("--gid"),
                    OsStr::new(name),
                    OsStr::new("--home-dir"),
                    home.as_os_str(),
                    OsStr::new("--shell"),
                    OsStr::new(NO_LOGIN_SHELL),
                    OsStr::new("--"),
                    OsStr::new(name),
                ],
            )?;
            lookup_user(name)?
                .ok_or_else(|| HelperError::system(format!("{name} missing after useradd")))?
        };
        chown_tree(home, uid, gid)?;
        Ok(ChatUser {
            name: name.to_owned(),
            uid,
            gid,
            home: home.to_owned(),
        })
    }
}

/// Undoes a half-made chat when dropped, unless disarmed.
struct Rollback<'a> {
    name: &'a str,
    home_path: &'a Path,
    account: bool,
    home: bool,
}

impl<'a> Rollback<'a> {
    fn new(name: &'a str, home_path: &'a Path) -> Self {
        Self {
            name,
            home_path,
            account: false,
            home: false,
        }
    }

    fn disarm(&mut self) {
        self.account = false;
        self.home = false;
    }
}

impl Drop for Rollback<'_> {
    fn drop(&mut self) {
        if self.home
            && let Err(e) = remove_home(self.home_path)
        {
            tracing::error!(home = %self.home_path.display(), error = %e, "rollback: removing the home failed");
        }
        if self.account
            && let Err(e) = remove_account(self.name)
        {
            tracing::error!(user = self.name, error = %e, "rollback: removing the user failed");
        }
    }
}

/// Lays out a new home as root, hands it to the chat user, and makes the first commit as them.
fn build_home(
    chat_id: &str,
    home: &Path,
    uid: u32,
    gid: u32,
    seed_files: &[SeedFile],
) -> Result<(), HelperError> {
    let dirs = [
        home.to_owned(),
        home.join(".picortex"),
        home.join(".picortex/turns"),
        home.join(".picortex/prompts"),
        home.join(".tmp"),
    ];
    for dir in &dirs {
        // Not recursive: the home itself must be new, an existing directory is not ours to adopt.
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(dir)
            .map_err(|e| io_error(dir, e))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| io_error(dir, e))?;
    }
    let mut written = vec![PathBuf::from(".gitignore")];
    std::fs::write(home.join(".gitignore"), GITIGNORE)
        .map_err(|e| io_error(&home.join(".gitignore"), e))?;
    for seed in seed_files {
        let target = home.join(&seed.path);
        if let Some(parent) = target.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(|e| io_error(parent, e))?;
        }
        std::fs::write(&target, &seed.contents).map_err(|e| io_error(&target, e))?;
        written.push(PathBuf::from(&seed.path));
    }
    // Everything above was made by root in a directory nobody else can reach yet; now it
    // becomes the chat's.
    chown_tree(home, uid, gid)?;
    let git = |args: &[&OsStr]| -> Result<(), HelperError> {
        let out = Command::new("git")
            .arg("-C")
            .arg(home)
            .args([
                "-c",
                "user.name=picortex",
                "-c",
                "user.email=picortex@localhost",
            ])
            .args(args)
            .env_clear()
            .env("PATH", SAFE_PATH)
            .env("HOME", home)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .current_dir(home)
            .uid(uid)
            .gid(gid)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| HelperError::system(format!("git is not usable: {e}")))?;
        if !out.status.success() {
            return Err(HelperError::system(format!(
                "git {}: {}",
                args.iter()
                    .map(|a| a.to_string_lossy())
                    .collect::<Vec<_>>()
                    .join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(())
    };
    git(&[
        OsStr::new("init"),
        OsStr::new("-q"),
        OsStr::new("-b"),
        OsStr::new("main"),
    ])?;
    let mut add: Vec<&OsStr> = vec![OsStr::new("add"), OsStr::new("--")];
    add.extend(written.iter().map(|p| p.as_os_str()));
    git(&add)?;
    git(&[
        OsStr::new("commit"),
        OsStr::new("-q"),
        OsStr::new("-m"),
        OsStr::new("Seed the chat's home"),
    ])?;
    // Written last: a home without its marker is never adopted. Root-owned and read-only, so
    // the chat cannot rewrite it in place.
    let marker = home.join(".picortex/chat_id");
    std::fs::write(&marker, chat_id).map_err(|e| io_error(&marker, e))?;
    std::fs::set_permissions(&marker, std::fs::Permissions::from_mode(0o444))
        .map_err(|e| io_error(&marker, e))?;
    Ok(())
}

/// `chown -R` without following symlinks.
fn chown_tree(root: &Path, uid: u32, gid: u32) -> Result<(), HelperError> {
    let mut stack = vec![root.to_owned()];
    while let Some(path) = stack.pop() {
        std::os::unix::fs::lchown(&path, Some(uid), Some(gid)).map_err(|e| io_error(&path, e))?;
        let meta = path.symlink_metadata().map_err(|e| io_error(&path, e))?;
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).map_err(|e| io_error(&path, e))? {
                stack.push(entry.map_err(|e| io_error(&path, e))?.path());
            }
        }
    }
    Ok(())
}

fn remove_home(home: &Path) -> Result<(), HelperError> {
    archive::remove_home(home).map_err(archive_error)
}

/// Removes the user and its group if they exist.
fn remove_account(name: &str) -> Result<(), HelperError> {
    if lookup_user(name)?.is_some() {
        run_admin("userdel", &[OsStr::new("--"), OsStr::new(name)])?;
    }
    if Group::from_name(name).ok().flatten().is_some() {
        run_admin("groupdel", &[OsStr::new("--"), OsStr::new(name)])?;
    }
    Ok(())
}

fn lookup_user(name: &str) -> Result<Option<(u32, u32)>, HelperError> {
    User::from_name(name)
        .map(|u| u.map(|u| (u.uid.as_raw(), u.gid.as_raw())))
        .map_err(|e| HelperError::system(format!("looking up user {name}: {e}")))
}

/// Runs one of the account tools with an argument vector and a clean environment.
fn run_admin(tool: &str, args: &[&OsStr]) -> Result<(), HelperError> {
    let program = ADMIN_TOOL_DIRS
        .iter()
        .map(|dir| Path::new(dir).join(tool))
        .find(|p| p.is_file())
        .ok_or_else(|| HelperError::system(format!("{tool} is not installed")))?;
    let out = Command::new(&program)
        .args(args)
        .env_clear()
        .env("PATH", SAFE_PATH)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| HelperError::system(format!("{tool}: {e}")))?;
    if !out.status.success() {
        return Err(HelperError::system(format!(
            "{tool} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

fn check_chat_id(chat_id: &str) -> Result<(), HelperError> {
    ids::validate_chat_id(chat_id).map_err(|e| HelperError::invalid(e.to_string()))
}

fn archive_error(e: ArchiveError) -> HelperError {
    let kind = match &e {
        ArchiveError::Damaged { .. } => ErrorKind::ArchiveDamaged,
        ArchiveError::NoSpace { .. } => ErrorKind::NoSpace,
        ArchiveError::Conflict(_) => ErrorKind::AlreadyExists,
        ArchiveError::Io { .. } => ErrorKind::System,
    };
    HelperError::new(kind, e.to_string())
}

fn io_error(path: &Path, e: std::io::Error) -> HelperError {
    let kind = match e.kind() {
        std::io::ErrorKind::NotFound => ErrorKind::NotFound,
        std::io::ErrorKind::AlreadyExists => ErrorKind::AlreadyExists,
        _ => ErrorKind::System,
    };
    HelperError::new(kind, format!("{}: {e}", path.display()))
}

fn errno_error(what: &str, path: &str, e: Errno) -> HelperError {
    let kind = match e {
        Errno::ENOENT => ErrorKind::NotFound,
        Errno::EEXIST => ErrorKind::AlreadyExists,
        Errno::EXDEV | Errno::ELOOP | Errno::ENOTDIR | Errno::EACCES | Errno::EPERM => {
            ErrorKind::PathRefused
        }
        _ => ErrorKind::System,
    };
    let why = match e {
        Errno::EXDEV => "it leaves the chat's home".to_owned(),
        Errno::ELOOP => "it goes through a symlink".to_owned(),
        other => other.desc().to_owned(),
    };
    HelperError::new(kind, format!("{what} {path:?}: {why}"))
}

/// Reads `.picortex/chat_id` without following symlinks; `None` when the home or marker is
/// missing.
fn read_marker(home: &Path) -> Result<Option<String>, HelperError> {
    let home_fd = match open_home(home) {
        Ok(fd) => fd,
        Err(e) if e.kind == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    match beneath(&home_fd, ".picortex/chat_id", OFlag::O_RDONLY) {
        Ok(fd) => {
            let mut text = String::new();
            File::from(fd)
                .take(MAX_MARKER_BYTES)
                .read_to_string(&mut text)
                .map_err(|e| io_error(home, e))?;
            Ok(Some(text))
        }
        Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The home directory as a path descriptor, refusing a symlink in its place.
fn open_home(home: &Path) -> Result<OwnedFd, HelperError> {
    nix::fcntl::open(
        home,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| errno_error("opening the home", &home.to_string_lossy(), e))
}

/// Opens `relative` strictly beneath `dir`: no `..` escape, no symlink, no magic link, no mount
/// crossing.
fn beneath(dir: &impl AsFd, relative: &str, flags: OFlag) -> Result<OwnedFd, HelperError> {
    validate_relative_path(relative)?;
    // openat2 refuses O_PATH combined with anything but O_DIRECTORY, O_NOFOLLOW and O_CLOEXEC.
    let extra = if flags.contains(OFlag::O_PATH) {
        OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC
    } else {
        OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NOCTTY
    };
    let how = OpenHow::new().flags(flags | extra).resolve(
        ResolveFlag::RESOLVE_BENEATH
            | ResolveFlag::RESOLVE_NO_SYMLINKS
            | ResolveFlag::RESOLVE_NO_MAGICLINKS
            | ResolveFlag::RESOLVE_NO_XDEV,
    );
    loop {
        match openat2(dir.as_fd(), relative, how) {
            Err(Errno::EAGAIN | Errno::EINTR) => continue,
            other => return other.map_err(|e| errno_error("opening", relative, e)),
        }
    }
}

/// Runs `work` on a fresh thread whose filesystem uid and gid are the chat's, so every path
/// lookup and open in it is checked against the chat's rights (and root's capabilities to
/// bypass them are dropped for that thread only).
pub fn as_chat_user<T: Send>(
    chat: &ChatUser,
    work: impl FnOnce() -> Result<T, HelperError> + Send,
) -> Result<T, HelperError> {
    let (uid, gid) = (chat.uid, chat.gid);
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                // setfsuid/setfsgid change only the calling thread's credentials (glibc does not
                // broadcast them), and the thread ends with the work.
                setfsgid(Gid::from_raw(gid));
                setfsuid(Uid::from_raw(uid));
                if setfsgid(Gid::from_raw(gid)).as_raw() != gid
                    || setfsuid(Uid::from_raw(uid)).as_raw() != uid
                {
                    return Err(HelperError::system("could not take the chat user's rights"));
                }
                work()
            })
            .join()
            .unwrap_or_else(|_| Err(HelperError::system("the file operation panicked")))
    })
}

/// Whether the chat user itself (not root's supplementary groups) may read a file.
fn readable_by(stat: &nix::sys::stat::FileStat, chat: &ChatUser) -> bool {
    let mode = stat.st_mode;
    if stat.st_uid == chat.uid {
        mode & 0o400 != 0
    } else if stat.st_gid == chat.gid {
        mode & 0o040 != 0
    } else {
        mode & 0o004 != 0
    }
}

/// Opens a regular file beneath the chat's home for reading, with the chat's rights. Returns
/// the descriptor and the file's size.
pub fn open_file(chat: &ChatUser, relative: &str) -> Result<(OwnedFd, u64), HelperError> {
    as_chat_user(chat, || {
        let home = open_home(&chat.home)?;
        // Non-blocking so a FIFO planted at the path cannot hang the helper.
        let fd = beneath(&home, relative, OFlag::O_RDONLY | OFlag::O_NONBLOCK)?;
        let stat = fstat(&fd).map_err(|e| errno_error("inspecting", relative, e))?;
        if SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
            return Err(HelperError::new(
                ErrorKind::PathRefused,
                format!("{relative:?} is not a regular file"),
            ));
        }
        if !readable_by(&stat, chat) {
            return Err(HelperError::new(
                ErrorKind::PathRefused,
                format!("{relative:?} is not readable by {}", chat.name),
            ));
        }
        let flags = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_GETFL)
            .map_err(|e| errno_error("inspecting", relative, e))?;
        let flags = OFlag::from_bits_truncate(flags) & !OFlag::O_NONBLOCK;
        nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_SETFL(flags))
            .map_err(|e| errno_error("inspecting", relative, e))?;
        Ok((fd, u64::try_from(stat.st_size).unwrap_or(0)))
    })
}

/// The runner's socket path inside a home.
pub const RUNNER_SOCKET: &str = ".picortex/runner.sock";

/// A stream socket connected to the chat's runner. The socket file is found without following
/// symlinks and connected through its descriptor, so a symlink planted in the home cannot
/// redirect the helper to another chat's socket.
pub fn connect_runner(chat: &ChatUser) -> Result<OwnedFd, HelperError> {
    as_chat_user(chat, || {
        let home = open_home(&chat.home)?;
        let path_fd = beneath(&home, RUNNER_SOCKET, OFlag::O_PATH)?;
        let stat = fstat(&path_fd).map_err(|e| errno_error("inspecting", RUNNER_SOCKET, e))?;
        if SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT != SFlag::S_IFSOCK {
            return Err(HelperError::new(
                ErrorKind::PathRefused,
                format!("{RUNNER_SOCKET} is not a socket"),
            ));
        }
        let sock = socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(|e| errno_error("creating a socket for", RUNNER_SOCKET, e))?;
        // Connecting through /proc/self/fd/N reaches exactly the inode opened above.
        let via = format!("/proc/self/fd/{}", path_fd.as_raw_fd());
        let addr =
            UnixAddr::new(via.as_str()).map_err(|e| errno_error("addressing", RUNNER_SOCKET, e))?;
        loop {
            match connect(sock.as_raw_fd(), &addr) {
                Ok(()) => return Ok(sock),
                Err(Errno::EINTR) => continue,
                Err(Errno::ECONNREFUSED) => {
                    return Err(HelperError::new(
                        ErrorKind::NotFound,
                        "the chat's runner is not listening",
                    ));
                }
                Err(e) => return Err(errno_error("connecting to", RUNNER_SOCKET, e)),
            }
        }
    })
}

/// Copies a regular file from one chat's home into another's. The copy is written under a
/// temporary name by the target chat's user (so it owns it) and renamed into place; without
/// `overwrite` an existing target is left alone. Returns the bytes copied.
pub fn copy_file(
    from: &ChatUser,
    from_path: &str,
    to: &ChatUser,
    to_path: &str,
    overwrite: bool,
) -> Result<u64, HelperError> {
    validate_relative_path(to_path)?;
    if to_path.starts_with(".picortex/") || to_path == ".picortex" {
        return Err(HelperError::new(
            ErrorKind::PathRefused,
            format!("{to_path:?} is inside picortex's own runtime directory"),
        ));
    }
    let (source, size) = open_file(from, from_path)?;
    if size > MAX_COPY_BYTES {
        return Err(HelperError::invalid(format!(
            "{from_path:?} is larger than {MAX_COPY_BYTES} bytes"
        )));
    }
    place_file(
        to,
        to_path,
        overwrite,
        File::from(source).take(MAX_COPY_BYTES),
    )
}

/// Writes `contents` to `relative` beneath the chat's home as the chat's user (creating the
/// directories on the way), replacing what is there atomically. For the daemon's own files in
/// the chat (its system prompt), which an unprivileged daemon cannot write itself.
pub fn write_file(chat: &ChatUser, relative: &str, contents: &[u8]) -> Result<u64, HelperError> {
    validate_relative_path(relative)?;
    place_file(chat, relative, true, contents)
}

/// Removes the regular file (or symlink, never followed) `relative` beneath the chat's home as
/// the chat's user. Returns whether there was one.
pub fn remove_file(chat: &ChatUser, relative: &str) -> Result<bool, HelperError> {
    validate_relative_path(relative)?;
    as_chat_user(chat, || {
        let home = open_home(&chat.home)?;
        let (parent, file_name) = match relative.rsplit_once('/') {
            Some((dirs, name)) => match beneath(&home, dirs, OFlag::O_PATH | OFlag::O_DIRECTORY) {
                Ok(dir) => (dir, name),
                Err(e) if e.kind == ErrorKind::NotFound => return Ok(false),
                Err(e) => return Err(e),
            },
            None => (home, relative),
        };
        match unlinkat(&parent, file_name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) => Ok(true),
            Err(Errno::ENOENT) => Ok(false),
            Err(e) => Err(errno_error("removing", relative, e)),
        }
    })
}

/// Writes `source` to `to_path` beneath `to`'s home as `to`'s user: under a temporary name,
/// synced, owned by the chat, then renamed into place (without `overwrite`, never over an
/// existing file). Returns the bytes written.
fn place_file(
    to: &ChatUser,
    to_path: &str,
    overwrite: bool,
    mut source: impl Read + Send,
) -> Result<u64, HelperError> {
    as_chat_user(to, || {
        let home = open_home(&to.home)?;
        let (parent, file_name) = match to_path.rsplit_once('/') {
            Some((dirs, name)) => (make_dirs_beneath(home, dirs)?, name),
            None => (home, to_path),
        };
        if !overwrite {
            match nix::sys::stat::fstatat(
                &parent,
                file_name,
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            ) {
                Ok(_) => {
                    return Err(HelperError::new(
                        ErrorKind::AlreadyExists,
                        format!("{to_path:?} exists in the target chat"),
                    ));
                }
                Err(Errno::ENOENT) => {}
                Err(e) => return Err(errno_error("inspecting", to_path, e)),
            }
        }
        let temp_name = format!(".picortex-copy-{}-{}", std::process::id(), unique());
        let temp = openat(
            &parent,
            temp_name.as_str(),
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(|e| errno_error("creating", to_path, e))?;
        let result = (|| {
            let mut writer = File::from(temp);
            let bytes = std::io::copy(&mut source, &mut writer)
                .map_err(|e| HelperError::system(format!("writing {to_path:?}: {e}")))?;
            writer
                .flush()
                .and_then(|()| writer.sync_all())
                .map_err(|e| HelperError::system(format!("writing {to_path:?}: {e}")))?;
            fchown(
                &writer,
                Some(Uid::from_raw(to.uid)),
                Some(Gid::from_raw(to.gid)),
            )
            .map_err(|e| errno_error("owning", to_path, e))?;
            let flags = if overwrite {
                RenameFlags::empty()
            } else {
                RenameFlags::RENAME_NOREPLACE
            };
            renameat2(&parent, temp_name.as_str(), &parent, file_name, flags)
                .map_err(|e| errno_error("placing", to_path, e))?;
            Ok(bytes)
        })();
        if result.is_err() {
            let _ = unlinkat(&parent, temp_name.as_str(), UnlinkatFlags::NoRemoveDir);
        }
        result
    })
}

/// Opens (creating as needed, mode 0700) each directory of `dirs` beneath `home`, one component
/// at a time with `O_NOFOLLOW`.
fn make_dirs_beneath(home: OwnedFd, dirs: &str) -> Result<OwnedFd, HelperError> {
    let mut current = home;
    for component in dirs.split('/') {
        match mkdirat(&current, component, Mode::from_bits_truncate(0o700)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(errno_error("creating the directory", dirs, e)),
        }
        current = openat(
            &current,
            component,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| errno_error("opening the directory", dirs, e))?;
    }
    Ok(current)
}

/// A number distinct for each call in this process (temporary names).
fn unique() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn home_with_marker(root: &Path, name: &str, owner: &str) {
        let dir = root.join(name).join(".picortex");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("chat_id"), owner).unwrap();
    }

    #[test]
    fn collisions_and_gaps_are_resolved_by_the_marker() {
        let root = tempfile::tempdir().unwrap();
        let provisioner = Provisioner::new(root.path());
        let id = "chat-one";
        let name = |n| ids::chat_name_with_suffix(id, n);
        // Nothing yet: the plain name is free.
        let located = provisioner.locate(id).unwrap();
        assert!(located.found.is_none());
        assert_eq!(located.free.unwrap().0, name(0));
        // Another chat's home at the plain name, a gap at -1 (a destroyed chat), ours at -2.
        home_with_marker(root.path(), &name(0), "someone-else");
        home_with_marker(root.path(), &name(2), id);
        let located = provisioner.locate(id).unwrap();
        assert_eq!(located.found.unwrap().0, name(2));
        assert_eq!(located.free.unwrap().0, name(1));
        // A half-made home (no marker) is never adopted nor reused.
        std::fs::create_dir_all(root.path().join(name(1))).unwrap();
        std::fs::remove_dir_all(root.path().join(name(2))).unwrap();
        let located = provisioner.locate(id).unwrap();
        assert!(located.found.is_none());
        assert_eq!(located.free.unwrap().0, name(2));
    }

    #[test]
    fn a_symlinked_marker_is_not_read() {
        let root = tempfile::tempdir().unwrap();
        let id = "chat-two";
        let home = root.path().join(ids::chat_dir_name(id));
        std::fs::create_dir_all(home.join(".picortex")).unwrap();
        let elsewhere = root.path().join("elsewhere");
        std::fs::write(&elsewhere, id).unwrap();
        std::os::unix::fs::symlink(&elsewhere, home.join(".picortex/chat_id")).unwrap();
        let err = read_marker(&home).unwrap_err();
        assert_eq!(err.kind, ErrorKind::PathRefused, "{err}");
        // Such a home is occupied, not ours: the next name is used.
        let located = Provisioner::new(root.path()).locate(id).unwrap();
        assert!(located.found.is_none());
        assert_eq!(located.free.unwrap().0, ids::chat_name_with_suffix(id, 1));
    }
}
