//! The gateway's HTTP surface on the same loopback port (PROTOCOL.md §4): the
//! `/healthz`, `/readyz`, `/startupz` probes (no auth) and the `/hooks/wake` and
//! `/hooks/agent` hooks (bearer hooks token), for cells whose config enables hooks.
//!
//! Probes never fail: every outcome is a [`Probe`] value. No `Origin` or forwarding
//! header is ever sent (the gateway would refuse it, §1.1).

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::tenant::Secret;

/// An HTTP client for cells' gateways; cheap to clone, keeps connections alive.
#[derive(Debug, Clone)]
pub struct Http {
    client: reqwest::Client,
    timeout: Duration,
}

/// What a probe saw.
#[derive(Debug, Clone, PartialEq)]
pub enum Probe {
    /// 2xx; the JSON body (`Value::Null` if it was not JSON).
    Ok { body: Value },
    /// Any other status (`/readyz` answers 503 with `failing[]` while not ready).
    Failed { status: u16, body: String },
    /// No HTTP answer: refused, reset, or not HTTP.
    Unreachable { reason: String },
    /// No answer within the client's timeout.
    Timeout,
}

/// `POST /hooks/wake`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wake {
    /// The system event text given to the agent.
    pub text: String,
    /// Wake now (the default) or at the next heartbeat.
    pub next_heartbeat: bool,
    pub agent_id: Option<String>,
}

/// `200` of `/hooks/wake`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct WakeAccepted {
    /// `now` or `next-heartbeat`.
    pub mode: String,
    /// `queued`, or `coalesced` into a wake already pending.
    pub event_outcome: String,
}

/// `POST /hooks/agent`: run an agent turn from outside.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HookAgent {
    pub message: String,
    /// Label of the run (the gateway defaults to "Hook").
    pub name: Option<String>,
    pub agent_id: Option<String>,
    /// Deliver the reply to a channel (the gateway defaults to true).
    pub deliver: Option<bool>,
    pub channel: Option<String>,
    pub to: Option<String>,
    /// Makes a retried hook run once.
    pub idempotency_key: Option<String>,
    /// Wait for the run to finish, up to this long, and report its completion.
    pub wait_for_completion: Option<Duration>,
}

/// `200` of `/hooks/agent`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HookAgentAccepted {
    pub run_id: String,
    /// With `wait_for_completion`: `{status, replyDisposition, delivered?, …}`.
    pub completion: Option<Value>,
}

/// Why a hook call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HookError {
    #[error("hooks token refused by the gateway (401); check the cell's hooks.token")]
    Unauthorized,
    #[error("hooks are not enabled on this gateway (404); enable hooks in the cell config")]
    Disabled,
    #[error("the gateway refused the hook request: {message}")]
    BadRequest { message: String },
    #[error("too many hook requests; retry in {retry_after:?}")]
    RateLimited { retry_after: Option<Duration> },
    #[error("hook request failed with HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("gateway unreachable: {reason}")]
    Unreachable { reason: String },
    #[error("no answer from the gateway within {0:?}")]
    Timeout(Duration),
    #[error("unexpected hook answer: {0}")]
    Malformed(String),
}

/// Bodies larger than this are cut: probes and hooks answer with a few hundred bytes.
const MAX_BODY_BYTES: usize = 1 << 20;

/// How long `/hooks/agent` may take to admit a run before answering (PROTOCOL.md §4.2).
const HOOK_AGENT_ADMISSION: Duration = Duration::from_secs(15);

/// Slack added to a waited-for hook run so the answer can travel back.
const ANSWER_SLACK: Duration = Duration::from_secs(5);

