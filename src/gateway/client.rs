//! One connection to one cell's gateway: the handshake (challenge → signed `connect` →
//! `hello-ok`), and the task that owns the socket afterwards.
//!
//! The task correlates responses by id, forwards events with `seq` gap detection,
//! watches the tick, and reconnects by itself (after a restart, with backoff); it stops
//! only on what retrying cannot fix (pairing, wrong token). [`Client`] is the cheap,
//! cloneable handle: it sends `(request, reply)` pairs over a bounded channel, as
//! mini-redis's `buffered_client` does. Typed methods live in `methods.rs`.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_util::sync::CancellationToken;

use crate::gateway::error::{CallError, ConnectError, call_error, connect_error};
use crate::gateway::identity::{DeviceIdentity, SignedFields};
use crate::gateway::protocol::{
    self, Challenge, ClientInfo, ConnectAuth, ConnectParams, DeviceProof, EventFrame, Hello,
    Incoming, RequestFrame, ResponseFrame,
};
use crate::tenant::Secret;

/// Read and write buffer of each socket (see `open`).
const SOCKET_BUFFER_BYTES: usize = 8 * 1024;

/// Where a cell's gateway listens and how to log in: `127.0.0.1` and the port a
/// cell on this host publishes on loopback, or, on Swarm, the cell's service
/// name on its overlay network (which the admin has joined) and the gateway's
/// own port.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    /// The cell's `OPENCLAW_GATEWAY_TOKEN`; used when no device token works.
    pub gateway_token: Secret<String>,
    /// The device token the cell issued at pairing; tried first when present.
    pub device_token: Option<Secret<String>>,
}

/// Timeouts and limits of a client. `Options::default()` suits production.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Default deadline of one call, including any wait for a reconnect.
    pub call_timeout: Duration,
    /// Deadline of one connect (TCP, upgrade, challenge, `hello-ok`); `Client::connect`
    /// also retries a starting gateway within it.
    pub connect_timeout: Duration,
    /// Largest frame accepted from the gateway; larger ones break the connection.
    pub max_message_bytes: usize,
    /// First reconnect delay; doubled after each failed attempt.
    pub min_backoff: Duration,
    /// Largest reconnect delay.
    pub max_backoff: Duration,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            call_timeout: Duration::from_secs(30),
            // The gateway itself allows 15 s for a handshake; a few more cover a slow start.
            connect_timeout: Duration::from_secs(20),
            // The largest recorded answer (skills.status) is 68 KB; 16 MiB leaves room for
            // big configs and session lists while bounding what a broken server can cost.
            max_message_bytes: 16 << 20,
            // The reference client's backoff: 1 s doubling to 30 s (PROTOCOL.md §2.10).
            min_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// Where the connection stands; watch it with [`Client::state`].
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    /// A socket is open and authenticated; [`Client::hello`] describes it.
    Connected,
    /// The connection was lost or the last attempt failed with `error`; retrying.
    Reconnecting { error: ConnectError },
    /// The client gave up (`Some`: a permanent error such as pairing required) or was
    /// closed by its owner (`None`). Calls fail at once.
    Stopped { error: Option<ConnectError> },
}

/// What subscribers receive from [`Client::subscribe`].
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// An event frame from the gateway (`tick`, `health`, `config.changed`, `agent`, …).
    Server {
        event: String,
        payload: Value,
        seq: Option<u64>,
    },
    /// Event numbers `expected..got` were missed (the server dropped them for a slow
    /// consumer): re-read state with the matching list/get method.
    Gap { expected: u64, got: u64 },
    /// A new connection replaced a lost one. Events are not replayed: re-read state.
    Reconnected,
}

/// A cheap, cloneable handle to one gateway connection. When the last clone is
/// dropped (or [`Client::close`] is called) the connection task ends.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    commands: mpsc::Sender<Call>,
    events: broadcast::Sender<Event>,
    state: watch::Receiver<State>,
    hello: watch::Receiver<Arc<Hello>>,
    cancel: CancellationToken,
    next_id: AtomicU64,
    call_timeout: Duration,
}

/// Called with each device token the gateway issues that differs from the one in use.
pub(crate) type TokenSink = Arc<dyn Fn(Secret<String>) + Send + Sync>;

/// Calls waiting for the task; senders wait (bounded by their timeouts) when it is full.
const COMMAND_BUFFER: usize = 64;

/// Events kept for slow subscribers before they see `Lagged`.
const EVENT_BUFFER: usize = 256;

/// Calls kept while reconnecting; beyond this they fail instead of piling up.
const MAX_QUEUED_CALLS: usize = 1024;

/// How long a closing handshake may take before the socket is simply dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// After an announced restart, retry at `min_backoff` for this long before doubling.
/// A warm in-process restart took 9 to 17 s (FACTS.md), but a 2026.9.6 cell with an
/// unreachable Telegram hangs in it, ignores SIGTERM, and is back only after a container
/// restart: 30 s stop grace plus a 20 to 50 s boot (tests/gateway_conformance.rs).
/// Polling a loopback port once a second meanwhile is cheap, and reconnects within a
/// second of the cell's return instead of up to `max_backoff` later.
const RESTART_GRACE: Duration = Duration::from_secs(120);

/// Bounds of a startup `retryAfterMs` (PROTOCOL.md §2.10: 100..2000 ms).
const MIN_UNAVAILABLE_DELAY: Duration = Duration::from_millis(100);
const MAX_UNAVAILABLE_DELAY: Duration = Duration::from_secs(2);

type Socket = WebSocketStream<TcpStream>;

/// One request on its way to the task.
struct Call {
    id: String,
    /// `agent` answers twice (accepted, then final); wait for the final one.
    expect_final: bool,
    text: String,
    reply: oneshot::Sender<Result<ResponseFrame, CallError>>,
}

impl Client {
    /// Opens an authenticated connection: waits for the challenge, sends the signed
    /// `connect`, checks `hello-ok`. Tries `endpoint.device_token` first and falls back to
    /// the gateway token when the device token is refused. A starting gateway
    /// (`UNAVAILABLE`) is retried within `options.connect_timeout`.
    ///
    /// # Errors
    ///
    /// The first attempt's [`ConnectError`]; `PairingRequired` carries the request id to
    /// approve, `NoScopes` means the device identity was not honoured.
    pub async fn connect(
        endpoint: &Endpoint,
        identity: &DeviceIdentity,
        options: Options,
    ) -> Result<Client, ConnectError> {
        Client::connect_with_sink(endpoint, identity, options, None).await
    }

