//! The Telegram admin bot (teloxide, long polling): operator-only commands,
//! the `/newclient` dialogue, tenant actions behind inline buttons. It parses
//! and renders; every action is a `fleet` call.
//!
//! Where things work: everything that shows or acts on tenants answers only in
//! an operator's private chat or the ops group (`telegram.opsChatId`); in any
//! other group the bot was added to it stays silent. `/help`, `/start` (the
//! greeting Telegram sends for deep links and first contact), `/cancel` and
//! `/newclient` (which points to a private chat) answer anywhere.
//!
//! Architecture invariant: `bot/` never uses `runtime`, `gateway` or `store`,
//! except `storage.rs`, which keeps dialogue state in the store's dialogue table.

mod alerts;
mod backups;
mod clients;
mod commands;
mod config;
mod doctor;
mod newclient;
mod pasted;
mod rollout;
mod send;
mod skills;
mod state;
mod storage;
pub mod strangers;
pub mod texts;
mod usage;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use teloxide::adaptors::Throttle;
use teloxide::adaptors::throttle::Limits;
use teloxide::dispatching::dialogue::Dialogue;
use teloxide::dispatching::{HandlerExt, UpdateFilterExt, UpdateHandler};
use teloxide::prelude::*;
use teloxide::utils::command::BotCommands;

use crate::fleet::{self, Actor, App};
use send::{edit, say, send};
use state::State;
use storage::DialogueStorage;
use strangers::Strangers;
use texts::Texts;

/// The bot client every handler gets: teloxide's `Bot` behind its throttle, so
/// Telegram's rate limits (and 429s) are respected.
pub type Tg = Throttle<Bot>;
type Dlg = Dialogue<State, DialogueStorage>;
type HandlerResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// How often idle dialogues are swept.
const SWEEP_EVERY: Duration = Duration::from_secs(20);
/// Telegram's limit for one message's text.
pub const MAX_MESSAGE: usize = 4096;

/// Commands (the `/help` text is their descriptions).
#[derive(BotCommands, Clone, Debug)]
#[command(rename_rule = "lowercase", description = "Commands:")]
pub enum Command {
    #[command(description = "show this help")]
    Help,
    /// What Telegram sends when someone first opens the bot or follows a deep
    /// link (`t.me/<bot>?start=…`): the greeting, whatever the argument. It never
    /// starts a cell (that is `/startcell`).
    #[command(hide)]
    Start(String),
    #[command(description = "onboard a new client step by step")]
    NewClient,
    #[command(description = "list all clients")]
    Clients,
    #[command(description = "one client, with buttons: /client <id>")]
    Client(String),
    #[command(description = "restart a client's cell: /restart <id>")]
    Restart(String),
    #[command(description = "stop a client's cell: /stop <id>")]
    Stop(String),
    #[command(description = "start a client's cell: /startcell <id>")]
    StartCell(String),
    #[command(
        description = "put an idle client's cell to sleep (wakes on its next message): /sleep <id>"
    )]
    Sleep(String),
    #[command(description = "wake a sleeping client's cell: /wake <id>")]
    Wake(String),
    #[command(description = "move a client's cell to another pinned image: /upgrade <id> [image]")]
    Upgrade(String),
    #[command(
        description = "a client's config: /config <id> [path]; a change: /config <id> <path> <value> (a preview first)"
    )]
    Config(String),
    #[command(description = "a client's bundled skills, with toggles: /skills <id>")]
    Skills(String),
    #[command(
        description = "change a client's memory and CPUs in place: /resize <id> <memory, e.g. 3g> [cpus]"
    )]
    Resize(String),
    #[command(description = "move a client's cell to another node of the swarm: /move <id> <node>")]
    Move(String),
    #[command(
        description = "upgrade every client, canary first, then waves: /upgradeall <image> [go] | status | halt | resume | abandon"
    )]
    UpgradeAll(String),
    #[command(description = "remove a client (asks first): /remove <id>")]
    Remove(String),
    #[command(description = "a client's log, secrets redacted: /logs <id> [lines]")]
    Logs(String),
    #[command(description = "the fleet as of the last health sweep")]
    Health,
    #[command(
        description = "host memory, a cell's measured footprint, and how many more clients fit"
    )]
    Capacity,
    #[command(
        description = "check the host and every cell against what MTP promises (fixes: mtp doctor --fix)"
    )]
    Doctor,
    #[command(description = "mute a client's alerts: /mute <id> <duration, e.g. 2h>")]
    Mute(String),
    #[command(description = "alerts on again: /unmute <id>")]
    Unmute(String),
    #[command(
        description = "usage and cost: /usage [id] [7d|30d|this-month|last-month|YYYY-MM|from..to] [csv]"
    )]
    Usage(String),
    #[command(
        description = "monthly budget: /budget <id> [amount|none] [notify|stop-channel|stop-cell]"
    )]
    Budget(String),
    #[command(description = "undo a budget suspension: /resume <id>")]
    Resume(String),
    #[command(description = "back up a client now, while it runs: /backup <id>")]
    Backup(String),
    #[command(description = "a client's backups, newest first: /backups <id>")]
    Backups(String),
    #[command(description = "restore a client from a backup (asks first): /restore <id> <backup>")]
    Restore(String),
    #[command(description = "abandon the current dialogue")]
    Cancel,
}

