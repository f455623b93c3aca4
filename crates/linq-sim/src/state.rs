//! The simulator's state: lines, chats, handles, messages, reactions, attachments, webhook
//! subscriptions and their delivery queues, idempotency records, contact cards, faults and
//! the admin-visible logs.
//!
//! All of it lives in one [`Model`] behind one mutex that is only ever held for short,
//! synchronous sections (never across an `.await`). Mutations go through [`SimState::txn`],
//! which hands out a [`Txn`]: the model plus the side effects a change may cause (webhook
//! events queued to subscriptions, outbound lifecycles to start) and which, when it ends,
//! notifies the admin page's change stream.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use linq::webhook::WebhookSecret;
use serde_json::Value;
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::errors::ApiError;
use crate::faults::Faults;
use crate::validation::{self, ContentSpec, EffectSpec, PartSpec, ReplyToSpec};
use crate::webhooks::{self, DeliveryRecord, Event, RetryPolicy, SubQueue};
use crate::wire;

/// A timestamp (always UTC).
pub type Ts = OffsetDateTime;

/// Now, in UTC.
pub fn now() -> Ts {
    OffsetDateTime::now_utc()
}

/// A fresh lowercase hyphenated UUID v4, the id format of every Linq resource.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// How many delivery attempts and emitted events the admin state keeps.
pub const LOG_CAPACITY: usize = 200;

/// `ServiceType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    IMessage,
    Sms,
    Rcs,
}

impl Service {
    pub fn as_str(self) -> &'static str {
        match self {
            Service::IMessage => "iMessage",
            Service::Sms => "SMS",
            Service::Rcs => "RCS",
        }
    }

    /// The service a `preferred_service` asks for (`auto`/absent: iMessage).
    pub fn from_preferred(p: Option<&str>) -> Self {
        match p {
            Some("SMS") => Service::Sms,
            Some("RCS") => Service::Rcs,
            _ => Service::IMessage,
        }
    }
}

/// A chat membership's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandleStatus {
    Active,
    Left,
    Removed,
}

impl HandleStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HandleStatus::Active => "active",
            HandleStatus::Left => "left",
            HandleStatus::Removed => "removed",
        }
    }
}

/// One participant of one chat (`ChatHandle`).
#[derive(Clone, Debug)]
pub struct Handle {
    pub id: String,
    pub handle: String,
    pub service: Service,
    pub joined_at: Ts,
    pub is_me: bool,
    pub left_at: Option<Ts>,
    pub status: HandleStatus,
}

/// A chat between the bot's line and one (DM) or more (group) handles.
#[derive(Clone, Debug)]
pub struct Chat {
    pub id: String,
    pub created_at: Ts,
    pub updated_at: Ts,
    /// A name set through `PUT /v3/chats/{id}`; `None` means the default comma list.
    pub custom_name: Option<String>,
    pub group_chat_icon: Option<String>,
    /// Every membership, the bot's line first (`is_me: true`).
    pub handles: Vec<Handle>,
    pub is_group: bool,
    pub service: Service,
    /// The bot's line (E.164) this chat belongs to.
    pub line: String,
    /// Whether the bot left this group: its endpoints then answer 409 / 2013.
    pub left: bool,
    /// Whether the bot is currently showing a typing indicator here.
    pub bot_typing: bool,
    /// Humans currently typing here (from `POST /sim/typing`).
    pub others_typing: BTreeSet<String>,
    /// Sequence number of the latest activity, for the chat list order and its cursor.
    pub activity_seq: u64,
    /// Message ids in the order they were created.
    pub messages: Vec<String>,
    pub last_read_at: Option<Ts>,
    pub contact_card_shared_at: Option<Ts>,
    pub location_requested_at: Option<Ts>,
}

impl Chat {
    /// The bot's own membership.
    pub fn me(&self) -> Option<&Handle> {
        self.handles.iter().find(|h| h.is_me)
    }

    /// Active memberships (the bot included unless it left).
    pub fn active(&self) -> impl Iterator<Item = &Handle> {
        self.handles
            .iter()
            .filter(|h| h.status == HandleStatus::Active)
    }

    /// The active membership of `handle`, if any.
    pub fn active_handle(&self, handle: &str) -> Option<&Handle> {
        let wanted = validation::normalize_handle(handle);
        self.active()
            .find(|h| validation::normalize_handle(&h.handle) == wanted)
    }

