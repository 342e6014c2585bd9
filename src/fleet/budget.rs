//! Budgets as fleet policy: a tenant's monthly budget (an operator's wins over
//! config), its spend this month, the thresholds (50%, 80%, 100%) each
//! notified once per month, and suspension at 100% (its Telegram channel or its
//! cell stopped) until an operator resumes it.
//!
//! A budget check is one action (`check_budget`) whose store part is one write
//! transaction: reading the month's spend, the budget and the notices, and
//! marking the notices and the suspension, so two processes checking at once
//! never notify a threshold twice or suspend twice.

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use serde_json::json;

use crate::config::TenantUsage;
use crate::fleet::inventory::known;
use crate::fleet::{Actor, App, Period, audit, audit_result, month_key, today};
use crate::store::{self, BudgetMarks};
use crate::tenant::{BudgetAction, CellState, TenantId, Usd};

/// The budget thresholds, in percent of the monthly budget.
pub const THRESHOLDS: [u8; 3] = [50, 80, 100];

/// A tenant's budget as it applies now: an operator's (`/budget`) wins over config.
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    /// Monthly budget, if any.
    pub amount: Option<Usd>,
    /// The amount was set by an operator (else it comes from config).
    pub set_by_operator: bool,
    /// What happens at 100%.
    pub action: BudgetAction,
    pub suspended: Option<Suspension>,
}

/// A tenant suspended for reaching its budget, until an operator resumes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Suspension {
    /// Unix seconds.
    pub since: i64,
    /// `StopChannel` or `StopCell`.
    pub how: BudgetAction,
    /// The month (`YYYY-MM`) whose budget was reached.
    pub month: String,
}

/// A tenant's spend this month against its budget, for `/usage` and the CLI.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetStatus {
    pub budget: Budget,
    /// `YYYY-MM` in the usage time zone.
    pub month: String,
    pub spend: Usd,
    /// Thresholds already notified this month.
    pub notified: Vec<u8>,
}

/// A tenant's spend crossed a threshold of its monthly budget.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetAlert {
    pub tenant: TenantId,
    /// `YYYY-MM` in the usage time zone.
    pub month: String,
    /// The highest threshold newly crossed (50, 80 or 100).
    pub threshold: u8,
    /// The month's cost so far, and the budget.
    pub spend: Usd,
    pub budget: Usd,
    pub outcome: BudgetOutcome,
}

/// What was done about a crossing.
#[derive(Debug, Clone, PartialEq)]
pub enum BudgetOutcome {
    Notified,
    /// Suspended (`StopChannel` or `StopCell`) until an operator resumes it.
    Suspended(BudgetAction),
    SuspendFailed {
        how: BudgetAction,
        error: String,
    },
}

/// What `resume` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resumed {
    /// The channel or the cell runs again.
    Resumed(BudgetAction),
    NotSuspended,
}

/// The thresholds `spend` has reached of `budget`.
#[must_use]
pub fn crossed(spend: Usd, budget: Usd) -> Vec<u8> {
    if budget <= Usd::ZERO {
        return Vec::new();
    }
    THRESHOLDS
        .into_iter()
        .filter(|threshold| spend.reaches_percent(*threshold, budget))
        .collect()
}

/// A tenant's budget: the operator's if set, else config's.
///
/// # Errors
///
/// An unknown tenant, a store failure.
pub fn budget(app: &App, tenant: &TenantId) -> anyhow::Result<Budget> {
    known(app, tenant)?;
    let record = app.store.budget_record(tenant)?;
    Ok(effective_budget(
        app.config.usage.tenants.get(tenant),
        record,
    ))
}

fn effective_budget(config: Option<&TenantUsage>, record: store::BudgetRecord) -> Budget {
    Budget {
        amount: record.amount.or(config.and_then(|c| c.budget)),
        set_by_operator: record.amount.is_some(),
        action: record
            .action
            .or(config.and_then(|c| c.on_budget))
            .unwrap_or_default(),
        suspended: record.suspended.map(Suspension::from),
    }
}

impl From<store::Suspension> for Suspension {
    fn from(suspension: store::Suspension) -> Suspension {
        Suspension {
            since: suspension.since,
            how: suspension.how,
            month: suspension.month,
        }
    }
}

/// Sets (or with `None` clears) the operator's monthly budget of a tenant, and
/// its action at 100% when `action` is given. A cleared budget falls back to config.
///
/// # Errors
///
/// An unknown tenant, a budget of $0 (`Usd`'s parse checked the rest), a store failure.
pub fn set_budget(
    app: &App,
    actor: &Actor,
    tenant: &TenantId,
    amount: Option<Usd>,
    action: Option<BudgetAction>,
) -> anyhow::Result<Budget> {
    known(app, tenant)?;
    if amount.is_some_and(Usd::is_zero) {
        bail!("a budget must be more than {}", Usd::ZERO);
    }
    let record = app.store.update_budget_record(tenant, |record| {
        record.amount = amount;
        if action.is_some() {
            record.action = action;
        }
    })?;
    audit(app, actor, "budget", Some(tenant), Ok(()));
    Ok(effective_budget(
        app.config.usage.tenants.get(tenant),
        record,
    ))
}

