//! Base images: an existing OCI image layout, pinned by manifest digest and verified
//! before anything of it is reused.

use std::path::{Path, PathBuf};

use kiln_core::Digest;
use kiln_core::layerpath::{EntryKind, LayerSet};
use oci_spec::image::{ImageIndex, ImageManifest, MediaType};

use crate::error::{Error, Result};
use crate::image::ConfigFile;
use crate::layer::LayerDescriptor;
use crate::layout::{parse_json, read_blob_verified, verify_blob_file};

const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";

/// A base image whose manifest, config and every layer have been checked against their
/// digests. Holding one means the bytes under its layout were correct when opened; the
/// layers are checked again while they are copied into the new image.
#[derive(Clone, Debug)]
pub struct BaseImage {
    layout: PathBuf,
    digest: Digest,
    config: ConfigFile,
    layers: Vec<LayerDescriptor>,
}

impl BaseImage {
    /// Opens the image whose manifest digest is `pinned` in the OCI layout at `layout`
    /// (listed in `index.json` directly or through nested indexes), and verifies the
    /// manifest, config and every layer blob. Errors name the layout and the digest.
    pub fn open(layout: &Path, pinned: &Digest) -> Result<Self> {
        let layout_err = |what: String| Error::Layout {
            layout: layout.to_path_buf(),
            what,
        };
        let oci_layout = layout.join("oci-layout");
        let text = std::fs::read(&oci_layout).map_err(|e| {
            layout_err(format!(
                "cannot read `oci-layout` ({e}); is this an OCI image layout directory?"
            ))
        })?;
        let v: serde_json::Value = parse_json(&text, &oci_layout, "oci-layout file")?;
        if v.get("imageLayoutVersion").and_then(|v| v.as_str()) != Some("1.0.0") {
            return Err(layout_err(
                "`oci-layout` does not declare imageLayoutVersion 1.0.0".into(),
            ));
        }

        let index_path = layout.join("index.json");
        let index_bytes = std::fs::read(&index_path).map_err(Error::io("reading", &index_path))?;
        let index = parse_index(&index_bytes, &index_path)?;
        let manifest_size =
            find_manifest(layout, &index, pinned, 0)?.ok_or_else(|| Error::ManifestNotFound {
                layout: layout.to_path_buf(),
                digest: *pinned,
            })?;

        let manifest_bytes = read_blob_verified(layout, pinned, Some(manifest_size))?;
        let manifest_path = crate::layout::blob_path(layout, pinned);
        let manifest: ImageManifest = parse_json(
            &manifest_bytes,
            &manifest_path,
            "image manifest (the pinned base)",
        )?;

        let config_digest = to_digest(layout, manifest.config().digest().as_ref())?;
        let config_bytes =
            read_blob_verified(layout, &config_digest, Some(manifest.config().size()))?;
        let config: ConfigFile = parse_json(
            &config_bytes,
            &crate::layout::blob_path(layout, &config_digest),
            "image config",
        )?;

        let mut layers = Vec::new();
        for l in manifest.layers() {
            let digest = to_digest(layout, l.digest().as_ref())?;
            verify_blob_file(layout, &digest, l.size())?;
            layers.push(LayerDescriptor {
                digest,
                diff_id: Digest::from_bytes([0; 32]),
                size: l.size(),
                media_type: oci_layer_type(l.media_type().as_ref()),
            });
        }
        if config.rootfs.diff_ids.len() != layers.len() {
            return Err(layout_err(format!(
                "config {config_digest} lists {} diff_ids but manifest {pinned} has {} layers",
                config.rootfs.diff_ids.len(),
                layers.len()
            )));
        }
        for (l, d) in layers.iter_mut().zip(&config.rootfs.diff_ids) {
            l.diff_id = *d;
        }
        check_layers(layout, &layers)?;
        Ok(BaseImage {
            layout: layout.to_path_buf(),
            digest: *pinned,
            config,
            layers,
        })
    }

    /// The pinned manifest digest.
    pub fn digest(&self) -> Digest {
        self.digest
    }

    /// The layout directory the base was opened from.
    pub fn layout(&self) -> &Path {
        &self.layout
    }

    /// The base's layers, in order (with `diff_id`s from its config).
    pub fn layers(&self) -> &[LayerDescriptor] {
        &self.layers
    }

    pub(crate) fn config(&self) -> &ConfigFile {
        &self.config
    }
}

