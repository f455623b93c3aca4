//! Chat workspaces: each chat's home directory under the workspace root (named
//! `chat-<first 8 hex of sha256(chat id)>`, with a suffix on the rare collision), and the chat's
//! own tmux server (socket `~/.picortex/tmux.sock`, session `picortex`) whose `agent` window runs
//! picortex-runner and whose `shell` window is there for the owner to take over.
//!
//! Everything passed to tmux is a path or configuration; message text never reaches a command
//! line. (Running each chat as its own Linux user inside a sandbox comes with the isolation
//! work; it changes who the runner runs as, not this shape.)

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::isolation::{Isolation, SandboxHelper};

pub use picortex_sandbox::tmux::{SESSION as TMUX_SESSION, TmuxServer as Tmux};

#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error("workspace {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("tmux {action} failed: {detail}")]
    Tmux {
        action: &'static str,
        detail: String,
    },
    #[error("no free workspace directory for chat {0} (too many hash collisions)")]
    NoDirectory(String),
    #[error("initialising the chat's git repository: {0}")]
    Git(String),
    #[error("the sandbox helper: {0}")]
    Sandbox(String),
    #[error("reading from the chat's home: {0}")]
    Read(String),
    /// The chat's archive is truncated or corrupt: it was left as it was and no home was made.
    #[error("the chat's archive is damaged: {0}")]
    ArchiveDamaged(String),
    #[error("archiving the chat: {0}")]
    Archive(String),
}

fn archive_err(e: picortex_sandbox::archive::ArchiveError) -> WorkspaceError {
    match e {
        picortex_sandbox::archive::ArchiveError::Damaged { .. } => {
            WorkspaceError::ArchiveDamaged(e.to_string())
        }
        other => WorkspaceError::Archive(other.to_string()),
    }
}

fn helper_err(e: picortex_sandbox::client::ClientError) -> WorkspaceError {
    use picortex_sandbox::protocol::{ErrorKind, HelperError};
    match e {
        picortex_sandbox::client::ClientError::Helper(HelperError {
            kind: ErrorKind::ArchiveDamaged,
            message,
        }) => WorkspaceError::ArchiveDamaged(message),
        other => WorkspaceError::Sandbox(other.to_string()),
    }
}

impl From<picortex_sandbox::tmux::TmuxError> for WorkspaceError {
    fn from(e: picortex_sandbox::tmux::TmuxError) -> Self {
        WorkspaceError::Tmux {
            action: e.action,
            detail: e.detail,
        }
    }
}

/// Runs filesystem work for a chat's home off the async runtime.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, WorkspaceError> + Send + 'static,
) -> Result<T, WorkspaceError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| WorkspaceError::Sandbox(format!("a blocking task failed: {e}")))?
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> WorkspaceError + '_ {
    move |source| WorkspaceError::Io {
        path: path.to_owned(),
        source,
    }
}

pub use picortex_sandbox::ids::chat_dir_name;

/// How the runner is started in a chat's `agent` window.
#[derive(Debug, Clone)]
pub struct RunnerLaunch {
    pub program: PathBuf,
    /// Arguments that select the runner (`runner` when the program is `picortex` itself).
    pub prefix: Vec<OsString>,
    /// The agent kind and its fixed flags.
    pub args: Vec<OsString>,
    /// Environment for the chat's tmux session (and so the runner and the agent).
    pub env: Vec<(String, String)>,
    /// Directories the confined chat may execute from besides the system's.
    pub allow_exec: Vec<PathBuf>,
}

