//! `mtp::gateway::Client` against a misbehaving gateway: the fake (`mtp-fake-gateway`,
//! run as a plain process on a loopback port, no Docker) programmed through its control
//! API to answer late, skip event numbers, send malformed or oversized frames, withhold
//! the challenge, cut the socket mid-call, restart, and lock out wrong tokens. Every
//! fault must end in a typed error or a reconnect, never a panic or a stuck client.
//!
//! The fake passes the conformance suite (tests/gateway_conformance.rs), which is why
//! its faults stand in for a real gateway's here.

mod common;

use std::time::{Duration, Instant};

use mtp::gateway::{
    AgentScope, CallError, Client, ConnectError, DeviceIdentity, Endpoint, Event, Options, State,
    UsagePeriod, UsageQuery,
};
use mtp::tenant::Secret;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};

use common::fake_gateway::{FakeGateway, quick_options};

/// Bound of every wait in this file; a step that takes longer is a failure.
const STEP: Duration = Duration::from_secs(10);

/// A call that outlives its timeout fails with `Timeout` at the deadline; the
/// connection stays up, other calls flow meanwhile, and the late answer is dropped.
#[tokio::test]
async fn a_slow_answer_times_out_and_the_connection_stays_usable() {
    let fake = FakeGateway::start(&[]);
    let client = paired(&fake, 1, quick_options()).await;
    fake.control(
        Method::PUT,
        "behaviour",
        json!({"delaysMs": {"health": 1000, "status": 1500}}),
    )
    .await;
    let started = Instant::now();
    let late = client
        .call_with_timeout("health", Value::Null, Duration::from_millis(300))
        .await;
    assert_eq!(late, Err(CallError::Timeout(Duration::from_millis(300))));
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{started:?}"
    );
    // `status` is answered after `health`'s late answer came and was thrown away.
    let status = within(client.status()).await.expect("status");
    assert!(status.runtime_version.starts_with("2026.9.6"));
    assert!(started.elapsed() >= Duration::from_millis(1000));
    assert_eq!(*client.state().borrow(), State::Connected);
}

/// Events carry `seq`; numbers the gateway skipped are reported as `Event::Gap`
/// before the event that revealed them, which is still delivered.
#[tokio::test]
async fn skipped_event_numbers_are_reported_as_a_gap() {
    let fake = FakeGateway::start(&[]);
    let client = paired(&fake, 2, quick_options()).await;
    let mut events = client.subscribe();
    fake.control(Method::POST, "emit", json!({"event": "custom.one"}))
        .await;
    let first = next_event(&mut events, |event| is_server(event, "custom.one")).await;
    let Event::Server { seq: Some(seq), .. } = first else {
        panic!("events carry seq: {first:?}")
    };
    fake.control(
        Method::POST,
        "emit",
        json!({"event": "custom.two", "payload": {"n": 2}, "fault": {"skipSeq": 3}}),
    )
    .await;
    let gap = next_event(&mut events, |event| !is_server(event, "tick")).await;
    assert_eq!(
        gap,
        Event::Gap {
            expected: seq + 1,
            got: seq + 4
        }
    );
    let second = next_event(&mut events, |event| !is_server(event, "tick")).await;
    assert_eq!(
        second,
        Event::Server {
            event: "custom.two".to_string(),
            payload: json!({"n": 2}),
            seq: Some(seq + 4)
        }
    );
    assert_eq!(*client.state().borrow(), State::Connected);
}

/// A frame that is not JSON ends that connection with a protocol error; the client
/// reconnects by itself and the next call succeeds.
#[tokio::test]
async fn a_malformed_frame_breaks_the_connection_and_the_client_reconnects() {
    let fake = FakeGateway::start(&[]);
    let client = paired(&fake, 3, slow_backoff()).await;
    let mut events = client.subscribe();
    let lost = watch_for_loss(client.state());
    fake.control(
        Method::POST,
        "emit",
        json!({"event": "custom.bad", "fault": "malformed"}),
    )
    .await;
    let error = within(lost).await.expect("the state is watched");
    assert!(matches!(error, ConnectError::Protocol(_)), "{error:?}");
    next_event(&mut events, |event| *event == Event::Reconnected).await;
    assert!(within(client.health()).await.expect("health").ok);
}

