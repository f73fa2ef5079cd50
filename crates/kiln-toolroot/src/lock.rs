//! [`RootLock`]: every input of a toolchain root, pinned by sha256, and (once packed) the
//! digests of the root itself.
//!
//! The lock is the whole definition of a root: `fetch` obtains exactly the files it names,
//! `pack` turns them into bytes with no other input but `SOURCE_DATE_EPOCH`, so anyone with
//! the lock (and kiln) rebuilds the same layout. It is written as canonical JSON, sorted,
//! through a rename, so the same lock is the same bytes and its [`RootLock::digest`] can be
//! quoted in release notes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use kiln_core::{Digest, canonical, fsx};
use serde::{Deserialize, Serialize};

use crate::error::{Result, ToolrootError};

/// The `schema` of every v1 lock.
pub const SCHEMA: &str = "https://kiln.dev/toolchain-root/v1";

/// A pinned toolchain root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootLock {
    /// Always [`SCHEMA`]; a reader of another version refuses the lock instead of guessing.
    pub schema: String,
    /// The root's name, e.g. `bookworm-rust-1.95.0`: the lock's file name and the layout's
    /// ref name.
    pub name: String,
    /// The Rust target triple the root compiles for (and runs on).
    pub target: String,
    pub rust: RustPin,
    pub debian: DebianPin,
    /// Symlinks kiln adds (root path → link target): the usrmerge links, `cc`, and whatever
    /// a package would have made with a maintainer script that kiln does not run.
    pub links: BTreeMap<String, String>,
    /// The packed root, filled by `pack` (absent in a fresh pin). When present, `pack`
    /// must reproduce it exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<RootDigests>,
    /// What the root's own tools say about themselves (`rustc -vV`, `cargo -vV`, `cc
    /// --version`, `rustc --print cfg`, the tools' sha256), asked inside the installed root
    /// by `kiln toolchain pack` after `root` is known. Derived, not an input: a build reads
    /// it instead of detecting the toolchain, and the root's tree digest vouches for the
    /// files it describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toolchain: Option<kiln_toolchain::ToolchainLock>,
}

/// The Rust toolchain: official dist tarballs of one release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RustPin {
    /// The release, e.g. `1.95.0`.
    pub version: String,
    /// The channel manifest the components were read from (for review; not fetched again).
    pub channel_url: String,
    /// In install order: `rustc`, `cargo`, `rust-std-<target>`.
    pub components: Vec<RustComponent>,
}

/// One dist tarball (`<component>-<version>-<target>.tar.xz`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RustComponent {
    /// The component as the tarball's `components` file names it (`rust-std-<target>`).
    pub name: String,
    pub url: String,
    /// Lowercase hex, as the channel manifest's `xz_hash` gives it.
    pub sha256: String,
    /// Bytes, when the server said so at pin time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

/// The C side: binary packages of one Debian suite.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DebianPin {
    /// Where `pool/...` file names are fetched from, e.g. `https://deb.debian.org/debian`.
    pub mirror: String,
    pub suite: String,
    /// Sorted by name, one stanza each.
    pub packages: Vec<DebPackage>,
}

/// One `.deb`, as its `Packages` stanza describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DebPackage {
    pub name: String,
    pub version: String,
    pub architecture: String,
    /// Relative to the mirror, e.g. `pool/main/g/gcc-12/gcc-12_12.2.0-14_amd64.deb`.
    pub filename: String,
    pub size: u64,
    /// Lowercase hex, as the stanza's `SHA256` gives it.
    pub sha256: String,
}

/// What identifies a packed root: its OCI manifest and the tree it unpacks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootDigests {
    /// The image manifest digest of the layout `pack` writes.
    pub manifest: Digest,
    /// The Merkle digest of the unpacked tree (see the `tree` module): what an installed
    /// root is checked against.
    pub tree: Digest,
}

/// An input of the lock, named for messages (`Debian package gcc-12 12.2.0-14`).
#[derive(Debug, Clone)]
pub(crate) struct InputRef {
    pub label: String,
    /// The file name a local directory holds it under.
    pub file_name: String,
    pub url: String,
    pub sha256: String,
    pub size: Option<u64>,
}

