//! The privileged helper's wire protocol: the typed requests the daemon may send, the replies it
//! gets back, the checks every argument passes, and the framing (one JSON document per
//! `SOCK_SEQPACKET` message, bounded in size, with at most one file descriptor attached by
//! `SCM_RIGHTS`).
//!
//! Unknown operations and unknown fields are refused when decoding, so a request means exactly
//! what its type says. Argument checks live here too ([`Request::validate`]) so the server and
//! the client refuse the same things.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Component, Path, PathBuf};

use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};
use serde::{Deserialize, Serialize};

use crate::ids;

/// The largest message either side sends or accepts (a request with its seed files, or a reply).
pub const MAX_MESSAGE_BYTES: usize = 128 * 1024;
/// The longest relative path accepted inside a chat's home.
pub const MAX_RELATIVE_PATH_BYTES: usize = 1024;
/// The most seed files one provisioning request may carry.
pub const MAX_SEED_FILES: usize = 32;
/// The most arguments, environment entries and executable directories of one sandbox start.
pub const MAX_LIST_ITEMS: usize = 64;
/// The longest single argument, environment value or absolute path.
pub const MAX_ITEM_BYTES: usize = 4096;
/// The largest terminal size accepted for an attach.
pub const MAX_TERMINAL_CELLS: u16 = 1000;
/// The most a `WriteFile` carries (it must fit one message with room to spare).
pub const MAX_WRITE_BYTES: usize = 64 * 1024;

/// A file written into a new chat's home and committed with its first commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedFile {
    /// Relative to the home; checked by [`validate_relative_path`].
    pub path: String,
    pub contents: String,
}

/// One operation of the helper.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Creates the chat's user, group and home (or finds them): [`Outcome::Provisioned`].
    Provision {
        chat_id: String,
        #[serde(default)]
        seed_files: Vec<SeedFile>,
    },
    /// Starts the chat's sandbox running `program` (the chat's tmux server launcher), unless the
    /// sandbox already runs: [`Outcome::Started`].
    StartSandbox {
        chat_id: String,
        program: PathBuf,
        #[serde(default)]
        args: Vec<String>,
        #[serde(default)]
        env: Vec<(String, String)>,
        #[serde(default)]
        exec_dirs: Vec<PathBuf>,
    },
    /// Makes sure the chat's runner is live: starts the chat's sandbox with its tmux server and
    /// `runner` (argv) in the `agent` window, or respawns `runner` there when it has exited;
    /// `env` is the session's (and the runner's) environment: [`Outcome::RunnerReady`].
    EnsureRunner {
        chat_id: String,
        runner: Vec<String>,
        #[serde(default)]
        env: Vec<(String, String)>,
        #[serde(default)]
        exec_dirs: Vec<PathBuf>,
    },
    /// Writes a file beneath the chat's home as the chat's user, replacing it atomically (the
    /// daemon's own files there, e.g. the agent's system prompt): [`Outcome::Written`].
    WriteFile {
        chat_id: String,
        path: String,
        contents: String,
    },
    /// Removes a file beneath the chat's home as the chat's user: [`Outcome::Removed`].
    RemoveFile { chat_id: String, path: String },
    /// A `tmux attach` to the chat's tmux server inside its sandbox; the reply carries the PTY
    /// master: [`Outcome::Attached`].
    Attach {
        chat_id: String,
        #[serde(default)]
        read_only: bool,
        cols: u16,
        rows: u16,
    },
    /// A regular file beneath the chat's home opened for reading with the chat user's rights;
    /// the reply carries the descriptor: [`Outcome::Opened`].
    OpenFile { chat_id: String, path: String },
    /// A socket connected to the chat's runner (`~/.picortex/runner.sock`): [`Outcome::Connected`].
    ConnectRunner { chat_id: String },
    /// Copies a regular file from one chat's home into another's (the bridge): [`Outcome::Copied`].
    CopyFile {
        from_chat: String,
        from_path: String,
        to_chat: String,
        to_path: String,
        #[serde(default)]
        overwrite: bool,
    },
    /// Stops the chat's sandbox (a stopped chat is fine): [`Outcome::Stopped`].
    Stop { chat_id: String },
    /// Stops the chat and removes its user, group, home and archive, for good:
    /// [`Outcome::Destroyed`].
    Destroy { chat_id: String },
    /// Whether the chat is provisioned and running: [`Outcome::Status`].
    Status { chat_id: String },
    /// Stops the chat, writes its home to `<archive dir>/<name>.tar.zst` (verified), then
    /// removes its home, user, group and cgroup: [`Outcome::Archived`]. The next `Provision`
    /// of the chat restores it.
    Archive { chat_id: String },
}

