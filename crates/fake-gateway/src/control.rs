//! The `/__fake/…` control API that tests use to program the fake. Every call needs
//! `Authorization: Bearer <gateway token>`; bodies are JSON. The endpoints are listed
//! in the crate doc of `main.rs`.

use std::collections::VecDeque;
use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde_json::{Value, json};

use crate::http::{has_gateway_bearer, json_response};
use crate::state::{
    AgentBehaviour, Audience, BroadcastEvent, ChannelOverride, DEFAULT_OVERSIZE_BYTES, EventFault,
    Gateway, Knobs, MAX_OVERSIZE_BYTES, MAX_USAGE_ENTRIES, Signal, UsageEntry,
};

pub fn router() -> Router<Gateway> {
    Router::new()
        .route("/state", get(state))
        .route("/reset", post(reset))
        .route("/behaviour", put(behaviour).post(behaviour))
        .route("/usage", put(usage).post(usage))
        .route(
            "/channels/telegram",
            put(telegram).post(telegram).delete(telegram_clear),
        )
        .route("/faults", post(faults))
        .route("/emit", post(emit))
        .route("/restart", post(restart))
        .route("/shutdown", post(shutdown))
        .route("/drop", post(drop_all))
        .route("/pairing", get(pairing))
        .route("/approve", post(approve))
}

/// Proof that the caller sent the gateway token.
pub struct Authorized;

impl FromRequestParts<Gateway> for Authorized {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, gw: &Gateway) -> Result<Self, Self::Rejection> {
        if has_gateway_bearer(gw, &parts.headers) {
            return Ok(Authorized);
        }
        Err(json_response(
            StatusCode::UNAUTHORIZED,
            &json!({"ok": false, "error": "control API needs Authorization: Bearer <gateway token>"}),
        ))
    }
}

fn bad_request(message: impl Into<String>) -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        &json!({"ok": false, "error": message.into()}),
    )
}

fn done(extra: Value) -> Response {
    let mut body = json!({"ok": true});
    if let (Value::Object(body), Value::Object(extra)) = (&mut body, extra) {
        body.extend(extra);
    }
    json_response(StatusCode::OK, &body)
}

/// The request body as JSON; an empty body is `{}`, one that is not JSON a 400.
struct Body(Value);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let text = String::from_request(request, state)
            .await
            .map_err(IntoResponse::into_response)?;
        if text.trim().is_empty() {
            return Ok(Body(json!({})));
        }
        serde_json::from_str(&text)
            .map(Body)
            .map_err(|err| bad_request(format!("body is not JSON: {err}")))
    }
}

async fn state(_: Authorized, State(gw): State<Gateway>) -> Response {
    let state = gw.state();
    let connected = |device_id: &str| state.connected_devices.contains_key(device_id);
    let phase = format!("{:?}", state.phase);
    json_response(
        StatusCode::OK,
        &json!({
            "phase": phase.split_whitespace().next().unwrap_or(""),
            "bootId": state.boot_id,
            "connections": state.connections,
            "pairing": state.pairing.list_payload(&connected),
            "config": {"hash": state.config.hash(), "appliedConfigHash": state.config.applied_revision()},
            "knobs": {
                "delaysMs": state.knobs.delays_ms,
                "dropOn": state.knobs.drop_on,
                "errors": state.knobs.errors,
                "noChallenge": state.knobs.no_challenge,
            },
            "usageEntries": state.usage.len(),
            "queuedEventFaults": state.event_faults.len(),
        }),
    )
}

/// Clears programmed behaviour, usage, channel overrides, faults and the rate
/// limiter; `{"pairing": true}` also forgets paired devices and pending requests.
async fn reset(_: Authorized, State(gw): State<Gateway>, Body(body): Body) -> Response {
    let mut state = gw.state();
    state.knobs = Knobs::default();
    state.usage.clear();
    state.telegram = None;
    state.telegram_started_at = None;
    state.telegram_stopped_at = None;
    state.event_faults.clear();
    state.limiter.clear();
    if body.get("pairing").and_then(Value::as_bool) == Some(true) {
        state.pairing.clear();
    }
    done(json!({}))
}

