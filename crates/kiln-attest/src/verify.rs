//! `verify`: checks an output directory against a policy and reports one line per rule.
//!
//! Nothing is trusted because it is present: every blob of the image and of each
//! referrer is re-hashed, every signature is checked against the policy's keys or
//! identities, every subject digest is recomputed from the actual bytes (the manifest, the
//! binaries read back out of the layers, the SBOM files), and only signed statements can
//! satisfy a requirement.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use kiln_core::{Digest, canonical};
use serde::Serialize;

use crate::attach::{
    ANNOTATION_BUNDLE_CONTENT, ANNOTATION_BUNDLE_PREDICATE, ANNOTATION_COSIGN_KIND,
    ANNOTATION_INTOTO_PREDICATE, ANNOTATION_REF_NAME, ANNOTATION_TITLE, ArtifactManifest,
    COSIGN_KIND_ATTS, COSIGN_KIND_IMAGE, Descriptor, EMPTY_BLOB, MEDIA_TYPE_EMPTY,
    MEDIA_TYPE_MANIFEST, blob_path,
};
use crate::dsse::{BUNDLE_MEDIA_TYPE, Bundle, Envelope, PAYLOAD_TYPE, parse_strict};
use crate::evidence::{EVIDENCE, bundle_file, envelope_file};
use crate::outputs::{self, Source};
use crate::policy::{Policy, Requirement};
use crate::provenance::{Provenance, SLSA_PROVENANCE_V1, Statement};
use kiln_core::contract::layout::file;

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

/// One rule's outcome as its report line's detail: `Ok(what was verified)` is a PASS
/// line, `Err(why not)` a FAIL line. Deliberately not an error type: a failed rule is the
/// report's content, not a reason to stop (every rule is checked and reported), and the
/// text is read as one line of the report. The helpers below that return
/// `Result<_, String>` produce such a FAIL detail for the rule that calls them.
type Outcome = Result<String, String>;

struct Ctx<'a> {
    out: &'a Path,
    checks: Vec<Check>,
}

impl Ctx<'_> {
    fn push(&mut self, rule: impl Into<String>, r: Outcome) -> bool {
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

/// What `verify` is asked to check beyond the policy.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The tag (`org.opencontainers.image.ref.name`) to verify; `None`: the layout's single
    /// image (more than one is an error naming the tags).
    pub reference: Option<String>,
    /// The directory is a registry copy (`kiln pull`, `kiln verify REF`): a registry holds
    /// the layout and the attached evidence, not the archives and `summary.json` cut from
    /// them, so those may be absent (each present one is still checked whole).
    pub registry_copy: bool,
}

/// One image manifest of the layout, its blobs verified.
struct ImageInfo {
    manifest: Descriptor,
    tag: String,
    config_digest: Digest,
    diff_ids: Vec<Digest>,
    layers: Vec<(String, Digest, u64)>,
}

/// The layout as found: the image selected, every image, every referrer, and every blob
/// they reach.
struct Layout {
    image: ImageInfo,
    images: Vec<ImageInfo>,
    referrers: Vec<Descriptor>,
    /// cosign's attestations image (`kind` = `dev.cosignproject.cosign/atts`), if listed.
    cosign_atts: Option<Descriptor>,
    /// Images marked `kind` = `dev.cosignproject.cosign/image` (their digests).
    cosign_marked: Vec<Digest>,
    detail: String,
}

/// Verifies the output directory `out` (holding `oci/` and the evidence files): the
/// layout's single image.
pub fn verify(out: &Path, policy: &Policy) -> Report {
    verify_with(out, policy, &Options::default())
}

