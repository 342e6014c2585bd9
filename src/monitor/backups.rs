//! The backup schedule: once a day at `backup.schedule` (in `usage.timeZone`)
//! every tenant is backed up, then the admin's store, then retention runs.
//! Failures are reported at once; a tenant whose newest backup is older than
//! twice the schedule (two days) is reported once, until it has a fresh one.
//!
//! The day's run counts as done when the admin's archive of that day exists
//! (it is the run's last backup), so an admin restarted after the time does
//! not back everyone up again.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::TimeZone;
use tokio::sync::mpsc;

use crate::fleet::{self, Actor, App};
use crate::monitor::Report;
use crate::tenant::{CellState, TenantId};

/// Twice the daily schedule: older than this, a tenant's newest backup is stale.
pub const STALE_AFTER_SECS: i64 = 2 * 86_400;

/// What the scheduled run could not back up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupFailure {
    /// `None`: the admin's own store.
    pub tenant: Option<TenantId>,
    pub reason: String,
}

/// The schedule's memory across sweeps.
#[derive(Debug, Default)]
pub(crate) struct Schedule {
    last_day: Option<chrono::NaiveDate>,
    running: Arc<AtomicBool>,
    stale: HashSet<TenantId>,
}

impl Schedule {
    /// After a sweep: starts the day's run when it is due (in the background)
    /// and reports tenants whose backups went stale.
    pub(crate) async fn tick(
        &mut self,
        app: &App,
        reports: &mpsc::Sender<Report>,
        records: &[crate::tenant::TenantRecord],
    ) {
        let Some(at) = app.config().backup.schedule else {
            return;
        };
        let zone = app.config().usage.time_zone;
        let now_local = chrono::Utc::now().with_timezone(&zone);
        let today = now_local.date_naive();
        if now_local.time() >= at
            && self.last_day != Some(today)
            && !self.running.load(Ordering::SeqCst)
        {
            self.last_day = Some(today);
            let due_since = zone
                .from_local_datetime(&today.and_time(at))
                .earliest()
                .map_or(0, |time| time.timestamp());
            let done_today = fleet::backup::list_admin(app)
                .ok()
                .and_then(|backups| backups.into_iter().next())
                .is_some_and(|newest| newest.created_at >= due_since);
            if !done_today {
                self.running.store(true, Ordering::SeqCst);
                let (app, reports, running) =
                    (app.clone(), reports.clone(), Arc::clone(&self.running));
                tokio::spawn(async move {
                    let failures = run_once(&app).await;
                    if !failures.is_empty() {
                        let _ = reports.send(Report::BackupsFailed(failures)).await;
                    }
                    running.store(false, Ordering::SeqCst);
                });
            }
        }
        self.report_stale(app, reports, records).await;
    }

    async fn report_stale(
        &mut self,
        app: &App,
        reports: &mpsc::Sender<Report>,
        records: &[crate::tenant::TenantRecord],
    ) {
        let now = fleet::now();
        for record in records {
            if !matches!(
                record.state,
                CellState::Running | CellState::Stopped | CellState::Sleeping
            ) || record.quiet_until().is_some_and(|until| until > now)
            {
                continue;
            }
            let newest = fleet::backup::last_backup(app, &record.id);
            let since = newest.as_ref().map_or(record.created_at, |backup| {
                backup.created_at.max(record.created_at)
            });
            if now - since <= STALE_AFTER_SECS {
                self.stale.remove(&record.id);
                continue;
            }
            if self.stale.insert(record.id.clone()) {
                fleet::record_alert(app, &record.id, "backup stale");
                let _ = reports
                    .send(Report::BackupStale {
                        tenant: record.id.clone(),
                        last: newest.map(|backup| (backup.id, backup.created_at)),
                        since,
                    })
                    .await;
            }
        }
    }
}

/// One scheduled run: every tenant, the admin's store, then retention.
/// Returns what failed.
pub async fn run_once(app: &App) -> Vec<BackupFailure> {
    let actor = Actor::System("backup schedule");
    let mut failures = Vec::new();
    let mut quiet = |_: &TenantId, _| {};
    match fleet::backup::backup_all(app, &actor, &mut quiet).await {
        Ok(results) => {
            for (tenant, result) in results {
                match result {
                    Ok(done) => {
                        if let Some(Err(why)) = done.after_command {
                            failures.push(BackupFailure {
                                tenant: Some(tenant),
                                reason: format!("backup.afterCommand: {why}"),
                            });
                        }
                    }
                    Err(err) => failures.push(BackupFailure {
                        tenant: Some(tenant),
                        reason: format!("{err:#}"),
                    }),
                }
            }
        }
        Err(err) => failures.push(BackupFailure {
            tenant: None,
            reason: format!("cannot list the tenants: {err:#}"),
        }),
    }
    if let Err(err) = fleet::backup::backup_admin(app, &actor).await {
        failures.push(BackupFailure {
            tenant: None,
            reason: format!("{err:#}"),
        });
    }
    match fleet::backup::prune(app, &actor, false) {
        Ok(pruned) if !pruned.deleted.is_empty() => {
            tracing::info!(deleted = pruned.deleted.len(), "backup retention applied");
        }
        Ok(_) => {}
        Err(err) => failures.push(BackupFailure {
            tenant: None,
            reason: format!("retention: {err:#}"),
        }),
    }
    for failure in &failures {
        tracing::error!(tenant = ?failure.tenant, reason = %failure.reason, "scheduled backup failed");
    }
    failures
}
