//! The evidence pack: one directory holding every file a release's controls are judged on,
//! and `manifest.json`, which names each with its sha256, size and role.
//!
//! Files keep their output-directory names at the top (`sbom.cdx.json`,
//! `provenance.sigstore.json`, ...); what comes from elsewhere goes under a directory of
//! its role: `scans/<name>` (SARIF, OSV), `repro/report.json`, `toolchain/<lock>`. Nothing
//! is interpreted here (the controls do that); nothing is left out silently either: a scan
//! or report named but missing is an error, and a pack is never half-written.

use std::path::{Path, PathBuf};

use kiln_core::contract::layout::file;
use kiln_core::{Digest, canonical, fsx};
use serde::{Deserialize, Serialize};

/// What a file in the pack is evidence of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// The build's summary (image digest, inputs, every output's sha256).
    Summary,
    Sbom,
    /// SLSA provenance: the statement, its DSSE envelope or its Sigstore bundle.
    Provenance,
    /// The envelope or bundle that signs an SBOM or VEX document.
    Signature,
    Vex,
    /// `gate.json`: the vulnerability gate's verdict.
    Gate,
    /// A scanner's output given to the pack (SARIF, OSV).
    Scan,
    ReproReport,
    ToolchainLock,
    PushReport,
}

/// One file of the pack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Relative to the pack, `/`-separated.
    pub path: String,
    pub sha256: Digest,
    pub size: u64,
    pub role: Role,
}

/// `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub schema: String,
    pub image: String,
    /// The image manifest digest (from `summary.json`).
    pub digest: Digest,
    /// Sorted by path.
    pub files: Vec<Entry>,
}

pub const SCHEMA: &str = "https://kiln.dev/evidence-pack/v1";
pub use kiln_core::contract::layout::pack::{ATTESTATION_DIR, MANIFEST};

/// What goes into a pack.
#[derive(Debug, Clone)]
pub struct PackInput {
    pub image: String,
    /// The image's output directory (`target/kiln/out/<image>`).
    pub output: PathBuf,
    /// The toolchain lock the image was built with.
    pub toolchain_lock: Option<PathBuf>,
    /// A `repro` report (`report.json`) to include.
    pub repro_report: Option<PathBuf>,
    /// Scanner outputs (SARIF, OSV) to include.
    pub scans: Vec<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error("image `{image}` is not built: {} is missing", path.display())]
    NotBuilt { image: String, path: PathBuf },
    #[error("{}: cannot read", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {why}", path.display())]
    Invalid { path: PathBuf, why: String },
    #[error("{}: modified after packing: {why}", path.display())]
    Modified { path: PathBuf, why: String },
    #[error("{} and {} would both be `{name}` in the pack", first.display(), second.display())]
    Collision {
        name: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("cannot write the pack {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl kiln_core::Hint for PackError {
    fn hint(&self) -> Option<String> {
        match self {
            PackError::NotBuilt { .. } => Some(format!(
                "build it first with `{}`",
                kiln_core::cli::cmd("build")
            )),
            PackError::Collision { .. } => Some("rename one of the files".into()),
            PackError::Modified { .. } => Some(format!(
                "the pack no longer is what was packed: pack it again with `{}`",
                kiln_core::cli::cmd("evidence pack")
            )),
            _ => None,
        }
    }
}

/// The role of an output-directory file, `None` for what is not evidence (the image
/// layout and archives: the provenance and summary already name them by digest).
fn output_role(name: &str) -> Option<Role> {
    let sbom = [file::SBOM_CDX, file::SBOM_SPDX];
    let vex = [file::VEX_CSAF, file::VEX_OPENVEX, file::VEX_CDX];
    Some(match name {
        file::SUMMARY => Role::Summary,
        file::GATE => Role::Gate,
        file::PUSH => Role::PushReport,
        file::PROVENANCE | file::PROVENANCE_ENVELOPE | file::PROVENANCE_BUNDLE => Role::Provenance,
        n if sbom.contains(&n) => Role::Sbom,
        n if vex.contains(&n) => Role::Vex,
        n if n.ends_with(".intoto.json") || n.ends_with(".sigstore.json") => Role::Signature,
        _ => return None,
    })
}

/// Assembles the pack for `input` at `dest` (replaced if it exists) and returns its
/// manifest. `dest` appears complete or not at all.
pub fn pack(input: &PackInput, dest: &Path) -> Result<Manifest, PackError> {
    let summary_path = input.output.join(file::SUMMARY);
    let summary = kiln_core::contract::Summary::read(&summary_path).map_err(|e| match e {
        kiln_core::contract::SummaryError::Read { .. } => PackError::NotBuilt {
            image: input.image.clone(),
            path: summary_path.clone(),
        },
        other => PackError::Invalid {
            path: summary_path.clone(),
            why: other.to_string(),
        },
    })?;

    // (path in the pack, source, role), sorted by path.
    let mut sources: Vec<(String, PathBuf, Role)> = Vec::new();
    let mut names: Vec<String> = std::fs::read_dir(&input.output)
        .map_err(|source| PackError::Read {
            path: input.output.clone(),
            source,
        })?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in names {
        if let Some(role) = output_role(&name) {
            sources.push((name.clone(), input.output.join(&name), role));
        }
    }
    let mut add = |dir: &str, path: &Path, role: Role| -> Result<(), PackError> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| PackError::Invalid {
                path: path.to_path_buf(),
                why: "is not a file name".into(),
            })?;
        let rel = format!("{dir}/{name}");
        if let Some((_, first, _)) = sources.iter().find(|(p, _, _)| *p == rel) {
            return Err(PackError::Collision {
                name: rel,
                first: first.clone(),
                second: path.to_path_buf(),
            });
        }
        sources.push((rel, path.to_path_buf(), role));
        Ok(())
    };
    for s in &input.scans {
        add("scans", s, Role::Scan)?;
    }
    if let Some(r) = &input.repro_report {
        add("repro", r, Role::ReproReport)?;
    }
    if let Some(t) = &input.toolchain_lock {
        add("toolchain", t, Role::ToolchainLock)?;
    }
    sources.sort_by(|a, b| a.0.cmp(&b.0));

    let staging = fsx::StagingDir::new(dest).map_err(|source| PackError::Write {
        path: dest.to_path_buf(),
        source,
    })?;
    let mut files = Vec::new();
    for (rel, src, role) in &sources {
        let bytes = std::fs::read(src).map_err(|source| PackError::Read {
            path: src.clone(),
            source,
        })?;
        let to = staging.path().join(rel);
        fsx::write_atomic(&to, &bytes).map_err(|source| PackError::Write {
            path: to.clone(),
            source,
        })?;
        files.push(Entry {
            path: rel.clone(),
            sha256: Digest::of(&bytes),
            size: bytes.len() as u64,
            role: *role,
        });
    }
    let manifest = Manifest {
        schema: SCHEMA.to_string(),
        image: input.image.clone(),
        digest: summary.digest,
        files,
    };
    let mp = staging.path().join(MANIFEST);
    fsx::write_atomic(
        &mp,
        &canonical::to_vec_pretty(&manifest).expect("manifest serializes"),
    )
    .map_err(|source| PackError::Write { path: mp, source })?;
    staging.commit().map_err(|source| PackError::Write {
        path: dest.to_path_buf(),
        source,
    })?;
    Ok(manifest)
}

