//! `/doctor`: the host and every cell against what MTP promises, as a short
//! list (one line per finding with its fix); and the monitor's daily report
//! of new findings. Repairs are the CLI's (`mtp doctor --fix`), where the
//! operator sees what changes.

use teloxide::prelude::*;

use crate::bot::clients::chain_text;
use crate::bot::{Ctx, HandlerResult, Tg, say};
use crate::fleet;
use crate::fleet::doctor::{Finding, Severity};

/// `/doctor`: runs the checks and lists the findings.
pub async fn doctor(bot: &Tg, chat: ChatId, ctx: &Ctx) -> HandlerResult {
    let checkup = match fleet::doctor::doctor(&ctx.app, None).await {
        Ok(checkup) => checkup,
        Err(err) => return say(bot, chat, chain_text(ctx, "Checking", &err)).await,
    };
    let tenants = checkup.tenants.to_string();
    if checkup.is_clean() {
        let text = ctx
            .texts
            .get("monitor.doctor_clean", &[("tenants", &tenants)]);
        return say(bot, chat, text).await;
    }
    let count = |severity| {
        checkup
            .findings
            .iter()
            .filter(|f| f.severity == severity)
            .count()
            .to_string()
    };
    let mut text = ctx.texts.get(
        "monitor.doctor_header",
        &[
            ("count", &checkup.findings.len().to_string()),
            ("critical", &count(Severity::Critical)),
            ("warning", &count(Severity::Warning)),
            ("tenants", &tenants),
        ],
    );
    for finding in &checkup.findings {
        text.push('\n');
        text.push_str(&line(ctx, finding));
    }
    say(bot, chat, text).await
}

/// The monitor's daily run found these, none of them reported before.
pub(crate) fn render_new(ctx: &Ctx, findings: &[Finding]) -> String {
    let lines: Vec<String> = findings.iter().map(|f| line(ctx, f)).collect();
    ctx.texts.get_html(
        "monitor.doctor_new",
        &[
            ("count", &findings.len().to_string()),
            ("lines", &lines.join("\n")),
        ],
    )
}

fn line(ctx: &Ctx, finding: &Finding) -> String {
    let emoji = match finding.severity {
        Severity::Critical => "🔴",
        Severity::Warning => "🟠",
    };
    let fixable = if finding.fixable {
        ctx.texts.plain("monitor.doctor_fixable")
    } else {
        String::new()
    };
    ctx.texts.get(
        "monitor.doctor_line",
        &[
            ("emoji", emoji),
            ("subject", finding.subject.as_str()),
            ("check", finding.check.as_str()),
            ("problem", &finding.problem),
            ("fix", &finding.fix),
            ("fixable", &fixable),
        ],
    )
}
