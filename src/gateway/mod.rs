//! The OpenClaw gateway client (protocol 4, PROTOCOL.md): device identity, the
//! WebSocket RPC connection, one pooled connection per tenant, typed methods, and the
//! HTTP probes and hooks.
//!
//! - `identity`: the admin's Ed25519 key ([`DeviceIdentity`]) and the v3 signature.
//! - `protocol`: wire frames, `connect` params, `hello-ok` ([`Hello`], [`ErrorShape`]).
//! - `error`: [`ConnectError`], [`CallError`], [`PoolError`].
//! - `client`: the handshake and the task that owns the socket ([`Client`]).
//! - `pool`: one lazily opened, self-healing connection per tenant ([`Pool`]).
//! - `methods`: typed calls (`health`, `config.patch`, `usage.cost`, …) and their results.
//! - `http`: `/healthz`, `/readyz`, `/startupz` and `/hooks/*` ([`Http`]).
//!
//! Architecture Invariant: this module talks only to the hosts its callers name
//! (`127.0.0.1`, or a cell's service name on an overlay the admin has joined), and
//! knows nothing of the store, Docker or Telegram; callers hand it endpoints and
//! persist what it reports.

mod client;
mod error;
mod http;
mod identity;
mod methods;
mod pool;
mod protocol;
#[cfg(test)]
mod testing;

pub use client::{Client, Endpoint, Event, Options, State};
pub use error::{CallError, ConnectError, PoolError};
pub use http::{HookAgent, HookAgentAccepted, HookError, Http, Probe, Wake, WakeAccepted};
pub use identity::{DeviceIdentity, SignedFields, v3_payload};
pub use methods::{
    AgentModel, AgentScope, AgentSummary, AgentUsage, AgentsList, CacheStatus, ChannelAccount,
    ChannelIssue, ChannelsQuery, ChannelsStatus, ConfigIssue, ConfigPatch, ConfigPatched,
    ConfigReload, ConfigSnapshot, DevicePairApproved, DevicePairList, EventLoop, Health,
    HealthAgent, HealthPlugins, ModelChoice, ModelDay, ModelRuntime, ModelUsage, ModelsList,
    PairedDevice, PairingRequest, ProcessMemory, SendMessage, SendOutcome, Sent, SessionCount,
    SessionDefaults, SessionsUsage, Skill, SkillInstall, SkillInstalled, SkillInstaller,
    SkillRequirements, SkillUpdate, SkillUpdated, SkillsStatus, Status, StatusSessions,
    StatusTasks, UsageAggregates, UsageCost, UsageDay, UsagePeriod, UsageQuery, UsageTotals,
};
pub use pool::{DeviceTokenIssued, Pool};
pub use protocol::{ErrorShape, Hello, SCOPES};
