//! Which crates a build compiled into its binaries, as cargo resolved them.
//!
//! The source of truth is `cargo metadata --locked --offline --filter-platform <target>`
//! run with the build's features: cargo itself decides which optional dependencies the
//! features switch on and which `[target.'cfg(..)'.dependencies]` apply, so kiln never
//! re-implements either. From its `resolve.nodes` graph we walk from the built package:
//!
//! * normal edges from a runtime crate lead to runtime crates (they are linked into the
//!   binary), except to a proc-macro, which runs inside the compiler: it and the crates it
//!   reaches over normal edges are compile-time only ([`Scope::ProcMacro`]);
//! * build edges (`[build-dependencies]`) lead to crates that only run in build scripts
//!   ([`Scope::Build`]), and everything they reach stays build-only;
//! * dev edges are never followed: tests and benches are not part of a release binary.
//!
//! A crate reachable both ways gets the strongest scope (runtime > proc-macro > build).
//!
//! Limitation: `cargo metadata` unifies features across the whole graph (it has no
//! resolver-2 view per build unit), so an optional dependency switched on *only* through a
//! build-dependency's or dev-dependency's feature request would appear here but not in the
//! binary. `cargo tree -e normal` is the ground truth the tests compare against.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;

use crate::error::{Result, SbomError};

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
        format!(
            "pkg:cargo/{}@{}",
            crate::purl::encode(&self.name),
            crate::purl::encode(&self.version)
        )
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

/// What to resolve: the same selection `cargo build` was given.
#[derive(Debug, Clone)]
pub struct ResolveRequest {
    pub manifest: PathBuf,
    pub package: String,
    /// Target triple (`--filter-platform`).
    pub target: String,
    pub features: Vec<String>,
    pub no_default_features: bool,
}

/// A plain `cargo` command with `CARGO_HOME` set, for callers without a hermetic
/// environment (`cargo xtask sbom`, benchmarks).
pub fn cargo_command(cargo: &Path, cargo_home: &Path) -> Command {
    let mut c = Command::new(cargo);
    kiln_core::process::without_interposers(&mut c);
    c.env("CARGO_HOME", cargo_home)
        .env_remove("CARGO_TARGET_DIR");
    c
}

/// Runs `cargo metadata` (through `cargo`, a command for the cargo binary carrying the
/// environment the build used) and walks the graph as described in the module docs.
pub fn resolve(mut cargo: Command, req: &ResolveRequest) -> Result<Resolution> {
    cargo.args([
        "metadata",
        "--format-version",
        "1",
        "--locked",
        "--offline",
        "--filter-platform",
        &req.target,
    ]);
    cargo.arg("--manifest-path").arg(&req.manifest);
    if !req.features.is_empty() {
        cargo.args(["--features", &req.features.join(",")]);
    }
    if req.no_default_features {
        cargo.arg("--no-default-features");
    }
    let command = format!(
        "cargo metadata --locked --offline --filter-platform {} --manifest-path {}",
        req.target,
        req.manifest.display()
    );
    let out = cargo.output().map_err(|source| SbomError::Spawn {
        command: command.clone(),
        source,
    })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        let dir = req
            .manifest
            .parent()
            .unwrap_or(Path::new("."))
            .to_path_buf();
        // Offline, with kiln's cargo home holding every crate the lock pins, a package
        // cargo cannot find is one the manifest asks for and the lock does not pin.
        let unpinned =
            stderr.contains("no matching package") || stderr.contains("failed to select a version");
        if (stderr.contains("--locked") && stderr.contains("lock file")) || unpinned {
            let lock = lock_path_in(&stderr).unwrap_or_else(|| dir.join("Cargo.lock"));
            let detail = stderr
                .lines()
                .find(|l| l.starts_with("error:"))
                .unwrap_or("")
                .trim_start_matches("error: ")
                .to_string();
            if !lock.is_file() {
                return Err(SbomError::MissingLock {
                    path: lock,
                    source: std::io::Error::from(std::io::ErrorKind::NotFound),
                });
            }
            return Err(SbomError::StaleLock {
                path: lock,
                dir,
                detail,
            });
        }
        return Err(SbomError::Metadata {
            command,
            status: out.status.to_string(),
            stderr,
        });
    }
    let meta: Metadata =
        serde_json::from_slice(&out.stdout).map_err(|e| SbomError::MetadataFormat {
            command: command.clone(),
            message: e.to_string(),
        })?;
    let lock_path = meta.workspace_root.join("Cargo.lock");
    let lock = read_lock(&lock_path)?;
    walk(meta, req, &lock, lock_path)
}