/// What every handler shares, injected once.
pub struct Ctx {
    pub app: App,
    pub texts: Texts,
    operators: Vec<u64>,
    idle: Duration,
    /// The gate for non-operators: who was refused lately, and the ration.
    strangers: Arc<Strangers>,
    /// The monitor's last sweep, when the monitor runs in this process.
    latest: Option<LatestSweep>,
}

/// The monitor's latest sweep, published after each one.
pub type LatestSweep = tokio::sync::watch::Receiver<Option<Arc<crate::fleet::health::Sweep>>>;

/// What the bot gets from a monitor running beside it.
pub struct MonitorLink {
    pub reports: tokio::sync::mpsc::Receiver<crate::monitor::Report>,
    pub latest: LatestSweep,
    /// Budget alerts of the usage loop, when it runs in this process.
    pub usage: Option<tokio::sync::mpsc::Receiver<crate::usage::Report>>,
}

impl Ctx {
    fn is_operator(&self, user: Option<&teloxide::types::User>) -> bool {
        user.is_some_and(|user| self.operators.contains(&user.id.0))
    }

    /// Operators' private chats and the ops group: where tenants are shown and
    /// acted on. (The operator filter has run: a private chat is the operator's own.)
    fn trusted_chat(&self, chat: &teloxide::types::Chat) -> bool {
        chat.is_private() || self.app.config().telegram.ops_chat_id == Some(chat.id.0)
    }
}

/// Runs the bot until `shutdown` resolves; in-flight handlers finish first.
///
/// # Errors
///
/// No token or operators configured, broken dialogue texts, or the Bot API
/// refusing the admin's token or out of reach (each said apart).
pub async fn run(
    app: App,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    run_with_monitor(app, None, shutdown).await
}

/// Runs the bot; with a monitor link it also forwards alerts and digests to the
/// ops group and answers `/health` from the monitor's last sweep.
///
/// # Errors
///
/// As `run`.
pub async fn run_with_monitor(
    app: App,
    monitor: Option<MonitorLink>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    run_inner(app, monitor, Arc::new(Strangers::new()), shutdown).await
}

/// As `run`, with the caller's gate for non-operators, so that a test can see
/// how many strangers it remembers.
///
/// # Errors
///
/// As `run`.
pub async fn run_with_strangers(
    app: App,
    strangers: Arc<Strangers>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    run_inner(app, None, strangers, shutdown).await
}

