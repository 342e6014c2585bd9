//! Moving a tenant's cell to another node of the swarm, and draining a node
//! by moving every tenant off it, one at a time.
//!
//! A move: the cell stops (its files hold still), a job on the old node reads
//! its volumes out, a job on the new node writes them into volumes there, the
//! service is made again pinned to the new node and started, and the gateway
//! must answer the admin with the device it paired (its approval moved with
//! the state). The client's bot is down from the stop to the new gateway's
//! start: the copy and the cell's boot. A move that fails after the stop puts
//! the cell back on the old node, whose volumes are only emptied once the new
//! cell answers. A move to the node the cell is on runs every step the same
//! way (the only move one machine can test).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};

use crate::fleet::inventory::known;
use crate::fleet::lock::{self, Op};
use crate::fleet::nodes::{self, Node};
use crate::fleet::upgrade::{self, UpgradeStep, replace};
use crate::fleet::{Actor, App, audit, fault_point, now, redact};
use crate::tenant::{CellState, Engine, Secret, SecretKind, TenantId, TenantRecord};

use crate::fleet::cell::{REGENERABLE, VOLUME_JOB_TIMEOUT as COPY_TIMEOUT, VOLUMES};

/// Steps of a move, for progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveStep {
    Validate,
    Stop,
    Copy,
    Write,
    Cell,
    Start,
    Health,
    Gateway,
    Clean,
    Done,
}

impl MoveStep {
    /// Every step, in order (a progress bar's length).
    pub const ALL: [MoveStep; 10] = [
        MoveStep::Validate,
        MoveStep::Stop,
        MoveStep::Copy,
        MoveStep::Write,
        MoveStep::Cell,
        MoveStep::Start,
        MoveStep::Health,
        MoveStep::Gateway,
        MoveStep::Clean,
        MoveStep::Done,
    ];

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            MoveStep::Validate => "validate",
            MoveStep::Stop => "stop",
            MoveStep::Copy => "copy",
            MoveStep::Write => "write",
            MoveStep::Cell => "cell",
            MoveStep::Start => "start",
            MoveStep::Health => "health",
            MoveStep::Gateway => "gateway",
            MoveStep::Clean => "clean",
            MoveStep::Done => "done",
        }
    }

    fn of(step: UpgradeStep) -> MoveStep {
        match step {
            UpgradeStep::Start => MoveStep::Start,
            UpgradeStep::Health => MoveStep::Health,
            UpgradeStep::Gateway | UpgradeStep::Channel => MoveStep::Gateway,
            _ => MoveStep::Cell,
        }
    }
}

/// A move refused before anything was touched (bad input, a node that
/// cannot take the cell, not on Swarm).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct MoveRefused(pub String);

/// What a move did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    pub tenant: TenantId,
    /// Hostnames.
    pub from: String,
    pub to: String,
    /// Size of the state carried over.
    pub bytes: u64,
    /// From the cell's stop to its gateway's answer on the new node (zero
    /// for a cell that was not running and was left so).
    pub down: Duration,
    /// The old node's volumes could not be emptied (the move itself worked).
    pub leftover: Option<String>,
}

/// Moves `tenant`'s cell to `to` (a node's hostname or id).
///
/// # Errors
///
/// A refusal (not on Swarm, an unknown tenant or node, a node that cannot
/// take it, a tenant that is not running, stopped or sleeping, another
/// action on it) changes nothing. A failure after the stop says what failed
/// and whether the cell is back on its old node.
pub async fn move_tenant(
    app: &App,
    actor: &Actor,
    tenant: &TenantId,
    to: &str,
    progress: &mut (dyn FnMut(MoveStep) + Send),
) -> anyhow::Result<Moved> {
    crate::fleet::reconcile::reconcile_first(app, actor).await?;
    progress(MoveStep::Validate);
    let _guard = lock::acquire(app, tenant, Op::Move, actor)?;
    let result = move_locked(app, tenant, to, progress).await;
    match &result {
        Ok(moved) => {
            tracing::info!(
                tenant = %moved.tenant,
                from = %moved.from,
                to = %moved.to,
                bytes = moved.bytes,
                down_ms = u64::try_from(moved.down.as_millis()).unwrap_or(u64::MAX),
                "moved"
            );
            audit(app, actor, "move", Some(tenant), Ok(()));
        }
        Err(err) => {
            let reason = format!("{err:#}");
            audit(app, actor, "move", Some(tenant), Err(("move", &reason)));
        }
    }
    result
}

/// Whether `tenant` can be moved to `to` now, checked as the move itself
/// checks before it touches anything (for a reply before any progress).
///
/// # Errors
///
/// `MoveRefused` with why not.
pub async fn check(app: &App, tenant: &TenantId, to: &str) -> Result<(), MoveRefused> {
    plan(app, tenant, to)
        .await
        .map(drop)
        .map_err(|err| MoveRefused(format!("{err:#}")))
}

