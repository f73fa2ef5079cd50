//! `verify`: checks an output directory against a policy and reports one line per rule.
//!
//! Nothing is trusted because it is present: every blob of the image and of each
//! referrer is re-hashed, every signature is checked against the policy's keys or
//! identities, every subject digest is recomputed from the actual bytes (the manifest, the
//! binaries read back out of the layers, the SBOM files), and only signed statements can
//! satisfy a requirement.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;

use kiln_core::Digest;
use serde::Serialize;

use crate::attach::{
    ANNOTATION_REF_NAME, ANNOTATION_TITLE, ArtifactManifest, Descriptor, EMPTY_BLOB,
    MEDIA_TYPE_EMPTY, blob_path,
};
use crate::dsse::{BUNDLE_MEDIA_TYPE, Bundle, Envelope, PAYLOAD_TYPE, parse_strict};
use crate::evidence::{EVIDENCE, envelope_file};
use crate::policy::{Policy, Requirement};
use crate::provenance::{Provenance, SLSA_PROVENANCE_V1, Statement};

/// The outcome of one rule.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub rule: String,
    pub pass: bool,
    /// Why it passed or, on failure, what broke (naming the file).
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub ok: bool,
    pub checks: Vec<Check>,
}

impl Report {
    /// `PASS rule: why` / `FAIL rule: why`, one line per rule.
    pub fn lines(&self) -> Vec<String> {
        self.checks
            .iter()
            .map(|c| {
                format!(
                    "{} {}: {}",
                    if c.pass { "PASS" } else { "FAIL" },
                    c.rule,
                    c.detail.replace('\n', " ")
                )
            })
            .collect()
    }
}

struct Ctx<'a> {
    out: &'a Path,
    checks: Vec<Check>,
}

impl Ctx<'_> {
    fn push(&mut self, rule: impl Into<String>, r: Result<String, String>) -> bool {
        let pass = r.is_ok();
        self.checks.push(Check {
            rule: rule.into(),
            pass,
            detail: r.unwrap_or_else(|e| e),
        });
        pass
    }
    fn rel(&self, p: &Path) -> String {
        p.strip_prefix(self.out).unwrap_or(p).display().to_string()
    }
}

/// The image as found in the layout.
struct ImageInfo {
    manifest: Descriptor,
    layers: Vec<(String, Digest)>,
}

