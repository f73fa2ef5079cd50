//! The no-op fast path: with the cache on and nothing changed since the last build, `kiln
//! build` answers from the record that build left instead of building again (issue 16's
//! "a no-op rebuild under 0.2 s"; cargo takes 0.7 s to say the same).
//!
//! A build that may use the cache first digests its *request*: every input that shapes any
//! byte of its outputs, read without running a tool that takes time (no rustup, rustc, cc
//! or cargo). That is kiln's own binary (version and file metadata), the build options,
//! the process variables toolchain detection, signing and provenance read, kiln.toml, the
//! project's source tree (as the cache key hashes it), every Cargo.lock, the files
//! kiln.toml names (image files, base layouts' `index.json`, trusted cache keys, the VEX
//! inputs, whether or not they are ignored by git), the signing key, the git source and
//! `SOURCE_DATE_EPOCH` as the build would resolve them, and the toolchain: the build
//! root's stamp must still hold ([`kiln_toolchain::stamp_holds`]: the lock byte-identical
//! and every pinned file unchanged). A successful build writes the request's digest into
//! `<build root>/last-build.json` with each image's output directory and the sha256 of its
//! `summary.json`. The next build with the same request digest checks that every output is
//! still what that summary lists (each file re-hashed) and returns the summaries; any
//! difference, or any input it cannot read, means a full build, which then decides.
//!
//! Not answered from the record: `--no-cache`, `cache check`, keyless signing (each
//! signature is new), `--timestamps`, a clock shift, and `[compliance] pack` (the pack's
//! scans are inputs outside the image). Editing the outputs (`kiln sbom`, `controls
//! attest` attaching) changes their digests, so the next build is a full one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kiln_config::{Base, Config};
use kiln_core::contract::OutputDir;
use kiln_core::{Digest, canonical, fsx};
use kiln_hermetic::{CargoLock, SourceDateEpoch};
use serde::{Deserialize, Serialize};

use crate::context::{BuildOptions, Progress};
use crate::summary::Summary;

/// The record's file, in the build root.
const LAST_BUILD: &str = "last-build.json";
const SCHEMA: u32 = 1;

/// Process variables that reach the outputs or decide which toolchain and key a build
/// uses; every variable starting with one of [`ENV_PREFIXES`] counts too.
const ENV_NAMES: &[&str] = &[
    "PATH",
    "HOME",
    "RUSTUP_HOME",
    "RUSTUP_TOOLCHAIN",
    "CARGO_HOME",
    "CC",
    "RUSTC",
    "CI",
];
const ENV_PREFIXES: &[&str] = &["KILN_", "GITHUB_", "RUNNER_"];

/// A request digested, ready to be answered or recorded.
pub(crate) struct Request {
    digest: Digest,
    record: PathBuf,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    schema: u32,
    request: Digest,
    images: Vec<RecordedImage>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordedImage {
    name: String,
    out: PathBuf,
    summary_sha256: Digest,
}

impl Request {
    /// The request of this build, or `None` when it must build in full: the cache is off,
    /// the build is one the record never answers (see the module docs), or an input
    /// cannot be read (the full build then reports it).
    pub(crate) fn of(opts: &BuildOptions, config: &Config) -> Option<Request> {
        let eligible = opts.cache_enabled(config)
            && !opts.cache_check
            && !opts.evidence.keyless
            && !opts.evidence.timestamps
            && opts.clock_shift.is_none()
            && !config.compliance.pack;
        if !eligible {
            return None;
        }
        let root = opts.root();
        let record = root.path().join(LAST_BUILD);
        let stamp = root.path().join(crate::pipeline::TOOLCHAIN_STAMP);
        let toolchain = kiln_toolchain::stamp_holds(&stamp, |target| {
            crate::pipeline::lock_path_for(config, target)
        })?;
        let digest = digest(opts, config, &toolchain).ok()?;
        Some(Request { digest, record })
    }

    /// The summaries of the outputs the last build of this same request left, when they
    /// are all still there, byte for byte.
    pub(crate) fn answer(&self, progress: &dyn Progress) -> Option<Vec<Summary>> {
        let record: Record = serde_json::from_slice(&std::fs::read(&self.record).ok()?).ok()?;
        if record.schema != SCHEMA || record.request != self.digest {
            return None;
        }
        let mut summaries = Vec::new();
        for image in &record.images {
            let files = OutputDir::new(&image.out);
            let bytes = std::fs::read(files.summary()).ok()?;
            if Digest::of(&bytes) != image.summary_sha256 {
                return None;
            }
            let summary: Summary = serde_json::from_slice(&bytes).ok()?;
            // Every listed output still has its bytes (summary.json itself is not listed).
            for a in &summary.artifacts {
                let path = image.out.join(&a.path);
                let meta = std::fs::metadata(&path).ok()?;
                if meta.len() != a.size || Digest::of_file(&path).ok()? != a.sha256 {
                    return None;
                }
            }
            summaries.push(summary);
        }
        for s in &summaries {
            progress.step(
                &s.image,
                &format!(
                    "cache: no-op: nothing changed since the last build (request {}); its outputs are current",
                    self.digest
                ),
            );
        }
        Some(summaries)
    }

