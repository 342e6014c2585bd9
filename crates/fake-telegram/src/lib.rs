//! A fake Telegram Bot API server for integration tests.
//!
//! [`FakeTelegram::start`] serves the Bot API over HTTP on `127.0.0.1:0`; a
//! teloxide `Bot` is pointed at it with `set_api_url(fake.url())`. Many bots
//! may share one fake (the admin bot, and the tenant bots whose `getMe` the
//! admin calls); each token is registered with [`FakeTelegram::add_bot`], which
//! returns the [`FakeBot`] handle tests drive it through.
//!
//! What it does, as Telegram does it:
//! - `getMe` for registered tokens; any method with an unknown token is 401
//!   `Unauthorized`;
//! - long polling: updates pushed by the test (`push_message`, `push_callback`,
//!   `push_messages` for a flood in one go)
//!   are served by `getUpdates` with `offset`, `limit`, `timeout` (a waiting
//!   poll wakes as soon as an update is pushed) and a remembered
//!   `allowed_updates`; a newer poll ends an older one with 409 Conflict;
//! - sent, edited and deleted messages are kept per chat as the user sees them
//!   ([`ChatMessage`]), and answered with full `Message` objects;
//! - the limits that catch bot bugs: 4096 characters per message, 64 bytes of
//!   callback data, HTML and MarkdownV2 that must parse, no edits of deleted
//!   messages, no edit that changes nothing, callback queries answered once.
//!
//! Every request is recorded as a [`Call`]; tests await what they expect with
//! a deadline ([`FakeBot::wait_for`], [`FakeBot::next_message_to`]), never
//! with sleeps. Failures are injected per method ([`FakeBot::fail_next`]).
//!
//! Not here: inline mode, media groups, file downloads, payments, forum
//! topics, `editMessageCaption`; any method not handled below is recorded and
//! answers `true`.

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use serde_json::{Map, Value, json};
use teloxide_core::types::{ChatId, MessageId, UserId};
use tokio::sync::{Notify, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Telegram's limit on a message text after entity parsing. Counted here in
/// Unicode scalar values; Telegram may count UTF-16 code units, so an
/// emoji-heavy text right at the limit can pass here and fail there.
const MAX_TEXT_CHARS: usize = 4096;
/// Telegram's limit on a caption after entity parsing.
const MAX_CAPTION_CHARS: usize = 1024;
/// Telegram's limit on `callback_data` of an inline button (1-64 bytes).
const MAX_CALLBACK_DATA_BYTES: usize = 64;
/// Bots may upload files of up to 50 MB; axum's default body limit is 2 MB.
const MAX_UPLOAD_BYTES: usize = 50 * 1024 * 1024;
/// `getUpdates` returns at most this many updates, whatever `limit` says.
const MAX_UPDATES_PER_POLL: i64 = 100;
/// Update kinds Telegram leaves out while `allowed_updates` is empty or unset.
const NOT_SENT_BY_DEFAULT: [&str; 3] =
    ["chat_member", "message_reaction", "message_reaction_count"];
/// The tags Telegram's HTML parse mode accepts.
const HTML_TAGS: [&str; 16] = [
    "b",
    "strong",
    "i",
    "em",
    "u",
    "ins",
    "s",
    "strike",
    "del",
    "span",
    "tg-spoiler",
    "a",
    "code",
    "pre",
    "blockquote",
    "tg-emoji",
];
/// `sendChatAction` actions Telegram accepts.
const CHAT_ACTIONS: [&str; 11] = [
    "typing",
    "upload_photo",
    "record_video",
    "upload_video",
    "record_voice",
    "upload_voice",
    "upload_document",
    "choose_sticker",
    "find_location",
    "record_video_note",
    "upload_video_note",
];
/// Parameters Telegram reads as JSON; form and multipart requests send them as
/// JSON text, which the fake parses so every recorded call looks alike.
const JSON_PARAMS: [&str; 9] = [
    "reply_markup",
    "commands",
    "scope",
    "allowed_updates",
    "message_ids",
    "entities",
    "caption_entities",
    "link_preview_options",
    "reply_parameters",
];
/// A waiter's error lists every call; longer parameters are cut to this many
/// characters so a 4096-character message does not bury the rest.
const MAX_LISTED_PARAMS_CHARS: usize = 400;
/// How long `shutdown` waits for open connections before abandoning them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

const UNAUTHORIZED: &str = "Unauthorized";
const CONFLICT: &str = "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running";
const WEBHOOK_ACTIVE: &str = "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first";
const NOT_MODIFIED: &str = "Bad Request: message is not modified: specified new message content and reply markup are \
                            exactly the same as a current content and reply markup of the message";
const QUERY_INVALID: &str =
    "Bad Request: query is too old and response timeout expired or query id is invalid";
const TEXT_BUTTONS: &str = "Bad Request: can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard";

/// The running fake server. Dropping it (or [`FakeTelegram::shutdown`]) stops
/// the server; [`FakeBot`] handles keep their recorded state readable.
pub struct FakeTelegram {
    /// State shared with the server task and with every [`FakeBot`] handle.
    shared: Arc<Shared>,
    /// `http://127.0.0.1:PORT/`, what `Bot::set_api_url` takes.
    url: String,
    /// Tells the server to stop accepting and close its connections; taken by
    /// `shutdown` or `drop`.
    stop: Option<oneshot::Sender<()>>,
    /// The server task; awaited by `shutdown`.
    server: Option<JoinHandle<()>>,
}

/// One registered bot token: push updates to it, read what it sent, wait for
/// its calls. Cheap to clone.
#[derive(Clone)]
pub struct FakeBot {
    shared: Arc<Shared>,
    token: String,
}

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

/// One button of an inline keyboard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Button {
    pub text: String,
    pub callback_data: Option<String>,
    pub url: Option<String>,
}

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

