//! One WebSocket connection: `connect.challenge`, the first-frame rules (64 KiB
//! pre-auth limit → 1009, not `connect` → 1008, bad params → 1008, protocol → 1002),
//! hello-ok, then requests, broadcast events with a per-connection `seq`, `tick`
//! every `tickIntervalMs`, server pings, shutdown/restart closes and test faults.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};
use tokio::time::{Instant, interval_at, sleep, timeout};

use crate::connect::{self, Accepted, Rejection};
use crate::methods::{self, Caller, Out};
use crate::payloads::{self, HelloAuth, HelloDevice};
use crate::state::{Audience, EventFault, Gateway, MAX_OVERSIZE_BYTES, Signal, now_ms};
use crate::{params, validate};

/// Frames larger than this before hello-ok close the socket with 1009.
const PREAUTH_MAX_BYTES: usize = 65_536;
/// Server pings; any WebSocket client answers them.
const PING_INTERVAL: Duration = Duration::from_secs(25);
/// Requests answered concurrently per socket before "busy".
const MAX_IN_FLIGHT: usize = 64;
/// Outgoing frames queued per socket from delayed and multi-part replies.
const OUTBOX: usize = 256;

/// Counts the socket while it lives.
struct Registration {
    gw: Gateway,
    device_id: Option<String>,
}

impl Registration {
    fn new(gw: &Gateway) -> Registration {
        gw.state().connections += 1;
        Registration {
            gw: gw.clone(),
            device_id: None,
        }
    }

    fn set_device(&mut self, device_id: String) {
        *self
            .gw
            .state()
            .connected_devices
            .entry(device_id.clone())
            .or_default() += 1;
        self.device_id = Some(device_id);
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut state = self.gw.state();
        state.connections = state.connections.saturating_sub(1);
        if let Some(device_id) = &self.device_id
            && let Some(count) = state.connected_devices.get_mut(device_id)
        {
            *count = count.saturating_sub(1);
            if *count == 0 {
                state.connected_devices.remove(device_id);
            }
        }
    }
}

async fn send_json(socket: &mut WebSocket, value: &Value) -> bool {
    socket
        .send(Message::Text(value.to_string().into()))
        .await
        .is_ok()
}

