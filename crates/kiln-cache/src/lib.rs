//! The attested build cache.
//!
//! A build's compiled outputs are cached under a key: the sha256 of the canonical JSON of a
//! [`KeyDocument`], every input that shapes the output (toolchain, lock file, crates, the
//! source tree's [`source_tree_digest`], target, profile, features, flags, environment,
//! `SOURCE_DATE_EPOCH`, the image spec). A [`Store`] keeps entries as OCI artifact manifests
//! in an image layout, each carrying a signed in-toto statement that binds the key to the
//! outputs' digests. [`Store::get`] returns a [`Hit`] only after verifying the signature
//! against the trusted keys and every byte against the statement; anything else is a
//! [`Lookup::Refused`] naming what differs, never used.
//!
//! The store is local; its entries are plain OCI manifests and blobs, so the same entry can
//! be pushed to a registry as it is.

mod error;
mod key;
mod store;
mod tree;

pub use error::CacheError;
pub use key::{KEY_SCHEMA, KeyDocument};
pub use store::{
    ANNOTATION_KEY, ARTIFACT_TYPE, ATTESTATION_TITLE, Entry, Hit, KEY_MEDIA_TYPE, Lookup,
    OUTPUT_MEDIA_TYPE, Output, PREDICATE_TYPE, Store,
};
pub use tree::source_tree_digest;
