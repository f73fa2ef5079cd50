//! `vex/statements.toml`, validated against the fixture SBOM.

use std::path::Path;

pub fn run(data: &[u8]) {
    let _ = kiln_vex::Statements::parse(
        Path::new("vex/statements.toml"),
        data,
        crate::fixtures::sbom(),
    );
}
