//! `kiln.toml`: what a project builds.
//!
//! The file is parsed strictly (unknown keys and wrong types are errors that name the key,
//! the line and the file) and then validated as a whole, before any work, so that every
//! later step can trust it: image names are unique directory names (never `.`/`..` or
//! hidden), the manifest and extra files exist inside the project, package, binary and
//! feature names are well-formed, every binary and file gets its own absolute, clean
//! path in the image, base images are pinned by digest (and, with `[policy]
//! base_allowlist`, named by a reference the allowlist admits), no reference or tag is
//! `latest`. Validation errors name the file, the key, its line and the fix.
//!
//! ```toml
//! [project]
//! source_date_epoch = 1700000000   # used when neither $SOURCE_DATE_EPOCH nor git gives one
//!
//! [[image]]
//! name = "hello"
//! manifest = "testdata/hello/Cargo.toml"
//! package = "hello"
//! binaries = ["hello"]
//! entrypoint = ["/usr/local/bin/hello"]
//!
//! [[image.files]]
//! source = "testdata/hello/greeting.txt"
//! path = "/etc/hello/greeting.txt"
//! mode = 0o644
//!
//! [policy]
//! # Every non-scratch base must name (`base.ref`) an image one of these admits.
//! base_allowlist = ["ghcr.io/acme/base@sha256:<64 hex>", "registry.example.com/approved/*"]
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use kiln_core::Digest;
use kiln_core::contract::reference::{Allowlist, Reference};
use serde::Deserialize;

/// The file name kiln looks for at a project's root.
pub const FILE_NAME: &str = kiln_core::contract::layout::KILN_TOML;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {}key `{field}`: {message}", line.map(|l| format!("line {l}: ")).unwrap_or_default())]
    Invalid {
        path: PathBuf,
        /// The line of the offending key or value, when the file has it.
        line: Option<usize>,
        field: String,
        message: String,
        fix: String,
    },
}

/// The fix, printed by the CLI on its own line after the message.
impl kiln_core::Hint for ConfigError {
    fn hint(&self) -> Option<String> {
        match self {
            ConfigError::Read { .. } => {
                Some("run kiln from a project that has a kiln.toml, or pass -C DIR".to_string())
            }
            ConfigError::Parse { .. } => None,
            ConfigError::Invalid { fix, .. } => Some(fix.clone()),
        }
    }
}

type Result<T, E = ConfigError> = std::result::Result<T, E>;

/// A validated `kiln.toml`.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from.
    pub path: PathBuf,
    /// The directory holding `kiln.toml`; every relative path in it is relative to this.
    pub root: PathBuf,
    /// sha256 of the file's bytes, recorded in build outputs.
    pub digest: Digest,
    pub project: Project,
    pub images: Vec<ImageSpec>,
    /// `[lineage]`: tags provenance carries (`KILN_LINEAGE_*` override them).
    pub lineage: Lineage,
    /// `[policy]`: what the build may start from.
    pub policy: PolicyConfig,
    /// `[compliance]`: the evidence pack each build writes, and the catalog that judges it.
    pub compliance: Compliance,
    /// `[cache]`: the attested build cache.
    pub cache: CacheConfig,
}

/// `[cache]`: reuse compiled outputs from the attested build cache (`--cache` turns it on
/// for one build, `--no-cache` off). An entry is used only when its attestation verifies
/// with the build's own signing key or one of `trusted_keys`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    #[serde(default)]
    pub enabled: bool,
    /// The store (default: `$KILN_CACHE_DIR`, else the user cache directory), relative to
    /// the project.
    pub dir: Option<PathBuf>,
    /// Public keys (PEM) whose cache entries are trusted, relative to the project.
    #[serde(default)]
    pub trusted_keys: Vec<PathBuf>,
    /// `registry/repository` (no tag, no digest): an OCI registry shared as a second tier
    /// of the cache. A local miss looks there (entry `kiln-cache-<key hex>`, verified as a
    /// local one); a fresh entry is pushed there. `--cache-registry` overrides it.
    pub registry: Option<String>,
}