impl FakeTelegram {
    /// Binds `127.0.0.1:0` and serves the fake Bot API until dropped.
    ///
    /// # Panics
    ///
    /// If the loopback port cannot be bound.
    pub async fn start() -> FakeTelegram {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind the fake Telegram Bot API on 127.0.0.1:0");
        let port = listener
            .local_addr()
            .expect("local address of the fake Telegram")
            .port();
        let shared = Arc::new(Shared {
            state: Mutex::new(Registry::default()),
            changed: watch::channel(0).0,
            polls: Notify::new(),
        });
        let app = Router::new()
            .route("/{bot}/{method}", any(handle))
            .fallback(not_found)
            .layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES))
            .with_state(shared.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let stopped = async {
                let _ = stopped.await;
            };
            if let Err(err) = axum::serve(listener, app)
                .with_graceful_shutdown(stopped)
                .await
            {
                eprintln!("fake Telegram server failed: {err}");
            }
        });
        FakeTelegram {
            shared,
            url: format!("http://127.0.0.1:{port}/"),
            stop: Some(stop),
            server: Some(server),
        }
    }

    /// The Bot API base URL, `http://127.0.0.1:PORT/`.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Registers a bot token: `getMe` answers `bot_id` and `@username`.
    ///
    /// # Panics
    ///
    /// If the token is already registered.
    pub fn add_bot(&self, token: &str, bot_id: u64, username: &str) -> FakeBot {
        let mut state = self.shared.lock();
        assert!(
            !state.bots.contains_key(token),
            "bot token of bot {bot_id} registered twice"
        );
        state
            .bots
            .insert(token.to_owned(), BotState::new(bot_id, username));
        FakeBot {
            shared: self.shared.clone(),
            token: token.to_owned(),
        }
    }

    /// The handle of a registered token.
    ///
    /// # Panics
    ///
    /// If the token was never registered with `add_bot`.
    #[must_use]
    pub fn bot(&self, token: &str) -> FakeBot {
        assert!(
            self.shared.lock().bots.contains_key(token),
            "bot token {} is not registered",
            bot_label(token)
        );
        FakeBot {
            shared: self.shared.clone(),
            token: token.to_owned(),
        }
    }

    /// Every call so far, every token (unknown tokens included).
    #[must_use]
    pub fn calls(&self) -> Vec<Call> {
        self.shared.lock().calls.clone()
    }

    /// Stops the server: waiting polls return at once, open connections close,
    /// new connections are refused.
    pub async fn shutdown(mut self) {
        self.close();
        if let Some(mut server) = self.server.take()
            && tokio::time::timeout(SHUTDOWN_GRACE, &mut server)
                .await
                .is_err()
        {
            server.abort();
        }
    }

    fn close(&mut self) {
        self.shared.lock().closed = true;
        self.shared.polls.notify_waiters();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Drop for FakeTelegram {
    fn drop(&mut self) {
        self.close();
    }
}

impl FakeBot {
    /// The bot's token.
    #[must_use]
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The bot's user id.
    #[must_use]
    pub fn id(&self) -> UserId {
        UserId(self.with_bot(|bot| bot.id))
    }

    /// The user `from` writes `text` to the bot in their private chat (whose id
    /// is the user's id); a leading `/command` gets its `bot_command` entity.
    /// Returns the message's id in the chat.
    ///
    /// # Panics
    ///
    /// If `chat` is not `from`'s private chat (use `push_group_message`).
    pub fn push_message(&self, chat: ChatId, from: UserId, text: &str) -> MessageId {
        assert!(
            u64::try_from(chat.0).ok() == Some(from.0),
            "a private chat's id is its user's id (chat {}, user {}); use push_group_message for groups",
            chat.0,
            from.0
        );
        self.push_text(chat, from, text)
    }

    /// Many users each write to the bot in their private chats: pushed under
    /// one lock and announced with one wake-up, as a flood arrives. Returns the
    /// message ids in order.
    ///
    /// # Panics
    ///
    /// If a user id does not fit a chat id.
    pub fn push_messages(&self, messages: &[(UserId, &str)]) -> Vec<MessageId> {
        let ids = self.with_bot(|bot| {
            messages
                .iter()
                .map(|(from, text)| {
                    let chat = ChatId(i64::try_from(from.0).expect("a user id fits a chat id"));
                    bot.push_text(chat, *from, text)
                })
                .collect()
        });
        self.shared.wake_polls();
        ids
    }

    /// The user `from` writes `text` in the group `chat` (a negative id; below
    /// -1000000000000 a supergroup).
    ///
    /// # Panics
    ///
    /// If `chat` is not a group id.
    pub fn push_group_message(&self, chat: ChatId, from: UserId, text: &str) -> MessageId {
        assert!(chat.0 < 0, "group chat ids are negative, got {}", chat.0);
        self.push_text(chat, from, text)
    }

    /// The user `from` presses an inline button with `data` under the bot's
    /// message `message` in `chat`. The update carries the message as it is now
    /// (an inaccessible message if it is unknown or deleted). Returns the
    /// callback query id the bot must answer.
    pub fn push_callback(
        &self,
        chat: ChatId,
        from: UserId,
        message: MessageId,
        data: &str,
    ) -> String {
        let query_id = self.with_bot(|bot| {
            bot.next_callback_query += 1;
            let query_id = format!("{}{:06}", from.0, bot.next_callback_query);
            let message_json = match bot
                .chats
                .get(&chat.0)
                .and_then(|c| c.messages.iter().find(|m| m.id == message))
            {
                Some(shown) if !shown.deleted => shown.json.clone(),
                _ => json!({ "chat": chat_json(chat.0), "message_id": message.0, "date": 0 }),
            };
            let payload = json!({
                "id": query_id,
                "from": user_json(from.0),
                "message": message_json,
                "chat_instance": format!("{}", chat.0.unsigned_abs()),
                "data": data,
            });
            bot.callback_queries.insert(query_id.clone(), false);
            bot.enqueue("callback_query", payload);
            query_id
        });
        self.shared.wake_polls();
        query_id
    }

    /// Enqueues any update, `{"update_id": …, kind: payload}`. Returns its
    /// update id, or `None` when the bot's `allowed_updates` leave `kind` out
    /// (Telegram then never creates it).
    pub fn push_update(&self, kind: &str, payload: Value) -> Option<u32> {
        let update_id = self.with_bot(|bot| bot.enqueue(kind, payload));
        self.shared.wake_polls();
        update_id
    }

    /// Updates pushed and not yet confirmed by a later `getUpdates` offset.
    #[must_use]
    pub fn pending_updates(&self) -> usize {
        self.with_bot(|bot| bot.updates.len())
    }

    /// This bot's calls of `method` (case-insensitive), in order.
    #[must_use]
    pub fn calls(&self, method: &str) -> Vec<Call> {
        let state = self.shared.lock();
        state
            .calls
            .iter()
            .filter(|call| call.token == self.token && call.method.eq_ignore_ascii_case(method))
            .cloned()
            .collect()
    }

    /// How many times this bot called `method` (case-insensitive).
    #[must_use]
    pub fn call_count(&self, method: &str) -> usize {
        let state = self.shared.lock();
        state
            .calls
            .iter()
            .filter(|call| call.token == self.token && call.method.eq_ignore_ascii_case(method))
            .count()
    }

    /// Every call of this bot, in order.
    #[must_use]
    pub fn all_calls(&self) -> Vec<Call> {
        let state = self.shared.lock();
        state
            .calls
            .iter()
            .filter(|call| call.token == self.token)
            .cloned()
            .collect()
    }

    /// The chat as the user sees it: user and bot messages in order, deleted
    /// ones included (flagged).
    #[must_use]
    pub fn messages_in(&self, chat: ChatId) -> Vec<ChatMessage> {
        self.with_bot(|bot| {
            bot.chats
                .get(&chat.0)
                .map(|c| c.messages.clone())
                .unwrap_or_default()
        })
    }

    /// One message of a chat, if it exists.
    #[must_use]
    pub fn message(&self, chat: ChatId, message: MessageId) -> Option<ChatMessage> {
        self.with_bot(|bot| {
            bot.chats
                .get(&chat.0)?
                .messages
                .iter()
                .find(|m| m.id == message)
                .cloned()
        })
    }

    /// The visible texts a message was edited to, in order (the text as first
    /// sent is not included; see `ChatMessage::history`).
    #[must_use]
    pub fn edits_of(&self, chat: ChatId, message: MessageId) -> Vec<String> {
        self.message(chat, message)
            .map(|m| m.history[1..].to_vec())
            .unwrap_or_default()
    }

    /// The command list set with `setMyCommands` for the default scope and no
    /// language, as (command, description).
    #[must_use]
    pub fn commands(&self) -> Vec<(String, String)> {
        self.scoped_commands(&json!({ "type": "default" }), "")
    }

    /// The command list set for `scope` (a `BotCommandScope` object) and
    /// `language_code` (empty for none).
    #[must_use]
    pub fn scoped_commands(&self, scope: &Value, language_code: &str) -> Vec<(String, String)> {
        let key = commands_key(Some(scope), language_code);
        self.with_bot(|bot| {
            let Some(Value::Array(commands)) = bot.commands.get(&key) else {
                return Vec::new();
            };
            commands
                .iter()
                .map(|c| {
                    let field = |name: &str| c[name].as_str().unwrap_or_default().to_owned();
                    (field("command"), field("description"))
                })
                .collect()
        })
    }

    /// The next `times` calls of `method` (case-insensitive) fail with
    /// `failure` instead of running. A 5xx failure makes teloxide sleep 10 s.
    pub fn fail_next(&self, method: &str, times: usize, failure: Failure) {
        self.with_bot(|bot| {
            let queue = bot.failures.entry(method.to_ascii_lowercase()).or_default();
            queue.extend(std::iter::repeat_n(failure, times));
        });
    }

    /// From now on, more than `per_minute` messages a minute to one group
    /// (a negative chat id) get 429 with `retry_after`, as Telegram answers.
    pub fn limit_group_rate(&self, per_minute: usize) {
        self.with_bot(|bot| bot.group_rate = Some(per_minute));
    }

    /// Waits until this bot has a `getUpdates` call waiting for updates: the
    /// bot is up and polling.
    ///
    /// # Errors
    ///
    /// After `timeout`, every call so far.
    pub async fn wait_for_poll(&self, timeout: Duration) -> Result<(), String> {
        self.wait("no getUpdates call waiting", timeout, |state| {
            (state
                .bots
                .get(&self.token)
                .is_some_and(|bot| bot.waiting_polls > 0))
            .then_some(())
        })
        .await
    }

    /// Waits for the first call of this bot (from the start) that `matches`.
    /// The predicate runs with the fake locked: it must not call the fake.
    ///
    /// # Errors
    ///
    /// After `timeout`, every call so far and this bot's chats.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        matches: impl Fn(&Call) -> bool,
    ) -> Result<Call, String> {
        self.wait("no matching call", timeout, |state| {
            state
                .calls
                .iter()
                .find(|call| call.token == self.token && matches(call))
                .cloned()
        })
        .await
    }

    /// Waits for a message of `chat` (user's or bot's, deleted or not) that
    /// `matches` as it is now, e.g. the final text of an edited message.
    /// The predicate runs with the fake locked: it must not call the fake.
    ///
    /// # Errors
    ///
    /// After `timeout`, every call so far and this bot's chats.
    pub async fn wait_for_message(
        &self,
        chat: ChatId,
        timeout: Duration,
        matches: impl Fn(&ChatMessage) -> bool,
    ) -> Result<ChatMessage, String> {
        self.wait("no matching message", timeout, |state| {
            let chat_state = state.bots.get(&self.token)?.chats.get(&chat.0)?;
            chat_state.messages.iter().find(|m| matches(m)).cloned()
        })
        .await
    }

    /// Waits for the next message the bot sends to `chat` that this method has
    /// not returned yet (text, document or photo), as it is now.
    ///
    /// # Errors
    ///
    /// After `timeout`, every call so far and this bot's chats.
    pub async fn next_message_to(
        &self,
        chat: ChatId,
        timeout: Duration,
    ) -> Result<ChatMessage, String> {
        self.wait("no new message from the bot", timeout, |state| {
            let chat_state = state.bots.get_mut(&self.token)?.chats.get_mut(&chat.0)?;
            let next = chat_state
                .messages
                .iter()
                .filter(|m| m.from_bot)
                .nth(chat_state.read)?
                .clone();
            chat_state.read += 1;
            Some(next)
        })
        .await
    }

    fn push_text(&self, chat: ChatId, from: UserId, text: &str) -> MessageId {
        let message_id = self.with_bot(|bot| bot.push_text(chat, from, text));
        self.shared.wake_polls();
        message_id
    }

    fn with_bot<R>(&self, f: impl FnOnce(&mut BotState) -> R) -> R {
        let mut state = self.shared.lock();
        f(state.bot_mut(&self.token))
    }

    /// Checks `found` after every change of the fake until it answers or the
    /// deadline passes.
    async fn wait<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut found: impl FnMut(&mut Registry) -> Option<T>,
    ) -> Result<T, String> {
        let deadline = Instant::now() + timeout;
        let mut changed = self.shared.changed.subscribe();
        loop {
            changed.borrow_and_update();
            if let Some(res) = found(&mut self.shared.lock()) {
                return Ok(res);
            }
            // The sender lives in `Shared`, which this handle holds: `changed`
            // fails only on the deadline.
            if !matches!(
                tokio::time::timeout_at(deadline, changed.changed()).await,
                Ok(Ok(()))
            ) {
                let state = self.shared.lock();
                return Err(format!(
                    "{what} for bot {} within {timeout:?}\n{}",
                    bot_label(&self.token),
                    state.describe(&self.token)
                ));
            }
        }
    }
}

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

    fn bad_request(description: impl Into<String>) -> Failure {
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
            write!(
                f,
                " [file {:?}, {} bytes]",
                upload.file_name,
                upload.bytes.len()
            )?;
        }
        match &self.response {
            Ok(_) => write!(f, " -> ok"),
            Err(failure) => write!(f, " -> {} {}", failure.code, failure.description),
        }
    }
}

