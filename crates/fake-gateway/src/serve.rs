//! `gateway`: reads env and config the way the real gateway does (token from config
//! or `OPENCLAW_GATEWAY_TOKEN`, `gateway.mode: "local"` required, no lan bind without
//! a token), binds one port, serves until SIGTERM/SIGINT or a control-API shutdown,
//! and then says `shutdown` {reason:"gateway stopping"} and closes sockets with 1012.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::config::ConfigDoc;
use crate::pairing::PairingStore;
use crate::persist::write_atomically;
use crate::ratelimit::RateLimiter;
use crate::state::{Gateway, Knobs, Phase, Settings, State};

/// A start refused by configuration; the real gateway exits with 78 (EX_CONFIG).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// What `gateway` was started with (flags and env, see `main.rs`).
pub struct Options {
    pub bind: String,
    pub port: u16,
    pub allow_unconfigured: bool,
    pub state_dir: Option<PathBuf>,
    pub config_path: Option<PathBuf>,
    pub tick_interval: Duration,
    pub startup_delay: Duration,
    pub restart_down: Duration,
    pub handshake_timeout: Duration,
}

/// The file in the state dir that records the port, for `devices approve`.
pub const PORT_FILE: &str = "fake-gateway.port";
/// Paired devices and issued device tokens.
pub const PAIRING_FILE: &str = "fake-gateway-devices.json";

fn bind_address(bind: &str) -> anyhow::Result<IpAddr> {
    match bind {
        "lan" => Ok(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        "loopback" => Ok(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        // In a container `auto` means every interface, on a host loopback.
        "auto" if std::path::Path::new("/.dockerenv").exists() => {
            Ok(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
        }
        "auto" => Ok(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        other => bail!("unsupported --bind {other} (the fake knows lan, loopback, auto)"),
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "fake-gateway".to_string())
}

/// # Errors
/// Start refused (mode not local, lan without token, bad config), or the port is
/// taken.
pub async fn run(options: Options) -> anyhow::Result<()> {
    let persist = options.state_dir.is_some() || options.config_path.is_some();
    let config_path = options
        .config_path
        .clone()
        .or_else(|| {
            options
                .state_dir
                .as_ref()
                .map(|dir| dir.join("openclaw.json"))
        })
        .unwrap_or_else(|| PathBuf::from("/home/node/.openclaw/openclaw.json"));
    let config = if persist {
        ConfigDoc::load(config_path, true)?
    } else {
        ConfigDoc::load(PathBuf::from("/nonexistent/openclaw.json"), false)?
    };
    let mode = config.string_at("gateway.mode");
    if mode.as_deref() != Some("local") && !options.allow_unconfigured {
        // The real texts (OpenClaw 2026.9.6, measured on the test image).
        let message = match (&mode, config.exists()) {
            (_, false) => "Missing config. Run `openclaw setup` or set gateway.mode=local (or pass --allow-unconfigured).".to_string(),
            (None, true) => "Gateway start blocked: existing config is missing gateway.mode. Treat this as suspicious or clobbered config. Re-run `openclaw onboard --mode local` or `openclaw setup`, set gateway.mode=local manually, or pass --allow-unconfigured.".to_string(),
            (Some(mode), true) => format!(
                "Gateway start blocked: set gateway.mode=local (current: {mode}) or pass --allow-unconfigured."
            ),
        };
        return Err(Refused(message).into());
    }
    let token = config
        .string_at("gateway.auth.token")
        .filter(|token| !token.is_empty())
        .or_else(|| std::env::var("OPENCLAW_GATEWAY_TOKEN").ok())
        .filter(|token| !token.is_empty());
    let address = bind_address(&options.bind)?;
    if !address.is_loopback() && token.is_none() {
        return Err(Refused(format!(
            "Refusing to bind gateway to {} without auth.",
            options.bind
        ))
        .into());
    }
    let pairing_path = options.state_dir.as_ref().map(|dir| dir.join(PAIRING_FILE));
    let now = Instant::now();
    let state = State {
        phase: match options.startup_delay.is_zero() {
            true => Phase::Accepting,
            false => Phase::Starting {
                until: now + options.startup_delay,
            },
        },
        boot_id: uuid::Uuid::new_v4().to_string(),
        booted_at: now,
        pairing: PairingStore::load(pairing_path),
        limiter: RateLimiter::default(),
        config,
        knobs: Knobs::default(),
        usage: Vec::new(),
        telegram: None,
        telegram_stopped_at: None,
        telegram_started_at: None,
        event_faults: VecDeque::new(),
        connected_devices: HashMap::new(),
        connections: 0,
        last_wake: None,
    };
    let listener = tokio::net::TcpListener::bind(SocketAddr::new(address, options.port))
        .await
        .with_context(|| format!("binding {address}:{}", options.port))?;
    let port = listener.local_addr()?.port();
    let settings = Settings {
        token,
        state_dir: options.state_dir.clone(),
        tick_interval: options.tick_interval,
        restart_down: options.restart_down,
        handshake_timeout: options.handshake_timeout,
        hostname: hostname(),
    };
    if let Some(dir) = &options.state_dir
        && let Err(err) = write_atomically(&dir.join(PORT_FILE), port.to_string().as_bytes())
    {
        tracing::warn!(cause = %err, "could not record the port in the state dir");
    }
    let gw = Gateway::new(settings, state);
    // Tests read this line to learn the port when started with --port 0.
    say(&format!(
        "[gateway] listening on ws://{address}:{port} (mtp-fake-gateway {})",
        crate::state::VERSION
    ));
    let app = crate::http::router(gw.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let server = axum::serve(listener, app);
    tokio::select! {
        result = server => result.context("server failed")?,
        () = stop_signal(&gw) => {}
    }
    gw.stop();
    // Let every socket send `shutdown` and its close frame.
    tokio::time::sleep(Duration::from_millis(300)).await;
    say("[gateway] stopped");
    Ok(())
}

/// Prints a line; a closed stdout (the test harness stopped reading) is not an error.
fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

async fn stop_signal(gw: &Gateway) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).ok();
    let mut int = signal(SignalKind::interrupt()).ok();
    let term = async {
        match term.as_mut() {
            Some(term) => {
                term.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    let int = async {
        match int.as_mut() {
            Some(int) => {
                int.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = term => {}
        () = int => {}
        () = gw.exit_requested() => {}
    }
}
