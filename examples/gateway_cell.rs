//! Drives a real cell's gateway by hand: connect (reporting a pairing request to
//! approve), then call every typed method and print what came back.
//!
//! `cargo run --example gateway_cell -- <port> <gateway-token> <device-key-path> [device-token-file] [mode]`
//! The device token file is read if present and written when the gateway issues one.
//! Modes: `methods` (default) calls every typed method;
//! `bench` times 1000 `health` round trips; `restart` asks the gateway to
//! restart and shows the client reconnecting by itself; `agent` runs one agent turn
//! (two responses); `dump <method> <params-json>` prints a raw result.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use mtp::gateway::{
    AgentScope, ChannelsQuery, Client, ConfigPatch, ConnectError, DeviceIdentity, Endpoint, Http,
    Options, UsagePeriod, UsageQuery,
};
use mtp::tenant::Secret;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args: Vec<String> = std::env::args().collect();
    let [_, port, token, key_path, rest @ ..] = args.as_slice() else {
        anyhow::bail!(
            "usage: gateway_cell <port> <gateway-token> <device-key-path> [device-token-file]"
        );
    };
    let port: u16 = port.parse().context("port")?;
    let identity = DeviceIdentity::load_or_create(Path::new(key_path))?;
    println!("device id {}", identity.device_id());
    let token_file = rest.first().map(Path::new);
    let mode = rest.get(1).map(String::as_str).unwrap_or("methods");
    let device_token = token_file
        .and_then(|path| std::fs::read_to_string(path).ok())
        .map(|text| Secret::new(text.trim().to_string()));
    let endpoint = Endpoint {
        host: "127.0.0.1".to_string(),
        port,
        gateway_token: Secret::new(token.clone()),
        device_token,
    };

    let http = Http::new(Duration::from_secs(5))?;
    println!("healthz  {:?}", http.healthz("127.0.0.1", port).await);
    println!("readyz   {:?}", http.readyz("127.0.0.1", port).await);
    println!("startupz {:?}", http.startupz("127.0.0.1", port).await);

    let client = match Client::connect(&endpoint, &identity, Options::default()).await {
        Ok(client) => client,
        Err(ConnectError::PairingRequired { request_id, reason }) => {
            println!("PAIRING REQUIRED ({reason}) request_id={request_id}");
            return Ok(());
        }
        Err(err) => return Err(err.into()),
    };
    let hello = client.hello();
    println!(
        "hello: version={} method={} scopes={:?} device_token={} tick={:?} max_payload={}",
        hello.server_version,
        hello.auth_method,
        hello.scopes,
        hello.device_token.is_some(),
        hello.tick_interval,
        hello.max_payload
    );
    if let (Some(path), Some(device_token)) = (token_file, &hello.device_token) {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)?;
        file.write_all(device_token.expose().as_bytes())?;
    }

    match mode {
        "methods" => methods(&client).await?,
        "restart" => restart(&client).await?,
        "hooks" => hooks(&client, &http, port).await?,
        "bench" => bench(&client).await?,
        "agent" => {
            let started = Instant::now();
            let params = serde_json::json!({"message": "hello", "idempotencyKey": format!("mtp-{}", std::process::id()), "sessionKey": "agent:main:main"});
            let res = client
                .call_with_timeout("agent", params, Duration::from_secs(120))
                .await;
            println!("agent after {:?}: {res:?}", started.elapsed());
        }
        "dump" => {
            let method = rest.get(2).context("dump needs a method")?;
            let params: serde_json::Value =
                serde_json::from_str(rest.get(3).map(String::as_str).unwrap_or("{}"))?;
            println!(
                "{}",
                serde_json::to_string(&client.call(method, params).await?)?
            );
        }
        other => anyhow::bail!("unknown mode {other}"),
    }
    client.close();
    Ok(())
}

/// Round trips of `health` over this one connection.
async fn bench(client: &Client) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut round_trips = Vec::new();
    for _ in 0..1000 {
        let call_started = Instant::now();
        client.call("health", serde_json::Value::Null).await?;
        round_trips.push(call_started.elapsed());
    }
    round_trips.sort();
    println!(
        "1000 health calls in {:?}: p50 {:?} p99 {:?}",
        started.elapsed(),
        round_trips[500],
        round_trips[989]
    );
    Ok(())
}

/// Enables hooks with a throwaway token, calls both hooks, then removes hooks again.
async fn hooks(client: &Client, http: &Http, port: u16) -> anyhow::Result<()> {
    let hooks_token = Secret::new(format!("mtp-example-hooks-{}", std::process::id()));
    let wake = mtp::gateway::Wake {
        text: "mtp example wake".to_string(),
        next_heartbeat: false,
        agent_id: None,
    };
    println!(
        "wake before enabling: {:?}",
        http.wake("127.0.0.1", port, &hooks_token, &wake).await
    );
    let config = client.config_get().await?;
    let enable = ConfigPatch {
        raw: serde_json::json!({"hooks": {"enabled": true, "token": hooks_token.expose(), "path": "/hooks", "allowedAgentIds": ["main"]}}).to_string(),
        base_hash: config.hash.context("config has no hash")?,
        replace_paths: Vec::new(),
        note: Some("mtp example: enable hooks".to_string()),
    };
    println!("enable hooks: {:?}", client.config_patch(&enable).await?);
    println!(
        "wake: {:?}",
        http.wake("127.0.0.1", port, &hooks_token, &wake).await
    );
    println!(
        "wake again: {:?}",
        http.wake("127.0.0.1", port, &hooks_token, &wake).await
    );
    println!(
        "wake wrong token: {:?}",
        http.wake("127.0.0.1", port, &Secret::new("wrong".to_string()), &wake)
            .await
    );
    let agent = mtp::gateway::HookAgent {
        message: "mtp example".to_string(),
        deliver: Some(false),
        ..Default::default()
    };
    println!(
        "hook agent: {:?}",
        http.hook_agent("127.0.0.1", port, &hooks_token, &agent)
            .await
    );
    let config = client.config_get().await?;
    let disable = ConfigPatch {
        raw: r#"{"hooks": null}"#.to_string(),
        base_hash: config.hash.context("config has no hash")?,
        replace_paths: vec!["hooks.allowedAgentIds".to_string()],
        note: Some("mtp example: remove hooks".to_string()),
    };
    println!("remove hooks: {:?}", client.config_patch(&disable).await?);
    println!(
        "wake after removing: {:?}",
        http.wake("127.0.0.1", port, &hooks_token, &wake).await
    );
    Ok(())
}

