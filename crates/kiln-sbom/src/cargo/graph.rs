//! The locked package graph with manifests loaded on demand: `Cargo.lock` says which
//! package each dependency declaration resolved to, the manifests say which
//! declarations exist and under which conditions.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use cargo_platform::Cfg;

use super::features::{Edge, Side};
use super::lock::Lock;
use super::manifest::{self, DepDecl, DepKind, Manifest, RegistrySources, Workspace};
use crate::error::{Result, SbomError};

/// A package: its index in [`Lock::packages`].
pub(crate) type PkgId = usize;

/// A platform as cargo matches `[target.'..'.dependencies]` against it.
#[derive(Debug, Clone)]
pub(crate) struct PlatformCfg {
    pub triple: String,
    pub cfg: Vec<Cfg>,
}

impl PlatformCfg {
    pub fn parse(triple: &str, cfg: &[String]) -> Result<PlatformCfg> {
        let cfg = cfg
            .iter()
            .map(|c| {
                Cfg::from_str(c).map_err(|e| SbomError::Cfg {
                    triple: triple.to_string(),
                    cfg: c.clone(),
                    message: e.to_string(),
                })
            })
            .collect::<Result<_>>()?;
        Ok(PlatformCfg {
            triple: triple.to_string(),
            cfg,
        })
    }
}

pub(crate) struct Graph {
    pub lock: Lock,
    pub ws: Workspace,
    registry: RegistrySources,
    target: PlatformCfg,
    host: PlatformCfg,
    /// Loaded manifests, by package.
    manifests: Vec<Option<Manifest>>,
    /// Directory of each path package, learnt from the declaration that named it.
    dirs: Vec<Option<PathBuf>>,
    /// Per package and declaration: the locked package it resolved to, if any.
    links: Vec<Option<Vec<Option<PkgId>>>>,
}

impl Graph {
    pub fn new(
        lock: Lock,
        ws: Workspace,
        registry: RegistrySources,
        target: PlatformCfg,
        host: PlatformCfg,
    ) -> Graph {
        let n = lock.packages.len();
        Graph {
            lock,
            ws,
            registry,
            target,
            host,
            manifests: vec![None; n],
            dirs: vec![None; n],
            links: vec![None; n],
        }
    }

    /// Records where a path package lives.
    pub fn set_dir(&mut self, pkg: PkgId, dir: PathBuf) {
        self.dirs[pkg] = Some(dir);
    }

    pub fn dir(&self, pkg: PkgId) -> Option<&Path> {
        self.dirs[pkg].as_deref()
    }

    /// The manifest of `pkg`, read on first use.
    pub fn manifest(&mut self, pkg: PkgId) -> Result<&Manifest> {
        if self.manifests[pkg].is_none() {
            let m = self.load(pkg)?;
            self.manifests[pkg] = Some(m);
        }
        Ok(self.loaded(pkg))
    }

    /// The manifest of a package [`Graph::manifest`] has loaded. Every [`Edge`] names a
    /// package whose manifest [`Graph::edges`] loaded, and callers only ask for those.
    pub fn loaded(&self, pkg: PkgId) -> &Manifest {
        self.manifests[pkg]
            .as_ref()
            .expect("Graph::edges loads the manifest of every package it returns")
    }

    fn load(&mut self, pkg: PkgId) -> Result<Manifest> {
        let locked = &self.lock.packages[pkg];
        let m = if locked.is_crates_io() {
            manifest::load_registry(&self.registry.manifest(&locked.name, &locked.version)?)?
        } else if let Some(source) = &locked.source {
            return Err(self.stale(format!(
                "{} comes from `{source}`: kiln describes crates.io and path dependencies only",
                locked.key()
            )));
        } else {
            let patched = self.ws.patches.get(&locked.name).cloned();
            let dir = self.dirs[pkg].clone().or(patched).ok_or_else(|| {
                self.stale(format!(
                    "path package {} is locked but no manifest of the workspace declares where it is",
                    locked.key()
                ))
            })?;
            match self.ws.members.get(&dir) {
                Some(m) => m.clone(),
                None => self.ws.load_package(&dir.join("Cargo.toml"))?,
            }
        };
        let locked = &self.lock.packages[pkg];
        if m.name != locked.name || m.version != locked.version {
            return Err(self.stale(format!(
                "{} declares {}@{}, but Cargo.lock has {}",
                m.path.display(),
                m.name,
                m.version,
                locked.key()
            )));
        }
        Ok(m)
    }

    pub fn is_proc_macro(&mut self, pkg: PkgId) -> Result<bool> {
        Ok(self.manifest(pkg)?.proc_macro)
    }

