//! Fulcio: the short-lived certificate binding a fresh key to the token's identity
//! (`POST {fulcio}/api/v2/signingCert`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;
use x509_cert::Certificate;
use x509_cert::der::{Decode, Encode};

use crate::error::{Error, Result};
use crate::keys::SigningKey;

use super::Keyless;
use super::http::{Http, excerpt};
use super::oidc::token_subject;
use super::pem::pem_certificates;

impl Keyless {
    /// Asks Fulcio for a certificate binding `key` to the token's identity; returns the
    /// leaf as DER and PEM.
    pub(super) fn certificate(
        &self,
        http: &Http,
        token: &str,
        key: &SigningKey,
    ) -> Result<(Vec<u8>, String)> {
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
                why.to_string(),
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
}
