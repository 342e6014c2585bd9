//! `sendDocument` and `sendPhoto`: a multipart upload (or a file id or URL
//! sent as text) becomes a document or photo message with a caption.

use serde_json::{Map, Value, json};

use crate::call::{Answer, Failure, Upload};
use crate::chat::ChatMessage;
use crate::markup::{reply_markup, set_markup};
use crate::params::{FilePart, chat_id_param, string_param};
use crate::parse_mode::render_param;
use crate::state::BotState;

/// Telegram's limit on a caption after entity parsing.
const MAX_CAPTION_CHARS: usize = 1024;

/// `sendDocument` and `sendPhoto`; `field` is `document` or `photo`.
pub(crate) fn send_file(
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
    let caption = match render_param(params, "caption") {
        Ok(caption) if caption.visible.chars().count() > MAX_CAPTION_CHARS => {
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
    if !caption.visible.is_empty() {
        message["caption"] = json!(caption.visible);
    }
    set_markup(&mut message, markup);
    let sent = ChatMessage::sent(
        message_id,
        caption,
        keyboard,
        upload.clone(),
        message.clone(),
    );
    bot.chat_mut(chat).messages.push(sent);
    (Ok(message), upload)
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
