//! The `/newclient` dialogue: id → name → BotFather token → model → provider
//! key → skills → who may talk to the bot → confirm → one message edited step
//! by step while the cell is provisioned. Back and /cancel work at every step;
//! messages holding secrets are deleted at once, valid or not.

use std::sync::Arc;

use teloxide::prelude::*;
use teloxide::types::{InlineKeyboardButton, InlineKeyboardMarkup, MessageId};

use crate::bot::send::follow_progress;
use crate::bot::state::{Draft, KeyChoice, Sealed, State, Step};
use crate::bot::{Ctx, Dlg, HandlerResult, Tg, edit, say, send};
use crate::fleet::{self, Actor, CreateError, CreateStep, catalog};
use crate::tenant::{BotToken, DmPolicy, Secret, TenantId, TenantSpec};

/// Longest display name accepted.
const MAX_NAME: usize = 64;

/// The progress lines shown while provisioning, and the create steps each covers.
const PROGRESS: [(&str, &[CreateStep]); 5] = [
    (
        "newclient.step_config",
        &[
            CreateStep::Validate,
            CreateStep::Record,
            CreateStep::Dirs,
            CreateStep::Config,
        ],
    ),
    (
        "newclient.step_container",
        &[CreateStep::Network, CreateStep::Container],
    ),
    ("newclient.step_start", &[CreateStep::Start]),
    ("newclient.step_health", &[CreateStep::Health]),
    ("newclient.step_pair", &[CreateStep::Pair]),
];

pub async fn begin(bot: &Tg, chat: ChatId, dialogue: &Dlg, ctx: &Ctx) -> HandlerResult {
    let draft = Draft::new(fleet::now());
    dialogue.update(State::NewClient(draft.clone())).await?;
    prompt(bot, chat, ctx, &draft).await
}

/// A text (or anything else) sent during the dialogue.
pub async fn on_message(
    bot: &Tg,
    msg: &Message,
    dialogue: &Dlg,
    ctx: &Ctx,
    mut draft: Draft,
) -> HandlerResult {
    let chat = msg.chat.id;
    let text = msg.text().unwrap_or_default().trim().to_string();
    draft.touched_at = fleet::now();
    match draft.step {
        Step::Id => match text.parse::<TenantId>() {
            Ok(id) => return take_id(bot, chat, dialogue, ctx, draft, id).await,
            Err(err) => {
                let markup =
                    TenantId::suggest(&text)
                        .filter(|s| s.as_str() != text)
                        .map(|suggested| {
                            InlineKeyboardMarkup::new([[InlineKeyboardButton::callback(
                                ctx.texts
                                    .get("newclient.id_suggest", &[("id", suggested.as_str())]),
                                format!("nc:id:{suggested}"),
                            )]])
                        });
                send(
                    bot,
                    chat,
                    ctx.texts.get(
                        "common.bad_id",
                        &[("input", &text), ("reason", &err.to_string())],
                    ),
                    markup,
                )
                .await?;
            }
        },
        Step::Name => {
            if text.is_empty() || text.chars().count() > MAX_NAME {
                send(bot, chat, ctx.texts.plain("newclient.name_too_long"), None).await?;
            } else {
                draft.name = Some(text);
                return advance(bot, chat, dialogue, ctx, draft, Step::Token).await;
            }
        }
        Step::Token => {
            // Delete first, whatever it is: a token must not stay in the chat.
            let _ = bot.delete_message(chat, msg.id).await;
            let token = match BotToken::parse(&text) {
                Ok(token) => token,
                Err(err) => {
                    return say(
                        bot,
                        chat,
                        ctx.texts.get(
                            "newclient.token_bad_format",
                            &[("reason", &err.to_string())],
                        ),
                    )
                    .await;
                }
            };
            send(bot, chat, ctx.texts.plain("newclient.token_deleted"), None).await?;
            match fleet::prove_bot_token(&ctx.app, &token).await {
                Ok(proven) => {
                    send(
                        bot,
                        chat,
                        ctx.texts
                            .get("newclient.token_ok", &[("username", &proven.username)]),
                        None,
                    )
                    .await?;
                    draft.token = Some(Sealed(token.secret().clone()));
                    draft.bot_id = Some(proven.id);
                    draft.username = Some(proven.username);
                    return advance(bot, chat, dialogue, ctx, draft, Step::Model).await;
                }
                Err(err) => {
                    send(
                        bot,
                        chat,
                        ctx.texts
                            .get("newclient.token_refused", &[("reason", &err.to_string())]),
                        None,
                    )
                    .await?;
                }
            }
        }
        Step::Key => {
            let _ = bot.delete_message(chat, msg.id).await;
            if text.is_empty() || text.contains(char::is_whitespace) {
                send(bot, chat, ctx.texts.plain("newclient.key_bad"), None).await?;
            } else {
                send(bot, chat, ctx.texts.plain("newclient.key_deleted"), None).await?;
                draft.key = KeyChoice::Own(Sealed(Secret::new(text)));
                return advance(bot, chat, dialogue, ctx, draft, Step::Skills).await;
            }
        }
        Step::AllowlistIds => {
            let ids: Result<Vec<i64>, _> = text
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|s| !s.is_empty())
                .map(str::parse::<i64>)
                .collect();
            match ids {
                Ok(ids) if !ids.is_empty() && ids.iter().all(|id| *id > 0) => {
                    draft.allowlist = Some(ids);
                    return advance(bot, chat, dialogue, ctx, draft, Step::Confirm).await;
                }
                _ => {
                    send(
                        bot,
                        chat,
                        ctx.texts
                            .get("newclient.allowlist_bad", &[("input", &text)]),
                        None,
                    )
                    .await?;
                }
            }
        }
        Step::Provisioning => {
            return say(bot, chat, ctx.texts.plain("common.busy")).await;
        }
        // Steps answered with buttons: show the question again.
        Step::Model | Step::Skills | Step::Access | Step::Confirm => {
            prompt(bot, chat, ctx, &draft).await?;
        }
    }
    dialogue.update(State::NewClient(draft)).await?;
    Ok(())
}

