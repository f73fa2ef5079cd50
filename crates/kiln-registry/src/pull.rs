//! Pulling an image and everything that refers to it into a local OCI layout.
//!
//! The image is resolved once (a tag becomes a digest, reported), then fetched by digest;
//! its referrers come from the registry's referrers API, else from the referrers tag
//! schema's `sha256-<hex>` index; cosign's legacy `sha256-<hex>.att`/`.sig` tags are looked
//! up and reported. Every manifest and blob is checked against its digest as it arrives;
//! manifests are stored as the exact bytes served. The layout's `index.json` lists the
//! image (tagged, with the platform its config gives) and each referrer (its artifact type,
//! its annotations and its first layer's title), as `kiln build` lays out its own.

use std::collections::BTreeMap;
use std::path::Path;

use kiln_core::{Digest, canonical, fsx};
use serde::Serialize;

use crate::client::{Client, MEDIA_TYPE_OCI_INDEX, MEDIA_TYPE_OCI_MANIFEST};
use crate::error::{Error, Result, io};
use crate::oci::{
    ANNOTATION_COSIGN_KIND, ANNOTATION_REF_NAME, ANNOTATION_TITLE, COSIGN_KIND_ATTS,
    COSIGN_KIND_IMAGE, Descriptor, Index, Manifest,
};
use crate::push::referrers_tag;

/// What was pulled.
#[derive(Debug, Clone, Serialize)]
pub struct Pulled {
    /// The image manifest's digest.
    pub image: Digest,
    /// The tag written into the layout (the reference's, or `None` for a digest pull).
    pub tag: Option<String>,
    /// `tag X → digest` when a tag was resolved.
    pub resolved: Option<String>,
    /// `referrers API`, `referrers tag schema (sha256-<hex>)` or `none`.
    pub referrers_from: String,
    pub referrers: Vec<Descriptor>,
    /// cosign's legacy tags found for the image (`sha256-<hex>.att`, `.sig`) and their
    /// manifest digests.
    pub legacy_tags: BTreeMap<String, Digest>,
    /// The `.sig` image itself (small: one simple-signing payload), for the caller to
    /// check its signature.
    #[serde(skip)]
    pub signature: Option<TagBytes>,
}

/// A small tagged image fetched whole: its manifest, config and layers, as served
/// (each checked against its digest).
#[derive(Debug, Clone)]
pub struct TagBytes {
    pub tag: String,
    pub manifest: Vec<u8>,
    pub config: Vec<u8>,
    /// `(media type, bytes)`, in manifest order.
    pub layers: Vec<(String, Vec<u8>)>,
}

/// The most a blob of a signature image may be (it holds one small JSON payload).
const SMALL_BLOB_LIMIT: u64 = 4 << 20;

fn fetch_small(client: &Client, tag: &str) -> Result<Option<TagBytes>> {
    let Some(m) = client.get_manifest(tag)? else {
        return Ok(None);
    };
    let parsed = Manifest::parse(&m.bytes, tag)?;
    let read = |d: &Descriptor| -> Result<Vec<u8>> {
        if d.size > SMALL_BLOB_LIMIT {
            return Err(Error::Invalid {
                what: format!("{tag}: blob {}", d.digest),
                why: format!("{} bytes is too large for a signature image", d.size),
            });
        }
        let mut c = std::io::Cursor::new(Vec::new());
        client.pull_blob(&d.digest, d.size, &mut c)?;
        Ok(c.into_inner())
    };
    let config = read(&parsed.config)?;
    let mut layers = Vec::new();
    for l in &parsed.layers {
        layers.push((l.media_type.clone(), read(l)?));
    }
    Ok(Some(TagBytes {
        tag: tag.to_string(),
        manifest: m.bytes,
        config,
        layers,
    }))
}

