//! The HTTP side: the listener on loopback, the one route
//! `/bot<token>/<method>`, and the Bot API's answer envelope
//! (`{"ok":true,"result":…}` or `{"ok":false,"error_code":…,"description":…}`).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Json, Router};
use serde_json::json;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::bot::FakeBot;
use crate::call::{Answer, Call, Failure, bot_label};
use crate::methods;
use crate::params::Params;
use crate::state::{BotState, Shared};

/// Bots may upload files of up to 50 MB; axum's default body limit is 2 MB.
const MAX_UPLOAD_BYTES: usize = 50 * 1024 * 1024;

/// How long `shutdown` waits for open connections before abandoning them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The running fake server. Dropping it (or [`FakeTelegram::shutdown`]) stops
/// the server; [`FakeBot`] handles keep their recorded state readable.
pub struct FakeTelegram {
    /// State shared with the server task and with every [`FakeBot`] handle.
    shared: Arc<Shared>,
    /// `http://127.0.0.1:PORT/`, what `Bot::set_api_url` takes.
    url: String,
    /// Tells the server to stop accepting and close its connections; taken by
    /// `shutdown` or `drop`.
    stop: Option<oneshot::Sender<()>>,
    /// The server task; awaited by `shutdown`.
    server: Option<JoinHandle<()>>,
}

impl FakeTelegram {
    /// Binds `127.0.0.1:0` and serves the fake Bot API until dropped.
    ///
    /// # Panics
    ///
    /// If the loopback port cannot be bound.
    pub async fn start() -> FakeTelegram {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
            .expect("bind the fake Telegram Bot API on 127.0.0.1:0");
        FakeTelegram::start_on(listener).await
    }

    /// Serves the fake Bot API on `listener` (bound on a loopback address,
    /// maybe in another network namespace: a container's) until dropped.
    ///
    /// # Panics
    ///
    /// If the listener cannot be handed to the async runtime.
    pub async fn start_on(listener: std::net::TcpListener) -> FakeTelegram {
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let listener =
            tokio::net::TcpListener::from_std(listener).expect("the listener in the runtime");
        let port = listener
            .local_addr()
            .expect("local address of the fake Telegram")
            .port();
        let shared = Arc::new(Shared::new());
        let app = Router::new()
            .route("/{bot}/{method}", any(handle))
            .fallback(not_found)
            .layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES))
            .with_state(shared.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let stopped = async {
                let _ = stopped.await;
            };
            if let Err(err) = axum::serve(listener, app)
                .with_graceful_shutdown(stopped)
                .await
            {
                eprintln!("fake Telegram server failed: {err}");
            }
        });
        FakeTelegram {
            shared,
            url: format!("http://127.0.0.1:{port}/"),
            stop: Some(stop),
            server: Some(server),
        }
    }

    /// The Bot API base URL, `http://127.0.0.1:PORT/`.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Registers a bot token: `getMe` answers `bot_id` and `@username`.
    ///
    /// # Panics
    ///
    /// If the token is already registered.
    pub fn add_bot(&self, token: &str, bot_id: u64, username: &str) -> FakeBot {
        let mut state = self.shared.lock();
        assert!(
            !state.bots.contains_key(token),
            "bot token of bot {bot_id} registered twice"
        );
        state
            .bots
            .insert(token.to_owned(), BotState::new(bot_id, username));
        FakeBot::new(self.shared.clone(), token)
    }

    /// The handle of a registered token.
    ///
    /// # Panics
    ///
    /// If the token was never registered with `add_bot`.
    #[must_use]
    pub fn bot(&self, token: &str) -> FakeBot {
        assert!(
            self.shared.lock().bots.contains_key(token),
            "bot token {} is not registered",
            bot_label(token)
        );
        FakeBot::new(self.shared.clone(), token)
    }

    /// Every call so far, every token (unknown tokens included).
    #[must_use]
    pub fn calls(&self) -> Vec<Call> {
        self.shared.lock().calls.clone()
    }

    /// Stops the server: waiting polls return at once, open connections close,
    /// new connections are refused.
    pub async fn shutdown(mut self) {
        self.close();
        if let Some(mut server) = self.server.take()
            && tokio::time::timeout(SHUTDOWN_GRACE, &mut server)
                .await
                .is_err()
        {
            server.abort();
        }
    }

    fn close(&mut self) {
        self.shared.lock().closed = true;
        self.shared.polls.notify_waiters();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Drop for FakeTelegram {
    fn drop(&mut self) {
        self.close();
    }
}

/// Every Bot API request: `/bot<token>/<method>`. An unreadable request is
/// refused only after the token and injected failures are checked, as
/// Telegram checks the token first.
async fn handle(
    State(shared): State<Arc<Shared>>,
    Path((bot, method)): Path<(String, String)>,
    params: Result<Params, Failure>,
) -> Response {
    let Some(token) = bot.strip_prefix("bot") else {
        return not_found().await;
    };
    let (params, unreadable) = match params {
        Ok(params) => (params, None),
        Err(failure) => (Params::default(), Some(failure)),
    };
    let checked = shared.lock().precheck(token, &method, unreadable);
    let (response, upload) = match checked {
        Err(failure) => (Err(failure), None),
        Ok(()) if method.eq_ignore_ascii_case("getUpdates") => (
            methods::get_updates(&shared, token, &params.fields).await,
            None,
        ),
        Ok(()) => methods::answer(
            shared.lock().bot_mut(token),
            &method,
            &params.fields,
            params.files,
        ),
    };
    shared
        .lock()
        .record(token, &method, params.fields, upload, response.clone());
    shared.touch();
    reply(response)
}

async fn not_found() -> Response {
    Failure::new(404, "Not Found").into_response()
}

fn reply(response: Answer) -> Response {
    match response {
        Ok(result) => (
            StatusCode::OK,
            Json(json!({ "ok": true, "result": result })),
        )
            .into_response(),
        Err(failure) => {
            let mut body = json!({ "ok": false, "error_code": failure.code, "description": failure.description });
            if let Some(seconds) = failure.retry_after {
                body["parameters"] = json!({ "retry_after": seconds });
            }
            let status = StatusCode::from_u16(failure.code).unwrap_or(StatusCode::BAD_REQUEST);
            (status, Json(body)).into_response()
        }
    }
}

/// A refusal as the Bot API sends it; also what a request that cannot be read
/// gets.
impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        reply(Err(self))
    }
}