    /// The set of active human participants, used to find an existing chat.
    pub fn participant_key(&self) -> BTreeSet<String> {
        self.active()
            .filter(|h| !h.is_me)
            .map(|h| validation::normalize_handle(&h.handle))
            .collect()
    }

    /// `display_name`: the custom name, else the comma-separated active handles.
    pub fn display_name(&self) -> String {
        match &self.custom_name {
            Some(n) => n.clone(),
            None => self
                .active()
                .map(|h| h.handle.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }
    }

    /// Fails with 409 / 2013 once the bot has left the chat.
    pub fn ensure_available(&self) -> Result<(), ApiError> {
        if self.left {
            Err(ApiError::chat_unavailable(&self.id))
        } else {
            Ok(())
        }
    }
}

/// Inbound or outbound, seen from the bot's line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Inbound,
    Outbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

/// `delivery_status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryStatus {
    Queued,
    Sent,
    Delivered,
    Received,
    Read,
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Queued => "queued",
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Received => "received",
            DeliveryStatus::Read => "read",
            DeliveryStatus::Failed => "failed",
        }
    }
}

/// A resolved media part.
#[derive(Clone, Debug)]
pub struct Media {
    pub id: String,
    pub filename: String,
    pub mime_type: String,
    pub size_bytes: u64,
    pub url: String,
}

/// The content of one message part.
#[derive(Clone, Debug)]
pub enum PartKind {
    Text {
        value: String,
        text_decorations: Option<Value>,
    },
    Media(Media),
    Link {
        value: String,
    },
    App {
        app: Value,
        layout: Value,
        url: Option<String>,
        fallback_text: Option<String>,
    },
}

/// A reaction (tapback) on one part.
#[derive(Clone, Debug)]
pub struct Reaction {
    pub handle: Handle,
    pub is_me: bool,
    pub kind: String,
    pub custom_emoji: Option<String>,
    pub at: Ts,
}

/// One part of a message with its reactions.
#[derive(Clone, Debug)]
pub struct Part {
    pub kind: PartKind,
    pub reactions: Vec<Reaction>,
}

impl Part {
    pub fn new(kind: PartKind) -> Self {
        Self {
            kind,
            reactions: Vec::new(),
        }
    }
}

/// A message in a chat, either direction.
#[derive(Clone, Debug)]
pub struct Message {
    pub id: String,
    pub chat_id: String,
    pub seq: u64,
    pub created_at: Ts,
    pub updated_at: Ts,
    pub direction: Direction,
    /// The sender's membership at send time.
    pub sender: Handle,
    pub parts: Vec<Part>,
    pub effect: Option<EffectSpec>,
    pub reply_to: Option<ReplyToSpec>,
    pub idempotency_key: Option<String>,
    pub preferred_service: Option<String>,
    pub service: Service,
    pub status: DeliveryStatus,
    pub sent_at: Option<Ts>,
    pub delivered_at: Option<Ts>,
    pub read_at: Option<Ts>,
    pub edit_count: u32,
    pub deleted_at: Option<Ts>,
    /// Set for voice memos (`POST /v3/chats/{id}/voicememo`).
    pub voice_memo: bool,
}

impl Message {
    pub fn is_from_me(&self) -> bool {
        self.direction == Direction::Outbound
    }
}

/// A pre-uploaded attachment.
#[derive(Clone, Debug)]
pub struct Attachment {
    pub id: String,
    pub filename: String,
    pub content_type: String,
    pub size_bytes: u64,
    pub created_at: Ts,
    /// The `sig` the upload URL carries.
    pub upload_token: String,
    pub data: Option<Bytes>,
}

impl Attachment {
    pub fn is_complete(&self) -> bool {
        self.data.is_some()
    }
}

/// One of the partner's lines.
#[derive(Clone, Debug)]
pub struct PhoneLine {
    pub id: String,
    pub phone_number: String,
    pub forwarding_number: Option<String>,
}

/// A contact card for one of the lines.
#[derive(Clone, Debug)]
pub struct ContactCard {
    pub phone_number: String,
    pub first_name: String,
    pub last_name: Option<String>,
    pub image_url: Option<String>,
    pub is_active: bool,
}

