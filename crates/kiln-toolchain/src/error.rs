use std::path::PathBuf;
use std::process::ExitStatus;

use crate::Mismatch;

/// Everything that can go wrong detecting, locking or verifying a toolchain.
///
/// Every variant names the command or file involved. An underlying error is the `source`,
/// not repeated in the message (the CLI prints the chain); how to fix the problem is
/// [`kiln_core::Hint::hint`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("could not run `{command}`")]
    Spawn {
        command: String,
        #[source]
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

    #[error("target `{target}` has no standard library in {}", dir.display())]
    TargetNotInstalled { target: String, dir: PathBuf },

    #[error(
        "`{target}` is not a target triple kiln can lock (letters, digits, `.`, `_` and `-` only)"
    )]
    BadTarget { target: String },

    #[error("cannot read {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },

    #[error("path {} is not valid UTF-8, so it cannot be named in a toolchain lock", path.display())]
    NonUtf8Path { path: PathBuf },

    #[error("toolchain lock {} does not exist", path.display())]
    LockMissing { path: PathBuf },

    #[error("toolchain lock {} is malformed", path.display())]
    LockMalformed {
        path: PathBuf,
        #[source]
        error: serde_json::Error,
    },

    #[error(
        "toolchain lock {} has schema {found}, but this kiln reads schema {expected} (schema 3 records which rustup toolchain was pinned, so every build selects it)",
        path.display()
    )]
    UnsupportedSchema {
        path: PathBuf,
        found: String,
        expected: u32,
    },

    #[error("cannot write toolchain lock {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },

    #[error(
        "the toolchain lock pins rustup toolchain `{name}`, which cannot be run here: {detail}"
    )]
    PinnedToolchainUnavailable { name: String, detail: String },

    #[error(transparent)]
    Mismatch(#[from] Mismatch),
}

impl kiln_core::Hint for Error {
    fn hint(&self) -> Option<String> {
        let relock = crate::relock_command();
        match self {
            Error::TargetNotInstalled { target, .. } => {
                Some(format!("install it with `rustup target add {target}`"))
            }
            Error::LockMissing { .. } => Some(format!("create it with: {relock}")),
            Error::LockMalformed { .. } => {
                Some(format!("fix the file or regenerate it with: {relock}"))
            }
            Error::UnsupportedSchema { .. } => Some(format!("regenerate it with: {relock}")),
            Error::PinnedToolchainUnavailable { name, .. } => Some(format!(
                "install it with `rustup toolchain install {name}`, or pin the toolchain you have with: {relock}"
            )),
            _ => None,
        }
    }
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
