//! The evidence steps, in dependency order: the SBOM describes the image, VEX reads the
//! SBOM, provenance names the SBOM and the VEX inputs, signatures cover all of it, and
//! attaching adds it to the layout before the archives are cut from it.
//!
//! The pipeline calls only this module; each step (`sbom`, `vex`, `attest`) is a thin
//! adapter over its crate that reads an [`ImageContext`] and returns a [`BuildError`].

use crate::context::{BuildOptions, ImageContext, Progress};
use crate::error::BuildError;

/// Checks the evidence options before anything is compiled: a bad option must not cost
/// a build.
pub(crate) fn check_options(opts: &BuildOptions) -> Result<(), BuildError> {
    crate::sbom::check_options(opts)
}

/// Writes the SBOMs, the VEX documents (when the project has statements), provenance and
/// signatures into the staging directory and attaches them to its layout.
pub(crate) fn write(ctx: &ImageContext, progress: &dyn Progress) -> Result<(), BuildError> {
    let name = ctx.spec.name.as_str();
    progress.step(name, "writing the SBOM");
    crate::sbom::write(ctx)?;
    let vex_inputs = crate::vex::write(ctx)?;
    progress.step(name, "writing provenance and signatures");
    crate::attest::write(ctx, vex_inputs)
}
