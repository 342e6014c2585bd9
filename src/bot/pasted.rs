//! Bot tokens pasted where none was asked for. An operator's message (new or
//! edited, text or caption) that holds anything shaped like a BotFather token
//! is deleted at once, with a warning, whatever the dialogue state; only the
//! token step of `/newclient` takes one (and deletes it there). Such a message
//! goes no further down the handler tree, so it is never taken as a display
//! name, an id, a provider key or a purge confirmation, and never stored.

use std::sync::Arc;

use teloxide::dispatching::dialogue::Storage;
use teloxide::prelude::*;
use teloxide::types::UpdateKind;

use crate::bot::state::{State, Step};
use crate::bot::storage::DialogueStorage;
use crate::bot::{Ctx, HandlerResult, Tg, expired, say};

/// The operator's message an update carries: new or edited.
fn message_of(update: &Update) -> Option<&Message> {
    match &update.kind {
        UpdateKind::Message(msg) | UpdateKind::EditedMessage(msg) => Some(msg),
        _ => None,
    }
}

/// Whether the update is an operator's message with a token in it that the
/// dialogue did not ask for.
pub async fn stray_token(update: Update, storage: Arc<DialogueStorage>, ctx: Arc<Ctx>) -> bool {
    let Some(msg) = message_of(&update) else {
        return false;
    };
    let text = msg.text().or_else(|| msg.caption()).unwrap_or_default();
    if !holds_bot_token(text) {
        return false;
    }
    if matches!(update.kind, UpdateKind::EditedMessage(_)) {
        // An edit answers no question.
        return true;
    }
    let asked = match storage.get_dialogue(msg.chat.id).await {
        Ok(Some(State::NewClient(draft))) => {
            draft.step == Step::Token && !expired(&ctx, draft.touched_at)
        }
        _ => false,
    };
    !asked
}

/// Deletes the message, then says so (or says to delete it by hand).
pub async fn delete(bot: Tg, update: Update, ctx: Arc<Ctx>) -> HandlerResult {
    let Some(msg) = message_of(&update) else {
        return Ok(());
    };
    let key = match bot.delete_message(msg.chat.id, msg.id).await {
        Ok(_) => "common.token_deleted",
        Err(err) => {
            tracing::warn!(cause = %err, chat = msg.chat.id.0, "cannot delete a message with a bot token");
            "common.token_not_deleted"
        }
    };
    say(&bot, msg.chat.id, ctx.texts.plain(key)).await
}

/// Finds `<digits>:<30 or more of A-Z a-z 0-9 _ ->` anywhere in `text`,
/// glued to other text or not (`bot123:AA…` in a URL counts).
#[must_use]
pub fn holds_bot_token(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.iter().enumerate().any(|(colon, &b)| {
        if b != b':' || colon == 0 || !bytes[colon - 1].is_ascii_digit() {
            return false;
        }
        let tail = bytes[colon + 1..]
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_' || **b == b'-')
            .count();
        tail >= 30
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_shapes_are_found_anywhere() {
        let token = "7000000101:AATenantBotTokenForTestsOnly_abcdefghi";
        for text in [
            token.to_string(),
            format!("here it is: {token} thanks"),
            format!("https://api.telegram.org/bot{token}/getMe"),
            format!("/client {token}"),
            format!("x{token}"),
            "1:abcdefghijklmnopqrstuvwxyz0123-_".to_string(),
        ] {
            assert!(holds_bot_token(&text), "{text}");
        }
        for text in [
            "",
            "acme",
            "port 19100:18789",
            "7000000101:AAshort",
            ":AATenantBotTokenForTestsOnly_abcdefghi",
            "abc:AATenantBotTokenForTestsOnly_abcdefghi",
            "12 : AATenantBotTokenForTestsOnly_abcdefghi",
        ] {
            assert!(!holds_bot_token(text), "{text}");
        }
    }
}
