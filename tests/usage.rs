//! Usage and billing end to end (issue 5): collection from a real OpenClaw cell
//! (zero usage), and from fake-gateway cells programmed with `PUT /__fake/usage`:
//! aggregation across days and models, the ledger that never goes down, the CLI's
//! table, CSV and JSON, the chart, budget thresholds notified once per month
//! across admin restarts, suspension (channel or cell) and resume, and the usage
//! loop's timer under a paused clock.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{Days, NaiveDate, Utc};
use serde_json::{Value, json};
use teloxide::types::{ChatId, UserId};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use common::fake_telegram::{Failure, FakeTelegram};
use common::{BOT_TOKEN, FAKE_IMAGE, TestEnv, json, stdout};
use mtp::config::AdminConfig;
use mtp::fleet::{self, Actor, App, BudgetAlert, BudgetOutcome, Collected, Period, UsageFigures};
use mtp::store;
use mtp::tenant::{
    BotToken, BudgetAction, CellState, DmPolicy, SecretKind, TenantId, TenantSpec, Usd,
};
use mtp::usage::period::PeriodSpec;
use mtp::usage::{self, Report};

const OPUS: &str = "anthropic/claude-opus-4-6";
const SONNET: &str = "anthropic/claude-sonnet-4-6";
/// Waits end as soon as their condition holds; the deadline is for a busy machine.
const DEADLINE: Duration = Duration::from_secs(20);

/// Adds a `usage` section (a JSON5 object) to the test's config file.
fn set_usage(env: &TestEnv, usage: &str) {
    let config = std::fs::read_to_string(&env.config_path).expect("read config");
    let end = config.rfind('}').expect("the config is an object");
    std::fs::write(
        &env.config_path,
        format!("{}  usage: {usage},\n}}\n", &config[..end]),
    )
    .expect("write config");
}

fn today() -> NaiveDate {
    Utc::now().date_naive()
}

fn days_ago(n: u64) -> NaiveDate {
    today().checked_sub_days(Days::new(n)).unwrap()
}

/// An app whose admin bot (`admin_token`) talks to the fake Bot API, with one operator.
async fn bot_app(env: &TestEnv, telegram: &FakeTelegram, admin_token: &str, operator: u64) -> App {
    let vars = BTreeMap::from([
        ("MTP_TELEGRAM_TOKEN".to_string(), admin_token.to_string()),
        ("MTP_OPERATORS".to_string(), operator.to_string()),
        (
            "MTP_TELEGRAM_API_URL".to_string(),
            telegram.url().to_string(),
        ),
    ]);
    App::open(AdminConfig::load(Some(&env.config_path), None, &vars).unwrap())
        .await
        .unwrap()
}

type BotTask = tokio::task::JoinHandle<anyhow::Result<()>>;

/// Runs the bot with `link` until the returned sender fires; returns once it
/// has registered its commands (it polls from then on).
async fn start_bot(
    app: &App,
    admin: &common::fake_telegram::FakeBot,
    link: mtp::bot::MonitorLink,
) -> (tokio::sync::oneshot::Sender<()>, BotTask) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let bot = tokio::spawn(mtp::bot::run_with_monitor(
        app.clone(),
        Some(link),
        async move {
            let _ = stopped.await;
        },
    ));
    admin
        .wait_for(DEADLINE, |call| {
            call.method.eq_ignore_ascii_case("setMyCommands")
        })
        .await
        .unwrap();
    (stop, bot)
}

/// A tenant whose cell is the fake gateway, created as an operator would; every
/// tenant needs its own bot, hence `bot_id`.
async fn fake_cell(app: &App, id: &str, bot_id: u64) -> TenantId {
    let image = common::docker(&["image", "inspect", FAKE_IMAGE]);
    assert!(
        image.status.success(),
        "image {FAKE_IMAGE} is missing; run scripts/build-fake-image.sh"
    );
    let id: TenantId = id.parse().unwrap();
    let spec = TenantSpec {
        id: id.clone(),
        display_name: None,
        bot_token: BotToken::parse(&BOT_TOKEN.replacen("7000000001", &bot_id.to_string(), 1))
            .unwrap(),
        provider_key: None,
        model: app.config().cell.model.clone(),
        image: Some(FAKE_IMAGE.to_string()),
        limits: None,
        dm_policy: DmPolicy::Pairing,
        skills: None,
        bot_username: None,
        keep_failed: false,
    };
    let view = fleet::create(app, &Actor::System("test"), spec, &mut |_| {})
        .await
        .expect("the fake cell is created");
    assert!(view.record.paired, "create pairs the admin");
    id
}

