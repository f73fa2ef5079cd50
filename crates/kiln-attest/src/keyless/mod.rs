//! Sigstore keyless signing (Fulcio certificate + Rekor entry) and its verification.
//!
//! Signing (`--keyless`), once per statement:
//! 1. an OIDC identity token: `$KILN_OIDC_TOKEN` if set, else GitHub Actions' token
//!    service (`$ACTIONS_ID_TOKEN_REQUEST_URL&audience=sigstore`, authorized by
//!    `$ACTIONS_ID_TOKEN_REQUEST_TOKEN`);
//! 2. a fresh P-256 key, and a Fulcio v2 certificate for it
//!    (`POST {fulcio}/api/v2/signingCert`, proof of possession = signature over the
//!    token's subject);
//! 3. the DSSE envelope signed by that key, logged to Rekor as an `intoto` v0.0.2 entry
//!    (`POST {rekor}/api/v1/log/entries`);
//! 4. a bundle v0.3 with the leaf certificate and the tlog entry (inclusion promise and
//!    proof). The key is dropped: the certificate and the log entry are the evidence.
//!
//! Keyless bundles are not deterministic (fresh key, the log's integrated time): the
//! byte-for-byte promise of kiln's evidence holds for keyed signing only.
//!
//! Why a small client of our own rather than the `sigstore` crate: see `Cargo.toml`
//! (~320 crates incl. tokio/reqwest/aws-lc-rs, async API, for two JSON POSTs).
//!
//! Verification ([`verify_bundle`]) trusts only what the policy names: the Fulcio roots
//! (`fulcio_roots`), the Rekor keys (`rekor_keys`) and the identities (issuer + subject
//! regexp). It checks the log entry (signed entry timestamp, and the inclusion proof with
//! its signed checkpoint when present, by a trusted Rekor key; the body binds this envelope's signature,
//! payload and certificate), the certificate chain up to a trusted root at the log's
//! integrated time, the identity in the certificate, and the DSSE signature by the
//! certificate's key. Signed certificate timestamps (CT) are not checked.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256, Sha384, Sha512};
use x509_cert::Certificate;
use x509_cert::der::asn1::{ObjectIdentifier, Utf8StringRef};
use x509_cert::der::{Decode, Encode};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage, SubjectAltName};

use crate::dsse::{Bundle, Envelope, EnvelopeSignature, PAYLOAD_TYPE, RawBytes, pae};
use crate::error::{Error, Result};
use crate::keys::{PublicKey, SigningKey};
use crate::policy::Policy;

/// Sigstore's public-good instance, the default when no URL is configured.
pub const DEFAULT_FULCIO_URL: &str = "https://fulcio.sigstore.dev";
pub const DEFAULT_REKOR_URL: &str = "https://rekor.sigstore.dev";
/// Environment: an OIDC token to use instead of GitHub Actions' token service.
pub const TOKEN_ENV: &str = "KILN_OIDC_TOKEN";
/// Environment: where the Sigstore services are.
pub const FULCIO_URL_ENV: &str = "KILN_FULCIO_URL";
pub const REKOR_URL_ENV: &str = "KILN_REKOR_URL";

/// Fulcio's OIDC issuer extension (v2: DER UTF8String; v1: raw bytes).
const OID_ISSUER_V2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.8");
const OID_ISSUER_V1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.1");
const OID_EKU_CODE_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.3");
const OID_SAN: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.17");
const OID_EKU: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37");
const OID_BASIC_CONSTRAINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.19");
const OID_ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const OID_ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const OID_ECDSA_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.4");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");

/// Where the Sigstore services are, and the token if the caller already has one.
#[derive(Debug, Clone)]
pub struct Keyless {
    pub fulcio_url: String,
    pub rekor_url: String,
    /// An OIDC identity token; when `None`, GitHub Actions' token service is asked.
    pub token: Option<String>,
}

