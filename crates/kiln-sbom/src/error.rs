use std::path::PathBuf;

/// Everything that can go wrong while making an SBOM. Each message names the input (file,
/// layer, line or flag) and says how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum SbomError {
    #[error(
        "--sbom-spec `{given}` is not supported: kiln writes CycloneDX `1.6` (the default) or `1.5`\n  fix: pass `--sbom-spec 1.6` or `--sbom-spec 1.5`, or leave the flag out"
    )]
    UnsupportedSpec { given: String },
    #[error(
        "{path}: cannot read the lock file: {source}\n  fix: run `cargo generate-lockfile` in the project and commit Cargo.lock; kiln only describes locked dependencies"
    )]
    MissingLock {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}{}: {message}\n  fix: regenerate it with `cargo generate-lockfile` and commit it", line.map(|l| format!(":{l}")).unwrap_or_default())]
    BadLock {
        path: PathBuf,
        line: Option<usize>,
        message: String,
    },
    #[error(
        "{path}: Cargo.lock is stale: it does not match the manifests, so `cargo build --locked` would refuse it ({detail})\n  fix: run `cargo update -w` (or `cargo generate-lockfile`) in {dir}, review and commit the new Cargo.lock, then rebuild"
    )]
    StaleLock {
        path: PathBuf,
        dir: PathBuf,
        detail: String,
    },
    #[error("{path}{}: {message}\n  fix: correct the manifest (cargo reports the same problem)", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Manifest {
        path: PathBuf,
        line: Option<usize>,
        message: String,
    },
    #[error(
        "{krate} is locked but its sources are not unpacked under {}/registry/src\n  fix: run `cargo xtask fetch` (or build the image first); kiln reads each crate's manifest from the cargo home the build used",
        cargo_home.display()
    )]
    MissingSource { krate: String, cargo_home: PathBuf },
    #[error(
        "{krate} is locked but missing from the verified crate sources {}\n  fix: rebuild the image (`{}`), which unpacks every locked crate there from its checksummed archive",
        dir.display(),
        kiln_core::cli::cmd("build")
    )]
    MissingVerified { krate: String, dir: PathBuf },
    #[error(
        "the toolchain lock's cfg `{cfg}` for {triple} is not one cargo understands: {message}\n  fix: regenerate the lock with `{}`",
        kiln_core::cli::cmd("toolchain lock")
    )]
    Cfg {
        triple: String,
        cfg: String,
        message: String,
    },
    #[error(
        "package `{package}` is not in the cargo workspace of {manifest}\n  fix: set `package` in kiln.toml to one of the workspace's packages"
    )]
    NoSuchPackage { package: String, manifest: PathBuf },
    #[error(
        "layer {layer}: {file}:{line}: {message}\n  fix: the base image's package database is corrupt or not in the format its package manager writes; rebuild the base image or pin another digest"
    )]
    PackageDb {
        layer: String,
        file: String,
        line: usize,
        message: String,
    },
    #[error(
        "layer {layer}: {message}\n  fix: check that the OCI layout is complete (rebuild the image)"
    )]
    Layer { layer: String, message: String },
    #[error("{path}: {message}")]
    Layout { path: PathBuf, message: String },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
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
