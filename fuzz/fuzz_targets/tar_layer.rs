//! A base layer (uncompressed tar), through kiln-oci's base checks and kiln-sbom's layer
//! scan (files, whiteouts, links, package databases).

use crate::fixtures::{parts, with_layout};

pub fn run(data: &[u8]) {
    let p = parts(data);
    with_layout(&p, |layout, pinned| {
        let _ = kiln_oci::BaseImage::open(layout, pinned);
        let _ = kiln_sbom::layers::scan_layout(layout, pinned);
    });
}
