use std::path::PathBuf;

/// Everything that can go wrong reading VEX inputs or writing VEX outputs. Every message
/// names the file and the entry in it, without repeating its source; the fix, where there
/// is one, is [`kiln_core::Hint::hint`].
#[derive(Debug, thiserror::Error)]
pub enum VexError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not well-formed (TOML/JSON syntax, wrong type, unknown key).
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    /// The file parses but an entry in it is wrong.
    #[error("{path}: {entry}: {message}")]
    Invalid {
        path: PathBuf,
        entry: String,
        message: String,
        fix: String,
    },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl VexError {
    pub(crate) fn invalid(
        path: &std::path::Path,
        entry: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        VexError::Invalid {
            path: path.to_path_buf(),
            entry: entry.into(),
            message: message.into(),
            fix: fix.into(),
        }
    }
    pub(crate) fn parse(path: &std::path::Path, message: impl Into<String>) -> Self {
        VexError::Parse {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
}

impl kiln_core::Hint for VexError {
    fn hint(&self) -> Option<String> {
        match self {
            VexError::Invalid { fix, .. } => Some(fix.clone()),
            _ => None,
        }
    }
}

pub type Result<T, E = VexError> = std::result::Result<T, E>;

/// Reads a file, naming it on failure.
pub(crate) fn read(path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| VexError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Parses JSON strictly enough to report *where* a type error is (`runs[0].results[2].level`)
/// and at which line, not only serde's bare message.
pub(crate) fn from_json<T: serde::de::DeserializeOwned>(
    path: &std::path::Path,
    bytes: &[u8],
) -> Result<T> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let at = e.path().to_string();
        let inner = e.inner();
        let msg = if at.is_empty() || at == "." {
            format!(
                "not valid JSON for this format at line {} column {}: {inner}",
                inner.line(),
                inner.column()
            )
        } else {
            format!("{at}: {inner}")
        };
        VexError::parse(path, msg)
    })
}
