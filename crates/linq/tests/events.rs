//! Webhook event parsing and building: the linq-v3.md §6 sample, a 2025-01-01 sample built from
//! the §4.6 table, every other event type, unknown types, malformed data, and round trips of the
//! builders through the parser for both versions and all four message kinds.

use linq::events::{
    Direction, Envelope, EventError, EventPayload, GroupUpdate, MessageEvent, MessageEventKind,
    MessageEventSpec, MessageFailed, ParticipantEvent, ReactionEvent, WEBHOOK_VERSION_2025,
    WEBHOOK_VERSION_2026, WebhookPart, event_json, message_event_data, message_event_json,
    parse_event, payload_event_json,
};
use linq::types::{
    Chat, ChatHandle, HandleStatus, HealthLevel, HealthStatus, MessageEffect, PhoneNumberState,
    ReactionType, ReplyTo, ServiceType,
};
use serde_json::{Value, json};

/// §6, verbatim.
const RECEIVED_2026: &str = r#"{"api_version":"v3","webhook_version":"2026-02-03","event_type":"message.received",
 "event_id":"2915e81c-5068-4796-ace2-21d2c94ad298","created_at":"2026-02-05T19:31:13.736444093Z",
 "trace_id":"8af9171a45022df2eb74ba4e4c83be0f","partner_id":"sim-partner",
 "data":{"id":"89e3566e-1d13-49e5-a8ee-48490d5bfeb7","direction":"inbound","service":"iMessage",
  "chat":{"id":"8f392755-6865-4b18-880a-227f9d8b458f","is_group":false,
          "health_status":{"status":"HEALTHY","doc_url":"https://docs.linqapp.com/guides/chats/chat-health","updated_at":"2026-02-05T19:00:00Z"},
          "owner_handle":{"id":"6d6c617f-…","handle":"+12025551234","service":"iMessage","joined_at":"2026-01-04T05:48:51.321Z","is_me":true,"left_at":null,"status":"active"}},
  "sender_handle":{"id":"e604375a-…","handle":"+12025559876","service":"iMessage","joined_at":"2026-01-04T05:48:51.321Z","is_me":false,"left_at":null,"status":"active"},
  "parts":[{"type":"text","value":"Hello!"}],"effect":null,"reply_to":null,
  "sent_at":"2026-02-05T19:31:13.074Z","delivered_at":null,"read_at":null}}"#;

/// The same message as a 2025-01-01 subscription would get it (§4.6 table).
const RECEIVED_2025: &str = r#"{"api_version":"v3","webhook_version":"2025-01-01","event_type":"message.received",
 "event_id":"0b7c2a50-4d7e-4f7e-9d1c-1b5f0f1d2e3a","created_at":"2025-11-05T14:31:13.736-05:00",
 "trace_id":"8af9171a45022df2eb74ba4e4c83be0f","partner_id":"sim-partner",
 "data":{"chat_id":"8f392755-6865-4b18-880a-227f9d8b458f","is_group":false,"idempotency_key":null,
  "from":"+12025559876",
  "from_handle":{"id":"e604375a-…","handle":"+12025559876","service":"iMessage","joined_at":"2026-01-04T05:48:51.321Z","is_me":false,"left_at":null,"status":"active"},
  "is_from_me":false,
  "recipient_handle":{"id":"6d6c617f-…","handle":"+12025551234","service":"iMessage","joined_at":"2026-01-04T05:48:51.321Z","is_me":true,"left_at":null,"status":"active"},
  "recipient_phone":"+12025551234","received_at":"2025-11-05T14:31:13.074-05:00",
  "service":"iMessage","preferred_service":null,
  "message":{"id":"89e3566e-1d13-49e5-a8ee-48490d5bfeb7",
   "parts":[{"type":"text","value":"Hello!"},{"type":"media","id":"a1","filename":"cat.jpg","mime_type":"image/jpeg","size_bytes":1234,"url":"https://cdn.example/cat.jpg"}],
   "reply_to":{"message_id":"69a37c7d-0000-4000-8000-000000000000","part_index":0},
   "is_delivered":false,"is_read":false,"sent_at":"2025-11-05T14:31:13.074-05:00",
   "delivered_at":null,"read_at":null,"created_at":"2025-11-05T14:31:13.074-05:00","updated_at":"2025-11-05T14:31:13.074-05:00"}}}"#;

