//! `reconcile`: compares the store (desired state) with Docker (what exists) by
//! label, and finishes what a dead action left half-done.
//!
//! A record needs attention when it is `creating` or `removing`, carries an
//! upgrade's maintenance window, or is `running`/`stopped` without a usable
//! container. Reconcile then takes the tenant's operation lock: if an action
//! holds it, the tenant is in progress and left alone (this holds across PID
//! namespaces and hosts, unlike a pid check). With the lock held, it reads the
//! record again — the action may have finished meanwhile — and only then acts:
//! an abandoned create is undone as far as its marks say, an abandoned removal
//! is finished, a missing container is made again from the record.

use anyhow::{Context, bail};

use crate::fleet::cell::{make_container, purge_dirs, undo};
use crate::fleet::lock::{self, Op};
use crate::fleet::{Actor, App, audit, audit_result, now};
use crate::runtime::CellStatus;
use crate::tenant::{CellState, SecretKind, TenantId, TenantRecord};

/// What reconcile found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Abandoned creates that were undone (what they made, then the record).
    pub cleaned: Vec<TenantId>,
    /// Abandoned removals that were finished.
    pub removed: Vec<TenantId>,
    /// Tenants whose container was made again from the record (or started,
    /// when a dead upgrade left it made but never started).
    pub repaired: Vec<TenantId>,
    /// Tenants an action is working on right now; left alone.
    pub in_progress: Vec<TenantId>,
    /// Labelled containers with no record.
    pub orphan_containers: Vec<TenantId>,
    /// Labelled networks with neither a record nor a container.
    pub orphan_networks: Vec<String>,
    /// Records whose container is gone and could not be made again.
    pub missing: Vec<TenantId>,
    /// Cells a dead backup left frozen (paused), let run again.
    pub thawed: Vec<TenantId>,
    /// Half-written archives and restore staging dirs that dead backups and
    /// restores left, removed.
    pub leftovers_removed: usize,
}

impl ReconcileReport {
    #[must_use]
    pub fn is_clean(&self) -> bool {
        self.cleaned.is_empty()
            && self.removed.is_empty()
            && self.repaired.is_empty()
            && self.orphan_containers.is_empty()
            && self.orphan_networks.is_empty()
            && self.missing.is_empty()
            && self.thawed.is_empty()
            && self.leftovers_removed == 0
    }
}

/// What `repair` did for one tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repaired {
    /// The container was made again (and started, for a running tenant).
    Recreated,
    /// The container existed but had never been started; it was started.
    Started,
    /// A sleeping tenant's container still ran (a sleep died half-way); it was stopped.
    Stopped,
    /// Nothing needed doing.
    Nothing,
}

/// Fleet's policy before an operator's action (create, start, stop, restart,
/// upgrade, remove; from the CLI and the bot alike): reconcile first, so the
/// action meets the fleet as it is, not as a crash left it. The admin's own
/// actions (`Actor::System`: the monitor, reconcile itself, tests' fixtures)
/// skip it. What reconcile did goes to the log.
///
/// # Errors
///
/// Reconcile failed (the store or Docker cannot be read); nothing was done.
pub(crate) async fn reconcile_first(app: &App, actor: &Actor) -> anyhow::Result<()> {
    if matches!(actor, Actor::System(_)) {
        return Ok(());
    }
    let report = reconcile(app)
        .await
        .context("reconcile before the action failed")?;
    if !report.is_clean() {
        tracing::warn!(
            ?report,
            "reconcile before an operator's action found differences"
        );
    }
    Ok(())
}

