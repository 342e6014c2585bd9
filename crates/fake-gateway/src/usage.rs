//! The usage payloads, from the figures programmed with `PUT /__fake/usage`: the
//! date range of a query (`startDate`/`endDate`, `range`, `days`), `usage.cost` per
//! day and `sessions.usage` per model, provider, agent and day.

use chrono::{Duration as ChronoDuration, NaiveDate};
use serde_json::{Value, json};

use crate::state::{UsageEntry, now_ms};

/// The days a usage query covers, oldest first.
pub struct DateRange {
    pub start: NaiveDate,
    pub end: NaiveDate,
}

impl DateRange {
    fn days(&self) -> impl Iterator<Item = NaiveDate> + '_ {
        self.start.iter_days().take_while(|day| *day <= self.end)
    }

    fn len(&self) -> i64 {
        (self.end - self.start).num_days() + 1
    }
}

/// Reads `startDate`/`endDate`, else `range`, else `days` (default 30 ending today),
/// as `usage.cost` does (PROTOCOL.md §3.8). Time zones are treated as UTC.
///
/// # Errors
/// The message of the `INVALID_REQUEST`.
pub fn date_range(
    params: &Value,
    today: NaiveDate,
    earliest: Option<NaiveDate>,
) -> Result<DateRange, String> {
    let start = params.get("startDate").and_then(Value::as_str);
    let end = params.get("endDate").and_then(Value::as_str);
    match (start, end) {
        (Some(start), Some(end)) => {
            let parse = |text: &str| NaiveDate::parse_from_str(text, "%Y-%m-%d");
            let (Ok(start), Ok(end)) = (parse(start), parse(end)) else {
                return Err("startDate and endDate must be YYYY-MM-DD".to_string());
            };
            if end < start {
                return Err("endDate must not be before startDate".to_string());
            }
            if (end - start).num_days() >= 36_600 {
                return Err("date range too large".to_string());
            }
            return Ok(DateRange { start, end });
        }
        (None, None) => {}
        _ => return Err("startDate and endDate must be provided together".to_string()),
    }
    let days = match params.get("range").and_then(Value::as_str) {
        Some("7d") => 7,
        Some("30d") => 30,
        Some("90d") => 90,
        Some("1y") => 365,
        Some("all") => earliest.map_or(1, |first| (today - first).num_days().max(0) + 1),
        _ => match params.get("days") {
            Some(Value::Number(number)) => number.as_f64().unwrap_or(30.0).floor() as i64,
            Some(Value::String(text)) => text.trim().parse::<i64>().unwrap_or(30),
            _ => 30,
        },
    };
    let days = days.clamp(1, 36_600);
    Ok(DateRange {
        start: today - ChronoDuration::days(days - 1),
        end: today,
    })
}

#[derive(Default, Clone, Copy)]
struct Totals {
    input: u64,
    output: u64,
    cache_read: u64,
    cache_write: u64,
    input_cost: f64,
    output_cost: f64,
    cache_read_cost: f64,
    cache_write_cost: f64,
    total_cost: f64,
}

impl Totals {
    fn add(&mut self, entry: &UsageEntry) {
        self.input += entry.input;
        self.output += entry.output;
        self.cache_read += entry.cache_read;
        self.cache_write += entry.cache_write;
        self.input_cost += entry.input_cost;
        self.output_cost += entry.output_cost;
        self.cache_read_cost += entry.cache_read_cost;
        self.cache_write_cost += entry.cache_write_cost;
        self.total_cost += entry.total_cost.unwrap_or(
            entry.input_cost + entry.output_cost + entry.cache_read_cost + entry.cache_write_cost,
        );
    }

    fn tokens(&self) -> u64 {
        self.input + self.output + self.cache_read + self.cache_write
    }

    fn json(&self) -> Value {
        json!({"input": self.input, "output": self.output, "cacheRead": self.cache_read,
            "cacheWrite": self.cache_write, "totalTokens": self.tokens(), "totalCost": self.total_cost,
            "inputCost": self.input_cost, "outputCost": self.output_cost,
            "cacheReadCost": self.cache_read_cost, "cacheWriteCost": self.cache_write_cost,
            "missingCostEntries": 0})
    }
}

