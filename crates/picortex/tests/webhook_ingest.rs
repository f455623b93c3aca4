//! Bad input and faults at the webhook door: every way a delivery can be wrong gets the right
//! status code and leaves the store untouched, and a duplicate is answered 200 and does nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

fn received_2026(event_id: &str, message_id: &str, chat_id: &str, from: &str, text: &str) -> Value {
    json!({
        "api_version": "v3", "webhook_version": "2026-02-03", "event_type": "message.received",
        "event_id": event_id, "created_at": "2026-02-05T19:31:13.736444093Z",
        "trace_id": "8af9171a45022df2eb74ba4e4c83be0f", "partner_id": "test",
        "data": {
            "id": message_id, "direction": "inbound", "service": "iMessage",
            "chat": {"id": chat_id, "is_group": false,
                     "health_status": {"status": "HEALTHY", "doc_url": "https://docs.linqapp.com/guides/chats/chat-health", "updated_at": "2026-02-05T19:00:00Z"},
                     "owner_handle": {"id": "6d6c617f-0000-4000-8000-000000000001", "handle": BOT_LINE, "service": "iMessage", "joined_at": "2026-01-04T05:48:51.321Z", "is_me": true, "left_at": null, "status": "active"}},
            "sender_handle": {"id": "e604375a-0000-4000-8000-000000000002", "handle": from, "service": "iMessage", "joined_at": "2026-01-04T05:48:51.321Z", "is_me": false, "left_at": null, "status": "active"},
            "parts": [{"type": "text", "value": text}], "effect": null, "reply_to": null,
            "sent_at": "2026-02-05T19:31:13.074Z", "delivered_at": null, "read_at": null
        }
    })
}

fn received_2025(event_id: &str, message_id: &str, chat_id: &str, from: &str, text: &str) -> Value {
    json!({
        "api_version": "v3", "webhook_version": "2025-01-01", "event_type": "message.received",
        "event_id": event_id, "created_at": "2026-02-05T19:31:13.736Z",
        "trace_id": "8af9171a45022df2eb74ba4e4c83be0f", "partner_id": "test",
        "data": {
            "chat_id": chat_id, "is_group": false, "idempotency_key": null, "from": from,
            "from_handle": {"id": "e604375a-0000-4000-8000-000000000003", "handle": from, "service": "iMessage", "joined_at": "2026-01-04T05:48:51.321Z", "is_me": false, "left_at": null, "status": "active"},
            "is_from_me": false,
            "recipient_handle": {"id": "6d6c617f-0000-4000-8000-000000000004", "handle": BOT_LINE, "service": "iMessage", "joined_at": "2026-01-04T05:48:51.321Z", "is_me": true, "left_at": null, "status": "active"},
            "recipient_phone": BOT_LINE, "received_at": "2026-02-05T19:31:13.074Z", "service": "iMessage", "preferred_service": null,
            "message": {"id": message_id, "parts": [{"type": "text", "value": text}], "effect": null, "reply_to": null,
                        "is_delivered": true, "is_read": false, "sent_at": "2026-02-05T19:31:13.074Z", "delivered_at": null, "read_at": null,
                        "created_at": "2026-02-05T19:31:13.074Z", "updated_at": "2026-02-05T19:31:13.074Z"}
        }
    })
}

