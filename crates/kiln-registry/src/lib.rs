//! kiln's OCI distribution client: it pushes an image and every piece of evidence attached
//! to it from a local layout to a registry, and pulls them back into a layout, byte for
//! byte.
//!
//! - [`Reference`]: `registry/repository[:tag][@digest]`, read as docker and skopeo read it.
//! - [`Client`]: one repository; authentication (anonymous, Basic, Bearer token
//!   challenges, docker's `config.json` and credential helpers, `$KILN_REGISTRY_*`),
//!   retries with backoff, streamed and resumable blob uploads in bounded memory.
//! - [`push::push`]: blobs, manifests by digest, referrers (the registry's API, else the
//!   referrers tag schema), extra tagged images, then the tag: never a tag on an incomplete
//!   image, and pushing again uploads nothing.
//! - [`pull::pull`]: the image by digest, its referrers, verified as they arrive.
//!
//! This is the only kiln crate that talks to a registry.

pub mod auth;
pub mod client;
mod error;
pub mod oci;
pub mod pull;
pub mod push;

pub use auth::Credentials;
pub use client::{BlobPush, BlobSource, Client, Options, Retry};
pub use error::{Error, Result};
pub use kiln_core::contract::reference::{Reference, ReferenceError};
