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
pub async fn show(app: &App, tenant: &TenantId) -> anyhow::Result<TenantView> {
    let record = known(app, tenant)?;
    view(app, record).await
}

/// No tenant has this id; `similar` are the closest known ids.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no tenant {id}; {}", suggestion(.similar))]
pub struct UnknownTenant {
    pub id: TenantId,
    pub similar: Vec<TenantId>,
}

fn suggestion(similar: &[TenantId]) -> String {
    if similar.is_empty() {
        return "`mtp tenant list` shows the tenants there are".to_string();
    }
    let names: Vec<&str> = similar.iter().map(TenantId::as_str).collect();
    format!("did you mean {}?", names.join(" or "))
}

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
    similar.truncate(3);
    Err(UnknownTenant {
        id: tenant.clone(),
        similar,
    }
    .into())
}

fn similar(a: &str, b: &str) -> bool {
    a.contains(b) || b.contains(a) || edit_distance(a, b) <= 2
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (prev + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            prev = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
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
        (_, Some(_)) => ViewState::Stopped,
    };
    let health = if running {
        if probe_healthz(app, record.port).await {
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

/// True when `GET /healthz` on the cell's published port answers 200.
pub(crate) async fn probe_healthz(app: &App, port: u16) -> bool {
    matches!(
        app.http.healthz(port).await,
        crate::gateway::Probe::Ok { .. }
    )
}
