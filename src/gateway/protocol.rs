//! The wire values of gateway protocol 4 (PROTOCOL.md §1.2, §2): request, response and
//! event frames, the `ErrorShape`, the `connect` params, and `hello-ok`.
//!
//! Outgoing types are closed structs that can only serialize keys the server's closed
//! schemas allow; incoming types ignore keys they do not know. No I/O lives here.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::tenant::Secret;

/// The only protocol version this client speaks (`minProtocol` = `maxProtocol` = 4).
pub const PROTOCOL_VERSION: u32 = 4;

/// `client.id`: the reference backend client's id; accepted remotely and on loopback.
pub const CLIENT_ID: &str = "gateway-client";

/// `client.mode` matching [`CLIENT_ID`] (PROTOCOL.md §2.4).
pub const CLIENT_MODE: &str = "backend";

/// `client.platform`; pinned by the gateway at pairing, so it must never change.
pub const CLIENT_PLATFORM: &str = "linux";

/// The role the admin connects with.
pub const ROLE: &str = "operator";

/// The scopes the admin asks for. They are pinned at pairing: asking for more later
/// makes the gateway demand a new approval (`scope-upgrade`).
pub const SCOPES: [&str; 4] = [
    "operator.admin",
    "operator.read",
    "operator.write",
    "operator.pairing",
];

/// An error answer from the gateway (`ErrorShape`, PROTOCOL.md §1.3).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorShape {
    /// Top-level code: `INVALID_REQUEST`, `FORBIDDEN`, `UNAVAILABLE`, `NOT_PAIRED`, …
    pub code: String,
    /// Human text; branch on `code` and `details.code` instead.
    pub message: String,
    #[serde(default)]
    pub details: Option<Value>,
    #[serde(default)]
    pub retryable: Option<bool>,
    #[serde(default)]
    pub retry_after_ms: Option<u64>,
}

impl ErrorShape {
    /// `details.code`, where the server put one.
    #[must_use]
    pub fn detail_code(&self) -> Option<&str> {
        self.detail_str("code")
    }

    /// A string field of `details`.
    #[must_use]
    pub fn detail_str(&self, key: &str) -> Option<&str> {
        self.details.as_ref()?.get(key)?.as_str()
    }

    /// `retryAfterMs` as a duration.
    #[must_use]
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after_ms.map(Duration::from_millis)
    }
}

/// What the gateway said in `hello-ok`, kept for the life of one connection.
#[derive(Debug, Clone, PartialEq)]
pub struct Hello {
    /// Negotiated protocol; always 4.
    pub protocol: u32,
    /// OpenClaw version of the cell, e.g. `2026.9.6`.
    pub server_version: String,
    /// Changes on every gateway (re)start.
    pub boot_id: Option<String>,
    /// `auth.method`: `token`, `device-token`, …
    pub auth_method: String,
    /// `auth.scopes`: the scopes the gateway actually enforces on this connection.
    pub scopes: Vec<String>,
    /// The device token issued (or re-used) for this device, to be persisted.
    pub device_token: Option<Secret<String>>,
    /// `policy.tickIntervalMs`: the watchdog fires after twice this without a frame.
    pub tick_interval: Duration,
    /// `policy.maxPayload`: the largest frame the gateway accepts from us.
    pub max_payload: usize,
    /// `snapshot.appliedConfigHash`: the config revision the running gateway uses.
    pub applied_config_hash: Option<String>,
    /// `features.methods`: advertised methods (not exhaustive, PROTOCOL.md §2.8).
    pub methods: Vec<String>,
}

/// Tick interval when `hello-ok` does not say (the live server sends 30000).
const DEFAULT_TICK_MS: u64 = 30_000;

/// `policy.maxPayload` when `hello-ok` does not say (the server constant, 25 MiB).
const DEFAULT_MAX_PAYLOAD: usize = 26_214_400;

// ---- outgoing ----

/// A `req` frame. `params` is omitted when `None`.
#[derive(Debug, Serialize)]
pub(crate) struct RequestFrame<'a, P: Serialize> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: &'a str,
    pub method: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub params: Option<&'a P>,
}

/// `connect` params (`ConnectParamsSchema`, closed): only the keys this client needs.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ConnectParams<'a> {
    pub min_protocol: u32,
    pub max_protocol: u32,
    pub client: ClientInfo<'a>,
    pub role: &'a str,
    pub scopes: &'a [&'a str],
    pub auth: ConnectAuth<'a>,
    pub device: DeviceProof<'a>,
}

/// `connect.client` (closed; all four fields required).
#[derive(Debug, Serialize)]
pub(crate) struct ClientInfo<'a> {
    pub id: &'a str,
    pub version: &'a str,
    pub platform: &'a str,
    pub mode: &'a str,
}

