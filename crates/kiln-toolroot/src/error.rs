//! The one error type of the crate. Every message names the file, field, package or path
//! involved; the fix is the [`kiln_core::Hint`], kept apart from the message (the CLI prints
//! it on its own `fix:` line). Bad input of any kind — a lock, an index, an archive, a
//! download — is one of these, never a panic.

use std::path::PathBuf;

use kiln_core::Digest;

/// Shorthand for results carrying [`ToolrootError`].
pub type Result<T, E = ToolrootError> = std::result::Result<T, E>;

/// Everything that can go wrong pinning, fetching, packing or installing a toolchain root.
#[derive(Debug, thiserror::Error)]
pub enum ToolrootError {
    /// Reading or writing a file on this machine failed.
    #[error("{action} `{}`", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A lock file that is not JSON of the lock's shape (unknown field, wrong type).
    #[error("toolchain root lock `{file}` is malformed at `{field}`: {detail}")]
    LockSyntax {
        file: String,
        field: String,
        detail: String,
    },

    /// A lock whose values break the lock's rules (schema, sorting, digests, paths).
    #[error("toolchain root lock `{file}`: field `{field}`: {problem}")]
    LockInvalid {
        file: String,
        field: String,
        problem: String,
    },

    /// A target kiln cannot provide a root for.
    #[error("target `{target}` is not supported by kiln's toolchain roots: {why}")]
    UnsupportedTarget { target: String, why: String },

    /// A download that failed before any byte could be checked (connection, status).
    #[error("downloading `{url}` failed: {why}")]
    Download { url: String, why: String },

    /// The Rust channel manifest does not offer what the root needs.
    #[error("Rust channel manifest `{url}`: {problem}")]
    Channel { url: String, problem: String },

    /// Debian's `Release` or `Packages` index is unusable.
    #[error("Debian index `{url}`: {problem}")]
    Index { url: String, problem: String },

    /// A package the closure needs is in no stanza of the index.
    #[error(
        "Debian package `{package}`{} is not in `{index}`",
        needed_by.as_ref().map(|n| format!(" (needed by `{n}`)")).unwrap_or_default()
    )]
    MissingPackage {
        package: String,
        needed_by: Option<String>,
        index: String,
    },

    /// A virtual package with several providers, none of them requested.
    #[error(
        "Debian virtual package `{name}` (needed by `{needed_by}`) is provided by {}; kiln does not guess which",
        providers.iter().map(|p| format!("`{p}`")).collect::<Vec<_>>().join(", ")
    )]
    AmbiguousVirtual {
        name: String,
        needed_by: String,
        providers: Vec<String>,
    },

    /// Bytes that are not the ones the lock pins.
    #[error(
        "{input} from `{source_name}` has sha256 {found}, but the lock pins {expected}; nothing was kept"
    )]
    DigestMismatch {
        input: String,
        source_name: String,
        expected: String,
        found: String,
    },

    /// A file whose length is not the one the lock pins.
    #[error(
        "{input} from `{source_name}` is {found} bytes, but the lock pins {expected} bytes; nothing was kept"
    )]
    SizeMismatch {
        input: String,
        source_name: String,
        expected: u64,
        found: u64,
    },

    /// `pack` was given inputs that do not hold a file the lock pins.
    #[error("{input} (sha256 {sha256}) is not among the fetched inputs")]
    MissingInput { input: String, sha256: String },
    /// `--offline`, and an input is in neither the cache nor a local directory.
    #[error(
        "{input} is not in the download cache or a local directory, and the network is off (it would come from {url})"
    )]
    Offline { input: String, url: String },

    /// An input archive kiln cannot read (truncated, wrong format, bad manifest).
    #[error("{input}: {what}")]
    BadArchive { input: String, what: String },

    /// An archive entry that could write outside the root or smuggle host state in.
    #[error("{input}: entry `{entry}` is refused: {reason}")]
    UnsafeEntry {
        input: String,
        entry: String,
        reason: String,
    },

    /// Two inputs (or one input twice) put different things at one path of the root.
    /// `first` and `second` say what each made of it and where (`a symlink to `y` in
    /// Debian package `a` 1`).
    #[error("`{path}` is {first} but {second}")]
    Conflict {
        path: String,
        first: String,
        second: String,
    },

    /// The lock names a packed root and this pack produced a different one.
    #[error(
        "packing did not reproduce the lock's root: `{field}` is pinned to {pinned}, this pack gives {got}"
    )]
    NotReproduced {
        field: &'static str,
        pinned: Digest,
        got: Digest,
    },

    /// Writing the OCI layout or opening one to install failed.
    #[error("OCI image layout `{}`", layout.display())]
    Oci {
        layout: PathBuf,
        #[source]
        source: Box<kiln_oci::Error>,
    },

    /// A layer blob that changed between verification and unpacking.
    #[error("layer {layer} of `{}`: {what}", layout.display())]
    Layer {
        layout: PathBuf,
        layer: Digest,
        what: String,
    },

    /// An unpacked root that is not the tree its digest names.
    #[error(
        "toolchain root `{}` is not the pinned tree (tree digest {found}, pinned {expected}){}",
        root.display(),
        if problems.is_empty() { String::new() } else { format!(": {}", problems.join("; ")) }
    )]
    Tampered {
        root: PathBuf,
        expected: Digest,
        found: Digest,
        problems: Vec<String>,
    },

    /// No place for the store: neither `$XDG_CACHE_HOME` nor `$HOME` is set.
    #[error("no directory for the toolchain root store: neither $XDG_CACHE_HOME nor $HOME is set")]
    NoStoreDir,
}

