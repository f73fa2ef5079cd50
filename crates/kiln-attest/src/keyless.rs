//! Sigstore keyless signing (Fulcio certificate + Rekor entry) for GitHub Actions.
//!
//! NOT IMPLEMENTED YET: `--keyless` fails with a clear error instead of pretending. The
//! plan (see the report in the commit history): a small blocking HTTP client against
//! Fulcio v2 (`/api/v2/signingCert`) and Rekor v1 (`/api/v1/log/entries`, dsse kind),
//! tested against `@sigstore/mock` on 127.0.0.1.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use crate::dsse::Bundle;
use crate::error::{Error, Result};
use crate::policy::Policy;

/// Where the Sigstore services are.
#[derive(Debug, Clone)]
pub struct Keyless {
    pub fulcio_url: String,
    pub rekor_url: String,
    /// The OIDC identity token (on Actions: from ACTIONS_ID_TOKEN_REQUEST_URL).
    pub token: Option<String>,
}

impl Keyless {
    pub fn sign(&self, _payload: &[u8]) -> Result<Bundle> {
        Err(Error::Keyless(
            "keyless signing is not implemented in this version of kiln\n  fix: sign with a key (`cargo xtask keygen`, then --key FILE or $KILN_SIGNING_KEY)".into(),
        ))
    }
}

/// Verifies a certificate-carrying bundle against the policy's identities.
pub fn verify_bundle(_bundle: &Bundle, _policy: &Policy, file: &str) -> Result<String> {
    Err(Error::Invalid {
        file: file.into(),
        message: "keyless (certificate) bundles cannot be verified by this version of kiln".into(),
    })
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
