//! The gateway config as the fake holds it: the file text, its parsed value, the
//! `hash` clients pass back as `baseHash`, JSON-merge-patch with the recorded errors
//! (no/stale `baseHash`, invalid config), `changedPaths`, redaction, and which
//! changes need a restart. Written back as plain JSON, as the real gateway does.

use std::path::{Path, PathBuf};

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

pub const REDACTED: &str = "__OPENCLAW_REDACTED__";

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

/// Objects the real gateway's normalized config always holds, even when the file
/// leaves them out. `changedPaths` descends into objects present on both sides and
/// names any other added or removed object by its own path, so keys added under these
/// are listed one by one, while a new object elsewhere is one path. Measured against
/// OpenClaw 2026.9.6 (a file without `hooks`, `session`, `logging`, `tools`):
/// `hooks.enabled`, `session.dmScope`, `gateway.controlUi.basePath`,
/// `channels.telegram.accounts.second`, but `logging`, `tools`, `skills.entries` (when
/// absent), `skills.entries.summarize` (when `entries` exists), `skills.install`,
/// `channels.telegram.groups`, `agents.defaults.heartbeat`.
const IMPLICIT_OBJECTS: &[&str] = &[
    "commands",
    "gateway.controlUi",
    "hooks",
    "messages",
    "session",
    "skills",
];

/// Whether `path` is an object the normalized config always holds (see
/// `IMPLICIT_OBJECTS`; also every `channels.<id>.accounts`).
fn is_implicit_object(path: &str) -> bool {
    let channel_accounts = path
        .strip_prefix("channels.")
        .and_then(|rest| rest.strip_suffix(".accounts"))
        .is_some_and(|channel| !channel.is_empty() && !channel.contains('.'));
    channel_accounts || IMPLICIT_OBJECTS.contains(&path)
}

/// `gateway.*` paths that hot-apply; every other `gateway.*` change needs a restart
/// (PROTOCOL.md §5.1).
const HOT_GATEWAY_PATHS: &[&str] = &[
    "gateway.auth.token",
    "gateway.auth.password",
    "gateway.http",
    "gateway.reload",
    "gateway.remote",
];

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

pub struct ConfigDoc {
    /// Where the file lives (reported as `path`); written only when `persist`.
    pub path: PathBuf,
    persist: bool,
    /// The file text; `None` until the file exists.
    raw: Option<String>,
    parsed: Value,
    /// Revision active in the running gateway; lags `revision()` until a restart
    /// applies a restart-requiring change.
    applied_revision: String,
}

/// A rejected RPC: code, message, optional details.
pub struct RpcError {
    pub code: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

impl RpcError {
    pub fn invalid(message: impl Into<String>) -> RpcError {
        RpcError {
            code: "INVALID_REQUEST",
            message: message.into(),
            details: None,
        }
    }
}

pub struct PatchOutcome {
    pub result: Value,
    /// `None` for a no-op.
    pub new_hash: Option<String>,
    pub requires_restart: bool,
}

impl ConfigDoc {
    /// Reads the file if it exists. A file that is not JSON5 is an error: the real
    /// gateway refuses to start on an invalid config too.
    ///
    /// # Errors
    /// The file exists but cannot be read or parsed.
    pub fn load(path: PathBuf, persist: bool) -> anyhow::Result<ConfigDoc> {
        let raw = match std::fs::read_to_string(&path) {
            Ok(text) => Some(text),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
            Err(err) => return Err(err).with_context(|| format!("reading {}", path.display())),
        };
        let parsed = match &raw {
            Some(text) => parse_json5(text).with_context(|| {
                format!("Config invalid: {} is not valid JSON5", path.display())
            })?,
            None => Value::Object(Map::new()),
        };
        if !parsed.is_object() {
            anyhow::bail!("Config invalid: {} must hold an object", path.display());
        }
        let mut doc = ConfigDoc {
            path,
            persist,
            raw,
            parsed,
            applied_revision: String::new(),
        };
        doc.applied_revision = doc.revision();
        Ok(doc)
    }

    #[must_use]
    pub fn exists(&self) -> bool {
        self.raw.is_some()
    }

