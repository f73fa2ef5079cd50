//! `kiln controls attest`: judge an evidence pack with a control catalog, sign the
//! verdict, and attach it to the image it is about.
//!
//! kiln-compliance does the judging and writes the pack's `attestation/`; this step owns
//! what touches the project: the signer (as the build resolves it) and the image's output
//! directory, where the bundle becomes a referrer attached *after* the build
//! (`kiln_attest::attach::attach_post_build`): `push` carries it and `verify` checks it,
//! while the archives and `summary.json` stay what the build wrote.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kiln_attest::Signer;
use kiln_attest::attach::{
    ANNOTATION_BUNDLE_CONTENT, ANNOTATION_BUNDLE_PREDICATE, ANNOTATION_INTOTO_PREDICATE,
    Attachment, Descriptor, MEDIA_TYPE_MANIFEST,
};
use kiln_attest::dsse::BUNDLE_MEDIA_TYPE;
use kiln_core::contract::layout::file;
use kiln_core::contract::{ProjectLayout, Summary};
use kiln_core::{Digest, fsx};

use crate::error::BuildError;

#[derive(Debug, Clone)]
pub struct AttestOptions {
    pub project: PathBuf,
    pub catalog: PathBuf,
    pub pack: PathBuf,
    pub signing_key: Option<PathBuf>,
    pub keyless: bool,
    /// Attach the bundle to the image in the project's output directory (default). Off:
    /// only the pack's `attestation/` is written (a pack judged away from its build).
    pub attach: bool,
    /// Output directory root (default `target/kiln/out`).
    pub out_dir: Option<PathBuf>,
}

/// What was attested, and where it went.
#[derive(Debug, Clone)]
pub struct Attested {
    pub attestation: kiln_compliance::attest::Attestation,
    /// The output directory the bundle was attached in, and the referrer's digest.
    pub attached: Option<(PathBuf, Digest)>,
}

