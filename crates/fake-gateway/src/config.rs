//! The gateway config as the fake holds it: the file text, its parsed value, the
//! `hash` clients pass back as `baseHash`, and `config.patch` (a JSON merge patch)
//! with the recorded errors (no/stale `baseHash`, invalid config). Written back as
//! plain JSON, as the real gateway does. Its parts: the schema subset (`schema`),
//! `changedPaths` and restarts (`paths`), secrets and redaction (`secrets`), `${VAR}`
//! substitution (`env`).

mod env;
mod paths;
mod schema;
mod secrets;

use std::path::PathBuf;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

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
        node.as_str().map(env::substitute)
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
        let redacted_raw = self
            .raw
            .as_ref()
            .map(|raw| secrets::redact_raw(raw, &self.parsed));
        let runtime = secrets::redact(&self.runtime());
        json!({
            "path": self.path.display().to_string(),
            "includedPaths": [],
            "includeProvenance": [],
            "agentRosterIncludeOwned": false,
            "bindingsIncludeOwned": false,
            "exists": self.exists(),
            "raw": redacted_raw,
            "parsed": secrets::redact(&self.parsed),
            "sourceConfig": secrets::redact(&self.resolved()),
            "resolved": secrets::redact(&self.resolved()),
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
        let leaves = paths::leaves(&patch);
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
        let issues = schema::issues(&next);
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
        let changed = paths::changed(&self.parsed, &next);
        let path = self.path.display().to_string();
        if changed.is_empty() {
            return Ok(PatchOutcome {
                result: json!({"ok": true, "noop": true, "changedPaths": [], "path": path,
                    "config": secrets::redact(&self.runtime())}),
                new_hash: None,
                requires_restart: false,
            });
        }
        let requires_restart = changed
            .iter()
            .any(|changed_path| paths::needs_restart(changed_path));
        self.replace(next);
        let note = params.get("note").cloned().unwrap_or(Value::Null);
        let mut result = json!({
            "ok": true,
            "path": path,
            "hash": self.hash(),
            "config": secrets::redact(&self.parsed),
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
        secrets::redact(&self.parsed["skills"]["entries"][skill_key])
    }

    fn replace(&mut self, next: Value) {
        let text = serde_json::to_string_pretty(&next).unwrap_or_else(|_| "{}".to_string());
        self.parsed = next;
        self.raw = Some(text);
        if self.persist
            && let Some(raw) = &self.raw
            && let Err(err) = crate::persist::write_atomically(&self.path, raw.as_bytes())
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

/// RFC 7396 merge patch (`json_patch::merge`), except that a redacted placeholder
/// keeps the secret already there (`secrets::keep_redacted`).
fn merge_patch(target: &mut Value, patch: &Value) {
    let mut patch = patch.clone();
    secrets::keep_redacted(&mut patch, target);
    json_patch::merge(target, &patch);
}

/// Adds the keys of `defaults` that `target` lacks, at every depth.
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A document loaded from `text` (not persisted: the dir goes when loaded).
    fn doc(text: &str) -> ConfigDoc {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("openclaw.json");
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
        assert_eq!(
            outcome.result["config"]["hooks"]["token"],
            json!(secrets::REDACTED)
        );
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
        assert!(!paths::needs_restart("gateway.auth.token"));
        assert!(paths::needs_restart("gateway.port"));
        assert!(!paths::needs_restart("hooks.enabled"));
    }

    /// RFC 7396 as `config.patch` needs it: `null` deletes, objects merge, anything
    /// else replaces; the redacted placeholder keeps a secret that is there and is
    /// taken literally where there is none.
    #[test]
    fn merge_patch_keeps_redacted_secrets() {
        let mut config = json!({"gateway": {"auth": {"mode": "token", "token": "s3cret"}, "port": 1},
            "hooks": {"token": "h00k", "path": "/hooks"}, "tools": ["a"]});
        let patch = json!({"gateway": {"auth": {"token": secrets::REDACTED}, "port": null},
            "hooks": {"token": "new", "path": null}, "tools": {"deny": []},
            "channels": {"telegram": {"botToken": secrets::REDACTED}}});
        merge_patch(&mut config, &patch);
        assert_eq!(
            config,
            json!({"gateway": {"auth": {"mode": "token", "token": "s3cret"}},
                "hooks": {"token": "new"}, "tools": {"deny": []},
                "channels": {"telegram": {"botToken": secrets::REDACTED}}})
        );
    }
}
