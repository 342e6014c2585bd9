//! One long-lived gateway connection per tenant, shared by everyone who asks
//! (monitor, usage, bot actions): opened on first use, reconnecting by itself, closed
//! on request.
//!
//! The pool cannot read the store: the caller registers each tenant's [`Endpoint`] and
//! persists the device tokens the pool reports on its channel.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::gateway::client::{Client, Endpoint, Options, TokenSink};
use crate::gateway::error::{ConnectError, PoolError};
use crate::gateway::identity::DeviceIdentity;
use crate::tenant::{Secret, TenantId};

/// The connections of all tenants. Clones share the same connections.
#[derive(Clone)]
pub struct Pool {
    shared: Arc<Shared>,
}

/// A device token a cell issued (at pairing, or rotated); the caller must persist it
/// as the tenant's device token.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceTokenIssued {
    pub tenant: TenantId,
    pub device_token: Secret<String>,
}

struct Shared {
    identity: DeviceIdentity,
    options: Options,
    /// The lock is held only to read or swap a slot, never across an await.
    slots: Mutex<HashMap<TenantId, Slot>>,
    tokens: mpsc::UnboundedSender<DeviceTokenIssued>,
}

struct Slot {
    endpoint: Endpoint,
    /// The open client; a fresh `Arc` whenever the slot is reset, so a connect that
    /// finishes after a reset can tell that its result is no longer wanted.
    client: Arc<tokio::sync::Mutex<Option<Client>>>,
    /// A refusal that retrying cannot fix soon (a wrong gateway token, the
    /// gateway's login rate limit), held until the instant: every caller gets it
    /// back without a connect, so a monitor sweeping every few seconds never adds
    /// to the gateway's lockout count (10 failures in 60 s, PROTOCOL.md §2.9).
    refused: Option<(Instant, ConnectError)>,
}

/// How long a `TokenMismatch` is answered from memory before one more try; a new
/// endpoint (`set_endpoint` with another token) or `close` tries at once.
const TOKEN_MISMATCH_HOLD: Duration = Duration::from_secs(60);

/// How long to answer `err` from memory instead of connecting again; `None`
/// for errors worth retrying at once.
fn hold_for(err: &ConnectError) -> Option<Duration> {
    match err {
        ConnectError::TokenMismatch => Some(TOKEN_MISMATCH_HOLD),
        ConnectError::RateLimited { retry_after } => Some(*retry_after),
        _ => None,
    }
}

/// How often `client` retries when the slot is reset while it connects.
const MAX_CONNECT_RACES: usize = 3;

impl Pool {
    /// An empty pool, and the channel on which it reports every device token a cell
    /// issues. Keep receiving from it: tokens that are not persisted are lost at restart.
    #[must_use]
    pub fn new(
        identity: DeviceIdentity,
        options: Options,
    ) -> (Pool, mpsc::UnboundedReceiver<DeviceTokenIssued>) {
        let (tokens_tx, tokens_rx) = mpsc::unbounded_channel();
        let pool = Pool {
            shared: Arc::new(Shared {
                identity,
                options,
                slots: Mutex::new(HashMap::new()),
                tokens: tokens_tx,
            }),
        };
        (pool, tokens_rx)
    }

    /// Registers or updates a tenant's endpoint. A new port or gateway token closes the
    /// open connection (the next [`Pool::client`] opens one with the new endpoint); a
    /// new device token alone is only remembered for the next connect.
    pub fn set_endpoint(&self, tenant: TenantId, endpoint: Endpoint) {
        let mut slots = self.shared.lock_slots();
        match slots.get_mut(&tenant) {
            Some(slot)
                if slot.endpoint.host == endpoint.host
                    && slot.endpoint.port == endpoint.port
                    && slot.endpoint.gateway_token == endpoint.gateway_token =>
            {
                slot.endpoint = endpoint;
            }
            Some(slot) => {
                slot.endpoint = endpoint;
                reset(slot);
            }
            None => {
                slots.insert(
                    tenant,
                    Slot {
                        endpoint,
                        client: Arc::default(),
                        refused: None,
                    },
                );
            }
        }
    }

