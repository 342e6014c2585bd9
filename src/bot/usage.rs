//! `/usage` (a tenant's figures with a cost-per-day chart, the fleet ranked by
//! cost, or a tenant's rows as CSV), `/budget`, `/resume`, and the usage loop's
//! budget alerts rendered for the ops group.

use std::sync::Arc;

use chrono::Utc;
use teloxide::prelude::*;
use teloxide::types::InputFile;
use tokio::sync::mpsc;

use crate::bot::texts::escape;
use crate::bot::{Ctx, HandlerResult, Tg, say, send, usage_text};
use crate::fleet::{
    self, Actor, BudgetAlert, BudgetOutcome, BudgetStatus, Period, Resumed, Summary, UnknownTenant,
};
use crate::tenant::{BudgetAction, TenantId, Usd};
use crate::usage::period::PeriodSpec;
use crate::usage::{self, Report, report};

/// The usage line of `/help`-style errors.
const USAGE_USAGE: &str =
    "/usage [id] [7d|30d|this-month|last-month|YYYY-MM|YYYY-MM-DD..YYYY-MM-DD] [csv]";
const BUDGET_USAGE: &str = "/budget <id> [amount|none] [notify|stop-channel|stop-cell]";

/// Sends every budget alert to the ops group (or, without one, to each operator).
pub async fn forward(bot: Tg, ctx: Arc<Ctx>, mut reports: mpsc::Receiver<Report>) {
    while let Some(report) = reports.recv().await {
        let text = match &report {
            Report::Budget(alert) => render_alert(&ctx, alert),
        };
        let targets: Vec<ChatId> = match ctx.app.config().telegram.ops_chat_id {
            Some(chat) => vec![ChatId(chat)],
            None => ctx.operators.iter().map(|id| ChatId(*id as i64)).collect(),
        };
        for chat in targets {
            if let Err(err) = send(&bot, chat, text.clone(), None).await {
                tracing::error!(cause = %err, chat = chat.0, "cannot deliver a budget alert");
            }
        }
    }
}

/// The text of a budget alert: tenant, spend, budget, threshold, and what was done.
#[must_use]
pub fn render_alert(ctx: &Ctx, alert: &BudgetAlert) -> String {
    let id = alert.tenant.as_str();
    let mut text = ctx.texts.get(
        "usage.alert",
        &[
            ("id", id),
            ("spend", &money(alert.spend)),
            ("budget", &money(alert.budget)),
            ("month", &alert.month),
            ("percent", &percent(alert.spend, alert.budget)),
            ("threshold", &alert.threshold.to_string()),
        ],
    );
    match &alert.outcome {
        BudgetOutcome::Notified => {}
        BudgetOutcome::Suspended(how) => {
            text.push('\n');
            text.push_str(&ctx.texts.get(
                "usage.alert_suspended",
                &[("how", &action_text(ctx, *how)), ("id", id)],
            ));
        }
        BudgetOutcome::SuspendFailed { how, error } => {
            text.push('\n');
            text.push_str(&ctx.texts.get(
                "usage.alert_suspend_failed",
                &[("how", &action_text(ctx, *how)), ("error", error)],
            ));
        }
    }
    text
}

