//! An OSV advisory, then its matching against the fixture SBOM (semver and dpkg ranges).

use std::path::Path;

pub fn run(data: &[u8]) {
    if let Ok(a) = kiln_vex::Advisory::parse(Path::new("advisory.json"), data) {
        let _ = kiln_vex::findings::merge(a.findings(crate::fixtures::sbom(), true));
    }
}
