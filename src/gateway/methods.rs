//! Typed gateway methods on [`Client`]: the params each method's schema allows
//! (PROTOCOL.md §3) and result structs that keep what the admin uses and ignore the
//! rest. Unknown keys are ignored and missing ones take defaults, so a newer gateway
//! that adds fields does not break parsing.
//!
//! For anything not typed here, use [`Client::call`].

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::NaiveDate;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value, json};

use crate::gateway::client::{Client, response_result};
use crate::gateway::error::CallError;
use crate::tenant::Secret;

// ---- health, status ----

/// `health` (PROTOCOL.md §3.1): the gateway's own health snapshot.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Health {
    pub ok: bool,
    /// Epoch ms of the snapshot (served from a ≤60 s cache unless probed).
    pub ts: i64,
    pub duration_ms: u64,
    pub default_agent_id: Option<String>,
    pub heartbeat_seconds: Option<u64>,
    pub channel_order: Vec<String>,
    /// Per-channel health, channel specific.
    pub channels: Map<String, Value>,
    pub plugins: HealthPlugins,
    pub agents: Vec<HealthAgent>,
    pub event_loop: EventLoop,
    pub model_runtime: ModelRuntime,
    pub config_reload: ConfigReload,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HealthPlugins {
    pub loaded: Vec<String>,
    pub errors: Vec<Value>,
    pub unavailable: Vec<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HealthAgent {
    pub agent_id: String,
    pub name: Option<String>,
    pub is_default: bool,
    pub sessions: SessionCount,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SessionCount {
    pub count: u64,
}

/// Event-loop health, reported by `health`, `status` and `channels.status`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EventLoop {
    pub degraded: bool,
    pub reasons: Vec<String>,
    pub delay_p99_ms: f64,
    pub utilization: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ModelRuntime {
    pub degraded: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConfigReload {
    /// `active` or `disabled`.
    pub hot_reload_status: String,
}

/// `status` (PROTOCOL.md §3.2).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Status {
    /// OpenClaw version of the cell.
    pub runtime_version: String,
    pub pid: Option<u64>,
    pub sessions: StatusSessions,
    pub tasks: StatusTasks,
    pub process_memory: ProcessMemory,
    pub degraded_plugins: Vec<Value>,
    pub degraded_secret_owners: Vec<Value>,
    pub channel_summary: Vec<Value>,
    pub event_loop: EventLoop,
    pub model_runtime: ModelRuntime,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StatusSessions {
    pub count: u64,
    pub defaults: SessionDefaults,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SessionDefaults {
    pub model: Option<String>,
    pub context_tokens: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StatusTasks {
    pub total: u64,
    pub active: u64,
    pub failures: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ProcessMemory {
    pub rss_bytes: u64,
    pub heap_used_bytes: u64,
}

// ---- config ----

/// `config.get` (PROTOCOL.md §3.3). Secrets in `raw` and `config` are redacted by the
/// gateway as `__OPENCLAW_REDACTED__`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConfigSnapshot {
    pub path: String,
    pub exists: bool,
    pub valid: bool,
    /// The authored revision: pass it as `base_hash` to `config_patch`.
    pub hash: Option<String>,
    /// The resolved revision on disk.
    pub config_revision_hash: Option<String>,
    /// The revision the running gateway uses; differs from the above while a restart is pending.
    pub applied_config_hash: Option<String>,
    /// The JSON5 text (redacted); `None` when the file is invalid.
    pub raw: Option<String>,
    /// The redacted effective config.
    pub config: Value,
    pub issues: Vec<ConfigIssue>,
    pub warnings: Vec<Value>,
}

impl ConfigSnapshot {
    /// Whether the file on disk is ahead of what the running gateway applied.
    #[must_use]
    pub fn restart_pending(&self) -> bool {
        self.config_revision_hash.is_some() && self.config_revision_hash != self.applied_config_hash
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConfigIssue {
    pub path: String,
    pub message: String,
}

/// A `config.patch` request (PROTOCOL.md §3.5).
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigPatch {
    /// A JSON5 object applied as JSON merge patch (`null` deletes a key).
    pub raw: String,
    /// `hash` from the `config.get` this patch was computed from.
    pub base_hash: String,
    /// Paths whose arrays the patch replaces (required when it would drop entries).
    pub replace_paths: Vec<String>,
    /// Free text recorded with the change.
    pub note: Option<String>,
}

/// What `config.patch` did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigPatched {
    /// The patch changed nothing.
    pub noop: bool,
    pub path: String,
    /// The new authored revision (absent for a no-op).
    pub hash: Option<String>,
    pub changed_paths: Vec<String>,
    /// The change needs a gateway restart; the gateway restarts by itself shortly
    /// (watch for `State::Reconnecting`), then `config.get` confirms the new revision.
    pub requires_restart: bool,
    /// The gateway scheduled the restart itself (reload mode `off`).
    pub restart_scheduled: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct ConfigPatchedWire {
    noop: bool,
    path: String,
    hash: Option<String>,
    changed_paths: Vec<String>,
    restart: Option<Value>,
    sentinel: Option<Value>,
}

// ---- usage ----

/// Which days a usage query covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsagePeriod {
    /// The last `n` days, ending today (UTC).
    Days(u32),
    /// From `start` to `end`, both included (UTC calendar days).
    Dates { start: NaiveDate, end: NaiveDate },
}

/// Whose usage a query counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentScope {
    /// The gateway's default agent (the gateway's own default).
    Default,
    /// Every agent of the cell: what a tenant's bill counts.
    All,
    /// One agent by id.
    One(String),
}

/// Params of `usage.cost` and `sessions.usage` (PROTOCOL.md §3.8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageQuery {
    pub period: UsagePeriod,
    pub agents: AgentScope,
    /// The IANA zone whose calendar days the figures count (`mode: "specific"`);
    /// `None` counts UTC days (`mode: "utc"`).
    pub time_zone: Option<String>,
}

/// Token and cost totals (`usage.cost` days and totals, `sessions.usage` groups).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct UsageTotals {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write: u64,
    pub total_tokens: u64,
    /// US dollars, as priced by the gateway's model catalog.
    pub total_cost: f64,
    pub input_cost: f64,
    pub output_cost: f64,
    pub cache_read_cost: f64,
    pub cache_write_cost: f64,
    /// Entries the gateway could not price (unknown model price).
    pub missing_cost_entries: u64,
}

/// One calendar day of `usage.cost`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageDay {
    pub date: NaiveDate,
    #[serde(flatten)]
    pub totals: UsageTotals,
}

/// `usage.cost`: per-day totals, zero-filled, no per-model breakdown.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct UsageCost {
    pub updated_at: i64,
    pub days: u32,
    pub daily: Vec<UsageDay>,
    pub totals: UsageTotals,
    pub cache_status: CacheStatus,
}

/// How fresh the gateway's usage cache was (`fresh`, `partial`, `stale`, `refreshing`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CacheStatus {
    pub status: String,
    pub pending_files: u64,
    pub stale_files: u64,
}

