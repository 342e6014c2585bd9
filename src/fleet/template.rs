//! Renders `templates/openclaw.json5` for one tenant. The template is compiled
//! into the binary, so a cell never depends on files beside the executable.

use anyhow::{Context, bail};
use serde_json::Value;

use crate::tenant::DmPolicy;

const TEMPLATE: &str = include_str!("../../templates/openclaw.json5");

/// What varies between tenants' configs.
#[derive(Debug, Clone)]
pub struct TemplateInput<'a> {
    pub model: &'a str,
    pub dm_policy: &'a DmPolicy,
    pub telegram_api_root: Option<&'a str>,
    /// Bundled skills to allow; `None` keeps OpenClaw's default.
    pub skills: Option<&'a [String]>,
}

/// The admin's device as OpenClaw 2026.9.6 keeps a paired device, for
/// `devices/paired.json` in a new cell's state dir: the gateway imports that
/// legacy file into its SQLite store on its first start, so the admin's first
/// connect is answered `hello-ok` without a `devices approve`. A record needs
/// an operator token (else the gateway asks for a `role-upgrade`) whose scopes
/// are a list; `platform` is pinned, so it is what the admin's connect says.
///
/// # Errors
///
/// Never in practice (serializing a JSON value).
pub fn paired_devices(
    device_id: &str,
    public_key: &str,
    scopes: &[&str],
    device_token: &str,
    now_ms: i64,
) -> anyhow::Result<String> {
    let record = serde_json::json!({
        "deviceId": device_id,
        "publicKey": public_key,
        "platform": "linux",
        "clientId": "gateway-client",
        "clientMode": "backend",
        "role": "operator",
        "roles": ["operator"],
        "scopes": scopes,
        "approvedScopes": scopes,
        "approvedVia": "owner",
        "createdAtMs": now_ms,
        "approvedAtMs": now_ms,
        "tokens": { "operator": {
            "token": device_token,
            "role": "operator",
            "scopes": scopes,
            "createdAtMs": now_ms,
        } },
    });
    let mut devices = serde_json::Map::new();
    devices.insert(device_id.to_string(), record);
    Ok(serde_json::to_string_pretty(&Value::Object(devices))?)
}

/// The rendered config as pretty JSON (valid JSON5), ready for `openclaw.json`.
///
/// # Errors
///
/// A template that does not parse, or a placeholder without a value.
pub fn render(input: &TemplateInput<'_>) -> anyhow::Result<String> {
    let mut config: Value =
        json5::from_str(TEMPLATE).context("templates/openclaw.json5 is not valid JSON5")?;
    let (policy, allow_from) = match input.dm_policy {
        DmPolicy::Pairing => ("pairing", Value::Null),
        DmPolicy::Allowlist(ids) => {
            if ids.is_empty() {
                bail!("an allowlist needs at least one Telegram user id");
            }
            (
                "allowlist",
                Value::Array(ids.iter().map(|id| Value::String(id.to_string())).collect()),
            )
        }
    };
    let values = [
        ("model", Value::String(input.model.to_string())),
        ("dm_policy", Value::String(policy.to_string())),
        ("allow_from", allow_from),
        (
            "api_root",
            input
                .telegram_api_root
                .map_or(Value::Null, |root| Value::String(root.to_string())),
        ),
        (
            "skills",
            input.skills.map_or(Value::Null, |skills| {
                Value::Array(skills.iter().map(|s| Value::String(s.clone())).collect())
            }),
        ),
    ];
    substitute(&mut config, &values)?;
    Ok(serde_json::to_string_pretty(&config)?)
}

fn substitute(value: &mut Value, values: &[(&str, Value)]) -> anyhow::Result<()> {
    match value {
        Value::Object(map) => {
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                let Some(child) = map.get_mut(&key) else {
                    continue;
                };
                let was_empty = child.as_object().is_some_and(|m| m.is_empty());
                substitute(child, values)?;
                // A key whose value became null, or an object all of whose keys
                // were left out, is left out too.
                let emptied = !was_empty && child.as_object().is_some_and(|m| m.is_empty());
                if child.is_null() || emptied {
                    map.remove(&key);
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                substitute(item, values)?;
            }
        }
        Value::String(text) => {
            if let Some(name) = text
                .strip_prefix("{{")
                .and_then(|rest| rest.strip_suffix("}}"))
            {
                let Some((_, replacement)) = values.iter().find(|(key, _)| *key == name) else {
                    bail!("templates/openclaw.json5 uses {{{{{name}}}}}, which has no value");
                };
                *value = replacement.clone();
            } else if text.contains("{{") {
                bail!(
                    "templates/openclaw.json5: placeholders must be a whole string value, found {text:?}"
                );
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render_value(input: &TemplateInput<'_>) -> Value {
        serde_json::from_str(&render(input).unwrap()).unwrap()
    }

    /// The config for `model` with pairing, the real Bot API and OpenClaw's default skills.
    fn render_plain(model: &str) -> Value {
        render_value(&TemplateInput {
            model,
            dm_policy: &DmPolicy::Pairing,
            telegram_api_root: None,
            skills: None,
        })
    }

    #[test]
    fn pairing_policy_leaves_out_allow_from_and_api_root() {
        let config = render_plain("anthropic/claude-opus-4-6");
        assert_eq!(config["gateway"]["mode"], "local");
        assert_eq!(config["gateway"]["auth"]["mode"], "token");
        assert_eq!(
            config["agents"]["defaults"]["model"]["primary"],
            "anthropic/claude-opus-4-6"
        );
        let telegram = &config["channels"]["telegram"];
        assert_eq!(telegram["dmPolicy"], "pairing");
        assert_eq!(telegram["botToken"], "${TELEGRAM_BOT_TOKEN}");
        assert!(telegram.get("allowFrom").is_none(), "{telegram}");
        assert!(telegram.get("apiRoot").is_none(), "{telegram}");
        assert!(config.get("skills").is_none(), "{config}");
    }

    #[test]
    fn allowlist_policy_lists_ids_and_api_root_is_set() {
        let config = render_value(&TemplateInput {
            model: "openai/gpt-5",
            dm_policy: &DmPolicy::Allowlist(vec![42, 7]),
            telegram_api_root: Some("http://127.0.0.1:9"),
            skills: Some(&["weather".to_string()]),
        });
        let telegram = &config["channels"]["telegram"];
        assert_eq!(telegram["dmPolicy"], "allowlist");
        assert_eq!(telegram["allowFrom"], serde_json::json!(["42", "7"]));
        assert_eq!(telegram["apiRoot"], "http://127.0.0.1:9");
        assert_eq!(
            config["skills"]["allowBundled"],
            serde_json::json!(["weather"])
        );
    }

    #[test]
    fn model_text_cannot_inject_json() {
        let config = render_plain("a/b\", \"x\": \"y");
        assert_eq!(
            config["agents"]["defaults"]["model"]["primary"],
            "a/b\", \"x\": \"y"
        );
        assert!(config["agents"]["defaults"]["model"].get("x").is_none());
    }

    #[test]
    fn empty_allowlist_is_refused() {
        assert!(
            render(&TemplateInput {
                model: "a/b",
                dm_policy: &DmPolicy::Allowlist(vec![]),
                telegram_api_root: None,
                skills: None
            })
            .is_err()
        );
    }
}