fn entries_in<'a>(
    usage: &'a [UsageEntry],
    range: &DateRange,
) -> impl Iterator<Item = &'a UsageEntry> {
    let (start, end) = (range.start, range.end);
    usage
        .iter()
        .filter(move |entry| entry.date >= start && entry.date <= end)
}

/// `usage.cost`: per-day totals, zero-filled (transcripts/usage-cost.jsonl).
#[must_use]
pub fn usage_cost(usage: &[UsageEntry], range: &DateRange) -> Value {
    let mut totals = Totals::default();
    let daily: Vec<Value> = range
        .days()
        .map(|day| {
            let mut day_totals = Totals::default();
            for entry in usage.iter().filter(|entry| entry.date == day) {
                day_totals.add(entry);
            }
            let mut value = day_totals.json();
            value["date"] = json!(day.format("%Y-%m-%d").to_string());
            value
        })
        .collect();
    for entry in entries_in(usage, range) {
        totals.add(entry);
    }
    json!({"updatedAt": now_ms(), "days": range.len(), "daily": daily, "totals": totals.json(),
        "cacheStatus": {"status": "fresh", "cachedFiles": 0, "pendingFiles": 0, "staleFiles": 0}})
}

/// `sessions.usage`: the aggregates a biller needs (`byModel`, `modelDaily`,
/// `costDaily`, `daily`, `byAgent`), shaped like `src/shared/usage-aggregates.ts`.
#[must_use]
pub fn sessions_usage(usage: &[UsageEntry], range: &DateRange) -> Value {
    use std::collections::BTreeMap;
    let mut totals = Totals::default();
    let mut by_model: BTreeMap<(String, String), (Totals, u64)> = BTreeMap::new();
    let mut by_provider: BTreeMap<String, (Totals, u64)> = BTreeMap::new();
    let mut by_agent: BTreeMap<String, Totals> = BTreeMap::new();
    let mut by_day: BTreeMap<NaiveDate, (Totals, u64)> = BTreeMap::new();
    let mut model_daily: BTreeMap<(NaiveDate, String, String), (Totals, u64)> = BTreeMap::new();
    let mut messages = 0;
    for entry in entries_in(usage, range) {
        totals.add(entry);
        messages += entry.count;
        let model = by_model
            .entry((entry.provider.clone(), entry.model.clone()))
            .or_default();
        model.0.add(entry);
        model.1 += entry.count;
        let provider = by_provider.entry(entry.provider.clone()).or_default();
        provider.0.add(entry);
        provider.1 += entry.count;
        by_agent
            .entry(entry.agent_id.clone())
            .or_default()
            .add(entry);
        let day = by_day.entry(entry.date).or_default();
        day.0.add(entry);
        day.1 += entry.count;
        let model_day = model_daily
            .entry((entry.date, entry.provider.clone(), entry.model.clone()))
            .or_default();
        model_day.0.add(entry);
        model_day.1 += entry.count;
    }
    let by_cost = |a: &Value, b: &Value| {
        let cost = |v: &Value| v["totals"]["totalCost"].as_f64().unwrap_or(0.0);
        cost(b).total_cmp(&cost(a))
    };
    let mut by_model_json: Vec<Value> = by_model
        .iter()
        .map(|((provider, model), (t, count))| {
            json!({"provider": provider, "model": model, "count": count, "totals": t.json()})
        })
        .collect();
    by_model_json.sort_by(by_cost);
    let mut by_provider_json: Vec<Value> = by_provider
        .iter()
        .map(|(provider, (t, count))| json!({"provider": provider, "count": count, "totals": t.json()}))
        .collect();
    by_provider_json.sort_by(by_cost);
    let by_agent_json: Vec<Value> = by_agent
        .iter()
        .map(|(agent, t)| json!({"agentId": agent, "totals": t.json()}))
        .collect();
    let date = |day: &NaiveDate| day.format("%Y-%m-%d").to_string();
    let cost_daily: Vec<Value> = by_day
        .iter()
        .map(|(day, (t, _))| {
            let mut value = t.json();
            value["date"] = json!(date(day));
            value
        })
        .collect();
    let daily: Vec<Value> = by_day
        .iter()
        .map(|(day, (t, count))| {
            json!({"date": date(day), "tokens": t.tokens(), "cost": t.total_cost, "messages": count,
                "toolCalls": 0, "errors": 0})
        })
        .collect();
    let model_daily_json: Vec<Value> = model_daily
        .iter()
        .map(|((day, provider, model), (t, count))| {
            json!({"date": date(day), "provider": provider, "model": model, "tokens": t.tokens(),
                "cost": t.total_cost, "count": count})
        })
        .collect();
    let session_count = u64::from(messages > 0);
    json!({
        "updatedAt": now_ms(),
        "startDate": date(&range.start),
        "endDate": date(&range.end),
        "sessions": [],
        "totals": totals.json(),
        "aggregates": {
            "sessionCount": session_count,
            "messages": {"total": messages * 2, "user": messages, "assistant": messages,
                "toolCalls": 0, "toolResults": 0, "errors": 0},
            "tools": {"totalCalls": 0, "uniqueTools": 0, "tools": []},
            "byModel": by_model_json,
            "byProvider": by_provider_json,
            "byAgent": by_agent_json,
            "byChannel": [],
            "byCreator": [],
            "costDaily": cost_daily,
            "dailyLatency": [],
            "modelDaily": model_daily_json,
            "daily": daily,
        },
        "creatorOptions": [],
        "cacheStatus": {"status": "fresh", "cachedFiles": 0, "pendingFiles": 0, "staleFiles": 0, "refreshedAt": now_ms()},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    fn entry(date: &str, model: &str, input: u64, cost: f64) -> UsageEntry {
        serde_json::from_value(
            json!({"date": date, "model": model, "input": input, "output": 10,
            "inputCost": cost}),
        )
        .unwrap()
    }

    /// Default 30 days ending today; `days` as number or string; both dates or none.
    #[test]
    fn date_ranges_follow_usage_cost() {
        let today = day("2026-11-25");
        let range = date_range(&json!({}), today, None).unwrap();
        assert_eq!((range.start, range.len()), (day("2026-10-27"), 30));
        let range = date_range(&json!({"days": "7"}), today, None).unwrap();
        assert_eq!(range.start, day("2026-11-19"));
        let range = date_range(
            &json!({"startDate": "2026-11-20", "endDate": "2026-11-21"}),
            today,
            None,
        )
        .unwrap();
        assert_eq!(range.len(), 2);
        assert_eq!(
            date_range(&json!({"startDate": "2026-11-01"}), today, None)
                .err()
                .as_deref(),
            Some("startDate and endDate must be provided together")
        );
    }

    /// Programmed figures appear per day in usage.cost and per model in sessions.usage.
    #[test]
    fn usage_figures_add_up() {
        let usage = vec![
            entry("2026-11-20", "claude-opus-4-6", 100, 1.0),
            entry("2026-11-20", "claude-haiku-4-5", 50, 0.25),
            entry("2026-11-21", "claude-opus-4-6", 10, 0.5),
            entry("2026-10-01", "claude-opus-4-6", 999, 9.0),
        ];
        let range = DateRange {
            start: day("2026-11-19"),
            end: day("2026-11-21"),
        };
        let cost = usage_cost(&usage, &range);
        assert_eq!(cost["days"], json!(3));
        assert_eq!(cost["daily"][0]["totalTokens"], json!(0));
        assert_eq!(cost["daily"][1]["input"], json!(150));
        assert_eq!(cost["daily"][1]["totalCost"], json!(1.25));
        assert_eq!(cost["totals"]["totalCost"], json!(1.75));
        let sessions = sessions_usage(&usage, &range);
        let by_model = sessions["aggregates"]["byModel"].as_array().unwrap();
        assert_eq!(by_model[0]["model"], json!("claude-opus-4-6"));
        assert_eq!(by_model[0]["totals"]["input"], json!(110));
        assert_eq!(
            sessions["aggregates"]["modelDaily"]
                .as_array()
                .unwrap()
                .len(),
            3
        );
        assert_eq!(sessions["startDate"], json!("2026-11-19"));
    }
}
