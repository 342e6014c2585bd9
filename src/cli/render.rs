//! Everything the CLI prints, in one place: the texts and tables of each
//! command, the progress steps' words, and the two ways out (`print_json`
//! for the `views` shapes, `print_line` for text). `fleet` returns facts;
//! the words are chosen here.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::fleet::{self, CreateStep, GatewayInfo, ReconcileReport, TenantView};
use crate::fleet::{BudgetStatus, FleetSummary, Summary};
use crate::tenant::{Started, Stopped, TenantId};
use crate::usage::period::PeriodSpec;

/// Prints one JSON document, pretty, on stdout.
///
/// # Errors
///
/// Stdout closed or failing.
pub(crate) fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    // Through `Value`, whose map keeps keys sorted: the order the CLI has
    // always printed, whatever order a view declares its fields in.
    let value = serde_json::to_value(value)?;
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &value)?;
    writeln!(out)?;
    Ok(())
}

/// Prints `text` and a newline on stdout.
///
/// # Errors
///
/// Stdout closed or failing.
pub(crate) fn print_line(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")?;
    Ok(())
}

/// Prints `text` as it is (rows that end in their own newlines, CSV).
///
/// # Errors
///
/// Stdout closed or failing.
pub(crate) fn print_text(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    Ok(())
}

/// Unix seconds as RFC 3339 in UTC (empty for a time out of range).
pub(crate) fn rfc3339(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|t| t.to_rfc3339())
        .unwrap_or_default()
}

pub(crate) fn create_step(step: CreateStep) -> &'static str {
    match step {
        CreateStep::Validate => "checking input",
        CreateStep::Record => "recording the tenant",
        CreateStep::Dirs => "creating data dirs",
        CreateStep::Config => "writing the OpenClaw config",
        CreateStep::Network => "creating the network",
        CreateStep::Container => "creating the container",
        CreateStep::Start => "starting",
        CreateStep::Health => "waiting for the gateway to be healthy",
        CreateStep::Pair => "pairing the admin with the gateway",
        CreateStep::Done => "done",
    }
}

pub(crate) fn upgrade_step(step: fleet::UpgradeStep) -> &'static str {
    match step {
        fleet::UpgradeStep::Validate => "checking the image",
        fleet::UpgradeStep::Maintenance => "muting the monitor",
        fleet::UpgradeStep::Replace => "replacing the container",
        fleet::UpgradeStep::Start => "starting",
        fleet::UpgradeStep::Health => "waiting for the gateway to be healthy",
        fleet::UpgradeStep::Gateway => "reaching the gateway",
        fleet::UpgradeStep::Channel => "waiting for the Telegram poller",
        fleet::UpgradeStep::Done => "done",
    }
}

pub(crate) fn move_step(step: fleet::moves::MoveStep) -> &'static str {
    use fleet::moves::MoveStep;
    match step {
        MoveStep::Validate => "checking the nodes",
        MoveStep::Stop => "stopping the cell",
        MoveStep::Copy => "reading its volumes on the old node",
        MoveStep::Write => "writing them on the new node",
        MoveStep::Cell => "making the cell on the new node",
        MoveStep::Start => "starting",
        MoveStep::Health => "waiting for the gateway to be healthy",
        MoveStep::Gateway => "reaching the gateway",
        MoveStep::Clean => "emptying the old node's volumes",
        MoveStep::Done => "done",
    }
}

pub(crate) fn moved(moved: &fleet::moves::Moved) -> String {
    let down = if moved.down.is_zero() {
        "it was not running and is left so".to_string()
    } else {
        format!("its bot was down {:.1} s", moved.down.as_secs_f64())
    };
    let mut text = format!(
        "moved {} from {} to {} ({} KiB of state); {down}",
        moved.tenant,
        moved.from,
        moved.to,
        moved.bytes.div_ceil(1024)
    );
    if let Some(leftover) = &moved.leftover {
        text.push_str(&format!("\nwarning: {leftover}; empty them by hand"));
    }
    text
}

pub(crate) fn drained(drained: &fleet::moves::Drained) -> String {
    let mut lines: Vec<String> = drained.moved.iter().map(moved).collect();
    match &drained.failed {
        Some((tenant, error)) => {
            lines.push(format!("stopped at {tenant}: {error}"));
            if !drained.left.is_empty() {
                let left: Vec<String> = drained.left.iter().map(ToString::to_string).collect();
                lines.push(format!("not tried: {}", left.join(", ")));
            }
        }
        None if drained.moved.is_empty() => {
            lines.push(format!("no tenant is on {}", drained.node));
        }
        None => lines.push(format!("{} holds no tenant now", drained.node)),
    }
    lines.join("\n")
}

pub(crate) fn created(view: &TenantView) -> String {
    format!(
        "created {} on 127.0.0.1:{} ({})",
        view.id(),
        view.record.port,
        view.health.as_str()
    )
}

pub(crate) fn tenant_list(views: &[TenantView]) -> String {
    let mut out =
        String::from("ID                                       STATE     HEALTH   PORT   IMAGE\n");
    for view in views {
        let _ = writeln!(
            out,
            "{:<40} {:<9} {:<8} {:<6} {}",
            view.id().as_str(),
            view.state.as_str(),
            view.health.as_str(),
            view.record.port,
            view.record.image
        );
    }
    if views.is_empty() {
        out.push_str(
            "(no tenants yet; create one with `mtp tenant create <id> --bot-token-file F`)\n",
        );
    }
    out.trim_end().to_string()
}