/// A tenant's budget and this month's spend (at `now`, in the usage time zone).
///
/// # Errors
///
/// An unknown tenant, a store failure.
pub fn budget_status(
    app: &App,
    tenant: &TenantId,
    now: DateTime<Utc>,
) -> anyhow::Result<BudgetStatus> {
    known(app, tenant)?;
    let today = today(app, now);
    let month = Period::month_of(today);
    let month_key = month_key(today);
    let facts = app
        .store
        .budget_facts(tenant, &month_key, month.start, month.end)?;
    Ok(BudgetStatus {
        budget: effective_budget(app.config.usage.tenants.get(tenant), facts.record),
        month: month_key,
        spend: facts.spend,
        notified: facts.notified,
    })
}

/// Checks every tenant's budget (`check_budget`), after stopping again the
/// channel (or cell) of a suspended tenant that came back.
///
/// # Errors
///
/// A store failure; a failed suspension is in the alert.
pub async fn check_budgets(app: &App, now: DateTime<Utc>) -> anyhow::Result<Vec<BudgetAlert>> {
    let mut records: std::collections::HashMap<TenantId, store::BudgetRecord> =
        app.store.budget_records()?.into_iter().collect();
    let mut res = Vec::new();
    for record in app.store.tenants()? {
        let tenant = record.id;
        let budget = effective_budget(
            app.config.usage.tenants.get(&tenant),
            records.remove(&tenant).unwrap_or_default(),
        );
        if budget.suspended.is_some()
            && let Err(err) = keep_suspended(app, &tenant).await
        {
            tracing::warn!(cause = %format!("{err:#}"), %tenant, "cannot check that a suspended channel stays stopped");
        }
        if budget.amount.is_some() {
            res.extend(check_budget(app, &tenant, now).await?);
        }
    }
    Ok(res)
}

/// Compares a tenant's spend this month (at `now`, in the usage time zone)
/// with its budget. Thresholds crossed and not notified before this month are
/// marked, and at 100% the tenant is suspended as its budget says, in one store
/// transaction; then the channel or cell is stopped. Returns the alert (naming
/// the highest fresh threshold), or `None` when there is nothing new to say.
///
/// # Errors
///
/// A store failure; a failed stop is in the alert (the suspension stays
/// recorded, and `keep_suspended` retries it).
pub async fn check_budget(
    app: &App,
    tenant: &TenantId,
    now: DateTime<Utc>,
) -> anyhow::Result<Option<BudgetAlert>> {
    let today = today(app, now);
    let month = Period::month_of(today);
    let month_key = month_key(today);
    let config = app.config.usage.tenants.get(tenant);
    let (facts, marks) =
        app.store
            .check_budget(tenant, &month_key, month.start, month.end, |facts| {
                let budget = effective_budget(config, facts.record.clone());
                let Some(amount) = budget.amount else {
                    return BudgetMarks::default();
                };
                let fresh: Vec<u8> = crossed(facts.spend, amount)
                    .into_iter()
                    .filter(|threshold| !facts.notified.contains(threshold))
                    .collect();
                let suspend = (fresh.contains(&100)
                    && budget.action != BudgetAction::Notify
                    && budget.suspended.is_none())
                .then(|| store::Suspension {
                    since: crate::fleet::now(),
                    how: budget.action,
                    month: month_key.clone(),
                });
                BudgetMarks {
                    notify: fresh,
                    suspend,
                }
            })?;
    let budget = effective_budget(config, facts.record);
    let (Some(amount), Some(threshold)) = (budget.amount, marks.notify.iter().copied().max())
    else {
        return Ok(None);
    };
    let outcome = match marks.suspend {
        Some(suspension) => {
            let actor = Actor::System("usage");
            match stop_suspended(app, &actor, tenant, suspension.how).await {
                Ok(()) => BudgetOutcome::Suspended(suspension.how),
                Err(err) => BudgetOutcome::SuspendFailed {
                    how: suspension.how,
                    error: format!("{err:#}"),
                },
            }
        }
        None => BudgetOutcome::Notified,
    };
    Ok(Some(BudgetAlert {
        tenant: tenant.clone(),
        month: month_key,
        threshold,
        spend: facts.spend,
        budget: amount,
        outcome,
    }))
}

/// Stops what a recorded suspension says (the channel or the cell), under the
/// tenant's lock, and audits it.
async fn stop_suspended(
    app: &App,
    actor: &Actor,
    tenant: &TenantId,
    how: BudgetAction,
) -> anyhow::Result<()> {
    let result = async {
        let _guard =
            crate::fleet::lock::acquire(app, tenant, crate::fleet::lock::Op::Suspend, actor)?;
        let record = known(app, tenant)?;
        match how {
            BudgetAction::StopCell => crate::fleet::lifecycle::stop_locked(app, actor, tenant)
                .await
                .map(|_| ()),
            _ if record.state != CellState::Running => Ok(()),
            _ => channel(app, tenant, "channels.stop").await,
        }
    }
    .await;
    let action = format!("suspend: {}", how.as_str());
    audit_result(app, actor, &action, tenant, "gateway", &result);
    result
}

