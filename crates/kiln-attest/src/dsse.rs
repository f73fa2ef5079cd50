//! DSSE envelopes (<https://github.com/secure-systems-lab/dsse>) carrying in-toto
//! statements, and Sigstore bundles v0.3 wrapping them.
//!
//! Both are kiln's own serde types, parsed with `deny_unknown_fields`: a verifier that
//! ignored an unexpected field would let a tampered file through unnoticed.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::keys::{PublicKey, SigningKey};

/// The DSSE payload type of an in-toto statement.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// Media type of a Sigstore bundle v0.3.
pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Envelope {
    /// Base64 of the statement bytes.
    pub payload: String,
    pub payload_type: String,
    pub signatures: Vec<EnvelopeSignature>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvelopeSignature {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub keyid: String,
    /// Base64 of the DER ECDSA signature over the PAE.
    pub sig: String,
}

/// DSSE pre-authentication encoding: what is actually signed, binding the payload type.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

impl Envelope {
    /// Signs `payload` (an in-toto statement) with `key`.
    pub fn sign(payload: &[u8], key: &SigningKey) -> Self {
        let sig = key.sign(&pae(PAYLOAD_TYPE, payload));
        Envelope {
            payload: B64.encode(payload),
            payload_type: PAYLOAD_TYPE.into(),
            signatures: vec![EnvelopeSignature {
                keyid: key.public().keyid().to_string(),
                sig: B64.encode(sig),
            }],
        }
    }

    /// Parses an envelope strictly; `file` names it in errors.
    pub fn parse(bytes: &[u8], file: &str) -> Result<Self> {
        let env: Envelope = parse_strict(bytes, file)?;
        if env.payload_type != PAYLOAD_TYPE {
            return Err(invalid(
                file,
                format!(
                    "payloadType is `{}`, expected `{PAYLOAD_TYPE}`",
                    env.payload_type
                ),
            ));
        }
        if env.signatures.is_empty() {
            return Err(invalid(file, "no signature in the envelope"));
        }
        Ok(env)
    }

    pub fn payload_bytes(&self, file: &str) -> Result<Vec<u8>> {
        B64.decode(&self.payload)
            .map_err(|e| invalid(file, format!("payload is not base64 ({e})")))
    }

    /// The first signature made by one of `keys` that verifies, as that key's id.
    pub fn verify(&self, keys: &[PublicKey], file: &str) -> Result<String> {
        let payload = self.payload_bytes(file)?;
        let msg = pae(&self.payload_type, &payload);
        let mut tried = Vec::new();
        for s in &self.signatures {
            let sig = B64
                .decode(&s.sig)
                .map_err(|e| invalid(file, format!("signature is not base64 ({e})")))?;
            for k in keys
                .iter()
                .filter(|k| s.keyid.is_empty() || s.keyid == k.keyid())
            {
                if k.verify(&msg, &sig) {
                    return Ok(k.keyid().to_string());
                }
            }
            tried.push(if s.keyid.is_empty() {
                "(no keyid)".to_string()
            } else {
                s.keyid.clone()
            });
        }
        let trusted: Vec<&str> = keys.iter().map(PublicKey::keyid).collect();
        Err(invalid(
            file,
            format!(
                "no valid signature by a trusted key (signature keyids: {}; trusted: {})",
                tried.join(", "),
                if trusted.is_empty() {
                    "none".into()
                } else {
                    trusted.join(", ")
                }
            ),
        ))
    }
}

/// A Sigstore bundle v0.3 (<https://github.com/sigstore/protobuf-specs>) in its
/// protobuf-JSON form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Bundle {
    pub media_type: String,
    pub verification_material: VerificationMaterial,
    pub dsse_envelope: Envelope,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VerificationMaterial {
    /// Keyed: names the key (its id). Exactly one of `public_key` / `certificate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<PublicKeyHint>,
    /// Keyless: the Fulcio leaf certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<RawBytes>,
    /// Transparency-log entries (empty for offline keyed signing). Kept as JSON: kiln
    /// writes what Rekor answered and does not re-interpret it.
    pub tlog_entries: Vec<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_verification_data: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicKeyHint {
    pub hint: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawBytes {
    /// Base64 DER.
    pub raw_bytes: String,
}

impl Bundle {
    /// A keyed bundle: the envelope plus the hint naming the key; no log entry (offline).
    pub fn keyed(envelope: Envelope, key: &PublicKey) -> Self {
        Bundle {
            media_type: BUNDLE_MEDIA_TYPE.into(),
            verification_material: VerificationMaterial {
                public_key: Some(PublicKeyHint {
                    hint: key.keyid().to_string(),
                }),
                certificate: None,
                tlog_entries: Vec::new(),
                timestamp_verification_data: None,
            },
            dsse_envelope: envelope,
        }
    }

    pub fn parse(bytes: &[u8], file: &str) -> Result<Self> {
        let b: Bundle = parse_strict(bytes, file)?;
        if b.media_type != BUNDLE_MEDIA_TYPE {
            return Err(invalid(
                file,
                format!(
                    "mediaType is `{}`, expected `{BUNDLE_MEDIA_TYPE}`",
                    b.media_type
                ),
            ));
        }
        let vm = &b.verification_material;
        if vm.public_key.is_some() == vm.certificate.is_some() {
            return Err(invalid(
                file,
                "verificationMaterial must hold exactly one of publicKey and certificate",
            ));
        }
        if b.dsse_envelope.payload_type != PAYLOAD_TYPE || b.dsse_envelope.signatures.len() != 1 {
            return Err(invalid(
                file,
                format!(
                    "dsseEnvelope must be an {PAYLOAD_TYPE} envelope with exactly one signature"
                ),
            ));
        }
        Ok(b)
    }
}

pub(crate) fn parse_strict<T: serde::de::DeserializeOwned>(bytes: &[u8], file: &str) -> Result<T> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let v = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let at = e.path().to_string();
        invalid(
            file,
            if at == "." {
                e.inner().to_string()
            } else {
                format!("{at}: {}", e.inner())
            },
        )
    })?;
    de.end().map_err(|e| invalid(file, e.to_string()))?;
    Ok(v)
}

