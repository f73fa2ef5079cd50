//! Tar archives (layer contents): entries paired by name (digests normalized, so a renamed
//! blob pairs with its counterpart), then compared by header field and by content.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::Read;

use crate::explain::Cause;

use super::{Differ, join, sha};

#[derive(Debug)]
struct TarEntry<'a> {
    path: String,
    kind: u8,
    mode: u32,
    uid: u64,
    gid: u64,
    uname: String,
    gname: String,
    mtime: u64,
    size: u64,
    link: String,
    /// The entry's content: a slice of the archive when stored contiguously, else read out.
    data: Cow<'a, [u8]>,
}

fn read_tar(bytes: &[u8]) -> std::result::Result<Vec<TarEntry<'_>>, String> {
    let mut ar = tar::Archive::new(bytes);
    let mut out = Vec::new();
    for e in ar.entries().map_err(|e| e.to_string())? {
        let mut e = e.map_err(|e| e.to_string())?;
        let h = e.header().clone();
        let path = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        let link = e
            .link_name_bytes()
            .map(|l| String::from_utf8_lossy(&l).into_owned())
            .unwrap_or_default();
        // A non-sparse entry reads as exactly `size` bytes from its file position, so
        // borrow them; the archive skips them as if read. Sparse entries (holes read as
        // zeros) and entries running past the end are read, as before.
        let at = usize::try_from(e.raw_file_position()).ok();
        let len = usize::try_from(e.size()).ok();
        let range = at
            .zip(len)
            .and_then(|(at, len)| Some(at..at.checked_add(len)?));
        let data = match range {
            Some(r) if !h.entry_type().is_gnu_sparse() && r.end <= bytes.len() => {
                Cow::Borrowed(&bytes[r])
            }
            _ => {
                let mut data = Vec::new();
                e.read_to_end(&mut data).map_err(|e| e.to_string())?;
                Cow::Owned(data)
            }
        };
        out.push(TarEntry {
            path,
            kind: h.entry_type().as_byte(),
            mode: h.mode().unwrap_or(0),
            uid: h.uid().unwrap_or(0),
            gid: h.gid().unwrap_or(0),
            uname: String::from_utf8_lossy(h.username_bytes().unwrap_or_default()).into_owned(),
            gname: String::from_utf8_lossy(h.groupname_bytes().unwrap_or_default()).into_owned(),
            mtime: h.mtime().unwrap_or(0),
            size: h.size().unwrap_or(0),
            link,
            data,
        });
    }
    Ok(out)
}

/// Whether `s` holds a run of at least `n` lowercase hex digits (as a sha256 in a path).
fn has_hex_run(s: &str, n: usize) -> bool {
    let mut run = 0;
    for c in s.bytes() {
        if matches!(c, b'0'..=b'9' | b'a'..=b'f') {
            run += 1;
            if run >= n {
                return true;
            }
        } else {
            run = 0;
        }
    }
    false
}

/// The name a tar entry is paired by: digests replaced by `<digest>` (archives name blobs
/// by digest, so a changed blob would otherwise look like one entry removed and one added).
fn entry_key(path: &str) -> String {
    let mut out = String::new();
    let mut run = String::new();
    for c in path.chars().chain(std::iter::once('\0')) {
        if c.is_ascii_hexdigit() && !c.is_ascii_uppercase() {
            run.push(c);
            continue;
        }
        if run.len() == 64 {
            out.push_str("<digest>");
        } else {
            out.push_str(&run);
        }
        run.clear();
        if c != '\0' {
            out.push(c);
        }
    }
    out
}

