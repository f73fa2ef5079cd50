//! `pack`: the fetched inputs of a lock → one deterministic OCI image layout, and the
//! tree digest of the root it unpacks to. No network, no clock (only
//! `SOURCE_DATE_EPOCH`), no host state: entries sorted, times = SDE, owners 0:0, modes
//! 0755/0644 by the executable bit (kiln-oci's layer rules), inputs read in parallel but
//! each into its own tree, so neither the thread count nor the umask can change a byte.
//!
//! Layers: one per input, in the lock's order (Rust components, then packages by name),
//! then one of kiln's own (the `links`, the mountpoints, the Rust installer's lists). A
//! layer is a function of its input alone, so a root that changes one package shares
//! every other layer with the previous root. Two inputs may ship the same path only with
//! the same content (a directory, an identical file or link); anything else is a
//! [`ToolrootError::Conflict`], found before anything is written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kiln_core::{Digest, fsx};
use kiln_oci::{Image, ImageConfig, Layer, Platform};
use rayon::prelude::*;

use crate::error::{Result, ToolrootError};
use crate::fetch::{Inputs, check_file};
use crate::lock::{RootDigests, RootLock};
use crate::tree::{self, Node};
use crate::unpack::{self, Blobs, InputTree, RUST_PREFIX};

/// Empty directories every root has, where a sandbox mounts `/dev`, `/proc` and a
/// writable `/tmp` (no package creates them: base-files is not in a toolchain root).
pub const MOUNTPOINTS: &[&str] = &["dev", "proc", "tmp"];

/// The `PATH` recorded in the image config: the Rust tools, then Debian's.
pub const ROOT_PATH: &str = "/usr/local/bin:/usr/bin";

/// The manifest annotation naming the lock (without `root`) an image was packed from.
pub const ANNOTATION_LOCK: &str = "dev.kiln.toolroot.lock";

/// A packed root: its layout and what identifies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedRoot {
    /// The image manifest digest (what `RootLock::root.manifest` pins).
    pub manifest: Digest,
    /// The tree digest of the unpacked root (`RootLock::root.tree`).
    pub tree: Digest,
    /// The OCI image layout directory.
    pub layout: PathBuf,
}

impl PackedRoot {
    /// The two digests, as a lock's `root` holds them.
    pub fn digests(&self) -> RootDigests {
        RootDigests {
            manifest: self.manifest,
            tree: self.tree,
        }
    }
}

impl AsRef<Path> for PackedRoot {
    fn as_ref(&self) -> &Path {
        &self.layout
    }
}

