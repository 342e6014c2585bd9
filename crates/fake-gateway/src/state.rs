//! Shared state of one fake gateway: start-up settings, the lifecycle phase (starting,
//! accepting, restarting), the pairing store, the rate limiter, the config document,
//! the programmable behaviour set through the control API, and the broadcast channel
//! every connection listens to.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;
use tokio::sync::broadcast;

use crate::config::ConfigDoc;
use crate::pairing::PairingStore;
use crate::ratelimit::RateLimiter;

pub const VERSION: &str = "2026.9.6-fake";
pub const BUILD_ID: &str = "2026.9.6-fake-mtp";
/// Ceiling for an oversized test frame, so a control call cannot exhaust memory.
pub const MAX_OVERSIZE_BYTES: usize = 128 * 1024 * 1024;
/// Just above `policy.maxPayload` (25 MiB).
pub const DEFAULT_OVERSIZE_BYTES: usize = 26_214_400 + 1024;

/// Read once at start.
pub struct Settings {
    /// The shared gateway secret (config `gateway.auth.token`, else env).
    pub token: Option<String>,
    pub state_dir: Option<PathBuf>,
    pub tick_interval: Duration,
    /// How long connects are refused after a restart begins.
    pub restart_down: Duration,
    pub handshake_timeout: Duration,
    pub hostname: String,
}

/// Where the gateway is in its life.
#[derive(Debug, Clone, Copy)]
pub enum Phase {
    Starting { until: Instant },
    Accepting,
    Restarting { until: Instant },
}

/// A broadcast to every connection.
#[derive(Clone, Debug)]
pub enum Signal {
    Event(Arc<BroadcastEvent>),
    /// Send `shutdown` (if any) to authenticated sockets, then close all with `code`.
    Close {
        code: u16,
        reason: String,
        shutdown: Option<Value>,
    },
    /// Cut every socket without a close frame.
    Drop,
}

#[derive(Debug)]
pub struct BroadcastEvent {
    pub name: String,
    pub payload: Value,
    pub audience: Audience,
    pub fault: Option<EventFault>,
}

/// Who receives an event: any authenticated socket, read-scoped ones, or pairing ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    All,
    Read,
    Pairing,
}

/// A fault applied to the next event a connection sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventFault {
    Malformed,
    Oversized { bytes: usize },
    SkipSeq(u64),
}

/// Programmable behaviour (`PUT /__fake/behaviour`), merged key by key.
#[derive(Default, Debug, Clone)]
pub struct Knobs {
    pub delays_ms: HashMap<String, u64>,
    /// Method → how many more calls drop the socket (`u32::MAX` = always).
    pub drop_on: HashMap<String, u32>,
    /// Method → error object returned instead of the result.
    pub errors: HashMap<String, Value>,
    pub no_challenge: bool,
    pub agent: AgentBehaviour,
    /// `skills.install` outcome; `None` = success.
    pub skills_install: Option<Value>,
    /// `cron.status`'s `nextWakeAtMs` (no job: `None`).
    pub cron_next_wake_ms: Option<i64>,
    /// The main agent's heartbeat interval; `None`: the real default (30m, on);
    /// `Some(0)`: heartbeats off.
    pub heartbeat_every_ms: Option<u64>,
    /// The Telegram account's `lastInboundAt` (epoch ms).
    pub last_inbound_at_ms: Option<i64>,
    /// A session with an agent run going on (`sessions.list` `hasActiveRun`).
    pub active_run: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AgentBehaviour {
    /// `ok` | `error` | `timeout`.
    pub outcome: String,
    pub text: String,
    pub error_message: String,
    /// Time between the accepted and the final response.
    pub final_delay_ms: u64,
}

impl Default for AgentBehaviour {
    fn default() -> Self {
        AgentBehaviour {
            outcome: "ok".to_string(),
            text: "fake reply".to_string(),
            error_message: "No route-compatible authentication source is configured for openai."
                .to_string(),
            final_delay_ms: 200,
        }
    }
}

/// One usage figure: tokens and cost of one model on one day.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UsageEntry {
    pub date: chrono::NaiveDate,
    #[serde(default = "default_provider")]
    pub provider: String,
    #[serde(default = "default_model")]
    pub model: String,
    #[serde(default = "default_agent")]
    pub agent_id: String,
    #[serde(default)]
    pub input: u64,
    #[serde(default)]
    pub output: u64,
    #[serde(default)]
    pub cache_read: u64,
    #[serde(default)]
    pub cache_write: u64,
    #[serde(default)]
    pub input_cost: f64,
    #[serde(default)]
    pub output_cost: f64,
    #[serde(default)]
    pub cache_read_cost: f64,
    #[serde(default)]
    pub cache_write_cost: f64,
    /// Defaults to the sum of the four parts.
    #[serde(default)]
    pub total_cost: Option<f64>,
    /// Messages (counted as assistant replies).
    #[serde(default = "one")]
    pub count: u64,
}

fn default_provider() -> String {
    "anthropic".to_string()
}
fn default_model() -> String {
    "claude-opus-4-6".to_string()
}
fn default_agent() -> String {
    "main".to_string()
}
fn one() -> u64 {
    1
}

/// Bounds the usage table.
pub const MAX_USAGE_ENTRIES: usize = 20_000;

/// A programmed Telegram channel state (`PUT /__fake/channels/telegram`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ChannelOverride {
    pub configured: bool,
    pub enabled: bool,
    pub running: bool,
    pub connected: bool,
    pub last_error: Option<String>,
    pub mode: String,
    pub token_source: String,
    pub status_issues: Vec<Value>,
    /// `conflict` (409) or `unauthorized` (401): fills `lastError`, `running`,
    /// `connected` as the real Telegram plugin reports them.
    pub preset: Option<String>,
}

