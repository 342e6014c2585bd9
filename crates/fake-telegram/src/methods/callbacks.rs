//! `answerCallbackQuery`: a pushed button press is answered once.

use serde_json::{Map, Value};

use crate::call::{Answer, Failure};
use crate::params::string_param;
use crate::state::BotState;

const QUERY_INVALID: &str =
    "Bad Request: query is too old and response timeout expired or query id is invalid";

pub(crate) fn answer_callback_query(bot: &mut BotState, params: &Map<String, Value>) -> Answer {
    let query_id = string_param(params, "callback_query_id").unwrap_or_default();
    match bot.callback_queries.get_mut(&query_id) {
        Some(answered) if !*answered => {
            *answered = true;
            Ok(Value::Bool(true))
        }
        _ => Err(Failure::bad_request(QUERY_INVALID)),
    }
}
