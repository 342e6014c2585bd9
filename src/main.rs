//! The `mtp` command: parse, load config, call one `fleet` action, render.
//!
//! Exit codes: 0 success; 1 the action failed; 2 bad input or usage (nothing
//! was changed).

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use serde_json::{Value, json};

use mtp::config::AdminConfig;
use mtp::fleet::{self, Actor, App, CreateError, CreateStep, ReconcileReport, TenantView};
use mtp::tenant::{BotToken, BudgetAction, DmPolicy, Secret, TenantId, TenantSpec, Usd};
use mtp::usage::period::PeriodSpec;

#[derive(Parser)]
#[command(
    name = "mtp",
    version,
    about = "MTP Admin: run one OpenClaw cell per client"
)]
struct Cli {
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
    /// Create, inspect and operate tenants' cells.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Call one gateway method of a tenant's cell and print the result as JSON.
    Rpc {
        id: String,
        /// e.g. health, status, channels.status, usage.cost, config.get.
        method: String,
        /// Params as a JSON object (default {}).
        params: Option<String>,
    },
    /// Usage, cost and budgets per tenant, from the admin's ledger (README, "Usage and billing").
    Usage(UsageArgs),
    /// The audit log: who did what to which tenant, when, and how it ended (secrets never in it).
    Audit {
        /// Only this tenant's entries.
        #[arg(long)]
        tenant: Option<String>,
        /// How many of the latest entries.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
struct UsageArgs {
    #[command(subcommand)]
    command: Option<UsageCommand>,
    /// Tenant id (or --all).
    id: Option<String>,
    /// Every tenant, ranked by cost.
    #[arg(long, conflicts_with = "id")]
    all: bool,
    /// 7d, 30d, this-month, last-month, YYYY-MM or YYYY-MM-DD..YYYY-MM-DD (days in usage.timeZone).
    #[arg(long, default_value = "this-month")]
    period: String,
    #[arg(long, value_enum, default_value = "table")]
    format: UsageFormat,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum UsageFormat {
    Table,
    Csv,
    Json,
}

#[derive(Subcommand)]
enum UsageCommand {
    /// Read every running tenant's usage now (or one tenant's) into the ledger.
    Collect {
        id: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Show a tenant's monthly budget, or set it (US dollars; `none` removes the one set here).
    Budget {
        id: String,
        amount: Option<String>,
        /// What happens at 100%: notify, stop-channel or stop-cell.
        #[arg(long)]
        on_budget: Option<String>,
    },
    /// Undo a budget suspension (start the channel or the cell again).
    Resume { id: String },
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Create a tenant's cell and wait until its gateway is healthy.
    Create(CreateArgs),
    /// List every tenant with state, port, image and health.
    List(JsonFlag),
    /// Show one tenant.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Start a stopped cell.
    Start { id: String },
    /// Stop a cell on purpose (the monitor will not alert).
    Stop { id: String },
    /// Restart a cell.
    Restart { id: String },
    /// Turn a cell's webhooks on or off (/hooks/wake, /hooks/agent, with the cell's own hooks token).
    Hooks {
        id: String,
        #[arg(value_parser = ["on", "off"])]
        state: String,
    },
    /// Wake a tenant's agent through its webhook (hooks must be on).
    Wake {
        id: String,
        /// The system event text the agent gets.
        text: String,
        /// Wake at the next heartbeat instead of now.
        #[arg(long)]
        next_heartbeat: bool,
    },
    /// Move a cell to another pinned image (data, port and pairing kept; rolled back if it fails).
    Upgrade {
        id: String,
        /// The new image (default: cell.image of the config).
        #[arg(long)]
        image: Option<String>,
    },
    /// Remove a tenant's container and network; data stays unless --purge.
    Rm {
        id: String,
        /// Also delete the tenant's data dirs.
        #[arg(long)]
        purge: bool,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Print a cell's log, secrets redacted.
    Logs {
        id: String,
        /// Only the last N lines.
        #[arg(long)]
        tail: Option<usize>,
        /// Only lines newer than this (e.g. 10m, 2h).
        #[arg(long)]
        since: Option<String>,
        /// Keep printing new lines until the cell stops (or Ctrl-C).
        #[arg(long, short)]
        follow: bool,
    },
    /// Compare the store with Docker; undo abandoned creates; report the rest.
    Reconcile(JsonFlag),
    /// Pair the admin's device with a tenant's gateway again (e.g. after its state was reset).
    Pair { id: String },
}

#[derive(Args)]
struct JsonFlag {
    /// Machine-readable output (documented in the README).
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct CreateArgs {
    /// Tenant id: 1-40 chars of a-z, 0-9 and '-', not starting or ending with '-'.
    id: String,
    /// File holding the BotFather token ('-' for stdin). Or set MTP_TENANT_BOT_TOKEN.
    #[arg(long)]
    bot_token_file: Option<PathBuf>,
    /// File holding the model provider's API key ('-' for stdin). Or MTP_TENANT_PROVIDER_KEY.
    #[arg(long)]
    provider_key_file: Option<PathBuf>,
    /// Model as provider/model (default from config).
    #[arg(long)]
    model: Option<String>,
    /// Cell image, pinned (default from config).
    #[arg(long)]
    image: Option<String>,
    /// Memory limit, e.g. 2g.
    #[arg(long)]
    memory: Option<String>,
    /// CPU limit, e.g. 2 or 0.5.
    #[arg(long)]
    cpus: Option<f64>,
    /// Display name of the client.
    #[arg(long)]
    name: Option<String>,
    /// Telegram user ids allowed to talk to the bot (comma-separated); default: pairing.
    #[arg(long, value_delimiter = ',')]
    allow_from: Vec<i64>,
    /// Bundled skills to allow (comma-separated skill keys); default: OpenClaw's.
    #[arg(long, value_delimiter = ',')]
    skills: Option<Vec<String>>,
    /// Keep the container and dirs of a failed create for inspection.
    #[arg(long)]
    keep_failed: bool,
    #[arg(long)]
    json: bool,
}

/// An error that means "bad input, nothing changed": exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct BadInput(String);

fn main() -> ExitCode {
    let cli = Cli::parse();
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
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            match hint(&err) {
                Some(hint) => eprintln!("error: {err:#}; {hint}"),
                None => eprintln!("error: {err:#}"),
            }
            let bad_input = err.downcast_ref::<BadInput>().is_some()
                || matches!(
                    err.downcast_ref::<CreateError>(),
                    Some(CreateError::Exists(_) | CreateError::Refused(_))
                );
            ExitCode::from(if bad_input { 2 } else { 1 })
        }
    }
}

/// What the operator can do about a failure, in the CLI's words: fleet
/// reports the facts (an unknown id and the close ones, what a failed create
/// kept, an obstacle), the commands to run are named here.
fn hint(err: &anyhow::Error) -> Option<String> {
    let obstacle_hint = |obstacle: &fleet::Obstacle| match obstacle {
        fleet::Obstacle::DockerUnreachable => {
            "start it (for example `sudo scripts/docker-up.sh`) or set MTP_DOCKER_HOST".to_string()
        }
        fleet::Obstacle::ImageMissing { .. } => {
            "build it first (scripts/build-test-image.sh for the test image)".to_string()
        }
        fleet::Obstacle::NotPaired { tenant } => format!("run `mtp tenant pair {tenant}`"),
        fleet::Obstacle::CellUser { uid } => format!("run mtp as root or as uid {uid}"),
    };
    if let Some(unknown) = err.downcast_ref::<fleet::UnknownTenant>() {
        return Some(unknown_tenant_hint(unknown));
    }
    match err.downcast_ref::<CreateError>() {
        Some(CreateError::Exists(id)) => {
            return Some(format!(
                "pick another id or remove it first (mtp tenant rm {id})"
            ));
        }
        Some(CreateError::Failed {
            tenant,
            kept,
            obstacle,
            ..
        }) => {
            let mut hints = Vec::new();
            if *kept {
                hints.push(format!("remove them with `mtp tenant rm {tenant} --purge`"));
            }
            hints.extend(obstacle.as_ref().map(obstacle_hint));
            return (!hints.is_empty()).then(|| hints.join("; "));
        }
        _ => {}
    }
    if let Some(fleet::UpgradeError::Failed {
        tenant,
        outcome: fleet::Rollback::Failed { .. },
        ..
    }) = err.downcast_ref::<fleet::UpgradeError>()
    {
        return Some(format!("see `mtp tenant logs {tenant}`"));
    }
    fleet::obstacle(err).as_ref().map(obstacle_hint)
}

/// The close ids of an unknown one, or where to see them all.
fn unknown_tenant_hint(unknown: &fleet::UnknownTenant) -> String {
    if unknown.similar.is_empty() {
        return "`mtp tenant list` shows the tenants there are".to_string();
    }
    let names: Vec<&str> = unknown.similar.iter().map(TenantId::as_str).collect();
    format!("did you mean {}?", names.join(" or "))
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let env: BTreeMap<String, String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("MTP_"))
        .collect();
    let config = AdminConfig::load(cli.config.as_deref(), cli.data_dir.as_deref(), &env)?;
    let command = match cli.command {
        Command::Serve => {
            config.telegram.require()?;
            let app = App::open(config).await?;
            return serve(app).await;
        }
        Command::Tenant(command) => command,
        Command::Usage(args) => {
            let app = App::open(config).await?;
            return usage_command(&app, args).await;
        }
        Command::Audit {
            tenant,
            limit,
            json,
        } => {
            let tenant = tenant.as_deref().map(parse_id).transpose()?;
            if !(1..=100_000).contains(&limit) {
                bail!(BadInput(format!(
                    "--limit {limit}: give 1 to 100000 entries"
                )));
            }
            let app = App::open(config).await?;
            return print_audit(&fleet::audit_log(&app, tenant.as_ref(), limit)?, json);
        }
        Command::Rpc { id, method, params } => {
            let id = parse_id(&id)?;
            let params: Value = match params.as_deref() {
                None => json!({}),
                Some(text) => serde_json::from_str(text).map_err(|err| {
                    BadInput(format!(
                        "params must be a JSON object, e.g. '{{\"days\":7}}': {err}"
                    ))
                })?,
            };
            if !params.is_object() {
                bail!(BadInput(
                    "params must be a JSON object, e.g. '{\"days\":7}'".into()
                ));
            }
            if method.is_empty()
                || method.len() > 128
                || !method
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-')
            {
                bail!(BadInput(format!(
                    "{method:?} is not a gateway method name (e.g. health, usage.cost)"
                )));
            }
            let app = App::open(config).await?;
            let result = fleet::rpc(&app, &id, &method, params).await?;
            return print_json(&result);
        }
    };
    let app = App::open(config).await?;
    let actor = Actor::cli();
    match command {
        TenantCommand::Create(args) => {
            let spec = create_spec(&app, args.id.as_str(), &args, &env)?;
            let view = create_with_progress(&app, &actor, spec, args.json).await?;
            if args.json {
                print_json(&tenant_json(&view))
            } else {
                print_line(&format!(
                    "created {} on 127.0.0.1:{} ({})",
                    view.id(),
                    view.record.port,
                    view.health.as_str()
                ))
            }
        }
        TenantCommand::List(flag) => {
            let views = fleet::list(&app).await?;
            if flag.json {
                return print_json(&Value::Array(views.iter().map(tenant_json).collect()));
            }
            let mut out = String::from(
                "ID                                       STATE     HEALTH   PORT   IMAGE\n",
            );
            for view in &views {
                out.push_str(&format!(
                    "{:<40} {:<9} {:<8} {:<6} {}\n",
                    view.id().as_str(),
                    view.state.as_str(),
                    view.health.as_str(),
                    view.record.port,
                    view.record.image
                ));
            }
            if views.is_empty() {
                out.push_str("(no tenants yet; create one with `mtp tenant create <id> --bot-token-file F`)\n");
            }
            print_line(out.trim_end())
        }
        TenantCommand::Show { id, json } => {
            let id = parse_id(&id)?;
            let view = fleet::show(&app, &id).await?;
            // Live facts from the gateway, when the cell runs and the admin is paired.
            let gateway = if view.state == fleet::ViewState::Running && view.record.paired {
                Some(
                    fleet::gateway_info(&app, &id)
                        .await
                        .map_err(|err| format!("{err:#}")),
                )
            } else {
                None
            };
            if json {
                let mut value = tenant_json(&view);
                value["gateway"] = match &gateway {
                    Some(Ok(info)) => json!({
                        "version": info.version,
                        "scopes": info.scopes,
                        "telegram": info.telegram.as_ref().map(|t| json!({
                            "running": t.running,
                            "connected": t.connected,
                            "last_error": t.last_error,
                        })),
                    }),
                    Some(Err(error)) => json!({ "error": error }),
                    None => Value::Null,
                };
                return print_json(&value);
            }
            let mut text = render_show(&view);
            match &gateway {
                Some(Ok(info)) => {
                    text.push_str(&format!("\ngateway    OpenClaw {}", info.version));
                    if let Some(telegram) = &info.telegram {
                        let state = match (telegram.running, telegram.connected) {
                            (Some(true), Some(true)) => "running, connected",
                            (Some(true), _) => "running",
                            _ => "not running",
                        };
                        text.push_str(&format!("\ntelegram   {state}"));
                        if let Some(error) = &telegram.last_error {
                            text.push_str(&format!(" (last error: {error})"));
                        }
                    }
                }
                Some(Err(error)) => text.push_str(&format!("\ngateway    unreachable: {error}")),
                None => {}
            }
            print_line(&text)
        }
        TenantCommand::Pair { id } => {
            let id = parse_id(&id)?;
            fleet::pair(&app, &actor, &id).await?;
            print_line(&format!("paired the admin with {id}"))
        }
        TenantCommand::Start { id } => {
            let id = parse_id(&id)?;
            let started = fleet::start(&app, &actor, &id).await?;
            print_line(&match started {
                fleet::Started::Started => format!("started {id}; gateway healthy"),
                fleet::Started::AlreadyRunning => {
                    format!("{id} was already running; gateway healthy")
                }
            })
        }
        TenantCommand::Stop { id } => {
            let id = parse_id(&id)?;
            let stopped = fleet::stop(&app, &actor, &id).await?;
            print_line(&match stopped {
                fleet::Stopped::Stopped => format!("stopped {id}"),
                fleet::Stopped::AlreadyStopped => format!("{id} was already stopped"),
            })
        }
        TenantCommand::Restart { id } => {
            let id = parse_id(&id)?;
            fleet::restart(&app, &actor, &id).await?;
            print_line(&format!("restarted {id}; gateway healthy"))
        }
        TenantCommand::Hooks { id, state } => {
            let id = parse_id(&id)?;
            let on = state == "on";
            let changed = fleet::set_hooks(&app, &actor, &id, on).await?;
            let what = if on {
                "on: /hooks/wake and /hooks/agent (agent main) answer the cell's hooks token"
            } else {
                "off"
            };
            print_line(&format!(
                "{id}: hooks {what}{}",
                if changed { "" } else { " (no change)" }
            ))
        }
        TenantCommand::Wake {
            id,
            text,
            next_heartbeat,
        } => {
            let id = parse_id(&id)?;
            if text.trim().is_empty() {
                bail!(BadInput(
                    "the wake text is empty; say what the agent should look at".into()
                ));
            }
            let wake = fleet::Wake {
                text,
                next_heartbeat,
                agent_id: None,
            };
            let accepted = fleet::wake(&app, &actor, &id, &wake).await?;
            print_line(&format!(
                "{id}: wake {} ({})",
                accepted.event_outcome, accepted.mode
            ))
        }
        TenantCommand::Upgrade { id, image } => {
            let id = parse_id(&id)?;
            let upgraded = upgrade_with_progress(&app, &actor, &id, image.as_deref()).await?;
            let how = if upgraded.left_stopped {
                "made anew, left stopped as it was"
            } else {
                "gateway healthy and paired"
            };
            print_line(&format!(
                "upgraded {id} from {} to {} (generation {}); {how}",
                upgraded.from, upgraded.to, upgraded.generation
            ))
        }
        TenantCommand::Rm { id, purge, yes } => {
            let id = parse_id(&id)?;
            if !yes {
                confirm_removal(&id, purge)?;
            }
            let removed = fleet::remove(&app, &actor, &id, purge).await?;
            let data = if removed.purged {
                "data deleted".to_string()
            } else {
                format!("data kept in {}", app.tenant_dir(&id).display())
            };
            print_line(&format!("removed {id}; {data}"))
        }
        TenantCommand::Logs {
            id,
            tail,
            since,
            follow,
        } => {
            let id = parse_id(&id)?;
            let since = match since {
                Some(text) => Some(humantime::parse_duration(&text).map_err(|_| {
                    BadInput(format!(
                        "--since {text:?} is not a duration; write it like 10m or 2h"
                    ))
                })?),
                None => None,
            };
            if follow {
                use futures_util::StreamExt;
                let mut lines = fleet::follow_logs(&app, &id, tail, since).await?;
                while let Some(line) = lines.next().await {
                    let line = line.context("the log stream broke")?;
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "{}", line.text)?;
                    out.flush()?;
                }
                return Ok(());
            }
            let lines = fleet::logs(&app, &id, tail, since).await?;
            let mut out = std::io::stdout().lock();
            for line in lines {
                writeln!(out, "{}", line.text)?;
            }
            Ok(())
        }
        TenantCommand::Reconcile(flag) => {
            let report = fleet::reconcile(&app).await?;
            if flag.json {
                return print_json(&reconcile_json(&report));
            }
            print_line(&render_reconcile(&report))
        }
    }
}

/// `mtp serve`: reconcile, then the bot until SIGTERM or Ctrl-C; in-flight
/// work finishes before the process exits.
async fn serve(app: App) -> anyhow::Result<()> {
    let shutdown = async {
        let mut term = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
            Ok(term) => term,
            Err(err) => {
                tracing::error!(cause = %err, "cannot watch SIGTERM; only Ctrl-C stops the bot");
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("shutting down: finishing in-flight work");
    };
    mtp::serve::run(app, shutdown).await
}

async fn usage_command(app: &App, args: UsageArgs) -> anyhow::Result<()> {
    let actor = Actor::cli();
    let now = chrono::Utc::now();
    match args.command {
        Some(UsageCommand::Collect { id, json }) => {
            let report = match id {
                Some(id) => fleet::collect_tenant_usage(app, &parse_id(&id)?).await?,
                None => fleet::collect_usage(app).await?,
            };
            if json {
                return print_json(&collect_json(&report));
            }
            let lines: Vec<String> = report
                .tenants
                .iter()
                .map(|(id, collected)| format!("{id}: {}", collected_text(collected)))
                .collect();
            if lines.is_empty() {
                return print_line("no tenants");
            }
            return print_line(&lines.join("\n"));
        }
        Some(UsageCommand::Budget {
            id,
            amount,
            on_budget,
        }) => {
            let id = parse_id(&id)?;
            let action = match on_budget.as_deref() {
                Some(text) => Some(BudgetAction::parse(text).ok_or_else(|| {
                    BadInput(format!(
                        "--on-budget {text:?}: use notify, stop-channel or stop-cell"
                    ))
                })?),
                None => None,
            };
            if amount.is_some() || action.is_some() {
                let current = fleet::budget(app, &id)?;
                let amount = match amount.as_deref() {
                    Some("none") => None,
                    Some(text) => Some(
                        text.parse::<Usd>()
                            .map_err(|err| BadInput(format!("{err}, or none")))?,
                    ),
                    None => current.amount.filter(|_| current.set_by_operator),
                };
                fleet::set_budget(app, &actor, &id, amount, action)?;
            }
            let status = fleet::budget_status(app, &id, now)?;
            return print_line(&match status.budget.amount {
                Some(amount) => format!(
                    "{id}: budget {amount} a month ({}), at 100%: {}; spent {} in {} ({:.1}%); alerts sent: {}{}",
                    if status.budget.set_by_operator {
                        "set here"
                    } else {
                        "from config"
                    },
                    status.budget.action.as_str(),
                    status.spend,
                    status.month,
                    status.spend.percent_of(amount).unwrap_or_default(),
                    if status.notified.is_empty() {
                        "-".to_string()
                    } else {
                        status
                            .notified
                            .iter()
                            .map(|t| format!("{t}%"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    },
                    status
                        .budget
                        .suspended
                        .as_ref()
                        .map(|s| format!(
                            "; suspended ({}) since {}",
                            s.how.as_str(),
                            rfc3339(s.since)
                        ))
                        .unwrap_or_default(),
                ),
                None => format!("{id}: no budget; set one with `mtp usage budget {id} <amount>`"),
            });
        }
        Some(UsageCommand::Resume { id }) => {
            let id = parse_id(&id)?;
            return print_line(&match fleet::resume(app, &actor, &id).await? {
                fleet::Resumed::Resumed(how) => {
                    format!("resumed {id} (it was suspended with {})", how.as_str())
                }
                fleet::Resumed::NotSuspended => format!("{id} is not suspended"),
            });
        }
        None => {}
    }
    let spec: PeriodSpec = args
        .period
        .parse()
        .map_err(|err: mtp::usage::period::PeriodError| BadInput(format!("--period: {err}")))?;
    let zone = app.config().usage.time_zone.name();
    if args.all {
        let period = spec.resolve(fleet::today(app, now));
        let summaries = fleet::tenant_summaries(app, period)?;
        let fleet_summary = fleet::rank(period, &summaries);
        return match args.format {
            UsageFormat::Json => print_json(&json!({
                "period": period_json(&spec, &period, zone),
                "tenants": fleet_summary.tenants.iter().map(|t| json!({
                    "tenant": t.tenant.as_str(),
                    "cost": t.cost,
                    "billable": t.billable,
                    "total_tokens": t.tokens,
                    "as_of": t.as_of.map(rfc3339),
                })).collect::<Vec<_>>(),
                "total": { "cost": fleet_summary.cost, "billable": fleet_summary.billable },
            })),
            UsageFormat::Csv => {
                let out = mtp::usage::report::csv_all(&summaries);
                let mut stdout = std::io::stdout().lock();
                stdout.write_all(out.as_bytes())?;
                Ok(())
            }
            UsageFormat::Table => {
                let mut out = format!(
                    "usage {spec} ({period}, {zone})\n{:<40} {:>12} {:>12} {:>14}\n",
                    "TENANT", "COST", "BILLABLE", "TOKENS"
                );
                for t in &fleet_summary.tenants {
                    out.push_str(&format!(
                        "{:<40} {:>12} {:>12} {:>14}\n",
                        t.tenant.as_str(),
                        t.cost.to_string(),
                        t.billable.to_string(),
                        t.tokens
                    ));
                }
                out.push_str(&format!(
                    "{:<40} {:>12} {:>12}",
                    "TOTAL",
                    fleet_summary.cost.to_string(),
                    fleet_summary.billable.to_string()
                ));
                print_line(&out)
            }
        };
    }
    let Some(id) = args.id else {
        bail!(BadInput(
            "name a tenant (`mtp usage <id>`), pass --all, or `mtp usage collect`".into()
        ));
    };
    let id = parse_id(&id)?;
    let summary = fleet::tenant_summary(app, &id, spec.resolve(fleet::today(app, now)))?;
    match args.format {
        UsageFormat::Csv => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(mtp::usage::report::csv(&summary).as_bytes())?;
            Ok(())
        }
        UsageFormat::Json => {
            let status = fleet::budget_status(app, &id, now)?;
            print_json(&usage_json(&spec, zone, &summary, &status))
        }
        UsageFormat::Table => print_line(&render_usage(&spec, zone, &summary)),
    }
}

fn collected_text(collected: &fleet::Collected) -> String {
    match collected {
        fleet::Collected::Read {
            days,
            models,
            ratcheted,
        } => {
            format!(
                "read {days} days and {models} model rows ({} new or raised, {} lower readings kept)",
                ratcheted.raised, ratcheted.held
            )
        }
        fleet::Collected::NotRunning => "skipped: not running".to_string(),
        fleet::Collected::NotPaired => "skipped: not paired (run `mtp tenant pair`)".to_string(),
        fleet::Collected::Failed(error) => {
            format!("failed, figures kept, retried next time: {error}")
        }
    }
}

/// The stable JSON shape of `mtp usage collect --json` (README, "Usage and billing").
fn collect_json(report: &fleet::CollectReport) -> Value {
    json!({
        "at": rfc3339(report.at),
        "start": report.start.to_string(),
        "end": report.end.to_string(),
        "tenants": report.tenants.iter().map(|(id, collected)| {
            let mut value = json!({ "tenant": id.as_str() });
            match collected {
                fleet::Collected::Read { days, models, ratcheted } => {
                    value["outcome"] = json!("read");
                    value["days"] = json!(days);
                    value["model_rows"] = json!(models);
                    value["raised"] = json!(ratcheted.raised);
                    value["held"] = json!(ratcheted.held);
                }
                fleet::Collected::NotRunning => value["outcome"] = json!("not_running"),
                fleet::Collected::NotPaired => value["outcome"] = json!("not_paired"),
                fleet::Collected::Failed(error) => {
                    value["outcome"] = json!("failed");
                    value["error"] = json!(error);
                }
            }
            value
        }).collect::<Vec<_>>(),
    })
}

fn period_json(spec: &PeriodSpec, period: &fleet::Period, zone: &str) -> Value {
    json!({ "spec": spec.to_string(), "start": period.start.to_string(), "end": period.end.to_string(), "time_zone": zone })
}

fn figures_json(figures: &fleet::UsageFigures) -> Value {
    json!({
        "input_tokens": figures.input,
        "output_tokens": figures.output,
        "cache_read_tokens": figures.cache_read,
        "cache_write_tokens": figures.cache_write,
        "total_tokens": figures.tokens(),
        "cost": figures.cost,
    })
}

/// The stable JSON shape of `mtp usage <id> --format json` (README, "Usage and billing").
fn usage_json(
    spec: &PeriodSpec,
    zone: &str,
    summary: &fleet::Summary,
    status: &fleet::BudgetStatus,
) -> Value {
    let with = |mut value: Value, key: &str, extra: Value| {
        value[key] = extra;
        value
    };
    let bill = &summary.bill;
    json!({
        "tenant": summary.tenant.as_str(),
        "period": period_json(spec, &summary.period, zone),
        "currency": "USD",
        "as_of": summary.as_of.map(rfc3339),
        "totals": figures_json(&summary.totals),
        "models": summary.models.iter().map(|(model, figures)| with(figures_json(figures), "model", json!(model))).collect::<Vec<_>>(),
        "daily": summary.daily.iter().map(|(day, figures)| with(figures_json(figures), "date", json!(day.to_string()))).collect::<Vec<_>>(),
        "billable": { "cost": bill.cost, "markup_percent": bill.markup_percent, "usage": bill.usage, "fee": bill.fee, "total": bill.total },
        "budget": {
            "amount": status.budget.amount,
            "set_by_operator": status.budget.set_by_operator,
            "on_budget": status.budget.action.as_str(),
            "month": status.month,
            "month_spend": status.spend,
            "notified": status.notified,
            "suspended": status.budget.suspended.as_ref().map(|s| json!({ "since": rfc3339(s.since), "how": s.how.as_str(), "month": s.month })),
        },
    })
}

fn render_usage(spec: &PeriodSpec, zone: &str, summary: &fleet::Summary) -> String {
    let totals = &summary.totals;
    let bill = &summary.bill;
    let mut lines = vec![
        format!(
            "usage of {} {spec} ({}, {zone})",
            summary.tenant, summary.period
        ),
        format!(
            "tokens     {} in, {} out, {} cache read, {} cache write",
            totals.input, totals.output, totals.cache_read, totals.cache_write
        ),
        format!("cost       {}", totals.cost),
        format!(
            "billable   {} = {} usage ({}% markup) + {} fee",
            bill.total, bill.usage, bill.markup_percent, bill.fee
        ),
        format!(
            "as of      {}",
            summary
                .as_of
                .map(rfc3339)
                .unwrap_or_else(|| "never read".to_string())
        ),
    ];
    if !summary.models.is_empty() {
        lines.push(format!("{:<48} {:>12} {:>14}", "MODEL", "COST", "TOKENS"));
        for (model, figures) in &summary.models {
            lines.push(format!(
                "{model:<48} {:>12} {:>14}",
                format!("{:.4}", figures.cost),
                figures.tokens()
            ));
        }
    }
    lines.join("\n")
}

fn parse_id(id: &str) -> anyhow::Result<TenantId> {
    id.parse::<TenantId>()
        .map_err(|err| BadInput(format!("invalid tenant id {id:?}: {err}")).into())
}

fn create_spec(
    app: &App,
    id: &str,
    args: &CreateArgs,
    env: &BTreeMap<String, String>,
) -> anyhow::Result<TenantSpec> {
    let id = parse_id(id)?;
    let raw_token = read_secret(args.bot_token_file.as_deref(), env.get("MTP_TENANT_BOT_TOKEN"), "bot token")?
        .ok_or_else(|| BadInput("no bot token: pass --bot-token-file FILE (or '-' for stdin) or set MTP_TENANT_BOT_TOKEN".into()))?;
    let bot_token = BotToken::parse(raw_token.expose()).map_err(|err| BadInput(err.to_string()))?;
    let provider_key = read_secret(
        args.provider_key_file.as_deref(),
        env.get("MTP_TENANT_PROVIDER_KEY"),
        "provider key",
    )?;
    let memory_bytes = match &args.memory {
        Some(text) => Some(
            mtp::config::parse_memory(text)
                .map_err(|err| BadInput(format!("--memory {text:?}: {err:#}")))?,
        ),
        None => None,
    };
    let nano_cpus = match args.cpus {
        Some(cpus) => Some(
            mtp::config::cpus_to_nano(cpus).map_err(|err| BadInput(format!("--cpus: {err:#}")))?,
        ),
        None => None,
    };
    let limits = (memory_bytes.is_some() || nano_cpus.is_some())
        .then(|| app.config().cell.limits(memory_bytes, nano_cpus));
    let dm_policy = if args.allow_from.is_empty() {
        DmPolicy::Pairing
    } else {
        DmPolicy::Allowlist(args.allow_from.clone())
    };
    Ok(TenantSpec {
        id,
        display_name: args.name.clone(),
        bot_token,
        provider_key,
        model: args
            .model
            .clone()
            .unwrap_or_else(|| app.config().cell.model.clone()),
        image: args.image.clone(),
        limits,
        dm_policy,
        skills: args.skills.clone(),
        bot_username: None,
        keep_failed: args.keep_failed,
    })
}

/// A secret from a file, '-' (stdin), or an env value; never from argv.
fn read_secret(
    file: Option<&Path>,
    env_value: Option<&String>,
    what: &str,
) -> anyhow::Result<Option<Secret<String>>> {
    let text = match file {
        Some(path) if path == Path::new("-") => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .with_context(|| format!("cannot read the {what} from stdin"))?;
            text
        }
        Some(path) => std::fs::read_to_string(path).map_err(|err| {
            BadInput(format!(
                "cannot read the {what} from {}: {err}",
                path.display()
            ))
        })?,
        None => match env_value {
            Some(value) => value.clone(),
            None => return Ok(None),
        },
    };
    let text = text.trim().to_string();
    if text.is_empty() {
        bail!(BadInput(format!("the {what} is empty")));
    }
    Ok(Some(Secret::new(text)))
}

async fn create_with_progress(
    app: &App,
    actor: &Actor,
    spec: TenantSpec,
    quiet: bool,
) -> anyhow::Result<TenantView> {
    let bar = if quiet || !std::io::stderr().is_terminal() {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(CreateStep::ALL.len() as u64)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{bar:20}] {pos}/{len} {msg} ({elapsed})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    let id = spec.id.clone();
    let mut progress = |step: CreateStep| {
        bar.set_position(CreateStep::ALL.iter().position(|s| *s == step).unwrap_or(0) as u64);
        bar.set_message(format!("{id}: {}", step_text(step)));
    };
    let result = fleet::create(app, actor, spec, &mut progress).await;
    bar.finish_and_clear();
    Ok(result?)
}

async fn upgrade_with_progress(
    app: &App,
    actor: &Actor,
    id: &TenantId,
    image: Option<&str>,
) -> anyhow::Result<fleet::Upgraded> {
    const STEPS: u64 = 7;
    let bar = if std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(STEPS)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{bar:20}] {pos}/{len} {msg} ({elapsed})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    let mut progress = |step: fleet::UpgradeStep| {
        bar.inc(1);
        bar.set_message(format!("{id}: {}", upgrade_step_text(step)));
    };
    let result = fleet::upgrade(app, actor, id, image, &mut progress).await;
    bar.finish_and_clear();
    match result {
        Ok(upgraded) => Ok(upgraded),
        Err(fleet::UpgradeError::Refused(reason)) => Err(BadInput(reason).into()),
        Err(fleet::UpgradeError::UnknownTenant(unknown)) => {
            Err(BadInput(format!("{unknown}; {}", unknown_tenant_hint(&unknown))).into())
        }
        Err(err) => Err(err.into()),
    }
}

fn upgrade_step_text(step: fleet::UpgradeStep) -> &'static str {
    match step {
        fleet::UpgradeStep::Validate => "checking the image",
        fleet::UpgradeStep::Maintenance => "muting the monitor",
        fleet::UpgradeStep::Replace => "replacing the container",
        fleet::UpgradeStep::Start => "starting",
        fleet::UpgradeStep::Health => "waiting for the gateway to be healthy",
        fleet::UpgradeStep::Gateway => "reaching the gateway",
        fleet::UpgradeStep::Done => "done",
    }
}

fn step_text(step: CreateStep) -> &'static str {
    match step {
        CreateStep::Validate => "checking input",
        CreateStep::Record => "recording the tenant",
        CreateStep::Dirs => "creating data dirs",
        CreateStep::Config => "writing the OpenClaw config",
        CreateStep::Network => "creating the network",
        CreateStep::Container => "creating the container",
        CreateStep::Start => "starting",
        CreateStep::Health => "waiting for the gateway to be healthy",
        CreateStep::Pair => "pairing the admin with the gateway",
        CreateStep::Done => "done",
    }
}

