//! SBOMs: strict schema validation (cyclonedx-python-lib, spdx-tools), correctness against
//! `cargo tree` and `Cargo.lock`, reproducibility (two directories, golden digest), peers
//! (syft, trivy) and bad input.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

use support::*;

const FEATURES_TOML: &str = r#"[project]
source_date_epoch = 1700000000

[[image]]
name = "features"
package = "features"
binaries = ["features"]
features = ["fast"]
"#;

const VALIDATE: &str = r#"
import sys, json
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from spdx_tools.spdx.parser.parse_anything import parse_file
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document
for p in sys.argv[1:]:
    raw = open(p).read()
    doc = json.loads(raw)
    if "bomFormat" in doc:
        errors = JsonStrictValidator(SchemaVersion.from_version(doc["specVersion"])).validate_str(raw, all_errors=True)
        if errors is not None:
            sys.exit(f"{p}: CycloneDX {doc['specVersion']} invalid: {errors}")
    else:
        msgs = validate_full_spdx_document(parse_file(p))
        if msgs:
            sys.exit(f"{p}: SPDX invalid: " + "; ".join(m.validation_message for m in msgs))
    print(p, "valid")
"#;

fn validate(files: &[&Path]) {
    let args: Vec<&OsStr> = files.iter().map(|p| p.as_os_str()).collect();
    python(VALIDATE, &args);
}

fn read_json(p: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap()
}

fn prop<'a>(c: &'a serde_json::Value, name: &str) -> Option<&'a str> {
    c["properties"].as_array()?.iter().find(|p| p["name"] == name)?["value"].as_str()
}

/// `name@version` → (scope, component) of every crate in a CycloneDX SBOM.
fn crates(bom: &serde_json::Value) -> BTreeMap<String, (String, serde_json::Value)> {
    bom["components"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["purl"].as_str().is_some_and(|p| p.starts_with("pkg:cargo/")))
        .map(|c| (format!("{}@{}", c["name"].as_str().unwrap(), c["version"].as_str().unwrap()), (prop(c, "kiln:cargo:scope").unwrap().to_string(), c.clone())))
        .collect()
}

/// Ground truth: `cargo tree -e normal --target <host>` with the project's cargo home.
fn cargo_tree(project: &Project, manifest: &str, features: &[&str]) -> BTreeSet<String> {
    let mut cmd = Command::new("cargo");
    cmd.args(["tree", "-e", "normal", "--target", &host_target(), "--prefix", "none", "--format", "{p}", "--locked", "--offline", "--manifest-path"])
        .arg(project.path().join(manifest))
        .env("CARGO_HOME", project.path().join("target/kiln/root/cargo-home"))
        .env("CARGO_TARGET_DIR", project.path().join("target/tree"));
    if !features.is_empty() {
        cmd.args(["--features", &features.join(",")]);
    }
    let out = run_ok(&mut cmd);
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some(format!("{}@{}", it.next()?, it.next()?.trim_start_matches('v')))
        })
        .collect()
}

/// `name@version` → checksum from a Cargo.lock.
fn lock_checksums(lock: &Path) -> BTreeMap<String, String> {
    let v: toml_lite::Lock = toml_lite::parse(&std::fs::read_to_string(lock).unwrap());
    v.0
}

/// A tiny Cargo.lock reader (the tests avoid depending on kiln's own parser).
mod toml_lite {
    pub struct Lock(pub std::collections::BTreeMap<String, String>);
    pub fn parse(text: &str) -> Lock {
        let mut out = std::collections::BTreeMap::new();
        for block in text.split("[[package]]").skip(1) {
            let field = |k: &str| block.lines().find_map(|l| l.strip_prefix(&format!("{k} = \"")).map(|v| v.trim_end_matches('"').to_string()));
            if let (Some(n), Some(v), Some(c)) = (field("name"), field("version"), field("checksum")) {
                out.insert(format!("{n}@{v}"), c);
            }
        }
        Lock(out)
    }
}

