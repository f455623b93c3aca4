//! A chat's own tmux server, driven by path (`<home>/.picortex/tmux.sock`, session
//! `picortex`): its `agent` window runs picortex-runner and keeps the transcript on screen when
//! the runner exits idle, so it can be respawned in place; its `shell` window is there for the
//! owner to take over.
//!
//! The daemon drives it directly when chats are plain directories of its own user; the helper
//! drives it for sandboxed chats (a tmux server serves only its own user and root). Every
//! argument is a path, a fixed word or configuration: message text never reaches a command
//! line.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The tmux session every chat's server holds.
pub const SESSION: &str = "picortex";
/// Where a chat's tmux server listens, relative to its home.
pub const SOCKET: &str = ".picortex/tmux.sock";
/// A tmux command that has not answered in this long is abandoned.
const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
#[error("tmux {action} failed: {detail}")]
pub struct TmuxError {
    pub action: &'static str,
    pub detail: String,
}

/// A chat's tmux server, found by its socket.
#[derive(Debug, Clone)]
pub struct TmuxServer {
    socket: PathBuf,
}

impl TmuxServer {
    pub fn for_home(home: &Path) -> Self {
        Self {
            socket: home.join(SOCKET),
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The arguments (after `tmux`) that start the server with the session's `agent` window
    /// running `runner` in `home`, with `env` in the session's environment.
    pub fn new_session_args(
        &self,
        home: &Path,
        env: &[(String, String)],
        runner: &[OsString],
    ) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![
            "-S".into(),
            self.socket.clone().into_os_string(),
            "new-session".into(),
            "-d".into(),
            "-s".into(),
            SESSION.into(),
            "-n".into(),
            "agent".into(),
            "-x".into(),
            "160".into(),
            "-y".into(),
            "48".into(),
            "-c".into(),
            home.as_os_str().to_owned(),
        ];
        push_env(&mut args, env);
        args.push("--".into());
        args.extend(runner.iter().cloned());
        args
    }

    /// Runs one tmux command against this server and returns its standard output.
    pub fn run(&self, action: &'static str, args: &[OsString]) -> Result<String, TmuxError> {
        let out = self.output(args).map_err(|e| TmuxError {
            action,
            detail: e.to_string(),
        })?;
        if !out.status.success() {
            return Err(TmuxError {
                action,
                detail: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn output(&self, args: &[OsString]) -> std::io::Result<std::process::Output> {
        crate::process::output_with_timeout(
            Command::new("tmux").arg("-S").arg(&self.socket).args(args),
            TIMEOUT,
        )
    }

    pub fn has_session(&self) -> bool {
        self.output(&words(&["has-session", "-t", SESSION]))
            .is_ok_and(|o| o.status.success())
    }

    /// Whether the `agent` window's runner has exited (its transcript is still on screen).
    pub fn agent_pane_dead(&self) -> Result<bool, TmuxError> {
        let target = format!("{SESSION}:agent");
        let out = self.run(
            "list-panes",
            &words(&["list-panes", "-t", &target, "-F", "#{pane_dead}"]),
        )?;
        Ok(out.trim() == "1")
    }

    /// Starts `runner` again in the `agent` window with `env` as it is now (a restarted daemon
    /// may hand out another gateway URL), not the session's original environment.
    pub fn respawn_agent(
        &self,
        env: &[(String, String)],
        runner: &[OsString],
    ) -> Result<(), TmuxError> {
        let mut args = words(&["respawn-pane", "-k", "-t", &format!("{SESSION}:agent")]);
        push_env(&mut args, env);
        args.push("--".into());
        args.extend(runner.iter().cloned());
        self.run("respawn-pane", &args).map(drop)
    }

    /// Sets up a fresh session's windows: the `agent` window stays on screen when the runner
    /// exits, and a `shell` window opens in the home.
    pub fn open_windows(&self, home: &Path) -> Result<(), TmuxError> {
        self.run(
            "set remain-on-exit",
            &words(&[
                "set-option",
                "-w",
                "-t",
                &format!("{SESSION}:agent"),
                "remain-on-exit",
                "on",
            ]),
        )?;
        let mut args = words(&["new-window", "-d", "-t", SESSION, "-n", "shell", "-c"]);
        args.push(home.as_os_str().to_owned());
        self.run("new-window", &args).map(drop)
    }

    /// The `agent` window's visible text and recent history.
    pub fn capture_agent(&self) -> Result<String, TmuxError> {
        self.run(
            "capture-pane",
            &words(&[
                "capture-pane",
                "-p",
                "-J",
                "-S",
                "-2000",
                "-t",
                &format!("{SESSION}:agent"),
            ]),
        )
    }

    /// Stops the server (and with it everything in its windows). A server that is not running
    /// is fine.
    pub fn kill_server(&self) -> Result<(), TmuxError> {
        if self.has_session() {
            self.run("kill-server", &words(&["kill-server"]))?;
        }
        Ok(())
    }
}

fn words(args: &[&str]) -> Vec<OsString> {
    args.iter().map(|a| OsStr::new(a).to_owned()).collect()
}

fn push_env(args: &mut Vec<OsString>, env: &[(String, String)]) {
    for (k, v) in env {
        args.push("-e".into());
        args.push(format!("{k}={v}").into());
    }
}
