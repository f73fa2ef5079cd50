//! A base layout's `index.json` (and the nested indexes it may name), through
//! `BaseImage::open`.

use crate::fixtures::{ok_layer, parts, with_layout};

pub fn run(data: &[u8]) {
    let mut p = parts(ok_layer());
    p.index = data.to_vec();
    with_layout(&p, |layout, pinned| {
        let _ = kiln_oci::BaseImage::open(layout, pinned);
    });
}

pub fn seeds() -> Vec<Vec<u8>> {
    vec![parts(ok_layer()).index]
}
