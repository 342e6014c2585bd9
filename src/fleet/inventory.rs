//! `list` and `show`: what the fleet looks like now, the store's desired state
//! joined with what Docker and the gateway say.

use anyhow::Context;
use futures_util::future::join_all;

use crate::fleet::App;
use crate::runtime;
use crate::tenant::{CellState, TenantId, TenantRecord};

/// The observed state of a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewState {
    Creating,
    Running,
    Stopped,
    /// Idle, its container stopped; it wakes on its client's next message.
    Sleeping,
    Failed,
    /// A removal is in progress (or died half-way; reconcile finishes it).
    Removing,
    /// The store has the tenant but Docker has no container for it.
    Missing,
}

impl ViewState {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ViewState::Creating => "creating",
            ViewState::Running => "running",
            ViewState::Stopped => "stopped",
            ViewState::Sleeping => "sleeping",
            ViewState::Failed => "failed",
            ViewState::Removing => "removing",
            ViewState::Missing => "missing",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Ok,
    Failed,
    Unknown,
}

impl Health {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Ok => "ok",
            Health::Failed => "failed",
            Health::Unknown => "unknown",
        }
    }
}

/// One tenant as the operator sees it. No secret is in here.
#[derive(Debug, Clone)]
pub struct TenantView {
    pub record: TenantRecord,
    pub state: ViewState,
    pub health: Health,
    /// Docker's view, when the container exists.
    pub container: Option<ContainerStatus>,
}

/// What Docker says of a tenant's container.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerStatus {
    pub container_id: String,
    pub image_id: String,
    pub running: bool,
    pub restarting: bool,
    /// Docker's word for it: `running`, `exited`, `restarting`, …
    pub state: String,
    pub exit_code: i64,
    pub oom_killed: bool,
    pub restart_count: i64,
    /// RFC 3339, as Docker reports it.
    pub started_at: Option<String>,
    /// The `mtp.generation` label: which make of the tenant's cell this is.
    pub generation: u64,
}

impl From<runtime::CellStatus> for ContainerStatus {
    fn from(status: runtime::CellStatus) -> ContainerStatus {
        ContainerStatus {
            container_id: status.container_id,
            image_id: status.image_id,
            running: status.running,
            restarting: status.restarting,
            state: status.state,
            exit_code: status.exit_code,
            oom_killed: status.oom_killed,
            restart_count: status.restart_count,
            started_at: status.started_at,
            generation: status.generation,
        }
    }
}

impl TenantView {
    #[must_use]
    pub fn id(&self) -> &TenantId {
        &self.record.id
    }
}

/// Every tenant, ordered by id, with Docker state and a `/healthz` probe each
/// (probed concurrently).
///
/// # Errors
///
/// The store or Docker cannot be read.
pub async fn list(app: &App) -> anyhow::Result<Vec<TenantView>> {
    let records = app.store.tenants()?;
    let views = join_all(records.into_iter().map(|record| view(app, record))).await;
    views.into_iter().collect()
}

/// One tenant; an unknown id is an error that names the closest known ids.
///
/// # Errors
///
/// `UnknownTenant` (with the close ids) for an id with no record; the store
/// cannot be read.
pub async fn show(app: &App, tenant: &TenantId) -> anyhow::Result<TenantView> {
    let record = known(app, tenant)?;
    view(app, record).await
}

/// No tenant has this id. Adapters offer `similar` ("did you mean"), or
/// their list of tenants when it is empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no tenant {id}")]
pub struct UnknownTenant {
    pub id: TenantId,
    /// The closest known ids, at most `MAX_SIMILAR`, in id order.
    pub similar: Vec<TenantId>,
}

/// How many close ids an unknown id is answered with.
const MAX_SIMILAR: usize = 3;

/// Ids this many single-character edits apart count as close: a typo or two.
const MAX_EDITS: usize = 2;

/// Whether a new tenant may take this id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdAvailability {
    Free,
    /// A tenant has it.
    Taken,
    /// No tenant, but an earlier tenant's data is kept under this id.
    LeftoverData,
}

