//! Gzip streams (image layers): inflating them, bounded by the inflate limit, and comparing
//! what they inflate to; two streams that inflate alike differ in their header or their
//! compressor.

use std::io::Read;
use std::path::Path;

use crate::explain::Cause;

use super::{Differ, MAX_INFLATE, join};

/// Capacity for inflating a gzip stream: the uncompressed size its trailer states (ISIZE,
/// the last member's size mod 2^32), only as a hint — capped by what deflate can expand
/// `compressed` bytes to (1032:1) and by [`MAX_INFLATE`]; the buffer still grows if needed.
fn inflate_hint(trailer: Option<[u8; 4]>, compressed: u64) -> usize {
    let claimed = trailer.map_or(0, |t| u64::from(u32::from_le_bytes(t)));
    let cap = compressed.saturating_mul(1032).min(MAX_INFLATE);
    usize::try_from(claimed.min(cap)).unwrap_or(0)
}

/// Inflates every gzip member `r` holds into a buffer of `hint` bytes' capacity; a stream
/// that inflates to more than `limit` bytes is an error of kind `FileTooLarge` (comparing
/// truncated prefixes would call two different layers identical).
fn inflate_from(r: impl Read, hint: usize, limit: u64) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    // Only a hint: if the allocator refuses, grow as needed instead.
    let _ = out.try_reserve_exact(hint.min(usize::try_from(limit).unwrap_or(usize::MAX)));
    flate2::read::MultiGzDecoder::new(r)
        .take(limit.saturating_add(1))
        .read_to_end(&mut out)?;
    if out.len() as u64 > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::FileTooLarge,
            format!("inflates to more than {limit} bytes"),
        ));
    }
    Ok(out)
}

/// Whether inflating stopped at the limit.
pub(super) fn too_large<T>(r: &std::io::Result<T>) -> bool {
    r.as_ref()
        .is_err_and(|e| e.kind() == std::io::ErrorKind::FileTooLarge)
}

fn inflate_bytes(x: &[u8], limit: u64) -> std::io::Result<Vec<u8>> {
    let trailer = x.len().checked_sub(4).and_then(|i| x[i..].try_into().ok());
    inflate_from(x, inflate_hint(trailer, x.len() as u64), limit)
}

/// [`inflate_bytes`] of a file's contents, streamed from disk rather than read whole.
pub(super) fn inflate_file(path: &Path, size: u64, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Seek, SeekFrom};
    let mut f = std::fs::File::open(path)?;
    let mut trailer = None;
    if size >= 4 {
        let mut t = [0u8; 4];
        f.seek(SeekFrom::End(-4))?;
        f.read_exact(&mut t)?;
        f.seek(SeekFrom::Start(0))?;
        trailer = Some(t);
    }
    inflate_from(f, inflate_hint(trailer, size), limit)
}

