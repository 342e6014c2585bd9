//! The typed errors of the gateway client: [`ConnectError`] for opening a connection,
//! [`CallError`] for one RPC, and how the gateway's `ErrorShape`s map onto them
//! (PROTOCOL.md §1.3, §2.9).
//!
//! No message here ever contains a token: server texts are quoted (they never echo
//! credentials), our own texts name the cause and the next step.

use std::time::Duration;

use serde_json::Value;

use crate::gateway::protocol::ErrorShape;

/// Why a connection could not be opened (or was lost). Callers branch on it: the
/// pairing flow waits for `PairingRequired`, the monitor reports `Unreachable`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConnectError {
    /// The device is not (or no longer) approved on this gateway. Approve `request_id`
    /// (`node dist/index.js devices approve <id>` in the cell) and connect again.
    #[error(
        "pairing required ({reason}): approve request {request_id} on the gateway, then connect again"
    )]
    PairingRequired {
        request_id: String,
        /// `not-paired`, `metadata-upgrade`, `scope-upgrade`, `role-upgrade`.
        reason: String,
    },
    /// The gateway token is wrong. Do not retry: ten failures in 60 s lock the admin out.
    #[error(
        "gateway token mismatch: the stored gateway token does not match the cell's OPENCLAW_GATEWAY_TOKEN"
    )]
    TokenMismatch,
    /// The device token is stale or revoked, and no gateway token could replace it.
    #[error(
        "device token mismatch: the stored device token was revoked or rotated; pair the device again"
    )]
    DeviceTokenMismatch,
    /// Too many failed logins from this address; even the right token is refused until then.
    #[error("authentication rate limited by the gateway; retry in {retry_after:?}")]
    RateLimited { retry_after: Duration },
    /// The gateway is starting or restarting; retry shortly.
    #[error("gateway unavailable (starting or restarting){}", retry_hint(*retry_after))]
    Unavailable { retry_after: Option<Duration> },
    /// `hello-ok` granted no scopes: the gateway ignored the device identity, so every
    /// method but `health` would fail with `MISSING_SCOPE`.
    #[error(
        "the gateway granted no scopes (the device identity was not accepted); pair the device with this gateway"
    )]
    NoScopes,
    /// The gateway refused the connect for another reason (bad params, bad signature, …).
    #[error("connect refused by the gateway: {code}{}: {message}", detail.as_deref().map(|d| format!("/{d}")).unwrap_or_default())]
    Rejected {
        code: String,
        /// `details.code`, e.g. `DEVICE_AUTH_SIGNATURE_INVALID`.
        detail: Option<String>,
        message: String,
    },
    /// Nothing listens on the port, or the socket failed before any answer.
    #[error("gateway unreachable: {reason}")]
    Unreachable { reason: String },
    /// No challenge or no `hello-ok` within the connect timeout.
    #[error("gateway did not complete the handshake within {0:?}")]
    Timeout(Duration),
    /// The socket was closed (by the server, or it broke). `code` is `None` when no close
    /// frame came (1006).
    #[error("connection closed{}", close_detail(*code, reason))]
    Closed { code: Option<u16>, reason: String },
    /// The server sent something that is not protocol 4.
    #[error("gateway protocol error: {0}")]
    Protocol(String),
}

impl ConnectError {
    /// Whether retrying cannot help until someone acts (approve, fix a token, fix the code).
    #[must_use]
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            ConnectError::PairingRequired { .. }
                | ConnectError::TokenMismatch
                | ConnectError::DeviceTokenMismatch
                | ConnectError::NoScopes
                | ConnectError::Rejected { .. }
        )
    }
}

/// Why one RPC failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    /// The connection lacks a scope the method needs.
    #[error("missing scope {scope}: this device was not granted it on the gateway")]
    MissingScope { scope: String },
    /// The gateway cannot serve this now (startup, restart drain, busy, a failed install).
    #[error("gateway unavailable: {message}{}", retry_hint(*retry_after))]
    Unavailable {
        retry_after: Option<Duration>,
        message: String,
        details: Option<Value>,
    },
    /// A control-plane write limit (30 per minute per method) was hit.
    #[error("rate limited by the gateway: {message}{}", retry_hint(*retry_after))]
    RateLimited {
        retry_after: Option<Duration>,
        message: String,
    },
    /// `config.patch`/`config.set` with a stale `baseHash`: run `config.get` and retry.
    #[error("the config changed since it was read; read it again (config.get) and retry")]
    ConfigConflict,
    /// The request was sent but no final answer came in time.
    #[error("no answer from the gateway within {0:?}")]
    Timeout(Duration),
    /// The connection closed after the request was sent; it may or may not have run.
    #[error("connection closed before the answer{}", close_detail(*code, reason))]
    Closed { code: Option<u16>, reason: String },
    /// The request could not be sent: the connection is down and could not be restored
    /// in time, or the client gave up on it.
    #[error("not connected: {0}")]
    NotConnected(ConnectError),
    /// The client was closed by its owner.
    #[error("the gateway client was closed")]
    ClientClosed,
    /// The request is larger than the gateway's `policy.maxPayload`.
    #[error("request of {size} bytes exceeds the gateway's limit of {max} bytes")]
    RequestTooLarge { size: usize, max: usize },
    /// Any other error answer.
    #[error("gateway error {code}: {message}")]
    Rpc {
        code: String,
        message: String,
        details: Option<Value>,
    },
    /// The answer was malformed (or not what the method promises), or the connection
    /// broke on a malformed frame.
    #[error("gateway protocol error: {0}")]
    Protocol(String),
}

