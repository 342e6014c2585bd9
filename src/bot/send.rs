//! Every message the bot sends or edits goes through here: HTML text split
//! for Telegram's 4096-character limit without cutting a tag or an entity
//! (a tag open at a cut is closed before it and opened again after it), and
//! edits whose text would be too long keep the first part in the edited
//! message and send the rest as follow-up messages, so a long final report
//! never fails and leaves a progress message behind.

use teloxide::prelude::*;
use teloxide::types::{InlineKeyboardMarkup, MessageId, ParseMode};

use crate::bot::{HandlerResult, MAX_MESSAGE, Tg};

/// Sends HTML text, split when over Telegram's limit; buttons go under the last part.
///
/// # Errors
///
/// The Bot API refusing a part (the parts before it are sent).
pub async fn send(
    bot: &Tg,
    chat: ChatId,
    text: String,
    markup: Option<InlineKeyboardMarkup>,
) -> Result<Message, teloxide::RequestError> {
    let mut parts = split_html(&text, MAX_MESSAGE);
    let last = parts.pop().unwrap_or_default();
    for part in parts {
        bot.send_message(chat, part)
            .parse_mode(ParseMode::Html)
            .await?;
    }
    let request = bot.send_message(chat, last).parse_mode(ParseMode::Html);
    match markup {
        Some(markup) => request.reply_markup(markup).await,
        None => request.await,
    }
}

/// Sends `text` without buttons, as a handler's whole answer.
///
/// # Errors
///
/// As `send`.
pub async fn say(bot: &Tg, chat: ChatId, text: String) -> HandlerResult {
    send(bot, chat, text, None).await?;
    Ok(())
}

/// Keeps a progress message up to date: as steps arrive, the message is edited
/// to the newest one (steps that queued meanwhile are skipped). Ends when the
/// worker drops its sender. A failed edit is let go: the final text follows.
pub async fn follow_progress<Step>(
    bot: &Tg,
    chat: ChatId,
    message: MessageId,
    mut steps: tokio::sync::mpsc::UnboundedReceiver<Step>,
    text: impl Fn(Step) -> String,
) {
    while let Some(mut step) = steps.recv().await {
        while let Ok(next) = steps.try_recv() {
            step = next;
        }
        let _ = edit(bot, chat, message, text(step), None).await;
    }
}

/// Replaces a message's text (and buttons). Text over the limit: the edited
/// message gets the first part, the rest follows as new messages, the buttons
/// under the last.
///
/// # Errors
///
/// The Bot API refusing the edit or a follow-up.
pub async fn edit(
    bot: &Tg,
    chat: ChatId,
    message: MessageId,
    text: String,
    markup: Option<InlineKeyboardMarkup>,
) -> Result<(), teloxide::RequestError> {
    let mut parts = split_html(&text, MAX_MESSAGE).into_iter();
    let first = parts.next().unwrap_or_default();
    let rest: Vec<String> = parts.collect();
    let (first_markup, last_markup) = match rest.is_empty() {
        true => (markup, None),
        false => (None, markup),
    };
    let request = bot
        .edit_message_text(chat, message, first)
        .parse_mode(ParseMode::Html);
    let result = match first_markup {
        Some(markup) => request.reply_markup(markup).await,
        None => request.await,
    };
    match result {
        Ok(_) => {}
        // Editing to the same text is not an error worth surfacing.
        Err(teloxide::RequestError::Api(teloxide::ApiError::MessageNotModified)) => {}
        Err(err) => return Err(err),
    }
    let count = rest.len();
    for (index, part) in rest.into_iter().enumerate() {
        let request = bot.send_message(chat, part).parse_mode(ParseMode::Html);
        match &last_markup {
            Some(markup) if index + 1 == count => request.reply_markup(markup.clone()).await?,
            _ => request.await?,
        };
    }
    Ok(())
}

/// One indivisible piece of HTML text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Piece<'a> {
    Open {
        name: &'a str,
        raw: &'a str,
    },
    Close {
        raw: &'a str,
    },
    /// One character or one entity (`&amp;`).
    Text(&'a str),
}

impl<'a> Piece<'a> {
    fn raw(&self) -> &'a str {
        match self {
            Piece::Open { raw, .. } | Piece::Close { raw } | Piece::Text(raw) => raw,
        }
    }
}

/// The longest entity Telegram knows is `&quot;`; numeric ones are longer.
const MAX_ENTITY_BYTES: usize = 12;