    pub(crate) async fn connect_with_sink(
        endpoint: &Endpoint,
        identity: &DeviceIdentity,
        options: Options,
        token_sink: Option<TokenSink>,
    ) -> Result<Client, ConnectError> {
        let mut endpoint = endpoint.clone();
        let deadline = Instant::now() + options.connect_timeout;
        let (socket, hello) = loop {
            let attempt =
                tokio::time::timeout_at(deadline, open(&mut endpoint, identity, &options));
            match attempt.await {
                Err(_elapsed) => return Err(ConnectError::Timeout(options.connect_timeout)),
                Ok(Err(ConnectError::Unavailable { retry_after })) => {
                    let delay = unavailable_delay(retry_after);
                    if Instant::now() + delay >= deadline {
                        return Err(ConnectError::Unavailable { retry_after });
                    }
                    tracing::debug!(
                        port = endpoint.port,
                        ?delay,
                        "gateway starting; retrying connect"
                    );
                    tokio::time::sleep(delay).await;
                }
                Ok(res) => break res?,
            }
        };
        let hello = Arc::new(hello);
        let (commands_tx, commands_rx) = mpsc::channel(COMMAND_BUFFER);
        let (events_tx, _) = broadcast::channel(EVENT_BUFFER);
        let (state_tx, state_rx) = watch::channel(State::Connected);
        let (hello_tx, hello_rx) = watch::channel(hello.clone());
        let cancel = CancellationToken::new();
        let mut task = Task {
            endpoint,
            identity: identity.clone(),
            options: options.clone(),
            commands: commands_rx,
            queue: VecDeque::new(),
            events: events_tx.clone(),
            state: state_tx,
            hello: hello_tx,
            cancel: cancel.clone(),
            token_sink,
        };
        task.adopt_token(&hello);
        tokio::spawn(task.run(socket, hello));
        Ok(Client {
            inner: Arc::new(Inner {
                commands: commands_tx,
                events: events_tx,
                state: state_rx,
                hello: hello_rx,
                cancel,
                next_id: AtomicU64::new(1),
                call_timeout: options.call_timeout,
            }),
        })
    }

    /// Calls `method` with `params` (`Value::Null` sends no params) and returns the
    /// final response payload. Waits through a reconnect, within the default timeout.
    ///
    /// # Errors
    ///
    /// The gateway's error answer as a typed [`CallError`], or `Timeout`, `Closed`,
    /// `NotConnected`, `ClientClosed`, `RequestTooLarge`.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, CallError> {
        self.call_with_timeout(method, params, self.inner.call_timeout)
            .await
    }

    /// [`Client::call`] with its own deadline (for slow methods such as installs).
    ///
    /// # Errors
    ///
    /// As [`Client::call`].
    pub async fn call_with_timeout(
        &self,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, CallError> {
        let params = (!params.is_null()).then_some(params);
        let response = self.request(method, params.as_ref(), timeout).await?;
        response_result(response)
    }

    /// Sends one request and returns the final `res` frame, whether `ok` or not.
    pub(crate) async fn request(
        &self,
        method: &str,
        params: Option<&Value>,
        timeout: Duration,
    ) -> Result<ResponseFrame, CallError> {
        let deadline = Instant::now() + timeout;
        let id = format!("r{}", self.inner.next_id.fetch_add(1, Ordering::Relaxed));
        let frame = RequestFrame {
            kind: "req",
            id: &id,
            method,
            params,
        };
        let text = serde_json::to_string(&frame)
            .map_err(|err| CallError::Protocol(format!("cannot encode {method} params: {err}")))?;
        let max = self.inner.hello.borrow().max_payload;
        if text.len() > max {
            return Err(CallError::RequestTooLarge {
                size: text.len(),
                max,
            });
        }
        let (reply_tx, reply_rx) = oneshot::channel();
        let call = Call {
            id,
            expect_final: method == "agent",
            text,
            reply: reply_tx,
        };
        match tokio::time::timeout_at(deadline, self.inner.commands.send(call)).await {
            Err(_elapsed) => return Err(self.timeout_error(timeout)),
            Ok(Err(_closed)) => return Err(self.stopped_error()),
            Ok(Ok(())) => {}
        }
        match tokio::time::timeout_at(deadline, reply_rx).await {
            Err(_elapsed) => Err(self.timeout_error(timeout)),
            Ok(Err(_dropped)) => Err(self.stopped_error()),
            Ok(Ok(reply)) => reply,
        }
    }

    /// Events from now on. A subscriber that falls more than 256 events behind gets
    /// `RecvError::Lagged` and should re-read state.
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    /// The connection state, to watch for `Stopped` (pairing required, wrong token).
    #[must_use]
    pub fn state(&self) -> watch::Receiver<State> {
        self.inner.state.clone()
    }

    /// The `hello-ok` of the current (or last) connection: scopes, server version,
    /// device token, policy.
    #[must_use]
    pub fn hello(&self) -> Arc<Hello> {
        self.inner.hello.borrow().clone()
    }

    /// Whether the client gave up or was closed; a stopped client never reconnects.
    #[must_use]
    pub fn is_stopped(&self) -> bool {
        matches!(*self.inner.state.borrow(), State::Stopped { .. })
    }

    /// Closes the connection (a normal close frame) and stops reconnecting; pending and
    /// later calls fail with `ClientClosed`. Returns at once; watch [`Client::state`] for
    /// `Stopped` to know the socket is gone.
    pub fn close(&self) {
        self.inner.cancel.cancel();
    }

    /// The default deadline of [`Client::call`].
    pub(crate) fn call_timeout(&self) -> Duration {
        self.inner.call_timeout
    }

    fn stopped_error(&self) -> CallError {
        match &*self.inner.state.borrow() {
            State::Stopped { error: Some(error) } => CallError::NotConnected(error.clone()),
            _ => CallError::ClientClosed,
        }
    }

    fn timeout_error(&self, timeout: Duration) -> CallError {
        match &*self.inner.state.borrow() {
            State::Reconnecting { error } => CallError::NotConnected(error.clone()),
            State::Stopped { error: Some(error) } => CallError::NotConnected(error.clone()),
            State::Stopped { error: None } => CallError::ClientClosed,
            State::Connected => CallError::Timeout(timeout),
        }
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("state", &*self.inner.state.borrow())
            .finish_non_exhaustive()
    }
}

/// The payload of an `ok` response, or its error as a [`CallError`].
pub(crate) fn response_result(response: ResponseFrame) -> Result<Value, CallError> {
    if response.ok {
        return Ok(response.payload.unwrap_or(Value::Null));
    }
    match response.error {
        Some(error) => Err(call_error(error)),
        None => Err(CallError::Protocol(
            "error response without an error object".to_string(),
        )),
    }
}

/// The state the connection task owns.
struct Task {
    /// Updated in place when the gateway issues a new device token.
    endpoint: Endpoint,
    identity: DeviceIdentity,
    options: Options,
    commands: mpsc::Receiver<Call>,
    /// Calls received while no socket was open; sent after the next `hello-ok`.
    queue: VecDeque<Call>,
    events: broadcast::Sender<Event>,
    state: watch::Sender<State>,
    hello: watch::Sender<Arc<Hello>>,
    cancel: CancellationToken,
    token_sink: Option<TokenSink>,
}

/// How a session (one open socket) ended.
enum SessionEnd {
    /// The owner closed the client or dropped every handle.
    Finished,
    /// The socket is gone; reconnect after `restart_after` (a gateway restart) or backoff.
    Lost {
        error: ConnectError,
        restart_after: Option<Duration>,
    },
}