/// `sessions.usage`: per-model and per-agent usage over a period.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SessionsUsage {
    pub updated_at: i64,
    pub start_date: Option<NaiveDate>,
    pub end_date: Option<NaiveDate>,
    pub totals: UsageTotals,
    pub aggregates: UsageAggregates,
    pub cache_status: CacheStatus,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct UsageAggregates {
    pub session_count: u64,
    pub by_model: Vec<ModelUsage>,
    pub by_agent: Vec<AgentUsage>,
    pub model_daily: Vec<ModelDay>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ModelUsage {
    pub provider: Option<String>,
    pub model: Option<String>,
    pub count: u64,
    pub totals: UsageTotals,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AgentUsage {
    pub agent_id: String,
    pub totals: UsageTotals,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ModelDay {
    pub date: Option<NaiveDate>,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub tokens: u64,
    pub cost: f64,
    pub count: u64,
}

// ---- skills ----

/// `skills.status` (PROTOCOL.md §3.9) for the default agent.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SkillsStatus {
    pub workspace_dir: String,
    pub managed_skills_dir: String,
    pub agent_id: String,
    pub skills: Vec<Skill>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Skill {
    pub name: String,
    pub description: String,
    /// `openclaw-bundled`, `openclaw-custodian`, workspace or managed sources.
    pub source: String,
    pub bundled: bool,
    /// The key under `skills.entries` in the config.
    pub skill_key: String,
    pub emoji: Option<String>,
    pub homepage: Option<String>,
    pub primary_env: Option<String>,
    pub always: bool,
    pub disabled: bool,
    pub blocked_by_allowlist: bool,
    pub blocked_by_agent_filter: bool,
    /// Usable now: requirements met, not disabled or blocked.
    pub eligible: bool,
    pub platform_incompatible: bool,
    pub model_visible: bool,
    pub user_invocable: bool,
    pub requirements: SkillRequirements,
    /// The part of `requirements` that is not met.
    pub missing: SkillRequirements,
    /// Installers that can satisfy `missing` (`skills.install` by `id`).
    pub install: Vec<SkillInstaller>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SkillRequirements {
    pub bins: Vec<String>,
    pub any_bins: Vec<String>,
    pub env: Vec<String>,
    pub config: Vec<String>,
    pub os: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SkillInstaller {
    pub id: String,
    pub kind: String,
    pub label: String,
    pub bins: Vec<String>,
}

/// A `skills.install` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkillInstall {
    /// Run a skill's declared installer (`install[].id` of `skills.status`) in the cell.
    Installer { name: String, install_id: String },
    /// Install from ClawHub (needs the cell to reach ClawHub).
    ClawHub {
        slug: String,
        version: Option<String>,
        force: bool,
    },
}

/// What `skills.install` did. A failed installer is `ok: false` with its output,
/// not an error.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SkillInstalled {
    pub ok: bool,
    pub message: String,
    pub stdout: String,
    pub stderr: String,
    pub code: Option<i64>,
    pub slug: Option<String>,
    pub version: Option<String>,
    pub target_dir: Option<String>,
    pub warning: Option<String>,
}

/// A `skills.update` request.
#[derive(Debug, Clone, PartialEq)]
pub enum SkillUpdate {
    /// Writes `skills.entries.<skill_key>`; `None` leaves a field as it is.
    Entry {
        skill_key: String,
        enabled: Option<bool>,
        api_key: Option<Secret<String>>,
        env: BTreeMap<String, Secret<String>>,
    },
    /// Refreshes ClawHub-installed skills: one `slug`, or all when `None`.
    ClawHub { slug: Option<String>, force: bool },
}

/// What `skills.update` did.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SkillUpdated {
    pub ok: bool,
    /// The updated key, or the slug (`*` for all) of a ClawHub refresh.
    pub skill_key: String,
    pub config: Value,
}

// ---- channels ----

/// Params of `channels.status`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelsQuery {
    /// Ask each channel to check its connection now (e.g. Telegram `getMe`).
    pub probe: bool,
    /// Only this channel (`telegram`).
    pub channel: Option<String>,
    /// The gateway's own deadline for probes.
    pub timeout: Option<Duration>,
}

/// `channels.status` (PROTOCOL.md §3.11).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ChannelsStatus {
    pub ts: i64,
    pub channel_order: Vec<String>,
    pub channel_labels: BTreeMap<String, String>,
    /// Per-channel summary, channel specific.
    pub channels: Map<String, Value>,
    pub channel_accounts: BTreeMap<String, Vec<ChannelAccount>>,
    pub channel_default_account_id: BTreeMap<String, String>,
    pub partial: bool,
    pub warnings: Vec<String>,
    pub status_issues: Vec<ChannelIssue>,
}

