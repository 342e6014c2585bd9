//! Record encodings: the store's own serde types, versioned, converted by hand
//! to and from the domain types in `tenant.rs`. Secrets are stored raw in their
//! own table, never inside these records.

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::tenant::{
    AlertState, AlertStatus, CellState, CreateProgress, Limits, TenantId, TenantRecord,
};

/// The encoding version of `TenantRow`; bump it when a field changes meaning.
/// v2: the `removing` state, create progress and the maintenance window (v1
/// rows read as they are; their creator pid fields are ignored).
/// v3: the `sleeping` state, with when it slept and when it wakes.
/// v4: the operator's pin (an image fleet upgrades pass by).
const TENANT_ROW_VERSION: u32 = 4;

#[derive(Serialize, Deserialize)]
struct TenantRow {
    v: u32,
    id: String,
    display_name: Option<String>,
    state: CellState,
    port: u16,
    subnet: String,
    image: String,
    image_id: Option<String>,
    model: String,
    memory_bytes: i64,
    nano_cpus: i64,
    pids: i64,
    bot_id: u64,
    bot_username: Option<String>,
    generation: u64,
    created_at: i64,
    updated_at: i64,
    last_error: Option<String>,
    #[serde(default)]
    paired: bool,
    #[serde(default)]
    muted_until: Option<i64>,
    #[serde(default)]
    made_dirs: bool,
    #[serde(default)]
    made_network: bool,
    #[serde(default)]
    made_container: bool,
    #[serde(default)]
    purge_on_remove: bool,
    #[serde(default)]
    maintenance_until: Option<i64>,
    #[serde(default)]
    slept_at: Option<i64>,
    #[serde(default)]
    wake_at: Option<i64>,
    #[serde(default)]
    pinned_image: Option<String>,
    #[serde(default)]
    node: Option<String>,
}

pub(super) fn encode_tenant(record: &TenantRecord) -> anyhow::Result<Vec<u8>> {
    let row = TenantRow {
        v: TENANT_ROW_VERSION,
        id: record.id.as_str().to_string(),
        display_name: record.display_name.clone(),
        state: record.state,
        port: record.port,
        subnet: record.subnet.clone(),
        image: record.image.clone(),
        image_id: record.image_id.clone(),
        model: record.model.clone(),
        memory_bytes: record.limits.memory_bytes,
        nano_cpus: record.limits.nano_cpus,
        pids: record.limits.pids,
        bot_id: record.bot_id,
        bot_username: record.bot_username.clone(),
        generation: record.generation,
        created_at: record.created_at,
        updated_at: record.updated_at,
        last_error: record.last_error.clone(),
        paired: record.paired,
        muted_until: record.muted_until,
        made_dirs: record.create_progress.dirs,
        made_network: record.create_progress.network,
        made_container: record.create_progress.container,
        purge_on_remove: record.purge_on_remove,
        maintenance_until: record.maintenance_until,
        slept_at: record.slept_at,
        wake_at: record.wake_at,
        pinned_image: record.pinned_image.clone(),
        node: record.node.clone(),
    };
    Ok(serde_json::to_vec(&row)?)
}

pub(super) fn decode_tenant(bytes: &[u8]) -> anyhow::Result<TenantRecord> {
    let row: TenantRow = serde_json::from_slice(bytes).context("corrupt tenant record")?;
    if row.v > TENANT_ROW_VERSION {
        bail!(
            "tenant record {} has encoding v{}, newer than this binary",
            row.id,
            row.v
        );
    }
    let id: TenantId = row
        .id
        .parse()
        .with_context(|| format!("tenant record with invalid id {:?}", row.id))?;
    Ok(TenantRecord {
        id,
        display_name: row.display_name,
        state: row.state,
        port: row.port,
        subnet: row.subnet,
        image: row.image,
        image_id: row.image_id,
        model: row.model,
        limits: Limits {
            memory_bytes: row.memory_bytes,
            nano_cpus: row.nano_cpus,
            pids: row.pids,
        },
        bot_id: row.bot_id,
        bot_username: row.bot_username,
        generation: row.generation,
        created_at: row.created_at,
        updated_at: row.updated_at,
        last_error: row.last_error,
        paired: row.paired,
        create_progress: if row.v < 2 && row.state == CellState::Creating {
            // A v1 create marked nothing: its labelled container and network
            // are its own, but data dirs are kept rather than guessed at.
            CreateProgress {
                dirs: false,
                network: true,
                container: true,
            }
        } else {
            CreateProgress {
                dirs: row.made_dirs,
                network: row.made_network,
                container: row.made_container,
            }
        },
        purge_on_remove: row.purge_on_remove,
        muted_until: row.muted_until,
        maintenance_until: row.maintenance_until,
        slept_at: row.slept_at,
        wake_at: row.wake_at,
        pinned_image: row.pinned_image,
        node: row.node,
    })
}

/// One line of the append-only audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Unix seconds.
    pub at: i64,
    /// Who acted: `cli:<user>`, `tg:<user id>`, `monitor`, `reconcile`.
    pub actor: String,
    /// What was done: `create`, `start`, `stop`, `rm`, …
    pub action: String,
    pub tenant: Option<String>,
    pub outcome: Outcome,
    /// For a failure: the step that failed (`network`, `container`, `health`, …).
    pub step: Option<String>,
    /// For a failure: why, with secrets already removed.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    Failed,
    Refused,
}

pub(super) fn encode_audit(entry: &AuditEntry) -> anyhow::Result<Vec<u8>> {
    Ok(serde_json::to_vec(entry)?)
}

pub(super) fn decode_audit(bytes: &[u8]) -> anyhow::Result<AuditEntry> {
    serde_json::from_slice(bytes).context("corrupt audit entry")
}

/// The encoding of one (tenant, check) alert state.
#[derive(Serialize, Deserialize)]
struct AlertRow {
    v: u32,
    status: AlertStatus,
    failures: u32,
    since: i64,
    failing_since: Option<i64>,
    last_error: Option<String>,
    transitions: Vec<i64>,
    flapping: bool,
    last_notified: Option<i64>,
}

pub(super) fn encode_alert(state: &AlertState) -> anyhow::Result<Vec<u8>> {
    Ok(serde_json::to_vec(&AlertRow {
        v: 1,
        status: state.status,
        failures: state.failures,
        since: state.since,
        failing_since: state.failing_since,
        last_error: state.last_error.clone(),
        transitions: state.transitions.clone(),
        flapping: state.flapping,
        last_notified: state.last_notified,
    })?)
}

pub(super) fn decode_alert(bytes: &[u8]) -> anyhow::Result<AlertState> {
    let row: AlertRow = serde_json::from_slice(bytes).context("corrupt alert state")?;
    Ok(AlertState {
        status: row.status,
        failures: row.failures,
        since: row.since,
        failing_since: row.failing_since,
        last_error: row.last_error,
        transitions: row.transitions,
        flapping: row.flapping,
        last_notified: row.last_notified,
    })
}
