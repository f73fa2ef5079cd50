use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use kiln_config::{Base, Config, ConfigError, ImageSpec};
use kiln_core::contract::{OutputDir, ProjectLayout};
use kiln_core::{Digest, fsx};
use kiln_hermetic::{
    BuildRoot, CargoLock, FetchError, Hermetic, Sandbox, SandboxError, SourceDateEpoch,
    VerifiedSources,
};
use kiln_oci::{BaseImage, Image, ImageConfig, Layer, Platform};
use kiln_toolchain::{Toolchain, ToolchainLock};

use crate::summary::{self, BinaryRecord, LayerRecord, SdeRecord, Summary, ToolchainRecord};
use kiln_core::contract::SummaryError;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Toolchain(#[from] kiln_toolchain::Error),
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error(transparent)]
    Summary(#[from] SummaryError),
    #[error("image `{image}`: {source}")]
    Oci {
        image: String,
        source: kiln_oci::Error,
    },
    #[error("{0}")]
    SourceDateEpoch(String),
    #[error("--faketime: {0}")]
    ClockShift(String),
    #[error(
        "image `{image}`: `{command}` failed ({status}); cargo's messages are above\n  fix: make the project build with `cargo build --release --locked` first"
    )]
    Compile {
        image: String,
        command: String,
        status: String,
    },
    #[error(
        "image `{image}`: cargo did not produce binary `{binary}` at {path}\n  fix: check `binaries` in kiln.toml names [[bin]] targets of package `{package}`"
    )]
    MissingBinary {
        image: String,
        binary: String,
        package: String,
        path: PathBuf,
    },
    /// An SBOM, VEX, provenance, signing or attach step failed; `message` names the input
    /// and the fix.
    #[error("image `{image}`: {message}")]
    Evidence { image: String, message: String },
    #[error(
        "`{command}` failed: {message}\n  fix: make the project build with `cargo build --release --locked` first"
    )]
    Metadata { command: String, message: String },
    /// The package's `rust-version` exceeds the pinned rustc; `message` names both, the
    /// manifest, the lock and the command that re-pins.
    #[error("image `{image}`: {message}")]
    RustVersion { image: String, message: String },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

type Result<T, E = BuildError> = std::result::Result<T, E>;

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

/// Everything known about one image once its layout is written: the input to every
/// evidence step (SBOM, VEX, provenance, signing, attaching).
/// Every kiln binary is linked statically (the default image is `scratch`). The flag
/// reaches target code only (cargo does not apply `--target` rustflags to build scripts
/// or proc macros), and it adds [`CRT_STATIC_CFG`] to the target's cfg.
pub(crate) const CRT_STATIC_FLAG: &str = "-Ctarget-feature=+crt-static";
/// The cfg [`CRT_STATIC_FLAG`] turns on, as `rustc --print cfg` would show it.
pub(crate) const CRT_STATIC_CFG: &str = "target_feature=\"crt-static\"";

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
        }
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

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> BuildError + 'a {
    move |source| BuildError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// `kiln toolchain lock`: pins the toolchain the project uses — the one rustup picks
/// inside the project directory (its `rust-toolchain.toml`), wherever kiln runs from —
/// and records which rustup toolchain it is; returns where the lock went.
pub fn lock_toolchain(project: &Path) -> Result<(PathBuf, ToolchainLock)> {
    let config = Config::load(project)?;
    let tc = Toolchain::detect_for(&config.root, None, None)?;
    let path = lock_path(&config, &tc);
    let lock = tc.lock()?;
    lock.write(&path)?;
    Ok((path, lock))
}

/// The toolchain a build uses: the rustup toolchain the project's lock pins (selected
/// whatever directory kiln runs from), else the one rustup picks inside the project.
/// Returns it with the lock's path; verifying it is the caller's next step.
fn select_toolchain(config: &Config) -> Result<(Toolchain, PathBuf)> {
    let found = Toolchain::detect_for(&config.root, None, None)?;
    let lock_file = lock_path(config, &found);
    let pinned = ToolchainLock::read(&lock_file)
        .ok()
        .and_then(|l| l.rustup_toolchain);
    match pinned {
        Some(name) if found.rustup_toolchain.as_deref() != Some(name.as_str()) => {
            let tc = Toolchain::detect_for(&config.root, Some(&name), None)?;
            Ok((tc, lock_file))
        }
        _ => Ok((found, lock_file)),
    }
}

fn lock_path(config: &Config, tc: &Toolchain) -> PathBuf {
    match &config.project.toolchain_lock {
        Some(p) => config.resolve(p),
        None => kiln_toolchain::default_lock_path(&config.root, &tc.target),
    }
}