pub(crate) fn invalid(file: &str, message: impl Into<String>) -> Error {
    Error::Invalid {
        file: file.to_string(),
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_the_spec_example() {
        // From the DSSE protocol document.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
    }

    #[test]
    fn sign_verify_and_reject_wrong_key_or_payload() {
        let k = SigningKey::generate();
        let other = SigningKey::generate();
        let env = Envelope::sign(b"{\"a\":1}", &k);
        assert_eq!(env, Envelope::sign(b"{\"a\":1}", &k));
        assert_eq!(
            env.verify(&[other.public().clone(), k.public().clone()], "e")
                .unwrap(),
            k.public().keyid()
        );
        let e = env
            .verify(&[other.public().clone()], "env.json")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("env.json") && e.contains("no valid signature"),
            "{e}"
        );
        let mut bad = env.clone();
        bad.payload = B64.encode(b"{\"a\":2}");
        assert!(bad.verify(&[k.public().clone()], "e").is_err());
    }

    #[test]
    fn strict_parsing_names_unknown_fields() {
        let k = SigningKey::generate();
        let b = Bundle::keyed(Envelope::sign(b"x", &k), k.public());
        let mut v = serde_json::to_value(&b).unwrap();
        assert!(Bundle::parse(&serde_json::to_vec(&v).unwrap(), "b").is_ok());
        v["verificationMaterial"]["extra"] = 1.into();
        let e = Bundle::parse(&serde_json::to_vec(&v).unwrap(), "b.json")
            .unwrap_err()
            .to_string();
        assert!(e.contains("b.json") && e.contains("extra"), "{e}");
    }
}
