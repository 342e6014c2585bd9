//! Bills: the calendar days a bill covers (`Period`), a tenant's usage over
//! them made from its ledger (totals, cost per model and per day, the
//! billable amount under its pricing, "as of"), and the fleet ranked by cost.
//! Money is `Usd`, exact; a bill rounds only where it is shown.
//!
//! What the operator types for a period (`7d`, `this-month`) is `usage/`'s.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Datelike, Months, NaiveDate, Utc};

use crate::config::Pricing;
use crate::fleet::{App, Ledger, ModelDayUsage, UNATTRIBUTED, UsageFigures, ledger, ledgers};
use crate::tenant::{TenantId, Usd};

/// What a tenant is billed for a period.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bill {
    /// The gateway's cost.
    pub cost: Usd,
    pub markup_percent: f64,
    /// Cost with markup.
    pub usage: Usd,
    /// The monthly fee, pro rata for the days of each month the period covers.
    pub fee: Usd,
    /// `usage + fee`.
    pub total: Usd,
}

/// A tenant's usage over a period.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub tenant: TenantId,
    pub period: Period,
    pub totals: UsageFigures,
    /// Per model over the period, most expensive first; figures no model
    /// accounts for are under `UNATTRIBUTED`.
    pub models: Vec<(String, UsageFigures)>,
    /// Every day of the period, oldest first (zero where nothing was recorded).
    pub daily: Vec<(NaiveDate, UsageFigures)>,
    /// Per day, per model (with the `UNATTRIBUTED` remainder of a day).
    pub rows: Vec<ModelDayUsage>,
    pub bill: Bill,
    /// Unix seconds of the latest reading of any day of the period.
    pub as_of: Option<i64>,
}

/// One tenant in the fleet ranking.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranked {
    pub tenant: TenantId,
    pub cost: Usd,
    pub tokens: u64,
    pub billable: Usd,
    pub as_of: Option<i64>,
}

/// Every tenant over a period, most expensive first, with the totals.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetSummary {
    pub period: Period,
    pub tenants: Vec<Ranked>,
    pub cost: Usd,
    pub billable: Usd,
}

/// Today in `usage.timeZone` at the instant `now`.
#[must_use]
pub fn today(app: &App, now: DateTime<Utc>) -> NaiveDate {
    today_in(app.config.usage.time_zone, now)
}

/// A tenant's usage over `period`.
///
/// # Errors
///
/// An unknown tenant, a store failure.
pub fn tenant_summary(app: &App, tenant: &TenantId, period: Period) -> anyhow::Result<Summary> {
    let ledger = ledger(app, tenant, period.start, period.end)?;
    Ok(summarize(
        tenant,
        period,
        &ledger,
        app.config.usage.pricing(tenant),
    ))
}

/// Every tenant's usage over `period`, by tenant id.
///
/// # Errors
///
/// A store failure.
pub fn tenant_summaries(app: &App, period: Period) -> anyhow::Result<Vec<Summary>> {
    Ok(ledgers(app, period.start, period.end)?
        .iter()
        .map(|(tenant, ledger)| summarize(tenant, period, ledger, app.config.usage.pricing(tenant)))
        .collect())
}

/// Every tenant's usage over `period`, ranked by cost.
///
/// # Errors
///
/// A store failure.
pub fn fleet_summary(app: &App, period: Period) -> anyhow::Result<FleetSummary> {
    Ok(rank(period, &tenant_summaries(app, period)?))
}

/// The bill for `cost` over `period`: markup on the cost, plus the monthly fee
/// for each month the period touches, pro rata for the days it covers.
#[must_use]
pub fn bill(cost: Usd, pricing: Pricing, period: &Period) -> Bill {
    let usage = cost.plus_percent(pricing.markup_percent);
    let fee = period
        .months()
        .iter()
        .map(|part| {
            let whole = Period::month_of(part.start).len_days();
            pricing.monthly_fee.pro_rata(part.len_days(), whole)
        })
        .sum();
    Bill {
        cost,
        markup_percent: pricing.markup_percent,
        usage,
        fee,
        total: usage + fee,
    }
}

