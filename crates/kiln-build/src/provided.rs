//! The toolchain kiln provides (`[project] toolchain_root = "NAME"`): a content-addressed
//! root (kiln-toolroot) that the build runs inside (kiln-hermetic's `RootedSandbox`), so
//! the host contributes only the kernel and kiln itself. This module is the glue: `kiln
//! toolchain pin` and `pack`, obtaining the root for `fetch` and `build`, and asking the
//! root's tools what they are.
//!
//! The lock `toolchains/<NAME>.lock.json` pins every input by sha256 and, once packed, the
//! root's manifest and tree digests and what its tools report (`RootLock::toolchain`). A
//! build reads those facts instead of detecting a toolchain, and the installed root is
//! checked against the tree digest before anything runs in it.

use std::path::{Path, PathBuf};

use kiln_config::Config;
use kiln_core::contract::ProjectLayout;
use kiln_hermetic::RootedSandbox;
use kiln_toolchain::{Toolchain, ToolchainLock};
use kiln_toolroot::{RootDir, RootLock, Store};

use crate::error::BuildError;

type Result<T, E = BuildError> = std::result::Result<T, E>;

/// Where the store of installed roots and the download cache are: `$KILN_TOOLROOT_STORE`
/// and `$KILN_TOOLROOT_CACHE` when set, else under the user's cache directory.
#[derive(Debug, Clone)]
pub struct RootPlaces {
    pub store: Store,
    pub cache: PathBuf,
    /// `$KILN_TOOLROOT_REGISTRY` (`registry/repository`): where a root missing from the store
    /// is pulled from by its manifest digest before it is packed from its inputs;
    /// `$KILN_TOOLROOT_REGISTRY_INSECURE_HTTP=1` reaches a registry on this machine over
    /// plain HTTP.
    pub registry: Option<RootRegistry>,
}

/// An OCI registry repository holding toolchain roots.
#[derive(Debug, Clone)]
pub struct RootRegistry {
    pub repository: String,
    pub insecure_http: bool,
}

impl RootRegistry {
    fn client(&self, reference: &str, push: bool) -> Result<kiln_registry::Client> {
        let bad = |e: String| BuildError::Provided {
            message: format!("toolchain root registry {reference}: {e}"),
            fix: "give `registry/repository` (no tag), e.g. ghcr.io/acme/kiln-toolroots".into(),
        };
        let r = kiln_registry::Reference::parse(reference).map_err(|e| bad(e.to_string()))?;
        kiln_registry::Client::new(
            &r,
            kiln_registry::Options {
                insecure_http: self.insecure_http,
                push,
                ..Default::default()
            },
        )
        .map_err(|e| bad(e.to_string()))
    }
}

impl RootPlaces {
    pub fn from_env() -> Result<RootPlaces> {
        let store = match std::env::var_os("KILN_TOOLROOT_STORE").filter(|v| !v.is_empty()) {
            Some(d) => Store::at(PathBuf::from(d)),
            None => Store::open_default().map_err(BuildError::Toolroot)?,
        };
        let cache = match std::env::var_os("KILN_TOOLROOT_CACHE").filter(|v| !v.is_empty()) {
            Some(d) => PathBuf::from(d),
            None => store
                .dir()
                .parent()
                .unwrap_or(store.dir())
                .join(kiln_core::contract::layout::toolroot::INPUTS_DIR),
        };
        let registry = std::env::var("KILN_TOOLROOT_REGISTRY")
            .ok()
            .filter(|v| !v.is_empty())
            .map(|repository| RootRegistry {
                repository,
                insecure_http: std::env::var("KILN_TOOLROOT_REGISTRY_INSECURE_HTTP").as_deref()
                    == Ok("1"),
            });
        Ok(RootPlaces {
            store,
            cache,
            registry,
        })
    }
}

/// `toolchains/<name>.lock.json` of `project`.
pub fn lock_path(project: &Path, name: &str) -> PathBuf {
    ProjectLayout::new(project)
        .toolchains_dir()
        .join(kiln_core::contract::layout::toolroot::lock_file(name))
}

