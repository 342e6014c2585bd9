//! `send` (a Telegram message through the channel, refused as the real one when the
//! channel is down) and `agent` (an accepted response, agent events, then the final
//! response with the same id, as the programmed behaviour says).

use std::time::Duration;

use serde_json::{Value, json};

use crate::methods::{Out, Reply, err, invalid, ok};
use crate::payloads;
use crate::state::{Gateway, now_ms};

pub fn send(gw: &Gateway, id: &str, params: &Value) -> Reply {
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
        json!({"runId": uuid::Uuid::new_v4().to_string(), "messageId": message_id, "channel": "telegram", "chatId": to}),
    )))
}

/// Two responses with the same id: `accepted`, agent events, then the final one
/// (transcripts/… and PROTOCOL.md §3.13).
pub fn agent(gw: &Gateway, id: &str, params: &Value) -> Reply {
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
    let session_id = uuid::Uuid::new_v4().to_string();
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
