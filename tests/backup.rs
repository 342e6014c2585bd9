//! Backups (issue 11) against a real Docker engine: a real OpenClaw cell is
//! backed up while it runs (same container, same start, no restart), purged,
//! and restored from the archive alone, running, paired and with the client's
//! file; damaged and cut-short archives are refused and change nothing; a
//! drill restores into a scratch cell and removes it; retention keeps exactly
//! what it says; the admin's own store comes back into an empty data dir;
//! offboarding leaves a final backup and a plain export without secrets.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{
    BOT_TOKEN, FAKE_IMAGE, TestEnv, assert_fails_with, assert_ok, docker, docker_ok, json, stderr,
};

fn inspect(id: &str, format: &str) -> String {
    let output = docker(&["inspect", "-f", format, &format!("mtp-cell-{id}")]);
    assert!(output.status.success(), "{}", stderr(&output));
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Every archive file (finished or not) under the env's backup dir.
fn files_under(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            found.push(path.display().to_string());
        }
    }
    found.sort();
    found
}

/// The names in a `.tar.gz` export, and all its files' contents run together.
fn export_of(path: &Path) -> (String, String) {
    let run = |flags: &str| {
        let output = std::process::Command::new("tar")
            .args([flags, path.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(output.status.success(), "tar {flags} {}", path.display());
        String::from_utf8_lossy(&output.stdout).to_string()
    };
    (run("-tzf"), run("-xzOf"))
}

#[test]
fn a_running_openclaw_cell_is_backed_up_and_restored_from_the_archive_alone() {
    let env = TestEnv::new("a_running_openclaw_cell_is_backed_up", 21600, "180s");
    let id = env.tenant("acme");
    let created = json(&env.create(&id, &["--json"]));
    assert_eq!(created["paired"], true, "{created}");

    // The client's assistant writes a file into its workspace, from inside the cell.
    docker_ok(&[
        "exec",
        &format!("mtp-cell-{id}"),
        "node",
        "-e",
        "const fs = require('fs'); fs.mkdirSync('/home/node/.openclaw/workspace', { recursive: true }); fs.writeFileSync('/home/node/.openclaw/workspace/client-note.md', 'remember the blue door')",
    ]);
    let started_at = inspect(&id, "{{.State.StartedAt}}");
    let restarts = inspect(&id, "{{.RestartCount}}");

    let taken = json(&env.mtp(&["backup", "create", &id, "--json"]));
    for key in ["id", "tenant", "path", "bytes", "created_at", "paused_ms"] {
        assert!(!taken[key].is_null(), "{key} missing: {taken}");
    }
    assert_eq!(taken["tenant"], id.as_str());
    let archive = taken["path"].as_str().unwrap().to_string();
    assert_eq!(mode(Path::new(&archive)), 0o600);
    assert!(taken["bytes"].as_u64().unwrap() > 1000, "{taken}");
    let text = std::fs::read(&archive).unwrap();
    assert!(
        !String::from_utf8_lossy(&text).contains("remember the blue door"),
        "the archive is encrypted"
    );
    // The cell was never restarted, and runs (not paused) after the backup.
    assert_eq!(inspect(&id, "{{.State.StartedAt}}"), started_at);
    assert_eq!(inspect(&id, "{{.RestartCount}}"), restarts);
    assert_eq!(inspect(&id, "{{.State.Status}}"), "running");
    assert_ok(&env.mtp(&["rpc", &id, "health"]));

    let listed = json(&env.mtp(&["backup", "list", &id, "--json"]));
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["id"], taken["id"]);
    assert_eq!(listed[0]["bytes"], taken["bytes"]);

    // Over an existing tenant a restore is refused; beside it, it needs another bot.
    assert_fails_with(&env.mtp(&["backup", "restore", &archive]), 2, "exists");
    assert_fails_with(
        &env.mtp(&["backup", "restore", &archive, "--as", &env.tenant("copy")]),
        2,
        "needs another bot token",
    );

    // The drill: a scratch cell comes up from the archive and goes again.
    let verified = json(&env.mtp(&["backup", "verify", taken["id"].as_str().unwrap(), "--json"]));
    assert_eq!(verified["ok"], true, "{verified}");
    assert!(verified["files"].as_u64().unwrap() > 3, "{verified}");
    let tenants = json(&env.mtp(&["tenant", "list", "--json"]));
    assert_eq!(tenants.as_array().unwrap().len(), 1, "{tenants}");
    let drills = docker(&["ps", "-a", "--filter", "name=mtp-cell-drill-", "-q"]);
    assert!(drills.stdout.is_empty(), "the drill's cell is gone");

    // The tenant goes entirely: record, container, data.
    assert_ok(&env.mtp(&["tenant", "rm", &id, "--purge", "--yes"]));
    let tenant_dir = env.data_dir().join("tenants").join(&id);
    assert!(!tenant_dir.exists());

    // A damaged and a cut-short copy are refused, and change nothing.
    let whole = std::fs::read(&archive).unwrap();
    let mut flipped = whole.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x01;
    let damaged = env.dir.join("damaged.mtpbak");
    std::fs::write(&damaged, &flipped).unwrap();
    let cut = env.dir.join("cut.mtpbak");
    std::fs::write(&cut, &whole[..whole.len() * 2 / 3]).unwrap();
    for bad in [&damaged, &cut] {
        let output = env.mtp(&["backup", "restore", bad.to_str().unwrap()]);
        assert_fails_with(&output, 2, "cannot be decrypted");
        assert!(!tenant_dir.exists(), "{}", bad.display());
        let tenants = json(&env.mtp(&["tenant", "list", "--json"]));
        assert_eq!(tenants, serde_json::json!([]));
        assert!(
            std::fs::read_dir(env.data_dir().join("tenants"))
                .unwrap()
                .next()
                .is_none(),
            "no staging dir is left"
        );
    }

    // From the archive alone: running, healthy, paired, with the client's file.
    let restored = json(&env.mtp(&["backup", "restore", &archive, "--json"]));
    assert_eq!(restored["state"], "running", "{restored}");
    assert_eq!(restored["health"], "ok", "{restored}");
    assert_eq!(restored["paired"], true, "{restored}");
    assert_eq!(
        std::fs::read_to_string(tenant_dir.join("state/workspace/client-note.md")).unwrap(),
        "remember the blue door"
    );
    let health = json(&env.mtp(&["rpc", &id, "health"]));
    assert_eq!(health["ok"], true, "{health}");

    // Restoring over it on purpose backs the current state up first.
    let replaced = json(&env.mtp(&["backup", "restore", &archive, "--replace", "--json"]));
    assert_eq!(replaced["state"], "running", "{replaced}");
    let listed = json(&env.mtp(&["backup", "list", &id, "--json"]));
    assert_eq!(
        listed.as_array().unwrap().len(),
        2,
        "a safety backup: {listed}"
    );

    // Offboarding: the client's sessions come out as files, told by the
    // gateway (its SQLite stores, which hold credentials too, stay out).
    let sent = json(&env.mtp(&[
        "rpc",
        &id,
        "chat.send",
        r#"{"sessionKey":"main","message":"my locker code is 4711","idempotencyKey":"offboard-1"}"#,
    ]));
    assert_eq!(sent["status"], "started", "{sent}");
    // The run records the message in the session's transcript on its own time.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let history = json(&env.mtp(&[
            "rpc",
            &id,
            "chat.history",
            r#"{"sessionKey":"main","limit":100}"#,
        ]));
        if history["messages"]
            .to_string()
            .contains("my locker code is 4711")
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the message never reached the transcript: {history}"
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    let export = env.dir.join("acme-export.tar.gz");
    let output = env.mtp(&[
        "tenant",
        "rm",
        &id,
        "--export",
        export.to_str().unwrap(),
        "--purge",
        "--yes",
    ]);
    assert_ok(&output);
    let (listing, contents) = export_of(&export);
    assert!(
        listing.contains(&format!("{id}/sessions/agent_main_main.json")),
        "{listing}\nrm said: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert!(
        listing.contains(&format!("{id}/workspace/client-note.md")),
        "{listing}"
    );
    assert!(!listing.contains("sqlite"), "{listing}");
    assert!(!listing.contains("openclaw.json"), "{listing}");
    assert!(
        contents.contains("my locker code is 4711"),
        "the session is in the export"
    );
    assert!(
        !contents.contains(common::BOT_TOKEN),
        "no bot token in the export"
    );
}