impl Task {
    async fn run(mut self, socket: Socket, hello: Arc<Hello>) {
        let port = self.endpoint.port;
        let mut session = Some((socket, hello));
        loop {
            let Some((socket, hello)) = session.take() else {
                return;
            };
            let (error, restart_after) = match self.run_session(socket, &hello).await {
                SessionEnd::Finished => {
                    self.stop(None);
                    return;
                }
                SessionEnd::Lost {
                    error,
                    restart_after,
                } => (error, restart_after),
            };
            tracing::info!(port, cause = %error, "gateway connection lost; reconnecting");
            let restart_wait = restart_after.map(|after| after.min(self.options.max_backoff));
            let mut delay = restart_wait.unwrap_or(self.options.min_backoff);
            let restart_grace_until =
                restart_wait.map(|wait| Instant::now() + wait + RESTART_GRACE);
            let mut error = error;
            let mut attempt: u32 = 0;
            while session.is_none() {
                self.state.send_replace(State::Reconnecting {
                    error: error.clone(),
                });
                if self.pump(tokio::time::sleep(delay), &error).await.is_none() {
                    self.stop(None);
                    return;
                }
                let connect_timeout = self.options.connect_timeout;
                let attempted = {
                    let opening = tokio::time::timeout(
                        connect_timeout,
                        open(&mut self.endpoint, &self.identity, &self.options),
                    );
                    pump(
                        opening,
                        &mut self.commands,
                        &mut self.queue,
                        &self.cancel,
                        &error,
                    )
                    .await
                };
                match attempted {
                    None => {
                        self.stop(None);
                        return;
                    }
                    Some(Ok(Ok((socket, hello)))) => {
                        let hello = Arc::new(hello);
                        self.adopt_token(&hello);
                        self.hello.send_replace(hello.clone());
                        self.state.send_replace(State::Connected);
                        let _ = self.events.send(Event::Reconnected);
                        tracing::info!(port, attempt, "gateway connection restored");
                        session = Some((socket, hello));
                    }
                    Some(Ok(Err(failure))) => error = failure,
                    Some(Err(_elapsed)) => error = ConnectError::Timeout(connect_timeout),
                }
                if session.is_none() {
                    let in_restart =
                        restart_grace_until.is_some_and(|until| Instant::now() < until);
                    let backoff_attempt = if in_restart { 0 } else { attempt };
                    match retry_delay(&error, backoff_attempt, &self.options) {
                        Some(next) => delay = next,
                        None => {
                            tracing::warn!(port, cause = %error, "gateway connection stopped");
                            self.stop(Some(error));
                            return;
                        }
                    }
                    // Backoff doubles from `min_backoff` once the grace is over, rather
                    // than starting at the cap because of the attempts made within it.
                    if !in_restart {
                        attempt = attempt.saturating_add(1);
                    }
                }
            }
        }
    }

    async fn pump<F: Future>(&mut self, future: F, error: &ConnectError) -> Option<F::Output> {
        pump(
            future,
            &mut self.commands,
            &mut self.queue,
            &self.cancel,
            error,
        )
        .await
    }

    /// Drives one open socket until it is lost or the owner finishes.
    async fn run_session(&mut self, mut socket: Socket, hello: &Hello) -> SessionEnd {
        let mut pending: HashMap<String, Pending> = HashMap::new();
        let mut seq = SeqTracker::default();
        let mut restart_expected: Option<Duration> = None;
        let watchdog = hello.tick_interval.saturating_mul(2);
        let mut last_frame = Instant::now();
        let end = loop {
            if let Some(call) = self.queue.pop_front() {
                if let Err(error) = send_call(&mut socket, &mut pending, call).await {
                    break lost(error);
                }
                continue;
            }
            tokio::select! {
                () = self.cancel.cancelled() => break SessionEnd::Finished,
                call = self.commands.recv() => match call {
                    None => break SessionEnd::Finished,
                    Some(call) => {
                        if let Err(error) = send_call(&mut socket, &mut pending, call).await {
                            break lost(error);
                        }
                    }
                },
                message = socket.next() => {
                    last_frame = Instant::now();
                    let incoming = self.on_message(message, &mut pending, &mut seq, &mut restart_expected);
                    if let Some(end) = incoming {
                        break end;
                    }
                }
                () = tokio::time::sleep_until(last_frame + watchdog) => {
                    break lost(ConnectError::Closed {
                        code: None,
                        reason: format!("no frame from the gateway for {watchdog:?}"),
                    });
                }
            }
        };
        let (close_code, failure) = match &end {
            SessionEnd::Finished => (CloseCode::Normal, CallError::ClientClosed),
            SessionEnd::Lost { error, .. } => {
                let failure = match error {
                    ConnectError::Closed { code, reason } => CallError::Closed {
                        code: *code,
                        reason: reason.clone(),
                    },
                    ConnectError::Protocol(reason) => CallError::Protocol(reason.clone()),
                    other => CallError::Closed {
                        code: None,
                        reason: other.to_string(),
                    },
                };
                let code = match error {
                    ConnectError::Protocol(_) => CloseCode::Protocol,
                    _ => CloseCode::Library(4000),
                };
                (code, failure)
            }
        };
        for (_, call) in pending.drain() {
            let _ = call.reply.send(Err(failure.clone()));
        }
        if let SessionEnd::Finished = end {
            for call in self.queue.drain(..) {
                let _ = call.reply.send(Err(CallError::ClientClosed));
            }
        }
        // A polite close; a socket that is already gone just fails here.
        let frame = CloseFrame {
            code: close_code,
            reason: "".into(),
        };
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, socket.close(Some(frame))).await;
        end
    }

    /// Handles one socket read; `Some` when it ended the session.
    fn on_message(
        &self,
        message: Option<Result<tungstenite::Message, tungstenite::Error>>,
        pending: &mut HashMap<String, Pending>,
        seq: &mut SeqTracker,
        restart_expected: &mut Option<Duration>,
    ) -> Option<SessionEnd> {
        let text = match message {
            Some(Ok(tungstenite::Message::Text(text))) => text,
            Some(Ok(tungstenite::Message::Binary(_))) => {
                return Some(lost(ConnectError::Protocol(
                    "gateway sent a binary frame".to_string(),
                )));
            }
            Some(Ok(tungstenite::Message::Close(frame))) => {
                let error = close_error(frame);
                let restart_after = match &error {
                    ConnectError::Closed {
                        code: Some(1012), ..
                    } => *restart_expected,
                    _ => None,
                };
                return Some(SessionEnd::Lost {
                    error,
                    restart_after,
                });
            }
            // Pings are answered by tungstenite itself while reading.
            Some(Ok(_ping_pong_or_raw)) => return None,
            Some(Err(err)) => return Some(lost(socket_error(err, &self.options))),
            None => {
                return Some(lost(ConnectError::Closed {
                    code: None,
                    reason: String::new(),
                }));
            }
        };
        match protocol::parse_frame(text.as_str()) {
            Ok(Incoming::Response(response)) => deliver(pending, response),
            Ok(Incoming::Event(event)) => {
                if let Some(after) = self.on_event(seq, event) {
                    *restart_expected = Some(after);
                }
            }
            Ok(Incoming::Unknown(kind)) => {
                tracing::debug!(kind, "ignoring gateway frame of unknown type");
            }
            Err(reason) => return Some(lost(ConnectError::Protocol(reason))),
        }
        None
    }

    /// Forwards one event; returns the restart delay a `shutdown` event announced.
    fn on_event(&self, seq: &mut SeqTracker, event: EventFrame) -> Option<Duration> {
        if let Some(number) = event.seq
            && let Some((expected, got)) = seq.observe(number)
        {
            tracing::warn!(expected, got, "gateway events missed");
            let _ = self.events.send(Event::Gap { expected, got });
        }
        let restart_after = if event.event == "shutdown" {
            event
                .payload
                .get("restartExpectedMs")
                .and_then(Value::as_u64)
                .map(Duration::from_millis)
        } else {
            None
        };
        let _ = self.events.send(Event::Server {
            event: event.event,
            payload: event.payload,
            seq: event.seq,
        });
        restart_after
    }

    /// Takes a newly issued device token into use and reports it to the owner.
    fn adopt_token(&mut self, hello: &Hello) {
        let Some(token) = &hello.device_token else {
            return;
        };
        if self.endpoint.device_token.as_ref() == Some(token) {
            return;
        }
        tracing::info!(
            port = self.endpoint.port,
            "gateway issued a new device token"
        );
        self.endpoint.device_token = Some(token.clone());
        if let Some(sink) = &self.token_sink {
            sink(token.clone());
        }
    }

    fn stop(&mut self, error: Option<ConnectError>) {
        let failure = match &error {
            Some(error) => CallError::NotConnected(error.clone()),
            None => CallError::ClientClosed,
        };
        // State first: a handle whose send fails from here on reads the cause from it.
        self.state.send_replace(State::Stopped { error });
        for call in self.queue.drain(..) {
            let _ = call.reply.send(Err(failure.clone()));
        }
        self.commands.close();
        while let Ok(call) = self.commands.try_recv() {
            let _ = call.reply.send(Err(failure.clone()));
        }
    }
}