fn confirm_removal(id: &TenantId, purge: bool) -> anyhow::Result<()> {
    if !std::io::stdin().is_terminal() {
        bail!(BadInput(format!(
            "refusing to remove {id} without confirmation; pass --yes"
        )));
    }
    let prompt = if purge {
        format!(
            "This deletes {id}'s container, network AND all its data. Type the tenant id to confirm: "
        )
    } else {
        format!(
            "Remove {id}'s container and network (data is kept)? Type the tenant id to confirm: "
        )
    };
    eprint!("{prompt}");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    if answer.trim() != id.as_str() {
        bail!(BadInput("not confirmed; nothing was removed".into()));
    }
    Ok(())
}

/// The stable JSON shape of a tenant (README, "JSON output").
fn tenant_json(view: &TenantView) -> Value {
    let record = &view.record;
    json!({
        "id": record.id.as_str(),
        "name": record.display_name,
        "state": view.state.as_str(),
        "health": view.health.as_str(),
        "port": record.port,
        "image": record.image,
        "image_id": record.image_id,
        "model": record.model,
        "paired": record.paired,
        "generation": record.generation,
        "muted_until": record.quiet_until().map(rfc3339),
        "memory_bytes": record.limits.memory_bytes,
        "cpus": record.limits.nano_cpus as f64 / 1e9,
        "created_at": rfc3339(record.created_at),
        "last_error": record.last_error,
        "container": view.container.as_ref().map(|c| json!({
            "id": c.container_id,
            "state": c.state,
            "restart_count": c.restart_count,
            "oom_killed": c.oom_killed,
            "exit_code": c.exit_code,
            "started_at": c.started_at,
        })),
    })
}

