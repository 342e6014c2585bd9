//! One conformance suite for `mtp::gateway`, run against a real OpenClaw cell
//! (`mtp-test/openclaw:2026.9.6`) and a fake cell (`mtp-test/fake-gateway:1`). Both
//! are made by `fleet::create`, so both were paired through the real create flow.
//! Both of its paths are here: the real cell is paired by pre-approval (the
//! admin's device in `devices/paired.json` before its first start, imported by
//! the gateway: the first connect is `hello-ok`), and, in its own test, by the
//! fallback (`PairingRequired` → `docker exec … devices approve` → device token
//! stored), which the fake cell, ignoring `paired.json`, always takes.
//!
//! `check_all` is the suite: written once, with no branch on which cell it runs
//! against. The fake is trusted for fast and fleet-scale tests only because it passes
//! these assertions too. Where the test world limits the real cell (no Telegram, no
//! model key, no ClawHub), the fake is programmed through its control API to model
//! the same world, and the assertion says what both must do in it.
//!
//! Cost: one real boot (~20 to 50 s on a loaded 2-core machine) and one in-process
//! restart of it. Exactly one wrong gateway token and one wrong device token are
//! tried per cell: ten in a minute would lock the address out for five minutes.

mod common;

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use mtp::fleet::{self, Actor, App};
use mtp::gateway::{
    AgentScope, CallError, ChannelsQuery, Client, ConfigPatch, ConnectError, DeviceIdentity,
    Endpoint, Event, Options, Pool, Probe, SCOPES, SendMessage, SendOutcome, SkillInstall,
    SkillUpdate, State, UsagePeriod, UsageQuery,
};
use mtp::store::Store;
use mtp::tenant::{BotToken, DmPolicy, Secret, SecretKind, TenantId, TenantSpec};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use common::fake_gateway::control;
use common::{BOT_TOKEN, FAKE_IMAGE, OPENCLAW_IMAGE, TestEnv, json as output_json};

/// A real OpenClaw cell passes the suite (it is the reference).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_openclaw_cell_passes_the_conformance_suite() {
    let target = Target::create("gateway_conformance_real", 19800, OPENCLAW_IMAGE).await;
    check_all(&target).await;
}

/// With pre-approval off (or an OpenClaw that ignores `paired.json`), a real
/// cell is paired by `devices approve` in the cell, as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_cell_without_preapproval_is_paired_by_devices_approve() {
    let env = TestEnv::new("gateway_conformance_approve", 19840, "180s");
    let config = std::fs::read_to_string(&env.config_path).unwrap();
    let config = config.replacen("  cell: {", "  cell: {\n    preapprovePairing: false,", 1);
    std::fs::write(&env.config_path, config).unwrap();
    let target = Target::create_in(env, "gateway_conformance_approve_real", OPENCLAW_IMAGE).await;
    let devices = target
        .env
        .data_dir()
        .join("tenants")
        .join(target.tenant.as_str())
        .join("state/devices");
    assert!(
        !devices.join("paired.json.migrated").exists(),
        "nothing was pre-approved"
    );
    check_paired_from_scratch(&target).await;
}

/// The fake cell passes the same suite, in a world modelled like the real cell's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_cell_passes_the_same_conformance_suite() {
    let target = Target::create("gateway_conformance_fake", 19820, FAKE_IMAGE).await;
    let token = target.gateway_token();
    let token = token.expose();
    // The real cell's Telegram API root is a closed port and its egress is dropped:
    // its channel never runs, and every send is queued for retry.
    control(
        target.port(),
        token,
        reqwest::Method::PUT,
        "channels/telegram",
        json!({"running": false, "connected": false,
            "lastError": "Network request for 'getUpdates' failed!"}),
    )
    .await;
    check_all(&target).await;
}

/// One cell made by `fleet::create`, and the admin that made it. The suite
/// talks to the cell through the gateway module itself, with the admin's
/// device identity and the tokens create stored.
struct Target {
    name: &'static str,
    env: TestEnv,
    app: App,
    store: Store,
    identity: DeviceIdentity,
    /// A connection pool as the admin keeps one, for the suite's calls.
    pool: Pool,
    tenant: TenantId,
}

impl Target {
    /// The real OpenClaw cell (the reference), whose known upstream faults the
    /// suite works around; the fake gets no such allowance.
    fn is_real(&self) -> bool {
        self.name.ends_with("_real")
    }

    async fn create(name: &'static str, port_start: u16, image: &str) -> Target {
        Target::create_in(TestEnv::new(name, port_start, "180s"), name, image).await
    }