/// `connect.auth` (closed). Borrowed from `Secret`s only while the frame is built;
/// `Debug` never shows the values.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ConnectAuth<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_token: Option<&'a str>,
}

impl std::fmt::Debug for ConnectAuth<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectAuth")
            .field("token", &self.token.map(|_| "<redacted>"))
            .field("device_token", &self.device_token.map(|_| "<redacted>"))
            .finish()
    }
}

/// `connect.device` (closed; all fields required when present).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DeviceProof<'a> {
    pub id: &'a str,
    pub public_key: &'a str,
    pub signature: String,
    pub signed_at: i64,
    pub nonce: &'a str,
}

// ---- incoming ----

/// Any frame the server sends, split by `type`.
#[derive(Debug)]
pub(crate) enum Incoming {
    Response(ResponseFrame),
    Event(EventFrame),
    /// A well-formed frame of a `type` this client does not know; ignored.
    Unknown(String),
}

/// A `res` frame.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ResponseFrame {
    pub id: String,
    pub ok: bool,
    #[serde(default)]
    pub payload: Option<Value>,
    #[serde(default)]
    pub error: Option<ErrorShape>,
}

/// An `event` frame.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct EventFrame {
    pub event: String,
    #[serde(default)]
    pub payload: Value,
    #[serde(default)]
    pub seq: Option<u64>,
}

/// `connect.challenge` payload.
#[derive(Debug, Deserialize)]
pub(crate) struct Challenge {
    pub nonce: String,
    pub ts: i64,
}

/// Parses one text frame.
///
/// # Errors
///
/// The text is not JSON, not an object, has no string `type`, or a `res`/`event`
/// lacks its required fields. The message never quotes the frame (it may hold secrets).
pub(crate) fn parse_frame(text: &str) -> Result<Incoming, String> {
    let value: Value =
        serde_json::from_str(text).map_err(|err| format!("frame is not JSON: {err}"))?;
    let kind = value
        .get("type")
        .and_then(Value::as_str)
        .ok_or("frame has no string \"type\"")?
        .to_string();
    match kind.as_str() {
        "res" => serde_json::from_value(value)
            .map(Incoming::Response)
            .map_err(|err| format!("malformed res frame: {err}")),
        "event" => serde_json::from_value(value)
            .map(Incoming::Event)
            .map_err(|err| format!("malformed event frame: {err}")),
        _ => Ok(Incoming::Unknown(kind)),
    }
}

