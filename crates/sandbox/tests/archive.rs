//! Archiving a home and restoring it: byte-identical round trips (files, modes, symlinks, hard
//! links, mtimes, git objects), owners remapped to a new uid, damaged archives refused, and the
//! space check.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _, symlink};
use std::path::Path;
use std::process::Command;

use picortex_sandbox::archive::{ArchiveError, Reown, archive_home, archive_path, restore_home};
use sha2::{Digest as _, Sha256};

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Everything that must survive a round trip, keyed by relative path.
fn manifest(home: &Path, with_owner: bool) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![home.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = fs::symlink_metadata(&path).unwrap();
        let relative = path.strip_prefix(home).unwrap().display().to_string();
        let kind = if meta.file_type().is_symlink() {
            format!("link->{}", fs::read_link(&path).unwrap().display())
        } else if meta.is_dir() {
            for entry in fs::read_dir(&path).unwrap() {
                stack.push(entry.unwrap().path());
            }
            "dir".to_owned()
        } else {
            let digest = Sha256::digest(fs::read(&path).unwrap());
            format!("file {:x} nlink={}", digest, meta.nlink())
        };
        let mtime = if meta.file_type().is_symlink() {
            0
        } else {
            meta.mtime()
        };
        let owner = if with_owner {
            format!(" {}:{}", meta.uid(), meta.gid())
        } else {
            String::new()
        };
        out.insert(
            relative,
            format!(
                "{kind} mode={:o} mtime={mtime}{owner}",
                meta.mode() & 0o7777
            ),
        );
    }
    out
}

fn build_home(home: &Path) {
    fs::create_dir_all(home.join("src/deep")).unwrap();
    fs::write(home.join("README.md"), b"hello\n").unwrap();
    fs::write(
        home.join("src/deep/data.bin"),
        (0..=255u8).cycle().take(300_000).collect::<Vec<_>>(),
    )
    .unwrap();
    fs::write(home.join("run.sh"), b"#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(home.join("run.sh"), fs::Permissions::from_mode(0o751)).unwrap();
    fs::write(home.join("secret"), b"s").unwrap();
    fs::set_permissions(home.join("secret"), fs::Permissions::from_mode(0o600)).unwrap();
    symlink("README.md", home.join("readme-link")).unwrap();
    symlink("/etc/passwd", home.join("outside-link")).unwrap();
    symlink("missing", home.join("dangling")).unwrap();
    fs::hard_link(home.join("README.md"), home.join("src/hardlinked")).unwrap();
    // A set-gid tool (chown clears the bit; restoring must put it back) and a read-only
    // directory with a file in it (it must be filled before its mode is set).
    fs::write(home.join("tool"), b"#!/bin/sh\n").unwrap();
    fs::set_permissions(home.join("tool"), fs::Permissions::from_mode(0o2755)).unwrap();
    fs::create_dir(home.join("frozen")).unwrap();
    fs::write(home.join("frozen/kept.txt"), b"kept\n").unwrap();
    fs::set_permissions(home.join("frozen"), fs::Permissions::from_mode(0o555)).unwrap();
    fs::set_permissions(home, fs::Permissions::from_mode(0o700)).unwrap();
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(home)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@t")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@t")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    if git(&["init", "-q"]) {
        assert!(git(&["add", "-A"]));
        assert!(git(&["commit", "-qm", "seed"]));
    }
    // Old directory mtimes, so a restore that left them "now" cannot pass by luck.
    for dir in ["src/deep", "src", ""] {
        let touched = Command::new("touch")
            .args(["-h", "-d", "2020-01-02 03:04:05"])
            .arg(home.join(dir))
            .status()
            .unwrap();
        assert!(touched.success());
    }
}

