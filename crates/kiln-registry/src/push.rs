//! Pushing an image and everything attached to it from a local OCI layout.
//!
//! Order matters, so that a tag never points at something incomplete: every blob first,
//! then the image manifest *by digest*, then each referrer (its blobs, its manifest by
//! digest), then the referrers listing (the registry's API, or the `sha256-<hex>` index of
//! the distribution spec's referrers tag schema), then any extra tagged images (cosign's
//! `.att`/`.sig`), and the image's own tag last. A push interrupted anywhere leaves the
//! tag where it was. Everything is checked before it is sent (HEAD), so pushing the same
//! build again uploads nothing and changes no digest.

use std::collections::BTreeSet;
use std::path::Path;

use kiln_core::{Digest, canonical};
use serde::Serialize;

use crate::client::{
    BlobPush, BlobSource, Client, MEDIA_TYPE_OCI_INDEX, MEDIA_TYPE_OCI_MANIFEST, PutIf,
};
use crate::error::{Error, Result};
use crate::oci::{Descriptor, Index, Layout, Manifest};

/// An image to put under a tag of its own, generated rather than read from the layout
/// (cosign's legacy `sha256-<hex>.att` and `.sig` images).
#[derive(Debug, Clone)]
pub struct TagImage {
    pub tag: String,
    /// Its manifest, exactly as it will be stored.
    pub manifest: Vec<u8>,
    /// Every blob the manifest names (config and layers), by content.
    pub blobs: Vec<Vec<u8>>,
    /// What it is, for the report.
    pub what: String,
}

/// What to push.
pub struct Request<'a> {
    /// The OCI image layout holding the image and its referrers.
    pub layout: &'a Path,
    /// The image manifest to push (it must be in the layout's index).
    pub image: Digest,
    /// The tag to give it.
    pub tag: &'a str,
    /// Repositories of the same registry to mount blobs from (tried in order).
    pub mount_from: &'a [String],
    pub extra: &'a [TagImage],
}

/// `push.json`: every digest pushed, where, what it is and what happened to it.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema: &'static str,
    /// `registry/repository:tag@digest`.
    pub reference: String,
    pub image: Pushed,
    pub blobs: Vec<Pushed>,
    pub manifests: Vec<Pushed>,
    pub tags: Vec<TagSet>,
    /// `referrers API` or `referrers tag schema (sha256-<hex>)`.
    pub referrers: String,
    pub uploaded_bytes: u64,
    pub requests: u64,
    pub retries: u64,
}

pub const REPORT_SCHEMA: &str = "https://kiln.dev/push/v1";

#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pushed {
    pub digest: Digest,
    pub size: u64,
    pub media_type: String,
    /// What it is (`image manifest`, `layer 0`, `artifact manifest sbom.cdx.json`, ...).
    pub what: String,
    /// `uploaded`, `present`, `mounted from <repo>`.
    pub outcome: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TagSet {
    pub tag: String,
    pub digest: Digest,
    /// `set`, `moved from <digest>`, `unchanged`.
    pub outcome: String,
}

impl Report {
    /// Whether this push changed anything at the registry.
    pub fn changed_anything(&self) -> bool {
        self.blobs
            .iter()
            .chain(&self.manifests)
            .any(|p| p.outcome != "present")
            || self.tags.iter().any(|t| t.outcome != "unchanged")
    }

    pub fn to_json(&self) -> Vec<u8> {
        canonical::to_vec(self).expect("push report serializes")
    }
}

/// One blob to push: what it is and where its bytes are.
struct BlobJob {
    desc: Descriptor,
    what: String,
    source: Source,
}

/// A blob's bytes: a layout file, or generated (cosign's small tag images).
enum Source {
    File(std::path::PathBuf),
    Bytes(Vec<u8>),
}

/// A manifest read from the layout (or given), to PUT after every blob is stored.
struct ManifestJob {
    bytes: Vec<u8>,
    media_type: String,
    what: String,
    /// Its referrers-listing descriptor, for a referrer.
    listing: Option<Descriptor>,
}

