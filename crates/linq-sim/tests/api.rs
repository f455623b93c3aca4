//! v3 round trips over real HTTP: status codes, the error body and `X-Trace-ID`, both base
//! paths, validation codes, pagination, and every resource family.

// Test helpers may unwrap: a panic here is a test failure, which is what we want.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{BOT, KEY, TestSim};
use serde_json::{Value, json};

fn text(v: &str) -> Value {
    json!({"parts": [{"type": "text", "value": v}]})
}

#[tokio::test]
async fn errors_have_the_linq_body_trace_header_and_json_type() {
    let sim = TestSim::start().await;
    let a = sim
        .get("/v3/chats/00000000-0000-4000-8000-000000000000")
        .await;
    assert_eq!(a.status, 404);
    assert_eq!(a.code(), 2001);
    assert_eq!(a.body["success"], false);
    assert_eq!(a.body["error"]["status"], 404);
    assert_eq!(
        a.body["error"]["doc_url"],
        "https://docs.linqapp.com/error/codes/2xxx/2001/"
    );
    let trace = a.headers["x-trace-id"].to_str().unwrap();
    assert_eq!(trace.len(), 32);
    assert_eq!(a.body["trace_id"], trace);
    assert_eq!(a.headers["content-type"], "application/json");

    // Success answers carry a trace id too.
    let ok = sim.get("/v3/phone_numbers").await;
    assert_eq!(ok.status, 200);
    assert!(ok.headers.contains_key("x-trace-id"));
    assert_eq!(ok.headers["content-type"], "application/json");

    // Unknown routes and wrong methods are JSON errors as well.
    let a = sim.get("/v3/nope").await;
    assert_eq!(a.status, 404);
    assert_eq!(a.body["success"], false);
    let a = sim
        .send(reqwest::Method::PATCH, "/v3/chats", Some("{}"), Some(KEY))
        .await;
    assert_eq!(a.status, 405);
    assert_eq!(a.body["error"]["status"], 405);
}

#[tokio::test]
async fn bearer_auth_is_required_on_both_base_paths() {
    let sim = TestSim::start().await;
    for base in ["/v3", "/api/partner/v3"] {
        let path = format!("{base}/phone_numbers");
        let none = sim.send(reqwest::Method::GET, &path, None, None).await;
        assert_eq!(none.status, 401);
        assert_eq!(none.code(), 2004);
        let bad = sim
            .send(reqwest::Method::GET, &path, None, Some("nope"))
            .await;
        assert_eq!(bad.status, 401);
        assert_eq!(bad.code(), 2004);
        let good = sim.get(&path).await;
        assert_eq!(good.status, 200);
        assert_eq!(good.body["phone_numbers"][0]["phone_number"], BOT);
    }
    // Both base paths see the same state.
    let (chat, _) = sim.dm("+15550001111", "hi").await;
    let a = sim.get(&format!("/api/partner/v3/chats/{chat}")).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["id"], chat);
}

#[tokio::test]
async fn create_chat_validation_codes() {
    let sim = TestSim::start().await;
    let cases = [
        ("{", 400, 1003),
        ("[1]", 400, 1003),
        (
            r#"{"to":["+15550001111"],"message":{"parts":[{"type":"text","value":"x"}]}}"#,
            400,
            1001,
        ),
        (
            r#"{"from":"12025550100","to":["+15550001111"],"message":{"parts":[{"type":"text","value":"x"}]}}"#,
            400,
            1002,
        ),
        (
            r#"{"from":"+12025550100","to":["555-1234"],"message":{"parts":[{"type":"text","value":"x"}]}}"#,
            400,
            1002,
        ),
        (
            r#"{"from":"+12025550100","to":["+15550001111"]}"#,
            400,
            1001,
        ),
        (
            r#"{"from":"+12025550100","to":["+15550001111"],"message":{"parts":[]}}"#,
            400,
            1004,
        ),
        (
            r#"{"from":"+12025550100","to":["+15550001111"],"message":{"parts":[{"type":"text","value":"a"},{"type":"text","value":"b"}]}}"#,
            400,
            1004,
        ),
        (
            r#"{"from":"+12025550100","to":["+15550001111"],"message":{"parts":[{"type":"link","value":"https://a.b"},{"type":"media","url":"https://a.b/c.png"}]}}"#,
            400,
            1004,
        ),
        (
            r#"{"from":"+12025550100","to":["+15550001111"],"message":{"parts":[{"type":"link","value":"https://a.b"}]}}"#,
            400,
            1005,
        ),
        (
            r#"{"from":"+12025550100","to":["+15550001111"],"message":{"parts":[{"type":"text","value":"go to https://x.y"}]}}"#,
            400,
            1005,
        ),
        (
            r#"{"from":"+12025550100","to":["+15550001111"],"message":{"parts":[{"type":"text","value":"x"}],"effect":{"type":"screen","name":"nope"}}}"#,
            400,
            1005,
        ),
        (
            r#"{"from":"+12025559999","to":["+15550001111"],"message":{"parts":[{"type":"text","value":"x"}]}}"#,
            403,
            2006,
        ),
        (
            r#"{"from":"+12025550100","to":["+15550001111"],"message":{"parts":[{"type":"media","attachment_id":"00000000-0000-4000-8000-000000000000"}]}}"#,
            404,
            2003,
        ),
    ];
    for (body, status, code) in cases {
        let a = sim
            .send(reqwest::Method::POST, "/v3/chats", Some(body), Some(KEY))
            .await;
        assert_eq!((a.status, a.code()), (status, code), "{body} -> {}", a.body);
        assert!(a.body["error"]["message"].as_str().unwrap().len() > 5);
    }
    // Nothing was created by the failures.
    assert_eq!(sim.get("/v3/chats").await.body["chats"], json!([]));
}

