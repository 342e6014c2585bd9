//! `/clients`, `/client <id>` and the tenant actions behind commands and inline
//! buttons: restart, stop, start, logs, remove (with confirmation).

use std::sync::Arc;

use teloxide::prelude::*;
use teloxide::types::{InlineKeyboardButton, InlineKeyboardMarkup, InputFile};

use crate::bot::state::State;
use crate::bot::texts::escape;
use crate::bot::{Ctx, Dlg, HandlerResult, Tg, edit, send};
use crate::fleet::{
    self, Actor, Health, Started, Stopped, TenantView, UnknownTenant, UpgradeError, UpgradeStep,
    ViewState,
};
use crate::tenant::TenantId;

/// A tenant action an operator can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Restart,
    Stop,
    Start,
}

/// A parsed button of this module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Button {
    Act(Action, TenantId),
    Logs(TenantId),
    AskRemove(TenantId),
    RemoveKeep(TenantId),
    AskPurge(TenantId),
}

/// Parses callback data; anything malformed is `None` (the caller says the
/// button expired), so a forged button never reaches `fleet`.
#[must_use]
pub fn parse_button(data: &str) -> Option<Button> {
    let (kind, id) = data.rsplit_once(':')?;
    let id: TenantId = id.parse().ok()?;
    Some(match kind {
        "t:r" => Button::Act(Action::Restart, id),
        "t:s" => Button::Act(Action::Stop, id),
        "t:g" => Button::Act(Action::Start, id),
        "t:l" => Button::Logs(id),
        "t:x" => Button::AskRemove(id),
        "rm:k" => Button::RemoveKeep(id),
        "rm:p" => Button::AskPurge(id),
        _ => return None,
    })
}

pub async fn on_button(
    bot: &Tg,
    chat: ChatId,
    dialogue: &Dlg,
    ctx: &Arc<Ctx>,
    actor: &Actor,
    button: Button,
) -> HandlerResult {
    match button {
        Button::Act(action, id) => act(bot, chat, ctx, actor, action, &id).await?,
        Button::Logs(id) => logs(bot, chat, ctx, &id, 50).await?,
        Button::AskRemove(id) => ask_remove(bot, chat, ctx, &id).await?,
        Button::RemoveKeep(id) => remove(bot, chat, ctx, actor, &id, false).await?,
        Button::AskPurge(id) => {
            dialogue
                .update(State::ConfirmPurge {
                    tenant: id.to_string(),
                    touched_at: fleet::now(),
                })
                .await?;
            send(
                bot,
                chat,
                ctx.texts.get("clients.purge_ask", &[("id", id.as_str())]),
                None,
            )
            .await?;
        }
    }
    Ok(())
}

pub async fn list(bot: &Tg, chat: ChatId, ctx: &Ctx) -> HandlerResult {
    let views = match fleet::list(&ctx.app).await {
        Ok(views) => views,
        Err(err) => return failed(bot, chat, ctx, "/clients", &err).await,
    };
    if views.is_empty() {
        send(bot, chat, ctx.texts.plain("clients.list_empty"), None).await?;
        return Ok(());
    }
    let mut text = ctx.texts.get(
        "clients.list_header",
        &[("count", &views.len().to_string())],
    );
    // Tenants suspended for reaching their budget (`/resume` undoes it).
    let suspended: Vec<TenantId> = fleet::suspensions(&ctx.app)
        .unwrap_or_default()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    for view in &views {
        let tag = view
            .record
            .image
            .rsplit_once(':')
            .map_or(view.record.image.as_str(), |(_, tag)| tag);
        text.push('\n');
        text.push_str(&ctx.texts.get(
            "clients.list_line",
            &[
                ("emoji", emoji(view)),
                ("id", view.id().as_str()),
                ("port", &view.record.port.to_string()),
                ("tag", tag),
                ("uptime", &uptime(view)),
            ],
        ));
        if suspended.contains(view.id()) {
            text.push_str(&crate::bot::usage::suspended_mark(ctx));
        }
    }
    send(bot, chat, text, None).await?;
    Ok(())
}

