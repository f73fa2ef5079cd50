//! Rekor, the transparency log: logging the envelope (`POST {rekor}/api/v1/log/entries`),
//! the v1 API's entry and its bundle form ([`TlogEntry`]), and the checks of an entry:
//! its signed entry timestamp by a trusted Rekor key, and that its body binds this
//! envelope's signature, payload and certificate.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::dsse::Envelope;
use crate::error::{Error, Result};
use crate::policy::Policy;

use super::Keyless;
use super::http::{Http, excerpt};
use super::merkle::check_inclusion_proof;
use super::pem::pem_certificates;

impl Keyless {
    /// Logs the envelope to Rekor as an `intoto` v0.0.2 entry.
    ///
    /// Why `intoto` v0.0.2 rather than `dsse` v0.0.1: both are accepted by Rekor, but a
    /// `dsse` proposal (`proposedContent`) differs in shape from the body Rekor stores
    /// (`signatures`, `payloadHash`), whereas an `intoto` proposal already carries the
    /// fields verifiers read from the body, in place. `@sigstore/mock` stores proposals
    /// verbatim, so only `intoto` gives a bundle that verifies against both it and the
    /// real Rekor. The shape follows sigstore-js, the client GitHub's attestations use.
    pub(super) fn log(
        &self,
        http: &Http,
        envelope: &Envelope,
        payload: &[u8],
        sig: &[u8],
        leaf_pem: &str,
    ) -> Result<TlogEntry> {
        let url = format!(
            "{}/api/v1/log/entries",
            self.rekor_url.trim_end_matches('/')
        );
        let fail = |why: String| Error::KeylessService {
            service: "Rekor",
            url: url.clone(),
            why,
            fix: "check KILN_REKOR_URL (a Rekor v1 API)",
        };
        // Rekor recomputes this hash: the envelope with base64 payload and signature and
        // the signer's PEM, canonical JSON.
        let hashed = serde_json::json!({
            "payloadType": envelope.payload_type,
            "payload": envelope.payload,
            "signatures": [{ "sig": B64.encode(sig), "publicKey": leaf_pem }],
        });
        let envelope_hash = hex::encode(Sha256::digest(
            kiln_core::canonical::to_vec(&hashed).expect("JSON serializes"),
        ));
        let proposed = serde_json::json!({
            "apiVersion": "0.0.2",
            "kind": "intoto",
            "spec": { "content": {
                // Rekor's intoto type wants payload and signature base64-encoded twice.
                "envelope": {
                    "payloadType": envelope.payload_type,
                    "payload": B64.encode(&envelope.payload),
                    "signatures": [{
                        "sig": B64.encode(B64.encode(sig)),
                        "publicKey": B64.encode(leaf_pem),
                    }],
                },
                "hash": { "algorithm": "sha256", "value": envelope_hash },
                "payloadHash": { "algorithm": "sha256", "value": hex::encode(Sha256::digest(payload)) },
            }},
        });
        let body = http
            .post_json(&url, &proposed)
            .map_err(|e| fail(e.to_string()))?;
        let entries: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&body)
            .map_err(|e| fail(format!("unexpected answer ({e}): {}", excerpt(&body))))?;
        let [(_uuid, raw)] =
            <[_; 1]>::try_from(entries.into_iter().collect::<Vec<_>>()).map_err(|v| {
                fail(format!(
                    "expected exactly one entry in the answer, got {}",
                    v.len()
                ))
            })?;
        let v1: RekorV1Entry = serde_json::from_value(raw)
            .map_err(|e| fail(format!("unexpected entry ({e}): {}", excerpt(&body))))?;
        v1.into_bundle_entry().map_err(fail)
    }
}