/// Compares store and Docker, finishes or undoes what dead actions left,
/// reports the rest.
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

    // On Swarm the admin's container (made again, say) must be on each
    // tenant's overlay to reach its gateway.
    if app.runtime.engine() == crate::tenant::Engine::Swarm {
        for record in &records {
            let has_network = networks
                .iter()
                .any(|(_, tenant)| tenant.as_ref() == Some(&record.id));
            if has_network && let Err(err) = crate::fleet::nodes::reach(app, &record.id).await {
                tracing::warn!(cause = %format!("{err:#}"), tenant = %record.id, "reconcile: cannot join the cell's overlay");
            }
        }
    }

    for record in &records {
        let cell = cells.iter().find(|cell| cell.tenant == record.id);
        let needs_attention = match record.state {
            CellState::Creating | CellState::Removing => true,
            CellState::Running | CellState::Stopped | CellState::Sleeping => {
                record.maintenance_until.is_some()
                    || match cell {
                        None => true,
                        Some(cell) => {
                            (record.state == CellState::Running && cell.state == "created")
                                || (record.state == CellState::Running
                                    && record.slept_at.is_some()
                                    && cell.state != "running")
                                || (record.state == CellState::Sleeping && cell.state == "running")
                                || cell.state == "paused"
                        }
                    }
            }
            CellState::Failed => cell.is_some_and(|cell| cell.state == "paused"),
        };
        if !needs_attention {
            continue;
        }
        let _guard = match lock::acquire(app, &record.id, Op::Repair, &actor) {
            Ok(guard) => guard,
            Err(err) if lock::busy(&err).is_some() => {
                report.in_progress.push(record.id.clone());
                continue;
            }
            Err(err) => {
                tracing::warn!(cause = %format!("{err:#}"), tenant = %record.id, "reconcile: cannot take the lock");
                continue;
            }
        };
        // The action that held the lock may have finished: act on the record as it is now.
        let Some(record) = app.store.tenant(&record.id)? else {
            continue;
        };
        // Only a backup freezes a cell, and it holds the lock while it does:
        // a frozen cell whose lock was free is a dead backup's.
        if matches!(
            record.state,
            CellState::Running | CellState::Stopped | CellState::Sleeping | CellState::Failed
        ) {
            match app.runtime.thaw(&record.id).await {
                Ok(true) => {
                    audit(
                        app,
                        &actor,
                        "reconcile: thaw a cell a dead backup froze",
                        Some(&record.id),
                        Ok(()),
                    );
                    report.thawed.push(record.id.clone());
                }
                Ok(false) => {}
                Err(err) => {
                    tracing::debug!(cause = %err, tenant = %record.id, "reconcile: no thaw");
                }
            }
        }
        match record.state {
            CellState::Creating => {
                undo(app, &record.id, &record.create_progress).await;
                audit(
                    app,
                    &actor,
                    "reconcile: undo abandoned create",
                    Some(&record.id),
                    Ok(()),
                );
                report.cleaned.push(record.id.clone());
            }
            CellState::Removing => {
                let result = finish_removal(app, &record).await;
                let action = "reconcile: finish abandoned rm";
                audit_result(app, &actor, action, &record.id, "rm", &result);
                match result {
                    Ok(()) => report.removed.push(record.id.clone()),
                    Err(_) => report.missing.push(record.id.clone()),
                }
            }
            CellState::Running | CellState::Stopped | CellState::Sleeping => {
                end_dead_maintenance(app, &record);
                let result = repair_locked(app, &record).await;
                if !matches!(result, Ok(Repaired::Nothing)) {
                    let action = "reconcile: remake container";
                    audit_result(app, &actor, action, &record.id, "container", &result);
                }
                match result {
                    Ok(Repaired::Nothing) => {}
                    Ok(_) => report.repaired.push(record.id.clone()),
                    Err(err) => {
                        tracing::warn!(cause = %format!("{err:#}"), tenant = %record.id, "reconcile: cannot remake the container");
                        report.missing.push(record.id.clone());
                    }
                }
            }
            CellState::Failed => {}
        }
    }
    report.leftovers_removed = crate::fleet::backup::clean_leftovers(app, &actor);
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

/// Makes a running or stopped tenant's missing container again from its
/// record (same image, generation, dirs, port, network, secrets), starting it
/// when the tenant is meant to run; starts a container that a dead upgrade
/// made but never started.
///
/// # Errors
///
/// `lock::Busy` while another action runs; the tenant is unknown, not running
/// or stopped, its data dir is gone, or Docker refuses.
pub async fn repair(app: &App, actor: &Actor, tenant: &TenantId) -> anyhow::Result<Repaired> {
    let _guard = lock::acquire(app, tenant, Op::Repair, actor)?;
    let record = crate::fleet::inventory::known(app, tenant)?;
    let result = repair_locked(app, &record).await;
    if !matches!(result, Ok(Repaired::Nothing)) {
        audit_result(app, actor, "repair", tenant, "container", &result);
    }
    result
}

