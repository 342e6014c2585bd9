//! `/backup`, `/backups` and `/restore`: the same `fleet::backup` actions as
//! `mtp backup`, with the backup's progress in one edited message and a
//! restore only after the operator who asked types the tenant's id.

use teloxide::prelude::*;

use crate::bot::clients::{age_text, error_text};
use crate::bot::send::{edit, follow_progress};
use crate::bot::state::State;
use crate::bot::{Ctx, Dlg, HandlerResult, Tg, say, send};
use crate::fleet::backup::{self, BackupStep, RestoreError, RestoreRequest, RestoreStep};
use crate::fleet::{self, Actor, CreateStep};
use crate::tenant::TenantId;

/// How many archives `/backups` lists, newest first.
const LIST_AT_MOST: usize = 15;

pub async fn backup(
    bot: &Tg,
    chat: ChatId,
    ctx: &Ctx,
    actor: &Actor,
    id: &TenantId,
) -> HandlerResult {
    let message = send(bot, chat, backup_text(ctx, id, None), None).await?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<BackupStep>();
    let work = async move {
        let mut progress = move |step: BackupStep| {
            let _ = tx.send(step);
        };
        backup::backup(&ctx.app, actor, id, &mut progress).await
    };
    let editor = follow_progress(bot, chat, message.id, rx, |step| {
        backup_text(ctx, id, Some(step))
    });
    let (result, ()) = tokio::join!(work, editor);
    let text = match result {
        Ok(done) => {
            let mut text = ctx.texts.get(
                "backups.done",
                &[
                    ("id", id.as_str()),
                    ("backup", &done.backup.id),
                    ("size", &size(done.backup.bytes)),
                    ("paused", &done.paused.as_millis().to_string()),
                    ("path", &done.backup.path.display().to_string()),
                ],
            );
            if let Some(Err(why)) = &done.after_command {
                text.push('\n');
                text.push_str(&ctx.texts.get("backups.after_failed", &[("error", why)]));
            }
            text
        }
        Err(err) => error_text(ctx, "/backup", &err, "/backup"),
    };
    edit(bot, chat, message.id, text, None).await?;
    Ok(())
}

fn backup_text(ctx: &Ctx, id: &TenantId, current: Option<BackupStep>) -> String {
    let step = match current {
        None => ctx.texts.plain("backups.step_start"),
        Some(step) => ctx
            .texts
            .plain(&format!("backups.step_{}", step.as_str().replace('-', "_"))),
    };
    ctx.texts
        .get("backups.progress", &[("id", id.as_str()), ("step", &step)])
}

pub async fn list(bot: &Tg, chat: ChatId, ctx: &Ctx, id: &TenantId) -> HandlerResult {
    // Backups outlive their tenant: a removed one's are listed too.
    let found = match backup::list(&ctx.app, Some(id)) {
        Ok(found) => found,
        Err(err) => return say(bot, chat, error_text(ctx, "/backups", &err, "/backups")).await,
    };
    if found.is_empty() {
        if let Err(err) = fleet::record(&ctx.app, id) {
            return say(bot, chat, error_text(ctx, "/backups", &err, "/backups")).await;
        }
        return say(
            bot,
            chat,
            ctx.texts.get("backups.none", &[("id", id.as_str())]),
        )
        .await;
    }
    let now = fleet::now();
    let mut text = ctx.texts.get(
        "backups.header",
        &[("id", id.as_str()), ("count", &found.len().to_string())],
    );
    for archive in found.iter().take(LIST_AT_MOST) {
        text.push('\n');
        text.push_str(&ctx.texts.get(
            "backups.line",
            &[
                ("backup", &archive.id),
                ("size", &size(archive.bytes)),
                ("age", &age_text(&ctx.texts, now - archive.created_at)),
            ],
        ));
    }
    say(bot, chat, text).await
}

/// `/restore <id> <backup>`: checks the backup exists, then asks the
/// operator to type the id.
pub async fn ask_restore(
    bot: &Tg,
    chat: ChatId,
    ctx: &Ctx,
    dialogue: &Dlg,
    user: u64,
    id: &TenantId,
    backup_id: &str,
) -> HandlerResult {
    let known = backup::list(&ctx.app, Some(id))
        .unwrap_or_default()
        .into_iter()
        .any(|archive| archive.id == backup_id);
    if !known {
        return say(
            bot,
            chat,
            ctx.texts.get(
                "backups.unknown",
                &[("id", id.as_str()), ("backup", backup_id)],
            ),
        )
        .await;
    }
    let exists = fleet::record(&ctx.app, id).is_ok();
    dialogue
        .update(State::ConfirmRestore {
            tenant: id.to_string(),
            backup: backup_id.to_string(),
            replace: exists,
            touched_at: fleet::now(),
            by: user,
        })
        .await?;
    let key = if exists {
        "backups.restore_ask_replace"
    } else {
        "backups.restore_ask"
    };
    say(
        bot,
        chat,
        ctx.texts
            .get(key, &[("id", id.as_str()), ("backup", backup_id)]),
    )
    .await
}

