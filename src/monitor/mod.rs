//! The fleet monitor inside `mtp serve`: a health sweep every interval, the
//! alert state machine per (tenant, check), crash-loop, OOM and memory
//! warnings, self-healing, and the daily digest. It never sends a Telegram
//! message: alerts and digests are values on a channel; `bot/` renders them.
//!
//! Architecture invariant: `monitor/` asks `fleet` for everything; it never
//! touches the store, Docker or a gateway itself.

pub mod metrics;
pub mod rules;

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::config::MonitorSettings;
use crate::fleet::health::{Sweep, SweepSettings, TenantHealth};
use crate::fleet::{self, App};
use crate::tenant::{AlertState, AlertStatus, CellState, Check, TenantId};
use rules::{Rules, Transition};

/// After a container (re)starts, its gateway needs about 20 s to answer (FACTS.md);
/// gateway and channel failures this soon are a boot, not an outage.
const STARTUP_GRACE_SECS: i64 = 90;
/// Memory use, as a share of the limit, that raises a warning.
const MEMORY_WARN: f64 = 0.90;
/// A crash loop is reported at most once per this many seconds per tenant.
const CRASH_LOOP_QUIET_SECS: i64 = 30 * 60;
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
    CrashLoop {
        restarts: i64,
        log_tail: Vec<String>,
    },
    OomKilled,
    Healed,
    HealFailed,
}

impl AlertKind {
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            AlertKind::Down => "down",
            AlertKind::Recovered { .. } => "recovered",
            AlertKind::Flapping { .. } => "flapping",
            AlertKind::Stable => "stable",
            AlertKind::CrashLoop { .. } => "crash loop",
            AlertKind::OomKilled => "oom killed",
            AlertKind::Healed => "healed",
            AlertKind::HealFailed => "heal failed",
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
    pub top_costs: Vec<(TenantId, f64)>,
    pub fleet_cost: f64,
}

/// How many tenants the digest names by cost.
pub const DIGEST_TOP_COSTS: usize = 5;

/// What survives between sweeps in memory (the alert states live in the store).
#[derive(Default)]
struct Memory {
    restart_counts: HashMap<TenantId, i64>,
    crash_loop_reported: HashMap<TenantId, i64>,
    oom_reported: HashMap<TenantId, String>,
    heal: HashMap<TenantId, (u32, u32)>,
    last_digest_day: Option<chrono::NaiveDate>,
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
        last_digest_day: Some(chrono::Utc::now().date_naive())
            .filter(|_| past_digest_time(&settings)),
        ..Memory::default()
    };
    let mut interval = tokio::time::interval(settings.interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = interval.tick() => {}
        }
        let sweep = match sweep_once(&app, &settings, &reports, &mut memory).await {
            Ok((sweep, firing)) => {
                for health in &sweep.tenants {
                    let tenant = health.record.id.as_str();
                    metrics.set_firing(tenant, firing.get(&health.record.id).copied().unwrap_or(0));
                }
                sweep
            }
            Err(err) => {
                tracing::error!(cause = %format!("{err:#}"), "health sweep failed");
                continue;
            }
        };
        metrics.observe(&sweep);
        let _ = latest.send(Some(Arc::new(sweep)));
        if let Some(digest) = due_digest(&app, &settings, &latest, &mut memory) {
            let _ = reports.send(Report::Digest(digest)).await;
        }
    }
}

/// One sweep: probe, run the rules, persist, emit, heal.
async fn sweep_once(
    app: &App,
    settings: &MonitorSettings,
    reports: &mpsc::Sender<Report>,
    memory: &mut Memory,
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
            continue;
        }
        let muted = health.record.muted_until.is_some_and(|until| until > now);
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
        if !muted {
            alerts.extend(container_events(app, health, memory, now).await);
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
    for alert in alerts {
        fleet::record_alert(
            app,
            &alert.tenant,
            &format!("{} {}", alert.kind.as_str(), alert.check.as_str()),
        );
        let _ = reports.send(Report::Alert(alert)).await;
    }
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
    let healthz_ok = health.healthz.as_ref().is_some_and(|probe| probe.ok);
    if booting && !healthz_ok {
        // Still booting: judge the gateway once it answered or the grace is over.
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

/// Crash loops (restart count rising) and OOM kills.
async fn container_events(
    app: &App,
    health: &TenantHealth,
    memory: &mut Memory,
    now: i64,
) -> Vec<Alert> {
    let mut res = Vec::new();
    let tenant = &health.record.id;
    let Ok(Some(status)) = &health.container else {
        return res;
    };
    let previous = memory
        .restart_counts
        .insert(tenant.clone(), status.restart_count);
    let rising = previous.is_some_and(|before| status.restart_count > before);
    let quiet = memory
        .crash_loop_reported
        .get(tenant)
        .is_some_and(|at| now - at < CRASH_LOOP_QUIET_SECS);
    if rising && !quiet {
        memory.crash_loop_reported.insert(tenant.clone(), now);
        let log_tail = fleet::logs(app, tenant, Some(10), None)
            .await
            .map(|lines| lines.into_iter().map(|l| l.text).collect())
            .unwrap_or_default();
        res.push(Alert {
            tenant: tenant.clone(),
            check: Check::Container,
            kind: AlertKind::CrashLoop {
                restarts: status.restart_count,
                log_tail,
            },
            since: now,
            last_error: Some(format!("exit code {}", status.exit_code)),
        });
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

/// Starts a cell that exited and stayed down (after its DOWN alert), with backoff.
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
    use crate::fleet::health::ProbeResult;
    use crate::runtime::CellStatus;
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
                creator: None,
                muted_until: None,
            },
            container: Ok(Some(CellStatus {
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
