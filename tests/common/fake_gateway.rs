//! `mtp-fake-gateway` as a plain process on a free loopback port (no Docker), its
//! control API (`/__fake/…`, see the crate doc of `crates/fake-gateway`), and pairing
//! a device with it. For tests and benchmarks where Docker is not the point.
//!
//! The fake is a workspace crate of its own that `mtp` does not depend on, so cargo
//! sets no `CARGO_BIN_EXE_mtp-fake-gateway` here: [`binary`] finds it beside the `mtp`
//! binary, where a plain `cargo test` (or `cargo bench`) at the workspace root puts it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mtp::gateway::{Client, ConnectError, DeviceIdentity, Endpoint, Options};
use mtp::tenant::Secret;
use serde_json::{Value, json};

/// The gateway token every fake process is started with.
pub const FAKE_TOKEN: &str = "fake-gateway-test-token-0123456789abcdef";

/// The fake's binary, built by this workspace into the same target dir and profile
/// as `mtp`. Panics, naming the command that builds it, when it is missing or older
/// than the fake's sources (a `cargo test -p mtp` or `--test X` run builds only `mtp`).
pub fn binary() -> PathBuf {
    let mtp = Path::new(env!("CARGO_BIN_EXE_mtp"));
    let binary = mtp.with_file_name("mtp-fake-gateway");
    // The commands that build it with the features a root `cargo test` (or `cargo
    // bench`) unifies, so they reuse that run's artifacts.
    let build = match mtp.parent().and_then(Path::file_name) {
        Some(dir) if dir == "release" => {
            "build it with `cargo build --release --bin mtp-fake-gateway`"
        }
        _ => {
            "build it with `cargo test --no-run` at the workspace root (a plain `cargo test` there builds it too)"
        }
    };
    let built_at = std::fs::metadata(&binary)
        .and_then(|meta| meta.modified())
        .unwrap_or_else(|_| panic!("{} is missing: {build}", binary.display()));
    let sources = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/fake-gateway");
    if let Some(newer) = newer_file(&sources, built_at) {
        panic!(
            "{} is older than {}: {build}",
            binary.display(),
            newer.display()
        );
    }
    binary
}

/// A file under `dir` (its `Cargo.toml` and `src/`) modified after `than`.
fn newer_file(dir: &Path, than: std::time::SystemTime) -> Option<PathBuf> {
    let mut pending = vec![dir.join("Cargo.toml"), dir.join("src")];
    while let Some(path) = pending.pop() {
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            let entries = std::fs::read_dir(&path).into_iter().flatten().flatten();
            pending.extend(entries.map(|entry| entry.path()));
        } else if meta.modified().is_ok_and(|modified| modified > than) {
            return Some(path);
        }
    }
    None
}

/// A running `mtp-fake-gateway gateway --port 0 --allow-unconfigured`, state in
/// memory, killed on drop.
pub struct FakeGateway {
    child: Child,
    pub port: u16,
}

impl FakeGateway {
    /// Starts the fake with extra flags (e.g. `["--restart-ms", "500"]`) and waits for
    /// the port it prints.
    pub fn start(extra_args: &[&str]) -> FakeGateway {
        let mut child = Command::new(binary())
            .args(["gateway", "--port", "0", "--allow-unconfigured"])
            .args(extra_args)
            .env("OPENCLAW_GATEWAY_TOKEN", FAKE_TOKEN)
            .env_remove("OPENCLAW_STATE_DIR")
            .env_remove("OPENCLAW_CONFIG_PATH")
            .env_remove("OPENCLAW_GATEWAY_PORT")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mtp-fake-gateway");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        stdout
            .read_line(&mut line)
            .expect("read the fake's first line");
        // Keep draining, so a chatty fake never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        let port = line
            .split("127.0.0.1:")
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| panic!("no port in the fake's first line {line:?}"));
        FakeGateway { child, port }
    }

    /// The endpoint with the right gateway token and no device token.
    pub fn endpoint(&self) -> Endpoint {
        Endpoint {
            host: "127.0.0.1".to_string(),
            port: self.port,
            gateway_token: Secret::new(FAKE_TOKEN.to_string()),
            device_token: None,
        }
    }

    /// One control call; panics unless the fake answers 2xx.
    pub async fn control(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        control(self.port, FAKE_TOKEN, method, path, body).await
    }

    /// Pairs `identity` (connect → pairing required → approve → connect) and returns
    /// an endpoint that logs in with the issued device token.
    pub async fn pair(&self, identity: &DeviceIdentity) -> Endpoint {
        let endpoint = self.endpoint();
        let request_id = match Client::connect(&endpoint, identity, quick_options()).await {
            Err(ConnectError::PairingRequired { request_id, .. }) => request_id,
            other => panic!("a new device must need pairing, got {other:?}"),
        };
        self.control(
            reqwest::Method::POST,
            "approve",
            json!({"requestId": request_id}),
        )
        .await;
        let client = Client::connect(&endpoint, identity, quick_options())
            .await
            .expect("connect after approval");
        let device_token = client.hello().device_token.clone();
        client.close();
        Endpoint {
            device_token: Some(device_token.expect("a device token after pairing")),
            ..endpoint
        }
    }
}

impl Drop for FakeGateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A control call to any fake (a process or a fake cell) on `port`.
pub async fn control(
    port: u16,
    gateway_token: &str,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> Value {
    let response = reqwest::Client::new()
        .request(method, format!("http://127.0.0.1:{port}/__fake/{path}"))
        .bearer_auth(gateway_token)
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|err| panic!("control {path}: {err}"));
    let status = response.status();
    let reply: Value = response.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "control {path}: {status} {reply}");
    reply
}

/// Short timeouts and backoff for a fake on loopback.
pub fn quick_options() -> Options {
    Options {
        call_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(5),
        max_message_bytes: 1 << 20,
        min_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(500),
    }
}
