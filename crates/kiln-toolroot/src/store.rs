//! [`Store`]: installed roots, content-addressed by manifest digest:
//! `<store>/<manifest hex>/rootfs` (the root) and `<store>/<manifest hex>/stamp.json`.
//!
//! `install` unpacks a layout's layers once, into a staging directory swapped in whole, so
//! a root directory is either absent or complete. Before anything is used the layout is
//! verified (manifest, config and every layer blob, through kiln-oci's `BaseImage`), each
//! layer is hashed again while it is unpacked, and the unpacked tree must have the pinned
//! tree digest. Files are left read-only (0444, or 0555 when executable); directories stay
//! 0755 so that a store can be cleaned with a plain `rm -rf`.
//!
//! `get` checks an installed root before returning it. A full check re-hashes every file
//! (~1.3 GiB for the default root); the stamp (as kiln-toolchain's verification stamp)
//! records, after a full check, every path's size, inode, device, mtime, ctime and mode,
//! so a later `get` that finds the same paths with the same metadata skips the hashing.
//! ctime cannot be set back by a process, so a file rewritten and restored still
//! differs. That later `get` runs before every build, so it compares one digest of the
//! listing (the stamp's `metadata`) with a listing taken in parallel, never parsing the
//! stamp's entries back (they are read only to name what changed). Any difference means a
//! full check; a tree that is not the pinned one is refused, naming the extra, missing and
//! changed paths.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::{self, Read};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use kiln_core::contract::layout::toolroot;
use kiln_core::{Digest, HashingReader, canonical, fsx};
use kiln_oci::BaseImage;
use serde::{Deserialize, Serialize};

use crate::error::{Result, ToolrootError};
use crate::lock::RootDigests;
use crate::tree::{self, Meta, Node};

/// A directory of installed roots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Store {
    dir: PathBuf,
}

/// An installed, verified root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootDir {
    /// The root directory on this machine (what a sandbox makes `/`).
    pub path: PathBuf,
    pub digests: RootDigests,
}

impl RootDir {
    /// rustc, as a path inside the root.
    pub const RUSTC: &str = "/usr/local/bin/rustc";
    /// cargo, as a path inside the root.
    pub const CARGO: &str = "/usr/local/bin/cargo";
    /// The C compiler driver, as a path inside the root.
    pub const CC: &str = "/usr/bin/cc";

