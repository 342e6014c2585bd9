//! End-to-end checks of `mtp-fake-gateway` over real sockets: each test starts the
//! binary on `127.0.0.1:0` with its own state dir and asserts the frames, codes and
//! close reasons recorded from the real gateway (../shared/openclaw/transcripts).
//! A hand-rolled client on purpose: these tests pin the fake, not `mtp::gateway`.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signer, SigningKey};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const TOKEN: &str = "test-gateway-token";
const SCOPES: [&str; 5] = [
    "operator.admin",
    "operator.read",
    "operator.write",
    "operator.approvals",
    "operator.pairing",
];
const STEP: Duration = Duration::from_secs(5);

struct Fake {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Fake {
    fn start(name: &str, extra: &[&str]) -> Fake {
        let dir = std::env::temp_dir().join(format!("fake-gateway-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("openclaw.json"),
            "// test config\n{ gateway: { mode: \"local\", auth: { mode: \"token\" } }, update: { checkOnStart: false } }\n",
        )
        .unwrap();
        Fake::start_in(dir, extra)
    }

    fn start_in(dir: PathBuf, extra: &[&str]) -> Fake {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mtp-fake-gateway"))
            .args([
                "dist/index.js",
                "gateway",
                "--bind",
                "loopback",
                "--port",
                "0",
            ])
            .args(extra)
            .env("OPENCLAW_STATE_DIR", &dir)
            .env("OPENCLAW_GATEWAY_TOKEN", TOKEN)
            .env_remove("OPENCLAW_CONFIG_PATH")
            .env_remove("OPENCLAW_GATEWAY_PORT")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .split("127.0.0.1:")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        Fake { child, port, dir }
    }

    fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/", self.port)
    }

