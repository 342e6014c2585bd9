//! Sleep and wake: an idle tenant's container is stopped (its memory freed)
//! and started again on its client's next Telegram message, before its next
//! scheduled job, or when the operator asks.
//!
//! - **Idle** is judged from the gateway's own signals over RPC
//!   (`activity`): no inbound message, no agent run and no session touched
//!   for `sleep.after`, counted from the container's start at the earliest.
//! - **Sleep** (`sleep`): the usage is read once, the schedule is read (the
//!   next cron job sets `wake_at`), the record says `sleeping` and then the
//!   container stops. A tenant whose heartbeats come more often than it may
//!   sleep stays awake.
//! - **Watch** (`watch_bot`): while, and only while, a tenant sleeps, its bot
//!   is long-polled with `getUpdates` without an offset (`fleet::telegram`),
//!   which never confirms anything: the update stays for the cell.
//! - **Wake** (`wake`): the watch of this process is stopped first (and a
//!   watch elsewhere sees the record change before its next poll), the record
//!   says `running`, the container starts; for a message, `typing` goes to its
//!   chat at once and every 4 s until the cell's own Telegram poller runs.
//!
//! Every step holds the tenant's operation lock; a crash between the record
//! and the container is finished by reconcile (a sleeping tenant's running
//! container is stopped).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::fleet::cell::wait_healthy;
use crate::fleet::inventory::known;
use crate::fleet::lock::{self, Op};
use crate::fleet::telegram::{PendingUpdate, WatchError, pending_updates, send_typing};
use crate::fleet::{Actor, App, audit, audit_result, now};
use crate::tenant::{CellState, SecretKind, TenantId, TenantRecord};

/// A scheduled job's cell is started this long before the job is due: a
/// boot takes 10-20 s (FACTS.md), and the gateway needs a moment after it.
pub const WAKE_LEAD: Duration = Duration::from_secs(60);
/// Telegram shows `typing` for about 5 s; it is sent again this often.
const TYPING_EVERY: Duration = Duration::from_secs(4);
/// One watch poll waits at most this long. Shorter than any gateway boot, so
/// a watch in another process that missed a wake ends its last poll before
/// the woken cell polls the token itself.
pub const WATCH_POLL: Duration = Duration::from_secs(5);
/// How long a wake waits for the cell's Telegram poller after `/healthz`.
const CHANNEL_WAIT: Duration = Duration::from_secs(60);

/// What a gateway says of its own activity.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Activity {
    /// Unix seconds of the newest conversation turn (`sessions.list`'s
    /// `lastInteractionAt`, which heartbeats and cron runs leave alone) or
    /// inbound Telegram message (`channels.status`, known since the gateway's start).
    pub last_at: Option<i64>,
    /// An agent run is going on now.
    pub busy: bool,
    /// The shortest heartbeat interval of an agent with heartbeats on.
    pub heartbeat_every: Option<Duration>,
    /// Unix seconds of the next enabled cron job.
    pub next_job_at: Option<i64>,
}

/// Why a tenant was put to sleep, for the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SleepCause {
    /// The operator asked.
    Operator,
    /// Idle for `sleep.after`.
    Idle,
}

/// What `sleep` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slept {
    pub tenant: TenantId,
    /// It was asleep already; nothing changed.
    pub already: bool,
    /// When it wakes for its next scheduled job (unix seconds).
    pub wake_at: Option<i64>,
    /// The usage was read just before.
    pub usage_read: bool,
}

/// Why a tenant did not go to sleep; nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum SleepError {
    #[error("{tenant} is {state}; only a running tenant goes to sleep")]
    NotRunning { tenant: TenantId, state: CellState },
    #[error(
        "{tenant} runs heartbeats every {}, more often than it may sleep ({}); it stays awake (turn its heartbeats off or give it a shorter sleep.after)",
        humantime::format_duration(*every),
        humantime::format_duration(*after)
    )]
    Heartbeats {
        tenant: TenantId,
        every: Duration,
        after: Duration,
    },
    #[error("{tenant} is busy (an agent run, or a message that just came in); it stays awake")]
    Busy { tenant: TenantId },
    #[error(transparent)]
    Locked(lock::Busy),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// What started a wake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WakeCause {
    Operator,
    /// A message waits for the tenant's bot; `seen` is when the watch got it.
    Message {
        chat: Option<i64>,
        seen: Instant,
    },
    /// Its next cron job is due.
    Schedule,
}

