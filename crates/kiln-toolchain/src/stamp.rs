//! The verified-toolchain stamp: what lets a build that changed nothing skip re-hashing
//! ~300 MiB of sysroot (most of a no-op build's time).
//!
//! After a full [`Toolchain::verify`], the build root keeps a stamp: the lock file's
//! sha256, the tools' paths, and for every pinned file its path and the metadata the
//! kernel keeps for it (size, inode, device, mtime and ctime in nanoseconds). The next
//! build re-reads the pinned file list and compares: if the lock is byte-identical and
//! every file has the same metadata, the files are the ones that hashed right, and the
//! verification is skipped. This is the rule Bazel's digest cache and cargo's own
//! fingerprints rely on; ctime in particular cannot be set back by an unprivileged
//! process, so a file rewritten (even with its mtime restored) no longer matches. Any
//! difference, a missing stamp or an unreadable one means a full verification, which then
//! writes a new stamp. `repro` builds in fresh build roots, so it always verifies fully.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kiln_core::{Digest, canonical, fsx};
use serde::{Deserialize, Serialize};

use crate::{Result, Toolchain, ToolchainLock};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stamp {
    schema: u32,
    lock_sha256: Digest,
    rustc: PathBuf,
    cargo: PathBuf,
    cc: PathBuf,
    target: String,
    /// key → (path, [size, inode, device, mtime ns, ctime ns, mode]: `fsx::identity`).
    files: BTreeMap<String, (PathBuf, [i128; 6])>,
}

const SCHEMA: u32 = 2;

fn meta(p: &Path) -> Option<[i128; 6]> {
    Some(kiln_core::fsx::identity(&std::fs::metadata(p).ok()?))
}

fn current(tc: &Toolchain, lock_bytes: &[u8]) -> Result<Stamp> {
    let files = tc
        .pinned_files()?
        .into_iter()
        .map(|(k, p)| {
            let m = meta(&p).unwrap_or([-1; 6]);
            (k, (p, m))
        })
        .collect();
    Ok(Stamp {
        schema: SCHEMA,
        lock_sha256: Digest::of(lock_bytes),
        rustc: tc.rustc.clone(),
        cargo: tc.cargo.clone(),
        cc: tc.cc.clone(),
        target: tc.target.clone(),
        files,
    })
}

impl Toolchain {
    /// [`Toolchain::verify`], skipped when `stamp` shows nothing changed since the last
    /// full verification (see the module docs); a full verification writes the stamp.
    /// Returns the lock and whether the stamp answered.
    pub fn verify_stamped(&self, lock_path: &Path, stamp: &Path) -> Result<(ToolchainLock, bool)> {
        let lock_bytes = std::fs::read(lock_path).unwrap_or_default();
        let before = current(self, &lock_bytes).ok();
        if let Some(now) = &before
            && let Ok(bytes) = std::fs::read(stamp)
            && let Ok(old) = serde_json::from_slice::<Stamp>(&bytes)
            && &old == now
            && !now.files.values().any(|(_, m)| m[0] < 0)
        {
            return Ok((ToolchainLock::read(lock_path)?, true));
        }
        let lock = self.verify(lock_path)?;
        // Written only when nothing changed while it was hashed (the metadata before and
        // after are the same), so the stamp vouches for exactly the bytes that verified.
        // It is an optimisation: failing to write it costs the next build a full check.
        if let Some(before) = before
            && current(self, &lock_bytes).ok().as_ref() == Some(&before)
        {
            let bytes = canonical::to_vec_pretty(&before).expect("stamp serializes");
            let _ = fsx::write_atomic(stamp, &bytes);
        }
        Ok((lock, false))
    }
}

/// What a stamp that still holds vouches for: [`stamp_holds`]'s answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StampedToolchain {
    /// The lock file the stamp was verified against, and its sha256.
    pub lock: PathBuf,
    pub lock_sha256: Digest,
    pub target: String,
}

/// Whether the stamp at `stamp` still vouches for its toolchain, answered without
/// detecting it (no rustup, rustc or cc runs): the lock `lock_for(target)` names is
/// byte-identical to the one verified, and every pinned file the stamp lists has the
/// metadata recorded then. kiln-build's no-op fast path asks this; a build that goes on
/// to compile asks [`Toolchain::verify_stamped`], which also notices a tool detection
/// would now pick elsewhere (the fast path covers that by the variables detection reads).
pub fn stamp_holds(stamp: &Path, lock_for: impl Fn(&str) -> PathBuf) -> Option<StampedToolchain> {
    let old: Stamp = serde_json::from_slice(&std::fs::read(stamp).ok()?).ok()?;
    if old.schema != SCHEMA {
        return None;
    }
    let lock = lock_for(&old.target);
    let lock_sha256 = Digest::of(&std::fs::read(&lock).ok()?);
    let files_hold = old
        .files
        .values()
        .all(|(p, m)| m[0] >= 0 && meta(p).as_ref() == Some(m));
    (lock_sha256 == old.lock_sha256 && files_hold).then_some(StampedToolchain {
        lock,
        lock_sha256,
        target: old.target,
    })
}
