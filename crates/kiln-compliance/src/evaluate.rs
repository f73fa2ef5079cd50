//! Judging an evidence pack with a catalog: the [`ControlsPredicate`].
//!
//! The pack is checked whole first ([`crate::pack::verify`]: every file is what
//! `manifest.json` says and nothing else is there but `attestation/`); a pack changed after
//! packing is an error, not a failed control. Then each control's globs are matched
//! against the manifest's paths (never the filesystem), each assertion runs over the
//! matched files, and the control passes when every glob matched a file and every
//! assertion passed. Same catalog, same pack: same predicate.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kiln_core::Digest;

use crate::assertions::{self, Ctx, File};
use crate::catalog::Catalog;
use crate::pack::{Entry, PackError};
use crate::predicate::{
    AssertionResult, ControlResult, ControlsPredicate, FileRef, PackRef, Tally, Verdict,
};

#[derive(Debug, thiserror::Error)]
pub enum EvaluateError {
    /// The pack is not whole (a file modified, missing or added after packing).
    #[error(transparent)]
    Pack(#[from] PackError),
    /// The `policy` of a `signed_provenance` assertion cannot be loaded.
    #[error("control `{control}`: signed_provenance policy {}: {message}", path.display())]
    Policy {
        control: String,
        path: PathBuf,
        message: String,
    },
    #[error("{}: cannot read", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl kiln_core::Hint for EvaluateError {
    fn hint(&self) -> Option<String> {
        match self {
            EvaluateError::Pack(e) => e.hint(),
            EvaluateError::Policy { .. } => Some(
                "the policy is a `kiln verify` policy (TOML), named relative to the catalog file"
                    .into(),
            ),
            EvaluateError::Read { .. } => None,
        }
    }
}

/// The glob options: `*` and `?` do not cross a `/`, so `scans/*.sarif` means the files
/// directly under `scans/` and `*.json` the top of the pack.
const MATCH: glob::MatchOptions = glob::MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

/// Evaluates every control of `catalog` against the pack at `pack`, after checking the
/// pack is whole.
pub fn evaluate(catalog: &Catalog, pack: &Path) -> Result<ControlsPredicate, EvaluateError> {
    let verified = crate::pack::verify(pack)?;
    evaluate_verified(catalog, pack, &verified)
}

/// [`evaluate`] of a pack the caller has just checked (`verified` is what
/// [`crate::pack::verify`] returned for `pack`), so its files are hashed once.
pub fn evaluate_verified(
    catalog: &Catalog,
    pack: &Path,
    verified: &crate::pack::Verified,
) -> Result<ControlsPredicate, EvaluateError> {
    let manifest = &verified.manifest;
    let mut controls = Vec::new();
    for control in &catalog.controls {
        let mut failures = Vec::new();
        let mut matched: BTreeMap<&str, &Entry> = BTreeMap::new();
        for g in &control.evidence {
            // Checked when the catalog was parsed.
            let pattern = glob::Pattern::new(g).expect("catalog globs are valid");
            let mut any = false;
            for e in &manifest.files {
                if pattern.matches_with(&e.path, MATCH) {
                    matched.insert(e.path.as_str(), e);
                    any = true;
                }
            }
            if !any {
                failures.push(format!("evidence `{g}` matched no file in the pack"));
            }
        }
        let mut files = Vec::new();
        for e in matched.values() {
            let p = pack.join(&e.path);
            let bytes = std::fs::read(&p).map_err(|source| EvaluateError::Read {
                path: p.clone(),
                source,
            })?;
            // verify() hashed these bytes a moment ago; a change since is tampering too.
            if Digest::of(&bytes) != e.sha256 {
                return Err(PackError::Modified {
                    path: p,
                    why: "changed while the controls were evaluated".into(),
                }
                .into());
            }
            files.push(File { entry: e, bytes });
        }
        let cx = Ctx {
            control: &control.id,
            pack,
            manifest,
            catalog_dir: catalog.dir(),
            globs_matched: failures.is_empty(),
        };
        let mut results = Vec::new();
        for a in &control.asserts {
            let outcome = assertions::check(a, &cx, &files)?;
            let (result, detail) = match outcome {
                Ok(d) => (Verdict::Pass, d),
                Err(d) => {
                    failures.push(format!("{}: {d}", a.kind()));
                    (Verdict::Fail, d)
                }
            };
            results.push(AssertionResult {
                kind: a.kind().to_string(),
                result,
                detail,
            });
        }
        controls.push(ControlResult {
            id: control.id.clone(),
            name: control.name.clone(),
            result: if failures.is_empty() {
                Verdict::Pass
            } else {
                Verdict::Fail
            },
            evidence: files
                .iter()
                .map(|f| FileRef {
                    path: f.entry.path.clone(),
                    sha256: f.entry.sha256,
                })
                .collect(),
            assertions: results,
            failures,
        });
    }
    let passed = controls
        .iter()
        .filter(|c| c.result == Verdict::Pass)
        .count();
    Ok(ControlsPredicate {
        catalog: FileRef {
            path: catalog.path.display().to_string(),
            sha256: catalog.sha256,
        },
        pack: PackRef {
            manifest_sha256: verified.manifest_sha256,
            image: manifest.image.clone(),
            digest: manifest.digest,
        },
        summary: Tally {
            total: controls.len(),
            passed,
            failed: controls.len() - passed,
        },
        controls,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::catalog::Assertion;
    use crate::pack::{Manifest, Role};
    use kiln_attest::dsse::{Bundle, Envelope};
    use kiln_core::canonical;

    fn testdata() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/compliance")
    }

    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            let t = to.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                copy_dir(&e.path(), &t);
            } else {
                std::fs::copy(e.path(), t).unwrap();
            }
        }
    }

    /// A temporary copy of the fixtures, with `provenance.json` signed by a fresh key into
    /// `provenance.sigstore.json` and the key's public half beside the catalog's policy.
    pub(crate) struct Fixture {
        _dir: tempfile::TempDir,
        pub root: PathBuf,
        pub pack: PathBuf,
        pub key: kiln_attest::SigningKey,
    }

    impl Fixture {
        pub(crate) fn new() -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path().to_path_buf();
            copy_dir(&testdata(), &root);
            let key = kiln_attest::SigningKey::generate();
            std::fs::write(root.join("kiln.pub"), key.public().to_pem()).unwrap();
            let f = Fixture {
                pack: root.join("pack"),
                root,
                _dir: dir,
                key,
            };
            let stmt = std::fs::read(f.pack.join("provenance.json")).unwrap();
            f.sign("provenance.sigstore.json", &stmt, &f.key);
            f
        }

        /// Signs `payload` with `key` into the bundle `name` of the pack.
        pub(crate) fn sign(&self, name: &str, payload: &[u8], key: &kiln_attest::SigningKey) {
            let bundle = Bundle::keyed(Envelope::sign(payload, key), key.public());
            self.set(name, &canonical::to_vec(&bundle).unwrap(), Role::Provenance);
        }

        pub(crate) fn manifest(&self) -> Manifest {
            serde_json::from_slice(&std::fs::read(self.pack.join("manifest.json")).unwrap())
                .unwrap()
        }

        fn write_manifest(&self, mut m: Manifest) {
            m.files.sort_by(|a, b| a.path.cmp(&b.path));
            std::fs::write(
                self.pack.join("manifest.json"),
                canonical::to_vec_pretty(&m).unwrap(),
            )
            .unwrap();
        }

        /// Writes `rel` in the pack and lists it in the manifest, as a repack would.
        pub(crate) fn set(&self, rel: &str, bytes: &[u8], role: Role) {
            let p = self.pack.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, bytes).unwrap();
            let mut m = self.manifest();
            m.files.retain(|e| e.path != rel);
            m.files.push(Entry {
                path: rel.into(),
                sha256: Digest::of(bytes),
                size: bytes.len() as u64,
                role,
            });
            self.write_manifest(m);
        }

        /// Edits the JSON file `rel` of the pack (and its manifest entry).
        pub(crate) fn edit(&self, rel: &str, f: impl FnOnce(&mut serde_json::Value)) {
            let mut v: serde_json::Value =
                serde_json::from_slice(&std::fs::read(self.pack.join(rel)).unwrap()).unwrap();
            f(&mut v);
            let role = self
                .manifest()
                .files
                .iter()
                .find(|e| e.path == rel)
                .map(|e| e.role)
                .unwrap();
            self.set(rel, &serde_json::to_vec_pretty(&v).unwrap(), role);
        }

        pub(crate) fn remove(&self, rel: &str) {
            std::fs::remove_file(self.pack.join(rel)).unwrap();
            let mut m = self.manifest();
            m.files.retain(|e| e.path != rel);
            self.write_manifest(m);
        }

        pub(crate) fn catalog(&self) -> Catalog {
            Catalog::load(&self.root.join("control_catalog.yaml")).unwrap()
        }

        /// A catalog of one control with `evidence` and the assertions `asserts` (YAML
        /// list items), beside the fixture's policy.
        pub(crate) fn one(&self, evidence: &str, asserts: &str) -> ControlResult {
            let text = format!(
                "version: 1\ncontrols:\n  - id: T-1\n    name: test\n    evidence: {evidence}\n    assert:\n{asserts}"
            );
            let c = Catalog::parse(&self.root.join("one.yaml"), &text).unwrap();
            evaluate(&c, &self.pack).unwrap().controls.remove(0)
        }
    }

    /// The control failed, and only for a reason containing `why`.
    pub(crate) fn fails_with(c: &ControlResult, why: &str) {
        assert_eq!(c.result, Verdict::Fail, "{c:#?}");
        assert!(
            c.failures.iter().any(|f| f.contains(why)),
            "expected a failure with `{why}`: {:#?}",
            c.failures
        );
    }

    #[test]
    fn the_fixture_catalog_passes_every_control() {
        let f = Fixture::new();
        let catalog = f.catalog();
        let p = evaluate(&catalog, &f.pack).unwrap();
        for c in &p.controls {
            assert_eq!(c.result, Verdict::Pass, "{c:#?}");
            assert!(c.failures.is_empty());
        }
        assert_eq!(p.summary.total, 8);
        assert_eq!((p.summary.passed, p.summary.failed), (8, 0));
        assert!(p.all_pass());
        // Every assertion type ran.
        let kinds: std::collections::BTreeSet<&str> = p
            .controls
            .iter()
            .flat_map(|c| c.assertions.iter().map(|a| a.kind.as_str()))
            .collect();
        assert_eq!(kinds.len(), crate::catalog::ASSERTION_TYPES.len());
        // The references.
        let manifest = std::fs::read(f.pack.join("manifest.json")).unwrap();
        assert_eq!(p.pack.manifest_sha256, Digest::of(&manifest));
        assert_eq!(p.pack.image, "hello");
        assert_eq!(p.pack.digest, f.manifest().digest);
        assert_eq!(p.catalog.path, catalog.path.display().to_string());
        assert_eq!(
            p.catalog.sha256,
            Digest::of(&std::fs::read(&catalog.path).unwrap())
        );
        // Evidence: the matched files, sorted, with their sha256.
        let sc06 = p.control("SC-06").unwrap();
        let paths: Vec<&str> = sc06.evidence.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "scans/KILN-TEST-2099-0002.json",
                "scans/trivy.sarif",
                "vex.openvex.json"
            ]
        );
        let m = f.manifest();
        for e in &sc06.evidence {
            assert_eq!(
                Some(e.sha256),
                m.files.iter().find(|x| x.path == e.path).map(|x| x.sha256)
            );
        }
        // Details name what was found.
        let sc02 = p.control("SC-02").unwrap();
        assert!(
            sc02.assertions[0]
                .detail
                .contains(&format!("signed by key {}", f.key.public().keyid())),
            "{sc02:#?}"
        );
        let sc07 = p.control("SC-07").unwrap();
        assert!(
            sc07.assertions[0].detail.contains("`hello:0.1.0`"),
            "{sc07:#?}"
        );
        assert!(
            sc07.assertions[2]
                .detail
                .contains("recorded in provenance.json"),
            "{sc07:#?}"
        );
    }

    #[test]
    fn evaluating_twice_gives_the_same_predicate() {
        let f = Fixture::new();
        let c = f.catalog();
        let a = evaluate(&c, &f.pack).unwrap();
        let b = evaluate(&c, &f.pack).unwrap();
        assert_eq!(a, b);
        assert_eq!(
            canonical::to_vec(&a).unwrap(),
            canonical::to_vec(&b).unwrap()
        );
    }

    #[test]
    fn the_fixture_pack_without_a_signature_fails_only_signed_provenance() {
        let c = Catalog::load(&testdata().join("control_catalog.yaml")).unwrap();
        let p = evaluate(&c, &testdata().join("pack")).unwrap();
        let failed: Vec<&str> = p
            .controls
            .iter()
            .filter(|c| c.result == Verdict::Fail)
            .map(|c| c.id.as_str())
            .collect();
        assert_eq!(failed, ["SC-02"], "{p:#?}");
        fails_with(
            p.control("SC-02").unwrap(),
            "evidence `provenance.sigstore.json` matched no file in the pack",
        );
    }

    #[test]
    fn a_glob_matching_nothing_fails_the_control_naming_the_glob() {
        let f = Fixture::new();
        let c = f.one(
            r#"["sbom.*.json", "scans/*.osv"]"#,
            "      - type: sbom_present\n",
        );
        fails_with(&c, "evidence `scans/*.osv` matched no file in the pack");
        assert_eq!(c.failures.len(), 1, "{c:#?}");
        // The assertion itself passed on what did match.
        assert_eq!(c.assertions[0].result, Verdict::Pass);
        assert_eq!(c.evidence.len(), 1);
        // `*` does not cross `/`.
        let c = f.one(r#"["*.sarif"]"#, "      - type: evidence_present\n");
        fails_with(&c, "evidence `*.sarif` matched no file");
    }

    #[test]
    fn a_tampered_pack_file_is_an_error_naming_it() {
        let f = Fixture::new();
        std::fs::write(f.pack.join("scans/trivy.sarif"), b"{}").unwrap();
        let e = evaluate(&f.catalog(), &f.pack).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("scans/trivy.sarif") && msg.contains("modified after packing"),
            "{msg}"
        );
        assert!(kiln_core::Hint::hint(&e).unwrap().contains("evidence pack"));
    }

    #[test]
    fn an_unlisted_file_is_an_error_but_attestation_is_not() {
        let f = Fixture::new();
        std::fs::create_dir_all(f.pack.join("attestation")).unwrap();
        std::fs::write(f.pack.join("attestation/controls.json"), b"{}").unwrap();
        evaluate(&f.catalog(), &f.pack).unwrap();
        std::fs::write(f.pack.join("scans/extra.sarif"), b"{}").unwrap();
        let msg = evaluate(&f.catalog(), &f.pack).unwrap_err().to_string();
        assert!(
            msg.contains("scans/extra.sarif") && msg.contains("not listed in manifest.json"),
            "{msg}"
        );
    }

    #[test]
    fn a_policy_that_does_not_load_is_an_error() {
        let f = Fixture::new();
        let c = Catalog::parse(
            &f.root.join("c.yaml"),
            "version: 1\ncontrols:\n  - id: A\n    name: a\n    evidence: [\"provenance.sigstore.json\"]\n    assert:\n      - type: signed_provenance\n        policy: missing.toml\n",
        )
        .unwrap();
        let e = evaluate(&c, &f.pack).unwrap_err();
        assert!(matches!(e, EvaluateError::Policy { .. }), "{e}");
        assert!(e.to_string().contains("missing.toml"), "{e}");
    }

    #[test]
    fn assertion_kinds_match_the_catalog_names() {
        assert_eq!(Assertion::GatePassed {}.kind(), "gate_passed");
    }
}
