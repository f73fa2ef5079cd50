//! `Cargo.lock`: the exact packages cargo resolved, where each comes from, its checksum and
//! the edges between them.
//!
//! kiln-hermetic reads it to fetch and verify every crate; kiln-sbom reads it to describe
//! them. They used to carry a parser each and disagreed about what crates.io is (one took
//! the git index URL only, the other any `registry+`/`sparse+` source, alternative
//! registries included). This is the one model, and [`is_crates_io`] the one answer.
//!
//! Written by hand on top of `toml` + serde rather than with the `cargo-lock` crate: that
//! crate parses every source into a `url::Url`, which pulls `url`, `idna` and the ICU
//! tables into kiln for a field kiln only classifies (crates.io, path or other). The format
//! itself is small: `[[package]]` tables with `name`, `version`, optional `source` and
//! `checksum`, and `dependencies` entries of the form `name`, `name version` or
//! `name version (source)` (cargo writes the shortest unambiguous one).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::Digest;

/// crates.io as cargo writes it into `Cargo.lock` (the git index URL, whatever protocol
/// fetched it).
pub const CRATES_IO: &str = "registry+https://github.com/rust-lang/crates.io-index";
/// crates.io's sparse index, which cargo also treats as crates.io.
pub const CRATES_IO_SPARSE: &str = "sparse+https://index.crates.io/";
/// Where crates.io serves a version's `.crate` file: `{CRATES_IO_DL}/{name}/{name}-{version}.crate`
/// (its index's `dl`, without the API redirect).
pub const CRATES_IO_DL: &str = "https://static.crates.io/crates";
/// The directory of crates.io's `.crate` files under a cargo home's `registry/cache/`:
/// the one cargo ≥ 1.85 uses (a stable hash of the sparse index URL), so that a cargo run
/// on the same cargo home finds what kiln fetched.
pub const CRATES_IO_CACHE_DIR: &str = "index.crates.io-1949cf8c6b5b557f";

/// Is `source` (a lock entry's `source`) crates.io? Only crates.io's two index URLs are;
/// any other registry is not, whatever its protocol.
pub fn is_crates_io(source: &str) -> bool {
    source == CRATES_IO || source == CRATES_IO_SPARSE
}

/// One `[[package]]` of the lock, with its dependencies resolved to indices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedPackage {
    pub name: String,
    pub version: String,
    /// `registry+…`, `sparse+…`, `git+…`; `None` for path packages (workspace members and
    /// path dependencies).
    pub source: Option<String>,
    /// The sha256 (hex) of the `.crate` archive, for registry packages.
    pub checksum: Option<String>,
    /// Indices into [`CargoLock::packages`]: every dependency cargo locked for this
    /// package, of every kind and for every platform.
    pub deps: Vec<usize>,
}

impl LockedPackage {
    /// `name@version`.
    pub fn key(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }
    /// From crates.io (see [`is_crates_io`]).
    pub fn is_crates_io(&self) -> bool {
        self.source.as_deref().is_some_and(is_crates_io)
    }
    /// A workspace member or path dependency.
    pub fn is_path(&self) -> bool {
        self.source.is_none()
    }
}

/// A parsed `Cargo.lock`, packages in file order.
#[derive(Debug, Clone)]
pub struct CargoLock {
    pub path: PathBuf,
    /// sha256 of the file's bytes.
    pub digest: Digest,
    pub packages: Vec<LockedPackage>,
}

/// Why a `Cargo.lock` cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum CargoLockError {
    #[error("{}: cannot read the lock file", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}{}: {message}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Parse {
        path: PathBuf,
        /// 1-based, when known.
        line: Option<usize>,
        message: String,
    },
}

impl crate::Hint for CargoLockError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            CargoLockError::Read { .. } => "run `cargo generate-lockfile` in the project and commit Cargo.lock; kiln only builds locked dependencies",
            CargoLockError::Parse { .. } => "regenerate the lock with `cargo generate-lockfile`",
        }.to_string())
    }
}