/// Undoes a suspension: starts the channel (or the cell) again, then forgets the
/// suspension. The month's thresholds stay notified, so the tenant is not
/// suspended again this month.
///
/// # Errors
///
/// An unknown tenant; the start failing (the suspension is kept, so `resume` can be retried).
pub async fn resume(app: &App, actor: &Actor, tenant: &TenantId) -> anyhow::Result<Resumed> {
    let _guard = crate::fleet::lock::acquire(app, tenant, crate::fleet::lock::Op::Resume, actor)?;
    let record = known(app, tenant)?;
    let Some(suspension) = app.store.budget_record(tenant)?.suspended else {
        return Ok(Resumed::NotSuspended);
    };
    let result = match suspension.how {
        BudgetAction::StopCell => crate::fleet::lifecycle::start_locked(app, actor, tenant)
            .await
            .map(|_| ()),
        // A stopped cell starts its channel when it starts.
        _ if record.state != CellState::Running => Ok(()),
        _ => channel(app, tenant, "channels.start").await,
    };
    if let Err(err) = result {
        audit(
            app,
            actor,
            "resume",
            Some(tenant),
            Err(("gateway", &format!("{err:#}"))),
        );
        return Err(err);
    }
    app.store
        .update_budget_record(tenant, |budget| budget.suspended = None)?;
    audit(app, actor, "resume", Some(tenant), Ok(()));
    Ok(Resumed::Resumed(suspension.how))
}

/// Every suspended tenant.
///
/// # Errors
///
/// A store failure.
pub fn suspensions(app: &App) -> anyhow::Result<Vec<(TenantId, Suspension)>> {
    Ok(app
        .store
        .budget_records()?
        .into_iter()
        .filter_map(|(tenant, record)| record.suspended.map(|s| (tenant, Suspension::from(s))))
        .collect())
}

/// Keeps a suspended tenant suspended: stops again the Telegram channel of one
/// suspended with `StopChannel` when it runs (a restarted cell starts its
/// channels), and the cell of one suspended with `StopCell` that runs (its stop
/// failed, or it was started without `resume`). Returns whether it had to.
///
/// # Errors
///
/// The gateway not answering.
pub async fn keep_suspended(app: &App, tenant: &TenantId) -> anyhow::Result<bool> {
    let record = known(app, tenant)?;
    let suspended = app.store.budget_record(tenant)?.suspended;
    if suspended
        .as_ref()
        .is_some_and(|s| s.how == BudgetAction::StopCell)
    {
        // The stop at suspension failed, or the cell was started without `resume`.
        if record.state != CellState::Running {
            return Ok(false);
        }
        crate::fleet::stop(app, &Actor::System("usage"), tenant).await?;
        audit(
            app,
            &Actor::System("usage"),
            "suspend: stop-cell again",
            Some(tenant),
            Ok(()),
        );
        return Ok(true);
    }
    if !suspended.is_some_and(|s| s.how == BudgetAction::StopChannel)
        || record.state != CellState::Running
        || !record.paired
    {
        return Ok(false);
    }
    let info = crate::fleet::gateway_info(app, tenant).await?;
    if info
        .telegram
        .is_none_or(|telegram| telegram.running == Some(false))
    {
        return Ok(false);
    }
    channel(app, tenant, "channels.stop").await?;
    audit(
        app,
        &Actor::System("usage"),
        "suspend: stop-channel again",
        Some(tenant),
        Ok(()),
    );
    Ok(true)
}

/// `channels.stop` or `channels.start` of the tenant's Telegram channel.
async fn channel(app: &App, tenant: &TenantId, method: &str) -> anyhow::Result<()> {
    let client = crate::fleet::client(app, tenant).await?;
    client
        .call(method, json!({"channel": "telegram"}))
        .await
        .with_context(|| format!("{method} on {tenant} failed"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_are_reached_at_their_percent() {
        let usd = |text: &str| text.parse::<Usd>().unwrap();
        assert_eq!(crossed(usd("0"), usd("10")), Vec::<u8>::new());
        assert_eq!(crossed(usd("4.99"), usd("10")), Vec::<u8>::new());
        assert_eq!(crossed(usd("5"), usd("10")), vec![50]);
        assert_eq!(crossed(usd("8"), usd("10")), vec![50, 80]);
        assert_eq!(crossed(usd("12"), usd("10")), vec![50, 80, 100]);
        assert_eq!(crossed(usd("12"), usd("0")), Vec::<u8>::new());
        // Exact: a third of a budget of $0.03 is not yet 50%, two thirds are.
        assert_eq!(crossed(usd("0.01"), usd("0.03")), Vec::<u8>::new());
        assert_eq!(crossed(usd("0.02"), usd("0.03")), vec![50]);
    }
}
