//! `fetch`: every input of a lock, as verified files in a content-addressed cache.
//!
//! Each input is taken from the first place that has it: the cache
//! (`<cache>/sha256/<hex>`), a local directory holding the file under its own name (the
//! offline way: copy the `.deb`s and tarballs there from anywhere), else the network (the
//! lock's URL, or the Debian mirror given instead of the lock's). Whatever the source,
//! every byte is hashed on the way into a temporary file next to the cache entry and
//! renamed into place only when its sha256 and size are the pinned ones; a mismatch
//! removes the temporary file, so the cache never holds a partial or wrong file.

use std::collections::BTreeMap;
use std::io::{self, Seek, Write};
use std::path::{Path, PathBuf};

use kiln_core::contract::layout::toolroot;
use kiln_core::{Digest, HashingWriter};

use crate::error::{Result, ToolrootError};
use crate::lock::{InputRef, RootLock};
use crate::net::{Net, Sink};

/// The largest input kiln downloads (rustc's tarball is ~80 MiB).
const DOWNLOAD_LIMIT: u64 = 4 << 30;

/// The verified files of a lock's inputs, by pinned sha256 (what `pack` reads).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inputs {
    files: BTreeMap<String, PathBuf>,
    /// How many came from the network in this `fetch` (the rest from cache or disk).
    downloaded: usize,
}

impl Inputs {
    /// The file holding the input pinned to `sha256` (lowercase hex).
    pub fn path(&self, sha256: &str) -> Option<&Path> {
        self.files.get(sha256).map(PathBuf::as_path)
    }

    /// Number of inputs.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// How many inputs this fetch downloaded (0 on a warm cache or offline).
    pub fn downloaded(&self) -> usize {
        self.downloaded
    }
}

/// Obtains every input of `lock` into `cache` (see the module docs) and returns where
/// each is. `mirror_override` replaces the lock's Debian mirror for downloads (the pinned
/// sha256 still decides); `local_dirs` are searched, in order, for files by name.
pub fn fetch(
    lock: &RootLock,
    cache: &Path,
    mirror_override: Option<&str>,
    local_dirs: &[PathBuf],
) -> Result<Inputs> {
    obtain(lock, cache, mirror_override, local_dirs, true)
}

/// [`fetch`] without the network (`--offline`): every input must be in `cache` or one of
/// `local_dirs`; the first that is not is [`ToolrootError::Offline`].
pub fn fetch_offline(lock: &RootLock, cache: &Path, local_dirs: &[PathBuf]) -> Result<Inputs> {
    obtain(lock, cache, None, local_dirs, false)
}

fn obtain(
    lock: &RootLock,
    cache: &Path,
    mirror_override: Option<&str>,
    local_dirs: &[PathBuf],
    network: bool,
) -> Result<Inputs> {
    lock.validate("the lock")?;
    let blobs = cache.join(toolroot::CACHE_BLOBS_DIR);
    kiln_core::fsx::create_dir_all(&blobs).map_err(ToolrootError::io("creating", &blobs))?;
    let mut net: Option<Net> = None;
    let mut out = Inputs::default();
    for input in lock.inputs(mirror_override) {
        let dest = blobs.join(&input.sha256);
        if dest.is_file() {
            match check_file(&dest, &input) {
                Ok(()) => {
                    out.files.insert(input.sha256.clone(), dest);
                    continue;
                }
                // A damaged cache entry is only a cache miss: it is replaced below.
                Err(_) => {
                    std::fs::remove_file(&dest).map_err(ToolrootError::io("removing", &dest))?;
                }
            }
        }
        let local = local_dirs
            .iter()
            .map(|d| d.join(&input.file_name))
            .find(|p| p.is_file());
        match local {
            Some(src) => {
                let mut f =
                    std::fs::File::open(&src).map_err(ToolrootError::io("opening", &src))?;
                let mut tmp = Download::new(&blobs)?;
                io::copy(&mut f, &mut tmp).map_err(ToolrootError::io("copying", &src))?;
                tmp.finish(&input, &src.display().to_string(), &dest)?;
            }
            None if !network => {
                return Err(ToolrootError::Offline {
                    input: input.label.clone(),
                    url: input.url.clone(),
                });
            }
            None => {
                let net = net.get_or_insert_with(Net::new);
                let mut tmp = Download::new(&blobs)?;
                net.get_to(&input.url, DOWNLOAD_LIMIT, &mut tmp)?;
                tmp.finish(&input, &input.url, &dest)?;
                out.downloaded += 1;
            }
        }
        out.files.insert(input.sha256.clone(), dest);
    }
    Ok(out)
}