async fn move_locked(
    app: &App,
    tenant: &TenantId,
    to: &str,
    progress: &mut (dyn FnMut(MoveStep) + Send),
) -> anyhow::Result<Moved> {
    let (record, from, to, from_id, to_id) = plan(app, tenant, to)
        .await
        .map_err(|err| MoveRefused(format!("{err:#}")))?;
    let secrets: Vec<(SecretKind, Secret<String>)> = app
        .store
        .secrets(tenant)
        .context("cannot read the tenant's secrets")?;
    let secret_values: Vec<Secret<String>> =
        secrets.iter().map(|(_, value)| value.clone()).collect();
    let start = record.state == CellState::Running;

    let maintenance = now()
        + i64::try_from((app.config.cell.health_timeout * 2 + COPY_TIMEOUT * 2).as_secs())
            .unwrap_or(i64::MAX / 4);
    app.store.update_tenant(tenant, |record| {
        record.maintenance_until = Some(maintenance);
        Ok(())
    })?;
    let mut record = TenantRecord {
        maintenance_until: Some(maintenance),
        ..record
    };

    progress(MoveStep::Stop);
    app.pool.close(tenant);
    let stopped_at = tokio::time::Instant::now();
    app.runtime
        .stop(tenant)
        .await
        .with_context(|| format!("cannot stop {tenant}'s cell; nothing was moved"))?;
    fault_point("move:stopped");

    let result = carry(
        app,
        &mut record,
        &from_id,
        &to_id,
        &secrets,
        start,
        progress,
    )
    .await;
    let down = if start {
        stopped_at.elapsed()
    } else {
        Duration::ZERO
    };
    let outcome = match result {
        Ok(bytes) => Ok(bytes),
        Err((step, err)) => {
            let reason = redact(&format!("{err:#}"), &secret_values);
            // Back where it was: the old node's volumes are untouched.
            record.node = Some(from_id.clone());
            let image = record.image.clone();
            let mut noop = |_| {};
            let back = replace(app, &mut record, &image, &secrets, start, false, &mut noop).await;
            let back = match back {
                Ok(()) => format!("it runs on {from} again"),
                Err((_, back_err)) => format!(
                    "putting it back on {from} failed too: {}",
                    redact(&format!("{back_err:#}"), &secret_values)
                ),
            };
            // The copy on the other node holds the client's state (device
            // tokens among it): empty it. Not on a move to the same node,
            // whose volumes are the cell's own.
            let copy = if from_id != to_id && step != MoveStep::Copy {
                match app
                    .runtime
                    .clear_volumes(tenant, &image, &to_id, &VOLUMES)
                    .await
                {
                    Ok(()) => format!("; the copy on {to} was emptied"),
                    Err(err) => format!(
                        "; the copy on {to} could not be emptied ({err}): remove its volumes mtp-cell-{tenant}-state and -auth there by hand"
                    ),
                }
            } else {
                String::new()
            };
            Err(anyhow!(
                "moving {tenant} to {to} failed at {}: {reason}; {back}{copy}",
                step.as_str()
            ))
        }
    };
    crate::fleet::upgrade::finish_replacement(app, &record, "move");
    let bytes = outcome?;

    let mut leftover = None;
    if from_id != to_id {
        progress(MoveStep::Clean);
        if let Err(err) = app
            .runtime
            .clear_volumes(tenant, &record.image, &from_id, &VOLUMES)
            .await
        {
            leftover = Some(format!(
                "the old volumes on {from} could not be emptied: {err}"
            ));
        }
    }
    progress(MoveStep::Done);
    Ok(Moved {
        tenant: tenant.clone(),
        from,
        to,
        bytes,
        down,
        leftover,
    })
}

/// What a move is to do, checked before anything is touched: the record, the
/// two nodes' hostnames and ids.
async fn plan(
    app: &App,
    tenant: &TenantId,
    to: &str,
) -> anyhow::Result<(TenantRecord, String, String, String, String)> {
    if app.runtime.engine() != Engine::Swarm {
        bail!(
            "moves are between the nodes of a swarm; this admin runs cells on one Docker host (cell.engine is \"docker\")"
        );
    }
    let record = known(app, tenant)?;
    upgrade::settled(&record, "moved")?;
    let nodes = nodes::list(app).await?;
    let target = find_node(&nodes, to)?;
    let from_id = match &record.node {
        Some(node) => node.clone(),
        None => app.runtime.local_node_id().await?,
    };
    let source = nodes
        .iter()
        .find(|node| node.id == from_id)
        .ok_or_else(|| anyhow!("{tenant}'s node {from_id} is not in the swarm any more"))?;
    if target.id != source.id {
        let need = u64::try_from(record.limits.memory_bytes).unwrap_or_default();
        // The operator named the node: only its room counts, not its labels.
        nodes::place(std::slice::from_ref(target), need, &BTreeMap::new())?;
    }
    let (from, to) = (source.hostname.clone(), target.hostname.clone());
    let (from_id, to_id) = (source.id.clone(), target.id.clone());
    Ok((record, from, to, from_id, to_id))
}