/// The lock `[project] toolchain_root` names in `project`'s kiln.toml.
pub fn configured_lock(project: &Path) -> Result<PathBuf> {
    let config = Config::load(project)?;
    match &config.project.toolchain_root {
        Some(name) => Ok(lock_path(&config.root, name)),
        None => Err(BuildError::Config(config.error_at(
            "project.toolchain_root",
            "kiln.toml names no provided toolchain root",
            "set `toolchain_root = \"NAME\"` under [project] (the NAME of toolchains/NAME.lock.json), or pass --lock FILE",
        ))),
    }
}

/// `kiln toolchain pin`: resolves a root for `rust_version` (default: the rustc the
/// project builds with today) from the Rust dist and Debian's archive (network), and
/// writes its lock, without `root` (that is `pack`'s). Returns where it went.
pub fn pin(
    project: &Path,
    name: Option<&str>,
    rust_version: Option<&str>,
) -> Result<(PathBuf, RootLock)> {
    let version = match rust_version {
        Some(v) => v.to_string(),
        None => Toolchain::detect_for(project, None, None)?
            .lock()
            .map(|l| l.rustc.version)?,
    };
    let mut req = kiln_toolroot::PinRequest::new(&version);
    if let Some(n) = name {
        req.name = n.to_string();
    }
    let lock = kiln_toolroot::pin(&req).map_err(BuildError::Toolroot)?;
    let path = lock_path(project, &lock.name);
    lock.write(&path).map_err(BuildError::Toolroot)?;
    Ok((path, lock))
}

/// What `pack` did.
#[derive(Debug)]
pub struct Packed {
    pub lock_file: PathBuf,
    pub lock: RootLock,
    pub root: RootDir,
    /// Inputs downloaded (the rest came from the cache or a local directory).
    pub downloaded: usize,
}

/// `kiln toolchain pack`: fetches the lock's inputs (network only for what the cache and
/// `local_dirs` lack; none at all with `offline`), packs the root deterministically,
/// installs it, asks its tools what they are, and writes `root` and `toolchain` into the
/// lock. A lock that already names a root must be reproduced exactly (else nothing is
/// written): two packs of one lock give one digest on any machine.
pub fn pack(
    lock_file: &Path,
    places: &RootPlaces,
    offline: bool,
    local_dirs: &[PathBuf],
    push: Option<&RootRegistry>,
) -> Result<Packed> {
    let mut lock = RootLock::read(lock_file).map_err(BuildError::Toolroot)?;
    // Pushing needs the layout, so the root is packed even when the store has it.
    let (root, downloaded, layout) = match push {
        Some(_) => {
            let (root, downloaded, scratch) = pack_from_inputs(&lock, places, offline, local_dirs)?;
            (root, downloaded, Some(scratch))
        }
        None => {
            let (root, downloaded) = build_root(&lock, places, offline, local_dirs)?;
            (root, downloaded, None)
        }
    };
    let toolchain = describe(&root, &lock.target)?;
    if let Some(pinned) = &lock.toolchain
        && *pinned != toolchain
    {
        return Err(BuildError::Provided {
            message: format!(
                "{}: `toolchain` records what the root's tools said when it was packed, and they now say otherwise (rustc {} vs {})",
                lock_file.display(),
                pinned.rustc.version,
                toolchain.rustc.version
            ),
            fix: "the same root bytes must give the same answers: report this; to accept the new answers, delete `toolchain` from the lock and pack again".into(),
        });
    }
    lock.root = Some(root.digests);
    lock.toolchain = Some(toolchain);
    lock.write(lock_file).map_err(BuildError::Toolroot)?;
    if let (Some(reg), Some(scratch)) = (push, &layout) {
        let client = reg.client(&reg.repository, true)?;
        let tag = lock.name.replace('+', "_");
        kiln_registry::push::push(
            &client,
            &kiln_registry::push::Request {
                layout: &scratch.path().join(LAYOUT),
                image: root.digests.manifest,
                tag: &tag,
                mount_from: &[],
                extra: &[],
            },
            &|_| {},
        )
        .map_err(|e| BuildError::Provided {
            message: format!("pushing the toolchain root to {}: {e}", reg.repository),
            fix: "check the registry and its credentials (as for `kiln push`)".into(),
        })?;
    }
    Ok(Packed {
        lock_file: lock_file.to_path_buf(),
        lock,
        root,
        downloaded,
    })
}