/// Programs the fake's usage figures: `(day, model, input, output, cost)`.
async fn program(app: &App, id: &TenantId, entries: &[(NaiveDate, &str, u64, u64, f64)]) {
    let entries: Vec<Value> = entries
        .iter()
        .map(|(day, model, input, output, cost)| {
            let (provider, model) = model.split_once('/').unwrap();
            json!({"date": day.to_string(), "provider": provider, "model": model, "input": input, "output": output,
                "inputCost": cost, "outputCost": 0.0})
        })
        .collect();
    control(
        app,
        id,
        reqwest::Method::PUT,
        "usage",
        json!({ "entries": entries }),
    )
    .await;
}

/// A call of the fake's control API with the tenant's gateway token.
async fn control(
    app: &App,
    id: &TenantId,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> Value {
    let port = common::store_of(app).tenant(id).unwrap().unwrap().port;
    let token = common::store_of(app)
        .secret(id, SecretKind::GatewayToken)
        .unwrap()
        .unwrap();
    let response = reqwest::Client::new()
        .request(method, format!("http://127.0.0.1:{port}/__fake/{path}"))
        .bearer_auth(token.expose())
        .json(&body)
        .send()
        .await
        .expect("the fake's control API answers");
    let status = response.status();
    let reply: Value = response.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{path}: {status} {reply}");
    reply
}

async fn collect(app: &App, id: &TenantId) -> Collected {
    let report = fleet::collect_tenant_usage(app, id).await.unwrap();
    report.tenants.into_iter().next().unwrap().1
}

/// Ledger figures as the store takes them (tests fill the ledger directly).
fn figures(input: u64, output: u64, cost: f64) -> store::UsageFigures {
    store::UsageFigures {
        input,
        output,
        cache_read: 0,
        cache_write: 0,
        cost: Usd::from_f64(cost),
    }
}

fn close(a: Usd, b: f64) -> bool {
    (a.to_f64() - b).abs() < 1e-9
}

/// The days `spec` covers today, in the usage time zone.
fn resolve(app: &App, spec: PeriodSpec) -> Period {
    spec.resolve(fleet::today(app, Utc::now()))
}

/// A tenant on record, stopped and with no container: collection skips it
/// without touching Docker, and its ledger is filled by the test.
fn stopped_tenant(app: &App, id: &TenantId) {
    common::store_of(app)
        .insert_tenant(id, |_| {
            Ok(mtp::tenant::TenantRecord {
                id: id.clone(),
                display_name: None,
                state: CellState::Stopped,
                port: 19799,
                subnet: "10.213.0.0/28".to_string(),
                image: FAKE_IMAGE.to_string(),
                image_id: None,
                model: app.config().cell.model.clone(),
                limits: mtp::tenant::Limits {
                    memory_bytes: 1 << 30,
                    nano_cpus: 1_000_000_000,
                    pids: 512,
                },
                bot_id: 1,
                bot_username: None,
                generation: 1,
                created_at: 0,
                updated_at: 0,
                last_error: None,
                paired: false,
                create_progress: Default::default(),
                purge_on_remove: false,
                muted_until: None,
                maintenance_until: None,
                slept_at: None,
                wake_at: None,
                pinned_image: None,
                node: None,
            })
        })
        .unwrap();
}

/// The budget alerts of a check now.
async fn check_budgets(app: &App) -> Vec<BudgetAlert> {
    fleet::check_budgets(app, Utc::now()).await.unwrap()
}

/// Programs `entry` in the tenant's fake, collects it and checks the budgets;
/// returns the alerts.
async fn spend_and_check(
    app: &App,
    id: &TenantId,
    entry: (NaiveDate, &str, u64, u64, f64),
) -> Vec<BudgetAlert> {
    program(app, id, &[entry]).await;
    collect(app, id).await;
    check_budgets(app).await
}

/// The alert among `alerts` that is about `id`.
#[track_caller]
fn alert_about<'a>(alerts: &'a [BudgetAlert], id: &TenantId) -> &'a BudgetAlert {
    alerts
        .iter()
        .find(|a| &a.tenant == id)
        .unwrap_or_else(|| panic!("no alert about {id} in {alerts:?}"))
}

/// The thresholds among `alerts` that are about `id`.
fn thresholds(alerts: &[BudgetAlert], id: &TenantId) -> Vec<u8> {
    alerts
        .iter()
        .filter(|a| &a.tenant == id)
        .map(|a| a.threshold)
        .collect()
}

/// Whether the tenant's Telegram channel runs, as `channels.status` says.
async fn channel_running(app: &App, id: &TenantId) -> Option<bool> {
    fleet::gateway_info(app, id)
        .await
        .unwrap()
        .telegram
        .and_then(|telegram| telegram.running)
}