impl fmt::Display for ChatMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sender = if self.from_bot { "bot" } else { "user" };
        write!(f, "#{} {sender} {:?}", self.id.0, self.text)?;
        if let Some(upload) = &self.upload {
            write!(
                f,
                " [file {:?}, {} bytes]",
                upload.file_name,
                upload.bytes.len()
            )?;
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

/// What the server task, the handles and the waiters share.
struct Shared {
    state: Mutex<Registry>,
    /// Bumped after every change; waiters in tests watch it.
    changed: watch::Sender<u64>,
    /// Wakes waiting `getUpdates` calls: an update was pushed, a newer poll
    /// started, or the server is closing.
    polls: Notify,
}

/// Everything the fake knows.
#[derive(Default)]
struct Registry {
    bots: HashMap<String, BotState>,
    calls: Vec<Call>,
    /// Set when the server stops, so that waiting polls return at once.
    closed: bool,
}

struct BotState {
    id: u64,
    username: String,
    /// Pushed updates not yet confirmed by an offset, oldest first.
    updates: VecDeque<(u32, Value)>,
    next_update_id: u32,
    /// The last `allowed_updates` a poll gave; empty means Telegram's default.
    allowed_updates: Vec<String>,
    /// Counts `getUpdates` calls; a waiting poll whose number is no longer the
    /// latest was overtaken and ends with 409 Conflict.
    polls_started: u64,
    /// `getUpdates` calls waiting for an update right now.
    waiting_polls: usize,
    /// Set by `setWebhook`; while set, `getUpdates` is refused.
    webhook_url: String,
    chats: HashMap<i64, ChatState>,
    /// Callback query ids pushed, and whether they were answered.
    callback_queries: HashMap<String, bool>,
    next_callback_query: u64,
    next_file: u64,
    /// Injected failures by lowercase method name.
    failures: HashMap<String, VecDeque<Failure>>,
    /// Command lists by scope and language.
    commands: HashMap<String, Value>,
    /// Messages a minute this bot may send to one group (negative chat id)
    /// before `sendMessage` answers 429, as Telegram does; off unless set.
    group_rate: Option<usize>,
    /// When messages went to each group in the last minute.
    group_sends: HashMap<i64, VecDeque<Instant>>,
}

struct ChatState {
    messages: Vec<ChatMessage>,
    next_message_id: i32,
    /// How many bot messages `next_message_to` has handed out.
    read: usize,
}

/// A file part of a multipart request.
struct FilePart {
    name: String,
    upload: Upload,
}

/// Counts a waiting poll for as long as it waits, also when the client goes
/// away and the request future is dropped.
struct WaitingPoll<'a> {
    shared: &'a Shared,
    token: &'a str,
}

type Answer = Result<Value, Failure>;

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Registry> {
        // A test that panicked while holding the lock must not hide its own
        // message behind a poison error in every later call.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn touch(&self) {
        self.changed.send_modify(|version| *version += 1);
    }

    fn wake_polls(&self) {
        self.polls.notify_waiters();
        self.touch();
    }
}

impl Registry {
    fn bot_mut(&mut self, token: &str) -> &mut BotState {
        self.bots
            .get_mut(token)
            .expect("a handle or a checked call names a registered bot")
    }

    /// Refuses what fails before the method runs: an unknown token, an
    /// injected failure, an unreadable request.
    fn precheck(
        &mut self,
        token: &str,
        method: &str,
        unreadable: Option<String>,
    ) -> Result<(), Failure> {
        let Some(bot) = self.bots.get_mut(token) else {
            return Err(Failure::new(401, UNAUTHORIZED));
        };
        if let Some(failure) = bot
            .failures
            .get_mut(&method.to_ascii_lowercase())
            .and_then(VecDeque::pop_front)
        {
            return Err(failure);
        }
        match unreadable {
            Some(description) => Err(Failure::bad_request(description)),
            None => Ok(()),
        }
    }

    fn record(
        &mut self,
        token: &str,
        method: &str,
        params: Map<String, Value>,
        upload: Option<Upload>,
        response: Answer,
    ) {
        let seq = self.calls.len() as u64;
        let mut first = method.chars();
        let method = first
            .next()
            .map(|c| c.to_ascii_lowercase().to_string() + first.as_str())
            .unwrap_or_default();
        self.calls.push(Call {
            seq,
            token: token.to_owned(),
            method,
            params: Value::Object(params),
            upload,
            response,
        });
    }

    fn describe(&self, token: &str) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "calls so far ({}):", self.calls.len());
        for call in &self.calls {
            let _ = writeln!(out, "  {call}");
        }
        if let Some(bot) = self.bots.get(token) {
            let mut chats: Vec<_> = bot.chats.iter().collect();
            chats.sort_by_key(|(chat_id, _)| **chat_id);
            for (chat_id, chat) in chats {
                let _ = writeln!(out, "chat {chat_id} of bot {}:", bot_label(token));
                for message in &chat.messages {
                    let _ = writeln!(out, "  {message}");
                }
            }
            let _ = writeln!(out, "updates not yet confirmed: {}", bot.updates.len());
        }
        out
    }
}

impl BotState {
    fn new(id: u64, username: &str) -> BotState {
        BotState {
            id,
            username: username.to_owned(),
            updates: VecDeque::new(),
            next_update_id: 1,
            allowed_updates: Vec::new(),
            polls_started: 0,
            waiting_polls: 0,
            webhook_url: String::new(),
            chats: HashMap::new(),
            callback_queries: HashMap::new(),
            next_callback_query: 0,
            next_file: 0,
            failures: HashMap::new(),
            commands: HashMap::new(),
            group_rate: None,
            group_sends: HashMap::new(),
        }
    }

