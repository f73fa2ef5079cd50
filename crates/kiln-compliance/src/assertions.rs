//! Each assertion type of the catalog, judged over a control's matched evidence files.
//!
//! An assertion gives `Ok(detail)` (what was checked and found) or `Err(reason)` (what
//! broke), both naming files. An input that does not parse is a failed assertion naming
//! the file, never a panic and never a pass. Only what cannot be judged at all (the
//! catalog's policy does not load) is an [`EvaluateError`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use kiln_attest::dsse::{Bundle, Envelope};
use kiln_attest::provenance::{
    ANNOTATION_BASE_ALLOWLIST, ANNOTATION_BASE_REF, BASE_ALLOWLIST, BASE_IMAGE, ResourceDescriptor,
    SLSA_PROVENANCE_V1, Statement,
};
use kiln_core::Digest;
use kiln_core::contract::layout::file;
use kiln_core::contract::reference::{Allowlist, Reference};
use kiln_vex::Severity;
use serde_json::Value;

use crate::catalog::{Assertion, Level};
use crate::evaluate::EvaluateError;
use crate::pack::{Entry, Manifest, Role};

/// What an assertion is judged in.
pub(crate) struct Ctx<'a> {
    /// The control's id (for errors).
    pub control: &'a str,
    pub pack: &'a Path,
    pub manifest: &'a Manifest,
    /// The directory of the catalog (its `policy` paths are relative to it).
    pub catalog_dir: &'a Path,
    /// Every evidence glob of the control matched a file.
    pub globs_matched: bool,
}

/// A matched evidence file and its bytes (as the manifest pins them).
pub(crate) struct File<'a> {
    pub entry: &'a Entry,
    pub bytes: Vec<u8>,
}

impl File<'_> {
    fn path(&self) -> &str {
        &self.entry.path
    }
    fn name(&self) -> &str {
        self.entry.path.rsplit('/').next().unwrap_or_default()
    }
    fn json(&self) -> Result<Value, String> {
        serde_json::from_slice(&self.bytes).map_err(|e| format!("{}: not JSON: {e}", self.path()))
    }
}

pub(crate) type Outcome = Result<String, String>;

/// At most this many ids in a message, then `and N more`.
const SHOW: usize = 5;

fn first_few<S: AsRef<str>>(items: &[S]) -> String {
    let mut s: Vec<&str> = items.iter().take(SHOW).map(AsRef::as_ref).collect();
    let more = items.len().saturating_sub(SHOW);
    let tail = format!("and {more} more");
    if more > 0 {
        s.push(&tail);
    }
    s.join(", ")
}

