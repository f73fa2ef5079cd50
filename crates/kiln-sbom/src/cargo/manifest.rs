//! `Cargo.toml`: the dependency declarations and features cargo resolved from, for
//! workspace members (with `workspace = true` inheritance) and for registry crates (whose
//! manifests cargo normalized on publish), and the workspace a package belongs to.
//!
//! Only what the feature resolver and the SBOM need is read; unknown keys are ignored, as
//! cargo ignores them (with a warning) too.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use cargo_platform::Platform;
use serde::Deserialize;

use super::CrateSources;
use crate::error::{Result, SbomError};

/// Which table a dependency is declared in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum DepKind {
    Normal,
    Build,
    Dev,
}

/// One dependency declaration (one entry of one `*dependencies` table).
#[derive(Debug, Clone)]
pub(crate) struct DepDecl {
    /// The key in the table: what features refer to (`name/feat`, `dep:name`).
    pub name: String,
    /// The package it names (`package = "..."` for a renamed dependency).
    pub package: String,
    pub kind: DepKind,
    /// `[target.'<platform>'.*dependencies]`.
    pub platform: Option<Platform>,
    pub optional: bool,
    pub default_features: bool,
    pub features: Vec<String>,
    /// The version requirement, if any.
    pub version: Option<String>,
    /// Absolute directory of a path dependency.
    pub path: Option<PathBuf>,
}

/// A package's manifest, after workspace inheritance.
#[derive(Debug, Clone)]
pub(crate) struct Manifest {
    pub path: PathBuf,
    pub name: String,
    pub version: String,
    pub edition: Option<String>,
    pub resolver: Option<String>,
    pub license: Option<String>,
    pub license_file: Option<String>,
    pub description: Option<String>,
    pub repository: Option<String>,
    pub homepage: Option<String>,
    pub proc_macro: bool,
    /// `[features]` plus cargo's implicit feature for each optional dependency that no
    /// feature names as `dep:<name>`.
    pub features: BTreeMap<String, Vec<String>>,
    pub deps: Vec<DepDecl>,
}

// ---------------------------------------------------------------------------------------
// Raw TOML

