//! Single-file forms of a layout: `oci-archive` (a tar of the layout) and
//! `docker-archive` (`docker save` format). Both are written with the layer tar writer,
//! so they follow the same header rules (sorted, SDE mtimes, 0:0, normalized modes), and
//! both appear atomically.

use std::path::{Path, PathBuf};

use kiln_core::Digest;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::image::Manifest;
use crate::layer::Layer;
use crate::layout::{TempFile, blob_path, read_blob_verified};

/// Writes a deterministic tar of the OCI layout at `layout` to `out` (what
/// `skopeo copy oci-archive:OUT:REF` reads). Directories get 0755, files 0644, all
/// entries mtime `sde`. Symlinks or special files in the layout are refused.
pub fn write_oci_archive(layout: &Path, out: &Path, sde: u64) -> Result<()> {
    let mut layer = Layer::new();
    add_tree(&mut layer, layout, "")?;
    write_tar_atomic(&layer, out, sde)
}

fn add_tree(layer: &mut Layer, dir: &Path, prefix: &str) -> Result<()> {
    let rd = std::fs::read_dir(dir).map_err(Error::io("listing", dir))?;
    for entry in rd {
        let entry = entry.map_err(Error::io("listing", dir))?;
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            return Err(Error::Layout {
                layout: path,
                what: "file name is not UTF-8; an OCI layout only has ASCII names".into(),
            });
        };
        let image_path = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let ft = entry
            .file_type()
            .map_err(Error::io("reading metadata of", &path))?;
        if ft.is_dir() {
            layer.add_dir(&image_path, 0o755)?;
            add_tree(layer, &path, &image_path)?;
        } else if ft.is_file() {
            layer.add_file(&image_path, path, Some(0o644))?;
        } else {
            return Err(Error::NotAFile { path });
        }
    }
    Ok(())
}

fn write_tar_atomic(layer: &Layer, out: &Path, sde: u64) -> Result<()> {
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut tmp = TempFile::new(&dir)?;
    layer.write_tar(sde, tmp.writer())?;
    tmp.persist(out)
}

/// One entry of docker's `manifest.json`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifestEntry {
    config: String,
    repo_tags: Vec<String>,
    layers: Vec<String>,
}

/// Writes a `docker-archive` (what `docker load`, `podman load` and
/// `skopeo copy docker-archive:OUT` read) for the manifest `manifest` of the layout at
/// `layout`: `manifest.json` plus the config and layer blobs under `blobs/sha256/`.
/// Layers stay gzip-compressed (all three loaders accept that). The manifest and config
/// are verified against their digests; layer blobs are checked for presence and size.
/// `repo_tags` are written as given (e.g. `example.com/app:1.0`).
pub fn write_docker_archive(
    layout: &Path,
    manifest: &Digest,
    repo_tags: &[String],
    out: &Path,
    sde: u64,
) -> Result<()> {
    for t in repo_tags {
        if t.is_empty() || t.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(Error::Config {
                field: "RepoTags",
                what: format!(
                    "`{t}` is not a valid tag; use `name:tag`, e.g. `example.com/app:1.0`"
                ),
            });
        }
    }
    let bytes = read_blob_verified(layout, manifest, None)?;
    let m: Manifest =
        crate::layout::parse_json(&bytes, &blob_path(layout, manifest), "image manifest")?;
    read_blob_verified(layout, &m.config.digest, Some(m.config.size))?;

    let rel = |d: &Digest| format!("blobs/sha256/{}", d.hex());
    let mut layer = Layer::new();
    layer.add_file(
        &rel(&m.config.digest),
        blob_path(layout, &m.config.digest),
        Some(0o644),
    )?;
    let mut layers = Vec::new();
    for l in &m.layers {
        let p = blob_path(layout, &l.digest);
        let meta = std::fs::metadata(&p).map_err(|_| Error::BlobMissing {
            layout: layout.to_path_buf(),
            digest: l.digest,
            path: p.clone(),
        })?;
        if meta.len() != l.size {
            return Err(Error::BlobSizeMismatch {
                path: p,
                expected: l.size,
                actual: meta.len(),
            });
        }
        // The same layer may appear twice in a manifest; the archive holds it once.
        if !layers.contains(&rel(&l.digest)) {
            layer.add_file(&rel(&l.digest), p, Some(0o644))?;
        }
        layers.push(rel(&l.digest));
    }
    let entry = DockerManifestEntry {
        config: rel(&m.config.digest),
        repo_tags: repo_tags.to_vec(),
        layers,
    };
    let json = kiln_core::canonical::to_vec(&[entry]).map_err(|e| Error::Config {
        field: kiln_core::contract::layout::docker_archive::MANIFEST,
        what: e.to_string(),
    })?;
    layer.add_bytes(
        kiln_core::contract::layout::docker_archive::MANIFEST,
        json,
        0o644,
    )?;
    write_tar_atomic(&layer, out, sde)
}
