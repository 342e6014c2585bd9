//! Renders the monitor's reports (alerts, digests) for the ops group, with
//! Restart / Logs / Mute buttons; `/health`, `/mute` and `/unmute`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use teloxide::prelude::*;
use teloxide::types::InlineKeyboardMarkup;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::bot::clients::chain_text;
use crate::bot::send::split_html;
use crate::bot::texts::escape;
use crate::bot::{Ctx, HandlerResult, MAX_MESSAGE, Tg, say, send};
use crate::fleet::health::TenantHealth;
use crate::fleet::{self, Actor};
use crate::monitor::{Alert, AlertKind, Digest, Report};
use crate::tenant::{CellState, Check, TenantId};

/// Telegram lets a bot send about 20 messages a minute to one group; beyond
/// that it answers 429, and teloxide's throttle then holds every request of
/// the bot (operators' replies too) for the wait. Alerts keep under that,
/// leaving room for replies to commands typed in the group.
const CHAT_PER_MINUTE: usize = 15;
/// Alerts sent one by one to a chat per minute (a crash and its "back" are
/// two); the rest of a burst is held and sent as one summary.
const SINGLE_PER_MINUTE: usize = 10;
/// A summary waits this long for the rest of its burst.
const GATHER: Duration = Duration::from_secs(2);
const MINUTE: Duration = Duration::from_secs(60);

/// Sends every report to the ops group (or, without one, to each operator),
/// within each chat's budget: the first alerts of a burst one by one, the
/// rest as one summary.
pub async fn forward(bot: Tg, ctx: Arc<Ctx>, mut reports: mpsc::Receiver<Report>) {
    let targets: Vec<ChatId> = match ctx.app.config().telegram.ops_chat_id {
        Some(chat) => vec![ChatId(chat)],
        None => ctx.operators.iter().map(|id| ChatId(*id as i64)).collect(),
    };
    let mut outboxes: Vec<Outbox> = targets.into_iter().map(Outbox::new).collect();
    loop {
        let due = outboxes.iter().filter_map(Outbox::due).min();
        let report = tokio::select! {
            report = reports.recv() => match report {
                Some(report) => Some(report),
                None => return,
            },
            _ = sleep_until(due), if due.is_some() => None,
        };
        for outbox in &mut outboxes {
            if let Some(report) = &report {
                outbox.offer(&bot, &ctx, report).await;
            }
            outbox.flush_due(&bot, &ctx).await;
        }
    }
}

async fn sleep_until(due: Option<Instant>) {
    if let Some(due) = due {
        tokio::time::sleep_until(due).await;
    }
}

/// One chat's share of the alerts: what went out in the last minute and
/// what is held for the next summary.
struct Outbox {
    chat: ChatId,
    /// When each message of the last minute went, and whether it was a single alert.
    sent: VecDeque<(Instant, bool)>,
    held: Vec<Alert>,
    held_since: Option<Instant>,
}

impl Outbox {
    fn new(chat: ChatId) -> Outbox {
        Outbox {
            chat,
            sent: VecDeque::new(),
            held: Vec::new(),
            held_since: None,
        }
    }

    fn prune(&mut self, now: Instant) {
        while self
            .sent
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) >= MINUTE)
        {
            self.sent.pop_front();
        }
    }

    /// When the held alerts may go as a summary: after the gather time, and
    /// once the minute has room.
    fn due(&self) -> Option<Instant> {
        let since = self.held_since?;
        let room = match self.sent.len() >= CHAT_PER_MINUTE {
            true => self.sent.front().map(|(at, _)| *at + MINUTE),
            false => None,
        };
        Some(room.map_or(since + GATHER, |room| room.max(since + GATHER)))
    }

    async fn offer(&mut self, bot: &Tg, ctx: &Ctx, report: &Report) {
        let now = Instant::now();
        self.prune(now);
        let alert = match report {
            // Once a day: always sent.
            Report::Digest(digest) => {
                self.deliver(bot, render_digest(ctx, digest), None, false)
                    .await;
                return;
            }
            // Rare (at most one run a day, one staleness per tenant): always sent.
            Report::BackupsFailed(failures) => {
                self.deliver(bot, render_backups_failed(ctx, failures), None, false)
                    .await;
                return;
            }
            Report::BackupStale {
                tenant,
                last,
                since,
            } => {
                let text = render_backup_stale(ctx, tenant, last.as_ref(), *since);
                self.deliver(bot, text, None, false).await;
                return;
            }
            // Once a day at most, new findings only: always sent.
            Report::Doctor(findings) => {
                let text = crate::bot::doctor::render_new(ctx, findings);
                self.deliver(bot, text, None, false).await;
                return;
            }
            Report::Alert(alert) => alert,
        };
        let singles = self.sent.iter().filter(|(_, single)| *single).count();
        let alone = self.held.is_empty()
            && singles < SINGLE_PER_MINUTE
            && self.sent.len() < CHAT_PER_MINUTE;
        if alone {
            let markup = alert_buttons(ctx, &alert.tenant);
            self.deliver(bot, render_alert(ctx, alert), Some(markup), true)
                .await;
            return;
        }
        self.held.push(alert.clone());
        self.held_since.get_or_insert(now);
    }

    async fn flush_due(&mut self, bot: &Tg, ctx: &Ctx) {
        let now = Instant::now();
        self.prune(now);
        if self.due().is_none_or(|due| due > now) {
            return;
        }
        let held = std::mem::take(&mut self.held);
        self.held_since = None;
        self.deliver(bot, render_summary(ctx, &held), None, false)
            .await;
    }

    async fn deliver(
        &mut self,
        bot: &Tg,
        text: String,
        markup: Option<InlineKeyboardMarkup>,
        single: bool,
    ) {
        let parts = split_html(&text, MAX_MESSAGE).len();
        let now = Instant::now();
        self.sent
            .extend(std::iter::repeat_n((now, single), parts.max(1)));
        if let Err(err) = send(bot, self.chat, text, markup).await {
            tracing::error!(cause = %err, chat = self.chat.0, "cannot deliver an alert");
        }
    }
}

