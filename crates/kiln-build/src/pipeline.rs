//! The pipeline behind `build`, `fetch` and `toolchain lock`. A build is a sequence of
//! steps, each a function below: [`Build::prepare`] (what every image shares: the verified
//! toolchain, `SOURCE_DATE_EPOCH`, the build root), then per image [`gather_inputs`] →
//! [`compile`] → [`pack`] → the evidence steps ([`crate::evidence`]) → [`write_archives`]
//! → [`summarize`], all into a staging directory committed with one rename.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use kiln_config::{Base, Config, ImageSpec};
use kiln_core::contract::OutputDir;
use kiln_core::{Digest, fsx};
use kiln_hermetic::{BuildRoot, CargoLock, CratesDl, Hermetic, SourceDateEpoch, VerifiedSources};
use kiln_oci::{BaseImage, Image, ImageConfig, Layer, Platform};
use kiln_toolchain::{Toolchain, ToolchainLock};

use crate::context::{BuildOptions, CRT_STATIC_FLAG, ImageContext, Progress};
use crate::error::{BuildError, RustVersion, io};
use crate::summary::{self, BinaryRecord, LayerRecord, SdeRecord, Summary, ToolchainRecord};

type Result<T, E = BuildError> = std::result::Result<T, E>;

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
    lock_path_for(config, &tc.target)
}

/// The toolchain lock a build for `target` verifies against: kiln.toml's, else the
/// default under `toolchains/`.
pub(crate) fn lock_path_for(config: &Config, target: &str) -> PathBuf {
    match &config.project.toolchain_lock {
        Some(p) => config.resolve(p),
        None => kiln_toolchain::default_lock_path(&config.root, target),
    }
}

/// The verified-toolchain stamp, in the build root (kiln_toolchain's `stamp` module).
pub(crate) const TOOLCHAIN_STAMP: &str = "toolchain.verified.json";

/// `cargo xtask fetch`: fills kiln's cargo home with every crate the selected images'
/// `Cargo.lock`s pin, downloaded by kiln itself from crates.io (or `$KILN_CRATES_DL`) and
/// checked against the lock's checksums — no cargo needed. The only step that uses the
/// network.
pub fn fetch(opts: &BuildOptions, progress: &dyn Progress) -> Result<()> {
    let config = opts.config()?;
    // A provided toolchain root: obtained (its pinned inputs downloaded, packed,
    // installed and checked) here, so the build itself can run offline.
    if let Some(p) = crate::provided::provided(&config, opts.offline)? {
        progress.step("*", &p.describe());
    }
    let root = opts.root();
    root.create()
        .map_err(io("cannot create build root", root.path()))?;
    for spec in selected(&config, &opts.images)? {
        let manifest = config.resolve(&spec.manifest);
        let lock = CargoLock::for_manifest(&manifest)?;
        crate::package::check_in_lock(&config, index_of(&config, spec), spec, &lock)?;
        locked_archives(&lock, &root.cargo_home(), true, progress, &spec.name)?;
    }
    Ok(())
}

