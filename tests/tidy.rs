//! Tidy checks over `src/`, run by `cargo test`: the module edges of
//! ARCHITECTURE.md and STYLE.md (who may use what), a `//!` doc at the top of
//! every file (of `src/`, `tests/` and each crate's `src/` and `tests/` under
//! `crates/`), and the test doubles in `crates/` kept independent of `mtp`. A
//! forbidden `use` fails here, not in review.

use std::path::{Path, PathBuf};

/// (path prefix under src/, forbidden texts, why). Paths use '/'.
const RULES: &[(&str, &[&str], &str)] = &[
    (
        "tenant.rs",
        &["crate::"],
        "tenant.rs is the shared vocabulary and uses no other module",
    ),
    (
        "archive/",
        &["crate::"],
        "archive/ is the backup file format: files and keys, nothing of tenants or Docker",
    ),
    (
        "backoff.rs",
        &["crate::"],
        "backoff.rs is a helper every layer may use, so it uses no other module",
    ),
    (
        "relay.rs",
        &["crate::"],
        "relay.rs carries bytes between sockets: nothing of tenants, Docker or the gateway",
    ),
    (
        "store/",
        &["crate::runtime"],
        "store/ knows nothing of Docker",
    ),
    (
        "store/",
        &["crate::gateway"],
        "store/ knows nothing of the gateway",
    ),
    ("store/", &["crate::fleet"], "store/ is below fleet/"),
    (
        "runtime/",
        &["crate::store"],
        "runtime/ gets a CellSpec, not the store",
    ),
    (
        "runtime/",
        &["crate::gateway"],
        "runtime/ knows nothing of the gateway",
    ),
    ("runtime/", &["crate::fleet"], "runtime/ is below fleet/"),
    (
        "runtime/",
        &["crate::config"],
        "runtime/ gets what it needs, not the config",
    ),
    (
        "gateway/",
        &["crate::store"],
        "gateway/ reports tokens; fleet/ persists them",
    ),
    (
        "gateway/",
        &["crate::runtime"],
        "gateway/ knows nothing of Docker",
    ),
    ("gateway/", &["crate::fleet"], "gateway/ is below fleet/"),
    (
        "fleet/",
        &["crate::bot"],
        "fleet/ never knows who draws its results",
    ),
    ("fleet/", &["crate::monitor"], "fleet/ is below the monitor"),
    ("fleet/", &["dptree"], "dispatching belongs to bot/"),
    (
        "fleet/",
        &[
            "pub use crate::store",
            "pub use crate::runtime",
            "pub use crate::gateway",
        ],
        "fleet/'s API uses its own types, converted at the boundary",
    ),
    (
        "fleet/",
        &["mtp tenant", "run mtp"],
        "fleet/ returns facts; the CLI names its commands",
    ),
    (
        "runtime/",
        &["MTP_"],
        "runtime/ reports what Docker says; the CLI names settings",
    ),
    (
        "runtime/",
        &["scripts/"],
        "runtime/ reports what Docker says; the CLI names scripts",
    ),
    (
        "fleet/",
        &["dialogues/"],
        "fleet/ writes no sentence for a human",
    ),
    (
        "monitor/",
        &["crate::store", "crate::runtime", "crate::gateway"],
        "monitor/ asks fleet/",
    ),
    (
        "monitor/",
        &["crate::bot"],
        "monitor/ emits values; bot/ sends them",
    ),
    (
        "monitor/",
        &["teloxide"],
        "monitor/ never sends Telegram messages",
    ),
    (
        "usage/",
        &["crate::store", "crate::runtime", "crate::gateway"],
        "usage/ asks fleet/",
    ),
    (
        "usage/",
        &["crate::bot"],
        "usage/ emits values; bot/ sends them",
    ),
    (
        "usage/",
        &["teloxide"],
        "usage/ never sends Telegram messages",
    ),
    (
        "bot/",
        &["crate::store"],
        "bot/ calls fleet/ (its dialogue storage goes through fleet::dialogues)",
    ),
    (
        "bot/",
        &["crate::runtime", "crate::gateway"],
        "bot/ calls fleet/",
    ),
    (
        "cli/",
        &["crate::store", "crate::runtime", "crate::gateway"],
        "cli/ calls fleet/",
    ),
    (
        "cli/",
        &["crate::bot"],
        "cli/ is an adapter beside bot/, not above it",
    ),
    (
        "bot/",
        &["crate::cli"],
        "bot/ is an adapter beside cli/, not above it",
    ),
    (
        "fleet/",
        &["crate::cli"],
        "fleet/ never knows who draws its results",
    ),
    (
        "fleet/",
        &["clap"],
        "parsing a command line belongs to cli/",
    ),
];