/// One account of a channel (e.g. the tenant's Telegram bot).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ChannelAccount {
    pub account_id: String,
    pub name: Option<String>,
    pub enabled: Option<bool>,
    pub configured: Option<bool>,
    pub linked: Option<bool>,
    pub running: Option<bool>,
    pub connected: Option<bool>,
    pub reconnect_attempts: Option<u64>,
    /// Epoch ms.
    pub last_connected_at: Option<i64>,
    /// The last failure, e.g. a Telegram 409 conflict (another poller uses the token).
    pub last_error: Option<String>,
    pub health_state: Option<String>,
    pub last_inbound_at: Option<i64>,
    pub last_outbound_at: Option<i64>,
    pub mode: Option<String>,
    pub dm_policy: Option<String>,
    pub probe: Option<Value>,
}

/// A problem the gateway diagnosed on a channel account.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ChannelIssue {
    pub channel: String,
    pub account_id: String,
    /// `intent`, `permissions`, `config`, `auth` or `runtime`.
    pub kind: String,
    pub message: String,
    pub fix: Option<String>,
}

// ---- agents, models ----

/// `agents.list` (PROTOCOL.md §3.12).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AgentsList {
    pub default_id: String,
    pub main_key: String,
    /// `per-sender` or `global`.
    pub scope: String,
    pub ownership: Option<String>,
    pub agents: Vec<AgentSummary>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AgentSummary {
    pub id: String,
    pub name: Option<String>,
    pub workspace: Option<String>,
    pub model: Option<AgentModel>,
    pub status: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AgentModel {
    /// `provider/model`.
    pub primary: Option<String>,
    pub fallbacks: Vec<String>,
}

/// `models.list` (PROTOCOL.md §3.12): the passive catalog (no provider discovery).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ModelsList {
    pub models: Vec<ModelChoice>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ModelChoice {
    pub id: String,
    pub name: String,
    pub provider: String,
    pub alias: Option<String>,
    pub tags: Vec<String>,
    pub available: Option<bool>,
}

// ---- send ----

/// A `send` request: one direct outbound message, no agent run (PROTOCOL.md §3.14).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendMessage {
    /// Recipient in the channel's terms (a Telegram chat id).
    pub to: String,
    pub message: String,
    /// `telegram`; `None` lets the gateway pick.
    pub channel: Option<String>,
    pub account_id: Option<String>,
    /// Makes a retried send deliver once (the gateway remembers keys for 5 minutes).
    pub idempotency_key: String,
}

/// What happened to a `send`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    Sent(Sent),
    /// Delivery failed for now; the gateway queued the message and retries it.
    Queued {
        message: String,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Sent {
    pub run_id: String,
    #[serde(deserialize_with = "string_or_number")]
    pub message_id: Option<String>,
    pub channel: String,
    #[serde(deserialize_with = "string_or_number")]
    pub chat_id: Option<String>,
}

// ---- device pairing ----

/// `device.pair.list`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DevicePairList {
    pub pending: Vec<PairingRequest>,
    pub paired: Vec<PairedDevice>,
}

/// A device waiting for approval.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PairingRequest {
    pub request_id: String,
    pub device_id: String,
    pub public_key: String,
    pub platform: Option<String>,
    pub client_id: Option<String>,
    pub client_mode: Option<String>,
    pub role: Option<String>,
    pub scopes: Vec<String>,
    pub remote_ip: Option<String>,
    pub is_repair: bool,
    /// Epoch ms of the request.
    pub ts: i64,
}

