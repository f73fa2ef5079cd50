//! X.509: the Fulcio certificate chain up to a trusted root (signatures, validity at the
//! log's integrated time, CA and code-signing flags) and the identity a certificate names
//! (OIDC issuer, subject alternative names).

use sha2::{Digest as _, Sha256, Sha384, Sha512};
use x509_cert::Certificate;
use x509_cert::der::asn1::{ObjectIdentifier, Utf8StringRef};
use x509_cert::der::{Decode, Encode};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage, SubjectAltName};

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

// The `Err(String)`s of this module are the "why" of a FAIL line in `verify`'s report
// (or of an `Error::KeylessService`, which names the service and the fix): report text,
// not errors with sources of their own, so `String` is the model.
/// Walks from `leaf` to a self-signed certificate among `roots`, checking each signature,
/// validity at `at` (unix seconds) and CA flags. Returns the root's subject.
pub(super) fn check_chain(
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
pub(super) fn identity(c: &Certificate) -> std::result::Result<(String, Vec<String>), String> {
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