impl Request {
    /// The operation's name as it appears on the wire and in the audit log.
    pub fn op(&self) -> &'static str {
        match self {
            Request::Provision { .. } => "provision",
            Request::StartSandbox { .. } => "start_sandbox",
            Request::EnsureRunner { .. } => "ensure_runner",
            Request::WriteFile { .. } => "write_file",
            Request::RemoveFile { .. } => "remove_file",
            Request::Attach { .. } => "attach",
            Request::OpenFile { .. } => "open_file",
            Request::ConnectRunner { .. } => "connect_runner",
            Request::CopyFile { .. } => "copy_file",
            Request::Stop { .. } => "stop",
            Request::Destroy { .. } => "destroy",
            Request::Status { .. } => "status",
            Request::Archive { .. } => "archive",
        }
    }

    /// The chat the request is about (the source chat for a copy).
    pub fn chat_id(&self) -> &str {
        match self {
            Request::Provision { chat_id, .. }
            | Request::StartSandbox { chat_id, .. }
            | Request::EnsureRunner { chat_id, .. }
            | Request::WriteFile { chat_id, .. }
            | Request::RemoveFile { chat_id, .. }
            | Request::Attach { chat_id, .. }
            | Request::OpenFile { chat_id, .. }
            | Request::ConnectRunner { chat_id }
            | Request::Stop { chat_id }
            | Request::Destroy { chat_id }
            | Request::Status { chat_id }
            | Request::Archive { chat_id } => chat_id,
            Request::CopyFile { from_chat, .. } => from_chat,
        }
    }

    /// Checks every argument; a request that passes carries no path or shell syntax where an
    /// identifier is expected and no path escaping a home.
    pub fn validate(&self) -> Result<(), HelperError> {
        match self {
            Request::Provision {
                chat_id,
                seed_files,
            } => {
                check_chat_id(chat_id)?;
                if seed_files.len() > MAX_SEED_FILES {
                    return Err(HelperError::invalid(format!(
                        "at most {MAX_SEED_FILES} seed files"
                    )));
                }
                for seed in seed_files {
                    validate_relative_path(&seed.path)?;
                    if seed.path == ".gitignore" || seed.path.starts_with(".picortex/") {
                        // `.picortex/prompts/` is the one part of the runtime directory that is
                        // the chat's own, versioned content.
                        if !seed.path.starts_with(".picortex/prompts/") {
                            return Err(HelperError::invalid(format!(
                                "seed file {:?} would overwrite picortex's own files",
                                seed.path
                            )));
                        }
                    }
                }
                Ok(())
            }
            Request::StartSandbox {
                chat_id,
                program,
                args,
                env,
                exec_dirs,
            } => {
                check_chat_id(chat_id)?;
                validate_absolute_path(program)?;
                check_launch(args, env, exec_dirs)
            }
            Request::EnsureRunner {
                chat_id,
                runner,
                env,
                exec_dirs,
            } => {
                check_chat_id(chat_id)?;
                let Some(program) = runner.first() else {
                    return Err(HelperError::invalid("the runner's command line is empty"));
                };
                validate_absolute_path(Path::new(program))?;
                check_launch(runner, env, exec_dirs)
            }
            Request::WriteFile {
                chat_id,
                path,
                contents,
            } => {
                check_chat_id(chat_id)?;
                validate_relative_path(path)?;
                if contents.len() > MAX_WRITE_BYTES {
                    return Err(HelperError::invalid(format!(
                        "at most {MAX_WRITE_BYTES} bytes can be written this way"
                    )));
                }
                Ok(())
            }
            Request::RemoveFile { chat_id, path } => {
                check_chat_id(chat_id)?;
                validate_relative_path(path)
            }
            Request::Attach {
                chat_id,
                cols,
                rows,
                ..
            } => {
                check_chat_id(chat_id)?;
                for (what, n) in [("cols", cols), ("rows", rows)] {
                    if *n == 0 || *n > MAX_TERMINAL_CELLS {
                        return Err(HelperError::invalid(format!(
                            "{what} must be between 1 and {MAX_TERMINAL_CELLS}"
                        )));
                    }
                }
                Ok(())
            }
            Request::OpenFile { chat_id, path } => {
                check_chat_id(chat_id)?;
                validate_relative_path(path)
            }
            Request::CopyFile {
                from_chat,
                from_path,
                to_chat,
                to_path,
                ..
            } => {
                check_chat_id(from_chat)?;
                check_chat_id(to_chat)?;
                validate_relative_path(from_path)?;
                validate_relative_path(to_path)
            }
            Request::ConnectRunner { chat_id }
            | Request::Stop { chat_id }
            | Request::Destroy { chat_id }
            | Request::Status { chat_id }
            | Request::Archive { chat_id } => check_chat_id(chat_id),
        }
    }
}

