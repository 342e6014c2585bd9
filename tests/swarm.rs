//! Cells as Swarm services, on a single-node swarm made on this machine (its
//! advertise address on loopback) and left at the end: the real OpenClaw
//! image boots as a service from a volume seeded by a one-shot job, reads its
//! gateway token from a Docker secret (a `lan` gateway without one refuses to
//! start), publishes no port, and shows no secret in any inspect; it stops and
//! starts by its replica count, and goes with its secrets, network and volumes.
//! Then the fleet's actions with `cell.engine: "swarm"`, the admin in a
//! container on the swarm and its CLI run there (`docker exec`): create to
//! paired over the overlay, logs, usage, stop, start, restart, an upgrade
//! rolled back, a backup and a restore over it, a move (to its own node),
//! a drain with nowhere to go, removal with the data.

mod common;

use std::time::Duration;

use common::{FAKE_IMAGE, OPENCLAW_IMAGE, TestEnv, assert_ok, docker, json, stdout};
use mtp::runtime::{CellSpec, Runtime, SeedFile, SwarmCellSpec, SwarmRole, VolumeMount};
use mtp::tenant::{Limits, Secret, TenantId};

const GATEWAY_TOKEN: &str = "swarm-test-gateway-token-0123456789abcdef";
const BOT_TOKEN: &str = "7000000002:AASwarmTestTokenOnly_abcdefghijklmno";

/// Makes this engine a single-node swarm for the test and leaves it after,
/// whatever happens (a swarm the machine was already in is left alone).
struct SingleNodeSwarm {
    made: bool,
    /// `docker` commands that clear what a failed test left, run before leaving.
    cleanup: Vec<Vec<String>>,
    /// Whether `docker_gwbridge` (made with the first overlay task) was here before.
    had_gwbridge: bool,
}

impl SingleNodeSwarm {
    async fn join(runtime: &Runtime) -> SingleNodeSwarm {
        let had_gwbridge = docker(&["network", "inspect", "docker_gwbridge"])
            .status
            .success();
        if runtime.swarm_role().await.unwrap() == SwarmRole::Manager {
            return SingleNodeSwarm {
                made: false,
                cleanup: Vec::new(),
                had_gwbridge,
            };
        }
        let output = docker(&[
            "swarm",
            "init",
            "--advertise-addr",
            "127.0.0.1",
            "--listen-addr",
            "127.0.0.1:2377",
            // Away from the pools the other tests hand to their cells.
            "--default-addr-pool",
            "10.239.0.0/16",
            "--default-addr-pool-mask-length",
            "24",
        ]);
        assert!(
            output.status.success(),
            "docker swarm init: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        SingleNodeSwarm {
            made: true,
            cleanup: Vec::new(),
            had_gwbridge,
        }
    }
}

impl SingleNodeSwarm {
    fn run_cleanup(&self) {
        for command in &self.cleanup {
            let args: Vec<&str> = command.iter().map(String::as_str).collect();
            docker(&args);
        }
    }
}

impl Drop for SingleNodeSwarm {
    fn drop(&mut self) {
        self.run_cleanup();
        if self.made {
            let output = docker(&["swarm", "leave", "--force"]);
            if !output.status.success() {
                eprintln!(
                    "docker swarm leave: {}",
                    String::from_utf8_lossy(&output.stderr)
                );
            }
            // Volumes the service's containers held are free once it left.
            self.run_cleanup();
            // Swarm leaves its bridge to the host behind; the machine had none.
            if !self.had_gwbridge {
                docker(&["network", "rm", "docker_gwbridge"]);
            }
        }
    }
}