#[derive(Debug, thiserror::Error)]
pub enum ComplianceError {
    #[error(transparent)]
    Catalog(#[from] kiln_compliance::catalog::CatalogError),
    #[error(transparent)]
    Attest(#[from] kiln_compliance::attest::AttestError),
    #[error(transparent)]
    Pack(#[from] kiln_compliance::PackError),
    #[error(transparent)]
    Sign(Box<BuildError>),
    #[error(transparent)]
    Summary(#[from] kiln_core::contract::SummaryError),
    #[error("image `{image}` is not built here ({} is missing), so the attestation cannot be attached to it", path.display())]
    NotBuilt { image: String, path: PathBuf },
    #[error("the pack is of {image} {packed}, but {} holds {built}: the attestation would be attached to another image", out.display())]
    OtherImage {
        image: String,
        packed: Digest,
        built: Digest,
        out: PathBuf,
    },
    #[error("attaching the control attestation to {}", out.display())]
    Attach {
        out: PathBuf,
        #[source]
        source: kiln_attest::Error,
    },
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl kiln_core::Hint for ComplianceError {
    fn hint(&self) -> Option<String> {
        match self {
            ComplianceError::Catalog(e) => e.hint(),
            ComplianceError::Attest(e) => e.hint(),
            ComplianceError::Pack(e) => e.hint(),
            ComplianceError::Sign(e) => kiln_core::Hint::hint(e.as_ref()),
            ComplianceError::NotBuilt { .. } | ComplianceError::OtherImage { .. } => Some(format!(
                "build the image the pack is of (`{}`), pack it again, or pass --no-attach to write only the pack's attestation",
                kiln_core::cli::cmd("build")
            )),
            _ => None,
        }
    }
}

/// Judges the pack, signs, writes `<pack>/attestation/`, and (with `attach`) attaches the
/// bundle to the built image. Everything that can be refused is refused before anything
/// is written: the signer is resolved and the output directory checked first.
pub fn attest(opts: &AttestOptions) -> Result<Attested, ComplianceError> {
    let packed = kiln_compliance::pack::verify(&opts.pack)?;
    let image = packed.manifest.image.clone();
    let (key, keyless) = crate::attest::signers(&image, opts.signing_key.as_deref(), opts.keyless)
        .map_err(|e| ComplianceError::Sign(Box::new(e)))?;
    let signer = match (&key, &keyless) {
        (Some(k), _) => Signer::Key(k),
        (None, Some(k)) => Signer::Keyless(k),
        (None, None) => Signer::Unsigned,
    };
    let out = match &opts.out_dir {
        Some(d) => kiln_core::contract::OutputDir::new(d.join(&image)),
        None => ProjectLayout::new(&opts.project).output(&image),
    };
    let target = if opts.attach {
        let sp = out.summary();
        if !sp.is_file() {
            return Err(ComplianceError::NotBuilt { image, path: sp });
        }
        let summary = Summary::read(&sp)?;
        if summary.digest != packed.manifest.digest {
            return Err(ComplianceError::OtherImage {
                image,
                packed: packed.manifest.digest,
                built: summary.digest,
                out: out.path().to_path_buf(),
            });
        }
        Some(summary)
    } else {
        None
    };
    let catalog = kiln_compliance::catalog::Catalog::load(&opts.catalog)?;
    let attestation = kiln_compliance::attest::attest(&catalog, &opts.pack, &packed, &signer)?;
    let attached = match target {
        Some(summary) => Some((
            out.path().to_path_buf(),
            attach(out.path(), &summary, &attestation)?,
        )),
        None => None,
    };
    Ok(Attested {
        attestation,
        attached,
    })
}

fn attach(
    out: &Path,
    summary: &Summary,
    a: &kiln_compliance::attest::Attestation,
) -> Result<Digest, ComplianceError> {
    let layout = out.join(file::OCI_DIR);
    let manifest = kiln_attest::attach::blob_file(&layout, &summary.digest);
    let size = std::fs::metadata(&manifest)
        .map_err(|source| ComplianceError::Write {
            path: manifest.clone(),
            source,
        })?
        .len();
    let subject = Descriptor {
        media_type: MEDIA_TYPE_MANIFEST.into(),
        digest: summary.digest,
        size,
        artifact_type: None,
        annotations: BTreeMap::new(),
    };
    let pt = a.statement.predicate_type.clone();
    let item = Attachment {
        file: file::CONTROLS_BUNDLE.into(),
        artifact_type: BUNDLE_MEDIA_TYPE.into(),
        media_type: BUNDLE_MEDIA_TYPE.into(),
        bytes: a.bundle.clone(),
        annotations: BTreeMap::from([
            (ANNOTATION_BUNDLE_CONTENT.into(), "dsse-envelope".into()),
            (ANNOTATION_BUNDLE_PREDICATE.into(), pt.clone()),
            (ANNOTATION_INTOTO_PREDICATE.into(), pt),
        ]),
    };
    for (name, bytes) in [
        (file::CONTROLS_ENVELOPE, &a.envelope),
        (file::CONTROLS_BUNDLE, &a.bundle),
    ] {
        let p = out.join(name);
        fsx::write_atomic(&p, bytes)
            .map_err(|source| ComplianceError::Write { path: p, source })?;
    }
    let d = kiln_attest::attach::attach_post_build(&layout, &subject, &item).map_err(|source| {
        ComplianceError::Attach {
            out: out.to_path_buf(),
            source,
        }
    })?;
    Ok(d.digest)
}

/// The build step `[compliance] pack = true` adds: the image's evidence pack in
/// `target/kiln/evidence/<image>/` (the scans kiln.toml names, the toolchain lock, the
/// repro report when there is one) and, with `catalog` and the build's signer, the control
/// attestation attached to the image. A failed control does not fail the build (the
/// attestation records it; `verify` decides); it is reported.
pub(crate) fn after_build(
    opts: &crate::BuildOptions,
    config: &kiln_config::Config,
    image: &str,
    lock_file: &Path,
    progress: &dyn crate::Progress,
) -> Result<(), BuildError> {
    let layout = ProjectLayout::new(&config.root);
    let pack_dir = layout.evidence(image);
    let report = layout
        .repro_dir()
        .join(kiln_core::contract::layout::repro::REPORT_JSON);
    let input = kiln_compliance::PackInput {
        image: image.to_string(),
        output: opts.out_dir().join(image),
        toolchain_lock: Some(lock_file.to_path_buf()),
        repro_report: report.is_file().then_some(report),
        scans: config
            .compliance
            .scans
            .iter()
            .map(|p| config.root.join(p))
            .collect(),
    };
    progress.step(image, "packing the evidence");
    let manifest =
        kiln_compliance::pack::pack(&input, &pack_dir).map_err(|e| BuildError::Compliance {
            image: image.to_string(),
            source: Box::new(ComplianceError::Pack(e)),
        })?;
    eprintln!(
        "kiln: [{image}] evidence pack: {} ({} files)",
        pack_dir.display(),
        manifest.files.len()
    );
    let Some(catalog) = &config.compliance.catalog else {
        return Ok(());
    };
    let ev = &opts.evidence;
    // The build's own signer, resolved the one way every signing step resolves it.
    if let (None, None) = crate::attest::signers(image, ev.signing_key.as_deref(), ev.keyless)? {
        eprintln!(
            "kiln: [{image}] note: controls not attested: no signing key (sign with --key FILE, $KILN_SIGNING_KEY or --keyless)"
        );
        return Ok(());
    }
    progress.step(image, "attesting the controls");
    let a = attest(&AttestOptions {
        project: config.root.clone(),
        catalog: config.root.join(catalog),
        pack: pack_dir,
        signing_key: ev.signing_key.clone(),
        keyless: ev.keyless,
        attach: true,
        out_dir: Some(opts.out_dir()),
    })
    .map_err(|e| BuildError::Compliance {
        image: image.to_string(),
        source: Box::new(e),
    })?;
    let p = &a.attestation.predicate;
    eprintln!(
        "kiln: [{image}] controls: {} passed, {} failed; attestation attached",
        p.summary.passed, p.summary.failed
    );
    for c in p
        .controls
        .iter()
        .filter(|c| !matches!(c.result, kiln_compliance::Verdict::Pass))
    {
        eprintln!(
            "kiln: [{image}] control {} failed: {}",
            c.id,
            c.failures.join("; ")
        );
    }
    Ok(())
}
