//! The hashing pass: every file is hashed once (identical pairs are settled there), small
//! files are kept in memory and large ones only by their head; the two sides of a large
//! pair are hashed (and, when they surely differ, inflated) on two threads.

use std::borrow::Cow;
use std::io::Read;
use std::path::Path;

use kiln_core::Digest;

use crate::error::{Result, io};

use super::Side;
use super::gzip::inflate_file;
use super::kind::{kind_of, kind_of_head};
use super::listing::Listed;

/// Files up to this size are kept in memory by [`scan`]; larger ones are read again only
/// if they differ (and then streamed where their type allows).
pub(super) const KEEP_WHOLE: u64 = 64 << 10;
/// Enough of a file's start to tell gzip, ELF and tar apart (see [`kind_of_head`]).
const HEAD: usize = 512;

/// One file after its hashing pass: its [`Side`], and its bytes when small, else its head.
pub(super) struct Scanned {
    pub(super) side: Side,
    pub(super) head: Vec<u8>,
    pub(super) whole: bool,
    /// A symlink: `head` is its target.
    pub(super) link: bool,
}

/// Hashes a file in one streaming pass, keeping its bytes if it is small and its first
/// [`HEAD`] bytes otherwise, so a large file that is identical is never held in memory.
/// A file the listing already read is hashed from those bytes instead of read again.
pub(super) fn scan(l: &Listed) -> Result<Scanned> {
    if let Some(target) = &l.link {
        let target = target.as_os_str().as_encoded_bytes().to_vec();
        let mut named = b"symlink\0".to_vec();
        named.extend_from_slice(&target);
        return Ok(Scanned {
            side: Side {
                path: l.rel.clone(),
                sha256: Digest::of(&named).to_string(),
                size: target.len() as u64,
            },
            head: target,
            whole: true,
            link: true,
        });
    }
    if let Some(bytes) = &l.read {
        let whole = bytes.len() as u64 <= KEEP_WHOLE;
        let keep = if whole { bytes.len() } else { HEAD };
        return Ok(Scanned {
            side: Side {
                path: l.rel.clone(),
                sha256: Digest::of(bytes).to_string(),
                size: bytes.len() as u64,
            },
            head: bytes[..keep.min(bytes.len())].to_vec(),
            whole,
            link: false,
        });
    }
    let meta = std::fs::metadata(&l.abs).map_err(io("cannot stat", &l.abs))?;
    let mut f = std::fs::File::open(&l.abs).map_err(io("cannot read", &l.abs))?;
    let mut h = kiln_core::HashingWriter::new(std::io::sink());
    let whole = meta.len() <= KEEP_WHOLE;
    let mut head = Vec::with_capacity(if whole { meta.len() as usize } else { HEAD });
    let mut buf = vec![0u8; 64 << 10];
    let mut total = 0usize;
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io("cannot read", &l.abs)(e)),
        };
        let chunk = &buf[..n];
        std::io::Write::write_all(&mut h, chunk).map_err(io("cannot read", &l.abs))?;
        let keep = if whole {
            n
        } else {
            HEAD.saturating_sub(total).min(n)
        };
        head.extend_from_slice(&chunk[..keep]);
        total += n;
    }
    // A file that grew past KEEP_WHOLE while being read is not whole; one that shrank is.
    let whole = whole && head.len() == total;
    if !whole {
        head.truncate(HEAD);
    }
    Ok(Scanned {
        side: Side {
            path: l.rel.clone(),
            sha256: h.finish().0.to_string(),
            size: meta.len(),
        },
        head,
        whole,
        link: false,
    })
}

impl Scanned {
    /// The file's type, as [`kind_of`] of its whole bytes would say.
    pub(super) fn kind(&self, abs: &Path) -> Result<&'static str> {
        if self.link {
            return Ok("symlink");
        }
        if self.whole {
            return Ok(kind_of(&self.head));
        }
        match kind_of_head(&self.head) {
            Some(k) => Ok(k),
            None => Ok(kind_of(&self.bytes(abs)?)),
        }
    }

    /// The file's whole bytes.
    pub(super) fn bytes(&self, abs: &Path) -> Result<Cow<'_, [u8]>> {
        if self.whole {
            Ok(Cow::Borrowed(&self.head))
        } else {
            Ok(Cow::Owned(
                std::fs::read(abs).map_err(io("cannot read", abs))?,
            ))
        }
    }
}