impl Http {
    /// A client whose requests give up after `timeout`.
    ///
    /// # Errors
    ///
    /// The HTTP stack could not be initialised.
    pub fn new(timeout: Duration) -> anyhow::Result<Http> {
        let client = reqwest::Client::builder()
            // Cells are on loopback; an environment proxy must never see their traffic.
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("mtp/", env!("CARGO_PKG_VERSION")))
            .timeout(timeout)
            .build()
            .map_err(|err| anyhow::anyhow!("cannot build the HTTP client: {err}"))?;
        Ok(Http { client, timeout })
    }

    /// `GET /healthz`: the process is live.
    pub async fn healthz(&self, host: &str, port: u16) -> Probe {
        self.probe(host, port, "/healthz").await
    }

    /// `GET /readyz`: channels and sidecars are ready (503 with `failing[]` if not).
    pub async fn readyz(&self, host: &str, port: u16) -> Probe {
        self.probe(host, port, "/readyz").await
    }

    /// `GET /startupz`: startup finished (`status: "started"`).
    pub async fn startupz(&self, host: &str, port: u16) -> Probe {
        self.probe(host, port, "/startupz").await
    }

    async fn probe(&self, host: &str, port: u16, path: &str) -> Probe {
        let url = format!("http://{host}:{port}{path}");
        let response = match self.client.get(url).send().await {
            Ok(response) => response,
            Err(err) if err.is_timeout() => return Probe::Timeout,
            Err(err) => {
                return Probe::Unreachable {
                    reason: err.without_url().to_string(),
                };
            }
        };
        let status = response.status();
        match read_body(response).await {
            Err(BodyError::Timeout) => Probe::Timeout,
            Err(BodyError::Broken(reason)) => Probe::Unreachable { reason },
            Ok(body) if status.is_success() => Probe::Ok {
                body: serde_json::from_str(&body).unwrap_or(Value::Null),
            },
            Ok(body) => Probe::Failed {
                status: status.as_u16(),
                body,
            },
        }
    }

    /// `POST /hooks/wake` with the cell's hooks token.
    ///
    /// # Errors
    ///
    /// [`HookError`]: `Disabled` when the cell has no hooks, `Unauthorized` for a wrong
    /// token, `RateLimited`, transport failures.
    pub async fn wake(
        &self,
        host: &str,
        port: u16,
        hooks_token: &Secret<String>,
        wake: &Wake,
    ) -> Result<WakeAccepted, HookError> {
        let mut body = json!({
            "text": wake.text,
            "mode": if wake.next_heartbeat { "next-heartbeat" } else { "now" },
        });
        if let Some(agent_id) = &wake.agent_id {
            body["agentId"] = json!(agent_id);
        }
        self.hook(host, port, "/hooks/wake", hooks_token, &body, self.timeout)
            .await
    }

    /// `POST /hooks/agent` with the cell's hooks token.
    ///
    /// # Errors
    ///
    /// As [`Http::wake`]; an unknown agent id is `BadRequest`.
    pub async fn hook_agent(
        &self,
        host: &str,
        port: u16,
        hooks_token: &Secret<String>,
        agent: &HookAgent,
    ) -> Result<HookAgentAccepted, HookError> {
        let mut body = json!({"message": agent.message});
        let optional = [
            ("name", &agent.name),
            ("agentId", &agent.agent_id),
            ("channel", &agent.channel),
            ("to", &agent.to),
            ("idempotencyKey", &agent.idempotency_key),
        ];
        for (key, value) in optional {
            if let Some(value) = value {
                body[key] = json!(value);
            }
        }
        if let Some(deliver) = agent.deliver {
            body["deliver"] = json!(deliver);
        }
        // The gateway answers after admitting the run, which may take it 15 s.
        let mut timeout = self.timeout.max(HOOK_AGENT_ADMISSION + ANSWER_SLACK);
        if let Some(wait) = agent.wait_for_completion {
            body["waitForCompletion"] = json!(true);
            body["timeoutSeconds"] = json!(wait.as_secs().max(1));
            timeout = timeout.max(HOOK_AGENT_ADMISSION + wait + ANSWER_SLACK);
        }
        self.hook(host, port, "/hooks/agent", hooks_token, &body, timeout)
            .await
    }

    async fn hook<T: serde::de::DeserializeOwned>(
        &self,
        host: &str,
        port: u16,
        path: &str,
        hooks_token: &Secret<String>,
        body: &Value,
        timeout: Duration,
    ) -> Result<T, HookError> {
        let url = format!("http://{host}:{port}{path}");
        let sent = self
            .client
            .post(url)
            .bearer_auth(hooks_token.expose())
            .json(body)
            .timeout(timeout)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(err) if err.is_timeout() => return Err(HookError::Timeout(timeout)),
            Err(err) => {
                return Err(HookError::Unreachable {
                    reason: err.without_url().to_string(),
                });
            }
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = match read_body(response).await {
            Ok(text) => text,
            Err(BodyError::Timeout) => return Err(HookError::Timeout(timeout)),
            Err(BodyError::Broken(reason)) => return Err(HookError::Unreachable { reason }),
        };
        match status {
            200..=299 => serde_json::from_str(&text)
                .map_err(|err| HookError::Malformed(format!("{path} answered {status}: {err}"))),
            400 => {
                // JSON `{"ok":false,"error":"…"}`, or plain text (e.g. `?token=` refused).
                let message = serde_json::from_str::<Value>(&text)
                    .ok()
                    .and_then(|value| value.get("error")?.as_str().map(str::to_string))
                    .unwrap_or(text);
                Err(HookError::BadRequest { message })
            }
            401 => Err(HookError::Unauthorized),
            404 => Err(HookError::Disabled),
            429 => Err(HookError::RateLimited { retry_after }),
            _ => Err(HookError::Status { status, body: text }),
        }
    }
}