    async fn create_in(env: TestEnv, name: &'static str, image: &str) -> Target {
        let app = env.app().await;
        let tenant: TenantId = env.tenant("conf").parse().expect("a valid tenant id");
        let spec = TenantSpec {
            id: tenant.clone(),
            display_name: None,
            bot_token: BotToken::parse(BOT_TOKEN).expect("a token of the right shape"),
            provider_key: None,
            model: "anthropic/claude-opus-4-6".to_string(),
            image: Some(image.to_string()),
            limits: None,
            dm_policy: DmPolicy::Pairing,
            skills: None,
            bot_username: None,
            keep_failed: false,
        };
        let started = Instant::now();
        let view = fleet::create(&app, &Actor::System("conformance"), spec, &mut |_| {})
            .await
            .unwrap_or_else(|err| panic!("[{name}] create failed: {err:#}"));
        eprintln!("[{name}] create took {:?}", started.elapsed());
        assert!(
            view.record.paired,
            "[{name}] create returns a paired tenant"
        );
        let store = env.store();
        let identity = admin_identity(&env);
        let (pool, mut tokens) = Pool::new(identity.clone(), Options::default());
        // As the admin does: a device token the cell rotates is kept.
        let token_store = store.clone();
        tokio::spawn(async move {
            while let Some(issued) = tokens.recv().await {
                token_store
                    .put_secret(
                        &issued.tenant,
                        SecretKind::DeviceToken,
                        &issued.device_token,
                    )
                    .expect("store a rotated device token");
            }
        });
        let target = Target {
            name,
            env,
            app,
            store,
            identity,
            pool,
            tenant,
        };
        target.pool.set_endpoint(
            target.tenant.clone(),
            Endpoint {
                host: "127.0.0.1".to_string(),
                port: target.port(),
                gateway_token: target.gateway_token(),
                device_token: target.stored_device_token(),
            },
        );
        target
    }

    /// The cell's `devices/` dir, where pre-approval writes `paired.json`.
    fn devices_dir(&self) -> std::path::PathBuf {
        self.env
            .data_dir()
            .join("tenants")
            .join(self.tenant.as_str())
            .join("state/devices")
    }

    fn port(&self) -> u16 {
        self.store
            .tenant(&self.tenant)
            .expect("store readable")
            .expect("the tenant exists")
            .port
    }

    fn gateway_token(&self) -> Secret<String> {
        self.store
            .secret(&self.tenant, SecretKind::GatewayToken)
            .expect("store readable")
            .expect("create stored the gateway token")
    }

    fn stored_device_token(&self) -> Option<Secret<String>> {
        self.store
            .secret(&self.tenant, SecretKind::DeviceToken)
            .expect("store readable")
    }

    /// The tenant's pooled connection, as the admin's parts get theirs.
    async fn client(&self) -> Client {
        self.pool
            .client(&self.tenant)
            .await
            .unwrap_or_else(|err| panic!("[{}] no pooled client: {err:#}", self.name))
    }
}

/// The admin's device identity, as every admin process on this data dir loads it.
fn admin_identity(env: &TestEnv) -> DeviceIdentity {
    DeviceIdentity::load_or_create(&env.data_dir().join("device.key")).expect("device key loads")
}

/// The suite. The order matters only at the end: the restart and the admin restart
/// come last because they change the cell.
async fn check_all(target: &Target) {
    let started = Instant::now();
    step(
        target,
        "paired from scratch",
        check_paired_from_scratch(target),
    )
    .await;
    step(target, "hello-ok", check_hello(target)).await;
    step(target, "http probes", check_http_probes(target)).await;
    step(target, "typed reads", check_typed_reads(target)).await;
    step(target, "safe writes", check_safe_writes(target)).await;
    step(
        target,
        "config.patch round trip",
        check_config_patch_round_trip(target),
    )
    .await;
    step(
        target,
        "a new device needs pairing",
        check_new_device_needs_pairing(target),
    )
    .await;
    step(
        target,
        "token only: no scopes",
        check_token_only_has_no_scopes(target),
    )
    .await;
    step(target, "wrong credentials", check_wrong_credentials(target)).await;
    // With the real cell this step may restart the container (see the check).
    step_within(
        target,
        "restart-requiring patch",
        Duration::from_secs(240),
        check_restart_requiring_patch(target),
    )
    .await;
    step(
        target,
        "admin restart",
        check_device_token_survives_admin_restart(target),
    )
    .await;
    // Last: a wake queues agent work, which could hold back a restart.
    step(target, "hooks", check_hooks(target)).await;
    eprintln!("[{}] suite took {:?}", target.name, started.elapsed());
}

/// Runs one check within two minutes, naming it on failure and timing it.
async fn step(target: &Target, what: &str, check: impl Future<Output = ()>) {
    step_within(target, what, Duration::from_secs(120), check).await;
}

async fn step_within(
    target: &Target,
    what: &str,
    limit: Duration,
    check: impl Future<Output = ()>,
) {
    let started = Instant::now();
    if tokio::time::timeout(limit, check).await.is_err() {
        panic!("[{}] {what}: no result within {limit:?}", target.name);
    }
    eprintln!("[{}] {what}: {:?}", target.name, started.elapsed());
}

