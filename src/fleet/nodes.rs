//! The hosts that run cells: one Docker engine, or the nodes of the swarm it
//! manages, each with its memory and the tenants whose cells are on it.

use std::collections::{BTreeMap, HashMap};

use crate::fleet::App;
use crate::fleet::capacity::HOST_RESERVE;
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
    /// What is left for new cells: its memory less `HOST_RESERVE` and
    /// `reserved_bytes` (limits, not use: a cell may grow to its limit).
    pub free_bytes: u64,
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
    // A service with no task now (stopped, asleep) is where its volumes are.
    for record in app.store.tenants()? {
        if let Some(node) = record.node {
            placed.insert(record.id, node);
        }
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
            let reserved_bytes: u64 = tenants.iter().filter_map(|t| records.get(t)).sum();
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
                free_bytes: node
                    .memory_bytes
                    .saturating_sub(HOST_RESERVE)
                    .saturating_sub(reserved_bytes),
                tenants,
            }
        })
        .collect())
}

/// Where a new tenant's cell of the default size would go now.
///
/// # Errors
///
/// `NoRoom` when no node can take it, with each node's reason.
pub fn next_placement(app: &App, nodes: &[Node]) -> Result<String, NoRoom> {
    let need = u64::try_from(app.config.cell.memory_bytes).unwrap_or_default();
    place(nodes, need, &app.config.cell.node_labels).map(|node| node.hostname.clone())
}

/// Why no node can take a cell: each node and what stood in its way.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("no node can take a cell of {need_bytes} bytes: {}", passed_by.iter().map(|(node, why)| format!("{node} ({why})")).collect::<Vec<_>>().join(", "))]
pub struct NoRoom {
    pub need_bytes: u64,
    /// (hostname, why), one per node.
    pub passed_by: Vec<(String, String)>,
}

/// The node a new cell of `need_bytes` goes to: among the nodes that are
/// active, ready and carry every label of `labels`, the one with the most
/// free memory that holds it (ties to the lower id, so the choice is stable).
///
/// # Errors
///
/// `NoRoom` with the reason for every node when none qualifies.
pub fn place<'a>(
    nodes: &'a [Node],
    need_bytes: u64,
    labels: &BTreeMap<String, String>,
) -> Result<&'a Node, NoRoom> {
    let mut passed_by = Vec::new();
    let mut best: Option<&Node> = None;
    for node in nodes {
        let missing: Vec<String> = labels
            .iter()
            .filter(|(key, value)| node.labels.get(*key) != Some(*value))
            .map(|(key, value)| format!("{key}={value}"))
            .collect();
        let why = if node.availability != "active" {
            Some(format!("availability {}", node.availability))
        } else if node.state != "ready" {
            Some(format!("state {}", node.state))
        } else if !missing.is_empty() {
            Some(format!("no label {}", missing.join(", ")))
        } else if node.free_bytes < need_bytes {
            Some(format!("{} bytes free", node.free_bytes))
        } else {
            None
        };
        match why {
            Some(why) => passed_by.push((node.hostname.clone(), why)),
            None => {
                let better = best.is_none_or(|b| {
                    (node.free_bytes, std::cmp::Reverse(&node.id))
                        > (b.free_bytes, std::cmp::Reverse(&b.id))
                });
                if better {
                    best = Some(node);
                }
            }
        }
    }
    best.ok_or(NoRoom {
        need_bytes,
        passed_by,
    })
}

/// The node a new cell of `memory_bytes` goes to on Swarm (`place` over
/// every node, with the labels of `cell.nodeLabels`): its id.
///
/// # Errors
///
/// The nodes cannot be listed, or `NoRoom`.
pub(crate) async fn choose(app: &App, memory_bytes: i64) -> anyhow::Result<String> {
    let nodes = list(app).await?;
    let need = u64::try_from(memory_bytes).unwrap_or_default();
    Ok(place(&nodes, need, &app.config.cell.node_labels)?
        .id
        .clone())
}

/// On Swarm, puts the admin's own container (or, for an admin service, its
/// relay) on `tenant`'s overlay, so the gateway answers at its service name;
/// nothing on a single host.
///
/// # Errors
///
/// The admin runs outside a container (it cannot join an overlay), or
/// Docker refuses.
pub(crate) async fn reach(app: &App, tenant: &TenantId) -> anyhow::Result<()> {
    if app.runtime.engine() != crate::tenant::Engine::Swarm {
        return Ok(());
    }
    if app.runtime.relay().is_some() {
        app.runtime
            .join_cell_network(tenant, crate::runtime::RELAY)
            .await?;
        return Ok(());
    }
    let Some(container) = crate::runtime::own_container_id() else {
        anyhow::bail!(
            "on Swarm the admin reaches cells over their overlay networks, which only a container can join; run the admin in its container on a manager (README, \"Several hosts\")"
        );
    };
    app.runtime.join_cell_network(tenant, &container).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn node(id: &str, free_gib: u64, labels: &[(&str, &str)]) -> Node {
        Node {
            id: id.to_string(),
            hostname: format!("host-{id}"),
            role: "worker".to_string(),
            availability: "active".to_string(),
            state: "ready".to_string(),
            leader: false,
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            memory_bytes: (free_gib + 1) * GIB,
            cpus: 2.0,
            reserved_bytes: 0,
            free_bytes: free_gib * GIB,
            tenants: Vec::new(),
        }
    }

    #[test]
    fn the_roomiest_qualifying_node_takes_the_cell() {
        let none = BTreeMap::new();
        let nodes = [node("b", 3, &[]), node("a", 6, &[]), node("c", 6, &[])];
        assert_eq!(
            place(&nodes, 2 * GIB, &none).unwrap().id,
            "a",
            "most free, then lower id"
        );

        let eu = BTreeMap::from([("region".to_string(), "eu".to_string())]);
        let nodes = [
            node("a", 8, &[("region", "us")]),
            node("b", 3, &[("region", "eu")]),
        ];
        assert_eq!(place(&nodes, 2 * GIB, &eu).unwrap().id, "b");

        let mut drained = node("d", 9, &[]);
        drained.availability = "drain".to_string();
        let mut down = node("e", 9, &[]);
        down.state = "down".to_string();
        let nodes = [drained, down, node("f", 1, &[])];
        let err = place(&nodes, 2 * GIB, &none).unwrap_err();
        assert_eq!(
            err.passed_by,
            [
                ("host-d".to_string(), "availability drain".to_string()),
                ("host-e".to_string(), "state down".to_string()),
                ("host-f".to_string(), format!("{GIB} bytes free")),
            ]
        );
        let err = place(&nodes[2..], 2 * GIB, &eu).unwrap_err();
        assert_eq!(err.passed_by[0].1, "no label region=eu");
        assert!(err.to_string().starts_with("no node can take a cell of"));
    }
}
