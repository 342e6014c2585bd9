//! Usage and billing above the fleet: when to collect (a loop inside
//! `mtp serve`, hourly by default), periods, pricing and the summaries, CSV and
//! chart made from the ledger, and budgets: alerts at 50%, 80% and 100% of a
//! tenant's monthly budget, each once per month, and the optional suspension at
//! 100%. It never sends a Telegram message: budget alerts are values on a
//! channel; `bot/` renders them.
//!
//! Architecture invariant: `usage/` asks `fleet` for everything; it never
//! touches the store, Docker or a gateway itself.

pub mod chart;
pub mod period;
pub mod report;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::fleet::{self, Actor, App};
use crate::tenant::{BudgetAction, TenantId};
use period::{Period, PeriodSpec};
use report::{FleetSummary, Summary};

/// The budget thresholds, in percent of the monthly budget.
pub const THRESHOLDS: [u8; 3] = [50, 80, 100];

/// Something the operator should hear about.
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    Budget(BudgetAlert),
}

/// A tenant's spend crossed a threshold of its monthly budget.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetAlert {
    pub tenant: TenantId,
    /// `YYYY-MM` in the usage time zone.
    pub month: String,
    /// The highest threshold newly crossed (50, 80 or 100).
    pub threshold: u8,
    /// The month's cost so far and the budget, in US dollars.
    pub spend: f64,
    pub budget: f64,
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

/// Collects every `app.config().usage.interval` (the first time at once), then
/// checks budgets, until `shutdown`. Budget alerts go to `reports`.
pub async fn run(app: App, reports: mpsc::Sender<Report>, shutdown: CancellationToken) {
    let mut interval = tokio::time::interval(app.config().usage.interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = interval.tick() => {}
        }
        // A collection only reads until its last step, one store write per
        // tenant, so cutting it at shutdown loses nothing.
        let collected = tokio::select! {
            _ = shutdown.cancelled() => return,
            collected = fleet::collect_usage(&app) => collected,
        };
        match collected {
            Ok(report) => {
                let failed = report
                    .tenants
                    .iter()
                    .filter(|(_, c)| matches!(c, fleet::Collected::Failed(_)))
                    .count();
                tracing::info!(tenants = report.tenants.len(), failed, "usage collected");
            }
            Err(err) => tracing::error!(cause = %format!("{err:#}"), "usage collection failed"),
        }
        match check_budgets(&app, Utc::now()).await {
            Ok(alerts) => {
                for alert in alerts {
                    let _ = reports.send(Report::Budget(alert)).await;
                }
            }
            Err(err) => tracing::error!(cause = %format!("{err:#}"), "budget check failed"),
        }
    }
}

/// The thresholds `spend` has reached of `budget`.
#[must_use]
pub fn crossed(spend: f64, budget: f64) -> Vec<u8> {
    if budget.is_nan() || budget <= 0.0 {
        return Vec::new();
    }
    THRESHOLDS
        .into_iter()
        .filter(|threshold| spend * 100.0 >= f64::from(*threshold) * budget)
        .collect()
}

/// Compares each tenant's spend this month (at `now`, in the usage time zone)
/// with its budget; returns one alert per tenant that crossed a threshold not
/// notified before this month (naming the highest), suspending it at 100% when
/// its budget says so. Also stops again the channel of a suspended tenant whose
/// cell brought it back.
///
/// # Errors
///
/// A store failure; a failed suspension is in the alert.
pub async fn check_budgets(app: &App, now: DateTime<Utc>) -> anyhow::Result<Vec<BudgetAlert>> {
    let today = period::today(app.config().usage.time_zone, now);
    let month = Period::month_of(today);
    let month_key = period::month_key(today);
    let mut res = Vec::new();
    for (tenant, budget) in fleet::budgets(app)? {
        if budget.suspended.is_some()
            && let Err(err) = fleet::keep_suspended(app, &tenant).await
        {
            tracing::warn!(cause = %format!("{err:#}"), %tenant, "cannot check that a suspended channel stays stopped");
        }
        let Some(amount) = budget.amount else {
            continue;
        };
        let ledger = fleet::ledger(app, &tenant, month.start, month.end)?;
        let spend = ledger
            .days
            .iter()
            .fold(0.0, |sum, day| sum + day.figures.cost);
        let crossed = crossed(spend, amount);
        if crossed.is_empty() {
            continue;
        }
        let fresh = fleet::mark_budget_notices(app, &tenant, &month_key, &crossed)?;
        let Some(threshold) = fresh.iter().copied().max() else {
            continue;
        };
        let outcome = if fresh.contains(&100)
            && budget.action != BudgetAction::Notify
            && budget.suspended.is_none()
        {
            match fleet::suspend(
                app,
                &Actor::System("usage"),
                &tenant,
                budget.action,
                &month_key,
            )
            .await
            {
                Ok(()) => BudgetOutcome::Suspended(budget.action),
                Err(err) => BudgetOutcome::SuspendFailed {
                    how: budget.action,
                    error: format!("{err:#}"),
                },
            }
        } else {
            BudgetOutcome::Notified
        };
        res.push(BudgetAlert {
            tenant,
            month: month_key.clone(),
            threshold,
            spend,
            budget: amount,
            outcome,
        });
    }
    Ok(res)
}

