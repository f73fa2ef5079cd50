//! Test inputs shared by the format differs' unit tests.

use crate::explain::Hints;

pub(super) fn h() -> Hints {
    Hints {
        now: 1_763_600_000,
        ..Default::default()
    }
}

pub(super) fn tar_of(entries: &[(&str, u64, u32, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, mtime, mode, data) in entries {
        let mut hd = tar::Header::new_ustar();
        hd.set_path(path).unwrap();
        hd.set_mtime(*mtime);
        hd.set_mode(*mode);
        hd.set_size(data.len() as u64);
        hd.set_cksum();
        b.append(&hd, *data).unwrap();
    }
    b.into_inner().unwrap()
}

pub(super) fn gz(b: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}
