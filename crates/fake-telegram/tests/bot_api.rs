//! Self-test of the fake Telegram Bot API of this crate.
//! A real teloxide `Bot` talks to it over HTTP, so every answer checked here
//! is one teloxide parses, and every refusal is the `ApiError` a bot would see.

use std::time::Duration;

use serde_json::json;
use teloxide::prelude::*;
use teloxide::types::{
    BotCommand, InlineKeyboardButton, InlineKeyboardMarkup, InputFile, MaybeInaccessibleMessage,
    ParseMode, UpdateKind,
};
use teloxide::{ApiError, RequestError};
use tokio::task::JoinHandle;

use mtp_fake_telegram::{Failure, FakeBot, FakeTelegram};

const ADMIN_TOKEN: &str = "7000000001:AAFakeAdminTokenForTestsOnly_abcdefgh";
const TENANT_TOKEN: &str = "7000000002:AAFakeTenantTokenForTestsOnly_abcdefg";
const OPERATOR: UserId = UserId(4242);
const OPERATOR_CHAT: ChatId = ChatId(4242);
/// Generous on purpose: every wait ends as soon as its condition holds.
const DEADLINE: Duration = Duration::from_secs(10);
/// Longer than `DEADLINE`, so a poll that is not woken by a push fails the test.
const POLL_TIMEOUT_SECS: u32 = 15;

/// `getMe` answers registered tokens with their bot and refuses others with
/// 401, which teloxide reads as `InvalidToken`; calls are counted per token.
#[tokio::test]
async fn get_me_answers_registered_tokens_and_refuses_others() {
    let (fake, admin, _bot) = start().await;
    let tenant = fake.add_bot(TENANT_TOKEN, 7_000_000_002, "acme_assistant_bot");

    let me = client(&fake, TENANT_TOKEN)
        .get_me()
        .await
        .expect("getMe with a registered token");
    assert_eq!(me.id, UserId(7_000_000_002));
    assert_eq!(me.username(), "acme_assistant_bot");

    let refused = client(&fake, "7000000003:AAUnknownTokenForTestsOnly")
        .get_me()
        .await;
    assert_refused(refused, ApiError::InvalidToken);

    assert_eq!(tenant.call_count("getMe"), 1);
    assert_eq!(tenant.call_count("getUpdates"), 0);
    assert_eq!(admin.call_count("getMe"), 0);
    let unknown: Vec<_> = fake
        .calls()
        .into_iter()
        .filter(|call| call.token.starts_with("7000000003:"))
        .collect();
    assert_eq!(unknown.len(), 1, "{unknown:#?}");
    assert_eq!(
        unknown[0].response.as_ref().map_err(|failure| failure.code),
        Err(401)
    );
}

/// A message edited twice and a user message deleted show in the chat view as
/// the user sees them; a deleted message can be neither deleted nor edited.
#[tokio::test]
async fn sent_edited_and_deleted_messages_show_in_the_chat_view() {
    let (_fake, admin, bot) = start().await;
    let keyboard = InlineKeyboardMarkup::new([[
        InlineKeyboardButton::callback("Confirm", "onboard:confirm"),
        InlineKeyboardButton::callback("Cancel", "onboard:cancel"),
    ]]);

    let sent = bot
        .send_message(OPERATOR_CHAT, "⏳ creating <b>acme</b>")
        .parse_mode(ParseMode::Html)
        .reply_markup(keyboard)
        .await
        .expect("sendMessage");
    assert_eq!(sent.text(), Some("⏳ creating acme"));
    assert_eq!(
        sent.reply_markup()
            .map(|markup| markup.inline_keyboard[0].len()),
        Some(2)
    );
    bot.edit_message_text(OPERATOR_CHAT, sent.id, "✅ container")
        .await
        .expect("first edit");
    let edited = bot
        .edit_message_text(OPERATOR_CHAT, sent.id, "✅ container\n✅ healthy")
        .await
        .expect("second edit");
    assert_eq!(edited.text(), Some("✅ container\n✅ healthy"));
    assert!(edited.edit_date().is_some());
    let token_message = admin.push_message(OPERATOR_CHAT, OPERATOR, "7000000002:AAsecret");
    bot.delete_message(OPERATOR_CHAT, token_message)
        .await
        .expect("deleteMessage");

    let chat = admin.messages_in(OPERATOR_CHAT);
    assert_eq!(chat.len(), 2, "{chat:#?}");
    assert_eq!(chat[0].text, "✅ container\n✅ healthy");
    assert!(
        chat[0].keyboard.is_empty(),
        "an edit without reply_markup removes the keyboard: {:?}",
        chat[0]
    );
    assert_eq!(
        admin.edits_of(OPERATOR_CHAT, sent.id),
        ["✅ container", "✅ container\n✅ healthy"]
    );
    assert_eq!(chat[1].id, token_message);
    assert!(chat[1].deleted && !chat[1].from_bot, "{:?}", chat[1]);
    let first = admin
        .next_message_to(OPERATOR_CHAT, DEADLINE)
        .await
        .expect("the bot's message");
    assert_eq!(first.id, sent.id);

    let again = bot.delete_message(OPERATOR_CHAT, token_message).await;
    assert_refused(again, ApiError::MessageToDeleteNotFound);
    bot.delete_message(OPERATOR_CHAT, sent.id)
        .await
        .expect("delete the bot's message");
    let late_edit = bot
        .edit_message_text(OPERATOR_CHAT, sent.id, "✅ paired")
        .await;
    assert_refused(late_edit, ApiError::MessageToEditNotFound);
}

