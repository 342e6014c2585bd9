//! The Telegram admin bot end to end: real long polling against the fake Bot
//! API of `crates/fake-telegram`, real Docker and the real OpenClaw
//! image. The bot runs in this process (`mtp::bot::run`, as `mtp serve` runs
//! it) or as the `mtp serve` binary; the tests play the operator (and a
//! stranger) by pushing updates, and read the chat as the user sees it.
//!
//! One test boots a real cell and shares it between its assertions; the others
//! stop before provisioning and cost a fraction of a second of Docker each.

mod common;

use std::collections::BTreeMap;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use teloxide::types::{ChatId, MessageId, UserId};
use teloxide::utils::command::BotCommands;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use common::fake_telegram::{ChatMessage, FakeBot, FakeTelegram};
use common::{CRASH_IMAGE, TestEnv, cell_running};
use mtp::config::AdminConfig;
use mtp::fleet::App;
use mtp::store::Outcome;
use mtp::tenant::TenantId;

/// The admin bot's own token; the fake knows it as @mtp_admin_bot.
const ADMIN_TOKEN: &str = "7000000900:AAAdminBotTokenForTestsOnly_abcdefghij";
const ADMIN_BOT_ID: u64 = 7_000_000_900;
/// A client's BotFather token, the fake's @acme_assistant_bot.
const TENANT_TOKEN: &str = "7000000101:AATenantBotTokenForTestsOnly_abcdefghi";
const TENANT_BOT_ID: u64 = 7_000_000_101;
const TENANT_USERNAME: &str = "acme_assistant_bot";
/// A new token BotFather issued for the same bot: another secret, the same bot id.
const REISSUED_TOKEN: &str = "7000000101:AAReissuedTokenOfTheSameBot_abcdefghi";
/// The shape of a token, but the fake answers 401 to it.
const UNKNOWN_TOKEN: &str = "7000000199:AAUnknownTokenTelegramNeverIssued_abcd";
/// The provider key the operator pastes.
const PROVIDER_KEY: &str = "sk-ant-api03-TestKeyForBotTestsOnly-0123456789";
const OPERATOR: UserId = UserId(4242);
/// Another operator, working at the same time in their own chat.
const SECOND_OPERATOR: UserId = UserId(4343);
const STRANGER: UserId = UserId(6666);
/// A group the stranger writes in.
const GROUP: ChatId = ChatId(-1_001_234_567_890);
/// The ops group (`telegram.opsChatId`) of the tests that configure one: a
/// basic group, not a supergroup, whose 10 messages a minute (teloxide's
/// throttle keeps to them) would slow a test that talks a lot.
const OPS_GROUP: ChatId = ChatId(-4_000_020_460);
/// Another group the admin bot was added to.
const OTHER_GROUP: ChatId = ChatId(-4_000_020_461);
/// Every wait ends as soon as its condition holds; the deadline is only for
/// a machine busy booting a cell.
const DEADLINE: Duration = Duration::from_secs(20);
/// A real cell boots and pairs in well under a minute (about 45 s on two
/// busy CPUs); the deadline leaves room.
const CELL_DEADLINE: Duration = Duration::from_secs(180);

