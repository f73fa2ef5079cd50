//! The one error type of the crate. Every variant names the path, field or digest involved
//! and, where there is one, what the user can do about it.

use std::path::PathBuf;

use kiln_core::Digest;

/// Shorthand for results carrying [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong writing or reading an image. Bad user input is always one
/// of these, never a panic.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An image path (a path inside the container filesystem) is not in normal form.
    #[error(
        "invalid image path `{path}`: {reason}; image paths are relative and '/'-separated, \
         with no empty, `.` or `..` components (for example `usr/local/bin/tool`)"
    )]
    InvalidPath { path: String, reason: &'static str },

    /// A link target that cannot be written.
    #[error("invalid link target `{target}` for `{path}`: {reason}")]
    InvalidLinkTarget {
        path: String,
        target: String,
        reason: &'static str,
    },

    /// The same image path was added twice.
    #[error("`{path}` is added to the layer twice; each image path may appear only once")]
    Duplicate { path: String },

    /// A path's ancestor was added as something other than a directory.
    #[error("`{path}` needs `{parent}` to be a directory, but `{parent}` was added as a {kind}")]
    ParentNotDir {
        path: String,
        parent: String,
        kind: &'static str,
    },

    /// A hard link whose target is not a regular file of the same layer.
    #[error(
        "hard link `{path}` points at `{target}`, which is not a regular file in the same \
         layer; add `{target}` to this layer or use a symlink"
    )]
    HardlinkTarget { path: String, target: String },

    /// A file mode outside `0o7777`.
    #[error("mode {mode:#o} for `{path}` has bits outside 0o7777; give permission bits only")]
    InvalidMode { path: String, mode: u32 },

    /// Reading or writing a file on the host failed.
    #[error("{action} `{path}`")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A layer source that is not a regular file.
    #[error(
        "`{path}` is not a regular file; add directories with `add_dir` and links with `add_symlink`"
    )]
    NotAFile { path: PathBuf },

    /// A source file whose size changed between `stat` and reading it.
    #[error(
        "`{path}` changed while being packed (expected {expected} bytes, read {actual}); \
         make sure nothing writes to the build inputs while the image is built"
    )]
    FileChanged {
        path: PathBuf,
        expected: u64,
        actual: u64,
    },

    /// Writing the layer stream to its destination failed.
    #[error("writing the layer stream")]
    Write(#[source] std::io::Error),

    /// A JSON document of an image layout could not be parsed: names the file, the JSON
    /// path of the offending value (`.` for the document itself) and, through serde's
    /// message, the line, column and what was expected there.
    #[error("`{path}` is not a valid {what}: at `{at}`")]
    Json {
        path: PathBuf,
        what: &'static str,
        at: String,
        #[source]
        source: serde_json::Error,
    },

    /// The pinned base manifest is not referenced by the layout's index.
    #[error(
        "base image layout `{layout}` has no manifest {digest} in index.json or any nested \
         index; check the pinned digest (e.g. `skopeo inspect oci:{layout}:<ref>`) or re-fetch the base"
    )]
    ManifestNotFound { layout: PathBuf, digest: Digest },

    /// A blob a base image needs is absent.
    #[error(
        "base image layout `{layout}` is missing blob {digest} (expected at `{path}`); \
         the layout is incomplete: re-fetch the base image"
    )]
    BlobMissing {
        layout: PathBuf,
        digest: Digest,
        path: PathBuf,
    },

    /// A blob's bytes do not hash to the digest that names it.
    #[error(
        "blob `{path}` hashes to {actual} but must be {expected}: it is corrupt or was \
         modified; re-fetch the base image"
    )]
    BlobDigestMismatch {
        path: PathBuf,
        expected: Digest,
        actual: Digest,
    },

    /// A blob's length differs from its descriptor.
    #[error(
        "blob `{path}` is {actual} bytes but its descriptor says {expected}; re-fetch the image"
    )]
    BlobSizeMismatch {
        path: PathBuf,
        expected: u64,
        actual: u64,
    },

    /// A base layer entry that could write outside the image or smuggle host state in.
    #[error(
        "base image layout `{layout}`: layer {layer}: entry `{entry}`: {reason}\n  fix: kiln refuses base layers with `..` paths, writes through symlinks leaving the root, hard links to files no layer provides and device nodes; rebuild the base image without them"
    )]
    HostileLayer {
        layout: PathBuf,
        /// `sha256:...` (a string keeps the error small).
        layer: String,
        entry: String,
        reason: String,
    },

    /// Something in an image layout kiln does not support or that breaks the OCI spec.
    #[error("image layout `{layout}`: {what}")]
    Layout { layout: PathBuf, what: String },

    /// An image config value that cannot be written.
    #[error("image config field `{field}`: {what}")]
    Config { field: &'static str, what: String },
}

/// Most variants of this error say their fix in their message (they have no source);
/// those with a source give it here instead, so it is not followed by the source's text.
impl kiln_core::Hint for Error {
    fn hint(&self) -> Option<String> {
        match self {
            Error::Json { .. } => Some(
                "the layout is damaged or not an OCI image layout; re-fetch the base image (e.g. `skopeo copy docker://IMAGE oci:DIR:TAG`)".into(),
            ),
            _ => None,
        }
    }
}

impl Error {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    }
}
