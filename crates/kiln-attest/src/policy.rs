//! Verification policy: which signers are trusted and which attestations must be present.
//!
//! ```toml
//! [[keys]]
//! path = "kiln.pub"                      # relative to the policy file
//!
//! [[identities]]                         # keyless: Fulcio certificate identity
//! issuer = "https://token.actions.githubusercontent.com"
//! subject_regexp = "^https://github.com/kiln-build/kiln/\\.github/workflows/.*@refs/tags/v.*$"
//! # keyless needs both: the Fulcio root (and intermediates) and the Rekor public key
//! # of the Sigstore instance, relative to the policy file
//! fulcio_roots = ["fulcio-root.pem"]
//! rekor_keys = ["rekor.pub"]
//!
//! [[require]]
//! predicate_type = "https://slsa.dev/provenance/v1"
//! build_type = "https://github.com/kiln-build/kiln/buildtypes/oci-image/v1"
//! builder_id = "https://github.com/kiln-build/kiln/builders/local/v1"   # exact, or
//! # builder_id_regexp = "^https://github.com/kiln-build/.*$"
//! lineage = ["source", "transform", "policy_version"]
//! sbom = true                            # the provenance names an SBOM subject
//!
//! [[require]]
//! predicate_type = "https://cyclonedx.org/bom"
//!
//! # Admission, on any kiln-built image (read from its signed provenance):
//! base_allowlist = ["ghcr.io/acme/base@sha256:...", "ghcr.io/acme/approved/*"]
//! deny_latest = true                     # no `latest`/untagged image or base reference
//!
//! [[require]]                            # `kiln controls attest`
//! predicate_type = "https://kiln.dev/attestations/controls/v1"
//! controls_pass = ["SC-01", "SC-02"]     # these must be listed and pass, and/or
//! all_controls_pass = true               # every control listed must pass
//! ```
//!
//! Parsed strictly like `kiln.toml`: an unknown key is an error naming key, line and file
//! (a misspelt `bulder_id` must not silently turn a check off).

use std::path::{Path, PathBuf};

use regex::Regex;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::keys::PublicKey;
use crate::provenance::LINEAGE_KEYS;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default)]
    keys: Vec<RawKey>,
    #[serde(default)]
    identities: Vec<RawIdentity>,
    #[serde(default, rename = "require")]
    requires: Vec<Requirement>,
    /// PEM file(s) of the Fulcio root CA(s) trusted for keyless certificates.
    #[serde(default)]
    fulcio_roots: Vec<PathBuf>,
    /// PEM public key(s) of the Rekor log(s) trusted to time-stamp keyless signatures.
    #[serde(default)]
    rekor_keys: Vec<PathBuf>,
    /// Admission: the base images an image may be built on (kiln.toml's
    /// `[policy] base_allowlist` grammar), checked against the signed provenance.
    #[serde(default)]
    base_allowlist: Vec<String>,
    /// Admission: refuse an image whose tag, or whose base's reference, is `latest` or
    /// missing.
    #[serde(default)]
    deny_latest: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    path: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIdentity {
    issuer: String,
    subject_regexp: String,
}

/// A keyless identity: the OIDC issuer and a regexp the certificate's SAN must match.
#[derive(Debug, Clone)]
pub struct Identity {
    pub issuer: String,
    pub subject: Regex,
}

/// One required attestation.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requirement {
    pub predicate_type: String,
    pub build_type: Option<String>,
    pub builder_id: Option<String>,
    pub builder_id_regexp: Option<String>,
    #[serde(default)]
    pub lineage: Vec<String>,
    #[serde(default)]
    pub sbom: bool,
    /// Control attestation (`https://kiln.dev/attestations/controls/v1`): these control
    /// ids must be in it and have passed.
    #[serde(default)]
    pub controls_pass: Vec<String>,
    /// Control attestation: every control it lists must have passed.
    #[serde(default)]
    pub all_controls_pass: bool,
}

#[derive(Debug, Clone)]
pub struct Policy {
    pub path: PathBuf,
    pub keys: Vec<(PathBuf, PublicKey)>,
    pub identities: Vec<Identity>,
    /// Fulcio root certificates (DER) for keyless bundles.
    pub fulcio_roots: Vec<Vec<u8>>,
    /// Rekor public keys: a keyless certificate lives minutes, so only a trusted log's
    /// integrated time shows it was valid when the signature was made.
    pub rekor_keys: Vec<(PathBuf, PublicKey)>,
    pub requires: Vec<Requirement>,
    /// Admission rules on someone else's image: the base must be on this allowlist
    /// (`None`: any base).
    pub base_allowlist: Option<kiln_core::contract::Allowlist>,
    pub deny_latest: bool,
}