fn check_against_ground_truth(project: &Project, image: &str, manifest: &str, features: &[&str]) -> serde_json::Value {
    let out = project.out().join(image);
    let bom = read_json(&out.join("sbom.cdx.json"));
    let found = crates(&bom);
    let compiled: BTreeSet<String> = found.iter().filter(|(_, (s, _))| s == "runtime" || s == "proc-macro").map(|(k, _)| k.clone()).collect();
    let truth = cargo_tree(project, manifest, features);
    assert_eq!(compiled, truth, "crates in the SBOM (left) vs `cargo tree -e normal` (right)");
    for (k, (scope, c)) in &found {
        assert_eq!(c["scope"], if scope == "runtime" { "required" } else { "excluded" }, "{k}");
    }
    let sums = lock_checksums(&project.path().join(manifest).parent().unwrap().join("Cargo.lock"));
    for (k, (_, c)) in &found {
        let sbom_sum = c["hashes"].as_array().and_then(|h| h.iter().find(|h| h["alg"] == "SHA-256")).map(|h| h["content"].as_str().unwrap().to_string());
        assert_eq!(sbom_sum.as_ref(), sums.get(k), "{k}: checksum must be Cargo.lock's");
        // Licenses: the crate's own manifest, from the fetched sources.
        let (name, version) = k.split_once('@').unwrap();
        let manifest_text = if prop(c, "kiln:cargo:source") == Some("crates.io") {
            let src = project.path().join("target/kiln/root/cargo-home/registry/src");
            let dir = std::fs::read_dir(&src).unwrap().next().unwrap().unwrap().path().join(format!("{name}-{version}"));
            std::fs::read_to_string(dir.join("Cargo.toml")).unwrap()
        } else {
            std::fs::read_to_string(project.path().join(manifest)).unwrap()
        };
        let license = manifest_text.lines().find_map(|l| l.strip_prefix("license = \"")).map(|v| v.trim_end_matches('"').split('/').map(str::trim).collect::<Vec<_>>().join(" OR "));
        assert_eq!(c["licenses"][0]["expression"].as_str().map(str::to_string), license, "{k}: license");
    }
    bom
}

