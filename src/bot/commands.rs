//! The admin bot's commands: one dptree branch per command
//! (`case![Command::…]`), each ending in a small endpoint that checks the
//! arguments and calls the module that does the work. The commands that take
//! one tenant id and nothing else share `on_tenant`; `OnTenant` says which.
//!
//! Order matters: the commands that answer anywhere come first (`/help`,
//! `/start`, `/cancel`, `/newclient`); then any other chat than an operator's
//! private chat or the ops group is ignored; the tenant commands come last.

use std::sync::Arc;

use teloxide::dispatching::UpdateHandler;
use teloxide::dptree::case;
use teloxide::prelude::*;
use teloxide::utils::command::BotCommands;

use crate::bot::clients::Action;
use crate::bot::state::State;
use crate::bot::{
    Command, Ctx, Dlg, HandlerResult, Tg, actor_of, alerts, backups, clients, newclient, say, send,
    usage, usage_text,
};
use crate::tenant::{TenantId, TenantIdError};

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The shortest and longest mute: a minute to a month.
const MUTE_SECONDS: std::ops::RangeInclusive<u64> = 60..=30 * 86_400;
/// The most log lines `/logs` sends, and how many without a number.
const MAX_LOG_LINES: usize = 2000;
const DEFAULT_LOG_LINES: usize = 50;

/// The commands that take one tenant id and nothing else: what each does.
#[derive(Debug, Clone, Copy)]
enum OnTenant {
    Details,
    Act(Action),
    AskRemove,
    Unmute,
    Resume,
    Backup,
    Backups,
}

impl OnTenant {
    /// The usage line shown when the argument is not one id.
    fn usage(self) -> &'static str {
        match self {
            OnTenant::Details => "/client <id>",
            OnTenant::Act(Action::Restart) => "/restart <id>",
            OnTenant::Act(Action::Stop) => "/stop <id>",
            OnTenant::Act(Action::Start) => "/startcell <id>",
            OnTenant::Act(Action::Sleep) => "/sleep <id>",
            OnTenant::Act(Action::Wake) => "/wake <id>",
            OnTenant::AskRemove => "/remove <id>",
            OnTenant::Unmute => "/unmute <id>",
            OnTenant::Resume => "/resume <id>",
            OnTenant::Backup => "/backup <id>",
            OnTenant::Backups => "/backups <id>",
        }
    }
}

/// The command branch of the handler tree (after the operator filter and the
/// dialogue).
pub(crate) fn handler() -> UpdateHandler<BoxError> {
    teloxide::filter_command::<Command, _>()
        .branch(case![Command::Help].endpoint(help))
        .branch(case![Command::Start(greeting)].endpoint(help))
        .branch(case![Command::Cancel].endpoint(cancel))
        .branch(case![Command::NewClient].endpoint(new_client))
        .branch(
            dptree::filter(|msg: Message, ctx: Arc<Ctx>| !ctx.trusted_chat(&msg.chat))
                .endpoint(ignore_elsewhere),
        )
        .branch(case![Command::Clients].endpoint(clients_list))
        .branch(on_tenant_branch(
            case![Command::Client(arg)],
            OnTenant::Details,
        ))
        .branch(on_tenant_branch(
            case![Command::Restart(arg)],
            OnTenant::Act(Action::Restart),
        ))
        .branch(on_tenant_branch(
            case![Command::Stop(arg)],
            OnTenant::Act(Action::Stop),
        ))
        .branch(on_tenant_branch(
            case![Command::StartCell(arg)],
            OnTenant::Act(Action::Start),
        ))
        .branch(on_tenant_branch(
            case![Command::Sleep(arg)],
            OnTenant::Act(Action::Sleep),
        ))
        .branch(on_tenant_branch(
            case![Command::Wake(arg)],
            OnTenant::Act(Action::Wake),
        ))
        .branch(case![Command::Upgrade(arg)].endpoint(upgrade))
        .branch(case![Command::UpgradeAll(arg)].endpoint(upgrade_all))
        .branch(case![Command::Resize(arg)].endpoint(resize))
        .branch(case![Command::Move(arg)].endpoint(move_tenant))
        .branch(case![Command::Skills(arg)].endpoint(skills))
        .branch(case![Command::Config(arg)].endpoint(config))
        .branch(on_tenant_branch(
            case![Command::Remove(arg)],
            OnTenant::AskRemove,
        ))
        .branch(case![Command::Logs(arg)].endpoint(logs))
        .branch(case![Command::Health].endpoint(health))
        .branch(case![Command::Capacity].endpoint(capacity))
        .branch(case![Command::Doctor].endpoint(doctor))
        .branch(case![Command::Mute(arg)].endpoint(mute))
        .branch(on_tenant_branch(
            case![Command::Unmute(arg)],
            OnTenant::Unmute,
        ))
        .branch(case![Command::Usage(arg)].endpoint(usage_report))
        .branch(case![Command::Budget(arg)].endpoint(budget))
        .branch(on_tenant_branch(
            case![Command::Resume(arg)],
            OnTenant::Resume,
        ))
        .branch(on_tenant_branch(
            case![Command::Backup(arg)],
            OnTenant::Backup,
        ))
        .branch(on_tenant_branch(
            case![Command::Backups(arg)],
            OnTenant::Backups,
        ))
        .branch(case![Command::Restore(arg)].endpoint(restore))
}

