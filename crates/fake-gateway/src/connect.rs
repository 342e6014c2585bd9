//! The `connect` decision, in the order of the real pipeline
//! (`connect-admission.ts`, `connect-auth.ts`, `connect-device-proof.ts`, pairing):
//! startup/restart admission → protocol → role → shared-secret check (rate limited)
//! → missing-device policy (scopes cleared) → device proof → device-token fallback →
//! pairing. Every peer counts as remote, as for a Docker-published port.

use std::net::IpAddr;
use std::time::Instant;

use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use crate::device::{self, PayloadInput};
use crate::pairing::{self, Identity, Reason};
use crate::ratelimit::Class;
use crate::state::{Audience, Gateway, now_ms};

/// The signed timestamp may differ from the server clock by this much.
const SIGNATURE_SKEW_MS: i64 = 120_000;

pub struct Rejection {
    pub error: Value,
    pub close_code: u16,
    pub close_reason: String,
}

pub struct Accepted {
    pub role: String,
    pub scopes: Vec<String>,
    pub method: &'static str,
    pub device_id: Option<String>,
    pub device_token: Option<(String, i64)>,
}

/// Why credentials failed (`details.authReason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    TokenMissing,
    TokenMissingConfig,
    TokenMismatch,
    RateLimited { retry_after_ms: u64 },
    DeviceTokenMismatch,
    ScopeMismatch,
}

impl Failure {
    /// `details.authReason` and `details.code`.
    fn reason_and_code(self) -> (&'static str, &'static str) {
        match self {
            Failure::TokenMissing => ("token_missing", "AUTH_TOKEN_MISSING"),
            Failure::TokenMissingConfig => ("token_missing_config", "AUTH_TOKEN_NOT_CONFIGURED"),
            Failure::TokenMismatch => ("token_mismatch", "AUTH_TOKEN_MISMATCH"),
            Failure::RateLimited { .. } => ("rate_limited", "AUTH_RATE_LIMITED"),
            Failure::DeviceTokenMismatch => ("device_token_mismatch", "AUTH_DEVICE_TOKEN_MISMATCH"),
            Failure::ScopeMismatch => ("scope_mismatch", "AUTH_SCOPE_MISMATCH"),
        }
    }
}

fn text<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value.pointer(pointer).and_then(Value::as_str)
}

fn non_empty<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    text(value, pointer).filter(|text| !text.is_empty())
}

/// Truncates a close reason to the 123 bytes a close frame can carry.
#[must_use]
pub fn close_reason(reason: &str) -> String {
    if reason.len() <= 123 {
        return reason.to_string();
    }
    let mut end = 120;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &reason[..end])
}

fn reject(code: &str, message: &str, details: Option<Value>, close_code: u16) -> Rejection {
    let mut error = json!({"code": code, "message": message});
    if let Some(details) = details {
        error["details"] = details;
    }
    Rejection {
        error,
        close_code,
        close_reason: close_reason(message),
    }
}

/// The startup/restart refusal (`gateway starting; retry shortly`, close 1013).
#[must_use]
pub fn starting() -> Rejection {
    Rejection {
        error: json!({"code": "UNAVAILABLE", "message": "gateway starting; retry shortly",
            "retryable": true, "retryAfterMs": 500, "details": {"reason": "startup-sidecars"}}),
        close_code: 1013,
        close_reason: "gateway starting".to_string(),
    }
}