/// The installed root of `lock`: from the store when there (checked), else pulled from
/// the toolchain registry by its manifest digest (when one is configured and the lock names
/// a root), else fetched, packed (reproducing `lock.root` when the lock has one) and
/// installed.
fn build_root(
    lock: &RootLock,
    places: &RootPlaces,
    offline: bool,
    local_dirs: &[PathBuf],
) -> Result<(RootDir, usize)> {
    if let Some(d) = &lock.root
        && let Some(root) = places.store.get(d).map_err(BuildError::Toolroot)?
    {
        return Ok((root, 0));
    }
    if let (Some(d), Some(reg), false) = (&lock.root, &places.registry, offline) {
        match pull_root(d, reg, places) {
            Ok(root) => return Ok((root, 0)),
            // A registry is a shortcut: the pinned inputs still give the same root.
            Err(e) => eprintln!(
                "kiln: warning: toolchain root registry {}: {e}; packing the root from its pinned inputs",
                reg.repository
            ),
        }
    }
    let (root, downloaded, _) = pack_from_inputs(lock, places, offline, local_dirs)?;
    Ok((root, downloaded))
}

/// The layout directory inside a scratch directory.
const LAYOUT: &str = "layout";

/// `REPOSITORY@<manifest>` pulled into a scratch layout (every blob checked against its
/// digest) and installed, which checks the manifest and the tree digest again.
fn pull_root(
    d: &kiln_toolroot::RootDigests,
    reg: &RootRegistry,
    places: &RootPlaces,
) -> Result<RootDir> {
    let reference = format!("{}@{}", reg.repository, d.manifest);
    let client = reg.client(&reference, false)?;
    let scratch = scratch_dir(places)?;
    let layout = scratch.path().join(LAYOUT);
    kiln_registry::pull::pull(&client, &layout, None, &|_| {}).map_err(|e| {
        BuildError::Provided {
            message: format!("pulling {reference}: {e}"),
            fix: "check the registry, or unset KILN_TOOLROOT_REGISTRY to pack the root from its inputs".into(),
        }
    })?;
    let root = places
        .store
        .install(&layout, d)
        .map_err(BuildError::Toolroot)?;
    eprintln!("kiln: toolchain root pulled from {reference}, verified and installed");
    Ok(root)
}

fn scratch_dir(places: &RootPlaces) -> Result<tempfile::TempDir> {
    let base = places.cache.parent().unwrap_or(&places.cache);
    let _ = kiln_core::fsx::create_dir_all(base);
    tempfile::Builder::new()
        .prefix(".kiln-toolroot-")
        .tempdir_in(base)
        .or_else(|_| tempfile::tempdir())
        .map_err(crate::error::io(
            "cannot create a scratch directory in",
            base,
        ))
}

/// Fetches the inputs, packs the root into a scratch layout (returned with it) and installs it.
fn pack_from_inputs(
    lock: &RootLock,
    places: &RootPlaces,
    offline: bool,
    local_dirs: &[PathBuf],
) -> Result<(RootDir, usize, tempfile::TempDir)> {
    let inputs = if offline {
        kiln_toolroot::fetch_offline(lock, &places.cache, local_dirs)
    } else {
        kiln_toolroot::fetch(lock, &places.cache, None, local_dirs)
    }
    .map_err(BuildError::Toolroot)?;
    let scratch = scratch_dir(places)?;
    let layout = scratch.path().join(LAYOUT);
    let packed =
        kiln_toolroot::pack(lock, &inputs, &layout, ROOT_SDE).map_err(BuildError::Toolroot)?;
    let root = places
        .store
        .install(&packed, &packed.digests())
        .map_err(BuildError::Toolroot)?;
    Ok((root, inputs.downloaded(), scratch))
}

