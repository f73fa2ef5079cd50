//! kiln's fuzz targets and the stable-Rust driver that runs them (`cargo xtask fuzz`).
//!
//! The targets live in `fuzz_targets/`, one file each, in cargo-fuzz's layout: each is a
//! `pub fn run(data: &[u8])` that hands arbitrary bytes to one of kiln's real parsers (and
//! what a parsed value is used for next) and must never panic, hang or abort. The driver
//! ([`driver`]) feeds them random bytes and structured mutations of valid seeds (files from
//! `testdata/` and `fuzz/corpus/<target>/`) through proptest, which shrinks any crash to a
//! small input saved under `target/kiln/fuzz/crashes/<target>/`. libFuzzer needs nightly;
//! this runs on the pinned stable toolchain, in the test suite too (a few seconds per
//! target). The dependency on proptest stays in this crate: no product crate has it.

pub mod driver;
pub mod fixtures;

#[path = "../fuzz_targets/base_index.rs"]
pub mod base_index;
#[path = "../fuzz_targets/base_manifest.rs"]
pub mod base_manifest;
#[path = "../fuzz_targets/dsse.rs"]
pub mod dsse;
#[path = "../fuzz_targets/keys.rs"]
pub mod keys;
#[path = "../fuzz_targets/kiln_toml.rs"]
pub mod kiln_toml;
#[path = "../fuzz_targets/osv.rs"]
pub mod osv;
#[path = "../fuzz_targets/policy.rs"]
pub mod policy;
#[path = "../fuzz_targets/sarif.rs"]
pub mod sarif;
#[path = "../fuzz_targets/statements.rs"]
pub mod statements;
#[path = "../fuzz_targets/tar_layer.rs"]
pub mod tar_layer;

/// One fuzz target.
pub struct Target {
    pub name: &'static str,
    pub run: fn(&[u8]),
    /// Seed files or directories (searched recursively), relative to the repository root.
    pub seeds: &'static [&'static str],
    /// Seeds made at run time (e.g. signed with a fresh key).
    pub generated: fn() -> Vec<Vec<u8>>,
    /// Tokens the structured mutations insert or substitute.
    pub dictionary: &'static [&'static str],
}

fn none() -> Vec<Vec<u8>> {
    Vec::new()
}

const JSON: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "\"",
    ":",
    ",",
    "null",
    "true",
    "false",
    "0",
    "-1",
    "1e999",
    "-0",
    "18446744073709551616",
    "\"\"",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "{}",
    "[]",
    "\"sha256:\"",
    "\"../\"",
    "\"pkg:cargo/itoa@1.0.19\"",
    "\"pkg:\"",
    "\"CVE-2099-0001\"",
];
const TOML: &[&str] = &[
    "[",
    "]",
    "[[",
    "]]",
    "=",
    "\"",
    "'''",
    "\"\"\"",
    "\n",
    "#",
    "{",
    "}",
    ",",
    "0o777",
    "-1",
    "1e999",
    "9223372036854775808",
    "true",
    "inf",
    "nan",
    "1979-05-27T07:32:00Z",
    "a.b.c",
    "\"../..\"",
    "\"/\"",
    "[[image]]\n",
    "[[statement]]\n",
    "[[keys]]\n",
    "[[require]]\n",
];

/// Every target, by name.
pub const TARGETS: &[Target] = &[
    Target {
        name: "kiln_toml",
        run: kiln_toml::run,
        seeds: &["kiln.toml", "fuzz/corpus/kiln_toml"],
        generated: none,
        dictionary: TOML,
    },
    Target {
        name: "statements",
        run: statements::run,
        seeds: &["testdata/vex/hello/statements.toml"],
        generated: none,
        dictionary: TOML,
    },
    Target {
        name: "sarif",
        run: sarif::run,
        seeds: &["testdata/vex/hello/scan.sarif.json"],
        generated: none,
        dictionary: JSON,
    },
    Target {
        name: "osv",
        run: osv::run,
        seeds: &["testdata/osv"],
        generated: none,
        dictionary: JSON,
    },
    Target {
        name: "policy",
        run: policy::run,
        seeds: &["testdata/policy"],
        generated: none,
        dictionary: TOML,
    },
    Target {
        name: "base_index",
        run: base_index::run,
        seeds: &[],
        generated: base_index::seeds,
        dictionary: JSON,
    },
    Target {
        name: "base_manifest",
        run: base_manifest::run,
        seeds: &[],
        generated: base_manifest::seeds,
        dictionary: JSON,
    },
    Target {
        name: "tar_layer",
        run: tar_layer::run,
        seeds: &["testdata/layers"],
        generated: none,
        dictionary: &[
            "../",
            "./",
            "/",
            ".wh.",
            ".wh..wh..opq",
            "\0",
            "ustar\0",
            "0000777\0",
        ],
    },
    Target {
        name: "dsse",
        run: dsse::run,
        seeds: &[],
        generated: dsse::seeds,
        dictionary: JSON,
    },
    Target {
        name: "keys",
        run: keys::run,
        seeds: &["testdata/keys"],
        generated: keys::seeds,
        dictionary: &[
            "-----BEGIN PRIVATE KEY-----\n",
            "-----END PRIVATE KEY-----\n",
            "-----BEGIN PUBLIC KEY-----\n",
            "-----BEGIN EC PRIVATE KEY-----\n",
            "=",
            "\n",
        ],
    },
];

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}
