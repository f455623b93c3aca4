//! The privileged helper's server: binds the unix socket, serves only the configured service
//! user (checked with `SO_PEERCRED`), handles each connection on its own thread, carries out the
//! typed operations of [`crate::protocol`], and appends one audit line per request (and per
//! refused peer) to the audit log.
//!
//! Every operation is idempotent (provisioning a provisioned chat returns it, stopping a stopped
//! chat succeeds) and changes to one chat are serialised by its lock. All calls into the sandbox
//! itself ([`crate::jail`]) are in the `sandbox` section at the end of this file.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, UnixAddr, accept4, bind, getsockopt, listen,
    socket, sockopt::PeerCredentials,
};
use nix::unistd::Group;
use serde::Serialize;

use crate::protocol::{
    ErrorKind, HelperError, Outcome, Reply, Request, WireError, recv_plain, send_reply,
};
use crate::provision::{self, ChatUser, Provisioner};

/// How long a sandbox's launcher (e.g. `tmux new-session -d`) may take before it is reported.
const LAUNCH_TIMEOUT: Duration = Duration::from_secs(30);

/// Everything the server needs, from the command line.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub socket: PathBuf,
    /// The service user; the only peer served (root only when this is 0).
    pub allow_uid: u32,
    /// The socket's group (mode 0660), so the service user's group may connect.
    pub group: Option<String>,
    pub workspace_root: PathBuf,
    pub audit_log: PathBuf,
    /// Host paths hidden inside every sandbox.
    pub hide: Vec<PathBuf>,
    /// The daemon's model gateway directory, relayed into each sandbox.
    pub gateway_dir: Option<PathBuf>,
    /// The executable the sandbox runs as its init (this binary).
    pub init_exe: PathBuf,
    /// Where archived chats are kept; `None` refuses archiving (restoring needs it too).
    pub archive_dir: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Sys { what: String, source: nix::Error },
    #[error("{0} exists and is not a socket; refusing to replace it")]
    NotASocket(PathBuf),
    #[error("group {0:?} does not exist")]
    NoGroup(String),
    #[error("{what} must be an absolute path, not {path:?} (useradd refuses relative homes)")]
    RelativePath { what: &'static str, path: PathBuf },
}

/// The audit log: one JSON line per event, appended with a single write.
pub struct AuditLog {
    file: Mutex<File>,
}

#[derive(Serialize)]
struct AuditEvent<'a> {
    time: String,
    peer_uid: u32,
    peer_pid: i32,
    op: &'a str,
    chat_id: Option<&'a str>,
    chat: Option<&'a str>,
    outcome: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    elapsed_ms: Option<f64>,
}

impl AuditLog {
    pub fn open(path: &Path) -> Result<Self, ServerError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(|source| ServerError::Io {
                path: path.to_owned(),
                source,
            })?;
        Ok(Self {
            file: Mutex::new(file),
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        peer: Peer,
        op: &str,
        chat_id: Option<&str>,
        chat: Option<&str>,
        outcome: &str,
        message: Option<&str>,
        elapsed_ms: Option<f64>,
    ) {
        let event = AuditEvent {
            time: rfc3339_now(),
            peer_uid: peer.uid,
            peer_pid: peer.pid,
            op,
            // A refused id is recorded in its JSON-escaped form, bounded.
            chat_id: chat_id.map(|c| &c[..floor_char_boundary(c, 200)]),
            chat,
            outcome,
            message,
            elapsed_ms,
        };
        let Ok(mut line) = serde_json::to_vec(&event) else {
            return;
        };
        line.push(b'\n');
        let mut file = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(e) = file.write_all(&line) {
            tracing::error!(error = %e, "writing the audit log failed");
        }
    }
}

fn floor_char_boundary(s: &str, max: usize) -> usize {
    if s.len() <= max {
        return s.len();
    }
    (0..=max)
        .rev()
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(0)
}

/// An operation's outcome and the descriptor that goes back with it.
type Handled = Result<(Outcome, Option<OwnedFd>), HelperError>;

/// The peer of one connection, from `SO_PEERCRED`.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub uid: u32,
    pub pid: i32,
}

