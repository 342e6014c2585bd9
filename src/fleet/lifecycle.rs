//! Start, stop, restart, remove and logs of one tenant's cell. Each acts on the
//! labelled container of that tenant only. An operator's start, stop, restart
//! or remove reconciles the fleet first (`reconcile::reconcile_first`).

use std::time::Duration;

use crate::fleet::cell::{purge_dirs, wait_healthy};
use crate::fleet::inventory::known;
use crate::fleet::lock::{self, Op};
use crate::fleet::reconcile::reconcile_first;
use crate::fleet::{Actor, App, audit, now, redact, secret_values};
use crate::runtime;
use crate::tenant::{CellState, Started, Stopped, TenantId};

/// One line of a cell's log, secrets redacted.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    /// The line came on stderr.
    pub stderr: bool,
    pub text: String,
}

/// What `remove` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    pub container: bool,
    pub network: bool,
    /// The data dirs were deleted (`purge`).
    pub purged: bool,
}

/// Starts a stopped cell and waits for `/healthz`.
///
/// # Errors
///
/// `lock::Busy` while another action runs on the tenant; an unknown tenant;
/// Docker refusing; a gateway that does not become healthy (its log tail in
/// the error, secrets redacted).
pub async fn start(app: &App, actor: &Actor, tenant: &TenantId) -> anyhow::Result<Started> {
    reconcile_first(app, actor).await?;
    let _guard = lock::acquire(app, tenant, Op::Start, actor)?;
    start_locked(app, actor, tenant).await
}

/// `start` for a caller that holds the tenant's lock.
pub(crate) async fn start_locked(
    app: &App,
    actor: &Actor,
    tenant: &TenantId,
) -> anyhow::Result<Started> {
    let record = known(app, tenant)?;
    if record.state == CellState::Sleeping {
        // Its bot's watch ends before the cell polls the token itself.
        crate::fleet::sleep::leave_sleep(app, tenant, false).await?;
    }
    let result = async {
        let started = app.runtime.start(tenant).await?;
        wait_healthy(app, &record, app.config.cell.health_timeout).await?;
        anyhow::Ok(started)
    }
    .await;
    let started = finish(app, actor, "start", tenant, result)?;
    set_state(app, tenant, CellState::Running)?;
    Ok(started)
}

/// Stops a cell on purpose: the monitor raises nothing for it.
///
/// # Errors
///
/// `lock::Busy` while another action runs on the tenant; an unknown tenant;
/// Docker refusing.
pub async fn stop(app: &App, actor: &Actor, tenant: &TenantId) -> anyhow::Result<Stopped> {
    reconcile_first(app, actor).await?;
    let _guard = lock::acquire(app, tenant, Op::Stop, actor)?;
    stop_locked(app, actor, tenant).await
}

/// `stop` for a caller that holds the tenant's lock.
pub(crate) async fn stop_locked(
    app: &App,
    actor: &Actor,
    tenant: &TenantId,
) -> anyhow::Result<Stopped> {
    known(app, tenant)?;
    // Record the intent first, so a monitor never alerts on a stop we asked for.
    set_state(app, tenant, CellState::Stopped)?;
    app.pool.close(tenant);
    let result = app.runtime.stop(tenant).await.map_err(anyhow::Error::from);
    finish(app, actor, "stop", tenant, result)
}

/// Restarts a cell and waits for `/healthz`.
///
/// # Errors
///
/// `lock::Busy` while another action runs on the tenant; an unknown tenant;
/// Docker refusing; a gateway that does not become healthy (its log tail in
/// the error, secrets redacted).
pub async fn restart(app: &App, actor: &Actor, tenant: &TenantId) -> anyhow::Result<()> {
    reconcile_first(app, actor).await?;
    let _guard = lock::acquire(app, tenant, Op::Restart, actor)?;
    let record = known(app, tenant)?;
    if record.state == CellState::Sleeping {
        crate::fleet::sleep::leave_sleep(app, tenant, false).await?;
    }
    let result = async {
        app.runtime.restart(tenant).await?;
        wait_healthy(app, &record, app.config.cell.health_timeout).await
    }
    .await;
    finish(app, actor, "restart", tenant, result)?;
    set_state(app, tenant, CellState::Running)?;
    Ok(())
}

/// Sets only the state (and its time) of the record as it is now.
fn set_state(app: &App, tenant: &TenantId, state: CellState) -> anyhow::Result<()> {
    app.store.update_tenant(tenant, |record| {
        record.state = state;
        record.slept_at = None;
        record.wake_at = None;
        record.updated_at = now();
        Ok(())
    })?;
    Ok(())
}

/// Removes the cell's container and network and the tenant's record. The data
/// dirs stay unless `purge`.
///
/// A tenant removed earlier without `purge` has no record but keeps its data;
/// `remove` with `purge` deletes that data too. The removal is recorded
/// (`removing`) before anything goes, so a crash half-way is finished by
/// `reconcile` rather than mistaken for a lost container.
///
/// # Errors
///
/// `lock::Busy` while another action (a create, an upgrade) runs on the
/// tenant; an unknown tenant without leftover data; Docker or the disk refusing.
pub async fn remove(
    app: &App,
    actor: &Actor,
    tenant: &TenantId,
    purge: bool,
) -> anyhow::Result<Removed> {
    reconcile_first(app, actor).await?;
    let _guard = lock::acquire(app, tenant, Op::Remove, actor)?;
    remove_locked(app, actor, tenant, purge).await
}

