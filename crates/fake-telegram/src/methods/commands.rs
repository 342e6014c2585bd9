//! The command lists: `setMyCommands` (checked as Telegram checks names and
//! descriptions), `getMyCommands`, `deleteMyCommands`, kept per scope and
//! language.

use serde_json::{Map, Value, json};

use crate::call::{Answer, Failure};
use crate::params::{json_param, string_param};
use crate::state::BotState;

pub(crate) fn set_my_commands(bot: &mut BotState, params: &Map<String, Value>) -> Answer {
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

pub(crate) fn get_my_commands(bot: &mut BotState, params: &Map<String, Value>) -> Answer {
    let key = commands_key(
        json_param(params, "scope")?.as_ref(),
        &string_param(params, "language_code").unwrap_or_default(),
    );
    Ok(bot.commands.get(&key).cloned().unwrap_or_else(|| json!([])))
}

pub(crate) fn delete_my_commands(bot: &mut BotState, params: &Map<String, Value>) -> Answer {
    let key = commands_key(
        json_param(params, "scope")?.as_ref(),
        &string_param(params, "language_code").unwrap_or_default(),
    );
    bot.commands.remove(&key);
    Ok(Value::Bool(true))
}

pub(crate) fn commands_key(scope: Option<&Value>, language_code: &str) -> String {
    let default = json!({ "type": "default" });
    format!("{} {language_code}", scope.unwrap_or(&default))
}