impl WakeCause {
    fn as_str(self) -> &'static str {
        match self {
            WakeCause::Operator => "operator",
            WakeCause::Message { .. } => "message",
            WakeCause::Schedule => "schedule",
        }
    }
}

/// What `wake` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Woken {
    pub tenant: TenantId,
    /// It was asleep (false: it ran already; nothing changed).
    pub was_asleep: bool,
    /// From the wake's start (for a message: from when the watch saw it) to
    /// the container started, to `/healthz`, and to the cell's own poller running.
    pub started_in: Duration,
    pub healthy_in: Duration,
    pub polling_in: Option<Duration>,
    /// `typing` actions sent to the waiting chat.
    pub typing_sent: usize,
}

/// Reads the tenant's activity, heartbeats and schedule from its gateway.
///
/// # Errors
///
/// The gateway cannot be reached or refuses.
pub async fn activity(app: &App, tenant: &TenantId) -> anyhow::Result<Activity> {
    activity_of(app, &known(app, tenant)?).await
}

/// `activity` of a tenant whose record is in hand (also while it is being
/// put to sleep, when the record already says so).
async fn activity_of(app: &App, record: &TenantRecord) -> anyhow::Result<Activity> {
    let tenant = &record.id;
    let client = crate::fleet::cell_gateway::client_of(app, record).await?;
    let mut activity = Activity::default();
    let mut newest = |at: Option<i64>| {
        if let Some(at) = at {
            activity.last_at = Some(activity.last_at.map_or(at, |old: i64| old.max(at)));
        }
    };
    // `lastInteractionAt` is kept in the cell's SQLite store and moved only by
    // a real conversation turn: heartbeats and cron runs move `updatedAt`,
    // never it (checked against the 2026.9.6 image).
    let sessions = client
        .call(
            "sessions.list",
            json!({ "limit": 5, "sortBy": "lastInteractionAt", "excludeCron": true }),
        )
        .await
        .with_context(|| format!("sessions.list on {tenant} failed"))?;
    let mut busy = false;
    for row in sessions["sessions"].as_array().into_iter().flatten() {
        newest(millis(&row["lastInteractionAt"]));
        busy |= row["hasActiveRun"].as_bool() == Some(true);
    }
    let channels = client
        .call("channels.status", json!({}))
        .await
        .with_context(|| format!("channels.status on {tenant} failed"))?;
    for account in channels["channelAccounts"]["telegram"]
        .as_array()
        .into_iter()
        .flatten()
    {
        newest(millis(&account["lastInboundAt"]));
        busy |= account["busy"].as_bool() == Some(true)
            || account["activeRuns"].as_u64().is_some_and(|runs| runs > 0);
    }
    let health = client
        .call("health", json!({}))
        .await
        .with_context(|| format!("health on {tenant} failed"))?;
    let heartbeat_every = health["agents"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|agent| agent["heartbeat"]["enabled"].as_bool() == Some(true))
        .filter_map(|agent| agent["heartbeat"]["everyMs"].as_u64())
        .filter(|ms| *ms > 0)
        .min()
        .map(Duration::from_millis);
    let next_job_at = next_cron_job(&client, tenant).await?;
    activity.busy = busy;
    activity.heartbeat_every = heartbeat_every;
    activity.next_job_at = next_job_at;
    Ok(activity)
}

/// Whether an agent run is going on (or the gateway cannot say).
async fn activity_busy(app: &App, tenant: &TenantId) -> bool {
    activity(app, tenant)
        .await
        .map_or(true, |activity| activity.busy)
}

/// When the gateway's cron scheduler next wakes (its next due job), unix
/// seconds; `cron.status` answers `{enabled, jobs, nextWakeAtMs}`.
async fn next_cron_job(
    client: &crate::gateway::Client,
    tenant: &TenantId,
) -> anyhow::Result<Option<i64>> {
    let status = client
        .call("cron.status", json!({}))
        .await
        .with_context(|| format!("cron.status on {tenant} failed"))?;
    if status["enabled"].as_bool() == Some(false) {
        return Ok(None);
    }
    Ok(millis(&status["nextWakeAtMs"]))
}

/// A time the gateway gives in epoch milliseconds (or an ISO string), as unix seconds.
fn millis(value: &Value) -> Option<i64> {
    if let Some(ms) = value.as_i64() {
        return Some(ms / 1000);
    }
    let text = value.as_str()?;
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|at| at.timestamp())
}