fn envelope(event_type: &str, data: Value) -> Vec<u8> {
    let body = json!({
        "api_version": "v3", "webhook_version": WEBHOOK_VERSION_2026, "event_type": event_type,
        "event_id": "e1", "created_at": "2026-02-05T19:31:13.736444093Z",
        "trace_id": "8af9171a45022df2eb74ba4e4c83be0f", "partner_id": "p", "data": data,
    });
    body.to_string().into_bytes()
}

fn handle(id: &str, number: &str, is_me: bool) -> ChatHandle {
    ChatHandle {
        id: id.into(),
        handle: number.into(),
        joined_at: "2026-01-04T05:48:51.321Z".into(),
        service: ServiceType::IMessage,
        is_me: Some(is_me),
        left_at: None,
        status: Some(HandleStatus::Active),
    }
}

#[test]
fn section6_message_received_2026() {
    let event = parse_event(RECEIVED_2026.as_bytes()).unwrap();
    assert_eq!(event.envelope.event_type, "message.received");
    assert_eq!(event.envelope.webhook_version, WEBHOOK_VERSION_2026);
    assert_eq!(
        event.envelope.event_id,
        "2915e81c-5068-4796-ace2-21d2c94ad298"
    );
    assert_eq!(event.envelope.partner_id.as_deref(), Some("sim-partner"));
    let EventPayload::Message { kind, message } = event.payload else {
        panic!("not a message event: {:?}", event.payload);
    };
    assert_eq!(kind, MessageEventKind::Received);
    assert_eq!(message.id, "89e3566e-1d13-49e5-a8ee-48490d5bfeb7");
    assert_eq!(message.chat_id, "8f392755-6865-4b18-880a-227f9d8b458f");
    assert_eq!(message.is_group, Some(false));
    assert_eq!(message.direction, Direction::Inbound);
    assert!(!message.sender_is_me);
    assert!(!message.is_own());
    assert_eq!(
        message.sender.as_ref().map(|h| h.handle.as_str()),
        Some("+12025559876")
    );
    assert_eq!(message.owner_handle.as_deref(), Some("+12025551234"));
    assert_eq!(message.service, Some(ServiceType::IMessage));
    assert_eq!(message.parts, vec![WebhookPart::text("Hello!")]);
    assert_eq!(message.text(), "Hello!");
    assert_eq!(message.reply_to, None);
    assert_eq!(message.sent_at.as_deref(), Some("2026-02-05T19:31:13.074Z"));
    assert_eq!(message.delivered_at, None);
    assert_eq!(message.read_at, None);
    assert_eq!(message.idempotency_key, None);
}

#[test]
fn message_received_2025() {
    let event = parse_event(RECEIVED_2025.as_bytes()).unwrap();
    let EventPayload::Message { kind, message } = event.payload else {
        panic!("not a message event");
    };
    assert_eq!(kind, MessageEventKind::Received);
    assert_eq!(message.id, "89e3566e-1d13-49e5-a8ee-48490d5bfeb7");
    assert_eq!(message.chat_id, "8f392755-6865-4b18-880a-227f9d8b458f");
    assert_eq!(message.direction, Direction::Inbound);
    assert!(!message.is_own());
    assert_eq!(message.owner_handle.as_deref(), Some("+12025551234"));
    assert_eq!(
        message.sender.as_ref().map(|h| h.handle.as_str()),
        Some("+12025559876")
    );
    assert_eq!(message.text(), "Hello!");
    assert_eq!(
        message.parts[1],
        WebhookPart::Media {
            id: "a1".into(),
            filename: "cat.jpg".into(),
            mime_type: "image/jpeg".into(),
            size_bytes: 1234,
            url: "https://cdn.example/cat.jpg".into(),
        }
    );
    assert_eq!(
        message.reply_to,
        Some(ReplyTo::new("69a37c7d-0000-4000-8000-000000000000", 0))
    );
    assert_eq!(
        message.sent_at.as_deref(),
        Some("2025-11-05T14:31:13.074-05:00")
    );
}