impl CargoLockError {
    /// The message without the file name and fix (for callers that wrap it in their own).
    pub fn message(&self) -> String {
        match self {
            CargoLockError::Read { source, .. } => format!("cannot read the lock file: {source}"),
            CargoLockError::Parse { message, .. } => message.clone(),
        }
    }
}

#[derive(Deserialize)]
struct Raw {
    #[serde(default)]
    package: Vec<RawPackage>,
}

#[derive(Deserialize)]
struct RawPackage {
    name: String,
    version: String,
    source: Option<String>,
    checksum: Option<String>,
    #[serde(default)]
    dependencies: Vec<String>,
}

/// The lock of the workspace that contains `dir`: the nearest ancestor with a `Cargo.lock`
/// (or `dir/Cargo.lock` when there is none, for the error to name).
pub fn find(dir: &Path) -> PathBuf {
    let mut d = Some(dir);
    while let Some(cur) = d {
        let p = cur.join(crate::contract::layout::CARGO_LOCK);
        if p.is_file() {
            return p;
        }
        d = cur.parent();
    }
    dir.join(crate::contract::layout::CARGO_LOCK)
}

impl CargoLock {
    /// Reads the `Cargo.lock` of the workspace `manifest` belongs to (see [`find`]).
    pub fn for_manifest(manifest: &Path) -> Result<CargoLock, CargoLockError> {
        Self::read(&find(manifest.parent().unwrap_or(Path::new("."))))
    }

    /// Reads and links a lock file. Errors name the file and, for syntax errors and
    /// dangling dependency entries, the line.
    pub fn read(path: &Path) -> Result<CargoLock, CargoLockError> {
        let bytes = std::fs::read(path).map_err(|source| CargoLockError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &bytes)
    }

    /// Parses the bytes of the lock at `path` (named in errors).
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<CargoLock, CargoLockError> {
        let bad = |line: Option<usize>, message: String| CargoLockError::Parse {
            path: path.to_path_buf(),
            line,
            message,
        };
        let text = std::str::from_utf8(bytes).map_err(|e| bad(None, format!("not UTF-8 ({e})")))?;
        let raw: Raw = toml::from_str(text).map_err(|e| {
            bad(
                e.span().map(|s| crate::strict_toml::line_at(text, s.start)),
                format!("not a Cargo.lock: {}", e.message()),
            )
        })?;
        let mut by_name: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, p) in raw.package.iter().enumerate() {
            by_name.entry(p.name.as_str()).or_default().push(i);
        }
        let mut packages = Vec::with_capacity(raw.package.len());
        for p in &raw.package {
            let mut deps = Vec::with_capacity(p.dependencies.len());
            for entry in &p.dependencies {
                let mut parts = entry.splitn(3, ' ');
                let name = parts.next().unwrap_or_default();
                let version = parts.next();
                let source = parts
                    .next()
                    .map(|s| s.trim_start_matches('(').trim_end_matches(')'));
                let found: Vec<usize> = by_name
                    .get(name)
                    .into_iter()
                    .flatten()
                    .copied()
                    .filter(|&i| {
                        let q = &raw.package[i];
                        version.is_none_or(|v| q.version == v)
                            && source.is_none_or(|s| q.source.as_deref() == Some(s))
                    })
                    .collect();
                match found[..] {
                    [i] => deps.push(i),
                    _ => {
                        return Err(bad(
                            line_of(text, &format!("\"{entry}\"")),
                            format!(
                                "dependency `{entry}` of {}@{} matches {} packages (expected exactly one)",
                                p.name,
                                p.version,
                                found.len()
                            ),
                        ));
                    }
                }
            }
            packages.push(LockedPackage {
                name: p.name.clone(),
                version: p.version.clone(),
                source: p.source.clone(),
                checksum: p.checksum.clone(),
                deps,
            });
        }
        Ok(CargoLock {
            path: path.to_path_buf(),
            digest: Digest::of(bytes),
            packages,
        })
    }

    /// The path package (workspace member or path dependency) called `name`, if locked.
    pub fn path_package(&self, name: &str) -> Option<usize> {
        self.packages
            .iter()
            .position(|p| p.is_path() && p.name == name)
    }
}

