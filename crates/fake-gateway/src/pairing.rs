//! The device pairing store: pending requests (one per device, its `requestId` reused
//! on repeated attempts, as the real cell does), paired devices with their approved
//! role/scopes/platform, and issued device tokens. Persisted as JSON (mode 0600) in the
//! state dir so pairing survives a restart of the fake.

use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::persist::write_atomically;

/// Bounds the store so a hostile client cannot grow it without limit.
const MAX_PENDING: usize = 512;
const MAX_PAIRED: usize = 4096;

/// What a connecting device says about itself and asks for. A pending request keeps
/// it as last asked; a paired device keeps it as approved, with `role` the role of
/// the last approval and `scopes` every scope approved so far.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    pub device_id: String,
    pub public_key: String,
    pub platform: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_family: Option<String>,
    pub client_id: String,
    pub client_mode: String,
    pub role: String,
    pub scopes: Vec<String>,
    pub remote_ip: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pending {
    pub request_id: String,
    #[serde(flatten)]
    pub identity: Identity,
    pub is_repair: bool,
    pub ts: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceToken {
    pub role: String,
    /// Sorted, as the gateway stores them.
    pub scopes: Vec<String>,
    pub token: String,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Paired {
    #[serde(flatten)]
    pub identity: Identity,
    pub roles: Vec<String>,
    pub created_at_ms: i64,
    pub approved_at_ms: i64,
    #[serde(default)]
    pub last_seen_at_ms: Option<i64>,
    pub tokens: Vec<DeviceToken>,
}

#[derive(Default, Serialize, Deserialize)]
struct File {
    version: u32,
    pending: Vec<Pending>,
    paired: Vec<Paired>,
}

pub struct PairingStore {
    /// `None` = in memory only (no state dir).
    path: Option<PathBuf>,
    pending: Vec<Pending>,
    paired: Vec<Paired>,
}

/// Why pairing is required (`details.reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    NotPaired,
    RoleUpgrade,
    ScopeUpgrade,
    MetadataUpgrade,
}

impl Reason {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::NotPaired => "not-paired",
            Reason::RoleUpgrade => "role-upgrade",
            Reason::ScopeUpgrade => "scope-upgrade",
            Reason::MetadataUpgrade => "metadata-upgrade",
        }
    }

    /// The `requirement` text after "pairing required: ".
    #[must_use]
    pub fn requirement(self) -> &'static str {
        match self {
            Reason::NotPaired => "device is not approved yet",
            Reason::RoleUpgrade => "device is asking for a higher role than currently approved",
            Reason::ScopeUpgrade => "device is asking for more scopes than currently approved",
            Reason::MetadataUpgrade => "device identity changed and must be re-approved",
        }
    }

    #[must_use]
    pub fn remediation_hint(self) -> &'static str {
        match self {
            Reason::NotPaired => "Approve this device from the pending pairing requests.",
            Reason::RoleUpgrade => {
                "Review the requested role upgrade, then approve the pending request."
            }
            Reason::ScopeUpgrade => {
                "Review the requested scopes, then approve the pending upgrade."
            }
            Reason::MetadataUpgrade => {
                "Review the refreshed device details, then approve the pending request."
            }
        }
    }
}

/// `operator.admin` covers every scope; `operator.write` covers read and the
/// session/talk scopes (PROTOCOL.md §2.5).
#[must_use]
pub fn scopes_cover(granted: &[String], wanted: &str) -> bool {
    if granted
        .iter()
        .any(|scope| scope == wanted || scope == "operator.admin")
    {
        return true;
    }
    let write_implied = [
        "operator.read",
        "operator.talk",
        "operator.sessions.read",
        "operator.sessions.write",
    ];
    write_implied.contains(&wanted) && granted.iter().any(|scope| scope == "operator.write")
}

#[must_use]
pub fn sorted_unique(scopes: &[String]) -> Vec<String> {
    let mut out: Vec<String> = scopes.to_vec();
    out.sort();
    out.dedup();
    out
}

impl PairingStore {
    /// Loads the store; a missing file is an empty store, a broken one is logged and
    /// replaced.
    #[must_use]
    pub fn load(path: Option<PathBuf>) -> PairingStore {
        let file = path
            .as_ref()
            .and_then(|path| std::fs::read(path).ok())
            .and_then(|bytes| match serde_json::from_slice::<File>(&bytes) {
                Ok(file) => Some(file),
                Err(err) => {
                    tracing::warn!(cause = %err, "pairing store unreadable; starting empty");
                    None
                }
            })
            .unwrap_or_default();
        PairingStore {
            path,
            pending: file.pending,
            paired: file.paired,
        }
    }

