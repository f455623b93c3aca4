//! Archiving a chat's home into one `<name>.tar.zst` file and restoring it, used by the helper
//! (as root, owners preserved and remapped) and by the unprivileged daemon (its own files).
//!
//! The archive holds one top directory, `home/`, standing for the home itself, so the home's own
//! mode, owner and mtime travel with it. Entries keep modes, numeric owners and owner names,
//! mtimes, symlinks (stored as links, never followed) and hard links (the second and later names
//! of an inode are stored as links to the first), so git objects and agent session files come
//! back byte for byte.
//!
//! Writing goes through a temporary file in the archive directory that is fsynced, re-read and
//! decompressed in full (its entries counted against what was written) and only then renamed
//! into place; a crash leaves at worst a stray `.partial` file (removed by the next attempt),
//! never a half archive under the final name. Restoring unpacks into a staging directory beside
//! the home in one pass that also verifies the archive (every entry, the frame complete), makes
//! it durable (syncfs), and only then renames it into place, so a damaged archive never yields a
//! partial home and the archive itself is never touched here (the caller removes it once the
//! home is in place). A home is removed by renaming it aside first
//! ([`remove_home`]), so a crash midway never leaves a half-deleted home under its own name.
//!
//! So at every instant a home under its own name is complete, and an archive under its final
//! name is complete and verified. When both exist (a crash between the two steps of an archive
//! or of a restore) they hold the same files, and callers keep the home and drop the archive.
//! Temporary names are fixed per home name (callers serialise work on one chat), so a retry
//! after a crash finds and removes what the crashed attempt left.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::unistd::{Gid, Group, Uid, User};

/// The file name suffix of archives.
pub const ARCHIVE_SUFFIX: &str = ".tar.zst";
/// The name of the top directory inside every archive.
const TOP: &str = "home";
/// zstd level: fast enough for a 50 MB home well under a second, still a good ratio.
const ZSTD_LEVEL: i32 = 3;
/// Headroom demanded beyond the estimated archive size (metadata, filesystem reserve).
const SPACE_MARGIN_BYTES: u64 = 16 << 20;
/// The most bytes of a chat id marker read from an archive.
const MAX_MARKER_BYTES: u64 = 1024;

/// Why archiving or restoring failed.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The archive directory's filesystem has too little free space for the estimate.
    #[error("not enough space in {dir}: need about {needed} bytes, {available} available")]
    NoSpace {
        dir: PathBuf,
        needed: u64,
        available: u64,
    },
    /// The archive is truncated, corrupt, or does not hold a home.
    #[error("archive {path} is damaged: {reason}")]
    Damaged { path: PathBuf, reason: String },
    /// The home (or archive) that should be there is not, or is there when it should not be.
    #[error("{0}")]
    Conflict(String),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ArchiveError + 'a {
    move |source| ArchiveError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// What an archiving or a restore did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveReport {
    pub archive: PathBuf,
    /// Entries in the archive (the top directory included).
    pub entries: u64,
    /// Bytes of regular files in the home.
    pub content_bytes: u64,
    /// Size of the compressed archive.
    pub archive_bytes: u64,
    pub elapsed: Duration,
}

/// The archive path for a home directory named `name` in `archive_dir`.
pub fn archive_path(archive_dir: &Path, name: &str) -> PathBuf {
    archive_dir.join(format!("{name}{ARCHIVE_SUFFIX}"))
}

/// One thing found while walking a home, in archive order.
struct Walked {
    path: PathBuf,
    relative: PathBuf,
    meta: fs::Metadata,
}

