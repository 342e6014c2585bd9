//! `mtp-fake-gateway`: a protocol-faithful fake OpenClaw gateway (protocol 4) for
//! fast and fleet-scale tests. Written from `openclaw/PROTOCOL.md` and the recorded
//! real sessions, independently of `mtp::gateway`, so that the client and the fake
//! check each other; a conformance suite runs against both this and a real cell.
//!
//! # Command line
//!
//! Installed as `/usr/local/bin/node` in the `mtp-test/fake-gateway:1` image, so the
//! runtime runs it exactly like a real cell. A leading `*.js`/`*.mjs` argument and a
//! `run` after `gateway` are ignored:
//!
//! ```text
//! node dist/index.js gateway --bind lan|loopback|auto --port N [--allow-unconfigured]
//! node dist/index.js devices approve <requestId> [--port N] [--token T] [--json]
//! node dist/index.js devices list [--port N]
//! mtp-fake-gateway gateway --port 0 --allow-unconfigured      # direct form for tests
//! ```
//!
//! Environment, as the real gateway: `OPENCLAW_GATEWAY_TOKEN` (refused without one on
//! a non-loopback bind; `gateway.auth.token` in config wins), `OPENCLAW_STATE_DIR`
//! (pairing store `fake-gateway-devices.json`, mode 0600, and `fake-gateway.port`),
//! `OPENCLAW_CONFIG_PATH` (default `$OPENCLAW_STATE_DIR/openclaw.json`; JSON5; start
//! refused unless `gateway.mode` is `"local"` or `--allow-unconfigured`),
//! `OPENCLAW_GATEWAY_PORT`, `OPENCLAW_HANDSHAKE_TIMEOUT_MS`. Fake-only knobs (flag or
//! env): `--tick-interval-ms`/`FAKE_TICK_INTERVAL_MS` (30000), `--startup-delay-ms`/
//! `FAKE_STARTUP_MS` (0: connects refused with UNAVAILABLE/1013 this long after
//! start), `--restart-ms`/`FAKE_RESTART_MS` (1500: refusal window after a restart).
//! Without a state dir everything stays in memory. On start it prints
//! `[gateway] listening on ws://ADDR:PORT …`. A start refused by configuration
//! prints the real gateway's text (`Missing config. …`, `Gateway start blocked: …`,
//! `Refusing to bind gateway to lan without auth.`) and exits 78, as the real one.
//! `devices approve` prints `Approved <deviceId> (<requestId>)`, or on an unknown id
//! `No pending device request matches <id>. …` on stderr and exits 1.
//!
//! # Control API (`/__fake/…`, `Authorization: Bearer <gateway token>`, JSON)
//!
//! | call | body | effect |
//! |---|---|---|
//! | `GET /state` | | phase, boot id, connections, pairing, knobs |
//! | `POST /reset` | `{"pairing"?: true}` | clear knobs, usage, channel, faults, rate limits (and pairing) |
//! | `PUT /behaviour` | `{"delaysMs": {m: ms}, "dropOn": {m: n\|"always"}, "errors": {m: {code, message, …}}, "noChallenge": bool, "agent": {outcome: "ok"\|"error"\|"timeout", text, errorMessage, finalDelayMs}, "skillsInstall": {ok: false, message, stdout, stderr, code}, "cronNextWakeAtMs": ms, "heartbeatEveryMs": ms (0 = off), "lastInboundAtMs": ms, "activeRun": bool}` | merged; `null` removes |
//! | `PUT /usage` | `{"entries": [{date, provider?, model?, agentId?, input, output, cacheRead, cacheWrite, inputCost, outputCost, cacheReadCost, cacheWriteCost, totalCost?, count?}]}` | figures for `usage.cost` and `sessions.usage` |
//! | `PUT /channels/telegram` | `{running, connected, lastError, configured, enabled, mode, tokenSource, statusIssues, preset?: "conflict"\|"unauthorized"}` | `channels.status` (409 / 401 presets) |
//! | `DELETE /channels/telegram` | | back to "from config" |
//! | `POST /faults` | `{"events": ["malformed", "oversized", {"skipSeq": n}], "oversizeBytes"?: n}` | applied to the next events sent |
//! | `POST /emit` | `{"event", "payload"?, "fault"?}` | broadcast an event now |
//! | `POST /restart` | `{"restartExpectedMs"?, "downMs"?}` | `shutdown` "gateway restarting", close 1012, refuse for `downMs` |
//! | `POST /shutdown` | | `shutdown` "gateway stopping", close 1012, exit |
//! | `POST /drop` | | cut every socket without a close frame |
//! | `GET /pairing` | | `device.pair.list` payload |
//! | `POST /approve` | `{"requestId"}` | approve (404 on an unknown id) |
//!
//! # Layout
//!
//! `serve` (start-up rules, the listener), `http` (probes, hooks, the upgrade) and
//! `control` (the `/__fake` API); `ws` (one socket), `connect` (the connect
//! decision), `device` (identity proof), `pairing` and `ratelimit`; `methods/` (RPC
//! dispatch, skills, send and agent), `params` and `validate` (the param schemas and
//! their AJV-worded check), `payloads` and `usage` (result shapes); `config/` (the
//! config document and `config.patch`); `state` (shared state, knobs), `persist`
//! (state-dir files); `approve` (`devices approve`/`list`).
//!
//! # Left out
//!
//! Loopback exceptions (every peer is remote), password/trusted-proxy/bootstrap auth,
//! origin checks, `X-OpenClaw-Scopes`, node role methods, chat, sessions with content,
//! the Control UI, OpenAI-compatible endpoints, config `$include`, `replacePaths`.