/// `/newclient` from an operator's first word to a running, paired cell on
/// real Docker: a bad id gets a suggestion button, each token message is
/// deleted before the answer whether malformed, unknown (401) or valid, the
/// tenant token is only ever used for `getMe`, the summary masks secrets, and
/// one message is edited step by step until it shows the @username, a t.me
/// link and the status. The same cell then serves the rest: the same bot under
/// a new token is refused, `/clients`, `/client`, `/logs` and bad arguments
/// answer, a stranger gets one refusal (and one audit entry) and nothing runs, `mtp serve` finishes
/// an in-flight stop after SIGTERM and exits 0, and `/remove` purges it once the
/// id is typed, while a tenant whose create failed is removed with its data kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_botfather_token_becomes_a_live_cell_that_the_bot_lists_stops_and_removes() {
    let telegram = Telegram::start().await;
    let env = TestEnv::new("bot_token_to_live_cell", 19500, "180s");
    let app = env.app().await;
    let operators = format!("{},{}", OPERATOR.0, SECOND_OPERATOR.0);
    let vars = telegram.vars(&[("MTP_OPERATORS", &operators)]);
    let bot = InProcess::start(&telegram, config(&env, &vars)).await;
    let chat = telegram.chat(OPERATOR);
    let id = env.tenant("acme");

    // Step 1: a bad id is explained, with the id suggested from it as a button.
    chat.say("/newclient", &["New client", "step 1/7"]).await;
    let bad_id = chat
        .say(
            &format!("{} Acme", env.prefix.to_uppercase()),
            &["is not a client id", "lowercase"],
        )
        .await;
    chat.tap(&bad_id, &format!("nc:id:{id}"), &["step 2/7", &id])
        .await;
    // Step 2: a display name with HTML in it.
    chat.say("Acme <Corp> & Sons", &["step 3/7", "BotFather token"])
        .await;

    // Step 3: each token message is deleted before the answer to it.
    let malformed = chat.send("not-a-token");
    chat.expect(&["I deleted that message", "does not look like a bot token"])
        .await;
    chat.assert_deleted_before_the_next_answer(malformed);
    let unknown = chat.send(UNKNOWN_TOKEN);
    chat.expect(&["Token received and your message deleted"])
        .await;
    chat.expect(&[
        "I deleted that message",
        "Telegram does not know this token",
    ])
    .await;
    chat.assert_deleted_before_the_next_answer(unknown);
    let valid = chat.send(TENANT_TOKEN);
    chat.expect(&["Token received and your message deleted"])
        .await;
    chat.expect(&[&format!("Bot @{TENANT_USERNAME} is valid")])
        .await;
    chat.assert_deleted_before_the_next_answer(valid);
    let models = chat.expect(&["step 4/7"]).await;

    // Step 4 and 5: a model from the catalog, then the client's own key.
    chat.tap(&models, "nc:model:0", &["step 5/7", "anthropic API key"])
        .await;
    let key = chat.send(PROVIDER_KEY);
    chat.expect(&["Key received and your message deleted"])
        .await;
    assert!(
        chat.admin
            .message(chat.id(), key)
            .expect("the key message")
            .deleted,
        "the provider key must be deleted"
    );

    // Step 6: skills toggle in place on one message.
    let skills = chat.expect(&["step 6/7"]).await;
    chat.press(&skills, "nc:skill:0");
    chat.press(&skills, "nc:skill:1");
    chat.press(&skills, "nc:skill:1");
    chat.press(&skills, "nc:skill:0");
    chat.press(&skills, "nc:skill:0");

    // Step 7: an allowlist, after one list that is not one.
    let access = chat.tap(&skills, "nc:skills:done", &["step 7/7"]).await;
    // A chat's updates are handled in order: every toggle is done by now.
    let toggled = chat
        .admin
        .message(chat.id(), skills.id)
        .expect("the skills message");
    let labels: Vec<&str> = toggled
        .keyboard
        .iter()
        .flatten()
        .map(|button| button.text.as_str())
        .collect();
    assert!(
        labels.contains(&"✅ 🌤 Weather") && labels.contains(&"▫️ 📝 Summarize"),
        "{toggled}"
    );
    assert_eq!(
        chat.admin.call_count("editMessageReplyMarkup"),
        5,
        "each toggle edits the keyboard in place"
    );
    chat.tap(&access, "nc:access:allowlist", &["user ids"])
        .await;
    chat.say("12x", &["is not a list of numeric user ids"])
        .await;
    let summary = chat
        .say(
            "123456789, 987654321",
            &[
                "Please confirm",
                &format!("Client: {id} (Acme <Corp> & Sons)"),
                &format!("Bot: @{TENANT_USERNAME} (token {TENANT_BOT_ID}:••••)"),
                "Model: Claude Opus 4.6 (anthropic/claude-opus-4-6)",
                "Key: own key ••••",
                "Skills: weather",
                "Access: allowlist 123456789, 987654321",
            ],
        )
        .await;

    // Confirm: one message, edited step by step, ends with the bot's link.
    chat.press(&summary, "nc:confirm");
    let progress = chat.expect(&[&format!("Creating {id}")]).await;
    assert!(
        !progress.text.contains('✅'),
        "nothing is done when provisioning starts:\n{progress}"
    );
    // While the cell boots (the slow part): a second operator offers the same
    // bot under a new token and tries bad arguments, and the CLI makes a tenant
    // whose create fails and is kept, for `/remove` below.
    let second = telegram.chat(SECOND_OPERATOR);
    let failed = env.tenant("crash");
    let create_failing = env.create_command(&failed, &["--image", CRASH_IMAGE, "--keep-failed"]);
    let (live, (), failing) = tokio::join!(
        chat.edited(&progress, CELL_DEADLINE, "is live"),
        async {
            // The record (with the bot id) is written before the first step is done.
            let recorded = chat
                .admin
                .wait_for_message(chat.id(), CELL_DEADLINE, |now| {
                    now.id == progress.id && now.history.iter().any(|text| text.contains('✅'))
                });
            recorded.await.unwrap_or_else(|err| panic!("{err}"));
            telegram
                .fake
                .add_bot(REISSUED_TOKEN, TENANT_BOT_ID, TENANT_USERNAME);
            second.say("/newclient", &["step 1/7"]).await;
            let name = second.say(&env.tenant("dup"), &["step 2/7"]).await;
            second.tap(&name, "nc:skip", &["step 3/7"]).await;
            second.send(REISSUED_TOKEN);
            second.expect(&["Token received"]).await;
            second
                .expect(&[&format!(
                    "@{TENANT_USERNAME} already belongs to tenant {id}"
                )])
                .await;
            second
                .say("/cancel", &["Cancelled. Nothing was changed."])
                .await;
            for (command, expected) in [
                ("/client".to_string(), "Usage: /client <id>"),
                ("/client a b".to_string(), "Usage: /client <id>"),
                ("/client Bad_Id".to_string(), "is not a client id"),
                (
                    format!("/client {}", env.tenant("acmx")),
                    &format!("Did you mean /client {id}?") as &str,
                ),
                ("/restart".to_string(), "Usage: /restart <id>"),
                ("/stop".to_string(), "Usage: /stop <id>"),
                ("/remove".to_string(), "Usage: /remove <id>"),
                ("/logs".to_string(), "Usage: /logs <id> [lines]"),
                (format!("/logs {id} 0"), "Usage: /logs <id> [1-2000]"),
                (format!("/logs {id} many"), "Usage: /logs <id> [1-2000]"),
            ] {
                second.say(&command, &[expected]).await;
            }
        },
        tokio::process::Command::from(create_failing).output(),
    );
    assert_has(
        &live,
        "the final message",
        &[
            &format!("{id} is live"),
            &format!("Bot: @{TENANT_USERNAME} — https://t.me/{TENANT_USERNAME}"),
            "Status: running, health ok",
        ],
    );
    assert!(
        live.history
            .iter()
            .any(|text| text.contains('✅') && text.contains("Creating")),
        "the message must show steps done before the end: {:#?}",
        live.history
    );
    assert_eq!(cell_running(&id), Some(true), "the cell runs");
    let record = common::store_of(&app)
        .tenant(&id.parse().unwrap())
        .unwrap()
        .expect("the tenant's record");
    assert_eq!(record.display_name.as_deref(), Some("Acme <Corp> & Sons"));
    assert_eq!(
        (record.bot_id, record.bot_username.as_deref()),
        (TENANT_BOT_ID, Some(TENANT_USERNAME))
    );
    let state_dir = env.data_dir().join("tenants").join(&id).join("state");
    let rendered: Value =
        serde_json::from_str(&std::fs::read_to_string(state_dir.join("openclaw.json")).unwrap())
            .unwrap();
    assert_eq!(rendered["skills"]["allowBundled"], json!(["weather"]));
    assert_eq!(rendered["channels"]["telegram"]["dmPolicy"], "allowlist");
    let failing = failing.expect("run mtp tenant create");
    assert_eq!(
        failing.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&failing.stderr)
    );
    let ids: Vec<String> = common::store_of(&app)
        .tenants()
        .unwrap()
        .into_iter()
        .map(|record| record.id.to_string())
        .collect();
    assert_eq!(
        ids,
        [id.clone(), failed.clone()],
        "the refused duplicate made no record"
    );

    // The new tenant in /clients, /client and /logs (as a command and a button).
    chat.say(
        "/clients",
        &[
            "Clients (2)",
            &format!("🟢 {id} · :1950"),
            "2026.9.6 · up",
            &format!("🔴 {failed}"),
        ],
    )
    .await;
    let details = chat
        .say(
            &format!("/client {id}"),
            &[
                &format!("Bot: @{TENANT_USERNAME}"),
                "State: running, health ok",
                "Model: anthropic/claude-opus-4-6",
                "Paired: yes",
            ],
        )
        .await;
    let buttons: Vec<&str> = details
        .keyboard
        .iter()
        .flatten()
        .filter_map(|button| button.callback_data.as_deref())
        .collect();
    let stamp = format!("{}.{}", record.generation, record.created_at);
    let expected_buttons = [
        format!("t:r:{stamp}:{id}"),
        format!("t:s:{stamp}:{id}"),
        format!("t:l:{stamp}:{id}"),
        format!("t:h:{stamp}:{id}"),
        format!("t:x:{stamp}:{id}"),
    ];
    assert_eq!(
        buttons,
        expected_buttons
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        "{details}"
    );
    let logs = chat.send_and_reply(&format!("/logs {id} 20")).await;
    assert_is_log(&logs);
    chat.press(&details, &format!("t:l:{stamp}:{id}"));
    assert_is_log(&chat.reply().await);
    // Forged or stale buttons from an operator do nothing either.
    chat.press_forged(details.id, "t:r:../etc");
    chat.expect(&["cannot read that button"]).await;
    chat.press_forged(details.id, &format!("t:r:{id}"));
    chat.expect(&["This button has expired"]).await;
    chat.press_forged(details.id, "nc:model:99");
    chat.expect(&["This button has expired"]).await;

    // A stranger: one refusal for many attempts, buttons answered, nothing runs.
    let stranger = telegram.chat(STRANGER);
    telegram
        .admin
        .push_group_message(GROUP, STRANGER, "/clients");
    stranger.send("/clients");
    stranger.send(&format!("/remove {id}"));
    stranger.send("/newclient");
    let mut last_query = String::new();
    for data in [
        format!("t:s:{id}"),
        format!("rm:p:{id}"),
        "nc:confirm".to_string(),
    ] {
        last_query = stranger.press_forged(MessageId(999), &data);
    }
    // Updates of one chat are handled in order: the last answer means all are done.
    stranger.answered(&last_query).await;
    let refusals = stranger.admin_messages();
    assert_eq!(
        refusals.len(),
        1,
        "one refusal, however many attempts: {refusals:#?}"
    );
    assert_eq!(
        refusals[0].text,
        "Sorry, this bot is private. Nothing was done."
    );
    assert_eq!(
        cell_running(&id),
        Some(true),
        "a stranger's stop button stops nothing"
    );
    // Onboarding asks for secrets: an operator's /newclient in a group is sent to a DM.
    let ops_group = ChatId(-1_001_000_000_777); // not GROUP: that one must stay unanswered
    telegram
        .admin
        .push_group_message(ops_group, OPERATOR, "/newclient");
    telegram
        .admin
        .wait_for_message(ops_group, DEADLINE, |m| {
            m.from_bot && m.text.contains("only runs in a private chat")
        })
        .await
        .expect("the group is told to use a DM");
    let by_stranger: Vec<_> = common::store_of(&app)
        .audit_log(None, 1000)
        .unwrap()
        .into_iter()
        .filter(|entry| entry.actor == format!("tg:{}", STRANGER.0))
        .collect();
    assert!(
        by_stranger.len() == 1
            && by_stranger
                .iter()
                .all(|entry| entry.outcome == Outcome::Refused),
        "one audit entry a minute per stranger: {by_stranger:#?}"
    );

    // `mtp serve`: SIGTERM in the middle of a stop; the stop finishes, exit 0.
    bot.stop().await;
    let serve = Serve::start(&telegram, &env, &vars).await;
    let working = chat
        .say(&format!("/stop {id}"), &[&format!("Stopping {id}")])
        .await;
    let in_flight = chat
        .admin
        .message(chat.id(), working.id)
        .expect("the working message")
        .history
        .len()
        == 1;
    let (status, stderr) = serve.terminate().await;
    assert!(
        in_flight,
        "the stop ended before SIGTERM was sent; nothing was in flight"
    );
    assert!(
        status.success(),
        "mtp serve must exit 0 after SIGTERM ({status}); stderr:\n{stderr}"
    );
    let stopped = chat
        .admin
        .message(chat.id(), working.id)
        .expect("the working message");
    assert_eq!(
        stopped.text,
        format!("⏹ Stopped {id}. The monitor will not alert for it."),
        "{stopped}"
    );
    assert_eq!(cell_running(&id), Some(false));
    let stops: Vec<_> = common::store_of(&app)
        .audit_log(None, 1000)
        .unwrap()
        .into_iter()
        .filter(|entry| entry.action == "stop")
        .collect();
    assert_eq!(stops.len(), 1, "{stops:#?}");
    assert_eq!(
        (stops[0].actor.as_str(), stops[0].outcome),
        (format!("tg:{}", OPERATOR.0).as_str(), Outcome::Ok)
    );

    // Back in process: the /stop handled before SIGTERM is not handled again.
    let bot = InProcess::start(&telegram, config(&env, &vars)).await;
    chat.say("/clients", &["Clients (2)", &format!("⏹ {id}"), "down"])
        .await;

    // /remove with purge: a wrong id removes nothing; the id itself purges.
    chat.choose_purge(&id).await;
    chat.say(
        "nope",
        &[&format!("That is not {id}. Nothing was removed.")],
    )
    .await;
    assert_eq!(
        cell_running(&id),
        Some(false),
        "the container is still there"
    );
    chat.choose_purge(&id).await;
    let removing = chat.say(&id, &[&format!("Removing {id}")]).await;
    chat.edited(
        &removing,
        DEADLINE,
        &format!("Removed {id} and purged its data."),
    )
    .await;
    assert_eq!(cell_running(&id), None);
    assert!(
        !env.data_dir().join("tenants").join(&id).exists(),
        "purge deletes the data"
    );
    assert_eq!(
        common::store_of(&app)
            .tenant(&id.parse().unwrap())
            .unwrap()
            .map(|record| record.id),
        None
    );

    // /remove keeping data, of the tenant whose create failed and was kept.
    let ask = chat
        .say(
            &format!("/remove {failed}"),
            &[&format!("Remove {failed}?")],
        )
        .await;
    let removing = chat
        .tap(
            &ask,
            &button_data(&ask, "rm:k:"),
            &[&format!("Removing {failed}")],
        )
        .await;
    chat.edited(
        &removing,
        DEADLINE,
        &format!("Removed {failed}; its data is kept."),
    )
    .await;
    assert_eq!(env.docker_leftovers(), Vec::<String>::new());
    assert!(
        env.data_dir()
            .join("tenants")
            .join(&failed)
            .join("state")
            .exists(),
        "keep-data keeps the data"
    );
    chat.say("/clients", &["No clients yet"]).await;
    bot.stop().await;

    // Across the whole test: the tenant's token was used for getMe only, no
    // secret reached a message, and nobody in the group got an answer.
    for token in [TENANT_TOKEN, REISSUED_TOKEN] {
        let polls = telegram
            .fake
            .calls()
            .into_iter()
            .filter(|call| call.token == token && call.method.eq_ignore_ascii_case("getUpdates"))
            .count();
        assert_eq!(polls, 0, "getUpdates was called with a tenant's token");
    }
    assert!(
        telegram.tenant.call_count("getMe") >= 1,
        "the token was proven with getMe"
    );
    for call in telegram.admin.all_calls() {
        let params = call.params.to_string();
        for secret in [TENANT_TOKEN, REISSUED_TOKEN, UNKNOWN_TOKEN, PROVIDER_KEY] {
            assert!(
                !params.contains(secret),
                "a secret in a Bot API call: {call}"
            );
        }
    }
    assert!(
        telegram
            .admin
            .messages_in(GROUP)
            .iter()
            .all(|message| !message.from_bot),
        "the bot answered in the group"
    );
}