/// Lists `home` depth first (directories before their contents, names sorted), never following
/// symlinks and never leaving the home's filesystem.
fn walk(home: &Path) -> Result<Vec<Walked>, ArchiveError> {
    let root_meta = fs::symlink_metadata(home).map_err(io_err("reading", home))?;
    if !root_meta.is_dir() {
        return Err(ArchiveError::Conflict(format!(
            "{} is not a directory",
            home.display()
        )));
    }
    let device = root_meta.dev();
    let mut out = vec![Walked {
        path: home.to_path_buf(),
        relative: PathBuf::from(TOP),
        meta: root_meta,
    }];
    let mut index = 0;
    while index < out.len() {
        if out[index].meta.is_dir() && out[index].meta.dev() == device {
            let dir = out[index].path.clone();
            let relative = out[index].relative.clone();
            let mut names = Vec::new();
            for entry in fs::read_dir(&dir).map_err(io_err("listing", &dir))? {
                names.push(entry.map_err(io_err("listing", &dir))?.file_name());
            }
            names.sort();
            let mut children = Vec::with_capacity(names.len());
            for name in names {
                let path = dir.join(&name);
                let meta = fs::symlink_metadata(&path).map_err(io_err("reading", &path))?;
                let kind = meta.file_type();
                if !(kind.is_file() || kind.is_dir() || kind.is_symlink()) {
                    // Sockets, fifos and devices (a tmux socket, say) are runtime state.
                    continue;
                }
                children.push(Walked {
                    path,
                    relative: relative.join(&name),
                    meta,
                });
            }
            // Children go right after their directory so the order stays depth first.
            out.splice(index + 1..index + 1, children);
        }
        index += 1;
    }
    Ok(out)
}

/// The estimated archive size: content plus a header block per entry; compression is not
/// counted on, so the check errs towards refusing.
fn estimate(entries: &[Walked]) -> u64 {
    entries
        .iter()
        .map(|entry| {
            1024 + if entry.meta.is_file() {
                entry.meta.len()
            } else {
                0
            }
        })
        .sum()
}

fn available_bytes(dir: &Path) -> Result<u64, ArchiveError> {
    let stat = nix::sys::statvfs::statvfs(dir).map_err(|errno| ArchiveError::Io {
        what: "statvfs",
        path: dir.to_path_buf(),
        source: io::Error::from(errno),
    })?;
    Ok(stat.blocks_available().saturating_mul(stat.fragment_size()))
}

/// Names for uids and gids, looked up once each.
#[derive(Default)]
struct Names {
    users: HashMap<u32, Option<String>>,
    groups: HashMap<u32, Option<String>>,
}

impl Names {
    fn user(&mut self, uid: u32) -> Option<String> {
        self.users
            .entry(uid)
            .or_insert_with(|| {
                User::from_uid(Uid::from_raw(uid))
                    .ok()
                    .flatten()
                    .map(|user| user.name)
            })
            .clone()
    }

    fn group(&mut self, gid: u32) -> Option<String> {
        self.groups
            .entry(gid)
            .or_insert_with(|| {
                Group::from_gid(Gid::from_raw(gid))
                    .ok()
                    .flatten()
                    .map(|group| group.name)
            })
            .clone()
    }
}

/// Archives `home` into `<archive_dir>/<name>.tar.zst` (mode 0600), verified before it gets
/// its final name. The home is left in place; the caller removes it once this returns. An
/// archive already there is replaced only when it is this same chat's (left by a crash between
/// archiving and removing the home, or between restoring and removing the archive: either way a
/// copy of the home), and refused when it belongs to another chat.
pub fn archive_home(
    home: &Path,
    archive_dir: &Path,
    name: &str,
) -> Result<ArchiveReport, ArchiveError> {
    let started = Instant::now();
    let target = archive_path(archive_dir, name);
    if fs::symlink_metadata(&target).is_ok() {
        let home_marker = fs::read_to_string(home.join(".picortex").join("chat_id")).ok();
        let archived = read_marker(&target).ok().flatten();
        if home_marker.is_none() || home_marker.map(|m| m.trim().to_owned()) != archived {
            return Err(ArchiveError::Conflict(format!(
                "archive {} already exists and is another chat's",
                target.display()
            )));
        }
    }
    let entries = walk(home)?;
    let needed = estimate(&entries).saturating_add(SPACE_MARGIN_BYTES);
    let available = available_bytes(archive_dir)?;
    if available < needed {
        return Err(ArchiveError::NoSpace {
            dir: archive_dir.to_path_buf(),
            needed,
            available,
        });
    }
    let partial = archive_dir.join(format!(".{name}{ARCHIVE_SUFFIX}.partial"));
    if fs::symlink_metadata(&partial).is_ok() {
        fs::remove_file(&partial).map_err(io_err("removing stale", &partial))?;
    }
    let result = write_and_verify(&entries, &partial).and_then(|(count, content)| {
        fs::rename(&partial, &target).map_err(io_err("renaming into place", &target))?;
        File::open(archive_dir)
            .and_then(|dir| dir.sync_all())
            .map_err(io_err("syncing", archive_dir))?;
        let archive_bytes = fs::metadata(&target)
            .map_err(io_err("reading", &target))?
            .len();
        Ok(ArchiveReport {
            archive: target.clone(),
            entries: count,
            content_bytes: content,
            archive_bytes,
            elapsed: started.elapsed(),
        })
    });
    if result.is_err() {
        // Best effort: a stray partial file is harmless, but do not leave it on purpose.
        let _ = fs::remove_file(&partial);
    }
    result
}

