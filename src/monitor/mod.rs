//! The fleet monitor inside `mtp serve`: a health sweep every interval, the
//! alert state machine per (tenant, check), memory warnings, self-healing and
//! the daily digest, the repair of a running tenant's missing container
//! (once per disappearance, with one alert); beside the sweeps, Docker's
//! events, so a crash is reported as it happens (exit code, OOM, log tail)
//! and its end once the gateway answers again. One loop selects over a closed set of events (`Event`). It
//! never sends a Telegram message: alerts and digests are values on a
//! channel; `bot/` renders them.
//!
//! Architecture invariant: `monitor/` asks `fleet` for everything; it never
//! touches the store, Docker or a gateway itself.

pub mod backups;
pub mod crashes;
mod doctor;
pub mod metrics;
pub mod rules;
pub mod sleep;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::config::MonitorSettings;
use crate::fleet::events::{CellChange, CellEvent, Watched};
use crate::fleet::health::{Sweep, SweepSettings, TenantHealth};
use crate::fleet::{self, App};
use crate::tenant::{AlertState, AlertStatus, CellState, Check, TenantId, Usd};
use crashes::{Crashes, Verdict};
use rules::{Rules, Transition};

/// After a container (re)starts, its gateway needs about 20 s to answer (FACTS.md);
/// gateway and channel failures this soon are a boot, not an outage.
const STARTUP_GRACE_SECS: i64 = 90;
/// Memory use, as a share of the limit, that raises a warning.
const MEMORY_WARN: f64 = 0.90;
/// Log lines that come with a crash alert.
const CRASH_LOG_LINES: usize = 10;
/// How often a crashed cell's gateway is asked whether it answers again: it
/// boots in 10-20 s (FACTS.md), so the "back" message is at most this late.
const RECHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(2);
/// Transitions within the window that make a check flapping, and the window.
const FLAP_TRANSITIONS: usize = 4;
const FLAP_WINDOW_SECS: i64 = 30 * 60;
/// Self-healing waits 1, 2, 4, … sweeps between attempts, at most this many.
const MAX_HEAL_BACKOFF_SWEEPS: u32 = 32;

/// Something the operator should hear about.
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    Alert(Alert),
    Digest(Digest),
    /// The scheduled backup run could not back these up.
    BackupsFailed(Vec<backups::BackupFailure>),
    /// The daily doctor run's findings that were not reported before.
    Doctor(Vec<fleet::doctor::Finding>),
    /// A tenant's newest backup is older than twice the schedule.
    BackupStale {
        tenant: TenantId,
        /// Its newest backup (id, unix seconds), if it has one.
        last: Option<(String, i64)>,
        /// Unix seconds since when it has had no fresh backup.
        since: i64,
    },
}

/// One alert: always names the tenant, the check, since when, and the last error.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub tenant: TenantId,
    pub check: Check,
    pub kind: AlertKind,
    /// Unix seconds when the problem began (or the event happened).
    pub since: i64,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AlertKind {
    Down,
    Recovered {
        down_for: i64,
    },
    Flapping {
        transitions: usize,
    },
    Stable,
    /// The gateway died on its own (not by a stop or kill asked through
    /// Docker); Docker's restart policy brings it back.
    Crashed {
        exit_code: i64,
        oom: bool,
        log_tail: Vec<String>,
    },
    /// `crashes` crashes within `window` seconds.
    CrashLoop {
        crashes: usize,
        window: i64,
        exit_code: i64,
        oom: bool,
        log_tail: Vec<String>,
    },
    /// The gateway answers again after a crash; `down_for` seconds without it.
    Back {
        down_for: i64,
    },
    OomKilled,
    Healed,
    HealFailed,
    /// The container of a running tenant was gone (removed behind MTP's
    /// back, or left so by a dead action); the monitor tried once to make it
    /// again from the record. `made_again` false: `last_error` says why not.
    Missing {
        made_again: bool,
    },
}