    /// Counts a message to a group against the rate, or refuses it with 429.
    fn group_message(&mut self, params: &Map<String, Value>) -> Result<(), Failure> {
        let (Some(rate), Ok(chat)) = (self.group_rate, chat_id_param(params)) else {
            return Ok(());
        };
        if chat >= 0 {
            return Ok(());
        }
        let now = Instant::now();
        let sends = self.group_sends.entry(chat).or_default();
        while sends
            .front()
            .is_some_and(|at| now.duration_since(*at) >= Duration::from_secs(60))
        {
            sends.pop_front();
        }
        if sends.len() >= rate {
            let wait = sends
                .front()
                .map_or(1, |at| 60 - now.duration_since(*at).as_secs().min(59));
            return Err(Failure::retry_after(u32::try_from(wait).unwrap_or(60)));
        }
        sends.push_back(now);
        Ok(())
    }

    fn user_json(&self) -> Value {
        json!({ "id": self.id, "is_bot": true, "first_name": self.username, "username": self.username })
    }

    fn me_json(&self) -> Value {
        json!({
            "id": self.id,
            "is_bot": true,
            "first_name": self.username,
            "username": self.username,
            "can_join_groups": true,
            "can_read_all_group_messages": false,
            "supports_inline_queries": false,
            "can_connect_to_business": false,
            "has_main_web_app": false,
        })
    }

    fn chat_mut(&mut self, chat: i64) -> &mut ChatState {
        self.chats.entry(chat).or_insert_with(|| ChatState {
            messages: Vec::new(),
            next_message_id: 1,
            read: 0,
        })
    }

    /// Queues an update unless the remembered `allowed_updates` leave its kind
    /// out: like Telegram, the filter applies when an update is created.
    fn enqueue(&mut self, kind: &str, payload: Value) -> Option<u32> {
        let allowed = if self.allowed_updates.is_empty() {
            !NOT_SENT_BY_DEFAULT.contains(&kind)
        } else {
            self.allowed_updates.iter().any(|allowed| allowed == kind)
        };
        if !allowed {
            return None;
        }
        let update_id = self.next_update_id;
        self.next_update_id += 1;
        let mut update = Map::new();
        update.insert("update_id".to_owned(), json!(update_id));
        update.insert(kind.to_owned(), payload);
        self.updates.push_back((update_id, Value::Object(update)));
        Some(update_id)
    }

    /// A user's text message in `chat`, kept in the chat and queued as an update.
    fn push_text(&mut self, chat: ChatId, from: UserId, text: &str) -> MessageId {
        let chat_state = self.chat_mut(chat.0);
        let message_id = chat_state.allocate_id();
        let mut message = json!({
            "message_id": message_id.0,
            "from": user_json(from.0),
            "chat": chat_json(chat.0),
            "date": unix_now(),
            "text": text,
        });
        if let Some(command) = text
            .split_whitespace()
            .next()
            .filter(|word| word.starts_with('/'))
        {
            message["entities"] = json!([{ "type": "bot_command", "offset": 0, "length": command.encode_utf16().count() }]);
        }
        chat_state.messages.push(ChatMessage {
            id: message_id,
            from_bot: false,
            text: text.to_owned(),
            raw_text: text.to_owned(),
            parse_mode: None,
            history: vec![text.to_owned()],
            keyboard: Vec::new(),
            upload: None,
            deleted: false,
            json: message.clone(),
        });
        self.enqueue("message", message);
        message_id
    }

    /// Forgets updates as `getUpdates`' `offset` says.
    fn confirm(&mut self, offset: Option<i64>) {
        match offset {
            Some(offset) if offset > 0 => self
                .updates
                .retain(|(update_id, _)| i64::from(*update_id) >= offset),
            Some(offset) if offset < 0 => {
                let keep = usize::try_from(offset.unsigned_abs()).unwrap_or(usize::MAX);
                while self.updates.len() > keep {
                    self.updates.pop_front();
                }
            }
            _ => {}
        }
    }

    /// A new bot message in `chat`: its id and the common fields.
    fn new_message(&mut self, chat: i64) -> (MessageId, Value) {
        let from = self.user_json();
        let message_id = self.chat_mut(chat).allocate_id();
        let message = json!({
            "message_id": message_id.0,
            "from": from,
            "chat": chat_json(chat),
            "date": unix_now(),
        });
        (message_id, message)
    }

    /// The bot's own live message, or the error Telegram gives for an edit.
    fn editable(&mut self, chat: i64, message_id: i32) -> Result<&mut ChatMessage, Failure> {
        let message = self
            .chats
            .get_mut(&chat)
            .and_then(|c| {
                c.messages
                    .iter_mut()
                    .find(|m| m.id.0 == message_id && !m.deleted)
            })
            .ok_or_else(|| Failure::bad_request("Bad Request: message to edit not found"))?;
        if !message.from_bot {
            return Err(Failure::bad_request("Bad Request: message can't be edited"));
        }
        Ok(message)
    }
}

impl ChatState {
    fn allocate_id(&mut self) -> MessageId {
        let message_id = MessageId(self.next_message_id);
        self.next_message_id += 1;
        message_id
    }
}

impl<'a> WaitingPoll<'a> {
    fn new(shared: &'a Shared, token: &'a str) -> WaitingPoll<'a> {
        shared.lock().bot_mut(token).waiting_polls += 1;
        shared.touch();
        WaitingPoll { shared, token }
    }
}

impl Drop for WaitingPoll<'_> {
    fn drop(&mut self) {
        self.shared.lock().bot_mut(self.token).waiting_polls -= 1;
        self.shared.touch();
    }
}