/// Writes the archive to `partial`, fsyncs it, and re-reads it in full. Returns the entry count
/// and the content bytes.
fn write_and_verify(entries: &[Walked], partial: &Path) -> Result<(u64, u64), ArchiveError> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(partial)
        .map_err(io_err("creating", partial))?;
    let encoder = zstd::stream::write::Encoder::new(BufWriter::new(file), ZSTD_LEVEL)
        .map_err(io_err("compressing", partial))?;
    let mut builder = tar::Builder::new(encoder);
    builder.follow_symlinks(false);
    let mut names = Names::default();
    let mut first_name_of_inode: HashMap<(u64, u64), PathBuf> = HashMap::new();
    let mut content = 0u64;
    for entry in entries {
        append_entry(
            &mut builder,
            entry,
            &mut names,
            &mut first_name_of_inode,
            &mut content,
        )?;
    }
    let encoder = builder.into_inner().map_err(io_err("writing", partial))?;
    let writer = encoder.finish().map_err(io_err("compressing", partial))?;
    let file = writer.into_inner().map_err(|e| ArchiveError::Io {
        what: "flushing",
        path: partial.to_path_buf(),
        source: e.into_error(),
    })?;
    file.sync_all().map_err(io_err("syncing", partial))?;
    drop(file);
    let counted = verify_archive(partial)?;
    let written = entries.len() as u64;
    if counted != written {
        return Err(ArchiveError::Damaged {
            path: partial.to_path_buf(),
            reason: format!("wrote {written} entries but read back {counted}"),
        });
    }
    Ok((written, content))
}

fn append_entry<W: io::Write>(
    builder: &mut tar::Builder<W>,
    entry: &Walked,
    names: &mut Names,
    first_name_of_inode: &mut HashMap<(u64, u64), PathBuf>,
    content: &mut u64,
) -> Result<(), ArchiveError> {
    let meta = &entry.meta;
    let mut header = tar::Header::new_gnu();
    header.set_metadata_in_mode(meta, tar::HeaderMode::Complete);
    if let Some(user) = names.user(meta.uid()) {
        // Names longer than the field are left out; the numeric owner still travels.
        let _ = header.set_username(&user);
    }
    if let Some(group) = names.group(meta.gid()) {
        let _ = header.set_groupname(&group);
    }
    let file_type = meta.file_type();
    let writing = io_err("archiving", &entry.path);
    if file_type.is_symlink() {
        let target = fs::read_link(&entry.path).map_err(io_err("reading link", &entry.path))?;
        header.set_size(0);
        builder
            .append_link(&mut header, &entry.relative, &target)
            .map_err(writing)
    } else if file_type.is_dir() {
        header.set_size(0);
        builder
            .append_data(&mut header, &entry.relative, io::empty())
            .map_err(writing)
    } else if file_type.is_file() {
        if meta.nlink() > 1 {
            let key = (meta.dev(), meta.ino());
            if let Some(first) = first_name_of_inode.get(&key) {
                header.set_entry_type(tar::EntryType::Link);
                header.set_size(0);
                return builder
                    .append_link(&mut header, &entry.relative, first)
                    .map_err(writing);
            }
            first_name_of_inode.insert(key, entry.relative.clone());
        }
        let file = File::open(&entry.path).map_err(io_err("opening", &entry.path))?;
        // The size recorded is the size read, so a file changing underneath cannot desync
        // the stream: it is read to the recorded length exactly.
        let length = meta.len();
        *content += length;
        let mut limited = BufReader::new(file).take(length);
        builder
            .append_data(&mut header, &entry.relative, &mut limited)
            .map_err(writing)
    } else {
        // walk() leaves out everything else.
        Ok(())
    }
}

