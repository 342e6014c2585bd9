//! Shared fixtures for integration tests: a work dir and config per test, the
//! `mtp` binary, Docker clean-up by tenant id. Every test uses its own tenant
//! ids, port range and data dir, so tests run in parallel without meeting.
//!
//! The images come from `scripts/test.sh` (which the README and CI run); a
//! missing image fails the test with the command that builds it.

#![allow(dead_code)]

pub mod fake_gateway;
pub mod serving;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use mtp::config::AdminConfig;
use mtp::fleet::App;
use mtp::store::Store;

/// The fake Bot API, under the name the test files have always used.
// Not every test binary talks to the Bot API.
#[allow(unused_imports)]
pub use mtp_fake_telegram as fake_telegram;

pub const OPENCLAW_IMAGE: &str = "mtp-test/openclaw:2026.9.6";
pub const HANG_IMAGE: &str = "mtp-test/hang:1";
pub const CRASH_IMAGE: &str = "mtp-test/crash:1";
pub const FAKE_IMAGE: &str = "mtp-test/fake-gateway:1";

/// A bot token of the right shape; BotFather never issued it.
pub const BOT_TOKEN: &str = "7000000001:AAFakeTokenForTestsOnly_abcdefghijk";

/// The admin's log lines (warnings and up, `mtp` at info) go to the test's
/// captured output: a failing test shows what the admin did. `MTP_LOG` as
/// for the binary.
pub fn capture_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MTP_LOG")
        .unwrap_or_else(|_| "warn,mtp=info".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .with_ansi(false)
        .try_init();
}

/// One test's world: its dir, config file and tenant id prefix.
pub struct TestEnv {
    pub dir: PathBuf,
    pub config_path: PathBuf,
    pub prefix: String,
}

impl TestEnv {
    /// `name` must be unique per test; `port_start` too (ranges of 20 ports).
    /// `health_timeout` like "180s".
    pub fn new(name: &str, port_start: u16, health_timeout: &str) -> TestEnv {
        TestEnv::with_ports(name, port_start, 20, health_timeout)
    }

    /// As `new`, with `ports` ports from `port_start` (for fleets of more
    /// than 20 tenants).
    pub fn with_ports(name: &str, port_start: u16, ports: u16, health_timeout: &str) -> TestEnv {
        capture_logs();
        for image in [OPENCLAW_IMAGE, HANG_IMAGE, CRASH_IMAGE] {
            let status = docker(&["image", "inspect", image]);
            assert!(
                status.status.success(),
                "image {image} is missing; run scripts/test.sh (or scripts/build-test-image.sh and scripts/build-failure-images.sh)"
            );
        }
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
        let prefix = short_prefix(name);
        cleanup_docker(&prefix);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).expect("clear old test dir");
        }
        std::fs::create_dir_all(&dir).expect("create test dir");
        let config_path = dir.join("mtp.json5");
        let config = format!(
            r#"{{
  dataDir: "{data}",
  cell: {{
    portStart: {port_start},
    portEnd: {port_end},
    memory: "1g",
    cpus: 1.5,
    healthTimeout: "{health_timeout}",
    // Cells reach nothing: the Bot API root is a closed port inside the cell.
    telegramApiRoot: "http://127.0.0.1:9",
    extraEnv: {{ OPENCLAW_OFFLINE: "1" }},
  }},
  // No daily backup run in the middle of a test; the tests that want one say so.
  backup: {{ schedule: "off" }},
}}"#,
            data = dir.join("data").display(),
            port_end = port_start + ports - 1,
        );
        std::fs::write(&config_path, config).expect("write config");
        std::fs::write(dir.join("bot-token"), BOT_TOKEN).expect("write token");
        TestEnv {
            dir,
            config_path,
            prefix,
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    pub fn token_file(&self) -> PathBuf {
        self.dir.join("bot-token")
    }

    /// A tenant id unique to this test.
    pub fn tenant(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.prefix)
    }

    /// Adds a `telegram` section (a JSON5 object such as `{ operators: [42] }`)
    /// to this test's config file.
    pub fn set_telegram(&self, telegram: &str) {
        let config = std::fs::read_to_string(&self.config_path).expect("read config");
        // `new` writes one top-level object; the section goes before its last brace.
        let end = config.rfind('}').expect("the config is an object");
        let config = format!("{}  telegram: {telegram},\n}}\n", &config[..end]);
        std::fs::write(&self.config_path, config).expect("write config");
    }

    pub fn config(&self) -> AdminConfig {
        AdminConfig::load(Some(&self.config_path), None, &Default::default())
            .expect("test config loads")
    }

    pub async fn app(&self) -> App {
        App::open(self.config()).await.expect("app opens")
    }

    /// This test's store, to seed or inspect beside an `App` (the store opens
    /// its file per call, so both handles work at once). Open the app first:
    /// it makes the data dir.
    pub fn store(&self) -> Store {
        Store::open(&self.config().store_path()).expect("store opens")
    }

    /// Runs `mtp --config <this test's config> args…`.
    pub fn mtp(&self, args: &[&str]) -> Output {
        self.mtp_command(args).output().expect("run mtp")
    }

    /// Runs `mtp tenant create <id> --bot-token-file <this test's token> extra…`.
    pub fn create(&self, id: &str, extra: &[&str]) -> Output {
        self.create_command(id, extra).output().expect("run mtp")
    }

    /// `mtp tenant create <id> --bot-token-file <this test's token> extra…`, to
    /// spawn or to run with more settings.
    pub fn create_command(&self, id: &str, extra: &[&str]) -> Command {
        let mut command = self.mtp_command(&["tenant", "create", id, "--bot-token-file"]);
        command.arg(self.token_file()).args(extra);
        command
    }

    /// `mtp --config <this test's config> serve` with no `MTP_*` variable of
    /// the outer environment, stdin closed, killed when dropped.
    pub fn serve_command(&self) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_mtp"));
        command
            .arg("--config")
            .arg(&self.config_path)
            .arg("serve")
            .current_dir(&self.dir);
        for (key, _) in std::env::vars().filter(|(key, _)| key.starts_with("MTP_")) {
            command.env_remove(key);
        }
        command.stdin(Stdio::null()).kill_on_drop(true);
        command
    }

    pub fn mtp_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_mtp"));
        command
            .arg("--config")
            .arg(&self.config_path)
            .args(args)
            .current_dir(&self.dir);
        command.env_remove("MTP_DATA_DIR");
        command
    }

    /// Names of Docker containers and networks of this test's tenants.
    pub fn docker_leftovers(&self) -> Vec<String> {
        docker_names(&self.prefix)
    }
}