/// The lock file path cargo names in its `--locked` error, if any.
fn lock_path_in(stderr: &str) -> Option<PathBuf> {
    let start = stderr.find('/')?;
    let rest = &stderr[start..];
    let end = rest.find("Cargo.lock")? + "Cargo.lock".len();
    Some(PathBuf::from(&rest[..end]))
}

#[derive(Deserialize)]
struct Metadata {
    packages: Vec<Package>,
    workspace_members: Vec<String>,
    resolve: Option<Resolve>,
    workspace_root: PathBuf,
}

#[derive(Deserialize)]
struct Package {
    name: String,
    version: String,
    id: String,
    source: Option<String>,
    license: Option<String>,
    license_file: Option<String>,
    description: Option<String>,
    repository: Option<String>,
    homepage: Option<String>,
    manifest_path: PathBuf,
    #[serde(default)]
    targets: Vec<Target>,
}

#[derive(Deserialize)]
struct Target {
    #[serde(default)]
    kind: Vec<String>,
}

#[derive(Deserialize)]
struct Resolve {
    nodes: Vec<Node>,
}

#[derive(Deserialize)]
struct Node {
    id: String,
    #[serde(default)]
    deps: Vec<NodeDep>,
}

#[derive(Deserialize)]
struct NodeDep {
    pkg: String,
    #[serde(default)]
    dep_kinds: Vec<DepKind>,
}

#[derive(Deserialize)]
struct DepKind {
    kind: Option<String>,
}

/// Checksums from `Cargo.lock`, by `name@version` (registry crates only).
pub(crate) type LockChecksums = BTreeMap<String, String>;