/// Chat homes and tmux servers, either made by the daemon itself (Landlock isolation) or by
/// the sandbox helper (each chat its own user, its tmux server inside the chat's jail).
#[derive(Clone)]
pub struct Workspaces {
    root: PathBuf,
    helper: Option<Arc<SandboxHelper>>,
    /// Homes the helper has provisioned, so a turn does not ask again.
    provisioned: Arc<Mutex<HashMap<String, PathBuf>>>,
    /// Where archived homes are kept without the helper (the helper has its own
    /// `--archive-dir`); `None` turns archiving off.
    archive_dir: Option<PathBuf>,
    /// Per-chat locks: archiving holds the chat's for the whole archive, and `ensure_home`
    /// takes it, so a message arriving meanwhile waits and then restores the chat.
    home_locks: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

impl Workspaces {
    /// Homes made by the daemon's own user (no sandbox helper).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            helper: None,
            provisioned: Arc::default(),
            archive_dir: None,
            home_locks: Arc::default(),
        }
    }

    /// The lock that serialises making, restoring and archiving the chat's home.
    pub fn home_lock(&self, chat_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .home_locks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        locks.entry(chat_id.to_owned()).or_default().clone()
    }

    /// Archives go to, and are restored from, `archive_dir`.
    pub fn with_archive_dir(mut self, archive_dir: impl Into<PathBuf>) -> Self {
        self.archive_dir = Some(archive_dir.into());
        self
    }

    /// Archives the chat's home (see [`picortex_sandbox::archive`]): through the helper, which
    /// also removes the chat's user, group and cgroup, or as this user. The caller has stopped
    /// the chat's processes and holds its [`Self::home_lock`]. Returns the archive, or `None` when the chat had
    /// no home (already archived, or never made).
    pub async fn archive(&self, chat_id: &str) -> Result<Option<PathBuf>, WorkspaceError> {
        self.forget_provisioned(chat_id);
        if let Some(helper) = &self.helper {
            let id = chat_id.to_owned();
            return helper
                .call(move |client| client.archive(&id))
                .await
                .map_err(helper_err);
        }
        let Some(archive_dir) = self.archive_dir.clone() else {
            return Err(WorkspaceError::Archive(
                "no archive directory is configured".into(),
            ));
        };
        let this = self.clone();
        let chat_id = chat_id.to_owned();
        blocking(move || {
            let Some(home) = this.find_local_home(&chat_id)? else {
                return Ok(None);
            };
            std::fs::create_dir_all(&archive_dir).map_err(io_err(&archive_dir))?;
            let name = home
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let report = picortex_sandbox::archive::archive_home(&home, &archive_dir, &name)
                .map_err(archive_err)?;
            picortex_sandbox::archive::remove_home(&home).map_err(archive_err)?;
            Ok(Some(report.archive))
        })
        .await
    }

    /// At start-up without the helper (which does its own): removes what transitions a crash
    /// cut short left beside the homes and archives ([`picortex_sandbox::archive::sweep_leftovers`]).
    pub async fn sweep_leftovers(&self) -> Result<Vec<String>, WorkspaceError> {
        if self.helper.is_some() {
            return Ok(Vec::new());
        }
        let (root, archive_dir) = (self.root.clone(), self.archive_dir.clone());
        blocking(move || {
            picortex_sandbox::archive::sweep_leftovers(&root, archive_dir.as_deref())
                .map_err(archive_err)
        })
        .await
    }

    /// Removes the chat's workspace for good: its processes, home and archive (and with the
    /// helper its user, group and cgroup). Its next message starts a fresh home. Returns whether
    /// there was anything to remove. Holds the chat's [`Self::home_lock`].
    pub async fn destroy(&self, chat_id: &str) -> Result<bool, WorkspaceError> {
        let lock = self.home_lock(chat_id);
        let _held = lock.lock().await;
        self.forget_provisioned(chat_id);
        if let Some(helper) = &self.helper {
            let id = chat_id.to_owned();
            return helper
                .call(move |client| client.destroy(&id))
                .await
                .map_err(helper_err);
        }
        let this = self.clone();
        let chat_id = chat_id.to_owned();
        blocking(move || {
            let mut existed = false;
            if let Some(home) = this.find_local_home(&chat_id)? {
                // A tmux server that is already gone is fine.
                let _ = Tmux::for_home(&home).kill_server();
                picortex_sandbox::archive::remove_home(&home).map_err(archive_err)?;
                existed = true;
            }
            if let Some(archive_dir) = &this.archive_dir {
                existed |= picortex_sandbox::archive::remove_chat_archives(archive_dir, &chat_id)
                    .map_err(archive_err)?;
            }
            Ok(existed)
        })
        .await
    }

    /// Restores the chat from whichever of its names has its archive, if any.
    fn restore_any_local(&self, chat_id: &str) -> Result<Option<PathBuf>, WorkspaceError> {
        if self.archive_dir.is_none() {
            return Ok(None);
        }
        for n in 0..=picortex_sandbox::ids::MAX_SUFFIX {
            let name = picortex_sandbox::ids::chat_name_with_suffix(chat_id, n);
            let home = self.root.join(&name);
            if home.symlink_metadata().is_ok() {
                continue;
            }
            if self.restore_local(chat_id, &name, &home)? {
                return Ok(Some(home));
            }
        }
        Ok(None)
    }

    /// The chat's existing home (by its marker), without making one.
    fn find_local_home(&self, chat_id: &str) -> Result<Option<PathBuf>, WorkspaceError> {
        for n in 0..=picortex_sandbox::ids::MAX_SUFFIX {
            let home = self
                .root
                .join(picortex_sandbox::ids::chat_name_with_suffix(chat_id, n));
            let marker = home.join(".picortex").join("chat_id");
            match std::fs::read_to_string(&marker) {
                Ok(owner) if owner == chat_id => return Ok(Some(home)),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(&marker)(e)),
            }
        }
        Ok(None)
    }

    /// Restores the chat from `<archive dir>/<name>.tar.zst` into `home` when that archive is
    /// the chat's (its marker says so); the archive is removed only once the home is complete.
    fn restore_local(
        &self,
        chat_id: &str,
        name: &str,
        home: &Path,
    ) -> Result<bool, WorkspaceError> {
        let Some(archive_dir) = &self.archive_dir else {
            return Ok(false);
        };
        let archive = picortex_sandbox::archive::archive_path(archive_dir, name);
        if archive.symlink_metadata().is_err() {
            return Ok(false);
        }
        match picortex_sandbox::archive::read_marker(&archive).map_err(archive_err)? {
            Some(owner) if owner == chat_id => {}
            _ => return Ok(false),
        }
        picortex_sandbox::archive::restore_home(&archive, home, None).map_err(archive_err)?;
        std::fs::remove_file(&archive).map_err(io_err(&archive))?;
        Ok(true)
    }

    /// Homes made the way `isolation` says: by the sandbox helper when there is one.
    pub fn with_isolation(root: impl Into<PathBuf>, isolation: &Isolation) -> Self {
        Self {
            helper: isolation.helper().cloned(),
            ..Self::new(root)
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether each chat runs as its own user inside the sandbox.
    pub fn sandboxed(&self) -> bool {
        self.helper.is_some()
    }

    /// The chat's home, made if it does not exist yet: by the sandbox helper (the chat's user,
    /// group, 0700 home and seeded repository) or by the daemon itself.
    pub async fn ensure_home(&self, chat_id: &str) -> Result<PathBuf, WorkspaceError> {
        let lock = self.home_lock(chat_id);
        let _held = lock.lock().await;
        let Some(helper) = &self.helper else {
            let this = self.clone();
            let chat_id = chat_id.to_owned();
            return blocking(move || this.ensure_local_home(&chat_id)).await;
        };
        if let Some(home) = self.cached_home(chat_id) {
            return Ok(home);
        }
        let id = chat_id.to_owned();
        let provisioned = helper
            .call(move |client| client.provision(&id, seed_files()))
            .await
            .map_err(helper_err)?;
        if let Ok(mut cache) = self.provisioned.lock() {
            cache.insert(chat_id.to_owned(), provisioned.home.clone());
        }
        Ok(provisioned.home)
    }

    /// A small text file beneath the chat's home (its prompts), read with the chat's own rights
    /// through the helper when sandboxed; no symlink or `..` leads out of the home.
    pub async fn read_text(&self, chat_id: &str, relative: &str) -> Result<String, WorkspaceError> {
        use std::io::Read as _;
        const MAX_TEXT_BYTES: u64 = 1 << 20;
        let file = match &self.helper {
            Some(helper) => {
                let (id, path) = (chat_id.to_owned(), relative.to_owned());
                let (fd, _size) = helper
                    .call(move |client| client.open_file(&id, &path))
                    .await
                    .map_err(helper_err)?;
                std::fs::File::from(fd)
            }
            None => {
                let home = self.ensure_home(chat_id).await?;
                let path = home.join(relative);
                crate::attachments::open_beneath(&home, &path)
                    .map_err(|e| WorkspaceError::Read(e.to_string()))?
                    .0
            }
        };
        tokio::task::spawn_blocking(move || {
            let mut text = String::new();
            file.take(MAX_TEXT_BYTES)
                .read_to_string(&mut text)
                .map(|_| text)
                .map_err(|e| WorkspaceError::Read(e.to_string()))
        })
        .await
        .map_err(|e| WorkspaceError::Read(e.to_string()))?
    }

    /// A file the chat's agent produced, read for sending as an attachment: beneath the chat's
    /// home with no symlink on the way, a regular file of a type and size Linq accepts. Read with
    /// the chat's rights through the helper when sandboxed.
    pub async fn read_attachment(
        &self,
        chat_id: &str,
        home: &Path,
        path: &Path,
    ) -> Result<crate::attachments::Attachment, WorkspaceError> {
        use crate::attachments::{Attachment, MAX_BYTES, content_type, read_beneath};
        use std::io::Read as _;
        let Some(helper) = &self.helper else {
            return read_beneath(home, path).map_err(|e| WorkspaceError::Read(e.to_string()));
        };
        let bad = |why: &str| WorkspaceError::Read(format!("{}: {why}", path.display()));
        let relative = path
            .strip_prefix(home)
            .ok()
            .and_then(|p| p.to_str())
            .ok_or_else(|| bad("not beneath the chat's home"))?
            .to_owned();
        let filename = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| bad("not a file name"))?
            .to_owned();
        let content_type =
            content_type(&filename).ok_or_else(|| bad("this file type cannot be sent"))?;
        let id = chat_id.to_owned();
        let (fd, size) = helper
            .call(move |client| client.open_file(&id, &relative))
            .await
            .map_err(helper_err)?;
        if size > MAX_BYTES {
            return Err(bad(&format!(
                "{size} bytes is over the {MAX_BYTES}-byte limit"
            )));
        }
        let bytes = tokio::task::spawn_blocking(move || {
            let mut bytes = Vec::new();
            std::fs::File::from(fd)
                .take(MAX_BYTES)
                .read_to_end(&mut bytes)
                .map(|_| bytes)
        })
        .await
        .map_err(|e| WorkspaceError::Read(e.to_string()))?
        .map_err(|e| WorkspaceError::Read(e.to_string()))?;
        Ok(Attachment {
            filename,
            content_type,
            bytes,
        })
    }

    /// Drops the chat's cached home, so its next turn asks for it again (after an archive or
    /// a destroy).
    fn forget_provisioned(&self, chat_id: &str) {
        if let Ok(mut cache) = self.provisioned.lock() {
            cache.remove(chat_id);
        }
    }

    fn cached_home(&self, chat_id: &str) -> Option<PathBuf> {
        let cache = self.provisioned.lock().ok()?;
        cache.get(chat_id).filter(|home| home.is_dir()).cloned()
    }

    /// The chat's home made by the daemon's own user (mode 0700, with `.picortex/`). The chat
    /// id is recorded inside so a colliding hash gets the next suffix instead of another chat's
    /// files.
    fn ensure_local_home(&self, chat_id: &str) -> Result<PathBuf, WorkspaceError> {
        std::fs::create_dir_all(&self.root).map_err(io_err(&self.root))?;
        for n in 0..=picortex_sandbox::ids::MAX_SUFFIX {
            let name = picortex_sandbox::ids::chat_name_with_suffix(chat_id, n);
            let home = self.root.join(&name);
            let marker = home.join(".picortex").join("chat_id");
            match std::fs::read_to_string(&marker) {
                Ok(owner) if owner == chat_id => {
                    if let Some(archive_dir) = &self.archive_dir {
                        picortex_sandbox::archive::remove_stale_archive(
                            archive_dir,
                            &name,
                            chat_id,
                        )
                        .map_err(archive_err)?;
                    }
                    return Ok(home);
                }
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    if home.exists() && home.join(".picortex").exists() {
                        continue; // Someone else's half-made home: do not adopt it.
                    }
                    // An archived chat comes back under its old name, whatever the suffix.
                    if let Some(restored) = self.restore_any_local(chat_id)? {
                        return Ok(restored);
                    }
                    std::fs::create_dir_all(home.join(".picortex").join("turns"))
                        .map_err(io_err(&home))?;
                    std::fs::create_dir_all(home.join(".tmp")).map_err(io_err(&home))?;
                    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700))
                        .map_err(io_err(&home))?;
                    seed(&home)?;
                    // Written last: a home without its marker is never adopted.
                    std::fs::write(&marker, chat_id).map_err(io_err(&marker))?;
                    return Ok(home);
                }
                Err(e) => return Err(io_err(&marker)(e)),
            }
        }
        Err(WorkspaceError::NoDirectory(chat_id.to_owned()))
    }

    /// Makes sure the chat's tmux session exists and its `agent` window runs a live runner,
    /// starting or respawning it as needed: inside the chat's sandbox through the helper, or as
    /// this user under the runner's Landlock launcher.
    pub async fn ensure_runner(
        &self,
        chat_id: &str,
        home: &Path,
        launch: &RunnerLaunch,
    ) -> Result<(), WorkspaceError> {
        let runner_cmd: Vec<OsString> = std::iter::once(launch.program.clone().into_os_string())
            .chain(launch.prefix.iter().cloned())
            .chain(launch.args.iter().cloned())
            .chain([OsString::from("--home"), home.as_os_str().to_owned()])
            .collect();
        if let Some(helper) = &self.helper {
            let id = chat_id.to_owned();
            let runner: Vec<String> = runner_cmd
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            let (env, exec_dirs) = (launch.env.clone(), launch.allow_exec.clone());
            helper
                .call(move |client| client.ensure_runner(&id, runner, env, exec_dirs))
                .await
                .map_err(helper_err)?;
            return Ok(());
        }
        let (home, launch) = (home.to_owned(), launch.clone());
        blocking(move || ensure_local_runner(&home, &launch, &runner_cmd)).await
    }

    /// A stream to the chat's runner: through the helper when sandboxed (the home is the chat
    /// user's alone), else by the socket's path.
    pub async fn connect_runner(
        &self,
        chat_id: &str,
        home: &Path,
    ) -> Result<tokio::net::UnixStream, WorkspaceError> {
        let Some(helper) = &self.helper else {
            let path = home.join(picortex_sandbox::provision::RUNNER_SOCKET);
            return tokio::net::UnixStream::connect(&path)
                .await
                .map_err(io_err(&path));
        };
        let id = chat_id.to_owned();
        let fd = helper
            .call(move |client| client.connect_runner(&id))
            .await
            .map_err(helper_err)?;
        let stream = std::os::unix::net::UnixStream::from(fd);
        stream
            .set_nonblocking(true)
            .and_then(|()| tokio::net::UnixStream::from_std(stream))
            .map_err(|e| WorkspaceError::Sandbox(format!("adopting the runner's socket: {e}")))
    }

    /// Writes one of picortex's own files (e.g. the agent's system prompt) beneath the chat's
    /// home, as the chat's user when sandboxed.
    pub async fn write_file(
        &self,
        chat_id: &str,
        home: &Path,
        relative: &str,
        contents: String,
    ) -> Result<(), WorkspaceError> {
        let Some(helper) = &self.helper else {
            let path = home.join(relative);
            return std::fs::write(&path, contents).map_err(io_err(&path));
        };
        let (id, path) = (chat_id.to_owned(), relative.to_owned());
        helper
            .call(move |client| client.write_file(&id, &path, &contents))
            .await
            .map(drop)
            .map_err(helper_err)
    }

    /// Removes a file beneath the chat's home; a missing file is fine.
    pub async fn remove_file(
        &self,
        chat_id: &str,
        home: &Path,
        relative: &str,
    ) -> Result<(), WorkspaceError> {
        let Some(helper) = &self.helper else {
            let path = home.join(relative);
            return match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err(&path)(e)),
                _ => Ok(()),
            };
        };
        let (id, path) = (chat_id.to_owned(), relative.to_owned());
        helper
            .call(move |client| client.remove_file(&id, &path))
            .await
            .map(drop)
            .map_err(helper_err)
    }

    /// Stops a chat's tmux server (and with it the runner and agent); in the sandbox, the
    /// chat's whole jail. A chat without a home (archived, destroyed, never made) has nothing
    /// running, and is not restored or made for this.
    pub async fn stop(&self, chat_id: &str) -> Result<(), WorkspaceError> {
        if let Some(helper) = &self.helper {
            let id = chat_id.to_owned();
            helper
                .call(move |client| client.stop(&id))
                .await
                .map_err(helper_err)?;
            return Ok(());
        }
        let this = self.clone();
        let chat_id = chat_id.to_owned();
        blocking(move || match this.find_local_home(&chat_id)? {
            Some(home) => Tmux::for_home(&home)
                .kill_server()
                .map_err(WorkspaceError::from),
            None => Ok(()),
        })
        .await
    }
}

