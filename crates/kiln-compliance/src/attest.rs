//! `kiln controls attest`: a catalog judges a pack, and the verdict is signed.
//!
//! The statement is in-toto v1 with the image manifest as its subject (`name:tag` and
//! sha256, as provenance names it) and [`ControlsPredicate`] as its predicate; it is
//! signed as provenance is (a DSSE envelope in a Sigstore bundle, keyed or keyless) and
//! written into the pack's `attestation/` directory together with its human reports:
//!
//! ```text
//! <pack>/attestation/controls.json          the statement (pretty canonical JSON)
//! <pack>/attestation/controls.intoto.json   its DSSE envelope
//! <pack>/attestation/controls.sigstore.json its Sigstore bundle
//! <pack>/attestation/controls.html          the report, for people
//! <pack>/attestation/controls.pdf           the same, one file per tag for the auditors
//! ```
//!
//! Attaching the bundle to the image as a referrer is kiln-build's step (it owns the
//! output directory); this module only turns a pack and a catalog into these bytes.

use std::path::{Path, PathBuf};

use kiln_attest::Signer;
use kiln_attest::dsse::{Bundle, Envelope};
use kiln_attest::provenance::{self, ResourceDescriptor, Statement};
use kiln_core::contract::layout::{file, pack as pack_files};
use kiln_core::{Digest, canonical, fsx};

use crate::catalog::Catalog;
use crate::predicate::{ControlsPredicate, PREDICATE_TYPE};

/// What [`attest`] wrote.
#[derive(Debug, Clone)]
pub struct Attestation {
    pub predicate: ControlsPredicate,
    pub statement: Statement,
    /// The Sigstore bundle (`controls.sigstore.json`), as attached to the image.
    pub bundle: Vec<u8>,
    /// The DSSE envelope it carries (`controls.intoto.json`).
    pub envelope: Vec<u8>,
    /// Who signed: `key <keyid>` or `keyless`.
    pub signer: String,
    /// `<pack>/attestation`.
    pub dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum AttestError {
    #[error(transparent)]
    Pack(#[from] crate::pack::PackError),
    #[error(transparent)]
    Evaluate(#[from] crate::evaluate::EvaluateError),
    #[error("{}: {why}", path.display())]
    Summary { path: PathBuf, why: String },
    #[error("the control attestation must be signed, and no signing key was given")]
    Unsigned,
    #[error("signing the control attestation: {0}")]
    Sign(#[source] kiln_attest::Error),
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl kiln_core::Hint for AttestError {
    fn hint(&self) -> Option<String> {
        match self {
            AttestError::Pack(e) => e.hint(),
            AttestError::Evaluate(e) => e.hint(),
            AttestError::Unsigned => {
                Some("sign with --key FILE (or $KILN_SIGNING_KEY) or --keyless".into())
            }
            AttestError::Summary { .. } => Some(format!(
                "pack the image again with `{}`",
                kiln_core::cli::cmd("evidence pack")
            )),
            _ => None,
        }
    }
}

/// The statement's subject: the image as provenance names it. The tag comes from the
/// pack's `summary.json`, which the build wrote and the pack's manifest pins.
fn subject(pack: &Path, image: &str, digest: Digest) -> Result<ResourceDescriptor, AttestError> {
    let sp = pack.join(file::SUMMARY);
    let summary = kiln_core::contract::Summary::read(&sp).map_err(|e| AttestError::Summary {
        path: sp.clone(),
        why: e.to_string(),
    })?;
    if summary.digest != digest {
        return Err(AttestError::Summary {
            path: sp,
            why: format!(
                "names image {}, the pack's manifest {digest}",
                summary.digest
            ),
        });
    }
    Ok(ResourceDescriptor::sha256(
        provenance::image_subject_name(image, &summary.ref_name),
        digest,
    ))
}

/// Evaluates `catalog` against the pack at `pack` (`verified`: what
/// [`crate::pack::verify`] returned for it, so a pack that is not whole never gets here),
/// signs the verdict with `signer` and writes the attestation directory (replaced whole,
/// atomically). Fails without writing when the catalog cannot be evaluated or there is no
/// signer.
/// Controls that fail do not make this fail: the attestation records them, and `verify`
/// (`controls_pass`, `all_controls_pass`) decides what a failure means for admission.
pub fn attest(
    catalog: &Catalog,
    pack: &Path,
    verified: &crate::pack::Verified,
    signer: &Signer,
) -> Result<Attestation, AttestError> {
    let predicate = crate::evaluate::evaluate_verified(catalog, pack, verified)?;
    let subject = subject(pack, &verified.manifest.image, verified.manifest.digest)?;
    let statement = provenance::document_statement(
        subject.clone(),
        PREDICATE_TYPE,
        serde_json::to_value(&predicate).expect("predicate serializes"),
    );
    let payload = canonical::to_vec(&statement).expect("statement serializes");
    let (bundle, signer_name) = match signer {
        Signer::Unsigned => return Err(AttestError::Unsigned),
        Signer::Key(key) => (
            Bundle::keyed(Envelope::sign(&payload, key), key.public()),
            format!("key {}", key.public().keyid()),
        ),
        Signer::Keyless(k) => (
            k.sign(&payload).map_err(AttestError::Sign)?,
            "keyless".into(),
        ),
    };
    let envelope = canonical::to_vec(&bundle.dsse_envelope).expect("envelope serializes");
    let bundle = canonical::to_vec(&bundle).expect("bundle serializes");
    let statement_sha = Digest::of(&payload).to_string();
    let digest = verified.manifest.digest.to_string();
    let header = crate::render::ReportHeader {
        subject: subject.name.as_deref().unwrap_or_default(),
        digest: &digest,
        signer: Some(&signer_name),
        statement_sha256: Some(&statement_sha),
    };
    let files: [(&str, Vec<u8>); 5] = [
        (
            file::CONTROLS,
            canonical::to_vec_pretty(&statement).expect("statement serializes"),
        ),
        (file::CONTROLS_ENVELOPE, envelope.clone()),
        (file::CONTROLS_BUNDLE, bundle.clone()),
        (
            pack_files::REPORT_HTML,
            crate::render::html(&header, &predicate).into_bytes(),
        ),
        (
            pack_files::REPORT_PDF,
            crate::render::pdf(&header, &predicate),
        ),
    ];
    let dir = pack.join(pack_files::ATTESTATION_DIR);
    let write = |path: &Path| {
        let path = path.to_path_buf();
        move |source| AttestError::Write { path, source }
    };
    let staging = fsx::StagingDir::new(&dir).map_err(write(&dir))?;
    for (name, bytes) in &files {
        let p = staging.path().join(name);
        fsx::write_atomic(&p, bytes).map_err(write(&p))?;
    }
    staging.commit().map_err(write(&dir))?;
    Ok(Attestation {
        predicate,
        statement,
        bundle,
        envelope,
        signer: signer_name,
        dir,
    })
}
