//! Reading and changing a tenant's OpenClaw config through its gateway, with
//! a preview: `config.get` for the value now, `config.schema.lookup` for how
//! the change applies (hot, or a gateway restart), then `config.patch` with
//! the hash it was computed from (read again and retried on a stale hash).
//! A restart-requiring change is watched until the gateway runs it; when the
//! gateway does not come back by itself, its container is restarted.
//!
//! Secrets never show: the gateway redacts them in what it returns, and a
//! value at a secret-looking path is shown as `(secret)` either way.

use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use serde_json::{Value, json};
use sha2::Digest;

use crate::fleet::cell::wait_healthy;
use crate::fleet::inventory::known;
use crate::fleet::lock::{self, Op};
use crate::fleet::{Actor, App, audit_result, redact};
use crate::gateway::{CallError, ConfigPatch};
use crate::tenant::TenantId;

/// How long a restart-requiring change may take to be running, by the
/// gateway's own restart, before the container is restarted.
const RESTART_WAIT: Duration = Duration::from_secs(60);
const PATCH_ATTEMPTS: usize = 3;
/// What the gateway puts in place of a secret.
const REDACTED: &str = "__OPENCLAW_REDACTED__";
/// Shown instead of a secret's value.
pub const SECRET: &str = "(secret)";
/// Paths MTP itself owns in every cell: changed by hand they would cut the
/// admin off (auth, port, bind) or the client's bot (its token).
const OWNED: [&str; 7] = [
    "gateway.auth",
    "gateway.port",
    "gateway.bind",
    "gateway.tls",
    "channels.telegram.botToken",
    "channels.telegram.tokenFile",
    "hooks.token",
];

/// Bad input: nothing was changed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigRefused(pub String);

/// A value read from a tenant's config.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigRead {
    pub path: Option<String>,
    /// `None` when the path is not set.
    pub value: Option<Value>,
    /// The config's revision (`hash`).
    pub hash: Option<String>,
    /// The file is ahead of what the running gateway applied.
    pub restart_pending: bool,
}

/// How a change takes effect, as the gateway's schema says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applies {
    Hot,
    Restart,
    /// Read at the next use (no reload at all).
    NoReload,
}

impl Applies {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Applies::Hot => "hot",
            Applies::Restart => "restart",
            Applies::NoReload => "none",
        }
    }
}

/// What became of one tenant's change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `--dry-run`: shown, not applied; `code` confirms this preview.
    Previewed {
        code: String,
    },
    /// The value was already so.
    Unchanged,
    Applied,
    /// Applied and running after a gateway restart; `container` when the
    /// gateway did not come back by itself and its container was restarted.
    Restarted {
        container: bool,
    },
    Failed(String),
}

/// One tenant's change: before, after (secrets shown as `(secret)`), how it
/// applies and how it went.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigChange {
    pub tenant: TenantId,
    pub path: String,
    pub before: Option<Value>,
    pub after: Value,
    pub applies: Applies,
    pub outcome: Outcome,
}

/// Parses a value as the operator typed it (JSON5: `"2h"`, `true`, `3`,
/// `{ a: 1 }`); a bare word that is no JSON5 value is taken as a string.
///
/// # Errors
///
/// `ConfigRefused` for an empty value.
pub fn parse_value(text: &str) -> anyhow::Result<Value> {
    let text = text.trim();
    if text.is_empty() {
        bail!(ConfigRefused(
            "give a value (JSON5, e.g. \"2h\", true, 3)".into()
        ));
    }
    Ok(json5::from_str::<Value>(text).unwrap_or_else(|_| Value::String(text.to_string())))
}

/// Checks a dotted config path to set: well formed, not one MTP owns, and
/// not a secret (a value typed on a command line or into a chat stays in
/// the shell's history or the chat; secrets reach a cell only through MTP's
/// own files).
///
/// # Errors
///
/// `ConfigRefused` saying which.
pub fn check_path(path: &str) -> anyhow::Result<()> {
    check_shape(path)?;
    if let Some(owned) = OWNED.iter().find(|owned| {
        path == **owned
            || path.starts_with(&format!("{owned}."))
            || owned.starts_with(&format!("{path}."))
    }) {
        bail!(ConfigRefused(format!(
            "{owned} is managed by MTP in every cell (the admin's access and the client's bot depend on it); it cannot be set by hand"
        )));
    }
    if secret_path(path) {
        bail!(ConfigRefused(format!(
            "{path} holds a secret; secrets are not set through the config (the value would stay in a shell history or a chat)"
        )));
    }
    Ok(())
}

