//! The tree model of a root and its Merkle digest.
//!
//! A root is a map from root-relative path to [`Node`]: a directory, a regular file (its
//! sha256 and whether it is executable) or a symlink (its target, verbatim). Owners,
//! times and permission bits other than "executable" are not part of a root: `pack`
//! normalizes them and `install` sets them, so they cannot differ between machines.
//!
//! The tree digest is a Merkle hash over that model, the same whether it is computed from
//! the inputs before packing or from an unpacked directory on disk:
//!
//! ```text
//! file(exec, content) = sha256("file\0"    || ("x" if exec else "-") || sha256(content))
//! symlink(target)     = sha256("symlink\0" || target)
//! dir(children)       = sha256("dir\0"     || for each child, sorted by name bytes:
//!                                             u32be(len(name)) || name || digest(child))
//! tree                = dir(the root's children)
//! ```

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use kiln_core::Digest;
use rayon::prelude::*;

use crate::error::{Result, ToolrootError};

/// One path of a root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Node {
    Dir,
    File {
        digest: Digest,
        size: u64,
        exec: bool,
    },
    Symlink(String),
}

impl Node {
    /// How a message or the stamp names this node.
    pub(crate) fn describe(&self) -> String {
        match self {
            Node::Dir => "a directory".into(),
            Node::File { digest, exec, .. } => format!(
                "{} file {digest}",
                if *exec { "an executable" } else { "a" }
            ),
            Node::Symlink(t) => format!("a symlink to `{t}`"),
        }
    }
}

#[derive(Default)]
struct DirBuild<'a> {
    children: BTreeMap<&'a str, Item<'a>>,
}

