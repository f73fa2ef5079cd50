//! The VEX step of the pipeline (owned by the VEX work; see kiln-vex).

use crate::pipeline::{BuildError, ImageContext};

/// Writes `vex.csaf.json`, `vex.openvex.json` and `vex.cdx.json` from the project's triage
/// statements and the SBOM, when the project has statements.
pub(crate) fn write(_ctx: &ImageContext) -> Result<(), BuildError> {
    Ok(())
}