/// The verified `.crate` archive of every crate `lock` pins, by `name@version`: checked in
/// `cargo_home`, else (when the network is `allowed`) downloaded by kiln and checked on
/// arrival. Every archive is hashed once per call on the path it takes.
fn locked_archives(
    lock: &CargoLock,
    cargo_home: &Path,
    allowed: bool,
    progress: &dyn Progress,
    name: &str,
) -> Result<std::collections::BTreeMap<String, PathBuf>> {
    match kiln_hermetic::check_fetched(lock, cargo_home) {
        Ok(archives) => Ok(archives),
        Err(_) if allowed => {
            progress.step(name, "fetching locked crates (network)");
            Ok(kiln_hermetic::fetch_locked(lock, cargo_home, &CratesDl::from_env())?.archives)
        }
        Err(e) => Err(e.into()),
    }
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
    rooted: Option<&kiln_hermetic::RootedSandbox>,
) -> Result<ImageSpec> {
    let manifest = config.resolve(&spec.manifest);
    let cargo_lock = CargoLock::for_manifest(&manifest)?;
    crate::package::check_in_lock(config, index_of(config, spec), spec, &cargo_lock)?;
    let info = crate::package::describe(
        &tc.cargo,
        &root.cargo_home(),
        &manifest,
        &spec.package,
        rooted,
    )?;
    if let Some(required) = &info.rust_version
        && !crate::package::satisfies(&lock.rustc.version, required)
    {
        return Err(BuildError::RustVersion(Box::new(RustVersion {
            image: spec.name.clone(),
            package: spec.package.clone(),
            required: required.clone(),
            manifest: info.manifest_path.clone(),
            pinned: lock.rustc.version.clone(),
            lock: lock_file.to_path_buf(),
        })));
    }
    let mut spec = spec.clone();
    if spec.tag.is_none() {
        // The package's version: what a release is called (never `latest` by default).
        let version = cargo_lock
            .crates
            .iter()
            .find(|c| c.source.is_none() && c.name == spec.package)
            .map(|c| c.version.clone())
            .unwrap_or_else(|| "latest".into());
        spec.tag = Some(version.replace('+', "_"));
    }
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
    let config = opts.config()?;
    let specs = selected(&config, &opts.images)?;
    // Nothing changed since the last build: its outputs are the answer (crate::noop).
    let noop = crate::noop::Request::of(opts, &config);
    if let Some(summaries) = noop.as_ref().and_then(|r| r.answer(progress)) {
        return Ok(summaries);
    }
    let b = Build::prepare(opts, &config, progress)?;
    // A first build has no toolchain stamp before `prepare` writes one.
    let noop = noop.or_else(|| crate::noop::Request::of(opts, &config));
    let cache = crate::cache::Cache::open(opts, &config)?;
    // Every image's package, rust-version and binaries are checked before any compiles.
    let specs = specs
        .into_iter()
        .map(|s| {
            prepare_spec(
                &config,
                s,
                &b.tc,
                &b.lock,
                &b.lock_file,
                &b.root,
                b.rooted.as_ref(),
            )
        })
        .collect::<Result<Vec<_>>>()?;
    let summaries = specs
        .iter()
        .map(|spec| build_image(&b, spec, cache.as_ref()))
        .collect::<Result<Vec<_>>>()?;
    // `[compliance] pack = true`: each image's evidence pack (and, with a catalog and a
    // signer, its control attestation), once every image is built.
    if config.compliance.pack {
        for s in &summaries {
            crate::compliance::after_build(opts, &config, &s.image, &b.lock_file, progress)?;
        }
    }
    if let Some(r) = noop {
        r.record(opts, &summaries);
    }
    Ok(summaries)
}

/// What every image of one `build` shares, resolved once before any image is built.
struct Build<'a> {
    opts: &'a BuildOptions,
    config: &'a Config,
    /// Canonical project root, so the path remapping matches what rustc sees.
    project: PathBuf,
    tc: Toolchain,
    /// The lock as verified against this machine.
    lock: ToolchainLock,
    lock_file: PathBuf,
    toolchain: ToolchainRecord,
    sde: SourceDateEpoch,
    /// Canonical build root.
    root: BuildRoot,
    /// The toolchain root the build runs inside, when kiln.toml names one.
    provided: Option<crate::provided::Provided>,
    /// How the build is isolated, as the outputs record it: `netns`, `none` or `root`.
    isolation: String,
    /// The sandbox rooted in the provided toolchain root, if the build has one (made and
    /// checked once, in `prepare`): the root is `/`; the project (read-only) and the build
    /// root (HOME, CARGO_HOME, TMPDIR, the target dir, the verified sources) appear at
    /// their own paths, so every path cargo sees is the one it would see outside.
    rooted: Option<kiln_hermetic::RootedSandbox>,
    progress: &'a dyn Progress,
}