impl Differ<'_> {
    pub(super) fn gzip(&mut self, loc: &str, a: &[u8], b: &[u8], depth: usize) {
        let limit = self.hints.inflate_limit();
        match (inflate_bytes(a, limit), inflate_bytes(b, limit)) {
            (Ok(ia), Ok(ib)) => self.inflated(loc, a, b, &ia, &ib, depth),
            (x, y) if too_large(&x) || too_large(&y) => self.too_large(loc),
            _ => self.bytes(loc, a, b),
        }
    }

    /// Two gzip streams at least one of which inflates past the limit: they differ, and
    /// no more can be said without inflating them whole.
    pub(super) fn too_large(&mut self, loc: &str) {
        self.push(
            join(loc, "gzip"),
            format!(
                "too large to compare: inflates to more than {} bytes (the compressed bytes differ)",
                self.hints.inflate_limit()
            ),
            None,
            None,
            Cause::Unknown,
            None,
        );
    }

    /// Two gzip streams, inflated: `a` and `b` are the compressed bytes or at least their
    /// first 10 (the header).
    pub(super) fn inflated(
        &mut self,
        loc: &str,
        a: &[u8],
        b: &[u8],
        ia: &[u8],
        ib: &[u8],
        depth: usize,
    ) {
        if ia == ib {
            let hdr = a.len() >= 10 && b.len() >= 10 && a[..10] != b[..10];
            let (what, cause) = if hdr && a[4..8] != b[4..8] {
                (
                    "gzip header mtime differs, content identical",
                    Cause::Timestamp,
                )
            } else {
                (
                    "compressed bytes differ, uncompressed content identical (compressor or its settings)",
                    Cause::Toolchain,
                )
            };
            self.push(join(loc, "gzip"), what, None, None, cause, None);
        } else {
            self.content(loc, ia, ib, depth + 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::diff_bytes;
    use crate::diff::diff_dirs;
    use crate::diff::fixtures::{gz, h, tar_of};
    use crate::explain::Hints;
    use kiln_core::Digest;

    #[test]
    fn gzip_recursion_and_digest_named_entries() {
        use std::io::Write;
        let gz = |b: &[u8]| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(b).unwrap();
            e.finish().unwrap()
        };
        let (ia, ib) = (
            tar_of(&[("f", 1, 0o644, b"x")]),
            tar_of(&[("f", 2, 0o644, b"x")]),
        );
        let d = diff_bytes(&gz(&ia), &gz(&ib), &h());
        assert_eq!(d.len(), 1);
        assert_eq!(
            (d[0].location.as_str(), d[0].cause),
            ("f ▸ mtime", Cause::Timestamp)
        );

        let (la, lb) = (gz(&ia), gz(&ib));
        let (ha, hb) = (Digest::of(&la).hex(), Digest::of(&lb).hex());
        let a = tar_of(&[(&format!("blobs/sha256/{ha}"), 0, 0o644, &la)]);
        let b = tar_of(&[(&format!("blobs/sha256/{hb}"), 0, 0o644, &lb)]);
        let d = diff_bytes(&a, &b, &h());
        assert!(d.iter().all(|d| d.cause == Cause::Derived), "{d:#?}");
        assert_eq!(d.len(), 2);
    }

    #[test]
    fn inflate_hint_trusts_the_trailer_only_within_bounds() {
        assert_eq!(inflate_hint(None, 100), 0);
        assert_eq!(inflate_hint(Some(1000u32.to_le_bytes()), 100), 1000);
        // Deflate expands at most 1032:1; a larger claim is capped, not allocated.
        assert_eq!(inflate_hint(Some(u32::MAX.to_le_bytes()), 10), 10_320);
        assert_eq!(
            inflate_hint(Some(u32::MAX.to_le_bytes()), u64::MAX) as u64,
            MAX_INFLATE
        );
    }

    #[test]
    fn inflating_files_and_bytes_agree() {
        let d = tempfile::tempdir().unwrap();
        let body: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let one = gz(&body);
        let mut two = gz(&body[..1000]);
        two.extend(gz(&body[1000..]));
        // A trailer that lies about the size changes nothing but the first allocation.
        let mut lying = one.clone();
        let n = lying.len();
        lying[n - 4..].copy_from_slice(&7u32.to_le_bytes());
        for (name, bytes) in [("one", &one), ("two", &two)] {
            let p = d.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            assert_eq!(
                inflate_file(&p, bytes.len() as u64, MAX_INFLATE).unwrap(),
                body,
                "{name}"
            );
            assert_eq!(inflate_bytes(bytes, MAX_INFLATE).unwrap(), body, "{name}");
        }
        // The lying trailer is also a CRC/size mismatch: both paths refuse it alike.
        let p = d.path().join("lying");
        std::fs::write(&p, &lying).unwrap();
        assert!(inflate_file(&p, lying.len() as u64, MAX_INFLATE).is_err());
        assert!(inflate_bytes(&lying, MAX_INFLATE).is_err());
        // Truncated and tiny inputs fail without panicking.
        for bad in [&one[..one.len() / 2], &one[..3], &[][..]] {
            let p = d.path().join("bad");
            std::fs::write(&p, bad).unwrap();
            assert!(inflate_file(&p, bad.len() as u64, MAX_INFLATE).is_err());
            assert!(inflate_bytes(bad, MAX_INFLATE).is_err());
        }
    }

    #[test]
    fn a_difference_past_the_inflate_limit_is_too_large_not_toolchain() {
        // Equal for the first 4096 bytes, different after: inflating only up to a limit
        // of 4096 would see two identical streams and blame the compressor.
        let mut x = vec![7u8; 8192];
        let a = gz(&x);
        x[6000] = 8;
        let b = gz(&x);
        let hints = Hints {
            max_inflate: Some(4096),
            ..h()
        };
        let diffs = diff_bytes(&a, &b, &hints);
        assert_eq!(diffs.len(), 1, "{diffs:?}");
        assert!(
            diffs[0].what.starts_with("too large to compare"),
            "{diffs:?}"
        );
        assert_ne!(diffs[0].cause, Cause::Toolchain);
        // Within the limit, the same pair is explained by content.
        let diffs = diff_bytes(&a, &b, &h());
        assert!(
            diffs.iter().all(|d| !d.what.contains("too large")),
            "{diffs:?}"
        );
        // Large files streamed from disk take the same path.
        let dir = tempfile::tempdir().unwrap();
        let big = |fill: u8| gz(&vec![fill; 600_000]);
        for (side, fill) in [("a", 1u8), ("b", 2u8)] {
            let t = dir.path().join(side);
            std::fs::create_dir_all(&t).unwrap();
            std::fs::write(t.join("layer.gz"), big(fill)).unwrap();
        }
        let hints = Hints {
            max_inflate: Some(1000),
            ..h()
        };
        let d = diff_dirs(&dir.path().join("a"), &dir.path().join("b"), &hints).unwrap();
        assert!(
            d[0].differences[0].what.starts_with("too large to compare"),
            "{:?}",
            d[0].differences
        );
    }
}
