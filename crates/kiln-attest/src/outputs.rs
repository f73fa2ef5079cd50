//! The outputs beside the layout that `verify` checks byte for byte: the two archives
//! (`image.oci.tar`, `image.docker.tar`) and `summary.json`.
//!
//! Neither is signed (they are cut after signing, and the archives carry the signatures),
//! so their integrity rests on being *derived*: the archives must be exactly the tar streams
//! kiln writes from the verified layout (GNU headers, sorted entries, mtime =
//! `SOURCE_DATE_EPOCH` from the signed provenance, 0:0, 0644/0755, two zero blocks), and the
//! summary must be exactly what the verified layout, the signed provenance and the files on
//! disk say. Comparing whole bytes rather than parsed fields leaves no byte unchecked —
//! header padding, the checksum field's spelling and the trailer included.

use std::collections::BTreeMap;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

const BLOCK: usize = 512;

/// The content of one archive entry.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    /// A directory (`name/`, mode 0755).
    Dir,
    /// A file whose bytes are those of this (already verified) file, mode 0644.
    File(PathBuf),
    /// A file with these bytes, mode 0644.
    Bytes(Vec<u8>),
}

/// `files` (archive path → content) plus their implied parent directories, in kiln's tar
/// order: by the bytes of the path without a directory's trailing `/`.
pub(crate) fn entries(files: BTreeMap<String, Source>) -> Vec<(String, Source)> {
    let mut all: BTreeMap<String, Source> = BTreeMap::new();
    for (path, src) in files {
        let mut p = path.as_str();
        while let Some(pos) = p.rfind('/') {
            p = &p[..pos];
            all.entry(p.to_string()).or_insert(Source::Dir);
        }
        all.insert(path, src);
    }
    all.into_iter().collect()
}

// The `Err(String)`s of this module are the detail of a FAIL line of `verify`'s report
// (`verify::Outcome`): the first difference between an archive and the bytes the verified
// layout gives, read by a person, not an error with a source of its own.
/// The header kiln's layer writer emits for an entry (see `kiln-oci`'s `layer.rs`): GNU,
/// every field set, nothing from the host.
fn header(name: &str, kind: u8, mode: u32, size: u64, sde: u64) -> Result<tar::Header, String> {
    if name.len() > 100 {
        return Err(format!("entry name `{name}` is longer than kiln writes"));
    }
    let mut h = tar::Header::new_gnu();
    {
        let old = h.as_old_mut();
        old.name = [0; 100];
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        old.linkname = [0; 100];
    }
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_size(size);
    h.set_mtime(sde);
    h.set_entry_type(tar::EntryType::new(kind));
    if let Some(gnu) = h.as_gnu_mut() {
        gnu.uname = [0; 32];
        gnu.gname = [0; 32];
        gnu.dev_major = [0; 8];
        gnu.dev_minor = [0; 8];
        gnu.atime = [0; 12];
        gnu.ctime = [0; 12];
    }
    h.set_cksum();
    Ok(h)
}

fn source_len(src: &Source) -> Result<u64, String> {
    Ok(match src {
        Source::Dir => 0,
        Source::Bytes(b) => b.len() as u64,
        Source::File(p) => std::fs::metadata(p)
            .map_err(|e| format!("{}: {e}", p.display()))?
            .len(),
    })
}

fn entry_header(path: &str, src: &Source, sde: u64) -> Result<tar::Header, String> {
    match src {
        Source::Dir => header(&format!("{path}/"), b'5', 0o755, 0, sde),
        _ => header(path, b'0', 0o644, source_len(src)?, sde),
    }
}

/// Reads an archive sequentially, comparing it with expected bytes.
struct Cmp {
    r: BufReader<std::fs::File>,
    offset: u64,
    buf: Vec<u8>,
}

impl Cmp {
    /// Reads `expected.len()` bytes and compares them.
    fn expect(&mut self, expected: &[u8], what: &str) -> Result<(), String> {
        self.buf.resize(expected.len(), 0);
        read_full(&mut self.r, &mut self.buf)
            .map_err(|e| format!("{what} at offset {}: {e}", self.offset))?;
        if let Some(i) = self.buf.iter().zip(expected).position(|(a, b)| a != b) {
            return Err(format!(
                "{what} differs from what the layout gives at offset {}",
                self.offset + i as u64
            ));
        }
        self.offset += expected.len() as u64;
        Ok(())
    }
}

/// Compares the archive at `archive` with the tar stream of `entries`, byte for byte.
/// The error names the entry and the offset of the first difference.
pub(crate) fn compare(
    archive: &Path,
    entries: &[(String, Source)],
    sde: u64,
) -> Result<(), String> {
    let f = std::fs::File::open(archive).map_err(|e| format!("cannot read: {e}"))?;
    let mut c = Cmp {
        r: BufReader::with_capacity(1 << 16, f),
        offset: 0,
        buf: Vec::new(),
    };
    let mut want = vec![0u8; 1 << 16];
    for (path, src) in entries {
        let h = entry_header(path, src, sde)?;
        c.expect(h.as_bytes(), &format!("the header of `{path}`"))?;
        let len = source_len(src)?;
        match src {
            Source::Dir => {}
            Source::Bytes(b) => c.expect(b, &format!("the content of `{path}`"))?,
            Source::File(p) => {
                let mut sf = std::fs::File::open(p).map_err(|e| format!("{}: {e}", p.display()))?;
                let mut left = len;
                while left > 0 {
                    let n = left.min(want.len() as u64) as usize;
                    read_full(&mut sf, &mut want[..n])
                        .map_err(|e| format!("{}: {e}", p.display()))?;
                    c.expect(&want[..n], &format!("the content of `{path}`"))?;
                    left -= n as u64;
                }
            }
        }
        let pad = (BLOCK as u64 - len % BLOCK as u64) % BLOCK as u64;
        c.expect(
            &vec![0u8; pad as usize],
            &format!("the padding after `{path}`"),
        )?;
    }
    c.expect(&[0u8; 2 * BLOCK], "the end-of-archive blocks")?;
    let mut extra = [0u8; 1];
    match c.r.read(&mut extra) {
        Ok(0) => Ok(()),
        Ok(_) => Err(format!(
            "unexpected data after the end of the archive at offset {}",
            c.offset
        )),
        Err(e) => Err(format!("cannot read: {e}")),
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<()> {
    r.read_exact(buf).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            std::io::Error::new(e.kind(), "the archive ends early (truncated)")
        } else {
            e
        }
    })
}

/// The tar stream of `entries` (for tests that make outputs without kiln-build).
#[cfg(test)]
pub(crate) fn write(entries: &[(String, Source)], sde: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for (path, src) in entries {
        out.extend_from_slice(entry_header(path, src, sde).unwrap().as_bytes());
        let data = match src {
            Source::Dir => Vec::new(),
            Source::Bytes(b) => b.clone(),
            Source::File(p) => std::fs::read(p).unwrap(),
        };
        out.extend_from_slice(&data);
        out.resize(out.len().div_ceil(BLOCK) * BLOCK, 0);
    }
    out.extend_from_slice(&[0u8; 2 * BLOCK]);
    out
}
