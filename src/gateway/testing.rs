//! Test helpers for the gateway module: reading the recorded transcripts in
//! `tests/fixtures/gateway/`, and a scripted fake gateway on `127.0.0.1:0` that checks
//! the client's `connect` (closed keys, Ed25519 v3 signature) the way OpenClaw does.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::gateway::client::{Endpoint, Options};
use crate::gateway::identity::DeviceIdentity;
use crate::tenant::Secret;

/// The raw frames of a transcript, in order (close lines and notes are skipped).
pub(crate) fn transcript_frames(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .filter_map(|line| {
            let mut value: Value = serde_json::from_str(line).expect("transcript line is JSON");
            value.get_mut("frame").map(Value::take)
        })
        .collect()
}

/// The payload of the `ok` response to request `id` in a transcript.
pub(crate) fn transcript_payload(text: &str, id: &str) -> Value {
    transcript_frames(text)
        .into_iter()
        .find(|frame| frame["type"] == "res" && frame["id"] == id)
        .map(|frame| frame["payload"].clone())
        .unwrap_or_else(|| panic!("no response {id} in transcript"))
}

/// A fixed identity for tests.
pub(crate) fn identity() -> DeviceIdentity {
    DeviceIdentity::from_seed([7; 32])
}

/// An endpoint for `port` with the test gateway token.
pub(crate) fn endpoint(port: u16) -> Endpoint {
    Endpoint {
        host: "127.0.0.1".to_string(),
        port,
        gateway_token: Secret::new("gw-token".to_string()),
        device_token: None,
    }
}

/// Options with short, real-time reconnect delays for socket tests.
pub(crate) fn fast_options() -> Options {
    Options {
        call_timeout: std::time::Duration::from_secs(10),
        connect_timeout: std::time::Duration::from_secs(10),
        max_message_bytes: 1 << 20,
        min_backoff: std::time::Duration::from_millis(10),
        max_backoff: std::time::Duration::from_millis(40),
    }
}

/// A minimal `hello-ok` granting the four admin scopes and issuing `device_token`.
pub(crate) fn hello_ok(device_token: &str) -> Value {
    json!({
        "type": "hello-ok", "protocol": 4,
        "server": {"version": "test-1", "bootId": "boot-1", "connId": "conn"},
        "features": {"methods": ["health"], "events": ["tick"]},
        "snapshot": {"appliedConfigHash": "hmac-sha256:v1:abc"},
        "auth": {"method": "token", "role": "operator",
                 "scopes": ["operator.admin", "operator.read", "operator.write", "operator.pairing"],
                 "deviceToken": device_token, "issuedAtMs": 1},
        "policy": {"maxPayload": 26214400, "maxBufferedBytes": 52428800, "tickIntervalMs": 30000}
    })
}

/// A gateway that accepts sockets and lets the test script each one.
pub(crate) struct FakeGateway {
    listener: TcpListener,
    pub port: u16,
}

impl FakeGateway {
    pub async fn start() -> FakeGateway {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        FakeGateway { listener, port }
    }

    /// The next client socket, after the WebSocket upgrade.
    pub async fn accept(&self) -> FakeConnection {
        let (tcp, _) = self.listener.accept().await.unwrap();
        let socket = tokio_tungstenite::accept_async(tcp).await.unwrap();
        FakeConnection { socket }
    }
}

/// One client socket seen from the gateway's side.
pub(crate) struct FakeConnection {
    pub socket: WebSocketStream<TcpStream>,
}

impl FakeConnection {
    pub async fn send(&mut self, frame: Value) {
        self.socket
            .send(Message::text(frame.to_string()))
            .await
            .unwrap();
    }

    pub async fn send_raw(&mut self, text: &str) {
        self.socket
            .send(Message::text(text.to_string()))
            .await
            .unwrap();
    }

    /// The next JSON frame from the client; `None` once it closed.
    pub async fn recv(&mut self) -> Option<Value> {
        loop {
            match self.socket.next().await? {
                Ok(Message::Text(text)) => {
                    return Some(serde_json::from_str(text.as_str()).unwrap());
                }
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// Sends the challenge and returns the client's `connect` params after checking
    /// them as OpenClaw would: closed keys, matching device id, a valid v3 signature.
    pub async fn challenge(&mut self) -> Value {
        let nonce = "11111111-2222-3333-4444-555555555555";
        let ts = 1_795_477_441_640_i64;
        self.send(json!({"type": "event", "event": "connect.challenge",
                         "payload": {"nonce": nonce, "ts": ts, "capabilities": []}}))
            .await;
        let frame = self.recv().await.expect("a connect request");
        assert_eq!(frame["method"], "connect", "{frame}");
        assert_eq!(frame["id"], "c1");
        let params = frame["params"].clone();
        check_connect(&params, nonce, ts);
        params
    }

    /// Completes a handshake with `hello`; returns the connect params.
    pub async fn handshake(&mut self, hello: Value) -> Value {
        let params = self.challenge().await;
        self.send(json!({"type": "res", "id": "c1", "ok": true, "payload": hello}))
            .await;
        params
    }

    /// The next request from the client (events and closes are not expected here).
    pub async fn request(&mut self) -> Value {
        let frame = self.recv().await.expect("a request");
        assert_eq!(frame["type"], "req", "{frame}");
        frame
    }

    /// Answers `request` with an ok payload.
    pub async fn reply(&mut self, request: &Value, payload: Value) {
        self.send(json!({"type": "res", "id": request["id"], "ok": true, "payload": payload}))
            .await;
    }

    pub async fn close(&mut self, code: u16, reason: &str) {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: reason.to_string().into(),
        };
        let _ = self.socket.close(Some(frame)).await;
    }
}

/// Checks `connect` params the way the gateway's closed schema and verifier do.
fn check_connect(params: &Value, nonce: &str, ts: i64) {
    let keys: Vec<&str> = params
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for key in &keys {
        assert!(
            [
                "minProtocol",
                "maxProtocol",
                "client",
                "role",
                "scopes",
                "auth",
                "device"
            ]
            .contains(key),
            "unexpected connect key {key}"
        );
    }
    assert_eq!(params["minProtocol"], 4);
    assert_eq!(params["maxProtocol"], 4);
    assert_eq!(params["client"]["id"], "gateway-client");
    assert_eq!(params["client"]["mode"], "backend");
    assert_eq!(params["client"]["platform"], "linux");
    assert_eq!(params["role"], "operator");
    let device = &params["device"];
    assert_eq!(device["nonce"], nonce);
    assert_eq!(device["signedAt"], ts);
    let public_raw: [u8; 32] = URL_SAFE_NO_PAD
        .decode(device["publicKey"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let expected_id = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(public_raw))
    };
    assert_eq!(device["id"], expected_id.as_str());
    let scopes: Vec<&str> = params["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    let token = params["auth"]["token"]
        .as_str()
        .or_else(|| params["auth"]["deviceToken"].as_str())
        .unwrap_or("");
    let payload = format!(
        "v3|{expected_id}|gateway-client|backend|operator|{}|{ts}|{token}|{nonce}|linux|",
        scopes.join(",")
    );
    let signature: [u8; 64] = URL_SAFE_NO_PAD
        .decode(device["signature"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    VerifyingKey::from_bytes(&public_raw)
        .unwrap()
        .verify(payload.as_bytes(), &Signature::from_bytes(&signature))
        .expect("device signature verifies");
}