/// Packs `lock`'s `inputs` into an OCI image layout at `layout_dir` (replaced atomically:
/// staged next to it, swapped in complete). Every input is re-checked against its pinned
/// sha256 first. When the lock already names a `root`, the result must equal it, or
/// nothing is written ([`ToolrootError::NotReproduced`]).
pub fn pack(lock: &RootLock, inputs: &Inputs, layout_dir: &Path, sde: u64) -> Result<PackedRoot> {
    lock.validate("the lock")?;
    let parent = layout_dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fsx::create_dir_all(parent).map_err(ToolrootError::io("creating", parent))?;
    let scratch = tempfile::Builder::new()
        .prefix(".kiln-toolroot-scratch-")
        .tempdir_in(parent)
        .map_err(ToolrootError::io("creating a scratch directory in", parent))?;
    let blobs = Blobs::new(scratch.path().to_path_buf());

    let refs = lock.inputs(None);
    let n_rust = lock.rust.components.len();
    let unpacked: Vec<Result<(InputTree, Option<String>)>> = refs
        .par_iter()
        .enumerate()
        .map(|(i, r)| {
            let path = inputs
                .path(&r.sha256)
                .ok_or_else(|| ToolrootError::MissingInput {
                    input: r.label.clone(),
                    sha256: r.sha256.clone(),
                })?;
            check_file(path, r)?;
            if i < n_rust {
                let c = unpack::rust_component(
                    path,
                    &r.file_name,
                    &lock.rust.components[i].name,
                    &r.label,
                    &blobs,
                )?;
                Ok((c.tree, Some(c.installer_version)))
            } else {
                Ok((unpack::deb(path, &r.label, &blobs)?, None))
            }
        })
        .collect();
    let mut trees = Vec::with_capacity(unpacked.len() + 1);
    let mut installer_version = None;
    for u in unpacked {
        let (t, v) = u?;
        if v.is_some() {
            installer_version = v;
        }
        trees.push(t);
    }
    trees.push(kiln_tree(lock, installer_version.as_deref(), &blobs)?);

    let merged = merge(&trees)?;
    let tree_digest = tree::digest(&merged);

    let mut layers = Vec::with_capacity(trees.len());
    for (t, r) in trees.iter().zip(refs.iter().map(Some).chain([None])) {
        let mut layer = Layer::new();
        for (path, node) in &t.entries {
            let added = match node {
                Node::Dir => layer.add_dir(path, 0o755),
                Node::Symlink(target) => layer.add_symlink(path, target),
                Node::File { digest, exec, .. } => layer.add_file(
                    path,
                    blobs.path(digest),
                    Some(if *exec { 0o755 } else { 0o644 }),
                ),
            };
            added.map_err(ToolrootError::oci(layout_dir))?;
        }
        let created_by = match r {
            Some(r) => format!("kiln-toolroot: {} (sha256 {})", r.label, r.sha256),
            None => "kiln-toolroot: links, mountpoints and the Rust installer's lists".into(),
        };
        layers.push((layer, created_by));
    }

    let (architecture, variant) = crate::pin::oci_arch(&lock.target)?;
    let mut config = ImageConfig::new(Platform {
        os: "linux".into(),
        architecture: architecture.into(),
        variant: variant.map(str::to_string),
    });
    config.env = vec![format!("PATH={ROOT_PATH}")];
    config.annotations = BTreeMap::from([
        (
            ANNOTATION_LOCK.to_string(),
            lock.inputs_digest().to_string(),
        ),
        (
            "org.opencontainers.image.title".to_string(),
            lock.name.clone(),
        ),
    ]);
    let image = Image {
        sde,
        base: None,
        layers,
        config,
    };
    let staging =
        fsx::StagingDir::new(layout_dir).map_err(ToolrootError::io("staging", layout_dir))?;
    let built = image
        .write_layout(staging.path(), &lock.name)
        .map_err(ToolrootError::oci(layout_dir))?;
    let packed = PackedRoot {
        manifest: built.manifest.digest,
        tree: tree_digest,
        layout: layout_dir.to_path_buf(),
    };
    if let Some(pinned) = &lock.root {
        for (field, want, got) in [
            ("root.manifest", pinned.manifest, packed.manifest),
            ("root.tree", pinned.tree, packed.tree),
        ] {
            if want != got {
                return Err(ToolrootError::NotReproduced {
                    field,
                    pinned: want,
                    got,
                });
            }
        }
    }
    staging
        .commit()
        .map_err(ToolrootError::io("moving into place", layout_dir))?;
    Ok(packed)
}

/// kiln's own layer: the mountpoints, the lock's links, and the Rust installer's shared
/// lists (`lib/rustlib/components` in install order, `rust-installer-version`).
fn kiln_tree(lock: &RootLock, installer_version: Option<&str>, blobs: &Blobs) -> Result<InputTree> {
    let mut t = InputTree::new("the lock's `links` (kiln's own layer)");
    for m in MOUNTPOINTS {
        t.insert(m.to_string(), Node::Dir)?;
    }
    let mut file = |path: String, text: String| -> Result<()> {
        let (digest, size) = blobs
            .store_bytes(text.as_bytes())
            .map_err(ToolrootError::io("writing scratch data for", path.clone()))?;
        t.insert(
            path,
            Node::File {
                digest,
                size,
                exec: false,
            },
        )
    };
    let names: String = lock
        .rust
        .components
        .iter()
        .map(|c| format!("{}\n", c.name))
        .collect();
    file(format!("{RUST_PREFIX}/lib/rustlib/components"), names)?;
    if let Some(v) = installer_version {
        file(
            format!("{RUST_PREFIX}/lib/rustlib/rust-installer-version"),
            format!("{v}\n"),
        )?;
    }
    for (path, target) in &lock.links {
        t.insert(path.clone(), Node::Symlink(target.clone()))?;
    }
    Ok(t)
}