async fn post(stack: &Stack, headers: &[(String, String)], body: Vec<u8>) -> (u16, String) {
    let mut req = stack.sim.http.post(stack.inbound_url()).body(body);
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

async fn count(stack: &Stack, sql: &'static str) -> i64 {
    stack
        .daemon
        .store
        .read(move |c| Ok(c.query_row(sql, [], |r| r.get(0))?))
        .await
        .unwrap()
}

fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[tokio::test]
async fn signature_failures_are_401_and_store_nothing() {
    let stack = Stack::start().await;
    let secret = &stack.sim.secret;
    let body = serde_json::to_vec(&received_2026(
        &uuid(),
        &uuid(),
        &uuid(),
        "+15551230001",
        "hi",
    ))
    .unwrap();
    // Well outside the ±300 s window, so a second ticking over during the test cannot bring a
    // case back inside it (the exact boundary is a unit test in linq::webhook).
    let now = now_unix();

    let wrong = linq::webhook::WebhookSecret::generate();
    let cases: Vec<(&str, Headers, Vec<u8>)> = vec![
        (
            "wrong secret",
            signed_headers(&wrong, "evt", now, &body),
            body.clone(),
        ),
        (
            "tampered body",
            signed_headers(secret, "evt", now, &body),
            {
                let mut b = body.clone();
                let at = b.len() - 5;
                b[at] ^= 1;
                b
            },
        ),
        (
            "stale timestamp",
            signed_headers(secret, "evt", now - 400, &body),
            body.clone(),
        ),
        (
            "future timestamp",
            signed_headers(secret, "evt", now + 400, &body),
            body.clone(),
        ),
        (
            "millisecond timestamp",
            signed_headers(secret, "evt", now * 1000, &body),
            body.clone(),
        ),
        (
            "missing headers",
            vec![("content-type".into(), "application/json".into())],
            body.clone(),
        ),
        (
            "missing signature",
            signed_headers(secret, "evt", now, &body)
                .into_iter()
                .filter(|(k, _)| k != "webhook-signature")
                .collect(),
            body.clone(),
        ),
    ];
    for (name, headers, body) in cases {
        let (status, text) = post(&stack, &headers, body).await;
        assert_eq!(status, 401, "{name}: {text}");
        assert!(text.contains("invalid webhook signature"), "{name}: {text}");
    }
    assert_eq!(
        count(&stack, "SELECT COUNT(*) FROM webhook_events").await,
        0
    );
    assert_eq!(count(&stack, "SELECT COUNT(*) FROM messages").await, 0);
}

#[tokio::test]
async fn a_duplicate_delivered_three_times_is_one_message_and_one_reply() {
    let stack = Stack::start().await;
    let secret = stack.sim.secret.clone();
    let (event_id, message_id, chat_id) = (uuid(), uuid(), uuid());
    let body = serde_json::to_vec(&received_2026(
        &event_id,
        &message_id,
        &chat_id,
        "+15551230001",
        "once",
    ))
    .unwrap();
    for _ in 0..3 {
        let headers = signed_headers(&secret, &event_id, now_unix(), &body);
        let (status, text) = post(&stack, &headers, body.clone()).await;
        assert_eq!(status, 200, "{text}");
    }
    assert_eq!(
        count(&stack, "SELECT COUNT(*) FROM webhook_events").await,
        1
    );
    assert_eq!(
        count(
            &stack,
            "SELECT COUNT(*) FROM messages WHERE direction = 'inbound'"
        )
        .await,
        1
    );
    assert_eq!(
        stack
            .daemon
            .metrics
            .webhooks_duplicate
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
    // The chat is unknown to the simulator (we invented it), so the reply is refused with a 404:
    // the failure is recorded, visible, and not retried.
    let failed = eventually(
        Duration::from_secs(10),
        "the reply's delivery outcome",
        || async {
            let n = count(
                &stack,
                "SELECT COUNT(*) FROM outbox WHERE status = 'failed'",
            )
            .await;
            (n == 1).then_some(n)
        },
    )
    .await;
    assert_eq!(failed, 1);
    assert_eq!(count(&stack, "SELECT COUNT(*) FROM turns").await, 1);
    assert_eq!(count(&stack, "SELECT COUNT(*) FROM outbox").await, 1);
}

#[tokio::test]
async fn malformed_unknown_oversize_and_non_utf8_bodies() {
    let stack = Stack::start().await;
    let secret = stack.sim.secret.clone();
    let send = |body: Vec<u8>| {
        let headers = signed_headers(&secret, &uuid(), now_unix(), &body);
        (headers, body)
    };

    // Malformed JSON, correctly signed: 400 with a message that says what is wrong.
    let (h, b) = send(b"{\"event_type\": ".to_vec());
    let (status, text) = post(&stack, &h, b).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("malformed event"), "{text}");

    // Not UTF-8 at all.
    let (h, b) = send(vec![0xff, 0xfe, 0x7b, 0x00]);
    let (status, _) = post(&stack, &h, b).await;
    assert_eq!(status, 400);

    // A known event type whose data does not fit its schema.
    let mut bad = received_2026(&uuid(), &uuid(), &uuid(), "+15551230001", "x");
    bad["data"]["parts"] = json!("not a list");
    let (h, b) = send(serde_json::to_vec(&bad).unwrap());
    let (status, text) = post(&stack, &h, b).await;
    assert_eq!(status, 400, "{text}");

    // An unknown event type is stored and ignored.
    let unknown = json!({"api_version": "v3", "webhook_version": "2026-02-03", "event_type": "call.initiated",
        "event_id": uuid(), "created_at": "2026-02-05T19:31:13Z", "trace_id": "00", "partner_id": "p", "data": {"whatever": 1}});
    let (h, b) = send(serde_json::to_vec(&unknown).unwrap());
    let (status, text) = post(&stack, &h, b).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        count(
            &stack,
            "SELECT COUNT(*) FROM webhook_events WHERE event_type = 'call.initiated'"
        )
        .await,
        1
    );
    assert_eq!(count(&stack, "SELECT COUNT(*) FROM turns").await, 0);

    // Over the body limit: 413, before any signature work.
    let huge = vec![b' '; 300 * 1024];
    let (h, b) = send(huge);
    let (status, text) = post(&stack, &h, b).await;
    assert_eq!(status, 413, "{text}");

    // Text that is valid UTF-8 but full of odd characters is kept byte-exact.
    let odd = "quotes \" ' `; $(x) \\n \u{0}\u{1b}[31m emoji 🙂 RTL \u{202e}";
    let (message_id, chat_id) = (uuid(), uuid());
    let (h, b) = send(
        serde_json::to_vec(&received_2026(
            &uuid(),
            &message_id,
            &chat_id,
            "+15551230001",
            odd,
        ))
        .unwrap(),
    );
    assert_eq!(post(&stack, &h, b).await.0, 200);
    let stored: String = stack
        .daemon
        .store
        .read(move |c| {
            Ok(c.query_row(
                "SELECT text FROM messages WHERE id = ?1",
                [message_id],
                |r| r.get(0),
            )?)
        })
        .await
        .unwrap();
    assert_eq!(stored, odd);
}