    /// rustc's path inside the root (`/usr/local/bin/rustc`).
    pub fn rustc(&self) -> PathBuf {
        PathBuf::from(Self::RUSTC)
    }
    /// cargo's path inside the root (`/usr/local/bin/cargo`).
    pub fn cargo(&self) -> PathBuf {
        PathBuf::from(Self::CARGO)
    }
    /// The C compiler's path inside the root (`/usr/bin/cc`, a link to the pinned gcc).
    pub fn cc(&self) -> PathBuf {
        PathBuf::from(Self::CC)
    }
    /// Where the in-root path `p` (absolute, as a process in the root sees it) is on
    /// this machine.
    pub fn host_path(&self, p: impl AsRef<Path>) -> PathBuf {
        self.path
            .join(p.as_ref().strip_prefix("/").unwrap_or(p.as_ref()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stamp {
    schema: u32,
    digests: RootDigests,
    /// [`tree::metadata_digest`] of the tree when it was last fully checked.
    metadata: Digest,
    /// path → (node as `Node::describe` writes it, metadata).
    entries: BTreeMap<String, (String, Meta)>,
}

/// What the check before every build reads of a [`Stamp`].
#[derive(Deserialize)]
struct StampHead {
    schema: u32,
    digests: RootDigests,
    metadata: Digest,
}

/// 2: `metadata`, the digest the fast path compares, was added.
const STAMP_SCHEMA: u32 = 2;

impl Store {
    /// The user's store: `$XDG_CACHE_HOME/kiln/toolroots`, else `~/.cache/kiln/toolroots`.
    pub fn open_default() -> Result<Store> {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| {
                std::env::var_os("HOME")
                    .map(PathBuf::from)
                    .filter(|p| p.is_absolute())
                    .map(|h| h.join(".cache"))
            })
            .ok_or(ToolrootError::NoStoreDir)?;
        Ok(Store::at(base.join(toolroot::STORE_DIR)))
    }

    /// A store at `dir` (created on first install).
    pub fn at(dir: impl Into<PathBuf>) -> Store {
        Store { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn entry(&self, d: &RootDigests) -> PathBuf {
        self.dir.join(d.manifest.hex())
    }

    /// The installed root with these digests, checked (see the module docs); `None` if
    /// it is not installed; an error if it is installed but is not the pinned tree.
    pub fn get(&self, expected: &RootDigests) -> Result<Option<RootDir>> {
        let entry = self.entry(expected);
        let rootfs = entry.join(toolroot::ROOTFS_DIR);
        if !rootfs.is_dir() {
            return Ok(None);
        }
        let stamp_path = entry.join(toolroot::STAMP);
        let stamp_bytes = std::fs::read(&stamp_path).ok();
        // The fast path reads the stamp's head only (serde skips `entries` unparsed).
        let head = stamp_bytes
            .as_deref()
            .and_then(|b| serde_json::from_slice::<StampHead>(b).ok())
            .filter(|h| h.schema == STAMP_SCHEMA && h.digests == *expected);
        if let Some(h) = head
            && tree::metadata_digest(&tree::metadata(&rootfs)?) == h.metadata
        {
            return Ok(Some(RootDir {
                path: rootfs,
                digests: *expected,
            }));
        }
        let stamp: Option<Stamp> = stamp_bytes
            .and_then(|b| serde_json::from_slice(&b).ok())
            .filter(|s: &Stamp| s.schema == STAMP_SCHEMA && s.digests == *expected);
        let scanned = tree::scan(&rootfs)?;
        let found = tree::digest(&scanned);
        if found != expected.tree {
            return Err(ToolrootError::Tampered {
                problems: stamp.map(|s| differences(&s, &scanned)).unwrap_or_default(),
                root: rootfs,
                expected: expected.tree,
                found,
            });
        }
        write_stamp(&entry, &rootfs, expected, &scanned)?;
        Ok(Some(RootDir {
            path: rootfs,
            digests: *expected,
        }))
    }

    /// Installs the root of the OCI layout `layout` (a [`crate::PackedRoot`] or a layout
    /// directory) whose manifest and tree are `expected`, unless a verified copy is
    /// installed already. A damaged installed copy is replaced.
    pub fn install(&self, layout: impl AsRef<Path>, expected: &RootDigests) -> Result<RootDir> {
        let layout = layout.as_ref();
        if let Ok(Some(r)) = self.get(expected) {
            return Ok(r);
        }
        let image =
            BaseImage::open(layout, &expected.manifest).map_err(ToolrootError::oci(layout))?;
        let entry = self.entry(expected);
        let staging = fsx::StagingDir::new(&entry).map_err(ToolrootError::io("staging", &entry))?;
        let rootfs = staging.path().join(toolroot::ROOTFS_DIR);
        fsx::create_dir_all(&rootfs).map_err(ToolrootError::io("creating", &rootfs))?;
        let mut dirs: HashSet<String> = HashSet::new();
        for l in image.layers() {
            let blob = layout.join("blobs").join("sha256").join(l.digest.hex());
            let f = std::fs::File::open(&blob).map_err(ToolrootError::io("opening", &blob))?;
            let mut compressed = HashingReader::new(io::BufReader::with_capacity(1 << 20, f));
            let mut tar_bytes =
                HashingReader::new(flate2::read::MultiGzDecoder::new(&mut compressed));
            extract_layer(&mut tar_bytes, &rootfs, &mut dirs).map_err(|what| {
                ToolrootError::Layer {
                    layout: layout.to_path_buf(),
                    layer: l.digest,
                    what,
                }
            })?;
            io::copy(&mut tar_bytes, &mut io::sink())
                .map_err(ToolrootError::io("reading", &blob))?;
            let (diff_id, _) = tar_bytes.finish();
            io::copy(&mut compressed, &mut io::sink())
                .map_err(ToolrootError::io("reading", &blob))?;
            let (digest, _) = compressed.finish();
            if digest != l.digest || diff_id != l.diff_id {
                return Err(ToolrootError::Layer {
                    layout: layout.to_path_buf(),
                    layer: l.digest,
                    what: format!(
                        "the blob changed while it was unpacked (sha256 {digest}, diff_id {diff_id})"
                    ),
                });
            }
        }
        let scanned = tree::scan(&rootfs)?;
        let found = tree::digest(&scanned);
        if found != expected.tree {
            return Err(ToolrootError::Tampered {
                root: rootfs,
                expected: expected.tree,
                found,
                problems: vec![format!(
                    "the layout with manifest {} unpacks to another tree than the pinned one",
                    expected.manifest
                )],
            });
        }
        write_stamp(staging.path(), &rootfs, expected, &scanned)?;
        let entry = staging
            .commit()
            .map_err(ToolrootError::io("moving into place", &entry))?;
        Ok(RootDir {
            path: entry.join(toolroot::ROOTFS_DIR),
            digests: *expected,
        })
    }
}

fn write_stamp(
    entry: &Path,
    rootfs: &Path,
    digests: &RootDigests,
    scanned: &BTreeMap<String, Node>,
) -> Result<()> {
    let listed = tree::metadata(rootfs)?;
    let metadata = tree::metadata_digest(&listed);
    let meta: BTreeMap<String, Meta> = listed.into_iter().collect();
    let entries = scanned
        .iter()
        .filter_map(|(p, n)| Some((p.clone(), (n.describe(), *meta.get(p)?))))
        .collect();
    let stamp = Stamp {
        schema: STAMP_SCHEMA,
        digests: *digests,
        metadata,
        entries,
    };
    let path = entry.join(toolroot::STAMP);
    let bytes = canonical::to_vec(&stamp).expect("a stamp serializes");
    fsx::write_atomic(&path, &bytes).map_err(ToolrootError::io("writing", &path))
}

/// What differs between the last full check (the stamp) and the tree now, for the error.
fn differences(stamp: &Stamp, now: &BTreeMap<String, Node>) -> Vec<String> {
    const MAX: usize = 10;
    let before: BTreeSet<&String> = stamp.entries.keys().collect();
    let after: BTreeSet<&String> = now.keys().collect();
    let mut out = Vec::new();
    for p in after.difference(&before).take(MAX) {
        out.push(format!("extra `{p}`"));
    }
    for p in before.difference(&after).take(MAX) {
        out.push(format!("missing `{p}`"));
    }
    for (p, n) in now.iter().filter(|(p, _)| before.contains(p)) {
        let was = &stamp.entries[p].0;
        if *was != n.describe() {
            out.push(format!("changed `{p}` (was {was}, now {})", n.describe()));
            if out.len() >= 3 * MAX {
                break;
            }
        }
    }
    out
}

/// Unpacks one layer's tar stream into `root`. Paths are checked again (relative,
/// normalized, parents made by this extraction — never a symlink of the layer); a later
/// layer's file replaces an earlier one's; files are created fresh (`O_EXCL`, no
/// symlink followed) and left read-only.
fn extract_layer(
    r: &mut dyn Read,
    root: &Path,
    dirs: &mut HashSet<String>,
) -> std::result::Result<(), String> {
    let mut archive = tar::Archive::new(r);
    for entry in archive.entries().map_err(|e| e.to_string())? {
        let mut entry = entry.map_err(|e| e.to_string())?;
        let raw = entry.path_bytes().into_owned();
        let path = String::from_utf8(raw)
            .map_err(|_| "an entry's path is not UTF-8".to_string())?
            .trim_end_matches('/')
            .to_string();
        crate::lock::check_rel_path(&path).map_err(|e| format!("entry {e}"))?;
        if let Some((parent, _)) = path.rsplit_once('/')
            && !dirs.contains(parent)
        {
            return Err(format!(
                "`{path}` comes before its directory `{parent}`, or `{parent}` is not a directory"
            ));
        }
        let dest = root.join(&path);
        let kind = entry.header().entry_type();
        let existing = std::fs::symlink_metadata(&dest).ok();
        if kind != tar::EntryType::Directory
            && let Some(m) = &existing
        {
            if m.is_dir() {
                return Err(format!("`{path}` replaces a directory of an earlier layer"));
            }
            std::fs::remove_file(&dest).map_err(|e| format!("replacing `{path}`: {e}"))?;
        }
        match kind {
            tar::EntryType::Directory => {
                match &existing {
                    Some(m) if m.is_dir() => {}
                    Some(_) => {
                        return Err(format!("`{path}` would replace a file with a directory"));
                    }
                    None => {
                        std::fs::create_dir(&dest)
                            .map_err(|e| format!("creating `{path}`: {e}"))?;
                        fsx::set_mode(&dest, 0o755).map_err(|e| format!("`{path}`: {e}"))?;
                    }
                }
                dirs.insert(path);
            }
            tar::EntryType::Regular => {
                let exec = entry.header().mode().unwrap_or(0) & 0o111 != 0;
                let mtime = entry.header().mtime().unwrap_or(0);
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&dest)
                    .map_err(|e| format!("creating `{path}`: {e}"))?;
                io::copy(&mut entry, &mut f).map_err(|e| format!("writing `{path}`: {e}"))?;
                f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime))
                    .map_err(|e| format!("`{path}`: {e}"))?;
                f.set_permissions(std::fs::Permissions::from_mode(if exec {
                    0o555
                } else {
                    0o444
                }))
                .map_err(|e| format!("`{path}`: {e}"))?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| format!("symlink `{path}` has no target"))?;
                let target = std::str::from_utf8(&target)
                    .map_err(|_| format!("symlink `{path}`: target not UTF-8"))?
                    .to_string();
                std::os::unix::fs::symlink(&target, &dest).map_err(|e| format!("`{path}`: {e}"))?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| format!("hard link `{path}` has no target"))?;
                let target = String::from_utf8(target.into_owned())
                    .map_err(|_| format!("hard link `{path}`: target not UTF-8"))?;
                crate::lock::check_rel_path(&target)
                    .map_err(|e| format!("hard link `{path}`: {e}"))?;
                let src = root.join(&target);
                if !std::fs::symlink_metadata(&src).is_ok_and(|m| m.is_file()) {
                    return Err(format!(
                        "hard link `{path}` → `{target}`, not a file of the root"
                    ));
                }
                std::fs::hard_link(&src, &dest).map_err(|e| format!("`{path}`: {e}"))?;
            }
            other => return Err(format!("`{path}`: tar entry type {other:?} is refused")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pack::pack;
    use kiln_core::Digest;

    fn tree_of(dir: &Path) -> Digest {
        tree::digest(&tree::scan(dir).unwrap())
    }

    fn installed() -> (tempfile::TempDir, Store, RootDir, crate::PackedRoot) {
        let d = tempfile::tempdir().unwrap();
        let (lock, inputs) = crate::pack::tests::synthetic(d.path());
        let packed = pack(&lock, &inputs, &d.path().join("oci"), 7).unwrap();
        let store = Store::at(d.path().join("store"));
        let root = store.install(&packed, &packed.digests()).unwrap();
        (d, store, root, packed)
    }

    fn writable(p: &Path) {
        fsx::set_mode(p, 0o644).unwrap();
    }

    #[test]
    fn install_is_verified_read_only_and_found_again() {
        let (_d, store, root, packed) = installed();
        assert_eq!(
            root.path,
            store.dir().join(packed.manifest.hex()).join("rootfs")
        );
        assert_eq!(tree_of(&root.path), packed.tree);
        let m = std::fs::metadata(root.path.join("usr/bin/dash")).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o555);
        let m = std::fs::metadata(root.path.join("usr/share/doc/dash/copyright")).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o444);
        assert_eq!(store.get(&packed.digests()).unwrap(), Some(root.clone()));
        // Installing again finds it.
        assert_eq!(store.install(&packed, &packed.digests()).unwrap(), root);
        // Unknown digests are not installed.
        let other = RootDigests {
            manifest: Digest::of(b"x"),
            tree: packed.tree,
        };
        assert_eq!(store.get(&other).unwrap(), None);
    }

    #[test]
    fn extra_missing_and_changed_files_are_refused() {
        type Tamper = fn(&Path);
        let cases: [(Tamper, &str); 4] = [
            (
                |r| std::fs::write(r.join("usr/bin/evil"), b"x").unwrap(),
                "extra `usr/bin/evil`",
            ),
            (
                |r| std::fs::remove_file(r.join("usr/share/doc/dash/copyright")).unwrap(),
                "missing `usr/share/doc/dash/copyright`",
            ),
            (
                |r| {
                    let p = r.join("usr/bin/dash");
                    writable(&p);
                    std::fs::write(&p, b"hsad").unwrap();
                    fsx::set_mode(&p, 0o555).unwrap();
                },
                "changed `usr/bin/dash`",
            ),
            (
                |r| {
                    let p = r.join("usr/bin/sh");
                    std::fs::remove_file(&p).unwrap();
                    std::os::unix::fs::symlink("/bin/bash", &p).unwrap();
                },
                "changed `usr/bin/sh`",
            ),
        ];
        for (tamper, want) in cases {
            let (_d, store, root, packed) = installed();
            tamper(&root.path);
            let e = store.get(&packed.digests()).unwrap_err();
            let msg = e.to_string();
            assert!(matches!(e, ToolrootError::Tampered { .. }), "{msg}");
            assert!(msg.contains(want), "{want}: {msg}");
            assert!(kiln_core::Hint::hint(&e).unwrap().contains("install"));
            // Installing again repairs it.
            let again = store.install(&packed, &packed.digests()).unwrap();
            assert_eq!(tree_of(&again.path), packed.tree);
            assert!(store.get(&packed.digests()).unwrap().is_some());
        }
    }

    #[test]
    fn touched_but_unchanged_files_pass_and_refresh_the_stamp() {
        let (_d, store, root, packed) = installed();
        let p = root.path.join("usr/bin/dash");
        let f = std::fs::File::open(&p).unwrap();
        f.set_modified(std::time::SystemTime::now()).unwrap();
        assert!(store.get(&packed.digests()).unwrap().is_some());
        assert!(store.get(&packed.digests()).unwrap().is_some());
    }

    #[test]
    fn a_rewrite_that_keeps_size_and_mtime_is_still_refused() {
        // The attack the stamp's ctime is for: same length, mtime set back, so only the
        // inode's change time (which no process can set) tells.
        let (_d, store, root, packed) = installed();
        let p = root.path.join("usr/bin/dash");
        let before = std::fs::metadata(&p).unwrap();
        let mut evil = std::fs::read(&p).unwrap();
        evil[0] ^= 0xff;
        writable(&p);
        std::fs::write(&p, &evil).unwrap();
        fsx::set_mode(&p, 0o555).unwrap();
        std::fs::File::open(&p)
            .unwrap()
            .set_modified(before.modified().unwrap())
            .unwrap();
        let after = std::fs::metadata(&p).unwrap();
        assert_eq!(
            (after.len(), after.modified().unwrap()),
            (before.len(), before.modified().unwrap())
        );
        let e = store.get(&packed.digests()).unwrap_err();
        assert!(e.to_string().contains("changed `usr/bin/dash`"), "{e}");
    }

    #[test]
    fn a_stamp_of_an_older_schema_means_a_full_check_and_a_new_stamp() {
        let (_d, store, root, packed) = installed();
        let entry = root.path.parent().unwrap();
        let path = entry.join(toolroot::STAMP);
        let mut stamp: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(stamp["schema"], STAMP_SCHEMA);
        stamp["schema"] = 1.into();
        stamp.as_object_mut().unwrap().remove("metadata");
        std::fs::write(&path, serde_json::to_vec(&stamp).unwrap()).unwrap();
        assert!(store.get(&packed.digests()).unwrap().is_some());
        let rewritten: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(rewritten["schema"], STAMP_SCHEMA);
        assert_eq!(
            rewritten["metadata"],
            tree::metadata_digest(&tree::metadata(&root.path).unwrap()).to_string()
        );
    }

    #[test]
    fn a_layout_of_another_tree_is_refused() {
        let (d, _store, _root, packed) = installed();
        let wrong = RootDigests {
            manifest: packed.manifest,
            tree: Digest::of(b"not this tree"),
        };
        let store = Store::at(d.path().join("store2"));
        let e = store.install(&packed, &wrong).unwrap_err();
        assert!(matches!(e, ToolrootError::Tampered { .. }), "{e}");
        assert!(
            store.get(&wrong).unwrap().is_none(),
            "nothing was installed"
        );
        let bad = RootDigests {
            manifest: Digest::of(b"no such manifest"),
            tree: packed.tree,
        };
        let e = store.install(&packed, &bad).unwrap_err();
        assert!(matches!(e, ToolrootError::Oci { .. }), "{e}");
    }

    #[test]
    fn default_store_follows_xdg() {
        // Read-only use of the environment: whatever it is, the store ends in the layout
        // name under an absolute directory.
        if let Ok(s) = Store::open_default() {
            assert!(s.dir().ends_with("kiln/toolroots"));
            assert!(s.dir().is_absolute());
        }
    }
}