/// What `/restore` asked the operator to confirm.
pub struct Asked<'a> {
    pub tenant: &'a str,
    pub backup: &'a str,
    /// The operator was told the tenant's current state is replaced.
    pub replace: bool,
}

/// The operator typed something after `/restore`: only the exact id restores,
/// and only as they were told (a tenant made meanwhile is not replaced).
pub async fn confirm_restore(
    bot: &Tg,
    chat: ChatId,
    ctx: &Ctx,
    actor: &Actor,
    asked: &Asked<'_>,
    typed: &str,
) -> HandlerResult {
    let backup_id = asked.backup;
    let Ok(id) = asked.tenant.parse::<TenantId>() else {
        return Ok(());
    };
    if typed.trim() != id.as_str() {
        return say(
            bot,
            chat,
            ctx.texts
                .get("backups.restore_mismatch", &[("id", id.as_str())]),
        )
        .await;
    }
    let message = send(bot, chat, restore_text(ctx, &id, None), None).await?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<RestoreStep>();
    let request = RestoreRequest {
        source: backup_id.to_string(),
        replace: asked.replace,
        ..RestoreRequest::default()
    };
    let work = async move {
        let mut progress = move |step: RestoreStep| {
            let _ = tx.send(step);
        };
        backup::restore(&ctx.app, actor, request, &mut progress).await
    };
    let editor = follow_progress(bot, chat, message.id, rx, |step| {
        restore_text(ctx, &id, Some(step))
    });
    let (result, ()) = tokio::join!(work, editor);
    let text = match result {
        Ok(view) => ctx.texts.get(
            "backups.restored",
            &[
                ("id", id.as_str()),
                ("backup", backup_id),
                ("port", &view.record.port.to_string()),
            ],
        ),
        Err(RestoreError::Busy(busy)) => ctx.texts.get(
            "backups.restore_failed",
            &[("id", id.as_str()), ("error", &busy.to_string())],
        ),
        Err(err) => ctx.texts.get(
            "backups.restore_failed",
            &[("id", id.as_str()), ("error", &format!("{err:#}"))],
        ),
    };
    edit(bot, chat, message.id, text, None).await?;
    Ok(())
}

fn restore_text(ctx: &Ctx, id: &TenantId, current: Option<RestoreStep>) -> String {
    let step = match current {
        None | Some(RestoreStep::Read) => ctx.texts.plain("backups.step_read"),
        Some(RestoreStep::SafetyBackup) => ctx.texts.plain("backups.step_safety"),
        Some(RestoreStep::Replace) => ctx.texts.plain("backups.step_replace"),
        Some(RestoreStep::Cell(step)) => ctx.texts.get(
            "backups.step_cell",
            &[
                ("step", step.as_str()),
                (
                    "n",
                    &(CreateStep::ALL.iter().position(|s| *s == step).unwrap_or(0) + 1).to_string(),
                ),
                ("of", &CreateStep::ALL.len().to_string()),
            ],
        ),
    };
    ctx.texts
        .get("backups.restoring", &[("id", id.as_str()), ("step", &step)])
}

/// `/client`'s line about backups.
pub fn last_backup_line(ctx: &Ctx, id: &TenantId) -> String {
    match backup::last_backup(&ctx.app, id) {
        Some(archive) => ctx.texts.get(
            "backups.client_last",
            &[
                ("backup", &archive.id),
                (
                    "age",
                    &age_text(&ctx.texts, fleet::now() - archive.created_at),
                ),
                ("size", &size(archive.bytes)),
            ],
        ),
        None => ctx.texts.plain("backups.client_none"),
    }
}

fn size(bytes: u64) -> String {
    #[allow(clippy::cast_precision_loss)]
    let mb = bytes as f64 / 1e6;
    if mb >= 1.0 {
        format!("{mb:.1} MB")
    } else {
        format!("{:.0} kB", (bytes as f64 / 1e3).max(1.0))
    }
}
