//! RPC methods after hello-ok: scope check (`FORBIDDEN`/`MISSING_SCOPE` exactly as
//! recorded), param validation (`invalid <method> params: …`), then the result. The
//! connection task applies the programmed delay, drop and error before calling here.
//! The skills methods are in `skills.rs`, `send` and `agent` in `messages.rs`.

mod messages;
mod skills;

use std::time::Duration;

use serde_json::{Value, json};

use crate::config::RpcError;
use crate::state::{Audience, Gateway, now_ms};
use crate::{params, payloads, usage, validate};

/// What one authenticated socket may do.
pub struct Caller {
    pub conn_id: String,
    pub role: String,
    pub scopes: Vec<String>,
}

/// Something the connection task sends (events get their `seq` there).
#[derive(Debug)]
pub enum Out {
    Res(Value),
    Event { name: String, payload: Value },
}

pub struct Reply {
    pub now: Vec<Out>,
    /// Sent after a pause (the final response of `agent`).
    pub later: Option<(Duration, Vec<Out>)>,
}

impl Reply {
    pub fn one(out: Out) -> Reply {
        Reply {
            now: vec![out],
            later: None,
        }
    }
}

#[must_use]
pub fn ok(id: &str, payload: Value) -> Value {
    json!({"type": "res", "id": id, "ok": true, "payload": payload})
}

#[must_use]
pub fn err(id: &str, error: Value) -> Value {
    json!({"type": "res", "id": id, "ok": false, "error": error})
}

fn rpc_err(id: &str, error: RpcError) -> Value {
    let mut shape = json!({"code": error.code, "message": error.message});
    if let Some(details) = error.details {
        shape["details"] = details;
    }
    err(id, shape)
}

pub fn invalid(id: &str, message: impl Into<String>) -> Value {
    rpc_err(id, RpcError::invalid(message))
}

/// The scope a method needs; `None` for `health` (exempt); unknown methods are `Err`.
fn required_scope(method: &str) -> Result<Option<&'static str>, ()> {
    let scope = match method {
        "health" => None,
        "status" | "config.get" | "usage.status" | "usage.cost" | "sessions.usage"
        | "skills.status" | "sessions.list" | "channels.status" | "agents.list" | "models.list"
        | "cron.status" => Some("operator.read"),
        "config.patch"
        | "skills.install"
        | "skills.update"
        | "channels.start"
        | "channels.stop"
        | "gateway.restart.request" => Some("operator.admin"),
        "agent" | "send" => Some("operator.write"),
        "device.pair.list" | "device.pair.approve" => Some("operator.pairing"),
        _ => return Err(()),
    };
    Ok(scope)
}

fn has_scope(caller: &Caller, scope: &str) -> bool {
    crate::pairing::scopes_cover(&caller.scopes, scope)
}

/// Answers one request frame (already frame-validated).
pub fn dispatch(gw: &Gateway, caller: &Caller, id: &str, method: &str, params: &Value) -> Reply {
    let scope = match required_scope(method) {
        Ok(scope) => scope,
        Err(()) => return Reply::one(Out::Res(invalid(id, format!("unknown method: {method}")))),
    };
    // `/new` and `/reset` agent turns need admin.
    let scope = if method == "agent"
        && params
            .get("message")
            .and_then(Value::as_str)
            .is_some_and(|text| text.starts_with("/new") || text.starts_with("/reset"))
    {
        Some("operator.admin")
    } else {
        scope
    };
    if let Some(scope) = scope
        && !has_scope(caller, scope)
    {
        return Reply::one(Out::Res(err(
            id,
            json!({"code": "FORBIDDEN", "message": format!("missing scope: {scope}"),
                "details": {"code": "MISSING_SCOPE", "missingScope": scope, "requiredScopes": [scope]}}),
        )));
    }
    let empty = json!({});
    let params = if params.is_null() { &empty } else { params };
    if let Some(schema) = params::method_params(method)
        && let Some(message) = validate::check(&schema, params)
    {
        return Reply::one(Out::Res(invalid(
            id,
            format!("invalid {method} params: {message}"),
        )));
    }
    match method {
        "health" => {
            let state = gw.state();
            Reply::one(Out::Res(ok(id, payloads::health(gw, &state))))
        }
        "status" => Reply::one(Out::Res(ok(
            id,
            payloads::status(gw, has_scope(caller, "operator.admin")),
        ))),
        "config.get" => Reply::one(Out::Res(ok(id, gw.state().config.get_payload()))),
        "config.patch" => config_patch(gw, id, params),
        "usage.status" => Reply::one(Out::Res(ok(
            id,
            json!({"updatedAt": now_ms(), "providers": []}),
        ))),
        "usage.cost" | "sessions.usage" => usage(gw, id, method, params),
        "skills.status" => {
            let state = gw.state();
            Reply::one(Out::Res(ok(id, payloads::skills_status(gw, &state))))
        }
        "skills.install" => skills::install(gw, id, params),
        "skills.update" => skills::update(gw, id, params),
        "sessions.list" => {
            let state = gw.state();
            Reply::one(Out::Res(ok(id, payloads::sessions_list(&state, params))))
        }
        "cron.status" => {
            let state = gw.state();
            Reply::one(Out::Res(ok(id, payloads::cron_status(&state))))
        }
        "channels.status" => {
            let state = gw.state();
            Reply::one(Out::Res(ok(id, payloads::channels_status(gw, &state))))
        }
        "channels.start" | "channels.stop" => channels_toggle(gw, id, method, params),
        "agents.list" => {
            let state = gw.state();
            Reply::one(Out::Res(ok(id, payloads::agents_list(gw, &state))))
        }
        "models.list" => Reply::one(Out::Res(ok(id, payloads::models_list(&gw.state())))),
        "send" => messages::send(gw, id, params),
        "agent" => messages::agent(gw, id, params),
        "device.pair.list" => {
            let state = gw.state();
            let connected =
                |device_id: &str| state.connected_devices.get(device_id).copied().unwrap_or(0) > 0;
            Reply::one(Out::Res(ok(id, state.pairing.list_payload(&connected))))
        }
        "device.pair.approve" => pair_approve(gw, id, params),
        "gateway.restart.request" => {
            let gw = gw.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let down = gw.settings().restart_down;
                gw.restart(1500, down);
            });
            Reply::one(Out::Res(ok(id, json!({"ok": true, "scheduled": true}))))
        }
        _ => Reply::one(Out::Res(invalid(id, format!("unknown method: {method}")))),
    }
}

