//! `kiln.toml`: strict TOML into `Config`, then its validation.

use std::path::Path;

pub fn run(data: &[u8]) {
    let _ = kiln_config::Config::parse(Path::new("/nonexistent-kiln-fuzz/kiln.toml"), data);
}