/// `[compliance]`: after each image is built, pack its evidence into
/// `target/kiln/evidence/<image>/` (`pack = true`), with these scans; with a `catalog`
/// and a signing key, also attest the controls and attach the attestation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Compliance {
    #[serde(default)]
    pub pack: bool,
    /// SARIF or OSV files to include, relative to the project (they must exist).
    #[serde(default)]
    pub scans: Vec<PathBuf>,
    /// The control catalog (YAML), relative to the project.
    pub catalog: Option<PathBuf>,
}

/// `[policy]`: rules checked at load, before any work.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// The base images a build may start from, as written (each entry
    /// `registry/repository@sha256:HEX` or `registry/org/*`; see
    /// [`kiln_core::contract::reference::Allowlist`]). Empty: no allowlist. When set, every
    /// non-scratch base must have a `ref` the list admits (checked with the pinned digest).
    #[serde(default)]
    pub base_allowlist: Vec<String>,
}

impl PolicyConfig {
    /// The parsed allowlist (`None` when none is configured). Validation has already
    /// parsed it, so this does not fail for a loaded [`Config`].
    pub fn allowlist(&self) -> Option<Allowlist> {
        if self.base_allowlist.is_empty() {
            return None;
        }
        Allowlist::parse(&self.base_allowlist).ok()
    }
}

/// `[lineage]`: where the source came from, which transformation this build is, and the
/// policy version that governs it. Carried into provenance so a verifier can require them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lineage {
    pub source: Option<String>,
    pub transform: Option<String>,
    pub policy_version: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Project {
    /// Fallback `SOURCE_DATE_EPOCH` when the environment and git give none.
    pub source_date_epoch: Option<u64>,
    /// Path of the toolchain lock, relative to the root. Default:
    /// `toolchains/<target>.lock.json`.
    pub toolchain_lock: Option<PathBuf>,
    /// The toolchain root kiln provides for this project (`toolchains/<NAME>.lock.json`,
    /// made by `kiln toolchain pin` and `pack`): the build runs inside it, and the host
    /// contributes only the kernel. Unset: the host's toolchain, verified against
    /// `toolchain_lock`.
    pub toolchain_root: Option<String>,
}

/// One image to build.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSpec {
    /// Names the output directory `target/kiln/out/<name>/`.
    pub name: String,
    /// The cargo manifest of the package, relative to the root. Default `Cargo.toml`.
    #[serde(default = "default_manifest")]
    pub manifest: PathBuf,
    /// The cargo package whose binaries go into the image.
    pub package: String,
    /// Binaries of `package` to put in the image. Omitted (or empty): every `[[bin]]`
    /// target of the package, auto-discovered ones included (kiln-build fills them in).
    #[serde(default)]
    pub binaries: Vec<String>,
    /// Directory in the image that receives the binaries.
    #[serde(default = "default_bin_dir")]
    pub bin_dir: String,
    /// Cargo features to enable.
    #[serde(default)]
    pub features: Vec<String>,
    #[serde(default)]
    pub no_default_features: bool,
    /// Extra files copied from the project into the image.
    #[serde(default)]
    pub files: Vec<FileSpec>,
    /// `"scratch"` or a local OCI layout pinned by digest.
    #[serde(default)]
    pub base: Base,
    /// `os/arch[/variant]`; only the host platform can be built today.
    #[serde(default = "default_platform")]
    pub platform: String,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub exposed_ports: BTreeSet<String>,
    /// `org.opencontainers.image.ref.name` of the manifest in the layout, and the tag
    /// `push` gives it. Default: the package's version (from `Cargo.lock`), filled in by
    /// the build before anything uses it, so a release is never `latest` by accident.
    #[serde(default)]
    pub tag: Option<String>,
}