/// The parts of `hello-ok` this client reads; unknown keys are ignored.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HelloOkWire {
    #[serde(rename = "type")]
    kind: String,
    protocol: u32,
    #[serde(default)]
    server: HelloServerWire,
    auth: HelloAuthWire,
    #[serde(default)]
    policy: HelloPolicyWire,
    #[serde(default)]
    snapshot: HelloSnapshotWire,
    #[serde(default)]
    features: HelloFeaturesWire,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct HelloServerWire {
    version: String,
    boot_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HelloAuthWire {
    #[serde(default)]
    method: String,
    scopes: Vec<String>,
    #[serde(default)]
    device_token: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct HelloPolicyWire {
    max_payload: Option<usize>,
    tick_interval_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct HelloSnapshotWire {
    applied_config_hash: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct HelloFeaturesWire {
    methods: Vec<String>,
}

/// Reads a `hello-ok` payload.
///
/// # Errors
///
/// The payload is not a `hello-ok`, lacks `auth.scopes`, or names another protocol.
pub(crate) fn parse_hello(payload: Value) -> Result<Hello, String> {
    let wire: HelloOkWire =
        serde_json::from_value(payload).map_err(|err| format!("malformed hello-ok: {err}"))?;
    if wire.kind != "hello-ok" {
        return Err(format!(
            "connect answered with {:?}, not hello-ok",
            wire.kind
        ));
    }
    if wire.protocol != PROTOCOL_VERSION {
        return Err(format!(
            "gateway speaks protocol {}, this client only {PROTOCOL_VERSION}",
            wire.protocol
        ));
    }
    let tick_ms = wire
        .policy
        .tick_interval_ms
        .filter(|ms| *ms > 0)
        .unwrap_or(DEFAULT_TICK_MS);
    Ok(Hello {
        protocol: wire.protocol,
        server_version: wire.server.version,
        boot_id: wire.server.boot_id,
        auth_method: wire.auth.method,
        scopes: wire.auth.scopes,
        device_token: wire
            .auth
            .device_token
            .filter(|token| !token.is_empty())
            .map(Secret::new),
        tick_interval: Duration::from_millis(tick_ms),
        max_payload: wire
            .policy
            .max_payload
            .filter(|max| *max > 0)
            .unwrap_or(DEFAULT_MAX_PAYLOAD),
        applied_config_hash: wire.snapshot.applied_config_hash,
        methods: wire.features.methods,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::gateway::testing::transcript_frames;

    /// The hello-ok of a paired remote device yields scopes, a device token and policy.
    #[test]
    fn reads_hello_ok_of_a_paired_device() {
        let frames = transcript_frames(include_str!(
            "../../tests/fixtures/gateway/remote-connect-paired.jsonl"
        ));
        let hello_ok = frames
            .iter()
            .find(|f| f["id"] == "c1" && f["type"] == "res")
            .unwrap();
        let hello = parse_hello(hello_ok["payload"].clone()).unwrap();
        assert_eq!(hello.server_version, "2026.9.6");
        assert_eq!(hello.auth_method, "token");
        assert_eq!(hello.scopes.len(), 5);
        assert_eq!(
            hello.device_token.as_ref().map(|t| t.expose().as_str()),
            Some("REDACTED-TOKEN")
        );
        assert_eq!(hello.tick_interval, Duration::from_secs(30));
        assert_eq!(hello.max_payload, 26_214_400);
        assert!(hello.methods.iter().any(|m| m == "config.patch"));
        assert!(
            hello
                .applied_config_hash
                .unwrap()
                .starts_with("hmac-sha256:v1:")
        );
        assert!(!format!("{:?}", hello.device_token).contains("REDACTED-TOKEN"));
    }

    /// A token-only remote connect is accepted with no scopes; the parse keeps that visible.
    #[test]
    fn reads_hello_ok_with_cleared_scopes() {
        let frames = transcript_frames(include_str!(
            "../../tests/fixtures/gateway/remote-connect-token-only.jsonl"
        ));
        let hello_ok = frames
            .iter()
            .find(|f| f["id"] == "c1" && f["type"] == "res")
            .unwrap();
        let hello = parse_hello(hello_ok["payload"].clone()).unwrap();
        assert!(hello.scopes.is_empty());
        assert_eq!(hello.device_token, None);
    }

    /// Malformed frames are errors, never panics.
    #[test]
    fn malformed_frames_are_errors() {
        for text in [
            "",
            "not json",
            "[]",
            "{}",
            r#"{"type":1}"#,
            r#"{"type":"res"}"#,
            r#"{"type":"res","id":"r1"}"#,
            r#"{"type":"res","id":7,"ok":true}"#,
            r#"{"type":"event"}"#,
            r#"{"type":"event","event":"tick","seq":-1}"#,
            r#"{"type":"res","id":"r1","ok":false,"error":{"code":"X"}}"#,
        ] {
            assert!(parse_frame(text).is_err(), "{text:?} should be refused");
        }
        assert!(matches!(
            parse_frame(r#"{"type":"hello","x":1}"#),
            Ok(Incoming::Unknown(kind)) if kind == "hello"
        ));
        for payload in [
            serde_json::json!({}),
            serde_json::json!({"type": "hello-ok", "protocol": 3, "auth": {"scopes": []}}),
            serde_json::json!({"type": "hello-ok", "protocol": 4}),
            serde_json::json!({"type": "other", "protocol": 4, "auth": {"scopes": []}}),
        ] {
            assert!(parse_hello(payload.clone()).is_err(), "{payload}");
        }
    }

    /// The connect params serialize exactly the keys the closed schema allows.
    #[test]
    fn connect_params_serialize_only_allowed_keys() {
        let params = ConnectParams {
            min_protocol: 4,
            max_protocol: 4,
            client: ClientInfo {
                id: CLIENT_ID,
                version: "0.1.0",
                platform: CLIENT_PLATFORM,
                mode: CLIENT_MODE,
            },
            role: ROLE,
            scopes: &SCOPES,
            auth: ConnectAuth {
                token: None,
                device_token: Some("dt"),
            },
            device: DeviceProof {
                id: "id",
                public_key: "pk",
                signature: "sig".to_string(),
                signed_at: 5,
                nonce: "n",
            },
        };
        let value = serde_json::to_value(&params).unwrap();
        assert_eq!(
            value,
            serde_json::json!({
                "minProtocol": 4, "maxProtocol": 4,
                "client": {"id": "gateway-client", "version": "0.1.0", "platform": "linux", "mode": "backend"},
                "role": "operator",
                "scopes": ["operator.admin", "operator.read", "operator.write", "operator.pairing"],
                "auth": {"deviceToken": "dt"},
                "device": {"id": "id", "publicKey": "pk", "signature": "sig", "signedAt": 5, "nonce": "n"}
            })
        );
        assert!(!format!("{params:?}").contains("dt\""));
    }
}
