//! Sleep and wake, end to end, with `mtp serve` in this process and the fake
//! Bot API on loopback (tenant tokens go to `telegram.apiUrl`).
//!
//! - Fake cells: idle tenants go to sleep after `sleep.after` (container
//!   stopped, no alert), a `sleep.never` tenant and one whose heartbeats come
//!   more often stay awake; a message queued for a sleeping tenant's bot wakes
//!   it, with `typing` sent with the tenant's token, no `getUpdates` offset ever
//!   sent on that token, and the message still pending for the cell; a sleep
//!   that died between its record and its stop is finished by reconcile.
//! - The real OpenClaw cell: put to sleep by the CLI (another process), woken
//!   by a message; put to sleep with a cron job due, woken for it.

mod common;

use std::time::{Duration, Instant};

use common::fake_telegram::{FakeBot, FakeTelegram};
use common::serving::{Serving, create_cell as create, fake_control, metrics_text, serving_app};
use common::{FAKE_IMAGE, OPENCLAW_IMAGE, TestEnv, cell_running};
use mtp::fleet::{self, Actor, App};
use mtp::tenant::{CellState, TenantId};
use teloxide::types::{ChatId, UserId};

const ADMIN_TOKEN: &str = "900000002:AAAdminBotTokenForTestsOnly_sleepwk";
const OPS_CHAT: ChatId = ChatId(-1_001_234_999);
const OPERATOR: u64 = 4343;
const CLIENT: UserId = UserId(5151);

/// A distinct tenant bot token per `n` (each client has its own bot).
fn tenant_token(n: u64) -> String {
    format!("{}:AATenantBotTokenForSleepTests_{n:05}", 7_100_000_000 + n)
}

/// This test's app with the admin bot on the fake, a fast monitor, and `sleep`.
async fn app_with(env: &TestEnv, fake: &FakeTelegram, sleep: &str) -> App {
    let monitor = "{ interval: \"1s\", downAfter: 2, probeTimeout: \"3s\", heal: false, httpAddr: \"127.0.0.1:0\" }";
    let extra = format!("  sleep: {sleep},\n");
    serving_app(
        env,
        fake.url(),
        ADMIN_TOKEN,
        (OPERATOR, OPS_CHAT.0),
        monitor,
        &extra,
    )
    .await
}

fn state_of(app: &App, id: &TenantId) -> CellState {
    fleet::record(app, id).unwrap().state
}