/// `cargo xtask fetch`: fills kiln's cargo home with every crate the selected images'
/// `Cargo.lock`s pin. The only step that uses the network.
pub fn fetch(opts: &BuildOptions, progress: &dyn Progress) -> Result<()> {
    let config = Config::load(&opts.project)?;
    let (tc, _) = select_toolchain(&config)?;
    let root = opts.root();
    root.create()
        .map_err(io("cannot create build root", root.path()))?;
    for spec in selected(&config, &opts.images)? {
        let manifest = config.resolve(&spec.manifest);
        let lock = CargoLock::for_manifest(&manifest)?;
        crate::package::check_in_lock(&config, index_of(&config, spec), spec, &lock)?;
        if kiln_hermetic::check_fetched(&lock, &root.cargo_home()).is_err() {
            progress.step(&spec.name, "fetching locked crates (network)");
            kiln_hermetic::fetch(&tc.cargo, &manifest, &root.cargo_home())?;
        }
        kiln_hermetic::check_fetched(&lock, &root.cargo_home())?;
    }
    Ok(())
}

fn index_of(config: &Config, spec: &ImageSpec) -> usize {
    config
        .images
        .iter()
        .position(|i| i.name == spec.name)
        .unwrap_or(0)
}

/// Checks what can be checked about an image before anything is fetched or compiled, and
/// fills in what kiln.toml left to defaults: the package is in the workspace's
/// `Cargo.lock`, it builds with the pinned rustc (`rust-version`), and `binaries` (when
/// omitted) are the package's `[[bin]]` targets.
fn prepare_spec(
    config: &Config,
    spec: &ImageSpec,
    tc: &Toolchain,
    lock: &ToolchainLock,
    lock_file: &Path,
    root: &BuildRoot,
) -> Result<ImageSpec> {
    let manifest = config.resolve(&spec.manifest);
    let cargo_lock = CargoLock::for_manifest(&manifest)?;
    crate::package::check_in_lock(config, index_of(config, spec), spec, &cargo_lock)?;
    let info = crate::package::describe(&tc.cargo, &root.cargo_home(), &manifest, &spec.package)?;
    if let Some(required) = &info.rust_version
        && !crate::package::satisfies(&lock.rustc.version, required)
    {
        return Err(BuildError::RustVersion {
            image: spec.name.clone(),
            message: format!(
                "package `{}` needs rustc {required} (rust-version in {}), but the pinned toolchain is rustc {} ({})\n  fix: install rustc {required} or newer (`rustup toolchain install {required}`, and `channel = \"{required}\"` in the project's rust-toolchain.toml), then re-pin it with `{}`",
                spec.package,
                info.manifest_path.display(),
                lock.rustc.version,
                lock_file.display(),
                kiln_toolchain::relock_command()
            ),
        });
    }
    let mut spec = spec.clone();
    if spec.binaries.is_empty() {
        if info.bins.is_empty() {
            return Err(BuildError::Config(config.error_at(
                format!("image[{}].binaries", index_of(config, &spec)),
                format!("package `{}` has no [[bin]] target", spec.package),
                "list the binaries to put in the image, or pick a package that has some",
            )));
        }
        spec.binaries = info.bins;
    }
    Ok(spec)
}

fn selected<'a>(config: &'a Config, names: &[String]) -> Result<Vec<&'a ImageSpec>> {
    if names.is_empty() {
        return Ok(config.images.iter().collect());
    }
    names
        .iter()
        .map(|n| config.image(n).map_err(BuildError::from))
        .collect()
}

/// Builds the selected images and returns one summary per image.
pub fn build(opts: &BuildOptions, progress: &dyn Progress) -> Result<Vec<Summary>> {
    let config = Config::load(&opts.project)?;
    let specs = selected(&config, &opts.images)?;

    progress.step("*", "verifying the toolchain lock");
    let (tc, lock_file) = select_toolchain(&config)?;
    let lock = tc.verify(&lock_file)?;
    let toolchain = ToolchainRecord {
        lock: lock_file
            .strip_prefix(&config.root)
            .unwrap_or(&lock_file)
            .display()
            .to_string(),
        lock_digest: lock.digest(),
        rustc: lock.rustc.version.clone(),
        target: tc.target.clone(),
    };

    let sde = SourceDateEpoch::resolve(
        opts.sde_env.as_deref(),
        &config.root,
        config.project.source_date_epoch,
    )
    .map_err(BuildError::SourceDateEpoch)?;
    opts.sandbox.check()?;
    crate::sbom::check_options(opts)?;

    let root = opts.root();
    root.create()
        .map_err(io("cannot create build root", root.path()))?;
    // Canonical paths, so the remapping matches what rustc sees.
    let project = config
        .root
        .canonicalize()
        .map_err(io("cannot resolve project", &config.root))?;
    let root = BuildRoot::new(
        root.path()
            .canonicalize()
            .map_err(io("cannot resolve build root", root.path()))?,
    );

    // Every image's package, rust-version and binaries are checked before any compiles.
    let specs = specs
        .into_iter()
        .map(|s| prepare_spec(&config, s, &tc, &lock, &lock_file, &root))
        .collect::<Result<Vec<_>>>()?;
    let mut summaries = Vec::new();
    for spec in &specs {
        summaries.push(build_image(
            opts, &config, &project, spec, &tc, &lock, &toolchain, sde, &root, progress,
        )?);
    }
    Ok(summaries)
}

