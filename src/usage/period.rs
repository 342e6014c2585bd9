//! Billing periods as the operator types them (`7d`, `30d`, `this-month`,
//! `last-month`, `YYYY-MM`, `YYYY-MM-DD..YYYY-MM-DD`) and the calendar days
//! (`fleet::Period`) they cover on a given day. Pure functions of the text and
//! "today" (`fleet::today`).

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, Days, NaiveDate};

use crate::fleet::Period;

/// The longest period one can ask for, in days (ten years).
const MAX_DAYS: i64 = 3660;

/// What the operator asked for, before it is pinned to days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PeriodSpec {
    /// The last `n` days, today included (`7d`, `30d`).
    LastDays(u32),
    /// The calendar month of today, first to last day (the default).
    #[default]
    ThisMonth,
    LastMonth,
    /// `YYYY-MM`: one calendar month (`month` is 1-12).
    Month {
        year: i32,
        month: u32,
    },
    /// `YYYY-MM-DD..YYYY-MM-DD`, both days included.
    Range {
        start: NaiveDate,
        end: NaiveDate,
    },
}

/// Why a period did not parse; the message says what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeriodError {
    #[error(
        "{0:?} is not a period; use 7d, 30d, this-month, last-month, YYYY-MM or YYYY-MM-DD..YYYY-MM-DD"
    )]
    Unknown(String),
    #[error("{0:?} is not a date; write it as YYYY-MM-DD, e.g. 2026-02-28")]
    BadDate(String),
    #[error("the period ends ({end}) before it starts ({start})")]
    Backwards { start: NaiveDate, end: NaiveDate },
    #[error("a period covers at most {MAX_DAYS} days")]
    TooLong,
}

impl FromStr for PeriodSpec {
    type Err = PeriodError;

    fn from_str(text: &str) -> Result<PeriodSpec, PeriodError> {
        let text = text.trim();
        let unknown = || PeriodError::Unknown(text.to_string());
        match text {
            "this-month" => return Ok(PeriodSpec::ThisMonth),
            "last-month" => return Ok(PeriodSpec::LastMonth),
            _ => {}
        }
        if let Some(number) = text.strip_suffix('d')
            && !number.is_empty()
            && number.bytes().all(|b| b.is_ascii_digit())
        {
            let days: u32 = number.parse().map_err(|_| PeriodError::TooLong)?;
            if days == 0 {
                return Err(unknown());
            }
            if i64::from(days) > MAX_DAYS {
                return Err(PeriodError::TooLong);
            }
            return Ok(PeriodSpec::LastDays(days));
        }
        if let Some((start, end)) = text.split_once("..") {
            let date = |text: &str| {
                NaiveDate::parse_from_str(text, "%Y-%m-%d")
                    .map_err(|_| PeriodError::BadDate(text.to_string()))
            };
            let (start, end) = (date(start)?, date(end)?);
            if end < start {
                return Err(PeriodError::Backwards { start, end });
            }
            if (end - start).num_days() >= MAX_DAYS {
                return Err(PeriodError::TooLong);
            }
            return Ok(PeriodSpec::Range { start, end });
        }
        // `YYYY-MM`: exactly four digits, a dash, two digits.
        let bytes = text.as_bytes();
        let shaped = bytes.len() == 7
            && bytes[4] == b'-'
            && text
                .bytes()
                .enumerate()
                .all(|(i, b)| i == 4 || b.is_ascii_digit());
        if shaped {
            let year: i32 = text[..4].parse().map_err(|_| unknown())?;
            let month: u32 = text[5..].parse().map_err(|_| unknown())?;
            if NaiveDate::from_ymd_opt(year, month, 1).is_none() {
                return Err(PeriodError::BadDate(text.to_string()));
            }
            return Ok(PeriodSpec::Month { year, month });
        }
        Err(unknown())
    }
}

impl fmt::Display for PeriodSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeriodSpec::LastDays(days) => write!(f, "{days}d"),
            PeriodSpec::ThisMonth => f.write_str("this-month"),
            PeriodSpec::LastMonth => f.write_str("last-month"),
            PeriodSpec::Month { year, month } => write!(f, "{year:04}-{month:02}"),
            PeriodSpec::Range { start, end } => write!(f, "{start}..{end}"),
        }
    }
}