pub async fn details(bot: &Tg, chat: ChatId, ctx: &Ctx, id: &TenantId) -> HandlerResult {
    let view = match fleet::show(&ctx.app, id).await {
        Ok(view) => view,
        Err(err) => return failed(bot, chat, ctx, "/client", &err).await,
    };
    let record = &view.record;
    let bot_name = record
        .bot_username
        .as_ref()
        .map_or_else(|| format!("id {}", record.bot_id), |u| format!("@{u}"));
    let text = ctx.texts.get(
        "clients.details",
        &[
            ("emoji", emoji(&view)),
            ("id", id.as_str()),
            (
                "name",
                record.display_name.as_deref().unwrap_or(id.as_str()),
            ),
            ("state", view.state.as_str()),
            ("health", view.health.as_str()),
            ("bot", &bot_name),
            ("model", &record.model),
            ("image", &record.image),
            ("port", &record.port.to_string()),
            ("paired", if record.paired { "yes" } else { "no" }),
            ("uptime", &uptime(&view)),
        ],
    );
    let running = view.state == ViewState::Running;
    let toggle = if running {
        InlineKeyboardButton::callback(ctx.texts.plain("clients.btn_stop"), format!("t:s:{id}"))
    } else {
        InlineKeyboardButton::callback(ctx.texts.plain("clients.btn_start"), format!("t:g:{id}"))
    };
    let markup = InlineKeyboardMarkup::new([
        vec![
            InlineKeyboardButton::callback(
                ctx.texts.plain("clients.btn_restart"),
                format!("t:r:{id}"),
            ),
            toggle,
        ],
        vec![
            InlineKeyboardButton::callback(
                ctx.texts.plain("clients.btn_logs"),
                format!("t:l:{id}"),
            ),
            InlineKeyboardButton::callback(
                ctx.texts.plain("clients.btn_remove"),
                format!("t:x:{id}"),
            ),
        ],
    ]);
    send(bot, chat, text, Some(markup)).await?;
    Ok(())
}

/// Restart, stop or start, showing one message that turns into the result.
pub async fn act(
    bot: &Tg,
    chat: ChatId,
    ctx: &Ctx,
    actor: &Actor,
    action: Action,
    id: &TenantId,
) -> HandlerResult {
    let label = match action {
        Action::Restart => "Restarting",
        Action::Stop => "Stopping",
        Action::Start => "Starting",
    };
    let working = send(
        bot,
        chat,
        ctx.texts
            .get("clients.working", &[("action", label), ("id", id.as_str())]),
        None,
    )
    .await?;
    let result = match action {
        Action::Restart => fleet::restart(&ctx.app, actor, id)
            .await
            .map(|()| "clients.restarted"),
        Action::Stop => fleet::stop(&ctx.app, actor, id)
            .await
            .map(|stopped| match stopped {
                Stopped::Stopped => "clients.stopped",
                Stopped::AlreadyStopped => "clients.already_stopped",
            }),
        Action::Start => fleet::start(&ctx.app, actor, id)
            .await
            .map(|started| match started {
                Started::Started => "clients.started",
                Started::AlreadyRunning => "clients.already_running",
            }),
    };
    let text = match result {
        Ok(key) => ctx.texts.get(key, &[("id", id.as_str())]),
        Err(err) => failure_text(ctx, label, &err),
    };
    edit(bot, chat, working.id, text, None).await?;
    Ok(())
}

/// The upgrade steps the operator sees, each covering some of fleet's.
const UPGRADE_PROGRESS: [(&str, &[UpgradeStep]); 4] = [
    (
        "clients.upgrade_step_check",
        &[UpgradeStep::Validate, UpgradeStep::Maintenance],
    ),
    (
        "clients.upgrade_step_container",
        &[UpgradeStep::Replace, UpgradeStep::Start],
    ),
    ("clients.upgrade_step_health", &[UpgradeStep::Health]),
    ("clients.upgrade_step_gateway", &[UpgradeStep::Gateway]),
];