    #[must_use]
    pub fn parsed(&self) -> &Value {
        &self.parsed
    }

    /// `hash`: the authored revision (the file bytes). Opaque to clients.
    #[must_use]
    pub fn hash(&self) -> String {
        opaque_hash(self.raw.as_deref().unwrap_or("").as_bytes())
    }

    /// `configRevisionHash`: the resolved config.
    #[must_use]
    pub fn revision(&self) -> String {
        opaque_hash(format!("resolved:{}", self.resolved()).as_bytes())
    }

    #[must_use]
    pub fn applied_revision(&self) -> &str {
        &self.applied_revision
    }

    /// Called when the (fake) process restarts: everything on disk is now live.
    pub fn apply_all(&mut self) {
        self.applied_revision = self.revision();
    }

    /// The string at a dotted path, with `${VAR}` replaced from the environment.
    #[must_use]
    pub fn string_at(&self, dotted: &str) -> Option<String> {
        let mut node = &self.parsed;
        for key in dotted.split('.') {
            node = node.get(key)?;
        }
        node.as_str().map(substitute_env)
    }

    #[must_use]
    pub fn bool_at(&self, dotted: &str) -> Option<bool> {
        let mut node = &self.parsed;
        for key in dotted.split('.') {
            node = node.get(key)?;
        }
        node.as_bool()
    }

    fn resolved(&self) -> Value {
        let mut resolved = self.parsed.clone();
        let agents = resolved
            .as_object_mut()
            .map(|root| root.entry("agents").or_insert_with(|| json!({})));
        if let Some(Value::Object(agents)) = agents {
            let entries = agents.entry("entries").or_insert_with(|| json!({}));
            if let Value::Object(entries) = entries
                && entries.is_empty()
            {
                entries.insert("main".to_string(), json!({}));
            }
        }
        resolved
    }

    fn runtime(&self) -> Value {
        let mut runtime = self.resolved();
        let defaults = json!({
            "agents": {"defaults": {"maxConcurrent": 8,
                "subagents": {"maxConcurrent": 8, "archiveAfterMinutes": 60},
                "compaction": {"mode": "safeguard"}}},
            "commands": {"native": "auto", "nativeSkills": "auto", "restart": true},
            "messages": {"ackReactionScope": "group-mentions"},
        });
        fill_defaults(&mut runtime, &defaults);
        runtime
    }

    /// The `config.get` payload (shape of transcripts/config-get.jsonl).
    #[must_use]
    pub fn get_payload(&self) -> Value {
        let redacted_raw = self.raw.as_ref().map(|raw| redact_raw(raw, &self.parsed));
        let runtime = redact(&self.runtime());
        json!({
            "path": self.path.display().to_string(),
            "includedPaths": [],
            "includeProvenance": [],
            "agentRosterIncludeOwned": false,
            "bindingsIncludeOwned": false,
            "exists": self.exists(),
            "raw": redacted_raw,
            "parsed": redact(&self.parsed),
            "sourceConfig": redact(&self.resolved()),
            "resolved": redact(&self.resolved()),
            "valid": true,
            "runtimeConfig": runtime,
            "config": runtime,
            "hash": self.hash(),
            "issues": [],
            "warnings": [],
            "legacyIssues": [],
            "configRevisionHash": self.revision(),
            "appliedConfigHash": self.applied_revision,
        })
    }