/// Every Bot API request: `/bot<token>/<method>`.
async fn handle(
    State(shared): State<Arc<Shared>>,
    Path((bot, method)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(token) = bot.strip_prefix("bot") else {
        return not_found().await;
    };
    let (params, files, unreadable) = match parse_request(&headers, query.as_deref(), &body) {
        Ok((params, files)) => (params, files, None),
        Err(description) => (Map::new(), Vec::new(), Some(description)),
    };
    let checked = shared.lock().precheck(token, &method, unreadable);
    let (response, upload) = match checked {
        Err(failure) => (Err(failure), None),
        Ok(()) if method.eq_ignore_ascii_case("getUpdates") => {
            (get_updates(&shared, token, &params).await, None)
        }
        Ok(()) => answer(shared.lock().bot_mut(token), &method, &params, files),
    };
    shared
        .lock()
        .record(token, &method, params, upload, response.clone());
    shared.touch();
    reply(response)
}

async fn not_found() -> Response {
    reply(Err(Failure::new(404, "Not Found")))
}

fn reply(response: Answer) -> Response {
    match response {
        Ok(result) => (
            StatusCode::OK,
            Json(json!({ "ok": true, "result": result })),
        )
            .into_response(),
        Err(failure) => {
            let mut body = json!({ "ok": false, "error_code": failure.code, "description": failure.description });
            if let Some(seconds) = failure.retry_after {
                body["parameters"] = json!({ "retry_after": seconds });
            }
            let status = StatusCode::from_u16(failure.code).unwrap_or(StatusCode::BAD_REQUEST);
            (status, Json(body)).into_response()
        }
    }
}

/// Runs one method other than `getUpdates`; returns the answer and the
/// uploaded file, if any.
fn answer(
    bot: &mut BotState,
    method: &str,
    params: &Map<String, Value>,
    files: Vec<FilePart>,
) -> (Answer, Option<Upload>) {
    let response = match method.to_ascii_lowercase().as_str() {
        "getme" => Ok(bot.me_json()),
        "sendmessage" => bot
            .group_message(params)
            .and_then(|()| send_message(bot, params)),
        "editmessagetext" => edit_message_text(bot, params),
        "editmessagereplymarkup" => edit_message_reply_markup(bot, params),
        "deletemessage" => delete_message(bot, params),
        "deletemessages" => delete_messages(bot, params),
        "answercallbackquery" => answer_callback_query(bot, params),
        "setmycommands" => set_my_commands(bot, params),
        "getmycommands" => get_my_commands(bot, params),
        "deletemycommands" => delete_my_commands(bot, params),
        "setwebhook" => set_webhook(bot, params),
        "deletewebhook" => delete_webhook(bot, params),
        "getwebhookinfo" => Ok(json!({
            "url": bot.webhook_url,
            "has_custom_certificate": false,
            "pending_update_count": bot.updates.len(),
        })),
        "sendchataction" => send_chat_action(params),
        "senddocument" => return send_file(bot, params, files, "document"),
        "sendphoto" => return send_file(bot, params, files, "photo"),
        _ => Ok(Value::Bool(true)),
    };
    (response, None)
}

/// Long polling: answers at once when updates are queued, else waits for one
/// until `timeout` seconds pass.
async fn get_updates(shared: &Shared, token: &str, params: &Map<String, Value>) -> Answer {
    let offset = integer_param(params, "offset")?;
    let limit = integer_param(params, "limit")?
        .unwrap_or(MAX_UPDATES_PER_POLL)
        .clamp(1, MAX_UPDATES_PER_POLL);
    let limit = usize::try_from(limit).expect("limit is clamped to 1..=100");
    let timeout = integer_param(params, "timeout")?
        .unwrap_or(0)
        .max(0)
        .unsigned_abs();
    let allowed_updates = match json_param(params, "allowed_updates")? {
        None => None,
        Some(Value::Array(kinds)) => Some(
            kinds
                .iter()
                .map(|kind| kind.as_str().map(str::to_owned))
                .collect::<Option<Vec<String>>>()
                .ok_or_else(|| Failure::bad_request("Bad Request: can't parse allowed updates"))?,
        ),
        Some(_) => {
            return Err(Failure::bad_request(
                "Bad Request: can't parse allowed updates",
            ));
        }
    };
    let deadline = Instant::now() + Duration::from_secs(timeout);
    let poll_number = {
        let mut state = shared.lock();
        let bot = state.bot_mut(token);
        if !bot.webhook_url.is_empty() {
            return Err(Failure::new(409, WEBHOOK_ACTIVE));
        }
        bot.confirm(offset);
        if let Some(kinds) = allowed_updates {
            bot.allowed_updates = kinds;
        }
        bot.polls_started += 1;
        bot.polls_started
    };
    // A poll still waiting for this token was overtaken by this one.
    shared.polls.notify_waiters();
    let mut waiting = None;
    loop {
        let notified = shared.polls.notified();
        tokio::pin!(notified);
        // Registered before looking at the queue, so that a push between the
        // look and the wait still wakes this poll.
        notified.as_mut().enable();
        {
            let mut state = shared.lock();
            if state.closed {
                return Ok(json!([]));
            }
            let bot = state.bot_mut(token);
            if bot.polls_started != poll_number {
                return Err(Failure::new(409, CONFLICT));
            }
            if !bot.updates.is_empty() {
                return Ok(bot
                    .updates
                    .iter()
                    .take(limit)
                    .map(|(_, update)| update.clone())
                    .collect());
            }
        }
        if waiting.is_none() {
            waiting = Some(WaitingPoll::new(shared, token));
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            return Ok(json!([]));
        }
    }
}

fn send_message(bot: &mut BotState, params: &Map<String, Value>) -> Answer {
    let chat = chat_id_param(params)?;
    let raw_text = string_param(params, "text").unwrap_or_default();
    let parse_mode = string_param(params, "parse_mode").filter(|mode| !mode.is_empty());
    let text = render(&raw_text, parse_mode.as_deref())?;
    if text.trim().is_empty() {
        return Err(Failure::bad_request("Bad Request: message text is empty"));
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(Failure::bad_request("Bad Request: message is too long"));
    }
    let (markup, keyboard) = reply_markup(params)?;
    let (message_id, mut message) = bot.new_message(chat);
    message["text"] = json!(text);
    if let Some(markup) = markup {
        message["reply_markup"] = markup;
    }
    bot.chat_mut(chat).messages.push(ChatMessage {
        id: message_id,
        from_bot: true,
        text: text.clone(),
        raw_text,
        parse_mode,
        history: vec![text],
        keyboard,
        upload: None,
        deleted: false,
        json: message.clone(),
    });
    Ok(message)
}

fn edit_message_text(bot: &mut BotState, params: &Map<String, Value>) -> Answer {
    if params.contains_key("inline_message_id") {
        return Ok(Value::Bool(true));
    }
    let chat = chat_id_param(params)?;
    let message_id = message_id_param(params)?;
    let raw_text = string_param(params, "text").unwrap_or_default();
    let parse_mode = string_param(params, "parse_mode").filter(|mode| !mode.is_empty());
    let text = render(&raw_text, parse_mode.as_deref())?;
    if text.trim().is_empty() {
        return Err(Failure::bad_request("Bad Request: message text is empty"));
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(Failure::bad_request("Bad Request: MESSAGE_TOO_LONG"));
    }
    // Like Telegram, an edit without `reply_markup` removes the keyboard.
    let (markup, keyboard) = reply_markup(params)?;
    let message = bot.editable(chat, message_id)?;
    if message.upload.is_some() {
        return Err(Failure::bad_request(
            "Bad Request: there is no text in the message to edit",
        ));
    }
    if message.text == text && message.raw_text == raw_text && message.keyboard == keyboard {
        return Err(Failure::bad_request(NOT_MODIFIED));
    }
    message.json["text"] = json!(text);
    message.json["edit_date"] = json!(unix_now());
    set_markup(&mut message.json, markup);
    message.history.push(text.clone());
    message.text = text;
    message.raw_text = raw_text;
    message.parse_mode = parse_mode;
    message.keyboard = keyboard;
    Ok(message.json.clone())
}

fn edit_message_reply_markup(bot: &mut BotState, params: &Map<String, Value>) -> Answer {
    if params.contains_key("inline_message_id") {
        return Ok(Value::Bool(true));
    }
    let chat = chat_id_param(params)?;
    let message_id = message_id_param(params)?;
    let (markup, keyboard) = reply_markup(params)?;
    let message = bot.editable(chat, message_id)?;
    if message.keyboard == keyboard {
        return Err(Failure::bad_request(NOT_MODIFIED));
    }
    message.json["edit_date"] = json!(unix_now());
    set_markup(&mut message.json, markup);
    message.keyboard = keyboard;
    Ok(message.json.clone())
}

fn delete_message(bot: &mut BotState, params: &Map<String, Value>) -> Answer {
    let chat = chat_id_param(params)?;
    let message_id = message_id_param(params)?;
    let message = bot
        .chats
        .get_mut(&chat)
        .and_then(|c| {
            c.messages
                .iter_mut()
                .find(|m| m.id.0 == message_id && !m.deleted)
        })
        .ok_or_else(|| Failure::bad_request("Bad Request: message to delete not found"))?;
    message.deleted = true;
    Ok(Value::Bool(true))
}

fn delete_messages(bot: &mut BotState, params: &Map<String, Value>) -> Answer {
    let chat = chat_id_param(params)?;
    let Some(Value::Array(ids)) = json_param(params, "message_ids")? else {
        return Err(Failure::bad_request(
            "Bad Request: message identifiers are not specified",
        ));
    };
    let ids: Vec<i64> = ids.iter().filter_map(integer).collect();
    if let Some(chat_state) = bot.chats.get_mut(&chat) {
        for message in &mut chat_state.messages {
            if ids.contains(&i64::from(message.id.0)) {
                message.deleted = true;
            }
        }
    }
    Ok(Value::Bool(true))
}

fn answer_callback_query(bot: &mut BotState, params: &Map<String, Value>) -> Answer {
    let query_id = string_param(params, "callback_query_id").unwrap_or_default();
    match bot.callback_queries.get_mut(&query_id) {
        Some(answered) if !*answered => {
            *answered = true;
            Ok(Value::Bool(true))
        }
        _ => Err(Failure::bad_request(QUERY_INVALID)),
    }
}

fn set_my_commands(bot: &mut BotState, params: &Map<String, Value>) -> Answer {
    let Some(Value::Array(commands)) = json_param(params, "commands")? else {
        return Err(Failure::bad_request(
            "Bad Request: parameter \"commands\" is required",
        ));
    };
    let mut res = Vec::new();
    for command in &commands {
        // Like Telegram (tdlib's `set_commands`): trimmed, and one leading '/'
        // dropped, so teloxide's `bot_commands()` ("/help") is accepted.
        let name = command
            .get("command")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .trim();
        let name = name.strip_prefix('/').unwrap_or(name);
        let description = command
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .trim();
        let valid_name = (1..=32).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid_name {
            return Err(Failure::bad_request("Bad Request: BOT_COMMAND_INVALID"));
        }
        // The description must be 1-256 characters; Telegram's wording for
        // this refusal is a guess.
        if !(1..=256).contains(&description.chars().count()) {
            return Err(Failure::bad_request(
                "Bad Request: BOT_COMMAND_DESCRIPTION_INVALID",
            ));
        }
        res.push(json!({ "command": name, "description": description }));
    }
    let key = commands_key(
        json_param(params, "scope")?.as_ref(),
        &string_param(params, "language_code").unwrap_or_default(),
    );
    bot.commands.insert(key, Value::Array(res));
    Ok(Value::Bool(true))
}

fn get_my_commands(bot: &mut BotState, params: &Map<String, Value>) -> Answer {
    let key = commands_key(
        json_param(params, "scope")?.as_ref(),
        &string_param(params, "language_code").unwrap_or_default(),
    );
    Ok(bot.commands.get(&key).cloned().unwrap_or_else(|| json!([])))
}

fn delete_my_commands(bot: &mut BotState, params: &Map<String, Value>) -> Answer {
    let key = commands_key(
        json_param(params, "scope")?.as_ref(),
        &string_param(params, "language_code").unwrap_or_default(),
    );
    bot.commands.remove(&key);
    Ok(Value::Bool(true))
}

fn set_webhook(bot: &mut BotState, params: &Map<String, Value>) -> Answer {
    bot.webhook_url = string_param(params, "url").unwrap_or_default();
    Ok(Value::Bool(true))
}

fn delete_webhook(bot: &mut BotState, params: &Map<String, Value>) -> Answer {
    bot.webhook_url.clear();
    if params
        .get("drop_pending_updates")
        .is_some_and(|drop| drop == &json!(true) || drop == &json!("true"))
    {
        bot.updates.clear();
    }
    Ok(Value::Bool(true))
}

fn send_chat_action(params: &Map<String, Value>) -> Answer {
    chat_id_param(params)?;
    let action = string_param(params, "action").unwrap_or_default();
    if !CHAT_ACTIONS.contains(&action.as_str()) {
        return Err(Failure::bad_request(
            "Bad Request: wrong parameter action in request",
        ));
    }
    Ok(Value::Bool(true))
}

/// `sendDocument` and `sendPhoto`; `field` is `document` or `photo`.
fn send_file(
    bot: &mut BotState,
    params: &Map<String, Value>,
    files: Vec<FilePart>,
    field: &str,
) -> (Answer, Option<Upload>) {
    let chat = match chat_id_param(params) {
        Ok(chat) => chat,
        Err(failure) => return (Err(failure), None),
    };
    // The file is a part named `field`, or `attach://<part>`, or a file id or
    // URL sent as text.
    let reference = string_param(params, field).filter(|value| !value.is_empty());
    let attached = reference
        .as_deref()
        .and_then(|value| value.strip_prefix("attach://"))
        .unwrap_or(field);
    let upload = files
        .into_iter()
        .find(|part| part.name == attached)
        .map(|part| part.upload);
    let file_id = match (&upload, &reference) {
        (Some(upload), _) if upload.bytes.is_empty() => {
            return (
                Err(Failure::bad_request("Bad Request: file must be non-empty")),
                None,
            );
        }
        (Some(_), _) => None,
        (None, Some(reference)) if !reference.starts_with("attach://") => Some(reference.clone()),
        (None, _) => {
            return (
                Err(Failure::bad_request(format!(
                    "Bad Request: there is no {field} in the request"
                ))),
                None,
            );
        }
    };
    let raw_caption = string_param(params, "caption").unwrap_or_default();
    let parse_mode = string_param(params, "parse_mode").filter(|mode| !mode.is_empty());
    let caption = match render(&raw_caption, parse_mode.as_deref()) {
        Ok(caption) if caption.chars().count() > MAX_CAPTION_CHARS => {
            return (
                Err(Failure::bad_request(
                    "Bad Request: message caption is too long",
                )),
                None,
            );
        }
        Ok(caption) => caption,
        Err(failure) => return (Err(failure), None),
    };
    let (markup, keyboard) = match reply_markup(params) {
        Ok(checked) => checked,
        Err(failure) => return (Err(failure), None),
    };
    bot.next_file += 1;
    let file_id = file_id.unwrap_or_else(|| format!("fake-{field}-{}-{}", bot.id, bot.next_file));
    let file_unique_id = format!("fake-{}-{}", bot.id, bot.next_file);
    let size = upload.as_ref().map_or(0, |upload| upload.bytes.len());
    let (message_id, mut message) = bot.new_message(chat);
    if field == "photo" {
        message["photo"] = json!([{
            "file_id": file_id, "file_unique_id": file_unique_id, "file_size": size, "width": 90, "height": 90,
        }]);
    } else {
        let file_name = upload
            .as_ref()
            .map(|upload| upload.file_name.clone())
            .unwrap_or_default();
        message["document"] = json!({
            "file_id": file_id,
            "file_unique_id": file_unique_id,
            "file_size": size,
            "file_name": file_name,
            "mime_type": mime_type(&file_name),
        });
    }
    if !caption.is_empty() {
        message["caption"] = json!(caption);
    }
    if let Some(markup) = markup {
        message["reply_markup"] = markup;
    }
    bot.chat_mut(chat).messages.push(ChatMessage {
        id: message_id,
        from_bot: true,
        text: caption.clone(),
        raw_text: raw_caption,
        parse_mode,
        history: vec![caption],
        keyboard,
        upload: upload.clone(),
        deleted: false,
        json: message.clone(),
    });
    (Ok(message), upload)
}

/// Checks `reply_markup` as Telegram does. Returns the markup to show in the
/// `Message` (Telegram echoes only non-empty inline keyboards) and the inline
/// keyboard.
fn reply_markup(params: &Map<String, Value>) -> Result<(Option<Value>, Vec<Vec<Button>>), Failure> {
    let Some(markup) = json_param(params, "reply_markup")? else {
        return Ok((None, Vec::new()));
    };
    let Some(rows) = markup.get("inline_keyboard") else {
        return Ok((None, Vec::new()));
    };
    let keyboard = inline_keyboard(rows)?;
    let shown = (!keyboard.is_empty()).then_some(markup);
    Ok((shown, keyboard))
}

fn inline_keyboard(rows: &Value) -> Result<Vec<Vec<Button>>, Failure> {
    let not_rows = || {
        Failure::bad_request(
            "Bad Request: field \"inline_keyboard\" of the InlineKeyboardMarkup should be an Array of Arrays",
        )
    };
    let mut keyboard = Vec::new();
    for row in rows.as_array().ok_or_else(not_rows)? {
        let mut buttons = Vec::new();
        for button in row.as_array().ok_or_else(not_rows)? {
            let text = button.get("text").and_then(Value::as_str).ok_or_else(|| {
                Failure::bad_request("Bad Request: can't parse inline keyboard button: Field \"text\" must be of type String")
            })?;
            let callback_data = button.get("callback_data").and_then(Value::as_str);
            if callback_data
                .is_some_and(|data| data.is_empty() || data.len() > MAX_CALLBACK_DATA_BYTES)
            {
                return Err(Failure::bad_request("Bad Request: BUTTON_DATA_INVALID"));
            }
            let url = button.get("url").and_then(Value::as_str);
            if url.is_some_and(str::is_empty) {
                return Err(Failure::bad_request("Bad Request: BUTTON_URL_INVALID"));
            }
            let has_action = button
                .as_object()
                .is_some_and(|fields| fields.keys().any(|key| key != "text"));
            if !has_action {
                return Err(Failure::bad_request(TEXT_BUTTONS));
            }
            buttons.push(Button {
                text: text.to_owned(),
                callback_data: callback_data.map(str::to_owned),
                url: url.map(str::to_owned),
            });
        }
        keyboard.push(buttons);
    }
    Ok(keyboard)
}

fn set_markup(message: &mut Value, markup: Option<Value>) {
    let fields = message.as_object_mut().expect("a message is a JSON object");
    match markup {
        Some(markup) => fields.insert("reply_markup".to_owned(), markup),
        None => fields.remove("reply_markup"),
    };
}

/// The visible text of `text` in `parse_mode`, or Telegram's refusal.
fn render(text: &str, parse_mode: Option<&str>) -> Result<String, Failure> {
    let Some(parse_mode) = parse_mode else {
        return Ok(text.to_owned());
    };
    let visible = match parse_mode.to_ascii_lowercase().as_str() {
        "html" => parse_html(text),
        "markdownv2" => parse_markdown(text, true),
        "markdown" => parse_markdown(text, false),
        _ => return Err(Failure::bad_request("Bad Request: unsupported parse_mode")),
    };
    visible.map_err(|why| Failure::bad_request(format!("Bad Request: can't parse entities: {why}")))
}

/// Telegram's HTML: only its tags, balanced; `&lt;`, `&gt;`, `&amp;`,
/// `&quot;` and numeric entities decoded; other `&` kept as written.
fn parse_html(text: &str) -> Result<String, String> {
    let mut res = String::with_capacity(text.len());
    let mut open: Vec<String> = Vec::new();
    let mut at = 0;
    while let Some(c) = text[at..].chars().next() {
        match c {
            '<' => {
                let end = tag_end(text, at)
                    .ok_or_else(|| format!("Unclosed start tag at byte offset {at}"))?;
                let inside = &text[at + 1..end];
                if let Some(name) = inside.strip_prefix('/') {
                    let name = name.trim().to_ascii_lowercase();
                    match open.pop() {
                        Some(top) if top == name => {}
                        Some(top) => {
                            return Err(format!(
                                "Unmatched end tag at byte offset {at}, expected \"</{top}>\", found \"</{name}>\""
                            ));
                        }
                        None => return Err(format!("Unexpected end tag at byte offset {at}")),
                    }
                } else {
                    let name_end = inside
                        .find(|c: char| c.is_ascii_whitespace())
                        .unwrap_or(inside.len());
                    let name = inside[..name_end].to_ascii_lowercase();
                    if !HTML_TAGS.contains(&name.as_str()) {
                        return Err(format!(
                            "Unsupported start tag \"{name}\" at byte offset {at}"
                        ));
                    }
                    if name == "span" && !inside[name_end..].contains("tg-spoiler") {
                        return Err(format!(
                            "Tag \"span\" must have class \"tg-spoiler\" at byte offset {at}"
                        ));
                    }
                    open.push(name);
                }
                at = end + 1;
            }
            '&' => match html_entity(&text[at..]) {
                Some((decoded, length)) => {
                    res.push(decoded);
                    at += length;
                }
                None => {
                    res.push('&');
                    at += 1;
                }
            },
            _ => {
                res.push(c);
                at += c.len_utf8();
            }
        }
    }
    match open.pop() {
        Some(name) => Err(format!(
            "Can't find end tag corresponding to start tag \"{name}\""
        )),
        None => Ok(res),
    }
}

/// The byte index of the `>` closing the tag that starts at `start`, outside
/// quoted attribute values.
fn tag_end(text: &str, start: usize) -> Option<usize> {
    let mut quote = None;
    for (i, c) in text[start + 1..].char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(open), _) if c == open => quote = None,
            (None, '>') => return Some(start + 1 + i),
            (None, '<') => return None,
            _ => {}
        }
    }
    None
}

