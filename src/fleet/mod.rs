//! The use-cases. Every action lives once here and is called the same way by
//! the CLI, the bot, the scheduler and the tests: `fleet::create(&app, …)`.
//! Functions take typed input and return plain data; they never write a
//! sentence for a human (adapters render).
//!
//! Architecture invariant: `fleet/` is the only layer that sees the store, the
//! runtime and the gateway together.

mod alerts;
mod audit;
pub mod backup;
mod billing;
mod budget;
pub mod capacity;
pub mod catalog;
mod cell;
mod cell_db;
pub(crate) mod cell_gateway;
pub mod config_edit;
mod create;
mod dialogues;
pub mod doctor;
pub mod events;
pub mod health;
pub mod history;
mod hooks;
mod inventory;
mod lifecycle;
pub mod lock;
pub mod moves;
pub mod nodes;
mod obstacle;
mod reconcile;
pub mod resize;
pub mod rollout;
pub mod skills;
pub mod sleep;
mod telegram;
pub mod template;
mod upgrade;
mod usage;

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;

pub use alerts::{alert_states, heal, mute, record_alert, save_alert_states};
pub use audit::{
    AuditEntry, AuditTally, Outcome, audit_log, audit_since, audit_tally, prune_audit,
};
pub use billing::{
    Bill, FleetSummary, Period, Ranked, Summary, bill, fleet_summary, month_key, rank, summarize,
    tenant_summaries, tenant_summary, today, today_in,
};
pub use budget::{
    Budget, BudgetAlert, BudgetOutcome, BudgetStatus, Resumed, Suspension, THRESHOLDS, budget,
    budget_status, check_budget, check_budgets, crossed, keep_suspended, resume, set_budget,
    suspensions,
};
/// The pooled gateway client stays inside fleet: adapters call fleet's actions.
pub(crate) use cell_gateway::client;
pub use cell_gateway::{ChannelInfo, GatewayInfo, gateway_info, pair, rpc};
pub use create::{CreateError, CreateStep, create};
pub use dialogues::{DialogueStore, dialogues};
pub use hooks::{HookError, Wake, WakeAccepted, set_hooks, wake};
pub use inventory::{
    ContainerStatus, Health, IdAvailability, TenantView, UnknownTenant, ViewState, exists,
    id_availability, list, show,
};
pub use inventory::{find_record, record};
pub use lifecycle::{LogLine, Removed, follow_logs, logs, remove, restart, start, stop};
pub use lock::Busy;
pub use obstacle::{Obstacle, obstacle};
pub use reconcile::{ReconcileReport, Repaired, reconcile, repair};
pub use telegram::{ProveError, ProvenBot, prove_bot_token};
pub use upgrade::{Rollback, UpgradeError, UpgradeStep, Upgraded, upgrade};
pub use usage::{
    CollectReport, Collected, DayUsage, Ledger, ModelDayUsage, Ratcheted, UNATTRIBUTED,
    UsageFigures, collect_tenant_usage, collect_usage, costs_on, ledger, ledgers, yesterday,
};

use crate::config::AdminConfig;
use crate::gateway::{self, DeviceIdentity};
use crate::runtime::Runtime;
use crate::store::{self, Store};
use crate::tenant::{Secret, TenantId};

/// Everything an action needs; cheap to clone, built once per process.
/// Its parts are fleet's own: adapters reach them only through fleet's
/// functions (and read the config through `config()`).
#[derive(Clone)]
pub struct App {
    config: AdminConfig,
    store: Store,
    runtime: Runtime,
    /// The admin's Ed25519 device identity (`<data>/device.key`, 0600).
    identity: DeviceIdentity,
    /// One gateway connection per tenant, shared by every caller.
    pool: gateway::Pool,
    /// HTTP probes of cells (`/healthz`, `/readyz`).
    http: gateway::Http,
    /// The cells' newest memory samples (taken in the background by sweeps).
    memory: Arc<health::MemorySamples>,
    /// The sleeping tenants' bots this process watches (`sleep::watch_bot`).
    watches: sleep::Watches,
}

