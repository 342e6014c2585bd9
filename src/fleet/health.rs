//! One health sweep over the fleet: per tenant, the container (state, exit code,
//! restarts, OOM kill, memory against its limit), the gateway (`/healthz`,
//! `/readyz`, RPC `health` over the pooled connection) and the Telegram channel
//! (`channels.status`). Tenants are probed concurrently with a bound; every probe
//! has its own timeout, so one slow or dead cell never delays the others.
//!
//! Memory is sampled in the background: Docker answers a stats request only on
//! its stats collector's next tick (about a second once there are many
//! containers, measured by `cargo bench --bench sweep`), so each sweep takes the
//! newest sample (at most one sweep old) and starts the next round.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use crate::fleet::{App, ChannelInfo, ContainerStatus, now};
use crate::gateway;
use crate::tenant::{BudgetAction, CellState, SecretKind, TenantId, TenantRecord};

/// Bounds of one sweep.
#[derive(Debug, Clone, Copy)]
pub struct SweepSettings {
    /// Deadline of each single probe.
    pub probe_timeout: Duration,
    /// Tenants probed at the same time.
    pub concurrency: usize,
}

/// The fleet at one moment.
#[derive(Debug, Clone)]
pub struct Sweep {
    /// Unix seconds when the sweep began.
    pub at: i64,
    /// Wall time of the whole sweep.
    pub duration: Duration,
    pub tenants: Vec<TenantHealth>,
}

/// One tenant's probes. Probes that do not apply (a stopped cell's gateway) are `None`.
#[derive(Debug, Clone)]
pub struct TenantHealth {
    pub record: TenantRecord,
    /// `Ok(None)`: no container.
    pub container: Result<Option<ContainerStatus>, String>,
    /// Bytes in use and limit.
    pub memory: Option<(u64, u64)>,
    pub healthz: Option<ProbeResult>,
    pub readyz: Option<ProbeResult>,
    pub rpc_health: Option<ProbeResult>,
    pub channel: Option<Result<ChannelInfo, String>>,
}

/// The newest memory sample of each running cell (bytes in use, limit), and
/// whether a sampling round is under way. Shared by every clone of an `App`.
#[derive(Debug, Default)]
pub struct MemorySamples {
    latest: Mutex<HashMap<TenantId, (u64, u64)>>,
    sampling: AtomicBool,
}

impl MemorySamples {
    /// How many cells have a sample now.
    #[must_use]
    pub fn sampled_cells(&self) -> usize {
        self.latest.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    fn get(&self, tenant: &TenantId) -> Option<(u64, u64)> {
        self.latest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(tenant)
            .copied()
    }
}

/// Starts one round of memory samples of `tenants` unless one is under way,
/// `at_once` at a time (requests in flight together share Docker's collector
/// tick; more would only keep more idle connections to the engine).
fn sample_memory(app: &Arc<App>, tenants: Vec<TenantId>, timeout: Duration, at_once: usize) {
    let samples = app.memory.clone();
    if samples.sampling.swap(true, Ordering::AcqRel) {
        return;
    }
    let app = app.clone();
    tokio::spawn(async move {
        let at_once = at_once.max(1);
        let wanted: HashSet<TenantId> = tenants.iter().cloned().collect();
        let mut results = futures_util::stream::iter(tenants)
            .map(|tenant| {
                let app = app.clone();
                async move {
                    let sample = tokio::time::timeout(timeout, app.runtime.memory(&tenant)).await;
                    (tenant, sample.ok().and_then(Result::ok).flatten())
                }
            })
            .buffer_unordered(at_once);
        // Each sample is usable as soon as it is in.
        while let Some((tenant, sample)) = results.next().await {
            let mut latest = samples.latest.lock().unwrap_or_else(|p| p.into_inner());
            match sample {
                Some(sample) => latest.insert(tenant, sample),
                None => latest.remove(&tenant),
            };
        }
        samples
            .latest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|tenant, _| wanted.contains(tenant));
        samples.sampling.store(false, Ordering::Release);
    });
}

/// One probe: passed or why not, and how long it took.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeResult {
    pub ok: bool,
    pub latency: Duration,
    pub error: Option<String>,
}

impl TenantHealth {
    /// The container runs and is not restarting.
    #[must_use]
    pub fn container_up(&self) -> bool {
        matches!(&self.container, Ok(Some(status)) if status.running && !status.restarting)
    }
}