/// The character and length of the HTML entity `text` starts with.
fn html_entity(text: &str) -> Option<(char, usize)> {
    let semicolon = text.bytes().take(12).position(|b| b == b';')?;
    let name = &text[1..semicolon];
    let decoded = match name {
        "lt" => '<',
        "gt" => '>',
        "amp" => '&',
        "quot" => '"',
        _ => {
            let number = name.strip_prefix('#')?;
            let code = match number.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => number.parse().ok()?,
            };
            char::from_u32(code)?
        }
    };
    Some((decoded, semicolon + 1))
}

/// Telegram's MarkdownV2 (`v2`) or legacy Markdown: the visible text, or why
/// Telegram would refuse it. MarkdownV2 refuses an unescaped reserved
/// character and an unclosed entity; legacy Markdown has no nesting and only
/// refuses an unclosed entity. Close to Telegram's parser, not identical
/// (expandable block quotes, for one, are not understood).
fn parse_markdown(text: &str, v2: bool) -> Result<String, String> {
    const RESERVED: &str = "_*[]()~`>#+-=|{}.!";
    let unclosed = |name: &str, at: usize| {
        if v2 {
            format!("Can't find end of {name} entity at byte offset {at}")
        } else {
            format!("Can't find end of the entity starting at byte offset {at}")
        }
    };
    let mut res = String::with_capacity(text.len());
    let mut open: Vec<(&str, usize)> = Vec::new();
    let mut chars = text.char_indices().peekable();
    let mut line_start = true;
    while let Some((at, c)) = chars.next() {
        let at_line_start = line_start;
        line_start = c == '\n';
        let top = open.last().map(|(name, _)| *name);
        let escapable = v2 || chars.peek().is_some_and(|(_, next)| "_*`[".contains(*next));
        if c == '\\' && escapable {
            match chars.next() {
                Some((_, escaped)) => res.push(escaped),
                None => res.push('\\'),
            }
            continue;
        }
        if matches!(top, Some("Code" | "Pre")) {
            let closes = c == '`' && (top == Some("Code") || next_is(&mut chars, "``"));
            if closes {
                open.pop();
            } else {
                res.push(c);
            }
            continue;
        }
        // Legacy Markdown does not nest: inside an entity only its own
        // closing character counts.
        if !v2 && let Some(top) = top {
            let closing = match top {
                "Bold" => '*',
                "Italic" => '_',
                _ => ']',
            };
            if c != closing {
                res.push(c);
                continue;
            }
        }
        let mut toggle = |name: &'static str| {
            if open.last().is_some_and(|(top, _)| *top == name) {
                open.pop();
            } else {
                open.push((name, at));
            }
        };
        match c {
            '*' => toggle("Bold"),
            '_' if v2 && next_is(&mut chars, "_") => toggle("Underline"),
            '_' => toggle("Italic"),
            '~' if v2 => toggle("Strikethrough"),
            '|' if v2 && next_is(&mut chars, "|") => toggle("Spoiler"),
            '`' if next_is(&mut chars, "``") => {
                // The rest of the opening line, if the block goes on past it,
                // names the language.
                let mut ahead = chars.clone();
                if ahead
                    .by_ref()
                    .find(|(_, c)| *c == '\n' || *c == '`')
                    .is_some_and(|(_, c)| c == '\n')
                {
                    chars = ahead;
                }
                open.push(("Pre", at));
            }
            '`' => open.push(("Code", at)),
            '[' => open.push(("TextUrl", at)),
            ']' if top == Some("TextUrl") => {
                if !next_is(&mut chars, "(") {
                    if v2 {
                        return Err(
                            "Character ']' is reserved and must be escaped with the preceding '\\'"
                                .to_owned(),
                        );
                    }
                    open.pop();
                    continue;
                }
                let mut closed = false;
                while let Some((_, url_char)) = chars.next() {
                    match url_char {
                        '\\' => {
                            chars.next();
                        }
                        ')' => {
                            closed = true;
                            break;
                        }
                        _ => {}
                    }
                }
                if !closed {
                    return Err(format!("Can't find end of a URL at byte offset {at}"));
                }
                open.pop();
            }
            '>' if v2 && at_line_start => {}
            _ if v2 && RESERVED.contains(c) => {
                return Err(format!(
                    "Character '{c}' is reserved and must be escaped with the preceding '\\'"
                ));
            }
            _ => res.push(c),
        }
    }
    match open.last() {
        Some((name, at)) => Err(unclosed(name, *at)),
        None => Ok(res),
    }
}