/// The root the trees make together, or the first conflict: one path with two different
/// nodes, or a path below something that is not a directory in another tree (a file
/// written through a symlink). Missing parents become directories.
pub(crate) fn merge(trees: &[InputTree]) -> Result<BTreeMap<String, Node>> {
    let mut merged: BTreeMap<&str, (&Node, usize)> = BTreeMap::new();
    for (i, t) in trees.iter().enumerate() {
        for (p, n) in &t.entries {
            match merged.get(p.as_str()) {
                None => {
                    merged.insert(p, (n, i));
                }
                Some((old, _)) if *old == n => {}
                Some((old, j)) => {
                    return Err(ToolrootError::conflict(
                        p.clone(),
                        (old.describe(), &trees[*j].label),
                        (n.describe(), &t.label),
                    ));
                }
            }
        }
    }
    let mut out: BTreeMap<String, Node> = BTreeMap::new();
    for (p, (n, i)) in &merged {
        for (pos, _) in p.match_indices('/') {
            let anc = &p[..pos];
            match merged.get(anc) {
                Some((Node::Dir, _)) => {}
                Some((other, j)) => {
                    return Err(ToolrootError::conflict(
                        anc,
                        (other.describe(), &trees[*j].label),
                        (format!("a directory (it holds `{p}`)"), &trees[*i].label),
                    ));
                }
                None => {
                    out.entry(anc.to_string()).or_insert(Node::Dir);
                }
            }
        }
        out.insert(p.to_string(), (*n).clone());
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::lock::{DebPackage, DebianPin, RustComponent, RustPin, SCHEMA};
    use crate::unpack::fixtures::{E, deb, rust_tarball};

    /// A small lock over synthetic inputs written to `dir/local`, and its inputs.
    pub(crate) fn synthetic(dir: &Path) -> (RootLock, Inputs) {
        let local = dir.join("local");
        std::fs::create_dir_all(&local).unwrap();
        let rustc = rust_tarball(
            "rustc-1.0.0-x86_64-unknown-linux-gnu",
            "rustc",
            &[
                ("bin/rustc", b"#!/bin/sh\necho rustc\n", 0o755),
                ("lib/librustc_driver.so", b"driver", 0o644),
            ],
        );
        let libc = deb(&[
            E::Dir("./"),
            E::Dir("./lib/"),
            E::Dir("./lib/x86_64-linux-gnu/"),
            E::File("./lib/x86_64-linux-gnu/libc.so.6", b"libc", 0o755),
            E::Dir("./lib64/"),
            E::Symlink(
                "./lib64/ld-linux-x86-64.so.2",
                "/lib/x86_64-linux-gnu/ld.so",
            ),
            E::Dir("./usr/share/doc/libc6/"),
            E::File("./usr/share/doc/libc6/copyright", b"LGPL", 0o644),
        ]);
        let dash = deb(&[
            E::Dir("./bin/"),
            E::File("./bin/dash", b"dash", 0o755),
            E::Symlink("./bin/sh", "dash"),
            E::Dir("./usr/share/doc/dash/"),
            E::File("./usr/share/doc/dash/copyright", b"BSD", 0o644),
        ]);
        let mut packages = Vec::new();
        for (name, bytes) in [("dash", &dash), ("libc6", &libc)] {
            let file = format!("{name}_1_amd64.deb");
            std::fs::write(local.join(&file), bytes).unwrap();
            packages.push(DebPackage {
                name: name.into(),
                version: "1".into(),
                architecture: "amd64".into(),
                filename: format!("pool/main/{file}"),
                size: bytes.len() as u64,
                sha256: Digest::of(bytes).hex(),
            });
        }
        let rustc_name = "rustc-1.0.0-x86_64-unknown-linux-gnu.tar.xz";
        std::fs::write(local.join(rustc_name), &rustc).unwrap();
        let lock = RootLock {
            schema: SCHEMA.into(),
            name: "synthetic".into(),
            target: "x86_64-unknown-linux-gnu".into(),
            rust: RustPin {
                version: "1.0.0".into(),
                channel_url: "https://static.rust-lang.org/dist/channel-rust-1.0.0.toml".into(),
                components: vec![RustComponent {
                    name: "rustc".into(),
                    url: format!("https://static.rust-lang.org/dist/x/{rustc_name}"),
                    sha256: Digest::of(&rustc).hex(),
                    size: Some(rustc.len() as u64),
                }],
            },
            debian: DebianPin {
                mirror: "https://deb.debian.org/debian".into(),
                suite: "bookworm".into(),
                packages,
            },
            links: crate::pin::default_links(&["dash".to_string()]),
            root: None,
            toolchain: None,
        };
        let inputs = crate::fetch(&lock, &dir.join("cache"), None, &[local]).unwrap();
        (lock, inputs)
    }

    fn umask(m: u32) -> u32 {
        // SAFETY: umask only swaps the process's file mode creation mask; it cannot fail.
        unsafe { libc::umask(m as libc::mode_t) as u32 }
    }

    #[test]
    fn pack_is_deterministic_across_umask_and_threads() {
        let d = tempfile::tempdir().unwrap();
        let (lock, inputs) = synthetic(d.path());
        let pool = |n| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .unwrap()
        };
        let a = pool(4)
            .install(|| pack(&lock, &inputs, &d.path().join("a"), 1_700_000_000))
            .unwrap();
        let old = umask(0o077);
        let b = pool(1).install(|| pack(&lock, &inputs, &d.path().join("b"), 1_700_000_000));
        umask(old);
        let b = b.unwrap();
        assert_eq!(a.manifest, b.manifest);
        assert_eq!(a.tree, b.tree);
        // Every blob of the two layouts is the same file.
        let list = |p: &Path| -> Vec<(String, Vec<u8>)> {
            let mut v: Vec<_> = std::fs::read_dir(p.join("blobs/sha256"))
                .unwrap()
                .map(|e| {
                    let e = e.unwrap();
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        std::fs::read(e.path()).unwrap(),
                    )
                })
                .collect();
            v.sort();
            v
        };
        assert_eq!(list(&a.layout), list(&b.layout));
        // Another SOURCE_DATE_EPOCH changes the image but not the tree.
        let c = pack(&lock, &inputs, &d.path().join("c"), 1).unwrap();
        assert_ne!(c.manifest, a.manifest);
        assert_eq!(c.tree, a.tree);
        // A lock that pins its root must reproduce it.
        let mut pinned = lock.clone();
        pinned.root = Some(a.digests());
        pack(&pinned, &inputs, &d.path().join("a"), 1_700_000_000).unwrap();
        let e = pack(&pinned, &inputs, &d.path().join("d"), 2).unwrap_err();
        assert!(
            matches!(
                e,
                ToolrootError::NotReproduced {
                    field: "root.manifest",
                    ..
                }
            ),
            "{e}"
        );
        assert!(
            !d.path().join("d").exists(),
            "a failed pack leaves no layout"
        );
    }

    #[test]
    fn the_tree_has_usrmerge_links_and_rust_under_usr_local() {
        let d = tempfile::tempdir().unwrap();
        let (lock, inputs) = synthetic(d.path());
        let packed = pack(&lock, &inputs, &d.path().join("oci"), 0).unwrap();
        // Unpack through the store and look.
        let store = crate::Store::at(d.path().join("store"));
        let root = store.install(&packed, &packed.digests()).unwrap();
        let p = &root.path;
        assert_eq!(
            std::fs::read_link(p.join("bin")).unwrap(),
            Path::new("usr/bin")
        );
        assert_eq!(
            std::fs::read_link(p.join("usr/bin/sh")).unwrap(),
            Path::new("dash")
        );
        assert_eq!(std::fs::read(p.join("usr/bin/dash")).unwrap(), b"dash");
        assert_eq!(
            std::fs::read(p.join("usr/lib/x86_64-linux-gnu/libc.so.6")).unwrap(),
            b"libc"
        );
        assert!(
            p.join("usr/lib64/ld-linux-x86-64.so.2")
                .symlink_metadata()
                .is_ok()
        );
        assert_eq!(
            std::fs::read_to_string(p.join("usr/local/lib/rustlib/components")).unwrap(),
            "rustc\n"
        );
        assert_eq!(
            std::fs::read_to_string(p.join("usr/local/lib/rustlib/manifest-rustc")).unwrap(),
            "file:/usr/local/bin/rustc\nfile:/usr/local/lib/librustc_driver.so\n"
        );
        for m in MOUNTPOINTS {
            assert!(p.join(m).is_dir(), "{m}");
        }
        assert_eq!(
            root.host_path(crate::RootDir::RUSTC),
            p.join("usr/local/bin/rustc")
        );
    }

    #[test]
    fn conflicting_inputs_are_refused() {
        let mut a = InputTree::new("package a");
        a.insert("usr/bin/x".into(), Node::Symlink("y".into()))
            .unwrap();
        a.insert("usr/lib/link".into(), Node::Symlink("/etc".into()))
            .unwrap();
        let mut b = InputTree::new("package b");
        b.insert("usr/bin/x".into(), Node::Symlink("z".into()))
            .unwrap();
        let e = merge(&[a.clone(), b]).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("`usr/bin/x`") && msg.contains("package a") && msg.contains("package b"),
            "{msg}"
        );
        assert!(msg.contains("`y`") && msg.contains("`z`"), "{msg}");
        // Writing through another input's symlink.
        let mut c = InputTree::new("package c");
        c.insert("usr/lib/link/passwd".into(), Node::Dir).unwrap();
        let e = merge(&[a.clone(), c]).unwrap_err();
        assert!(e.to_string().contains("`usr/lib/link`"), "{e}");
        // The same node twice is fine, and parents are implied.
        let m = merge(&[a.clone(), a]).unwrap();
        assert_eq!(m["usr"], Node::Dir);
        assert_eq!(m.len(), 5, "usr, usr/bin, usr/lib and the two links");
    }

    #[test]
    fn a_link_colliding_with_a_package_file_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let (mut lock, inputs) = synthetic(d.path());
        lock.links.insert("usr/bin/dash".into(), "busybox".into());
        let e = pack(&lock, &inputs, &d.path().join("oci"), 0).unwrap_err();
        assert!(matches!(e, ToolrootError::Conflict { .. }), "{e}");
        assert!(e.to_string().contains("`usr/bin/dash`"), "{e}");
        assert!(!d.path().join("oci").exists());
    }

    #[test]
    fn inputs_are_checked_again_before_packing() {
        let d = tempfile::tempdir().unwrap();
        let (lock, inputs) = synthetic(d.path());
        let p = inputs.path(&lock.debian.packages[0].sha256).unwrap();
        kiln_core::fsx::set_mode(p, 0o644).unwrap();
        let mut bytes = std::fs::read(p).unwrap();
        bytes[100] ^= 1;
        std::fs::write(p, bytes).unwrap();
        let e = pack(&lock, &inputs, &d.path().join("oci"), 0).unwrap_err();
        assert!(matches!(e, ToolrootError::DigestMismatch { .. }), "{e}");
        let e = pack(&lock, &Inputs::default(), &d.path().join("oci"), 0).unwrap_err();
        assert!(matches!(e, ToolrootError::MissingInput { .. }), "{e}");
    }
}