/// What Telegram refuses, the fake refuses, with the error teloxide expects.
#[tokio::test]
async fn telegram_limits_refuse_buggy_requests() {
    let (_fake, _admin, bot) = start().await;
    let send = |text: &str, parse_mode: Option<ParseMode>| {
        let request = bot.send_message(OPERATOR_CHAT, text);
        match parse_mode {
            Some(parse_mode) => request.parse_mode(parse_mode),
            None => request,
        }
    };

    let too_long = send(&"x".repeat(4097), None).await;
    assert_refused(too_long, ApiError::MessageIsTooLong);
    send(&"x".repeat(4096), None)
        .await
        .expect("4096 characters fit");

    let data = "d".repeat(65);
    let keyboard = InlineKeyboardMarkup::new([[InlineKeyboardButton::callback("Too much", data)]]);
    let long_data = bot
        .send_message(OPERATOR_CHAT, "pick")
        .reply_markup(keyboard)
        .await;
    assert_refused(long_data, ApiError::ButtonDataInvalid);

    for (parse_mode, broken) in [
        (ParseMode::Html, "a < b"),
        (ParseMode::Html, "<b>bold"),
        (ParseMode::Html, "<b><i>crossed</b></i>"),
        (ParseMode::Html, "<script>x</script>"),
        (ParseMode::MarkdownV2, "Done."),
        (ParseMode::MarkdownV2, "*bold"),
        (ParseMode::MarkdownV2, "1 - 2"),
    ] {
        let refused = send(broken, Some(parse_mode)).await;
        assert!(
            matches!(
                refused,
                Err(RequestError::Api(ApiError::CantParseEntities(_)))
            ),
            "{parse_mode:?} {broken:?}: {refused:?}"
        );
    }
    let escaped = send(
        "a &lt; b &amp; <a href=\"https://t.me/x\">c</a>",
        Some(ParseMode::Html),
    )
    .await
    .expect("html");
    assert_eq!(escaped.text(), Some("a < b & c"));

    let escaped = send("*acme* is `ready`\\.", Some(ParseMode::MarkdownV2))
        .await
        .expect("markdown v2");
    assert_eq!(escaped.text(), Some("acme is ready."));

    let unchanged = bot
        .edit_message_text(OPERATOR_CHAT, escaped.id, "*acme* is `ready`\\.")
        .parse_mode(ParseMode::MarkdownV2)
        .await;
    assert_refused(unchanged, ApiError::MessageNotModified);
}