/// The bound helper, ready to serve.
pub struct Server {
    listener: OwnedFd,
    state: Arc<State>,
}

struct State {
    config: ServerConfig,
    provisioner: Provisioner,
    audit: AuditLog,
}

impl Server {
    /// Binds the socket (replacing a stale one), sets its mode and group, and opens the audit log.
    pub fn bind(config: ServerConfig) -> Result<Self, ServerError> {
        require_absolute(&config)?;
        let audit = AuditLog::open(&config.audit_log)?;
        let path = &config.socket;
        match path.symlink_metadata() {
            Ok(meta) if meta.file_type().is_socket() => {
                std::fs::remove_file(path).map_err(|source| ServerError::Io {
                    path: path.clone(),
                    source,
                })?;
            }
            Ok(_) => return Err(ServerError::NotASocket(path.clone())),
            Err(_) => {}
        }
        let sys = |what: &str| {
            let what = format!("{what} {}", path.display());
            move |source| ServerError::Sys { what, source }
        };
        let listener = socket(
            AddressFamily::Unix,
            SockType::SeqPacket,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(sys("creating the socket for"))?;
        let addr = UnixAddr::new(path.as_path()).map_err(sys("addressing"))?;
        bind(listener.as_raw_fd(), &addr).map_err(sys("binding"))?;
        let gid = match &config.group {
            Some(name) => Some(
                Group::from_name(name)
                    .ok()
                    .flatten()
                    .ok_or_else(|| ServerError::NoGroup(name.clone()))?
                    .gid,
            ),
            None => None,
        };
        if gid.is_some() {
            nix::unistd::chown(path.as_path(), None, gid).map_err(sys("setting the group of"))?;
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(
            |source| ServerError::Io {
                path: path.clone(),
                source,
            },
        )?;
        listen(&listener, Backlog::new(64).map_err(sys("listening on"))?)
            .map_err(sys("listening on"))?;
        let provisioner =
            Provisioner::new(&config.workspace_root).with_archive_dir(config.archive_dir.clone());
        // Nothing is in progress before the first request: what a killed helper left is junk.
        match provisioner.sweep_leftovers() {
            Ok(names) if names.is_empty() => {}
            Ok(names) => tracing::warn!(?names, "removed what interrupted transitions left"),
            Err(e) => {
                tracing::warn!(error = %e, "could not clean up after interrupted transitions")
            }
        }
        Ok(Self {
            listener,
            state: Arc::new(State {
                config,
                provisioner,
                audit,
            }),
        })
    }

    /// Accepts connections forever, each on its own thread.
    pub fn serve(self) -> Result<(), ServerError> {
        tracing::info!(socket = %self.state.config.socket.display(), allow_uid = self.state.config.allow_uid, "serving");
        loop {
            let raw = match accept4(self.listener.as_raw_fd(), SockFlag::SOCK_CLOEXEC) {
                Ok(raw) => raw,
                Err(nix::Error::EINTR | nix::Error::ECONNABORTED) => continue,
                Err(source) => {
                    return Err(ServerError::Sys {
                        what: "accepting".into(),
                        source,
                    });
                }
            };
            // SAFETY: accept4 returned a new descriptor that nothing else owns.
            #[allow(unsafe_code)]
            let conn = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) };
            let state = Arc::clone(&self.state);
            let spawned = std::thread::Builder::new()
                .name("helper-conn".into())
                .spawn(move || state.serve_connection(conn));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start a connection thread");
            }
        }
    }
}