    /// The tenant's connection, opened now if there is none (or the last one stopped).
    /// Concurrent callers share one connect attempt.
    ///
    /// # Errors
    ///
    /// `PoolError::NoEndpoint` if the tenant was never registered, else the connect
    /// error (e.g. `PairingRequired` for a cell that has not approved the admin yet).
    pub async fn client(&self, tenant: &TenantId) -> Result<Client, PoolError> {
        let mut races = 0;
        loop {
            let (slot_client, endpoint) = {
                let slots = self.shared.lock_slots();
                let slot = slots
                    .get(tenant)
                    .ok_or_else(|| PoolError::NoEndpoint(tenant.to_string()))?;
                (slot.client.clone(), slot.endpoint.clone())
            };
            let mut guard = slot_client.lock().await;
            if let Some(client) = guard.as_ref().filter(|client| !client.is_stopped()) {
                return Ok(client.clone());
            }
            if let Some(err) = self.held_refusal(tenant, &slot_client) {
                return Err(err.into());
            }
            let sink = token_sink(Arc::downgrade(&self.shared), tenant.clone());
            let client = match Client::connect_with_sink(
                &endpoint,
                &self.shared.identity,
                self.shared.options.clone(),
                Some(sink),
            )
            .await
            {
                Ok(client) => client,
                Err(err) => {
                    if let Some(hold) = hold_for(&err)
                        && let Some(slot) = self.shared.lock_slots().get_mut(tenant)
                        && Arc::ptr_eq(&slot.client, &slot_client)
                    {
                        slot.refused = Some((Instant::now() + hold, err.clone()));
                    }
                    return Err(err.into());
                }
            };
            let still_current = self
                .shared
                .lock_slots()
                .get(tenant)
                .is_some_and(|slot| Arc::ptr_eq(&slot.client, &slot_client));
            if still_current || races >= MAX_CONNECT_RACES {
                *guard = Some(client.clone());
                return Ok(client);
            }
            // The tenant was closed or re-pointed while this connect ran.
            client.close();
            races += 1;
        }
    }

    /// The refusal held for this tenant's current slot, if it still holds.
    fn held_refusal(
        &self,
        tenant: &TenantId,
        slot_client: &Arc<tokio::sync::Mutex<Option<Client>>>,
    ) -> Option<ConnectError> {
        let mut slots = self.shared.lock_slots();
        let slot = slots
            .get_mut(tenant)
            .filter(|slot| Arc::ptr_eq(&slot.client, slot_client))?;
        match &slot.refused {
            Some((until, err)) if Instant::now() < *until => Some(err.clone()),
            Some(_) => {
                slot.refused = None;
                None
            }
            None => None,
        }
    }

    /// Closes the tenant's connection; the endpoint stays registered, so a later
    /// [`Pool::client`] opens a new one.
    pub fn close(&self, tenant: &TenantId) {
        if let Some(slot) = self.shared.lock_slots().get_mut(tenant) {
            reset(slot);
        }
    }

    /// Closes the tenant's connection and forgets its endpoint (the tenant is gone).
    pub fn remove(&self, tenant: &TenantId) {
        if let Some(mut slot) = self.shared.lock_slots().remove(tenant) {
            reset(&mut slot);
        }
    }
}