fn role_name(r: Role) -> String {
    serde_json::to_value(r)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn nothing_matched() -> Outcome {
    Err("no evidence file matched, so there is nothing to judge".into())
}

/// Runs `a` over `files`, the control's matched evidence (sorted by path).
pub(crate) fn check(a: &Assertion, cx: &Ctx, files: &[File]) -> Result<Outcome, EvaluateError> {
    Ok(match a {
        Assertion::SarifNoLevels { levels } => sarif_no_levels(levels, files),
        Assertion::GatePassed {} => gate_passed(files),
        Assertion::SignedProvenance { policy } => signed_provenance(policy, cx, files)?,
        Assertion::SbomPresent {} => sbom_present(files),
        Assertion::ReproRatioAtLeast { ratio } => repro_ratio_at_least(*ratio, files),
        Assertion::VexCoversFindings {} => vex_covers_findings(files),
        Assertion::BaseImageAllowed { allowlist } => {
            base_image_allowed(allowlist.as_deref(), files)
        }
        Assertion::NoLatestTag {} => no_latest_tag(cx, files),
        Assertion::EvidencePresent { roles } => evidence_present(roles, cx, files),
    })
}

// --- sarif_no_levels -------------------------------------------------------------------

fn sarif_no_levels(levels: &[Level], files: &[File]) -> Outcome {
    if files.is_empty() {
        return nothing_matched();
    }
    let names: Vec<String> = levels.iter().map(Level::to_string).collect();
    let names = names.join(", ");
    let mut bad_files = Vec::new();
    let mut hits = Vec::new();
    let mut total = 0;
    for f in files {
        let results = match kiln_vex::sarif::results(Path::new(f.path()), &f.bytes) {
            Ok(r) => r,
            Err(e) => {
                bad_files.push(format!("{e} (not a SARIF 2.1.0 scan)"));
                continue;
            }
        };
        total += results.len();
        for r in results {
            // SARIF: a result that states no level is a `warning`.
            let level = r.level.as_deref().unwrap_or("warning");
            let hit = levels.iter().find(|l| match l {
                Level::Sarif(x) => level == *x,
                // Fail closed: a result whose severity nothing states is as bad as any.
                Level::Severity(s) => r.severity == *s || r.severity == Severity::Unknown,
            });
            if hit.is_some() {
                hits.push(format!("{} ({}, {})", r.rule_id, r.severity, f.path()));
            }
        }
    }
    if !bad_files.is_empty() {
        return Err(bad_files.join("; "));
    }
    if !hits.is_empty() {
        return Err(format!(
            "{} result(s) at {names}: {}",
            hits.len(),
            first_few(&hits)
        ));
    }
    Ok(format!(
        "no result at {names} among the {total} result(s) of {} file(s)",
        files.len()
    ))
}

// --- gate_passed -----------------------------------------------------------------------

fn gate_passed(files: &[File]) -> Outcome {
    let gates: Vec<&File> = files
        .iter()
        .filter(|f| f.entry.role == Role::Gate || f.name() == file::GATE)
        .collect();
    if gates.is_empty() {
        return Err(format!(
            "none of the matched files is the gate's verdict ({}, role gate)",
            file::GATE
        ));
    }
    let mut ok = Vec::new();
    for f in gates {
        let v = f.json()?;
        let Some(blocked) = v.get("blocked").and_then(Value::as_bool) else {
            return Err(format!(
                "{}: not a gate report: no boolean `blocked`",
                f.path()
            ));
        };
        let findings = v
            .get("findings")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if blocked {
            let ids: Vec<String> = findings
                .iter()
                .filter(|r| r.get("blocking").and_then(Value::as_bool) == Some(true))
                .filter_map(|r| r.get("id").and_then(Value::as_str).map(str::to_string))
                .collect();
            return Err(format!(
                "{}: the gate blocked the image: {} blocking finding(s): {}",
                f.path(),
                ids.len(),
                if ids.is_empty() {
                    "(none listed)".to_string()
                } else {
                    first_few(&ids)
                }
            ));
        }
        let fail_on = v.get("fail_on").and_then(Value::as_str).unwrap_or("?");
        ok.push(format!(
            "{}: not blocked ({} finding(s), fail_on {fail_on})",
            f.path(),
            findings.len()
        ));
    }
    Ok(ok.join("; "))
}

// --- signed_provenance -----------------------------------------------------------------

fn signed_provenance(policy: &Path, cx: &Ctx, files: &[File]) -> Result<Outcome, EvaluateError> {
    let Some(f) = files.iter().find(|f| f.name() == file::PROVENANCE_BUNDLE) else {
        return Ok(Err(format!(
            "the matched evidence does not include {}",
            file::PROVENANCE_BUNDLE
        )));
    };
    let path = cx.catalog_dir.join(policy);
    let policy = kiln_attest::Policy::load(&path).map_err(|e| EvaluateError::Policy {
        control: cx.control.to_string(),
        path: path.clone(),
        message: e.to_string(),
    })?;
    let (signer, stmt) =
        match kiln_attest::verify::verify_statement_bundle(&f.bytes, &policy, f.path()) {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        };
    if stmt.predicate_type != SLSA_PROVENANCE_V1 {
        return Ok(Err(format!(
            "{}: predicateType is `{}`, expected {SLSA_PROVENANCE_V1}",
            f.path(),
            stmt.predicate_type
        )));
    }
    let digest = cx.manifest.digest;
    let Some(subject) = image_subject(&stmt, digest) else {
        return Ok(Err(format!(
            "{}: no subject is the pack's image {digest} (the provenance is about another image)",
            f.path()
        )));
    };
    let verified = vec![(f.path().to_string(), stmt.clone())];
    let mut passed = Vec::new();
    for (i, req) in policy.requires.iter().enumerate() {
        if req.predicate_type != SLSA_PROVENANCE_V1 {
            continue;
        }
        match kiln_attest::verify::check_requirement_in(cx.pack, req, &verified) {
            Ok(_) => passed.push(format!("require[{i}]")),
            Err(e) => {
                return Ok(Err(format!(
                    "{}: signed by {signer}, but policy {} require[{i}] fails: {e}",
                    f.path(),
                    path.display()
                )));
            }
        }
    }
    Ok(Ok(format!(
        "{}: signed by {signer}; subject `{}` is {digest}; {}",
        f.path(),
        subject.name.as_deref().unwrap_or_default(),
        if passed.is_empty() {
            "the policy requires nothing more of provenance".to_string()
        } else {
            format!("policy {} passes", passed.join(", "))
        }
    )))
}

/// The subject of `stmt` that is the image `digest`.
fn image_subject(stmt: &Statement, digest: Digest) -> Option<&ResourceDescriptor> {
    stmt.subject
        .iter()
        .find(|s| s.digest.get("sha256").map(String::as_str) == Some(digest.hex().as_str()))
}

// --- sbom_present ----------------------------------------------------------------------

fn sbom_present(files: &[File]) -> Outcome {
    if files.is_empty() {
        return nothing_matched();
    }
    let mut why = Vec::new();
    for f in files {
        let v = match f.json() {
            Ok(v) => v,
            Err(e) => {
                why.push(e);
                continue;
            }
        };
        let count = |key: &str| v.get(key).and_then(Value::as_array).map_or(0, Vec::len);
        if v.get("bomFormat").and_then(Value::as_str) == Some("CycloneDX") {
            let n = count("components");
            let spec = v.get("specVersion").and_then(Value::as_str).unwrap_or("?");
            if n > 0 {
                return Ok(format!(
                    "{}: CycloneDX {spec} SBOM with {n} component(s)",
                    f.path()
                ));
            }
            why.push(format!("{}: CycloneDX SBOM with no components", f.path()));
        } else if let Some(spec) = v.get("spdxVersion").and_then(Value::as_str) {
            let n = count("packages");
            if n > 0 {
                return Ok(format!("{}: {spec} SBOM with {n} package(s)", f.path()));
            }
            why.push(format!("{}: SPDX SBOM with no packages", f.path()));
        } else {
            why.push(format!(
                "{}: not a CycloneDX (bomFormat) or SPDX (spdxVersion) JSON SBOM",
                f.path()
            ));
        }
    }
    Err(format!("no SBOM with components: {}", why.join("; ")))
}

// --- repro_ratio_at_least --------------------------------------------------------------

fn repro_ratio_at_least(ratio: f64, files: &[File]) -> Outcome {
    let reports: Vec<&File> = files
        .iter()
        .filter(|f| f.entry.role == Role::ReproReport)
        .collect();
    if reports.is_empty() {
        return Err("none of the matched files is a repro report (role repro-report)".into());
    }
    let mut ok = Vec::new();
    for f in reports {
        let v = f.json()?;
        let part = |k: &str| {
            v.pointer(&format!("/ratio/artifacts/{k}"))
                .and_then(Value::as_u64)
        };
        let (Some(n), Some(d)) = (part("numerator"), part("denominator")) else {
            return Err(format!(
                "{}: not a kiln repro report: no ratio.artifacts.numerator/denominator",
                f.path()
            ));
        };
        if d == 0 {
            return Err(format!(
                "{}: no artifacts were compared (0/0), so nothing is shown reproducible",
                f.path()
            ));
        }
        // In integers where it matters: n/d >= ratio, without 0.95*20 rounding to 18.999.
        let got = n as f64 / d as f64;
        if got + 1e-12 < ratio {
            return Err(format!(
                "{}: {n}/{d} artifacts rebuilt identically ({:.1}%), below the required {:.1}%",
                f.path(),
                got * 100.0,
                ratio * 100.0
            ));
        }
        ok.push(format!(
            "{}: {n}/{d} artifacts rebuilt identically ({:.1}% >= {:.1}%)",
            f.path(),
            got * 100.0,
            ratio * 100.0
        ));
    }
    Ok(ok.join("; "))
}

// --- vex_covers_findings ---------------------------------------------------------------

/// The vulnerability id at the start of a SARIF rule id (`CVE-2024-1234`,
/// `GHSA-xxxx-xxxx-xxxx`, `RUSTSEC-2024-0001`, `GO-2024-1234`, `PYSEC-...`, grype's
/// `CVE-2024-1234-<package>`), or `None` for a rule that is not a vulnerability (a lint).
pub(crate) fn vulnerability_id(rule: &str) -> Option<String> {
    let parts: Vec<&str> = rule.split('-').collect();
    if parts.len() >= 4
        && parts[0] == "GHSA"
        && parts[1..4]
            .iter()
            .all(|p| p.len() == 4 && p.chars().all(|c| c.is_ascii_alphanumeric()))
    {
        return Some(parts[..4].join("-"));
    }
    if parts.len() >= 3
        && (2..=10).contains(&parts[0].len())
        && parts[0].chars().all(|c| c.is_ascii_uppercase())
        && parts[1].len() == 4
        && parts[1].chars().all(|c| c.is_ascii_digit())
        && !parts[2].is_empty()
        && parts[2].chars().all(|c| c.is_ascii_digit())
    {
        return Some(parts[..3].join("-"));
    }
    None
}

/// The vulnerability ids a VEX document has statements for (with their aliases).
fn vex_ids(f: &File) -> Result<BTreeSet<String>, String> {
    let v = f.json()?;
    let mut ids = BTreeSet::new();
    let mut add = |x: Option<&Value>| {
        if let Some(s) = x.and_then(Value::as_str).map(str::trim)
            && !s.is_empty()
        {
            ids.insert(s.to_string());
        }
    };
    let arr = |v: &Value, k: &str| v.get(k).and_then(Value::as_array).cloned();
    if let Some(statements) = arr(&v, "statements") {
        // OpenVEX: vulnerability {name, @id, aliases} (v0.0.x: a string).
        for s in &statements {
            let vuln = s.get("vulnerability");
            match vuln {
                Some(Value::String(_)) => add(vuln),
                Some(o) => {
                    add(o.get("name"));
                    add(o.get("@id"));
                    for a in arr(o, "aliases").unwrap_or_default() {
                        add(Some(&a));
                    }
                }
                None => {}
            }
        }
    } else if let Some(vulns) = arr(&v, "vulnerabilities") {
        if v.get("document").is_some() {
            // CSAF 2.0: cve, ids[].text.
            for x in &vulns {
                add(x.get("cve"));
                for i in arr(x, "ids").unwrap_or_default() {
                    add(i.get("text"));
                }
            }
        } else if v.get("bomFormat").and_then(Value::as_str) == Some("CycloneDX") {
            // CycloneDX VEX: id, references[].id.
            for x in &vulns {
                add(x.get("id"));
                for r in arr(x, "references").unwrap_or_default() {
                    add(r.get("id"));
                }
            }
        } else {
            return Err(format!(
                "{}: `vulnerabilities` but neither CSAF (`document`) nor CycloneDX (`bomFormat`)",
                f.path()
            ));
        }
    } else {
        return Err(format!(
            "{}: not an OpenVEX, CSAF or CycloneDX VEX document",
            f.path()
        ));
    }
    Ok(ids)
}

/// The findings of a scan: each a set of names (an id and its aliases).
fn scan_findings(f: &File) -> Result<Vec<BTreeSet<String>>, String> {
    let v = f.json()?;
    let path = Path::new(f.path());
    if v.get("runs").is_some() {
        let results = kiln_vex::sarif::results(path, &f.bytes)
            .map_err(|e| format!("{e} (not a SARIF 2.1.0 scan)"))?;
        Ok(results
            .iter()
            .filter_map(|r| vulnerability_id(&r.rule_id))
            .map(|id| BTreeSet::from([id]))
            .collect())
    } else {
        let a = kiln_vex::Advisory::parse(path, &f.bytes)
            .map_err(|e| format!("{e} (neither SARIF nor an OSV advisory)"))?;
        let mut names = a.aliases.clone();
        names.insert(a.id.clone());
        Ok(vec![names])
    }
}

fn vex_covers_findings(files: &[File]) -> Outcome {
    let scans: Vec<&File> = files
        .iter()
        .filter(|f| f.entry.role == Role::Scan)
        .collect();
    let vex: Vec<&File> = files.iter().filter(|f| f.entry.role == Role::Vex).collect();
    if scans.is_empty() {
        return Err("none of the matched files is a scan (role scan: SARIF, OSV)".into());
    }
    let mut covered = BTreeSet::new();
    for f in &vex {
        covered.extend(vex_ids(f)?);
    }
    // Each finding's first name -> the scans it is in, for the uncovered ones.
    let mut uncovered: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
    let mut findings = BTreeSet::new();
    for f in &scans {
        for names in scan_findings(f)? {
            let first = names.iter().next().cloned().unwrap_or_default();
            findings.insert(first.clone());
            if names.is_disjoint(&covered) {
                uncovered.entry(first).or_default().insert(f.path());
            }
        }
    }
    if !uncovered.is_empty() {
        let ids: Vec<String> = uncovered
            .iter()
            .map(|(id, files)| {
                format!(
                    "{id} ({})",
                    files.iter().copied().collect::<Vec<_>>().join(", ")
                )
            })
            .collect();
        return Err(format!(
            "{} of {} finding(s) have no VEX statement{}: {}",
            uncovered.len(),
            findings.len(),
            if vex.is_empty() {
                " (no VEX document matched)"
            } else {
                ""
            },
            first_few(&ids)
        ));
    }
    Ok(format!(
        "all {} finding(s) of {} scan(s) have a statement in {} VEX document(s)",
        findings.len(),
        scans.len(),
        vex.len()
    ))
}

// --- provenance: base_image_allowed, no_latest_tag -------------------------------------

/// The provenance statement among `files` (`provenance.json`, else the payload of the
/// bundle, else of the envelope; the signature is `signed_provenance`'s to check), with
/// the file it came from. `None` when no provenance file matched.
fn provenance<'a>(files: &'a [File<'_>]) -> Option<Result<(&'a str, Statement), String>> {
    let by_name = |n: &str| files.iter().find(|f| f.name() == n);
    let (f, payload) = if let Some(f) = by_name(file::PROVENANCE) {
        (f, Ok(f.bytes.clone()))
    } else if let Some(f) = by_name(file::PROVENANCE_BUNDLE) {
        let p = Bundle::parse(&f.bytes, f.path())
            .and_then(|b| b.dsse_envelope.payload_bytes(f.path()))
            .map_err(|e| e.to_string());
        (f, p)
    } else if let Some(f) = by_name(file::PROVENANCE_ENVELOPE) {
        let p = Envelope::parse(&f.bytes, f.path())
            .and_then(|e| e.payload_bytes(f.path()))
            .map_err(|e| e.to_string());
        (f, p)
    } else {
        return None;
    };
    Some(payload.and_then(|p| {
        serde_json::from_slice::<Statement>(&p)
            .map(|s| (f.path(), s))
            .map_err(|e| format!("{}: not an in-toto statement: {e}", f.path()))
    }))
}

/// The `resolvedDependencies` entry named `name`.
fn dependency(stmt: &Statement, name: &str) -> Result<Option<ResourceDescriptor>, String> {
    let Some(deps) = stmt
        .predicate
        .pointer("/buildDefinition/resolvedDependencies")
        .and_then(Value::as_array)
    else {
        return Err("not SLSA v1 provenance: no buildDefinition.resolvedDependencies".into());
    };
    for d in deps {
        if d.get("name").and_then(Value::as_str) == Some(name) {
            return serde_json::from_value(d.clone())
                .map(Some)
                .map_err(|e| format!("resolvedDependencies `{name}`: {e}"));
        }
    }
    Ok(None)
}

/// The base image as the provenance names it: its reference as written
/// (`dev.kiln.base.ref`, when recorded) and its manifest digest. `None`: scratch.
fn base_image(stmt: &Statement) -> Result<Option<(Option<String>, Digest)>, String> {
    let Some(rd) = dependency(stmt, BASE_IMAGE)? else {
        return Ok(None);
    };
    let digest: Digest = rd
        .digest
        .get("sha256")
        .map(|h| format!("sha256:{h}"))
        .ok_or_else(|| format!("resolvedDependencies `{BASE_IMAGE}` has no sha256 digest"))?
        .parse()
        .map_err(|e| format!("resolvedDependencies `{BASE_IMAGE}`: {e}"))?;
    let reference = rd
        .annotations
        .get(ANNOTATION_BASE_REF)
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok(Some((reference, digest)))
}

fn no_provenance() -> String {
    format!(
        "none of the matched files is the provenance ({}, {} or {})",
        file::PROVENANCE,
        file::PROVENANCE_BUNDLE,
        file::PROVENANCE_ENVELOPE
    )
}

fn base_image_allowed(allowlist: Option<&[String]>, files: &[File]) -> Outcome {
    let (path, stmt) = provenance(files).ok_or_else(no_provenance)??;
    let Some((reference, digest)) = base_image(&stmt).map_err(|e| format!("{path}: {e}"))? else {
        return Ok("scratch".into());
    };
    let Some(written) = reference else {
        return Err(format!(
            "{path}: the base image {digest} has no reference (annotation `{ANNOTATION_BASE_REF}`), so its repository cannot be checked against an allowlist"
        ));
    };
    let mut r = Reference::parse(&written).map_err(|e| format!("{path}: base image: {e}"))?;
    if let Some(d) = r.digest
        && d != digest
    {
        return Err(format!(
            "{path}: the base reference `{written}` names {d}, the dependency {digest}"
        ));
    }
    r.digest = Some(digest);
    let (entries, from) = match allowlist {
        Some(a) => (a.to_vec(), "the catalog's allowlist".to_string()),
        None => {
            let recorded = dependency(&stmt, BASE_ALLOWLIST)
                .map_err(|e| format!("{path}: {e}"))?
                .and_then(|rd| {
                    rd.annotations
                        .get(ANNOTATION_BASE_ALLOWLIST)
                        .and_then(Value::as_str)
                        .map(str::to_string)
                });
            let Some(recorded) = recorded else {
                return Err(format!(
                    "no allowlist: the catalog gives none (`allowlist: [...]`) and {path} records none"
                ));
            };
            (
                recorded
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect(),
                format!("the allowlist recorded in {path}"),
            )
        }
    };
    let list = Allowlist::parse(&entries).map_err(|e| format!("{from}{e}"))?;
    list.permits(&r)
        .map(|d| format!("base {d} ({from})"))
        .map_err(|e| format!("base image: {e} ({from})"))
}

fn no_latest_tag(cx: &Ctx, files: &[File]) -> Outcome {
    // (where it was found, the reference as written)
    let mut refs: Vec<(String, String)> = Vec::new();
    if let Some(f) = files.iter().find(|f| f.name() == file::SUMMARY) {
        let v = f.json()?;
        let tag = v
            .get("ref_name")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{}: not a build summary: no `ref_name`", f.path()))?;
        let r = if tag.is_empty() {
            cx.manifest.image.clone()
        } else {
            format!("{}:{tag}", cx.manifest.image)
        };
        refs.push((format!("{} ref_name", f.path()), r));
    }
    if let Some(p) = provenance(files) {
        let (path, stmt) = p?;
        let subject = image_subject(&stmt, cx.manifest.digest).ok_or_else(|| {
            format!(
                "{path}: no subject is the pack's image {}",
                cx.manifest.digest
            )
        })?;
        refs.push((
            format!("{path} subject"),
            subject.name.clone().unwrap_or_default(),
        ));
        if let Some((Some(base), _)) = base_image(&stmt).map_err(|e| format!("{path}: {e}"))? {
            refs.push((format!("{path} base image"), base));
        }
    }
    if refs.is_empty() {
        return Err(format!(
            "no tag to check: match {} or the provenance ({}, {})",
            file::SUMMARY,
            file::PROVENANCE,
            file::PROVENANCE_BUNDLE
        ));
    }
    let mut ok = Vec::new();
    for (what, r) in &refs {
        let parsed = Reference::parse(r).map_err(|e| format!("{what}: {e}"))?;
        parsed
            .require_pinned_tag()
            .map_err(|e| format!("{what}: {e}"))?;
        ok.push(format!("`{r}` ({what})"));
    }
    Ok(format!("pinned: {}", ok.join(", ")))
}

// --- evidence_present ------------------------------------------------------------------

fn evidence_present(roles: &[Role], cx: &Ctx, files: &[File]) -> Outcome {
    if roles.is_empty() {
        if files.is_empty() || !cx.globs_matched {
            return Err("not every evidence glob matched a file".into());
        }
        return Ok(format!("{} evidence file(s) matched", files.len()));
    }
    let mut have = Vec::new();
    let mut missing = Vec::new();
    for r in roles {
        let n = cx.manifest.files.iter().filter(|e| e.role == *r).count();
        if n == 0 {
            missing.push(role_name(*r));
        } else {
            have.push(format!("{}: {n}", role_name(*r)));
        }
    }
    if !missing.is_empty() {
        return Err(format!(
            "the pack has no file of role {}",
            missing.join(", ")
        ));
    }
    Ok(format!("the pack has {}", have.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluate::tests::{Fixture, fails_with};
    use crate::predicate::Verdict;
    use serde_json::json;

    fn passes(c: &crate::predicate::ControlResult) -> &str {
        assert_eq!(c.result, Verdict::Pass, "{c:#?}");
        &c.assertions[0].detail
    }

    #[test]
    fn vulnerability_ids_are_recognised_in_rule_ids() {
        let id = |s| vulnerability_id(s);
        assert_eq!(id("CVE-2099-1001").as_deref(), Some("CVE-2099-1001"));
        assert_eq!(id("CVE-2099-1001-itoa").as_deref(), Some("CVE-2099-1001"));
        assert_eq!(
            id("GHSA-abcd-1234-wxyz").as_deref(),
            Some("GHSA-abcd-1234-wxyz")
        );
        assert_eq!(
            id("RUSTSEC-2099-0001").as_deref(),
            Some("RUSTSEC-2099-0001")
        );
        assert_eq!(id("clippy-unwrap-used"), None);
        assert_eq!(id("DL3008"), None);
        assert_eq!(
            first_few(&["a", "b", "c", "d", "e", "f", "g"]),
            "a, b, c, d, e, and 2 more"
        );
    }

    #[test]
    fn sarif_no_levels_fails_on_a_result_at_a_listed_level() {
        let f = Fixture::new();
        let c = f.one(
            r#"["scans/*.sarif"]"#,
            "      - type: sarif_no_levels\n        levels: [medium]\n",
        );
        fails_with(
            &c,
            "1 result(s) at MEDIUM: CVE-2099-1001 (medium, scans/trivy.sarif)",
        );
        let c = f.one(
            r#"["scans/*.sarif"]"#,
            "      - type: sarif_no_levels\n        levels: [WARNING]\n",
        );
        fails_with(&c, "1 result(s) at warning: CVE-2099-1001");
        let d = passes(&f.one(
            r#"["scans/*.sarif"]"#,
            "      - type: sarif_no_levels\n        levels: [HIGH, error]\n",
        ))
        .to_string();
        assert!(
            d.contains("no result at HIGH, error among the 1 result(s) of 1 file(s)"),
            "{d}"
        );
    }

    #[test]
    fn sarif_no_levels_reads_trivy_tags_and_severity_words() {
        let f = Fixture::new();
        f.edit("scans/trivy.sarif", |v| {
            let p = &mut v["runs"][0]["tool"]["driver"]["rules"][0]["properties"];
            p.as_object_mut().unwrap().remove("security-severity");
            p["tags"] = json!(["vulnerability", "security", "HIGH"]);
        });
        let yaml = "      - type: sarif_no_levels\n        levels: [HIGH]\n";
        fails_with(&f.one(r#"["scans/*.sarif"]"#, yaml), "CVE-2099-1001 (high");
        f.edit("scans/trivy.sarif", |v| {
            v["runs"][0]["results"][0]["properties"] = json!({"severity": "CRITICAL"});
        });
        fails_with(
            &f.one(
                r#"["scans/*.sarif"]"#,
                "      - type: sarif_no_levels\n        levels: [critical]\n",
            ),
            "CVE-2099-1001 (critical",
        );
    }

    #[test]
    fn sarif_no_levels_lists_the_first_few_and_the_count() {
        let f = Fixture::new();
        f.edit("scans/trivy.sarif", |v| {
            let r = v["runs"][0]["results"][0].clone();
            let results: Vec<_> = (0..7)
                .map(|i| {
                    let mut r = r.clone();
                    r["ruleId"] = json!(format!("CVE-2099-200{i}"));
                    r.as_object_mut().unwrap().remove("ruleIndex");
                    r["properties"] = json!({"security-severity": "9.8"});
                    r
                })
                .collect();
            v["runs"][0]["results"] = json!(results);
        });
        let c = f.one(
            r#"["scans/*.sarif"]"#,
            "      - type: sarif_no_levels\n        levels: [CRITICAL]\n",
        );
        fails_with(
            &c,
            "7 result(s) at CRITICAL: CVE-2099-2000 (critical, scans/trivy.sarif)",
        );
        fails_with(&c, "and 2 more");
    }

    #[test]
    fn sarif_no_levels_fails_on_a_file_that_is_not_sarif() {
        let f = Fixture::new();
        let c = f.one(
            r#"["scans/*.sarif", "gate.json"]"#,
            "      - type: sarif_no_levels\n        levels: [HIGH]\n",
        );
        fails_with(&c, "gate.json");
        fails_with(&c, "not a SARIF 2.1.0 scan");
    }

    #[test]
    fn gate_passed_fails_when_blocked_naming_the_blocking_findings() {
        let f = Fixture::new();
        let yaml = "      - type: gate_passed\n";
        let d = passes(&f.one(r#"["gate.json"]"#, yaml)).to_string();
        assert!(
            d.contains("gate.json: not blocked (2 finding(s), fail_on high)"),
            "{d}"
        );
        f.edit("gate.json", |v| {
            v["blocked"] = json!(true);
            v["findings"][0]["blocking"] = json!(true);
        });
        fails_with(
            &f.one(r#"["gate.json"]"#, yaml),
            "gate.json: the gate blocked the image: 1 blocking finding(s): CVE-2099-1001",
        );
        f.set("gate.json", b"blocked", Role::Gate);
        fails_with(&f.one(r#"["gate.json"]"#, yaml), "gate.json: not JSON");
        fails_with(
            &f.one(r#"["sbom.cdx.json"]"#, yaml),
            "none of the matched files is the gate's verdict",
        );
    }

    fn statement(f: &Fixture) -> Value {
        serde_json::from_slice(&std::fs::read(f.pack.join("provenance.json")).unwrap()).unwrap()
    }

    const SIGNED: &str = "      - type: signed_provenance\n        policy: policy.toml\n";

    #[test]
    fn signed_provenance_fails_for_an_untrusted_key() {
        let f = Fixture::new();
        let other = kiln_attest::SigningKey::generate();
        let stmt = std::fs::read(f.pack.join("provenance.json")).unwrap();
        f.sign("provenance.sigstore.json", &stmt, &other);
        fails_with(
            &f.one(r#"["provenance.sigstore.json"]"#, SIGNED),
            "which the policy does not trust",
        );
    }

    #[test]
    fn signed_provenance_fails_for_another_image_or_predicate_type() {
        let f = Fixture::new();
        let mut s = statement(&f);
        s["subject"][0]["digest"]["sha256"] = json!(Digest::of(b"another image").hex());
        f.sign(
            "provenance.sigstore.json",
            &serde_json::to_vec(&s).unwrap(),
            &f.key,
        );
        fails_with(
            &f.one(r#"["provenance.sigstore.json"]"#, SIGNED),
            "no subject is the pack's image",
        );
        let mut s = statement(&f);
        s["predicateType"] = json!("https://cyclonedx.org/bom");
        f.sign(
            "provenance.sigstore.json",
            &serde_json::to_vec(&s).unwrap(),
            &f.key,
        );
        fails_with(
            &f.one(r#"["provenance.sigstore.json"]"#, SIGNED),
            "predicateType is `https://cyclonedx.org/bom`",
        );
    }

    #[test]
    fn signed_provenance_fails_a_policy_requirement() {
        let f = Fixture::new();
        let mut s = statement(&f);
        s["predicate"]["runDetails"]["builder"]["id"] = json!("https://example.com/other-builder");
        f.sign(
            "provenance.sigstore.json",
            &serde_json::to_vec(&s).unwrap(),
            &f.key,
        );
        let c = f.one(r#"["provenance.sigstore.json"]"#, SIGNED);
        fails_with(&c, "require[0] fails");
        fails_with(&c, "builder.id is `https://example.com/other-builder`");
    }

    #[test]
    fn signed_provenance_needs_the_bundle_among_the_matched_files() {
        let f = Fixture::new();
        fails_with(
            &f.one(r#"["provenance.json"]"#, SIGNED),
            "the matched evidence does not include provenance.sigstore.json",
        );
    }

    #[test]
    fn sbom_present_fails_for_an_sbom_without_components() {
        let f = Fixture::new();
        let yaml = "      - type: sbom_present\n";
        f.edit("sbom.cdx.json", |v| v["components"] = json!([]));
        fails_with(
            &f.one(r#"["sbom.*.json"]"#, yaml),
            "sbom.cdx.json: CycloneDX SBOM with no components",
        );
        fails_with(
            &f.one(r#"["gate.json"]"#, yaml),
            "gate.json: not a CycloneDX (bomFormat) or SPDX (spdxVersion) JSON SBOM",
        );
        f.set(
            "sbom.spdx.json",
            br#"{"spdxVersion": "SPDX-2.3", "packages": [{"name": "itoa"}]}"#,
            Role::Sbom,
        );
        let d = passes(&f.one(r#"["sbom.*.json"]"#, yaml)).to_string();
        assert!(
            d.contains("sbom.spdx.json: SPDX-2.3 SBOM with 1 package(s)"),
            "{d}"
        );
    }

    #[test]
    fn repro_ratio_at_least_fails_below_the_ratio() {
        let f = Fixture::new();
        let at = |r: &str| format!("      - type: repro_ratio_at_least\n        ratio: {r}\n");
        let d = passes(&f.one(r#"["repro/*"]"#, &at("0.95"))).to_string();
        assert!(
            d.contains("19/20 artifacts rebuilt identically (95.0% >= 95.0%)"),
            "{d}"
        );
        fails_with(
            &f.one(r#"["repro/*"]"#, &at("0.99")),
            "repro/report.json: 19/20 artifacts rebuilt identically (95.0%), below the required 99.0%",
        );
        f.edit("repro/report.json", |v| {
            v["ratio"]["artifacts"] = json!({"numerator": 0, "denominator": 0, "value": 0.0});
        });
        fails_with(
            &f.one(r#"["repro/*"]"#, &at("0")),
            "no artifacts were compared",
        );
        fails_with(
            &f.one(r#"["gate.json"]"#, &at("0.5")),
            "none of the matched files is a repro report",
        );
    }

    #[test]
    fn vex_covers_findings_lists_the_uncovered_ids() {
        let f = Fixture::new();
        let yaml = "      - type: vex_covers_findings\n";
        let ev = r#"["scans/*", "vex.*.json"]"#;
        // The OSV advisory is covered by its alias alone.
        f.edit("vex.openvex.json", |v| {
            v["statements"][1]["vulnerability"] = json!({"name": "CVE-2099-1002"});
        });
        let d = passes(&f.one(ev, yaml)).to_string();
        assert!(d.contains("all 2 finding(s) of 2 scan(s)"), "{d}");
        f.edit("vex.openvex.json", |v| {
            v["statements"].as_array_mut().unwrap().remove(0);
        });
        fails_with(
            &f.one(ev, yaml),
            "1 of 2 finding(s) have no VEX statement: CVE-2099-1001 (scans/trivy.sarif)",
        );
        fails_with(
            &f.one(r#"["scans/*"]"#, yaml),
            "2 of 2 finding(s) have no VEX statement (no VEX document matched)",
        );
        // CSAF and CycloneDX VEX are read too.
        f.remove("vex.openvex.json");
        f.set(
            "vex.csaf.json",
            br#"{"document": {}, "vulnerabilities": [{"cve": "CVE-2099-1001"}, {"ids": [{"system_name": "kiln", "text": "KILN-TEST-2099-0002"}]}]}"#,
            Role::Vex,
        );
        passes(&f.one(ev, yaml));
        f.remove("vex.csaf.json");
        f.set(
            "vex.cdx.json",
            br#"{"bomFormat": "CycloneDX", "vulnerabilities": [{"id": "CVE-2099-1001"}, {"id": "CVE-2099-1002"}]}"#,
            Role::Vex,
        );
        passes(&f.one(ev, yaml));
        f.set("vex.cdx.json", br#"{"hello": 1}"#, Role::Vex);
        fails_with(
            &f.one(ev, yaml),
            "vex.cdx.json: not an OpenVEX, CSAF or CycloneDX VEX document",
        );
    }

    #[test]
    fn base_image_allowed_fails_for_a_base_outside_the_allowlist() {
        let f = Fixture::new();
        let ev = r#"["provenance.json"]"#;
        let c = f.one(
            ev,
            "      - type: base_image_allowed\n        allowlist: [\"docker.io/library/*\"]\n",
        );
        fails_with(
            &c,
            "is not in the base-image allowlist (1 entries) (the catalog's allowlist)",
        );
        // From the bundle's payload and the recorded allowlist.
        let d = passes(&f.one(
            r#"["provenance.sigstore.json"]"#,
            "      - type: base_image_allowed\n",
        ))
        .to_string();
        assert!(
            d.contains("ghcr.io/acme/base:1.2@sha256:")
                && d.contains("is allowed by `ghcr.io/acme/*`")
                && d.contains("recorded in provenance.sigstore.json"),
            "{d}"
        );
        f.edit("provenance.json", |v| {
            let deps = &mut v["predicate"]["buildDefinition"]["resolvedDependencies"];
            deps[0]["annotations"] = json!({});
        });
        fails_with(
            &f.one(ev, "      - type: base_image_allowed\n"),
            "has no reference (annotation `dev.kiln.base.ref`)",
        );
        f.edit("provenance.json", |v| {
            let deps = &mut v["predicate"]["buildDefinition"]["resolvedDependencies"];
            deps.as_array_mut().unwrap().clear();
        });
        assert_eq!(
            passes(&f.one(ev, "      - type: base_image_allowed\n")),
            "scratch"
        );
        fails_with(
            &f.one(r#"["gate.json"]"#, "      - type: base_image_allowed\n"),
            "none of the matched files is the provenance",
        );
    }

    #[test]
    fn base_image_allowed_without_any_allowlist_fails() {
        let f = Fixture::new();
        f.edit("provenance.json", |v| {
            let deps = &mut v["predicate"]["buildDefinition"]["resolvedDependencies"];
            deps.as_array_mut().unwrap().remove(1);
        });
        fails_with(
            &f.one(
                r#"["provenance.json"]"#,
                "      - type: base_image_allowed\n",
            ),
            "no allowlist: the catalog gives none",
        );
    }

    #[test]
    fn no_latest_tag_fails_for_latest_or_untagged() {
        let f = Fixture::new();
        let yaml = "      - type: no_latest_tag\n";
        let d = passes(&f.one(r#"["summary.json", "provenance.json"]"#, yaml)).to_string();
        assert!(
            d.contains("`hello:0.1.0` (summary.json ref_name)")
                && d.contains("`hello:0.1.0` (provenance.json subject)")
                && d.contains("`ghcr.io/acme/base:1.2` (provenance.json base image)"),
            "{d}"
        );
        f.edit("summary.json", |v| v["ref_name"] = json!("latest"));
        fails_with(
            &f.one(r#"["summary.json"]"#, yaml),
            "summary.json ref_name: `docker.io/library/hello:latest` uses the tag `latest`",
        );
        f.edit("provenance.json", |v| {
            v["subject"][0]["name"] = json!("hello")
        });
        fails_with(
            &f.one(r#"["provenance.json"]"#, yaml),
            "has no tag and no digest",
        );
        f.edit("provenance.json", |v| {
            v["subject"][0]["name"] = json!("hello:0.1.0");
            v["predicate"]["buildDefinition"]["resolvedDependencies"][0]["annotations"]
                ["dev.kiln.base.ref"] = json!("ghcr.io/acme/base:latest");
        });
        fails_with(
            &f.one(r#"["provenance.json"]"#, yaml),
            "provenance.json base image",
        );
        fails_with(&f.one(r#"["gate.json"]"#, yaml), "no tag to check");
    }

    #[test]
    fn evidence_present_fails_for_a_missing_role() {
        let f = Fixture::new();
        let yaml = "      - type: evidence_present\n        roles: [repro-report, sbom]\n";
        let d = passes(&f.one(r#"["*.json"]"#, yaml)).to_string();
        assert_eq!(d, "the pack has repro-report: 1, sbom: 1");
        f.remove("repro/report.json");
        fails_with(
            &f.one(r#"["*.json"]"#, yaml),
            "the pack has no file of role repro-report",
        );
        let d = passes(&f.one(r#"["*.json"]"#, "      - type: evidence_present\n")).to_string();
        assert!(d.contains("file(s) matched"), "{d}");
        fails_with(
            &f.one(
                r#"["*.json", "none/*"]"#,
                "      - type: evidence_present\n",
            ),
            "evidence_present: not every evidence glob matched a file",
        );
    }
}