/// The parts of `App` only fleet/ reaches; adapters call fleet's functions
/// (and read the config through `app.config()`).
const APP_PARTS: [&str; 6] = ["store", "runtime", "pool", "http", "identity", "memory"];

/// Crates that belong to one place only: (crate path, allowed prefixes).
const CRATES: &[(&str, &[&str])] = &[
    ("bollard", &["runtime/"]),
    ("redb", &["store/"]),
    ("tungstenite", &["gateway/"]),
    ("dptree", &["bot/"]),
    // The command line and its drawing belong to the CLI adapter (and the fake
    // gateway's own small command line).
    ("clap", &["cli/", "main.rs"]),
    ("indicatif", &["cli/"]),
    // The stated exception: a restore clears the copied cell's dead leases.
    ("rusqlite", &["fleet/cell_db.rs"]),
    // The stated exception: fleet/telegram.rs proves a tenant token with getMe.
    ("teloxide", &["bot/", "fleet/telegram.rs"]),
];

#[test]
fn module_edges_hold() {
    let mut problems = Vec::new();
    for (rel, text) in sources(&src()) {
        for (line_no, line) in code_lines(&text) {
            for (prefix, forbidden_texts, why) in RULES {
                if !rel.starts_with(prefix) {
                    continue;
                }
                for forbidden in forbidden_texts.iter().filter(|text| line.contains(*text)) {
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
    assert_none("module edges broken", &problems);
}

/// `app.store`, `ctx.app.runtime`, `app\n    .pool` … outside fleet/: an
/// adapter reaching past fleet (the fields are private, too; this names the
/// rule where the compiler only says "private field").
#[test]
fn only_fleet_reaches_the_parts_of_app() {
    let mut problems = Vec::new();
    for (rel, text) in sources(&src()) {
        if rel.starts_with("fleet/") {
            continue;
        }
        let mut previous = "";
        for (line_no, line) in code_lines(&text) {
            for part in APP_PARTS {
                let field = |rest: &str| {
                    rest.strip_prefix(part).is_some_and(|after| {
                        !after.starts_with(|c: char| c == '(' || c == '_' || c.is_alphanumeric())
                    })
                };
                let on_this_line = line
                    .match_indices("app.")
                    .filter(|(at, _)| {
                        *at == 0
                            || !line[..*at].ends_with(|c: char| c == '_' || c.is_alphanumeric())
                    })
                    .any(|(at, _)| field(&line[at + "app.".len()..]));
                let after_a_break = previous.trim_end().ends_with("app")
                    && line.trim_start().strip_prefix('.').is_some_and(field);
                if on_this_line || after_a_break {
                    problems.push(format!(
                        "src/{rel}:{line_no}: reaches app.{part}: adapters call fleet/"
                    ));
                }
            }
            previous = line;
        }
    }
    assert_none("App's parts reached outside fleet/", &problems);
}

/// `main.rs` only starts the CLI adapter: the only module of the crate it
/// names is `mtp::cli`.
#[test]
fn main_only_starts_the_cli() {
    let text = std::fs::read_to_string(src().join("main.rs")).unwrap();
    let problems: Vec<String> = code_lines(&text)
        .into_iter()
        .filter(|(_, line)| {
            line.match_indices("mtp::")
                .any(|(at, _)| !line[at..].starts_with("mtp::cli::"))
        })
        .map(|(line_no, line)| format!("src/main.rs:{line_no}: {}", line.trim()))
        .collect();
    assert_none("main.rs reaches past cli/", &problems);
}

#[test]
fn every_file_opens_with_a_module_doc() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = rust_files(&src());
    files.extend(rust_files(&root.join("tests")));
    // The workspace's other crates, crates/*: their src/ and tests/.
    let crates: Vec<PathBuf> = std::fs::read_dir(root.join("crates"))
        .expect("crates/ holds the workspace's other crates")
        .flatten()
        .map(|entry| entry.path())
        .collect();
    for krate in &crates {
        files.extend(rust_files(&krate.join("src")));
        files.extend(rust_files(&krate.join("tests")));
    }
    assert!(
        files
            .iter()
            .any(|file| file.starts_with(root.join("crates"))),
        "no file of {crates:?} was checked"
    );
    let mut missing = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let first = text
            .lines()
            .find(|line| !line.trim().is_empty())
            .unwrap_or_default();
        if !first.starts_with("//!") {
            missing.push(file.display().to_string());
        }
    }
    assert_none("these files do not open with a //! doc", &missing);
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
    assert_none("a test double uses the crate it checks", &problems);
}

/// Fails listing `problems`, one a line under `what`, when there are any.
#[track_caller]
fn assert_none(what: &str, problems: &[String]) {
    assert!(problems.is_empty(), "{what}:\n{}", problems.join("\n"));
}

/// Every `.rs` file under `dir` (a folder of `src/`): its path relative to
/// `src/` and its text.
fn sources(dir: &Path) -> Vec<(String, String)> {
    rust_files(dir)
        .into_iter()
        .map(|file| (relative(&file), std::fs::read_to_string(&file).unwrap()))
        .collect()
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

/// What the adapters may use besides themselves: fleet/ (the use-cases), the
/// shared vocabulary and config, the retry helper, and the values monitor/ and
/// usage/ emit with the pure parts of usage/ (periods, CSV, the chart). An
/// allow-list: a new module is out of the adapters' reach until named here.
const ADAPTER_MAY_USE: &[&str] = &["fleet", "tenant", "config", "backoff", "monitor", "usage"];

#[test]
fn adapters_use_only_fleet_and_the_vocabulary() {
    let mut problems = Vec::new();
    for (adapter, also) in [("bot", &[][..]), ("cli", &["serve"][..])] {
        for file in rust_files(&src().join(adapter)) {
            let rel = relative(&file);
            let text = std::fs::read_to_string(&file).unwrap();
            for (line_no, path) in crate_paths(&text) {
                let allowed = path == adapter
                    || path.starts_with(&format!("{adapter}::"))
                    || ADAPTER_MAY_USE
                        .iter()
                        .chain(also)
                        .any(|ok| path == *ok || path.starts_with(&format!("{ok}::")));
                if !allowed {
                    problems.push(format!(
                        "src/{rel}:{line_no}: uses crate::{path}: {adapter}/ calls fleet/ (allowed: {ADAPTER_MAY_USE:?} {also:?})"
                    ));
                }
            }
        }
    }
    assert_none("adapters reach past fleet/", &problems);
}

#[test]
fn no_layer_re_exports_another() {
    let mut problems = Vec::new();
    for file in rust_files(&src()) {
        let rel = relative(&file);
        let own = rel.split('/').next().unwrap_or("").trim_end_matches(".rs");
        let text = std::fs::read_to_string(&file).unwrap();
        for (line_no, line) in code_lines(&text) {
            let Some(rest) = line.trim_start().strip_prefix("pub use crate::") else {
                continue;
            };
            let module: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if module != own {
                problems.push(format!(
                    "src/{rel}:{line_no}: `pub use crate::{module}…` re-exports another layer's type; give {own}/ its own type"
                ));
            }
        }
    }
    assert_none("a layer re-exports another's types", &problems);
}

#[test]
fn fallible_public_functions_say_their_errors() {
    let mut missing = Vec::new();
    for layer in ["fleet", "store", "runtime"] {
        for file in rust_files(&src().join(layer)) {
            let rel = relative(&file);
            let text = std::fs::read_to_string(&file).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            for (line_no, line) in code_lines(&text) {
                let trimmed = line.trim_start();
                if !(trimmed.starts_with("pub fn ") || trimmed.starts_with("pub async fn ")) {
                    continue;
                }
                // The signature runs to the first `{` or `;`.
                let signature: String = lines[line_no - 1..]
                    .iter()
                    .scan(false, |done, l| {
                        if *done {
                            return None;
                        }
                        *done = l.contains('{') || l.trim_end().ends_with(';');
                        Some(*l)
                    })
                    .collect::<Vec<_>>()
                    .join(" ");
                let returns = signature
                    .rsplit_once("->")
                    .map_or("", |(_, ret)| ret.trim_start());
                let fallible = returns
                    .split('<')
                    .next()
                    .is_some_and(|head| head.ends_with("Result"));
                if !fallible {
                    continue;
                }
                let documented = lines[..line_no - 1]
                    .iter()
                    .rev()
                    .take_while(|l| {
                        let l = l.trim_start();
                        l.starts_with("///") || l.starts_with("#[")
                    })
                    .any(|l| l.contains("# Errors"));
                if !documented {
                    missing.push(format!(
                        "src/{rel}:{line_no}: {}",
                        trimmed.trim_end_matches('{')
                    ));
                }
            }
        }
    }
    assert_none(
        "these fallible public functions have no `# Errors` section in their doc",
        &missing,
    );
}

/// Every `crate::` path a file's code names, to its second segment, with the
/// line it starts on; groups (`crate::{a, b::{c, d}}`) are expanded.
fn crate_paths(text: &str) -> Vec<(usize, String)> {
    let code: Vec<(usize, &str)> = code_lines(text);
    let mut joined = String::new();
    let mut line_of = Vec::new();
    for (line_no, line) in &code {
        for _ in 0..=line.len() {
            line_of.push(*line_no);
        }
        joined.push_str(line);
        joined.push('\n');
    }
    let mut res = Vec::new();
    let mut from = 0;
    while let Some(found) = joined[from..].find("crate::") {
        let start = from + found;
        let before = joined[..start].chars().next_back();
        from = start + "crate::".len();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        for path in expand(&joined[from..]) {
            res.push((line_of[start], path));
        }
    }
    res
}

/// The paths a `use` tail stands for (`a::b`, `{a, b::c}`), cut to two segments.
fn expand(tail: &str) -> Vec<String> {
    let tail = tail.trim_start();
    if let Some(group) = tail.strip_prefix('{') {
        let mut depth = 0;
        let mut items = Vec::new();
        let mut item = String::new();
        for c in group.chars() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => break,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    items.push(std::mem::take(&mut item));
                    continue;
                }
                _ => {}
            }
            item.push(c);
        }
        items.push(item);
        return items
            .iter()
            .filter(|item| !item.trim().is_empty())
            .flat_map(|item| expand(item))
            .collect();
    }
    let first: String = tail
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    let rest = &tail[first.len()..];
    match rest.strip_prefix("::") {
        Some(rest) if rest.trim_start().starts_with('{') => expand(rest)
            .into_iter()
            .map(|second| format!("{first}::{}", second.split("::").next().unwrap_or("")))
            .collect(),
        Some(rest) => {
            let second: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            vec![format!("{first}::{second}")]
        }
        None => vec![first],
    }
}