/// Checks what a program in a sandbox is started with: bounded lists, plain text arguments
/// and values, environment names, absolute executable directories.
fn check_launch(
    args: &[String],
    env: &[(String, String)],
    exec_dirs: &[PathBuf],
) -> Result<(), HelperError> {
    check_list_len("arguments", args.len())?;
    check_list_len("environment entries", env.len())?;
    check_list_len("executable directories", exec_dirs.len())?;
    for arg in args {
        check_text("an argument", arg)?;
    }
    for (name, value) in env {
        validate_env_name(name)?;
        check_text("an environment value", value)?;
    }
    for dir in exec_dirs {
        validate_absolute_path(dir)?;
    }
    Ok(())
}

/// What a successful operation reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case", deny_unknown_fields)]
pub enum Outcome {
    Provisioned {
        name: String,
        uid: u32,
        gid: u32,
        home: PathBuf,
        /// False when the chat already existed (provisioning is idempotent).
        created: bool,
    },
    RunnerReady {
        /// Whether the runner was (re)started; false when it was already live.
        started: bool,
    },
    Written {
        bytes: u64,
    },
    Removed {
        existed: bool,
    },
    Started {
        init_pid: i32,
        /// The launcher's exit code; `None` when the sandbox was already running.
        program_exit_code: Option<i32>,
    },
    /// The PTY master is attached to the reply.
    Attached {
        pid: i32,
    },
    /// The opened file is attached to the reply.
    Opened {
        size: u64,
    },
    /// The connected socket is attached to the reply.
    Connected,
    Copied {
        bytes: u64,
    },
    Stopped {
        was_running: bool,
    },
    Destroyed {
        existed: bool,
    },
    Status {
        /// The chat's user and directory name, when provisioned.
        name: Option<String>,
        home: Option<PathBuf>,
        /// The sandbox's init process, when running.
        init_pid: Option<i32>,
    },
    Archived {
        archive: PathBuf,
        entries: u64,
        archive_bytes: u64,
        /// False when the chat was already archived (or never provisioned).
        archived: bool,
    },
}

/// The class of a failure, so the daemon can react without parsing messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The peer is not the service user.
    Forbidden,
    /// An argument failed validation; nothing was changed.
    InvalidArgument,
    /// The chat, file or socket does not exist.
    NotFound,
    /// The target exists and overwriting was not asked for.
    AlreadyExists,
    /// The path resolves outside the home, through a symlink, or to something not allowed.
    PathRefused,
    /// A system call or a system tool failed (after rolling back what was done).
    System,
    /// The message could not be decoded or was too large.
    Protocol,
    /// The chat's archive is truncated or corrupt; it was left untouched and no home was made.
    ArchiveDamaged,
    /// The archive directory lacks space for the chat's archive; nothing was changed.
    NoSpace,
}

/// A failure as it travels back to the daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(deny_unknown_fields)]
#[error("{kind:?}: {message}")]
pub struct HelperError {
    pub kind: ErrorKind,
    pub message: String,
}

impl HelperError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }

    pub fn system(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::System, message)
    }
}

/// The helper's answer to one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Reply {
    Ok(Outcome),
    Error(HelperError),
}

fn check_chat_id(chat_id: &str) -> Result<(), HelperError> {
    ids::validate_chat_id(chat_id).map_err(|e| HelperError::invalid(e.to_string()))
}

fn check_list_len(what: &str, len: usize) -> Result<(), HelperError> {
    if len > MAX_LIST_ITEMS {
        return Err(HelperError::invalid(format!(
            "at most {MAX_LIST_ITEMS} {what}"
        )));
    }
    Ok(())
}

fn check_text(what: &str, text: &str) -> Result<(), HelperError> {
    if text.len() > MAX_ITEM_BYTES {
        return Err(HelperError::invalid(format!(
            "{what} is longer than {MAX_ITEM_BYTES} bytes"
        )));
    }
    if text.contains('\0') {
        return Err(HelperError::invalid(format!("{what} contains a NUL byte")));
    }
    Ok(())
}

