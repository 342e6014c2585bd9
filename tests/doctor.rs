//! `mtp doctor` through the binary, on real Docker and the real OpenClaw
//! image: a cell whose limits were changed by hand behind MTP's back and a
//! config file opened to everyone are found, with their fixes; `--fix`
//! repairs both, and the cell is then as MTP made it.
//! (The missing egress rule has its own binary, tests/doctor_egress.rs: it
//! must run with no cell up.)

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{TestEnv, docker, docker_ok, json, stdout};

/// The findings in a `doctor --json` answer about `subject`.
fn about(report: &serde_json::Value, key: &str, subject: &str) -> Vec<serde_json::Value> {
    report[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} array in {report}"))
        .iter()
        .filter(|finding| finding["subject"] == subject)
        .cloned()
        .collect()
}

/// The JSON `mtp doctor --json` printed, whatever its exit code.
fn report(output: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|err| panic!("{err}: not JSON:\n{}", stdout(output)))
}

fn host_config(id: &str) -> serde_json::Value {
    let output = docker(&["inspect", &format!("mtp-cell-{id}")]);
    let inspect: serde_json::Value = serde_json::from_slice(&output.stdout).expect("inspect JSON");
    inspect[0]["HostConfig"].clone()
}

/// A real cell's memory and pids limits raised with `docker update`, and its
/// openclaw.json chmod'ed to 0644: `mtp doctor` names both (exit code 1) with
/// the commands that fix them, in text and JSON; `mtp doctor --fix` puts the
/// recorded limits back in place (the cell keeps running) and the mode to
/// 0600; then doctor has nothing to say about the cell, and its exit code
/// says whether anything is left on the host.
#[test]
fn doctor_finds_and_fixes_a_cell_changed_behind_mtps_back() {
    let env = TestEnv::new("doctor_profile_drift", 21900, "180s");
    let id = env.tenant("drift");
    let created = json(&env.create(&id, &["--json"]));
    assert_eq!(created["state"], "running", "{created}");

    // Nothing to say about a fresh cell.
    let fresh = report(&env.mtp(&["doctor", "--json"]));
    assert_eq!(
        about(&fresh, "findings", &id),
        Vec::<serde_json::Value>::new(),
        "{fresh}"
    );

    let cell = format!("mtp-cell-{id}");
    docker_ok(&[
        "update",
        "--memory",
        "1536m",
        "--memory-swap",
        "1536m",
        "--pids-limit",
        "4096",
        &cell,
    ]);
    let config = env
        .data_dir()
        .join("tenants")
        .join(&id)
        .join("state")
        .join("openclaw.json");
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();

    let text = env.mtp(&["doctor"]);
    assert_eq!(text.status.code(), Some(1), "{}", stdout(&text));
    let shown = stdout(&text);
    for piece in [
        "limits changed outside MTP: memory 1536 MiB (expected 1024 MiB), pids limit 4096 (expected 512)",
        &format!(
            "fix: docker update --memory 1073741824 --memory-swap 1073741824 --cpus 1.5 --pids-limit 512 {cell}"
        ),
        &format!("{} has mode 0644, expected 0600", config.display()),
        &format!("fix: chmod 600 {}", config.display()),
        "mtp doctor --fix repairs",
    ] {
        assert!(shown.contains(piece), "{piece:?} not in:\n{shown}");
    }

    let found = env.mtp(&["doctor", "--json"]);
    assert_eq!(found.status.code(), Some(1));
    let found = report(&found);
    assert_eq!(found["clean"], false, "{found}");
    let checks: Vec<(String, String, bool)> = about(&found, "findings", &id)
        .iter()
        .map(|f| {
            (
                f["check"].as_str().unwrap_or_default().to_string(),
                f["severity"].as_str().unwrap_or_default().to_string(),
                f["fixable"].as_bool().unwrap_or_default(),
            )
        })
        .collect();
    // Raised limits let the cell starve its neighbours; a file others can read
    // exposes what it holds: both critical.
    assert_eq!(
        checks,
        vec![
            ("limits".to_string(), "critical".to_string(), true),
            ("files".to_string(), "critical".to_string(), true),
        ],
        "{found}"
    );

    let fixed = report(&env.mtp(&["doctor", "--fix", "--json"]));
    let fixed_checks: Vec<String> = about(&fixed, "fixed", &id)
        .iter()
        .map(|f| f["check"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(fixed_checks, ["limits", "files"], "{fixed}");
    assert_eq!(
        about(&fixed, "findings", &id),
        Vec::<serde_json::Value>::new(),
        "{fixed}"
    );
    let host = host_config(&id);
    assert_eq!(
        (
            &host["Memory"],
            &host["MemorySwap"],
            &host["PidsLimit"],
            &host["NanoCpus"]
        ),
        (
            &serde_json::json!(1_073_741_824u64),
            &serde_json::json!(1_073_741_824u64),
            &serde_json::json!(512),
            &serde_json::json!(1_500_000_000u64)
        ),
        "{host}"
    );
    let mode = std::fs::metadata(&config).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(
        common::cell_running(&id),
        Some(true),
        "the fix stopped the cell"
    );

    // After the repair: the exit code says whether anything (on the host) is left.
    let after = env.mtp(&["doctor", "--json"]);
    let after_report = report(&after);
    assert_eq!(
        about(&after_report, "findings", &id),
        Vec::<serde_json::Value>::new(),
        "{after_report}"
    );
    let left = after_report["findings"].as_array().map_or(0, Vec::len);
    assert_eq!(
        after.status.code(),
        Some(if left == 0 { 0 } else { 1 }),
        "{after_report}"
    );
    assert_eq!(after_report["clean"], left == 0, "{after_report}");
}
