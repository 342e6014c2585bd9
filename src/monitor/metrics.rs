//! The admin's own HTTP listener on loopback: `/healthz` (the admin is alive and
//! sweeping) and `/metrics` in Prometheus text format (per tenant: up, probe
//! latency, memory, restarts, alerts firing; sweep duration) and the admin
//! process's own figures from Prometheus' process collector
//! (`mtp_admin_process_resident_memory_bytes`, CPU seconds, open fds, start time).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus::process_collector::ProcessCollector;
use prometheus::{
    Encoder, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts,
    Registry, TextEncoder,
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::fleet::health::Sweep;
use crate::tenant::CellState;

/// The gauges, updated after every sweep.
pub struct Metrics {
    registry: Registry,
    up: GaugeVec,
    probe_latency: GaugeVec,
    memory: GaugeVec,
    memory_limit: GaugeVec,
    restarts: GaugeVec,
    alerts_firing: GaugeVec,
    sweep_duration: Gauge,
    sweeps: IntCounter,
    last_sweep: Gauge,
    sleeping: Gauge,
    wakes: IntCounterVec,
    wake_latency: HistogramVec,
    /// Tenants seen in the last sweep, to drop series of removed tenants.
    tenants: Mutex<Vec<String>>,
}

impl Metrics {
    /// # Errors
    ///
    /// Only if two metrics were given the same name (a bug caught by tests).
    pub fn new() -> anyhow::Result<Arc<Metrics>> {
        let registry = Registry::new();
        let gauge_vec = |name: &str, help: &str, labels: &[&str]| -> anyhow::Result<GaugeVec> {
            let vec = GaugeVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(vec.clone()))?;
            Ok(vec)
        };
        let up = gauge_vec(
            "mtp_tenant_up",
            "1 if the tenant's container runs and its gateway answers /healthz",
            &["tenant"],
        )?;
        let probe_latency = gauge_vec(
            "mtp_probe_latency_seconds",
            "latency of the last probe",
            &["tenant", "probe"],
        )?;
        let memory = gauge_vec(
            "mtp_tenant_memory_bytes",
            "memory used by the tenant's cell",
            &["tenant"],
        )?;
        let memory_limit = gauge_vec(
            "mtp_tenant_memory_limit_bytes",
            "memory limit of the tenant's cell",
            &["tenant"],
        )?;
        let restarts = gauge_vec(
            "mtp_tenant_restarts",
            "Docker's restart count of the tenant's container",
            &["tenant"],
        )?;
        let alerts_firing = gauge_vec(
            "mtp_tenant_alerts_firing",
            "checks of the tenant that are DOWN",
            &["tenant"],
        )?;
        let sweep_duration = Gauge::new(
            "mtp_sweep_duration_seconds",
            "wall time of the last health sweep",
        )?;
        let last_sweep = Gauge::new(
            "mtp_last_sweep_timestamp_seconds",
            "unix time of the last health sweep",
        )?;
        let sweeps = IntCounter::new(
            "mtp_sweeps_total",
            "health sweeps finished since the admin started",
        )?;
        registry.register(Box::new(sweeps.clone()))?;
        let sleeping = Gauge::new(
            "mtp_tenants_sleeping",
            "tenants asleep (container stopped while idle)",
        )?;
        let wakes = IntCounterVec::new(
            Opts::new(
                "mtp_wakes_total",
                "sleeping tenants woken by this admin, by cause",
            ),
            &["cause"],
        )?;
        registry.register(Box::new(wakes.clone()))?;
        let wake_latency = HistogramVec::new(
            HistogramOpts::new(
                "mtp_wake_latency_seconds",
                "from the wake's start (a message: when the watch saw it) to each stage",
            )
            .buckets(vec![
                0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 120.0,
            ]),
            &["stage"],
        )?;
        registry.register(Box::new(wake_latency.clone()))?;
        for gauge in [&sweep_duration, &last_sweep, &sleeping] {
            registry.register(Box::new(gauge.clone()))?;
        }
        let pid = i32::try_from(std::process::id()).context("the admin's pid")?;
        registry.register(Box::new(ProcessCollector::new(pid, "mtp_admin")))?;
        Ok(Arc::new(Metrics {
            registry,
            up,
            probe_latency,
            memory,
            memory_limit,
            restarts,
            alerts_firing,
            sweep_duration,
            sweeps,
            last_sweep,
            sleeping,
            wakes,
            wake_latency,
            tenants: Mutex::new(Vec::new()),
        }))
    }

    /// Takes the figures of a sweep.
    pub fn observe(&self, sweep: &Sweep) {
        let mut seen = Vec::new();
        for health in &sweep.tenants {
            let tenant = health.record.id.as_str();
            seen.push(tenant.to_string());
            let up = health.record.state == CellState::Running
                && health.container_up()
                && health.healthz.as_ref().is_some_and(|probe| probe.ok);
            self.up
                .with_label_values(&[tenant])
                .set(if up { 1.0 } else { 0.0 });
            for (name, probe) in [
                ("healthz", &health.healthz),
                ("readyz", &health.readyz),
                ("rpc_health", &health.rpc_health),
            ] {
                if let Some(probe) = probe {
                    self.probe_latency
                        .with_label_values(&[tenant, name])
                        .set(probe.latency.as_secs_f64());
                }
            }
            if let Some((used, limit)) = health.memory {
                self.memory.with_label_values(&[tenant]).set(used as f64);
                self.memory_limit
                    .with_label_values(&[tenant])
                    .set(limit as f64);
            }
            if let Ok(Some(status)) = &health.container {
                self.restarts
                    .with_label_values(&[tenant])
                    .set(status.restart_count as f64);
            }
        }
        let mut tenants = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        for gone in tenants.iter().filter(|t| !seen.contains(t)) {
            for vec in [
                &self.up,
                &self.memory,
                &self.memory_limit,
                &self.restarts,
                &self.alerts_firing,
            ] {
                let _ = vec.remove_label_values(&[gone]);
            }
            for probe in ["healthz", "readyz", "rpc_health"] {
                let _ = self.probe_latency.remove_label_values(&[gone, probe]);
            }
        }
        *tenants = seen;
        self.sweep_duration.set(sweep.duration.as_secs_f64());
        self.sweeps.inc();
        self.last_sweep.set(sweep.at as f64);
    }

    /// How many tenants sleep now.
    pub fn set_sleeping(&self, count: usize) {
        self.sleeping.set(count as f64);
    }

    /// One wake this admin made: its cause and how long each stage took.
    pub fn observe_wake(&self, cause: &str, woken: &crate::fleet::sleep::Woken) {
        self.wakes.with_label_values(&[cause]).inc();
        let stages = [
            ("started", Some(woken.started_in)),
            ("healthy", Some(woken.healthy_in)),
            ("polling", woken.polling_in),
        ];
        for (stage, took) in stages {
            if let Some(took) = took {
                self.wake_latency
                    .with_label_values(&[stage])
                    .observe(took.as_secs_f64());
            }
        }
    }

    /// Sets how many checks of each tenant are DOWN.
    pub fn set_firing(&self, tenant: &str, firing: usize) {
        self.alerts_firing
            .with_label_values(&[tenant])
            .set(firing as f64);
    }

    /// The Prometheus text exposition.
    #[must_use]
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        // Encoding gauges into a Vec cannot fail.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buffer);
        String::from_utf8(buffer).unwrap_or_default()
    }

    fn last_sweep_age(&self) -> Option<f64> {
        let last = self.last_sweep.get();
        (last > 0.0).then(|| chrono::Utc::now().timestamp() as f64 - last)
    }
}

