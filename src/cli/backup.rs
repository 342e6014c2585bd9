//! `mtp backup …`: encrypted backups of tenants and of the admin's own store,
//! restores, restore drills and retention (README, "Backups").

use std::path::PathBuf;

use anyhow::bail;
use clap::{Args, Subcommand};

use crate::cli::terminal::Progress;
use crate::cli::{BadInput, parse_id, render, views};
use crate::config::AdminConfig;
use crate::fleet::backup::{self, RestoreRequest, RestoreStep};
use crate::fleet::{self, Actor, App, CreateStep};
use crate::tenant::BotToken;

#[derive(Subcommand)]
pub(crate) enum BackupCommand {
    /// Back up a tenant (or every tenant) while its cell keeps running.
    Create {
        /// The tenant to back up.
        id: Option<String>,
        /// Every tenant, one after the other.
        #[arg(long, conflicts_with = "id")]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// List the archives of one tenant or of all, newest first.
    List {
        id: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Restore a tenant from an archive (a path or a backup id): running, healthy and paired.
    Restore(RestoreArgs),
    /// Restore drill: restore into a scratch cell cut off from Telegram, check it, remove it.
    Verify {
        /// An archive path or a backup id.
        backup: String,
        /// An age identity file, when archives are encrypted to backup.recipients.
        #[arg(long)]
        identity: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Apply retention (backup.keep) now.
    Prune {
        /// Only say what would be deleted.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
    /// Back up the admin's own store and device key.
    Admin {
        #[arg(long)]
        json: bool,
    },
    /// Put an admin archive back into an empty data dir.
    RestoreAdmin {
        archive: PathBuf,
        /// An age identity file (the old host's backup.key, or your own).
        #[arg(long)]
        identity: Option<PathBuf>,
    },
}

#[derive(Args)]
pub(crate) struct RestoreArgs {
    /// An archive path or a backup id (see `mtp backup list`).
    backup: String,
    /// Restore as another tenant id; needs --bot-token-file with that tenant's own bot.
    #[arg(long = "as")]
    as_id: Option<String>,
    /// File holding the bot token to run with ('-' for stdin).
    #[arg(long)]
    bot_token_file: Option<PathBuf>,
    /// Restore over an existing tenant: its current state is backed up first.
    #[arg(long)]
    replace: bool,
    /// An age identity file, when archives are encrypted to backup.recipients.
    #[arg(long)]
    identity: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(config: AdminConfig, command: BackupCommand) -> anyhow::Result<()> {
    let actor = Actor::cli();
    match command {
        BackupCommand::RestoreAdmin { archive, identity } => {
            // No app: there is no store to open yet.
            let restored = backup::restore_admin(&config, &archive, identity.as_deref())?;
            render::print_line(&render::admin_restored(&restored, &config.data_dir))
        }
        BackupCommand::Create { id, all, json } => {
            let app = App::open(config).await?;
            if all {
                let bar = Progress::new(1, json);
                let mut step = |tenant: &crate::tenant::TenantId, step| {
                    bar.show(0, format!("{tenant}: {}", render::backup_step(step)));
                };
                let results = backup::backup_all(&app, &actor, &mut step).await?;
                drop(bar);
                let failures = results.iter().filter(|(_, r)| r.is_err()).count();
                if json {
                    let taken: Vec<views::Backup> = results
                        .iter()
                        .filter_map(|(_, r)| r.as_ref().ok().map(views::Backup::taken))
                        .collect();
                    render::print_json(&taken)?;
                }
                for (tenant, result) in &results {
                    match result {
                        Ok(done) if !json => render::print_line(&render::backed_up(done))?,
                        Ok(_) => {}
                        Err(err) => eprintln!("{}", render::backup_failed(tenant, err)),
                    }
                }
                if failures > 0 {
                    bail!("{failures} of {} backups failed", results.len());
                }
                return Ok(());
            }
            let Some(id) = id else {
                bail!(BadInput(
                    "name a tenant to back up, or pass --all".to_string()
                ));
            };
            let id = parse_id(&id)?;
            let bar = Progress::new(5, json);
            let mut n = 0;
            let mut step = |step| {
                n += 1;
                bar.show(n, render::backup_step(step).to_string());
            };
            let done = backup::backup(&app, &actor, &id, &mut step).await?;
            drop(bar);
            if json {
                render::print_json(&views::Backup::taken(&done))
            } else {
                render::print_line(&render::backed_up(&done))
            }
        }
        BackupCommand::List { id, json } => {
            let app = App::open(config).await?;
            let id = id.as_deref().map(parse_id).transpose()?;
            let backups = backup::list(&app, id.as_ref())?;
            if json {
                let all: Vec<views::Backup> = backups.iter().map(views::Backup::new).collect();
                render::print_json(&all)
            } else {
                render::print_text(&render::backup_list(&backups, fleet::now()))
            }
        }
        BackupCommand::Restore(args) => {
            let app = App::open(config).await?;
            let as_id = args.as_id.as_deref().map(parse_id).transpose()?;
            let bot_token = match crate::cli::tenant::read_secret(
                args.bot_token_file.as_deref(),
                None,
                "bot token",
            )? {
                Some(raw) => {
                    Some(BotToken::parse(raw.expose()).map_err(|err| BadInput(err.to_string()))?)
                }
                None => None,
            };
            let request = RestoreRequest {
                source: args.backup.clone(),
                as_id,
                bot_token,
                replace: args.replace,
                identity: args.identity.clone(),
            };
            let bar = Progress::new(3 + CreateStep::ALL.len(), args.json);
            let mut n = 0;
            let mut step = |step: RestoreStep| {
                n += 1;
                bar.show(n, render::restore_step(step));
            };
            let view = backup::restore(&app, &actor, request, &mut step).await?;
            drop(bar);
            if args.json {
                render::print_json(&views::Tenant::new(&view))
            } else {
                render::print_line(&render::restored(&view, &args.backup))
            }
        }
        BackupCommand::Verify {
            backup: source,
            identity,
            json,
        } => {
            let app = App::open(config).await?;
            let bar = Progress::new(1 + CreateStep::ALL.len(), json);
            let mut n = 0;
            let mut step = |step: RestoreStep| {
                n += 1;
                bar.show(n, render::restore_step(step));
            };
            let verified =
                backup::verify(&app, &actor, &source, identity.as_deref(), &mut step).await?;
            drop(bar);
            if json {
                render::print_json(&views::Verified::new(&verified))
            } else {
                render::print_line(&render::verified(&verified))
            }
        }
        BackupCommand::Prune { dry_run, json } => {
            let app = App::open(config).await?;
            let pruned = backup::prune(&app, &actor, dry_run)?;
            if json {
                render::print_json(&views::Pruned::new(&pruned, dry_run))
            } else {
                render::print_line(&render::pruned(&pruned, dry_run))
            }
        }
        BackupCommand::Admin { json } => {
            let app = App::open(config).await?;
            let done = backup::backup_admin(&app, &actor).await?;
            if json {
                render::print_json(&views::Backup::new(&done))
            } else {
                render::print_line(&render::admin_backed_up(&done))
            }
        }
    }
}
