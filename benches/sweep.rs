//! Benchmark: one health sweep over 100 fake cells (the fake gateway image as
//! real containers, paired through the real create flow). Prints the sweep's
//! wall time and the admin process's CPU time and RSS. Goal (issue 4): under
//! 1 s wall and under 30 MB RSS.
//!
//! Run: `cargo bench --bench sweep` (Docker up, `scripts/build-fake-image.sh`
//! done). `MTP_BENCH_CELLS` changes the number of cells.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use mtp::config::AdminConfig;
use mtp::fleet::health::SweepSettings;
use mtp::fleet::{self, Actor, App};
use mtp::runtime::Runtime;
use mtp::store::Store;
use mtp::tenant::{BotToken, DmPolicy, TenantId, TenantSpec};

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let cells: usize = std::env::var("MTP_BENCH_CELLS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100);
    let dir = std::env::temp_dir().join("mtp-bench-sweep");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let config = AdminConfig::from_json5(&format!(
        r#"{{ dataDir: "{}", cell: {{ image: "mtp-test/fake-gateway:1", portStart: 20000, portEnd: 20499, memory: "128m", cpus: 0.5, healthTimeout: "60s", subnetPool: "10.214.0.0/16" }} }}"#,
        dir.join("data").display()
    ))?;
    let app = App::open(config).await?;
    let actor = Actor::System("bench");

    let started = Instant::now();
    let created: Vec<anyhow::Result<TenantId>> = futures_util::stream::iter(0..cells)
        .map(|n| {
            let app = app.clone();
            let actor = actor.clone();
            async move {
                let id: TenantId = format!("bench-{n:03}").parse()?;
                let spec = TenantSpec {
                    id: id.clone(),
                    display_name: None,
                    bot_token: BotToken::parse(&format!(
                        "{}:AAFakeTokenForTheSweepBenchmark_{n:03}",
                        8_000_000_000u64 + n as u64
                    ))?,
                    provider_key: None,
                    model: "anthropic/claude-opus-4-6".into(),
                    image: None,
                    limits: None,
                    dm_policy: DmPolicy::Pairing,
                    skills: None,
                    bot_username: None,
                    keep_failed: false,
                };
                fleet::create(&app, &actor, spec, &mut |_| {}).await?;
                Ok(id)
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let ids: Vec<TenantId> = created.into_iter().collect::<anyhow::Result<_>>()?;
    println!(
        "created {} fake cells in {:.1} s",
        ids.len(),
        started.elapsed().as_secs_f64()
    );

    for concurrency in [16, 64] {
        let settings = SweepSettings {
            probe_timeout: Duration::from_secs(5),
            concurrency,
        };
        // The first sweep opens the pooled connections; later ones reuse them.
        let first = fleet::health::sweep(&app, settings).await?;
        println!(
            "concurrency {concurrency}: first sweep {:.0} ms",
            first.duration.as_secs_f64() * 1000.0
        );
        // As between the monitor's sweeps (30 s apart by default): the first
        // background round of memory samples finishes.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let sweep = fleet::health::sweep(&app, settings).await?;
            if sweep.tenants.iter().all(|tenant| tenant.memory.is_some()) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "memory samples did not come within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut walls = Vec::new();
        let mut cpus = Vec::new();
        let mut latencies: [Vec<f64>; 3] = Default::default();
        for _ in 0..5 {
            let cpu_before = cpu_seconds();
            let sweep = fleet::health::sweep(&app, settings).await?;
            cpus.push(cpu_seconds() - cpu_before);
            walls.push(sweep.duration.as_secs_f64());
            let failed = sweep
                .tenants
                .iter()
                .filter(|t| !t.rpc_health.as_ref().is_some_and(|p| p.ok))
                .count();
            assert_eq!(failed, 0, "every fake cell should pass");
            let sampled = sweep.tenants.iter().filter(|t| t.memory.is_some()).count();
            assert_eq!(
                sampled,
                sweep.tenants.len(),
                "every cell has a memory sample by now"
            );
            for health in &sweep.tenants {
                for (i, probe) in [&health.healthz, &health.readyz, &health.rpc_health]
                    .into_iter()
                    .enumerate()
                {
                    if let Some(probe) = probe {
                        latencies[i].push(probe.latency.as_secs_f64() * 1000.0);
                    }
                }
            }
        }
        walls.sort_by(f64::total_cmp);
        cpus.sort_by(f64::total_cmp);
        for list in &mut latencies {
            list.sort_by(f64::total_cmp);
        }
        let median = |list: &Vec<f64>| list.get(list.len() / 2).copied().unwrap_or(0.0);
        let (rss, peak) = rss();
        println!(
            "concurrency {concurrency}: sweep over {} cells: wall median {:.0} ms (min {:.0}, max {:.0}); admin CPU median {:.0} ms per sweep; admin RSS {:.1} MB (peak {:.1} MB); probe medians healthz {:.1} ms, readyz {:.1} ms, rpc health {:.1} ms",
            ids.len(),
            walls[walls.len() / 2] * 1000.0,
            walls[0] * 1000.0,
            walls[walls.len() - 1] * 1000.0,
            cpus[cpus.len() / 2] * 1000.0,
            rss as f64 / 1e6,
            peak as f64 / 1e6,
            median(&latencies[0]),
            median(&latencies[1]),
            median(&latencies[2]),
        );
    }

    // Where a tenant's probe time goes: each part alone over every cell, 16 at a
    // time (memory is sampled in the background, outside the sweep's wall time).
    let mut parts = Vec::new();
    let docker = Runtime::connect(app.config().docker_host.as_deref()).await?;
    let store = Store::open(&app.config().store_path())?;
    for part in ["inspect", "memory", "budget", "channels"] {
        let started = Instant::now();
        let results: Vec<bool> = futures_util::stream::iter(ids.clone())
            .map(|id| {
                let (app, docker, store) = (app.clone(), docker.clone(), store.clone());
                async move {
                    match part {
                        "inspect" => docker.inspect(&id).await.is_ok(),
                        "memory" => docker.memory(&id).await.is_ok(),
                        "budget" => store.budget_record(&id).is_ok(),
                        _ => fleet::gateway_info(&app, &id).await.is_ok(),
                    }
                }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        assert!(results.iter().all(|ok| *ok), "{part} failed for some cells");
        parts.push(format!(
            "{part} {:.0} ms",
            started.elapsed().as_secs_f64() * 1000.0
        ));
    }
    println!("parts over {} cells: {}", ids.len(), parts.join(", "));

    let removed: Vec<anyhow::Result<fleet::Removed>> = futures_util::stream::iter(ids)
        .map(|id| {
            let app = app.clone();
            let actor = actor.clone();
            async move { fleet::remove(&app, &actor, &id, true).await }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    for result in removed {
        result?;
    }
    Ok(())
}

/// User + system CPU time of this process.
fn cpu_seconds() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: getrusage fills the struct it is given; RUSAGE_SELF is always valid.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let secs = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// Current and peak resident memory of this process, in bytes.
fn rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}
