use std::path::Path;

use kiln_core::Digest;
use kiln_hermetic::{Sandbox, SourceDateEpoch};
use serde::Serialize;

/// `summary.json`: what was built, from what, and the digest of every output file.
///
/// It holds no absolute paths and no wall-clock time, so two builds of the same inputs
/// write the same summary wherever they ran.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Version of this document's shape.
    pub schema: u32,
    pub kiln_version: String,
    pub image: String,
    /// `org.opencontainers.image.ref.name` of the manifest in `oci/`.
    pub ref_name: String,
    pub platform: String,
    /// The image manifest digest: the image's identity.
    pub digest: Digest,
    pub config_digest: Digest,
    pub layers: Vec<LayerRecord>,
    /// The pinned base image manifest, when not `scratch`.
    pub base: Option<Digest>,
    pub source_date_epoch: SourceDateEpoch,
    pub sandbox: Sandbox,
    /// Names of the environment variables the build ran with (values are fixed by kiln;
    /// paths among them differ per build root and are remapped out of the binaries).
    pub environment: Vec<String>,
    pub toolchain: ToolchainRecord,
    pub kiln_toml: Digest,
    pub cargo_lock: Digest,
    pub binaries: Vec<BinaryRecord>,
    /// Every file under the output directory except this summary, sorted by path.
    pub artifacts: Vec<Artifact>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LayerRecord {
    pub digest: Digest,
    pub diff_id: Digest,
    pub size: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ToolchainRecord {
    /// The lock file, relative to the project root.
    pub lock: String,
    /// sha256 of the lock file: provenance names the toolchain by this.
    pub lock_digest: Digest,
    pub rustc: String,
    pub target: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct BinaryRecord {
    pub name: String,
    pub path: String,
    pub sha256: Digest,
    pub size: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Artifact {
    /// Path relative to the output directory, `/`-separated.
    pub path: String,
    pub sha256: Digest,
    pub size: u64,
}

/// Lists and hashes every regular file under `dir`, sorted by relative path.
pub(crate) fn artifacts(dir: &Path) -> std::io::Result<Vec<Artifact>> {
    let mut out = Vec::new();
    walk(dir, dir, &mut out)?;
    out.sort();
    Ok(out)
}

fn walk(base: &Path, dir: &Path, out: &mut Vec<Artifact>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let ty = entry.file_type()?;
        let path = entry.path();
        if ty.is_dir() {
            walk(base, &path, out)?;
        } else if ty.is_file() {
            let rel = path.strip_prefix(base).expect("walk stays under base");
            let rel = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            let size = entry.metadata()?.len();
            out.push(Artifact {
                path: rel,
                sha256: Digest::of_file(&path)?,
                size,
            });
        }
    }
    Ok(())
}
