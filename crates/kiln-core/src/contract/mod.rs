//! The on-disk contract between kiln's crates: file names and paths ([`layout`]), the
//! formats one crate writes and another reads ([`summary`], [`purl`], [`cargo_lock`]) and
//! the one name of the host platform ([`platform`]), and what an image reference means
//! ([`reference`](mod@reference): docker's grammar, the base-image allowlist, the `:latest` rule).
//!
//! kiln's crates do not call each other; they read each other's files. So the names and
//! shapes of those files are the API, and each is defined here, once, below every crate,
//! instead of as a string literal in each crate that touches it.

pub mod cargo_lock;
pub mod controls;
pub mod layout;
pub mod platform;
pub mod purl;
pub mod reference;
pub mod summary;

pub use cargo_lock::{CargoLock, CargoLockError, LockedPackage};
pub use layout::{OutputDir, ProjectLayout};
pub use purl::{Purl, PurlError};
pub use reference::{Allowlist, Reference, ReferenceError};
pub use summary::{Summary, SummaryError};
