//! The JSON the CLI prints (`--json`, `--format json`), one type per shape the
//! README documents ("JSON output", "Usage and billing"). Fields are in the
//! README's order; `render::print_json` prints keys sorted, as the CLI always
//! has. These types are the CLI's wire: `fleet` types stay free of serde.

use serde::Serialize;

use crate::cli::render::rfc3339;
use crate::fleet::{self, GatewayInfo, ReconcileReport, TenantView};
use crate::fleet::{Bill, BudgetStatus, FleetSummary, Period as UsagePeriod, Summary};
use crate::tenant::{TenantId, Usd};
use crate::usage::period::PeriodSpec;

/// `doctor --json`: what is wrong, what `--fix` repaired and what it could not.
#[derive(Serialize)]
pub(crate) struct Checkup {
    clean: bool,
    tenants: usize,
    findings: Vec<Finding>,
    fixed: Vec<Finding>,
    fix_failed: Vec<FixFailed>,
}

#[derive(Serialize)]
pub(crate) struct Finding {
    severity: &'static str,
    subject: String,
    check: &'static str,
    problem: String,
    fix: String,
    fixable: bool,
}

#[derive(Serialize)]
pub(crate) struct FixFailed {
    #[serde(flatten)]
    finding: Finding,
    error: String,
}

impl Checkup {
    pub(crate) fn new(checkup: &fleet::doctor::Checkup) -> Checkup {
        Checkup {
            clean: checkup.is_clean(),
            tenants: checkup.tenants,
            findings: checkup.findings.iter().map(Finding::new).collect(),
            fixed: checkup.fixed.iter().map(Finding::new).collect(),
            fix_failed: checkup
                .fix_failed
                .iter()
                .map(|(finding, error)| FixFailed {
                    finding: Finding::new(finding),
                    error: error.clone(),
                })
                .collect(),
        }
    }
}

impl Finding {
    fn new(finding: &fleet::doctor::Finding) -> Finding {
        Finding {
            severity: finding.severity.as_str(),
            subject: finding.subject.as_str().to_string(),
            check: finding.check.as_str(),
            problem: finding.problem.clone(),
            fix: crate::cli::render::fix(&finding.fix),
            fixable: finding.fixable,
        }
    }
}

/// `tenant move --json`.
#[derive(Serialize)]
pub(crate) struct Moved {
    tenant: String,
    from: String,
    to: String,
    bytes: u64,
    down_ms: u64,
    /// Why the old node's volumes were left there, or `null`.
    leftover: Option<String>,
}

impl Moved {
    pub(crate) fn new(moved: &crate::fleet::moves::Moved) -> Moved {
        Moved {
            tenant: moved.tenant.to_string(),
            from: moved.from.clone(),
            to: moved.to.clone(),
            bytes: moved.bytes,
            down_ms: u64::try_from(moved.down.as_millis()).unwrap_or(u64::MAX),
            leftover: moved.leftover.clone(),
        }
    }
}

/// `node drain --json`.
#[derive(Serialize)]
pub(crate) struct Drained {
    node: String,
    moved: Vec<Moved>,
    /// `{tenant, error}` of the move it stopped at, or `null`.
    failed: Option<DrainFailure>,
    /// Tenants still on the node, not tried.
    left: Vec<String>,
}

#[derive(Serialize)]
struct DrainFailure {
    tenant: String,
    error: String,
}

impl Drained {
    pub(crate) fn new(drained: &crate::fleet::moves::Drained) -> Drained {
        Drained {
            node: drained.node.clone(),
            moved: drained.moved.iter().map(Moved::new).collect(),
            failed: drained.failed.as_ref().map(|(tenant, error)| DrainFailure {
                tenant: tenant.to_string(),
                error: error.clone(),
            }),
            left: drained.left.iter().map(ToString::to_string).collect(),
        }
    }
}

/// One element of `node list --json`.
#[derive(Serialize)]
pub(crate) struct Node {
    id: String,
    hostname: String,
    role: String,
    availability: String,
    state: String,
    leader: bool,
    labels: std::collections::BTreeMap<String, String>,
    memory_bytes: u64,
    cpus: f64,
    reserved_bytes: u64,
    free_bytes: u64,
    tenants: Vec<String>,
}

