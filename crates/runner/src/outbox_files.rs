//! Files the agent leaves in `~/outbox/` during a turn: after the turn they are moved to
//! `~/outbox/sent/<turn id>-<name>` and reported with the result, so the daemon can send them as
//! attachments exactly once. Only regular files directly in `~/outbox/` count; symlinks,
//! directories and anything too large are left where they are.

use std::path::Path;

/// Linq accepts attachments up to 100 MB.
pub const MAX_ATTACHMENT_BYTES: u64 = 100 * 1024 * 1024;
/// At most this many files go out with one reply.
pub const MAX_ATTACHMENTS: usize = 10;

/// Moves the turn's outbox files into `sent/` and returns their paths relative to `home`.
pub fn collect(home: &Path, turn_id: i64) -> std::io::Result<Vec<String>> {
    let outbox = home.join("outbox");
    let sent = outbox.join("sent");
    let entries = match std::fs::read_dir(&outbox) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut names: Vec<String> = Vec::new();
    for entry in entries.flatten() {
        // symlink_metadata: a link is never followed out of the home.
        let Ok(meta) = entry.path().symlink_metadata() else {
            continue;
        };
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if meta.file_type().is_file()
            && meta.len() <= MAX_ATTACHMENT_BYTES
            && !name.starts_with('.')
        {
            names.push(name);
        }
    }
    names.sort();
    names.truncate(MAX_ATTACHMENTS);
    if names.is_empty() {
        return Ok(names);
    }
    std::fs::create_dir_all(&sent)?;
    let mut moved = Vec::with_capacity(names.len());
    for name in names {
        let target = format!("{turn_id}-{name}");
        std::fs::rename(outbox.join(&name), sent.join(&target))?;
        moved.push(format!("outbox/sent/{target}"));
    }
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_regular_files_only() {
        let home = tempfile::tempdir().unwrap();
        let outbox = home.path().join("outbox");
        std::fs::create_dir_all(outbox.join("subdir")).unwrap();
        std::fs::write(outbox.join("b.png"), b"png").unwrap();
        std::fs::write(outbox.join("a.txt"), b"txt").unwrap();
        std::fs::write(outbox.join(".hidden"), b"x").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", outbox.join("link")).unwrap();
        let moved = collect(home.path(), 7).unwrap();
        assert_eq!(moved, vec!["outbox/sent/7-a.txt", "outbox/sent/7-b.png"]);
        assert!(home.path().join("outbox/sent/7-a.txt").is_file());
        assert!(!outbox.join("a.txt").exists());
        assert!(
            outbox.join("link").symlink_metadata().is_ok(),
            "links stay put"
        );
        assert!(
            collect(home.path(), 8).unwrap().is_empty(),
            "nothing sent twice"
        );
    }
}