/// Consumes `expected` if the text continues with it.
fn next_is(chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>, expected: &str) -> bool {
    let mut ahead = chars.clone();
    for wanted in expected.chars() {
        match ahead.next() {
            Some((_, c)) if c == wanted => {}
            _ => return false,
        }
    }
    *chars = ahead;
    true
}

/// The parameters and file parts of a request: query, then the body as JSON,
/// form or multipart. An error is the `description` of a 400.
fn parse_request(
    headers: &HeaderMap,
    query: Option<&str>,
    body: &[u8],
) -> Result<(Map<String, Value>, Vec<FilePart>), String> {
    let mut params = Map::new();
    let mut files = Vec::new();
    for (name, value) in form_pairs(query.unwrap_or_default()) {
        params.insert(name.clone(), text_param(&name, value));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok((params, files));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        "application/json" => match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(fields)) => params.extend(fields),
            Ok(_) => return Err("Bad Request: the request body must be a JSON object".to_owned()),
            Err(err) => return Err(format!("Bad Request: can't parse JSON body: {err}")),
        },
        "application/x-www-form-urlencoded" => {
            let body = std::str::from_utf8(body)
                .map_err(|_| "Bad Request: the form is not UTF-8".to_owned())?;
            for (name, value) in form_pairs(body) {
                params.insert(name.clone(), text_param(&name, value));
            }
        }
        "multipart/form-data" => {
            let boundary = header_params(content_type)
                .remove("boundary")
                .filter(|boundary| !boundary.is_empty())
                .ok_or_else(|| "Bad Request: multipart boundary is missing".to_owned())?;
            for part in parse_multipart(body, &boundary)? {
                if part.is_file {
                    files.push(FilePart {
                        name: part.name,
                        upload: part.upload,
                    });
                } else {
                    let value = String::from_utf8_lossy(&part.upload.bytes).into_owned();
                    params.insert(part.name.clone(), text_param(&part.name, value));
                }
            }
        }
        _ => return Err(format!("Bad Request: unsupported content type \"{mime}\"")),
    }
    Ok((params, files))
}

