//! `/clients`, `/client <id>` and the tenant actions behind commands and inline
//! buttons: restart, stop, start, logs, remove (with confirmation), and the
//! alerts' mute.
//!
//! Every button that acts on a tenant carries the tenant's stamp (generation
//! and creation time) in its callback data, `kind:verb:stamp:id`: a button
//! pressed after the tenant was upgraded, or removed and created again, acts on
//! nothing and says why.

use std::sync::Arc;

use teloxide::prelude::*;
use teloxide::types::{InlineKeyboardButton, InlineKeyboardMarkup, InputFile};

use crate::bot::send::follow_progress;
use crate::bot::state::State;
use crate::bot::texts::{Texts, escape};
use crate::bot::{Ctx, Dlg, HandlerResult, Tg, edit, say, send};
use crate::fleet::moves::MoveStep;
use crate::fleet::{
    self, Actor, Health, Obstacle, Rollback, TenantView, UnknownTenant, UpgradeError, UpgradeStep,
    ViewState,
};
use crate::tenant::{Started, Stopped, TenantId, TenantRecord};

/// A tenant action an operator can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Restart,
    Stop,
    Start,
    Sleep,
    Wake,
}

/// A parsed button of this module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Button {
    Act(Action, TenantId),
    Logs(TenantId),
    /// The tenant's history (`tenant events`).
    History(TenantId),
    AskRemove(TenantId),
    RemoveKeep(TenantId),
    AskPurge(TenantId),
    /// The alerts' Mute 1h.
    Mute(TenantId),
}

impl Button {
    fn tenant(&self) -> &TenantId {
        match self {
            Button::Act(_, id)
            | Button::Logs(id)
            | Button::History(id)
            | Button::AskRemove(id)
            | Button::RemoveKeep(id)
            | Button::AskPurge(id)
            | Button::Mute(id) => id,
        }
    }
}

/// A button press: what it asks for, and of which tenant's incarnation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pressed {
    pub button: Button,
    pub stamp: Stamp,
}

/// Which incarnation of a tenant a button was made for: its generation (an
/// upgrade raises it) and its creation time (a tenant removed and created
/// again starts at generation 1 anew). Written `<generation>.<created_at>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    generation: u64,
    created_at: i64,
}

impl Stamp {
    #[must_use]
    pub fn of(record: &TenantRecord) -> Stamp {
        Stamp {
            generation: record.generation,
            created_at: record.created_at,
        }
    }

    fn parse(text: &str) -> Option<Stamp> {
        let (generation, created_at) = text.split_once('.')?;
        let digits =
            |s: &str| !s.is_empty() && s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(generation) || !digits(created_at) {
            return None;
        }
        Some(Stamp {
            generation: generation.parse().ok()?,
            created_at: created_at.parse().ok()?,
        })
    }
}

impl std::fmt::Display for Stamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.generation, self.created_at)
    }
}

/// Callback data that is not a button of this bot as it is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadButton {
    /// Not a button this bot makes (forged, damaged).
    Malformed,
    /// A button of an earlier version of the bot, made before buttons carried stamps.
    Outdated,
}

/// The callback data of a tenant button.
fn data(kind: &str, stamp: Stamp, id: &TenantId) -> String {
    format!("{kind}:{stamp}:{id}")
}

/// A tenant button: its label (a text key) and its callback data.
fn button(ctx: &Ctx, label: &str, kind: &str, stamp: Stamp, id: &TenantId) -> InlineKeyboardButton {
    InlineKeyboardButton::callback(ctx.texts.plain(label), data(kind, stamp, id))
}

/// Parses callback data strictly, so a forged button never reaches `fleet`.
///
/// # Errors
///
/// `Outdated` for a button of the stampless format, `Malformed` for anything else.
pub fn parse_button(data: &str) -> Result<Pressed, BadButton> {
    let parts: Vec<&str> = data.split(':').collect();
    let (kind, stamp, id) = match parts[..] {
        [a, b, stamp, id] => ((a, b), Some(stamp), id),
        [a, b, id] => ((a, b), None, id),
        _ => return Err(BadButton::Malformed),
    };
    let id: TenantId = id.parse().map_err(|_| BadButton::Malformed)?;
    let button = match kind {
        ("t", "r") => Button::Act(Action::Restart, id),
        ("t", "s") => Button::Act(Action::Stop, id),
        ("t", "g") => Button::Act(Action::Start, id),
        ("t", "z") => Button::Act(Action::Sleep, id),
        ("t", "w") => Button::Act(Action::Wake, id),
        ("t", "l") => Button::Logs(id),
        ("t", "h") => Button::History(id),
        ("t", "x") => Button::AskRemove(id),
        ("rm", "k") => Button::RemoveKeep(id),
        ("rm", "p") => Button::AskPurge(id),
        ("m", "1h") => Button::Mute(id),
        _ => return Err(BadButton::Malformed),
    };
    let Some(stamp) = stamp else {
        return Err(BadButton::Outdated);
    };
    let stamp = Stamp::parse(stamp).ok_or(BadButton::Malformed)?;
    Ok(Pressed { button, stamp })
}

