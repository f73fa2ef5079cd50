//! The SBOM step of the pipeline (owned by the SBOM work; see kiln-sbom).

use crate::pipeline::{BuildError, ImageContext};

/// Writes `sbom.cdx.json` and `sbom.spdx.json` into the staging output directory.
pub(crate) fn write(_ctx: &ImageContext) -> Result<(), BuildError> {
    Ok(())
}
