//! Layers: a set of entries written as a deterministic tar stream.
//!
//! Header rules (every field of every header is set here, nothing comes from the host):
//! * GNU headers (`ustar  \0` magic). Names longer than 100 bytes, and link targets
//!   longer than 100 bytes, are written as GNU `././@LongLink` records (types `L` and `K`)
//!   before the entry — the form GNU tar, Go's `archive/tar`, containers/storage and
//!   docker all read. No PAX records are ever written.
//! * Entries sorted by the bytes of their path (compared without the trailing `/` of
//!   directory names, so `usr/bin` < `usr/bin-x` < `usr/bin/z` and a directory always
//!   precedes its contents); every missing parent directory is added with mode 0755.
//!   Directory names end in `/`.
//! * `mtime` = `SOURCE_DATE_EPOCH` for every entry (caller-supplied times are not kept, so
//!   nothing can be newer than SDE); atime/ctime fields zero; uid/gid 0; uname/gname
//!   empty; device numbers zero.
//! * Modes: directories as given (default 0755); files from [`Layer::add_file`] with no
//!   explicit mode get 0755 if the source has any execute bit, else 0644; explicit modes
//!   keep their permission, setuid/setgid and sticky bits but lose group/other write
//!   (`mode & 0o7755`), so no image file is world-writable by accident; symlinks 0777.
//! * Hard links: all names of one file form a group; the file's content is written under
//!   the group's first name in sort order and the other names link to it, so a link never
//!   precedes its target in the stream (extractors need that).
//! * The stream ends with two zero blocks.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use kiln_core::Digest;

use crate::error::{Error, Result};
use crate::gzip::ParallelGzWriter;

const BLOCK: usize = 512;
const ZERO_BLOCK: [u8; BLOCK] = [0; BLOCK];

/// A layer's contents, kept as a sorted map from image path to entry. File contents are
/// not read until the layer is written, and then streamed.
#[derive(Clone, Debug, Default)]
pub struct Layer {
    entries: BTreeMap<String, Entry>,
}

#[derive(Clone, Debug)]
enum Entry {
    File { source: Source, mode: u32 },
    Dir { mode: u32 },
    Symlink { target: String },
    Hardlink { target: String },
}

#[derive(Clone, Debug)]
enum Source {
    Path(PathBuf),
    Bytes(std::sync::Arc<[u8]>),
}

impl Entry {
    fn kind(&self) -> &'static str {
        match self {
            Entry::File { .. } => "file",
            Entry::Dir { .. } => "directory",
            Entry::Symlink { .. } => "symlink",
            Entry::Hardlink { .. } => "hard link",
        }
    }
}

/// What a written layer is, as a manifest needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerDescriptor {
    /// Digest of the compressed blob (what the manifest references).
    pub digest: Digest,
    /// Digest of the uncompressed tar (what the config's `rootfs.diff_ids` lists).
    pub diff_id: Digest,
    /// Compressed size in bytes.
    pub size: u64,
    /// The layer's media type, e.g. [`crate::MEDIA_TYPE_LAYER_GZIP`].
    pub media_type: String,
}

/// Checks that `path` is relative, '/'-separated and normalized. Image paths name places in
/// the container filesystem, so anything that could escape or be ambiguous is refused.
pub(crate) fn validate_image_path(path: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::InvalidPath {
            path: path.to_string(),
            reason,
        })
    };
    if path.is_empty() {
        return bad("it is empty");
    }
    if path.starts_with('/') {
        return bad("it is absolute");
    }
    if path.contains('\0') {
        return bad("it contains a NUL byte");
    }
    for c in path.split('/') {
        match c {
            "" => return bad("it has an empty component (`//` or a trailing `/`)"),
            "." => return bad("it has a `.` component"),
            ".." => return bad("it has a `..` component"),
            _ => {}
        }
    }
    Ok(())
}

