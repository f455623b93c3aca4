//! What benchmarks read or stop in a chat's home from outside the daemon: the runner's turn
//! files (its own measure of a turn) and the chat's tmux server.

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