    fn save(&self) {
        let Some(path) = &self.path else {
            return;
        };
        let file = File {
            version: 1,
            pending: self.pending.clone(),
            paired: self.paired.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&file).unwrap_or_default();
        if let Err(err) = write_atomically(path, &bytes) {
            tracing::warn!(cause = %err, path = %path.display(), "pairing store write failed");
        }
    }

    #[must_use]
    pub fn paired(&self, device_id: &str) -> Option<&Paired> {
        self.paired
            .iter()
            .find(|device| device.identity.device_id == device_id)
    }

    /// Decides whether a device with a verified key may connect with what it asks
    /// for; `Some(reason)` means pairing (or re-approval) is required.
    #[must_use]
    pub fn check(&self, request: &Identity) -> Option<Reason> {
        let Some(device) = self.paired(&request.device_id) else {
            return Some(Reason::NotPaired);
        };
        let approved = &device.identity;
        if approved.public_key != request.public_key {
            return Some(Reason::NotPaired);
        }
        if crate::device::normalize_metadata(&approved.platform)
            != crate::device::normalize_metadata(&request.platform)
            || crate::device::normalize_metadata(approved.device_family.as_deref().unwrap_or(""))
                != crate::device::normalize_metadata(request.device_family.as_deref().unwrap_or(""))
        {
            return Some(Reason::MetadataUpgrade);
        }
        if !device.roles.contains(&request.role) {
            return Some(Reason::RoleUpgrade);
        }
        if !request
            .scopes
            .iter()
            .all(|scope| scopes_cover(&approved.scopes, scope))
        {
            return Some(Reason::ScopeUpgrade);
        }
        None
    }

    /// Creates the pending request for a device, or reuses the one it already has
    /// (same `requestId`), refreshing what it asks for. Returns it and whether it is new.
    pub fn request(&mut self, request: &Identity, reason: Reason, now_ms: i64) -> (Pending, bool) {
        let is_repair = reason != Reason::NotPaired;
        if let Some(existing) = self
            .pending
            .iter_mut()
            .find(|pending| pending.identity.device_id == request.device_id)
        {
            existing.identity = request.clone();
            existing.is_repair = is_repair;
            let pending = existing.clone();
            self.save();
            return (pending, false);
        }
        if self.pending.len() >= MAX_PENDING {
            self.pending.remove(0);
        }
        let pending = Pending {
            request_id: uuid::Uuid::new_v4().to_string(),
            identity: request.clone(),
            is_repair,
            ts: now_ms,
        };
        self.pending.push(pending.clone());
        self.save();
        (pending, true)
    }

    /// Approves a pending request: the device becomes paired with the requested role
    /// and scopes and gets a device token. `None` for an unknown id.
    pub fn approve(&mut self, request_id: &str, now_ms: i64) -> Option<Paired> {
        let index = self
            .pending
            .iter()
            .position(|pending| pending.request_id == request_id)?;
        let mut identity = self.pending.remove(index).identity;
        let previous = self
            .paired
            .iter()
            .position(|device| device.identity.device_id == identity.device_id)
            .map(|index| self.paired.remove(index));
        let mut roles = previous
            .as_ref()
            .map(|device| device.roles.clone())
            .unwrap_or_default();
        if !roles.contains(&identity.role) {
            roles.push(identity.role.clone());
        }
        let mut scopes = previous
            .as_ref()
            .map(|device| device.identity.scopes.clone())
            .unwrap_or_default();
        for scope in &identity.scopes {
            if !scopes.contains(scope) {
                scopes.push(scope.clone());
            }
        }
        let token = DeviceToken {
            role: identity.role.clone(),
            scopes: sorted_unique(&scopes),
            token: random_token(),
            created_at_ms: now_ms,
        };
        identity.scopes = scopes;
        let device = Paired {
            identity,
            roles,
            created_at_ms: previous
                .as_ref()
                .map_or(now_ms, |device| device.created_at_ms),
            approved_at_ms: now_ms,
            last_seen_at_ms: None,
            tokens: vec![token],
        };
        if self.paired.len() >= MAX_PAIRED {
            self.paired.remove(0);
        }
        self.paired.push(device.clone());
        self.save();
        Some(device)
    }

    /// The token of a paired device for `role`.
    #[must_use]
    pub fn token_for(&self, device_id: &str, role: &str) -> Option<DeviceToken> {
        self.paired(device_id)?
            .tokens
            .iter()
            .find(|token| token.role == role)
            .cloned()
    }

    pub fn touch(&mut self, device_id: &str, now_ms: i64) {
        if let Some(device) = self
            .paired
            .iter_mut()
            .find(|device| device.identity.device_id == device_id)
        {
            device.last_seen_at_ms = Some(now_ms);
        }
    }

