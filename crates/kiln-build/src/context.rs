//! What a build is asked to do ([`BuildOptions`], [`EvidenceOptions`], [`Progress`]) and
//! what the evidence steps are handed once an image's layout is written
//! ([`ImageContext`]). Shared by the pipeline and the evidence steps, so neither imports
//! the other's types.

use std::path::{Path, PathBuf};

use kiln_config::{Config, ImageSpec};
use kiln_core::contract::ProjectLayout;
use kiln_hermetic::{BuildRoot, CargoLock, Hermetic, Sandbox, SourceDateEpoch, VerifiedSources};
use kiln_toolchain::ToolchainLock;

use crate::summary::{BinaryRecord, ToolchainRecord};

/// What to build and how.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The project directory (holding `kiln.toml`).
    pub project: PathBuf,
    /// Images to build; empty means all of them.
    pub images: Vec<String>,
    pub sandbox: Sandbox,
    /// Refuse to fetch; fail naming what is missing instead.
    pub offline: bool,
    /// The value of `$SOURCE_DATE_EPOCH`, if set.
    pub sde_env: Option<String>,
    /// Where outputs go; default `<project>/target/kiln/out`.
    pub out_dir: Option<PathBuf>,
    /// The build root (HOME, CARGO_HOME, TMPDIR, target dir); default
    /// `<project>/target/kiln/root`.
    pub root_dir: Option<PathBuf>,
    /// How evidence (SBOM, provenance, signatures) is produced.
    pub evidence: EvidenceOptions,
    /// Run cargo's process tree (rustc, build scripts, proc-macros) with the wall clock
    /// shifted by this libfaketime `FAKETIME` value (`kiln repro`'s clock variation). Not
    /// recorded in the outputs: they must compare equal to an unshifted build's.
    pub clock_shift: Option<String>,
    /// The attested build cache: `Some(true)` on (`--cache`), `Some(false)` off
    /// (`--no-cache`), `None` as kiln.toml's `[cache] enabled` says.
    pub cache: Option<bool>,
    /// The cache store (`--cache-dir`); default kiln.toml's `[cache] dir`, else
    /// `kiln_cache::Store::default_dir`.
    pub cache_dir: Option<PathBuf>,
    /// `kiln cache check`: compile without the cache, then compare with the entry.
    pub cache_check: bool,
    /// The cache's registry tier, `registry/repository` (`--cache-registry`); default
    /// kiln.toml's `[cache] registry`, else none.
    pub cache_registry: Option<String>,
    /// Reach the cache registry over plain HTTP (`--cache-insecure-http`): a registry on
    /// this machine only.
    pub cache_insecure_http: bool,
    /// Build inside this provided toolchain root (`--toolchain-root NAME`, the lock
    /// `toolchains/NAME.lock.json`), whatever kiln.toml's `[project] toolchain_root` says.
    pub toolchain_root: Option<String>,
}

/// Options for the evidence written next to the image.
#[derive(Debug, Clone, Default)]
pub struct EvidenceOptions {
    /// CycloneDX spec version for `sbom.cdx.json` (`1.6` when unset, or `1.5`).
    pub sbom_spec: Option<String>,
    /// Private key (PKCS#8 PEM) for keyed signing; `$KILN_SIGNING_KEY` is the other source.
    pub signing_key: Option<PathBuf>,
    /// Sign keyless (Fulcio + Rekor, GitHub Actions OIDC) instead of with a key.
    pub keyless: bool,
    /// Add wall-clock `startedOn`/`finishedOn` to provenance (off: same inputs, same bytes).
    pub timestamps: bool,
}

impl BuildOptions {
    pub fn new(project: impl Into<PathBuf>) -> Self {
        BuildOptions {
            project: project.into(),
            images: Vec::new(),
            sandbox: Sandbox::Netns,
            offline: false,
            sde_env: None,
            out_dir: None,
            root_dir: None,
            evidence: EvidenceOptions::default(),
            clock_shift: None,
            cache: None,
            cache_dir: None,
            cache_check: false,
            cache_registry: None,
            cache_insecure_http: false,
            toolchain_root: None,
        }
    }
    /// Whether this build uses the attested cache: `--cache`/`--no-cache`, else kiln.toml's
    /// `[cache] enabled`.
    pub(crate) fn cache_enabled(&self, config: &Config) -> bool {
        self.cache.unwrap_or(config.cache.enabled)
    }
    /// kiln.toml, with `--toolchain-root` applied.
    pub(crate) fn config(&self) -> Result<Config, crate::BuildError> {
        let mut config = Config::load(&self.project)?;
        if let Some(name) = &self.toolchain_root {
            config.project.toolchain_root = Some(name.clone());
            config.project.toolchain_lock = None;
        }
        Ok(config)
    }
    /// `--out`, else the project's `target/kiln/out`.
    pub(crate) fn out_dir(&self) -> PathBuf {
        self.out_dir
            .clone()
            .unwrap_or_else(|| ProjectLayout::new(&self.project).out_dir())
    }
    /// `--root`, else the project's `target/kiln/root`.
    pub(crate) fn root(&self) -> BuildRoot {
        BuildRoot::new(
            self.root_dir
                .clone()
                .unwrap_or_else(|| ProjectLayout::new(&self.project).build_root()),
        )
    }
}

/// Receives progress for long steps (the CLI prints it; tests ignore it).
pub trait Progress {
    fn step(&self, image: &str, what: &str);
}

impl Progress for () {
    fn step(&self, _: &str, _: &str) {}
}

/// Every kiln binary is linked statically (the default image is `scratch`). The flag
/// reaches target code only (cargo does not apply `--target` rustflags to build scripts
/// or proc macros), and it adds [`CRT_STATIC_CFG`] to the target's cfg.
pub(crate) const CRT_STATIC_FLAG: &str = "-Ctarget-feature=+crt-static";
/// The cfg [`CRT_STATIC_FLAG`] turns on, as `rustc --print cfg` would show it.
pub(crate) const CRT_STATIC_CFG: &str = "target_feature=\"crt-static\"";

/// Everything known about one image once its layout is written: the input to every
/// evidence step (SBOM, VEX, provenance, signing, attaching).
pub(crate) struct ImageContext<'a> {
    pub opts: &'a BuildOptions,
    pub config: &'a Config,
    /// Canonical project root.
    pub project: &'a Path,
    pub spec: &'a ImageSpec,
    /// The lock as verified against this machine at the start of the build.
    pub toolchain_lock: &'a ToolchainLock,
    pub toolchain_record: &'a ToolchainRecord,
    pub sde: SourceDateEpoch,
    pub env: &'a Hermetic,
    pub cargo_lock: &'a CargoLock,
    /// The crate sources the build compiled (every locked registry crate).
    pub verified: &'a VerifiedSources,
    pub built: &'a kiln_oci::BuiltImage,
    pub binaries: &'a [BinaryRecord],
    /// The staging output directory (becomes `target/kiln/out/<image>/`).
    pub out: &'a Path,
    /// `out/oci`.
    pub layout: &'a Path,
    /// The cache entry whose binaries the image holds (compile skipped), if any.
    pub cache: Option<&'a crate::cache::CacheUse>,
    /// How the build was isolated, as recorded: `netns`, `none` or `root`.
    pub sandbox: &'a str,
    /// The provided toolchain root the build ran inside, if any.
    pub toolchain_root: Option<&'a kiln_toolroot::RootLock>,
}