/// Sends a close frame and gives the peer a moment to answer it, so the close is a
/// clean closing handshake.
async fn close(socket: &mut WebSocket, code: u16, reason: &str) {
    let frame = CloseFrame {
        code,
        reason: connect::close_reason(reason).into(),
    };
    if socket.send(Message::Close(Some(frame))).await.is_err() {
        return;
    }
    let _ = timeout(Duration::from_secs(1), async {
        while let Some(Ok(message)) = socket.recv().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

async fn reject(socket: &mut WebSocket, id: &str, rejection: Rejection) {
    let frame = methods::err(id, rejection.error);
    if send_json(socket, &frame).await {
        close(socket, rejection.close_code, &rejection.close_reason).await;
    }
}

/// Runs one socket to its end.
pub async fn serve_socket(gw: Gateway, mut socket: WebSocket, peer: SocketAddr, host: String) {
    let mut registration = Registration::new(&gw);
    let mut signals = gw.subscribe();
    let conn_id = uuid::Uuid::new_v4().to_string();
    let nonce = uuid::Uuid::new_v4().to_string();
    let no_challenge = gw.state().knobs.no_challenge;
    if !no_challenge {
        let challenge = json!({"type": "event", "event": "connect.challenge",
            "payload": {"nonce": nonce, "ts": now_ms(), "capabilities": ["model-catalog-snapshot"]}});
        if !send_json(&mut socket, &challenge).await {
            return;
        }
    }
    let Some((connect_id, accepted)) =
        handshake(&gw, &mut socket, &mut signals, &nonce, peer).await
    else {
        return;
    };
    let hello = {
        let state = gw.state();
        let auth = HelloAuth {
            method: accepted.method,
            role: accepted.role.clone(),
            scopes: accepted.scopes.clone(),
            device: accepted
                .device_id
                .clone()
                .zip(accepted.device_token.clone())
                .map(|(device_id, (token, issued_at_ms))| HelloDevice {
                    device_id,
                    token,
                    issued_at_ms,
                }),
        };
        payloads::hello_ok(&gw, &state, &auth, &conn_id, &host)
    };
    if !send_json(&mut socket, &methods::ok(&connect_id, hello)).await {
        return;
    }
    if let Some(device_id) = accepted.device_id.clone() {
        registration.set_device(device_id);
    }
    let caller = Caller {
        conn_id,
        role: accepted.role,
        scopes: accepted.scopes,
    };
    session(&gw, &mut socket, &mut signals, &caller).await;
}

/// Waits for the first frame and decides it. `None` when the socket is done.
async fn handshake(
    gw: &Gateway,
    socket: &mut WebSocket,
    signals: &mut broadcast::Receiver<Signal>,
    nonce: &str,
    peer: SocketAddr,
) -> Option<(String, Accepted)> {
    let deadline = sleep(gw.settings().handshake_timeout);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            () = &mut deadline => {
                // The real gateway closes without a status code here.
                let _ = socket.send(Message::Close(None)).await;
                return None;
            }
            signal = signals.recv() => match signal {
                Ok(Signal::Close { code, reason, .. }) => {
                    close(socket, code, &reason).await;
                    return None;
                }
                Ok(Signal::Drop) | Err(broadcast::error::RecvError::Closed) => return None,
                Ok(Signal::Event(_)) | Err(broadcast::error::RecvError::Lagged(_)) => {}
            },
            message = socket.recv() => {
                let text = match message {
                    None | Some(Err(_)) => return None,
                    Some(Ok(Message::Close(_))) => {
                        let _ = socket.flush().await;
                        return None;
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Text(text))) => {
                        if text.len() > PREAUTH_MAX_BYTES {
                            close(socket, 1009, "preauth payload too large").await;
                            return None;
                        }
                        text.to_string()
                    }
                    Some(Ok(Message::Binary(bytes))) => {
                        if bytes.len() > PREAUTH_MAX_BYTES {
                            close(socket, 1009, "preauth payload too large").await;
                            return None;
                        }
                        String::from_utf8_lossy(&bytes).into_owned()
                    }
                };
                return first_frame(gw, socket, &text, nonce, peer).await;
            }
        }
    }
}

async fn first_frame(
    gw: &Gateway,
    socket: &mut WebSocket,
    text: &str,
    nonce: &str,
    peer: SocketAddr,
) -> Option<(String, Accepted)> {
    let Ok(parsed) = serde_json::from_str::<Value>(text) else {
        // The real gateway logs a parse error and closes without a status code.
        let _ = socket.send(Message::Close(None)).await;
        return None;
    };
    if validate::check(&params::request_frame(), &parsed).is_some() {
        close(socket, 1008, "invalid request frame").await;
        return None;
    }
    let id = parsed["id"].as_str().unwrap_or("").to_string();
    if parsed["method"] != "connect" {
        let message = "invalid handshake: first request must be connect";
        let rejection = Rejection {
            error: json!({"code": "INVALID_REQUEST", "message": message}),
            close_code: 1008,
            close_reason: message.to_string(),
        };
        reject(socket, &id, rejection).await;
        return None;
    }
    let params = parsed.get("params").cloned().unwrap_or(Value::Null);
    if let Some(errors) = validate::check(&params::connect_params(), &params) {
        let message = format!("invalid connect params: {errors}");
        let rejection = Rejection {
            error: json!({"code": "INVALID_REQUEST", "message": message}),
            close_code: 1008,
            close_reason: connect::close_reason(&message),
        };
        reject(socket, &id, rejection).await;
        return None;
    }
    match connect::decide(gw, &params, nonce, peer.ip()) {
        Ok(accepted) => Some((id, accepted)),
        Err(rejection) => {
            reject(socket, &id, rejection).await;
            None
        }
    }
}

/// Per-socket event numbering and fault injection.
struct Events {
    seq: u64,
}