fn parse_index(bytes: &[u8], path: &Path) -> Result<ImageIndex> {
    parse_json(bytes, path, "OCI image index")
}

fn to_digest(layout: &Path, s: &str) -> Result<Digest> {
    s.parse().map_err(|_| Error::Layout {
        layout: layout.to_path_buf(),
        what: format!("digest `{s}` is not sha256; kiln only reads sha256 layouts"),
    })
}

/// Walks every base layer's tar entries in order through a [`LayerSet`]: a base whose
/// layers could write outside the image (`..`, writes through a symlink leaving the root,
/// hard links to files no layer provides) or carry device nodes is refused, naming the
/// layer, the entry and why.
fn check_layers(layout: &Path, layers: &[LayerDescriptor]) -> Result<()> {
    let mut set = LayerSet::new();
    for l in layers {
        let path = crate::layout::blob_path(layout, &l.digest);
        let file = std::fs::File::open(&path).map_err(Error::io("reading", &path))?;
        let reader = std::io::BufReader::with_capacity(1 << 20, file);
        let mt = l.media_type.as_str();
        if mt.ends_with("+gzip") {
            check_tar(
                layout,
                l,
                flate2::read::MultiGzDecoder::new(reader),
                &mut set,
            )?;
        } else if mt.ends_with(".tar") {
            check_tar(layout, l, reader, &mut set)?;
        } else {
            return Err(Error::Layout {
                layout: layout.to_path_buf(),
                what: format!(
                    "layer {} has media type `{mt}`; kiln reads gzip or uncompressed tar layers only",
                    l.digest
                ),
            });
        }
    }
    Ok(())
}

fn check_tar<R: std::io::Read>(
    layout: &Path,
    l: &LayerDescriptor,
    reader: R,
    set: &mut LayerSet,
) -> Result<()> {
    let hostile = |entry: String, reason: String| Error::HostileLayer {
        layout: layout.to_path_buf(),
        layer: l.digest.to_string(),
        entry,
        reason,
    };
    let mut archive = tar::Archive::new(reader);
    let entries = archive
        .entries()
        .map_err(|e| hostile(String::new(), format!("not a tar stream: {e}")))?;
    for entry in entries {
        let entry =
            entry.map_err(|e| hostile("?".into(), format!("cannot read the tar entry: {e}")))?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let link = entry
            .link_name_bytes()
            .map(|b| String::from_utf8_lossy(&b).into_owned());
        set.entry(
            &raw,
            EntryKind::from_tar_type(entry.header().entry_type().as_byte()),
            link.as_deref(),
        )
        .map_err(|r| hostile(r.entry, r.reason))?;
    }
    Ok(())
}

/// Docker schema-2 layer types name the same bytes as their OCI counterparts; an OCI
/// manifest must use the OCI names.
fn oci_layer_type(t: &str) -> String {
    match t {
        DOCKER_LAYER_GZIP => crate::MEDIA_TYPE_LAYER_GZIP.into(),
        DOCKER_LAYER_TAR => "application/vnd.oci.image.layer.v1.tar".into(),
        other => other.into(),
    }
}

/// Depth-first search for `pinned` through `index` and nested indexes; returns the
/// manifest's descriptor size.
fn find_manifest(
    layout: &Path,
    index: &ImageIndex,
    pinned: &Digest,
    depth: u32,
) -> Result<Option<u64>> {
    if depth > 8 {
        return Err(Error::Layout {
            layout: layout.to_path_buf(),
            what: "indexes nested more than 8 deep".into(),
        });
    }
    for d in index.manifests() {
        let mt = d.media_type().to_string();
        let Ok(digest) = d.digest().to_string().parse::<Digest>() else {
            continue;
        };
        let is_manifest = *d.media_type() == MediaType::ImageManifest || mt == DOCKER_MANIFEST;
        if digest == *pinned && is_manifest {
            return Ok(Some(d.size()));
        }
        if *d.media_type() == MediaType::ImageIndex || mt == DOCKER_MANIFEST_LIST {
            let bytes = read_blob_verified(layout, &digest, Some(d.size()))?;
            let nested = parse_index(&bytes, &crate::layout::blob_path(layout, &digest))?;
            if let Some(size) = find_manifest(layout, &nested, pinned, depth + 1)? {
                return Ok(Some(size));
            }
        }
    }
    Ok(None)
}