/// Files at least this large are hashed on two threads, one per side: above it, hashing
/// costs more than starting a thread.
pub(super) const PARALLEL_SCAN: u64 = 256 << 10;

/// Runs `a` and `b`, `b` on another core if one is free (rayon's work stealing: if no
/// worker has taken `b` when `a` is done, this thread runs it, so a busy machine costs no
/// waiting). The results are returned in place, so the order of everything is unchanged.
pub(super) fn both<A: Send, B: Send>(
    a: impl FnOnce() -> A + Send,
    b: impl FnOnce() -> B + Send,
) -> (A, B) {
    rayon::join(a, b)
}

/// What [`scan_ahead`] returns: the scan, and the inflated bytes when inflated ahead.
pub(super) type ScannedAhead = (Scanned, Option<std::io::Result<Vec<u8>>>);

/// [`scan`], then, if `inflate` and the file is a gzip stream too large to be kept whole,
/// [`inflate_file`] of it.
pub(super) fn scan_ahead(l: &Listed, inflate: bool, limit: u64) -> Result<ScannedAhead> {
    let s = scan(l)?;
    let gz = !s.whole && kind_of_head(&s.head) == Some("gzip");
    let inflated = (inflate && gz).then(|| inflate_file(&l.abs, s.side.size, limit));
    Ok((s, inflated))
}

pub(super) fn size_of(l: &Listed) -> u64 {
    std::fs::metadata(&l.abs).map_or(0, |m| m.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::fixtures::{gz, tar_of};

    #[test]
    fn scan_hashes_and_keeps_small_files_whole_and_heads_of_large_ones() {
        let d = tempfile::tempdir().unwrap();
        let small = br#"{"a": 1}"#.to_vec();
        let big_json = format!("[{}0]", "1,".repeat(40_000)).into_bytes();
        let big_gz = gz(&(0..100_000u32)
            .flat_map(|i| i.to_le_bytes())
            .collect::<Vec<u8>>());
        let big_text = "text line\n".repeat(10_000).into_bytes();
        let mut big_bytes = vec![0xffu8; 100_000];
        big_bytes[5] = 0;
        let big_tar = tar_of(&[("f", 0, 0o644, &[b'a'; 70_000])]);
        for (name, bytes) in [
            ("small", &small),
            ("big_json", &big_json),
            ("big_gz", &big_gz),
            ("big_text", &big_text),
            ("big_bytes", &big_bytes),
            ("big_tar", &big_tar),
        ] {
            let abs = d.path().join(name);
            std::fs::write(&abs, bytes).unwrap();
            let mut l = Listed {
                logical: name.into(),
                rel: name.into(),
                abs: abs.clone(),
                read: None,
                link: None,
            };
            let s = scan(&l).unwrap();
            // Bytes already read by the listing scan to the same result.
            l.read = Some(bytes.clone());
            let r = scan(&l).unwrap();
            assert_eq!(
                (&r.side, &r.head, r.whole),
                (&s.side, &s.head, s.whole),
                "{name}"
            );
            assert_eq!(s.side.sha256, Digest::of(bytes).to_string(), "{name}");
            assert_eq!(s.side.size, bytes.len() as u64, "{name}");
            assert_eq!(s.whole, bytes.len() as u64 <= KEEP_WHOLE, "{name}");
            let head = if s.whole { bytes.len() } else { HEAD };
            assert_eq!(s.head, bytes[..head], "{name}");
            assert_eq!(s.kind(&abs).unwrap(), kind_of(bytes), "{name}");
            assert_eq!(&*s.bytes(&abs).unwrap(), bytes.as_slice(), "{name}");
        }
    }
}