/// Merges programmed behaviour; `null` removes an entry. Keys: `delaysMs`
/// {method: ms}, `dropOn` {method: n | "always"}, `errors` {method: {code, message,
/// details?, retryable?, retryAfterMs?}}, `noChallenge` bool, `agent` {outcome,
/// text, errorMessage, finalDelayMs}, `skillsInstall` {ok:false, message, …} | null.
async fn behaviour(_: Authorized, State(gw): State<Gateway>, Body(body): Body) -> Response {
    let Value::Object(body) = body else {
        return bad_request("body must be an object");
    };
    let mut state = gw.state();
    let knobs = &mut state.knobs;
    for (key, value) in body {
        match key.as_str() {
            "delaysMs" => {
                let Value::Object(map) = value else {
                    return bad_request("delaysMs must be an object");
                };
                for (method, ms) in map {
                    match ms.as_u64() {
                        Some(ms) => knobs.delays_ms.insert(method, ms.min(600_000)),
                        None => knobs.delays_ms.remove(&method),
                    };
                }
            }
            "dropOn" => {
                let Value::Object(map) = value else {
                    return bad_request("dropOn must be an object");
                };
                for (method, times) in map {
                    match (&times, times.as_u64()) {
                        (Value::String(text), _) if text == "always" => {
                            knobs.drop_on.insert(method, u32::MAX);
                        }
                        (_, Some(count)) => {
                            knobs
                                .drop_on
                                .insert(method, u32::try_from(count).unwrap_or(u32::MAX - 1));
                        }
                        _ => {
                            knobs.drop_on.remove(&method);
                        }
                    }
                }
            }
            "errors" => {
                let Value::Object(map) = value else {
                    return bad_request("errors must be an object");
                };
                for (method, error) in map {
                    if error.is_null() {
                        knobs.errors.remove(&method);
                        continue;
                    }
                    if error.get("code").and_then(Value::as_str).is_none()
                        || error.get("message").and_then(Value::as_str).is_none()
                    {
                        return bad_request(format!(
                            "errors.{method} needs string code and message"
                        ));
                    }
                    knobs.errors.insert(method, error);
                }
            }
            "noChallenge" => knobs.no_challenge = value.as_bool().unwrap_or(false),
            "agent" => {
                if value.is_null() {
                    knobs.agent = AgentBehaviour::default();
                    continue;
                }
                let mut merged =
                    serde_json::to_value(AgentJson::from(&knobs.agent)).unwrap_or_default();
                if let (Value::Object(merged), Value::Object(patch)) = (&mut merged, value) {
                    merged.extend(patch);
                }
                match serde_json::from_value::<AgentBehaviour>(merged) {
                    Ok(agent) => knobs.agent = agent,
                    Err(err) => return bad_request(format!("agent: {err}")),
                }
            }
            "skillsInstall" => {
                knobs.skills_install = (!value.is_null()).then_some(value);
            }
            "cronNextWakeAtMs" => knobs.cron_next_wake_ms = value.as_i64(),
            "heartbeatEveryMs" => knobs.heartbeat_every_ms = value.as_u64(),
            "lastInboundAtMs" => knobs.last_inbound_at_ms = value.as_i64(),
            "activeRun" => knobs.active_run = value.as_bool().unwrap_or(false),
            other => return bad_request(format!("unknown behaviour key: {other}")),
        }
    }
    done(json!({}))
}

/// Serializable mirror of `AgentBehaviour` for merging.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct AgentJson {
    outcome: String,
    text: String,
    error_message: String,
    final_delay_ms: u64,
}

impl From<&AgentBehaviour> for AgentJson {
    fn from(agent: &AgentBehaviour) -> Self {
        AgentJson {
            outcome: agent.outcome.clone(),
            text: agent.text.clone(),
            error_message: agent.error_message.clone(),
            final_delay_ms: agent.final_delay_ms,
        }
    }
}

/// Replaces the usage figures: `{"entries": [{date, provider?, model?, agentId?,
/// input, output, cacheRead, cacheWrite, inputCost, outputCost, cacheReadCost,
/// cacheWriteCost, totalCost?, count?}]}`.
async fn usage(_: Authorized, State(gw): State<Gateway>, Body(body): Body) -> Response {
    let entries = body.get("entries").cloned().unwrap_or(json!([]));
    let entries: Vec<UsageEntry> = match serde_json::from_value(entries) {
        Ok(entries) => entries,
        Err(err) => return bad_request(format!("entries: {err}")),
    };
    if entries.len() > MAX_USAGE_ENTRIES {
        return bad_request(format!("at most {MAX_USAGE_ENTRIES} entries"));
    }
    let count = entries.len();
    gw.state().usage = entries;
    done(json!({"entries": count}))
}

/// Programs the Telegram channel: `{configured, enabled, running, connected,
/// lastError, mode, tokenSource, statusIssues, preset: "conflict"|"unauthorized"}`.
async fn telegram(_: Authorized, State(gw): State<Gateway>, Body(body): Body) -> Response {
    let programmed: ChannelOverride = match serde_json::from_value(body) {
        Ok(programmed) => programmed,
        Err(err) => return bad_request(format!("telegram: {err}")),
    };
    let mut state = gw.state();
    state.telegram = Some(programmed.resolved());
    state.telegram_stopped_at = None;
    done(json!({}))
}