impl Node {
    pub(crate) fn new(node: &crate::fleet::nodes::Node) -> Node {
        Node {
            id: node.id.clone(),
            hostname: node.hostname.clone(),
            role: node.role.clone(),
            availability: node.availability.clone(),
            state: node.state.clone(),
            leader: node.leader,
            labels: node.labels.clone(),
            memory_bytes: node.memory_bytes,
            cpus: node.cpus,
            reserved_bytes: node.reserved_bytes,
            free_bytes: node.free_bytes,
            tenants: node
                .tenants
                .iter()
                .map(|t| t.as_str().to_string())
                .collect(),
        }
    }
}

/// `capacity --json`: bytes, counts, and `null` for what is not measured yet.
#[derive(Serialize)]
pub(crate) struct Capacity {
    host_memory_bytes: u64,
    reserve_bytes: u64,
    in_use_bytes: u64,
    free_bytes: u64,
    running: usize,
    sleeping: usize,
    stopped: usize,
    idle_cell_bytes: Option<u64>,
    active_cell_bytes: Option<u64>,
    samples: usize,
    more_running: Option<u64>,
    more_at_current_mix: Option<u64>,
    all_awake_short_bytes: Option<u64>,
}

impl Capacity {
    pub(crate) fn new(capacity: &crate::fleet::capacity::Capacity) -> Capacity {
        Capacity {
            host_memory_bytes: capacity.host_memory,
            reserve_bytes: capacity.reserve,
            in_use_bytes: capacity.in_use,
            free_bytes: capacity.free,
            running: capacity.running,
            sleeping: capacity.sleeping,
            stopped: capacity.stopped,
            idle_cell_bytes: capacity.footprint.map(|f| f.idle),
            active_cell_bytes: capacity.footprint.map(|f| f.active),
            samples: capacity.footprint.map_or(0, |f| f.samples),
            more_running: capacity.more_running,
            more_at_current_mix: capacity.more_at_mix,
            all_awake_short_bytes: capacity.all_awake_short,
        }
    }
}

/// `config set --json`: one object per tenant.
#[derive(Serialize)]
pub(crate) struct ConfigChanges(Vec<ConfigChange>);

#[derive(Serialize)]
struct ConfigChange {
    id: String,
    path: String,
    before: Option<serde_json::Value>,
    after: serde_json::Value,
    /// `hot`, `restart` or `none`.
    applies: &'static str,
    /// `previewed`, `unchanged`, `applied`, `restarted`, `failed`.
    outcome: &'static str,
    /// The container was restarted because the gateway did not restart itself.
    container_restarted: bool,
    /// A dry run's confirmation code.
    code: Option<String>,
    error: Option<String>,
}

impl ConfigChanges {
    pub(crate) fn new(changes: &[crate::fleet::config_edit::ConfigChange]) -> ConfigChanges {
        use crate::fleet::config_edit::Outcome;
        ConfigChanges(
            changes
                .iter()
                .map(|change| {
                    let (outcome, container_restarted, code, error) = match &change.outcome {
                        Outcome::Previewed { code } => {
                            ("previewed", false, Some(code.clone()), None)
                        }
                        Outcome::Unchanged => ("unchanged", false, None, None),
                        Outcome::Applied => ("applied", false, None, None),
                        Outcome::Restarted { container } => ("restarted", *container, None, None),
                        Outcome::Failed(why) => ("failed", false, None, Some(why.clone())),
                    };
                    ConfigChange {
                        id: change.tenant.to_string(),
                        path: change.path.clone(),
                        before: change.before.clone(),
                        after: change.after.clone(),
                        applies: change.applies.as_str(),
                        outcome,
                        container_restarted,
                        code,
                        error,
                    }
                })
                .collect(),
        )
    }
}

/// `tenant events --json`: newest first.
#[derive(Serialize)]
pub(crate) struct TenantEvents(Vec<TenantEvent>);

