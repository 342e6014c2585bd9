//! Telegram's HTML parse mode: its tags only, balanced; `&lt;`, `&gt;`,
//! `&amp;`, `&quot;` and numeric entities decoded, any other `&` kept.

/// The tags Telegram's HTML parse mode accepts.
const HTML_TAGS: [&str; 16] = [
    "b",
    "strong",
    "i",
    "em",
    "u",
    "ins",
    "s",
    "strike",
    "del",
    "span",
    "tg-spoiler",
    "a",
    "code",
    "pre",
    "blockquote",
    "tg-emoji",
];

/// Telegram's HTML: only its tags, balanced; `&lt;`, `&gt;`, `&amp;`,
/// `&quot;` and numeric entities decoded; other `&` kept as written.
pub(crate) fn parse(text: &str) -> Result<String, String> {
    let mut res = String::with_capacity(text.len());
    let mut open: Vec<String> = Vec::new();
    let mut at = 0;
    while let Some(c) = text[at..].chars().next() {
        match c {
            '<' => {
                let end = tag_end(text, at)
                    .ok_or_else(|| format!("Unclosed start tag at byte offset {at}"))?;
                let inside = &text[at + 1..end];
                if let Some(name) = inside.strip_prefix('/') {
                    let name = name.trim().to_ascii_lowercase();
                    match open.pop() {
                        Some(top) if top == name => {}
                        Some(top) => {
                            return Err(format!(
                                "Unmatched end tag at byte offset {at}, expected \"</{top}>\", found \"</{name}>\""
                            ));
                        }
                        None => return Err(format!("Unexpected end tag at byte offset {at}")),
                    }
                } else {
                    let name_end = inside
                        .find(|c: char| c.is_ascii_whitespace())
                        .unwrap_or(inside.len());
                    let name = inside[..name_end].to_ascii_lowercase();
                    if !HTML_TAGS.contains(&name.as_str()) {
                        return Err(format!(
                            "Unsupported start tag \"{name}\" at byte offset {at}"
                        ));
                    }
                    if name == "span" && !inside[name_end..].contains("tg-spoiler") {
                        return Err(format!(
                            "Tag \"span\" must have class \"tg-spoiler\" at byte offset {at}"
                        ));
                    }
                    open.push(name);
                }
                at = end + 1;
            }
            '&' => match html_entity(&text[at..]) {
                Some((decoded, length)) => {
                    res.push(decoded);
                    at += length;
                }
                None => {
                    res.push('&');
                    at += 1;
                }
            },
            _ => {
                res.push(c);
                at += c.len_utf8();
            }
        }
    }
    match open.pop() {
        Some(name) => Err(format!(
            "Can't find end tag corresponding to start tag \"{name}\""
        )),
        None => Ok(res),
    }
}

/// The byte index of the `>` closing the tag that starts at `start`, outside
/// quoted attribute values.
fn tag_end(text: &str, start: usize) -> Option<usize> {
    let mut quote = None;
    for (i, c) in text[start + 1..].char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(open), _) if c == open => quote = None,
            (None, '>') => return Some(start + 1 + i),
            (None, '<') => return None,
            _ => {}
        }
    }
    None
}

/// The character and length of the HTML entity `text` starts with.
fn html_entity(text: &str) -> Option<(char, usize)> {
    let semicolon = text.bytes().take(12).position(|b| b == b';')?;
    let name = &text[1..semicolon];
    let decoded = match name {
        "lt" => '<',
        "gt" => '>',
        "amp" => '&',
        "quot" => '"',
        _ => {
            let number = name.strip_prefix('#')?;
            let code = match number.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => number.parse().ok()?,
            };
            char::from_u32(code)?
        }
    };
    Some((decoded, semicolon + 1))
}
