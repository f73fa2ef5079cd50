//! SARIF 2.1.0 scanner output: matched to the fixture SBOM, then merged as the gate does.

use std::path::Path;

pub fn run(data: &[u8]) {
    if let Ok(findings) =
        kiln_vex::sarif::parse(Path::new("scan.sarif.json"), data, crate::fixtures::sbom())
    {
        let _ = kiln_vex::findings::merge(findings);
    }
}