/// Verifies the output directory `out` (holding `oci/` and the evidence files).
pub fn verify(out: &Path, policy: &Policy) -> Report {
    let mut cx = Ctx {
        out,
        checks: Vec::new(),
    };
    let layout = out.join("oci");

    let (image, referrers) = match check_layout(&cx, &layout) {
        Ok((image, referrers, detail)) => {
            cx.push("image", Ok(detail));
            (image, referrers)
        }
        Err(e) => {
            cx.push("image", Err(e));
            return finish(cx);
        }
    };

    // Referrers: blobs, subject, and the copy beside the image.
    let mut attached: Vec<(Descriptor, ArtifactManifest, Vec<u8>)> = Vec::new();
    for d in &referrers {
        let title = d
            .annotations
            .get(ANNOTATION_TITLE)
            .cloned()
            .unwrap_or_else(|| d.digest.to_string());
        match check_referrer(&cx, &layout, d, &image.manifest) {
            Ok((m, bytes)) => {
                cx.push(
                    format!("attached {title}"),
                    Ok(format!(
                        "artifact manifest {} ({}) refers to the image",
                        d.digest, m.artifact_type
                    )),
                );
                attached.push((d.clone(), m, bytes));
            }
            Err(e) => {
                cx.push(format!("attached {title}"), Err(e));
            }
        }
    }
    // Evidence files beside the image that no referrer carries are suspicious too.
    for kind in EVIDENCE {
        let carried = attached.iter().any(|(_, m, _)| {
            m.layers[0]
                .annotations
                .get(ANNOTATION_TITLE)
                .map(String::as_str)
                == Some(kind.file)
        });
        if out.join(kind.file).is_file() && !carried {
            cx.push(
                format!("attached {}", kind.file),
                Err(format!(
                    "{} is beside the image but not attached to it",
                    kind.file
                )),
            );
        }
    }

    // Signatures and statements.
    let mut verified: Vec<(String, Statement)> = Vec::new();
    let mut any_bundle = false;
    for (_, m, bytes) in &attached {
        let title = m.layers[0]
            .annotations
            .get(ANNOTATION_TITLE)
            .cloned()
            .unwrap_or_default();
        if m.artifact_type == PAYLOAD_TYPE {
            cx.push(format!("signature {title}"), Err(format!("{title}: no signature: the statement is attached unsigned\n  fix: build with --key FILE (or $KILN_SIGNING_KEY) or --keyless")));
            continue;
        }
        if m.artifact_type != BUNDLE_MEDIA_TYPE {
            continue;
        }
        any_bundle = true;
        let r = check_signature(&cx, &title, bytes, policy);
        match r {
            Ok((signer, stmt)) => {
                cx.push(
                    format!("signature {title}"),
                    Ok(format!("{} signed by {signer}", stmt.predicate_type)),
                );
                let subj = check_subjects(&cx, &layout, &image, &stmt);
                if cx.push(format!("subjects {title}"), subj) {
                    verified.push((title, stmt));
                }
            }
            Err(e) => {
                cx.push(format!("signature {title}"), Err(e));
            }
        }
    }
    if !any_bundle
        && !attached
            .iter()
            .any(|(_, m, _)| m.artifact_type == PAYLOAD_TYPE)
    {
        cx.push(
            "signature",
            Err("no signature: no Sigstore bundle is attached to the image".into()),
        );
    }

    for (i, req) in policy.requires.iter().enumerate() {
        let r = check_requirement(&cx, req, &verified);
        cx.push(format!("require[{i}] {}", req.predicate_type), r);
    }
    finish(cx)
}

fn finish(cx: Ctx) -> Report {
    Report {
        ok: cx.checks.iter().all(|c| c.pass),
        checks: cx.checks,
    }
}

fn read_verified(
    cx: &Ctx,
    layout: &Path,
    d: &Digest,
    size: Option<u64>,
    what: &str,
) -> Result<Vec<u8>, String> {
    let p = blob_path(layout, d);
    let bytes =
        std::fs::read(&p).map_err(|e| format!("{} ({what}): cannot read: {e}", cx.rel(&p)))?;
    let actual = Digest::of(&bytes);
    if actual != *d {
        return Err(format!(
            "{} ({what}): sha256 is {actual}, expected {d}: the blob was modified",
            cx.rel(&p)
        ));
    }
    if let Some(s) = size
        && s != bytes.len() as u64
    {
        return Err(format!(
            "{} ({what}): size is {}, expected {s}",
            cx.rel(&p),
            bytes.len()
        ));
    }
    Ok(bytes)
}

fn hash_file(cx: &Ctx, p: &Path, expected: &Digest, size: u64, what: &str) -> Result<(), String> {
    let mut f =
        std::fs::File::open(p).map_err(|e| format!("{} ({what}): cannot read: {e}", cx.rel(p)))?;
    let mut h = kiln_core::HashingWriter::new(std::io::sink());
    std::io::copy(&mut f, &mut h)
        .map_err(|e| format!("{} ({what}): cannot read: {e}", cx.rel(p)))?;
    let (actual, len, _) = h.finish();
    if actual != *expected {
        return Err(format!(
            "{} ({what}): sha256 is {actual}, expected {expected}: the blob was modified",
            cx.rel(p)
        ));
    }
    if len != size {
        return Err(format!(
            "{} ({what}): size is {len}, expected {size}",
            cx.rel(p)
        ));
    }
    Ok(())
}