impl Differ<'_> {
    /// Two tar archives: entries only one side has, the same entries in another order,
    /// and each common entry by header and content.
    pub(super) fn tar(&mut self, loc: &str, a: &[u8], b: &[u8], depth: usize) {
        let (Ok(ea), Ok(eb)) = (read_tar(a), read_tar(b)) else {
            return self.bytes(loc, a, b);
        };
        let (ka, kb) = (pairing_keys(&ea), pairing_keys(&eb));
        let ma: BTreeMap<&str, &TarEntry> = ka.iter().map(String::as_str).zip(&ea).collect();
        let mb: BTreeMap<&str, &TarEntry> = kb.iter().map(String::as_str).zip(&eb).collect();
        self.tar_only_in_one(loc, &ma, &mb);
        let common_a: Vec<&str> = ka
            .iter()
            .map(String::as_str)
            .filter(|k| mb.contains_key(k))
            .collect();
        let common_b: Vec<&str> = kb
            .iter()
            .map(String::as_str)
            .filter(|k| ma.contains_key(k))
            .collect();
        if common_a != common_b {
            self.push(
                join(loc, "entry order"),
                "same entries in a different order",
                Some(common_a.join(", ")),
                Some(common_b.join(", ")),
                Cause::Ordering,
                Some("file_order".into()),
            );
        }
        for k in common_a {
            self.tar_entry(loc, ma[k], mb[k], depth);
        }
    }

    /// The entries of each archive that the other lacks, A's then B's, each in name order.
    fn tar_only_in_one(
        &mut self,
        loc: &str,
        ma: &BTreeMap<&str, &TarEntry>,
        mb: &BTreeMap<&str, &TarEntry>,
    ) {
        for (k, e) in ma {
            if !mb.contains_key(k) {
                let (cause, var) = crate::explain::classify_token(&e.path, self.hints);
                self.push(
                    join(loc, &e.path),
                    "tar entry only in A",
                    Some(e.path.clone()),
                    None,
                    cause,
                    var,
                );
            }
        }
        for (k, e) in mb {
            if !ma.contains_key(k) {
                let (cause, var) = crate::explain::classify_token(&e.path, self.hints);
                self.push(
                    join(loc, &e.path),
                    "tar entry only in B",
                    None,
                    Some(e.path.clone()),
                    cause,
                    var,
                );
            }
        }
    }

    /// Two entries paired by name: the name itself when a digest in it differs, the
    /// header fields, and the content.
    fn tar_entry(&mut self, loc: &str, x: &TarEntry, y: &TarEntry, depth: usize) {
        let at = join(loc, &x.path);
        if x.path != y.path {
            self.push(
                at.clone(),
                "entry name (a digest) differs",
                Some(x.path.clone()),
                Some(y.path.clone()),
                Cause::Derived,
                None,
            );
        }
        self.tar_headers(&at, x, y);
        if x.data != y.data {
            self.tar_content(&at, x, y, depth);
        }
    }

    /// The header fields of two paired entries, each with the variation that would change
    /// it (mtime: clock, mode: umask, owner: user), and the link target.
    fn tar_headers(&mut self, at: &str, x: &TarEntry, y: &TarEntry) {
        let mut field = |name: &str, va: String, vb: String, cause: Cause, var: Option<&str>| {
            if va != vb {
                self.push(
                    join(at, name),
                    format!("tar header {name} differs"),
                    Some(va),
                    Some(vb),
                    cause,
                    var.map(str::to_string),
                );
            }
        };
        field(
            "type",
            (x.kind as char).to_string(),
            (y.kind as char).to_string(),
            Cause::Unknown,
            None,
        );
        field(
            "mtime",
            x.mtime.to_string(),
            y.mtime.to_string(),
            Cause::Timestamp,
            Some("clock"),
        );
        field(
            "mode",
            format!("{:o}", x.mode),
            format!("{:o}", y.mode),
            Cause::Environment,
            Some("umask"),
        );
        field(
            "uid",
            x.uid.to_string(),
            y.uid.to_string(),
            Cause::Environment,
            Some("user"),
        );
        field(
            "gid",
            x.gid.to_string(),
            y.gid.to_string(),
            Cause::Environment,
            Some("user"),
        );
        field(
            "uname",
            x.uname.clone(),
            y.uname.clone(),
            Cause::Environment,
            Some("user"),
        );
        field(
            "gname",
            x.gname.clone(),
            y.gname.clone(),
            Cause::Environment,
            Some("user"),
        );
        if x.link != y.link {
            let before = self.out.len();
            self.text_findings(
                &join(at, "linkname"),
                "tar header linkname differs",
                &x.link,
                &y.link,
            );
            if self.out.len() == before {
                self.push(
                    join(at, "linkname"),
                    "tar header linkname differs",
                    Some(x.link.clone()),
                    Some(y.link.clone()),
                    Cause::Unknown,
                    None,
                );
            }
        }
    }

    /// The content of two paired entries that differs: a content-addressed blob is
    /// explained by its own diff, anything else is diffed by type.
    fn tar_content(&mut self, at: &str, x: &TarEntry, y: &TarEntry, depth: usize) {
        // Hash only what can be content-addressed: a path naming a digest needs a
        // run of 64 lowercase hex digits; anything else is hashed only if reported.
        let addressed = |e: &TarEntry| {
            if !has_hex_run(&e.path, 64) {
                return None;
            }
            let s = sha(&e.data);
            s.strip_prefix("sha256:")
                .is_some_and(|h| e.path.contains(h))
                .then_some(s)
        };
        if let Some(sa) = addressed(x)
            && let Some(sb) = addressed(y)
        {
            // A content-addressed blob: its own diff (in the layout) explains it.
            self.push(
                join(at, "content"),
                format!(
                    "content-addressed blob differs ({} → {} bytes); see the blob's own entry",
                    x.size, y.size
                ),
                Some(sa),
                Some(sb),
                Cause::Derived,
                None,
            );
        } else {
            let before = self.out.len();
            self.content(at, &x.data, &y.data, depth + 1);
            if self.out.len() == before {
                self.push(
                    join(at, "content"),
                    "content differs",
                    Some(sha(&x.data)),
                    Some(sha(&y.data)),
                    Cause::Unknown,
                    None,
                );
            }
        }
    }
}