/// A frame above `max_message_bytes` is refused without being buffered: the
/// connection ends with a protocol error naming the limit, and the client reconnects.
#[tokio::test]
async fn an_oversized_frame_breaks_the_connection_and_the_client_reconnects() {
    let fake = FakeGateway::start(&[]);
    let options = Options {
        max_message_bytes: 64 * 1024,
        ..slow_backoff()
    };
    let client = paired(&fake, 4, options).await;
    let mut events = client.subscribe();
    let lost = watch_for_loss(client.state());
    fake.control(
        Method::POST,
        "emit",
        json!({"event": "custom.big", "fault": "oversized", "oversizeBytes": 200_000}),
    )
    .await;
    let error = within(lost).await.expect("the state is watched");
    match &error {
        ConnectError::Protocol(reason) => assert!(reason.contains("65536"), "{reason}"),
        other => panic!("expected a protocol error, got {other:?}"),
    }
    next_event(&mut events, |event| *event == Event::Reconnected).await;
    assert!(within(client.health()).await.expect("health").ok);
}

/// A gateway that accepts the socket but never sends `connect.challenge`: a connect
/// fails with `Timeout` at its deadline; a connected client whose gateway goes silent
/// like this keeps retrying (`Reconnecting` with `Timeout`) and recovers once the
/// challenge comes again.
#[tokio::test]
async fn a_gateway_that_never_sends_the_challenge_times_out() {
    let fake = FakeGateway::start(&[]);
    let identity = DeviceIdentity::from_seed([5; 32]);
    let endpoint = fake.pair(&identity).await;
    let options = Options {
        connect_timeout: Duration::from_millis(800),
        ..quick_options()
    };
    let client = Client::connect(&endpoint, &identity, options.clone())
        .await
        .expect("connect");
    let mut events = client.subscribe();

    fake.control(Method::PUT, "behaviour", json!({"noChallenge": true}))
        .await;
    let started = Instant::now();
    let refused = Client::connect(&endpoint, &identity, options).await;
    assert_eq!(
        refused.map(|_| ()),
        Err(ConnectError::Timeout(Duration::from_millis(800)))
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_secs(3),
        "{took:?}"
    );

    let mut state = client.state();
    fake.control(Method::POST, "drop", json!({})).await;
    within(state.wait_for(|state| {
        matches!(
            state,
            State::Reconnecting {
                error: ConnectError::Timeout(_)
            }
        )
    }))
    .await
    .expect("the state is watched");
    fake.control(Method::PUT, "behaviour", json!({"noChallenge": false}))
        .await;
    next_event(&mut events, |event| *event == Event::Reconnected).await;
    assert!(within(client.health()).await.expect("health").ok);
}

/// A socket cut without a close frame while a call is out fails that call with
/// `Closed` (it may or may not have run); the client reconnects by itself and the next
/// call succeeds. A method that always cuts the socket never stops the client.
#[tokio::test]
async fn a_connection_cut_mid_call_fails_that_call_and_the_client_reconnects() {
    let fake = FakeGateway::start(&[]);
    let client = paired(&fake, 6, quick_options()).await;
    let mut events = client.subscribe();
    fake.control(
        Method::PUT,
        "behaviour",
        json!({"dropOn": {"usage.cost": 1, "status": "always"}}),
    )
    .await;
    let cut = within(client.call("usage.cost", json!({}))).await;
    assert!(
        matches!(cut, Err(CallError::Closed { code: None, .. })),
        "{cut:?}"
    );
    next_event(&mut events, |event| *event == Event::Reconnected).await;
    let week = UsageQuery {
        period: UsagePeriod::Days(7),
        agents: AgentScope::All,
        time_zone: None,
    };
    let cost = within(client.usage_cost(&week)).await.expect("usage.cost");
    assert_eq!(cost.daily.len(), 7);

    for _ in 0..2 {
        let cut = within(client.status()).await;
        assert!(
            matches!(cut, Err(CallError::Closed { code: None, .. })),
            "{cut:?}"
        );
        assert!(within(client.health()).await.expect("health").ok);
    }
    assert!(!client.is_stopped());
}

