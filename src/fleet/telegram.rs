//! Proving a tenant's BotFather token before a cell is made: `getMe` against
//! the configured Bot API (one of the stated exceptions: `fleet/` may use
//! teloxide's `Bot` as a plain client, only for `getMe` on a tenant token; never
//! `getUpdates`, which would fight the cell's own polling).

use teloxide::prelude::Requester;

use crate::fleet::{App, redact};
use crate::tenant::BotToken;

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