impl App {
    /// Opens the data dir (0700), the store (0600) and the Docker connection.
    ///
    /// # Errors
    ///
    /// An unusable data dir, a store from a newer binary, Docker unreachable.
    pub async fn open(config: AdminConfig) -> anyhow::Result<App> {
        ensure_private_dir(&config.data_dir)?;
        let store = Store::open(&config.store_path())?;
        let runtime = Runtime::connect(config.docker_host.as_deref())
            .await?
            .with_engine(config.cell.engine);
        if config.cell.engine == crate::tenant::Engine::Swarm
            && runtime.swarm_role().await? != crate::runtime::SwarmRole::Manager
        {
            anyhow::bail!(
                "cell.engine is \"swarm\" but this Docker engine is not a swarm manager; run the admin on a manager (docker swarm init, or join as one), or set cell.engine to \"docker\""
            );
        }
        // An admin that runs as a Swarm service reaches cells through its relay.
        let runtime = match crate::runtime::own_container_id() {
            Some(own) if config.cell.engine == crate::tenant::Engine::Swarm => {
                match runtime.relay_for(&own).await? {
                    Some(relay) => runtime.with_relay(relay),
                    None => runtime,
                }
            }
            _ => runtime,
        };
        App::assemble(config, store, runtime)
    }

    /// An app whose Docker connection is never made: for unit tests that need
    /// an `App` and no engine (the first Docker call fails).
    #[cfg(test)]
    pub(crate) fn open_without_docker(config: AdminConfig) -> anyhow::Result<App> {
        ensure_private_dir(&config.data_dir)?;
        let store = Store::open(&config.store_path())?;
        App::assemble(config, store, Runtime::unconnected())
    }

    fn assemble(config: AdminConfig, store: Store, runtime: Runtime) -> anyhow::Result<App> {
        let identity = DeviceIdentity::load_or_create(&config.data_dir.join("device.key"))?;
        let (pool, mut tokens) = gateway::Pool::new(identity.clone(), gateway::Options::default());
        // A cell may rotate the admin's device token on any connect; keep the newest.
        let token_store = store.clone();
        tokio::spawn(async move {
            while let Some(issued) = tokens.recv().await {
                if let Err(err) = token_store.put_secret(
                    &issued.tenant,
                    crate::tenant::SecretKind::DeviceToken,
                    &issued.device_token,
                ) {
                    tracing::error!(cause = %err, tenant = %issued.tenant, "cannot store a rotated device token");
                }
            }
        });
        // A probe that takes longer than this counts as failed; list and create poll it.
        let http = gateway::Http::new(std::time::Duration::from_secs(2))?;
        Ok(App {
            config,
            store,
            runtime,
            identity,
            pool,
            http,
            memory: Arc::default(),
            watches: sleep::Watches::default(),
        })
    }

    /// The configuration the app was opened with, as checked at start.
    #[must_use]
    pub fn config(&self) -> &AdminConfig {
        &self.config
    }

    /// The tenant's own directory under the data dir.
    #[must_use]
    pub fn tenant_dir(&self, tenant: &TenantId) -> PathBuf {
        self.config.tenants_dir().join(tenant.as_str())
    }
}

/// Who asked for an action; written to the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A shell user of the CLI.
    Cli(String),
    /// A Telegram operator, by user id.
    Telegram(u64),
    /// The admin itself (reconcile, monitor).
    System(&'static str),
}

impl Actor {
    /// The CLI user: `$SUDO_USER`, `$USER`, or the uid.
    #[must_use]
    pub fn cli() -> Actor {
        let user = std::env::var("SUDO_USER")
            .or_else(|_| std::env::var("USER"))
            .unwrap_or_else(|_| format!("uid{}", unsafe_free_uid()));
        Actor::Cli(user)
    }

    fn label(&self) -> String {
        match self {
            Actor::Cli(user) => format!("cli:{user}"),
            Actor::Telegram(id) => format!("tg:{id}"),
            Actor::System(what) => format!("system:{what}"),
        }
    }
}

fn unsafe_free_uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

/// Writes one audit entry; an audit failure is logged, never hides the action's result.
fn audit(
    app: &App,
    actor: &Actor,
    action: &str,
    tenant: Option<&TenantId>,
    result: Result<(), (&str, &str)>,
) {
    let (outcome, step, error) = match result {
        Ok(()) => (store::Outcome::Ok, None, None),
        Err((step, error)) => (
            store::Outcome::Failed,
            Some(step.to_string()),
            Some(error.to_string()),
        ),
    };
    let entry = store::AuditEntry {
        at: now(),
        actor: actor.label(),
        action: action.to_string(),
        tenant: tenant.map(|t| t.as_str().to_string()),
        outcome,
        step,
        error,
    };
    if let Err(err) = app.store.audit(&entry) {
        tracing::error!(cause = %err, action, "cannot write the audit log");
    }
}

