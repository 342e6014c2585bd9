//! `mtp config …`: read a tenant's OpenClaw config, and change one key on
//! one, some or every tenant with a preview (the diff, and whether it applies
//! hot or restarts the gateway).

use anyhow::bail;
use clap::Subcommand;

use crate::cli::{BadInput, parse_id, render};
use crate::config::AdminConfig;
use crate::fleet::config_edit::{self, ConfigChange, Outcome};
use crate::fleet::{Actor, App};
use crate::tenant::TenantId;

#[derive(Subcommand)]
pub(crate) enum ConfigCommand {
    /// Print a tenant's effective config, or the value at a path (secrets redacted).
    Get {
        id: String,
        /// A dotted path, e.g. agents.defaults.heartbeat.every.
        path: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Set one key: `set <id> <path> <value>`, or `set --all|--tenants a,b <path> <value>`.
    /// The value is JSON5 ("2h", true, 3, { a: 1 }). Shows each tenant's diff and
    /// how it applies; a restart-requiring change is watched until it runs.
    Set {
        /// Every tenant.
        #[arg(long, conflicts_with = "tenants")]
        all: bool,
        /// These tenants: a,b,c.
        #[arg(long, value_delimiter = ',')]
        tenants: Vec<String>,
        /// `[<id>] <path> <value>`.
        #[arg(num_args = 2..=3, required = true)]
        args: Vec<String>,
        /// Show the diff per tenant; change nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
}

pub(crate) async fn run(config: AdminConfig, command: ConfigCommand) -> anyhow::Result<()> {
    let app = App::open(config).await?;
    match command {
        ConfigCommand::Get { id, path, json } => {
            let id = parse_id(&id)?;
            let read = config_edit::config_get(&app, &id, path.as_deref()).await?;
            if json {
                return render::print_json(&read.value);
            }
            render::print_line(&render::config_read(&id, &read))
        }
        ConfigCommand::Set {
            all,
            tenants,
            args,
            dry_run,
            json,
        } => {
            let (targets, path, value) = targets(&app, all, &tenants, &args)?;
            let value = config_edit::parse_value(&value)?;
            let changes = config_edit::config_set(
                &app,
                &Actor::cli(),
                &targets,
                &path,
                &value,
                dry_run,
                None,
            )
            .await?;
            if json {
                render::print_json(&crate::cli::views::ConfigChanges::new(&changes))?;
            } else {
                render::print_line(&render::config_changes(&changes, dry_run))?;
            }
            failed(&changes)
        }
    }
}

fn targets(
    app: &App,
    all: bool,
    tenants: &[String],
    args: &[String],
) -> anyhow::Result<(Vec<TenantId>, String, String)> {
    let many = all || !tenants.is_empty();
    match (many, args) {
        (false, [id, path, value]) => Ok((vec![parse_id(id)?], path.clone(), value.clone())),
        (true, [path, value]) => {
            let ids = if all {
                config_edit::every_tenant(app)?
            } else {
                tenants
                    .iter()
                    .map(|id| parse_id(id))
                    .collect::<anyhow::Result<_>>()?
            };
            Ok((ids, path.clone(), value.clone()))
        }
        (false, _) => bail!(BadInput(
            "give <id> <path> <value>, or --all / --tenants a,b with <path> <value>".into()
        )),
        (true, _) => bail!(BadInput(
            "with --all or --tenants, give only <path> <value>".into()
        )),
    }
}

/// Any tenant whose change failed makes the command fail (exit 1), after the report.
fn failed(changes: &[ConfigChange]) -> anyhow::Result<()> {
    let failed: Vec<String> = changes
        .iter()
        .filter(|change| matches!(change.outcome, Outcome::Failed(_)))
        .map(|change| change.tenant.to_string())
        .collect();
    if !failed.is_empty() {
        bail!("the change failed on {}", failed.join(", "));
    }
    Ok(())
}