/// Waits up to `within` until the tenant's record says `state`.
async fn await_state(app: &App, id: &TenantId, state: CellState, within: Duration) {
    let deadline = Instant::now() + within;
    while state_of(app, id) != state {
        assert!(
            Instant::now() < deadline,
            "{id} is {} after {within:?}, not {state}",
            state_of(app, id)
        );
        // The record is the condition; the store is a file read per call.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits up to `within` until the tenant's container runs (or, with
/// `running` false, has stopped); how long that took.
async fn await_container(id: &TenantId, running: bool, within: Duration) -> Duration {
    let started = Instant::now();
    while cell_running(id.as_str()) != Some(running) {
        assert!(
            started.elapsed() < within,
            "{id}'s container is not {}",
            if running { "running" } else { "stopped" }
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

/// Nothing the admin sent on a tenant's token ever confirmed an update.
fn assert_never_confirmed(bot: &FakeBot) {
    for call in bot.calls("getUpdates") {
        let params = call.params.as_object().cloned().unwrap_or_default();
        assert!(
            !params.contains_key("offset") && !params.contains_key("allowed_updates"),
            "getUpdates with {params:?} on a tenant's token"
        );
    }
}

fn alerts_about(admin: &FakeBot, tenant: &TenantId) -> Vec<String> {
    common::serving::alerts_about(admin, OPS_CHAT, tenant)
}

/// The value of one sample line of `/metrics`.
async fn metric(serving: &Serving, line_start: &str) -> Option<f64> {
    let text = metrics_text(serving.metrics).await;
    text.lines()
        .find_map(|line| line.strip_prefix(line_start))
        .and_then(|value| value.trim().parse().ok())
}

/// Writes into a stopped cell's store that it handled updates up to `update_id`,
/// as OpenClaw 2026.9.6 records it (`telegram.update-offsets`).
fn handled_up_to(app: &App, id: &TenantId, token: &str, update_id: i64) {
    let dir = app.tenant_dir(id).join("state/state");
    std::fs::create_dir_all(&dir).unwrap();
    let db = rusqlite::Connection::open(dir.join("openclaw.sqlite")).unwrap();
    db.execute_batch(
        "CREATE TABLE IF NOT EXISTS plugin_state_entries (plugin_id TEXT NOT NULL, namespace TEXT NOT NULL, entry_key TEXT NOT NULL, value_json TEXT NOT NULL, created_at INTEGER NOT NULL, expires_at INTEGER, PRIMARY KEY (plugin_id, namespace, entry_key)) STRICT",
    )
    .unwrap();
    let bot_id = token.split(':').next().unwrap();
    let value = serde_json::json!({
        "version": 3, "lastUpdateId": update_id, "botId": bot_id, "tokenFingerprint": "test",
    });
    db.execute(
        "INSERT OR REPLACE INTO plugin_state_entries VALUES ('telegram', 'telegram.update-offsets', 'default', ?1, 0, NULL)",
        [value.to_string()],
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idle_cells_sleep_and_a_message_wakes_one() {
    let env = TestEnv::new("sleep-fake-cells", 21720, "60s");
    let fake = FakeTelegram::start().await;
    let admin = fake.add_bot(ADMIN_TOKEN, 900_000_002, "mtp_admin_bot");
    let (idle, always, beating) = (env.tenant("idle"), env.tenant("always"), env.tenant("beat"));
    let sleep = format!("{{ after: \"10s\", never: [\"{always}\"] }}");
    let app = app_with(&env, &fake, &sleep).await;
    let bots: Vec<FakeBot> = (1..=3)
        .map(|n| {
            fake.add_bot(
                &tenant_token(n),
                7_100_000_000 + n,
                &format!("client{n}_bot"),
            )
        })
        .collect();
    let idle = create(&app, &idle, FAKE_IMAGE, &tenant_token(1)).await;
    let always = create(&app, &always, FAKE_IMAGE, &tenant_token(2)).await;
    let beating = create(&app, &beating, FAKE_IMAGE, &tenant_token(3)).await;
    // Heartbeats every 5 s: more often than it may sleep (10 s).
    fake_control(
        &app,
        &beating,
        "PUT",
        "/__fake/behaviour",
        serde_json::json!({ "heartbeatEveryMs": 5000 }),
    )
    .await;

    let serving = Serving::start(&app).await;
    await_state(&app, &idle, CellState::Sleeping, Duration::from_secs(90)).await;
    // Its memory is freed.
    await_container(&idle, false, Duration::from_secs(30)).await;
    // Two sweeps after it slept: nothing raised for it.
    serving.await_sweeps(2).await;
    assert!(
        alerts_about(&admin, &idle).is_empty(),
        "{:?}",
        alerts_about(&admin, &idle)
    );
    assert_eq!(state_of(&app, &always), CellState::Running, "sleep.never");
    assert_eq!(state_of(&app, &beating), CellState::Running, "heartbeats");
    assert_eq!(metric(&serving, "mtp_tenants_sleeping ").await, Some(1.0));
    let audit = fleet::audit_log(&app, Some(&idle), 20).unwrap();
    assert!(
        audit.iter().any(|e| e.action == "sleep (idle)"),
        "{audit:?}"
    );

    // The admin watches its bot. An update the cell handled before it slept
    // is still pending at Telegram (the cell confirms it with its next poll):
    // no reason to wake it.
    let bot = &bots[0];
    bot.wait_for_poll(Duration::from_secs(30)).await.unwrap();
    let chat = ChatId(CLIENT.0 as i64);
    bot.push_message(chat, CLIENT, "thanks, that is all");
    handled_up_to(&app, &idle, &tenant_token(1), 1);
    let polls = bot.call_count("getUpdates");
    let deadline = Instant::now() + Duration::from_secs(30);
    while bot.call_count("getUpdates") < polls + 2 {
        assert!(Instant::now() < deadline, "the watch stopped polling");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        state_of(&app, &idle),
        CellState::Sleeping,
        "woken for a handled update"
    );
    assert_eq!(cell_running(idle.as_str()), Some(false));
    // A new message wakes it.
    bot.push_message(chat, CLIENT, "are you there?");
    let took = await_container(&idle, true, Duration::from_secs(30)).await;
    eprintln!("message → container running: {took:?}");
    let typing = bot
        .wait_for(Duration::from_secs(30), |call| {
            call.method == "sendChatAction" && call.chat_id() == Some(chat)
        })
        .await
        .unwrap();
    assert_eq!(typing.params["action"], "typing");
    await_state(&app, &idle, CellState::Running, Duration::from_secs(5)).await;
    assert_never_confirmed(bot);
    assert_eq!(bot.pending_updates(), 2, "the messages wait for the cell");
    let woken = async {
        loop {
            if metric(&serving, "mtp_wakes_total{cause=\"message\"} ").await == Some(1.0) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), woken)
        .await
        .expect("the wake is counted");
    serving.stop().await;

    // A sleep that died between its record and its stop: reconcile stops it.
    common::store_of(&app)
        .update_tenant(&always, |record| {
            record.state = CellState::Sleeping;
            Ok(())
        })
        .unwrap();
    let report = fleet::reconcile(&app).await.unwrap();
    assert!(report.repaired.contains(&always), "{report:?}");
    assert_eq!(cell_running(always.as_str()), Some(false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn operators_sleep_and_wake_refusals_say_why() {
    let env = TestEnv::new("sleep-refusals", 21760, "60s");
    let fake = FakeTelegram::start().await;
    let _admin = fake.add_bot(ADMIN_TOKEN, 900_000_002, "mtp_admin_bot");
    let _bot = fake.add_bot(&tenant_token(9), 7_100_000_009, "client9_bot");
    let app = app_with(&env, &fake, "{}").await;
    let id = create(&app, &env.tenant("busy"), FAKE_IMAGE, &tenant_token(9)).await;

    // An agent run going on: not put to sleep, nothing changed.
    fake_control(
        &app,
        &id,
        "PUT",
        "/__fake/behaviour",
        serde_json::json!({ "activeRun": true }),
    )
    .await;
    let out = env.mtp(&["tenant", "sleep", id.as_str()]);
    common::assert_fails_with(&out, 2, "busy");
    assert_eq!(cell_running(id.as_str()), Some(true));
    fake_control(
        &app,
        &id,
        "PUT",
        "/__fake/behaviour",
        serde_json::json!({ "activeRun": false, "cronNextWakeAtMs": (chrono_now_ms() + 3_600_000) }),
    )
    .await;

    // Asleep: the schedule is read, RPC says it sleeps, wake brings it back.
    let slept = common::json(&env.mtp(&["tenant", "sleep", id.as_str(), "--json"]));
    assert_eq!(slept["already"], false);
    assert!(slept["wake_at"].is_string(), "{slept}");
    let out = env.mtp(&["rpc", id.as_str(), "health"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        common::stderr(&out).contains("asleep"),
        "{}",
        common::stderr(&out)
    );
    let listed = common::json(&env.mtp(&["tenant", "list", "--json"]));
    assert_eq!(listed[0]["state"], "sleeping", "{listed}");
    let out = env.mtp(&["tenant", "sleep", id.as_str()]);
    common::assert_ok(&out);
    assert!(common::stdout(&out).contains("already asleep"));
    let out = env.mtp(&["tenant", "wake", id.as_str()]);
    common::assert_ok(&out);
    assert!(
        common::stdout(&out).contains("woke"),
        "{}",
        common::stdout(&out)
    );
    assert_eq!(state_of(&app, &id), CellState::Running);
    common::assert_ok(&env.mtp(&["rpc", id.as_str(), "health"]));

    // A stopped tenant is not put to sleep; a stopped one is not "woken".
    common::assert_ok(&env.mtp(&["tenant", "stop", id.as_str()]));
    let out = env.mtp(&["tenant", "sleep", id.as_str()]);
    common::assert_fails_with(&out, 2, "only a running tenant");
    let out = env.mtp(&["tenant", "wake", id.as_str()]);
    common::assert_fails_with(&out, 1, "start it instead");
    assert_eq!(state_of(&app, &id), CellState::Stopped);
}

/// Waits until the tenant's `n`th scheduled wake is audited as done.
async fn await_scheduled_wake(app: &App, id: &TenantId, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let done = fleet::audit_log(app, Some(id), 50)
            .unwrap()
            .iter()
            .filter(|e| e.action == "wake (schedule)" && e.outcome == fleet::Outcome::Ok)
            .count();
        if done >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the scheduled wake never finished: {:#?}",
            fleet::audit_log(app, Some(id), 50).unwrap()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Alerts about `id` other than its memory: a real cell's first boot holds
/// most of the tests' 1 GiB, which the monitor rightly reports.
fn outages(admin: &FakeBot, id: &TenantId) -> Vec<String> {
    let mut alerts = alerts_about(admin, id);
    alerts.retain(|alert| !alert.contains("memory high"));
    alerts
}

fn chrono_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_real_cell_wakes_on_its_clients_message_and_for_its_cron_job() {
    let env = TestEnv::new("sleep-real-cell", 21740, "240s");
    let fake = FakeTelegram::start().await;
    let admin = fake.add_bot(ADMIN_TOKEN, 900_000_002, "mtp_admin_bot");
    let bot = fake.add_bot(&tenant_token(7), 7_100_000_007, "client7_bot");
    // Sleep only when asked: the operator's CLI, in another process.
    let app = app_with(&env, &fake, "{}").await;
    let id = create(&app, &env.tenant("real"), OPENCLAW_IMAGE, &tenant_token(7)).await;
    let serving = Serving::start(&app).await;

    // Asleep by the operator's CLI, in another process. A fresh cell may
    // have a job of its own due soon (OpenClaw sets its jobs up at first
    // boot): then it is woken for it first, and put to sleep again.
    let mut attempts = 0;
    loop {
        attempts += 1;
        common::assert_ok(&env.mtp(&["tenant", "sleep", id.as_str()]));
        assert_eq!(cell_running(id.as_str()), Some(false));
        let record = fleet::record(&app, &id).unwrap();
        let soon = chrono::Utc::now().timestamp() + 180;
        match record.wake_at {
            Some(at) if at < soon && attempts < 3 => {
                eprintln!("the cell's own job is due at {at}: waiting for that wake");
                await_scheduled_wake(&app, &id, attempts).await;
            }
            _ => break,
        }
    }
    assert_eq!(state_of(&app, &id), CellState::Sleeping);
    bot.wait_for_poll(Duration::from_secs(30)).await.unwrap();
    serving.await_sweeps(2).await;
    assert!(
        outages(&admin, &id).is_empty(),
        "{:?}",
        outages(&admin, &id)
    );

    let chat = ChatId(CLIENT.0 as i64);
    bot.push_message(chat, CLIENT, "good morning");
    let took = await_container(&id, true, Duration::from_secs(30)).await;
    eprintln!("message → container running: {took:?}");
    bot.wait_for(Duration::from_secs(30), |call| {
        call.method == "sendChatAction" && call.chat_id() == Some(chat)
    })
    .await
    .unwrap();
    assert_never_confirmed(&bot);
    assert_eq!(bot.pending_updates(), 1, "the message waits for the cell");
    // The woken gateway answers the admin again.
    let deadline = Instant::now() + Duration::from_secs(240);
    while fleet::rpc(&app, &id, "health", serde_json::json!({}))
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "the woken gateway never answered"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // The cells of these tests cannot reach the fake Bot API (their API root
    // is a closed port), so the woken cell never takes the message; while it
    // waits it rightly wakes the cell again. Taken, as a cell would.
    bot.confirm_all();

    // A job due in 70 s: asleep now, woken ahead of it (a minute early at the latest).
    let at = chrono::Utc::now() + chrono::Duration::seconds(70);
    fleet::rpc(
        &app,
        &id,
        "cron.add",
        serde_json::json!({
            "name": "mtp-sleep-test",
            "schedule": { "kind": "at", "at": at.to_rfc3339() },
            "sessionTarget": "main",
            "wakeMode": "now",
            "payload": { "kind": "systemEvent", "text": "time to check in" },
        }),
    )
    .await
    .expect("cron.add");
    let slept = fleet::sleep::sleep(
        &app,
        &Actor::System("test"),
        &id,
        fleet::sleep::SleepCause::Operator,
    )
    .await
    .expect("sleep");
    let wake_at = slept.wake_at.expect("the job's time was read");
    // A minute before the job at the latest (another of the cell's own jobs,
    // such as its heartbeat, may come sooner).
    assert!(
        wake_at <= at.timestamp() - 58,
        "wake at {wake_at}, job at {}",
        at.timestamp()
    );
    await_state(&app, &id, CellState::Running, Duration::from_secs(60)).await;
    await_container(&id, true, Duration::from_secs(10)).await;
    // The wake is audited once its gateway is up.
    let deadline = Instant::now() + Duration::from_secs(240);
    let woken = |action: &str| {
        fleet::audit_log(&app, Some(&id), 50)
            .unwrap()
            .iter()
            .any(|e| e.action == action && e.outcome == fleet::Outcome::Ok)
    };
    let scheduled = |app: &App| {
        fleet::audit_log(app, Some(&id), 50)
            .unwrap()
            .iter()
            .filter(|e| e.action == "wake (schedule)" && e.outcome == fleet::Outcome::Ok)
            .count()
    };
    let before = attempts - 1;
    while scheduled(&app) <= before {
        assert!(
            Instant::now() < deadline,
            "the scheduled wake never finished: {:#?}",
            fleet::audit_log(&app, Some(&id), 50).unwrap()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(woken("wake (message)"));
    // Waking is not an outage: nothing was raised for it.
    assert!(
        outages(&admin, &id).is_empty(),
        "{:?}",
        outages(&admin, &id)
    );
    serving.stop().await;
}