/// Audits how an action on `tenant` ended: a failure is recorded at
/// `failed_step` with its error chain.
fn audit_result<T>(
    app: &App,
    actor: &Actor,
    action: &str,
    tenant: &TenantId,
    failed_step: &str,
    result: &anyhow::Result<T>,
) {
    match result {
        Ok(_) => audit(app, actor, action, Some(tenant), Ok(())),
        Err(err) => {
            let reason = format!("{err:#}");
            audit(
                app,
                actor,
                action,
                Some(tenant),
                Err((failed_step, &reason)),
            );
        }
    }
}

/// The values of the tenant's secrets, for `redact`.
fn secret_values(app: &App, tenant: &TenantId) -> anyhow::Result<Vec<Secret<String>>> {
    let secrets = app.store.secrets(tenant)?;
    Ok(secrets.into_iter().map(|(_, value)| value).collect())
}

/// Records that someone who is not an operator tried to act.
pub fn record_refusal(app: &App, actor: &Actor, what: &str) {
    let entry = store::AuditEntry {
        at: now(),
        actor: actor.label(),
        action: what.to_string(),
        tenant: None,
        outcome: store::Outcome::Refused,
        step: None,
        error: None,
    };
    if let Err(err) = app.store.audit(&entry) {
        tracing::error!(cause = %err, "cannot write the audit log");
    }
}

/// Unix seconds now.
#[must_use]
pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Replaces every secret value, and anything shaped like a Telegram bot token,
/// with `<redacted>`.
#[must_use]
pub fn redact(text: &str, secrets: &[Secret<String>]) -> String {
    let mut res = text.to_string();
    for secret in secrets {
        let value = secret.expose();
        // Very short values would blank out ordinary text; real secrets are long.
        if value.len() >= 6 {
            res = res.replace(value.as_str(), "<redacted>");
        }
    }
    redact_bot_tokens(&res)
}

/// Finds `<digits>:<30+ token chars>` (a bot id of at least five digits) and
/// replaces it, also where letters come right before it, as in a Bot API URL
/// (`/bot123456:AA…/getMe`). Short digit runs (`sha256:…`) are no bot ids.
fn redact_bot_tokens(text: &str) -> String {
    const MIN_BOT_ID_DIGITS: usize = 5;
    let bytes = text.as_bytes();
    let mut res = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() && (i == 0 || !bytes[i - 1].is_ascii_digit()) {
            let digits_end = i + bytes[i..].iter().take_while(|b| b.is_ascii_digit()).count();
            if digits_end - i >= MIN_BOT_ID_DIGITS
                && digits_end < bytes.len()
                && bytes[digits_end] == b':'
            {
                let tail = bytes[digits_end + 1..]
                    .iter()
                    .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_' || **b == b'-')
                    .count();
                if tail >= 30 {
                    res.push_str(&text[copied..i]);
                    res.push_str("<redacted>");
                    i = digits_end + 1 + tail;
                    copied = i;
                    continue;
                }
            }
            i = digits_end;
            continue;
        }
        i += 1;
    }
    res.push_str(&text[copied..]);
    res
}

/// A test-only kill point: when `MTP_TEST_KILL_AT` names this point, the
/// process kills itself with SIGKILL right here, as a crash or an OOM kill
/// would. The kill -9 suite (tests/crash.rs) uses it to prove that `reconcile`
/// can finish or undo every step; unset, it costs one string comparison.
pub(crate) fn fault_point(name: &str) {
    static KILL_AT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let kill_at = KILL_AT.get_or_init(|| std::env::var("MTP_TEST_KILL_AT").ok());
    if kill_at.as_deref() == Some(name) {
        tracing::warn!(point = name, "MTP_TEST_KILL_AT: killing this process here");
        // SAFETY: kill(2) on our own pid has no memory-safety preconditions.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}

/// Creates `path` (and parents) as a 0700 directory.
fn ensure_private_dir(path: &Path) -> anyhow::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .with_context(|| format!("cannot create directory {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot set mode 0700 on {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // See: issue 10 — a token right after letters, as in Bot API URLs, was missed.
    #[test]
    fn redact_hides_tokens_after_letters_but_not_digests() {
        let text = "GET https://api.telegram.org/bot123456:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/getUpdates image sha256:4f14a8b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e";
        assert_eq!(
            redact(text, &[]),
            "GET https://api.telegram.org/bot<redacted>/getUpdates image sha256:4f14a8b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e"
        );
    }

    #[test]
    fn redact_hides_secrets_and_token_shapes() {
        let secrets = [Secret::new("gw-token-0123456789".to_string())];
        let text = "auth gw-token-0123456789 bot 123456:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/getMe port 19100:18789";
        assert_eq!(
            redact(text, &secrets),
            "auth <redacted> bot <redacted>/getMe port 19100:18789"
        );
    }
}