/// A command that takes one tenant id: its argument goes to `on_tenant`, with
/// what to do.
fn on_tenant_branch(command: UpdateHandler<BoxError>, what: OnTenant) -> UpdateHandler<BoxError> {
    command.map(move || what).endpoint(on_tenant)
}

async fn help(bot: Tg, msg: Message, ctx: Arc<Ctx>) -> HandlerResult {
    let text = ctx.texts.get(
        "common.help",
        &[("commands", &Command::descriptions().to_string())],
    );
    say(&bot, msg.chat.id, text).await
}

async fn cancel(bot: Tg, msg: Message, dialogue: Dlg, ctx: Arc<Ctx>) -> HandlerResult {
    let had = !matches!(dialogue.get().await?, None | Some(State::Idle));
    dialogue.exit().await?;
    let key = if had {
        "common.cancelled"
    } else {
        "common.nothing_to_cancel"
    };
    say(&bot, msg.chat.id, ctx.texts.plain(key)).await
}

async fn new_client(bot: Tg, msg: Message, dialogue: Dlg, ctx: Arc<Ctx>) -> HandlerResult {
    // Onboarding asks for secrets: only in a private chat with the bot.
    if !msg.chat.is_private() {
        return say(&bot, msg.chat.id, ctx.texts.plain("newclient.private_only")).await;
    }
    newclient::begin(&bot, msg.chat.id, &dialogue, &ctx).await
}

/// Another group the bot was added to: tenants are not shown or touched
/// there, and the silence tells its members nothing either.
async fn ignore_elsewhere(msg: Message) -> HandlerResult {
    tracing::info!(
        chat = msg.chat.id.0,
        "a tenant command outside operators' chats and the ops group, ignored"
    );
    Ok(())
}

async fn clients_list(bot: Tg, msg: Message, ctx: Arc<Ctx>) -> HandlerResult {
    clients::list(&bot, msg.chat.id, &ctx).await
}

/// `/client`, `/restart`, `/stop`, `/startcell`, `/remove`, `/unmute`, `/resume`.
async fn on_tenant(
    bot: Tg,
    msg: Message,
    ctx: Arc<Ctx>,
    arg: String,
    command: OnTenant,
) -> HandlerResult {
    let chat = msg.chat.id;
    let Some(id) = tenant_arg(&bot, chat, &ctx, &arg, command.usage()).await? else {
        return Ok(());
    };
    let actor = actor_of(msg.from.as_ref());
    match command {
        OnTenant::Details => clients::details(&bot, chat, &ctx, &id).await,
        OnTenant::Act(action) => clients::act(&bot, chat, &ctx, &actor, action, &id).await,
        OnTenant::AskRemove => clients::ask_remove(&bot, chat, &ctx, &id).await,
        OnTenant::Unmute => alerts::unmute(&bot, chat, &ctx, &actor, &id).await,
        OnTenant::Resume => usage::resume_command(&bot, chat, &ctx, &actor, &id).await,
        OnTenant::Backup => backups::backup(&bot, chat, &ctx, &actor, &id).await,
        OnTenant::Backups => backups::list(&bot, chat, &ctx, &id).await,
    }
}

async fn restore(
    bot: Tg,
    msg: Message,
    dialogue: Dlg,
    ctx: Arc<Ctx>,
    arg: String,
) -> HandlerResult {
    let chat = msg.chat.id;
    let usage = "/restore <id> <backup>";
    let words: Vec<&str> = arg.split_whitespace().collect();
    let [id_text, backup_id] = words[..] else {
        return say(&bot, chat, usage_text(&ctx, usage)).await;
    };
    let Some(user) = msg.from.as_ref().map(|user| user.id.0) else {
        return Ok(());
    };
    if let Some(id) = tenant_arg(&bot, chat, &ctx, id_text, usage).await? {
        backups::ask_restore(&bot, chat, &ctx, &dialogue, user, &id, backup_id).await?;
    }
    Ok(())
}

