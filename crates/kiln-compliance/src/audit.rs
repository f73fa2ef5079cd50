//! Re-verifying past releases' packs and attestations: what `kiln verify --pack` adds to
//! an image's checks, and what `kiln evidence audit --sample` (the quarterly audit job)
//! runs over a random, seeded sample of release packs.
//!
//! A pack passes when it is whole (every file is what `manifest.json` says), its control
//! attestation verifies against the policy, is about this pack (the manifest's sha256)
//! and this image (the digest), every evidence file a control was judged on is the one in
//! the pack, the files beside the attestation are what it signs (the reports re-render to
//! the same bytes) and — for the audit — every control passed.

use std::path::{Path, PathBuf};

use kiln_attest::{Check, Policy};
use kiln_core::contract::layout::{file, pack as pack_files};
use kiln_core::{Digest, canonical};
use serde::Serialize;

use crate::predicate::{ControlsPredicate, PREDICATE_TYPE, Verdict};

/// One pack's checks.
#[derive(Debug, Clone, Serialize)]
pub struct PackAudit {
    pub pack: PathBuf,
    pub image: Option<String>,
    pub digest: Option<Digest>,
    /// Integrity: the pack, the signature, the subject, the evidence, the files beside.
    pub checks: Vec<Check>,
    /// The controls' verdicts as attested: (passed, total), and each failed control.
    pub controls: Option<(usize, usize)>,
    pub failed_controls: Vec<String>,
}

impl PackAudit {
    /// Every integrity check passed (what `verify --pack` requires).
    pub fn intact(&self) -> bool {
        self.checks.iter().all(|c| c.pass)
    }
    /// Intact, and every control passed (what the audit requires).
    pub fn ok(&self) -> bool {
        self.intact() && self.controls.is_some() && self.failed_controls.is_empty()
    }
}

fn push(checks: &mut Vec<Check>, rule: &str, r: Result<String, String>) -> bool {
    let pass = r.is_ok();
    checks.push(Check {
        rule: rule.to_string(),
        pass,
        detail: r.unwrap_or_else(|e| e),
    });
    pass
}

/// Checks the pack at `pack` and its attestation against `policy`.
pub fn check_pack(pack: &Path, policy: &Policy) -> PackAudit {
    let mut a = PackAudit {
        pack: pack.to_path_buf(),
        image: None,
        digest: None,
        checks: Vec::new(),
        controls: None,
        failed_controls: Vec::new(),
    };
    let verified = match crate::pack::verify(pack) {
        Ok(v) => {
            push(
                &mut a.checks,
                "pack",
                Ok(format!(
                    "all {} files are what manifest.json ({}) says",
                    v.manifest.files.len(),
                    v.manifest_sha256
                )),
            );
            v
        }
        Err(e) => {
            push(&mut a.checks, "pack", Err(e.to_string()));
            return a;
        }
    };
    a.image = Some(verified.manifest.image.clone());
    a.digest = Some(verified.manifest.digest);
    let dir = pack.join(pack_files::ATTESTATION_DIR);
    let title = file::CONTROLS_BUNDLE;
    let bundle = match std::fs::read(dir.join(title)) {
        Ok(b) => b,
        Err(e) => {
            push(
                &mut a.checks,
                "signature",
                Err(format!(
                    "{}/{title}: cannot read ({e}): the pack has no control attestation (`kiln controls attest`)",
                    pack_files::ATTESTATION_DIR
                )),
            );
            return a;
        }
    };
    let (signer, stmt) = match kiln_attest::verify::verify_statement_bundle(&bundle, policy, title)
    {
        Ok((s, stmt)) if stmt.predicate_type == PREDICATE_TYPE => (s, stmt),
        Ok((_, stmt)) => {
            push(
                &mut a.checks,
                "signature",
                Err(format!(
                    "{title}: signs predicateType {}, not {PREDICATE_TYPE}",
                    stmt.predicate_type
                )),
            );
            return a;
        }
        Err(e) => {
            push(&mut a.checks, "signature", Err(e));
            return a;
        }
    };
    push(
        &mut a.checks,
        "signature",
        Ok(format!("{PREDICATE_TYPE} signed by {signer}")),
    );
    let pred: ControlsPredicate = match serde_json::from_value(stmt.predicate.clone()) {
        Ok(p) => p,
        Err(e) => {
            push(
                &mut a.checks,
                "subject",
                Err(format!("{title}: not a {PREDICATE_TYPE} predicate: {e}")),
            );
            return a;
        }
    };
    let m = &verified.manifest;
    let subject_ok = stmt
        .subject
        .iter()
        .any(|s| s.digest.get("sha256").map(String::as_str) == Some(m.digest.hex().as_str()));
    let r = if !subject_ok {
        Err(format!(
            "{title}: no subject is the pack's image {}: the attestation is about another image",
            m.digest
        ))
    } else if pred.pack.digest != m.digest || pred.pack.image != m.image {
        Err(format!(
            "{title}: judged {} ({}), the pack is of {} ({})",
            pred.pack.image, pred.pack.digest, m.image, m.digest
        ))
    } else if pred.pack.manifest_sha256 != verified.manifest_sha256 {
        Err(format!(
            "{title}: judged a pack whose manifest.json is {}, this one's is {}: the pack was changed after attestation",
            pred.pack.manifest_sha256, verified.manifest_sha256
        ))
    } else {
        Ok(format!(
            "about {} {} and this pack's manifest.json",
            m.image, m.digest
        ))
    };
    push(&mut a.checks, "subject", r);

    let mut bad = Vec::new();
    let mut n = 0;
    for c in &pred.controls {
        for e in &c.evidence {
            n += 1;
            match m.files.iter().find(|f| f.path == e.path) {
                Some(f) if f.sha256 == e.sha256 => {}
                Some(f) => bad.push(format!(
                    "{}: {} was judged as {}, the pack holds {}",
                    c.id, e.path, e.sha256, f.sha256
                )),
                None => bad.push(format!("{}: {} is not in the pack", c.id, e.path)),
            }
        }
    }
    let r = if bad.is_empty() {
        Ok(format!(
            "{n} evidence file(s) of {} control(s) are in the pack, unchanged",
            pred.controls.len()
        ))
    } else {
        Err(bad.join("; "))
    };
    push(&mut a.checks, "evidence", r);
    push(
        &mut a.checks,
        "attestation files",
        check_beside(&dir, &bundle, &stmt, &pred),
    );

    a.controls = Some((
        pred.controls
            .iter()
            .filter(|c| c.result == Verdict::Pass)
            .count(),
        pred.controls.len(),
    ));
    a.failed_controls = pred
        .controls
        .iter()
        .filter(|c| c.result != Verdict::Pass)
        .map(|c| format!("{} ({})", c.id, c.failures.join("; ")))
        .collect();
    a
}

