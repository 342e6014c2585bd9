//! The admin's way into a cell's gateway: pairing the admin's device with a new
//! cell (inside create), pooled connections for every later call, and `rpc`.
//!
//! Pairing: connect with the gateway token and the signed device block →
//! `PairingRequired { request_id }` → `node dist/index.js devices approve <id>`
//! in the cell (Docker exec) → connect again → store the issued device token.

use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use serde_json::Value;

use crate::fleet::inventory::known;
use crate::fleet::obstacle::{Asleep, NotPaired};
use crate::fleet::{Actor, App, audit_result, now, redact, secret_values};
use crate::gateway::{self, ConnectError, Endpoint};
use crate::tenant::{SecretKind, TenantId, TenantRecord};

/// Approvals tried before giving up; one is normal, a second covers a request
/// that expired between connect and approve.
const MAX_APPROVALS: usize = 3;

/// What the gateway says of itself and of the tenant's Telegram bot.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayInfo {
    pub version: String,
    pub scopes: Vec<String>,
    /// The Telegram account of the cell (its default account), if configured.
    pub telegram: Option<ChannelInfo>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChannelInfo {
    pub running: Option<bool>,
    pub connected: Option<bool>,
    pub last_error: Option<String>,
}

/// Pairs the admin with the tenant's gateway (again), storing the device token.
///
/// # Errors
///
/// Unknown tenant, no gateway token, the gateway refusing, or approve failing.
pub async fn pair(app: &App, actor: &Actor, tenant: &TenantId) -> anyhow::Result<()> {
    let _guard = crate::fleet::lock::acquire(app, tenant, crate::fleet::lock::Op::Pair, actor)?;
    let record = known(app, tenant)?;
    let result = pair_cell(app, &record, app.config.cell.health_timeout).await;
    if result.is_ok() {
        app.store.update_tenant(tenant, |record| {
            record.paired = true;
            record.updated_at = now();
            Ok(())
        })?;
    }
    audit_result(app, actor, "pair", tenant, "pair", &result);
    result
}

/// The pairing dance with one running cell, within `timeout`.
pub(crate) async fn pair_cell(
    app: &App,
    record: &TenantRecord,
    timeout: Duration,
) -> anyhow::Result<()> {
    let tenant = &record.id;
    let gateway_token = app
        .store
        .secret(tenant, SecretKind::GatewayToken)?
        .ok_or_else(|| anyhow!("tenant {tenant} has no gateway token in the store"))?;
    let (host, port) = app.runtime.gateway_at(tenant, record.port);
    let endpoint = Endpoint {
        host,
        port,
        gateway_token,
        device_token: None,
    };
    let started = Instant::now();
    let mut approvals = 0;
    loop {
        let options = gateway::Options {
            connect_timeout: timeout
                .saturating_sub(started.elapsed())
                .max(Duration::from_secs(5)),
            ..gateway::Options::default()
        };
        match gateway::Client::connect(&endpoint, &app.identity, options).await {
            Ok(client) => {
                let hello = client.hello();
                client.close();
                let Some(device_token) = hello.device_token.clone() else {
                    bail!("the gateway accepted the admin but issued no device token");
                };
                app.store
                    .put_secret(tenant, SecretKind::DeviceToken, &device_token)?;
                app.pool.set_endpoint(
                    tenant.clone(),
                    Endpoint {
                        device_token: Some(device_token),
                        ..endpoint
                    },
                );
                return Ok(());
            }
            Err(ConnectError::PairingRequired { request_id, .. }) => {
                approvals += 1;
                if approvals > MAX_APPROVALS {
                    bail!("the gateway still asks for pairing after {MAX_APPROVALS} approvals");
                }
                if request_id.is_empty()
                    || !request_id
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                {
                    bail!("the gateway sent a malformed pairing request id");
                }
                // With the cell's secrets exported as for the gateway: its
                // config names them (`${OPENCLAW_GATEWAY_TOKEN}`).
                let command = crate::runtime::with_secrets_exported(&[
                    "node",
                    "dist/index.js",
                    "devices",
                    "approve",
                    &request_id,
                ]);
                let command: Vec<&str> = command.iter().map(String::as_str).collect();
                let output = app
                    .runtime
                    .exec(tenant, &command)
                    .await
                    .context("cannot run the approve command in the cell")?;
                if output.exit_code != 0 {
                    let text = redact(output.output.trim(), &secret_values(app, tenant)?);
                    bail!(
                        "approving the admin's device in the cell failed (exit {}): {text}",
                        output.exit_code
                    );
                }
            }
            Err(ConnectError::Unavailable { .. }) if started.elapsed() < timeout => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(err) => return Err(anyhow!(err).context("cannot connect to the cell's gateway")),
        }
    }
}