/// `/cancel` and the Cancel button, at every step of `/newclient`, end the
/// dialogue and leave nothing: no dialogue state, no record, no container,
/// network or dir. A button of the cancelled dialogue has expired afterwards.
/// Each (step, way out) pair is walked by its own operator, all at once: the
/// bot keeps to Telegram's one message a second per chat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_at_any_step_of_newclient_leaves_nothing() {
    let telegram = Telegram::start().await;
    let env = TestEnv::new("bot_cancel_at_any_step", 19520, "3s");
    let app = env.app().await;
    let id = env.tenant("acme");
    let acts = walk(&id, "nc:key:skip");
    let walks: Vec<(usize, bool, UserId)> = (0..acts.len())
        .flat_map(|at| [(at, false), (at, true)])
        .zip(5000..)
        .map(|((at, button), user)| (at, button, UserId(user)))
        .collect();
    let list = walks
        .iter()
        .map(|(_, _, user)| user.0.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let bot = InProcess::start(
        &telegram,
        config(&env, &telegram.vars(&[("MTP_OPERATORS", &list)])),
    )
    .await;
    let store = common::store_of(&app);
    let cancels = walks.iter().map(|&(at, button, user)| {
        let chat = telegram.chat(user);
        let (acts, store) = (&acts[..=at], &store);
        async move {
            let asked = chat.walk(acts).await;
            if button {
                chat.tap(&asked, "nc:cancel", &["Cancelled. Nothing was changed."])
                    .await;
            } else {
                chat.say("/cancel", &["Cancelled. Nothing was changed."])
                    .await;
            }
            // A chat's updates are handled in order: this answer comes after the cancel is done.
            let after = chat.send_and_reply("acme").await;
            let way = if button {
                "the Cancel button"
            } else {
                "/cancel"
            };
            assert!(
                after.text.contains("I did not understand that"),
                "still in the dialogue after {way} at {:?}:\n{after}",
                acts[at].1
            );
            assert_eq!(
                store.dialogue(chat.id().0).unwrap(),
                None,
                "dialogue state left after {way} at {:?}",
                acts[at].1
            );
            (chat, asked)
        }
    });
    let cancelled = futures_util::future::join_all(cancels).await;
    let (chat, summary) = cancelled.last().expect("the walk has steps");
    chat.tap(summary, "nc:confirm", &["This button has expired"])
        .await;
    chat.say("/cancel", &["Nothing to cancel."]).await;
    bot.stop().await;

    assert_eq!(common::store_of(&app).tenants().unwrap().len(), 0);
    let tenants_dir = env.data_dir().join("tenants");
    assert!(
        !tenants_dir.exists() || std::fs::read_dir(&tenants_dir).unwrap().count() == 0,
        "a tenant dir was made"
    );
    assert_eq!(env.docker_leftovers(), Vec::<String>::new());
    assert!(
        common::store_of(&app)
            .audit_log(None, 100)
            .unwrap()
            .iter()
            .all(|entry| entry.action != "create")
    );
    assert_eq!(telegram.tenant.call_count("getUpdates"), 0);
}

/// Back goes to the previous question from every step, and the answers given
/// again replace the old ones. With a shared provider key configured, the key
/// step offers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_returns_to_the_previous_question_at_every_step() {
    let telegram = Telegram::start().await;
    let env = TestEnv::new("bot_back_buttons", 19540, "3s");
    let vars = telegram.vars(&[(
        "MTP_SHARED_PROVIDER_KEY",
        "sk-shared-key-for-tests-0123456789",
    )]);
    let bot = InProcess::start(&telegram, config(&env, &vars)).await;
    let chat = telegram.chat(OPERATOR);
    let id = env.tenant("acme");
    let summary = chat.walk(&walk(&id, "nc:key:shared")).await;
    assert!(
        summary.text.contains("Key: shared key")
            && summary.text.contains("Access: allowlist 123456789"),
        "{summary}"
    );

    let mut question = chat.tap(&summary, "nc:back", &["step 7/7"]).await;
    question = chat
        .tap(&question, "nc:access:allowlist", &["user ids"])
        .await;
    for expected in [
        "step 7/7", "step 6/7", "step 5/7", "step 4/7", "step 3/7", "step 2/7", "step 1/7",
    ] {
        question = chat.tap(&question, "nc:back", &[expected]).await;
    }
    assert!(
        question
            .keyboard
            .iter()
            .flatten()
            .all(|button| button.callback_data.as_deref() != Some("nc:back")),
        "no Back at the first step"
    );

    let other = env.tenant("other");
    let name = chat.say(&other, &["step 2/7", &other]).await;
    chat.tap(&name, "nc:skip", &["step 3/7"]).await;
    chat.send(TENANT_TOKEN);
    let models = chat.until("step 4/7").await;
    let key = chat
        .tap(&models, "nc:model:2", &["step 5/7", "openai API key"])
        .await;
    let skills = chat.tap(&key, "nc:key:shared", &["step 6/7"]).await;
    let access = chat.tap(&skills, "nc:skills:done", &["step 7/7"]).await;
    let summary = chat
        .tap(
            &access,
            "nc:access:pairing",
            &[
                "Please confirm",
                &format!("Client: {other} ({other})"),
                "Model: GPT-5 (openai/gpt-5)",
                "Key: shared key",
                "Access: pairing",
            ],
        )
        .await;
    chat.tap(&summary, "nc:cancel", &["Cancelled"]).await;
    bot.stop().await;
}

/// A dialogue left alone for the configured idle time (2 s here) expires with
/// a message; its buttons have expired and text is no longer an answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_dialogue_expires_with_a_message() {
    let (telegram, env, app, bot) = bot_in_process(
        "bot_idle_dialogue_expires",
        19560,
        &[("MTP_DIALOGUE_IDLE", "2s")],
    )
    .await;
    let chat = telegram.chat(OPERATOR);
    chat.say("/newclient", &["step 1/7"]).await;
    let name = chat.say(&env.tenant("acme"), &["step 2/7"]).await;
    chat.expect(&["⌛", "idle for 2s and has expired"]).await;
    assert_eq!(common::store_of(&app).dialogue(chat.id().0).unwrap(), None);
    chat.tap(&name, "nc:skip", &["This button has expired"])
        .await;
    chat.say("Acme Corp", &["I did not understand that"]).await;
    bot.stop().await;
}

/// A restart of the admin in the middle of `/newclient` continues at the same
/// step with what was gathered, from the process to `mtp serve` and back.
/// This test configures the bot through the config file (`telegram.tokenFile`,
/// `operators`, `apiUrl`) instead of the environment; `mtp serve` registers the
/// command list and exits 0 on SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_bot_resumes_the_dialogue_at_the_same_step() {
    let telegram = Telegram::start().await;
    let env = TestEnv::new("bot_restart_resumes_dialogue", 19580, "3s");
    let token_file = env.dir.join("admin-token");
    std::fs::write(&token_file, format!("{ADMIN_TOKEN}\n")).unwrap();
    env.set_telegram(&format!(
        "{{ tokenFile: {:?}, operators: [{}], apiUrl: {:?} }}",
        token_file,
        OPERATOR.0,
        telegram.fake.url()
    ));
    let no_vars = BTreeMap::new();
    let chat = telegram.chat(OPERATOR);
    let id = env.tenant("acme");

    let bot = InProcess::start(&telegram, config(&env, &no_vars)).await;
    chat.say("/newclient", &["step 1/7"]).await;
    chat.say(&id, &["step 2/7"]).await;
    chat.say("Acme Corp", &["step 3/7"]).await;
    bot.stop().await;

    // At the token step in `mtp serve`.
    let serve = Serve::start(&telegram, &env, &no_vars).await;
    let commands = telegram.command_names();
    let expected: Vec<String> = mtp::bot::Command::bot_commands()
        .into_iter()
        .map(|command| command.command.trim_start_matches('/').to_string())
        .collect();
    assert_eq!(commands, expected, "the command list is registered");
    for core in [
        "help",
        "newclient",
        "clients",
        "client",
        "remove",
        "logs",
        "cancel",
    ] {
        assert!(
            commands.iter().any(|command| command == core),
            "/{core} is not registered: {commands:?}"
        );
    }
    chat.send(TENANT_TOKEN);
    chat.expect(&["Token received"]).await;
    chat.expect(&["is valid"]).await;
    let models = chat.expect(&["step 4/7"]).await;
    let key = chat.tap(&models, "nc:model:1", &["step 5/7"]).await;
    let skills = chat.tap(&key, "nc:key:skip", &["step 6/7"]).await;
    let query = chat.press(&skills, "nc:skill:0");
    chat.answered(&query).await;
    let (status, stderr) = serve.terminate().await;
    assert!(
        status.success(),
        "mtp serve must exit 0 after SIGTERM ({status}); stderr:\n{stderr}"
    );

    // At the skills step in process again, Weather still ticked.
    let bot = InProcess::start(&telegram, config(&env, &no_vars)).await;
    let access = chat.tap(&skills, "nc:skills:done", &["step 7/7"]).await;
    let summary = chat
        .tap(
            &access,
            "nc:access:pairing",
            &[
                "Please confirm",
                &format!("Client: {id} (Acme Corp)"),
                &format!("Bot: @{TENANT_USERNAME}"),
                "Model: Claude Sonnet 4.6",
                "Key: none yet",
                "Skills: weather",
                "Access: pairing",
            ],
        )
        .await;
    chat.tap(&summary, "nc:cancel", &["Cancelled"]).await;
    chat.say("/help", &["MTP Admin", "/newclient — onboard a new client"])
        .await;
    bot.stop().await;
}