/// The files beside the bundle must be what it signs: the envelope, the statement, and
/// the reports rendered from the signed predicate (rendering is deterministic, so a
/// doctored PDF is caught by rendering it again). Nothing else may be there.
fn check_beside(
    dir: &Path,
    bundle: &[u8],
    stmt: &kiln_attest::provenance::Statement,
    pred: &ControlsPredicate,
) -> Result<String, String> {
    let b = kiln_attest::dsse::Bundle::parse(bundle, file::CONTROLS_BUNDLE)
        .map_err(|e| e.to_string())?;
    let payload = canonical::to_vec(stmt).map_err(|e| e.to_string())?;
    let statement_sha = Digest::of(&payload).to_string();
    let subject = stmt
        .subject
        .first()
        .and_then(|s| s.name.clone())
        .unwrap_or_default();
    let digest = pred.pack.digest.to_string();
    // As `attest` named the signer in the reports: the key id the bundle names, or keyless.
    let signer_label = match &b.verification_material.public_key {
        Some(hint) => format!("key {}", hint.hint),
        None => "keyless".to_string(),
    };
    let header = crate::render::ReportHeader {
        subject: &subject,
        digest: &digest,
        signer: Some(&signer_label),
        statement_sha256: Some(&statement_sha),
    };
    let expected: [(&str, Vec<u8>); 5] = [
        (file::CONTROLS_BUNDLE, bundle.to_vec()),
        (
            file::CONTROLS_ENVELOPE,
            canonical::to_vec(&b.dsse_envelope).map_err(|e| e.to_string())?,
        ),
        (
            file::CONTROLS,
            canonical::to_vec_pretty(stmt).map_err(|e| e.to_string())?,
        ),
        (
            pack_files::REPORT_HTML,
            crate::render::html(&header, pred).into_bytes(),
        ),
        (pack_files::REPORT_PDF, crate::render::pdf(&header, pred)),
    ];
    for (name, want) in &expected {
        let got = std::fs::read(dir.join(name))
            .map_err(|e| format!("{}/{name}: cannot read: {e}", pack_files::ATTESTATION_DIR))?;
        if &got != want {
            return Err(format!(
                "{}/{name}: not what {} signs: the file was modified",
                pack_files::ATTESTATION_DIR,
                file::CONTROLS_BUNDLE
            ));
        }
    }
    let entries = std::fs::read_dir(dir).map_err(|e| e.to_string())?;
    for e in entries {
        let name = e.map_err(|e| e.to_string())?.file_name();
        let name = name.to_string_lossy();
        if !expected.iter().any(|(n, _)| *n == name) {
            return Err(format!(
                "{}/{name}: not a file `kiln controls attest` writes",
                pack_files::ATTESTATION_DIR
            ));
        }
    }
    Ok(format!(
        "{} files are what the bundle signs (reports re-rendered byte for byte)",
        expected.len()
    ))
}

