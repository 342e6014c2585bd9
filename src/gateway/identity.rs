//! The admin's device identity: one Ed25519 key for the whole admin, kept in a 0600
//! PKCS#8 PEM file, and the v3 device-auth signature that proves it at connect
//! (PROTOCOL.md §2.6).
//!
//! Nothing here talks to the network; `client.rs` builds the signed `device` block
//! from [`DeviceIdentity::sign_v3`].

use std::fmt;
use std::fs;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ed25519_dalek::ed25519::pkcs8::KeypairBytes;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::{Signer, SigningKey};
use sha2::{Digest, Sha256};

/// The Ed25519 key the admin proves itself with to every cell's gateway.
///
/// `Debug` shows only the device id; the private key never leaves this struct
/// except as signatures.
#[derive(Clone)]
pub struct DeviceIdentity {
    signing_key: SigningKey,
    /// Lowercase hex SHA-256 of the raw 32-byte public key (`device.id`).
    device_id: String,
    /// Base64url (no padding) of the raw 32-byte public key (`device.publicKey`).
    public_key: String,
}

/// What the v3 signature binds, in the order of the signed payload (PROTOCOL.md §2.6).
#[derive(Debug, Clone, Copy)]
pub struct SignedFields<'a> {
    pub client_id: &'a str,
    pub client_mode: &'a str,
    pub role: &'a str,
    /// Exactly the `scopes` array sent in `connect`, in the same order.
    pub scopes: &'a [&'a str],
    /// The challenge `ts`, sent back as `device.signedAt`.
    pub signed_at_ms: i64,
    /// The credential actually sent: `auth.token`, else `auth.deviceToken`, else "".
    pub token: &'a str,
    /// The challenge `nonce`, verbatim.
    pub nonce: &'a str,
    pub platform: &'a str,
    pub device_family: Option<&'a str>,
}

/// The PEM label of a PKCS#8 private key, as openssl writes it.
const PEM_LABEL: &str = "PRIVATE KEY";