/// A Rekor v1 API log entry, as `POST /api/v1/log/entries` answers.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RekorV1Entry {
    body: String,
    integrated_time: i64,
    #[serde(rename = "logID")]
    log_id: String,
    log_index: i64,
    verification: Option<RekorV1Verification>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RekorV1Verification {
    signed_entry_timestamp: Option<String>,
    inclusion_proof: Option<RekorV1Proof>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RekorV1Proof {
    log_index: i64,
    tree_size: i64,
    root_hash: String,
    hashes: Vec<String>,
    checkpoint: String,
}

impl RekorV1Entry {
    /// The bundle's form: byte fields base64 instead of hex, 64-bit integers as strings.
    fn into_bundle_entry(self) -> std::result::Result<TlogEntry, String> {
        let hex_b64 = |h: &str, what: &str| {
            hex::decode(h)
                .map(|b| B64.encode(b))
                .map_err(|e| format!("{what} is not hex: {e}"))
        };
        let body = B64
            .decode(&self.body)
            .map_err(|e| format!("entry body is not base64: {e}"))?;
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Kind {
            kind: String,
            api_version: String,
        }
        let kind: Kind = serde_json::from_slice(&body)
            .map_err(|e| format!("entry body has no kind/apiVersion: {e}"))?;
        let verification = self.verification.unwrap_or(RekorV1Verification {
            signed_entry_timestamp: None,
            inclusion_proof: None,
        });
        let inclusion_proof = match verification.inclusion_proof {
            Some(p) => Some(InclusionProof {
                log_index: p.log_index.to_string(),
                root_hash: hex_b64(&p.root_hash, "rootHash")?,
                tree_size: p.tree_size.to_string(),
                hashes: p
                    .hashes
                    .iter()
                    .map(|h| hex_b64(h, "inclusion proof hash"))
                    .collect::<std::result::Result<_, _>>()?,
                checkpoint: Checkpoint {
                    envelope: p.checkpoint,
                },
            }),
            None => None,
        };
        if verification.signed_entry_timestamp.is_none() && inclusion_proof.is_none() {
            return Err(
                "the entry has neither a signed entry timestamp nor an inclusion proof".into(),
            );
        }
        Ok(TlogEntry {
            log_index: self.log_index.to_string(),
            log_id: LogId {
                key_id: hex_b64(&self.log_id, "logID")?,
            },
            kind_version: KindVersion {
                kind: kind.kind,
                version: kind.api_version,
            },
            integrated_time: self.integrated_time.to_string(),
            inclusion_promise: verification
                .signed_entry_timestamp
                .map(|s| InclusionPromise {
                    signed_entry_timestamp: s,
                }),
            inclusion_proof,
            canonicalized_body: self.body,
        })
    }
}

/// A transparency-log entry in a bundle v0.3 (protobuf JSON: bytes base64, int64 as
/// strings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TlogEntry {
    pub log_index: String,
    pub log_id: LogId,
    pub kind_version: KindVersion,
    pub integrated_time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inclusion_promise: Option<InclusionPromise>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inclusion_proof: Option<InclusionProof>,
    pub canonicalized_body: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LogId {
    pub key_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KindVersion {
    pub kind: String,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct InclusionPromise {
    pub signed_entry_timestamp: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct InclusionProof {
    pub log_index: String,
    pub root_hash: String,
    pub tree_size: String,
    pub hashes: Vec<String>,
    pub checkpoint: Checkpoint,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    pub envelope: String,
}

// The `Err(String)`s of this module are the "why" of a FAIL line in `verify`'s report
// (or of an `Error::KeylessService`, which names the service and the fix): report text,
// not errors with sources of their own, so `String` is the model.
/// Checks the entry by a trusted Rekor key: the signed entry timestamp (required) and the
/// inclusion proof with its signed checkpoint (when present); returns the integrated time
/// and what was checked.
pub(super) fn check_tlog_entry(
    entry: &TlogEntry,
    policy: &Policy,
) -> std::result::Result<(i64, String), String> {
    let log_id = B64
        .decode(&entry.log_id.key_id)
        .map_err(|e| format!("logId.keyId is not base64: {e}"))?;
    let log_id_hex = hex::encode(&log_id);
    let (_, key) = policy
        .rekor_keys
        .iter()
        .find(|(_, k)| k.keyid() == log_id_hex)
        .ok_or_else(|| {
            format!(
                "logged by {log_id_hex}, which is not a Rekor key the policy trusts (rekor_keys)"
            )
        })?;
    let body = B64
        .decode(&entry.canonicalized_body)
        .map_err(|e| format!("canonicalizedBody is not base64: {e}"))?;
    let integrated_time: i64 = entry.integrated_time.parse().map_err(|_| {
        format!(
            "integratedTime `{}` is not an integer",
            entry.integrated_time
        )
    })?;
    let log_index: i64 = entry
        .log_index
        .parse()
        .map_err(|_| format!("logIndex `{}` is not an integer", entry.log_index))?;
    // The integrated time decides whether the short-lived certificate was valid, so it
    // must be signed: only the signed entry timestamp covers it (an inclusion proof
    // shows the body is in the log, not when it got there).
    let p = entry.inclusion_promise.as_ref().ok_or(
        "no inclusion promise (signed entry timestamp): the log's integrated time is not signed, so the certificate's validity cannot be checked",
    )?;
    // Rekor's signed entry timestamp: its signature over these four fields.
    let set_payload = serde_json::json!({
        "body": entry.canonicalized_body,
        "integratedTime": integrated_time,
        "logID": log_id_hex,
        "logIndex": log_index,
    });
    let msg = kiln_core::canonical::to_vec(&set_payload).expect("JSON serializes");
    let sig = B64
        .decode(&p.signed_entry_timestamp)
        .map_err(|e| format!("signedEntryTimestamp is not base64: {e}"))?;
    if !key.verify(&msg, &sig) {
        return Err("the signed entry timestamp does not verify with the trusted Rekor key: the entry was modified".into());
    }
    let mut how = vec!["signed entry timestamp"];
    if let Some(p) = &entry.inclusion_proof {
        check_inclusion_proof(p, &body, key, &log_id)?;
        how.push("inclusion proof");
    }
    Ok((integrated_time, how.join(" + ")))
}

/// The log entry's body must name this envelope's signature, payload digest and
/// certificate (kinds `intoto` v0.0.2 and `dsse` v0.0.1, as Rekor canonicalizes them).
pub(super) fn check_body(
    entry: &TlogEntry,
    env: &Envelope,
    payload: &[u8],
    leaf_der: &[u8],
) -> std::result::Result<(), String> {
    let body: serde_json::Value = B64
        .decode(&entry.canonicalized_body)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or("canonicalizedBody is not base64 JSON")?;
    let (kind, version) = (body["kind"].as_str(), body["apiVersion"].as_str());
    if kind != Some(entry.kind_version.kind.as_str())
        || version != Some(entry.kind_version.version.as_str())
    {
        return Err(format!(
            "kindVersion {}/{} differs from the body's {:?}/{:?}",
            entry.kind_version.kind, entry.kind_version.version, kind, version
        ));
    }
    let [sig] = env.signatures.as_slice() else {
        return Err("the envelope must have exactly one signature".into());
    };
    let env_sig = B64
        .decode(&sig.sig)
        .map_err(|e| format!("envelope signature: {e}"))?;
    let spec = &body["spec"];
    let (sigs, payload_hash) = match (kind, version) {
        (Some("intoto"), Some("0.0.2")) => (
            &spec["content"]["envelope"]["signatures"],
            &spec["content"]["payloadHash"],
        ),
        (Some("dsse"), Some("0.0.1")) => (&spec["signatures"], &spec["payloadHash"]),
        _ => {
            return Err(format!(
                "entry kind {}/{} is not one kiln checks (intoto 0.0.2, dsse 0.0.1)",
                entry.kind_version.kind, entry.kind_version.version
            ));
        }
    };
    let [logged] = sigs.as_array().map(Vec::as_slice).unwrap_or_default() else {
        return Err("the log entry must hold exactly one signature".into());
    };
    let (logged_sig, logged_key) = if kind == Some("intoto") {
        // Base64 of the base64 signature, base64 of the PEM.
        let sig = logged["sig"]
            .as_str()
            .and_then(|s| B64.decode(s).ok())
            .and_then(|s| B64.decode(s).ok());
        (sig, logged["publicKey"].as_str())
    } else {
        (
            logged["signature"]
                .as_str()
                .and_then(|s| B64.decode(s).ok()),
            logged["verifier"].as_str(),
        )
    };
    if logged_sig.as_deref() != Some(env_sig.as_slice()) {
        return Err("the logged signature is not the envelope's".into());
    }
    let logged_cert = logged_key
        .and_then(|k| B64.decode(k).ok())
        .and_then(|pem| String::from_utf8(pem).ok())
        .and_then(|pem| pem_certificates(&pem).ok())
        .and_then(|mut c| (!c.is_empty()).then(|| c.remove(0)));
    if logged_cert.as_deref() != Some(leaf_der) {
        return Err("the logged certificate is not the bundle's".into());
    }
    if payload_hash["algorithm"] != "sha256"
        || payload_hash["value"].as_str() != Some(hex::encode(Sha256::digest(payload)).as_str())
    {
        return Err("the logged payload hash is not the envelope payload's sha256".into());
    }
    Ok(())
}
