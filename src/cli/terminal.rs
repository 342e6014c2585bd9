//! What the CLI draws on and asks of the terminal: one progress bar for every
//! long action (create, upgrade), and one typed confirmation. Both stay out of
//! the way when nobody is watching: the bar is hidden when stderr is not a
//! terminal, and the question is never asked without one.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// How often the spinner turns while a step takes its time.
const TICK: Duration = Duration::from_millis(200);

/// A progress bar on stderr for one long action; cleared when dropped, so the
/// action's own output comes after it on a clean line.
pub(crate) struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A bar of `steps` steps; hidden when `quiet` (machine-readable output)
    /// or when stderr is not a terminal.
    pub(crate) fn new(steps: usize, quiet: bool) -> Progress {
        let bar = if quiet || !std::io::stderr().is_terminal() {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(steps as u64)
        };
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{bar:20}] {pos}/{len} {msg} ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.enable_steady_tick(TICK);
        Progress { bar }
    }

    /// Changes how many steps there are.
    pub(crate) fn set_length(&self, steps: usize) {
        self.bar.set_length(steps as u64);
    }

    /// Shows `done` steps done and what happens now.
    pub(crate) fn show(&self, done: usize, message: String) {
        self.bar.set_position(done as u64);
        self.bar.set_message(message);
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

/// The operator's answer to `confirm`.
pub(crate) enum Confirmed {
    /// They typed the expected word.
    Yes,
    /// They typed something else.
    No,
    /// Stdin is not a terminal: nobody could be asked.
    NoTerminal,
}

/// Asks on stderr for `expected` to be typed on stdin (a word, not y/n, so a
/// stray Enter never confirms).
///
/// # Errors
///
/// Stdin could not be read.
pub(crate) fn confirm(prompt: &str, expected: &str) -> std::io::Result<Confirmed> {
    if !std::io::stdin().is_terminal() {
        return Ok(Confirmed::NoTerminal);
    }
    eprint!("{prompt}");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(if answer.trim() == expected {
        Confirmed::Yes
    } else {
        Confirmed::No
    })
}
