//! The kill -9 suite (issue 10): `mtp` is killed with SIGKILL at every step of
//! create, upgrade and rm (the test-only fault point `MTP_TEST_KILL_AT`, which
//! kills the process right there, as the OOM killer or a power cut would), then
//! `reconcile` runs, and the end state must be consistent: the tenant complete
//! or gone, nothing of it orphaned in Docker or on disk, no secret left without
//! a tenant, and the same id usable again. The fake gateway image stands in
//! for speed; `tests/reliability.rs` kills a real OpenClaw cell's upgrade.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Output};

use common::{FAKE_IMAGE, TestEnv, assert_ok, docker_ok, json, stderr, stdout};
use mtp::store::Store;
use mtp::tenant::TenantId;

/// Runs `command` (an `mtp` command) with the kill point set and checks it
/// died by SIGKILL there.
#[track_caller]
fn killed_at(point: &str, mut command: Command) {
    let output = command
        .env("MTP_TEST_KILL_AT", point)
        .output()
        .expect("run mtp");
    assert_eq!(
        output.status.signal(),
        Some(libc::SIGKILL),
        "{command:?} was to die at {point}\nstatus {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        stdout(&output),
        stderr(&output)
    );
}

fn create(env: &TestEnv, id: &str) -> Output {
    env.create(id, &["--image", FAKE_IMAGE, "--json"])
}

fn reconcile(env: &TestEnv) -> serde_json::Value {
    json(&env.mtp(&["tenant", "reconcile", "--json"]))
}

/// The tenant is gone without a trace: no record, no secret, no container,
/// no network, no data dir (when `dirs_gone`).
#[track_caller]
fn assert_gone(env: &TestEnv, id: &str, dirs_gone: bool, context: &str) {
    let list = json(&env.mtp(&["tenant", "list", "--json"]));
    assert!(
        !list
            .as_array()
            .unwrap()
            .iter()
            .any(|tenant| tenant["id"] == id),
        "{context}: the record of {id} is still there: {list}"
    );
    let store = Store::open(&env.data_dir().join("mtp.redb")).unwrap();
    let tenant: TenantId = id.parse().unwrap();
    assert!(
        store.secrets(&tenant).unwrap().is_empty(),
        "{context}: secrets of {id} left without a tenant"
    );
    drop(store);
    assert_eq!(
        env.docker_leftovers(),
        Vec::<String>::new(),
        "{context}: Docker objects left"
    );
    if dirs_gone {
        let dir = env.data_dir().join("tenants").join(id);
        assert!(!dir.exists(), "{context}: {} left on disk", dir.display());
    }
}

/// The tenant is whole: recorded running, its container running with the
/// recorded generation, its gateway healthy, no maintenance left.
#[track_caller]
fn assert_complete(env: &TestEnv, id: &str, context: &str) -> serde_json::Value {
    // A container reconcile just started needs a moment to answer /healthz.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let shown = loop {
        let shown = json(&env.mtp(&["tenant", "show", id, "--json"]));
        if shown["health"] == "ok" || std::time::Instant::now() > deadline {
            break shown;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    };
    assert_eq!(shown["state"], "running", "{context}: {shown}");
    assert_eq!(shown["health"], "ok", "{context}: {shown}");
    assert_eq!(shown["container"]["state"], "running", "{context}: {shown}");
    assert_eq!(
        shown["muted_until"],
        serde_json::Value::Null,
        "{context}: {shown}"
    );
    assert_eq!(
        common::cell_generation(id),
        shown["generation"].to_string(),
        "{context}: the container is not of the recorded generation"
    );
    shown
}

/// A create killed at any step is undone by reconcile, and the id is free again.
#[test]
fn a_create_killed_at_any_step_is_undone_by_reconcile() {
    let env = TestEnv::new("a_create_killed_at_any_step", 21300, "60s");
    let id = env.tenant("c");
    let create_command = || env.create_command(&id, &["--image", FAKE_IMAGE]);
    for point in [
        "create:record",
        "create:dirs",
        "create:config",
        "create:network",
        "create:container",
        "create:start",
        "create:health",
        "create:pair",
        "create:running",
    ] {
        killed_at(point, create_command());
        let report = reconcile(&env);
        let cleaned = report["cleaned"].as_array().unwrap();
        // Killed before the record was written, there is nothing to clean.
        if point != "create:record" {
            assert_eq!(cleaned.len(), 1, "{point}: {report}");
        }
        assert_gone(&env, &id, true, point);
    }

    // Killed after the record says running: the tenant is complete.
    killed_at("create:done", create_command());
    let report = reconcile(&env);
    assert_eq!(report["cleaned"], serde_json::json!([]), "{report}");
    assert_complete(&env, &id, "create:done");
    assert_ok(&env.mtp(&["tenant", "rm", &id, "--purge", "--yes"]));
    assert_gone(&env, &id, true, "rm after create:done");

    // The id is usable again after all that.
    let created = json(&create(&env, &id));
    assert_eq!(created["state"], "running", "{created}");
}