/// Makes a tenant's summary from its ledger over `period`.
#[must_use]
pub fn summarize(tenant: &TenantId, period: Period, ledger: &Ledger, pricing: Pricing) -> Summary {
    let by_day: BTreeMap<NaiveDate, UsageFigures> = ledger
        .days
        .iter()
        .filter(|d| period.contains(d.day))
        .map(|d| (d.day, d.figures))
        .collect();
    let daily: Vec<(NaiveDate, UsageFigures)> = period
        .days()
        .map(|day| (day, by_day.get(&day).copied().unwrap_or_default()))
        .collect();
    let mut totals = UsageFigures::default();
    for (_, figures) in &daily {
        totals.add(figures);
    }
    let mut rows: Vec<ModelDayUsage> = ledger
        .models
        .iter()
        .filter(|m| period.contains(m.day))
        .cloned()
        .collect();
    // What the day's total has beyond its models: the gateway counted it but
    // named no model for it (or a model's reading was reaped before it was read).
    for day in &ledger.days {
        if !period.contains(day.day) {
            continue;
        }
        let mut attributed = UsageFigures::default();
        for row in rows.iter().filter(|row| row.day == day.day) {
            attributed.add(&row.figures);
        }
        let rest = UsageFigures {
            input: day.figures.input.saturating_sub(attributed.input),
            output: day.figures.output.saturating_sub(attributed.output),
            cache_read: day.figures.cache_read.saturating_sub(attributed.cache_read),
            cache_write: day
                .figures
                .cache_write
                .saturating_sub(attributed.cache_write),
            cost: (day.figures.cost - attributed.cost).max(Usd::ZERO),
        };
        if rest.tokens() > 0 || !rest.cost.is_zero() {
            rows.push(ModelDayUsage {
                day: day.day,
                model: UNATTRIBUTED.to_string(),
                figures: rest,
                read_at: day.read_at,
            });
        }
    }
    rows.sort_by(|a, b| a.day.cmp(&b.day).then_with(|| a.model.cmp(&b.model)));
    let mut models: BTreeMap<String, UsageFigures> = BTreeMap::new();
    for row in &rows {
        models
            .entry(row.model.clone())
            .or_default()
            .add(&row.figures);
    }
    let mut models: Vec<(String, UsageFigures)> = models.into_iter().collect();
    models.sort_by(|a, b| b.1.cost.cmp(&a.1.cost).then_with(|| a.0.cmp(&b.0)));
    let as_of = ledger
        .days
        .iter()
        .filter(|d| period.contains(d.day))
        .map(|d| d.read_at)
        .max();
    Summary {
        tenant: tenant.clone(),
        period,
        totals,
        models,
        daily,
        rows,
        bill: bill(totals.cost, pricing, &period),
        as_of,
    }
}

/// Ranks tenants by cost (ties by id).
#[must_use]
pub fn rank(period: Period, summaries: &[Summary]) -> FleetSummary {
    let mut tenants: Vec<Ranked> = summaries
        .iter()
        .map(|s| Ranked {
            tenant: s.tenant.clone(),
            cost: s.totals.cost,
            tokens: s.totals.tokens(),
            billable: s.bill.total,
            as_of: s.as_of,
        })
        .collect();
    tenants.sort_by(|a, b| b.cost.cmp(&a.cost).then_with(|| a.tenant.cmp(&b.tenant)));
    let cost = tenants.iter().map(|t| t.cost).sum();
    let billable = tenants.iter().map(|t| t.billable).sum();
    FleetSummary {
        period,
        tenants,
        cost,
        billable,
    }
}

/// Calendar days from `start` to `end`, both included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub start: NaiveDate,
    pub end: NaiveDate,
}

impl Period {
    /// The calendar month `day` is in.
    #[must_use]
    pub fn month_of(day: NaiveDate) -> Period {
        let start = day.with_day(1).unwrap_or(day);
        let end = start
            .checked_add_months(Months::new(1))
            .and_then(|next| next.pred_opt())
            .unwrap_or(start);
        Period { start, end }
    }

    /// Every day, oldest first.
    pub fn days(&self) -> impl Iterator<Item = NaiveDate> + use<> {
        let end = self.end;
        self.start.iter_days().take_while(move |day| *day <= end)
    }

    #[must_use]
    pub fn len_days(&self) -> i64 {
        (self.end - self.start).num_days() + 1
    }

    #[must_use]
    pub fn contains(&self, day: NaiveDate) -> bool {
        self.start <= day && day <= self.end
    }

    /// The calendar months the period touches, each cut to the period.
    #[must_use]
    pub fn months(&self) -> Vec<Period> {
        let mut res = Vec::new();
        let mut day = self.start;
        while day <= self.end {
            let month = Period::month_of(day);
            let end = month.end.min(self.end);
            res.push(Period { start: day, end });
            match end.succ_opt() {
                Some(next) => day = next,
                None => break,
            }
        }
        res
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} – {}", self.start, self.end)
    }
}

/// Today's date in `time_zone` at the instant `now`.
#[must_use]
pub fn today_in(time_zone: chrono_tz::Tz, now: DateTime<Utc>) -> NaiveDate {
    now.with_timezone(&time_zone).date_naive()
}

/// `YYYY-MM` of `day`: how months are keyed (budget notices, suspensions).
#[must_use]
pub fn month_key(day: NaiveDate) -> String {
    format!("{:04}-{:02}", day.year(), day.month())
}
