//! The SBOM step of the pipeline: gathers what kiln-sbom needs from the build (the image's
//! layout, the binaries, the cargo selection, the toolchain lock) and writes
//! `sbom.cdx.json` and `sbom.spdx.json` next to the image. [`regenerate`] does the same
//! for an image already in `target/kiln/out/`, reading what it needs from `summary.json`.

use std::path::{Path, PathBuf};

use kiln_config::ImageSpec;
use kiln_core::contract::summary::BinaryRecord;
use kiln_core::contract::{OutputDir, Summary};
use kiln_core::{Digest, fsx};
use kiln_sbom::cargo::{CrateSources, Platform, ResolveRequest};
use kiln_sbom::{
    BinaryInfo, ImageInfo, SbomError, SbomInput, SpecVersion, ToolInfo, ToolchainInfo,
};
use kiln_toolchain::ToolchainLock;

use crate::context::{BuildOptions, ImageContext};
use crate::error::{BuildError, LockChanged, io};

fn sbom_err(image: &str) -> impl Fn(SbomError) -> BuildError + '_ {
    move |source| BuildError::Sbom {
        image: image.to_string(),
        source,
    }
}

/// Checks the SBOM options before anything is compiled (an unsupported `--sbom-spec` must
/// not cost a build).
pub(crate) fn check_options(opts: &BuildOptions) -> Result<(), BuildError> {
    SpecVersion::parse(opts.evidence.sbom_spec.as_deref()).map_err(BuildError::SbomSpec)?;
    Ok(())
}

/// Writes `sbom.cdx.json` and `sbom.spdx.json` into the staging output directory.
pub(crate) fn write(ctx: &ImageContext) -> Result<(), BuildError> {
    let name = ctx.spec.name.as_str();
    let spec =
        SpecVersion::parse(ctx.opts.evidence.sbom_spec.as_deref()).map_err(BuildError::SbomSpec)?;
    // The lock verified at the start of the build, not a second read of the file.
    let lock = ctx.toolchain_lock;
    let input = SbomInput {
        image: ImageInfo {
            name: name.to_string(),
            tag: ctx.spec.tag().to_string(),
            manifest_digest: ctx.built.manifest.digest,
            config_digest: ctx.built.config_digest,
            platform: ctx.spec.platform.clone(),
            base: ctx.built.base,
        },
        sde: ctx.sde.value,
        binaries: binary_infos(ctx.binaries),
        crates: kiln_sbom::cargo::resolve(&request(
            ctx.project,
            ctx.spec,
            lock,
            CrateSources::Verified(ctx.verified.dir.clone()),
        ))
        .map_err(sbom_err(name))?,
        layers: kiln_sbom::layers::scan_layout(ctx.layout, &ctx.built.manifest.digest)
            .map_err(sbom_err(name))?,
        toolchain: toolchain_info(
            &ctx.toolchain_record.lock,
            ctx.toolchain_record.lock_digest,
            lock,
        ),
    };
    write_files(ctx.out, &input, spec)?;
    Ok(())
}

/// The selection the build compiled: the image's package and features, for the locked
/// toolchain's target (with the cfg kiln's own rustflags add) and host, reading the
/// registry crates' manifests from `sources`.
fn request(
    project: &Path,
    spec: &ImageSpec,
    lock: &ToolchainLock,
    sources: CrateSources,
) -> ResolveRequest {
    let mut req = resolve_request(project.join(&spec.manifest), &spec.package, lock, sources);
    req.features = spec.features.clone();
    req.no_default_features = spec.no_default_features;
    req
}

/// The [`ResolveRequest`] for building `package` (default features) of the workspace at
/// `manifest` the way `cargo xtask build` does: for the locked toolchain's target, with
/// the cfg kiln's own rustflags add, and its host.
pub fn resolve_request(
    manifest: PathBuf,
    package: &str,
    lock: &ToolchainLock,
    sources: CrateSources,
) -> ResolveRequest {
    let mut target_cfg = lock.cfg.target.clone();
    target_cfg.push(crate::context::CRT_STATIC_CFG.to_string());
    ResolveRequest {
        manifest,
        package: package.to_string(),
        target: Platform {
            triple: lock.target.clone(),
            cfg: target_cfg,
        },
        host: Platform {
            triple: lock.host.clone(),
            cfg: lock.cfg.host.clone(),
        },
        features: Vec::new(),
        no_default_features: false,
        sources,
    }
}

fn write_files(
    out: &Path,
    input: &SbomInput,
    spec: SpecVersion,
) -> Result<Vec<PathBuf>, BuildError> {
    let mut written = Vec::new();
    for (file, bytes) in [
        (kiln_sbom::CDX_FILE, kiln_sbom::cyclonedx(input, spec)),
        (kiln_sbom::SPDX_FILE, kiln_sbom::spdx(input)),
    ] {
        let path = out.join(file);
        fsx::write_atomic(&path, &bytes).map_err(io("cannot write", &path))?;
        written.push(path);
    }
    Ok(written)
}

/// The toolchain as the SBOM's `formulation` names it: rustc and cargo from the sysroot,
/// the C compiler driver (which is also the linker driver) and the linker it runs.
/// The SBOM's view of the binaries a build recorded (the build's and `kiln sbom`'s, which
/// reads them back from summary.json).
fn binary_infos(binaries: &[BinaryRecord]) -> Vec<BinaryInfo> {
    binaries
        .iter()
        .map(|b| BinaryInfo {
            name: b.name.clone(),
            path: b.path.clone(),
            sha256: b.sha256,
        })
        .collect()
}

