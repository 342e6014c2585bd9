//! [`FakeBot`], the handle a test drives one bot token through: push what
//! users do (messages, button presses, any update), read what the bot did
//! (calls, chats, commands), inject failures, and wait for a condition with a
//! deadline.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use teloxide_core::types::{ChatId, MessageId, UserId};
use tokio::time::Instant;

use crate::call::{Call, Failure, bot_label};
use crate::chat::{ChatMessage, chat_json, user_json};
use crate::methods::commands_key;
use crate::state::{BotState, Registry, Shared};

/// One registered bot token: push updates to it, read what it sent, wait for
/// its calls. Cheap to clone.
#[derive(Clone)]
pub struct FakeBot {
    shared: Arc<Shared>,
    token: String,
}

impl FakeBot {
    pub(crate) fn new(shared: Arc<Shared>, token: &str) -> FakeBot {
        FakeBot {
            shared,
            token: token.to_owned(),
        }
    }

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

    /// Confirms every pending update, as a poller's `getUpdates` with a higher
    /// offset would (a consumer that cannot reach the fake, such as a cell
    /// whose Bot API root is closed).
    pub fn confirm_all(&self) {
        self.with_bot(|bot| bot.updates.clear());
    }

    /// Updates pushed and not yet confirmed by a later `getUpdates` offset.
    #[must_use]
    pub fn pending_updates(&self) -> usize {
        self.with_bot(|bot| bot.updates.len())
    }

    /// This bot's calls of `method` (case-insensitive), in order.
    #[must_use]
    pub fn calls(&self, method: &str) -> Vec<Call> {
        let mut calls = self.all_calls();
        calls.retain(|call| call.method.eq_ignore_ascii_case(method));
        calls
    }

    /// How many times this bot called `method` (case-insensitive).
    #[must_use]
    pub fn call_count(&self, method: &str) -> usize {
        self.calls(method).len()
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
        self.with_bot(|bot| bot.group_rate.set_limit(per_minute));
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
