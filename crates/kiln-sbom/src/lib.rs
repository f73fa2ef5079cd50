//! Software bills of materials for kiln images: CycloneDX 1.6 (or 1.5) and SPDX 2.3, both
//! complete, correct and byte-for-byte reproducible.
//!
//! An SBOM is assembled from three independent facts, each gathered by its own module:
//!
//! * [`cargo`]: which crates each binary was compiled from, as cargo resolved them for the
//!   build's target and features, with their scope (runtime / proc-macro / build);
//! * [`layers`]: every regular file in the image's layers, with sha256 and sha1, and the
//!   packages a base image's dpkg or apk database records;
//! * the caller's [`SbomInput`]: the image's identity, the binaries and the toolchain lock.
//!
//! [`cyclonedx`] and [`spdx`](mod@spdx) turn an [`SbomInput`] into bytes. Nothing here reads the clock,
//! the environment, random numbers or host paths: the timestamp is `SOURCE_DATE_EPOCH`, the
//! CycloneDX `serialNumber` and the SPDX `documentNamespace` are UUIDv5s of the document's
//! own content, every list is sorted, and the bytes come from [`kiln_core::canonical`].
//!
//! # Why not the cyclonedx-bom crate
//!
//! cyclonedx-bom 0.8 serializes CycloneDX 1.3–1.5 only (no 1.6, which is the default here),
//! and its `Bom::default()` puts a random v4 `serialNumber` in. Its models also serialize
//! through serde_json directly rather than through kiln's canonical JSON. kiln therefore
//! has its own small CycloneDX model in `cdx` covering exactly the fields it writes; 1.5
//! output is the same model minus the 1.6-only fields (license `acknowledgement`).

pub mod cargo;
mod cdx;
mod error;
pub mod layers;
pub mod license;
mod spdx_doc;

use kiln_core::Digest;
use kiln_core::contract::Purl;

pub use error::{Result, SbomError};

/// The kiln version recorded in `metadata.tools` / `creationInfo.creators`.
pub const KILN_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The CycloneDX file name kiln writes next to the image.
pub const CDX_FILE: &str = kiln_core::contract::layout::file::SBOM_CDX;
/// The SPDX file name kiln writes next to the image.
pub const SPDX_FILE: &str = kiln_core::contract::layout::file::SBOM_SPDX;

/// CycloneDX spec versions kiln writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SpecVersion {
    V1_5,
    #[default]
    V1_6,
}

impl SpecVersion {
    /// Parses `--sbom-spec`: unset → 1.6; `1.5` or `1.6`; anything else is an error naming
    /// the flag and the supported values.
    pub fn parse(flag: Option<&str>) -> Result<Self> {
        match flag.map(str::trim) {
            None | Some("1.6") => Ok(SpecVersion::V1_6),
            Some("1.5") => Ok(SpecVersion::V1_5),
            Some(other) => Err(SbomError::UnsupportedSpec {
                given: other.to_string(),
            }),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            SpecVersion::V1_5 => "1.5",
            SpecVersion::V1_6 => "1.6",
        }
    }
}

/// The image an SBOM describes.
#[derive(Debug, Clone)]
pub struct ImageInfo {
    /// kiln.toml's image name (the purl name).
    pub name: String,
    /// The manifest's `org.opencontainers.image.ref.name`.
    pub tag: String,
    pub manifest_digest: Digest,
    pub config_digest: Digest,
    /// `os/arch[/variant]`.
    pub platform: String,
    /// The pinned base image manifest, when not `scratch`.
    pub base: Option<Digest>,
}

impl ImageInfo {
    /// `pkg:oci/NAME@sha256%3AHEX?arch=..&tag=..`.
    pub fn purl(&self) -> String {
        let arch = self.platform.split('/').nth(1).unwrap_or("");
        Purl::new("oci", &self.name)
            .with_version(&self.manifest_digest.to_string())
            .with_qualifier("arch", arch)
            .with_qualifier("tag", &self.tag)
            .to_string()
    }
}

/// A binary kiln compiled and placed in the image.
#[derive(Debug, Clone)]
pub struct BinaryInfo {
    pub name: String,
    /// Absolute path in the image.
    pub path: String,
    pub sha256: Digest,
}

/// One tool of the toolchain (for `formulation`).
#[derive(Debug, Clone)]
pub struct ToolInfo {
    /// `rustc`, `cargo`, `cc`, `ld`.
    pub name: String,
    /// The tool's release, when the lock records one (it does not for `ld`).
    pub version: Option<String>,
    /// The pinned file's digest from the toolchain lock.
    pub sha256: Option<Digest>,
    /// The lock key of the pinned file (`sysroot/bin/rustc`, `cc:/usr/bin/...`).
    pub lock_key: Option<String>,
}

/// The toolchain, from `toolchains/<target>.lock.json`.
#[derive(Debug, Clone)]
pub struct ToolchainInfo {
    /// Lock file path relative to the project.
    pub lock_path: String,
    pub lock_digest: Digest,
    pub target: String,
    pub tools: Vec<ToolInfo>,
}

/// Everything an SBOM is made from.
#[derive(Debug, Clone)]
pub struct SbomInput {
    pub image: ImageInfo,
    /// `SOURCE_DATE_EPOCH`: the document's only timestamp.
    pub sde: u64,
    pub binaries: Vec<BinaryInfo>,
    pub crates: cargo::Resolution,
    pub layers: layers::LayerScan,
    pub toolchain: ToolchainInfo,
}

/// The CycloneDX JSON of `input` (canonical, pretty, newline-terminated).
pub fn cyclonedx(input: &SbomInput, spec: SpecVersion) -> Vec<u8> {
    cdx::write(input, spec)
}

/// The SPDX 2.3 JSON of `input` (canonical, pretty, newline-terminated).
pub fn spdx(input: &SbomInput) -> Vec<u8> {
    spdx_doc::write(input)
}

/// kiln's UUIDv5 namespace for document identifiers (itself a v5 UUID of kiln's URL).
fn uuid_namespace() -> uuid::Uuid {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_URL,
        b"https://github.com/kiln-build/kiln/sbom",
    )
}

/// A UUIDv5 of `content` in kiln's namespace: the same document gives the same id.
pub(crate) fn content_uuid(content: &[u8]) -> uuid::Uuid {
    uuid::Uuid::new_v5(&uuid_namespace(), content)
}

#[cfg(test)]
mod tests;