/// `tenant show`: the record, Docker's view, and the gateway's live facts
/// when they were asked for.
pub(crate) fn show(view: &TenantView, gateway: Option<&Result<GatewayInfo, String>>) -> String {
    let record = &view.record;
    let mut lines = vec![
        format!("tenant     {}", record.id),
        format!(
            "name       {}",
            record.display_name.as_deref().unwrap_or("-")
        ),
        format!("state      {}", view.state.as_str()),
        format!("health     {}", view.health.as_str()),
        format!("gateway    ws://127.0.0.1:{}/", record.port),
        format!(
            "image      {} ({})",
            record.image,
            record.image_id.as_deref().unwrap_or("-")
        ),
        format!("model      {}", record.model),
        format!(
            "limits     {} MiB, {} CPUs, {} pids",
            record.limits.memory_bytes / (1024 * 1024),
            record.limits.nano_cpus as f64 / 1e9,
            record.limits.pids
        ),
        format!("network    mtp-cell-{} ({})", record.id, record.subnet),
        format!("paired     {}", if record.paired { "yes" } else { "no" }),
        format!("created    {}", rfc3339(record.created_at)),
    ];
    if let Some(container) = &view.container {
        lines.push(format!(
            "container  {} (restarts {}, exit code {}{})",
            container.state,
            container.restart_count,
            container.exit_code,
            if container.oom_killed {
                ", OOM killed"
            } else {
                ""
            }
        ));
    }
    if let Some(error) = &record.last_error {
        lines.push(format!("last error {error}"));
    }
    match gateway {
        Some(Ok(info)) => {
            lines.push(format!("gateway    OpenClaw {}", info.version));
            if let Some(telegram) = &info.telegram {
                let state = match (telegram.running, telegram.connected) {
                    (Some(true), Some(true)) => "running, connected",
                    (Some(true), _) => "running",
                    _ => "not running",
                };
                let mut line = format!("telegram   {state}");
                if let Some(error) = &telegram.last_error {
                    let _ = write!(line, " (last error: {error})");
                }
                lines.push(line);
            }
        }
        Some(Err(error)) => lines.push(format!("gateway    unreachable: {error}")),
        None => {}
    }
    lines.join("\n")
}

pub(crate) fn started(id: &TenantId, started: &Started) -> String {
    match started {
        Started::Started => format!("started {id}; gateway healthy"),
        Started::AlreadyRunning => format!("{id} was already running; gateway healthy"),
    }
}

pub(crate) fn stopped(id: &TenantId, stopped: &Stopped) -> String {
    match stopped {
        Stopped::Stopped => format!("stopped {id}"),
        Stopped::AlreadyStopped => format!("{id} was already stopped"),
    }
}

/// `doctor`: one block per finding (severity, subject, check, what is wrong,
/// the fix), what `--fix` repaired or could not, and a summary line.
pub(crate) fn checkup(checkup: &fleet::doctor::Checkup, fixing: bool) -> String {
    let mut out = String::new();
    for finding in &checkup.fixed {
        let _ = writeln!(
            out,
            "fixed     {:<12} {:<9} {}",
            finding.subject.as_str(),
            finding.check.as_str(),
            finding.problem
        );
    }
    for (finding, error) in &checkup.fix_failed {
        let _ = writeln!(
            out,
            "not fixed {:<12} {:<9} {}: {error}",
            finding.subject.as_str(),
            finding.check.as_str(),
            finding.problem
        );
    }
    for finding in &checkup.findings {
        let _ = writeln!(
            out,
            "{:<9} {:<12} {:<9} {}",
            finding.severity.as_str(),
            finding.subject.as_str(),
            finding.check.as_str(),
            finding.problem
        );
        let repairs = if finding.fixable && !fixing {
            "  (mtp doctor --fix does this)"
        } else {
            ""
        };
        let _ = writeln!(out, "          fix: {}{repairs}", fix(&finding.fix));
    }
    let tenants = plural(checkup.tenants, "tenant", "tenants");
    if checkup.findings.is_empty() {
        let _ = writeln!(
            out,
            "No findings: the host and {tenants} are as MTP promises."
        );
        return out;
    }
    let counts: Vec<String> = fleet::doctor::tally(&checkup.findings)
        .into_iter()
        .map(|(severity, count)| format!("{count} {}", severity.as_str()))
        .collect();
    let fixable = checkup.findings.iter().filter(|f| f.fixable).count();
    let _ = write!(
        out,
        "{} ({}) on the host and {tenants}",
        plural(checkup.findings.len(), "finding", "findings"),
        counts.join(", ")
    );
    if fixable > 0 && !fixing {
        let _ = write!(out, "; mtp doctor --fix repairs {fixable} of them");
    }
    let _ = writeln!(out, ".");
    out
}