/// An approved device. Its tokens are deliberately not kept.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PairedDevice {
    pub device_id: String,
    pub public_key: String,
    pub platform: Option<String>,
    pub client_id: Option<String>,
    pub client_mode: Option<String>,
    pub role: Option<String>,
    pub roles: Vec<String>,
    pub scopes: Vec<String>,
    pub remote_ip: Option<String>,
    pub approved_via: Option<String>,
    pub created_at_ms: Option<i64>,
    pub approved_at_ms: Option<i64>,
}

/// `device.pair.approve`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DevicePairApproved {
    pub request_id: String,
    pub device: PairedDevice,
}

/// Slack added to a long operation's own deadline for the answer to travel back.
const ANSWER_SLACK: Duration = Duration::from_secs(5);

impl Client {
    /// `health`, possibly from the gateway's ≤60 s cache. Needs no scope.
    ///
    /// # Errors
    ///
    /// See [`Client::call`]; a malformed result is `CallError::Protocol`.
    pub async fn health(&self) -> Result<Health, CallError> {
        self.typed("health", Value::Null).await
    }

    /// `health {probe: true}`: a fresh snapshot.
    ///
    /// # Errors
    ///
    /// As [`Client::health`].
    pub async fn health_probe(&self) -> Result<Health, CallError> {
        self.typed("health", json!({"probe": true})).await
    }

    /// `status`.
    ///
    /// # Errors
    ///
    /// See [`Client::call`]; a malformed result is `CallError::Protocol`.
    pub async fn status(&self) -> Result<Status, CallError> {
        self.typed("status", Value::Null).await
    }

    /// `config.get`.
    ///
    /// # Errors
    ///
    /// See [`Client::call`]; a malformed result is `CallError::Protocol`.
    pub async fn config_get(&self) -> Result<ConfigSnapshot, CallError> {
        self.typed("config.get", json!({})).await
    }

    /// `config.patch`; waits until a hot-applicable change is live.
    ///
    /// # Errors
    ///
    /// `CallError::ConfigConflict` when `base_hash` is stale (read again and retry),
    /// `CallError::Rpc` with `details.issues` for an invalid config, `RateLimited`
    /// after 30 writes a minute, else as [`Client::call`].
    pub async fn config_patch(&self, patch: &ConfigPatch) -> Result<ConfigPatched, CallError> {
        let mut params = json!({"raw": patch.raw, "baseHash": patch.base_hash});
        if !patch.replace_paths.is_empty() {
            params["replacePaths"] = json!(patch.replace_paths);
        }
        if let Some(note) = &patch.note {
            params["note"] = json!(note);
        }
        let wire: ConfigPatchedWire = self.typed("config.patch", params).await?;
        Ok(config_patched(wire))
    }

    /// `usage.cost`: per-day token and cost totals.
    ///
    /// # Errors
    ///
    /// See [`Client::call`]; a malformed result is `CallError::Protocol`.
    pub async fn usage_cost(&self, query: &UsageQuery) -> Result<UsageCost, CallError> {
        let params = usage_params(query, chrono::Utc::now().date_naive());
        self.typed("usage.cost", params).await
    }

    /// `sessions.usage`: per-model and per-agent usage.
    ///
    /// # Errors
    ///
    /// See [`Client::call`]; a malformed result is `CallError::Protocol`.
    pub async fn sessions_usage(&self, query: &UsageQuery) -> Result<SessionsUsage, CallError> {
        let mut params = usage_params(query, chrono::Utc::now().date_naive());
        // Aggregates cover every session; the per-session rows, which are not kept,
        // are cut to one.
        params["limit"] = json!(1);
        self.typed("sessions.usage", params).await
    }

    /// `skills.status` of the default agent.
    ///
    /// # Errors
    ///
    /// See [`Client::call`]; a malformed result is `CallError::Protocol`.
    pub async fn skills_status(&self) -> Result<SkillsStatus, CallError> {
        self.typed("skills.status", json!({})).await
    }

    /// `skills.install`, letting the gateway run it for up to `timeout`.
    ///
    /// # Errors
    ///
    /// See [`Client::call`]. A failing installer is `Ok` with `ok: false`.
    pub async fn skills_install(
        &self,
        install: &SkillInstall,
        timeout: Duration,
    ) -> Result<SkillInstalled, CallError> {
        // The gateway's schema wants at least 1000 ms.
        let timeout_ms = u64::try_from(timeout.as_millis())
            .unwrap_or(u64::MAX)
            .max(1000);
        let params = match install {
            SkillInstall::Installer { name, install_id } => {
                json!({"name": name, "installId": install_id, "timeoutMs": timeout_ms})
            }
            SkillInstall::ClawHub {
                slug,
                version,
                force,
            } => {
                let mut params =
                    json!({"source": "clawhub", "slug": slug, "timeoutMs": timeout_ms});
                if let Some(version) = version {
                    params["version"] = json!(version);
                }
                if *force {
                    params["force"] = json!(true);
                }
                params
            }
        };
        let response = self
            .request("skills.install", Some(&params), timeout + ANSWER_SLACK)
            .await?;
        // A failed install is UNAVAILABLE with the installer's output as payload.
        if !response.ok
            && let Some(payload) = response.payload.as_ref().filter(|p| p.get("ok").is_some())
        {
            return parse("skills.install", payload.clone());
        }
        parse("skills.install", response_result(response)?)
    }

