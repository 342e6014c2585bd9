//! The usage ledger and budget state: per (tenant, day) and per (tenant, day,
//! model) token and cost figures that only ever go up, the budget an operator set
//! per tenant, the budget thresholds already notified per month, and suspensions.
//!
//! Days are calendar days in the admin's usage time zone, kept as `YYYY-MM-DD`
//! keys (they sort as dates); months as `YYYY-MM`.

use anyhow::Context;
use chrono::NaiveDate;
use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::store::{Result, Store};
use crate::tenant::{BudgetAction, TenantId};

/// Key: (tenant id, day); value: `FiguresRow`.
pub(super) const USAGE_DAILY: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("usage_daily");
/// Key: (tenant id, day, model as `provider/model`); value: `FiguresRow`.
pub(super) const USAGE_MODELS: TableDefinition<(&str, &str, &str), &[u8]> =
    TableDefinition::new("usage_models");
/// Key: tenant id; value: `BudgetRow` (the operator's budget and any suspension).
pub(super) const BUDGETS: TableDefinition<&str, &[u8]> = TableDefinition::new("budgets");
/// Key: (tenant id, month); value: the thresholds (percent) already notified that
/// month, as a bit set over `THRESHOLD_BITS`.
pub(super) const BUDGET_NOTICES: TableDefinition<(&str, &str), u8> =
    TableDefinition::new("budget_notices");

/// The thresholds a notice bit set can hold, bit 0 first.
const THRESHOLD_BITS: [u8; 3] = [50, 80, 100];

/// Tokens and cost of one day (or one model on one day).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct UsageFigures {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write: u64,
    /// US dollars, as priced by the gateway.
    pub cost: f64,
}

impl UsageFigures {
    #[must_use]
    pub fn tokens(&self) -> u64 {
        self.input + self.output + self.cache_read + self.cache_write
    }

    /// The larger of each field: the ledger's rule for a new reading.
    #[must_use]
    pub fn max(&self, other: &UsageFigures) -> UsageFigures {
        UsageFigures {
            input: self.input.max(other.input),
            output: self.output.max(other.output),
            cache_read: self.cache_read.max(other.cache_read),
            cache_write: self.cache_write.max(other.cache_write),
            cost: self.cost.max(other.cost),
        }
    }

    pub fn add(&mut self, other: &UsageFigures) {
        self.input += other.input;
        self.output += other.output;
        self.cache_read += other.cache_read;
        self.cache_write += other.cache_write;
        self.cost += other.cost;
    }

    /// Every field of `self` is at least that of `other`.
    #[must_use]
    pub fn covers(&self, other: &UsageFigures) -> bool {
        self.max(other) == *self
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

/// What one ratcheted write did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ratcheted {
    /// Rows new or raised by the reading.
    pub raised: usize,
    /// Rows where the reading was lower than the ledger in some field (kept).
    pub held: usize,
}

/// A tenant's budget state as stored. Config budgets are not in here.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BudgetRecord {
    /// Monthly budget in US dollars set by an operator (`/budget`); wins over config.
    pub amount: Option<f64>,
    /// The action at 100% set by an operator; wins over config.
    pub action: Option<BudgetAction>,
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

#[derive(Serialize, Deserialize)]
struct FiguresRow {
    v: u32,
    input: u64,
    output: u64,
    cache_read: u64,
    cache_write: u64,
    cost: f64,
    read_at: i64,
}

#[derive(Serialize, Deserialize)]
struct BudgetRow {
    v: u32,
    amount: Option<f64>,
    action: Option<String>,
    suspended: Option<SuspensionRow>,
}

#[derive(Serialize, Deserialize)]
struct SuspensionRow {
    since: i64,
    how: String,
    month: String,
}

fn day_key(day: NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}

fn parse_day(text: &str) -> anyhow::Result<NaiveDate> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .with_context(|| format!("corrupt usage day key {text:?}"))
}

fn encode_figures(figures: &UsageFigures, read_at: i64) -> anyhow::Result<Vec<u8>> {
    Ok(serde_json::to_vec(&FiguresRow {
        v: 1,
        input: figures.input,
        output: figures.output,
        cache_read: figures.cache_read,
        cache_write: figures.cache_write,
        cost: figures.cost,
        read_at,
    })?)
}

