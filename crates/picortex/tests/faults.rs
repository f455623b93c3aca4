//! Nothing lost, nothing doubled: with the simulator failing 30% of API calls, and with the
//! daemon SIGKILLed at random moments during a burst, every inbound message is answered by
//! exactly one reply.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use serde_json::json;

/// Checks, chat by chat, that every sent text is echoed exactly once across the bot's replies.
async fn assert_each_answered_once(sim: &Sim, sent: &HashMap<String, Vec<String>>) {
    for (chat_id, texts) in sent {
        let replies = sim.bot_messages(chat_id).await;
        let mut seen: HashMap<String, usize> = HashMap::new();
        for reply in &replies {
            for line in text_of(reply).lines() {
                *seen.entry(line.to_owned()).or_default() += 1;
            }
        }
        for text in texts {
            let n = seen.get(&format!("echo: {text}")).copied().unwrap_or(0);
            assert_eq!(
                n, 1,
                "chat {chat_id}: {text:?} answered {n} times; replies: {replies:#?}"
            );
        }
        assert_eq!(
            seen.values().sum::<usize>(),
            texts.len(),
            "chat {chat_id}: no reply line answers nothing"
        );
    }
}

async fn outbox_settled(store: &picortex::store::Store, expected_messages: i64) -> bool {
    store
        .read(move |c| {
            let answered: i64 = c.query_row(
                "SELECT COUNT(*) FROM messages m JOIN turns t ON t.id = m.turn_id
                 JOIN outbox o ON o.turn_id = t.id WHERE o.status NOT IN ('pending', 'failed')",
                [],
                |r| r.get(0),
            )?;
            let pending: i64 = c.query_row(
                "SELECT COUNT(*) FROM outbox WHERE status = 'pending'",
                [],
                |r| r.get(0),
            )?;
            Ok(answered == expected_messages && pending == 0)
        })
        .await
        .unwrap_or(false)
}

#[tokio::test]
async fn thirty_percent_server_errors_still_one_reply_each() {
    let stack = Stack::start().await;
    stack.sim.set_faults(json!({"error_rate": 0.3})).await;
    let mut sent: HashMap<String, Vec<String>> = HashMap::new();
    let mut total = 0;
    for round in 0..5 {
        for chat in 0..8 {
            let text = format!("chat {chat} round {round}");
            let (chat_id, _) = stack.sim.dm(&format!("+1555300{chat:04}"), &text).await;
            sent.entry(chat_id).or_default().push(text);
            total += 1;
        }
    }
    let store = stack.daemon.store.clone();
    eventually(Duration::from_secs(60), "every message answered", || {
        let store = store.clone();
        async move { outbox_settled(&store, total).await.then_some(()) }
    })
    .await;
    stack.sim.set_faults(json!({"error_rate": 0.0})).await;
    assert_each_answered_once(&stack.sim, &sent).await;
    let retries = stack
        .daemon
        .metrics
        .delivery_retries
        .load(std::sync::atomic::Ordering::Relaxed);
    println!("outbox-level retries: {retries}");
}

#[tokio::test]
async fn sigterm_stops_the_daemon_cleanly_and_the_next_start_goes_on() {
    let (port, sim, data) = child_daemon_parts().await;
    let config_path = write_daemon_config(&sim, data.path(), port, "");
    let mut daemon = DaemonProcess::spawn(&config_path);
    let (chat, _) = sim.dm("+15554100001", "before the stop").await;
    assert_eq!(replies(&sim, &chat, 1).await, vec!["echo: before the stop"]);

    let status = daemon.sigterm().await;
    assert!(
        status.success(),
        "the daemon exited with {status} on SIGTERM"
    );
    let log = std::fs::read_to_string(data.path().join("daemon.log")).unwrap();
    assert!(
        log.contains("\"signal\":\"SIGTERM\"") && log.contains("\"stopped\""),
        "the log says why and that it stopped"
    );
    println!("PASS: SIGTERM stops the daemon with exit status 0");

    let _daemon = DaemonProcess::spawn(&config_path);
    sim.text(json!({"from": "+15554100001", "chat_id": chat, "text": "after the stop"}))
        .await;
    assert_eq!(replies(&sim, &chat, 2).await[1], "echo: after the stop");
    println!("PASS: the next start answers in the same chat");
}