/// A text parameter, parsed when Telegram reads it as JSON.
fn text_param(name: &str, value: String) -> Value {
    if JSON_PARAMS.contains(&name)
        && let Ok(parsed) = serde_json::from_str::<Value>(&value)
    {
        return parsed;
    }
    Value::String(value)
}

/// One part of a multipart body, before sorting text from files.
struct RawPart {
    name: String,
    /// The part had a `filename` parameter.
    is_file: bool,
    upload: Upload,
}

fn parse_multipart(body: &[u8], boundary: &str) -> Result<Vec<RawPart>, String> {
    let malformed = || "Bad Request: malformed multipart body".to_owned();
    let delimiter = format!("--{boundary}");
    let next_delimiter = format!("\r\n--{boundary}");
    let mut parts = Vec::new();
    let mut at = find(body, delimiter.as_bytes(), 0).ok_or_else(malformed)? + delimiter.len();
    loop {
        if body[at..].starts_with(b"--") {
            return Ok(parts);
        }
        at += body[at..]
            .strip_prefix(b"\r\n")
            .map(|_| 2)
            .ok_or_else(malformed)?;
        let headers_end = find(body, b"\r\n\r\n", at).ok_or_else(malformed)?;
        let headers = String::from_utf8_lossy(&body[at..headers_end]).into_owned();
        let content_start = headers_end + 4;
        let content_end =
            find(body, next_delimiter.as_bytes(), content_start).ok_or_else(malformed)?;
        let mut name = None;
        let mut file_name = None;
        let mut content_type = None;
        for line in headers.split("\r\n") {
            let Some((header_name, value)) = line.split_once(':') else {
                continue;
            };
            match header_name.trim().to_ascii_lowercase().as_str() {
                "content-disposition" => {
                    let mut disposition = header_params(value);
                    name = disposition.remove("name").or_else(|| {
                        let encoded = disposition.remove("name*")?;
                        let encoded = encoded
                            .split_once("''")
                            .map_or(encoded.as_str(), |(_, rest)| rest);
                        Some(percent_decode(encoded, false))
                    });
                    file_name = disposition.remove("filename");
                }
                "content-type" => content_type = Some(value.trim().to_owned()),
                _ => {}
            }
        }
        parts.push(RawPart {
            name: name.ok_or_else(malformed)?,
            is_file: file_name.is_some(),
            upload: Upload {
                file_name: file_name.unwrap_or_default(),
                content_type,
                bytes: body[content_start..content_end].to_vec(),
            },
        });
        at = content_end + next_delimiter.len();
    }
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|window| window == needle)
        .map(|i| from + i)
}

/// The `key=value` parameters after the first `;` of a header value, keys in
/// lowercase, quoted values unquoted.
fn header_params(value: &str) -> HashMap<String, String> {
    let mut res = HashMap::new();
    let Some((_, mut rest)) = value.split_once(';') else {
        return res;
    };
    loop {
        rest = rest.trim_start_matches([' ', '\t', ';']);
        let Some(equals) = rest.find('=') else {
            return res;
        };
        let key = rest[..equals].trim().to_ascii_lowercase();
        rest = &rest[equals + 1..];
        let mut param = String::new();
        if let Some(quoted) = rest.strip_prefix('"') {
            let mut end = quoted.len();
            let mut escaped = false;
            for (i, c) in quoted.char_indices() {
                match (escaped, c) {
                    (true, _) => {
                        param.push(c);
                        escaped = false;
                    }
                    (false, '\\') => escaped = true,
                    (false, '"') => {
                        end = i + 1;
                        break;
                    }
                    (false, _) => param.push(c),
                }
            }
            rest = &quoted[end..];
        } else {
            let end = rest.find(';').unwrap_or(rest.len());
            param = rest[..end].trim().to_owned();
            rest = &rest[end..];
        }
        res.insert(key, param);
    }
}

fn form_pairs(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(name, true), percent_decode(value, true))
        })
        .collect()
}

fn percent_decode(text: &str, plus_is_space: bool) -> String {
    let bytes = text.as_bytes();
    let mut res = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |at: usize| bytes.get(at).and_then(|b| char::from(*b).to_digit(16));
        match (bytes[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(high), Some(low)) => {
                res.push(u8::try_from(high * 16 + low).expect("two hex digits fit a byte"));
                i += 3;
            }
            (b'+', _, _) if plus_is_space => {
                res.push(b' ');
                i += 1;
            }
            (b, _, _) => {
                res.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&res).into_owned()
}

fn integer(value: &Value) -> Option<i64> {
    match value {
        Value::Number(number) => number.as_i64(),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

fn integer_param(params: &Map<String, Value>, name: &str) -> Result<Option<i64>, Failure> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => integer(value)
            .map(Some)
            .ok_or_else(|| Failure::bad_request(format!("Bad Request: invalid {name} specified"))),
    }
}

fn string_param(params: &Map<String, Value>, name: &str) -> Option<String> {
    match params.get(name)? {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// A parameter Telegram reads as JSON, sent as a value or as JSON text.
fn json_param(params: &Map<String, Value>, name: &str) -> Result<Option<Value>, Failure> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => serde_json::from_str(text).map(Some).map_err(|_| {
            Failure::bad_request(format!("Bad Request: can't parse {name} JSON object"))
        }),
        Some(value) => Ok(Some(value.clone())),
    }
}

fn chat_id_param(params: &Map<String, Value>) -> Result<i64, Failure> {
    match params.get("chat_id") {
        None | Some(Value::Null) => Err(Failure::bad_request("Bad Request: chat_id is empty")),
        Some(Value::String(text)) if text.is_empty() => {
            Err(Failure::bad_request("Bad Request: chat_id is empty"))
        }
        // Channel usernames are not modelled.
        Some(value) => {
            integer(value).ok_or_else(|| Failure::bad_request("Bad Request: chat not found"))
        }
    }
}

fn message_id_param(params: &Map<String, Value>) -> Result<i32, Failure> {
    params
        .get("message_id")
        .and_then(integer)
        .and_then(|id| i32::try_from(id).ok())
        .ok_or_else(|| Failure::bad_request("Bad Request: message identifier is not specified"))
}

fn commands_key(scope: Option<&Value>, language_code: &str) -> String {
    let default = json!({ "type": "default" });
    format!("{} {language_code}", scope.unwrap_or(&default))
}

fn chat_json(chat: i64) -> Value {
    if chat > 0 {
        json!({ "id": chat, "type": "private", "first_name": format!("User {chat}"), "username": format!("user{chat}") })
    } else if chat < -1_000_000_000_000 {
        json!({ "id": chat, "type": "supergroup", "title": format!("Group {chat}") })
    } else {
        json!({ "id": chat, "type": "group", "title": format!("Group {chat}") })
    }
}

fn user_json(user: u64) -> Value {
    json!({
        "id": user,
        "is_bot": false,
        "first_name": format!("User {user}"),
        "username": format!("user{user}"),
        "language_code": "en",
    })
}

/// The MIME type Telegram would guess from a file name.
fn mime_type(file_name: &str) -> &'static str {
    let extension = file_name
        .rsplit_once('.')
        .map(|(_, extension)| extension.to_ascii_lowercase());
    match extension.as_deref() {
        Some("txt" | "log") => "text/plain",
        Some("csv") => "text/csv",
        Some("json") => "application/json",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("pdf") => "application/pdf",
        Some("zip") => "application/zip",
        _ => "application/octet-stream",
    }
}

/// The bot id part of a token, to name a bot without printing its secret.
fn bot_label(token: &str) -> &str {
    token.split(':').next().unwrap_or_default()
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| i64::try_from(elapsed.as_secs()).unwrap_or(0))
}
