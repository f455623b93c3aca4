//! Webhook delivery to a real axum receiver: signatures checked with `linq::webhook::verify`
//! for both payload versions (and the legacy header), payloads parsed with
//! `linq::events::parse_event`, ordering, retries, idempotency, filters and faults.

// Test helpers may unwrap: a panic here is a test failure, which is what we want.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{BOT, Hit, Receiver, TestSim, count, now_unix, wait_state};
use linq::events::{EventPayload, parse_event};
use linq::webhook::{self, WebhookSecret};
use serde_json::{Value, json};

fn text(v: &str) -> Value {
    json!({"parts": [{"type": "text", "value": v}]})
}

fn header<'a>(h: &'a Hit, name: &str) -> &'a str {
    h.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("missing header {name}"))
}

fn check_signed(h: &Hit, secret: &WebhookSecret, subscription_id: &str) {
    let ok = webhook::verify(secret, &h.headers, &h.body, now_unix())
        .unwrap_or_else(|e| panic!("{} does not verify: {e}", h.event_type()));
    let v = h.json();
    assert_eq!(
        ok.id,
        v["event_id"].as_str().unwrap(),
        "webhook-id = event_id"
    );
    let ts = header(h, "webhook-timestamp");
    assert_eq!(header(h, "x-webhook-timestamp"), ts);
    assert_eq!(
        header(h, "x-webhook-signature"),
        webhook::sign_legacy(secret, ts.parse().unwrap(), &h.body)
    );
    assert_eq!(
        header(h, "x-webhook-event"),
        v["event_type"].as_str().unwrap()
    );
    assert_eq!(header(h, "x-webhook-subscription-id"), subscription_id);
    assert_eq!(header(h, "content-type"), "application/json");
    assert_eq!(v["api_version"], "v3");
    assert_eq!(v["partner_id"], "sim-partner");
    assert_eq!(v["trace_id"].as_str().unwrap().len(), 32);
}