#[derive(Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
struct RawManifest {
    package: Option<RawPackage>,
    #[serde(default)]
    dependencies: BTreeMap<String, RawDep>,
    #[serde(default, alias = "dev_dependencies")]
    dev_dependencies: BTreeMap<String, RawDep>,
    #[serde(default, alias = "build_dependencies")]
    build_dependencies: BTreeMap<String, RawDep>,
    #[serde(default)]
    target: BTreeMap<String, RawTarget>,
    #[serde(default)]
    features: BTreeMap<String, Vec<String>>,
    lib: Option<RawLib>,
    workspace: Option<RawWorkspace>,
    /// `[patch.<registry>]`: replacements for registry crates (path ones are followed).
    #[serde(default)]
    patch: BTreeMap<String, BTreeMap<String, RawDep>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawPackage {
    name: String,
    version: Option<Inheritable>,
    edition: Option<Inheritable>,
    resolver: Option<String>,
    license: Option<Inheritable>,
    license_file: Option<Inheritable>,
    description: Option<Inheritable>,
    repository: Option<Inheritable>,
    homepage: Option<Inheritable>,
    /// `package.workspace`: the path to the workspace root, when it is not an ancestor.
    workspace: Option<String>,
}

/// A `[package]` field that may say `{ workspace = true }`.
#[derive(Deserialize)]
#[serde(untagged)]
enum Inheritable {
    Value(String),
    Inherit { workspace: bool },
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawDep {
    Version(String),
    Detailed(RawDepDetail),
}

#[derive(Deserialize, Default, Clone, Debug)]
#[serde(rename_all = "kebab-case")]
struct RawDepDetail {
    version: Option<String>,
    path: Option<String>,
    git: Option<String>,
    registry: Option<String>,
    package: Option<String>,
    #[serde(default)]
    features: Vec<String>,
    #[serde(default)]
    optional: bool,
    #[serde(alias = "default_features")]
    default_features: Option<bool>,
    #[serde(default)]
    workspace: bool,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
struct RawTarget {
    #[serde(default)]
    dependencies: BTreeMap<String, RawDep>,
    #[serde(default, alias = "dev_dependencies")]
    dev_dependencies: BTreeMap<String, RawDep>,
    #[serde(default, alias = "build_dependencies")]
    build_dependencies: BTreeMap<String, RawDep>,
}

#[derive(Deserialize)]
struct RawLib {
    #[serde(default, rename = "proc-macro", alias = "proc_macro")]
    proc_macro: bool,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
struct RawWorkspace {
    #[serde(default)]
    members: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
    resolver: Option<String>,
    #[serde(default)]
    package: BTreeMap<String, toml::Value>,
    #[serde(default)]
    dependencies: BTreeMap<String, RawDep>,
}

fn read_raw(path: &Path) -> Result<RawManifest> {
    let text = std::fs::read_to_string(path).map_err(crate::error::io("cannot read", path))?;
    toml::from_str(&text).map_err(|e| SbomError::Manifest {
        path: path.to_path_buf(),
        line: e
            .span()
            .map(|s| kiln_core::strict_toml::line_at(&text, s.start)),
        message: e.message().to_string(),
    })
}

fn bad(path: &Path, message: String) -> SbomError {
    SbomError::Manifest {
        path: path.to_path_buf(),
        line: None,
        message,
    }
}

// ---------------------------------------------------------------------------------------
// Workspace

/// The cargo workspace a package belongs to: its root, `[workspace]` table and members.
#[derive(Debug)]
pub(crate) struct Workspace {
    /// Directory of the root manifest (where `Cargo.lock` lives).
    pub root: PathBuf,
    /// `[workspace.resolver]`, or the root package's `resolver`/`edition` default.
    pub resolver: u8,
    /// Member manifests by directory (path dependencies under the root are added as they
    /// are met, as cargo makes them members too).
    pub members: BTreeMap<PathBuf, Manifest>,
    exclude: Vec<PathBuf>,
    package: BTreeMap<String, toml::Value>,
    dependencies: BTreeMap<String, RawDepDetail>,
    /// Directories of `[patch.*]` path replacements, by package name.
    pub patches: BTreeMap<String, PathBuf>,
}

impl Workspace {
    /// Finds and loads the workspace of the package at `manifest` (a `Cargo.toml`): the
    /// manifest itself if it has `[workspace]`, else `package.workspace`, else the nearest
    /// ancestor with a `[workspace]` listing it; a package with none is its own workspace.
    pub fn discover(manifest: &Path) -> Result<Workspace> {
        let manifest = manifest
            .canonicalize()
            .map_err(crate::error::io("cannot read", manifest))?;
        let dir = manifest.parent().unwrap_or(Path::new("/")).to_path_buf();
        let raw = read_raw(&manifest)?;
        if raw.workspace.is_some() {
            return Self::load(dir, raw);
        }
        if let Some(ws) = raw.package.as_ref().and_then(|p| p.workspace.as_ref()) {
            let root = dir.join(ws);
            let root = root
                .canonicalize()
                .map_err(crate::error::io("cannot read", &root))?;
            let root_raw = read_raw(&root.join("Cargo.toml"))?;
            return Self::load(root, root_raw);
        }
        for ancestor in dir.ancestors().skip(1) {
            let candidate = ancestor.join("Cargo.toml");
            if !candidate.is_file() {
                continue;
            }
            let root_raw = read_raw(&candidate)?;
            if root_raw.workspace.is_none() {
                continue;
            }
            let ws = Self::load(ancestor.to_path_buf(), root_raw)?;
            if ws.members.contains_key(&dir) {
                return Ok(ws);
            }
        }
        // A standalone package: its own (implicit) workspace.
        Self::load(dir, raw)
    }