    /// `skills.update`.
    ///
    /// # Errors
    ///
    /// See [`Client::call`]; a failed ClawHub refresh is `CallError::Unavailable` with
    /// per-skill `details.results`.
    pub async fn skills_update(&self, update: &SkillUpdate) -> Result<SkillUpdated, CallError> {
        let params = match update {
            SkillUpdate::Entry {
                skill_key,
                enabled,
                api_key,
                env,
            } => {
                let mut params = json!({"skillKey": skill_key});
                if let Some(enabled) = enabled {
                    params["enabled"] = json!(enabled);
                }
                if let Some(api_key) = api_key {
                    params["apiKey"] = json!(api_key.expose());
                }
                if !env.is_empty() {
                    let env: Map<String, Value> = env
                        .iter()
                        .map(|(key, value)| (key.clone(), json!(value.expose())))
                        .collect();
                    params["env"] = Value::Object(env);
                }
                params
            }
            SkillUpdate::ClawHub { slug, force } => {
                let mut params = json!({"source": "clawhub"});
                match slug {
                    Some(slug) => params["slug"] = json!(slug),
                    None => params["all"] = json!(true),
                }
                if *force {
                    params["force"] = json!(true);
                }
                params
            }
        };
        self.typed("skills.update", params).await
    }

    /// `channels.status`.
    ///
    /// # Errors
    ///
    /// See [`Client::call`]; a malformed result is `CallError::Protocol`.
    pub async fn channels_status(
        &self,
        query: &ChannelsQuery,
    ) -> Result<ChannelsStatus, CallError> {
        let mut params = json!({});
        if query.probe {
            params["probe"] = json!(true);
        }
        if let Some(channel) = &query.channel {
            params["channel"] = json!(channel);
        }
        let mut timeout = self.call_timeout();
        if let Some(probe_timeout) = query.timeout {
            params["timeoutMs"] =
                json!(u64::try_from(probe_timeout.as_millis()).unwrap_or(u64::MAX));
            timeout = timeout.max(probe_timeout + ANSWER_SLACK);
        }
        let response = self
            .request("channels.status", Some(&params), timeout)
            .await?;
        parse("channels.status", response_result(response)?)
    }

    /// `agents.list`.
    ///
    /// # Errors
    ///
    /// See [`Client::call`]; a malformed result is `CallError::Protocol`.
    pub async fn agents_list(&self) -> Result<AgentsList, CallError> {
        self.typed("agents.list", json!({})).await
    }

    /// `models.list` (passive; no provider discovery).
    ///
    /// # Errors
    ///
    /// See [`Client::call`]; a malformed result is `CallError::Protocol`.
    pub async fn models_list(&self) -> Result<ModelsList, CallError> {
        self.typed("models.list", json!({})).await
    }

    /// `send`: one direct message through a channel, no agent involved.
    ///
    /// # Errors
    ///
    /// See [`Client::call`]. A delivery the gateway queued for retry is
    /// `Ok(SendOutcome::Queued)`.
    pub async fn send(&self, message: &SendMessage) -> Result<SendOutcome, CallError> {
        let mut params = json!({
            "to": message.to,
            "message": message.message,
            "idempotencyKey": message.idempotency_key,
        });
        if let Some(channel) = &message.channel {
            params["channel"] = json!(channel);
        }
        if let Some(account_id) = &message.account_id {
            params["accountId"] = json!(account_id);
        }
        match self.typed::<Sent>("send", params).await {
            Ok(sent) => Ok(SendOutcome::Sent(sent)),
            Err(CallError::Unavailable {
                message, details, ..
            }) if details
                .as_ref()
                .and_then(|d| d.get("code"))
                .and_then(Value::as_str)
                == Some("OUTBOUND_DELIVERY_QUEUED") =>
            {
                Ok(SendOutcome::Queued { message })
            }
            Err(err) => Err(err),
        }
    }

    /// `device.pair.list`.
    ///
    /// # Errors
    ///
    /// See [`Client::call`]; needs `operator.pairing`.
    pub async fn device_pair_list(&self) -> Result<DevicePairList, CallError> {
        self.typed("device.pair.list", json!({})).await
    }

    /// `device.pair.approve` of a pending request.
    ///
    /// # Errors
    ///
    /// See [`Client::call`]; needs `operator.pairing` and the scopes being granted.
    pub async fn device_pair_approve(
        &self,
        request_id: &str,
    ) -> Result<DevicePairApproved, CallError> {
        self.typed("device.pair.approve", json!({"requestId": request_id}))
            .await
    }

    async fn typed<T: DeserializeOwned>(
        &self,
        method: &str,
        params: Value,
    ) -> Result<T, CallError> {
        let payload = self.call(method, params).await?;
        parse(method, payload)
    }
}

/// Parses a result payload; the error names the path, never the value (it may be secret).
fn parse<T: DeserializeOwned>(method: &str, payload: Value) -> Result<T, CallError> {
    serde_path_to_error::deserialize(payload).map_err(|err| {
        let path = err.path().to_string();
        let what = match err.inner().classify() {
            serde_json::error::Category::Data => "wrong type or value",
            _ => "malformed",
        };
        CallError::Protocol(format!("unexpected {method} result at {path}: {what}"))
    })
}