impl<'a> Build<'a> {
    /// Everything that can fail without compiling is checked first, in the order a user
    /// fixes it: the toolchain matches its lock, `SOURCE_DATE_EPOCH` is usable, the
    /// sandbox can be made, the evidence options are valid, the build root exists.
    fn prepare(
        opts: &'a BuildOptions,
        config: &'a Config,
        progress: &'a dyn Progress,
    ) -> Result<Self> {
        let provided = crate::provided::provided(config, opts.offline)?;
        let (tc, lock_file, lock) = match &provided {
            Some(p) => {
                progress.step("*", &p.describe());
                (p.tc.clone(), p.lock_file.clone(), p.toolchain.clone())
            }
            None => {
                progress.step("*", "verifying the toolchain lock");
                let (tc, lock_file) = select_toolchain(config)?;
                // The build root's stamp skips re-hashing a toolchain nothing touched since
                // it last verified (kiln_toolchain's `stamp` module says why that is sound).
                let stamp = opts.root().path().join(TOOLCHAIN_STAMP);
                let (lock, stamped) = tc.verify_stamped(&lock_file, &stamp)?;
                if stamped {
                    progress.step(
                        "*",
                        "toolchain unchanged since its last full verification (stamp)",
                    );
                }
                (tc, lock_file, lock)
            }
        };
        let toolchain = ToolchainRecord {
            lock: lock_file
                .strip_prefix(&config.root)
                .unwrap_or(&lock_file)
                .display()
                .to_string(),
            // A provided root is named by its lock, which pins the root's digests.
            lock_digest: match &provided {
                Some(p) => p.lock.digest(),
                None => lock.digest(),
            },
            rustc: lock.rustc.version.clone(),
            target: tc.target.clone(),
        };
        let sde = SourceDateEpoch::resolve(
            opts.sde_env.as_deref(),
            &config.root,
            config.project.source_date_epoch,
        )
        .map_err(BuildError::SourceDateEpoch)?;
        let isolation = match &provided {
            Some(_) if opts.sandbox == kiln_hermetic::Sandbox::None => {
                return Err(BuildError::Provided {
                    message: "--sandbox none: a provided toolchain root is only used from inside its sandbox".into(),
                    fix: "drop --sandbox none, or build with the host's toolchain (remove `toolchain_root` from kiln.toml)".into(),
                });
            }
            Some(_) => crate::provided::ROOT_SANDBOX.to_string(),
            None => {
                opts.sandbox.check()?;
                opts.sandbox.to_string()
            }
        };
        crate::evidence::check_options(opts)?;

        let root = opts.root();
        root.create()
            .map_err(io("cannot create build root", root.path()))?;
        let project = config
            .root
            .canonicalize()
            .map_err(io("cannot resolve project", &config.root))?;
        let root = BuildRoot::new(
            root.path()
                .canonicalize()
                .map_err(io("cannot resolve build root", root.path()))?,
        );
        let rooted = match &provided {
            Some(p) => {
                let sandbox = kiln_hermetic::RootedSandbox::new(
                    &p.root.path,
                    vec![
                        kiln_hermetic::Bind::read_only(&project, &project),
                        kiln_hermetic::Bind::writable(root.path(), root.path()),
                    ],
                    &project,
                )?;
                sandbox.check()?;
                Some(sandbox)
            }
            None => None,
        };
        Ok(Build {
            opts,
            config,
            project,
            tc,
            lock,
            lock_file,
            toolchain,
            sde,
            root,
            provided,
            isolation,
            rooted,
            progress,
        })
    }
}

fn oci_err(image: &str) -> impl Fn(kiln_oci::Error) -> BuildError + '_ {
    move |source| BuildError::Oci {
        image: image.to_string(),
        source,
    }
}

