//! Device identity proof, written from PROTOCOL.md §2.6: the v3 (and legacy v2)
//! signature payload, Ed25519 verification, and `device.id` = hex SHA-256 of the raw
//! public key. Independent of `mtp::gateway` on purpose, so the two can check each other.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};

/// What the v3 payload binds, taken from the `connect` params.
pub struct PayloadInput<'a> {
    pub device_id: &'a str,
    pub client_id: &'a str,
    pub client_mode: &'a str,
    pub role: &'a str,
    pub scopes: &'a [String],
    pub signed_at_ms: i64,
    /// `auth.token`, else `auth.deviceToken`, else `auth.bootstrapToken`, else empty.
    pub token: &'a str,
    pub nonce: &'a str,
    pub platform: &'a str,
    pub device_family: &'a str,
}

/// Which payload version a signature matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadVersion {
    V3,
    V2,
}

/// Trims and lowercases ASCII `A-Z` only, as the gateway's `normalizeDeviceMetadataForAuth`.
#[must_use]
pub fn normalize_metadata(value: &str) -> String {
    value.trim().to_ascii_lowercase()
}

/// v2's fields, then the normalized platform and device family.
#[must_use]
pub fn payload_v3(input: &PayloadInput<'_>) -> String {
    let metadata = [
        normalize_metadata(input.platform),
        normalize_metadata(input.device_family),
    ];
    payload("v3", input, &metadata)
}

#[must_use]
pub fn payload_v2(input: &PayloadInput<'_>) -> String {
    payload("v2", input, &[])
}

/// `version|deviceId|clientId|clientMode|role|scopes|signedAtMs|token|nonce`, then
/// `tail`, joined with `|`.
fn payload(version: &str, input: &PayloadInput<'_>, tail: &[String]) -> String {
    let scopes = input.scopes.join(",");
    let signed_at_ms = input.signed_at_ms.to_string();
    let mut fields = vec![
        version,
        input.device_id,
        input.client_id,
        input.client_mode,
        input.role,
        &scopes,
        &signed_at_ms,
        input.token,
        input.nonce,
    ];
    fields.extend(tail.iter().map(String::as_str));
    fields.join("|")
}

/// Decodes base64url or standard base64, with or without padding.
#[must_use]
pub fn decode_base64_any(text: &str) -> Option<Vec<u8>> {
    let trimmed = text.trim().trim_end_matches('=');
    if let Ok(bytes) = URL_SAFE_NO_PAD.decode(trimmed) {
        return Some(bytes);
    }
    STANDARD_NO_PAD.decode(trimmed).ok()
}

/// The raw 32-byte Ed25519 public key from `device.publicKey`: base64url of the raw
/// key (what clients should send) or a PEM SPKI block (also accepted by the gateway).
#[must_use]
pub fn raw_public_key(public_key: &str) -> Option<[u8; 32]> {
    let text = public_key.trim();
    let bytes = if text.starts_with("-----BEGIN") {
        let body: String = text
            .lines()
            .filter(|line| !line.starts_with("-----"))
            .collect();
        let der = decode_base64_any(&body)?;
        // An Ed25519 SPKI is a fixed 12-byte prefix followed by the raw key.
        const SPKI_PREFIX: [u8; 12] = [
            0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
        ];
        if der.len() != 44 || der[..12] != SPKI_PREFIX {
            return None;
        }
        der[12..].to_vec()
    } else {
        decode_base64_any(text)?
    };
    bytes.try_into().ok()
}

/// Lowercase hex SHA-256 of the raw public key; `None` when the key does not decode.
#[must_use]
pub fn derive_device_id(public_key: &str) -> Option<String> {
    let raw = raw_public_key(public_key)?;
    Some(hex::encode(Sha256::digest(raw)))
}

/// The base64url form the gateway stores and reports for a device key.
#[must_use]
pub fn normalized_public_key(public_key: &str) -> Option<String> {
    let raw = raw_public_key(public_key)?;
    VerifyingKey::from_bytes(&raw).ok()?;
    Some(URL_SAFE_NO_PAD.encode(raw))
}

#[must_use]
pub fn verify(public_key: &str, payload: &str, signature_b64: &str) -> bool {
    let Some(raw) = raw_public_key(public_key) else {
        return false;
    };
    let Ok(key) = VerifyingKey::from_bytes(&raw) else {
        return false;
    };
    let Some(sig_bytes) = decode_base64_any(signature_b64) else {
        return false;
    };
    let Ok(sig_array) = <[u8; 64]>::try_from(sig_bytes.as_slice()) else {
        return false;
    };
    let signature = Signature::from_bytes(&sig_array);
    key.verify_strict(payload.as_bytes(), &signature).is_ok()
}

