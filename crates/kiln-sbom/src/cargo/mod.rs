//! Which crates a build compiled into its binaries, as cargo resolved them.
//!
//! Worked out in-process from the same inputs cargo used, without running cargo or
//! rustc: `Cargo.lock` (which package every dependency resolved to), the manifests of the
//! workspace and of the registry crates (as kiln unpacked them from their verified archives) (which dependencies exist, for which
//! platforms, behind which features), and the target's `rustc --print cfg` facts recorded
//! in the toolchain lock. `features` runs cargo's feature resolver over them; then we
//! walk from the built package:
//!
//! * normal edges from a runtime crate lead to runtime crates (they are linked into the
//!   binary), except to a proc-macro, which runs inside the compiler: it and the crates it
//!   reaches over normal edges are compile-time only ([`Scope::ProcMacro`]);
//! * build edges (`[build-dependencies]`) lead to crates that only run in build scripts
//!   ([`Scope::Build`]), and everything they reach stays build-only;
//! * dev edges are never followed: tests and benches are not part of a release binary.
//!
//! A crate reachable both ways gets the strongest scope (runtime > proc-macro > build).
//! Features are resolved per side (target / host) as resolver 2 does, so an optional
//! dependency switched on only for a build script's copy of a crate is not listed as
//! runtime. `cargo tree -e normal` is the ground truth the tests compare against.
//!
//! Why not `cargo metadata`: it costs a cargo process that runs rustc twice for target
//! facts (most of an SBOM's time), and it unifies features across the whole graph, dev-
//! and build-dependencies included, so it over-reports what a binary contains.

mod features;
mod graph;
mod lock;
mod manifest;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

use crate::error::{Result, SbomError};
use features::{Opts, Resolver, Side};
use graph::{Graph, PkgId, PlatformCfg};
use manifest::{DepKind, RegistrySources, Workspace};

/// How a crate takes part in the build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// Linked into the binary.
    Runtime,
    /// A procedural macro, or a crate only a proc-macro uses: runs in the compiler, not
    /// shipped.
    ProcMacro,
    /// Only a build script (or its dependencies) uses it: runs at build time, not shipped.
    Build,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Runtime => "runtime",
            Scope::ProcMacro => "proc-macro",
            Scope::Build => "build",
        }
    }
    /// True for crates whose code ends up in the binary.
    pub fn is_runtime(self) -> bool {
        self == Scope::Runtime
    }
}

/// Where a crate's source came from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// crates.io, pinned by the checksum in `Cargo.lock`.
    CratesIo,
    /// A member of the project's cargo workspace.
    Workspace,
    /// A path dependency outside the workspace members.
    Path,
}

/// The kind of a dependency edge after dropping dev edges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EdgeKind {
    Normal,
    Build,
}

/// One crate of the resolved build.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Crate {
    pub name: String,
    pub version: String,
    pub scope: Scope,
    pub source: Source,
    /// sha256 of the `.crate` file, from `Cargo.lock` (registry crates only).
    pub checksum: Option<String>,
    /// The manifest's `license` field, verbatim.
    pub license: Option<String>,
    /// The manifest's `license-file`, relative to the crate, when `license` is absent.
    pub license_file: Option<String>,
    pub description: Option<String>,
    pub repository: Option<String>,
    pub homepage: Option<String>,
    /// True when the crate's library is a `proc-macro`.
    pub proc_macro: bool,
    /// Dependencies (by [`Crate::key`]) with the kind of edge; dev edges excluded.
    pub deps: BTreeMap<String, EdgeKind>,
}

impl Crate {
    /// `name@version`: unique within one resolution (kiln accepts crates.io and path
    /// sources only, and cargo refuses two packages with one name and version there).
    pub fn key(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }
    /// `pkg:cargo/name@version`.
    pub fn purl(&self) -> String {
        kiln_core::contract::Purl::new("cargo", &self.name)
            .with_version(&self.version)
            .to_string()
    }
}

/// The crates of one package's build, for one target and feature set.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Resolution {
    /// Key of the built package.
    pub root: String,
    /// Every crate reached from the root, by [`Crate::key`].
    pub crates: BTreeMap<String, Crate>,
    /// The `Cargo.lock` read for checksums.
    pub lock_path: PathBuf,
}

impl Resolution {
    pub fn root(&self) -> &Crate {
        &self.crates[&self.root]
    }
    /// Crates in the binary (the root package included).
    pub fn runtime(&self) -> impl Iterator<Item = &Crate> {
        self.crates.values().filter(|c| c.scope.is_runtime())
    }
}

/// A platform's identity for matching `[target.'..'.dependencies]`: its triple and its
/// `rustc --print cfg` lines.
#[derive(Debug, Clone)]
pub struct Platform {
    pub triple: String,
    pub cfg: Vec<String>,
}

/// What to resolve: the same selection `cargo build` was given.
#[derive(Debug, Clone)]
pub struct ResolveRequest {
    /// `Cargo.toml` of the package or of its workspace.
    pub manifest: PathBuf,
    pub package: String,
    /// What the binary is built for.
    pub target: Platform,
    /// Where build scripts and proc macros run.
    pub host: Platform,
    pub features: Vec<String>,
    pub no_default_features: bool,
    /// Where the registry crates' manifests are.
    pub sources: CrateSources,
}

/// Where the manifests of registry crates are read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CrateSources {
    /// `<dir>/<name>-<version>/`: every locked crate, unpacked from its checksummed archive
    /// (kiln's build root, `kiln_hermetic::unpack_verified`). What kiln's builds use: it
    /// holds crates cargo never compiled (optional, dev-, other platforms' dependencies)
    /// too, whose manifests the feature resolver still reads.
    Verified(PathBuf),
    /// A cargo home's `registry/src/<index>/`: only what cargo happened to unpack. For
    /// describing a checkout kiln did not build (`cargo xtask bench sbom`).
    CargoHome(PathBuf),
}