/// Held alerts in one message: per kind of alert, the tenants it concerns.
fn render_summary(ctx: &Ctx, alerts: &[Alert]) -> String {
    let mut groups: Vec<(String, Vec<&str>)> = Vec::new();
    for alert in alerts {
        let what = format!("{} {}", alert.check.as_str(), alert.kind.as_str());
        let id = alert.tenant.as_str();
        match groups.iter_mut().find(|(w, _)| *w == what) {
            Some((_, ids)) if !ids.contains(&id) => ids.push(id),
            Some(_) => {}
            None => groups.push((what, vec![id])),
        }
    }
    let lines: Vec<String> = groups
        .iter()
        .map(|(what, ids)| {
            ctx.texts.get(
                "monitor.summary_line",
                &[("what", what), ("ids", &ids.join(", "))],
            )
        })
        .collect();
    ctx.texts.get_html(
        "monitor.summary",
        &[
            ("count", &alerts.len().to_string()),
            ("lines", &lines.join("\n")),
        ],
    )
}

/// Restart, Logs and Mute 1h, stamped with the tenant's generation (see `clients`).
fn alert_buttons(ctx: &Ctx, tenant: &TenantId) -> InlineKeyboardMarkup {
    crate::bot::clients::alert_buttons(ctx, tenant)
}

/// The text of one alert: tenant, check, since when, last error.
#[must_use]
pub fn render_alert(ctx: &Ctx, alert: &Alert) -> String {
    let id = alert.tenant.as_str();
    let check = alert.check.as_str();
    let error = alert.last_error.clone().unwrap_or_else(|| "-".to_string());
    let texts = &ctx.texts;
    match &alert.kind {
        AlertKind::Down if alert.check == Check::Memory => texts.get(
            "monitor.alert_memory",
            &[
                ("id", id),
                ("since", &clock(alert.since)),
                ("error", &error),
            ],
        ),
        AlertKind::Recovered { down_for } if alert.check == Check::Memory => texts.get(
            "monitor.alert_memory_ok",
            &[("id", id), ("duration", &duration(*down_for))],
        ),
        AlertKind::Down => texts.get(
            "monitor.alert_down",
            &[
                ("id", id),
                ("check", check),
                ("since", &clock(alert.since)),
                ("error", &error),
            ],
        ),
        AlertKind::Recovered { down_for } => texts.get(
            "monitor.alert_recovered",
            &[
                ("id", id),
                ("check", check),
                ("duration", &duration(*down_for)),
            ],
        ),
        AlertKind::Flapping { transitions } => texts.get(
            "monitor.alert_flapping",
            &[
                ("id", id),
                ("check", check),
                ("count", &transitions.to_string()),
                ("error", &error),
            ],
        ),
        AlertKind::Stable => texts.get("monitor.alert_stable", &[("id", id), ("check", check)]),
        AlertKind::Crashed {
            exit_code,
            oom,
            log_tail,
        } => texts.get(
            "monitor.alert_crashed",
            &[
                ("id", id),
                ("code", &exit_code.to_string()),
                ("oom", &oom_note(ctx, *oom)),
                ("log", &log_text(ctx, log_tail)),
            ],
        ),
        AlertKind::CrashLoop {
            crashes,
            window,
            exit_code,
            oom,
            log_tail,
        } => texts.get(
            "monitor.alert_crash_loop",
            &[
                ("id", id),
                ("crashes", &crashes.to_string()),
                ("window", &duration(*window)),
                ("code", &exit_code.to_string()),
                ("oom", &oom_note(ctx, *oom)),
                ("log", &log_text(ctx, log_tail)),
            ],
        ),
        AlertKind::Back { down_for } => texts.get(
            "monitor.alert_back",
            &[("id", id), ("duration", &duration(*down_for))],
        ),
        AlertKind::OomKilled => texts.get("monitor.alert_oom", &[("id", id), ("error", &error)]),
        AlertKind::Healed => texts.get("monitor.alert_healed", &[("id", id)]),
        AlertKind::HealFailed => texts.get(
            "monitor.alert_heal_failed",
            &[("id", id), ("error", &error)],
        ),
        AlertKind::Missing { made_again: true } => {
            texts.get("monitor.alert_missing_made_again", &[("id", id)])
        }
        AlertKind::Missing { made_again: false } => texts.get(
            "monitor.alert_missing_failed",
            &[("id", id), ("error", &error)],
        ),
    }
}

