//! `summary.json`: what was built, from what, and the digest of every output file.
//!
//! kiln-build writes it, `kiln sbom` updates its artifact list after rewriting the SBOMs,
//! kiln-attest's `verify` recomputes it from verified bytes and compares, and the CLI prints
//! it. It is defined once, here, as a type that can be read back ([`Summary::read`]) as
//! well as written ([`Summary::write`]), so nothing edits it as untyped JSON and a summary
//! of a different shape ([`SCHEMA`]) is refused rather than half-understood.
//!
//! It holds no absolute paths and no wall-clock time, so two builds of the same inputs
//! write the same summary wherever they ran. Its bytes are canonical JSON (sorted keys,
//! two-space indentation) and are part of the outputs.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Digest, canonical, fsx};

/// The version of [`Summary`]'s shape, its `schema` field.
pub const SCHEMA: u32 = 1;

/// `summary.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Summary {
    /// Version of this document's shape: [`SCHEMA`].
    pub schema: u32,
    pub kiln_version: String,
    pub image: String,
    /// `org.opencontainers.image.ref.name` of the manifest in `oci/`.
    pub ref_name: String,
    /// `os/arch[/variant]`, as `kiln.toml` gives it.
    pub platform: String,
    /// The image manifest digest: the image's identity.
    pub digest: Digest,
    pub config_digest: Digest,
    pub layers: Vec<LayerRecord>,
    /// The pinned base image manifest, when not `scratch`.
    pub base: Option<Digest>,
    pub source_date_epoch: SdeRecord,
    /// How the build was isolated: `netns` or `none`.
    pub sandbox: String,
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

