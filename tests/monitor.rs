//! The fleet monitor inside `mtp serve`, end to end: real sweeps, alerts that
//! reach the ops chat of a fake Bot API, and `/metrics`. With a real cell:
//! `docker kill` → DOWN after N sweeps → an admin restart while DOWN does not
//! repeat it → `docker start` → RECOVERED with the downtime; a stop through MTP
//! raises nothing. With fake cells: a Telegram 409 raises the channel alert,
//! self-healing starts an exited cell, a slow cell does not delay the others.
//! From Docker's events: a crash inside a real cell alerts at once (exit code,
//! log tail) and one message says when it is back; stops, starts and restarts
//! through MTP raise nothing; repeated crashes become one crash loop. A
//! container removed behind MTP's back is made again once, with one alert.

mod common;

use std::time::{Duration, Instant};

use common::fake_telegram::{FakeBot, FakeTelegram};
use common::serving::{Serving, fake_control, metrics_text};
use common::{BOT_TOKEN, FAKE_IMAGE, OPENCLAW_IMAGE, TestEnv, docker, docker_ok};
use mtp::fleet::{self, Actor, App};
use mtp::tenant::{SecretKind, TenantId};
use teloxide::types::{ChatId, MessageId};

const ADMIN_TOKEN: &str = "900000001:AAAdminBotTokenForTestsOnly_abcdefg";
const OPS_CHAT: ChatId = ChatId(-1_001_234_567);
const OPERATOR: u64 = 4242;

/// This test's config with the bot pointed at the fake and a fast monitor.
async fn app_with_monitor(env: &TestEnv, fake: &FakeTelegram, heal: bool) -> App {
    app_sweeping_every(env, fake, heal, "1s").await
}

/// As `app_with_monitor`, sweeping every `interval`.
async fn app_sweeping_every(env: &TestEnv, fake: &FakeTelegram, heal: bool, interval: &str) -> App {
    let monitor = format!(
        "{{ interval: \"{interval}\", downAfter: 2, probeTimeout: \"3s\", heal: {heal}, httpAddr: \"127.0.0.1:0\" }}"
    );
    common::serving::serving_app(
        env,
        fake.url(),
        ADMIN_TOKEN,
        (OPERATOR, OPS_CHAT.0),
        &monitor,
        "",
    )
    .await
}

async fn create(app: &App, id: &str, image: &str, bot_token: &str) -> TenantId {
    common::serving::create_cell(app, id, image, bot_token).await
}

/// The fake Bot API with the admin bot registered.
async fn fake_telegram() -> (FakeTelegram, FakeBot) {
    let fake = FakeTelegram::start().await;
    let admin = fake.add_bot(ADMIN_TOKEN, 900_000_001, "mtp_admin_bot");
    (fake, admin)
}

/// Removes a tenant and purges its data, as the test's system actor.
async fn purge(app: &App, id: &TenantId) {
    fleet::remove(app, &Actor::System("test"), id, true)
        .await
        .unwrap();
}

/// Waits up to `within` for a message in the ops chat that names `tenant` and
/// holds `needle`.
async fn ops_alert(
    admin: &FakeBot,
    needle: &str,
    tenant: &TenantId,
    within: Duration,
) -> common::fake_telegram::ChatMessage {
    admin
        .wait_for_message(OPS_CHAT, within, |m| {
            m.text.contains(needle) && m.text.contains(tenant.as_str())
        })
        .await
        .unwrap()
}

fn alerts_in(admin: &FakeBot, needle: &str, tenant: &TenantId) -> usize {
    admin
        .messages_in(OPS_CHAT)
        .iter()
        .filter(|m| m.from_bot && m.text.contains(needle) && m.text.contains(tenant.as_str()))
        .count()
}