type LayoutParts = (ImageInfo, Vec<Descriptor>, String);

fn check_layout(cx: &Ctx, layout: &Path) -> Result<LayoutParts, String> {
    let index_path = layout.join("index.json");
    let raw = std::fs::read(&index_path).map_err(|e| {
        format!(
            "{}: cannot read: {e}\n  fix: point verify at target/kiln/out/<image>",
            cx.rel(&index_path)
        )
    })?;
    let index: serde_json::Value = serde_json::from_slice(&raw)
        .map_err(|e| format!("{}: not JSON: {e}", cx.rel(&index_path)))?;
    let entries: Vec<Descriptor> = serde_json::from_value(index["manifests"].clone())
        .map_err(|e| format!("{}: manifests: {e}", cx.rel(&index_path)))?;
    let (mut images, referrers): (Vec<_>, Vec<_>) =
        entries.into_iter().partition(|d| d.artifact_type.is_none());
    images.sort_by_key(|d| !d.annotations.contains_key(ANNOTATION_REF_NAME));
    let manifest = images
        .into_iter()
        .next()
        .ok_or_else(|| format!("{}: no image manifest", cx.rel(&index_path)))?;
    let mbytes = read_verified(
        cx,
        layout,
        &manifest.digest,
        Some(manifest.size),
        "image manifest",
    )?;
    #[derive(serde::Deserialize)]
    struct M {
        config: Descriptor,
        layers: Vec<Descriptor>,
    }
    let m: M = serde_json::from_slice(&mbytes)
        .map_err(|e| format!("image manifest {}: {e}", manifest.digest))?;
    hash_file(
        cx,
        &blob_path(layout, &m.config.digest),
        &m.config.digest,
        m.config.size,
        "image config",
    )?;
    for (i, l) in m.layers.iter().enumerate() {
        hash_file(
            cx,
            &blob_path(layout, &l.digest),
            &l.digest,
            l.size,
            &format!("image layer {i}"),
        )?;
    }
    let detail = format!(
        "{} ({}): manifest, config and {} layer(s) match their digests",
        manifest.digest,
        manifest
            .annotations
            .get(ANNOTATION_REF_NAME)
            .map(String::as_str)
            .unwrap_or("untagged"),
        m.layers.len()
    );
    let layers = m
        .layers
        .iter()
        .map(|l| (l.media_type.clone(), l.digest))
        .collect();
    Ok((ImageInfo { manifest, layers }, referrers, detail))
}

fn check_referrer(
    cx: &Ctx,
    layout: &Path,
    d: &Descriptor,
    image: &Descriptor,
) -> Result<(ArtifactManifest, Vec<u8>), String> {
    let bytes = read_verified(cx, layout, &d.digest, Some(d.size), "artifact manifest")?;
    let m: ArtifactManifest = serde_json::from_slice(&bytes)
        .map_err(|e| format!("artifact manifest {}: {e}", d.digest))?;
    if m.subject.digest != image.digest {
        return Err(format!(
            "artifact manifest {}: subject is {}, not the image {}",
            d.digest, m.subject.digest, image.digest
        ));
    }
    if d.artifact_type.as_deref() != Some(m.artifact_type.as_str()) {
        return Err(format!(
            "artifact manifest {}: index.json says artifactType {:?}, the manifest {}",
            d.digest, d.artifact_type, m.artifact_type
        ));
    }
    if m.config.media_type != MEDIA_TYPE_EMPTY || m.config.digest != Digest::of(EMPTY_BLOB) {
        return Err(format!(
            "artifact manifest {}: config is not the empty descriptor",
            d.digest
        ));
    }
    read_verified(
        cx,
        layout,
        &m.config.digest,
        Some(m.config.size),
        "empty config",
    )?;
    let [layer] = m.layers.as_slice() else {
        return Err(format!(
            "artifact manifest {}: expected exactly one layer",
            d.digest
        ));
    };
    let blob = read_verified(
        cx,
        layout,
        &layer.digest,
        Some(layer.size),
        "attached evidence",
    )?;
    let title = layer
        .annotations
        .get(ANNOTATION_TITLE)
        .ok_or_else(|| format!("artifact manifest {}: layer has no title", d.digest))?;
    if title.contains('/') || title.starts_with('.') {
        return Err(format!(
            "artifact manifest {}: layer title `{title}` is not a plain file name",
            d.digest
        ));
    }
    let file = cx.out.join(title);
    let on_disk = std::fs::read(&file).map_err(|e| format!("{title}: cannot read: {e}"))?;
    if on_disk != blob {
        return Err(format!(
            "{title}: differs from the blob attached to the image ({}): the file was modified",
            layer.digest
        ));
    }
    Ok((m, blob))
}