/// Reads and decompresses the whole archive at `path`, checking every entry lies under the top
/// directory. Returns the number of entries.
pub fn verify_archive(path: &Path) -> Result<u64, ArchiveError> {
    let damaged = |reason: String| ArchiveError::Damaged {
        path: path.to_path_buf(),
        reason,
    };
    let file = File::open(path).map_err(io_err("opening", path))?;
    let decoder = zstd::stream::read::Decoder::new(file).map_err(|e| damaged(e.to_string()))?;
    let mut archive = tar::Archive::new(decoder);
    let mut count = 0u64;
    let mut sink = io::sink();
    for entry in archive.entries().map_err(|e| damaged(e.to_string()))? {
        let mut entry = entry.map_err(|e| damaged(e.to_string()))?;
        let entry_path = entry
            .path()
            .map_err(|e| damaged(e.to_string()))?
            .into_owned();
        if !entry_path.starts_with(TOP) {
            return Err(damaged(format!(
                "entry {} outside {TOP}/",
                entry_path.display()
            )));
        }
        io::copy(&mut entry, &mut sink).map_err(|e| damaged(e.to_string()))?;
        count += 1;
    }
    if count == 0 {
        return Err(damaged("no entries".to_owned()));
    }
    // The zstd frame must be complete: read past the tar end-of-archive blocks.
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut sink).map_err(|e| damaged(e.to_string()))?;
    Ok(count)
}

/// The chat id recorded in the archived home's `.picortex/chat_id`, read without unpacking
/// anything (decompression stops at that entry). `None` when the archive has no marker.
pub fn read_marker(path: &Path) -> Result<Option<String>, ArchiveError> {
    let damaged = |reason: String| ArchiveError::Damaged {
        path: path.to_path_buf(),
        reason,
    };
    let marker = Path::new(TOP).join(".picortex").join("chat_id");
    let file = File::open(path).map_err(io_err("opening", path))?;
    let decoder = zstd::stream::read::Decoder::new(file).map_err(|e| damaged(e.to_string()))?;
    let mut archive = tar::Archive::new(decoder);
    for entry in archive.entries().map_err(|e| damaged(e.to_string()))? {
        let entry = entry.map_err(|e| damaged(e.to_string()))?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        if entry.path().map_err(|e| damaged(e.to_string()))? == marker {
            let mut text = String::new();
            entry
                .take(MAX_MARKER_BYTES)
                .read_to_string(&mut text)
                .map_err(|e| damaged(e.to_string()))?;
            return Ok(Some(text.trim().to_owned()));
        }
    }
    Ok(None)
}

/// Removes `home` for good: renamed aside to `.<name>.removing` first (the rename made durable),
/// then deleted, so a crash midway leaves the leftover under that name (removed by the next
/// call for the same home), never a half-deleted home under its own name. A missing home is
/// not an error. Symlinks inside are removed, never followed.
pub fn remove_home(home: &Path) -> Result<(), ArchiveError> {
    let (Some(parent), Some(file_name)) = (home.parent(), home.file_name()) else {
        return Err(ArchiveError::Conflict(format!(
            "{} is not a home directory path",
            home.display()
        )));
    };
    let aside = parent.join(format!(".{}.removing", file_name.to_string_lossy()));
    let remove = |path: &Path| match fs::remove_dir_all(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("removing", path)(e)),
        _ => Ok(()),
    };
    remove(&aside)?;
    match fs::rename(home, &aside) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("moving aside", home)(e)),
    }
    File::open(parent)
        .and_then(|dir| dir.sync_all())
        .map_err(io_err("syncing", parent))?;
    remove(&aside)
}