/// The names two archives' entries are paired by: [`entry_key`] where that is unique in
/// its archive (so a blob renamed with its digest pairs with its counterpart), else the
/// exact path.
fn pairing_keys(es: &[TarEntry]) -> Vec<String> {
    let raw: Vec<String> = es.iter().map(|e| entry_key(&e.path)).collect();
    let mut seen = BTreeMap::<&str, usize>::new();
    for k in &raw {
        *seen.entry(k).or_default() += 1;
    }
    // Only unique normalized names pair across renames; others pair by exact path.
    es.iter()
        .zip(&raw)
        .map(|(e, k)| {
            if seen[k.as_str()] == 1 {
                k.clone()
            } else {
                e.path.clone()
            }
        })
        .collect::<Vec<_>>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::diff_bytes;
    use crate::diff::fixtures::{h, tar_of};

    #[test]
    fn tar_headers_and_content() {
        let a = tar_of(&[
            ("x", 100, 0o644, b"one /tmp/ab/cd/e"),
            ("y", 5, 0o755, b"same"),
        ]);
        let b = tar_of(&[
            ("x", 100, 0o600, b"one /tmp/zz/cd/e"),
            ("y", 9, 0o755, b"same"),
        ]);
        let d = diff_bytes(&a, &b, &h());
        let got: Vec<(&str, Cause)> = d.iter().map(|d| (d.location.as_str(), d.cause)).collect();
        assert_eq!(
            got,
            [
                ("x ▸ mode", Cause::Environment),
                ("x", Cause::BuildPath),
                ("y ▸ mtime", Cause::Timestamp)
            ]
        );
    }

    #[test]
    fn entry_keys_normalize_digests() {
        let hx = "a".repeat(64);
        assert_eq!(
            entry_key(&format!("blobs/sha256/{hx}")),
            "blobs/sha256/<digest>"
        );
        assert_eq!(entry_key(&format!("{hx}.tar")), "<digest>.tar");
        assert_eq!(entry_key("abc/def"), "abc/def");
    }

    /// What `read_tar` returned before it borrowed: every entry read out through the tar
    /// crate.
    fn read_tar_copying(bytes: &[u8]) -> std::result::Result<Vec<Vec<u8>>, String> {
        let mut ar = tar::Archive::new(bytes);
        let mut out = Vec::new();
        for e in ar.entries().map_err(|e| e.to_string())? {
            let mut e = e.map_err(|e| e.to_string())?;
            let mut data = Vec::new();
            e.read_to_end(&mut data).map_err(|e| e.to_string())?;
            out.push(data);
        }
        Ok(out)
    }

    fn octal(field: &mut [u8], v: u64) {
        let s = format!("{v:0w$o}\0", w = field.len() - 1);
        field.copy_from_slice(s.as_bytes());
    }

    /// A GNU sparse entry: `data` stored, read back after `hole` zero bytes.
    fn sparse_tar(path: &str, hole: u64, data: &[u8]) -> Vec<u8> {
        let mut hd = tar::Header::new_gnu();
        hd.set_path(path).unwrap();
        hd.set_entry_type(tar::EntryType::GNUSparse);
        hd.set_mode(0o644);
        hd.set_size(data.len() as u64);
        let gnu = hd.as_gnu_mut().unwrap();
        octal(&mut gnu.sparse[0].offset, hole);
        octal(&mut gnu.sparse[0].numbytes, data.len() as u64);
        octal(&mut gnu.realsize, hole + data.len() as u64);
        hd.set_cksum();
        let mut b = tar::Builder::new(Vec::new());
        b.append(&hd, data).unwrap();
        b.into_inner().unwrap()
    }

    #[test]
    fn tar_entries_borrowed_read_as_the_tar_crate_reads_them() {
        let long = format!("{}/file.txt", "d".repeat(150));
        let mut b = tar::Builder::new(Vec::new());
        for (path, data) in [
            ("a", &b"alpha"[..]),
            ("empty", &b""[..]),
            (long.as_str(), &[7u8; 1500][..]),
            ("exact", &[1u8; 512][..]),
        ] {
            let mut hd = tar::Header::new_gnu();
            hd.set_mode(0o644);
            hd.set_size(data.len() as u64);
            b.append_data(&mut hd, path, data).unwrap();
        }
        let mut pax = tar::Header::new_ustar();
        pax.set_mode(0o600);
        pax.set_size(3);
        b.append_pax_extensions([("path", &b"pax/named"[..])])
            .unwrap();
        b.append_data(&mut pax, "short", &b"pax"[..]).unwrap();
        let ar = b.into_inner().unwrap();

        let got = read_tar(&ar).unwrap();
        let want = read_tar_copying(&ar).unwrap();
        assert_eq!(got.len(), 5);
        for (g, w) in got.iter().zip(&want) {
            assert!(matches!(g.data, Cow::Borrowed(_)), "{}", g.path);
            assert_eq!(&*g.data, w.as_slice(), "{}", g.path);
        }
        assert_eq!(got[2].path, long);
        assert_eq!(got[4].path, "pax/named");
    }

    #[test]
    fn tar_sparse_entries_are_read_not_borrowed() {
        let ar = sparse_tar("holey", 10, b"hello");
        let got = read_tar(&ar).unwrap();
        assert_eq!(got.len(), 1);
        assert!(matches!(got[0].data, Cow::Owned(_)));
        let mut want = vec![0u8; 10];
        want.extend_from_slice(b"hello");
        assert_eq!(&*got[0].data, want.as_slice());
        assert_eq!(read_tar_copying(&ar).unwrap(), vec![want]);
    }

    #[test]
    fn truncated_tars_fail_as_before() {
        let ar = tar_of(&[("big", 0, 0o644, &[5u8; 1000]), ("next", 0, 0o644, b"x")]);
        // Cut inside the first entry's data, inside its padding, inside the next header.
        for cut in [512 + 600, 512 + 1000 + 10, 1536 + 100] {
            let t = &ar[..cut];
            assert_eq!(
                read_tar(t).is_err(),
                read_tar_copying(t).is_err(),
                "cut at {cut}"
            );
            assert!(read_tar(t).is_err(), "cut at {cut}");
        }
        assert!(read_tar(&ar).is_ok());
    }

    #[test]
    fn hex_runs() {
        assert!(has_hex_run(
            &format!("blobs/sha256/{}", "0a".repeat(32)),
            64
        ));
        assert!(!has_hex_run(&format!("blobs/{}", "0a".repeat(31)), 64));
        assert!(!has_hex_run(&"A".repeat(64), 64));
    }
}
