//! Reading the inputs into tree models: a `.deb` (ar archive → `data.tar.{xz,zst,gz}`) and
//! a Rust dist tarball (`<pkg>-<version>-<target>/<component>/...`, installed as
//! `install.sh --prefix=/usr/local` would, without running it).
//!
//! Nothing is ever written at a path an archive names: regular files go to a
//! content-addressed scratch directory ([`Blobs`], named by sha256) and the archive's
//! paths live only in the in-memory [`InputTree`]. So an archive cannot write through a
//! symlink, over another input or outside the root, whatever it contains; what it may
//! contain is still checked ([`normalize`]): no absolute paths, no `..`, no device nodes or
//! fifos, no OCI whiteout names, hard links only to files the same archive holds.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use kiln_core::{Digest, HashingWriter};

use crate::error::{Result, ToolrootError};
use crate::tree::Node;

/// Top-level directories that Debian's usrmerge makes symlinks into `/usr`: entries under
/// them are stored under `usr/` and the root gets the links (see `RootLock::links`).
pub(crate) const USRMERGE: &[&str] = &["bin", "lib", "lib64", "sbin"];

/// Where the Rust components are installed (`install.sh --prefix`), root-relative.
pub(crate) const RUST_PREFIX: &str = "usr/local";

/// Content-addressed scratch storage for file contents: `<dir>/<sha256 hex>`.
pub(crate) struct Blobs {
    dir: PathBuf,
}

impl Blobs {
    pub(crate) fn new(dir: PathBuf) -> Self {
        Blobs { dir }
    }

    pub(crate) fn path(&self, d: &Digest) -> PathBuf {
        self.dir.join(d.hex())
    }

    /// Stores everything `r` yields; returns its digest and size.
    pub(crate) fn store(&self, r: &mut dyn Read) -> io::Result<(Digest, u64)> {
        let tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
        let mut w = HashingWriter::new(io::BufWriter::with_capacity(1 << 16, tmp));
        io::copy(r, &mut w)?;
        let (digest, size, buf) = w.finish();
        let tmp = buf.into_inner().map_err(|e| e.into_error())?;
        let dest = self.path(&digest);
        if !dest.exists() {
            tmp.persist(&dest).map_err(|e| e.error)?;
        }
        Ok((digest, size))
    }

    pub(crate) fn store_bytes(&self, bytes: &[u8]) -> io::Result<(Digest, u64)> {
        self.store(&mut &bytes[..])
    }
}

/// The tree one input contributes to the root, before merging.
#[derive(Debug, Clone)]
pub(crate) struct InputTree {
    /// Names the input in messages and in the layer's history.
    pub label: String,
    pub entries: BTreeMap<String, Node>,
}

impl InputTree {
    pub(crate) fn new(label: impl Into<String>) -> Self {
        InputTree {
            label: label.into(),
            entries: BTreeMap::new(),
        }
    }

    /// Adds `node` at `path`; the same path twice must be the same node (a directory
    /// listed twice, or `bin/x` and `usr/bin/x` with the same bytes after usrmerge).
    pub(crate) fn insert(&mut self, path: String, node: Node) -> Result<()> {
        if let Some(old) = self.entries.get(&path) {
            if *old == node {
                return Ok(());
            }
            return Err(ToolrootError::conflict(
                path,
                (old.describe(), &self.label),
                (node.describe(), &format!("{} again", self.label)),
            ));
        }
        self.entries.insert(path, node);
        Ok(())
    }
}

/// An archive path → the root path it installs to (`None` for the archive's root
/// directory itself), or why it is refused. Leading `./` and trailing `/` are removed;
/// with `usrmerge`, `bin/`, `lib/`, `lib64/`, `sbin/` move under `usr/` (a `.deb`; a Rust
/// tarball's paths are only checked: its manifest says where each file goes).
pub(crate) fn normalize(raw: &[u8], usrmerge: bool) -> std::result::Result<Option<String>, String> {
    let s = std::str::from_utf8(raw).map_err(|_| "the path is not UTF-8".to_string())?;
    if s.starts_with('/') {
        return Err("the path is absolute".into());
    }
    if s.contains('\0') {
        return Err("the path contains a NUL byte".into());
    }
    let mut comps = Vec::new();
    for c in s.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err("the path has a `..` component".into()),
            c if c.starts_with(".wh.") => {
                return Err(
                    "the name is an OCI whiteout (`.wh.`), which an image would read as a deletion"
                        .into(),
                );
            }
            c => comps.push(c),
        }
    }
    if comps.is_empty() {
        return Ok(None);
    }
    if usrmerge && USRMERGE.contains(&comps[0]) {
        comps.insert(0, "usr");
    }
    Ok(Some(comps.join("/")))
}