impl ImageSpec {
    /// The tag: kiln.toml's, or the package version the build filled in.
    pub fn tag(&self) -> &str {
        self.tag.as_deref().unwrap_or_default()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    /// Path in the project, relative to the root.
    pub source: PathBuf,
    /// Absolute path in the image.
    pub path: String,
    /// Permission bits; default 0o644, or 0o755 when the source is executable.
    pub mode: Option<u32>,
}

/// Where an image starts from.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Base {
    #[default]
    Scratch,
    /// A local OCI image layout and the manifest digest it must contain.
    Layout {
        path: PathBuf,
        digest: Digest,
        /// `ref`: where the layout came from (`registry/repo:tag[@sha256:...]`), recorded
        /// in provenance and checked against `[policy] base_allowlist`. Never `latest`;
        /// its digest, when it has one, is `digest`.
        reference: Option<Reference>,
    },
}

impl Base {
    /// The reference a policy checks: `ref` with the layout's pinned digest filled in
    /// (`None` for scratch or a layout without `ref`).
    pub fn pinned_reference(&self) -> Option<Reference> {
        match self {
            Base::Layout {
                digest,
                reference: Some(r),
                ..
            } => Some(Reference {
                digest: Some(*digest),
                ..r.clone()
            }),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Base {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Layout {
            layout: PathBuf,
            digest: String,
            #[serde(default, rename = "ref")]
            reference: Option<String>,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Word(String),
            Layout(Layout),
        }
        let bad = "expected \"scratch\" or { layout = \"DIR\", digest = \"sha256:...\" } (optionally with ref = \"REGISTRY/REPO:TAG\")";
        match Raw::deserialize(d).map_err(|_| serde::de::Error::custom(bad))? {
            Raw::Word(w) if w == "scratch" => Ok(Base::Scratch),
            Raw::Word(w) => Err(serde::de::Error::custom(format!(
                "unknown base `{w}`: {bad}"
            ))),
            Raw::Layout(l) => {
                let digest = l.digest.parse().map_err(serde::de::Error::custom)?;
                let reference = l
                    .reference
                    .map(|r| {
                        Reference::parse(&r).map_err(|e| {
                            serde::de::Error::custom(format!(
                                "ref: {e} (write the reference the layout was copied from, such as registry.example.com/team/base:1.2)"
                            ))
                        })
                    })
                    .transpose()?;
                Ok(Base::Layout {
                    path: l.layout,
                    digest,
                    reference,
                })
            }
        }
    }
}

fn default_manifest() -> PathBuf {
    PathBuf::from("Cargo.toml")
}
fn default_bin_dir() -> String {
    "/usr/local/bin".into()
}
fn default_platform() -> String {
    kiln_core::contract::platform::host().os_arch()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    project: Project,
    #[serde(default, rename = "image")]
    images: Vec<ImageSpec>,
    #[serde(default)]
    lineage: Lineage,
    #[serde(default)]
    policy: PolicyConfig,
    #[serde(default)]
    compliance: Compliance,
    #[serde(default)]
    cache: CacheConfig,
}

impl Config {
    /// Reads `kiln.toml` from the project directory `dir`.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(FILE_NAME);
        let bytes = std::fs::read(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        Self::parse(&path, &bytes)
    }

    /// Parses and validates the bytes of a `kiln.toml` found at `path`.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Self> {
        let text = std::str::from_utf8(bytes).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: format!("not UTF-8 text ({e})"),
        })?;
        let parse_err = |message| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        };
        let raw: RawConfig =
            kiln_core::strict_toml::from_str(text).map_err(|e| parse_err(e.into_message()))?;
        let root = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let config = Config {
            path: path.to_path_buf(),
            root,
            digest: Digest::of(bytes),
            project: raw.project,
            images: raw.images,
            lineage: raw.lineage,
            policy: raw.policy,
            compliance: raw.compliance,
            cache: raw.cache,
        };
        config.validate().map_err(|e| match e {
            ConfigError::Invalid {
                path,
                line: None,
                field,
                message,
                fix,
            } => ConfigError::Invalid {
                path,
                line: line_of(text, &field),
                field,
                message,
                fix,
            },
            other => other,
        })?;
        Ok(config)
    }

    /// The image called `name`.
    pub fn image(&self, name: &str) -> Result<&ImageSpec> {
        self.images.iter().find(|i| i.name == name).ok_or_else(|| {
            let known: Vec<_> = self.images.iter().map(|i| i.name.as_str()).collect();
            self.invalid(
                "image",
                format!("no image named `{name}`"),
                format!("use one of: {}", known.join(", ")),
            )
        })
    }

    /// Resolves a path from `kiln.toml` against the project root.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        self.root.join(p)
    }

    fn invalid(
        &self,
        field: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.clone(),
            line: None,
            field: field.into(),
            message: message.into(),
            fix: fix.into(),
        }
    }

    /// An error about `field` (`image[0].package`) found after loading (against
    /// Cargo.lock, say): it names the file, the key, its line and the fix like the ones
    /// validation finds.
    pub fn error_at(
        &self,
        field: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> ConfigError {
        let field = field.into();
        let line = std::fs::read_to_string(&self.path)
            .ok()
            .and_then(|text| line_of(&text, &field));
        ConfigError::Invalid {
            path: self.path.clone(),
            line,
            field,
            message: message.into(),
            fix: fix.into(),
        }
    }

    fn validate(&self) -> Result<()> {
        if self.images.is_empty() {
            return Err(self.invalid(
                "image",
                "no [[image]] table",
                "add at least one [[image]] with name, package and binaries",
            ));
        }
        let allowlist = self.check_allowlist()?;
        self.check_compliance()?;
        if let Some(name) = &self.project.toolchain_root {
            let ok = name
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphanumeric())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._+".contains(&b));
            if !ok {
                return Err(self.invalid(
                    "project.toolchain_root",
                    format!("`{name}` is not a toolchain root name"),
                    "name a lock in toolchains/ without its .lock.json suffix (letters, digits and -._+), e.g. \"bookworm-rust-1.95.0\"",
                ));
            }
            if self.project.toolchain_lock.is_some() {
                return Err(self.invalid(
                    "project.toolchain_lock",
                    "a provided toolchain root has no host toolchain lock",
                    "remove toolchain_lock, or toolchain_root to build with the host's toolchain",
                ));
            }
        }
        let mut seen = BTreeSet::new();
        for (i, img) in self.images.iter().enumerate() {
            let at = |f: &str| format!("image[{i}].{f}");
            // The name is a directory under target/kiln/out: `.`, `..` or a hidden name
            // would land elsewhere (or look like a leftover of a killed build).
            if img.name.is_empty()
                || img.name.len() > 128
                || !img
                    .name
                    .bytes()
                    .next()
                    .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                || !img
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
            {
                return Err(self.invalid(
                    at("name"),
                    format!("`{}` is not a valid image name", img.name),
                    "start with a lowercase letter or digit, then use lowercase letters, digits, '.', '_' and '-' (at most 128)",
                ));
            }
            if !seen.insert(img.name.as_str()) {
                return Err(self.invalid(
                    at("name"),
                    format!("image `{}` is defined twice", img.name),
                    "give each [[image]] a unique name",
                ));
            }
            self.check_inside(&img.manifest).map_err(|m| {
                self.invalid(
                    at("manifest"),
                    m.to_string(),
                    "point `manifest` at the package's (or its workspace's) Cargo.toml, relative to kiln.toml and inside the project",
                )
            })?;
            if !is_cargo_name(&img.package) {
                return Err(self.invalid(
                    at("package"),
                    format!("`{}` is not a cargo package name", img.package),
                    "use the `name` of the package's [package] table",
                ));
            }
            for (k, b) in img.binaries.iter().enumerate() {
                if !is_cargo_name(b) {
                    return Err(self.invalid(
                        format!("image[{i}].binaries[{k}]"),
                        format!("`{b}` is not a binary target name"),
                        "name [[bin]] targets of the package (letters, digits, '-' and '_'), or omit `binaries` for all of them",
                    ));
                }
                if img.binaries[..k].contains(b) {
                    return Err(self.invalid(
                        format!("image[{i}].binaries[{k}]"),
                        format!("binary `{b}` is listed twice"),
                        "list each binary once",
                    ));
                }
            }
            for (k, f) in img.features.iter().enumerate() {
                let ok = !f.is_empty()
                    && f.chars().all(|c| {
                        c.is_alphanumeric() || matches!(c, '-' | '_' | '+' | '.' | '/' | ':')
                    });
                if !ok {
                    return Err(self.invalid(
                        format!("image[{i}].features[{k}]"),
                        format!("`{f}` is not a feature name"),
                        "give one feature per list entry (`name` or `dependency/name`)",
                    ));
                }
            }
            check_image_path(&img.bin_dir).map_err(|m| {
                self.invalid(
                    at("bin_dir"),
                    m.to_string(),
                    "use an absolute path such as /usr/local/bin",
                )
            })?;
            if let Some(w) = &img.workdir {
                check_image_path(w).map_err(|m| {
                    self.invalid(at("workdir"), m.to_string(), "use an absolute path")
                })?;
            }
            if let Some(tag) = &img.tag
                && (tag.is_empty()
                    || tag.len() > 128
                    || !tag
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)))
            {
                return Err(self.invalid(
                    at("tag"),
                    format!("`{tag}` is not a valid tag"),
                    "use letters, digits, '.', '_' and '-' (at most 128)",
                ));
            }
            if img.tag.as_deref() == Some("latest") {
                return Err(self.invalid(
                    at("tag"),
                    "`latest` names whatever was built last, so a release could not be told apart from the next build",
                    "set tag to a version, or omit it to use the package version",
                ));
            }
            let expected = kiln_core::contract::platform::host().os_arch();
            if img.platform != expected {
                return Err(self.invalid(
                    at("platform"),
                    format!("`{}` cannot be built on this machine", img.platform),
                    format!("kiln builds for the host platform only; use `{expected}`"),
                ));
            }
            for k in img.env.keys() {
                if k.is_empty() || k.contains('=') {
                    return Err(self.invalid(
                        at("env"),
                        format!("`{k}` is not a valid variable name"),
                        "use a name without '='",
                    ));
                }
            }
            for port in &img.exposed_ports {
                let ok = match port.split_once('/') {
                    Some((n, proto)) => {
                        n.parse::<u16>().is_ok() && matches!(proto, "tcp" | "udp" | "sctp")
                    }
                    None => port.parse::<u16>().is_ok(),
                };
                if !ok {
                    return Err(self.invalid(
                        at("exposed_ports"),
                        format!("`{port}` is not a port"),
                        "write PORT or PORT/tcp, PORT/udp",
                    ));
                }
            }
            for (j, f) in img.files.iter().enumerate() {
                let fat = |g: &str| format!("image[{i}].files[{j}].{g}");
                check_image_path(&f.path).map_err(|m| {
                    self.invalid(
                        fat("path"),
                        m.to_string(),
                        "use an absolute, normalized path in the image",
                    )
                })?;
                if let Some(mode) = f.mode
                    && mode > 0o7777
                {
                    return Err(self.invalid(
                        fat("mode"),
                        format!("{mode:#o} is not a permission mode"),
                        "use an octal mode such as 0o644",
                    ));
                }
                self.check_inside(&f.source).map_err(|m| {
                    self.invalid(
                        fat("source"),
                        m.to_string(),
                        "copy the file into the project; kiln only reads files inside it",
                    )
                })?;
            }
            self.check_image_paths(i, img)?;
            if let Base::Layout { path, .. } = &img.base
                && !self.resolve(path).join("index.json").is_file()
            {
                return Err(self.invalid(
                    at("base.layout"),
                    format!(
                        "{} is not an OCI image layout (no index.json)",
                        self.resolve(path).display()
                    ),
                    "point base.layout at a directory written by `skopeo copy ... oci:DIR`",
                ));
            }
            self.check_base(i, &img.base, allowlist.as_ref())?;
        }
        Ok(())
    }

    /// `[compliance]`: scans and the catalog exist inside the project; they mean nothing
    /// without `pack = true`.
    fn check_compliance(&self) -> Result<()> {
        let c = &self.compliance;
        if !c.pack && (!c.scans.is_empty() || c.catalog.is_some()) {
            return Err(self.invalid(
                "compliance.pack",
                "scans or a catalog are set, but no pack is written",
                "set `pack = true` in [compliance]",
            ));
        }
        if let Some(r) = &self.cache.registry {
            check_cache_registry(r).map_err(|m| {
                self.invalid(
                    "cache.registry",
                    m,
                    "write `registry/repository`, e.g. `ghcr.io/org/kiln-cache` (entries are tagged by key)",
                )
            })?;
        }
        for (i, k) in self.cache.trusted_keys.iter().enumerate() {
            if !self.root.join(k).is_file() {
                return Err(self.invalid(
                    format!("cache.trusted_keys[{i}]"),
                    format!("{} is not a file", k.display()),
                    "name a PEM public key relative to the directory of kiln.toml",
                ));
            }
        }
        let files = c
            .scans
            .iter()
            .enumerate()
            .map(|(i, p)| (format!("compliance.scans[{i}]"), p))
            .chain(
                c.catalog
                    .iter()
                    .map(|p| ("compliance.catalog".to_string(), p)),
            );
        for (field, p) in files {
            let full = self.root.join(p);
            if p.is_absolute() || !full.is_file() {
                return Err(self.invalid(
                    field,
                    format!("{} is not a file in the project", p.display()),
                    "name a file relative to the directory of kiln.toml",
                ));
            }
        }
        Ok(())
    }

    /// `[policy] base_allowlist`: every entry is one of the two forms. The allowlist, when
    /// one is configured.
    fn check_allowlist(&self) -> Result<Option<Allowlist>> {
        let entries = &self.policy.base_allowlist;
        if entries.is_empty() {
            return Ok(None);
        }
        Allowlist::parse(entries).map(Some).map_err(|message| {
            // Name the entry: the first that does not parse on its own.
            let k = (0..entries.len())
                .find(|&k| Allowlist::parse(std::slice::from_ref(&entries[k])).is_err())
                .unwrap_or(0);
            let prefix = format!("[{k}] ");
            let message = message.strip_prefix(&prefix).unwrap_or(&message).to_string();
            self.invalid(
                format!("policy.base_allowlist[{k}]"),
                message,
                "write `registry/repository@sha256:<64 hex>` (exactly that image) or `registry/org/*` (any repository under it, pinned by digest)",
            )
        })
    }

    /// The base's `ref`: never `latest` (or untagged and undigested), its digest is the
    /// pinned one, and when an allowlist is configured the base has a `ref` and the
    /// allowlist admits it (with the pinned digest).
    fn check_base(&self, i: usize, base: &Base, allowlist: Option<&Allowlist>) -> Result<()> {
        let Base::Layout {
            digest, reference, ..
        } = base
        else {
            return Ok(());
        };
        let at = |f: &str| format!("image[{i}].{f}");
        if let Some(r) = reference {
            r.require_pinned_tag().map_err(|m| {
                self.invalid(
                    at("base.ref"),
                    m,
                    "name the version tag the layout was copied from (registry/repo:1.2.3), or its digest (registry/repo@sha256:...)",
                )
            })?;
            if let Some(d) = &r.digest
                && d != digest
            {
                return Err(self.invalid(
                    at("base.ref"),
                    format!("`{r}` names {d}, but base.digest pins {digest}"),
                    "make the @digest of base.ref the same as base.digest, or leave it out of ref (the pinned digest is filled in)",
                ));
            }
        }
        let Some(allowlist) = allowlist else {
            return Ok(());
        };
        let Some(checked) = base.pinned_reference() else {
            return Err(self.invalid(
                at("base"),
                format!(
                    "policy.base_allowlist is set, but the base layout {digest} has no `ref` saying which image it is"
                ),
                "add ref = \"REGISTRY/REPO:TAG\" (the reference the layout was copied from) to the base; the allowlist must admit it",
            ));
        };
        allowlist.permits(&checked).map_err(|m| {
            self.invalid(
                at("base.ref"),
                format!("{m}: the base is refused by policy.base_allowlist"),
                format!(
                    "use a base that policy.base_allowlist admits, or (if this base is approved) add `{}@{digest}` to policy.base_allowlist",
                    checked.repository_name()
                ),
            )
        })?;
        Ok(())
    }

    /// Every path the image's layer gets (binaries in `bin_dir`, extra files) is unique,
    /// and none is a file where another needs a directory (`/etc/x` and `/etc/x/y`).
    fn check_image_paths(&self, i: usize, img: &ImageSpec) -> Result<()> {
        let bin_dir = img.bin_dir.trim_end_matches('/');
        let mut paths: Vec<(String, String)> = img
            .binaries
            .iter()
            .enumerate()
            .map(|(k, b)| {
                (
                    format!("{bin_dir}/{b}"),
                    format!("image[{i}].binaries[{k}]"),
                )
            })
            .collect();
        paths.extend(
            img.files
                .iter()
                .enumerate()
                .map(|(j, f)| (f.path.clone(), format!("image[{i}].files[{j}].path"))),
        );
        for (n, (path, field)) in paths.iter().enumerate() {
            for (other, other_field) in &paths[..n] {
                let clash = if path == other {
                    Some(format!("`{path}` is also the path of `{other_field}`"))
                } else if path.starts_with(&format!("{other}/")) {
                    Some(format!(
                        "`{path}` needs `{other}` to be a directory, but `{other_field}` puts a file there"
                    ))
                } else if other.starts_with(&format!("{path}/")) {
                    Some(format!(
                        "`{path}` would be a file, but `{other_field}` needs it to be a directory (`{other}`)"
                    ))
                } else {
                    None
                };
                if let Some(m) = clash {
                    return Err(self.invalid(
                        field.clone(),
                        m,
                        "give each binary and file its own path in the image",
                    ));
                }
            }
        }
        Ok(())
    }

    /// Checks that `rel` names an existing regular file inside the project, following
    /// symlinks: a link that escapes the project would make the build depend on the host.
    fn check_inside(&self, rel: &Path) -> std::result::Result<(), OutsideProject> {
        if rel.is_absolute() {
            return Err(OutsideProject::Absolute(rel.to_path_buf()));
        }
        let full = self.resolve(rel);
        let unresolvable = |path: &Path| {
            let path = path.to_path_buf();
            move |error| OutsideProject::Unresolvable { path, error }
        };
        let root = self.root.canonicalize().map_err(unresolvable(&self.root))?;
        let real = full.canonicalize().map_err(unresolvable(&full))?;
        if !real.starts_with(&root) {
            return Err(OutsideProject::Escapes {
                path: full,
                real,
                root,
            });
        }
        if !real.is_file() {
            return Err(OutsideProject::NotAFile(full));
        }
        Ok(())
    }
}

