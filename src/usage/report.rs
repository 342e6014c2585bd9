//! A tenant's usage over a period, made from its ledger: totals, cost per
//! model, cost per day, the billable amount under its pricing, and "as of";
//! the fleet ranked by cost; and the per-day, per-model rows as CSV.

use std::collections::BTreeMap;

use chrono::NaiveDate;

use crate::config::Pricing;
use crate::fleet::{Ledger, ModelDayUsage, UNATTRIBUTED, UsageFigures};
use crate::tenant::TenantId;
use crate::usage::period::Period;

/// Token counts below this many and costs below `COST_EPSILON` are no remainder.
const COST_EPSILON: f64 = 1e-9;

/// What a tenant is billed for a period.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bill {
    /// The gateway's cost (US dollars).
    pub cost: f64,
    pub markup_percent: f64,
    /// Cost with markup.
    pub usage: f64,
    /// The monthly fee, pro rata for the days of each month the period covers.
    pub fee: f64,
    /// `usage + fee`.
    pub total: f64,
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
    pub cost: f64,
    pub tokens: u64,
    pub billable: f64,
    pub as_of: Option<i64>,
}

/// Every tenant over a period, most expensive first, with the totals.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetSummary {
    pub period: Period,
    pub tenants: Vec<Ranked>,
    pub cost: f64,
    pub billable: f64,
}

/// The bill for `cost` over `period`: markup on the cost, plus the monthly fee
/// for each month the period touches, pro rata for the days it covers.
#[must_use]
pub fn bill(cost: f64, pricing: Pricing, period: &Period) -> Bill {
    let usage = cost * (1.0 + pricing.markup_percent / 100.0);
    let fee = period.months().iter().fold(0.0, |sum, part| {
        let whole = Period::month_of(part.start).len_days() as f64;
        sum + pricing.monthly_fee * part.len_days() as f64 / whole
    });
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
            cost: (day.figures.cost - attributed.cost).max(0.0),
        };
        if rest.tokens() > 0 || rest.cost > COST_EPSILON {
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
    models.sort_by(|a, b| b.1.cost.total_cmp(&a.1.cost).then_with(|| a.0.cmp(&b.0)));
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
    tenants.sort_by(|a, b| {
        b.cost
            .total_cmp(&a.cost)
            .then_with(|| a.tenant.cmp(&b.tenant))
    });
    // `fold` from +0.0: an empty `sum` of floats is -0.0, which prints as "$-0.00".
    let cost = tenants.iter().fold(0.0, |sum, t| sum + t.cost);
    let billable = tenants.iter().fold(0.0, |sum, t| sum + t.billable);
    FleetSummary {
        period,
        tenants,
        cost,
        billable,
    }
}

/// The CSV header, one row per (day, model).
pub const CSV_HEADER: &str = "tenant,date,model,input_tokens,output_tokens,cache_read_tokens,cache_write_tokens,total_tokens,cost_usd";

/// The per-day, per-model rows of a summary as CSV (RFC 4180, `\n` line ends).
/// Text a spreadsheet would run as a formula starts with `'` (see `csv_field`).
#[must_use]
pub fn csv(summary: &Summary) -> String {
    csv_all(std::slice::from_ref(summary))
}

/// The rows of every summary under one header (the fleet's CSV).
#[must_use]
pub fn csv_all(summaries: &[Summary]) -> String {
    let mut out = String::from(CSV_HEADER);
    out.push('\n');
    for summary in summaries {
        csv_rows(summary, &mut out);
    }
    out
}

fn csv_rows(summary: &Summary, out: &mut String) {
    for row in &summary.rows {
        let f = &row.figures;
        let fields = [
            summary.tenant.to_string(),
            row.day.to_string(),
            row.model.clone(),
            f.input.to_string(),
            f.output.to_string(),
            f.cache_read.to_string(),
            f.cache_write.to_string(),
            f.tokens().to_string(),
            format!("{:.6}", f.cost),
        ];
        let fields: Vec<String> = fields.iter().map(|field| csv_field(field)).collect();
        out.push_str(&fields.join(","));
        out.push('\n');
    }
}

