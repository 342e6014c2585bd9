//! Telegram's limits, end to end against the fake Bot API: a final report
//! longer than 4096 characters still lands (the edited message gets the first
//! part, the rest follows), and a burst of alerts to the ops group becomes a
//! few messages and one summary instead of a 429 storm that stalls the bot.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::fake_telegram::{ChatMessage, FakeBot, FakeTelegram};
use common::{CRASH_IMAGE, FAKE_IMAGE, TestEnv};
use mtp::config::AdminConfig;
use mtp::fleet::{self, Actor, App};
use mtp::monitor::{Alert, AlertKind, Report};
use mtp::tenant::{BotToken, Check, DmPolicy, TenantId, TenantSpec};
use teloxide::types::{ChatId, UserId};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

const ADMIN_TOKEN: &str = "7000000950:AAAdminBotTokenForTestsOnly_limits01";
const ADMIN_BOT_ID: u64 = 7_000_000_950;
const OPERATOR: UserId = UserId(4242);
const DM: ChatId = ChatId(4242);
/// A supergroup, as ops groups are.
const OPS_CHAT: ChatId = ChatId(-1_001_234_567_890);
/// Telegram's rate for one group, which the fake enforces in these tests.
const GROUP_RATE: usize = 20;
const DEADLINE: Duration = Duration::from_secs(30);
/// A cell image whose "gateway" prints eight 700-character lines and exits.
const LONG_CRASH_IMAGE: &str = "mtp-test/crash-long:1";

/// The admin bot in this process, with a monitor link when given one.
struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    async fn start(admin: &FakeBot, app: App, reports: Option<mpsc::Receiver<Report>>) -> Running {
        let (stop, stopped) = oneshot::channel::<()>();
        let link = reports.map(|reports| {
            let (_, latest) = watch::channel(None);
            mtp::bot::MonitorLink {
                reports,
                latest,
                usage: None,
            }
        });
        let task = tokio::spawn(mtp::bot::run_with_monitor(app, link, async move {
            let _ = stopped.await;
        }));
        admin
            .wait_for_poll(DEADLINE)
            .await
            .unwrap_or_else(|err| panic!("{err}"));
        Running { stop, task }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(DEADLINE, self.task)
            .await
            .expect("the bot stops")
            .expect("the bot task did not panic")
            .expect("the bot ran without error");
    }
}

async fn app(env: &TestEnv, fake: &FakeTelegram) -> App {
    env.set_telegram(&format!(
        "{{ apiUrl: \"{}\", operators: [{}], opsChatId: {} }}",
        fake.url(),
        OPERATOR.0,
        OPS_CHAT.0
    ));
    let vars = BTreeMap::from([("MTP_TELEGRAM_TOKEN".to_string(), ADMIN_TOKEN.to_string())]);
    let config = AdminConfig::load(Some(&env.config_path), None, &vars).expect("config loads");
    App::open(config).await.expect("app opens")
}

fn bot_messages(admin: &FakeBot, chat: ChatId) -> Vec<ChatMessage> {
    admin
        .messages_in(chat)
        .into_iter()
        .filter(|m| m.from_bot)
        .collect()
}

// See: issue 10 (50 alerts at once were 50 messages: a 429 storm in a real
// group, which froze every request of the bot for the wait).
/// Fifty alerts at once reach the ops group as ten alerts and one summary
/// naming every other tenant, with no 429 from a fake that enforces
/// Telegram's 20 a minute; an operator's command sent after the burst is
/// answered before the summary goes out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_alerts_becomes_ten_messages_and_one_summary() {
    let env = TestEnv::new("limits_alert_burst", 20040, "3s");
    let fake = FakeTelegram::start().await;
    let admin = fake.add_bot(ADMIN_TOKEN, ADMIN_BOT_ID, "mtp_admin_bot");
    admin.limit_group_rate(GROUP_RATE);
    let app = app(&env, &fake).await;
    let (reports, rx) = mpsc::channel(256);
    let bot = Running::start(&admin, app, Some(rx)).await;

    let tenants: Vec<TenantId> = (0..50)
        .map(|n| format!("burst-{n:02}").parse().unwrap())
        .collect();
    for tenant in &tenants {
        let alert = Alert {
            tenant: tenant.clone(),
            check: Check::Container,
            kind: AlertKind::Down,
            since: fleet::now(),
            last_error: Some("exited (exit code 137)".to_string()),
        };
        reports.send(Report::Alert(alert)).await.unwrap();
    }
    admin.push_message(DM, OPERATOR, "/help");
    let help = admin
        .wait_for_message(DM, DEADLINE, |m| {
            m.from_bot && m.text.contains("/newclient")
        })
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    let summary = admin
        .wait_for_message(OPS_CHAT, Duration::from_secs(60), |m| {
            m.text.contains("more alerts")
        })
        .await
        .unwrap_or_else(|err| panic!("{err}"));

    let sent = bot_messages(&admin, OPS_CHAT);
    assert_eq!(
        sent.len(),
        11,
        "ten alerts and one summary, got:\n{}",
        sent.iter()
            .map(|m| m.text.clone())
            .collect::<Vec<_>>()
            .join("\n---\n")
    );
    let singles: Vec<&TenantId> = tenants
        .iter()
        .filter(|t| {
            sent.iter()
                .any(|m| m.id != summary.id && m.text.contains(t.as_str()))
        })
        .collect();
    assert_eq!(singles, tenants.iter().take(10).collect::<Vec<_>>());
    for tenant in &tenants[10..] {
        assert!(
            summary.text.contains(tenant.as_str()),
            "{tenant} missing from the summary:\n{}",
            summary.text
        );
    }
    assert!(summary.text.contains("40 more alerts"), "{}", summary.text);
    let calls = admin.calls("sendMessage");
    assert!(
        calls.iter().all(|call| call.is_ok()),
        "a message was refused (429?)"
    );
    let seq_of = |chat: ChatId, id: teloxide::types::MessageId| {
        calls
            .iter()
            .find(|c| {
                c.chat_id() == Some(chat)
                    && c.result().and_then(|r| r["message_id"].as_i64()) == Some(i64::from(id.0))
            })
            .map(|c| c.seq)
            .expect("the call that sent it")
    };
    assert!(
        seq_of(DM, help.id) < seq_of(OPS_CHAT, summary.id),
        "the operator's reply waited behind the alerts"
    );
    bot.stop().await;
}

