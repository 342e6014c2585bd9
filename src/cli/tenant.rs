//! `mtp tenant …`: create, inspect and operate tenants' cells, and reconcile
//! the store with Docker.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use crate::cli::terminal::{self, Progress};
use crate::cli::{BadInput, parse_id, render, views};
use crate::config::AdminConfig;
use crate::fleet::{self, Actor, App, CreateStep, TenantView};
use crate::tenant::{BotToken, DmPolicy, Secret, TenantId, TenantSpec};

#[derive(Subcommand)]
pub(crate) enum TenantCommand {
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
    /// Put a running tenant to sleep now: usage read, container stopped; it
    /// wakes on its client's next message, before a scheduled job, or with `wake`.
    Sleep {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Wake a sleeping tenant's cell (and wait for its gateway); with a text,
    /// instead wake the running agent through its webhook (hooks must be on).
    Wake {
        id: String,
        /// The system event text the agent gets (through /hooks/wake).
        text: Option<String>,
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
    /// Move a tenant's cell to another node of the swarm (cell.engine swarm):
    /// its state is copied there and the cell made again; its bot is down for
    /// the copy and the cell's boot.
    Move {
        id: String,
        /// The node's hostname or id (`mtp node list`).
        #[arg(long)]
        node: String,
        #[arg(long)]
        json: bool,
    },
    /// Change a cell's memory and CPU limits in place (docker update: same
    /// container, no restart); kept by upgrades and restores.
    Resize {
        id: String,
        /// New memory limit, e.g. 3g or 1536m.
        #[arg(long)]
        memory: Option<String>,
        /// New CPU limit, e.g. 1.5.
        #[arg(long)]
        cpus: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// A cell's bundled skills: show them, or turn some on and off (through its config).
    Skills {
        id: String,
        /// Skills to turn on: weather,summarize.
        #[arg(long, value_delimiter = ',')]
        enable: Vec<String>,
        /// Skills to turn off.
        #[arg(long, value_delimiter = ',')]
        disable: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// What happened to a tenant, newest first: actions, crashes, alerts.
    Events {
        id: String,
        /// Only this far back, e.g. 7d or 12h.
        #[arg(long)]
        since: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Pin a tenant to an image (fleet upgrades pass it by), or unpin it: `none`.
    Pin {
        id: String,
        /// A pinned image reference, or `none`.
        image: String,
    },
    /// Remove a tenant's container and network; data stays unless --purge.
    Rm {
        id: String,
        /// Also delete the tenant's data dirs.
        #[arg(long)]
        purge: bool,
        /// Offboarding: first a final backup, and the client's own files
        /// (workspace, memory, sessions; no secrets) as a .tar.gz at this path.
        #[arg(long)]
        export: Option<PathBuf>,
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
pub(crate) struct JsonFlag {
    /// Machine-readable output (documented in the README).
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Args)]
pub(crate) struct CreateArgs {
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

pub(crate) async fn run(
    config: AdminConfig,
    command: TenantCommand,
    env: &BTreeMap<String, String>,
) -> anyhow::Result<()> {
    let app = App::open(config).await?;
    let actor = Actor::cli();
    match command {
        TenantCommand::Create(args) => {
            let spec = create_spec(&app, &args, env)?;
            let view = create(&app, &actor, spec, args.json).await?;
            if args.json {
                render::print_json(&views::Tenant::new(&view))
            } else {
                render::print_line(&render::created(&view))
            }
        }
        TenantCommand::List(flag) => {
            let tenant_views = fleet::list(&app).await?;
            if flag.json {
                let rows: Vec<views::Tenant> =
                    tenant_views.iter().map(views::Tenant::new).collect();
                return render::print_json(&rows);
            }
            render::print_line(&render::tenant_list(&tenant_views))
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
                return render::print_json(&views::Shown::new(&view, gateway.as_ref()));
            }
            render::print_line(&render::show(&view, gateway.as_ref()))
        }
        TenantCommand::Pair { id } => {
            let id = parse_id(&id)?;
            fleet::pair(&app, &actor, &id).await?;
            render::print_line(&format!("paired the admin with {id}"))
        }
        TenantCommand::Start { id } => {
            let id = parse_id(&id)?;
            let started = fleet::start(&app, &actor, &id).await?;
            render::print_line(&render::started(&id, &started))
        }
        TenantCommand::Stop { id } => {
            let id = parse_id(&id)?;
            let stopped = fleet::stop(&app, &actor, &id).await?;
            render::print_line(&render::stopped(&id, &stopped))
        }
        TenantCommand::Restart { id } => {
            let id = parse_id(&id)?;
            fleet::restart(&app, &actor, &id).await?;
            render::print_line(&format!("restarted {id}; gateway healthy"))
        }
        TenantCommand::Hooks { id, state } => {
            let id = parse_id(&id)?;
            let on = state == "on";
            let changed = fleet::set_hooks(&app, &actor, &id, on).await?;
            render::print_line(&render::hooks(&id, on, changed))
        }
        TenantCommand::Sleep { id, json } => {
            let id = parse_id(&id)?;
            let slept = fleet::sleep::sleep(&app, &actor, &id, fleet::sleep::SleepCause::Operator)
                .await
                .map_err(sleep_error)?;
            if json {
                return render::print_json(&views::Slept::new(&slept));
            }
            render::print_line(&render::slept(&slept))
        }
        TenantCommand::Wake {
            id,
            text,
            next_heartbeat,
        } => {
            let id = parse_id(&id)?;
            if text.as_deref().is_some_and(|text| text.trim().is_empty()) {
                bail!(BadInput(
                    "the wake text is empty; say what the agent should look at".into()
                ));
            }
            let Some(text) = text else {
                let woken =
                    fleet::sleep::wake(&app, &actor, &id, fleet::sleep::WakeCause::Operator)
                        .await?;
                return render::print_line(&render::woken(&woken));
            };
            let wake = fleet::Wake {
                text,
                next_heartbeat,
                agent_id: None,
            };
            let accepted = fleet::wake(&app, &actor, &id, &wake).await?;
            render::print_line(&format!(
                "{id}: wake {} ({})",
                accepted.event_outcome, accepted.mode
            ))
        }
        TenantCommand::Upgrade { id, image } => {
            let id = parse_id(&id)?;
            let upgraded = upgrade(&app, &actor, &id, image.as_deref()).await?;
            render::print_line(&render::upgraded(&id, &upgraded))
        }
        TenantCommand::Move { id, node, json } => {
            let id = parse_id(&id)?;
            let moved = move_tenant(&app, &actor, &id, &node, json).await?;
            if json {
                return render::print_json(&views::Moved::new(&moved));
            }
            render::print_line(&render::moved(&moved))
        }
        TenantCommand::Resize {
            id,
            memory,
            cpus,
            json,
        } => {
            let id = parse_id(&id)?;
            let change = fleet::resize::Resize::parse(memory.as_deref(), cpus.as_deref())?;
            let resized = fleet::resize::resize(&app, &actor, &id, change).await?;
            if json {
                return render::print_json(&views::Resized::new(&id, &resized));
            }
            render::print_line(&render::resized(&id, &resized))
        }
        TenantCommand::Skills {
            id,
            enable,
            disable,
            json,
        } => {
            let id = parse_id(&id)?;
            if !(enable.is_empty() && disable.is_empty()) {
                let change =
                    fleet::skills::set_skills(&app, &actor, &id, &enable, &disable).await?;
                if let fleet::config_edit::Outcome::Failed(why) = &change.outcome {
                    bail!("the skills of {id} were not changed: {why}");
                }
            }
            let skills = fleet::skills::skills(&app, &id).await?;
            if json {
                return render::print_json(&skills.allowed);
            }
            render::print_line(&render::skills(&id, &skills))
        }
        TenantCommand::Events {
            id,
            since,
            limit,
            json,
        } => {
            let id = parse_id(&id)?;
            let since = match since {
                Some(text) => {
                    let back = humantime::parse_duration(&text).map_err(|_| {
                        BadInput(format!(
                            "--since {text:?} is not a duration; write it like 7d or 12h"
                        ))
                    })?;
                    Some(
                        chrono::Utc::now().timestamp()
                            - i64::try_from(back.as_secs()).unwrap_or(i64::MAX / 4),
                    )
                }
                None => None,
            };
            let events = fleet::history::events(&app, &id, since, limit)?;
            if json {
                return render::print_json(&views::TenantEvents::new(&events));
            }
            render::print_line(&render::tenant_events(&id, &events))
        }
        TenantCommand::Pin { id, image } => {
            let id = parse_id(&id)?;
            let pin = (image != "none").then_some(image.as_str());
            let runs = fleet::rollout::pin(&app, &actor, &id, pin)
                .map_err(|err| BadInput(format!("{err:#}")))?;
            render::print_line(&render::pinned(&id, pin, &runs))
        }
        TenantCommand::Rm {
            id,
            purge,
            export,
            yes,
        } => {
            let id = parse_id(&id)?;
            if let Some(export) = &export
                && export.exists()
            {
                bail!(BadInput(format!(
                    "{} exists; name a new file for the client's export",
                    export.display()
                )));
            }
            if !yes {
                confirm_removal(&id, purge)?;
            }
            if let Some(export) = export {
                let done = fleet::backup::offboard(&app, &actor, &id, Some(&export), purge).await?;
                return render::print_line(&render::offboarded(&id, &done, &app.tenant_dir(&id)));
            }
            let removed = fleet::remove(&app, &actor, &id, purge).await?;
            render::print_line(&render::removed(&id, &removed, &app.tenant_dir(&id)))
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
                return render::print_json(&views::Reconciled::new(&report));
            }
            render::print_line(&render::reconcile(&report))
        }
    }
}

async fn create(
    app: &App,
    actor: &Actor,
    spec: TenantSpec,
    quiet: bool,
) -> anyhow::Result<TenantView> {
    let progress = Progress::new(CreateStep::ALL.len(), quiet);
    let id = spec.id.clone();
    let mut report = |step: CreateStep| {
        let done = CreateStep::ALL.iter().position(|s| *s == step).unwrap_or(0);
        progress.show(done, format!("{id}: {}", render::create_step(step)));
    };
    Ok(fleet::create(app, actor, spec, &mut report).await?)
}

async fn upgrade(
    app: &App,
    actor: &Actor,
    id: &TenantId,
    image: Option<&str>,
) -> anyhow::Result<fleet::Upgraded> {
    /// The steps an upgrade reports (`fleet::UpgradeStep`'s variants).
    const STEPS: usize = 8;
    let progress = Progress::new(STEPS, false);
    let mut done = 0;
    let mut report = |step: fleet::UpgradeStep| {
        done += 1;
        progress.show(done, format!("{id}: {}", render::upgrade_step(step)));
    };
    match fleet::upgrade(app, actor, id, image, &mut report).await {
        Ok(upgraded) => Ok(upgraded),
        Err(fleet::UpgradeError::Refused(reason)) => Err(BadInput(reason).into()),
        Err(fleet::UpgradeError::UnknownTenant(unknown)) => Err(BadInput(format!(
            "{unknown}; {}",
            render::unknown_tenant_hint(&unknown)
        ))
        .into()),
        Err(err) => Err(err.into()),
    }
}

async fn move_tenant(
    app: &App,
    actor: &Actor,
    id: &TenantId,
    node: &str,
    quiet: bool,
) -> anyhow::Result<fleet::moves::Moved> {
    let progress = Progress::new(fleet::moves::MoveStep::ALL.len(), quiet);
    let mut done = 0;
    let mut report = |step: fleet::moves::MoveStep| {
        done += 1;
        progress.show(done, format!("{id}: {}", render::move_step(step)));
    };
    fleet::moves::move_tenant(app, actor, id, node, &mut report).await
}

/// Asks the operator to type the tenant id before a removal; without a
/// terminal to ask on, refuses (`--yes` skips the question).
fn confirm_removal(id: &TenantId, purge: bool) -> anyhow::Result<()> {
    let prompt = render::removal_prompt(id, purge);
    match terminal::confirm(&prompt, id.as_str())? {
        terminal::Confirmed::Yes => Ok(()),
        terminal::Confirmed::NoTerminal => bail!(BadInput(format!(
            "refusing to remove {id} without confirmation; pass --yes"
        ))),
        terminal::Confirmed::No => bail!(BadInput("not confirmed; nothing was removed".into())),
    }
}

fn create_spec(
    app: &App,
    args: &CreateArgs,
    env: &BTreeMap<String, String>,
) -> anyhow::Result<TenantSpec> {
    let id = parse_id(&args.id)?;
    let raw_token = read_secret(
        args.bot_token_file.as_deref(),
        env.get("MTP_TENANT_BOT_TOKEN"),
        "bot token",
    )?
    .ok_or_else(|| {
        BadInput(
            "no bot token: pass --bot-token-file FILE (or '-' for stdin) or set MTP_TENANT_BOT_TOKEN"
                .into(),
        )
    })?;
    let bot_token = BotToken::parse(raw_token.expose()).map_err(|err| BadInput(err.to_string()))?;
    let provider_key = read_secret(
        args.provider_key_file.as_deref(),
        env.get("MTP_TENANT_PROVIDER_KEY"),
        "provider key",
    )?;
    let memory_bytes = match &args.memory {
        Some(text) => Some(
            crate::config::parse_memory(text)
                .map_err(|err| BadInput(format!("--memory {text:?}: {err:#}")))?,
        ),
        None => None,
    };
    let nano_cpus = match args.cpus {
        Some(cpus) => Some(
            crate::config::cpus_to_nano(cpus)
                .map_err(|err| BadInput(format!("--cpus: {err:#}")))?,
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
pub(crate) fn read_secret(
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

/// A refused sleep is the operator's input meeting the tenant's state: exit 2.
fn sleep_error(err: fleet::sleep::SleepError) -> anyhow::Error {
    use fleet::sleep::SleepError;
    match err {
        SleepError::Other(err) => err,
        SleepError::Locked(busy) => busy.into(),
        refused => BadInput(refused.to_string()).into(),
    }
}