/// The stamp of a tenant now, for the buttons of a message about it; `None`
/// when it is gone.
pub fn stamp_now(ctx: &Ctx, id: &TenantId) -> Option<Stamp> {
    fleet::record(&ctx.app, id)
        .ok()
        .map(|record| Stamp::of(&record))
}

/// An alert's buttons: Restart, Logs, Mute 1h, stamped like every tenant button.
#[must_use]
pub fn alert_buttons(ctx: &Ctx, tenant: &TenantId) -> InlineKeyboardMarkup {
    // A tenant gone since the alert: buttons that no tenant matches.
    let stamp = stamp_now(ctx, tenant).unwrap_or(Stamp {
        generation: 0,
        created_at: 0,
    });
    InlineKeyboardMarkup::new([vec![
        button(ctx, "clients.btn_restart", "t:r", stamp, tenant),
        button(ctx, "clients.btn_logs", "t:l", stamp, tenant),
        button(ctx, "monitor.btn_mute", "m:1h", stamp, tenant),
    ]])
}

/// A tenant button: acts only if the tenant is still the one the button was made for.
pub async fn on_button(
    bot: &Tg,
    chat: ChatId,
    dialogue: &Dlg,
    ctx: &Arc<Ctx>,
    user: u64,
    pressed: Pressed,
) -> HandlerResult {
    let actor = Actor::Telegram(user);
    let id = pressed.button.tenant().clone();
    let record = match fleet::record(&ctx.app, &id) {
        Ok(record) => record,
        Err(err) => return say(bot, chat, failure_text(ctx, "The button", &err)).await,
    };
    if Stamp::of(&record) != pressed.stamp {
        return replaced_button(bot, chat, ctx, &id).await;
    }
    match pressed.button {
        Button::Act(action, id) => act(bot, chat, ctx, &actor, action, &id).await?,
        Button::Logs(id) => logs(bot, chat, ctx, &id, 50).await?,
        Button::History(id) => history(bot, chat, ctx, &id).await?,
        Button::AskRemove(id) => ask_remove(bot, chat, ctx, &id).await?,
        Button::RemoveKeep(id) => remove(bot, chat, ctx, &actor, &id, false).await?,
        Button::Mute(id) => {
            crate::bot::alerts::mute(
                bot,
                chat,
                ctx,
                &actor,
                &id,
                std::time::Duration::from_secs(3600),
            )
            .await?;
        }
        Button::AskPurge(id) => {
            dialogue
                .update(State::ConfirmPurge {
                    tenant: id.to_string(),
                    touched_at: fleet::now(),
                    by: user,
                    stamp: pressed.stamp.to_string(),
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
        Err(err) => return say(bot, chat, failure_text(ctx, "/clients", &err)).await,
    };
    if views.is_empty() {
        return say(bot, chat, ctx.texts.plain("clients.list_empty")).await;
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
                ("uptime", &uptime(&ctx.texts, view)),
            ],
        ));
        if suspended.contains(view.id()) {
            text.push_str(&crate::bot::usage::suspended_mark(ctx));
        }
    }
    say(bot, chat, text).await
}