/// Checks an id before a create asks for everything else.
///
/// # Errors
///
/// The store cannot be read.
pub fn id_availability(app: &App, tenant: &TenantId) -> anyhow::Result<IdAvailability> {
    if app.store.tenant(tenant)?.is_some() {
        return Ok(IdAvailability::Taken);
    }
    if app.tenant_dir(tenant).exists() {
        return Ok(IdAvailability::LeftoverData);
    }
    Ok(IdAvailability::Free)
}

/// The record of `tenant`, or `UnknownTenant` with the closest ids.
/// Whether a tenant is on record (a store read; no Docker call).
///
/// # Errors
///
/// A store failure.
pub fn exists(app: &App, tenant: &TenantId) -> anyhow::Result<bool> {
    Ok(app.store.tenant(tenant)?.is_some())
}

/// The stored record of a tenant (no Docker call); an unknown id is
/// `UnknownTenant` with the closest known ids.
///
/// # Errors
///
/// An unknown tenant, a store failure.
pub fn record(app: &App, tenant: &TenantId) -> anyhow::Result<TenantRecord> {
    known(app, tenant)
}

/// The tenant's record as stored, or `None` for an unknown tenant (no
/// "did you mean" search): for loops that meet tenants coming and going.
///
/// # Errors
///
/// A store failure.
pub fn find_record(app: &App, tenant: &TenantId) -> anyhow::Result<Option<TenantRecord>> {
    Ok(app.store.tenant(tenant)?)
}

pub(crate) fn known(app: &App, tenant: &TenantId) -> anyhow::Result<TenantRecord> {
    if let Some(record) = app.store.tenant(tenant)? {
        return Ok(record);
    }
    let mut similar: Vec<TenantId> = app
        .store
        .tenants()?
        .into_iter()
        .map(|r| r.id)
        .filter(|id| similar(id.as_str(), tenant.as_str()))
        .collect();
    similar.truncate(MAX_SIMILAR);
    Err(UnknownTenant {
        id: tenant.clone(),
        similar,
    }
    .into())
}

/// One id holds the other, or they are a typo or two apart.
fn similar(a: &str, b: &str) -> bool {
    a.contains(b) || b.contains(a) || strsim::levenshtein(a, b) <= MAX_EDITS
}

async fn view(app: &App, record: TenantRecord) -> anyhow::Result<TenantView> {
    let container = match app.runtime.inspect(&record.id).await {
        Ok(container) => container.map(ContainerStatus::from),
        Err(runtime::Error::Foreign { .. }) => None,
        Err(err) => {
            return Err(err).with_context(|| format!("cannot inspect the cell of {}", record.id));
        }
    };
    let running = container.as_ref().is_some_and(|c| c.running);
    let state = match (record.state, &container) {
        (CellState::Creating, _) => ViewState::Creating,
        (CellState::Failed, _) => ViewState::Failed,
        (CellState::Removing, _) => ViewState::Removing,
        (_, None) => ViewState::Missing,
        (_, Some(_)) if running => ViewState::Running,
        (CellState::Sleeping, Some(_)) => ViewState::Sleeping,
        (_, Some(_)) => ViewState::Stopped,
    };
    let health = if running {
        if probe_healthz(app, &record).await {
            Health::Ok
        } else {
            Health::Failed
        }
    } else if record.state == CellState::Running {
        // Meant to run, but is not.
        Health::Failed
    } else {
        Health::Unknown
    };
    Ok(TenantView {
        record,
        state,
        health,
        container,
    })
}

/// True when `GET /healthz` of the cell's gateway answers 200.
pub(crate) async fn probe_healthz(app: &App, record: &TenantRecord) -> bool {
    let (host, port) = app.runtime.gateway_at(&record.id, record.port);
    matches!(
        app.http.healthz(&host, port).await,
        crate::gateway::Probe::Ok { .. }
    )
}

#[cfg(test)]
mod tests {
    use super::similar;

    #[test]
    fn close_ids_are_parts_or_a_typo_or_two_apart() {
        assert!(similar("acme", "acme-corp"));
        assert!(similar("acme", "acne"));
        assert!(similar("acme", "cme"));
        assert!(similar("acme", "axmy"));
        assert!(!similar("acme", "globex"));
        assert!(!similar("acme", "zzzz"));
    }
}