fn decode_figures(bytes: &[u8]) -> anyhow::Result<(UsageFigures, i64)> {
    let row: FiguresRow = serde_json::from_slice(bytes).context("corrupt usage figures")?;
    let figures = UsageFigures {
        input: row.input,
        output: row.output,
        cache_read: row.cache_read,
        cache_write: row.cache_write,
        cost: row.cost,
    };
    Ok((figures, row.read_at))
}

fn encode_budget(record: &BudgetRecord) -> anyhow::Result<Vec<u8>> {
    Ok(serde_json::to_vec(&BudgetRow {
        v: 1,
        amount: record.amount,
        action: record.action.map(|action| action.as_str().to_string()),
        suspended: record.suspended.as_ref().map(|s| SuspensionRow {
            since: s.since,
            how: s.how.as_str().to_string(),
            month: s.month.clone(),
        }),
    })?)
}

fn decode_budget(bytes: &[u8]) -> anyhow::Result<BudgetRecord> {
    let row: BudgetRow = serde_json::from_slice(bytes).context("corrupt budget record")?;
    let action = |text: &str| {
        BudgetAction::parse(text)
            .with_context(|| format!("unknown budget action {text:?} in the store"))
    };
    Ok(BudgetRecord {
        amount: row.amount,
        action: row.action.as_deref().map(action).transpose()?,
        suspended: match row.suspended {
            Some(s) => Some(Suspension {
                since: s.since,
                how: action(&s.how)?,
                month: s.month,
            }),
            None => None,
        },
    })
}

impl Store {
    /// Writes one reading of a tenant's usage, keeping per field the larger of
    /// the ledger and the reading, in one transaction. `read_at` is stored on
    /// every row read, raised or not.
    ///
    /// # Errors
    ///
    /// I/O and redb failures, a corrupt row.
    pub fn ratchet_usage(
        &self,
        tenant: &TenantId,
        days: &[(NaiveDate, UsageFigures)],
        models: &[(NaiveDate, String, UsageFigures)],
        read_at: i64,
    ) -> Result<Ratcheted> {
        self.with_db(|db| {
            let txn = db.begin_write()?;
            let mut res = Ratcheted::default();
            {
                let mut count =
                    |old: Option<UsageFigures>, reading: &UsageFigures| -> UsageFigures {
                        let base = old.unwrap_or_default();
                        let new = base.max(reading);
                        if old.is_none() || new != base {
                            res.raised += 1;
                        }
                        if !reading.covers(&base) {
                            res.held += 1;
                        }
                        new
                    };
                let mut table = txn.open_table(USAGE_DAILY)?;
                for (day, reading) in days {
                    let key = day_key(*day);
                    let old = match table.get((tenant.as_str(), key.as_str()))? {
                        Some(value) => Some(decode_figures(value.value())?.0),
                        None => None,
                    };
                    let new = count(old, reading);
                    table.insert(
                        (tenant.as_str(), key.as_str()),
                        encode_figures(&new, read_at)?.as_slice(),
                    )?;
                }
                let mut table = txn.open_table(USAGE_MODELS)?;
                for (day, model, reading) in models {
                    let key = day_key(*day);
                    let old = match table.get((tenant.as_str(), key.as_str(), model.as_str()))? {
                        Some(value) => Some(decode_figures(value.value())?.0),
                        None => None,
                    };
                    let new = count(old, reading);
                    table.insert(
                        (tenant.as_str(), key.as_str(), model.as_str()),
                        encode_figures(&new, read_at)?.as_slice(),
                    )?;
                }
            }
            txn.commit()?;
            Ok(res)
        })
    }