impl DeviceIdentity {
    /// Loads the key at `path`, or creates it there (mode 0600, parent dir 0700 if
    /// missing) when the file does not exist yet.
    ///
    /// # Errors
    ///
    /// The file cannot be read or written, is readable by group or others, or does not
    /// hold an Ed25519 PKCS#8 PEM key.
    pub fn load_or_create(path: &Path) -> anyhow::Result<DeviceIdentity> {
        match fs::metadata(path) {
            Ok(_) => return DeviceIdentity::load(path),
            Err(err) if err.kind() == ErrorKind::NotFound => {}
            Err(err) => {
                return Err(err)
                    .with_context(|| format!("cannot read device key {}", path.display()));
            }
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .with_context(|| format!("cannot create directory {}", parent.display()))?;
        }
        let identity = DeviceIdentity::from_seed(rand::random());
        let pem = identity.to_pem()?;

        // Write a private temporary file, then hard-link it into place: the key is never
        // world-readable, never half-written at `path`, and a concurrent creator loses
        // the race cleanly instead of overwriting a key that may already be paired.
        let file_name = path
            .file_name()
            .with_context(|| format!("device key path {} has no file name", path.display()))?;
        let tmp = path.with_file_name(format!(
            ".{}.tmp-{:016x}",
            file_name.to_string_lossy(),
            rand::random::<u64>()
        ));
        let written = (|| -> std::io::Result<()> {
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            file.write_all(pem.as_bytes())?;
            file.sync_all()
        })();
        if let Err(err) = written {
            let _ = fs::remove_file(&tmp);
            return Err(err).with_context(|| format!("cannot write device key {}", tmp.display()));
        }
        let linked = fs::hard_link(&tmp, path);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                tracing::info!(device_id = %identity.device_id, path = %path.display(), "created device identity");
                Ok(identity)
            }
            Err(err) if err.kind() == ErrorKind::AlreadyExists => DeviceIdentity::load(path),
            Err(err) => {
                Err(err).with_context(|| format!("cannot create device key {}", path.display()))
            }
        }
    }

    fn load(path: &Path) -> anyhow::Result<DeviceIdentity> {
        let metadata = fs::metadata(path)
            .with_context(|| format!("cannot read device key {}", path.display()))?;
        let mode = metadata.permissions().mode();
        if mode & 0o077 != 0 {
            bail!(
                "device key {} is readable by others (mode {:o}); run `chmod 600 {}`",
                path.display(),
                mode & 0o777,
                path.display()
            );
        }
        let text = fs::read_to_string(path)
            .with_context(|| format!("cannot read device key {}", path.display()))?;
        DeviceIdentity::from_pem(&text).with_context(|| {
            format!(
                "device key {} is damaged; restore it from a backup (a new key must be paired again with every cell)",
                path.display()
            )
        })
    }

    /// The identity of a fixed 32-byte Ed25519 seed (test vectors, fixtures).
    #[must_use]
    pub fn from_seed(seed: [u8; 32]) -> DeviceIdentity {
        let signing_key = SigningKey::from_bytes(&seed);
        let public_raw = signing_key.verifying_key().to_bytes();
        DeviceIdentity {
            device_id: hex::encode(Sha256::digest(public_raw)),
            public_key: URL_SAFE_NO_PAD.encode(public_raw),
            signing_key,
        }
    }

    /// `device.id`: lowercase hex SHA-256 of the raw public key.
    #[must_use]
    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    /// `device.publicKey`: base64url (no padding) of the raw 32-byte public key.
    #[must_use]
    pub fn public_key(&self) -> &str {
        &self.public_key
    }

    /// Signs the v3 payload of `fields`; returns the base64url (no padding) signature
    /// that goes in `device.signature`.
    #[must_use]
    pub fn sign_v3(&self, fields: &SignedFields<'_>) -> String {
        let payload = v3_payload(&self.device_id, fields);
        let signature = self.signing_key.sign(payload.as_bytes());
        URL_SAFE_NO_PAD.encode(signature.to_bytes())
    }

    fn to_pem(&self) -> anyhow::Result<String> {
        // PKCS#8 v1 (seed only, no public key): the form `openssl genpkey` writes and
        // OpenSSL 3.0 reads back; dalek's own encoding adds the public key (v2).
        let keypair = KeypairBytes {
            secret_key: self.signing_key.to_bytes(),
            public_key: None,
        };
        let der = keypair
            .to_pkcs8_der()
            .map_err(|err| anyhow::anyhow!("cannot encode the device key as PKCS#8: {err}"))?;
        let body = STANDARD.encode(der.as_bytes());
        let mut res = format!("-----BEGIN {PEM_LABEL}-----\n");
        for line in body.as_bytes().chunks(64) {
            res.push_str(&String::from_utf8_lossy(line));
            res.push('\n');
        }
        res.push_str(&format!("-----END {PEM_LABEL}-----\n"));
        Ok(res)
    }

    fn from_pem(text: &str) -> anyhow::Result<DeviceIdentity> {
        let begin = format!("-----BEGIN {PEM_LABEL}-----");
        let end = format!("-----END {PEM_LABEL}-----");
        let start = text
            .find(&begin)
            .context("no PEM private key block found")?;
        let rest = &text[start + begin.len()..];
        let stop = rest
            .find(&end)
            .context("PEM private key block is not terminated")?;
        let body: String = rest[..stop]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let der = STANDARD
            .decode(body)
            .context("PEM private key block is not valid base64")?;
        let signing_key = SigningKey::from_pkcs8_der(&der)
            .map_err(|err| anyhow::anyhow!("not an Ed25519 PKCS#8 key: {err}"))?;
        Ok(DeviceIdentity::from_seed(signing_key.to_bytes()))
    }
}

impl fmt::Debug for DeviceIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceIdentity")
            .field("device_id", &self.device_id)
            .finish_non_exhaustive()
    }
}

/// The exact v3 string OpenClaw's `buildDeviceAuthPayloadV3` builds and its verifier
/// checks: `v3|deviceId|clientId|mode|role|scopes|signedAt|token|nonce|platform|deviceFamily`
/// (a fake gateway rebuilds it from the `connect` params to verify a signature).
#[must_use]
pub fn v3_payload(device_id: &str, fields: &SignedFields<'_>) -> String {
    // Upstream trims and lowercases only A-Z, so `to_ascii_lowercase` is the exact match.
    let normalize = |value: &str| value.trim().to_ascii_lowercase();
    [
        "v3".to_string(),
        device_id.to_string(),
        fields.client_id.to_string(),
        fields.client_mode.to_string(),
        fields.role.to_string(),
        fields.scopes.join(","),
        fields.signed_at_ms.to_string(),
        fields.token.to_string(),
        fields.nonce.to_string(),
        normalize(fields.platform),
        normalize(fields.device_family.unwrap_or("")),
    ]
    .join("|")
}

#[cfg(test)]
mod tests {
    use super::*;

    use ed25519_dalek::{Signature, Verifier};

    const VECTOR: &str = include_str!("../../tests/fixtures/gateway/device-signature-vector.json");