async fn upgrade(bot: Tg, msg: Message, ctx: Arc<Ctx>, arg: String) -> HandlerResult {
    let chat = msg.chat.id;
    let mut words = arg.split_whitespace();
    let id_text = words.next().unwrap_or_default().to_string();
    let image = words.next().map(str::to_string);
    if words.next().is_some() {
        return say(&bot, chat, usage_text(&ctx, "/upgrade <id> [image]")).await;
    }
    if let Some(id) = tenant_arg(&bot, chat, &ctx, &id_text, "/upgrade <id> [image]").await? {
        let actor = actor_of(msg.from.as_ref());
        clients::upgrade(&bot, chat, &ctx, &actor, &id, image.as_deref()).await?;
    }
    Ok(())
}

async fn config(bot: Tg, msg: Message, ctx: Arc<Ctx>, arg: String) -> HandlerResult {
    const USAGE: &str = "/config <id> [path] | /config <id> <path> <value>";
    let chat = msg.chat.id;
    let mut parts = arg.trim().splitn(3, char::is_whitespace);
    let id_text = parts.next().unwrap_or_default();
    let path = parts.next();
    let value = parts
        .next()
        .map(str::trim)
        .filter(|value| !value.is_empty());
    let Some(id) = tenant_arg(&bot, chat, &ctx, id_text, USAGE).await? else {
        return Ok(());
    };
    match (path, value) {
        (path, None) => crate::bot::config::read(&bot, chat, &ctx, &id, path).await,
        (Some(path), Some(value)) => {
            let actor = actor_of(msg.from.as_ref());
            crate::bot::config::change(&bot, chat, &ctx, &actor, &id, path, value).await
        }
        (None, Some(_)) => say(&bot, chat, usage_text(&ctx, USAGE)).await,
    }
}

async fn skills(bot: Tg, msg: Message, ctx: Arc<Ctx>, arg: String) -> HandlerResult {
    let chat = msg.chat.id;
    if let Some(id) = tenant_arg(&bot, chat, &ctx, &arg, "/skills <id>").await? {
        crate::bot::skills::show(&bot, chat, &ctx, &id).await?;
    }
    Ok(())
}

async fn resize(bot: Tg, msg: Message, ctx: Arc<Ctx>, arg: String) -> HandlerResult {
    const USAGE: &str = "/resize <id> <memory, e.g. 3g> [cpus]";
    let chat = msg.chat.id;
    let words: Vec<&str> = arg.split_whitespace().collect();
    let (id_text, memory, cpus) = match words.as_slice() {
        [id, memory] => (*id, *memory, None),
        [id, memory, cpus] => (*id, *memory, Some(*cpus)),
        _ => return say(&bot, chat, usage_text(&ctx, USAGE)).await,
    };
    let Some(id) = tenant_arg(&bot, chat, &ctx, id_text, USAGE).await? else {
        return Ok(());
    };
    let change = match crate::fleet::resize::Resize::parse(Some(memory), cpus) {
        Ok(change) => change,
        Err(refused) => {
            let text = ctx.texts.get(
                "clients.resize_refused",
                &[("id", id.as_str()), ("reason", &refused.0)],
            );
            return say(&bot, chat, text).await;
        }
    };
    let actor = actor_of(msg.from.as_ref());
    let text = match crate::fleet::resize::resize(&ctx.app, &actor, &id, change).await {
        Ok(done) => {
            let gib = |bytes: i64| format!("{:.2}", bytes as f64 / f64::from(1u32 << 30));
            let cpus = |nano: i64| format!("{}", nano as f64 / 1e9);
            ctx.texts.get(
                "clients.resized",
                &[
                    ("id", id.as_str()),
                    ("memory_before", &gib(done.before.memory_bytes)),
                    ("memory", &gib(done.after.memory_bytes)),
                    ("cpus_before", &cpus(done.before.nano_cpus)),
                    ("cpus", &cpus(done.after.nano_cpus)),
                ],
            )
        }
        Err(err)
            if err
                .downcast_ref::<crate::fleet::resize::ResizeRefused>()
                .is_some()
                || crate::fleet::lock::busy(&err).is_some() =>
        {
            ctx.texts.get(
                "clients.resize_refused",
                &[("id", id.as_str()), ("reason", &format!("{err:#}"))],
            )
        }
        Err(err) => ctx.texts.get(
            "clients.resize_failed",
            &[("id", id.as_str()), ("reason", &format!("{err:#}"))],
        ),
    };
    say(&bot, chat, text).await
}

