//! Inline keyboards: `reply_markup` checked as Telegram checks it (64 bytes of
//! callback data, no button without an action), and the [`Button`]s a test
//! reads back.

use serde_json::{Map, Value};

use crate::call::Failure;
use crate::params::json_param;

/// Telegram's limit on `callback_data` of an inline button (1-64 bytes).
const MAX_CALLBACK_DATA_BYTES: usize = 64;

const TEXT_BUTTONS: &str = "Bad Request: can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard";

/// One button of an inline keyboard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Button {
    pub text: String,
    pub callback_data: Option<String>,
    pub url: Option<String>,
}

/// Checks `reply_markup` as Telegram does. Returns the markup to show in the
/// `Message` (Telegram echoes only non-empty inline keyboards) and the inline
/// keyboard.
pub(crate) fn reply_markup(
    params: &Map<String, Value>,
) -> Result<(Option<Value>, Vec<Vec<Button>>), Failure> {
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

pub(crate) fn inline_keyboard(rows: &Value) -> Result<Vec<Vec<Button>>, Failure> {
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

pub(crate) fn set_markup(message: &mut Value, markup: Option<Value>) {
    let fields = message.as_object_mut().expect("a message is a JSON object");
    match markup {
        Some(markup) => fields.insert("reply_markup".to_owned(), markup),
        None => fields.remove("reply_markup"),
    };
}
