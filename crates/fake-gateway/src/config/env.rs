//! `${VAR}` substitution in config strings, by the real gateway's rules.

/// Replaces `${VAR}` (upper-case names only) from the environment; `$${VAR}` escapes.
#[must_use]
pub fn substitute(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find('$') {
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        if after.starts_with("$${") {
            rest = &after[1..];
            let end = rest.find('}').map_or(rest.len(), |i| i + 1);
            out.push_str(&rest[..end]);
            rest = &rest[end..];
            continue;
        }
        if let Some(body) = after.strip_prefix("${")
            && let Some(end) = body.find('}')
        {
            let name = &body[..end];
            let valid = !name.is_empty()
                && name.chars().enumerate().all(|(i, c)| {
                    c == '_' || c.is_ascii_uppercase() || (i > 0 && c.is_ascii_digit())
                });
            if valid {
                out.push_str(&std::env::var(name).unwrap_or_default());
                rest = &body[end + 1..];
                continue;
            }
        }
        out.push('$');
        rest = &after[1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_substitution_follows_the_rules() {
        assert_eq!(substitute("$${X}"), "${X}");
        assert_eq!(substitute("a${lower}b"), "a${lower}b");
        assert_eq!(substitute("plain"), "plain");
    }
}