/// One image, from its inputs to its committed output directory. Everything is written
/// into a staging directory first, so a failure at any step leaves `out/<image>/` as it
/// was.
fn build_image(
    b: &Build,
    spec: &ImageSpec,
    cache: Option<&crate::cache::Cache>,
) -> Result<Summary> {
    let name = spec.name.as_str();
    let inputs = gather_inputs(b, spec)?;
    let env = hermetic_env(b, spec, &inputs.verified)?;
    let release = release_dir(b);
    // The attested cache: a verified entry for this compile step's key replaces the
    // compile; a fresh compile is stored under it. `cache check` always compiles and then
    // compares with the entry.
    let mut cache_use = None;
    match cache {
        None => compile(b, spec, &inputs, &env)?,
        Some(c) => {
            let key = c.key(
                spec,
                &b.project,
                b.toolchain.lock_digest,
                &inputs.cargo_lock,
                &b.tc.target,
                &env,
                b.sde.value,
            )?;
            b.progress.step(
                name,
                &format!("build cache {} ({})", key.key(), c.dir().display()),
            );
            if b.opts.cache_check {
                compile(b, spec, &inputs, &env)?;
                c.check(spec, &key, &release)?;
            } else {
                cache_use = c.restore(spec, &key, &release)?;
                if cache_use.is_none() {
                    compile(b, spec, &inputs, &env)?;
                    c.store(spec, &key, &release)?;
                }
            }
        }
    }
    let (image, binaries) = pack(b, spec, inputs.base)?;

    let out = b.opts.out_dir().join(name);
    let staging = fsx::StagingDir::new(&out).map_err(io("cannot create", &out))?;
    let files = OutputDir::new(staging.path());
    let layout = files.oci();
    fsx::create_dir_all(&layout).map_err(io("cannot create", &layout))?;
    let built = image
        .write_layout(&layout, spec.tag())
        .map_err(oci_err(name))?;

    let ctx = ImageContext {
        opts: b.opts,
        config: b.config,
        project: &b.project,
        spec,
        toolchain_lock: &b.lock,
        toolchain_record: &b.toolchain,
        sde: b.sde,
        env: &env,
        cargo_lock: &inputs.cargo_lock,
        verified: &inputs.verified,
        built: &built,
        binaries: &binaries,
        out: staging.path(),
        layout: &layout,
        cache: cache_use.as_ref(),
        sandbox: &b.isolation,
        toolchain_root: b.provided.as_ref().map(|p| &p.lock),
    };
    crate::evidence::write(&ctx, b.progress)?;
    write_archives(b, spec, &files, &built)?;
    let summary = summarize(&ctx)?;
    summary.write(&files.summary())?;
    staging
        .commit()
        .map_err(io("cannot move outputs into", &out))?;
    Ok(summary)
}

/// An image's inputs besides the project's sources.
struct Inputs {
    base: Option<BaseImage>,
    manifest: PathBuf,
    cargo_lock: CargoLock,
    /// The crate sources cargo compiles.
    verified: VerifiedSources,
}

/// Inputs first: a bad base image or a missing crate must fail before compiling. Fetches
/// (the only networked step) unless `--offline`, checks every archive against
/// `Cargo.lock`, and unpacks each locked crate from the bytes just checked (keeping a crate
/// an earlier build unpacked only while its metadata stamp matches), never
/// from the cargo home's `registry/src` (which nothing verifies).
fn gather_inputs(b: &Build, spec: &ImageSpec) -> Result<Inputs> {
    let name = spec.name.as_str();
    let base = match &spec.base {
        Base::Scratch => None,
        Base::Layout { path, digest, .. } => {
            Some(BaseImage::open(&b.config.resolve(path), digest).map_err(oci_err(name))?)
        }
    };
    let manifest = b.project.join(&spec.manifest);
    let cargo_lock = CargoLock::for_manifest(&manifest)?;
    let archives = locked_archives(
        &cargo_lock,
        &b.root.cargo_home(),
        !b.opts.offline,
        b.progress,
        name,
    )?;
    b.progress.step(name, "unpacking the verified crates");
    let verified =
        kiln_hermetic::unpack_verified(&cargo_lock, &archives, &b.root.verified_sources())?;
    Ok(Inputs {
        base,
        manifest,
        cargo_lock,
        verified,
    })
}