struct Pending {
    reply: oneshot::Sender<Result<ResponseFrame, CallError>>,
    expect_final: bool,
}

/// Waits for `future` while queueing calls that arrive meanwhile; `None` when the owner
/// closed the client or dropped every handle.
async fn pump<F: Future>(
    future: F,
    commands: &mut mpsc::Receiver<Call>,
    queue: &mut VecDeque<Call>,
    cancel: &CancellationToken,
    error: &ConnectError,
) -> Option<F::Output> {
    tokio::pin!(future);
    loop {
        tokio::select! {
            output = &mut future => return Some(output),
            () = cancel.cancelled() => return None,
            call = commands.recv() => {
                let call = call?;
                queue.retain(|queued| !queued.reply.is_closed());
                if queue.len() >= MAX_QUEUED_CALLS {
                    let _ = call.reply.send(Err(CallError::NotConnected(error.clone())));
                } else {
                    queue.push_back(call);
                }
            }
        }
    }
}

async fn send_call(
    socket: &mut Socket,
    pending: &mut HashMap<String, Pending>,
    call: Call,
) -> Result<(), ConnectError> {
    if call.reply.is_closed() {
        // The caller timed out while the call was queued; do not run it late.
        return Ok(());
    }
    pending.retain(|_, waiting| !waiting.reply.is_closed());
    let sent = socket.send(tungstenite::Message::text(call.text)).await;
    pending.insert(
        call.id,
        Pending {
            reply: call.reply,
            expect_final: call.expect_final,
        },
    );
    sent.map_err(|err| ConnectError::Closed {
        code: None,
        reason: format!("sending failed: {err}"),
    })
}

/// Hands a response to its caller; `agent`'s acceptance keeps the call pending.
fn deliver(pending: &mut HashMap<String, Pending>, response: ResponseFrame) {
    let is_acceptance = response.ok
        && response
            .payload
            .as_ref()
            .and_then(|payload| payload.get("status"))
            .and_then(Value::as_str)
            == Some("accepted");
    match pending.get(&response.id) {
        None => {
            tracing::debug!(id = %response.id, "response to a call nobody waits for");
        }
        Some(waiting) if waiting.expect_final && is_acceptance => {
            tracing::debug!(id = %response.id, "agent run accepted; waiting for its final response");
        }
        Some(_) => {
            if let Some(waiting) = pending.remove(&response.id) {
                let _ = waiting.reply.send(Ok(response));
            }
        }
    }
}

fn lost(error: ConnectError) -> SessionEnd {
    SessionEnd::Lost {
        error,
        restart_after: None,
    }
}

/// Detects holes in the per-connection event numbering (PROTOCOL.md §1.2).
#[derive(Debug, Default)]
struct SeqTracker {
    /// The number the next event should carry; `None` before the first one.
    next: Option<u64>,
}

impl SeqTracker {
    /// Records `seq`; returns `(expected, got)` when events were skipped.
    fn observe(&mut self, seq: u64) -> Option<(u64, u64)> {
        // Numbering starts at 1 on every connection.
        let expected = self.next.unwrap_or(1);
        self.next = Some(seq.saturating_add(1));
        (seq > expected).then_some((expected, seq))
    }
}

/// The delay before the next attempt after `error`, or `None` to stop for good.
fn retry_delay(error: &ConnectError, attempt: u32, options: &Options) -> Option<Duration> {
    if error.is_permanent() {
        return None;
    }
    Some(match error {
        ConnectError::RateLimited { retry_after } => *retry_after,
        ConnectError::Unavailable {
            retry_after: Some(after),
        } => unavailable_delay(Some(*after)),
        _ => backoff(attempt, options),
    })
}

/// `min_backoff` doubled `attempt` times, capped at `max_backoff`.
fn backoff(attempt: u32, options: &Options) -> Duration {
    let factor = 1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX);
    options
        .min_backoff
        .saturating_mul(factor)
        .min(options.max_backoff)
}

fn unavailable_delay(retry_after: Option<Duration>) -> Duration {
    retry_after
        .unwrap_or(MAX_UNAVAILABLE_DELAY)
        .clamp(MIN_UNAVAILABLE_DELAY, MAX_UNAVAILABLE_DELAY)
}

/// Opens and authenticates one socket: device token first, gateway token if the
/// device token is refused (then the gateway issues a fresh one).
async fn open(
    endpoint: &mut Endpoint,
    identity: &DeviceIdentity,
    options: &Options,
) -> Result<(Socket, Hello), ConnectError> {
    if let Some(device_token) = endpoint.device_token.clone() {
        match handshake(
            &endpoint.host,
            endpoint.port,
            identity,
            options,
            Credential::Device(&device_token),
        )
        .await
        {
            Err(ConnectError::DeviceTokenMismatch) => {
                tracing::warn!(
                    port = endpoint.port,
                    "device token refused; connecting with the gateway token"
                );
                endpoint.device_token = None;
            }
            other => return other,
        }
    }
    handshake(
        &endpoint.host,
        endpoint.port,
        identity,
        options,
        Credential::Gateway(&endpoint.gateway_token),
    )
    .await
}