    /// `config.patch`. On success the file is rewritten; the caller broadcasts
    /// `config.changed` and schedules a restart when `requires_restart`.
    ///
    /// # Errors
    /// The recorded `INVALID_REQUEST`s: bad `raw`, missing or stale `baseHash`, an
    /// invalid resulting config.
    pub fn patch(&mut self, params: &Value, now_ms: i64) -> Result<PatchOutcome, RpcError> {
        let raw = params.get("raw").and_then(Value::as_str).unwrap_or("");
        let patch = match parse_json5(raw) {
            Ok(value @ Value::Object(_)) => value,
            Ok(_) => return Err(RpcError::invalid("config.patch raw must be an object")),
            Err(err) => {
                return Err(RpcError::invalid(format!(
                    "invalid config.patch raw: {err}"
                )));
            }
        };
        let mut leaves = Vec::new();
        leaf_paths(&patch, "", &mut leaves);
        let base_hash = params.get("baseHash").and_then(Value::as_str);
        let only_ui_prefs =
            !leaves.is_empty() && leaves.iter().all(|path| path.starts_with("ui.prefs."));
        if self.exists() && !only_ui_prefs {
            match base_hash {
                None => {
                    return Err(RpcError::invalid(format!(
                        "config base hash required for {}; re-run config.get and retry with baseHash",
                        leaves.join(", ")
                    )));
                }
                Some(hash) if hash != self.hash() => {
                    return Err(RpcError::invalid(
                        "config changed since last load; re-run config.get and retry",
                    ));
                }
                Some(_) => {}
            }
        }
        let mut next = self.parsed.clone();
        merge_patch(&mut next, &patch);
        let issues = validate_config(&next);
        if !issues.is_empty() {
            let summary: Vec<String> = issues
                .iter()
                .map(|issue| {
                    let path = issue["path"].as_str().unwrap_or("");
                    let where_ = if path.is_empty() { "<root>" } else { path };
                    format!("{where_}: {}", issue["message"].as_str().unwrap_or(""))
                })
                .collect();
            return Err(RpcError {
                code: "INVALID_REQUEST",
                message: format!("invalid config: {}", summary.join("; ")),
                details: Some(json!({ "issues": issues })),
            });
        }
        let mut changed = Vec::new();
        changed_paths(&self.parsed, &next, "", &mut changed);
        let path = self.path.display().to_string();
        if changed.is_empty() {
            return Ok(PatchOutcome {
                result: json!({"ok": true, "noop": true, "changedPaths": [], "path": path,
                    "config": redact(&self.runtime())}),
                new_hash: None,
                requires_restart: false,
            });
        }
        let requires_restart = changed
            .iter()
            .any(|changed_path| needs_restart(changed_path));
        self.replace(next);
        let note = params.get("note").cloned().unwrap_or(Value::Null);
        let mut result = json!({
            "ok": true,
            "path": path,
            "hash": self.hash(),
            "config": redact(&self.parsed),
            "changedPaths": changed,
            "sentinel": {"persisted": self.persist, "payload": {
                "kind": "config-patch", "status": "ok", "ts": now_ms, "message": note,
                "doctorHint": "Recommended follow-up: run openclaw doctor --non-interactive in a terminal or approvals-capable OpenClaw surface.",
                "stats": {"mode": "config.patch", "root": path, "requiresRestart": requires_restart}}},
        });
        if requires_restart && self.string_at("gateway.reload.mode").as_deref() == Some("off") {
            let delay = params
                .get("restartDelayMs")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            result["restart"] = json!({"ok": true, "signal": "SIGUSR2", "delayMs": delay});
        }
        if !requires_restart {
            self.applied_revision = self.revision();
        }
        Ok(PatchOutcome {
            result,
            new_hash: Some(self.hash()),
            requires_restart,
        })
    }

    /// `skills.update` (config mode): merges into `skills.entries.<skillKey>` and
    /// returns the redacted entry.
    pub fn update_skill_entry(&mut self, skill_key: &str, params: &Value) -> Value {
        let mut entry = Map::new();
        for key in ["enabled", "apiKey", "env"] {
            if let Some(value) = params.get(key) {
                entry.insert(key.to_string(), value.clone());
            }
        }
        let patch = json!({"skills": {"entries": {skill_key: Value::Object(entry)}}});
        let mut next = self.parsed.clone();
        merge_patch(&mut next, &patch);
        self.replace(next);
        self.applied_revision = self.revision();
        redact(&self.parsed["skills"]["entries"][skill_key])
    }

