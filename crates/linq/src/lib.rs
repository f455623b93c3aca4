//! Linq Partner API v3: wire types, webhook events, Standard Webhooks verification and signing,
//! and an async HTTP client. No picortex logic lives here.
//!
//! * [`types`]: the data model (chats, messages, parts, attachments, subscriptions, errors);
//! * [`events`]: webhook event parsing for both payload versions, and builders for emitting them;
//! * [`webhook`]: signature verification and signing;
//! * [`client`] / [`error`]: the retrying HTTP client a bot needs.

pub mod client;
pub mod error;
pub mod events;
pub mod types;
pub mod webhook;

pub use client::{Client, ClientConfig, DEFAULT_BASE_URL};
pub use error::Error;

pub use events::{
    Direction, Envelope, Event, EventError, EventPayload, MessageEvent, MessageEventKind,
    MessageEventSpec, WEBHOOK_VERSION_2025, WEBHOOK_VERSION_2026, WebhookPart, parse_event,
};
pub use types::{
    Chat, ChatHandle, DeliveryStatus, Message, MessageContent, MessagePart, PartResponse,
    ReactionRequest, ReactionType, ServiceType, parse_timestamp,
};
pub use webhook::{VerifyError, WebhookSecret};