#[derive(Serialize)]
struct TenantEvent {
    at: String,
    kind: &'static str,
    action: String,
    by: String,
    /// `ok` or `failed`.
    outcome: &'static str,
    error: Option<String>,
}

impl TenantEvents {
    pub(crate) fn new(events: &[crate::fleet::history::TenantEvent]) -> TenantEvents {
        TenantEvents(
            events
                .iter()
                .map(|event| TenantEvent {
                    at: rfc3339(event.at),
                    kind: event.kind.as_str(),
                    action: event.action.clone(),
                    by: event.by.clone(),
                    outcome: match event.outcome {
                        fleet::Outcome::Ok => "ok",
                        _ => "failed",
                    },
                    error: event.error.clone(),
                })
                .collect(),
        )
    }
}

/// `tenant resize --json`: limits before and after, bytes and CPUs.
#[derive(Serialize)]
pub(crate) struct Resized {
    id: String,
    memory_bytes_before: i64,
    memory_bytes: i64,
    cpus_before: f64,
    cpus: f64,
}

impl Resized {
    pub(crate) fn new(id: &TenantId, resized: &crate::fleet::resize::Resized) -> Resized {
        Resized {
            id: id.to_string(),
            memory_bytes_before: resized.before.memory_bytes,
            memory_bytes: resized.after.memory_bytes,
            cpus_before: resized.before.nano_cpus as f64 / 1e9,
            cpus: resized.after.nano_cpus as f64 / 1e9,
        }
    }
}

/// `tenant sleep --json`.
#[derive(Serialize)]
pub(crate) struct Slept {
    id: String,
    already: bool,
    wake_at: Option<String>,
    usage_read: bool,
}

impl Slept {
    pub(crate) fn new(slept: &crate::fleet::sleep::Slept) -> Slept {
        Slept {
            id: slept.tenant.to_string(),
            already: slept.already,
            wake_at: slept.wake_at.map(rfc3339),
            usage_read: slept.usage_read,
        }
    }
}

/// A tenant: `list --json` (an array of them), `create --json`.
#[derive(Serialize)]
pub(crate) struct Tenant {
    id: String,
    name: Option<String>,
    state: &'static str,
    health: &'static str,
    port: u16,
    image: String,
    image_id: Option<String>,
    model: String,
    paired: bool,
    generation: u64,
    muted_until: Option<String>,
    /// The image fleet upgrades leave it on (`tenant pin`), or `null`.
    pinned_image: Option<String>,
    /// On Swarm, the node that holds its volumes; `null` on a single host.
    node: Option<String>,
    memory_bytes: i64,
    cpus: f64,
    created_at: String,
    last_error: Option<String>,
    /// Docker's view; `null` when there is no container.
    container: Option<Container>,
}

#[derive(Serialize)]
struct Container {
    id: String,
    state: String,
    restart_count: i64,
    oom_killed: bool,
    exit_code: i64,
    started_at: Option<String>,
}

impl Tenant {
    pub(crate) fn new(view: &TenantView) -> Tenant {
        let record = &view.record;
        Tenant {
            id: record.id.as_str().to_string(),
            name: record.display_name.clone(),
            state: view.state.as_str(),
            health: view.health.as_str(),
            port: record.port,
            image: record.image.clone(),
            image_id: record.image_id.clone(),
            model: record.model.clone(),
            paired: record.paired,
            generation: record.generation,
            muted_until: record.quiet_until().map(rfc3339),
            pinned_image: record.pinned_image.clone(),
            node: record.node.clone(),
            memory_bytes: record.limits.memory_bytes,
            cpus: record.limits.nano_cpus as f64 / 1e9,
            created_at: rfc3339(record.created_at),
            last_error: record.last_error.clone(),
            container: view.container.as_ref().map(|container| Container {
                id: container.container_id.clone(),
                state: container.state.clone(),
                restart_count: container.restart_count,
                oom_killed: container.oom_killed,
                exit_code: container.exit_code,
                started_at: container.started_at.clone(),
            }),
        }
    }
}