/// A create killed before its dirs step never deletes data it did not make:
/// leftover data of an earlier tenant with the same id survives the undo.
#[test]
fn an_undone_create_keeps_data_it_did_not_make() {
    let env = TestEnv::new("an_undone_create_keeps_data", 21320, "60s");
    let id = env.tenant("k");
    let leftover = env.data_dir().join("tenants").join(&id).join("state");
    std::fs::create_dir_all(&leftover).unwrap();
    std::fs::write(leftover.join("MEMORY.md"), "the client's memory").unwrap();
    // Killed after the record is written but before the dirs step looks.
    killed_at(
        "create:dirs",
        env.create_command(&id, &["--image", FAKE_IMAGE]),
    );
    let report = reconcile(&env);
    assert_eq!(report["cleaned"], serde_json::json!([id]), "{report}");
    assert_eq!(
        std::fs::read_to_string(leftover.join("MEMORY.md")).unwrap(),
        "the client's memory",
        "reconcile deleted data this create did not make"
    );
}

/// An upgrade killed at any step leaves a tenant that reconcile makes whole:
/// running, on the recorded generation, healthy, with no maintenance left.
#[test]
fn an_upgrade_killed_at_any_step_is_made_whole_by_reconcile() {
    let env = TestEnv::new("an_upgrade_killed_at_any_step", 21340, "60s");
    let id = env.tenant("u");
    assert_ok(&create(&env, &id));
    // Two names for the fake image, so every upgrade has somewhere to go.
    let images = [
        "mtp-test/fake-gateway:crash-a",
        "mtp-test/fake-gateway:crash-b",
    ];
    for image in images {
        docker_ok(&["tag", FAKE_IMAGE, image]);
    }
    for (n, point) in [
        "upgrade:maintenance",
        "upgrade:remove",
        "upgrade:make",
        "upgrade:start",
        "upgrade:health",
        "upgrade:finish",
    ]
    .into_iter()
    .enumerate()
    {
        let image = images[n % 2];
        killed_at(
            point,
            env.mtp_command(&["tenant", "upgrade", &id, "--image", image]),
        );
        let report = reconcile(&env);
        assert_eq!(
            report["missing"],
            serde_json::json!([]),
            "{point}: {report}"
        );
        assert_eq!(
            report["in_progress"],
            serde_json::json!([]),
            "{point}: {report}"
        );
        let shown = assert_complete(&env, &id, point);
        // After a dead upgrade the tenant still takes actions: restart works.
        assert_ok(&env.mtp(&["tenant", "restart", &id]));
        let _ = shown;
    }
    // And a real upgrade still goes through.
    assert_ok(&env.mtp(&["tenant", "upgrade", &id, "--image", FAKE_IMAGE]));
    assert_complete(&env, &id, "upgrade after the kills");
}

/// An rm killed at any step is finished by reconcile: nothing of the tenant
/// is left (its data too, for `--purge`), and the id is usable again.
#[test]
fn an_rm_killed_at_any_step_is_finished_by_reconcile() {
    let env = TestEnv::new("an_rm_killed_at_any_step", 21360, "60s");
    let id = env.tenant("r");
    for point in ["rm:container", "rm:network", "rm:dirs", "rm:record"] {
        assert_ok(&create(&env, &id));
        killed_at(
            point,
            env.mtp_command(&["tenant", "rm", &id, "--purge", "--yes"]),
        );
        let report = reconcile(&env);
        assert_eq!(
            report["removed"],
            serde_json::json!([id]),
            "{point}: {report}"
        );
        assert_gone(&env, &id, true, point);
    }
    // Without --purge the data stays, and so does the ledger, as with any rm.
    assert_ok(&create(&env, &id));
    killed_at(
        "rm:network",
        env.mtp_command(&["tenant", "rm", &id, "--yes"]),
    );
    reconcile(&env);
    assert_gone(&env, &id, false, "rm without purge");
    assert!(env.data_dir().join("tenants").join(&id).exists());
    assert_ok(&env.mtp(&["tenant", "rm", &id, "--purge", "--yes"]));
    let created = json(&create(&env, &id));
    assert_eq!(created["state"], "running", "{created}");
}