/// Removes `<archive_dir>/<name>.tar.zst` if it is `chat_id`'s: called when the chat's home is
/// there too (a crash came between archiving and removing the home, or between restoring and
/// removing the archive). A home under its own name is always complete, so the archive is a
/// stale copy that would otherwise be restored over newer work one day. Whether one was removed.
pub fn remove_stale_archive(
    archive_dir: &Path,
    name: &str,
    chat_id: &str,
) -> Result<bool, ArchiveError> {
    let path = archive_path(archive_dir, name);
    if fs::symlink_metadata(&path).is_err()
        || read_marker(&path).ok().flatten().as_deref() != Some(chat_id)
    {
        return Ok(false);
    }
    fs::remove_file(&path).map_err(io_err("removing", &path))?;
    Ok(true)
}

/// Removes every archive of `chat_id` in `archive_dir`, under any of its names
/// ([`crate::ids::chat_name_with_suffix`]), when the chat is destroyed: an archive left behind
/// would bring it back with its next message. A damaged archive under one of its names goes
/// too: it has no readable marker, and provisioning the chat stops at it. Whether there was one.
pub fn remove_chat_archives(archive_dir: &Path, chat_id: &str) -> Result<bool, ArchiveError> {
    let mut found = false;
    for n in 0..=crate::ids::MAX_SUFFIX {
        let path = archive_path(archive_dir, &crate::ids::chat_name_with_suffix(chat_id, n));
        if fs::symlink_metadata(&path).is_ok()
            && read_marker(&path).map_or(true, |marker| marker.as_deref() == Some(chat_id))
        {
            fs::remove_file(&path).map_err(io_err("removing", &path))?;
            found = true;
        }
    }
    Ok(found)
}

/// Removes what crashed transitions left behind: `.<name>.removing` and `.<name>.restoring`
/// directories beneath the homes' `root`, and `.<name>.tar.zst.partial` files in `archive_dir`.
/// Only for start-up, when no transition is in progress. Returns the home names whose removal
/// or restore was cut short (their accounts may be left over too).
pub fn sweep_leftovers(
    root: &Path,
    archive_dir: Option<&Path>,
) -> Result<Vec<String>, ArchiveError> {
    let mut interrupted = Vec::new();
    let hidden = |dir: &Path| -> Result<Vec<(PathBuf, String)>, ArchiveError> {
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("listing", dir)(e)),
        };
        Ok(entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_str()?.strip_prefix('.')?.to_owned();
                Some((e.path(), name))
            })
            .collect())
    };
    for (path, name) in hidden(root)? {
        let Some(home) = name
            .strip_suffix(".removing")
            .or_else(|| name.strip_suffix(".restoring"))
        else {
            continue;
        };
        // Never follow a symlink someone planted under a leftover's name.
        if fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
            fs::remove_dir_all(&path).map_err(io_err("removing leftover", &path))?;
            interrupted.push(home.to_owned());
        }
    }
    if let Some(dir) = archive_dir {
        for (path, name) in hidden(dir)? {
            if name.ends_with(&format!("{ARCHIVE_SUFFIX}.partial")) {
                fs::remove_file(&path).map_err(io_err("removing leftover", &path))?;
            }
        }
    }
    Ok(interrupted)
}

/// Who owns the restored home when restoring as root: files owned by the archived home's own
/// uid (gid) are given `uid` (`gid`), others keep theirs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reown {
    pub uid: u32,
    pub gid: u32,
}

