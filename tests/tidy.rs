//! Tidy checks over `src/`, run by `cargo test`: the module edges of
//! ARCHITECTURE.md and STYLE.md (who may use what), a `//!` doc at the top of
//! every file (also in the workspace's `crates/`), and the test doubles in
//! `crates/` kept independent of `mtp`. A forbidden `use` fails here, not in review.

use std::path::{Path, PathBuf};

/// (path prefix under src/, forbidden text, why). Paths use '/'.
const RULES: &[(&str, &str, &str)] = &[
    (
        "tenant.rs",
        "crate::",
        "tenant.rs is the shared vocabulary and uses no other module",
    ),
    (
        "backoff.rs",
        "crate::",
        "backoff.rs is a helper every layer may use, so it uses no other module",
    ),
    ("store/", "crate::runtime", "store/ knows nothing of Docker"),
    (
        "store/",
        "crate::gateway",
        "store/ knows nothing of the gateway",
    ),
    ("store/", "crate::fleet", "store/ is below fleet/"),
    (
        "runtime/",
        "crate::store",
        "runtime/ gets a CellSpec, not the store",
    ),
    (
        "runtime/",
        "crate::gateway",
        "runtime/ knows nothing of the gateway",
    ),
    ("runtime/", "crate::fleet", "runtime/ is below fleet/"),
    (
        "runtime/",
        "crate::config",
        "runtime/ gets what it needs, not the config",
    ),
    (
        "gateway/",
        "crate::store",
        "gateway/ reports tokens; fleet/ persists them",
    ),
    (
        "gateway/",
        "crate::runtime",
        "gateway/ knows nothing of Docker",
    ),
    ("gateway/", "crate::fleet", "gateway/ is below fleet/"),
    (
        "fleet/",
        "crate::bot",
        "fleet/ never knows who draws its results",
    ),
    ("fleet/", "crate::monitor", "fleet/ is below the monitor"),
    ("fleet/", "dptree", "dispatching belongs to bot/"),
    (
        "fleet/",
        "dialogues/",
        "fleet/ writes no sentence for a human",
    ),
    ("monitor/", "crate::store", "monitor/ asks fleet/"),
    ("monitor/", "crate::runtime", "monitor/ asks fleet/"),
    ("monitor/", "crate::gateway", "monitor/ asks fleet/"),
    (
        "monitor/",
        "crate::bot",
        "monitor/ emits values; bot/ sends them",
    ),
    (
        "monitor/",
        "teloxide",
        "monitor/ never sends Telegram messages",
    ),
    ("usage/", "crate::store", "usage/ asks fleet/"),
    ("usage/", "crate::runtime", "usage/ asks fleet/"),
    ("usage/", "crate::gateway", "usage/ asks fleet/"),
    (
        "usage/",
        "crate::bot",
        "usage/ emits values; bot/ sends them",
    ),
    ("usage/", "teloxide", "usage/ never sends Telegram messages"),
    (
        "bot/",
        "crate::store",
        "bot/ calls fleet/ (only storage.rs keeps dialogues in the store)",
    ),
    ("bot/", "crate::runtime", "bot/ calls fleet/"),
    ("bot/", "crate::gateway", "bot/ calls fleet/"),
    ("main.rs", "mtp::runtime", "the CLI calls fleet/"),
    ("main.rs", "mtp::gateway", "the CLI calls fleet/"),
    ("main.rs", "mtp::store", "the CLI calls fleet/"),
];

/// Crates that belong to one place only: (crate path, allowed prefixes).
const CRATES: &[(&str, &[&str])] = &[
    ("bollard", &["runtime/"]),
    ("redb", &["store/"]),
    ("tungstenite", &["gateway/"]),
    ("dptree", &["bot/"]),
    // The stated exception: fleet/telegram.rs proves a tenant token with getMe.
    ("teloxide", &["bot/", "fleet/telegram.rs"]),
];

#[test]
fn module_edges_hold() {
    let mut problems = Vec::new();
    for file in rust_files(&src()) {
        let rel = relative(&file);
        let text = std::fs::read_to_string(&file).unwrap();
        for (line_no, line) in code_lines(&text) {
            for (prefix, forbidden, why) in RULES {
                // The stated exception: bot/'s dialogue Storage adapter uses the store.
                let exception = rel == "bot/storage.rs" && *forbidden == "crate::store";
                if rel.starts_with(prefix) && line.contains(forbidden) && !exception {
                    problems.push(format!("src/{rel}:{line_no}: uses {forbidden}: {why}"));
                }
            }
            for (krate, allowed) in CRATES {
                let uses =
                    line.contains(&format!("{krate}::")) || line.contains(&format!("use {krate}"));
                if uses && !allowed.iter().any(|prefix| rel.starts_with(prefix)) {
                    problems.push(format!(
                        "src/{rel}:{line_no}: uses {krate} outside {allowed:?}"
                    ));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "module edges broken:\n{}",
        problems.join("\n")
    );
}

#[test]
fn every_file_opens_with_a_module_doc() {
    let mut missing = Vec::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for file in [src(), root.join("tests"), root.join("crates")]
        .iter()
        .flat_map(|dir| rust_files(dir))
    {
        let text = std::fs::read_to_string(&file).unwrap();
        let first = text
            .lines()
            .find(|line| !line.trim().is_empty())
            .unwrap_or_default();
        if !first.starts_with("//!") {
            missing.push(file.display().to_string());
        }
    }
    assert!(
        missing.is_empty(),
        "these files do not open with a //! doc:\n{}",
        missing.join("\n")
    );
}

/// The doubles in `crates/` check the real client, so they never share its code: no
/// `mtp` dependency in their manifests, no `mtp::` in their sources.
#[test]
fn test_doubles_stay_independent_of_mtp() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates");
    let mut problems = Vec::new();
    for entry in std::fs::read_dir(&crates).unwrap().flatten() {
        let manifest = entry.path().join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&manifest) else {
            continue;
        };
        let names_mtp = |line: &str| line.split(['=', '.']).next().map(str::trim) == Some("mtp");
        if text.lines().any(names_mtp) {
            problems.push(format!("{}: depends on mtp", manifest.display()));
        }
        for file in rust_files(&entry.path()) {
            let text = std::fs::read_to_string(&file).unwrap();
            for (line_no, line) in code_lines(&text) {
                if line.contains("mtp::") {
                    problems.push(format!("{}:{line_no}: uses mtp::", file.display()));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "a test double uses the crate it checks:\n{}",
        problems.join("\n")
    );
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn relative(file: &Path) -> String {
    file.strip_prefix(src())
        .unwrap_or(file)
        .to_string_lossy()
        .replace('\\', "/")
}

/// Lines outside comments and `#[cfg(test)]` modules, numbered from 1.
fn code_lines(text: &str) -> Vec<(usize, &str)> {
    let mut res = Vec::new();
    let mut in_tests = false;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]") {
            in_tests = true;
        }
        if in_tests || trimmed.starts_with("//") {
            continue;
        }
        res.push((i + 1, line));
    }
    res
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut res = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return res;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            res.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            res.push(path);
        }
    }
    res.sort();
    res
}
