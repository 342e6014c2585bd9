//! Cells on a real Docker engine with the real OpenClaw image: create, list,
//! stop/start/restart, rm and purge, ports, bad input, failed creates, a killed
//! create, and secrets kept out of every output. Drives the `mtp` binary as an
//! operator would; a few checks call `fleet` directly.

mod common;

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use common::{
    BOT_TOKEN, CRASH_IMAGE, FAKE_IMAGE, HANG_IMAGE, TestEnv, assert_fails_with, assert_ok, docker,
    docker_ok, gateway_token, json, stderr, stdout,
};

/// The whole life of a tenant: create → healthy → listed as running with its
/// port → stop → start → restart → rm (data kept) → rm --purge (data gone), and
/// nothing of ours left in Docker or on disk. A foreign listener on the first
/// port of the range is skipped. Secrets never appear in any output.
#[test]
fn a_tenant_lives_from_create_to_purge() {
    let env = TestEnv::new("a_tenant_lives_from_create_to_purge", 19200, "180s");
    let id = env.tenant("acme");
    let foreign = TcpListener::bind("127.0.0.1:19200").expect("hold the first port");

    let created = json(&env.create(
        &id,
        &[
            "--name",
            "Acme Corp",
            "--skills",
            "weather,summarize",
            "--allow-from",
            "123456789",
            "--json",
        ],
    ));
    assert_eq!(created["id"], id.as_str());
    assert_eq!(created["state"], "running");
    assert_eq!(created["health"], "ok");
    assert_eq!(
        created["port"], 19201,
        "the foreign listener's port must be skipped"
    );
    assert!(
        created["image_id"].as_str().unwrap().starts_with("sha256:"),
        "{created}"
    );
    assert_eq!(
        created["paired"], true,
        "create returns once the admin is paired"
    );
    drop(foreign);

    // Every later `mtp` process reaches the gateway with the stored device token.
    let health = json(&env.mtp(&["rpc", &id, "health"]));
    assert_eq!(health["ok"], true, "{health}");
    let shown = json(&env.mtp(&["tenant", "show", &id, "--json"]));
    assert_eq!(shown["gateway"]["version"], "2026.9.6", "{shown}");
    assert_eq!(shown["gateway"]["telegram"]["running"], true, "{shown}");
    let bad_params = env.mtp(&["rpc", &id, "health", "[1]"]);
    assert_eq!(bad_params.status.code(), Some(2), "{}", stderr(&bad_params));

    // The cell profile, as Docker reports it.
    let inspect = docker(&["inspect", &format!("mtp-cell-{id}")]);
    let inspect: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    let host = &inspect[0]["HostConfig"];
    assert_eq!(host["CapDrop"], serde_json::json!(["ALL"]));
    assert_eq!(
        host["SecurityOpt"],
        serde_json::json!(["no-new-privileges:true"])
    );
    assert_eq!(host["Init"], true);
    assert_eq!(host["PidsLimit"], 512);
    assert_eq!(host["Memory"], 1024 * 1024 * 1024);
    assert_eq!(host["NanoCpus"], 1_500_000_000);
    assert_eq!(host["RestartPolicy"]["Name"], "unless-stopped");
    assert_eq!(host["Privileged"], false);
    assert_eq!(
        host["PortBindings"]["18789/tcp"],
        serde_json::json!([{ "HostIp": "127.0.0.1", "HostPort": "19201" }])
    );
    assert_eq!(host["NetworkMode"], format!("mtp-cell-{id}"));
    // Its secrets are files bound read-only at /run/secrets, none is in its
    // environment (what `docker inspect` shows anyone with Docker access);
    // the gateway got them all the same (paired with its token above, and
    // its Telegram channel runs on the bot token).
    let env_list = inspect[0]["Config"]["Env"].as_array().unwrap();
    let token = gateway_token(&id);
    for entry in env_list {
        let entry = entry.as_str().unwrap();
        assert!(
            !entry.contains(&token) && !entry.contains(common::BOT_TOKEN),
            "a secret in the container's environment: {}",
            entry.split('=').next().unwrap()
        );
    }
    let secrets_mount = inspect[0]["Mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["Destination"] == "/run/secrets")
        .expect("the secrets mount");
    assert_eq!(secrets_mount["RW"], false, "{secrets_mount}");
    let secrets_dir = env.data_dir().join("tenants").join(&id).join("secrets");
    let meta = std::fs::symlink_metadata(&secrets_dir).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o700);
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), 1000);
    let mut files: Vec<String> = std::fs::read_dir(&secrets_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "OPENCLAW_GATEWAY_TOKEN",
            "OPENCLAW_HOOKS_TOKEN",
            "TELEGRAM_BOT_TOKEN"
        ]
    );
    for file in &files {
        let meta = std::fs::symlink_metadata(secrets_dir.join(file)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o400, "{file}");
        assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), 1000, "{file}");
    }
    let labels = &inspect[0]["Config"]["Labels"];
    assert_eq!(labels["mtp.managed"], "true");
    assert_eq!(labels["mtp.tenant"], id.as_str());
    assert_eq!(labels["mtp.generation"], "1");
    let state_dir = env.data_dir().join("tenants").join(&id).join("state");
    // The real gateway accepted this config (it is healthy); it holds what was asked.
    let rendered: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(state_dir.join("openclaw.json")).unwrap())
            .unwrap();
    assert_eq!(
        rendered["skills"]["allowBundled"],
        serde_json::json!(["weather", "summarize"])
    );
    assert_eq!(rendered["channels"]["telegram"]["dmPolicy"], "allowlist");
    let meta = std::fs::metadata(&state_dir).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o700);
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), 1000);

    let listed = json(&env.mtp(&["tenant", "list", "--json"]));
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["state"], "running");
    assert_eq!(listed[0]["port"], 19201);

    assert_ok(&env.mtp(&["tenant", "stop", &id]));
    let shown = json(&env.mtp(&["tenant", "show", &id, "--json"]));
    assert_eq!(
        (shown["state"].as_str(), shown["health"].as_str()),
        (Some("stopped"), Some("unknown"))
    );
    assert_ok(&env.mtp(&["tenant", "start", &id]));
    assert_ok(&env.mtp(&["tenant", "restart", &id]));
    let shown = json(&env.mtp(&["tenant", "show", &id, "--json"]));
    assert_eq!(
        (shown["state"].as_str(), shown["health"].as_str()),
        (Some("running"), Some("ok"))
    );
    // The pairing survives a restart of the cell (and of the admin: a new process).
    let status = json(&env.mtp(&["rpc", &id, "status"]));
    assert!(status.is_object(), "{status}");

    // Secrets: not in list/show/logs output, not in the audit log; store is 0600.
    let gateway_token = gateway_token(&id);
    assert_eq!(gateway_token.len(), 64);
    let mut outputs = String::new();
    for args in [
        vec!["tenant", "list"],
        vec!["tenant", "list", "--json"],
        vec!["tenant", "show", &id],
        vec!["tenant", "show", &id, "--json"],
        vec!["tenant", "logs", &id],
    ] {
        let output = env.mtp(&args);
        assert_ok(&output);
        outputs.push_str(&stdout(&output));
        outputs.push_str(&stderr(&output));
    }
    assert!(outputs.contains(&id));
    assert!(!outputs.contains(&gateway_token), "gateway token leaked");
    assert!(!outputs.contains(BOT_TOKEN), "bot token leaked");
    let store_path = env.data_dir().join("mtp.redb");
    assert_eq!(
        std::fs::metadata(&store_path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let store_bytes = std::fs::read(&store_path).unwrap();
    let audit = String::from_utf8_lossy(&store_bytes);
    assert!(
        audit.contains("\"action\":\"restart\""),
        "audit log has the restart"
    );

    // rm keeps data; rm --purge deletes it.
    assert_ok(&env.mtp(&["tenant", "rm", &id, "--yes"]));
    assert_eq!(env.docker_leftovers(), Vec::<String>::new());
    assert!(
        state_dir.join("openclaw.json").exists(),
        "rm must keep the data"
    );
    assert_eq!(
        json(&env.mtp(&["tenant", "list", "--json"])),
        serde_json::json!([])
    );
    assert_ok(&env.mtp(&["tenant", "rm", &id, "--purge", "--yes"]));
    assert!(
        !env.data_dir().join("tenants").join(&id).exists(),
        "purge must delete the data"
    );
    assert_eq!(env.docker_leftovers(), Vec::<String>::new());
}

/// Bad ids and a duplicate are refused with a message that says what is wrong
/// (exit code 2), and leave no container, network, dir or record.
#[test]
fn bad_ids_and_duplicates_are_refused_and_leave_nothing() {
    let env = TestEnv::new("bad_ids_and_duplicates_are_refused", 19240, "3s");
    let token = env.token_file();
    let token = token.to_str().unwrap();
    let long = "a".repeat(41);
    for (bad, hint) in [
        ("../x", "lowercase letters"),
        ("Acme", "lowercase letters"),
        ("a_b", "lowercase letters"),
        (long.as_str(), "limit is 40"),
        ("", "cannot be empty"),
        ("-a", "start and end"),
    ] {
        // `--` so that clap hands "-a" over as the id rather than as a flag.
        let output = env.mtp(&["tenant", "create", "--bot-token-file", token, "--", bad]);
        assert_eq!(
            output.status.code(),
            Some(2),
            "id {bad:?}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains(hint),
            "id {bad:?}: {}",
            stderr(&output)
        );
    }
    assert_eq!(
        json(&env.mtp(&["tenant", "list", "--json"])),
        serde_json::json!([])
    );
    assert!(
        !env.data_dir().join("tenants").exists()
            || std::fs::read_dir(env.data_dir().join("tenants"))
                .unwrap()
                .count()
                == 0
    );

    // A malformed bot token is refused the same way.
    std::fs::write(env.dir.join("bad-token"), "not-a-token").unwrap();
    let output = env.mtp(&[
        "tenant",
        "create",
        &env.tenant("x"),
        "--bot-token-file",
        env.dir.join("bad-token").to_str().unwrap(),
    ]);
    assert_fails_with(&output, 2, "does not look like a bot token");
    assert!(
        !stderr(&output).contains("not-a-token"),
        "the pasted value must not be echoed"
    );

    // A duplicate: the first create fails but is kept, so the id is taken.
    let id = env.tenant("dup");
    let first = env.create(&id, &["--image", HANG_IMAGE, "--keep-failed"]);
    assert_eq!(first.status.code(), Some(1), "{}", stderr(&first));
    let leftovers_before = env.docker_leftovers();
    let second = env.create(&id, &[]);
    assert_fails_with(&second, 2, "already exists");
    assert_eq!(
        env.docker_leftovers(),
        leftovers_before,
        "a refused duplicate must not touch the first"
    );
    assert_ok(&env.mtp(&["tenant", "rm", &id, "--purge", "--yes"]));
    assert_eq!(env.docker_leftovers(), Vec::<String>::new());
}

/// A gateway that never answers `/healthz` makes create fail within its timeout
/// and leaves nothing behind; with `--keep-failed` the container stays, stopped,
/// and the tenant shows as failed with the reason.
#[test]
fn a_cell_that_never_gets_healthy_fails_and_leaves_nothing() {
    let env = TestEnv::new("a_cell_that_never_gets_healthy", 19260, "4s");
    let id = env.tenant("hang");
    let started = Instant::now();
    let output = env.create(&id, &["--image", HANG_IMAGE]);
    assert_fails_with(&output, 1, "failed at step health");
    assert!(
        stderr(&output).contains("everything it made was removed"),
        "{}",
        stderr(&output)
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "create must give up near its 4 s timeout"
    );
    assert_eq!(env.docker_leftovers(), Vec::<String>::new());
    assert!(!env.data_dir().join("tenants").join(&id).exists());
    assert_eq!(
        json(&env.mtp(&["tenant", "list", "--json"])),
        serde_json::json!([])
    );

    let output = env.create(&id, &["--image", HANG_IMAGE, "--keep-failed"]);
    assert_fails_with(&output, 1, "kept for inspection");
    let name = format!("mtp-cell-{id}");
    assert!(
        env.docker_leftovers().contains(&name),
        "the container is kept"
    );
    let shown = json(&env.mtp(&["tenant", "show", &id, "--json"]));
    assert_eq!(shown["state"], "failed");
    assert!(
        shown["last_error"].as_str().unwrap().contains("/healthz"),
        "{shown}"
    );
    assert_ok(&env.mtp(&["tenant", "rm", &id, "--purge", "--yes"]));
    assert_eq!(env.docker_leftovers(), Vec::<String>::new());
}

/// A gateway that exits at once fails the create quickly with its last log
/// lines, secrets redacted in the error, the audit log and `logs`.
#[test]
fn a_crashing_gateway_fails_fast_with_its_log_redacted() {
    let env = TestEnv::new("a_crashing_gateway_fails_fast", 19280, "120s");
    let id = env.tenant("crash");
    let started = Instant::now();
    let output = env.create(&id, &["--image", CRASH_IMAGE, "--keep-failed"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "a crash must not wait for the 120 s timeout"
    );
    let err = stderr(&output);
    assert!(
        err.contains("Invalid config: channels.telegram: boom"),
        "{err}"
    );
    assert!(
        err.contains(
            "booting with OPENCLAW_GATEWAY_TOKEN=<redacted> TELEGRAM_BOT_TOKEN=<redacted>"
        ),
        "{err}"
    );
    assert!(!err.contains(BOT_TOKEN), "{err}");

    let logs = env.mtp(&["tenant", "logs", &id]);
    assert_ok(&logs);
    assert!(
        stdout(&logs).contains("OPENCLAW_GATEWAY_TOKEN=<redacted>"),
        "{}",
        stdout(&logs)
    );
    assert!(!stdout(&logs).contains(BOT_TOKEN));
    let store_bytes = std::fs::read(env.data_dir().join("mtp.redb")).unwrap();
    let text = String::from_utf8_lossy(&store_bytes);
    assert!(
        text.contains("\"step\":\"health\""),
        "the audit log names the step"
    );
    assert_ok(&env.mtp(&["tenant", "rm", &id, "--purge", "--yes"]));
    // Audit entries stay after the tenant is gone; the secrets table rows do not.
    let store_bytes = std::fs::read(env.data_dir().join("mtp.redb")).unwrap();
    let text = String::from_utf8_lossy(&store_bytes);
    assert!(text.contains("\"action\":\"rm --purge\""));
}

/// `mtp` killed in the middle of a create (container made, not yet running)
/// leaves a `creating` record; the next mutating command's reconcile undoes it.
#[test]
fn a_killed_create_is_undone_by_the_next_command() {
    let env = TestEnv::new("a_killed_create_is_undone", 19300, "300s");
    let id = env.tenant("killed");
    let mut child = env
        .create_command(&id, &["--image", HANG_IMAGE])
        .spawn()
        .unwrap();
    let name = format!("mtp-cell-{id}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = docker(&[
            "ps",
            "--filter",
            &format!("name=^{name}$"),
            "--format",
            "{{.Names}}",
        ]);
        if String::from_utf8_lossy(&out.stdout).trim() == name {
            break;
        }
        assert!(Instant::now() < deadline, "the container never started");
        assert!(child.try_wait().unwrap().is_none(), "create ended early");
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let listed = json(&env.mtp(&["tenant", "list", "--json"]));
    assert_eq!(listed[0]["state"], "creating", "{listed}");

    let report = json(&env.mtp(&["tenant", "reconcile", "--json"]));
    assert_eq!(report["cleaned"], serde_json::json!([id]), "{report}");
    assert_eq!(env.docker_leftovers(), Vec::<String>::new());
    assert!(!env.data_dir().join("tenants").join(&id).exists());
    assert_eq!(
        json(&env.mtp(&["tenant", "list", "--json"])),
        serde_json::json!([])
    );
    let again = json(&env.mtp(&["tenant", "reconcile", "--json"]));
    assert_eq!(again["cleaned"], serde_json::json!([]));
}

/// Labelled containers with no record and records with no container are
/// reported; start/stop refuse a same-named container without our labels.
#[test]
fn reconcile_reports_orphans_and_foreign_containers_are_never_touched() {
    let env = TestEnv::new("reconcile_reports_orphans", 19320, "3s");
    let orphan = env.tenant("orphan");
    let foreign = env.tenant("foreign");
    docker_ok(&[
        "create",
        "--name",
        &format!("mtp-cell-{orphan}"),
        "--label",
        "mtp.managed=true",
        "--label",
        &format!("mtp.tenant={orphan}"),
        HANG_IMAGE,
    ]);
    docker_ok(&[
        "create",
        "--name",
        &format!("mtp-cell-{foreign}"),
        HANG_IMAGE,
    ]);

    let report = json(&env.mtp(&["tenant", "reconcile", "--json"]));
    assert!(
        report["orphan_containers"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!(orphan)),
        "{report}"
    );
    assert!(
        !report["orphan_containers"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!(foreign)),
        "{report}"
    );

    // A tenant whose record exists but whose container is someone else's.
    let output = env.create(&foreign, &["--image", HANG_IMAGE]);
    assert_fails_with(&output, 1, "was not made by MTP");
    let still = docker(&[
        "inspect",
        "--format",
        "{{.Name}}",
        &format!("mtp-cell-{foreign}"),
    ]);
    assert!(still.status.success(), "the foreign container must survive");
}

/// Cell networks get explicit /28 subnets from MTP's pool, so a fleet is not
/// stopped by Docker's default pools (about 29 networks here).
#[tokio::test]
async fn cell_networks_outlast_dockers_default_pools() {
    let env = TestEnv::new("cell_networks_outlast_default_pools", 19340, "3s");
    let config = env.config();
    let pool = config.cell.subnet_pool;
    let runtime = mtp::runtime::Runtime::connect(config.docker_host.as_deref())
        .await
        .unwrap();
    let used = runtime.used_subnets().await.unwrap();
    let mut made = Vec::new();
    let mut index = 0;
    while made.len() < 40 {
        let subnet = pool.subnet(4000 - index);
        index += 1;
        if used.contains(&subnet) {
            continue;
        }
        let tenant: mtp::tenant::TenantId = env.tenant(&format!("n{index}")).parse().unwrap();
        assert!(
            runtime.create_network(&tenant, 1, &subnet).await.unwrap(),
            "subnet {subnet} overlapped"
        );
        made.push(tenant);
    }
    // Asking for a subnet that is in use reports an overlap instead of failing.
    let clash: mtp::tenant::TenantId = env.tenant("clash").parse().unwrap();
    let taken = pool.subnet(4000);
    assert!(!runtime.create_network(&clash, 1, &taken).await.unwrap());
    for tenant in &made {
        assert!(runtime.remove_network(tenant).await.unwrap());
    }
    assert_eq!(env.docker_leftovers(), Vec::<String>::new());
}

/// Cheap cells of the fake gateway (a real container each, same profile): two
/// tenants get different ports; `mtp audit` names every action and holds no
/// secret; start, stop and restart refuse a same-named container without our
/// labels and leave it alone; reconcile remakes a record's lost container and
/// reports a labelled network nobody owns; `rm --purge` refuses a data dir that is
/// a symlink and deletes nothing through it.
#[test]
fn fake_cells_ports_audit_foreign_containers_and_the_purge_guard() {
    let env = TestEnv::new("fake_cells_ports_audit_foreign", 19360, "60s");
    let (a, b) = (env.tenant("a"), env.tenant("b"));
    let second_token = env.dir.join("bot-token-b");
    std::fs::write(
        &second_token,
        "7000000002:AAFakeTokenForTestsOnly_abcdefghijk",
    )
    .unwrap();
    let mut ports = Vec::new();
    for (id, token) in [(&a, env.token_file()), (&b, second_token)] {
        let created = json(&env.mtp(&[
            "tenant",
            "create",
            id,
            "--bot-token-file",
            token.to_str().unwrap(),
            "--image",
            FAKE_IMAGE,
            "--json",
        ]));
        assert_eq!(created["state"], "running", "{created}");
        ports.push(created["port"].as_u64().unwrap());
    }
    assert_eq!(ports, [19360, 19361], "each tenant gets its own port");

    // The audit log: both creates, by the CLI, and no secret anywhere in it.
    let gateway_tokens: Vec<String> = [&a, &b].iter().map(|id| gateway_token(id)).collect();
    assert_ok(&env.mtp(&["tenant", "restart", &a]));
    let audit = json(&env.mtp(&["audit", "--json"]));
    let actions: Vec<(String, String, String)> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| {
            Some((
                e["action"].as_str()?.to_string(),
                e["tenant"].as_str()?.to_string(),
                e["outcome"].as_str()?.to_string(),
            ))
        })
        .collect();
    for wanted in [("create", &a), ("create", &b), ("restart", &a)] {
        assert!(
            actions.contains(&(wanted.0.to_string(), wanted.1.clone(), "ok".to_string())),
            "{wanted:?} not in {actions:?}"
        );
    }
    let only_b = json(&env.mtp(&["audit", "--tenant", &b, "--json"]));
    assert!(
        only_b
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["tenant"] == b.as_str()),
        "{only_b}"
    );
    let text = stdout(&env.mtp(&["audit"])) + &audit.to_string();
    assert!(text.contains(&a));
    assert!(!text.contains(BOT_TOKEN), "bot token in the audit log");
    for gateway_token in &gateway_tokens {
        assert!(
            !text.contains(gateway_token.as_str()),
            "gateway token in the audit log"
        );
    }
    assert_eq!(
        env.mtp(&["audit", "--tenant", "Not_An_Id"]).status.code(),
        Some(2)
    );
    assert_eq!(env.mtp(&["audit", "--limit", "0"]).status.code(), Some(2));

    // `logs --follow` prints lines as they come and ends when the cell stops.
    let mut follow = env
        .mtp_command(&["tenant", "logs", &a, "--follow", "--tail", "50"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = std::io::BufReader::new(follow.stdout.take().unwrap());
    let mut first = String::new();
    while !first.contains("[gateway] listening") {
        let mut line = String::new();
        assert_ne!(
            std::io::BufRead::read_line(&mut reader, &mut line).unwrap(),
            0,
            "the log ended early: {first}"
        );
        first.push_str(&line);
    }
    assert_ok(&env.mtp(&["tenant", "stop", &a]));
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut reader, &mut rest).unwrap();
    assert!(
        follow.wait().unwrap().success(),
        "follow ends cleanly when the cell stops"
    );
    assert!(!rest.contains(BOT_TOKEN) && !first.contains(BOT_TOKEN));

    // b's container is replaced by a foreign one of the same name.
    let cell_b = format!("mtp-cell-{b}");
    docker_ok(&["rm", "-f", &cell_b]);
    docker_ok(&["create", "--name", &cell_b, HANG_IMAGE]);
    for action in ["start", "stop", "restart"] {
        let output = env.mtp(&["tenant", action, &b]);
        assert_eq!(
            output.status.code(),
            Some(1),
            "{action}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains("was not made by MTP"),
            "{action}: {}",
            stderr(&output)
        );
    }
    let state = docker(&["inspect", "--format", "{{.State.Status}}", &cell_b]);
    assert_eq!(
        stdout_of(&state).trim(),
        "created",
        "the foreign container is untouched"
    );
    docker_ok(&["rm", "-f", &cell_b]);
    let network_id =
        |name: &str| stdout_of(&docker(&["network", "inspect", "-f", "{{.Id}}", name]));
    let b_network = network_id(&cell_b);

    // Reconcile: b is recorded but has no container (it is made again from the
    // record, issue 10); a labelled network has no owner (reported).
    let stray = env.tenant("stray");
    let network = format!("mtp-cell-{stray}");
    docker_ok(&[
        "network",
        "create",
        "--label",
        "mtp.managed=true",
        "--label",
        &format!("mtp.tenant={stray}"),
        &network,
    ]);
    let report = json(&env.mtp(&["tenant", "reconcile", "--json"]));
    assert!(
        report["repaired"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!(b)),
        "{report}"
    );
    assert!(
        report["orphan_networks"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!(network)),
        "{report}"
    );
    // b's network, on the subnet its record holds, is kept, not made again:
    // between a removal and a new one, anyone's create could take the subnet.
    assert_eq!(network_id(&cell_b), b_network, "b's network was made again");
    let shown = json(&env.mtp(&["tenant", "show", &b, "--json"]));
    // The refused stop above recorded b as stopped: made again, left stopped.
    assert_eq!(shown["state"], "stopped", "{shown}");
    assert_eq!(shown["container"]["state"], "created", "{shown}");

    // The purge guard: a's data dir swapped for a symlink to something else.
    assert_ok(&env.mtp(&["tenant", "rm", &a, "--yes"]));
    let tenant_dir = env.data_dir().join("tenants").join(&a);
    let elsewhere = env.dir.join("elsewhere");
    std::fs::rename(&tenant_dir, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &tenant_dir).unwrap();
    let output = env.mtp(&["tenant", "rm", &a, "--purge", "--yes"]);
    assert_fails_with(&output, 1, "symlink");
    assert!(
        elsewhere.join("state").exists(),
        "nothing deleted through the symlink"
    );
    std::fs::remove_file(&tenant_dir).unwrap();
    std::fs::rename(&elsewhere, &tenant_dir).unwrap();
    assert_ok(&env.mtp(&["tenant", "rm", &a, "--purge", "--yes"]));
    assert!(!tenant_dir.exists());
    assert_ok(&env.mtp(&["tenant", "rm", &b, "--purge", "--yes"]));
    let _ = docker(&["network", "rm", &network]);
    assert_eq!(env.docker_leftovers(), Vec::<String>::new());
}

