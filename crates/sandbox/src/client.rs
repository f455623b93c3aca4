//! The daemon's blocking client of the privileged helper: one connection, one method per
//! operation, descriptors received as [`OwnedFd`]. The daemon calls it from `spawn_blocking`;
//! one client serves one request at a time (open several for parallel work).

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::sys::socket::{AddressFamily, SockFlag, SockType, UnixAddr, connect, socket};

use crate::protocol::{
    HelperError, Outcome, Reply, Request, SeedFile, WireError, recv_message, send_message,
};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connecting to the sandbox helper at {path}: {source}")]
    Connect { path: PathBuf, source: nix::Error },
    #[error("talking to the sandbox helper: {0}")]
    Wire(#[from] WireError),
    /// The helper refused or failed the operation.
    #[error("the sandbox helper answered: {0}")]
    Helper(#[from] HelperError),
    #[error("the sandbox helper answered {op} with an unexpected reply: {detail}")]
    Unexpected { op: &'static str, detail: String },
}

/// A provisioned chat as the helper reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provisioned {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
    pub created: bool,
}

/// A chat's state as the helper reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatStatus {
    pub name: Option<String>,
    pub home: Option<PathBuf>,
    pub init_pid: Option<i32>,
}

/// One connection to the helper.
pub struct HelperClient {
    socket: OwnedFd,
}