/// Characters that make a spreadsheet read a cell as a formula (OWASP, "CSV
/// Injection"): a model name such as `=HYPERLINK(…)` from a cell's usage
/// report must open as text, not run.
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// One CSV field: a would-be formula gets a leading `'` (OWASP), so the
/// spreadsheet shows it as text; then RFC 4180 quoting. A field that is a
/// plain number (`-1.500000`, a negative cost) is left as it is: it is no
/// formula, and a quote would turn it into text and break sums.
fn csv_field(text: &str) -> String {
    let is_number = text.parse::<f64>().is_ok_and(f64::is_finite);
    let text = if text.starts_with(FORMULA_STARTS) && !is_number {
        format!("'{text}")
    } else {
        text.to_string()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::DayUsage;

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    fn figures(input: u64, output: u64, cost: f64) -> UsageFigures {
        UsageFigures {
            input,
            output,
            cache_read: 0,
            cache_write: 0,
            cost,
        }
    }

    fn period(start: &str, end: &str) -> Period {
        Period {
            start: day(start),
            end: day(end),
        }
    }

    const NONE: Pricing = Pricing {
        markup_percent: 0.0,
        monthly_fee: 0.0,
    };

    #[test]
    fn the_fee_is_pro_rata_per_month() {
        let fee = Pricing {
            markup_percent: 0.0,
            monthly_fee: 29.0,
        };
        assert!((bill(0.0, fee, &period("2024-02-01", "2024-02-29")).fee - 29.0).abs() < 1e-9);
        // Half of a 30-day month and a whole 31-day one.
        let fee = Pricing {
            markup_percent: 25.0,
            monthly_fee: 30.0,
        };
        let bill = bill(10.0, fee, &period("2026-04-16", "2026-05-31"));
        assert!((bill.fee - 45.0).abs() < 1e-9, "{bill:?}");
        assert!((bill.usage - 12.5).abs() < 1e-9);
        assert!((bill.total - 57.5).abs() < 1e-9);
    }

    /// Days are zero-filled, models ranked by cost, and a day's total beyond its
    /// models appears as unattributed; rows outside the period are left out.
    #[test]
    fn a_summary_adds_up_days_and_models() {
        let acme: TenantId = "acme".parse().unwrap();
        let ledger = Ledger {
            days: vec![
                DayUsage {
                    day: day("2026-02-27"),
                    figures: figures(9, 9, 9.0),
                    read_at: 1,
                },
                DayUsage {
                    day: day("2026-02-28"),
                    figures: figures(300, 30, 3.0),
                    read_at: 7,
                },
                DayUsage {
                    day: day("2026-03-01"),
                    figures: figures(100, 10, 1.5),
                    read_at: 5,
                },
            ],
            models: vec![
                ModelDayUsage {
                    day: day("2026-02-28"),
                    model: "a/cheap".into(),
                    figures: figures(200, 20, 1.0),
                    read_at: 7,
                },
                ModelDayUsage {
                    day: day("2026-02-28"),
                    model: "b/dear".into(),
                    figures: figures(100, 10, 2.0),
                    read_at: 7,
                },
                ModelDayUsage {
                    day: day("2026-03-01"),
                    model: "a/cheap".into(),
                    figures: figures(60, 10, 1.0),
                    read_at: 5,
                },
            ],
        };
        let summary = summarize(&acme, period("2026-02-28", "2026-03-02"), &ledger, NONE);
        assert_eq!(summary.totals, figures(400, 40, 4.5));
        assert_eq!(summary.daily.len(), 3);
        assert_eq!(
            summary.daily[2],
            (day("2026-03-02"), UsageFigures::default())
        );
        let models: Vec<(&str, f64)> = summary
            .models
            .iter()
            .map(|(m, f)| (m.as_str(), f.cost))
            .collect();
        assert_eq!(
            models,
            vec![("a/cheap", 2.0), ("b/dear", 2.0), (UNATTRIBUTED, 0.5)]
        );
        assert_eq!(summary.rows.len(), 4);
        assert_eq!(
            (summary.rows[2].model.as_str(), summary.rows[2].figures),
            (UNATTRIBUTED, figures(40, 0, 0.5))
        );
        assert_eq!(summary.as_of, Some(7));
        let text = csv(&summary);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], CSV_HEADER);
        assert_eq!(lines[1], "acme,2026-02-28,a/cheap,200,20,0,0,220,1.000000");
        assert_eq!(
            lines[3],
            "acme,2026-03-01,(unattributed),40,0,0,0,40,0.500000"
        );
        assert_eq!(lines.len(), 5);
    }

    #[test]
    fn the_fleet_is_ranked_by_cost() {
        let p = period("2026-03-01", "2026-03-31");
        let make = |id: &str, cost: f64| {
            let ledger = Ledger {
                days: vec![DayUsage {
                    day: day("2026-03-02"),
                    figures: figures(1, 1, cost),
                    read_at: 1,
                }],
                models: vec![],
            };
            summarize(
                &id.parse().unwrap(),
                p,
                &ledger,
                Pricing {
                    markup_percent: 10.0,
                    monthly_fee: 0.0,
                },
            )
        };
        let fleet = rank(p, &[make("b", 1.0), make("a", 3.0), make("c", 1.0)]);
        let order: Vec<&str> = fleet.tenants.iter().map(|t| t.tenant.as_str()).collect();
        assert_eq!(order, vec!["a", "b", "c"]);
        assert!((fleet.cost - 5.0).abs() < 1e-9);
        assert!((fleet.billable - 5.5).abs() < 1e-9);
    }

    #[test]
    fn csv_quotes_odd_model_names() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("plain/model"), "plain/model");
    }

    // See: issue 10 (CSV formula injection).
    /// A field a spreadsheet would run as a formula starts with `'`; numbers,
    /// negative ones too, stay numbers.
    #[test]
    fn csv_defuses_formulas_and_keeps_numbers() {
        for (field, expected) in [
            (
                "=HYPERLINK(\"http://x\")",
                "\"'=HYPERLINK(\"\"http://x\"\")\"",
            ),
            ("=1+2", "'=1+2"),
            ("+1+2", "'+1+2"),
            ("-1+2", "'-1+2"),
            ("@SUM(A1:A2)", "'@SUM(A1:A2)"),
            ("\t=1", "'\t=1"),
            ("\r=1", "\"'\r=1\""),
            ("-cmd|' /C calc'!A0", "'-cmd|' /C calc'!A0"),
            ("=a,b", "\"'=a,b\""),
            ("-inf", "'-inf"),
            ("-NaN", "'-NaN"),
            // Numbers are no formulas.
            ("-1.500000", "-1.500000"),
            ("+3", "+3"),
            ("-0", "-0"),
            ("1.000000", "1.000000"),
            ("220", "220"),
            // Only the first character counts.
            ("a=b", "a=b"),
            ("anthropic/claude-opus-4-6", "anthropic/claude-opus-4-6"),
        ] {
            assert_eq!(csv_field(field), expected, "field {field:?}");
        }
    }

    // See: issue 10 (CSV formula injection).
    /// A whole row: the model name defused, a negative cost kept as a number.
    #[test]
    fn csv_rows_defuse_model_names_and_keep_negative_costs() {
        let acme: TenantId = "acme".parse().unwrap();
        let ledger = Ledger {
            days: vec![DayUsage {
                day: day("2026-03-01"),
                figures: figures(10, 1, -0.25),
                read_at: 1,
            }],
            models: vec![ModelDayUsage {
                day: day("2026-03-01"),
                model: "=HYPERLINK(\"http://evil\",\"x\")".into(),
                figures: figures(10, 1, -0.25),
                read_at: 1,
            }],
        };
        let summary = summarize(&acme, period("2026-03-01", "2026-03-01"), &ledger, NONE);
        let text = csv(&summary);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            vec![
                CSV_HEADER,
                "acme,2026-03-01,\"'=HYPERLINK(\"\"http://evil\"\",\"\"x\"\")\",10,1,0,0,11,-0.250000",
            ]
        );
    }
}