/// Why the pool could not hand out a client.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PoolError {
    /// `set_endpoint` was never called for this tenant.
    #[error("no gateway endpoint registered for tenant {0}")]
    NoEndpoint(String),
    #[error(transparent)]
    Connect(#[from] ConnectError),
}

/// ` (code 1012): service restart`, or ` (no close frame)` for a broken socket.
fn close_detail(code: Option<u16>, reason: &str) -> String {
    let code = match code {
        Some(code) => format!(" (code {code})"),
        None => " (no close frame)".to_string(),
    };
    if reason.is_empty() {
        code
    } else {
        format!("{code}: {reason}")
    }
}

fn retry_hint(retry_after: Option<Duration>) -> String {
    match retry_after {
        Some(after) => format!("; retry in {after:?}"),
        None => String::new(),
    }
}

/// Maps the error answer to `connect` (PROTOCOL.md §2.9).
pub(crate) fn connect_error(error: &ErrorShape) -> ConnectError {
    match error.detail_code() {
        Some("PAIRING_REQUIRED") => {
            if let Some(request_id) = error.detail_str("requestId") {
                return ConnectError::PairingRequired {
                    request_id: request_id.to_string(),
                    reason: error
                        .detail_str("reason")
                        .unwrap_or("not-paired")
                        .to_string(),
                };
            }
        }
        Some("AUTH_TOKEN_MISMATCH") => return ConnectError::TokenMismatch,
        Some("AUTH_DEVICE_TOKEN_MISMATCH") => return ConnectError::DeviceTokenMismatch,
        Some("AUTH_RATE_LIMITED") => {
            return ConnectError::RateLimited {
                retry_after: error.retry_after().unwrap_or(RATE_LIMIT_FALLBACK),
            };
        }
        _ => {}
    }
    if error.code == "UNAVAILABLE" {
        return ConnectError::Unavailable {
            retry_after: error.retry_after(),
        };
    }
    ConnectError::Rejected {
        code: error.code.clone(),
        detail: error.detail_code().map(str::to_string),
        message: error.message.clone(),
    }
}

/// The lockout the gateway applies by default, for a rate limit that names no delay.
const RATE_LIMIT_FALLBACK: Duration = Duration::from_secs(300);

