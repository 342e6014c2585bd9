//! Everything the fake knows: the registered bots with their updates, chats,
//! callback queries, commands and injected failures, and every call, behind
//! one lock shared by the server and the handles. Changes are announced on a
//! watch channel (for waiters in tests) and a `Notify` (for waiting polls).

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::{Mutex, MutexGuard};

use serde_json::{Map, Value, json};
use teloxide_core::types::{ChatId, MessageId, UserId};
use tokio::sync::{Notify, watch};

use crate::call::{Answer, Call, Failure, Upload, bot_label};
use crate::chat::{ChatMessage, ChatState, chat_json, unix_now, user_json};
use crate::rate::GroupRate;

/// Update kinds Telegram leaves out while `allowed_updates` is empty or unset.
const NOT_SENT_BY_DEFAULT: [&str; 3] =
    ["chat_member", "message_reaction", "message_reaction_count"];

const UNAUTHORIZED: &str = "Unauthorized";

/// What the server task, the handles and the waiters share.
pub(crate) struct Shared {
    pub(crate) state: Mutex<Registry>,
    /// Bumped after every change; waiters in tests watch it.
    pub(crate) changed: watch::Sender<u64>,
    /// Wakes waiting `getUpdates` calls: an update was pushed, a newer poll
    /// started, or the server is closing.
    pub(crate) polls: Notify,
}

/// Everything the fake knows.
#[derive(Default)]
pub(crate) struct Registry {
    pub(crate) bots: HashMap<String, BotState>,
    pub(crate) calls: Vec<Call>,
    /// Set when the server stops, so that waiting polls return at once.
    pub(crate) closed: bool,
}

pub(crate) struct BotState {
    pub(crate) id: u64,
    pub(crate) username: String,
    /// Pushed updates not yet confirmed by an offset, oldest first.
    pub(crate) updates: VecDeque<(u32, Value)>,
    pub(crate) next_update_id: u32,
    /// The last `allowed_updates` a poll gave; empty means Telegram's default.
    pub(crate) allowed_updates: Vec<String>,
    /// Counts `getUpdates` calls; a waiting poll whose number is no longer the
    /// latest was overtaken and ends with 409 Conflict.
    pub(crate) polls_started: u64,
    /// `getUpdates` calls waiting for an update right now.
    pub(crate) waiting_polls: usize,
    /// Set by `setWebhook`; while set, `getUpdates` is refused.
    pub(crate) webhook_url: String,
    pub(crate) chats: HashMap<i64, ChatState>,
    /// Callback query ids pushed, and whether they were answered.
    pub(crate) callback_queries: HashMap<String, bool>,
    pub(crate) next_callback_query: u64,
    pub(crate) next_file: u64,
    /// Injected failures by lowercase method name.
    pub(crate) failures: HashMap<String, VecDeque<Failure>>,
    /// Command lists by scope and language.
    pub(crate) commands: HashMap<String, Value>,
    /// Messages a minute this bot may send to one group (negative chat id)
    /// before `sendMessage` answers 429, as Telegram does; off unless set.
    pub(crate) group_rate: GroupRate,
}

/// Counts a waiting poll for as long as it waits, also when the client goes
/// away and the request future is dropped.
pub(crate) struct WaitingPoll<'a> {
    shared: &'a Shared,
    token: &'a str,
}

impl Shared {
    pub(crate) fn new() -> Shared {
        Shared {
            state: Mutex::new(Registry::default()),
            changed: watch::channel(0).0,
            polls: Notify::new(),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Registry> {
        // A test that panicked while holding the lock must not hide its own
        // message behind a poison error in every later call.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn touch(&self) {
        self.changed.send_modify(|version| *version += 1);
    }

    pub(crate) fn wake_polls(&self) {
        self.polls.notify_waiters();
        self.touch();
    }
}

impl Registry {
    pub(crate) fn bot_mut(&mut self, token: &str) -> &mut BotState {
        self.bots
            .get_mut(token)
            .expect("a handle or a checked call names a registered bot")
    }

    /// Refuses what fails before the method runs: an unknown token, an
    /// injected failure, an unreadable request.
    pub(crate) fn precheck(
        &mut self,
        token: &str,
        method: &str,
        unreadable: Option<Failure>,
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
            Some(failure) => Err(failure),
            None => Ok(()),
        }
    }

    pub(crate) fn record(
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

    pub(crate) fn describe(&self, token: &str) -> String {
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
    pub(crate) fn new(id: u64, username: &str) -> BotState {
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
            group_rate: GroupRate::default(),
        }
    }

    pub(crate) fn user_json(&self) -> Value {
        json!({ "id": self.id, "is_bot": true, "first_name": self.username, "username": self.username })
    }

    pub(crate) fn me_json(&self) -> Value {
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

    pub(crate) fn chat_mut(&mut self, chat: i64) -> &mut ChatState {
        self.chats.entry(chat).or_insert_with(|| ChatState {
            messages: Vec::new(),
            next_message_id: 1,
            read: 0,
        })
    }

    /// Queues an update unless the remembered `allowed_updates` leave its kind
    /// out: like Telegram, the filter applies when an update is created.
    pub(crate) fn enqueue(&mut self, kind: &str, payload: Value) -> Option<u32> {
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
    pub(crate) fn push_text(&mut self, chat: ChatId, from: UserId, text: &str) -> MessageId {
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
    pub(crate) fn confirm(&mut self, offset: Option<i64>) {
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
    pub(crate) fn new_message(&mut self, chat: i64) -> (MessageId, Value) {
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

    /// A message of `chat` that is not deleted.
    pub(crate) fn live_message(&mut self, chat: i64, message_id: i32) -> Option<&mut ChatMessage> {
        self.chats
            .get_mut(&chat)?
            .messages
            .iter_mut()
            .find(|message| message.id.0 == message_id && !message.deleted)
    }

    /// The bot's own live message, or the error Telegram gives for an edit.
    pub(crate) fn editable(
        &mut self,
        chat: i64,
        message_id: i32,
    ) -> Result<&mut ChatMessage, Failure> {
        let message = self
            .live_message(chat, message_id)
            .ok_or_else(|| Failure::bad_request("Bad Request: message to edit not found"))?;
        if !message.from_bot {
            return Err(Failure::bad_request("Bad Request: message can't be edited"));
        }
        Ok(message)
    }
}

impl<'a> WaitingPoll<'a> {
    pub(crate) fn new(shared: &'a Shared, token: &'a str) -> WaitingPoll<'a> {
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
