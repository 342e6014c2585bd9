//! Usage and budgets as fleet actions: reading each running tenant's
//! `usage.cost` and `sessions.usage` into the ledger (figures only ever go up),
//! reading the ledger back, budgets per tenant (config or operator), the
//! thresholds already notified per month, and suspending a tenant that reached
//! its budget (its Telegram channel or its cell) until an operator resumes it.
//!
//! What a period means, pricing, charts and when to collect live in `usage/`.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use anyhow::{Context, bail};
use chrono::{Datelike, NaiveDate};
use futures_util::StreamExt;
use serde_json::json;

use crate::fleet::inventory::known;
use crate::fleet::{Actor, App, audit, now};
use crate::gateway::{AgentScope, UsagePeriod, UsageQuery, UsageTotals};
use crate::store::{DayUsage, ModelDayUsage, Ratcheted, Suspension, UsageFigures};
use crate::tenant::{BudgetAction, CellState, TenantId, TenantRecord};

/// Tenants read at the same time. Each reading is a few RPCs; a small bound keeps
/// an hourly collection from loading the host.
const COLLECT_CONCURRENCY: usize = 4;

/// Cost differences below this (US dollars) are rounding between the gateway's
/// two aggregates of the same entries, not new usage.
const COST_EPSILON: f64 = 1e-9;

/// The model name of figures the gateway could not attribute to a model.
pub const UNATTRIBUTED: &str = "(unattributed)";

/// What one collection did, per tenant.
#[derive(Debug, Clone)]
pub struct CollectReport {
    /// Unix seconds when the collection began.
    pub at: i64,
    /// The days read: from the first of last month to today, in the usage time zone.
    pub start: NaiveDate,
    pub end: NaiveDate,
    pub tenants: Vec<(TenantId, Collected)>,
}

/// One tenant's collection.
#[derive(Debug, Clone, PartialEq)]
pub enum Collected {
    /// Read and written to the ledger.
    Read {
        /// Days and (day, model) rows read.
        days: usize,
        models: usize,
        ratcheted: Ratcheted,
    },
    /// Not meant to run (stopped, creating, failed): nothing to read.
    NotRunning,
    /// The admin is not paired with the cell yet.
    NotPaired,
    /// The cell did not answer; its stored figures stay and the next collection retries.
    Failed(String),
}

/// A tenant's ledger over some days.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ledger {
    pub days: Vec<DayUsage>,
    pub models: Vec<ModelDayUsage>,
}

/// A tenant's budget as it applies now: an operator's (`/budget`) wins over config.
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    /// Monthly budget in US dollars, if any.
    pub amount: Option<f64>,
    /// The amount was set by an operator (else it comes from config).
    pub set_by_operator: bool,
    /// What happens at 100%.
    pub action: BudgetAction,
    pub suspended: Option<Suspension>,
}

/// What `resume` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resumed {
    /// The channel or the cell runs again.
    Resumed(BudgetAction),
    NotSuspended,
}

/// Reads every running, paired tenant's usage from the first of last month
/// (in the usage time zone) to today into the ledger. A tenant that fails is
/// reported and skipped; its stored figures stay.
///
/// # Errors
///
/// Only a store that cannot list the tenants; per-tenant failures are in the report.
pub async fn collect_usage(app: &App) -> anyhow::Result<CollectReport> {
    let at = now();
    let (start, end) = collect_window(app);
    let records = app.store.tenants()?;
    let app = Arc::new(app.clone());
    let mut tenants: Vec<(TenantId, Collected)> = futures_util::stream::iter(records)
        .map(|record| {
            let app = app.clone();
            async move {
                let collected = collect_record(&app, &record, start, end).await;
                (record.id, collected)
            }
        })
        .buffer_unordered(COLLECT_CONCURRENCY)
        .collect()
        .await;
    tenants.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(CollectReport {
        at,
        start,
        end,
        tenants,
    })
}

/// Reads one tenant's usage into the ledger, as `collect_usage` does for all.
///
/// # Errors
///
/// An unknown tenant; a cell that does not answer is `Collected::Failed`.
pub async fn collect_tenant_usage(app: &App, tenant: &TenantId) -> anyhow::Result<CollectReport> {
    let at = now();
    let record = known(app, tenant)?;
    let (start, end) = collect_window(app);
    let collected = collect_record(app, &record, start, end).await;
    Ok(CollectReport {
        at,
        start,
        end,
        tenants: vec![(record.id, collected)],
    })
}

