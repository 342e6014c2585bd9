//! Text in a `parse_mode` as Telegram parses it: the visible text, or the
//! `can't parse entities` refusal a bot with a markup bug gets.
//!
//! Hand-written on purpose. Telegram's HTML is not HTML but tdlib's own small
//! grammar (`parse_html` in td/telegram/MessageEntity.cpp): a fixed tag set,
//! any other tag or an unbalanced one refused, a bare `&` and an unknown
//! `&name;` kept as written, `<blockquote expandable>` allowed. An HTML5
//! parser (`html5ever`, `tl`) repairs what Telegram refuses and never fails;
//! an XML reader (`quick-xml`) refuses what Telegram accepts (a bare `&`, an
//! attribute without a value) and knows neither the tag set nor these
//! entities, so either would need the same hand-written rules on top. The
//! check here follows that grammar for tags, nesting and entities; of the
//! attributes it checks only `span`'s class. Markdown is likewise Telegram's
//! own dialect, not CommonMark.

mod html;
mod markdown;

use serde_json::{Map, Value};

use crate::call::Failure;
use crate::params::string_param;

/// A text or caption as the bot sent it and as the user sees it.
pub(crate) struct Rendered {
    /// Exactly as sent, markup included.
    pub(crate) raw: String,
    pub(crate) parse_mode: Option<String>,
    /// What the user sees: the markup removed.
    pub(crate) visible: String,
}

/// The parameter `name` (empty when missing) in the `parse_mode` parameter.
pub(crate) fn render_param(params: &Map<String, Value>, name: &str) -> Result<Rendered, Failure> {
    let raw = string_param(params, name).unwrap_or_default();
    let parse_mode = string_param(params, "parse_mode").filter(|mode| !mode.is_empty());
    let visible = render(&raw, parse_mode.as_deref())?;
    Ok(Rendered {
        raw,
        parse_mode,
        visible,
    })
}

/// The visible text of `text` in `parse_mode`, or Telegram's refusal.
pub(crate) fn render(text: &str, parse_mode: Option<&str>) -> Result<String, Failure> {
    let Some(parse_mode) = parse_mode else {
        return Ok(text.to_owned());
    };
    let visible = match parse_mode.to_ascii_lowercase().as_str() {
        "html" => html::parse(text),
        "markdownv2" => markdown::parse(text, true),
        "markdown" => markdown::parse(text, false),
        _ => return Err(Failure::bad_request("Bad Request: unsupported parse_mode")),
    };
    visible.map_err(|why| Failure::bad_request(format!("Bad Request: can't parse entities: {why}")))
}
