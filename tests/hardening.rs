//! Issue 10's hardening, through the `mtp` binary and real Docker: every cell's
//! log is rotated; a real OpenClaw cell runs on a read-only root filesystem.

mod common;

use std::process::Command;

use common::{BOT_TOKEN, FAKE_IMAGE, TestEnv, assert_ok, json, stderr};

// See: issue 10 (log rotation for every cell).
/// A created cell's container logs through `json-file`, rotated at the
/// configured size and file count.
#[test]
fn a_cells_log_is_rotated_as_configured() {
    let env = TestEnv::new("hardening_log_rotation", 20800, "60s");
    set_cell_keys(&env, "logMaxSize: \"1m\",\n    logMaxFiles: 2,");
    let id = env.tenant("logs");
    let created = json(&env.mtp(&[
        "tenant",
        "create",
        &id,
        "--bot-token-file",
        env.token_file().to_str().unwrap(),
        "--image",
        FAKE_IMAGE,
        "--json",
    ]));
    assert_eq!(created["state"], "running", "{created}");
    let host = host_config(&id);
    assert_eq!(
        host["LogConfig"],
        serde_json::json!({
            "Type": "json-file",
            "Config": { "max-size": "1048576", "max-file": "2" },
        }),
        "{host}"
    );
}

// See: issue 10 (a read-only root filesystem for cells).
/// A real OpenClaw cell on a read-only root filesystem, with a tmpfs on /tmp
/// only: it gets healthy, is paired, answers RPC, and does all of that again
/// after a restart; a write to / fails inside it, a write to /tmp works. Its
/// log is rotated with the default limits.
#[test]
fn a_real_cell_runs_on_a_read_only_root() {
    let env = TestEnv::new("hardening_read_only_root", 20900, "180s");
    let id = env.tenant("ro");
    let created = json(&env.mtp(&[
        "tenant",
        "create",
        &id,
        "--bot-token-file",
        env.token_file().to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(
        (&created["state"], &created["health"], &created["paired"]),
        (
            &serde_json::json!("running"),
            &serde_json::json!("ok"),
            &serde_json::json!(true)
        ),
        "{created}"
    );
    let host = host_config(&id);
    assert_eq!(host["ReadonlyRootfs"], true, "{host}");
    assert_eq!(
        host["Tmpfs"],
        serde_json::json!({ "/tmp": "rw,noexec,nosuid,nodev,size=128m,mode=1777" }),
        "{host}"
    );
    assert_eq!(
        host["LogConfig"],
        serde_json::json!({
            "Type": "json-file",
            "Config": { "max-size": "10485760", "max-file": "3" },
        }),
        "{host}"
    );
    let cell = format!("mtp-cell-{id}");
    let write = |path: &str| {
        Command::new("docker")
            .args(["exec", &cell, "sh", "-c", &format!("echo x > {path}")])
            .output()
            .unwrap()
    };
    let root = write("/probe");
    assert!(!root.status.success(), "a write to / worked");
    assert!(
        stderr(&root).contains("Read-only file system"),
        "{}",
        stderr(&root)
    );
    assert_ok(&write("/tmp/probe"));

    let health = json(&env.mtp(&["rpc", &id, "health"]));
    assert_eq!(health["ok"], true, "{health}");
    assert_ok(&env.mtp(&["tenant", "restart", &id]));
    let shown = json(&env.mtp(&["tenant", "show", &id, "--json"]));
    assert_eq!(
        (shown["state"].as_str(), shown["health"].as_str()),
        (Some("running"), Some("ok")),
        "{shown}"
    );
    let status = json(&env.mtp(&["rpc", &id, "status"]));
    assert!(status.is_object(), "{status}");
    assert_eq!(host_config(&id)["ReadonlyRootfs"], true);

    let logs = env.mtp(&["tenant", "logs", &id]);
    assert_ok(&logs);
    assert!(
        !common::stdout(&logs).contains(BOT_TOKEN),
        "bot token in the logs"
    );
    assert_ok(&env.mtp(&["tenant", "rm", &id, "--purge", "--yes"]));
    assert_eq!(env.docker_leftovers(), Vec::<String>::new());
}

/// Adds `keys` (JSON5 members) to the `cell` section of the test's config.
fn set_cell_keys(env: &TestEnv, keys: &str) {
    let config = std::fs::read_to_string(&env.config_path).unwrap();
    let config = config.replacen("cell: {", &format!("cell: {{\n    {keys}"), 1);
    std::fs::write(&env.config_path, config).unwrap();
}

/// `docker inspect`'s `HostConfig` of the tenant's cell.
fn host_config(id: &str) -> serde_json::Value {
    let inspect = Command::new("docker")
        .args(["inspect", &format!("mtp-cell-{id}")])
        .output()
        .unwrap();
    assert!(inspect.status.success(), "{}", stderr(&inspect));
    let inspect: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    inspect[0]["HostConfig"].clone()
}