impl AlertKind {
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            AlertKind::Down => "down",
            AlertKind::Recovered { .. } => "recovered",
            AlertKind::Flapping { .. } => "flapping",
            AlertKind::Stable => "stable",
            AlertKind::Crashed { .. } => "crashed",
            AlertKind::CrashLoop { .. } => "crash loop",
            AlertKind::Back { .. } => "back",
            AlertKind::OomKilled => "oom killed",
            AlertKind::Healed => "healed",
            AlertKind::HealFailed => "heal failed",
            AlertKind::Missing { made_again: true } => "missing, made again",
            AlertKind::Missing { made_again: false } => "missing",
        }
    }
}

/// The daily digest.
#[derive(Debug, Clone, PartialEq)]
pub struct Digest {
    pub tenants: usize,
    pub up: usize,
    pub down: Vec<TenantId>,
    pub stopped: usize,
    /// Restarts and heals in the last 24 h, per tenant.
    pub restarts: Vec<(String, usize)>,
    /// Alerts in the last 24 h.
    pub alerts: usize,
    /// The day `top_costs` is for (yesterday in `usage.timeZone`).
    pub cost_day: chrono::NaiveDate,
    /// Yesterday's most expensive tenants (at most `DIGEST_TOP_COSTS`), and
    /// the whole fleet's cost that day.
    pub top_costs: Vec<(TenantId, Usd)>,
    pub fleet_cost: Usd,
}

/// How many tenants the digest names by cost.
pub const DIGEST_TOP_COSTS: usize = 5;

/// What survives between sweeps in memory (the alert states live in the store).
struct Memory {
    /// Per tenant: the container and its restart count the last sweep saw
    /// (plus the crashes reported by events since).
    restart_counts: HashMap<TenantId, (String, i64)>,
    oom_reported: HashMap<TenantId, String>,
    heal: HashMap<TenantId, (u32, u32)>,
    /// Tenants whose container is missing and was repaired (or tried) for
    /// this disappearance: one attempt and one alert each, until a container
    /// exists again.
    missing: HashSet<TenantId>,
    last_digest_day: Option<chrono::NaiveDate>,
    crashes: Crashes,
    /// Docker's event stream is open: crashes come from it, not from counts.
    events_live: bool,
    backups: backups::Schedule,
    doctor: doctor::Schedule,
}

/// Everything the monitor's loop reacts to.
enum Event {
    /// Time for a sweep.
    Tick,
    /// Something from Docker's event stream (or about it).
    Docker(Watched),
    /// Time to ask crashed cells whether their gateway answers again.
    Recheck,
    Shutdown,
}