/// Hooks are off in a new cell (404); `fleet::set_hooks` turns them on without
/// a restart, a wake with the cell's hooks token is accepted, a wrong token is
/// refused (401), and off again they answer 404.
async fn check_hooks(target: &Target) {
    let (app, tenant) = (&target.app, &target.tenant);
    let actor = Actor::System("conformance");
    let wake = fleet::Wake {
        text: "conformance wake".to_string(),
        next_heartbeat: false,
        agent_id: None,
    };
    let off = fleet::wake(app, &actor, tenant, &wake)
        .await
        .expect_err("hooks start off");
    assert!(
        matches!(
            off.downcast_ref::<fleet::HookError>(),
            Some(fleet::HookError::Disabled)
        ),
        "{off:#}"
    );
    let boot = target.client().await.hello().boot_id.clone();
    assert!(
        fleet::set_hooks(app, &actor, tenant, true)
            .await
            .expect("hooks on"),
        "the config changed"
    );
    let accepted = fleet::wake(app, &actor, tenant, &wake)
        .await
        .expect("a wake with the hooks token");
    assert_eq!(accepted.mode, "now");
    assert!(
        ["queued", "coalesced"].contains(&accepted.event_outcome.as_str()),
        "{accepted:?}"
    );
    let http = mtp::gateway::Http::new(Duration::from_secs(5)).unwrap();
    let wrong = Secret::new("wrong-hooks-token-0123456789abcdef0123".to_string());
    assert_eq!(
        http.wake(
            "127.0.0.1",
            target.port(),
            &wrong,
            &mtp::gateway::Wake {
                text: wake.text.clone(),
                next_heartbeat: wake.next_heartbeat,
                agent_id: wake.agent_id.clone(),
            }
        )
        .await,
        Err(mtp::gateway::HookError::Unauthorized)
    );
    assert!(
        fleet::set_hooks(app, &actor, tenant, false)
            .await
            .expect("hooks off")
    );
    let off = fleet::wake(app, &actor, tenant, &wake)
        .await
        .expect_err("hooks off again");
    assert!(
        matches!(
            off.downcast_ref::<fleet::HookError>(),
            Some(fleet::HookError::Disabled)
        ),
        "{off:#}"
    );
    assert_eq!(
        target.client().await.hello().boot_id,
        boot,
        "applied without a restart"
    );
}

/// The unauthenticated HTTP probes on the published port: `/healthz` live,
/// `/startupz` started, `/readyz` either ready or a
/// 503 that says it is not (the channel cannot reach Telegram here).
async fn check_http_probes(target: &Target) {
    let http = mtp::gateway::Http::new(Duration::from_secs(5)).unwrap();
    let port = target.port();
    match http.healthz("127.0.0.1", port).await {
        Probe::Ok { body } => assert_eq!(
            (body["ok"].as_bool(), body["status"].as_str()),
            (Some(true), Some("live")),
            "{body}"
        ),
        other => panic!("[{}] /healthz: {other:?}", target.name),
    }
    // A remote caller without the gateway token is told no more than "started".
    match http.startupz("127.0.0.1", port).await {
        Probe::Ok { body } => assert_eq!(
            (body["ok"].as_bool(), body["status"].as_str()),
            (Some(true), Some("started")),
            "{body}"
        ),
        other => panic!("[{}] /startupz: {other:?}", target.name),
    }
    match http.readyz("127.0.0.1", port).await {
        Probe::Ok { body } => assert_eq!(body["ready"], true, "{body}"),
        Probe::Failed { status: 503, body } => {
            let body: Value = serde_json::from_str::<Value>(&body)
                .unwrap_or_else(|err| panic!("/readyz 503 body is JSON ({err}): {body}"));
            assert_eq!(body["ready"], false, "{body}");
        }
        other => panic!("[{}] /readyz: {other:?}", target.name),
    }
}

/// Create paired the admin's fresh key: the device token is stored, the pooled
/// connection logs in with it, and the cell lists exactly this device, approved with
/// the admin's scopes, and nothing of ours pending.
async fn check_paired_from_scratch(target: &Target) {
    let view = fleet::show(&target.app, &target.tenant).await.unwrap();
    assert!(view.record.paired, "{view:?}");
    if target.is_real() && target.env.config().cell.preapprove_pairing {
        // The gateway imported the pre-approval at its first start.
        let devices = target.devices_dir();
        assert!(
            devices.join("paired.json.migrated").exists(),
            "no imported paired.json in {}",
            devices.display()
        );
    }
    assert!(
        target.stored_device_token().is_some(),
        "create stores the device token"
    );
    let client = target.client().await;
    assert_eq!(client.hello().auth_method, "device-token");
    let device_id = target.identity.device_id();
    let list = client.device_pair_list().await.expect("device.pair.list");
    let ours: Vec<_> = list
        .paired
        .iter()
        .filter(|device| device.device_id == device_id)
        .collect();
    assert_eq!(ours.len(), 1, "{list:?}");
    let device = ours[0];
    assert_eq!(device.public_key, target.identity.public_key());
    assert_eq!(device.client_id.as_deref(), Some("gateway-client"));
    assert_eq!(device.client_mode.as_deref(), Some("backend"));
    assert_eq!(device.platform.as_deref(), Some("linux"));
    assert_eq!(device.role.as_deref(), Some("operator"));
    assert_eq!(sorted(&device.scopes), sorted(&SCOPES));
    assert!(
        list.pending
            .iter()
            .all(|request| request.device_id != device_id),
        "{list:?}"
    );
}

