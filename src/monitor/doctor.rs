//! The daily doctor: once a day, at the digest's time (`monitor.digestAt`, or
//! `DEFAULT_AT` without one), `fleet::doctor` checks the host and every cell,
//! and the findings not reported before go to the ops group as one report.
//! What was reported is kept in memory: a restarted admin reports what is
//! still wrong once more, which is the safe side.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::fleet::{self, App};
use crate::monitor::Report;

/// The daily run's time (UTC) when no digest time is configured.
const DEFAULT_AT: chrono::NaiveTime = match chrono::NaiveTime::from_hms_opt(6, 0, 0) {
    Some(time) => time,
    None => panic!("06:00 is a time"),
};

/// The schedule's memory across sweeps.
#[derive(Debug)]
pub(crate) struct Schedule {
    at: chrono::NaiveTime,
    /// The day of the last run (today at start when the time has passed, so
    /// a restart does not run it again).
    last_day: Option<chrono::NaiveDate>,
    /// Keys of the findings reported so far (`fleet::doctor::Finding::key`);
    /// shared with the run in the background.
    reported: Arc<Mutex<HashSet<String>>>,
    running: Arc<std::sync::atomic::AtomicBool>,
}

impl Schedule {
    pub(crate) fn new(digest_at: Option<chrono::NaiveTime>) -> Schedule {
        let at = digest_at.unwrap_or(DEFAULT_AT);
        let now = chrono::Utc::now();
        Schedule {
            at,
            last_day: Some(now.date_naive()).filter(|_| now.time() >= at),
            reported: Arc::default(),
            running: Arc::default(),
        }
    }

    /// After a sweep: starts the day's run (in the background) when it is due.
    pub(crate) fn tick(&mut self, app: &App, reports: &mpsc::Sender<Report>) {
        use std::sync::atomic::Ordering;
        let now = chrono::Utc::now();
        if !due(now, self.at, self.last_day) || self.running.load(Ordering::SeqCst) {
            return;
        }
        self.last_day = Some(now.date_naive());
        self.running.store(true, Ordering::SeqCst);
        let (app, reports) = (app.clone(), reports.clone());
        let (reported, running) = (Arc::clone(&self.reported), Arc::clone(&self.running));
        tokio::spawn(async move {
            match fleet::doctor::doctor(&app, None).await {
                Ok(checkup) => {
                    let fresh = match reported.lock() {
                        Ok(mut reported) => {
                            fleet::doctor::new_findings(&mut reported, &checkup.findings)
                        }
                        // A panic elsewhere while holding it: report all rather than none.
                        Err(_) => checkup.findings.clone(),
                    };
                    if !fresh.is_empty() {
                        let _ = reports.send(Report::Doctor(fresh)).await;
                    }
                }
                Err(err) => {
                    tracing::error!(cause = %format!("{err:#}"), "the daily doctor run failed");
                }
            }
            running.store(false, Ordering::SeqCst);
        });
    }
}

/// Whether the day's run is due at `now`.
fn due(
    now: chrono::DateTime<chrono::Utc>,
    at: chrono::NaiveTime,
    last_day: Option<chrono::NaiveDate>,
) -> bool {
    now.time() >= at && last_day != Some(now.date_naive())
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn runs_once_a_day_after_its_time() {
        let at = chrono::NaiveTime::from_hms_opt(6, 0, 0).unwrap();
        let early = chrono::Utc.with_ymd_and_hms(2026, 12, 3, 5, 59, 0).unwrap();
        let later = chrono::Utc.with_ymd_and_hms(2026, 12, 3, 6, 1, 0).unwrap();
        let next_day = chrono::Utc.with_ymd_and_hms(2026, 12, 4, 6, 0, 0).unwrap();
        assert!(!due(early, at, None));
        assert!(due(later, at, None));
        assert!(!due(later, at, Some(later.date_naive())));
        assert!(due(next_day, at, Some(later.date_naive())));
    }
}