    fn load(root: PathBuf, mut raw: RawManifest) -> Result<Workspace> {
        let root_manifest = root.join("Cargo.toml");
        let workspace = raw.workspace.take();
        let table = workspace.as_ref();
        let mut ws = Workspace {
            resolver: 1,
            members: BTreeMap::new(),
            exclude: table
                .map(|t| t.exclude.iter().map(|e| root.join(e)).collect())
                .unwrap_or_default(),
            package: table.map(|t| t.package.clone()).unwrap_or_default(),
            dependencies: BTreeMap::new(),
            patches: BTreeMap::new(),
            root: root.clone(),
        };
        for table in raw.patch.values() {
            for (name, d) in table {
                if let RawDep::Detailed(RawDepDetail {
                    path: Some(p),
                    package,
                    ..
                }) = d
                {
                    let name = package.clone().unwrap_or_else(|| name.clone());
                    ws.patches.insert(name, normalize_path(&root.join(p)));
                }
            }
        }
        if let Some(t) = table {
            for (name, d) in &t.dependencies {
                let detail = match d {
                    RawDep::Version(v) => RawDepDetail {
                        version: Some(v.clone()),
                        ..RawDepDetail::default()
                    },
                    RawDep::Detailed(d) => d.clone(),
                };
                ws.dependencies.insert(name.clone(), detail);
            }
        }
        let mut member_dirs = Vec::new();
        if let Some(t) = table {
            for pattern in &t.members {
                let full = root.join(pattern);
                let full = full.to_str().ok_or_else(|| {
                    bad(&root_manifest, format!("member `{pattern}` is not UTF-8"))
                })?;
                let paths = glob::glob(full).map_err(|e| {
                    bad(
                        &root_manifest,
                        format!("workspace.members: `{pattern}` is not a valid glob: {e}"),
                    )
                })?;
                for p in paths.flatten() {
                    if p.join("Cargo.toml").is_file() {
                        member_dirs.push(p);
                    }
                }
            }
        }
        let root_package = raw.package.is_some();
        if root_package {
            let m = ws.finish(&root_manifest, raw)?;
            ws.resolver = resolver_version(m.resolver.as_deref(), m.edition.as_deref());
            ws.members.insert(root.clone(), m);
        }
        if let Some(r) = table.and_then(|t| t.resolver.clone()) {
            ws.resolver = resolver_version(Some(&r), None);
        }
        member_dirs.sort();
        for d in member_dirs {
            let d = d
                .canonicalize()
                .map_err(crate::error::io("cannot read", &d))?;
            if ws.members.contains_key(&d) || ws.is_excluded(&d) {
                continue;
            }
            let m = ws.load_package(&d.join("Cargo.toml"))?;
            ws.members.insert(d, m);
        }
        Ok(ws)
    }

    fn is_excluded(&self, dir: &Path) -> bool {
        self.exclude.iter().any(|e| dir.starts_with(e))
    }

    /// True when a path package in `dir` is a member (listed, or a path dependency under
    /// the root and not excluded).
    pub fn is_member(&self, dir: &Path) -> bool {
        self.members.contains_key(dir) || (dir.starts_with(&self.root) && !self.is_excluded(dir))
    }

    /// Loads a path package's manifest with this workspace's inheritance.
    pub fn load_package(&self, manifest: &Path) -> Result<Manifest> {
        let raw = read_raw(manifest)?;
        self.finish(manifest, raw)
    }

    fn finish(&self, path: &Path, raw: RawManifest) -> Result<Manifest> {
        normalize(path, raw, Some(self))
    }

