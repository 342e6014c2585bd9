//! The usage ledger and budget state: per (tenant, day) and per (tenant, day,
//! model) token and cost figures that only ever go up, the budget an operator set
//! per tenant, the budget thresholds already notified per month, and suspensions.
//!
//! Days are calendar days in the admin's usage time zone, kept as `YYYY-MM-DD`
//! keys (they sort as dates); months as `YYYY-MM`.
//!
//! Money is `Usd`, stored as decimal text (rows v2); rows v1 held floats and
//! still read.

use anyhow::{Context, bail};
use chrono::NaiveDate;
use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::store::{Result, Store, read_all};
use crate::tenant::{BudgetAction, TenantId, Usd};

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

/// The encoding version of `FiguresRow` and `BudgetRow`. v2: money as decimal
/// text (v1 rows hold floats and read as they are).
const MONEY_ROW_VERSION: u32 = 2;

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
    /// Monthly budget set by an operator (`/budget`); wins over config.
    pub amount: Option<Usd>,
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

/// What a budget check reads of a tenant's month, in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetFacts {
    /// The month's spend: the sum of its ledger days.
    pub spend: Usd,
    pub record: BudgetRecord,
    /// Thresholds (percent) already notified that month.
    pub notified: Vec<u8>,
}

/// What a budget check writes, in the same transaction as it read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BudgetMarks {
    /// Thresholds to mark notified; those already marked are dropped.
    pub notify: Vec<u8>,
    /// A suspension to record; dropped if the tenant already is suspended.
    pub suspend: Option<Suspension>,
}

#[derive(Serialize, Deserialize)]
struct FiguresRow {
    v: u32,
    input: u64,
    output: u64,
    cache_read: u64,
    cache_write: u64,
    cost: StoredUsd,
    read_at: i64,
}

/// An amount as a row holds it: decimal text (v2), or a float (v1).
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum StoredUsd {
    Text(String),
    Float(f64),
}

impl StoredUsd {
    fn new(amount: Usd) -> StoredUsd {
        StoredUsd::Text(amount.decimal().to_string())
    }

    fn usd(&self) -> anyhow::Result<Usd> {
        match self {
            StoredUsd::Text(text) => Ok(Usd::new(
                text.parse()
                    .with_context(|| format!("corrupt amount {text:?}"))?,
            )),
            StoredUsd::Float(amount) => Ok(Usd::from_f64(*amount)),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct BudgetRow {
    v: u32,
    amount: Option<StoredUsd>,
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
        v: MONEY_ROW_VERSION,
        input: figures.input,
        output: figures.output,
        cache_read: figures.cache_read,
        cache_write: figures.cache_write,
        cost: StoredUsd::new(figures.cost),
        read_at,
    })?)
}

fn decode_figures(bytes: &[u8]) -> anyhow::Result<(UsageFigures, i64)> {
    let row: FiguresRow = serde_json::from_slice(bytes).context("corrupt usage figures")?;
    if row.v > MONEY_ROW_VERSION {
        bail!(
            "usage figures have encoding v{}, newer than this binary",
            row.v
        );
    }
    let figures = UsageFigures {
        input: row.input,
        output: row.output,
        cache_read: row.cache_read,
        cache_write: row.cache_write,
        cost: row.cost.usd()?,
    };
    Ok((figures, row.read_at))
}

