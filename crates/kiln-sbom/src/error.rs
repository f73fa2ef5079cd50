use std::path::PathBuf;

/// Everything that can go wrong while making an SBOM. Each message names the input (file,
/// layer, line or flag) and says how to fix it.
/// Messages do not repeat their source (the chain carries it); the fix is
/// [`kiln_core::Hint::hint`].
#[derive(Debug, thiserror::Error)]
pub enum SbomError {
    #[error(
        "--sbom-spec `{given}` is not supported: kiln writes CycloneDX `1.6` (the default) or `1.5`"
    )]
    UnsupportedSpec { given: String },
    #[error("{path}: cannot read the lock file")]
    MissingLock {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    BadLock {
        path: PathBuf,
        line: Option<usize>,
        message: String,
    },
    #[error(
        "{path}: Cargo.lock is stale: it does not match the manifests, so `cargo build --locked` would refuse it ({detail})"
    )]
    StaleLock {
        path: PathBuf,
        dir: PathBuf,
        detail: String,
    },
    #[error("{path}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Manifest {
        path: PathBuf,
        line: Option<usize>,
        message: String,
    },
    #[error(
        "{krate} is locked but its sources are not unpacked under {}/registry/src",
        cargo_home.display()
    )]
    MissingSource { krate: String, cargo_home: PathBuf },
    #[error(
        "{krate} is locked but missing from the verified crate sources {}",
        dir.display()
    )]
    MissingVerified { krate: String, dir: PathBuf },
    #[error(
        "the toolchain lock's cfg `{cfg}` for {triple} is not one cargo understands: {message}"
    )]
    Cfg {
        triple: String,
        cfg: String,
        message: String,
    },
    #[error("package `{package}` is not in the cargo workspace of {manifest}")]
    NoSuchPackage { package: String, manifest: PathBuf },
    #[error("layer {layer}: {file}:{line}: {message}")]
    PackageDb {
        layer: String,
        file: String,
        line: usize,
        message: String,
    },
    #[error("layer {layer}: {message}")]
    Layer { layer: String, message: String },
    #[error("{path}: {message}")]
    Layout { path: PathBuf, message: String },
    #[error("{what} {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

impl kiln_core::Hint for SbomError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            SbomError::UnsupportedSpec { .. } => {
                "pass `--sbom-spec 1.6` or `--sbom-spec 1.5`, or leave the flag out".into()
            }
            SbomError::MissingLock { .. } => "run `cargo generate-lockfile` in the project and commit Cargo.lock; kiln only describes locked dependencies".into(),
            SbomError::BadLock { .. } => {
                "regenerate it with `cargo generate-lockfile` and commit it".into()
            }
            SbomError::StaleLock { dir, .. } => format!(
                "run `cargo update -w` (or `cargo generate-lockfile`) in {}, review and commit the new Cargo.lock, then rebuild",
                dir.display()
            ),
            SbomError::Manifest { .. } => {
                "correct the manifest (cargo reports the same problem)".into()
            }
            SbomError::MissingSource { .. } => "run `cargo xtask fetch` (or build the image first); kiln reads each crate's manifest from the cargo home the build used".into(),
            SbomError::MissingVerified { .. } => format!(
                "rebuild the image (`{}`), which unpacks every locked crate there from its checksummed archive",
                kiln_core::cli::cmd("build")
            ),
            SbomError::Cfg { .. } => format!(
                "regenerate the lock with `{}`",
                kiln_core::cli::cmd("toolchain lock")
            ),
            SbomError::NoSuchPackage { .. } => {
                "set `package` in kiln.toml to one of the workspace's packages".into()
            }
            SbomError::PackageDb { .. } => "the base image's package database is corrupt or not in the format its package manager writes; rebuild the base image or pin another digest".into(),
            SbomError::Layer { .. } => {
                "check that the OCI layout is complete (rebuild the image)".into()
            }
            SbomError::Layout { .. } | SbomError::Io { .. } => return None,
        })
    }
}

pub type Result<T, E = SbomError> = std::result::Result<T, E>;

pub(crate) fn io<'a>(
    what: &'static str,
    path: &'a std::path::Path,
) -> impl FnOnce(std::io::Error) -> SbomError + 'a {
    move |source| SbomError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}
