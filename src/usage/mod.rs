//! Usage above the fleet: when to collect and check budgets (a loop inside
//! `mtp serve`, hourly by default), and the pure parts adapters share: what the
//! operator types for a period, the CSV and the chart. Bills, summaries and
//! budgets are fleet policy (`fleet::tenant_summary`, `fleet::check_budgets`).
//! It never sends a Telegram message: budget alerts are values on a channel;
//! `bot/` renders them.
//!
//! Architecture invariant: `usage/` asks `fleet` for everything; it never
//! touches the store, Docker or a gateway itself.

pub mod chart;
pub mod period;
pub mod report;

use chrono::Utc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::fleet::{self, App, BudgetAlert};

/// Something the operator should hear about.
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    Budget(BudgetAlert),
}

/// Collects every `app.config().usage.interval` (the first time at once), then
/// checks budgets, until `shutdown`. Budget alerts go to `reports`.
pub async fn run(app: App, reports: mpsc::Sender<Report>, shutdown: CancellationToken) {
    let mut interval = tokio::time::interval(app.config().usage.interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = interval.tick() => {}
        }
        // A collection only reads until its last step, one store write per
        // tenant, so cutting it at shutdown loses nothing.
        let collected = tokio::select! {
            _ = shutdown.cancelled() => return,
            collected = fleet::collect_usage(&app) => collected,
        };
        match collected {
            Ok(report) => {
                let failed = report
                    .tenants
                    .iter()
                    .filter(|(_, c)| matches!(c, fleet::Collected::Failed(_)))
                    .count();
                tracing::info!(tenants = report.tenants.len(), failed, "usage collected");
            }
            Err(err) => tracing::error!(cause = %format!("{err:#}"), "usage collection failed"),
        }
        match fleet::check_budgets(&app, Utc::now()).await {
            Ok(alerts) => {
                for alert in alerts {
                    let _ = reports.send(Report::Budget(alert)).await;
                }
            }
            Err(err) => tracing::error!(cause = %format!("{err:#}"), "budget check failed"),
        }
    }
}
