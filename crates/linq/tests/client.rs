//! The HTTP client against a scripted axum server on 127.0.0.1: request shapes (§6), retries
//! and their limits, error decoding, timeouts and network failures.

// Test scaffolding (the mock server's helpers) may panic: that is a test failure.
#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::response::Response;
use linq::types::{MediaPart, MessageContent, MessagePart, ReactionRequest, ReactionType};
use linq::{Client, ClientConfig, DeliveryStatus, Error};
use serde_json::{Value, json};

#[derive(Debug, Clone)]
struct Recorded {
    method: String,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Recorded {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

#[derive(Clone)]
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
    delay: Duration,
}

impl Reply {
    fn json(status: u16, body: Value) -> Self {
        Self {
            status,
            headers: vec![("content-type", "application/json".into())],
            body: body.to_string(),
            delay: Duration::ZERO,
        }
    }

    fn text(status: u16, body: &str) -> Self {
        Self {
            status,
            headers: vec![("content-type", "text/html".into())],
            body: body.into(),
            delay: Duration::ZERO,
        }
    }

    fn empty(status: u16) -> Self {
        Self {
            status,
            headers: vec![],
            body: String::new(),
            delay: Duration::ZERO,
        }
    }

    fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

#[derive(Default)]
struct Mock {
    log: Mutex<Vec<Recorded>>,
    script: Mutex<VecDeque<Reply>>,
}

impl Mock {
    fn requests(&self) -> Vec<Recorded> {
        self.log.lock().unwrap().clone()
    }
}

async fn handle(State(mock): State<Arc<Mock>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 16 << 20)
        .await
        .unwrap_or_default();
    mock.log.lock().unwrap().push(Recorded {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        body: body.to_vec(),
    });
    let reply = mock
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or_else(|| Reply::json(200, json!({})));
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut resp = Response::builder().status(reply.status);
    for (name, value) in reply.headers {
        resp = resp.header(name, value);
    }
    resp.body(Body::from(reply.body)).unwrap()
}

/// Starts the mock with a script of replies (then `200 {}` forever); returns its base URL.
async fn start(script: Vec<Reply>) -> (Arc<Mock>, String) {
    let mock = Arc::new(Mock::default());
    mock.script.lock().unwrap().extend(script);
    let app = Router::new().fallback(handle).with_state(mock.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (mock, format!("http://{addr}"))
}

fn config(base: &str) -> ClientConfig {
    ClientConfig {
        base_url: base.into(),
        api_key: "sim_test_key".into(),
        timeout: Duration::from_secs(5),
        max_retries: 3,
        backoff_base: Duration::from_millis(1),
        backoff_max: Duration::from_millis(5),
    }
}

fn client(base: &str) -> Client {
    Client::new(config(base)).unwrap()
}

const CHAT_ID: &str = "550e8400-e29b-41d4-a716-446655440000";

fn send_response() -> Value {
    json!({"chat_id": CHAT_ID,
     "message": {"id": "347d62c2-2170-4754-8d30-c76d0c727d96", "created_at": "2026-02-05T19:52:17.041Z",
      "delivery_status": "queued", "is_read": false, "sent_at": null, "delivered_at": null, "effect": null,
      "from_handle": {"id": "8d79532a-f529-4244-a5cf-d443de051434", "handle": "+12025551234", "service": "iMessage",
                      "joined_at": "2026-01-21T21:59:45.191Z", "is_me": true, "left_at": null, "status": "active"},
      "parts": [{"type": "text", "value": "hi", "reactions": null, "text_decorations": null}],
      "reply_to": {"message_id": "69a37c7d-…", "part_index": 0}, "service": "iMessage", "preferred_service": null}})
}

fn error_body(status: u16, code: i64, message: &str) -> Value {
    json!({"success": false,
           "error": {"status": status, "code": code, "message": message,
                     "doc_url": format!("https://docs.linqapp.com/error/codes/{}xxx/{code}/", code / 1000)},
           "trace_id": "2eff5df5c6f688733c007523c4d61cd9"})
}

#[tokio::test]
async fn send_message_request_matches_section6() {
    let (mock, base) = start(vec![Reply::json(202, send_response())]).await;
    let content = MessageContent::text("hi")
        .idempotency_key("6a0c…")
        .reply_to("69a37c7d-…");
    let resp = client(&base).send_message(CHAT_ID, &content).await.unwrap();
    assert_eq!(resp.chat_id, CHAT_ID);
    assert_eq!(resp.message.id, "347d62c2-2170-4754-8d30-c76d0c727d96");
    assert_eq!(resp.message.delivery_status, DeliveryStatus::Queued);
    assert_eq!(resp.message.sent_at, None);

    let reqs = mock.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, format!("/v3/chats/{CHAT_ID}/messages"));
    assert_eq!(r.header("authorization"), Some("Bearer sim_test_key"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("accept"), Some("application/json"));
    assert_eq!(
        r.json(),
        json!({"message": {"parts": [{"type": "text", "value": "hi"}], "idempotency_key": "6a0c…",
                           "reply_to": {"message_id": "69a37c7d-…", "part_index": 0}}})
    );
}

#[tokio::test]
async fn retries_500_then_succeeds_with_the_same_body() {
    let (mock, base) = start(vec![
        Reply::json(500, error_body(500, 3006, "Internal error")),
        Reply::text(503, "unavailable"),
        Reply::json(202, send_response()),
    ])
    .await;
    // No key given: the client generates one, and it must stay the same across retries.
    let resp = client(&base)
        .send_message(CHAT_ID, &MessageContent::text("hi"))
        .await
        .unwrap();
    assert_eq!(resp.chat_id, CHAT_ID);
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 3);
    let key = reqs[0].json()["message"]["idempotency_key"].clone();
    assert!(key.is_string());
    for (i, r) in reqs.iter().enumerate() {
        assert_eq!(r.body, reqs[0].body);
        assert_eq!(
            r.header("x-stainless-retry-count"),
            Some(i.to_string().as_str())
        );
    }
}

#[tokio::test]
async fn honours_retry_after_ms_on_429() {
    let (mock, base) = start(vec![
        Reply::json(429, error_body(429, 1007, "Rate limit exceeded"))
            .header("retry-after-ms", "300"),
        Reply::json(200, json!({"id": "m1", "chat_id": "c1"})),
    ])
    .await;
    let started = Instant::now();
    let msg = client(&base).get_message("m1").await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(msg.id, "m1");
    assert_eq!(mock.requests().len(), 2);
    // The configured backoff is a few ms, so only the server's hint explains the wait.
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
}

#[tokio::test]
async fn a_hint_too_long_to_wait_for_is_returned_to_the_caller() {
    let (mock, base) = start(vec![
        Reply::json(429, error_body(429, 1007, "Rate limit exceeded")).header("retry-after", "120"),
    ])
    .await;
    let err = client(&base).get_message("m1").await.unwrap_err();
    assert_eq!(mock.requests().len(), 1);
    assert!(err.is_retryable());
    assert_eq!(err.retry_after(), Some(Duration::from_secs(120)));
}

#[tokio::test]
async fn bad_request_is_not_retried_and_is_decoded() {
    let (mock, base) = start(vec![Reply::json(
        400,
        error_body(400, 1001, "Missing required field"),
    )])
    .await;
    let err = client(&base)
        .send_message(CHAT_ID, &MessageContent::default())
        .await
        .unwrap_err();
    assert_eq!(mock.requests().len(), 1);
    assert_eq!(
        err,
        Error::Api {
            status: 400,
            code: Some(1001),
            message: "Missing required field".into(),
            trace_id: Some("2eff5df5c6f688733c007523c4d61cd9".into()),
            retry_after: None,
        }
    );
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn conflict_is_not_retried() {
    // Linq's 409 examples may leave out `success` and `trace_id`; the header supplies the id.
    let (mock, base) = start(vec![
        Reply::json(
            409,
            json!({"error": {"status": 409, "code": 2013, "message": "This chat is unavailable"}}),
        )
        .header("x-trace-id", "8af9171a45022df2eb74ba4e4c83be0f"),
    ])
    .await;
    let err = client(&base).start_typing(CHAT_ID).await.unwrap_err();
    assert_eq!(mock.requests().len(), 1);
    assert_eq!(err.status(), Some(409));
    assert_eq!(err.code(), Some(2013));
    assert_eq!(err.trace_id(), Some("8af9171a45022df2eb74ba4e4c83be0f"));
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn non_json_502_is_retried_then_reported_with_its_text() {
    let bad = Reply::text(502, "<html>Bad Gateway</html>");
    let (mock, base) = start(vec![bad.clone(), bad.clone(), bad.clone(), bad]).await;
    let err = client(&base).get_chat("c1").await.unwrap_err();
    assert_eq!(mock.requests().len(), 4, "1 attempt + 3 retries");
    assert_eq!(
        err,
        Error::Api {
            status: 502,
            code: None,
            message: "<html>Bad Gateway</html>".into(),
            trace_id: None,
            retry_after: None,
        }
    );
    assert!(err.is_retryable());
}

#[tokio::test]
async fn server_can_veto_a_retry() {
    let (mock, base) = start(vec![
        Reply::json(503, error_body(503, 4004, "Service unavailable"))
            .header("x-should-retry", "false"),
    ])
    .await;
    let err = client(&base).get_chat("c1").await.unwrap_err();
    assert_eq!(mock.requests().len(), 1);
    assert_eq!(err.code(), Some(4004));
}

#[tokio::test]
async fn list_messages_sends_pagination_params() {
    let page = json!({"messages": [{"id": "m1", "chat_id": "c1", "is_from_me": false,
                                     "delivery_status": "received",
                                     "parts": [{"type": "text", "value": "yo", "reactions": null}]}],
                      "next_cursor": "20"});
    let (mock, base) = start(vec![
        Reply::json(200, page),
        Reply::json(200, json!({"messages": [], "next_cursor": null})),
    ])
    .await;
    let c = client(&base);
    let first = c
        .list_messages("c1", Some("abc+/="), Some(10))
        .await
        .unwrap();
    assert_eq!(first.messages.len(), 1);
    assert_eq!(first.messages[0].text(), "yo");
    assert_eq!(first.next(), Some("20"));
    let last = c.list_messages("c1", first.next(), None).await.unwrap();
    assert!(last.messages.is_empty());
    assert_eq!(last.next(), None);

    let reqs = mock.requests();
    assert_eq!(reqs[0].method, "GET");
    assert_eq!(reqs[0].path, "/v3/chats/c1/messages");
    assert_eq!(
        reqs[0].query.as_deref(),
        Some("cursor=abc%2B%2F%3D&limit=10")
    );
    assert_eq!(reqs[1].query.as_deref(), Some("cursor=20"));
    assert!(reqs[0].header("content-type").is_none());
}

#[tokio::test]
async fn typing_and_read_accept_204() {
    let (mock, base) = start(vec![
        Reply::empty(204),
        Reply::empty(204),
        Reply::empty(204),
    ])
    .await;
    let c = client(&base);
    c.start_typing(CHAT_ID).await.unwrap();
    c.stop_typing(CHAT_ID).await.unwrap();
    c.mark_read(CHAT_ID).await.unwrap();
    let reqs = mock.requests();
    let seen: Vec<(&str, &str)> = reqs
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str()))
        .collect();
    let typing = format!("/v3/chats/{CHAT_ID}/typing");
    let read = format!("/v3/chats/{CHAT_ID}/read");
    assert_eq!(
        seen,
        vec![
            ("POST", typing.as_str()),
            ("DELETE", typing.as_str()),
            ("POST", read.as_str())
        ]
    );
    for r in &reqs {
        assert_eq!(r.header("accept"), Some("*/*"));
        assert!(r.header("content-type").is_none());
        assert!(r.body.is_empty());
        assert_eq!(r.header("authorization"), Some("Bearer sim_test_key"));
    }
}

#[tokio::test]
async fn path_segments_are_percent_encoded_and_base_paths_kept() {
    let (mock, base) = start(vec![Reply::json(200, json!({"id": "a b/c"}))]).await;
    let c = client(&format!("{base}/api/partner/"));
    c.get_message("a b/c").await.unwrap();
    assert_eq!(
        mock.requests()[0].path,
        "/api/partner/v3/messages/a%20b%2Fc"
    );
    // Ids URL normalization would rewrite are refused before anything is sent.
    for bad in ["", ".", ".."] {
        assert!(matches!(
            c.get_chat(bad).await,
            Err(Error::InvalidArgument(_))
        ));
    }
    assert_eq!(mock.requests().len(), 1);
}

#[tokio::test]
async fn create_chat_get_chat_and_react() {
    let chat = json!({"id": "c1", "created_at": "2026-02-05T19:52:17.041Z", "updated_at": "2026-02-05T19:52:17.041Z",
                      "display_name": "+12025551234, +12025559876",
                      "handles": [{"id": "h1", "handle": "+12025551234", "service": "iMessage", "joined_at": "t", "is_me": true},
                                  {"id": "h2", "handle": "+12025559876", "service": "iMessage", "joined_at": "t", "is_me": false}],
                      "health_status": {"status": "HEALTHY", "doc_url": "d", "updated_at": "t"},
                      "is_archived": false, "is_group": false, "group_chat_icon": null, "service": "iMessage"});
    let mut created = chat.clone();
    created["message"] = send_response()["message"].clone();
    let (mock, base) = start(vec![
        Reply::json(201, json!({"chat": created})),
        Reply::json(200, chat),
        Reply::json(
            202,
            json!({"message": "Reaction queued", "status": "accepted"}),
        ),
    ])
    .await;
    let c = client(&base);
    let resp = c
        .create_chat(
            "+12025551234",
            &["+12025559876".to_owned()],
            &MessageContent::text("hello"),
        )
        .await
        .unwrap();
    assert_eq!(resp.chat.id, "c1");
    assert_eq!(resp.chat.message.id, "347d62c2-2170-4754-8d30-c76d0c727d96");
    let got = c.get_chat("c1").await.unwrap();
    assert_eq!(
        got.own_handle().map(|h| h.handle.as_str()),
        Some("+12025551234")
    );
    c.react("m1", &ReactionRequest::add(ReactionType::Love))
        .await
        .unwrap();

    let reqs = mock.requests();
    assert_eq!(
        (reqs[0].method.as_str(), reqs[0].path.as_str()),
        ("POST", "/v3/chats")
    );
    let body = reqs[0].json();
    assert_eq!(body["from"], "+12025551234");
    assert_eq!(body["to"], json!(["+12025559876"]));
    assert_eq!(
        body["message"]["parts"],
        json!([{"type": "text", "value": "hello"}])
    );
    assert!(body["message"]["idempotency_key"].is_string());
    assert_eq!(
        (reqs[1].method.as_str(), reqs[1].path.as_str()),
        ("GET", "/v3/chats/c1")
    );
    assert_eq!(
        (reqs[2].method.as_str(), reqs[2].path.as_str()),
        ("POST", "/v3/messages/m1/reactions")
    );
    assert_eq!(reqs[2].json(), json!({"operation": "add", "type": "love"}));
}

#[tokio::test]
async fn attachment_create_then_upload_without_our_token() {
    let (mock, base) = start(vec![]).await;
    mock.script.lock().unwrap().extend([
        Reply::json(
            200,
            json!({"attachment_id": "a1", "upload_url": format!("{base}/_upload/a1?sig=x%2By"),
                   "download_url": "https://cdn.example/a1/cat.png", "http_method": "PUT",
                   "expires_at": "2026-02-05T20:07:17Z",
                   "required_headers": {"Content-Type": "image/png"}}),
        ),
        Reply::empty(200),
    ]);
    let c = client(&base);
    let upload = c
        .create_attachment("cat.png", "image/png", 4)
        .await
        .unwrap();
    assert_eq!(upload.attachment_id, "a1");
    c.upload_attachment(&upload, vec![1, 2, 3, 4])
        .await
        .unwrap();
    // The part to send afterwards.
    let part = MessagePart::Media(MediaPart::attachment(upload.attachment_id.clone()));
    assert_eq!(
        serde_json::to_value(&part).unwrap(),
        json!({"type": "media", "attachment_id": "a1"})
    );

    let reqs = mock.requests();
    assert_eq!(reqs[0].path, "/v3/attachments");
    assert_eq!(
        reqs[0].json(),
        json!({"filename": "cat.png", "content_type": "image/png", "size_bytes": 4})
    );
    assert_eq!(reqs[1].method, "PUT");
    assert_eq!(reqs[1].path, "/_upload/a1");
    assert_eq!(reqs[1].query.as_deref(), Some("sig=x%2By"));
    assert_eq!(reqs[1].header("content-type"), Some("image/png"));
    assert!(reqs[1].header("authorization").is_none());
    assert_eq!(reqs[1].body, vec![1, 2, 3, 4]);
}

#[tokio::test]
async fn slow_answers_time_out_and_are_retried() {
    let slow = Reply::json(200, json!({"id": "c1"})).delayed(Duration::from_secs(2));
    let (mock, base) = start(vec![slow.clone(), slow]).await;
    let c = Client::new(ClientConfig {
        timeout: Duration::from_millis(150),
        max_retries: 1,
        ..config(&base)
    })
    .unwrap();
    let err = c.get_chat("c1").await.unwrap_err();
    assert_eq!(err, Error::Timeout);
    assert!(err.is_retryable());
    assert_eq!(mock.requests().len(), 2);
}

#[tokio::test]
async fn closed_port_gives_a_network_error_after_retries() {
    // Bind then drop, so nothing listens on the port.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let c = client(&format!("http://127.0.0.1:{port}"));
    let err = c.get_chat("c1").await.unwrap_err();
    assert!(matches!(err, Error::Network(_)), "{err:?}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn dropped_connections_are_retried_max_retries_times() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(socket);
        }
    });
    let c = client(&format!("http://{addr}"));
    let err = c.get_chat("c1").await.unwrap_err();
    assert!(matches!(err, Error::Network(_)), "{err:?}");
    assert_eq!(accepted.load(Ordering::SeqCst), 4, "1 attempt + 3 retries");
}

#[tokio::test]
async fn a_2xx_with_the_wrong_shape_is_a_decode_error() {
    let (mock, base) = start(vec![Reply::json(200, json!({"unexpected": true}))]).await;
    let err = client(&base).get_chat("c1").await.unwrap_err();
    assert!(matches!(err, Error::Decode(_)), "{err:?}");
    assert!(!err.is_retryable());
    assert_eq!(mock.requests().len(), 1);
}
