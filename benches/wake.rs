//! Benchmark: sleep and wake of real OpenClaw cells, and the memory a fleet of
//! mostly sleeping tenants takes. Goals (issue 12), each ratio measured in one run:
//!
//! 1. create → paired against the bare boot (the same cell's first start, to
//!    the gateway taking a device connect): ≤ 1.05 × bare + 0.5 s;
//! 2. message → `typing` sent with the tenant's token: ≤ 1.5 s;
//! 3. message → the cell's Telegram poller running: ≤ bare warm boot + 1 s
//!    (the bare warm boot: `docker start` of the same stopped cell by hand to
//!    its poller running);
//! 4. the host memory taken by `MTP_BENCH_TENANTS` (default 20) registered
//!    tenants of which 2 are awake, against 2 tenants both awake, with the
//!    admin serving in this process: within 10%.
//!
//! Run: `cargo bench --bench wake` (Docker up, the test image built). The Bot
//! API is the fake on loopback; the cells reach nothing (their API root is a
//! closed port). `MTP_BENCH_ROUNDS` (default 3) sets the rounds of 1-3.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use mtp::config::AdminConfig;
use mtp::fleet::sleep::{SleepCause, WakeCause, WatchEnd};
use mtp::fleet::{self, Actor, App};
use mtp::tenant::{BotToken, DmPolicy, TenantId, TenantSpec};
use mtp_fake_telegram::FakeTelegram;
use teloxide::types::{ChatId, UserId};
use tokio_util::sync::CancellationToken;

const IMAGE: &str = "mtp-test/openclaw:2026.9.6";
const ADMIN_TOKEN: &str = "900000003:AAAdminBotTokenForTheWakeBenchmark";

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

fn env_number(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

fn token(n: usize) -> String {
    format!(
        "{}:AATenantTokenForTheWakeBenchmark_{n:03}",
        7_200_000_000u64 + n as u64
    )
}

async fn run() -> anyhow::Result<()> {
    let rounds = env_number("MTP_BENCH_ROUNDS", 3);
    let tenants = env_number("MTP_BENCH_TENANTS", 20).max(2);
    let fake = FakeTelegram::start().await;
    fake.add_bot(ADMIN_TOKEN, 900_000_003, "mtp_bench_admin");
    for n in 0..tenants {
        fake.add_bot(
            &token(n),
            7_200_000_000 + n as u64,
            &format!("bench{n}_bot"),
        );
    }
    let dir = std::env::temp_dir().join("mtp-bench-wake");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let config_path = dir.join("mtp.json5");
    std::fs::write(
        &config_path,
        format!(
            r#"{{ dataDir: "{}", cell: {{ image: "{IMAGE}", portStart: 20600, portEnd: 20699, memory: "1g", cpus: 1.5, healthTimeout: "240s", subnetPool: "10.215.0.0/16", telegramApiRoot: "http://127.0.0.1:9", extraEnv: {{ OPENCLAW_OFFLINE: "1" }} }},
               telegram: {{ apiUrl: "{}", operators: [1], opsChatId: -1 }},
               monitor: {{ interval: "30s", httpAddr: "127.0.0.1:0" }}, backup: {{ schedule: "off" }} }}"#,
            dir.join("data").display(),
            fake.url()
        ),
    )?;
    let vars = BTreeMap::from([("MTP_TELEGRAM_TOKEN".to_string(), ADMIN_TOKEN.to_string())]);
    let config = AdminConfig::load(Some(&config_path), None, &vars)?;
    let app = App::open(config).await?;
    let actor = Actor::System("bench");

    // 1. create → paired against the bare first boot of the same image.
    let mut ratios = Vec::new();
    for round in 0..rounds {
        let bare = bare_boot(&app, round).await?;
        let id: TenantId = format!("wake-{round}").parse()?;
        let started = Instant::now();
        fleet::create(&app, &actor, spec(&id, &token(round)), &mut |_| {}).await?;
        let create = started.elapsed();
        let goal = bare.as_secs_f64() * 1.05 + 0.5;
        println!(
            "round {round}: bare first boot → hello-ok {:.1} s; create → paired {:.1} s (goal ≤ {goal:.1} s; ratio {:.3})",
            bare.as_secs_f64(),
            create.as_secs_f64(),
            create.as_secs_f64() / bare.as_secs_f64()
        );
        ratios.push(create.as_secs_f64() / bare.as_secs_f64());
        // 2 and 3: asleep, a message, the wake.
        let (typing, polling, started_in) = message_wake(&app, &fake, &id, &token(round)).await?;
        let bare_warm = bare_warm_boot(&app, &id).await?;
        println!(
            "round {round}: message → container started {:.2} s, → typing {:.2} s (goal ≤ 1.5 s), → poller running {:.1} s; bare warm boot → poller running {:.1} s (goal ≤ {:.1} s)",
            started_in.as_secs_f64(),
            typing.as_secs_f64(),
            polling.as_secs_f64(),
            bare_warm.as_secs_f64(),
            bare_warm.as_secs_f64() + 1.0
        );
        fleet::remove(&app, &actor, &id, true).await?;
    }
    println!("create/bare ratios: {ratios:.3?}");

    // 4. Memory: 2 awake of `tenants`, against 2 of 2.
    let shutdown = CancellationToken::new();
    let serving = tokio::spawn({
        let app = app.clone();
        let shutdown = shutdown.clone();
        async move { mtp::serve::run(app, async move { shutdown.cancelled().await }).await }
    });
    let baseline = used_memory()?;
    let mut ids = Vec::new();
    for n in 0..2 {
        let id: TenantId = format!("mem-{n:02}").parse()?;
        fleet::create(&app, &actor, spec(&id, &token(n)), &mut |_| {}).await?;
        ids.push(id);
    }
    let two = settled_memory().await? - baseline;
    for n in 2..tenants {
        let id: TenantId = format!("mem-{n:02}").parse()?;
        fleet::create(&app, &actor, spec(&id, &token(n)), &mut |_| {}).await?;
        fleet::sleep::sleep(&app, &actor, &id, SleepCause::Operator).await?;
        ids.push(id);
    }
    let many = settled_memory().await? - baseline;
    println!(
        "memory: 2 tenants awake {:.0} MiB; {tenants} registered, 2 awake {:.0} MiB; ratio {:.3} (goal ≤ 1.10)",
        two as f64 / 1048576.0,
        many as f64 / 1048576.0,
        many as f64 / two as f64
    );
    shutdown.cancel();
    let _ = serving.await;
    for id in ids {
        fleet::remove(&app, &actor, &id, true).await?;
    }
    Ok(())
}