#[tokio::test]
async fn sigkill_during_a_burst_loses_nothing_and_doubles_nothing() {
    let (port, sim, data) = child_daemon_parts().await;
    let config_path = write_daemon_config(&sim, data.path(), port, "");

    let mut daemon = DaemonProcess::spawn(&config_path);
    let mut sent: HashMap<String, Vec<String>> = HashMap::new();
    let mut kills = 0;
    for i in 0..200 {
        let chat = i % 10;
        let text = format!("burst {i} to chat {chat}");
        let (chat_id, _) = sim.dm(&format!("+1555400{chat:04}"), &text).await;
        sent.entry(chat_id).or_default().push(text);
        // Kill at irregular moments: every 23rd to 37th message.
        if i % 31 == 17 || i % 47 == 30 {
            tokio::time::sleep(Duration::from_millis((i % 7) as u64 * 15)).await;
            daemon.sigkill().await;
            kills += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
            daemon = DaemonProcess::spawn(&config_path);
        }
    }
    assert!(kills >= 4, "the test killed the daemon {kills} times");

    // Wait for the daemon to answer everything (read the store read-only from here).
    let db = data.path().join("picortex.db");
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let store = picortex::store::Store::open(&db).unwrap();
        if outbox_settled(&store, 200).await {
            break;
        }
        if std::time::Instant::now() > deadline {
            // Say where the pipeline stopped, and keep the data for a look.
            let summary = store
                .read(|c| {
                    let mut out = Vec::new();
                    for sql in [
                        "SELECT 'messages ' || gate_status, COUNT(*) FROM messages WHERE direction = 'inbound' GROUP BY gate_status",
                        "SELECT 'turns ' || status, COUNT(*) FROM turns GROUP BY status",
                        "SELECT 'outbox ' || status, COUNT(*) FROM outbox GROUP BY status",
                    ] {
                        let mut stmt = c.prepare(sql)?;
                        let rows = stmt.query_map([], |r| {
                            Ok(format!("{}: {}", r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
                        })?;
                        for row in rows {
                            out.push(row?);
                        }
                    }
                    Ok(out)
                })
                .await
                .unwrap_or_default();
            let kept = data.keep();
            panic!(
                "timed out waiting for all 200 messages answered: {summary:?}; data kept in {}",
                kept.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_each_answered_once(&sim, &sent).await;
    daemon.sigkill().await;
    println!("killed the daemon {kills} times during the burst");
}

#[tokio::test]
async fn daemon_sigkilled_mid_turn_collects_the_runners_result_once() {
    if !have_tmux() {
        return;
    }
    let (port, sim, data) = child_daemon_parts().await;
    let root = data.path().join("chats");
    // The agent takes a while, and logs each run so the test can see it ran once.
    let extra = command_agent_toml(&root, &["sh", "-c", "echo run >> runs.log; sleep 2; cat"]);
    let config_path = write_daemon_config(&sim, data.path(), port, &extra);
    let mut daemon = DaemonProcess::spawn(&config_path);
    let (chat, _) = sim.dm("+15551239999", "do not lose me").await;
    let home = chat_home(&root, &chat);
    eventually(Duration::from_secs(30), "the agent to start", || async {
        home.join("runs.log").exists().then_some(())
    })
    .await;
    daemon.sigkill().await;
    let mut daemon = DaemonProcess::spawn(&config_path);
    let replies = eventually(Duration::from_secs(30), "the reply", || async {
        let r = sim.bot_messages(&chat).await;
        (!r.is_empty()).then_some(r)
    })
    .await;
    assert_eq!(text_of(&replies[0]), "do not lose me");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sim.bot_messages(&chat).await.len(), 1, "exactly one reply");
    let runs = std::fs::read_to_string(home.join("runs.log")).unwrap();
    assert_eq!(
        runs.lines().count(),
        1,
        "the agent ran once; the restarted daemon collected its result"
    );
    daemon.sigkill().await;
    cleanup_chats(&root);
}
