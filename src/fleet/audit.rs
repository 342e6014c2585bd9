//! The audit log as fleet hands it out (`AuditEntry`), the daily digest's
//! tally, counted in the store over the day's range, and retention
//! (`audit.keepDays`, `audit.maxRows`), which `mtp serve` applies hourly.

use std::collections::HashMap;

use crate::fleet::{App, now};
use crate::store;
use crate::tenant::TenantId;

/// One line of the audit log: who did what to which tenant, and how it ended.
/// Secrets are never in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Unix seconds.
    pub at: i64,
    /// Who acted: `cli:<user>`, `tg:<user id>`, `system:<what>`.
    pub actor: String,
    /// What was done: `create`, `start`, `stop`, `rm`, …
    pub action: String,
    pub tenant: Option<String>,
    pub outcome: Outcome,
    /// For a failure: the step that failed (`network`, `container`, `health`, …).
    pub step: Option<String>,
    /// For a failure: why, with secrets already removed.
    pub error: Option<String>,
}

/// How an audited action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Failed,
    /// Someone who is not an operator tried to act; nothing ran.
    Refused,
}

impl Outcome {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
            Outcome::Refused => "refused",
        }
    }
}

impl From<store::Outcome> for Outcome {
    fn from(outcome: store::Outcome) -> Outcome {
        match outcome {
            store::Outcome::Ok => Outcome::Ok,
            store::Outcome::Failed => Outcome::Failed,
            store::Outcome::Refused => Outcome::Refused,
        }
    }
}

impl From<store::AuditEntry> for AuditEntry {
    fn from(entry: store::AuditEntry) -> AuditEntry {
        AuditEntry {
            at: entry.at,
            actor: entry.actor,
            action: entry.action,
            tenant: entry.tenant,
            outcome: entry.outcome.into(),
            step: entry.step,
            error: entry.error,
        }
    }
}

/// The last `limit` audit entries (of one tenant, or of all), oldest first.
///
/// # Errors
///
/// A store failure.
pub fn audit_log(
    app: &App,
    tenant: Option<&TenantId>,
    limit: usize,
) -> anyhow::Result<Vec<AuditEntry>> {
    let entries = app.store.audit_log(tenant, limit)?;
    Ok(entries.into_iter().map(AuditEntry::from).collect())
}

/// Audit entries newer than `since` (unix seconds), oldest first: the whole
/// range, read by time rather than by a count of the newest rows.
///
/// # Errors
///
/// A store failure.
pub fn audit_since(app: &App, since: i64) -> anyhow::Result<Vec<AuditEntry>> {
    let mut entries = Vec::new();
    app.store
        .visit_audit_since(since, |entry| entries.push(AuditEntry::from(entry)))?;
    entries.reverse();
    Ok(entries)
}

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