// See: issue 3 (an operator's edited message was refused and audited as a stranger's).
/// An operator's update the bot does not handle (an edited message) is
/// ignored, not refused and audited as if the operator were a stranger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operators_unhandled_update_is_ignored_not_refused() {
    let (telegram, _env, app, bot) = bot_in_process("bot_operator_never_refused", 19580, &[]).await;
    let chat = telegram.chat(OPERATOR);
    let sent = chat.send("/clinets");
    chat.expect(&["I did not understand that"]).await;
    let edited = telegram.admin.push_update(
        "edited_message",
        json!({
            "message_id": sent.0,
            "from": { "id": OPERATOR.0, "is_bot": false, "first_name": "Op" },
            "chat": { "id": OPERATOR.0, "type": "private", "first_name": "Op" },
            "date": 1,
            "edit_date": 2,
            "text": "/clients",
        }),
    );
    assert!(
        edited.is_some(),
        "the bot asks for edited messages too (allowed_updates)"
    );
    // One chat's updates are handled in order: the answer to /help comes after.
    chat.say("/help", &["MTP Admin"]).await;
    assert!(
        chat.admin_messages()
            .iter()
            .all(|message| !message.text.contains("private")),
        "{:#?}",
        chat.admin_messages()
    );
    assert!(
        common::store_of(&app)
            .audit_log(None, 100)
            .unwrap()
            .iter()
            .all(|entry| entry.outcome != Outcome::Refused)
    );
    bot.stop().await;
}

/// `mtp serve` without a token or operators, or with a token the Bot API
/// refuses, stops at once with a message that says what to set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_to_start_without_a_working_token_and_operators() {
    let telegram = Telegram::start().await;
    let env = TestEnv::new("bot_serve_refuses_to_start", 19580, "3s");
    let url = telegram.fake.url().to_string();
    let operators = OPERATOR.0.to_string();
    for (vars, expected) in [
        (
            vec![
                ("MTP_OPERATORS", operators.as_str()),
                ("MTP_TELEGRAM_API_URL", &url),
            ],
            "set MTP_TELEGRAM_TOKEN",
        ),
        (
            vec![
                ("MTP_TELEGRAM_TOKEN", ADMIN_TOKEN),
                ("MTP_TELEGRAM_API_URL", &url),
            ],
            "set MTP_OPERATORS",
        ),
        (
            vec![
                ("MTP_TELEGRAM_TOKEN", ADMIN_TOKEN),
                ("MTP_OPERATORS", "alice"),
                ("MTP_TELEGRAM_API_URL", &url),
            ],
            "MTP_OPERATORS: \"alice\"",
        ),
        (
            vec![
                ("MTP_TELEGRAM_TOKEN", "12345"),
                ("MTP_OPERATORS", &operators),
                ("MTP_TELEGRAM_API_URL", &url),
            ],
            "does not look like a bot token",
        ),
        (
            vec![
                ("MTP_TELEGRAM_TOKEN", UNKNOWN_TOKEN),
                ("MTP_OPERATORS", &operators),
                ("MTP_TELEGRAM_API_URL", &url),
            ],
            "refused the admin bot's token",
        ),
    ] {
        let vars: BTreeMap<String, String> = vars
            .into_iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect();
        let output = serve_command(&env, &vars)
            .output()
            .await
            .expect("run mtp serve");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{vars:?}: {stderr}");
        assert!(
            stderr.contains(expected),
            "expected {expected:?} for {vars:?}, got:\n{stderr}"
        );
        assert!(
            !stderr.contains(UNKNOWN_TOKEN),
            "the token must not be printed:\n{stderr}"
        );
    }
    assert_eq!(telegram.admin.call_count("getUpdates"), 0);
}

// See: issue 10 (a BotFather token pasted at another step stayed in the chat and could become a display name).
/// A bot token pasted where none was asked for (outside any dialogue, in a
/// sentence, in a command, at the name, model and key steps, in an edited
/// message, in a dialogue that has expired) is deleted at once with a warning
/// and goes no further: the step stays where it was, and the token is in no
/// dialogue state, record or audit entry and is never proven. At the token
/// step a token is taken as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pasted_bot_token_is_deleted_wherever_it_was_not_asked_for() {
    let (telegram, env, app, bot) = bot_in_process("bot_stray_token_deleted", 20400, &[]).await;
    let chat = telegram.chat(OPERATOR);
    let id = env.tenant("acme");
    let warned = "I deleted your message: it held a bot token";

    // Outside any dialogue: alone, in a sentence, in a URL, in a command.
    for text in [
        UNKNOWN_TOKEN.to_string(),
        format!("the new one is {REISSUED_TOKEN}, thanks"),
        format!("https://api.telegram.org/bot{UNKNOWN_TOKEN}/getMe"),
        format!("/client {UNKNOWN_TOKEN}"),
    ] {
        let pasted = chat.send(&text);
        chat.expect(&[warned]).await;
        chat.assert_deleted_before_the_next_answer(pasted);
    }

    // At the name step: not the display name; the question stays.
    chat.say("/newclient", &["step 1/7"]).await;
    chat.say(&id, &["step 2/7"]).await;
    let pasted = chat.send(UNKNOWN_TOKEN);
    chat.expect(&[warned]).await;
    chat.assert_deleted_before_the_next_answer(pasted);
    chat.say("Acme Corp", &["step 3/7"]).await;
    // At the token step, a token is the answer.
    let asked = chat.send(TENANT_TOKEN);
    chat.expect(&["Token received and your message deleted"])
        .await;
    chat.assert_deleted_before_the_next_answer(asked);
    chat.expect(&["is valid"]).await;
    let models = chat.expect(&["step 4/7"]).await;
    // At the model step (buttons) and at the key step: deleted, not a key.
    let pasted = chat.send(REISSUED_TOKEN);
    chat.expect(&[warned]).await;
    chat.assert_deleted_before_the_next_answer(pasted);
    let key = chat.tap(&models, "nc:model:0", &["step 5/7"]).await;
    let pasted = chat.send(UNKNOWN_TOKEN);
    chat.expect(&[warned]).await;
    chat.assert_deleted_before_the_next_answer(pasted);
    let skills = chat.tap(&key, "nc:key:skip", &["step 6/7"]).await;
    let stored = String::from_utf8(
        common::store_of(&app)
            .dialogue(chat.id().0)
            .unwrap()
            .expect("the dialogue is stored"),
    )
    .unwrap();
    assert!(
        stored.contains("\"name\":\"Acme Corp\"") && stored.contains("\"key\":\"None\""),
        "{stored}"
    );
    for token in [UNKNOWN_TOKEN, REISSUED_TOKEN] {
        assert!(
            !stored.contains(token),
            "a pasted token in the dialogue state"
        );
    }
    chat.tap(&skills, "nc:cancel", &["Cancelled"]).await;

    // An edited message that now holds a token.
    let note = chat.send("hello");
    chat.expect(&["I did not understand that"]).await;
    telegram.admin.push_update(
        "edited_message",
        json!({
            "message_id": note.0,
            "from": { "id": OPERATOR.0, "is_bot": false, "first_name": "Op" },
            "chat": { "id": OPERATOR.0, "type": "private", "first_name": "Op" },
            "date": 1,
            "edit_date": 2,
            "text": format!("hello {UNKNOWN_TOKEN}"),
        }),
    );
    chat.expect(&[warned]).await;
    assert!(chat.admin.message(chat.id(), note).unwrap().deleted);

    // A dialogue at the token step that has expired (and is not swept yet)
    // does not take the token as its answer, nor leave it in the chat.
    let expired = json!({ "v": 1, "state": { "NewClient": {
        "step": "Token", "touched_at": 1, "id": id, "name": null, "token": null,
        "bot_id": null, "username": null, "model": null, "key": "None",
        "skills": [], "allowlist": null,
    } } });
    common::store_of(&app)
        .put_dialogue(chat.id().0, expired.to_string().as_bytes())
        .unwrap();
    let pasted = chat.send(TENANT_TOKEN);
    chat.until(warned).await;
    assert!(chat.admin.message(chat.id(), pasted).unwrap().deleted);
    bot.stop().await;

    assert_eq!(common::store_of(&app).tenants().unwrap().len(), 0);
    let audit = format!(
        "{:?}",
        common::store_of(&app).audit_log(None, 1000).unwrap()
    );
    for token in [UNKNOWN_TOKEN, REISSUED_TOKEN, TENANT_TOKEN] {
        assert!(!audit.contains(token), "a token in the audit log: {audit}");
    }
    for call in telegram.admin.all_calls() {
        let params = call.params.to_string();
        for token in [UNKNOWN_TOKEN, REISSUED_TOKEN, TENANT_TOKEN] {
            assert!(!params.contains(token), "a token in a Bot API call: {call}");
        }
    }
    assert_eq!(
        telegram
            .fake
            .calls()
            .iter()
            .filter(|call| call.token == UNKNOWN_TOKEN)
            .count(),
        0,
        "a pasted token was used"
    );
    assert_eq!(
        telegram.tenant.call_count("getMe"),
        1,
        "only the token step proves a token"
    );
}

// See: issue 10 (`/start <arg>`, what Telegram sends for a deep link, started a cell).
/// `/start`, whatever follows it, is the greeting (Telegram sends it when
/// someone first opens the bot and for `t.me/<bot>?start=…` links): a stopped
/// cell stays stopped. `/startcell <id>` starts it; `/help` and the command
/// list name `/startcell`, not `/start`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_is_a_greeting_and_startcell_starts_a_cell() {
    let telegram = Telegram::start().await;
    let (env, app, id) = one_fake_cell("bot_start_is_a_greeting", 20420, 7_000_020_421).await;
    mtp::fleet::stop(&app, &mtp::fleet::Actor::System("test"), &id)
        .await
        .unwrap();
    assert_eq!(cell_running(id.as_str()), Some(false));
    let bot = InProcess::start(&telegram, config(&env, &telegram.vars(&[]))).await;
    let chat = telegram.chat(OPERATOR);

    for text in [
        format!("/start {id}"),
        "/start".to_string(),
        "/start ref-42".to_string(),
    ] {
        let greeting = chat
            .say(&text, &["MTP Admin", "/startcell — start a client's cell"])
            .await;
        assert!(
            !greeting
                .text
                .lines()
                .any(|line| line.starts_with("/start ")),
            "/start is not a command to list:\n{greeting}"
        );
    }
    assert_eq!(
        cell_running(id.as_str()),
        Some(false),
        "a greeting started a cell"
    );
    let commands = telegram.command_names();
    assert!(
        commands.contains(&"startcell".to_string()) && !commands.contains(&"start".to_string()),
        "{commands:?}"
    );
    let working = chat
        .say(&format!("/startcell {id}"), &[&format!("Starting {id}")])
        .await;
    chat.edited(&working, DEADLINE, &format!("Started {id}"))
        .await;
    assert_eq!(cell_running(id.as_str()), Some(true));
    bot.stop().await;
    purge(&app, &id).await;
}