/// Well-formed markup Telegram accepts is accepted too, so the fake never
/// fails a correct bot.
#[tokio::test]
async fn valid_markup_is_accepted() {
    let (_fake, _admin, bot) = start().await;
    let accepted = [
        (
            ParseMode::Html,
            "<pre><code class=\"language-rust\">let x = 1;</code></pre>",
        ),
        (
            ParseMode::Html,
            "<a href=\"https://example.com/?a=1&b=2\">link</a> & more",
        ),
        (
            ParseMode::Html,
            "<blockquote expandable>q</blockquote><tg-spoiler>s</tg-spoiler>",
        ),
        (
            ParseMode::Html,
            "<span class=\"tg-spoiler\">s</span> &#128512; &quot;x&quot;",
        ),
        (ParseMode::MarkdownV2, "```\nlet x = 1;\n```"),
        (ParseMode::MarkdownV2, "```rust\nfn main() {}\n```"),
        (
            ParseMode::MarkdownV2,
            "[docs](https://example.com/a_b\\)c) and `code.`",
        ),
        (
            ParseMode::MarkdownV2,
            ">quoted\n||spoiler|| __under__ ~strike~ _it_ *bold _both_*",
        ),
        (ParseMode::MarkdownV2, "acme\\-1 costs 3\\.50 \\(est\\.\\)"),
        #[allow(deprecated)]
        (
            ParseMode::Markdown,
            "*bold* _it_ `code` [link](https://example.com) 1-2.",
        ),
    ];
    for (parse_mode, text) in accepted {
        let sent = bot
            .send_message(OPERATOR_CHAT, text)
            .parse_mode(parse_mode)
            .await;
        assert!(sent.is_ok(), "{parse_mode:?} {text:?}: {sent:?}");
    }
}

/// Messages pushed in a group come from a group chat, and the bot's answer
/// lands in that chat's view.
#[tokio::test]
async fn group_messages_come_from_a_group_chat() {
    let (_fake, admin, bot) = start().await;
    let ops_chat = ChatId(-1_001_234_567_890);
    admin.push_group_message(ops_chat, OPERATOR, "/status@mtp_admin_bot");

    let updates = bot.get_updates().await.expect("getUpdates");
    let UpdateKind::Message(message) = &updates[0].kind else {
        panic!("not a message: {:#?}", updates[0])
    };
    assert!(message.chat.is_supergroup(), "{message:#?}");
    assert_eq!(message.from.as_ref().map(|user| user.id), Some(OPERATOR));
    bot.send_message(ops_chat, "🔴 acme is down")
        .await
        .expect("sendMessage to the group");
    let texts: Vec<String> = admin
        .messages_in(ops_chat)
        .into_iter()
        .map(|message| message.text)
        .collect();
    assert_eq!(texts, ["/status@mtp_admin_bot", "🔴 acme is down"]);
}

/// A waiting `getUpdates` returns as soon as a message is pushed, with a
/// `Message` teloxide parses; updates stay until an offset confirms them.
#[tokio::test]
async fn long_polling_wakes_when_an_update_is_pushed() {
    let (_fake, admin, bot) = start().await;
    let poll = spawn_poll(&bot);
    admin
        .wait_for_poll(DEADLINE)
        .await
        .expect("the poll waits for updates");

    let message_id = admin.push_message(OPERATOR_CHAT, OPERATOR, "/newclient");
    let updates = tokio::time::timeout(DEADLINE, poll)
        .await
        .expect("the poll returns when woken, before its own timeout")
        .expect("the poll task")
        .expect("getUpdates");
    assert_eq!(updates.len(), 1, "{updates:#?}");
    let UpdateKind::Message(message) = &updates[0].kind else {
        panic!("not a message: {:#?}", updates[0])
    };
    assert_eq!(message.id, message_id);
    assert_eq!(message.text(), Some("/newclient"));
    assert_eq!(message.from.as_ref().map(|user| user.id), Some(OPERATOR));
    assert_eq!(message.chat.id, OPERATOR_CHAT);

    let unconfirmed = bot.get_updates().await.expect("getUpdates without offset");
    assert_eq!(
        unconfirmed.len(),
        1,
        "an update stays until an offset confirms it"
    );
    let confirmed = bot
        .get_updates()
        .offset(updates[0].id.as_offset())
        .await
        .expect("getUpdates with offset");
    assert!(confirmed.is_empty(), "{confirmed:#?}");
    assert_eq!(admin.pending_updates(), 0);
}

/// A pressed button arrives with the message it sits under, and its query can
/// be answered once.
#[tokio::test]
async fn callback_queries_carry_their_message_and_are_answered_once() {
    let (_fake, admin, bot) = start().await;
    let keyboard =
        InlineKeyboardMarkup::new([[InlineKeyboardButton::callback("Web search", "skill:web")]]);
    let sent = bot
        .send_message(OPERATOR_CHAT, "Skills?")
        .reply_markup(keyboard)
        .await
        .expect("sendMessage");

    let query_id = admin.push_callback(OPERATOR_CHAT, OPERATOR, sent.id, "skill:web");
    let updates = bot.get_updates().await.expect("getUpdates");
    let UpdateKind::CallbackQuery(query) = &updates[0].kind else {
        panic!("not a callback query: {:#?}", updates[0])
    };
    assert_eq!(query.id.0, query_id);
    assert_eq!(query.data.as_deref(), Some("skill:web"));
    assert_eq!(query.from.id, OPERATOR);
    let Some(MaybeInaccessibleMessage::Regular(under)) = &query.message else {
        panic!("no message: {query:#?}")
    };
    assert_eq!((under.id, under.text()), (sent.id, Some("Skills?")));

    bot.answer_callback_query(query.id.clone())
        .await
        .expect("first answer");
    let twice = bot.answer_callback_query(query.id.clone()).await;
    assert_refused(twice, ApiError::InvalidQueryId);
}