/// A webhook subscription.
#[derive(Clone, Debug)]
pub struct Subscription {
    pub id: String,
    pub created_at: Ts,
    pub updated_at: Ts,
    pub target_url: String,
    pub secret: WebhookSecret,
    pub subscribed_events: Vec<String>,
    pub phone_numbers: Option<Vec<String>>,
    pub is_active: bool,
}

impl Subscription {
    /// The payload version: `?version=` on the target URL, else 2026-02-03.
    pub fn version(&self) -> &'static str {
        validation::webhook_version(&self.target_url)
            .ok()
            .flatten()
            .unwrap_or(webhooks::LATEST_VERSION)
    }

    /// Whether this subscription wants `event_type` for a given line.
    pub fn wants(&self, event_type: &str, line: Option<&str>) -> bool {
        if !self.is_active || !self.subscribed_events.iter().any(|e| e == event_type) {
            return false;
        }
        match (&self.phone_numbers, line) {
            (Some(numbers), Some(line)) if !numbers.is_empty() => numbers.iter().any(|n| n == line),
            _ => true,
        }
    }
}

/// A remembered answer for an idempotency key.
#[derive(Clone, Debug)]
pub struct StoredResponse {
    pub status: u16,
    pub body: Value,
}

/// An emitted webhook event, kept for the admin state.
#[derive(Clone, Debug)]
pub struct EventRecord {
    pub event_id: String,
    pub event_type: String,
    pub created_at: Ts,
    /// The 2026-02-03 `data`.
    pub data: Value,
}

/// Everything the simulator knows.
#[derive(Debug, Default)]
pub struct Model {
    pub seq: u64,
    pub lines: Vec<PhoneLine>,
    pub chats: Vec<Chat>,
    pub chat_index: HashMap<String, usize>,
    pub messages: HashMap<String, Message>,
    pub attachments: HashMap<String, Attachment>,
    pub subscriptions: Vec<Subscription>,
    pub queues: HashMap<String, SubQueue>,
    pub idempotency: HashMap<(&'static str, String), StoredResponse>,
    pub contact_cards: Vec<ContactCard>,
    pub deliveries: VecDeque<DeliveryRecord>,
    pub events: VecDeque<EventRecord>,
    pub faults: Faults,
    pub retry: RetryPolicy,
}

impl Model {
    pub fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    pub fn chat(&self, id: &str) -> Result<&Chat, ApiError> {
        self.chat_index
            .get(id)
            .and_then(|i| self.chats.get(*i))
            .ok_or_else(|| ApiError::chat_not_found(id))
    }

    pub fn chat_mut(&mut self, id: &str) -> Result<&mut Chat, ApiError> {
        match self.chat_index.get(id) {
            Some(i) => self
                .chats
                .get_mut(*i)
                .ok_or_else(|| ApiError::chat_not_found(id)),
            None => Err(ApiError::chat_not_found(id)),
        }
    }

    /// A message visible through the API (not deleted).
    pub fn message(&self, id: &str) -> Result<&Message, ApiError> {
        self.messages
            .get(id)
            .filter(|m| m.deleted_at.is_none())
            .ok_or_else(|| ApiError::message_not_found(id))
    }

    pub fn message_mut(&mut self, id: &str) -> Result<&mut Message, ApiError> {
        self.messages
            .get_mut(id)
            .filter(|m| m.deleted_at.is_none())
            .ok_or_else(|| ApiError::message_not_found(id))
    }

    pub fn is_line(&self, number: &str) -> bool {
        self.lines.iter().any(|l| l.phone_number == number)
    }

    /// An existing chat on `line` whose active human participants are exactly `others`.
    pub fn find_chat(&self, line: &str, others: &BTreeSet<String>) -> Option<&Chat> {
        self.chats
            .iter()
            .filter(|c| c.line == line && !c.left)
            .filter(|c| c.is_group == (others.len() > 1))
            .filter(|c| &c.participant_key() == others)
            .max_by_key(|c| c.activity_seq)
    }

    /// The message at the root of `id`'s reply chain.
    pub fn thread_root(&self, id: &str) -> String {
        let mut current = id.to_owned();
        for _ in 0..1000 {
            let Some(parent) = self
                .messages
                .get(&current)
                .and_then(|m| m.reply_to.as_ref())
                .map(|r| r.message_id.clone())
            else {
                break;
            };
            if !self.messages.contains_key(&parent) {
                break;
            }
            current = parent;
        }
        current
    }