/// Runs sweeps until `shutdown` is cancelled. Each sweep is published on
/// `latest` (for `/health` and `/metrics`); alerts and digests go to `reports`.
pub async fn run(
    app: App,
    settings: MonitorSettings,
    reports: mpsc::Sender<Report>,
    latest: watch::Sender<Option<Arc<Sweep>>>,
    metrics: Arc<metrics::Metrics>,
    shutdown: CancellationToken,
) {
    let mut memory = Memory {
        restart_counts: HashMap::new(),
        oom_reported: HashMap::new(),
        heal: HashMap::new(),
        missing: HashSet::new(),
        last_digest_day: Some(chrono::Utc::now().date_naive())
            .filter(|_| past_digest_time(&settings)),
        crashes: Crashes::default(),
        events_live: false,
        backups: backups::Schedule::default(),
        doctor: doctor::Schedule::new(settings.digest_at),
    };
    let mut interval = tokio::time::interval(settings.interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut recheck = tokio::time::interval(RECHECK_EVERY);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut events = fleet::events::watch(&app, shutdown.clone());
    let mut events_open = true;
    loop {
        let outages = !memory.crashes.outages().is_empty();
        let event = tokio::select! {
            _ = shutdown.cancelled() => Event::Shutdown,
            _ = interval.tick() => Event::Tick,
            watched = events.recv(), if events_open => match watched {
                Some(watched) => Event::Docker(watched),
                // The watcher ends only at shutdown.
                None => {
                    events_open = false;
                    continue;
                }
            },
            _ = recheck.tick(), if outages => Event::Recheck,
        };
        // Whether the event calls for a sweep, and if so whether that sweep
        // judges crashes by the containers' restart counts.
        let sweep_counting_crashes = match event {
            Event::Shutdown => return,
            Event::Tick => Some(!memory.events_live),
            Event::Docker(Watched::Cell(event)) => {
                if let Some(alert) = on_cell_event(&app, &mut memory, event).await {
                    emit(&app, &reports, vec![alert]).await;
                }
                None
            }
            Event::Docker(Watched::Connected { after_gap }) => {
                memory.events_live = true;
                // Events in the gap are lost: a sweep re-syncs, judging
                // crashes by the containers' restart counts.
                after_gap.then_some(true)
            }
            Event::Docker(Watched::Lost { .. }) => {
                memory.events_live = false;
                None
            }
            Event::Recheck => {
                let alerts = recheck_outages(&app, &mut memory).await;
                emit(&app, &reports, alerts).await;
                None
            }
        };
        if let Some(count_crashes) = sweep_counting_crashes {
            sweep(
                &app,
                &settings,
                &reports,
                &latest,
                &metrics,
                &mut memory,
                count_crashes,
            )
            .await;
        }
    }
}

/// One sweep and what follows it: metrics, the latest sweep, the digest.
async fn sweep(
    app: &App,
    settings: &MonitorSettings,
    reports: &mpsc::Sender<Report>,
    latest: &watch::Sender<Option<Arc<Sweep>>>,
    metrics: &metrics::Metrics,
    memory: &mut Memory,
    count_crashes: bool,
) {
    let sweep = match sweep_once(app, settings, reports, memory, count_crashes).await {
        Ok((sweep, firing)) => {
            for health in &sweep.tenants {
                let tenant = health.record.id.as_str();
                metrics.set_firing(tenant, firing.get(&health.record.id).copied().unwrap_or(0));
            }
            sweep
        }
        Err(err) => {
            tracing::error!(cause = %format!("{err:#}"), "health sweep failed");
            return;
        }
    };
    metrics.observe(&sweep);
    if let Err(err) = fleet::capacity::record_footprints(app, &sweep) {
        tracing::warn!(cause = %format!("{err:#}"), "cannot store the cells' memory samples");
    }
    let records: Vec<_> = sweep.tenants.iter().map(|t| t.record.clone()).collect();
    let _ = latest.send(Some(Arc::new(sweep)));
    if let Some(digest) = due_digest(app, settings, latest, memory) {
        let _ = reports.send(Report::Digest(digest)).await;
    }
    memory.backups.tick(app, reports, &records).await;
    memory.doctor.tick(app, reports);
}

/// Writes alerts to the audit log and hands them to the notifier.
async fn emit(app: &App, reports: &mpsc::Sender<Report>, alerts: Vec<Alert>) {
    for alert in alerts {
        // The tenant's history (`tenant events`) reads these: with the exit
        // code of a crash and how long an outage lasted.
        let detail = match &alert.kind {
            AlertKind::Crashed { exit_code, oom, .. } => {
                format!(" (exit {exit_code}{})", if *oom { ", OOM" } else { "" })
            }
            AlertKind::CrashLoop {
                crashes,
                exit_code,
                oom,
                ..
            } => format!(
                " ({crashes} crashes, exit {exit_code}{})",
                if *oom { ", OOM" } else { "" }
            ),
            AlertKind::Recovered { down_for } | AlertKind::Back { down_for } => {
                format!(" after {down_for}s")
            }
            _ => String::new(),
        };
        fleet::record_alert(
            app,
            &alert.tenant,
            &format!("{} {}{detail}", alert.kind.as_str(), alert.check.as_str()),
        );
        let _ = reports.send(Report::Alert(alert)).await;
    }
}

/// True while the tenant is meant to run and its alerts are on.
fn watched(record: &crate::tenant::TenantRecord, now: i64) -> bool {
    record.state == CellState::Running && record.quiet_until().is_none_or(|until| until <= now)
}

/// One Docker event: a crash alerts at once; a stop asked for raises nothing.
async fn on_cell_event(app: &App, memory: &mut Memory, event: CellEvent) -> Option<Alert> {
    let tenant = &event.tenant;
    let exit_code = match event.change {
        CellChange::Signalled => {
            memory.crashes.signalled(tenant, event.at);
            return None;
        }
        CellChange::OomKilled => {
            memory.crashes.oom(tenant, event.at);
            return None;
        }
        CellChange::Started => return None,
        CellChange::Died { exit_code } => exit_code,
    };
    if memory.crashes.asked(tenant, event.at) {
        return None;
    }
    let record = match fleet::find_record(app, tenant) {
        Ok(Some(record)) => record,
        Ok(None) => return None,
        Err(err) => {
            tracing::error!(cause = %format!("{err:#}"), %tenant, "cannot read the tenant after its cell died");
            return None;
        }
    };
    // Being created, stopped through MTP, muted (an upgrade mutes): not a crash to report.
    if !watched(&record, fleet::now()) {
        memory.crashes.forget(tenant);
        return None;
    }
    // Docker's restart of this crash is accounted for: no second report by count.
    if let Some((_, count)) = memory.restart_counts.get_mut(tenant) {
        *count += 1;
    }
    let verdict = memory.crashes.crashed(tenant, event.at);
    crash_alert(app, tenant, verdict, exit_code, event.at).await
}

/// The alert for a crash verdict, with the (redacted) last log lines.
async fn crash_alert(
    app: &App,
    tenant: &TenantId,
    verdict: Verdict,
    exit_code: i64,
    at: i64,
) -> Option<Alert> {
    if verdict == Verdict::Quiet {
        return None;
    }
    let log_tail = fleet::logs(app, tenant, Some(CRASH_LOG_LINES), None)
        .await
        .map(|lines| lines.into_iter().map(|l| l.text).collect())
        .unwrap_or_default();
    let kind = match verdict {
        Verdict::Crashed { oom } => AlertKind::Crashed {
            exit_code,
            oom,
            log_tail,
        },
        Verdict::CrashLoop { crashes, oom } => AlertKind::CrashLoop {
            crashes,
            window: crashes::LOOP_WINDOW_SECS,
            exit_code,
            oom,
            log_tail,
        },
        Verdict::Quiet => return None,
    };
    Some(Alert {
        tenant: tenant.clone(),
        check: Check::Container,
        kind,
        since: at,
        last_error: Some(format!("exit code {exit_code}")),
    })
}

/// Asks each crashed cell's gateway whether it answers again; one "back" each.
async fn recheck_outages(app: &App, memory: &mut Memory) -> Vec<Alert> {
    let now = fleet::now();
    let mut asking = Vec::new();
    for (tenant, since) in memory.crashes.outages() {
        match fleet::find_record(app, &tenant) {
            Ok(Some(record)) if watched(&record, now) => asking.push((tenant, since)),
            Ok(_) => memory.crashes.forget(&tenant),
            Err(err) => {
                tracing::error!(cause = %format!("{err:#}"), %tenant, "cannot read the tenant");
            }
        }
    }
    let answers = futures_util::future::join_all(
        asking
            .iter()
            .map(|(tenant, _)| fleet::events::gateway_answers(app, tenant)),
    )
    .await;
    let mut res = Vec::new();
    for ((tenant, since), answers) in asking.into_iter().zip(answers) {
        if answers.unwrap_or(false) && memory.crashes.back(&tenant).is_some() {
            res.push(Alert {
                tenant,
                check: Check::Container,
                kind: AlertKind::Back {
                    down_for: fleet::now() - since,
                },
                since,
                last_error: None,
            });
        }
    }
    res
}

/// One sweep: probe, run the rules, persist, emit, heal.
async fn sweep_once(
    app: &App,
    settings: &MonitorSettings,
    reports: &mpsc::Sender<Report>,
    memory: &mut Memory,
    count_crashes: bool,
) -> anyhow::Result<(Sweep, HashMap<TenantId, usize>)> {
    let sweep = fleet::health::sweep(
        app,
        SweepSettings {
            probe_timeout: settings.probe_timeout,
            concurrency: settings.concurrency,
        },
    )
    .await?;
    let rules = Rules {
        down_after: settings.down_after,
        flap_transitions: FLAP_TRANSITIONS,
        flap_window: FLAP_WINDOW_SECS,
    };
    let mut states: HashMap<(TenantId, Check), AlertState> = fleet::alert_states(app)?
        .into_iter()
        .map(|(tenant, check, state)| ((tenant, check), state))
        .collect();
    let mut changed = Vec::new();
    let mut alerts = Vec::new();
    let now = sweep.at;

    for health in &sweep.tenants {
        let tenant = &health.record.id;
        if health.record.state != CellState::Running {
            // Stopped on purpose (or not yet created): nothing to alert, and
            // no stale outage carried into its next start.
            for check in Check::ALL {
                if states
                    .get(&(tenant.clone(), check))
                    .is_some_and(|s| *s != AlertState::default())
                {
                    changed.push((tenant.clone(), check, AlertState::default()));
                }
            }
            memory.heal.remove(tenant);
            memory.crashes.forget(tenant);
            memory.missing.remove(tenant);
            continue;
        }
        let muted = health.record.quiet_until().is_some_and(|until| until > now);
        if muted {
            memory.crashes.forget(tenant);
        }
        // A muted tenant is in the operator's hands (or in an upgrade's): no repair.
        if !muted && let Some(alert) = repair_missing(app, health, memory, now).await {
            let made_again = alert.kind == AlertKind::Missing { made_again: true };
            alerts.push(alert);
            if made_again {
                // The new container is judged by the next sweep; this one's
                // "missing" is told by the alert, not counted toward a DOWN.
                continue;
            }
        }
        for (check, result) in observations(health, now) {
            let state = states.entry((tenant.clone(), check)).or_default();
            let transition = rules::observe(state, &rules, now, result);
            changed.push((tenant.clone(), check, state.clone()));
            if let Some(transition) = transition
                && !muted
            {
                let kind = match transition {
                    Transition::Down { .. } => AlertKind::Down,
                    Transition::Recovered { down_for } => AlertKind::Recovered { down_for },
                    Transition::Flapping { transitions } => AlertKind::Flapping { transitions },
                    Transition::Stable => AlertKind::Stable,
                };
                let since = match &transition {
                    Transition::Down { since, .. } => *since,
                    _ => now,
                };
                alerts.push(Alert {
                    tenant: tenant.clone(),
                    check,
                    kind,
                    since,
                    last_error: state.last_error.clone(),
                });
            }
        }
        let missed = missed_crashes(health, memory, count_crashes, now);
        if !muted {
            alerts.extend(missed);
        }
        // A muted tenant is in the operator's hands (or in an upgrade's): no healing.
        if settings.heal
            && !muted
            && let Some(alert) = heal(app, health, &states, memory, now).await
        {
            alerts.push(alert);
        }
    }
    fleet::save_alert_states(app, &changed)?;
    let mut firing: HashMap<TenantId, usize> = HashMap::new();
    for (tenant, _, state) in &changed {
        if state.status == AlertStatus::Down {
            *firing.entry(tenant.clone()).or_default() += 1;
        }
    }
    let mut with_logs = Vec::with_capacity(alerts.len());
    for alert in alerts {
        with_logs.push(with_log_tail(app, alert).await);
    }
    emit(app, reports, with_logs).await;
    Ok((sweep, firing))
}

/// The pass/fail of each check. A check that cannot be judged (the gateway of a
/// dead container) is left out, so one outage raises one alert, not three.
fn observations(health: &TenantHealth, now: i64) -> Vec<(Check, Result<(), String>)> {
    let container = match &health.container {
        Ok(Some(status)) if status.running && !status.restarting => Ok(()),
        Ok(Some(status)) if status.restarting => Err(format!(
            "restarting (exit code {}, {} restarts)",
            status.exit_code, status.restart_count
        )),
        Ok(Some(status)) => Err(format!(
            "{} (exit code {}{})",
            status.state,
            status.exit_code,
            if status.oom_killed {
                ", OOM killed"
            } else {
                ""
            }
        )),
        Ok(None) => Err("the container is missing".to_string()),
        Err(error) => Err(format!("cannot inspect: {error}")),
    };
    let container_ok = container.is_ok();
    let mut res = vec![(Check::Container, container)];
    if !container_ok {
        return res;
    }
    let booting = match &health.container {
        Ok(Some(status)) => status
            .started_at
            .as_deref()
            .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
            .is_some_and(|at| now - at.timestamp() < STARTUP_GRACE_SECS),
        _ => false,
    };
    let answers = |probe: &Option<crate::fleet::health::ProbeResult>| {
        probe.as_ref().is_some_and(|probe| probe.ok)
    };
    if booting && !(answers(&health.healthz) && answers(&health.rpc_health)) {
        // Still booting (`/healthz` answers seconds before the gateway takes
        // RPC): judge the gateway once it answered both or the grace is over.
        return res;
    }
    let gateway = [
        ("/healthz", &health.healthz),
        ("rpc health", &health.rpc_health),
    ]
    .into_iter()
    .filter_map(|(name, probe)| {
        probe
            .as_ref()
            .filter(|p| !p.ok)
            .map(|p| format!("{name}: {}", p.error.clone().unwrap_or_default()))
    })
    .collect::<Vec<_>>();
    let gateway_ok = gateway.is_empty();
    res.push((
        Check::Gateway,
        if gateway_ok {
            Ok(())
        } else {
            Err(gateway.join("; "))
        },
    ));
    if let Some((used, limit)) = health.memory
        && limit > 0
    {
        let share = used as f64 / limit as f64;
        let result = if share >= MEMORY_WARN {
            Err(format!(
                "{} MiB of {} MiB ({:.0}%)",
                used >> 20,
                limit >> 20,
                share * 100.0
            ))
        } else {
            Ok(())
        };
        res.push((Check::Memory, result));
    }
    if gateway_ok && let Some(channel) = &health.channel {
        let result = match channel {
            Ok(info) if info.last_error.is_some() => Err(format!(
                "telegram: {}",
                info.last_error.clone().unwrap_or_default()
            )),
            Ok(info) if info.running == Some(false) => {
                Err("telegram: the channel is not running".to_string())
            }
            Ok(_) => Ok(()),
            Err(error) => Err(format!("channels.status: {error}")),
        };
        res.push((Check::Channel, result));
    }
    res
}

/// Crashes the event stream did not deliver (it was down, or not yet open),
/// judged from the container's restart count, and OOM kills seen by inspect.
/// With the stream open, this only keeps the counts current.
fn missed_crashes(
    health: &TenantHealth,
    memory: &mut Memory,
    count_crashes: bool,
    now: i64,
) -> Vec<Alert> {
    let mut res = Vec::new();
    let tenant = &health.record.id;
    let Ok(Some(status)) = &health.container else {
        return res;
    };
    let previous = memory.restart_counts.insert(
        tenant.clone(),
        (status.container_id.clone(), status.restart_count),
    );
    let missed = match previous {
        // The same container, restarted more often than events told.
        Some((container, before)) if container == status.container_id => {
            let missed = status.restart_count - before;
            if missed < 0 {
                // Events counted a restart Docker has not made yet.
                memory
                    .restart_counts
                    .insert(tenant.clone(), (container, before));
            }
            missed
        }
        _ => 0,
    };
    if !count_crashes {
        return res;
    }
    if missed > 0 {
        // At most a loop's worth: each counts toward the crash-loop verdict.
        let verdicts: Vec<Verdict> = (0..missed.min(crashes::LOOP_CRASHES as i64))
            .map(|_| memory.crashes.crashed(tenant, now))
            .collect();
        let verdict = verdicts
            .iter()
            .copied()
            .find(|v| matches!(v, Verdict::CrashLoop { .. }))
            .or_else(|| verdicts.iter().copied().find(|v| *v != Verdict::Quiet));
        let oom = status.oom_killed;
        let kind = match verdict {
            Some(Verdict::CrashLoop { crashes, .. }) => Some(AlertKind::CrashLoop {
                crashes,
                window: crashes::LOOP_WINDOW_SECS,
                exit_code: status.exit_code,
                oom,
                log_tail: Vec::new(),
            }),
            Some(Verdict::Crashed { .. }) => Some(AlertKind::Crashed {
                exit_code: status.exit_code,
                oom,
                log_tail: Vec::new(),
            }),
            _ => None,
        };
        if let Some(kind) = kind {
            res.push(Alert {
                tenant: tenant.clone(),
                check: Check::Container,
                kind,
                since: now,
                last_error: Some(format!("exit code {}", status.exit_code)),
            });
        }
    }
    let started = status.started_at.clone().unwrap_or_default();
    if status.oom_killed && memory.oom_reported.get(tenant) != Some(&started) {
        memory.oom_reported.insert(tenant.clone(), started);
        res.push(Alert {
            tenant: tenant.clone(),
            check: Check::Memory,
            kind: AlertKind::OomKilled,
            since: now,
            last_error: Some(format!(
                "killed for exceeding its {} MiB limit",
                health.record.limits.memory_bytes >> 20
            )),
        });
    }
    res
}

/// Fills in the log tail of a crash alert made from counts.
async fn with_log_tail(app: &App, mut alert: Alert) -> Alert {
    if let AlertKind::Crashed { log_tail, .. } | AlertKind::CrashLoop { log_tail, .. } =
        &mut alert.kind
    {
        *log_tail = fleet::logs(app, &alert.tenant, Some(CRASH_LOG_LINES), None)
            .await
            .map(|lines| lines.into_iter().map(|l| l.text).collect())
            .unwrap_or_default();
    }
    alert
}

/// Makes a running tenant's missing container again, once per disappearance
/// (until a container exists again). An operator's action holding the tenant
/// is waited out: the next sweep tries. A failure is told once; the
/// container check's DOWN follows as for any outage.
async fn repair_missing(
    app: &App,
    health: &TenantHealth,
    memory: &mut Memory,
    now: i64,
) -> Option<Alert> {
    let tenant = &health.record.id;
    match &health.container {
        Ok(None) => {}
        Ok(Some(_)) => {
            memory.missing.remove(tenant);
            return None;
        }
        // Docker could not say: nothing known to repair.
        Err(_) => return None,
    }
    if !memory.missing.insert(tenant.clone()) {
        return None;
    }
    let actor = fleet::Actor::System("monitor");
    let (made_again, last_error) = match fleet::repair(app, &actor, tenant).await {
        Ok(fleet::Repaired::Recreated | fleet::Repaired::Started) => (true, None),
        // A container exists again (an operator's action since the sweep).
        Ok(fleet::Repaired::Nothing | fleet::Repaired::Stopped) => {
            memory.missing.remove(tenant);
            return None;
        }
        Err(err) if fleet::lock::busy(&err).is_some() => {
            memory.missing.remove(tenant);
            return None;
        }
        Err(err) => {
            // Stopped, muted or removed since the sweep: not the monitor's to repair.
            let still_watched = matches!(
                fleet::find_record(app, tenant),
                Ok(Some(record)) if watched(&record, fleet::now())
            );
            if !still_watched {
                memory.missing.remove(tenant);
                return None;
            }
            (false, Some(format!("{err:#}")))
        }
    };
    Some(Alert {
        tenant: tenant.clone(),
        check: Check::Container,
        kind: AlertKind::Missing { made_again },
        since: now,
        last_error,
    })
}

/// Starts a cell that exited and stayed down (after its DOWN alert), with backoff.
/// Only an existing container: a missing one is `repair_missing`'s.
async fn heal(
    app: &App,
    health: &TenantHealth,
    states: &HashMap<(TenantId, Check), AlertState>,
    memory: &mut Memory,
    now: i64,
) -> Option<Alert> {
    let tenant = &health.record.id;
    let exited =
        matches!(&health.container, Ok(Some(status)) if !status.running && !status.restarting);
    let down = states
        .get(&(tenant.clone(), Check::Container))
        .is_some_and(|s| s.status == AlertStatus::Down);
    if !exited || !down {
        if health.container_up() {
            memory.heal.remove(tenant);
        }
        return None;
    }
    let (attempts, wait) = memory.heal.entry(tenant.clone()).or_insert((0, 0));
    if *wait > 0 {
        *wait -= 1;
        return None;
    }
    *attempts += 1;
    *wait = (1u32 << (*attempts - 1).min(5)).min(MAX_HEAL_BACKOFF_SWEEPS);
    let (kind, last_error) = match fleet::heal(app, tenant).await {
        Ok(_) => (AlertKind::Healed, None),
        Err(err) => (AlertKind::HealFailed, Some(format!("{err:#}"))),
    };
    Some(Alert {
        tenant: tenant.clone(),
        check: Check::Container,
        kind,
        since: now,
        last_error,
    })
}

fn past_digest_time(settings: &MonitorSettings) -> bool {
    settings
        .digest_at
        .is_some_and(|at| chrono::Utc::now().time() >= at)
}

/// The digest, once a day after the configured time.
fn due_digest(
    app: &App,
    settings: &MonitorSettings,
    latest: &watch::Sender<Option<Arc<Sweep>>>,
    memory: &mut Memory,
) -> Option<Digest> {
    let today = chrono::Utc::now().date_naive();
    if !past_digest_time(settings) || memory.last_digest_day == Some(today) {
        return None;
    }
    memory.last_digest_day = Some(today);
    let sweep = latest.borrow().clone()?;
    let day_ago = fleet::now() - 86_400;
    let tally = fleet::audit_tally(app, day_ago).unwrap_or_default();
    let running: Vec<&TenantHealth> = sweep
        .tenants
        .iter()
        .filter(|t| t.record.state == CellState::Running)
        .collect();
    let cost_day = fleet::yesterday(app, chrono::Utc::now());
    let costs = fleet::costs_on(app, cost_day).unwrap_or_else(|err| {
        tracing::warn!("digest: reading yesterday's costs failed: {err:#}");
        Vec::new()
    });
    let fleet_cost = costs.iter().map(|(_, cost)| cost).sum();
    Some(Digest {
        tenants: sweep.tenants.len(),
        up: running.iter().filter(|t| t.container_up()).count(),
        down: running
            .iter()
            .filter(|t| !t.container_up())
            .map(|t| t.record.id.clone())
            .collect(),
        stopped: sweep
            .tenants
            .iter()
            .filter(|t| t.record.state == CellState::Stopped)
            .count(),
        restarts: tally.restarts,
        alerts: tally.alerts,
        cost_day,
        top_costs: costs.into_iter().take(DIGEST_TOP_COSTS).collect(),
        fleet_cost,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::fleet::ContainerStatus;
    use crate::fleet::health::ProbeResult;
    use crate::tenant::{Limits, TenantRecord};

    fn running_cell(memory: Option<(u64, u64)>, oom_killed: bool) -> TenantHealth {
        let ok = Some(ProbeResult {
            ok: true,
            latency: Duration::from_millis(3),
            error: None,
        });
        TenantHealth {
            record: TenantRecord {
                id: "acme".parse().unwrap(),
                display_name: None,
                state: CellState::Running,
                port: 19100,
                subnet: "10.213.0.0/28".into(),
                image: "mtp-test/openclaw:2026.9.6".into(),
                image_id: None,
                model: "anthropic/claude-opus-4-6".into(),
                limits: Limits {
                    memory_bytes: 1 << 30,
                    nano_cpus: 2_000_000_000,
                    pids: 512,
                },
                bot_id: 1,
                bot_username: None,
                generation: 1,
                created_at: 0,
                updated_at: 0,
                last_error: None,
                paired: true,
                create_progress: Default::default(),
                purge_on_remove: false,
                muted_until: None,
                maintenance_until: None,
                slept_at: None,
                wake_at: None,
                pinned_image: None,
                node: None,
            },
            container: Ok(Some(ContainerStatus {
                container_id: "c".into(),
                image_id: "i".into(),
                running: true,
                restarting: false,
                state: "running".into(),
                exit_code: 0,
                oom_killed,
                restart_count: 0,
                started_at: Some("2026-11-01T00:00:00Z".into()),
                generation: 1,
            })),
            memory,
            healthz: ok.clone(),
            readyz: ok.clone(),
            rpc_health: ok,
            channel: None,
        }
    }

    fn memory_check(health: &TenantHealth) -> Option<Result<(), String>> {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-02T00:00:00Z")
            .unwrap()
            .timestamp();
        observations(health, now)
            .into_iter()
            .find(|(check, _)| *check == Check::Memory)
            .map(|(_, result)| result)
    }

    /// Memory at or over 90% of the limit fails the memory check, naming the
    /// figures; under it passes; without a sample there is nothing to judge.
    #[test]
    fn memory_near_the_limit_fails_its_check() {
        let limit = 1u64 << 30;
        let high = memory_check(&running_cell(Some((limit / 100 * 95, limit)), false)).unwrap();
        assert_eq!(high, Err("972 MiB of 1024 MiB (95%)".to_string()));
        assert_eq!(
            memory_check(&running_cell(Some((limit / 2, limit)), false)),
            Some(Ok(()))
        );
        assert_eq!(memory_check(&running_cell(None, false)), None);
    }
}