fn spec(tenant: &TenantId) -> SwarmCellSpec {
    let env = [
        ("HOME", "/home/node"),
        ("OPENCLAW_HOME", "/home/node"),
        ("OPENCLAW_STATE_DIR", "/home/node/.openclaw"),
        ("OPENCLAW_CONFIG_PATH", "/home/node/.openclaw/openclaw.json"),
        ("XDG_CACHE_HOME", "/home/node/.openclaw/cache"),
        ("OPENCLAW_NO_AUTO_UPDATE", "1"),
        ("OPENCLAW_DISABLE_BONJOUR", "1"),
        ("OPENCLAW_OFFLINE", "1"),
    ];
    SwarmCellSpec {
        cell: CellSpec {
            tenant: tenant.clone(),
            generation: 1,
            image: OPENCLAW_IMAGE.to_string(),
            port: 0,
            subnet: "10.238.0.0/28".to_string(),
            limits: Limits {
                memory_bytes: 2 << 30,
                nano_cpus: 1_500_000_000,
                pids: 512,
            },
            mounts: Vec::new(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            secret_env: vec![
                (
                    "OPENCLAW_GATEWAY_TOKEN".to_string(),
                    Secret::new(GATEWAY_TOKEN.to_string()),
                ),
                (
                    "TELEGRAM_BOT_TOKEN".to_string(),
                    Secret::new(BOT_TOKEN.to_string()),
                ),
            ],
            secrets_as_files: true,
            command: [
                "node",
                "dist/index.js",
                "gateway",
                "--bind",
                "lan",
                "--port",
                "18789",
            ]
            .map(String::from)
            .to_vec(),
            log_max_bytes: 10 << 20,
            log_max_files: 3,
            node: None,
        },
        volumes: vec![
            VolumeMount {
                suffix: "state".to_string(),
                target: "/home/node/.openclaw".to_string(),
            },
            VolumeMount {
                suffix: "auth".to_string(),
                target: "/home/node/.config/openclaw".to_string(),
            },
        ],
        node: None,
    }
}

/// `docker exec` in the task's container, which is on this node.
fn exec(container: &str, command: &[&str]) -> std::process::Output {
    let mut args = vec!["exec", container];
    args.extend_from_slice(command);
    docker(&args)
}

/// Waits for the service's task to have a running container; returns its id.
async fn running_container(runtime: &Runtime, tenant: &TenantId) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let cell = runtime.inspect_service(tenant).await.unwrap().unwrap();
        if cell.task_state.as_deref() == Some("running")
            && let Some(container) = cell.container_id
        {
            return container;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the task never ran: {cell:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Whether `url` answers 200 to a GET from inside `container`, by the image's
/// own Node (busybox's static `wget` was seen to crash in these images).
fn fetch_ok(container: &str, url: &str) -> std::process::Output {
    let script = format!(
        "fetch({url:?}, {{ signal: AbortSignal.timeout(5000) }}).then(r => process.exit(r.status === 200 ? 0 : 1), e => {{ console.error(String(e)); process.exit(1); }})"
    );
    exec(container, &["node", "-e", &script])
}

/// Waits for `/healthz` inside the cell (the gateway has no published port).
async fn healthy(container: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    loop {
        let output = fetch_ok(container, "http://127.0.0.1:18789/healthz");
        if output.status.success() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the gateway never answered /healthz; its log:\n{}",
            String::from_utf8_lossy(&docker(&["logs", "--tail", "40", container]).stderr)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `mtp node list --json`'s one node.
fn the_node(env: &TestEnv) -> serde_json::Value {
    let output = env.mtp(&["node", "list", "--json"]);
    assert_ok(&output);
    let nodes = json(&output);
    assert_eq!(nodes.as_array().map(Vec::len), Some(1), "{nodes}");
    nodes[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_cell_runs_as_a_swarm_service_with_its_secrets_as_files() {
    let runtime = Runtime::connect(None).await.unwrap();
    // A tenant of the single-host engine, to be found on its node before and
    // in the swarm.
    let env = TestEnv::new("swarm", 22000, "60s");
    let local = env.tenant("local");
    assert_ok(&env.create(&local, &["--image", FAKE_IMAGE]));
    let engine = the_node(&env);
    assert_eq!(engine["role"], "engine", "{engine}");
    assert_eq!(engine["tenants"], serde_json::json!([local]), "{engine}");
    assert!(
        engine["memory_bytes"].as_u64().unwrap() > 1 << 30,
        "{engine}"
    );
    assert!(
        engine["reserved_bytes"].as_u64().unwrap() >= 1 << 30,
        "{engine}"
    );
    let (memory, reserved) = (
        engine["memory_bytes"].as_u64().unwrap(),
        engine["reserved_bytes"].as_u64().unwrap(),
    );
    assert_eq!(
        engine["free_bytes"].as_u64().unwrap(),
        memory.saturating_sub(1 << 30).saturating_sub(reserved),
        "{engine}"
    );
    let text = stdout(&env.mtp(&["node", "list"]));
    assert!(text.contains("(engine)") && text.contains(&local), "{text}");
    let hostname = engine["hostname"].as_str().unwrap();
    assert!(
        text.contains(&format!("a new tenant's cell would go to {hostname}")),
        "{text}"
    );

    let mut swarm = SingleNodeSwarm::join(&runtime).await;
    let tenant: TenantId = "swarm-acme".parse().unwrap();
    let spec = spec(&tenant);
    // Whatever a failure leaves of this test goes with the swarm.
    let standin = format!("{}-admin", tenant.cell_name());
    swarm.cleanup = vec![
        vec!["rm".into(), "-f".into(), standin.clone()],
        vec!["service".into(), "rm".into(), tenant.cell_name()],
        vec!["network".into(), "rm".into(), standin.clone()],
    ];
    for volume in &spec.volumes {
        let name = volume.volume_name(&tenant);
        // After the service's containers are gone (the swarm's leave).
        swarm
            .cleanup
            .push(vec!["volume".into(), "rm".into(), "-f".into(), name]);
    }

    let manager = the_node(&env);
    assert_eq!(
        (&manager["role"], &manager["leader"], &manager["state"]),
        (
            &serde_json::json!("manager"),
            &serde_json::json!(true),
            &serde_json::json!("ready")
        ),
        "{manager}"
    );
    assert_eq!(manager["tenants"], serde_json::json!([local]), "{manager}");

    let nodes = runtime.nodes().await.unwrap();
    assert_eq!(nodes.len(), 1, "{nodes:?}");
    let node = &nodes[0];
    assert_eq!(
        (node.role.as_str(), node.leader, node.state.as_str()),
        ("manager", true, "ready"),
        "{node:?}"
    );
    assert!(node.memory_bytes > 1 << 30, "{node:?}");

    // The state volume gets its config before the first start, by a job.
    let config = br#"{ gateway: { mode: "local", auth: { mode: "token" } }, update: { checkOnStart: false } }"#;
    runtime
        .seed_volume(
            &tenant,
            OPENCLAW_IMAGE,
            Some(&node.id),
            &spec.volumes[0],
            &[SeedFile {
                path: "openclaw.json".to_string(),
                bytes: config.to_vec(),
                mode: 0o600,
            }],
            Duration::from_secs(120),
        )
        .await
        .unwrap();
    runtime
        .seed_volume(
            &tenant,
            OPENCLAW_IMAGE,
            Some(&node.id),
            &spec.volumes[1],
            &[],
            Duration::from_secs(120),
        )
        .await
        .unwrap();

    let spec = SwarmCellSpec {
        node: Some(node.id.clone()),
        ..spec
    };
    runtime.create_service(&spec).await.unwrap();
    let made = runtime.inspect_service(&tenant).await.unwrap().unwrap();
    assert_eq!(made.replicas, 0, "made, not started: {made:?}");
    assert!(runtime.start_service(&tenant).await.unwrap());
    assert!(
        !runtime.start_service(&tenant).await.unwrap(),
        "already one replica"
    );
    let container = running_container(&runtime, &tenant).await;
    healthy(&container).await;

    // Its log, from the service (the way to a task on any node).
    let logs = runtime
        .service_logs(&tenant, Some(200), None)
        .await
        .unwrap();
    let text: Vec<&str> = logs.iter().map(|l| l.text.as_str()).collect();
    assert!(
        text.iter().any(|line| line.contains("18789")),
        "the gateway's start in the service log:\n{}",
        text.join("\n")
    );
    assert!(logs.len() <= 200);
    for line in &text {
        assert!(!line.contains(GATEWAY_TOKEN) && !line.contains(BOT_TOKEN));
    }

    // No port published anywhere, no secret in any inspect or env.
    let cell = runtime.inspect_service(&tenant).await.unwrap().unwrap();
    assert!(cell.published_ports.is_empty(), "{cell:?}");
    assert!(
        !cell.env_names.iter().any(|name| name.ends_with("_TOKEN")),
        "{cell:?}"
    );
    let service_json = stdout(&docker(&["service", "inspect", &tenant.cell_name()]));
    let container_json = stdout(&docker(&["container", "inspect", &container]));
    for text in [&service_json, &container_json] {
        assert!(!text.contains(GATEWAY_TOKEN) && !text.contains(BOT_TOKEN));
    }
    let inspected: serde_json::Value = serde_json::from_str(&container_json).unwrap();
    let host = &inspected[0]["HostConfig"];
    assert_eq!(host["PortBindings"].as_object().map_or(0, |p| p.len()), 0);
    assert_eq!(host["Memory"], 2i64 << 30);
    assert_eq!(host["NanoCpus"], 1_500_000_000i64);
    assert_eq!(host["PidsLimit"], 512);
    assert_eq!(host["Init"], true);
    assert_eq!(host["ReadonlyRootfs"], true);
    assert!(
        host["CapDrop"]
            .as_array()
            .is_some_and(|caps| caps.iter().any(|c| c == "ALL")),
        "{host}"
    );
    let networks = inspected[0]["NetworkSettings"]["Networks"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect::<Vec<_>>();
    assert_eq!(networks, [tenant.cell_name()], "its own overlay only");
    let overlay = stdout(&docker(&[
        "network",
        "inspect",
        "-f",
        "{{.Driver}} {{.Attachable}} {{range .IPAM.Config}}{{.Subnet}}{{end}}",
        &tenant.cell_name(),
    ]));
    assert_eq!(overlay.trim(), "overlay true 10.238.0.0/28");
    // The secrets are files of the gateway's user, readable by it alone.
    let listing = stdout(&exec(&container, &["ls", "-ln", "/run/secrets"]));
    for variable in ["OPENCLAW_GATEWAY_TOKEN", "TELEGRAM_BOT_TOKEN"] {
        let line = listing
            .lines()
            .find(|line| line.ends_with(variable))
            .unwrap_or_else(|| panic!("no {variable} in /run/secrets:\n{listing}"));
        assert!(
            line.starts_with("-r-------- ") && line.contains(" 1000 "),
            "{line}"
        );
    }
    // The seeded config is the gateway's own, in its 0700 state dir.
    let state = stdout(&exec(&container, &["ls", "-lnd", "/home/node/.openclaw"]));
    assert!(
        state.starts_with("drwx------") && state.contains(" 1000 "),
        "{state}"
    );
    println!(
        "no-new-privileges kept by this engine's Swarm: {}",
        cell.no_new_privileges
    );

    // A container standing in for the admin joins the tenant's overlay and
    // reaches the gateway by the service's name, with nothing published. It
    // starts on an internal network of its own (no way out, and Docker's
    // embedded DNS answers the service's name once it is on the overlay).
    docker(&["rm", "-f", &standin]);
    docker(&["network", "rm", &standin]);
    common::docker_ok(&["network", "create", "--internal", &standin]);
    let started = docker(&[
        "run",
        "-d",
        "--name",
        &standin,
        "--network",
        &standin,
        "--user",
        "1000:1000",
        "--cap-drop",
        "ALL",
        "--entrypoint",
        "sleep",
        OPENCLAW_IMAGE,
        "600",
    ]);
    assert!(
        started.status.success(),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );
    let standin_id = stdout(&started).trim().to_string();
    assert!(
        runtime
            .join_cell_network(&tenant, &standin_id)
            .await
            .unwrap()
    );
    assert!(
        !runtime
            .join_cell_network(&tenant, &standin_id)
            .await
            .unwrap()
    );
    // The overlay's routes in the joined container are set up a moment after
    // the join returns (seen: "No route to host" at once, on a loaded machine).
    let by_name = format!("http://{}:18789/healthz", tenant.cell_name());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let reached = fetch_ok(&standin_id, &by_name);
        if reached.status.success() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the gateway by name over the overlay: {}",
            String::from_utf8_lossy(&reached.stderr)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    docker(&["rm", "-f", &standin]);
    docker(&["network", "rm", &standin]);

    // Swarm's own chains (ingress) do not go before the egress rule.
    let forward = std::process::Command::new("iptables")
        .args(["-S", "FORWARD"])
        .output()
        .unwrap();
    let forward = String::from_utf8_lossy(&forward.stdout).to_string();
    assert_eq!(
        forward.lines().nth(1),
        Some("-A FORWARD -j DOCKER-USER"),
        "{forward}"
    );

    let listed = runtime.list_services().await.unwrap();
    assert!(
        listed.contains(&(tenant.clone(), Some(node.id.clone()))),
        "{listed:?}"
    );

    // Stop and start by the replica count; the state outlives the task.
    assert!(runtime.stop_service(&tenant).await.unwrap());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while exec(&container, &["true"]).status.success() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the task never stopped"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(runtime.start_service(&tenant).await.unwrap());
    let again = running_container(&runtime, &tenant).await;
    assert_ne!(again, container, "a new task");
    healthy(&again).await;

    // Removal takes the service, its secrets, its network and its volumes.
    assert!(
        runtime
            .remove_service(&tenant, &spec.volumes)
            .await
            .unwrap()
    );
    assert!(runtime.inspect_service(&tenant).await.unwrap().is_none());
    let left = stdout(&docker(&[
        "secret",
        "ls",
        "-q",
        "--filter",
        &format!("label=mtp.tenant={tenant}"),
    ]));
    assert_eq!(left.trim(), "", "secrets left");
    assert!(
        !docker(&["network", "inspect", &tenant.cell_name()])
            .status
            .success()
    );
    for volume in &spec.volumes {
        assert!(
            !docker(&["volume", "inspect", &volume.volume_name(&tenant)])
                .status
                .success()
        );
    }
    fleet_on_swarm(&mut swarm).await;
    admin_as_a_service(&mut swarm).await;

    drop(swarm);
    assert_eq!(runtime.swarm_role().await.unwrap(), SwarmRole::None);
    assert_ok(&env.mtp(&["tenant", "rm", &local, "--purge", "--yes"]));
    assert!(
        !docker(&["network", "inspect", "docker_gwbridge"])
            .status
            .success(),
        "the machine's Docker is left as it was found"
    );
}

/// The admin in a plain container on the swarm's manager (the README's
/// alternative to the stack), with its CLI run in that container (`docker
/// exec`): it joins each tenant's overlay and reaches the gateway by the
/// service's name.
struct AdminContainer {
    name: String,
    env: TestEnv,
    /// The fake Bot API, listening in the admin container's own network
    /// namespace (its loopback), with the admin bot on it; held, as it
    /// serves until dropped.
    _telegram: common::fake_telegram::FakeTelegram,
    bot: common::fake_telegram::FakeBot,
}

const ADMIN_TOKEN: &str = "7100000001:AASwarmAdminBotTokenForTests_abcdefg";
const OPERATOR: u64 = 4242;
const OPS_CHAT: teloxide::types::ChatId = teloxide::types::ChatId(-1_000_777);

/// A listener on 127.0.0.1 of `container`'s network namespace: a thread of
/// this process enters it just to make the socket, which stays there.
fn listener_inside(container: &str) -> std::net::TcpListener {
    let pid = stdout(&docker(&["inspect", "-f", "{{.State.Pid}}", container]))
        .trim()
        .to_string();
    let path = format!("/proc/{pid}/ns/net");
    std::thread::spawn(move || {
        use std::os::fd::AsRawFd;
        let namespace = std::fs::File::open(&path).expect("the container's network namespace");
        // SAFETY: setns on a valid, open namespace descriptor; it moves only
        // this short-lived thread, which makes one socket and ends.
        let entered = unsafe { libc::setns(namespace.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(entered, 0, "setns: {}", std::io::Error::last_os_error());
        std::net::TcpListener::bind(("127.0.0.1", 0)).expect("a port inside the container")
    })
    .join()
    .expect("the thread that made the listener")
}

impl AdminContainer {
    async fn start(swarm: &mut SingleNodeSwarm) -> AdminContainer {
        let env = TestEnv::new("swarm-fleet", 22040, "180s");
        let name = "mtp-swarm-test-admin".to_string();
        let network = format!("{name}-net");
        swarm
            .cleanup
            .insert(0, vec!["rm".into(), "-f".into(), name.clone()]);
        swarm
            .cleanup
            .push(vec!["network".into(), "rm".into(), network.clone()]);
        docker(&["rm", "-f", &name]);
        docker(&["network", "rm", &network]);
        // No way out but the overlays it joins.
        common::docker_ok(&["network", "create", "--internal", &network]);
        let binary = env!("CARGO_BIN_EXE_mtp");
        let dir = env.dir.display().to_string();
        let started = docker(&[
            "run",
            "-d",
            "--name",
            &name,
            "--network",
            &network,
            "--user",
            "0:0",
            "-v",
            &format!("{binary}:/usr/local/bin/mtp:ro"),
            "-v",
            "/var/run/docker.sock:/var/run/docker.sock",
            "-v",
            &format!("{dir}:{dir}"),
            "--entrypoint",
            "sleep",
            OPENCLAW_IMAGE,
            "3600",
        ]);
        assert!(
            started.status.success(),
            "{}",
            String::from_utf8_lossy(&started.stderr)
        );
        let telegram = common::fake_telegram::FakeTelegram::start_on(listener_inside(&name)).await;
        let bot = telegram.add_bot(ADMIN_TOKEN, 7_100_000_001, "mtp_swarm_admin_bot");
        let config = format!(
            r#"{{
  dataDir: "{data}",
  cell: {{
    engine: "swarm",
    image: "{OPENCLAW_IMAGE}",
    portStart: 22040,
    portEnd: 22059,
    memory: "1g",
    cpus: 1.5,
    healthTimeout: "180s",
    subnetPool: "10.237.0.0/16",
    telegramApiRoot: "http://127.0.0.1:9",
    extraEnv: {{ OPENCLAW_OFFLINE: "1" }},
  }},
  backup: {{ schedule: "off" }},
  telegram: {{ apiUrl: "{api}", operators: [{OPERATOR}], opsChatId: {ops} }},
  monitor: {{ interval: "2s", downAfter: 2, probeTimeout: "3s", heal: false, httpAddr: "127.0.0.1:0" }},
}}"#,
            data = env.data_dir().display(),
            api = telegram.url(),
            ops = OPS_CHAT.0,
        );
        std::fs::write(&env.config_path, config).unwrap();
        AdminContainer {
            name,
            env,
            _telegram: telegram,
            bot,
        }
    }

    /// Starts `mtp serve` in the admin's container, beside the CLI's
    /// commands (its output in the test dir).
    fn serve(&self) {
        let script = format!(
            "echo $$ > {pid}; exec /usr/local/bin/mtp --config {config} serve > {log} 2>&1",
            pid = self.env.dir.join("serve.pid").display(),
            config = self.env.config_path.display(),
            log = self.env.dir.join("serve.log").display(),
        );
        // The token as a file (a Docker secret's way), 0600.
        let token_file = self.env.dir.join("admin-bot-token");
        {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&token_file)
                .unwrap();
            file.write_all(ADMIN_TOKEN.as_bytes()).unwrap();
        }
        common::docker_ok(&[
            "exec",
            "-d",
            "-e",
            &format!("MTP_TELEGRAM_TOKEN_FILE={}", token_file.display()),
            "-w",
            "/tmp",
            &self.name,
            "sh",
            "-c",
            &script,
        ]);
    }

    fn serve_log(&self) -> String {
        std::fs::read_to_string(self.env.dir.join("serve.log")).unwrap_or_default()
    }

    fn stop_serving(&self) {
        let pid = self.env.dir.join("serve.pid").display().to_string();
        docker(&[
            "exec",
            &self.name,
            "sh",
            "-c",
            &format!("kill $(cat {pid})"),
        ]);
    }

    /// `mtp --config … args` in the admin's container.
    fn mtp(&self, args: &[&str]) -> std::process::Output {
        let config = self.env.config_path.display().to_string();
        let mut all = vec![
            "exec",
            "-w",
            "/tmp",
            &self.name,
            "/usr/local/bin/mtp",
            "--config",
            &config,
        ];
        all.extend_from_slice(args);
        docker(&all)
    }

    fn show(&self, tenant: &str) -> serde_json::Value {
        let output = self.mtp(&["tenant", "show", tenant, "--json"]);
        assert_ok(&output);
        json(&output)
    }

    fn secret_file(&self, tenant: &str, variable: &str) -> String {
        std::fs::read_to_string(
            self.env
                .data_dir()
                .join("tenants")
                .join(tenant)
                .join("secrets")
                .join(variable),
        )
        .unwrap()
    }
}

impl Drop for AdminContainer {
    fn drop(&mut self) {
        docker(&["rm", "-f", &self.name]);
    }
}

/// The tenant runs, its gateway is healthy and the admin paired with it.
#[track_caller]
fn assert_serving(admin: &AdminContainer, id: &str) {
    assert_running_paired(&admin.show(id));
}

/// A tenant's `show --json`: running, healthy and paired.
fn assert_running_paired(shown: &serde_json::Value) {
    assert_eq!(
        (&shown["state"], &shown["health"], &shown["paired"]),
        (
            &serde_json::json!("running"),
            &serde_json::json!("ok"),
            &serde_json::json!(true)
        ),
        "{shown}"
    );
}

/// A tenant's task container on this node, once it runs.
fn task_container(tenant: &str) -> String {
    let label = format!("label=com.docker.swarm.service.name=mtp-cell-{tenant}");
    stdout(&docker(&["ps", "-q", "--filter", &label]))
        .trim()
        .to_string()
}

async fn fleet_on_swarm(swarm: &mut SingleNodeSwarm) {
    let admin = AdminContainer::start(swarm).await;
    let id = admin.env.tenant("acme");
    let cell = format!("mtp-cell-{id}");
    swarm
        .cleanup
        .insert(1, vec!["service".into(), "rm".into(), cell.clone()]);
    for suffix in ["state", "auth"] {
        swarm.cleanup.push(vec![
            "volume".into(),
            "rm".into(),
            "-f".into(),
            format!("{cell}-{suffix}"),
        ]);
    }
    swarm
        .cleanup
        .push(vec!["network".into(), "rm".into(), cell.clone()]);
    let token_file = admin.env.token_file().display().to_string();

    // Create to paired: the admin's device was approved in the seeded state,
    // and the admin reached the gateway over the overlay by name.
    let created = admin.mtp(&["tenant", "create", &id, "--bot-token-file", &token_file]);
    assert_ok(&created);
    assert_serving(&admin, &id);
    let gateway_token = admin.secret_file(&id, "OPENCLAW_GATEWAY_TOKEN");
    let service_json = stdout(&docker(&["service", "inspect", &cell]));
    assert!(!service_json.contains(&gateway_token) && !service_json.contains(common::BOT_TOKEN));
    let service: serde_json::Value = serde_json::from_str(&service_json).unwrap();
    assert!(
        service[0]["Endpoint"]["Ports"]
            .as_array()
            .is_none_or(Vec::is_empty),
        "no published port: {}",
        service[0]["Endpoint"]
    );
    let task = task_container(&id);
    let task_json = stdout(&docker(&["container", "inspect", &task]));
    assert!(!task_json.contains(&gateway_token) && !task_json.contains(common::BOT_TOKEN));
    let attached = stdout(&docker(&[
        "inspect",
        "-f",
        "{{range $name, $_ := .NetworkSettings.Networks}}{{$name}} {{end}}",
        &admin.name,
    ]));
    assert!(
        attached.contains(&cell),
        "the admin joined {cell}: {attached}"
    );

    // The log comes from the service.
    let logs = admin.mtp(&["tenant", "logs", &id, "--tail", "200"]);
    assert_ok(&logs);
    let text = stdout(&logs);
    assert!(text.contains("18789"), "{text}");
    assert!(!text.contains(&gateway_token));

    // Usage over the overlay, through the gateway's RPC.
    assert_ok(&admin.mtp(&["usage", "collect", &id]));

    // Stop (no task), start (a new task, the same state: still paired).
    assert_ok(&admin.mtp(&["tenant", "stop", &id]));
    assert_eq!(task_container(&id), "", "no task runs once stopped");
    assert_eq!(admin.show(&id)["state"], "stopped");
    assert_ok(&admin.mtp(&["tenant", "start", &id]));
    let shown = admin.show(&id);
    assert_eq!(
        (&shown["health"], &shown["paired"]),
        (&serde_json::json!("ok"), &serde_json::json!(true)),
        "{shown}"
    );
    let started = task_container(&id);
    assert_ne!(started, task);

    // Restart: a new task again.
    assert_ok(&admin.mtp(&["tenant", "restart", &id]));
    assert_eq!(admin.show(&id)["health"], "ok");
    assert_ne!(task_container(&id), started);

    // Sleep: the usage read, the service at zero replicas; a wake brings the
    // gateway back on the same state, still paired.
    assert_ok(&admin.mtp(&["tenant", "sleep", &id]));
    assert_eq!(admin.show(&id)["state"], "sleeping");
    assert_eq!(task_container(&id), "", "no task runs while it sleeps");
    assert_ok(&admin.mtp(&["tenant", "wake", &id]));
    assert_serving(&admin, &id);

    // An upgrade to an image whose gateway cannot start is rolled back onto
    // the same volumes; the tenant is healthy and paired on its old image.
    let upgrade = admin.mtp(&["tenant", "upgrade", &id, "--image", common::CRASH_IMAGE]);
    assert!(!upgrade.status.success(), "{}", stdout(&upgrade));
    let said = format!("{}{}", stdout(&upgrade), common::stderr(&upgrade));
    assert!(said.contains("rolled back"), "{said}");
    let shown = admin.show(&id);
    assert_eq!(
        (&shown["health"], &shown["paired"], &shown["image"]),
        (
            &serde_json::json!("ok"),
            &serde_json::json!(true),
            &serde_json::json!(OPENCLAW_IMAGE)
        ),
        "{shown}"
    );

    // A backup reads the volumes on the cell's node; a restore over the
    // tenant writes them back: the file the client had at the backup returns.
    let proof = "/home/node/.openclaw/mtp-proof.txt";
    let write_proof = |text: &str| {
        let task = task_container(&id);
        let wrote = exec(&task, &["sh", "-c", &format!("printf {text} > {proof}")]);
        assert!(wrote.status.success(), "{}", common::stderr(&wrote));
    };
    let read_proof = || stdout(&exec(&task_container(&id), &["cat", proof]));
    write_proof("at-the-backup");
    let backup = admin.mtp(&["backup", "create", &id, "--json"]);
    assert_ok(&backup);
    let backup = json(&backup);
    println!("backup of a Swarm cell: {backup}");
    assert!(backup["data_bytes"].as_u64().unwrap() > 1000, "{backup}");
    let backup_id = backup["id"].as_str().unwrap().to_string();
    write_proof("after-the-backup");
    let restored = admin.mtp(&["backup", "restore", &backup_id, "--replace"]);
    assert_ok(&restored);
    let shown = admin.show(&id);
    assert_eq!(
        (&shown["health"], &shown["paired"]),
        (&serde_json::json!("ok"), &serde_json::json!(true)),
        "{shown}"
    );
    assert_eq!(read_proof(), "at-the-backup");

    // A move (to the node it is on: one machine) runs every step of one
    // between nodes: stop, the volumes read out and written back by jobs,
    // the cell made again there, healthy and still paired.
    let hostname = stdout(&docker(&["info", "-f", "{{.Name}}"]))
        .trim()
        .to_string();
    let before = task_container(&id);
    let moved = admin.mtp(&["tenant", "move", &id, "--node", &hostname, "--json"]);
    assert_ok(&moved);
    let moved = json(&moved);
    println!("move to its own node: {moved}");
    assert_eq!(
        (&moved["from"], &moved["to"]),
        (&serde_json::json!(hostname), &serde_json::json!(hostname)),
        "{moved}"
    );
    assert!(moved["bytes"].as_u64().unwrap() > 1000, "{moved}");
    assert!(moved["down_ms"].as_u64().unwrap() > 0, "{moved}");
    let shown = admin.show(&id);
    assert_eq!(
        (&shown["health"], &shown["paired"]),
        (&serde_json::json!("ok"), &serde_json::json!(true)),
        "{shown}"
    );
    assert_ne!(task_container(&id), before);
    assert_eq!(read_proof(), "at-the-backup");
    let refused = admin.mtp(&["tenant", "move", &id, "--node", "no-such-node"]);
    common::assert_fails_with(&refused, 2, "no node \"no-such-node\"");

    // Draining the only node finds no other for the tenant, and says so.
    let drain = admin.mtp(&["node", "drain", &hostname, "--json"]);
    assert_eq!(drain.status.code(), Some(1), "{}", stdout(&drain));
    let drain: serde_json::Value = serde_json::from_slice(&drain.stdout).unwrap();
    assert_eq!(drain["failed"]["tenant"], serde_json::json!(id), "{drain}");
    assert!(
        drain["failed"]["error"]
            .as_str()
            .unwrap()
            .contains("the only node of the swarm"),
        "{drain}"
    );
    assert_eq!(admin.show(&id)["health"], "ok");

    // The monitor in `mtp serve` (in the admin's container, its bot on the
    // fake Bot API there): a crash inside the cell, its gateway killed, is
    // reported, and so is its return once Swarm's new task answers.
    admin.serve();
    if let Err(err) = admin.bot.wait_for_poll(Duration::from_secs(90)).await {
        panic!("serve never polled: {err}; its log:\n{}", admin.serve_log());
    }
    let tenant: TenantId = id.parse().unwrap();
    let crashed = exec(
        &task_container(&id),
        &[
            "sh",
            "-c",
            r#"for d in /proc/[0-9]*; do set -- $(cat $d/stat 2>/dev/null); if [ "$4" = 1 ]; then kill -9 $1; fi; done"#,
        ],
    );
    assert!(crashed.status.success(), "{}", common::stderr(&crashed));
    let alert = admin
        .bot
        .wait_for_message(OPS_CHAT, Duration::from_secs(120), |m| {
            m.text.contains("crashed") && m.text.contains(tenant.as_str())
        })
        .await
        .unwrap_or_else(|err| panic!("{err}; serve's log:\n{}", admin.serve_log()));
    assert!(!alert.text.contains(&gateway_token), "{}", alert.text);
    admin
        .bot
        .wait_for_message(OPS_CHAT, Duration::from_secs(240), |m| {
            m.text.contains("is back") && m.text.contains(tenant.as_str())
        })
        .await
        .unwrap_or_else(|err| panic!("{err}; serve's log:\n{}", admin.serve_log()));
    assert_eq!(admin.show(&id)["health"], "ok");
    // The crash is history, not a reason to fail the next start's health
    // wait (Swarm keeps the failed task a while).
    assert_ok(&admin.mtp(&["tenant", "restart", &id]));
    assert_serving(&admin, &id);
    admin.stop_serving();

    // Removal with the data: service, secrets, overlay and volumes.
    assert_ok(&admin.mtp(&["tenant", "rm", &id, "--purge", "--yes"]));
    assert!(!docker(&["service", "inspect", &cell]).status.success());
    assert!(!docker(&["network", "inspect", &cell]).status.success());
    for suffix in ["state", "auth"] {
        assert!(
            !docker(&["volume", "inspect", &format!("{cell}-{suffix}")])
                .status
                .success()
        );
    }
    let left = stdout(&docker(&[
        "secret",
        "ls",
        "-q",
        "--filter",
        &format!("label=mtp.tenant={id}"),
    ]));
    assert_eq!(left.trim(), "", "secrets left");
}

/// The task container of a service on this node, once it runs.
async fn service_task(service: &str, what: &str) -> String {
    let label = format!("label=com.docker.swarm.service.name={service}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let ids = stdout(&docker(&[
            "ps",
            "-q",
            "--filter",
            &label,
            "--filter",
            "status=running",
        ]));
        if let Some(id) = ids.lines().next() {
            return id.trim().to_string();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} never ran: {}",
            stdout(&docker(&["service", "ps", "--no-trunc", service]))
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The admin as the README deploys it on a swarm: a service from the
/// repository's `stack.yml`, on its node's host network, `mtp serve` in it and
/// the CLI run in its task by `docker exec`. Swarm does not let the task join
/// the tenants' overlays, so the admin starts its relay beside it and reaches
/// the cell through it: pairing, health, the bot's `/health` and removal.
async fn admin_as_a_service(swarm: &mut SingleNodeSwarm) {
    const STACK: &str = "mtptest";
    const SERVICE: &str = "mtptest_admin";
    const IMAGE: &str = "mtp-test/admin:swarm";
    const SECRET: &str = "mtp_telegram_token";
    let env = TestEnv::new("swarm-service", 22060, "180s");
    let id = env.tenant("svc");
    let cell = format!("mtp-cell-{id}");
    let node = stdout(&docker(&["info", "-f", "{{.Swarm.NodeID}}"]))
        .trim()
        .to_string();
    // Before the swarm's own cleanup: the stack, then what the admin made.
    for (at, command) in [
        vec!["stack", "rm", STACK],
        vec!["service", "rm", &cell],
        vec!["rm", "-f", mtp::runtime::RELAY],
    ]
    .into_iter()
    .enumerate()
    {
        swarm
            .cleanup
            .insert(at, command.into_iter().map(String::from).collect());
    }
    for command in [
        vec![
            "network".to_string(),
            "rm".into(),
            mtp::runtime::RELAY.into(),
        ],
        vec!["network".into(), "rm".into(), cell.clone()],
        vec![
            "volume".into(),
            "rm".into(),
            "-f".into(),
            format!("{cell}-state"),
        ],
        vec![
            "volume".into(),
            "rm".into(),
            "-f".into(),
            format!("{cell}-auth"),
        ],
        vec!["secret".into(), "rm".into(), SECRET.into()],
        vec![
            "node".into(),
            "update".into(),
            "--label-rm".into(),
            "mtp.admin".into(),
            node.clone(),
        ],
        vec!["image".into(), "rm".into(), IMAGE.into()],
    ] {
        swarm.cleanup.push(command);
    }

    // The admin's image: the test's OpenClaw image with this build's binary.
    let context = env.dir.join("admin-image");
    std::fs::create_dir_all(&context).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_mtp"), context.join("mtp")).unwrap();
    std::fs::write(
        context.join("Dockerfile"),
        format!(
            "FROM {OPENCLAW_IMAGE}\nCOPY mtp /usr/local/bin/mtp\nENTRYPOINT [\"/usr/local/bin/mtp\"]\nCMD [\"serve\"]\n"
        ),
    )
    .unwrap();
    common::docker_ok(&["build", "-q", "-t", IMAGE, &context.display().to_string()]);

    // Its Bot API on the host's loopback, which the service shares.
    let telegram = common::fake_telegram::FakeTelegram::start().await;
    let bot = telegram.add_bot(ADMIN_TOKEN, 7_100_000_001, "mtp_swarm_admin_bot");
    let data = env.data_dir();
    std::fs::create_dir_all(&data).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    // The service reads `./mtp.json5` in its data dir (stack.yml's working dir).
    std::fs::write(
        data.join("mtp.json5"),
        format!(
            r#"{{
  cell: {{
    image: "{OPENCLAW_IMAGE}",
    portStart: 22060,
    portEnd: 22079,
    memory: "1g",
    cpus: 1.5,
    healthTimeout: "180s",
    subnetPool: "10.238.0.0/16",
    telegramApiRoot: "http://127.0.0.1:9",
    extraEnv: {{ OPENCLAW_OFFLINE: "1" }},
  }},
  backup: {{ schedule: "off" }},
  telegram: {{ apiUrl: "{api}" }},
  monitor: {{ interval: "2s", downAfter: 2, probeTimeout: "3s", heal: false, httpAddr: "127.0.0.1:0" }},
}}"#,
            api = telegram.url(),
        ),
    )
    .unwrap();
    let bot_token = data.join("client-bot-token");
    std::fs::copy(env.token_file(), &bot_token).unwrap();
    let admin_token = env.dir.join("admin-bot-token");
    std::fs::write(&admin_token, ADMIN_TOKEN).unwrap();
    common::docker_ok(&[
        "secret",
        "create",
        SECRET,
        &admin_token.display().to_string(),
    ]);
    common::docker_ok(&["node", "update", "--label-add", "mtp.admin=true", &node]);

    let stack_file = concat!(env!("CARGO_MANIFEST_DIR"), "/stack.yml");
    let deployed = std::process::Command::new("docker")
        .args([
            "stack",
            "deploy",
            "--resolve-image",
            "never",
            "-c",
            stack_file,
            STACK,
        ])
        .env("MTP_IMAGE", IMAGE)
        .env("MTP_DATA_DIR", &data)
        .env("MTP_OPERATORS", OPERATOR.to_string())
        .env("MTP_OPS_CHAT_ID", OPS_CHAT.0.to_string())
        .output()
        .unwrap();
    assert_ok(&deployed);
    let task = service_task(SERVICE, "the admin service").await;
    if let Err(err) = bot.wait_for_poll(Duration::from_secs(120)).await {
        panic!(
            "the admin service never polled: {err}; its log:\n{}",
            common::stderr(&docker(&["service", "logs", "--raw", SERVICE]))
        );
    }
    let task_info: serde_json::Value =
        serde_json::from_str(&stdout(&docker(&["inspect", &task]))).unwrap();
    assert_eq!(
        task_info[0]["HostConfig"]["NetworkMode"], "host",
        "{task_info}"
    );
    let mtp = |args: &[&str]| {
        let mut all = vec!["exec", task.as_str(), "mtp"];
        all.extend_from_slice(args);
        docker(&all)
    };

    // Create to paired, the gateway reached through the relay.
    let token_path = bot_token.display().to_string();
    let created = mtp(&["tenant", "create", &id, "--bot-token-file", &token_path]);
    assert_ok(&created);
    assert_running_paired(&json(&mtp(&["tenant", "show", &id, "--json"])));
    let relay: serde_json::Value =
        serde_json::from_str(&stdout(&docker(&["inspect", mtp::runtime::RELAY]))).unwrap();
    let relay = &relay[0];
    assert_eq!(relay["Config"]["Labels"]["mtp.role"], "relay", "{relay}");
    assert!(
        relay["NetworkSettings"]["Networks"][&cell].is_object(),
        "the relay joined the overlay: {relay}"
    );
    assert!(
        relay["NetworkSettings"]["Ports"]
            .as_object()
            .is_none_or(|ports| ports.values().all(serde_json::Value::is_null)),
        "nothing published: {relay}"
    );
    assert_eq!(relay["HostConfig"]["ReadonlyRootfs"], true, "{relay}");
    assert_eq!(
        relay["HostConfig"]["CapDrop"],
        serde_json::json!(["ALL"]),
        "{relay}"
    );
    assert!(
        task_info[0]["NetworkSettings"]["Networks"][&cell].is_null(),
        "the admin's task is on no overlay"
    );

    // `mtp serve` in the service sees the cell healthy: the bot's /health.
    let operator_chat = teloxide::types::ChatId(i64::try_from(OPERATOR).unwrap());
    let operator = teloxide::types::UserId(OPERATOR);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        bot.push_message(operator_chat, operator, "/health");
        let reply = bot
            .next_message_to(operator_chat, Duration::from_secs(30))
            .await
            .unwrap_or_else(|err| panic!("{err}"));
        if reply.text.contains(&id) && reply.text.contains("ok (") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "serve never saw {id} healthy: {}",
            reply.text
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }

    // A new admin task (the service restarted) finds the relay and goes on.
    common::docker_ok(&["service", "update", "--force", "--detach=false", SERVICE]);
    let task = service_task(SERVICE, "the restarted admin service").await;
    let shown = json(&docker(&[
        "exec", &task, "mtp", "tenant", "show", &id, "--json",
    ]));
    assert_eq!(shown["health"], "ok", "{shown}");

    assert_ok(&docker(&[
        "exec", &task, "mtp", "tenant", "rm", &id, "--purge", "--yes",
    ]));
    assert!(!docker(&["service", "inspect", &cell]).status.success());
    common::docker_ok(&["stack", "rm", STACK]);
    drop(telegram);
}