/// Without the sandbox: starts the chat's tmux server through the runner's confining launcher
/// (so the server and every window it ever opens stay inside the chat's Landlock domain), or
/// respawns the runner in a live session whose runner has exited.
fn ensure_local_runner(
    home: &Path,
    launch: &RunnerLaunch,
    runner_cmd: &[OsString],
) -> Result<(), WorkspaceError> {
    let tmux = Tmux::for_home(home);
    if tmux.has_session() {
        if tmux.agent_pane_dead()? {
            tmux.respawn_agent(&launch.env, runner_cmd)?;
        }
        return Ok(());
    }
    let mut launcher: Vec<OsString> = launch.prefix.clone();
    launcher.extend(["--home".into(), home.as_os_str().to_owned()]);
    for dir in &launch.allow_exec {
        launcher.push("--allow-exec".into());
        launcher.push(dir.as_os_str().to_owned());
    }
    launcher.extend(["--exec".into(), "tmux".into()]);
    launcher.extend(tmux.new_session_args(home, &launch.env, runner_cmd));
    let out = std::process::Command::new(&launch.program)
        .args(&launcher)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| WorkspaceError::Tmux {
            action: "new-session",
            detail: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(WorkspaceError::Tmux {
            action: "new-session",
            detail: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    tmux.open_windows(home)?;
    Ok(())
}

/// The files a new home starts with besides the layout itself (the helper commits them).
fn seed_files() -> Vec<picortex_sandbox::protocol::SeedFile> {
    vec![picortex_sandbox::protocol::SeedFile {
        path: ".picortex/prompts/discriminator.md".into(),
        contents: crate::gate::discriminator::DEFAULT_PROMPT.into(),
    }]
}

/// Seeds a new home: the chat's discriminator prompt from the default, and a git repository
/// tracking it (so the owner's edits are versioned). Runtime state under `.picortex/` stays out
/// of the repository.
fn seed(home: &Path) -> Result<(), WorkspaceError> {
    let prompts = home.join(".picortex").join("prompts");
    std::fs::create_dir_all(&prompts).map_err(io_err(&prompts))?;
    let prompt = prompts.join("discriminator.md");
    std::fs::write(&prompt, crate::gate::discriminator::DEFAULT_PROMPT).map_err(io_err(&prompt))?;
    let ignore = home.join(".gitignore");
    // The same layout the helper gives a sandboxed chat's home.
    std::fs::write(&ignore, picortex_sandbox::provision::GITIGNORE).map_err(io_err(&ignore))?;
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(home)
            .args([
                "-c",
                "user.name=picortex",
                "-c",
                "user.email=picortex@localhost",
            ])
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
    };
    let steps: [&[&str]; 3] = [
        &["init", "-q", "-b", "main"],
        &["add", ".gitignore", ".picortex/prompts/discriminator.md"],
        &["commit", "-q", "-m", "Seed the chat's discriminator prompt"],
    ];
    for step in steps {
        match git(step) {
            Ok(out) if out.status.success() => {}
            Ok(out) => {
                return Err(WorkspaceError::Git(format!(
                    "git {}: {}",
                    step.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
            Err(e) => return Err(WorkspaceError::Git(format!("git is not usable: {e}"))),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_names_are_stable_hashes() {
        let a = chat_dir_name("8f392755-6865-4b18-880a-227f9d8b458f");
        assert_eq!(a.len(), "chat-".len() + 8);
        assert_eq!(a, chat_dir_name("8f392755-6865-4b18-880a-227f9d8b458f"));
        assert_ne!(a, chat_dir_name("another"));
        // Path syntax in a chat id cannot leave the root: only the hash is used.
        assert!(!chat_dir_name("../../etc").contains('/'));
    }

    #[tokio::test]
    async fn homes_are_private_and_collisions_get_a_suffix() {
        let root = tempfile::tempdir().unwrap();
        let ws = Workspaces::new(root.path());
        let home = ws.ensure_home("chat-a").await.unwrap();
        let mode = std::fs::metadata(&home).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        // Seeded with the default prompt, committed in the chat's own repository.
        let prompt =
            std::fs::read_to_string(home.join(".picortex/prompts/discriminator.md")).unwrap();
        assert_eq!(prompt, crate::gate::discriminator::DEFAULT_PROMPT);
        let log = std::process::Command::new("git")
            .arg("-C")
            .arg(&home)
            .args(["log", "--oneline"])
            .output()
            .unwrap();
        assert!(String::from_utf8_lossy(&log.stdout).contains("discriminator prompt"));
        assert_eq!(ws.ensure_home("chat-a").await.unwrap(), home);
        // Simulate another chat already owning this hash's directory.
        std::fs::write(home.join(".picortex/chat_id"), "someone-else").unwrap();
        let second = ws.ensure_home("chat-a").await.unwrap();
        assert_eq!(
            second,
            root.path().join(format!("{}-1", chat_dir_name("chat-a")))
        );
    }

    #[tokio::test]
    async fn without_the_helper_a_home_is_archived_and_restored_and_damage_is_reported() {
        let root = tempfile::tempdir().unwrap();
        let archives = root.path().join("archive");
        let ws = Workspaces::new(root.path().join("chats")).with_archive_dir(&archives);
        let home = ws.ensure_home("chat-z").await.unwrap();
        std::fs::write(home.join("notes.txt"), "kept\n").unwrap();

        let archive = ws.archive("chat-z").await.unwrap().unwrap();
        assert!(!home.exists());
        assert_eq!(
            ws.archive("chat-z").await.unwrap(),
            None,
            "nothing left to archive"
        );
        assert_eq!(ws.ensure_home("chat-z").await.unwrap(), home);
        assert_eq!(
            std::fs::read_to_string(home.join("notes.txt")).unwrap(),
            "kept\n"
        );
        assert!(!archive.exists(), "the archive goes once the home is back");

        let archive = ws.archive("chat-z").await.unwrap().unwrap();
        let bytes = std::fs::read(&archive).unwrap();
        std::fs::write(&archive, &bytes[..bytes.len() / 2]).unwrap();
        let error = ws.ensure_home("chat-z").await.unwrap_err();
        assert!(
            matches!(error, WorkspaceError::ArchiveDamaged(_)),
            "{error}"
        );
        assert!(!home.exists(), "no empty home instead");
        assert_eq!(std::fs::read(&archive).unwrap().len(), bytes.len() / 2);
    }

    #[tokio::test]
    async fn without_the_helper_a_stale_archive_is_dropped_and_destroy_removes_everything() {
        let root = tempfile::tempdir().unwrap();
        let archives = root.path().join("archive");
        std::fs::create_dir_all(&archives).unwrap();
        let ws = Workspaces::new(root.path().join("chats")).with_archive_dir(&archives);
        let home = ws.ensure_home("chat-y").await.unwrap();
        let name = home.file_name().unwrap().to_string_lossy().into_owned();
        // A crash between writing the archive and removing the home leaves both.
        let stale = picortex_sandbox::archive::archive_home(&home, &archives, &name)
            .unwrap()
            .archive;
        std::fs::write(home.join("newer.txt"), "after the archive\n").unwrap();
        assert_eq!(ws.ensure_home("chat-y").await.unwrap(), home);
        assert!(!stale.exists(), "the home wins; its stale archive goes");
        assert!(home.join("newer.txt").exists());

        let archive = ws.archive("chat-y").await.unwrap().unwrap();
        assert!(ws.destroy("chat-y").await.unwrap(), "there was an archive");
        assert!(!archive.exists() && !home.exists());
        assert!(
            !ws.destroy("chat-y").await.unwrap(),
            "nothing left the second time"
        );
        let fresh = ws.ensure_home("chat-y").await.unwrap();
        assert!(
            !fresh.join("newer.txt").exists(),
            "a destroyed chat starts afresh"
        );
        ws.destroy("chat-y").await.unwrap();
        assert!(!fresh.exists());
    }
}