fn stdout_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr)
}

/// `tenant upgrade` makes the container anew on another image and keeps the
/// data, port and pairing; a missing image is refused with nothing changed; an
/// image whose gateway dies is rolled back to the one that worked; a stopped
/// tenant is upgraded and left stopped.
#[test]
fn an_upgrade_keeps_data_and_pairing_and_rolls_back_a_bad_image() {
    let env = TestEnv::new("an_upgrade_keeps_data_and_pairing", 19380, "60s");
    let id = env.tenant("up");
    let next = "mtp-test/fake-gateway:upgrade-test";
    docker_ok(&["tag", FAKE_IMAGE, next]);
    let created = json(&env.create(&id, &["--image", FAKE_IMAGE, "--json"]));
    let port = created["port"].clone();
    let marker = env
        .data_dir()
        .join("tenants")
        .join(&id)
        .join("state")
        .join("operator-note.txt");
    std::fs::write(&marker, "kept").unwrap();
    let label = |id: &str| {
        let out = docker(&[
            "inspect",
            "--format",
            "{{index .Config.Labels \"mtp.generation\"}} {{.Config.Image}}",
            &format!("mtp-cell-{id}"),
        ]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };

    let output = env.mtp(&["tenant", "upgrade", &id, "--image", next]);
    assert_ok(&output);
    assert!(
        stdout(&output).contains("generation 2"),
        "{}",
        stdout(&output)
    );
    let shown = json(&env.mtp(&["tenant", "show", &id, "--json"]));
    assert_eq!(
        state_health_image(&shown),
        ("running", "ok", next),
        "{shown}"
    );
    assert_eq!(shown["generation"], 2);
    assert_eq!(shown["port"], port, "the port is kept");
    assert_eq!(shown["paired"], true);
    assert_eq!(label(&id), format!("2 {next}"));
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap(),
        "kept",
        "the data is kept"
    );
    assert_eq!(
        json(&env.mtp(&["rpc", &id, "health"]))["ok"],
        true,
        "the admin still reaches the gateway"
    );

    // A missing image: refused (exit 2), nothing changed.
    let output = env.mtp(&[
        "tenant",
        "upgrade",
        &id,
        "--image",
        "mtp-test/no-such-image:1",
    ]);
    assert_fails_with(&output, 2, "has no image");
    assert_eq!(label(&id), format!("2 {next}"));
    let output = env.mtp(&["tenant", "upgrade", &id, "--image", next]);
    assert_eq!(
        output.status.code(),
        Some(2),
        "the same image again: {}",
        stderr(&output)
    );

    // A gateway that dies at once: rolled back to the image that worked.
    let output = env.mtp(&["tenant", "upgrade", &id, "--image", CRASH_IMAGE]);
    assert_fails_with(&output, 1, "rolled back to");
    let shown = json(&env.mtp(&["tenant", "show", &id, "--json"]));
    assert_eq!(
        state_health_image(&shown),
        ("running", "ok", next),
        "{shown}"
    );
    assert_eq!(
        shown["muted_until"],
        serde_json::Value::Null,
        "the maintenance mute is lifted: {shown}"
    );
    assert_eq!(json(&env.mtp(&["rpc", &id, "health"]))["ok"], true);
    let audit = json(&env.mtp(&["audit", "--tenant", &id, "--json"]));
    let upgrades: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "upgrade")
        .filter_map(|e| e["outcome"].as_str())
        .collect();
    assert_eq!(upgrades, ["ok", "failed", "failed", "failed"], "{audit}");

    // A stopped tenant is made anew and stays stopped.
    assert_ok(&env.mtp(&["tenant", "stop", &id]));
    let output = env.mtp(&["tenant", "upgrade", &id, "--image", FAKE_IMAGE]);
    assert_ok(&output);
    assert!(
        stdout(&output).contains("left stopped"),
        "{}",
        stdout(&output)
    );
    let shown = json(&env.mtp(&["tenant", "show", &id, "--json"]));
    assert_eq!(
        (shown["state"].as_str(), shown["image"].as_str()),
        (Some("stopped"), Some(FAKE_IMAGE)),
        "{shown}"
    );
    assert_ok(&env.mtp(&["tenant", "start", &id]));
    assert_eq!(json(&env.mtp(&["rpc", &id, "health"]))["ok"], true);

    assert_ok(&env.mtp(&["tenant", "rm", &id, "--purge", "--yes"]));
    let _ = docker(&["rmi", next]);
    assert_eq!(env.docker_leftovers(), Vec::<String>::new());
}

/// `state`, `health` and `image` of a `tenant show --json` object.
fn state_health_image(shown: &serde_json::Value) -> (&str, &str, &str) {
    let field = |key: &str| shown[key].as_str().unwrap_or("?");
    (field("state"), field("health"), field("image"))
}
