//! Telegram's MarkdownV2 and legacy Markdown parse modes.

/// Telegram's MarkdownV2 (`v2`) or legacy Markdown: the visible text, or why
/// Telegram would refuse it. MarkdownV2 refuses an unescaped reserved
/// character and an unclosed entity; legacy Markdown has no nesting and only
/// refuses an unclosed entity. Close to Telegram's parser, not identical
/// (expandable block quotes, for one, are not understood).
pub(crate) fn parse(text: &str, v2: bool) -> Result<String, String> {
    const RESERVED: &str = "_*[]()~`>#+-=|{}.!";
    let unclosed = |name: &str, at: usize| {
        if v2 {
            format!("Can't find end of {name} entity at byte offset {at}")
        } else {
            format!("Can't find end of the entity starting at byte offset {at}")
        }
    };
    let mut res = String::with_capacity(text.len());
    let mut open: Vec<(&str, usize)> = Vec::new();
    let mut chars = text.char_indices().peekable();
    let mut line_start = true;
    while let Some((at, c)) = chars.next() {
        let at_line_start = line_start;
        line_start = c == '\n';
        let top = open.last().map(|(name, _)| *name);
        let escapable = v2 || chars.peek().is_some_and(|(_, next)| "_*`[".contains(*next));
        if c == '\\' && escapable {
            match chars.next() {
                Some((_, escaped)) => res.push(escaped),
                None => res.push('\\'),
            }
            continue;
        }
        if matches!(top, Some("Code" | "Pre")) {
            let closes = c == '`' && (top == Some("Code") || next_is(&mut chars, "``"));
            if closes {
                open.pop();
            } else {
                res.push(c);
            }
            continue;
        }
        // Legacy Markdown does not nest: inside an entity only its own
        // closing character counts.
        if !v2 && let Some(top) = top {
            let closing = match top {
                "Bold" => '*',
                "Italic" => '_',
                _ => ']',
            };
            if c != closing {
                res.push(c);
                continue;
            }
        }
        let mut toggle = |name: &'static str| {
            if open.last().is_some_and(|(top, _)| *top == name) {
                open.pop();
            } else {
                open.push((name, at));
            }
        };
        match c {
            '*' => toggle("Bold"),
            '_' if v2 && next_is(&mut chars, "_") => toggle("Underline"),
            '_' => toggle("Italic"),
            '~' if v2 => toggle("Strikethrough"),
            '|' if v2 && next_is(&mut chars, "|") => toggle("Spoiler"),
            '`' if next_is(&mut chars, "``") => {
                // The rest of the opening line, if the block goes on past it,
                // names the language.
                let mut ahead = chars.clone();
                if ahead
                    .by_ref()
                    .find(|(_, c)| *c == '\n' || *c == '`')
                    .is_some_and(|(_, c)| c == '\n')
                {
                    chars = ahead;
                }
                open.push(("Pre", at));
            }
            '`' => open.push(("Code", at)),
            '[' => open.push(("TextUrl", at)),
            ']' if top == Some("TextUrl") => {
                if !next_is(&mut chars, "(") {
                    if v2 {
                        return Err(
                            "Character ']' is reserved and must be escaped with the preceding '\\'"
                                .to_owned(),
                        );
                    }
                    open.pop();
                    continue;
                }
                let mut closed = false;
                while let Some((_, url_char)) = chars.next() {
                    match url_char {
                        '\\' => {
                            chars.next();
                        }
                        ')' => {
                            closed = true;
                            break;
                        }
                        _ => {}
                    }
                }
                if !closed {
                    return Err(format!("Can't find end of a URL at byte offset {at}"));
                }
                open.pop();
            }
            '>' if v2 && at_line_start => {}
            _ if v2 && RESERVED.contains(c) => {
                return Err(format!(
                    "Character '{c}' is reserved and must be escaped with the preceding '\\'"
                ));
            }
            _ => res.push(c),
        }
    }
    match open.last() {
        Some((name, at)) => Err(unclosed(name, *at)),
        None => Ok(res),
    }
}

/// Consumes `expected` if the text continues with it.
fn next_is(chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>, expected: &str) -> bool {
    let mut ahead = chars.clone();
    for wanted in expected.chars() {
        match ahead.next() {
            Some((_, c)) if c == wanted => {}
            _ => return false,
        }
    }
    *chars = ahead;
    true
}
