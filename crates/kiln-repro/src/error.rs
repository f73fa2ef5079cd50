use std::path::PathBuf;

/// Everything that can stop a reproducibility run. Messages name the file and the fix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what} {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path}: {message}\n  fix: see reproducibility/variations.toml in the kiln repository for every key"
    )]
    Variations { path: PathBuf, message: String },
    #[error("{path}: not a reproducibility history line ({line}): {message}")]
    History {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("cannot run `{command}`")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("`{command}` failed: {message}")]
    Git { command: String, message: String },
    #[error("`{command}` failed ({status}); its output is in {log}")]
    Failed {
        command: String,
        status: String,
        log: PathBuf,
    },
    #[error(
        "cannot build in {work}: {by} holds a Cargo workspace or a git repository that would capture the project's copies\n  fix: point TMPDIR at a directory outside any Cargo workspace and git repository"
    )]
    Captured { work: PathBuf, by: PathBuf },
    #[error(
        "{0} is not a directory of build outputs (expected <image>/summary.json or an OCI layout)"
    )]
    NotATree(PathBuf),
    #[error(transparent)]
    Config(#[from] kiln_config::ConfigError),
}

/// This crate's own messages still end with their fix; the config error it wraps keeps
/// its fix apart (and, being transparent, is not in the chain itself).
impl kiln_core::Hint for Error {
    fn hint(&self) -> Option<String> {
        match self {
            Error::Config(e) => e.hint(),
            _ => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io<'a>(
    what: &'static str,
    path: &'a std::path::Path,
) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}