#[allow(clippy::too_many_arguments)]
fn build_image(
    opts: &BuildOptions,
    config: &Config,
    project: &Path,
    spec: &ImageSpec,
    tc: &Toolchain,
    lock: &ToolchainLock,
    toolchain: &ToolchainRecord,
    sde: SourceDateEpoch,
    root: &BuildRoot,
    progress: &dyn Progress,
) -> Result<Summary> {
    let name = spec.name.as_str();
    let oci_err = |source| BuildError::Oci {
        image: name.to_string(),
        source,
    };

    // Inputs first: a bad base image or a missing crate must fail before compiling.
    let base = match &spec.base {
        Base::Scratch => None,
        Base::Layout { path, digest } => {
            Some(BaseImage::open(&config.resolve(path), digest).map_err(oci_err)?)
        }
    };
    let manifest = project.join(&spec.manifest);
    let cargo_lock = CargoLock::for_manifest(&manifest)?;
    if kiln_hermetic::check_fetched(&cargo_lock, &root.cargo_home()).is_err() && !opts.offline {
        progress.step(name, "fetching locked crates (network)");
        kiln_hermetic::fetch(&tc.cargo, &manifest, &root.cargo_home())?;
    }
    let archives = kiln_hermetic::check_fetched(&cargo_lock, &root.cargo_home())?;
    // What cargo compiles: every locked crate unpacked afresh from the archive bytes just
    // checked, never the cargo home's `registry/src` (which nothing verifies).
    progress.step(name, "unpacking the verified crates");
    let verified =
        kiln_hermetic::unpack_verified(&cargo_lock, &archives, &root.verified_sources())?;

    // Compile, cut off from the network.
    let cc_dir = tc.cc.parent().unwrap_or(Path::new("/usr/bin"));
    let mut env = Hermetic::new(root.clone(), opts.sandbox, sde, &[cc_dir]);
    if let Some(ft) = &opts.clock_shift {
        let shift = kiln_hermetic::ClockShift::prepare(ft, &tc.cc, &root.path().join("faketime"))
            .map_err(BuildError::ClockShift)?;
        progress.step(name, &shift.describe());
        env.shift_clock(shift);
    }
    let mut rustflags = vec![CRT_STATIC_FLAG.to_string()];
    rustflags.extend(env.remap_flags(project, Some(&verified)));
    env.set("CARGO_ENCODED_RUSTFLAGS", rustflags.join("\u{1f}"));
    // The verified tools, by absolute path: neither rustup proxies nor PATH can swap them.
    env.set("RUSTC", tc.rustc.display().to_string());
    env.set("CC", tc.cc.display().to_string());
    let linker_var = format!(
        "CARGO_TARGET_{}_LINKER",
        tc.target.to_uppercase().replace(['-', '.'], "_")
    );
    env.set(&linker_var, tc.cc.display().to_string());
    let mut cmd = env.command(&tc.cargo);
    cmd.args(verified.cargo_config_args());
    cmd.args([
        "build",
        "--release",
        "--locked",
        "--offline",
        "--target",
        &tc.target,
        "--package",
        &spec.package,
    ]);
    cmd.arg("--manifest-path").arg(&manifest);
    for b in &spec.binaries {
        cmd.args(["--bin", b]);
    }
    if !spec.features.is_empty() {
        cmd.args(["--features", &spec.features.join(",")]);
    }
    if spec.no_default_features {
        cmd.arg("--no-default-features");
    }
    // cargo's own output goes to our stderr, keeping stdout for `--json`.
    if let Ok(fd) = std::os::fd::AsFd::as_fd(&std::io::stderr()).try_clone_to_owned() {
        cmd.stdout(Stdio::from(fd));
    }
    progress.step(
        name,
        &format!("compiling {} ({} sandbox)", spec.package, opts.sandbox),
    );
    let command = format!(
        "cargo build --release --locked --offline --target {} --package {}",
        tc.target, spec.package
    );
    let status = cmd.status().map_err(|source| BuildError::Io {
        what: "cannot run",
        path: tc.cargo.clone(),
        source,
    })?;
    if !status.success() {
        return Err(BuildError::Compile {
            image: name.into(),
            command,
            status: status.to_string(),
        });
    }

    // Pack.
    progress.step(name, "packing the image");
    let release = root.target_dir().join(&tc.target).join("release");
    let mut layer = Layer::new();
    let mut binaries = Vec::new();
    for b in &spec.binaries {
        let path = release.join(b);
        if !path.is_file() {
            return Err(BuildError::MissingBinary {
                image: name.into(),
                binary: b.clone(),
                package: spec.package.clone(),
                path,
            });
        }
        let image_path = format!("{}/{b}", spec.bin_dir.trim_end_matches('/'));
        let meta = std::fs::metadata(&path).map_err(io("cannot read", &path))?;
        binaries.push(BinaryRecord {
            name: b.clone(),
            path: image_path.clone(),
            sha256: Digest::of_file(&path).map_err(io("cannot read", &path))?,
            size: meta.len(),
        });
        layer
            .add_file(image_path.trim_start_matches('/'), path, Some(0o755))
            .map_err(oci_err)?;
    }
    for f in &spec.files {
        layer
            .add_file(
                f.path.trim_start_matches('/'),
                config.resolve(&f.source),
                f.mode,
            )
            .map_err(oci_err)?;
    }

    let entrypoint = match (&spec.entrypoint, &spec.cmd) {
        (None, None) => Some(vec![binaries[0].path.clone()]),
        (e, _) => e.clone(),
    };
    let image_config = ImageConfig {
        platform: Platform::host(),
        entrypoint,
        cmd: spec.cmd.clone(),
        env: spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        working_dir: spec.workdir.clone(),
        user: spec.user.clone(),
        labels: spec.labels.clone(),
        exposed_ports: spec.exposed_ports.clone(),
        annotations: BTreeMap::new(),
    };
    let created_by = format!(
        "kiln: cargo build --release --locked --package {} ({} binaries, {} files)",
        spec.package,
        spec.binaries.len(),
        spec.files.len()
    );
    let image = Image {
        sde: sde.value,
        base,
        layers: vec![(layer, created_by)],
        config: image_config,
    };

    let out = opts.out_dir().join(name);
    let staging = fsx::StagingDir::new(&out).map_err(io("cannot create", &out))?;
    let files = OutputDir::new(staging.path());
    let layout = files.oci();
    fsx::create_dir_all(&layout).map_err(io("cannot create", &layout))?;
    let built = image.write_layout(&layout, &spec.tag).map_err(oci_err)?;

    // Evidence, in dependency order: the SBOM describes the image, provenance names the
    // SBOM as a subject, signatures cover both, and attaching adds them to the layout
    // before the archives are cut from it.
    let ctx = ImageContext {
        opts,
        config,
        project,
        spec,
        toolchain_lock: lock,
        toolchain_record: toolchain,
        sde,
        env: &env,
        cargo_lock: &cargo_lock,
        verified: &verified,
        built: &built,
        binaries: &binaries,
        out: staging.path(),
        layout: &layout,
    };
    progress.step(name, "writing the SBOM");
    crate::sbom::write(&ctx)?;
    let vex_inputs = crate::vex::write(&ctx)?;
    progress.step(name, "writing provenance and signatures");
    crate::attest::write(&ctx, vex_inputs)?;

    progress.step(name, "writing archives");
    kiln_oci::write_oci_archive(&layout, &files.image_oci_tar(), sde.value).map_err(oci_err)?;
    let repo_tag = format!("{name}:{}", spec.tag);
    kiln_oci::write_docker_archive(
        &layout,
        &built.manifest.digest,
        &[repo_tag],
        &files.image_docker_tar(),
        sde.value,
    )
    .map_err(oci_err)?;

    let summary = Summary {
        schema: summary::SCHEMA,
        kiln_version: env!("CARGO_PKG_VERSION").to_string(),
        image: name.into(),
        ref_name: spec.tag.clone(),
        platform: spec.platform.clone(),
        digest: built.manifest.digest,
        config_digest: built.config_digest,
        layers: built
            .layers
            .iter()
            .map(|l| LayerRecord {
                digest: l.digest,
                diff_id: l.diff_id,
                size: l.size,
            })
            .collect(),
        base: built.base,
        source_date_epoch: SdeRecord {
            value: sde.value,
            source: sde.source.as_str().to_string(),
        },
        sandbox: opts.sandbox.to_string(),
        environment: env.env().keys().cloned().collect(),
        toolchain: toolchain.clone(),
        kiln_toml: config.digest,
        cargo_lock: cargo_lock.digest,
        binaries,
        artifacts: summary::artifacts(staging.path()).map_err(io("cannot hash", staging.path()))?,
    };
    summary.write(&files.summary())?;
    staging
        .commit()
        .map_err(io("cannot move outputs into", &out))?;
    Ok(summary)
}
