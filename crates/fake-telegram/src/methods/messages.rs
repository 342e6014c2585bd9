//! Text messages: `sendMessage`, `editMessageText`,
//! `editMessageReplyMarkup`, `deleteMessage(s)`, and `sendChatAction`, with
//! Telegram's checks (length after entity parsing, parse modes, no edit that
//! changes nothing, no edit of a deleted message, a group's rate).

use serde_json::{Map, Value, json};

use crate::call::{Answer, Failure};
use crate::chat::{ChatMessage, unix_now};
use crate::markup::{reply_markup, set_markup};
use crate::params::{chat_id_param, integer, json_param, message_id_param, string_param};
use crate::parse_mode::{Rendered, render_param};
use crate::state::BotState;

/// Telegram's limit on a message text after entity parsing. Counted here in
/// Unicode scalar values; Telegram may count UTF-16 code units, so an
/// emoji-heavy text right at the limit can pass here and fail there.
const MAX_TEXT_CHARS: usize = 4096;

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

const NOT_MODIFIED: &str = "Bad Request: message is not modified: specified new message content and reply markup are \
                            exactly the same as a current content and reply markup of the message";

pub(crate) fn send_message(bot: &mut BotState, params: &Map<String, Value>) -> Answer {
    let chat = chat_id_param(params)?;
    bot.group_rate.check(chat)?;
    let text = message_text(params, "Bad Request: message is too long")?;
    let (markup, keyboard) = reply_markup(params)?;
    let (message_id, mut message) = bot.new_message(chat);
    message["text"] = json!(text.visible);
    set_markup(&mut message, markup);
    let sent = ChatMessage::sent(message_id, text, keyboard, None, message.clone());
    bot.chat_mut(chat).messages.push(sent);
    Ok(message)
}

/// The `text` parameter, rendered and checked; `too_long` is Telegram's error
/// for a text over the limit, which differs between sending and editing.
fn message_text(params: &Map<String, Value>, too_long: &str) -> Result<Rendered, Failure> {
    let text = render_param(params, "text")?;
    if text.visible.trim().is_empty() {
        return Err(Failure::bad_request("Bad Request: message text is empty"));
    }
    if text.visible.chars().count() > MAX_TEXT_CHARS {
        return Err(Failure::bad_request(too_long));
    }
    Ok(text)
}

pub(crate) fn edit_message_text(bot: &mut BotState, params: &Map<String, Value>) -> Answer {
    if params.contains_key("inline_message_id") {
        return Ok(Value::Bool(true));
    }
    let chat = chat_id_param(params)?;
    let message_id = message_id_param(params)?;
    let text = message_text(params, "Bad Request: MESSAGE_TOO_LONG")?;
    // Like Telegram, an edit without `reply_markup` removes the keyboard.
    let (markup, keyboard) = reply_markup(params)?;
    let message = bot.editable(chat, message_id)?;
    if message.upload.is_some() {
        return Err(Failure::bad_request(
            "Bad Request: there is no text in the message to edit",
        ));
    }
    if message.text == text.visible && message.raw_text == text.raw && message.keyboard == keyboard
    {
        return Err(Failure::bad_request(NOT_MODIFIED));
    }
    message.json["text"] = json!(text.visible);
    message.json["edit_date"] = json!(unix_now());
    set_markup(&mut message.json, markup);
    message.history.push(text.visible.clone());
    message.text = text.visible;
    message.raw_text = text.raw;
    message.parse_mode = text.parse_mode;
    message.keyboard = keyboard;
    Ok(message.json.clone())
}

pub(crate) fn edit_message_reply_markup(bot: &mut BotState, params: &Map<String, Value>) -> Answer {
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

pub(crate) fn delete_message(bot: &mut BotState, params: &Map<String, Value>) -> Answer {
    let chat = chat_id_param(params)?;
    let message_id = message_id_param(params)?;
    let message = bot
        .live_message(chat, message_id)
        .ok_or_else(|| Failure::bad_request("Bad Request: message to delete not found"))?;
    message.deleted = true;
    Ok(Value::Bool(true))
}

pub(crate) fn delete_messages(bot: &mut BotState, params: &Map<String, Value>) -> Answer {
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

pub(crate) fn send_chat_action(params: &Map<String, Value>) -> Answer {
    chat_id_param(params)?;
    let action = string_param(params, "action").unwrap_or_default();
    if !CHAT_ACTIONS.contains(&action.as_str()) {
        return Err(Failure::bad_request(
            "Bad Request: wrong parameter action in request",
        ));
    }
    Ok(Value::Bool(true))
}