/// `/upgrade <id> [image]`: one message, edited step by step, then the outcome.
pub async fn upgrade(
    bot: &Tg,
    chat: ChatId,
    ctx: &Ctx,
    actor: &Actor,
    id: &TenantId,
    image: Option<&str>,
) -> HandlerResult {
    let target = image.map_or_else(|| ctx.app.config.cell.image.clone(), str::to_string);
    let message = send(bot, chat, upgrade_text(ctx, id, &target, None), None).await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<UpgradeStep>();
    let work = async move {
        let mut progress = move |step: UpgradeStep| {
            let _ = tx.send(step);
        };
        fleet::upgrade(&ctx.app, actor, id, image, &mut progress).await
    };
    let editor = async {
        while let Some(mut step) = rx.recv().await {
            while let Ok(next) = rx.try_recv() {
                step = next;
            }
            let _ = edit(
                bot,
                chat,
                message.id,
                upgrade_text(ctx, id, &target, Some(step)),
                None,
            )
            .await;
        }
    };
    let (result, ()) = tokio::join!(work, editor);
    let text = match result {
        Ok(done) => ctx.texts.get(
            if done.left_stopped {
                "clients.upgraded_stopped"
            } else {
                "clients.upgraded"
            },
            &[
                ("id", id.as_str()),
                ("from", &done.from),
                ("to", &done.to),
                ("generation", &done.generation.to_string()),
            ],
        ),
        Err(UpgradeError::Refused(reason)) => ctx.texts.get(
            "clients.upgrade_refused",
            &[("id", id.as_str()), ("reason", &reason)],
        ),
        Err(UpgradeError::Failed {
            step,
            reason,
            outcome,
            ..
        }) => ctx.texts.get(
            "clients.upgrade_failed",
            &[
                ("id", id.as_str()),
                ("step", step.as_str()),
                ("reason", &reason),
                ("outcome", &outcome),
            ],
        ),
    };
    edit(bot, chat, message.id, text, None).await?;
    Ok(())
}

fn upgrade_text(ctx: &Ctx, id: &TenantId, image: &str, current: Option<UpgradeStep>) -> String {
    let order = |step: UpgradeStep| {
        UPGRADE_PROGRESS
            .iter()
            .position(|(_, steps)| steps.contains(&step))
    };
    let now = current.and_then(order);
    let lines: Vec<String> = UPGRADE_PROGRESS
        .iter()
        .enumerate()
        .map(|(index, (label, _))| {
            let key = match (now, current) {
                (_, Some(UpgradeStep::Done)) => "newclient.step_done",
                (Some(now), _) if now > index => "newclient.step_done",
                (Some(now), _) if now == index => "newclient.step_running",
                _ => "newclient.step_pending",
            };
            ctx.texts.get(key, &[("step", &ctx.texts.plain(label))])
        })
        .collect();
    ctx.texts.get_html(
        "clients.upgrade_progress",
        &[
            ("id", id.as_str()),
            ("image", &crate::bot::texts::escape(image)),
            ("steps", &lines.join("\n")),
        ],
    )
}

pub async fn logs(bot: &Tg, chat: ChatId, ctx: &Ctx, id: &TenantId, lines: usize) -> HandlerResult {
    let log = match fleet::logs(&ctx.app, id, Some(lines), None).await {
        Ok(log) => log,
        Err(err) => return failed(bot, chat, ctx, "/logs", &err).await,
    };
    if log.is_empty() {
        send(
            bot,
            chat,
            ctx.texts.get("clients.logs_empty", &[("id", id.as_str())]),
            None,
        )
        .await?;
        return Ok(());
    }
    let text: String = log.iter().map(|line| format!("{}\n", line.text)).collect();
    let html = format!("<pre>{}</pre>", escape(&text));
    if html.len() < crate::bot::MAX_MESSAGE - 64 {
        send(bot, chat, html, None).await?;
        return Ok(());
    }
    let caption = ctx.texts.get(
        "clients.logs_caption",
        &[("n", &log.len().to_string()), ("id", id.as_str())],
    );
    bot.send_document(
        chat,
        InputFile::memory(text.into_bytes()).file_name(format!("{id}-logs.txt")),
    )
    .caption(caption)
    .await?;
    Ok(())
}

pub async fn ask_remove(bot: &Tg, chat: ChatId, ctx: &Ctx, id: &TenantId) -> HandlerResult {
    if let Err(err) = fleet::show(&ctx.app, id).await {
        return failed(bot, chat, ctx, "/remove", &err).await;
    }
    let markup = InlineKeyboardMarkup::new([vec![
        InlineKeyboardButton::callback(
            ctx.texts.plain("clients.remove_keep"),
            format!("rm:k:{id}"),
        ),
        InlineKeyboardButton::callback(
            ctx.texts.plain("clients.remove_purge"),
            format!("rm:p:{id}"),
        ),
    ]]);
    send(
        bot,
        chat,
        ctx.texts.get("clients.remove_ask", &[("id", id.as_str())]),
        Some(markup),
    )
    .await?;
    Ok(())
}

