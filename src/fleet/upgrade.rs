//! Upgrading a tenant's cell to another pinned image: the data dirs, port,
//! network, secrets and pairing stay; only the container is made anew (the next
//! generation). The monitor keeps quiet meanwhile (maintenance), and a new image
//! whose gateway does not come back healthy is rolled back to the old one.

use std::time::Duration;

use anyhow::{Context, anyhow, bail};

use crate::fleet::cell::{check_pinned, make_container, wait_healthy};
use crate::fleet::inventory::{UnknownTenant, known};
use crate::fleet::lock::{self, Op};
use crate::fleet::{Actor, App, audit, fault_point, now, redact};
use crate::gateway::{ConnectError, PoolError};
use crate::tenant::{CellState, Secret, SecretKind, TenantId, TenantRecord};

/// The steps of an upgrade, in order, for progress reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpgradeStep {
    Validate,
    Maintenance,
    Replace,
    Start,
    Health,
    Gateway,
    /// The cell's Telegram poller runs again (when it ran before).
    Channel,
    Done,
}

impl UpgradeStep {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            UpgradeStep::Validate => "validate",
            UpgradeStep::Maintenance => "maintenance",
            UpgradeStep::Replace => "container",
            UpgradeStep::Start => "start",
            UpgradeStep::Health => "health",
            UpgradeStep::Gateway => "gateway",
            UpgradeStep::Channel => "telegram",
            UpgradeStep::Done => "done",
        }
    }
}

/// What an upgrade did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upgraded {
    pub from: String,
    pub to: String,
    pub generation: u64,
    /// The cell was stopped on purpose: it was made anew and left stopped.
    pub left_stopped: bool,
}

/// Why an upgrade did not happen; callers branch on `Refused` (bad input,
/// nothing changed) versus `Failed` (the tenant was touched).
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    #[error("{0}")]
    Refused(String),
    /// No tenant has this id (nothing changed); adapters offer the close ids.
    #[error(transparent)]
    UnknownTenant(UnknownTenant),
    #[error("upgrade of {tenant} to {image} failed at step {step}: {reason}; {outcome}", step = .step.as_str())]
    Failed {
        tenant: TenantId,
        image: String,
        step: UpgradeStep,
        /// Why, with secrets redacted.
        reason: String,
        /// What became of the cell: back on the old image, or not.
        outcome: Rollback,
    },
}

/// How the way back to the image that worked went, after a failed upgrade.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rollback {
    /// The cell runs its old image again.
    #[error("rolled back to {from}, which runs again")]
    Done { from: String },
    /// The rollback failed too: the cell is down until the operator looks.
    #[error("the rollback to {from} failed too at step {step}: {reason}", step = .step.as_str())]
    Failed {
        from: String,
        step: UpgradeStep,
        /// Why, with secrets redacted.
        reason: String,
    },
}

/// Room the monitor gets beyond the health timeout before alerts resume, if an
/// upgrade dies half-way (normally the mute is lifted when it ends).
const MAINTENANCE_SLACK: Duration = Duration::from_secs(120);