fn reconcile_json(report: &ReconcileReport) -> Value {
    let ids = |ids: &[TenantId]| {
        ids.iter()
            .map(|id| id.as_str().to_string())
            .collect::<Vec<_>>()
    };
    json!({
        "cleaned": ids(&report.cleaned),
        "removed": ids(&report.removed),
        "repaired": ids(&report.repaired),
        "in_progress": ids(&report.in_progress),
        "orphan_containers": ids(&report.orphan_containers),
        "orphan_networks": report.orphan_networks,
        "missing": ids(&report.missing),
    })
}

fn render_reconcile(report: &ReconcileReport) -> String {
    if report.is_clean() && report.in_progress.is_empty() {
        return "reconcile: store and Docker agree".to_string();
    }
    let mut lines = Vec::new();
    for id in &report.cleaned {
        lines.push(format!("reconcile: undid the abandoned create of {id}"));
    }
    for id in &report.removed {
        lines.push(format!("reconcile: finished the abandoned removal of {id}"));
    }
    for id in &report.repaired {
        lines.push(format!(
            "reconcile: made the missing container of {id} again from its record"
        ));
    }
    for id in &report.in_progress {
        lines.push(format!(
            "reconcile: an action on {id} is still running; left alone"
        ));
    }
    for id in &report.orphan_containers {
        lines.push(format!(
            "reconcile: container mtp-cell-{id} has no record; inspect it, then `docker rm -f mtp-cell-{id}` if unwanted"
        ));
    }
    for name in &report.orphan_networks {
        lines.push(format!(
            "reconcile: network {name} has no tenant; remove it with `docker network rm {name}`"
        ));
    }
    for id in &report.missing {
        lines.push(format!(
            "reconcile: {id} has no container and it could not be made again (see `mtp audit --tenant {id}`); `mtp tenant rm {id}` forgets it (data is kept)"
        ));
    }
    lines.join("\n")
}