    /// The fixed-seed vector that OpenClaw's own verifier accepts is reproduced byte for byte.
    #[test]
    fn reproduces_the_openclaw_signature_vector() {
        let vector: serde_json::Value = serde_json::from_str(VECTOR).unwrap();
        let text = |key: &str| vector[key].as_str().unwrap().to_string();
        let inputs = &vector["inputs"];
        let seed: [u8; 32] = hex::decode(text("seedHex")).unwrap().try_into().unwrap();
        let identity = DeviceIdentity::from_seed(seed);
        assert_eq!(identity.public_key(), text("publicKeyB64Url"));
        assert_eq!(identity.device_id(), text("deviceId"));

        let scopes: Vec<&str> = inputs["scopes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        let fields = SignedFields {
            client_id: inputs["clientId"].as_str().unwrap(),
            client_mode: inputs["clientMode"].as_str().unwrap(),
            role: inputs["role"].as_str().unwrap(),
            scopes: &scopes,
            signed_at_ms: inputs["signedAtMs"].as_i64().unwrap(),
            token: inputs["token"].as_str().unwrap(),
            nonce: inputs["nonce"].as_str().unwrap(),
            platform: inputs["platform"].as_str().unwrap(),
            device_family: inputs["deviceFamily"].as_str(),
        };
        assert_eq!(v3_payload(identity.device_id(), &fields), text("payload"));
        assert_eq!(identity.sign_v3(&fields), text("signatureB64Url"));
    }

    /// A signature verifies against the public key the gateway is given.
    #[test]
    fn signature_verifies_with_the_published_key() {
        let identity = DeviceIdentity::from_seed([9; 32]);
        let fields = SignedFields {
            client_id: "gateway-client",
            client_mode: "backend",
            role: "operator",
            scopes: &[],
            signed_at_ms: 1,
            token: "",
            nonce: "n",
            platform: " Linux",
            device_family: Some("Server"),
        };
        let payload = v3_payload(identity.device_id(), &fields);
        assert_eq!(
            payload,
            format!(
                "v3|{}|gateway-client|backend|operator||1||n|linux|server",
                identity.device_id()
            )
        );
        let key_bytes: [u8; 32] = URL_SAFE_NO_PAD
            .decode(identity.public_key())
            .unwrap()
            .try_into()
            .unwrap();
        let key = ed25519_dalek::VerifyingKey::from_bytes(&key_bytes).unwrap();
        let signature_bytes: [u8; 64] = URL_SAFE_NO_PAD
            .decode(identity.sign_v3(&fields))
            .unwrap()
            .try_into()
            .unwrap();
        key.verify(payload.as_bytes(), &Signature::from_bytes(&signature_bytes))
            .unwrap();
    }

    /// The key is created once with mode 0600, and the same key is loaded afterwards.
    #[test]
    fn creates_the_key_once_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data").join("device.pem");
        let created = DeviceIdentity::load_or_create(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "key file mode");
        let parent_mode = fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(parent_mode, 0o700, "created parent dir mode");
        let loaded = DeviceIdentity::load_or_create(&path).unwrap();
        assert_eq!(created.device_id(), loaded.device_id());
        let leftovers: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from("device.pem")]);
    }

    /// The file holds the PKCS#8 v1 PEM that openssl writes for an Ed25519 key.
    #[test]
    fn key_file_is_plain_pkcs8_pem() {
        let pem = DeviceIdentity::from_seed([7; 32]).to_pem().unwrap();
        let body: String = pem
            .lines()
            .filter(|line| !line.starts_with("-----"))
            .collect();
        let der = STANDARD.decode(body).unwrap();
        let mut expected = hex::decode("302e020100300506032b657004220420").unwrap();
        expected.extend_from_slice(&[7; 32]);
        assert_eq!(der, expected);
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{pem}");
        let loaded = DeviceIdentity::from_pem(&pem).unwrap();
        assert_eq!(
            loaded.device_id(),
            DeviceIdentity::from_seed([7; 32]).device_id()
        );
    }

    /// A key readable by others is refused with a message that says how to fix it.
    #[test]
    fn refuses_a_key_readable_by_others() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("device.pem");
        DeviceIdentity::load_or_create(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = DeviceIdentity::load_or_create(&path).unwrap_err();
        assert!(format!("{err:#}").contains("chmod 600"), "{err:#}");
    }

    /// A damaged key file is an error, not a silently replaced key.
    #[test]
    fn refuses_a_damaged_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("device.pem");
        fs::write(&path, "not a key").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let err = DeviceIdentity::load_or_create(&path).unwrap_err();
        assert!(format!("{err:#}").contains("damaged"), "{err:#}");
    }

    /// Debug output names the device but never the private key.
    #[test]
    fn debug_hides_the_private_key() {
        let identity = DeviceIdentity::from_seed([7; 32]);
        let shown = format!("{identity:?}");
        assert!(shown.contains(identity.device_id()), "{shown}");
        assert!(!shown.contains("0707"), "{shown}");
        assert!(!shown.contains("signing_key"), "{shown}");
    }
}
