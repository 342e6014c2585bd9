//! Getting updates: `getUpdates` long polling (offset, limit, timeout, a
//! remembered `allowed_updates`, 409 for an overtaken poll) and the webhook
//! methods, whose only effect here is that `getUpdates` is refused while a
//! webhook is set.

use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::time::Instant;

use crate::call::{Answer, Failure};
use crate::params::{integer_param, json_param, string_param};
use crate::state::{BotState, Shared, WaitingPoll};

/// `getUpdates` returns at most this many updates, whatever `limit` says.
const MAX_UPDATES_PER_POLL: i64 = 100;

const CONFLICT: &str = "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running";

const WEBHOOK_ACTIVE: &str = "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first";

/// Long polling: answers at once when updates are queued, else waits for one
/// until `timeout` seconds pass.
pub(crate) async fn get_updates(
    shared: &Shared,
    token: &str,
    params: &Map<String, Value>,
) -> Answer {
    let offset = integer_param(params, "offset")?;
    let limit = integer_param(params, "limit")?
        .unwrap_or(MAX_UPDATES_PER_POLL)
        .clamp(1, MAX_UPDATES_PER_POLL);
    let limit = usize::try_from(limit).expect("limit is clamped to 1..=100");
    let timeout = integer_param(params, "timeout")?
        .unwrap_or(0)
        .max(0)
        .unsigned_abs();
    let allowed_updates = match json_param(params, "allowed_updates")? {
        None => None,
        Some(Value::Array(kinds)) => Some(
            kinds
                .iter()
                .map(|kind| kind.as_str().map(str::to_owned))
                .collect::<Option<Vec<String>>>()
                .ok_or_else(|| Failure::bad_request("Bad Request: can't parse allowed updates"))?,
        ),
        Some(_) => {
            return Err(Failure::bad_request(
                "Bad Request: can't parse allowed updates",
            ));
        }
    };
    let deadline = Instant::now() + Duration::from_secs(timeout);
    let poll_number = {
        let mut state = shared.lock();
        let bot = state.bot_mut(token);
        if !bot.webhook_url.is_empty() {
            return Err(Failure::new(409, WEBHOOK_ACTIVE));
        }
        bot.confirm(offset);
        if let Some(kinds) = allowed_updates {
            bot.allowed_updates = kinds;
        }
        bot.polls_started += 1;
        bot.polls_started
    };
    // A poll still waiting for this token was overtaken by this one.
    shared.polls.notify_waiters();
    let mut waiting = None;
    loop {
        let notified = shared.polls.notified();
        tokio::pin!(notified);
        // Registered before looking at the queue, so that a push between the
        // look and the wait still wakes this poll.
        notified.as_mut().enable();
        {
            let mut state = shared.lock();
            if state.closed {
                return Ok(json!([]));
            }
            let bot = state.bot_mut(token);
            if bot.polls_started != poll_number {
                return Err(Failure::new(409, CONFLICT));
            }
            if !bot.updates.is_empty() {
                return Ok(bot
                    .updates
                    .iter()
                    .take(limit)
                    .map(|(_, update)| update.clone())
                    .collect());
            }
        }
        if waiting.is_none() {
            waiting = Some(WaitingPoll::new(shared, token));
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            return Ok(json!([]));
        }
    }
}

pub(crate) fn set_webhook(bot: &mut BotState, params: &Map<String, Value>) -> Answer {
    bot.webhook_url = string_param(params, "url").unwrap_or_default();
    Ok(Value::Bool(true))
}

pub(crate) fn get_webhook_info(bot: &BotState) -> Value {
    json!({
        "url": bot.webhook_url,
        "has_custom_certificate": false,
        "pending_update_count": bot.updates.len(),
    })
}

pub(crate) fn delete_webhook(bot: &mut BotState, params: &Map<String, Value>) -> Answer {
    bot.webhook_url.clear();
    if params
        .get("drop_pending_updates")
        .is_some_and(|drop| drop == &json!(true) || drop == &json!("true"))
    {
        bot.updates.clear();
    }
    Ok(Value::Bool(true))
}
