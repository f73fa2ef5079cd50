//! The few OCI shapes push and pull read: descriptors, manifests (image or artifact, the
//! fields that matter for moving them) and indexes. Manifests are never re-serialized on
//! their way to or from a registry: these types only *read* them; the bytes travel as
//! they are.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kiln_core::Digest;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, io};

pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
pub const ANNOTATION_TITLE: &str = "org.opencontainers.image.title";
/// cosign's layout annotations (sigstore/cosign `pkg/oci/layout/index.go`).
pub const ANNOTATION_COSIGN_KIND: &str = "kind";
pub const COSIGN_KIND_IMAGE: &str = "dev.cosignproject.cosign/image";
pub const COSIGN_KIND_ATTS: &str = "dev.cosignproject.cosign/atts";

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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<serde_json::Value>,
}

/// An image or artifact manifest, as far as moving it goes.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub media_type: Option<String>,
    #[serde(default)]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default)]
    pub subject: Option<Descriptor>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

impl Manifest {
    pub fn parse(bytes: &[u8], what: &str) -> Result<Manifest> {
        serde_json::from_slice(bytes).map_err(|e| Error::Invalid {
            what: what.to_string(),
            why: format!("not an OCI manifest: {e}"),
        })
    }

    /// Every blob the manifest references: config first, then layers.
    pub fn blobs(&self) -> impl Iterator<Item = &Descriptor> {
        std::iter::once(&self.config).chain(&self.layers)
    }

    /// The artifact type a referrers listing shows: `artifactType`, else the config's
    /// media type (as the distribution spec says).
    pub fn listed_artifact_type(&self) -> String {
        self.artifact_type
            .clone()
            .unwrap_or_else(|| self.config.media_type.clone())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Index {
    pub fn parse(bytes: &[u8], what: &str) -> Result<Index> {
        serde_json::from_slice(bytes).map_err(|e| Error::Invalid {
            what: what.to_string(),
            why: format!("not an OCI image index: {e}"),
        })
    }
}

/// An OCI image layout on disk (read side).
pub struct Layout {
    pub dir: PathBuf,
    pub index: Index,
}

impl Layout {
    pub fn open(dir: &Path) -> Result<Layout> {
        let p = dir.join("index.json");
        let raw = std::fs::read(&p).map_err(io("cannot read", &p))?;
        Ok(Layout {
            dir: dir.to_path_buf(),
            index: Index::parse(&raw, &p.display().to_string())?,
        })
    }

    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.dir.join("blobs").join("sha256").join(d.hex())
    }

    /// A blob's bytes, checked against its digest (a layout is not trusted to be intact).
    pub fn read_blob(&self, d: &Digest) -> Result<Vec<u8>> {
        let p = self.blob_path(d);
        let bytes = std::fs::read(&p).map_err(io("cannot read", &p))?;
        if Digest::of(&bytes) != *d {
            return Err(Error::Invalid {
                what: p.display().to_string(),
                why: format!("does not hash to {d}: the layout was modified"),
            });
        }
        Ok(bytes)
    }
}
