//! The attestation step: provenance, signatures over every piece of evidence, and the
//! referrers that attach them to the image.

use std::collections::BTreeMap;
use std::path::Path;

use kiln_core::contract::layout::file;
use kiln_core::{Digest, canonical, fsx};

use crate::attach::{
    self, ANNOTATION_BUNDLE_CONTENT, ANNOTATION_BUNDLE_PREDICATE, ANNOTATION_INTOTO_PREDICATE,
    Attachment, Descriptor,
};
use crate::dsse::{BUNDLE_MEDIA_TYPE, Bundle, Envelope, PAYLOAD_TYPE};
use crate::error::{Result, io};
use crate::keys::SigningKey;
use crate::provenance::{
    self, ProvenanceInputs, ResourceDescriptor, SLSA_PROVENANCE_V1, Statement,
};

/// An evidence document another step may have written beside the image.
#[derive(Debug, Clone, Copy)]
pub struct EvidenceKind {
    pub file: &'static str,
    pub media_type: &'static str,
    /// The in-toto predicate type of the statement that signs it.
    pub predicate_type: &'static str,
    /// SBOMs are provenance subjects; VEX documents are not (they change after release).
    pub is_sbom: bool,
}

/// Every evidence file kiln knows, in the order it is processed. Whichever exist are
/// signed and attached; absent ones are skipped, so this step works before and after the
/// SBOM and VEX steps exist.
pub const EVIDENCE: &[EvidenceKind] = &[
    EvidenceKind {
        file: file::SBOM_CDX,
        media_type: "application/vnd.cyclonedx+json",
        predicate_type: "https://cyclonedx.org/bom",
        is_sbom: true,
    },
    EvidenceKind {
        file: file::SBOM_SPDX,
        media_type: "application/spdx+json",
        predicate_type: "https://spdx.dev/Document",
        is_sbom: true,
    },
    EvidenceKind {
        file: file::VEX_OPENVEX,
        media_type: "application/vnd.openvex+json",
        predicate_type: "https://openvex.dev/ns",
        is_sbom: false,
    },
    EvidenceKind {
        file: file::VEX_CSAF,
        media_type: "application/csaf+json",
        predicate_type: "https://docs.oasis-open.org/csaf/csaf/v2.0",
        is_sbom: false,
    },
    EvidenceKind {
        file: file::VEX_CDX,
        media_type: "application/vnd.cyclonedx+json",
        predicate_type: "https://cyclonedx.org/vex",
        is_sbom: false,
    },
];