/// Every file of a root carries this mtime: a root is a function of its lock alone.
const ROOT_SDE: u64 = 0;

/// The provided toolchain of a build: the lock, the installed root, the facts its tools
/// reported at pack time, and the tools as paths inside the root.
pub(crate) struct Provided {
    pub lock_file: PathBuf,
    pub lock: RootLock,
    pub root: RootDir,
    pub toolchain: ToolchainLock,
    pub tc: Toolchain,
}

impl Provided {
    /// `toolchain root NAME sha256:… (provided; installed at DIR)`, for progress lines.
    pub(crate) fn describe(&self) -> String {
        format!(
            "toolchain root {} {} (provided; installed at {})",
            self.lock.name,
            self.root.digests.manifest,
            self.root.path.display()
        )
    }
}

/// The provided toolchain `config` names, installed (fetching and packing unless
/// `offline`), or `None` when the project builds with the host's.
pub(crate) fn provided(config: &Config, offline: bool) -> Result<Option<Provided>> {
    let Some(name) = &config.project.toolchain_root else {
        return Ok(None);
    };
    let lock_file = lock_path(&config.root, name);
    let lock = RootLock::read(&lock_file).map_err(BuildError::Toolroot)?;
    let toolchain = packed_toolchain(&lock, &lock_file)?.clone();
    let places = RootPlaces::from_env()?;
    let (root, _) = build_root(&lock, &places, offline, &[])?;
    let tc = root_tools(&root, &toolchain.host, &toolchain.target);
    Ok(Some(Provided {
        lock_file,
        lock,
        root,
        toolchain,
        tc,
    }))
}

/// What a packed root's tools said they are (the lock's `toolchain`); a lock that is
/// pinned but not packed (no `root` or `toolchain`) is an error naming `lock_file` and the fix.
pub(crate) fn packed_toolchain<'l>(
    lock: &'l RootLock,
    lock_file: &Path,
) -> Result<&'l ToolchainLock> {
    match (&lock.root, &lock.toolchain) {
        (Some(_), Some(toolchain)) => Ok(toolchain),
        _ => Err(BuildError::Provided {
            message: format!(
                "{}: the toolchain root is pinned but not packed (no `root` or `toolchain`)",
                lock_file.display()
            ),
            fix: format!(
                "run `{}` and commit the lock",
                kiln_core::cli::cmd("toolchain pack")
            ),
        }),
    }
}

/// The isolation a build inside a provided root records (`summary.json`'s `sandbox`).
pub(crate) const ROOT_SANDBOX: &str = "root";

/// The root's tools, as paths inside it (rustc and cargo under the `/usr/local` sysroot
/// `install.sh` would make, cc in `/usr/bin`).
fn root_tools(root: &RootDir, host: &str, target: &str) -> Toolchain {
    Toolchain {
        sysroot: PathBuf::from("/usr/local"),
        rustc: root.rustc(),
        cargo: root.cargo(),
        cc: root.cc(),
        host: host.to_string(),
        target: target.to_string(),
        rustup_toolchain: None,
    }
}