/// Params shared by `usage.cost` and `sessions.usage`. Both take explicit UTC dates
/// (`sessions.usage` refuses `days`), so "the last n days" ends on `today`.
fn usage_params(query: &UsageQuery, today: NaiveDate) -> Value {
    let (start, end) = match &query.period {
        UsagePeriod::Days(days) => {
            let back = chrono::Days::new(u64::from(days.saturating_sub(1)));
            (
                today.checked_sub_days(back).unwrap_or(NaiveDate::MIN),
                today,
            )
        }
        UsagePeriod::Dates { start, end } => (*start, *end),
    };
    let mut params = json!({
        "startDate": start.format("%Y-%m-%d").to_string(),
        "endDate": end.format("%Y-%m-%d").to_string(),
        "mode": "utc",
    });
    if let Some(time_zone) = &query.time_zone {
        params["mode"] = json!("specific");
        params["timeZone"] = json!(time_zone);
    }
    match &query.agents {
        AgentScope::Default => {}
        AgentScope::All => params["agentScope"] = json!("all"),
        AgentScope::One(agent_id) => params["agentId"] = json!(agent_id),
    }
    params
}

fn config_patched(wire: ConfigPatchedWire) -> ConfigPatched {
    let requires_restart = wire
        .sentinel
        .as_ref()
        .and_then(|sentinel| sentinel.pointer("/payload/stats/requiresRestart"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    ConfigPatched {
        noop: wire.noop,
        path: wire.path,
        hash: wire.hash,
        changed_paths: wire.changed_paths,
        requires_restart,
        restart_scheduled: wire.restart.is_some(),
    }
}

/// Ids that some channels send as numbers and others as strings.
fn string_or_number<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(deserializer)? {
        Some(Value::String(text)) => Some(text),
        Some(Value::Number(number)) => Some(number.to_string()),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::gateway::testing::transcript_payload;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/gateway");

    /// The recorded payload answering request `id` of transcript `name`.
    fn recorded(name: &str, id: &str) -> Value {
        let text = std::fs::read_to_string(format!("{FIXTURES}/{name}")).unwrap();
        transcript_payload(&text, id)
    }

    /// A payload saved from the real cell (one JSON document).
    fn saved(name: &str) -> Value {
        let text = std::fs::read_to_string(format!("{FIXTURES}/{name}")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    fn check<T: DeserializeOwned>(method: &str, payload: Value) -> T {
        parse(method, payload).unwrap_or_else(|err| panic!("{method}: {err}"))
    }

    #[test]
    fn parses_recorded_health() {
        let health: Health = check("health", recorded("health.jsonl", "r1"));
        assert!(health.ok);
        assert_eq!(health.default_agent_id.as_deref(), Some("main"));
        assert_eq!(health.heartbeat_seconds, Some(1800));
        assert_eq!(health.agents.len(), 1);
        assert!(health.agents[0].is_default);
        assert_eq!(health.plugins.loaded.len(), 14);
        assert_eq!(health.config_reload.hot_reload_status, "active");
        assert!(!health.event_loop.degraded);
    }

    #[test]
    fn parses_recorded_status() {
        let status: Status = check("status", recorded("status.jsonl", "r1"));
        assert_eq!(status.runtime_version, "2026.9.6");
        assert_eq!(status.pid, Some(2993));
        assert_eq!(status.process_memory.rss_bytes, 818_393_088);
        assert_eq!(
            status.sessions.defaults.model.as_deref(),
            Some("gpt-6-astra")
        );
        assert_eq!(status.sessions.defaults.context_tokens, Some(272_000));
        assert_eq!(status.tasks.total, 0);
    }

    #[test]
    fn parses_recorded_config_get() {
        let config: ConfigSnapshot = check("config.get", recorded("config-get.jsonl", "r1"));
        assert!(config.exists && config.valid);
        assert_eq!(
            config.hash.as_deref(),
            Some("hmac-sha256:v1:rznGPJggdgvzHx238jDefOTbmzPSP340NGhRKRAUQmg")
        );
        assert!(!config.restart_pending());
        assert!(config.raw.unwrap().contains("gateway"));
        assert_eq!(config.config["gateway"]["mode"], "local");
        assert!(config.issues.is_empty());
    }

    #[test]
    fn parses_recorded_config_patch_and_noop() {
        let wire: ConfigPatchedWire = check("config.patch", recorded("config-patch.jsonl", "r2"));
        let patched = config_patched(wire);
        assert!(!patched.noop);
        assert_eq!(patched.changed_paths, vec!["skills.entries".to_string()]);
        assert_eq!(
            patched.hash.as_deref(),
            Some("hmac-sha256:v1:WkkkktoDEvTNX_xDlt9H1lAWFkpofpU6OX3k3MfStX0")
        );
        assert!(!patched.requires_restart);
        assert!(!patched.restart_scheduled);
        let noop = config_patched(check("config.patch", recorded("config-patch.jsonl", "r4")));
        assert!(noop.noop);
        assert!(noop.changed_paths.is_empty());
        assert_eq!(noop.hash, None);
    }

    /// A restart-requiring patch is visible through the sentinel's stats.
    #[test]
    fn config_patch_reports_a_pending_restart() {
        let payload = json!({"ok": true, "path": "/p", "hash": "h", "changedPaths": ["gateway.controlUi.basePath"],
            "sentinel": {"persisted": true, "payload": {"stats": {"requiresRestart": true}}}});
        let patched = config_patched(check("config.patch", payload));
        assert!(patched.requires_restart);
    }

    #[test]
    fn parses_recorded_usage_cost() {
        let usage: UsageCost = check("usage.cost", recorded("usage-cost.jsonl", "r1"));
        assert_eq!(usage.days, 7);
        assert_eq!(usage.daily.len(), 7);
        assert_eq!(
            usage.daily[0].date,
            NaiveDate::from_ymd_opt(2026, 11, 17).unwrap()
        );
        assert_eq!(
            usage.daily[6].date,
            NaiveDate::from_ymd_opt(2026, 11, 23).unwrap()
        );
        assert_eq!(usage.totals, UsageTotals::default());
        assert_eq!(usage.cache_status.status, "fresh");
    }

    /// Costs and tokens land in the right fields (names as in `usage.cost`).
    #[test]
    fn parses_usage_figures() {
        let payload = json!({"days": 1, "daily": [{"date": "2026-11-20", "input": 10, "output": 20,
            "cacheRead": 3, "cacheWrite": 4, "totalTokens": 37, "totalCost": 0.5, "inputCost": 0.1,
            "outputCost": 0.4, "missingCostEntries": 2, "missingCostByModel": {"x/y": 2}}],
            "totals": {"totalTokens": 37, "totalCost": 0.5}});
        let usage: UsageCost = check("usage.cost", payload);
        let day = &usage.daily[0];
        assert_eq!(
            (
                day.totals.input,
                day.totals.output,
                day.totals.cache_read,
                day.totals.cache_write
            ),
            (10, 20, 3, 4)
        );
        assert_eq!(day.totals.total_cost, 0.5);
        assert_eq!(day.totals.missing_cost_entries, 2);
        assert_eq!(usage.totals.total_tokens, 37);
    }

    /// `sessions.usage` as the real cell answered it (tests/fixtures/gateway/sessions-usage.json).
    #[test]
    fn parses_real_sessions_usage() {
        let usage: SessionsUsage = check("sessions.usage", saved("sessions-usage.json"));
        assert_eq!(usage.start_date, NaiveDate::from_ymd_opt(2026, 11, 19));
        assert_eq!(usage.end_date, NaiveDate::from_ymd_opt(2026, 11, 25));
        assert_eq!(usage.aggregates.by_agent.len(), 1);
        assert_eq!(usage.aggregates.by_agent[0].agent_id, "main");
        assert!(usage.aggregates.by_model.is_empty());
        assert_eq!(usage.cache_status.status, "fresh");
    }

    /// Per-model rows follow `src/shared/usage-aggregates.ts`.
    #[test]
    fn parses_per_model_usage() {
        let payload = json!({"aggregates": {"sessionCount": 2,
            "byModel": [{"provider": "anthropic", "model": "claude-opus-4-6", "count": 3, "totals": {"totalTokens": 900, "totalCost": 1.25}}],
            "modelDaily": [{"date": "2026-11-20", "provider": "anthropic", "model": "claude-opus-4-6", "tokens": 900, "cost": 1.25, "count": 3}]}});
        let usage: SessionsUsage = check("sessions.usage", payload);
        let by_model = &usage.aggregates.by_model[0];
        assert_eq!(by_model.model.as_deref(), Some("claude-opus-4-6"));
        assert_eq!(by_model.totals.total_cost, 1.25);
        let day = &usage.aggregates.model_daily[0];
        assert_eq!((day.tokens, day.count, day.cost), (900, 3, 1.25));
        assert_eq!(usage.aggregates.session_count, 2);
    }

    #[test]
    fn parses_recorded_skills_status() {
        let skills: SkillsStatus = check("skills.status", recorded("skills-status.jsonl", "r1"));
        assert_eq!(skills.agent_id, "main");
        assert_eq!(skills.skills.len(), 57);
        let one_password = skills
            .skills
            .iter()
            .find(|s| s.skill_key == "1password")
            .unwrap();
        assert!(!one_password.eligible);
        assert_eq!(one_password.missing.bins, vec!["op".to_string()]);
        assert_eq!(one_password.install[0].id, "brew");
        assert_eq!(one_password.source, "openclaw-bundled");
    }

    #[test]
    fn parses_recorded_channels_status() {
        let channels: ChannelsStatus =
            check("channels.status", recorded("channels-status.jsonl", "r1"));
        assert!(channels.channel_order.is_empty());
        assert!(channels.channel_accounts.is_empty());
        assert!(channels.status_issues.is_empty());
    }

    /// A Telegram account in the shape of `ChannelAccountSnapshotSchema`, with a 409 conflict.
    #[test]
    fn parses_a_telegram_account_with_a_conflict() {
        let payload = json!({"ts": 1, "channelOrder": ["telegram"], "channelLabels": {"telegram": "Telegram"},
            "channels": {"telegram": {"configured": true}},
            "channelAccounts": {"telegram": [{"accountId": "default", "enabled": true, "configured": true,
                "running": true, "connected": false, "reconnectAttempts": 3, "lastConnectedAt": null,
                "lastError": "Conflict: terminated by other getUpdates request", "mode": "polling",
                "botTokenSource": "env", "someNewField": {"x": 1}}]},
            "channelDefaultAccountId": {"telegram": "default"},
            "statusIssues": [{"channel": "telegram", "accountId": "default", "kind": "runtime", "message": "409"}]});
        let channels: ChannelsStatus = check("channels.status", payload);
        let account = &channels.channel_accounts["telegram"][0];
        assert_eq!(account.connected, Some(false));
        assert_eq!(account.last_connected_at, None);
        assert!(
            account
                .last_error
                .as_deref()
                .unwrap()
                .starts_with("Conflict")
        );
        assert_eq!(channels.status_issues[0].kind, "runtime");
    }

    #[test]
    fn parses_recorded_agents_and_models() {
        let agents: AgentsList = check("agents.list", recorded("agents-list.jsonl", "r1"));
        assert_eq!(agents.default_id, "main");
        assert_eq!(agents.scope, "per-sender");
        assert_eq!(
            agents.agents[0].model.as_ref().unwrap().primary.as_deref(),
            Some("openai/gpt-6-astra")
        );
        let models: ModelsList = check("models.list", recorded("models-list.jsonl", "r1"));
        assert!(models.models.is_empty());
    }

    #[test]
    fn parses_recorded_device_pairing() {
        let list: DevicePairList = check(
            "device.pair.list",
            recorded("device-pair-approve.jsonl", "r1"),
        );
        assert_eq!(list.pending.len(), 1);
        assert_eq!(
            list.pending[0].request_id,
            "8233b59f-8f51-4861-b890-afd6569e97a0"
        );
        assert_eq!(list.pending[0].remote_ip.as_deref(), Some("192.0.2.10"));
        let approved: DevicePairApproved = check(
            "device.pair.approve",
            recorded("device-pair-approve.jsonl", "r2"),
        );
        assert_eq!(approved.device.approved_via.as_deref(), Some("owner"));
        assert_eq!(approved.device.scopes.len(), 5);
        let real: DevicePairList = check("device.pair.list", saved("device-pair-list.json"));
        assert_eq!(real.paired.len(), 3);
        assert!(
            real.paired
                .iter()
                .all(|device| device.client_id.as_deref() == Some("gateway-client"))
        );
    }

    /// `send` results carry ids as strings or numbers depending on the channel.
    #[test]
    fn parses_send_results() {
        let sent: Sent = check(
            "send",
            json!({"runId": "r", "messageId": 42, "channel": "telegram", "chatId": "-100"}),
        );
        assert_eq!(sent.message_id.as_deref(), Some("42"));
        assert_eq!(sent.chat_id.as_deref(), Some("-100"));
    }

    /// A type error names where it happened, never the value (it may be a secret).
    #[test]
    fn parse_errors_name_the_path_not_the_value() {
        let err = parse::<UsageCost>(
            "usage.cost",
            json!({"daily": [{"date": "sk-secret-value"}]}),
        )
        .unwrap_err();
        let shown = err.to_string();
        assert!(shown.contains("daily[0]"), "{shown}");
        assert!(!shown.contains("sk-secret"), "{shown}");
    }

    /// Usage params name explicit UTC dates and the agent scope.
    #[test]
    fn usage_params_use_explicit_dates() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
        let all_week = UsageQuery {
            period: UsagePeriod::Days(7),
            agents: AgentScope::All,
            time_zone: None,
        };
        assert_eq!(
            usage_params(&all_week, today),
            json!({"startDate": "2026-11-19", "endDate": "2026-11-25", "mode": "utc", "agentScope": "all"})
        );
        let one_day = UsageQuery {
            period: UsagePeriod::Days(0),
            agents: AgentScope::Default,
            time_zone: None,
        };
        assert_eq!(
            usage_params(&one_day, today),
            json!({"startDate": "2026-11-25", "endDate": "2026-11-25", "mode": "utc"})
        );
        let month = UsageQuery {
            period: UsagePeriod::Dates {
                start: NaiveDate::from_ymd_opt(2026, 10, 1).unwrap(),
                end: NaiveDate::from_ymd_opt(2026, 10, 31).unwrap(),
            },
            agents: AgentScope::One("main".to_string()),
            time_zone: None,
        };
        assert_eq!(
            usage_params(&month, today),
            json!({"startDate": "2026-10-01", "endDate": "2026-10-31", "mode": "utc", "agentId": "main"})
        );
        let berlin = UsageQuery {
            time_zone: Some("Europe/Berlin".to_string()),
            ..month
        };
        assert_eq!(
            usage_params(&berlin, today),
            json!({"startDate": "2026-10-01", "endDate": "2026-10-31", "mode": "specific",
                "timeZone": "Europe/Berlin", "agentId": "main"})
        );
    }
}
