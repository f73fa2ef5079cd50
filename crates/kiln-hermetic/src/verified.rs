//! The only crate sources a build compiles: every registry crate `Cargo.lock` pins, unpacked
//! from its `.crate` archive after the archive's sha256 was checked against the lock (and
//! kept across builds only while a metadata stamp proves nothing touched it since).
//!
//! cargo normally compiles from `registry/src` in its home, a tree it unpacked once and never
//! checks again: appending code to a file there (a poisoned CI cache) would be compiled,
//! signed and attested with the locked checksum. Instead kiln hands cargo a *directory
//! source* (`source.crates-io.replace-with`) it has just written from the verified archive
//! bytes, read-only, with a `.cargo-checksum.json` per crate (every file's sha256 and the
//! archive's), which cargo itself checks before compiling. `registry/src` is never read.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use kiln_core::Digest;

use crate::lockfile::{CargoLock, FetchError};

/// The directory source cargo is pointed at, by this name.
pub const SOURCE_NAME: &str = "kiln-verified";

/// Every locked registry crate, unpacked from its verified archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedSources {
    /// `<dir>/<name>-<version>/` holds each crate.
    pub dir: PathBuf,
    /// The cargo home's registry directory the archives came from
    /// (`index.crates.io-<hash>`): cargo would have unpacked them into
    /// `registry/src/<registry>/`, and binaries name the sources there.
    pub registry: String,
}

impl VerifiedSources {
    /// The crate `name`@`version`'s directory.
    pub fn crate_dir(&self, name: &str, version: &str) -> PathBuf {
        self.dir.join(format!("{name}-{version}"))
    }

    /// `--config` arguments that make cargo take every crates.io package from this tree
    /// (and only from it): a directory source whose checksums cargo verifies.
    pub fn cargo_config_args(&self) -> Vec<String> {
        let dir = toml::Value::String(self.dir.display().to_string()).to_string();
        vec![
            "--config".into(),
            format!("source.crates-io.replace-with=\"{SOURCE_NAME}\""),
            "--config".into(),
            format!("source.{SOURCE_NAME}.directory={dir}"),
        ]
    }

    /// Where these sources appear in compiled artifacts: where cargo would have unpacked
    /// them in the build root's cargo home, so the bytes do not depend on which tree was
    /// compiled. (Relative to the remapped build root.)
    pub fn remapped(&self) -> String {
        format!("cargo-home/registry/src/{}", self.registry)
    }
}

