//! The cargo home is not trusted: every byte compiled (and every manifest the SBOM reads)
//! comes from the `.crate` archives Cargo.lock pins, checked by sha256 — not from the
//! unpacked `registry/src` a poisoned CI cache can change.

use std::path::{Path, PathBuf};

use crate::support::*;

const MARKER: &str = "KILN-POISONED-SOURCE-7f3a";

fn home(p: &Project) -> PathBuf {
    p.path().join("target/kiln/root/cargo-home")
}

fn itoa_archive(p: &Project) -> PathBuf {
    let cache = home(p).join("registry/cache");
    std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path().join("itoa-1.0.19.crate"))
        .find(|f| f.is_file())
        .unwrap_or_else(|| panic!("no itoa-1.0.19.crate under {}", cache.display()))
}

fn make_writable(dir: &Path) {
    run_ok(
        kiln_core::process::command("chmod")
            .arg("-R")
            .arg("u+w")
            .arg(dir),
    );
}

/// Appends code to `lib.rs` under `dir` that puts [`MARKER`] into any binary using
/// `itoa::Buffer::format`.
fn poison(dir: &Path) {
    let lib = dir.join("src/lib.rs");
    make_writable(dir);
    let text = std::fs::read_to_string(&lib).unwrap();
    let anchor = "pub fn format<I: Integer>(&mut self, i: I) -> &str {";
    assert!(text.contains(anchor), "{} changed upstream", lib.display());
    let evil = format!("{anchor}\n        core::hint::black_box(\"{MARKER}\");");
    std::fs::write(&lib, text.replace(anchor, &evil)).unwrap();
}

fn binary(p: &Project) -> Vec<u8> {
    let path = p
        .path()
        .join("target/kiln/root/target")
        .join(host_target())
        .join("release/hello");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// A poisoned CI cache: code appended to the unpacked `registry/src` copy of a locked
/// dependency (and to kiln's own unpacked tree of the last build), target dir deleted.
/// The rebuild must compile the archive's bytes: the same binary as before, no marker.
#[test]
fn a_poisoned_registry_src_is_never_compiled() {
    let p = Project::hello();
    let clean = p.build();
    let clean_sha = clean["binaries"][0]["sha256"].clone();
    assert!(!contains(&binary(&p), MARKER));

    // Plant (or reuse) cargo's unpacked copy, marked complete the way cargo marks it.
    let archive = itoa_archive(&p);
    let registry = archive.parent().unwrap().file_name().unwrap().to_owned();
    let src = home(&p).join("registry/src").join(&registry);
    let unpacked = src.join("itoa-1.0.19");
    if !unpacked.is_dir() {
        std::fs::create_dir_all(&src).unwrap();
        run_ok(
            kiln_core::process::command("tar")
                .arg("-xzf")
                .arg(&archive)
                .arg("-C")
                .arg(&src),
        );
        std::fs::write(unpacked.join(".cargo-ok"), "{\"v\":1}").unwrap();
    }
    poison(&unpacked);
    // kiln's verified tree from the last build, when it persists, is poisoned as well.
    let verified = p.path().join("target/kiln/root/verified-src/itoa-1.0.19");
    if verified.is_dir() {
        poison(&verified);
    }
    std::fs::remove_dir_all(p.path().join("target/kiln/root/target")).unwrap();

    let again = p.build();
    let bin = binary(&p);
    assert!(
        !contains(&bin, MARKER),
        "code injected into the cargo home's registry/src was compiled into the image"
    );
    assert_eq!(again["binaries"][0]["sha256"], clean_sha);
    assert_eq!(again["digest"], clean["digest"]);
}

/// An archive that no longer matches Cargo.lock stops the build before compiling, naming
/// the crate and the locked checksum; the previous output stays.
#[test]
fn a_poisoned_crate_archive_fails_the_build() {
    let p = Project::hello();
    p.build();
    let before = read_tree(&p.out());
    let archive = itoa_archive(&p);
    let mut bytes = std::fs::read(&archive).unwrap();
    bytes.extend_from_slice(b"\0poison");
    std::fs::write(&archive, bytes).unwrap();
    let err = run_err(p.kiln().args(["build", "--offline"]));
    let lock = std::fs::read_to_string(p.path().join("Cargo.lock")).unwrap();
    let locked = lock
        .split("[[package]]")
        .find(|b| b.contains("name = \"itoa\""))
        .and_then(|b| b.lines().find_map(|l| l.strip_prefix("checksum = \"")))
        .unwrap()
        .trim_end_matches('"')
        .to_string();
    for want in [
        "itoa@1.0.19",
        locked.as_str(),
        "does not match",
        "itoa-1.0.19.crate",
    ] {
        assert!(err.contains(want), "expected `{want}` in:\n{err}");
    }
    assert!(
        !err.contains("Compiling"),
        "compiled before failing:\n{err}"
    );
    assert!(read_tree(&p.out()) == before, "a failed build changed out/");
}

/// The SBOM reads the manifests of locked crates cargo never unpacks (an optional
/// dependency whose feature is off, a Windows-only and a dev-dependency) from kiln's
/// verified tree, never from `registry/src`: with no `registry/src` at all, both the
/// build's SBOM step and `kiln sbom` work.
#[test]
fn sbom_reads_crates_cargo_never_unpacked() {
    let toml = r#"[project]
source_date_epoch = 1700000000

[[image]]
name = "features"
package = "features"
binaries = ["features"]
"#;
    let p = Project::from_testdata("features", toml);
    run_ok(p.kiln().arg("fetch"));
    let src = home(&p).join("registry/src");
    let _ = std::fs::remove_dir_all(&src);
    p.build();
    // cargo did not unpack the optional `ryu` (feature `fast` is off) anywhere it reads.
    let ryu_unpacked = std::fs::read_dir(&src)
        .into_iter()
        .flatten()
        .flatten()
        .any(|index| {
            std::fs::read_dir(index.path())
                .into_iter()
                .flatten()
                .flatten()
                .any(|d| d.file_name().to_string_lossy().starts_with("ryu-"))
        });
    assert!(
        !ryu_unpacked,
        "cargo unpacked ryu although its feature is off"
    );
    let bom = p.out().join("features/sbom.cdx.json");
    let read = || -> Vec<String> {
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&bom).unwrap()).unwrap();
        v["components"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["purl"].as_str())
            .filter(|p| p.starts_with("pkg:cargo/"))
            .map(|p| p.split('@').next().unwrap().to_string())
            .collect()
    };
    let crates = read();
    for want in ["pkg:cargo/itoa", "pkg:cargo/fnv", "pkg:cargo/autocfg"] {
        assert!(
            crates.iter().any(|c| c == want),
            "{want} missing: {crates:?}"
        );
    }
    for never in [
        "pkg:cargo/ryu",
        "pkg:cargo/static_assertions",
        "pkg:cargo/cfg-if",
    ] {
        assert!(
            !crates.iter().any(|c| c == never),
            "{never} listed: {crates:?}"
        );
    }
    // `kiln sbom` regenerates from the verified archives too, registry/src or not.
    let first = std::fs::read(&bom).unwrap();
    let _ = std::fs::remove_dir_all(&src);
    run_ok(p.kiln().arg("sbom"));
    assert!(std::fs::read(&bom).unwrap() == first);
}