/// A real cell answers `usage.cost` and `sessions.usage` (with no usage: a real
/// cell reaches no model here); every day of the window lands in the ledger
/// at zero, read now, and the CLI reports it.
#[test]
fn a_real_cell_is_collected_and_reports_zero_usage() {
    let env = TestEnv::new("usage_real_cell", 19700, "180s");
    let id = env.tenant("real");
    let created = json(&env.create(&id, &["--json"]));
    assert_eq!(created["paired"], true, "{created}");

    let collected = json(&env.mtp(&["usage", "collect", "--json"]));
    let row = &collected["tenants"][0];
    assert_eq!(
        (row["tenant"].as_str(), row["outcome"].as_str()),
        (Some(id.as_str()), Some("read")),
        "{collected}"
    );
    let start =
        NaiveDate::parse_from_str(collected["start"].as_str().unwrap(), "%Y-%m-%d").unwrap();
    let end = NaiveDate::parse_from_str(collected["end"].as_str().unwrap(), "%Y-%m-%d").unwrap();
    assert_eq!(end, today());
    assert_eq!(
        row["days"].as_i64(),
        Some((end - start).num_days() + 1),
        "one row per day of the window: {collected}"
    );

    let shown = json(&env.mtp(&["usage", &id, "--format", "json"]));
    assert_eq!(shown["totals"]["cost"], 0.0, "{shown}");
    assert_eq!(shown["totals"]["total_tokens"], 0, "{shown}");
    assert!(shown["as_of"].is_string(), "read just now: {shown}");
    assert_eq!(shown["period"]["spec"], "this-month");
    let month = Period::month_of(today());
    assert_eq!(
        shown["daily"].as_array().unwrap().len() as i64,
        month.len_days()
    );
    assert_eq!(shown["budget"]["amount"], Value::Null);
    let listed = env.mtp(&["usage", "--all"]);
    assert!(stdout(&listed).contains(&id), "{}", stdout(&listed));
}

