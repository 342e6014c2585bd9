//! What the monitor needs from the fleet beyond probes: its persisted alert
//! states, muting, self-healing, and alert history in the audit log.

use std::time::Duration;

use crate::fleet::inventory::known;
use crate::fleet::{Actor, App, audit, audit_result, now};
use crate::tenant::{AlertState, Check, Started, TenantId};

/// Every stored (tenant, check) alert state.
///
/// # Errors
///
/// The store cannot be read.
pub fn alert_states(app: &App) -> anyhow::Result<Vec<(TenantId, Check, AlertState)>> {
    Ok(app.store.alert_states()?)
}

/// Saves a sweep's alert states in one transaction.
///
/// # Errors
///
/// The store cannot be written.
pub fn save_alert_states(
    app: &App,
    states: &[(TenantId, Check, AlertState)],
) -> anyhow::Result<()> {
    Ok(app.store.put_alert_states(states)?)
}

/// Mutes a tenant's alerts for `duration` (or unmutes with `None`). Unmuting
/// forgets the tenant's alert states, so a problem that began while muted is
/// judged afresh and reported after `downAfter` failing sweeps.
///
/// # Errors
///
/// `UnknownTenant` for an id with no record; the store cannot be written.
pub fn mute(
    app: &App,
    actor: &Actor,
    tenant: &TenantId,
    duration: Option<Duration>,
) -> anyhow::Result<Option<i64>> {
    known(app, tenant)?;
    let muted_until = duration.map(|d| now() + i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 4));
    // Only the mute field, in one transaction: a start or an upgrade running
    // meanwhile neither loses this mute nor has its own fields overwritten.
    let record = app
        .store
        .update_tenant(tenant, |record| {
            record.muted_until = muted_until;
            Ok(())
        })?
        .ok_or_else(|| anyhow::anyhow!("{tenant} was removed meanwhile"))?;
    if duration.is_none() {
        forget_alert_states(app, tenant)?;
    }
    let action = if duration.is_some() { "mute" } else { "unmute" };
    audit(app, actor, action, Some(tenant), Ok(()));
    Ok(record.muted_until)
}

/// Resets every check of a tenant to OK, so what the monitor saw while it was
/// muted (an outage, or an upgrade's planned downtime) is judged afresh.
pub(crate) fn forget_alert_states(app: &App, tenant: &TenantId) -> anyhow::Result<()> {
    let fresh: Vec<_> = Check::ALL
        .into_iter()
        .map(|check| (tenant.clone(), check, AlertState::default()))
        .collect();
    Ok(app.store.put_alert_states(&fresh)?)
}

/// Starts a cell that exited and Docker did not restart.
///
/// # Errors
///
/// `lock::Busy` while an operator's action runs on the tenant (the monitor
/// tries again later); Docker refusing.
pub async fn heal(app: &App, tenant: &TenantId) -> anyhow::Result<Started> {
    let actor = Actor::System("monitor");
    let _guard = crate::fleet::lock::acquire(app, tenant, crate::fleet::lock::Op::Heal, &actor)?;
    // The sweep that asked may be older than an operator's stop: judge afresh.
    let record = known(app, tenant)?;
    if record.state != crate::tenant::CellState::Running {
        anyhow::bail!("{tenant} is {} now, not meant to run", record.state);
    }
    let result = app.runtime.start(tenant).await.map_err(anyhow::Error::from);
    audit_result(app, &actor, "heal: start", tenant, "container", &result);
    result
}

/// Writes an alert to the audit log (the daily digest counts them).
pub fn record_alert(app: &App, tenant: &TenantId, what: &str) {
    let actor = Actor::System("monitor");
    audit(app, &actor, &format!("alert: {what}"), Some(tenant), Ok(()));
}