#[derive(Clone)]
struct Served {
    metrics: Arc<Metrics>,
    /// `/healthz` fails when no sweep happened for this long.
    stale_after: Duration,
}

/// Serves `/healthz` and `/metrics` on `addr` until `shutdown`.
///
/// # Errors
///
/// The address cannot be bound (in use?).
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    interval: Duration,
    shutdown: CancellationToken,
) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {addr} for /metrics; set MTP_HTTP_ADDR to a free 127.0.0.1 port")
    })?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(render))
        .with_state(Served {
            metrics,
            stale_after: interval * 3 + Duration::from_secs(30),
        });
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await });
        if let Err(err) = served.await {
            tracing::error!(cause = %err, "the metrics listener stopped");
        }
    });
    Ok(bound)
}

async fn healthz(State(served): State<Served>) -> impl IntoResponse {
    match served.metrics.last_sweep_age() {
        Some(age) if age <= served.stale_after.as_secs_f64() => (
            StatusCode::OK,
            json!({ "ok": true, "lastSweepAgeSeconds": age.round() as i64 }).to_string(),
        ),
        Some(age) => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({ "ok": false, "lastSweepAgeSeconds": age.round() as i64 }).to_string(),
        ),
        // Alive, still starting: the first sweep has not finished.
        None => (
            StatusCode::OK,
            json!({ "ok": true, "lastSweepAgeSeconds": null }).to_string(),
        ),
    }
}

async fn render(State(served): State<Served>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        served.metrics.render(),
    )
}
