//! `/upgradeall`: the fleet rollout from the phone. A plan first; `go`
//! starts it in the background with one message edited as it moves; `halt`,
//! `resume`, `abandon` and `status` act on the newest rollout. At start the
//! admin takes over a rollout whose runner died (fleet decides how).

use std::sync::Arc;
use std::time::Duration;

use teloxide::types::{ChatId, MessageId};

use crate::bot::clients::UPGRADE_PROGRESS;
use crate::bot::send::{edit, follow_progress, say, send};
use crate::bot::{Ctx, HandlerResult, Tg};
use crate::fleet::rollout::{
    self, Adopted, Canary, Rollout, RolloutError, RolloutProgress, RolloutRequest, RolloutState,
    TenantStep,
};
use crate::fleet::{Actor, UpgradeStep};

/// What `/upgradeall <image> go` starts with: one canary, waves of 5, five
/// minutes apart (the CLI takes every option).
const WAVE_SIZE: usize = 5;
const PAUSE: Duration = Duration::from_secs(300);

/// `/upgradeall [image [go] | status | halt | resume | abandon]`.
pub async fn upgradeall(
    bot: &Tg,
    chat: ChatId,
    ctx: &Arc<Ctx>,
    actor: Actor,
    arg: &str,
) -> HandlerResult {
    let words: Vec<&str> = arg.split_whitespace().collect();
    match words.as_slice() {
        [] | ["status"] => status(bot, chat, ctx).await,
        ["halt"] => match rollout::halt(&ctx.app, &actor) {
            Ok(halting) => {
                let text = ctx
                    .texts
                    .get("rollout.halt_asked", &[("image", &halting.image)]);
                say(bot, chat, text).await
            }
            Err(err) => say(bot, chat, refused(ctx, &err)).await,
        },
        ["abandon"] => match rollout::abandon(&ctx.app, &actor) {
            Ok(gone) => {
                let text = ctx
                    .texts
                    .get("rollout.abandoned", &[("image", &gone.image)]);
                say(bot, chat, text).await
            }
            Err(err) => say(bot, chat, refused(ctx, &err)).await,
        },
        ["resume"] => spawn_run(bot, chat, ctx, actor, None).await,
        [image] => {
            let request = request(image);
            match rollout::plan(&ctx.app, &actor, &request).await {
                Ok(plan) => say(bot, chat, plan_text(ctx, &plan)).await,
                Err(err) => say(bot, chat, refused(ctx, &err)).await,
            }
        }
        [image, "go"] => spawn_run(bot, chat, ctx, actor, Some(request(image))).await,
        _ => say(bot, chat, ctx.texts.get("rollout.usage", &[])).await,
    }
}

fn request(image: &str) -> RolloutRequest {
    RolloutRequest {
        image: image.to_string(),
        canary: Canary::Count(1),
        wave_size: WAVE_SIZE,
        pause: PAUSE,
    }
}

async fn status(bot: &Tg, chat: ChatId, ctx: &Ctx) -> HandlerResult {
    let text = match rollout::rollout(&ctx.app) {
        Ok(Some(current)) => report_text(ctx, &current, None),
        Ok(None) => ctx.texts.get("rollout.none", &[]),
        Err(err) => ctx
            .texts
            .get("rollout.refused", &[("reason", &format!("{err:#}"))]),
    };
    say(bot, chat, text).await
}

/// Starts (or resumes) the rollout in the background: the handler returns at
/// once, one message follows it to its end.
async fn spawn_run(
    bot: &Tg,
    chat: ChatId,
    ctx: &Arc<Ctx>,
    actor: Actor,
    request: Option<RolloutRequest>,
) -> HandlerResult {
    let starting = ctx.texts.get("rollout.now_starting", &[]);
    let message = send(bot, chat, starting, None).await?;
    let (bot, ctx) = (bot.clone(), ctx.clone());
    tokio::spawn(async move {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let work = {
            let ctx = ctx.clone();
            async move {
                let mut progress = |now: RolloutProgress<'_>| {
                    let _ = tx.send(report_text(&ctx, now.rollout, now.current));
                };
                match &request {
                    Some(request) => rollout::start(&ctx.app, &actor, request, &mut progress).await,
                    None => rollout::resume(&ctx.app, &actor, &mut progress).await,
                }
            }
        };
        let editor = follow_progress(&bot, chat, message.id, rx, |text| text);
        let (result, ()) = tokio::join!(work, editor);
        let text = match result {
            Ok(finished) => report_text(&ctx, &finished, None),
            Err(err) => refused(&ctx, &err),
        };
        finish(&bot, chat, message.id, text).await;
    });
    Ok(())
}

async fn finish(bot: &Tg, chat: ChatId, message: MessageId, text: String) {
    if let Err(err) = edit(bot, chat, message, text, None).await {
        tracing::warn!(cause = %err, "cannot edit the rollout's message");
    }
}

