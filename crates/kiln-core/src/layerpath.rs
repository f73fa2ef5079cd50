//! What a layer tar entry may do, for layers kiln did not write (a base image's).
//!
//! A [`LayerSet`] follows the entries of an image's layers in order and refuses the ones a
//! hostile base could use to write outside the image or smuggle host state in: a path that
//! climbs out with `..`, a write through a symlink that points outside the root (absolute,
//! or climbing above it), a hard link to a file no layer provides, a device node. What OCI
//! allows is normalized instead: a leading `./` or `/`, repeated or trailing slashes, `.`
//! components. Whiteouts (`.wh.NAME`, `.wh..wh..opq`) delete as the OCI spec says.
//!
//! kiln-oci checks a base with it before reusing a byte of it and kiln-sbom while listing
//! files, so neither an image nor an SBOM ever carries a `/../..` path.

use std::collections::BTreeMap;

/// The kind of a tar entry, as far as the checks care.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    HardLink,
    CharDevice,
    BlockDevice,
    Fifo,
    /// Any other type byte (tar metadata entries are consumed by the tar reader).
    Other(u8),
}

impl EntryKind {
    /// The kind named by a tar header's type byte (POSIX ustar `typeflag`; GNU tar reads
    /// NUL as a regular file and `7`, contiguous, as one too). One mapping for every
    /// reader of layers, so kiln-oci's reuse check and kiln-sbom's scan cannot disagree.
    pub fn from_tar_type(byte: u8) -> Self {
        match byte {
            b'0' | b'\0' | b'7' => EntryKind::File,
            b'5' => EntryKind::Dir,
            b'2' => EntryKind::Symlink,
            b'1' => EntryKind::HardLink,
            b'3' => EntryKind::CharDevice,
            b'4' => EntryKind::BlockDevice,
            b'6' => EntryKind::Fifo,
            other => EntryKind::Other(other),
        }
    }
}

/// Why an entry was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected {
    /// The entry's path as the tar header has it.
    pub entry: String,
    pub reason: String,
}

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "entry `{}`: {}", self.entry, self.reason)
    }
}

#[derive(Clone, Debug)]
enum Node {
    Dir,
    File,
    Symlink { target: String },
}

/// The filesystem of the layers seen so far, reduced to what the checks need.
#[derive(Default, Debug)]
pub struct LayerSet {
    nodes: BTreeMap<String, Node>,
}

/// What an accepted entry is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Accepted {
    /// The root directory itself (`./`, `/`): nothing to record.
    Root,
    /// A whiteout: `path` (or, when `opaque`, everything below `path`) is deleted.
    Whiteout { path: String, opaque: bool },
    /// An entry at the normalized `path` (no leading `/`); for a hard link, `link` is the
    /// normalized target.
    Entry { path: String, link: Option<String> },
}

/// Why [`normalize`] refuses a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the path contains `..`, which could climb out of the image's root")]
pub struct ClimbsOut;

/// Normalizes a path inside the image: no leading `./` or `/`, no `.` or empty
/// components, no trailing `/`. `..` is refused, never resolved: inside a layer it can only
/// be meant to climb out. The empty string is the root.
pub fn normalize(raw: &str) -> Result<String, ClimbsOut> {
    let mut out: Vec<&str> = Vec::new();
    for c in raw.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(ClimbsOut),
            c => out.push(c),
        }
    }
    Ok(out.join("/"))
}