/// A pack as read back and checked: its manifest and the manifest's bytes.
#[derive(Debug, Clone)]
pub struct Verified {
    pub manifest: Manifest,
    pub manifest_sha256: Digest,
}

/// Reads the pack at `dir` and checks it is whole: `manifest.json` parses (this schema),
/// every file it lists is there with its sha256 and size, and nothing else is, but for
/// [`ATTESTATION_DIR`] (written later, about the pack). Any difference is an error naming
/// the file: a pack changed after packing is evidence of nothing.
pub fn verify(dir: &Path) -> Result<Verified, PackError> {
    let mp = dir.join(MANIFEST);
    let bytes = std::fs::read(&mp).map_err(|source| PackError::Read {
        path: mp.clone(),
        source,
    })?;
    let invalid = |path: PathBuf, why: String| PackError::Invalid { path, why };
    let manifest: Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| invalid(mp.clone(), format!("not an evidence pack manifest: {e}")))?;
    if manifest.schema != SCHEMA {
        return Err(invalid(
            mp.clone(),
            format!("schema is `{}`, expected `{SCHEMA}`", manifest.schema),
        ));
    }
    let mut listed = std::collections::BTreeSet::new();
    for f in &manifest.files {
        let rel = Path::new(&f.path);
        if f.path.is_empty()
            || rel.is_absolute()
            || rel
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(invalid(
                mp.clone(),
                format!("`{}` is not a path inside the pack", f.path),
            ));
        }
        let p = dir.join(rel);
        let got = std::fs::read(&p).map_err(|source| PackError::Read {
            path: p.clone(),
            source,
        })?;
        let d = Digest::of(&got);
        if d != f.sha256 || got.len() as u64 != f.size {
            return Err(PackError::Modified {
                path: p,
                why: format!(
                    "sha256 {d} ({} bytes), the manifest says {} ({} bytes)",
                    got.len(),
                    f.sha256,
                    f.size
                ),
            });
        }
        listed.insert(f.path.clone());
    }
    for p in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let p = p.map_err(|e| PackError::Read {
            path: dir.to_path_buf(),
            source: e.into(),
        })?;
        if p.file_type().is_dir() {
            continue;
        }
        let rel = p
            .path()
            .strip_prefix(dir)
            .expect("walkdir stays under the root")
            .to_string_lossy()
            .replace('\\', "/");
        if rel == MANIFEST || rel.starts_with(&format!("{ATTESTATION_DIR}/")) {
            continue;
        }
        if !listed.contains(&rel) {
            return Err(PackError::Modified {
                path: p.path().to_path_buf(),
                why: "is not listed in manifest.json (added after packing)".into(),
            });
        }
    }
    Ok(Verified {
        manifest,
        manifest_sha256: Digest::of(&bytes),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_files_get_their_roles_and_the_layout_none() {
        assert_eq!(output_role("sbom.cdx.json"), Some(Role::Sbom));
        assert_eq!(
            output_role("provenance.sigstore.json"),
            Some(Role::Provenance)
        );
        assert_eq!(output_role("vex.csaf.sigstore.json"), Some(Role::Signature));
        assert_eq!(output_role("vex.openvex.json"), Some(Role::Vex));
        assert_eq!(output_role("push.json"), Some(Role::PushReport));
        assert_eq!(output_role("image.oci.tar"), None);
        assert_eq!(output_role("notes.txt"), None);
    }

    #[test]
    fn a_missing_output_is_not_built_and_nothing_is_written() {
        let d = tempfile::tempdir().unwrap();
        let input = PackInput {
            image: "hello".into(),
            output: d.path().join("out/hello"),
            toolchain_lock: None,
            repro_report: None,
            scans: vec![],
        };
        let dest = d.path().join("pack");
        let e = pack(&input, &dest).unwrap_err();
        assert!(matches!(e, PackError::NotBuilt { .. }), "{e}");
        assert!(!dest.exists());
    }
}