/// At the admin's start: a rollout whose runner died is continued or halted
/// (fleet decides); the ops group hears of it.
pub async fn adopt_at_start(bot: Tg, ctx: Arc<Ctx>) {
    let targets = ops_targets(&ctx);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let follower = {
        let (bot, ctx, targets) = (bot.clone(), ctx.clone(), targets.clone());
        tokio::spawn(async move {
            let mut rx = rx;
            // The message is made when the rollout goes on, not before.
            let first = rx.recv().await?;
            let chat = *targets.first()?;
            let image = rollout::rollout(&ctx.app)
                .ok()
                .flatten()
                .map(|r| r.image)
                .unwrap_or_default();
            let _ = send(
                &bot,
                chat,
                ctx.texts.get("rollout.adopted", &[("image", &image)]),
                None,
            )
            .await;
            let message = send(&bot, chat, first, None).await.ok()?;
            follow_progress(&bot, chat, message.id, rx, |text| text).await;
            Some((chat, message.id))
        })
    };
    let adopted = {
        let texts = ctx.clone();
        let mut progress = move |now: RolloutProgress<'_>| {
            let _ = tx.send(report_text(&texts, now.rollout, now.current));
        };
        rollout::adopt(&ctx.app, &Actor::System("rollout"), &mut progress).await
    };
    let followed = follower.await.ok().flatten();
    let text = match adopted {
        Ok(Adopted::Nothing) => return,
        Ok(Adopted::Continued(done)) => report_text(&ctx, &done, None),
        Ok(Adopted::Halted(halted)) => report_text(&ctx, &halted, None),
        Err(err) => {
            tracing::error!(cause = %format!("{err:#}"), "cannot take over the unfinished rollout");
            return;
        }
    };
    match followed {
        Some((chat, message)) => finish(&bot, chat, message, text).await,
        None => {
            for chat in targets {
                let _ = send(&bot, chat, text.clone(), None).await;
            }
        }
    }
}

fn ops_targets(ctx: &Ctx) -> Vec<ChatId> {
    match ctx.app.config().telegram.ops_chat_id {
        Some(chat) => vec![ChatId(chat)],
        None => ctx.operators.iter().map(|id| ChatId(*id as i64)).collect(),
    }
}

fn refused(ctx: &Ctx, err: &RolloutError) -> String {
    let reason = match err {
        RolloutError::Other(err) => format!("{err:#}"),
        other => other.to_string(),
    };
    ctx.texts.get("rollout.refused", &[("reason", &reason)])
}

fn wave_name(ctx: &Ctx, index: usize) -> String {
    if index == 0 {
        ctx.texts.get("rollout.canary", &[])
    } else {
        ctx.texts.get("rollout.wave", &[("n", &index.to_string())])
    }
}

fn passed_text(ctx: &Ctx, rollout: &Rollout) -> String {
    if rollout.passed_by.is_empty() {
        return String::new();
    }
    let list: Vec<String> = rollout
        .passed_by
        .iter()
        .map(|(id, why)| format!("{id} ({why})"))
        .collect();
    ctx.texts
        .get("rollout.passed", &[("list", &list.join(", "))])
}

fn plan_text(ctx: &Ctx, plan: &Rollout) -> String {
    let waves: Vec<String> = plan
        .waves
        .iter()
        .enumerate()
        .map(|(index, ids)| {
            ctx.texts.get(
                "rollout.wave_line",
                &[("name", &wave_name(ctx, index)), ("ids", &ids.join(", "))],
            )
        })
        .collect();
    ctx.texts.get_html(
        "rollout.plan",
        &[
            ("image", &crate::bot::texts::escape(&plan.image)),
            ("count", &plan.tenants.len().to_string()),
            ("waves", &waves.join("\n")),
            ("passed", &passed_text(ctx, plan)),
        ],
    )
}

fn step_text(ctx: &Ctx, step: UpgradeStep) -> String {
    UPGRADE_PROGRESS
        .iter()
        .find(|(_, steps)| steps.contains(&step))
        .map_or_else(
            || step.as_str().to_string(),
            |(label, _)| ctx.texts.plain(label),
        )
}

/// The rollout as the operator reads it: moving, done, or halted.
fn report_text(ctx: &Ctx, rollout: &Rollout, current: Option<(&str, UpgradeStep)>) -> String {
    let (done, total) = rollout.done_count();
    let (done, total) = (done.to_string(), total.to_string());
    match rollout.state {
        RolloutState::Done => ctx.texts.get_html(
            "rollout.done",
            &[
                ("image", &crate::bot::texts::escape(&rollout.image)),
                ("done", &done),
                ("total", &total),
                ("passed", &passed_text(ctx, rollout)),
            ],
        ),
        RolloutState::Halted | RolloutState::Abandoned => {
            let list = |upgraded: bool| {
                let ids: Vec<&str> = rollout
                    .order()
                    .filter(|id| {
                        matches!(rollout.tenants.get(*id), Some(TenantStep::Upgraded { .. }))
                            == upgraded
                    })
                    .map(String::as_str)
                    .collect();
                if ids.is_empty() {
                    ctx.texts.get("rollout.nobody", &[])
                } else {
                    ids.join(", ")
                }
            };
            ctx.texts.get(
                "rollout.halted",
                &[
                    ("image", &rollout.image),
                    (
                        "reason",
                        rollout
                            .halted_because
                            .as_deref()
                            .unwrap_or(rollout.state.as_str()),
                    ),
                    ("upgraded", &list(true)),
                    ("pending", &list(false)),
                ],
            )
        }
        RolloutState::Running => {
            let now = match (current, rollout.next_wave_at) {
                (Some((id, step)), _) => {
                    let wave = rollout
                        .waves
                        .iter()
                        .position(|wave| wave.iter().any(|w| w == id))
                        .unwrap_or(0);
                    ctx.texts.get(
                        "rollout.now_upgrading",
                        &[
                            ("wave", &wave_name(ctx, wave)),
                            ("id", id),
                            ("step", &step_text(ctx, step)),
                        ],
                    )
                }
                (None, Some(at)) => {
                    let at = chrono::DateTime::from_timestamp(at, 0)
                        .map_or_else(|| at.to_string(), |at| at.format("%H:%M UTC").to_string());
                    ctx.texts.get("rollout.now_pausing", &[("at", &at)])
                }
                (None, None) => ctx.texts.get("rollout.now_starting", &[]),
            };
            ctx.texts.get_html(
                "rollout.progress",
                &[
                    ("image", &crate::bot::texts::escape(&rollout.image)),
                    ("done", &done),
                    ("total", &total),
                    ("now", &now),
                ],
            )
        }
    }
}
