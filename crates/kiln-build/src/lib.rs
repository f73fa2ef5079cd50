//! The build pipeline behind `cargo xtask build`.
//!
//! One call to [`build`] takes a project from `kiln.toml` to finished outputs:
//!
//! 1. read and validate `kiln.toml` ([`kiln_config`]);
//! 2. verify the pinned toolchain against `toolchains/` ([`kiln_toolchain`]) — a mismatch
//!    stops here, before anything is compiled;
//! 3. resolve `SOURCE_DATE_EPOCH` and check the sandbox can be made ([`kiln_hermetic`]);
//! 4. make sure every crate `Cargo.lock` pins is in kiln's cargo home, fetching (the only
//!    networked step) unless `--offline`, and unpack each from its checksummed archive into
//!    the read-only directory source that is all cargo compiles;
//! 5. run `cargo build --release --locked --offline` in the sandbox with a scrubbed
//!    environment and path remapping;
//! 6. pack the binaries and extra files into a layer and an OCI image ([`kiln_oci`]);
//! 7. write `oci/`, `image.oci.tar`, `image.docker.tar` and `summary.json` into a staging
//!    directory and swap it into `target/kiln/out/<image>/` only when all of it succeeded.
//!
//! The xtask only parses arguments and prints; everything a build decides lives here.

//!
//! Inside the crate, dependencies point one way: `pipeline` → `evidence` → {`sbom`, `vex`,
//! `attest`} → `context`, `error`.

mod attest;
mod cache;
pub mod compliance;
mod context;
mod error;
mod evidence;
mod noop;
mod package;
mod pipeline;
pub mod provided;
pub mod publish;
pub mod rebuild;
mod sbom;
mod summary;
mod vex;

pub use context::{BuildOptions, EvidenceOptions, Progress};
pub use error::{BuildError, LockChanged, RustVersion};
pub use pipeline::{build, fetch, lock_toolchain};
pub use sbom::{regenerate as regenerate_sbom, resolve_request as sbom_resolve_request};
pub use summary::{Artifact, BinaryRecord, LayerRecord, SdeRecord, Summary, ToolchainRecord};

/// The compilation target kiln builds for: the host, always (cross builds are not supported yet).
pub fn host_target() -> Result<String, BuildError> {
    Ok(kiln_toolchain::Toolchain::detect(None)?.target)
}