/// `shutdown` with `restartExpectedMs`, then close 1012: the client waits that long
/// (up to `max_backoff`) before its first attempt (the fake would admit it sooner), retries a gateway still
/// refusing with `UNAVAILABLE`, and answers a call made meanwhile on the new boot.
#[tokio::test]
async fn an_announced_restart_is_waited_out_and_the_client_reconnects() {
    let fake = FakeGateway::start(&[]);
    // The client waits for `restartExpectedMs` capped at `max_backoff`.
    let options = Options {
        max_backoff: Duration::from_secs(2),
        ..quick_options()
    };
    let client = paired(&fake, 7, options).await;
    let mut events = client.subscribe();

    // Down for 200 ms, but expected back after 1500 ms: no attempt before that.
    let boot = client.hello().boot_id.clone();
    let lost = watch_for_loss(client.state());
    fake.control(
        Method::POST,
        "restart",
        json!({"restartExpectedMs": 1500, "downMs": 200}),
    )
    .await;
    let shutdown = next_event(&mut events, |event| is_server(event, "shutdown")).await;
    let shutdown_at = Instant::now();
    let Event::Server { payload, .. } = shutdown else {
        unreachable!("filtered above")
    };
    assert_eq!(
        payload,
        json!({"reason": "gateway restarting", "restartExpectedMs": 1500})
    );
    let error = within(lost).await.expect("the state is watched");
    assert_eq!(
        error,
        ConnectError::Closed {
            code: Some(1012),
            reason: "service restart".to_string()
        }
    );
    let call = tokio::spawn({
        let client = client.clone();
        async move { client.health().await }
    });
    next_event(&mut events, |event| *event == Event::Reconnected).await;
    let took = shutdown_at.elapsed();
    assert!(
        took >= Duration::from_millis(1400) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert!(within(call).await.expect("joined").expect("health").ok);
    assert_ne!(client.hello().boot_id, boot);

    // Expected back after 300 ms, but refusing for 1500 ms: retried until admitted.
    let mut state = client.state();
    fake.control(
        Method::POST,
        "restart",
        json!({"restartExpectedMs": 300, "downMs": 1500}),
    )
    .await;
    let started = Instant::now();
    within(state.wait_for(|state| {
        matches!(
            state,
            State::Reconnecting {
                error: ConnectError::Unavailable { .. }
            }
        )
    }))
    .await
    .expect("the state is watched");
    next_event(&mut events, |event| *event == Event::Reconnected).await;
    assert!(started.elapsed() >= Duration::from_millis(1400));
    assert!(within(client.health()).await.expect("health").ok);
}

/// Ten wrong gateway tokens from one address within a minute: each is
/// `TokenMismatch`, and the eleventh attempt, even with the right token, is
/// `RateLimited` for about five minutes.
#[tokio::test]
async fn ten_wrong_tokens_lock_the_address_out() {
    let fake = FakeGateway::start(&[]);
    let identity = DeviceIdentity::from_seed([8; 32]);
    let wrong = Endpoint {
        gateway_token: Secret::new("wrong-token".to_string()),
        ..fake.endpoint()
    };
    for attempt in 1..=10 {
        let refused = Client::connect(&wrong, &identity, quick_options()).await;
        assert_eq!(
            refused.map(|_| ()),
            Err(ConnectError::TokenMismatch),
            "attempt {attempt}"
        );
    }
    let locked = Client::connect(&fake.endpoint(), &identity, quick_options()).await;
    match locked.map(|_| ()) {
        Err(ConnectError::RateLimited { retry_after }) => {
            assert!(
                retry_after > Duration::from_secs(290) && retry_after <= Duration::from_secs(300),
                "{retry_after:?}"
            );
        }
        other => panic!("the eleventh attempt must be rate limited, got {other:?}"),
    }
    fake.control(Method::POST, "reset", json!({})).await;
    let admitted = Client::connect(&fake.endpoint(), &identity, quick_options()).await;
    assert!(
        matches!(admitted, Err(ConnectError::PairingRequired { .. })),
        "past authentication once the lockout is lifted: {admitted:?}"
    );
}

/// Pairs a fixed identity with the fake and connects with its device token.
async fn paired(fake: &FakeGateway, seed: u8, options: Options) -> Client {
    let identity = DeviceIdentity::from_seed([seed; 32]);
    let endpoint = fake.pair(&identity).await;
    let client = within(Client::connect(&endpoint, &identity, options))
        .await
        .expect("connect with the device token");
    assert_eq!(client.hello().auth_method, "device-token");
    client
}

/// Quick options whose first reconnect waits long enough for a test to see the
/// `Reconnecting` state.
fn slow_backoff() -> Options {
    Options {
        min_backoff: Duration::from_millis(300),
        ..quick_options()
    }
}

/// Resolves to the error of the first `Reconnecting` state after now.
fn watch_for_loss(mut state: watch::Receiver<State>) -> tokio::task::JoinHandle<ConnectError> {
    state.mark_unchanged();
    tokio::spawn(async move {
        loop {
            if state.changed().await.is_err() {
                panic!("the client's state channel closed");
            }
            if let State::Reconnecting { error } = &*state.borrow_and_update() {
                return error.clone();
            }
        }
    })
}

fn is_server(event: &Event, name: &str) -> bool {
    matches!(event, Event::Server { event, .. } if event == name)
}

/// The next event for which `wanted` holds, within `STEP`.
async fn next_event(
    events: &mut broadcast::Receiver<Event>,
    wanted: impl Fn(&Event) -> bool,
) -> Event {
    within(async {
        loop {
            match events.recv().await {
                Ok(event) if wanted(&event) => return event,
                Ok(_) => {}
                Err(err) => panic!("events: {err}"),
            }
        }
    })
    .await
}

async fn within<F: std::future::Future>(future: F) -> F::Output {
    tokio::time::timeout(STEP, future)
        .await
        .expect("no result within the step deadline")
}