/// `show --json`: the tenant, and the gateway's live facts (`null` unless the
/// cell runs and the admin is paired).
#[derive(Serialize)]
pub(crate) struct Shown {
    #[serde(flatten)]
    tenant: Tenant,
    gateway: Option<Gateway>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Gateway {
    Reached {
        version: String,
        scopes: Vec<String>,
        telegram: Option<Telegram>,
    },
    Unreachable {
        error: String,
    },
}

#[derive(Serialize)]
struct Telegram {
    running: Option<bool>,
    connected: Option<bool>,
    last_error: Option<String>,
}

impl Shown {
    pub(crate) fn new(view: &TenantView, gateway: Option<&Result<GatewayInfo, String>>) -> Shown {
        Shown {
            tenant: Tenant::new(view),
            gateway: gateway.map(|gateway| match gateway {
                Ok(info) => Gateway::Reached {
                    version: info.version.clone(),
                    scopes: info.scopes.clone(),
                    telegram: info.telegram.as_ref().map(|telegram| Telegram {
                        running: telegram.running,
                        connected: telegram.connected,
                        last_error: telegram.last_error.clone(),
                    }),
                },
                Err(error) => Gateway::Unreachable {
                    error: error.clone(),
                },
            }),
        }
    }
}

/// `tenant reconcile --json`.
#[derive(Serialize)]
pub(crate) struct Reconciled {
    cleaned: Vec<String>,
    removed: Vec<String>,
    repaired: Vec<String>,
    in_progress: Vec<String>,
    orphan_containers: Vec<String>,
    orphan_networks: Vec<String>,
    missing: Vec<String>,
    thawed: Vec<String>,
    leftovers_removed: usize,
}

impl Reconciled {
    pub(crate) fn new(report: &ReconcileReport) -> Reconciled {
        let ids = |ids: &[TenantId]| ids.iter().map(|id| id.as_str().to_string()).collect();
        Reconciled {
            cleaned: ids(&report.cleaned),
            removed: ids(&report.removed),
            repaired: ids(&report.repaired),
            in_progress: ids(&report.in_progress),
            orphan_containers: ids(&report.orphan_containers),
            orphan_networks: report.orphan_networks.clone(),
            missing: ids(&report.missing),
            thawed: ids(&report.thawed),
            leftovers_removed: report.leftovers_removed,
        }
    }
}

/// One entry of `audit --json` (an array of them).
#[derive(Serialize)]
pub(crate) struct AuditEntry {
    at: String,
    actor: String,
    action: String,
    tenant: Option<String>,
    outcome: &'static str,
    step: Option<String>,
    error: Option<String>,
}

impl AuditEntry {
    pub(crate) fn new(entry: &fleet::AuditEntry) -> AuditEntry {
        AuditEntry {
            at: rfc3339(entry.at),
            actor: entry.actor.clone(),
            action: entry.action.clone(),
            tenant: entry.tenant.clone(),
            outcome: entry.outcome.as_str(),
            step: entry.step.clone(),
            error: entry.error.clone(),
        }
    }
}

/// `usage collect --json`.
#[derive(Serialize)]
pub(crate) struct Collected {
    at: String,
    start: String,
    end: String,
    tenants: Vec<TenantCollected>,
}

/// One tenant's reading: the counts only for `read`, `error` only for `failed`.
#[derive(Serialize)]
struct TenantCollected {
    tenant: String,
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    days: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model_rows: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    raised: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    held: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl Collected {
    pub(crate) fn new(report: &fleet::CollectReport) -> Collected {
        Collected {
            at: rfc3339(report.at),
            start: report.start.to_string(),
            end: report.end.to_string(),
            tenants: report
                .tenants
                .iter()
                .map(|(id, collected)| {
                    let mut res = TenantCollected {
                        tenant: id.as_str().to_string(),
                        outcome: "",
                        days: None,
                        model_rows: None,
                        raised: None,
                        held: None,
                        error: None,
                    };
                    match collected {
                        fleet::Collected::Read {
                            days,
                            models,
                            ratcheted,
                        } => {
                            res.outcome = "read";
                            res.days = Some(*days);
                            res.model_rows = Some(*models);
                            res.raised = Some(ratcheted.raised);
                            res.held = Some(ratcheted.held);
                        }
                        fleet::Collected::NotRunning => res.outcome = "not_running",
                        fleet::Collected::NotPaired => res.outcome = "not_paired",
                        fleet::Collected::Failed(error) => {
                            res.outcome = "failed";
                            res.error = Some(error.clone());
                        }
                    }
                    res
                })
                .collect(),
        }
    }
}

/// The period of a usage report, with the zone its days are counted in.
#[derive(Serialize)]
struct Period {
    spec: String,
    start: String,
    end: String,
    time_zone: String,
}

impl Period {
    fn new(spec: &PeriodSpec, period: &UsagePeriod, zone: &str) -> Period {
        Period {
            spec: spec.to_string(),
            start: period.start.to_string(),
            end: period.end.to_string(),
            time_zone: zone.to_string(),
        }
    }
}

/// `usage --all --format json`: every tenant, most expensive first.
#[derive(Serialize)]
pub(crate) struct FleetUsage {
    period: Period,
    tenants: Vec<RankedTenant>,
    total: Total,
}

#[derive(Serialize)]
struct RankedTenant {
    tenant: String,
    cost: Usd,
    billable: Usd,
    total_tokens: u64,
    as_of: Option<String>,
}

#[derive(Serialize)]
struct Total {
    cost: Usd,
    billable: Usd,
}

impl FleetUsage {
    pub(crate) fn new(spec: &PeriodSpec, zone: &str, summary: &FleetSummary) -> FleetUsage {
        FleetUsage {
            period: Period::new(spec, &summary.period, zone),
            tenants: summary
                .tenants
                .iter()
                .map(|ranked| RankedTenant {
                    tenant: ranked.tenant.as_str().to_string(),
                    cost: ranked.cost,
                    billable: ranked.billable,
                    total_tokens: ranked.tokens,
                    as_of: ranked.as_of.map(rfc3339),
                })
                .collect(),
            total: Total {
                cost: summary.cost,
                billable: summary.billable,
            },
        }
    }
}

/// `usage <id> --format json`.
#[derive(Serialize)]
pub(crate) struct TenantUsage {
    tenant: String,
    period: Period,
    currency: &'static str,
    as_of: Option<String>,
    totals: Figures,
    models: Vec<ModelFigures>,
    daily: Vec<DayFigures>,
    billable: Billable,
    budget: Budget,
}

#[derive(Serialize)]
struct Figures {
    input_tokens: u64,
    output_tokens: u64,
    cache_read_tokens: u64,
    cache_write_tokens: u64,
    total_tokens: u64,
    cost: Usd,
}

impl Figures {
    fn new(figures: &fleet::UsageFigures) -> Figures {
        Figures {
            input_tokens: figures.input,
            output_tokens: figures.output,
            cache_read_tokens: figures.cache_read,
            cache_write_tokens: figures.cache_write,
            total_tokens: figures.tokens(),
            cost: figures.cost,
        }
    }
}

#[derive(Serialize)]
struct ModelFigures {
    model: String,
    #[serde(flatten)]
    figures: Figures,
}

#[derive(Serialize)]
struct DayFigures {
    date: String,
    #[serde(flatten)]
    figures: Figures,
}

#[derive(Serialize)]
struct Billable {
    cost: Usd,
    markup_percent: f64,
    usage: Usd,
    fee: Usd,
    total: Usd,
}

impl Billable {
    fn new(bill: &Bill) -> Billable {
        Billable {
            cost: bill.cost,
            markup_percent: bill.markup_percent,
            usage: bill.usage,
            fee: bill.fee,
            total: bill.total,
        }
    }
}

#[derive(Serialize)]
struct Budget {
    amount: Option<Usd>,
    set_by_operator: bool,
    on_budget: &'static str,
    month: String,
    month_spend: Usd,
    notified: Vec<u8>,
    /// `null` unless the tenant is suspended.
    suspended: Option<Suspended>,
}

#[derive(Serialize)]
struct Suspended {
    since: String,
    how: &'static str,
    month: String,
}

impl TenantUsage {
    pub(crate) fn new(
        spec: &PeriodSpec,
        zone: &str,
        summary: &Summary,
        status: &BudgetStatus,
    ) -> TenantUsage {
        TenantUsage {
            tenant: summary.tenant.as_str().to_string(),
            period: Period::new(spec, &summary.period, zone),
            currency: "USD",
            as_of: summary.as_of.map(rfc3339),
            totals: Figures::new(&summary.totals),
            models: summary
                .models
                .iter()
                .map(|(model, figures)| ModelFigures {
                    model: model.clone(),
                    figures: Figures::new(figures),
                })
                .collect(),
            daily: summary
                .daily
                .iter()
                .map(|(day, figures)| DayFigures {
                    date: day.to_string(),
                    figures: Figures::new(figures),
                })
                .collect(),
            billable: Billable::new(&summary.bill),
            budget: Budget {
                amount: status.budget.amount,
                set_by_operator: status.budget.set_by_operator,
                on_budget: status.budget.action.as_str(),
                month: status.month.clone(),
                month_spend: status.spend,
                notified: status.notified.clone(),
                suspended: status
                    .budget
                    .suspended
                    .as_ref()
                    .map(|suspension| Suspended {
                        since: rfc3339(suspension.since),
                        how: suspension.how.as_str(),
                        month: suspension.month.clone(),
                    }),
            },
        }
    }
}

/// One archive: `backup create --json` (one per archive), `backup list --json`
/// (an array of them).
#[derive(Serialize)]
pub(crate) struct Backup {
    id: String,
    /// `null` for the admin's own store.
    tenant: Option<String>,
    path: String,
    bytes: u64,
    created_at: String,
    /// For a backup just taken: how long the cell was paused, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    paused_ms: Option<u64>,
    /// For a backup just taken: the state and auth bytes copied.
    #[serde(skip_serializing_if = "Option::is_none")]
    data_bytes: Option<u64>,
    /// For a backup just taken with `backup.afterCommand`: `null` when it
    /// succeeded, else why not.
    #[serde(skip_serializing_if = "Option::is_none")]
    after_command_error: Option<Option<String>>,
}

impl Backup {
    pub(crate) fn new(backup: &fleet::backup::Backup) -> Backup {
        Backup {
            id: backup.id.clone(),
            tenant: backup.tenant.as_ref().map(|t| t.as_str().to_string()),
            path: backup.path.display().to_string(),
            bytes: backup.bytes,
            created_at: rfc3339(backup.created_at),
            paused_ms: None,
            data_bytes: None,
            after_command_error: None,
        }
    }