/// What the root's tools say about themselves, asked inside the root (network cut, empty
/// environment but `PATH` and `LC_ALL=C`), with the sha256 of rustc, cargo, the C driver
/// and the linker as the lock's `files` (their in-root paths, symlinks resolved inside).
fn describe(root: &RootDir, target: &str) -> Result<ToolchainLock> {
    let sandbox = RootedSandbox::new(&root.path, Vec::new(), "/")?;
    sandbox.check()?;
    let run = |program: &Path, args: &[&str]| -> kiln_toolchain::Result<String> {
        let shown = format!("{} {}", program.display(), args.join(" "));
        let spawn = |error| kiln_toolchain::Error::Spawn {
            command: shown.clone(),
            error,
        };
        let mut cmd = sandbox
            .command(program)
            .map_err(|e| spawn(std::io::Error::other(e.to_string())))?;
        cmd.args(args)
            .env_clear()
            .env("PATH", kiln_toolroot::ROOT_PATH)
            // cargo refuses to start without a home; the sandbox's /tmp is empty tmpfs.
            .env("HOME", "/tmp")
            .env("LC_ALL", "C")
            .stdin(std::process::Stdio::null());
        let out = cmd.output().map_err(spawn)?;
        if !out.status.success() {
            return Err(kiln_toolchain::Error::CommandFailed {
                command: shown,
                status: out.status,
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let tc = root_tools(root, target, target);
    let mut files = std::collections::BTreeMap::new();
    files.insert("sysroot/bin/rustc".to_string(), root.host_path(&tc.rustc));
    files.insert("sysroot/bin/cargo".to_string(), root.host_path(&tc.cargo));
    for tool in [tc.cc.clone(), PathBuf::from("/usr/bin/ld")] {
        let inside = resolve_inside(root, &tool)?;
        files.insert(format!("cc:{}", inside.display()), root.host_path(&inside));
    }
    let files = kiln_toolchain::hash_files(files)?;
    Ok(tc.describe(&run, files)?)
}

/// `p` (a path inside the root) with every symlink resolved as a process inside the root
/// would resolve it: absolute targets are the root's, never the host's.
fn resolve_inside(root: &RootDir, p: &Path) -> Result<PathBuf> {
    let mut path = p.to_path_buf();
    for _ in 0..40 {
        let host = root.host_path(&path);
        match std::fs::symlink_metadata(&host) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = std::fs::read_link(&host)
                    .map_err(crate::error::io("cannot read the link", &host))?;
                let joined = if target.is_absolute() {
                    target
                } else {
                    path.parent().unwrap_or(Path::new("/")).join(target)
                };
                // Lexically, `..` popping a component: the root's directories on the way
                // are real directories (usrmerge links are top-level only).
                path = PathBuf::from("/");
                for c in joined.components() {
                    match c {
                        std::path::Component::Normal(n) => path.push(n),
                        std::path::Component::ParentDir => {
                            path.pop();
                        }
                        _ => {}
                    }
                }
            }
            Ok(_) => return Ok(path),
            Err(e) => return Err(crate::error::io("cannot find in the toolchain root", &host)(e)),
        }
    }
    Err(BuildError::Provided {
        message: format!(
            "{}: too many levels of symlinks in the toolchain root",
            p.display()
        ),
        fix: "the root's links loop: re-pin it with `kiln toolchain pin`".into(),
    })
}

/// What provenance records of a provided root: its digests and every pinned input, Debian
/// packages as purls, Rust components by their dist URL.
pub(crate) fn provenance_record(lock: &RootLock) -> Option<kiln_attest::provenance::ToolchainRoot> {
    // `provided` refuses a lock without `root`, so every build that has one has this.
    let digests = lock.root?;
    let mut inputs: Vec<(String, String, String)> = lock
        .debian
        .packages
        .iter()
        .map(|p| {
            (
                format!("deb:{}@{}", p.name, p.version),
                format!(
                    "pkg:deb/debian/{}@{}?arch={}",
                    p.name, p.version, p.architecture
                ),
                p.sha256.clone(),
            )
        })
        .collect();
    inputs.extend(lock.rust.components.iter().map(|c| {
        (
            format!("rust:{}@{}", c.name, lock.rust.version),
            c.url.clone(),
            c.sha256.clone(),
        )
    }));
    Some(kiln_attest::provenance::ToolchainRoot {
        name: lock.name.clone(),
        manifest: digests.manifest,
        tree: digests.tree,
        inputs,
    })
}