/// Figures across days and models add up in the summary, the CSV and the CLI's
/// JSON; a later, smaller reading (reaped transcripts) lowers nothing, a larger
/// one raises its day; a cell that fails keeps its figures; the chart decodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_adds_up_days_and_models_and_never_goes_down() {
    let env = TestEnv::new("usage_ledger", 19720, "60s");
    let id_text = env.tenant("ledger");
    set_usage(
        &env,
        &format!(
            "{{ plans: {{ std: {{ markupPercent: 20 }} }}, tenants: {{ '{id_text}': {{ plan: 'std', monthlyFee: 0 }} }} }}"
        ),
    );
    let app = env.app().await;
    let id = fake_cell(&app, &id_text, 7_000_000_201).await;
    let (d0, d1, d2) = (days_ago(2), days_ago(1), today());
    program(
        &app,
        &id,
        &[
            (d0, OPUS, 1000, 200, 3.0),
            (d0, SONNET, 500, 0, 0.5),
            (d1, OPUS, 100, 10, 0.25),
            (d2, SONNET, 300, 40, 0.1),
        ],
    )
    .await;

    let Collected::Read {
        days,
        models,
        ratcheted,
    } = collect(&app, &id).await
    else {
        panic!("the fake cell is read")
    };
    assert!(days >= 3, "the whole window is read: {days}");
    assert_eq!(models, 4, "one row per model per active day");
    assert_eq!(ratcheted.held, 0);

    let range: PeriodSpec = format!("{d0}..{d2}").parse().unwrap();
    let summary = fleet::tenant_summary(&app, &id, resolve(&app, range)).unwrap();
    assert_eq!((summary.totals.input, summary.totals.output), (1900, 250));
    assert!(close(summary.totals.cost, 3.85), "{:?}", summary.totals);
    let models: Vec<(&str, f64)> = summary
        .models
        .iter()
        .map(|(m, f)| (m.as_str(), f.cost.to_f64()))
        .collect();
    assert_eq!(models.len(), 2, "{models:?}");
    assert_eq!(models[0].0, OPUS);
    assert!(
        (models[0].1 - 3.25).abs() < 1e-9 && (models[1].1 - 0.6).abs() < 1e-9,
        "{models:?}"
    );
    let daily: Vec<Usd> = summary.daily.iter().map(|(_, f)| f.cost).collect();
    assert!(
        close(daily[0], 3.5) && close(daily[1], 0.25) && close(daily[2], 0.1),
        "{daily:?}"
    );
    assert_eq!(
        daily.iter().sum::<Usd>(),
        summary.totals.cost,
        "the days add up to the total"
    );
    assert!(
        close(summary.bill.total, 3.85 * 1.2),
        "20% markup from the plan: {:?}",
        summary.bill
    );
    assert!(summary.as_of.is_some());

    // CSV: one row per day and model, with these columns and values.
    let csv = stdout(&env.mtp(&[
        "usage",
        id.as_str(),
        "--period",
        &range.to_string(),
        "--format",
        "csv",
    ]));
    let expected = format!(
        "tenant,date,model,input_tokens,output_tokens,cache_read_tokens,cache_write_tokens,total_tokens,cost_usd
{id},{d0},{OPUS},1000,200,0,0,1200,3.000000
{id},{d0},{SONNET},500,0,0,0,500,0.500000
{id},{d1},{OPUS},100,10,0,0,110,0.250000
{id},{d2},{SONNET},300,40,0,0,340,0.100000
"
    );
    assert_eq!(csv, expected);
    let shown = json(&env.mtp(&[
        "usage",
        id.as_str(),
        "--period",
        &range.to_string(),
        "--format",
        "json",
    ]));
    assert_eq!(shown["totals"]["input_tokens"], 1900, "{shown}");
    assert_eq!(shown["models"][0]["model"], OPUS, "{shown}");
    assert_eq!(shown["daily"].as_array().unwrap().len(), 3, "{shown}");
    assert_eq!(shown["billable"]["markup_percent"], 20.0, "{shown}");
    let table = stdout(&env.mtp(&["usage", "--all", "--period", &range.to_string()]));
    assert!(
        table.contains(id.as_str()) && table.contains("$3.85") && table.contains("$4.62"),
        "{table}"
    );

    // Transcripts reaped: the gateway now reports less. The ledger keeps its figures.
    program(
        &app,
        &id,
        &[(d0, SONNET, 10, 0, 0.01), (d2, SONNET, 300, 40, 0.1)],
    )
    .await;
    let Collected::Read { ratcheted, .. } = collect(&app, &id).await else {
        panic!("read")
    };
    assert!(ratcheted.held >= 2, "{ratcheted:?}");
    let again = fleet::tenant_summary(&app, &id, resolve(&app, range)).unwrap();
    assert_eq!(
        (again.totals, again.models.clone()),
        (summary.totals, summary.models.clone())
    );

    // More usage today raises today only.
    program(&app, &id, &[(d2, SONNET, 900, 40, 0.4)]).await;
    collect(&app, &id).await;
    let raised = fleet::tenant_summary(&app, &id, resolve(&app, range)).unwrap();
    assert!(close(raised.totals.cost, 4.15), "{:?}", raised.totals);
    assert_eq!(
        raised.rows.iter().find(|r| r.day == d2).unwrap().figures,
        UsageFigures::from(figures(900, 40, 0.4))
    );

    // A cell that fails is skipped; its figures stay.
    control(
        &app,
        &id,
        reqwest::Method::PUT,
        "behaviour",
        json!({"errors": {"usage.cost": {"code": "UNAVAILABLE", "message": "busy"}}}),
    )
    .await;
    assert!(matches!(collect(&app, &id).await, Collected::Failed(_)));
    assert_eq!(
        fleet::tenant_summary(&app, &id, resolve(&app, range))
            .unwrap()
            .totals,
        raised.totals
    );
    control(
        &app,
        &id,
        reqwest::Method::PUT,
        "behaviour",
        json!({"errors": {"usage.cost": null}}),
    )
    .await;
    assert!(matches!(collect(&app, &id).await, Collected::Read { .. }));

    // The chart of the summary is a PNG of the documented size.
    let days: Vec<(NaiveDate, f64)> = raised
        .daily
        .iter()
        .map(|(day, f)| (*day, f.cost.to_f64()))
        .collect();
    let png = usage::chart::cost_per_day("ledger", &days).unwrap();
    let reader = png::Decoder::new(png.as_slice()).read_info().unwrap();
    assert_eq!(
        (reader.info().width, reader.info().height),
        (usage::chart::WIDTH, usage::chart::HEIGHT)
    );

    // A stopped tenant is not read; its figures stay too.
    fleet::stop(&app, &Actor::System("test"), &id)
        .await
        .unwrap();
    assert_eq!(collect(&app, &id).await, Collected::NotRunning);
    assert_eq!(
        fleet::tenant_summary(&app, &id, resolve(&app, range))
            .unwrap()
            .totals,
        raised.totals
    );
}