pub async fn details(bot: &Tg, chat: ChatId, ctx: &Ctx, id: &TenantId) -> HandlerResult {
    let view = match fleet::show(&ctx.app, id).await {
        Ok(view) => view,
        Err(err) => return say(bot, chat, failure_text(ctx, "/client", &err)).await,
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
            ("uptime", &uptime(&ctx.texts, &view)),
        ],
    );
    let text = format!(
        "{text}\n{}{}",
        crate::bot::backups::last_backup_line(ctx, id),
        recent_events(ctx, id)
    );
    let running = view.state == ViewState::Running;
    let stamp = Stamp::of(record);
    let toggle = if running {
        button(ctx, "clients.btn_stop", "t:s", stamp, id)
    } else {
        button(ctx, "clients.btn_start", "t:g", stamp, id)
    };
    let markup = InlineKeyboardMarkup::new([
        vec![button(ctx, "clients.btn_restart", "t:r", stamp, id), toggle],
        vec![
            button(ctx, "clients.btn_logs", "t:l", stamp, id),
            button(ctx, "clients.btn_history", "t:h", stamp, id),
        ],
        vec![button(ctx, "clients.btn_remove", "t:x", stamp, id)],
    ]);
    send(bot, chat, text, Some(markup)).await?;
    Ok(())
}

/// How many events `/client` shows; the History button shows more.
const RECENT_EVENTS: usize = 3;
const HISTORY_EVENTS: usize = 25;

/// The last few events of a tenant, as lines under `/client` (empty when none).
fn recent_events(ctx: &Ctx, id: &TenantId) -> String {
    let events = fleet::history::events(&ctx.app, id, None, RECENT_EVENTS).unwrap_or_default();
    if events.is_empty() {
        return String::new();
    }
    let lines: Vec<String> = events.iter().map(|event| event_line(ctx, event)).collect();
    format!(
        "\n{}\n{}",
        ctx.texts.plain("clients.recent"),
        lines.join("\n")
    )
}

fn event_line(ctx: &Ctx, event: &fleet::history::TenantEvent) -> String {
    let when = chrono::DateTime::from_timestamp(event.at, 0).map_or_else(
        || event.at.to_string(),
        |at| at.format("%d.%m %H:%M").to_string(),
    );
    let key = if event.outcome == fleet::Outcome::Ok {
        "clients.event_line"
    } else {
        "clients.event_line_failed"
    };
    ctx.texts
        .get(key, &[("when", &when), ("what", &event.action)])
}