    /// The edges of `pkg` built for `side` whose declaration passes `keep(decl,
    /// platform_matches)`. Dev-dependencies of registry crates are never locked and
    /// never returned. A kept, non-optional declaration Cargo.lock has no package for
    /// means the lock is stale.
    pub fn edges(
        &mut self,
        pkg: PkgId,
        side: Side,
        keep: impl Fn(&DepDecl, bool) -> bool,
    ) -> Result<Vec<Edge>> {
        self.link(pkg)?;
        let registry_pkg = self.lock.packages[pkg].source.is_some();
        let mut kept = Vec::new();
        {
            let m = self.loaded(pkg);
            let links = self.links[pkg].as_ref().expect("linked above");
            for (i, decl) in m.deps.iter().enumerate() {
                if decl.kind == DepKind::Dev && registry_pkg {
                    continue;
                }
                let platform = if decl.kind == DepKind::Build || side == Side::Host {
                    &self.host
                } else {
                    &self.target
                };
                let on = decl
                    .platform
                    .as_ref()
                    .is_none_or(|p| p.matches(&platform.triple, &platform.cfg));
                if !keep(decl, on) {
                    continue;
                }
                match links[i] {
                    Some(dep) => kept.push((i, dep, decl.kind)),
                    None if decl.optional => {}
                    None => return Err(self.unlocked(pkg, decl)),
                }
            }
        }
        let mut edges = Vec::with_capacity(kept.len());
        for (decl, dep, kind) in kept {
            let dep_side = if kind == DepKind::Build || self.is_proc_macro(dep)? {
                Side::Host
            } else {
                side
            };
            edges.push(Edge {
                decl,
                dep,
                side: dep_side,
            });
        }
        Ok(edges)
    }

    /// A feature switched on optional dependency `name` of `pkg` but no declaration led
    /// to a locked package: stale if one exists that the lock lacks.
    pub fn check_locked(&mut self, pkg: PkgId, name: &str) -> Result<()> {
        self.link(pkg)?;
        let m = self.loaded(pkg);
        let links = self.links[pkg].as_ref().expect("linked above");
        for (i, decl) in m.deps.iter().enumerate() {
            if decl.name == name && decl.kind != DepKind::Dev && links[i].is_none() {
                return Err(self.unlocked(pkg, decl));
            }
        }
        Ok(())
    }

    /// Maps each declaration of `pkg` to the package Cargo.lock resolved it to.
    fn link(&mut self, pkg: PkgId) -> Result<()> {
        if self.links[pkg].is_some() {
            return Ok(());
        }
        self.manifest(pkg)?;
        let m = self.loaded(pkg);
        let mut links = Vec::with_capacity(m.deps.len());
        let mut dirs = Vec::new();
        for decl in &m.deps {
            let locked = &self.lock.packages;
            let mut found: Vec<PkgId> = locked[pkg]
                .deps
                .iter()
                .copied()
                .filter(|&d| locked[d].name == decl.package)
                .collect();
            // A path dependency resolves to a path package, a registry one to a registry
            // package, unless `[patch]` replaced it (then only the patch is locked).
            if found.len() > 1 {
                found.retain(|&d| locked[d].source.is_none() == decl.path.is_some());
            }
            // Two versions of one package (a renamed second copy): the requirement picks.
            let req = decl
                .version
                .as_deref()
                .and_then(|v| semver::VersionReq::parse(v).ok());
            if let (true, Some(req)) = (found.len() > 1, req) {
                found.retain(|&d| {
                    semver::Version::parse(&locked[d].version).is_ok_and(|v| req.matches(&v))
                });
            }
            let dep = match found[..] {
                [d] => Some(d),
                [] => None,
                _ => {
                    return Err(self.stale(format!(
                        "{}: dependency `{}` matches {} locked packages",
                        m.path.display(),
                        decl.name,
                        found.len()
                    )));
                }
            };
            if let (Some(d), Some(dir)) = (dep, &decl.path) {
                dirs.push((d, dir.clone()));
            }
            links.push(dep);
        }
        for (d, dir) in dirs {
            self.dirs[d].get_or_insert(dir);
        }
        self.links[pkg] = Some(links);
        Ok(())
    }

    fn unlocked(&self, pkg: PkgId, decl: &DepDecl) -> SbomError {
        let kind = match decl.kind {
            DepKind::Normal => "dependencies",
            DepKind::Build => "build-dependencies",
            DepKind::Dev => "dev-dependencies",
        };
        self.stale(format!(
            "{} declares `{}` in [{kind}], but Cargo.lock locks no `{}` for {}",
            self.loaded(pkg).path.display(),
            decl.name,
            decl.package,
            self.lock.packages[pkg].key()
        ))
    }

    pub fn stale(&self, detail: String) -> SbomError {
        SbomError::StaleLock {
            path: self.lock.path.clone(),
            dir: self.ws.root.clone(),
            detail,
        }
    }
}
