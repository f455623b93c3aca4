//! The channel interface: how the core sends a message to a chat without knowing which
//! messaging service carries it, and the Linq implementation of it. A second channel (the web
//! UI's chat box, Telegram, …) implements [`Channel`] and nothing else in the core changes.

use std::time::Duration;

use futures::future::BoxFuture;

use crate::store::outbox::OutgoingMessage;
use crate::workspace::Workspaces;

/// What the channel said when it accepted a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub message_id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// Try again later (5xx, 429, network); `retry_after` is the channel's hint, if it gave one.
    #[error("{message}")]
    Retryable {
        message: String,
        retry_after: Option<Duration>,
    },
    /// Trying again cannot help (4xx other than 408/429, including 409).
    #[error("{0}")]
    Permanent(String),
}

pub trait Channel: Send + Sync {
    fn name(&self) -> &'static str;
    /// The bot's own handle on this channel, if known.
    fn our_handle(&self) -> Option<&str>;
    /// Sends `message` to `chat_id`. The idempotency key makes a repeated call after a crash or
    /// a lost answer return the original message instead of sending a second one.
    fn send<'a>(
        &'a self,
        chat_id: &'a str,
        message: &'a OutgoingMessage,
        idempotency_key: &'a str,
    ) -> BoxFuture<'a, Result<Accepted, ChannelError>>;
    /// Shows (or hides) the bot's typing indicator where the channel supports it.
    fn typing<'a>(&'a self, chat_id: &'a str, on: bool) -> BoxFuture<'a, Result<(), ChannelError>>;
}

/// Linq Partner API v3.
pub struct LinqChannel {
    client: linq::Client,
    our_handle: Option<String>,
    /// Attachments are only ever read from beneath a chat's home in these workspaces.
    workspaces: Workspaces,
}

impl LinqChannel {
    pub fn new(client: linq::Client, our_handle: Option<String>, workspaces: Workspaces) -> Self {
        Self {
            client,
            our_handle,
            workspaces,
        }
    }
}

impl Channel for LinqChannel {
    fn name(&self) -> &'static str {
        "linq"
    }

    fn our_handle(&self) -> Option<&str> {
        self.our_handle.as_deref()
    }

    fn send<'a>(
        &'a self,
        chat_id: &'a str,
        message: &'a OutgoingMessage,
        idempotency_key: &'a str,
    ) -> BoxFuture<'a, Result<Accepted, ChannelError>> {
        Box::pin(async move {
            let mut content =
                linq::types::MessageContent::text(&message.text).idempotency_key(idempotency_key);
            for path in &message.attachments {
                let id = self.upload(chat_id, std::path::Path::new(path)).await?;
                content = content.part(linq::types::MessagePart::Media(
                    linq::types::MediaPart::attachment(id),
                ));
            }
            if let Some(reply_to) = &message.reply_to {
                content = content.reply_to(reply_to);
            }
            match self.client.send_message(chat_id, &content).await {
                Ok(resp) => Ok(Accepted {
                    message_id: resp.message.id,
                }),
                Err(e) => Err(classify(e)),
            }
        })
    }

    fn typing<'a>(&'a self, chat_id: &'a str, on: bool) -> BoxFuture<'a, Result<(), ChannelError>> {
        Box::pin(self.set_typing(chat_id, on))
    }
}

impl LinqChannel {
    /// Uploads one file through Linq's pre-upload flow and returns its attachment id. The file
    /// must be beneath the chat's workspace (checked again here, at the point of reading).
    async fn upload(&self, chat_id: &str, path: &std::path::Path) -> Result<String, ChannelError> {
        // The chat's home is the path's ancestor directly under the workspace root.
        let home = path
            .ancestors()
            .find(|a| a.parent() == Some(self.workspaces.root()))
            .ok_or_else(|| {
                ChannelError::Permanent(format!(
                    "attachment {} is not in a chat workspace",
                    path.display()
                ))
            })?;
        let file = self
            .workspaces
            .read_attachment(chat_id, home, path)
            .await
            .map_err(|e| ChannelError::Permanent(format!("attachment: {e}")))?;
        let upload = self
            .client
            .create_attachment(&file.filename, file.content_type, file.bytes.len() as u64)
            .await
            .map_err(classify)?;
        self.client
            .upload_attachment(&upload, file.bytes)
            .await
            .map_err(classify)?;
        Ok(upload.attachment_id)
    }

    async fn set_typing(&self, chat_id: &str, on: bool) -> Result<(), ChannelError> {
        let result = if on {
            self.client.start_typing(chat_id).await
        } else {
            self.client.stop_typing(chat_id).await
        };
        result.map_err(classify)
    }
}

fn classify(e: linq::Error) -> ChannelError {
    let retry_after = match &e {
        linq::Error::Api { retry_after, .. } => *retry_after,
        _ => None,
    };
    if e.is_retryable() {
        ChannelError::Retryable {
            message: e.to_string(),
            retry_after,
        }
    } else {
        ChannelError::Permanent(e.to_string())
    }
}
