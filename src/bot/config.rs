//! `/config <id> [path]` reads a client's config; `/config <id> <path>
//! <value>` previews a change (the diff, and how it applies) and names the
//! command that applies it, which carries the preview's code: typed back,
//! it applies exactly what was previewed (a config changed meanwhile is not
//! touched).

use serde_json::Value;
use teloxide::types::ChatId;

use crate::bot::send::say;
use crate::bot::{Ctx, HandlerResult, Tg};
use crate::fleet::Actor;
use crate::fleet::config_edit::{self, Applies, ConfigChange, ConfigRefused, Outcome};
use crate::tenant::TenantId;

/// The longest value shown in a message.
const SHOWN: usize = 3000;

/// `/config <id> [path]`.
pub async fn read(
    bot: &Tg,
    chat: ChatId,
    ctx: &Ctx,
    id: &TenantId,
    path: Option<&str>,
) -> HandlerResult {
    let text = match config_edit::config_get(&ctx.app, id, path).await {
        Ok(read) => {
            let value = read.value.as_ref().map_or_else(
                || ctx.texts.plain("clients.config_unset"),
                |value| shorten(&serde_json::to_string_pretty(value).unwrap_or_default()),
            );
            let pending = if read.restart_pending {
                ctx.texts.plain("clients.config_pending")
            } else {
                String::new()
            };
            ctx.texts.get(
                "clients.config_value",
                &[
                    ("id", id.as_str()),
                    ("path", path.unwrap_or("")),
                    ("value", &value),
                    ("pending", &pending),
                ],
            )
        }
        Err(err) => failed(ctx, id, &err),
    };
    say(bot, chat, text).await
}

/// `/config <id> <path> <value> [!code]`: a preview, or with its code the change.
pub async fn change(
    bot: &Tg,
    chat: ChatId,
    ctx: &Ctx,
    actor: &Actor,
    id: &TenantId,
    path: &str,
    value_text: &str,
) -> HandlerResult {
    let (value_text, code) = match value_text.rsplit_once(' ') {
        Some((value, code)) if is_code(code) => (value, Some(&code[1..])),
        _ => (value_text, None),
    };
    let value = match config_edit::parse_value(value_text) {
        Ok(value) => value,
        Err(err) => return say(bot, chat, failed(ctx, id, &err)).await,
    };
    let dry_run = code.is_none();
    let changed = config_edit::config_set(
        &ctx.app,
        actor,
        std::slice::from_ref(id),
        path,
        &value,
        dry_run,
        code,
    )
    .await;
    let text = match changed {
        Ok(mut changes) => match changes.pop() {
            Some(change) => change_text(ctx, &change, value_text),
            None => failed(ctx, id, &anyhow::anyhow!("nothing was reported")),
        },
        Err(err) => failed(ctx, id, &err),
    };
    say(bot, chat, text).await
}

fn is_code(word: &str) -> bool {
    word.len() == 7 && word.starts_with('!') && word[1..].chars().all(|c| c.is_ascii_hexdigit())
}

fn change_text(ctx: &Ctx, change: &ConfigChange, value_text: &str) -> String {
    let show = |value: Option<&Value>| {
        value.map_or_else(
            || ctx.texts.plain("clients.config_unset"),
            |value| shorten(&value.to_string()),
        )
    };
    let before = show(change.before.as_ref());
    let after = show(Some(&change.after));
    let applies = ctx.texts.plain(match change.applies {
        Applies::Hot => "clients.config_hot",
        Applies::Restart => "clients.config_restart",
        Applies::NoReload => "clients.config_none",
    });
    let id = change.tenant.as_str();
    let base = [
        ("id", id),
        ("path", change.path.as_str()),
        ("before", before.as_str()),
        ("after", after.as_str()),
    ];
    match &change.outcome {
        Outcome::Previewed { code } => {
            let command = format!("/config {id} {} {value_text} !{code}", change.path);
            let mut values = base.to_vec();
            values.push(("applies", &applies));
            values.push(("command", &command));
            ctx.texts.get("clients.config_preview", &values)
        }
        Outcome::Unchanged => ctx.texts.get("clients.config_unchanged", &base),
        Outcome::Applied | Outcome::Restarted { .. } => {
            let how = ctx.texts.plain(match change.outcome {
                Outcome::Restarted { container: true } => "clients.config_restarted_container",
                Outcome::Restarted { container: false } => "clients.config_restarted",
                _ => "clients.config_applied_hot",
            });
            let mut values = base.to_vec();
            values.push(("how", &how));
            ctx.texts.get("clients.config_applied", &values)
        }
        Outcome::Failed(why) => ctx.texts.get(
            "clients.config_failed",
            &[("id", id), ("reason", why.as_str())],
        ),
    }
}

fn failed(ctx: &Ctx, id: &TenantId, err: &anyhow::Error) -> String {
    if let Some(refused) = err.downcast_ref::<ConfigRefused>() {
        return ctx.texts.get(
            "clients.config_refused",
            &[("id", id.as_str()), ("reason", &refused.0)],
        );
    }
    let what = ctx.texts.get("clients.config_what", &[("id", id.as_str())]);
    crate::bot::clients::error_text(ctx, &what, err, "/config")
}

fn shorten(text: &str) -> String {
    if text.chars().count() <= SHOWN {
        return text.to_string();
    }
    let cut: String = text.chars().take(SHOWN).collect();
    format!("{cut}…")
}