/// Unpacks every registry crate of `lock` from its archive in `archives` (by `name@version`,
/// as [`crate::check_fetched`] returns them) into `dest`, so that `dest` holds exactly those
/// crates, each as its verified archive unpacks. Each archive unpacked is read once, its
/// sha256 compared with the lock's (so the bytes checked are the bytes unpacked), and its
/// entries must be regular files and directories under `<name>-<version>/`. Files are made
/// read-only (0444, 0555 when executable), then the directories (0555).
///
/// A crate already in `dest` is kept only when the stamp the previous unpack left
/// (`stamp_path`) says it came from the same locked archive and every file and directory
/// under it still has the metadata recorded then (size, inode, device, mode, mtime and
/// ctime, in nanoseconds): the rule kiln_toolchain's stamp follows. The tree is read-only,
/// so changing, adding or removing anything in it takes a `chmod` or a rename first, and
/// both move a ctime, which no unprivileged process can set back. Anything else (a crate
/// not in the stamp, a checksum the lock changed, one differing entry, a stray file, no or
/// an unreadable stamp) is removed and unpacked afresh. This is what makes a warm build of
/// a 200-crate project skip rewriting ~750 MB of sources it already holds.
pub fn unpack_verified(
    lock: &CargoLock,
    archives: &BTreeMap<String, PathBuf>,
    dest: &Path,
) -> Result<VerifiedSources, FetchError> {
    let io = |what: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| FetchError::Io { what, path, source }
    };
    let stamp_file = stamp_path(dest);
    let previous = Stamp::read(&stamp_file).filter(|_| dest.is_dir());
    // The stamp goes first: until a new one is written, nothing in the tree is trusted.
    match std::fs::remove_file(&stamp_file) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("cannot remove", &stamp_file)(e)),
    }
    let mut registries: BTreeMap<String, usize> = BTreeMap::new();
    let mut wanted: BTreeMap<String, Wanted> = BTreeMap::new();
    for c in lock.registry_crates() {
        let key = format!("{}@{}", c.name, c.version);
        let archive = archives.get(&key).ok_or_else(|| FetchError::Missing {
            cargo_home: PathBuf::from("(verified archives)"),
            count: 1,
            names: key.clone(),
        })?;
        if let Some(reg) = archive
            .parent()
            .and_then(Path::file_name)
            .and_then(|n| n.to_str())
        {
            *registries.entry(reg.to_string()).or_default() += 1;
        }
        wanted.insert(
            format!("{}-{}", c.name, c.version),
            Wanted {
                key,
                name: c.name.clone(),
                version: c.version.clone(),
                checksum: c.checksum.clone().unwrap_or_default(),
                archive: archive.clone(),
            },
        );
    }
    let mut stamp = Stamp {
        schema: STAMP_SCHEMA,
        crates: BTreeMap::new(),
    };
    match previous {
        None => {
            let partial = dest.with_file_name(format!(
                "{}.partial",
                dest.file_name().unwrap_or_default().to_string_lossy()
            ));
            for d in [&partial, dest] {
                remove_tree(d).map_err(io("cannot remove", d))?;
            }
            std::fs::create_dir_all(&partial).map_err(io("cannot create", &partial))?;
            for w in wanted.values() {
                w.unpack_into(&partial)?;
            }
            set_mode(&partial, 0o555).map_err(io("cannot make read-only", &partial))?;
            std::fs::rename(&partial, dest).map_err(io("cannot rename to", dest))?;
        }
        Some(previous) => {
            set_mode(dest, 0o755).map_err(io("cannot make writable", dest))?;
            let mut present: Vec<_> = std::fs::read_dir(dest)
                .map_err(io("cannot read", dest))?
                .map(|e| e.map(|e| e.file_name()))
                .collect::<Result<_, _>>()
                .map_err(io("cannot read", dest))?;
            present.sort();
            for name in present {
                let path = dest.join(&name);
                let name = name.to_string_lossy().into_owned();
                let kept = match (wanted.get(&name), previous.crates.get(&name)) {
                    (Some(w), Some(was)) if was.checksum == w.checksum => tree_meta(&path)
                        .ok()
                        .filter(|now| *now == was.files)
                        .map(|files| CrateStamp {
                            checksum: w.checksum.clone(),
                            files,
                        }),
                    _ => None,
                };
                match kept {
                    Some(c) => {
                        stamp.crates.insert(name, c);
                    }
                    None => remove_tree(&path).map_err(io("cannot remove", &path))?,
                }
            }
            for (name, w) in &wanted {
                if !stamp.crates.contains_key(name) {
                    w.unpack_into(dest)?;
                }
            }
            set_mode(dest, 0o555).map_err(io("cannot make read-only", dest))?;
        }
    }
    for (name, w) in &wanted {
        if !stamp.crates.contains_key(name) {
            let dir = dest.join(name);
            let files = tree_meta(&dir).map_err(io("cannot read", &dir))?;
            stamp.crates.insert(
                name.clone(),
                CrateStamp {
                    checksum: w.checksum.clone(),
                    files,
                },
            );
        }
    }
    let bytes = kiln_core::canonical::to_vec(&stamp).map_err(|e| FetchError::Io {
        what: "cannot serialize",
        path: stamp_file.clone(),
        source: std::io::Error::other(e),
    })?;
    kiln_core::fsx::write_atomic(&stamp_file, &bytes).map_err(io("cannot write", &stamp_file))?;
    // The registry most archives came from (one, normally); ties by name, for determinism.
    let registry = registries
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
        .map(|(r, _)| r.clone())
        .unwrap_or_else(|| "index.crates.io".into());
    Ok(VerifiedSources {
        dir: dest.to_path_buf(),
        registry,
    })
}

/// The stamp [`unpack_verified`] keeps beside `dest`: `<dest>.stamp.json`.
pub fn stamp_path(dest: &Path) -> PathBuf {
    dest.with_file_name(format!(
        "{}.stamp.json",
        dest.file_name().unwrap_or_default().to_string_lossy()
    ))
}

/// One locked registry crate and the verified archive it unpacks from.
struct Wanted {
    key: String,
    name: String,
    version: String,
    checksum: String,
    archive: PathBuf,
}