/// The command (or edit) that fixes a doctor finding, in the CLI's terms.
pub(crate) fn fix(fix: &fleet::doctor::Fix) -> String {
    use fleet::doctor::Fix;
    match fix {
        Fix::Command(command) => command.clone(),
        Fix::OnHost(command) => format!("on the Docker host, as root: {command}"),
        Fix::DockerIptables(command) => {
            format!("start dockerd with its iptables rules (\"iptables\": true), then: {command}")
        }
        Fix::Recreate(tenant) => format!(
            "docker rm -f {} && mtp tenant reconcile (makes it again from its record)",
            tenant.cell_name()
        ),
        Fix::RecreateAndRotate(tenant) => format!(
            "docker rm -f {} && mtp tenant reconcile; then rotate the exposed secret",
            tenant.cell_name()
        ),
        Fix::Reconcile => "mtp tenant reconcile (makes it again from its record)".to_string(),
        Fix::Foreign(name) => {
            format!("docker inspect {name}; remove or rename it; then mtp tenant reconcile")
        }
        Fix::Restore(tenant) => {
            format!("mtp backup list {tenant}; then mtp backup restore <backup-id> --replace")
        }
        Fix::Upgrade(tenant) => format!("mtp tenant upgrade {tenant} --image <pinned image>"),
        Fix::PinDefaultImage => {
            "set cell.image in the config to a pinned image (name:tag or name@sha256:…)".to_string()
        }
        Fix::MakeDir(path) => format!("mkdir -m 700 -p {}", path.display()),
        Fix::Unplain(path) => format!(
            "edit {}: put ${{TELEGRAM_BOT_TOKEN}}, ${{OPENCLAW_GATEWAY_TOKEN}} or the provider key's variable in place of the secret; then rotate it",
            path.display()
        ),
        Fix::MatchStore => {
            "run the mtp binary that wrote the store, or mtp backup restore-admin <archive>".to_string()
        }
        Fix::PruneAudit => {
            "lower audit.keepDays or audit.maxRows in the config (mtp serve prunes the audit log hourly)".to_string()
        }
        Fix::FreeDisk(path) => format!(
            "df -h {}; mtp backup prune; docker image prune",
            path.display()
        ),
        Fix::Memory => "mtp capacity; mtp tenant sleep <id> for idle tenants, or add memory".to_string(),
    }
}

fn plural(count: usize, one: &str, many: &str) -> String {
    if count == 1 {
        return format!("{count} {one}");
    }
    format!("{count} {many}")
}

/// Bytes as GiB with one decimal.
fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / f64::from(1u32 << 30))
}

/// `node list`: a line per node, its labels and tenants under it.
pub(crate) fn nodes(
    nodes: &[crate::fleet::nodes::Node],
    next: &Result<String, crate::fleet::nodes::NoRoom>,
) -> String {
    let mut lines = Vec::new();
    for node in nodes {
        let leader = if node.leader { ", leader" } else { "" };
        lines.push(format!(
            "{} ({}{leader}) {} {}, {} memory, {} reserved by {}, {} free, {:.1} CPUs",
            node.hostname,
            node.role,
            node.state,
            node.availability,
            gib(node.memory_bytes),
            gib(node.reserved_bytes),
            plural(node.tenants.len(), "tenant", "tenants"),
            gib(node.free_bytes),
            node.cpus
        ));
        if !node.labels.is_empty() {
            let labels: Vec<String> = node
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            lines.push(format!("  labels: {}", labels.join(", ")));
        }
        if !node.tenants.is_empty() {
            let tenants: Vec<&str> = node.tenants.iter().map(|t| t.as_str()).collect();
            lines.push(format!("  tenants: {}", tenants.join(", ")));
        }
        lines.push(format!("  id {}", node.id));
    }
    lines.push(match next {
        Ok(host) => format!("a new tenant's cell would go to {host}"),
        Err(no_room) => {
            format!("{no_room}; free memory (mtp capacity, mtp tenant sleep) or add a node")
        }
    });
    lines.join("\n")
}

pub(crate) fn capacity(capacity: &crate::fleet::capacity::Capacity) -> String {
    let mut lines = vec![
        format!(
            "host memory {} ({} kept for the host, Docker and the admin); running cells use {}; {} free",
            gib(capacity.host_memory),
            gib(capacity.reserve),
            gib(capacity.in_use),
            gib(capacity.free)
        ),
        format!(
            "tenants: {} running, {} sleeping, {} stopped",
            capacity.running, capacity.sleeping, capacity.stopped
        ),
    ];
    match (capacity.footprint, capacity.more_running, capacity.more_at_mix) {
        (Some(cell), Some(running), Some(mix)) => {
            lines.push(format!(
                "a cell takes {} idle (median) and {} active (95th percentile), from {} samples of {} cells",
                gib(cell.idle),
                gib(cell.active),
                cell.samples,
                cell.cells
            ));
            lines.push(format!(
                "room for {running} more running, or {mix} more at the current mix of running and sleeping"
            ));
            if let Some(short) = capacity.all_awake_short.filter(|short| *short > 0) {
                lines.push(format!(
                    "if every sleeping tenant woke at once, {} would be missing",
                    gib(short)
                ));
            }
        }
        _ => lines.push(
            "no cell's memory measured yet: `mtp serve` samples running cells every monitor interval"
                .to_string(),
        ),
    }
    lines.join("\n")
}

pub(crate) fn slept(slept: &crate::fleet::sleep::Slept) -> String {
    let id = &slept.tenant;
    if slept.already {
        return format!("{id} was already asleep");
    }
    let mut line =
        format!("{id} is asleep: container stopped; it wakes on its client's next message");
    if let Some(at) = slept.wake_at {
        line.push_str(&format!(
            ", and at {} for its next scheduled job",
            rfc3339(at)
        ));
    }
    if !slept.usage_read {
        line.push_str(" (its usage could not be read first; the last reading stands)");
    }
    line
}