/// From the first day of last month to today, in the usage time zone: last
/// month's bill still takes late readings until this month ends.
fn collect_window(app: &App) -> (NaiveDate, NaiveDate) {
    let today = chrono::Utc::now()
        .with_timezone(&app.config.usage.time_zone)
        .date_naive();
    let this_month = today.with_day(1).unwrap_or(today);
    let start = this_month
        .pred_opt()
        .and_then(|day| day.with_day(1))
        .unwrap_or(this_month);
    (start, today)
}

async fn collect_record(
    app: &App,
    record: &TenantRecord,
    start: NaiveDate,
    end: NaiveDate,
) -> Collected {
    if record.state != CellState::Running {
        return Collected::NotRunning;
    }
    if !record.paired {
        return Collected::NotPaired;
    }
    match read_usage(app, &record.id, start, end).await {
        Ok(collected) => collected,
        Err(err) => {
            tracing::warn!(cause = %format!("{err:#}"), tenant = %record.id, "usage collection failed; retrying next time");
            Collected::Failed(format!("{err:#}"))
        }
    }
}

/// `usage.cost` for the days; `sessions.usage` over the window for `modelDaily`,
/// then one `sessions.usage` per day whose per-model figures moved, for the
/// token split of each model (`modelDaily` has only total tokens and cost).
async fn read_usage(
    app: &App,
    tenant: &TenantId,
    start: NaiveDate,
    end: NaiveDate,
) -> anyhow::Result<Collected> {
    let client = crate::fleet::client(app, tenant).await?;
    let time_zone = app.config.usage.time_zone;
    let query = UsageQuery {
        period: UsagePeriod::Dates { start, end },
        agents: AgentScope::All,
        time_zone: (time_zone != chrono_tz::UTC).then(|| time_zone.name().to_string()),
    };
    let cost = client
        .usage_cost(&query)
        .await
        .with_context(|| format!("usage.cost on {tenant} failed"))?;
    let sessions = client
        .sessions_usage(&query)
        .await
        .with_context(|| format!("sessions.usage on {tenant} failed"))?;
    let in_window = |day: NaiveDate| start <= day && day <= end;
    let days: Vec<(NaiveDate, UsageFigures)> = cost
        .daily
        .iter()
        .filter(|day| in_window(day.date))
        .map(|day| (day.date, figures(&day.totals)))
        .collect();

    let stored: HashMap<(NaiveDate, String), UsageFigures> = app
        .store
        .usage_model_days(tenant, start, end)?
        .into_iter()
        .map(|row| ((row.day, row.model), row.figures))
        .collect();
    let mut moved = BTreeSet::new();
    for row in &sessions.aggregates.model_daily {
        let Some(day) = row.date.filter(|day| in_window(*day)) else {
            continue;
        };
        if row.tokens == 0 && row.cost <= 0.0 {
            continue;
        }
        let model = model_name(row.provider.as_deref(), row.model.as_deref());
        let known = stored
            .get(&(day, model))
            .is_some_and(|f| f.tokens() >= row.tokens && f.cost + COST_EPSILON >= row.cost);
        if !known {
            moved.insert(day);
        }
    }
    let mut models = Vec::new();
    for day in moved {
        let one_day = UsageQuery {
            period: UsagePeriod::Dates {
                start: day,
                end: day,
            },
            ..query.clone()
        };
        let split = client
            .sessions_usage(&one_day)
            .await
            .with_context(|| format!("sessions.usage of {day} on {tenant} failed"))?;
        for by_model in &split.aggregates.by_model {
            models.push((
                day,
                model_name(by_model.provider.as_deref(), by_model.model.as_deref()),
                figures(&by_model.totals),
            ));
        }
    }
    let ratcheted = app.store.ratchet_usage(tenant, &days, &models, now())?;
    Ok(Collected::Read {
        days: days.len(),
        models: models.len(),
        ratcheted,
    })
}