/// Moves the tenant's cell to `image` (default: the configured cell image).
///
/// # Errors
///
/// `UpgradeError::Refused` for an unknown tenant, an unpinned or missing image,
/// the image it already runs, or a tenant that is not running or stopped;
/// `UpgradeError::Failed` when the new cell did not come up (it is rolled back
/// to the old image, and the error says whether that worked).
pub async fn upgrade(
    app: &App,
    actor: &Actor,
    tenant: &TenantId,
    image: Option<&str>,
    progress: &mut (dyn FnMut(UpgradeStep) + Send),
) -> Result<Upgraded, UpgradeError> {
    // A failed reconcile changed nothing of this tenant: a refusal.
    crate::fleet::reconcile::reconcile_first(app, actor)
        .await
        .map_err(|err| UpgradeError::Refused(format!("{err:#}")))?;
    progress(UpgradeStep::Validate);
    let _guard = match lock::acquire(app, tenant, Op::Upgrade, actor) {
        Ok(guard) => guard,
        Err(err) => return Err(UpgradeError::Refused(format!("{err:#}"))),
    };
    let (record, image) = match validate(app, tenant, image).await {
        Ok(ok) => ok,
        Err(err) => {
            let reason = format!("{err:#}");
            audit(
                app,
                actor,
                "upgrade",
                Some(tenant),
                Err(("validate", &reason)),
            );
            if let Some(unknown) = err.downcast_ref::<UnknownTenant>() {
                return Err(UpgradeError::UnknownTenant(unknown.clone()));
            }
            return Err(UpgradeError::Refused(reason));
        }
    };
    let secrets: Vec<(SecretKind, Secret<String>)> = app
        .store
        .secrets(tenant)
        .map_err(|err| UpgradeError::Refused(format!("cannot read the tenant's secrets: {err}")))?;
    let secret_values: Vec<Secret<String>> =
        secrets.iter().map(|(_, value)| value.clone()).collect();

    progress(UpgradeStep::Maintenance);
    // The monitor's quiet time, kept apart from the operator's own mute, which
    // the upgrade never touches (a `/mute` sent meanwhile stays).
    let maintenance = now()
        + i64::try_from((app.config.cell.health_timeout * 2 + MAINTENANCE_SLACK).as_secs())
            .unwrap_or(i64::MAX / 4);
    let mut record = TenantRecord {
        maintenance_until: Some(maintenance),
        ..record
    };
    app.store
        .update_tenant(tenant, |record| {
            record.maintenance_until = Some(maintenance);
            Ok(())
        })
        .map_err(|err| UpgradeError::Refused(format!("cannot record the maintenance: {err}")))?;
    fault_point("upgrade:maintenance");
    app.pool.close(tenant);

    let from = record.image.clone();
    // The health gate includes the client's bot: a Telegram poller that ran
    // before the upgrade must run again after it.
    let channel = record.state == CellState::Running && telegram_running(app, tenant).await;
    // A sleeping tenant is woken by its upgrade: the new image is proven by a
    // healthy, paired gateway, and it sleeps again when idle.
    if record.state == CellState::Sleeping {
        crate::fleet::sleep::leave_sleep(app, tenant, false)
            .await
            .map_err(|err| UpgradeError::Refused(format!("cannot wake it first: {err:#}")))?;
        record.state = CellState::Running;
    }
    let start = record.state == CellState::Running;
    let result = replace(app, &mut record, &image, &secrets, start, channel, progress).await;
    let outcome = match &result {
        Ok(()) => None,
        Err((step, err)) => {
            let reason = redact(&format!("{err:#}"), &secret_values);
            // Back to the image that worked; its own failure is reported, not hidden.
            let mut noop = |_| {};
            let back = replace(app, &mut record, &from, &secrets, start, false, &mut noop).await;
            let outcome = match back {
                Ok(()) => Rollback::Done { from: from.clone() },
                Err((back_step, back_err)) => Rollback::Failed {
                    from: from.clone(),
                    step: back_step,
                    reason: redact(&format!("{back_err:#}"), &secret_values),
                },
            };
            Some((*step, reason, outcome))
        }
    };

    fault_point("upgrade:finish");
    finish_replacement(app, &record, "upgrade");
    match outcome {
        None => {
            audit(app, actor, "upgrade", Some(tenant), Ok(()));
            progress(UpgradeStep::Done);
            Ok(Upgraded {
                from,
                to: image,
                generation: record.generation,
                left_stopped: !start,
            })
        }
        Some((step, reason, outcome)) => {
            audit(
                app,
                actor,
                "upgrade",
                Some(tenant),
                Err((step.as_str(), &format!("{reason}; {outcome}"))),
            );
            Err(UpgradeError::Failed {
                tenant: tenant.clone(),
                image,
                step,
                reason,
                outcome,
            })
        }
    }
}

async fn validate(
    app: &App,
    tenant: &TenantId,
    image: Option<&str>,
) -> anyhow::Result<(TenantRecord, String)> {
    let record = known(app, tenant)?;
    let image = image.map_or_else(|| app.config.cell.image.clone(), str::to_string);
    check_pinned(&image)?;
    if let Some(pin) = record.pinned_image.as_deref()
        && pin != image
    {
        bail!("{tenant} is pinned to {pin}; pin it to {image} or unpin it first");
    }
    settled(&record, "upgraded")?;
    let Some(image_id) = app
        .runtime
        .image_id(&image)
        .await
        .context("cannot ask Docker for the image")?
    else {
        bail!("Docker has no image {image}; build or load it on this host first (MTP never pulls)");
    };
    if record.image == image && record.image_id.as_deref() == Some(image_id.as_str()) {
        bail!("{tenant} already runs {image}; `restart` it instead");
    }
    Ok((record, image))
}

/// Records what `replace` made of `record` (generation, image, node,
/// pairing) and ends its maintenance window; the planned downtime is no
/// outage, so its alert states are forgotten (no RECOVERED for a DOWN never
/// announced). Failures are logged: the cell itself is what it is.
pub(crate) fn finish_replacement(app: &App, record: &TenantRecord, action: &str) {
    let tenant = &record.id;
    let made = record.clone();
    let finished = app.store.update_tenant(tenant, |record| {
        record.generation = made.generation;
        record.image = made.image;
        record.image_id = made.image_id;
        record.node = made.node;
        record.paired = made.paired;
        record.maintenance_until = None;
        record.updated_at = now();
        Ok(())
    });
    if let Err(err) = finished {
        tracing::warn!(cause = %err, %tenant, "{action}: cannot record the new cell");
    }
    if let Err(err) = crate::fleet::alerts::forget_alert_states(app, tenant) {
        tracing::warn!(cause = %err, %tenant, "{action}: cannot reset the alert states");
    }
}