/// The one credential a connect sends (and signs).
#[derive(Clone, Copy)]
enum Credential<'a> {
    Gateway(&'a Secret<String>),
    Device(&'a Secret<String>),
}

async fn handshake(
    host: &str,
    port: u16,
    identity: &DeviceIdentity,
    options: &Options,
    credential: Credential<'_>,
) -> Result<(Socket, Hello), ConnectError> {
    let tcp = TcpStream::connect((host, port))
        .await
        .map_err(|err| ConnectError::Unreachable {
            reason: format!("{host}:{port}: {err}"),
        })?;
    let _ = tcp.set_nodelay(true);
    // Small buffers: the admin holds one socket per tenant, and tungstenite's
    // 128 KiB defaults would cost ~25 MB for 100 tenants. Big answers still
    // arrive; the buffers only grow while they do.
    let config = WebSocketConfig::default()
        .read_buffer_size(SOCKET_BUFFER_BYTES)
        .write_buffer_size(SOCKET_BUFFER_BYTES)
        .max_message_size(Some(options.max_message_bytes))
        .max_frame_size(Some(options.max_message_bytes));
    let url = format!("ws://{host}:{port}/");
    let (mut socket, _response) =
        tokio_tungstenite::client_async_with_config(url, tcp, Some(config))
            .await
            .map_err(upgrade_error)?;

    let challenge = loop {
        let text = next_text(&mut socket, options).await?;
        match protocol::parse_frame(&text).map_err(ConnectError::Protocol)? {
            Incoming::Event(event) if event.event == "connect.challenge" => {
                let challenge: Challenge =
                    serde_json::from_value(event.payload).map_err(|err| {
                        ConnectError::Protocol(format!("malformed connect.challenge: {err}"))
                    })?;
                if challenge.nonce.is_empty() {
                    return Err(ConnectError::Protocol(
                        "connect.challenge has an empty nonce".to_string(),
                    ));
                }
                break challenge;
            }
            Incoming::Event(_) | Incoming::Unknown(_) => {}
            Incoming::Response(_) => {
                return Err(ConnectError::Protocol(
                    "gateway answered before the challenge".to_string(),
                ));
            }
        }
    };

    let (token, device_token, signed_token) = match credential {
        Credential::Gateway(token) => {
            (Some(token.expose().as_str()), None, token.expose().as_str())
        }
        Credential::Device(token) => (None, Some(token.expose().as_str()), token.expose().as_str()),
    };
    let version = env!("CARGO_PKG_VERSION");
    let signature = identity.sign_v3(&SignedFields {
        client_id: protocol::CLIENT_ID,
        client_mode: protocol::CLIENT_MODE,
        role: protocol::ROLE,
        scopes: &protocol::SCOPES,
        signed_at_ms: challenge.ts,
        token: signed_token,
        nonce: &challenge.nonce,
        platform: protocol::CLIENT_PLATFORM,
        device_family: None,
    });
    let params = ConnectParams {
        min_protocol: protocol::PROTOCOL_VERSION,
        max_protocol: protocol::PROTOCOL_VERSION,
        client: ClientInfo {
            id: protocol::CLIENT_ID,
            version,
            platform: protocol::CLIENT_PLATFORM,
            mode: protocol::CLIENT_MODE,
        },
        role: protocol::ROLE,
        scopes: &protocol::SCOPES,
        auth: ConnectAuth {
            token,
            device_token,
        },
        device: DeviceProof {
            id: identity.device_id(),
            public_key: identity.public_key(),
            signature,
            signed_at: challenge.ts,
            nonce: &challenge.nonce,
        },
    };
    let frame = RequestFrame {
        kind: "req",
        id: "c1",
        method: "connect",
        params: Some(&params),
    };
    let text = serde_json::to_string(&frame)
        .map_err(|err| ConnectError::Protocol(format!("cannot encode connect: {err}")))?;
    socket
        .send(tungstenite::Message::text(text))
        .await
        .map_err(|err| socket_error(err, options))?;

    let response = loop {
        let text = next_text(&mut socket, options).await?;
        match protocol::parse_frame(&text).map_err(ConnectError::Protocol)? {
            Incoming::Response(response) if response.id == "c1" => break response,
            Incoming::Response(response) => {
                return Err(ConnectError::Protocol(format!(
                    "answer to unknown request {:?} during connect",
                    response.id
                )));
            }
            Incoming::Event(_) | Incoming::Unknown(_) => {}
        }
    };
    if !response.ok {
        let error = response.error.ok_or_else(|| {
            ConnectError::Protocol("connect refused without an error object".to_string())
        })?;
        return Err(connect_error(&error));
    }
    let payload = response
        .payload
        .ok_or_else(|| ConnectError::Protocol("hello-ok without payload".to_string()))?;
    let hello = protocol::parse_hello(payload).map_err(ConnectError::Protocol)?;
    if hello.scopes.is_empty() {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, socket.close(None)).await;
        return Err(ConnectError::NoScopes);
    }
    tracing::debug!(
        port,
        server_version = %hello.server_version,
        auth_method = %hello.auth_method,
        "gateway connected"
    );
    Ok((socket, hello))
}

/// The next text frame during the handshake; a close becomes the matching error.
async fn next_text(socket: &mut Socket, options: &Options) -> Result<String, ConnectError> {
    loop {
        match socket.next().await {
            Some(Ok(tungstenite::Message::Text(text))) => return Ok(text.as_str().to_string()),
            Some(Ok(tungstenite::Message::Binary(_))) => {
                return Err(ConnectError::Protocol(
                    "gateway sent a binary frame".to_string(),
                ));
            }
            Some(Ok(tungstenite::Message::Close(frame))) => return Err(close_error(frame)),
            Some(Ok(_ping_pong_or_raw)) => {}
            Some(Err(err)) => return Err(socket_error(err, options)),
            None => {
                return Err(ConnectError::Closed {
                    code: None,
                    reason: String::new(),
                });
            }
        }
    }
}

/// A close frame as an error; 1013 is the gateway starting or draining (PROTOCOL.md §1.5).
fn close_error(frame: Option<CloseFrame>) -> ConnectError {
    match frame {
        Some(frame) => {
            let code = u16::from(frame.code);
            if code == 1013 {
                ConnectError::Unavailable { retry_after: None }
            } else {
                ConnectError::Closed {
                    code: Some(code),
                    reason: frame.reason.as_str().to_string(),
                }
            }
        }
        None => ConnectError::Closed {
            code: None,
            reason: String::new(),
        },
    }
}

fn socket_error(err: tungstenite::Error, options: &Options) -> ConnectError {
    match err {
        tungstenite::Error::Capacity(cause) => ConnectError::Protocol(format!(
            "gateway frame over the {} byte limit: {cause}",
            options.max_message_bytes
        )),
        // A peer that vanished is a dropped connection, not a protocol violation.
        tungstenite::Error::Protocol(
            cause @ (tungstenite::error::ProtocolError::ResetWithoutClosingHandshake
            | tungstenite::error::ProtocolError::HandshakeIncomplete),
        ) => ConnectError::Closed {
            code: None,
            reason: cause.to_string(),
        },
        tungstenite::Error::Protocol(cause) => ConnectError::Protocol(cause.to_string()),
        tungstenite::Error::Utf8(cause) => {
            ConnectError::Protocol(format!("invalid UTF-8: {cause}"))
        }
        other => ConnectError::Closed {
            code: None,
            reason: other.to_string(),
        },
    }
}