/// A path relative to a chat's home: not empty, bounded, no NUL, not absolute, no `..` or `.`
/// component, no empty component.
pub fn validate_relative_path(path: &str) -> Result<(), HelperError> {
    let refuse = |why: &str| {
        Err(HelperError::new(
            ErrorKind::PathRefused,
            format!("{path:?} is not a usable relative path: {why}"),
        ))
    };
    if path.is_empty() {
        return refuse("it is empty");
    }
    if path.len() > MAX_RELATIVE_PATH_BYTES {
        return refuse("it is too long");
    }
    if path.contains('\0') {
        return refuse("it contains a NUL byte");
    }
    if path.starts_with('/') {
        return refuse("it is absolute");
    }
    if path
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return refuse("it has an empty, '.' or '..' component");
    }
    Ok(())
}

/// An absolute path of a program or directory on the host: absolute, normal components only.
pub fn validate_absolute_path(path: &Path) -> Result<(), HelperError> {
    let text = path.to_string_lossy();
    check_text("a path", &text)?;
    let normal = path.components().enumerate().all(|(i, c)| match c {
        Component::RootDir => i == 0,
        Component::Normal(_) => i > 0,
        _ => false,
    });
    if !path.is_absolute() || !normal {
        return Err(HelperError::invalid(format!(
            "{text:?} is not a plain absolute path"
        )));
    }
    Ok(())
}

/// An environment variable name: `[A-Za-z_][A-Za-z0-9_]*`, bounded.
pub fn validate_env_name(name: &str) -> Result<(), HelperError> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !first_ok || name.len() > 256 || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(HelperError::invalid(format!(
            "{name:?} is not an environment variable name"
        )));
    }
    Ok(())
}

/// Failures of the framing itself.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("the peer closed the connection")]
    Closed,
    #[error("the message is larger than {MAX_MESSAGE_BYTES} bytes")]
    TooLarge,
    #[error("the message is not valid: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("unexpected file descriptors with the message")]
    UnexpectedFds,
    #[error("socket: {0}")]
    Socket(#[from] nix::Error),
}