/// Verifies the output directory `out` with `opts` (`--ref`).
pub fn verify_with(out: &Path, policy: &Policy, opts: &Options) -> Report {
    let mut cx = Ctx {
        out,
        checks: Vec::new(),
    };
    let layout = out.join(file::OCI_DIR);

    let lay = match check_layout(&cx, &layout, opts.reference.as_deref(), opts.registry_copy) {
        Ok(l) => {
            cx.push("image", Ok(l.detail.clone()));
            l
        }
        Err(e) => {
            cx.push("image", Err(e));
            return finish(cx);
        }
    };
    let image = &lay.image;

    // Referrers: blobs, subject, and the copy beside the image. In a registry copy, what
    // other tools attached (no kiln title) is read apart: a Sigstore bundle it holds is
    // verified and may satisfy a requirement; anything else is listed and not counted.
    let mut attached: Vec<(Descriptor, ArtifactManifest, Vec<u8>)> = Vec::new();
    let mut foreign_verified: Vec<(String, Statement)> = Vec::new();
    let mut foreign_blobs: Vec<Digest> = Vec::new();
    for d in &lay.referrers {
        if opts.registry_copy && !is_kiln_referrer(&layout, d) {
            let label = format!("foreign {}", d.digest);
            match foreign_referrer(&cx, &layout, d, image, policy) {
                Ok((blobs, outcome)) => {
                    foreign_blobs.extend(blobs);
                    match outcome {
                        Foreign::Verified(signer, stmt) => {
                            cx.push(
                                label.clone(),
                                Ok(format!(
                                    "a bundle another tool attached: {} about this image, signed by {signer}",
                                    stmt.predicate_type
                                )),
                            );
                            foreign_verified.push((label, stmt));
                        }
                        Foreign::Ignored(why) => {
                            cx.push(label, Ok(format!("not counted: {why}")));
                        }
                    }
                }
                Err(e) => {
                    cx.push(label, Err(e));
                }
            }
            continue;
        }
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
    let title_of = |m: &ArtifactManifest| {
        m.layers[0]
            .annotations
            .get(ANNOTATION_TITLE)
            .cloned()
            .unwrap_or_default()
    };
    let mut titles = BTreeSet::new();
    for (d, m, _) in &attached {
        if !titles.insert(title_of(m)) {
            cx.push(
                format!("attached {}", title_of(m)),
                Err(format!(
                    "oci/index.json: {} is attached twice (again by {})",
                    title_of(m),
                    d.digest
                )),
            );
        }
    }
    // Evidence files beside the image that no referrer carries are suspicious too.
    for kind in EVIDENCE {
        if out.join(kind.file).is_file() && !titles.contains(kind.file) {
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
    let mut kiln_envelopes: Vec<(Vec<u8>, String)> = Vec::new();
    let mut any_bundle = false;
    for (_, m, bytes) in &attached {
        let title = title_of(m);
        if m.artifact_type == PAYLOAD_TYPE {
            cx.push(format!("signature {title}"), Err(format!("{title}: no signature: the statement is attached unsigned\n  fix: build with --key FILE (or $KILN_SIGNING_KEY) or --keyless")));
            continue;
        }
        if m.artifact_type != BUNDLE_MEDIA_TYPE {
            continue;
        }
        any_bundle = true;
        let r = check_signature(&cx, &title, bytes, policy).and_then(|(signer, stmt)| {
            check_statement_kind(&title, m, &stmt)?;
            Ok((signer, stmt))
        });
        match r {
            Ok((signer, stmt)) => {
                cx.push(
                    format!("signature {title}"),
                    Ok(format!("{} signed by {signer}", stmt.predicate_type)),
                );
                let subj = check_subjects(&cx, &layout, image, &stmt);
                if cx.push(format!("subjects {title}"), subj) {
                    // Post-build attestations are not in cosign's `.att`, cut at build time.
                    if !crate::attach::POST_BUILD.contains(&title.as_str())
                        && let Ok(b) = Bundle::parse(bytes, &title)
                    {
                        kiln_envelopes.push((
                            canonical::to_vec(&b.dsse_envelope).expect("envelope serializes"),
                            stmt.predicate_type.clone(),
                        ));
                    }
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

    // The signed provenance binds the tag to the digest; every manifest and tag in the
    // index must be that one.
    let provenance = verified
        .iter()
        .find(|(t, s)| t == PROVENANCE_BUNDLE && s.predicate_type == SLSA_PROVENANCE_V1)
        .map(|(_, s)| s.clone());
    let facts = provenance.as_ref().map(provenance_facts);
    let tags = match &facts {
        Some(Ok(f)) => check_tags(&lay, f, &verified),
        Some(Err(e)) => Err(e.clone()),
        None => Err(format!(
            "no verified provenance ({PROVENANCE_BUNDLE}) names an image: no tag or manifest in oci/index.json can be trusted"
        )),
    };
    cx.push("tags", tags);
    let atts_blobs = match check_cosign_atts(&cx, &layout, &lay, &kiln_envelopes) {
        Ok(None) => Vec::new(),
        Ok(Some((detail, blobs))) => {
            cx.push("cosign attestations", Ok(detail));
            blobs
        }
        Err(e) => {
            cx.push("cosign attestations", Err(e));
            Vec::new()
        }
    };

    // Raw documents: each must be what a verified statement signs.
    let raw: Vec<(String, Vec<u8>)> = attached
        .iter()
        .filter(|(_, m, _)| m.artifact_type != BUNDLE_MEDIA_TYPE && m.artifact_type != PAYLOAD_TYPE)
        .map(|(_, m, b)| (title_of(m), b.clone()))
        .collect();
    for (title, bytes) in &raw {
        let r = check_document(title, bytes, &verified);
        cx.push(format!("document {title}"), r);
    }
    for (title, _) in &verified {
        if let Some(kind) = EVIDENCE.iter().find(|k| bundle_file(k.file) == *title)
            && !raw.iter().any(|(t, _)| t == kind.file)
        {
            cx.push(
                format!("document {}", kind.file),
                Err(format!(
                    "{title} signs {} but that document is not attached to the image (removed?)",
                    kind.file
                )),
            );
        }
    }
    if let Some(p) = &provenance {
        let vex_attached = raw
            .iter()
            .any(|(t, _)| EVIDENCE.iter().any(|k| k.file == t && !k.is_sbom));
        let r = check_vex_inputs(p, vex_attached);
        cx.push("vex inputs", r);
    }

    // Outputs derived from the layout: the archives and the summary, cut from the layout
    // as built, before any post-build referrer.
    let as_built = match as_built(&layout, &attached) {
        Ok(a) => a,
        // A registry copy lists referrers in the registry's order and has no archives or
        // summary to compare (any present one is still compared, with the whole layout).
        Err(_) if opts.registry_copy => AsBuilt::default(),
        Err(e) => {
            cx.push("post-build referrers", Err(e));
            AsBuilt::default()
        }
    };
    let absent_in_copy = |file: &str| opts.registry_copy && !out.join(file).exists();
    let not_published = |file: &str| {
        Ok(format!(
            "{file}: not published to registries (it is cut from the layout verified above)"
        ))
    };
    match &facts {
        Some(Ok(f)) => {
            let r = if absent_in_copy(OCI_ARCHIVE) {
                not_published(OCI_ARCHIVE)
            } else {
                check_oci_archive(&cx, &layout, f, &as_built)
            };
            cx.push(format!("archive {OCI_ARCHIVE}"), r);
            let r = if absent_in_copy(DOCKER_ARCHIVE) {
                not_published(DOCKER_ARCHIVE)
            } else {
                check_docker_archive(&cx, &layout, image, f)
            };
            cx.push(format!("archive {DOCKER_ARCHIVE}"), r);
            let r = if absent_in_copy(SUMMARY) {
                not_published(SUMMARY)
            } else {
                check_summary(&cx, &layout, image, f, &as_built)
            };
            cx.push(SUMMARY, r);
        }
        _ => {
            for rule in [
                format!("archive {OCI_ARCHIVE}"),
                format!("archive {DOCKER_ARCHIVE}"),
                SUMMARY.to_string(),
            ] {
                cx.push(
                    rule.clone(),
                    Err(format!(
                        "{}: cannot be checked without a verified provenance",
                        rule.trim_start_matches("archive ")
                    )),
                );
            }
        }
    }
    let mut referenced = foreign_blobs.clone();
    referenced.extend(atts_blobs);
    let r = check_inventory(&cx, &lay, &attached, &referenced);
    cx.push("files", r);

    if policy.base_allowlist.is_some() || policy.deny_latest {
        let r = match &facts {
            Some(Ok(f)) => check_admission(policy, f),
            Some(Err(e)) => Err(e.clone()),
            None => Err(format!(
                "no verified provenance ({PROVENANCE_BUNDLE}): the base and tags cannot be judged"
            )),
        };
        cx.push("admission", r);
    }
    let mut all_verified = verified.clone();
    all_verified.extend(foreign_verified);
    for (i, req) in policy.requires.iter().enumerate() {
        let r = check_requirement(&cx, req, &all_verified);
        cx.push(format!("require[{i}] {}", req.predicate_type), r);
    }
    finish(cx)
}

/// Files of an output directory deliberately outside verification, with the reason
/// (README lists them too). Nothing else is skipped.
pub const UNVERIFIED: &[(&str, &str)] = &[
    (
        file::GATE,
        "written later by `cargo xtask gate`: a local verdict it recomputes on demand, not a build output",
    ),
    (
        file::PUSH,
        "written later by `kiln push`: a record of what was sent to a registry, not a build output",
    ),
];

fn unverified(rel: &str) -> bool {
    UNVERIFIED.iter().any(|(f, _)| *f == rel)
}

pub const OCI_ARCHIVE: &str = file::OCI_ARCHIVE;
pub const DOCKER_ARCHIVE: &str = file::DOCKER_ARCHIVE;
pub const SUMMARY: &str = file::SUMMARY;
const PROVENANCE_BUNDLE: &str = file::PROVENANCE_BUNDLE;
const MEDIA_TYPE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MEDIA_TYPE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
/// `dev.kiln.input` annotation of a VEX input in provenance's resolvedDependencies.
pub const ANNOTATION_INPUT: &str = "dev.kiln.input";
pub const INPUT_VEX_STATEMENTS: &str = "vex-statements";
pub const INPUT_OSV_ADVISORY: &str = "osv-advisory";

/// The artifact types kiln attaches; any other is a failure, never skipped.
fn known_artifact_type(t: &str) -> bool {
    t == BUNDLE_MEDIA_TYPE || t == PAYLOAD_TYPE || EVIDENCE.iter().any(|k| k.media_type == t)
}

#[derive(serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Index {
    schema_version: u32,
    media_type: String,
    manifests: Vec<IndexEntry>,
}

#[derive(serde::Deserialize, serde::Serialize, Clone)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct IndexEntry {
    media_type: String,
    digest: Digest,
    size: u64,
    #[serde(default)]
    artifact_type: Option<String>,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
    #[serde(default)]
    platform: Option<serde_json::Value>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ImageManifest {
    schema_version: u32,
    media_type: String,
    config: Descriptor,
    layers: Vec<Descriptor>,
}

/// `registry_copy`: the layout was pulled from a registry. Pulled by digest, it lists its
/// image without a tag (no tag claim to check; the digest must still be the signed
/// provenance's subject), and referrers other tools attached may have artifact types kiln
/// does not write (they are read apart, see `foreign_referrer`).
fn check_layout(
    cx: &Ctx,
    layout: &Path,
    reference: Option<&str>,
    registry_copy: bool,
) -> Result<Layout, String> {
    let index_path = layout.join("index.json");
    let ip = cx.rel(&index_path);
    let raw = std::fs::read(&index_path).map_err(|e| {
        format!("{ip}: cannot read: {e}\n  fix: point verify at target/kiln/out/<image>")
    })?;
    let ol = layout.join("oci-layout");
    let ol_bytes = std::fs::read(&ol).map_err(|e| format!("{}: cannot read: {e}", cx.rel(&ol)))?;
    if ol_bytes != OCI_LAYOUT {
        return Err(format!(
            "{}: is not {}: the file was modified",
            cx.rel(&ol),
            String::from_utf8_lossy(OCI_LAYOUT)
        ));
    }
    let value: serde_json::Value =
        serde_json::from_slice(&raw).map_err(|e| format!("{ip}: not JSON: {e}"))?;
    if canonical::to_vec(&value).ok().as_deref() != Some(raw.as_slice()) {
        return Err(format!(
            "{ip}: not in kiln's canonical form (spacing, key order, escapes or duplicate keys changed): the file was modified"
        ));
    }
    let index: Index = serde_json::from_value(value).map_err(|e| format!("{ip}: {e}"))?;
    if index.schema_version != 2 || index.media_type != MEDIA_TYPE_INDEX {
        return Err(format!(
            "{ip}: schemaVersion {} / mediaType `{}`, expected 2 / `{MEDIA_TYPE_INDEX}`",
            index.schema_version, index.media_type
        ));
    }
    let mut images = Vec::new();
    let mut referrers = Vec::new();
    let mut cosign_atts = None;
    let mut cosign_marked = Vec::new();
    for (i, e) in index.manifests.iter().enumerate() {
        let at = format!("{ip}: manifests[{i}] ({})", e.digest);
        if e.media_type != MEDIA_TYPE_MANIFEST {
            return Err(format!(
                "{at}: mediaType is `{}`, expected `{MEDIA_TYPE_MANIFEST}`",
                e.media_type
            ));
        }
        let mut annotations = e.annotations.clone().unwrap_or_default();
        let kind = annotations.get(ANNOTATION_COSIGN_KIND).cloned();
        if e.artifact_type.is_none() && kind.as_deref() == Some(COSIGN_KIND_ATTS) {
            // cosign's attestations image: checked against the verified envelopes below.
            if annotations.len() != 1 || e.platform.is_some() || cosign_atts.is_some() {
                return Err(format!(
                    "{at}: cosign's attestations image carries exactly one annotation, `kind`, once"
                ));
            }
            cosign_atts = Some(Descriptor {
                media_type: e.media_type.clone(),
                digest: e.digest,
                size: e.size,
                artifact_type: None,
                annotations,
            });
            continue;
        }
        if e.artifact_type.is_none() && kind.is_some() {
            if kind.as_deref() != Some(COSIGN_KIND_IMAGE) {
                return Err(format!(
                    "{at}: annotation kind = {kind:?} is not one kiln writes"
                ));
            }
            annotations.remove(ANNOTATION_COSIGN_KIND);
            cosign_marked.push(e.digest);
        }
        match &e.artifact_type {
            None => {
                let tag = match annotations.get(ANNOTATION_REF_NAME) {
                    Some(t) if annotations.len() == 1 && !t.is_empty() => t.clone(),
                    None if registry_copy && annotations.is_empty() => String::new(),
                    _ => {
                        return Err(format!(
                            "{at}: an image manifest must carry exactly one annotation, a non-empty {ANNOTATION_REF_NAME} (has {:?})",
                            annotations.keys().collect::<Vec<_>>()
                        ));
                    }
                };
                let info = check_image(cx, layout, e, &tag, &at)?;
                if images.iter().any(|x: &ImageInfo| x.tag == tag) {
                    return Err(format!("{at}: tag `{tag}` names two manifests"));
                }
                images.push(info);
            }
            Some(t) => {
                if !known_artifact_type(t) && !registry_copy {
                    return Err(format!(
                        "{at}: artifactType `{t}` is not one kiln attaches: refusing to skip it"
                    ));
                }
                if e.platform.is_some() {
                    return Err(format!("{at}: a referrer has no platform"));
                }
                referrers.push(Descriptor {
                    media_type: e.media_type.clone(),
                    digest: e.digest,
                    size: e.size,
                    artifact_type: Some(t.clone()),
                    annotations,
                });
            }
        }
    }
    let tags: Vec<&str> = images.iter().map(|i| i.tag.as_str()).collect();
    let pos = match reference {
        Some(r) => images.iter().position(|i| i.tag == r).ok_or_else(|| {
            format!(
                "{ip}: no image manifest is tagged `{r}` (tags: {})",
                tags.join(", ")
            )
        })?,
        None => match images.len() {
            0 => return Err(format!("{ip}: no image manifest")),
            1 => 0,
            n => {
                return Err(format!(
                    "{ip}: {n} image manifests (tags: {}): which one is verified is ambiguous\n  fix: choose one with --ref TAG",
                    tags.join(", ")
                ));
            }
        },
    };
    let image = images.remove(pos);
    let detail = format!(
        "{} ({}): manifest, config and {} layer(s) match their digests",
        image.manifest.digest,
        image.tag,
        image.layers.len()
    );
    Ok(Layout {
        image,
        images,
        referrers,
        cosign_atts,
        cosign_marked,
        detail,
    })
}

/// Reads and verifies an image manifest, its config and layers; checks the index entry's
/// platform against the config.
fn check_image(
    cx: &Ctx,
    layout: &Path,
    e: &IndexEntry,
    tag: &str,
    at: &str,
) -> Result<ImageInfo, String> {
    let mbytes = read_verified(
        cx,
        layout,
        &e.digest,
        Some(e.size),
        "image manifest named by oci/index.json",
    )?;
    let m: ImageManifest = serde_json::from_slice(&mbytes)
        .map_err(|err| format!("image manifest {}: {err}", e.digest))?;
    if m.schema_version != 2
        || m.media_type != MEDIA_TYPE_MANIFEST
        || m.config.media_type != MEDIA_TYPE_CONFIG
    {
        return Err(format!(
            "image manifest {}: schemaVersion/mediaType/config mediaType are not OCI's",
            e.digest
        ));
    }
    let cbytes = read_verified(
        cx,
        layout,
        &m.config.digest,
        Some(m.config.size),
        "image config",
    )?;
    let config: serde_json::Value = serde_json::from_slice(&cbytes)
        .map_err(|err| format!("image config {}: {err}", m.config.digest))?;
    let mut platform = serde_json::Map::new();
    for k in ["architecture", "os", "variant"] {
        if let Some(v) = config.get(k) {
            platform.insert(k.into(), v.clone());
        }
    }
    if e.platform.as_ref() != Some(&serde_json::Value::Object(platform.clone())) {
        return Err(format!(
            "{at}: platform {} is not the config's {}",
            e.platform.clone().unwrap_or_default(),
            serde_json::Value::Object(platform)
        ));
    }
    let diff_ids: Vec<Digest> = serde_json::from_value(config["rootfs"]["diff_ids"].clone())
        .map_err(|err| format!("image config {}: rootfs.diff_ids: {err}", m.config.digest))?;
    for (i, l) in m.layers.iter().enumerate() {
        hash_file(
            cx,
            &blob_path(layout, &l.digest),
            &l.digest,
            l.size,
            &format!("image layer {i}"),
        )?;
    }
    Ok(ImageInfo {
        manifest: Descriptor {
            media_type: e.media_type.clone(),
            digest: e.digest,
            size: e.size,
            artifact_type: None,
            annotations: BTreeMap::new(),
        },
        tag: tag.to_string(),
        config_digest: m.config.digest,
        diff_ids,
        layers: m
            .layers
            .iter()
            .map(|l| (l.media_type.clone(), l.digest, l.size))
            .collect(),
    })
}

/// cosign's attestations image in the layout must be exactly the one the verified
/// envelopes give (`cosign::attestation_tag`), listed iff the image is marked
/// `kind` = `dev.cosignproject.cosign/image`. `Ok(None)`: neither is there (unsigned).
/// Returns the blobs it references.
fn check_cosign_atts(
    cx: &Ctx,
    layout: &Path,
    lay: &Layout,
    envelopes: &[(Vec<u8>, String)],
) -> Result<Option<(String, Vec<Digest>)>, String> {
    let marked = lay.cosign_marked.contains(&lay.image.manifest.digest);
    let stray: Vec<_> = lay
        .cosign_marked
        .iter()
        .filter(|d| **d != lay.image.manifest.digest)
        .collect();
    if !stray.is_empty() {
        return Err(format!(
            "oci/index.json: {stray:?} marked as cosign's image, which is not the image verified"
        ));
    }
    let Some(d) = &lay.cosign_atts else {
        if marked {
            return Err("oci/index.json: the image is marked for cosign but no attestations image is listed (removed?)".into());
        }
        return Ok(None);
    };
    if !marked {
        return Err("oci/index.json: an attestations image is listed but the image is not marked `kind` = dev.cosignproject.cosign/image".into());
    }
    let want = crate::cosign::attestation_tag(&lay.image.manifest.digest, envelopes);
    if want.manifest_digest() != d.digest || want.manifest.len() as u64 != d.size {
        return Err(format!(
            "oci/index.json: cosign's attestations image {} is not the one the {} verified envelope(s) give ({}): it was modified or holds an unverified envelope",
            d.digest,
            envelopes.len(),
            want.manifest_digest()
        ));
    }
    let mut blobs = vec![d.digest];
    read_verified(
        cx,
        layout,
        &d.digest,
        Some(d.size),
        "cosign attestations manifest",
    )?;
    let config_digest = Digest::of(&want.config);
    read_verified(
        cx,
        layout,
        &config_digest,
        Some(want.config.len() as u64),
        "cosign attestations config",
    )?;
    blobs.push(config_digest);
    for (_, bytes) in &want.layers {
        let ld = Digest::of(bytes);
        read_verified(
            cx,
            layout,
            &ld,
            Some(bytes.len() as u64),
            "cosign attestation layer",
        )?;
        blobs.push(ld);
    }
    Ok(Some((
        format!(
            "{} ({} envelope(s)) is exactly what the verified bundles give; the image is marked for `cosign verify-attestation --local-image`",
            d.digest,
            want.layers.len()
        ),
        blobs,
    )))
}

/// Whether a referrer carries one of kiln's own evidence files (by its layer's title).
fn is_kiln_referrer(layout: &Path, d: &Descriptor) -> bool {
    let Ok(bytes) = std::fs::read(blob_path(layout, &d.digest)) else {
        return true; // unreadable: kiln's strict checks report it
    };
    let Ok(m) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return true;
    };
    let Some(title) = m["layers"][0]["annotations"][ANNOTATION_TITLE].as_str() else {
        return false;
    };
    crate::evidence::is_kiln_title(title)
}

/// What a referrer another tool attached amounts to.
enum Foreign {
    /// A Sigstore bundle signed by a key or identity the policy trusts, whose statement
    /// names this image: it can satisfy a requirement.
    Verified(String, Statement),
    /// Not evidence kiln counts (not a bundle, or not signed by anyone the policy trusts,
    /// as cosign ignores attestations a key does not verify).
    Ignored(String),
}

/// Checks a referrer another tool attached (e.g. `@sigstore/oci`, cosign v3): its blobs
/// hash to their digests and it refers to the image (else FAIL: the registry copy is
/// inconsistent); a bundle in it is verified against the policy. Returns the blobs it
/// references and what it amounts to.
fn foreign_referrer(
    cx: &Ctx,
    layout: &Path,
    d: &Descriptor,
    image: &ImageInfo,
    policy: &Policy,
) -> Result<(Vec<Digest>, Foreign), String> {
    let what = format!("referrer {} (attached by another tool)", d.digest);
    let bytes = read_verified(cx, layout, &d.digest, Some(d.size), &what)?;
    let m: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| format!("{what}: not JSON: {e}"))?;
    let subject: Option<Digest> = m["subject"]["digest"].as_str().and_then(|s| s.parse().ok());
    if subject != Some(image.manifest.digest) {
        return Err(format!(
            "{what}: its subject is not the image {}",
            image.manifest.digest
        ));
    }
    let descs: Vec<Descriptor> = std::iter::once(m["config"].clone())
        .chain(m["layers"].as_array().cloned().unwrap_or_default())
        .map(serde_json::from_value)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{what}: a descriptor: {e}"))?;
    let mut blobs = vec![d.digest];
    let mut contents = Vec::new();
    for x in &descs {
        contents.push(read_verified(cx, layout, &x.digest, Some(x.size), &what)?);
        blobs.push(x.digest);
    }
    let artifact_type = m["artifactType"].as_str().unwrap_or_default();
    let layers = &descs[1..];
    if artifact_type != BUNDLE_MEDIA_TYPE
        || layers.len() != 1
        || !layers[0]
            .media_type
            .starts_with("application/vnd.dev.sigstore.bundle")
    {
        return Ok((
            blobs,
            Foreign::Ignored(format!(
                "artifactType `{artifact_type}` is not a Sigstore bundle"
            )),
        ));
    }
    let label = format!("bundle {}", layers[0].digest);
    let bundle = match Bundle::parse(&contents[1], &label) {
        Ok(b) => b,
        Err(e) => {
            return Ok((
                blobs,
                Foreign::Ignored(format!("not a bundle kiln can read: {e}")),
            ));
        }
    };
    let signer = match verify_bundle(&bundle, policy, &label) {
        Ok(s) => s,
        Err(e) => return Ok((blobs, Foreign::Ignored(e))),
    };
    let payload = bundle
        .dsse_envelope
        .payload_bytes(&label)
        .map_err(|e| e.to_string())?;
    let stmt: Statement = serde_json::from_slice(&payload)
        .map_err(|e| format!("{label}: the signed payload is not an in-toto statement: {e}"))?;
    if stmt.type_ != crate::provenance::STATEMENT_TYPE {
        return Err(format!("{label}: statement _type is `{}`", stmt.type_));
    }
    let hex = image.manifest.digest.hex();
    if !stmt
        .subject
        .iter()
        .any(|s| s.digest.get("sha256") == Some(&hex))
    {
        return Err(format!(
            "{label}: signed by {signer}, but no subject of its statement is the image {}",
            image.manifest.digest
        ));
    }
    Ok((blobs, Foreign::Verified(signer, stmt)))
}

/// The layer media type and manifest annotations kiln gives each artifact type.
fn expected_referrer(m: &ArtifactManifest, title: &str) -> Result<(), String> {
    let t = m.artifact_type.as_str();
    let layer_type = &m.layers[0].media_type;
    if layer_type != t {
        return Err(format!(
            "its layer's mediaType `{layer_type}` is not its artifactType `{t}`"
        ));
    }
    if t == BUNDLE_MEDIA_TYPE {
        if !(title == PROVENANCE_BUNDLE
            || crate::attach::POST_BUILD.contains(&title)
            || EVIDENCE.iter().any(|k| bundle_file(k.file) == title))
        {
            return Err(format!("`{title}` is not a bundle kiln attaches"));
        }
        let keys: Vec<&str> = m.annotations.keys().map(String::as_str).collect();
        let pt = m.annotations.get(ANNOTATION_BUNDLE_PREDICATE);
        if keys
            != [
                ANNOTATION_BUNDLE_CONTENT,
                ANNOTATION_BUNDLE_PREDICATE,
                ANNOTATION_INTOTO_PREDICATE,
            ]
            || m.annotations[ANNOTATION_BUNDLE_CONTENT] != "dsse-envelope"
            || pt != m.annotations.get(ANNOTATION_INTOTO_PREDICATE)
        {
            return Err(format!("annotations {:?} are not kiln's", m.annotations));
        }
    } else if t == PAYLOAD_TYPE {
        if title != crate::evidence::PROVENANCE_FILE
            || m.annotations.keys().map(String::as_str).collect::<Vec<_>>()
                != [ANNOTATION_INTOTO_PREDICATE]
        {
            return Err(format!("`{title}` / {:?} are not kiln's", m.annotations));
        }
    } else {
        match EVIDENCE.iter().find(|k| k.file == title) {
            Some(k) if k.media_type == t => {}
            _ => return Err(format!("`{title}` is not a {t} document kiln attaches")),
        }
        if !m.annotations.is_empty() {
            return Err(format!("annotations {:?} are not kiln's", m.annotations));
        }
    }
    Ok(())
}

fn check_referrer(
    cx: &Ctx,
    layout: &Path,
    d: &Descriptor,
    image: &Descriptor,
) -> Result<(ArtifactManifest, Vec<u8>), String> {
    let bytes = read_verified(
        cx,
        layout,
        &d.digest,
        Some(d.size),
        "artifact manifest named by oci/index.json",
    )?;
    let m: ArtifactManifest = serde_json::from_slice(&bytes)
        .map_err(|e| format!("artifact manifest {}: {e}", d.digest))?;
    if canonical::to_vec(&m).ok().as_deref() != Some(bytes.as_slice()) {
        return Err(format!(
            "artifact manifest {}: not in kiln's canonical form (unknown fields?)",
            d.digest
        ));
    }
    if m.schema_version != 2 || m.media_type != MEDIA_TYPE_MANIFEST {
        return Err(format!(
            "artifact manifest {}: schemaVersion/mediaType are not OCI's",
            d.digest
        ));
    }
    if m.subject.digest != image.digest
        || m.subject.size != image.size
        || m.subject.media_type != image.media_type
        || m.subject.artifact_type.is_some()
        || !m.subject.annotations.is_empty()
    {
        return Err(format!(
            "artifact manifest {}: subject is {}, not the image {}",
            d.digest, m.subject.digest, image.digest
        ));
    }
    if m.config.media_type != MEDIA_TYPE_EMPTY
        || m.config.digest != Digest::of(EMPTY_BLOB)
        || m.config.size != EMPTY_BLOB.len() as u64
        || m.config.artifact_type.is_some()
        || !m.config.annotations.is_empty()
    {
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
    let title = layer
        .annotations
        .get(ANNOTATION_TITLE)
        .ok_or_else(|| format!("artifact manifest {}: layer has no title", d.digest))?;
    if layer.annotations.len() != 1 || layer.artifact_type.is_some() {
        return Err(format!(
            "artifact manifest {}: layer `{title}` carries fields kiln does not write",
            d.digest
        ));
    }
    if title.contains('/') || title.starts_with('.') {
        return Err(format!(
            "artifact manifest {}: layer title `{title}` is not a plain file name",
            d.digest
        ));
    }
    expected_referrer(&m, title)
        .map_err(|e| format!("artifact manifest {} ({title}): {e}", d.digest))?;
    // The index entry must say exactly what the manifest says: artifactType, and the
    // manifest's annotations plus the title.
    let mut want = m.annotations.clone();
    want.insert(ANNOTATION_TITLE.into(), title.clone());
    if d.artifact_type.as_deref() != Some(m.artifact_type.as_str()) || d.annotations != want {
        return Err(format!(
            "oci/index.json: the entry of {} ({title}) says artifactType {:?} and annotations {:?}, the manifest {} and {:?}: index.json was modified",
            d.digest, d.artifact_type, d.annotations, m.artifact_type, want
        ));
    }
    let blob = read_verified(
        cx,
        layout,
        &layer.digest,
        Some(layer.size),
        "attached evidence",
    )?;
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

/// A bundle's statement must be of the kind its title says.
fn check_statement_kind(title: &str, m: &ArtifactManifest, stmt: &Statement) -> Result<(), String> {
    let pt = stmt.predicate_type.as_str();
    if !crate::evidence::title_predicate_ok(title, pt) {
        return Err(format!(
            "{title}: signs a statement of predicateType {pt}, which is not what {title} carries"
        ));
    }
    if m.annotations
        .get(ANNOTATION_BUNDLE_PREDICATE)
        .map(String::as_str)
        != Some(pt)
    {
        return Err(format!(
            "{title}: the referrer's annotations say predicateType {:?}, the signed statement {pt}",
            m.annotations.get(ANNOTATION_BUNDLE_PREDICATE)
        ));
    }
    Ok(())
}

/// A raw document attached to the image must be exactly the predicate its verified
/// statement signs (kiln writes both from the same bytes, pretty canonical JSON).
fn check_document(title: &str, bytes: &[u8], verified: &[(String, Statement)]) -> Outcome {
    let bundle = bundle_file(title);
    let Some((_, stmt)) = verified.iter().find(|(t, _)| *t == bundle) else {
        return Err(format!(
            "{title}: no verified signature covers it ({bundle} is missing or failed): an unsigned document is bound to nothing"
        ));
    };
    let signed = canonical::to_vec_pretty(&stmt.predicate).map_err(|e| e.to_string())?;
    if signed != bytes {
        return Err(format!(
            "{title}: the attached document is not the one {bundle} signs: it was modified"
        ));
    }
    Ok(format!("{title} is the document {bundle} signs"))
}

/// VEX documents are derived from the statements and advisories: provenance must record
/// them, and recorded VEX inputs mean VEX documents must be attached.
fn check_vex_inputs(provenance: &Statement, vex_attached: bool) -> Outcome {
    let p: Provenance = serde_json::from_value(provenance.predicate.clone())
        .map_err(|e| format!("{PROVENANCE_BUNDLE}: not a SLSA v1 predicate: {e}"))?;
    let inputs: Vec<&str> = p
        .build_definition
        .resolved_dependencies
        .iter()
        .filter(|d| {
            d.annotations
                .get(ANNOTATION_INPUT)
                .is_some_and(|v| v == INPUT_VEX_STATEMENTS || v == INPUT_OSV_ADVISORY)
        })
        .filter_map(|d| d.name.as_deref())
        .collect();
    let has_statements = p.build_definition.resolved_dependencies.iter().any(|d| {
        d.annotations.get(ANNOTATION_INPUT).and_then(|v| v.as_str()) == Some(INPUT_VEX_STATEMENTS)
    });
    match (vex_attached, has_statements) {
        (true, true) => Ok(format!(
            "provenance records the VEX inputs: {}",
            inputs.join(", ")
        )),
        (true, false) => Err(format!(
            "VEX documents are attached but {PROVENANCE_BUNDLE} records no VEX statements among its resolvedDependencies"
        )),
        (false, true) => Err(format!(
            "{PROVENANCE_BUNDLE} records VEX inputs ({}) but no VEX document is attached to the image (removed?)",
            inputs.join(", ")
        )),
        (false, false) => Ok("no VEX: none attached and none recorded".into()),
    }
}

/// What the signed provenance says about the build, as the outputs need it.
struct Facts {
    predicate: Provenance,
    image: String,
    tag: String,
    sde: u64,
    /// `(path in the image, sha256)` of each binary subject.
    binaries: Vec<(String, Digest)>,
    /// The digest of the subject named `<image>:<tag>`.
    image_subject: Option<Digest>,
}

fn provenance_facts(stmt: &Statement) -> Result<Facts, String> {
    let p: Provenance = serde_json::from_value(stmt.predicate.clone())
        .map_err(|e| format!("{PROVENANCE_BUNDLE}: not a SLSA v1 predicate: {e}"))?;
    let ext = &p.build_definition.external_parameters;
    let s = |v: &serde_json::Value, what: &str| {
        v.as_str()
            .map(String::from)
            .ok_or_else(|| format!("{PROVENANCE_BUNDLE}: {what} is missing"))
    };
    let name = s(&ext["image"], "externalParameters.image")?;
    let tag = s(&ext["tag"], "externalParameters.tag")?;
    let sde = p.build_definition.internal_parameters["sourceDateEpoch"]["value"]
        .as_u64()
        .ok_or_else(|| {
            format!("{PROVENANCE_BUNDLE}: internalParameters.sourceDateEpoch.value is missing")
        })?;
    let subject_name = crate::provenance::image_subject_name(&name, &tag);
    let image_subject = stmt
        .subject
        .iter()
        .find(|sub| sub.name.as_deref() == Some(subject_name.as_str()))
        .and_then(|sub| sub.digest.get("sha256"))
        .and_then(|h| format!("sha256:{h}").parse().ok());
    let binaries = stmt
        .subject
        .iter()
        .filter_map(|sub| {
            let n = sub.name.as_deref()?;
            let hex = sub.digest.get("sha256")?;
            n.starts_with('/')
                .then(|| {
                    format!("sha256:{hex}")
                        .parse()
                        .ok()
                        .map(|d| (n.to_string(), d))
                })
                .flatten()
        })
        .collect();
    Ok(Facts {
        predicate: p,
        image: name,
        tag,
        sde,
        binaries,
        image_subject,
    })
}

/// Every manifest and tag of the index must be the one the provenance signs.
fn check_tags(lay: &Layout, f: &Facts, verified: &[(String, Statement)]) -> Outcome {
    let name = crate::provenance::image_subject_name(&f.image, &f.tag);
    let img = &lay.image;
    let mut errors = Vec::new();
    for (title, s) in verified {
        for sub in &s.subject {
            let n = sub.name.as_deref().unwrap_or_default();
            let is_image = sub.digest.get("sha256") == Some(&img.manifest.digest.hex());
            if is_image && n != name {
                errors.push(format!(
                    "{title}: names the image `{n}`, the signed provenance `{name}`"
                ));
            }
        }
    }
    // An untagged image (a registry copy pulled by digest) claims no tag.
    if img.tag != f.tag && !img.tag.is_empty() {
        errors.push(format!(
            "oci/index.json: the image verified is tagged `{}`, but the signed provenance names `{name}`: the tag was moved",
            img.tag
        ));
    }
    if f.image_subject != Some(img.manifest.digest) {
        errors.push(format!(
            "the signed provenance's subject `{name}` is not the image {} tagged `{}`",
            img.manifest.digest, img.tag
        ));
    }
    for other in &lay.images {
        errors.push(format!(
            "oci/index.json: image manifest {} (tag `{}`) is not the subject of the signed provenance ({name} = {}): an unsigned manifest",
            other.manifest.digest, other.tag, img.manifest.digest
        ));
    }
    if !errors.is_empty() {
        return Err(errors.join("; "));
    }
    if img.tag.is_empty() {
        return Ok(format!(
            "the image pulled by digest, {}, is the signed provenance's `{name}`",
            img.manifest.digest
        ));
    }
    Ok(format!(
        "oci/index.json has one image, tagged `{}` → {}, as the signed provenance says",
        f.tag, img.manifest.digest
    ))
}

/// The layout as the build left it: `index.json` without the post-build referrers (they
/// are appended last, so removing them gives the build's bytes back) and the blobs only
/// they reach.
#[derive(Default)]
struct AsBuilt {
    /// `None`: no post-build referrer, the index is as built.
    index: Option<Vec<u8>>,
    /// Output-directory paths (`oci/blobs/sha256/...`, the attestation files beside the
    /// image) that came after the build.
    later: BTreeSet<String>,
}

fn as_built(
    layout: &Path,
    attached: &[(Descriptor, ArtifactManifest, Vec<u8>)],
) -> Result<AsBuilt, String> {
    let post: Vec<_> = attached
        .iter()
        .filter(|(_, m, _)| {
            m.layers
                .first()
                .and_then(|l| l.annotations.get(ANNOTATION_TITLE))
                .is_some_and(|t| crate::attach::POST_BUILD.contains(&t.as_str()))
        })
        .collect();
    if post.is_empty() {
        return Ok(AsBuilt::default());
    }
    let raw =
        std::fs::read(layout.join("index.json")).map_err(|e| format!("oci/index.json: {e}"))?;
    let mut index: serde_json::Value =
        serde_json::from_slice(&raw).map_err(|e| format!("oci/index.json: {e}"))?;
    let manifests = index["manifests"]
        .as_array_mut()
        .ok_or("oci/index.json: no `manifests` array")?;
    let n = manifests.len();
    let digests: BTreeSet<String> = post.iter().map(|(d, _, _)| d.digest.to_string()).collect();
    // Post-build referrers must be the last entries: anything after them was added later
    // still, by something verify does not know.
    let tail = manifests
        .iter()
        .rev()
        .take_while(|m| m["digest"].as_str().is_some_and(|d| digests.contains(d)))
        .count();
    if tail != post.len() {
        return Err(format!(
            "oci/index.json: the post-build referrer(s) {} are not the last entries of the index",
            digests.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    manifests.truncate(n - tail);
    let blob = |d: &Digest| format!("oci/blobs/sha256/{}", d.hex());
    let mut still_used = BTreeSet::new();
    for (d, m, _) in attached {
        if !digests.contains(&d.digest.to_string()) {
            still_used.insert(m.config.digest);
            still_used.extend(m.layers.iter().map(|l| l.digest));
        }
    }
    let mut later = BTreeSet::new();
    for (d, m, _) in post {
        later.insert(blob(&d.digest));
        for l in &m.layers {
            if !still_used.contains(&l.digest) {
                later.insert(blob(&l.digest));
            }
            if let Some(t) = l.annotations.get(ANNOTATION_TITLE) {
                later.insert(t.clone());
                let stem = t.trim_end_matches(".sigstore.json");
                later.insert(envelope_file(&format!("{stem}.json")));
            }
        }
    }
    Ok(AsBuilt {
        index: Some(canonical::to_vec(&index).map_err(|e| e.to_string())?),
        later,
    })
}

fn check_oci_archive(cx: &Ctx, layout: &Path, f: &Facts, as_built: &AsBuilt) -> Outcome {
    let mut files = BTreeMap::new();
    for p in walk(layout).map_err(|e| format!("{}: {e}", cx.rel(layout)))? {
        let rel = p
            .strip_prefix(layout)
            .expect("walk stays under the layout")
            .to_string_lossy()
            .into_owned();
        if as_built.later.contains(&format!("{}/{rel}", file::OCI_DIR)) {
            continue;
        }
        if rel == "index.json"
            && let Some(index) = &as_built.index
        {
            files.insert(rel, Source::Bytes(index.clone()));
            continue;
        }
        files.insert(rel, Source::File(p));
    }
    let entries = outputs::entries(files);
    outputs::compare(&cx.out.join(OCI_ARCHIVE), &entries, f.sde)
        .map_err(|e| format!("{OCI_ARCHIVE}: {e}: the archive is not the verified layout"))?;
    Ok(format!(
        "{OCI_ARCHIVE} is the verified layout, byte for byte ({} entries)",
        entries.len()
    ))
}

fn check_docker_archive(cx: &Ctx, layout: &Path, image: &ImageInfo, f: &Facts) -> Outcome {
    let rel = |d: &Digest| format!("blobs/sha256/{}", d.hex());
    let mut files = BTreeMap::new();
    files.insert(
        rel(&image.config_digest),
        Source::File(blob_path(layout, &image.config_digest)),
    );
    let mut layers = Vec::new();
    for (_, d, _) in &image.layers {
        files.insert(rel(d), Source::File(blob_path(layout, d)));
        layers.push(rel(d));
    }
    let manifest = serde_json::json!([{
        "Config": rel(&image.config_digest),
        "RepoTags": [crate::provenance::image_subject_name(&f.image, &f.tag)],
        "Layers": layers,
    }]);
    files.insert(
        kiln_core::contract::layout::docker_archive::MANIFEST.into(),
        Source::Bytes(canonical::to_vec(&manifest).map_err(|e| e.to_string())?),
    );
    let entries = outputs::entries(files);
    outputs::compare(&cx.out.join(DOCKER_ARCHIVE), &entries, f.sde)
        .map_err(|e| format!("{DOCKER_ARCHIVE}: {e}: the archive is not the verified image"))?;
    Ok(format!(
        "{DOCKER_ARCHIVE} is the verified image's config and layers, byte for byte"
    ))
}

/// Regular files under `dir`, recursively, sorted; anything else is an error.
fn walk(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let e = e?;
            let ty = e.file_type()?;
            if ty.is_dir() {
                stack.push(e.path());
            } else if ty.is_file() {
                out.push(e.path());
            } else {
                return Err(std::io::Error::other(format!(
                    "{} is neither a regular file nor a directory",
                    e.path().display()
                )));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// `summary.json` must be exactly what the signed provenance, the verified layout and the
/// files on disk give.
fn check_summary(
    cx: &Ctx,
    layout: &Path,
    image: &ImageInfo,
    f: &Facts,
    as_built: &AsBuilt,
) -> Outcome {
    let expected = expected_summary(cx, layout, image, f, as_built)?;
    let want = canonical::to_vec_pretty(&expected).map_err(|e| e.to_string())?;
    let got =
        std::fs::read(cx.out.join(SUMMARY)).map_err(|e| format!("{SUMMARY}: cannot read: {e}"))?;
    if got != want {
        let field = serde_json::from_slice::<serde_json::Value>(&got)
            .ok()
            .and_then(|g| {
                expected
                    .as_object()?
                    .iter()
                    .find(|(k, v)| g.get(k.as_str()) != Some(v))
                    .map(|(k, _)| k.clone())
            });
        return Err(match field {
            Some(k) => format!(
                "{SUMMARY}: `{k}` is not what the signed provenance, the layout and the files say: the summary was modified"
            ),
            None => format!(
                "{SUMMARY}: not the summary of these outputs (bytes differ from kiln's canonical form): the summary was modified"
            ),
        });
    }
    Ok(format!(
        "{SUMMARY} matches the signed provenance, the layout and every file's sha256"
    ))
}

fn expected_summary(
    cx: &Ctx,
    layout: &Path,
    image: &ImageInfo,
    f: &Facts,
    as_built: &AsBuilt,
) -> Result<serde_json::Value, String> {
    use serde_json::{Value, json};
    let p = &f.predicate;
    let ext = &p.build_definition.external_parameters;
    let int = &p.build_definition.internal_parameters;
    let deps = &p.build_definition.resolved_dependencies;
    let dep = |pred: &dyn Fn(&crate::provenance::ResourceDescriptor) -> bool| {
        deps.iter().find(|d| pred(d))
    };
    let sha = |d: &crate::provenance::ResourceDescriptor| {
        d.digest
            .get("sha256")
            .map(|h| Value::String(format!("sha256:{h}")))
            .unwrap_or(Value::Null)
    };
    let toolchain = dep(&|d| d.annotations.contains_key("rustc"))
        .ok_or_else(|| format!("{PROVENANCE_BUNDLE}: no toolchain among resolvedDependencies"))?;
    let cargo_lock = dep(&|d| d.name.as_deref() == Some(kiln_core::contract::layout::CARGO_LOCK))
        .ok_or_else(|| {
        format!("{PROVENANCE_BUNDLE}: no Cargo.lock among resolvedDependencies")
    })?;
    let base = dep(&|d| d.name.as_deref() == Some("base-image"))
        .map(sha)
        .unwrap_or(Value::Null);

    let wanted: BTreeSet<String> = f
        .binaries
        .iter()
        .map(|(p, _)| p.trim_start_matches('/').to_string())
        .collect();
    let found = files_in_layers(cx, layout, image, &wanted)?;
    let mut binaries = Vec::new();
    for (path, d) in &f.binaries {
        let (_, size) = found
            .get(path.trim_start_matches('/'))
            .ok_or_else(|| format!("binary {path} is not in the image's layers"))?;
        binaries.push(json!({
            "name": path.rsplit('/').next().unwrap_or_default(),
            "path": path,
            "sha256": d,
            "size": size,
        }));
    }
    if image.diff_ids.len() != image.layers.len() {
        return Err(format!(
            "image config {}: {} diff_ids for {} layers",
            image.config_digest,
            image.diff_ids.len(),
            image.layers.len()
        ));
    }
    let layers: Vec<Value> = image
        .layers
        .iter()
        .zip(&image.diff_ids)
        .map(|((_, d, size), diff)| json!({"digest": d, "diff_id": diff, "size": size}))
        .collect();
    let mut artifacts = Vec::new();
    for path in walk(cx.out).map_err(|e| e.to_string())? {
        let rel = slash_rel(cx.out, &path);
        if rel == SUMMARY || unverified(&rel) || as_built.later.contains(&rel) {
            continue;
        }
        if rel == "oci/index.json"
            && let Some(index) = &as_built.index
        {
            artifacts.push(json!({"path": rel, "sha256": Digest::of(index), "size": index.len()}));
            continue;
        }
        let meta = std::fs::metadata(&path).map_err(|e| format!("{rel}: {e}"))?;
        let d = Digest::of_file(&path).map_err(|e| format!("{rel}: {e}"))?;
        artifacts.push(json!({"path": rel, "sha256": d, "size": meta.len()}));
    }
    Ok(json!({
        "schema": kiln_core::contract::summary::SCHEMA,
        "kiln_version": p.run_details.builder.version.get("kiln"),
        "image": f.image,
        "ref_name": f.tag,
        "platform": ext["platform"],
        "digest": image.manifest.digest,
        "config_digest": image.config_digest,
        "layers": layers,
        "base": base,
        "source_date_epoch": int["sourceDateEpoch"],
        "sandbox": int["sandbox"],
        "environment": int["environmentAllowlist"],
        "toolchain": {
            "lock": toolchain.name,
            "lock_digest": sha(toolchain),
            "rustc": toolchain.annotations["rustc"],
            "target": ext["target"],
        },
        "kiln_toml": ext["kilnToml"]["sha256"].as_str().map(|h| format!("sha256:{h}")),
        "cargo_lock": sha(cargo_lock),
        "binaries": binaries,
        "artifacts": artifacts,
    }))
}

/// Every file in the output directory must be one kiln writes and `verify` checks: an
/// unknown file (or a blob nothing references) is refused, not ignored.
fn check_inventory(
    cx: &Ctx,
    lay: &Layout,
    attached: &[(Descriptor, ArtifactManifest, Vec<u8>)],
    foreign_blobs: &[Digest],
) -> Outcome {
    let mut known: BTreeSet<String> = [
        OCI_ARCHIVE,
        DOCKER_ARCHIVE,
        SUMMARY,
        "oci/index.json",
        "oci/oci-layout",
    ]
    .map(String::from)
    .into();
    let blob = |d: &Digest| format!("oci/blobs/sha256/{}", d.hex());
    for d in foreign_blobs {
        known.insert(blob(d));
    }
    for img in std::iter::once(&lay.image).chain(&lay.images) {
        known.insert(blob(&img.manifest.digest));
        known.insert(blob(&img.config_digest));
        for (_, d, _) in &img.layers {
            known.insert(blob(d));
        }
    }
    for (d, m, _) in attached {
        known.insert(blob(&d.digest));
        known.insert(blob(&m.config.digest));
        for l in &m.layers {
            known.insert(blob(&l.digest));
            if let Some(t) = l.annotations.get(ANNOTATION_TITLE) {
                known.insert(t.clone());
                if m.artifact_type == BUNDLE_MEDIA_TYPE {
                    let stem = t.trim_end_matches(".sigstore.json");
                    known.insert(envelope_file(&format!("{stem}.json")));
                }
            }
        }
    }
    let mut n = 0;
    for path in walk(cx.out).map_err(|e| e.to_string())? {
        let rel = slash_rel(cx.out, &path);
        if unverified(&rel) {
            continue;
        }
        if !known.contains(&rel) {
            return Err(format!(
                "{rel}: not an output kiln writes for this image (nothing references it): verify cannot vouch for it"
            ));
        }
        n += 1;
    }
    Ok(format!("all {n} files are outputs verify checked"))
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

/// Checks the bundle `title` (bytes already known to match the attached blob), and that
/// the envelope file beside it is the same signed envelope. Returns the signer and the
/// statement.
fn check_signature(
    cx: &Ctx,
    title: &str,
    bytes: &[u8],
    policy: &Policy,
) -> Result<(String, Statement), String> {
    let (signer, stmt) = verify_statement_bundle(bytes, policy, title)?;
    let bundle = Bundle::parse(bytes, title).map_err(|e| e.to_string())?;
    let env = &bundle.dsse_envelope;
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
    Ok((signer, stmt))
}

/// Verifies the Sigstore bundle `bytes` (named `title` in messages) against `policy`'s
/// keys or identities and returns who signed it and the in-toto statement it signs.
/// Only the signature is checked here: what the statement claims (its subjects) is the
/// caller's to compare with the bytes it is about.
pub fn verify_statement_bundle(
    bytes: &[u8],
    policy: &Policy,
    title: &str,
) -> Result<(String, Statement), String> {
    let bundle = Bundle::parse(bytes, title).map_err(|e| e.to_string())?;
    let signer = verify_bundle(&bundle, policy, title)?;
    let payload = bundle
        .dsse_envelope
        .payload_bytes(title)
        .map_err(|e| e.to_string())?;
    let stmt: Statement =
        parse_strict(&payload, &format!("{title} (statement)")).map_err(|e| e.to_string())?;
    if stmt.type_ != crate::provenance::STATEMENT_TYPE {
        return Err(format!("{title}: statement _type is `{}`", stmt.type_));
    }
    Ok((signer, stmt))
}

/// Checks one `[[require]]` of a policy against statements already verified, with the
/// files they name (SBOMs for `sbom = true`) looked up in `dir`: what `verify` does per
/// requirement, for callers that hold the statements but not an image layout (the
/// compliance controls judge an evidence pack).
pub fn check_requirement_in(
    dir: &Path,
    req: &Requirement,
    verified: &[(String, Statement)],
) -> Result<String, String> {
    let cx = Ctx {
        out: dir,
        checks: Vec::new(),
    };
    check_requirement(&cx, req, verified)
}

/// Checks a bundle's signature against the policy's keys (by the bundle's key hint) or,
/// for a certificate bundle, its Fulcio identities and Rekor entry; returns who signed.
fn verify_bundle(bundle: &Bundle, policy: &Policy, title: &str) -> Result<String, String> {
    let env = &bundle.dsse_envelope;
    Ok(
        match (
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
                crate::keyless::verify_bundle(bundle, policy, title).map_err(|e| e.to_string())?
            }
            (None, None) => unreachable!("Bundle::parse requires one"),
        },
    )
}

fn check_subjects(cx: &Ctx, layout: &Path, image: &ImageInfo, stmt: &Statement) -> Outcome {
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
                Some((actual, _)) if actual != want => {
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

/// sha256 and size of each wanted regular file in the image's filesystem (later layers
/// win).
fn files_in_layers(
    cx: &Ctx,
    layout: &Path,
    image: &ImageInfo,
    wanted: &BTreeSet<String>,
) -> Result<BTreeMap<String, (Digest, u64)>, String> {
    let mut found = BTreeMap::new();
    for (media_type, digest, _) in &image.layers {
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
            let (d, len, _) = h.finish();
            found.insert(path, (d, len));
        }
    }
    Ok(found)
}

fn check_requirement(cx: &Ctx, req: &Requirement, verified: &[(String, Statement)]) -> Outcome {
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

fn check_conditions(cx: &Ctx, req: &Requirement, s: &Statement) -> Outcome {
    let mut ok = vec!["signed".to_string()];
    let needs_provenance = req.build_type.is_some()
        || req.builder_id.is_some()
        || req.builder_id_regexp.is_some()
        || !req.lineage.is_empty();
    let needs_controls = !req.controls_pass.is_empty() || req.all_controls_pass;
    if needs_controls {
        return check_controls(req, s);
    }
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

/// The policy's admission rules, on what the signed provenance says: the base image (its
/// `dev.kiln.base.ref`, pinned by the dependency's digest) must be on `base_allowlist`,
/// and with `deny_latest` neither the image's tag nor the base's reference may be
/// `latest` or missing. A base recorded without a reference cannot be shown to be on an
/// allowlist, so it is refused.
fn check_admission(policy: &Policy, f: &Facts) -> Outcome {
    use crate::provenance::{ANNOTATION_BASE_REF, BASE_IMAGE};
    use kiln_core::contract::Reference;
    let base = f
        .predicate
        .build_definition
        .resolved_dependencies
        .iter()
        .find(|d| d.name.as_deref() == Some(BASE_IMAGE));
    let mut ok = Vec::new();
    let base_ref = match base {
        None => None,
        Some(d) => {
            let hex = d
                .digest
                .get("sha256")
                .ok_or("the base-image dependency has no sha256 digest")?;
            let digest: Digest = format!("sha256:{hex}")
                .parse()
                .map_err(|e| format!("base-image digest: {e}"))?;
            match d
                .annotations
                .get(ANNOTATION_BASE_REF)
                .and_then(|v| v.as_str())
            {
                Some(r) => {
                    let mut r = Reference::parse(r).map_err(|e| e.to_string())?;
                    if r.digest.is_some_and(|d| d != digest) {
                        return Err(format!(
                            "the base reference {r} names another digest than the base built on ({digest})"
                        ));
                    }
                    r.digest = Some(digest);
                    Some(r)
                }
                None if policy.base_allowlist.is_some() => {
                    return Err(format!(
                        "the base image {digest} is recorded without a reference ({ANNOTATION_BASE_REF}): it cannot be shown to be on the policy's base_allowlist\n  fix: build with base.ref in kiln.toml"
                    ));
                }
                None => None,
            }
        }
    };
    if let Some(a) = &policy.base_allowlist {
        match &base_ref {
            None => ok.push("scratch base (no base image)".to_string()),
            Some(r) => ok.push(
                a.permits(r)
                    .map_err(|e| format!("{e} (the policy's base_allowlist)"))?,
            ),
        }
    }
    if policy.deny_latest {
        let image = Reference::parse(&format!("{}:{}", f.image, f.tag))
            .map_err(|e| format!("image tag `{}`: {e}", f.tag))?;
        if image.tag.as_deref() == Some("latest") {
            return Err(format!(
                "image {}:{} is tagged `latest` (deny_latest)",
                f.image, f.tag
            ));
        }
        if let Some(r) = &base_ref {
            r.require_pinned_tag()
                .map_err(|e| format!("base: {e} (deny_latest)"))?;
        }
        ok.push(format!("tag {} and base reference are pinned", f.tag));
    }
    Ok(ok.join("; "))
}

/// `controls_pass` / `all_controls_pass`: the signed control attestation says these
/// controls passed. A listed id the attestation does not have is a failure (a catalog that
/// dropped a control must not pass by omission).
fn check_controls(req: &Requirement, s: &Statement) -> Outcome {
    use kiln_core::contract::controls::{ControlsPredicate, PREDICATE_TYPE, Verdict};
    if s.predicate_type != PREDICATE_TYPE {
        return Err(format!(
            "controls_pass/all_controls_pass need predicateType {PREDICATE_TYPE}"
        ));
    }
    let p: ControlsPredicate = serde_json::from_value(s.predicate.clone())
        .map_err(|e| format!("not a {PREDICATE_TYPE} predicate: {e}"))?;
    let failed = |c: &kiln_core::contract::controls::ControlResult| {
        format!(
            "{} failed ({})",
            c.id,
            if c.failures.is_empty() {
                "no reason recorded".to_string()
            } else {
                c.failures.join("; ")
            }
        )
    };
    let mut why = Vec::new();
    for id in &req.controls_pass {
        match p.control(id) {
            None => why.push(format!("{id} is not in the attestation")),
            Some(c) if c.result != Verdict::Pass => why.push(failed(c)),
            Some(_) => {}
        }
    }
    if req.all_controls_pass {
        if p.controls.is_empty() {
            why.push("the attestation lists no controls".into());
        }
        why.extend(
            p.controls
                .iter()
                .filter(|c| c.result != Verdict::Pass && !req.controls_pass.contains(&c.id))
                .map(failed),
        );
    }
    if !why.is_empty() {
        return Err(why.join("; "));
    }
    let n = if req.all_controls_pass {
        p.controls.len()
    } else {
        req.controls_pass.len()
    };
    Ok(format!(
        "signed, {n} control(s) passed (catalog {}, pack {})",
        p.catalog.path, p.pack.manifest_sha256
    ))
}

/// Writes the outputs kiln-build derives after signing (the archives, then the summary)
/// the way it does, for unit tests that make an output directory without kiln-build.
#[cfg(test)]
pub(crate) fn write_derived(out: &Path) {
    let cx = Ctx {
        out,
        checks: Vec::new(),
    };
    let layout = out.join(file::OCI_DIR);
    let lay = check_layout(&cx, &layout, None, false).unwrap();
    let env = Envelope::parse(
        &std::fs::read(out.join(file::PROVENANCE_ENVELOPE)).unwrap(),
        file::PROVENANCE_ENVELOPE,
    )
    .unwrap();
    let stmt: Statement = serde_json::from_slice(&env.payload_bytes("p").unwrap()).unwrap();
    let f = provenance_facts(&stmt).unwrap();
    let mut files = BTreeMap::new();
    for p in walk(&layout).unwrap() {
        let rel = p
            .strip_prefix(&layout)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        files.insert(rel, Source::File(p));
    }
    let oci = outputs::write(&outputs::entries(files), f.sde);
    std::fs::write(out.join(OCI_ARCHIVE), oci).unwrap();
    let img = &lay.image;
    let rel = |d: &Digest| format!("blobs/sha256/{}", d.hex());
    let mut files = BTreeMap::new();
    files.insert(
        rel(&img.config_digest),
        Source::File(blob_path(&layout, &img.config_digest)),
    );
    let mut layers = Vec::new();
    for (_, d, _) in &img.layers {
        files.insert(rel(d), Source::File(blob_path(&layout, d)));
        layers.push(rel(d));
    }
    let manifest = serde_json::json!([{"Config": rel(&img.config_digest), "RepoTags": [format!("{}:{}", f.image, f.tag)], "Layers": layers}]);
    files.insert(
        "manifest.json".into(),
        Source::Bytes(canonical::to_vec(&manifest).unwrap()),
    );
    let docker = outputs::write(&outputs::entries(files), f.sde);
    std::fs::write(out.join(DOCKER_ARCHIVE), docker).unwrap();
    let summary = expected_summary(&cx, &layout, img, &f, &AsBuilt::default()).unwrap();
    std::fs::write(
        out.join(SUMMARY),
        canonical::to_vec_pretty(&summary).unwrap(),
    )
    .unwrap();
}

/// `path` under `out` as a `/`-separated relative name (how the rules and `UNVERIFIED` name
/// files, whatever the platform's separator).
fn slash_rel(out: &Path, path: &Path) -> String {
    path.strip_prefix(out)
        .expect("walk stays under out")
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}