/// `/usage [id] [period] [csv]`.
pub async fn usage_command(bot: &Tg, chat: ChatId, ctx: &Ctx, arg: &str) -> HandlerResult {
    let words: Vec<&str> = arg.split_whitespace().collect();
    let Some(first) = words.first() else {
        return fleet_usage(bot, chat, ctx, PeriodSpec::ThisMonth).await;
    };
    // `/usage csv [period]`: every tenant's rows (unless a tenant is named "csv").
    let csv_tenant = match fleet::exists(&ctx.app, &"csv".parse()?) {
        Ok(exists) => exists,
        Err(err) => return say(bot, chat, failure_text(ctx, "/usage", &err)).await,
    };
    if *first == "csv" && words.len() <= 2 && !csv_tenant {
        let spec = match words
            .get(1)
            .map(|word| word.parse::<PeriodSpec>())
            .transpose()
        {
            Ok(spec) => spec.unwrap_or_default(),
            Err(err) => return bad_period(bot, chat, ctx, &err).await,
        };
        return fleet_csv(bot, chat, ctx, spec).await;
    }
    let mut spec = None;
    let mut csv = false;
    for word in &words[1..] {
        match *word {
            "csv" if !csv => csv = true,
            word if spec.is_none() => match word.parse::<PeriodSpec>() {
                Ok(parsed) => spec = Some(parsed),
                Err(err) => return bad_period(bot, chat, ctx, &err).await,
            },
            _ => {
                return say(bot, chat, usage_text(ctx, USAGE_USAGE)).await;
            }
        }
    }
    let as_period = first.parse::<PeriodSpec>();
    let id = match first.parse::<TenantId>() {
        Ok(id) => id,
        Err(_) if words.len() == 1 && as_period.is_ok() => {
            return fleet_usage(bot, chat, ctx, as_period.unwrap_or_default()).await;
        }
        Err(err) => {
            let reason = match as_period {
                Err(period_err) => ctx.texts.get(
                    "common.not_a_period",
                    &[
                        ("reason", &err.to_string()),
                        ("period_error", &period_err.to_string()),
                    ],
                ),
                Ok(_) => escape(&err.to_string()),
            };
            // `reason` is rendered HTML already.
            let text = ctx.texts.get_html(
                "common.bad_id",
                &[("input", &escape(first)), ("reason", &reason)],
            );
            return say(bot, chat, text).await;
        }
    };
    let spec = spec.unwrap_or_default();
    let period = spec.resolve(fleet::today(&ctx.app, Utc::now()));
    let summary = match fleet::tenant_summary(&ctx.app, &id, period) {
        Ok(summary) => summary,
        // A period-shaped word that is no tenant asks for the whole fleet.
        Err(err)
            if err.downcast_ref::<UnknownTenant>().is_some()
                && words.len() == 1
                && as_period.is_ok() =>
        {
            return fleet_usage(bot, chat, ctx, as_period.unwrap_or_default()).await;
        }
        Err(err) => return say(bot, chat, failure_text(ctx, "/usage", &err)).await,
    };
    if csv {
        let caption = ctx.texts.get(
            "usage.csv_caption",
            &[
                ("id", id.as_str()),
                ("period", &period_text(&spec, &summary.period)),
            ],
        );
        let file = InputFile::memory(report::csv(&summary).into_bytes())
            .file_name(format!("usage-{id}-{spec}.csv"));
        bot.send_document(chat, file).caption(caption).await?;
        return Ok(());
    }
    let budget = fleet::budget_status(&ctx.app, &id, Utc::now()).ok();
    send(
        bot,
        chat,
        render_summary(ctx, &spec, &summary, budget.as_ref()),
        None,
    )
    .await?;
    // Drawn into the PNG, not sent as HTML: the values go in as they are.
    let title = ctx.texts.get_html(
        "usage.chart_title",
        &[
            ("id", id.as_str()),
            ("period", &summary.period.to_string()),
            ("zone", ctx.app.config().usage.time_zone.name()),
        ],
    );
    let days: Vec<_> = summary
        .daily
        .iter()
        .map(|(day, figures)| (*day, figures.cost.to_f64()))
        .collect();
    match usage::chart::cost_per_day(&title, &days) {
        Ok(png) => {
            let caption = ctx.texts.get(
                "usage.chart_caption",
                &[
                    ("id", id.as_str()),
                    ("period", &period_text(&spec, &summary.period)),
                ],
            );
            bot.send_photo(
                chat,
                InputFile::memory(png).file_name(format!("usage-{id}.png")),
            )
            .caption(caption)
            .await?;
        }
        Err(err) => {
            tracing::error!(cause = %format!("{err:#}"), tenant = %id, "cannot draw the usage chart")
        }
    }
    Ok(())
}

fn render_summary(
    ctx: &Ctx,
    spec: &PeriodSpec,
    summary: &Summary,
    budget: Option<&BudgetStatus>,
) -> String {
    let texts = &ctx.texts;
    let id = summary.tenant.as_str();
    let totals = &summary.totals;
    let mut lines = vec![
        texts.get(
            "usage.tenant_header",
            &[
                ("id", id),
                ("period", &period_text(spec, &summary.period)),
                ("zone", ctx.app.config().usage.time_zone.name()),
            ],
        ),
        texts.get(
            "usage.tokens",
            &[
                ("input", &count(totals.input)),
                ("output", &count(totals.output)),
                ("cache_read", &count(totals.cache_read)),
                ("cache_write", &count(totals.cache_write)),
            ],
        ),
        texts.get("usage.cost", &[("cost", &money(totals.cost))]),
    ];
    if summary.models.is_empty() {
        lines.push(texts.plain("usage.no_usage"));
    } else {
        lines.push(texts.plain("usage.models_header"));
        for (model, figures) in &summary.models {
            lines.push(texts.get(
                "usage.model_line",
                &[
                    ("model", model),
                    ("cost", &money(figures.cost)),
                    ("share", &percent(figures.cost, totals.cost)),
                ],
            ));
        }
    }
    let bill = &summary.bill;
    lines.push(texts.get(
        "usage.billable",
        &[
            ("total", &money(bill.total)),
            ("usage", &money(bill.usage)),
            ("markup", &trim_number(bill.markup_percent)),
            ("fee", &money(bill.fee)),
        ],
    ));
    if let Some(status) = budget {
        if let Some(amount) = status.budget.amount {
            lines.push(texts.get(
                "usage.budget_line",
                &[
                    ("spend", &money(status.spend)),
                    ("budget", &money(amount)),
                    ("month", &status.month),
                    ("percent", &percent(status.spend, amount)),
                ],
            ));
        }
        if let Some(suspension) = &status.budget.suspended {
            lines.push(texts.get(
                "usage.suspended_line",
                &[
                    ("since", &clock(ctx, suspension.since)),
                    ("how", &action_text(ctx, suspension.how)),
                    ("id", id),
                ],
            ));
        }
    }
    lines.push(match summary.as_of {
        Some(at) => texts.get("usage.as_of", &[("as_of", &clock(ctx, at))]),
        None => texts.get(
            "usage.never_read",
            &[(
                "interval",
                &humantime::format_duration(ctx.app.config().usage.interval).to_string(),
            )],
        ),
    });
    lines.join("\n")
}