async fn move_tenant(bot: Tg, msg: Message, ctx: Arc<Ctx>, arg: String) -> HandlerResult {
    const USAGE: &str = "/move <id> <node>";
    let chat = msg.chat.id;
    let words: Vec<&str> = arg.split_whitespace().collect();
    let [id_text, node] = words.as_slice() else {
        return say(&bot, chat, usage_text(&ctx, USAGE)).await;
    };
    let Some(id) = tenant_arg(&bot, chat, &ctx, id_text, USAGE).await? else {
        return Ok(());
    };
    let actor = actor_of(msg.from.as_ref());
    clients::move_tenant(&bot, chat, &ctx, &actor, &id, node).await
}

async fn upgrade_all(bot: Tg, msg: Message, ctx: Arc<Ctx>, arg: String) -> HandlerResult {
    let actor = actor_of(msg.from.as_ref());
    crate::bot::rollout::upgradeall(&bot, msg.chat.id, &ctx, actor, &arg).await
}

async fn logs(bot: Tg, msg: Message, ctx: Arc<Ctx>, arg: String) -> HandlerResult {
    let chat = msg.chat.id;
    let mut words = arg.split_whitespace();
    let id_text = words.next().unwrap_or_default().to_string();
    let lines = match words.next().map(str::parse::<usize>) {
        None => DEFAULT_LOG_LINES,
        Some(Ok(n)) if (1..=MAX_LOG_LINES).contains(&n) => n,
        Some(_) => {
            return say(&bot, chat, usage_text(&ctx, "/logs <id> [1-2000]")).await;
        }
    };
    if let Some(id) = tenant_arg(&bot, chat, &ctx, &id_text, "/logs <id> [lines]").await? {
        clients::logs(&bot, chat, &ctx, &id, lines).await?;
    }
    Ok(())
}

async fn health(bot: Tg, msg: Message, ctx: Arc<Ctx>) -> HandlerResult {
    alerts::health(&bot, msg.chat.id, &ctx).await
}

async fn capacity(bot: Tg, msg: Message, ctx: Arc<Ctx>) -> HandlerResult {
    clients::capacity(&bot, msg.chat.id, &ctx).await
}

async fn doctor(bot: Tg, msg: Message, ctx: Arc<Ctx>) -> HandlerResult {
    crate::bot::doctor::doctor(&bot, msg.chat.id, &ctx).await
}

async fn mute(bot: Tg, msg: Message, ctx: Arc<Ctx>, arg: String) -> HandlerResult {
    let chat = msg.chat.id;
    let mut words = arg.split_whitespace();
    let id_text = words.next().unwrap_or_default().to_string();
    let duration = words
        .next()
        .and_then(|text| humantime::parse_duration(text).ok())
        .filter(|duration| MUTE_SECONDS.contains(&duration.as_secs()));
    let Some(duration) = duration else {
        let usage = "/mute <id> <duration from 1m to 30d, e.g. 2h>";
        return say(&bot, chat, usage_text(&ctx, usage)).await;
    };
    if let Some(id) = tenant_arg(&bot, chat, &ctx, &id_text, "/mute <id> <duration>").await? {
        let actor = actor_of(msg.from.as_ref());
        alerts::mute(&bot, chat, &ctx, &actor, &id, duration).await?;
    }
    Ok(())
}

async fn usage_report(bot: Tg, msg: Message, ctx: Arc<Ctx>, arg: String) -> HandlerResult {
    usage::usage_command(&bot, msg.chat.id, &ctx, &arg).await
}

async fn budget(bot: Tg, msg: Message, ctx: Arc<Ctx>, arg: String) -> HandlerResult {
    let chat = msg.chat.id;
    let words: Vec<&str> = arg.split_whitespace().collect();
    let usage = "/budget <id> [amount|none] [notify|stop-channel|stop-cell]";
    let id_text = words.first().copied().unwrap_or_default();
    if let Some(id) = tenant_arg(&bot, chat, &ctx, id_text, usage).await? {
        let actor = actor_of(msg.from.as_ref());
        usage::budget_command(&bot, chat, &ctx, &actor, &id, &words[1..]).await?;
    }
    Ok(())
}

/// Parses a tenant id argument, replying with the usage or the id rule if bad.
async fn tenant_arg(
    bot: &Tg,
    chat: ChatId,
    ctx: &Ctx,
    arg: &str,
    usage: &str,
) -> Result<Option<TenantId>, teloxide::RequestError> {
    let arg = arg.trim();
    if arg.is_empty() || arg.contains(char::is_whitespace) {
        send(bot, chat, usage_text(ctx, usage), None).await?;
        return Ok(None);
    }
    match arg.parse() {
        Ok(id) => Ok(Some(id)),
        Err(err) => {
            let err: TenantIdError = err;
            send(
                bot,
                chat,
                ctx.texts.get(
                    "common.bad_id",
                    &[("input", arg), ("reason", &err.to_string())],
                ),
                None,
            )
            .await?;
            Ok(None)
        }
    }
}