    /// `device.pair.list` payload (shape of transcripts/device-pair-approve.jsonl).
    #[must_use]
    pub fn list_payload(&self, connected: &dyn Fn(&str) -> bool) -> Value {
        let pending: Vec<Value> = self.pending.iter().map(pending_json).collect();
        let paired: Vec<Value> = self
            .paired
            .iter()
            .map(|device| {
                let mut value = paired_json(device);
                if let Some(seen) = device.last_seen_at_ms {
                    value["lastSeenAtMs"] = json!(seen);
                    value["lastSeenReason"] = json!("connect");
                }
                value["connected"] = json!(connected(&device.identity.device_id));
                value
            })
            .collect();
        json!({"pending": pending, "paired": paired})
    }

    pub fn clear(&mut self) {
        self.pending.clear();
        self.paired.clear();
        self.save();
    }
}

#[must_use]
pub fn pending_json(pending: &Pending) -> Value {
    with_identity(
        &pending.identity,
        json!({
            "requestId": pending.request_id,
            "roles": [pending.identity.role],
            "silent": false,
            "isRepair": pending.is_repair,
            "ts": pending.ts,
        }),
    )
}

/// A paired device as `device.pair.approve` returns it (tokens without their value).
#[must_use]
pub fn paired_json(device: &Paired) -> Value {
    let tokens: Vec<Value> = device
        .tokens
        .iter()
        .map(|token| json!({"role": token.role, "scopes": token.scopes, "createdAtMs": token.created_at_ms}))
        .collect();
    with_identity(
        &device.identity,
        json!({
            "roles": device.roles,
            "approvedVia": "owner",
            "createdAtMs": device.created_at_ms,
            "approvedAtMs": device.approved_at_ms,
            "tokens": tokens,
        }),
    )
}

/// `fields` (an object) and the device's identity, as both lists show them.
fn with_identity(identity: &Identity, fields: Value) -> Value {
    let mut value = json!({
        "deviceId": identity.device_id,
        "publicKey": identity.public_key,
        "platform": identity.platform,
        "clientId": identity.client_id,
        "clientMode": identity.client_mode,
        "role": identity.role,
        "scopes": identity.scopes,
        "remoteIp": identity.remote_ip,
    });
    if let Some(family) = &identity.device_family {
        value["deviceFamily"] = json!(family);
    }
    if let (Value::Object(value), Value::Object(fields)) = (&mut value, fields) {
        value.extend(fields);
    }
    value
}

/// 32 random bytes, base64url: the shape of the real device tokens.
#[must_use]
pub fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scopes() -> Vec<String> {
        vec!["operator.admin".to_string(), "operator.read".to_string()]
    }

    fn request(scopes: &[String], platform: &str) -> Identity {
        Identity {
            device_id: "dev1".to_string(),
            public_key: "key1".to_string(),
            platform: platform.to_string(),
            device_family: None,
            client_id: "gateway-client".to_string(),
            client_mode: "backend".to_string(),
            role: "operator".to_string(),
            scopes: scopes.to_vec(),
            remote_ip: "172.17.0.1".to_string(),
        }
    }

    /// The same device keeps one pending request; approval issues a token; later
    /// checks pass; a platform change needs re-approval.
    #[test]
    fn pairing_lifecycle() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("devices.json");
        let mut store = PairingStore::load(Some(path.clone()));
        let scopes = scopes();
        assert_eq!(
            store.check(&request(&scopes, "linux")),
            Some(Reason::NotPaired)
        );
        let (first, created) = store.request(&request(&scopes, "linux"), Reason::NotPaired, 1);
        assert!(created);
        let (second, created) = store.request(&request(&scopes, "linux"), Reason::NotPaired, 2);
        assert!(!created);
        assert_eq!(first.request_id, second.request_id);
        assert!(store.approve("nope", 3).is_none());
        let device = store.approve(&first.request_id, 3).unwrap();
        assert_eq!(device.tokens.len(), 1);
        assert_eq!(store.check(&request(&scopes, "linux")), None);
        assert_eq!(store.check(&request(&scopes, " Linux ")), None);
        assert_eq!(
            store.check(&request(&scopes, "macos")),
            Some(Reason::MetadataUpgrade)
        );
        // Survives a reload, with mode 0600.
        let reloaded = PairingStore::load(Some(path.clone()));
        assert_eq!(
            reloaded.token_for("dev1", "operator").unwrap().token,
            device.tokens[0].token
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn admin_covers_every_scope_and_write_covers_read() {
        let admin = vec!["operator.admin".to_string()];
        assert!(scopes_cover(&admin, "operator.pairing"));
        let write = vec!["operator.write".to_string()];
        assert!(scopes_cover(&write, "operator.read"));
        assert!(!scopes_cover(&write, "operator.admin"));
        assert!(!scopes_cover(&[], "operator.read"));
    }
}