// See: issue 10 (every stranger's update wrote an fsync'd audit entry, queued a refusal and stayed in memory for good).
/// Ten thousand updates from as many strangers, an operator's command in the
/// middle of them: the operator is answered within the usual deadline, the
/// audit log gets at most the ration and one summary per minute, refusals stay
/// within the ration, and the bot remembers a bounded number of strangers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_of_strangers_costs_a_bounded_amount_and_does_not_delay_operators() {
    let telegram = Telegram::start().await;
    let env = TestEnv::new("bot_stranger_flood", 20440, "3s");
    let app = env.app().await;
    let strangers = std::sync::Arc::new(mtp::bot::strangers::Strangers::new());
    let bot = InProcess::start_sharing(
        &telegram,
        config(&env, &telegram.vars(&[])),
        strangers.clone(),
    )
    .await;
    let started = std::time::Instant::now();
    let flood: Vec<(UserId, &str)> = (0..10_000u64)
        .map(|n| (UserId(1_000_000 + n), "/clients"))
        .collect();
    let chat = telegram.chat(OPERATOR);
    telegram.admin.push_messages(&flood[..5_000]);
    chat.send("/help");
    telegram.admin.push_messages(&flood[5_000..]);
    chat.expect(&["MTP Admin"]).await;
    // Every update fetched, then every handler done (stopping waits for them).
    let deadline = std::time::Instant::now() + DEADLINE;
    while telegram.admin.pending_updates() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "{} updates still pending",
            telegram.admin.pending_updates()
        );
        let next = telegram.fake.calls().len() as u64;
        let _ = telegram
            .admin
            .wait_for(DEADLINE, |call| {
                call.seq >= next && call.method.eq_ignore_ascii_case("getUpdates")
            })
            .await;
    }
    bot.stop().await;
    let minutes = started.elapsed().as_secs() / 60 + 1;
    assert!(
        strangers.tracked() <= mtp::bot::strangers::MAX_TRACKED,
        "{} strangers remembered",
        strangers.tracked()
    );
    let rows = common::store_of(&app).audit_log(None, 100_000).unwrap();
    let bound = minutes as usize * (mtp::bot::strangers::REFUSALS_PER_MINUTE + 1);
    assert!(
        !rows.is_empty() && rows.len() <= bound,
        "{} audit entries for 10 000 strangers in {minutes} minute(s), at most {bound} allowed",
        rows.len()
    );
    assert!(rows.iter().all(|entry| entry.outcome == Outcome::Refused));
    let refusals = telegram
        .admin
        .calls("sendMessage")
        .into_iter()
        .filter(|call| call.chat_id() != Some(chat.id()))
        .count();
    assert!(
        refusals <= minutes as usize * mtp::bot::strangers::REFUSALS_PER_MINUTE,
        "{refusals} refusals sent"
    );
}

// See: issue 10 (tenant details, logs and usage answered in any group the bot was added to).
/// In a group that is not the ops group, commands that show or act on
/// tenants get no answer at all and nothing runs; in the ops group they work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_commands_get_no_answer_outside_operator_chats_and_the_ops_group() {
    let telegram = Telegram::start().await;
    let (env, app, id) =
        one_fake_cell("bot_commands_only_in_trusted_chats", 20460, 7_000_020_461).await;
    let bot = InProcess::start(&telegram, config(&env, &ops_vars(&telegram))).await;
    let ops = telegram.group(OPS_GROUP);
    let other = telegram.group(OTHER_GROUP);

    // Another group: silence, and nothing runs.
    for command in [
        "/clients".to_string(),
        format!("/client {id}"),
        format!("/logs {id}"),
        "/health".to_string(),
        "/usage".to_string(),
        format!("/usage {id} 7d csv"),
        format!("/restart {id}"),
        format!("/stop {id}"),
        format!("/remove {id}"),
        format!("/mute {id} 1h"),
    ] {
        other.send(OPERATOR, &command);
    }
    // One chat's updates are handled in order: the help comes after all of them.
    other.say(OPERATOR, "/help", &["MTP Admin"]).await;
    let answers: Vec<ChatMessage> = telegram
        .admin
        .messages_in(OTHER_GROUP)
        .into_iter()
        .filter(|message| message.from_bot)
        .collect();
    assert_eq!(answers.len(), 1, "{answers:#?}");
    assert_eq!(cell_running(id.as_str()), Some(true));
    assert_eq!(mtp::fleet::record(&app, &id).unwrap().muted_until, None);

    ops.say(OPERATOR, "/clients", &["Clients (1)", id.as_str()])
        .await;
    bot.stop().await;
    purge(&app, &id).await;
}

// See: issue 10 (a button pressed after its tenant was replaced acted on the new one).
/// Tenant buttons carry the tenant's stamp: pressed after the tenant was
/// upgraded, or removed and created again, they are refused and change
/// nothing (Stop, Mute, Restart); callback data the bot never made is refused
/// as such, and a button of the old stampless format has expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_buttons_act_only_on_the_tenant_they_were_made_for() {
    let telegram = Telegram::start().await;
    let (env, app, id) = one_fake_cell("bot_buttons_carry_stamps", 20520, 7_000_020_521).await;
    let bot = InProcess::start(&telegram, config(&env, &ops_vars(&telegram))).await;
    let ops = telegram.group(OPS_GROUP);
    let system = mtp::fleet::Actor::System("test");

    // The ops group: details with stamped buttons.
    let details = ops
        .say(OPERATOR, &format!("/client {id}"), &["State: running"])
        .await;
    let first_stop = button_data(&details, "t:s:");
    let first_stamp = stamp_of(&first_stop, &id);

    // Callback data the bot never made, and a button of the old stampless format.
    ops.press(OPERATOR, details.id, &format!("t:s:zz:{id}"));
    ops.expect(&["cannot read that button"]).await;
    ops.press(OPERATOR, details.id, "t:s:1.2:../etc");
    ops.expect(&["cannot read that button"]).await;
    ops.press(OPERATOR, details.id, &format!("t:s:{id}"));
    ops.expect(&["This button has expired"]).await;
    assert_eq!(cell_running(id.as_str()), Some(true));

    // Upgraded (a new generation): the old buttons act on nothing.
    let next = format!("mtp-test/fake-gateway:{}", env.prefix);
    common::docker_ok(&["tag", common::FAKE_IMAGE, &next]);
    let upgraded = mtp::fleet::upgrade(&app, &system, &id, Some(&next), &mut |_| {})
        .await
        .unwrap_or_else(|err| panic!("{err:?}"));
    assert_eq!(upgraded.generation, 2);
    ops.press(OPERATOR, details.id, &first_stop);
    ops.expect(&["made for an earlier", id.as_str()]).await;
    ops.press(OPERATOR, details.id, &format!("m:1h:{first_stamp}:{id}"));
    ops.expect(&["made for an earlier"]).await;
    assert_eq!(
        cell_running(id.as_str()),
        Some(true),
        "an old Stop button stopped the cell"
    );
    assert_eq!(mtp::fleet::record(&app, &id).unwrap().muted_until, None);

    // Removed and created again (generation 1 anew): the upgraded one's buttons act on nothing.
    let details = ops
        .say(OPERATOR, &format!("/client {id}"), &["State: running"])
        .await;
    let second_restart = button_data(&details, "t:r:");
    assert_ne!(stamp_of(&second_restart, &id), first_stamp);
    purge(&app, &id).await;
    fake_cell(&app, id.as_str(), 7_000_020_522).await;
    ops.press(OPERATOR, details.id, &second_restart);
    ops.expect(&["made for an earlier"]).await;
    let restarts = common::store_of(&app)
        .audit_log(None, 1000)
        .unwrap()
        .into_iter()
        .filter(|entry| entry.action == "restart")
        .count();
    assert_eq!(restarts, 0, "an old Restart button restarted the new cell");
    bot.stop().await;
    purge(&app, &id).await;
    let _ = common::docker(&["rmi", &next]);
}

// See: issue 10 (in the ops group, any operator typing the id confirmed another's purge).
/// A purge chosen by one operator is not confirmed by another operator typing
/// the id in the same group; the one who chose it confirms it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_is_confirmed_only_by_the_operator_who_chose_it() {
    let telegram = Telegram::start().await;
    let (env, app, id) =
        one_fake_cell("bot_purge_bound_to_its_operator", 20540, 7_000_020_541).await;
    let bot = InProcess::start(&telegram, config(&env, &ops_vars(&telegram))).await;
    let ops = telegram.group(OPS_GROUP);

    // Purge: chosen by one operator, not confirmed by another typing the id.
    let ask = ops
        .say(
            OPERATOR,
            &format!("/remove {id}"),
            &[&format!("Remove {id}?")],
        )
        .await;
    let purge = button_data(&ask, "rm:p:");
    ops.press(OPERATOR, ask.id, &purge);
    ops.expect(&["Type the client id to confirm"]).await;
    ops.say(
        SECOND_OPERATOR,
        id.as_str(),
        &["Only the operator who chose to purge"],
    )
    .await;
    assert_eq!(
        cell_running(id.as_str()),
        Some(true),
        "another operator's words purged it"
    );
    assert!(mtp::fleet::record(&app, &id).is_ok());
    let removing = ops
        .say(OPERATOR, id.as_str(), &[&format!("Removing {id}")])
        .await;
    telegram
        .admin
        .wait_for_message(OPS_GROUP, DEADLINE, |now| {
            now.id == removing.id && now.text.contains("purged its data")
        })
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(cell_running(id.as_str()), None);
    // Offboarding: a final backup was taken before the purge.
    assert_eq!(mtp::fleet::backup::list(&app, Some(&id)).unwrap().len(), 1);
    bot.stop().await;
}

