//! A cell's webhooks (`/hooks/wake`, `/hooks/agent`): turned on and off through
//! `config.patch` (applied hot, no restart; transcripts/config-patch-hooks), with
//! the bearer token MTP generated at create and gave the cell as
//! `OPENCLAW_HOOKS_TOKEN`, so the token never sits in the config file.

use std::time::Duration;

use anyhow::{Context, anyhow, bail};

use crate::fleet::inventory::known;
use crate::fleet::{Actor, App, audit_result};
use crate::gateway::{self, CallError, ConfigPatch};
use crate::tenant::{SecretKind, TenantId};

/// A wake of the tenant's agent (`POST /hooks/wake`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wake {
    /// The system event text given to the agent.
    pub text: String,
    /// Wake now (the default) or at the next heartbeat.
    pub next_heartbeat: bool,
    pub agent_id: Option<String>,
}

/// The gateway took the wake.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WakeAccepted {
    /// `now` or `next-heartbeat`.
    pub mode: String,
    /// `queued`, or `coalesced` into a wake already pending.
    pub event_outcome: String,
}

/// Why a hook call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HookError {
    #[error("hooks token refused by the gateway (401); check the cell's hooks.token")]
    Unauthorized,
    #[error("hooks are not enabled on this gateway (404); enable hooks in the cell config")]
    Disabled,
    #[error("the gateway refused the hook request: {message}")]
    BadRequest { message: String },
    #[error("too many hook requests; retry in {retry_after:?}")]
    RateLimited { retry_after: Option<Duration> },
    #[error("hook request failed with HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("gateway unreachable: {reason}")]
    Unreachable { reason: String },
    #[error("no answer from the gateway within {0:?}")]
    Timeout(Duration),
    #[error("unexpected hook answer: {0}")]
    Malformed(String),
}

impl From<gateway::HookError> for HookError {
    fn from(err: gateway::HookError) -> HookError {
        match err {
            gateway::HookError::Unauthorized => HookError::Unauthorized,
            gateway::HookError::Disabled => HookError::Disabled,
            gateway::HookError::BadRequest { message } => HookError::BadRequest { message },
            gateway::HookError::RateLimited { retry_after } => {
                HookError::RateLimited { retry_after }
            }
            gateway::HookError::Status { status, body } => HookError::Status { status, body },
            gateway::HookError::Unreachable { reason } => HookError::Unreachable { reason },
            gateway::HookError::Timeout(after) => HookError::Timeout(after),
            gateway::HookError::Malformed(what) => HookError::Malformed(what),
        }
    }
}

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
    audit_result(app, actor, action, tenant, "gateway", &result);
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
    let ((host, port), token) = hook_target(app, tenant)?;
    let wake = gateway::Wake {
        text: wake.text.clone(),
        next_heartbeat: wake.next_heartbeat,
        agent_id: wake.agent_id.clone(),
    };
    let answer = app.http.wake(&host, port, &token, &wake).await;
    let accepted = audited(app, actor, "hooks: wake", tenant, answer)?;
    Ok(WakeAccepted {
        mode: accepted.mode,
        event_outcome: accepted.event_outcome,
    })
}

/// Audits a hook call as `action` and hands its answer back, a failure as
/// fleet's `HookError`.
fn audited<T>(
    app: &App,
    actor: &Actor,
    action: &str,
    tenant: &TenantId,
    answer: Result<T, gateway::HookError>,
) -> anyhow::Result<T> {
    let result = answer.map_err(|err| anyhow::Error::from(HookError::from(err)));
    audit_result(app, actor, action, tenant, "hooks", &result);
    result
}

fn hook_target(
    app: &App,
    tenant: &TenantId,
) -> anyhow::Result<((String, u16), crate::tenant::Secret<String>)> {
    let record = known(app, tenant)?;
    if record.state == crate::tenant::CellState::Sleeping {
        return Err(crate::fleet::obstacle::Asleep {
            tenant: tenant.clone(),
        }
        .into());
    }
    let token = app
        .store
        .secret(tenant, SecretKind::HooksToken)?
        .ok_or_else(|| anyhow!("{tenant} has no hooks token (its cell predates hooks support)"))?;
    Ok((app.runtime.gateway_at(tenant, record.port), token))
}
