//! MTP Admin: the operator's control plane for an agents-as-a-service business on
//! OpenClaw. One hardened OpenClaw gateway container ("cell") per client.
//!
//! # Layout
//!
//! - `tenant`: the shared vocabulary (ids, specs, records, `Secret<T>`).
//! - `config`: `AdminConfig`, read and checked once at start.
//! - `store`: the redb file (tenants, secrets, audit, meta).
//! - `runtime`: cells on Docker through bollard.
//! - `gateway`: the OpenClaw client (WebSocket RPC, device identity, HTTP probes).
//! - `fleet`: the use-cases every adapter calls (create, lifecycle, reconcile, …).
//! - `bot`: the Telegram admin bot (teloxide), an adapter over `fleet`.
//! - `cli`: the `mtp` command line (clap), the other adapter over `fleet`.
//! - `monitor`: health sweeps, alert rules, self-healing, digest, `/metrics`.
//! - `usage`: the usage loop, the periods an operator types, CSV and PNG charts (bills and budgets are `fleet`'s).
//! - `serve`: `mtp serve`, the bot and the monitor side by side.
//!
//! Dependencies point one way: adapters → `fleet` → `runtime`, `gateway`, `store`.

pub mod archive;
pub mod backoff;
pub mod bot;
pub mod cli;
pub mod config;
pub mod fleet;
pub mod gateway;
pub mod monitor;
pub mod relay;
pub mod runtime;
pub mod serve;
pub mod store;
pub mod tenant;
pub mod usage;