fn render_show(view: &TenantView) -> String {
    let record = &view.record;
    let mut lines = vec![
        format!("tenant     {}", record.id),
        format!(
            "name       {}",
            record.display_name.as_deref().unwrap_or("-")
        ),
        format!("state      {}", view.state.as_str()),
        format!("health     {}", view.health.as_str()),
        format!("gateway    ws://127.0.0.1:{}/", record.port),
        format!(
            "image      {} ({})",
            record.image,
            record.image_id.as_deref().unwrap_or("-")
        ),
        format!("model      {}", record.model),
        format!(
            "limits     {} MiB, {} CPUs, {} pids",
            record.limits.memory_bytes / (1024 * 1024),
            record.limits.nano_cpus as f64 / 1e9,
            record.limits.pids
        ),
        format!("network    mtp-cell-{} ({})", record.id, record.subnet),
        format!("paired     {}", if record.paired { "yes" } else { "no" }),
        format!("created    {}", rfc3339(record.created_at)),
    ];
    if let Some(container) = &view.container {
        lines.push(format!(
            "container  {} (restarts {}, exit code {}{})",
            container.state,
            container.restart_count,
            container.exit_code,
            if container.oom_killed {
                ", OOM killed"
            } else {
                ""
            }
        ));
    }
    if let Some(error) = &record.last_error {
        lines.push(format!("last error {error}"));
    }
    lines.join("\n")
}

fn rfc3339(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|t| t.to_rfc3339())
        .unwrap_or_default()
}

fn print_audit(entries: &[mtp::fleet::AuditEntry], as_json: bool) -> anyhow::Result<()> {
    if as_json {
        let rows: Vec<Value> = entries
            .iter()
            .map(|e| {
                json!({
                    "at": rfc3339(e.at), "actor": e.actor, "action": e.action, "tenant": e.tenant,
                    "outcome": e.outcome.as_str(), "step": e.step, "error": e.error,
                })
            })
            .collect();
        return print_json(&Value::Array(rows));
    }
    let mut out = std::io::stdout().lock();
    for e in entries {
        let failure = match (&e.step, &e.error) {
            (Some(step), Some(error)) => format!(" at {step}: {error}"),
            (None, Some(error)) => format!(": {error}"),
            _ => String::new(),
        };
        writeln!(
            out,
            "{}  {:<16} {:<24} {:<12} {}{failure}",
            rfc3339(e.at),
            e.actor,
            e.action,
            e.tenant.as_deref().unwrap_or("-"),
            e.outcome.as_str()
        )?;
    }
    Ok(())
}

fn print_json(value: &Value) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

fn print_line(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")?;
    Ok(())
}
