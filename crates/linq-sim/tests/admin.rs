//! The admin API: inbound messages (DM, group, existing chat, replies, attachments) and their
//! validation, human reactions and typing, the state snapshot, the SSE change stream, the
//! embedded page, and shutdown with a stream open.

// Test helpers may unwrap: a panic here is a test failure, which is what we want.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use base64::Engine as _;
use common::{BOT, TestSim};
use serde_json::{Value, json};

#[tokio::test]
async fn inbound_creates_and_reuses_chats() {
    let sim = TestSim::start().await;
    let a = sim
        .admin(
            "/sim/inbound",
            json!({"from": "+15550001111", "text": "hi"}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.headers["content-type"], "application/json");
    let dm = a.body["chat_id"].as_str().unwrap().to_owned();
    let first = a.body["message_id"].as_str().unwrap().to_owned();
    let b = sim
        .admin(
            "/sim/inbound",
            json!({"from": "+15550001111", "text": "again", "reply_to": first}),
        )
        .await;
    assert_eq!(b.body["chat_id"], dm.as_str(), "same DM");
    let second = b.body["message_id"].as_str().unwrap().to_owned();

    // Read back through the real v3 API.
    let m = sim.get(&format!("/v3/messages/{second}")).await.body;
    assert_eq!(m["is_from_me"], false);
    assert_eq!(m["delivery_status"], "received");
    assert_eq!(m["from"], "+15550001111");
    assert_eq!(m["reply_to"]["message_id"], first.as_str());
    assert_eq!(m["parts"][0]["value"], "again");
    let chat = sim.get(&format!("/v3/chats/{dm}")).await.body;
    assert_eq!(chat["is_group"], false);

    let g = sim
        .admin(
            "/sim/inbound",
            json!({"from": "+15550001111", "group": ["+15550002222", "+15550003333"], "text": "group"}),
        )
        .await;
    let group = g.body["chat_id"].as_str().unwrap().to_owned();
    assert_ne!(group, dm);
    let chat = sim.get(&format!("/v3/chats/{group}")).await.body;
    assert_eq!(chat["is_group"], true);
    let mut handles: Vec<&str> = chat["handles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["handle"].as_str().unwrap())
        .collect();
    handles.sort();
    assert_eq!(
        handles,
        vec![BOT, "+15550001111", "+15550002222", "+15550003333"]
    );
    // The same set, from another member and in another order, is the same chat.
    let g2 = sim
        .admin(
            "/sim/inbound",
            json!({"from": "+15550003333", "group": ["+15550001111", "+15550002222", BOT], "text": "me too"}),
        )
        .await;
    assert_eq!(g2.body["chat_id"], group.as_str());
    let g3 = sim
        .admin(
            "/sim/inbound",
            json!({"from": "+15550002222", "chat_id": group, "text": "by id"}),
        )
        .await;
    assert_eq!(g3.body["chat_id"], group.as_str());
    let list = sim.get(&format!("/v3/chats/{group}/messages")).await.body;
    assert_eq!(list["messages"].as_array().unwrap().len(), 3);

    // The bot's reply shows up next to the inbound ones.
    let sent = sim
        .post(
            &format!("/v3/chats/{dm}/messages"),
            json!({"message": {"parts": [{"type": "text", "value": "pong"}], "reply_to": {"message_id": second}}}),
        )
        .await;
    assert_eq!(sent.status, 202);
    let list = sim.get(&format!("/v3/chats/{dm}/messages")).await.body;
    assert_eq!(list["messages"][0]["parts"][0]["value"], "pong");
    assert_eq!(list["messages"][0]["is_from_me"], true);
}

#[tokio::test]
async fn inbound_attachments() {
    let sim = TestSim::start().await;
    let data = base64::engine::general_purpose::STANDARD.encode(b"hello file");
    let a = sim
        .admin(
            "/sim/inbound",
            json!({"from": "+15550001111", "text": "see attached", "attachments": [
                {"filename": "note.txt", "mime_type": "text/plain", "content_base64": data},
                {"url": "https://example.com/cat.jpg"}
            ]}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let id = a.body["message_id"].as_str().unwrap();
    let m = sim.get(&format!("/v3/messages/{id}")).await.body;
    let parts = m["parts"].as_array().unwrap();
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[1]["filename"], "note.txt");
    assert_eq!(parts[1]["size_bytes"], 10);
    let body = reqwest::get(parts[1]["url"].as_str().unwrap())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "hello file");
    assert_eq!(parts[2]["mime_type"], "image/jpeg");
    assert_eq!(parts[2]["url"], "https://example.com/cat.jpg");
    // Attachments alone are fine; bad base64 is not.
    let only = sim
        .admin(
            "/sim/inbound",
            json!({"from": "+15550001111", "attachments": [{"url": "https://example.com/a.png"}]}),
        )
        .await;
    assert_eq!(only.status, 200);
    let bad = sim
        .admin(
            "/sim/inbound",
            json!({"from": "+15550001111", "text": "x", "attachments": [{"content_base64": "!!!"}]}),
        )
        .await;
    assert_eq!(bad.status, 400);
}

#[tokio::test]
async fn inbound_validation() {
    let sim = TestSim::start().await;
    let a = sim
        .admin(
            "/sim/inbound",
            json!({"from": "+15550001111", "text": "hi"}),
        )
        .await;
    let dm = a.body["chat_id"].as_str().unwrap().to_owned();
    let (other, other_msg) = sim.dm("+15550002222", "x").await;
    let cases = [
        (json!({"text": "hi"}), 400, 1001),
        (json!({"from": "5550001111", "text": "hi"}), 400, 1002),
        (json!({"from": "+15550001111"}), 400, 1001),
        (json!({"from": "+15550001111", "text": "   "}), 400, 1001),
        (json!({"from": BOT, "text": "hi"}), 400, 1005),
        (
            json!({"from": "+15550001111", "text": "hi", "chat_id": "00000000-0000-4000-8000-000000000000"}),
            404,
            2001,
        ),
        (
            json!({"from": "+15550001111", "text": "hi", "chat_id": other}),
            400,
            1005,
        ),
        (
            json!({"from": "+15550001111", "text": "hi", "chat_id": dm, "group": ["+15550003333"]}),
            400,
            1005,
        ),
        (
            json!({"from": "+15550001111", "text": "hi", "group": ["nope"]}),
            400,
            1002,
        ),
        (
            json!({"from": "+15550001111", "text": "hi", "reply_to": "00000000-0000-4000-8000-000000000000"}),
            404,
            2002,
        ),
        (
            json!({"from": "+15550001111", "text": "hi", "reply_to": other_msg}),
            400,
            1005,
        ),
        (json!({"from": "+15550001111", "text": 5}), 400, 1003),
    ];
    for (body, status, code) in cases {
        let a = sim.admin("/sim/inbound", body.clone()).await;
        assert_eq!((a.status, a.code()), (status, code), "{body} -> {}", a.body);
        assert!(a.headers.contains_key("x-trace-id"));
    }
    let a = sim
        .send(reqwest::Method::POST, "/sim/inbound", Some("{nope"), None)
        .await;
    assert_eq!((a.status, a.code()), (400, 1003));
    // A reply to a message in a chat that does not exist yet creates nothing.
    let before = sim.state().await["chats"].as_array().unwrap().len();
    sim.admin(
        "/sim/inbound",
        json!({"from": "+15550009999", "text": "hi", "reply_to": other_msg}),
    )
    .await;
    assert_eq!(sim.state().await["chats"].as_array().unwrap().len(), before);
}

#[tokio::test]
async fn react_and_typing() {
    let sim = TestSim::start().await;
    let a = sim
        .admin(
            "/sim/inbound",
            json!({"from": "+15550001111", "text": "hi"}),
        )
        .await;
    let dm = a.body["chat_id"].as_str().unwrap().to_owned();
    let (_, bot_msg) = sim.dm("+15550001111", "hello human").await;
    let r = sim
        .admin(
            "/sim/react",
            json!({"from": "+15550001111", "message_id": bot_msg, "type": "love"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"chat_id": dm, "message_id": bot_msg, "operation": "add", "type": "love"})
    );
    let m = sim.get(&format!("/v3/messages/{bot_msg}")).await.body;
    let reaction = &m["parts"][0]["reactions"][0];
    assert_eq!(reaction["is_me"], false);
    assert_eq!(reaction["handle"]["handle"], "+15550001111");
    for (body, status) in [
        (json!({"from": "+15550001111", "message_id": bot_msg}), 400),
        (
            json!({"from": "+15550001111", "message_id": bot_msg, "type": "meh"}),
            400,
        ),
        (
            json!({"from": "+15550007777", "message_id": bot_msg, "type": "like"}),
            400,
        ),
        (
            json!({"from": BOT, "message_id": bot_msg, "type": "like"}),
            400,
        ),
        (
            json!({"from": "+15550001111", "message_id": "00000000-0000-4000-8000-000000000000", "type": "like"}),
            404,
        ),
        (
            json!({"from": "+15550001111", "message_id": bot_msg, "type": "like", "operation": "toggle"}),
            400,
        ),
    ] {
        let a = sim.admin("/sim/react", body.clone()).await;
        assert_eq!(a.status, status, "{body} -> {}", a.body);
    }

    let t = sim
        .admin(
            "/sim/typing",
            json!({"from": "+15550001111", "chat_id": dm, "started": true}),
        )
        .await;
    assert_eq!(t.status, 200);
    assert_eq!(t.body["started"], true);
    let s = sim.state().await;
    let chat = s["chats"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == dm.as_str())
        .unwrap()
        .clone();
    assert_eq!(chat["others_typing"], json!(["+15550001111"]));
    // A message from them clears their typing indicator.
    sim.admin(
        "/sim/inbound",
        json!({"from": "+15550001111", "text": "done typing"}),
    )
    .await;
    let s = sim.state().await;
    assert_eq!(s["chats"][0]["others_typing"], json!([]));

    let g = sim
        .admin(
            "/sim/inbound",
            json!({"from": "+15550001111", "group": ["+15550002222"], "text": "g"}),
        )
        .await;
    let group = g.body["chat_id"].as_str().unwrap();
    for (body, status) in [
        (
            json!({"from": "+15550001111", "chat_id": group, "started": true}),
            400,
        ),
        (json!({"from": "+15550001111", "chat_id": dm}), 400),
        (
            json!({"from": "+15550009999", "chat_id": dm, "started": true}),
            400,
        ),
        (
            json!({"from": "+15550001111", "chat_id": "00000000-0000-4000-8000-000000000000", "started": true}),
            404,
        ),
    ] {
        let a = sim.admin("/sim/typing", body.clone()).await;
        assert_eq!(a.status, status, "{body} -> {}", a.body);
    }
}

#[tokio::test]
async fn state_snapshot_shape() {
    let sim = TestSim::start().await;
    let a = sim
        .admin(
            "/sim/inbound",
            json!({"from": "+15550001111", "text": "hi"}),
        )
        .await;
    let dm = a.body["chat_id"].as_str().unwrap().to_owned();
    let inbound = a.body["message_id"].as_str().unwrap().to_owned();
    sim.post_empty(&format!("/v3/chats/{dm}/typing")).await;
    let sent = sim
        .post(
            &format!("/v3/chats/{dm}/messages"),
            json!({"message": {"parts": [{"type": "text", "value": "yo"}], "reply_to": {"message_id": inbound}, "idempotency_key": "k"}}),
        )
        .await;
    let out = sent.body["message"]["id"].as_str().unwrap().to_owned();
    sim.post(
        &format!("/v3/messages/{inbound}/reactions"),
        json!({"operation": "add", "type": "like"}),
    )
    .await;
    sim.post_empty(&format!("/v3/chats/{dm}/typing")).await;

    let s = common::wait_state(&sim, "read", |s| {
        s["chats"][0]["messages"][1]["delivery_status"] == "read"
    })
    .await;
    assert_eq!(s["bot_line"], BOT);
    assert_eq!(s["partner_id"], "sim-partner");
    assert!(s["version"].as_u64().unwrap() > 0);
    assert_eq!(s["base_url"], sim.handle.base_url());
    let chat = &s["chats"][0];
    assert_eq!(chat["id"], dm.as_str());
    assert_eq!(chat["bot_typing"], true);
    assert_eq!(chat["left"], false);
    assert_eq!(chat["handles"].as_array().unwrap().len(), 2);
    let msgs = chat["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 2, "oldest first");
    assert_eq!(msgs[0]["id"], inbound.as_str());
    assert_eq!(msgs[0]["direction"], "inbound");
    assert_eq!(msgs[0]["delivery_status"], "received");
    assert_eq!(msgs[0]["parts"][0]["reactions"][0]["type"], "like");
    assert_eq!(msgs[1]["id"], out.as_str());
    assert_eq!(msgs[1]["direction"], "outbound");
    assert_eq!(msgs[1]["reply_to"]["message_id"], inbound.as_str());
    assert_eq!(msgs[1]["idempotency_key"], "k");
    assert!(msgs[1]["read_at"].is_string());
    assert_eq!(msgs[1]["deleted"], false);
    assert_eq!(msgs[1]["deleted_at"], Value::Null);
    assert_eq!(msgs[1]["edit_count"], 0);
    assert_eq!(s["faults"]["error_rate"], 0.0);
    assert!(s["deliveries"].as_array().unwrap().is_empty());
    let events: Vec<&str> = s["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert!(events.contains(&"message.received") && events.contains(&"message.read"));
    assert!(events.contains(&"reaction.added"));
}

#[tokio::test]
async fn sse_stream_emits_change_events_and_shutdown_ends_it() {
    let sim = TestSim::start().await;
    let mut resp = sim
        .http
        .get(sim.url("/sim/api/stream"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    sim.admin(
        "/sim/inbound",
        json!({"from": "+15550001111", "text": "hi"}),
    )
    .await;
    let mut got = String::new();
    let read = async {
        while let Some(chunk) = resp.chunk().await.unwrap() {
            got.push_str(&String::from_utf8_lossy(&chunk));
            if got.contains("event: change") && got.contains("data: ") {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .expect("a change event");
    assert!(got.contains("event: change"), "{got}");

    // Shutdown does not hang on the open stream.
    tokio::time::timeout(Duration::from_secs(8), sim.handle.shutdown())
        .await
        .expect("shutdown finished");
}

#[tokio::test]
async fn admin_page_is_served_at_root_and_sim() {
    let sim = TestSim::start().await;
    for path in ["/", "/sim"] {
        let r = sim.http.get(sim.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        assert_eq!(r.text().await.unwrap(), linq_sim::admin::ADMIN_HTML);
    }
    let r = sim
        .send(reqwest::Method::GET, "/sim/nothing", None, None)
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.body["success"], Value::Bool(false));
}