impl LayerSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks one entry of the current layer (layers in order, entries in tar order) and
    /// records it. `link` is the symlink or hard link target.
    pub fn entry(
        &mut self,
        raw: &str,
        kind: EntryKind,
        link: Option<&str>,
    ) -> Result<Accepted, Rejected> {
        let reject = |reason: String| Rejected {
            entry: raw.to_string(),
            reason,
        };
        let path = normalize(raw).map_err(|e| reject(e.to_string()))?;
        if path.is_empty() {
            return match kind {
                EntryKind::Dir => Ok(Accepted::Root),
                _ => Err(reject("the root of the image is not a directory".into())),
            };
        }
        let (dir, base) = path.rsplit_once('/').unwrap_or(("", path.as_str()));
        self.check_parents(&path).map_err(reject)?;
        if base == ".wh..wh..opq" {
            let prefix = format!("{dir}/");
            self.nodes
                .retain(|p, _| !(dir.is_empty() || p.starts_with(&prefix)));
            return Ok(Accepted::Whiteout {
                path: dir.to_string(),
                opaque: true,
            });
        }
        if let Some(hidden) = base.strip_prefix(".wh.") {
            if hidden.is_empty() || hidden == "." || hidden == ".." {
                return Err(reject(format!("`{base}` is not a valid whiteout")));
            }
            let target = if dir.is_empty() {
                hidden.to_string()
            } else {
                format!("{dir}/{hidden}")
            };
            let prefix = format!("{target}/");
            self.nodes
                .retain(|p, _| p != &target && !p.starts_with(&prefix));
            return Ok(Accepted::Whiteout {
                path: target,
                opaque: false,
            });
        }
        let node = match kind {
            EntryKind::File => Node::File,
            EntryKind::Dir => Node::Dir,
            EntryKind::Fifo => Node::File,
            EntryKind::Symlink => {
                let target = link.unwrap_or_default();
                if target.is_empty() {
                    return Err(reject("a symlink without a target".into()));
                }
                Node::Symlink {
                    target: target.to_string(),
                }
            }
            EntryKind::HardLink => {
                let target = normalize(link.unwrap_or_default())
                    .map_err(|why| reject(format!("hard link target: {why}")))?;
                match self.nodes.get(&target) {
                    Some(Node::File) => {}
                    Some(Node::Dir) => {
                        return Err(reject(format!("a hard link to the directory `/{target}`")));
                    }
                    Some(Node::Symlink { .. }) | None => {
                        return Err(reject(format!(
                            "a hard link to `/{target}`, which is not a file of the layers before it (it could link a file outside the layer set)"
                        )));
                    }
                }
                self.nodes.insert(path.clone(), Node::File);
                return Ok(Accepted::Entry {
                    path,
                    link: Some(target),
                });
            }
            EntryKind::CharDevice | EntryKind::BlockDevice => {
                return Err(reject(format!(
                    "a {} device node; an image layer must not carry devices (the runtime provides them)",
                    if kind == EntryKind::CharDevice {
                        "character"
                    } else {
                        "block"
                    }
                )));
            }
            EntryKind::Other(t) => {
                return Err(reject(format!(
                    "unsupported tar entry type `{}` ({t:#04x})",
                    (t as char).escape_default()
                )));
            }
        };
        // A non-directory replacing a directory hides everything below it.
        if !matches!(node, Node::Dir) {
            let prefix = format!("{path}/");
            self.nodes.retain(|p, _| !p.starts_with(&prefix));
        }
        self.nodes.insert(path.clone(), node);
        Ok(Accepted::Entry { path, link: None })
    }

    /// Refuses an entry whose parent directories, followed through the symlinks of the
    /// layers so far, leave the root: an absolute target (a naive extraction resolves it on
    /// the host) or more `..` than there are directories above. Extracting it would write
    /// outside the image.
    ///
    /// The `Err` is a [`Rejected::reason`], a line of the report that names the entry, not an
    /// error of its own: a `String` is the model.
    fn check_parents(&self, path: &str) -> Result<(), String> {
        let Some((parent, _)) = path.rsplit_once('/') else {
            return Ok(());
        };
        let mut todo: std::collections::VecDeque<String> =
            parent.split('/').map(str::to_string).collect();
        let mut cur: Vec<String> = Vec::new();
        let mut hops = 0;
        let mut last_link: Option<(String, String)> = None;
        let escape = |link: &str, target: &str| {
            format!(
                "written through the symlink `/{link}` -> `{target}`, which points outside the image's root"
            )
        };
        while let Some(c) = todo.pop_front() {
            match c.as_str() {
                "" | "." => continue,
                ".." => {
                    // Only symlink targets bring `..` here: climbing above the root escapes.
                    if cur.pop().is_none() {
                        let (link, target) = last_link.clone().unwrap_or_default();
                        return Err(escape(&link, &target));
                    }
                    continue;
                }
                _ => cur.push(c),
            }
            let here = cur.join("/");
            if let Some(Node::Symlink { target }) = self.nodes.get(&here) {
                hops += 1;
                if hops > 40 {
                    return Err(format!("too many levels of symlinks below `/{here}`"));
                }
                if target.starts_with('/') {
                    return Err(escape(&here, target));
                }
                cur.pop();
                last_link = Some((here.clone(), target.clone()));
                for t in target.split('/').rev() {
                    todo.push_front(t.to_string());
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use EntryKind::*;

    #[test]
    fn normalizes_what_oci_allows_and_refuses_dotdot() {
        assert_eq!(normalize("./usr//bin/./x/").unwrap(), "usr/bin/x");
        assert_eq!(normalize("/etc/passwd").unwrap(), "etc/passwd");
        assert_eq!(normalize("./").unwrap(), "");
        assert!(normalize("../etc/passwd").is_err());
        assert!(normalize("usr/../../etc").is_err());
    }

    #[test]
    fn hostile_entries_are_refused_with_a_reason() {
        let mut s = LayerSet::new();
        assert_eq!(s.entry("./", Dir, None).unwrap(), Accepted::Root);
        s.entry("etc/", Dir, None).unwrap();
        s.entry("etc/passwd", File, None).unwrap();
        let e = s.entry("./../../../tmp/x", File, None).unwrap_err();
        assert!(e.reason.contains("`..`"), "{e}");
        assert_eq!(e.entry, "./../../../tmp/x");

        s.entry("up", Symlink, Some("../../../../tmp")).unwrap();
        s.entry("abs", Symlink, Some("/etc")).unwrap();
        s.entry("lib", Symlink, Some("usr/lib")).unwrap();
        assert!(
            s.entry("up/evil", File, None)
                .unwrap_err()
                .reason
                .contains("symlink `/up`")
        );
        assert!(s.entry("abs/cron.d/x", File, None).is_err());
        // An in-root relative link may be written through.
        s.entry("lib/libc.so", File, None).unwrap();
        // A chain: an in-root link to a link that escapes.
        s.entry("usr/share/via", Symlink, Some("../../up")).unwrap();
        assert!(
            s.entry("usr/share/via/x", File, None)
                .unwrap_err()
                .reason
                .contains("outside the image's root")
        );
        s.entry("deep/a", Symlink, Some("../../..")).unwrap();
        assert!(s.entry("deep/a/x", File, None).is_err());

        assert!(
            s.entry("h", HardLink, Some("/host/etc/shadow"))
                .unwrap_err()
                .reason
                .contains("not a file of the layers")
        );
        assert!(s.entry("h2", HardLink, Some("../etc/passwd")).is_err());
        assert_eq!(
            s.entry("h3", HardLink, Some("./etc/passwd")).unwrap(),
            Accepted::Entry {
                path: "h3".into(),
                link: Some("etc/passwd".into())
            }
        );
        assert!(
            s.entry("dev/sda", BlockDevice, None)
                .unwrap_err()
                .reason
                .contains("block device")
        );
        assert!(
            s.entry("dev/null", CharDevice, None)
                .unwrap_err()
                .reason
                .contains("character device")
        );
    }

    #[test]
    fn whiteouts_delete_and_stay_supported() {
        let mut s = LayerSet::new();
        s.entry("a/f", File, None).unwrap();
        s.entry("a/g", File, None).unwrap();
        assert_eq!(
            s.entry("a/.wh.f", File, None).unwrap(),
            Accepted::Whiteout {
                path: "a/f".into(),
                opaque: false
            }
        );
        assert!(s.entry("x", HardLink, Some("a/f")).is_err(), "deleted");
        s.entry("x", HardLink, Some("a/g")).unwrap();
        assert_eq!(
            s.entry("a/.wh..wh..opq", File, None).unwrap(),
            Accepted::Whiteout {
                path: "a".into(),
                opaque: true
            }
        );
        assert!(s.entry("y", HardLink, Some("a/g")).is_err());
        assert!(s.entry("a/.wh...", File, None).is_err());
    }
}