fn line_of(text: &str, needle: &str) -> Option<usize> {
    text.find(needle)
        .map(|at| crate::strict_toml::line_at(text, at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependency_entries_of_every_form_resolve() {
        let text = format!(
            r#"version = 4

[[package]]
name = "app"
version = "0.1.0"
dependencies = ["itoa", "rand_core 0.5.1", "rand_core 0.6.4 ({CRATES_IO})"]

[[package]]
name = "itoa"
version = "1.0.15"
source = "{CRATES_IO}"
checksum = "aa"

[[package]]
name = "rand_core"
version = "0.5.1"
source = "{CRATES_IO}"
checksum = "bb"

[[package]]
name = "rand_core"
version = "0.6.4"
source = "{CRATES_IO}"
checksum = "cc"
"#
        );
        let lock = CargoLock::parse(Path::new("/x/Cargo.lock"), text.as_bytes()).unwrap();
        assert_eq!(lock.digest, Digest::of(text.as_bytes()));
        let app = &lock.packages[0];
        let keys: Vec<String> = app.deps.iter().map(|&i| lock.packages[i].key()).collect();
        assert_eq!(keys, ["itoa@1.0.15", "rand_core@0.5.1", "rand_core@0.6.4"]);
        assert!(app.is_path() && !app.is_crates_io());
        assert!(lock.packages[1].is_crates_io());
        assert_eq!(lock.packages[1].checksum.as_deref(), Some("aa"));
        assert_eq!(lock.path_package("app"), Some(0));
        assert_eq!(lock.path_package("itoa"), None);
    }

    /// kiln-hermetic's parser took only the git index URL for crates.io (refusing crates
    /// from the sparse index as "another source"); kiln-sbom's took any `registry+` or
    /// `sparse+` source (describing crates of another registry as crates.io's). Both
    /// crates.io spellings are crates.io, and nothing else is.
    #[test]
    fn what_crates_io_is() {
        assert!(is_crates_io(CRATES_IO));
        assert!(is_crates_io("sparse+https://index.crates.io/"));
        assert!(!is_crates_io("registry+https://my-registry.example/index"));
        assert!(!is_crates_io("sparse+https://my-registry.example/index/"));
        assert!(!is_crates_io(
            "git+https://github.com/rust-lang/crates.io-index"
        ));
        assert!(!is_crates_io("sparse+https://index.crates.io"));
    }

    #[test]
    fn dangling_dependency_names_file_line_and_entry() {
        let text = "version = 4\n\n[[package]]\nname = \"app\"\nversion = \"0.1.0\"\ndependencies = [\n \"ghost\",\n]\n";
        let e = CargoLock::parse(Path::new("/x/Cargo.lock"), text.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/x/Cargo.lock:7") && e.contains("`ghost`") && e.contains("app@0.1.0"),
            "{e}"
        );
    }

    #[test]
    fn syntax_error_names_the_line() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("Cargo.lock");
        std::fs::write(
            &p,
            "version = 4\n\n[[package]]\nname = \"a\"\nversion = = \"1\"\n",
        )
        .unwrap();
        let e = CargoLock::read(&p).unwrap_err().to_string();
        assert!(e.contains(&format!("{}:5", p.display())), "{e}");
        let e = CargoLock::read(&d.path().join("none/Cargo.lock")).unwrap_err();
        assert!(matches!(e, CargoLockError::Read { .. }), "{e}");
    }

    #[test]
    fn finds_the_workspace_lock() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("crates/app")).unwrap();
        std::fs::write(d.path().join("Cargo.lock"), "version = 4\n").unwrap();
        assert_eq!(
            find(&d.path().join("crates/app")),
            d.path().join("Cargo.lock")
        );
        let lock = CargoLock::for_manifest(&d.path().join("crates/app/Cargo.toml")).unwrap();
        assert!(lock.packages.is_empty());
    }
}