async fn subscription_id(sim: &TestSim, url: &str) -> String {
    let list = sim.get("/v3/webhook-subscriptions").await.body;
    list["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["target_url"] == url)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn deliveries_are_signed_and_versioned() {
    let rx = Receiver::start().await;
    let secret = WebhookSecret::generate();
    let url_new = format!("{}/new", rx.base);
    let sim = TestSim::with_webhook(&url_new, &secret).await;
    let url_old = format!("{}/old?version=2025-01-01", rx.base);
    let created = sim
        .post(
            "/v3/webhook-subscriptions",
            json!({"target_url": url_old, "subscribed_events": ["chat.created", "message.sent", "message.delivered", "message.read", "message.received", "message.edited", "reaction.added"]}),
        )
        .await;
    let old_secret =
        WebhookSecret::parse(created.body["signing_secret"].as_str().unwrap()).unwrap();
    let old_id = created.body["id"].as_str().unwrap().to_owned();
    let new_id = subscription_id(&sim, &url_new).await;

    let (chat, first) = sim.dm("+15550001111", "hello").await;
    let hits = rx
        .wait_for("read on both", |h| {
            h.iter()
                .filter(|x| x.event_type() == "message.read")
                .count()
                == 2
        })
        .await;
    let new: Vec<&Hit> = hits.iter().filter(|h| h.path == "/new").collect();
    let old: Vec<&Hit> = hits.iter().filter(|h| h.path.starts_with("/old")).collect();
    let types = |v: &[&Hit]| v.iter().map(|h| h.event_type()).collect::<Vec<_>>();
    let order = [
        "chat.created",
        "message.sent",
        "message.delivered",
        "message.read",
    ];
    assert_eq!(types(&new), order);
    assert_eq!(types(&old), order);
    for h in &new {
        check_signed(h, &secret, &new_id);
        assert_eq!(h.json()["webhook_version"], "2026-02-03");
        // The other subscription's secret does not verify it.
        assert!(webhook::verify(&old_secret, &h.headers, &h.body, now_unix()).is_err());
    }
    for h in &old {
        check_signed(h, &old_secret, &old_id);
        assert_eq!(h.json()["webhook_version"], "2025-01-01");
    }

    // Both versions parse into the same normalized event.
    let sent_new = parse_event(&new[1].body).unwrap();
    let sent_old = parse_event(&old[1].body).unwrap();
    for e in [&sent_new, &sent_old] {
        let EventPayload::Message { message, .. } = &e.payload else {
            panic!("not a message event: {e:?}");
        };
        assert_eq!(message.id, first);
        assert_eq!(message.chat_id, chat);
        assert!(message.is_own());
        assert!(message.sent_at.is_some() && message.delivered_at.is_none());
        assert_eq!(message.owner_handle.as_deref(), Some(BOT));
        assert_eq!(message.text(), "hello");
    }
    let created_event = parse_event(&new[0].body).unwrap();
    assert!(matches!(created_event.payload, EventPayload::ChatCreated(ref c) if c.id == chat));
    assert!(new[0].json()["data"].get("is_archived").is_none());
    let read = new[3].json();
    assert!(read["data"]["read_at"].is_string() && read["data"]["delivered_at"].is_string());
    let read_old = old[3].json();
    assert_eq!(read_old["data"]["message_id"], first.as_str());
    assert!(read_old["data"]["read_at"].is_string());
    assert_eq!(read_old["data"]["is_from_me"], true);
    assert_eq!(read_old["data"]["recipient_handle"], Value::Null);

    // Inbound, an edit and a reaction: message.edited only reaches 2026-02-03.
    let inbound = sim
        .admin(
            "/sim/inbound",
            json!({"from": "+15550001111", "text": "hi bot"}),
        )
        .await;
    assert_eq!(inbound.status, 200);
    assert_eq!(inbound.body["chat_id"], chat.as_str());
    sim.patch(
        &format!("/v3/messages/{first}"),
        json!({"text": "hello (edited)"}),
    )
    .await;
    sim.post(
        &format!("/v3/messages/{first}/reactions"),
        json!({"operation": "add", "type": "love"}),
    )
    .await;
    let hits = rx
        .wait_for("reactions on both", |h| count(h, "reaction.added") == 2)
        .await;
    let recv: Vec<&Hit> = hits
        .iter()
        .filter(|h| h.event_type() == "message.received")
        .collect();
    assert_eq!(recv.len(), 2);
    for h in &recv {
        let e = parse_event(&h.body).unwrap();
        let EventPayload::Message { message, .. } = e.payload else {
            panic!()
        };
        assert!(!message.is_own());
        assert_eq!(message.owner_handle.as_deref(), Some(BOT));
        assert_eq!(message.text(), "hi bot");
    }
    let edited: Vec<&Hit> = hits
        .iter()
        .filter(|h| h.event_type() == "message.edited")
        .collect();
    assert_eq!(edited.len(), 1);
    assert_eq!(edited[0].path, "/new");
    assert_eq!(
        edited[0].json()["data"]["part"],
        json!({"index": 0, "text": "hello (edited)"})
    );
    for h in hits.iter().filter(|h| h.event_type() == "reaction.added") {
        let d = h.json()["data"].clone();
        assert_eq!(d["is_from_me"], true);
        assert_eq!(d["reaction_type"], "love");
        assert_eq!(d["message_id"], first.as_str());
    }
}

#[tokio::test]
async fn human_reactions_typing_and_group_events() {
    let rx = Receiver::start().await;
    let secret = WebhookSecret::generate();
    let sim = TestSim::with_webhook(&format!("{}/h", rx.base), &secret).await;
    let a = sim
        .admin(
            "/sim/inbound",
            json!({"from": "+15550001111", "group": ["+15550002222", "+15550003333"], "text": "group hi"}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let group = a.body["chat_id"].as_str().unwrap().to_owned();
    let msg = a.body["message_id"].as_str().unwrap().to_owned();
    let r = sim
        .admin(
            "/sim/react",
            json!({"from": "+15550002222", "message_id": msg, "type": "laugh"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = sim
        .admin(
            "/sim/react",
            json!({"from": "+15550002222", "message_id": msg, "type": "laugh", "operation": "remove"}),
        )
        .await;
    assert_eq!(r.status, 200);
    sim.put(
        &format!("/v3/chats/{group}"),
        json!({"display_name": "Crew"}),
    )
    .await;
    sim.post(
        &format!("/v3/chats/{group}/participants"),
        json!({"handle": "+15550004444"}),
    )
    .await;
    let (dm, _) = sim.dm("+15550005555", "hey").await;
    let t = sim
        .admin(
            "/sim/typing",
            json!({"from": "+15550005555", "chat_id": dm, "started": true}),
        )
        .await;
    assert_eq!(t.status, 200);

    let hits = rx
        .wait_for("typing", |h| count(h, "chat.typing_indicator.started") == 1)
        .await;
    let types: Vec<String> = hits.iter().map(Hit::event_type).collect();
    for h in &hits {
        webhook::verify(&secret, &h.headers, &h.body, now_unix()).unwrap();
        parse_event(&h.body).unwrap();
    }
    assert_eq!(types[0], "chat.created");
    assert_eq!(types[1], "message.received");
    let added = hits
        .iter()
        .find(|h| h.event_type() == "reaction.added")
        .unwrap()
        .json();
    assert_eq!(added["data"]["is_from_me"], false);
    assert_eq!(added["data"]["from"], "+15550002222");
    assert_eq!(added["data"]["reaction_type"], "laugh");
    assert_eq!(count(&hits, "reaction.removed"), 1);
    let name = hits
        .iter()
        .find(|h| h.event_type() == "chat.group_name_updated")
        .unwrap()
        .json();
    assert_eq!(name["data"]["new_value"], "Crew");
    assert_eq!(name["data"]["changed_by_handle"]["handle"], BOT);
    let p = hits
        .iter()
        .find(|h| h.event_type() == "participant.added")
        .unwrap()
        .json();
    assert_eq!(p["data"]["handle"], "+15550004444");
    let typing = hits
        .iter()
        .find(|h| h.event_type() == "chat.typing_indicator.started")
        .unwrap()
        .json();
    assert_eq!(typing["data"], json!({"chat_id": dm}));
}

#[tokio::test]
async fn retries_on_5xx_and_429_then_succeeds() {
    let rx = Receiver::start().await;
    rx.respond_to("chat.created", &[500, 429, 503]);
    let secret = WebhookSecret::generate();
    let sim = TestSim::with_webhook(&format!("{}/r", rx.base), &secret).await;
    let started = Instant::now();
    sim.dm("+15550001111", "hello").await;
    let hits = rx
        .wait_for("four attempts of chat.created", |h| {
            h.iter()
                .filter(|x| x.event_type() == "chat.created")
                .count()
                == 4
        })
        .await;
    let attempts: Vec<&Hit> = hits
        .iter()
        .filter(|h| h.event_type() == "chat.created")
        .collect();
    assert_eq!(
        attempts.iter().map(|h| h.status).collect::<Vec<_>>(),
        vec![500, 429, 503, 200]
    );
    let ids: Vec<&str> = attempts.iter().map(|h| header(h, "webhook-id")).collect();
    assert!(
        ids.iter().all(|i| *i == ids[0]),
        "one event id across retries"
    );
    for h in &attempts {
        webhook::verify(&secret, &h.headers, &h.body, now_unix()).unwrap();
    }
    // Backoff 40 + 80 + 160 ms at least.
    assert!(started.elapsed() >= Duration::from_millis(280));
    // Later events were not blocked behind the retries for long, and all arrive.
    rx.wait_for("message.read", |h| count(h, "message.read") == 1)
        .await;
    let s = wait_state(&sim, "delivery log", |s| {
        s["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["event_type"] == "chat.created" && d["status"] == "delivered")
    })
    .await;
    let log: Vec<(String, i64)> = s["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["event_type"] == "chat.created")
        .map(|d| {
            (
                d["status"].as_str().unwrap().to_owned(),
                d["http_status"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        log,
        vec![
            ("delivered".to_owned(), 200),
            ("retrying".to_owned(), 503),
            ("retrying".to_owned(), 429),
            ("retrying".to_owned(), 500),
        ],
        "newest first"
    );
}

#[tokio::test]
async fn no_retry_on_other_4xx_and_network_errors_are_retried_then_given_up() {
    let rx = Receiver::start().await;
    rx.respond_to("chat.created", &[400]);
    let secret = WebhookSecret::generate();
    let sim = TestSim::with_webhook(&format!("{}/n", rx.base), &secret).await;
    sim.dm("+15550001111", "hello").await;
    rx.wait_for("message.read", |h| count(h, "message.read") == 1)
        .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(count(&rx.hits(), "chat.created"), 1, "a 400 is not retried");
    let s = sim.state().await;
    let failed = s["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["event_type"] == "chat.created")
        .unwrap()
        .clone();
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["http_status"], 400);

    // A closed port: retried with backoff, then given up after max_attempts (4).
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let c = sim
        .post(
            "/v3/webhook-subscriptions",
            json!({"target_url": format!("http://{closed}/x"), "subscribed_events": ["message.received"]}),
        )
        .await;
    assert_eq!(c.status, 201);
    sim.admin(
        "/sim/inbound",
        json!({"from": "+15550001111", "text": "ping"}),
    )
    .await;
    let s = wait_state(&sim, "given up", |s| {
        s["deliveries"].as_array().unwrap().iter().any(|d| {
            d["target_url"]
                .as_str()
                .unwrap()
                .contains(&closed.to_string())
                && d["status"] == "failed"
        })
    })
    .await;
    let attempts: Vec<&Value> = s["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| {
            d["target_url"]
                .as_str()
                .unwrap()
                .contains(&closed.to_string())
        })
        .collect();
    assert_eq!(attempts.len(), 4);
    assert!(attempts.iter().all(|d| d["http_status"].is_null()));
    assert!(attempts[0]["error"].as_str().unwrap().contains("gave up"));
}

#[tokio::test]
async fn idempotent_send_produces_one_message_sent() {
    let rx = Receiver::start().await;
    let secret = WebhookSecret::generate();
    let sim = TestSim::with_webhook(&format!("{}/i", rx.base), &secret).await;
    let (chat, _) = sim.dm("+15550001111", "hello").await;
    let body = json!({"message": {"parts": [{"type": "text", "value": "exactly once"}], "idempotency_key": "outbox-42"}});
    let a = sim
        .post(&format!("/v3/chats/{chat}/messages"), body.clone())
        .await;
    let b = sim
        .post(&format!("/v3/chats/{chat}/messages"), body.clone())
        .await;
    let id = a.body["message"]["id"].as_str().unwrap().to_owned();
    assert_eq!(b.body["message"]["id"], id.as_str());
    rx.wait_for("two reads", |h| count(h, "message.read") == 2)
        .await;
    let c = sim.post(&format!("/v3/chats/{chat}/messages"), body).await;
    assert_eq!(c.body, a.body);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let hits = rx.hits();
    assert_eq!(
        count(&hits, "message.sent"),
        2,
        "the first message and the keyed one"
    );
    let keyed: Vec<Value> = hits
        .iter()
        .filter(|h| h.event_type() == "message.sent")
        .map(Hit::json)
        .filter(|v| v["data"]["id"] == id.as_str())
        .collect();
    assert_eq!(keyed.len(), 1);
    assert_eq!(keyed[0]["data"]["idempotency_key"], "outbox-42");
    let list = sim.get(&format!("/v3/chats/{chat}/messages")).await;
    assert_eq!(list.body["messages"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn error_rate_faults_answer_500_before_doing_anything() {
    let sim = TestSim::start().await;
    let f = sim
        .send(
            reqwest::Method::PUT,
            "/sim/faults",
            Some(r#"{"error_rate": 1.0}"#),
            None,
        )
        .await;
    assert_eq!(f.status, 200);
    assert_eq!(f.body["error_rate"], 1.0);
    let a = sim
        .post(
            "/v3/chats",
            json!({"from": BOT, "to": ["+15550001111"], "message": text("x")}),
        )
        .await;
    assert_eq!((a.status, a.code()), (500, 3006));
    assert_eq!(a.body["success"], false);
    assert_eq!(
        a.body["trace_id"],
        a.headers["x-trace-id"].to_str().unwrap()
    );
    // Even an unauthenticated request gets the injected 500 first.
    let a = sim
        .send(reqwest::Method::GET, "/v3/chats", None, None)
        .await;
    assert_eq!(a.status, 500);
    // The admin API is not affected, and nothing was created.
    let s = sim.state().await;
    assert_eq!(s["chats"], json!([]));
    assert_eq!(s["faults"]["error_rate"], 1.0);

    let f = sim
        .send(
            reqwest::Method::PUT,
            "/sim/faults",
            Some(r#"{"error_rate": 0, "latency_ms": 150}"#),
            None,
        )
        .await;
    assert_eq!(f.body["latency_ms"], 150);
    let t = Instant::now();
    assert_eq!(sim.get("/v3/chats").await.status, 200);
    assert!(t.elapsed() >= Duration::from_millis(150));

    for bad in [
        r#"{"error_rate": 1.5}"#,
        r#"{"duplicate_rate": -0.1}"#,
        r#"{"latency_ms": -1}"#,
        r#"{"reorder": "yes"}"#,
        "{",
    ] {
        let a = sim
            .send(reqwest::Method::PUT, "/sim/faults", Some(bad), None)
            .await;
        assert_eq!(a.status, 400, "{bad}");
    }
    let got = sim
        .send(reqwest::Method::GET, "/sim/faults", None, None)
        .await;
    assert_eq!(
        got.body,
        json!({"error_rate": 0.0, "latency_ms": 150, "duplicate_rate": 0.0, "delay_ms": 0, "reorder": false})
    );
}

#[tokio::test]
async fn duplicate_delay_and_reorder_faults() {
    let rx = Receiver::start().await;
    let secret = WebhookSecret::generate();
    let sim = TestSim::with_webhook(&format!("{}/d", rx.base), &secret).await;
    sim.send(
        reqwest::Method::PUT,
        "/sim/faults",
        Some(r#"{"duplicate_rate": 1.0}"#),
        None,
    )
    .await;
    sim.admin(
        "/sim/inbound",
        json!({"from": "+15550001111", "text": "dup"}),
    )
    .await;
    let hits = rx
        .wait_for("two copies of message.received", |h| {
            count(h, "message.received") == 2
        })
        .await;
    let copies: Vec<&Hit> = hits
        .iter()
        .filter(|h| h.event_type() == "message.received")
        .collect();
    assert_eq!(
        header(copies[0], "webhook-id"),
        header(copies[1], "webhook-id")
    );
    assert_eq!(copies[0].body, copies[1].body);
    for h in &copies {
        webhook::verify(&secret, &h.headers, &h.body, now_unix()).unwrap();
    }

    // delay_ms holds deliveries back.
    sim.send(
        reqwest::Method::PUT,
        "/sim/faults",
        Some(r#"{"duplicate_rate": 0, "delay_ms": 300}"#),
        None,
    )
    .await;
    let before = rx.hits().len();
    let t = Instant::now();
    sim.admin(
        "/sim/inbound",
        json!({"from": "+15550001111", "text": "late"}),
    )
    .await;
    rx.wait_for("the late one", |h| h.len() == before + 1).await;
    assert!(t.elapsed() >= Duration::from_millis(300));

    // reorder: everything still arrives exactly once.
    sim.send(
        reqwest::Method::PUT,
        "/sim/faults",
        Some(r#"{"delay_ms": 0, "reorder": true}"#),
        None,
    )
    .await;
    let before = rx.hits().len();
    let mut ids = Vec::new();
    for i in 0..8 {
        let a = sim
            .admin(
                "/sim/inbound",
                json!({"from": "+15550001111", "text": format!("r{i}")}),
            )
            .await;
        ids.push(a.body["message_id"].as_str().unwrap().to_owned());
    }
    let hits = rx.wait_for("eight more", |h| h.len() == before + 8).await;
    let mut got: Vec<String> = hits[before..]
        .iter()
        .map(|h| h.json()["data"]["id"].as_str().unwrap().to_owned())
        .collect();
    got.sort();
    ids.sort();
    assert_eq!(got, ids);
}

#[tokio::test]
async fn subscription_filters_and_deletion() {
    let rx = Receiver::start().await;
    let sim = TestSim::start().await;
    let mk = |path: &str, body: Value| {
        let mut b = body;
        b["target_url"] = json!(format!("{}{path}", rx.base));
        b
    };
    let only_received = sim
        .post(
            "/v3/webhook-subscriptions",
            mk(
                "/only-received",
                json!({"subscribed_events": ["message.received"]}),
            ),
        )
        .await;
    sim.post(
        "/v3/webhook-subscriptions",
        mk(
            "/other-line",
            json!({"subscribed_events": ["message.received"], "phone_numbers": ["+19995550000"]}),
        ),
    )
    .await;
    sim.post(
        "/v3/webhook-subscriptions",
        mk(
            "/our-line",
            json!({"subscribed_events": ["message.received"], "phone_numbers": [BOT]}),
        ),
    )
    .await;
    let inactive = sim
        .post(
            "/v3/webhook-subscriptions",
            mk(
                "/inactive",
                json!({"subscribed_events": ["message.received"]}),
            ),
        )
        .await;
    let inactive_id = inactive.body["id"].as_str().unwrap();
    sim.put(
        &format!("/v3/webhook-subscriptions/{inactive_id}"),
        json!({"is_active": false}),
    )
    .await;

    sim.dm("+15550001111", "outbound first").await;
    sim.admin(
        "/sim/inbound",
        json!({"from": "+15550001111", "text": "in"}),
    )
    .await;
    let hits = rx
        .wait_for("two received", |h| count(h, "message.received") == 2)
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let hits_now = rx.hits();
    assert_eq!(hits_now.len(), hits.len(), "nothing else arrives");
    let mut paths: Vec<&str> = hits.iter().map(|h| h.path.as_str()).collect();
    paths.sort();
    assert_eq!(paths, vec!["/only-received", "/our-line"]);

    let id = only_received.body["id"].as_str().unwrap();
    assert_eq!(
        sim.delete(&format!("/v3/webhook-subscriptions/{id}"), None)
            .await
            .status,
        204
    );
    sim.admin(
        "/sim/inbound",
        json!({"from": "+15550001111", "text": "again"}),
    )
    .await;
    rx.wait_for("our-line again", |h| {
        h.iter().filter(|x| x.path == "/our-line").count() == 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        rx.hits()
            .iter()
            .filter(|h| h.path == "/only-received")
            .count(),
        1
    );
}