pub(crate) fn woken(woken: &crate::fleet::sleep::Woken) -> String {
    let id = &woken.tenant;
    if !woken.was_asleep {
        return format!("{id} is awake already");
    }
    format!(
        "woke {id}: container started in {:.1}s, gateway healthy in {:.1}s",
        woken.started_in.as_secs_f64(),
        woken.healthy_in.as_secs_f64()
    )
}

pub(crate) fn hooks(id: &TenantId, on: bool, changed: bool) -> String {
    let what = if on {
        "on: /hooks/wake and /hooks/agent (agent main) answer the cell's hooks token"
    } else {
        "off"
    };
    let change = if changed { "" } else { " (no change)" };
    format!("{id}: hooks {what}{change}")
}

pub(crate) fn upgraded(id: &TenantId, upgraded: &fleet::Upgraded) -> String {
    let how = if upgraded.left_stopped {
        "made anew, left stopped as it was"
    } else {
        "gateway healthy and paired"
    };
    format!(
        "upgraded {id} from {} to {} (generation {}); {how}",
        upgraded.from, upgraded.to, upgraded.generation
    )
}

pub(crate) fn removal_prompt(id: &TenantId, purge: bool) -> String {
    if purge {
        format!(
            "This deletes {id}'s container, network AND all its data. Type the tenant id to confirm: "
        )
    } else {
        format!(
            "Remove {id}'s container and network (data is kept)? Type the tenant id to confirm: "
        )
    }
}

pub(crate) fn removed(id: &TenantId, removed: &fleet::Removed, tenant_dir: &Path) -> String {
    let data = if removed.purged {
        "data deleted".to_string()
    } else {
        format!("data kept in {}", tenant_dir.display())
    };
    format!("removed {id}; {data}")
}