/// See the module doc: the crash itself alerts, a restart of the admin neither
/// repeats nor forgets it, recovery is reported with its duration, and a stop
/// the operator asked for is silent.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_cell_alerts_once_and_recovers_across_an_admin_restart() {
    let env = TestEnv::new("a_killed_cell_alerts_once", 19600, "180s");
    let (fake, admin) = fake_telegram().await;
    let app = app_with_monitor(&env, &fake, false).await;
    let id = create(&app, &env.tenant("real"), OPENCLAW_IMAGE, BOT_TOKEN).await;

    let serving = Serving::start(&app).await;
    serving.await_sweeps(2).await;
    assert_eq!(
        alerts_in(&admin, "DOWN", &id),
        0,
        "a healthy cell raises nothing"
    );

    docker_ok(&["kill", &id.cell_name()]);
    let down = ops_alert(&admin, "DOWN", &id, Duration::from_secs(60)).await;
    assert!(
        down.text.contains("container"),
        "the alert names the check: {}",
        down.text
    );
    assert!(down.text.contains("Last error"), "{}", down.text);
    let buttons: Vec<String> = down
        .keyboard
        .iter()
        .flatten()
        .filter_map(|b| b.callback_data.clone())
        .collect();
    // Each button carries the tenant's stamp (generation and creation time).
    let record = fleet::record(&app, &id).unwrap();
    let stamp = format!("{}.{}", record.generation, record.created_at);
    assert_eq!(
        buttons,
        [
            format!("t:r:{stamp}:{id}"),
            format!("t:l:{stamp}:{id}"),
            format!("m:1h:{stamp}:{id}")
        ]
    );

    // The admin restarts while the cell is down: no second DOWN.
    serving.stop().await;
    let serving = Serving::start(&app).await;
    serving.await_sweeps(4).await;
    assert_eq!(
        alerts_in(&admin, "DOWN", &id),
        1,
        "an admin restart must not repeat an open alert"
    );

    docker_ok(&["start", &id.cell_name()]);
    let recovered = ops_alert(&admin, "RECOVERED", &id, Duration::from_secs(120)).await;
    assert!(recovered.text.contains("after"), "{}", recovered.text);

    // Stopped through MTP: silence.
    fleet::stop(&app, &Actor::System("test"), &id)
        .await
        .unwrap();
    serving.await_sweeps(4).await;
    assert_eq!(
        alerts_in(&admin, "DOWN", &id),
        1,
        "a stop the operator asked for raises nothing"
    );

    let metrics = metrics_text(serving.metrics).await;
    assert_prometheus_text(&metrics);
    assert!(
        metrics.contains(&format!("mtp_tenant_up{{tenant=\"{id}\"}} 0")),
        "{metrics}"
    );
    serving.stop().await;
    purge(&app, &id).await;
}

/// Fake cells: a Telegram 409 conflict raises the channel alert naming it; a
/// cell that exited is started again by self-healing and the operator is told;
/// one slow cell does not delay the sweep of the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn channel_conflicts_alert_exited_cells_heal_and_slow_cells_do_not_block() {
    let env = TestEnv::new("channel_conflicts_alert", 19620, "60s");
    let (fake, admin) = fake_telegram().await;
    let app = app_with_monitor(&env, &fake, true).await;
    let conflict = create(
        &app,
        &env.tenant("conflict"),
        FAKE_IMAGE,
        "7000000011:AAFakeTokenForTestsOnly_conflict01",
    )
    .await;
    let crashed = create(
        &app,
        &env.tenant("crashed"),
        FAKE_IMAGE,
        "7000000012:AAFakeTokenForTestsOnly_crashed001",
    )
    .await;
    let slow = create(
        &app,
        &env.tenant("slow"),
        FAKE_IMAGE,
        "7000000013:AAFakeTokenForTestsOnly_slowcell01",
    )
    .await;

    // A slow gateway: every health call takes 20 s, far over the 3 s probe timeout.
    fake_control(
        &app,
        &slow,
        "PUT",
        "/__fake/behaviour",
        serde_json::json!({ "delaysMs": { "health": 20000 } }),
    )
    .await;
    let started = Instant::now();
    let sweep = fleet::health::sweep(
        &app,
        fleet::health::SweepSettings {
            probe_timeout: Duration::from_secs(3),
            concurrency: 8,
        },
    )
    .await
    .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "one slow cell held the sweep for {:?}",
        started.elapsed()
    );
    for health in &sweep.tenants {
        let rpc = health
            .rpc_health
            .as_ref()
            .expect("a running, paired cell is probed");
        if health.record.id == slow {
            assert!(
                !rpc.ok
                    && rpc
                        .error
                        .as_deref()
                        .unwrap_or_default()
                        .contains("timed out"),
                "{rpc:?}"
            );
        } else {
            assert!(rpc.ok, "{}: {rpc:?}", health.record.id);
        }
    }
    fake_control(
        &app,
        &slow,
        "PUT",
        "/__fake/behaviour",
        serde_json::json!({ "delaysMs": { "health": null } }),
    )
    .await;

    let serving = Serving::start(&app).await;
    fake_control(
        &app,
        &conflict,
        "PUT",
        "/__fake/channels/telegram",
        serde_json::json!({ "preset": "conflict" }),
    )
    .await;
    let alert = ops_alert(&admin, "channel DOWN", &conflict, Duration::from_secs(60)).await;
    assert!(
        alert.text.contains("409") || alert.text.to_lowercase().contains("conflict"),
        "{}",
        alert.text
    );

    docker_ok(&["kill", &crashed.cell_name()]);
    ops_alert(&admin, "DOWN", &crashed, Duration::from_secs(60)).await;
    ops_alert(
        &admin,
        "started it again",
        &crashed,
        Duration::from_secs(60),
    )
    .await;
    ops_alert(&admin, "RECOVERED", &crashed, Duration::from_secs(60)).await;
    serving.stop().await;
    for id in [conflict, crashed, slow] {
        purge(&app, &id).await;
    }
}