/// A `nc:…` button.
#[allow(clippy::too_many_arguments)]
pub async fn on_button(
    bot: &Tg,
    chat: ChatId,
    message: MessageId,
    dialogue: &Dlg,
    ctx: &Arc<Ctx>,
    mut draft: Draft,
    data: &str,
    actor: &Actor,
) -> HandlerResult {
    draft.touched_at = fleet::now();
    if draft.step == Step::Provisioning {
        return say(bot, chat, ctx.texts.plain("common.busy")).await;
    }
    let (action, arg) = data.split_once(':').unwrap_or((data, ""));
    match (draft.step, action) {
        (_, "cancel") => {
            dialogue.exit().await?;
            send(bot, chat, ctx.texts.plain("common.cancelled"), None).await?;
            // Not on to the update below: it would store the draft again.
            return Ok(());
        }
        (_, "back") => {
            let previous = draft.step.previous();
            return advance(bot, chat, dialogue, ctx, draft, previous).await;
        }
        (Step::Id, "id") => match arg.parse::<TenantId>() {
            Ok(id) => return take_id(bot, chat, dialogue, ctx, draft, id).await,
            Err(_) => {
                send(bot, chat, ctx.texts.plain("common.stale_button"), None).await?;
            }
        },
        (Step::Name, "skip") => {
            draft.name = None;
            return advance(bot, chat, dialogue, ctx, draft, Step::Token).await;
        }
        (Step::Model, "model") => match picked(catalog::models(), arg) {
            Some(model) => {
                draft.model = Some(model.id.clone());
                return advance(bot, chat, dialogue, ctx, draft, Step::Key).await;
            }
            None => {
                send(bot, chat, ctx.texts.plain("common.stale_button"), None).await?;
            }
        },
        (Step::Key, "key")
            if arg == "shared" && ctx.app.config().telegram.shared_provider_key.is_some() =>
        {
            draft.key = KeyChoice::Shared;
            return advance(bot, chat, dialogue, ctx, draft, Step::Skills).await;
        }
        (Step::Key, "key") if arg == "skip" => {
            draft.key = KeyChoice::None;
            return advance(bot, chat, dialogue, ctx, draft, Step::Skills).await;
        }
        (Step::Skills, "skill") => match picked(catalog::skills(), arg) {
            Some(skill) => {
                if let Some(at) = draft.skills.iter().position(|s| *s == skill.id) {
                    draft.skills.remove(at);
                } else {
                    draft.skills.push(skill.id.clone());
                }
                // Toggle in place: the same message, new check marks.
                let _ = bot
                    .edit_message_reply_markup(chat, message)
                    .reply_markup(skills_keyboard(ctx, &draft))
                    .await;
            }
            None => {
                send(bot, chat, ctx.texts.plain("common.stale_button"), None).await?;
            }
        },
        (Step::Skills, "skills") if arg == "done" => {
            return advance(bot, chat, dialogue, ctx, draft, Step::Access).await;
        }
        (Step::Access, "access") if arg == "pairing" => {
            draft.allowlist = None;
            return advance(bot, chat, dialogue, ctx, draft, Step::Confirm).await;
        }
        (Step::Access, "access") if arg == "allowlist" => {
            return advance(bot, chat, dialogue, ctx, draft, Step::AllowlistIds).await;
        }
        (Step::Confirm, "confirm") => {
            return provision(bot, chat, dialogue, ctx, draft, actor).await;
        }
        _ => {
            send(bot, chat, ctx.texts.plain("common.stale_button"), None).await?;
        }
    }
    dialogue.update(State::NewClient(draft)).await?;
    Ok(())
}

