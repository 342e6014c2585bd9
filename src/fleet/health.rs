//! One health sweep over the fleet: per tenant, the container (state, exit code,
//! restarts, OOM kill, memory against its limit), the gateway (`/healthz`,
//! `/readyz`, RPC `health` over the pooled connection) and the Telegram channel
//! (`channels.status`). Tenants are probed concurrently with a bound; every probe
//! has its own timeout, so one slow or dead cell never delays the others.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use crate::fleet::{App, ChannelInfo, now};
use crate::gateway;
use crate::runtime::CellStatus;
use crate::tenant::{CellState, SecretKind, TenantRecord};

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
    pub container: Result<Option<CellStatus>, String>,
    /// Bytes in use and limit.
    pub memory: Option<(u64, u64)>,
    pub healthz: Option<ProbeResult>,
    pub readyz: Option<ProbeResult>,
    pub rpc_health: Option<ProbeResult>,
    pub channel: Option<Result<ChannelInfo, String>>,
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
            let endpoint = gateway::Endpoint {
                port: record.port,
                gateway_token,
                device_token: secret(SecretKind::DeviceToken),
            };
            app.pool.set_endpoint(record.id.clone(), endpoint);
        }
    }
    let app = Arc::new(app.clone());
    let mut tenants: Vec<TenantHealth> = futures_util::stream::iter(records)
        .map(|record| {
            let app = app.clone();
            async move { probe_tenant(&app, record, settings.probe_timeout).await }
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

async fn probe_tenant(app: &App, record: TenantRecord, timeout: Duration) -> TenantHealth {
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
        Ok(Ok(status)) => Ok(status),
        Ok(Err(err)) => Err(err.to_string()),
        Err(_) => Err(format!(
            "docker inspect timed out after {}s",
            timeout.as_secs()
        )),
    };
    if !health.container_up() || health.record.state != CellState::Running {
        return health;
    }
    let port = health.record.port;
    let memory = async {
        tokio::time::timeout(timeout, app.runtime.memory(&tenant))
            .await
            .ok()
            .and_then(Result::ok)
            .flatten()
    };
    let healthz = timed(timeout, async {
        probe_result(app.http.healthz(port).await)
    });
    let readyz = timed(timeout, async { probe_result(app.http.readyz(port).await) });
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
    let (memory, healthz, readyz, (rpc_health, channel)) =
        tokio::join!(memory, healthz, readyz, rpc);
    health.memory = memory;
    health.healthz = Some(healthz);
    health.readyz = Some(readyz);
    health.rpc_health = rpc_health;
    // A channel stopped because the tenant reached its budget is not an outage.
    let channel_suspended = app
        .store
        .budget_record(&tenant)
        .ok()
        .and_then(|budget| budget.suspended)
        .is_some_and(|suspension| suspension.how == crate::tenant::BudgetAction::StopChannel);
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
