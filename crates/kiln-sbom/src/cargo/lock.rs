//! `Cargo.lock`, as [`kiln_core::contract::cargo_lock`] models it (the one model kiln-hermetic
//! fetches by), with errors in kiln-sbom's terms.

use std::path::Path;

pub(crate) use kiln_core::contract::cargo_lock::CargoLock as Lock;
use kiln_core::contract::cargo_lock::CargoLockError;

use crate::error::{Result, SbomError};

/// Reads and links the lock file at `path`. Errors name the file and, for syntax errors
/// and dangling dependency entries, the line.
pub(crate) fn read(path: &Path) -> Result<Lock> {
    Lock::read(path).map_err(|e| match e {
        CargoLockError::Read { path, source } => SbomError::MissingLock { path, source },
        CargoLockError::Parse {
            path,
            line,
            message,
        } => SbomError::BadLock {
            path,
            line,
            message,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lock entry from another registry is not crates.io (so the resolver refuses it,
    /// as the fetch step does, instead of describing it as a crates.io crate): kiln-sbom
    /// used to take any `registry+`/`sparse+` source for crates.io.
    #[test]
    fn another_registry_is_not_crates_io() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("Cargo.lock");
        std::fs::write(
            &p,
            "version = 4\n\n[[package]]\nname = \"a\"\nversion = \"1.0.0\"\nsource = \"sparse+https://my-registry.example/index/\"\nchecksum = \"aa\"\n\n[[package]]\nname = \"b\"\nversion = \"1.0.0\"\nsource = \"sparse+https://index.crates.io/\"\nchecksum = \"bb\"\n",
        )
        .unwrap();
        let lock = read(&p).unwrap();
        assert!(!lock.packages[0].is_crates_io());
        assert!(lock.packages[1].is_crates_io());
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("Cargo.lock");
        assert!(matches!(read(&p), Err(SbomError::MissingLock { .. })));
        std::fs::write(
            &p,
            "version = 4\n\n[[package]]\nname = \"a\"\nversion = = \"1\"\n",
        )
        .unwrap();
        let e = read(&p).unwrap_err().to_string();
        assert!(e.contains(&format!("{}:5", p.display())), "{e}");
    }
}
