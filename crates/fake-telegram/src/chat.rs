//! Chats as the user sees them: each message as it is now ([`ChatMessage`]),
//! and the `Chat` and `User` objects of the updates and answers.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use teloxide_core::types::MessageId;

use crate::call::Upload;
use crate::markup::Button;
use crate::parse_mode::Rendered;

/// A message in a chat, as the user sees it now.
#[derive(Clone, Debug)]
pub struct ChatMessage {
    pub id: MessageId,
    /// Sent by the bot (else pushed by the test as the user).
    pub from_bot: bool,
    /// The visible text (markup removed) or the caption, after every edit.
    pub text: String,
    /// The text exactly as the bot last sent it, markup included.
    pub raw_text: String,
    pub parse_mode: Option<String>,
    /// Every visible text this message had, the first as sent.
    pub history: Vec<String>,
    /// The inline keyboard now attached; empty when none.
    pub keyboard: Vec<Vec<Button>>,
    /// The document or photo of a file message.
    pub upload: Option<Upload>,
    pub deleted: bool,
    /// The `Message` object as Telegram would return it now.
    pub json: Value,
}

impl ChatMessage {
    /// A message the bot has just sent: `json` is its `Message` object, `text`
    /// its text or caption.
    pub(crate) fn sent(
        id: MessageId,
        text: Rendered,
        keyboard: Vec<Vec<Button>>,
        upload: Option<Upload>,
        json: Value,
    ) -> ChatMessage {
        ChatMessage {
            id,
            from_bot: true,
            history: vec![text.visible.clone()],
            text: text.visible,
            raw_text: text.raw,
            parse_mode: text.parse_mode,
            keyboard,
            upload,
            deleted: false,
            json,
        }
    }
}

impl fmt::Display for ChatMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sender = if self.from_bot { "bot" } else { "user" };
        write!(f, "#{} {sender} {:?}", self.id.0, self.text)?;
        if let Some(upload) = &self.upload {
            write!(f, " {upload}")?;
        }
        if !self.keyboard.is_empty() {
            let rows: Vec<Vec<String>> = self
                .keyboard
                .iter()
                .map(|row| {
                    row.iter()
                        .map(|button| {
                            format!(
                                "{}={}",
                                button.text,
                                button.callback_data.as_deref().unwrap_or("")
                            )
                        })
                        .collect()
                })
                .collect();
            write!(f, " keyboard {rows:?}")?;
        }
        if self.history.len() > 1 {
            write!(f, " ({} edits)", self.history.len() - 1)?;
        }
        if self.deleted {
            write!(f, " (deleted)")?;
        }
        Ok(())
    }
}

pub(crate) struct ChatState {
    pub(crate) messages: Vec<ChatMessage>,
    pub(crate) next_message_id: i32,
    /// How many bot messages `next_message_to` has handed out.
    pub(crate) read: usize,
}

impl ChatState {
    pub(crate) fn allocate_id(&mut self) -> MessageId {
        let message_id = MessageId(self.next_message_id);
        self.next_message_id += 1;
        message_id
    }
}

pub(crate) fn chat_json(chat: i64) -> Value {
    if chat > 0 {
        json!({ "id": chat, "type": "private", "first_name": format!("User {chat}"), "username": format!("user{chat}") })
    } else if chat < -1_000_000_000_000 {
        json!({ "id": chat, "type": "supergroup", "title": format!("Group {chat}") })
    } else {
        json!({ "id": chat, "type": "group", "title": format!("Group {chat}") })
    }
}

pub(crate) fn user_json(user: u64) -> Value {
    json!({
        "id": user,
        "is_bot": false,
        "first_name": format!("User {user}"),
        "username": format!("user{user}"),
        "language_code": "en",
    })
}

pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| i64::try_from(elapsed.as_secs()).unwrap_or(0))
}