/// `/backup` edits one message to the archive's size and place; `/backups`
/// lists it; `/client` shows its age; `/restore` restores only after the
/// operator who asked types the id, backing the current state up first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_are_taken_listed_and_restored_from_the_bot() {
    let telegram = Telegram::start().await;
    let (env, app, id) = one_fake_cell("bot_backups", 20560, 7_000_020_561).await;
    let bot = InProcess::start(&telegram, config(&env, &ops_vars(&telegram))).await;
    let ops = telegram.group(OPS_GROUP);

    let working = ops
        .say(
            OPERATOR,
            &format!("/backup {id}"),
            &[&format!("Backing up {id}")],
        )
        .await;
    let done = telegram
        .admin
        .wait_for_message(OPS_GROUP, DEADLINE, |now| {
            now.id == working.id && now.text.contains("Backed up")
        })
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    assert_has(&done, "the edited backup message", &["paused", ".mtpbak"]);
    let archives = mtp::fleet::backup::list(&app, Some(&id)).unwrap();
    assert_eq!(archives.len(), 1);
    let backup_id = archives[0].id.clone();

    ops.say(
        OPERATOR,
        &format!("/backups {id}"),
        &["1 backups", &backup_id],
    )
    .await;
    ops.say(
        OPERATOR,
        &format!("/client {id}"),
        &["Last backup:", &backup_id],
    )
    .await;

    // Bad input changes nothing: no such backup, a missing argument.
    ops.say(
        OPERATOR,
        &format!("/restore {id} {id}-20000101-000000"),
        &["There is no backup"],
    )
    .await;
    ops.say(
        OPERATOR,
        &format!("/restore {id}"),
        &["/restore <id> <backup>"],
    )
    .await;

    // Asked by one operator: another's words, and a wrong id, restore nothing.
    let container = common::docker(&["inspect", "-f", "{{.Id}}", &id.cell_name()]);
    ops.say(
        OPERATOR,
        &format!("/restore {id} {backup_id}"),
        &["replaces its current state", "Type"],
    )
    .await;
    ops.say(
        SECOND_OPERATOR,
        id.as_str(),
        &["Only the operator who chose"],
    )
    .await;
    ops.say(OPERATOR, "acme-typo", &["Nothing was restored"])
        .await;
    let still = common::docker(&["inspect", "-f", "{{.Id}}", &id.cell_name()]);
    assert_eq!(container.stdout, still.stdout, "nothing was restored");

    ops.say(OPERATOR, &format!("/restore {id} {backup_id}"), &["Type"])
        .await;
    let restoring = ops
        .say(OPERATOR, id.as_str(), &[&format!("Restoring {id}")])
        .await;
    telegram
        .admin
        .wait_for_message(OPS_GROUP, Duration::from_secs(90), |now| {
            now.id == restoring.id && now.text.contains("Restored")
        })
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    // The state it replaced was backed up first.
    assert_eq!(mtp::fleet::backup::list(&app, Some(&id)).unwrap().len(), 2);
    let view = mtp::fleet::show(&app, &id).await.unwrap();
    assert!(view.record.paired);

    // Asked while the tenant was gone, confirmed after one of that id was
    // made: it is not replaced, since the operator was never told it would be.
    purge(&app, &id).await;
    ops.say(
        OPERATOR,
        &format!("/restore {id} {backup_id}"),
        &["Its cell is made from the archive"],
    )
    .await;
    fake_cell(&app, id.as_str(), 7_000_020_561).await;
    let made = common::docker(&["inspect", "-f", "{{.Id}}", &id.cell_name()]);
    let refused = ops
        .say(OPERATOR, id.as_str(), &[&format!("Restoring {id}")])
        .await;
    telegram
        .admin
        .wait_for_message(OPS_GROUP, DEADLINE, |now| {
            now.id == refused.id && now.text.contains("exists")
        })
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    let still = common::docker(&["inspect", "-f", "{{.Id}}", &id.cell_name()]);
    assert_eq!(
        made.stdout, still.stdout,
        "the tenant made meanwhile was replaced"
    );
    bot.stop().await;
    purge(&app, &id).await;
}

/// The operators (`OPERATOR`, `SECOND_OPERATOR`) and `OPS_GROUP` as the ops group.
fn ops_vars(telegram: &Telegram) -> BTreeMap<String, String> {
    let operators = format!("{},{}", OPERATOR.0, SECOND_OPERATOR.0);
    let ops_chat = OPS_GROUP.0.to_string();
    telegram.vars(&[
        ("MTP_OPERATORS", &operators),
        ("MTP_OPS_CHAT_ID", &ops_chat),
    ])
}

/// The fake Bot API, this test's env (no cell boots: a 3 s health timeout) and
/// app, and the admin bot in process with `extra` variables.
async fn bot_in_process(
    name: &str,
    port_start: u16,
    extra: &[(&str, &str)],
) -> (Telegram, TestEnv, App, InProcess) {
    let telegram = Telegram::start().await;
    let env = TestEnv::new(name, port_start, "3s");
    let app = env.app().await;
    let bot = InProcess::start(&telegram, config(&env, &telegram.vars(extra))).await;
    (telegram, env, app, bot)
}

/// This test's env and app with one tenant, "acme", whose cell is the fake
/// gateway with its own bot (`bot_id`).
async fn one_fake_cell(name: &str, port_start: u16, bot_id: u64) -> (TestEnv, App, TenantId) {
    let env = TestEnv::new(name, port_start, "60s");
    let app = env.app().await;
    let id = fake_cell(&app, &env.tenant("acme"), bot_id).await;
    (env, app, id)
}

/// Removes a tenant and purges its data, as the test's system actor.
async fn purge(app: &App, id: &TenantId) {
    mtp::fleet::remove(app, &mtp::fleet::Actor::System("test"), id, true)
        .await
        .unwrap();
}

/// A tenant whose cell is the fake gateway, created as an operator would;
/// every tenant needs its own bot, hence `bot_id`.
async fn fake_cell(app: &App, id: &str, bot_id: u64) -> TenantId {
    let image = common::docker(&["image", "inspect", common::FAKE_IMAGE]);
    assert!(
        image.status.success(),
        "image {} is missing; run scripts/build-fake-image.sh",
        common::FAKE_IMAGE
    );
    let id: TenantId = id.parse().unwrap();
    let token = common::BOT_TOKEN.replacen("7000000001", &bot_id.to_string(), 1);
    let spec = mtp::tenant::TenantSpec {
        id: id.clone(),
        display_name: None,
        bot_token: mtp::tenant::BotToken::parse(&token).unwrap(),
        provider_key: None,
        model: app.config().cell.model.clone(),
        image: Some(common::FAKE_IMAGE.to_string()),
        limits: None,
        dm_policy: mtp::tenant::DmPolicy::Pairing,
        skills: None,
        bot_username: None,
        keep_failed: false,
    };
    mtp::fleet::create(app, &mtp::fleet::Actor::System("test"), spec, &mut |_| {})
        .await
        .expect("the fake cell is created");
    id
}

/// The callback data of the button under `message` whose data starts with `prefix`.
#[track_caller]
fn button_data(message: &ChatMessage, prefix: &str) -> String {
    message
        .keyboard
        .iter()
        .flatten()
        .filter_map(|button| button.callback_data.clone())
        .find(|data| data.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix}… button under:\n{message}"))
}

/// The stamp in a tenant button's data, `kind:verb:<stamp>:<id>`.
#[track_caller]
fn stamp_of(data: &str, id: &TenantId) -> String {
    let parts: Vec<&str> = data.split(':').collect();
    assert!(
        parts.len() == 4 && parts[3] == id.as_str(),
        "not a stamped button of {id}: {data}"
    );
    parts[2].to_string()
}

/// Asserts that `message` holds every one of `pieces`, printing it in full
/// (`what` names it) when not.
#[track_caller]
fn assert_has(message: &ChatMessage, what: &str, pieces: &[&str]) {
    for piece in pieces {
        assert!(
            message.text.contains(piece),
            "expected {piece:?} in {what}:\n{message}"
        );
    }
}

/// A group with the admin bot in it, as its members see it.
struct Group {
    admin: FakeBot,
    chat: ChatId,
}

impl Group {
    fn send(&self, from: UserId, text: &str) -> MessageId {
        self.admin.push_group_message(self.chat, from, text)
    }

    /// The bot's next message in the group, which must contain every piece of `expected`.
    async fn expect(&self, expected: &[&str]) -> ChatMessage {
        let message = self
            .admin
            .next_message_to(self.chat, DEADLINE)
            .await
            .unwrap_or_else(|err| panic!("{err}"));
        assert_has(&message, "the bot's next message", expected);
        message
    }

    async fn say(&self, from: UserId, text: &str, expected: &[&str]) -> ChatMessage {
        self.send(from, text);
        self.expect(expected).await
    }

    /// `from` presses a button with `data` under `message` (made by the bot or not).
    fn press(&self, from: UserId, message: MessageId, data: &str) -> String {
        self.admin.push_callback(self.chat, from, message, data)
    }
}

/// The fake Bot API with the admin bot and the client's bot registered.
struct Telegram {
    fake: FakeTelegram,
    admin: FakeBot,
    tenant: FakeBot,
}

impl Telegram {
    async fn start() -> Telegram {
        let fake = FakeTelegram::start().await;
        let admin = fake.add_bot(ADMIN_TOKEN, ADMIN_BOT_ID, "mtp_admin_bot");
        let tenant = fake.add_bot(TENANT_TOKEN, TENANT_BOT_ID, TENANT_USERNAME);
        Telegram {
            fake,
            admin,
            tenant,
        }
    }