impl Keyless {
    /// The configuration from `$KILN_FULCIO_URL`, `$KILN_REKOR_URL` (defaults: the
    /// public-good instance) and `$KILN_OIDC_TOKEN`. An empty or blank variable counts as
    /// unset, as cosign treats empty environment variables. The one reading of these
    /// variables: kiln-build calls this too.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Self {
        let non_empty = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        Keyless {
            fulcio_url: non_empty(FULCIO_URL_ENV).unwrap_or_else(|| DEFAULT_FULCIO_URL.into()),
            rekor_url: non_empty(REKOR_URL_ENV).unwrap_or_else(|| DEFAULT_REKOR_URL.into()),
            token: non_empty(TOKEN_ENV),
        }
    }

    /// Signs `payload` (an in-toto statement): a fresh key, a Fulcio certificate for it,
    /// a Rekor entry for the envelope. Reads `$ACTIONS_ID_TOKEN_REQUEST_*` when no token
    /// was given.
    pub fn sign(&self, payload: &[u8]) -> Result<Bundle> {
        let env = |k: &str| std::env::var(k).ok();
        let token = match &self.token {
            Some(t) => t.trim().to_string(),
            None => actions_token(&env)?,
        };
        let http = Http::new();
        let key = SigningKey::generate();
        let (leaf_der, leaf_pem) = self.certificate(&http, &token, &key)?;

        let env_sig = key.sign(&pae(PAYLOAD_TYPE, payload));
        let envelope = Envelope {
            payload: B64.encode(payload),
            payload_type: PAYLOAD_TYPE.into(),
            // Keyless envelopes name no key: the certificate in the bundle does.
            signatures: vec![EnvelopeSignature {
                keyid: String::new(),
                sig: B64.encode(&env_sig),
            }],
        };
        let entry = self.log(&http, &envelope, payload, &env_sig, &leaf_pem)?;
        // What Rekor logged must be this envelope and this certificate; a log that
        // answered with something else would give a bundle no verifier accepts.
        check_body(&entry, &envelope, payload, &leaf_der).map_err(|why| Error::KeylessService {
            service: "Rekor",
            url: self.rekor_url.clone(),
            why: format!("the logged entry does not match what was sent: {why}"),
            fix: "check that KILN_REKOR_URL points at a Rekor v1 API",
        })?;
        Ok(Bundle {
            media_type: crate::dsse::BUNDLE_MEDIA_TYPE.into(),
            verification_material: crate::dsse::VerificationMaterial {
                public_key: None,
                certificate: Some(RawBytes {
                    raw_bytes: B64.encode(&leaf_der),
                }),
                tlog_entries: vec![serde_json::to_value(&entry).expect("tlog entry serializes")],
                timestamp_verification_data: None,
            },
            dsse_envelope: envelope,
        })
    }

    /// Asks Fulcio for a certificate binding `key` to the token's identity; returns the
    /// leaf as DER and PEM.
    fn certificate(&self, http: &Http, token: &str, key: &SigningKey) -> Result<(Vec<u8>, String)> {
        let url = format!(
            "{}/api/v2/signingCert",
            self.fulcio_url.trim_end_matches('/')
        );
        let fail = |why: String, fix: &'static str| Error::KeylessService {
            service: "Fulcio",
            url: url.clone(),
            why,
            fix,
        };
        let challenge = token_subject(token)?;
        let request = serde_json::json!({
            "credentials": { "oidcIdentityToken": token },
            "publicKeyRequest": {
                "publicKey": { "algorithm": "ECDSA", "content": key.public().to_pem() },
                "proofOfPossession": B64.encode(key.sign(challenge.as_bytes())),
            },
        });
        let body = http.post_json(&url, &request).map_err(|why| {
            fail(
                why,
                "check KILN_FULCIO_URL and that the token is fresh (they expire after minutes)",
            )
        })?;
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Chain {
            certificates: Vec<String>,
        }
        #[derive(Deserialize)]
        struct WithChain {
            chain: Chain,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Response {
            signed_certificate_embedded_sct: Option<WithChain>,
            signed_certificate_detached_sct: Option<WithChain>,
        }
        let resp: Response = serde_json::from_str(&body).map_err(|e| {
            fail(
                format!("unexpected answer ({e}): {}", excerpt(&body)),
                "check that KILN_FULCIO_URL points at a Fulcio v2 API",
            )
        })?;
        let chain = resp
            .signed_certificate_embedded_sct
            .or(resp.signed_certificate_detached_sct)
            .ok_or_else(|| {
                fail(
                    format!("no certificate chain in the answer: {}", excerpt(&body)),
                    "check that KILN_FULCIO_URL points at a Fulcio v2 API",
                )
            })?;
        let leaf_pem = chain
            .chain
            .certificates
            .first()
            .ok_or_else(|| {
                fail(
                    "an empty certificate chain".into(),
                    "check that KILN_FULCIO_URL points at a Fulcio v2 API",
                )
            })?
            .clone();
        let leaf_der = pem_certificates(&leaf_pem)
            .map_err(|e| {
                fail(
                    format!("leaf certificate: {e}"),
                    "check that KILN_FULCIO_URL points at a Fulcio v2 API",
                )
            })?
            .remove(0);
        // Fulcio must have certified this key and no other.
        let cert = Certificate::from_der(&leaf_der).map_err(|e| {
            fail(
                format!("leaf certificate does not parse: {e}"),
                "check that KILN_FULCIO_URL points at a Fulcio v2 API",
            )
        })?;
        let spki = cert
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .map_err(|e| fail(e.to_string(), "report this"))?;
        if spki != key.public().spki_der() {
            return Err(fail(
                "the certificate is for another public key than the one sent".into(),
                "check that KILN_FULCIO_URL points at a trustworthy Fulcio",
            ));
        }
        Ok((leaf_der, leaf_pem))
    }

    /// Logs the envelope to Rekor as an `intoto` v0.0.2 entry.
    ///
    /// Why `intoto` v0.0.2 rather than `dsse` v0.0.1: both are accepted by Rekor, but a
    /// `dsse` proposal (`proposedContent`) differs in shape from the body Rekor stores
    /// (`signatures`, `payloadHash`), whereas an `intoto` proposal already carries the
    /// fields verifiers read from the body, in place. `@sigstore/mock` stores proposals
    /// verbatim, so only `intoto` gives a bundle that verifies against both it and the
    /// real Rekor. The shape follows sigstore-js, the client GitHub's attestations use.
    fn log(
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
        let body = http.post_json(&url, &proposed).map_err(fail)?;
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

/// The OIDC token from GitHub Actions' token service, for audience `sigstore`.
fn actions_token(env: &dyn Fn(&str) -> Option<String>) -> Result<String> {
    let (Some(url), Some(bearer)) = (
        env("ACTIONS_ID_TOKEN_REQUEST_URL"),
        env("ACTIONS_ID_TOKEN_REQUEST_TOKEN"),
    ) else {
        return Err(Error::Keyless(format!(
            "no OIDC identity token: ${TOKEN_ENV} is unset and this is not a GitHub Actions job with an ID token\n  fix: on GitHub Actions grant `permissions: id-token: write` to the job; elsewhere set ${TOKEN_ENV} to a token from your OIDC provider (audience `sigstore`)"
        )));
    };
    let sep = if url.contains('?') { '&' } else { '?' };
    let full = format!("{url}{sep}audience=sigstore");
    let body = Http::new()
        .get(&full, &format!("bearer {bearer}"))
        .map_err(|why| Error::KeylessService {
            service: "GitHub Actions OIDC token service",
            url: url.clone(),
            why,
            fix: "grant the job `permissions: id-token: write`",
        })?;
    #[derive(Deserialize)]
    struct TokenResponse {
        value: String,
    }
    let t: TokenResponse = serde_json::from_str(&body).map_err(|e| Error::KeylessService {
        service: "GitHub Actions OIDC token service",
        url,
        why: format!("no `value` in the answer ({e})"),
        fix: "grant the job `permissions: id-token: write`",
    })?;
    Ok(t.value)
}

/// The identity Fulcio's proof of possession signs: the token's `email` for the
/// email-based issuers, else its `sub` (as sigstore-js does).
fn token_subject(token: &str) -> Result<String> {
    let bad = |why: String| {
        Error::Keyless(format!(
            "the OIDC token is not a JWT ({why})\n  fix: pass the raw ID token (three base64url parts separated by dots)"
        ))
    };
    let mut parts = token.split('.');
    let (Some(_), Some(claims), Some(_)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad("fewer than three parts".into()));
    };
    let bytes = B64URL
        .decode(claims.trim_end_matches('='))
        .map_err(|e| bad(format!("claims are not base64url: {e}")))?;
    let claims: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| bad(format!("claims are not JSON: {e}")))?;
    let field = match claims["iss"].as_str() {
        Some("https://accounts.google.com" | "https://oauth2.sigstore.dev/auth") => "email",
        _ => "sub",
    };
    claims[field]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| bad(format!("no `{field}` claim")))
}

