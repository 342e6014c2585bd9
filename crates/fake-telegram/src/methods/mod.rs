//! The Bot API methods the fake models, by family: `updates` (long polling,
//! webhooks), `messages` (send, edit, delete, chat actions), `files`
//! (`sendDocument`, `sendPhoto`), `callbacks` (`answerCallbackQuery`),
//! `commands` (the command lists). Method names are matched without regard
//! to case, as Telegram matches them; any other method answers `true`.

mod callbacks;
mod commands;
mod files;
mod messages;
mod updates;

use serde_json::{Map, Value};

use crate::call::{Answer, Upload};
use crate::params::FilePart;
use crate::state::BotState;

pub(crate) use commands::commands_key;
pub(crate) use updates::get_updates;

/// Runs one method other than `getUpdates` (which waits, see
/// [`get_updates`]); returns the answer and the uploaded file, if any.
pub(crate) fn answer(
    bot: &mut BotState,
    method: &str,
    params: &Map<String, Value>,
    files: Vec<FilePart>,
) -> (Answer, Option<Upload>) {
    let response = match method.to_ascii_lowercase().as_str() {
        "getme" => Ok(bot.me_json()),
        "sendmessage" => messages::send_message(bot, params),
        "editmessagetext" => messages::edit_message_text(bot, params),
        "editmessagereplymarkup" => messages::edit_message_reply_markup(bot, params),
        "deletemessage" => messages::delete_message(bot, params),
        "deletemessages" => messages::delete_messages(bot, params),
        "sendchataction" => messages::send_chat_action(params),
        "answercallbackquery" => callbacks::answer_callback_query(bot, params),
        "setmycommands" => commands::set_my_commands(bot, params),
        "getmycommands" => commands::get_my_commands(bot, params),
        "deletemycommands" => commands::delete_my_commands(bot, params),
        "setwebhook" => updates::set_webhook(bot, params),
        "deletewebhook" => updates::delete_webhook(bot, params),
        "getwebhookinfo" => Ok(updates::get_webhook_info(bot)),
        "senddocument" => return files::send_file(bot, params, files, "document"),
        "sendphoto" => return files::send_file(bot, params, files, "photo"),
        _ => Ok(Value::Bool(true)),
    };
    (response, None)
}
