//! A base image manifest, pinned by its own digest (so the digest check passes and the
//! parser sees the bytes), through `BaseImage::open`.

use crate::fixtures::{index_for, ok_layer, parts, with_layout};

pub fn run(data: &[u8]) {
    let mut p = parts(ok_layer());
    p.manifest = data.to_vec();
    p.index = index_for(&p.manifest);
    with_layout(&p, |layout, pinned| {
        let _ = kiln_oci::BaseImage::open(layout, pinned);
    });
}

pub fn seeds() -> Vec<Vec<u8>> {
    vec![parts(ok_layer()).manifest]
}