/// Two pollers of one token: the newer ends the older with 409 Conflict, as
/// Telegram does, and gets the update itself.
#[tokio::test]
async fn a_newer_poll_ends_an_older_one_with_conflict() {
    let (_fake, admin, bot) = start().await;
    let older = spawn_poll(&bot);
    admin
        .wait_for_poll(DEADLINE)
        .await
        .expect("the older poll waits");
    let newer = spawn_poll(&bot);

    let ended = tokio::time::timeout(DEADLINE, older)
        .await
        .expect("the older poll ends")
        .expect("the poll task");
    assert_refused(ended, ApiError::TerminatedByOtherGetUpdates);
    admin.push_message(OPERATOR_CHAT, OPERATOR, "hello");
    let updates = tokio::time::timeout(DEADLINE, newer)
        .await
        .expect("the newer poll returns")
        .expect("the poll task")
        .expect("getUpdates");
    assert_eq!(updates.len(), 1, "{updates:#?}");
}

/// A teloxide dispatcher runs against the fake: it proves its token, checks
/// for a webhook, polls, replies, and its `allowed_updates` hold.
#[tokio::test]
async fn a_dispatcher_polls_and_replies_through_the_fake() {
    let (_fake, admin, bot) = start().await;
    let handler = Update::filter_message().endpoint(|bot: Bot, message: Message| async move {
        bot.send_message(
            message.chat.id,
            format!("echo: {}", message.text().unwrap_or_default()),
        )
        .await?;
        respond(())
    });
    let mut dispatcher = Dispatcher::builder(bot, handler).build();
    let shutdown = dispatcher.shutdown_token();
    let running = tokio::spawn(async move { dispatcher.dispatch().await });
    admin
        .wait_for_poll(DEADLINE)
        .await
        .expect("the dispatcher polls");

    assert_eq!(
        admin.push_update("callback_query", json!({})),
        None,
        "the dispatcher asked for messages only"
    );
    admin.push_message(OPERATOR_CHAT, OPERATOR, "hello");
    let reply = admin
        .next_message_to(OPERATOR_CHAT, DEADLINE)
        .await
        .expect("the dispatcher's reply");
    assert_eq!(reply.text, "echo: hello");
    assert_eq!(
        (
            admin.call_count("getMe"),
            admin.call_count("getWebhookInfo")
        ),
        (1, 1)
    );

    shutdown
        .shutdown()
        .expect("the dispatcher is running")
        .await;
    running.await.expect("the dispatcher task");
}

/// Multipart uploads are recorded with their name and bytes, and answered
/// with a document or photo message.
#[tokio::test]
async fn uploads_are_recorded_with_their_bytes() {
    let (_fake, admin, bot) = start().await;
    let logs = b"line 1\nline 2\n".to_vec();

    let sent = bot
        .send_document(
            OPERATOR_CHAT,
            InputFile::memory(logs.clone()).file_name("acme-logs.txt"),
        )
        .caption("logs of <b>acme</b>")
        .parse_mode(ParseMode::Html)
        .await
        .expect("sendDocument");
    assert_eq!(
        sent.document()
            .and_then(|document| document.file_name.as_deref()),
        Some("acme-logs.txt")
    );
    assert_eq!(sent.caption(), Some("logs of acme"));
    let calls = admin.calls("sendDocument");
    assert_eq!(calls.len(), 1, "{calls:#?}");
    assert_eq!(calls[0].chat_id(), Some(OPERATOR_CHAT));
    let upload = calls[0].upload.as_ref().expect("the uploaded file");
    assert_eq!(
        (upload.file_name.as_str(), upload.bytes.as_slice()),
        ("acme-logs.txt", logs.as_slice())
    );
    let shown = admin
        .next_message_to(OPERATOR_CHAT, DEADLINE)
        .await
        .expect("the document message");
    assert_eq!(
        (shown.text.as_str(), shown.upload.map(|upload| upload.bytes)),
        ("logs of acme", Some(logs))
    );

    let chart = bot
        .send_photo(
            OPERATOR_CHAT,
            InputFile::memory(b"\x89PNG fake".to_vec()).file_name("usage.png"),
        )
        .await
        .expect("sendPhoto");
    assert!(
        chart.photo().is_some_and(|sizes| !sizes.is_empty()),
        "{chart:#?}"
    );
    assert_eq!(
        admin.calls("sendPhoto")[0]
            .upload
            .as_ref()
            .map(|upload| upload.bytes.len()),
        Some(9)
    );
}