fn figures(totals: &UsageTotals) -> UsageFigures {
    UsageFigures {
        input: totals.input,
        output: totals.output,
        cache_read: totals.cache_read,
        cache_write: totals.cache_write,
        cost: totals.total_cost.max(0.0),
    }
}

/// `provider/model`, or what of it the gateway named.
fn model_name(provider: Option<&str>, model: Option<&str>) -> String {
    match (
        provider.filter(|p| !p.is_empty()),
        model.filter(|m| !m.is_empty()),
    ) {
        (Some(provider), Some(model)) => format!("{provider}/{model}"),
        (None, Some(model)) => model.to_string(),
        (Some(provider), None) => format!("{provider}/?"),
        (None, None) => UNATTRIBUTED.to_string(),
    }
}

/// A tenant's ledger from `start` to `end` (both included).
///
/// # Errors
///
/// An unknown tenant (`UnknownTenant`, with similar ids), a store failure.
pub fn ledger(
    app: &App,
    tenant: &TenantId,
    start: NaiveDate,
    end: NaiveDate,
) -> anyhow::Result<Ledger> {
    // A removed tenant whose data was kept is still billable.
    if let Err(err) = known(app, tenant)
        && !app.store.usage_tenants()?.contains(tenant)
    {
        return Err(err);
    }
    Ok(Ledger {
        days: app.store.usage_days(tenant, start, end)?,
        models: app.store.usage_model_days(tenant, start, end)?,
    })
}

/// Every tenant's ledger from `start` to `end`, by tenant id.
///
/// # Errors
///
/// A store failure.
pub fn ledgers(
    app: &App,
    start: NaiveDate,
    end: NaiveDate,
) -> anyhow::Result<Vec<(TenantId, Ledger)>> {
    // Tenants on record, and removed ones whose ledger was kept.
    let mut ids: BTreeSet<TenantId> = app
        .store
        .tenants()?
        .into_iter()
        .map(|record| record.id)
        .collect();
    ids.extend(app.store.usage_tenants()?);
    let mut res = Vec::new();
    for id in ids {
        let ledger = Ledger {
            days: app.store.usage_days(&id, start, end)?,
            models: app.store.usage_model_days(&id, start, end)?,
        };
        if app.store.tenant(&id)?.is_none() && ledger.days.is_empty() {
            continue;
        }
        res.push((id, ledger));
    }
    Ok(res)
}

/// Each tenant's cost on `day` (a day of `usage.timeZone`), most expensive
/// first; tenants that spent nothing that day are left out.
///
/// # Errors
///
/// A store failure.
pub fn costs_on(app: &App, day: NaiveDate) -> anyhow::Result<Vec<(TenantId, f64)>> {
    let mut res = Vec::new();
    for id in app.store.usage_tenants()? {
        let cost: f64 = app
            .store
            .usage_days(&id, day, day)?
            .iter()
            .map(|d| d.figures.cost)
            .sum();
        if cost > 0.0 {
            res.push((id, cost));
        }
    }
    res.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Ok(res)
}

/// Yesterday in `usage.timeZone`, the day a daily digest reports costs for.
#[must_use]
pub fn yesterday(app: &App, now: chrono::DateTime<chrono::Utc>) -> NaiveDate {
    let today = now.with_timezone(&app.config.usage.time_zone).date_naive();
    today.pred_opt().unwrap_or(today)
}

/// A tenant's budget: the operator's if set, else config's.
///
/// # Errors
///
/// An unknown tenant, a store failure.
pub fn budget(app: &App, tenant: &TenantId) -> anyhow::Result<Budget> {
    known(app, tenant)?;
    let record = app.store.budget_record(tenant)?;
    Ok(effective_budget(app, tenant, record))
}

/// Every tenant's budget, by tenant id.
///
/// # Errors
///
/// A store failure.
pub fn budgets(app: &App) -> anyhow::Result<Vec<(TenantId, Budget)>> {
    let mut stored: HashMap<TenantId, crate::store::BudgetRecord> =
        app.store.budget_records()?.into_iter().collect();
    let mut res = Vec::new();
    for record in app.store.tenants()? {
        let budget = effective_budget(
            app,
            &record.id,
            stored.remove(&record.id).unwrap_or_default(),
        );
        res.push((record.id, budget));
    }
    Ok(res)
}

