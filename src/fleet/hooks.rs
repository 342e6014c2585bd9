//! A cell's webhooks (`/hooks/wake`, `/hooks/agent`): turned on and off through
//! `config.patch` (applied hot, no restart; transcripts/config-patch-hooks), with
//! the bearer token MTP generated at create and gave the cell as
//! `OPENCLAW_HOOKS_TOKEN`, so the token never sits in the config file.

use anyhow::{Context, anyhow, bail};

use crate::fleet::inventory::known;
use crate::fleet::{Actor, App, audit};
use crate::gateway::{CallError, ConfigPatch, HookAgent, HookAgentAccepted, Wake, WakeAccepted};
use crate::tenant::{SecretKind, TenantId};

/// Attempts of a patch whose `baseHash` went stale meanwhile.
const PATCH_ATTEMPTS: usize = 3;

/// Turns the tenant's hooks on (only agent `main` may be run by them) or off.
/// Returns whether the config changed.
///
/// # Errors
///
/// An unknown tenant, a cell made before MTP gave cells a hooks token, the
/// gateway unreachable or refusing the patch.
pub async fn set_hooks(
    app: &App,
    actor: &Actor,
    tenant: &TenantId,
    enabled: bool,
) -> anyhow::Result<bool> {
    let _guard = crate::fleet::lock::acquire(app, tenant, crate::fleet::lock::Op::Hooks, actor)?;
    let result = patch_hooks(app, tenant, enabled).await;
    let action = if enabled { "hooks on" } else { "hooks off" };
    match &result {
        Ok(_) => audit(app, actor, action, Some(tenant), Ok(())),
        Err(err) => audit(
            app,
            actor,
            action,
            Some(tenant),
            Err(("gateway", &format!("{err:#}"))),
        ),
    }
    result
}

async fn patch_hooks(app: &App, tenant: &TenantId, enabled: bool) -> anyhow::Result<bool> {
    known(app, tenant)?;
    if enabled && app.store.secret(tenant, SecretKind::HooksToken)?.is_none() {
        bail!(
            "{tenant}'s cell was made without a hooks token, so its hooks cannot be turned on; recreate the tenant to get one"
        );
    }
    let raw = if enabled {
        r#"{ hooks: { enabled: true, token: "${OPENCLAW_HOOKS_TOKEN}", path: "/hooks", allowedAgentIds: ["main"] } }"#
    } else {
        "{ hooks: { enabled: false } }"
    };
    let client = crate::fleet::client(app, tenant).await?;
    for _ in 0..PATCH_ATTEMPTS {
        let base_hash = client
            .config_get()
            .await
            .context("config.get")?
            .hash
            .ok_or_else(|| anyhow!("the gateway's config.get carried no hash"))?;
        let patch = ConfigPatch {
            raw: raw.to_string(),
            base_hash,
            replace_paths: Vec::new(),
            note: Some(format!("mtp: hooks {}", if enabled { "on" } else { "off" })),
        };
        match client.config_patch(&patch).await {
            Ok(patched) => return Ok(!patched.noop),
            // Someone changed the config between our read and our patch: read again.
            Err(CallError::ConfigConflict) => continue,
            Err(err) => return Err(err).context("config.patch"),
        }
    }
    bail!(
        "the config of {tenant} kept changing under the patch ({PATCH_ATTEMPTS} attempts); try again"
    )
}

/// Wakes the tenant's agent through `POST /hooks/wake`.
///
/// # Errors
///
/// An unknown tenant, no hooks token, the hook refused (`HookError`: hooks off,
/// wrong token, rate limited) or unreachable.
pub async fn wake(
    app: &App,
    actor: &Actor,
    tenant: &TenantId,
    wake: &Wake,
) -> anyhow::Result<WakeAccepted> {
    let (port, token) = hook_target(app, tenant)?;
    let result = app
        .http
        .wake(port, &token, wake)
        .await
        .map_err(anyhow::Error::from);
    match &result {
        Ok(_) => audit(app, actor, "hooks: wake", Some(tenant), Ok(())),
        Err(err) => audit(
            app,
            actor,
            "hooks: wake",
            Some(tenant),
            Err(("hooks", &format!("{err:#}"))),
        ),
    }
    result
}

/// Starts an agent run through `POST /hooks/agent`.
///
/// # Errors
///
/// As [`wake`]; an agent the cell does not allow is refused by the gateway.
pub async fn hook_agent(
    app: &App,
    actor: &Actor,
    tenant: &TenantId,
    run: &HookAgent,
) -> anyhow::Result<HookAgentAccepted> {
    let (port, token) = hook_target(app, tenant)?;
    let result = app
        .http
        .hook_agent(port, &token, run)
        .await
        .map_err(anyhow::Error::from);
    match &result {
        Ok(_) => audit(app, actor, "hooks: agent", Some(tenant), Ok(())),
        Err(err) => audit(
            app,
            actor,
            "hooks: agent",
            Some(tenant),
            Err(("hooks", &format!("{err:#}"))),
        ),
    }
    result
}

fn hook_target(
    app: &App,
    tenant: &TenantId,
) -> anyhow::Result<(u16, crate::tenant::Secret<String>)> {
    let record = known(app, tenant)?;
    let token = app
        .store
        .secret(tenant, SecretKind::HooksToken)?
        .ok_or_else(|| anyhow!("{tenant} has no hooks token (its cell predates hooks support)"))?;
    Ok((record.port, token))
}