/// Statements whose string literals are not chat texts: log lines, errors
/// (the CLI prints those), audit reasons, and the command menu's descriptions,
/// which teloxide's derive takes as literals.
const NOT_CHAT_TEXT: &[&str] = &[
    "tracing::",
    ".context(",
    ".with_context(",
    "bail!(",
    "anyhow!(",
    "#[command(",
    "description =",
    "record_refusal",
    ".expect(",
];

/// Functions of bot/ that word errors for the CLI's stderr, not for a chat:
/// the admin bot's own token refused at start.
const BOT_ERROR_WORDING: &[&str] = &["fn get_me_failure("];

/// Every sentence the bot sends lives in dialogues/: a string literal of three
/// words or more in bot/'s code fails here unless it is one of the above or a
/// command's syntax (`/usage <id> …`).
#[test]
fn the_bot_words_nothing_outside_dialogues() {
    let mut problems = Vec::new();
    for file in rust_files(&src().join("bot")) {
        let rel = relative(&file);
        let text = std::fs::read_to_string(&file).unwrap();
        let mut code = String::new();
        let mut line_at = Vec::new();
        for (line_no, line) in code_lines(&text) {
            code.push_str(line);
            code.push('\n');
            line_at.resize(code.len(), line_no);
        }
        for (start, literal) in string_literals(&code) {
            let words = literal
                .split_whitespace()
                .map(|word| word.trim_matches(|c: char| !c.is_alphabetic()))
                .filter(|word| {
                    word.len() > 1 && word.chars().all(|c| c.is_alphabetic() || c == '\'')
                })
                .count();
            if words < 3 || literal.starts_with('/') {
                continue;
            }
            let before = &code[..start];
            let statement_start = [";", "}\n"]
                .iter()
                .filter_map(|end| before.rfind(end))
                .max()
                .unwrap_or(0);
            let statement = &before[statement_start..];
            let in_function = BOT_ERROR_WORDING.iter().any(|function| {
                before.rfind(function).is_some_and(|at| {
                    !before[at..].contains("\nfn ") && !before[at..].contains("\nasync fn ")
                })
            });
            if in_function || NOT_CHAT_TEXT.iter().any(|not| statement.contains(not)) {
                continue;
            }
            problems.push(format!(
                "src/{rel}:{}: \"{literal}\": put the words in dialogues/ and fill them through Texts",
                line_at[start]
            ));
        }
    }
    assert_none("operator-facing English outside dialogues/", &problems);
}

/// The string literals of some code, with the byte offset each starts at.
fn string_literals(code: &str) -> Vec<(usize, String)> {
    let mut res = Vec::new();
    let mut chars = code.char_indices().peekable();
    let mut previous = ' ';
    while let Some((at, c)) = chars.next() {
        // A char literal such as '"' is not the start of a string.
        if c == '"' && previous != '\'' {
            let mut literal = String::new();
            while let Some((_, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, escaped)) = chars.next() {
                            literal.push('\\');
                            literal.push(escaped);
                        }
                    }
                    '"' => break,
                    c => literal.push(c),
                }
            }
            res.push((at, literal));
            previous = '"';
        } else {
            previous = c;
        }
    }
    res
}