/// Checks a file against an input's pin: size (when pinned), then sha256.
pub(crate) fn check_file(path: &Path, input: &InputRef) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(ToolrootError::io("reading", path))?;
    if let Some(size) = input.size
        && meta.len() != size
    {
        return Err(ToolrootError::SizeMismatch {
            input: input.label.clone(),
            source_name: path.display().to_string(),
            expected: size,
            found: meta.len(),
        });
    }
    let d = Digest::of_file(path).map_err(ToolrootError::io("hashing", path))?;
    if d.hex() != input.sha256 {
        return Err(ToolrootError::DigestMismatch {
            input: input.label.clone(),
            source_name: path.display().to_string(),
            expected: input.sha256.clone(),
            found: d.hex(),
        });
    }
    Ok(())
}

/// A temporary file in the cache, hashed as it is written; removed unless
/// [`Download::finish`] renames it into place.
struct Download {
    w: Option<HashingWriter<io::BufWriter<tempfile::NamedTempFile>>>,
}

impl Download {
    fn new(dir: &Path) -> Result<Self> {
        let tmp = tempfile::Builder::new()
            .prefix(".fetch-")
            .tempfile_in(dir)
            .map_err(ToolrootError::io("creating a temporary file in", dir))?;
        Ok(Download {
            w: Some(HashingWriter::new(io::BufWriter::with_capacity(
                1 << 20,
                tmp,
            ))),
        })
    }

    /// Checks the bytes written against the pin and, only if they match, renames them to
    /// `dest`. `source` names where they came from in the error.
    fn finish(mut self, input: &InputRef, source: &str, dest: &Path) -> Result<()> {
        let w = self.w.take().expect("download open until finished");
        let (digest, size, buf) = w.finish();
        let tmp = buf
            .into_inner()
            .map_err(|e| ToolrootError::io("writing", dest)(e.into_error()))?;
        if let Some(want) = input.size
            && want != size
        {
            return Err(ToolrootError::SizeMismatch {
                input: input.label.clone(),
                source_name: source.to_string(),
                expected: want,
                found: size,
            });
        }
        if digest.hex() != input.sha256 {
            return Err(ToolrootError::DigestMismatch {
                input: input.label.clone(),
                source_name: source.to_string(),
                expected: input.sha256.clone(),
                found: digest.hex(),
            });
        }
        tmp.as_file()
            .sync_all()
            .map_err(ToolrootError::io("syncing", tmp.path()))?;
        kiln_core::fsx::set_mode(tmp.path(), 0o644)
            .map_err(ToolrootError::io("setting the mode of", tmp.path()))?;
        tmp.persist(dest)
            .map_err(|e| ToolrootError::io("renaming into", dest)(e.error))?;
        Ok(())
    }
}

impl Write for Download {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.w.as_mut().expect("open").write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.w.as_mut().expect("open").flush()
    }
}