fn pieces(text: &str) -> Vec<Piece<'_>> {
    let mut res = Vec::new();
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        let (piece, len) = match c {
            '<' => match rest.find('>') {
                Some(end) if rest[1..].starts_with('/') => {
                    (Piece::Close { raw: &rest[..=end] }, end + 1)
                }
                Some(end) => {
                    let inner = &rest[1..end];
                    let name_end = inner
                        .find(|c: char| c.is_whitespace() || c == '/')
                        .unwrap_or(inner.len());
                    (
                        Piece::Open {
                            name: &inner[..name_end],
                            raw: &rest[..=end],
                        },
                        end + 1,
                    )
                }
                None => (Piece::Text("<"), 1),
            },
            '&' => {
                let window = &rest.as_bytes()[..rest.len().min(MAX_ENTITY_BYTES)];
                let entity = window.iter().position(|b| *b == b';').filter(|end| {
                    *end > 1
                        && window[1..*end]
                            .iter()
                            .all(|b| b.is_ascii_alphanumeric() || *b == b'#')
                });
                match entity {
                    Some(end) => (Piece::Text(&rest[..=end]), end + 1),
                    None => (Piece::Text("&"), 1),
                }
            }
            c => (Piece::Text(&rest[..c.len_utf8()]), c.len_utf8()),
        };
        res.push(piece);
        rest = &rest[len..];
    }
    res
}

/// Length as Telegram may count it (UTF-16 code units); counting the raw
/// HTML, tags and entities included, is an upper bound of the visible text.
fn units(text: &str) -> usize {
    text.encode_utf16().count()
}

fn closers(open: &[(&str, &str)]) -> String {
    open.iter()
        .rev()
        .map(|(name, _)| format!("</{name}>"))
        .collect()
}

fn reopen(open: &[(&str, &str)]) -> String {
    open.iter().map(|(_, raw)| *raw).collect()
}

/// The stack of open tags after `piece`.
fn apply<'a>(open: &mut Vec<(&'a str, &'a str)>, piece: Piece<'a>) {
    match piece {
        Piece::Open { name, raw } => open.push((name, raw)),
        Piece::Close { .. } => {
            open.pop();
        }
        Piece::Text(_) => {}
    }
}

