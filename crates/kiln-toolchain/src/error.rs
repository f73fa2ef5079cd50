use std::path::PathBuf;
use std::process::ExitStatus;

use crate::Mismatch;

/// Everything that can go wrong detecting, locking or verifying a toolchain.
///
/// Every variant names the command or file involved, and the lock-file variants say how to
/// fix the problem. Underlying errors are part of the message (not only the `source`
/// chain) so a plain `{}` is enough to act on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("could not run `{command}`: {error}")]
    Spawn {
        command: String,
        error: std::io::Error,
    },

    #[error("`{command}` failed ({status}){}", stderr_suffix(.stderr))]
    CommandFailed {
        command: String,
        status: ExitStatus,
        stderr: String,
    },

    #[error("unexpected output from `{command}`: {detail}")]
    UnexpectedOutput { command: String, detail: String },

    #[error("{what} not found: {detail}")]
    NotFound { what: &'static str, detail: String },

    #[error(
        "target `{target}` has no standard library in {}: install it with `rustup target add {target}`",
        dir.display()
    )]
    TargetNotInstalled { target: String, dir: PathBuf },

    #[error(
        "`{target}` is not a target triple kiln can lock (letters, digits, `.`, `_` and `-` only)"
    )]
    BadTarget { target: String },

    #[error("cannot read {}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },

    #[error("path {} is not valid UTF-8, so it cannot be named in a toolchain lock", path.display())]
    NonUtf8Path { path: PathBuf },

    #[error("toolchain lock {} does not exist; create it with: {}", path.display(), crate::relock_command())]
    LockMissing { path: PathBuf },

    #[error(
        "toolchain lock {} is malformed: {error}\nFix the file or regenerate it with: {}",
        path.display(), crate::relock_command()
    )]
    LockMalformed {
        path: PathBuf,
        error: serde_json::Error,
    },

    #[error(
        "toolchain lock {} has schema {found}, but this kiln reads schema {expected} (schema 3 records which rustup toolchain was pinned, so every build selects it); regenerate it with: {}",
        path.display(), crate::relock_command()
    )]
    UnsupportedSchema {
        path: PathBuf,
        found: String,
        expected: u32,
    },

    #[error("cannot write toolchain lock {}: {error}", path.display())]
    Write {
        path: PathBuf,
        error: std::io::Error,
    },

    #[error(
        "the toolchain lock pins rustup toolchain `{name}`, which cannot be run here: {detail}\n  fix: install it with `rustup toolchain install {name}`, or pin the toolchain you have with: {}",
        crate::relock_command()
    )]
    PinnedToolchainUnavailable { name: String, detail: String },

    #[error(transparent)]
    Mismatch(#[from] Mismatch),
}

fn stderr_suffix(stderr: &str) -> String {
    let s = stderr.trim();
    if s.is_empty() {
        String::new()
    } else {
        format!(": {s}")
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
