//! `mtp audit`: the audit log, latest entries first, as a table or JSON.

use anyhow::bail;
use clap::Args;

use crate::cli::{BadInput, parse_id, render, views};
use crate::config::AdminConfig;
use crate::fleet::{self, App};

/// Most entries one call prints: enough for any reading, bounded for the store.
const MAX_LIMIT: usize = 100_000;

#[derive(Args)]
pub(crate) struct AuditArgs {
    /// Only this tenant's entries.
    #[arg(long)]
    tenant: Option<String>,
    /// How many of the latest entries.
    #[arg(long, default_value_t = 50)]
    limit: usize,
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(config: AdminConfig, args: AuditArgs) -> anyhow::Result<()> {
    let tenant = args.tenant.as_deref().map(parse_id).transpose()?;
    if !(1..=MAX_LIMIT).contains(&args.limit) {
        bail!(BadInput(format!(
            "--limit {}: give 1 to {MAX_LIMIT} entries",
            args.limit
        )));
    }
    let app = App::open(config).await?;
    let entries = fleet::audit_log(&app, tenant.as_ref(), args.limit)?;
    if args.json {
        let rows: Vec<views::AuditEntry> = entries.iter().map(views::AuditEntry::new).collect();
        return render::print_json(&rows);
    }
    render::print_text(&render::audit(&entries))
}