/// Checks the bundle `title` (bytes already known to match the attached blob), and that
/// the envelope file beside it is the same signed envelope. Returns the signer and the
/// statement.
fn check_signature(
    cx: &Ctx,
    title: &str,
    bytes: &[u8],
    policy: &Policy,
) -> Result<(String, Statement), String> {
    let bundle = Bundle::parse(bytes, title).map_err(|e| e.to_string())?;
    let env = &bundle.dsse_envelope;
    let signer = match (
        &bundle.verification_material.public_key,
        &bundle.verification_material.certificate,
    ) {
        (Some(hint), _) => {
            let keys: Vec<_> = policy
                .keys
                .iter()
                .filter(|(_, k)| k.keyid() == hint.hint)
                .map(|(_, k)| k.clone())
                .collect();
            if keys.is_empty() {
                return Err(format!(
                    "{title}: signed with key {} which the policy does not trust (wrong key?)",
                    hint.hint
                ));
            }
            let keyid = env.verify(&keys, title).map_err(|e| e.to_string())?;
            let path = policy
                .keys
                .iter()
                .find(|(_, k)| k.keyid() == keyid)
                .map(|(p, _)| p.display().to_string())
                .unwrap_or_default();
            format!("key {keyid} ({path})")
        }
        (None, Some(_)) => {
            crate::keyless::verify_bundle(&bundle, policy, title).map_err(|e| e.to_string())?
        }
        (None, None) => unreachable!("Bundle::parse requires one"),
    };
    // The envelope file beside the image must be the very envelope the bundle signs.
    let stem = title.trim_end_matches(".sigstore.json");
    let env_name = envelope_file(&format!("{stem}.json"));
    let env_path = cx.out.join(&env_name);
    let env_bytes =
        std::fs::read(&env_path).map_err(|e| format!("{env_name}: cannot read: {e}"))?;
    let file_env = Envelope::parse(&env_bytes, &env_name).map_err(|e| e.to_string())?;
    if &file_env != env {
        return Err(format!(
            "{env_name}: not the envelope signed in {title}: the file was modified"
        ));
    }
    if kiln_core::canonical::to_vec(&file_env).ok().as_deref() != Some(env_bytes.as_slice()) {
        return Err(format!(
            "{env_name}: not in kiln's canonical form: the file was modified"
        ));
    }
    let payload = env.payload_bytes(title).map_err(|e| e.to_string())?;
    let stmt: Statement =
        parse_strict(&payload, &format!("{title} (statement)")).map_err(|e| e.to_string())?;
    if stmt.type_ != crate::provenance::STATEMENT_TYPE {
        return Err(format!("{title}: statement _type is `{}`", stmt.type_));
    }
    Ok((signer, stmt))
}

