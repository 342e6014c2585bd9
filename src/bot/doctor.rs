//! `/doctor`: the host and every cell against what MTP promises, as a short
//! list (one line per finding with its fix); and the monitor's daily report
//! of new findings. Repairs are the CLI's (`mtp doctor --fix`), where the
//! operator sees what changes.

use teloxide::prelude::*;

use crate::bot::clients::chain_text;
use crate::bot::{Ctx, HandlerResult, Tg, say};
use crate::fleet;
use crate::fleet::doctor::{Finding, Fix, Severity};

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
            ("fix", &fix(ctx, &finding.fix)),
            ("fixable", &fixable),
        ],
    )
}

/// What fixes a finding, in the bot's terms (commands for the host's shell
/// as they are; MTP's own actions as the bot or the CLI offers them).
fn fix(ctx: &Ctx, fix: &Fix) -> String {
    let text = |key: &str, values: &[(&str, &str)]| {
        // The line escapes the whole fix once; fill the values raw here.
        ctx.texts
            .get_html(&format!("monitor.doctor_fix_{key}"), values)
    };
    match fix {
        Fix::Command(command) => command.clone(),
        Fix::OnHost(command) => text("on_host", &[("command", command)]),
        Fix::DockerIptables(command) => text("docker_iptables", &[("command", command)]),
        Fix::Recreate(tenant) => text("recreate", &[("container", &tenant.cell_name())]),
        Fix::RecreateAndRotate(tenant) => {
            text("recreate_rotate", &[("container", &tenant.cell_name())])
        }
        Fix::Reconcile => text("reconcile", &[]),
        Fix::Foreign(name) => text("foreign", &[("name", name)]),
        Fix::Restore(tenant) => text("restore", &[("id", tenant.as_str())]),
        Fix::Upgrade(tenant) => text("upgrade", &[("id", tenant.as_str())]),
        Fix::PinDefaultImage => text("pin_image", &[]),
        Fix::MakeDir(path) => text("make_dir", &[("path", &path.display().to_string())]),
        Fix::Unplain(path) => text("unplain", &[("path", &path.display().to_string())]),
        Fix::MatchStore => text("match_store", &[]),
        Fix::PruneAudit => text("prune_audit", &[]),
        Fix::FreeDisk(path) => text("free_disk", &[("path", &path.display().to_string())]),
        Fix::Memory => text("memory", &[]),
    }
}
