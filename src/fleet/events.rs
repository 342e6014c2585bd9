//! What happens to the cells as it happens: Docker's event stream for MTP's
//! containers, kept open for the monitor. A dropped subscription is tried
//! again with a doubling backoff, and the monitor is told about the gap so it
//! can re-sync with a sweep (events in the gap are lost).

use std::future::Future;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::fleet::App;
use crate::fleet::inventory::probe_healthz;
use crate::runtime::CellEventKind;
use crate::tenant::TenantId;

/// One thing Docker says happened to a tenant's container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellEvent {
    pub tenant: TenantId,
    /// Unix seconds, as Docker stamped it.
    pub at: i64,
    pub change: CellChange,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CellChange {
    /// The gateway process ended; `exit_code` as Docker reports it.
    Died { exit_code: i64 },
    /// The kernel's OOM killer hit the cell (its `Died` follows).
    OomKilled,
    /// A signal came through the Docker API (a stop, restart, upgrade or
    /// `docker kill`): the `Died` that follows was asked for, not a crash.
    Signalled,
    /// The container started, by MTP or by Docker's restart policy.
    Started,
}

/// What the watcher reports to the monitor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Watched {
    Cell(CellEvent),
    /// A subscription is open; `after_gap` when an earlier one was lost, so
    /// anything in between is unknown.
    Connected {
        after_gap: bool,
    },
    /// The subscription is gone (or could not be made); the next try is in `retry_in`.
    Lost {
        cause: String,
        retry_in: Duration,
    },
}

/// The reconnect delays: one second is enough for a restarting engine to
/// come back; a minute keeps a long outage from flooding the log. The watcher
/// never gives up, so `give_up_after` is unused.
pub const BACKOFF: Backoff = Backoff {
    first: Duration::from_secs(1),
    max: Duration::from_secs(60),
    give_up_after: Duration::MAX,
};

/// A subscription that lived this long was a real one, not a connection
/// refused at once: the delays start again from the first.
const STEADY: Duration = Duration::from_secs(30);

/// Watches the cells' Docker events until `shutdown`, reconnecting forever.
/// The receiver gets events in Docker's order.
pub fn watch(app: &App, shutdown: CancellationToken) -> mpsc::Receiver<Watched> {
    let (tx, rx) = mpsc::channel(256);
    let runtime = app.runtime.clone();
    let subscribe = move || {
        let runtime = runtime.clone();
        async move {
            // The stream is lazy: a ping tells a reachable engine from a dead one.
            runtime.ping().await?;
            let events = runtime.cell_events().map(|event| {
                event
                    .map(|event| CellEvent {
                        tenant: event.tenant,
                        at: event.at,
                        change: match event.kind {
                            CellEventKind::Died { exit_code } => CellChange::Died { exit_code },
                            CellEventKind::Oom => CellChange::OomKilled,
                            CellEventKind::Killed { .. } => CellChange::Signalled,
                            CellEventKind::Started | CellEventKind::Restarted => {
                                CellChange::Started
                            }
                        },
                    })
                    .map_err(anyhow::Error::from)
            });
            anyhow::Ok(events)
        }
    };
    tokio::spawn(watch_with(subscribe, BACKOFF, tx, shutdown));
    rx
}

