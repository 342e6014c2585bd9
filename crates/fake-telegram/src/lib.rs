//! A fake Telegram Bot API server for tests.
//!
//! [`FakeTelegram::start`] serves the Bot API over HTTP on `127.0.0.1:0`; a
//! teloxide `Bot` is pointed at it with `set_api_url(fake.url())`. Many bots
//! may share one fake (the admin bot, and the tenant bots whose `getMe` the
//! admin calls); each token is registered with [`FakeTelegram::add_bot`], which
//! returns the [`FakeBot`] handle tests drive it through.
//!
//! What it does, as Telegram does it:
//! - `getMe` for registered tokens; any method with an unknown token is 401
//!   `Unauthorized`;
//! - a method's parameters come as a query string, a JSON body, a urlencoded
//!   form or multipart/form-data, as the Bot API accepts them;
//! - long polling: updates pushed by the test (`push_message`, `push_callback`,
//!   `push_messages` for a flood in one go)
//!   are served by `getUpdates` with `offset`, `limit`, `timeout` (a waiting
//!   poll wakes as soon as an update is pushed) and a remembered
//!   `allowed_updates`; a newer poll ends an older one with 409 Conflict;
//! - sent, edited and deleted messages are kept per chat as the user sees them
//!   ([`ChatMessage`]), and answered with full `Message` objects;
//! - the limits that catch bot bugs: 4096 characters per message, 64 bytes of
//!   callback data, HTML and MarkdownV2 that must parse, no edits of deleted
//!   messages, no edit that changes nothing, callback queries answered once,
//!   and (when a test asks for it) a group's messages a minute.
//!
//! Every request is recorded as a [`Call`]; tests await what they expect with
//! a deadline ([`FakeBot::wait_for`], [`FakeBot::next_message_to`]), never
//! with sleeps. Failures are injected per method ([`FakeBot::fail_next`]).
//!
//! Not here: inline mode, media groups, file downloads, payments, forum
//! topics, `editMessageCaption`; any method not handled is recorded and
//! answers `true`.
//!
//! Where things are: `server` (the listener, the one route, the answer
//! envelope), `params` (a request's parameters, read by axum's extractors),
//! `bot` (the [`FakeBot`] handle), `state` (bots, updates, recorded calls),
//! `chat` (messages as the user sees them), `methods/` (the Bot API methods,
//! by family), `markup` (inline keyboards), `parse_mode/` (HTML and Markdown
//! as Telegram parses them), `rate` (a group's messages a minute).

mod bot;
mod call;
mod chat;
mod markup;
mod methods;
mod params;
mod parse_mode;
mod rate;
mod server;
mod state;

pub use bot::FakeBot;
pub use call::{Call, Failure, Upload};
pub use chat::ChatMessage;
pub use markup::Button;
pub use server::FakeTelegram;