impl Default for ChannelOverride {
    fn default() -> Self {
        ChannelOverride {
            configured: true,
            enabled: true,
            running: true,
            connected: true,
            last_error: None,
            mode: "polling".to_string(),
            token_source: "env".to_string(),
            status_issues: Vec::new(),
            preset: None,
        }
    }
}

impl ChannelOverride {
    /// Applies `preset` (texts from the Telegram plugin of OpenClaw 2026.9.6).
    #[must_use]
    pub fn resolved(mut self) -> ChannelOverride {
        match self.preset.as_deref() {
            Some("conflict") => {
                self.running = true;
                self.connected = false;
                self.last_error = Some(
                    "Telegram getUpdates conflict: Call to 'getUpdates' failed! (409: Conflict: terminated by other getUpdates request; make sure that only one bot instance is running). Another OpenClaw gateway, script, or Telegram poller may be using this bot token; stop the duplicate poller or switch this account to webhook mode."
                        .to_string(),
                );
            }
            Some("unauthorized") => {
                self.running = false;
                self.connected = false;
                self.last_error = Some("Call to 'getMe' failed! (401: Unauthorized)".to_string());
            }
            _ => {}
        }
        self
    }
}

pub struct State {
    pub phase: Phase,
    pub boot_id: String,
    pub booted_at: Instant,
    pub pairing: PairingStore,
    pub limiter: RateLimiter,
    pub config: ConfigDoc,
    pub knobs: Knobs,
    pub usage: Vec<UsageEntry>,
    pub telegram: Option<ChannelOverride>,
    /// Channel runtime toggled by `channels.start`/`channels.stop`.
    pub telegram_stopped_at: Option<i64>,
    pub telegram_started_at: Option<i64>,
    pub event_faults: VecDeque<EventFault>,
    /// Device id → open authenticated sockets.
    pub connected_devices: HashMap<String, usize>,
    pub connections: usize,
    pub last_wake: Option<(String, Instant)>,
}

#[derive(Clone)]
pub struct Gateway {
    shared: Arc<Shared>,
}

struct Shared {
    settings: Settings,
    state: Mutex<State>,
    signals: broadcast::Sender<Signal>,
    /// Tells `serve` to exit (control API `shutdown`).
    exit: tokio::sync::Notify,
}

impl Gateway {
    #[must_use]
    pub fn new(settings: Settings, state: State) -> Gateway {
        // Capacity bounds memory per slow socket; a lagging socket skips seq numbers,
        // as the real gateway does for events it drops.
        let (signals, _) = broadcast::channel(256);
        Gateway {
            shared: Arc::new(Shared {
                settings,
                state: Mutex::new(state),
                signals,
                exit: tokio::sync::Notify::new(),
            }),
        }
    }

    #[must_use]
    pub fn settings(&self) -> &Settings {
        &self.shared.settings
    }

    /// Short critical sections only; never held across an `.await`.
    pub fn state(&self) -> MutexGuard<'_, State> {
        // A poisoned lock means a panic elsewhere; the state itself is still usable.
        self.shared
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<Signal> {
        self.shared.signals.subscribe()
    }

    pub fn signal(&self, signal: Signal) {
        // No receivers is fine: nobody is connected.
        let _ = self.shared.signals.send(signal);
    }

    pub fn broadcast(&self, name: &str, payload: Value, audience: Audience) {
        self.signal(Signal::Event(Arc::new(BroadcastEvent {
            name: name.to_string(),
            payload,
            audience,
            fault: None,
        })));
    }

    /// Whether connects are admitted now; ends a finished start or restart.
    pub fn admitting(&self) -> bool {
        let now = Instant::now();
        let mut state = self.state();
        match state.phase {
            Phase::Accepting => true,
            Phase::Starting { until } | Phase::Restarting { until } if now >= until => {
                if matches!(state.phase, Phase::Restarting { .. }) {
                    state.boot_id = uuid::Uuid::new_v4().to_string();
                    state.booted_at = now;
                    state.config.apply_all();
                }
                state.phase = Phase::Accepting;
                true
            }
            _ => false,
        }
    }

    /// An in-process restart, as in a container: `shutdown` {reason:"gateway
    /// restarting", restartExpectedMs} to every socket, close 1012, refuse connects
    /// with UNAVAILABLE/1013 for `down`, then accept again with a new boot id.
    pub fn restart(&self, restart_expected_ms: u64, down: Duration) {
        {
            let mut state = self.state();
            state.phase = Phase::Restarting {
                until: Instant::now() + down,
            };
        }
        self.signal(Signal::Close {
            code: 1012,
            reason: "service restart".to_string(),
            shutdown: Some(serde_json::json!({
                "reason": "gateway restarting",
                "restartExpectedMs": restart_expected_ms,
            })),
        });
    }

    /// Stop: `shutdown` {reason:"gateway stopping"}, close 1012, then `serve` returns.
    pub fn stop(&self) {
        self.signal(Signal::Close {
            code: 1012,
            reason: "service restart".to_string(),
            shutdown: Some(serde_json::json!({"reason": "gateway stopping"})),
        });
        self.shared.exit.notify_one();
    }

    pub async fn exit_requested(&self) {
        self.shared.exit.notified().await;
    }

    #[must_use]
    pub fn uptime_ms(&self) -> u64 {
        let booted = self.state().booted_at;
        u64::try_from(booted.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

#[must_use]
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
