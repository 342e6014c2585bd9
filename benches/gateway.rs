//! Benchmark of the gateway client (issue 2). Prints:
//!
//! 1. `health` round-trip time over one persistent connection, p50/p99 (and mean,
//!    max) of 1000 sequential calls, against: the fake as a plain process, the fake as
//!    a cell (container made by `fleet::create`, through Docker's port publishing),
//!    and a real OpenClaw cell (`mtp-test/openclaw:2026.9.6`, also by `fleet::create`).
//! 2. The wall time to call `health` on 100 fake gateways at once through one
//!    `gateway::Pool`: 100 `mtp-fake-gateway` processes on loopback ports (no Docker),
//!    first with the pool opening every connection (connect + handshake + call), then
//!    over the open connections (median of 20 rounds).
//!
//! Run: `cargo build --release --bin mtp-fake-gateway && cargo bench --bench gateway`
//! (Docker up; `scripts/test.sh` built the images). The fake is a crate of its own
//! that `mtp` does not depend on, so `cargo bench --bench gateway` alone does not
//! build it; a plain `cargo bench` at the workspace root does.
//! `MTP_BENCH_SKIP_CELLS=1` skips the two Docker cells; `MTP_BENCH_FAKES` changes the
//! number of fake processes. Cells get ports 19860..19879 and are removed at the end.

#[path = "../tests/common/fake_gateway.rs"]
mod fake_gateway;

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use mtp::config::AdminConfig;
use mtp::fleet::{self, Actor, App};
use mtp::gateway::{self, Client, DeviceIdentity, Endpoint, Options};
use mtp::store::Store;
use mtp::tenant::{BotToken, DmPolicy, SecretKind, TenantId, TenantSpec};

use fake_gateway::FakeGateway;

/// Calls per latency series, after `WARMUP` unmeasured ones.
const CALLS: usize = 1000;
const WARMUP: usize = 50;
/// Rounds of the concurrent call over open connections.
const ROUNDS: usize = 20;

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    println!(
        "machine: {} CPUs, load average {} (at start)",
        std::thread::available_parallelism().map_or(0, usize::from),
        load_average()
    );

    let fake = FakeGateway::start(&[]);
    let identity = DeviceIdentity::from_seed([1; 32]);
    let endpoint = fake.pair(&identity).await;
    let client = Client::connect(&endpoint, &identity, Options::default()).await?;
    report("fake process", &health_latencies(&client).await?);
    client.close();
    drop(fake);

    if std::env::var_os("MTP_BENCH_SKIP_CELLS").is_none() {
        cells().await?;
    }

    let n_fakes: usize = std::env::var("MTP_BENCH_FAKES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100);
    many_fakes(n_fakes).await?;
    println!("load average {} (at end)", load_average());
    Ok(())
}

/// 1000 sequential `health` calls on one open connection; the round-trip times.
async fn health_latencies(client: &Client) -> anyhow::Result<Vec<Duration>> {
    for _ in 0..WARMUP {
        client.health().await?;
    }
    let mut res = Vec::with_capacity(CALLS);
    for _ in 0..CALLS {
        let started = Instant::now();
        let health = client.health().await?;
        res.push(started.elapsed());
        anyhow::ensure!(health.ok, "health not ok");
    }
    Ok(res)
}

