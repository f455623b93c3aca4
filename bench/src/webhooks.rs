//! Pre-built, pre-signed `message.received` deliveries (payload version 2026-02-03, shaped like
//! the sample in `linq-v3.md` §6), so that building and signing stay out of the measurement.
//! Every delivery has its own event id and message id; chats are reused round-robin.

use anyhow::Context as _;
use bytes::Bytes;
use linq::webhook::{self, WebhookSecret};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde_json::json;
use time::format_description::well_known::Rfc3339;

/// The bot's line in every generated chat.
pub const BOT_LINE: &str = "+12025550100";

/// One chat the generated messages arrive in: its id and the person texting the bot.
#[derive(Debug, Clone)]
pub struct Chat {
    pub id: String,
    pub sender: String,
    sender_handle_id: String,
    owner_handle_id: String,
}

impl Chat {
    /// `count` direct chats, each with a distinct sender.
    pub fn many(count: usize) -> Vec<Chat> {
        (0..count)
            .map(|i| Chat {
                id: uuid::Uuid::new_v4().to_string(),
                sender: format!("+1202555{:04}", 1000 + i % 9000),
                sender_handle_id: uuid::Uuid::new_v4().to_string(),
                owner_handle_id: uuid::Uuid::new_v4().to_string(),
            })
            .collect()
    }
}

/// A delivery ready to POST: the exact body bytes and the headers signed over them.
#[derive(Debug, Clone)]
pub struct SignedWebhook {
    pub event_id: String,
    pub message_id: String,
    pub chat_id: String,
    pub body: Bytes,
    pub headers: HeaderMap,
}

/// Builds `count` deliveries spread over `chats`, signed with `secret` at `timestamp` (Unix
/// seconds; the receiver accepts ±300 s). `label` goes into the message text.
pub fn build(
    secret: &WebhookSecret,
    chats: &[Chat],
    count: usize,
    timestamp: i64,
    label: &str,
) -> anyhow::Result<Vec<SignedWebhook>> {
    anyhow::ensure!(!chats.is_empty(), "at least one chat is needed");
    let now = time::OffsetDateTime::from_unix_timestamp(timestamp)
        .context("timestamp out of range")?
        .format(&Rfc3339)
        .context("formatting the timestamp")?;
    (0..count)
        .map(|i| {
            let chat = &chats[i % chats.len()];
            build_one(
                secret,
                chat,
                timestamp,
                &now,
                &format!("{label} message {i}"),
            )
        })
        .collect()
}

/// One delivery in `chat` whose message text is exactly `text` (an owner command, say), signed
/// with `secret` at `timestamp` (Unix seconds).
pub fn build_text(
    secret: &WebhookSecret,
    chat: &Chat,
    timestamp: i64,
    text: &str,
) -> anyhow::Result<SignedWebhook> {
    let now = time::OffsetDateTime::from_unix_timestamp(timestamp)
        .context("timestamp out of range")?
        .format(&Rfc3339)
        .context("formatting the timestamp")?;
    build_one(secret, chat, timestamp, &now, text)
}

fn build_one(
    secret: &WebhookSecret,
    chat: &Chat,
    timestamp: i64,
    now: &str,
    text: &str,
) -> anyhow::Result<SignedWebhook> {
    let event_id = uuid::Uuid::new_v4().to_string();
    let message_id = uuid::Uuid::new_v4().to_string();
    let handle = |id: &str, number: &str, is_me: bool| {
        json!({
            "id": id, "handle": number, "service": "iMessage",
            "joined_at": "2026-01-04T05:48:51.321Z", "is_me": is_me,
            "left_at": null, "status": "active"
        })
    };
    let body = json!({
        "api_version": "v3",
        "webhook_version": "2026-02-03",
        "event_type": "message.received",
        "event_id": event_id,
        "created_at": now,
        "trace_id": uuid::Uuid::new_v4().simple().to_string(),
        "partner_id": "bench-partner",
        "data": {
            "id": message_id,
            "direction": "inbound",
            "service": "iMessage",
            "chat": {
                "id": chat.id,
                "is_group": false,
                "health_status": {
                    "status": "HEALTHY",
                    "doc_url": "https://docs.linqapp.com/guides/chats/chat-health",
                    "updated_at": now
                },
                "owner_handle": handle(&chat.owner_handle_id, BOT_LINE, true)
            },
            "sender_handle": handle(&chat.sender_handle_id, &chat.sender, false),
            "parts": [{"type": "text", "value": text}],
            "effect": null,
            "reply_to": null,
            "sent_at": now,
            "delivered_at": null,
            "read_at": null
        }
    });
    let body = Bytes::from(serde_json::to_vec(&body).context("serializing a webhook body")?);
    let signature = webhook::sign(secret, &event_id, timestamp, &body);
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let mut put = |name: &'static str, value: &str| -> anyhow::Result<()> {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_str(value).with_context(|| format!("header {name}"))?,
        );
        Ok(())
    };
    put(webhook::HEADER_ID, &event_id)?;
    put(webhook::HEADER_TIMESTAMP, &timestamp.to_string())?;
    put(webhook::HEADER_SIGNATURE, &signature)?;
    Ok(SignedWebhook {
        event_id,
        message_id,
        chat_id: chat.id.clone(),
        body,
        headers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use linq::events::{EventPayload, MessageEventKind};

    #[test]
    fn deliveries_verify_and_parse_as_inbound_messages() -> anyhow::Result<()> {
        let secret = WebhookSecret::generate();
        let chats = Chat::many(3);
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let hooks = build(&secret, &chats, 7, now, "test")?;
        assert_eq!(hooks.len(), 7);
        for (i, hook) in hooks.iter().enumerate() {
            let verified = webhook::verify(&secret, &hook.headers, &hook.body, now)?;
            assert_eq!(verified.id, hook.event_id);
            let event = linq::events::parse_event(&hook.body)?;
            assert_eq!(event.envelope.event_id, hook.event_id);
            let EventPayload::Message { kind, message } = event.payload else {
                anyhow::bail!("not a message event");
            };
            assert_eq!(kind, MessageEventKind::Received);
            assert!(!message.is_own());
            assert_eq!(message.id, hook.message_id);
            assert_eq!(message.chat_id, chats[i % 3].id);
        }
        let distinct: std::collections::HashSet<_> = hooks.iter().map(|h| &h.event_id).collect();
        assert_eq!(distinct.len(), 7);
        Ok(())
    }
}