#[test]
fn retention_keeps_exactly_what_it_says() {
    let env = TestEnv::new("retention_keeps_exactly", 21620, "60s");
    let config = std::fs::read_to_string(&env.config_path).unwrap().replace(
        "backup: { schedule: \"off\" }",
        "backup: { schedule: \"off\", keep: { daily: 3, weekly: 2 } }",
    );
    std::fs::write(&env.config_path, config).unwrap();
    let id = env.tenant("r");
    let dir = env.data_dir().join("backups").join(&id);
    std::fs::create_dir_all(&dir).unwrap();
    // Two a day at 01:00 and 13:00 UTC from Thursday 2026-11-05 to Thursday 2026-11-19.
    let mut names = Vec::new();
    for day in 5..=19 {
        for hour in ["010000", "130000"] {
            let name = format!("{id}-202611{day:02}-{hour}.mtpbak");
            std::fs::write(dir.join(&name), b"x").unwrap();
            names.push(name);
        }
    }
    // A half-written one is never counted.
    std::fs::write(
        dir.join(format!(".{id}-20261119-140000.mtpbak.1.2.partial")),
        b"x",
    )
    .unwrap();

    let dry = json(&env.mtp(&["backup", "prune", "--dry-run", "--json"]));
    let ids = |list: &serde_json::Value| -> Vec<String> {
        let mut ids: Vec<String> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["id"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    };
    // Daily: the newest of the 19th, 18th, 17th. Weekly (ISO weeks, UTC):
    // the newest of the week of the 16th (the 19th's, already kept) and of
    // the week of the 9th (the 15th, a Sunday).
    let expected: Vec<String> = [
        "20261115-130000",
        "20261117-130000",
        "20261118-130000",
        "20261119-130000",
    ]
    .iter()
    .map(|stamp| format!("{id}-{stamp}"))
    .collect();
    assert_eq!(ids(&dry["kept"]), expected, "{dry}");
    assert_eq!(dry["deleted"].as_array().unwrap().len(), 30 - 4);
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        31,
        "a dry run deletes nothing"
    );

    assert_ok(&env.mtp(&["backup", "prune"]));
    let mut left: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| !name.starts_with('.'))
        .collect();
    left.sort();
    let wanted: Vec<String> = expected.iter().map(|id| format!("{id}.mtpbak")).collect();
    assert_eq!(left, wanted);
    // Pruning again changes nothing.
    let again = json(&env.mtp(&["backup", "prune", "--json"]));
    assert_eq!(again["deleted"], serde_json::json!([]));
}