async fn telegram_clear(_: Authorized, State(gw): State<Gateway>) -> Response {
    gw.state().telegram = None;
    done(json!({}))
}

fn fault_of(value: &Value, oversize_bytes: usize) -> Result<EventFault, String> {
    match value {
        Value::String(kind) if kind == "malformed" => Ok(EventFault::Malformed),
        Value::String(kind) if kind == "oversized" => Ok(EventFault::Oversized {
            bytes: oversize_bytes,
        }),
        Value::Object(map) if map.contains_key("skipSeq") => map["skipSeq"]
            .as_u64()
            .map(EventFault::SkipSeq)
            .ok_or_else(|| "skipSeq must be a number".to_string()),
        other => Err(format!("unknown fault: {other}")),
    }
}

fn oversize_of(body: &Value) -> usize {
    body.get("oversizeBytes")
        .and_then(Value::as_u64)
        .map_or(DEFAULT_OVERSIZE_BYTES, |bytes| {
            usize::try_from(bytes)
                .unwrap_or(MAX_OVERSIZE_BYTES)
                .min(MAX_OVERSIZE_BYTES)
        })
}

/// Queues faults for the next events any socket sends: `{"events": ["malformed",
/// "oversized", {"skipSeq": 3}], "oversizeBytes"?: n}`.
async fn faults(_: Authorized, State(gw): State<Gateway>, Body(body): Body) -> Response {
    let oversize = oversize_of(&body);
    let Some(list) = body.get("events").and_then(Value::as_array) else {
        return bad_request("events must be an array");
    };
    let mut queued = VecDeque::new();
    for item in list {
        match fault_of(item, oversize) {
            Ok(fault) => queued.push_back(fault),
            Err(message) => return bad_request(message),
        }
    }
    let mut state = gw.state();
    if state.event_faults.len() + queued.len() > 1000 {
        return bad_request("too many queued faults");
    }
    state.event_faults.extend(queued);
    done(json!({"queued": state.event_faults.len()}))
}

/// Broadcasts an event now to every authenticated socket: `{"event", "payload"?,
/// "fault"?: "malformed" | "oversized" | {"skipSeq": n}, "oversizeBytes"?}`.
async fn emit(_: Authorized, State(gw): State<Gateway>, Body(body): Body) -> Response {
    let Some(name) = body.get("event").and_then(Value::as_str) else {
        return bad_request("event must be a string");
    };
    let fault = match body.get("fault") {
        None | Some(Value::Null) => None,
        Some(value) => match fault_of(value, oversize_of(&body)) {
            Ok(fault) => Some(fault),
            Err(message) => return bad_request(message),
        },
    };
    gw.signal(Signal::Event(Arc::new(BroadcastEvent {
        name: name.to_string(),
        payload: body.get("payload").cloned().unwrap_or(json!({})),
        audience: Audience::All,
        fault,
    })));
    done(json!({}))
}

/// `{"restartExpectedMs"?: 1500, "downMs"?: <--restart-ms>}`.
async fn restart(_: Authorized, State(gw): State<Gateway>, Body(body): Body) -> Response {
    let expected = body
        .get("restartExpectedMs")
        .and_then(Value::as_u64)
        .unwrap_or(1500);
    let down = body
        .get("downMs")
        .and_then(Value::as_u64)
        .map_or(gw.settings().restart_down, |ms| {
            std::time::Duration::from_millis(ms.min(600_000))
        });
    gw.restart(expected, down);
    done(json!({}))
}

async fn shutdown(_: Authorized, State(gw): State<Gateway>) -> Response {
    gw.stop();
    done(json!({}))
}

async fn drop_all(_: Authorized, State(gw): State<Gateway>) -> Response {
    gw.signal(Signal::Drop);
    done(json!({}))
}

async fn pairing(_: Authorized, State(gw): State<Gateway>) -> Response {
    let state = gw.state();
    let connected = |device_id: &str| state.connected_devices.contains_key(device_id);
    json_response(StatusCode::OK, &state.pairing.list_payload(&connected))
}

/// `{"requestId"}` → `{"ok":true,"requestId","deviceId"}`, or 404 for an unknown id.
async fn approve(_: Authorized, State(gw): State<Gateway>, Body(body): Body) -> Response {
    let Some(request_id) = body.get("requestId").and_then(Value::as_str) else {
        return bad_request("requestId must be a string");
    };
    match crate::methods::approve(&gw, request_id) {
        Some(device) => {
            done(json!({"requestId": request_id, "deviceId": device.identity.device_id}))
        }
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"ok": false, "error": "unknown requestId", "requestId": request_id})),
        )
            .into_response(),
    }
}