impl Layer {
    /// An empty layer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of entries added explicitly (implied parent directories not counted).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn insert(&mut self, path: &str, entry: Entry) -> Result<()> {
        validate_image_path(path)?;
        if self.entries.contains_key(path) {
            return Err(Error::Duplicate {
                path: path.to_string(),
            });
        }
        // Every existing ancestor must be a directory...
        let mut idx = 0;
        while let Some(pos) = path[idx..].find('/') {
            let parent = &path[..idx + pos];
            if let Some(e) = self.entries.get(parent)
                && !matches!(e, Entry::Dir { .. })
            {
                return Err(Error::ParentNotDir {
                    path: path.to_string(),
                    parent: parent.to_string(),
                    kind: e.kind(),
                });
            }
            idx += pos + 1;
        }
        // ...and a non-directory must not have descendants already.
        if !matches!(entry, Entry::Dir { .. }) {
            let prefix = format!("{path}/");
            if let Some((child, _)) = self.entries.range(prefix.clone()..).next()
                && child.starts_with(&prefix)
            {
                return Err(Error::ParentNotDir {
                    path: child.clone(),
                    parent: path.to_string(),
                    kind: entry.kind(),
                });
            }
        }
        self.entries.insert(path.to_string(), entry);
        Ok(())
    }

    /// Adds a regular file whose content is streamed from `source` when the layer is
    /// written. `mode: None` takes 0755/0644 from the source's execute bits (so results do
    /// not depend on the host umask); `Some(m)` is used as `m & 0o7755`.
    pub fn add_file(&mut self, image_path: &str, source: PathBuf, mode: Option<u32>) -> Result<()> {
        let meta = std::fs::metadata(&source).map_err(Error::io("reading metadata of", &source))?;
        if !meta.is_file() {
            return Err(Error::NotAFile { path: source });
        }
        let mode = match mode {
            Some(m) => explicit_mode(image_path, m)?,
            None => exec_mode(&meta),
        };
        self.insert(
            image_path,
            Entry::File {
                source: Source::Path(source),
                mode,
            },
        )
    }

    /// Adds a regular file with in-memory content (generated files, small configs).
    /// The mode is used as `mode & 0o7755`.
    pub fn add_bytes(&mut self, image_path: &str, bytes: Vec<u8>, mode: u32) -> Result<()> {
        let mode = explicit_mode(image_path, mode)?;
        self.insert(
            image_path,
            Entry::File {
                source: Source::Bytes(bytes.into()),
                mode,
            },
        )
    }

    /// Adds a directory explicitly (to give it a mode other than the default 0755).
    pub fn add_dir(&mut self, image_path: &str, mode: u32) -> Result<()> {
        let mode = explicit_mode(image_path, mode)?;
        self.insert(image_path, Entry::Dir { mode })
    }

    /// Adds a symbolic link. The target is written verbatim (it may be absolute or contain
    /// `..`: it is resolved inside the container, not by kiln).
    pub fn add_symlink(&mut self, image_path: &str, target: &str) -> Result<()> {
        let bad = |reason| Error::InvalidLinkTarget {
            path: image_path.to_string(),
            target: target.to_string(),
            reason,
        };
        if target.is_empty() {
            return Err(bad("it is empty"));
        }
        if target.contains('\0') {
            return Err(bad("it contains a NUL byte"));
        }
        self.insert(
            image_path,
            Entry::Symlink {
                target: target.to_string(),
            },
        )
    }

    /// Adds a hard link to `target`, an image path that must be a regular file (or another
    /// hard link to one) in this same layer by the time the layer is written.
    pub fn add_hardlink(&mut self, image_path: &str, target: &str) -> Result<()> {
        validate_image_path(target).map_err(|_| Error::InvalidLinkTarget {
            path: image_path.to_string(),
            target: target.to_string(),
            reason: "hard link targets are image paths: relative, normalized, no `..`",
        })?;
        if target == image_path {
            return Err(Error::InvalidLinkTarget {
                path: image_path.to_string(),
                target: target.to_string(),
                reason: "a hard link cannot point at itself",
            });
        }
        self.insert(
            image_path,
            Entry::Hardlink {
                target: target.to_string(),
            },
        )
    }

    /// Writes the uncompressed tar stream (the bytes whose sha256 is the `diff_id`).
    pub fn write_tar<W: Write>(&self, sde: u64, out: W) -> Result<()> {
        let mut out = out;
        self.write_tar_inner(sde, &mut out)?;
        out.flush().map_err(Error::Write)
    }

    /// Writes the layer as a gzip blob (see [`crate::gzip`]) and returns its descriptor:
    /// compressed digest and size plus the `diff_id`, all from the same single pass.
    ///
    /// The tar stream is produced (files read, headers built) on a scoped helper thread
    /// and handed over in bounded 1 MiB pieces, so reading overlaps compression; the
    /// calling thread drives compression on the current rayon pool and owns `out`.
    pub fn write_gzip<W: Write>(&self, sde: u64, out: W) -> Result<LayerDescriptor> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
        std::thread::scope(|scope| {
            let producer = scope.spawn(move || {
                let mut w = ChannelWriter {
                    tx,
                    buf: Vec::with_capacity(PIECE),
                };
                self.write_tar_inner(sde, &mut w)?;
                w.send_buf().map_err(Error::Write)
            });
            let mut gz = ParallelGzWriter::new(out);
            let mut write_err = None;
            for piece in rx {
                if let Err(e) = gz.write_all(&piece) {
                    // Dropping the receiver makes the producer stop with an error.
                    write_err = Some(e);
                    break;
                }
            }
            let produced = producer
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p));
            if let Some(e) = write_err {
                return Err(Error::Write(e));
            }
            produced?;
            let (s, _) = gz.finish().map_err(Error::Write)?;
            Ok(LayerDescriptor {
                digest: s.compressed_digest,
                diff_id: s.uncompressed_digest,
                size: s.compressed_size,
                media_type: crate::MEDIA_TYPE_LAYER_GZIP.to_string(),
            })
        })
    }

    /// Resolves each hard link to its final file, erroring if there is none.
    fn resolve_hardlink<'a>(&'a self, path: &'a str) -> Result<&'a str> {
        let mut cur = path;
        for _ in 0..=self.entries.len() {
            match self.entries.get(cur) {
                Some(Entry::Hardlink { target }) => cur = target,
                Some(Entry::File { .. }) => return Ok(cur),
                _ => break,
            }
        }
        let target = match self.entries.get(path) {
            Some(Entry::Hardlink { target }) => target.clone(),
            _ => path.to_string(),
        };
        Err(Error::HardlinkTarget {
            path: path.to_string(),
            target,
        })
    }

    fn write_tar_inner<W: Write>(&self, sde: u64, out: &mut W) -> Result<()> {
        // Hard-link groups: file path -> first name of the group in sort order.
        let mut first_name: BTreeMap<&str, &str> = BTreeMap::new();
        for (path, e) in &self.entries {
            if matches!(e, Entry::Hardlink { .. }) {
                let file = self.resolve_hardlink(path)?;
                let first = first_name.entry(file).or_insert(file);
                if path.as_str() < *first {
                    *first = path;
                }
            }
        }

        // Implied parent directories, merged into one sorted view.
        let mut all: BTreeMap<&str, Option<&Entry>> = BTreeMap::new();
        for (path, e) in &self.entries {
            all.insert(path, Some(e));
            let mut p = path.as_str();
            while let Some(pos) = p.rfind('/') {
                p = &p[..pos];
                all.entry(p).or_insert(None);
            }
        }

        let w = |r: io::Result<()>| r.map_err(Error::Write);
        for (&path, entry) in &all {
            match entry {
                None => w(write_header(
                    out,
                    &format!("{path}/"),
                    b'5',
                    0o755,
                    0,
                    "",
                    sde,
                ))?,
                Some(Entry::Dir { mode }) => w(write_header(
                    out,
                    &format!("{path}/"),
                    b'5',
                    *mode,
                    0,
                    "",
                    sde,
                ))?,
                Some(Entry::Symlink { target }) => {
                    w(write_header(out, path, b'2', 0o777, 0, target, sde))?
                }
                Some(Entry::File { .. }) | Some(Entry::Hardlink { .. }) => {
                    let file = self.resolve_hardlink(path)?;
                    let first = first_name.get(file).copied().unwrap_or(file);
                    let Some(Entry::File { source, mode }) = self.entries.get(file) else {
                        unreachable!("resolve_hardlink returns regular files only")
                    };
                    if path == first {
                        write_file(out, path, source, *mode, sde)?;
                    } else {
                        w(write_header(out, path, b'1', *mode, 0, first, sde))?;
                    }
                }
            }
        }
        w(out.write_all(&ZERO_BLOCK))?;
        w(out.write_all(&ZERO_BLOCK))
    }
}

