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
//!
//! One file per concern: `oidc` (the identity token), `http` (the small client),
//! `fulcio` (the certificate), `rekor` (log entries: logging, bundle form, checks),
//! `merkle` (inclusion proofs), `x509` (certificate chain and identity), `pem`, and
//! `verify` (the verification of a bundle). This module holds the configuration
//! ([`Keyless`]) and the signing flow.

mod fulcio;
mod http;
mod merkle;
mod oidc;
mod pem;
mod rekor;
mod verify;
mod x509;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use crate::dsse::{Bundle, Envelope, EnvelopeSignature, PAYLOAD_TYPE, RawBytes, pae};
use crate::error::{Error, Result};
use crate::keys::SigningKey;

pub use pem::pem_certificates;
pub use rekor::{Checkpoint, InclusionPromise, InclusionProof, KindVersion, LogId, TlogEntry};
pub use verify::verify_bundle;

use http::Http;
use oidc::actions_token;
use rekor::check_body;

/// Sigstore's public-good instance, the default when no URL is configured.
pub const DEFAULT_FULCIO_URL: &str = "https://fulcio.sigstore.dev";
pub const DEFAULT_REKOR_URL: &str = "https://rekor.sigstore.dev";
/// Environment: an OIDC token to use instead of GitHub Actions' token service.
pub const TOKEN_ENV: &str = "KILN_OIDC_TOKEN";
/// Environment: where the Sigstore services are.
pub const FULCIO_URL_ENV: &str = "KILN_FULCIO_URL";
pub const REKOR_URL_ENV: &str = "KILN_REKOR_URL";

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
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;

    use super::*;

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