/// Restores the archive at `archive` to `home` (which must not exist). With `reown`, ownership
/// is preserved and the archived home owner's files are handed to the new ids (needs root);
/// without it, everything belongs to the calling user. The archive is not modified.
pub fn restore_home(
    archive: &Path,
    home: &Path,
    reown: Option<Reown>,
) -> Result<ArchiveReport, ArchiveError> {
    let started = Instant::now();
    if fs::symlink_metadata(home).is_ok() {
        return Err(ArchiveError::Conflict(format!(
            "{} already exists",
            home.display()
        )));
    }
    let parent = home
        .parent()
        .ok_or_else(|| ArchiveError::Conflict(format!("{} has no parent", home.display())))?;
    let file_name = home
        .file_name()
        .ok_or_else(|| ArchiveError::Conflict(format!("{} has no name", home.display())))?;
    let staging = parent.join(format!(".{}.restoring", file_name.to_string_lossy()));
    if fs::symlink_metadata(&staging).is_ok() {
        fs::remove_dir_all(&staging).map_err(io_err("removing stale", &staging))?;
    }
    fs::create_dir(&staging).map_err(io_err("creating", &staging))?;
    let result = unpack_into(archive, &staging, reown).and_then(|entries| {
        // The files must be on disk before the home takes its name: the caller removes the
        // archive next, and after a power cut the home must not hold empty files. One syncfs
        // costs far less than an fsync per file.
        let staged = File::open(&staging).map_err(io_err("opening", &staging))?;
        nix::unistd::syncfs(&staged).map_err(|errno| ArchiveError::Io {
            what: "syncing the filesystem of",
            path: staging.clone(),
            source: io::Error::from(errno),
        })?;
        let unpacked = staging.join(TOP);
        fs::rename(&unpacked, home).map_err(io_err("renaming into place", home))?;
        File::open(parent)
            .and_then(|dir| dir.sync_all())
            .map_err(io_err("syncing", parent))?;
        Ok(entries)
    });
    let _ = fs::remove_dir_all(&staging);
    let entries = result?;
    let archive_bytes = fs::metadata(archive)
        .map_err(io_err("reading", archive))?
        .len();
    Ok(ArchiveReport {
        archive: archive.to_path_buf(),
        entries,
        content_bytes: 0,
        archive_bytes,
        elapsed: started.elapsed(),
    })
}

/// Unpacks `archive` into `staging` in one pass, verifying it on the way: every entry under
/// the top directory, the zstd frame complete to its end. Files are written by this process and
/// then given their archived owners (with `reown`, the archived home owner's ids become the new
/// ones; without it everything stays the caller's); directories get their modes, owners and
/// mtimes last, deepest first, once nothing more is created in them. Returns the entry count. A
/// failure leaves a partial staging directory for the caller to remove; whether it was the
/// archive's fault is decided by reading the archive through once more.
fn unpack_into(archive: &Path, staging: &Path, reown: Option<Reown>) -> Result<u64, ArchiveError> {
    match unpack_entries(archive, staging, reown) {
        Ok(count) => Ok(count),
        Err(e @ ArchiveError::Damaged { .. }) => Err(e),
        Err(other) => match verify_archive(archive) {
            Err(damaged @ ArchiveError::Damaged { .. }) => Err(damaged),
            _ => Err(other),
        },
    }
}

/// A directory seen while unpacking, finished after its contents.
struct PendingDir {
    path: PathBuf,
    mode: u32,
    owner: (u32, u32),
    mtime: u64,
}