/// The catalog entry a button names by its index; `None` for a button made
/// from another catalog.
fn picked<T>(catalog: &'static [T], arg: &str) -> Option<&'static T> {
    arg.parse::<usize>()
        .ok()
        .and_then(|index| catalog.get(index))
}

async fn take_id(
    bot: &Tg,
    chat: ChatId,
    dialogue: &Dlg,
    ctx: &Ctx,
    mut draft: Draft,
    id: TenantId,
) -> HandlerResult {
    let key = match fleet::id_availability(&ctx.app, &id) {
        Ok(fleet::IdAvailability::Free) => None,
        Ok(fleet::IdAvailability::LeftoverData) => Some("newclient.id_leftover"),
        Ok(fleet::IdAvailability::Taken) => Some("newclient.id_taken"),
        Err(err) => {
            // Not the id's fault: say what failed; the dialogue stays at this step.
            let reason = format!("{err:#}");
            send(
                bot,
                chat,
                ctx.texts.get(
                    "common.error",
                    &[
                        ("what", &ctx.texts.plain("newclient.checking_id")),
                        ("reason", &reason),
                    ],
                ),
                None,
            )
            .await?;
            dialogue.update(State::NewClient(draft)).await?;
            return Ok(());
        }
    };
    if let Some(key) = key {
        send(bot, chat, ctx.texts.get(key, &[("id", id.as_str())]), None).await?;
        dialogue.update(State::NewClient(draft)).await?;
        return Ok(());
    }
    draft.id = Some(id.to_string());
    advance(bot, chat, dialogue, ctx, draft, Step::Name).await
}

async fn advance(
    bot: &Tg,
    chat: ChatId,
    dialogue: &Dlg,
    ctx: &Ctx,
    mut draft: Draft,
    step: Step,
) -> HandlerResult {
    draft.step = step;
    dialogue.update(State::NewClient(draft.clone())).await?;
    prompt(bot, chat, ctx, &draft).await
}

/// Sends the question of the draft's current step.
async fn prompt(bot: &Tg, chat: ChatId, ctx: &Ctx, draft: &Draft) -> HandlerResult {
    let texts = &ctx.texts;
    let nav = || {
        vec![
            button(texts.plain("newclient.back"), "nc:back"),
            button(texts.plain("newclient.cancel"), "nc:cancel"),
        ]
    };
    let id = draft.id.clone().unwrap_or_default();
    let (text, rows): (String, Vec<Vec<InlineKeyboardButton>>) = match draft.step {
        Step::Id => (
            texts.plain("newclient.ask_id"),
            vec![vec![button(texts.plain("newclient.cancel"), "nc:cancel")]],
        ),
        Step::Name => (
            texts.get("newclient.ask_name", &[("id", &id)]),
            vec![
                vec![button(texts.plain("newclient.skip"), "nc:skip")],
                nav(),
            ],
        ),
        Step::Token => (texts.plain("newclient.ask_token"), vec![nav()]),
        Step::Model => {
            let mut rows: Vec<Vec<InlineKeyboardButton>> = catalog::models()
                .iter()
                .enumerate()
                .map(|(i, model)| vec![button(model.label.clone(), &format!("nc:model:{i}"))])
                .collect();
            rows.push(nav());
            (texts.plain("newclient.ask_model"), rows)
        }
        Step::Key => {
            let provider = draft
                .model
                .as_deref()
                .and_then(|m| m.split_once('/'))
                .map_or("provider", |(p, _)| p)
                .to_string();
            let mut first = Vec::new();
            let key = if ctx.app.config().telegram.shared_provider_key.is_some() {
                first.push(button(
                    texts.plain("newclient.use_shared_key"),
                    "nc:key:shared",
                ));
                "newclient.ask_key"
            } else {
                first.push(button(texts.plain("newclient.skip"), "nc:key:skip"));
                "newclient.ask_key_no_shared"
            };
            (
                texts.get(key, &[("provider", &provider)]),
                vec![first, nav()],
            )
        }
        Step::Skills => {
            send(
                bot,
                chat,
                texts.plain("newclient.ask_skills"),
                Some(skills_keyboard(ctx, draft)),
            )
            .await?;
            return Ok(());
        }
        Step::Access => (
            texts.plain("newclient.ask_access"),
            vec![
                vec![
                    button(texts.plain("newclient.access_pairing"), "nc:access:pairing"),
                    button(
                        texts.plain("newclient.access_allowlist"),
                        "nc:access:allowlist",
                    ),
                ],
                nav(),
            ],
        ),
        Step::AllowlistIds => (texts.plain("newclient.ask_allowlist"), vec![nav()]),
        Step::Confirm => (
            summary(ctx, draft),
            vec![
                vec![
                    button(texts.plain("newclient.confirm"), "nc:confirm"),
                    button(texts.plain("newclient.cancel"), "nc:cancel"),
                ],
                vec![button(texts.plain("newclient.back"), "nc:back")],
            ],
        ),
        Step::Provisioning => (texts.plain("common.busy"), Vec::new()),
    };
    let markup = if rows.is_empty() {
        None
    } else {
        Some(InlineKeyboardMarkup::new(rows))
    };
    send(bot, chat, text, markup).await?;
    Ok(())
}

fn skills_keyboard(ctx: &Ctx, draft: &Draft) -> InlineKeyboardMarkup {
    let mut rows: Vec<Vec<InlineKeyboardButton>> = catalog::skills()
        .chunks(2)
        .enumerate()
        .map(|(row, pair)| {
            pair.iter()
                .enumerate()
                .map(|(col, skill)| {
                    let mark = if draft.skills.contains(&skill.id) {
                        "✅"
                    } else {
                        "▫️"
                    };
                    button(
                        format!("{mark} {} {}", skill.emoji, skill.label),
                        &format!("nc:skill:{}", row * 2 + col),
                    )
                })
                .collect()
        })
        .collect();
    rows.push(vec![button(
        ctx.texts.plain("newclient.done"),
        "nc:skills:done",
    )]);
    rows.push(vec![
        button(ctx.texts.plain("newclient.back"), "nc:back"),
        button(ctx.texts.plain("newclient.cancel"), "nc:cancel"),
    ]);
    InlineKeyboardMarkup::new(rows)
}

fn summary(ctx: &Ctx, draft: &Draft) -> String {
    let texts = &ctx.texts;
    let id = draft.id.clone().unwrap_or_default();
    let model_label = draft
        .model
        .as_deref()
        .map(|m| {
            catalog::models()
                .iter()
                .find(|c| c.id == m)
                .map_or(m.to_string(), |c| format!("{} ({m})", c.label))
        })
        .unwrap_or_default();
    let key = match &draft.key {
        KeyChoice::None => texts.plain("newclient.key_none"),
        KeyChoice::Shared => texts.plain("newclient.key_shared"),
        KeyChoice::Own(_) => texts.plain("newclient.key_own"),
    };
    let skills = if draft.skills.is_empty() {
        texts.plain("newclient.skills_none")
    } else {
        draft.skills.join(", ")
    };
    let access = match &draft.allowlist {
        None => texts.plain("newclient.access_pairing_summary"),
        Some(ids) => texts.get(
            "newclient.access_allowlist_summary",
            &[(
                "ids",
                &ids.iter()
                    .map(i64::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
            )],
        ),
    };
    let masked = format!("{}:••••", draft.bot_id.unwrap_or(0));
    // `key`, `skills` and `access` are rendered texts already: fill them raw.
    texts.get_html(
        "newclient.summary",
        &[
            ("id", &crate::bot::texts::escape(&id)),
            (
                "name",
                &crate::bot::texts::escape(draft.name.as_deref().unwrap_or(&id)),
            ),
            (
                "username",
                &crate::bot::texts::escape(draft.username.as_deref().unwrap_or_default()),
            ),
            ("token", &masked),
            ("model", &crate::bot::texts::escape(&model_label)),
            ("key", &key),
            ("skills", &crate::bot::texts::escape(&skills)),
            ("access", &access),
        ],
    )
}

/// Confirmed: create the cell, editing one message as the steps complete.
async fn provision(
    bot: &Tg,
    chat: ChatId,
    dialogue: &Dlg,
    ctx: &Arc<Ctx>,
    mut draft: Draft,
    actor: &Actor,
) -> HandlerResult {
    let spec = match spec_of(ctx, &draft) {
        Some(spec) => spec,
        None => {
            // A draft missing a piece cannot happen through the buttons; start over.
            dialogue.exit().await?;
            return say(bot, chat, ctx.texts.plain("common.reset")).await;
        }
    };
    draft.step = Step::Provisioning;
    dialogue.update(State::NewClient(draft.clone())).await?;
    let id = spec.id.clone();
    let progress_message = send(bot, chat, progress_text(ctx, &id, None), None).await?;

    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<CreateStep>();
    let create = async move {
        let mut progress = move |step: CreateStep| {
            let _ = tx.send(step);
        };
        fleet::create(&ctx.app, actor, spec, &mut progress).await
    };
    let editor = follow_progress(bot, chat, progress_message.id, rx, |step| {
        progress_text(ctx, &id, Some(step))
    });
    let (result, ()) = tokio::join!(create, editor);
    dialogue.exit().await?;
    let text = match result {
        Ok(view) => ctx.texts.get(
            "newclient.created",
            &[
                ("id", id.as_str()),
                ("username", draft.username.as_deref().unwrap_or_default()),
                ("state", view.state.as_str()),
                ("health", view.health.as_str()),
                ("port", &view.record.port.to_string()),
            ],
        ),
        Err(CreateError::Failed {
            step,
            reason,
            kept,
            obstacle,
            ..
        }) => {
            let text = ctx.texts.get(
                "newclient.failed",
                &[
                    ("id", id.as_str()),
                    ("step", step.as_str()),
                    ("reason", &reason),
                    (
                        "cleanup",
                        &ctx.texts.plain(if kept {
                            "newclient.failed_kept"
                        } else {
                            "newclient.failed_cleaned"
                        }),
                    ),
                ],
            );
            match obstacle {
                Some(obstacle) => format!(
                    "{text}\n{}",
                    crate::bot::clients::obstacle_hint(ctx, &obstacle)
                ),
                None => text,
            }
        }
        Err(CreateError::Exists(id)) => ctx.texts.get("newclient.exists", &[("id", id.as_str())]),
        Err(err) => ctx.texts.get(
            "newclient.failed",
            &[
                ("id", id.as_str()),
                ("step", "validate"),
                ("reason", &err.to_string()),
                ("cleanup", &ctx.texts.plain("newclient.failed_cleaned")),
            ],
        ),
    };
    edit(bot, chat, progress_message.id, text, None).await?;
    Ok(())
}

fn progress_text(ctx: &Ctx, id: &TenantId, current: Option<CreateStep>) -> String {
    let position = |step: CreateStep| CreateStep::ALL.iter().position(|s| *s == step).unwrap_or(0);
    let now = current.map(position);
    let lines: Vec<String> = PROGRESS
        .iter()
        .map(|(label, steps)| {
            let first = steps.iter().map(|s| position(*s)).min().unwrap_or(0);
            let last = steps.iter().map(|s| position(*s)).max().unwrap_or(0);
            let key = match now {
                Some(now) if now > last => "newclient.step_done",
                Some(now) if now >= first => "newclient.step_running",
                _ => "newclient.step_pending",
            };
            ctx.texts.get(key, &[("step", &ctx.texts.plain(label))])
        })
        .collect();
    ctx.texts.get_html(
        "newclient.progress",
        &[("id", id.as_str()), ("steps", &lines.join("\n"))],
    )
}

fn spec_of(ctx: &Ctx, draft: &Draft) -> Option<TenantSpec> {
    let id: TenantId = draft.id.as_deref()?.parse().ok()?;
    let token = BotToken::parse(draft.token.as_ref()?.0.expose()).ok()?;
    let provider_key = match &draft.key {
        KeyChoice::None => None,
        KeyChoice::Shared => ctx.app.config().telegram.shared_provider_key.clone(),
        KeyChoice::Own(key) => Some(key.0.clone()),
    };
    Some(TenantSpec {
        id,
        display_name: draft.name.clone(),
        bot_token: token,
        provider_key,
        model: draft.model.clone()?,
        image: None,
        limits: None,
        dm_policy: match &draft.allowlist {
            None => DmPolicy::Pairing,
            Some(ids) => DmPolicy::Allowlist(ids.clone()),
        },
        skills: Some(draft.skills.clone()),
        bot_username: draft.username.clone(),
        keep_failed: false,
    })
}

fn button(label: String, data: &str) -> InlineKeyboardButton {
    InlineKeyboardButton::callback(label, data.to_string())
}