/// `remove` for a caller that holds the tenant's lock (a restore over it, the
/// end of a drill or an offboarding).
pub(crate) async fn remove_locked(
    app: &App,
    actor: &Actor,
    tenant: &TenantId,
    purge: bool,
) -> anyhow::Result<Removed> {
    let record = match known(app, tenant) {
        Ok(record) => Some(record),
        Err(err) => {
            let leftover = app.tenant_dir(tenant).exists();
            if !(purge && leftover) {
                return Err(err);
            }
            None
        }
    };
    app.pool.remove(tenant);
    let result = async {
        let Some(record) = record else {
            // Only leftover data of a tenant removed earlier.
            purge_dirs(app, tenant)?;
            app.store.remove_tenant(tenant, false)?;
            return anyhow::Ok(Removed {
                container: false,
                network: false,
                purged: true,
            });
        };
        let removing = app
            .store
            .update_tenant(tenant, |record| {
                record.state = CellState::Removing;
                record.purge_on_remove = purge;
                record.updated_at = now();
                Ok(())
            })?
            .unwrap_or(record);
        crate::fleet::fault_point("rm:container");
        let container = app.runtime.inspect(tenant).await?.is_some();
        let network = app
            .runtime
            .managed_networks()
            .await?
            .iter()
            .any(|(_, owner)| owner.as_ref() == Some(tenant));
        crate::fleet::reconcile::finish_removal(app, &removing).await?;
        anyhow::Ok(Removed {
            container,
            network,
            purged: purge,
        })
    }
    .await;
    let action = if purge { "rm --purge" } else { "rm" };
    finish(app, actor, action, tenant, result)
}

/// The cell's log lines with the tenant's secrets replaced by `<redacted>`.
///
/// # Errors
///
/// `UnknownTenant` for an id with no record; Docker cannot be reached or has no
/// container for the tenant.
pub async fn logs(
    app: &App,
    tenant: &TenantId,
    tail: Option<usize>,
    since: Option<Duration>,
) -> anyhow::Result<Vec<LogLine>> {
    let redacted = redactor(app, tenant)?;
    let lines = app.runtime.logs(tenant, tail, since_unix(since)).await?;
    Ok(lines.into_iter().map(redacted).collect())
}

/// The cell's log lines as they come (the last `tail` first), secrets
/// replaced by `<redacted>`, until the container stops or the stream is dropped.
///
/// # Errors
///
/// An unknown tenant, no container; a Docker failure midway ends the stream with it.
pub async fn follow_logs(
    app: &App,
    tenant: &TenantId,
    tail: Option<usize>,
    since: Option<Duration>,
) -> anyhow::Result<futures_util::stream::BoxStream<'static, anyhow::Result<LogLine>>> {
    use futures_util::StreamExt;
    let redacted = redactor(app, tenant)?;
    let lines = app
        .runtime
        .follow_logs(tenant, tail, since_unix(since))
        .await?;
    Ok(lines.map(move |line| Ok(redacted(line?))).boxed())
}

/// For a known tenant: what makes one of its log lines safe to show.
fn redactor(
    app: &App,
    tenant: &TenantId,
) -> anyhow::Result<impl Fn(runtime::LogLine) -> LogLine + Send + 'static> {
    known(app, tenant)?;
    let secrets = secret_values(app, tenant)?;
    Ok(move |line: runtime::LogLine| LogLine {
        stderr: line.stderr,
        text: redact(&line.text, &secrets),
    })
}

/// `since` ago, as the unix seconds Docker takes.
fn since_unix(since: Option<Duration>) -> Option<i64> {
    since.map(|ago| now() - i64::try_from(ago.as_secs()).unwrap_or(i64::MAX / 2))
}

/// Audits the outcome and hands it back, a failure with the tenant's secrets
/// (and anything shaped like a bot token) redacted: a failed health wait
/// carries the cell's last log lines.
fn finish<T>(
    app: &App,
    actor: &Actor,
    action: &str,
    tenant: &TenantId,
    result: anyhow::Result<T>,
) -> anyhow::Result<T> {
    match result {
        Ok(value) => {
            audit(app, actor, action, Some(tenant), Ok(()));
            Ok(value)
        }
        Err(err) => {
            let secrets = secret_values(app, tenant).unwrap_or_default();
            let reason = redact(&format!("{err:#}"), &secrets);
            let step = match err.downcast_ref::<runtime::Error>() {
                Some(runtime::Error::NotFound(_)) => "container",
                Some(_) => "docker",
                None => "gateway",
            };
            audit(app, actor, action, Some(tenant), Err((step, &reason)));
            if reason == format!("{err:#}") {
                // Nothing secret in it: keep the typed error for callers that branch.
                return Err(err);
            }
            Err(anyhow::anyhow!(reason))
        }
    }
}