#[tokio::test]
async fn chats_create_get_list_filters_and_dedupe() {
    let sim = TestSim::start().await;
    let a = sim
        .post(
            "/v3/chats",
            json!({"from": BOT, "to": ["+15550001111"], "message": {"parts": [{"type":"text","value":"hello"}], "effect": {"screen_effect": "confetti"}}}),
        )
        .await;
    assert_eq!(a.status, 201);
    let chat = &a.body["chat"];
    assert_eq!(chat["is_group"], false);
    assert_eq!(chat["service"], "iMessage");
    assert_eq!(chat["health_status"]["status"], "HEALTHY");
    let handles = chat["handles"].as_array().unwrap();
    assert_eq!(handles.len(), 2);
    assert!(
        handles
            .iter()
            .any(|h| h["handle"] == BOT && h["is_me"] == true)
    );
    let msg = &chat["message"];
    assert_eq!(msg["delivery_status"], "queued");
    assert_eq!(msg["sent_at"], Value::Null);
    assert_eq!(msg["from_handle"]["is_me"], true);
    assert_eq!(msg["effect"], json!({"type": "screen", "name": "confetti"}));
    assert_eq!(msg["parts"][0]["reactions"], Value::Null);
    let chat_id = chat["id"].as_str().unwrap().to_owned();
    uuid::Uuid::parse_str(&chat_id).unwrap();

    // The same participant set reuses the chat.
    let again = sim
        .post(
            "/v3/chats",
            json!({"from": BOT, "to": ["+15550001111"], "message": text("again")}),
        )
        .await;
    assert_eq!(again.body["chat"]["id"], chat_id.as_str());

    let group = sim
        .post(
            "/v3/chats",
            json!({"from": BOT, "to": ["+15550002222", "friend@example.com"], "message": text("group")}),
        )
        .await;
    assert_eq!(group.status, 201);
    assert_eq!(group.body["chat"]["is_group"], true);
    assert_eq!(group.body["chat"]["handles"].as_array().unwrap().len(), 3);

    let got = sim.get(&format!("/v3/chats/{chat_id}")).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body["display_name"], format!("{BOT}, +15550001111"));
    assert_eq!(got.body["is_archived"], false);

    let all = sim.get("/v3/chats").await;
    assert_eq!(all.body["chats"].as_array().unwrap().len(), 2);
    assert_eq!(all.body["next_cursor"], Value::Null);
    // Most recent activity first.
    assert_eq!(all.body["chats"][0]["id"], group.body["chat"]["id"]);
    let to = sim.get("/v3/chats?to=%2B15550001111").await;
    assert_eq!(to.body["chats"].as_array().unwrap().len(), 1);
    let from = sim.get("/v3/chats?from=%2B19995550000").await;
    assert_eq!(from.body["chats"], json!([]));
    let bad = sim.get("/v3/chats?from=12345").await;
    assert_eq!((bad.status, bad.code()), (400, 1002));
    let bad = sim.get("/v3/chats?limit=0").await;
    assert_eq!(bad.status, 400);
    let bad = sim.get("/v3/chats?cursor=garbage").await;
    assert_eq!(bad.status, 400);
}