#[test]
fn own_messages_are_flagged_in_both_versions() {
    // 2026: outbound with sender_handle.is_me.
    let mut v: Value = serde_json::from_str(RECEIVED_2026).unwrap();
    v["event_type"] = json!("message.sent");
    v["data"]["direction"] = json!("outbound");
    v["data"]["sender_handle"]["is_me"] = json!(true);
    let EventPayload::Message { message, .. } =
        parse_event(v.to_string().as_bytes()).unwrap().payload
    else {
        panic!("not a message event");
    };
    assert!(message.is_own());
    assert!(message.sender_is_me);

    // 2025: is_from_me, and our line is then the sender.
    let mut v: Value = serde_json::from_str(RECEIVED_2025).unwrap();
    v["event_type"] = json!("message.sent");
    v["data"]["is_from_me"] = json!(true);
    v["data"]["from_handle"]["handle"] = json!("+12025551234");
    v["data"]["recipient_handle"] = Value::Null;
    let EventPayload::Message { message, .. } =
        parse_event(v.to_string().as_bytes()).unwrap().payload
    else {
        panic!("not a message event");
    };
    assert!(message.is_own());
    assert_eq!(message.direction, Direction::Outbound);
    assert_eq!(message.owner_handle.as_deref(), Some("+12025551234"));
}

#[test]
fn unknown_version_is_read_by_shape() {
    let mut v: Value = serde_json::from_str(RECEIVED_2026).unwrap();
    v["webhook_version"] = json!("2027-01-01");
    assert!(matches!(
        parse_event(v.to_string().as_bytes()).unwrap().payload,
        EventPayload::Message { .. }
    ));
    let mut v: Value = serde_json::from_str(RECEIVED_2025).unwrap();
    v["webhook_version"] = json!("2027-01-01");
    assert!(matches!(
        parse_event(v.to_string().as_bytes()).unwrap().payload,
        EventPayload::Message { .. }
    ));
}

fn spec(direction: Direction) -> MessageEventSpec {
    let owner = handle("h-owner", "+12025551234", true);
    let other = handle("h-other", "+12025559876", false);
    MessageEventSpec {
        id: "89e3566e-1d13-49e5-a8ee-48490d5bfeb7".into(),
        chat_id: "8f392755-6865-4b18-880a-227f9d8b458f".into(),
        is_group: false,
        health_status: HealthStatus {
            status: HealthLevel::Healthy,
            doc_url: "https://docs.linqapp.com/guides/chats/chat-health".into(),
            updated_at: "2026-02-05T19:00:00Z".into(),
        },
        direction,
        sender: if direction == Direction::Outbound {
            owner.clone()
        } else {
            other
        },
        owner,
        service: ServiceType::IMessage,
        preferred_service: None,
        parts: vec![
            WebhookPart::text("line one"),
            WebhookPart::Media {
                id: "a1".into(),
                filename: "cat.jpg".into(),
                mime_type: "image/jpeg".into(),
                size_bytes: 1234,
                url: "https://cdn.example/cat.jpg".into(),
            },
            WebhookPart::text("line two"),
        ],
        effect: Some(MessageEffect::screen("confetti")),
        reply_to: Some(ReplyTo::new("69a37c7d-0000-4000-8000-000000000000", 0)),
        idempotency_key: Some("6a0c2f2e-1111-4222-8333-444455556666".into()),
        created_at: "2026-02-05T19:31:12.000Z".into(),
        sent_at: Some("2026-02-05T19:31:13.074Z".into()),
        delivered_at: Some("2026-02-05T19:31:14.000Z".into()),
        read_at: Some("2026-02-05T19:31:20.000Z".into()),
    }
}

