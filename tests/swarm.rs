//! Cells as Swarm services, on a single-node swarm made on this machine (its
//! advertise address on loopback) and left at the end: the real OpenClaw
//! image boots as a service from a volume seeded by a one-shot job, reads its
//! gateway token from a Docker secret (a `lan` gateway without one refuses to
//! start), publishes no port, and shows no secret in any inspect; it stops and
//! starts by its replica count, and goes with its secrets, network and volumes.

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
    let logs = runtime.service_logs(&tenant, Some(200)).await.unwrap();
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