/// `hello-ok` grants exactly the requested scopes, protocol 4, the documented policy.
async fn check_hello(target: &Target) {
    let client = target.client().await;
    let hello = client.hello();
    assert_eq!(hello.protocol, 4);
    assert_eq!(sorted(&hello.scopes), sorted(&SCOPES), "{hello:?}");
    assert!(hello.server_version.starts_with("2026.9.6"), "{hello:?}");
    assert!(hello.boot_id.as_deref().is_some_and(|id| !id.is_empty()));
    assert_eq!(hello.tick_interval, Duration::from_secs(30));
    assert_eq!(hello.max_payload, 26_214_400);
    assert!(
        hello
            .applied_config_hash
            .as_deref()
            .is_some_and(|hash| hash.starts_with("hmac-sha256:v1:")),
        "{hello:?}"
    );
    assert!(hello.methods.iter().any(|method| method == "health"));
}

/// Every read method answers and parses into its struct with the values a fresh
/// cell of this spec has.
async fn check_typed_reads(target: &Target) {
    let client = target.client().await;
    let hello = client.hello();

    let health = client.health().await.expect("health");
    assert!(health.ok, "{health:?}");
    assert_eq!(health.default_agent_id.as_deref(), Some("main"));
    assert!(
        health
            .agents
            .iter()
            .any(|agent| agent.agent_id == "main" && agent.is_default),
        "{health:?}"
    );
    assert_eq!(health.channel_order, ["telegram"]);
    assert!(client.health_probe().await.expect("health probe").ok);

    let status = client.status().await.expect("status");
    assert_eq!(status.runtime_version, hello.server_version);
    assert!(status.pid.is_some(), "{status:?}");
    assert_eq!(status.sessions.count, 0);
    assert_eq!(
        status.sessions.defaults.model.as_deref(),
        Some("claude-opus-4-6")
    );

    let config = client.config_get().await.expect("config.get");
    assert!(config.exists && config.valid, "{config:?}");
    assert!(
        config
            .hash
            .as_deref()
            .is_some_and(|hash| hash.starts_with("hmac-sha256:v1:")),
        "{config:?}"
    );
    assert_eq!(config.path, "/home/node/.openclaw/openclaw.json");
    assert_eq!(config.config["gateway"]["mode"], "local");
    assert_eq!(config.config["channels"]["telegram"]["dmPolicy"], "pairing");
    assert_eq!(
        config.config["channels"]["telegram"]["botToken"],
        "__OPENCLAW_REDACTED__"
    );
    assert!(!config.config.to_string().contains(BOT_TOKEN));
    assert!(!config.raw.as_deref().unwrap_or("").contains(BOT_TOKEN));
    assert!(
        !config.restart_pending(),
        "{:?}",
        config.applied_config_hash
    );
    assert_eq!(config.applied_config_hash, hello.applied_config_hash);

    let today = chrono::Utc::now().date_naive();
    let week = UsageQuery {
        period: UsagePeriod::Days(7),
        agents: AgentScope::All,
        time_zone: None,
    };
    let cost = client.usage_cost(&week).await.expect("usage.cost");
    assert_eq!(cost.days, 7);
    assert_eq!(cost.daily.len(), 7, "{cost:?}");
    assert_eq!(cost.daily.last().map(|day| day.date), Some(today));
    assert_eq!(cost.totals.total_tokens, 0);
    assert_eq!(cost.totals.total_cost, 0.0);
    assert!(!cost.cache_status.status.is_empty(), "{cost:?}");
    let usage = client.sessions_usage(&week).await.expect("sessions.usage");
    assert_eq!(usage.end_date, Some(today));
    assert_eq!(
        usage.start_date,
        today.checked_sub_days(chrono::Days::new(6))
    );
    assert_eq!(usage.aggregates.session_count, 0);
    assert_eq!(usage.aggregates.by_model, []);

    let skills = client.skills_status().await.expect("skills.status");
    assert_eq!(skills.agent_id, "main");
    let weather = skills
        .skills
        .iter()
        .find(|skill| skill.skill_key == "weather")
        .unwrap_or_else(|| panic!("no weather skill in {skills:?}"));
    assert!(weather.bundled, "{weather:?}");
    assert_eq!(weather.source, "openclaw-bundled");

    let channels = client
        .channels_status(&ChannelsQuery::default())
        .await
        .expect("channels.status");
    assert_eq!(channels.channel_order, ["telegram"]);
    assert_eq!(
        channels
            .channel_default_account_id
            .get("telegram")
            .map(String::as_str),
        Some("default")
    );
    let account = channels
        .channel_accounts
        .get("telegram")
        .and_then(|accounts| accounts.first())
        .unwrap_or_else(|| panic!("no telegram account in {channels:?}"));
    assert_eq!(account.account_id, "default");
    assert_eq!(
        (account.enabled, account.configured),
        (Some(true), Some(true))
    );
    assert_eq!(account.mode.as_deref(), Some("polling"));

    let agents = client.agents_list().await.expect("agents.list");
    assert_eq!(
        (agents.default_id.as_str(), agents.main_key.as_str()),
        ("main", "main")
    );
    assert_eq!(agents.scope, "per-sender");
    let main = agents
        .agents
        .iter()
        .find(|agent| agent.id == "main")
        .unwrap_or_else(|| panic!("no main agent in {agents:?}"));
    assert_eq!(
        main.model
            .as_ref()
            .and_then(|model| model.primary.as_deref()),
        Some("anthropic/claude-opus-4-6")
    );

    let models = client.models_list().await.expect("models.list");
    assert!(
        models
            .models
            .iter()
            .any(|model| model.id == "claude-opus-4-6" && model.provider == "anthropic"),
        "{models:?}"
    );
}