/// The reconnect loop, over any way to subscribe (a unit test stages drops).
async fn watch_with<F, Fut, S>(
    mut subscribe: F,
    backoff: Backoff,
    tx: mpsc::Sender<Watched>,
    shutdown: CancellationToken,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<S>>,
    S: Stream<Item = anyhow::Result<CellEvent>>,
{
    let mut failures = 0;
    let mut after_gap = false;
    loop {
        let attempt = tokio::select! {
            _ = shutdown.cancelled() => return,
            attempt = subscribe() => attempt,
        };
        let cause = match attempt {
            Err(err) => format!("{err:#}"),
            Ok(events) => {
                if tx.send(Watched::Connected { after_gap }).await.is_err() {
                    return;
                }
                let opened = tokio::time::Instant::now();
                let mut events = std::pin::pin!(events);
                let cause = loop {
                    let next = tokio::select! {
                        _ = shutdown.cancelled() => return,
                        next = events.next() => next,
                    };
                    match next {
                        Some(Ok(event)) => {
                            if tx.send(Watched::Cell(event)).await.is_err() {
                                return;
                            }
                        }
                        Some(Err(err)) => break format!("{err:#}"),
                        None => break "the Docker event stream ended".to_string(),
                    }
                };
                if opened.elapsed() >= STEADY {
                    failures = 0;
                }
                cause
            }
        };
        after_gap = true;
        let delay = backoff.delay(failures);
        tracing::warn!(cause = %cause, retry_in = ?delay, "docker events: subscription lost");
        let lost = Watched::Lost {
            cause,
            retry_in: delay,
        };
        if tx.send(lost).await.is_err() {
            return;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        failures = failures.saturating_add(1);
    }
}

/// True when the tenant's gateway answers `GET /healthz` now.
///
/// # Errors
///
/// A store failure, or a tenant with no record.
pub async fn gateway_answers(app: &App, tenant: &TenantId) -> anyhow::Result<bool> {
    let Some(record) = crate::fleet::find_record(app, tenant)? else {
        anyhow::bail!("no tenant {tenant}");
    };
    Ok(probe_healthz(app, &record).await)
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    use futures_util::stream;

    use super::*;

    fn died(tenant: &str) -> CellEvent {
        CellEvent {
            tenant: tenant.parse().unwrap(),
            at: 1,
            change: CellChange::Died { exit_code: 137 },
        }
    }

    /// Runs the watcher over `subscribe`, retrying after 1 s at first and
    /// `max_delay` at most; the test reads what it reports and cancels it.
    fn spawn_watch<F, Fut, S>(
        subscribe: F,
        max_delay: Duration,
    ) -> (
        mpsc::Receiver<Watched>,
        CancellationToken,
        tokio::task::JoinHandle<()>,
    )
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = anyhow::Result<S>> + Send + 'static,
        S: Stream<Item = anyhow::Result<CellEvent>> + Send + 'static,
    {
        let backoff = Backoff {
            first: Duration::from_secs(1),
            max: max_delay,
            give_up_after: Duration::MAX,
        };
        let (tx, rx) = mpsc::channel(16);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(watch_with(subscribe, backoff, tx, shutdown.clone()));
        (rx, shutdown, task)
    }

    /// Subscriptions that fail twice, then deliver one event and drop, then
    /// stay open: each loss is reported with a doubling delay that is really
    /// waited, the reopened subscriptions say there was a gap, and events flow.
    #[tokio::test(start_paused = true)]
    async fn a_lost_subscription_is_retried_with_backoff_and_reported_as_a_gap() {
        type Attempt = anyhow::Result<Vec<anyhow::Result<CellEvent>>>;
        let attempts: Arc<Mutex<VecDeque<(Attempt, bool)>>> = Arc::new(Mutex::new(
            [
                (Err(anyhow::anyhow!("connection refused")), false),
                (Err(anyhow::anyhow!("connection refused")), false),
                (Ok(vec![Ok(died("acme"))]), false),
                (Ok(vec![Err(anyhow::anyhow!("reset by peer"))]), false),
                (Ok(vec![Ok(died("beta"))]), true),
            ]
            .into_iter()
            .collect(),
        ));
        let tried_at = Arc::new(Mutex::new(Vec::new()));
        let started = tokio::time::Instant::now();
        let subscribe = {
            let attempts = attempts.clone();
            let tried_at = tried_at.clone();
            move || {
                tried_at.lock().unwrap().push(started.elapsed().as_secs());
                let next = attempts.lock().unwrap().pop_front();
                async move {
                    let (attempt, stay_open) = next.expect("no more subscriptions staged");
                    attempt.map(|events| {
                        let open = if stay_open {
                            stream::pending().boxed()
                        } else {
                            stream::empty().boxed()
                        };
                        stream::iter(events).chain(open)
                    })
                }
            }
        };
        let (mut rx, shutdown, task) = spawn_watch(subscribe, Duration::from_secs(4));
        let mut got = Vec::new();
        while got.len() < 9 {
            got.push(rx.recv().await.expect("the watcher runs"));
        }
        let lost = |cause: &str, secs: u64| Watched::Lost {
            cause: cause.to_string(),
            retry_in: Duration::from_secs(secs),
        };
        assert_eq!(
            got,
            vec![
                lost("connection refused", 1),
                lost("connection refused", 2),
                Watched::Connected { after_gap: true },
                Watched::Cell(died("acme")),
                lost("the Docker event stream ended", 4),
                Watched::Connected { after_gap: true },
                lost("reset by peer", 4),
                Watched::Connected { after_gap: true },
                Watched::Cell(died("beta")),
            ]
        );
        // Tries at 0, then after 1, 2, 4 and 4 (the cap) seconds.
        assert_eq!(*tried_at.lock().unwrap(), vec![0, 1, 3, 7, 11]);
        shutdown.cancel();
        task.await.unwrap();
    }

    /// A subscription that lived long enough resets the delay to the first.
    #[tokio::test(start_paused = true)]
    async fn a_steady_subscription_resets_the_backoff() {
        let round = Arc::new(Mutex::new(0u32));
        let subscribe = {
            let round = round.clone();
            move || {
                let n = {
                    let mut round = round.lock().unwrap();
                    *round += 1;
                    *round
                };
                async move {
                    if n < 3 {
                        return Err(anyhow::anyhow!("down"));
                    }
                    // Open for a minute, then dropped.
                    let lived = stream::once(tokio::time::sleep(Duration::from_secs(60)))
                        .filter_map(|()| async { None::<anyhow::Result<CellEvent>> });
                    Ok(lived.boxed())
                }
            }
        };
        let (mut rx, shutdown, task) = spawn_watch(subscribe, Duration::from_secs(60));
        let mut delays = Vec::new();
        while delays.len() < 3 {
            if let Some(Watched::Lost { retry_in, .. }) = rx.recv().await {
                delays.push(retry_in.as_secs());
            }
        }
        assert_eq!(delays, vec![1, 2, 1]);
        shutdown.cancel();
        task.await.unwrap();
    }
}