    async fn control(&self, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
        let response = reqwest::Client::new()
            .request(
                method,
                format!("http://127.0.0.1:{}/__fake/{path}", self.port),
            )
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn put(&self, path: &str, body: Value) {
        let (status, reply) = self.control(reqwest::Method::PUT, path, body).await;
        assert_eq!(status, 200, "{path}: {reply}");
    }

    async fn post(&self, path: &str, body: Value) {
        let (status, reply) = self.control(reqwest::Method::POST, path, body).await;
        assert_eq!(status, 200, "{path}: {reply}");
    }

    /// `node dist/index.js devices approve <id>` as the runtime runs it.
    fn approve_cli(&self, request_id: &str) -> (bool, String, String) {
        let output = Command::new(env!("CARGO_BIN_EXE_mtp-fake-gateway"))
            .args(["dist/index.js", "devices", "approve", request_id])
            .env("OPENCLAW_STATE_DIR", &self.dir)
            .env("OPENCLAW_GATEWAY_TOKEN", TOKEN)
            .env_remove("OPENCLAW_GATEWAY_PORT")
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// Approves `request_id` through the CLI and checks that it names `device`.
    fn approve(&self, request_id: &str, device: &Device) {
        let (ok, stdout, _) = self.approve_cli(request_id);
        assert!(ok);
        assert_eq!(
            stdout.trim(),
            format!("Approved {} ({request_id})", device.id())
        );
    }

    fn terminate(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let _ = self.child.wait();
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[derive(Debug)]
enum Frame {
    Json(Value),
    Text(String),
    Close(u16, String),
    /// The socket ended without a close frame.
    Cut,
}

struct Conn {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Conn {
    async fn open(fake: &Fake) -> Conn {
        let (ws, _) = tokio_tungstenite::connect_async(fake.url()).await.unwrap();
        Conn { ws }
    }

    async fn next(&mut self) -> Frame {
        loop {
            let message = timeout(STEP, self.ws.next())
                .await
                .expect("no frame in time");
            match message {
                Some(Ok(Message::Text(text))) => {
                    return match serde_json::from_str(&text) {
                        Ok(value) => Frame::Json(value),
                        Err(_) => Frame::Text(text.to_string()),
                    };
                }
                Some(Ok(Message::Close(frame))) => {
                    return frame.map_or(Frame::Close(1005, String::new()), |frame| {
                        Frame::Close(frame.code.into(), frame.reason.to_string())
                    });
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return Frame::Cut,
            }
        }
    }

    async fn json(&mut self) -> Value {
        match self.next().await {
            Frame::Json(value) => value,
            other => panic!("expected JSON, got {other:?}"),
        }
    }

    async fn close_frame(&mut self) -> (u16, String) {
        loop {
            match self.next().await {
                Frame::Close(code, reason) => return (code, reason),
                Frame::Json(_) => {}
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    }

    /// Reads to the close frame and checks its code and reason.
    async fn expect_close(&mut self, code: u16, reason: &str) {
        assert_eq!(self.close_frame().await, (code, reason.to_string()));
    }

    async fn send(&mut self, value: Value) {
        self.ws
            .send(Message::Text(value.to_string().into()))
            .await
            .unwrap();
    }

    /// Sends a request and returns its response, skipping events.
    async fn call(&mut self, id: &str, method: &str, params: Value) -> Value {
        self.send(json!({"type": "req", "id": id, "method": method, "params": params}))
            .await;
        self.response(id).await
    }

    /// Reads frames until the response to `id`, skipping events.
    async fn response(&mut self, id: &str) -> Value {
        loop {
            let frame = self.json().await;
            if frame["type"] == "res" && frame["id"] == id {
                return frame;
            }
        }
    }

    /// Sends `connect` with `params` as they are and returns the response.
    async fn send_connect(&mut self, params: Value) -> Value {
        self.send(json!({"type": "req", "id": "c1", "method": "connect", "params": params}))
            .await;
        self.json().await
    }

    async fn event(&mut self, name: &str) -> Value {
        loop {
            let frame = self.json().await;
            if frame["type"] == "event" && frame["event"] == name {
                return frame;
            }
        }
    }
}

struct Device {
    key: SigningKey,
    platform: String,
}

impl Device {
    fn new(seed: u8) -> Device {
        Device {
            key: SigningKey::from_bytes(&[seed; 32]),
            platform: "linux".to_string(),
        }
    }

    fn public_key(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.key.verifying_key().to_bytes())
    }

    fn id(&self) -> String {
        hex::encode(Sha256::digest(self.key.verifying_key().to_bytes()))
    }

    /// The signed `device` block for v3 (PROTOCOL.md §2.6).
    fn block(&self, challenge: &Value, scopes: &[&str], token: &str) -> Value {
        let nonce = challenge["payload"]["nonce"].as_str().unwrap();
        let ts = challenge["payload"]["ts"].as_i64().unwrap();
        let payload = format!(
            "v3|{}|gateway-client|backend|operator|{}|{ts}|{token}|{nonce}|{}|",
            self.id(),
            scopes.join(","),
            self.platform
        );
        let signature = URL_SAFE_NO_PAD.encode(self.key.sign(payload.as_bytes()).to_bytes());
        json!({"id": self.id(), "publicKey": self.public_key(), "signature": signature,
            "signedAt": ts, "nonce": nonce})
    }
}

fn connect_params(auth: Value) -> Value {
    json!({"minProtocol": 4, "maxProtocol": 4,
        "client": {"id": "gateway-client", "version": "0.1.0", "platform": "linux", "mode": "backend"},
        "role": "operator", "scopes": SCOPES, "auth": auth})
}

/// The error a wrong shared or device token gets (transcripts/connect-bad-token,
/// connect-device-token-wrong): only `message`, `details.code` and
/// `details.authReason` differ.
fn credential_mismatch(message: &str, code: &str, auth_reason: &str) -> Value {
    json!({"code": "INVALID_REQUEST", "message": message,
        "details": {"code": code, "authReason": auth_reason,
            "canRetryWithDeviceToken": false, "recommendedNextStep": "update_auth_credentials"}})
}

/// Opens a socket, reads the challenge and sends `connect`; returns the response.
async fn connect(fake: &Fake, device: Option<&Device>, auth: Value) -> (Conn, Value) {
    let mut conn = Conn::open(fake).await;
    let challenge = conn.json().await;
    assert_eq!(challenge["event"], "connect.challenge");
    let mut params = connect_params(auth.clone());
    if auth.is_null() {
        params.as_object_mut().unwrap().remove("auth");
    }
    if let Some(device) = device {
        params["client"]["platform"] = json!(device.platform);
        let token = auth["token"]
            .as_str()
            .or(auth["deviceToken"].as_str())
            .unwrap_or("");
        params["device"] = device.block(&challenge, &SCOPES, token);
    }
    let response = conn.send_connect(params).await;
    (conn, response)
}

/// Connects as [`connect`] does and expects a refusal closed with 1008; returns the
/// error.
async fn connect_refused(fake: &Fake, device: Option<&Device>, auth: Value) -> Value {
    let (mut conn, response) = connect(fake, device, auth).await;
    assert_eq!(conn.close_frame().await.0, 1008);
    response["error"].clone()
}

/// Connects with the device until pairing is required, approves through the CLI, and
/// returns the issued device token.
async fn pair(fake: &Fake, device: &Device) -> String {
    let (mut conn, response) = connect(fake, Some(device), json!({"token": TOKEN})).await;
    let request_id = response["error"]["details"]["requestId"]
        .as_str()
        .unwrap()
        .to_string();
    conn.close_frame().await;
    fake.approve(&request_id, device);
    let (_conn, hello) = connect(fake, Some(device), json!({"token": TOKEN})).await;
    hello["payload"]["auth"]["deviceToken"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The first-frame and credential errors of transcripts/connect-*.jsonl, word for word.
#[tokio::test]
async fn handshake_errors_match_the_recordings() {
    let fake = Fake::start("handshake", &[]);

    let mut conn = Conn::open(&fake).await;
    let challenge = conn.json().await;
    assert_eq!(
        challenge["payload"]["capabilities"],
        json!(["model-catalog-snapshot"])
    );
    assert_eq!(challenge["payload"]["nonce"].as_str().unwrap().len(), 36);
    assert!(challenge.get("seq").is_none());
    conn.send(json!({"type": "req", "id": "x1", "method": "health"}))
        .await;
    let response = conn.json().await;
    assert_eq!(
        response["error"]["message"],
        "invalid handshake: first request must be connect"
    );
    conn.expect_close(1008, "invalid handshake: first request must be connect")
        .await;

    let cases = [
        (
            json!({"foo": 1}),
            "invalid connect params: at root: unexpected property 'foo'",
            1008,
        ),
        (
            json!({"client": {"id": "my-rust-client", "version": "0.1.0", "platform": "linux", "mode": "backend"}}),
            "invalid connect params: at /client/id: must be equal to one of the allowed values",
            1008,
        ),
        (
            json!({"client": {"id": "gateway-client", "version": "0.1.0", "platform": "linux", "mode": "operator"}}),
            "invalid connect params: at /client/mode: must be equal to one of the allowed values",
            1008,
        ),
        (
            json!({"minProtocol": 3, "maxProtocol": 3}),
            "protocol mismatch",
            1002,
        ),
    ];
    for (change, message, code) in cases {
        let mut conn = Conn::open(&fake).await;
        conn.json().await;
        let mut params = connect_params(json!({"token": TOKEN}));
        for (key, value) in change.as_object().unwrap() {
            params[key] = value.clone();
        }
        let response = conn.send_connect(params).await;
        assert_eq!(response["error"]["message"], message);
        conn.expect_close(code, message).await;
    }

    let error = connect_refused(
        &fake,
        None,
        json!({"token": "wrong-token-0123456789abcdef"}),
    )
    .await;
    assert_eq!(
        error,
        credential_mismatch(
            "unauthorized: gateway token mismatch (provide gateway auth token)",
            "AUTH_TOKEN_MISMATCH",
            "token_mismatch"
        )
    );

    let (mut conn, response) = connect(&fake, None, Value::Null).await;
    assert_eq!(
        response["error"],
        json!({"code": "NOT_PAIRED", "message": "device identity required", "details": {"code": "DEVICE_IDENTITY_REQUIRED"}})
    );
    conn.expect_close(1008, "device identity required").await;

    // A pre-auth frame over 64 KiB.
    let mut conn = Conn::open(&fake).await;
    conn.json().await;
    conn.send(json!({"pad": "x".repeat(70_000)})).await;
    conn.expect_close(1009, "preauth payload too large").await;
}

/// transcripts/remote-connect-token-only + connect-scopes-cleared: accepted with no
/// scopes; everything but `health` is FORBIDDEN/MISSING_SCOPE.
#[tokio::test]
async fn token_without_device_gets_no_scopes() {
    let fake = Fake::start("token-only", &[]);
    let (mut conn, hello) = connect(&fake, None, json!({"token": TOKEN})).await;
    assert_eq!(hello["payload"]["type"], "hello-ok");
    assert_eq!(hello["payload"]["protocol"], 4);
    assert_eq!(hello["payload"]["auth"]["scopes"], json!([]));
    assert_eq!(hello["payload"]["policy"]["tickIntervalMs"], 30_000);
    assert!(hello["payload"]["snapshot"].get("configPath").is_none());
    let status = conn.call("r1", "status", json!({})).await;
    assert_eq!(
        status["error"],
        json!({"code": "FORBIDDEN", "message": "missing scope: operator.read",
            "details": {"code": "MISSING_SCOPE", "missingScope": "operator.read", "requiredScopes": ["operator.read"]}})
    );
    let health = conn.call("r2", "health", json!({})).await;
    assert_eq!(health["payload"]["ok"], true);
    let unknown = conn.call("r3", "no.such.method", json!({})).await;
    assert_eq!(
        unknown["error"]["message"],
        "unknown method: no.such.method"
    );
}

/// Pairing from scratch: PAIRING_REQUIRED (same requestId twice), `devices approve`,
/// hello with scopes and a device token, device-token-only reconnect, the recorded
/// errors for a wrong device token, a bad signature and a changed platform; the
/// pairing survives a restart of the process.
#[tokio::test]
async fn pairing_then_device_token() {
    let mut fake = Fake::start("pairing", &[]);
    let device = Device::new(7);
    let (mut conn, first) = connect(&fake, Some(&device), json!({"token": TOKEN})).await;
    let details = &first["error"]["details"];
    assert_eq!(first["error"]["code"], "NOT_PAIRED");
    assert_eq!(
        first["error"]["message"],
        "pairing required: device is not approved yet"
    );
    assert_eq!(details["code"], "PAIRING_REQUIRED");
    assert_eq!(details["reason"], "not-paired");
    assert_eq!(details["deviceId"], json!(device.id()));
    let request_id = details["requestId"].as_str().unwrap().to_string();
    conn.expect_close(
        1008,
        &format!("pairing required: device is not approved yet (requestId: {request_id})"),
    )
    .await;
    let (_, again) = connect(&fake, Some(&device), json!({"token": TOKEN})).await;
    assert_eq!(again["error"]["details"]["requestId"], json!(request_id));

    let (ok, _, stderr) = fake.approve_cli("no-such-request");
    assert!(!ok);
    assert!(stderr.contains("No pending device request matches no-such-request."));
    fake.approve(&request_id, &device);

    let (mut conn, hello) = connect(&fake, Some(&device), json!({"token": TOKEN})).await;
    let auth = &hello["payload"]["auth"];
    assert_eq!(auth["method"], "token");
    assert_eq!(auth["scopes"], json!(SCOPES));
    let device_token = auth["deviceToken"].as_str().unwrap().to_string();
    assert_eq!(device_token.len(), 43);
    let status = conn.call("r1", "status", json!({})).await;
    assert_eq!(status["ok"], true);
    let list = conn.call("r2", "device.pair.list", json!({})).await;
    assert_eq!(list["payload"]["paired"][0]["deviceId"], json!(device.id()));

    let (_, hello) = connect(&fake, Some(&device), json!({"deviceToken": device_token})).await;
    assert_eq!(hello["payload"]["auth"]["method"], "device-token");

    let error = connect_refused(
        &fake,
        Some(&device),
        json!({"deviceToken": "wrong-device-token-0123456789"}),
    )
    .await;
    assert_eq!(
        error,
        credential_mismatch(
            "unauthorized: device token mismatch (rotate/reissue device token)",
            "AUTH_DEVICE_TOKEN_MISMATCH",
            "device_token_mismatch"
        )
    );

    // A signature over other scopes than the ones sent.
    let mut conn = Conn::open(&fake).await;
    let challenge = conn.json().await;
    let mut params = connect_params(json!({"token": TOKEN}));
    params["device"] = device.block(&challenge, &["operator.read"], TOKEN);
    let bad = conn.send_connect(params).await;
    assert_eq!(
        bad["error"],
        json!({"code": "INVALID_REQUEST", "message": "device signature invalid",
            "details": {"code": "DEVICE_AUTH_SIGNATURE_INVALID", "reason": "device-signature"}})
    );
    conn.expect_close(1008, "device signature invalid").await;

    let moved = Device {
        platform: "macos".to_string(),
        ..Device::new(7)
    };
    let (_, upgrade) = connect(&fake, Some(&moved), json!({"token": TOKEN})).await;
    assert_eq!(
        upgrade["error"]["message"],
        "pairing required: device identity changed and must be re-approved"
    );
    assert_eq!(upgrade["error"]["details"]["reason"], "metadata-upgrade");
    assert!(upgrade["error"]["details"]["approvedScopes"].is_array());

    // SIGTERM: `shutdown` {reason:"gateway stopping"} and 1012, then the same pairing
    // after a new start on the same state dir.
    let (mut conn, _) = connect(&fake, Some(&device), json!({"deviceToken": device_token})).await;
    fake.terminate();
    let shutdown = conn.event("shutdown").await;
    assert_eq!(shutdown["payload"], json!({"reason": "gateway stopping"}));
    conn.expect_close(1012, "service restart").await;
    let dir = fake.dir.clone();
    let restarted = Fake::start_in(dir, &[]);
    let (_, hello) = connect(
        &restarted,
        Some(&device),
        json!({"deviceToken": device_token}),
    )
    .await;
    assert_eq!(hello["payload"]["auth"]["method"], "device-token");
}

/// config.get → stale baseHash → restart-requiring patch: config.changed, the
/// response, shutdown "gateway restarting", 1012; connects refused with
/// UNAVAILABLE/1013 until the restart is over; then accepted with the new config live.
#[tokio::test]
async fn restart_requiring_patch() {
    let fake = Fake::start("restart", &["--restart-ms", "400"]);
    let device = Device::new(9);
    let device_token = pair(&fake, &device).await;
    let (mut conn, hello) =
        connect(&fake, Some(&device), json!({"deviceToken": device_token})).await;
    let applied = hello["payload"]["snapshot"]["appliedConfigHash"].clone();
    let config = conn.call("r1", "config.get", json!({})).await;
    let hash = config["payload"]["hash"].as_str().unwrap().to_string();
    assert!(hash.starts_with("hmac-sha256:v1:"));
    let stale = conn
        .call(
            "r2",
            "config.patch",
            json!({"raw": "{ skills: {} }", "baseHash": "hmac-sha256:v1:AAAA"}),
        )
        .await;
    assert_eq!(
        stale["error"]["message"],
        "config changed since last load; re-run config.get and retry"
    );
    let missing = conn
        .call(
            "r3",
            "config.patch",
            json!({"raw": "{ gateway: { controlUi: { basePath: \"/ui\" } } }"}),
        )
        .await;
    assert_eq!(
        missing["error"]["message"],
        "config base hash required for gateway.controlUi.basePath; re-run config.get and retry with baseHash"
    );
    conn.send(json!({"type": "req", "id": "r4", "method": "config.patch",
        "params": {"raw": "{ gateway: { controlUi: { basePath: \"/ui\" } } }", "baseHash": hash}}))
        .await;
    let changed = conn.event("config.changed").await;
    assert_ne!(changed["payload"]["hash"], json!(hash));
    let response = conn.json().await;
    assert_eq!(response["id"], "r4");
    assert_eq!(
        response["payload"]["sentinel"]["payload"]["stats"]["requiresRestart"],
        true
    );
    let shutdown = conn.event("shutdown").await;
    assert_eq!(
        shutdown["payload"],
        json!({"reason": "gateway restarting", "restartExpectedMs": 1500})
    );
    conn.expect_close(1012, "service restart").await;

    let (mut refused, response) =
        connect(&fake, Some(&device), json!({"deviceToken": device_token})).await;
    assert_eq!(
        response["error"],
        json!({"code": "UNAVAILABLE", "message": "gateway starting; retry shortly", "retryable": true,
            "retryAfterMs": 500, "details": {"reason": "startup-sidecars"}})
    );
    refused.expect_close(1013, "gateway starting").await;

    let hello = timeout(Duration::from_secs(10), async {
        loop {
            let (_conn, response) =
                connect(&fake, Some(&device), json!({"deviceToken": device_token})).await;
            if response["ok"] == true {
                return response;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .unwrap();
    assert_ne!(hello["payload"]["snapshot"]["appliedConfigHash"], applied);
}

/// Ticks carry an incrementing `seq`; queued faults skip numbers, break JSON and
/// send a frame above 25 MiB; a programmed drop cuts the socket mid-call.
#[tokio::test]
async fn events_ticks_and_faults() {
    let fake = Fake::start("events", &["--tick-interval-ms", "100"]);
    let (mut conn, hello) = connect(&fake, None, json!({"token": TOKEN})).await;
    assert_eq!(hello["payload"]["policy"]["tickIntervalMs"], 100);
    let first = conn.event("tick").await;
    let second = conn.event("tick").await;
    assert_eq!(first["seq"], 1);
    assert_eq!(second["seq"], 2);
    fake.post("faults", json!({"events": [{"skipSeq": 3}]}))
        .await;
    let skipped = conn.event("tick").await;
    assert_eq!(skipped["seq"], 6);
    fake.post(
        "emit",
        json!({"event": "custom.thing", "payload": {"a": 1}}),
    )
    .await;
    let custom = conn.event("custom.thing").await;
    assert_eq!(custom["payload"], json!({"a": 1}));
    fake.post("faults", json!({"events": ["malformed"]})).await;
    loop {
        match conn.next().await {
            Frame::Text(text) => {
                assert!(text.starts_with("{\"type\":\"event\""));
                break;
            }
            Frame::Json(_) => {}
            other => panic!("expected malformed JSON, got {other:?}"),
        }
    }
    fake.post(
        "faults",
        json!({"events": ["oversized"], "oversizeBytes": 200_000}),
    )
    .await;
    let big = conn.event("tick").await;
    assert_eq!(big["payload"]["pad"].as_str().unwrap().len(), 200_000);
    fake.put("behaviour", json!({"dropOn": {"usage.cost": 1}}))
        .await;
    conn.send(json!({"type": "req", "id": "r1", "method": "usage.cost", "params": {}}))
        .await;
    loop {
        match conn.next().await {
            Frame::Cut => break,
            Frame::Json(frame) => assert_ne!(frame["id"], "r1"),
            other => panic!("expected a cut, got {other:?}"),
        }
    }
}

/// Programmed usage, Telegram 409, slow responses, injected errors, no challenge,
/// and `agent`'s two responses.
#[tokio::test]
async fn programmed_behaviour() {
    let fake = Fake::start("behaviour", &[]);
    let device = Device::new(11);
    let device_token = pair(&fake, &device).await;
    let today = chrono::Utc::now().date_naive();
    let yesterday = today - chrono::Duration::days(1);
    fake.put("usage", json!({"entries": [
        {"date": yesterday.to_string(), "model": "claude-opus-4-6", "input": 1000, "output": 200,
            "cacheRead": 50, "inputCost": 0.015, "outputCost": 0.015},
        {"date": today.to_string(), "provider": "openai", "model": "gpt-6-astra", "input": 10, "output": 5, "totalCost": 0.001},
    ]}))
    .await;
    fake.put("channels/telegram", json!({"preset": "conflict"}))
        .await;
    let (mut conn, _) = connect(&fake, Some(&device), json!({"deviceToken": device_token})).await;

    let cost = conn.call("r1", "usage.cost", json!({"days": 7})).await;
    let payload = &cost["payload"];
    assert_eq!(payload["days"], 7);
    assert_eq!(payload["daily"].as_array().unwrap().len(), 7);
    assert_eq!(payload["daily"][5]["input"], 1000);
    assert_eq!(payload["daily"][5]["totalTokens"], 1250);
    let total = payload["totals"]["totalCost"].as_f64().unwrap();
    assert!((total - 0.031).abs() < 1e-9, "total cost {total}");
    let by_model = conn
        .call("r2", "sessions.usage", json!({"range": "7d"}))
        .await;
    assert_eq!(
        by_model["payload"]["aggregates"]["byModel"][0]["model"],
        "claude-opus-4-6"
    );
    let bad = conn.call("r3", "sessions.usage", json!({"days": 1})).await;
    assert_eq!(
        bad["error"]["message"],
        "invalid sessions.usage params: at root: unexpected property 'days'"
    );

    let channels = conn.call("r4", "channels.status", json!({})).await;
    let account = &channels["payload"]["channelAccounts"]["telegram"][0];
    assert_eq!(account["running"], true);
    assert_eq!(account["connected"], false);
    assert!(
        account["lastError"]
            .as_str()
            .unwrap()
            .contains("409: Conflict: terminated by other getUpdates request")
    );

    fake.put("behaviour", json!({"delaysMs": {"health": 400}, "errors": {"status": {"code": "UNAVAILABLE", "message": "boom"}}})).await;
    conn.send(json!({"type": "req", "id": "slow", "method": "health"}))
        .await;
    let fast = conn.call("fast", "agents.list", json!({})).await;
    assert_eq!(fast["payload"]["defaultId"], "main");
    let slow = conn.response("slow").await;
    assert_eq!(slow["ok"], true);
    let failing = conn.call("r5", "status", json!({})).await;
    assert_eq!(
        failing["error"],
        json!({"code": "UNAVAILABLE", "message": "boom"})
    );

    conn.send(json!({"type": "req", "id": "run", "method": "agent",
        "params": {"message": "hi", "idempotencyKey": "run-1"}}))
        .await;
    let accepted = conn.json().await;
    assert_eq!(accepted["payload"]["status"], "accepted");
    assert_eq!(accepted["payload"]["runId"], "run-1");
    let done = loop {
        let frame = conn.json().await;
        if frame["id"] == "run" {
            break frame;
        }
        assert_eq!(frame["type"], "event");
    };
    assert_eq!(done["payload"]["status"], "ok");

    fake.put("behaviour", json!({"noChallenge": true})).await;
    let mut silent = Conn::open(&fake).await;
    assert!(
        timeout(Duration::from_millis(500), silent.ws.next())
            .await
            .is_err()
    );
}

/// 10 wrong tokens in a minute lock the 11th attempt out, even with the right token.
#[tokio::test]
async fn rate_limit_after_ten_failures() {
    let fake = Fake::start("ratelimit", &[]);
    for _ in 0..10 {
        let (_, response) = connect(&fake, None, json!({"token": "wrong"})).await;
        assert_eq!(response["error"]["details"]["code"], "AUTH_TOKEN_MISMATCH");
    }
    let error = connect_refused(&fake, None, json!({"token": TOKEN})).await;
    assert_eq!(
        error["message"],
        "unauthorized: too many failed authentication attempts (retry later)"
    );
    assert_eq!(error["retryable"], true);
    assert!(error["retryAfterMs"].as_u64().unwrap() > 290_000);
    assert_eq!(error["details"]["code"], "AUTH_RATE_LIMITED");
    assert_eq!(error["details"]["recommendedNextStep"], "wait_then_retry");
    fake.post("reset", json!({})).await;
    let (_, response) = connect(&fake, None, json!({"token": TOKEN})).await;
    assert_eq!(response["ok"], true);
}

async fn get_json(request: reqwest::RequestBuilder) -> Value {
    request.send().await.unwrap().json().await.unwrap()
}

/// Probes as in transcripts/http-probes.jsonl; the control API needs the token.
#[tokio::test]
async fn http_probes_and_control_auth() {
    let fake = Fake::start("http", &[]);
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{}", fake.port);
    let healthz = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(healthz.status(), 200);
    assert_eq!(
        healthz.json::<Value>().await.unwrap(),
        json!({"ok": true, "status": "live"})
    );
    let readyz = get_json(client.get(format!("{base}/readyz"))).await;
    assert_eq!(readyz, json!({"ready": true}));
    let detailed = get_json(client.get(format!("{base}/readyz")).bearer_auth(TOKEN)).await;
    assert_eq!(detailed["failing"], json!([]));
    let startupz = get_json(client.get(format!("{base}/startupz"))).await;
    assert_eq!(startupz, json!({"ok": true, "status": "started"}));
    let post = client.post(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(post.status(), 405);
    assert_eq!(post.headers()["allow"], "GET, HEAD");
    // No OpenAI endpoint, hooks disabled, and the control API without the token.
    for (request, status) in [
        (client.get(format!("{base}/v1/models")), 404),
        (
            client
                .post(format!("{base}/hooks/wake"))
                .json(&json!({"text": "x"})),
            404,
        ),
        (client.get(format!("{base}/__fake/state")), 401),
    ] {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), status, "{}", response.url());
    }
}
