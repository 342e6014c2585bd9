//! `mtp doctor [--fix] [--json]`: checks the host and every cell against what
//! MTP promises (`fleet::doctor`), prints the findings (text from `render`,
//! JSON from `views`), and with `--fix` the safe repairs it made. Findings left
//! make the exit code 1.

use clap::Args;

use crate::cli::{FindingsRemain, render, views};
use crate::fleet::{self, Actor, App};

#[derive(Args)]
pub(crate) struct DoctorArgs {
    /// Repair what is safe to repair with cells running: file modes and
    /// owners, the egress rule, cell limits (docker update); report the rest.
    #[arg(long)]
    fix: bool,
    /// Machine-readable output (documented in the README).
    #[arg(long)]
    json: bool,
}

/// Runs the checks (and repairs); `FindingsRemain` when anything is left.
///
/// # Errors
///
/// Docker or the store cannot be read; `FindingsRemain` after printing.
pub(crate) async fn run(app: &App, args: DoctorArgs) -> anyhow::Result<()> {
    let actor = Actor::cli();
    let checkup = fleet::doctor::doctor(app, args.fix.then_some(&actor)).await?;
    if args.json {
        render::print_json(&views::Checkup::new(&checkup))?;
    } else {
        render::print_text(&render::checkup(&checkup, args.fix))?;
    }
    if checkup.is_clean() {
        return Ok(());
    }
    Err(FindingsRemain(checkup.findings.len()).into())
}