impl State {
    fn serve_connection(&self, conn: OwnedFd) {
        let peer = match getsockopt(&conn, PeerCredentials) {
            Ok(cred) => Peer {
                uid: cred.uid(),
                pid: cred.pid(),
            },
            Err(e) => {
                tracing::warn!(error = %e, "no peer credentials; closing");
                return;
            }
        };
        if peer.uid != self.config.allow_uid {
            tracing::warn!(peer_uid = peer.uid, peer_pid = peer.pid, "refused a peer");
            self.audit.record(
                peer,
                "connect",
                None,
                None,
                "forbidden",
                Some("peer uid is not the service user"),
                None,
            );
            let refusal = Reply::Error(HelperError::new(
                ErrorKind::Forbidden,
                format!(
                    "uid {} may not use the sandbox helper (only uid {})",
                    peer.uid, self.config.allow_uid
                ),
            ));
            let _ = send_reply(&conn, &refusal, None);
            linger_until_read(&conn);
            return;
        }
        loop {
            let request = match recv_plain::<Request>(conn.as_fd()) {
                Ok(request) => request,
                Err(WireError::Closed) => return,
                Err(
                    e @ (WireError::Decode(_) | WireError::TooLarge | WireError::UnexpectedFds),
                ) => {
                    self.audit.record(
                        peer,
                        "malformed",
                        None,
                        None,
                        "protocol",
                        Some(&e.to_string()),
                        None,
                    );
                    let reply = Reply::Error(HelperError::new(ErrorKind::Protocol, e.to_string()));
                    if send_reply(&conn, &reply, None).is_err() {
                        return;
                    }
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reading a request failed");
                    return;
                }
            };
            let started = std::time::Instant::now();
            let (result, chat) = self.handle(&request);
            let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
            let (reply, fd, outcome, message) = match result {
                Ok((outcome, fd)) => (Reply::Ok(outcome), fd, "ok".to_owned(), None),
                Err(e) => {
                    let kind = serde_json::to_value(e.kind)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_else(|| "error".into());
                    let message = e.message.clone();
                    (Reply::Error(e), None, kind, Some(message))
                }
            };
            self.audit.record(
                peer,
                request.op(),
                Some(request.chat_id()),
                chat.as_deref(),
                &outcome,
                message.as_deref(),
                Some((elapsed_ms * 10.0).round() / 10.0),
            );
            tracing::info!(
                op = request.op(),
                chat = chat.as_deref(),
                outcome,
                elapsed_ms,
                "request"
            );
            if let Err(e) = send_reply(&conn, &reply, fd.as_ref().map(|f| f.as_fd())) {
                tracing::warn!(error = %e, "sending a reply failed");
                return;
            }
        }
    }

    /// Validates and carries out one request; also returns the chat's name for the audit line.
    fn handle(&self, request: &Request) -> (Handled, Option<String>) {
        if let Err(e) = request.validate() {
            return (Err(e), None);
        }
        let mut chat_name = None;
        let result = self.dispatch(request, &mut chat_name);
        (result, chat_name)
    }

    fn find(&self, chat_id: &str, name: &mut Option<String>) -> Result<ChatUser, HelperError> {
        let lock = self.provisioner.chat_lock(chat_id);
        let _held = lock.lock().unwrap_or_else(PoisonError::into_inner);
        self.find_locked(chat_id, name)
    }

    /// The provisioned chat (NotFound otherwise), for a caller already holding its lock.
    fn find_locked(
        &self,
        chat_id: &str,
        name: &mut Option<String>,
    ) -> Result<ChatUser, HelperError> {
        let chat = self.provisioner.find(chat_id)?.ok_or_else(|| {
            HelperError::new(
                ErrorKind::NotFound,
                format!("chat {chat_id:?} is not provisioned"),
            )
        })?;
        *name = Some(chat.name.clone());
        Ok(chat)
    }

