use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kiln_core::Digest;
use kiln_core::contract::cargo_lock::{self, CargoLockError};

use crate::download::Located;

/// Why the locked crates cannot be read, fetched or trusted. Messages do not repeat their
/// source; the fix is [`kiln_core::Hint::hint`].
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{path}: cannot read the lock file")]
    NoLock {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    BadLock {
        path: PathBuf,
        message: String,
        /// What to do about it (the lock is wrong in different ways).
        fix: &'static str,
    },
    #[error("{count} locked crate(s) are missing from kiln's cargo home {cargo_home}: {names}")]
    Missing {
        cargo_home: PathBuf,
        count: usize,
        names: String,
    },
    #[error("{file}: checksum {found} does not match Cargo.lock's {locked} for {krate}")]
    Checksum {
        file: PathBuf,
        krate: String,
        locked: String,
        found: String,
    },
    #[error(
        "{file}: the archive of {krate} matches Cargo.lock's checksum but cannot be unpacked safely"
    )]
    BadArchive {
        file: PathBuf,
        krate: String,
        source: crate::verified::ArchiveError,
    },
    #[error("cannot download {krate} from {url}: {why}")]
    Download {
        krate: String,
        url: String,
        why: String,
        /// The final HTTP status, when the server answered with one (404).
        status: Option<u16>,
    },
    #[error(
        "{url}: sha256 {found} does not match Cargo.lock's {locked} for {krate}; nothing was written"
    )]
    DownloadChecksum {
        krate: String,
        url: String,
        locked: String,
        found: String,
    },
    #[error(
        "{krate} comes from `{origin}`; kiln fetches crates.io crates only, because only those are pinned by a checksum it can check"
    )]
    NotCratesIo { krate: String, origin: String },
    #[error("{what} {}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

impl kiln_core::Hint for FetchError {
    fn hint(&self) -> Option<String> {
        let fetch = || kiln_core::cli::cmd("fetch");
        match self {
            FetchError::NoLock { .. } => Some(
                "run `cargo generate-lockfile` in the project and commit Cargo.lock; kiln only builds locked dependencies".into(),
            ),
            FetchError::BadLock { fix, .. } => Some(fix.to_string()),
            FetchError::Missing { .. } => Some(format!(
                "run `{}` (the only step that uses the network), or build without --offline",
                fetch()
            )),
            FetchError::Checksum { .. } => Some(format!(
                "run `{}` (it replaces the file with bytes that match the lock); if it persists, the cache or the registry holds different bytes than the lock pins",
                fetch()
            )),
            FetchError::BadArchive {
                source: crate::verified::ArchiveError::Write { .. },
                ..
            } => None,
            FetchError::BadArchive { .. } => Some(
                "this crate version cannot be built by kiln; update the dependency (`cargo update -p NAME`)".into(),
            ),
            FetchError::Download {
                status: Some(404 | 410),
                ..
            } => Some(format!(
                "the crate is not at that URL: check that Cargo.lock names a published version (`cargo update -w` in the project){}",
                mirror_hint()
            )),
            FetchError::Download {
                status: Some(code),
                ..
            } => Some(format!(
                "the server refused the request (HTTP {code}): check the download URL{}",
                mirror_hint()
            )),
            FetchError::Download { .. } => Some(format!(
                "check network access (HTTPS_PROXY/NO_PROXY are honoured) and run `{}` again{}",
                fetch(),
                mirror_hint()
            )),
            FetchError::DownloadChecksum { .. } => Some(format!(
                "the server sent different bytes than Cargo.lock pins: if ${} names a mirror, check it; otherwise regenerate the lock's entry (`cargo update -p NAME --precise VERSION`) and review the change",
                crate::download::CRATES_DL_ENV
            )),
            FetchError::NotCratesIo { .. } => Some(
                "vendor it as a path dependency (or publish it to crates.io) and regenerate Cargo.lock".into(),
            ),
            FetchError::Io { .. } => None,
        }
    }
}

/// Where the download came from, for a hint: `$KILN_CRATES_DL` when set.
fn mirror_hint() -> String {
    match std::env::var(crate::download::CRATES_DL_ENV) {
        Ok(v) if !v.trim().is_empty() => format!(
            "; downloads come from ${}={v}, unset it to use crates.io",
            crate::download::CRATES_DL_ENV
        ),
        _ => format!(
            "; a crates.io mirror can be given as ${}",
            crate::download::CRATES_DL_ENV
        ),
    }
}