/// A path to read: segments of letters, digits, `_` and `-`, joined by dots.
fn check_shape(path: &str) -> anyhow::Result<()> {
    let well_formed = !path.is_empty()
        && path.len() <= 200
        && path.split('.').all(|segment| {
            !segment.is_empty()
                && segment
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        });
    if !well_formed {
        bail!(ConfigRefused(format!(
            "{path:?} is not a config path; write it with dots, like agents.defaults.heartbeat.every"
        )));
    }
    Ok(())
}

/// Every tenant's id, in order (for `--all`).
///
/// # Errors
///
/// The store cannot be read.
pub fn every_tenant(app: &App) -> anyhow::Result<Vec<TenantId>> {
    let mut ids: Vec<TenantId> = app.store.tenants()?.into_iter().map(|r| r.id).collect();
    ids.sort();
    Ok(ids)
}

/// Reads the tenant's effective config, or the value at `path`.
///
/// # Errors
///
/// A malformed path, an unknown or asleep tenant, a gateway that does not answer.
pub async fn config_get(
    app: &App,
    tenant: &TenantId,
    path: Option<&str>,
) -> anyhow::Result<ConfigRead> {
    if let Some(path) = path {
        check_shape(path)?;
    }
    known(app, tenant)?;
    let client = crate::fleet::client(app, tenant).await?;
    let snapshot = client.config_get().await.context("config.get")?;
    let value = match path {
        Some(path) => at(&snapshot.config, path).cloned(),
        None => Some(snapshot.config.clone()),
    };
    let value = value.map(|value| masked(app, tenant, path.unwrap_or(""), &value));
    Ok(ConfigRead {
        path: path.map(str::to_string),
        value,
        hash: snapshot.hash.clone(),
        restart_pending: snapshot.restart_pending(),
    })
}

/// Sets `path` to `value` on each tenant in turn (or only shows the change,
/// `dry_run`). A tenant that fails is reported and the others go on.
/// `confirm`: a preview's code; when given, a tenant whose config changed
/// since that preview is not changed (its outcome says so).
///
/// # Errors
///
/// `ConfigRefused` for a malformed or MTP-owned path, no tenants, or an
/// unknown tenant (nothing was changed).
pub async fn config_set(
    app: &App,
    actor: &Actor,
    tenants: &[TenantId],
    path: &str,
    value: &Value,
    dry_run: bool,
    confirm: Option<&str>,
) -> anyhow::Result<Vec<ConfigChange>> {
    check_path(path)?;
    if tenants.is_empty() {
        bail!(ConfigRefused("name at least one tenant".into()));
    }
    for tenant in tenants {
        known(app, tenant)?;
    }
    let mut changes = Vec::new();
    for tenant in tenants {
        let change = match set_one(app, actor, tenant, path, value, dry_run, confirm).await {
            Ok(change) => change,
            Err(err) => ConfigChange {
                tenant: tenant.clone(),
                path: path.to_string(),
                before: None,
                after: masked(app, tenant, path, value),
                applies: Applies::Restart,
                outcome: Outcome::Failed(redact_secrets(app, tenant, &format!("{err:#}"))),
            },
        };
        changes.push(change);
    }
    Ok(changes)
}