async fn repair_locked(app: &App, record: &TenantRecord) -> anyhow::Result<Repaired> {
    let tenant = &record.id;
    if !matches!(
        record.state,
        CellState::Running | CellState::Stopped | CellState::Sleeping
    ) {
        bail!(
            "{tenant} is {}; only a running, stopped or sleeping tenant's container is made again",
            record.state
        );
    }
    let status = app.runtime.inspect(tenant).await?;
    match status {
        Some(status) if never_started(&status) && record.state == CellState::Running => {
            app.runtime.start(tenant).await?;
            Ok(Repaired::Started)
        }
        // A wake that died between its record and its start: finish it.
        Some(status)
            if record.state == CellState::Running
                && record.slept_at.is_some()
                && !status.running =>
        {
            app.runtime.start(tenant).await?;
            app.store.update_tenant(tenant, |record| {
                record.slept_at = None;
                Ok(())
            })?;
            Ok(Repaired::Started)
        }
        // A sleep that died between its record and its stop: finish it,
        // unless the cell took a message meanwhile (it then stays awake).
        Some(status) if record.state == CellState::Sleeping && status.state == "running" => {
            app.runtime.stop(tenant).await?;
            if let Err(err) = crate::fleet::cell::pull_state(app, record).await {
                tracing::warn!(cause = %format!("{err:#}"), %tenant, "reconcile: cannot read the cell's store from its volumes");
            }
            let state_dir = app.tenant_dir(tenant).join("state");
            let unfinished =
                crate::fleet::cell_db::unfinished_telegram_updates(&state_dir).unwrap_or(0);
            if unfinished == 0 {
                return Ok(Repaired::Stopped);
            }
            app.store.update_tenant(tenant, |record| {
                record.state = CellState::Running;
                record.slept_at = None;
                record.wake_at = None;
                Ok(())
            })?;
            app.runtime.start(tenant).await?;
            Ok(Repaired::Started)
        }
        Some(_) => Ok(Repaired::Nothing),
        None => {
            recreate(app, record).await?;
            Ok(Repaired::Recreated)
        }
    }
}

/// Docker made the container but nothing ever started it.
fn never_started(status: &CellStatus) -> bool {
    status.state == "created"
}

async fn recreate(app: &App, record: &TenantRecord) -> anyhow::Result<()> {
    let tenant = &record.id;
    let state_dir = app.tenant_dir(tenant).join("state");
    if !state_dir.is_dir() {
        bail!(
            "its data dir {} is gone; restore it or remove the tenant",
            state_dir.display()
        );
    }
    let secrets = app.store.secrets(tenant)?;
    if !secrets
        .iter()
        .any(|(kind, _)| *kind == SecretKind::GatewayToken)
    {
        bail!("its gateway token is not in the store");
    }
    if !app
        .runtime
        .create_network(tenant, record.generation, &record.subnet)
        .await
        .context("cannot make its network again")?
    {
        bail!(
            "its subnet {} is taken by another network; remove that network",
            record.subnet
        );
    }
    let mut record = record.clone();
    let image = record.image.clone();
    make_container(app, &mut record, &image, &secrets).await?;
    if record.state == CellState::Running {
        app.runtime.start(tenant).await?;
    }
    Ok(())
}

/// Ends the maintenance window of an upgrade that died (its lock is free).
fn end_dead_maintenance(app: &App, record: &TenantRecord) {
    if record.maintenance_until.is_none() {
        return;
    }
    let ended = app.store.update_tenant(&record.id, |record| {
        record.maintenance_until = None;
        record.updated_at = now();
        Ok(())
    });
    if let Err(err) = ended {
        tracing::warn!(cause = %err, tenant = %record.id, "reconcile: cannot end the maintenance window");
    }
}

/// The rest of a removal: container, network, dirs when asked, record.
pub(crate) async fn finish_removal(app: &App, record: &TenantRecord) -> anyhow::Result<()> {
    let tenant = &record.id;
    app.runtime.remove_cell(tenant).await?;
    crate::fleet::fault_point("rm:network");
    app.runtime.remove_network(tenant).await?;
    if record.purge_on_remove {
        crate::fleet::fault_point("rm:dirs");
        app.runtime.remove_cell_state(tenant).await?;
        purge_dirs(app, tenant)?;
    }
    crate::fleet::fault_point("rm:record");
    app.store
        .remove_tenant(tenant, !record.purge_on_remove)
        .context("cannot remove the record")?;
    Ok(())
}