/// A tenant's usage over `spec` (resolved at `now` in the usage time zone).
///
/// # Errors
///
/// An unknown tenant, a store failure.
pub fn tenant_summary(
    app: &App,
    tenant: &TenantId,
    spec: PeriodSpec,
    now: DateTime<Utc>,
) -> anyhow::Result<Summary> {
    let period = spec.resolve(period::today(app.config().usage.time_zone, now));
    let ledger = fleet::ledger(app, tenant, period.start, period.end)?;
    Ok(report::summarize(
        tenant,
        period,
        &ledger,
        app.config().usage.pricing(tenant),
    ))
}

/// Every tenant's usage over `spec`, by tenant id.
///
/// # Errors
///
/// A store failure.
pub fn tenant_summaries(
    app: &App,
    spec: PeriodSpec,
    now: DateTime<Utc>,
) -> anyhow::Result<(Period, Vec<Summary>)> {
    let period = spec.resolve(period::today(app.config().usage.time_zone, now));
    let summaries = fleet::ledgers(app, period.start, period.end)?
        .iter()
        .map(|(tenant, ledger)| {
            report::summarize(tenant, period, ledger, app.config().usage.pricing(tenant))
        })
        .collect();
    Ok((period, summaries))
}

/// Every tenant's usage over `spec`, ranked by cost.
///
/// # Errors
///
/// A store failure.
pub fn fleet_summary(
    app: &App,
    spec: PeriodSpec,
    now: DateTime<Utc>,
) -> anyhow::Result<FleetSummary> {
    let (period, summaries) = tenant_summaries(app, spec, now)?;
    Ok(report::rank(period, &summaries))
}

/// A tenant's spend this month against its budget, for `/usage` and the CLI.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetStatus {
    pub budget: fleet::Budget,
    pub month: String,
    pub spend: f64,
    /// Thresholds already notified this month.
    pub notified: Vec<u8>,
}

/// A tenant's budget and this month's spend.
///
/// # Errors
///
/// An unknown tenant, a store failure.
pub fn budget_status(
    app: &App,
    tenant: &TenantId,
    now: DateTime<Utc>,
) -> anyhow::Result<BudgetStatus> {
    let today = period::today(app.config().usage.time_zone, now);
    let month = Period::month_of(today);
    let month_key = period::month_key(today);
    let budget = fleet::budget(app, tenant)?;
    let ledger = fleet::ledger(app, tenant, month.start, month.end)?;
    let spend = ledger
        .days
        .iter()
        .fold(0.0, |sum, day| sum + day.figures.cost);
    let notified = fleet::budget_notices(app, tenant, &month_key)?;
    Ok(BudgetStatus {
        budget,
        month: month_key,
        spend,
        notified,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_are_reached_at_their_percent() {
        assert_eq!(crossed(0.0, 10.0), Vec::<u8>::new());
        assert_eq!(crossed(4.99, 10.0), Vec::<u8>::new());
        assert_eq!(crossed(5.0, 10.0), vec![50]);
        assert_eq!(crossed(8.0, 10.0), vec![50, 80]);
        assert_eq!(crossed(12.0, 10.0), vec![50, 80, 100]);
        assert_eq!(crossed(12.0, 0.0), Vec::<u8>::new());
    }
}
