#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `picortex doctor` as a user runs it: the real binary, a temporary data dir and workspace
//! root, the environment cleared of anything the host might set.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Output};

use picortex::config::ENV_KEYS;

struct Host {
    _dir: tempfile::TempDir,
    data: std::path::PathBuf,
    chats: std::path::PathBuf,
}

fn host() -> Host {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let chats = dir.path().join("chats");
    std::fs::create_dir(&data).unwrap();
    std::fs::create_dir(&chats).unwrap();
    std::fs::set_permissions(&chats, std::fs::Permissions::from_mode(0o755)).unwrap();
    Host {
        _dir: dir,
        data,
        chats,
    }
}

fn doctor(host: &Host, extra: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_picortex"));
    command.arg("doctor").args(extra);
    for key in ENV_KEYS {
        command.env_remove(key);
    }
    let secret = linq::webhook::WebhookSecret::generate();
    command
        .env("PICORTEX_DATA_DIR", &host.data)
        .env("PICORTEX_WORKSPACE_ROOT", &host.chats)
        .env("PICORTEX_AGENT", "echo")
        .env("LINQ_API_KEY", "test-key-that-must-not-be-printed")
        .env("LINQ_WEBHOOK_SECRET", secret.as_str())
        .env("ANTHROPIC_API_KEY", "sk-ant-must-not-be-printed");
    command.output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn line_starting<'a>(text: &'a str, prefix: &str) -> &'a str {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in:\n{text}"))
}

#[test]
fn a_sound_setup_passes_and_ends_with_the_isolation_level() {
    let host = host();
    // An existing database is opened read-only and checked.
    drop(picortex::store::Store::open(&host.data.join("picortex.db")).unwrap());
    let out = doctor(&host, &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    line_starting(&text, "ok    config: valid");
    line_starting(&text, "ok    workspace root: ");
    line_starting(&text, "ok    data dir: ");
    line_starting(&text, "ok    database: ");
    assert!(text.contains("passes quick_check"), "{text}");
    line_starting(&text, "ok    LINQ_API_KEY: set (environment)");
    line_starting(&text, "ok    ANTHROPIC_API_KEY: set (environment)");
    for name in [
        "landlock",
        "seccomp",
        "cgroups",
        "namespace net",
        "tmux",
        "git",
    ] {
        assert!(
            text.lines()
                .any(|l| l.len() > 6 && l[6..].starts_with(&format!("{name}: "))),
            "no {name} line in:\n{text}"
        );
    }
    assert!(!text.contains("must-not-be-printed"), "{text}");
    let summary = text.lines().rev().nth(1).unwrap();
    assert!(summary.ends_with(", 0 failures"), "{summary}");
    let last = text.lines().last().unwrap();
    assert!(
        last == "isolation: full" || last.starts_with("isolation: degraded (missing: "),
        "{last}"
    );
    // The database is still there and nothing else was created beside it.
    assert!(host.data.join("picortex.db").exists());
}

#[test]
fn a_world_writable_workspace_root_fails_with_the_chmod_fix() {
    let host = host();
    std::fs::set_permissions(&host.chats, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = doctor(&host, &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let fail = line_starting(&text, "fail  workspace root: ");
    assert!(fail.contains("0777"), "{fail}");
    let lines: Vec<&str> = text.lines().collect();
    let at = lines.iter().position(|l| *l == fail).unwrap();
    assert_eq!(
        lines[at + 1].trim(),
        format!("fix: chmod go-w {}", host.chats.display())
    );
    assert!(text.contains(", 1 failure\n"), "{text}");
}

#[test]
fn json_says_the_same_and_parses() {
    let host = host();
    let out = doctor(&host, &["--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let checks = report["checks"].as_array().unwrap();
    assert!(
        checks
            .iter()
            .any(|c| c["name"] == "workspace root" && c["status"] == "ok")
    );
    assert!(checks.iter().all(|c| {
        ["ok", "warn", "fail"].contains(&c["status"].as_str().unwrap()) && c["detail"].is_string()
    }));
    assert_eq!(report["summary"]["fail"], 0);
    let isolation = report["isolation"]["status"].as_str().unwrap();
    assert!(
        isolation == "full" || isolation == "degraded",
        "{isolation}"
    );
    assert!(report["host"]["landlock_abi"].is_i64());
    assert!(!String::from_utf8_lossy(&out.stdout).contains("must-not-be-printed"));
}

#[test]
fn a_missing_helper_socket_and_a_broken_config_file_fail() {
    let host = host();
    let missing = host.data.join("no-such.sock");
    let out = doctor(&host, &["--sandbox-socket", missing.to_str().unwrap()]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    line_starting(&text, "fail  sandbox helper: ");

    let config = host.data.join("bad.toml");
    std::fs::write(&config, "no_such_key = 1\n").unwrap();
    let out = doctor(&host, &["--config", config.to_str().unwrap()]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    line_starting(&text, "fail  config: cannot be loaded");
    // The host checks still ran.
    assert!(text.contains("isolation: "), "{text}");
    assert!(Path::new(&config).exists());
}