#[tokio::test]
async fn cursor_pagination_for_chats_messages_and_thread() {
    let sim = TestSim::start().await;
    for i in 0..5 {
        sim.dm(&format!("+1555000{i:04}"), "hello").await;
    }
    let mut seen = HashSet::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let q = match &cursor {
            Some(c) => format!("/v3/chats?limit=2&cursor={c}"),
            None => "/v3/chats?limit=2".to_owned(),
        };
        let a = sim.get(&q).await;
        assert_eq!(a.status, 200);
        pages += 1;
        for c in a.body["chats"].as_array().unwrap() {
            assert!(seen.insert(c["id"].as_str().unwrap().to_owned()));
        }
        match a.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!((seen.len(), pages), (5, 3));

    let (chat, first) = sim.dm("+15559990000", "root").await;
    let mut ids = vec![first.clone()];
    for i in 0..6 {
        let a = sim
            .post(
                &format!("/v3/chats/{chat}/messages"),
                json!({"message": {"parts": [{"type":"text","value": format!("m{i}")}], "reply_to": {"message_id": first}}}),
            )
            .await;
        assert_eq!(a.status, 202);
        ids.push(a.body["message"]["id"].as_str().unwrap().to_owned());
    }
    // Newest first, three pages of 3, 3, 1.
    let p1 = sim.get(&format!("/v3/chats/{chat}/messages?limit=3")).await;
    let got: Vec<&str> = p1.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, vec![ids[6].as_str(), ids[5].as_str(), ids[4].as_str()]);
    let c = p1.body["next_cursor"].as_str().unwrap();
    let p2 = sim
        .get(&format!("/v3/chats/{chat}/messages?limit=3&cursor={c}"))
        .await;
    let c = p2.body["next_cursor"].as_str().unwrap();
    let p3 = sim
        .get(&format!("/v3/chats/{chat}/messages?limit=3&cursor={c}"))
        .await;
    assert_eq!(p3.body["messages"].as_array().unwrap().len(), 1);
    assert_eq!(p3.body["messages"][0]["id"], first.as_str());
    assert_eq!(p3.body["next_cursor"], Value::Null);

    // Thread: ascending by default, from any message of the thread.
    let t = sim
        .get(&format!("/v3/messages/{}/thread?limit=4", ids[3]))
        .await;
    assert_eq!(t.status, 200);
    assert_eq!(t.body["messages"][0]["id"], first.as_str());
    assert_eq!(t.body["messages"].as_array().unwrap().len(), 4);
    let c = t.body["next_cursor"].as_str().unwrap();
    let t2 = sim
        .get(&format!(
            "/v3/messages/{}/thread?limit=4&cursor={c}",
            ids[3]
        ))
        .await;
    assert_eq!(t2.body["messages"].as_array().unwrap().len(), 3);
    let d = sim
        .get(&format!("/v3/messages/{first}/thread?order=desc&limit=1"))
        .await;
    assert_eq!(d.body["messages"][0]["id"], ids[6].as_str());
    let bad = sim
        .get(&format!("/v3/messages/{first}/thread?order=sideways"))
        .await;
    assert_eq!(bad.status, 400);
}