/// Pulls the image `client`'s reference names (tag or digest) into the layout `dir`
/// (created; expected empty). `tag` overrides the tag written into the layout.
pub fn pull(
    client: &Client,
    dir: &Path,
    tag: Option<&str>,
    progress: &dyn Fn(&str),
) -> Result<Pulled> {
    let r = client.reference().clone();
    let (manifest, resolved) = match (&r.digest, &r.tag) {
        (Some(d), _) => (
            client
                .get_manifest(&d.to_string())?
                .ok_or_else(|| not_found(&r.to_string()))?,
            None,
        ),
        (None, Some(t)) => {
            let m = client
                .get_manifest(t)?
                .ok_or_else(|| not_found(&r.to_string()))?;
            let note = format!("tag {t} → {}", m.digest);
            progress(&note);
            (m, Some(note))
        }
        (None, None) => {
            return Err(Error::Invalid {
                what: r.to_string(),
                why: "names neither a tag nor a digest: add `:TAG` or `@sha256:...`".into(),
            });
        }
    };
    if !manifest.media_type.starts_with(MEDIA_TYPE_OCI_MANIFEST) {
        return Err(Error::Invalid {
            what: r.to_string(),
            why: format!(
                "is a `{}`; kiln pulls single-platform OCI image manifests",
                manifest.media_type
            ),
        });
    }
    let image = manifest.digest;
    let m = Manifest::parse(&manifest.bytes, &format!("image manifest {image}"))?;
    fsx::create_dir_all(&dir.join("blobs/sha256")).map_err(io("cannot create", dir))?;
    write_blob(dir, &manifest.bytes)?;
    for b in m.blobs() {
        fetch_blob(client, dir, b)?;
    }
    let config_path = dir.join("blobs/sha256").join(m.config.digest.hex());
    let config: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&config_path).map_err(io("cannot read", &config_path))?,
    )
    .map_err(|e| Error::Invalid {
        what: format!("image config {}", m.config.digest),
        why: e.to_string(),
    })?;
    let mut platform = serde_json::Map::new();
    for k in ["architecture", "os", "variant"] {
        if let Some(v) = config.get(k) {
            platform.insert(k.into(), v.clone());
        }
    }
    let layout_tag = tag.map(String::from).or_else(|| r.tag.clone());
    let mut entries = vec![Descriptor {
        media_type: MEDIA_TYPE_OCI_MANIFEST.into(),
        digest: image,
        size: manifest.bytes.len() as u64,
        artifact_type: None,
        annotations: layout_tag
            .iter()
            .map(|t| (ANNOTATION_REF_NAME.to_string(), t.clone()))
            .collect(),
        platform: Some(serde_json::Value::Object(platform)),
    }];

    // Referrers.
    let (listing, referrers_from) = match client.referrers(&image)? {
        Some(bytes) => (
            Index::parse(&bytes, "referrers API listing")?.manifests,
            "referrers API".to_string(),
        ),
        None => {
            let tag = referrers_tag(&image);
            match client.get_manifest(&tag)? {
                Some(ix) if ix.media_type.starts_with(MEDIA_TYPE_OCI_INDEX) => (
                    Index::parse(&ix.bytes, &format!("referrers index {tag}"))?.manifests,
                    format!("referrers tag schema ({tag})"),
                ),
                _ => (Vec::new(), "none".to_string()),
            }
        }
    };
    let mut referrers = Vec::new();
    let mut pulled = Vec::new();
    for d in &listing {
        let got = client
            .get_manifest(&d.digest.to_string())?
            .ok_or_else(|| Error::Invalid {
                what: format!("referrer {}", d.digest),
                why: "listed for the image but not in the registry".into(),
            })?;
        let rm = Manifest::parse(&got.bytes, &format!("referrer {}", d.digest))?;
        // A listing is only a hint: what a manifest refers to is what it says.
        if rm.subject.as_ref().map(|s| s.digest) != Some(image) {
            return Err(Error::Invalid {
                what: format!("referrer {}", d.digest),
                why: format!("is listed for {image} but its subject is another manifest"),
            });
        }
        write_blob(dir, &got.bytes)?;
        for b in rm.blobs() {
            fetch_blob(client, dir, b)?;
        }
        let mut annotations = rm.annotations.clone();
        let title = rm
            .layers
            .first()
            .and_then(|l| l.annotations.get(ANNOTATION_TITLE))
            .cloned();
        if let Some(t) = &title {
            annotations.insert(ANNOTATION_TITLE.into(), t.clone());
        }
        let desc = Descriptor {
            media_type: rm
                .media_type
                .clone()
                .unwrap_or_else(|| MEDIA_TYPE_OCI_MANIFEST.into()),
            digest: got.digest,
            size: got.bytes.len() as u64,
            artifact_type: Some(rm.listed_artifact_type()),
            annotations,
            platform: None,
        };
        referrers.push(desc.clone());
        pulled.push((title.unwrap_or_else(|| got.digest.to_string()), desc));
    }
    progress(&format!(
        "{} referrer(s) from {referrers_from}",
        referrers.len()
    ));
    // kiln lays referrers out after the image, by file name.
    pulled.sort_by(|a, b| a.0.cmp(&b.0));
    entries.extend(pulled.into_iter().map(|(_, d)| d));

    let mut legacy_tags = BTreeMap::new();
    for suffix in ["att", "sig"] {
        let t = format!("sha256-{}.{suffix}", image.hex());
        if let Some(d) = client.manifest_digest(&t)? {
            legacy_tags.insert(t, d);
        }
    }
    // cosign's attestations image goes into the layout as cosign lays it out
    // (sigstore/cosign pkg/oci/layout: `kind` annotations on the image and on it), so
    // `cosign verify-attestation --local-image` reads the pulled copy too.
    if let Some(att) = legacy_tags.get(&format!("sha256-{}.att", image.hex())) {
        let got = client
            .get_manifest(&att.to_string())?
            .ok_or_else(|| not_found(&format!("{} (.att)", r)))?;
        let am = Manifest::parse(&got.bytes, "cosign attestations manifest")?;
        write_blob(dir, &got.bytes)?;
        for b in am.blobs() {
            fetch_blob(client, dir, b)?;
        }
        entries[0]
            .annotations
            .insert(ANNOTATION_COSIGN_KIND.into(), COSIGN_KIND_IMAGE.into());
        entries.push(Descriptor {
            media_type: MEDIA_TYPE_OCI_MANIFEST.into(),
            digest: got.digest,
            size: got.bytes.len() as u64,
            artifact_type: None,
            annotations: BTreeMap::from([(ANNOTATION_COSIGN_KIND.into(), COSIGN_KIND_ATTS.into())]),
            platform: None,
        });
    }

    let sig_tag = format!("sha256-{}.sig", image.hex());
    let signature = if legacy_tags.contains_key(&sig_tag) {
        fetch_small(client, &sig_tag)?
    } else {
        None
    };

    let index = Index {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_OCI_INDEX.into()),
        manifests: entries,
        annotations: BTreeMap::new(),
    };
    let p = dir.join("index.json");
    fsx::write_atomic(&p, &canonical::to_vec(&index).expect("index serializes"))
        .map_err(io("cannot write", &p))?;
    let p = dir.join("oci-layout");
    fsx::write_atomic(&p, br#"{"imageLayoutVersion":"1.0.0"}"#).map_err(io("cannot write", &p))?;
    Ok(Pulled {
        image,
        tag: layout_tag,
        resolved,
        referrers_from,
        referrers,
        legacy_tags,
        signature,
    })
}

fn not_found(r: &str) -> Error {
    Error::Invalid {
        what: r.to_string(),
        why: "the registry has no such manifest".into(),
    }
}

fn write_blob(dir: &Path, bytes: &[u8]) -> Result<()> {
    let p = dir.join("blobs/sha256").join(Digest::of(bytes).hex());
    fsx::write_atomic(&p, bytes).map_err(io("cannot write", &p))
}

/// Streams a blob into the layout (a temporary file, renamed once its digest checks out).
fn fetch_blob(client: &Client, dir: &Path, d: &Descriptor) -> Result<()> {
    let blobs = dir.join("blobs/sha256");
    let dest = blobs.join(d.digest.hex());
    if dest.is_file() {
        return Ok(());
    }
    let mut tmp = tempfile::Builder::new()
        .prefix(".kiln-tmp-")
        .tempfile_in(&blobs)
        .map_err(io("cannot create a file in", &blobs))?;
    client.pull_blob(&d.digest, d.size, tmp.as_file_mut())?;
    tmp.persist(&dest)
        .map_err(|e| e.error)
        .map_err(io("cannot write", &dest))?;
    fsx::set_mode(&dest, 0o644).map_err(io("cannot write", &dest))?;
    Ok(())
}
