//! Blob storage in an OCI image layout: `blobs/sha256/<hex>`, always written through a
//! temporary file and a rename so a blob path never holds partial content.

use std::fs::File;
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use kiln_core::{Digest, HashingWriter};

use crate::error::{Error, Result};

/// Where the blob with `digest` lives under `layout`.
pub(crate) fn blob_path(layout: &Path, digest: &Digest) -> PathBuf {
    layout.join("blobs").join("sha256").join(digest.hex())
}

/// A temporary file next to `dir`'s final files, renamed into place once complete.
pub(crate) struct TempFile {
    path: PathBuf,
    file: Option<BufWriter<File>>,
}

impl TempFile {
    pub(crate) fn new(dir: &Path) -> Result<Self> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        kiln_core::fsx::create_dir_all(dir).map_err(Error::io("creating directory", dir))?;
        loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = dir.join(format!(".kiln-tmp-{}-{n}", std::process::id()));
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(f) => {
                    return Ok(TempFile {
                        path,
                        file: Some(BufWriter::with_capacity(1 << 20, f)),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io("creating", path)(e)),
            }
        }
    }

    pub(crate) fn writer(&mut self) -> &mut BufWriter<File> {
        self.file.as_mut().expect("temp file open until persisted")
    }

    /// Flushes, fsyncs, sets mode 0644 and renames onto `dest`.
    pub(crate) fn persist(mut self, dest: &Path) -> Result<()> {
        let w = self.file.take().expect("temp file open until persisted");
        let f = w
            .into_inner()
            .map_err(|e| Error::io("writing", &self.path)(e.into_error()))?;
        f.sync_all().map_err(Error::io("syncing", &self.path))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&self.path, std::fs::Permissions::from_mode(0o644))
                .map_err(Error::io("setting permissions of", &self.path))?;
        }
        std::fs::rename(&self.path, dest).map_err(Error::io("renaming into place", dest))?;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Writes an in-memory blob (JSON) and returns its digest and size.
pub(crate) fn write_blob_bytes(layout: &Path, bytes: &[u8]) -> Result<(Digest, u64)> {
    let digest = Digest::of(bytes);
    let path = blob_path(layout, &digest);
    kiln_core::fsx::write_atomic(&path, bytes).map_err(Error::io("writing", &path))?;
    Ok((digest, bytes.len() as u64))
}

/// Streams a blob produced by `produce` into the layout; the digest names it afterwards.
pub(crate) fn write_blob_stream<T>(
    layout: &Path,
    produce: impl FnOnce(&mut BufWriter<File>) -> Result<T>,
    digest_of: impl FnOnce(&T) -> Digest,
) -> Result<T> {
    let dir = layout.join("blobs").join("sha256");
    let mut tmp = TempFile::new(&dir)?;
    let t = produce(tmp.writer())?;
    let d = digest_of(&t);
    tmp.persist(&blob_path(layout, &d))?;
    Ok(t)
}

/// Copies the blob `digest` from layout `from` to layout `to`, verifying its digest and
/// size on the way (the copy is what gets checked, not an earlier read).
pub(crate) fn copy_blob_verified(from: &Path, to: &Path, digest: &Digest, size: u64) -> Result<()> {
    let src = blob_path(from, digest);
    let mut f = File::open(&src).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => Error::BlobMissing {
            layout: from.to_path_buf(),
            digest: *digest,
            path: src.clone(),
        },
        _ => Error::io("opening", &src)(e),
    })?;
    let dir = to.join("blobs").join("sha256");
    let mut tmp = TempFile::new(&dir)?;
    let mut hw = HashingWriter::new(tmp.writer());
    io::copy(&mut f, &mut hw).map_err(Error::io("copying", &src))?;
    let (actual, len, _) = hw.finish();
    if actual != *digest {
        return Err(Error::BlobDigestMismatch {
            path: src,
            expected: *digest,
            actual,
        });
    }
    if len != size {
        return Err(Error::BlobSizeMismatch {
            path: src,
            expected: size,
            actual: len,
        });
    }
    tmp.persist(&blob_path(to, digest))
}

/// Reads a small blob fully and checks it against its digest (and size, if known).
pub(crate) fn read_blob_verified(
    layout: &Path,
    digest: &Digest,
    size: Option<u64>,
) -> Result<Vec<u8>> {
    let path = blob_path(layout, digest);
    let bytes = std::fs::read(&path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => Error::BlobMissing {
            layout: layout.to_path_buf(),
            digest: *digest,
            path: path.clone(),
        },
        _ => Error::io("reading", &path)(e),
    })?;
    let actual = Digest::of(&bytes);
    if actual != *digest {
        return Err(Error::BlobDigestMismatch {
            path,
            expected: *digest,
            actual,
        });
    }
    if let Some(expected) = size
        && expected != bytes.len() as u64
    {
        return Err(Error::BlobSizeMismatch {
            path,
            expected,
            actual: bytes.len() as u64,
        });
    }
    Ok(bytes)
}

/// Streams a blob through sha256 and checks digest and size.
pub(crate) fn verify_blob_file(layout: &Path, digest: &Digest, size: u64) -> Result<()> {
    let path = blob_path(layout, digest);
    let mut f = File::open(&path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => Error::BlobMissing {
            layout: layout.to_path_buf(),
            digest: *digest,
            path: path.clone(),
        },
        _ => Error::io("opening", &path)(e),
    })?;
    let mut hw = HashingWriter::new(io::sink());
    io::copy(&mut f, &mut hw).map_err(Error::io("reading", &path))?;
    let (actual, len, _) = hw.finish();
    if actual != *digest {
        return Err(Error::BlobDigestMismatch {
            path,
            expected: *digest,
            actual,
        });
    }
    if len != size {
        return Err(Error::BlobSizeMismatch {
            path,
            expected: size,
            actual: len,
        });
    }
    Ok(())
}

/// Writes `bytes` into `dir/name` atomically.
pub(crate) fn write_file_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    kiln_core::fsx::write_atomic(path, bytes).map_err(Error::io("writing", path))
}

/// Parses one JSON document of an image layout; an error names `path`, the JSON path of
/// the value that failed and (in serde's message) the line, column and what was expected.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    path: &Path,
    what: &'static str,
) -> Result<T> {
    let err = |at: String, source| Error::Json {
        path: path.to_path_buf(),
        what,
        at,
        source,
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de)
        .map_err(|e| err(e.path().to_string(), e.into_inner()))?;
    de.end().map_err(|e| err(".".into(), e))?;
    Ok(value)
}
