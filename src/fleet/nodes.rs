//! The hosts that run cells: one Docker engine, or the nodes of the swarm it
//! manages, each with its memory and the tenants whose cells are on it.

use std::collections::{BTreeMap, HashMap};

use crate::fleet::App;
use crate::tenant::TenantId;

/// One host of the fleet.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub id: String,
    pub hostname: String,
    /// `manager` or `worker` in a swarm; `engine` for a single Docker host.
    pub role: String,
    /// `active`, `pause` or `drain`.
    pub availability: String,
    /// `ready`, `down`, …
    pub state: String,
    pub leader: bool,
    pub labels: BTreeMap<String, String>,
    pub memory_bytes: u64,
    pub cpus: f64,
    /// The memory limits of its tenants' cells, added up.
    pub reserved_bytes: u64,
    /// Tenants whose cell (running or not) is on it, sorted.
    pub tenants: Vec<TenantId>,
}

/// Every node with its tenants: a cell made as a container is on this
/// engine's node, a cell made as a service on the node of its task.
///
/// # Errors
///
/// Docker or the store cannot be read; a swarm worker cannot list nodes.
pub async fn list(app: &App) -> anyhow::Result<Vec<Node>> {
    let nodes = app.runtime.nodes().await?;
    let local = app.runtime.local_node_id().await?;
    let mut placed: HashMap<TenantId, String> = HashMap::new();
    for cell in app.runtime.list_cells().await? {
        placed.insert(cell.tenant, local.clone());
    }
    if app.runtime.swarm_role().await? == crate::runtime::SwarmRole::Manager {
        for (tenant, node) in app.runtime.list_services().await? {
            if let Some(node) = node {
                placed.insert(tenant, node);
            }
        }
    }
    let records: HashMap<TenantId, u64> = app
        .store
        .tenants()?
        .into_iter()
        .map(|record| {
            let bytes = u64::try_from(record.limits.memory_bytes).unwrap_or_default();
            (record.id, bytes)
        })
        .collect();
    Ok(nodes
        .into_iter()
        .map(|node| {
            // Only this store's tenants: another admin's cells on a shared
            // engine are not ours to count.
            let mut tenants: Vec<TenantId> = placed
                .iter()
                .filter(|(tenant, on)| **on == node.id && records.contains_key(*tenant))
                .map(|(tenant, _)| tenant.clone())
                .collect();
            tenants.sort();
            let reserved_bytes = tenants.iter().filter_map(|t| records.get(t)).sum();
            Node {
                id: node.id,
                hostname: node.hostname,
                role: node.role,
                availability: node.availability,
                state: node.state,
                leader: node.leader,
                labels: node.labels.into_iter().collect(),
                memory_bytes: node.memory_bytes,
                #[allow(clippy::cast_precision_loss)]
                cpus: node.nano_cpus as f64 / 1e9,
                reserved_bytes,
                tenants,
            }
        })
        .collect())
}
