//! The `mtp` command line (clap), an adapter over `fleet` as thin as `bot/`:
//! it parses and checks input, calls one `fleet` action, and renders the
//! result. `main.rs` only starts it.
//!
//! One module per noun: `tenant`, `usage`, `audit`, `rpc`, `serve`; the JSON
//! shapes the README documents are the types of `views`, every text the
//! operator reads is built in `render`, and `terminal` holds the progress bar
//! of long actions and the typed confirmation.
//!
//! Exit codes: 0 success; 1 the action failed (or `doctor` left findings);
//! 2 bad input or usage (nothing was changed).
//!
//! Architecture invariant: `cli/` never uses `runtime`, `gateway` or `store`;
//! it asks `fleet`.

mod audit;
mod backup;
mod config;
mod doctor;
mod fleet;
mod node;
mod render;
mod rpc;
mod serve;
mod tenant;
mod terminal;
mod usage;
mod views;

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::AdminConfig;
use crate::fleet::{App, CreateError};
use crate::tenant::TenantId;

/// The whole command line.
#[derive(Parser)]
#[command(
    name = "mtp",
    version,
    about = "MTP Admin: run one OpenClaw cell per client"
)]
pub struct Cli {
    /// Config file (JSON5). Default: ./mtp.json5 if present, else built-in defaults.
    #[arg(long, global = true, env = "MTP_CONFIG")]
    config: Option<PathBuf>,
    /// Data dir (store, device key, tenant dirs). Default: ./data.
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the Telegram admin bot (needs MTP_TELEGRAM_TOKEN and MTP_OPERATORS).
    Serve,
    /// The relay an admin Swarm service reaches its cells through; the admin
    /// starts it in its own container (README, "Several hosts").
    #[command(hide = true)]
    Relay(RelayArgs),
    /// Create, inspect and operate tenants' cells.
    #[command(subcommand)]
    Tenant(tenant::TenantCommand),
    /// Call one gateway method of a tenant's cell and print the result as JSON.
    Rpc(rpc::RpcArgs),
    /// Usage, cost and budgets per tenant, from the admin's ledger (README, "Usage and billing").
    Usage(usage::UsageArgs),
    /// The audit log: who did what to which tenant, when, and how it ended (secrets never in it).
    Audit(audit::AuditArgs),
    /// Encrypted backups of tenants and of the admin's store; restores and drills (README, "Backups").
    #[command(subcommand)]
    Backup(backup::BackupCommand),
    /// This host's memory, a cell's measured footprint, and how many more tenants fit.
    Capacity(tenant::JsonFlag),
    /// The hosts that run cells: this Docker engine, or the nodes of its swarm.
    #[command(subcommand)]
    Node(node::NodeCommand),
    /// A tenant's OpenClaw config: read it, or change one key on one, some or all tenants with a preview.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Fleet-wide actions: staged upgrades with a canary, waves and a brake (README, "Fleet operations").
    #[command(subcommand)]
    Fleet(fleet::FleetCommand),
    /// Check the host and every cell against what MTP promises; --fix repairs what is safe (README, "Doctor").
    Doctor(doctor::DoctorArgs),
}

/// An error that means "bad input, nothing changed": exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct BadInput(String);

/// `doctor` left findings: exit code 1, with the findings already printed.
#[derive(Debug, thiserror::Error)]
#[error("{0} findings remain")]
struct FindingsRemain(usize);

/// Runs one command to its end: logging to stderr, the async runtime, the
/// config, then the command.
///
/// # Errors
///
/// Whatever the command's `fleet` action or its input check returned; give it
/// to `exit_code`.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MTP_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        // Colour only on a terminal (not in a file, a pipe or journald), and
        // never under NO_COLOR (https://no-color.org).
        .with_ansi(
            std::io::stderr().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty()),
        )
        .init();
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|err| anyhow::anyhow!("cannot start the async runtime: {err}"))?;
    runtime.block_on(dispatch(cli))
}

/// The exit code for a command's result, printing the error chain: 2 for bad
/// input (nothing was changed), 1 for a failed action. A closed pipe on the
/// output is a quiet success.
#[must_use]
pub fn exit_code(result: anyhow::Result<()>) -> ExitCode {
    let Err(err) = result else {
        return ExitCode::SUCCESS;
    };
    if is_broken_pipe(&err) {
        return ExitCode::SUCCESS;
    }
    if err.downcast_ref::<FindingsRemain>().is_some() {
        // The findings are the output; no error line on top of them.
        return ExitCode::from(1);
    }
    match render::hint(&err) {
        Some(hint) => eprintln!("error: {err:#}; {hint}"),
        None => eprintln!("error: {err:#}"),
    }
    use crate::fleet::backup::RestoreError;
    let bad_input = err.downcast_ref::<BadInput>().is_some()
        || err
            .downcast_ref::<crate::fleet::moves::MoveRefused>()
            .is_some()
        || err
            .downcast_ref::<crate::fleet::resize::ResizeRefused>()
            .is_some()
        || err
            .downcast_ref::<crate::fleet::config_edit::ConfigRefused>()
            .is_some()
        || matches!(
            err.downcast_ref::<CreateError>(),
            Some(CreateError::Exists(_) | CreateError::Refused(_))
        )
        || matches!(
            err.downcast_ref::<RestoreError>(),
            Some(
                RestoreError::Unreadable { .. }
                    | RestoreError::Refused(_)
                    | RestoreError::Exists(_)
                    | RestoreError::Create(CreateError::Exists(_) | CreateError::Refused(_))
            )
        );
    ExitCode::from(if bad_input { 2 } else { 1 })
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// `mtp relay`'s flags.
#[derive(clap::Args)]
struct RelayArgs {
    /// Where to listen.
    #[arg(long)]
    listen: std::net::SocketAddr,
    /// The only peer addresses served (the host's side of the relay's bridge).
    #[arg(long, required = true)]
    allow: Vec<std::net::IpAddr>,
}

async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let env: BTreeMap<String, String> = std::env::vars()
        .filter(|(key, _)| key.starts_with("MTP_"))
        .collect();
    let config = AdminConfig::load(cli.config.as_deref(), cli.data_dir.as_deref(), &env)?;
    match cli.command {
        Command::Serve => serve::run(config).await,
        Command::Relay(args) => serve::relay(args.listen, args.allow).await,
        Command::Tenant(command) => tenant::run(config, command, &env).await,
        Command::Rpc(args) => rpc::run(config, args).await,
        Command::Usage(args) => {
            let app = App::open(config).await?;
            usage::run(&app, args).await
        }
        Command::Audit(args) => audit::run(config, args).await,
        Command::Backup(command) => backup::run(config, command).await,
        Command::Fleet(command) => fleet::run(config, command).await,
        Command::Config(command) => config::run(config, command).await,
        Command::Node(command) => node::run(config, command).await,
        Command::Capacity(flag) => {
            let app = App::open(config).await?;
            let capacity = crate::fleet::capacity::capacity(&app).await?;
            if flag.json {
                return render::print_json(&views::Capacity::new(&capacity));
            }
            render::print_line(&render::capacity(&capacity))
        }
        Command::Doctor(args) => {
            let app = App::open(config).await?;
            doctor::run(&app, args).await
        }
    }
}

fn parse_id(id: &str) -> anyhow::Result<TenantId> {
    id.parse::<TenantId>()
        .map_err(|err| BadInput(format!("invalid tenant id {id:?}: {err}")).into())
}