async fn restart(client: &Client) -> anyhow::Result<()> {
    let mut events = client.subscribe();
    let mut state = client.state();
    let boot = client.hello().boot_id.clone();
    let started = Instant::now();
    println!(
        "gateway.restart.request: {:?}",
        client
            .call("gateway.restart.request", serde_json::json!({}))
            .await
    );
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(event) => println!("{:>8.3?} event {}", started.elapsed(), match &event {
                    mtp::gateway::Event::Server { event, payload, seq } => format!("{event} seq={seq:?} {}", payload.to_string().chars().take(120).collect::<String>()),
                    other => format!("{other:?}"),
                }),
                Err(err) => println!("events: {err}"),
            },
            changed = state.changed() => {
                changed?;
                let now = state.borrow().clone();
                println!("{:>8.3?} state {now:?}", started.elapsed());
                if now == mtp::gateway::State::Connected { break; }
            }
        }
    }
    let health = client.health().await?;
    println!(
        "after restart: health ok={} boot {:?} -> {:?}, took {:?}",
        health.ok,
        boot,
        client.hello().boot_id,
        started.elapsed()
    );
    Ok(())
}

async fn methods(client: &Client) -> anyhow::Result<()> {
    let health = client.health().await?;
    println!(
        "health: ok={} agents={} plugins={}",
        health.ok,
        health.agents.len(),
        health.plugins.loaded.len()
    );
    let health = client.health_probe().await?;
    println!("health probe: ok={} ts={}", health.ok, health.ts);
    let status = client.status().await?;
    println!(
        "status: version={} rss={} sessions={}",
        status.runtime_version, status.process_memory.rss_bytes, status.sessions.count
    );
    let config = client.config_get().await?;
    println!(
        "config.get: path={} hash={:?} restart_pending={}",
        config.path,
        config.hash,
        config.restart_pending()
    );
    let usage = client
        .usage_cost(&UsageQuery {
            period: UsagePeriod::Days(7),
            agents: AgentScope::All,
            time_zone: None,
        })
        .await?;
    println!(
        "usage.cost: days={} daily={} total_cost={} cache={}",
        usage.days,
        usage.daily.len(),
        usage.totals.total_cost,
        usage.cache_status.status
    );
    let sessions_usage = client
        .sessions_usage(&UsageQuery {
            period: UsagePeriod::Days(7),
            agents: AgentScope::All,
            time_zone: None,
        })
        .await?;
    println!(
        "sessions.usage: {:?}..{:?} by_model={} sessions={}",
        sessions_usage.start_date,
        sessions_usage.end_date,
        sessions_usage.aggregates.by_model.len(),
        sessions_usage.aggregates.session_count
    );
    let skills = client.skills_status().await?;
    println!(
        "skills.status: {} skills, {} eligible",
        skills.skills.len(),
        skills.skills.iter().filter(|s| s.eligible).count()
    );
    let channels = client.channels_status(&ChannelsQuery::default()).await?;
    println!(
        "channels.status: order={:?} accounts={:?} issues={}",
        channels.channel_order,
        channels.channel_accounts.keys().collect::<Vec<_>>(),
        channels.status_issues.len()
    );
    let agents = client.agents_list().await?;
    println!(
        "agents.list: default={} agents={:?}",
        agents.default_id,
        agents.agents.iter().map(|a| &a.id).collect::<Vec<_>>()
    );
    let models = client.models_list().await?;
    println!("models.list: {} models", models.models.len());
    let pairs = client.device_pair_list().await?;
    println!(
        "device.pair.list: pending={} paired={}",
        pairs.pending.len(),
        pairs.paired.len()
    );

    if let Some(base_hash) = config.hash.clone() {
        let patch = ConfigPatch {
            raw: "{ skills: { entries: { weather: { enabled: false } } } }".to_string(),
            base_hash: base_hash.clone(),
            replace_paths: Vec::new(),
            note: Some("mtp gateway_cell example".to_string()),
        };
        let patched = client.config_patch(&patch).await?;
        println!("config.patch: {patched:?}");
        println!(
            "config.patch again (stale hash): {:?}",
            client.config_patch(&patch).await
        );
        let undo = ConfigPatch {
            // Put the config back as it was: drop `skills` if it was not there before.
            raw: if config
                .raw
                .as_deref()
                .is_some_and(|raw| raw.contains("skills"))
            {
                "{ skills: { entries: { weather: null } } }".to_string()
            } else {
                "{ skills: null }".to_string()
            },
            base_hash: patched.hash.context("patch returned no hash")?,
            replace_paths: Vec::new(),
            note: Some("mtp gateway_cell example: undo".to_string()),
        };
        println!("config.patch undo: {:?}", client.config_patch(&undo).await);
    }

    Ok(())
}