/// Why a path kiln.toml names is not a file inside the project. Its message is what
/// [`ConfigError::Invalid`] says about the key, so it has no source: the I/O error's text
/// is part of it.
#[derive(Debug, thiserror::Error)]
enum OutsideProject {
    #[error("{} is absolute", .0.display())]
    Absolute(PathBuf),
    #[error("{}: {error}", path.display())]
    Unresolvable {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{} resolves to {}, outside the project {}", path.display(), real.display(), root.display())]
    Escapes {
        path: PathBuf,
        real: PathBuf,
        root: PathBuf,
    },
    #[error("{} is not a regular file", .0.display())]
    NotAFile(PathBuf),
}

/// A cargo package or target name: letters, digits, `-` and `_`.
fn is_cargo_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '_')
}

/// The line of `field` (`image[1].files[0].path`) in the TOML `text`: of its key, or of
/// the deepest part of it the file has (an image's `[[image]]` header, say).
fn line_of(text: &str, field: &str) -> Option<usize> {
    use toml::de::{DeTable, DeValue};
    let doc = DeTable::parse(text).ok()?;
    let mut span = None;
    let mut table: Option<&DeTable> = Some(doc.get_ref());
    let mut value: Option<&DeValue> = None;
    for part in field.split('.') {
        let (key, indices) = match part.find('[') {
            Some(at) => (&part[..at], &part[at..]),
            None => (part, ""),
        };
        let t = match (table, value) {
            (Some(t), _) => t,
            (None, Some(DeValue::Table(t))) => t,
            _ => break,
        };
        let Some((k, v)) = t.iter().find(|(k, _)| k.get_ref().as_ref() == key) else {
            break;
        };
        span = Some(k.span());
        table = None;
        value = Some(v.get_ref());
        for idx in indices.split(['[', ']']).filter(|s| !s.is_empty()) {
            let (Some(DeValue::Array(a)), Ok(n)) = (value, idx.parse::<usize>()) else {
                break;
            };
            let Some(item) = a.get(n) else { break };
            span = Some(item.span());
            value = Some(item.get_ref());
        }
    }
    span.map(|s| kiln_core::strict_toml::line_at(text, s.start))
}

