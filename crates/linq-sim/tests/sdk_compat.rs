//! Runs the official `@linqapp/sdk` (npm, pinned in `tests/sdk/package.json`) unchanged against
//! a simulator on loopback: `tests/sdk/compat.mjs` exercises chats, messages, pagination,
//! idempotency, typing, reactions, attachments, subscriptions and verifies every webhook with
//! the SDK's own `client.webhooks.unwrap`.
//!
//! Needs Node. Without `node` on PATH the test prints `SKIP: node not found` and passes; without
//! `tests/sdk/node_modules` it runs `npm ci` there first.

// Test helpers may unwrap: a panic here is a test failure, which is what we want.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use linq_sim::SimConfig;
use tokio::process::Command;

fn sdk_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("sdk")
}

async fn node_available() -> bool {
    Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_sdk_works_against_the_simulator() {
    if !node_available().await {
        println!("SKIP: node not found");
        return;
    }
    let dir = sdk_dir();
    if !dir
        .join("node_modules")
        .join("@linqapp")
        .join("sdk")
        .exists()
    {
        let out = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .output()
            .await
            .expect("running npm ci (is npm installed?)");
        assert!(
            out.status.success(),
            "npm ci failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim = linq_sim::start(
        SimConfig {
            api_key: "sdk_compat_key".into(),
            lifecycle_delay: Duration::from_millis(80),
            ..SimConfig::default()
        },
        listener,
    )
    .await
    .unwrap();

    let run = Command::new("node")
        .arg("compat.mjs")
        .arg(sim.base_url())
        .arg("sdk_compat_key")
        .current_dir(&dir)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .expect("compat.mjs took longer than 180 s")
        .expect("running node compat.mjs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    if !stderr.trim().is_empty() {
        eprintln!("{stderr}");
    }
    sim.shutdown().await;
    assert!(
        out.status.success(),
        "the official SDK compatibility script failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
}