    fn dispatch(&self, request: &Request, name: &mut Option<String>) -> Handled {
        match request {
            Request::Provision {
                chat_id,
                seed_files,
            } => {
                let lock = self.provisioner.chat_lock(chat_id);
                let _held = lock.lock().unwrap_or_else(PoisonError::into_inner);
                let (chat, created) = self.provisioner.provision(chat_id, seed_files)?;
                *name = Some(chat.name.clone());
                Ok((
                    Outcome::Provisioned {
                        name: chat.name,
                        uid: chat.uid,
                        gid: chat.gid,
                        home: chat.home,
                        created,
                    },
                    None,
                ))
            }
            Request::StartSandbox {
                chat_id,
                program,
                args,
                env,
                exec_dirs,
            } => {
                let lock = self.provisioner.chat_lock(chat_id);
                let _held = lock.lock().unwrap_or_else(PoisonError::into_inner);
                let chat = self.find_locked(chat_id, name)?;
                if let Some(init_pid) = sandbox::running(&chat) {
                    return Ok((
                        Outcome::Started {
                            init_pid,
                            program_exit_code: None,
                        },
                        None,
                    ));
                }
                let launch = sandbox::Launch {
                    program,
                    args,
                    env,
                    exec_dirs,
                };
                let (init_pid, program_exit_code) = sandbox::start(&self.config, &chat, &launch)?;
                Ok((
                    Outcome::Started {
                        init_pid,
                        program_exit_code,
                    },
                    None,
                ))
            }
            Request::EnsureRunner {
                chat_id,
                runner,
                env,
                exec_dirs,
            } => {
                // Held from the lookup across the start, so two turns cannot start the same chat
                // twice (nor a destroy slip in between).
                let lock = self.provisioner.chat_lock(chat_id);
                let _held = lock.lock().unwrap_or_else(PoisonError::into_inner);
                let chat = self.find_locked(chat_id, name)?;
                let started = sandbox::ensure_runner(&self.config, &chat, runner, env, exec_dirs)?;
                Ok((Outcome::RunnerReady { started }, None))
            }
            Request::WriteFile {
                chat_id,
                path,
                contents,
            } => {
                let chat = self.find(chat_id, name)?;
                let bytes = provision::write_file(&chat, path, contents.as_bytes())?;
                Ok((Outcome::Written { bytes }, None))
            }
            Request::RemoveFile { chat_id, path } => {
                let chat = self.find(chat_id, name)?;
                let existed = provision::remove_file(&chat, path)?;
                Ok((Outcome::Removed { existed }, None))
            }
            Request::Attach {
                chat_id,
                read_only,
                cols,
                rows,
            } => {
                let chat = self.find(chat_id, name)?;
                if sandbox::running(&chat).is_none() {
                    return Err(HelperError::new(
                        ErrorKind::NotFound,
                        format!("chat {chat_id:?} has no running sandbox to attach to"),
                    ));
                }
                let (pid, master) = sandbox::attach(&self.config, &chat, *read_only, *cols, *rows)?;
                Ok((Outcome::Attached { pid }, Some(master)))
            }
            Request::OpenFile { chat_id, path } => {
                let chat = self.find(chat_id, name)?;
                let (fd, size) = provision::open_file(&chat, path)?;
                Ok((Outcome::Opened { size }, Some(fd)))
            }
            Request::ConnectRunner { chat_id } => {
                let chat = self.find(chat_id, name)?;
                let fd = provision::connect_runner(&chat)?;
                Ok((Outcome::Connected, Some(fd)))
            }
            Request::CopyFile {
                from_chat,
                from_path,
                to_chat,
                to_path,
                overwrite,
            } => {
                let from = self.find(from_chat, name)?;
                let mut to_name = None;
                let to = self.find(to_chat, &mut to_name)?;
                *name = Some(format!("{}->{}", from.name, to_name.unwrap_or_default()));
                let bytes = provision::copy_file(&from, from_path, &to, to_path, *overwrite)?;
                Ok((Outcome::Copied { bytes }, None))
            }
            Request::Stop { chat_id } => {
                let lock = self.provisioner.chat_lock(chat_id);
                let _held = lock.lock().unwrap_or_else(PoisonError::into_inner);
                let Some(chat) = self.provisioner.find(chat_id)? else {
                    return Ok((Outcome::Stopped { was_running: false }, None));
                };
                *name = Some(chat.name.clone());
                let was_running = sandbox::running(&chat).is_some();
                sandbox::stop(&chat)?;
                Ok((Outcome::Stopped { was_running }, None))
            }
            Request::Destroy { chat_id } => {
                let lock = self.provisioner.chat_lock(chat_id);
                let _held = lock.lock().unwrap_or_else(PoisonError::into_inner);
                let home = match self.provisioner.find(chat_id)? {
                    Some(chat) => {
                        *name = Some(chat.name.clone());
                        sandbox::stop(&chat)?;
                        self.provisioner.destroy(&chat)?;
                        true
                    }
                    None => false,
                };
                // An archive left behind would bring the chat back with its next message.
                let archived = self.provisioner.discard_archives(chat_id)?;
                Ok((
                    Outcome::Destroyed {
                        existed: home || archived,
                    },
                    None,
                ))
            }
            Request::Archive { chat_id } => {
                let lock = self.provisioner.chat_lock(chat_id);
                let _held = lock.lock().unwrap_or_else(PoisonError::into_inner);
                let Some(chat) = self.provisioner.find(chat_id)? else {
                    return Ok((
                        Outcome::Archived {
                            archive: PathBuf::new(),
                            entries: 0,
                            archive_bytes: 0,
                            archived: false,
                        },
                        None,
                    ));
                };
                *name = Some(chat.name.clone());
                sandbox::stop(&chat)?;
                let report = self.provisioner.archive(&chat)?;
                Ok((
                    Outcome::Archived {
                        archive: report.archive,
                        entries: report.entries,
                        archive_bytes: report.archive_bytes,
                        archived: true,
                    },
                    None,
                ))
            }
            Request::Status { chat_id } => {
                let lock = self.provisioner.chat_lock(chat_id);
                let _held = lock.lock().unwrap_or_else(PoisonError::into_inner);
                let chat = self.provisioner.find(chat_id)?;
                *name = chat.as_ref().map(|c| c.name.clone());
                let init_pid = chat.as_ref().and_then(sandbox::running);
                Ok((
                    Outcome::Status {
                        name: chat.as_ref().map(|c| c.name.clone()),
                        home: chat.map(|c| c.home),
                        init_pid,
                    },
                    None,
                ))
            }
        }
    }
}