#[test]
fn message_events_round_trip_in_both_versions_and_all_kinds() {
    for version in [WEBHOOK_VERSION_2025, WEBHOOK_VERSION_2026] {
        for direction in [Direction::Inbound, Direction::Outbound] {
            let spec = spec(direction);
            for kind in MessageEventKind::ALL {
                let body = message_event_json(version, kind, &spec).unwrap();
                assert_eq!(body["event_type"], kind.event_type());
                assert_eq!(body["webhook_version"], version);
                let event = parse_event(body.to_string().as_bytes()).unwrap();
                let expected = EventPayload::Message {
                    kind,
                    message: spec.normalized(kind),
                };
                assert_eq!(event.payload, expected, "{version} {kind:?} {direction:?}");
                let EventPayload::Message { message, .. } = &event.payload else {
                    unreachable!()
                };
                assert_eq!(message.is_own(), direction == Direction::Outbound);
                assert_eq!(message.text(), "line one\nline two");
            }
        }
    }
}

#[test]
fn built_bodies_have_the_documented_shape() {
    let s = spec(Direction::Inbound);

    // 2026-02-03: flat, chat{…, owner_handle}, sender_handle, direction; timestamps by kind.
    let sent = message_event_data(WEBHOOK_VERSION_2026, MessageEventKind::Received, &s).unwrap();
    assert_eq!(sent["direction"], "inbound");
    assert_eq!(sent["chat"]["id"], s.chat_id);
    assert_eq!(sent["chat"]["owner_handle"]["handle"], "+12025551234");
    assert_eq!(sent["chat"]["health_status"]["status"], "HEALTHY");
    assert_eq!(sent["sender_handle"]["handle"], "+12025559876");
    assert_eq!(sent["sent_at"], "2026-02-05T19:31:13.074Z");
    assert_eq!(sent["delivered_at"], Value::Null);
    assert_eq!(sent["read_at"], Value::Null);
    assert_eq!(
        sent["effect"],
        json!({"type": "screen", "name": "confetti"})
    );
    assert!(sent["parts"][0].get("reactions").is_none());
    assert!(sent.get("message").is_none());

    let read = message_event_data(WEBHOOK_VERSION_2026, MessageEventKind::Read, &s).unwrap();
    assert_eq!(read["delivered_at"], "2026-02-05T19:31:14.000Z");
    assert_eq!(read["read_at"], "2026-02-05T19:31:20.000Z");

    // 2025-01-01: nested message, chat_id, is_from_me, from_handle, recipient_handle.
    let v1 = message_event_data(WEBHOOK_VERSION_2025, MessageEventKind::Received, &s).unwrap();
    assert_eq!(v1["chat_id"], s.chat_id);
    assert_eq!(v1["is_from_me"], false);
    assert_eq!(v1["from"], "+12025559876");
    assert_eq!(v1["from_handle"]["handle"], "+12025559876");
    assert_eq!(v1["recipient_handle"]["handle"], "+12025551234");
    assert_eq!(v1["recipient_phone"], "+12025551234");
    assert_eq!(v1["message"]["id"], s.id);
    assert_eq!(v1["message"]["is_delivered"], false);
    assert!(v1.get("message_id").is_none());
    assert!(v1.get("direction").is_none());

    let out = spec(Direction::Outbound);
    let v1_sent = message_event_data(WEBHOOK_VERSION_2025, MessageEventKind::Sent, &out).unwrap();
    assert_eq!(v1_sent["is_from_me"], true);
    assert_eq!(v1_sent["recipient_handle"], Value::Null);
    let v1_delivered =
        message_event_data(WEBHOOK_VERSION_2025, MessageEventKind::Delivered, &out).unwrap();
    assert_eq!(v1_delivered["message_id"], out.id);
    assert_eq!(v1_delivered["delivered_at"], "2026-02-05T19:31:14.000Z");
    assert_eq!(v1_delivered["message"]["is_delivered"], true);
    assert_eq!(v1_delivered["message"]["read_at"], Value::Null);
    let v1_read = message_event_data(WEBHOOK_VERSION_2025, MessageEventKind::Read, &out).unwrap();
    assert_eq!(v1_read["read_at"], "2026-02-05T19:31:20.000Z");
    assert!(v1_read.get("delivered_at").is_none());

    assert!(matches!(
        message_event_data("1999-01-01", MessageEventKind::Sent, &s),
        Err(EventError::UnsupportedVersion(_))
    ));
}

