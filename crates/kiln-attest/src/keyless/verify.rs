//! Verifying a certificate-carrying bundle against a policy: the log entry, the chain to
//! a trusted Fulcio root at the log's time, the identity, and the DSSE signature.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use x509_cert::Certificate;
use x509_cert::der::{Decode, Encode};

use crate::dsse::Bundle;
use crate::error::{Error, Result};
use crate::keys::PublicKey;
use crate::policy::Policy;

use super::rekor::{TlogEntry, check_body, check_tlog_entry};
use super::x509::{check_chain, identity};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