impl PeriodSpec {
    /// The days this spec covers when it is `today`.
    #[must_use]
    pub fn resolve(&self, today: NaiveDate) -> Period {
        match *self {
            PeriodSpec::LastDays(days) => {
                let start = today
                    .checked_sub_days(Days::new(u64::from(days.saturating_sub(1))))
                    .unwrap_or(NaiveDate::MIN);
                Period { start, end: today }
            }
            PeriodSpec::ThisMonth => Period::month_of(today),
            PeriodSpec::LastMonth => {
                let first = today.with_day(1).unwrap_or(today);
                Period::month_of(first.pred_opt().unwrap_or(first))
            }
            PeriodSpec::Month { year, month } => {
                // `from_str` checked the month; a hand-built bad one gives today's month.
                Period::month_of(NaiveDate::from_ymd_opt(year, month, 1).unwrap_or(today))
            }
            PeriodSpec::Range { start, end } => Period { start, end },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::{month_key, today_in};
    use chrono::{DateTime, Utc};

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    /// `check(input, today, expected start..end)`.
    fn check(input: &str, today: &str, expected: (&str, &str)) {
        let spec: PeriodSpec = input.parse().unwrap_or_else(|err| panic!("{input}: {err}"));
        let period = spec.resolve(day(today));
        assert_eq!(
            (period.start, period.end),
            (day(expected.0), day(expected.1)),
            "{input} on {today}"
        );
        assert_eq!(
            spec.to_string().parse::<PeriodSpec>(),
            Ok(spec),
            "{input} round-trips"
        );
    }

    #[test]
    fn last_days_end_today() {
        check("7d", "2026-03-03", ("2026-02-25", "2026-03-03"));
        check("30d", "2026-03-01", ("2026-01-31", "2026-03-01"));
        check("1d", "2026-03-01", ("2026-03-01", "2026-03-01"));
    }

    #[test]
    fn months_follow_the_calendar_and_leap_days() {
        check("this-month", "2024-02-10", ("2024-02-01", "2024-02-29"));
        check("this-month", "2026-02-28", ("2026-02-01", "2026-02-28"));
        check("this-month", "2026-12-31", ("2026-12-01", "2026-12-31"));
        check("last-month", "2024-03-31", ("2024-02-01", "2024-02-29"));
        check("last-month", "2026-01-01", ("2025-12-01", "2025-12-31"));
        check("last-month", "2026-05-31", ("2026-04-01", "2026-04-30"));
        check("2024-02", "2026-11-25", ("2024-02-01", "2024-02-29"));
        check("2100-02", "2026-11-25", ("2100-02-01", "2100-02-28"));
        check("2000-02", "2026-11-25", ("2000-02-01", "2000-02-29"));
        // February 2024 has 29 days: 30 days back from March 1 start on February 1.
        check("30d", "2024-03-01", ("2024-02-01", "2024-03-01"));
        check("7d", "2024-03-01", ("2024-02-24", "2024-03-01"));
    }

    #[test]
    fn ranges_include_both_days() {
        check(
            "2024-02-28..2024-03-01",
            "2026-11-25",
            ("2024-02-28", "2024-03-01"),
        );
        check(
            "2026-11-25..2026-11-25",
            "2026-11-25",
            ("2026-11-25", "2026-11-25"),
        );
        assert_eq!(
            "2024-02-28..2024-03-01"
                .parse::<PeriodSpec>()
                .unwrap()
                .resolve(day("2026-01-01"))
                .len_days(),
            3
        );
    }

    #[test]
    fn bad_periods_say_what_is_accepted() {
        let cases: [(&str, PeriodError); 8] = [
            ("yesterday", PeriodError::Unknown("yesterday".into())),
            ("0d", PeriodError::Unknown("0d".into())),
            ("d", PeriodError::Unknown("d".into())),
            ("99999d", PeriodError::TooLong),
            ("2026-13", PeriodError::BadDate("2026-13".into())),
            (
                "2023-02-29..2023-03-01",
                PeriodError::BadDate("2023-02-29".into()),
            ),
            (
                "2026-03-02..2026-03-01",
                PeriodError::Backwards {
                    start: day("2026-03-02"),
                    end: day("2026-03-01"),
                },
            ),
            ("2000-01-01..2026-01-01", PeriodError::TooLong),
        ];
        for (input, expected) in cases {
            assert_eq!(input.parse::<PeriodSpec>(), Err(expected), "{input}");
        }
        assert!(
            PeriodError::Unknown("x".into())
                .to_string()
                .contains("this-month")
        );
    }

    /// Day and month boundaries are those of the configured zone, not UTC's.
    #[test]
    fn today_is_in_the_usage_time_zone() {
        let late = DateTime::parse_from_rfc3339("2026-03-31T22:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(today_in(chrono_tz::UTC, late), day("2026-03-31"));
        let berlin = today_in(chrono_tz::Europe::Berlin, late);
        assert_eq!(berlin, day("2026-04-01"));
        assert_eq!(
            PeriodSpec::ThisMonth.resolve(berlin),
            Period {
                start: day("2026-04-01"),
                end: day("2026-04-30")
            }
        );
        let early = DateTime::parse_from_rfc3339("2024-03-01T03:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let new_york = today_in(chrono_tz::America::New_York, early);
        assert_eq!(new_york, day("2024-02-29"));
        assert_eq!(
            PeriodSpec::ThisMonth.resolve(new_york).end,
            day("2024-02-29")
        );
        assert_eq!(month_key(new_york), "2024-02");
    }

    #[test]
    fn months_of_a_period_are_cut_to_it() {
        let period = "2024-01-30..2024-03-02"
            .parse::<PeriodSpec>()
            .unwrap()
            .resolve(day("2026-01-01"));
        let months: Vec<(NaiveDate, NaiveDate)> =
            period.months().iter().map(|m| (m.start, m.end)).collect();
        assert_eq!(
            months,
            vec![
                (day("2024-01-30"), day("2024-01-31")),
                (day("2024-02-01"), day("2024-02-29")),
                (day("2024-03-01"), day("2024-03-02")),
            ]
        );
        assert_eq!(period.days().count(), 33);
    }
}