/// Writes that need no network: a skill entry, installers that cannot run, a send
/// through an unreachable Telegram (queued). Not here: `skills.install`/`update` from
/// ClawHub (a real cell without network hangs past any timeout), and an `agent` turn
/// (it OOM-kills a real cell under the tests' 1 GiB limit; the two responses are
/// covered by the client's unit tests and the fake's).
async fn check_safe_writes(target: &Target) {
    let client = target.client().await;
    let updated = client
        .skills_update(&SkillUpdate::Entry {
            skill_key: "weather".to_string(),
            enabled: Some(true),
            api_key: None,
            env: BTreeMap::new(),
        })
        .await
        .expect("skills.update");
    assert!(updated.ok, "{updated:?}");
    assert_eq!(updated.skill_key, "weather");
    assert_eq!(updated.config, json!({"enabled": true}));

    for (name, install_id, message) in [
        (
            "weather",
            "no-such-installer",
            "Installer not found: no-such-installer",
        ),
        ("no-such-skill", "brew", "Skill not found: no-such-skill"),
    ] {
        let install = SkillInstall::Installer {
            name: name.to_string(),
            install_id: install_id.to_string(),
        };
        let installed = client
            .skills_install(&install, Duration::from_secs(10))
            .await
            .expect("a failed install is a result");
        assert!(!installed.ok, "{installed:?}");
        assert_eq!(installed.message, message);
    }

    let sent = client
        .send(&SendMessage {
            to: "123456789".to_string(),
            message: "conformance".to_string(),
            channel: Some("telegram".to_string()),
            account_id: None,
            idempotency_key: format!("conformance-{}", target.tenant),
        })
        .await;
    match sent {
        Ok(SendOutcome::Queued { message }) => {
            assert!(message.starts_with("OutboundDeliveryError: "), "{message}");
        }
        other => panic!("a send through an unreachable Telegram is queued, got {other:?}"),
    }
}

/// `config.get` → `config.patch` with its hash → the new hash is live; the same
/// patch again is a no-op; a patch on the old hash is a `ConfigConflict` and
/// changes nothing.
async fn check_config_patch_round_trip(target: &Target) {
    let client = target.client().await;
    let before = client.config_get().await.expect("config.get");
    let base = before.hash.clone().expect("config.get gives a hash");
    let patch = |raw: &str, base_hash: &str| ConfigPatch {
        raw: raw.to_string(),
        base_hash: base_hash.to_string(),
        replace_paths: Vec::new(),
        note: Some("mtp conformance".to_string()),
    };
    let disable = "{ skills: { entries: { summarize: { enabled: false } } } }";
    let patched = client
        .config_patch(&patch(disable, &base))
        .await
        .expect("config.patch");
    assert!(!patched.noop, "{patched:?}");
    assert!(!patched.requires_restart, "{patched:?}");
    // `skills.entries` exists (skills.update wrote it): the new entry is one path.
    assert_eq!(patched.changed_paths, ["skills.entries.summarize"]);
    assert_eq!(patched.path, before.path);
    let hash = patched.hash.clone().expect("a new hash");
    assert_ne!(hash, base);

    let after = client.config_get().await.expect("config.get");
    assert_eq!(after.hash.as_deref(), Some(hash.as_str()));
    assert_eq!(
        after.config["skills"]["entries"]["summarize"],
        json!({"enabled": false})
    );
    assert_eq!(
        after.config["skills"]["entries"]["weather"],
        json!({"enabled": true})
    );
    assert!(!after.restart_pending(), "a hot change is applied at once");

    let again = client
        .config_patch(&patch(disable, &hash))
        .await
        .expect("config.patch");
    assert!(again.noop, "{again:?}");
    assert_eq!(again.changed_paths, Vec::<String>::new());

    let enable = "{ skills: { entries: { summarize: { enabled: true } } } }";
    let stale = client.config_patch(&patch(enable, &base)).await;
    assert_eq!(stale, Err(CallError::ConfigConflict));
    let unchanged = client.config_get().await.expect("config.get");
    assert_eq!(unchanged.hash.as_deref(), Some(hash.as_str()));
}

