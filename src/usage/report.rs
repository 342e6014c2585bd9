//! A tenant's (or the fleet's) per-day, per-model usage rows as CSV: RFC 4180
//! by the `csv` crate, with model names a spreadsheet would run as formulas
//! defused. The rows themselves are `fleet::Summary`'s.

use std::borrow::Cow;

use crate::fleet::Summary;

/// The CSV header, one row per (day, model).
pub const CSV_HEADER: &str = "tenant,date,model,input_tokens,output_tokens,cache_read_tokens,cache_write_tokens,total_tokens,cost_usd";

/// Decimals of the cost column: sub-cent costs of single days and models show.
const COST_DECIMALS: u32 = 6;

/// The per-day, per-model rows of a summary as CSV (RFC 4180, `\n` line ends).
/// Text a spreadsheet would run as a formula starts with `'` (see `defuse`).
#[must_use]
pub fn csv(summary: &Summary) -> String {
    csv_all(std::slice::from_ref(summary))
}

/// The rows of every summary under one header (the fleet's CSV).
#[must_use]
pub fn csv_all(summaries: &[Summary]) -> String {
    let mut writer = writer();
    let mut records = vec![
        CSV_HEADER
            .split(',')
            .map(str::to_string)
            .collect::<Vec<_>>(),
    ];
    for summary in summaries {
        for row in &summary.rows {
            let f = &row.figures;
            records.push(vec![
                summary.tenant.to_string(),
                row.day.to_string(),
                row.model.clone(),
                f.input.to_string(),
                f.output.to_string(),
                f.cache_read.to_string(),
                f.cache_write.to_string(),
                f.tokens().to_string(),
                format!(
                    "{:.prec$}",
                    f.cost.round(COST_DECIMALS).decimal(),
                    prec = COST_DECIMALS as usize
                ),
            ]);
        }
    }
    for record in records {
        // Writing to a `Vec` cannot fail.
        let _ = writer.write_record(record.iter().map(|field| defuse(field).into_owned()));
    }
    into_text(writer)
}

fn writer() -> csv::Writer<Vec<u8>> {
    csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new())
}

fn into_text(writer: csv::Writer<Vec<u8>>) -> String {
    let bytes = writer.into_inner().unwrap_or_default();
    String::from_utf8(bytes).unwrap_or_default()
}

/// Characters that make a spreadsheet read a cell as a formula (OWASP, "CSV
/// Injection"): a model name such as `=HYPERLINK(…)` from a cell's usage
/// report must open as text, not run.
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// A would-be formula gets a leading `'` (OWASP), so the spreadsheet shows it
/// as text. A field that is a plain number (`-1.500000`, a negative cost) is
/// left as it is: it is no formula, and a quote would turn it into text and
/// break sums. Quoting is the `csv` writer's.
fn defuse(text: &str) -> Cow<'_, str> {
    let is_number = text.parse::<f64>().is_ok_and(f64::is_finite);
    if text.starts_with(FORMULA_STARTS) && !is_number {
        Cow::Owned(format!("'{text}"))
    } else {
        Cow::Borrowed(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    use crate::config::Pricing;
    use crate::fleet::{
        DayUsage, Ledger, ModelDayUsage, Period, UNATTRIBUTED, UsageFigures, bill, rank, summarize,
    };
    use crate::tenant::{TenantId, Usd};

    /// One field as the CSV writer writes it (defused and quoted).
    fn csv_field(text: &str) -> String {
        let mut writer = writer();
        writer.write_record([defuse(text).as_ref()]).unwrap();
        into_text(writer).trim_end_matches('\n').to_string()
    }

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    fn figures(input: u64, output: u64, cost: f64) -> UsageFigures {
        UsageFigures {
            input,
            output,
            cache_read: 0,
            cache_write: 0,
            cost: Usd::from_f64(cost),
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
        monthly_fee: Usd::ZERO,
    };

    #[test]
    fn the_fee_is_pro_rata_per_month() {
        let fee = Pricing {
            markup_percent: 0.0,
            monthly_fee: Usd::cents(2900),
        };
        assert_eq!(
            bill(Usd::ZERO, fee, &period("2024-02-01", "2024-02-29")).fee,
            Usd::cents(2900)
        );
        // Half of a 30-day month and a whole 31-day one.
        let fee = Pricing {
            markup_percent: 25.0,
            monthly_fee: Usd::cents(3000),
        };
        let bill = bill(Usd::cents(1000), fee, &period("2026-04-16", "2026-05-31"));
        assert_eq!(bill.fee, Usd::cents(4500), "{bill:?}");
        assert_eq!(bill.usage, Usd::cents(1250));
        assert_eq!(bill.total, Usd::cents(5750));
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
        let models: Vec<(&str, Usd)> = summary
            .models
            .iter()
            .map(|(m, f)| (m.as_str(), f.cost))
            .collect();
        assert_eq!(
            models,
            vec![
                ("a/cheap", Usd::cents(200)),
                ("b/dear", Usd::cents(200)),
                (UNATTRIBUTED, Usd::cents(50))
            ]
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

    /// A month of tiny per-call costs: the days of the summary add up to its
    /// total, and the bill to the cent, exactly.
    #[test]
    fn the_days_of_a_month_add_up_to_its_total() {
        let acme: TenantId = "acme".parse().unwrap();
        let march = period("2026-03-01", "2026-03-31");
        let per_call = "0.000015".parse::<Usd>().unwrap();
        let ledger = Ledger {
            days: march
                .days()
                .map(|d| DayUsage {
                    day: d,
                    figures: UsageFigures {
                        cost: std::iter::repeat_n(per_call, 1001).sum(),
                        ..UsageFigures::default()
                    },
                    read_at: 1,
                })
                .collect(),
            models: vec![],
        };
        let summary = summarize(&acme, march, &ledger, NONE);
        let days: Usd = summary.daily.iter().map(|(_, f)| f.cost).sum();
        assert_eq!(days, summary.totals.cost);
        assert_eq!(summary.totals.cost, "0.465465".parse().unwrap());
        assert_eq!(summary.bill.total.to_string(), "$0.47");
        let floats: f64 = (0..31 * 1001).map(|_| 0.000015_f64).sum();
        assert_ne!(floats, 0.465465, "f64 would be off");
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
                    monthly_fee: Usd::ZERO,
                },
            )
        };
        let fleet = rank(p, &[make("b", 1.0), make("a", 3.0), make("c", 1.0)]);
        let order: Vec<&str> = fleet.tenants.iter().map(|t| t.tenant.as_str()).collect();
        assert_eq!(order, vec!["a", "b", "c"]);
        assert_eq!(fleet.cost, Usd::cents(500));
        assert_eq!(fleet.billable, Usd::cents(550));
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