/// A crate pinned by `Cargo.lock`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct LockedCrate {
    pub name: String,
    pub version: String,
    /// `registry+...`, `git+...`, or `None` for path/workspace crates.
    pub source: Option<String>,
    /// The sha256 of the `.crate` file, for registry crates.
    pub checksum: Option<String>,
}

/// The parts of `Cargo.lock` kiln relies on.
#[derive(Debug, Clone)]
pub struct CargoLock {
    pub path: PathBuf,
    pub digest: Digest,
    pub crates: Vec<LockedCrate>,
}

impl CargoLock {
    /// Reads the `Cargo.lock` of the workspace `manifest` belongs to. Only crates.io and
    /// path dependencies are accepted: a git or alternative-registry source cannot be
    /// verified against a checksum.
    pub fn for_manifest(manifest: &Path) -> Result<Self, FetchError> {
        let dir = manifest.parent().unwrap_or(Path::new("."));
        let path = cargo_lock::find(dir);
        let bytes = std::fs::read(&path).map_err(|source| FetchError::NoLock {
            path: path.clone(),
            source,
        })?;
        Self::parse(&path, &bytes)
    }

    /// Parses the lock with [`kiln_core::contract::CargoLock`] and applies kiln's policy:
    /// every package is from crates.io with a checksum, or a path package.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Self, FetchError> {
        const REGENERATE: &str = "regenerate the lock with `cargo generate-lockfile`";
        let bad = |message: String, fix: &'static str| FetchError::BadLock {
            path: path.to_path_buf(),
            message,
            fix,
        };
        let lock = cargo_lock::CargoLock::parse(path, bytes).map_err(|e| match e {
            CargoLockError::Parse {
                line: Some(line),
                message,
                ..
            } => bad(format!("line {line}: {message}"), REGENERATE),
            other => bad(other.message(), REGENERATE),
        })?;
        let mut crates = Vec::with_capacity(lock.packages.len());
        for p in lock.packages {
            match (&p.source, &p.checksum) {
                (Some(s), Some(_)) if cargo_lock::is_crates_io(s) => {}
                (Some(s), None) if cargo_lock::is_crates_io(s) => {
                    return Err(bad(
                        format!("package {}@{} has no checksum", p.name, p.version),
                        REGENERATE,
                    ));
                }
                (Some(s), _) => {
                    return Err(bad(
                        format!(
                            "package {}@{} comes from `{s}`; kiln builds from crates.io and path dependencies only, because only those are pinned by a checksum",
                            p.name, p.version
                        ),
                        "vendor it as a path dependency or publish it",
                    ));
                }
                (None, _) => {}
            }
            crates.push(LockedCrate {
                name: p.name,
                version: p.version,
                source: p.source,
                checksum: p.checksum,
            });
        }
        crates.sort();
        Ok(CargoLock {
            path: lock.path,
            digest: lock.digest,
            crates,
        })
    }

    /// The registry crates (everything that must be fetched).
    pub fn registry_crates(&self) -> impl Iterator<Item = &LockedCrate> {
        self.crates.iter().filter(|c| c.source.is_some())
    }
}