enum Item<'a> {
    Dir(DirBuild<'a>),
    Leaf(&'a Node),
}

/// The Merkle digest of a tree (see the module docs). Missing parent directories count
/// as empty directories that hold their children.
pub(crate) fn digest(entries: &BTreeMap<String, Node>) -> Digest {
    let mut root = DirBuild::default();
    for (path, node) in entries {
        let mut cur = &mut root;
        let mut comps = path.split('/').peekable();
        while let Some(c) = comps.next() {
            let last = comps.peek().is_none();
            if last && !matches!(node, Node::Dir) {
                cur.children.insert(c, Item::Leaf(node));
                break;
            }
            let slot = cur
                .children
                .entry(c)
                .or_insert_with(|| Item::Dir(DirBuild::default()));
            if matches!(slot, Item::Leaf(_)) {
                *slot = Item::Dir(DirBuild::default());
            }
            let Item::Dir(d) = slot else {
                unreachable!("made a directory above")
            };
            cur = d;
        }
    }
    Digest::from_bytes(hash_dir(&root))
}

fn sha(bytes: &[u8]) -> [u8; 32] {
    *Digest::of(bytes).as_bytes()
}

fn hash_dir(d: &DirBuild<'_>) -> [u8; 32] {
    let mut buf = b"dir\0".to_vec();
    for (name, item) in &d.children {
        buf.extend_from_slice(&(name.len() as u32).to_be_bytes());
        buf.extend_from_slice(name.as_bytes());
        buf.extend_from_slice(&match item {
            Item::Dir(d) => hash_dir(d),
            Item::Leaf(n) => hash_leaf(n),
        });
    }
    sha(&buf)
}

fn hash_leaf(n: &Node) -> [u8; 32] {
    match n {
        Node::Dir => hash_dir(&DirBuild::default()),
        Node::File { digest, exec, .. } => {
            let mut buf = b"file\0".to_vec();
            buf.push(if *exec { b'x' } else { b'-' });
            buf.extend_from_slice(digest.as_bytes());
            sha(&buf)
        }
        Node::Symlink(t) => {
            let mut buf = b"symlink\0".to_vec();
            buf.extend_from_slice(t.as_bytes());
            sha(&buf)
        }
    }
}

/// What the kernel says about one path: size, inode, device, mtime and ctime (ns), mode.
pub(crate) type Meta = [i128; 6];

fn meta_of(m: &std::fs::Metadata) -> Meta {
    kiln_core::fsx::identity(m)
}

enum Kind {
    Dir,
    File { exec: bool, size: u64 },
    Symlink(String),
}

/// Every path under `root` (not `root` itself) with its kind, never
/// following a symlink. Anything that is not a directory, regular file or symlink, and
/// any name that is not UTF-8, is an error: no root holds one.
fn walk(root: &Path) -> Result<Vec<(String, Kind)>> {
    let mut out = Vec::new();
    let mut stack = vec![String::new()];
    while let Some(rel) = stack.pop() {
        let dir = if rel.is_empty() {
            root.to_path_buf()
        } else {
            root.join(&rel)
        };
        let rd = std::fs::read_dir(&dir).map_err(ToolrootError::io("listing", &dir))?;
        for e in rd {
            let e = e.map_err(ToolrootError::io("listing", &dir))?;
            let name = e.file_name();
            let Some(name) = name.to_str() else {
                return Err(ToolrootError::Io {
                    action: "reading (a name that is not UTF-8 is in)",
                    path: dir.clone(),
                    source: std::io::Error::other("non-UTF-8 file name"),
                });
            };
            let path = if rel.is_empty() {
                name.to_string()
            } else {
                format!("{rel}/{name}")
            };
            let full = root.join(&path);
            let m =
                std::fs::symlink_metadata(&full).map_err(ToolrootError::io("reading", &full))?;
            let ft = m.file_type();
            let kind = if ft.is_dir() {
                stack.push(path.clone());
                Kind::Dir
            } else if ft.is_file() {
                Kind::File {
                    exec: m.mode() & 0o111 != 0,
                    size: m.len(),
                }
            } else if ft.is_symlink() {
                let t = std::fs::read_link(&full).map_err(ToolrootError::io("reading", &full))?;
                Kind::Symlink(t.to_string_lossy().into_owned())
            } else {
                return Err(ToolrootError::Io {
                    action: "reading (not a file, directory or symlink)",
                    path: full,
                    source: std::io::Error::other("special file in a toolchain root"),
                });
            };
            out.push((path, kind));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// The metadata of every path under `root` (not `root` itself), sorted by path, never
/// following a symlink: what a stamp compares.
///
/// This runs before every build inside a root (3,150 paths for the default one), so it
/// does only what the comparison needs: directories are listed in parallel, and each
/// entry is stat'ed relative to its open directory (`DirEntry::metadata` is `statx` on the
/// directory's descriptor on Linux) rather than by a full path lookup; symlink targets are
/// not read (re-pointing a symlink replaces it, so its inode and its directory's ctime
/// change). Kinds and special files are [`walk`]'s business, in the full check.
pub(crate) fn metadata(root: &Path) -> Result<Vec<(String, Meta)>> {
    let mut out = metadata_under(root, String::new())?;
    out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

fn metadata_under(root: &Path, rel: String) -> Result<Vec<(String, Meta)>> {
    let dir = if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(&rel)
    };
    let mut here = Vec::new();
    let mut subdirs = Vec::new();
    for e in std::fs::read_dir(&dir).map_err(ToolrootError::io("listing", &dir))? {
        let e = e.map_err(ToolrootError::io("listing", &dir))?;
        let name = e.file_name();
        // A name that is not UTF-8 is in no stamp (the full check refuses it), so its
        // lossy form only has to differ, as it does.
        let name = name.to_string_lossy();
        let path = if rel.is_empty() {
            name.into_owned()
        } else {
            format!("{rel}/{name}")
        };
        let m = e
            .metadata()
            .map_err(ToolrootError::io("reading", &dir.join(e.file_name())))?;
        if m.is_dir() {
            subdirs.push(path.clone());
        }
        here.push((path, meta_of(&m)));
    }
    let nested = subdirs
        .into_par_iter()
        .map(|d| metadata_under(root, d))
        .collect::<Result<Vec<_>>>()?;
    here.extend(nested.into_iter().flatten());
    Ok(here)
}

/// One digest of [`metadata`]'s list (paths and every metadata field, in order), which a
/// stamp records so that the check before a build compares 32 bytes, not 3,150 entries
/// parsed back from JSON.
pub(crate) fn metadata_digest(entries: &[(String, Meta)]) -> Digest {
    let mut buf = Vec::with_capacity(entries.len() * 128);
    for (p, m) in entries {
        buf.extend_from_slice(&(p.len() as u64).to_be_bytes());
        buf.extend_from_slice(p.as_bytes());
        for v in m {
            buf.extend_from_slice(&v.to_be_bytes());
        }
    }
    Digest::of(&buf)
}

/// The tree model of the directory `root`, files hashed in parallel.
pub(crate) fn scan(root: &Path) -> Result<BTreeMap<String, Node>> {
    let items = walk(root)?;
    let nodes: Vec<Result<(String, Node)>> = items
        .into_par_iter()
        .map(|(path, kind)| {
            let node = match kind {
                Kind::Dir => Node::Dir,
                Kind::Symlink(t) => Node::Symlink(t),
                Kind::File { exec, size } => {
                    let full = root.join(&path);
                    let digest =
                        Digest::of_file(&full).map_err(ToolrootError::io("hashing", &full))?;
                    Node::File { digest, size, exec }
                }
            };
            Ok((path, node))
        })
        .collect();
    nodes.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(c: &[u8], exec: bool) -> Node {
        Node::File {
            digest: Digest::of(c),
            size: c.len() as u64,
            exec,
        }
    }

    #[test]
    fn digest_depends_on_content_exec_bit_and_names_only() {
        let mut a = BTreeMap::new();
        a.insert("usr/bin/x".to_string(), file(b"x", true));
        a.insert("usr/lib".to_string(), Node::Dir);
        a.insert("bin".to_string(), Node::Symlink("usr/bin".into()));
        let d = digest(&a);
        // Implied parents are the same as explicit ones.
        let mut b = a.clone();
        b.insert("usr".into(), Node::Dir);
        b.insert("usr/bin".into(), Node::Dir);
        assert_eq!(digest(&b), d);
        for change in [
            ("usr/bin/x", file(b"x", false)),
            ("usr/bin/x", file(b"y", true)),
            ("bin", Node::Symlink("usr/sbin".into())),
            ("usr/lib/extra", Node::Dir),
        ] {
            let mut c = a.clone();
            c.insert(change.0.into(), change.1.clone());
            assert_ne!(digest(&c), d, "{change:?}");
        }
        // A name boundary cannot be moved without changing the digest.
        let mut e = BTreeMap::new();
        e.insert("ab".to_string(), file(b"", false));
        let mut f = BTreeMap::new();
        f.insert("a".to_string(), file(b"", false));
        assert_ne!(digest(&e), digest(&f));
    }

    #[test]
    fn scan_matches_the_model() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("usr/bin")).unwrap();
        std::fs::create_dir_all(r.join("empty")).unwrap();
        std::fs::write(r.join("usr/bin/x"), b"x").unwrap();
        kiln_core::fsx::set_mode(&r.join("usr/bin/x"), 0o755).unwrap();
        std::os::unix::fs::symlink("usr/bin", r.join("bin")).unwrap();
        let scanned = scan(r).unwrap();
        let mut model = BTreeMap::new();
        model.insert("usr/bin/x".to_string(), file(b"x", true));
        model.insert("empty".to_string(), Node::Dir);
        model.insert("bin".to_string(), Node::Symlink("usr/bin".into()));
        assert_eq!(digest(&scanned), digest(&model));
        assert_eq!(scanned.len(), 5);
        let listed = metadata(r).unwrap();
        // The same paths in the same order as the full walk, symlinks not followed.
        assert_eq!(
            listed.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(),
            scanned.keys().map(String::as_str).collect::<Vec<_>>()
        );
        let bin = std::fs::symlink_metadata(r.join("bin")).unwrap();
        assert_eq!(listed[0], ("bin".to_string(), meta_of(&bin)));
        // Any one field of any one path moves the digest.
        let d = metadata_digest(&listed);
        for i in 0..listed.len() {
            for f in 0..6 {
                let mut other = listed.clone();
                other[i].1[f] += 1;
                assert_ne!(metadata_digest(&other), d, "{} field {f}", listed[i].0);
            }
        }
        let mut renamed = listed.clone();
        renamed[0].0.push('x');
        assert_ne!(metadata_digest(&renamed), d);
    }
}