/// Every sample line is `name{labels} value` and every family has HELP and TYPE.
fn assert_prometheus_text(text: &str) {
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# ") {
            assert!(
                rest.starts_with("HELP ") || rest.starts_with("TYPE "),
                "bad comment line: {line}"
            );
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line}"));
        assert!(value.parse::<f64>().is_ok(), "bad value in {line}");
        let name = series.split('{').next().unwrap();
        assert!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "bad name in {line}"
        );
        assert!(
            text.contains(&format!("# TYPE {name} ")),
            "no TYPE for {name}"
        );
    }
    for family in [
        "mtp_tenant_up",
        "mtp_probe_latency_seconds",
        "mtp_sweep_duration_seconds",
        "mtp_admin_process_resident_memory_bytes",
        "mtp_tenant_alerts_firing",
        "mtp_tenant_restarts",
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} gauge")),
            "{family} missing:\n{text}"
        );
    }
}

/// With a fake cell: `/health` lists it from the last sweep; a gateway that
/// exits and is restarted by Docker's policy raises a crash alert with its
/// last log lines (one crash is "crashed"; it was "crash loop" before issue 10); while muted (`/mute`) a killed cell raises nothing; `/unmute`
/// turns alerts on again and the outage still going on is then reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn health_crash_loops_and_mute_with_a_fake_cell() {
    const DEADLINE: Duration = Duration::from_secs(60);
    let env = TestEnv::new("monitor_health_mute", 19640, "60s");
    let (fake, admin) = fake_telegram().await;
    let app = app_with_monitor(&env, &fake, false).await;
    let id = create(
        &app,
        &env.tenant("loop"),
        FAKE_IMAGE,
        "7000000021:AAFakeTokenForTestsOnly_crashloop1",
    )
    .await;
    let serving = Serving::start(&app).await;
    serving.await_sweeps(2).await;
    let (dm, operator) = (ChatId(OPERATOR as i64), teloxide::types::UserId(OPERATOR));

    admin.push_message(dm, operator, "/health");
    let health = admin
        .wait_for_message(dm, DEADLINE, |m| {
            m.from_bot && m.text.contains("Fleet health")
        })
        .await
        .unwrap();
    assert!(health.text.contains(id.as_str()), "{}", health.text);

    // The gateway exits; Docker's restart policy brings it back: a crash.
    fake_control(&app, &id, "POST", "/__fake/shutdown", serde_json::json!({})).await;
    let crash = ops_alert(&admin, "crashed", &id, DEADLINE).await;
    assert!(
        crash.text.contains("[gateway] listening"),
        "the last log lines: {}",
        crash.text
    );

    // Muted: a killed cell raises nothing.
    admin.push_message(dm, operator, &format!("/mute {id} 1h"));
    admin
        .wait_for_message(dm, DEADLINE, |m| {
            m.from_bot && m.text.contains("muted until")
        })
        .await
        .unwrap();
    docker_ok(&["kill", &id.cell_name()]);
    serving.await_sweeps(4).await;
    assert_eq!(alerts_in(&admin, "DOWN", &id), 0, "muted: no DOWN");

    // Unmuted: the outage that is still going on is reported.
    admin.push_message(dm, operator, &format!("/unmute {id}"));
    admin
        .wait_for_message(dm, DEADLINE, |m| m.from_bot && m.text.contains("on again"))
        .await
        .unwrap();
    ops_alert(&admin, "DOWN", &id, DEADLINE).await;
    serving.stop().await;
    purge(&app, &id).await;
}