#[tokio::test]
async fn messages_get_edit_delete_and_lifecycle() {
    let sim = TestSim::start_with(None, Duration::from_millis(40)).await;
    let (chat, first) = sim.dm("+15550001111", "hello").await;
    let m = sim.get(&format!("/v3/messages/{first}")).await;
    assert_eq!(m.status, 200);
    assert_eq!(m.body["chat_id"], chat.as_str());
    assert_eq!(m.body["is_from_me"], true);
    assert_eq!(m.body["from"], BOT);

    // The status moves queued -> sent -> delivered -> read.
    let mut seen = vec![];
    for _ in 0..400 {
        let s = sim.get(&format!("/v3/messages/{first}")).await.body["delivery_status"]
            .as_str()
            .unwrap()
            .to_owned();
        if seen.last() != Some(&s) {
            seen.push(s.clone());
        }
        if s == "read" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(seen.last().map(String::as_str), Some("read"), "{seen:?}");
    assert!(seen.len() >= 2, "{seen:?}");
    let m = sim.get(&format!("/v3/messages/{first}")).await.body;
    assert!(m["sent_at"].is_string() && m["delivered_at"].is_string() && m["read_at"].is_string());
    assert_eq!(
        (m["is_delivered"].clone(), m["is_read"].clone()),
        (json!(true), json!(true))
    );

    // Edits: five allowed, the sixth refused; a missing text is 1001.
    for i in 0..5 {
        let e = sim
            .patch(
                &format!("/v3/messages/{first}"),
                json!({"text": format!("edit {i}")}),
            )
            .await;
        assert_eq!(e.status, 200, "{}", e.body);
        assert_eq!(e.body["parts"][0]["value"], format!("edit {i}"));
    }
    let e = sim
        .patch(&format!("/v3/messages/{first}"), json!({"text": "six"}))
        .await;
    assert_eq!(e.status, 400);
    let e = sim.patch(&format!("/v3/messages/{first}"), json!({})).await;
    assert_eq!((e.status, e.code()), (400, 1001));
    let e = sim
        .patch(
            &format!("/v3/messages/{first}"),
            json!({"text": "x", "part_index": 3}),
        )
        .await;
    assert_eq!(e.status, 400);

    // Delete (an optional body is accepted), then it is gone.
    let d = sim
        .delete(
            &format!("/v3/messages/{first}"),
            Some(json!({"chat_id": chat})),
        )
        .await;
    assert_eq!(d.status, 204);
    assert_eq!(d.body, Value::Null);
    let g = sim.get(&format!("/v3/messages/{first}")).await;
    assert_eq!((g.status, g.code()), (404, 2002));
    let g = sim
        .get("/v3/messages/00000000-0000-4000-8000-000000000000")
        .await;
    assert_eq!((g.status, g.code()), (404, 2002));
}

#[tokio::test]
async fn send_validation_and_reply_to() {
    let sim = TestSim::start().await;
    let (chat, first) = sim.dm("+15550001111", "hello").await;
    let (other_chat, other_msg) = sim.dm("+15550002222", "hello").await;
    let path = format!("/v3/chats/{chat}/messages");

    let ok = sim
        .post(
            &path,
            json!({"message": {"parts": [{"type":"link","value":"https://example.com"}]}}),
        )
        .await;
    assert_eq!(ok.status, 202, "links are fine after the first message");
    let bad = sim
        .post(&path, json!({"message": {"parts": [{"type":"text","value":"x"}], "reply_to": {"message_id": other_msg}}}))
        .await;
    assert_eq!(bad.status, 400);
    let bad = sim
        .post(&path, json!({"message": {"parts": [{"type":"text","value":"x"}], "reply_to": {"message_id": "00000000-0000-4000-8000-000000000000"}}}))
        .await;
    assert_eq!((bad.status, bad.code()), (404, 2002));
    let bad = sim
        .post(&path, json!({"message": {"parts": [{"type":"text","value":"x"}], "reply_to": {"message_id": first, "part_index": 9}}}))
        .await;
    assert_eq!(bad.status, 400);
    let bad = sim.post(&path, json!({})).await;
    assert_eq!((bad.status, bad.code()), (400, 1001));
    let bad = sim
        .post(&path, json!({"message": {"parts": [{"type":"hologram"}]}}))
        .await;
    assert_eq!((bad.status, bad.code()), (400, 1004));
    let bad = sim
        .post(&path, json!({"message": {"parts": [{"type":"media","url":"https://x/y.png","attachment_id":"a"}]}}))
        .await;
    assert_eq!(bad.status, 400);
    let unknown = sim
        .post(
            "/v3/chats/00000000-0000-4000-8000-000000000000/messages",
            json!({"message": text("x")}),
        )
        .await;
    assert_eq!((unknown.status, unknown.code()), (404, 2001));
    let ok = sim
        .post(&path, json!({"message": {"parts": [{"type":"text","value":"re"}], "reply_to": {"message_id": first}}}))
        .await;
    assert_eq!(ok.status, 202);
    assert_eq!(ok.body["chat_id"], chat.as_str());
    assert_eq!(
        ok.body["message"]["reply_to"],
        json!({"message_id": first, "part_index": 0})
    );
    let _ = other_chat;
}

#[tokio::test]
async fn idempotency_keys_return_the_original_answer() {
    let sim = TestSim::start().await;
    let (chat, _) = sim.dm("+15550001111", "hello").await;
    let body =
        json!({"message": {"parts": [{"type":"text","value":"once"}], "idempotency_key": "k-1"}});
    let a = sim
        .post(&format!("/v3/chats/{chat}/messages"), body.clone())
        .await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    let b = sim.post(&format!("/v3/chats/{chat}/messages"), body).await;
    assert_eq!((a.status, b.status), (202, 202));
    assert_eq!(a.body, b.body, "same status and body");

    // POST /v3/messages: the header works, and so does the body key.
    let mk = |key_in_body: bool| {
        let mut message = json!({"parts": [{"type":"text","value":"via create"}]});
        if key_in_body {
            message["idempotency_key"] = json!("body-key");
        }
        json!({"to": ["+15550001111"], "message": message}).to_string()
    };
    let send = |body: String, header: Option<&'static str>| {
        let mut req = sim
            .http
            .post(sim.url("/v3/messages"))
            .bearer_auth(KEY)
            .header("content-type", "application/json")
            .body(body);
        if let Some(h) = header {
            req = req.header("Idempotency-Key", h);
        }
        async move {
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (s1, x) = send(mk(false), Some("hdr-key")).await;
    let (s2, y) = send(mk(false), Some("hdr-key")).await;
    assert_eq!((s1, s2), (202, 202));
    assert_eq!(x, y);
    assert_eq!(x["chat_id"], chat.as_str());
    assert_eq!(x["created_new_chat"], false);
    assert_eq!(x["from_selection"]["reason"], "reused_active_chat");
    let (_, p) = send(mk(true), None).await;
    let (_, q) = send(mk(true), None).await;
    assert_eq!(p["message"]["id"], q["message"]["id"]);
    assert_ne!(p["message"]["id"], x["message"]["id"]);

    // A new recipient through POST /v3/messages makes a new chat.
    let (s, n) = send(
        json!({"to": ["+15550003333"], "message": text("new")}).to_string(),
        None,
    )
    .await;
    assert_eq!(s, 202);
    assert_eq!(n["created_new_chat"], true);
    assert_eq!(n["from"], BOT);
    assert_eq!(n["from_selection"]["reason"], "new_best_number");
    assert_eq!(n["previous_chat_id"], Value::Null);

    // Only the distinct sends were stored.
    let list = sim.get(&format!("/v3/chats/{chat}/messages")).await;
    assert_eq!(list.body["messages"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn typing_read_update_leave_participants_and_location() {
    let sim = TestSim::start().await;
    let (dm, _) = sim.dm("+15550001111", "hello").await;
    let a = sim.post_empty(&format!("/v3/chats/{dm}/typing")).await;
    assert_eq!(a.status, 204);
    let s = sim.state().await;
    assert_eq!(s["chats"][0]["bot_typing"], true);
    let a = sim.delete(&format!("/v3/chats/{dm}/typing"), None).await;
    assert_eq!(a.status, 204);
    assert_eq!(
        sim.post_empty(&format!("/v3/chats/{dm}/read")).await.status,
        204
    );
    assert_eq!(
        sim.post_empty(&format!("/v3/chats/{dm}/share_contact_card"))
            .await
            .status,
        204
    );
    let upd = sim
        .put(&format!("/v3/chats/{dm}"), json!({"display_name": "x"}))
        .await;
    assert_eq!((upd.status, upd.code()), (409, 1006));
    let loc = sim
        .post_empty(&format!("/v3/chats/{dm}/location/request"))
        .await;
    assert_eq!(loc.status, 200);
    assert_eq!(loc.body["success"], true);
    let loc = sim.get(&format!("/v3/chats/{dm}/location")).await;
    assert_eq!(loc.body["data"]["type"], "FeatureCollection");
    assert_eq!(
        loc.body["data"]["features"][0]["properties"]["handle"],
        "+15550001111"
    );

    let g = sim
        .post(
            "/v3/chats",
            json!({"from": BOT, "to": ["+15550002222", "+15550003333"], "message": text("hi all")}),
        )
        .await;
    let group = g.body["chat"]["id"].as_str().unwrap().to_owned();
    let t = sim.post_empty(&format!("/v3/chats/{group}/typing")).await;
    assert_eq!(t.status, 403);
    assert_eq!(t.body["error"]["status"], 403);
    let loc = sim
        .post_empty(&format!("/v3/chats/{group}/location/request"))
        .await;
    assert_eq!(loc.status, 409);
    let upd = sim
        .put(
            &format!("/v3/chats/{group}"),
            json!({"display_name": "Crew", "group_chat_icon": "https://example.com/i.png"}),
        )
        .await;
    assert_eq!(upd.status, 200);
    assert_eq!(upd.body, json!({"chat_id": group, "status": "accepted"}));
    let got = sim.get(&format!("/v3/chats/{group}")).await;
    assert_eq!(got.body["display_name"], "Crew");
    assert_eq!(got.body["group_chat_icon"], "https://example.com/i.png");
    let upd = sim.put(&format!("/v3/chats/{group}"), json!({})).await;
    assert_eq!((upd.status, upd.code()), (400, 1001));

    // Leaving needs four active members.
    let l = sim.post_empty(&format!("/v3/chats/{group}/leave")).await;
    assert_eq!(l.status, 400);
    let add = sim
        .post(
            &format!("/v3/chats/{group}/participants"),
            json!({"handle": "+15550004444"}),
        )
        .await;
    assert_eq!(add.status, 202);
    assert_eq!(add.body["message"], "Participant addition queued");
    assert_eq!(add.body["status"], "accepted");
    assert_eq!(
        add.body["trace_id"],
        add.headers["x-trace-id"].to_str().unwrap()
    );
    let dup = sim
        .post(
            &format!("/v3/chats/{group}/participants"),
            json!({"handle": "+15550004444"}),
        )
        .await;
    assert_eq!(dup.status, 400);
    let bad = sim
        .post(
            &format!("/v3/chats/{group}/participants"),
            json!({"handle": "nope"}),
        )
        .await;
    assert_eq!((bad.status, bad.code()), (400, 1002));
    let rm = sim
        .delete(
            &format!("/v3/chats/{group}/participants"),
            Some(json!({"handle": "+15550004444"})),
        )
        .await;
    assert_eq!(rm.status, 202);
    assert_eq!(rm.body["message"], "Participant removal queued");
    let rm = sim
        .delete(
            &format!("/v3/chats/{group}/participants"),
            Some(json!({"handle": "+15550003333"})),
        )
        .await;
    assert_eq!(rm.status, 400, "a group keeps at least three members");
    sim.post(
        &format!("/v3/chats/{group}/participants"),
        json!({"handle": "+15550005555"}),
    )
    .await;
    let l = sim.post_empty(&format!("/v3/chats/{group}/leave")).await;
    assert_eq!(l.status, 202);
    assert_eq!(l.body["status"], "accepted");

    // After leaving, the chat's actions answer 409 / 2013; reads still work.
    for a in [
        sim.post(
            &format!("/v3/chats/{group}/messages"),
            json!({"message": text("x")}),
        )
        .await,
        sim.put(&format!("/v3/chats/{group}"), json!({"display_name": "y"}))
            .await,
        sim.post_empty(&format!("/v3/chats/{group}/read")).await,
        sim.post_empty(&format!("/v3/chats/{group}/leave")).await,
    ] {
        assert_eq!((a.status, a.code()), (409, 2013), "{}", a.body);
    }
    assert_eq!(sim.get(&format!("/v3/chats/{group}")).await.status, 200);
    let me = sim.get(&format!("/v3/chats/{group}")).await.body["handles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["is_me"] == true)
        .cloned()
        .unwrap();
    assert_eq!(me["status"], "left");
    assert!(me["left_at"].is_string());
}

#[tokio::test]
async fn reactions_by_the_bot() {
    let sim = TestSim::start().await;
    let (_, msg) = sim.dm("+15550001111", "hello").await;
    let path = format!("/v3/messages/{msg}/reactions");
    let a = sim
        .post(&path, json!({"operation": "add", "type": "like"}))
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["status"], "accepted");
    let m = sim.get(&format!("/v3/messages/{msg}")).await.body;
    assert_eq!(m["parts"][0]["reactions"][0]["type"], "like");
    assert_eq!(m["parts"][0]["reactions"][0]["is_me"], true);
    assert_eq!(m["parts"][0]["reactions"][0]["handle"]["handle"], BOT);
    // A new tapback replaces the old one.
    sim.post(
        &path,
        json!({"operation": "add", "type": "custom", "custom_emoji": "🔥"}),
    )
    .await;
    let m = sim.get(&format!("/v3/messages/{msg}")).await.body;
    assert_eq!(m["parts"][0]["reactions"].as_array().unwrap().len(), 1);
    assert_eq!(m["parts"][0]["reactions"][0]["custom_emoji"], "🔥");
    let bad = sim
        .post(&path, json!({"operation": "add", "type": "custom"}))
        .await;
    assert_eq!((bad.status, bad.code()), (400, 1001));
    let bad = sim.post(&path, json!({"type": "like"})).await;
    assert_eq!((bad.status, bad.code()), (400, 1001));
    let bad = sim
        .post(&path, json!({"operation": "flip", "type": "like"}))
        .await;
    assert_eq!((bad.status, bad.code()), (400, 1005));
    let bad = sim
        .post(
            &path,
            json!({"operation": "add", "type": "like", "part_index": 4}),
        )
        .await;
    assert_eq!(bad.status, 400);
    let r = sim
        .post(&path, json!({"operation": "remove", "type": "custom"}))
        .await;
    assert_eq!(r.status, 200);
    let m = sim.get(&format!("/v3/messages/{msg}")).await.body;
    assert_eq!(m["parts"][0]["reactions"], Value::Null);
    let unknown = sim
        .post(
            "/v3/messages/00000000-0000-4000-8000-000000000000/reactions",
            json!({"operation": "add", "type": "like"}),
        )
        .await;
    assert_eq!((unknown.status, unknown.code()), (404, 2002));
}

#[tokio::test]
async fn attachments_upload_send_retrieve_delete() {
    let sim = TestSim::start().await;
    let bytes = b"\x89PNG fake image".to_vec();
    let a = sim
        .post(
            "/v3/attachments",
            json!({"filename": "pic one.png", "content_type": "image/png", "size_bytes": bytes.len()}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["http_method"], "PUT");
    assert_eq!(a.body["required_headers"]["Content-Type"], "image/png");
    let id = a.body["attachment_id"].as_str().unwrap().to_owned();
    let upload = a.body["upload_url"].as_str().unwrap().to_owned();
    let download = a.body["download_url"].as_str().unwrap().to_owned();
    assert!(upload.starts_with(&sim.handle.base_url()));

    // Not uploaded yet: sending it is 2007.
    let (chat, _) = sim.dm("+15550001111", "hello").await;
    let early = sim
        .post(
            &format!("/v3/chats/{chat}/messages"),
            json!({"message": {"parts": [{"type": "media", "attachment_id": id}]}}),
        )
        .await;
    assert_eq!((early.status, early.code()), (404, 2007));
    let info = sim.get(&format!("/v3/attachments/{id}")).await;
    assert_eq!(info.body["status"], "pending");

    // Wrong content type, wrong size, wrong signature are refused.
    let put = |url: String, ct: &'static str, body: Vec<u8>| {
        let req = sim.http.put(url).header("content-type", ct).body(body);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(put(upload.clone(), "image/jpeg", bytes.clone()).await, 400);
    assert_eq!(
        put(upload.clone(), "image/png", b"short".to_vec()).await,
        400
    );
    assert_eq!(
        put(upload.replace("sig=", "sig=x"), "image/png", bytes.clone()).await,
        403
    );
    assert_eq!(put(upload.clone(), "image/png", bytes.clone()).await, 200);

    let info = sim.get(&format!("/v3/attachments/{id}")).await;
    assert_eq!(info.body["status"], "complete");
    assert_eq!(info.body["size_bytes"], bytes.len());
    let sent = sim
        .post(
            &format!("/v3/chats/{chat}/messages"),
            json!({"message": {"parts": [{"type": "text", "value": "look"}, {"type": "media", "attachment_id": id}]}}),
        )
        .await;
    assert_eq!(sent.status, 202);
    let part = &sent.body["message"]["parts"][1];
    assert_eq!(part["type"], "media");
    assert_eq!(part["id"], id.as_str());
    assert_eq!(part["filename"], "pic one.png");
    assert_eq!(part["mime_type"], "image/png");
    assert_eq!(part["size_bytes"], bytes.len());
    assert_eq!(part["url"], download.as_str());
    let got = sim.http.get(&download).send().await.unwrap();
    assert_eq!(got.headers()["content-type"], "image/png");
    assert_eq!(got.bytes().await.unwrap().to_vec(), bytes);

    let bad = sim
        .post(
            "/v3/attachments",
            json!({"filename": "x.exe", "content_type": "application/x-msdownload", "size_bytes": 3}),
        )
        .await;
    assert_eq!(bad.status, 400);
    let bad = sim
        .post(
            "/v3/attachments",
            json!({"filename": "x.png", "content_type": "image/png"}),
        )
        .await;
    assert_eq!((bad.status, bad.code()), (400, 1001));
    assert_eq!(
        sim.delete("/v3/attachments/not-a-uuid", None).await.status,
        400
    );
    assert_eq!(
        sim.delete(&format!("/v3/attachments/{id}"), None)
            .await
            .status,
        204
    );
    let gone = sim.get(&format!("/v3/attachments/{id}")).await;
    assert_eq!((gone.status, gone.code()), (404, 2003));

    let vm = sim
        .post(
            &format!("/v3/chats/{chat}/voicememo"),
            json!({"voice_memo_url": "https://example.com/memo.m4a"}),
        )
        .await;
    assert_eq!(vm.status, 202);
    assert_eq!(vm.body["voice_memo"]["status"], "queued");
    assert_eq!(
        vm.body["voice_memo"]["voice_memo"]["mime_type"],
        "audio/x-m4a"
    );
    assert_eq!(vm.body["voice_memo"]["to"], json!(["+15550001111"]));
    let vm = sim
        .post(&format!("/v3/chats/{chat}/voicememo"), json!({}))
        .await;
    assert_eq!(vm.status, 400);
}

#[tokio::test]
async fn phone_numbers_available_number_capability_contact_cards_events() {
    let sim = TestSim::start().await;
    let lines = sim.get("/v3/phone_numbers").await.body;
    let line_id = lines["phone_numbers"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(lines["phone_numbers"][0]["reputation"]["status"], "HEALTHY");
    let u = sim
        .put(
            &format!("/v3/phone_numbers/{line_id}"),
            json!({"forwarding_number": "+15550009999"}),
        )
        .await;
    assert_eq!(u.body["forwarding_number"], "+15550009999");
    let u = sim
        .put(
            &format!("/v3/phone_numbers/{line_id}"),
            json!({"forwarding_number": ""}),
        )
        .await;
    assert_eq!(u.body["forwarding_number"], Value::Null);
    let u = sim
        .put(
            &format!("/v3/phone_numbers/{line_id}"),
            json!({"forwarding_number": "555"}),
        )
        .await;
    assert_eq!((u.status, u.code()), (400, 1002));
    assert_eq!(
        sim.get("/v3/phonenumbers").await.body["phone_numbers"][0]["phone_number"],
        BOT
    );

    for q in [
        "/v3/available_number?to=%2B15550001111%2C%2B15550002222",
        "/v3/available_number?to=%2B15550001111&to=%2B15550002222",
        "/v3/available_number",
    ] {
        let a = sim.get(q).await;
        assert_eq!(a.status, 200, "{q}");
        assert_eq!(a.body["phone_number"], BOT);
        let vcf = a.body["vcf_url"].as_str().unwrap();
        let r = sim.http.get(vcf).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.text().await.unwrap().contains("BEGIN:VCARD"));
    }
    let a = sim.get("/v3/available_number?to=5550001111").await;
    assert_eq!((a.status, a.code()), (400, 1002));

    let c = sim
        .post(
            "/v3/capability/check_imessage",
            json!({"address": "+15550001111"}),
        )
        .await;
    assert_eq!(
        c.body,
        json!({"address": "+15550001111", "available": true})
    );
    let c = sim
        .post(
            "/v3/capability/check_rcs",
            json!({"address": "a@b.co", "from": BOT}),
        )
        .await;
    assert_eq!(c.body["available"], false);
    let c = sim.post("/v3/capability/check_rcs", json!({})).await;
    assert_eq!((c.status, c.code()), (400, 1001));

    let card = sim
        .post(
            "/v3/contact_card",
            json!({"first_name": "Pi", "last_name": "Cortex", "phone_number": BOT}),
        )
        .await;
    assert_eq!(card.status, 200);
    assert_eq!(card.body["is_active"], true);
    let card = sim
        .patch(
            "/v3/contact_card?phone_number=%2B12025550100",
            json!({"first_name": "Pico"}),
        )
        .await;
    assert_eq!(card.body["first_name"], "Pico");
    assert_eq!(card.body["last_name"], "Cortex");
    let cards = sim.get("/v3/contact_card").await;
    assert_eq!(cards.body["contact_cards"].as_array().unwrap().len(), 1);
    let other = sim
        .post(
            "/v3/contact_card",
            json!({"first_name": "X", "phone_number": "+15550001111"}),
        )
        .await;
    assert_eq!((other.status, other.code()), (403, 2006));

    let ev = sim.get("/v3/webhook-events").await;
    assert_eq!(ev.body["events"].as_array().unwrap().len(), 27);
    assert_eq!(
        ev.body["doc_url"],
        "https://docs.linqapp.com/guides/webhooks/events"
    );
}

#[tokio::test]
async fn webhook_subscription_crud() {
    let sim = TestSim::start().await;
    let c = sim
        .post(
            "/v3/webhook-subscriptions",
            json!({"target_url": "https://hooks.example.com/a?version=2025-01-01", "subscribed_events": ["message.received"]}),
        )
        .await;
    assert_eq!(c.status, 201);
    let secret = c.body["signing_secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"));
    linq::webhook::WebhookSecret::parse(secret).unwrap();
    let id = c.body["id"].as_str().unwrap().to_owned();

    let list = sim.get("/v3/webhook-subscriptions").await;
    assert_eq!(list.body["subscriptions"].as_array().unwrap().len(), 1);
    assert!(
        list.body["subscriptions"][0]
            .get("signing_secret")
            .is_none()
    );
    let one = sim.get(&format!("/v3/webhook-subscriptions/{id}")).await;
    assert!(one.body.get("signing_secret").is_none());
    assert_eq!(one.body["is_active"], true);

    let u = sim
        .put(
            &format!("/v3/webhook-subscriptions/{id}"),
            json!({"is_active": false, "phone_numbers": [BOT], "subscribed_events": ["message.sent", "message.read"]}),
        )
        .await;
    assert_eq!(u.status, 200);
    assert_eq!(u.body["is_active"], false);
    assert_eq!(u.body["phone_numbers"], json!([BOT]));
    let u = sim
        .put(
            &format!("/v3/webhook-subscriptions/{id}"),
            json!({"phone_numbers": null}),
        )
        .await;
    assert_eq!(u.body["phone_numbers"], Value::Null);
    assert_eq!(
        u.body["subscribed_events"],
        json!(["message.sent", "message.read"])
    );

    for (body, code) in [
        (json!({"subscribed_events": ["message.sent"]}), 1001),
        (
            json!({"target_url": "ftp://x", "subscribed_events": ["message.sent"]}),
            1005,
        ),
        (
            json!({"target_url": "https://x.y/?version=1999-01-01", "subscribed_events": ["message.sent"]}),
            1005,
        ),
        (
            json!({"target_url": "https://x.y/", "subscribed_events": ["message.nope"]}),
            1005,
        ),
        (
            json!({"target_url": "https://x.y/", "subscribed_events": []}),
            1005,
        ),
        (
            json!({"target_url": "https://x.y/", "subscribed_events": ["message.sent"], "phone_numbers": ["12"]}),
            1002,
        ),
        (
            json!({"target_url": "https://hooks.example.com/a?version=2025-01-01", "subscribed_events": ["message.sent"]}),
            1005,
        ),
    ] {
        let a = sim.post("/v3/webhook-subscriptions", body.clone()).await;
        assert_eq!((a.status, a.code()), (400, code), "{body}");
    }

    assert_eq!(
        sim.delete(&format!("/v3/webhook-subscriptions/{id}"), None)
            .await
            .status,
        204
    );
    assert_eq!(
        sim.get(&format!("/v3/webhook-subscriptions/{id}"))
            .await
            .status,
        404
    );
    assert_eq!(
        sim.delete(&format!("/v3/webhook-subscriptions/{id}"), None)
            .await
            .status,
        404
    );
}