fn config_patch(gw: &Gateway, id: &str, params: &Value) -> Reply {
    let outcome = {
        let mut state = gw.state();
        match state.config.patch(params, now_ms()) {
            Ok(outcome) => outcome,
            Err(error) => return Reply::one(Out::Res(rpc_err(id, error))),
        }
    };
    if let Some(hash) = &outcome.new_hash {
        // Recorded order: chat.metadata.changed, config.changed, then the response.
        gw.broadcast("chat.metadata.changed", json!({}), Audience::Read);
        let path = gw.state().config.path.display().to_string();
        gw.broadcast(
            "config.changed",
            json!({"path": path, "hash": hash, "ts": now_ms()}),
            Audience::Read,
        );
    }
    if outcome.requires_restart {
        let gw = gw.clone();
        let delay = params
            .get("restartDelayMs")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        tokio::spawn(async move {
            // "The watcher restarts shortly after" the response.
            tokio::time::sleep(Duration::from_millis(100 + delay.min(60_000))).await;
            let down = gw.settings().restart_down;
            gw.restart(1500, down);
        });
    }
    Reply::one(Out::Res(ok(id, outcome.result)))
}

fn usage(gw: &Gateway, id: &str, method: &str, params: &Value) -> Reply {
    let state = gw.state();
    let today = chrono::Utc::now().date_naive();
    let earliest = state.usage.iter().map(|entry| entry.date).min();
    let range = match usage::date_range(params, today, earliest) {
        Ok(range) => range,
        Err(message) => return Reply::one(Out::Res(invalid(id, message))),
    };
    let payload = match method {
        "usage.cost" => usage::usage_cost(&state.usage, &range),
        _ => usage::sessions_usage(&state.usage, &range),
    };
    Reply::one(Out::Res(ok(id, payload)))
}

fn channels_toggle(gw: &Gateway, id: &str, method: &str, params: &Value) -> Reply {
    let channel = params.get("channel").and_then(Value::as_str).unwrap_or("");
    let mut state = gw.state();
    if channel != "telegram" || payloads::telegram_state(&state).is_none() {
        return Reply::one(Out::Res(invalid(id, format!("invalid {method} channel"))));
    }
    let account = params
        .get("accountId")
        .and_then(Value::as_str)
        .unwrap_or("default")
        .to_string();
    if method == "channels.stop" {
        state.telegram_stopped_at = Some(now_ms());
        return Reply::one(Out::Res(ok(
            id,
            json!({"channel": "telegram", "accountId": account, "stopped": true}),
        )));
    }
    state.telegram_stopped_at = None;
    state.telegram_started_at = Some(now_ms());
    Reply::one(Out::Res(ok(
        id,
        json!({"channel": "telegram", "accountId": account, "started": true, "outcome": "started"}),
    )))
}

fn pair_approve(gw: &Gateway, id: &str, params: &Value) -> Reply {
    let request_id = params
        .get("requestId")
        .and_then(Value::as_str)
        .unwrap_or("");
    match approve(gw, request_id) {
        Some(device) => Reply::one(Out::Res(ok(
            id,
            json!({"requestId": request_id, "device": crate::pairing::paired_json(&device)}),
        ))),
        None => Reply::one(Out::Res(invalid(id, "unknown requestId"))),
    }
}

/// Approves a pending request and tells pairing-scoped sockets
/// (`device.pair.resolved`). Shared by the RPC, the control API and the CLI.
pub fn approve(gw: &Gateway, request_id: &str) -> Option<crate::pairing::Paired> {
    let device = gw.state().pairing.approve(request_id, now_ms())?;
    gw.broadcast(
        "device.pair.resolved",
        json!({"requestId": request_id, "deviceId": device.identity.device_id, "decision": "approved", "ts": now_ms()}),
        Audience::Pairing,
    );
    Some(device)
}