    fn replace(&mut self, next: Value) {
        let text = serde_json::to_string_pretty(&next).unwrap_or_else(|_| "{}".to_string());
        self.parsed = next;
        self.raw = Some(text);
        if self.persist
            && let Some(raw) = &self.raw
            && let Err(err) = write_atomically(&self.path, raw.as_bytes())
        {
            tracing::warn!(cause = %err, path = %self.path.display(), "config write failed");
        }
    }
}

/// `hmac-sha256:v1:<b64url>`-shaped opaque hash (plain SHA-256 here: only equality matters).
#[must_use]
pub fn opaque_hash(bytes: &[u8]) -> String {
    format!(
        "hmac-sha256:v1:{}",
        URL_SAFE_NO_PAD.encode(Sha256::digest(bytes))
    )
}

/// # Errors
/// The text is not JSON5.
pub fn parse_json5(text: &str) -> anyhow::Result<Value> {
    json5::from_str::<Value>(text).map_err(|err| anyhow::anyhow!("{err}"))
}

/// Replaces `${VAR}` (upper-case names only) from the environment; `$${VAR}` escapes.
#[must_use]
pub fn substitute_env(text: &str) -> String {
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

/// RFC 7396 merge patch; `"__OPENCLAW_REDACTED__"` keeps the existing secret.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch_map) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(target_map) = target else {
        return;
    };
    for (key, value) in patch_map {
        match value {
            Value::Null => {
                target_map.remove(key);
            }
            Value::String(text) if text == REDACTED && target_map.contains_key(key) => {}
            Value::Object(_) => {
                let slot = target_map.entry(key.clone()).or_insert(Value::Null);
                merge_patch(slot, value);
            }
            _ => {
                target_map.insert(key.clone(), value.clone());
            }
        }
    }
}

fn join(prefix: &str, key: &str) -> String {
    match prefix {
        "" => key.to_string(),
        _ => format!("{prefix}.{key}"),
    }
}

fn leaf_paths(value: &Value, prefix: &str, out: &mut Vec<String>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                leaf_paths(child, &join(prefix, key), out);
            }
        }
        _ => out.push(prefix.to_string()),
    }
}

fn changed_paths(old: &Value, new: &Value, prefix: &str, out: &mut Vec<String>) {
    if old == new {
        return;
    }
    let (old_map, new_map) = match (old, new) {
        (Value::Object(old_map), Value::Object(new_map)) => (Some(old_map), Some(new_map)),
        (Value::Null, Value::Object(new_map)) if is_implicit_object(prefix) => {
            (None, Some(new_map))
        }
        (Value::Object(old_map), Value::Null) if is_implicit_object(prefix) => {
            (Some(old_map), None)
        }
        _ => {
            out.push(prefix.to_string());
            return;
        }
    };
    let empty = Map::new();
    let old_map = old_map.unwrap_or(&empty);
    let new_map = new_map.unwrap_or(&empty);
    for (key, child) in new_map {
        let before = old_map.get(key).unwrap_or(&Value::Null);
        changed_paths(before, child, &join(prefix, key), out);
    }
    for (key, child) in old_map {
        if !new_map.contains_key(key) {
            changed_paths(child, &Value::Null, &join(prefix, key), out);
        }
    }
}

fn needs_restart(changed_path: &str) -> bool {
    if !(changed_path == "gateway" || changed_path.starts_with("gateway.")) {
        return false;
    }
    !HOT_GATEWAY_PATHS
        .iter()
        .any(|hot| changed_path == *hot || changed_path.starts_with(&format!("{hot}.")))
}

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

