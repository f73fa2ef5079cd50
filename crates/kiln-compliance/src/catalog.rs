//! The control catalog (`compliance/control_catalog.yaml`): which controls a release is
//! judged on, the evidence files each reads (globs over the pack) and the assertions each
//! makes about them.
//!
//! ```yaml
//! version: 1
//! controls:
//!   - id: SC-01
//!     name: No critical or high findings in scans
//!     evidence: ["scans/*.sarif"]          # globs relative to the pack directory
//!     assert:
//!       - type: sarif_no_levels
//!         levels: [CRITICAL, HIGH]
//!   - id: SC-02
//!     name: Signed provenance
//!     evidence: ["provenance.sigstore.json"]
//!     assert:
//!       - type: signed_provenance
//!         policy: policy.toml              # relative to the catalog file
//! ```
//!
//! Read strictly: an unknown key (at the top, in a control, in an assertion), a value of
//! the wrong type, an unknown assertion type, a duplicate control id, an empty `assert`
//! list or `evidence` list, a glob that does not parse and a ratio outside 0..=1 are each
//! an error naming the file, the line and column, and the fix. A control whose assertion
//! the catalog cannot state is never evaluated, so it can never pass by accident.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use kiln_core::Digest;
use kiln_core::contract::reference::Allowlist;
use kiln_vex::Severity;
use serde::{Deserialize, Deserializer};
use serde_saphyr::Spanned;

use crate::pack::Role;

/// The catalog format version this crate reads.
pub const VERSION: u32 = 1;

/// Every assertion `type`, in the order the documentation lists them.
pub const ASSERTION_TYPES: [&str; 9] = [
    "sarif_no_levels",
    "gate_passed",
    "signed_provenance",
    "sbom_present",
    "repro_ratio_at_least",
    "vex_covers_findings",
    "base_image_allowed",
    "no_latest_tag",
    "evidence_present",
];

/// A parsed, checked catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct Catalog {
    /// The file as given.
    pub path: PathBuf,
    /// sha256 of its bytes.
    pub sha256: Digest,
    /// In catalog order.
    pub controls: Vec<Control>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Control {
    pub id: String,
    pub name: String,
    /// Globs over the pack's paths (`/`-separated; `*` does not cross a `/`).
    pub evidence: Vec<String>,
    /// The `assert` list, in catalog order; never empty.
    pub asserts: Vec<Assertion>,
}

/// One assertion of a control, by its `type`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Assertion {
    /// No SARIF result of the matched scans is at any of `levels`.
    SarifNoLevels { levels: Vec<Level> },
    /// The matched `gate.json` is not blocked.
    GatePassed {},
    /// The matched `provenance.sigstore.json` verifies against the policy (a `kiln
    /// verify` policy, relative to the catalog file) and is about the pack's image.
    SignedProvenance { policy: PathBuf },
    /// A matched file is a CycloneDX or SPDX JSON SBOM with at least one component.
    SbomPresent {},
    /// The matched repro report's artifact ratio is at least `ratio` (0.0..=1.0).
    ReproRatioAtLeast {
        #[serde(deserialize_with = "ratio")]
        ratio: f64,
    },
    /// Every vulnerability found by the matched scans has a statement in a matched VEX.
    VexCoversFindings {},
    /// The provenance's base image is allowed by `allowlist` (else by the allowlist the
    /// provenance records); `scratch` passes.
    BaseImageAllowed {
        #[serde(default, deserialize_with = "allowlist")]
        allowlist: Option<Vec<String>>,
    },
    /// Neither the image's tag nor its base's is `latest` or missing.
    NoLatestTag {},
    /// Every role in `roles` has a file in the pack (with none: the globs matched).
    EvidencePresent {
        #[serde(default)]
        roles: Vec<Role>,
    },
}

impl Assertion {
    /// The `type` as the catalog spells it.
    pub fn kind(&self) -> &'static str {
        let i = match self {
            Assertion::SarifNoLevels { .. } => 0,
            Assertion::GatePassed {} => 1,
            Assertion::SignedProvenance { .. } => 2,
            Assertion::SbomPresent {} => 3,
            Assertion::ReproRatioAtLeast { .. } => 4,
            Assertion::VexCoversFindings {} => 5,
            Assertion::BaseImageAllowed { .. } => 6,
            Assertion::NoLatestTag {} => 7,
            Assertion::EvidencePresent { .. } => 8,
        };
        ASSERTION_TYPES[i]
    }
}

/// A level of `sarif_no_levels`: a SARIF level or a severity (case-insensitive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// `error`, `warning`, `note` or `none`: the result's `level` (SARIF's default is
    /// `warning`).
    Sarif(&'static str),
    /// `CRITICAL`, `HIGH`, `MEDIUM` or `LOW`: the result's severity.
    Severity(Severity),
}