fn check_subjects(
    cx: &Ctx,
    layout: &Path,
    image: &ImageInfo,
    stmt: &Statement,
) -> Result<String, String> {
    if stmt.subject.is_empty() {
        return Err("the statement has no subject".into());
    }
    let mut in_image: BTreeMap<String, Digest> = BTreeMap::new();
    let mut names = Vec::new();
    for s in &stmt.subject {
        let name = s.name.clone().unwrap_or_default();
        let hex = s
            .digest
            .get("sha256")
            .ok_or_else(|| format!("subject `{name}` has no sha256 digest"))?;
        let want: Digest = format!("sha256:{hex}")
            .parse()
            .map_err(|e| format!("subject `{name}`: {e}"))?;
        if name.starts_with('/') {
            in_image.insert(name.trim_start_matches('/').to_string(), want);
        } else if !name.contains('/') && cx.out.join(&name).is_file() && name.ends_with(".json") {
            let actual =
                Digest::of_file(&cx.out.join(&name)).map_err(|e| format!("{name}: {e}"))?;
            if actual != want {
                return Err(format!(
                    "{name}: sha256 is {actual} but the statement says {want}: the file was modified"
                ));
            }
        } else if want != image.manifest.digest {
            return Err(format!(
                "subject `{name}` ({want}) is neither the image manifest {} nor a file beside it",
                image.manifest.digest
            ));
        }
        names.push(name);
    }
    if !in_image.is_empty() {
        let found = files_in_layers(cx, layout, image, &in_image.keys().cloned().collect())?;
        for (path, want) in &in_image {
            match found.get(path) {
                None => return Err(format!("subject `/{path}` is not in the image's layers")),
                Some(actual) if actual != want => {
                    return Err(format!(
                        "/{path} in the image: sha256 is {actual} but the statement says {want}"
                    ));
                }
                _ => {}
            }
        }
    }
    Ok(format!(
        "{} subject digest(s) match: {}",
        names.len(),
        names.join(", ")
    ))
}

/// sha256 of each wanted regular file in the image's filesystem (later layers win).
fn files_in_layers(
    cx: &Ctx,
    layout: &Path,
    image: &ImageInfo,
    wanted: &BTreeSet<String>,
) -> Result<BTreeMap<String, Digest>, String> {
    let mut found = BTreeMap::new();
    for (media_type, digest) in &image.layers {
        let p = blob_path(layout, digest);
        let f = std::fs::File::open(&p).map_err(|e| format!("{}: {e}", cx.rel(&p)))?;
        let reader: Box<dyn Read> = match media_type.as_str() {
            t if t.ends_with("+gzip") || t.ends_with(".gzip") => Box::new(
                flate2::read::MultiGzDecoder::new(std::io::BufReader::new(f)),
            ),
            t if t.ends_with(".tar") => Box::new(f),
            t => {
                return Err(format!(
                    "{}: layer media type {t} cannot be read to check subjects",
                    cx.rel(&p)
                ));
            }
        };
        let mut ar = tar::Archive::new(reader);
        let entries = ar.entries().map_err(|e| format!("{}: {e}", cx.rel(&p)))?;
        for e in entries {
            let mut e = e.map_err(|e| format!("{}: {e}", cx.rel(&p)))?;
            let path = e
                .path()
                .map_err(|e| format!("{}: {e}", cx.rel(&p)))?
                .to_string_lossy()
                .trim_start_matches("./")
                .trim_start_matches('/')
                .to_string();
            if !wanted.contains(&path) || !e.header().entry_type().is_file() {
                continue;
            }
            let mut h = kiln_core::HashingWriter::new(std::io::sink());
            std::io::copy(&mut e, &mut h).map_err(|e| format!("{}: {e}", cx.rel(&p)))?;
            found.insert(path, h.finish().0);
        }
    }
    Ok(found)
}