/// 50%, 80% and 100% of a monthly budget are each notified once per month, also
/// after the admin restarts; at 100% a tenant is suspended as its budget says
/// (its channel stopped, kept stopped, and out of the health check; or its
/// cell stopped) until `resume`, and is not suspended again that month.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budgets_notify_once_per_month_and_suspend_until_resumed() {
    let env = TestEnv::new("usage_budgets", 19740, "60s");
    let (chan_text, cell_text) = (env.tenant("chan"), env.tenant("cell"));
    // The cell tenant's budget comes from config; the channel tenant's from an operator.
    set_usage(
        &env,
        &format!("{{ tenants: {{ '{cell_text}': {{ budget: 1, onBudget: 'stop-cell' }} }} }}"),
    );
    let app = env.app().await;
    let operator = Actor::Telegram(42);
    let chan = fake_cell(&app, &chan_text, 7_000_000_202).await;
    let cell = fake_cell(&app, &cell_text, 7_000_000_203).await;
    let budget = fleet::set_budget(
        &app,
        &operator,
        &chan,
        Some(Usd::cents(1000)),
        Some(BudgetAction::StopChannel),
    )
    .unwrap();
    assert!(budget.set_by_operator);

    let alerts = spend_and_check(&app, &chan, (today(), OPUS, 1000, 10, 5.5)).await;
    assert_eq!(thresholds(&alerts, &chan), vec![50], "{alerts:?}");
    assert_eq!(alerts[0].outcome, BudgetOutcome::Notified);
    assert!(close(alerts[0].spend, 5.5) && close(alerts[0].budget, 10.0));
    assert!(check_budgets(&app).await.is_empty(), "once");

    // The admin restarts: a new process reads the same store.
    drop(app);
    let app = env.app().await;
    assert!(
        check_budgets(&app).await.is_empty(),
        "once, across restarts"
    );
    assert_eq!(
        thresholds(
            &spend_and_check(&app, &chan, (today(), OPUS, 1000, 10, 8.5)).await,
            &chan
        ),
        vec![80]
    );

    // 100%: suspended by stopping the Telegram channel.
    assert_eq!(channel_running(&app, &chan).await, Some(true));
    let alerts = spend_and_check(&app, &chan, (today(), OPUS, 1000, 10, 12.0)).await;
    let alert = alert_about(&alerts, &chan);
    assert_eq!(
        (alert.threshold, &alert.outcome),
        (100, &BudgetOutcome::Suspended(BudgetAction::StopChannel))
    );
    assert_eq!(channel_running(&app, &chan).await, Some(false));
    let suspended: Vec<TenantId> = fleet::suspensions(&app)
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(suspended, vec![chan.clone()]);
    let status = fleet::budget_status(&app, &chan, Utc::now()).unwrap();
    assert_eq!(status.notified, vec![50, 80, 100]);
    // The monitor does not take a channel stopped for the budget for an outage.
    let sweep = fleet::health::sweep(
        &app,
        fleet::health::SweepSettings {
            probe_timeout: Duration::from_secs(5),
            concurrency: 2,
        },
    )
    .await
    .unwrap();
    let chan_health = sweep.tenants.iter().find(|t| t.record.id == chan).unwrap();
    assert!(chan_health.channel.is_none(), "{:?}", chan_health.channel);

    // The channel comes back (a restarted cell starts it): the next check stops it again, silently.
    fleet::rpc(
        &app,
        &chan,
        "channels.start",
        json!({"channel": "telegram"}),
    )
    .await
    .unwrap();
    assert_eq!(channel_running(&app, &chan).await, Some(true));
    assert!(thresholds(&check_budgets(&app).await, &chan).is_empty());
    assert_eq!(channel_running(&app, &chan).await, Some(false));

    // Resume: the channel runs, and stays running for the rest of the month.
    assert_eq!(
        fleet::resume(&app, &operator, &chan).await.unwrap(),
        fleet::Resumed::Resumed(BudgetAction::StopChannel)
    );
    assert_eq!(channel_running(&app, &chan).await, Some(true));
    assert!(fleet::suspensions(&app).unwrap().is_empty());
    assert!(thresholds(&check_budgets(&app).await, &chan).is_empty());
    assert_eq!(channel_running(&app, &chan).await, Some(true));
    assert_eq!(
        fleet::resume(&app, &operator, &chan).await.unwrap(),
        fleet::Resumed::NotSuspended
    );

    // The config budget of the other tenant: past 100% at once, one alert, the cell stopped.
    let alerts = spend_and_check(&app, &cell, (today(), SONNET, 10, 10, 2.0)).await;
    let alert = alert_about(&alerts, &cell);
    assert_eq!(
        (alert.threshold, &alert.outcome),
        (100, &BudgetOutcome::Suspended(BudgetAction::StopCell))
    );
    assert_eq!(
        thresholds(&alerts, &cell),
        vec![100],
        "one alert naming the highest threshold"
    );
    assert_eq!(
        common::store_of(&app).tenant(&cell).unwrap().unwrap().state,
        CellState::Stopped
    );
    assert_eq!(collect(&app, &cell).await, Collected::NotRunning);
    assert_eq!(
        fleet::resume(&app, &operator, &cell).await.unwrap(),
        fleet::Resumed::Resumed(BudgetAction::StopCell)
    );
    assert_eq!(
        common::store_of(&app).tenant(&cell).unwrap().unwrap().state,
        CellState::Running
    );
    assert!(matches!(collect(&app, &cell).await, Collected::Read { .. }));

    // `mtp usage budget` shows (and sets) the same state.
    let shown = stdout(&env.mtp(&["usage", "budget", chan.as_str()]));
    assert!(
        shown.contains("$10.00")
            && shown.contains("stop-channel")
            && shown.contains("50%, 80%, 100%"),
        "{shown}"
    );
    let cleared = stdout(&env.mtp(&["usage", "budget", chan.as_str(), "none"]));
    assert!(cleared.contains("no budget"), "{cleared}");
}