#[test]
fn the_admins_store_comes_back_into_an_empty_data_dir() {
    let env = TestEnv::new("the_admins_store_comes_back", 21640, "60s");
    let id = env.tenant("a");
    assert_ok(&env.create(&id, &["--image", FAKE_IMAGE]));
    let taken = json(&env.mtp(&["backup", "admin", "--json"]));
    assert_eq!(taken["tenant"], serde_json::Value::Null, "{taken}");
    let archive = taken["path"].as_str().unwrap().to_string();
    assert_eq!(mode(Path::new(&archive)), 0o600);

    // Refused while a store is there: nothing is overwritten.
    assert_fails_with(
        &env.mtp(&["backup", "restore-admin", &archive]),
        2,
        "exists",
    );

    // The store and the device key are lost (the tenants' dirs and the backup key are not).
    let data = env.data_dir();
    let aside = env.dir.join("lost");
    std::fs::create_dir_all(&aside).unwrap();
    for name in ["mtp.redb", "device.key"] {
        std::fs::rename(data.join(name), aside.join(name)).unwrap();
    }
    let output = env.mtp(&["backup", "restore-admin", &archive]);
    assert_ok(&output);
    assert_eq!(mode(&data.join("mtp.redb")), 0o600);
    assert_eq!(mode(&data.join("device.key")), 0o600);

    // The fleet is as it was: reconcile finds nothing to do, and the restored
    // device key still opens the cell's gateway.
    let report = json(&env.mtp(&["tenant", "reconcile", "--json"]));
    // (Other tests' cells may run beside it: their containers are not looked at.)
    for key in ["cleaned", "removed", "repaired", "missing"] {
        assert_eq!(report[key], serde_json::json!([]), "{key}: {report}");
    }
    let shown = json(&env.mtp(&["tenant", "show", &id, "--json"]));
    assert_eq!(shown["state"], "running", "{shown}");
    assert_ok(&env.mtp(&["rpc", &id, "health"]));
    assert_ok(&env.mtp(&["tenant", "rm", &id, "--purge", "--yes"]));
}