/// Pushes `req` through `client` (whose reference names the destination repository).
pub fn push(client: &Client, req: &Request, progress: &dyn Fn(&str)) -> Result<Report> {
    let layout = Layout::open(req.layout)?;
    if !layout.index.manifests.iter().any(|d| d.digest == req.image) {
        return Err(Error::Invalid {
            what: req.layout.join("index.json").display().to_string(),
            why: format!("does not list the image {}", req.image),
        });
    }
    if !kiln_core::contract::reference::valid_tag(req.tag) {
        return Err(Error::Invalid {
            what: format!("tag `{}`", req.tag),
            why: "not a valid tag".into(),
        });
    }
    client.ping()?;

    // Plan: every blob (image, referrers, extra images), then every manifest.
    let image_bytes = layout.read_blob(&req.image)?;
    let image = Manifest::parse(&image_bytes, &format!("image manifest {}", req.image))?;
    let image_media_type = image
        .media_type
        .clone()
        .unwrap_or_else(|| MEDIA_TYPE_OCI_MANIFEST.into());
    let mut jobs: Vec<BlobJob> = Vec::new();
    let mut seen = BTreeSet::new();
    let mut add = |jobs: &mut Vec<BlobJob>, desc: &Descriptor, what: String, source| {
        if seen.insert(desc.digest) {
            jobs.push(BlobJob {
                desc: desc.clone(),
                what,
                source,
            });
        }
    };
    let mut manifest_jobs = Vec::new();
    let mut referrer_manifests = Vec::new();
    for d in &layout.index.manifests {
        if d.digest == req.image || d.artifact_type.is_none() {
            continue;
        }
        let bytes = layout.read_blob(&d.digest)?;
        let m = Manifest::parse(&bytes, &format!("artifact manifest {}", d.digest))?;
        if m.subject.as_ref().map(|s| s.digest) != Some(req.image) {
            continue;
        }
        referrer_manifests.push((bytes, m));
    }
    for (i, b) in image.blobs().enumerate() {
        let what = if i == 0 {
            "config".to_string()
        } else {
            format!("layer {}", i - 1)
        };
        add(
            &mut jobs,
            b,
            what,
            Source::File(layout.blob_path(&b.digest)),
        );
    }
    for (bytes, m) in &referrer_manifests {
        let digest = Digest::of(bytes);
        let title = m
            .layers
            .first()
            .and_then(|l| l.annotations.get(crate::oci::ANNOTATION_TITLE))
            .cloned()
            .unwrap_or_else(|| digest.to_string());
        for (i, b) in m.blobs().enumerate() {
            let what = if i == 0 {
                format!("{title}: config")
            } else {
                title.clone()
            };
            add(
                &mut jobs,
                b,
                what,
                Source::File(layout.blob_path(&b.digest)),
            );
        }
        let media_type = m
            .media_type
            .clone()
            .unwrap_or_else(|| MEDIA_TYPE_OCI_MANIFEST.into());
        manifest_jobs.push(ManifestJob {
            bytes: bytes.clone(),
            media_type: media_type.clone(),
            what: format!("artifact manifest {title}"),
            listing: Some(Descriptor {
                media_type,
                digest,
                size: bytes.len() as u64,
                artifact_type: Some(m.listed_artifact_type()),
                annotations: m.annotations.clone(),
                platform: None,
            }),
        });
    }
    let mut extra_manifests = Vec::new();
    for x in req.extra {
        let m = Manifest::parse(&x.manifest, &x.what)?;
        for b in m.blobs() {
            let data = x
                .blobs
                .iter()
                .find(|bytes| Digest::of(bytes) == b.digest)
                .ok_or_else(|| Error::Invalid {
                    what: x.what.clone(),
                    why: format!("names blob {} that was not given", b.digest),
                })?;
            add(
                &mut jobs,
                b,
                format!("{}: blob", x.what),
                Source::Bytes(data.clone()),
            );
        }
        let media_type = m
            .media_type
            .clone()
            .unwrap_or_else(|| MEDIA_TYPE_OCI_MANIFEST.into());
        extra_manifests.push((x, media_type));
    }
    progress(&format!(
        "image {} ({} layers), {} referrer(s), {} blob(s)",
        req.image,
        image.layers.len(),
        manifest_jobs.len(),
        jobs.len()
    ));

    // Every blob, a few at a time, the largest first.
    let mut blobs = push_blobs(client, &mut jobs, req.mount_from)?;

    // Then the manifests: the image by digest, each referrer, the listing.
    let mut manifests = Vec::new();
    let image_pushed = put_by_digest(client, &image_bytes, &image_media_type, "image manifest")?;
    manifests.push(image_pushed.clone());
    let mut listing = Vec::new();
    for j in &manifest_jobs {
        manifests.push(put_by_digest(client, &j.bytes, &j.media_type, &j.what)?);
        listing.extend(j.listing.clone());
    }

    // The listing: the registry's own, when it has one and it shows what was pushed.
    let mut tags = Vec::new();
    let referrers = if listing.is_empty() {
        "none attached".to_string()
    } else {
        let api = client.referrers(&req.image)?;
        let listed: BTreeSet<Digest> = match &api {
            Some(bytes) => Index::parse(bytes, "referrers API listing")?
                .manifests
                .iter()
                .map(|d| d.digest)
                .collect(),
            None => BTreeSet::new(),
        };
        if api.is_some() && listing.iter().all(|d| listed.contains(&d.digest)) {
            "referrers API".to_string()
        } else {
            let t = update_referrers_tag(client, &req.image, &listing)?;
            let name = t.tag.clone();
            tags.push(t);
            format!("referrers tag schema ({name})")
        }
    };

    // Extra tagged images.
    for (x, media_type) in &extra_manifests {
        manifests.push(put_by_digest(client, &x.manifest, media_type, &x.what)?);
        tags.push(set_tag(client, &x.tag, &x.manifest, media_type)?);
    }

    // The tag, last.
    tags.push(set_tag(client, req.tag, &image_bytes, &image_media_type)?);
    let stats = client.stats();
    let r = client.reference();
    blobs.sort();
    Ok(Report {
        schema: REPORT_SCHEMA,
        reference: format!("{}:{}@{}", r.repository_name(), req.tag, req.image),
        image: image_pushed,
        blobs,
        manifests,
        tags,
        referrers,
        uploaded_bytes: stats.bytes_uploaded,
        requests: stats.requests,
        retries: stats.retries,
    })
}

