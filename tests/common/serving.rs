//! `mtp serve` run inside a test process, its `/metrics`, and a fake cell's
//! control API reached with the tenant's gateway token.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use std::collections::BTreeMap;

use mtp::config::AdminConfig;
use mtp::fleet::{self, Actor, App};
use mtp::tenant::{BotToken, DmPolicy, SecretKind, TenantId, TenantSpec};

use crate::common::TestEnv;
use tokio::sync::oneshot;

/// A running `mtp serve` (in this process) and how to stop it.
pub struct Serving {
    pub stop: oneshot::Sender<()>,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub metrics: SocketAddr,
}

impl Serving {
    pub async fn start(app: &App) -> Serving {
        let (stop, stopped) = oneshot::channel::<()>();
        let (bound_tx, bound_rx) = oneshot::channel();
        let task = tokio::spawn(mtp::serve::run_reporting(
            app.clone(),
            async move {
                let _ = stopped.await;
            },
            move |addr| {
                let _ = bound_tx.send(addr);
            },
        ));
        let metrics = bound_rx.await.expect("serve reports its metrics address");
        Serving {
            stop,
            task,
            metrics,
        }
    }

    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.task
            .await
            .expect("serve task")
            .expect("serve ends cleanly");
    }

    /// The value of `mtp_sweeps_total`.
    pub async fn sweeps(&self) -> u64 {
        let text = metrics_text(self.metrics).await;
        text.lines()
            .find_map(|l| l.strip_prefix("mtp_sweeps_total "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Waits until `n` more sweeps have finished.
    pub async fn await_sweeps(&self, n: u64) {
        let target = self.sweeps().await + n;
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.sweeps().await < target {
            assert!(Instant::now() < deadline, "the monitor stopped sweeping");
            // Polling the admin's own endpoint for its counter is the condition.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

pub async fn metrics_text(addr: SocketAddr) -> String {
    reqwest::get(format!("http://{addr}/metrics"))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics body")
}

/// Drives a fake cell's control API with the tenant's gateway token.
pub async fn fake_control(
    app: &App,
    tenant: &TenantId,
    method: &str,
    path: &str,
    body: serde_json::Value,
) {
    let record = crate::common::store_of(app)
        .tenant(tenant)
        .unwrap()
        .unwrap();
    let token = crate::common::store_of(app)
        .secret(tenant, SecretKind::GatewayToken)
        .unwrap()
        .unwrap();
    let url = format!("http://127.0.0.1:{}{path}", record.port);
    let request = reqwest::Client::new()
        .request(method.parse().unwrap(), url)
        .bearer_auth(token.expose())
        .json(&body);
    let response = request.send().await.expect("fake control API");
    assert!(
        response.status().is_success(),
        "{method} {path}: {}",
        response.status()
    );
}

/// This test's app as `mtp serve` runs it: the admin bot (`admin_token`) on
/// the Bot API at `api_url` with one operator and an ops chat, the monitor
/// as `monitor` says (a JSON5 object), and `extra` top-level sections.
pub async fn serving_app(
    env: &TestEnv,
    api_url: &str,
    admin_token: &str,
    (operator, ops_chat): (u64, i64),
    monitor: &str,
    extra: &str,
) -> App {
    let config = std::fs::read_to_string(&env.config_path).unwrap();
    let end = config.rfind('}').unwrap();
    let config = format!(
        "{}  telegram: {{ apiUrl: \"{api_url}\", operators: [{operator}], opsChatId: {ops_chat} }},\n  monitor: {monitor},\n{extra}}}\n",
        &config[..end],
    );
    std::fs::write(&env.config_path, config).unwrap();
    let vars = BTreeMap::from([("MTP_TELEGRAM_TOKEN".to_string(), admin_token.to_string())]);
    let config = AdminConfig::load(Some(&env.config_path), None, &vars).expect("config loads");
    App::open(config).await.expect("app opens")
}

/// A tenant of `image` with its own bot, made by `fleet::create` as the test's actor.
pub async fn create_cell(app: &App, id: &str, image: &str, bot_token: &str) -> TenantId {
    let id: TenantId = id.parse().unwrap();
    let spec = TenantSpec {
        id: id.clone(),
        display_name: None,
        bot_token: BotToken::parse(bot_token).unwrap(),
        provider_key: None,
        model: "anthropic/claude-opus-4-6".into(),
        image: Some(image.into()),
        limits: None,
        dm_policy: DmPolicy::Pairing,
        skills: None,
        bot_username: None,
        keep_failed: false,
    };
    fleet::create(app, &Actor::System("test"), spec, &mut |_| {})
        .await
        .expect("create");
    id
}

/// The admin's messages in `ops_chat` that name `tenant`, oldest first.
pub fn alerts_about(
    admin: &crate::common::fake_telegram::FakeBot,
    ops_chat: teloxide::types::ChatId,
    tenant: &TenantId,
) -> Vec<String> {
    admin
        .messages_in(ops_chat)
        .into_iter()
        .filter(|m| m.from_bot && m.text.contains(tenant.as_str()))
        .map(|m| m.text)
        .collect()
}
