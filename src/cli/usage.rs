//! `mtp usage …`: usage, cost and budgets from the admin's ledger, the
//! collection of new readings, and the end of a budget suspension.

use anyhow::bail;
use clap::{Args, Subcommand};

use crate::cli::{BadInput, parse_id, render, views};
use crate::fleet::{self, Actor, App};
use crate::tenant::{BudgetAction, Usd};
use crate::usage::period::{PeriodError, PeriodSpec};

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct UsageArgs {
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

pub(crate) async fn run(app: &App, args: UsageArgs) -> anyhow::Result<()> {
    let actor = Actor::cli();
    let now = chrono::Utc::now();
    match args.command {
        Some(UsageCommand::Collect { id, json }) => {
            let report = match id {
                Some(id) => fleet::collect_tenant_usage(app, &parse_id(&id)?).await?,
                None => fleet::collect_usage(app).await?,
            };
            if json {
                return render::print_json(&views::Collected::new(&report));
            }
            return render::print_line(&render::collected(&report));
        }
        Some(UsageCommand::Budget {
            id,
            amount,
            on_budget,
        }) => {
            let id = parse_id(&id)?;
            let action = on_budget.as_deref().map(parse_budget_action).transpose()?;
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
            return render::print_line(&render::budget(&id, &status));
        }
        Some(UsageCommand::Resume { id }) => {
            let id = parse_id(&id)?;
            let resumed = fleet::resume(app, &actor, &id).await?;
            return render::print_line(&render::resumed(&id, &resumed));
        }
        None => {}
    }
    let spec: PeriodSpec = args
        .period
        .parse()
        .map_err(|err: PeriodError| BadInput(format!("--period: {err}")))?;
    let zone = app.config().usage.time_zone.name();
    if args.all {
        let period = spec.resolve(fleet::today(app, now));
        let summaries = fleet::tenant_summaries(app, period)?;
        let fleet_summary = fleet::rank(period, &summaries);
        return match args.format {
            UsageFormat::Json => {
                render::print_json(&views::FleetUsage::new(&spec, zone, &fleet_summary))
            }
            UsageFormat::Csv => render::print_text(&crate::usage::report::csv_all(&summaries)),
            UsageFormat::Table => {
                render::print_line(&render::fleet_usage(&spec, zone, &fleet_summary))
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
        UsageFormat::Csv => render::print_text(&crate::usage::report::csv(&summary)),
        UsageFormat::Json => {
            let status = fleet::budget_status(app, &id, now)?;
            render::print_json(&views::TenantUsage::new(&spec, zone, &summary, &status))
        }
        UsageFormat::Table => render::print_line(&render::tenant_usage(&spec, zone, &summary)),
    }
}

fn parse_budget_action(text: &str) -> anyhow::Result<BudgetAction> {
    BudgetAction::parse(text).ok_or_else(|| {
        BadInput(format!(
            "--on-budget {text:?}: use notify, stop-channel or stop-cell"
        ))
        .into()
    })
}