#[test]
fn hello_sbom_is_valid_correct_reproducible_and_golden() {
    let a = Project::hello();
    a.build();
    let out = a.out().join("hello");
    let (cdx, spdx) = (out.join("sbom.cdx.json"), out.join("sbom.spdx.json"));
    validate(&[&cdx, &spdx]);
    let bom = check_against_ground_truth(&a, "hello", "Cargo.toml", &[]);

    // Image, tools, time, reproducibility markers.
    let summary = read_json(&out.join("summary.json"));
    let digest = summary["digest"].as_str().unwrap();
    let meta = &bom["metadata"];
    assert_eq!(meta["component"]["purl"].as_str().unwrap(), format!("pkg:oci/hello@{}?arch=amd64&tag=latest", digest.replace(':', "%3A")));
    assert_eq!(meta["component"]["hashes"][0]["content"], digest.trim_start_matches("sha256:"));
    assert_eq!(meta["tools"]["components"][0]["name"], "kiln");
    assert_eq!(meta["timestamp"], "2023-11-14T22:13:20Z");
    assert_eq!(prop(meta, "cdx:reproducible"), Some("true"));
    let names: Vec<&str> = bom["formulation"][0]["components"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["rustc", "cargo", "cc", "ld"]);
    // Files: the binary with the summary's digest, and the extra file.
    let files: BTreeMap<&str, &serde_json::Value> =
        bom["components"].as_array().unwrap().iter().filter(|c| c["type"] == "file").map(|c| (c["name"].as_str().unwrap(), c)).collect();
    assert_eq!(files.keys().copied().collect::<Vec<_>>(), ["/etc/hello/greeting.txt", "/usr/local/bin/hello"]);
    assert_eq!(files["/usr/local/bin/hello"]["hashes"][0]["content"], summary["binaries"][0]["sha256"].as_str().unwrap().trim_start_matches("sha256:"));
    // The graph: image → binary → hello → itoa.
    let deps: BTreeMap<&str, Vec<&str>> = bom["dependencies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["ref"].as_str().unwrap(), d["dependsOn"].as_array().unwrap().iter().map(|x| x.as_str().unwrap()).collect()))
        .collect();
    assert!(deps[meta["component"]["bom-ref"].as_str().unwrap()].contains(&"file:/usr/local/bin/hello"));
    assert_eq!(deps["file:/usr/local/bin/hello"], ["pkg:cargo/hello@0.1.0"]);
    assert_eq!(deps["pkg:cargo/hello@0.1.0"], ["pkg:cargo/itoa@1.0.19"]);

    // The same inputs in another directory: the same bytes.
    let b = Project::hello();
    b.build();
    for f in ["sbom.cdx.json", "sbom.spdx.json"] {
        assert!(std::fs::read(out.join(f)).unwrap() == std::fs::read(b.out().join("hello").join(f)).unwrap(), "{f} differs between two builds");
    }
    // `cargo xtask sbom` regenerates the same bytes; 1.5 on request, valid too.
    run_ok(a.kiln().arg("sbom"));
    assert!(std::fs::read(&cdx).unwrap() == std::fs::read(b.out().join("hello/sbom.cdx.json")).unwrap());
    run_ok(b.kiln().args(["sbom", "--sbom-spec", "1.5"]));
    let v15 = b.out().join("hello/sbom.cdx.json");
    assert_eq!(read_json(&v15)["specVersion"], "1.5");
    validate(&[&v15]);

    // Golden digest: changes only deliberately (toolchain lock, kiln version, the SBOM format).
    let golden = repo().join("testdata/golden/sbom/hello.cdx.sha256");
    let got = format!("sha256:{}\n", sha256_hex(&std::fs::read(&cdx).unwrap()));
    if std::env::var_os("KILN_UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &got).unwrap();
    }
    let want = std::fs::read_to_string(&golden).unwrap_or_default();
    assert_eq!(got, want, "sbom.cdx.json of testdata/hello changed; if intended, rerun with KILN_UPDATE_GOLDEN=1 and commit {}", golden.display());
}

fn sha256_hex(bytes: &[u8]) -> String {
    kiln_core::Digest::of(bytes).hex()
}

#[test]
fn features_project_matches_cargo_tree() {
    let p = Project::from_testdata("features", FEATURES_TOML);
    p.build();
    let out = p.out().join("features");
    validate(&[&out.join("sbom.cdx.json"), &out.join("sbom.spdx.json")]);
    let bom = check_against_ground_truth(&p, "features", "Cargo.toml", &["fast"]);
    let found = crates(&bom);
    let scope = |n: &str| found.iter().find(|(k, _)| k.starts_with(&format!("{n}@"))).map(|(_, (s, _))| s.as_str());
    assert_eq!(scope("ryu"), Some("runtime"), "the feature's optional dependency");
    assert_eq!(scope("fnv"), Some("runtime"), "cfg(unix) dependency");
    assert_eq!(scope("autocfg"), Some("build"), "build dependency, build scope");
    assert_eq!(scope("static_assertions"), None, "cfg(windows) dependency must not appear");
    assert_eq!(scope("cfg-if"), None, "dev-dependency must not appear");
    let root_deps = bom["dependencies"].as_array().unwrap().iter().find(|d| d["ref"] == "pkg:cargo/features@0.1.0").unwrap()["dependsOn"].clone();
    assert_eq!(root_deps, serde_json::json!(["pkg:cargo/autocfg@1.5.1", "pkg:cargo/fnv@1.0.7", "pkg:cargo/itoa@1.0.19", "pkg:cargo/ryu@1.0.23"]));
}

/// syft and trivy on the same image: kiln must find every crate they find.
#[test]
fn peers_find_nothing_kiln_misses() {
    let p = Project::hello();
    p.build();
    let out = p.out().join("hello");
    let kiln_crates: BTreeSet<String> = crates(&read_json(&out.join("sbom.cdx.json"))).into_keys().collect();
    let work = tempfile::tempdir().unwrap();
    // The layout's index also lists the attached attestations and SBOMs (OCI 1.1
    // artifacts); syft's oci-dir wants exactly one manifest, so the peers get a copy whose
    // index names only the image.
    let layout = work.path().join("oci");
    copy_tree(&out.join("oci"), &layout);
    let mut index = read_json(&layout.join("index.json"));
    index["manifests"].as_array_mut().unwrap().retain(|m| m["annotations"]["org.opencontainers.image.ref.name"] == "latest");
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    let syft_out = work.path().join("syft.json");
    run_ok(
        Command::new(tool("syft"))
            .arg("scan")
            .arg(format!("oci-dir:{}", layout.display()))
            .arg("-o")
            .arg(format!("cyclonedx-json={}", syft_out.display()))
            .arg("-q")
            .env("SYFT_CHECK_FOR_APP_UPDATE", "false"),
    );
    let trivy_out = work.path().join("trivy.json");
    run_ok(
        Command::new(tool("trivy"))
            .args(["image", "--input"])
            .arg(&layout)
            .args(["--format", "cyclonedx", "--skip-db-update", "--offline-scan", "--scanners", "license", "--output"])
            .arg(&trivy_out)
            .env("TRIVY_CACHE_DIR", work.path().join("trivy-cache")),
    );
    for (peer, file) in [("syft", &syft_out), ("trivy", &trivy_out)] {
        let bom = read_json(file);
        let theirs: BTreeSet<String> = bom["components"]
            .as_array()
            .map(|a| a.as_slice())
            .unwrap_or_default()
            .iter()
            .filter(|c| c["purl"].as_str().is_some_and(|p| p.starts_with("pkg:cargo/")))
            .map(|c| format!("{}@{}", c["name"].as_str().unwrap(), c["version"].as_str().unwrap()))
            .collect();
        eprintln!("{peer} found {} crate(s): {theirs:?}; kiln found {kiln_crates:?}", theirs.len());
        let missed: Vec<_> = theirs.difference(&kiln_crates).collect();
        assert!(missed.is_empty(), "{peer} found crates kiln did not: {missed:?}");
    }
}

#[test]
fn unsupported_spec_fails_before_writing() {
    let p = Project::hello();
    let err = run_err(p.kiln().args(["build", "--sbom-spec", "2.0"]));
    assert!(err.contains("--sbom-spec") && err.contains("2.0") && err.contains("1.6") && err.contains("1.5"), "{err}");
    assert!(!err.contains("compiling"), "checked before compiling: {err}");
    assert!(p.out_entries().is_empty());
}

#[test]
fn stale_cargo_lock_is_named() {
    let p = Project::hello();
    p.build();
    // A new dependency the lock does not have: `cargo metadata --locked` would change it.
    let manifest = p.path().join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap().replace("itoa = \"1\"", "itoa = \"1\"\nryu = \"1\"");
    std::fs::write(&manifest, text).unwrap();
    let err = run_err(p.kiln().arg("sbom"));
    assert!(err.contains(&format!("{}", p.path().join("Cargo.lock").display())) || err.contains("Cargo.lock"), "{err}");
    assert!(err.contains("stale") && err.contains("cargo update"), "{err}");
}

#[test]
fn bad_dpkg_status_in_base_layer_names_layer_file_and_line() {
    let p = Project::hello();
    let mut layer = kiln_oci::Layer::new();
    layer.add_bytes("var/lib/dpkg/status", b"Package: libc6\nStatus: install ok installed\nVersion: 2.36\n\n@@not a field@@\n".to_vec(), 0o644).unwrap();
    let image = kiln_oci::Image { sde: 0, base: None, layers: vec![(layer, "base".into())], config: kiln_oci::ImageConfig::new(kiln_oci::Platform::host()) };
    let built = image.write_layout(&p.path().join("base"), "latest").unwrap();
    let layer_digest = built.layers[0].digest.to_string();
    let toml = format!("{}base = {{ layout = \"base\", digest = \"{}\" }}\n", HELLO_TOML.replace("[[image.files]]", "__FILES__").split("__FILES__").next().unwrap(), built.manifest.digest);
    std::fs::write(p.path().join("kiln.toml"), toml).unwrap();
    let err = run_err(p.kiln().arg("build"));
    assert!(err.contains(&layer_digest) && err.contains("/var/lib/dpkg/status:5"), "{err}");
    assert!(p.out_entries().is_empty());
}