    /// The `MTP_*` variables that point the admin at this fake, plus `extra`.
    fn vars(&self, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut vars = BTreeMap::from([
            ("MTP_TELEGRAM_TOKEN".to_string(), ADMIN_TOKEN.to_string()),
            ("MTP_OPERATORS".to_string(), OPERATOR.0.to_string()),
            (
                "MTP_TELEGRAM_API_URL".to_string(),
                self.fake.url().to_string(),
            ),
        ]);
        vars.extend(
            extra
                .iter()
                .map(|(key, value)| (key.to_string(), value.to_string())),
        );
        vars
    }

    /// The commands the admin bot registered, without their descriptions.
    fn command_names(&self) -> Vec<String> {
        self.admin
            .commands()
            .into_iter()
            .map(|(command, _)| command)
            .collect()
    }

    /// `chat`, a group with the admin bot in it.
    fn group(&self, chat: ChatId) -> Group {
        Group {
            admin: self.admin.clone(),
            chat,
        }
    }

    /// `user`'s private chat with the admin bot.
    fn chat(&self, user: UserId) -> Chat {
        Chat {
            admin: self.admin.clone(),
            user,
        }
    }

    /// Waits until an admin bot that started after the `since`-th call has
    /// registered its commands, the last thing before it polls.
    async fn started_since(&self, since: usize) -> Result<(), String> {
        let since = since as u64;
        self.admin
            .wait_for(DEADLINE, |call| {
                call.seq >= since && call.method.eq_ignore_ascii_case("setMyCommands")
            })
            .await
            .map(|_| ())
    }
}

/// The admin bot in this process, as `mtp serve` runs it.
struct InProcess {
    stop: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl InProcess {
    async fn start(telegram: &Telegram, config: AdminConfig) -> InProcess {
        InProcess::start_sharing(
            telegram,
            config,
            Arc::new(mtp::bot::strangers::Strangers::new()),
        )
        .await
    }

    /// Starts the bot with `strangers` as its gate for non-operators.
    async fn start_sharing(
        telegram: &Telegram,
        config: AdminConfig,
        strangers: Arc<mtp::bot::strangers::Strangers>,
    ) -> InProcess {
        let since = telegram.fake.calls().len();
        let app = App::open(config).await.expect("app opens");
        let (stop, stopped) = oneshot::channel::<()>();
        let mut task = tokio::spawn(mtp::bot::run_with_strangers(app, strangers, async move {
            let _ = stopped.await;
        }));
        tokio::select! {
            ended = &mut task => panic!("the bot stopped while starting: {ended:?}"),
            started = telegram.started_since(since) => started.unwrap_or_else(|err| panic!("{err}")),
        }
        InProcess { stop, task }
    }

    /// Stops polling; handlers in flight finish first.
    async fn stop(self) {
        let _ = self.stop.send(());
        let ended = tokio::time::timeout(DEADLINE, self.task)
            .await
            .expect("the bot stops within the deadline");
        ended
            .expect("the bot task did not panic")
            .expect("the bot ran without error");
    }
}

/// `mtp serve` as a child process.
struct Serve {
    child: tokio::process::Child,
}

impl Serve {
    async fn start(telegram: &Telegram, env: &TestEnv, vars: &BTreeMap<String, String>) -> Serve {
        let since = telegram.fake.calls().len();
        let mut child = serve_command(env, vars).spawn().expect("spawn mtp serve");
        tokio::select! {
            exited = child.wait() => {
                let mut stderr = String::new();
                if let Some(mut pipe) = child.stderr.take() {
                    let _ = tokio::io::AsyncReadExt::read_to_string(&mut pipe, &mut stderr).await;
                }
                panic!("mtp serve exited while starting ({exited:?}):\n{stderr}");
            }
            started = telegram.started_since(since) => started.unwrap_or_else(|err| panic!("{err}")),
        }
        Serve { child }
    }

