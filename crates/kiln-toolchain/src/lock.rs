//! The lock file: its format, reading, writing and comparison.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use kiln_core::Digest;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The lock format version this crate reads and writes.
/// Schema 2 added [`ToolchainLock::cfg`]; schema 3 [`ToolchainLock::rustup_toolchain`].
pub const SCHEMA: u32 = 3;

/// How many differences [`Mismatch`]'s message lists before summarizing the rest.
const MAX_LISTED: usize = 20;

/// The command that (re)creates a lock (`kiln toolchain lock`, or `cargo xtask toolchain
/// lock` in kiln's repository); every error about a lock ends by pointing at it.
pub fn relock_command() -> String {
    kiln_core::cli::cmd("toolchain lock")
}

/// The pinned toolchain, as written to `toolchains/<target>.lock.json`.
///
/// Unknown fields are rejected: a lock written by a newer kiln with more pins must not be
/// silently read as if those pins were satisfied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolchainLock {
    /// Always [`SCHEMA`].
    pub schema: u32,
    /// The rustup toolchain pinned (`1.95.0-x86_64-unknown-linux-gnu`), which builds select
    /// whatever directory they run from; absent for a toolchain rustup does not manage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rustup_toolchain: Option<String>,
    /// The rustc host triple (where build scripts and proc macros run).
    pub host: String,
    /// The target triple the build produces code for.
    pub target: String,
    pub rustc: ToolVersion,
    pub cargo: ToolVersion,
    pub cc: CcInfo,
    /// What `rustc --print cfg` says for the target and the host: the facts cargo matches
    /// `[target.'cfg(..)'.dependencies]` against. They follow from the pinned files, and
    /// recording them lets an SBOM resolve the build's crates without running rustc.
    pub cfg: TargetCfg,
    /// Every file that shapes the output, by portable key (see the crate docs).
    pub files: BTreeMap<String, FileEntry>,
}

/// `rustc --print cfg` lines (e.g. `unix`, `target_os="linux"`), sorted, for the target
/// and for the host (where build scripts and proc macros run). Without any `-C` flags:
/// a build that passes `-Ctarget-feature=..` adds what that flag implies itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetCfg {
    pub target: Vec<String>,
    pub host: Vec<String>,
}

/// A Rust tool's identity from its `-vV` output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolVersion {
    /// `release:`, e.g. `1.95.0`.
    pub version: String,
    /// `commit-hash:` (`unknown` for builds without git information).
    pub commit_hash: String,
    /// `commit-date:`.
    pub commit_date: String,
    /// `LLVM version:` (rustc only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llvm_version: Option<String>,
}

/// The C compiler driver's identity. Its binary, the linker and the C runtime are pinned by
/// digest in [`ToolchainLock::files`] under `cc:` keys; these strings make a mismatch
/// readable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CcInfo {
    /// First line of `cc --version` (run with `LC_ALL=C`).
    pub version: String,
    /// `cc -dumpmachine`: the triple the C compiler targets.
    pub machine: String,
}

/// One pinned file: its content digest and size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    pub sha256: Digest,
    pub size: u64,
}

/// Where a project keeps the lock for `target`: `<project_root>/toolchains/<target>.lock.json`.
pub fn default_lock_path(project_root: &Path, target: &str) -> PathBuf {
    kiln_core::contract::ProjectLayout::new(project_root).toolchain_lock(target)
}

