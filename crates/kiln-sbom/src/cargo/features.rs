//! cargo's feature resolver, for one package built for one target.
//!
//! A port of the algorithm in cargo's `core/resolver/features.rs` (resolver 2 and 3; 1
//! by its options): starting from the built package with the requested features, it
//! activates features, optional dependencies (`dep:x`, `x/feat`, weak `x?/feat`) and the
//! dependencies they switch on, separately for code built for the target and for the
//! host (build scripts, proc macros and everything they use), skipping dev-dependencies
//! and dependencies for other platforms. The result says, per package and per side,
//! which features and which optional dependencies are on: exactly what decides which
//! crates `cargo build` compiles.
//!
//! Written by hand because no crate offers it: cargo's own resolver is only usable as
//! part of the `cargo` crate (hundreds of dependencies, and it would run rustc to learn
//! the target), and guppy resolves features on top of `cargo metadata`, which costs a
//! cargo process. The tests in `crates/kiln-cli/tests/sbom.rs` compare the outcome with
//! `cargo tree -e normal` on projects with features, per-platform, optional and build
//! dependencies, and on kiln's own workspace.

use std::collections::{BTreeMap, BTreeSet};

use super::graph::{Graph, PkgId};
use super::manifest::{DepDecl, DepKind};
use crate::error::Result;

/// Which side of the build a package is compiled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Side {
    /// The target: linked into the binary (or, below a proc macro, into the compiler).
    Target,
    /// The host: build scripts, proc macros and their dependencies.
    Host,
}

/// How the resolver version changes feature unification (cargo's `FeatureOpts`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Opts {
    /// Resolver ≥ 2: host-side features are not unified with target-side ones.
    pub decouple_host_deps: bool,
    /// Resolver ≥ 2: dev-dependencies do not contribute features to a build.
    pub decouple_dev_deps: bool,
    /// Resolver ≥ 2: dependencies for other platforms do not contribute features.
    pub ignore_inactive_targets: bool,
}

impl Opts {
    pub fn for_resolver(version: u8) -> Opts {
        let v2 = version >= 2;
        Opts {
            decouple_host_deps: v2,
            decouple_dev_deps: v2,
            ignore_inactive_targets: v2,
        }
    }
}

/// One entry of a `[features]` list (or a `--features` argument).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FeatureValue {
    Feature(String),
    /// `dep:name`
    Dep(String),
    /// `name/feat` or, weak, `name?/feat`.
    DepFeature {
        dep: String,
        feature: String,
        weak: bool,
    },
}

impl FeatureValue {
    pub fn new(s: &str) -> FeatureValue {
        if let Some(dep) = s.strip_prefix("dep:") {
            return FeatureValue::Dep(dep.to_string());
        }
        match s.split_once('/') {
            Some((dep, feature)) => {
                let (dep, weak) = match dep.strip_suffix('?') {
                    Some(d) => (d, true),
                    None => (dep, false),
                };
                FeatureValue::DepFeature {
                    dep: dep.to_string(),
                    feature: feature.to_string(),
                    weak,
                }
            }
            None => FeatureValue::Feature(s.to_string()),
        }
    }
}

/// What the resolver decided.
#[derive(Debug, Default)]
pub(crate) struct Activated {
    /// Features on, per package and side.
    pub features: BTreeMap<(PkgId, Side), BTreeSet<String>>,
    /// Optional dependencies (by name in the manifest) switched on, per package and side.
    pub deps: BTreeMap<(PkgId, Side), BTreeSet<String>>,
}

/// One dependency edge in force for a (package, side): the declaration and the side the
/// dependency is built for.
pub(crate) struct Edge {
    pub decl: usize,
    pub dep: PkgId,
    pub side: Side,
}

pub(crate) struct Resolver<'g> {
    graph: &'g mut Graph,
    opts: Opts,
    out: Activated,
    processed: BTreeSet<(PkgId, Side)>,
    deferred_weak: BTreeMap<(PkgId, Side, String), BTreeSet<String>>,
}

impl<'g> Resolver<'g> {
    pub fn new(graph: &'g mut Graph, opts: Opts) -> Self {
        Resolver {
            graph,
            opts,
            out: Activated::default(),
            processed: BTreeSet::new(),
            deferred_weak: BTreeMap::new(),
        }
    }

    /// Resolves `root` built for the target with `requested` features (plus `default`
    /// unless `no_default_features`).
    pub fn resolve(
        mut self,
        root: PkgId,
        requested: &[String],
        no_default_features: bool,
    ) -> Result<Activated> {
        let mut fvs: Vec<FeatureValue> = requested
            .iter()
            .flat_map(|f| f.split([',', ' ']))
            .filter(|f| !f.is_empty())
            .map(FeatureValue::new)
            .collect();
        if !no_default_features {
            fvs.push(FeatureValue::Feature("default".into()));
        }
        self.activate_pkg(root, Side::Target, &fvs)?;
        Ok(self.out)
    }

    /// Features and optional dependencies are keyed by side only when host and target
    /// are decoupled (cargo's `FeaturesFor::apply_opts`).
    fn key(&self, side: Side) -> Side {
        if self.opts.decouple_host_deps {
            side
        } else {
            Side::Target
        }
    }