/// Probes every tenant meant to run (and the containers of stopped ones).
///
/// # Errors
///
/// The store cannot be read (a cell that fails its probes is a result, not an
/// error).
pub async fn sweep(app: &App, settings: SweepSettings) -> anyhow::Result<Sweep> {
    let started = Instant::now();
    let at = now();
    let records = app.store.tenants()?;
    // One store read for every endpoint, instead of one per tenant and probe.
    let secrets = app.store.all_secrets()?;
    for record in records
        .iter()
        .filter(|r| r.paired && r.state == CellState::Running)
    {
        let secret = |kind: SecretKind| {
            secrets
                .iter()
                .find(|(t, k, _)| *t == record.id && *k == kind)
                .map(|(_, _, v)| v.clone())
        };
        if let Some(gateway_token) = secret(SecretKind::GatewayToken) {
            let (host, port) = app.runtime.gateway_at(&record.id, record.port);
            let endpoint = gateway::Endpoint {
                host,
                port,
                gateway_token,
                device_token: secret(SecretKind::DeviceToken),
            };
            app.pool.set_endpoint(record.id.clone(), endpoint);
        }
    }
    // One store read for the tenants whose channel is stopped on purpose (budget).
    let channel_suspended: Arc<HashSet<TenantId>> = Arc::new(
        app.store
            .budget_records()?
            .into_iter()
            .filter(|(_, budget)| {
                budget
                    .suspended
                    .as_ref()
                    .is_some_and(|s| s.how == BudgetAction::StopChannel)
            })
            .map(|(tenant, _)| tenant)
            .collect(),
    );
    let app = Arc::new(app.clone());
    let running: Vec<TenantId> = records
        .iter()
        .filter(|r| r.state == CellState::Running)
        .map(|r| r.id.clone())
        .collect();
    sample_memory(&app, running, settings.probe_timeout, settings.concurrency);
    let mut tenants: Vec<TenantHealth> = futures_util::stream::iter(records)
        .map(|record| {
            let app = app.clone();
            let suspended = channel_suspended.contains(&record.id);
            async move { probe_tenant(&app, record, settings.probe_timeout, suspended).await }
        })
        .buffer_unordered(settings.concurrency.max(1))
        .collect()
        .await;
    tenants.sort_by(|a, b| a.record.id.cmp(&b.record.id));
    Ok(Sweep {
        at,
        duration: started.elapsed(),
        tenants,
    })
}

async fn probe_tenant(
    app: &App,
    record: TenantRecord,
    timeout: Duration,
    channel_suspended: bool,
) -> TenantHealth {
    let tenant = record.id.clone();
    let mut health = TenantHealth {
        record,
        container: Ok(None),
        memory: None,
        healthz: None,
        readyz: None,
        rpc_health: None,
        channel: None,
    };
    if matches!(health.record.state, CellState::Creating | CellState::Failed) {
        return health;
    }
    health.container = match tokio::time::timeout(timeout, app.runtime.inspect(&tenant)).await {
        Ok(Ok(status)) => Ok(status.map(ContainerStatus::from)),
        Ok(Err(err)) => Err(err.to_string()),
        Err(_) => Err(format!(
            "docker inspect timed out after {}s",
            timeout.as_secs()
        )),
    };
    if !health.container_up() || health.record.state != CellState::Running {
        return health;
    }
    let (host, port) = app
        .runtime
        .gateway_at(&health.record.id, health.record.port);
    let healthz = timed(timeout, async {
        probe_result(app.http.healthz(&host, port).await)
    });
    let readyz = timed(timeout, async {
        probe_result(app.http.readyz(&host, port).await)
    });
    let paired = health.record.paired;
    let rpc = async {
        if !paired {
            return (None, None);
        }
        let client = match tokio::time::timeout(timeout, app.pool.client(&tenant)).await {
            Ok(Ok(client)) => client,
            Ok(Err(err)) => {
                return (
                    Some(ProbeResult {
                        ok: false,
                        latency: Duration::ZERO,
                        error: Some(err.to_string()),
                    }),
                    None,
                );
            }
            Err(_) => {
                let error = format!("connect timed out after {}s", timeout.as_secs());
                return (
                    Some(ProbeResult {
                        ok: false,
                        latency: timeout,
                        error: Some(error),
                    }),
                    None,
                );
            }
        };
        let rpc = timed(timeout, async {
            client
                .health()
                .await
                .map(|_| ())
                .map_err(|err| err.to_string())
        })
        .await;
        if !rpc.ok {
            return (Some(rpc), None);
        }
        let channel = match tokio::time::timeout(
            timeout,
            client.channels_status(&gateway::ChannelsQuery::default()),
        )
        .await
        {
            Ok(Ok(status)) => crate::fleet::cell_gateway::telegram_of(&status).map(Ok),
            Ok(Err(err)) => Some(Err(format!("channels.status: {err}"))),
            Err(_) => Some(Err(format!(
                "channels.status timed out after {}s",
                timeout.as_secs()
            ))),
        };
        (Some(rpc), channel)
    };
    let (healthz, readyz, (rpc_health, channel)) = tokio::join!(healthz, readyz, rpc);
    health.memory = app.memory.get(&tenant);
    health.healthz = Some(healthz);
    health.readyz = Some(readyz);
    health.rpc_health = rpc_health;
    // A channel stopped because the tenant reached its budget is not an outage.
    health.channel = if channel_suspended { None } else { channel };
    health
}

async fn timed(timeout: Duration, probe: impl Future<Output = Result<(), String>>) -> ProbeResult {
    let started = Instant::now();
    let result = tokio::time::timeout(timeout, probe).await;
    let latency = started.elapsed();
    match result {
        Ok(Ok(())) => ProbeResult {
            ok: true,
            latency,
            error: None,
        },
        Ok(Err(error)) => ProbeResult {
            ok: false,
            latency,
            error: Some(error),
        },
        Err(_) => ProbeResult {
            ok: false,
            latency,
            error: Some(format!("timed out after {}s", timeout.as_secs())),
        },
    }
}

/// A probe as pass/fail with a reason.
pub(crate) fn probe_result(probe: crate::gateway::Probe) -> Result<(), String> {
    match probe {
        crate::gateway::Probe::Ok { .. } => Ok(()),
        crate::gateway::Probe::Failed { status, body } => {
            let body: String = body.chars().take(200).collect();
            Err(format!("HTTP {status}: {body}"))
        }
        crate::gateway::Probe::Unreachable { reason } => Err(format!("unreachable: {reason}")),
        crate::gateway::Probe::Timeout => Err("timed out".to_string()),
    }
}