fn check_requirement(
    cx: &Ctx,
    req: &Requirement,
    verified: &[(String, Statement)],
) -> Result<String, String> {
    let candidates: Vec<_> = verified
        .iter()
        .filter(|(_, s)| s.predicate_type == req.predicate_type)
        .collect();
    if candidates.is_empty() {
        let have: Vec<_> = verified
            .iter()
            .map(|(t, s)| format!("{t}: {}", s.predicate_type))
            .collect();
        return Err(format!(
            "missing attestation: no signed, verified statement with predicateType {} (have: {})",
            req.predicate_type,
            if have.is_empty() {
                "none".to_string()
            } else {
                have.join("; ")
            }
        ));
    }
    let mut why = Vec::new();
    for (title, s) in &candidates {
        match check_conditions(cx, req, s) {
            Ok(d) => return Ok(format!("{title}: {d}")),
            Err(e) => why.push(format!("{title}: {e}")),
        }
    }
    Err(why.join("; "))
}

fn check_conditions(cx: &Ctx, req: &Requirement, s: &Statement) -> Result<String, String> {
    let mut ok = vec!["signed".to_string()];
    let needs_provenance = req.build_type.is_some()
        || req.builder_id.is_some()
        || req.builder_id_regexp.is_some()
        || !req.lineage.is_empty();
    if !needs_provenance && !req.sbom {
        return Ok(ok.join(", "));
    }
    if s.predicate_type != SLSA_PROVENANCE_V1 && needs_provenance {
        return Err(format!(
            "conditions on buildType/builder/lineage need predicateType {SLSA_PROVENANCE_V1}"
        ));
    }
    let p: Provenance = serde_json::from_value(s.predicate.clone())
        .map_err(|e| format!("not a SLSA v1 predicate: {e}"))?;
    if let Some(bt) = &req.build_type {
        if &p.build_definition.build_type != bt {
            return Err(format!(
                "buildType is `{}`, the policy requires `{bt}`",
                p.build_definition.build_type
            ));
        }
        ok.push(format!("buildType {bt}"));
    }
    let id = &p.run_details.builder.id;
    if let Some(b) = &req.builder_id {
        if id != b {
            return Err(format!("builder.id is `{id}`, the policy requires `{b}`"));
        }
        ok.push(format!("builder {id}"));
    }
    if let Some(re) = &req.builder_id_regexp {
        let re = regex::Regex::new(re).map_err(|e| e.to_string())?;
        if !re.is_match(id) {
            return Err(format!("builder.id `{id}` does not match `{re}`"));
        }
        ok.push(format!("builder {id} matches"));
    }
    if !req.lineage.is_empty() {
        let lineage = &p.build_definition.external_parameters["lineage"];
        let source_ann = p
            .build_definition
            .resolved_dependencies
            .iter()
            .find(|d| d.name.as_deref() == Some("source"))
            .map(|d| d.annotations.clone())
            .unwrap_or_default();
        let missing: Vec<_> = req
            .lineage
            .iter()
            .filter(|k| {
                let in_params = lineage
                    .get(k.as_str())
                    .and_then(|v| v.as_str())
                    .is_some_and(|v| !v.is_empty());
                let in_ann = source_ann
                    .get(&format!("dev.kiln.lineage.{k}"))
                    .is_some_and(|v| v == &lineage[k.as_str()]);
                !(in_params && in_ann)
            })
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "lineage tag(s) missing: {}\n  fix: set them in kiln.toml [lineage] or KILN_LINEAGE_SOURCE/_TRANSFORM/_POLICY_VERSION",
                missing.join(", ")
            ));
        }
        ok.push(format!("lineage {}", req.lineage.join("/")));
    }
    if req.sbom {
        let sboms: Vec<_> = s
            .subject
            .iter()
            .filter_map(|d| d.name.as_deref())
            .filter(|n| {
                EVIDENCE.iter().any(|k| k.is_sbom && k.file == *n) && cx.out.join(n).is_file()
            })
            .collect();
        if sboms.is_empty() {
            return Err("no SBOM among the subjects (sbom = true)".into());
        }
        ok.push(format!("SBOM {}", sboms.join(", ")));
    }
    Ok(ok.join(", "))
}