impl RootLock {
    /// sha256 of the lock's canonical JSON: one value that names every input and the root.
    pub fn digest(&self) -> Digest {
        Digest::of(&canonical::to_vec(self).expect("a lock serializes"))
    }

    /// The digest of the lock without `root`: what the packed image records as its inputs
    /// (the root's own digests cannot be part of the bytes they name).
    pub(crate) fn inputs_digest(&self) -> Digest {
        let mut l = self.clone();
        l.root = None;
        l.toolchain = None;
        l.digest()
    }

    /// Reads and validates a lock. Errors name the file, the JSON path of the bad field and
    /// what is wrong with it.
    pub fn read(path: &Path) -> Result<RootLock> {
        let bytes = std::fs::read(path).map_err(ToolrootError::io("reading", path))?;
        Self::from_slice(&bytes, &path.display().to_string())
    }

    /// Parses and validates lock bytes; `file` names them in errors.
    pub fn from_slice(bytes: &[u8], file: &str) -> Result<RootLock> {
        let de = &mut serde_json::Deserializer::from_slice(bytes);
        let lock: RootLock = serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e.path().to_string();
            ToolrootError::LockSyntax {
                file: file.to_string(),
                field,
                detail: e.into_inner().to_string(),
            }
        })?;
        lock.validate(file)?;
        Ok(lock)
    }

    /// Writes the lock as canonical, indented JSON, atomically (temp file, rename).
    pub fn write(&self, path: &Path) -> Result<()> {
        self.validate(&path.display().to_string())?;
        let bytes = canonical::to_vec_pretty(self).expect("a lock serializes");
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fsx::create_dir_all(parent).map_err(ToolrootError::io("creating", parent))?;
        }
        fsx::write_atomic(path, &bytes).map_err(ToolrootError::io("writing", path))
    }

    /// Checks the rules serde cannot: schema, names, hex digests, sorted unique packages,
    /// safe relative paths. `file` names the lock in errors.
    pub fn validate(&self, file: &str) -> Result<()> {
        let bad = |field: String, problem: String| ToolrootError::LockInvalid {
            file: file.to_string(),
            field,
            problem,
        };
        if self.schema != SCHEMA {
            return Err(bad(
                "schema".into(),
                format!("`{}` is not `{SCHEMA}`", self.schema),
            ));
        }
        if !valid_name(&self.name) {
            return Err(bad(
                "name".into(),
                format!(
                    "`{}` must be letters, digits and `-._+`, starting with a letter or digit",
                    self.name
                ),
            ));
        }
        crate::pin::arch_of(&self.target).map_err(|e| bad("target".into(), e.to_string()))?;
        if self.rust.version.is_empty() {
            return Err(bad("rust.version".into(), "is empty".into()));
        }
        if self.rust.components.is_empty() {
            return Err(bad("rust.components".into(), "is empty".into()));
        }
        let mut names = BTreeSet::new();
        for (i, c) in self.rust.components.iter().enumerate() {
            let f = |k: &str| format!("rust.components[{i}].{k}");
            if !valid_name(&c.name) {
                return Err(bad(
                    f("name"),
                    format!("`{}` is not a component name", c.name),
                ));
            }
            if !names.insert(c.name.as_str()) {
                return Err(bad(f("name"), format!("`{}` is listed twice", c.name)));
            }
            check_url(&c.url).map_err(|p| bad(f("url"), p))?;
            check_hex(&c.sha256).map_err(|p| bad(f("sha256"), p))?;
            url_file_name(&c.url).map_err(|p| bad(f("url"), p))?;
        }
        check_url(&self.debian.mirror).map_err(|p| bad("debian.mirror".into(), p))?;
        if self.debian.suite.is_empty() || self.debian.suite.contains('/') {
            return Err(bad(
                "debian.suite".into(),
                format!("`{}` is not a suite name", self.debian.suite),
            ));
        }
        for (i, p) in self.debian.packages.iter().enumerate() {
            let f = |k: &str| format!("debian.packages[{i}].{k}");
            if !valid_name(&p.name) {
                return Err(bad(
                    f("name"),
                    format!("`{}` is not a package name", p.name),
                ));
            }
            if let Some(prev) = i.checked_sub(1).map(|j| &self.debian.packages[j])
                && prev.name.as_bytes() >= p.name.as_bytes()
            {
                return Err(bad(
                    f("name"),
                    format!(
                        "`{}` follows `{}`: packages must be sorted by name, each once",
                        p.name, prev.name
                    ),
                ));
            }
            if p.version.is_empty() || p.architecture.is_empty() {
                return Err(bad(
                    f("version"),
                    "version and architecture must be set".into(),
                ));
            }
            check_rel_path(&p.filename).map_err(|e| bad(f("filename"), e))?;
            if !p.filename.ends_with(".deb") {
                return Err(bad(
                    f("filename"),
                    format!("`{}` is not a .deb", p.filename),
                ));
            }
            check_hex(&p.sha256).map_err(|e| bad(f("sha256"), e))?;
        }
        for (path, target) in &self.links {
            let f = format!("links.{path}");
            check_rel_path(path).map_err(|e| bad(f.clone(), e))?;
            if target.is_empty() || target.contains('\0') {
                return Err(bad(f, "the link target must be a non-empty path".into()));
            }
        }
        Ok(())
    }

    /// Every input in pack order (Rust components as listed, then packages by name).
    pub(crate) fn inputs(&self, mirror_override: Option<&str>) -> Vec<InputRef> {
        let mirror = mirror_override
            .unwrap_or(&self.debian.mirror)
            .trim_end_matches('/');
        let mut out: Vec<InputRef> = self
            .rust
            .components
            .iter()
            .map(|c| InputRef {
                label: format!("Rust component `{}` {}", c.name, self.rust.version),
                file_name: url_file_name(&c.url).unwrap_or_default().to_string(),
                url: c.url.clone(),
                sha256: c.sha256.clone(),
                size: c.size,
            })
            .collect();
        out.extend(self.debian.packages.iter().map(|p| {
            InputRef {
                label: format!("Debian package `{}` {}", p.name, p.version),
                file_name: p
                    .filename
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_string(),
                url: format!("{mirror}/{}", p.filename),
                sha256: p.sha256.clone(),
                size: Some(p.size),
            }
        }));
        out
    }
}