    fn inherited_field(&self, path: &Path, field: &str) -> Result<String> {
        match self.package.get(field) {
            Some(toml::Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(bad(
                path,
                format!(
                    "package.{field} inherits `workspace.package.{field}`, which is {} (expected a string)",
                    other.type_str()
                ),
            )),
            None => Err(bad(
                path,
                format!(
                    "package.{field} = {{ workspace = true }}, but {} has no `workspace.package.{field}`",
                    self.root.join("Cargo.toml").display()
                ),
            )),
        }
    }
}

/// cargo's resolver number from `resolver` or, failing that, the edition's default.
fn resolver_version(resolver: Option<&str>, edition: Option<&str>) -> u8 {
    match (resolver, edition) {
        (Some("1"), _) => 1,
        (Some("2"), _) => 2,
        (Some(_), _) => 3,
        (None, Some("2021")) => 2,
        (None, Some(e)) if e > "2021" => 3,
        _ => 1,
    }
}

/// Reads a registry crate's manifest (cargo normalized it on publish: no inheritance, no
/// path dependencies).
pub(crate) fn load_registry(path: &Path) -> Result<Manifest> {
    let raw = read_raw(path)?;
    normalize(path, raw, None)
}

fn normalize(path: &Path, raw: RawManifest, ws: Option<&Workspace>) -> Result<Manifest> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    let pkg = raw
        .package
        .ok_or_else(|| bad(path, "no [package] table: not a package manifest".into()))?;
    let field = |name: &str, v: Option<Inheritable>| -> Result<Option<String>> {
        match v {
            None => Ok(None),
            Some(Inheritable::Value(s)) => Ok(Some(s)),
            Some(Inheritable::Inherit { workspace: true }) => match ws {
                Some(ws) => ws.inherited_field(path, name).map(Some),
                None => Err(bad(
                    path,
                    format!("package.{name} inherits from a workspace, but this package has none"),
                )),
            },
            Some(Inheritable::Inherit { workspace: false }) => Err(bad(
                path,
                format!(
                    "package.{name}: `workspace = false` is not a value; give the field a string"
                ),
            )),
        }
    };
    let mut deps = Vec::new();
    let mut add = |table: &BTreeMap<String, RawDep>,
                   kind: DepKind,
                   platform: Option<&Platform>|
     -> Result<()> {
        for (name, d) in table {
            deps.push(declaration(path, dir, name, d, kind, platform, ws)?);
        }
        Ok(())
    };
    add(&raw.dependencies, DepKind::Normal, None)?;
    add(&raw.build_dependencies, DepKind::Build, None)?;
    add(&raw.dev_dependencies, DepKind::Dev, None)?;
    for (spec, t) in &raw.target {
        let platform = Platform::from_str(spec).map_err(|e| {
            bad(
                path,
                format!("[target.'{spec}']: not a platform cargo understands: {e}"),
            )
        })?;
        add(&t.dependencies, DepKind::Normal, Some(&platform))?;
        add(&t.build_dependencies, DepKind::Build, Some(&platform))?;
        add(&t.dev_dependencies, DepKind::Dev, Some(&platform))?;
    }
    let mut features = raw.features;
    // cargo's implicit features: an optional dependency `foo` is also a feature `foo`
    // (= ["dep:foo"]) unless some feature refers to it as `dep:foo`.
    let explicit: std::collections::BTreeSet<&str> = features
        .values()
        .flatten()
        .filter_map(|v| v.strip_prefix("dep:"))
        .collect();
    let implicit: Vec<String> = deps
        .iter()
        .filter(|d| d.optional && !explicit.contains(d.name.as_str()))
        .map(|d| d.name.clone())
        .collect();
    for name in implicit {
        features
            .entry(name.clone())
            .or_insert_with(|| vec![format!("dep:{name}")]);
    }
    Ok(Manifest {
        path: path.to_path_buf(),
        name: pkg.name,
        // `package.version` may be omitted since cargo 1.75 (it is then 0.0.0).
        version: field("version", pkg.version)?.unwrap_or_else(|| "0.0.0".into()),
        edition: field("edition", pkg.edition)?,
        resolver: pkg.resolver,
        license: field("license", pkg.license)?,
        license_file: field("license-file", pkg.license_file)?,
        description: field("description", pkg.description)?,
        repository: field("repository", pkg.repository)?,
        homepage: field("homepage", pkg.homepage)?,
        proc_macro: raw.lib.is_some_and(|l| l.proc_macro),
        features,
        deps,
    })
}

fn declaration(
    path: &Path,
    dir: &Path,
    name: &str,
    d: &RawDep,
    kind: DepKind,
    platform: Option<&Platform>,
    ws: Option<&Workspace>,
) -> Result<DepDecl> {
    let mut detail = match d {
        RawDep::Version(v) => RawDepDetail {
            version: Some(v.clone()),
            ..RawDepDetail::default()
        },
        RawDep::Detailed(d) => d.clone(),
    };
    let mut base = dir.to_path_buf();
    if detail.workspace {
        let ws = ws.ok_or_else(|| {
            bad(
                path,
                format!(
                    "dependency `{name}` says `workspace = true`, but the package has no workspace"
                ),
            )
        })?;
        let from = ws.dependencies.get(name).ok_or_else(|| {
            bad(
                path,
                format!(
                    "dependency `{name}` says `workspace = true`, but {} has no `workspace.dependencies.{name}`",
                    ws.root.join("Cargo.toml").display()
                ),
            )
        })?;
        // Member keys add to the workspace's: features are unioned, `optional` is the
        // member's own, `default-features` is the workspace's unless the member sets it.
        let mut features = from.features.clone();
        features.extend(detail.features.iter().cloned());
        detail = RawDepDetail {
            features,
            optional: detail.optional,
            default_features: detail.default_features.or(from.default_features),
            workspace: false,
            ..from.clone()
        };
        base = ws.root.clone();
    }
    if let Some(src) = detail.git.as_ref().or(detail.registry.as_ref()) {
        return Err(bad(
            path,
            format!(
                "dependency `{name}` comes from `{src}`: kiln describes crates.io and path dependencies only (the ones its fetch step can pin by checksum)"
            ),
        ));
    }
    Ok(DepDecl {
        name: name.to_string(),
        package: detail.package.clone().unwrap_or_else(|| name.to_string()),
        kind,
        platform: platform.cloned(),
        optional: detail.optional,
        default_features: detail.default_features.unwrap_or(true),
        features: detail.features,
        version: detail.version,
        path: detail.path.map(|p| normalize_path(&base.join(p))),
    })
}

/// `a/b/../c` → `a/c` without touching the file system (the directory may be a symlink
/// farm; cargo compares path dependencies lexically too).
fn normalize_path(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Where the registry crates' manifests are read from (see [`CrateSources`]).
#[derive(Debug)]
pub(crate) struct RegistrySources {
    dirs: Vec<PathBuf>,
    sources: CrateSources,
}

impl RegistrySources {
    pub fn new(sources: &CrateSources) -> RegistrySources {
        let dirs = match sources {
            CrateSources::Verified(dir) => vec![dir.clone()],
            CrateSources::CargoHome(home) => {
                // `registry/src/<index>/`, crates.io's index first.
                let mut dirs: Vec<PathBuf> = std::fs::read_dir(home.join("registry/src"))
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|e| e.path())
                    .collect();
                dirs.sort_by_key(|d| {
                    let name = d
                        .file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .into_owned();
                    (!name.starts_with("index.crates.io-"), name)
                });
                dirs
            }
        };
        RegistrySources {
            dirs,
            sources: sources.clone(),
        }
    }

    /// `Cargo.toml` of `name-version`.
    pub fn manifest(&self, name: &str, version: &str) -> Result<PathBuf> {
        let rel = format!("{name}-{version}/Cargo.toml");
        self.dirs
            .iter()
            .map(|d| d.join(&rel))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                let krate = format!("{name}@{version}");
                match &self.sources {
                    CrateSources::Verified(dir) => SbomError::MissingVerified {
                        krate,
                        dir: dir.clone(),
                    },
                    CrateSources::CargoHome(home) => SbomError::MissingSource {
                        krate,
                        cargo_home: home.clone(),
                    },
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, rel: &str, text: &str) -> PathBuf {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn members_inherit_package_fields_and_dependencies() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().canonicalize().unwrap();
        write(
            &root,
            "Cargo.toml",
            r#"[workspace]
members = ["crates/*"]
exclude = ["crates/skip"]
resolver = "2"
[workspace.package]
version = "1.2.3"
license = "MIT"
[workspace.dependencies]
itoa = { version = "1", default-features = false, features = ["a"] }
sib = { path = "crates/sib" }
"#,
        );
        let app = write(
            &root,
            "crates/app/Cargo.toml",
            r#"[package]
name = "app"
version.workspace = true
license = { workspace = true }
edition = "2021"
[dependencies]
itoa = { workspace = true, features = ["b"], optional = true }
sib.workspace = true
renamed = { package = "ryu", version = "1" }
[target.'cfg(windows)'.dependencies]
winapi = "0.3"
[build-dependencies]
cc = "1"
[dev-dependencies]
dev = "1"
[features]
x = ["itoa?/c"]
"#,
        );
        write(
            &root,
            "crates/sib/Cargo.toml",
            "[package]\nname = \"sib\"\nversion = \"0.1.0\"\n",
        );
        write(&root, "crates/skip/Cargo.toml", "not toml at all [");
        let ws = Workspace::discover(&app).unwrap();
        assert_eq!(ws.root, root);
        assert_eq!(ws.resolver, 2);
        let m = &ws.members[&root.join("crates/app")];
        assert_eq!(
            (m.version.as_str(), m.license.as_deref()),
            ("1.2.3", Some("MIT"))
        );
        let itoa = m.deps.iter().find(|d| d.name == "itoa").unwrap();
        assert_eq!(itoa.features, ["a", "b"]);
        assert!(itoa.optional && !itoa.default_features);
        let sib = m.deps.iter().find(|d| d.name == "sib").unwrap();
        assert_eq!(sib.path.as_deref(), Some(root.join("crates/sib").as_path()));
        let renamed = m.deps.iter().find(|d| d.name == "renamed").unwrap();
        assert_eq!(renamed.package, "ryu");
        let winapi = m.deps.iter().find(|d| d.name == "winapi").unwrap();
        assert!(winapi.platform.is_some() && winapi.kind == DepKind::Normal);
        assert_eq!(
            m.deps.iter().find(|d| d.name == "cc").unwrap().kind,
            DepKind::Build
        );
        assert_eq!(
            m.deps.iter().find(|d| d.name == "dev").unwrap().kind,
            DepKind::Dev
        );
        // `itoa?/c` is not `dep:itoa`: the implicit feature exists.
        assert_eq!(m.features["itoa"], ["dep:itoa"]);
        assert!(ws.members.contains_key(&root.join("crates/sib")));
        assert!(!ws.members.contains_key(&root.join("crates/skip")));
        assert!(ws.is_member(&root.join("crates/sib")));
    }

    #[test]
    fn dep_prefixed_optional_dependency_has_no_implicit_feature() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            "Cargo.toml",
            "[package]\nname = \"a\"\nversion = \"0.1.0\"\nedition = \"2024\"\n[dependencies]\nryu = { version = \"1\", optional = true }\n[features]\nfast = [\"dep:ryu\"]\n",
        );
        let ws = Workspace::discover(&p).unwrap();
        assert_eq!(ws.resolver, 3, "edition 2024 defaults to resolver 3");
        let m = ws.members.values().next().unwrap();
        assert!(!m.features.contains_key("ryu"));
    }

    #[test]
    fn bad_manifests_name_file_line_and_field() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            "Cargo.toml",
            "[package]\nname = \"a\"\nversion = 3\n",
        );
        let e = Workspace::discover(&p).unwrap_err().to_string();
        assert!(
            e.contains(&format!("{}:3", p.canonicalize().unwrap().display())),
            "{e}"
        );

        let p = write(
            d.path(),
            "Cargo.toml",
            "[package]\nname = \"a\"\nlicense.workspace = true\n",
        );
        let e = Workspace::discover(&p).unwrap_err().to_string();
        assert!(e.contains("workspace.package.license"), "{e}");

        let p = write(
            d.path(),
            "Cargo.toml",
            "[package]\nname = \"a\"\n[dependencies]\nx = { git = \"https://example.com/x\" }\n",
        );
        let e = Workspace::discover(&p).unwrap_err().to_string();
        assert!(e.contains("`x`") && e.contains("crates.io and path"), "{e}");
    }
}