#[test]
fn envelope_builder_fields() {
    let env = Envelope::new(WEBHOOK_VERSION_2026, "chat.typing_indicator.started")
        .partner_id("sim-partner");
    assert_eq!(env.api_version, "v3");
    assert_eq!(env.event_id.len(), 36);
    let trace = env.trace_id.clone().unwrap();
    assert_eq!(trace.len(), 32);
    assert!(
        trace
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
    assert!(linq::types::parse_timestamp(&env.created_at).is_some());
    let body = event_json(&env, json!({"chat_id": "c"}));
    assert_eq!(body["partner_id"], "sim-partner");
    assert_eq!(body["data"], json!({"chat_id": "c"}));
    let back = parse_event(body.to_string().as_bytes()).unwrap();
    assert_eq!(back.envelope, env);
}

#[test]
fn every_other_event_type_parses() {
    let h = json!({"id": "h1", "handle": "+12025559876", "service": "iMessage",
                   "joined_at": "2026-01-04T05:48:51.321Z", "is_me": false});
    let chat = json!({"id": "c1", "health_status": {"status": "HEALTHY", "doc_url": "d", "updated_at": "t"},
                      "is_group": false, "owner_handle": {"handle": "+12025551234", "is_me": true}});

    let e = parse_event(&envelope(
        "message.failed",
        json!({"code": 4001, "failed_at": "2026-02-05T19:31:13Z", "chat_id": "c1",
               "message_id": "m1", "reason": "Delivery failed"}),
    ))
    .unwrap();
    assert_eq!(
        e.payload,
        EventPayload::MessageFailed(MessageFailed {
            code: 4001,
            failed_at: "2026-02-05T19:31:13Z".into(),
            chat_id: Some("c1".into()),
            message_id: Some("m1".into()),
            reason: Some("Delivery failed".into()),
        })
    );

    let e = parse_event(&envelope(
        "message.edited",
        json!({"id": "m1", "chat": chat, "direction": "inbound", "edited_at": "t",
               "part": {"index": 0, "text": "fixed"}, "sender_handle": h}),
    ))
    .unwrap();
    let EventPayload::MessageEdited(edit) = e.payload else {
        panic!("not message.edited")
    };
    assert_eq!(edit.part.text, "fixed");
    assert_eq!(edit.direction, Direction::Inbound);

    for (event_type, added) in [("reaction.added", true), ("reaction.removed", false)] {
        let e = parse_event(&envelope(
            event_type,
            json!({"is_from_me": false, "reaction_type": "love", "chat_id": "c1",
                   "message_id": "m1", "part_index": 0, "custom_emoji": null,
                   "from": "+12025559876", "from_handle": h, "reacted_at": "t",
                   "service": "iMessage", "sticker": null}),
        ))
        .unwrap();
        let EventPayload::Reaction {
            added: got,
            reaction,
        } = e.payload
        else {
            panic!("not a reaction")
        };
        assert_eq!(got, added);
        assert_eq!(reaction.reaction_type, ReactionType::Love);
        assert_eq!(reaction.message_id.as_deref(), Some("m1"));
        assert!(!reaction.is_from_me);
    }

    let e = parse_event(&envelope(
        "participant.added",
        json!({"handle": "+12025550000", "participant": h, "chat_id": "c1", "added_at": "t"}),
    ))
    .unwrap();
    assert!(matches!(e.payload, EventPayload::ParticipantAdded(p) if p.handle == "+12025550000"));
    let e = parse_event(&envelope(
        "participant.removed",
        json!({"handle": "+12025550000", "chat_id": "c1", "removed_at": "t"}),
    ))
    .unwrap();
    assert!(
        matches!(e.payload, EventPayload::ParticipantRemoved(p) if p.removed_at.as_deref() == Some("t"))
    );

    let e = parse_event(&envelope(
        "chat.created",
        json!({"id": "c1", "created_at": "t", "display_name": null, "handles": [h],
               "health_status": {"status": "HEALTHY", "doc_url": "d", "updated_at": "t"},
               "is_group": false, "updated_at": "t", "service": "SMS"}),
    ))
    .unwrap();
    assert!(
        matches!(&e.payload, EventPayload::ChatCreated(c) if c.id == "c1" && c.service == Some(ServiceType::Sms))
    );

    let group_update = json!({"chat_id": "c1", "updated_at": "t", "old_value": "Old",
                              "new_value": null, "changed_by_handle": h});
    let e = parse_event(&envelope("chat.group_name_updated", group_update.clone())).unwrap();
    assert!(
        matches!(&e.payload, EventPayload::GroupNameUpdated(g) if g.new_value.is_none() && g.old_value.as_deref() == Some("Old"))
    );
    let e = parse_event(&envelope("chat.group_icon_updated", group_update)).unwrap();
    assert!(matches!(&e.payload, EventPayload::GroupIconUpdated(_)));

    let failed = json!({"chat_id": "c1", "error_code": 1006, "failed_at": "t"});
    let e = parse_event(&envelope("chat.group_name_update_failed", failed.clone())).unwrap();
    assert!(matches!(&e.payload, EventPayload::GroupNameUpdateFailed(f) if f.error_code == 1006));
    let e = parse_event(&envelope("chat.group_icon_update_failed", failed)).unwrap();
    assert!(matches!(&e.payload, EventPayload::GroupIconUpdateFailed(_)));

    let e = parse_event(&envelope(
        "chat.typing_indicator.started",
        json!({"chat_id": "c1"}),
    ))
    .unwrap();
    assert_eq!(
        e.payload,
        EventPayload::TypingIndicator {
            started: true,
            chat_id: "c1".into()
        }
    );
    let e = parse_event(&envelope(
        "chat.typing_indicator.stopped",
        json!({"chat_id": "c1"}),
    ))
    .unwrap();
    assert_eq!(
        e.payload,
        EventPayload::TypingIndicator {
            started: false,
            chat_id: "c1".into()
        }
    );

    let e = parse_event(&envelope(
        "phone_number.status_updated",
        json!({"phone_number": "+12025551234", "changed_at": "t",
               "previous_status": "ACTIVE", "new_status": "FLAGGED",
               "previous_reputation": "HEALTHY", "new_reputation": "AT_RISK",
               "previous_health_status": "HEALTHY", "new_health_status": "AT_RISK"}),
    ))
    .unwrap();
    let EventPayload::PhoneNumberStatusUpdated(p) = e.payload else {
        panic!("not phone_number.status_updated")
    };
    assert_eq!(p.new_status, Some(PhoneNumberState::Flagged));
    assert_eq!(p.new_reputation, Some(HealthLevel::AtRisk));
}

#[test]
fn unknown_event_types_are_kept_as_other() {
    for event_type in [
        "call.initiated",
        "location.sharing.started",
        "brand.new_thing",
    ] {
        let data = json!({"call_id": "x", "anything": [1, 2]});
        let e = parse_event(&envelope(event_type, data.clone())).unwrap();
        assert_eq!(
            e.payload,
            EventPayload::Other {
                event_type: event_type.into(),
                data
            }
        );
    }
    // Even without data.
    let body = json!({"api_version": "v3", "webhook_version": "2026-02-03",
                      "event_type": "call.ended", "event_id": "e", "created_at": "t"});
    let e = parse_event(body.to_string().as_bytes()).unwrap();
    assert!(matches!(
        e.payload,
        EventPayload::Other {
            data: Value::Null,
            ..
        }
    ));
    assert_eq!(e.envelope.trace_id, None);
}

fn invalid_field(body: &[u8]) -> (String, String) {
    match parse_event(body) {
        Err(EventError::InvalidData {
            event_type, field, ..
        }) => (event_type, field),
        other => panic!("expected InvalidData, got {other:?}"),
    }
}

#[test]
fn malformed_known_data_names_the_field() {
    let (et, field) = invalid_field(&envelope("message.failed", json!({"failed_at": "t"})));
    assert_eq!((et.as_str(), field.as_str()), ("message.failed", "code"));

    let (_, field) = invalid_field(&envelope("message.failed", json!({"code": "oops"})));
    assert_eq!(field, "code");

    let (_, field) = invalid_field(&envelope(
        "message.received",
        json!({"id": "m", "direction": "inbound", "chat": {"is_group": false}}),
    ));
    assert_eq!(field, "chat.id");

    let (_, field) = invalid_field(&envelope(
        "message.received",
        json!({"id": "m", "direction": "sideways", "chat": {"id": "c"}}),
    ));
    assert_eq!(field, "direction");

    let (_, field) = invalid_field(&envelope(
        "message.received",
        json!({"id": "m", "chat": {"id": "c"}}),
    ));
    assert_eq!(field, "direction");

    let (_, field) = invalid_field(&envelope("reaction.added", json!({"is_from_me": false})));
    assert_eq!(field, "reaction_type");

    let (_, field) = invalid_field(&envelope("chat.typing_indicator.started", json!([])));
    assert_eq!(field, "data");

    let (_, field) = invalid_field(&envelope("chat.created", Value::Null));
    assert_eq!(field, "data");

    // 2025-01-01 without any message id.
    let mut v: Value = serde_json::from_str(RECEIVED_2025).unwrap();
    v["data"]["message"].as_object_mut().unwrap().remove("id");
    let (_, field) = invalid_field(v.to_string().as_bytes());
    assert_eq!(field, "message.id");

    let err = parse_event(&envelope("message.failed", json!({}))).unwrap_err();
    assert!(err.to_string().contains("message.failed"), "{err}");
    assert!(err.to_string().contains("code"), "{err}");
}

#[test]
fn malformed_parts_do_not_reject_the_message() {
    let mut v: Value = serde_json::from_str(RECEIVED_2026).unwrap();
    v["data"]["parts"] = json!([
        {"type": "text", "value": "still here"},
        {"type": "media", "size_bytes": "big"},
        {"type": "hologram"},
        {"type": "imessage_app", "app": {"bundle_id": "b"}, "layout": {}, "url": "u"}
    ]);
    let EventPayload::Message { message, .. } =
        parse_event(v.to_string().as_bytes()).unwrap().payload
    else {
        panic!("not a message event");
    };
    assert_eq!(message.text(), "still here");
    assert!(matches!(message.parts[1], WebhookPart::Unknown(_)));
    assert!(matches!(message.parts[2], WebhookPart::Unknown(_)));
    assert!(matches!(message.parts[3], WebhookPart::IMessageApp { .. }));
}

#[test]
fn bad_bodies_are_errors_not_panics() {
    assert!(matches!(
        parse_event(&[0xff, 0xfe, b'{']),
        Err(EventError::NotUtf8(0))
    ));
    assert!(matches!(
        parse_event(b"{\"a\":"),
        Err(EventError::InvalidJson(_))
    ));
    assert!(matches!(parse_event(b""), Err(EventError::InvalidJson(_))));
    assert!(matches!(
        parse_event(b"[1,2]"),
        Err(EventError::NotAnObject)
    ));
    assert!(matches!(
        parse_event(br#"{"api_version":"v3","webhook_version":"2026-02-03","event_id":"e","created_at":"t"}"#),
        Err(EventError::MissingEnvelopeField("event_type"))
    ));
    assert!(matches!(
        parse_event(br#"{"api_version":"v3","webhook_version":"2026-02-03","event_type":"x","event_id":5,"created_at":"t"}"#),
        Err(EventError::MissingEnvelopeField("event_id"))
    ));
}

#[test]
fn other_payloads_build_and_parse_back() {
    let h = handle("h1", "+12025559876", false);
    let chat = Chat {
        id: "c1".into(),
        created_at: "t".into(),
        updated_at: "t".into(),
        display_name: Some("+12025551234, +12025559876".into()),
        handles: vec![handle("h0", "+12025551234", true), h.clone()],
        health_status: HealthStatus::default(),
        is_archived: false,
        is_group: false,
        group_chat_icon: None,
        service: Some(ServiceType::IMessage),
    };
    let payloads = vec![
        EventPayload::MessageFailed(MessageFailed {
            code: 4001,
            failed_at: "t".into(),
            chat_id: Some("c1".into()),
            message_id: Some("m1".into()),
            reason: None,
        }),
        EventPayload::Reaction {
            added: true,
            reaction: ReactionEvent {
                is_from_me: false,
                reaction_type: ReactionType::Custom,
                chat_id: Some("c1".into()),
                message_id: Some("m1".into()),
                part_index: Some(0),
                custom_emoji: Some("🔥".into()),
                from: Some(h.handle.clone()),
                from_handle: Some(h.clone()),
                reacted_at: Some("t".into()),
                service: Some(ServiceType::IMessage),
                sticker: None,
            },
        },
        EventPayload::ParticipantRemoved(ParticipantEvent {
            handle: h.handle.clone(),
            participant: Some(h.clone()),
            chat_id: Some("c1".into()),
            added_at: None,
            removed_at: Some("t".into()),
        }),
        EventPayload::ChatCreated(chat),
        EventPayload::GroupIconUpdated(GroupUpdate {
            chat_id: "c1".into(),
            updated_at: "t".into(),
            old_value: None,
            new_value: Some("https://x/icon.png".into()),
            changed_by_handle: None,
        }),
        EventPayload::TypingIndicator {
            started: false,
            chat_id: "c1".into(),
        },
        EventPayload::Other {
            event_type: "call.ringing".into(),
            data: json!({"x": 1}),
        },
    ];
    for payload in payloads {
        for version in [WEBHOOK_VERSION_2025, WEBHOOK_VERSION_2026] {
            let body = payload_event_json(version, &payload).unwrap();
            assert_eq!(body["event_type"], payload.event_type());
            let back = parse_event(body.to_string().as_bytes()).unwrap();
            assert_eq!(back.payload, payload);
        }
    }

    // chat.created leaves out is_archived and group_chat_icon; group updates keep explicit nulls.
    let created = EventPayload::ChatCreated(Chat {
        id: "c".into(),
        ..Chat::default()
    })
    .data_json()
    .unwrap();
    assert!(created.get("is_archived").is_none());
    assert!(created.get("group_chat_icon").is_none());
    assert_eq!(created["display_name"], Value::Null);

    // Message payloads need a spec.
    let message = EventPayload::Message {
        kind: MessageEventKind::Sent,
        message: MessageEvent {
            id: "m".into(),
            chat_id: "c".into(),
            is_group: None,
            direction: Direction::Outbound,
            sender: None,
            sender_is_me: true,
            owner_handle: None,
            service: None,
            parts: vec![],
            reply_to: None,
            sent_at: None,
            delivered_at: None,
            read_at: None,
            idempotency_key: None,
        },
    };
    assert!(matches!(message.data_json(), Err(EventError::Build(_))));
}

#[test]
fn api_parts_convert_to_webhook_parts_without_reactions() {
    let api_parts: Vec<linq::types::PartResponse> = serde_json::from_value(json!([
        {"type": "text", "value": "hi", "reactions": [], "text_decorations": null},
        {"type": "media", "id": "a1", "filename": "f.png", "mime_type": "image/png",
         "size_bytes": 7, "url": "https://cdn.example/f.png", "reactions": null},
        {"type": "link", "value": "https://example.com", "reactions": null},
        {"type": "imessage_app", "app": {"bundle_id": "b", "name": "n", "team_id": "t"},
         "layout": {"caption": "c"}, "url": "https://x", "fallback_text": null, "reactions": null},
        {"type": "hologram"}
    ]))
    .unwrap();
    let parts: Vec<WebhookPart> = api_parts.iter().map(WebhookPart::from).collect();
    let wire = serde_json::to_value(&parts).unwrap();
    assert_eq!(
        wire,
        json!([
            {"type": "text", "value": "hi"},
            {"type": "media", "id": "a1", "filename": "f.png", "mime_type": "image/png",
             "size_bytes": 7, "url": "https://cdn.example/f.png"},
            {"type": "link", "value": "https://example.com"},
            {"type": "imessage_app", "app": {"bundle_id": "b", "name": "n", "team_id": "t"},
             "layout": {"caption": "c"}, "url": "https://x", "fallback_text": null},
            {"type": "hologram"}
        ])
    );
    let back: Vec<WebhookPart> = serde_json::from_value(wire).unwrap();
    assert_eq!(back, parts);
}