/// Pushes every blob of `jobs` on up to `Options::parallel` threads (a few, as skopeo and
/// the docker CLI do), the largest first (so
/// a big layer starts at once and the small ones go up beside it). A blob the registry has
/// is not read; one that is sent is hashed as it goes and checked by the registry against
/// its name (the layout is not trusted: a modified blob is refused, `DIGEST_INVALID`).
/// Every job runs; the first error (in job order) is returned.
fn push_blobs(client: &Client, jobs: &mut [BlobJob], mount_from: &[String]) -> Result<Vec<Pushed>> {
    jobs.sort_by(|a, b| {
        b.desc
            .size
            .cmp(&a.desc.size)
            .then(a.desc.digest.cmp(&b.desc.digest))
    });
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: std::sync::Mutex<Vec<(usize, Result<BlobPush>)>> = Default::default();
    let jobs: &[BlobJob] = jobs;
    std::thread::scope(|scope| {
        for _ in 0..client.options().parallel.clamp(1, 16).min(jobs.len()) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let Some(j) = jobs.get(i) else { break };
                    // Generated blobs exist nowhere else in the registry: never mounted.
                    let (source, mount) = match &j.source {
                        Source::File(p) => (BlobSource::File(p), mount_from),
                        Source::Bytes(b) => (BlobSource::Bytes(b), &[][..]),
                    };
                    let r = client.push_blob(&j.desc.digest, j.desc.size, source, mount);
                    results
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((i, r));
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    results.sort_by_key(|(i, _)| *i);
    let mut out = Vec::new();
    for (i, r) in results {
        out.push(pushed(&jobs[i].desc, &jobs[i].what, r?));
    }
    Ok(out)
}

fn pushed(d: &Descriptor, what: &str, outcome: BlobPush) -> Pushed {
    Pushed {
        digest: d.digest,
        size: d.size,
        media_type: d.media_type.clone(),
        what: what.to_string(),
        outcome: match outcome {
            BlobPush::Present => "present".into(),
            BlobPush::Mounted(from) => format!("mounted from {from}"),
            BlobPush::Uploaded { .. } => "uploaded".into(),
        },
    }
}

/// PUTs a manifest by its digest unless the registry has it.
fn put_by_digest(client: &Client, bytes: &[u8], media_type: &str, what: &str) -> Result<Pushed> {
    let digest = Digest::of(bytes);
    let outcome = if client.manifest_digest(&digest.to_string())?.is_some() {
        "present"
    } else {
        client.put_manifest(&digest.to_string(), media_type, bytes)?;
        "uploaded"
    };
    Ok(Pushed {
        digest,
        size: bytes.len() as u64,
        media_type: media_type.to_string(),
        what: what.to_string(),
        outcome: outcome.into(),
    })
}

fn set_tag(client: &Client, tag: &str, bytes: &[u8], media_type: &str) -> Result<TagSet> {
    let digest = Digest::of(bytes);
    let before = client.manifest_digest(tag)?;
    let outcome = match before {
        Some(d) if d == digest => "unchanged".to_string(),
        other => {
            client.put_manifest(tag, media_type, bytes)?;
            match other {
                Some(d) => format!("moved from {d}"),
                None => "set".into(),
            }
        }
    };
    Ok(TagSet {
        tag: tag.to_string(),
        digest,
        outcome,
    })
}

/// The referrers tag schema's tag for `subject`: `<alg>-<hex>`.
pub fn referrers_tag(subject: &Digest) -> String {
    format!("sha256-{}", subject.hex())
}

/// Adds `add` to the `sha256-<hex>` referrers index of `subject`, as the distribution
/// spec's referrers tag schema says: read the index (none: start empty), keep what others
/// listed and its annotations, add what is missing, sort, PUT with `If-Match` where the
/// registry gives an ETag, then read it back to confirm (registries may ignore `If-Match`,
/// and a concurrent writer may have replaced it); repeat a few times on a lost race.
fn update_referrers_tag(client: &Client, subject: &Digest, add: &[Descriptor]) -> Result<TagSet> {
    let tag = referrers_tag(subject);
    let want: BTreeSet<Digest> = add.iter().map(|d| d.digest).collect();
    for _ in 0..5 {
        // The ETag comes with the bytes it names (one GET, not a HEAD and a GET that
        // a concurrent writer could fall between).
        let current = client.get_manifest(&tag)?;
        let etag = current.as_ref().and_then(|m| m.etag.clone());
        let before = current.as_ref().map(|m| m.digest);
        let mut index = match &current {
            None => Index {
                schema_version: 2,
                media_type: Some(MEDIA_TYPE_OCI_INDEX.into()),
                manifests: Vec::new(),
                annotations: Default::default(),
            },
            Some(m) if m.media_type.starts_with(MEDIA_TYPE_OCI_INDEX) => {
                Index::parse(&m.bytes, &format!("referrers index {tag}"))?
            }
            Some(m) => {
                return Err(Error::Invalid {
                    what: format!("tag {tag}"),
                    why: format!(
                        "holds a `{}`, not the referrers index the tag schema keeps there: kiln will not overwrite it",
                        m.media_type
                    ),
                });
            }
        };
        let have: BTreeSet<Digest> = index.manifests.iter().map(|d| d.digest).collect();
        if want.is_subset(&have) {
            return Ok(TagSet {
                tag,
                digest: before.expect("a non-empty index exists"),
                outcome: "unchanged".into(),
            });
        }
        index
            .manifests
            .extend(add.iter().filter(|d| !have.contains(&d.digest)).cloned());
        index.manifests.sort_by(|a, b| {
            (a.artifact_type.as_deref(), a.digest).cmp(&(b.artifact_type.as_deref(), b.digest))
        });
        let bytes = canonical::to_vec(&index).expect("index serializes");
        let put = client.put_manifest_if(&tag, MEDIA_TYPE_OCI_INDEX, &bytes, etag.as_deref())?;
        if let (PutIf::PreconditionFailed, _) = put {
            continue;
        }
        // Read back: it must list everything kiln pushed.
        let after = client.get_manifest(&tag)?;
        if let Some(m) = after
            && let Ok(i) = Index::parse(&m.bytes, &tag)
            && want.is_subset(&i.manifests.iter().map(|d| d.digest).collect())
        {
            return Ok(TagSet {
                tag,
                digest: m.digest,
                outcome: match before {
                    Some(b) => format!("moved from {b}"),
                    None => "set".into(),
                },
            });
        }
    }
    Err(Error::Invalid {
        what: format!("referrers index {tag}"),
        why: "another writer kept replacing it: kiln's referrers are not listed".into(),
    })
}