#[tokio::test]
async fn both_payload_versions_and_unknown_chats_are_accepted() {
    let stack = Stack::start().await;
    let secret = stack.sim.secret.clone();
    for (version, body) in [
        (
            "2026",
            received_2026(&uuid(), &uuid(), &uuid(), "+15551230001", "new format"),
        ),
        (
            "2025",
            received_2025(&uuid(), &uuid(), &uuid(), "+15551230002", "old format"),
        ),
    ] {
        let body = serde_json::to_vec(&body).unwrap();
        let headers = signed_headers(&secret, &uuid(), now_unix(), &body);
        let (status, text) = post(&stack, &headers, body).await;
        assert_eq!(status, 200, "{version}: {text}");
    }
    // Two chats nobody told us about are now known, each with its message and sender.
    assert_eq!(count(&stack, "SELECT COUNT(*) FROM chats").await, 2);
    assert_eq!(
        count(
            &stack,
            "SELECT COUNT(*) FROM messages WHERE text IN ('new format', 'old format')"
        )
        .await,
        2
    );
    assert_eq!(
        count(
            &stack,
            "SELECT COUNT(*) FROM participants WHERE handle IN ('+15551230001', '+15551230002')"
        )
        .await,
        2
    );
}

#[tokio::test]
async fn own_outbound_echoes_are_not_answered() {
    let stack = Stack::start().await;
    let secret = stack.sim.secret.clone();
    let mut own = received_2026(&uuid(), &uuid(), &uuid(), BOT_LINE, "I said this");
    own["data"]["direction"] = json!("outbound");
    own["data"]["sender_handle"]["is_me"] = json!(true);
    let body = serde_json::to_vec(&own).unwrap();
    let headers = signed_headers(&secret, &uuid(), now_unix(), &body);
    assert_eq!(post(&stack, &headers, body).await.0, 200);
    assert_eq!(
        count(&stack, "SELECT COUNT(*) FROM messages").await,
        0,
        "not even stored as inbound"
    );
    assert_eq!(count(&stack, "SELECT COUNT(*) FROM turns").await, 0);
}