/// A key the cell has never seen gets `PairingRequired` with a request id the admin
/// sees pending; approving it by RPC lets that key in with the admin's scopes.
async fn check_new_device_needs_pairing(target: &Target) {
    let stranger = DeviceIdentity::from_seed([0x5a; 32]);
    let endpoint = Endpoint {
        host: "127.0.0.1".to_string(),
        port: target.port(),
        gateway_token: target.gateway_token(),
        device_token: None,
    };
    let (request_id, reason) = match Client::connect(&endpoint, &stranger, options()).await {
        Err(ConnectError::PairingRequired { request_id, reason }) => (request_id, reason),
        other => panic!("an unknown device must need pairing, got {other:?}"),
    };
    assert_eq!(reason, "not-paired");
    let admin = target.client().await;
    let list = admin.device_pair_list().await.expect("device.pair.list");
    let pending = list
        .pending
        .iter()
        .find(|request| request.request_id == request_id)
        .unwrap_or_else(|| panic!("request {request_id} not pending in {list:?}"));
    assert_eq!(pending.device_id, stranger.device_id());
    assert_eq!(pending.client_id.as_deref(), Some("gateway-client"));
    assert_eq!(pending.role.as_deref(), Some("operator"));
    assert_eq!(sorted(&pending.scopes), sorted(&SCOPES));
    assert!(!pending.is_repair);

    let approved = admin
        .device_pair_approve(&request_id)
        .await
        .expect("device.pair.approve");
    assert_eq!(approved.request_id, request_id);
    assert_eq!(approved.device.device_id, stranger.device_id());
    let client = Client::connect(&endpoint, &stranger, options())
        .await
        .expect("an approved device connects");
    let hello = client.hello();
    assert_eq!(sorted(&hello.scopes), sorted(&SCOPES));
    assert_eq!(hello.auth_method, "token");
    assert!(hello.device_token.is_some());
    client.close();
}