fn toolchain_info(lock_path: &str, lock_digest: Digest, lock: &ToolchainLock) -> ToolchainInfo {
    let file = |pred: &dyn Fn(&str) -> bool| {
        lock.files
            .iter()
            .find(|(k, _)| pred(k))
            .map(|(k, f)| (k.clone(), f.sha256))
    };
    let tool = |name: &str, version: Option<String>, found: Option<(String, Digest)>| ToolInfo {
        name: name.to_string(),
        version,
        sha256: found.as_ref().map(|f| f.1),
        lock_key: found.map(|f| f.0),
    };
    let cc_version = lock
        .cc
        .version
        .split_whitespace()
        .last()
        .map(str::to_string);
    ToolchainInfo {
        lock_path: lock_path.to_string(),
        lock_digest,
        target: lock.target.clone(),
        tools: vec![
            tool(
                "rustc",
                Some(lock.rustc.version.clone()),
                file(&|k| k == "sysroot/bin/rustc"),
            ),
            tool(
                "cargo",
                Some(lock.cargo.version.clone()),
                file(&|k| k == "sysroot/bin/cargo"),
            ),
            tool(
                "cc",
                cc_version,
                file(&|k| k.starts_with("cc:/usr/bin/") && k.contains("gcc")),
            ),
            tool(
                "ld",
                None,
                file(&|k| {
                    k.starts_with("cc:")
                        && (k.ends_with("-ld.bfd") || k.ends_with("/ld.bfd") || k.ends_with("/ld"))
                }),
            ),
        ],
    }
}

/// `cargo xtask sbom`: regenerates the SBOMs of an image already built into
/// `<out>/<image>/`, from its `summary.json`, its `oci/` layout, the project's
/// `Cargo.lock` and the crates in kiln's cargo home (unpacked afresh from their
/// checksummed archives). Updates the SBOM entries of `summary.json`'s
/// artifact list. Returns the files written.
pub fn regenerate(opts: &BuildOptions, image: &str) -> Result<Vec<PathBuf>, BuildError> {
    let spec_version =
        SpecVersion::parse(opts.evidence.sbom_spec.as_deref()).map_err(BuildError::SbomSpec)?;
    let config = opts.config()?;
    let spec = config.image(image)?;
    let project = config
        .root
        .canonicalize()
        .map_err(io("cannot resolve project", &config.root))?;
    let out = OutputDir::new(opts.out_dir().join(image));
    let summary_path = out.summary();
    let mut summary = Summary::read(&summary_path)?;
    let manifest_digest = summary.digest;
    let config_digest = summary.config_digest;
    let base = summary.base;
    let sde = summary.source_date_epoch.value;
    let lock_rel = summary.toolchain.lock.clone();
    let lock_digest = summary.toolchain.lock_digest;
    let target = summary.toolchain.target.clone();
    let binaries = binary_infos(&summary.binaries);
    // The SBOM names the toolchain the image was built with: the lock must still be it. An
    // image built inside a provided root records the root's lock (its digest names the
    // root), whose `toolchain` holds what the root's tools said they are.
    let (lock, now) = if summary.sandbox == crate::provided::ROOT_SANDBOX {
        let file = project.join(&lock_rel);
        let root_lock = kiln_toolroot::RootLock::read(&file).map_err(BuildError::Toolroot)?;
        let lock = crate::provided::packed_toolchain(&root_lock, &file)?.clone();
        (lock, root_lock.digest())
    } else {
        let lock = ToolchainLock::read(&project.join(&lock_rel))?;
        let now = lock.digest();
        (lock, now)
    };
    if now != lock_digest || lock.target != target {
        return Err(BuildError::LockChanged(Box::new(LockChanged {
            image: image.to_string(),
            summary: summary_path,
            lock: project.join(&lock_rel),
            recorded: lock_digest,
            now,
            target: lock.target.clone(),
        })));
    }
    // The manifests come from every locked crate unpacked afresh from its checksummed
    // archive, as the build does: never from what cargo happened to unpack.
    let root = opts.root();
    let cargo_lock = kiln_hermetic::CargoLock::for_manifest(&project.join(&spec.manifest))?;
    let archives = kiln_hermetic::check_fetched(&cargo_lock, &root.cargo_home())?;
    let verified =
        kiln_hermetic::unpack_verified(&cargo_lock, &archives, &root.verified_sources())?;
    let input = SbomInput {
        image: ImageInfo {
            name: image.to_string(),
            tag: summary.ref_name.clone(),
            manifest_digest,
            config_digest,
            platform: spec.platform.clone(),
            base,
        },
        sde,
        binaries,
        crates: kiln_sbom::cargo::resolve(&request(
            &project,
            spec,
            &lock,
            CrateSources::Verified(verified.dir),
        ))
        .map_err(sbom_err(image))?,
        layers: kiln_sbom::layers::scan_layout(&out.oci(), &manifest_digest)
            .map_err(sbom_err(image))?,
        toolchain: toolchain_info(&lock_rel, lock_digest, &lock),
    };
    let written = write_files(out.path(), &input, spec_version)?;

    // Keep summary.json's artifact list true for the rewritten files.
    summary
        .record_artifacts(out.path(), &written)
        .map_err(io("cannot hash the rewritten SBOMs in", out.path()))?;
    summary.write(&summary_path)?;
    Ok(written)
}