/// Puts a running tenant to sleep: reads its usage and schedule, stops its
/// Telegram poller, records it `sleeping`, stops its container; a message the
/// cell took meanwhile and did not finish wakes it again at once (`Busy`).
///
/// # Errors
///
/// `NotRunning`, `Heartbeats` (for an idle sleep), `Busy` (an agent run is
/// going on), `Locked`, or Docker/the store failing.
pub async fn sleep(
    app: &App,
    actor: &Actor,
    tenant: &TenantId,
    cause: SleepCause,
) -> Result<Slept, SleepError> {
    let _guard = match lock::acquire(app, tenant, Op::Sleep, actor) {
        Ok(guard) => guard,
        Err(err) => match lock::busy(&err) {
            Some(busy) => return Err(SleepError::Locked(busy.clone())),
            None => return Err(SleepError::Other(err)),
        },
    };
    let record = known(app, tenant)?;
    match record.state {
        CellState::Running => {}
        CellState::Sleeping => {
            return Ok(Slept {
                tenant: tenant.clone(),
                already: true,
                wake_at: record.wake_at,
                usage_read: false,
            });
        }
        state => {
            return Err(SleepError::NotRunning {
                tenant: tenant.clone(),
                state,
            });
        }
    }
    let result = sleep_locked(app, &record, cause).await;
    let action = match cause {
        SleepCause::Operator => "sleep",
        SleepCause::Idle => "sleep (idle)",
    };
    // A refusal changed nothing and is told to whoever asked; not audited.
    match &result {
        Ok(_) => audit(app, actor, action, Some(tenant), Ok(())),
        Err(err @ SleepError::Other(_)) => {
            let reason = format!("{err:#}");
            audit(app, actor, action, Some(tenant), Err(("sleep", &reason)));
        }
        Err(_) => {}
    }
    result
}

async fn sleep_locked(
    app: &App,
    record: &TenantRecord,
    cause: SleepCause,
) -> Result<Slept, SleepError> {
    let tenant = &record.id;
    // The schedule first: a tenant that cannot be read is not put to sleep
    // blind (it might miss a job nobody knows of).
    let activity = activity(app, tenant)
        .await
        .context("cannot read its activity and schedule from the gateway")?;
    if activity.busy {
        return Err(SleepError::Busy {
            tenant: tenant.clone(),
        });
    }
    let after = app.config.sleep.after_for(tenant);
    if cause == SleepCause::Idle
        && let (Some(every), Some(after)) = (activity.heartbeat_every, after)
        && every < after
    {
        return Err(SleepError::Heartbeats {
            tenant: tenant.clone(),
            every,
            after,
        });
    }
    let heartbeat_at = activity
        .heartbeat_every
        .map(|every| now() + i64::try_from(every.as_secs()).unwrap_or(i64::MAX / 4));
    let due = [activity.next_job_at, heartbeat_at]
        .into_iter()
        .flatten()
        .min();
    let lead = i64::try_from(WAKE_LEAD.as_secs()).unwrap_or(60);
    let wake_at = due.map(|at| (at - lead).max(now()));
    // Usage once more, while the gateway answers.
    let usage_read = match crate::fleet::usage::collect_tenant_usage(app, tenant).await {
        Ok(report) => report
            .tenants
            .iter()
            .all(|(_, collected)| matches!(collected, crate::fleet::usage::Collected::Read { .. })),
        Err(err) => {
            tracing::warn!(cause = %format!("{err:#}"), %tenant, "sleep: cannot read the usage first");
            false
        }
    };
    // Recorded first: a sleep that dies from here on is finished by
    // reconcile (it stops the container), never a running cell left deaf.
    crate::fleet::fault_point("sleep:record");
    let slept_at = now();
    app.store
        .update_tenant(tenant, |record| {
            record.state = CellState::Sleeping;
            record.slept_at = Some(slept_at);
            record.wake_at = wake_at;
            record.updated_at = slept_at;
            Ok(())
        })
        .context("cannot record the sleep")?;
    // The cell's poller stops before the container: an update it fetched
    // while the container stops would be confirmed at Telegram but only
    // queued in the cell.
    let client = crate::fleet::cell_gateway::client_of(app, record).await?;
    if let Err(err) = client
        .call("channels.stop", json!({ "channel": "telegram" }))
        .await
    {
        tracing::warn!(cause = %format!("{err:#}"), %tenant, "sleep: cannot stop the Telegram poller first");
    }
    if activity_busy(app, tenant).await {
        let _ = client
            .call("channels.start", json!({ "channel": "telegram" }))
            .await;
        app.store
            .update_tenant(tenant, |record| {
                record.state = CellState::Running;
                record.slept_at = None;
                record.wake_at = None;
                Ok(())
            })
            .context("cannot record it awake again")?;
        return Err(SleepError::Busy {
            tenant: tenant.clone(),
        });
    }
    app.pool.close(tenant);
    crate::fleet::fault_point("sleep:stop");
    app.runtime
        .stop(tenant)
        .await
        .map_err(|err| anyhow!(err).context("cannot stop the container"))?;
    // On Swarm the cell's store is in its volumes: bring it over to read.
    if let Err(err) = crate::fleet::cell::pull_state(app, record).await {
        tracing::warn!(cause = %format!("{err:#}"), %tenant, "sleep: cannot read the cell's store from its volumes");
    }
    // Updates the cell had taken but not finished: it wakes again at once.
    let state_dir = app.tenant_dir(tenant).join("state");
    let unfinished = tokio::task::spawn_blocking(move || {
        crate::fleet::cell_db::unfinished_telegram_updates(&state_dir)
    })
    .await
    .map_err(|err| anyhow!("reading the cell's queue panicked: {err}"))?;
    match unfinished {
        Ok(0) => {}
        Ok(waiting) => {
            tracing::info!(%tenant, waiting, "sleep: messages came in meanwhile; waking it again");
            let cause = WakeCause::Message {
                chat: None,
                seen: Instant::now(),
            };
            wake_locked(app, record, cause, Instant::now()).await?;
            return Err(SleepError::Busy {
                tenant: tenant.clone(),
            });
        }
        Err(err) => {
            tracing::warn!(cause = %format!("{err:#}"), %tenant, "sleep: cannot read the cell's message queue");
        }
    }
    Ok(Slept {
        tenant: tenant.clone(),
        already: false,
        wake_at,
        usage_read,
    })
}