/// The last path segment of a URL: the name a local directory holds the file under.
pub(crate) fn url_file_name(url: &str) -> std::result::Result<&str, String> {
    let name = url.rsplit('/').next().unwrap_or_default();
    if name.is_empty() || name == "." || name == ".." {
        return Err(format!("`{url}` does not end in a file name"));
    }
    Ok(name)
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._+".contains(&b))
}

fn check_url(u: &str) -> std::result::Result<(), String> {
    if (u.starts_with("https://") || u.starts_with("http://")) && !u.contains(char::is_whitespace) {
        Ok(())
    } else {
        Err(format!("`{u}` is not an http(s) URL"))
    }
}

pub(crate) fn check_hex(s: &str) -> std::result::Result<(), String> {
    if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(())
    } else {
        Err(format!("`{s}` is not 64 lowercase hex digits (a sha256)"))
    }
}

/// A root-relative path: `/`-separated, no empty, `.` or `..` components, not absolute.
pub(crate) fn check_rel_path(p: &str) -> std::result::Result<(), String> {
    if p.is_empty() || p.starts_with('/') || p.contains('\0') {
        return Err(format!("`{p}` must be a relative path"));
    }
    if p.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
        return Err(format!(
            "`{p}` must be normalized (no empty, `.` or `..` components)"
        ));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample() -> RootLock {
        RootLock {
            schema: SCHEMA.into(),
            name: "test-root".into(),
            target: "x86_64-unknown-linux-gnu".into(),
            rust: RustPin {
                version: "1.0.0".into(),
                channel_url: "https://static.rust-lang.org/dist/channel-rust-1.0.0.toml".into(),
                components: vec![RustComponent {
                    name: "rustc".into(),
                    url: "https://example.org/rustc-1.0.0-x86_64-unknown-linux-gnu.tar.xz".into(),
                    sha256: "a".repeat(64),
                    size: Some(3),
                }],
            },
            debian: DebianPin {
                mirror: "https://deb.debian.org/debian".into(),
                suite: "bookworm".into(),
                packages: vec![
                    DebPackage {
                        name: "a".into(),
                        version: "1".into(),
                        architecture: "amd64".into(),
                        filename: "pool/main/a/a/a_1_amd64.deb".into(),
                        size: 1,
                        sha256: "b".repeat(64),
                    },
                    DebPackage {
                        name: "b".into(),
                        version: "1".into(),
                        architecture: "all".into(),
                        filename: "pool/main/b/b/b_1_all.deb".into(),
                        size: 1,
                        sha256: "c".repeat(64),
                    },
                ],
            },
            links: BTreeMap::from([("bin".into(), "usr/bin".into())]),
            root: None,
            toolchain: None,
        }
    }

    #[test]
    fn round_trip_is_canonical_and_stable() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.lock.json");
        let mut lock = sample();
        lock.root = Some(RootDigests {
            manifest: Digest::of(b"m"),
            tree: Digest::of(b"t"),
        });
        lock.write(&p).unwrap();
        let back = RootLock::read(&p).unwrap();
        assert_eq!(back, lock);
        assert_eq!(back.digest(), lock.digest());
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(bytes, canonical::to_vec_pretty(&lock).unwrap());
        // The inputs digest ignores the root; the full digest does not.
        let mut bare = lock.clone();
        bare.root = None;
        assert_eq!(bare.inputs_digest(), lock.inputs_digest());
        assert_ne!(bare.digest(), lock.digest());
    }

    #[test]
    fn unknown_field_names_file_and_field() {
        let mut v = serde_json::to_value(sample()).unwrap();
        v["debian"]["packages"][1]["md5"] = "x".into();
        let bytes = canonical::to_vec(&v).unwrap();
        let e = RootLock::from_slice(&bytes, "t.lock.json").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("t.lock.json"), "{msg}");
        assert!(msg.contains("debian.packages[1]"), "{msg}");
        assert!(msg.contains("md5"), "{msg}");
        assert!(kiln_core::Hint::hint(&e).is_some());
    }

    #[test]
    fn bad_values_name_the_field() {
        type Mutate = Box<dyn Fn(&mut RootLock)>;
        let cases: Vec<(Mutate, &str)> = vec![
            (Box::new(|l| l.schema = "v0".into()), "schema"),
            (
                Box::new(|l| l.debian.packages[0].sha256 = "XYZ".into()),
                "debian.packages[0].sha256",
            ),
            (
                Box::new(|l| l.debian.packages.swap(0, 1)),
                "debian.packages[1].name",
            ),
            (
                Box::new(|l| l.debian.packages[1].filename = "../x.deb".into()),
                "debian.packages[1].filename",
            ),
            (
                Box::new(|l| {
                    l.links.insert("/etc/x".into(), "y".into());
                }),
                "links./etc/x",
            ),
            (
                Box::new(|l| l.target = "sparc-sun-solaris".into()),
                "target",
            ),
            (
                Box::new(|l| l.rust.components[0].url = "ftp://x/y".into()),
                "rust.components[0].url",
            ),
        ];
        for (mutate, field) in cases {
            let mut l = sample();
            mutate(&mut l);
            let bytes = canonical::to_vec(&l).unwrap();
            let e = RootLock::from_slice(&bytes, "f.lock.json").unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains(&format!("field `{field}`")), "{field}: {msg}");
            assert!(msg.contains("f.lock.json"), "{msg}");
        }
    }

    #[test]
    fn not_json_is_an_error_not_a_panic() {
        for bytes in [&b""[..], b"{", b"[]", b"{\"schema\": 3}"] {
            assert!(RootLock::from_slice(bytes, "x").is_err());
        }
        let d = tempfile::tempdir().unwrap();
        let e = RootLock::read(&d.path().join("missing.json")).unwrap_err();
        assert!(e.to_string().contains("missing.json"));
    }
}
