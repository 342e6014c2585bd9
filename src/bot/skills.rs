//! `/skills <id>`: a client's bundled skills after onboarding, as the same
//! toggles as `/newclient`; a tap turns one on or off through its config.

use teloxide::types::{ChatId, InlineKeyboardButton, InlineKeyboardMarkup, MessageId};

use crate::bot::send::{edit, send};
use crate::bot::{Ctx, HandlerResult, Tg};
use crate::fleet::skills::{Skills, set_skills, skills};
use crate::fleet::{Actor, catalog};
use crate::tenant::TenantId;

/// Sends the skills of `id` with a toggle per catalog skill.
pub async fn show(bot: &Tg, chat: ChatId, ctx: &Ctx, id: &TenantId) -> HandlerResult {
    match skills(&ctx.app, id).await {
        Ok(now) => {
            send(
                bot,
                chat,
                text(ctx, id, &now, None),
                Some(keyboard(id, &now)),
            )
            .await?;
        }
        Err(err) => {
            let failed = failed_text(ctx, id, &err);
            send(bot, chat, failed, None).await?;
        }
    }
    Ok(())
}

/// What a toggle's callback data says: `sk:<catalog index>:<tenant id>`.
pub struct Pressed {
    pub skill: usize,
    pub id: TenantId,
}

/// Reads a toggle's data (after `sk:`); `None` when it is not one.
#[must_use]
pub fn parse(rest: &str) -> Option<Pressed> {
    let (index, id) = rest.split_once(':')?;
    let skill: usize = index.parse().ok()?;
    if skill >= catalog::skills().len() || index.len() > 3 {
        return None;
    }
    Some(Pressed {
        skill,
        id: id.parse().ok()?,
    })
}

/// A toggle pressed: the skill turned on or off, the message edited to show it.
pub async fn on_button(
    bot: &Tg,
    chat: ChatId,
    message: MessageId,
    ctx: &Ctx,
    actor: &Actor,
    pressed: Pressed,
) -> HandlerResult {
    let id = &pressed.id;
    let skill = &catalog::skills()[pressed.skill];
    let now = match skills(&ctx.app, id).await {
        Ok(now) => now,
        Err(err) => {
            edit(bot, chat, message, failed_text(ctx, id, &err), None).await?;
            return Ok(());
        }
    };
    let on = !now.has(&skill.id);
    let (enable, disable) = if on {
        (vec![skill.id.clone()], Vec::new())
    } else {
        (Vec::new(), vec![skill.id.clone()])
    };
    let changed = set_skills(&ctx.app, actor, id, &enable, &disable).await;
    let note = match &changed {
        Ok(change) => match &change.outcome {
            crate::fleet::config_edit::Outcome::Failed(why) => Err(why.clone()),
            _ => Ok(()),
        },
        Err(err) => Err(format!("{err:#}")),
    };
    let after = skills(&ctx.app, id).await.unwrap_or(now);
    let note = match note {
        Ok(()) => ctx.texts.get(
            if on {
                "clients.skill_on"
            } else {
                "clients.skill_off"
            },
            &[("skill", &skill.label)],
        ),
        Err(why) => ctx.texts.get(
            "clients.skill_failed",
            &[("skill", &skill.label), ("reason", &why)],
        ),
    };
    edit(
        bot,
        chat,
        message,
        text(ctx, id, &after, Some(&note)),
        Some(keyboard(id, &after)),
    )
    .await?;
    Ok(())
}

fn text(ctx: &Ctx, id: &TenantId, now: &Skills, note: Option<&str>) -> String {
    let state = match &now.allowed {
        None => ctx.texts.plain("clients.skills_default"),
        Some(on) => ctx
            .texts
            .get("clients.skills_count", &[("count", &on.len().to_string())]),
    };
    let mut text = ctx
        .texts
        .get("clients.skills", &[("id", id.as_str()), ("state", &state)]);
    if let Some(note) = note {
        text.push('\n');
        text.push_str(note);
    }
    text
}

fn failed_text(ctx: &Ctx, id: &TenantId, err: &anyhow::Error) -> String {
    let what = ctx.texts.get("clients.skills_what", &[("id", id.as_str())]);
    crate::bot::clients::error_text(ctx, &what, err, "/skills")
}

fn keyboard(id: &TenantId, now: &Skills) -> InlineKeyboardMarkup {
    let rows: Vec<Vec<InlineKeyboardButton>> = catalog::skills()
        .chunks(2)
        .enumerate()
        .map(|(row, pair)| {
            pair.iter()
                .enumerate()
                .map(|(col, skill)| {
                    let mark = if now.has(&skill.id) { "✅" } else { "▫️" };
                    InlineKeyboardButton::callback(
                        format!("{mark} {} {}", skill.emoji, skill.label),
                        format!("sk:{}:{id}", row * 2 + col),
                    )
                })
                .collect()
        })
        .collect();
    InlineKeyboardMarkup::new(rows)
}
