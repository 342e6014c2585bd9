//! Secrets in the config: which keys hold them, their redaction in `config.get`
//! and patch results (`__OPENCLAW_REDACTED__`), and the redacted placeholder in a
//! patch, which keeps the secret already there.

use serde_json::Value;

pub const REDACTED: &str = "__OPENCLAW_REDACTED__";

/// Keys whose string values are secrets in `config.get` and patch results.
const SECRET_KEYS: &[&str] = &[
    "token",
    "password",
    "apiKey",
    "botToken",
    "webhookSecret",
    "secret",
    "appToken",
    "signingSecret",
];

/// Replaces secret-looking string values with `__OPENCLAW_REDACTED__`.
#[must_use]
pub fn redact(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, child)| {
                    let redacted = match child {
                        Value::String(_) if SECRET_KEYS.contains(&key.as_str()) => {
                            Value::String(REDACTED.to_string())
                        }
                        _ => redact(child),
                    };
                    (key.clone(), redacted)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        other => other.clone(),
    }
}

/// The file text with every secret value replaced, comments and layout kept.
pub fn redact_raw(raw: &str, parsed: &Value) -> String {
    let mut secrets = Vec::new();
    collect_secrets(parsed, &mut secrets);
    let mut out = raw.to_string();
    for secret in secrets {
        if secret.is_empty() || secret == REDACTED {
            continue;
        }
        out = out.replace(&secret, REDACTED);
    }
    out
}

fn collect_secrets(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                match child {
                    Value::String(text) if SECRET_KEYS.contains(&key.as_str()) => {
                        out.push(text.clone());
                    }
                    _ => collect_secrets(child, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_secrets(item, out)),
        _ => {}
    }
}

/// Drops from `patch` every `"__OPENCLAW_REDACTED__"` whose key `target` already
/// holds at the same place, so that a merge patch (RFC 7396) keeps those secrets, as
/// the real gateway does when a client sends back what `config.get` redacted.
pub fn keep_redacted(patch: &mut Value, target: &Value) {
    let Value::Object(patch_map) = patch else {
        return;
    };
    patch_map.retain(|key, value| !(value.as_str() == Some(REDACTED) && target.get(key).is_some()));
    for (key, value) in patch_map.iter_mut() {
        keep_redacted(value, target.get(key).unwrap_or(&Value::Null));
    }
}