async fn set_one(
    app: &App,
    actor: &Actor,
    tenant: &TenantId,
    path: &str,
    value: &Value,
    dry_run: bool,
    confirm: Option<&str>,
) -> anyhow::Result<ConfigChange> {
    let _guard = if dry_run {
        None
    } else {
        Some(lock::acquire(app, tenant, Op::Config, actor)?)
    };
    let client = crate::fleet::client(app, tenant).await?;
    let applies = applies(&client, path).await;
    let mut change = ConfigChange {
        tenant: tenant.clone(),
        path: path.to_string(),
        before: None,
        after: masked(app, tenant, path, value),
        applies,
        outcome: Outcome::Unchanged,
    };
    for _ in 0..PATCH_ATTEMPTS {
        let snapshot = client.config_get().await.context("config.get")?;
        let before = at(&snapshot.config, path).cloned();
        change.before = before
            .as_ref()
            .map(|before| masked(app, tenant, path, before));
        let hash = snapshot
            .hash
            .clone()
            .ok_or_else(|| anyhow!("the gateway's config.get carried no hash"))?;
        if before.as_ref() == Some(value) {
            change.outcome = Outcome::Unchanged;
            return Ok(change);
        }
        let code = confirmation_code(tenant, path, value, &hash);
        if dry_run {
            change.outcome = Outcome::Previewed { code };
            return Ok(change);
        }
        if let Some(confirm) = confirm
            && confirm != code
        {
            bail!("its config changed since the preview; look at the preview again");
        }
        let patch = ConfigPatch {
            raw: nested(path, value).to_string(),
            base_hash: hash,
            replace_paths: if value.is_array() {
                vec![path.to_string()]
            } else {
                Vec::new()
            },
            note: Some(format!("mtp: config set {path}")),
        };
        let result = match client.config_patch(&patch).await {
            Ok(patched) => Ok(patched),
            Err(CallError::ConfigConflict) => continue,
            Err(err) => Err(anyhow!(err).context("config.patch")),
        };
        let result = match result {
            Ok(patched) if patched.noop => Ok(Outcome::Unchanged),
            // The gateway's answer is the word on it (the schema only previews).
            Ok(patched) if patched.requires_restart => running_after_restart(app, tenant).await,
            Ok(_) => Ok(Outcome::Applied),
            Err(err) => Err(err),
        };
        audit_result(
            app,
            actor,
            &format!("config set {path}"),
            tenant,
            "gateway",
            &result,
        );
        change.outcome = result?;
        return Ok(change);
    }
    bail!("its config kept changing under the patch ({PATCH_ATTEMPTS} attempts); try again")
}

/// How a change at `path` applies, from the gateway's schema (a restart when
/// it cannot say).
async fn applies(client: &crate::gateway::Client, path: &str) -> Applies {
    let lookup = client
        .call("config.schema.lookup", json!({ "path": path }))
        .await;
    match lookup
        .ok()
        .as_ref()
        .and_then(|found| found["reloadKind"].as_str())
    {
        Some("hot") => Applies::Hot,
        Some("none") => Applies::NoReload,
        _ => Applies::Restart,
    }
}

/// Waits until the gateway runs the new config (its applied revision is the
/// file's); restarts the container when the gateway does not get there by
/// itself within `RESTART_WAIT`.
async fn running_after_restart(app: &App, tenant: &TenantId) -> anyhow::Result<Outcome> {
    if applied_within(app, tenant, RESTART_WAIT).await {
        return Ok(Outcome::Restarted { container: false });
    }
    tracing::warn!(%tenant, "config set: the gateway did not restart by itself; restarting its container");
    let record = known(app, tenant)?;
    app.pool.close(tenant);
    app.runtime
        .restart(tenant)
        .await
        .map_err(|err| anyhow!(err).context("cannot restart the container"))?;
    wait_healthy(app, &record, app.config.cell.health_timeout).await?;
    if applied_within(app, tenant, RESTART_WAIT).await {
        return Ok(Outcome::Restarted { container: true });
    }
    bail!(
        "the change is written but the gateway does not run it, even after a container restart; look at its log"
    )
}

async fn applied_within(app: &App, tenant: &TenantId, within: Duration) -> bool {
    // Right after the patch the old process already says a restart is
    // pending (the file's revision is ahead of the one it runs), so the
    // condition holds only once a gateway runs the new revision.
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if let Ok(client) = crate::fleet::client(app, tenant).await
            && let Ok(snapshot) = client.config_get().await
            && !snapshot.restart_pending()
            && snapshot.applied_config_hash.is_some()
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    false
}

/// A short code that confirms one preview: the tenant, path, value and the
/// config revision it was computed from.
#[must_use]
pub fn confirmation_code(tenant: &TenantId, path: &str, value: &Value, hash: &str) -> String {
    let digest = sha2::Sha256::digest(format!("{tenant}\n{path}\n{value}\n{hash}").as_bytes());
    digest
        .iter()
        .take(3)
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The value at a dotted path.
fn at<'a>(config: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(config, |node, segment| node.get(segment))
}