    /// Resolves request parts into stored parts (attachment ids are looked up).
    pub fn resolve_parts(&self, specs: &[PartSpec], base_url: &str) -> Result<Vec<Part>, ApiError> {
        specs
            .iter()
            .map(|spec| {
                let kind = match spec {
                    PartSpec::Text {
                        value,
                        text_decorations,
                    } => PartKind::Text {
                        value: value.clone(),
                        text_decorations: text_decorations.clone(),
                    },
                    PartSpec::Link { value } => PartKind::Link {
                        value: value.clone(),
                    },
                    PartSpec::App {
                        app,
                        layout,
                        url,
                        fallback_text,
                    } => PartKind::App {
                        app: app.clone(),
                        layout: layout.clone(),
                        url: url.clone(),
                        fallback_text: fallback_text.clone(),
                    },
                    PartSpec::MediaUrl { url } => {
                        let filename = url
                            .split(['?', '#'])
                            .next()
                            .and_then(|u| u.rsplit('/').next())
                            .filter(|s| !s.is_empty() && !s.contains(':'))
                            .unwrap_or("file")
                            .to_owned();
                        PartKind::Media(Media {
                            id: new_id(),
                            mime_type: validation::mime_for(&filename).to_owned(),
                            filename,
                            size_bytes: 0,
                            url: url.clone(),
                        })
                    }
                    PartSpec::MediaAttachment { attachment_id } => {
                        let a = self
                            .attachments
                            .get(attachment_id)
                            .ok_or_else(|| ApiError::attachment_not_found(attachment_id))?;
                        if !a.is_complete() {
                            return Err(ApiError::attachment_not_ready(attachment_id));
                        }
                        PartKind::Media(media_of(a, base_url))
                    }
                };
                Ok(Part::new(kind))
            })
            .collect()
    }

