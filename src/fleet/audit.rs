//! The audit log beyond single entries: the daily digest's tally, counted in
//! the store over the day's range, and retention (`audit.keepDays`,
//! `audit.maxRows`), which `mtp serve` applies hourly.

use std::collections::HashMap;

use crate::fleet::{App, now};

/// What the daily digest counts from the audit log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditTally {
    /// Starts and restarts per tenant (by operators, the CLI and self-healing),
    /// most first, then by id.
    pub restarts: Vec<(String, usize)>,
    /// Alerts raised by the monitor.
    pub alerts: usize,
}

/// Counts restarts and alerts written at or after `since` (unix seconds).
/// The store walks only that range, however long the log is and whatever
/// else (refusals, say) filled it.
///
/// # Errors
///
/// A store failure.
pub fn audit_tally(app: &App, since: i64) -> anyhow::Result<AuditTally> {
    let mut restarts: HashMap<String, usize> = HashMap::new();
    let mut alerts = 0;
    app.store.visit_audit_since(since, |entry| {
        if entry.action.starts_with("alert: ") {
            alerts += 1;
        } else if matches!(entry.action.as_str(), "restart" | "heal: start" | "start")
            && let Some(tenant) = entry.tenant
        {
            *restarts.entry(tenant).or_default() += 1;
        }
    })?;
    let mut restarts: Vec<(String, usize)> = restarts.into_iter().collect();
    restarts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    Ok(AuditTally { restarts, alerts })
}

/// Applies the configured retention; returns how many entries went.
///
/// # Errors
///
/// A store failure.
pub fn prune_audit(app: &App) -> anyhow::Result<u64> {
    let settings = app.config.audit;
    let before = now() - i64::from(settings.keep_days) * 86_400;
    Ok(app.store.prune_audit(before, settings.max_rows)?)
}