/// Checks that every registry crate of `lock` is in `cargo_home`'s download cache with the
/// checksum the lock names. Returns the `.crate` files found, by crate.
pub fn check_fetched(
    lock: &CargoLock,
    cargo_home: &Path,
) -> Result<BTreeMap<String, PathBuf>, FetchError> {
    let caches = crate::download::cache_dirs(cargo_home);
    let mut found = BTreeMap::new();
    let mut missing = Vec::new();
    for c in lock.registry_crates() {
        let key = format!("{}@{}", c.name, c.version);
        match crate::download::locate(&caches, c)? {
            Located::Verified(file) => {
                found.insert(key, file);
            }
            Located::Wrong { file, found } => {
                return Err(FetchError::Checksum {
                    file,
                    krate: key,
                    locked: c.checksum.clone().unwrap_or_default(),
                    found: found.hex(),
                });
            }
            Located::Absent => missing.push(key),
        }
    }
    if !missing.is_empty() {
        let count = missing.len();
        let mut names = missing
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        if count > 10 {
            names.push_str(&format!(", ... and {} more", count - 10));
        }
        return Err(FetchError::Missing {
            cargo_home: cargo_home.to_path_buf(),
            count,
            names,
        });
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCK: &str = r#"
version = 4

[[package]]
name = "hello"
version = "0.1.0"
dependencies = ["itoa"]

[[package]]
name = "itoa"
version = "1.0.19"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "CHECKSUM"
"#;

    fn home_with(bytes: &[u8]) -> tempfile::TempDir {
        let h = tempfile::tempdir().unwrap();
        let cache = h.path().join("registry/cache/index.crates.io-0000");
        std::fs::create_dir_all(&cache).unwrap();
        std::fs::write(cache.join("itoa-1.0.19.crate"), bytes).unwrap();
        h
    }

    #[test]
    fn present_and_matching_passes() {
        let lock = LOCK.replace("CHECKSUM", &Digest::of(b"crate bytes").hex());
        let lock = CargoLock::parse(Path::new("Cargo.lock"), lock.as_bytes()).unwrap();
        assert_eq!(lock.registry_crates().count(), 1);
        let h = home_with(b"crate bytes");
        let found = check_fetched(&lock, h.path()).unwrap();
        assert!(found.contains_key("itoa@1.0.19"));
    }

    #[test]
    fn missing_crate_is_named() {
        let lock = LOCK.replace("CHECKSUM", &Digest::of(b"x").hex());
        let lock = CargoLock::parse(Path::new("Cargo.lock"), lock.as_bytes()).unwrap();
        let h = tempfile::tempdir().unwrap();
        let e = check_fetched(&lock, h.path()).unwrap_err();
        let fix = kiln_core::Hint::hint(&e).unwrap();
        let e = e.to_string();
        assert!(
            e.contains("itoa@1.0.19") && fix.contains("kiln fetch"),
            "{e}"
        );
    }

    #[test]
    fn tampered_crate_is_rejected() {
        let lock = LOCK.replace("CHECKSUM", &Digest::of(b"crate bytes").hex());
        let lock = CargoLock::parse(Path::new("Cargo.lock"), lock.as_bytes()).unwrap();
        let h = home_with(b"evil bytes");
        let e = check_fetched(&lock, h.path()).unwrap_err().to_string();
        assert!(e.contains("does not match"), "{e}");
    }

    /// An older cargo's cache directory holding a stale copy does not hide a good one in
    /// another directory (which one `read_dir` lists first used to decide).
    #[test]
    fn a_good_copy_wins_over_a_stale_one() {
        let lock = LOCK.replace("CHECKSUM", &Digest::of(b"crate bytes").hex());
        let lock = CargoLock::parse(Path::new("Cargo.lock"), lock.as_bytes()).unwrap();
        let h = home_with(b"stale bytes");
        let good = h
            .path()
            .join("registry/cache")
            .join(cargo_lock::CRATES_IO_CACHE_DIR);
        std::fs::create_dir_all(&good).unwrap();
        std::fs::write(good.join("itoa-1.0.19.crate"), b"crate bytes").unwrap();
        let found = check_fetched(&lock, h.path()).unwrap();
        assert_eq!(found["itoa@1.0.19"], good.join("itoa-1.0.19.crate"));
    }

    /// The sparse index is crates.io too (this parser used to refuse it as "another
    /// source"); another registry is not, whatever its protocol (kiln-sbom's parser used to
    /// take any `registry+`/`sparse+` source for crates.io).
    #[test]
    fn crates_io_by_either_index_and_nothing_else() {
        let sparse = LOCK.replace(
            "registry+https://github.com/rust-lang/crates.io-index",
            "sparse+https://index.crates.io/",
        );
        let lock = CargoLock::parse(Path::new("Cargo.lock"), sparse.as_bytes()).unwrap();
        assert_eq!(lock.registry_crates().count(), 1);
        for other in [
            "registry+https://my-registry.example/index",
            "sparse+https://my-registry.example/index/",
        ] {
            let alt = LOCK.replace(
                "registry+https://github.com/rust-lang/crates.io-index",
                other,
            );
            let e = CargoLock::parse(Path::new("Cargo.lock"), alt.as_bytes())
                .unwrap_err()
                .to_string();
            assert!(e.contains(other) && e.contains("crates.io and path"), "{e}");
        }
    }

    #[test]
    fn unpinned_sources_are_rejected() {
        let git = LOCK.replace(
            "registry+https://github.com/rust-lang/crates.io-index",
            "git+https://example.invalid/x#abc",
        );
        let e = CargoLock::parse(Path::new("Cargo.lock"), git.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(e.contains("git+") && e.contains("Cargo.lock"), "{e}");
        let e = CargoLock::parse(Path::new("Cargo.lock"), b"[[package]]\nname=1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a Cargo.lock"), "{e}");
    }
}