/// The operator typed something after choosing purge: only the exact id purges.
pub async fn confirm_purge(
    bot: &Tg,
    chat: ChatId,
    ctx: &Ctx,
    actor: &Actor,
    tenant: &str,
    typed: &str,
) -> HandlerResult {
    let Ok(id) = tenant.parse::<TenantId>() else {
        return Ok(());
    };
    if typed.trim() != id.as_str() {
        send(
            bot,
            chat,
            ctx.texts
                .get("clients.purge_mismatch", &[("id", id.as_str())]),
            None,
        )
        .await?;
        return Ok(());
    }
    remove(bot, chat, ctx, actor, &id, true).await
}

async fn remove(
    bot: &Tg,
    chat: ChatId,
    ctx: &Ctx,
    actor: &Actor,
    id: &TenantId,
    purge: bool,
) -> HandlerResult {
    let working = send(
        bot,
        chat,
        ctx.texts.get(
            "clients.working",
            &[("action", "Removing"), ("id", id.as_str())],
        ),
        None,
    )
    .await?;
    let text = match fleet::remove(&ctx.app, actor, id, purge).await {
        Ok(_) if purge => ctx
            .texts
            .get("clients.removed_purged", &[("id", id.as_str())]),
        Ok(_) => ctx
            .texts
            .get("clients.removed_kept", &[("id", id.as_str())]),
        Err(err) => failure_text(ctx, "Removing", &err),
    };
    edit(bot, chat, working.id, text, None).await?;
    Ok(())
}

async fn failed(
    bot: &Tg,
    chat: ChatId,
    ctx: &Ctx,
    what: &str,
    err: &anyhow::Error,
) -> HandlerResult {
    send(bot, chat, failure_text(ctx, what, err), None).await?;
    Ok(())
}

/// An unknown tenant gets its own text with suggestions; anything else the error chain.
fn failure_text(ctx: &Ctx, what: &str, err: &anyhow::Error) -> String {
    if let Some(unknown) = err.downcast_ref::<UnknownTenant>() {
        let hint = if unknown.similar.is_empty() {
            "/clients lists them.".to_string()
        } else {
            format!(
                "Did you mean {}?",
                unknown
                    .similar
                    .iter()
                    .map(|id| format!("/client {id}"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            )
        };
        return ctx.texts.get(
            "common.unknown_tenant",
            &[("id", unknown.id.as_str()), ("hint", &hint)],
        );
    }
    ctx.texts.get(
        "common.error",
        &[("what", what), ("reason", &format!("{err:#}"))],
    )
}

fn emoji(view: &TenantView) -> &'static str {
    match (view.state, view.health) {
        (ViewState::Running, Health::Ok) => "🟢",
        (ViewState::Running, _) => "🟡",
        (ViewState::Stopped, _) => "⏹",
        (ViewState::Creating | ViewState::Removing, _) => "⏳",
        (ViewState::Failed | ViewState::Missing, _) => "🔴",
    }
}

fn uptime(view: &TenantView) -> String {
    let Some(started) = view
        .container
        .as_ref()
        .filter(|c| c.running)
        .and_then(|c| c.started_at.as_deref())
    else {
        return "down".to_string();
    };
    let Ok(started) = chrono::DateTime::parse_from_rfc3339(started) else {
        return "?".to_string();
    };
    let secs = (chrono::Utc::now() - started.with_timezone(&chrono::Utc))
        .num_seconds()
        .max(0);
    match secs {
        s if s < 120 => format!("up {s}s"),
        s if s < 7200 => format!("up {}m", s / 60),
        s if s < 172_800 => format!("up {}h", s / 3600),
        s => format!("up {}d", s / 86400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buttons_parse_strictly() {
        let acme: TenantId = "acme".parse().unwrap();
        assert_eq!(
            parse_button("t:r:acme"),
            Some(Button::Act(Action::Restart, acme.clone()))
        );
        assert_eq!(parse_button("rm:p:acme"), Some(Button::AskPurge(acme)));
        for bad in [
            "", "t:r:", "t:r:Acme", "t:z:acme", "t:r:../x", "rm:k:a_b", "nonsense",
        ] {
            assert_eq!(parse_button(bad), None, "{bad:?}");
        }
    }
}