/// A blocking HTTP client with timeouts; answers with the body or a message naming the
/// status and what the service said.
struct Http(ureq::Agent);

impl Http {
    fn new() -> Self {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(60)))
            .http_status_as_error(false)
            .build();
        Http(config.into())
    }

    fn finish(
        resp: std::result::Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> std::result::Result<String, String> {
        let mut resp = resp.map_err(|e| format!("request failed: {e}"))?;
        let status = resp.status();
        let body = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| format!("cannot read the answer: {e}"))?;
        if !status.is_success() {
            return Err(format!("HTTP {status}: {}", excerpt(&body)));
        }
        Ok(body)
    }

    fn post_json(
        &self,
        url: &str,
        body: &serde_json::Value,
    ) -> std::result::Result<String, String> {
        let bytes = serde_json::to_vec(body).expect("JSON serializes");
        Self::finish(
            self.0
                .post(url)
                .header("Content-Type", "application/json")
                .header("Accept", "application/json")
                .send(&bytes[..]),
        )
    }

    fn get(&self, url: &str, authorization: &str) -> std::result::Result<String, String> {
        Self::finish(
            self.0
                .get(url)
                .header("Authorization", authorization)
                .call(),
        )
    }
}

fn excerpt(s: &str) -> String {
    let s = s.trim();
    match s.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
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

// ---------------------------------------------------------------------------------------
// Verification

/// Verifies a certificate-carrying bundle against the policy: returns who signed, or why
/// not (naming `file`).
pub fn verify_bundle(bundle: &Bundle, policy: &Policy, file: &str) -> Result<String> {
    let fail = |m: String| Error::Invalid {
        file: file.into(),
        message: m,
    };
    if policy.identities.is_empty()
        || policy.fulcio_roots.is_empty()
        || policy.rekor_keys.is_empty()
    {
        return Err(fail(format!(
            "keyless (certificate) bundle, but the policy {} lacks {}\n  fix: add [[identities]] (issuer, subject_regexp), fulcio_roots = [\"fulcio-root.pem\"] and rekor_keys = [\"rekor.pub\"] from your Sigstore instance's trusted root",
            policy.path.display(),
            [
                (policy.identities.is_empty(), "[[identities]]"),
                (policy.fulcio_roots.is_empty(), "fulcio_roots"),
                (policy.rekor_keys.is_empty(), "rekor_keys"),
            ]
            .iter()
            .filter(|(missing, _)| *missing)
            .map(|(_, n)| *n)
            .collect::<Vec<_>>()
            .join(", ")
        )));
    }
    let vm = &bundle.verification_material;
    let leaf_der = vm
        .certificate
        .as_ref()
        .map(|c| B64.decode(&c.raw_bytes))
        .transpose()
        .map_err(|e| fail(format!("certificate.rawBytes is not base64: {e}")))?
        .ok_or_else(|| fail("no certificate in the bundle".into()))?;
    let leaf = Certificate::from_der(&leaf_der)
        .map_err(|e| fail(format!("certificate does not parse as X.509: {e}")))?;
    let env = &bundle.dsse_envelope;
    let payload = env.payload_bytes(file)?;

    // 1. The log: a trusted Rekor vouches for this envelope and certificate at a time.
    if vm.tlog_entries.is_empty() {
        return Err(fail("no transparency-log entry: a keyless signature is only as good as its Rekor entry\n  fix: sign with --keyless against a Rekor instance (KILN_REKOR_URL)".into()));
    }
    let mut why = Vec::new();
    let mut logged = None;
    for (i, raw) in vm.tlog_entries.iter().enumerate() {
        let r = serde_json::from_value::<TlogEntry>(raw.clone())
            .map_err(|e| format!("tlogEntries[{i}]: {e}"))
            .and_then(|entry| {
                let t = check_tlog_entry(&entry, policy)
                    .map_err(|e| format!("tlogEntries[{i}]: {e}"))?;
                check_body(&entry, env, &payload, &leaf_der)
                    .map_err(|e| format!("tlogEntries[{i}]: {e}"))?;
                Ok((entry, t))
            });
        match r {
            Ok(v) => {
                logged = Some(v);
                break;
            }
            Err(e) => why.push(e),
        }
    }
    let Some((entry, (integrated_time, how))) = logged else {
        return Err(fail(why.join("; ")));
    };

    // 2. The certificate: issued by a trusted root, valid when the log saw the signature.
    let root = check_chain(&leaf, &policy.fulcio_roots, integrated_time).map_err(fail)?;

    // 3. The identity in it.
    let (issuer, sans) = identity(&leaf).map_err(fail)?;
    let matched = policy
        .identities
        .iter()
        .find(|id| id.issuer == issuer && sans.iter().any(|s| id.subject.is_match(s)));
    let Some(id) = matched else {
        let wanted: Vec<String> = policy
            .identities
            .iter()
            .map(|i| format!("{} / {}", i.issuer, i.subject))
            .collect();
        return Err(fail(format!(
            "certificate identity {} (issuer {issuer}) matches no policy identity (trusted: {})",
            sans.join(", "),
            wanted.join("; ")
        )));
    };

    // 4. The envelope is signed by the certificate's key.
    let spki = leaf
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| fail(e.to_string()))?;
    let key = PublicKey::from_spki_der(&spki, &format!("{file} certificate")).map_err(|e| {
        fail(format!(
            "certificate key: {e} (kiln verifies P-256 signing keys)"
        ))
    })?;
    env.verify(std::slice::from_ref(&key), file)
        .map_err(|_| fail("the DSSE signature does not verify with the certificate's key: the envelope was modified".into()))?;

    Ok(format!(
        "certificate {} (issuer {issuer}, matches `{}`) chained to Fulcio root {root}, logged at index {} ({how}, integrated {})",
        sans.join(", "),
        id.subject,
        entry.log_index,
        kiln_core::time::rfc3339(integrated_time as u64)
    ))
}