/// The usage loop collects and checks budgets at once, then once per interval,
/// on tokio's paused clock: nothing before the hour is up, the alert right after.
#[tokio::test]
async fn the_usage_loop_runs_every_interval() {
    let env = TestEnv::new("usage_loop_timer", 19760, "60s");
    let app = env.app().await;
    let id: TenantId = env.tenant("timer").parse().unwrap();
    stopped_tenant(&app, &id);
    fleet::set_budget(
        &app,
        &Actor::System("test"),
        &id,
        Some(Usd::cents(1000)),
        None,
    )
    .unwrap();
    common::store_of(&app)
        .ratchet_usage(&id, &[(today(), figures(1, 1, 6.0))], &[], 1)
        .unwrap();
    assert_eq!(app.config().usage.interval, Duration::from_secs(3600));

    tokio::time::pause();
    let (tx, mut rx) = mpsc::channel(8);
    let token = CancellationToken::new();
    let task = tokio::spawn(usage::run(app.clone(), tx, token.clone()));
    let Some(Report::Budget(first)) = tokio::time::timeout(Duration::from_secs(1), rx.recv())
        .await
        .unwrap()
    else {
        panic!("the loop reports")
    };
    assert_eq!(first.threshold, 50);

    common::store_of(&app)
        .ratchet_usage(&id, &[(today(), figures(1, 1, 9.0))], &[], 2)
        .unwrap();
    let early = tokio::time::timeout(Duration::from_secs(59 * 60), rx.recv()).await;
    assert!(early.is_err(), "nothing before the interval: {early:?}");
    let Some(Report::Budget(second)) = tokio::time::timeout(Duration::from_secs(2 * 60), rx.recv())
        .await
        .unwrap()
    else {
        panic!("the loop reports")
    };
    assert_eq!(second.threshold, 80);
    token.cancel();
    task.await.unwrap();

    // A restarted loop checks at once and finds nothing new to say.
    let (tx, mut rx) = mpsc::channel(8);
    let token = CancellationToken::new();
    let task = tokio::spawn(usage::run(app.clone(), tx, token.clone()));
    let quiet = tokio::time::timeout(Duration::from_secs(30 * 60), rx.recv()).await;
    assert!(quiet.is_err(), "{quiet:?}");
    token.cancel();
    task.await.unwrap();
}