/// A refused WebSocket upgrade (PROTOCOL.md §1.1: 503 draining, 429 busy, 403 proxy).
fn upgrade_error(err: tungstenite::Error) -> ConnectError {
    match err {
        tungstenite::Error::Http(response) => {
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            match status {
                503 | 429 => ConnectError::Unavailable { retry_after },
                _ => ConnectError::Rejected {
                    code: format!("HTTP {status}"),
                    detail: None,
                    message: "the gateway refused the WebSocket upgrade".to_string(),
                },
            }
        }
        other => ConnectError::Unreachable {
            reason: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::Mutex;

    use serde_json::json;
    use tokio::task::JoinHandle;

    use crate::gateway::testing::{
        FakeConnection, FakeGateway, endpoint, fast_options, hello_ok, identity, transcript_frames,
    };

    /// Every socket test finishes well within this, or it fails instead of hanging.
    const TEST_DEADLINE: Duration = Duration::from_secs(10);

    async fn within<F: Future>(future: F) -> F::Output {
        tokio::time::timeout(TEST_DEADLINE, future)
            .await
            .expect("test step timed out")
    }

    /// Starts `Client::connect` on a task of its own, so the test can play the
    /// gateway meanwhile.
    fn spawn_connect(
        endpoint: Endpoint,
        options: Options,
    ) -> JoinHandle<Result<Client, ConnectError>> {
        tokio::spawn(async move { Client::connect(&endpoint, &identity(), options).await })
    }

    /// Starts a call on a task of its own, so the test can answer it meanwhile.
    fn spawn_call(
        client: &Client,
        method: &'static str,
        params: Value,
    ) -> JoinHandle<Result<Value, CallError>> {
        let client = client.clone();
        tokio::spawn(async move { client.call(method, params).await })
    }

    /// Accepts the next connection and answers its `connect` with `answer`.
    async fn answer_connect(gateway: &FakeGateway, answer: Value) -> FakeConnection {
        let mut connection = within(gateway.accept()).await;
        within(connection.challenge()).await;
        connection.send(answer).await;
        connection
    }

    /// Connects a client to `gateway`, answering the handshake with `hello`.
    async fn connected_with(
        gateway: &FakeGateway,
        endpoint: Endpoint,
        options: Options,
        hello: Value,
    ) -> (Client, FakeConnection) {
        let connecting = spawn_connect(endpoint, options);
        let mut connection = within(gateway.accept()).await;
        within(connection.handshake(hello)).await;
        let client = within(connecting).await.unwrap().unwrap();
        (client, connection)
    }

    /// A fresh fake gateway and a client connected to it with the usual options.
    async fn connected() -> (FakeGateway, Client, FakeConnection) {
        let gateway = FakeGateway::start().await;
        let (client, connection) = connected_with(
            &gateway,
            endpoint(gateway.port),
            fast_options(),
            hello_ok("dt-1"),
        )
        .await;
        (gateway, client, connection)
    }

    /// What `Client::connect` returns when the gateway answers `connect` with `answer`.
    async fn connect_answered(answer: Value) -> Result<Client, ConnectError> {
        let gateway = FakeGateway::start().await;
        let connecting = spawn_connect(endpoint(gateway.port), fast_options());
        let mut connection = answer_connect(&gateway, answer).await;
        connection.close(1008, "refused").await;
        within(connecting).await.unwrap()
    }

    async fn wait_state(client: &Client, wanted: impl Fn(&State) -> bool) -> State {
        let mut state = client.state();
        within(state.wait_for(|state| wanted(state)))
            .await
            .unwrap()
            .clone()
    }

    /// The first `connect` is signed (v3), carries the gateway token and yields `hello-ok`.
    #[tokio::test]
    async fn connect_signs_the_challenge_and_reads_hello() {
        let gateway = FakeGateway::start().await;
        let connecting = spawn_connect(endpoint(gateway.port), fast_options());
        let mut connection = within(gateway.accept()).await;
        let params = within(connection.handshake(hello_ok("dt-1"))).await;
        assert_eq!(params["auth"], json!({"token": "gw-token"}));
        assert_eq!(
            params["scopes"],
            json!([
                "operator.admin",
                "operator.read",
                "operator.write",
                "operator.pairing"
            ])
        );
        assert_eq!(params["client"]["version"], env!("CARGO_PKG_VERSION"));
        let client = within(connecting).await.unwrap().unwrap();
        let hello = client.hello();
        assert_eq!(hello.server_version, "test-1");
        assert_eq!(hello.scopes.len(), 4);
        assert_eq!(hello.device_token, Some(Secret::new("dt-1".to_string())));
        assert_eq!(*client.state().borrow(), State::Connected);
    }

    /// A refused device token falls back to the gateway token, and the fresh token is reported.
    #[tokio::test]
    async fn a_refused_device_token_falls_back_to_the_gateway_token() {
        let gateway = FakeGateway::start().await;
        let mut stale = endpoint(gateway.port);
        stale.device_token = Some(Secret::new("dt-stale".to_string()));
        let reported = Arc::new(Mutex::new(Vec::new()));
        let sink: TokenSink = {
            let reported = reported.clone();
            Arc::new(move |token: Secret<String>| {
                reported.lock().unwrap().push(token.expose().clone())
            })
        };
        let connecting = tokio::spawn(async move {
            Client::connect_with_sink(&stale, &identity(), fast_options(), Some(sink)).await
        });
        let mut first = within(gateway.accept()).await;
        let params = within(first.challenge()).await;
        assert_eq!(params["auth"], json!({"deviceToken": "dt-stale"}));
        let refusal = transcript_frames(include_str!(
            "../../tests/fixtures/gateway/connect-device-token-wrong.jsonl"
        ))
        .into_iter()
        .find(|frame| frame["type"] == "res")
        .unwrap();
        first.send(refusal).await;
        first.close(1008, "device token mismatch").await;
        let mut second = within(gateway.accept()).await;
        let params = within(second.handshake(hello_ok("dt-fresh"))).await;
        assert_eq!(params["auth"], json!({"token": "gw-token"}));
        let client = within(connecting).await.unwrap().unwrap();
        assert_eq!(*reported.lock().unwrap(), vec!["dt-fresh".to_string()]);
        assert_eq!(client.hello().auth_method, "token");
    }

    /// Connect refusals become the typed errors callers branch on.
    #[tokio::test]
    async fn connect_refusals_are_typed() {
        let transcript_error = |text: &str| {
            transcript_frames(text)
                .into_iter()
                .find(|frame| frame["type"] == "res" && frame["ok"] == false)
                .unwrap()
        };
        let cases = [
            (
                transcript_error(include_str!(
                    "../../tests/fixtures/gateway/remote-connect-pairing-required.jsonl"
                )),
                ConnectError::PairingRequired {
                    request_id: "8233b59f-8f51-4861-b890-afd6569e97a0".to_string(),
                    reason: "not-paired".to_string(),
                },
            ),
            (
                transcript_error(include_str!(
                    "../../tests/fixtures/gateway/connect-bad-token.jsonl"
                )),
                ConnectError::TokenMismatch,
            ),
            (
                json!({"type": "res", "id": "c1", "ok": true,
                       "payload": {"type": "hello-ok", "protocol": 4, "auth": {"method": "token", "scopes": []}}}),
                ConnectError::NoScopes,
            ),
            (
                json!({"type": "res", "id": "c1", "ok": false,
                       "error": {"code": "INVALID_REQUEST", "message": "device signature invalid",
                                 "details": {"code": "DEVICE_AUTH_SIGNATURE_INVALID"}}}),
                ConnectError::Rejected {
                    code: "INVALID_REQUEST".to_string(),
                    detail: Some("DEVICE_AUTH_SIGNATURE_INVALID".to_string()),
                    message: "device signature invalid".to_string(),
                },
            ),
        ];
        for (answer, expected) in cases {
            let got = connect_answered(answer).await.map(|_| ()).unwrap_err();
            assert_eq!(got, expected);
        }
    }

    /// A gateway that never sends the challenge fails the connect at its deadline.
    #[tokio::test]
    async fn a_silent_gateway_times_out_the_handshake() {
        let gateway = FakeGateway::start().await;
        let mut options = fast_options();
        options.connect_timeout = Duration::from_millis(200);
        let connecting = spawn_connect(endpoint(gateway.port), options);
        let _silent = within(gateway.accept()).await;
        let got = within(connecting).await.unwrap().map(|_| ()).unwrap_err();
        assert_eq!(got, ConnectError::Timeout(Duration::from_millis(200)));
    }

    /// A starting gateway (`UNAVAILABLE` + close 1013) is retried within the connect.
    #[tokio::test]
    async fn a_starting_gateway_is_retried() {
        let gateway = FakeGateway::start().await;
        let connecting = spawn_connect(endpoint(gateway.port), fast_options());
        let mut starting = answer_connect(
            &gateway,
            json!({"type": "res", "id": "c1", "ok": false,
                   "error": {"code": "UNAVAILABLE", "message": "gateway starting; retry shortly",
                             "retryable": true, "retryAfterMs": 100,
                             "details": {"reason": "startup-sidecars"}}}),
        )
        .await;
        starting.close(1013, "gateway starting").await;
        let mut ready = within(gateway.accept()).await;
        within(ready.handshake(hello_ok("dt-1"))).await;
        assert!(within(connecting).await.unwrap().is_ok());
    }

    /// Answers are matched to calls by id, whatever their order.
    #[tokio::test]
    async fn responses_are_matched_by_id_in_any_order() {
        let (_gateway, client, mut connection) = connected().await;
        let first = spawn_call(&client, "health", Value::Null);
        let first_request = within(connection.request()).await;
        let second = spawn_call(&client, "status", json!({}));
        let second_request = within(connection.request()).await;
        assert_eq!(first_request["method"], "health");
        assert!(first_request.get("params").is_none(), "{first_request}");
        assert_eq!(second_request["params"], json!({}));
        connection.reply(&second_request, json!({"which": 2})).await;
        connection.reply(&first_request, json!({"which": 1})).await;
        assert_eq!(within(first).await.unwrap(), Ok(json!({"which": 1})));
        assert_eq!(within(second).await.unwrap(), Ok(json!({"which": 2})));
    }

    /// `agent`'s acceptance does not end the call; its final answer does.
    #[tokio::test]
    async fn agent_waits_for_its_final_response() {
        let (_gateway, client, mut connection) = connected().await;
        let run = spawn_call(
            &client,
            "agent",
            json!({"message": "hi", "idempotencyKey": "run-1"}),
        );
        let request = within(connection.request()).await;
        connection
            .reply(
                &request,
                json!({"runId": "run-1", "status": "accepted", "acceptedAt": 1}),
            )
            .await;
        connection
            .reply(
                &request,
                json!({"runId": "run-1", "status": "ok", "summary": "completed"}),
            )
            .await;
        let answer = within(run).await.unwrap().unwrap();
        assert_eq!(answer["status"], "ok");
    }

    /// Server errors reach the caller typed, and the connection stays up.
    #[tokio::test]
    async fn call_errors_are_typed() {
        let (_gateway, client, mut connection) = connected().await;
        let call = spawn_call(&client, "status", Value::Null);
        let request = within(connection.request()).await;
        connection
            .send(json!({"type": "res", "id": request["id"], "ok": false,
                         "error": {"code": "FORBIDDEN", "message": "missing scope: operator.read",
                                   "details": {"code": "MISSING_SCOPE", "missingScope": "operator.read"}}}))
            .await;
        assert_eq!(
            within(call).await.unwrap(),
            Err(CallError::MissingScope {
                scope: "operator.read".to_string()
            })
        );
        assert_eq!(*client.state().borrow(), State::Connected);
    }

    /// Events reach subscribers in order, with a gap reported where numbers skip.
    #[tokio::test]
    async fn events_are_forwarded_with_gaps_reported() {
        let (_gateway, client, mut connection) = connected().await;
        let mut events = client.subscribe();
        for seq in [1, 2, 5] {
            connection
                .send(json!({"type": "event", "event": "tick", "payload": {"ts": seq}, "seq": seq}))
                .await;
        }
        let mut got = Vec::new();
        for _ in 0..4 {
            got.push(within(events.recv()).await.unwrap());
        }
        let tick = |seq: u64| Event::Server {
            event: "tick".to_string(),
            payload: json!({"ts": seq}),
            seq: Some(seq),
        };
        assert_eq!(
            got,
            vec![
                tick(1),
                tick(2),
                Event::Gap {
                    expected: 3,
                    got: 5
                },
                tick(5)
            ]
        );
    }

    /// After `shutdown` and close 1012 the client reconnects by itself; a call made
    /// meanwhile waits and is answered on the new connection.
    #[tokio::test]
    async fn reconnects_after_a_restart_and_queued_calls_wait() {
        let (gateway, client, mut connection) = connected().await;
        let mut events = client.subscribe();
        connection
            .send(json!({"type": "event", "event": "shutdown",
                         "payload": {"reason": "gateway restarting", "restartExpectedMs": 20}, "seq": 1}))
            .await;
        connection.close(1012, "service restart").await;
        let state = wait_state(&client, |state| matches!(state, State::Reconnecting { .. })).await;
        assert_eq!(
            state,
            State::Reconnecting {
                error: ConnectError::Closed {
                    code: Some(1012),
                    reason: "service restart".to_string()
                }
            }
        );
        let call = spawn_call(&client, "health", Value::Null);
        let mut restarted = within(gateway.accept()).await;
        within(restarted.handshake(hello_ok("dt-1"))).await;
        let request = within(restarted.request()).await;
        restarted.reply(&request, json!({"ok": true})).await;
        assert_eq!(within(call).await.unwrap(), Ok(json!({"ok": true})));
        let mut seen = Vec::new();
        while let Ok(event) = events.try_recv() {
            seen.push(event);
        }
        assert!(seen.contains(&Event::Reconnected), "{seen:?}");
        assert_eq!(*client.state().borrow(), State::Connected);
    }

    /// A connection that drops mid-call fails that call with `Closed`.
    #[tokio::test]
    async fn a_drop_mid_call_fails_the_call() {
        let (_gateway, client, mut connection) = connected().await;
        let call = spawn_call(&client, "status", Value::Null);
        within(connection.request()).await;
        drop(connection);
        let got = within(call).await.unwrap();
        assert!(
            matches!(got, Err(CallError::Closed { code: None, .. })),
            "{got:?}"
        );
    }

    /// Malformed JSON breaks the connection (the call gets `Protocol`), not the client.
    #[tokio::test]
    async fn malformed_frames_break_the_connection_not_the_client() {
        let (gateway, client, mut connection) = connected().await;
        let call = spawn_call(&client, "status", Value::Null);
        within(connection.request()).await;
        connection.send_raw("{\"type\":\"res\",\"id\":").await;
        let got = within(call).await.unwrap();
        assert!(matches!(got, Err(CallError::Protocol(_))), "{got:?}");
        let mut again = within(gateway.accept()).await;
        within(again.handshake(hello_ok("dt-1"))).await;
        wait_state(&client, |state| *state == State::Connected).await;
    }

    /// A frame over the size limit is refused, never buffered.
    #[tokio::test]
    async fn oversized_frames_are_refused() {
        let gateway = FakeGateway::start().await;
        let mut options = fast_options();
        options.max_message_bytes = 32 * 1024;
        let (client, mut connection) =
            connected_with(&gateway, endpoint(gateway.port), options, hello_ok("dt-1")).await;
        let call = spawn_call(&client, "status", Value::Null);
        let request = within(connection.request()).await;
        connection
            .reply(&request, json!({"blob": "x".repeat(64 * 1024)}))
            .await;
        let got = within(call).await.unwrap();
        assert!(
            matches!(&got, Err(CallError::Protocol(reason)) if reason.contains("32768 byte limit")),
            "{got:?}"
        );
    }

    /// A call nobody answers fails at its own deadline; the connection stays.
    #[tokio::test]
    async fn unanswered_calls_time_out() {
        let (_gateway, client, mut connection) = connected().await;
        let call = tokio::spawn({
            let client = client.clone();
            async move {
                client
                    .call_with_timeout("status", Value::Null, Duration::from_millis(100))
                    .await
            }
        });
        within(connection.request()).await;
        assert_eq!(
            within(call).await.unwrap(),
            Err(CallError::Timeout(Duration::from_millis(100)))
        );
        assert_eq!(*client.state().borrow(), State::Connected);
    }

    /// A request larger than the gateway's `maxPayload` is refused before sending.
    #[tokio::test]
    async fn requests_over_max_payload_are_refused() {
        let gateway = FakeGateway::start().await;
        let mut hello = hello_ok("dt-1");
        hello["policy"]["maxPayload"] = json!(200);
        let (client, _connection) =
            connected_with(&gateway, endpoint(gateway.port), fast_options(), hello).await;
        let got = client
            .call("config.patch", json!({"raw": "x".repeat(300)}))
            .await;
        assert!(
            matches!(got, Err(CallError::RequestTooLarge { max: 200, .. })),
            "{got:?}"
        );
    }

    /// Nothing received for two tick intervals: the client drops the socket and reconnects.
    #[tokio::test]
    async fn the_watchdog_replaces_a_silent_connection() {
        let gateway = FakeGateway::start().await;
        let mut hello = hello_ok("dt-1");
        hello["policy"]["tickIntervalMs"] = json!(50);
        let (client, mut silent) = connected_with(
            &gateway,
            endpoint(gateway.port),
            fast_options(),
            hello.clone(),
        )
        .await;
        let state = wait_state(&client, |state| matches!(state, State::Reconnecting { .. })).await;
        assert!(
            format!("{state:?}").contains("no frame from the gateway"),
            "{state:?}"
        );
        assert_eq!(
            within(silent.recv()).await,
            None,
            "the old socket is closed"
        );
        let mut fresh = within(gateway.accept()).await;
        within(fresh.handshake(hello)).await;
        wait_state(&client, |state| *state == State::Connected).await;
    }

    /// Pairing required on a reconnect stops the client; calls then fail with the cause.
    #[tokio::test]
    async fn pairing_required_on_reconnect_stops_the_client() {
        let (gateway, client, connection) = connected().await;
        drop(connection);
        let _again = answer_connect(
            &gateway,
            json!({"type": "res", "id": "c1", "ok": false,
                   "error": {"code": "NOT_PAIRED", "message": "pairing required",
                             "details": {"code": "PAIRING_REQUIRED", "reason": "not-paired", "requestId": "req-9"}}}),
        )
        .await;
        let pairing = ConnectError::PairingRequired {
            request_id: "req-9".to_string(),
            reason: "not-paired".to_string(),
        };
        let state = wait_state(&client, |state| matches!(state, State::Stopped { .. })).await;
        assert_eq!(
            state,
            State::Stopped {
                error: Some(pairing.clone())
            }
        );
        assert!(client.is_stopped());
        assert_eq!(
            client.call("health", Value::Null).await,
            Err(CallError::NotConnected(pairing))
        );
    }

    /// While the gateway is down, a call waits for its deadline and then names the cause.
    #[tokio::test]
    async fn a_call_during_an_outage_names_the_cause_at_its_deadline() {
        let (gateway, client, connection) = connected().await;
        drop(gateway);
        drop(connection);
        wait_state(&client, |state| {
            matches!(
                state,
                State::Reconnecting {
                    error: ConnectError::Unreachable { .. }
                }
            )
        })
        .await;
        // Reconnect attempts are refused at once (10..40 ms apart); the call outlives several.
        let got = client
            .call_with_timeout("health", Value::Null, Duration::from_millis(300))
            .await;
        assert!(
            matches!(
                got,
                Err(CallError::NotConnected(ConnectError::Unreachable { .. }))
            ),
            "{got:?}"
        );
    }

    /// `close` sends a normal close, stops the client and fails later calls.
    #[tokio::test]
    async fn close_stops_the_client() {
        let (_gateway, client, mut connection) = connected().await;
        client.close();
        assert_eq!(within(connection.recv()).await, None);
        let state = wait_state(&client, |state| matches!(state, State::Stopped { .. })).await;
        assert_eq!(state, State::Stopped { error: None });
        assert_eq!(
            client.call("health", Value::Null).await,
            Err(CallError::ClientClosed)
        );
    }

    /// Dropping the last handle closes the socket.
    #[tokio::test]
    async fn dropping_every_handle_closes_the_socket() {
        let (_gateway, client, mut connection) = connected().await;
        let clone = client.clone();
        drop(client);
        drop(clone);
        assert_eq!(within(connection.recv()).await, None);
    }

    /// Event numbers that skip ahead are reported once, with what was expected.
    #[test]
    fn seq_gaps_are_detected() {
        let mut seq = SeqTracker::default();
        let observed: Vec<_> = [1, 2, 5, 6, 6, 9]
            .into_iter()
            .map(|n| seq.observe(n))
            .collect();
        assert_eq!(
            observed,
            vec![None, None, Some((3, 5)), None, None, Some((7, 9))]
        );
        let mut late_start = SeqTracker::default();
        assert_eq!(late_start.observe(3), Some((1, 3)));
    }

    /// Backoff doubles from 1 s to 30 s; the gateway's retry hints win; permanent errors stop.
    #[test]
    fn reconnect_delays_follow_the_reference_client() {
        let options = Options::default();
        let closed = ConnectError::Closed {
            code: None,
            reason: String::new(),
        };
        let delays: Vec<_> = (0..7)
            .map(|attempt| retry_delay(&closed, attempt, &options).unwrap().as_secs())
            .collect();
        assert_eq!(delays, vec![1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(backoff(u32::MAX, &options), Duration::from_secs(30));
        let rate_limited = ConnectError::RateLimited {
            retry_after: Duration::from_secs(299),
        };
        assert_eq!(
            retry_delay(&rate_limited, 0, &options),
            Some(Duration::from_secs(299))
        );
        let starting = ConnectError::Unavailable {
            retry_after: Some(Duration::from_millis(500)),
        };
        assert_eq!(
            retry_delay(&starting, 3, &options),
            Some(Duration::from_millis(500))
        );
        for permanent in [
            ConnectError::TokenMismatch,
            ConnectError::DeviceTokenMismatch,
            ConnectError::NoScopes,
            ConnectError::PairingRequired {
                request_id: "r".to_string(),
                reason: "not-paired".to_string(),
            },
        ] {
            assert_eq!(retry_delay(&permanent, 0, &options), None, "{permanent:?}");
        }
    }
}