enum BodyError {
    Timeout,
    Broken(String),
}

/// The body as text, cut at [`MAX_BODY_BYTES`].
async fn read_body(mut response: reqwest::Response) -> Result<String, BodyError> {
    let mut res = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = MAX_BODY_BYTES.saturating_sub(res.len());
                res.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if res.len() >= MAX_BODY_BYTES {
                    break;
                }
            }
            Ok(None) => break,
            Err(err) if err.is_timeout() => return Err(BodyError::Timeout),
            Err(err) => return Err(BodyError::Broken(err.without_url().to_string())),
        }
    }
    Ok(String::from_utf8_lossy(&res).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::sync::mpsc;

    /// A request as the fake server saw it.
    #[derive(Debug)]
    struct Seen {
        head: String,
        body: String,
    }

    /// Serves one canned answer per connection; reports each request it read.
    async fn serve(
        status: &'static str,
        extra_headers: &'static str,
        body: &'static str,
    ) -> (u16, mpsc::UnboundedReceiver<Seen>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (seen_tx, seen_rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let mut raw = Vec::new();
                let mut buf = [0u8; 4096];
                let head_end = loop {
                    let n = socket.read(&mut buf).await.unwrap();
                    raw.extend_from_slice(&buf[..n]);
                    if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                        break end + 4;
                    }
                };
                let head = String::from_utf8_lossy(&raw[..head_end]).to_string();
                let length: usize = head
                    .lines()
                    .find_map(|line| {
                        line.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                while raw.len() < head_end + length {
                    let n = socket.read(&mut buf).await.unwrap();
                    raw.extend_from_slice(&buf[..n]);
                }
                let body_text = String::from_utf8_lossy(&raw[head_end..]).to_string();
                let _ = seen_tx.send(Seen {
                    head,
                    body: body_text,
                });
                let answer = format!(
                    "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n{extra_headers}\r\n{body}",
                    body.len()
                );
                socket.write_all(answer.as_bytes()).await.unwrap();
            }
        });
        (port, seen_rx)
    }

    fn http() -> Http {
        Http::new(Duration::from_secs(5)).unwrap()
    }

    fn token() -> Secret<String> {
        Secret::new("hook-secret".to_string())
    }

    /// Probe answers as recorded in http-probes.jsonl become `Probe` values.
    #[tokio::test]
    async fn probes_report_what_they_saw() {
        let (port, mut seen) = serve(
            "200 OK",
            "content-type: application/json\r\n",
            r#"{"ok":true,"status":"live"}"#,
        )
        .await;
        assert_eq!(
            http().healthz("127.0.0.1", port).await,
            Probe::Ok {
                body: json!({"ok": true, "status": "live"})
            }
        );
        let request = seen.recv().await.unwrap();
        assert!(
            request.head.starts_with("GET /healthz HTTP/1.1"),
            "{}",
            request.head
        );
        let lower = request.head.to_ascii_lowercase();
        assert!(
            !lower.contains("origin:") && !lower.contains("forwarded"),
            "{}",
            request.head
        );

        let (port, _seen) = serve(
            "503 Service Unavailable",
            "",
            r#"{"ready":false,"failing":["telegram"]}"#,
        )
        .await;
        assert_eq!(
            http().readyz("127.0.0.1", port).await,
            Probe::Failed {
                status: 503,
                body: r#"{"ready":false,"failing":["telegram"]}"#.to_string()
            }
        );

        let closed_port = {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            listener.local_addr().unwrap().port()
        };
        assert!(matches!(
            http().startupz("127.0.0.1", closed_port).await,
            Probe::Unreachable { .. }
        ));
    }

    /// A probe that gets no answer in time is `Timeout`, not a hang.
    #[tokio::test]
    async fn a_silent_server_is_a_probe_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let silent = Http::new(Duration::from_millis(200)).unwrap();
        let probe = silent.healthz("127.0.0.1", port).await;
        drop(listener);
        assert_eq!(probe, Probe::Timeout);
    }

    /// `/hooks/wake` sends the bearer token and the documented body.
    #[tokio::test]
    async fn wake_sends_the_bearer_token() {
        let (port, mut seen) = serve(
            "200 OK",
            "content-type: application/json\r\n",
            r#"{"ok":true,"mode":"now","eventOutcome":"queued"}"#,
        )
        .await;
        let wake = Wake {
            text: "fixture wake".to_string(),
            next_heartbeat: false,
            agent_id: None,
        };
        let accepted = http()
            .wake("127.0.0.1", port, &token(), &wake)
            .await
            .unwrap();
        assert_eq!(
            accepted,
            WakeAccepted {
                mode: "now".to_string(),
                event_outcome: "queued".to_string()
            }
        );
        let request = seen.recv().await.unwrap();
        assert!(
            request.head.starts_with("POST /hooks/wake HTTP/1.1"),
            "{}",
            request.head
        );
        assert!(
            request
                .head
                .to_ascii_lowercase()
                .contains("authorization: bearer hook-secret"),
            "{}",
            request.head
        );
        assert_eq!(
            serde_json::from_str::<Value>(&request.body).unwrap(),
            json!({"text": "fixture wake", "mode": "now"})
        );
    }

    /// `/hooks/agent` returns the run id; waiting adds the documented fields.
    #[tokio::test]
    async fn hook_agent_returns_the_run() {
        let (port, mut seen) = serve("200 OK", "", r#"{"ok":true,"runId":"3abe5090","completion":{"status":"error","replyDisposition":"empty"}}"#).await;
        let agent = HookAgent {
            message: "fixture: wait".to_string(),
            deliver: Some(false),
            wait_for_completion: Some(Duration::from_secs(20)),
            ..HookAgent::default()
        };
        let accepted = http()
            .hook_agent("127.0.0.1", port, &token(), &agent)
            .await
            .unwrap();
        assert_eq!(accepted.run_id, "3abe5090");
        assert_eq!(accepted.completion.unwrap()["status"], "error");
        let body: Value = serde_json::from_str(&seen.recv().await.unwrap().body).unwrap();
        assert_eq!(
            body,
            json!({"message": "fixture: wait", "deliver": false, "waitForCompletion": true, "timeoutSeconds": 20})
        );
    }

    /// Hook failures, as recorded in http-hooks*.jsonl, are typed; no token in the text.
    #[tokio::test]
    async fn hook_failures_are_typed() {
        let wake = Wake {
            text: "x".to_string(),
            next_heartbeat: true,
            agent_id: None,
        };
        let cases: [(&'static str, &'static str, &'static str, HookError); 4] = [
            (
                "401 Unauthorized",
                "",
                "Unauthorized",
                HookError::Unauthorized,
            ),
            ("404 Not Found", "", "Not Found", HookError::Disabled),
            (
                "400 Bad Request",
                "",
                r#"{"ok":false,"error":"text required"}"#,
                HookError::BadRequest {
                    message: "text required".to_string(),
                },
            ),
            (
                "429 Too Many Requests",
                "retry-after: 30\r\n",
                "slow down",
                HookError::RateLimited {
                    retry_after: Some(Duration::from_secs(30)),
                },
            ),
        ];
        for (status, headers, body, expected) in cases {
            let (port, _seen) = serve(status, headers, body).await;
            let got = http()
                .wake("127.0.0.1", port, &token(), &wake)
                .await
                .unwrap_err();
            assert!(!got.to_string().contains("hook-secret"), "{got}");
            assert_eq!(got, expected, "{status}");
        }
    }
}