/// How evidence is signed.
pub enum Signer<'a> {
    /// Not signed: the provenance statement is written as `provenance.json` and attached
    /// unsigned, as `cosign attest` without a key would refuse to do — kiln still records
    /// what it built, and `verify` reports "no signature".
    Unsigned,
    Key(&'a SigningKey),
    /// Sigstore keyless (Fulcio certificate + Rekor entry).
    Keyless(&'a crate::keyless::Keyless),
}

/// What [`write`](fn@write) produced.
#[derive(Debug, Clone)]
pub struct Written {
    /// Files written beside the image, sorted.
    pub files: Vec<String>,
    /// The artifact manifests attached to the image.
    pub referrers: Vec<Descriptor>,
    pub signed: bool,
}

pub use kiln_core::contract::layout::{bundle_file, envelope_file};
pub const PROVENANCE_FILE: &str = file::PROVENANCE;

/// Writes provenance, signs it and each evidence file in `out`, and attaches it all to
/// the image in `layout` whose manifest is `image`. `inputs.sboms` is filled here from the
/// SBOM files present.
pub fn write(
    out: &Path,
    layout: &Path,
    image: &Descriptor,
    mut inputs: ProvenanceInputs,
    signer: &Signer,
) -> Result<Written> {
    let mut present = Vec::new();
    for kind in EVIDENCE {
        let p = out.join(kind.file);
        if p.is_file() {
            let bytes = std::fs::read(&p).map_err(io("cannot read", &p))?;
            present.push((*kind, bytes));
        }
    }
    inputs.sboms = present
        .iter()
        .filter(|(k, _)| k.is_sbom)
        .map(|(k, b)| (k.file.to_string(), Digest::of(b)))
        .collect();

    let image_subject = ResourceDescriptor::sha256(
        provenance::image_subject_name(&inputs.image, &inputs.tag),
        image.digest,
    );
    let mut statements: Vec<(String, Statement)> =
        vec![(PROVENANCE_FILE.into(), provenance::statement(&inputs))];
    let mut attachments = Vec::new();
    for (kind, bytes) in &present {
        let doc: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| crate::Error::Invalid {
                file: kind.file.into(),
                message: format!("not JSON ({e}); the step that wrote it is broken"),
            })?;
        let predicate_type = predicate_type_of(kind, &doc);
        statements.push((
            kind.file.into(),
            provenance::document_statement(image_subject.clone(), &predicate_type, doc),
        ));
        attachments.push(Attachment {
            file: kind.file.into(),
            artifact_type: kind.media_type.into(),
            media_type: kind.media_type.into(),
            bytes: bytes.clone(),
            annotations: BTreeMap::new(),
        });
    }

    let mut files = Vec::new();
    let mut envelopes = Vec::new();
    for (name, stmt) in &statements {
        let payload = canonical::to_vec(stmt).expect("statement serializes");
        let pt = stmt.predicate_type.clone();
        let bundle = match signer {
            Signer::Unsigned => {
                if name == PROVENANCE_FILE {
                    write_file(out, PROVENANCE_FILE, &payload, &mut files)?;
                    attachments.push(Attachment {
                        file: PROVENANCE_FILE.into(),
                        artifact_type: PAYLOAD_TYPE.into(),
                        media_type: PAYLOAD_TYPE.into(),
                        bytes: payload,
                        annotations: BTreeMap::from([(ANNOTATION_INTOTO_PREDICATE.into(), pt)]),
                    });
                }
                continue;
            }
            Signer::Key(key) => Bundle::keyed(Envelope::sign(&payload, key), key.public()),
            Signer::Keyless(k) => k.sign(&payload)?,
        };
        let env_bytes = canonical::to_vec(&bundle.dsse_envelope).expect("envelope serializes");
        write_file(out, &envelope_file(name), &env_bytes, &mut files)?;
        envelopes.push((env_bytes, pt.clone()));
        let bundle_bytes = canonical::to_vec(&bundle).expect("bundle serializes");
        let bf = bundle_file(name);
        write_file(out, &bf, &bundle_bytes, &mut files)?;
        attachments.push(Attachment {
            file: bf,
            artifact_type: BUNDLE_MEDIA_TYPE.into(),
            media_type: BUNDLE_MEDIA_TYPE.into(),
            bytes: bundle_bytes,
            annotations: BTreeMap::from([
                (ANNOTATION_BUNDLE_CONTENT.into(), "dsse-envelope".into()),
                (ANNOTATION_BUNDLE_PREDICATE.into(), pt.clone()),
                (ANNOTATION_INTOTO_PREDICATE.into(), pt),
            ]),
        });
    }
    let referrers = attach::attach(layout, image, &attachments)?;
    // cosign v2 reads attestations from the `.att` image, also in a local layout
    // (`cosign verify-attestation --local-image`).
    if !envelopes.is_empty() {
        attach::attach_cosign_attestations(layout, image, &envelopes)?;
    }
    files.sort();
    Ok(Written {
        files,
        referrers,
        signed: !matches!(signer, Signer::Unsigned),
    })
}

fn predicate_type_of(kind: &EvidenceKind, doc: &serde_json::Value) -> String {
    // SPDX's registered predicate names the version: https://spdx.dev/Document/v2.3.
    if kind.file == file::SBOM_SPDX
        && let Some(v) = doc
            .get("spdxVersion")
            .and_then(|v| v.as_str())
            .and_then(|v| v.strip_prefix("SPDX-"))
    {
        return format!("{}/v{v}", kind.predicate_type);
    }
    kind.predicate_type.to_string()
}

fn write_file(out: &Path, name: &str, bytes: &[u8], files: &mut Vec<String>) -> Result<()> {
    let p = out.join(name);
    fsx::write_atomic(&p, bytes).map_err(io("cannot write", &p))?;
    files.push(name.to_string());
    Ok(())
}

/// Is `title` (a referrer's layer title) evidence kiln attaches: provenance, an evidence
/// document or its bundle, or a post-build attestation? Other titles are other tools'.
pub fn is_kiln_title(title: &str) -> bool {
    title == file::PROVENANCE_BUNDLE
        || title == PROVENANCE_FILE
        || crate::attach::POST_BUILD.contains(&title)
        || EVIDENCE
            .iter()
            .any(|k| k.file == title || bundle_file(k.file) == title)
}

/// The predicate type a kiln bundle of this title must sign, `None` for a title kiln does
/// not write. SPDX's names its version (`https://spdx.dev/Document/v2.3`).
pub fn title_predicate_ok(title: &str, pt: &str) -> bool {
    if title == file::PROVENANCE_BUNDLE {
        return pt == SLSA_PROVENANCE_V1;
    }
    if title == file::CONTROLS_BUNDLE {
        return pt == kiln_core::contract::controls::PREDICATE_TYPE;
    }
    EVIDENCE
        .iter()
        .find(|k| bundle_file(k.file) == title)
        .is_some_and(|k| {
            pt == k.predicate_type
                || (k.file == file::SBOM_SPDX
                    && pt
                        .strip_prefix(k.predicate_type)
                        .is_some_and(|v| v.starts_with("/v")))
        })
}

/// Is `pt` the SLSA provenance predicate?
pub fn is_provenance(pt: &str) -> bool {
    pt == SLSA_PROVENANCE_V1
}
