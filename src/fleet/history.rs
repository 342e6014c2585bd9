//! A tenant's history: what happened to it, newest first — created, started,
//! stopped, crashed (with the exit code), OOM-killed, healed, upgraded, backed
//! up, restored, slept, woke, resized, reconfigured, alerts raised and
//! cleared. It is read from the audit log, where every action and every
//! monitor alert is written as it happens, so nothing is kept twice.

use crate::fleet::audit::{AuditEntry, Outcome};
use crate::fleet::{App, audit_log};
use crate::tenant::TenantId;

/// How many audit entries of a tenant a history looks through at most.
const LOOK_BACK: usize = 5000;

/// What kind of thing happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Created,
    Removed,
    Started,
    Stopped,
    Restarted,
    Crashed,
    Oom,
    Healed,
    Upgraded,
    BackedUp,
    Restored,
    Slept,
    Woke,
    Changed,
    AlertRaised,
    AlertCleared,
    Other,
}

impl EventKind {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Created => "created",
            EventKind::Removed => "removed",
            EventKind::Started => "started",
            EventKind::Stopped => "stopped",
            EventKind::Restarted => "restarted",
            EventKind::Crashed => "crashed",
            EventKind::Oom => "oom",
            EventKind::Healed => "healed",
            EventKind::Upgraded => "upgraded",
            EventKind::BackedUp => "backed_up",
            EventKind::Restored => "restored",
            EventKind::Slept => "slept",
            EventKind::Woke => "woke",
            EventKind::Changed => "changed",
            EventKind::AlertRaised => "alert_raised",
            EventKind::AlertCleared => "alert_cleared",
            EventKind::Other => "other",
        }
    }
}

/// One event in a tenant's history.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantEvent {
    /// Unix seconds.
    pub at: i64,
    pub kind: EventKind,
    /// What the audit log says was done (`upgrade`, `alert: crashed gateway (exit 3)`, …).
    pub action: String,
    /// Who: `cli:alice`, `tg:42`, `system:monitor`.
    pub by: String,
    pub outcome: Outcome,
    /// For a failure: the step and why (secrets were never written).
    pub error: Option<String>,
}

/// The tenant's events, newest first: those since `since` (unix seconds,
/// if given), at most `limit`.
///
/// # Errors
///
/// `UnknownTenant` for an id with neither a record nor a history; the
/// store cannot be read.
pub fn events(
    app: &App,
    tenant: &TenantId,
    since: Option<i64>,
    limit: usize,
) -> anyhow::Result<Vec<TenantEvent>> {
    let entries = audit_log(app, Some(tenant), LOOK_BACK)?;
    // A removed tenant keeps its history; an id that never was is refused.
    if entries.is_empty() {
        crate::fleet::inventory::known(app, tenant)?;
    }
    let mut events: Vec<TenantEvent> = entries
        .into_iter()
        .filter(|entry| since.is_none_or(|since| entry.at >= since))
        .filter(|entry| entry.outcome != Outcome::Refused)
        .map(event)
        .collect();
    events.sort_by_key(|event| std::cmp::Reverse(event.at));
    events.truncate(limit);
    Ok(events)
}

fn event(entry: AuditEntry) -> TenantEvent {
    let kind = kind_of(&entry.action);
    let error = match (&entry.step, &entry.error) {
        (Some(step), Some(error)) => Some(format!("at {step}: {error}")),
        (None, Some(error)) => Some(error.clone()),
        _ => None,
    };
    TenantEvent {
        at: entry.at,
        kind,
        action: entry.action,
        by: entry.actor,
        outcome: entry.outcome,
        error,
    }
}

/// The kind of an audit action, by its name.
fn kind_of(action: &str) -> EventKind {
    if let Some(alert) = action.strip_prefix("alert: ") {
        return match alert {
            a if a.starts_with("crashed") || a.starts_with("crash loop") => EventKind::Crashed,
            a if a.starts_with("oom") => EventKind::Oom,
            a if a.starts_with("healed") || a.starts_with("missing, made again") => {
                EventKind::Healed
            }
            a if a.starts_with("recovered") || a.starts_with("back") || a.starts_with("stable") => {
                EventKind::AlertCleared
            }
            _ => EventKind::AlertRaised,
        };
    }
    let word = action.split([' ', ':']).next().unwrap_or(action);
    match word {
        "create" => EventKind::Created,
        "rm" | "remove" | "offboard" => EventKind::Removed,
        "start" | "resume" => EventKind::Started,
        "stop" | "suspend" => EventKind::Stopped,
        "restart" => EventKind::Restarted,
        "heal" | "repair" => EventKind::Healed,
        "upgrade" => EventKind::Upgraded,
        "backup" => EventKind::BackedUp,
        "restore" => EventKind::Restored,
        "sleep" => EventKind::Slept,
        "wake" => EventKind::Woke,
        "config" | "hooks" | "resize" | "pin" | "unpin" | "budget" => EventKind::Changed,
        _ => EventKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_actions_are_told_apart() {
        for (action, kind) in [
            ("create", EventKind::Created),
            ("upgrade", EventKind::Upgraded),
            ("sleep (idle)", EventKind::Slept),
            ("wake (message)", EventKind::Woke),
            ("resize", EventKind::Changed),
            ("config set agents.defaults.model", EventKind::Changed),
            ("alert: crashed gateway (exit 3, OOM)", EventKind::Crashed),
            ("alert: oom killed memory", EventKind::Oom),
            ("alert: down healthz", EventKind::AlertRaised),
            ("alert: recovered healthz", EventKind::AlertCleared),
            ("alert: healed container", EventKind::Healed),
            ("backup", EventKind::BackedUp),
            ("something new", EventKind::Other),
        ] {
            assert_eq!(kind_of(action), kind, "{action}");
        }
    }
}