fn unauthorized(params: &Value, failure: Failure, has_device: bool) -> Rejection {
    let mode = text(params, "/client/mode").unwrap_or("");
    let client_id = text(params, "/client/id").unwrap_or("");
    let is_ui = matches!(
        client_id,
        "openclaw-control-ui" | "openclaw-browser-copilot" | "openclaw-tui"
    ) || mode == "webchat"
        || client_id == "webchat-ui";
    let token_hint = if mode == "cli" {
        "set gateway.remote.token to match gateway.auth.token"
    } else if is_ui {
        "open the dashboard URL and paste the token in Control UI settings"
    } else {
        "provide gateway auth token"
    };
    let message = match failure {
        Failure::TokenMissing if is_ui => "unauthorized: gateway token missing (paste in Control UI settings or openclaw doctor --generate-gateway-token; restart)".to_string(),
        Failure::TokenMissing => format!("unauthorized: gateway token missing ({token_hint})"),
        Failure::TokenMismatch => format!("unauthorized: gateway token mismatch ({token_hint})"),
        Failure::TokenMissingConfig => {
            "unauthorized: gateway token not configured on gateway (set gateway.auth.token)".to_string()
        }
        Failure::RateLimited { .. } => {
            "unauthorized: too many failed authentication attempts (retry later)".to_string()
        }
        Failure::DeviceTokenMismatch => {
            "unauthorized: device token mismatch (rotate/reissue device token)".to_string()
        }
        Failure::ScopeMismatch => {
            "unauthorized: device token scope mismatch (re-pair or approve scope upgrade)".to_string()
        }
    };
    let provided = if non_empty(params, "/auth/password").is_some() {
        "password"
    } else if non_empty(params, "/auth/token").is_some() {
        "token"
    } else if non_empty(params, "/auth/bootstrapToken").is_some() {
        "bootstrap-token"
    } else if non_empty(params, "/auth/deviceToken").is_some() {
        "device-token"
    } else {
        "none"
    };
    let can_retry = failure == Failure::TokenMismatch
        && has_device
        && provided == "token"
        && non_empty(params, "/auth/deviceToken").is_none();
    let next_step = if can_retry {
        "retry_with_device_token"
    } else {
        match failure {
            Failure::TokenMissing | Failure::TokenMissingConfig => "update_auth_configuration",
            Failure::TokenMismatch | Failure::DeviceTokenMismatch => "update_auth_credentials",
            Failure::ScopeMismatch => "review_auth_configuration",
            Failure::RateLimited { .. } => "wait_then_retry",
        }
    };
    let (auth_reason, detail_code) = failure.reason_and_code();
    let mut error = json!({"code": "INVALID_REQUEST", "message": message,
        "details": {"code": detail_code, "authReason": auth_reason,
            "canRetryWithDeviceToken": can_retry, "recommendedNextStep": next_step}});
    if let Failure::RateLimited { retry_after_ms } = failure {
        error["retryable"] = json!(true);
        error["retryAfterMs"] = json!(retry_after_ms);
    }
    Rejection {
        error,
        close_code: 1008,
        close_reason: close_reason(&message),
    }
}

fn device_invalid(reason: &str, message: &str) -> Rejection {
    let code = match reason {
        "device-id-mismatch" => "DEVICE_AUTH_DEVICE_ID_MISMATCH",
        "device-signature-stale" => "DEVICE_AUTH_SIGNATURE_EXPIRED",
        "device-nonce-missing" => "DEVICE_AUTH_NONCE_REQUIRED",
        "device-nonce-mismatch" => "DEVICE_AUTH_NONCE_MISMATCH",
        "device-signature" => "DEVICE_AUTH_SIGNATURE_INVALID",
        "device-public-key" => "DEVICE_AUTH_PUBLIC_KEY_INVALID",
        _ => "DEVICE_AUTH_INVALID",
    };
    reject(
        "INVALID_REQUEST",
        message,
        Some(json!({"code": code, "reason": reason})),
        1008,
    )
}

