//! The VEX step of the pipeline: a thin call into kiln-vex, which does the work.

use kiln_attest::provenance::VexInput;
use kiln_core::Digest;

use crate::context::ImageContext;
use crate::error::BuildError;

/// Writes `vex.csaf.json`, `vex.openvex.json` and `vex.cdx.json` from the project's triage
/// statements (`vex/statements.toml`), its advisory directory (`advisories/`) and the SBOM
/// the previous step wrote, when the project has statements; a project without them opts
/// out and gets no VEX. Writes into the staging directory, so a failure leaves nothing.
/// Returns the inputs it read (statements, advisories), for provenance to record.
pub(crate) fn write(ctx: &ImageContext) -> Result<Vec<VexInput>, BuildError> {
    let vex_err = |source| BuildError::Vex {
        image: ctx.spec.name.clone(),
        source,
    };
    let written =
        kiln_vex::write_for_project(ctx.project, ctx.out, ctx.sde.value).map_err(vex_err)?;
    if written.is_empty() {
        return Ok(Vec::new());
    }
    let advisories =
        kiln_vex::osv::advisory_files(&ctx.project.join(kiln_vex::osv::ADVISORIES_DIR))
            .map_err(vex_err)?;
    let statements = ctx.project.join(kiln_vex::statements::STATEMENTS_FILE);
    std::iter::once((statements, true))
        .chain(advisories.into_iter().map(|p| (p, false)))
        .map(|(p, is_statements)| {
            let rel = p
                .strip_prefix(ctx.project)
                .unwrap_or(&p)
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            Ok(VexInput {
                sha256: Digest::of_file(&p).map_err(|source| BuildError::VexInput {
                    image: ctx.spec.name.clone(),
                    path: rel.clone(),
                    source,
                })?,
                path: rel,
                statements: is_statements,
            })
        })
        .collect()
}