async fn run_inner(
    app: App,
    monitor: Option<MonitorLink>,
    strangers: Arc<Strangers>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (token, operators) = app.config().telegram.require()?;
    let operators = operators.to_vec();
    let texts = Texts::load()?;
    fleet::catalog::check()?;
    let url = app
        .config()
        .telegram
        .api_url
        .parse()
        .context("telegram.apiUrl is not a URL")?;
    // Telegram asks for about one message a second per chat and at most 20 a
    // minute per group; teloxide's default applies the group limit to private
    // chats too, which stalls an operator's `/newclient` for up to a minute after
    // 20 messages. In a private chat the per-second limit is the one that holds.
    // teloxide holds supergroups (ops groups are) to 10 a minute, under
    // Telegram's 20; the alert forwarder keeps its own budget below 20.
    let limits = Limits {
        messages_per_min_chat: 60,
        messages_per_min_channel_or_supergroup: 20,
        ..Limits::default()
    };
    let bot = Bot::new(token.expose()).set_api_url(url).throttle(limits);
    let me = bot
        .get_me()
        .await
        .map_err(|err| get_me_failure(&err, &app.config().telegram.api_url, token))?;
    tracing::info!(bot = %me.user.username.clone().unwrap_or_default(), "admin bot connected");
    bot.set_my_commands(Command::bot_commands())
        .await
        .context("cannot register the command list (setMyCommands)")?;

    let ctx = Arc::new(Ctx {
        app: app.clone(),
        texts,
        operators,
        idle: app.config().telegram.dialogue_idle,
        strangers,
        latest: monitor.as_ref().map(|link| link.latest.clone()),
    });
    let mut monitor = monitor;
    let usage_forwarder = monitor
        .as_mut()
        .and_then(|link| link.usage.take())
        .map(|reports| tokio::spawn(usage::forward(bot.clone(), ctx.clone(), reports)));
    let forwarder =
        monitor.map(|link| tokio::spawn(alerts::forward(bot.clone(), ctx.clone(), link.reports)));
    let storage = DialogueStorage::new(fleet::dialogues(&app));

    let mut dispatcher = Dispatcher::builder(bot.clone(), schema())
        .dependencies(dptree::deps![ctx.clone(), storage.clone()])
        .default_handler(|_| async {})
        .build();
    let token = dispatcher.shutdown_token();
    abandon_provisioning(&bot, &ctx, &storage).await;
    let sweeper = tokio::spawn(sweep_idle(bot.clone(), ctx.clone(), storage.clone()));
    // Only the serving admin takes over an unfinished rollout.
    let adopter = forwarder
        .is_some()
        .then(|| tokio::spawn(rollout::adopt_at_start(bot.clone(), ctx.clone())));
    tokio::spawn(async move {
        shutdown.await;
        // The dispatcher may not be running yet; try until it takes the signal.
        loop {
            match token.shutdown() {
                Ok(done) => {
                    done.await;
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    });
    dispatcher.dispatch().await;
    sweeper.abort();
    if let Some(adopter) = adopter {
        adopter.abort();
    }
    if let Some(forwarder) = forwarder {
        forwarder.abort();
    }
    if let Some(forwarder) = usage_forwarder {
        forwarder.abort();
    }
    Ok(())
}

/// Why the admin bot's `getMe` at start failed, told apart: the Bot API said
/// no (the token is wrong: its own description, and @BotFather), or it could
/// not be reached (the network: the URL and the cause, never the token).
fn get_me_failure(
    err: &teloxide::RequestError,
    api_url: &str,
    token: &crate::tenant::Secret<String>,
) -> anyhow::Error {
    use teloxide::{ApiError, RequestError};
    let message = match err {
        RequestError::Api(api_error) => {
            let description = match api_error {
                ApiError::Unknown(description) => description.clone(),
                known => known.to_string(),
            };
            format!(
                "the Bot API at {api_url} refused the admin bot's token (MTP_TELEGRAM_TOKEN): \"{description}\"; check the token with @BotFather"
            )
        }
        RequestError::Network(cause) => {
            // The error's own text holds the request URL (teloxide hides the
            // token in it); its causes say what went wrong.
            let mut causes = Vec::new();
            let mut source = std::error::Error::source(cause.as_ref());
            while let Some(next) = source {
                causes.push(next.to_string());
                source = next.source();
            }
            if causes.is_empty() {
                causes.push(if cause.is_timeout() {
                    "timed out".to_string()
                } else {
                    "no answer".to_string()
                });
            }
            format!(
                "cannot reach the Telegram Bot API at {api_url} ({}); the admin bot's token was not checked. Check the network, a proxy (HTTPS_PROXY) and telegram.apiUrl / MTP_TELEGRAM_API_URL",
                causes.join(": ")
            )
        }
        RequestError::RetryAfter(seconds) => format!(
            "the Bot API at {api_url} asks to wait {} s (flood control); start again after that",
            seconds.seconds()
        ),
        RequestError::InvalidJson { .. } => format!(
            "the answer from {api_url} is not a Bot API answer; check telegram.apiUrl / MTP_TELEGRAM_API_URL"
        ),
        other => format!("the Bot API at {api_url} failed on getMe: {other}"),
    };
    anyhow::anyhow!(fleet::redact(&message, std::slice::from_ref(token)))
}

/// The handler tree: the operator filter first, then the stray-token filter,
/// then commands, dialogue steps and buttons; everyone else gets one polite
/// refusal.
pub fn schema() -> UpdateHandler<Box<dyn std::error::Error + Send + Sync + 'static>> {
    let messages = Update::filter_message()
        .enter_dialogue::<Message, DialogueStorage, State>()
        .branch(commands::handler())
        .endpoint(on_message);
    let callbacks = Update::filter_callback_query()
        .enter_dialogue::<CallbackQuery, DialogueStorage, State>()
        .endpoint(on_callback);
    let is_operator = |update: Update, ctx: Arc<Ctx>| ctx.is_operator(update.from());
    dptree::entry()
        .branch(
            dptree::filter(is_operator)
                // Before anything reads the text: a pasted token is deleted, never taken.
                .branch(dptree::filter_async(pasted::stray_token).endpoint(pasted::delete))
                .branch(messages)
                .branch(callbacks),
        )
        // Only non-operators: an operator's update that no branch takes (an
        // edited message, say) is ignored, not refused and audited as a stranger's.
        .branch(
            dptree::filter(move |update: Update, ctx: Arc<Ctx>| !is_operator(update, ctx))
                .endpoint(refuse),
        )
}

async fn refuse(bot: Tg, update: Update, ctx: Arc<Ctx>) -> HandlerResult {
    let Some(user) = update.from() else {
        return Ok(());
    };
    let user_id = user.id.0;
    let (private, query) = match &update.kind {
        teloxide::types::UpdateKind::Message(msg) => (msg.chat.is_private(), None),
        teloxide::types::UpdateKind::CallbackQuery(q) => (true, Some(q.id.clone())),
        _ => (false, None),
    };
    // Judged before anything is written or sent: the ration bounds the cost.
    let verdict = ctx.strangers.judge(user_id, private);
    if verdict.unrecorded > 0 {
        record_unrecorded(&ctx, verdict.unrecorded).await;
    }
    if verdict.record {
        let app = ctx.app.clone();
        let _ = tokio::task::spawn_blocking(move || {
            fleet::record_refusal(&app, &Actor::Telegram(user_id), "bot: not an operator");
        })
        .await;
    }
    // A pressed button spins until answered; answering writes nothing.
    if let Some(query) = query {
        bot.answer_callback_query(query).await?;
    }
    if verdict.reply {
        bot.send_message(UserId(user_id), ctx.texts.plain("common.refused"))
            .await?;
    }
    Ok(())
}

/// One audit entry for the strangers' updates that got none of their own.
async fn record_unrecorded(ctx: &Ctx, count: u64) {
    let app = ctx.app.clone();
    let _ = tokio::task::spawn_blocking(move || {
        fleet::record_refusal(
            &app,
            &Actor::System("bot"),
            &format!("bot: {count} more updates from non-operators, not recorded one by one"),
        );
    })
    .await;
}

async fn on_message(bot: Tg, msg: Message, dialogue: Dlg, ctx: Arc<Ctx>) -> HandlerResult {
    let state = dialogue.get().await?.unwrap_or_default();
    match state {
        State::Idle => {
            if msg.chat.is_private() {
                send(
                    &bot,
                    msg.chat.id,
                    ctx.texts.plain("common.not_a_command"),
                    None,
                )
                .await?;
            }
        }
        State::Unreadable => {
            dialogue.exit().await?;
            send(&bot, msg.chat.id, ctx.texts.plain("common.reset"), None).await?;
        }
        State::NewClient(draft) => {
            if expired(&ctx, draft.touched_at) && draft.step != state::Step::Provisioning {
                dialogue.exit().await?;
                return say(&bot, msg.chat.id, expired_text(&ctx)).await;
            }
            newclient::on_message(&bot, &msg, &dialogue, &ctx, draft).await?;
        }
        State::ConfirmPurge {
            tenant,
            touched_at,
            by,
            stamp,
        } => {
            let Some(actor) = confirmer(&bot, &msg, &dialogue, &ctx, by, touched_at).await? else {
                return Ok(());
            };
            clients::confirm_purge(
                &bot,
                msg.chat.id,
                &ctx,
                &actor,
                &tenant,
                &stamp,
                msg.text().unwrap_or_default(),
            )
            .await?;
        }
        State::ConfirmRestore {
            tenant,
            backup,
            replace,
            touched_at,
            by,
        } => {
            let Some(actor) = confirmer(&bot, &msg, &dialogue, &ctx, by, touched_at).await? else {
                return Ok(());
            };
            let asked = backups::Asked {
                tenant: &tenant,
                backup: &backup,
                replace,
            };
            backups::confirm_restore(
                &bot,
                msg.chat.id,
                &ctx,
                &actor,
                &asked,
                msg.text().unwrap_or_default(),
            )
            .await?;
        }
    }
    Ok(())
}

/// A typed confirmation (of a purge, of a restore) counts only from the
/// operator who asked (in the ops group others write too; theirs stays
/// pending) and before the dialogue's idle time ran out. The actor to act as,
/// or `None` when the answer was given here.
async fn confirmer(
    bot: &Tg,
    msg: &Message,
    dialogue: &Dlg,
    ctx: &Ctx,
    by: u64,
    touched_at: i64,
) -> Result<Option<Actor>, Box<dyn std::error::Error + Send + Sync>> {
    if msg.from.as_ref().map(|user| user.id.0) != Some(by) {
        say(bot, msg.chat.id, ctx.texts.plain("clients.purge_not_yours")).await?;
        return Ok(None);
    }
    dialogue.exit().await?;
    if expired(ctx, touched_at) {
        say(bot, msg.chat.id, ctx.texts.plain("common.cancelled")).await?;
        return Ok(None);
    }
    Ok(Some(actor_of(msg.from.as_ref())))
}

async fn on_callback(bot: Tg, q: CallbackQuery, dialogue: Dlg, ctx: Arc<Ctx>) -> HandlerResult {
    bot.answer_callback_query(q.id.clone()).await?;
    let (Some(data), Some(message)) = (q.data.as_deref(), q.message.as_ref()) else {
        return Ok(());
    };
    let chat = message.chat().id;
    let actor = Actor::Telegram(q.from.id.0);
    if let Some(rest) = data.strip_prefix("nc:") {
        let state = dialogue.get().await?.unwrap_or_default();
        let State::NewClient(draft) = state else {
            return say(&bot, chat, ctx.texts.plain("common.stale_button")).await;
        };
        if expired(&ctx, draft.touched_at) && draft.step != state::Step::Provisioning {
            dialogue.exit().await?;
            return say(&bot, chat, expired_text(&ctx)).await;
        }
        return newclient::on_button(
            &bot,
            chat,
            message.id(),
            &dialogue,
            &ctx,
            draft,
            rest,
            &actor,
        )
        .await;
    }
    if let Some(rest) = data.strip_prefix("sk:") {
        if !ctx.trusted_chat(message.chat()) {
            return Ok(());
        }
        return match skills::parse(rest) {
            Some(pressed) => {
                skills::on_button(&bot, chat, message.id(), &ctx, &actor, pressed).await
            }
            None => say(&bot, chat, ctx.texts.plain("common.bad_button")).await,
        };
    }
    match clients::parse_button(data) {
        Ok(pressed) => {
            if !ctx.trusted_chat(message.chat()) {
                return Ok(());
            }
            clients::on_button(&bot, chat, &dialogue, &ctx, q.from.id.0, pressed).await
        }
        Err(clients::BadButton::Outdated) => {
            say(&bot, chat, ctx.texts.plain("common.stale_button")).await
        }
        Err(clients::BadButton::Malformed) => {
            say(&bot, chat, ctx.texts.plain("common.bad_button")).await
        }
    }
}

/// A dialogue stored at the provisioning step cannot be in flight in a process
/// that just started: the admin stopped during a create (which reconcile has
/// finished or undone). Reset it and say so, rather than answer "busy" forever.
async fn abandon_provisioning(bot: &Tg, ctx: &Ctx, storage: &DialogueStorage) {
    for (chat, state) in storage.all().await {
        let stuck =
            matches!(state, State::NewClient(draft) if draft.step == state::Step::Provisioning);
        if stuck && storage.forget(chat).await {
            let _ = send(bot, chat, ctx.texts.plain("common.reset"), None).await;
        }
    }
}

/// Expires dialogues nobody touched for the idle time, telling the operator.
async fn sweep_idle(bot: Tg, ctx: Arc<Ctx>, storage: Arc<DialogueStorage>) {
    let mut interval = tokio::time::interval(SWEEP_EVERY.min(ctx.idle));
    loop {
        interval.tick().await;
        let unrecorded = ctx.strangers.take_unrecorded();
        if unrecorded > 0 {
            record_unrecorded(&ctx, unrecorded).await;
        }
        for (chat, state) in storage.all().await {
            let touched_at = match state {
                State::NewClient(draft) if draft.step != state::Step::Provisioning => {
                    draft.touched_at
                }
                State::ConfirmPurge { touched_at, .. }
                | State::ConfirmRestore { touched_at, .. } => touched_at,
                _ => continue,
            };
            if expired(&ctx, touched_at) && storage.forget(chat).await {
                let _ = send(&bot, chat, expired_text(&ctx), None).await;
            }
        }
    }
}

pub(crate) fn expired(ctx: &Ctx, touched_at: i64) -> bool {
    fleet::now() - touched_at >= i64::try_from(ctx.idle.as_secs()).unwrap_or(i64::MAX)
}

/// Says how long the idle time is: it is configurable (`telegram.dialogueIdle`).
fn expired_text(ctx: &Ctx) -> String {
    ctx.texts.get(
        "common.expired",
        &[("idle", &humantime::format_duration(ctx.idle).to_string())],
    )
}

/// "Usage: …", for a command whose arguments do not fit `usage`.
fn usage_text(ctx: &Ctx, usage: &str) -> String {
    ctx.texts.get("common.usage", &[("usage", usage)])
}

fn actor_of(user: Option<&teloxide::types::User>) -> Actor {
    Actor::Telegram(user.map_or(0, |user| user.id.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Building the dispatcher runs dptree's type check: a handler asking for a
    /// dependency nobody provides fails here, not at the operator's first message.
    #[tokio::test]
    async fn the_handler_tree_type_checks() {
        let bot = Bot::new("1:test").throttle(Limits::default());
        let dir = tempfile::tempdir().unwrap();
        let config =
            crate::config::AdminConfig::from_json5(&format!("{{ dataDir: {:?} }}", dir.path()))
                .unwrap();
        // No Docker needed: building the dispatcher calls nothing.
        let app = App::open_without_docker(config).unwrap();
        let dialogues = crate::fleet::dialogues(&app);
        let ctx = Arc::new(Ctx {
            app,
            texts: Texts::load().unwrap(),
            operators: vec![1],
            idle: Duration::from_secs(60),
            strangers: Arc::new(Strangers::new()),
            latest: None,
        });
        let _ = Dispatcher::builder(bot, schema())
            .dependencies(dptree::deps![ctx, DialogueStorage::new(dialogues)])
            .build();
    }
}