/// `{"a":{"b":value}}` for `a.b`.
fn nested(path: &str, value: &Value) -> Value {
    path.rsplit('.')
        .fold(value.clone(), |inner, segment| json!({ segment: inner }))
}

/// The value as it may be shown: `(secret)` at a secret path or where the
/// gateway redacted, and the tenant's secrets removed from any text.
fn masked(app: &App, tenant: &TenantId, path: &str, value: &Value) -> Value {
    if secret_path(path) {
        return Value::String(SECRET.into());
    }
    mask_inside(app, tenant, value)
}

fn mask_inside(app: &App, tenant: &TenantId, value: &Value) -> Value {
    match value {
        Value::String(text) if text == REDACTED => Value::String(SECRET.into()),
        Value::String(text) => Value::String(redact_secrets(app, tenant, text)),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| mask_inside(app, tenant, item))
                .collect(),
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, item)| {
                    let item = if secret_path(key) && !item.is_object() {
                        Value::String(SECRET.into())
                    } else {
                        mask_inside(app, tenant, item)
                    };
                    (key.clone(), item)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

fn secret_path(path: &str) -> bool {
    let last = path.rsplit('.').next().unwrap_or(path).to_ascii_lowercase();
    [
        "token",
        "secret",
        "password",
        "apikey",
        "api_key",
        "privatekey",
    ]
    .iter()
    .any(|word| last.contains(word))
}

fn redact_secrets(app: &App, tenant: &TenantId, text: &str) -> String {
    let secrets: Vec<_> = app
        .store
        .secrets(tenant)
        .map(|all| all.into_iter().map(|(_, value)| value).collect())
        .unwrap_or_default();
    redact(text, &secrets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_checked_and_owned_ones_refused() {
        assert!(check_path("agents.defaults.heartbeat.every").is_ok());
        for bad in ["", "a..b", "a.b c", ".a", "a/b"] {
            assert!(check_path(bad).is_err(), "{bad:?}");
        }
        for owned in [
            "gateway.auth.token",
            "gateway.port",
            "gateway",
            "channels.telegram.botToken",
        ] {
            let err = check_path(owned).unwrap_err().to_string();
            assert!(err.contains("managed by MTP"), "{owned}: {err}");
        }
        assert!(check_path("gateway.controlUi.basePath").is_ok());
        let err = check_path("models.providers.anthropic.apiKey")
            .unwrap_err()
            .to_string();
        assert!(err.contains("holds a secret"), "{err}");
        assert!(
            check_shape("gateway.auth.mode").is_ok(),
            "owned paths can be read"
        );
    }

    #[test]
    fn values_nest_and_parse_as_json5() {
        assert_eq!(nested("a.b.c", &json!(1)), json!({"a": {"b": {"c": 1}}}));
        assert_eq!(parse_value("\"2h\"").unwrap(), json!("2h"));
        assert_eq!(parse_value("2h").unwrap(), json!("2h"));
        assert_eq!(parse_value("true").unwrap(), json!(true));
        assert_eq!(parse_value("{ a: [1, 2] }").unwrap(), json!({"a": [1, 2]}));
        assert!(parse_value("  ").is_err());
        let config = json!({"a": {"b": {"c": 1}}});
        assert_eq!(at(&config, "a.b.c"), Some(&json!(1)));
        assert_eq!(at(&config, "a.x"), None);
    }

    #[test]
    fn secret_paths_are_told_apart() {
        for path in [
            "models.providers.anthropic.apiKey",
            "hooks.token",
            "x.password",
        ] {
            assert!(secret_path(path), "{path}");
        }
        assert!(!secret_path("agents.defaults.heartbeat.every"));
    }

    #[test]
    fn a_code_binds_the_preview_to_its_revision() {
        let id: TenantId = "acme".parse().unwrap();
        let one = confirmation_code(&id, "a.b", &json!(1), "h1");
        assert_eq!(one.len(), 6);
        assert_eq!(one, confirmation_code(&id, "a.b", &json!(1), "h1"));
        assert_ne!(one, confirmation_code(&id, "a.b", &json!(1), "h2"));
        assert_ne!(one, confirmation_code(&id, "a.b", &json!(2), "h1"));
    }
}
