//! Usage as fleet actions: reading each running tenant's `usage.cost` and
//! `sessions.usage` into the ledger (figures only ever go up), and reading the
//! ledger back, in fleet's own types (`UsageFigures`, `DayUsage`, …) converted
//! here from the store's.
//!
//! Bills are in `billing.rs`, budgets in `budget.rs`; what the operator types
//! for a period, CSV, charts and when to collect live in `usage/`.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use anyhow::Context;
use chrono::{Datelike, NaiveDate};
use futures_util::StreamExt;

use crate::fleet::inventory::known;
use crate::fleet::{App, now};
use crate::gateway::{AgentScope, UsagePeriod, UsageQuery, UsageTotals};
use crate::store;
use crate::tenant::{CellState, TenantId, TenantRecord, Usd};

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

/// Tokens and cost of one day (or one model on one day).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct UsageFigures {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write: u64,
    /// As priced by the gateway.
    pub cost: Usd,
}

impl UsageFigures {
    #[must_use]
    pub fn tokens(&self) -> u64 {
        self.input + self.output + self.cache_read + self.cache_write
    }

    pub fn add(&mut self, other: &UsageFigures) {
        self.input += other.input;
        self.output += other.output;
        self.cache_read += other.cache_read;
        self.cache_write += other.cache_write;
        self.cost += other.cost;
    }
}

/// One day of a tenant's ledger.
#[derive(Debug, Clone, PartialEq)]
pub struct DayUsage {
    pub day: NaiveDate,
    pub figures: UsageFigures,
    /// Unix seconds of the last reading of this day (raising it or not).
    pub read_at: i64,
}

/// One model on one day of a tenant's ledger.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelDayUsage {
    pub day: NaiveDate,
    /// `provider/model`, e.g. `anthropic/claude-opus-4-6`.
    pub model: String,
    pub figures: UsageFigures,
    pub read_at: i64,
}

/// What one collection wrote to the ledger.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ratcheted {
    /// Rows new or raised by the reading.
    pub raised: usize,
    /// Rows where the reading was lower than the ledger in some field (kept).
    pub held: usize,
}

impl From<store::UsageFigures> for UsageFigures {
    fn from(figures: store::UsageFigures) -> UsageFigures {
        UsageFigures {
            input: figures.input,
            output: figures.output,
            cache_read: figures.cache_read,
            cache_write: figures.cache_write,
            cost: figures.cost,
        }
    }
}

impl From<store::DayUsage> for DayUsage {
    fn from(day: store::DayUsage) -> DayUsage {
        DayUsage {
            day: day.day,
            figures: day.figures.into(),
            read_at: day.read_at,
        }
    }
}

impl From<store::ModelDayUsage> for ModelDayUsage {
    fn from(row: store::ModelDayUsage) -> ModelDayUsage {
        ModelDayUsage {
            day: row.day,
            model: row.model,
            figures: row.figures.into(),
            read_at: row.read_at,
        }
    }
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
    let days: Vec<(NaiveDate, store::UsageFigures)> = cost
        .daily
        .iter()
        .filter(|day| in_window(day.date))
        .map(|day| (day.date, figures(&day.totals)))
        .collect();

    let stored: HashMap<(NaiveDate, String), store::UsageFigures> = app
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
        let known = stored.get(&(day, model)).is_some_and(|f| {
            f.tokens() >= row.tokens && f.cost.to_f64() + COST_EPSILON >= row.cost
        });
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
        ratcheted: Ratcheted {
            raised: ratcheted.raised,
            held: ratcheted.held,
        },
    })
}

/// The gateway's float cost becomes `Usd` here, at the boundary.
fn figures(totals: &UsageTotals) -> store::UsageFigures {
    store::UsageFigures {
        input: totals.input,
        output: totals.output,
        cache_read: totals.cache_read,
        cache_write: totals.cache_write,
        cost: Usd::from_f64(totals.total_cost.max(0.0)),
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
    read_ledger(app, tenant, start, end)
}

fn read_ledger(
    app: &App,
    tenant: &TenantId,
    start: NaiveDate,
    end: NaiveDate,
) -> anyhow::Result<Ledger> {
    let days = app.store.usage_days(tenant, start, end)?;
    let models = app.store.usage_model_days(tenant, start, end)?;
    Ok(Ledger {
        days: days.into_iter().map(DayUsage::from).collect(),
        models: models.into_iter().map(ModelDayUsage::from).collect(),
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
        let ledger = read_ledger(app, &id, start, end)?;
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
pub fn costs_on(app: &App, day: NaiveDate) -> anyhow::Result<Vec<(TenantId, Usd)>> {
    let mut res = Vec::new();
    for id in app.store.usage_tenants()? {
        let cost: Usd = app
            .store
            .usage_days(&id, day, day)?
            .iter()
            .map(|d| d.figures.cost)
            .sum();
        if cost > Usd::ZERO {
            res.push((id, cost));
        }
    }
    res.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Ok(res)
}

/// Yesterday in `usage.timeZone`, the day a daily digest reports costs for.
#[must_use]
pub fn yesterday(app: &App, now: chrono::DateTime<chrono::Utc>) -> NaiveDate {
    let today = now.with_timezone(&app.config.usage.time_zone).date_naive();
    today.pred_opt().unwrap_or(today)
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