async fn bad_period(
    bot: &Tg,
    chat: ChatId,
    ctx: &Ctx,
    err: &impl std::fmt::Display,
) -> HandlerResult {
    let text = ctx
        .texts
        .get("usage.bad_period", &[("reason", &err.to_string())]);
    say(bot, chat, text).await
}

async fn fleet_csv(bot: &Tg, chat: ChatId, ctx: &Ctx, spec: PeriodSpec) -> HandlerResult {
    let period = spec.resolve(fleet::today(&ctx.app, Utc::now()));
    let summaries = match fleet::tenant_summaries(&ctx.app, period) {
        Ok(found) => found,
        Err(err) => return say(bot, chat, failure_text(ctx, "/usage", &err)).await,
    };
    let caption = ctx.texts.get(
        "usage.csv_caption",
        &[("id", "all"), ("period", &period_text(&spec, &period))],
    );
    let file = InputFile::memory(report::csv_all(&summaries).into_bytes())
        .file_name(format!("usage-all-{spec}.csv"));
    bot.send_document(chat, file).caption(caption).await?;
    Ok(())
}

async fn fleet_usage(bot: &Tg, chat: ChatId, ctx: &Ctx, spec: PeriodSpec) -> HandlerResult {
    let period = spec.resolve(fleet::today(&ctx.app, Utc::now()));
    let fleet = match fleet::fleet_summary(&ctx.app, period) {
        Ok(fleet) => fleet,
        Err(err) => return say(bot, chat, failure_text(ctx, "/usage", &err)).await,
    };
    let texts = &ctx.texts;
    if fleet.tenants.is_empty() {
        return say(bot, chat, texts.plain("usage.fleet_empty")).await;
    }
    let mut lines = vec![texts.get(
        "usage.fleet_header",
        &[
            ("period", &period_text(&spec, &fleet.period)),
            ("zone", ctx.app.config().usage.time_zone.name()),
        ],
    )];
    for (rank, tenant) in fleet.tenants.iter().enumerate() {
        lines.push(texts.get(
            "usage.fleet_line",
            &[
                ("rank", &(rank + 1).to_string()),
                ("id", tenant.tenant.as_str()),
                ("cost", &money(tenant.cost)),
                ("billable", &money(tenant.billable)),
            ],
        ));
    }
    lines.push(texts.get(
        "usage.fleet_total",
        &[
            ("cost", &money(fleet.cost)),
            ("billable", &money(fleet.billable)),
        ],
    ));
    say(bot, chat, lines.join("\n")).await
}

/// `/budget <id>` shows it; `/budget <id> <amount|none> [action]` sets it.
pub async fn budget_command(
    bot: &Tg,
    chat: ChatId,
    ctx: &Ctx,
    actor: &Actor,
    id: &TenantId,
    rest: &[&str],
) -> HandlerResult {
    if rest.len() > 2 {
        return say(bot, chat, usage_text(ctx, BUDGET_USAGE)).await;
    }
    if let Some(word) = rest.first() {
        let amount = match *word {
            "none" => None,
            word => match word.parse::<Usd>() {
                Ok(amount) => Some(amount),
                Err(_) => {
                    return say(
                        bot,
                        chat,
                        ctx.texts.get("usage.bad_amount", &[("input", word)]),
                    )
                    .await;
                }
            },
        };
        let action = match rest.get(1) {
            None => None,
            Some(word) => match BudgetAction::parse(word) {
                Some(action) => Some(action),
                None => {
                    return say(
                        bot,
                        chat,
                        ctx.texts.get("usage.bad_action", &[("input", word)]),
                    )
                    .await;
                }
            },
        };
        if let Err(err) = fleet::set_budget(&ctx.app, actor, id, amount, action) {
            return say(bot, chat, failure_text(ctx, "/budget", &err)).await;
        }
    }
    let status = match fleet::budget_status(&ctx.app, id, Utc::now()) {
        Ok(status) => status,
        Err(err) => return say(bot, chat, failure_text(ctx, "/budget", &err)).await,
    };
    let Some(amount) = status.budget.amount else {
        return say(
            bot,
            chat,
            ctx.texts.get("usage.budget_none", &[("id", id.as_str())]),
        )
        .await;
    };
    let source = if status.budget.set_by_operator {
        "usage.source_operator"
    } else {
        "usage.source_config"
    };
    let notified = notified_text(ctx, &status.notified);
    let text = ctx.texts.get(
        "usage.budget_status",
        &[
            ("id", id.as_str()),
            ("amount", &money(amount)),
            ("source", &ctx.texts.plain(source)),
            ("action", &action_text(ctx, status.budget.action)),
            ("month", &status.month),
            ("spend", &money(status.spend)),
            ("percent", &percent(status.spend, amount)),
            ("notified", &notified),
        ],
    );
    say(bot, chat, text).await
}