/// The build's `SOURCE_DATE_EPOCH` and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SdeRecord {
    pub value: u64,
    /// `env`, `git_commit`, `config` or `default`.
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerRecord {
    pub digest: Digest,
    pub diff_id: Digest,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolchainRecord {
    /// The lock file, relative to the project root.
    pub lock: String,
    /// sha256 of the lock file: provenance names the toolchain by this.
    pub lock_digest: Digest,
    pub rustc: String,
    pub target: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BinaryRecord {
    pub name: String,
    pub path: String,
    pub sha256: Digest,
    pub size: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(deny_unknown_fields)]
pub struct Artifact {
    /// Path relative to the output directory, `/`-separated.
    pub path: String,
    pub sha256: Digest,
    pub size: u64,
}

/// Why a `summary.json` cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SummaryError {
    #[error("{}: cannot read", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a kiln summary: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error("{}: `schema` is {found}, this kiln reads schema {SCHEMA}", path.display())]
    Schema { path: PathBuf, found: u32 },
    #[error("{}: cannot write", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl crate::Hint for SummaryError {
    fn hint(&self) -> Option<String> {
        let build = crate::cli::cmd("build");
        match self {
            SummaryError::Read { .. } => Some(format!("build the image first with `{build}`")),
            SummaryError::Parse { .. } => Some(format!(
                "rebuild the image with `{build}` (the file is kiln's output, not meant to be edited)"
            )),
            SummaryError::Schema { .. } => {
                Some(format!("rebuild the image with this kiln (`{build}`)"))
            }
            SummaryError::Write { .. } => None,
        }
    }
}

impl Summary {
    /// Reads and checks a `summary.json`: unknown fields and another [`SCHEMA`] are errors
    /// naming the file and the field.
    pub fn read(path: &Path) -> Result<Summary, SummaryError> {
        let bytes = std::fs::read(path).map_err(|source| SummaryError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_slice(path, &bytes)
    }

    /// Parses the bytes of the `summary.json` at `path` (named in errors).
    pub fn from_slice(path: &Path, bytes: &[u8]) -> Result<Summary, SummaryError> {
        let parse = |message: String| SummaryError::Parse {
            path: path.to_path_buf(),
            message,
        };
        // The schema first, so a summary of another shape says so rather than naming the
        // first field it does not know.
        #[derive(Deserialize)]
        struct Head {
            schema: Option<u32>,
        }
        let head: Head = serde_json::from_slice(bytes).map_err(|e| parse(e.to_string()))?;
        match head.schema {
            Some(SCHEMA) => {}
            Some(found) => {
                return Err(SummaryError::Schema {
                    path: path.to_path_buf(),
                    found,
                });
            }
            None => return Err(parse("no `schema` field".into())),
        }
        let de = &mut serde_json::Deserializer::from_slice(bytes);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let at = e.path().to_string();
            if at == "." {
                parse(e.into_inner().to_string())
            } else {
                parse(format!("`{at}`: {}", e.into_inner()))
            }
        })
    }

    /// The canonical bytes (sorted keys, pretty): exactly what [`Summary::write`] writes.
    pub fn to_bytes(&self) -> Vec<u8> {
        canonical::to_vec_pretty(self).expect("a summary serializes")
    }

    /// Writes the summary to `path` atomically.
    pub fn write(&self, path: &Path) -> Result<(), SummaryError> {
        fsx::write_atomic(path, &self.to_bytes()).map_err(|source| SummaryError::Write {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Records (or re-records) the files `paths` of the output directory `dir` in
    /// [`Summary::artifacts`], keeping the list sorted: for a step that rewrites files after
    /// the build.
    pub fn record_artifacts(&mut self, dir: &Path, paths: &[PathBuf]) -> std::io::Result<()> {
        for path in paths {
            let rel = path.strip_prefix(dir).unwrap_or(path);
            let entry = Artifact {
                path: slash_path(rel),
                sha256: Digest::of_file(path)?,
                size: std::fs::metadata(path)?.len(),
            };
            match self.artifacts.iter_mut().find(|a| a.path == entry.path) {
                Some(a) => *a = entry,
                None => self.artifacts.push(entry),
            }
        }
        self.artifacts.sort();
        Ok(())
    }
}

/// Lists and hashes every regular file under `dir`, sorted by relative path.
pub fn artifacts(dir: &Path) -> std::io::Result<Vec<Artifact>> {
    let mut out = Vec::new();
    walk(dir, dir, &mut out)?;
    out.sort();
    Ok(out)
}

fn slash_path(rel: &Path) -> String {
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
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
            let size = entry.metadata()?.len();
            out.push(Artifact {
                path: slash_path(rel),
                sha256: Digest::of_file(&path)?,
                size,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Summary {
        let d = Digest::of(b"x");
        Summary {
            schema: SCHEMA,
            kiln_version: "0.1.0".into(),
            image: "hello".into(),
            ref_name: "latest".into(),
            platform: "linux/amd64".into(),
            digest: d,
            config_digest: d,
            layers: vec![LayerRecord {
                digest: d,
                diff_id: d,
                size: 3,
            }],
            base: None,
            source_date_epoch: SdeRecord {
                value: 1700000000,
                source: "git_commit".into(),
            },
            sandbox: "netns".into(),
            environment: vec!["PATH".into()],
            toolchain: ToolchainRecord {
                lock: "toolchains/x86_64-unknown-linux-gnu.lock.json".into(),
                lock_digest: d,
                rustc: "1.95.0".into(),
                target: "x86_64-unknown-linux-gnu".into(),
            },
            kiln_toml: d,
            cargo_lock: d,
            binaries: vec![BinaryRecord {
                name: "hello".into(),
                path: "/usr/local/bin/hello".into(),
                sha256: d,
                size: 9,
            }],
            artifacts: vec![],
        }
    }

    #[test]
    fn write_read_round_trip() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("summary.json");
        let s = sample();
        s.write(&p).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(bytes, s.to_bytes());
        assert_eq!(Summary::read(&p).unwrap(), s);
        // Canonical: sorted keys, `base` present as null.
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with("{\n  \"artifacts\": []"), "{text}");
        assert!(text.contains("\"base\": null"), "{text}");
    }

    #[test]
    fn refuses_other_shapes() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("summary.json");
        let mut v = serde_json::to_value(sample()).unwrap();
        v["schema"] = 2.into();
        std::fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
        let e = Summary::read(&p).unwrap_err();
        assert!(matches!(e, SummaryError::Schema { found: 2, .. }), "{e}");

        v["schema"] = 1.into();
        v["toolchain"]["extra"] = true.into();
        std::fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
        let e = Summary::read(&p).unwrap_err().to_string();
        assert!(e.contains("`toolchain.extra`: unknown field"), "{e}");

        v["toolchain"].as_object_mut().unwrap().remove("extra");
        v["digest"] = "nope".into();
        std::fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
        let e = Summary::read(&p).unwrap_err().to_string();
        assert!(e.contains("`digest`") && e.contains("summary.json"), "{e}");

        let e = Summary::read(&d.path().join("missing.json")).unwrap_err();
        // The message names the file; the I/O error is its source, not repeated; the fix
        // is the hint.
        assert!(e.to_string().ends_with("missing.json: cannot read"), "{e}");
        assert!(std::error::Error::source(&e).is_some());
        let fix = crate::Hint::hint(&e).unwrap();
        assert!(fix.starts_with("build the image first"), "{fix}");
    }

    #[test]
    fn records_rewritten_artifacts() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("b.json"), "b").unwrap();
        std::fs::create_dir(d.path().join("oci")).unwrap();
        std::fs::write(d.path().join("oci/index.json"), "{}").unwrap();
        let mut s = sample();
        s.artifacts = artifacts(d.path()).unwrap();
        assert_eq!(
            s.artifacts
                .iter()
                .map(|a| a.path.as_str())
                .collect::<Vec<_>>(),
            ["b.json", "oci/index.json"]
        );
        std::fs::write(d.path().join("a.json"), "a").unwrap();
        std::fs::write(d.path().join("b.json"), "bb").unwrap();
        s.record_artifacts(
            d.path(),
            &[d.path().join("b.json"), d.path().join("a.json")],
        )
        .unwrap();
        assert_eq!(s.artifacts, artifacts(d.path()).unwrap());
    }
}