mod approve;
mod config;
mod connect;
mod control;
mod device;
mod http;
mod methods;
mod pairing;
mod params;
mod payloads;
mod persist;
mod ratelimit;
mod serve;
mod state;
mod usage;
mod validate;
mod ws;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "node",
    about = "mtp-fake-gateway: a fake OpenClaw gateway for tests"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the gateway (HTTP and WebSocket on one port).
    Gateway(GatewayArgs),
    /// Pairing requests of the running gateway.
    Devices {
        #[command(subcommand)]
        command: DevicesCommand,
    },
}

#[derive(Args)]
struct GatewayArgs {
    #[arg(long, default_value = "loopback", env = "OPENCLAW_GATEWAY_BIND")]
    bind: String,
    #[arg(long, env = "OPENCLAW_GATEWAY_PORT", default_value_t = 18789)]
    port: u16,
    #[arg(long)]
    allow_unconfigured: bool,
    #[arg(long, env = "OPENCLAW_STATE_DIR")]
    state_dir: Option<PathBuf>,
    #[arg(long, env = "OPENCLAW_CONFIG_PATH")]
    config: Option<PathBuf>,
    #[arg(long, env = "FAKE_TICK_INTERVAL_MS", default_value_t = 30_000)]
    tick_interval_ms: u64,
    #[arg(long, env = "FAKE_STARTUP_MS", default_value_t = 0)]
    startup_delay_ms: u64,
    #[arg(long, env = "FAKE_RESTART_MS", default_value_t = 1500)]
    restart_ms: u64,
    #[arg(long, env = "OPENCLAW_HANDSHAKE_TIMEOUT_MS", default_value_t = 15_000)]
    handshake_timeout_ms: u64,
}

#[derive(Args)]
struct TargetArgs {
    #[arg(long)]
    port: Option<u16>,
    #[arg(long)]
    token: Option<String>,
    #[arg(long, env = "OPENCLAW_STATE_DIR")]
    state_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum DevicesCommand {
    Approve {
        request_id: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: TargetArgs,
    },
    List {
        #[command(flatten)]
        target: TargetArgs,
    },
}

/// Drops `dist/index.js` (or any `*.js`/`*.mjs` script) and `gateway run`'s `run`.
fn normalize_args(args: Vec<String>) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    let mut iter = args.into_iter();
    if let Some(program) = iter.next() {
        out.push(program);
    }
    let mut rest: Vec<String> = iter.collect();
    if rest
        .first()
        .is_some_and(|first| first.ends_with(".js") || first.ends_with(".mjs"))
    {
        rest.remove(0);
    }
    if rest.first().map(String::as_str) == Some("gateway")
        && rest.get(1).map(String::as_str) == Some("run")
    {
        rest.remove(1);
    }
    out.extend(rest);
    out
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FAKE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse_from(normalize_args(std::env::args().collect()));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        match cli.command {
            Command::Gateway(args) => {
                let options = serve::Options {
                    bind: args.bind,
                    port: args.port,
                    allow_unconfigured: args.allow_unconfigured,
                    state_dir: args.state_dir,
                    config_path: args.config,
                    tick_interval: Duration::from_millis(args.tick_interval_ms.max(10)),
                    startup_delay: Duration::from_millis(args.startup_delay_ms),
                    restart_down: Duration::from_millis(args.restart_ms),
                    handshake_timeout: Duration::from_millis(args.handshake_timeout_ms.max(100)),
                };
                match serve::run(options).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(err) if err.downcast_ref::<serve::Refused>().is_some() => {
                        eprintln!("{err}");
                        ExitCode::from(78)
                    }
                    Err(err) => {
                        eprintln!("{err:#}");
                        ExitCode::FAILURE
                    }
                }
            }
            Command::Devices { command } => match command {
                DevicesCommand::Approve {
                    request_id,
                    json,
                    target,
                } => approve::approve(&target.into(), &request_id, json).await,
                DevicesCommand::List { target } => approve::list(&target.into()).await,
            },
        }
    })
}

impl From<TargetArgs> for approve::Target {
    fn from(args: TargetArgs) -> Self {
        approve::Target {
            port: args.port,
            token: args.token,
            state_dir: args.state_dir,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|arg| arg.to_string()).collect()
    }

    /// The runtime's command line and the direct form parse the same way.
    #[test]
    fn accepts_the_real_command_line() {
        let normalized = normalize_args(args(&[
            "node",
            "dist/index.js",
            "gateway",
            "--bind",
            "lan",
            "--port",
            "18789",
        ]));
        assert_eq!(
            normalized,
            args(&["node", "gateway", "--bind", "lan", "--port", "18789"])
        );
        let cli = Cli::try_parse_from(normalized).unwrap();
        assert!(
            matches!(cli.command, Command::Gateway(ref gateway) if gateway.port == 18789 && gateway.bind == "lan")
        );
        let normalized = normalize_args(args(&[
            "node",
            "openclaw.mjs",
            "gateway",
            "run",
            "--port",
            "1",
        ]));
        assert_eq!(normalized, args(&["node", "gateway", "--port", "1"]));
        let cli = Cli::try_parse_from(normalize_args(args(&[
            "node",
            "dist/index.js",
            "devices",
            "approve",
            "abc",
        ])))
        .unwrap();
        assert!(
            matches!(cli.command, Command::Devices { command: DevicesCommand::Approve { ref request_id, .. } } if request_id == "abc")
        );
        assert!(
            Cli::try_parse_from(args(&[
                "mtp-fake-gateway",
                "gateway",
                "--port",
                "0",
                "--allow-unconfigured"
            ]))
            .is_ok()
        );
    }
}
