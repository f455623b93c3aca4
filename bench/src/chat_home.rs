//! What benchmarks read or stop in a chat's home from outside the daemon: the runner's turn
//! files (its own measure of a turn), the chat's tmux server, the helper's audit log, and the
//! clean-up of every chat a benchmark made.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

/// `duration_ms` of the newest turn file in the chat's home under `workspace_root`: the
/// runner's own measure of the backend's turn (the prompt written to `claude`'s stdin until its
/// `result`, the model's time included), ms resolution. `None` if there is none to read.
pub fn runner_duration(workspace_root: &Path, chat_id: &str) -> Option<Duration> {
    let dir = workspace_root
        .join(picortex::workspace::chat_dir_name(chat_id))
        .join(".picortex")
        .join("turns");
    let newest = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let id: i64 = name.strip_suffix(".json")?.parse().ok()?;
            Some((id, e.path()))
        })
        .max_by_key(|(id, _)| *id)?;
    let v: Value = serde_json::from_slice(&std::fs::read(newest.1).ok()?).ok()?;
    v["duration_ms"].as_u64().map(Duration::from_millis)
}

/// Stops the tmux server of the (unsandboxed) chat whose home is `home`, if it has one.
/// Best effort: it is clean-up, and a server already gone is the goal.
pub fn stop_tmux_server(home: &Path) {
    let sock = home.join(".picortex").join("tmux.sock");
    if sock.exists() {
        let _ = std::process::Command::new("tmux")
            .arg("-S")
            .arg(&sock)
            .arg("kill-server")
            .output();
    }
}

/// Workspace roots whose chats are removed on drop: a sandboxed chat's jail, user, group and
/// home; an unsandboxed chat's tmux server. Declare it after the scratch directory holding the
/// roots, so it drops first and every chat goes, also after an error.
#[derive(Default)]
pub struct Cleanup {
    roots: std::sync::Mutex<Vec<std::path::PathBuf>>,
}

impl Cleanup {
    /// Removes the chats under `root` when this drops.
    pub fn watch(&self, root: &Path) {
        crate::sync::lock(&self.roots).push(root.to_owned());
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for root in crate::sync::lock(&self.roots).iter() {
            remove_chats(root);
        }
    }
}

/// Stops and removes every chat under `root` (as the tests' `cleanup_chats` does): a sandboxed
/// chat (found by its `.picortex/chat_id` marker) loses its jail, user, group and home, an
/// unsandboxed one its tmux server. Best effort; what fails is reported on stderr.
pub fn remove_chats(root: &Path) {
    let provisioner = picortex_sandbox::provision::Provisioner::new(root);
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for e in entries.flatten() {
        let sandboxed = std::fs::read_to_string(e.path().join(".picortex/chat_id"))
            .ok()
            .and_then(|chat_id| provisioner.find(&chat_id).ok().flatten());
        if let Some(chat) = sandboxed {
            if let Err(err) = picortex_sandbox::jail::stop(&chat.name) {
                eprintln!("cleanup: stopping {}: {err}", chat.name);
            }
            if let Err(err) = provisioner.destroy(&chat) {
                eprintln!("cleanup: removing {}: {err}", chat.name);
            }
            continue;
        }
        stop_tmux_server(&e.path());
    }
}

/// One operation from the sandbox helper's audit log (`<data dir>/sandbox-audit.jsonl`).
#[derive(Debug, Clone)]
pub struct HelperOp {
    pub op: String,
    pub chat_id: Option<String>,
    /// When the helper wrote the line (the operation's end), ms since the epoch (the log's
    /// resolution).
    pub at_unix_ms: i64,
    /// The helper's own time for it (0.1 ms resolution).
    pub elapsed: Duration,
}

/// The successful operations of the helper's audit log at `path`, in order (none if it cannot
/// be read; lines that do not parse are skipped).
pub fn helper_ops(path: &Path) -> Vec<HelperOp> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|line| {
            let event: Value = serde_json::from_str(line).ok()?;
            if event["outcome"].as_str() != Some("ok") {
                return None;
            }
            let at = time::OffsetDateTime::parse(
                event["time"].as_str()?,
                &time::format_description::well_known::Rfc3339,
            )
            .ok()?;
            Some(HelperOp {
                op: event["op"].as_str()?.to_owned(),
                chat_id: event["chat_id"].as_str().map(str::to_owned),
                at_unix_ms: i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()?,
                elapsed: Duration::from_secs_f64(event["elapsed_ms"].as_f64()? / 1000.0),
            })
        })
        .collect()
}