fn effective_budget(app: &App, tenant: &TenantId, record: crate::store::BudgetRecord) -> Budget {
    let config = app.config.usage.tenants.get(tenant);
    Budget {
        amount: record.amount.or(config.and_then(|c| c.budget)),
        set_by_operator: record.amount.is_some(),
        action: record
            .action
            .or(config.and_then(|c| c.on_budget))
            .unwrap_or_default(),
        suspended: record.suspended,
    }
}

/// Sets (or with `None` clears) the operator's monthly budget of a tenant, and
/// its action at 100% when `action` is given. A cleared budget falls back to config.
///
/// # Errors
///
/// An unknown tenant, an amount that is not more than 0, a store failure.
pub fn set_budget(
    app: &App,
    actor: &Actor,
    tenant: &TenantId,
    amount: Option<f64>,
    action: Option<BudgetAction>,
) -> anyhow::Result<Budget> {
    known(app, tenant)?;
    if let Some(amount) = amount
        && !(amount.is_finite() && amount > 0.0)
    {
        bail!("a budget must be more than 0 US dollars, got {amount}");
    }
    let record = app.store.update_budget_record(tenant, |record| {
        record.amount = amount;
        if action.is_some() {
            record.action = action;
        }
    })?;
    audit(app, actor, "budget", Some(tenant), Ok(()));
    Ok(effective_budget(app, tenant, record))
}

/// Marks the budget thresholds `crossed` (percent) as notified for a tenant's
/// month (`YYYY-MM`) and returns those not notified before: the caller that gets
/// a threshold back notifies it, once, however often the admin restarts.
///
/// # Errors
///
/// A store failure.
pub fn mark_budget_notices(
    app: &App,
    tenant: &TenantId,
    month: &str,
    crossed: &[u8],
) -> anyhow::Result<Vec<u8>> {
    Ok(app.store.mark_budget_notices(tenant, month, crossed)?)
}

/// The thresholds already notified for a tenant's month.
///
/// # Errors
///
/// A store failure.
pub fn budget_notices(app: &App, tenant: &TenantId, month: &str) -> anyhow::Result<Vec<u8>> {
    Ok(app.store.budget_notices(tenant, month)?)
}

/// Suspends a tenant for reaching the budget of `month`: records the suspension
/// first, then stops its Telegram channel (`StopChannel`) or its cell (`StopCell`).
/// A failed stop leaves the suspension recorded; `keep_suspended` retries it.
///
/// # Errors
///
/// An unknown tenant, `Notify` (nothing to suspend with), the stop failing.
pub async fn suspend(
    app: &App,
    actor: &Actor,
    tenant: &TenantId,
    how: BudgetAction,
    month: &str,
) -> anyhow::Result<()> {
    let _guard = crate::fleet::lock::acquire(app, tenant, crate::fleet::lock::Op::Suspend, actor)?;
    let record = known(app, tenant)?;
    if how == BudgetAction::Notify {
        bail!("notify does not suspend; use stop-channel or stop-cell");
    }
    let suspension = Suspension {
        since: now(),
        how,
        month: month.to_string(),
    };
    app.store
        .update_budget_record(tenant, |budget| budget.suspended = Some(suspension))?;
    let result = match how {
        BudgetAction::StopCell => crate::fleet::lifecycle::stop_locked(app, actor, tenant)
            .await
            .map(|_| ()),
        _ if record.state != CellState::Running => Ok(()),
        _ => channel(app, tenant, "channels.stop").await,
    };
    match &result {
        Ok(()) => audit(
            app,
            actor,
            &format!("suspend: {}", how.as_str()),
            Some(tenant),
            Ok(()),
        ),
        Err(err) => audit(
            app,
            actor,
            &format!("suspend: {}", how.as_str()),
            Some(tenant),
            Err(("gateway", &format!("{err:#}"))),
        ),
    }
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
        .filter_map(|(tenant, record)| record.suspended.map(|s| (tenant, s)))
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
    fn model_names_join_provider_and_model() {
        assert_eq!(
            model_name(Some("anthropic"), Some("claude-opus-4-6")),
            "anthropic/claude-opus-4-6"
        );
        assert_eq!(model_name(None, Some("gpt-5")), "gpt-5");
        assert_eq!(model_name(Some(""), None), UNATTRIBUTED);
    }
}