/// Injected failures answer the next calls of a method: 429 surfaces as
/// teloxide's `RetryAfter`, any other error as its `ApiError`.
#[tokio::test]
async fn injected_failures_answer_the_next_calls() {
    let (_fake, admin, bot) = start().await;

    admin.fail_next("sendMessage", 1, Failure::retry_after(7));
    let throttled = bot.send_message(OPERATOR_CHAT, "hi").await;
    assert!(
        matches!(throttled, Err(RequestError::RetryAfter(wait)) if wait.seconds() == 7),
        "got {throttled:?}"
    );
    bot.send_message(OPERATOR_CHAT, "hi")
        .await
        .expect("the next call goes through");

    admin.fail_next(
        "sendMessage",
        1,
        Failure::new(403, "Forbidden: bot was blocked by the user"),
    );
    let blocked = bot.send_message(OPERATOR_CHAT, "hi").await;
    assert_refused(blocked, ApiError::BotBlocked);
    assert_eq!(
        admin.messages_in(OPERATOR_CHAT).len(),
        1,
        "failed calls send nothing"
    );
}

/// Commands set with `setMyCommands` are kept and read back; an invalid one is
/// refused.
#[tokio::test]
async fn commands_are_kept_and_checked() {
    let (_fake, admin, bot) = start().await;
    bot.set_my_commands([
        BotCommand::new("help", "Show the commands"),
        BotCommand::new("newclient", "Onboard a client"),
    ])
    .await
    .expect("setMyCommands");
    assert_eq!(
        admin.commands(),
        [
            ("help".to_owned(), "Show the commands".to_owned()),
            ("newclient".to_owned(), "Onboard a client".to_owned())
        ]
    );
    let read = bot.get_my_commands().await.expect("getMyCommands");
    assert_eq!(read.len(), 2, "{read:#?}");

    // Telegram drops one leading '/', as teloxide's `bot_commands()` sends it.
    bot.set_my_commands([BotCommand::new("/help", "Show the commands")])
        .await
        .expect("setMyCommands with a leading slash");
    assert_eq!(
        admin.commands(),
        [("help".to_owned(), "Show the commands".to_owned())]
    );

    let refused = bot
        .set_my_commands([BotCommand::new("NewClient", "Onboard a client")])
        .await;
    assert!(refused.is_err(), "got {refused:?}");
}

/// A wait that times out says what it waited for and lists every call.
#[tokio::test]
async fn a_timed_out_wait_lists_every_call() {
    let (_fake, admin, bot) = start().await;
    bot.send_message(OPERATOR_CHAT, "only this")
        .await
        .expect("sendMessage");

    let err = admin
        .wait_for(Duration::from_millis(50), |call| {
            call.method == "deleteMessage"
        })
        .await
        .expect_err("nothing was deleted");
    assert!(
        err.starts_with("no matching call for bot 7000000001"),
        "{err}"
    );
    assert!(
        err.contains("sendMessage {\"chat_id\":4242,\"text\":\"only this\"} -> ok"),
        "{err}"
    );
    assert!(err.contains("#1 bot \"only this\""), "{err}");
    assert!(
        !err.contains("AAFakeAdminToken"),
        "a token leaked into the listing: {err}"
    );
}

