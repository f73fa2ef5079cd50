//! The control attestation's predicate: `https://kiln.dev/attestations/controls/v1`.
//!
//! An in-toto Statement v1 whose subject is the image manifest and whose predicate is
//! [`ControlsPredicate`]: which catalog judged which pack, and for each control its id,
//! name, verdict, the evidence files it was judged on (by sha256) and, when it failed,
//! why. Field names are part of the contract (README "Control attestation"); a change
//! that removes or renames one is a new version of the predicate type.
//!
//! Defined here, in the contract, because two crates that do not depend on each other
//! read it: kiln-compliance writes it, kiln-attest's `verify` judges `controls_pass`.

use crate::Digest;
use serde::{Deserialize, Serialize};

/// The predicate type, versioned: a verifier that reads `v1` can rely on every field below.
pub const PREDICATE_TYPE: &str = "https://kiln.dev/attestations/controls/v1";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlsPredicate {
    /// The catalog file: its name as given and its sha256.
    pub catalog: FileRef,
    /// The evidence pack: its `manifest.json`'s sha256, the image and its digest.
    pub pack: PackRef,
    /// Every control of the catalog, in catalog order.
    pub controls: Vec<ControlResult>,
    pub summary: Tally,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRef {
    pub path: String,
    pub sha256: Digest,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackRef {
    /// sha256 of the pack's `manifest.json`, which lists every file of the pack.
    pub manifest_sha256: Digest,
    pub image: String,
    /// The image manifest digest (also the statement's subject).
    pub digest: Digest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlResult {
    pub id: String,
    pub name: String,
    pub result: Verdict,
    /// The pack files the control's `evidence` globs matched, sorted by path.
    pub evidence: Vec<FileRef>,
    /// Each assertion, in catalog order.
    pub assertions: Vec<AssertionResult>,
    /// Why the control failed (a glob that matched nothing, each failing assertion's
    /// reason); empty when it passed.
    pub failures: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssertionResult {
    /// The assertion type as the catalog names it (`sarif_no_levels`, ...).
    #[serde(rename = "type")]
    pub kind: String,
    pub result: Verdict,
    /// What was checked and found (on a pass) or what broke (on a failure), naming files.
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tally {
    pub total: usize,
    pub passed: usize,
    pub failed: usize,
}

impl ControlsPredicate {
    /// Whether every control passed.
    pub fn all_pass(&self) -> bool {
        self.controls.iter().all(|c| c.result == Verdict::Pass)
    }

    /// The control `id`, if the catalog had it.
    pub fn control(&self, id: &str) -> Option<&ControlResult> {
        self.controls.iter().find(|c| c.id == id)
    }
}