    fn activate_pkg(&mut self, pkg: PkgId, side: Side, fvs: &[FeatureValue]) -> Result<()> {
        let k = (pkg, self.key(side));
        self.out.features.entry(k).or_default();
        for fv in fvs {
            self.activate_fv(pkg, side, fv)?;
        }
        if !self.processed.insert((pkg, side)) {
            return Ok(());
        }
        for e in self.deps(pkg, side)? {
            let decl = self.decl(pkg, e.decl).clone();
            if decl.optional {
                continue; // switched on only by a feature
            }
            self.activate_pkg(e.dep, e.side, &requested_by(&decl))?;
        }
        Ok(())
    }

    fn activate_fv(&mut self, pkg: PkgId, side: Side, fv: &FeatureValue) -> Result<()> {
        match fv {
            FeatureValue::Feature(f) => self.activate_rec(pkg, side, f),
            FeatureValue::Dep(name) => self.activate_dependency(pkg, side, name),
            FeatureValue::DepFeature { dep, feature, weak } => {
                self.activate_dep_feature(pkg, side, dep, feature, *weak)
            }
        }
    }

    fn activate_rec(&mut self, pkg: PkgId, side: Side, feature: &str) -> Result<()> {
        let k = (pkg, self.key(side));
        if !self
            .out
            .features
            .entry(k)
            .or_default()
            .insert(feature.to_string())
        {
            return Ok(());
        }
        // A feature the package does not define (`default` of a package without one, or
        // one cargo would have rejected earlier) switches nothing on.
        let Some(list) = self.graph.manifest(pkg)?.features.get(feature).cloned() else {
            return Ok(());
        };
        for v in list {
            self.activate_fv(pkg, side, &FeatureValue::new(&v))?;
        }
        Ok(())
    }

    fn activate_dependency(&mut self, pkg: PkgId, side: Side, name: &str) -> Result<()> {
        let k = (pkg, self.key(side));
        self.out.deps.entry(k).or_default().insert(name.to_string());
        let to_enable = self.deferred_weak.remove(&(pkg, side, name.to_string()));
        let mut found = false;
        for e in self.deps(pkg, side)? {
            let decl = self.decl(pkg, e.decl).clone();
            if decl.name != name {
                continue;
            }
            found = true;
            for f in to_enable.iter().flatten() {
                self.activate_fv(e.dep, e.side, &FeatureValue::new(f))?;
            }
            self.activate_pkg(e.dep, e.side, &requested_by(&decl))?;
        }
        if !found {
            self.graph.check_locked(pkg, name)?;
        }
        Ok(())
    }

    fn activate_dep_feature(
        &mut self,
        pkg: PkgId,
        side: Side,
        dep_name: &str,
        feature: &str,
        weak: bool,
    ) -> Result<()> {
        for e in self.deps(pkg, side)? {
            let decl = self.decl(pkg, e.decl).clone();
            if decl.name != dep_name {
                continue;
            }
            if decl.optional {
                let on = self
                    .out
                    .deps
                    .get(&(pkg, self.key(side)))
                    .is_some_and(|s| s.contains(dep_name));
                if weak && !on {
                    // `dep?/feat`: remembered until something else switches `dep` on.
                    self.deferred_weak
                        .entry((pkg, side, dep_name.to_string()))
                        .or_default()
                        .insert(feature.to_string());
                    continue;
                }
                self.activate_fv(pkg, side, &FeatureValue::Dep(dep_name.to_string()))?;
                // Before weak dependencies, `dep/feat` also switched on the feature named
                // after the dependency; cargo keeps that when the implicit feature exists.
                if !weak && self.graph.manifest(pkg)?.features.contains_key(dep_name) {
                    self.activate_rec(pkg, side, dep_name)?;
                }
            }
            self.activate_fv(e.dep, e.side, &FeatureValue::new(feature))?;
        }
        Ok(())
    }

    fn decl(&self, pkg: PkgId, i: usize) -> &DepDecl {
        &self.graph.loaded(pkg).deps[i]
    }

    /// The dependency edges that count for features of `pkg` on `side`.
    fn deps(&mut self, pkg: PkgId, side: Side) -> Result<Vec<Edge>> {
        let opts = self.opts;
        self.graph.edges(pkg, side, |decl, platform_on| {
            let other_platform = opts.ignore_inactive_targets && !platform_on;
            let dev = opts.decouple_dev_deps && decl.kind == DepKind::Dev;
            !other_platform && !dev
        })
    }
}

/// What a dependency declaration asks of the package it names.
fn requested_by(decl: &DepDecl) -> Vec<FeatureValue> {
    let mut fvs: Vec<FeatureValue> = decl.features.iter().map(|f| FeatureValue::new(f)).collect();
    if decl.default_features {
        fvs.push(FeatureValue::Feature("default".into()));
    }
    fvs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feature_values_parse_like_cargo() {
        assert_eq!(
            FeatureValue::new("std"),
            FeatureValue::Feature("std".into())
        );
        assert_eq!(
            FeatureValue::new("dep:ryu"),
            FeatureValue::Dep("ryu".into())
        );
        assert_eq!(
            FeatureValue::new("serde/derive"),
            FeatureValue::DepFeature {
                dep: "serde".into(),
                feature: "derive".into(),
                weak: false
            }
        );
        assert_eq!(
            FeatureValue::new("serde?/std"),
            FeatureValue::DepFeature {
                dep: "serde".into(),
                feature: "std".into(),
                weak: true
            }
        );
    }
}