impl Events {
    /// Sends one event with the next `seq`, applying a queued or attached fault.
    async fn send(
        &mut self,
        gw: &Gateway,
        socket: &mut WebSocket,
        name: &str,
        payload: Value,
        attached: Option<EventFault>,
    ) -> bool {
        let fault = attached.or_else(|| gw.state().event_faults.pop_front());
        if let Some(EventFault::SkipSeq(skip)) = fault {
            self.seq += skip;
        }
        self.seq += 1;
        match fault {
            Some(EventFault::Malformed) => {
                // Cut off on purpose, so no JSON builder; the name is quoted as JSON.
                let text = format!(
                    "{{\"type\":\"event\",\"event\":{},\"seq\":{},\"payload\":{{\"ts\":",
                    json!(name),
                    self.seq
                );
                socket.send(Message::Text(text.into())).await.is_ok()
            }
            Some(EventFault::Oversized { bytes }) => {
                let pad = "x".repeat(bytes.min(MAX_OVERSIZE_BYTES));
                let frame = json!({"type": "event", "event": name, "payload": {"pad": pad}, "seq": self.seq});
                send_json(socket, &frame).await
            }
            _ => {
                let frame =
                    json!({"type": "event", "event": name, "payload": payload, "seq": self.seq});
                send_json(socket, &frame).await
            }
        }
    }
}

fn in_audience(caller: &Caller, audience: Audience) -> bool {
    match audience {
        Audience::All => true,
        Audience::Read => crate::pairing::scopes_cover(&caller.scopes, "operator.read"),
        Audience::Pairing => crate::pairing::scopes_cover(&caller.scopes, "operator.pairing"),
    }
}