    /// Every tenant with at least one ledger day, by id (removed tenants whose
    /// data was kept among them).
    ///
    /// # Errors
    ///
    /// I/O and redb failures, a corrupt key.
    pub fn usage_tenants(&self) -> Result<Vec<TenantId>> {
        self.with_db(|db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(USAGE_DAILY)?;
            let mut res: Vec<TenantId> = Vec::new();
            let mut next = table.first()?.map(|(key, _)| key.value().0.to_string());
            // One range lookup per tenant: jump past every day of the one found.
            while let Some(tenant) = next {
                let id = tenant
                    .parse::<TenantId>()
                    .map_err(|err| anyhow::anyhow!("corrupt usage key {tenant:?}: {err}"))?;
                next = table
                    .range((tenant.as_str(), "~")..)?
                    .next()
                    .transpose()?
                    .map(|(key, _)| key.value().0.to_string());
                res.push(id);
            }
            Ok(res)
        })
    }

    /// A tenant's ledger days from `from` to `to` (both included), oldest first.
    ///
    /// # Errors
    ///
    /// I/O and redb failures, a corrupt row.
    pub fn usage_days(
        &self,
        tenant: &TenantId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<DayUsage>> {
        self.with_db(|db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(USAGE_DAILY)?;
            let (from, to) = (day_key(from), day_key(to));
            let mut res = Vec::new();
            for row in
                table.range((tenant.as_str(), from.as_str())..=(tenant.as_str(), to.as_str()))?
            {
                let (key, value) = row?;
                let (figures, read_at) = decode_figures(value.value())?;
                res.push(DayUsage {
                    day: parse_day(key.value().1)?,
                    figures,
                    read_at,
                });
            }
            Ok(res)
        })
    }

    /// A tenant's per-model ledger rows from `from` to `to` (both included), by day then model.
    ///
    /// # Errors
    ///
    /// I/O and redb failures, a corrupt row.
    pub fn usage_model_days(
        &self,
        tenant: &TenantId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<ModelDayUsage>> {
        self.with_db(|db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(USAGE_MODELS)?;
            let from = day_key(from);
            // Exclusive upper bound: the first key of the day after `to`.
            let after = day_key(to.succ_opt().unwrap_or(NaiveDate::MAX));
            let mut res = Vec::new();
            for row in table.range(
                (tenant.as_str(), from.as_str(), "")..(tenant.as_str(), after.as_str(), ""),
            )? {
                let (key, value) = row?;
                let (_, day, model) = key.value();
                let (figures, read_at) = decode_figures(value.value())?;
                res.push(ModelDayUsage {
                    day: parse_day(day)?,
                    model: model.to_string(),
                    figures,
                    read_at,
                });
            }
            Ok(res)
        })
    }

    /// The stored budget state of a tenant (default: none set, not suspended).
    ///
    /// # Errors
    ///
    /// I/O and redb failures, a corrupt row.
    pub fn budget_record(&self, tenant: &TenantId) -> Result<BudgetRecord> {
        self.with_db(|db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(BUDGETS)?;
            match table.get(tenant.as_str())? {
                Some(value) => Ok(decode_budget(value.value())?),
                None => Ok(BudgetRecord::default()),
            }
        })
    }

    /// Every stored budget state, by tenant id.
    ///
    /// # Errors
    ///
    /// I/O and redb failures, a corrupt row.
    pub fn budget_records(&self) -> Result<Vec<(TenantId, BudgetRecord)>> {
        self.with_db(|db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(BUDGETS)?;
            let mut res = Vec::new();
            for row in table.iter()? {
                let (key, value) = row?;
                let Ok(tenant) = key.value().parse::<TenantId>() else {
                    continue;
                };
                res.push((tenant, decode_budget(value.value())?));
            }
            Ok(res)
        })
    }

    /// Changes a tenant's budget state with `change`, read and written in one
    /// transaction; returns the new state.
    ///
    /// # Errors
    ///
    /// I/O and redb failures, a corrupt row.
    pub fn update_budget_record(
        &self,
        tenant: &TenantId,
        change: impl FnOnce(&mut BudgetRecord),
    ) -> Result<BudgetRecord> {
        self.with_db(|db| {
            let txn = db.begin_write()?;
            let record = {
                let mut table = txn.open_table(BUDGETS)?;
                let mut record = match table.get(tenant.as_str())? {
                    Some(value) => decode_budget(value.value())?,
                    None => BudgetRecord::default(),
                };
                change(&mut record);
                if record == BudgetRecord::default() {
                    table.remove(tenant.as_str())?;
                } else {
                    table.insert(tenant.as_str(), encode_budget(&record)?.as_slice())?;
                }
                record
            };
            txn.commit()?;
            Ok(record)
        })
    }

    /// Marks `thresholds` (percent, from 50, 80, 100) as notified for a tenant's
    /// month and returns those that were not marked before, in one transaction:
    /// whoever gets a threshold back is the one who notifies, once.
    ///
    /// # Errors
    ///
    /// I/O and redb failures.
    pub fn mark_budget_notices(
        &self,
        tenant: &TenantId,
        month: &str,
        thresholds: &[u8],
    ) -> Result<Vec<u8>> {
        self.with_db(|db| {
            let txn = db.begin_write()?;
            let fresh = {
                let mut table = txn.open_table(BUDGET_NOTICES)?;
                let before = table
                    .get((tenant.as_str(), month))?
                    .map_or(0, |value| value.value());
                let mut after = before;
                let mut fresh = Vec::new();
                for (bit, threshold) in THRESHOLD_BITS.iter().enumerate() {
                    if thresholds.contains(threshold) && before & (1 << bit) == 0 {
                        after |= 1 << bit;
                        fresh.push(*threshold);
                    }
                }
                if after != before {
                    table.insert((tenant.as_str(), month), after)?;
                }
                fresh
            };
            txn.commit()?;
            Ok(fresh)
        })
    }

    /// The thresholds already notified for a tenant's month.
    ///
    /// # Errors
    ///
    /// I/O and redb failures.
    pub fn budget_notices(&self, tenant: &TenantId, month: &str) -> Result<Vec<u8>> {
        self.with_db(|db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(BUDGET_NOTICES)?;
            let bits = table
                .get((tenant.as_str(), month))?
                .map_or(0, |value| value.value());
            Ok(THRESHOLD_BITS
                .iter()
                .enumerate()
                .filter(|(bit, _)| bits & (1 << bit) != 0)
                .map(|(_, t)| *t)
                .collect())
        })
    }
}