/// A small part of the real (zod) config schema: unknown root and `gateway` keys and
/// the types of the leaves MTP templates. Issues are shaped as recorded
/// (transcripts/config-patch-invalid.jsonl).
fn validate_config(config: &Value) -> Vec<Value> {
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
fn redact_raw(raw: &str, parsed: &Value) -> String {
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

fn fill_defaults(target: &mut Value, defaults: &Value) {
    let (Value::Object(target_map), Value::Object(default_map)) = (target, defaults) else {
        return;
    };
    for (key, default) in default_map {
        match target_map.get_mut(key) {
            Some(existing) => fill_defaults(existing, default),
            None => {
                target_map.insert(key.clone(), default.clone());
            }
        }
    }
}

/// Writes `bytes` to `path` through a temp file and a rename, mode 0600.
///
/// # Errors
/// Any I/O error.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> ConfigDoc {
        let dir = std::env::temp_dir().join(format!(
            "fake-gw-config-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("openclaw.json");
        std::fs::write(&path, text).unwrap();
        ConfigDoc::load(path, false).unwrap()
    }

    const RECORDED: &str = r#"// comment
{ gateway: { mode: "local", bind: "loopback", port: 28789, auth: { mode: "token" } },
  update: { checkOnStart: false } }"#;

    /// transcripts/config-patch-no-basehash.jsonl
    #[test]
    fn patch_without_base_hash_names_the_leaves() {
        let mut doc = doc(RECORDED);
        let err = doc
            .patch(
                &json!({"raw": "{ skills: { entries: { weather: { enabled: false } } } }"}),
                0,
            )
            .err()
            .unwrap();
        assert_eq!(
            err.message,
            "config base hash required for skills.entries.weather.enabled; re-run config.get and retry with baseHash"
        );
    }

    /// transcripts/config-patch-stale-basehash.jsonl
    #[test]
    fn patch_with_a_stale_hash_is_refused() {
        let mut doc = doc(RECORDED);
        let err = doc
            .patch(
                &json!({"raw": "{ skills: {} }", "baseHash": "hmac-sha256:v1:AAAA"}),
                0,
            )
            .err()
            .unwrap();
        assert_eq!(
            err.message,
            "config changed since last load; re-run config.get and retry"
        );
    }

    /// transcripts/config-patch.jsonl: changedPaths, new hash, then a no-op.
    #[test]
    fn patch_round_trip_then_noop() {
        let mut doc = doc(RECORDED);
        let hash = doc.hash();
        let params = json!({"raw": "{ skills: { entries: { weather: { enabled: false } } } }", "baseHash": hash});
        let outcome = doc.patch(&params, 1).ok().unwrap();
        assert_eq!(outcome.result["changedPaths"], json!(["skills.entries"]));
        assert!(!outcome.requires_restart);
        let new_hash = outcome.new_hash.unwrap();
        assert_ne!(new_hash, hash);
        assert_eq!(doc.hash(), new_hash);
        let again = json!({"raw": "{ skills: { entries: { weather: { enabled: false } } } }", "baseHash": new_hash});
        let outcome = doc.patch(&again, 2).ok().unwrap();
        assert_eq!(outcome.result["noop"], json!(true));
        assert_eq!(outcome.result["changedPaths"], json!([]));
    }

    /// `changedPaths` as a real 2026.9.6 cell listed them, patch after patch (see
    /// `IMPLICIT_OBJECTS`): new objects by their own path unless the normalized config
    /// always holds them.
    #[test]
    fn changed_paths_name_new_objects_like_the_real_gateway() {
        // The file an MTP cell starts with (templates/openclaw.json5), in short.
        let mut doc = doc(
            r#"{ gateway: { mode: "local", bind: "lan", port: 18789, auth: { mode: "token" } },
  update: { checkOnStart: false },
  agents: { defaults: { model: { primary: "anthropic/claude-opus-4-6" } } },
  channels: { telegram: { enabled: true, dmPolicy: "pairing", groupPolicy: "disabled" } } }"#,
        );
        for (raw, expected) in [
            (
                "{ skills: { entries: { weather: { enabled: false } } } }",
                json!(["skills.entries"]),
            ),
            (
                "{ skills: { entries: { weather: { enabled: true, env: { A: \"1\" } } } } }",
                json!([
                    "skills.entries.weather.enabled",
                    "skills.entries.weather.env"
                ]),
            ),
            (
                "{ skills: { entries: { weather: { env: { A: \"2\", B: \"3\" } } } } }",
                json!([
                    "skills.entries.weather.env.A",
                    "skills.entries.weather.env.B"
                ]),
            ),
            (
                "{ skills: { entries: { summarize: { enabled: false } } } }",
                json!(["skills.entries.summarize"]),
            ),
            (
                "{ skills: { entries: { summarize: null } } }",
                json!(["skills.entries.summarize"]),
            ),
            ("{ logging: { level: \"info\" } }", json!(["logging"])),
            ("{ tools: { deny: [\"exec\"] } }", json!(["tools"])),
            (
                "{ session: { dmScope: \"main\" } }",
                json!(["session.dmScope"]),
            ),
            (
                "{ skills: { install: { nodeManager: \"npm\" } } }",
                json!(["skills.install"]),
            ),
            (
                "{ channels: { telegram: { accounts: { second: { enabled: false } } } } }",
                json!(["channels.telegram.accounts.second"]),
            ),
            (
                "{ channels: { telegram: { groups: { \"*\": { requireMention: true } } } } }",
                json!(["channels.telegram.groups"]),
            ),
            (
                "{ agents: { defaults: { heartbeat: { every: \"2h\" } } } }",
                json!(["agents.defaults.heartbeat"]),
            ),
            (
                "{ gateway: { controlUi: { basePath: \"/mtp-ui\" } } }",
                json!(["gateway.controlUi.basePath"]),
            ),
        ] {
            let params = json!({"raw": raw, "baseHash": doc.hash()});
            let outcome = doc.patch(&params, 1).ok().unwrap();
            assert_eq!(outcome.result["changedPaths"], expected, "{raw}");
        }
    }

    /// transcripts/config-patch-hooks.jsonl: leaf paths of a new object; the token is redacted.
    #[test]
    fn hooks_patch_lists_leaves_and_redacts_the_token() {
        let mut doc = doc(RECORDED);
        let params = json!({"raw": r#"{ hooks: { enabled: true, token: "${OPENCLAW_HOOKS_TOKEN}", path: "/hooks", allowedAgentIds: ["main"] } }"#, "baseHash": doc.hash()});
        let outcome = doc.patch(&params, 1).ok().unwrap();
        assert_eq!(
            outcome.result["changedPaths"],
            // Alphabetical: serde_json sorts keys here; the real gateway lists them in
            // schema order. Clients must not rely on the order.
            json!([
                "hooks.allowedAgentIds",
                "hooks.enabled",
                "hooks.path",
                "hooks.token"
            ])
        );
        assert_eq!(outcome.result["config"]["hooks"]["token"], json!(REDACTED));
    }

    /// transcripts/config-patch-invalid.jsonl
    #[test]
    fn invalid_patch_lists_issues_like_the_gateway() {
        let mut doc = doc(RECORDED);
        let params = json!({"raw": r#"{ skills: { entries: { weather: { enabled: "yes" } } }, bogusKey: 1 }"#, "baseHash": doc.hash()});
        let err = doc.patch(&params, 1).err().unwrap();
        assert_eq!(
            err.message,
            "invalid config: skills.entries.weather.enabled: Invalid input: expected boolean, received string (allowed: true, false); <root>: Unrecognized key: \"bogusKey\""
        );
        assert_eq!(err.details.unwrap()["issues"][1]["path"], json!(""));
    }

    /// A gateway.* change needs a restart and leaves appliedConfigHash behind.
    #[test]
    fn gateway_changes_need_a_restart() {
        let mut doc = doc(RECORDED);
        let applied = doc.applied_revision().to_string();
        let params = json!({"raw": "{ gateway: { controlUi: { basePath: \"/ui\" } } }", "baseHash": doc.hash()});
        let outcome = doc.patch(&params, 1).ok().unwrap();
        assert!(outcome.requires_restart);
        assert_eq!(
            outcome.result["sentinel"]["payload"]["stats"]["requiresRestart"],
            json!(true)
        );
        assert_eq!(doc.applied_revision(), applied);
        doc.apply_all();
        assert_eq!(doc.applied_revision(), doc.revision());
        assert!(!needs_restart("gateway.auth.token"));
        assert!(needs_restart("gateway.port"));
        assert!(!needs_restart("hooks.enabled"));
    }

    #[test]
    fn env_substitution_follows_the_rules() {
        assert_eq!(substitute_env("$${X}"), "${X}");
        assert_eq!(substitute_env("a${lower}b"), "a${lower}b");
        assert_eq!(substitute_env("plain"), "plain");
    }
}