/// The tenant's pooled gateway connection (opened now if needed).
///
/// # Errors
///
/// Unknown tenant, not paired, or the gateway refusing.
pub(crate) async fn client(app: &App, tenant: &TenantId) -> anyhow::Result<gateway::Client> {
    let record = known(app, tenant)?;
    if record.state == crate::tenant::CellState::Sleeping {
        return Err(Asleep {
            tenant: tenant.clone(),
        }
        .into());
    }
    client_of(app, &record).await
}

/// The pooled connection of a cell whatever its record says (for the steps
/// of a sleep, which records it first).
pub(crate) async fn client_of(app: &App, record: &TenantRecord) -> anyhow::Result<gateway::Client> {
    register(app, record)?;
    app.pool
        .client(&record.id)
        .await
        .with_context(|| format!("cannot reach the gateway of {}", record.id))
}

/// Registers (or refreshes) the tenant's endpoint in the pool from the store.
pub(crate) fn register(app: &App, record: &TenantRecord) -> anyhow::Result<()> {
    let tenant = &record.id;
    let gateway_token = app
        .store
        .secret(tenant, SecretKind::GatewayToken)?
        .ok_or_else(|| anyhow!("tenant {tenant} has no gateway token in the store"))?;
    let device_token = app.store.secret(tenant, SecretKind::DeviceToken)?;
    if device_token.is_none() {
        return Err(NotPaired {
            tenant: tenant.clone(),
        }
        .into());
    }
    app.pool.set_endpoint(
        tenant.clone(),
        Endpoint {
            host: app.runtime.gateway_at(tenant, record.port).0,
            port: app.runtime.gateway_at(tenant, record.port).1,
            gateway_token,
            device_token,
        },
    );
    Ok(())
}

/// Calls one gateway method with raw JSON params and returns the raw result.
///
/// # Errors
///
/// Unknown tenant, no connection, or the gateway's error.
pub async fn rpc(
    app: &App,
    tenant: &TenantId,
    method: &str,
    params: Value,
) -> anyhow::Result<Value> {
    let client = client(app, tenant).await?;
    client
        .call(method, params)
        .await
        .with_context(|| format!("{method} on {tenant} failed"))
}

/// Version, scopes and Telegram channel status of a running, paired cell.
///
/// # Errors
///
/// As `client`, or the gateway refusing `channels.status`.
pub async fn gateway_info(app: &App, tenant: &TenantId) -> anyhow::Result<GatewayInfo> {
    let client = client(app, tenant).await?;
    let hello = client.hello();
    let channels = client
        .channels_status(&gateway::ChannelsQuery::default())
        .await
        .with_context(|| format!("channels.status on {tenant} failed"))?;
    Ok(GatewayInfo {
        version: hello.server_version.clone(),
        scopes: hello.scopes.clone(),
        telegram: telegram_of(&channels),
    })
}

/// The Telegram default account in a `channels.status` answer.
pub(crate) fn telegram_of(channels: &gateway::ChannelsStatus) -> Option<ChannelInfo> {
    let accounts = channels.channel_accounts.get("telegram")?;
    let default = channels.channel_default_account_id.get("telegram");
    let account = accounts
        .iter()
        .find(|a| Some(&a.account_id) == default)
        .or_else(|| accounts.first())?;
    Some(ChannelInfo {
        running: account.running,
        connected: account.connected,
        last_error: account.last_error.clone(),
    })
}