impl kiln_core::Hint for ToolrootError {
    fn hint(&self) -> Option<String> {
        use ToolrootError as E;
        Some(match self {
            E::Io { .. } => return None,
            E::LockSyntax { .. } | E::LockInvalid { .. } => {
                "re-create the lock with `pin` (kiln writes it canonical and sorted), or correct the named field by hand".into()
            }
            E::UnsupportedTarget { .. } => {
                "use x86_64-unknown-linux-gnu or aarch64-unknown-linux-gnu".into()
            }
            E::Download { .. } => {
                "check the network and the URL; offline, put the file (named as in the URL) in a directory passed as a local input directory, or give a mirror that still has it".into()
            }
            E::Channel { .. } => {
                "check the Rust version: it must be a released version whose channel manifest offers rustc, cargo and rust-std for the target".into()
            }
            E::Index { .. } => "check the mirror URL and the suite name (e.g. `bookworm`)".into(),
            E::MissingPackage { .. } => {
                "check the package name and the suite; a package of another suite or component (contrib, non-free) cannot be pinned from main".into()
            }
            E::AmbiguousVirtual { providers, .. } => format!(
                "add one of the providers to the requested packages (for example `{}`)",
                providers.first().map(String::as_str).unwrap_or("?")
            ),
            E::DigestMismatch { .. } | E::SizeMismatch { .. } => {
                "the file is not the pinned one: if the mirror replaced it (a point release removes old versions from the pool), fetch from a mirror or local directory holding the pinned file, or re-pin and review the new lock".into()
            }
            E::Offline { .. } => {
                "run `kiln fetch` (the one networked step) first, or put the file in a local input directory".into()
            }
            E::MissingInput { .. } => "run `fetch` with the same lock and pass its inputs to `pack`".into(),
            E::BadArchive { .. } => {
                "the file is damaged or not of the expected format: delete it from the cache and fetch again".into()
            }
            E::UnsafeEntry { .. } => {
                "kiln refuses absolute paths, `..`, device nodes, fifos, whiteouts and hard links to files the archive does not hold; remove the package from the lock".into()
            }
            E::Conflict { .. } => {
                "remove one of the two inputs from the lock, or change the link in `links` that collides".into()
            }
            E::NotReproduced { .. } => {
                "the root does not rebuild bit for bit from this lock with this kiln: compare the two layouts (e.g. `kiln repro`'s diff), or, after reviewing why, remove `root` from the lock and pack again to re-pin it".into()
            }
            E::Oci { .. } => return None,
            E::Layer { .. } => "re-create the layout with `pack`".into(),
            E::Tampered { .. } => {
                "something changed the installed root: remove the store directory named above and install the root again".into()
            }
            E::NoStoreDir => "set $XDG_CACHE_HOME or $HOME, or open a store at an explicit directory".into(),
        })
    }
}

impl ToolrootError {
    /// A conflict at `path`: `first` (what, where) and `second`.
    pub(crate) fn conflict(
        path: impl Into<String>,
        first: (String, &str),
        second: (String, &str),
    ) -> ToolrootError {
        ToolrootError::Conflict {
            path: path.into(),
            first: format!("{} in {}", first.0, first.1),
            second: format!("{} in {}", second.0, second.1),
        }
    }

    pub(crate) fn oci(layout: &std::path::Path) -> impl FnOnce(kiln_oci::Error) -> ToolrootError {
        let layout = layout.to_path_buf();
        move |source| ToolrootError::Oci {
            layout,
            source: Box::new(source),
        }
    }

    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> ToolrootError {
        let path = path.into();
        move |source| ToolrootError::Io {
            action,
            path,
            source,
        }
    }
}
