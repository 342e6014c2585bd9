//! What the fake records and answers: a [`Call`] per request, a [`Failure`]
//! for every refusal (injected or Telegram's own), the [`Upload`] of a file.

use std::fmt;

use serde_json::Value;
use teloxide_core::types::{ChatId, MessageId};

use crate::markup::{Button, inline_keyboard};
use crate::params::integer;

/// A waiter's error lists every call; longer parameters are cut to this many
/// characters so a 4096-character message does not bury the rest.
const MAX_LISTED_PARAMS_CHARS: usize = 400;

/// One Bot API request the fake answered, in the order answered (`getUpdates`
/// is recorded when it returns, not when it starts waiting).
#[derive(Clone, Debug)]
pub struct Call {
    /// Position among all calls of this fake, every token, from 0.
    pub seq: u64,
    /// The token from the URL, registered or not.
    pub token: String,
    /// The method in the Bot API's spelling, e.g. `sendMessage` (teloxide
    /// sends `SendMessage`; Telegram ignores the case).
    pub method: String,
    /// The parameters (JSON object): the JSON body, or the query, form or
    /// multipart text fields; JSON-valued fields such as `reply_markup` are
    /// parsed, other form values stay strings.
    pub params: Value,
    /// The file of `sendDocument`/`sendPhoto` when it was uploaded.
    pub upload: Option<Upload>,
    /// What the fake answered: the `result`, or the error.
    pub response: Result<Value, Failure>,
}

/// An error answer: `{"ok":false,"error_code":…,"description":…}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub code: u16,
    pub description: String,
    /// Sent as `parameters.retry_after`; teloxide turns it into `RetryAfter`.
    pub retry_after: Option<u32>,
}

/// A file a bot uploaded with multipart/form-data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upload {
    /// The part's file name; empty when the bot gave none.
    pub file_name: String,
    pub content_type: Option<String>,
    pub bytes: Vec<u8>,
}

/// A method's answer: its `result`, or the refusal.
pub(crate) type Answer = Result<Value, Failure>;

impl Call {
    /// Whether the fake answered `ok: true`.
    #[must_use]
    pub fn is_ok(&self) -> bool {
        self.response.is_ok()
    }

    /// The `result` the fake answered, if it did not fail.
    #[must_use]
    pub fn result(&self) -> Option<&Value> {
        self.response.as_ref().ok()
    }

    /// The `chat_id` parameter, when numeric.
    #[must_use]
    pub fn chat_id(&self) -> Option<ChatId> {
        integer(self.params.get("chat_id")?).map(ChatId)
    }

    /// The `message_id` parameter.
    #[must_use]
    pub fn message_id(&self) -> Option<MessageId> {
        integer(self.params.get("message_id")?)
            .and_then(|id| i32::try_from(id).ok())
            .map(MessageId)
    }

    /// The `text` parameter, else the `caption`, as sent (markup included).
    #[must_use]
    pub fn text(&self) -> Option<&str> {
        self.params
            .get("text")
            .or_else(|| self.params.get("caption"))
            .and_then(Value::as_str)
    }

    /// The `parse_mode` parameter.
    #[must_use]
    pub fn parse_mode(&self) -> Option<&str> {
        self.params.get("parse_mode").and_then(Value::as_str)
    }

    /// The inline keyboard of `reply_markup`; empty when there is none.
    #[must_use]
    pub fn keyboard(&self) -> Vec<Vec<Button>> {
        let Some(markup) = self.params.get("reply_markup") else {
            return Vec::new();
        };
        let markup = match markup {
            Value::String(text) => serde_json::from_str(text).unwrap_or(Value::Null),
            other => other.clone(),
        };
        markup
            .get("inline_keyboard")
            .map(|rows| inline_keyboard(rows).unwrap_or_default())
            .unwrap_or_default()
    }
}

impl Failure {
    /// A 429 `Too Many Requests` with `parameters.retry_after`.
    #[must_use]
    pub fn retry_after(seconds: u32) -> Failure {
        Failure {
            code: 429,
            description: format!("Too Many Requests: retry after {seconds}"),
            retry_after: Some(seconds),
        }
    }

    /// Any error answer, e.g. `Failure::new(403, "Forbidden: bot was blocked by the user")`.
    #[must_use]
    pub fn new(code: u16, description: &str) -> Failure {
        Failure {
            code,
            description: description.to_owned(),
            retry_after: None,
        }
    }

    pub(crate) fn bad_request(description: impl Into<String>) -> Failure {
        Failure {
            code: 400,
            description: description.into(),
            retry_after: None,
        }
    }
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let params = self.params.to_string();
        let shown: String = params.chars().take(MAX_LISTED_PARAMS_CHARS).collect();
        let cut = if shown.len() < params.len() {
            "…"
        } else {
            ""
        };
        write!(
            f,
            "#{} bot {} {} {shown}{cut}",
            self.seq,
            bot_label(&self.token),
            self.method
        )?;
        if let Some(upload) = &self.upload {
            write!(f, " {upload}")?;
        }
        match &self.response {
            Ok(_) => write!(f, " -> ok"),
            Err(failure) => write!(f, " -> {} {}", failure.code, failure.description),
        }
    }
}

/// `[file "name", N bytes]`, as a call or a message lists its file.
impl fmt::Display for Upload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[file {:?}, {} bytes]", self.file_name, self.bytes.len())
    }
}

/// The bot id part of a token, to name a bot without printing its secret.
pub(crate) fn bot_label(token: &str) -> &str {
    token.split(':').next().unwrap_or_default()
}