/// Image paths are absolute, with no `.`/`..`/empty components, so that two spellings of
/// a path cannot produce two different layers.
fn check_image_path(p: &str) -> std::result::Result<(), BadImagePath> {
    let bad = |problem| {
        Err(BadImagePath {
            path: p.to_string(),
            problem,
        })
    };
    if !p.starts_with('/') {
        return bad("is not absolute");
    }
    if p.len() > 1 && p.ends_with('/') {
        return bad("ends with '/'");
    }
    for c in Path::new(p).components() {
        match c {
            Component::RootDir | Component::Normal(_) => {}
            _ => return bad("contains `.` or `..`"),
        }
    }
    if p.contains("//") || p.split('/').any(|s| s == "." || s == "..") {
        return bad("is not normalized");
    }
    Ok(())
}

/// Why a cache registry reference (`registry/repository`, without tag or digest: entries
/// are tagged by their key) is refused. Shared with `--cache-registry`.
pub fn check_cache_registry(r: &str) -> std::result::Result<Reference, String> {
    let parsed = Reference::parse(r).map_err(|e| e.to_string())?;
    if parsed.tag.is_some() || parsed.digest.is_some() {
        return Err(format!(
            "`{r}` has a tag or digest; the cache registry is a repository, its entries are tagged by key"
        ));
    }
    if !r.starts_with(&format!("{}/", parsed.registry)) {
        return Err(format!(
            "`{r}` names no registry; write `host[:port]/repository` (e.g. `{}`)",
            parsed.repository_name()
        ));
    }
    Ok(parsed)
}

/// Why a path in the image is refused: the message of [`ConfigError::Invalid`] for its key.
#[derive(Debug, thiserror::Error)]
#[error("`{path}` {problem}")]
struct BadImagePath {
    path: String,
    problem: &'static str,
}

#[cfg(test)]
mod tests;