fn scopes_of(params: &Value) -> Vec<String> {
    params
        .get("scopes")
        .and_then(Value::as_array)
        .map(|scopes| {
            scopes
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Decides a schema-valid `connect`. `nonce` is the challenge this socket got.
///
/// # Errors
/// The error response and close frame to send.
pub fn decide(
    gw: &Gateway,
    params: &Value,
    nonce: &str,
    peer: IpAddr,
) -> Result<Accepted, Rejection> {
    if !gw.admitting() {
        return Err(starting());
    }
    let min = params["minProtocol"].as_i64().unwrap_or(0);
    let max = params["maxProtocol"].as_i64().unwrap_or(0);
    let mode = text(params, "/client/mode").unwrap_or("");
    let probe_ok = mode == "probe" && max >= 3 && min <= 4;
    let supported = (max >= 4 && min <= 4) || probe_ok;
    if !supported {
        return Err(reject(
            "INVALID_REQUEST",
            "protocol mismatch",
            Some(
                json!({"code": "PROTOCOL_MISMATCH", "clientMinProtocol": min,
                "clientMaxProtocol": max, "expectedProtocol": 4, "minimumProbeProtocol": 3}),
            ),
            1002,
        ));
    }
    let role = text(params, "/role").unwrap_or("operator").to_string();
    if role != "operator" && role != "node" {
        return Err(reject("INVALID_REQUEST", "invalid role", None, 1008));
    }
    let scopes = scopes_of(params);
    let device = params.get("device").filter(|device| device.is_object());
    let shared_token = non_empty(params, "/auth/token");
    let explicit_device_token = non_empty(params, "/auth/deviceToken");
    let now = Instant::now();
    let configured = gw.settings().token.clone();

    // Shared secret.
    let mut state = gw.state();
    let mut auth: Result<&'static str, Failure> = match (&configured, shared_token) {
        (None, _) => Err(Failure::TokenMissingConfig),
        (Some(_), None) => Err(Failure::TokenMissing),
        (Some(expected), Some(given)) => {
            if let Some(wait) = state.limiter.locked(peer, Class::SharedSecret, now) {
                Err(Failure::RateLimited {
                    retry_after_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                })
            } else if bool::from(expected.as_bytes().ct_eq(given.as_bytes())) {
                state.limiter.reset(peer, Class::SharedSecret);
                Ok("token")
            } else {
                Err(Failure::TokenMismatch)
            }
        }
    };
    let shared_failed = auth == Err(Failure::TokenMismatch);
    let record_shared_failure = |state: &mut crate::state::State| {
        if shared_failed {
            state.limiter.record_failure(peer, Class::SharedSecret, now);
        }
    };

    // No device: accepted with scopes cleared (every peer is remote), else refused.
    let Some(device) = device else {
        record_shared_failure(&mut state);
        return match auth {
            Ok(method) => Ok(Accepted {
                role,
                scopes: Vec::new(),
                method,
                device_id: None,
                device_token: None,
            }),
            Err(failure) if shared_token.is_some() => Err(unauthorized(params, failure, false)),
            Err(_) => Err(reject(
                "NOT_PAIRED",
                "device identity required",
                Some(json!({"code": "DEVICE_IDENTITY_REQUIRED"})),
                1008,
            )),
        };
    };

    // Device proof.
    let device_id = text(device, "/id").unwrap_or("");
    let public_key = text(device, "/publicKey").unwrap_or("");
    let proof = verify_proof(params, device, nonce, &role, &scopes);
    if let Err(rejection) = proof {
        record_shared_failure(&mut state);
        return Err(rejection);
    }
    let public_key_b64 = device::normalized_public_key(public_key).unwrap_or_default();

    // Device-token fallback: `auth.deviceToken`, or `auth.token` when the shared
    // secret did not match.
    if auth.is_err() {
        let candidate = explicit_device_token.or(shared_token);
        if let Some(candidate) = candidate {
            if let Some(wait) = state.limiter.locked(peer, Class::DeviceToken, now) {
                auth = Err(Failure::RateLimited {
                    retry_after_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                });
            } else {
                match state.pairing.token_for(device_id, &role) {
                    Some(token)
                        if bool::from(token.token.as_bytes().ct_eq(candidate.as_bytes())) =>
                    {
                        if scopes
                            .iter()
                            .all(|scope| pairing::scopes_cover(&token.scopes, scope))
                        {
                            state.limiter.reset(peer, Class::DeviceToken);
                            auth = Ok("device-token");
                        } else {
                            auth = Err(Failure::ScopeMismatch);
                        }
                    }
                    _ => {
                        if explicit_device_token.is_some() {
                            auth = Err(Failure::DeviceTokenMismatch);
                        }
                        state.limiter.record_failure(peer, Class::DeviceToken, now);
                    }
                }
            }
        }
    }
    let method = match auth {
        Ok(method) => method,
        Err(failure) => {
            record_shared_failure(&mut state);
            return Err(unauthorized(params, failure, true));
        }
    };

    // Pairing.
    let request = Identity {
        device_id: device_id.to_string(),
        public_key: public_key_b64,
        platform: text(params, "/client/platform").unwrap_or("").to_string(),
        device_family: text(params, "/client/deviceFamily").map(str::to_string),
        client_id: text(params, "/client/id").unwrap_or("").to_string(),
        client_mode: mode.to_string(),
        role: role.clone(),
        scopes: scopes.clone(),
        remote_ip: peer.to_string(),
    };
    if let Some(reason) = state.pairing.check(&request) {
        let approved = state.pairing.paired(device_id).map(|device| {
            let scopes = pairing::sorted_unique(&device.identity.scopes);
            (device.roles.clone(), scopes)
        });
        let (pending, created) = state.pairing.request(&request, reason, now_ms());
        drop(state);
        if created {
            gw.broadcast(
                "device.pair.requested",
                pairing::pending_json(&pending),
                Audience::Pairing,
            );
        }
        let mut details = json!({"code": "PAIRING_REQUIRED", "reason": reason.as_str(),
            "requestId": pending.request_id, "remediationHint": reason.remediation_hint(),
            "deviceId": device_id, "requestedRole": role, "requestedScopes": scopes});
        if reason != Reason::NotPaired
            && let Some((roles, approved_scopes)) = approved
        {
            details["approvedRoles"] = json!(roles);
            details["approvedScopes"] = json!(approved_scopes);
        }
        let message = format!("pairing required: {}", reason.requirement());
        return Err(Rejection {
            error: json!({"code": "NOT_PAIRED", "message": message, "details": details}),
            close_code: 1008,
            close_reason: close_reason(&format!("{message} (requestId: {})", pending.request_id)),
        });
    }
    state.pairing.touch(device_id, now_ms());
    let device_token = state
        .pairing
        .token_for(device_id, &role)
        .map(|token| (token.token, token.created_at_ms));
    Ok(Accepted {
        role,
        scopes,
        method,
        device_id: Some(device_id.to_string()),
        device_token,
    })
}

fn verify_proof(
    params: &Value,
    device: &Value,
    nonce: &str,
    role: &str,
    scopes: &[String],
) -> Result<(), Rejection> {
    let device_id = text(device, "/id").unwrap_or("");
    let public_key = text(device, "/publicKey").unwrap_or("");
    if device::derive_device_id(public_key).as_deref() != Some(device_id) {
        return Err(device_invalid(
            "device-id-mismatch",
            "device identity mismatch",
        ));
    }
    let signed_at = device
        .get("signedAt")
        .and_then(Value::as_i64)
        .unwrap_or(i64::MIN);
    if signed_at == i64::MIN || (now_ms() - signed_at).abs() > SIGNATURE_SKEW_MS {
        return Err(device_invalid(
            "device-signature-stale",
            "device signature expired",
        ));
    }
    let provided_nonce = text(device, "/nonce").unwrap_or("").trim();
    if provided_nonce.is_empty() {
        return Err(device_invalid(
            "device-nonce-missing",
            "device nonce required",
        ));
    }
    if provided_nonce != nonce {
        return Err(device_invalid(
            "device-nonce-mismatch",
            "device nonce mismatch",
        ));
    }
    let token = text(params, "/auth/token")
        .or_else(|| text(params, "/auth/deviceToken"))
        .or_else(|| text(params, "/auth/bootstrapToken"))
        .unwrap_or("");
    let input = PayloadInput {
        device_id,
        client_id: text(params, "/client/id").unwrap_or(""),
        client_mode: text(params, "/client/mode").unwrap_or(""),
        role,
        scopes,
        signed_at_ms: signed_at,
        token,
        nonce: provided_nonce,
        platform: text(params, "/client/platform").unwrap_or(""),
        device_family: text(params, "/client/deviceFamily").unwrap_or(""),
    };
    let signature = text(device, "/signature").unwrap_or("");
    if device::verify_payload(public_key, signature, &input).is_none() {
        return Err(device_invalid(
            "device-signature",
            "device signature invalid",
        ));
    }
    if device::normalized_public_key(public_key).is_none() {
        return Err(device_invalid(
            "device-public-key",
            "device public key invalid",
        ));
    }
    Ok(())
}