/// The bot end to end against the fake Bot API: `/usage <id>` answers with the
/// figures and a PNG chart, `/usage` ranks the fleet, `/usage <id> csv` sends
/// the rows as a document, `/budget` sets a budget, a budget alert of the usage
/// loop reaches the operators, `/clients` marks a suspended tenant and
/// `/resume` lifts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bot_shows_usage_charts_csv_budgets_and_alerts() {
    const ADMIN_TOKEN: &str = "7000000950:AAAdminBotTokenForUsageTests_abcdefgh";
    const OPERATOR: u64 = 4343;
    let telegram = FakeTelegram::start().await;
    let admin = telegram.add_bot(ADMIN_TOKEN, 7_000_000_950, "mtp_admin_bot");
    let env = TestEnv::new("usage_bot", 19780, "60s");
    let app = bot_app(&env, &telegram, ADMIN_TOKEN, OPERATOR).await;
    let id: TenantId = env.tenant("bot").parse().unwrap();
    stopped_tenant(&app, &id);
    let (d1, d2) = (days_ago(1), today());
    let rows = [
        (d1, OPUS.to_string(), figures(1000, 100, 2.5)),
        (d2, SONNET.to_string(), figures(500, 50, 0.5)),
    ];
    common::store_of(&app)
        .ratchet_usage(
            &id,
            &[(d1, figures(1000, 100, 2.5)), (d2, figures(500, 50, 0.5))],
            &rows,
            fleet::now(),
        )
        .unwrap();

    let (_monitor_tx, monitor_rx) = mpsc::channel(4);
    let (_latest_tx, latest_rx) = tokio::sync::watch::channel(None);
    let (usage_tx, usage_rx) = mpsc::channel(4);
    let link = mtp::bot::MonitorLink {
        reports: monitor_rx,
        latest: latest_rx,
        usage: Some(usage_rx),
    };
    let (stop, bot) = start_bot(&app, &admin, link).await;
    let (user, chat) = (UserId(OPERATOR), ChatId(OPERATOR as i64));
    let say = |text: &str| {
        admin.push_message(chat, user, text);
    };
    let range = format!("{d1}..{d2}");

    say(&format!("/usage {id} {range}"));
    let text = admin.next_message_to(chat, DEADLINE).await.unwrap();
    for part in [
        format!("Usage of {id}"),
        "Cost: $3.00".to_string(),
        OPUS.to_string(),
        "$2.50 (83.3%)".to_string(),
        "As of".to_string(),
    ] {
        assert!(text.text.contains(&part), "{part:?} in {}", text.text);
    }
    let photo = admin.next_message_to(chat, DEADLINE).await.unwrap();
    let png_bytes = photo.upload.expect("the chart is uploaded").bytes;
    let reader = png::Decoder::new(png_bytes.as_slice()).read_info().unwrap();
    assert_eq!(
        (reader.info().width, reader.info().height),
        (usage::chart::WIDTH, usage::chart::HEIGHT)
    );
    assert!(photo.text.contains("Cost per day"), "{}", photo.text);

    say(&format!("/usage {range}"));
    let fleet_text = admin.next_message_to(chat, DEADLINE).await.unwrap().text;
    assert!(
        fleet_text.contains(&format!("1. {id} $3.00")) && fleet_text.contains("Total: $3.00"),
        "{fleet_text}"
    );

    say(&format!("/usage {id} csv {range}"));
    let document = admin.next_message_to(chat, DEADLINE).await.unwrap();
    let csv = String::from_utf8(document.upload.expect("the CSV is uploaded").bytes).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(csv.starts_with(usage::report::CSV_HEADER), "{csv}");
    assert!(
        csv.contains(&format!("{id},{d1},{OPUS},1000,100,0,0,1100,2.500000")),
        "{csv}"
    );

    say("/usage next-week");
    let bad = admin.next_message_to(chat, DEADLINE).await.unwrap().text;
    assert!(
        bad.contains("next-week") && bad.contains("No client"),
        "{bad}"
    );
    say(&format!("/usage {id} fortnight"));
    let bad = admin.next_message_to(chat, DEADLINE).await.unwrap().text;
    assert!(bad.contains("is not a period"), "{bad}");

    say(&format!("/budget {id} 10 stop-channel"));
    let budget = admin.next_message_to(chat, DEADLINE).await.unwrap().text;
    assert!(
        budget.contains("budget $10.00 a month") && budget.contains("stop its Telegram channel"),
        "{budget}"
    );
    say(&format!("/budget {id} ten"));
    assert!(
        admin
            .next_message_to(chat, DEADLINE)
            .await
            .unwrap()
            .text
            .contains("is not an amount")
    );

    // An alert of the usage loop reaches the operator (no ops group configured).
    let alert = BudgetAlert {
        tenant: id.clone(),
        month: "2026-11".to_string(),
        threshold: 100,
        spend: Usd::cents(1050),
        budget: Usd::cents(1000),
        outcome: BudgetOutcome::Suspended(BudgetAction::StopChannel),
    };
    usage_tx.send(Report::Budget(alert)).await.unwrap();
    let alerted = admin.next_message_to(chat, DEADLINE).await.unwrap().text;
    assert!(
        alerted.contains("past 100%")
            && alerted.contains("Suspended")
            && alerted.contains(&format!("/resume {id}")),
        "{alerted}"
    );

    common::store_of(&app)
        .update_budget_record(&id, |record| {
            record.suspended = Some(store::Suspension {
                since: fleet::now(),
                how: BudgetAction::StopChannel,
                month: "2026-11".into(),
            });
        })
        .unwrap();
    say("/clients");
    let clients = admin.next_message_to(chat, DEADLINE).await.unwrap().text;
    assert!(
        clients
            .lines()
            .any(|line| line.contains(id.as_str()) && line.contains("suspended")),
        "{clients}"
    );
    say(&format!("/resume {id}"));
    let resumed = admin.next_message_to(chat, DEADLINE).await.unwrap().text;
    assert!(resumed.contains("resumed"), "{resumed}");
    assert!(fleet::suspensions(&app).unwrap().is_empty());

    let _ = stop.send(());
    tokio::time::timeout(DEADLINE, bot)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

