//! A pinned toolchain root that kiln provides, so that any Linux machine rebuilds a release
//! bit for bit.
//!
//! kiln-toolchain *checks* the host's toolchain against a lock; this crate *provides* one:
//! a directory tree holding the Rust toolchain (rustc, cargo and rust-std from the official
//! dist tarballs, installed under `/usr/local`) and the C side a Rust build links with (the
//! gcc driver and `cc1`, binutils, crt objects, glibc's static and shared libraries,
//! libgcc) from Debian `.deb`s, every input pinned by sha256 in a [`RootLock`]. The steps:
//!
//! * [`pin`] (network): a release number and a package list → a lock (the dependency
//!   closure of the packages, resolved from Debian's index).
//! * [`fetch`] (network, or none with a warm cache or local files): the lock's inputs,
//!   every byte checked against its pin.
//! * [`pack`] (no network): the inputs → a deterministic OCI image layout (one layer per
//!   input) and the Merkle digest of the tree it unpacks to; the same lock gives the same
//!   digests on any machine, whatever its umask or core count.
//! * [`Store`]: unpacks a layout once into `<store>/<manifest hex>/rootfs`, verified against
//!   both digests, and checks it again (cheaply, with a stamp) whenever it is used.
//!
//! What a root is *for* — the `/` of a build sandbox — is the caller's business; the
//! integration test proves one works by compiling C and Rust (static) and running `cargo
//! build` inside it under a user namespace and `chroot`.

mod debian;
mod error;
mod fetch;
mod lock;
mod net;
mod pack;
mod pin;
mod store;
mod tree;
mod unpack;

pub use debian::FULL_SYSTEM_ONLY;
pub use error::{Result, ToolrootError};
pub use fetch::{Inputs, fetch, fetch_offline};
pub use lock::{DebPackage, DebianPin, RootDigests, RootLock, RustComponent, RustPin, SCHEMA};
pub use pack::{ANNOTATION_LOCK, MOUNTPOINTS, PackedRoot, ROOT_PATH, pack};
pub use pin::{DEFAULT_MIRROR, DEFAULT_PACKAGES, DEFAULT_SUITE, PinRequest, RUST_DIST, pin};
pub use store::{RootDir, Store};