/// The Bot API takes a method's parameters as a query string, a urlencoded
/// form, JSON or multipart: each is recorded alike (JSON-valued parameters
/// parsed, the body's values over the query's); a blank body is no body, and a
/// body the fake cannot read is a 400, after the token is checked.
#[tokio::test]
async fn parameters_arrive_as_query_form_json_or_multipart() {
    let (fake, admin, _bot) = start().await;
    let http = reqwest::Client::new();
    let send_message = format!("{}bot{ADMIN_TOKEN}/sendMessage", fake.url());
    let keyboard = r#"{"inline_keyboard":[[{"text":"Go","callback_data":"go"}]]}"#;
    let json_body = |body: &'static str| {
        http.post(&send_message)
            .header("content-type", "application/json")
            .body(body)
    };
    let sent = [
        http.post(&send_message).query(&[
            ("chat_id", "4242"),
            ("text", "by query & more"),
            ("reply_markup", keyboard),
        ]),
        http.post(&send_message)
            .form(&[("chat_id", "4242"), ("text", "by form")]),
        json_body(r#"{"chat_id": 4242, "text": "by json"}"#),
        http.post(format!("{send_message}?text=from+query"))
            .form(&[("chat_id", "4242"), ("text", "from the form")]),
        http.post(format!("{}bot{ADMIN_TOKEN}/sendDocument", fake.url()))
            .multipart(
                reqwest::multipart::Form::new()
                    .text("chat_id", "4242")
                    .text("caption", "by multipart")
                    .part(
                        "document",
                        reqwest::multipart::Part::bytes(b"rows".to_vec()).file_name("usage.csv"),
                    ),
            ),
    ];
    for request in sent {
        let response = request.send().await.expect("the fake answers");
        assert_eq!(response.status(), 200, "{:?}", response.text().await);
    }
    let texts: Vec<String> = admin
        .messages_in(OPERATOR_CHAT)
        .into_iter()
        .map(|message| message.text)
        .collect();
    assert_eq!(
        texts,
        [
            "by query & more",
            "by form",
            "by json",
            "from the form",
            "by multipart"
        ]
    );
    let by_query = &admin.calls("sendMessage")[0];
    assert_eq!(
        by_query.params["reply_markup"]["inline_keyboard"][0][0]["text"],
        "Go"
    );
    assert_eq!(
        by_query.keyboard()[0][0].callback_data.as_deref(),
        Some("go")
    );
    let upload = admin.calls("sendDocument")[0].upload.clone();
    assert_eq!(
        upload.map(|upload| (upload.file_name, upload.bytes)),
        Some(("usage.csv".to_owned(), b"rows".to_vec()))
    );

    let blank = http
        .post(format!("{}bot{ADMIN_TOKEN}/getMe", fake.url()))
        .header("content-type", "application/json")
        .body(" \n")
        .send()
        .await
        .expect("the fake answers");
    assert_eq!(blank.status(), 200);
    for (request, code, description) in [
        (
            json_body("{\"chat_id\": "),
            400,
            "Bad Request: can't parse JSON body",
        ),
        (
            http.post(&send_message)
                .header("content-type", "text/plain")
                .body("chat_id=4242"),
            400,
            "Bad Request: unsupported content type \"text/plain\"",
        ),
        (
            http.post(format!("{}bot7000000009:AAUnknown/sendMessage", fake.url()))
                .header("content-type", "application/json")
                .body("{"),
            401,
            "Unauthorized",
        ),
    ] {
        let response = request.send().await.expect("the fake answers");
        assert_eq!(response.status(), code);
        let body: serde_json::Value = response.json().await.expect("a JSON answer");
        assert_eq!(body["ok"], false, "{body}");
        let said = body["description"].as_str().unwrap_or_default();
        assert!(said.starts_with(description), "{body}");
    }
}

/// Asserts that `result` is Telegram's refusal `expected`, as teloxide reads it.
#[track_caller]
fn assert_refused<T: std::fmt::Debug>(result: Result<T, RequestError>, expected: ApiError) {
    match result {
        Err(RequestError::Api(error)) if error == expected => {}
        other => panic!("expected {expected:?}, got {other:?}"),
    }
}

/// A long poll of `bot` in its own task, waiting longer than any test does.
fn spawn_poll(bot: &Bot) -> JoinHandle<Result<Vec<Update>, RequestError>> {
    let bot = bot.clone();
    tokio::spawn(async move { bot.get_updates().timeout(POLL_TIMEOUT_SECS).await })
}

async fn start() -> (FakeTelegram, FakeBot, Bot) {
    let fake = FakeTelegram::start().await;
    let admin = fake.add_bot(ADMIN_TOKEN, 7_000_000_001, "mtp_admin_bot");
    let bot = client(&fake, ADMIN_TOKEN);
    (fake, admin, bot)
}

fn client(fake: &FakeTelegram, token: &str) -> Bot {
    Bot::new(token).set_api_url(fake.url().parse().expect("the fake's URL parses"))
}