/// A connection with the right gateway token but no device block is accepted with
/// `scopes: []`: `health` works, `status` is `FORBIDDEN`/`MISSING_SCOPE` — the exact
/// answer `mtp::gateway` maps to `CallError::MissingScope`. `Client` always signs a
/// device block (and refuses an empty grant as `NoScopes`), so this speaks raw
/// WebSocket.
async fn check_token_only_has_no_scopes(target: &Target) {
    let url = format!("ws://127.0.0.1:{}/", target.port());
    let (mut socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("WebSocket upgrade");
    let challenge = next_frame(&mut socket).await;
    assert_eq!(challenge["event"], "connect.challenge");
    let token = target.gateway_token();
    let connect = json!({"type": "req", "id": "c1", "method": "connect", "params": {
        "minProtocol": 4, "maxProtocol": 4,
        "client": {"id": "gateway-client", "version": "0.1.0", "platform": "linux", "mode": "backend"},
        "role": "operator", "scopes": SCOPES, "auth": {"token": token.expose()}}});
    let health = json!({"type": "req", "id": "r1", "method": "health"});
    let status = json!({"type": "req", "id": "r2", "method": "status", "params": {}});
    for frame in [connect, health, status] {
        socket
            .send(Message::text(frame.to_string()))
            .await
            .expect("send a frame");
    }
    let mut answers = BTreeMap::new();
    while answers.len() < 3 {
        let frame = next_frame(&mut socket).await;
        if frame["type"] == "res" {
            answers.insert(frame["id"].as_str().unwrap_or("").to_string(), frame);
        }
    }
    let hello = &answers["c1"];
    assert_eq!(hello["ok"], true, "{hello}");
    assert_eq!(hello["payload"]["auth"]["scopes"], json!([]), "{hello}");
    assert_eq!(answers["r1"]["ok"], true, "health needs no scope");
    assert_eq!(
        answers["r2"]["error"],
        json!({"code": "FORBIDDEN", "message": "missing scope: operator.read",
            "details": {"code": "MISSING_SCOPE", "missingScope": "operator.read",
                "requiredScopes": ["operator.read"]}})
    );
    let _ = socket.close(None).await;
}

/// One wrong gateway token is `TokenMismatch`; a wrong device token falls back to the
/// gateway token, which the cell accepts and answers with the device's token again.
async fn check_wrong_credentials(target: &Target) {
    let wrong = Endpoint {
        host: "127.0.0.1".to_string(),
        port: target.port(),
        gateway_token: Secret::new("0".repeat(64)),
        device_token: None,
    };
    let refused = Client::connect(&wrong, &target.identity, options()).await;
    assert_eq!(
        refused.map(|_| ()),
        Err(ConnectError::TokenMismatch),
        "a wrong gateway token"
    );

    let stale_device = Endpoint {
        host: "127.0.0.1".to_string(),
        port: target.port(),
        gateway_token: target.gateway_token(),
        device_token: Some(Secret::new("stale-device-token-0123456789".to_string())),
    };
    let client = Client::connect(&stale_device, &target.identity, options())
        .await
        .expect("the gateway token replaces a refused device token");
    let hello = client.hello();
    assert_eq!(hello.auth_method, "token");
    assert_eq!(hello.device_token, target.stored_device_token());
    client.close();
}

/// A patch that needs a restart: `shutdown` "gateway restarting", close 1012, and the
/// pooled client keeps reconnecting by itself; once the cell is back the same handle
/// answers, on a new boot with the change applied.
///
/// FIXME: the real 2026.9.6 cell hangs in its in-process restart here ("Plugin telegram
/// forced retirement … resource cleanup remains pending", listener closed, process
/// alive, SIGTERM ignored; seen for over 7 minutes), with or without its Telegram
/// channel enabled. A cell not back within `RESTART_PATIENCE` is restarted by the fleet,
/// as an operator would; the fake needs no such help.
async fn check_restart_requiring_patch(target: &Target) {
    let client = target.client().await;
    let mut events = client.subscribe();
    let mut state = client.state();
    let boot_before = client.hello().boot_id.clone();
    let base = client
        .config_get()
        .await
        .expect("config.get")
        .hash
        .expect("a hash");
    let patched = client
        .config_patch(&ConfigPatch {
            raw: "{ gateway: { controlUi: { basePath: \"/mtp-ui\" } } }".to_string(),
            base_hash: base,
            replace_paths: Vec::new(),
            note: None,
        })
        .await
        .expect("config.patch");
    assert!(patched.requires_restart, "{patched:?}");
    assert_eq!(patched.changed_paths, ["gateway.controlUi.basePath"]);

    let started = Instant::now();
    let shutdown = next_event(
        &mut events,
        Duration::from_secs(30),
        |event| matches!(event, Event::Server { event, .. } if event == "shutdown"),
    )
    .await;
    let Some(Event::Server { payload, .. }) = shutdown else {
        assert!(
            target.is_real(),
            "[{}] the fake must send `shutdown` after a restart-requiring patch",
            target.name
        );
        // FIXME: the real 2026.9.6 cell sometimes never begins the restart it
        // announced (`requiresRestart`); seen here when another cell booted at the
        // same time. Restart the container, as an operator would, and check that
        // the same client comes back to the new boot with the change applied.
        eprintln!(
            "[{}] FIXME: no shutdown within 30 s of a restart-requiring patch; restarting the container",
            target.name
        );
        fleet::restart(&target.app, &Actor::System("conformance"), &target.tenant)
            .await
            .unwrap_or_else(|err| panic!("[{}] container restart: {err:#}", target.name));
        next_event(&mut events, Duration::from_secs(60), |event| {
            *event == Event::Reconnected
        })
        .await
        .expect("the client reconnects within 60 s of the cell's return");
        return check_back_on_a_new_boot(target, &client, &boot_before).await;
    };
    assert_eq!(payload["reason"], "gateway restarting", "{payload}");
    assert!(payload["restartExpectedMs"].as_u64().is_some(), "{payload}");
    let lost = tokio::time::timeout(
        Duration::from_secs(10),
        state.wait_for(|state| *state != State::Connected),
    )
    .await
    .expect("the connection closes after the shutdown event")
    .expect("the client is alive")
    .clone();
    match &lost {
        State::Reconnecting {
            error: ConnectError::Closed { code, .. },
        } => assert_eq!(*code, Some(1012), "{lost:?}"),
        State::Reconnecting {
            error: ConnectError::Unavailable { .. },
        } => {}
        other => panic!("the client must keep reconnecting, got {other:?}"),
    }

    let by_itself = next_event(&mut events, RESTART_PATIENCE, |event| {
        *event == Event::Reconnected
    })
    .await;
    if by_itself.is_none() {
        assert!(
            target.is_real(),
            "[{}] the fake must come back from its restart by itself",
            target.name
        );
        eprintln!(
            "[{}] FIXME: not back {:?} after the restart began; restarting the container",
            target.name,
            started.elapsed()
        );
        assert!(
            matches!(*client.state().borrow(), State::Reconnecting { .. }),
            "still reconnecting, not stopped"
        );
        fleet::restart(&target.app, &Actor::System("conformance"), &target.tenant)
            .await
            .unwrap_or_else(|err| panic!("[{}] container restart: {err:#}", target.name));
        next_event(&mut events, Duration::from_secs(30), |event| {
            *event == Event::Reconnected
        })
        .await
        .expect("the client reconnects within 30 s of the cell's return");
    }
    eprintln!(
        "[{}] reconnected {:?} after the shutdown event",
        target.name,
        started.elapsed()
    );

    check_back_on_a_new_boot(target, &client, &boot_before).await;
}

/// After a restart: the same client answers on a new boot that applied the patch
/// of `check_restart_requiring_patch`, and the pool kept the handle.
async fn check_back_on_a_new_boot(target: &Target, client: &Client, boot_before: &Option<String>) {
    assert!(client.health().await.expect("health after the restart").ok);
    let hello = client.hello();
    assert_ne!(&hello.boot_id, boot_before, "a new boot");
    let config = client.config_get().await.expect("config.get");
    assert!(!config.restart_pending(), "{config:?}");
    assert_eq!(hello.applied_config_hash, config.config_revision_hash);
    assert_eq!(config.config["gateway"]["controlUi"]["basePath"], "/mtp-ui");
    let pooled = target.client().await;
    assert_eq!(
        pooled.hello().boot_id,
        hello.boot_id,
        "the pool kept the handle"
    );
}

/// How long a cell may take to come back from an in-process restart by itself.
const RESTART_PATIENCE: Duration = Duration::from_secs(15);

/// The next event matching `wanted` within `timeout`; `None` when none came.
async fn next_event(
    events: &mut tokio::sync::broadcast::Receiver<Event>,
    timeout: Duration,
    wanted: impl Fn(&Event) -> bool,
) -> Option<Event> {
    let waiting = async {
        loop {
            match events.recv().await {
                Ok(event) if wanted(&event) => return event,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                    panic!("the client's event channel closed")
                }
            }
        }
    };
    tokio::time::timeout(timeout, waiting).await.ok()
}