/// `/resume <id>`: undoes a budget suspension.
pub async fn resume_command(
    bot: &Tg,
    chat: ChatId,
    ctx: &Ctx,
    actor: &Actor,
    id: &TenantId,
) -> HandlerResult {
    let text = match fleet::resume(&ctx.app, actor, id).await {
        Ok(Resumed::Resumed(BudgetAction::StopCell)) => {
            ctx.texts.get("usage.resumed_cell", &[("id", id.as_str())])
        }
        Ok(Resumed::Resumed(_)) => ctx
            .texts
            .get("usage.resumed_channel", &[("id", id.as_str())]),
        Ok(Resumed::NotSuspended) => ctx.texts.get("usage.not_suspended", &[("id", id.as_str())]),
        Err(err) => return say(bot, chat, failure_text(ctx, "/resume", &err)).await,
    };
    say(bot, chat, text).await
}

/// The mark `/clients` puts after a suspended tenant's line.
#[must_use]
pub fn suspended_mark(ctx: &Ctx) -> String {
    ctx.texts.plain("usage.suspended_mark")
}

fn failure_text(ctx: &Ctx, what: &str, err: &anyhow::Error) -> String {
    crate::bot::clients::error_text(ctx, what, err, "/usage")
}

fn action_text(ctx: &Ctx, action: BudgetAction) -> String {
    ctx.texts.plain(match action {
        BudgetAction::Notify => "usage.action_notify",
        BudgetAction::StopChannel => "usage.action_stop_channel",
        BudgetAction::StopCell => "usage.action_stop_cell",
    })
}

/// The thresholds notified this month, as `usage.json5` words them.
fn notified_text(ctx: &Ctx, notified: &[u8]) -> String {
    if notified.is_empty() {
        return ctx.texts.plain("usage.notified_none");
    }
    notified
        .iter()
        .map(|threshold| {
            ctx.texts.get(
                "usage.notified_threshold",
                &[("threshold", &threshold.to_string())],
            )
        })
        .collect::<Vec<_>>()
        .join(&ctx.texts.plain("usage.notified_separator"))
}

/// `this-month (2026-11-01 – 2026-11-30)`.
fn period_text(spec: &PeriodSpec, period: &Period) -> String {
    format!("{spec} ({period})")
}

fn clock(ctx: &Ctx, unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|t| {
            t.with_timezone(&ctx.app.config().usage.time_zone)
                .format("%Y-%m-%d %H:%M %Z")
                .to_string()
        })
        .unwrap_or_default()
}

/// Cents, or four decimals under a dollar so small spend shows.
#[must_use]
pub fn money(amount: Usd) -> String {
    if amount > Usd::ZERO && amount < Usd::cents(100) {
        format!("{amount:.4}")
    } else {
        amount.to_string()
    }
}

fn percent(part: Usd, whole: Usd) -> String {
    match part.percent_of(whole) {
        Some(percent) => format!("{percent:.1}%"),
        None => "-".to_string(),
    }
}

fn trim_number(value: f64) -> String {
    let text = format!("{value:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// `12345678` → `12,345,678`.
fn count(value: u64) -> String {
    let digits = value.to_string();
    let mut res = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            res.push(',');
        }
        res.push(c);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(count(0), "0");
        assert_eq!(count(1234), "1,234");
        assert_eq!(count(12_345_678), "12,345,678");
        assert_eq!(money(Usd::ZERO), "$0.00");
        assert_eq!(money(Usd::from_f64(0.0042)), "$0.0042");
        assert_eq!(money(Usd::from_f64(12.345)), "$12.35");
        assert_eq!(trim_number(20.0), "20");
        assert_eq!(trim_number(12.5), "12.5");
        assert_eq!(percent(Usd::cents(100), Usd::cents(400)), "25.0%");
        assert_eq!(percent(Usd::cents(100), Usd::ZERO), "-");
    }
}
