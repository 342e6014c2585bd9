//! A tenant's bot, seen from the admin: proving a BotFather token before a
//! cell is made (`getMe`, through teloxide's `Bot` as a plain client: one of
//! the stated exceptions), and, only while the tenant's cell sleeps, watching
//! its bot for a waiting message and saying `typing` while the cell wakes.
//!
//! The watch is `getUpdates` *without an offset*: Telegram confirms updates
//! only through an offset, so the one it answers stays pending for the cell,
//! whose poller starts with `deleteWebhook(drop_pending_updates=false)` and
//! reads it. Nothing here ever sends an offset or `allowed_updates` on a
//! tenant's token, and nothing polls a token whose cell runs (two pollers on
//! one token get 409 Conflict).

use teloxide::prelude::Requester;

use crate::fleet::{App, redact};
use crate::tenant::{BotToken, Secret};

/// A bot Telegram vouched for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvenBot {
    pub id: u64,
    pub username: String,
}

/// Why a token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProveError {
    #[error(
        "Telegram does not know this token (revoked or mistyped); copy it again from @BotFather"
    )]
    Unauthorized,
    #[error("bot @{username} already belongs to tenant {tenant}; every client needs its own bot")]
    AlreadyUsed { username: String, tenant: String },
    #[error("cannot reach the Telegram Bot API ({0}); try again in a minute")]
    Unreachable(String),
}

/// Calls `getMe` with the token and refuses a bot another tenant already uses.
///
/// # Errors
///
/// `Unauthorized`, `AlreadyUsed`, or `Unreachable` (network or Telegram trouble).
pub async fn prove_bot_token(app: &App, token: &BotToken) -> Result<ProvenBot, ProveError> {
    let url = app
        .config
        .telegram
        .api_url
        .parse()
        .map_err(|_| ProveError::Unreachable("bad Bot API URL in the config".into()))?;
    let bot = teloxide::Bot::new(token.secret().expose()).set_api_url(url);
    let me = match bot.get_me().await {
        Ok(me) => me,
        Err(teloxide::RequestError::Api(_)) => return Err(ProveError::Unauthorized),
        Err(err) => {
            // teloxide strips tokens from URLs in errors; redact anyway.
            let text = redact(&err.to_string(), std::slice::from_ref(token.secret()));
            return Err(ProveError::Unreachable(text));
        }
    };
    let proven = ProvenBot {
        id: me.user.id.0,
        username: me.user.username.clone().unwrap_or_default(),
    };
    let tenants = app
        .store
        .tenants()
        .map_err(|err| ProveError::Unreachable(err.to_string()))?;
    if let Some(owner) = tenants.iter().find(|record| record.bot_id == proven.id) {
        return Err(ProveError::AlreadyUsed {
            username: proven.username,
            tenant: owner.id.to_string(),
        });
    }
    Ok(proven)
}

/// A message (or other update) waiting at Telegram for a sleeping tenant's bot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingUpdate {
    pub update_id: i64,
    /// The chat it came from, when it has one (a message, an edit, a button press).
    pub chat: Option<i64>,
}

/// Why the watch could not say.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// Telegram refused the token (revoked in BotFather).
    #[error("Telegram refuses the bot's token (revoked?); the cell cannot hear its client either")]
    Unauthorized,
    /// Another poller holds the token (409): the cell itself, or a webhook.
    #[error("another poller or a webhook holds the bot ({0})")]
    Conflict(String),
    #[error("cannot reach the Telegram Bot API ({0})")]
    Unreachable(String),
}

/// One long poll of `getUpdates` with no offset (nothing is confirmed): the
/// waiting updates, oldest first (up to 100), or none when none came within
/// `wait`.
///
/// # Errors
///
/// `Unauthorized`, `Conflict`, `Unreachable`; never a token in the text.
pub async fn pending_updates(
    app: &App,
    token: &Secret<String>,
    wait: std::time::Duration,
) -> Result<Vec<PendingUpdate>, WatchError> {
    let url = method_url(app, token, "getUpdates");
    let body = serde_json::json!({ "limit": 100, "timeout": wait.as_secs() });
    let answer = call(
        &url,
        &body,
        wait + std::time::Duration::from_secs(10),
        token,
    )
    .await?;
    let updates = answer.as_array().map(Vec::as_slice).unwrap_or_default();
    Ok(updates.iter().map(pending).collect())
}

fn pending(update: &serde_json::Value) -> PendingUpdate {
    let update_id = update["update_id"].as_i64().unwrap_or_default();
    let chat = [
        "message",
        "edited_message",
        "channel_post",
        "business_message",
    ]
    .iter()
    .find_map(|kind| update[*kind]["chat"]["id"].as_i64())
    .or_else(|| update["callback_query"]["message"]["chat"]["id"].as_i64())
    .or_else(|| update["my_chat_member"]["chat"]["id"].as_i64());
    PendingUpdate { update_id, chat }
}

/// `sendChatAction typing` to `chat` with the tenant's bot.
///
/// # Errors
///
/// As `pending_updates`.
pub async fn send_typing(app: &App, token: &Secret<String>, chat: i64) -> Result<(), WatchError> {
    let url = method_url(app, token, "sendChatAction");
    let body = serde_json::json!({ "chat_id": chat, "action": "typing" });
    call(&url, &body, std::time::Duration::from_secs(10), token).await?;
    Ok(())
}

fn method_url(app: &App, token: &Secret<String>, method: &str) -> String {
    format!(
        "{}/bot{}/{method}",
        app.config.telegram.api_url.trim_end_matches('/'),
        token.expose()
    )
}

/// One Bot API call; the answer's `result`.
async fn call(
    url: &str,
    body: &serde_json::Value,
    timeout: std::time::Duration,
    token: &Secret<String>,
) -> Result<serde_json::Value, WatchError> {
    let hide = |text: String| redact(&text, std::slice::from_ref(token));
    let client = http_client();
    let response = client
        .post(url)
        .json(body)
        .timeout(timeout)
        .send()
        .await
        .map_err(|err| WatchError::Unreachable(hide(err.without_url().to_string())))?;
    let status = response.status();
    let answer: serde_json::Value = response
        .json()
        .await
        .map_err(|err| WatchError::Unreachable(hide(err.without_url().to_string())))?;
    if answer["ok"].as_bool() == Some(true) {
        return Ok(answer["result"].clone());
    }
    let description = hide(
        answer["description"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    );
    Err(match status.as_u16() {
        401 | 404 => WatchError::Unauthorized,
        409 => WatchError::Conflict(description),
        code => WatchError::Unreachable(format!("HTTP {code}: {description}")),
    })
}

/// One client for every tenant's watch (connections reused).
fn http_client() -> &'static reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(reqwest::Client::new)
}