/// A new admin process (a new `App` on the same data dir, and the `mtp` binary)
/// reaches the cell with the stored device token: no pairing again.
async fn check_device_token_survives_admin_restart(target: &Target) {
    let restarted = target.env.app().await;
    fleet::gateway_info(&restarted, &target.tenant)
        .await
        .expect("the restarted admin connects");
    let identity = admin_identity(&target.env);
    assert_eq!(identity.device_id(), target.identity.device_id());
    let endpoint = Endpoint {
        host: "127.0.0.1".to_string(),
        port: target.port(),
        gateway_token: target.gateway_token(),
        device_token: target.stored_device_token(),
    };
    let client = Client::connect(&endpoint, &identity, options())
        .await
        .expect("the stored device token connects");
    assert_eq!(client.hello().auth_method, "device-token");
    assert!(client.health().await.expect("health").ok);
    let list = client.device_pair_list().await.expect("device.pair.list");
    let device_id = identity.device_id();
    assert_eq!(
        list.paired
            .iter()
            .filter(|device| device.device_id == device_id)
            .count(),
        1
    );
    assert!(
        list.pending
            .iter()
            .all(|request| request.device_id != device_id)
    );
    client.close();

    let tenant = target.tenant.to_string();
    let mut command = target.env.mtp_command(&["rpc", &tenant, "health"]);
    let output = tokio::task::spawn_blocking(move || command.output().expect("run mtp"))
        .await
        .expect("mtp ran");
    let health = output_json(&output);
    assert_eq!(health["ok"], true, "{health}");
}

/// The next JSON frame that is not a server event (the challenge counts).
async fn next_frame(socket: &mut Socket) -> Value {
    loop {
        match socket.next().await {
            Some(Ok(Message::Text(text))) => {
                let frame: Value = serde_json::from_str(&text).expect("a JSON frame");
                if frame["type"] != "event" || frame["event"] == "connect.challenge" {
                    return frame;
                }
            }
            Some(Ok(_)) => {}
            other => panic!("socket ended: {other:?}"),
        }
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Options for one-off connects in the suite (pairing, wrong credentials).
fn options() -> Options {
    Options {
        connect_timeout: Duration::from_secs(30),
        ..Options::default()
    }
}

fn sorted<S: AsRef<str>>(items: &[S]) -> Vec<String> {
    let mut res: Vec<String> = items.iter().map(|item| item.as_ref().to_string()).collect();
    res.sort();
    res
}