/// Removes every usage and budget row of a tenant inside the caller's transaction
/// (`Store::remove_tenant`).
pub(super) fn remove_tenant_rows(txn: &redb::WriteTransaction, tenant: &str) -> anyhow::Result<()> {
    // Day keys are digits and dashes, so "~" sorts after every one of them.
    txn.open_table(USAGE_DAILY)?
        .retain_in((tenant, "")..(tenant, "~"), |_, _| false)?;
    txn.open_table(USAGE_MODELS)?
        .retain_in((tenant, "", "")..(tenant, "~", ""), |_, _| false)?;
    txn.open_table(BUDGETS)?.remove(tenant)?;
    txn.open_table(BUDGET_NOTICES)?
        .retain_in((tenant, "")..(tenant, "~"), |_, _| false)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(input: u64, output: u64, cost: f64) -> UsageFigures {
        UsageFigures {
            input,
            output,
            cache_read: 0,
            cache_write: 0,
            cost,
        }
    }

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    /// A smaller later reading never lowers a day; each field keeps its maximum.
    #[test]
    fn the_ledger_only_goes_up() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        let acme: TenantId = "acme".parse().unwrap();
        let d1 = day("2024-02-29");
        let model = "anthropic/claude-opus-4-6".to_string();
        let first = store
            .ratchet_usage(
                &acme,
                &[(d1, figures(100, 50, 1.5))],
                &[(d1, model.clone(), figures(100, 50, 1.5))],
                10,
            )
            .unwrap();
        assert_eq!(first, Ratcheted { raised: 2, held: 0 });
        let lower = store
            .ratchet_usage(
                &acme,
                &[(d1, figures(40, 60, 1.0))],
                &[(d1, model.clone(), figures(10, 5, 0.1))],
                20,
            )
            .unwrap();
        assert_eq!(lower, Ratcheted { raised: 1, held: 2 });
        let days = store.usage_days(&acme, d1, d1).unwrap();
        assert_eq!(
            days,
            vec![DayUsage {
                day: d1,
                figures: figures(100, 60, 1.5),
                read_at: 20
            }]
        );
        let models = store.usage_model_days(&acme, d1, d1).unwrap();
        assert_eq!(
            models,
            vec![ModelDayUsage {
                day: d1,
                model,
                figures: figures(100, 50, 1.5),
                read_at: 20
            }]
        );
    }

    /// Ranges include both ends and never leak into another tenant with a longer id.
    #[test]
    fn ranges_are_per_tenant_and_inclusive() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        let (a, ab): (TenantId, TenantId) = ("a".parse().unwrap(), "a-b".parse().unwrap());
        let days: Vec<_> = ["2026-01-31", "2026-02-01", "2026-02-28", "2026-03-01"]
            .iter()
            .map(|d| (day(d), figures(1, 1, 0.5)))
            .collect();
        let models: Vec<_> = days
            .iter()
            .map(|(d, f)| (*d, "x/y".to_string(), *f))
            .collect();
        store.ratchet_usage(&a, &days, &models, 1).unwrap();
        store.ratchet_usage(&ab, &days, &models, 1).unwrap();
        let feb = store
            .usage_days(&a, day("2026-02-01"), day("2026-02-28"))
            .unwrap();
        assert_eq!(
            feb.iter().map(|d| d.day).collect::<Vec<_>>(),
            vec![day("2026-02-01"), day("2026-02-28")]
        );
        let feb_models = store
            .usage_model_days(&a, day("2026-02-01"), day("2026-02-28"))
            .unwrap();
        assert_eq!(feb_models.len(), 2);
        assert!(store.remove_tenant(&a, true).is_ok());
        assert_eq!(
            store.usage_tenants().unwrap(),
            vec![a.clone(), ab.clone()],
            "rm keeps the ledger"
        );
        assert_eq!(
            store
                .usage_days(&a, day("2026-01-01"), day("2026-12-31"))
                .unwrap()
                .len(),
            4
        );
        assert!(store.remove_tenant(&a, false).is_ok());
        assert_eq!(
            store.usage_tenants().unwrap(),
            vec![ab.clone()],
            "purge drops it"
        );
        assert!(
            store
                .usage_days(&a, day("2026-01-01"), day("2026-12-31"))
                .unwrap()
                .is_empty()
        );
        assert!(
            store
                .usage_model_days(&a, day("2026-01-01"), day("2026-12-31"))
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            store
                .usage_days(&ab, day("2026-01-01"), day("2026-12-31"))
                .unwrap()
                .len(),
            4
        );
    }

    /// Each threshold is handed out once per month.
    #[test]
    fn notices_are_handed_out_once_per_month() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        let acme: TenantId = "acme".parse().unwrap();
        assert_eq!(
            store.mark_budget_notices(&acme, "2026-11", &[50]).unwrap(),
            vec![50]
        );
        assert_eq!(
            store
                .mark_budget_notices(&acme, "2026-11", &[50, 80, 100])
                .unwrap(),
            vec![80, 100]
        );
        assert!(
            store
                .mark_budget_notices(&acme, "2026-11", &[50, 80, 100])
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            store.budget_notices(&acme, "2026-11").unwrap(),
            vec![50, 80, 100]
        );
        assert_eq!(
            store.mark_budget_notices(&acme, "2026-12", &[50]).unwrap(),
            vec![50]
        );
    }

    #[test]
    fn budget_records_round_trip_and_vanish_when_empty() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        let acme: TenantId = "acme".parse().unwrap();
        let suspension = Suspension {
            since: 5,
            how: BudgetAction::StopChannel,
            month: "2026-11".to_string(),
        };
        store
            .update_budget_record(&acme, |record| {
                record.amount = Some(50.0);
                record.suspended = Some(suspension.clone());
            })
            .unwrap();
        let record = store.budget_record(&acme).unwrap();
        assert_eq!(
            record,
            BudgetRecord {
                amount: Some(50.0),
                action: None,
                suspended: Some(suspension)
            }
        );
        store
            .update_budget_record(&acme, |record| *record = BudgetRecord::default())
            .unwrap();
        assert!(store.budget_records().unwrap().is_empty());
    }
}