#[tokio::test]
async fn health_and_frontend_log() {
    let stack = Stack::start().await;
    let http = &stack.sim.http;
    let health: Value = http
        .get(format!("{}/health", stack.daemon.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["db"]["ok"], true);
    // The echo agent runs nothing in chat workspaces, so there is nothing to isolate.
    assert_eq!(health["isolation"]["status"], "not-needed", "{health}");
    assert!(health["uptime_secs"].is_u64());
    assert!(health["counters"]["webhooks_accepted"].is_u64());

    let url = format!("{}/api/frontend-log", stack.daemon.base_url());
    let ok = http
        .post(&url)
        .json(&json!({"level": "error", "message": "boom"}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 204);
    let resp = http
        .post(&url)
        .header("x-request-id", "abc-123")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.headers()["x-request-id"], "abc-123");
    let big = http
        .post(&url)
        .body(vec![b'a'; 65 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), 413);
    let mut limited = false;
    for _ in 0..40 {
        let r = http
            .post(&url)
            .json(&json!({"message": "spam"}))
            .send()
            .await
            .unwrap();
        if r.status() == 429 {
            limited = true;
            break;
        }
    }
    assert!(limited, "the frontend log is rate-limited");
}

/// A webhook whose request is under way when the daemon is told to stop is still answered and
/// stored before the daemon's runtime ends (`DaemonHandle::run_until`, which `picortex serve`
/// stops through on SIGTERM): a stop must not cost Linq a failed delivery. The daemon runs on a
/// runtime of its own, dropped when `run_until` returns, as when the process exits.
#[tokio::test]
async fn a_webhook_in_flight_when_the_daemon_stops_is_answered_and_stored() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let sim = Sim::start(&format!("http://{addr}/api/linq/inbound")).await;
    let data = tempfile::tempdir().unwrap();
    let config = daemon_config(&sim, data.path());
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (stopped_tx, mut stopped_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let daemon = picortex::daemon::start(config, listener).await.unwrap();
            let _ = ready_tx.send(daemon.store.clone());
            daemon
                .run_until(async move {
                    let _ = stop_rx.await;
                })
                .await;
        });
        drop(runtime);
        let _ = stopped_tx.send(());
    });
    let store = ready_rx.await.unwrap();

    let event_id = uuid();
    let body = serde_json::to_vec(&received_2026(
        &event_id,
        &uuid(),
        &uuid(),
        "+15554300001",
        "sent as the daemon stops",
    ))
    .unwrap();
    let mut head = format!(
        "POST /api/linq/inbound HTTP/1.1\r\nhost: {addr}\r\ncontent-length: {}\r\nexpect: 100-continue\r\n",
        body.len()
    );
    for (name, value) in signed_headers(&sim.secret, &event_id, now_unix(), &body) {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(head.as_bytes()).await.unwrap();
    // The server says `100 Continue` when the handler starts reading the body: from here on
    // the request is in flight.
    let mut buf = [0u8; 256];
    let n = conn.read(&mut buf).await.unwrap();
    let interim = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(interim.starts_with("HTTP/1.1 100 Continue"), "{interim}");

    stop_tx.send(()).unwrap();
    // Stopping has begun once the daemon takes no new connections; it must then wait for the
    // request in flight rather than end (the wait here is long enough for a daemon that did
    // not wait to have ended; a daemon that waits passes however long it is).
    eventually(Duration::from_secs(10), "the listener to close", || async {
        tokio::net::TcpStream::connect(addr).await.err().map(|_| ())
    })
    .await;
    assert!(
        tokio::time::timeout(Duration::from_millis(500), &mut stopped_rx)
            .await
            .is_err(),
        "the daemon ended with a request in flight"
    );

    conn.write_all(&body).await.unwrap();
    let mut response = Vec::new();
    conn.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response).into_owned();
    let status_line = response.lines().next().unwrap_or_default().to_owned();
    assert_eq!(status_line, "HTTP/1.1 200 OK", "{response}");
    tokio::time::timeout(Duration::from_secs(30), stopped_rx)
        .await
        .expect("the daemon ends once the request is answered")
        .unwrap();
    let stored: i64 = store
        .read(move |c| {
            Ok(c.query_row(
                "SELECT COUNT(*) FROM webhook_events WHERE event_id = ?1",
                [&event_id],
                |r| r.get(0),
            )?)
        })
        .await
        .unwrap();
    assert_eq!(stored, 1);
    println!("PASS: a webhook in flight when the daemon stops is answered 200 and stored");
}