/// Builds `LONG_CRASH_IMAGE` from the crash image if it is not there.
fn long_crash_image() {
    let exists = std::process::Command::new("docker")
        .args(["image", "inspect", LONG_CRASH_IMAGE])
        .output()
        .expect("docker CLI");
    if exists.status.success() {
        return;
    }
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("crash-long-image");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut script = String::from("#!/bin/sh\n");
    for n in 1..=8 {
        script.push_str(&format!(
            "echo \"fatal {n}: {} <boom> & more\"\n",
            "x".repeat(680)
        ));
    }
    script.push_str("exit 3\n");
    let node = dir.join("node");
    std::fs::write(&node, script).unwrap();
    std::fs::set_permissions(
        &node,
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o755),
    )
    .unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        format!("FROM {CRASH_IMAGE}\nCOPY node /usr/local/bin/node\n"),
    )
    .unwrap();
    let built = std::process::Command::new("docker")
        .args(["build", "-q", "-t", LONG_CRASH_IMAGE])
        .arg(&dir)
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .expect("docker build");
    assert!(
        built.status.success(),
        "docker build: {}",
        String::from_utf8_lossy(&built.stderr)
    );
}

// See: issue 10 (a long log tail in the final edit failed with
// MESSAGE_TOO_LONG and left "⏳" forever).
/// `/upgrade` to an image whose gateway dies after printing long lines: the
/// failure report, far over 4096 characters, lands: the progress message is
/// edited to its first part and the rest follows, ending with the rollback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_final_upgrade_report_lands_whole() {
    long_crash_image();
    let env = TestEnv::new("limits_long_final_edit", 20060, "60s");
    let fake = FakeTelegram::start().await;
    let admin = fake.add_bot(ADMIN_TOKEN, ADMIN_BOT_ID, "mtp_admin_bot");
    let app = app(&env, &fake).await;
    let id: TenantId = env.tenant("long").parse().unwrap();
    let spec = TenantSpec {
        id: id.clone(),
        display_name: None,
        bot_token: BotToken::parse("7000000951:AAFakeTokenForTestsOnly_longedit1").unwrap(),
        provider_key: None,
        model: "anthropic/claude-opus-4-6".into(),
        image: Some(FAKE_IMAGE.into()),
        limits: None,
        dm_policy: DmPolicy::Pairing,
        skills: None,
        bot_username: None,
        keep_failed: false,
    };
    fleet::create(&app, &Actor::System("test"), spec, &mut |_| {})
        .await
        .expect("create");
    let bot = Running::start(&admin, app.clone(), None).await;

    admin.push_message(DM, OPERATOR, &format!("/upgrade {id} {LONG_CRASH_IMAGE}"));
    let progress = admin
        .next_message_to(DM, DEADLINE)
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    let done = admin
        .wait_for_message(DM, Duration::from_secs(180), |m| {
            m.id == progress.id && m.text.contains("failed at step")
        })
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    assert!(!done.text.contains('⏳'), "{done}");
    // The rest follows the edit.
    admin
        .wait_for_message(DM, DEADLINE, |m| {
            m.from_bot && m.text.contains("rolled back to")
        })
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    let after: Vec<ChatMessage> = bot_messages(&admin, DM)
        .into_iter()
        .filter(|m| m.id.0 > progress.id.0)
        .collect();
    let whole = std::iter::once(&done)
        .chain(&after)
        .map(|m| m.text.as_str())
        .collect::<String>();
    assert!(whole.chars().count() > 4096, "not a long report: {whole}");
    for n in 1..=8 {
        assert!(
            whole.contains(&format!("fatal {n}:")),
            "line {n} lost: {whole}"
        );
    }
    assert!(whole.contains("<boom> & more"), "{whole}");
    assert!(
        whole.contains("rolled back to"),
        "the end is missing: {whole}"
    );
    // Only an unchanged progress step may be refused ("not modified").
    let refused: Vec<String> = admin
        .calls("editMessageText")
        .into_iter()
        .filter_map(|c| c.response.err())
        .map(|failure| failure.description)
        .filter(|why| !why.contains("not modified"))
        .collect();
    assert_eq!(refused, Vec::<String>::new(), "edits refused");
    bot.stop().await;
    fleet::remove(&app, &Actor::System("test"), &id, true)
        .await
        .unwrap();
}