/// Splits HTML text into parts of at most `limit` UTF-16 units each, at line
/// breaks where it can, else between characters; never inside a tag or an
/// entity. Tags open at a cut are closed at the end of the part and opened
/// again at the start of the next, so every part parses on its own. Text
/// under the limit comes back unchanged, as one part.
#[must_use]
pub fn split_html(text: &str, limit: usize) -> Vec<String> {
    if units(text) <= limit {
        return vec![text.to_string()];
    }
    let mut parts = Vec::new();
    let mut open: Vec<(&str, &str)> = Vec::new();
    let mut current = String::new();
    let mut current_units = 0;
    // The part so far holds visible text (not only tags and blanks).
    let mut has_text = false;
    // The last line break of the part, after some text: where it ends, its
    // length in units, and the tags open there.
    let mut line_break: Option<(usize, Vec<(&str, &str)>)> = None;
    let mut text_after_break = false;
    for piece in pieces(text) {
        let mut after = open.clone();
        apply(&mut after, piece);
        let need = units(piece.raw()) + units(&closers(&after)).max(units(&closers(&open)));
        while has_text && current_units + need > limit {
            match line_break.take() {
                Some((at, stack)) => {
                    let tail = current.split_off(at);
                    current.push_str(&closers(&stack));
                    parts.push(std::mem::take(&mut current));
                    current = reopen(&stack) + &tail;
                    has_text = text_after_break;
                }
                None => {
                    current.push_str(&closers(&open));
                    parts.push(std::mem::take(&mut current));
                    current = reopen(&open);
                    has_text = false;
                }
            }
            current_units = units(&current);
        }
        current.push_str(piece.raw());
        current_units += units(piece.raw());
        open = after;
        if let Piece::Text(raw) = piece {
            if raw == "\n" {
                if has_text {
                    line_break = Some((current.len(), open.clone()));
                    text_after_break = false;
                }
            } else if !raw.trim().is_empty() {
                has_text = true;
                text_after_break = true;
            }
        }
    }
    // What is left after the last cut with no visible text (a closing tag,
    // blanks) would be an empty message: Telegram refuses those.
    if has_text || parts.is_empty() {
        current.push_str(&closers(&open));
        parts.push(current);
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks every part: under the limit, tags balanced, no entity cut, and
    /// the visible text of all parts together is the original's.
    #[track_caller]
    fn check(text: &str, limit: usize) -> Vec<String> {
        let parts = split_html(text, limit);
        for part in &parts {
            assert!(
                units(part) <= limit,
                "a part of {} units over {limit}:\n{part}",
                units(part)
            );
            let mut open = Vec::new();
            for piece in pieces(part) {
                match piece {
                    Piece::Open { name, .. } => open.push(name),
                    Piece::Close { raw } => {
                        let name = open
                            .pop()
                            .unwrap_or_else(|| panic!("{raw} closes nothing in:\n{part}"));
                        assert_eq!(raw, format!("</{name}>"), "in:\n{part}");
                    }
                    Piece::Text(raw) => {
                        assert!(raw != "&" && raw != "<", "a cut entity or tag in:\n{part}")
                    }
                }
            }
            assert!(open.is_empty(), "unclosed {open:?} in:\n{part}");
            assert!(!visible(part).trim().is_empty(), "an empty part");
        }
        assert_eq!(
            parts.iter().map(|p| visible(p)).collect::<String>(),
            visible(text)
        );
        parts
    }

    fn visible(html: &str) -> String {
        pieces(html)
            .into_iter()
            .filter_map(|piece| match piece {
                Piece::Text(raw) => Some(raw),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn short_text_is_one_part_unchanged() {
        assert_eq!(
            split_html("<b>hi</b> &amp; bye", 4096),
            ["<b>hi</b> &amp; bye"]
        );
    }

    #[test]
    fn lines_are_kept_whole_when_they_fit() {
        let text = "line of text\n".repeat(1000);
        let parts = check(&text, 4096);
        assert!(parts.len() > 1);
        assert!(parts.iter().all(|p| p.ends_with('\n')), "cut inside a line");
        assert_eq!(parts.concat(), text);
    }

    #[test]
    fn a_tag_open_at_a_cut_is_closed_and_opened_again() {
        let log: String = (0..400)
            .map(|i| format!("log line {i} &lt;x&gt;\n"))
            .collect();
        let text = format!("💥 <b>acme</b> crashed. Last log lines:\n<pre>{log}</pre>\nend");
        let parts = check(&text, 4096);
        assert!(parts.len() >= 3, "{}", parts.len());
        assert!(
            parts[0].ends_with("</pre>"),
            "{}",
            &parts[0][parts[0].len() - 40..]
        );
        assert!(parts[1].starts_with("<pre>"), "{}", &parts[1][..40]);
        let mut with_attributes = String::from("<a href=\"https://example.com/x\">");
        with_attributes.push_str(&"word ".repeat(50));
        with_attributes.push_str("</a>");
        let parts = check(&with_attributes, 60);
        assert!(
            parts[1].starts_with("<a href=\"https://example.com/x\">"),
            "{parts:#?}"
        );
    }

    #[test]
    fn entities_are_never_cut() {
        let text = "a&amp;b&lt;c&gt;d&#39;e&quot;".repeat(300);
        for limit in [7, 10, 11, 13, 64, 4096] {
            check(&text, limit);
        }
    }

    #[test]
    fn multibyte_characters_count_as_telegram_counts_them() {
        // Cyrillic is one unit, an emoji outside the BMP two.
        let text = format!("<i>{}</i>", "приветℹ️😀".repeat(900));
        let parts = check(&text, 4096);
        assert!(parts.len() > 1);
        let emoji_only = "😀".repeat(5000);
        let parts = check(&emoji_only, 4096);
        assert!(parts.iter().all(|p| units(p) <= 4096));
        assert_eq!(parts.concat(), emoji_only);
    }

    #[test]
    fn a_single_over_long_line_is_cut_between_characters() {
        let text = format!("<code>{}</code>", "x".repeat(10_000));
        let parts = check(&text, 4096);
        assert_eq!(parts.len(), 3);
        assert!(
            parts
                .iter()
                .all(|p| p.starts_with("<code>") && p.ends_with("</code>"))
        );
    }

    #[test]
    fn a_cut_prefers_the_last_line_break() {
        let text = format!("{}\n{}", "a".repeat(30), "b".repeat(30));
        assert_eq!(
            check(&text, 40),
            [format!("{}\n", "a".repeat(30)), "b".repeat(30)]
        );
    }
}