impl Wanted {
    /// Reads the archive once, checks its sha256 against the lock, unpacks it into `into`.
    fn unpack_into(&self, into: &Path) -> Result<(), FetchError> {
        let bytes = std::fs::read(&self.archive).map_err(|source| FetchError::Io {
            what: "cannot read",
            path: self.archive.clone(),
            source,
        })?;
        let got = Digest::of(&bytes).hex();
        if got != self.checksum {
            return Err(FetchError::Checksum {
                file: self.archive.clone(),
                krate: self.key.clone(),
                locked: self.checksum.clone(),
                found: got,
            });
        }
        unpack_crate(&bytes, &self.name, &self.version, &self.checksum, into).map_err(|source| {
            FetchError::BadArchive {
                file: self.archive.clone(),
                krate: self.key.clone(),
                source,
            }
        })
    }
}

const STAMP_SCHEMA: u32 = 1;

#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Stamp {
    schema: u32,
    /// `<name>-<version>` → what was unpacked there.
    crates: BTreeMap<String, CrateStamp>,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CrateStamp {
    /// The lock's sha256 of the archive it came from.
    checksum: String,
    files: Vec<(String, EntryMeta)>,
}

/// What the kernel keeps for an entry ([`kiln_core::fsx::identity`]).
type EntryMeta = [i128; 6];

impl Stamp {
    fn read(path: &Path) -> Option<Stamp> {
        let bytes = std::fs::read(path).ok()?;
        serde_json::from_slice::<Stamp>(&bytes)
            .ok()
            .filter(|s| s.schema == STAMP_SCHEMA)
    }
}

/// Every entry under `dir` (itself included, as ""), by sorted relative path, with its
/// metadata; symlinks are not followed (none are unpacked, so one is a difference).
fn tree_meta(dir: &Path) -> std::io::Result<Vec<(String, EntryMeta)>> {
    fn walk(dir: &Path, rel: &str, out: &mut Vec<(String, EntryMeta)>) -> std::io::Result<()> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name().to_string_lossy().into_owned();
            let rel = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let m = std::fs::symlink_metadata(e.path())?;
            out.push((rel.clone(), kiln_core::fsx::identity(&m)));
            if m.is_dir() {
                walk(&e.path(), &rel, out)?;
            }
        }
        Ok(())
    }
    let mut out = vec![(
        String::new(),
        kiln_core::fsx::identity(&std::fs::symlink_metadata(dir)?),
    )];
    walk(dir, "", &mut out)?;
    Ok(out)
}

/// Why a checksum-verified `.crate` cannot be unpacked.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The bytes are not a well-formed gzipped tar.
    #[error("{what}")]
    Malformed {
        what: &'static str,
        source: std::io::Error,
    },
    /// An entry kiln refuses to unpack: it could write outside the crate's directory or
    /// is not a plain file or directory.
    #[error("entry `{entry}` {why}")]
    Unsafe { entry: String, why: String },
    #[error("no `{0}/Cargo.toml`")]
    NoManifest(String),
    /// Writing the unpacked tree failed (the archive may be fine).
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot serialize .cargo-checksum.json")]
    Checksums(#[source] serde_json::Error),
}

fn malformed(what: &'static str) -> impl Fn(std::io::Error) -> ArchiveError {
    move |source| ArchiveError::Malformed { what, source }
}

fn write_err(path: &Path) -> impl FnOnce(std::io::Error) -> ArchiveError + '_ {
    move |source| ArchiveError::Write {
        path: path.to_path_buf(),
        source,
    }
}