/// `/upgrade` edits one message step by step and ends on the new image; a bad
/// image is refused with nothing changed; the daily digest names yesterday's
/// costs from the ledger; `/usage csv` sends every tenant's rows; and a removed
/// tenant's spend stays in the ledger (and billable) until its data is purged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bot_upgrades_step_by_step_and_the_digest_names_yesterdays_costs() {
    const ADMIN_TOKEN: &str = "7000000960:AAAdminBotTokenForUsageTests_abcdefgh";
    const OPERATOR: u64 = 4344;
    let telegram = FakeTelegram::start().await;
    let admin = telegram.add_bot(ADMIN_TOKEN, 7_000_000_960, "mtp_admin_bot");
    let env = TestEnv::new("usage_bot_upgrade_digest", 19880, "60s");
    let app = bot_app(&env, &telegram, ADMIN_TOKEN, OPERATOR).await;
    let id = fake_cell(&app, &env.tenant("up"), 7_000_000_961).await;
    let gone: TenantId = env.tenant("gone").parse().unwrap();
    let yesterday = fleet::yesterday(&app, Utc::now());
    for (tenant, cost) in [(&id, 4.25), (&gone, 1.5)] {
        common::store_of(&app)
            .ratchet_usage(
                tenant,
                &[(yesterday, figures(100, 10, cost))],
                &[(yesterday, OPUS.to_string(), figures(100, 10, cost))],
                fleet::now(),
            )
            .unwrap();
    }
    assert_eq!(
        fleet::costs_on(&app, yesterday).unwrap(),
        vec![
            (id.clone(), Usd::cents(425)),
            (gone.clone(), Usd::cents(150))
        ]
    );

    let (monitor_tx, monitor_rx) = mpsc::channel(4);
    let (_latest_tx, latest_rx) = tokio::sync::watch::channel(None);
    let link = mtp::bot::MonitorLink {
        reports: monitor_rx,
        latest: latest_rx,
        usage: None,
    };
    let (stop, bot) = start_bot(&app, &admin, link).await;
    let (user, chat) = (UserId(OPERATOR), ChatId(OPERATOR as i64));

    // The digest, as the monitor emits it, with the ledger's costs.
    let top_costs = fleet::costs_on(&app, yesterday).unwrap();
    let digest = mtp::monitor::Digest {
        tenants: 1,
        up: 1,
        down: Vec::new(),
        stopped: 0,
        restarts: Vec::new(),
        alerts: 0,
        cost_day: yesterday,
        fleet_cost: top_costs.iter().map(|(_, cost)| cost).sum(),
        top_costs,
    };
    monitor_tx
        .send(mtp::monitor::Report::Digest(digest))
        .await
        .unwrap();
    let text = admin.next_message_to(chat, DEADLINE).await.unwrap().text;
    for part in [
        format!("Costs on {yesterday}: $5.75"),
        format!("{id}: $4.25"),
        format!("{gone}: $1.50"),
    ] {
        assert!(text.contains(&part), "{part:?} in {text}");
    }

    // Every tenant's rows, the removed one's included; a 429 from Telegram on
    // the upload is waited out and the document still arrives.
    admin.fail_next("sendDocument", 1, Failure::retry_after(1));
    admin.push_message(chat, user, &format!("/usage csv {yesterday}..{yesterday}"));
    let document = admin.next_message_to(chat, DEADLINE).await.unwrap();
    let csv = String::from_utf8(document.upload.expect("the CSV is uploaded").bytes).unwrap();
    assert!(csv.starts_with(usage::report::CSV_HEADER), "{csv}");
    for tenant in [&id, &gone] {
        assert!(
            csv.contains(&format!("{tenant},{yesterday},{OPUS},")),
            "{tenant} in {csv}"
        );
    }
    assert_eq!(
        admin.call_count("sendDocument"),
        2,
        "the throttled upload was sent again"
    );

    // An upgrade, one message edited step by step.
    let next = "mtp-test/fake-gateway:bot-upgrade";
    common::docker_ok(&["tag", FAKE_IMAGE, next]);
    admin.push_message(chat, user, &format!("/upgrade {id} {next}"));
    let first = admin.next_message_to(chat, DEADLINE).await.unwrap();
    assert!(first.text.contains("Upgrading"), "{}", first.text);
    let done = admin
        .wait_for_message(chat, Duration::from_secs(90), |m| {
            m.id == first.id && m.text.contains("upgraded from")
        })
        .await
        .unwrap();
    assert!(
        done.text.contains(next) && done.text.contains("generation 2"),
        "{}",
        done.text
    );
    let edits = admin.edits_of(chat, first.id);
    assert!(edits.len() >= 3, "step-by-step edits: {edits:?}");
    assert!(
        edits.iter().any(|e| e.contains("gateway healthy")),
        "{edits:?}"
    );
    let view = fleet::show(&app, &id).await.unwrap();
    assert_eq!(
        (view.record.image.as_str(), view.record.generation),
        (next, 2)
    );
    assert_eq!(
        view.record.muted_until, None,
        "the maintenance mute is lifted"
    );

    admin.push_message(chat, user, &format!("/upgrade {id} not-pinned"));
    let refused = admin
        .wait_for_message(chat, DEADLINE, |m| m.text.contains("Not upgrading"))
        .await
        .unwrap();
    assert!(
        refused.text.contains("not pinned") && refused.text.contains("Nothing was changed"),
        "{}",
        refused.text
    );
    assert_eq!(fleet::show(&app, &id).await.unwrap().record.generation, 2);

    // rm keeps the spend; purge drops it.
    fleet::remove(&app, &Actor::System("test"), &id, false)
        .await
        .unwrap();
    let kept = fleet::tenant_summary(
        &app,
        &id,
        Period {
            start: yesterday,
            end: yesterday,
        },
    )
    .unwrap();
    assert!(close(kept.bill.cost, 4.25), "{:?}", kept.bill);
    fleet::remove(&app, &Actor::System("test"), &id, true)
        .await
        .unwrap();
    assert!(
        fleet::ledger(&app, &id, yesterday, yesterday).is_err(),
        "purged with its data"
    );

    let _ = stop.send(());
    tokio::time::timeout(DEADLINE, bot)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let _ = common::docker(&["rmi", next]);
}