fn encode_budget(record: &BudgetRecord) -> anyhow::Result<Vec<u8>> {
    Ok(serde_json::to_vec(&BudgetRow {
        v: MONEY_ROW_VERSION,
        amount: record.amount.map(StoredUsd::new),
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
    if row.v > MONEY_ROW_VERSION {
        bail!(
            "a budget record has encoding v{}, newer than this binary",
            row.v
        );
    }
    let action = |text: &str| {
        BudgetAction::parse(text)
            .with_context(|| format!("unknown budget action {text:?} in the store"))
    };
    Ok(BudgetRecord {
        amount: row.amount.as_ref().map(StoredUsd::usd).transpose()?,
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
            read_all(db, BUDGETS, |key, value| {
                let Ok(tenant) = key.value().parse::<TenantId>() else {
                    return Ok(None);
                };
                Ok(Some((tenant, decode_budget(value.value())?)))
            })
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

    /// What a budget check of a tenant's month (`YYYY-MM`, its days `from` to
    /// `to`) starts from: the month's spend, the stored budget, the thresholds
    /// notified, read in one transaction.
    ///
    /// # Errors
    ///
    /// I/O and redb failures, a corrupt row.
    pub fn budget_facts(
        &self,
        tenant: &TenantId,
        month: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<BudgetFacts> {
        self.with_db(|db| {
            let txn = db.begin_read()?;
            read_budget_facts(
                &txn.open_table(USAGE_DAILY)?,
                &txn.open_table(BUDGETS)?,
                &txn.open_table(BUDGET_NOTICES)?,
                tenant,
                month,
                (from, to),
            )
        })
    }

    /// One budget check of a tenant's month, atomic: reads the facts (as
    /// `budget_facts`), lets `decide` say what to mark, and writes the new
    /// notices and the suspension in the same write transaction. Two checks at
    /// once (two processes, two tasks) are serialized by the store, so a
    /// threshold is handed out once and a tenant suspended once. Returns the
    /// facts read and the marks actually written.
    ///
    /// # Errors
    ///
    /// I/O and redb failures, a corrupt row.
    pub fn check_budget(
        &self,
        tenant: &TenantId,
        month: &str,
        from: NaiveDate,
        to: NaiveDate,
        decide: impl FnOnce(&BudgetFacts) -> BudgetMarks,
    ) -> Result<(BudgetFacts, BudgetMarks)> {
        self.with_db(|db| {
            let txn = db.begin_write()?;
            let res = {
                let mut budgets = txn.open_table(BUDGETS)?;
                let mut notices = txn.open_table(BUDGET_NOTICES)?;
                let facts = read_budget_facts(
                    &txn.open_table(USAGE_DAILY)?,
                    &budgets,
                    &notices,
                    tenant,
                    month,
                    (from, to),
                )?;
                let wanted = decide(&facts);
                let mut marks = BudgetMarks::default();
                let before = notice_bits(&facts.notified);
                let mut after = before;
                for (bit, threshold) in THRESHOLD_BITS.iter().enumerate() {
                    if wanted.notify.contains(threshold) && before & (1 << bit) == 0 {
                        after |= 1 << bit;
                        marks.notify.push(*threshold);
                    }
                }
                if after != before {
                    notices.insert((tenant.as_str(), month), after)?;
                }
                if let Some(suspension) = wanted.suspend
                    && facts.record.suspended.is_none()
                {
                    let record = BudgetRecord {
                        suspended: Some(suspension.clone()),
                        ..facts.record.clone()
                    };
                    budgets.insert(tenant.as_str(), encode_budget(&record)?.as_slice())?;
                    marks.suspend = Some(suspension);
                }
                (facts, marks)
            };
            txn.commit()?;
            Ok(res)
        })
    }
}

/// The facts of a budget check, from open tables of a read or a write transaction.
fn read_budget_facts(
    days: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    budgets: &impl ReadableTable<&'static str, &'static [u8]>,
    notices: &impl ReadableTable<(&'static str, &'static str), u8>,
    tenant: &TenantId,
    month: &str,
    (from, to): (NaiveDate, NaiveDate),
) -> anyhow::Result<BudgetFacts> {
    let (from, to) = (day_key(from), day_key(to));
    let mut spend = Usd::ZERO;
    for row in days.range((tenant.as_str(), from.as_str())..=(tenant.as_str(), to.as_str()))? {
        spend += decode_figures(row?.1.value())?.0.cost;
    }
    let record = match budgets.get(tenant.as_str())? {
        Some(value) => decode_budget(value.value())?,
        None => BudgetRecord::default(),
    };
    let bits = notices
        .get((tenant.as_str(), month))?
        .map_or(0, |value| value.value());
    Ok(BudgetFacts {
        spend,
        record,
        notified: THRESHOLD_BITS
            .iter()
            .enumerate()
            .filter(|(bit, _)| bits & (1 << bit) != 0)
            .map(|(_, t)| *t)
            .collect(),
    })
}

fn notice_bits(thresholds: &[u8]) -> u8 {
    THRESHOLD_BITS
        .iter()
        .enumerate()
        .filter(|(_, t)| thresholds.contains(t))
        .fold(0, |bits, (bit, _)| bits | (1 << bit))
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
            cost: Usd::from_f64(cost),
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
        // One reading of day `d1`: its total and the one model's share.
        let ratchet = |day: UsageFigures, by_model: UsageFigures, at: i64| {
            store
                .ratchet_usage(&acme, &[(d1, day)], &[(d1, model.clone(), by_model)], at)
                .unwrap()
        };
        let first = ratchet(figures(100, 50, 1.5), figures(100, 50, 1.5), 10);
        assert_eq!(first, Ratcheted { raised: 2, held: 0 });
        let lower = ratchet(figures(40, 60, 1.0), figures(10, 5, 0.1), 20);
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
        let (from, to) = (day("2026-11-01"), day("2026-11-30"));
        let mark = |month: &str, thresholds: &[u8]| {
            let marks = BudgetMarks {
                notify: thresholds.to_vec(),
                suspend: None,
            };
            store
                .check_budget(&acme, month, from, to, |_| marks)
                .unwrap()
                .1
                .notify
        };
        assert_eq!(mark("2026-11", &[50]), vec![50]);
        assert_eq!(mark("2026-11", &[50, 80, 100]), vec![80, 100]);
        assert!(mark("2026-11", &[50, 80, 100]).is_empty());
        assert_eq!(
            store
                .budget_facts(&acme, "2026-11", from, to)
                .unwrap()
                .notified,
            vec![50, 80, 100]
        );
        assert_eq!(mark("2026-12", &[50]), vec![50]);
    }

    /// A check reads the month's spend and records a suspension once.
    #[test]
    fn a_check_sums_the_month_and_suspends_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        let acme: TenantId = "acme".parse().unwrap();
        let days: Vec<_> = ["2026-10-31", "2026-11-01", "2026-11-30"]
            .iter()
            .map(|d| (day(d), figures(1, 1, 0.1)))
            .collect();
        store.ratchet_usage(&acme, &days, &[], 1).unwrap();
        let suspension = Suspension {
            since: 5,
            how: BudgetAction::StopCell,
            month: "2026-11".to_string(),
        };
        let check = || {
            store
                .check_budget(
                    &acme,
                    "2026-11",
                    day("2026-11-01"),
                    day("2026-11-30"),
                    |_| BudgetMarks {
                        notify: vec![100],
                        suspend: Some(suspension.clone()),
                    },
                )
                .unwrap()
        };
        let (facts, marks) = check();
        assert_eq!(facts.spend, "0.2".parse().unwrap());
        assert_eq!(marks.suspend, Some(suspension.clone()));
        let (facts, marks) = check();
        assert_eq!(facts.record.suspended, Some(suspension));
        assert_eq!(marks, BudgetMarks::default());
    }

    /// Rows written before money was decimal (v1, floats) still read.
    #[test]
    fn v1_rows_with_float_money_still_read() {
        let (figures_v1, read_at) = decode_figures(
            br#"{"v":1,"input":1,"output":2,"cache_read":0,"cache_write":0,"cost":1.5,"read_at":7}"#,
        )
        .unwrap();
        assert_eq!((figures_v1, read_at), (figures(1, 2, 1.5), 7));
        let budget =
            decode_budget(br#"{"v":1,"amount":49.9,"action":null,"suspended":null}"#).unwrap();
        assert_eq!(budget.amount, Some(Usd::cents(4990)));
        let written = encode_figures(&figures(1, 2, 0.1), 7).unwrap();
        assert!(
            String::from_utf8_lossy(&written).contains(r#""cost":"0.1""#),
            "v2 writes decimal text"
        );
        assert_eq!(decode_figures(&written).unwrap().0, figures(1, 2, 0.1));
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
                record.amount = Some(Usd::cents(5000));
                record.suspended = Some(suspension.clone());
            })
            .unwrap();
        let record = store.budget_record(&acme).unwrap();
        assert_eq!(
            record,
            BudgetRecord {
                amount: Some(Usd::cents(5000)),
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
