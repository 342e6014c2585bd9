//! HTTP and WebSocket on one port, as the real gateway multiplexes them: probes
//! (transcripts/http-probes.jsonl), hooks when configured (http-hooks*.jsonl), the
//! `/__fake` control API, and every other upgrade request is the gateway socket.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use serde_json::{Value, json};

use crate::state::{Gateway, VERSION};

/// Inbound post-auth frame limit (`policy.maxPayload`).
const MAX_MESSAGE_BYTES: usize = 26_214_400;
/// Open sockets beyond this are refused at the upgrade (bounds memory).
const MAX_SOCKETS: usize = 4096;
/// Hook bodies above this get 413.
const MAX_HOOK_BODY: usize = 256 * 1024;

pub fn router(gw: Gateway) -> Router {
    Router::new()
        .route("/healthz", any(healthz))
        .route("/health", any(healthz))
        .route("/readyz", any(readyz))
        .route("/ready", any(readyz))
        .route("/startupz", any(startupz))
        .route("/startup", any(startupz))
        .nest("/__fake", crate::control::router())
        .fallback(fallback)
        .layer(axum::middleware::map_response(security_headers))
        .with_state(gw)
}

async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    headers.insert(
        "permissions-policy",
        HeaderValue::from_static("camera=(), microphone=(self), geolocation=()"),
    );
    response
}

pub fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body.to_string(),
    )
        .into_response()
}

pub fn text_response(status: StatusCode, body: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

fn method_not_allowed(allow: &'static str) -> Response {
    let mut response = text_response(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

fn probe_method_ok(method: &Method) -> bool {
    method == Method::GET || method == Method::HEAD
}

/// `Authorization: Bearer <gateway token>`.
pub fn has_gateway_bearer(gw: &Gateway, headers: &HeaderMap) -> bool {
    let Some(expected) = &gw.settings().token else {
        return false;
    };
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .is_some_and(|given| given.trim() == expected)
}

async fn healthz(method: Method) -> Response {
    if !probe_method_ok(&method) {
        return method_not_allowed("GET, HEAD");
    }
    json_response(StatusCode::OK, &json!({"ok": true, "status": "live"}))
}

/// Every peer counts as remote: details only with the gateway bearer token.
async fn readyz(State(gw): State<Gateway>, method: Method, headers: HeaderMap) -> Response {
    if !probe_method_ok(&method) {
        return method_not_allowed("GET, HEAD");
    }
    let ready = gw.admitting();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    if !has_gateway_bearer(&gw, &headers) {
        return json_response(status, &json!({"ready": ready}));
    }
    let failing: Vec<&str> = if ready { vec![] } else { vec!["startup"] };
    json_response(
        status,
        &json!({"ready": ready, "failing": failing, "uptimeMs": gw.uptime_ms(),
            "eventLoop": crate::payloads::event_loop()}),
    )
}

async fn startupz(State(gw): State<Gateway>, method: Method, headers: HeaderMap) -> Response {
    if !probe_method_ok(&method) {
        return method_not_allowed("GET, HEAD");
    }
    let started = gw.admitting();
    let (status, label) = if started {
        (StatusCode::OK, "started")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting")
    };
    let mut body = json!({"ok": started, "status": label});
    if has_gateway_bearer(&gw, &headers) {
        body["version"] = json!(VERSION);
        body["uptimeMs"] = json!(gw.uptime_ms());
        if !started {
            body["pendingReason"] = json!("startup-sidecars");
        }
    }
    json_response(status, &body)
}

fn is_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.eq_ignore_ascii_case("websocket"))
}

const CONTROL_UI: &str = "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>OpenClaw (fake)</title></head>\n<body><p>mtp-fake-gateway: no Control UI.</p></body></html>\n";

async fn fallback(
    State(gw): State<Gateway>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let (mut parts, body) = request.into_parts();
    if is_upgrade(&parts.headers) {
        if gw.state().connections >= MAX_SOCKETS {
            return text_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "Too many unauthenticated sockets",
            );
        }
        let host = parts
            .headers
            .get(header::HOST)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("127.0.0.1")
            .to_string();
        let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &gw).await {
            Ok(upgrade) => upgrade,
            Err(rejection) => return rejection.into_response(),
        };
        return upgrade
            .max_message_size(MAX_MESSAGE_BYTES)
            .max_frame_size(MAX_MESSAGE_BYTES)
            .on_upgrade(move |socket| crate::ws::serve_socket(gw, socket, peer, host));
    }
    let path = parts.uri.path().to_string();
    if let Some(hooks_base) = hooks_base(&gw)
        && (path == hooks_base || path.starts_with(&format!("{hooks_base}/")))
    {
        let bytes = match axum::body::to_bytes(body, MAX_HOOK_BODY).await {
            Ok(bytes) => bytes,
            Err(_) => return text_response(StatusCode::PAYLOAD_TOO_LARGE, "Payload Too Large"),
        };
        let name = path[hooks_base.len()..].trim_start_matches('/').to_string();
        return hook(&gw, &parts.method, &parts.uri, &parts.headers, &name, bytes);
    }
    if path.starts_with("/v1/") || path == "/v1" || path.starts_with("/hooks") {
        return text_response(StatusCode::NOT_FOUND, "Not Found");
    }
    if parts.method == Method::GET || parts.method == Method::HEAD {
        return (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            Body::from(CONTROL_UI),
        )
            .into_response();
    }
    text_response(StatusCode::NOT_FOUND, "Not Found")
}