/// The store of `app`'s data dir, to seed or inspect beside it (the store
/// opens its file per call, so both handles work at once).
pub fn store_of(app: &App) -> Store {
    Store::open(&app.config().store_path()).expect("store opens")
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        cleanup_docker(&self.prefix);
    }
}

/// Tenant-id prefix for a test: short, valid, unique enough.
fn short_prefix(name: &str) -> String {
    let digest = name.bytes().fold(0u32, |acc, b| {
        acc.wrapping_mul(31).wrapping_add(u32::from(b))
    });
    format!("t{:06x}", digest & 0xff_ffff)
}

fn docker_names(prefix: &str) -> Vec<String> {
    let filter = format!("name=mtp-cell-{prefix}-");
    let mut res = Vec::new();
    for args in [
        vec!["ps", "-a", "--filter", &filter, "--format", "{{.Names}}"],
        vec![
            "network",
            "ls",
            "--filter",
            &filter,
            "--format",
            "{{.Name}}",
        ],
    ] {
        let out = docker(&args);
        res.extend(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::to_string),
        );
    }
    res
}

fn cleanup_docker(prefix: &str) {
    for name in docker_names(prefix) {
        let _ = docker(&["rm", "-f", &name]);
        let _ = docker(&["network", "rm", &name]);
    }
}

/// Runs `docker args…`.
pub fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .output()
        .expect("docker CLI")
}

/// Runs `docker args…` and asserts it succeeded, printing its stderr when not.
#[track_caller]
pub fn docker_ok(args: &[&str]) {
    let output = docker(args);
    assert!(
        output.status.success(),
        "docker {args:?}: {}",
        stderr(&output)
    );
}

/// The `OPENCLAW_GATEWAY_TOKEN` a tenant's container gets: the file of that
/// name in the dir bound at `/run/secrets` (none is in its environment).
pub fn gateway_token(id: &str) -> String {
    let inspect = docker(&[
        "inspect",
        "--format",
        r#"{{range .Mounts}}{{if eq .Destination "/run/secrets"}}{{.Source}}{{end}}{{end}}"#,
        &format!("mtp-cell-{id}"),
    ]);
    let dir = String::from_utf8_lossy(&inspect.stdout).trim().to_string();
    assert!(!dir.is_empty(), "no /run/secrets mount in mtp-cell-{id}");
    std::fs::read_to_string(Path::new(&dir).join("OPENCLAW_GATEWAY_TOKEN"))
        .expect("the cell's gateway token file")
}

/// Docker's `State.Running` of a tenant's container; `None` when there is none.
pub fn cell_running(id: &str) -> Option<bool> {
    let output = docker(&[
        "inspect",
        "--format",
        "{{.State.Running}}",
        &format!("mtp-cell-{id}"),
    ]);
    if !output.status.success() {
        return None;
    }
    Some(String::from_utf8_lossy(&output.stdout).trim() == "true")
}

/// The `mtp.generation` label of a tenant's container ("" when there is none).
pub fn cell_generation(id: &str) -> String {
    let out = docker(&[
        "container",
        "inspect",
        "--format",
        "{{index .Config.Labels \"mtp.generation\"}}",
        &format!("mtp-cell-{id}"),
    ]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts success, printing both streams in full when not.
#[track_caller]
pub fn assert_ok(output: &Output) {
    assert!(
        output.status.success(),
        "mtp failed ({:?})\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        stdout(output),
        stderr(output)
    );
}

/// Asserts the exit code and that stderr holds `wanted`, printing stderr in
/// full when not.
#[track_caller]
pub fn assert_fails_with(output: &Output, code: i32, wanted: &str) {
    assert_eq!(output.status.code(), Some(code), "{}", stderr(output));
    assert!(
        stderr(output).contains(wanted),
        "{wanted:?} not in stderr:\n{}",
        stderr(output)
    );
}

/// Parses the command's stdout as JSON.
#[track_caller]
pub fn json(output: &Output) -> serde_json::Value {
    assert_ok(output);
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|err| panic!("stdout is not JSON ({err}):\n{}", stdout(output)))
}