/// The hermetic environment cargo runs in: the allowlisted variables, the clock shift
/// when `--faketime` asks for one, kiln's rustflags (static CRT, path remapping) and the
/// verified tools by absolute path, so neither rustup proxies nor PATH can swap them.
fn hermetic_env(b: &Build, spec: &ImageSpec, verified: &VerifiedSources) -> Result<Hermetic> {
    let tc = &b.tc;
    let cc_dir = tc.cc.parent().unwrap_or(Path::new("/usr/bin"));
    let mut env = Hermetic::new(b.root.clone(), b.opts.sandbox, b.sde, &[cc_dir]);
    if let Some(ft) = &b.opts.clock_shift {
        let dir = b.root.path().join("faketime");
        // Inside a provided root the root's libfaketime and cc (in-root paths) do it.
        let shift = match &b.rooted {
            Some(sandbox) => kiln_hermetic::ClockShift::prepare_in_root(ft, sandbox, &tc.cc, &dir),
            None => kiln_hermetic::ClockShift::prepare(ft, &tc.cc, &dir),
        }
        .map_err(BuildError::ClockShift)?;
        b.progress.step(&spec.name, &shift.describe());
        env.shift_clock(shift);
    }
    if let Some(sandbox) = &b.rooted {
        env.enter_root(sandbox.clone());
    }
    let mut rustflags = vec![CRT_STATIC_FLAG.to_string()];
    rustflags.extend(env.remap_flags(&b.project, Some(verified)));
    env.set("CARGO_ENCODED_RUSTFLAGS", rustflags.join("\u{1f}"));
    env.set("RUSTC", tc.rustc.display().to_string());
    env.set("CC", tc.cc.display().to_string());
    let linker_var = format!(
        "CARGO_TARGET_{}_LINKER",
        tc.target.to_uppercase().replace(['-', '.'], "_")
    );
    env.set(&linker_var, tc.cc.display().to_string());
    Ok(env)
}

/// `cargo build --release --locked --offline` of the image's package, binaries and
/// features, in the sandbox (cut off from the network) and the hermetic environment,
/// which it returns for the evidence to record.
/// Where cargo leaves the release binaries for the host target.
fn release_dir(b: &Build) -> PathBuf {
    b.root.target_dir().join(&b.tc.target).join("release")
}