/// Resolves the crates of `req.package`'s build as described in the module docs.
pub fn resolve(req: &ResolveRequest) -> Result<Resolution> {
    let ws = Workspace::discover(&req.manifest)?;
    let lock = lock::read(&ws.root.join(kiln_core::contract::layout::CARGO_LOCK))?;
    let (root_dir, root_manifest) = ws
        .members
        .iter()
        .find(|(_, m)| m.name == req.package)
        .map(|(d, m)| (d.clone(), m.clone()))
        .ok_or_else(|| SbomError::NoSuchPackage {
            package: req.package.clone(),
            manifest: req.manifest.clone(),
        })?;
    let root = lock
        .path_package(&req.package)
        .ok_or_else(|| SbomError::StaleLock {
            path: lock.path.clone(),
            dir: ws.root.clone(),
            detail: format!(
                "workspace member {}@{} is not in it",
                root_manifest.name, root_manifest.version
            ),
        })?;
    let opts = Opts::for_resolver(ws.resolver);
    let mut graph = Graph::new(
        lock,
        ws,
        RegistrySources::new(&req.sources),
        PlatformCfg::parse(&req.target.triple, &req.target.cfg)?,
        PlatformCfg::parse(&req.host.triple, &req.host.cfg)?,
    );
    graph.set_dir(root, root_dir);
    let activated =
        Resolver::new(&mut graph, opts).resolve(root, &req.features, req.no_default_features)?;
    let key = |side: Side| {
        if opts.decouple_host_deps {
            side
        } else {
            Side::Target
        }
    };

    // Breadth-first over (package, side, scope); a node is revisited only with a stronger
    // scope than it had, so the walk ends after at most three visits per node.
    let mut best_node: BTreeMap<(PkgId, Side), Scope> = BTreeMap::new();
    let mut best: BTreeMap<PkgId, Scope> = BTreeMap::new();
    let mut edges: BTreeMap<PkgId, BTreeMap<PkgId, EdgeKind>> = BTreeMap::new();
    let mut queue = VecDeque::from([(root, Side::Target, Scope::Runtime)]);
    let none = BTreeSet::new();
    while let Some((pkg, side, scope)) = queue.pop_front() {
        if best_node.get(&(pkg, side)).is_some_and(|s| *s <= scope) {
            continue;
        }
        best_node.insert((pkg, side), scope);
        let b = best.entry(pkg).or_insert(scope);
        *b = (*b).min(scope);
        let on = activated.deps.get(&(pkg, key(side))).unwrap_or(&none);
        // What cargo compiles: dependencies for this platform, never dev ones, optional
        // ones only when a feature switched them on.
        let compiled = graph.edges(pkg, side, |decl, platform_on| {
            platform_on && decl.kind != DepKind::Dev
        })?;
        for e in compiled {
            let decl = &graph.loaded(pkg).deps[e.decl];
            if decl.optional && !on.contains(&decl.name) {
                continue;
            }
            let build = decl.kind == DepKind::Build;
            let kind = if build {
                EdgeKind::Build
            } else {
                EdgeKind::Normal
            };
            let slot = edges.entry(pkg).or_default().entry(e.dep).or_insert(kind);
            *slot = (*slot).min(kind);
            let next = if build {
                Scope::Build
            } else if scope == Scope::Runtime && graph.is_proc_macro(e.dep)? {
                Scope::ProcMacro
            } else {
                scope
            };
            queue.push_back((e.dep, e.side, next));
        }
    }

    let mut crates = BTreeMap::new();
    for (&pkg, &scope) in &best {
        let locked = graph.lock.packages[pkg].clone();
        let source = if locked.is_crates_io() {
            Source::CratesIo
        } else if graph.dir(pkg).is_some_and(|d| graph.ws.is_member(d)) {
            Source::Workspace
        } else {
            Source::Path
        };
        let checksum = match source {
            Source::CratesIo => Some(locked.checksum.clone().ok_or_else(|| {
                graph.stale(format!(
                    "{} is resolved from crates.io but has no checksum",
                    locked.key()
                ))
            })?),
            _ => None,
        };
        let deps = edges
            .get(&pkg)
            .into_iter()
            .flatten()
            .map(|(&d, &k)| (graph.lock.packages[d].key(), k))
            .collect();
        let m = graph.manifest(pkg)?;
        crates.insert(
            locked.key(),
            Crate {
                name: locked.name.clone(),
                version: locked.version.clone(),
                scope,
                source,
                checksum,
                license: m.license.clone(),
                license_file: m.license_file.clone(),
                description: m
                    .description
                    .as_ref()
                    .map(|d| d.split_whitespace().collect::<Vec<_>>().join(" ")),
                repository: m.repository.clone(),
                homepage: m.homepage.clone(),
                proc_macro: m.proc_macro,
                deps,
            },
        );
    }
    Ok(Resolution {
        root: graph.lock.packages[root].key(),
        crates,
        lock_path: graph.lock.path.clone(),
    })
}

/// The checksums of a `Cargo.lock` by `name@version` (registry crates only). Errors name
/// the file and, for syntax errors, the line.
pub fn read_lock(path: &Path) -> Result<BTreeMap<String, String>> {
    Ok(lock::read(path)?
        .packages
        .into_iter()
        .filter_map(|p| {
            let key = p.key();
            p.checksum.map(|c| (key, c))
        })
        .collect())
}

#[cfg(test)]
mod tests;