/// Kills the gateway process inside the cell (the child of `--init`'s
/// docker-init, PID 1; node names itself "MainThread"), as a crash would: the container exits with 137 on its
/// own, and Docker's restart policy starts it again. No Docker API signal.
fn crash_inside(tenant: &TenantId) {
    docker_ok(&[
        "exec",
        &tenant.cell_name(),
        "sh",
        "-c",
        r#"for d in /proc/[0-9]*; do set -- $(cat $d/stat 2>/dev/null); if [ "$4" = 1 ]; then kill -9 $1; fi; done"#,
    ]);
}

/// Alerts in the ops chat about `tenant`, oldest first.
fn alerts_about(admin: &FakeBot, tenant: &TenantId) -> Vec<String> {
    common::serving::alerts_about(admin, OPS_CHAT, tenant)
}

// See: issue 10 (a crash before the first sweep saw the tenant went unreported,
// and nothing ever said the client's bot was back).
/// A real OpenClaw cell created after the monitor's only sweep (it sweeps
/// hourly) crashes inside: the alert comes at once from Docker's events,
/// naming the exit code and the redacted log tail, without another sweep;
/// once the gateway answers again, one message says so with the downtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crash_inside_a_real_cell_alerts_at_once_and_says_when_it_is_back() {
    let env = TestEnv::new("monitor_events_real_crash", 20000, "180s");
    let (fake, admin) = fake_telegram().await;
    let app = app_sweeping_every(&env, &fake, false, "1h").await;
    let serving = Serving::start(&app).await;
    serving.await_sweeps(1).await;
    let id = create(&app, &env.tenant("real"), OPENCLAW_IMAGE, BOT_TOKEN).await;
    let gateway_token = common::store_of(&app)
        .secret(&id, SecretKind::GatewayToken)
        .unwrap()
        .unwrap();

    crash_inside(&id);
    let crash = ops_alert(&admin, "crashed", &id, Duration::from_secs(60)).await;
    assert!(
        crash.text.contains("code 137"),
        "the exit code: {}",
        crash.text
    );
    assert!(
        crash.text.contains("Last log lines") && !crash.text.contains("(no log lines)"),
        "the log tail: {}",
        crash.text
    );
    assert!(
        !crash.text.contains(gateway_token.expose().as_str()) && !crash.text.contains(BOT_TOKEN),
        "secrets in the alert: {}",
        crash.text
    );
    assert_eq!(
        serving.sweeps().await,
        1,
        "the crash was reported by a sweep, not by Docker's events"
    );

    let back = ops_alert(&admin, "is back", &id, Duration::from_secs(180)).await;
    assert!(back.text.contains("without it"), "{}", back.text);
    assert!(
        fleet::show(&app, &id).await.unwrap().health == fleet::Health::Ok,
        "back means the gateway answers"
    );
    let about = alerts_about(&admin, &id);
    assert_eq!(
        about.len(),
        2,
        "one crash alert and one back message, nothing else: {about:#?}"
    );
    // The tenant's history has it, with the exit code, beside its creation.
    let events = fleet::history::events(&app, &id, None, 20).unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    let crashed = events
        .iter()
        .find(|e| e.kind == fleet::history::EventKind::Crashed)
        .unwrap_or_else(|| panic!("no crash in {events:#?}"));
    assert!(crashed.action.contains("exit 137"), "{crashed:?}");
    assert!(
        kinds.contains(&"created") && kinds.contains(&"alert_cleared"),
        "{kinds:?}"
    );
    let out = env.mtp(&["tenant", "events", id.as_str(), "--since", "1h", "--json"]);
    common::assert_ok(&out);
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed[0]["kind"], events[0].kind.as_str(), "{listed}");
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "crashed"),
        "{listed}"
    );
    serving.stop().await;
    purge(&app, &id).await;
}