#[test]
fn a_home_round_trips_byte_identical_and_the_archive_is_0600() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("chat-0000abcd");
    let archives = dir.path().join("archive");
    fs::create_dir(&archives).unwrap();
    build_home(&home);
    let before = manifest(&home, true);

    let report = archive_home(&home, &archives, "chat-0000abcd").unwrap();
    assert_eq!(report.archive, archive_path(&archives, "chat-0000abcd"));
    let meta = fs::metadata(&report.archive).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o600);
    assert_eq!(
        fs::read_dir(&archives).unwrap().count(),
        1,
        "no partial file is left behind"
    );
    eprintln!(
        "archive: {} entries, {} content bytes -> {} bytes in {:?}",
        report.entries, report.content_bytes, report.archive_bytes, report.elapsed
    );

    fs::remove_dir_all(&home).unwrap();
    let restored = restore_home(&report.archive, &home, None).unwrap();
    eprintln!("restore: {:?}", restored.elapsed);
    assert_eq!(manifest(&home, true), before);
    assert!(
        report.archive.exists(),
        "restore leaves the archive to the caller"
    );
    if home.join(".git").exists() {
        let fsck = Command::new("git")
            .args(["fsck", "--full", "--strict"])
            .current_dir(&home)
            .status()
            .unwrap();
        assert!(fsck.success());
    }
}

#[test]
fn a_truncated_archive_is_refused_and_left_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("chat-0000beef");
    let archives = dir.path().join("archive");
    fs::create_dir(&archives).unwrap();
    build_home(&home);
    let report = archive_home(&home, &archives, "chat-0000beef").unwrap();
    fs::remove_dir_all(&home).unwrap();

    let bytes = fs::read(&report.archive).unwrap();
    fs::write(&report.archive, &bytes[..bytes.len() / 2]).unwrap();
    let truncated = fs::read(&report.archive).unwrap();

    let error = restore_home(&report.archive, &home, None).unwrap_err();
    assert!(matches!(error, ArchiveError::Damaged { .. }), "{error}");
    assert!(!home.exists(), "no empty or partial home is created");
    assert_eq!(fs::read(&report.archive).unwrap(), truncated);
    assert_eq!(
        fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no staging left"
    );
}

#[test]
fn restoring_over_an_existing_home_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("chat-00001111");
    let archives = dir.path().join("archive");
    fs::create_dir(&archives).unwrap();
    build_home(&home);
    let report = archive_home(&home, &archives, "chat-00001111").unwrap();
    let error = restore_home(&report.archive, &home, None).unwrap_err();
    assert!(matches!(error, ArchiveError::Conflict(_)), "{error}");
    let again = archive_home(&home, &archives, "chat-00001111").unwrap_err();
    assert!(matches!(again, ArchiveError::Conflict(_)), "{again}");
}