    /// Checks a `reply_to` against the chat it is sent in.
    pub fn check_reply_to(&self, chat_id: &str, reply: &ReplyToSpec) -> Result<(), ApiError> {
        let target = self.message(&reply.message_id)?;
        if target.chat_id != chat_id {
            return Err(ApiError::invalid_param(format!(
                "reply_to.message_id {} belongs to another chat",
                reply.message_id
            )));
        }
        if reply.part_index as usize >= target.parts.len() {
            return Err(ApiError::invalid_param(format!(
                "reply_to.part_index {} is out of range: message {} has {} part(s)",
                reply.part_index,
                reply.message_id,
                target.parts.len()
            )));
        }
        Ok(())
    }
}

/// The media part for a stored attachment.
pub fn media_of(a: &Attachment, base_url: &str) -> Media {
    Media {
        id: a.id.clone(),
        filename: a.filename.clone(),
        mime_type: a.content_type.clone(),
        size_bytes: a.size_bytes,
        url: download_url(base_url, &a.id, &a.filename),
    }
}

/// Where an attachment's bytes are served (the simulator's stand-in for the CDN).
pub fn download_url(base_url: &str, id: &str, filename: &str) -> String {
    format!("{base_url}/_sim/files/{id}/{}", percent_encode(filename))
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Fixed settings of one simulator instance.
#[derive(Clone, Debug)]
pub struct Settings {
    pub api_key: String,
    pub partner_id: String,
    pub bot_line: String,
    pub lifecycle_delay: Duration,
    /// Base URL used in upload/download URLs and vcf links, without a trailing slash.
    pub base_url: String,
}

pub(crate) struct Inner {
    pub settings: Settings,
    pub model: Mutex<Model>,
    pub changes: watch::Sender<u64>,
    pub shutdown: watch::Sender<bool>,
    pub http: reqwest::Client,
}

/// A cheap, cloneable handle on one simulator's state; the axum state of [`crate::router`].
#[derive(Clone)]
pub struct SimState {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for SimState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimState")
            .field("bot_line", &self.inner.settings.bot_line)
            .field("base_url", &self.inner.settings.base_url)
            .finish_non_exhaustive()
    }
}

impl SimState {
    /// A fresh simulator state. `base_url` is how clients reach this simulator (used in
    /// attachment upload/download URLs). Background tasks (webhook workers, the outbound
    /// lifecycle) are spawned lazily on the current tokio runtime when first needed.
    pub fn new(config: &crate::SimConfig, base_url: &str) -> Self {
        let base_url = config
            .public_base_url
            .clone()
            .unwrap_or_else(|| base_url.to_owned())
            .trim_end_matches('/')
            .to_owned();
        let settings = Settings {
            api_key: config.api_key.clone(),
            partner_id: config.partner_id.clone(),
            bot_line: config.bot_line.clone(),
            lifecycle_delay: config.lifecycle_delay,
            base_url,
        };
        let mut model = Model {
            lines: vec![PhoneLine {
                id: new_id(),
                phone_number: config.bot_line.clone(),
                forwarding_number: None,
            }],
            ..Model::default()
        };
        if let Some((url, secret)) = &config.webhook {
            let t = now();
            model.subscriptions.push(Subscription {
                id: new_id(),
                created_at: t,
                updated_at: t,
                target_url: url.clone(),
                secret: secret.clone(),
                subscribed_events: validation::WEBHOOK_EVENT_TYPES
                    .iter()
                    .map(|s| (*s).to_owned())
                    .collect(),
                phone_numbers: None,
                is_active: true,
            });
        }
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("linq-sim/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self {
            inner: Arc::new(Inner {
                settings,
                model: Mutex::new(model),
                changes: watch::channel(0).0,
                shutdown: watch::channel(false).0,
                http,
            }),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Model> {
        self.inner
            .model
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Reads the model.
    pub fn read<R>(&self, f: impl FnOnce(&Model) -> R) -> R {
        f(&self.lock())
    }

    /// Changes the model; see [`Txn`].
    pub(crate) fn txn<R>(&self, f: impl FnOnce(&mut Txn<'_>) -> R) -> R {
        let (result, lifecycles) = {
            let mut guard = self.lock();
            let mut tx = Txn {
                m: &mut guard,
                state: self,
                lifecycles: Vec::new(),
            };
            let r = f(&mut tx);
            (r, std::mem::take(&mut tx.lifecycles))
        };
        for id in lifecycles {
            let state = self.clone();
            self.spawn(async move { run_lifecycle(state, id).await });
        }
        self.notify_changed();
        result
    }

    /// Signals the admin change stream.
    pub fn notify_changed(&self) {
        self.inner.changes.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// A receiver that sees every state change (coalesced).
    pub fn subscribe_changes(&self) -> watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    pub(crate) fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.inner.shutdown.subscribe()
    }

    /// Stops every background task (webhook workers, lifecycles, SSE streams).
    pub fn stop_background(&self) {
        self.inner.shutdown.send_replace(true);
        let mut m = self.lock();
        for q in m.queues.values_mut() {
            if let Some(h) = q.worker.take() {
                h.abort();
            }
        }
    }

    /// Spawns a task that ends when the simulator shuts down.
    pub(crate) fn spawn<F>(&self, fut: F) -> tokio::task::AbortHandle
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let mut stop = self.shutdown_signal();
        tokio::spawn(async move {
            tokio::select! {
                _ = fut => {}
                _ = stop.wait_for(|s| *s) => {}
            }
        })
        .abort_handle()
    }

    /// The current webhook retry policy.
    pub fn retry_policy(&self) -> RetryPolicy {
        self.lock().retry.clone()
    }

    /// Replaces the webhook retry policy (tests shorten it).
    pub fn set_retry_policy(&self, policy: RetryPolicy) {
        self.lock().retry = policy;
    }

    /// The current fault settings.
    pub fn faults(&self) -> Faults {
        self.lock().faults.clone()
    }

    /// Replaces the fault settings.
    pub fn set_faults(&self, faults: Faults) {
        self.lock().faults = faults;
        self.notify_changed();
    }
}

/// One change to the model with its side effects; see [`SimState::txn`].
pub(crate) struct Txn<'a> {
    pub m: &'a mut Model,
    pub state: &'a SimState,
    lifecycles: Vec<String>,
}

impl Txn<'_> {
    pub fn settings(&self) -> &Settings {
        &self.state.inner.settings
    }

    /// Queues an event to every matching subscription.
    pub fn emit(&mut self, event: Event) {
        webhooks::enqueue(self.state, self.m, event);
    }

    /// Starts queued → sent → delivered → read for an outbound message after this change.
    pub fn start_lifecycle(&mut self, message_id: String) {
        self.lifecycles.push(message_id);
    }

    /// Creates a chat on `line` with `others` (normalized handles) and emits `chat.created`.
    pub fn create_chat(&mut self, line: &str, others: &[String], service: Service) -> String {
        let t = now();
        let seq = self.m.next_seq();
        let mut handles = vec![Handle {
            id: new_id(),
            handle: line.to_owned(),
            service,
            joined_at: t,
            is_me: true,
            left_at: None,
            status: HandleStatus::Active,
        }];
        for h in others {
            handles.push(Handle {
                id: new_id(),
                handle: h.clone(),
                service: if h.contains('@') {
                    Service::IMessage
                } else {
                    service
                },
                joined_at: t,
                is_me: false,
                left_at: None,
                status: HandleStatus::Active,
            });
        }
        let chat = Chat {
            id: new_id(),
            created_at: t,
            updated_at: t,
            custom_name: None,
            group_chat_icon: None,
            handles,
            is_group: others.len() > 1,
            service,
            line: line.to_owned(),
            left: false,
            bot_typing: false,
            others_typing: BTreeSet::new(),
            activity_seq: seq,
            messages: Vec::new(),
            last_read_at: None,
            contact_card_shared_at: None,
            location_requested_at: None,
        };
        let id = chat.id.clone();
        let event = Event::same("chat.created", Some(line), wire::chat_created(&chat));
        self.m.chat_index.insert(id.clone(), self.m.chats.len());
        self.m.chats.push(chat);
        self.emit(event);
        id
    }

    /// Stores an outbound message from the bot and starts its lifecycle. Validation of the
    /// chat (exists, not left) and of `reply_to` happens here.
    pub fn send_outbound(
        &mut self,
        chat_id: &str,
        content: &ContentSpec,
        voice_memo: bool,
    ) -> Result<String, ApiError> {
        let base_url = self.settings().base_url.clone();
        let chat = self.m.chat(chat_id)?;
        chat.ensure_available()?;
        let sender = chat
            .me()
            .cloned()
            .ok_or_else(|| ApiError::internal("chat has no handle for your line"))?;
        let chat_service = chat.service;
        if let Some(r) = &content.reply_to {
            self.m.check_reply_to(chat_id, r)?;
        }
        let parts = self.m.resolve_parts(&content.parts, &base_url)?;
        let t = now();
        let seq = self.m.next_seq();
        let service = match content.preferred_service.as_deref() {
            Some("SMS") => Service::Sms,
            Some("RCS") => Service::Rcs,
            _ => chat_service,
        };
        let msg = Message {
            id: new_id(),
            chat_id: chat_id.to_owned(),
            seq,
            created_at: t,
            updated_at: t,
            direction: Direction::Outbound,
            sender,
            parts,
            effect: content.effect.clone(),
            reply_to: content.reply_to.clone(),
            idempotency_key: content.idempotency_key.clone(),
            preferred_service: content.preferred_service.clone(),
            service,
            status: DeliveryStatus::Queued,
            sent_at: None,
            delivered_at: None,
            read_at: None,
            edit_count: 0,
            deleted_at: None,
            voice_memo,
        };
        let id = msg.id.clone();
        self.m.messages.insert(id.clone(), msg);
        let chat = self.m.chat_mut(chat_id)?;
        chat.messages.push(id.clone());
        chat.activity_seq = seq;
        chat.updated_at = t;
        chat.bot_typing = false;
        self.start_lifecycle(id.clone());
        Ok(id)
    }

    /// Stores an inbound message from `from` and emits `message.received`.
    pub fn receive_inbound(
        &mut self,
        chat_id: &str,
        from: &str,
        parts: Vec<Part>,
        reply_to: Option<ReplyToSpec>,
    ) -> Result<String, ApiError> {
        let chat = self.m.chat(chat_id)?;
        chat.ensure_available()?;
        let sender = chat.active_handle(from).cloned().ok_or_else(|| {
            ApiError::invalid_param(format!(
                "{from} is not an active participant of chat {chat_id}"
            ))
        })?;
        if let Some(r) = &reply_to {
            self.m.check_reply_to(chat_id, r)?;
        }
        let t = now();
        let seq = self.m.next_seq();
        let msg = Message {
            id: new_id(),
            chat_id: chat_id.to_owned(),
            seq,
            created_at: t,
            updated_at: t,
            direction: Direction::Inbound,
            service: sender.service,
            sender,
            parts,
            effect: None,
            reply_to,
            idempotency_key: None,
            preferred_service: None,
            status: DeliveryStatus::Received,
            sent_at: Some(t),
            delivered_at: None,
            read_at: None,
            edit_count: 0,
            deleted_at: None,
            voice_memo: false,
        };
        let id = msg.id.clone();
        let chat = self.m.chat_mut(chat_id)?;
        chat.messages.push(id.clone());
        chat.activity_seq = seq;
        chat.updated_at = t;
        chat.others_typing
            .remove(&validation::normalize_handle(from));
        let chat = chat.clone();
        let event = wire::message_event("message.received", &msg, &chat);
        self.m.messages.insert(id.clone(), msg);
        self.emit(event);
        Ok(id)
    }

    /// Moves an outbound message one step along its lifecycle and emits the matching event.
    /// Returns false when there is nothing more to do.
    pub fn advance(&mut self, message_id: &str, to: DeliveryStatus) -> bool {
        let t = now();
        let Some(msg) = self.m.messages.get_mut(message_id) else {
            return false;
        };
        if msg.status == DeliveryStatus::Failed {
            return false;
        }
        let event_type = match to {
            DeliveryStatus::Sent => {
                msg.sent_at = Some(t);
                "message.sent"
            }
            DeliveryStatus::Delivered => {
                msg.delivered_at = Some(t);
                "message.delivered"
            }
            DeliveryStatus::Read => {
                msg.read_at = Some(t);
                "message.read"
            }
            _ => return false,
        };
        msg.status = to;
        let msg = msg.clone();
        let Ok(chat) = self.m.chat(&msg.chat_id).cloned() else {
            return false;
        };
        self.emit(wire::message_event(event_type, &msg, &chat));
        true
    }

    /// Adds or removes a reaction by `reactor` (a handle of the message's chat).
    pub fn react(
        &mut self,
        message_id: &str,
        reactor: &str,
        add: bool,
        kind: &str,
        custom_emoji: Option<String>,
        part_index: u32,
    ) -> Result<(), ApiError> {
        let msg = self.m.message(message_id)?;
        let chat = self.m.chat(&msg.chat_id)?.clone();
        chat.ensure_available()?;
        let handle = chat.active_handle(reactor).cloned().ok_or_else(|| {
            ApiError::invalid_param(format!(
                "{reactor} is not an active participant of chat {}",
                chat.id
            ))
        })?;
        if part_index as usize >= msg.parts.len() {
            return Err(ApiError::invalid_param(format!(
                "part_index {part_index} is out of range: message {message_id} has {} part(s)",
                msg.parts.len()
            )));
        }
        let t = now();
        let seq = self.m.next_seq();
        let msg = self.m.message_mut(message_id)?;
        let part = msg
            .parts
            .get_mut(part_index as usize)
            .ok_or_else(|| ApiError::invalid_param("part_index out of range"))?;
        let same_reactor = |r: &Reaction| r.handle.id == handle.id;
        let changed = if add {
            // One tapback per person per part: a new one replaces the old.
            part.reactions.retain(|r| !same_reactor(r));
            part.reactions.push(Reaction {
                handle: handle.clone(),
                is_me: handle.is_me,
                kind: kind.to_owned(),
                custom_emoji: custom_emoji.clone(),
                at: t,
            });
            true
        } else {
            let before = part.reactions.len();
            part.reactions
                .retain(|r| !(same_reactor(r) && r.kind == kind));
            part.reactions.len() != before
        };
        msg.updated_at = t;
        let service = msg.service;
        if let Ok(c) = self.m.chat_mut(&chat.id) {
            c.activity_seq = seq;
        }
        if changed {
            let data = wire::reaction_event(
                &chat.id,
                message_id,
                &handle,
                kind,
                custom_emoji.as_deref(),
                part_index,
                service,
                t,
            );
            let event_type = if add {
                "reaction.added"
            } else {
                "reaction.removed"
            };
            self.emit(Event::same(event_type, Some(&chat.line), data));
        }
        Ok(())
    }
}

/// Walks an outbound message through sent → delivered → read.
async fn run_lifecycle(state: SimState, message_id: String) {
    let delay = state.settings().lifecycle_delay;
    for step in [
        DeliveryStatus::Sent,
        DeliveryStatus::Delivered,
        DeliveryStatus::Read,
    ] {
        tokio::time::sleep(delay).await;
        if !state.txn(|tx| tx.advance(&message_id, step)) {
            break;
        }
    }
}