/// After a refusal: closing a unix socket that still holds unread requests resets the
/// connection, and the peer would see `ECONNRESET` instead of the refusal. So stop writing, and
/// discard what the peer sends until it closes (for at most a second, a few messages).
fn linger_until_read(conn: &OwnedFd) {
    use nix::sys::socket::{
        MsgFlags, Shutdown, recv, setsockopt, shutdown, sockopt::ReceiveTimeout,
    };
    let _ = shutdown(conn.as_raw_fd(), Shutdown::Write);
    let _ = setsockopt(conn, ReceiveTimeout, &nix::sys::time::TimeVal::new(1, 0));
    let mut scratch = [0u8; 512];
    for _ in 0..8 {
        match recv(conn.as_raw_fd(), &mut scratch, MsgFlags::MSG_TRUNC) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// The current time as RFC 3339 UTC with milliseconds.
fn rfc3339_now() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil-from-days.
    let z = i64::try_from(days).unwrap_or(0) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        now.subsec_millis()
    )
}

/// Every call into the sandbox ([`crate::jail`]) the helper makes.
mod sandbox {
    use std::ffi::OsString;
    use std::os::fd::OwnedFd;
    use std::path::PathBuf;
    use std::process::Stdio;

    use super::{LAUNCH_TIMEOUT, ServerConfig};
    use crate::jail;
    use crate::protocol::{ErrorKind, HelperError};
    use crate::provision::ChatUser;
    use crate::tmux::TmuxServer;

