//! `mtp serve`: the long-running admin. It reconciles, then runs side by side
//! the fleet monitor (sweeps, alerts, digest), the usage loop (collection,
//! budgets), the admin's `/healthz` and `/metrics` listener, a periodic
//! reconcile, the audit log's retention, and the Telegram bot, which renders the monitor's reports and
//! the usage loop's budget alerts. One cancellation token stops them all; the
//! bot finishes in-flight work first.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::bot::{self, MonitorLink};
use crate::fleet::{self, App};
use crate::monitor::{self, metrics::Metrics};
use crate::usage;

/// How often the store and Docker are compared while serving.
const RECONCILE_EVERY: Duration = Duration::from_secs(300);
/// How often the audit log's retention is applied (once at start, then this
/// often): often enough that a flood never waits long, rare enough to cost nothing.
const PRUNE_AUDIT_EVERY: Duration = Duration::from_secs(3600);

/// The relay an admin Swarm service reaches its cells through
/// (`crate::relay`), on cells' gateway port, until `shutdown` resolves.
///
/// # Errors
///
/// `listen` cannot be bound.
pub async fn relay(
    listen: std::net::SocketAddr,
    allow: Vec<std::net::IpAddr>,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    tokio::select! {
        result = crate::relay::serve(listen, allow, crate::runtime::GATEWAY_PORT) => result,
        () = shutdown => Ok(()),
    }
}

/// Runs until `shutdown` resolves.
///
/// # Errors
///
/// Missing bot settings, the metrics address in use, or the bot failing to start.
pub async fn run(
    app: App,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    run_reporting(app, shutdown, |_| {}).await
}

/// As `run`, telling `bound` where the metrics listener is (tests use port 0).
pub async fn run_reporting(
    app: App,
    shutdown: impl Future<Output = ()> + Send + 'static,
    bound: impl FnOnce(SocketAddr),
) -> anyhow::Result<()> {
    app.config().telegram.require()?;
    let report = fleet::reconcile(&app).await?;
    if !report.is_clean() {
        tracing::warn!(?report, "reconcile at start found differences");
    }
    let token = CancellationToken::new();
    let metrics = Metrics::new()?;
    let addr = monitor::metrics::serve(
        app.config().monitor.http_addr,
        metrics.clone(),
        app.config().monitor.interval,
        token.clone(),
    )
    .await?;
    bound(addr);
    let (reports_tx, reports_rx) = mpsc::channel(256);
    let (latest_tx, latest_rx) = watch::channel(None);
    let sleeper = tokio::spawn(monitor::sleep::run(
        app.clone(),
        metrics.clone(),
        token.clone(),
    ));
    let monitor = tokio::spawn(monitor::run(
        app.clone(),
        app.config().monitor.clone(),
        reports_tx,
        latest_tx,
        metrics,
        token.clone(),
    ));
    let (usage_tx, usage_rx) = mpsc::channel(64);
    let usage_loop = tokio::spawn(usage::run(app.clone(), usage_tx, token.clone()));
    let reconciler = tokio::spawn(reconcile_every(app.clone(), token.clone()));
    let pruner = tokio::spawn(prune_audit_every(app.clone(), token.clone()));
    {
        let token = token.clone();
        tokio::spawn(async move {
            shutdown.await;
            token.cancel();
        });
    }
    let link = MonitorLink {
        reports: reports_rx,
        latest: latest_rx,
        usage: Some(usage_rx),
    };
    let result = bot::run_with_monitor(app, Some(link), token.clone().cancelled_owned()).await;
    token.cancel();
    let _ = monitor.await;
    let _ = sleeper.await;
    let _ = usage_loop.await;
    let _ = reconciler.await;
    let _ = pruner.await;
    result
}

async fn prune_audit_every(app: App, token: CancellationToken) {
    let mut interval = tokio::time::interval(PRUNE_AUDIT_EVERY);
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = interval.tick() => {}
        }
        let app = app.clone();
        // redb is synchronous and commits with fsync: off the async workers.
        match tokio::task::spawn_blocking(move || fleet::prune_audit(&app)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(removed)) => tracing::info!(removed, "audit log pruned"),
            Ok(Err(err)) => {
                tracing::error!(cause = %format!("{err:#}"), "pruning the audit log failed")
            }
            Err(err) => tracing::error!(cause = %err, "pruning the audit log panicked"),
        }
    }
}

async fn reconcile_every(app: App, token: CancellationToken) {
    let mut interval = tokio::time::interval(RECONCILE_EVERY);
    interval.tick().await;
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = interval.tick() => {}
        }
        match fleet::reconcile(&app).await {
            Ok(report) if !report.is_clean() => {
                tracing::warn!(?report, "reconcile found differences")
            }
            Ok(_) => {}
            Err(err) => tracing::error!(cause = %format!("{err:#}"), "reconcile failed"),
        }
    }
}
