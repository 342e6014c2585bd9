//! The `mtp` binary: parses the command line and hands it to the CLI adapter
//! (`mtp::cli`), which runs it; the result picks the exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = mtp::cli::Cli::parse();
    mtp::cli::exit_code(mtp::cli::run(cli))
}