impl HelperClient {
    pub fn connect(path: impl AsRef<Path>) -> Result<Self, ClientError> {
        let path = path.as_ref();
        let err = |source| ClientError::Connect {
            path: path.to_owned(),
            source,
        };
        let socket = socket(
            AddressFamily::Unix,
            SockType::SeqPacket,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(err)?;
        let addr = UnixAddr::new(path).map_err(err)?;
        loop {
            match connect(socket.as_raw_fd(), &addr) {
                Ok(()) => break,
                Err(nix::Error::EINTR) => continue,
                Err(e) => return Err(err(e)),
            }
        }
        Ok(Self { socket })
    }

    /// Sends any request and returns the outcome and the descriptor that came with it. The
    /// typed methods below are shorthands.
    pub fn call(&self, request: &Request) -> Result<(Outcome, Option<OwnedFd>), ClientError> {
        send_message(self.socket.as_fd(), request, None)?;
        let (reply, mut fds) = recv_message::<Reply>(self.socket.as_fd())?;
        match reply {
            Reply::Ok(outcome) => Ok((outcome, fds.pop())),
            Reply::Error(e) => Err(e.into()),
        }
    }

    pub fn provision(
        &self,
        chat_id: &str,
        seed_files: Vec<SeedFile>,
    ) -> Result<Provisioned, ClientError> {
        let request = Request::Provision {
            chat_id: chat_id.to_owned(),
            seed_files,
        };
        match self.call(&request)?.0 {
            Outcome::Provisioned {
                name,
                uid,
                gid,
                home,
                created,
            } => Ok(Provisioned {
                name,
                uid,
                gid,
                home,
                created,
            }),
            other => Err(unexpected("provision", &other)),
        }
    }

    /// Starts the chat's sandbox running `program` unless it already runs. Returns the sandbox's
    /// init pid and the program's exit code (`None` when it was already running).
    pub fn start_sandbox(
        &self,
        chat_id: &str,
        program: PathBuf,
        args: Vec<String>,
        env: Vec<(String, String)>,
        exec_dirs: Vec<PathBuf>,
    ) -> Result<(i32, Option<i32>), ClientError> {
        let request = Request::StartSandbox {
            chat_id: chat_id.to_owned(),
            program,
            args,
            env,
            exec_dirs,
        };
        match self.call(&request)?.0 {
            Outcome::Started {
                init_pid,
                program_exit_code,
            } => Ok((init_pid, program_exit_code)),
            other => Err(unexpected("start_sandbox", &other)),
        }
    }

    /// Makes sure the chat's runner is live in its sandbox; returns whether it (re)started.
    pub fn ensure_runner(
        &self,
        chat_id: &str,
        runner: Vec<String>,
        env: Vec<(String, String)>,
        exec_dirs: Vec<PathBuf>,
    ) -> Result<bool, ClientError> {
        let request = Request::EnsureRunner {
            chat_id: chat_id.to_owned(),
            runner,
            env,
            exec_dirs,
        };
        match self.call(&request)?.0 {
            Outcome::RunnerReady { started } => Ok(started),
            other => Err(unexpected("ensure_runner", &other)),
        }
    }

    /// Writes a file beneath the chat's home as the chat's user; returns the bytes written.
    pub fn write_file(
        &self,
        chat_id: &str,
        path: &str,
        contents: &str,
    ) -> Result<u64, ClientError> {
        let request = Request::WriteFile {
            chat_id: chat_id.to_owned(),
            path: path.to_owned(),
            contents: contents.to_owned(),
        };
        match self.call(&request)?.0 {
            Outcome::Written { bytes } => Ok(bytes),
            other => Err(unexpected("write_file", &other)),
        }
    }

    /// Removes a file beneath the chat's home; returns whether there was one.
    pub fn remove_file(&self, chat_id: &str, path: &str) -> Result<bool, ClientError> {
        let request = Request::RemoveFile {
            chat_id: chat_id.to_owned(),
            path: path.to_owned(),
        };
        match self.call(&request)?.0 {
            Outcome::Removed { existed } => Ok(existed),
            other => Err(unexpected("remove_file", &other)),
        }
    }

    /// A `tmux attach` in the chat's sandbox: the PTY master and the attach's pid.
    pub fn attach(
        &self,
        chat_id: &str,
        read_only: bool,
        cols: u16,
        rows: u16,
    ) -> Result<(OwnedFd, i32), ClientError> {
        let request = Request::Attach {
            chat_id: chat_id.to_owned(),
            read_only,
            cols,
            rows,
        };
        match self.call(&request)? {
            (Outcome::Attached { pid }, Some(fd)) => Ok((fd, pid)),
            (other, _) => Err(unexpected("attach", &other)),
        }
    }

    /// A regular file beneath the chat's home, open for reading, and its size.
    pub fn open_file(&self, chat_id: &str, path: &str) -> Result<(OwnedFd, u64), ClientError> {
        let request = Request::OpenFile {
            chat_id: chat_id.to_owned(),
            path: path.to_owned(),
        };
        match self.call(&request)? {
            (Outcome::Opened { size }, Some(fd)) => Ok((fd, size)),
            (other, _) => Err(unexpected("open_file", &other)),
        }
    }

    /// A stream socket connected to the chat's runner.
    pub fn connect_runner(&self, chat_id: &str) -> Result<OwnedFd, ClientError> {
        let request = Request::ConnectRunner {
            chat_id: chat_id.to_owned(),
        };
        match self.call(&request)? {
            (Outcome::Connected, Some(fd)) => Ok(fd),
            (other, _) => Err(unexpected("connect_runner", &other)),
        }
    }

    /// Copies a file between chats; returns the bytes copied.
    pub fn copy_file(
        &self,
        from_chat: &str,
        from_path: &str,
        to_chat: &str,
        to_path: &str,
        overwrite: bool,
    ) -> Result<u64, ClientError> {
        let request = Request::CopyFile {
            from_chat: from_chat.to_owned(),
            from_path: from_path.to_owned(),
            to_chat: to_chat.to_owned(),
            to_path: to_path.to_owned(),
            overwrite,
        };
        match self.call(&request)?.0 {
            Outcome::Copied { bytes } => Ok(bytes),
            other => Err(unexpected("copy_file", &other)),
        }
    }

    /// Stops the chat's sandbox; returns whether it was running.
    pub fn stop(&self, chat_id: &str) -> Result<bool, ClientError> {
        let request = Request::Stop {
            chat_id: chat_id.to_owned(),
        };
        match self.call(&request)?.0 {
            Outcome::Stopped { was_running } => Ok(was_running),
            other => Err(unexpected("stop", &other)),
        }
    }

    /// Stops the chat and removes its user, group and home; returns whether it existed.
    pub fn destroy(&self, chat_id: &str) -> Result<bool, ClientError> {
        let request = Request::Destroy {
            chat_id: chat_id.to_owned(),
        };
        match self.call(&request)?.0 {
            Outcome::Destroyed { existed } => Ok(existed),
            other => Err(unexpected("destroy", &other)),
        }
    }

    /// Archives the chat (see [`Request::Archive`]); returns the archive's path, or `None` when
    /// the chat was not provisioned (already archived, or never made).
    pub fn archive(&self, chat_id: &str) -> Result<Option<PathBuf>, ClientError> {
        let request = Request::Archive {
            chat_id: chat_id.to_owned(),
        };
        match self.call(&request)?.0 {
            Outcome::Archived {
                archive, archived, ..
            } => Ok(archived.then_some(archive)),
            other => Err(unexpected("archive", &other)),
        }
    }

    pub fn status(&self, chat_id: &str) -> Result<ChatStatus, ClientError> {
        let request = Request::Status {
            chat_id: chat_id.to_owned(),
        };
        match self.call(&request)?.0 {
            Outcome::Status {
                name,
                home,
                init_pid,
            } => Ok(ChatStatus {
                name,
                home,
                init_pid,
            }),
            other => Err(unexpected("status", &other)),
        }
    }
}

fn unexpected(op: &'static str, outcome: &Outcome) -> ClientError {
    ClientError::Unexpected {
        op,
        detail: format!("{outcome:?}"),
    }
}