/// Fake cells, a monitor that does not sweep in between: a restart, stop and
/// start through MTP raise nothing (the next crash of another cell, reported
/// in event order, shows the monitor has seen them); crashes of a cell that
/// come back each time are "crashed" twice, then one "crash loop", each
/// followed by a "back" message.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stops_through_mtp_are_silent_and_repeated_crashes_become_a_crash_loop() {
    const DEADLINE: Duration = Duration::from_secs(60);
    let env = TestEnv::new("monitor_events_crash_loop", 20020, "60s");
    let (fake, admin) = fake_telegram().await;
    let app = app_sweeping_every(&env, &fake, false, "1h").await;
    let calm = create(
        &app,
        &env.tenant("calm"),
        FAKE_IMAGE,
        "7000000031:AAFakeTokenForTestsOnly_calmcell01",
    )
    .await;
    let looping = create(
        &app,
        &env.tenant("loop"),
        FAKE_IMAGE,
        "7000000032:AAFakeTokenForTestsOnly_loopcell01",
    )
    .await;
    let serving = Serving::start(&app).await;
    serving.await_sweeps(1).await;
    let actor = Actor::System("test");
    fleet::restart(&app, &actor, &calm).await.unwrap();
    fleet::stop(&app, &actor, &calm).await.unwrap();
    fleet::start(&app, &actor, &calm).await.unwrap();

    for round in 1..=3 {
        let seen: Vec<MessageId> = admin.messages_in(OPS_CHAT).iter().map(|m| m.id).collect();
        fake_control(
            &app,
            &looping,
            "POST",
            "/__fake/shutdown",
            serde_json::json!({}),
        )
        .await;
        let needle = if round < 3 { "crashed" } else { "crash loop" };
        let new_alert = |needle: &'static str| {
            let seen = &seen;
            let looping = &looping;
            move |m: &common::fake_telegram::ChatMessage| {
                m.text.contains(needle)
                    && m.text.contains(looping.as_str())
                    && !seen.contains(&m.id)
            }
        };
        let alert = admin
            .wait_for_message(OPS_CHAT, DEADLINE, new_alert(needle))
            .await
            .unwrap_or_else(|err| panic!("round {round}: {err}"));
        if round == 3 {
            assert!(alert.text.contains("3 crashes"), "{}", alert.text);
        }
        admin
            .wait_for_message(OPS_CHAT, DEADLINE, new_alert("is back"))
            .await
            .unwrap_or_else(|err| panic!("round {round}: {err}"));
    }
    assert_eq!(
        alerts_about(&admin, &calm),
        Vec::<String>::new(),
        "a restart, stop and start through MTP raise nothing"
    );
    assert_eq!(alerts_in(&admin, "crashed", &looping), 2);
    assert_eq!(alerts_in(&admin, "crash loop", &looping), 1);
    assert_eq!(
        serving.sweeps().await,
        1,
        "all of it came from Docker's events"
    );
    serving.stop().await;
    for id in [calm, looping] {
        purge(&app, &id).await;
    }
}

/// `docker inspect` of the cell: (container id, running, generation label).
fn cell_inspect(tenant: &TenantId) -> Option<(String, bool, String)> {
    let out = docker(&[
        "inspect",
        "-f",
        "{{.Id}} {{.State.Running}} {{index .Config.Labels \"mtp.generation\"}}",
        &tenant.cell_name(),
    ]);
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut parts = text.split_whitespace();
    Some((
        parts.next()?.to_string(),
        parts.next()? == "true",
        parts.next()?.to_string(),
    ))
}