const SARIF_LEVELS: [&str; 4] = ["error", "warning", "note", "none"];

impl Level {
    pub fn parse(s: &str) -> Option<Level> {
        let l = s.trim().to_ascii_lowercase();
        if let Some(x) = SARIF_LEVELS.iter().find(|x| **x == l) {
            return Some(Level::Sarif(x));
        }
        Some(Level::Severity(match l.as_str() {
            "critical" => Severity::Critical,
            "high" => Severity::High,
            "medium" => Severity::Medium,
            "low" => Severity::Low,
            _ => return None,
        }))
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Level::Sarif(l) => f.write_str(l),
            Level::Severity(s) => f.write_str(&s.as_str().to_ascii_uppercase()),
        }
    }
}

impl<'de> Deserialize<'de> for Level {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Level::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown level `{s}`, expected a SARIF level (error, warning, note, none) or a severity (CRITICAL, HIGH, MEDIUM, LOW)"
            ))
        })
    }
}

fn ratio<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let r = f64::deserialize(d)?;
    if !(0.0..=1.0).contains(&r) {
        return Err(serde::de::Error::custom(format!(
            "ratio {r} is not between 0.0 and 1.0 (a fraction: 0.95 is 95%)"
        )));
    }
    Ok(r)
}

fn allowlist<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    let entries = Vec::<String>::deserialize(d)?;
    Allowlist::parse(&entries).map_err(|e| serde::de::Error::custom(format!("allowlist{e}")))?;
    Ok(Some(entries))
}

