//! Pins the toolchain that shapes a build.
//!
//! `cargo xtask toolchain lock` writes `toolchains/<target>.lock.json`: rustc's and
//! cargo's versions and commit hashes, the host and target triples, the C compiler's
//! version line, and the sha256 of every file that shapes the output (see
//! [`Toolchain::pinned_files`] for exactly which). Every build first calls
//! [`Toolchain::verify`], which refuses to go on if anything differs and says which file
//! changed and how to re-lock; the verified lock's [`ToolchainLock::digest`] goes into the
//! build outputs for provenance.
//!
//! Sysroot files are keyed relative to the sysroot (`sysroot/bin/rustc`), so the same
//! rustup toolchain locks identically on any machine. C toolchain files are keyed by their
//! canonical absolute path (`cc:/usr/lib/x86_64-linux-gnu/libc.a`): the C toolchain comes
//! from the system, and where it lives is part of what gets pinned.
//!
//! Known limits: a distro rustc whose LLVM lives in the system library directory (not in
//! `<sysroot>/lib`) has that LLVM pinned only through rustc's version fields; `$CC` must be
//! a single program (no `ccache cc`); `ld` named bare by `cc -print-prog-name=ld` is looked
//! up on `PATH`, which is where gcc's collect2 normally finds it too.

mod error;
mod lock;
mod stamp;
mod toolchain;

pub use error::{Error, Result};
pub use lock::{
    CcInfo, Difference, FileEntry, Mismatch, SCHEMA, TargetCfg, ToolVersion, ToolchainLock,
    default_lock_path, relock_command,
};
pub use stamp::{StampedToolchain, stamp_holds};
pub use toolchain::{Toolchain, hash_files};

#[cfg(test)]
mod tests;