impl Shared {
    fn lock_slots(&self) -> MutexGuard<'_, HashMap<TenantId, Slot>> {
        // A panic while holding this short lock leaves the map itself consistent.
        self.slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Closes a slot's client (if no connect holds it) and gives the slot a fresh cell.
fn reset(slot: &mut Slot) {
    if let Ok(mut guard) = slot.client.try_lock()
        && let Some(client) = guard.take()
    {
        client.close();
    }
    slot.client = Arc::default();
    slot.refused = None;
}

/// Reports a tenant's new device token and remembers it for the next connect.
fn token_sink(shared: Weak<Shared>, tenant: TenantId) -> TokenSink {
    Arc::new(move |device_token: Secret<String>| {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if let Some(slot) = shared.lock_slots().get_mut(&tenant) {
            slot.endpoint.device_token = Some(device_token.clone());
        }
        let issued = DeviceTokenIssued {
            tenant: tenant.clone(),
            device_token,
        };
        if shared.tokens.send(issued).is_err() {
            tracing::warn!(tenant = %tenant, "device token issued but nobody persists it");
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::Duration;

    use serde_json::{Value, json};
    use tokio::task::JoinHandle;

    use crate::gateway::client::State;
    use crate::gateway::testing::{
        FakeConnection, FakeGateway, endpoint, fast_options, hello_ok, identity,
    };

    const TEST_DEADLINE: Duration = Duration::from_secs(10);

    async fn within<F: std::future::Future>(future: F) -> F::Output {
        tokio::time::timeout(TEST_DEADLINE, future)
            .await
            .expect("test step timed out")
    }

    fn tenant(id: &str) -> TenantId {
        id.parse().unwrap()
    }

    /// A fake gateway and a pool with tenant `acme` registered on it.
    async fn acme_on_a_gateway() -> (
        FakeGateway,
        Pool,
        mpsc::UnboundedReceiver<DeviceTokenIssued>,
        TenantId,
    ) {
        let gateway = FakeGateway::start().await;
        let (pool, tokens) = Pool::new(identity(), fast_options());
        let acme = tenant("acme");
        pool.set_endpoint(acme.clone(), endpoint(gateway.port));
        (gateway, pool, tokens, acme)
    }

    /// Asks for the tenant's client on a task of its own, so the test can play
    /// the gateway meanwhile.
    fn spawn_client(pool: &Pool, tenant: &TenantId) -> JoinHandle<Result<Client, PoolError>> {
        let (pool, tenant) = (pool.clone(), tenant.clone());
        tokio::spawn(async move { pool.client(&tenant).await })
    }

    /// The tenant's client over a new connection that `gateway` accepts and
    /// greets with `device_token`.
    async fn connect(
        pool: &Pool,
        tenant: &TenantId,
        gateway: &FakeGateway,
        device_token: &str,
    ) -> (Client, FakeConnection) {
        let opening = spawn_client(pool, tenant);
        let mut connection = within(gateway.accept()).await;
        within(connection.handshake(hello_ok(device_token))).await;
        let client = within(opening).await.unwrap().unwrap();
        (client, connection)
    }

    /// Concurrent first uses share one connection, and its device token is reported.
    #[tokio::test]
    async fn opens_lazily_once_and_shares_the_connection() {
        let (gateway, pool, mut tokens, acme) = acme_on_a_gateway().await;
        let first = spawn_client(&pool, &acme);
        let second = spawn_client(&pool, &acme);
        let mut connection = within(gateway.accept()).await;
        within(connection.handshake(hello_ok("dt-1"))).await;
        let first = within(first).await.unwrap().unwrap();
        let second = within(second).await.unwrap().unwrap();
        let issued = within(tokens.recv()).await.unwrap();
        assert_eq!(
            issued,
            DeviceTokenIssued {
                tenant: acme.clone(),
                device_token: Secret::new("dt-1".to_string())
            }
        );
        for client in [first, second] {
            let call = tokio::spawn(async move { client.call("health", Value::Null).await });
            let request = within(connection.request()).await;
            connection.reply(&request, json!({"ok": true})).await;
            assert_eq!(within(call).await.unwrap(), Ok(json!({"ok": true})));
        }
    }

    /// A tenant without a registered endpoint is an error that names it.
    #[tokio::test]
    async fn unknown_tenants_have_no_endpoint() {
        let (pool, _tokens) = Pool::new(identity(), fast_options());
        let got = pool.client(&tenant("ghost")).await.map(|_| ());
        assert_eq!(got, Err(PoolError::NoEndpoint("ghost".to_string())));
    }

    /// `close` ends the connection; the next use opens a new one.
    #[tokio::test]
    async fn close_ends_the_connection_and_the_next_use_reopens() {
        let (gateway, pool, _tokens, acme) = acme_on_a_gateway().await;
        let (client, mut connection) = connect(&pool, &acme, &gateway, "dt-1").await;
        pool.close(&acme);
        assert_eq!(within(connection.recv()).await, None);
        assert!(client.is_stopped());
        let (reopened, mut again) = connect(&pool, &acme, &gateway, "dt-1").await;
        assert_eq!(*reopened.state().borrow(), State::Connected);
        pool.remove(&acme);
        assert_eq!(within(again.recv()).await, None);
        let got = pool.client(&acme).await.map(|_| ());
        assert_eq!(got, Err(PoolError::NoEndpoint("acme".to_string())));
    }

    /// A wrong gateway token is answered from memory for a while: callers get
    /// `TokenMismatch` again without a connect (so a sweeping monitor cannot lock
    /// the admin out); a new gateway token connects at once.
    #[tokio::test]
    async fn a_token_mismatch_is_held_instead_of_retried() {
        let (gateway, pool, _tokens, acme) = acme_on_a_gateway().await;
        let opening = spawn_client(&pool, &acme);
        let mut connection = within(gateway.accept()).await;
        within(connection.challenge()).await;
        connection
            .send(json!({"type": "res", "id": "c1", "ok": false, "error": {
                "code": "INVALID_REQUEST", "message": "unauthorized: gateway token mismatch",
                "details": {"code": "AUTH_TOKEN_MISMATCH", "canRetryWithDeviceToken": false}}}))
            .await;
        connection.close(1008, "unauthorized").await;
        let refused = Err(PoolError::Connect(ConnectError::TokenMismatch));
        assert_eq!(within(opening).await.unwrap().map(|_| ()), refused);
        for _ in 0..20 {
            assert_eq!(within(pool.client(&acme)).await.map(|_| ()), refused);
        }
        assert!(
            tokio::time::timeout(Duration::from_millis(200), gateway.accept())
                .await
                .is_err(),
            "no connect while the refusal is held"
        );

        let mut fixed = endpoint(gateway.port);
        fixed.gateway_token = Secret::new("gw-token-2".to_string());
        pool.set_endpoint(acme.clone(), fixed);
        connect(&pool, &acme, &gateway, "dt-1").await;
    }

    /// A new device token keeps the open connection; a new port replaces it.
    #[tokio::test]
    async fn only_a_new_port_or_gateway_token_replaces_the_connection() {
        let (old_gateway, pool, _tokens, acme) = acme_on_a_gateway().await;
        let (client, mut old_connection) = connect(&pool, &acme, &old_gateway, "dt-1").await;

        let mut same_port = endpoint(old_gateway.port);
        same_port.device_token = Some(Secret::new("dt-2".to_string()));
        pool.set_endpoint(acme.clone(), same_port);
        assert!(!client.is_stopped());
        let kept = within(pool.client(&acme)).await.unwrap();
        assert!(!kept.is_stopped());

        let new_gateway = FakeGateway::start().await;
        pool.set_endpoint(acme.clone(), endpoint(new_gateway.port));
        assert_eq!(within(old_connection.recv()).await, None);
        connect(&pool, &acme, &new_gateway, "dt-3").await;
    }
}
