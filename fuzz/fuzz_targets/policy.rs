//! A `verify` policy (keys, identities, requirements; regexes compiled).

use std::path::Path;

pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ =
        kiln_attest::policy::Policy::parse(Path::new("/nonexistent-kiln-fuzz/policy.toml"), &text);
}
