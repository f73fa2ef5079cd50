//! VEX for kiln images, and the vulnerability gate.
//!
//! Inputs: the image's CycloneDX SBOM (`sbom.cdx.json`, read as a file so any CycloneDX SBOM
//! works), the project's triage statements ([`statements::STATEMENTS_FILE`]), OSV advisories
//! (single files and the project's [`osv::ADVISORIES_DIR`]) and scanners' SARIF 2.1.0.
//! Outputs: three VEX documents written from one model ([`docs`]) and the gate's verdict
//! ([`gate`]). Nothing here touches the network or the clock.

pub mod docs;
mod error;
pub mod findings;
pub mod gate;
pub mod osv;
pub mod purl;
pub mod sarif;
pub mod sbom;
pub mod severity;
pub mod statements;
pub mod version;

use std::path::{Path, PathBuf};

use kiln_core::contract::layout::file;

pub use docs::{Documents, Model};
pub use error::{Result, VexError};
pub use findings::Finding;
pub use gate::GateReport;
pub use osv::Advisory;
pub use sbom::Sbom;
pub use severity::Severity;
pub use statements::Statements;

/// The files the VEX step writes, in the image's output directory.
pub const CSAF_FILE: &str = file::VEX_CSAF;
pub const OPENVEX_FILE: &str = file::VEX_OPENVEX;
pub const CDX_FILE: &str = file::VEX_CDX;
/// The SBOM the VEX step reads, in the same directory (kiln-sbom's output: the contract is
/// the file name and the CycloneDX JSON, not kiln-sbom's Rust API).
pub const SBOM_FILE: &str = file::SBOM_CDX;
/// The gate's verdict, in the same directory.
pub const GATE_FILE: &str = file::GATE;

/// Builds the three documents from parsed inputs: every advisory is matched against the
/// SBOM, and each affected match without a statement is listed as under investigation.
pub fn documents(
    sbom: &Sbom,
    statements: &Statements,
    advisories: &[Advisory],
    sde: u64,
) -> Result<Documents> {
    let findings = findings::merge(
        advisories
            .iter()
            .flat_map(|a| a.findings(sbom, false))
            .collect(),
    );
    Ok(docs::model(sbom, statements, &findings, sde)?.documents())
}

/// The pipeline's VEX step for one image: when `project` has a statements file, reads the
/// SBOM from `out`, the statements and the advisory directory, and writes the three
/// documents into `out`. Returns the paths written; none when the project has no
/// statements file. On any error nothing is written.
pub fn write_for_project(project: &Path, out: &Path, sde: u64) -> Result<Vec<PathBuf>> {
    let statements_path = project.join(statements::STATEMENTS_FILE);
    if !statements_path.exists() {
        return Ok(Vec::new());
    }
    let sbom_path = out.join(SBOM_FILE);
    if !sbom_path.is_file() {
        return Err(VexError::invalid(
            &sbom_path,
            "sbom",
            "the SBOM is missing, and VEX is written against it",
            "the SBOM step must run before the VEX step (or remove vex/statements.toml)",
        ));
    }
    let sbom = Sbom::load(&sbom_path)?;
    let statements = Statements::load(&statements_path, &sbom)?;
    let advisories = osv::load_dir(&project.join(osv::ADVISORIES_DIR))?;
    let docs = documents(&sbom, &statements, &advisories, sde)?;
    let mut written = Vec::new();
    for (name, bytes) in [
        (CSAF_FILE, &docs.csaf),
        (OPENVEX_FILE, &docs.openvex),
        (CDX_FILE, &docs.cdx),
    ] {
        let path = out.join(name);
        kiln_core::fsx::write_atomic(&path, bytes).map_err(|source| VexError::Write {
            path: path.clone(),
            source,
        })?;
        written.push(path);
    }
    Ok(written)
}

/// What `cargo xtask gate` reads.
#[derive(Debug, Clone)]
pub struct GateInputs {
    /// The project directory (holding `kiln.toml`); statements are read from
    /// `<project>/vex/statements.toml` when it exists, and paths in `gate.json` are shown
    /// relative to it.
    pub project: PathBuf,
    /// The image's `sbom.cdx.json`.
    pub sbom: PathBuf,
    /// Scanner outputs (SARIF 2.1.0).
    pub sarif: Vec<PathBuf>,
    /// Single OSV advisories; a package they name that the SBOM lacks is reported.
    pub osv: Vec<PathBuf>,
    /// An OSV advisory directory; default `<project>/advisories` (which may be absent).
    /// Advisories about packages the SBOM lacks are ignored: the directory is a database.
    pub advisories: Option<PathBuf>,
    pub fail_on: Severity,
}

/// Reads every input, matches the findings to the SBOM, applies the statements and returns
/// the verdict. Any malformed input is an error naming the file and the entry.
pub fn run_gate(inputs: &GateInputs) -> Result<GateReport> {
    if !inputs.sbom.is_file() {
        return Err(VexError::invalid(
            &inputs.sbom,
            "sbom",
            "no SBOM here",
            format!(
                "build the image first (`{}`), or pass --image",
                kiln_core::cli::cmd("build")
            ),
        ));
    }
    let sbom = Sbom::load(&inputs.sbom)?;
    let statements_path = inputs.project.join(statements::STATEMENTS_FILE);
    let statements = if statements_path.exists() {
        Some(Statements::load(&statements_path, &sbom)?)
    } else {
        None
    };
    let dir = match &inputs.advisories {
        Some(d) if !d.is_dir() => {
            return Err(VexError::invalid(
                d,
                "--advisories",
                "not a directory",
                "point --advisories at a directory of OSV JSON files",
            ));
        }
        Some(d) => d.clone(),
        None => inputs.project.join(osv::ADVISORIES_DIR),
    };
    let mut all = Vec::new();
    for a in osv::load_dir(&dir)? {
        all.extend(a.findings(&sbom, false));
    }
    for f in &inputs.osv {
        all.extend(Advisory::load(f)?.findings(&sbom, true));
    }
    for f in &inputs.sarif {
        all.extend(sarif::load(f, &sbom)?);
    }
    let findings = findings::merge(all);
    let project = inputs
        .project
        .canonicalize()
        .unwrap_or_else(|_| inputs.project.clone());
    let mut report = gate::evaluate(
        &sbom,
        statements.as_ref(),
        &findings,
        inputs.fail_on,
        &project,
    );
    if project != inputs.project {
        // Sources may have been named through the uncanonical spelling too.
        for r in &mut report.findings {
            r.sources = r
                .sources
                .iter()
                .map(|s| {
                    Path::new(s)
                        .strip_prefix(&inputs.project)
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|_| s.clone())
                })
                .collect();
        }
    }
    Ok(report)
}

impl GateReport {
    /// Writes `gate.json` (canonical JSON) atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        let bytes = kiln_core::canonical::to_vec_pretty(self).expect("the gate report serializes");
        kiln_core::fsx::write_atomic(path, &bytes).map_err(|source| VexError::Write {
            path: path.to_path_buf(),
            source,
        })
    }
}