impl Sink for Download {
    fn reset(&mut self) -> io::Result<()> {
        let w = self.w.take().expect("open");
        let (_, _, buf) = w.finish();
        let mut tmp = buf.into_inner().map_err(|e| e.into_error())?;
        tmp.as_file().set_len(0)?;
        tmp.seek(io::SeekFrom::Start(0))?;
        self.w = Some(HashingWriter::new(io::BufWriter::with_capacity(
            1 << 20,
            tmp,
        )));
        Ok(())
    }
    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.write_all(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::tests::sample;

    /// A lock whose one Debian package is `bytes` named `a_1_amd64.deb`, and no Rust
    /// component in the way (its file is provided too).
    fn setup(bytes: &[u8], pinned: &[u8]) -> (tempfile::TempDir, RootLock) {
        let d = tempfile::tempdir().unwrap();
        let local = d.path().join("local");
        std::fs::create_dir_all(&local).unwrap();
        std::fs::write(local.join("a_1_amd64.deb"), bytes).unwrap();
        std::fs::write(
            local.join("rustc-1.0.0-x86_64-unknown-linux-gnu.tar.xz"),
            b"rs",
        )
        .unwrap();
        let mut lock = sample();
        lock.debian.packages.truncate(1);
        lock.debian.packages[0].sha256 = Digest::of(pinned).hex();
        lock.debian.packages[0].size = pinned.len() as u64;
        lock.rust.components[0].sha256 = Digest::of(b"rs").hex();
        lock.rust.components[0].size = Some(2);
        (d, lock)
    }

    #[test]
    fn local_files_are_verified_into_the_cache() {
        let (d, lock) = setup(b"deb!", b"deb!");
        let cache = d.path().join("cache");
        let inputs = fetch(&lock, &cache, None, &[d.path().join("local")]).unwrap();
        assert_eq!(inputs.len(), 2);
        assert_eq!(inputs.downloaded(), 0);
        let p = inputs.path(&Digest::of(b"deb!").hex()).unwrap();
        assert_eq!(std::fs::read(p).unwrap(), b"deb!");
        assert!(p.starts_with(&cache));
        // Second run: from the cache, without the local directory.
        let again = fetch(&lock, &cache, None, &[]).unwrap();
        assert_eq!(again, inputs);
    }

    #[test]
    fn mismatch_is_an_error_and_leaves_nothing() {
        let (d, lock) = setup(b"evil", b"good");
        let cache = d.path().join("cache");
        let e = fetch(&lock, &cache, None, &[d.path().join("local")]).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, ToolrootError::DigestMismatch { .. }), "{msg}");
        assert!(
            msg.contains("`a` 1") && msg.contains("a_1_amd64.deb"),
            "{msg}"
        );
        assert!(
            msg.contains(&Digest::of(b"good").hex()) && msg.contains(&Digest::of(b"evil").hex()),
            "{msg}"
        );
        assert!(kiln_core::Hint::hint(&e).unwrap().contains("mirror"));
        let left: Vec<_> = std::fs::read_dir(cache.join("sha256"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy() != Digest::of(b"rs").hex())
            .collect();
        assert!(left.is_empty(), "left in the cache: {left:?}");
        // A wrong size is caught the same way.
        let (d, mut lock) = setup(b"good!", b"good");
        lock.debian.packages[0].size = 5;
        let e = fetch(
            &lock,
            &d.path().join("cache"),
            None,
            &[d.path().join("local")],
        )
        .unwrap_err();
        assert!(matches!(e, ToolrootError::DigestMismatch { .. }), "{e}");
    }

    #[test]
    fn a_damaged_cache_entry_is_replaced() {
        let (d, lock) = setup(b"deb!", b"deb!");
        let cache = d.path().join("cache");
        fetch(&lock, &cache, None, &[d.path().join("local")]).unwrap();
        let entry = cache.join("sha256").join(Digest::of(b"deb!").hex());
        std::fs::write(&entry, b"rot!").unwrap();
        fetch(&lock, &cache, None, &[d.path().join("local")]).unwrap();
        assert_eq!(std::fs::read(&entry).unwrap(), b"deb!");
    }
}