/// A backup killed at any step leaves no archive that looks whole and no
/// frozen cell once reconcile ran; a restore killed at any step leaves no
/// half tenant, and the next restore goes through.
#[test]
fn backups_and_restores_killed_at_any_step_leave_nothing_half_done() {
    let env = TestEnv::new("backups_and_restores_killed", 21380, "60s");
    let id = env.tenant("b");
    assert_ok(&create(&env, &id));
    let backups = env.data_dir().join("backups").join(&id);
    let archives = || -> Vec<String> {
        std::fs::read_dir(&backups)
            .map(|entries| {
                entries
                    .map(|e| e.unwrap().file_name().into_string().unwrap())
                    .collect()
            })
            .unwrap_or_default()
    };
    for point in ["backup:frozen", "backup:encrypt"] {
        killed_at(point, env.mtp_command(&["backup", "create", &id]));
        assert!(
            archives().iter().all(|name| !name.ends_with(".mtpbak")),
            "{point}: {:?}",
            archives()
        );
        let report = reconcile(&env);
        if point == "backup:frozen" {
            assert_eq!(
                report["thawed"],
                serde_json::json!([id]),
                "{point}: {report}"
            );
        }
        assert!(archives().is_empty(), "{point}: left {:?}", archives());
        assert_complete(&env, &id, point);
    }
    // Killed after the archive was named: it is whole, and restores.
    killed_at(
        "backup:written",
        env.mtp_command(&["backup", "create", &id]),
    );
    let whole = archives();
    assert_eq!(whole.len(), 1, "{whole:?}");
    assert_ok(&env.mtp(&["tenant", "rm", &id, "--purge", "--yes"]));
    let archive = backups.join(&whole[0]);
    let archive = archive.to_str().unwrap();

    for point in [
        "restore:staged",
        "create:dirs",
        "create:container",
        "create:health",
    ] {
        killed_at(point, env.mtp_command(&["backup", "restore", archive]));
        let report = reconcile(&env);
        assert_eq!(
            report["missing"],
            serde_json::json!([]),
            "{point}: {report}"
        );
        assert_gone(&env, &id, true, point);
        let tenants = env.data_dir().join("tenants");
        let left: Vec<_> = std::fs::read_dir(&tenants)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "{point}: staging left {left:?}");
    }
    let restored = json(&env.mtp(&["backup", "restore", archive, "--json"]));
    assert_eq!(restored["state"], "running", "{restored}");
    assert_complete(&env, &id, "restore after the kills");
}

/// A sleep or a wake killed at any step is finished by reconcile: the tenant
/// is either asleep with its container stopped, or awake with it running,
/// never recorded one way with the container the other.
#[test]
fn sleeps_and_wakes_killed_at_any_step_are_finished_by_reconcile() {
    let env = TestEnv::new("sleeps_and_wakes_killed", 21780, "60s");
    let id = env.tenant("z");
    assert_ok(&create(&env, &id));
    let consistent = |context: &str| {
        let shown = json(&env.mtp(&["tenant", "show", &id, "--json"]));
        let running = common::cell_running(&id);
        match shown["state"].as_str() {
            Some("sleeping") => assert_eq!(running, Some(false), "{context}: {shown}"),
            Some("running") => assert_eq!(running, Some(true), "{context}: {shown}"),
            other => panic!("{context}: state {other:?}: {shown}"),
        }
        shown["state"].as_str().unwrap_or_default().to_string()
    };
    for point in ["sleep:record", "sleep:stop"] {
        killed_at(point, env.mtp_command(&["tenant", "sleep", &id]));
        let report = reconcile(&env);
        assert_eq!(
            report["missing"],
            serde_json::json!([]),
            "{point}: {report}"
        );
        let state = consistent(point);
        let expected = if point == "sleep:record" {
            "running"
        } else {
            "sleeping"
        };
        assert_eq!(state, expected, "{point}");
        if state == "sleeping" {
            assert_ok(&env.mtp(&["tenant", "wake", &id]));
        }
    }
    assert_ok(&env.mtp(&["tenant", "sleep", &id]));
    killed_at("wake:start", env.mtp_command(&["tenant", "wake", &id]));
    let report = reconcile(&env);
    assert_eq!(report["repaired"], serde_json::json!([id]), "{report}");
    assert_eq!(consistent("wake:start"), "running");
    assert_complete(&env, &id, "wake:start");
    // And it still sleeps and wakes.
    assert_ok(&env.mtp(&["tenant", "sleep", &id]));
    assert_ok(&env.mtp(&["tenant", "wake", &id]));
    assert_complete(&env, &id, "after the kills");
}