    /// Records a successful build of this request. Best effort: a record that cannot be
    /// written costs the next build its shortcut, nothing else.
    pub(crate) fn record(&self, opts: &BuildOptions, summaries: &[Summary]) {
        let out = opts.out_dir();
        let images = summaries
            .iter()
            .map(|s| {
                let dir = out.join(&s.image);
                let sha = Digest::of_file(&OutputDir::new(&dir).summary()).ok()?;
                Some(RecordedImage {
                    name: s.image.clone(),
                    out: dir,
                    summary_sha256: sha,
                })
            })
            .collect::<Option<Vec<_>>>();
        let Some(images) = images else { return };
        let record = Record {
            schema: SCHEMA,
            request: self.digest,
            images,
        };
        if let Ok(bytes) = canonical::to_vec_pretty(&record) {
            let _ = fsx::write_atomic(&self.record, &bytes);
        }
    }
}

fn file_digest(p: &Path) -> std::io::Result<Option<Digest>> {
    match std::fs::read(p) {
        Ok(b) => Ok(Some(Digest::of(&b))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn meta_of(p: &Path) -> std::io::Result<[i128; 6]> {
    Ok(fsx::identity(&std::fs::metadata(p)?))
}

fn digest(
    opts: &BuildOptions,
    config: &Config,
    toolchain: &kiln_toolchain::StampedToolchain,
) -> std::io::Result<Digest> {
    let exe = std::env::current_exe()?;
    let mut environment: BTreeMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.to_string_lossy().into_owned())))
        .filter(|(k, _)| {
            ENV_NAMES.contains(&k.as_str()) || ENV_PREFIXES.iter().any(|p| k.starts_with(p))
        })
        .collect();
    // A key's bytes are hashed, never recorded.
    if let Some(v) = environment.get_mut(kiln_attest::keys::KEY_ENV) {
        *v = Digest::of(v.as_bytes()).to_string();
    }
    let mut files: BTreeMap<String, Option<Digest>> = BTreeMap::new();
    let mut add = |p: PathBuf| -> std::io::Result<()> {
        let d = file_digest(&p)?;
        files.insert(p.display().to_string(), d);
        Ok(())
    };
    let mut locks = BTreeMap::new();
    for spec in &config.images {
        let manifest = config.resolve(&spec.manifest);
        let lock = CargoLock::for_manifest(&manifest).map_err(std::io::Error::other)?;
        locks.insert(spec.name.clone(), lock.digest);
        for f in &spec.files {
            add(config.resolve(&f.source))?;
        }
        if let Base::Layout { path, .. } = &spec.base {
            add(config.resolve(path).join("index.json"))?;
        }
    }
    for k in &config.cache.trusted_keys {
        add(config.resolve(k))?;
    }
    add(config.root.join(kiln_vex::statements::STATEMENTS_FILE))?;
    let advisories = config.root.join(kiln_vex::osv::ADVISORIES_DIR);
    for f in kiln_vex::osv::advisory_files(&advisories).unwrap_or_default() {
        add(f)?;
    }
    if let Some(k) = &opts.evidence.signing_key {
        add(k.clone())?;
    }
    let sde = SourceDateEpoch::resolve(
        opts.sde_env.as_deref(),
        &config.root,
        config.project.source_date_epoch,
    )
    .map_err(std::io::Error::other)?;
    let source = crate::attest::git_source(&config.root)
        .map(|s| (s.repository, s.revision))
        .unwrap_or_default();
    let doc = serde_json::json!({
        "schema": SCHEMA,
        "kiln": { "version": env!("CARGO_PKG_VERSION"), "exe": exe, "meta": meta_of(&exe)? },
        "project": config.root.canonicalize()?,
        "kiln_toml": config.digest,
        "images": opts.images,
        "options": {
            "sandbox": opts.sandbox.to_string(),
            "offline": opts.offline,
            "out": opts.out_dir(),
            "root": opts.root().path(),
            "sbom_spec": opts.evidence.sbom_spec,
            "signing_key": opts.evidence.signing_key,
            "cache_dir": opts.cache_dir,
            "cache_registry": opts.cache_registry,
            "cache_insecure_http": opts.cache_insecure_http,
            "toolchain_root": config.project.toolchain_root,
        },
        "environment": environment,
        "source_tree": kiln_cache::source_tree_digest(&config.root)?,
        "cargo_locks": locks,
        "files": files,
        "source_date_epoch": [sde.value.to_string(), sde.source.as_str().to_string()],
        "git": source,
        "toolchain": {
            "lock": toolchain.lock,
            "lock_sha256": toolchain.lock_sha256,
            "target": toolchain.target,
        },
    });
    Ok(Digest::of(
        &canonical::to_vec(&doc).map_err(std::io::Error::other)?,
    ))
}