/// Unpacks one `.crate` (a gzipped tar of `<name>-<version>/...`) into `into`, writing the
/// `.cargo-checksum.json` cargo's directory source checks.
fn unpack_crate(
    bytes: &[u8],
    name: &str,
    version: &str,
    checksum: &str,
    into: &Path,
) -> Result<(), ArchiveError> {
    let prefix = format!("{name}-{version}");
    let root = into.join(&prefix);
    std::fs::create_dir(&root).map_err(write_err(&root))?;
    let mut files: BTreeMap<String, String> = BTreeMap::new();
    let mut dirs = vec![root.clone()];
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    let entries = archive.entries().map_err(malformed("not a tar.gz"))?;
    for entry in entries {
        let mut entry = entry.map_err(malformed("corrupt archive"))?;
        let path = entry
            .path()
            .map_err(malformed("bad entry name"))?
            .into_owned();
        let shown = path.display().to_string();
        let unsafe_entry = |why: String| ArchiveError::Unsafe {
            entry: shown.clone(),
            why,
        };
        let mut comps = path.components();
        if comps.next() != Some(Component::Normal(prefix.as_ref())) {
            return Err(unsafe_entry(format!("is not under `{prefix}/`")));
        }
        let rel: PathBuf = comps.as_path().to_path_buf();
        if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(unsafe_entry("is not a plain relative path".into()));
        }
        let kind = entry.header().entry_type();
        let target = root.join(&rel);
        if kind.is_dir() {
            if !rel.as_os_str().is_empty() && !target.is_dir() {
                std::fs::create_dir_all(&target).map_err(write_err(&target))?;
                dirs.push(target);
            }
            continue;
        }
        if !(kind.is_file() || kind == tar::EntryType::Continuous) {
            return Err(unsafe_entry(format!(
                "is a {kind:?}; crates hold regular files and directories only"
            )));
        }
        let rel_str = rel
            .to_str()
            .ok_or_else(|| unsafe_entry("is not UTF-8".into()))?
            .to_string();
        if rel_str.is_empty() || rel_str == ".cargo-checksum.json" {
            return Err(unsafe_entry("is not allowed in a crate".into()));
        }
        if files.contains_key(&rel_str) {
            return Err(unsafe_entry("appears twice".into()));
        }
        if let Some(parent) = target.parent()
            && !parent.is_dir()
        {
            std::fs::create_dir_all(parent).map_err(write_err(parent))?;
            let mut p = parent;
            while p != root && !dirs.iter().any(|d| d == p) {
                dirs.push(p.to_path_buf());
                match p.parent() {
                    Some(up) => p = up,
                    None => break,
                }
            }
        }
        let exec = entry
            .header()
            .mode()
            .map(|m| m & 0o111 != 0)
            .unwrap_or(false);
        let mut content = Vec::with_capacity(entry.size() as usize);
        entry
            .read_to_end(&mut content)
            .map_err(malformed("corrupt archive"))?;
        write_new(&target, &content, if exec { 0o555 } else { 0o444 })
            .map_err(write_err(&target))?;
        files.insert(rel_str, Digest::of(&content).hex());
    }
    if !files.contains_key("Cargo.toml") {
        return Err(ArchiveError::NoManifest(prefix));
    }
    let doc = serde_json::json!({ "files": files, "package": checksum });
    let json = kiln_core::canonical::to_vec(&doc).map_err(ArchiveError::Checksums)?;
    let checksums = root.join(".cargo-checksum.json");
    write_new(&checksums, &json, 0o444).map_err(write_err(&checksums))?;
    // Deepest first, so no directory is made read-only before its contents are written.
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    for d in dirs {
        set_mode(&d, 0o555).map_err(write_err(&d))?;
    }
    Ok(())
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    f.write_all(bytes)?;
    drop(f);
    set_mode(path, mode)
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// Removes a tree kiln made read-only (its directories must be writable again first, or
/// an unprivileged user cannot delete their entries). Absent is fine.
pub(crate) fn remove_tree(path: &Path) -> std::io::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if meta.is_dir() {
        fn unlock(d: &Path) -> std::io::Result<()> {
            set_mode(d, 0o755)?;
            for e in std::fs::read_dir(d)? {
                let e = e?;
                if e.file_type()?.is_dir() {
                    unlock(&e.path())?;
                }
            }
            Ok(())
        }
        unlock(path)?;
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `.crate`: a gzipped tar of `entries` (path, bytes, mode; a path ending in `/` is a
    /// directory).
    fn archive(entries: &[(&str, &[u8], u32)]) -> Vec<u8> {
        let mut tar = tar::Builder::new(Vec::new());
        for (path, bytes, mode) in entries {
            let mut h = tar::Header::new_gnu();
            if path.ends_with('/') {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
            } else {
                h.set_size(bytes.len() as u64);
            }
            h.set_mode(*mode);
            // `append_data` refuses `..`; write the name raw so hostile names can be made.
            h.as_gnu_mut().unwrap().name[..path.len()].copy_from_slice(path.as_bytes());
            h.set_cksum();
            tar.append(&h, *bytes).unwrap();
        }
        let tar = tar.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar).unwrap();
        gz.finish().unwrap()
    }

    fn lock_for(bytes: &[u8]) -> CargoLock {
        let text = format!(
            "version = 4\n[[package]]\nname = \"demo\"\nversion = \"1.0.0\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\nchecksum = \"{}\"\n",
            Digest::of(bytes).hex()
        );
        CargoLock::parse(Path::new("Cargo.lock"), text.as_bytes()).unwrap()
    }

    fn setup(bytes: &[u8]) -> (tempfile::TempDir, CargoLock, BTreeMap<String, PathBuf>) {
        let d = tempfile::tempdir().unwrap();
        let cache = d.path().join("registry/cache/index.crates.io-0123");
        std::fs::create_dir_all(&cache).unwrap();
        let file = cache.join("demo-1.0.0.crate");
        std::fs::write(&file, bytes).unwrap();
        let archives = BTreeMap::from([("demo@1.0.0".to_string(), file)]);
        (d, lock_for(bytes), archives)
    }

    const MANIFEST: &[u8] = b"[package]\nname = \"demo\"\nversion = \"1.0.0\"\n";

    #[test]
    fn unpacks_read_only_with_checksums_and_replaces_the_old_tree() {
        let bytes = archive(&[
            ("demo-1.0.0/", b"", 0o755),
            ("demo-1.0.0/Cargo.toml", MANIFEST, 0o644),
            ("demo-1.0.0/src/lib.rs", b"pub fn f() {}\n", 0o644),
            ("demo-1.0.0/run.sh", b"#!/bin/sh\n", 0o755),
        ]);
        let (d, lock, archives) = setup(&bytes);
        let dest = d.path().join("verified");
        // A stale (say, tampered) tree from an earlier build is replaced, not reused.
        std::fs::create_dir_all(dest.join("demo-1.0.0/src")).unwrap();
        std::fs::write(dest.join("demo-1.0.0/src/lib.rs"), "evil").unwrap();
        std::fs::write(dest.join("demo-1.0.0/src/extra.rs"), "evil").unwrap();
        let v = unpack_verified(&lock, &archives, &dest).unwrap();
        assert_eq!(v.registry, "index.crates.io-0123");
        assert_eq!(v.remapped(), "cargo-home/registry/src/index.crates.io-0123");
        let root = v.crate_dir("demo", "1.0.0");
        assert_eq!(
            std::fs::read(root.join("src/lib.rs")).unwrap(),
            b"pub fn f() {}\n"
        );
        assert!(!root.join("src/extra.rs").exists());
        let sums: serde_json::Value =
            serde_json::from_slice(&std::fs::read(root.join(".cargo-checksum.json")).unwrap())
                .unwrap();
        assert_eq!(sums["package"], Digest::of(&bytes).hex());
        assert_eq!(
            sums["files"]["src/lib.rs"],
            Digest::of(b"pub fn f() {}\n").hex()
        );
        assert_eq!(sums["files"].as_object().unwrap().len(), 3);
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&root.join("src/lib.rs")), 0o444);
        assert_eq!(mode(&root.join("run.sh")), 0o555);
        assert_eq!(mode(&root.join("src")), 0o555);
        assert_eq!(mode(&dest), 0o555);
        // The next build replaces it again, read-only or not.
        unpack_verified(&lock, &archives, &dest).unwrap();
        remove_tree(&dest).unwrap();
        assert!(!dest.exists());
    }

    #[test]
    fn an_archive_changed_since_the_lock_is_refused() {
        let bytes = archive(&[("demo-1.0.0/Cargo.toml", MANIFEST, 0o644)]);
        let (d, lock, archives) = setup(&bytes);
        std::fs::write(&archives["demo@1.0.0"], b"swapped after the check").unwrap();
        let e = unpack_verified(&lock, &archives, &d.path().join("v"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("demo@1.0.0") && e.contains(&Digest::of(&bytes).hex()),
            "{e}"
        );
    }

    #[test]
    fn hostile_entries_are_refused() {
        for (entries, why) in [
            (
                vec![("demo-1.0.0/../escape.rs", &b"x"[..], 0o644)],
                "plain relative path",
            ),
            (
                vec![("other-1.0.0/Cargo.toml", MANIFEST, 0o644)],
                "not under",
            ),
            (
                vec![
                    ("demo-1.0.0/Cargo.toml", MANIFEST, 0o644),
                    ("demo-1.0.0/.cargo-checksum.json", b"{}", 0o644),
                ],
                "not allowed",
            ),
            (vec![("demo-1.0.0/src/lib.rs", b"", 0o644)], "Cargo.toml"),
        ] {
            let bytes = archive(&entries);
            let (d, lock, archives) = setup(&bytes);
            let e = unpack_verified(&lock, &archives, &d.path().join("v")).unwrap_err();
            // The archive's problem is the source, not repeated in the message.
            let source = std::error::Error::source(&e).unwrap().to_string();
            let e = e.to_string();
            assert!(!e.contains(why), "{why}: {e}");
            assert!(
                source.contains(why) && e.contains("demo@1.0.0"),
                "{why}: {e}: {source}"
            );
        }
    }

    fn demo_archive(lib: &[u8]) -> Vec<u8> {
        archive(&[
            ("demo-1.0.0/", b"", 0o755),
            ("demo-1.0.0/Cargo.toml", MANIFEST, 0o644),
            ("demo-1.0.0/src/", b"", 0o755),
            ("demo-1.0.0/src/lib.rs", lib, 0o644),
        ])
    }

    fn inode(p: &Path) -> u64 {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(p).unwrap().ino()
    }

    /// Makes `dir` and everything in it writable again, as an attacker with the build
    /// user's rights would before changing the tree.
    fn unlock(dir: &Path) {
        use std::os::unix::fs::PermissionsExt;
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                unlock(&p);
            } else {
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
            }
        }
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn an_unchanged_crate_is_kept_and_a_changed_one_unpacked_afresh() {
        let bytes = demo_archive(b"pub fn f() {}\n");
        let (d, lock, archives) = setup(&bytes);
        let dest = d.path().join("verified");
        let v = unpack_verified(&lock, &archives, &dest).unwrap();
        let lib = v.crate_dir("demo", "1.0.0").join("src/lib.rs");
        assert!(stamp_path(&dest).is_file());
        let first = inode(&lib);

        // Nothing changed: the crate's files are the ones unpacked last time.
        unpack_verified(&lock, &archives, &dest).unwrap();
        assert_eq!(inode(&lib), first, "an unchanged crate is kept");

        // A file rewritten with its size kept is found by its ctime and unpacked afresh.
        unlock(&dest);
        std::fs::write(&lib, b"pub fn g() {}\n").unwrap();
        unpack_verified(&lock, &archives, &dest).unwrap();
        assert_eq!(std::fs::read(&lib).unwrap(), b"pub fn f() {}\n");

        // A file added to a crate, and a stray directory beside the crates, are removed.
        unlock(&dest);
        std::fs::write(lib.with_file_name("extra.rs"), b"evil").unwrap();
        std::fs::create_dir(dest.join("evil-0.1.0")).unwrap();
        unpack_verified(&lock, &archives, &dest).unwrap();
        assert!(!lib.with_file_name("extra.rs").exists());
        assert!(!dest.join("evil-0.1.0").exists());

        // Without the stamp nothing is trusted: the whole tree is unpacked afresh. (Inode
        // numbers are no witness: a filesystem may hand a new file the one just freed.)
        unlock(&dest);
        std::fs::write(&lib, b"pub fn h() {}\n").unwrap();
        std::fs::remove_file(stamp_path(&dest)).unwrap();
        unpack_verified(&lock, &archives, &dest).unwrap();
        assert_eq!(std::fs::read(&lib).unwrap(), b"pub fn f() {}\n");
        remove_tree(&dest).unwrap();
    }

    #[test]
    fn a_crate_whose_locked_checksum_changed_is_unpacked_from_the_new_archive() {
        let old = demo_archive(b"pub fn old() {}\n");
        let (d, lock, archives) = setup(&old);
        let dest = d.path().join("verified");
        unpack_verified(&lock, &archives, &dest).unwrap();
        // A new release of the same name and version (a re-published registry, a patched
        // vendor copy): same directory name, another checksum.
        let new = demo_archive(b"pub fn new() {}\n");
        std::fs::write(&archives["demo@1.0.0"], &new).unwrap();
        let v = unpack_verified(&lock_for(&new), &archives, &dest).unwrap();
        let lib = v.crate_dir("demo", "1.0.0").join("src/lib.rs");
        assert_eq!(std::fs::read(lib).unwrap(), b"pub fn new() {}\n");
        // And an archive that no longer matches the lock is refused, stamp or not.
        let e = unpack_verified(&lock, &archives, &dest).unwrap_err();
        assert!(matches!(e, FetchError::Checksum { .. }), "{e}");
        assert!(
            !stamp_path(&dest).exists(),
            "a failed unpack leaves no stamp"
        );
        remove_tree(&dest).unwrap();
    }
}