/// Sends one message, with `fd` attached when given.
pub fn send_message<T: Serialize>(
    socket: BorrowedFd<'_>,
    message: &T,
    fd: Option<BorrowedFd<'_>>,
) -> Result<(), WireError> {
    let bytes = serde_json::to_vec(message)?;
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(WireError::TooLarge);
    }
    let raw: [RawFd; 1] = [fd.map_or(-1, |f| f.as_raw_fd())];
    let rights = [ControlMessage::ScmRights(&raw)];
    let cmsgs: &[ControlMessage<'_>] = if fd.is_some() { &rights } else { &[] };
    let iov = [IoSlice::new(&bytes)];
    loop {
        match sendmsg::<()>(
            socket.as_raw_fd(),
            &iov,
            cmsgs,
            MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Ok(_) => return Ok(()),
            Err(nix::Error::EINTR) => continue,
            Err(nix::Error::EPIPE | nix::Error::ECONNRESET) => return Err(WireError::Closed),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Receives one message and the descriptors that came with it (received close-on-exec).
pub fn recv_message<T: for<'de> Deserialize<'de>>(
    socket: BorrowedFd<'_>,
) -> Result<(T, Vec<OwnedFd>), WireError> {
    let mut buf = vec![0u8; MAX_MESSAGE_BYTES + 1];
    let mut cmsg_space = nix::cmsg_space!([RawFd; 4]);
    let (len, truncated, fds) = loop {
        let mut iov = [IoSliceMut::new(&mut buf)];
        match recvmsg::<()>(
            socket.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg_space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(msg) => {
                let mut fds = Vec::new();
                for cmsg in msg.cmsgs()? {
                    if let ControlMessageOwned::ScmRights(raw) = cmsg {
                        for fd in raw {
                            // SAFETY: the kernel just installed these descriptors in this
                            // process for this message; nothing else owns them.
                            #[allow(unsafe_code)]
                            fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
                        }
                    }
                }
                let truncated = msg
                    .flags
                    .intersects(MsgFlags::MSG_TRUNC | MsgFlags::MSG_CTRUNC);
                break (msg.bytes, truncated, fds);
            }
            Err(nix::Error::EINTR) => continue,
            Err(nix::Error::ECONNRESET) => return Err(WireError::Closed),
            Err(e) => return Err(e.into()),
        }
    };
    if len == 0 && fds.is_empty() {
        return Err(WireError::Closed);
    }
    if truncated || len > MAX_MESSAGE_BYTES {
        return Err(WireError::TooLarge);
    }
    let message = serde_json::from_slice(&buf[..len])?;
    Ok((message, fds))
}

/// Receives a message that must not carry descriptors (the server's side: requests never do).
pub fn recv_plain<T: for<'de> Deserialize<'de>>(socket: BorrowedFd<'_>) -> Result<T, WireError> {
    let (message, fds) = recv_message(socket)?;
    if !fds.is_empty() {
        return Err(WireError::UnexpectedFds);
    }
    Ok(message)
}

/// Sends a reply on any socket-like descriptor (shorthand for the server).
pub fn send_reply(
    socket: &impl AsFd,
    reply: &Reply,
    fd: Option<BorrowedFd<'_>>,
) -> Result<(), WireError> {
    send_message(socket.as_fd(), reply, fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_refuse_unknown_fields() {
        let req = Request::OpenFile {
            chat_id: "abc".into(),
            path: "notes/a.txt".into(),
        };
        let json = serde_json::to_string(&req).unwrap();
        assert_eq!(
            json,
            r#"{"op":"open_file","chat_id":"abc","path":"notes/a.txt"}"#
        );
        assert_eq!(serde_json::from_str::<Request>(&json).unwrap(), req);
        assert!(
            serde_json::from_str::<Request>(
                r#"{"op":"open_file","chat_id":"abc","path":"a","uid":0}"#
            )
            .is_err()
        );
        assert!(serde_json::from_str::<Request>(r#"{"op":"format_disk"}"#).is_err());
    }

    #[test]
    fn framing_carries_one_message_and_its_descriptor() {
        use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
        use std::io::{Read as _, Write as _};
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap();
        let (pipe_read, pipe_write) = nix::unistd::pipe().unwrap();
        let reply = Reply::Ok(Outcome::Opened { size: 5 });
        send_message(a.as_fd(), &reply, Some(pipe_read.as_fd())).unwrap();
        drop(pipe_read);
        let (got, mut fds) = recv_message::<Reply>(b.as_fd()).unwrap();
        assert_eq!(got, reply);
        assert_eq!(fds.len(), 1);
        std::fs::File::from(pipe_write).write_all(b"hello").unwrap();
        let mut text = String::new();
        std::fs::File::from(fds.pop().unwrap())
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "hello");

        // Garbage and unknown operations are decode errors, not panics.
        nix::sys::socket::send(a.as_raw_fd(), b"{not json", MsgFlags::empty()).unwrap();
        assert!(matches!(
            recv_plain::<Request>(b.as_fd()),
            Err(WireError::Decode(_))
        ));
        // A message larger than the bound is refused by the sender.
        let huge = Request::Provision {
            chat_id: "x".into(),
            seed_files: vec![SeedFile {
                path: "a".into(),
                contents: "x".repeat(MAX_MESSAGE_BYTES),
            }],
        };
        assert!(matches!(
            send_message(a.as_fd(), &huge, None),
            Err(WireError::TooLarge)
        ));
        drop(a);
        assert!(matches!(
            recv_plain::<Request>(b.as_fd()),
            Err(WireError::Closed)
        ));
    }

    #[test]
    fn relative_paths_are_checked() {
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "./a",
            "a/",
            "a\0b",
        ] {
            assert!(validate_relative_path(bad).is_err(), "{bad:?} accepted");
        }
        assert!(validate_relative_path(&"a".repeat(MAX_RELATIVE_PATH_BYTES + 1)).is_err());
        assert!(validate_relative_path("notes/a.txt").is_ok());
        assert!(validate_relative_path(".picortex/prompts/discriminator.md").is_ok());
    }

    #[test]
    fn sandbox_arguments_are_checked() {
        let start = |program: &str, env: (&str, &str)| Request::StartSandbox {
            chat_id: "abc".into(),
            program: program.into(),
            args: vec![],
            env: vec![(env.0.into(), env.1.into())],
            exec_dirs: vec![],
        };
        assert!(start("/usr/bin/tmux", ("HOME", "/x")).validate().is_ok());
        assert!(start("tmux", ("HOME", "/x")).validate().is_err());
        assert!(start("/usr/../bin/sh", ("HOME", "/x")).validate().is_err());
        assert!(start("/usr/bin/tmux", ("A=B", "x")).validate().is_err());
        assert!(start("/usr/bin/tmux", ("A", "x\0")).validate().is_err());
        let seed = |path: &str| Request::Provision {
            chat_id: "abc".into(),
            seed_files: vec![SeedFile {
                path: path.into(),
                contents: String::new(),
            }],
        };
        assert!(seed(".picortex/prompts/x.md").validate().is_ok());
        assert!(seed(".picortex/chat_id").validate().is_err());
        assert!(seed(".gitignore").validate().is_err());
    }
}