impl ToolchainLock {
    /// Reads and validates a lock file. A missing file, malformed JSON, unknown fields
    /// and an unsupported schema are all errors naming `path` and the fix.
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|error| match error.kind() {
            std::io::ErrorKind::NotFound => Error::LockMissing {
                path: path.to_path_buf(),
            },
            _ => Error::Io {
                path: path.to_path_buf(),
                error,
            },
        })?;
        let malformed = |error| Error::LockMalformed {
            path: path.to_path_buf(),
            error,
        };
        // Look at the schema before the typed parse, so a lock from a newer kiln reports
        // "unsupported schema" rather than its first unknown field.
        let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(malformed)?;
        match value.get("schema") {
            Some(v) if v.as_u64() == Some(u64::from(SCHEMA)) => {}
            Some(v) => {
                return Err(Error::UnsupportedSchema {
                    path: path.to_path_buf(),
                    found: v.to_string(),
                    expected: SCHEMA,
                });
            }
            None => {} // the typed parse below reports the missing field
        }
        // Parse the bytes again (not the Value) so errors carry line and column.
        serde_json::from_slice(&bytes).map_err(malformed)
    }

    /// Writes the lock as canonical pretty JSON (sorted keys, trailing newline), atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        kiln_core::fsx::write_atomic(path, &self.to_bytes()).map_err(|error| Error::Write {
            path: path.to_path_buf(),
            error,
        })
    }

    /// The canonical bytes: exactly what [`ToolchainLock::write`] puts in the file.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Only strings, integers and string-keyed maps: serialization cannot fail.
        kiln_core::canonical::to_vec_pretty(self).expect("a ToolchainLock always serializes")
    }

    /// The digest of [`ToolchainLock::to_bytes`]; provenance records it.
    ///
    /// This is the digest of the lock's canonical form, so it equals the digest of the
    /// file kiln wrote, and is unaffected if someone re-indents the file by hand.
    pub fn digest(&self) -> Digest {
        Digest::of(&self.to_bytes())
    }

    /// Compares this (expected) lock with one computed from the machine (`actual`).
    ///
    /// Returns every difference: version fields first (the likeliest explanation), then
    /// changed, missing and extra files in key order. `lock_path` of the result is `None`;
    /// [`crate::Toolchain::verify`] fills it in.
    pub fn verify_against(&self, actual: &ToolchainLock) -> Result<(), Mismatch> {
        let mut differences = Vec::new();
        let mut field = |name: &'static str, lock: &str, found: &str| {
            if lock != found {
                differences.push(Difference::Field {
                    field: name,
                    lock: lock.to_string(),
                    found: found.to_string(),
                });
            }
        };
        field(
            "schema",
            &self.schema.to_string(),
            &actual.schema.to_string(),
        );
        field(
            "rustup toolchain",
            self.rustup_toolchain.as_deref().unwrap_or("(none)"),
            actual.rustup_toolchain.as_deref().unwrap_or("(none)"),
        );
        field("host", &self.host, &actual.host);
        field("target", &self.target, &actual.target);
        for (tool, l, a) in [
            ("rustc", &self.rustc, &actual.rustc),
            ("cargo", &self.cargo, &actual.cargo),
        ] {
            let names: [&'static str; 4] = if tool == "rustc" {
                [
                    "rustc version",
                    "rustc commit-hash",
                    "rustc commit-date",
                    "rustc LLVM version",
                ]
            } else {
                [
                    "cargo version",
                    "cargo commit-hash",
                    "cargo commit-date",
                    "cargo LLVM version",
                ]
            };
            field(names[0], &l.version, &a.version);
            field(names[1], &l.commit_hash, &a.commit_hash);
            field(names[2], &l.commit_date, &a.commit_date);
            let none = "(none)";
            field(
                names[3],
                l.llvm_version.as_deref().unwrap_or(none),
                a.llvm_version.as_deref().unwrap_or(none),
            );
        }
        field("cc version", &self.cc.version, &actual.cc.version);
        field("cc machine", &self.cc.machine, &actual.cc.machine);
        field(
            "target cfg",
            &self.cfg.target.join(" "),
            &actual.cfg.target.join(" "),
        );
        field(
            "host cfg",
            &self.cfg.host.join(" "),
            &actual.cfg.host.join(" "),
        );

        let (mut changed, mut missing, mut extra) = (Vec::new(), Vec::new(), Vec::new());
        for (key, lock) in &self.files {
            match actual.files.get(key) {
                Some(found) if found != lock => changed.push(Difference::Changed {
                    key: key.clone(),
                    lock: *lock,
                    found: *found,
                }),
                Some(_) => {}
                None => missing.push(Difference::Missing {
                    key: key.clone(),
                    lock: *lock,
                }),
            }
        }
        for (key, found) in &actual.files {
            if !self.files.contains_key(key) {
                extra.push(Difference::Extra {
                    key: key.clone(),
                    found: *found,
                });
            }
        }
        differences.extend(changed);
        differences.extend(missing);
        differences.extend(extra);

        if differences.is_empty() {
            Ok(())
        } else {
            Err(Mismatch {
                lock_path: None,
                differences,
            })
        }
    }
}

/// A lock that does not match the machine. Its message lists the differences (the first
/// 20, then a count) and how to re-pin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    pub lock_path: Option<PathBuf>,
    pub differences: Vec<Difference>,
}

/// One way the machine differs from the lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Difference {
    /// A version or identity field (`rustc version`, `host`, `cc version`, ...).
    Field {
        field: &'static str,
        lock: String,
        found: String,
    },
    /// A pinned file whose content changed.
    Changed {
        key: String,
        lock: FileEntry,
        found: FileEntry,
    },
    /// A pinned file that is no longer there.
    Missing { key: String, lock: FileEntry },
    /// A file that shapes the output but is not in the lock.
    Extra { key: String, found: FileEntry },
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Difference::Field { field, lock, found } => {
                write!(f, "{field}: lock {lock}, found {found}")
            }
            Difference::Changed { key, lock, found } => {
                // Both digests in full: two that share a long prefix must not look equal.
                write!(f, "changed  {key} (lock {}", lock.sha256)?;
                if lock.size != found.size {
                    write!(f, ", {} bytes", lock.size)?;
                }
                write!(f, "; found {}", found.sha256)?;
                if lock.size != found.size {
                    write!(f, ", {} bytes", found.size)?;
                }
                write!(f, ")")
            }
            Difference::Missing { key, .. } => write!(f, "missing  {key}"),
            Difference::Extra { key, .. } => write!(f, "extra    {key}"),
        }
    }
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.lock_path {
            Some(p) => writeln!(
                f,
                "toolchain lock {} does not match this machine:",
                p.display()
            )?,
            None => writeln!(f, "toolchain lock does not match this machine:")?,
        }
        for d in self.differences.iter().take(MAX_LISTED) {
            writeln!(f, "  {d}")?;
        }
        if self.differences.len() > MAX_LISTED {
            writeln!(f, "  ... and {} more", self.differences.len() - MAX_LISTED)?;
        }
        write!(
            f,
            "If this toolchain change is intended, re-pin it with: {}",
            relock_command()
        )
    }
}

impl std::error::Error for Mismatch {}