/// Replaces the container with one of the next generation running `image`,
/// starts it when `start`, and waits for a healthy, reachable gateway.
pub(crate) async fn replace(
    app: &App,
    record: &mut TenantRecord,
    image: &str,
    secrets: &[(SecretKind, Secret<String>)],
    start: bool,
    channel: bool,
    progress: &mut (dyn FnMut(UpgradeStep) + Send),
) -> Result<(), (UpgradeStep, anyhow::Error)> {
    let tenant = record.id.clone();
    progress(UpgradeStep::Replace);
    let step = UpgradeStep::Replace;
    app.pool.close(&tenant);
    fault_point("upgrade:remove");
    // A graceful stop first: the gateway releases its owner lease and closes
    // its SQLite stores, so the next generation starts at once on the same
    // state dir. A container already gone or stopped is fine.
    if let Err(err) = app.runtime.stop(&tenant).await {
        tracing::debug!(cause = %err, %tenant, "upgrade: no graceful stop before removal");
    }
    app.runtime
        .remove_cell(&tenant)
        .await
        .map_err(|err| (step, anyhow!(err)))?;
    fault_point("upgrade:make");
    record.generation += 1;
    record.image = image.to_string();
    make_container(app, record, image, secrets)
        .await
        .map_err(|err| (step, err))?;
    fault_point("upgrade:start");
    if !start {
        return Ok(());
    }

    progress(UpgradeStep::Start);
    app.runtime
        .start(&tenant)
        .await
        .map_err(|err| (UpgradeStep::Start, anyhow!(err)))?;
    progress(UpgradeStep::Health);
    fault_point("upgrade:health");
    wait_healthy(app, record, app.config.cell.health_timeout)
        .await
        .map_err(|err| (UpgradeStep::Health, err))?;

    progress(UpgradeStep::Gateway);
    reach_gateway(app, record)
        .await
        .map_err(|err| (UpgradeStep::Gateway, err))?;
    if channel {
        progress(UpgradeStep::Channel);
        wait_telegram(app, &tenant, app.config.cell.health_timeout)
            .await
            .map_err(|err| (UpgradeStep::Channel, err))?;
    }
    Ok(())
}

/// Whether the cell's Telegram poller runs now (false when it cannot say).
async fn telegram_running(app: &App, tenant: &TenantId) -> bool {
    crate::fleet::cell_gateway::gateway_info(app, tenant)
        .await
        .ok()
        .and_then(|info| info.telegram)
        .is_some_and(|telegram| telegram.running == Some(true))
}

/// Waits until the cell's Telegram poller runs again.
async fn wait_telegram(app: &App, tenant: &TenantId, within: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if telegram_running(app, tenant).await {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "the cell's Telegram poller ran before the upgrade and not within {}s after it",
                within.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The admin's device stays paired (its approval lives in the state dir); a
/// new gateway version may ask to approve the device's metadata again, which
/// is the same pairing dance as in create.
async fn reach_gateway(app: &App, record: &mut TenantRecord) -> anyhow::Result<()> {
    let tenant = &record.id;
    if record.paired {
        match crate::fleet::client(app, tenant).await {
            Ok(client) => {
                client
                    .health()
                    .await
                    .context("the new gateway does not answer `health`")?;
                return Ok(());
            }
            Err(err) if !pairing_required(&err) => return Err(err),
            Err(_) => {}
        }
    }
    crate::fleet::cell_gateway::pair_cell(app, record, app.config.cell.health_timeout).await?;
    record.paired = true;
    Ok(())
}

fn pairing_required(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<PoolError>(),
            Some(PoolError::Connect(ConnectError::PairingRequired { .. }))
        ) || matches!(
            cause.downcast_ref::<ConnectError>(),
            Some(ConnectError::PairingRequired { .. })
        )
    })
}

/// Refuses a tenant that is between states (being created, removed, moved…):
/// only a running, stopped or sleeping tenant can be `action` (upgraded, moved).
pub(crate) fn settled(record: &TenantRecord, action: &str) -> anyhow::Result<()> {
    if !matches!(
        record.state,
        CellState::Running | CellState::Stopped | CellState::Sleeping
    ) {
        bail!(
            "{} is {}; only a running, stopped or sleeping tenant can be {action}",
            record.id,
            record.state.as_str()
        );
    }
    Ok(())
}