fn unsafe_entry(input: &str, entry: &[u8], reason: impl Into<String>) -> ToolrootError {
    ToolrootError::UnsafeEntry {
        input: input.to_string(),
        entry: String::from_utf8_lossy(entry).into_owned(),
        reason: reason.into(),
    }
}

fn bad_archive(input: &str, what: impl Into<String>) -> ToolrootError {
    ToolrootError::BadArchive {
        input: input.to_string(),
        what: what.into(),
    }
}

/// A decompressing reader for a member named `data.tar[.xz|.zst|.gz]`.
fn decompressor<'a>(name: &str, r: impl Read + 'a, input: &str) -> Result<Box<dyn Read + 'a>> {
    Ok(match name.rsplit_once('.').map(|(_, e)| e) {
        Some("tar") => Box::new(r),
        Some("xz") => Box::new(liblzma::read::XzDecoder::new_multi_decoder(r)),
        Some("gz") => Box::new(flate2::read::MultiGzDecoder::new(r)),
        Some("zst") => Box::new(
            ruzstd::decoding::StreamingDecoder::new(r)
                .map_err(|e| bad_archive(input, format!("`{name}`: not zstd: {e}")))?,
        ),
        _ => {
            return Err(bad_archive(
                input,
                format!("`{name}` has a compression kiln does not read (xz, zst, gz or none)"),
            ));
        }
    })
}

/// Unpacks a `.deb` into a tree (usrmerge applied), contents into `blobs`.
pub(crate) fn deb(path: &Path, label: &str, blobs: &Blobs) -> Result<InputTree> {
    let f = std::fs::File::open(path).map_err(ToolrootError::io("opening", path))?;
    let mut ar = ar::Archive::new(io::BufReader::with_capacity(1 << 16, f));
    let mut saw_version = false;
    while let Some(member) = ar.next_entry() {
        let mut member =
            member.map_err(|e| bad_archive(label, format!("not an ar archive (.deb): {e}")))?;
        let name = String::from_utf8_lossy(member.header().identifier())
            .trim_end_matches('/')
            .to_string();
        if name == "debian-binary" {
            let mut v = String::new();
            (&mut member)
                .take(64)
                .read_to_string(&mut v)
                .map_err(|e| bad_archive(label, format!("reading `debian-binary`: {e}")))?;
            if !v.starts_with("2.") {
                return Err(bad_archive(
                    label,
                    format!("`debian-binary` says `{}`, not format 2.x", v.trim()),
                ));
            }
            saw_version = true;
            continue;
        }
        if name == "data.tar" || name.starts_with("data.tar.") {
            if !saw_version {
                return Err(bad_archive(
                    label,
                    "`data.tar` comes before `debian-binary`: not a .deb",
                ));
            }
            let dec = decompressor(&name, &mut member, label)?;
            let mut tree = InputTree::new(label);
            read_tar(
                dec,
                label,
                blobs,
                &mut |path, node, _| tree.insert(path, node),
                true,
            )?;
            return Ok(tree);
        }
    }
    Err(bad_archive(label, "no `data.tar.*` member: not a .deb"))
}

/// What a tar entry is, after the safety checks.
enum Raw {
    Dir,
    File(Node),
    Symlink(String),
    /// A hard link to a path of the same archive (already normalized).
    Hardlink(String),
}

/// Called with each entry's (normalized path, node, raw path).
type AddEntry<'a> = dyn FnMut(String, Node, &[u8]) -> Result<()> + 'a;