    /// What the daemon asked the sandbox to run.
    pub(super) struct Launch<'a> {
        pub program: &'a PathBuf,
        pub args: &'a [String],
        pub env: &'a [(String, String)],
        pub exec_dirs: &'a [PathBuf],
    }

    fn jail_error(what: &str, e: impl std::fmt::Display) -> HelperError {
        HelperError::new(ErrorKind::System, format!("{what}: {e}"))
    }

    /// The environment every process in a chat's sandbox starts with; the daemon's entries come
    /// first and cannot replace the identity variables.
    fn environment(chat: &ChatUser, extra: &[(String, String)]) -> Vec<(String, String)> {
        let fixed = [
            ("HOME", chat.home.to_string_lossy().into_owned()),
            ("USER", chat.name.clone()),
            ("LOGNAME", chat.name.clone()),
        ];
        let mut env: Vec<(String, String)> = extra
            .iter()
            .filter(|(k, _)| !fixed.iter().any(|(f, _)| f == k))
            .cloned()
            .collect();
        if !env.iter().any(|(k, _)| k == "PATH") {
            env.push(("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()));
        }
        // The chat's user has no login shell (nologin), so tmux's `shell` window needs one named.
        if !env.iter().any(|(k, _)| k == "SHELL") {
            let shell = ["/bin/bash", "/bin/sh"]
                .into_iter()
                .find(|s| std::path::Path::new(s).is_file())
                .unwrap_or("/bin/sh");
            env.push(("SHELL".into(), shell.into()));
        }
        env.extend(fixed.into_iter().map(|(k, v)| (k.to_owned(), v)));
        env
    }

    fn spec(
        config: &ServerConfig,
        chat: &ChatUser,
        program: PathBuf,
        args: Vec<OsString>,
        env: Vec<(String, String)>,
        exec_dirs: Vec<PathBuf>,
    ) -> jail::SandboxSpec {
        jail::SandboxSpec {
            name: chat.name.clone(),
            uid: chat.uid,
            gid: chat.gid,
            home: chat.home.clone(),
            workspace_root: config.workspace_root.clone(),
            hide: config.hide.clone(),
            exec_dirs,
            gateway_dir: config.gateway_dir.clone(),
            limits: jail::Limits::default(),
            init_exe: config.init_exe.clone(),
            program,
            args,
            env,
            cwd: chat.home.clone(),
        }
    }

    pub(super) fn running(chat: &ChatUser) -> Option<i32> {
        jail::running(&chat.name)
    }

    /// Starts the sandbox and waits for its program (the launcher) to finish.
    pub(super) fn start(
        config: &ServerConfig,
        chat: &ChatUser,
        launch: &Launch<'_>,
    ) -> Result<(i32, Option<i32>), HelperError> {
        let spec = spec(
            config,
            chat,
            launch.program.clone(),
            launch.args.iter().map(OsString::from).collect(),
            environment(chat, launch.env),
            launch.exec_dirs.to_vec(),
        );
        let mut sandbox = jail::spawn(&spec).map_err(|e| jail_error("starting the sandbox", e))?;
        let init_pid = sandbox.init_pid;
        let code = sandbox
            .wait_program(LAUNCH_TIMEOUT)
            .map_err(|e| jail_error("waiting for the sandbox's program", e))?;
        Ok((init_pid, Some(code)))
    }

    /// Makes sure the chat's runner is live: respawned in the `agent` window of a live session
    /// when it has exited, or the whole sandbox started with a fresh tmux session (a sandbox
    /// that is alive without its session is stopped first). Returns whether it (re)started.
    pub(super) fn ensure_runner(
        config: &ServerConfig,
        chat: &ChatUser,
        runner: &[String],
        env: &[(String, String)],
        exec_dirs: &[PathBuf],
    ) -> Result<bool, HelperError> {
        let tmux = TmuxServer::for_home(&chat.home);
        let runner: Vec<OsString> = runner.iter().map(OsString::from).collect();
        let tmux_error = |e: crate::tmux::TmuxError| jail_error("driving the chat's tmux", e);
        if running(chat).is_some() {
            if tmux.has_session() {
                if tmux.agent_pane_dead().map_err(tmux_error)? {
                    tmux.respawn_agent(env, &runner).map_err(tmux_error)?;
                    return Ok(true);
                }
                return Ok(false);
            }
            stop(chat)?;
        }
        let args: Vec<String> = tmux
            .new_session_args(&chat.home, env, &runner)
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let program = which_tmux()?;
        let launch = Launch {
            program: &program,
            args: &args,
            env,
            exec_dirs,
        };
        match start(config, chat, &launch)? {
            (_, Some(0)) => {}
            (_, code) => {
                return Err(HelperError::system(format!(
                    "tmux exited with {code:?} inside the chat's sandbox"
                )));
            }
        }
        tmux.open_windows(&chat.home).map_err(tmux_error)?;
        Ok(true)
    }

    pub(super) fn stop(chat: &ChatUser) -> Result<(), HelperError> {
        jail::stop(&chat.name).map_err(|e| jail_error("stopping the sandbox", e))
    }

    /// `tmux -S <home>/.picortex/tmux.sock attach [-r]` inside the chat's sandbox on a new PTY;
    /// returns the attach's pid and the PTY master.
    pub(super) fn attach(
        config: &ServerConfig,
        chat: &ChatUser,
        read_only: bool,
        cols: u16,
        rows: u16,
    ) -> Result<(i32, OwnedFd), HelperError> {
        let size = nix::pty::Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = nix::pty::openpty(Some(&size), None)
            .map_err(|e| jail_error("opening a terminal", e))?;
        let socket = chat.home.join(".picortex").join("tmux.sock");
        let mut args: Vec<OsString> = vec!["-S".into(), socket.into_os_string(), "attach".into()];
        if read_only {
            args.push("-r".into());
        }
        let mut env = environment(chat, &[]);
        env.push(("TERM".into(), "xterm-256color".into()));
        let tmux = which_tmux()?;
        let spec = spec(config, chat, tmux, args, env, Vec::new());
        let terminal = |fd: &OwnedFd| {
            fd.try_clone()
                .map(Stdio::from)
                .map_err(|e| jail_error("sharing the terminal", e))
        };
        let io = jail::ProgramIo {
            stdin: terminal(&pty.slave)?,
            stdout: terminal(&pty.slave)?,
            stderr: Stdio::from(pty.slave),
        };
        let mut entered = jail::enter(&chat.name, &spec.program_spec(), io)
            .map_err(|e| jail_error("attaching", e))?;
        let pid = entered.program_pid;
        // The waiter outside the sandbox is our child: reap it when the attach ends.
        let reaper = std::thread::Builder::new()
            .name("attach-reaper".into())
            .spawn(move || {
                let _ = entered.wait();
            });
        if let Err(e) = reaper {
            tracing::warn!(error = %e, "no thread to reap an attach; it stays a zombie when it ends");
        }
        Ok((pid, pty.master))
    }

    fn which_tmux() -> Result<PathBuf, HelperError> {
        ["/usr/bin/tmux", "/usr/local/bin/tmux", "/bin/tmux"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .ok_or_else(|| HelperError::system("tmux is not installed"))
    }
}

/// Homes and archives are made from these directories, so a relative one would name a
/// different place for each process (and `useradd` refuses a relative home).
fn require_absolute(config: &ServerConfig) -> Result<(), ServerError> {
    let dirs = [
        ("the workspace root", Some(&config.workspace_root)),
        ("the archive directory", config.archive_dir.as_ref()),
    ];
    for (what, path) in dirs {
        if let Some(path) = path.filter(|p| !p.is_absolute()) {
            return Err(ServerError::RelativePath {
                what,
                path: path.clone(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_directories_are_refused_before_anything_is_made() {
        let dir = tempfile::tempdir().unwrap();
        let config = |root: &str, archive: Option<&str>| ServerConfig {
            socket: dir.path().join("s.sock"),
            allow_uid: 0,
            group: None,
            workspace_root: root.into(),
            audit_log: dir.path().join("audit.jsonl"),
            hide: Vec::new(),
            gateway_dir: None,
            init_exe: "/bin/true".into(),
            archive_dir: archive.map(PathBuf::from),
        };
        for (root, archive) in [(".demo-data/chats", None), ("/srv/chats", Some("archive"))] {
            let err = Server::bind(config(root, archive)).err().expect("refused");
            assert!(matches!(err, ServerError::RelativePath { .. }), "{err}");
        }
        assert!(!dir.path().join("audit.jsonl").exists());
        assert!(!dir.path().join("s.sock").exists());
    }

    #[test]
    fn audit_time_is_rfc3339() {
        let t = rfc3339_now();
        assert_eq!(t.len(), "2026-11-24T13:33:04.000Z".len(), "{t}");
        assert!(t.starts_with("20"), "{t}");
        assert!(t.ends_with('Z'));
    }
}