/// What `verify --pack DIR` adds to an image's checks: the pack's integrity checks (as
/// the audit makes them), each prefixed `pack`, plus: the pack is of the image verified
/// (`digest`), and its attestation is the one attached to that image (the bundle in the
/// output directory `out`, when there is one).
pub fn release_checks(
    pack: &Path,
    policy: &Policy,
    digest: Option<&Digest>,
    out: Option<&Path>,
) -> Vec<Check> {
    let a = check_pack(pack, policy);
    let mut checks: Vec<Check> = a
        .checks
        .iter()
        .map(|c| Check {
            rule: format!("pack {}", c.rule),
            ..c.clone()
        })
        .collect();
    if let (Some(want), Some(got)) = (digest, &a.digest) {
        let r = if want == got {
            Ok(format!("the pack is of the verified image {want}"))
        } else {
            Err(format!(
                "the pack is of image {got}, not the verified {want}"
            ))
        };
        push(&mut checks, "pack image", r);
    }
    if let Some(out) = out {
        let attached = out.join(file::CONTROLS_BUNDLE);
        let in_pack = pack
            .join(pack_files::ATTESTATION_DIR)
            .join(file::CONTROLS_BUNDLE);
        let r = match (std::fs::read(&attached), std::fs::read(&in_pack)) {
            (Ok(a), Ok(b)) if a == b => Ok(format!(
                "the pack's attestation is the {} attached to the image",
                file::CONTROLS_BUNDLE
            )),
            (Ok(_), Ok(_)) => Err(format!(
                "the pack's {} is not the one attached to the image (attested again, or another pack)",
                file::CONTROLS_BUNDLE
            )),
            (Err(_), _) => Err(format!(
                "no control attestation is attached to the image ({} is missing)\n  fix: `kiln controls attest --pack {}` in the project that built it",
                file::CONTROLS_BUNDLE,
                pack.display()
            )),
            (_, Err(e)) => Err(format!("{}: cannot read: {e}", in_pack.display())),
        };
        push(&mut checks, "pack attached", r);
    }
    checks
}

/// `--sample`: which of `n` packs to audit. `percent` of them rounded up, at least one;
/// chosen by a Fisher–Yates shuffle driven by SplitMix64 from `seed`, so the same seed
/// picks the same packs on any machine. Returned in input order.
pub fn sample(n: usize, percent: f64, seed: u64) -> Vec<usize> {
    if n == 0 {
        return Vec::new();
    }
    let k = ((n as f64 * percent / 100.0).ceil() as usize).clamp(1, n);
    let mut state = seed;
    let mut next = || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut idx: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        idx.swap(i, j);
    }
    let mut chosen = idx[..k].to_vec();
    chosen.sort_unstable();
    chosen
}

/// The audit of a sample of packs.
#[derive(Debug, Clone, Serialize)]
pub struct Audit {
    pub seed: u64,
    pub percent: f64,
    pub candidates: usize,
    pub packs: Vec<PackAudit>,
}

impl Audit {
    pub fn ok(&self) -> bool {
        self.packs.iter().all(PackAudit::ok)
    }

    /// The table the audit job prints: one row per pack.
    pub fn table(&self) -> String {
        let mut out = format!(
            "audited {} of {} pack(s) (sample {}%, seed {})\n",
            self.packs.len(),
            self.candidates,
            self.percent,
            self.seed
        );
        out.push_str("RESULT  CONTROLS  IMAGE                    PACK\n");
        for p in &self.packs {
            let controls = p
                .controls
                .map(|(ok, n)| format!("{ok}/{n}"))
                .unwrap_or_else(|| "-".into());
            let image = match (&p.image, &p.digest) {
                (Some(i), Some(d)) => format!("{i}@{}", &d.hex()[..12]),
                _ => "-".into(),
            };
            out.push_str(&format!(
                "{:<7} {:<9} {:<24} {}\n",
                if p.ok() { "PASS" } else { "FAIL" },
                controls,
                image,
                p.pack.display()
            ));
            for c in p.checks.iter().filter(|c| !c.pass) {
                out.push_str(&format!(
                    "        {}: {}\n",
                    c.rule,
                    c.detail.replace('\n', " ")
                ));
            }
            for f in &p.failed_controls {
                out.push_str(&format!("        control {f}\n"));
            }
        }
        out
    }
}

/// Audits a `percent` sample (seeded by `seed`) of the packs in `packs`.
pub fn audit(packs: &[PathBuf], percent: f64, seed: u64, policy: &Policy) -> Audit {
    let chosen = sample(packs.len(), percent, seed);
    Audit {
        seed,
        percent,
        candidates: packs.len(),
        packs: chosen
            .iter()
            .map(|&i| check_pack(&packs[i], policy))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_is_a_function_of_the_seed_and_rounds_up() {
        assert_eq!(sample(10, 10.0, 7), sample(10, 10.0, 7));
        assert_eq!(sample(10, 10.0, 7).len(), 1);
        assert_eq!(sample(10, 25.0, 7).len(), 3);
        assert_eq!(sample(3, 1.0, 7).len(), 1);
        assert_eq!(sample(4, 100.0, 1), vec![0, 1, 2, 3]);
        assert!(sample(0, 50.0, 1).is_empty());
        // Different seeds pick differently (over enough draws).
        let picks: std::collections::BTreeSet<_> = (0..20).map(|s| sample(50, 10.0, s)).collect();
        assert!(picks.len() > 10, "{picks:?}");
    }
}