/// Reads the checksums of a `Cargo.lock`. Errors name the file and, for syntax errors, the
/// line.
pub fn read_lock(path: &Path) -> Result<BTreeMap<String, String>> {
    #[derive(Deserialize)]
    struct Raw {
        #[serde(default)]
        package: Vec<RawPkg>,
    }
    #[derive(Deserialize)]
    struct RawPkg {
        name: String,
        version: String,
        checksum: Option<String>,
    }
    let bytes = std::fs::read(path).map_err(|source| SbomError::MissingLock {
        path: path.to_path_buf(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|e| SbomError::BadLock {
        path: path.to_path_buf(),
        line: None,
        message: format!("not UTF-8 ({e})"),
    })?;
    let raw: Raw = toml::from_str(&text).map_err(|e| SbomError::BadLock {
        path: path.to_path_buf(),
        line: e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1),
        message: format!("not a Cargo.lock: {}", e.message()),
    })?;
    Ok(raw
        .package
        .into_iter()
        .filter_map(|p| p.checksum.map(|c| (format!("{}@{}", p.name, p.version), c)))
        .collect())
}

fn walk(
    meta: Metadata,
    req: &ResolveRequest,
    lock: &LockChecksums,
    lock_path: PathBuf,
) -> Result<Resolution> {
    let resolve = meta.resolve.ok_or_else(|| SbomError::MetadataFormat {
        command: "cargo metadata".into(),
        message: "no `resolve` section".into(),
    })?;
    let packages: BTreeMap<&str, &Package> =
        meta.packages.iter().map(|p| (p.id.as_str(), p)).collect();
    let nodes: BTreeMap<&str, &Node> = resolve.nodes.iter().map(|n| (n.id.as_str(), n)).collect();
    let members: BTreeSet<&str> = meta.workspace_members.iter().map(String::as_str).collect();

    let manifest = req
        .manifest
        .canonicalize()
        .unwrap_or_else(|_| req.manifest.clone());
    let root = meta
        .packages
        .iter()
        .filter(|p| p.name == req.package && members.contains(p.id.as_str()))
        .min_by_key(|p| p.manifest_path != manifest)
        .ok_or_else(|| SbomError::NoSuchPackage {
            package: req.package.clone(),
            manifest: req.manifest.clone(),
        })?;

    let is_proc_macro = |p: &Package| {
        p.targets
            .iter()
            .any(|t| t.kind.iter().any(|k| k == "proc-macro"))
    };

    // Breadth-first over (package, scope); a package is revisited only with a stronger
    // scope than it had, so the walk ends after at most three visits per package.
    let mut best: BTreeMap<&str, Scope> = BTreeMap::new();
    let mut queue = VecDeque::from([(root.id.as_str(), Scope::Runtime)]);
    while let Some((id, scope)) = queue.pop_front() {
        if best.get(id).is_some_and(|s| *s <= scope) {
            continue;
        }
        best.insert(id, scope);
        let Some(node) = nodes.get(id) else { continue };
        for d in &node.deps {
            let Some(child) = packages.get(d.pkg.as_str()) else {
                continue;
            };
            let normal = d.dep_kinds.iter().any(|k| k.kind.is_none());
            let build = d
                .dep_kinds
                .iter()
                .any(|k| k.kind.as_deref() == Some("build"));
            if normal {
                let s = match scope {
                    Scope::Runtime if is_proc_macro(child) => Scope::ProcMacro,
                    s => s,
                };
                queue.push_back((d.pkg.as_str(), s));
            }
            if build {
                queue.push_back((d.pkg.as_str(), Scope::Build));
            }
        }
    }

    let key_of = |p: &Package| format!("{}@{}", p.name, p.version);
    let mut crates = BTreeMap::new();
    for (id, scope) in &best {
        let p = packages[id];
        let key = key_of(p);
        let source = match &p.source {
            Some(s) if s.starts_with("registry+") || s.starts_with("sparse+") => Source::CratesIo,
            Some(_) => Source::Path,
            None if members.contains(id) => Source::Workspace,
            None => Source::Path,
        };
        let checksum = match source {
            Source::CratesIo => Some(lock.get(&key).cloned().ok_or_else(|| {
                SbomError::StaleLock {
                    path: lock_path.clone(),
                    dir: req
                        .manifest
                        .parent()
                        .unwrap_or(Path::new("."))
                        .to_path_buf(),
                    detail: format!(
                        "cargo resolved {key} from crates.io but Cargo.lock has no checksum for it"
                    ),
                }
            })?),
            _ => None,
        };
        let mut deps = BTreeMap::new();
        if let Some(node) = nodes.get(id) {
            for d in &node.deps {
                if !best.contains_key(d.pkg.as_str()) {
                    continue;
                }
                let normal = d.dep_kinds.iter().any(|k| k.kind.is_none());
                let build = d
                    .dep_kinds
                    .iter()
                    .any(|k| k.kind.as_deref() == Some("build"));
                let kind = match (normal, build) {
                    (true, _) => EdgeKind::Normal,
                    (false, true) => EdgeKind::Build,
                    _ => continue, // dev-only edge
                };
                deps.insert(key_of(packages[d.pkg.as_str()]), kind);
            }
        }
        crates.insert(
            key,
            Crate {
                name: p.name.clone(),
                version: p.version.clone(),
                scope: *scope,
                source,
                checksum,
                license: p.license.clone(),
                license_file: p.license_file.clone(),
                description: p
                    .description
                    .as_ref()
                    .map(|d| d.split_whitespace().collect::<Vec<_>>().join(" ")),
                repository: p.repository.clone(),
                homepage: p.homepage.clone(),
                proc_macro: is_proc_macro(p),
                deps,
            },
        );
    }
    Ok(Resolution {
        root: key_of(root),
        crates,
        lock_path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(json: serde_json::Value) -> Metadata {
        serde_json::from_value(json).unwrap()
    }

    fn pkg(name: &str, proc_macro: bool) -> serde_json::Value {
        serde_json::json!({
            "name": name, "version": "1.0.0", "id": format!("{name}-id"),
            "source": if name == "app" { serde_json::Value::Null } else { "registry+https://github.com/rust-lang/crates.io-index".into() },
            "license": "MIT/Apache-2.0", "license_file": null, "description": "d", "repository": null, "homepage": null,
            "manifest_path": format!("/x/{name}/Cargo.toml"),
            "targets": [{"kind": [if proc_macro { "proc-macro" } else { "lib" }]}]
        })
    }

    fn dep(name: &str, kinds: &[Option<&str>]) -> serde_json::Value {
        serde_json::json!({"pkg": format!("{name}-id"), "dep_kinds": kinds.iter().map(|k| serde_json::json!({"kind": k, "target": null})).collect::<Vec<_>>()})
    }

    #[test]
    fn scopes_follow_edge_kinds() {
        let m = meta(serde_json::json!({
            "packages": [pkg("app", false), pkg("rt", false), pkg("pm", true), pkg("pmdep", false), pkg("bd", false), pkg("dev", false), pkg("both", false)],
            "workspace_members": ["app-id"],
            "workspace_root": "/x",
            "resolve": {"nodes": [
                {"id": "app-id", "deps": [dep("rt", &[None]), dep("pm", &[None]), dep("bd", &[Some("build")]), dep("dev", &[Some("dev")])]},
                {"id": "rt-id", "deps": [dep("both", &[None])]},
                {"id": "pm-id", "deps": [dep("pmdep", &[None])]},
                {"id": "pmdep-id", "deps": []},
                {"id": "bd-id", "deps": [dep("both", &[None])]},
                {"id": "dev-id", "deps": []},
                {"id": "both-id", "deps": []}
            ]}
        }));
        let req = ResolveRequest {
            manifest: "/x/app/Cargo.toml".into(),
            package: "app".into(),
            target: "t".into(),
            features: vec![],
            no_default_features: false,
        };
        let lock: LockChecksums = ["rt", "pm", "pmdep", "bd", "both"]
            .iter()
            .map(|n| (format!("{n}@1.0.0"), "00".repeat(32)))
            .collect();
        let r = walk(m, &req, &lock, "/x/Cargo.lock".into()).unwrap();
        let scope = |n: &str| r.crates[&format!("{n}@1.0.0")].scope;
        assert_eq!(scope("app"), Scope::Runtime);
        assert_eq!(scope("rt"), Scope::Runtime);
        assert_eq!(scope("both"), Scope::Runtime, "runtime wins over build");
        assert_eq!(scope("pm"), Scope::ProcMacro);
        assert_eq!(scope("pmdep"), Scope::ProcMacro);
        assert_eq!(scope("bd"), Scope::Build);
        assert!(
            !r.crates.contains_key("dev@1.0.0"),
            "dev-dependencies are never listed"
        );
        assert_eq!(r.root().source, Source::Workspace);
        assert_eq!(r.root().deps.get("bd@1.0.0"), Some(&EdgeKind::Build));
        assert!(!r.root().deps.contains_key("dev@1.0.0"));
        assert_eq!(
            r.crates["rt@1.0.0"].checksum.as_deref(),
            Some("00".repeat(32).as_str())
        );
    }

    #[test]
    fn registry_crate_missing_from_lock_is_stale() {
        let m = meta(serde_json::json!({
            "packages": [pkg("app", false), pkg("rt", false)],
            "workspace_members": ["app-id"], "workspace_root": "/x",
            "resolve": {"nodes": [{"id": "app-id", "deps": [dep("rt", &[None])]}, {"id": "rt-id", "deps": []}]}
        }));
        let req = ResolveRequest {
            manifest: "/x/app/Cargo.toml".into(),
            package: "app".into(),
            target: "t".into(),
            features: vec![],
            no_default_features: false,
        };
        let e = walk(m, &req, &LockChecksums::new(), "/x/Cargo.lock".into())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/x/Cargo.lock") && e.contains("rt@1.0.0") && e.contains("stale"),
            "{e}"
        );
    }

    #[test]
    fn lock_syntax_error_names_the_line() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("Cargo.lock");
        std::fs::write(
            &p,
            "version = 4\n\n[[package]]\nname = \"a\"\nversion = = \"1\"\n",
        )
        .unwrap();
        let e = read_lock(&p).unwrap_err().to_string();
        assert!(e.contains(&format!("{}:5", p.display())), "{e}");
    }
}
