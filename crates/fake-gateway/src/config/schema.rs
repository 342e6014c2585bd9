//! A small part of the real (zod) config schema, enough for what MTP templates:
//! unknown root and `gateway` keys, and the types of the leaves MTP writes. Issues
//! are shaped and worded as recorded (transcripts/config-patch-invalid.jsonl).

use serde_json::{Value, json};

/// Root keys of the real config schema (OpenClaw 2026.9.6 `config.schema`); anything
/// else is `Unrecognized key`. `$schema` is tolerated.
const ROOT_KEYS: &[&str] = &[
    "$schema",
    "accessGroups",
    "acp",
    "agents",
    "approvals",
    "attachments",
    "auth",
    "bindings",
    "broadcast",
    "browser",
    "channels",
    "cloudWorkers",
    "commands",
    "cron",
    "desktop",
    "diagnostics",
    "discovery",
    "env",
    "gateway",
    "hooks",
    "logging",
    "mcp",
    "memory",
    "messages",
    "meta",
    "models",
    "nodeHost",
    "plugins",
    "proxy",
    "secrets",
    "security",
    "session",
    "skills",
    "surfaces",
    "talk",
    "telemetry",
    "tools",
    "transcripts",
    "tts",
    "ui",
    "update",
    "wizard",
    "worktreeAcceleration",
    "worktreeRoot",
];

/// Keys of `gateway` in the real schema.
const GATEWAY_KEYS: &[&str] = &[
    "allowRealIpFallback",
    "auth",
    "bind",
    "cliAgents",
    "controlUi",
    "customBindHost",
    "http",
    "mode",
    "nodes",
    "port",
    "portals",
    "publicOrigin",
    "push",
    "reload",
    "remote",
    "roles",
    "tailscale",
    "terminal",
    "tls",
    "tools",
    "trustedProxies",
];

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The issues of `config`, in the order the real gateway lists them; empty when
/// valid.
pub fn issues(config: &Value) -> Vec<Value> {
    let mut issues = Vec::new();
    let expect_bool = |path: String, value: &Value, issues: &mut Vec<Value>| {
        if !value.is_boolean() {
            issues.push(json!({"path": path,
                "message": format!("Invalid input: expected boolean, received {} (allowed: true, false)", type_name(value)),
                "allowedValues": ["true", "false"], "allowedValuesHiddenCount": 0}));
        }
    };
    let expect = |path: String, value: &Value, wanted: &str, issues: &mut Vec<Value>| {
        let ok = match wanted {
            "string" => value.is_string(),
            "number" => value.is_number(),
            "object" => value.is_object(),
            "array" => value.is_array(),
            _ => true,
        };
        if !ok {
            issues.push(json!({"path": path,
                "message": format!("Invalid input: expected {wanted}, received {}", type_name(value))}));
        }
    };
    if let Some(Value::Object(entries)) = config.pointer("/skills/entries") {
        for (key, entry) in entries {
            let base = format!("skills.entries.{key}");
            if let Some(enabled) = entry.get("enabled") {
                expect_bool(format!("{base}.enabled"), enabled, &mut issues);
            }
            if let Some(api_key) = entry.get("apiKey") {
                expect(format!("{base}.apiKey"), api_key, "string", &mut issues);
            }
        }
    }
    for (pointer, path) in [
        ("/hooks/enabled", "hooks.enabled"),
        ("/update/checkOnStart", "update.checkOnStart"),
        ("/channels/telegram/enabled", "channels.telegram.enabled"),
    ] {
        if let Some(value) = config.pointer(pointer) {
            expect_bool(path.to_string(), value, &mut issues);
        }
    }
    for (pointer, path, wanted) in [
        ("/gateway/mode", "gateway.mode", "string"),
        ("/gateway/port", "gateway.port", "number"),
        ("/gateway/bind", "gateway.bind", "string"),
        ("/hooks/token", "hooks.token", "string"),
        ("/hooks/path", "hooks.path", "string"),
        ("/hooks/allowedAgentIds", "hooks.allowedAgentIds", "array"),
        (
            "/channels/telegram/botToken",
            "channels.telegram.botToken",
            "string",
        ),
        (
            "/channels/telegram/allowFrom",
            "channels.telegram.allowFrom",
            "array",
        ),
    ] {
        if let Some(value) = config.pointer(pointer) {
            expect(path.to_string(), value, wanted, &mut issues);
        }
    }
    if let Some(Value::Object(gateway)) = config.get("gateway") {
        for key in gateway.keys() {
            if !GATEWAY_KEYS.contains(&key.as_str()) {
                issues.push(
                    json!({"path": "gateway", "message": format!("Unrecognized key: \"{key}\"")}),
                );
            }
        }
    }
    if let Value::Object(root) = config {
        for key in root.keys() {
            if !ROOT_KEYS.contains(&key.as_str()) {
                issues.push(json!({"path": "", "message": format!("Unrecognized key: \"{key}\"")}));
            }
        }
    }
    issues
}