/// Said after the exit code when the OOM killer ended the cell.
fn oom_note(ctx: &Ctx, oom: bool) -> String {
    if oom {
        ctx.texts.plain("monitor.oom_note")
    } else {
        String::new()
    }
}

fn log_text(ctx: &Ctx, log_tail: &[String]) -> String {
    if log_tail.is_empty() {
        ctx.texts.plain("monitor.no_log")
    } else {
        log_tail.join("\n")
    }
}

fn render_digest(ctx: &Ctx, digest: &Digest) -> String {
    let down_list: Vec<String> = digest.down.iter().map(TenantId::to_string).collect();
    let restarts: Vec<String> = digest
        .restarts
        .iter()
        .map(|(id, n)| format!("{id} ×{n}"))
        .collect();
    let costs: Vec<String> = digest
        .top_costs
        .iter()
        .map(|(id, cost)| {
            ctx.texts.get(
                "monitor.digest_cost_line",
                &[("id", id.as_str()), ("cost", &cost.to_string())],
            )
        })
        .collect();
    let down_list = joined_or(&down_list, ", ", "-");
    let restarts = joined_or(&restarts, ", ", "0");
    let costs = joined_or(&costs, "\n", &ctx.texts.plain("monitor.digest_no_costs"));
    ctx.texts.get(
        "monitor.digest",
        &[
            ("cost_day", &digest.cost_day.to_string()),
            ("fleet_cost", &digest.fleet_cost.to_string()),
            ("costs", &costs),
            ("tenants", &digest.tenants.to_string()),
            ("up", &digest.up.to_string()),
            ("down", &digest.down.len().to_string()),
            ("stopped", &digest.stopped.to_string()),
            ("down_list", &down_list),
            ("restarts", &restarts),
            ("alerts", &digest.alerts.to_string()),
        ],
    )
}

/// `items` joined by `separator`, or `none` when there are none.
fn joined_or(items: &[String], separator: &str, none: &str) -> String {
    if items.is_empty() {
        none.to_string()
    } else {
        items.join(separator)
    }
}

/// `/health`: the fleet as of the last sweep, problems first.
pub async fn health(bot: &Tg, chat: ChatId, ctx: &Ctx) -> HandlerResult {
    let Some(latest) = &ctx.latest else {
        return say(bot, chat, ctx.texts.plain("monitor.health_off")).await;
    };
    let sweep = latest.borrow().clone();
    let Some(sweep) = sweep else {
        let interval = format!("{}s", ctx.app.config().monitor.interval.as_secs());
        return say(
            bot,
            chat,
            ctx.texts
                .get("monitor.health_none", &[("interval", &interval)]),
        )
        .await;
    };
    let mut rows: Vec<(u8, String)> = sweep
        .tenants
        .iter()
        .map(|health| line(ctx, health))
        .collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut text = ctx.texts.get(
        "monitor.health_header",
        &[
            ("at", &clock(sweep.at)),
            ("age", &(fleet::now() - sweep.at).to_string()),
            ("took", &sweep.duration.as_millis().to_string()),
        ],
    );
    for (_, row) in rows {
        text.push('\n');
        text.push_str(&row);
    }
    say(bot, chat, text).await
}

