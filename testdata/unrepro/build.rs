//! Every value written here is a classic reproducibility bug, on purpose.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").unwrap());

    // Timestamp: the wall clock at build time (seconds and nanoseconds, fixed width), as a
    // string and as an integer.
    let t = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let stamp = format!("{}.{:09}", t.as_secs(), t.subsec_nanos());

    // Hostname: the build machine's name.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();

    // Randomness: a value from the per-process random hasher keys, as hex.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(42);
    let seed = format!("{:016x}", h.finish());

    // Ordering: a HashMap's iteration order (randomly keyed per process).
    let mut m = HashMap::new();
    for (i, k) in ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"].iter().enumerate() {
        m.insert(*k, i);
    }
    let order: Vec<&str> = m.keys().copied().collect();

    // Build path: an absolute path as a *string value*; --remap-path-prefix only rewrites
    // paths rustc itself records (debug info, panic locations), not data a build script writes.
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();

    std::fs::write(
        out.join("stamp.rs"),
        format!(
            "pub const BUILT_AT: &str = {stamp:?};\npub static BUILT_SECS: u64 = {};\npub const HOST: &str = {:?};\npub const SEED: &str = {seed:?};\npub const ORDER: &str = {:?};\n",
            t.as_secs(),
            host.trim(),
            order.join(",")
        ),
    )
    .unwrap();
    std::fs::write(out.join("source_dir.txt"), dir).unwrap();
    println!("cargo::rerun-if-changed=build.rs");
}
