use std::path::{Path, PathBuf};

/// What can go wrong opening or writing the store. A candidate entry that does not verify
/// is not an error: [`crate::Store::get`] reports it as [`crate::Lookup::Refused`].
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("{what} {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a kiln cache: {message}")]
    NotAStore { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("output `{name}`: {message}")]
    InvalidOutput { name: String, message: String },
}

impl CacheError {
    /// The store directory holding `path` (the nearest ancestor with an `oci-layout`).
    fn store_dir(path: &Path) -> String {
        path.ancestors()
            .find(|p| p.join("oci-layout").is_file())
            .unwrap_or_else(|| path.parent().unwrap_or(path))
            .display()
            .to_string()
    }
}

impl kiln_core::Hint for CacheError {
    fn hint(&self) -> Option<String> {
        match self {
            CacheError::Io { source, path, .. }
                if source.kind() == std::io::ErrorKind::PermissionDenied =>
            {
                Some(format!(
                    "make {} writable by this user, or set $KILN_CACHE_DIR to a directory that is",
                    path.display()
                ))
            }
            CacheError::Io { .. } | CacheError::InvalidOutput { .. } => None,
            CacheError::NotAStore { path, .. } => Some(format!(
                "set $KILN_CACHE_DIR to an empty directory or an existing kiln cache (not {})",
                path.display()
            )),
            CacheError::Corrupt { path, .. } => Some(format!(
                "remove {} (the cache is only an accelerator: the next build refills it)",
                Self::store_dir(path)
            )),
        }
    }
}

pub(crate) fn io<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> CacheError + 'a {
    move |source| CacheError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}