/// The fake and the real gateway as cells made by `fleet::create`.
async fn cells() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join("mtp-bench-gateway");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    // 2 GiB as in production: under 1 GiB a real cell is close to its limit.
    let config = AdminConfig::from_json5(&format!(
        r#"{{ dataDir: "{}", cell: {{ portStart: 19860, portEnd: 19879, memory: "2g", cpus: 1.5,
            healthTimeout: "300s", telegramApiRoot: "http://127.0.0.1:9",
            extraEnv: {{ OPENCLAW_OFFLINE: "1" }} }} }}"#,
        dir.join("data").display()
    ))?;
    let app = App::open(config).await?;
    let actor = Actor::System("bench");
    for (n, (label, image)) in [
        ("fake cell", "mtp-test/fake-gateway:1"),
        ("real cell", "mtp-test/openclaw:2026.9.6"),
    ]
    .into_iter()
    .enumerate()
    {
        let tenant: TenantId = format!("bench-gw-{n}").parse()?;
        let spec = TenantSpec {
            id: tenant.clone(),
            display_name: None,
            bot_token: BotToken::parse(&format!(
                "{}:AAFakeTokenForTheGatewayBenchmark_{n:03}",
                7_100_000_000u64 + n as u64
            ))?,
            provider_key: None,
            model: "anthropic/claude-opus-4-6".to_string(),
            image: Some(image.to_string()),
            limits: None,
            dm_policy: DmPolicy::Pairing,
            skills: None,
            bot_username: None,
            keep_failed: false,
        };
        let started = Instant::now();
        let result = async {
            fleet::create(&app, &actor, spec, &mut |_| {}).await?;
            let created = started.elapsed();
            // The admin's device, with the tokens create stored.
            let store = Store::open(&app.config().store_path())?;
            let identity =
                DeviceIdentity::load_or_create(&app.config().data_dir.join("device.key"))?;
            let record = fleet::record(&app, &tenant)?;
            let endpoint = Endpoint {
                host: "127.0.0.1".to_string(),
                port: record.port,
                gateway_token: store
                    .secret(&tenant, SecretKind::GatewayToken)?
                    .ok_or_else(|| anyhow::anyhow!("no gateway token stored"))?,
                device_token: store.secret(&tenant, SecretKind::DeviceToken)?,
            };
            let client = Client::connect(&endpoint, &identity, Options::default()).await?;
            let latencies = health_latencies(&client).await?;
            anyhow::Ok((created, latencies))
        }
        .await;
        let removed = fleet::remove(&app, &actor, &tenant, true).await;
        let (created, latencies) = result?;
        removed?;
        println!(
            "{label}: created and paired in {:.1} s",
            created.as_secs_f64()
        );
        report(label, &latencies);
    }
    Ok(())
}

/// `health` on `n_fakes` fake gateways at once through one pool.
async fn many_fakes(n_fakes: usize) -> anyhow::Result<()> {
    let started = Instant::now();
    let fakes: Vec<FakeGateway> = (0..n_fakes).map(|_| FakeGateway::start(&[])).collect();
    println!(
        "{n_fakes} fake gateway processes started in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let identity = DeviceIdentity::from_seed([2; 32]);
    let started = Instant::now();
    let endpoints = join_all(fakes.iter().map(|fake| fake.pair(&identity))).await;
    println!(
        "paired with all {n_fakes} in {:.1} s (concurrently)",
        started.elapsed().as_secs_f64()
    );
    let (pool, _tokens) = gateway::Pool::new(identity, Options::default());
    let tenants: Vec<TenantId> = (0..n_fakes)
        .map(|n| format!("fake-{n:03}").parse())
        .collect::<Result<_, _>>()?;
    for (tenant, endpoint) in tenants.iter().zip(endpoints) {
        pool.set_endpoint(tenant.clone(), endpoint);
    }

    let health_on_all = || {
        join_all(tenants.iter().map(|tenant| {
            let pool = pool.clone();
            async move {
                let client = pool.client(tenant).await?;
                anyhow::Ok(client.health().await?.ok)
            }
        }))
    };
    let started = Instant::now();
    let cold = health_on_all().await;
    let cold_wall = started.elapsed();
    let failed = cold.iter().filter(|ok| !matches!(ok, Ok(true))).count();
    anyhow::ensure!(failed == 0, "{failed} of {n_fakes} failed on first use");
    println!(
        "health on {n_fakes} fakes at once, opening every connection: {:.1} ms wall",
        ms(cold_wall)
    );

    let mut walls = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let started = Instant::now();
        let results = health_on_all().await;
        walls.push(started.elapsed());
        let failed = results.iter().filter(|ok| !matches!(ok, Ok(true))).count();
        anyhow::ensure!(failed == 0, "{failed} of {n_fakes} failed");
    }
    walls.sort();
    println!(
        "health on {n_fakes} fakes at once, open connections: median {:.1} ms wall (min {:.1}, max {:.1}; {ROUNDS} rounds)",
        ms(walls[walls.len() / 2]),
        ms(walls[0]),
        ms(walls[walls.len() - 1]),
    );
    Ok(())
}

fn report(label: &str, latencies: &[Duration]) {
    let mut sorted = latencies.to_vec();
    sorted.sort();
    let at = |quantile: f64| {
        let index = ((sorted.len() as f64 * quantile).ceil() as usize).clamp(1, sorted.len()) - 1;
        sorted[index]
    };
    let mean = sorted.iter().sum::<Duration>() / sorted.len().max(1) as u32;
    println!(
        "{label}: health round trip over one connection, {} calls: p50 {:.3} ms, p99 {:.3} ms (mean {:.3}, max {:.3})",
        sorted.len(),
        ms(at(0.50)),
        ms(at(0.99)),
        ms(mean),
        ms(sorted[sorted.len() - 1]),
    );
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// The 1, 5 and 15 minute load averages.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".to_string())
}