/// Maps the error answer to an ordinary request (PROTOCOL.md §1.3, §3).
pub(crate) fn call_error(error: ErrorShape) -> CallError {
    if error.code == "FORBIDDEN" && error.detail_code() == Some("MISSING_SCOPE") {
        return CallError::MissingScope {
            scope: error
                .detail_str("missingScope")
                .unwrap_or_default()
                .to_string(),
        };
    }
    // The stale-hash answer carries no detail code (config-patch-stale-basehash.jsonl),
    // so the stable message prefix is all there is to match.
    if error.code == "INVALID_REQUEST"
        && error.message.starts_with("config changed since last load")
    {
        return CallError::ConfigConflict;
    }
    if error.code == "UNAVAILABLE" {
        let is_rate_limit = error.message.starts_with("rate limit exceeded")
            || error
                .details
                .as_ref()
                .is_some_and(|d| d.get("limit").is_some());
        if is_rate_limit {
            return CallError::RateLimited {
                retry_after: error.retry_after(),
                message: error.message,
            };
        }
        return CallError::Unavailable {
            retry_after: error.retry_after(),
            message: error.message,
            details: error.details,
        };
    }
    CallError::Rpc {
        code: error.code,
        message: error.message,
        details: error.details,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::gateway::testing::transcript_frames;

    fn first_error(transcript: &str) -> ErrorShape {
        let frames = transcript_frames(transcript);
        let frame = frames
            .iter()
            .find(|f| f["type"] == "res" && f["ok"] == false)
            .expect("an error res in the transcript");
        serde_json::from_value(frame["error"].clone()).unwrap()
    }

    /// Recorded connect refusals become the variants callers branch on.
    #[test]
    fn recorded_connect_failures_map_to_typed_errors() {
        let check = |transcript: &str, expected: ConnectError| {
            assert_eq!(connect_error(&first_error(transcript)), expected);
        };
        check(
            include_str!("../../tests/fixtures/gateway/remote-connect-pairing-required.jsonl"),
            ConnectError::PairingRequired {
                request_id: "8233b59f-8f51-4861-b890-afd6569e97a0".to_string(),
                reason: "not-paired".to_string(),
            },
        );
        check(
            include_str!("../../tests/fixtures/gateway/remote-connect-metadata-upgrade.jsonl"),
            ConnectError::PairingRequired {
                request_id: "6aa4fd7e-3bcb-4f52-9ecb-4533549d384c".to_string(),
                reason: "metadata-upgrade".to_string(),
            },
        );
        check(
            include_str!("../../tests/fixtures/gateway/connect-bad-token.jsonl"),
            ConnectError::TokenMismatch,
        );
        check(
            include_str!("../../tests/fixtures/gateway/connect-device-token-wrong.jsonl"),
            ConnectError::DeviceTokenMismatch,
        );
        check(
            include_str!("../../tests/fixtures/gateway/connect-no-auth.jsonl"),
            ConnectError::Rejected {
                code: "NOT_PAIRED".to_string(),
                detail: Some("DEVICE_IDENTITY_REQUIRED".to_string()),
                message: "device identity required".to_string(),
            },
        );
    }

    /// The documented rate-limit and startup answers keep their retry delays.
    #[test]
    fn documented_connect_failures_keep_retry_delays() {
        let rate_limited: ErrorShape = serde_json::from_value(serde_json::json!({
            "code": "INVALID_REQUEST",
            "message": "unauthorized: too many failed authentication attempts (retry later)",
            "retryable": true, "retryAfterMs": 299672,
            "details": {"code": "AUTH_RATE_LIMITED", "authReason": "rate_limited", "recommendedNextStep": "wait_then_retry"}
        }))
        .unwrap();
        assert_eq!(
            connect_error(&rate_limited),
            ConnectError::RateLimited {
                retry_after: Duration::from_millis(299_672)
            }
        );
        let starting: ErrorShape = serde_json::from_value(serde_json::json!({
            "code": "UNAVAILABLE", "message": "gateway starting; retry shortly",
            "retryable": true, "retryAfterMs": 500, "details": {"reason": "startup-sidecars"}
        }))
        .unwrap();
        assert_eq!(
            connect_error(&starting),
            ConnectError::Unavailable {
                retry_after: Some(Duration::from_millis(500))
            }
        );
    }

    /// Recorded and documented call failures become the variants callers branch on.
    #[test]
    fn call_failures_map_to_typed_errors() {
        let missing_scope = first_error(include_str!(
            "../../tests/fixtures/gateway/remote-connect-token-only.jsonl"
        ));
        assert_eq!(
            call_error(missing_scope),
            CallError::MissingScope {
                scope: "operator.read".to_string()
            }
        );
        let stale = first_error(include_str!(
            "../../tests/fixtures/gateway/config-patch-stale-basehash.jsonl"
        ));
        assert_eq!(call_error(stale), CallError::ConfigConflict);
        let unknown = first_error(include_str!(
            "../../tests/fixtures/gateway/unknown-method.jsonl"
        ));
        assert!(matches!(
            call_error(unknown),
            CallError::Rpc { code, message, .. } if code == "INVALID_REQUEST" && message == "unknown method: no.such.method"
        ));
        let write_limit: ErrorShape = serde_json::from_value(serde_json::json!({
            "code": "UNAVAILABLE", "message": "rate limit exceeded for config.patch; retry after 12s",
            "retryable": true, "retryAfterMs": 12000, "details": {"method": "config.patch", "limit": "30 per 60s"}
        }))
        .unwrap();
        assert_eq!(
            call_error(write_limit),
            CallError::RateLimited {
                retry_after: Some(Duration::from_secs(12)),
                message: "rate limit exceeded for config.patch; retry after 12s".to_string()
            }
        );
    }

    /// Error texts name the cause and the next step.
    #[test]
    fn messages_say_what_to_do() {
        let pairing = ConnectError::PairingRequired {
            request_id: "abc".to_string(),
            reason: "not-paired".to_string(),
        };
        assert_eq!(
            pairing.to_string(),
            "pairing required (not-paired): approve request abc on the gateway, then connect again"
        );
        let closed = CallError::Closed {
            code: Some(1012),
            reason: "service restart".to_string(),
        };
        assert_eq!(
            closed.to_string(),
            "connection closed before the answer (code 1012): service restart"
        );
        assert!(
            ConnectError::NoScopes
                .to_string()
                .contains("pair the device")
        );
    }
}