impl Policy {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Policy {
            path: path.into(),
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self> {
        let err = |message: String| Error::Policy {
            path: path.into(),
            message,
        };
        let raw: RawPolicy =
            kiln_core::strict_toml::from_str(text).map_err(|e| err(e.into_message()))?;
        let base_allowlist = if raw.base_allowlist.is_empty() {
            None
        } else {
            Some(
                kiln_core::contract::Allowlist::parse(&raw.base_allowlist)
                    .map_err(|e| err(format!("base_allowlist{e}")))?,
            )
        };
        let base = path.parent().unwrap_or(Path::new("."));
        let mut keys = Vec::new();
        for (i, k) in raw.keys.iter().enumerate() {
            let p = base.join(&k.path);
            let key = PublicKey::load(&p).map_err(|e| err(format!("keys[{i}].path: {e}")))?;
            keys.push((p, key));
        }
        let mut identities = Vec::new();
        for (i, id) in raw.identities.iter().enumerate() {
            let subject = Regex::new(&id.subject_regexp)
                .map_err(|e| err(format!("identities[{i}].subject_regexp: {e}")))?;
            identities.push(Identity {
                issuer: id.issuer.clone(),
                subject,
            });
        }
        let mut fulcio_roots = Vec::new();
        for (i, r) in raw.fulcio_roots.iter().enumerate() {
            let p = base.join(r);
            let text = std::fs::read_to_string(&p)
                .map_err(|e| err(format!("fulcio_roots[{i}]: {}: {e}", p.display())))?;
            fulcio_roots.extend(
                crate::keyless::pem_certificates(&text)
                    .map_err(|e| err(format!("fulcio_roots[{i}]: {e}")))?,
            );
        }
        let mut rekor_keys = Vec::new();
        for (i, k) in raw.rekor_keys.iter().enumerate() {
            let p = base.join(k);
            let key = PublicKey::load(&p).map_err(|e| err(format!("rekor_keys[{i}]: {e}")))?;
            rekor_keys.push((p, key));
        }
        if !identities.is_empty() && (fulcio_roots.is_empty() || rekor_keys.is_empty()) {
            return Err(err("[[identities]] (keyless) need fulcio_roots and rekor_keys: without them no certificate chain or signing time can be checked\n  fix: add fulcio_roots = [\"fulcio-root.pem\"] and rekor_keys = [\"rekor.pub\"] from your Sigstore instance's trusted root".into()));
        }
        if keys.is_empty() && identities.is_empty() {
            return Err(err("no [[keys]] and no [[identities]]: nothing would be trusted\n  fix: add `[[keys]] path = \"kiln.pub\"` or a keyless [[identities]] entry".into()));
        }
        for (i, r) in raw.requires.iter().enumerate() {
            for l in &r.lineage {
                if !LINEAGE_KEYS.contains(&l.as_str()) {
                    return Err(err(format!(
                        "require[{i}].lineage: unknown tag `{l}`\n  fix: use {}",
                        LINEAGE_KEYS.join(", ")
                    )));
                }
            }
            if let Some(re) = &r.builder_id_regexp {
                Regex::new(re).map_err(|e| err(format!("require[{i}].builder_id_regexp: {e}")))?;
            }
        }
        Ok(Policy {
            path: path.into(),
            keys,
            identities,
            fulcio_roots,
            rekor_keys,
            requires: raw.requires,
            base_allowlist,
            deny_latest: raw.deny_latest,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_field_named_with_line() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("p.toml");
        let e = Policy::parse(
            &p,
            "[[require]]\npredicate_type = \"x\"\nbulder_id = \"y\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("bulder_id") && e.contains("line 3") && e.contains("p.toml"),
            "{e}"
        );
    }

    #[test]
    fn keyless_identities_need_fulcio_roots_and_rekor_keys() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("p.toml");
        let e = Policy::parse(
            &p,
            "[[identities]]\nissuer = \"https://token.actions.githubusercontent.com\"\nsubject_regexp = \".*\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("fulcio_roots") && e.contains("rekor_keys") && e.contains("fix:"),
            "{e}"
        );
    }

    #[test]
    fn keys_relative_to_policy_and_nothing_trusted_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        crate::keys::keygen(&d.path().join("kiln")).unwrap();
        let p = d.path().join("p.toml");
        let pol = Policy::parse(&p, "[[keys]]\npath = \"kiln.pub\"\n[[require]]\npredicate_type = \"x\"\nlineage = [\"source\"]\n").unwrap();
        assert_eq!(pol.keys.len(), 1);
        assert!(
            Policy::parse(&p, "")
                .unwrap_err()
                .to_string()
                .contains("nothing would be trusted")
        );
        let e = Policy::parse(&p, "[[keys]]\npath = \"kiln.pub\"\n[[require]]\npredicate_type = \"x\"\nlineage = [\"sauce\"]\n").unwrap_err().to_string();
        assert!(e.contains("sauce"), "{e}");
    }
}