fn spec(id: &TenantId, bot_token: &str) -> TenantSpec {
    TenantSpec {
        id: id.clone(),
        display_name: None,
        bot_token: BotToken::parse(bot_token).expect("a bench token"),
        provider_key: None,
        model: "anthropic/claude-opus-4-6".into(),
        image: Some(IMAGE.into()),
        limits: None,
        dm_policy: DmPolicy::Pairing,
        skills: None,
        bot_username: None,
        keep_failed: false,
    }
}

/// The same image, limits and config as a cell, started by hand (scripts'
/// `docker run`): first start → the gateway answers a device's connect (a
/// device it does not know gets `PAIRING_REQUIRED` at the moment a known one
/// would get `hello-ok`).
async fn bare_boot(app: &App, round: usize) -> anyhow::Result<Duration> {
    let _ = app;
    let dir = std::env::temp_dir().join(format!("mtp-bench-bare-{round}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("state"))?;
    std::fs::create_dir_all(dir.join("auth"))?;
    std::fs::write(
        dir.join("state/openclaw.json"),
        r#"{ "gateway": { "mode": "local", "port": 18789, "bind": "lan", "auth": { "mode": "token" } },
  "update": { "checkOnStart": false },
  "agents": { "defaults": { "model": { "primary": "anthropic/claude-opus-4-6" } } },
  "channels": { "telegram": { "enabled": true, "botToken": "${TELEGRAM_BOT_TOKEN}", "dmPolicy": "pairing",
                              "groupPolicy": "disabled", "apiRoot": "http://127.0.0.1:9" } } }"#,
    )?;
    let chown = Command::new("chown")
        .arg("-R")
        .arg("1000:1000")
        .arg(&dir)
        .status()?;
    anyhow::ensure!(chown.success(), "chown the bare cell's dirs");
    let name = format!("mtp-bench-bare-{round}");
    let _ = Command::new("docker").args(["rm", "-f", &name]).output();
    let started = Instant::now();
    let run = Command::new("docker")
        .args(["run", "-d", "--name", &name, "--init", "--cap-drop", "ALL"])
        .args([
            "--security-opt",
            "no-new-privileges",
            "--memory",
            "1g",
            "--memory-swap",
            "1g",
        ])
        .args([
            "--cpus",
            "1.5",
            "--pids-limit",
            "512",
            "-p",
            "127.0.0.1:20690:18789",
        ])
        .arg("-v")
        .arg(format!(
            "{}:/home/node/.openclaw",
            dir.join("state").display()
        ))
        .arg("-v")
        .arg(format!(
            "{}:/home/node/.config/openclaw",
            dir.join("auth").display()
        ))
        .args([
            "-e",
            "HOME=/home/node",
            "-e",
            "OPENCLAW_STATE_DIR=/home/node/.openclaw",
        ])
        .args(["-e", "XDG_CACHE_HOME=/home/node/.openclaw/cache"])
        .args([
            "-e",
            "OPENCLAW_GATEWAY_TOKEN=benchbenchbenchbench",
            "-e",
            "OPENCLAW_OFFLINE=1",
        ])
        .args(["-e", "OPENCLAW_NO_AUTO_UPDATE=1"])
        .arg("-e")
        .arg(format!("TELEGRAM_BOT_TOKEN={}", token(99)))
        .args([
            IMAGE,
            "node",
            "dist/index.js",
            "gateway",
            "--bind",
            "lan",
            "--port",
            "18789",
        ])
        .output()?;
    anyhow::ensure!(
        run.status.success(),
        "docker run: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let stranger = mtp::gateway::DeviceIdentity::from_seed(rand_seed());
    let endpoint = mtp::gateway::Endpoint {
        host: "127.0.0.1".to_string(),
        port: 20690,
        gateway_token: mtp::tenant::Secret::new("benchbenchbenchbench".to_string()),
        device_token: None,
    };
    let answered = loop {
        let options = mtp::gateway::Options {
            connect_timeout: Duration::from_secs(5),
            ..mtp::gateway::Options::default()
        };
        match mtp::gateway::Client::connect(&endpoint, &stranger, options).await {
            Ok(_) | Err(mtp::gateway::ConnectError::PairingRequired { .. }) => {
                break started.elapsed();
            }
            Err(_) if started.elapsed() < Duration::from_secs(300) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(err) => anyhow::bail!("the bare cell never answered: {err}"),
        }
    };
    let _ = Command::new("docker").args(["rm", "-f", &name]).output();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(answered)
}

fn rand_seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    seed[..16].copy_from_slice(&nanos.to_le_bytes());
    seed
}

/// Asleep, then a message: how long to the container's start, to `typing`,
/// and to the cell's own poller running.
async fn message_wake(
    app: &App,
    fake: &FakeTelegram,
    id: &TenantId,
    bot_token: &str,
) -> anyhow::Result<(Duration, Duration, Duration)> {
    let actor = Actor::System("bench");
    fleet::sleep::sleep(app, &actor, id, SleepCause::Operator).await?;
    let bot = fake.bot(bot_token);
    let shutdown = CancellationToken::new();
    let watch = tokio::spawn({
        let (app, id, shutdown) = (app.clone(), id.clone(), shutdown.clone());
        async move { fleet::sleep::watch_bot(&app, &id, &shutdown).await }
    });
    bot.wait_for_poll(Duration::from_secs(30))
        .await
        .map_err(anyhow::Error::msg)?;
    let chat = ChatId(4242);
    let pushed = Instant::now();
    bot.push_message(chat, UserId(4242), "hello");
    let Ok(Ok(Some(WatchEnd::Pending(update, seen)))) = watch.await else {
        anyhow::bail!("the watch did not see the message");
    };
    let typing = tokio::spawn({
        let bot = bot.clone();
        async move {
            bot.wait_for(Duration::from_secs(30), |call| {
                call.method == "sendChatAction"
            })
            .await
            .map(|_| pushed.elapsed())
        }
    });
    let cause = WakeCause::Message {
        chat: update.chat,
        seen,
    };
    let woken = fleet::sleep::wake(app, &actor, id, cause).await?;
    let typing = typing.await?.map_err(anyhow::Error::msg)?;
    let from_push = seen.duration_since(pushed);
    let polling = woken
        .polling_in
        .ok_or_else(|| anyhow::anyhow!("the poller never reported running"))?;
    Ok((typing, polling + from_push, woken.started_in + from_push))
}

/// The woken cell stopped and started by hand (no MTP in the way): start →
/// its Telegram poller running, as the wake judges it.
async fn bare_warm_boot(app: &App, id: &TenantId) -> anyhow::Result<Duration> {
    let name = format!("mtp-cell-{id}");
    let stop = Command::new("docker").args(["stop", &name]).output()?;
    anyhow::ensure!(stop.status.success(), "docker stop {name}");
    let started = Instant::now();
    let start = Command::new("docker").args(["start", &name]).output()?;
    anyhow::ensure!(start.status.success(), "docker start {name}");
    loop {
        if let Ok(info) = fleet::gateway_info(app, id).await
            && info
                .telegram
                .as_ref()
                .is_some_and(|t| t.running == Some(true) || t.last_error.is_some())
        {
            return Ok(started.elapsed());
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(300),
            "the bare warm boot never got its poller running"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The host's used memory (total − available), bytes.
fn used_memory() -> anyhow::Result<u64> {
    let text = std::fs::read_to_string("/proc/meminfo")?;
    let field = |name: &str| -> u64 {
        text.lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    Ok(field("MemTotal:").saturating_sub(field("MemAvailable:")))
}

/// Used memory once the cells settled (their boot's peak over): the median of
/// 10 readings a second apart, after a minute.
async fn settled_memory() -> anyhow::Result<u64> {
    tokio::time::sleep(Duration::from_secs(60)).await;
    let mut readings = Vec::new();
    for _ in 0..10 {
        readings.push(used_memory()?);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    readings.sort_unstable();
    Ok(readings[readings.len() / 2])
}
