//! Sleep and wake inside `mtp serve`: puts idle tenants to sleep, watches
//! each sleeping tenant's bot and wakes it on the first waiting message, and
//! wakes a sleeping tenant before its next scheduled job. All of it through
//! `fleet::sleep`; this loop only decides when.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::fleet::sleep::{self, IdleDecision, SleepError, WakeCause, WatchEnd};
use crate::fleet::{self, Actor, App};
use crate::monitor::metrics::Metrics;
use crate::tenant::TenantId;

/// How often sleeping tenants are looked for (a sleep by the CLI is watched
/// at most this late) and scheduled wakes are checked.
const LOOK_EVERY: Duration = Duration::from_secs(2);
/// Idle is judged at most this often (or every monitor interval, if shorter).
const IDLE_EVERY: Duration = Duration::from_secs(30);
/// A watch that failed (a revoked token) is tried again after this long.
const WATCH_RETRY: Duration = Duration::from_secs(600);

/// Runs until `shutdown`.
pub async fn run(app: App, metrics: Arc<Metrics>, shutdown: CancellationToken) {
    let idle_every = app.config().monitor.interval.min(IDLE_EVERY);
    let mut look = tokio::time::interval(LOOK_EVERY);
    look.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut idle = tokio::time::interval(idle_every);
    idle.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut watching: HashMap<TenantId, tokio::task::JoinHandle<()>> = HashMap::new();
    let mut waking: HashMap<TenantId, tokio::task::JoinHandle<()>> = HashMap::new();
    // Tenants whose watch failed (a revoked token), and when to try again.
    let retry_at: Arc<std::sync::Mutex<HashMap<TenantId, Instant>>> = Arc::default();
    // The idle pass runs as its own task: a pass that puts several tenants to
    // sleep (each stop takes seconds) holds up neither watches nor wakes.
    let stays_awake: Arc<std::sync::Mutex<HashSet<TenantId>>> = Arc::default();
    let mut judging: Option<tokio::task::JoinHandle<()>> = None;
    loop {
        let judge_idle = tokio::select! {
            () = shutdown.cancelled() => break,
            _ = look.tick() => false,
            _ = idle.tick() => true,
        };
        let may_sleep =
            app.config().sleep.after.is_some() || !app.config().sleep.tenants.is_empty();
        if judge_idle && may_sleep && judging.as_ref().is_none_or(|task| task.is_finished()) {
            let (app, stays_awake) = (app.clone(), stays_awake.clone());
            judging = Some(tokio::spawn(async move { judge(&app, &stays_awake).await }));
        }
        let sleeping = match sleep::sleeping(&app) {
            Ok(sleeping) => sleeping,
            Err(err) => {
                tracing::error!(cause = %format!("{err:#}"), "cannot list sleeping tenants");
                continue;
            }
        };
        metrics.set_sleeping(sleeping.len());
        watching.retain(|_, task| !task.is_finished());
        waking.retain(|_, task| !task.is_finished());
        let now = fleet::now();
        for record in sleeping {
            let tenant = record.id.clone();
            if waking.contains_key(&tenant) {
                continue;
            }
            if record.wake_at.is_some_and(|at| at <= now) {
                let task = tokio::spawn(wake(
                    app.clone(),
                    metrics.clone(),
                    tenant.clone(),
                    WakeCause::Schedule,
                ));
                waking.insert(tenant, task);
                continue;
            }
            let failed_lately = retry_at
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(&tenant)
                .is_some_and(|at| *at > Instant::now());
            if watching.contains_key(&tenant) || failed_lately {
                continue;
            }
            let (app, metrics, shutdown) = (app.clone(), metrics.clone(), shutdown.clone());
            let retry_at = retry_at.clone();
            let watched = tenant.clone();
            let task = tokio::spawn(async move {
                match sleep::watch_bot(&app, &watched, &shutdown).await {
                    Ok(Some(WatchEnd::Pending(update, seen))) => {
                        let cause = WakeCause::Message {
                            chat: update.chat,
                            seen,
                        };
                        wake(app, metrics, watched, cause).await;
                    }
                    Ok(Some(WatchEnd::NotAsleep) | None) => {}
                    Err(err) => {
                        tracing::error!(cause = %format!("{err:#}"), tenant = %watched, "cannot watch a sleeping tenant's bot; its messages wait until it is woken");
                        retry_at
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .insert(watched, Instant::now() + WATCH_RETRY);
                    }
                }
            });
            watching.insert(tenant, task);
        }
    }
    for task in judging
        .into_iter()
        .chain(watching.into_values())
        .chain(waking.into_values())
    {
        let _ = task.await;
    }
}

async fn wake(app: App, metrics: Arc<Metrics>, tenant: TenantId, cause: WakeCause) {
    let actor = Actor::System("sleep");
    let label = match cause {
        WakeCause::Operator => "operator",
        WakeCause::Message { .. } => "message",
        WakeCause::Schedule => "schedule",
    };
    match sleep::wake(&app, &actor, &tenant, cause).await {
        Ok(woken) if woken.was_asleep => {
            tracing::info!(%tenant, cause = label, started_ms = woken.started_in.as_millis(), healthy_ms = woken.healthy_in.as_millis(), typing = woken.typing_sent, "woke");
            metrics.observe_wake(label, &woken);
        }
        Ok(_) => {}
        Err(err) if fleet::lock::busy(&err).is_some() => {}
        Err(err) => {
            tracing::error!(cause = %format!("{err:#}"), %tenant, "waking failed; the monitor reports the cell as down");
        }
    }
}

async fn judge(app: &App, stays_awake: &std::sync::Mutex<HashSet<TenantId>>) {
    let decisions = match sleep::sleep_idle(app).await {
        Ok(decisions) => decisions,
        Err(err) => {
            tracing::error!(cause = %format!("{err:#}"), "idle check failed");
            return;
        }
    };
    let mut stays_awake = stays_awake
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for (tenant, decision) in decisions {
        match decision {
            IdleDecision::Slept(slept) => {
                stays_awake.remove(&tenant);
                tracing::info!(%tenant, wake_at = ?slept.wake_at, "idle: put to sleep");
            }
            IdleDecision::Stayed(err @ SleepError::Heartbeats { .. }) => {
                if stays_awake.insert(tenant.clone()) {
                    tracing::info!(%tenant, "idle but stays awake: {err}");
                }
            }
            IdleDecision::Stayed(err) => {
                tracing::warn!(%tenant, "idle but not put to sleep: {err:#}");
            }
            IdleDecision::Awake => {}
        }
    }
}