/// The authenticated part of a connection.
async fn session(
    gw: &Gateway,
    socket: &mut WebSocket,
    signals: &mut broadcast::Receiver<Signal>,
    caller: &Caller,
) {
    let (outbox, mut inbox) = mpsc::channel::<Out>(OUTBOX);
    let in_flight = Arc::new(AtomicUsize::new(0));
    let mut events = Events { seq: 0 };
    let tick_every = gw.settings().tick_interval;
    let mut ticks = interval_at(Instant::now() + tick_every, tick_every);
    let mut pings = interval_at(Instant::now() + PING_INTERVAL, PING_INTERVAL);
    loop {
        // Biased: broadcast events go out before queued responses, so a client sees
        // `config.changed` before the `config.patch` response, as recorded.
        tokio::select! {
            biased;
            signal = signals.recv() => match signal {
                Ok(Signal::Event(event)) => {
                    if in_audience(caller, event.audience)
                        && !events.send(gw, socket, &event.name, event.payload.clone(), event.fault.clone()).await
                    {
                        return;
                    }
                }
                Ok(Signal::Close { code, reason, shutdown }) => {
                    if let Some(payload) = shutdown {
                        events.send(gw, socket, "shutdown", payload, None).await;
                    }
                    close(socket, code, &reason).await;
                    return;
                }
                Ok(Signal::Drop) | Err(broadcast::error::RecvError::Closed) => return,
                // Events this socket missed still consume their numbers.
                Err(broadcast::error::RecvError::Lagged(missed)) => events.seq += missed,
            },
            Some(out) = inbox.recv() => {
                let sent = match out {
                    Out::Res(frame) => send_json(socket, &frame).await,
                    Out::Event { name, payload } => events.send(gw, socket, &name, payload, None).await,
                };
                if !sent {
                    return;
                }
            }
            message = socket.recv() => {
                let text = match message {
                    None | Some(Err(_)) => return,
                    Some(Ok(Message::Close(_))) => {
                        // Sends the queued close reply: a clean closing handshake.
                        let _ = socket.flush().await;
                        return;
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Text(text))) => text.to_string(),
                    Some(Ok(Message::Binary(bytes))) => String::from_utf8_lossy(&bytes).into_owned(),
                };
                if !request(gw, socket, caller, &text, &outbox, &in_flight).await {
                    return;
                }
            }
            _ = ticks.tick() => {
                if !events.send(gw, socket, "tick", json!({"ts": now_ms()}), None).await {
                    return;
                }
            }
            _ = pings.tick() => {
                if socket.send(Message::Ping(Vec::new().into())).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Handles one request frame; `false` ends the connection.
async fn request(
    gw: &Gateway,
    socket: &mut WebSocket,
    caller: &Caller,
    text: &str,
    outbox: &mpsc::Sender<Out>,
    in_flight: &Arc<AtomicUsize>,
) -> bool {
    let Ok(parsed) = serde_json::from_str::<Value>(text) else {
        tracing::debug!(conn = %caller.conn_id, "unparsable frame ignored");
        return true;
    };
    if let Some(errors) = validate::check(&params::request_frame(), &parsed) {
        let id = parsed
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or("invalid");
        let frame = methods::err(
            id,
            json!({"code": "INVALID_REQUEST", "message": format!("invalid request frame: {errors}")}),
        );
        return send_json(socket, &frame).await;
    }
    let id = parsed["id"].as_str().unwrap_or("").to_string();
    let method = parsed["method"].as_str().unwrap_or("").to_string();
    let params = parsed.get("params").cloned().unwrap_or(Value::Null);
    let (delay, drop_now, injected) = {
        let mut state = gw.state();
        let knobs = &mut state.knobs;
        let drop_now = match knobs.drop_on.get_mut(&method) {
            Some(remaining) if *remaining > 0 => {
                if *remaining != u32::MAX {
                    *remaining -= 1;
                }
                true
            }
            _ => false,
        };
        (
            knobs.delays_ms.get(&method).copied().unwrap_or(0),
            drop_now,
            knobs.errors.get(&method).cloned(),
        )
    };
    if drop_now {
        tracing::info!(conn = %caller.conn_id, method, "dropping the connection as programmed");
        return false;
    }
    if in_flight.load(Ordering::SeqCst) >= MAX_IN_FLIGHT {
        let frame = methods::err(
            &id,
            json!({"code": "UNAVAILABLE", "message": "The server is busy. Please try again in a moment.", "retryable": true}),
        );
        return send_json(socket, &frame).await;
    }
    if delay == 0 && injected.is_none() {
        let reply = methods::dispatch(gw, caller, &id, &method, &params);
        for out in reply.now {
            if outbox.try_send(out).is_err() {
                return false;
            }
        }
        if let Some((after, later)) = reply.later {
            spawn_later(after, later, outbox.clone(), in_flight.clone());
        }
        return true;
    }
    // Slow or failing calls run on their own task so other requests keep flowing.
    in_flight.fetch_add(1, Ordering::SeqCst);
    let gw = gw.clone();
    let outbox = outbox.clone();
    let in_flight = in_flight.clone();
    let caller = Caller {
        conn_id: caller.conn_id.clone(),
        role: caller.role.clone(),
        scopes: caller.scopes.clone(),
    };
    tokio::spawn(async move {
        sleep(Duration::from_millis(delay)).await;
        match injected {
            Some(error) => {
                let _ = outbox.send(Out::Res(methods::err(&id, error))).await;
            }
            None => {
                let reply = methods::dispatch(&gw, &caller, &id, &method, &params);
                for out in reply.now {
                    if outbox.send(out).await.is_err() {
                        break;
                    }
                }
                if let Some((after, later)) = reply.later {
                    sleep(after).await;
                    for out in later {
                        if outbox.send(out).await.is_err() {
                            break;
                        }
                    }
                }
            }
        }
        in_flight.fetch_sub(1, Ordering::SeqCst);
    });
    true
}

fn spawn_later(
    after: Duration,
    later: Vec<Out>,
    outbox: mpsc::Sender<Out>,
    in_flight: Arc<AtomicUsize>,
) {
    in_flight.fetch_add(1, Ordering::SeqCst);
    tokio::spawn(async move {
        sleep(after).await;
        for out in later {
            if outbox.send(out).await.is_err() {
                break;
            }
        }
        in_flight.fetch_sub(1, Ordering::SeqCst);
    });
}