#[test]
fn as_root_owners_are_kept_and_the_homes_uid_is_remapped() {
    if !is_root() {
        eprintln!("SKIP: needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("chat-00002222");
    let archives = dir.path().join("archive");
    fs::create_dir(&archives).unwrap();
    build_home(&home);
    let (old, new) = (61_001u32, 61_002u32);
    for entry in [
        "",
        "README.md",
        "src",
        "src/deep",
        "src/deep/data.bin",
        "run.sh",
        "readme-link",
        "frozen",
        "frozen/kept.txt",
    ] {
        std::os::unix::fs::lchown(home.join(entry), Some(old), Some(old)).unwrap();
    }
    // A set-gid file of the chat's: the bit must survive the re-owning chown.
    fs::set_permissions(home.join("run.sh"), fs::Permissions::from_mode(0o2751)).unwrap();
    // "secret" stays root's and must stay root's.
    let before = manifest(&home, true);

    let report = archive_home(&home, &archives, "chat-00002222").unwrap();
    fs::remove_dir_all(&home).unwrap();
    restore_home(&report.archive, &home, Some(Reown { uid: new, gid: new })).unwrap();

    let expected: BTreeMap<String, String> = before
        .into_iter()
        .map(|(k, v)| {
            (
                k,
                v.replace(&format!("{old}:{old}"), &format!("{new}:{new}")),
            )
        })
        .collect();
    assert_eq!(manifest(&home, true), expected);
    assert_eq!(fs::metadata(home.join("secret")).unwrap().uid(), 0);
}

#[test]
fn as_root_archiving_refuses_without_space() {
    if !is_root() {
        eprintln!("SKIP: needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("chat-00003333");
    let archives = dir.path().join("small");
    fs::create_dir(&archives).unwrap();
    build_home(&home);
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&archives)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !mounted {
        eprintln!("SKIP: cannot mount a tmpfs here");
        return;
    }
    let result = archive_home(&home, &archives, "chat-00003333");
    let _ = Command::new("umount").arg(&archives).status();
    let error = result.unwrap_err();
    assert!(matches!(error, ArchiveError::NoSpace { .. }), "{error}");
    assert!(home.exists());
}

fn mark(home: &Path, chat_id: &str) {
    fs::create_dir_all(home.join(".picortex")).unwrap();
    fs::write(home.join(".picortex/chat_id"), chat_id).unwrap();
}

#[test]
fn archiving_again_after_a_crash_replaces_the_chats_own_archive_but_never_anothers() {
    let dir = tempfile::tempdir().unwrap();
    let archives = dir.path().join("archive");
    fs::create_dir(&archives).unwrap();
    let home = dir.path().join("chat-00003333");
    build_home(&home);
    mark(&home, "chat-a");
    archive_home(&home, &archives, "chat-00003333").unwrap();
    // A crash came before the home was removed: the same chat archives again, newer files and all.
    fs::write(home.join("later.txt"), b"written after the first archive\n").unwrap();
    let report = archive_home(&home, &archives, "chat-00003333").unwrap();
    let restored = dir.path().join("restored");
    restore_home(&report.archive, &restored, None).unwrap();
    assert_eq!(
        fs::read(restored.join("later.txt")).unwrap(),
        b"written after the first archive\n"
    );
    println!(
        "PASS: archiving again after a crash replaces the chat's own archive with the newer home"
    );

    // Another chat's home under a colliding name must not overwrite the first chat's archive.
    let other = dir.path().join("other/chat-00003333");
    build_home(&other);
    mark(&other, "chat-b");
    let error = archive_home(&other, &archives, "chat-00003333").unwrap_err();
    assert!(matches!(error, ArchiveError::Conflict(_)), "{error}");
    assert_eq!(
        picortex_sandbox::archive::read_marker(&report.archive)
            .unwrap()
            .as_deref(),
        Some("chat-a")
    );
    println!("PASS: another chat's archive under the same name is refused, not replaced");
}

#[test]
fn a_removal_or_restore_cut_short_leaves_nothing_under_the_homes_name_and_is_swept() {
    use picortex_sandbox::archive::{remove_home, sweep_leftovers};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("homes");
    let archives = dir.path().join("archive");
    fs::create_dir_all(&root).unwrap();
    fs::create_dir(&archives).unwrap();
    let home = root.join("chat-00004444");
    build_home(&home);
    remove_home(&home).unwrap();
    assert_eq!(fs::read_dir(&root).unwrap().count(), 0, "nothing left");
    remove_home(&home).unwrap();
    println!("PASS: a home is removed whole, and removing a missing one is fine");

    // What killed transitions leave: a home moved aside, a half-unpacked restore, a partial
    // archive; and a planted symlink under a leftover's name, which is not followed.
    build_home(&root.join(".chat-00004444.removing"));
    build_home(&root.join(".chat-00005555.restoring"));
    fs::write(archives.join(".chat-00006666.tar.zst.partial"), b"half").unwrap();
    let target = dir.path().join("precious");
    build_home(&target);
    symlink(&target, root.join(".chat-00007777.removing")).unwrap();
    let mut swept = sweep_leftovers(&root, Some(&archives)).unwrap();
    swept.sort();
    assert_eq!(swept, vec!["chat-00004444", "chat-00005555"]);
    let left: Vec<_> = fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        left,
        vec![".chat-00007777.removing"],
        "only the symlink is left"
    );
    assert!(
        target.join("README.md").exists(),
        "the symlink was not followed"
    );
    assert_eq!(fs::read_dir(&archives).unwrap().count(), 0);
    println!(
        "PASS: start-up sweeps moved-aside homes, staging directories and partial archives, following no symlink"
    );
}