/// Wakes a sleeping tenant: stops this process's watch of its bot, records
/// it `running`, starts the container and waits for a healthy gateway (and,
/// for a message, for the cell's own Telegram poller, saying `typing` to the
/// chat meanwhile). A tenant that runs already is left as it is.
///
/// # Errors
///
/// `lock::Busy`, an unknown tenant, a tenant neither sleeping nor running,
/// Docker refusing, or a gateway that does not come up (the record then says
/// `running`: the monitor reports it down, as any cell that fails to boot).
pub async fn wake(
    app: &App,
    actor: &Actor,
    tenant: &TenantId,
    cause: WakeCause,
) -> anyhow::Result<Woken> {
    let begun = match cause {
        WakeCause::Message { seen, .. } => seen,
        _ => Instant::now(),
    };
    let _guard = lock::acquire(app, tenant, Op::Wake, actor)?;
    let record = known(app, tenant)?;
    match record.state {
        CellState::Sleeping => {}
        CellState::Running => {
            return Ok(Woken {
                tenant: tenant.clone(),
                was_asleep: false,
                started_in: Duration::ZERO,
                healthy_in: Duration::ZERO,
                polling_in: None,
                typing_sent: 0,
            });
        }
        state => anyhow::bail!("{tenant} is {state}, not sleeping; start it instead"),
    }
    let result = wake_locked(app, &record, cause, begun).await;
    audit_result(
        app,
        actor,
        &format!("wake ({})", cause.as_str()),
        tenant,
        "wake",
        &result,
    );
    result
}