/// Reads every entry of a tar stream, storing file contents in `blobs` and calling `add`
/// with (normalized path, node, raw path). Hard links become copies of their target's
/// node (a root model has no hard links). With `usrmerge`, paths are mapped as
/// [`normalize`] does; without, they are only checked.
fn read_tar(
    r: impl Read,
    label: &str,
    blobs: &Blobs,
    add: &mut AddEntry<'_>,
    usrmerge: bool,
) -> Result<()> {
    let mut archive = tar::Archive::new(r);
    let mut files: BTreeMap<String, Node> = BTreeMap::new();
    let entries = archive
        .entries()
        .map_err(|e| bad_archive(label, format!("reading the tar stream: {e}")))?;
    for entry in entries {
        let mut entry =
            entry.map_err(|e| bad_archive(label, format!("reading the tar stream: {e}")))?;
        let raw_path = entry.path_bytes().into_owned();
        let norm = |raw: &[u8]| -> Result<Option<String>> {
            normalize(raw, usrmerge).map_err(|why| unsafe_entry(label, raw, why))
        };
        let Some(path) = norm(&raw_path)? else {
            continue;
        };
        let kind = entry.header().entry_type();
        let mode = entry.header().mode().unwrap_or(0o644);
        let raw = match kind {
            tar::EntryType::Directory => Raw::Dir,
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let (digest, size) = blobs
                    .store(&mut entry)
                    .map_err(|e| bad_archive(label, format!("reading `{path}`: {e}")))?;
                Raw::File(Node::File {
                    digest,
                    size,
                    exec: mode & 0o111 != 0,
                })
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                let target = String::from_utf8(target)
                    .map_err(|_| unsafe_entry(label, &raw_path, "the link target is not UTF-8"))?;
                if target.is_empty() || target.contains('\0') {
                    return Err(unsafe_entry(label, &raw_path, "the link target is empty"));
                }
                Raw::Symlink(target)
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                let Some(t) = norm(&target)? else {
                    return Err(unsafe_entry(label, &raw_path, "a hard link to the root"));
                };
                Raw::Hardlink(t)
            }
            tar::EntryType::Char | tar::EntryType::Block => {
                return Err(unsafe_entry(
                    label,
                    &raw_path,
                    "device nodes are not allowed",
                ));
            }
            tar::EntryType::Fifo => {
                return Err(unsafe_entry(label, &raw_path, "fifos are not allowed"));
            }
            other => {
                return Err(unsafe_entry(
                    label,
                    &raw_path,
                    format!("tar entry type {:?} is not supported", other),
                ));
            }
        };
        let node = match raw {
            Raw::Dir => Node::Dir,
            Raw::File(n) => {
                files.insert(path.clone(), n.clone());
                n
            }
            Raw::Symlink(t) => Node::Symlink(t),
            Raw::Hardlink(t) => match files.get(&t) {
                Some(n) => {
                    let n = n.clone();
                    files.insert(path.clone(), n.clone());
                    n
                }
                None => {
                    return Err(unsafe_entry(
                        label,
                        &raw_path,
                        format!("a hard link to `{t}`, which is not a file earlier in the archive"),
                    ));
                }
            },
        };
        add(path, node, &raw_path)?;
    }
    Ok(())
}

/// What installing one Rust dist tarball adds, besides its files: the lines of
/// `lib/rustlib/manifest-<component>` and the installer version (which
/// `lib/rustlib/rust-installer-version` holds).
pub(crate) struct RustInstall {
    pub tree: InputTree,
    pub installer_version: String,
}