/// Checks the entry by a trusted Rekor key: the signed entry timestamp (required) and the
/// inclusion proof with its signed checkpoint (when present); returns the integrated time
/// and what was checked.
fn check_tlog_entry(
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

/// RFC 6962 inclusion of the body's leaf hash under the proof's root, and that root
/// signed in the checkpoint by the Rekor key.
fn check_inclusion_proof(
    p: &InclusionProof,
    body: &[u8],
    key: &PublicKey,
    log_id: &[u8],
) -> std::result::Result<(), String> {
    let index: u64 = p
        .log_index
        .parse()
        .map_err(|_| "inclusionProof.logIndex is not an integer".to_string())?;
    let size: u64 = p
        .tree_size
        .parse()
        .map_err(|_| "inclusionProof.treeSize is not an integer".to_string())?;
    let root = B64
        .decode(&p.root_hash)
        .map_err(|e| format!("inclusionProof.rootHash: {e}"))?;
    let hashes = p
        .hashes
        .iter()
        .map(|h| {
            B64.decode(h)
                .map_err(|e| format!("inclusionProof.hashes: {e}"))
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let leaf = {
        let mut h = Sha256::new();
        h.update([0u8]);
        h.update(body);
        h.finalize().to_vec()
    };
    let computed = merkle_root_from_proof(index, size, leaf, &hashes)?;
    if computed != root {
        return Err(
            "the inclusion proof does not lead to its root hash: the entry was modified".into(),
        );
    }
    // The checkpoint (a signed note): origin, size, base64 root, ...; blank line;
    // "— <name> base64(keyhint[4] || signature)" lines.
    let cp = &p.checkpoint.envelope;
    let split = cp
        .find("\n\n")
        .ok_or("the checkpoint has no blank line between note and signatures")?;
    let note = &cp[..split + 1];
    let mut lines = note.lines();
    let (_origin, cp_size, cp_root) = (lines.next(), lines.next(), lines.next());
    if cp_size.and_then(|s| s.parse::<u64>().ok()) != Some(size) {
        return Err("the checkpoint's tree size differs from the inclusion proof's".into());
    }
    if cp_root.and_then(|r| B64.decode(r).ok()).as_deref() != Some(root.as_slice()) {
        return Err("the checkpoint's root hash differs from the inclusion proof's".into());
    }
    let signed = cp[split + 2..].lines().any(|line| {
        let Some(rest) = line.strip_prefix("\u{2014} ") else {
            return false;
        };
        let Some((_name, sig)) = rest.split_once(' ') else {
            return false;
        };
        match B64.decode(sig.trim()) {
            Ok(b) if b.len() > 4 && b[..4] == log_id[..4.min(log_id.len())] => {
                key.verify(note.as_bytes(), &b[4..])
            }
            _ => false,
        }
    });
    if !signed {
        return Err("the checkpoint is not signed by the trusted Rekor key".into());
    }
    Ok(())
}

/// The root of a tree of `size` leaves computed from the leaf hash at `index` and its
/// audit path (RFC 6962 / RFC 9162 §2.1.3.2).
fn merkle_root_from_proof(
    index: u64,
    size: u64,
    leaf: Vec<u8>,
    hashes: &[Vec<u8>],
) -> std::result::Result<Vec<u8>, String> {
    if index >= size {
        return Err(format!(
            "inclusion proof index {index} is outside a tree of {size}"
        ));
    }
    let node = |l: &[u8], r: &[u8]| {
        let mut h = Sha256::new();
        h.update([1u8]);
        h.update(l);
        h.update(r);
        h.finalize().to_vec()
    };
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = leaf;
    for p in hashes {
        if sn == 0 {
            return Err("the inclusion proof has too many hashes".into());
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node(p, &r);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err("the inclusion proof has too few hashes".into());
    }
    Ok(r)
}

/// The log entry's body must name this envelope's signature, payload digest and
/// certificate (kinds `intoto` v0.0.2 and `dsse` v0.0.1, as Rekor canonicalizes them).
fn check_body(
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

/// Walks from `leaf` to a self-signed certificate among `roots`, checking each signature,
/// validity at `at` (unix seconds) and CA flags. Returns the root's subject.
fn check_chain(
    leaf: &Certificate,
    roots: &[Vec<u8>],
    at: i64,
) -> std::result::Result<String, String> {
    let trusted: Vec<Certificate> = roots
        .iter()
        .filter_map(|d| Certificate::from_der(d).ok())
        .collect();
    valid_at(leaf, at, "the certificate")?;
    let eku = extension(leaf, OID_EKU)
        .map(|v| ExtendedKeyUsage::from_der(v).map_err(|e| format!("extended key usage: {e}")))
        .transpose()?;
    if !eku.is_some_and(|e| e.0.contains(&OID_EKU_CODE_SIGNING)) {
        return Err(
            "the certificate is not for code signing (no codeSigning extended key usage)".into(),
        );
    }
    let mut cur = leaf.clone();
    for _ in 0..8 {
        let issuer_name = cur
            .tbs_certificate
            .issuer
            .to_der()
            .map_err(|e| e.to_string())?;
        let parent = trusted.iter().find(|c| {
            c.tbs_certificate.subject.to_der().ok().as_deref() == Some(issuer_name.as_slice())
                && verify_signed_by(&cur, c).is_ok()
        });
        let Some(parent) = parent else {
            return Err(format!(
                "the certificate chain does not lead to a trusted Fulcio root (issuer {}: not in the policy's fulcio_roots, or its signature does not verify)",
                cur.tbs_certificate.issuer
            ));
        };
        valid_at(
            parent,
            at,
            &format!("CA certificate {}", parent.tbs_certificate.subject),
        )?;
        let ca = extension(parent, OID_BASIC_CONSTRAINTS)
            .and_then(|v| BasicConstraints::from_der(v).ok())
            .is_some_and(|b| b.ca);
        if !ca {
            return Err(format!(
                "{} is not a CA certificate",
                parent.tbs_certificate.subject
            ));
        }
        if parent.tbs_certificate.subject == parent.tbs_certificate.issuer {
            return Ok(parent.tbs_certificate.subject.to_string());
        }
        cur = parent.clone();
    }
    Err("the certificate chain is longer than 8".into())
}

fn valid_at(c: &Certificate, at: i64, what: &str) -> std::result::Result<(), String> {
    let v = &c.tbs_certificate.validity;
    let from = v.not_before.to_unix_duration().as_secs() as i64;
    let to = v.not_after.to_unix_duration().as_secs() as i64;
    if at < from || at > to {
        return Err(format!(
            "{what} was not valid when the log saw the signature ({}; valid {} to {})",
            kiln_core::time::rfc3339(at.max(0) as u64),
            v.not_before,
            v.not_after
        ));
    }
    Ok(())
}

fn extension(c: &Certificate, oid: ObjectIdentifier) -> Option<&[u8]> {
    c.tbs_certificate
        .extensions
        .as_ref()?
        .iter()
        .find(|e| e.extn_id == oid)
        .map(|e| e.extn_value.as_bytes())
}

/// The OIDC issuer and the SAN values (URIs and emails) in a Fulcio certificate.
fn identity(c: &Certificate) -> std::result::Result<(String, Vec<String>), String> {
    let issuer = if let Some(v) = extension(c, OID_ISSUER_V2) {
        Utf8StringRef::from_der(v)
            .map(|s| s.as_str().to_string())
            .map_err(|e| format!("OIDC issuer extension: {e}"))?
    } else if let Some(v) = extension(c, OID_ISSUER_V1) {
        String::from_utf8(v.to_vec()).map_err(|e| format!("OIDC issuer extension: {e}"))?
    } else {
        return Err("the certificate has no OIDC issuer extension (1.3.6.1.4.1.57264.1.8): not a Fulcio certificate".into());
    };
    let san = extension(c, OID_SAN).ok_or("the certificate has no subject alternative name")?;
    let san =
        SubjectAltName::from_der(san).map_err(|e| format!("subject alternative name: {e}"))?;
    let sans: Vec<String> = san
        .0
        .iter()
        .filter_map(|g| match g {
            GeneralName::UniformResourceIdentifier(u) => Some(u.to_string()),
            GeneralName::Rfc822Name(e) => Some(e.to_string()),
            _ => None,
        })
        .collect();
    if sans.is_empty() {
        return Err("the certificate's subject alternative name has no URI or email".into());
    }
    Ok((issuer, sans))
}

/// Checks `cert`'s signature by `issuer`'s key (ECDSA P-256 or P-384 with SHA-256/384/512).
fn verify_signed_by(cert: &Certificate, issuer: &Certificate) -> std::result::Result<(), String> {
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    let tbs = cert.tbs_certificate.to_der().map_err(|e| e.to_string())?;
    let alg = cert.signature_algorithm.oid;
    let digest: Vec<u8> = if alg == OID_ECDSA_SHA256 {
        Sha256::digest(&tbs).to_vec()
    } else if alg == OID_ECDSA_SHA384 {
        Sha384::digest(&tbs).to_vec()
    } else if alg == OID_ECDSA_SHA512 {
        Sha512::digest(&tbs).to_vec()
    } else {
        return Err(format!("unsupported signature algorithm {alg}"));
    };
    let sig = cert.signature.raw_bytes();
    let spki = &issuer.tbs_certificate.subject_public_key_info;
    let point = spki.subject_public_key.raw_bytes();
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
    let ok = match curve {
        Some(c) if c == OID_P256 => {
            let k = p256::ecdsa::VerifyingKey::from_sec1_bytes(point).map_err(|e| e.to_string())?;
            let s = p256::ecdsa::Signature::from_der(sig).map_err(|e| e.to_string())?;
            k.verify_prehash(&digest, &s).is_ok()
        }
        Some(c) if c == OID_P384 => {
            let k = p384::ecdsa::VerifyingKey::from_sec1_bytes(point).map_err(|e| e.to_string())?;
            let s = p384::ecdsa::Signature::from_der(sig).map_err(|e| e.to_string())?;
            k.verify_prehash(&digest, &s).is_ok()
        }
        _ => return Err("issuer key is not ECDSA P-256 or P-384".into()),
    };
    if ok {
        Ok(())
    } else {
        Err("signature does not verify".into())
    }
}

/// The DER certificates in a PEM text.
pub fn pem_certificates(text: &str) -> std::result::Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    for line in text.lines().map(str::trim) {
        match (line, cur.as_mut()) {
            ("-----BEGIN CERTIFICATE-----", None) => cur = Some(String::new()),
            ("-----END CERTIFICATE-----", Some(b)) => {
                out.push(
                    B64.decode(b.as_bytes())
                        .map_err(|e| format!("bad base64 in certificate: {e}"))?,
                );
                cur = None;
            }
            (l, Some(b)) => b.push_str(l),
            _ => {}
        }
    }
    if out.is_empty() {
        return Err("no PEM certificate found".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf_hash(b: &[u8]) -> Vec<u8> {
        let mut h = Sha256::new();
        h.update([0u8]);
        h.update(b);
        h.finalize().to_vec()
    }
    fn node(l: &[u8], r: &[u8]) -> Vec<u8> {
        let mut h = Sha256::new();
        h.update([1u8]);
        h.update(l);
        h.update(r);
        h.finalize().to_vec()
    }

    /// A bundle `kiln build --keyless` wrote against `testdata/sigstore-mock` (Fulcio with
    /// a P-384 root, Rekor), with that instance's root and Rekor key. Verification uses
    /// the log's integrated time, not the clock, so the fixture does not expire.
    const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/keyless");
    const SUBJECT: &str =
        "https://github.com/kiln-build/kiln/.github/workflows/release.yml@refs/tags/v1.0.0";

    fn fixture_policy(issuer: &str, subject_regexp: &str) -> Policy {
        let d = std::path::Path::new(FIXTURE);
        Policy::parse(
            &d.join("policy.toml"),
            &format!(
                "fulcio_roots = [\"fulcio-root.pem\"]\nrekor_keys = [\"rekor.pub\"]\n[[identities]]\nissuer = \"{issuer}\"\nsubject_regexp = \"{subject_regexp}\"\n"
            ),
        )
        .unwrap()
    }

    fn fixture_bundle() -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(format!("{FIXTURE}/bundle.sigstore.json")).unwrap())
            .unwrap()
    }

    fn check(v: &serde_json::Value, policy: &Policy) -> std::result::Result<String, String> {
        let b = Bundle::parse(&serde_json::to_vec(v).unwrap(), "b.sigstore.json")
            .map_err(|e| e.to_string())?;
        verify_bundle(&b, policy, "b.sigstore.json").map_err(|e| e.to_string())
    }

    #[test]
    fn fixture_verifies_and_every_tamper_is_caught() {
        let good = fixture_policy(
            "https://token.actions.githubusercontent.com",
            "^https://github\\\\.com/kiln-build/kiln/.*@refs/tags/v.*$",
        );
        let ok = check(&fixture_bundle(), &good).unwrap();
        assert!(
            ok.contains(SUBJECT) && ok.contains("signed entry timestamp + inclusion proof"),
            "{ok}"
        );

        type Tamper = fn(&mut serde_json::Value);
        let cases: Vec<(&str, Tamper, &str)> = vec![
            (
                "integrated time",
                |v| v["verificationMaterial"]["tlogEntries"][0]["integratedTime"] = "1".into(),
                "signed entry timestamp does not verify",
            ),
            (
                "log index",
                |v| v["verificationMaterial"]["tlogEntries"][0]["logIndex"] = "7".into(),
                "signed entry timestamp does not verify",
            ),
            (
                "no promise",
                |v| {
                    v["verificationMaterial"]["tlogEntries"][0]
                        .as_object_mut()
                        .unwrap()
                        .remove("inclusionPromise");
                },
                "no inclusion promise",
            ),
            (
                "log id",
                |v| {
                    v["verificationMaterial"]["tlogEntries"][0]["logId"]["keyId"] =
                        B64.encode([0u8; 32]).into()
                },
                "not a Rekor key the policy trusts",
            ),
            (
                "no entry",
                |v| v["verificationMaterial"]["tlogEntries"] = serde_json::json!([]),
                "no transparency-log entry",
            ),
            (
                "payload",
                |v| v["dsseEnvelope"]["payload"] = B64.encode(b"{}").into(),
                "payload hash",
            ),
            (
                "signature",
                |v| {
                    let sig = B64
                        .decode(v["dsseEnvelope"]["signatures"][0]["sig"].as_str().unwrap())
                        .unwrap();
                    let mut s = p256::ecdsa::Signature::from_der(&sig).unwrap().to_bytes();
                    s[40] ^= 1;
                    v["dsseEnvelope"]["signatures"][0]["sig"] = B64
                        .encode(p256::ecdsa::Signature::from_slice(&s).unwrap().to_der())
                        .into();
                },
                "logged signature is not the envelope's",
            ),
            (
                "certificate",
                |v| {
                    let mut der = B64
                        .decode(
                            v["verificationMaterial"]["certificate"]["rawBytes"]
                                .as_str()
                                .unwrap(),
                        )
                        .unwrap();
                    let n = der.len();
                    der[n - 10] ^= 1; // inside the CA's signature
                    v["verificationMaterial"]["certificate"]["rawBytes"] = B64.encode(der).into();
                },
                "logged certificate is not the bundle's",
            ),
        ];
        for (what, tamper, expect) in cases {
            let mut v = fixture_bundle();
            tamper(&mut v);
            let e = check(&v, &good).expect_err(what);
            assert!(
                e.contains(expect) && e.contains("b.sigstore.json"),
                "{what}: {e}"
            );
        }

        // Identities: another subject, another issuer.
        let e = check(
            &fixture_bundle(),
            &fixture_policy(
                "https://token.actions.githubusercontent.com",
                "^https://github\\\\.com/evil/",
            ),
        )
        .unwrap_err();
        assert!(
            e.contains("matches no policy identity") && e.contains(SUBJECT),
            "{e}"
        );
        let e = check(
            &fixture_bundle(),
            &fixture_policy("https://accounts.google.com", ".*"),
        )
        .unwrap_err();
        assert!(e.contains("matches no policy identity"), "{e}");
    }

    #[test]
    fn a_root_the_leaf_does_not_chain_to_is_refused() {
        // The log checks pass (same Rekor key), but the policy trusts another "root" —
        // here the leaf itself, which did not sign itself and is no CA.
        let d = tempfile::tempdir().unwrap();
        std::fs::copy(format!("{FIXTURE}/rekor.pub"), d.path().join("rekor.pub")).unwrap();
        let b = fixture_bundle();
        let leaf = B64
            .decode(
                b["verificationMaterial"]["certificate"]["rawBytes"]
                    .as_str()
                    .unwrap(),
            )
            .unwrap();
        let pem = format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            B64.encode(&leaf)
        );
        std::fs::write(d.path().join("fulcio-root.pem"), pem).unwrap();
        let p = Policy::parse(&d.path().join("p.toml"), "fulcio_roots = [\"fulcio-root.pem\"]\nrekor_keys = [\"rekor.pub\"]\n[[identities]]\nissuer = \"https://token.actions.githubusercontent.com\"\nsubject_regexp = \".*\"\n").unwrap();
        let e = check(&b, &p).unwrap_err();
        assert!(e.contains("does not lead to a trusted Fulcio root"), "{e}");
    }

    #[test]
    fn merkle_inclusion_in_small_trees() {
        // Tree of 5: root = H(H(H(a,b),H(c,d)), e).
        let l: Vec<_> = (0..5u8).map(|i| leaf_hash(&[i])).collect();
        let ab = node(&l[0], &l[1]);
        let cd = node(&l[2], &l[3]);
        let abcd = node(&ab, &cd);
        let root = node(&abcd, &l[4]);
        assert_eq!(
            merkle_root_from_proof(
                2,
                5,
                l[2].clone(),
                &[l[3].clone(), ab.clone(), l[4].clone()]
            )
            .unwrap(),
            root
        );
        assert_eq!(
            merkle_root_from_proof(4, 5, l[4].clone(), std::slice::from_ref(&abcd)).unwrap(),
            root
        );
        assert_eq!(
            merkle_root_from_proof(0, 1, l[0].clone(), &[]).unwrap(),
            l[0]
        );
        // Wrong sibling, wrong count, index outside.
        assert_ne!(
            merkle_root_from_proof(
                2,
                5,
                l[2].clone(),
                &[l[1].clone(), ab.clone(), l[4].clone()]
            )
            .unwrap(),
            root
        );
        assert!(merkle_root_from_proof(4, 5, l[4].clone(), &[]).is_err());
        assert!(merkle_root_from_proof(4, 5, l[4].clone(), &[abcd.clone(), abcd.clone()]).is_err());
        assert!(merkle_root_from_proof(5, 5, l[0].clone(), &[]).is_err());
    }

    #[test]
    fn token_subject_and_bad_tokens() {
        let claims = |c: &str| format!("e30.{}.", B64URL.encode(c));
        assert_eq!(token_subject(&claims(r#"{"iss":"https://token.actions.githubusercontent.com","sub":"repo:o/r:ref:refs/heads/main"}"#)).unwrap(), "repo:o/r:ref:refs/heads/main");
        assert_eq!(
            token_subject(&claims(
                r#"{"iss":"https://accounts.google.com","sub":"1","email":"a@b.c"}"#
            ))
            .unwrap(),
            "a@b.c"
        );
        for bad in [
            "",
            "abc",
            "a.!!!.c",
            &claims("[]"),
            &claims(r#"{"iss":"x"}"#),
        ] {
            let e = token_subject(bad).unwrap_err().to_string();
            assert!(e.contains("not a JWT") && e.contains("fix:"), "{e}");
        }
    }

    #[test]
    fn no_token_outside_actions_names_the_fix() {
        let e = actions_token(&|_| None).unwrap_err().to_string();
        assert!(
            e.contains(TOKEN_ENV) && e.contains("id-token: write"),
            "{e}"
        );
    }

    #[test]
    fn unreachable_fulcio_is_a_clear_error() {
        // A port nothing listens on (bound, then closed).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let k = Keyless {
            fulcio_url: format!("http://127.0.0.1:{port}"),
            rekor_url: format!("http://127.0.0.1:{port}"),
            token: Some(format!("e30.{}.", B64URL.encode(r#"{"sub":"s"}"#))),
        };
        let e = k.sign(b"{}").unwrap_err().to_string();
        assert!(
            e.contains("Fulcio")
                && e.contains(&format!("127.0.0.1:{port}/api/v2/signingCert"))
                && e.contains("fix:"),
            "{e}"
        );
    }

    #[test]
    fn from_env_defaults_to_the_public_instance() {
        let k = Keyless::from_env(&|_| None);
        assert_eq!(
            (k.fulcio_url.as_str(), k.rekor_url.as_str(), k.token),
            (DEFAULT_FULCIO_URL, DEFAULT_REKOR_URL, None)
        );
        let k = Keyless::from_env(&|v| Some(format!("x-{v}")));
        assert_eq!(k.fulcio_url, "x-KILN_FULCIO_URL");
        assert_eq!(k.token.as_deref(), Some("x-KILN_OIDC_TOKEN"));
    }

    /// An empty (or blank) variable is unset, as cosign treats empty environment
    /// variables: an exported-but-empty `KILN_OIDC_TOKEN` falls back to GitHub Actions'
    /// token service instead of sending Fulcio an empty token, and empty URLs fall back
    /// to the public-good instance instead of an empty URL. (kiln-build once read these
    /// variables itself and kept both as given.)
    #[test]
    fn from_env_treats_empty_variables_as_unset() {
        for empty in ["", "  ", "\n"] {
            let k = Keyless::from_env(&|_| Some(empty.to_string()));
            assert_eq!(k.token, None, "{empty:?}");
            assert_eq!(k.fulcio_url, DEFAULT_FULCIO_URL, "{empty:?}");
            assert_eq!(k.rekor_url, DEFAULT_REKOR_URL, "{empty:?}");
        }
        let only = |set: &'static str, value: &'static str| {
            move |k: &str| (k == set).then(|| value.to_string())
        };
        let k = Keyless::from_env(&only(TOKEN_ENV, ""));
        assert_eq!(k.token, None);
        let k = Keyless::from_env(&only(TOKEN_ENV, "tok"));
        assert_eq!(k.token.as_deref(), Some("tok"));
        assert_eq!(k.fulcio_url, DEFAULT_FULCIO_URL);
        let k = Keyless::from_env(&only(REKOR_URL_ENV, "http://127.0.0.1:1"));
        assert_eq!(
            (k.fulcio_url.as_str(), k.rekor_url.as_str()),
            (DEFAULT_FULCIO_URL, "http://127.0.0.1:1")
        );
    }
}