async fn wake_locked(
    app: &App,
    record: &TenantRecord,
    cause: WakeCause,
    begun: Instant,
) -> anyhow::Result<Woken> {
    let tenant = &record.id;
    leave_sleep(app, tenant, true).await?;
    crate::fleet::fault_point("wake:start");
    app.runtime
        .start(tenant)
        .await
        .map_err(|err| anyhow!(err).context("cannot start the container"))?;
    let started_in = begun.elapsed();
    app.store
        .update_tenant(tenant, |record| {
            record.slept_at = None;
            Ok(())
        })
        .context("cannot record the wake")?;
    let typing = match cause {
        WakeCause::Message {
            chat: Some(chat), ..
        } => Some(Typing::start(app, tenant, chat)?),
        _ => None,
    };
    let woke = async {
        wait_healthy(app, record, app.config.cell.health_timeout).await?;
        let healthy_in = begun.elapsed();
        crate::fleet::cell_gateway::register(app, record)?;
        // For a message, `typing` goes on until the cell's own poller runs.
        let polling_in = match cause {
            WakeCause::Message { .. } => match wait_polling(app, tenant).await {
                Ok(()) => Some(begun.elapsed()),
                Err(err) => {
                    tracing::warn!(cause = %format!("{err:#}"), %tenant, "wake: the cell's Telegram poller did not report running");
                    None
                }
            },
            _ => None,
        };
        anyhow::Ok((healthy_in, polling_in))
    }
    .await;
    let typing_sent = match typing {
        Some(typing) => typing.stop().await,
        None => 0,
    };
    let (healthy_in, polling_in) = woke?;
    Ok(Woken {
        tenant: tenant.clone(),
        was_asleep: true,
        started_in,
        healthy_in,
        polling_in,
        typing_sent,
    })
}

/// A tenant leaves its sleep (a wake, an operator's start, an upgrade): this
/// process's watch of its bot ends first, then the record says `running`.
/// For a wake (`waking`), `slept_at` stays until its container started: a
/// wake that died in between is finished by reconcile (it starts it).
pub(crate) async fn leave_sleep(app: &App, tenant: &TenantId, waking: bool) -> anyhow::Result<()> {
    app.watches.stop(tenant).await;
    app.store.update_tenant(tenant, |record| {
        if record.state == CellState::Sleeping {
            record.state = CellState::Running;
        }
        if !waking {
            record.slept_at = None;
        }
        record.wake_at = None;
        record.updated_at = now();
        Ok(())
    })?;
    Ok(())
}