/// The History button: the tenant's last events, newest first.
async fn history(bot: &Tg, chat: ChatId, ctx: &Ctx, id: &TenantId) -> HandlerResult {
    let events = match fleet::history::events(&ctx.app, id, None, HISTORY_EVENTS) {
        Ok(events) => events,
        Err(err) => return say(bot, chat, failure_text(ctx, "/client", &err)).await,
    };
    let text = if events.is_empty() {
        ctx.texts
            .get("clients.history_empty", &[("id", id.as_str())])
    } else {
        let lines: Vec<String> = events.iter().map(|event| event_line(ctx, event)).collect();
        ctx.texts.get_html(
            "clients.history",
            &[("id", &escape(id.as_str())), ("lines", &lines.join("\n"))],
        )
    };
    say(bot, chat, text).await
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
        Action::Sleep => "Sleeping",
        Action::Wake => "Waking",
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
        Action::Sleep => {
            fleet::sleep::sleep(&ctx.app, actor, id, fleet::sleep::SleepCause::Operator)
                .await
                .map(|slept| {
                    if slept.already {
                        "clients.already_asleep"
                    } else {
                        "clients.slept"
                    }
                })
                .map_err(|err| match err {
                    fleet::sleep::SleepError::Other(err) => err,
                    refused => anyhow::Error::new(refused),
                })
        }
        Action::Wake => fleet::sleep::wake(&ctx.app, actor, id, fleet::sleep::WakeCause::Operator)
            .await
            .map(|woken| {
                if woken.was_asleep {
                    "clients.woken"
                } else {
                    "clients.already_awake"
                }
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
pub(super) const UPGRADE_PROGRESS: [(&str, &[UpgradeStep]); 4] = [
    (
        "clients.upgrade_step_check",
        &[UpgradeStep::Validate, UpgradeStep::Maintenance],
    ),
    (
        "clients.upgrade_step_container",
        &[UpgradeStep::Replace, UpgradeStep::Start],
    ),
    ("clients.upgrade_step_health", &[UpgradeStep::Health]),
    (
        "clients.upgrade_step_gateway",
        &[UpgradeStep::Gateway, UpgradeStep::Channel],
    ),
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
    let target = image.map_or_else(|| ctx.app.config().cell.image.clone(), str::to_string);
    let message = send(bot, chat, upgrade_text(ctx, id, &target, None), None).await?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<UpgradeStep>();
    let work = async move {
        let mut progress = move |step: UpgradeStep| {
            let _ = tx.send(step);
        };
        fleet::upgrade(&ctx.app, actor, id, image, &mut progress).await
    };
    let editor = follow_progress(bot, chat, message.id, rx, |step| {
        upgrade_text(ctx, id, &target, Some(step))
    });
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
        Err(UpgradeError::UnknownTenant(unknown)) => unknown_tenant_text(ctx, &unknown, "/upgrade"),
        Err(UpgradeError::Refused(reason)) => ctx.texts.get(
            "clients.upgrade_refused",
            &[("id", id.as_str()), ("reason", &reason)],
        ),
        Err(UpgradeError::Failed {
            step,
            reason,
            outcome,
            ..
        }) => {
            let outcome = match &outcome {
                Rollback::Done { from } => ctx
                    .texts
                    .get("clients.upgrade_rolled_back", &[("from", from)]),
                Rollback::Failed { from, step, reason } => ctx.texts.get(
                    "clients.upgrade_rollback_failed",
                    &[
                        ("id", id.as_str()),
                        ("from", from),
                        ("step", step.as_str()),
                        ("reason", reason),
                    ],
                ),
            };
            ctx.texts.get_html(
                "clients.upgrade_failed",
                &[
                    ("id", &escape(id.as_str())),
                    ("step", step.as_str()),
                    ("reason", &escape(&reason)),
                    ("outcome", &outcome),
                ],
            )
        }
    };
    edit(bot, chat, message.id, text, None).await?;
    Ok(())
}

/// The lines of `/move`'s message, each with the steps it covers.
const MOVE_PROGRESS: [(&str, &[MoveStep]); 4] = [
    (
        "clients.move_step_stop",
        &[MoveStep::Validate, MoveStep::Stop],
    ),
    ("clients.move_step_copy", &[MoveStep::Copy, MoveStep::Write]),
    ("clients.move_step_cell", &[MoveStep::Cell, MoveStep::Start]),
    (
        "clients.move_step_health",
        &[MoveStep::Health, MoveStep::Gateway, MoveStep::Clean],
    ),
];

/// `/move <id> <node>`: the tenant's cell to another node, one message
/// edited step by step.
pub async fn move_tenant(
    bot: &Tg,
    chat: ChatId,
    ctx: &Ctx,
    actor: &Actor,
    id: &TenantId,
    node: &str,
) -> HandlerResult {
    if let Err(refused) = fleet::moves::check(&ctx.app, id, node).await {
        let text = ctx.texts.get(
            "clients.move_refused",
            &[("id", id.as_str()), ("reason", &refused.0)],
        );
        return say(bot, chat, text).await;
    }
    let message = send(bot, chat, move_text(ctx, id, node, None), None).await?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<MoveStep>();
    let work = async move {
        let mut progress = move |step: MoveStep| {
            let _ = tx.send(step);
        };
        fleet::moves::move_tenant(&ctx.app, actor, id, node, &mut progress).await
    };
    let editor = follow_progress(bot, chat, message.id, rx, |step| {
        move_text(ctx, id, node, Some(step))
    });
    let (result, ()) = tokio::join!(work, editor);
    let text = match result {
        Ok(moved) => {
            let mut text = ctx.texts.get(
                "clients.moved",
                &[
                    ("id", id.as_str()),
                    ("from", &moved.from),
                    ("to", &moved.to),
                    ("kib", &moved.bytes.div_ceil(1024).to_string()),
                    ("down", &format!("{:.1}", moved.down.as_secs_f64())),
                ],
            );
            if let Some(left) = &moved.leftover {
                text.push('\n');
                text.push_str(&ctx.texts.get("clients.moved_left", &[("reason", left)]));
            }
            text
        }
        Err(err)
            if err.downcast_ref::<fleet::moves::MoveRefused>().is_some()
                || crate::fleet::lock::busy(&err).is_some() =>
        {
            ctx.texts.get(
                "clients.move_refused",
                &[("id", id.as_str()), ("reason", &format!("{err:#}"))],
            )
        }
        Err(err) => ctx.texts.get(
            "clients.move_failed",
            &[("id", id.as_str()), ("reason", &format!("{err:#}"))],
        ),
    };
    say(bot, chat, text).await
}

fn move_text(ctx: &Ctx, id: &TenantId, node: &str, current: Option<MoveStep>) -> String {
    ctx.texts.get_html(
        "clients.move_progress",
        &[
            ("id", id.as_str()),
            ("node", &escape(node)),
            (
                "steps",
                &step_lines(ctx, &MOVE_PROGRESS, current, MoveStep::Done),
            ),
        ],
    )
}

/// The lines of a progress message: each of `table`'s labels done, running
/// or pending as `current` stands (all done at `done`).
fn step_lines<S: Copy + PartialEq>(
    ctx: &Ctx,
    table: &[(&str, &[S])],
    current: Option<S>,
    done: S,
) -> String {
    let now = current.and_then(|step| table.iter().position(|(_, steps)| steps.contains(&step)));
    let lines: Vec<String> = table
        .iter()
        .enumerate()
        .map(|(index, (label, _))| {
            let key = match now {
                _ if current == Some(done) => "newclient.step_done",
                Some(now) if now > index => "newclient.step_done",
                Some(now) if now == index => "newclient.step_running",
                _ => "newclient.step_pending",
            };
            ctx.texts.get(key, &[("step", &ctx.texts.plain(label))])
        })
        .collect();
    lines.join("\n")
}

fn upgrade_text(ctx: &Ctx, id: &TenantId, image: &str, current: Option<UpgradeStep>) -> String {
    ctx.texts.get_html(
        "clients.upgrade_progress",
        &[
            ("id", id.as_str()),
            ("image", &crate::bot::texts::escape(image)),
            (
                "steps",
                &step_lines(ctx, &UPGRADE_PROGRESS, current, UpgradeStep::Done),
            ),
        ],
    )
}

pub async fn logs(bot: &Tg, chat: ChatId, ctx: &Ctx, id: &TenantId, lines: usize) -> HandlerResult {
    let log = match fleet::logs(&ctx.app, id, Some(lines), None).await {
        Ok(log) => log,
        Err(err) => return say(bot, chat, failure_text(ctx, "/logs", &err)).await,
    };
    if log.is_empty() {
        return say(
            bot,
            chat,
            ctx.texts.get("clients.logs_empty", &[("id", id.as_str())]),
        )
        .await;
    }
    let text: String = log.iter().map(|line| format!("{}\n", line.text)).collect();
    let html = format!("<pre>{}</pre>", escape(&text));
    if html.len() < crate::bot::MAX_MESSAGE - 64 {
        return say(bot, chat, html).await;
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
    let stamp = match fleet::record(&ctx.app, id) {
        Ok(record) => Stamp::of(&record),
        Err(err) => return say(bot, chat, failure_text(ctx, "/remove", &err)).await,
    };
    let markup = InlineKeyboardMarkup::new([vec![
        button(ctx, "clients.remove_keep", "rm:k", stamp, id),
        button(ctx, "clients.remove_purge", "rm:p", stamp, id),
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

/// The operator who chose purge typed something: only the exact id purges,
/// and only the tenant the purge was chosen for.
pub async fn confirm_purge(
    bot: &Tg,
    chat: ChatId,
    ctx: &Ctx,
    actor: &Actor,
    tenant: &str,
    stamp: &str,
    typed: &str,
) -> HandlerResult {
    let Ok(id) = tenant.parse::<TenantId>() else {
        return Ok(());
    };
    if typed.trim() != id.as_str() {
        return say(
            bot,
            chat,
            ctx.texts
                .get("clients.purge_mismatch", &[("id", id.as_str())]),
        )
        .await;
    }
    if stamp_now(ctx, &id).map(|now| now.to_string()).as_deref() != Some(stamp) {
        return replaced_button(bot, chat, ctx, &id).await;
    }
    remove(bot, chat, ctx, actor, &id, true).await
}

/// A button of a tenant that was replaced (upgraded, or removed and made
/// again) since the button was drawn: refused, nothing done.
async fn replaced_button(bot: &Tg, chat: ChatId, ctx: &Ctx, id: &TenantId) -> HandlerResult {
    say(
        bot,
        chat,
        ctx.texts
            .get("clients.replaced_button", &[("id", id.as_str())]),
    )
    .await
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
    let removed_text = |purge: bool| {
        let key = if purge {
            "clients.removed_purged"
        } else {
            "clients.removed_kept"
        };
        ctx.texts.get(key, &[("id", id.as_str())])
    };
    // With data, offboarding: a final backup and the client's export first.
    let text = if fleet::backup::has_data(&ctx.app, id) {
        match fleet::backup::offboard(&ctx.app, actor, id, None, purge).await {
            Ok(done) => format!(
                "{}\n{}",
                removed_text(purge),
                ctx.texts.get(
                    "backups.offboarded",
                    &[
                        ("backup", &done.backup.backup.id),
                        ("export", &done.export.display().to_string()),
                    ],
                )
            ),
            Err(err) => failure_text(ctx, "Removing", &err),
        }
    } else {
        match fleet::remove(&ctx.app, actor, id, purge).await {
            Ok(_) => removed_text(purge),
            Err(err) => failure_text(ctx, "Removing", &err),
        }
    };
    edit(bot, chat, working.id, text, None).await?;
    Ok(())
}

fn failure_text(ctx: &Ctx, what: &str, err: &anyhow::Error) -> String {
    error_text(ctx, what, err, "/client")
}

/// An unknown tenant gets its own text, offering the close ids as `command <id>`;
/// anything else the error chain, and what to do about a known obstacle.
pub(crate) fn error_text(ctx: &Ctx, what: &str, err: &anyhow::Error, command: &str) -> String {
    if let Some(unknown) = err.downcast_ref::<UnknownTenant>() {
        return unknown_tenant_text(ctx, unknown, command);
    }
    let text = chain_text(ctx, what, err);
    match fleet::obstacle(err) {
        Some(obstacle) => format!("{text}\n{}", obstacle_hint(ctx, &obstacle)),
        None => text,
    }
}

/// What failed and the error chain, nothing more.
pub(crate) fn chain_text(ctx: &Ctx, what: &str, err: &anyhow::Error) -> String {
    ctx.texts.get(
        "common.error",
        &[("what", what), ("reason", &format!("{err:#}"))],
    )
}

/// No such tenant: did the operator mean a close id (`command <id>`), or
/// should they look at the list?
pub(crate) fn unknown_tenant_text(ctx: &Ctx, unknown: &UnknownTenant, command: &str) -> String {
    if unknown.similar.is_empty() {
        return ctx
            .texts
            .get("common.unknown_tenant", &[("id", unknown.id.as_str())]);
    }
    let similar: Vec<String> = unknown
        .similar
        .iter()
        .map(|id| format!("{command} {id}"))
        .collect();
    ctx.texts.get(
        "common.unknown_tenant_similar",
        &[
            ("id", unknown.id.as_str()),
            (
                "similar",
                &similar.join(&ctx.texts.plain("common.similar_separator")),
            ),
        ],
    )
}

/// What the operator can do about an obstacle fleet found, in the bot's words.
pub(crate) fn obstacle_hint(ctx: &Ctx, obstacle: &Obstacle) -> String {
    match obstacle {
        Obstacle::DockerUnreachable => ctx.texts.plain("common.hint_docker"),
        Obstacle::ImageMissing { image } => ctx.texts.get("common.hint_image", &[("image", image)]),
        Obstacle::Asleep { tenant } => ctx
            .texts
            .get("common.hint_asleep", &[("id", tenant.as_str())]),
        Obstacle::NotPaired { tenant } => ctx
            .texts
            .get("common.hint_not_paired", &[("id", tenant.as_str())]),
        Obstacle::CellUser { uid } => ctx
            .texts
            .get("common.hint_cell_user", &[("uid", &uid.to_string())]),
    }
}

/// `/capacity`: the host's memory, a cell's measured footprint, how many more fit.
pub async fn capacity(bot: &Tg, chat: ChatId, ctx: &Ctx) -> HandlerResult {
    let capacity = match fleet::capacity::capacity(&ctx.app).await {
        Ok(capacity) => capacity,
        Err(err) => return say(bot, chat, failure_text(ctx, "Measuring", &err)).await,
    };
    let gib = |bytes: u64| format!("{:.1}", bytes as f64 / f64::from(1u32 << 30));
    let mut text = ctx.texts.get(
        "clients.capacity_host",
        &[
            ("host", &gib(capacity.host_memory)),
            ("reserve", &gib(capacity.reserve)),
            ("in_use", &gib(capacity.in_use)),
            ("free", &gib(capacity.free)),
            ("running", &capacity.running.to_string()),
            ("sleeping", &capacity.sleeping.to_string()),
            ("stopped", &capacity.stopped.to_string()),
        ],
    );
    text.push('\n');
    match (
        capacity.footprint,
        capacity.more_running,
        capacity.more_at_mix,
    ) {
        (Some(cell), Some(running), Some(mix)) => {
            text.push_str(&ctx.texts.get(
                "clients.capacity_cells",
                &[
                    ("idle", &gib(cell.idle)),
                    ("active", &gib(cell.active)),
                    ("samples", &cell.samples.to_string()),
                    ("cells", &cell.cells.to_string()),
                    ("more_running", &running.to_string()),
                    ("more_mix", &mix.to_string()),
                ],
            ));
            if let Some(short) = capacity.all_awake_short.filter(|short| *short > 0) {
                text.push('\n');
                text.push_str(
                    &ctx.texts
                        .get("clients.capacity_all_awake", &[("short", &gib(short))]),
                );
            }
        }
        _ => text.push_str(&ctx.texts.plain("clients.capacity_unmeasured")),
    }
    say(bot, chat, text).await
}

fn emoji(view: &TenantView) -> &'static str {
    match (view.state, view.health) {
        (ViewState::Running, Health::Ok) => "🟢",
        (ViewState::Running, _) => "🟡",
        (ViewState::Stopped, _) => "⏹",
        (ViewState::Sleeping, _) => "💤",
        (ViewState::Creating | ViewState::Removing, _) => "⏳",
        (ViewState::Failed | ViewState::Missing, _) => "🔴",
    }
}

/// A span of seconds in the largest unit that fits: `12m`, `5h`, `3d`.
pub(crate) fn age_text(texts: &Texts, seconds: i64) -> String {
    let (key, n) = match seconds.max(0) {
        s if s < 7200 => ("backups.age_minutes", s / 60),
        s if s < 172_800 => ("backups.age_hours", s / 3600),
        s => ("backups.age_days", s / 86_400),
    };
    texts.get(key, &[("n", &n.to_string())])
}

fn uptime(texts: &Texts, view: &TenantView) -> String {
    let Some(started) = view
        .container
        .as_ref()
        .filter(|c| c.running)
        .and_then(|c| c.started_at.as_deref())
    else {
        return texts.plain("clients.uptime_down");
    };
    let Ok(started) = chrono::DateTime::parse_from_rfc3339(started) else {
        return texts.plain("clients.uptime_unknown");
    };
    let secs = (chrono::Utc::now() - started.with_timezone(&chrono::Utc))
        .num_seconds()
        .max(0);
    let (key, n) = match secs {
        s if s < 120 => ("clients.uptime_seconds", s),
        s if s < 7200 => ("clients.uptime_minutes", s / 60),
        s if s < 172_800 => ("clients.uptime_hours", s / 3600),
        s => ("clients.uptime_days", s / 86400),
    };
    texts.get(key, &[("n", &n.to_string())])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buttons_parse_strictly() {
        let acme: TenantId = "acme".parse().unwrap();
        let stamp = Stamp {
            generation: 2,
            created_at: 1_764_750_000,
        };
        assert_eq!(
            parse_button("t:r:2.1764750000:acme"),
            Ok(Pressed {
                button: Button::Act(Action::Restart, acme.clone()),
                stamp
            })
        );
        assert_eq!(
            parse_button(&data("m:1h", stamp, &acme)),
            Ok(Pressed {
                button: Button::Mute(acme.clone()),
                stamp
            })
        );
        for old in ["t:r:acme", "rm:p:acme", "m:1h:acme"] {
            assert_eq!(parse_button(old), Err(BadButton::Outdated), "{old:?}");
        }
        for bad in [
            "",
            "t:r:",
            "t:r:Acme",
            "t:q:acme",
            "t:r:../x",
            "rm:k:a_b",
            "nonsense",
            "t:r:2:acme",
            "t:r:x.1:acme",
            "t:r:2.-1:acme",
            "t:r:.:acme",
            "t:r:2.1:acme:more",
            "t:q:2.1:acme",
            "t:r:2.1:Acme",
        ] {
            assert_eq!(parse_button(bad), Err(BadButton::Malformed), "{bad:?}");
        }
    }

    /// The longest button data (a 40-character id, a large generation) fits
    /// Telegram's 64 bytes.
    #[test]
    fn button_data_fits_telegrams_limit() {
        let id: TenantId = "a".repeat(40).parse().unwrap();
        let stamp = Stamp {
            generation: 99_999,
            created_at: 9_999_999_999,
        };
        for kind in ["t:r", "t:s", "t:g", "t:l", "t:x", "rm:k", "rm:p", "m:1h"] {
            let data = data(kind, stamp, &id);
            assert!(data.len() <= 64, "{data} is {} bytes", data.len());
        }
    }
}
