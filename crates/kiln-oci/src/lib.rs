//! Deterministic OCI image writing.
//!
//! Everything kiln ships as a container image goes through this crate, and the one promise
//! it makes is: **the same inputs give the same bytes**, on any machine, with any number of
//! cores. That is what lets a digest pinned in a lock file or a release note be rebuilt
//! and checked by anyone.
//!
//! How each source of nondeterminism is removed:
//!
//! * **Layers** ([`Layer`]) are tar streams written from explicit GNU headers, never from a
//!   directory walk: paths sorted by bytes, missing parent directories added, every
//!   timestamp set to `SOURCE_DATE_EPOCH`, owners `0:0` with empty names, modes
//!   normalized, no access/change times, xattrs or PAX records.
//! * **Compression** ([`gzip`]) uses one fixed deflate implementation and level, a fixed
//!   gzip header, and splits the stream into fixed-size independently compressed chunks,
//!   so the bytes do not depend on how many threads compressed them.
//! * **JSON** (config, manifest, index) is canonical: sorted keys, no whitespace, via
//!   [`kiln_core::canonical`]; empty optional fields are omitted, never written as `null`.
//! * **Archives** ([`write_oci_archive`], [`write_docker_archive`]) reuse the layer tar
//!   writer, so they follow the same header rules.
//!
//! Base images ([`BaseImage`]) are pinned by manifest digest and verified blob by blob;
//! their layers are copied byte for byte.

mod archive;
mod base;
mod error;
pub mod gzip;
mod image;
mod layer;
mod layout;

pub use archive::{write_docker_archive, write_oci_archive};
pub use base::BaseImage;
pub use error::{Error, Result};
pub use image::{BuiltImage, Image, ImageConfig, ManifestDescriptor, Platform};
pub use layer::{Layer, LayerDescriptor};

/// Media type of the layers kiln writes (gzip-compressed tar).
pub const MEDIA_TYPE_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// Media type of an OCI image manifest.
pub const MEDIA_TYPE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Media type of an OCI image index.
pub const MEDIA_TYPE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Media type of an OCI image config.
pub const MEDIA_TYPE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// The annotation on an `index.json` entry that names the image (`oci:DIR:REF`).
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

#[cfg(test)]
mod tests;