    /// Sends SIGTERM and waits for the exit; returns the status and stderr.
    async fn terminate(self) -> (ExitStatus, String) {
        let pid = self.child.id().expect("mtp serve is running");
        let kill = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(kill.success(), "kill -TERM {pid} failed");
        let output = tokio::time::timeout(CELL_DEADLINE, self.child.wait_with_output())
            .await
            .expect("mtp serve exits after SIGTERM")
            .expect("wait for mtp serve");
        (
            output.status,
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }
}

/// `mtp --config <test config> serve` with `vars` as its only `MTP_*` variables.
fn serve_command(env: &TestEnv, vars: &BTreeMap<String, String>) -> tokio::process::Command {
    let mut command = env.serve_command();
    command
        .envs(vars)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

fn config(env: &TestEnv, vars: &BTreeMap<String, String>) -> AdminConfig {
    AdminConfig::load(Some(&env.config_path), None, vars).expect("the test config loads")
}

/// What the operator does at one step of a walk through `/newclient`.
#[derive(Clone, Copy, Debug)]
enum Act<'a> {
    Say(&'a str),
    /// Presses the button with this data under the last question.
    Press(&'a str),
}

/// `/newclient` up to the summary: each act and a piece of the question the
/// bot asks after it. `key_button` answers the key step.
fn walk<'a>(id: &'a str, key_button: &'a str) -> Vec<(Act<'a>, &'static str)> {
    vec![
        (Act::Say("/newclient"), "step 1/7"),
        (Act::Say(id), "step 2/7"),
        (Act::Press("nc:skip"), "step 3/7"),
        (Act::Say(TENANT_TOKEN), "step 4/7"),
        (Act::Press("nc:model:0"), "step 5/7"),
        (Act::Press(key_button), "step 6/7"),
        (Act::Press("nc:skills:done"), "step 7/7"),
        (Act::Press("nc:access:allowlist"), "user ids"),
        (Act::Say("123456789"), "Please confirm"),
    ]
}

/// A user's private chat with the admin bot, as the user sees it.
struct Chat {
    admin: FakeBot,
    user: UserId,
}

impl Chat {
    fn id(&self) -> ChatId {
        ChatId(i64::try_from(self.user.0).expect("test user ids are small"))
    }

    /// Writes `text` to the bot.
    fn send(&self, text: &str) -> MessageId {
        self.admin.push_message(self.id(), self.user, text)
    }

    /// The bot's next message in this chat.
    async fn reply(&self) -> ChatMessage {
        self.admin
            .next_message_to(self.id(), DEADLINE)
            .await
            .unwrap_or_else(|err| panic!("{err}"))
    }

    /// The bot's next message, which must contain every piece of `expected`.
    async fn expect(&self, expected: &[&str]) -> ChatMessage {
        let message = self.reply().await;
        assert_has(&message, "the bot's next message", expected);
        message
    }

    /// The first of the bot's next messages that contains `expected`.
    async fn until(&self, expected: &str) -> ChatMessage {
        let mut skipped = Vec::new();
        loop {
            let message = self.reply().await;
            if message.text.contains(expected) {
                return message;
            }
            skipped.push(message.to_string());
            assert!(
                skipped.len() < 4,
                "no message with {expected:?}; got:\n{}",
                skipped.join("\n")
            );
        }
    }

    async fn send_and_reply(&self, text: &str) -> ChatMessage {
        self.send(text);
        self.reply().await
    }

    /// Writes `text` and checks the bot's answer.
    async fn say(&self, text: &str, expected: &[&str]) -> ChatMessage {
        self.send(text);
        self.expect(expected).await
    }

    /// Presses the button with `data` under `message` (it must be there);
    /// returns the callback query id.
    fn press(&self, message: &ChatMessage, data: &str) -> String {
        let now = self
            .admin
            .message(self.id(), message.id)
            .expect("the message is in the chat");
        let there = now
            .keyboard
            .iter()
            .flatten()
            .any(|button| button.callback_data.as_deref() == Some(data));
        assert!(there, "no button {data:?} under:\n{now}");
        self.admin
            .push_callback(self.id(), self.user, message.id, data)
    }

    /// Sends callback data no button of `message` carries, as a forger would.
    fn press_forged(&self, message: MessageId, data: &str) -> String {
        self.admin
            .push_callback(self.id(), self.user, message, data)
    }

    /// `/remove <id>`, then the purge button: the bot asks for the id.
    async fn choose_purge(&self, id: &str) {
        let ask = self
            .say(&format!("/remove {id}"), &[&format!("Remove {id}?")])
            .await;
        self.tap(
            &ask,
            &button_data(&ask, "rm:p:"),
            &["Type the client id to confirm"],
        )
        .await;
    }

    /// Presses a button and checks the bot's answer.
    async fn tap(&self, message: &ChatMessage, data: &str, expected: &[&str]) -> ChatMessage {
        self.press(message, data);
        self.expect(expected).await
    }

    /// Waits until the bot answered the callback query: it handled the press.
    async fn answered(&self, query_id: &str) {
        self.admin
            .wait_for(DEADLINE, |call| {
                call.method.eq_ignore_ascii_case("answerCallbackQuery")
                    && call.params.get("callback_query_id").and_then(Value::as_str)
                        == Some(query_id)
            })
            .await
            .unwrap_or_else(|err| panic!("{err}"));
    }

    /// Waits until `message` has been edited to contain `expected`.
    async fn edited(
        &self,
        message: &ChatMessage,
        timeout: Duration,
        expected: &str,
    ) -> ChatMessage {
        self.admin
            .wait_for_message(self.id(), timeout, |now| {
                now.id == message.id && now.text.contains(expected)
            })
            .await
            .unwrap_or_else(|err| panic!("{err}"))
    }

    /// Walks `acts` and returns the question after the last one.
    async fn walk(&self, acts: &[(Act<'_>, &str)]) -> ChatMessage {
        let mut question: Option<ChatMessage> = None;
        for (act, expected) in acts {
            match act {
                Act::Say(text) => {
                    self.send(text);
                }
                Act::Press(data) => {
                    self.press(question.as_ref().expect("a question to answer"), data);
                }
            }
            question = Some(self.until(expected).await);
        }
        question.expect("a walk of at least one act")
    }

    /// Every message the bot sent to this chat.
    fn admin_messages(&self) -> Vec<ChatMessage> {
        self.admin
            .messages_in(self.id())
            .into_iter()
            .filter(|message| message.from_bot)
            .collect()
    }

    /// The user's `message` was deleted, and before the bot's last answer.
    fn assert_deleted_before_the_next_answer(&self, message: MessageId) {
        let calls = self.admin.all_calls();
        let deleted = calls
            .iter()
            .position(|call| {
                call.method.eq_ignore_ascii_case("deleteMessage")
                    && call.message_id() == Some(message)
                    && call.is_ok()
            })
            .unwrap_or_else(|| panic!("message {} was not deleted", message.0));
        let answered = calls
            .iter()
            .position(|call| {
                call.method.eq_ignore_ascii_case("sendMessage")
                    && call.chat_id() == Some(self.id())
                    && call
                        .result()
                        .and_then(|result| result["message_id"].as_i64())
                        .is_some_and(|id| id > i64::from(message.0))
            })
            .expect("an answer to the message");
        assert!(
            deleted < answered,
            "message {} was deleted after the answer to it",
            message.0
        );
    }
}

/// A `/logs` answer: the log in a `<pre>` block, or as a file when long.
#[track_caller]
fn assert_is_log(message: &ChatMessage) {
    let in_text = message.raw_text.starts_with("<pre>") && message.text.trim().lines().count() > 0;
    let as_file = message
        .upload
        .as_ref()
        .is_some_and(|upload| !upload.bytes.is_empty());
    assert!(in_text || as_file, "not a log:\n{message}");
    let body = format!(
        "{}{}",
        message.text,
        message
            .upload
            .as_ref()
            .map(|upload| String::from_utf8_lossy(&upload.bytes).into_owned())
            .unwrap_or_default()
    );
    assert!(!body.contains(TENANT_TOKEN), "the bot token is in the log");
}

/// `/sleep` puts a client to sleep (💤 in `/clients`), `/wake` wakes it, each
/// editing one message to the outcome; a stopped client is refused with why;
/// `/capacity` answers with the host's memory and the clients' mix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sleep_wake_and_capacity_from_the_phone() {
    let telegram = Telegram::start().await;
    let (env, app, id) = one_fake_cell("bot_sleep_wake", 21800, 7_000_021_801).await;
    let bot = InProcess::start(&telegram, config(&env, &ops_vars(&telegram))).await;
    let ops = telegram.group(OPS_GROUP);
    // One message, "<working> <id>" at first, edited to hold `outcome`.
    let act = async |command: &str, working: &str, outcome: &str| {
        let first = ops
            .say(
                OPERATOR,
                &format!("{command} {id}"),
                &[&format!("{working} {id}")],
            )
            .await;
        telegram
            .admin
            .wait_for_message(OPS_GROUP, DEADLINE, |now| {
                now.id == first.id && now.text.contains(outcome)
            })
            .await
            .unwrap_or_else(|err| panic!("{err}"));
    };

    act("/sleep", "Sleeping", "is asleep").await;
    assert_eq!(cell_running(id.as_str()), Some(false));
    ops.say(OPERATOR, "/clients", &[&format!("💤 {id}")]).await;
    ops.say(
        OPERATOR,
        "/capacity",
        &["Capacity", "GiB free", "1 sleeping"],
    )
    .await;

    act("/wake", "Waking", "Woke").await;
    assert_eq!(cell_running(id.as_str()), Some(true));
    assert_eq!(
        mtp::fleet::record(&app, &id).unwrap().state,
        mtp::tenant::CellState::Running
    );

    act("/stop", "Stopping", "Stopped").await;
    act("/sleep", "Sleeping", "only a running tenant goes to sleep").await;
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn upgradeall_plans_runs_and_reports_from_the_phone() {
    let telegram = Telegram::start().await;
    let (env, app, first) = one_fake_cell("bot_upgradeall", 21840, 7_000_021_841).await;
    let second = fake_cell(&app, &env.tenant("beta"), 7_000_021_842).await;
    let bot = InProcess::start(&telegram, config(&env, &ops_vars(&telegram))).await;
    let ops = telegram.group(OPS_GROUP);
    let next = format!("mtp-test/fake-gateway:{}-2", env.prefix);
    common::docker_ok(&["tag", common::FAKE_IMAGE, &next]);

    // Bad input changes nothing.
    ops.say(
        OPERATOR,
        "/upgradeall nginx:latest",
        &["Nothing was changed"],
    )
    .await;
    ops.say(OPERATOR, "/upgradeall a b c", &["Usage: /upgradeall"])
        .await;
    // The plan first: the canary, then a wave.
    ops.say(
        OPERATOR,
        &format!("/upgradeall {next}"),
        &[
            "Rollout to",
            "canary: ",
            first.as_str(),
            second.as_str(),
            "go",
        ],
    )
    .await;
    assert_eq!(
        mtp::fleet::record(&app, &first).unwrap().image,
        common::FAKE_IMAGE
    );
    // Go: one message follows it to its end (the pause after the canary is
    // the bot's five minutes, so halt it there and resume).
    let started = ops
        .say(OPERATOR, &format!("/upgradeall {next} go"), &["starting"])
        .await;
    telegram
        .admin
        .wait_for_message(OPS_GROUP, Duration::from_secs(120), |now| {
            now.id == started.id && now.text.contains("next wave at")
        })
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    ops.say(
        OPERATOR,
        "/upgradeall halt",
        &["halts before its next client"],
    )
    .await;
    telegram
        .admin
        .wait_for_message(OPS_GROUP, DEADLINE, |now| {
            now.id == started.id && now.text.contains("halted by the operator")
        })
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    ops.say(OPERATOR, "/upgradeall status", &["halted", first.as_str()])
        .await;
    let resumed = ops.say(OPERATOR, "/upgradeall resume", &["starting"]).await;
    telegram
        .admin
        .wait_for_message(OPS_GROUP, Duration::from_secs(120), |now| {
            now.id == resumed.id && now.text.contains("done: 2/2")
        })
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    for id in [&first, &second] {
        assert_eq!(mtp::fleet::record(&app, id).unwrap().image, next);
    }

    // Resize from the phone: in place, and refusals change nothing.
    ops.say(
        OPERATOR,
        &format!("/resize {first} 768m 1"),
        &["resized in place", "0.75 GiB"],
    )
    .await;
    assert_eq!(
        mtp::fleet::record(&app, &first)
            .unwrap()
            .limits
            .memory_bytes,
        768 * 1024 * 1024
    );
    ops.say(
        OPERATOR,
        &format!("/resize {first} 900g"),
        &["cannot hold", "Nothing was changed"],
    )
    .await;
    ops.say(
        OPERATOR,
        &format!("/resize {first} lots"),
        &["Not resizing", "write it like 3g", "Nothing was changed"],
    )
    .await;
    // A move is between the nodes of a swarm; on one host it is refused.
    ops.say(
        OPERATOR,
        &format!("/move {first} node-2"),
        &["Not moving", "nodes of a swarm", "Nothing was changed"],
    )
    .await;
    ops.say(OPERATOR, "/move", &["Usage: /move <id> <node>"])
        .await;

    // Skills as toggles: a tap turns one on through the client's config.
    let shown = ops
        .say(
            OPERATOR,
            &format!("/skills {first}"),
            &["Bundled skills of", "none chosen"],
        )
        .await;
    ops.press(OPERATOR, shown.id, &format!("sk:0:{first}"));
    telegram
        .admin
        .wait_for_message(OPS_GROUP, Duration::from_secs(60), |now| {
            now.id == shown.id && now.text.contains("Weather is on")
        })
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    ops.press(OPERATOR, shown.id, "sk:99:nope");
    ops.expect(&["cannot read that button"]).await;

    // Config: read, a preview with its code, and only the typed code applies it.
    let every = "agents.defaults.heartbeat.every";
    let preview = ops
        .say(
            OPERATOR,
            &format!("/config {first} {every} \"45m\""),
            &["Preview for", "45m", "To apply exactly this"],
        )
        .await;
    let command = preview.text.lines().last().unwrap().trim().to_string();
    assert!(
        command.starts_with("/config ") && command.contains(" !"),
        "{command}"
    );
    ops.say(
        OPERATOR,
        &format!("/config {first} {every} \"46m\" !000000"),
        &["changed since the preview"],
    )
    .await;
    ops.say(OPERATOR, &command, &["✅", every, "45m"]).await;
    ops.say(OPERATOR, &format!("/config {first} {every}"), &["45m"])
        .await;
    ops.say(
        OPERATOR,
        &format!("/config {first} gateway.port 1"),
        &["managed by MTP", "Nothing was changed"],
    )
    .await;

    // `/client` shows the last events, and its History button more.
    let details = ops
        .say(
            OPERATOR,
            &format!("/client {first}"),
            &["Recent:", "config set"],
        )
        .await;
    let history = details
        .keyboard
        .iter()
        .flatten()
        .find(|button| button.text.contains("History"))
        .and_then(|button| button.callback_data.clone())
        .expect("a History button");
    ops.press(OPERATOR, details.id, &history);
    ops.expect(&["History of", "upgrade", "resize", "create"])
        .await;
    assert_eq!(
        mtp::fleet::record(&app, &first)
            .unwrap()
            .limits
            .memory_bytes,
        768 * 1024 * 1024
    );
    bot.stop().await;
}

/// `/doctor` lists what is wrong with the command that fixes it: a client's
/// config file opened to everyone (0644) is named, with `chmod 600` and the
/// mark that `mtp doctor --fix` repairs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_from_the_phone_names_a_loose_file_and_its_fix() {
    use std::os::unix::fs::PermissionsExt;
    let telegram = Telegram::start().await;
    let (env, _app, id) = one_fake_cell("bot_doctor", 21980, 7_000_021_981).await;
    let config_file = env
        .data_dir()
        .join("tenants")
        .join(id.as_str())
        .join("state")
        .join("openclaw.json");
    std::fs::set_permissions(&config_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let bot = InProcess::start(&telegram, config(&env, &ops_vars(&telegram))).await;
    let ops = telegram.group(OPS_GROUP);
    let chmod = format!("chmod 600 {}", config_file.display());
    ops.say(
        OPERATOR,
        "/doctor",
        &["Doctor", id.as_str(), "files", "mode 0644", &chmod, "🔧"],
    )
    .await;
    bot.stop().await;
}