/// The hooks base path when `hooks.enabled` and a non-empty `hooks.token` are set.
fn hooks_base(gw: &Gateway) -> Option<String> {
    let state = gw.state();
    if state.config.bool_at("hooks.enabled") != Some(true) {
        return None;
    }
    let token = state.config.string_at("hooks.token")?;
    if token.is_empty() {
        return None;
    }
    let base = state
        .config
        .string_at("hooks.path")
        .unwrap_or_else(|| "/hooks".to_string());
    Some(base.trim_end_matches('/').to_string()).filter(|base| !base.is_empty())
}

fn hook(
    gw: &Gateway,
    method: &Method,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    name: &str,
    body: Bytes,
) -> Response {
    if method != Method::POST {
        return method_not_allowed("POST");
    }
    if uri
        .query()
        .is_some_and(|query| query.split('&').any(|pair| pair.starts_with("token=")))
    {
        return text_response(
            StatusCode::BAD_REQUEST,
            "Hook token must be provided via Authorization: Bearer <token> or X-OpenClaw-Token header (query parameters are not allowed).",
        );
    }
    let expected = gw
        .state()
        .config
        .string_at("hooks.token")
        .unwrap_or_default();
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .or_else(|| {
            headers
                .get("x-openclaw-token")
                .and_then(|value| value.to_str().ok())
        });
    if given.map(str::trim) != Some(expected.as_str()) {
        return text_response(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    let payload: Value = serde_json::from_slice(&body).unwrap_or(json!({}));
    match name {
        "wake" => {
            let Some(text) = payload
                .get("text")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
            else {
                return json_response(
                    StatusCode::BAD_REQUEST,
                    &json!({"ok": false, "error": "text required"}),
                );
            };
            let mode = payload
                .get("mode")
                .and_then(Value::as_str)
                .unwrap_or("now")
                .to_string();
            let mut state = gw.state();
            // The same wake again within a few seconds coalesces, as recorded.
            let coalesced = state
                .last_wake
                .as_ref()
                .is_some_and(|(last, at)| last == text && at.elapsed() < Duration::from_secs(5));
            state.last_wake = Some((text.to_string(), Instant::now()));
            let outcome = if coalesced { "coalesced" } else { "queued" };
            json_response(
                StatusCode::OK,
                &json!({"ok": true, "mode": mode, "eventOutcome": outcome}),
            )
        }
        "agent" => {
            if payload
                .get("message")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                return json_response(
                    StatusCode::BAD_REQUEST,
                    &json!({"ok": false, "error": "message required"}),
                );
            }
            if let Some(agent) = payload.get("agentId").and_then(Value::as_str)
                && agent != "main"
            {
                return json_response(
                    StatusCode::BAD_REQUEST,
                    &json!({"ok": false, "error": format!("unknown agentId \"{agent}\"")}),
                );
            }
            let run_id = uuid::Uuid::new_v4().to_string();
            let mut body = json!({"ok": true, "runId": run_id});
            if payload.get("waitForCompletion") == Some(&json!(true)) {
                body["completion"] = json!({"status": "ok", "replyDisposition": "visible"});
            }
            json_response(StatusCode::OK, &body)
        }
        _ => text_response(StatusCode::NOT_FOUND, "Not Found"),
    }
}
