//! RPC methods after hello-ok: scope check (`FORBIDDEN`/`MISSING_SCOPE` exactly as
//! recorded), param validation (`invalid <method> params: …`), then the result. The
//! connection task applies the programmed delay, drop and error before calling here.

use std::time::Duration;

use serde_json::{Value, json};

use crate::config_doc::RpcError;
use crate::payloads;
use crate::state::{Audience, Gateway, now_ms};
use crate::validate;

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
    fn one(out: Out) -> Reply {
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

fn invalid(id: &str, message: impl Into<String>) -> Value {
    rpc_err(id, RpcError::invalid(message))
}

/// The scope a method needs; `None` for `health` (exempt); unknown methods are `Err`.
fn required_scope(method: &str) -> Result<Option<&'static str>, ()> {
    let scope = match method {
        "health" => None,
        "status" | "config.get" | "usage.status" | "usage.cost" | "sessions.usage"
        | "skills.status" | "sessions.list" | "channels.status" | "agents.list" | "models.list" => {
            Some("operator.read")
        }
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
    if let Some(schema) = validate::method_params(method)
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
        "skills.install" => skills_install(gw, id, params),
        "skills.update" => skills_update(gw, id, params),
        "sessions.list" => Reply::one(Out::Res(ok(id, payloads::sessions_list(params)))),
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
        "send" => send(gw, id, params),
        "agent" => agent(gw, id, params),
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
    let range = match payloads::date_range(params, today, earliest) {
        Ok(range) => range,
        Err(message) => return Reply::one(Out::Res(invalid(id, message))),
    };
    let payload = match method {
        "usage.cost" => payloads::usage_cost(&state.usage, &range),
        _ => payloads::sessions_usage(&state.usage, &range),
    };
    Reply::one(Out::Res(ok(id, payload)))
}

fn skills_install(gw: &Gateway, id: &str, params: &Value) -> Reply {
    if params.get("source").is_some() {
        let slug = params.get("slug").and_then(Value::as_str).unwrap_or("");
        let failure = json!({"ok": false, "message": format!("ClawHub is unreachable: cannot install {slug}"),
            "stdout": "", "stderr": "", "code": null});
        return Reply::one(Out::Res(
            json!({"type": "res", "id": id, "ok": false, "payload": failure,
            "error": {"code": "UNAVAILABLE", "message": failure["message"]}}),
        ));
    }
    let name = params.get("name").and_then(Value::as_str).unwrap_or("");
    let install_id = params
        .get("installId")
        .and_then(Value::as_str)
        .unwrap_or("");
    let fail = |message: String| {
        let payload =
            json!({"ok": false, "message": message, "stdout": "", "stderr": "", "code": null});
        Reply::one(Out::Res(
            json!({"type": "res", "id": id, "ok": false, "payload": payload,
            "error": {"code": "UNAVAILABLE", "message": message}}),
        ))
    };
    let Some(skill) = payloads::find_skill(name) else {
        return fail(format!("Skill not found: {name}"));
    };
    let declared = skill["install"]
        .as_array()
        .is_some_and(|options| options.iter().any(|option| option["id"] == install_id));
    if !declared {
        return fail(format!("Installer not found: {install_id}"));
    }
    let programmed = gw.state().knobs.skills_install.clone();
    match programmed {
        Some(outcome) if outcome.get("ok") == Some(&json!(false)) => {
            let message = outcome["message"]
                .as_str()
                .unwrap_or("install failed")
                .to_string();
            let payload = json!({"ok": false, "message": message,
                "stdout": outcome.get("stdout").cloned().unwrap_or(json!("")),
                "stderr": outcome.get("stderr").cloned().unwrap_or(json!("")),
                "code": outcome.get("code").cloned().unwrap_or(json!(1))});
            Reply::one(Out::Res(
                json!({"type": "res", "id": id, "ok": false, "payload": payload,
                "error": {"code": "UNAVAILABLE", "message": message}}),
            ))
        }
        _ => Reply::one(Out::Res(ok(
            id,
            json!({"ok": true, "message": format!("Installed {name} ({install_id})"), "stdout": "", "stderr": "", "code": 0}),
        ))),
    }
}

fn skills_update(gw: &Gateway, id: &str, params: &Value) -> Reply {
    if params.get("source").is_some() {
        let slug = params.get("slug").and_then(Value::as_str);
        let all = params.get("all").and_then(Value::as_bool).unwrap_or(false);
        return match (slug, all) {
            (None, false) => Reply::one(Out::Res(invalid(
                id,
                "clawhub skills.update requires \"slug\" or \"all\"",
            ))),
            (Some(_), true) => Reply::one(Out::Res(invalid(
                id,
                "clawhub skills.update accepts either \"slug\" or \"all\", not both",
            ))),
            _ => Reply::one(Out::Res(ok(
                id,
                json!({"ok": true, "skillKey": slug.unwrap_or("*"), "config": {"source": "clawhub", "results": []}}),
            ))),
        };
    }
    let skill_key = params.get("skillKey").and_then(Value::as_str).unwrap_or("");
    let (entry, hash, path) = {
        let mut state = gw.state();
        let entry = state.config.update_skill_entry(skill_key, params);
        (
            entry,
            state.config.hash(),
            state.config.path.display().to_string(),
        )
    };
    gw.broadcast(
        "config.changed",
        json!({"path": path, "hash": hash, "ts": now_ms()}),
        Audience::Read,
    );
    gw.broadcast(
        "skills.changed",
        json!({"reason": "config"}),
        Audience::Read,
    );
    Reply::one(Out::Res(ok(
        id,
        json!({"ok": true, "skillKey": skill_key, "config": entry}),
    )))
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

fn send(gw: &Gateway, id: &str, params: &Value) -> Reply {
    let channel = params
        .get("channel")
        .and_then(Value::as_str)
        .unwrap_or("telegram");
    if channel == "webchat" {
        return Reply::one(Out::Res(invalid(
            id,
            "send does not support channel webchat",
        )));
    }
    let to = params.get("to").and_then(Value::as_str).unwrap_or("");
    let state = gw.state();
    let telegram = payloads::telegram_state(&state);
    let problem = match &telegram {
        None => Some(
            "OutboundDeliveryError: Telegram bot token missing for account \"default\" (set channels.telegram.accounts.default.botToken/tokenFile or TELEGRAM_BOT_TOKEN for default)"
                .to_string(),
        ),
        Some(telegram) if !telegram.running || state.telegram_stopped_at.is_some() => {
            Some(format!(
                "OutboundDeliveryError: {}",
                telegram.last_error.clone().unwrap_or_else(|| "telegram channel is not running".to_string())
            ))
        }
        Some(telegram) => telegram.last_error.as_ref().filter(|error| error.contains("401")).map(|error| format!("OutboundDeliveryError: {error}")),
    };
    if let Some(message) = problem {
        return Reply::one(Out::Res(err(
            id,
            json!({"code": "UNAVAILABLE", "message": message, "details": {"code": "OUTBOUND_DELIVERY_QUEUED"}}),
        )));
    }
    let message_id = (now_ms() % 1_000_000).to_string();
    Reply::one(Out::Res(ok(
        id,
        json!({"runId": crate::pairing::uuid_v4(), "messageId": message_id, "channel": "telegram", "chatId": to}),
    )))
}

/// Two responses with the same id: `accepted`, agent events, then the final one
/// (transcripts/… and PROTOCOL.md §3.13).
fn agent(gw: &Gateway, id: &str, params: &Value) -> Reply {
    let behaviour = gw.state().knobs.agent.clone();
    let run_id = params["idempotencyKey"]
        .as_str()
        .unwrap_or("run")
        .to_string();
    let session_key = params
        .get("sessionKey")
        .and_then(Value::as_str)
        .unwrap_or("agent:main:main")
        .to_string();
    let agent_id = params
        .get("agentId")
        .and_then(Value::as_str)
        .unwrap_or("main")
        .to_string();
    let accepted_at = now_ms();
    let accepted = ok(
        id,
        json!({"runId": run_id, "sessionKey": session_key, "agentId": agent_id,
            "status": "accepted", "acceptedAt": accepted_at}),
    );
    let session_id = crate::pairing::uuid_v4();
    let agent_event = |seq: u64, stream: &str, data: Value| Out::Event {
        name: "agent".to_string(),
        payload: json!({"runId": run_id, "sessionId": session_id, "agentId": agent_id,
            "sessionKey": session_key, "stream": stream, "data": data, "seq": seq, "ts": now_ms()}),
    };
    let mut later = vec![agent_event(
        1,
        "lifecycle",
        json!({"phase": "model", "provider": null, "model": null}),
    )];
    let ended = now_ms();
    let final_frame = match behaviour.outcome.as_str() {
        "error" => {
            later.push(agent_event(
                2,
                "lifecycle",
                json!({"phase": "error", "startedAt": accepted_at,
                "endedAt": ended, "error": behaviour.error_message, "executionSettled": true}),
            ));
            later.push(Out::Event {
                name: "chat".to_string(),
                payload: json!({"runId": run_id, "sessionKey": session_key, "agentId": agent_id,
                    "seq": 2, "state": "error", "errorMessage": behaviour.error_message}),
            });
            json!({"type": "res", "id": id, "ok": false,
                "payload": {"runId": run_id, "status": "error", "summary": behaviour.error_message},
                "error": {"code": "UNAVAILABLE", "message": behaviour.error_message}})
        }
        "timeout" => ok(
            id,
            json!({"runId": run_id, "status": "timeout", "summary": "aborted", "timeoutPhase": "model"}),
        ),
        _ => {
            later.push(agent_event(
                2,
                "assistant",
                json!({"text": behaviour.text, "delta": behaviour.text}),
            ));
            later.push(agent_event(
                3,
                "lifecycle",
                json!({"phase": "end", "startedAt": accepted_at,
                "endedAt": ended, "executionSettled": true}),
            ));
            later.push(Out::Event {
                name: "chat".to_string(),
                payload: json!({"runId": run_id, "sessionKey": session_key, "agentId": agent_id,
                    "seq": 3, "state": "final",
                    "message": {"role": "assistant", "content": [{"type": "text", "text": behaviour.text}]}}),
            });
            ok(
                id,
                json!({"runId": run_id, "status": "ok", "summary": "completed",
                    "result": {"payloads": [{"text": behaviour.text}],
                        "meta": {"durationMs": behaviour.final_delay_ms, "agentMeta": {"sessionId": session_id}}}}),
            )
        }
    };
    later.push(Out::Res(final_frame));
    Reply {
        now: vec![Out::Res(accepted)],
        later: Some((Duration::from_millis(behaviour.final_delay_ms), later)),
    }
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
        json!({"requestId": request_id, "deviceId": device.device_id, "decision": "approved", "ts": now_ms()}),
        Audience::Pairing,
    );
    Some(device)
}