fn unpack_entries(
    archive: &Path,
    staging: &Path,
    reown: Option<Reown>,
) -> Result<u64, ArchiveError> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    let damaged = |reason: String| ArchiveError::Damaged {
        path: archive.to_path_buf(),
        reason,
    };
    let file = File::open(archive).map_err(io_err("opening", archive))?;
    let decoder = zstd::stream::read::Decoder::new(file).map_err(|e| damaged(e.to_string()))?;
    let mut tar = tar::Archive::new(decoder);
    tar.set_preserve_permissions(true);
    tar.set_preserve_mtime(true);
    tar.set_preserve_ownerships(false);
    tar.set_unpack_xattrs(false);
    tar.set_overwrite(false);
    // The archived home owner's ids, from the top directory (the first entry).
    let mut home_owner: Option<(u32, u32)> = None;
    let owner_of = |home_owner: Option<(u32, u32)>, uid: u32, gid: u32| match (reown, home_owner) {
        (Some(new), Some((old_uid, old_gid))) => (
            if uid == old_uid { new.uid } else { uid },
            if gid == old_gid { new.gid } else { gid },
        ),
        _ => (uid, gid),
    };
    let mut dirs = Vec::new();
    let mut count = 0u64;
    for entry in tar.entries().map_err(|e| damaged(e.to_string()))? {
        let mut entry = entry.map_err(|e| damaged(e.to_string()))?;
        let relative = entry
            .path()
            .map_err(|e| damaged(e.to_string()))?
            .into_owned();
        if !relative.starts_with(TOP) {
            return Err(damaged(format!(
                "entry {} outside {TOP}/",
                relative.display()
            )));
        }
        let header = entry.header();
        let kind = header.entry_type();
        let (uid, gid) = (
            header.uid().map_err(|e| damaged(e.to_string()))?,
            header.gid().map_err(|e| damaged(e.to_string()))?,
        );
        let (uid, gid) = (
            u32::try_from(uid).map_err(|_| damaged(format!("uid {uid}")))?,
            u32::try_from(gid).map_err(|_| damaged(format!("gid {gid}")))?,
        );
        let mode = header.mode().map_err(|e| damaged(e.to_string()))?;
        if relative == Path::new(TOP) {
            home_owner = Some((uid, gid));
        }
        count += 1;
        let path = staging.join(&relative);
        if kind == tar::EntryType::Directory {
            // Made private to this process now; its own attributes come once it is filled.
            match fs::DirBuilder::new().mode(0o700).create(&path) {
                Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                    return Err(io_err("creating", &path)(e));
                }
                _ => {}
            }
            dirs.push(PendingDir {
                path,
                mode,
                owner: owner_of(home_owner, uid, gid),
                mtime: header.mtime().map_err(|e| damaged(e.to_string()))?,
            });
            continue;
        }
        if !entry
            .unpack_in(staging)
            .map_err(io_err("unpacking", &path))?
        {
            return Err(damaged(format!("entry {} escapes", relative.display())));
        }
        if reown.is_some() {
            let (new_uid, new_gid) = owner_of(home_owner, uid, gid);
            // lchown: a symlink's own owner changes, its target is never followed.
            std::os::unix::fs::lchown(&path, Some(new_uid), Some(new_gid))
                .map_err(io_err("re-owning", &path))?;
            // chown clears set-uid/set-gid bits on regular files; put the archived mode back.
            if kind == tar::EntryType::Regular && mode & 0o6000 != 0 {
                fs::set_permissions(&path, fs::Permissions::from_mode(mode & 0o7777))
                    .map_err(io_err("restoring mode of", &path))?;
            }
        }
    }
    if count == 0 {
        return Err(damaged("no entries".to_owned()));
    }
    // The zstd frame must be complete: read past the tar end-of-archive blocks.
    let mut rest = tar.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(|e| damaged(e.to_string()))?;
    // Deepest first, so a parent's mode never stops its children being finished.
    dirs.sort_by(|a, b| b.path.cmp(&a.path));
    for dir in dirs {
        finish_directory(&dir, reown.is_some())?;
    }
    Ok(count)
}

/// Gives an unpacked directory its archived owner (when restoring as root), mode and mtime.
fn finish_directory(dir: &PendingDir, set_owner: bool) -> Result<(), ArchiveError> {
    use nix::sys::stat::{UtimensatFlags, utimensat};
    use nix::sys::time::TimeSpec;
    use std::os::unix::fs::PermissionsExt as _;
    if set_owner {
        std::os::unix::fs::lchown(&dir.path, Some(dir.owner.0), Some(dir.owner.1))
            .map_err(io_err("re-owning", &dir.path))?;
    }
    fs::set_permissions(&dir.path, fs::Permissions::from_mode(dir.mode & 0o7777))
        .map_err(io_err("setting the mode of", &dir.path))?;
    let stamp = TimeSpec::new(i64::try_from(dir.mtime).unwrap_or(i64::MAX), 0);
    utimensat(
        nix::fcntl::AT_FDCWD,
        &dir.path,
        &stamp,
        &stamp,
        UtimensatFlags::NoFollowSymlink,
    )
    .map_err(|errno| ArchiveError::Io {
        what: "setting the mtime of",
        path: dir.path.clone(),
        source: io::Error::from(errno),
    })
}