/// A running tenant's container removed behind MTP's back (`docker rm -f`)
/// is made again by the monitor, once, from the record (same generation),
/// started, and its gateway answers; one alert says so; no DOWN, no
/// self-heal attempt (there was nothing to start), and later sweeps neither
/// repair nor alert again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_missing_container_is_made_again_once_with_one_alert() {
    const DEADLINE: Duration = Duration::from_secs(60);
    let env = TestEnv::new("monitor_missing_repair", 21400, "60s");
    let (fake, admin) = fake_telegram().await;
    let app = app_with_monitor(&env, &fake, true).await;
    let id = create(
        &app,
        &env.tenant("gone"),
        FAKE_IMAGE,
        "7000000031:AAFakeTokenForTestsOnly_missing01",
    )
    .await;
    let generation = fleet::record(&app, &id).unwrap().generation.to_string();
    let (before, _, _) = cell_inspect(&id).expect("the cell exists");
    let serving = Serving::start(&app).await;
    serving.await_sweeps(2).await;

    docker_ok(&["rm", "-f", &id.cell_name()]);
    let alert = ops_alert(&admin, "was missing", &id, DEADLINE).await;
    assert!(alert.text.contains("made it again"), "{}", alert.text);
    let (after, running, label) = cell_inspect(&id).expect("the cell was made again");
    assert_ne!(after, before, "a new container");
    assert!(running, "the new container runs");
    assert_eq!(label, generation, "the recorded generation");
    let deadline = Instant::now() + DEADLINE;
    while !fleet::events::gateway_answers(&app, &id).await.unwrap() {
        assert!(
            Instant::now() < deadline,
            "/healthz of the new cell never answered"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    serving.await_sweeps(4).await;
    assert_eq!(
        alerts_in(&admin, "missing", &id),
        1,
        "one alert per disappearance"
    );
    assert_eq!(
        cell_inspect(&id).map(|(container, ..)| container),
        Some(after),
        "no second repair"
    );
    assert_eq!(
        alerts_in(&admin, "DOWN", &id),
        0,
        "repaired at once: no DOWN"
    );
    assert_eq!(
        alerts_in(&admin, "start it", &id),
        0,
        "no self-heal attempt"
    );
    assert_eq!(
        alerts_in(&admin, "started it again", &id),
        0,
        "no self-heal"
    );

    // A second disappearance, one that cannot be repaired (its data dir is
    // gone): one alert saying why, no attempt each sweep, and the container
    // check's DOWN as for any outage; still no self-heal.
    let state = app.tenant_dir(&id).join("state");
    let aside = app.tenant_dir(&id).join("state.aside");
    std::fs::rename(&state, &aside).unwrap();
    docker_ok(&["rm", "-f", &id.cell_name()]);
    let failed = ops_alert(&admin, "could not make it again", &id, DEADLINE).await;
    assert!(
        failed.text.contains("data dir"),
        "says why: {}",
        failed.text
    );
    ops_alert(&admin, "DOWN", &id, DEADLINE).await;
    serving.await_sweeps(3).await;
    assert_eq!(
        alerts_in(&admin, "could not make it again", &id),
        1,
        "tried once for this disappearance"
    );
    assert_eq!(alerts_in(&admin, "was missing", &id), 1);
    assert!(cell_inspect(&id).is_none(), "nothing was made");
    assert_eq!(
        alerts_in(&admin, "start it", &id),
        0,
        "no self-heal attempt"
    );
    std::fs::rename(&aside, &state).unwrap();
    serving.stop().await;
    purge(&app, &id).await;
}

/// The backup schedule (issue 11): once the day's time has passed, `mtp
/// serve` backs up every tenant and the admin's store, once; a failed backup
/// and a tenant with no backup for over two days are reported in the ops chat;
/// an admin restarted the same day does not run it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_schedule_backs_up_once_a_day_and_reports_failed_and_stale_backups() {
    let env = TestEnv::new("the_schedule_backs_up_once_a_day", 21680, "60s");
    // Midnight has always passed: the day's run is due at the first sweep.
    let config = std::fs::read_to_string(&env.config_path).unwrap();
    let config = config.replace("schedule: \"off\"", "schedule: \"00:00\"");
    std::fs::write(&env.config_path, config).unwrap();
    let (fake, admin) = fake_telegram().await;
    let app = app_with_monitor(&env, &fake, false).await;
    let good = create(&app, &env.tenant("good"), FAKE_IMAGE, BOT_TOKEN).await;
    let other_token = BOT_TOKEN.replacen("7000000001", "7000000002", 1);
    let lost = create(&app, &env.tenant("lost"), FAKE_IMAGE, &other_token).await;
    // `lost` has lost its data dir and is three days old: its backup fails,
    // and it has had none for longer than twice the schedule.
    std::fs::remove_dir_all(
        env.data_dir()
            .join("tenants")
            .join(lost.as_str())
            .join("state"),
    )
    .unwrap();
    common::store_of(&app)
        .update_tenant(&lost, |record| {
            record.created_at -= 3 * 86_400;
            Ok(())
        })
        .unwrap();

    let serving = Serving::start(&app).await;
    ops_alert(
        &admin,
        "scheduled backup failed",
        &lost,
        Duration::from_secs(60),
    )
    .await;
    ops_alert(&admin, "has had no backup", &lost, Duration::from_secs(60)).await;
    let good_backups = fleet::backup::list(&app, Some(&good)).unwrap();
    assert_eq!(good_backups.len(), 1, "{good_backups:?}");
    assert_eq!(fleet::backup::list_admin(&app).unwrap().len(), 1);
    assert_eq!(alerts_in(&admin, "has had no backup", &good), 0);
    serving.stop().await;

    // The same day, a restarted admin does not back everyone up again.
    let serving = Serving::start(&app).await;
    serving.await_sweeps(3).await;
    assert_eq!(fleet::backup::list(&app, Some(&good)).unwrap().len(), 1);
    assert_eq!(fleet::backup::list_admin(&app).unwrap().len(), 1);
    serving.stop().await;
    purge(&app, &good).await;
    purge(&app, &lost).await;
}