#[test]
fn offboarding_leaves_a_final_backup_and_a_plain_export_without_secrets() {
    let env = TestEnv::new("offboarding_leaves_a_final_backup", 21660, "60s");
    // A copy off the host, by the operator's own command.
    let offsite = env.dir.join("offsite");
    std::fs::create_dir_all(&offsite).unwrap();
    let config = std::fs::read_to_string(&env.config_path).unwrap().replace(
        "backup: { schedule: \"off\" }",
        &format!(
            "backup: {{ schedule: \"off\", afterCommand: 'cp \"$1\" {}/' }}",
            offsite.display()
        ),
    );
    std::fs::write(&env.config_path, config).unwrap();
    let id = env.tenant("o");
    assert_ok(&env.create(&id, &["--image", FAKE_IMAGE]));
    let state = env.data_dir().join("tenants").join(&id).join("state");
    std::fs::create_dir_all(state.join("workspace")).unwrap();
    std::fs::write(state.join("workspace/notes.md"), "the client's notes").unwrap();
    // The copies a real gateway keeps of its config (the `.last-good` comes
    // once a config has run a while) stay out of the export like the config.
    let config = std::fs::read(state.join("openclaw.json")).unwrap();
    std::fs::write(state.join("openclaw.json.last-good"), &config).unwrap();
    std::fs::write(state.join("openclaw.json.bak.1"), &config).unwrap();
    let export = env.dir.join("export.tar.gz");

    // An export path that exists is refused before anything happens.
    std::fs::write(&export, b"already here").unwrap();
    assert_fails_with(
        &env.mtp(&[
            "tenant",
            "rm",
            &id,
            "--export",
            export.to_str().unwrap(),
            "--purge",
            "--yes",
        ]),
        2,
        "exists",
    );
    std::fs::remove_file(&export).unwrap();

    let output = env.mtp(&[
        "tenant",
        "rm",
        &id,
        "--export",
        export.to_str().unwrap(),
        "--purge",
        "--yes",
    ]);
    assert_ok(&output);
    assert_eq!(mode(&export), 0o600);
    assert!(!env.data_dir().join("tenants").join(&id).exists(), "purged");

    let (listing, contents) = export_of(&export);
    assert!(
        listing.contains(&format!("{id}/workspace/notes.md")),
        "{listing}"
    );
    assert!(!listing.contains("openclaw.json"), "{listing}");
    assert!(contents.contains("the client's notes"));
    assert!(!contents.contains(BOT_TOKEN), "no bot token in the export");

    // The final backup restores the tenant; backup.afterCommand copied it off the host.
    let listed = json(&env.mtp(&["backup", "list", &id, "--json"]));
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    let final_name = format!("{}.mtpbak", listed[0]["id"].as_str().unwrap());
    assert!(
        offsite.join(&final_name).is_file(),
        "{final_name} not copied"
    );
    let restored = json(&env.mtp(&[
        "backup",
        "restore",
        listed[0]["id"].as_str().unwrap(),
        "--json",
    ]));
    assert_eq!(restored["state"], "running", "{restored}");
    assert_eq!(
        std::fs::read_to_string(state.join("workspace/notes.md")).unwrap(),
        "the client's notes"
    );
    assert!(
        files_under(&env.data_dir().join("backups"))
            .iter()
            .all(|file| file.ends_with(".mtpbak")),
        "no partial file is left"
    );

    // Beside the original, as another tenant with a bot of its own; with the
    // original's bot it is refused, and nothing is made.
    let archive = listed[0]["path"].as_str().unwrap();
    let copy = env.tenant("copy");
    assert_fails_with(
        &env.mtp(&[
            "backup",
            "restore",
            archive,
            "--as",
            &copy,
            "--bot-token-file",
            env.token_file().to_str().unwrap(),
        ]),
        2,
        "already belongs to tenant",
    );
    assert!(!env.data_dir().join("tenants").join(&copy).exists());
    let other_token = env.dir.join("other-token");
    std::fs::write(
        &other_token,
        BOT_TOKEN.replacen("7000000001", "7000000002", 1),
    )
    .unwrap();
    let copied = json(&env.mtp(&[
        "backup",
        "restore",
        archive,
        "--as",
        &copy,
        "--bot-token-file",
        other_token.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(copied["state"], "running", "{copied}");
    assert_eq!(
        std::fs::read_to_string(
            env.data_dir()
                .join("tenants")
                .join(&copy)
                .join("state/workspace/notes.md")
        )
        .unwrap(),
        "the client's notes"
    );
    assert_ne!(
        common::gateway_token(&copy),
        common::gateway_token(&id),
        "the copy has a gateway token of its own"
    );
    assert_ok(&env.mtp(&["tenant", "rm", &copy, "--purge", "--yes"]));
    assert_ok(&env.mtp(&["tenant", "rm", &id, "--purge", "--yes"]));
}

/// With `backup.recipients`, archives are for the operator's own key alone:
/// the host cannot read them, and a restore needs `--identity`.
#[test]
fn archives_for_the_operators_own_key_need_its_identity() {
    use age::secrecy::ExposeSecret;
    let env = TestEnv::new("archives_for_the_operators_own_key", 21700, "60s");
    let operator = age::x25519::Identity::generate();
    let config = std::fs::read_to_string(&env.config_path).unwrap().replace(
        "backup: { schedule: \"off\" }",
        &format!(
            "backup: {{ schedule: \"off\", recipients: [\"{}\"] }}",
            operator.to_public()
        ),
    );
    std::fs::write(&env.config_path, config).unwrap();
    let identity = env.dir.join("operator.key");
    std::fs::write(
        &identity,
        format!(
            "# the operator's own\n{}\n",
            operator.to_string().expose_secret()
        ),
    )
    .unwrap();
    let id = env.tenant("k");
    assert_ok(&env.create(&id, &["--image", FAKE_IMAGE]));
    let taken = json(&env.mtp(&["backup", "create", &id, "--json"]));
    let archive = taken["path"].as_str().unwrap().to_string();
    assert_ok(&env.mtp(&["tenant", "rm", &id, "--purge", "--yes"]));

    let refused = env.mtp(&["backup", "restore", &archive]);
    assert_fails_with(&refused, 2, "cannot be decrypted");
    assert!(
        stderr(&refused).contains("--identity"),
        "{}",
        stderr(&refused)
    );
    assert!(!env.data_dir().join("tenants").join(&id).exists());

    let restored = json(&env.mtp(&[
        "backup",
        "restore",
        &archive,
        "--identity",
        identity.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(restored["state"], "running", "{restored}");
    assert_ok(&env.mtp(&["tenant", "rm", &id, "--purge", "--yes"]));
}
