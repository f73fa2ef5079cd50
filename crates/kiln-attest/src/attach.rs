//! Attaching evidence to an image as OCI 1.1 referrers, inside its image layout.
//!
//! Each piece of evidence becomes an artifact manifest: an image manifest with
//! `artifactType`, the empty config descriptor, one layer (the file) and `subject` = the
//! image manifest. The manifests are listed in `index.json` after the image (which keeps
//! its `ref.name` and stays first, so `oci:DIR:TAG` still resolves to it), and carry
//! `artifactType` and annotations there too: that is what `skopeo copy --all`, `oras` and
//! the referrers API (or its tag-schema fallback) read, so the layout pushes as-is.
//! JSON goes through `kiln_core::canonical` and every file appears via a rename.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kiln_core::{Digest, canonical, fsx};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Result, io};

pub const MEDIA_TYPE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_TYPE_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// The `{}` blob every artifact manifest uses as its config.
pub const EMPTY_BLOB: &[u8] = b"{}";
pub const ANNOTATION_TITLE: &str = "org.opencontainers.image.title";
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Annotations that say what a referrer attests (read by cosign, the Sigstore OCI
/// conventions and kiln's `verify`).
pub const ANNOTATION_BUNDLE_PREDICATE: &str = "dev.sigstore.bundle.predicateType";
pub const ANNOTATION_BUNDLE_CONTENT: &str = "dev.sigstore.bundle.content";
pub const ANNOTATION_INTOTO_PREDICATE: &str = "in-toto.io/predicate-type";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An OCI 1.1 artifact manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactManifest {
    pub schema_version: u32,
    pub media_type: String,
    pub artifact_type: String,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    pub subject: Descriptor,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// One piece of evidence to attach.
#[derive(Debug, Clone)]
pub struct Attachment {
    /// The file's name beside the image (becomes the layer's title).
    pub file: String,
    pub artifact_type: String,
    pub media_type: String,
    pub bytes: Vec<u8>,
    pub annotations: BTreeMap<String, String>,
}

pub(crate) fn blob_path(layout: &Path, d: &Digest) -> std::path::PathBuf {
    layout.join("blobs").join("sha256").join(d.hex())
}

/// `<layout>/blobs/sha256/<hex>`: where a layout keeps the blob `d`.
pub fn blob_file(layout: &Path, d: &Digest) -> std::path::PathBuf {
    blob_path(layout, d)
}

fn write_blob(layout: &Path, bytes: &[u8]) -> Result<Digest> {
    let d = Digest::of(bytes);
    let p = blob_path(layout, &d);
    fsx::write_atomic(&p, bytes).map_err(io("cannot write", &p))?;
    Ok(d)
}

/// A layout's `index.json`, read and parsed, to change and write back (canonical, via a
/// rename) or to read from; errors name the file.
struct IndexFile {
    path: PathBuf,
    json: Value,
}

impl IndexFile {
    fn read(layout: &Path) -> Result<IndexFile> {
        let path = layout.join("index.json");
        let raw = std::fs::read(&path).map_err(io("cannot read", &path))?;
        let json = serde_json::from_slice(&raw).map_err(|e| crate::Error::Invalid {
            file: path.display().to_string(),
            message: e.to_string(),
        })?;
        Ok(IndexFile { path, json })
    }

    fn invalid(&self, message: String) -> crate::Error {
        crate::Error::Invalid {
            file: self.path.display().to_string(),
            message,
        }
    }

    /// The `manifests` array; an index without one is invalid.
    fn manifests(&mut self) -> Result<&mut Vec<Value>> {
        if !self.json["manifests"].is_array() {
            return Err(self.invalid("no `manifests` array".into()));
        }
        Ok(self.json["manifests"]
            .as_array_mut()
            .expect("checked to be an array"))
    }

    fn write(&self) -> Result<()> {
        let bytes = canonical::to_vec(&self.json).expect("index serializes");
        fsx::write_atomic(&self.path, &bytes).map_err(io("cannot write", &self.path))
    }
}

/// Writes `it` as an artifact manifest referring to `subject` (its layer, the empty
/// config and the manifest itself, as blobs) and returns the index descriptor listing it.
fn write_referrer(layout: &Path, subject: &Descriptor, it: &Attachment) -> Result<Descriptor> {
    let empty = write_blob(layout, EMPTY_BLOB)?;
    let layer_digest = write_blob(layout, &it.bytes)?;
    let manifest = ArtifactManifest {
        schema_version: 2,
        media_type: MEDIA_TYPE_MANIFEST.into(),
        artifact_type: it.artifact_type.clone(),
        config: Descriptor {
            media_type: MEDIA_TYPE_EMPTY.into(),
            digest: empty,
            size: 2,
            artifact_type: None,
            annotations: BTreeMap::new(),
        },
        layers: vec![Descriptor {
            media_type: it.media_type.clone(),
            digest: layer_digest,
            size: it.bytes.len() as u64,
            artifact_type: None,
            annotations: BTreeMap::from([(ANNOTATION_TITLE.into(), it.file.clone())]),
        }],
        subject: Descriptor {
            annotations: BTreeMap::new(),
            artifact_type: None,
            ..subject.clone()
        },
        annotations: it.annotations.clone(),
    };
    let bytes = canonical::to_vec(&manifest).expect("manifest serializes");
    let digest = write_blob(layout, &bytes)?;
    let mut annotations = it.annotations.clone();
    annotations.insert(ANNOTATION_TITLE.into(), it.file.clone());
    Ok(Descriptor {
        media_type: MEDIA_TYPE_MANIFEST.into(),
        digest,
        size: bytes.len() as u64,
        artifact_type: Some(it.artifact_type.clone()),
        annotations,
    })
}

/// Attaches `items` to the image manifest `subject` in `layout`, replacing any referrers a
/// previous run attached (so re-running gives the same index). Returns the descriptors of
/// the artifact manifests, in index order (sorted by file name).
pub fn attach(
    layout: &Path,
    subject: &Descriptor,
    items: &[Attachment],
) -> Result<Vec<Descriptor>> {
    let mut items: Vec<&Attachment> = items.iter().collect();
    items.sort_by(|a, b| a.file.cmp(&b.file));
    let added = items
        .into_iter()
        .map(|it| write_referrer(layout, subject, it))
        .collect::<Result<Vec<_>>>()?;

    let mut index = IndexFile::read(layout)?;
    let manifests = index.manifests()?;
    manifests.retain(|m| m.get("artifactType").is_none());
    manifests.extend(
        added
            .iter()
            .map(|d| serde_json::to_value(d).expect("descriptor serializes")),
    );
    index.write()?;
    Ok(added)
}

/// Writes the evidence attached to the layout `out/oci` beside it, as `kiln build` leaves
/// it: each referrer's layer under its title, and for each Sigstore bundle the DSSE
/// envelope it carries (`<stem>.intoto.json`, canonical). This is how a registry copy
/// (`kiln pull`) becomes an output directory `verify` checks; nothing here is trusted:
/// `verify` re-derives every check from these bytes. Returns the files written, sorted.
pub fn unpack(out: &Path) -> Result<Vec<String>> {
    let layout = out.join(kiln_core::contract::layout::file::OCI_DIR);
    let index = IndexFile::read(&layout)?;
    let invalid = |message: String| index.invalid(message);
    let mut written = Vec::new();
    for entry in index.json["manifests"].as_array().into_iter().flatten() {
        if entry.get("artifactType").is_none() {
            continue;
        }
        let d: Digest = serde_json::from_value(entry["digest"].clone())
            .map_err(|e| invalid(format!("manifest digest: {e}")))?;
        let p = blob_path(&layout, &d);
        let bytes = std::fs::read(&p).map_err(io("cannot read", &p))?;
        let m: ArtifactManifest = serde_json::from_slice(&bytes)
            .map_err(|e| invalid(format!("artifact manifest {d}: {e}")))?;
        let Some(layer) = m.layers.first() else {
            continue;
        };
        let Some(title) = layer.annotations.get(ANNOTATION_TITLE) else {
            continue;
        };
        // Only kiln's own evidence lands beside the layout (what other tools attached stays
        // in the layout, where `verify` reads it apart).
        if !crate::evidence::is_kiln_title(title) {
            continue;
        }
        if title.is_empty() || title.contains('/') || title.starts_with('.') {
            return Err(invalid(format!(
                "artifact manifest {d}: layer title `{title}` is not a plain file name"
            )));
        }
        let lp = blob_path(&layout, &layer.digest);
        let blob = std::fs::read(&lp).map_err(io("cannot read", &lp))?;
        let dest = out.join(title);
        fsx::write_atomic(&dest, &blob).map_err(io("cannot write", &dest))?;
        written.push(title.clone());
        if m.artifact_type == crate::dsse::BUNDLE_MEDIA_TYPE {
            let bundle = crate::dsse::Bundle::parse(&blob, title)?;
            let stem = title.trim_end_matches(".sigstore.json");
            let name = kiln_core::contract::layout::envelope_file(&format!("{stem}.json"));
            let dest = out.join(&name);
            let env = canonical::to_vec(&bundle.dsse_envelope).expect("envelope serializes");
            fsx::write_atomic(&dest, &env).map_err(io("cannot write", &dest))?;
            written.push(name);
        }
    }
    written.sort();
    Ok(written)
}

/// cosign's layout annotations (sigstore/cosign `pkg/oci/layout/index.go`): `cosign
/// verify-attestation --local-image DIR` finds the image by `kind` =
/// `dev.cosignproject.cosign/image` and its attestations in the image whose `kind` is
/// `dev.cosignproject.cosign/atts`.
pub const ANNOTATION_COSIGN_KIND: &str = "kind";
pub const COSIGN_KIND_IMAGE: &str = "dev.cosignproject.cosign/image";
pub const COSIGN_KIND_ATTS: &str = "dev.cosignproject.cosign/atts";

/// Adds cosign's attestations image (the `.att` of [`crate::cosign::attestation_tag`]:
/// every DSSE envelope, `(canonical envelope bytes, predicate type)`) to the layout, listed
/// last in `index.json` with `kind` = `dev.cosignproject.cosign/atts`, and marks the image
/// `subject` with `kind` = `dev.cosignproject.cosign/image`, as cosign's own layouts are
/// written. Replaces an attestations image a previous run added.
pub fn attach_cosign_attestations(
    layout: &Path,
    subject: &Descriptor,
    envelopes: &[(Vec<u8>, String)],
) -> Result<Descriptor> {
    let img = crate::cosign::attestation_tag(&subject.digest, envelopes);
    write_blob(layout, &img.config)?;
    for (_, bytes) in &img.layers {
        write_blob(layout, bytes)?;
    }
    let digest = write_blob(layout, &img.manifest)?;
    let desc = Descriptor {
        media_type: MEDIA_TYPE_MANIFEST.into(),
        digest,
        size: img.manifest.len() as u64,
        artifact_type: None,
        annotations: BTreeMap::from([(ANNOTATION_COSIGN_KIND.into(), COSIGN_KIND_ATTS.into())]),
    };
    let mut index = IndexFile::read(layout)?;
    let manifests = index.manifests()?;
    manifests.retain(|m| m["annotations"][ANNOTATION_COSIGN_KIND] != COSIGN_KIND_ATTS);
    for m in manifests.iter_mut() {
        if m["digest"] == subject.digest.to_string() && m.get("artifactType").is_none() {
            m["annotations"][ANNOTATION_COSIGN_KIND] = COSIGN_KIND_IMAGE.into();
        }
    }
    manifests.push(serde_json::to_value(&desc).expect("descriptor serializes"));
    index.write()?;
    Ok(desc)
}

/// Titles of the referrers attached *after* the build (`kiln controls attest`): the
/// archives and `summary.json` were cut from the layout before them, so `verify` compares
/// those with the layout as built, without these.
pub const POST_BUILD: &[&str] = &[kiln_core::contract::layout::file::CONTROLS_BUNDLE];

/// Attaches one more referrer to the image `subject` after the build, keeping every
/// referrer the build attached: listed last in `index.json`, so removing it gives back the
/// index as built, byte for byte. A referrer of the same title attached earlier is
/// replaced, and its blobs removed when nothing else uses them (a layout holds only what
/// its index reaches). `item.file` must be one of [`POST_BUILD`].
pub fn attach_post_build(
    layout: &Path,
    subject: &Descriptor,
    item: &Attachment,
) -> Result<Descriptor> {
    assert!(
        POST_BUILD.contains(&item.file.as_str()),
        "{} is not a post-build referrer",
        item.file
    );
    let mut index = IndexFile::read(layout)?;
    let manifests = index.manifests()?;
    let titled = |m: &Value| m["annotations"][ANNOTATION_TITLE] == item.file.as_str();
    let old: Vec<Digest> = manifests
        .iter()
        .filter(|m| titled(m))
        .filter_map(|m| serde_json::from_value(m["digest"].clone()).ok())
        .collect();
    manifests.retain(|m| !titled(m));
    // The blobs the remaining manifests reach stay; the replaced referrer's others go.
    let mut keep = std::collections::BTreeSet::new();
    for m in manifests.iter() {
        let Ok(d) = serde_json::from_value::<Digest>(m["digest"].clone()) else {
            continue;
        };
        keep.insert(d);
        if let Ok(bytes) = std::fs::read(blob_path(layout, &d))
            && let Ok(v) = serde_json::from_slice::<Value>(&bytes)
        {
            for desc in
                std::iter::once(&v["config"]).chain(v["layers"].as_array().into_iter().flatten())
            {
                if let Ok(d) = serde_json::from_value::<Digest>(desc["digest"].clone()) {
                    keep.insert(d);
                }
            }
        }
    }
    let desc = write_referrer(layout, subject, item)?;
    keep.extend([desc.digest, Digest::of(EMPTY_BLOB), Digest::of(&item.bytes)]);
    manifests.push(serde_json::to_value(&desc).expect("descriptor serializes"));
    index.write()?;
    // Only after the index no longer names them: the old referrer's manifest and layer.
    for d in old {
        if keep.contains(&d) {
            continue;
        }
        let mp = blob_path(layout, &d);
        if let Ok(b) = std::fs::read(&mp)
            && let Ok(m) = serde_json::from_slice::<ArtifactManifest>(&b)
        {
            for l in &m.layers {
                if !keep.contains(&l.digest) {
                    let _ = std::fs::remove_file(blob_path(layout, &l.digest));
                }
            }
        }
        let _ = std::fs::remove_file(mp);
    }
    Ok(desc)
}
