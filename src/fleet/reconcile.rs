//! `reconcile`: compares the store (desired state) with Docker (what exists) by
//! label. It finishes nothing half-way: a `creating` whose creator process is
//! gone is undone; everything else is reported for the operator to decide.

use crate::fleet::create::{process_start_ticks, undo_all};
use crate::fleet::{Actor, App, audit};
use crate::tenant::{CellState, ProcessMark, TenantId};

/// What reconcile found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Abandoned creates that were undone (container, network, dirs, record).
    pub cleaned: Vec<TenantId>,
    /// Creates still in progress in a live process; left alone.
    pub in_progress: Vec<TenantId>,
    /// Labelled containers with no record.
    pub orphan_containers: Vec<TenantId>,
    /// Labelled networks with neither a record nor a container.
    pub orphan_networks: Vec<String>,
    /// Records whose container is gone.
    pub missing: Vec<TenantId>,
}

impl ReconcileReport {
    #[must_use]
    pub fn is_clean(&self) -> bool {
        self.cleaned.is_empty()
            && self.orphan_containers.is_empty()
            && self.orphan_networks.is_empty()
            && self.missing.is_empty()
    }
}

/// Compares store and Docker, undoes abandoned creates, reports the rest.
///
/// # Errors
///
/// The store or Docker cannot be read.
pub async fn reconcile(app: &App) -> anyhow::Result<ReconcileReport> {
    let mut report = ReconcileReport::default();
    let records = app.store.tenants()?;
    let cells = app.runtime.list_cells().await?;
    let networks = app.runtime.managed_networks().await?;
    let actor = Actor::System("reconcile");

    for record in &records {
        let has_cell = cells.iter().any(|cell| cell.tenant == record.id);
        match record.state {
            CellState::Creating => {
                if record.creator.is_some_and(is_alive) {
                    report.in_progress.push(record.id.clone());
                    continue;
                }
                undo_all(app, &record.id).await;
                audit(
                    app,
                    &actor,
                    "reconcile: undo abandoned create",
                    Some(&record.id),
                    Ok(()),
                );
                report.cleaned.push(record.id.clone());
            }
            CellState::Running | CellState::Stopped if !has_cell => {
                report.missing.push(record.id.clone())
            }
            _ => {}
        }
    }
    for cell in &cells {
        if !records.iter().any(|record| record.id == cell.tenant) {
            report.orphan_containers.push(cell.tenant.clone());
        }
    }
    for (name, tenant) in networks {
        let claimed = tenant.as_ref().is_some_and(|t| {
            records.iter().any(|r| &r.id == t) || cells.iter().any(|c| &c.tenant == t)
        });
        if !claimed {
            report.orphan_networks.push(name);
        }
    }
    Ok(report)
}

/// True when the process that marked a record still runs (same pid, same start).
fn is_alive(mark: ProcessMark) -> bool {
    process_start_ticks(mark.pid) == Some(mark.start_ticks)
}
