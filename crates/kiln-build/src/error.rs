//! [`BuildError`]: everything a build, fetch or SBOM regeneration can fail with.
//!
//! A message names the image, the file and the field; it never repeats its source (the
//! error chain carries that, and the CLI prints it after a `: `), and the fix is not part
//! of it: [`Hint::hint`] returns it, for the CLI to print on its own `fix:` line.

use std::path::{Path, PathBuf};

use kiln_config::ConfigError;
use kiln_core::contract::SummaryError;
use kiln_core::{Digest, Hint};
use kiln_hermetic::{FetchError, SandboxError};

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Toolchain(#[from] kiln_toolchain::Error),
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error(transparent)]
    Summary(#[from] SummaryError),
    #[error("image `{image}`")]
    Oci {
        image: String,
        #[source]
        source: kiln_oci::Error,
    },
    #[error(transparent)]
    SourceDateEpoch(#[from] kiln_hermetic::SdeError),
    #[error("--faketime")]
    ClockShift(#[source] kiln_hermetic::ClockShiftError),
    #[error("image `{image}`: `{command}` failed ({status}); cargo's messages are above")]
    Compile {
        image: String,
        command: String,
        status: String,
    },
    #[error("image `{image}`: cargo did not produce binary `{binary}` at {path}")]
    MissingBinary {
        image: String,
        binary: String,
        package: String,
        path: PathBuf,
    },
    /// `--sbom-spec` names no CycloneDX version kiln writes (checked before any build).
    #[error(transparent)]
    SbomSpec(kiln_sbom::SbomError),
    /// The SBOM step: resolving the crates, scanning the layers.
    #[error("image `{image}`: SBOM")]
    Sbom {
        image: String,
        #[source]
        source: kiln_sbom::SbomError,
    },
    /// The VEX step: the project's statements, advisories or the SBOM they refer to.
    #[error("image `{image}`: VEX")]
    Vex {
        image: String,
        #[source]
        source: kiln_vex::VexError,
    },
    /// A VEX input could not be hashed for provenance to record.
    #[error("image `{image}`: VEX input {path}")]
    VexInput {
        image: String,
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// Provenance, signing or attaching.
    #[error("image `{image}`: provenance and signatures")]
    Attest {
        image: String,
        #[source]
        source: kiln_attest::Error,
    },
    #[error("image `{image}`: build cache: {message}")]
    Cache { image: String, message: String },
    #[error("image `{image}`: cache check failed: {message}")]
    CacheCheck { image: String, message: String },
    #[error("image `{image}`: compliance")]
    Compliance {
        image: String,
        #[source]
        source: Box<crate::compliance::ComplianceError>,
    },
    #[error("image `{image}`: both a signing key and --keyless were given")]
    KeyAndKeyless { image: String },
    /// `kiln sbom`: the toolchain lock is not the one the image was built with.
    #[error(transparent)]
    LockChanged(Box<LockChanged>),
    #[error("`{command}` failed: {message}")]
    Metadata { command: String, message: String },
    /// `cargo metadata` printed something kiln cannot read.
    #[error("`{command}` printed unexpected output")]
    MetadataOutput {
        command: String,
        #[source]
        source: serde_json::Error,
    },
    /// The workspace `cargo metadata` describes has no such package.
    #[error("`{command}`: the workspace has no package `{package}` (it has: {})", found.join(", "))]
    NoPackage {
        command: String,
        package: String,
        found: Vec<String>,
    },
    /// The package's `rust-version` exceeds the pinned rustc.
    #[error(transparent)]
    RustVersion(Box<RustVersion>),
    /// kiln-toolroot: pinning, fetching, packing or checking a provided toolchain root.
    #[error("toolchain root")]
    Toolroot(#[source] kiln_toolroot::ToolrootError),
    /// `kiln rebuild`: the provenance, or the source it names, cannot be rebuilt from.
    #[error("{message}")]
    Rebuild { message: String, fix: String },
    /// A provided toolchain root that cannot be used as it is.
    #[error("{message}")]
    Provided { message: String, fix: String },
    #[error("{what} {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// `kiln sbom`: the toolchain lock is not the one the image was built with.
#[derive(Debug, thiserror::Error)]
#[error(
    "image `{image}`: {summary}: `toolchain.lock_digest` is {recorded}, but {lock} now has digest {now} (target {target}): the toolchain lock changed since the build"
)]
pub struct LockChanged {
    pub image: String,
    pub summary: PathBuf,
    pub lock: PathBuf,
    pub recorded: Digest,
    pub now: Digest,
    pub target: String,
}

/// The package's `rust-version` exceeds the pinned rustc.
#[derive(Debug, thiserror::Error)]
#[error(
    "image `{image}`: package `{package}` needs rustc {required} (rust-version in {manifest}), but the pinned toolchain is rustc {pinned} ({lock})"
)]
pub struct RustVersion {
    pub image: String,
    pub package: String,
    pub required: String,
    pub manifest: PathBuf,
    pub pinned: String,
    pub lock: PathBuf,
}

/// What to do about it, printed apart from the message (`  fix: ...`). Errors of the
/// crates a build wraps that do not carry a separate hint yet (kiln-attest,
/// most of kiln-oci's) keep theirs in their message, and give `None` here.
impl Hint for BuildError {
    fn hint(&self) -> Option<String> {
        let build = || kiln_core::cli::cmd("build");
        match self {
            BuildError::Config(e) => e.hint(),
            BuildError::Toolchain(e) => e.hint(),
            BuildError::Summary(e) => e.hint(),
            BuildError::Sandbox(e) => e.hint(),
            BuildError::Fetch(e) => e.hint(),
            BuildError::Oci { source, .. } => source.hint(),
            BuildError::SbomSpec(e) | BuildError::Sbom { source: e, .. } => e.hint(),
            BuildError::Vex { source, .. } => source.hint(),
            BuildError::SourceDateEpoch(e) => e.hint(),
            BuildError::ClockShift(e) => e.hint(),
            BuildError::Compile { .. } => {
                Some("make the project build with `cargo build --release --locked` first".into())
            }
            BuildError::Metadata { .. } | BuildError::MetadataOutput { .. } => {
                Some("make the project build with `cargo build --release --locked` first".into())
            }
            BuildError::NoPackage { .. } => {
                Some("set `package` in kiln.toml to one of the packages listed".into())
            }
            BuildError::MissingBinary { package, .. } => Some(format!(
                "check `binaries` in kiln.toml names [[bin]] targets of package `{package}`"
            )),
            BuildError::KeyAndKeyless { .. } => Some("use one of them".into()),
            BuildError::Toolroot(e) => e.hint(),
            BuildError::Provided { fix, .. } | BuildError::Rebuild { fix, .. } => Some(fix.clone()),
            BuildError::Compliance { source, .. } => kiln_core::Hint::hint(source.as_ref()),
            BuildError::LockChanged { .. } => Some(format!("rebuild the image with `{}`", build())),
            BuildError::RustVersion(e) => Some(format!(
                "install rustc {required} or newer (`rustup toolchain install {required}`, and `channel = \"{required}\"` in the project's rust-toolchain.toml), then re-pin it with `{}`",
                kiln_toolchain::relock_command(),
                required = e.required
            )),
            _ => None,
        }
    }
}

/// A `map_err` for an I/O failure on `path`: `what` is the failed action (`cannot read`).
pub(crate) fn io<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> BuildError + 'a {
    move |source| BuildError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    /// An evidence step's error names the image and the step; the crate's error is its
    /// source (not its text pasted into a message), and that error's fix passes through.
    #[test]
    fn evidence_errors_carry_their_source_and_its_fix() {
        let e = BuildError::Vex {
            image: "hello".into(),
            source: kiln_vex::VexError::Read {
                path: "vex/statements.toml".into(),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            },
        };
        assert_eq!(e.to_string(), "image `hello`: VEX");
        let vex = e.source().unwrap();
        assert_eq!(vex.to_string(), "cannot read vex/statements.toml");
        assert!(vex.source().unwrap().is::<std::io::Error>());

        let e = BuildError::Sbom {
            image: "hello".into(),
            source: kiln_sbom::SbomError::UnsupportedSpec {
                given: "2.0".into(),
            },
        };
        assert!(!e.to_string().contains("fix"), "{e}");
        assert!(e.hint().unwrap().contains("--sbom-spec 1.6"));

        let e = BuildError::KeyAndKeyless {
            image: "hello".into(),
        };
        assert_eq!(e.hint().as_deref(), Some("use one of them"));
    }
}