/// Copies the stopped cell's volumes from `from` to `to` and makes the cell
/// again on `to`; the number of bytes carried.
async fn carry(
    app: &App,
    record: &mut TenantRecord,
    from: &str,
    to: &str,
    secrets: &[(SecretKind, Secret<String>)],
    start: bool,
    progress: &mut (dyn FnMut(MoveStep) + Send),
) -> Result<u64, (MoveStep, anyhow::Error)> {
    let tenant = record.id.clone();
    progress(MoveStep::Copy);
    let archive = app
        .runtime
        .export_volumes(&tenant, &record.image, Some(from), &VOLUMES, &REGENERABLE)
        .await
        .map_err(|err| (MoveStep::Copy, anyhow!(err)))?;
    fault_point("move:copied");
    progress(MoveStep::Write);
    app.runtime
        .import_volumes(&tenant, &record.image, Some(to), &VOLUMES, &archive, true)
        .await
        .map_err(|err| (MoveStep::Write, anyhow!(err)))?;
    fault_point("move:written");
    record.node = Some(to.to_string());
    let mut step = MoveStep::Cell;
    let mut forward = |s: UpgradeStep| {
        step = MoveStep::of(s);
        progress(step);
    };
    let image = record.image.clone();
    let made = replace(app, record, &image, secrets, start, false, &mut forward).await;
    made.map_err(|(s, err)| (MoveStep::of(s), err))?;
    Ok(archive.len() as u64)
}

/// The node named `name` (hostname or id).
fn find_node<'a>(nodes: &'a [Node], name: &str) -> anyhow::Result<&'a Node> {
    nodes
        .iter()
        .find(|node| node.id == name || node.hostname == name)
        .ok_or_else(|| {
            let known: Vec<&str> = nodes.iter().map(|node| node.hostname.as_str()).collect();
            anyhow!(
                "no node {name:?} in the swarm; its nodes are {}",
                known.join(", ")
            )
        })
}

/// What a drain did: the tenants moved, and the one it stopped at.
#[derive(Debug)]
pub struct Drained {
    pub node: String,
    pub moved: Vec<Moved>,
    /// The tenant whose move failed (or found no node), with why; the drain
    /// stopped there.
    pub failed: Option<(TenantId, String)>,
    /// Tenants still on the node, not tried.
    pub left: Vec<TenantId>,
}

/// Moves every tenant off `node` (hostname or id), one at a time, each to the
/// node `place` picks among the others; stops at the first failure.
///
/// # Errors
///
/// Not on Swarm, or an unknown node; a tenant's failure is in `Drained`.
pub async fn drain(
    app: &App,
    actor: &Actor,
    node: &str,
    progress: &mut (dyn FnMut(&TenantId, MoveStep) + Send),
) -> anyhow::Result<Drained> {
    if app.runtime.engine() != Engine::Swarm {
        bail!(
            "draining moves tenants between the nodes of a swarm; this admin runs cells on one Docker host (cell.engine is \"docker\")"
        );
    }
    let nodes = nodes::list(app).await?;
    let drained = find_node(&nodes, node)?.clone();
    let mut left: Vec<TenantId> = drained.tenants.clone();
    left.reverse();
    let mut moved = Vec::new();
    while let Some(tenant) = left.pop() {
        match drain_one(app, actor, &drained, &tenant, progress).await {
            Ok(done) => moved.push(done),
            Err(why) => {
                left.reverse();
                return Ok(Drained {
                    node: drained.hostname,
                    moved,
                    failed: Some((tenant, why)),
                    left,
                });
            }
        }
    }
    Ok(Drained {
        node: drained.hostname,
        moved,
        failed: None,
        left: Vec::new(),
    })
}

/// Moves `tenant` off `drained` to the node with the most room among the
/// others; why not, in words, when it cannot.
async fn drain_one(
    app: &App,
    actor: &Actor,
    drained: &Node,
    tenant: &TenantId,
    progress: &mut (dyn FnMut(&TenantId, MoveStep) + Send),
) -> Result<Moved, String> {
    let record = known(app, tenant).map_err(|err| format!("{err:#}"))?;
    let others: Vec<Node> = nodes::list(app)
        .await
        .map_err(|err| format!("{err:#}"))?
        .into_iter()
        .filter(|other| other.id != drained.id)
        .collect();
    if others.is_empty() {
        return Err(format!(
            "{} is the only node of the swarm: there is nowhere to move {tenant}",
            drained.hostname
        ));
    }
    let need = u64::try_from(record.limits.memory_bytes).unwrap_or_default();
    let target = nodes::place(&others, need, &app.config.cell.node_labels)
        .map_err(|err| err.to_string())?
        .hostname
        .clone();
    let mut step = |s| progress(tenant, s);
    move_tenant(app, actor, tenant, &target, &mut step)
        .await
        .map_err(|err| format!("{err:#}"))
}
