//! The VEX step of the pipeline: a thin call into kiln-vex, which does the work.

use crate::pipeline::{BuildError, ImageContext};

/// Writes `vex.csaf.json`, `vex.openvex.json` and `vex.cdx.json` from the project's triage
/// statements (`vex/statements.toml`), its advisory directory (`advisories/`) and the SBOM
/// the previous step wrote, when the project has statements; a project without them opts
/// out and gets no VEX. Writes into the staging directory, so a failure leaves nothing.
pub(crate) fn write(ctx: &ImageContext) -> Result<(), BuildError> {
    kiln_vex::write_for_project(ctx.project, ctx.out, ctx.sde.value)
        .map(|_| ())
        .map_err(|e| BuildError::Evidence {
            image: ctx.spec.name.clone(),
            message: format!("VEX: {e}"),
        })
}