/// Tries v3 first, then the legacy v2 string, as the gateway does.
#[must_use]
pub fn verify_payload(
    public_key: &str,
    signature: &str,
    input: &PayloadInput<'_>,
) -> Option<PayloadVersion> {
    if verify(public_key, &payload_v3(input), signature) {
        return Some(PayloadVersion::V3);
    }
    if verify(public_key, &payload_v2(input), signature) {
        return Some(PayloadVersion::V2);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    /// The recorded vector (transcripts/device-signature-vector.json), which
    /// OpenClaw's own verifier accepts.
    const VECTOR: &str = r#"{
 "seedHex": "0707070707070707070707070707070707070707070707070707070707070707",
 "publicKeyB64Url": "6kpsY-KcUgq-9VB7Ey7F-ZVHdq6-vnuSQh7qaRRG0iw",
 "deviceId": "fe812c12f3ab4ce6ac5db69ac352f906cb1b11ef43fb33e252ef7ff552263889",
 "payload": "v3|fe812c12f3ab4ce6ac5db69ac352f906cb1b11ef43fb33e252ef7ff552263889|gateway-client|backend|operator|operator.admin,operator.read,operator.write,operator.approvals,operator.pairing|1795477441640|example-shared-token|8233b59f-8f51-4861-b890-afd6569e97a0|linux|",
 "signatureB64Url": "pocDPEdWYepeHhka3EBMeUq8c-tJI3C-0RH2BCdSRNVf4INtqYFlzwYUCRsev-cL3LfWassbjMM8goDJlK2gAA"
}"#;

    fn vector() -> serde_json::Value {
        serde_json::from_str(VECTOR).unwrap()
    }

    fn vector_input(scopes: &[String]) -> PayloadInput<'_> {
        PayloadInput {
            device_id: "fe812c12f3ab4ce6ac5db69ac352f906cb1b11ef43fb33e252ef7ff552263889",
            client_id: "gateway-client",
            client_mode: "backend",
            role: "operator",
            scopes,
            signed_at_ms: 1795477441640,
            token: "example-shared-token",
            nonce: "8233b59f-8f51-4861-b890-afd6569e97a0",
            platform: "Linux ",
            device_family: "",
        }
    }

    fn vector_scopes() -> Vec<String> {
        [
            "operator.admin",
            "operator.read",
            "operator.write",
            "operator.approvals",
            "operator.pairing",
        ]
        .map(String::from)
        .to_vec()
    }

    /// The verifier accepts the vector that OpenClaw's verifier accepts.
    #[test]
    fn accepts_the_recorded_vector() {
        let v = vector();
        let public_key = v["publicKeyB64Url"].as_str().unwrap();
        let signature = v["signatureB64Url"].as_str().unwrap();
        assert!(verify(
            public_key,
            v["payload"].as_str().unwrap(),
            signature
        ));
        let scopes = vector_scopes();
        let input = vector_input(&scopes);
        assert_eq!(payload_v3(&input), v["payload"].as_str().unwrap());
        assert_eq!(
            verify_payload(public_key, signature, &input),
            Some(PayloadVersion::V3)
        );
    }

    /// `device.id` is the hex SHA-256 of the raw key, and the seed gives that key.
    #[test]
    fn device_id_is_sha256_of_the_raw_key() {
        let v = vector();
        let public_key = v["publicKeyB64Url"].as_str().unwrap();
        assert_eq!(
            derive_device_id(public_key).as_deref(),
            v["deviceId"].as_str()
        );
        let seed: [u8; 32] = hex::decode(v["seedHex"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        let signing = SigningKey::from_bytes(&seed);
        assert_eq!(
            URL_SAFE_NO_PAD.encode(signing.verifying_key().to_bytes()),
            public_key
        );
    }

    /// Any change to a signed field (here: scope order, nonce, token) breaks the proof.
    #[test]
    fn rejects_a_payload_that_differs_in_any_field() {
        let v = vector();
        let public_key = v["publicKeyB64Url"].as_str().unwrap();
        let signature = v["signatureB64Url"].as_str().unwrap();
        let mut scopes = vector_scopes();
        scopes.swap(0, 1);
        assert_eq!(
            verify_payload(public_key, signature, &vector_input(&scopes)),
            None
        );
        let scopes = vector_scopes();
        let mut input = vector_input(&scopes);
        input.nonce = "other";
        assert_eq!(verify_payload(public_key, signature, &input), None);
        let mut input = vector_input(&scopes);
        input.token = "";
        assert_eq!(verify_payload(public_key, signature, &input), None);
    }

    /// Garbage keys and signatures are refused, never a panic.
    #[test]
    fn garbage_is_refused_without_panicking() {
        assert!(!verify("", "x", ""));
        assert!(!verify("!!!", "x", "???"));
        assert!(!verify(
            "6kpsY-KcUgq-9VB7Ey7F-ZVHdq6-vnuSQh7qaRRG0iw",
            "x",
            "AAAA"
        ));
        assert_eq!(derive_device_id("not base64 at all"), None);
        assert_eq!(derive_device_id("AAAA"), None);
    }

    /// A legacy v2 signature is still accepted, and reported as such.
    #[test]
    fn accepts_a_legacy_v2_signature() {
        let signing = SigningKey::from_bytes(&[9u8; 32]);
        let public_key = URL_SAFE_NO_PAD.encode(signing.verifying_key().to_bytes());
        let device_id = derive_device_id(&public_key).unwrap();
        let scopes = vec!["operator.read".to_string()];
        let input = PayloadInput {
            device_id: &device_id,
            client_id: "cli",
            client_mode: "cli",
            role: "operator",
            scopes: &scopes,
            signed_at_ms: 1,
            token: "t",
            nonce: "n",
            platform: "linux",
            device_family: "",
        };
        let signature =
            URL_SAFE_NO_PAD.encode(signing.sign(payload_v2(&input).as_bytes()).to_bytes());
        assert_eq!(
            verify_payload(&public_key, &signature, &input),
            Some(PayloadVersion::V2)
        );
    }

    /// PEM SPKI keys decode to the same raw key.
    #[test]
    fn accepts_a_pem_public_key() {
        let signing = SigningKey::from_bytes(&[7u8; 32]);
        let mut der = vec![
            0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
        ];
        der.extend_from_slice(&signing.verifying_key().to_bytes());
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(&der)
        );
        assert_eq!(
            derive_device_id(&pem).as_deref(),
            Some("fe812c12f3ab4ce6ac5db69ac352f906cb1b11ef43fb33e252ef7ff552263889")
        );
    }
}
