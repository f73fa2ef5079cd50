//! The small vocabulary every kiln crate shares: content [`Digest`]s, canonical JSON and
//! atomic output.
//!
//! These live in one crate so that "the same bytes" means the same thing everywhere: one
//! hashing function, one JSON encoding, one way of making a file appear.

pub mod canonical;
pub mod cli;
pub mod contract;
mod digest;
pub mod fsx;
mod hint;
pub mod layerpath;
#[cfg(feature = "net")]
pub mod net;
pub mod process;
pub mod strict_toml;
pub mod time;

pub use digest::{Digest, DigestError, HashingReader, HashingWriter};
pub use hint::Hint;