fn globs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let globs = Vec::<String>::deserialize(d)?;
    for g in &globs {
        glob::Pattern::new(g)
            .map_err(|e| serde::de::Error::custom(format!("evidence glob `{g}`: {e}")))?;
        if g.starts_with('/') || g.split('/').any(|c| c == "..") {
            return Err(serde::de::Error::custom(format!(
                "evidence glob `{g}` is not relative to the pack (no leading `/`, no `..`)"
            )));
        }
    }
    Ok(globs)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalog {
    version: Spanned<u32>,
    controls: Vec<RawControl>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawControl {
    id: Spanned<String>,
    name: String,
    #[serde(deserialize_with = "globs")]
    evidence: Vec<String>,
    #[serde(rename = "assert")]
    asserts: Spanned<Vec<Assertion>>,
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("{}: cannot read the control catalog", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A key, a value or the file's structure is wrong, at `line`:`column`.
    #[error("{}:{line}:{column}: {message}", path.display())]
    Invalid {
        path: PathBuf,
        line: u64,
        column: u64,
        message: String,
        fix: Option<String>,
    },
}

impl kiln_core::Hint for CatalogError {
    fn hint(&self) -> Option<String> {
        match self {
            CatalogError::Read { .. } => Some(
                "give the catalog with --catalog FILE (default compliance/control_catalog.yaml)"
                    .into(),
            ),
            CatalogError::Invalid { fix, .. } => fix.clone(),
        }
    }
}

/// The fix for a serde message about the catalog's structure.
fn fix_for(message: &str) -> Option<String> {
    if message.starts_with("unknown field") {
        Some("remove the key or correct its spelling (keys: version, controls; a control: id, name, evidence, assert; an assertion: type and that type's keys)".into())
    } else if message.starts_with("unknown variant") && message.contains("sarif_no_levels") {
        Some(format!(
            "use one of the assertion types: {}",
            ASSERTION_TYPES.join(", ")
        ))
    } else if message.starts_with("missing field `type`") {
        Some(format!(
            "give each assertion a `type`: one of {}",
            ASSERTION_TYPES.join(", ")
        ))
    } else {
        None
    }
}

impl Catalog {
    /// Reads and checks the catalog at `path`.
    pub fn load(path: &Path) -> Result<Catalog, CatalogError> {
        let text = std::fs::read_to_string(path).map_err(|source| CatalogError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parses and checks `text`, the catalog named `path` (in messages, and the base of
    /// the paths it names).
    pub fn parse(path: &Path, text: &str) -> Result<Catalog, CatalogError> {
        let invalid =
            |line: u64, column: u64, message: String, fix: Option<String>| CatalogError::Invalid {
                path: path.to_path_buf(),
                line,
                column,
                message,
                fix,
            };
        let raw: RawCatalog = serde_saphyr::from_str(text).map_err(|e| {
            let (line, column) = e
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((0, 0));
            let full = e.without_snippet().to_string();
            let mut message = full
                .strip_suffix(&format!(" at line {line}, column {column}"))
                .unwrap_or(&full)
                .to_string();
            // An assertion type that takes no keys: serde lists none.
            if let Some(m) = message.strip_suffix(", expected one of ") {
                message = format!("{m}: this assertion type takes no keys besides `type`");
            }
            let fix = fix_for(&message);
            invalid(line, column, message, fix)
        })?;
        if raw.version.value != VERSION {
            return Err(invalid(
                raw.version.referenced.line(),
                raw.version.referenced.column(),
                format!(
                    "version {} is not a catalog version this kiln reads",
                    raw.version.value
                ),
                Some(format!("write `version: {VERSION}`")),
            ));
        }
        let mut seen = BTreeSet::new();
        let mut controls = Vec::new();
        for c in raw.controls {
            let at = &c.id.referenced;
            let id = c.id.value.trim().to_string();
            if id.is_empty() {
                return Err(invalid(
                    at.line(),
                    at.column(),
                    "empty control id".into(),
                    Some("give the control an id such as `SC-01`".into()),
                ));
            }
            if !seen.insert(id.clone()) {
                return Err(invalid(
                    at.line(),
                    at.column(),
                    format!("duplicate control id `{id}`"),
                    Some("give each control its own id".into()),
                ));
            }
            if c.evidence.is_empty() {
                return Err(invalid(
                    at.line(),
                    at.column(),
                    format!("control `{id}`: `evidence` is empty"),
                    Some(
                        "name the pack files the control is judged on, e.g. `evidence: [\"scans/*.sarif\"]`"
                            .into(),
                    ),
                ));
            }
            if c.asserts.value.is_empty() {
                let a = &c.asserts.referenced;
                return Err(invalid(
                    a.line(),
                    a.column(),
                    format!(
                        "control `{id}`: `assert` is empty, so the control would judge nothing"
                    ),
                    Some(format!(
                        "add at least one assertion (`- type: ...`, one of {})",
                        ASSERTION_TYPES.join(", ")
                    )),
                ));
            }
            controls.push(Control {
                id,
                name: c.name,
                evidence: c.evidence,
                asserts: c.asserts.value,
            });
        }
        Ok(Catalog {
            path: path.to_path_buf(),
            sha256: Digest::of(text.as_bytes()),
            controls,
        })
    }

    /// The directory the catalog's relative paths (`policy`) are relative to.
    pub fn dir(&self) -> &Path {
        match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Catalog, CatalogError> {
        Catalog::parse(Path::new("compliance/control_catalog.yaml"), text)
    }

    fn err(text: &str) -> (String, Option<String>) {
        let e = parse(text).unwrap_err();
        let hint = kiln_core::Hint::hint(&e);
        (e.to_string(), hint)
    }

    const HEAD: &str = "version: 1\ncontrols:\n  - id: SC-01\n    name: n\n    evidence: [\"scans/*.sarif\"]\n    assert:\n";

    #[test]
    fn the_fixture_catalog_parses_with_every_type() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../testdata/compliance/control_catalog.yaml");
        let c = Catalog::load(&p).unwrap();
        let kinds: BTreeSet<&str> = c
            .controls
            .iter()
            .flat_map(|c| c.asserts.iter().map(Assertion::kind))
            .collect();
        assert_eq!(kinds, ASSERTION_TYPES.into_iter().collect());
        assert_eq!(c.sha256, Digest::of(&std::fs::read(&p).unwrap()));
    }

    #[test]
    fn a_full_control_parses() {
        let c = parse(&format!(
            "{HEAD}      - type: sarif_no_levels\n        levels: [critical, High, error]\n      - type: repro_ratio_at_least\n        ratio: 0.9\n      - type: gate_passed\n      - type: evidence_present\n        roles: [sbom, toolchain-lock]\n      - type: base_image_allowed\n"
        ))
        .unwrap();
        let a = &c.controls[0].asserts;
        assert_eq!(
            a[0],
            Assertion::SarifNoLevels {
                levels: vec![
                    Level::Severity(Severity::Critical),
                    Level::Severity(Severity::High),
                    Level::Sarif("error")
                ]
            }
        );
        assert_eq!(a[1], Assertion::ReproRatioAtLeast { ratio: 0.9 });
        assert_eq!(a[2].kind(), "gate_passed");
        assert_eq!(
            a[3],
            Assertion::EvidencePresent {
                roles: vec![Role::Sbom, Role::ToolchainLock]
            }
        );
        assert_eq!(a[4], Assertion::BaseImageAllowed { allowlist: None });
        // An integer ratio is a ratio too.
        let c = parse(&format!(
            "{HEAD}      - type: repro_ratio_at_least\n        ratio: 1\n"
        ))
        .unwrap();
        assert_eq!(
            c.controls[0].asserts[0],
            Assertion::ReproRatioAtLeast { ratio: 1.0 }
        );
    }

    #[test]
    fn an_unknown_key_at_the_top_is_named_with_line_and_column() {
        let (e, hint) = err("version: 1\ncontrol: []\n");
        assert!(
            e.starts_with("compliance/control_catalog.yaml:2:1: unknown field `control`"),
            "{e}"
        );
        assert!(hint.unwrap().contains("remove the key"));
    }

    #[test]
    fn an_unknown_key_in_a_control_is_named_with_line_and_column() {
        let (e, _) = err("version: 1\ncontrols:\n  - id: SC-01\n    name: n\n    evidense: []\n");
        assert!(
            e.starts_with("compliance/control_catalog.yaml:5:5: unknown field `evidense`"),
            "{e}"
        );
    }

    #[test]
    fn an_unknown_key_in_an_assertion_is_named_with_line_and_column() {
        let (e, _) = err(&format!(
            "{HEAD}      - type: sarif_no_levels\n        levels: [HIGH]\n        level: [LOW]\n"
        ));
        assert!(
            e.starts_with("compliance/control_catalog.yaml:7:9: unknown field `level`"),
            "{e}"
        );
        // A type that takes no keys rejects one too.
        let (e, _) = err(&format!(
            "{HEAD}      - type: gate_passed\n        blocked: false\n"
        ));
        assert!(
            e.starts_with("compliance/control_catalog.yaml:7:9: unknown field `blocked`")
                && e.contains("takes no keys"),
            "{e}"
        );
    }

    #[test]
    fn an_unknown_assertion_type_is_an_error_naming_the_known_ones() {
        let (e, hint) = err(&format!("{HEAD}      - type: sarif_clean\n"));
        assert!(
            e.starts_with("compliance/control_catalog.yaml:7:9: unknown variant `sarif_clean`"),
            "{e}"
        );
        for t in ASSERTION_TYPES {
            assert!(e.contains(t), "{t}: {e}");
        }
        assert!(hint.unwrap().contains("evidence_present"));
        let (e, _) = err(&format!("{HEAD}      - levels: [HIGH]\n"));
        assert!(e.contains(":7:9: missing field `type`"), "{e}");
    }

    #[test]
    fn wrong_types_and_values_are_errors_with_line_and_column() {
        let (e, _) = err("version: one\ncontrols: []\n");
        assert!(
            e.starts_with("compliance/control_catalog.yaml:1:10:"),
            "{e}"
        );
        let (e, _) = err(&format!(
            "{HEAD}      - type: repro_ratio_at_least\n        ratio: 95\n"
        ));
        assert!(
            e.contains(":7:9:") && e.contains("not between 0.0 and 1.0"),
            "{e}"
        );
        let (e, _) = err(&format!(
            "{HEAD}      - type: sarif_no_levels\n        levels: [SEVERE]\n"
        ));
        assert!(e.contains("unknown level `SEVERE`"), "{e}");
        let (e, _) = err(&format!(
            "{HEAD}      - type: evidence_present\n        roles: [sboms]\n"
        ));
        assert!(
            e.contains("unknown variant `sboms`") && e.contains("toolchain-lock"),
            "{e}"
        );
        let (e, _) = err(&format!(
            "{HEAD}      - type: base_image_allowed\n        allowlist: [\"debian:12\"]\n"
        ));
        assert!(e.contains("names no digest"), "{e}");
        let (e, _) = err("version: 2\ncontrols: []\n");
        assert!(
            e.starts_with("compliance/control_catalog.yaml:1:10: version 2"),
            "{e}"
        );
    }

    #[test]
    fn duplicate_ids_empty_asserts_and_bad_globs_are_errors() {
        let c = "  - id: SC-01\n    name: n\n    evidence: [\"a\"]\n    assert:\n      - type: gate_passed\n";
        let (e, hint) = err(&format!("version: 1\ncontrols:\n{c}{c}"));
        assert!(
            e.starts_with("compliance/control_catalog.yaml:8:9: duplicate control id `SC-01`"),
            "{e}"
        );
        assert!(hint.unwrap().contains("its own id"));
        let (e, _) = err(&format!("{HEAD}    []\n").replace("assert:\n    []", "assert: []"));
        assert!(
            e.contains(":6:13: control `SC-01`: `assert` is empty"),
            "{e}"
        );
        let (e, _) = err(
            "version: 1\ncontrols:\n  - id: A\n    name: n\n    evidence: []\n    assert:\n      - type: gate_passed\n",
        );
        assert!(e.contains("`evidence` is empty"), "{e}");
        let (e, _) = err(
            "version: 1\ncontrols:\n  - id: A\n    name: n\n    evidence: [\"scans/[.sarif\"]\n    assert:\n      - type: gate_passed\n",
        );
        assert!(
            e.contains(":5:15:") && e.contains("evidence glob `scans/[.sarif`"),
            "{e}"
        );
    }
}