pub(crate) fn reconcile(report: &ReconcileReport) -> String {
    if report.is_clean() && report.in_progress.is_empty() {
        return "reconcile: store and Docker agree".to_string();
    }
    let ids = |ids: &[TenantId]| ids.iter().map(TenantId::to_string).collect::<Vec<_>>();
    // Each kind of finding, in the order they are told: whom it names, and
    // the line for each.
    type Finding = (Vec<String>, fn(&str) -> String);
    let leftovers = if report.leftovers_removed > 0 {
        vec![report.leftovers_removed.to_string()]
    } else {
        Vec::new()
    };
    let findings: [Finding; 9] = [
        (ids(&report.cleaned), |id| {
            format!("reconcile: undid the abandoned create of {id}")
        }),
        (ids(&report.removed), |id| {
            format!("reconcile: finished the abandoned removal of {id}")
        }),
        (ids(&report.repaired), |id| {
            format!("reconcile: made the missing container of {id} again from its record")
        }),
        (ids(&report.in_progress), |id| {
            format!("reconcile: an action on {id} is still running; left alone")
        }),
        (ids(&report.orphan_containers), |id| {
            format!(
                "reconcile: container mtp-cell-{id} has no record; inspect it, then `docker rm -f mtp-cell-{id}` if unwanted"
            )
        }),
        (report.orphan_networks.clone(), |name| {
            format!(
                "reconcile: network {name} has no tenant; remove it with `docker network rm {name}`"
            )
        }),
        (ids(&report.missing), |id| {
            format!(
                "reconcile: {id} has no container and it could not be made again (see `mtp audit --tenant {id}`); `mtp tenant rm {id}` forgets it (data is kept)"
            )
        }),
        (ids(&report.thawed), |id| {
            format!("reconcile: {id} was left paused by a backup that died; it runs again")
        }),
        (leftovers, |n| {
            format!("reconcile: removed {n} half-written backup or restore file(s) of dead actions")
        }),
    ];
    findings
        .iter()
        .flat_map(|(names, line)| names.iter().map(|name| line(name)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The audit log as rows, each ending in a newline.
pub(crate) fn audit(entries: &[fleet::AuditEntry]) -> String {
    let mut out = String::new();
    for entry in entries {
        let failure = match (&entry.step, &entry.error) {
            (Some(step), Some(error)) => format!(" at {step}: {error}"),
            (None, Some(error)) => format!(": {error}"),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "{}  {:<16} {:<24} {:<12} {}{failure}",
            rfc3339(entry.at),
            entry.actor,
            entry.action,
            entry.tenant.as_deref().unwrap_or("-"),
            entry.outcome.as_str()
        );
    }
    out
}

/// `usage collect`: one line per tenant.
pub(crate) fn collected(report: &fleet::CollectReport) -> String {
    if report.tenants.is_empty() {
        return "no tenants".to_string();
    }
    report
        .tenants
        .iter()
        .map(|(id, collected)| format!("{id}: {}", tenant_collected(collected)))
        .collect::<Vec<_>>()
        .join("\n")
}

fn tenant_collected(collected: &fleet::Collected) -> String {
    match collected {
        fleet::Collected::Read {
            days,
            models,
            ratcheted,
        } => {
            format!(
                "read {days} days and {models} model rows ({} new or raised, {} lower readings kept)",
                ratcheted.raised, ratcheted.held
            )
        }
        fleet::Collected::NotRunning => "skipped: not running".to_string(),
        fleet::Collected::NotPaired => "skipped: not paired (run `mtp tenant pair`)".to_string(),
        fleet::Collected::Failed(error) => {
            format!("failed, figures kept, retried next time: {error}")
        }
    }
}

/// `usage budget`: the budget, the month's spend, the alerts sent and a
/// suspension.
pub(crate) fn budget(id: &TenantId, status: &BudgetStatus) -> String {
    let Some(amount) = status.budget.amount else {
        return format!("{id}: no budget; set one with `mtp usage budget {id} <amount>`");
    };
    let source = if status.budget.set_by_operator {
        "set here"
    } else {
        "from config"
    };
    let notified = if status.notified.is_empty() {
        "-".to_string()
    } else {
        status
            .notified
            .iter()
            .map(|threshold| format!("{threshold}%"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let suspended = status
        .budget
        .suspended
        .as_ref()
        .map(|suspension| {
            format!(
                "; suspended ({}) since {}",
                suspension.how.as_str(),
                rfc3339(suspension.since)
            )
        })
        .unwrap_or_default();
    format!(
        "{id}: budget {amount} a month ({source}), at 100%: {}; spent {} in {} ({:.1}%); alerts sent: {notified}{suspended}",
        status.budget.action.as_str(),
        status.spend,
        status.month,
        status.spend.percent_of(amount).unwrap_or_default(),
    )
}

pub(crate) fn resumed(id: &TenantId, resumed: &fleet::Resumed) -> String {
    match resumed {
        fleet::Resumed::Resumed(how) => {
            format!("resumed {id} (it was suspended with {})", how.as_str())
        }
        fleet::Resumed::NotSuspended => format!("{id} is not suspended"),
    }
}

/// `usage --all`: every tenant ranked by cost, and the total.
pub(crate) fn fleet_usage(spec: &PeriodSpec, zone: &str, summary: &FleetSummary) -> String {
    let mut out = format!(
        "usage {spec} ({}, {zone})\n{:<40} {:>12} {:>12} {:>14}\n",
        summary.period, "TENANT", "COST", "BILLABLE", "TOKENS"
    );
    for ranked in &summary.tenants {
        let _ = writeln!(
            out,
            "{:<40} {:>12} {:>12} {:>14}",
            ranked.tenant.as_str(),
            ranked.cost.to_string(),
            ranked.billable.to_string(),
            ranked.tokens
        );
    }
    let _ = write!(
        out,
        "{:<40} {:>12} {:>12}",
        "TOTAL",
        summary.cost.to_string(),
        summary.billable.to_string()
    );
    out
}

/// `usage <id>`: tokens, cost, the bill and the cost per model.
pub(crate) fn tenant_usage(spec: &PeriodSpec, zone: &str, summary: &Summary) -> String {
    let totals = &summary.totals;
    let bill = &summary.bill;
    let mut lines = vec![
        format!(
            "usage of {} {spec} ({}, {zone})",
            summary.tenant, summary.period
        ),
        format!(
            "tokens     {} in, {} out, {} cache read, {} cache write",
            totals.input, totals.output, totals.cache_read, totals.cache_write
        ),
        format!("cost       {}", totals.cost),
        format!(
            "billable   {} = {} usage ({}% markup) + {} fee",
            bill.total, bill.usage, bill.markup_percent, bill.fee
        ),
        format!(
            "as of      {}",
            summary
                .as_of
                .map(rfc3339)
                .unwrap_or_else(|| "never read".to_string())
        ),
    ];
    if !summary.models.is_empty() {
        lines.push(format!("{:<48} {:>12} {:>14}", "MODEL", "COST", "TOKENS"));
        for (model, figures) in &summary.models {
            lines.push(format!(
                "{model:<48} {:>12} {:>14}",
                format!("{:.4}", figures.cost),
                figures.tokens()
            ));
        }
    }
    lines.join("\n")
}

/// Bytes for people: `12.3 MB`.
pub(crate) fn bytes(n: u64) -> String {
    #[allow(clippy::cast_precision_loss)]
    let value = n as f64;
    if value >= 1e9 {
        format!("{:.2} GB", value / 1e9)
    } else if value >= 1e6 {
        format!("{:.1} MB", value / 1e6)
    } else if value >= 1e3 {
        format!("{:.1} kB", value / 1e3)
    } else {
        format!("{n} B")
    }
}

pub(crate) fn backup_step(step: fleet::backup::BackupStep) -> &'static str {
    use fleet::backup::BackupStep;
    match step {
        BackupStep::Freeze => "pausing the cell",
        BackupStep::Copy => "copying its state",
        BackupStep::Thaw => "letting it run on",
        BackupStep::Encrypt => "compressing and encrypting",
        BackupStep::AfterCommand => "running backup.afterCommand",
        BackupStep::Done => "done",
    }
}

pub(crate) fn restore_step(step: fleet::backup::RestoreStep) -> String {
    use fleet::backup::RestoreStep;
    match step {
        RestoreStep::Read => "decrypting and checking the archive".to_string(),
        RestoreStep::SafetyBackup => "backing up the current state first".to_string(),
        RestoreStep::Replace => "removing the current tenant".to_string(),
        RestoreStep::Cell(step) => create_step(step).to_string(),
    }
}

pub(crate) fn backed_up(done: &fleet::backup::BackedUp) -> String {
    let who = done
        .backup
        .tenant
        .as_ref()
        .map_or_else(|| "the admin".to_string(), ToString::to_string);
    let mut line = format!(
        "backed up {who}: {} ({}, {} of state; paused {} ms) at {}",
        done.backup.id,
        bytes(done.backup.bytes),
        bytes(done.data_bytes),
        done.paused.as_millis(),
        done.backup.path.display()
    );
    match &done.after_command {
        Some(Ok(())) => line.push_str("; backup.afterCommand ran"),
        Some(Err(why)) => line.push_str(&format!("; but backup.afterCommand failed: {why}")),
        None => {}
    }
    line
}

pub(crate) fn backup_failed(id: &TenantId, err: &anyhow::Error) -> String {
    format!("backing up {id} failed: {err:#}")
}

pub(crate) fn backup_list(backups: &[fleet::backup::Backup], now: i64) -> String {
    if backups.is_empty() {
        return "no backups yet; take one with `mtp backup create <id>`".to_string();
    }
    let mut out = format!("{:<40} {:>10}  {:<20}  AGE\n", "BACKUP", "SIZE", "CREATED");
    for backup in backups {
        out.push_str(&format!(
            "{:<40} {:>10}  {:<20}  {}\n",
            backup.id,
            bytes(backup.bytes),
            rfc3339(backup.created_at),
            age(now - backup.created_at)
        ));
    }
    out
}

/// A duration in seconds as `3d 4h`, `5h 10m`, `12m`.
pub(crate) fn age(seconds: i64) -> String {
    let s = seconds.max(0);
    let (d, h, m) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else {
        format!("{m}m")
    }
}

pub(crate) fn restored(view: &TenantView, backup: &str) -> String {
    format!(
        "restored {} from {backup}: {}, port {}, paired",
        view.record.id,
        view.state.as_str(),
        view.record.port
    )
}

pub(crate) fn verified(verified: &fleet::backup::Verified) -> String {
    format!(
        "verified {}: a scratch cell restored {} files ({}) and was healthy and paired in {:.1} s; it was removed again",
        verified.backup_id,
        verified.files,
        bytes(verified.data_bytes),
        verified.boot.as_secs_f64()
    )
}

pub(crate) fn pruned(pruned: &fleet::backup::Pruned, dry_run: bool) -> String {
    let verb = if dry_run { "would delete" } else { "deleted" };
    let mut lines: Vec<String> = pruned
        .deleted
        .iter()
        .map(|b| format!("{verb} {} ({})", b.id, bytes(b.bytes)))
        .collect();
    lines.push(format!(
        "retention: {} kept, {} {verb}",
        pruned.kept.len(),
        pruned.deleted.len()
    ));
    lines.join("\n")
}

pub(crate) fn admin_backed_up(backup: &fleet::backup::Backup) -> String {
    format!(
        "backed up the admin's store: {} ({}) at {}",
        backup.id,
        bytes(backup.bytes),
        backup.path.display()
    )
}

pub(crate) fn admin_restored(restored: &fleet::backup::AdminRestored, data_dir: &Path) -> String {
    format!(
        "restored the admin's store from {} ({}) into {}; run `mtp tenant reconcile` to compare it with Docker",
        restored.backup_id,
        bytes(restored.store_bytes),
        data_dir.display()
    )
}

pub(crate) fn offboarded(
    id: &TenantId,
    done: &fleet::backup::Offboarded,
    tenant_dir: &Path,
) -> String {
    let sessions = match &done.sessions {
        Ok(n) => format!("{n} sessions"),
        Err(why) => format!("no sessions: {why}"),
    };
    format!(
        "final backup {} at {}\nthe client's export ({}, {sessions}) at {}\n{}",
        done.backup.backup.id,
        done.backup.backup.path.display(),
        bytes(done.export_bytes),
        done.export.display(),
        self::removed(id, &done.removed, tenant_dir)
    )
}

/// What the operator can do about a failure, in the CLI's words: fleet
/// reports the facts (an unknown id and the close ones, what a failed create
/// kept, an obstacle); the commands to run are named here.
pub(crate) fn hint(err: &anyhow::Error) -> Option<String> {
    let obstacle_hint = |obstacle: &fleet::Obstacle| match obstacle {
        fleet::Obstacle::DockerUnreachable => {
            "start it (for example `sudo scripts/docker-up.sh`) or set MTP_DOCKER_HOST".to_string()
        }
        fleet::Obstacle::ImageMissing { .. } => {
            "build it first (scripts/build-test-image.sh for the test image)".to_string()
        }
        fleet::Obstacle::NotPaired { tenant } => format!("run `mtp tenant pair {tenant}`"),
        fleet::Obstacle::Asleep { tenant } => format!("wake it with `mtp tenant wake {tenant}`"),
        fleet::Obstacle::CellUser { uid } => format!("run mtp as root or as uid {uid}"),
    };
    if let Some(unknown) = err.downcast_ref::<fleet::UnknownTenant>() {
        return Some(unknown_tenant_hint(unknown));
    }
    match err.downcast_ref::<fleet::backup::RestoreError>() {
        Some(fleet::backup::RestoreError::Exists(id)) => {
            return Some(format!(
                "pass --replace to back it up and restore over it, or --as <new-id> with --bot-token-file to restore beside it (mtp backup restore … --as {id}-copy)"
            ));
        }
        Some(fleet::backup::RestoreError::ReplacedThenFailed { safety, .. }) => {
            return Some(format!("put it back with `mtp backup restore {safety}`"));
        }
        Some(fleet::backup::RestoreError::Unreadable { locked: true, .. }) => {
            return Some(
                "if backup.recipients names your own key, pass --identity with its identity file"
                    .to_string(),
            );
        }
        _ => {}
    }
    match err.downcast_ref::<fleet::CreateError>() {
        Some(fleet::CreateError::Exists(id)) => {
            return Some(format!(
                "pick another id or remove it first (mtp tenant rm {id})"
            ));
        }
        Some(fleet::CreateError::Failed {
            tenant,
            kept,
            obstacle,
            ..
        }) => {
            let mut hints = Vec::new();
            if *kept {
                hints.push(format!("remove them with `mtp tenant rm {tenant} --purge`"));
            }
            hints.extend(obstacle.as_ref().map(obstacle_hint));
            return (!hints.is_empty()).then(|| hints.join("; "));
        }
        _ => {}
    }
    if let Some(fleet::UpgradeError::Failed {
        tenant,
        outcome: fleet::Rollback::Failed { .. },
        ..
    }) = err.downcast_ref::<fleet::UpgradeError>()
    {
        return Some(format!("see `mtp tenant logs {tenant}`"));
    }
    fleet::obstacle(err).as_ref().map(obstacle_hint)
}

/// The close ids of an unknown one, or where to see them all.
pub(crate) fn unknown_tenant_hint(unknown: &fleet::UnknownTenant) -> String {
    if unknown.similar.is_empty() {
        return "`mtp tenant list` shows the tenants there are".to_string();
    }
    let names: Vec<&str> = unknown.similar.iter().map(TenantId::as_str).collect();
    format!("did you mean {}?", names.join(" or "))
}

/// What a rollout does now, for the progress bar.
pub(crate) fn rollout_now(now: &crate::fleet::rollout::RolloutProgress<'_>) -> String {
    let rollout = now.rollout;
    if let Some((tenant, step)) = now.current {
        let wave = rollout
            .waves
            .iter()
            .position(|wave| wave.iter().any(|id| id == tenant))
            .unwrap_or(0);
        return format!(
            "{} {}/{}: {tenant}: {}",
            if wave == 0 { "canary" } else { "wave" },
            wave,
            rollout.waves.len() - 1,
            upgrade_step(step)
        );
    }
    match rollout.next_wave_at {
        Some(at) => format!("pausing until {}", clock(at)),
        None => rollout.state.as_str().to_string(),
    }
}

/// A rollout's plan: waves, and who is passed by and why.
pub(crate) fn rollout_plan(plan: &crate::fleet::rollout::Rollout) -> String {
    let mut text = format!(
        "rollout to {} ({} tenants; pause {}s between waves)\n",
        plan.image,
        plan.tenants.len(),
        plan.pause_secs
    );
    for (index, wave) in plan.waves.iter().enumerate() {
        let name = if index == 0 {
            "canary".to_string()
        } else {
            format!("wave {index}")
        };
        text.push_str(&format!("  {name}: {}\n", wave.join(", ")));
    }
    for (tenant, why) in &plan.passed_by {
        text.push_str(&format!("  passed by: {tenant} ({why})\n"));
    }
    text.trim_end().to_string()
}

/// A rollout's report: where each tenant stands.
pub(crate) fn rollout(rollout: &crate::fleet::rollout::Rollout) -> String {
    use crate::fleet::rollout::TenantStep;
    let (done, total) = rollout.done_count();
    let mut text = format!(
        "rollout to {}: {} ({done}/{total} done), started {} by {}\n",
        rollout.image,
        rollout.state.as_str(),
        clock(rollout.created_at),
        rollout.by
    );
    if let Some(because) = &rollout.halted_because {
        text.push_str(&format!("  halted: {because}\n"));
    }
    if let Some(at) = rollout.next_wave_at {
        text.push_str(&format!("  next wave at {}\n", clock(at)));
    }
    for tenant in rollout.order() {
        let line = match rollout.tenants.get(tenant) {
            Some(TenantStep::Pending) | None => "pending".to_string(),
            Some(TenantStep::Upgrading { since }) => format!("upgrading since {}", clock(*since)),
            Some(TenantStep::Upgraded { from }) => format!("upgraded from {from}"),
            Some(TenantStep::Failed {
                reason,
                rolled_back,
            }) => format!(
                "FAILED ({}): {reason}",
                if *rolled_back {
                    "back on its old image"
                } else {
                    "NOT rolled back"
                }
            ),
            Some(TenantStep::Skipped { reason }) => format!("skipped: {reason}"),
        };
        text.push_str(&format!("  {tenant}: {line}\n"));
    }
    for (tenant, why) in &rollout.passed_by {
        text.push_str(&format!("  {tenant}: passed by ({why})\n"));
    }
    text.trim_end().to_string()
}

fn clock(at: i64) -> String {
    chrono::DateTime::from_timestamp(at, 0).map_or_else(
        || at.to_string(),
        |at| at.format("%Y-%m-%d %H:%M UTC").to_string(),
    )
}

/// After `tenant pin`: the pin, and what the tenant runs when that differs.
pub(crate) fn pinned(id: &TenantId, pin: Option<&str>, runs: &str) -> String {
    match pin {
        None => format!("{id} is unpinned: fleet upgrades include it again"),
        Some(pin) if pin == runs => format!("{id} is pinned to {pin}: fleet upgrades pass it by"),
        Some(pin) => format!(
            "{id} is pinned to {pin} (it runs {runs}; move it with `mtp tenant upgrade {id} --image {pin}`): fleet upgrades pass it by"
        ),
    }
}

/// After `tenant resize`.
pub(crate) fn resized(id: &TenantId, resized: &crate::fleet::resize::Resized) -> String {
    let gib = |bytes: i64| bytes as f64 / f64::from(1u32 << 30);
    let cpus = |nano: i64| nano as f64 / 1e9;
    format!(
        "{id} resized in place: memory {:.2} GiB → {:.2} GiB, CPUs {} → {} (same container, not restarted)",
        gib(resized.before.memory_bytes),
        gib(resized.after.memory_bytes),
        cpus(resized.before.nano_cpus),
        cpus(resized.after.nano_cpus)
    )
}

/// `config get`: the value, pretty, and whether a restart is pending.
pub(crate) fn config_read(id: &TenantId, read: &crate::fleet::config_edit::ConfigRead) -> String {
    let value = read.value.as_ref().map_or_else(
        || "(not set)".to_string(),
        |value| serde_json::to_string_pretty(value).unwrap_or_default(),
    );
    let pending = if read.restart_pending {
        format!("\n({id}'s gateway has not applied its newest config yet: a restart is pending)")
    } else {
        String::new()
    };
    match &read.path {
        Some(path) => format!("{path} = {value}{pending}"),
        None => format!("{value}{pending}"),
    }
}

/// `config set`: one line per tenant, the diff and what happened.
pub(crate) fn config_changes(
    changes: &[crate::fleet::config_edit::ConfigChange],
    dry_run: bool,
) -> String {
    use crate::fleet::config_edit::{Applies, Outcome};
    let mut text = String::new();
    for change in changes {
        let before = change
            .before
            .as_ref()
            .map_or_else(|| "(not set)".to_string(), ToString::to_string);
        let applies = match change.applies {
            Applies::Hot => "applies hot, no restart",
            Applies::Restart => "restarts the gateway",
            Applies::NoReload => "read at next use",
        };
        let outcome = match &change.outcome {
            Outcome::Previewed { .. } => if dry_run { "dry run: not applied" } else { "not applied" }.to_string(),
            Outcome::Unchanged => "already so: nothing to do".to_string(),
            Outcome::Applied => "applied".to_string(),
            Outcome::Restarted { container: false } => "applied; the gateway restarted and runs it".to_string(),
            Outcome::Restarted { container: true } => {
                "applied; the gateway did not restart by itself, so its container was restarted; it runs it".to_string()
            }
            Outcome::Failed(why) => format!("FAILED: {why}"),
        };
        let _ = writeln!(
            text,
            "{}: {}: {before} → {} ({applies}) — {outcome}",
            change.tenant, change.path, change.after
        );
    }
    text.trim_end().to_string()
}

/// `tenant skills`: the catalog with what is on.
pub(crate) fn skills(id: &TenantId, skills: &crate::fleet::skills::Skills) -> String {
    let mut text = match &skills.allowed {
        None => format!("{id} uses OpenClaw's default bundled skills (none chosen)\n"),
        Some(_) => format!("{id}'s bundled skills:\n"),
    };
    for skill in crate::fleet::catalog::skills() {
        let mark = if skills.has(&skill.id) { "on " } else { "off" };
        let _ = writeln!(text, "  {mark}  {} ({})", skill.id, skill.label);
    }
    text.trim_end().to_string()
}

/// `tenant events`: one line per event, newest first.
pub(crate) fn tenant_events(
    id: &TenantId,
    events: &[crate::fleet::history::TenantEvent],
) -> String {
    if events.is_empty() {
        return format!("nothing recorded for {id} in that time");
    }
    let mut text = String::new();
    for event in events {
        let when = chrono::DateTime::from_timestamp(event.at, 0).map_or_else(
            || event.at.to_string(),
            |at| at.format("%Y-%m-%d %H:%M:%S").to_string(),
        );
        let failed = match (&event.outcome, &event.error) {
            (fleet::Outcome::Ok, _) => String::new(),
            (_, Some(error)) => format!(" FAILED {error}"),
            (_, None) => " FAILED".to_string(),
        };
        let _ = writeln!(
            text,
            "{when}  {:<13} {} (by {}){failed}",
            event.kind.as_str(),
            event.action,
            event.by
        );
    }
    text.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind of finding, one line each, in the order the CLI has always
    /// told them.
    #[test]
    fn reconcile_tells_each_finding_in_order() {
        let id = |text: &str| -> TenantId { text.parse().unwrap() };
        let report = ReconcileReport {
            cleaned: vec![id("a")],
            removed: vec![id("b")],
            repaired: vec![id("c")],
            in_progress: vec![id("d")],
            orphan_containers: vec![id("e")],
            orphan_networks: vec!["mtp-net-f".to_string()],
            missing: vec![id("g"), id("h")],
            thawed: vec![id("i")],
            leftovers_removed: 2,
        };
        let expected = "\
reconcile: undid the abandoned create of a
reconcile: finished the abandoned removal of b
reconcile: made the missing container of c again from its record
reconcile: an action on d is still running; left alone
reconcile: container mtp-cell-e has no record; inspect it, then `docker rm -f mtp-cell-e` if unwanted
reconcile: network mtp-net-f has no tenant; remove it with `docker network rm mtp-net-f`
reconcile: g has no container and it could not be made again (see `mtp audit --tenant g`); `mtp tenant rm g` forgets it (data is kept)
reconcile: h has no container and it could not be made again (see `mtp audit --tenant h`); `mtp tenant rm h` forgets it (data is kept)
reconcile: i was left paused by a backup that died; it runs again
reconcile: removed 2 half-written backup or restore file(s) of dead actions";
        assert_eq!(reconcile(&report), expected);
        assert_eq!(
            reconcile(&ReconcileReport::default()),
            "reconcile: store and Docker agree"
        );
    }
}