fn compile(b: &Build, spec: &ImageSpec, inputs: &Inputs, env: &Hermetic) -> Result<()> {
    let tc = &b.tc;
    let mut cmd = env.command(&tc.cargo);
    cmd.args(inputs.verified.cargo_config_args());
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
    cmd.arg("--manifest-path").arg(&inputs.manifest);
    for bin in &spec.binaries {
        cmd.args(["--bin", bin]);
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
    b.progress.step(
        &spec.name,
        &format!("compiling {} ({} sandbox)", spec.package, b.isolation),
    );
    let status = cmd.status().map_err(io("cannot run", &tc.cargo))?;
    if !status.success() {
        return Err(BuildError::Compile {
            image: spec.name.clone(),
            command: format!(
                "cargo build --release --locked --offline --target {} --package {}",
                tc.target, spec.package
            ),
            status: status.to_string(),
        });
    }
    Ok(())
}

/// The image: one layer of the built binaries (mode 0755, recorded with their digests)
/// and the extra files kiln.toml lists, on the base image, with the config kiln.toml
/// describes.
fn pack(
    b: &Build,
    spec: &ImageSpec,
    base: Option<BaseImage>,
) -> Result<(Image, Vec<BinaryRecord>)> {
    let name = spec.name.as_str();
    b.progress.step(name, "packing the image");
    let release = release_dir(b);
    let mut layer = Layer::new();
    let mut binaries = Vec::new();
    for bin in &spec.binaries {
        let path = release.join(bin);
        if !path.is_file() {
            return Err(BuildError::MissingBinary {
                image: name.into(),
                binary: bin.clone(),
                package: spec.package.clone(),
                path,
            });
        }
        let image_path = format!("{}/{bin}", spec.bin_dir.trim_end_matches('/'));
        let meta = std::fs::metadata(&path).map_err(io("cannot read", &path))?;
        binaries.push(BinaryRecord {
            name: bin.clone(),
            path: image_path.clone(),
            sha256: Digest::of_file(&path).map_err(io("cannot read", &path))?,
            size: meta.len(),
        });
        layer
            .add_file(image_path.trim_start_matches('/'), path, Some(0o755))
            .map_err(oci_err(name))?;
    }
    for f in &spec.files {
        layer
            .add_file(
                f.path.trim_start_matches('/'),
                b.config.resolve(&f.source),
                f.mode,
            )
            .map_err(oci_err(name))?;
    }
    let created_by = format!(
        "kiln: cargo build --release --locked --package {} ({} binaries, {} files)",
        spec.package,
        spec.binaries.len(),
        spec.files.len()
    );
    let image = Image {
        sde: b.sde.value,
        base,
        layers: vec![(layer, created_by)],
        config: image_config(spec, &binaries),
    };
    Ok((image, binaries))
}

/// The OCI config kiln.toml describes; without `entrypoint` and `cmd`, the entrypoint is
/// the first binary.
fn image_config(spec: &ImageSpec, binaries: &[BinaryRecord]) -> ImageConfig {
    let entrypoint = match (&spec.entrypoint, &spec.cmd) {
        (None, None) => Some(vec![binaries[0].path.clone()]),
        (e, _) => e.clone(),
    };
    ImageConfig {
        platform: Platform::host(),
        entrypoint,
        cmd: spec.cmd.clone(),
        env: spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        working_dir: spec.workdir.clone(),
        user: spec.user.clone(),
        labels: spec.labels.clone(),
        exposed_ports: spec.exposed_ports.clone(),
        annotations: BTreeMap::new(),
    }
}

/// `image.oci.tar` and `image.docker.tar`, cut from the layout after the evidence is
/// attached (so the OCI archive carries the referrers).
fn write_archives(
    b: &Build,
    spec: &ImageSpec,
    files: &OutputDir,
    built: &kiln_oci::BuiltImage,
) -> Result<()> {
    let name = spec.name.as_str();
    b.progress.step(name, "writing archives");
    let layout = files.oci();
    kiln_oci::write_oci_archive(&layout, &files.image_oci_tar(), b.sde.value)
        .map_err(oci_err(name))?;
    let repo_tag = format!("{name}:{}", spec.tag());
    kiln_oci::write_docker_archive(
        &layout,
        &built.manifest.digest,
        &[repo_tag],
        &files.image_docker_tar(),
        b.sde.value,
    )
    .map_err(oci_err(name))
}

/// `summary.json`: what was built from what, and every output file with its digest
/// (hashed last, once everything else is written).
fn summarize(ctx: &ImageContext) -> Result<Summary> {
    let built = ctx.built;
    Ok(Summary {
        schema: summary::SCHEMA,
        kiln_version: env!("CARGO_PKG_VERSION").to_string(),
        image: ctx.spec.name.clone(),
        ref_name: ctx.spec.tag().to_string(),
        platform: ctx.spec.platform.clone(),
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
            value: ctx.sde.value,
            source: ctx.sde.source.as_str().to_string(),
        },
        sandbox: ctx.sandbox.to_string(),
        environment: ctx.env.env().keys().cloned().collect(),
        toolchain: ctx.toolchain_record.clone(),
        kiln_toml: ctx.config.digest,
        cargo_lock: ctx.cargo_lock.digest,
        binaries: ctx.binaries.to_vec(),
        artifacts: summary::artifacts(ctx.out).map_err(io("cannot hash", ctx.out))?,
    })
}