    pub(crate) fn taken(done: &fleet::backup::BackedUp) -> Backup {
        Backup {
            paused_ms: Some(u64::try_from(done.paused.as_millis()).unwrap_or(u64::MAX)),
            data_bytes: Some(done.data_bytes),
            after_command_error: done
                .after_command
                .as_ref()
                .map(|result| result.as_ref().err().cloned()),
            ..Backup::new(&done.backup)
        }
    }
}

/// `backup verify --json`.
#[derive(Serialize)]
pub(crate) struct Verified {
    backup_id: String,
    tenant: Option<String>,
    ok: bool,
    files: u64,
    data_bytes: u64,
    boot_ms: u64,
}

impl Verified {
    pub(crate) fn new(verified: &fleet::backup::Verified) -> Verified {
        Verified {
            backup_id: verified.backup_id.clone(),
            tenant: verified.tenant.as_ref().map(|t| t.as_str().to_string()),
            ok: true,
            files: verified.files,
            data_bytes: verified.data_bytes,
            boot_ms: u64::try_from(verified.boot.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

/// `backup prune --json`.
#[derive(Serialize)]
pub(crate) struct Pruned {
    dry_run: bool,
    kept: Vec<Backup>,
    deleted: Vec<Backup>,
}

impl Pruned {
    pub(crate) fn new(pruned: &fleet::backup::Pruned, dry_run: bool) -> Pruned {
        Pruned {
            dry_run,
            kept: pruned.kept.iter().map(Backup::new).collect(),
            deleted: pruned.deleted.iter().map(Backup::new).collect(),
        }
    }
}
