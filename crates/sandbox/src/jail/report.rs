//! The report pipe: how the sandbox's stages tell the helper what happened, one line per event
//! (`init <pid>`, `started <pid>`, `error <message>`, `exit <code>`). Errors that happen before
//! the program's `exec` travel here, so the helper never has to guess from an exit status.

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::os::fd::{AsFd as _, OwnedFd};
use std::time::Instant;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::JailError;

/// One event from inside the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Report {
    /// The init's pid in the host's PID namespace (sent by the first stage).
    Init(i32),
    /// The program was executed; its pid inside the sandbox.
    Started(i32),
    /// A step before `exec` failed.
    Error(String),
    /// The program exited with this code (128 + signal after a signal).
    Exit(i32),
}

impl Report {
    fn encode(&self) -> String {
        match self {
            Report::Init(pid) => format!("init {pid}\n"),
            Report::Started(pid) => format!("started {pid}\n"),
            Report::Error(message) => format!("error {}\n", message.replace('\n', " ")),
            Report::Exit(code) => format!("exit {code}\n"),
        }
    }

    fn decode(line: &str) -> Option<Self> {
        let (kind, rest) = line.split_once(' ')?;
        Some(match kind {
            "init" => Report::Init(rest.parse().ok()?),
            "started" => Report::Started(rest.parse().ok()?),
            "error" => Report::Error(rest.to_owned()),
            "exit" => Report::Exit(rest.parse().ok()?),
            _ => return None,
        })
    }
}

/// The sandbox's end. Writes are best effort: if the helper is gone, nobody is listening.
#[derive(Debug)]
pub(crate) struct ReportWriter(File);

impl ReportWriter {
    pub(crate) fn new(fd: OwnedFd) -> Self {
        Self(File::from(fd))
    }

    pub(crate) fn send(&self, report: &Report) {
        // One write per line: a pipe write this small is atomic, so stages never interleave.
        let _ = (&self.0).write_all(report.encode().as_bytes());
    }

    pub(crate) fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// The helper's end.
#[derive(Debug)]
pub(crate) struct ReportReader {
    file: File,
    buffer: Vec<u8>,
    eof: bool,
}

impl ReportReader {
    pub(crate) fn new(fd: OwnedFd) -> Self {
        Self {
            file: File::from(fd),
            buffer: Vec::new(),
            eof: false,
        }
    }

    /// The next event, `None` once every writer has closed the pipe, or a timeout at `deadline`.
    pub(crate) fn next(&mut self, deadline: Instant) -> Result<Option<Report>, JailError> {
        loop {
            while let Some(end) = self.buffer.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                let line = String::from_utf8_lossy(&line[..end]).into_owned();
                if let Some(report) = Report::decode(&line) {
                    return Ok(Some(report));
                }
            }
            if self.eof {
                return Ok(None);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(JailError::Timeout(left));
            }
            let timeout = PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX);
            let mut fds = [PollFd::new(self.file.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, timeout) {
                Ok(0) => continue,
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(source) => {
                    return Err(JailError::Sys {
                        what: "poll on the report pipe".into(),
                        source,
                    });
                }
            }
            let mut chunk = [0u8; 512];
            match self.file.read(&mut chunk) {
                Ok(0) => self.eof = true,
                Ok(n) => self.buffer.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(JailError::Io {
                        what: "reading the report pipe".into(),
                        source,
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_round_trip() {
        for report in [
            Report::Init(42),
            Report::Started(2),
            Report::Error("mounting /proc: EPERM".into()),
            Report::Exit(137),
        ] {
            let line = report.encode();
            assert_eq!(Report::decode(line.trim_end()), Some(report));
        }
        assert_eq!(
            Report::decode(Report::Error("a\nb".into()).encode().trim_end()),
            Some(Report::Error("a b".into()))
        );
    }
}