/// One line of `/health` and its rank (problems first).
fn line(ctx: &Ctx, health: &TenantHealth) -> (u8, String) {
    let texts = &ctx.texts;
    // Each part is rendered HTML (its values escaped); the line joins them as they are.
    let (rank, emoji, summary) = match health.record.state {
        CellState::Stopped => (3, "⏹", texts.plain("monitor.health_stopped")),
        CellState::Sleeping => (4, "💤", texts.plain("monitor.health_sleeping")),
        CellState::Creating => (2, "⏳", texts.plain("monitor.health_creating")),
        CellState::Failed => (0, "🔴", texts.plain("monitor.health_failed")),
        CellState::Removing => (2, "⏳", texts.plain("monitor.health_removing")),
        CellState::Running if !health.container_up() => {
            (0, "🔴", texts.plain("monitor.health_container_down"))
        }
        CellState::Running => {
            let mut problems = Vec::new();
            for (name, probe) in [("healthz", &health.healthz), ("rpc", &health.rpc_health)] {
                if let Some(probe) = probe.as_ref().filter(|p| !p.ok) {
                    problems.push(texts.get(
                        "monitor.health_probe",
                        &[
                            ("check", name),
                            ("error", probe.error.as_deref().unwrap_or_default()),
                        ],
                    ));
                }
            }
            if let Some(Ok(channel)) = &health.channel
                && let Some(error) = &channel.last_error
            {
                problems.push(texts.get("monitor.health_telegram", &[("error", error)]));
            }
            if let Some((used, limit)) = health.memory
                && limit > 0
                && used * 10 >= limit * 9
            {
                problems.push(texts.get(
                    "monitor.health_memory",
                    &[
                        ("used", &(used >> 20).to_string()),
                        ("limit", &(limit >> 20).to_string()),
                    ],
                ));
            }
            if problems.is_empty() {
                let latency = health
                    .healthz
                    .as_ref()
                    .map_or(0, |p| p.latency.as_millis())
                    .to_string();
                let summary = match health.memory {
                    Some((used, _)) => texts.get(
                        "monitor.health_ok_memory",
                        &[("latency", &latency), ("memory", &(used >> 20).to_string())],
                    ),
                    None => texts.get("monitor.health_ok", &[("latency", &latency)]),
                };
                (4, "🟢", summary)
            } else {
                (
                    1,
                    "🟡",
                    problems.join(&texts.plain("monitor.health_separator")),
                )
            }
        }
    };
    (
        rank,
        texts.get_html(
            "monitor.health_line",
            &[
                ("emoji", emoji),
                ("id", &escape(health.record.id.as_str())),
                ("summary", &summary),
            ],
        ),
    )
}

/// `/mute <id> <duration>` and the Mute 1h button.
pub async fn mute(
    bot: &Tg,
    chat: ChatId,
    ctx: &Ctx,
    actor: &Actor,
    id: &TenantId,
    duration: std::time::Duration,
) -> HandlerResult {
    let text = match fleet::mute(&ctx.app, actor, id, Some(duration)) {
        Ok(until) => {
            let until = until.map(clock).unwrap_or_default();
            ctx.texts
                .get("monitor.muted", &[("id", id.as_str()), ("until", &until)])
        }
        Err(err) => chain_text(ctx, "/mute", &err),
    };
    say(bot, chat, text).await
}

pub async fn unmute(
    bot: &Tg,
    chat: ChatId,
    ctx: &Ctx,
    actor: &Actor,
    id: &TenantId,
) -> HandlerResult {
    let text = match fleet::mute(&ctx.app, actor, id, None) {
        Ok(_) => ctx.texts.get("monitor.unmuted", &[("id", id.as_str())]),
        Err(err) => chain_text(ctx, "/unmute", &err),
    };
    say(bot, chat, text).await
}

fn clock(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

fn duration(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m {}s", s / 60, s % 60),
        s => format!("{}h {}m", s / 3600, (s % 3600) / 60),
    }
}

fn render_backups_failed(ctx: &Ctx, failures: &[crate::monitor::backups::BackupFailure]) -> String {
    let lines: Vec<String> = failures
        .iter()
        .map(|failure| {
            ctx.texts.get(
                "monitor.backup_failed_line",
                &[
                    (
                        "who",
                        &failure.tenant.as_ref().map_or_else(
                            || ctx.texts.plain("monitor.backup_admin_store"),
                            ToString::to_string,
                        ),
                    ),
                    ("error", &failure.reason),
                ],
            )
        })
        .collect();
    ctx.texts.get_html(
        "monitor.backup_failed",
        &[
            ("count", &failures.len().to_string()),
            ("lines", &lines.join("\n")),
        ],
    )
}

fn render_backup_stale(
    ctx: &Ctx,
    tenant: &TenantId,
    last: Option<&(String, i64)>,
    since: i64,
) -> String {
    let age = crate::bot::clients::age_text(&ctx.texts, fleet::now() - since);
    match last {
        Some((id, _)) => ctx.texts.get(
            "monitor.backup_stale",
            &[("id", tenant.as_str()), ("backup", id), ("age", &age)],
        ),
        None => ctx.texts.get(
            "monitor.backup_none",
            &[("id", tenant.as_str()), ("age", &age)],
        ),
    }
}