/// Size of the pieces the tar-producing thread hands to the compressor.
const PIECE: usize = 1 << 20;

/// A writer that sends fixed-size pieces down a bounded channel (bounded memory).
struct ChannelWriter {
    tx: std::sync::mpsc::SyncSender<Vec<u8>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send_buf(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let piece = std::mem::replace(&mut self.buf, Vec::with_capacity(PIECE));
        self.tx
            .send(piece)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "compressor stopped"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(PIECE - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == PIECE {
            self.send_buf()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn explicit_mode(path: &str, mode: u32) -> Result<u32> {
    if mode & !0o7777 != 0 {
        return Err(Error::InvalidMode {
            path: path.to_string(),
            mode,
        });
    }
    Ok(mode & 0o7755)
}

#[cfg(unix)]
fn exec_mode(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    if meta.permissions().mode() & 0o111 != 0 {
        0o755
    } else {
        0o644
    }
}

#[cfg(not(unix))]
fn exec_mode(_: &std::fs::Metadata) -> u32 {
    0o644
}

fn write_file<W: Write>(
    out: &mut W,
    path: &str,
    source: &Source,
    mode: u32,
    sde: u64,
) -> Result<()> {
    match source {
        Source::Bytes(b) => {
            write_header(out, path, b'0', mode, b.len() as u64, "", sde).map_err(Error::Write)?;
            out.write_all(b).map_err(Error::Write)?;
            pad(out, b.len() as u64).map_err(Error::Write)
        }
        Source::Path(src) => {
            let f = File::open(src).map_err(Error::io("opening", src))?;
            let meta = f
                .metadata()
                .map_err(Error::io("reading metadata of", src))?;
            if !meta.is_file() {
                return Err(Error::NotAFile { path: src.clone() });
            }
            let size = meta.len();
            write_header(out, path, b'0', mode, size, "", sde).map_err(Error::Write)?;
            let copied = copy_exact(f, size, out, src)?;
            if copied != size {
                return Err(Error::FileChanged {
                    path: src.clone(),
                    expected: size,
                    actual: copied,
                });
            }
            // A file that grew would have more to read: treat it as changed too.
            pad(out, size).map_err(Error::Write)
        }
    }
}

/// Streams at most `size` bytes of `f` into `out` with a fixed buffer; returns the count.
fn copy_exact<W: Write>(f: File, size: u64, out: &mut W, src: &Path) -> Result<u64> {
    let mut r = f.take(size + 1);
    let mut buf = vec![0u8; 256 * 1024];
    let mut n = 0u64;
    loop {
        let k = match r.read(&mut buf) {
            Ok(0) => return Ok(n),
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io("reading", src)(e)),
        };
        if n + k as u64 > size {
            return Ok(n + k as u64);
        }
        out.write_all(&buf[..k]).map_err(Error::Write)?;
        n += k as u64;
    }
}

fn pad<W: Write>(out: &mut W, len: u64) -> io::Result<()> {
    let rem = (len % BLOCK as u64) as usize;
    if rem != 0 {
        out.write_all(&ZERO_BLOCK[..BLOCK - rem])?;
    }
    Ok(())
}

/// Writes one header (preceded by GNU long-name/long-link records when needed).
/// `kind` is the tar typeflag byte.
fn write_header<W: Write>(
    out: &mut W,
    name: &str,
    kind: u8,
    mode: u32,
    size: u64,
    link: &str,
    sde: u64,
) -> io::Result<()> {
    if link.len() > 100 {
        write_long(out, b'K', link, sde)?;
    }
    if name.len() > 100 {
        write_long(out, b'L', name, sde)?;
    }
    let h = header(truncated(name), kind, mode, size, truncated(link), sde);
    out.write_all(h.as_bytes())
}

/// A GNU `././@LongLink` record carrying a long name (`L`) or link target (`K`), NUL
/// terminated as GNU tar writes it.
fn write_long<W: Write>(out: &mut W, kind: u8, value: &str, sde: u64) -> io::Result<()> {
    let len = value.len() as u64 + 1;
    let h = header(b"././@LongLink", kind, 0o644, len, b"", sde);
    out.write_all(h.as_bytes())?;
    out.write_all(value.as_bytes())?;
    out.write_all(&[0])?;
    pad(out, len)
}

fn truncated(s: &str) -> &[u8] {
    &s.as_bytes()[..s.len().min(100)]
}

/// Builds a GNU header with every field chosen here.
fn header(name: &[u8], kind: u8, mode: u32, size: u64, link: &[u8], sde: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    {
        let old = h.as_old_mut();
        old.name = [0; 100];
        old.name[..name.len()].copy_from_slice(name);
        old.linkname = [0; 100];
        old.linkname[..link.len()].copy_from_slice(link);
    }
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_size(size);
    h.set_mtime(sde);
    h.set_entry_type(tar::EntryType::new(kind));
    if let Some(gnu) = h.as_gnu_mut() {
        // uname/gname empty, device numbers, atime/ctime, offset, sparse data all zero.
        gnu.uname = [0; 32];
        gnu.gname = [0; 32];
        gnu.dev_major = [0; 8];
        gnu.dev_minor = [0; 8];
        gnu.atime = [0; 12];
        gnu.ctime = [0; 12];
    }
    h.set_cksum();
    h
}

#[cfg(test)]
mod tests;