/// Waits until the cell's Telegram account reports its poller running (or
/// its error: from then on the cell's own alerts tell).
async fn wait_polling(app: &App, tenant: &TenantId) -> anyhow::Result<()> {
    let deadline = Instant::now() + CHANNEL_WAIT;
    loop {
        let info = crate::fleet::cell_gateway::gateway_info(app, tenant).await;
        match info {
            Ok(info)
                if info.telegram.as_ref().is_some_and(|telegram| {
                    telegram.running == Some(true) || telegram.last_error.is_some()
                }) =>
            {
                return Ok(());
            }
            Ok(info) if info.telegram.is_none() => {
                anyhow::bail!("the cell has no Telegram account configured")
            }
            _ if Instant::now() >= deadline => {
                anyhow::bail!("no Telegram poller within {}s", CHANNEL_WAIT.as_secs())
            }
            _ => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// `typing` to one chat, at once and every 4 s, until stopped.
struct Typing {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<usize>,
}

impl Typing {
    fn start(app: &App, tenant: &TenantId, chat: i64) -> anyhow::Result<Typing> {
        let token = app
            .store
            .secret(tenant, SecretKind::BotToken)?
            .ok_or_else(|| anyhow!("{tenant} has no bot token in the store"))?;
        let stop = CancellationToken::new();
        let app = app.clone();
        let tenant = tenant.clone();
        let cancelled = stop.clone();
        let task = tokio::spawn(async move {
            let mut sent = 0;
            loop {
                match send_typing(&app, &token, chat).await {
                    Ok(()) => sent += 1,
                    Err(err) => {
                        tracing::debug!(cause = %err, %tenant, "wake: typing not sent");
                    }
                }
                tokio::select! {
                    () = cancelled.cancelled() => return sent,
                    () = tokio::time::sleep(TYPING_EVERY) => {}
                }
            }
        });
        Ok(Typing { stop, task })
    }

    async fn stop(self) -> usize {
        self.stop.cancel();
        self.task.await.unwrap_or(0)
    }
}

/// How a watch of a sleeping tenant's bot ended.
#[derive(Debug)]
pub enum WatchEnd {
    /// A message waits: wake the tenant.
    Pending(PendingUpdate, Instant),
    /// The tenant no longer sleeps (woken, started, removed), or the watch
    /// was stopped.
    NotAsleep,
}

/// The watches this process runs, by tenant, so a wake can end one before
/// the cell starts.
#[derive(Default, Clone)]
pub(crate) struct Watches(Arc<Mutex<HashMap<TenantId, Arc<WatchSlot>>>>);

pub(crate) struct WatchSlot {
    cancel: CancellationToken,
    /// Held by the watch while it runs.
    running: tokio::sync::Mutex<()>,
}

impl Watches {
    /// Ends the tenant's watch, if one runs, and returns once it has.
    pub(crate) async fn stop(&self, tenant: &TenantId) {
        let slot = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(tenant)
            .cloned();
        if let Some(slot) = slot {
            slot.cancel.cancel();
            let _ended = slot.running.lock().await;
        }
    }

    fn enter(&self, tenant: &TenantId) -> Option<Arc<WatchSlot>> {
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.contains_key(tenant) {
            return None;
        }
        let slot = Arc::new(WatchSlot {
            cancel: CancellationToken::new(),
            running: tokio::sync::Mutex::new(()),
        });
        map.insert(tenant.clone(), slot.clone());
        Some(slot)
    }

    fn leave(&self, tenant: &TenantId) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(tenant);
    }
}

/// Watches a sleeping tenant's bot until a message waits for it, the tenant
/// no longer sleeps, or `shutdown`. Polls only while the record says
/// `sleeping` and no action holds the tenant's lock. Returns `None` when this
/// process watches the tenant already.
///
/// # Errors
///
/// The store cannot be read, or Telegram refuses the token (revoked).
pub async fn watch_bot(
    app: &App,
    tenant: &TenantId,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<WatchEnd>> {
    let Some(slot) = app.watches.enter(tenant) else {
        return Ok(None);
    };
    let result = async {
        let _running = slot.running.lock().await;
        let mut backoff = Duration::from_secs(1);
        // The newest update the stopped cell handled, read once (it cannot
        // change while the container is stopped).
        let mut handled: Option<Option<i64>> = None;
        loop {
            if slot.cancel.is_cancelled() || shutdown.is_cancelled() {
                return Ok(WatchEnd::NotAsleep);
            }
            let Some(record) = app.store.tenant(tenant)? else {
                return Ok(WatchEnd::NotAsleep);
            };
            if record.state != CellState::Sleeping {
                return Ok(WatchEnd::NotAsleep);
            }
            if lock::is_held(app, tenant)? {
                // An action (a wake elsewhere, a backup) has the tenant: look again soon.
                tokio::select! {
                    () = slot.cancel.cancelled() => return Ok(WatchEnd::NotAsleep),
                    () = shutdown.cancelled() => return Ok(WatchEnd::NotAsleep),
                    () = tokio::time::sleep(Duration::from_millis(500)) => continue,
                }
            }
            let token = app
                .store
                .secret(tenant, SecretKind::BotToken)?
                .ok_or_else(|| anyhow!("{tenant} has no bot token in the store"))?;
            let polled = tokio::select! {
                () = slot.cancel.cancelled() => return Ok(WatchEnd::NotAsleep),
                () = shutdown.cancelled() => return Ok(WatchEnd::NotAsleep),
                polled = pending_updates(app, &token, WATCH_POLL) => polled,
            };
            match polled {
                Ok(updates) if updates.is_empty() => backoff = Duration::from_secs(1),
                Ok(updates) => {
                    backoff = Duration::from_secs(1);
                    // The cell's last handled update stays pending at Telegram
                    // until its next poll: that one is no reason to wake it.
                    if handled.is_none() {
                        handled = Some(handled_by_cell(app, &record).await);
                    }
                    let handled = handled.flatten();
                    if let Some(update) = updates
                        .into_iter()
                        .find(|update| handled.is_none_or(|id| update.update_id > id))
                    {
                        return Ok(WatchEnd::Pending(update, Instant::now()));
                    }
                    // Only handled ones wait, so Telegram answers at once: look
                    // again at the watch's pace, not in a tight loop.
                    tokio::select! {
                        () = slot.cancel.cancelled() => return Ok(WatchEnd::NotAsleep),
                        () = shutdown.cancelled() => return Ok(WatchEnd::NotAsleep),
                        () = tokio::time::sleep(WATCH_POLL) => {}
                    }
                }
                Err(WatchError::Unauthorized) => return Err(anyhow!(WatchError::Unauthorized)),
                Err(err) => {
                    tracing::warn!(cause = %err, %tenant, "watching a sleeping tenant's bot");
                    tokio::select! {
                        () = slot.cancel.cancelled() => return Ok(WatchEnd::NotAsleep),
                        () = shutdown.cancelled() => return Ok(WatchEnd::NotAsleep),
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
    }
    .await;
    app.watches.leave(tenant);
    result.map(Some)
}

/// The newest update the sleeping cell handled itself (`None` when it never
/// recorded one or its store cannot be read: then every pending update counts).
async fn handled_by_cell(app: &App, record: &TenantRecord) -> Option<i64> {
    let tenant = &record.id;
    let state_dir = app.tenant_dir(tenant).join("state");
    let bot_id = record.bot_id.to_string();
    let read = tokio::task::spawn_blocking(move || {
        crate::fleet::cell_db::telegram_watermark(&state_dir, &bot_id)
    })
    .await;
    match read {
        Ok(Ok(handled)) => handled,
        Ok(Err(err)) => {
            tracing::warn!(cause = %format!("{err:#}"), %tenant, "cannot read which updates the sleeping cell handled; any pending one wakes it");
            None
        }
        Err(err) => {
            tracing::warn!(cause = %err, %tenant, "reading the sleeping cell's store panicked");
            None
        }
    }
}

/// What the idle check decided for one running tenant.
#[derive(Debug)]
pub enum IdleDecision {
    /// Not idle long enough (or never sleeps): nothing done.
    Awake,
    Slept(Slept),
    /// Idle, but did not sleep: why.
    Stayed(SleepError),
}

/// Puts every running tenant that has been idle for its `sleep.after` to
/// sleep. Idle time counts from the newest of its gateway's activity and its
/// container's start.
///
/// # Errors
///
/// The store or Docker cannot be read; each tenant's own trouble is in its decision.
pub async fn sleep_idle(app: &App) -> anyhow::Result<Vec<(TenantId, IdleDecision)>> {
    let actor = Actor::System("sleep");
    let mut decisions = Vec::new();
    for record in app.store.tenants()? {
        if record.state != CellState::Running || !record.paired {
            continue;
        }
        let Some(after) = app.config.sleep.after_for(&record.id) else {
            continue;
        };
        if record.quiet_until().is_some_and(|until| until > now()) {
            continue;
        }
        let decision = match idle_since(app, &record).await {
            Ok(Some((since, _))) if now() - since < secs(after) => IdleDecision::Awake,
            Ok(Some((_, Some(every)))) if every < after => {
                IdleDecision::Stayed(SleepError::Heartbeats {
                    tenant: record.id.clone(),
                    every,
                    after,
                })
            }
            Ok(Some(_)) => match sleep(app, &actor, &record.id, SleepCause::Idle).await {
                Ok(slept) => IdleDecision::Slept(slept),
                Err(SleepError::Locked(_)) => IdleDecision::Awake,
                Err(err) => IdleDecision::Stayed(err),
            },
            Ok(None) => IdleDecision::Awake,
            Err(err) => {
                tracing::debug!(cause = %format!("{err:#}"), tenant = %record.id, "idle check");
                IdleDecision::Awake
            }
        };
        decisions.push((record.id.clone(), decision));
    }
    Ok(decisions)
}

/// Since when the tenant has been idle (unix seconds), and its heartbeat
/// interval; `None` while busy.
async fn idle_since(
    app: &App,
    record: &TenantRecord,
) -> anyhow::Result<Option<(i64, Option<Duration>)>> {
    let status = app
        .runtime
        .inspect(&record.id)
        .await?
        .filter(|status| status.running)
        .ok_or_else(|| anyhow!("its container does not run"))?;
    let started = status
        .started_at
        .as_deref()
        .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
        .map_or(record.updated_at, |at| at.timestamp());
    let activity = activity(app, &record.id).await?;
    if activity.busy {
        return Ok(None);
    }
    let since = activity.last_at.map_or(started, |at| at.max(started));
    Ok(Some((since, activity.heartbeat_every)))
}

/// Sleeping tenants whose scheduled wake is due, and those that sleep.
///
/// # Errors
///
/// The store cannot be read.
pub fn sleeping(app: &App) -> anyhow::Result<Vec<TenantRecord>> {
    Ok(app
        .store
        .tenants()?
        .into_iter()
        .filter(|record| record.state == CellState::Sleeping)
        .collect())
}

fn secs(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX / 4)
}