/// Installs the Rust dist tarball at `path`, whose one component must be `component`, as
/// `install.sh --prefix=/usr/local --disable-ldconfig` would: each `file:` of
/// `<component>/manifest.in` copied to `usr/local/<path>` (0755 under `bin/` or when the
/// archive marks it executable, else 0644), each `dir:` copied whole, and
/// `lib/rustlib/manifest-<component>` listing what was installed. Not reproduced:
/// `install.log` (timestamps), `uninstall.sh` (a copy of the installer; kiln roots are
/// replaced, not uninstalled) and the `ld.so.conf.d` entry. The shared
/// `lib/rustlib/components` list and `rust-installer-version` are written by `pack`.
/// `file_name` (the URL's last segment) says how the tarball is compressed.
pub(crate) fn rust_component(
    path: &Path,
    file_name: &str,
    component: &str,
    label: &str,
    blobs: &Blobs,
) -> Result<RustInstall> {
    let f = std::fs::File::open(path).map_err(ToolrootError::io("opening", path))?;
    let dec = decompressor(file_name, io::BufReader::with_capacity(1 << 16, f), label)?;
    // Everything of the tarball, by path below its top directory.
    let mut top: Option<String> = None;
    let mut all: BTreeMap<String, Node> = BTreeMap::new();
    read_tar(
        dec,
        label,
        blobs,
        &mut |p, node, raw| {
            let (first, rest) = p.split_once('/').unwrap_or((p.as_str(), ""));
            match &top {
                None => top = Some(first.to_string()),
                Some(t) if t == first => {}
                Some(t) => {
                    return Err(unsafe_entry(
                        label,
                        raw,
                        format!("outside the tarball's top directory `{t}`"),
                    ));
                }
            }
            if !rest.is_empty() {
                all.insert(rest.to_string(), node);
            }
            Ok(())
        },
        false,
    )?;
    let read_small = |rel: &str| -> Result<String> {
        match all.get(rel) {
            Some(Node::File { digest, .. }) => std::fs::read_to_string(blobs.path(digest))
                .map_err(|e| bad_archive(label, format!("reading `{rel}`: {e}"))),
            _ => Err(bad_archive(
                label,
                format!("no `{rel}`: not a Rust dist tarball"),
            )),
        }
    };
    let components = read_small("components")?;
    let listed: Vec<&str> = components
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if listed != [component] {
        return Err(bad_archive(
            label,
            format!(
                "its `components` file lists {listed:?}, but the lock names the component `{component}`"
            ),
        ));
    }
    let installer_version = read_small("rust-installer-version")?.trim().to_string();
    if installer_version != "3" {
        return Err(bad_archive(
            label,
            format!("rust-installer version `{installer_version}` is not the 3 kiln installs"),
        ));
    }
    let manifest = read_small(&format!("{component}/manifest.in"))?;

    let mut tree = InputTree::new(label);
    let mut installed = String::new();
    for line in manifest.lines().filter(|l| !l.trim().is_empty()) {
        let (cmd, rel) = line.split_once(':').ok_or_else(|| {
            bad_archive(
                label,
                format!("manifest.in: `{line}` is not `file:` or `dir:`"),
            )
        })?;
        crate::lock::check_rel_path(rel)
            .map_err(|why| unsafe_entry(label, line.as_bytes(), why))?;
        let src = format!("{component}/{rel}");
        let dest = format!("{RUST_PREFIX}/{rel}");
        match cmd {
            "file" => {
                let Some(Node::File { digest, size, exec }) = all.get(&src) else {
                    return Err(bad_archive(
                        label,
                        format!("manifest.in lists `{rel}`, which is not a file of the tarball"),
                    ));
                };
                tree.insert(
                    dest.clone(),
                    Node::File {
                        digest: *digest,
                        size: *size,
                        exec: *exec || rel.starts_with("bin/"),
                    },
                )?;
            }
            "dir" => {
                let prefix = format!("{src}/");
                if !matches!(all.get(&src), Some(Node::Dir)) {
                    return Err(bad_archive(
                        label,
                        format!("manifest.in lists the directory `{rel}`, which the tarball lacks"),
                    ));
                }
                tree.insert(dest.clone(), Node::Dir)?;
                for (p, n) in all.range(prefix.clone()..) {
                    let Some(sub) = p.strip_prefix(&prefix) else {
                        break;
                    };
                    if let Node::Symlink(_) = n {
                        return Err(bad_archive(
                            label,
                            format!("`{p}` is a symlink; kiln installs files and directories only"),
                        ));
                    }
                    tree.insert(format!("{dest}/{sub}"), n.clone())?;
                }
            }
            other => {
                return Err(bad_archive(
                    label,
                    format!("manifest.in: unknown directive `{other}:`"),
                ));
            }
        }
        installed.push_str(&format!("{cmd}:/{dest}\n"));
    }
    let (digest, size) = blobs
        .store_bytes(installed.as_bytes())
        .map_err(ToolrootError::io(
            "writing scratch data to",
            blobs.dir.clone(),
        ))?;
    tree.insert(
        format!("{RUST_PREFIX}/lib/rustlib/manifest-{component}"),
        Node::File {
            digest,
            size,
            exec: false,
        },
    )?;
    Ok(RustInstall {
        tree,
        installer_version,
    })
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Small synthetic inputs built in the tests: a `.deb` (ar + data.tar.xz) and a Rust
    //! dist tarball, from explicit tar headers (so unsafe entries can be built too).

    use std::io::Write;

    /// One tar entry to build: (path, type, content or link target, mode).
    pub enum E<'a> {
        Dir(&'a str),
        File(&'a str, &'a [u8], u32),
        Symlink(&'a str, &'a str),
        Hardlink(&'a str, &'a str),
        Char(&'a str),
    }

    /// A tar stream of `entries`, names written raw (no validation, so `../x` and
    /// `/etc/x` can be built).
    pub fn tar(entries: &[E<'_>]) -> Vec<u8> {
        let mut out = Vec::new();
        for e in entries {
            let mut h = tar::Header::new_gnu();
            let (name, data): (&str, &[u8]) = match e {
                E::Dir(p) => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_mode(0o755);
                    (p, b"")
                }
                E::File(p, c, m) => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_mode(*m);
                    (p, c)
                }
                E::Symlink(p, t) => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_mode(0o777);
                    set_raw(&mut h.as_old_mut().linkname, t);
                    (p, b"")
                }
                E::Hardlink(p, t) => {
                    h.set_entry_type(tar::EntryType::Link);
                    h.set_mode(0o644);
                    set_raw(&mut h.as_old_mut().linkname, t);
                    (p, b"")
                }
                E::Char(p) => {
                    h.set_entry_type(tar::EntryType::Char);
                    h.set_mode(0o644);
                    (p, b"")
                }
            };
            set_raw(&mut h.as_old_mut().name, name);
            h.set_size(data.len() as u64);
            h.set_mtime(1);
            h.set_cksum();
            out.extend_from_slice(h.as_bytes());
            out.extend_from_slice(data);
            out.resize(out.len().div_ceil(512) * 512, 0);
        }
        out.extend_from_slice(&[0u8; 1024]);
        out
    }

    fn set_raw(field: &mut [u8], s: &str) {
        field.fill(0);
        field[..s.len()].copy_from_slice(s.as_bytes());
    }

    pub fn xz(bytes: &[u8]) -> Vec<u8> {
        let mut e = liblzma::write::XzEncoder::new(Vec::new(), 1);
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    /// A `.deb` whose data.tar.xz holds `entries`.
    pub fn deb(entries: &[E<'_>]) -> Vec<u8> {
        let control = xz(&tar(&[E::File("./control", b"Package: x\n", 0o644)]));
        let data = xz(&tar(entries));
        let mut b = ar::Builder::new(Vec::new());
        for (name, bytes) in [
            ("debian-binary", &b"2.0\n"[..]),
            ("control.tar.xz", &control[..]),
            ("data.tar.xz", &data[..]),
        ] {
            let mut h = ar::Header::new(name.as_bytes().to_vec(), bytes.len() as u64);
            h.set_mode(0o644);
            b.append(&h, bytes).unwrap();
        }
        b.into_inner().unwrap()
    }

    /// A Rust dist tarball (`.tar.xz`) of one component with the given files
    /// (path below the component directory, content, mode).
    pub fn rust_tarball(top: &str, component: &str, files: &[(&str, &[u8], u32)]) -> Vec<u8> {
        let manifest: String = files
            .iter()
            .map(|(p, _, _)| format!("file:{p}\n"))
            .collect();
        let mut entries = Vec::new();
        let comp_dir = format!("{top}/{component}");
        let components = format!("{component}\n");
        let man_path = format!("{comp_dir}/manifest.in");
        let comps_path = format!("{top}/components");
        let ver_path = format!("{top}/rust-installer-version");
        let paths: Vec<String> = files
            .iter()
            .map(|(p, _, _)| format!("{comp_dir}/{p}"))
            .collect();
        entries.push(E::Dir(top));
        entries.push(E::Dir(&comp_dir));
        entries.push(E::File(&comps_path, components.as_bytes(), 0o644));
        entries.push(E::File(&ver_path, b"3\n", 0o644));
        entries.push(E::File(&man_path, manifest.as_bytes(), 0o644));
        for (p, (_, c, m)) in paths.iter().zip(files) {
            entries.push(E::File(p, c, *m));
        }
        xz(&tar(&entries))
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{E, deb as build_deb, rust_tarball};
    use super::*;

    fn blobs() -> (tempfile::TempDir, Blobs) {
        let d = tempfile::tempdir().unwrap();
        let b = Blobs::new(d.path().to_path_buf());
        (d, b)
    }

    fn unpack(entries: &[E<'_>]) -> Result<InputTree> {
        let (d, b) = blobs();
        let p = d.path().join("x.deb");
        std::fs::write(&p, build_deb(entries)).unwrap();
        deb(&p, "Debian package `x` 1", &b)
    }

    #[test]
    fn usrmerge_mapping() {
        for (raw, want) in [
            ("./bin/dash", Some("usr/bin/dash")),
            (
                "./lib64/ld-linux-x86-64.so.2",
                Some("usr/lib64/ld-linux-x86-64.so.2"),
            ),
            ("sbin", Some("usr/sbin")),
            ("./usr/bin/gcc-12", Some("usr/bin/gcc-12")),
            ("./binutils/x", Some("binutils/x")),
            ("./", None),
            ("./usr/lib//x/./y/", Some("usr/lib/x/y")),
        ] {
            assert_eq!(
                normalize(raw.as_bytes(), true).unwrap().as_deref(),
                want,
                "{raw}"
            );
        }
        for bad in ["/etc/passwd", "../x", "usr/../../x", "usr/.wh.lib"] {
            assert!(normalize(bad.as_bytes(), true).is_err(), "{bad}");
        }
    }

    #[test]
    fn deb_is_unpacked_with_usrmerge_and_hard_links() {
        let t = unpack(&[
            E::Dir("./"),
            E::Dir("./bin/"),
            E::File("./bin/dash", b"\x7fELF dash", 0o755),
            E::Symlink("./bin/sh", "dash"),
            E::Dir("./usr/share/doc/x/"),
            E::File("./usr/share/doc/x/copyright", b"GPL", 0o644),
            E::Hardlink("./usr/bin/dash2", "./bin/dash"),
        ])
        .unwrap();
        let paths: Vec<&str> = t.entries.keys().map(String::as_str).collect();
        assert_eq!(
            paths,
            [
                "usr/bin",
                "usr/bin/dash",
                "usr/bin/dash2",
                "usr/bin/sh",
                "usr/share/doc/x",
                "usr/share/doc/x/copyright"
            ]
        );
        assert!(matches!(
            t.entries["usr/bin/dash"],
            Node::File { exec: true, .. }
        ));
        assert!(matches!(
            t.entries["usr/share/doc/x/copyright"],
            Node::File {
                exec: false,
                size: 3,
                ..
            }
        ));
        assert_eq!(t.entries["usr/bin/dash2"], t.entries["usr/bin/dash"]);
        assert_eq!(t.entries["usr/bin/sh"], Node::Symlink("dash".into()));
    }

    #[test]
    fn unsafe_entries_are_refused() {
        for (entries, why) in [
            (vec![E::File("../../etc/evil", b"x", 0o644)], "`..`"),
            (vec![E::File("/etc/evil", b"x", 0o644)], "absolute"),
            (vec![E::Char("./dev/null")], "device"),
            (vec![E::Hardlink("./usr/x", "/etc/shadow")], "absolute"),
            (
                vec![E::Hardlink("./usr/x", "./usr/missing")],
                "not a file earlier",
            ),
            (vec![E::File("./usr/.wh.x", b"", 0o644)], "whiteout"),
        ] {
            let e = unpack(&entries).unwrap_err();
            let msg = e.to_string();
            assert!(matches!(e, ToolrootError::UnsafeEntry { .. }), "{msg}");
            assert!(msg.contains(why) && msg.contains("`x` 1"), "{why}: {msg}");
            assert!(kiln_core::Hint::hint(&e).is_some());
        }
    }

    #[test]
    fn symlinks_may_point_anywhere_but_are_never_followed() {
        // A link out of the root, then a file "through" it: the file is recorded at its
        // own path only (merging refuses the path under a symlink; see pack's tests).
        let t = unpack(&[
            E::Symlink("./usr/lib/evil", "/etc"),
            E::File("./usr/lib/evil/passwd", b"x", 0o644),
        ])
        .unwrap();
        assert_eq!(t.entries["usr/lib/evil"], Node::Symlink("/etc".into()));
        assert!(t.entries.contains_key("usr/lib/evil/passwd"));
    }

    #[test]
    fn one_path_twice_with_different_bytes_is_a_conflict() {
        let e = unpack(&[
            E::File("./bin/x", b"one", 0o755),
            E::File("./usr/bin/x", b"two", 0o755),
        ])
        .unwrap_err();
        assert!(matches!(e, ToolrootError::Conflict { .. }), "{e}");
        assert!(e.to_string().contains("usr/bin/x"), "{e}");
        // The same bytes twice are fine.
        unpack(&[
            E::File("./bin/x", b"one", 0o755),
            E::File("./usr/bin/x", b"one", 0o755),
        ])
        .unwrap();
    }

    #[test]
    fn not_a_deb_is_an_error() {
        let (d, b) = blobs();
        let p = d.path().join("x.deb");
        std::fs::write(&p, b"garbage").unwrap();
        assert!(matches!(
            deb(&p, "x", &b),
            Err(ToolrootError::BadArchive { .. })
        ));
        std::fs::write(&p, &build_deb(&[])[..40]).unwrap();
        assert!(deb(&p, "x", &b).is_err());
    }

    #[test]
    fn rust_component_installs_under_usr_local() {
        let (d, b) = blobs();
        let p = d.path().join("cargo-1.0.0-x86_64-unknown-linux-gnu.tar.xz");
        std::fs::write(
            &p,
            rust_tarball(
                "cargo-1.0.0-x86_64-unknown-linux-gnu",
                "cargo",
                &[
                    ("bin/cargo", b"\x7fELF cargo", 0o644),
                    ("share/doc/cargo/README.md", b"readme", 0o644),
                    ("libexec/helper", b"helper", 0o755),
                ],
            ),
        )
        .unwrap();
        let name = p.file_name().unwrap().to_str().unwrap();
        let r = rust_component(&p, name, "cargo", "cargo", &b).unwrap();
        assert_eq!(r.installer_version, "3");
        let e = &r.tree.entries;
        // bin/ is executable whatever the archive says, like install.sh's chmod 755.
        assert!(matches!(
            e["usr/local/bin/cargo"],
            Node::File { exec: true, .. }
        ));
        assert!(matches!(
            e["usr/local/libexec/helper"],
            Node::File { exec: true, .. }
        ));
        assert!(matches!(
            e["usr/local/share/doc/cargo/README.md"],
            Node::File { exec: false, .. }
        ));
        let Node::File { digest, .. } = &e["usr/local/lib/rustlib/manifest-cargo"] else {
            panic!("no installed manifest")
        };
        assert_eq!(
            std::fs::read_to_string(b.path(digest)).unwrap(),
            "file:/usr/local/bin/cargo\nfile:/usr/local/share/doc/cargo/README.md\nfile:/usr/local/libexec/helper\n"
        );
        assert_eq!(
            e.len(),
            4,
            "only listed files are installed: {:?}",
            e.keys()
        );
        // A component name the lock does not give is refused.
        let err = rust_component(&p, name, "rustc", "rustc", &b)
            .err()
            .unwrap();
        assert!(err.to_string().contains("`rustc`"), "{err}");
    }
}
