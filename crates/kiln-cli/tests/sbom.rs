//! SBOMs: strict schema validation (cyclonedx-python-lib, spdx-tools), correctness against
//! `cargo tree` and `Cargo.lock`, reproducibility (two directories, golden digest), peers
//! (syft, trivy, cargo-cyclonedx) and bad input.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::*;

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
    serde_json::from_slice(&std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .unwrap()
}

fn prop<'a>(c: &'a serde_json::Value, name: &str) -> Option<&'a str> {
    c["properties"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == name)?["value"]
        .as_str()
}

/// `(name@version, component)` of every top-level `pkg:cargo/` component of a CycloneDX
/// document.
fn cargo_components(bom: &serde_json::Value) -> impl Iterator<Item = (String, &serde_json::Value)> {
    bom["components"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .filter(|c| {
            c["purl"]
                .as_str()
                .is_some_and(|p| p.starts_with("pkg:cargo/"))
        })
        .map(|c| {
            let key = format!(
                "{}@{}",
                c["name"].as_str().unwrap(),
                c["version"].as_str().unwrap()
            );
            (key, c)
        })
}

/// `name@version` → (scope, component) of every crate in a kiln CycloneDX SBOM.
fn crates(bom: &serde_json::Value) -> BTreeMap<String, (String, serde_json::Value)> {
    cargo_components(bom)
        .map(|(k, c)| {
            let scope = prop(c, "kiln:cargo:scope").unwrap().to_string();
            (k, (scope, c.clone()))
        })
        .collect()
}

/// `name@version` of every package `cargo tree -e <edges> --target <host>` lists for
/// `manifest` (offline, locked); `configure` adds the selection and the environment.
fn tree_crates(
    manifest: &Path,
    edges: &str,
    configure: impl FnOnce(&mut Command),
) -> BTreeSet<String> {
    let mut cmd = kiln_core::process::command("cargo");
    cmd.args(["tree", "-e", edges, "--target", &host_target()])
        .args([
            "--prefix",
            "none",
            "--format",
            "{p}",
            "--locked",
            "--offline",
        ])
        .arg("--manifest-path")
        .arg(manifest);
    configure(&mut cmd);
    let out = run_ok(&mut cmd);
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some(format!(
                "{}@{}",
                it.next()?,
                it.next()?.trim_start_matches('v')
            ))
        })
        .collect()
}

/// A cargo home for cargo itself and cargo-cyclonedx (the ground truth and a peer), filled
/// by `cargo fetch --locked` as a user's would be: kiln's own cargo home holds only the
/// `.crate` files it downloaded and verified, not cargo's registry index, which cargo's
/// offline resolution needs.
fn peer_cargo_home(project: &Project, manifest: &Path) -> PathBuf {
    let home = project.path().join("target/peer-cargo-home");
    run_ok(
        kiln_core::process::command("cargo")
            .args(["fetch", "--locked", "--manifest-path"])
            .arg(manifest)
            .env("CARGO_HOME", &home),
    );
    home
}

/// Ground truth: `cargo tree -e normal --target <host>` with the project's lock.
fn cargo_tree(project: &Project, manifest: &str, features: &[&str]) -> BTreeSet<String> {
    let manifest = project.path().join(manifest);
    let home = peer_cargo_home(project, &manifest);
    tree_crates(&manifest, "normal", |cmd| {
        cmd.env("CARGO_HOME", &home)
            .env("CARGO_TARGET_DIR", project.path().join("target/tree"));
        if !features.is_empty() {
            cmd.args(["--features", &features.join(",")]);
        }
    })
}

/// A component's SHA-256 hash, if it has one.
fn sbom_sha256(c: &serde_json::Value) -> Option<String> {
    c["hashes"]
        .as_array()
        .and_then(|h| h.iter().find(|h| h["alg"] == "SHA-256"))
        .map(|h| h["content"].as_str().unwrap().to_string())
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
            let field = |k: &str| {
                block.lines().find_map(|l| {
                    l.strip_prefix(&format!("{k} = \""))
                        .map(|v| v.trim_end_matches('"').to_string())
                })
            };
            if let (Some(n), Some(v), Some(c)) =
                (field("name"), field("version"), field("checksum"))
            {
                out.insert(format!("{n}@{v}"), c);
            }
        }
        Lock(out)
    }
}

fn check_against_ground_truth(
    project: &Project,
    image: &str,
    manifest: &str,
    features: &[&str],
) -> serde_json::Value {
    let out = project.out().join(image);
    let bom = read_json(&out.join("sbom.cdx.json"));
    let found = crates(&bom);
    let compiled: BTreeSet<String> = found
        .iter()
        .filter(|(_, (s, _))| s == "runtime" || s == "proc-macro")
        .map(|(k, _)| k.clone())
        .collect();
    let truth = cargo_tree(project, manifest, features);
    assert_eq!(
        compiled, truth,
        "crates in the SBOM (left) vs `cargo tree -e normal` (right)"
    );
    for (k, (scope, c)) in &found {
        assert_eq!(
            c["scope"],
            if scope == "runtime" {
                "required"
            } else {
                "excluded"
            },
            "{k}"
        );
    }
    let sums = lock_checksums(
        &project
            .path()
            .join(manifest)
            .parent()
            .unwrap()
            .join("Cargo.lock"),
    );
    for (k, (_, c)) in &found {
        assert_eq!(
            sbom_sha256(c),
            sums.get(k).cloned(),
            "{k}: checksum must be Cargo.lock's"
        );
        // Licenses: the crate's own manifest, from the sources the build verified.
        let (name, version) = k.split_once('@').unwrap();
        let manifest_text = if prop(c, "kiln:cargo:source") == Some("crates.io") {
            let dir = project
                .path()
                .join("target/kiln/root/verified-src")
                .join(format!("{name}-{version}"));
            std::fs::read_to_string(dir.join("Cargo.toml")).unwrap()
        } else {
            std::fs::read_to_string(project.path().join(manifest)).unwrap()
        };
        let license = manifest_text
            .lines()
            .find_map(|l| l.strip_prefix("license = \""))
            .map(|v| {
                v.trim_end_matches('"')
                    .split('/')
                    .map(str::trim)
                    .collect::<Vec<_>>()
                    .join(" OR ")
            });
        assert_eq!(
            c["licenses"][0]["expression"].as_str().map(str::to_string),
            license,
            "{k}: license"
        );
    }
    bom
}

#[test]
fn hello_sbom_is_valid_correct_reproducible_and_golden() {
    // Inside the provided root: the golden digest then holds on any Linux machine (the SBOM
    // names the toolchain, and a host toolchain differs from machine to machine).
    let a = Project::provided_hello();
    a.build();
    let out = a.out().join("hello");
    let (cdx, spdx) = (out.join("sbom.cdx.json"), out.join("sbom.spdx.json"));
    validate(&[&cdx, &spdx]);
    let bom = check_against_ground_truth(&a, "hello", "Cargo.toml", &[]);

    // Image, tools, time, reproducibility markers.
    let summary = read_json(&out.join("summary.json"));
    let digest = summary["digest"].as_str().unwrap();
    let meta = &bom["metadata"];
    assert_eq!(
        meta["component"]["purl"].as_str().unwrap(),
        format!(
            "pkg:oci/hello@{}?arch=amd64&tag=0.1.0",
            digest.replace(':', "%3A")
        )
    );
    assert_eq!(
        meta["component"]["hashes"][0]["content"],
        digest.trim_start_matches("sha256:")
    );
    assert_eq!(meta["tools"]["components"][0]["name"], "kiln");
    assert_eq!(meta["timestamp"], "2023-11-14T22:13:20Z");
    assert_eq!(prop(meta, "cdx:reproducible"), Some("true"));
    let names: Vec<&str> = bom["formulation"][0]["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["rustc", "cargo", "cc", "ld"]);
    // Files: the binary with the summary's digest, and the extra file.
    let files: BTreeMap<&str, &serde_json::Value> = bom["components"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["type"] == "file")
        .map(|c| (c["name"].as_str().unwrap(), c))
        .collect();
    assert_eq!(
        files.keys().copied().collect::<Vec<_>>(),
        ["/etc/hello/greeting.txt", "/usr/local/bin/hello"]
    );
    assert_eq!(
        files["/usr/local/bin/hello"]["hashes"][0]["content"],
        summary["binaries"][0]["sha256"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:")
    );
    // The graph: image → binary → hello → itoa.
    let deps: BTreeMap<&str, Vec<&str>> = bom["dependencies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["ref"].as_str().unwrap(),
                d["dependsOn"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_str().unwrap())
                    .collect(),
            )
        })
        .collect();
    assert!(
        deps[meta["component"]["bom-ref"].as_str().unwrap()].contains(&"file:/usr/local/bin/hello")
    );
    assert_eq!(deps["file:/usr/local/bin/hello"], ["pkg:cargo/hello@0.1.0"]);
    assert_eq!(deps["pkg:cargo/hello@0.1.0"], ["pkg:cargo/itoa@1.0.19"]);

    // The same inputs in another directory: the same bytes.
    let b = Project::provided_hello();
    b.build();
    for f in ["sbom.cdx.json", "sbom.spdx.json"] {
        assert!(
            std::fs::read(out.join(f)).unwrap()
                == std::fs::read(b.out().join("hello").join(f)).unwrap(),
            "{f} differs between two builds"
        );
    }
    // `cargo xtask sbom` regenerates the same bytes; 1.5 on request, valid too.
    run_ok(a.kiln().arg("sbom"));
    assert!(
        std::fs::read(&cdx).unwrap() == std::fs::read(b.out().join("hello/sbom.cdx.json")).unwrap()
    );
    run_ok(b.kiln().args(["sbom", "--sbom-spec", "1.5"]));
    let v15 = b.out().join("hello/sbom.cdx.json");
    assert_eq!(read_json(&v15)["specVersion"], "1.5");
    validate(&[&v15]);

    // Golden digest: changes only deliberately (the root's lock, kiln version, the SBOM format).
    let golden = repo().join("testdata/golden/sbom/hello.cdx.sha256");
    let got = format!("sha256:{}\n", sha256_hex(&std::fs::read(&cdx).unwrap()));
    if std::env::var_os("KILN_UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &got).unwrap();
    }
    let want = std::fs::read_to_string(&golden).unwrap_or_default();
    assert_eq!(
        got,
        want,
        "sbom.cdx.json of testdata/hello changed; if intended, rerun with KILN_UPDATE_GOLDEN=1 and commit {}",
        golden.display()
    );
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
    let scope = |n: &str| {
        found
            .iter()
            .find(|(k, _)| k.starts_with(&format!("{n}@")))
            .map(|(_, (s, _))| s.as_str())
    };
    assert_eq!(
        scope("ryu"),
        Some("runtime"),
        "the feature's optional dependency"
    );
    assert_eq!(scope("fnv"), Some("runtime"), "cfg(unix) dependency");
    assert_eq!(
        scope("autocfg"),
        Some("build"),
        "build dependency, build scope"
    );
    assert_eq!(
        scope("static_assertions"),
        None,
        "cfg(windows) dependency must not appear"
    );
    assert_eq!(scope("cfg-if"), None, "dev-dependency must not appear");
    let root_deps = bom["dependencies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["ref"] == "pkg:cargo/features@0.1.0")
        .unwrap()["dependsOn"]
        .clone();
    assert_eq!(
        root_deps,
        serde_json::json!([
            "pkg:cargo/autocfg@1.5.1",
            "pkg:cargo/fnv@1.0.7",
            "pkg:cargo/itoa@1.0.19",
            "pkg:cargo/ryu@1.0.23"
        ])
    );
}

/// Resolves `package` of the workspace at `workspace` with kiln's resolver (in-process: the
/// library call `kiln build`'s SBOM step makes) and checks the result against cargo itself:
/// the runtime and proc-macro crates are exactly `cargo tree -e normal`'s, the build-only
/// crates exactly what `-e normal,build` adds, and every checksum is Cargo.lock's. Reads the
/// cargo home this test suite runs with, which must hold the workspace's crates.
fn assert_resolution_matches_cargo_tree(workspace: &Path, package: &str) {
    let work = tempfile::tempdir().unwrap();
    crate::support::write_host_lock(work.path());
    let lock = kiln_toolchain::ToolchainLock::read(
        &work
            .path()
            .join(format!("toolchains/{}.lock.json", host_target())),
    )
    .unwrap();
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cargo"));
    // Every locked crate unpacked, as kiln's own `fetch` guarantees a build: a cargo home
    // that only ever *built* the workspace lacks optional dependencies no feature turns on
    // (rustls-platform-verifier's `jni`), whose manifests the feature pass still reads.
    run_ok(
        kiln_core::process::command("cargo")
            .args(["fetch", "--locked", "--manifest-path"])
            .arg(workspace.join("Cargo.toml"))
            .env("CARGO_HOME", &cargo_home),
    );
    let req = kiln_build::sbom_resolve_request(
        workspace.join("Cargo.toml"),
        package,
        &lock,
        kiln_sbom::cargo::CrateSources::CargoHome(cargo_home),
    );
    let resolved = kiln_sbom::cargo::resolve(&req)
        .unwrap_or_else(|e| panic!("resolving {package} in {}: {e}", workspace.display()));
    let found: BTreeMap<String, (String, Option<String>)> = resolved
        .crates
        .values()
        .map(|c| {
            (
                format!("{}@{}", c.name, c.version),
                (c.scope.as_str().to_string(), c.checksum.clone()),
            )
        })
        .collect();
    let scoped = |want: &[&str]| -> BTreeSet<String> {
        found
            .iter()
            .filter(|(_, (s, _))| want.contains(&s.as_str()))
            .map(|(k, _)| k.clone())
            .collect()
    };
    let tree = |edges: &str| {
        tree_crates(&workspace.join("Cargo.toml"), edges, |cmd| {
            cmd.args(["-p", package])
                .env("CARGO_TARGET_DIR", work.path().join("target"));
        })
    };
    let normal = tree("normal");
    assert!(normal.len() > 100, "{normal:?}");
    assert_eq!(
        scoped(&["runtime", "proc-macro"]),
        normal,
        "crates kiln resolves for {package} (left) vs `cargo tree -e normal` (right)"
    );
    let build_only: BTreeSet<String> = tree("normal,build").difference(&normal).cloned().collect();
    assert_eq!(
        scoped(&["build"]),
        build_only,
        "build-only crates (left) vs what `cargo tree -e normal,build` adds (right)"
    );
    let sums = lock_checksums(&workspace.join("Cargo.lock"));
    for (k, (_, checksum)) in &found {
        assert_eq!(
            checksum.clone(),
            sums.get(k).cloned(),
            "{k}: checksum must be Cargo.lock's"
        );
    }
}

/// kiln's own workspace (~150 crates, proc macros, build scripts, per-platform and
/// optional dependencies, workspace inheritance): its crates are in the cargo home that
/// compiled this test.
#[test]
fn kiln_workspace_resolution_matches_cargo_tree() {
    assert_resolution_matches_cargo_tree(&crate::support::repo(), "xtask");
}

/// `testdata/resolver`: ~280 locked packages (tokio, reqwest/rustls, tonic/prost, clap,
/// image, ...), resolver 3, inherited workspace dependencies, a renamed dependency, weak
/// and `dep:` features, and Windows/wasm/Apple-only crates that must not appear. Its
/// crates are fetched first (the only network use here, pinned by Cargo.lock checksums).
#[test]
fn large_real_graph_resolution_matches_cargo_tree() {
    let ws = crate::support::repo().join("testdata/resolver");
    run_ok(
        kiln_core::process::command("cargo")
            .args(["fetch", "--locked", "--quiet", "--manifest-path"])
            .arg(ws.join("Cargo.toml")),
    );
    assert_resolution_matches_cargo_tree(&ws, "app");
}

/// `name@version` of every `pkg:cargo/` component of a peer's CycloneDX document.
fn peer_crates(bom: &serde_json::Value) -> BTreeSet<String> {
    cargo_components(bom).map(|(k, _)| k).collect()
}

/// syft (`oci-dir:`) and trivy (`image --input`) on a built image's layout: the crates each
/// finds.
fn image_peers(image_out: &Path, work: &Path) -> Vec<(&'static str, BTreeSet<String>)> {
    // The layout's index also lists the attached attestations and SBOMs (OCI 1.1
    // artifacts); syft's oci-dir wants exactly one manifest, so the peers get a copy whose
    // index names only the image.
    let layout = work.join("oci");
    copy_tree(&image_out.join("oci"), &layout);
    let mut index = read_json(&layout.join("index.json"));
    index["manifests"]
        .as_array_mut()
        .unwrap()
        .retain(|m| m["annotations"]["org.opencontainers.image.ref.name"] == "0.1.0");
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
    let syft_out = work.join("syft-image.json");
    run_ok(
        syft()
            .arg(format!("oci-dir:{}", layout.display()))
            .arg("-o")
            .arg(format!("cyclonedx-json={}", syft_out.display())),
    );
    let trivy_out = work.join("trivy-image.json");
    run_ok(
        trivy(work)
            .args(["image", "--input"])
            .arg(&layout)
            .args(TRIVY_SBOM)
            .arg(&trivy_out),
    );
    vec![
        ("syft oci-dir:", peer_crates(&read_json(&syft_out))),
        ("trivy image", peer_crates(&read_json(&trivy_out))),
    ]
}

/// syft (`dir:`) and trivy (`fs`) on a project's sources: what a lockfile scanner finds.
fn source_peers(src: &Path, work: &Path) -> Vec<(&'static str, BTreeSet<String>)> {
    let syft_out = work.join("syft-dir.json");
    run_ok(
        syft()
            .arg(format!("dir:{}", src.display()))
            .arg("-o")
            .arg(format!("cyclonedx-json={}", syft_out.display())),
    );
    let trivy_out = work.join("trivy-fs.json");
    run_ok(
        trivy(work)
            .arg("fs")
            .args(TRIVY_SBOM)
            .arg(&trivy_out)
            .arg(src),
    );
    vec![
        ("syft dir:", peer_crates(&read_json(&syft_out))),
        ("trivy fs", peer_crates(&read_json(&trivy_out))),
    ]
}

/// trivy's offline SBOM flags, ending in `--output` (the file comes next).
const TRIVY_SBOM: [&str; 8] = [
    "--quiet",
    "--format",
    "cyclonedx",
    "--skip-db-update",
    "--offline-scan",
    "--scanners",
    "license",
    "--output",
];

fn syft() -> Command {
    let mut c = kiln_core::process::command(tool("syft"));
    c.args(["scan", "-q"])
        .env("SYFT_CHECK_FOR_APP_UPDATE", "false");
    c
}

fn trivy(work: &Path) -> Command {
    let mut c = kiln_core::process::command(tool("trivy"));
    c.env("TRIVY_CACHE_DIR", work.join("trivy-cache"));
    c
}

/// syft and trivy on the same image: kiln must find every crate they find.
#[test]
fn peers_find_nothing_kiln_misses() {
    let p = Project::hello();
    p.build();
    let out = p.out().join("hello");
    let kiln_crates: BTreeSet<String> = crates(&read_json(&out.join("sbom.cdx.json")))
        .into_keys()
        .collect();
    let work = tempfile::tempdir().unwrap();
    for (peer, theirs) in image_peers(&out, work.path()) {
        eprintln!(
            "{peer} found {} crate(s): {theirs:?}; kiln found {kiln_crates:?}",
            theirs.len()
        );
        let missed: Vec<_> = theirs.difference(&kiln_crates).collect();
        assert!(
            missed.is_empty(),
            "{peer} found crates kiln did not: {missed:?}"
        );
    }
}

/// cargo-cyclonedx: `$KILN_TOOLS_CARGO_BIN` or `target/kiln/tools/cargo/bin` (where
/// `cargo xtask test` installs it), else PATH.
fn cargo_cyclonedx_bin() -> PathBuf {
    let dirs = [
        std::env::var_os("KILN_TOOLS_CARGO_BIN").map(PathBuf::from),
        Some(repo().join("target/kiln/tools/cargo/bin")),
    ];
    dirs.into_iter()
        .flatten()
        .map(|d| d.join("cargo-cyclonedx"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| tool("cargo-cyclonedx"))
}

/// What cargo-cyclonedx lists for a built project, resolved like kiln's build (host target,
/// the image's features), offline against the project's kiln cargo home.
struct CargoCyclonedx {
    /// Scope `required` (or none: CycloneDX's default is required), plus the package itself
    /// (`metadata.component`): what it says is in the binary.
    required: BTreeSet<String>,
    /// Scope `excluded`: cargo-cyclonedx marks `[build-dependencies]` (and what they pull
    /// in) so; kiln calls these scope `build`.
    excluded: BTreeSet<String>,
}

fn cargo_cyclonedx(project: &Project, features: &[&str]) -> CargoCyclonedx {
    let mut cmd = kiln_core::process::command(cargo_cyclonedx_bin());
    cmd.args([
        "cyclonedx",
        "--format",
        "json",
        "--spec-version",
        "1.5",
        "--all",
        "--override-filename",
        "ccdx",
        "--target",
        &host_target(),
        "--manifest-path",
    ])
    .arg(project.path().join("Cargo.toml"))
    .env(
        "CARGO_HOME",
        peer_cargo_home(project, &project.path().join("Cargo.toml")),
    )
    .env("CARGO_NET_OFFLINE", "true")
    .env("SOURCE_DATE_EPOCH", "1700000000");
    if !features.is_empty() {
        cmd.args(["--features", &features.join(",")]);
    }
    run_ok(&mut cmd);
    let bom = read_json(&project.path().join("ccdx.json"));
    let key = |c: &serde_json::Value| {
        format!(
            "{}@{}",
            c["name"].as_str().unwrap(),
            c["version"].as_str().unwrap()
        )
    };
    let mut found = CargoCyclonedx {
        required: BTreeSet::from([key(&bom["metadata"]["component"])]),
        excluded: BTreeSet::new(),
    };
    for c in bom["components"].as_array().unwrap() {
        if !c["purl"]
            .as_str()
            .is_some_and(|p| p.starts_with("pkg:cargo/"))
        {
            continue;
        }
        match c["scope"].as_str() {
            None | Some("required") => found.required.insert(key(c)),
            Some("excluded") => found.excluded.insert(key(c)),
            other => panic!(
                "cargo-cyclonedx scope {other:?} for {}: the mapping in this test needs updating",
                key(c)
            ),
        };
    }
    found
}

/// Compares kiln's crates with cargo-cyclonedx's for the same selection. cargo-cyclonedx
/// reads `cargo metadata`; it calls everything reached over normal edges `required`
/// (proc-macros included) and build-dependencies `excluded`, while kiln separates
/// proc-macros (compile-time only) from runtime crates. So: every crate cargo-cyclonedx
/// requires is runtime or proc-macro in kiln, every crate it excludes is build-scoped in
/// kiln, and neither lists a crate the other lacks.
fn check_against_cargo_cyclonedx(
    project: &Project,
    image: &str,
    features: &[&str],
) -> CargoCyclonedx {
    let found = crates(&read_json(&project.out().join(image).join("sbom.cdx.json")));
    let by_scope = |want: &[&str]| -> BTreeSet<String> {
        found
            .iter()
            .filter(|(_, (s, _))| want.contains(&s.as_str()))
            .map(|(k, _)| k.clone())
            .collect()
    };
    let ccdx = cargo_cyclonedx(project, features);
    let compiled = by_scope(&["runtime", "proc-macro"]);
    let missed: Vec<_> = ccdx.required.difference(&compiled).collect();
    assert!(
        missed.is_empty(),
        "cargo-cyclonedx lists as required crates kiln does not have in the binary: {missed:?} (kiln: {compiled:?})"
    );
    let build = by_scope(&["build"]);
    assert!(
        ccdx.excluded.is_subset(&build),
        "cargo-cyclonedx's excluded (build) crates {:?} vs kiln's build scope {build:?}",
        ccdx.excluded
    );
    let theirs: BTreeSet<String> = ccdx.required.union(&ccdx.excluded).cloned().collect();
    let ours: BTreeSet<String> = found.keys().cloned().collect();
    assert_eq!(
        ours, theirs,
        "all crates: kiln (left) vs cargo-cyclonedx (right)"
    );
    ccdx
}

#[test]
fn cargo_cyclonedx_finds_nothing_kiln_misses_in_hello() {
    let p = Project::hello();
    p.build();
    let ccdx = check_against_cargo_cyclonedx(&p, "hello", &[]);
    assert_eq!(
        ccdx.required,
        BTreeSet::from(["hello@0.1.0".to_string(), "itoa@1.0.19".to_string()])
    );
}

/// The features project through every peer: cargo-cyclonedx agrees with kiln crate for
/// crate (scopes mapped); syft and trivy find no crate in the image (a plain, stripped
/// Rust binary carries no dependency list: they would need cargo-auditable) and, on the
/// sources, read `Cargo.lock`, which also pins crates the binary does not contain
/// (cfg(windows), dev-only, build-only, unscoped). Each peer's findings are printed.
#[test]
fn features_project_through_every_peer() {
    let p = Project::from_testdata("features", FEATURES_TOML);
    p.build();
    let out = p.out().join("features");
    let kiln: BTreeMap<String, String> = crates(&read_json(&out.join("sbom.cdx.json")))
        .into_iter()
        .map(|(k, (s, _))| (k, s))
        .collect();
    eprintln!("kiln: {kiln:?}");
    let ccdx = check_against_cargo_cyclonedx(&p, "features", &["fast"]);
    eprintln!(
        "cargo-cyclonedx: required {:?}, excluded {:?}",
        ccdx.required, ccdx.excluded
    );
    assert!(
        ccdx.excluded.contains("autocfg@1.5.1"),
        "the build-dependency is excluded by cargo-cyclonedx too"
    );

    let work = tempfile::tempdir().unwrap();
    for (peer, theirs) in image_peers(&out, work.path()) {
        eprintln!("{peer} on the image: {theirs:?}");
        let missed: Vec<_> = theirs.iter().filter(|k| !kiln.contains_key(*k)).collect();
        assert!(
            missed.is_empty(),
            "{peer} found crates kiln did not: {missed:?}"
        );
    }
    let src = work.path().join("src");
    copy_tree(&repo().join("testdata/features"), &src);
    for (peer, theirs) in source_peers(&src, work.path()) {
        let extra: Vec<_> = theirs.iter().filter(|k| !kiln.contains_key(*k)).collect();
        eprintln!("{peer} on the sources: {theirs:?}; not in the binary per kiln: {extra:?}");
        // A lockfile reader sees every crate kiln resolved for the binary (they are all
        // pinned by Cargo.lock); the runtime ones at least.
        let runtime_missing: Vec<_> = kiln
            .iter()
            .filter(|(k, s)| *s == "runtime" && !theirs.contains(*k))
            .map(|(k, _)| k)
            .collect();
        assert!(
            runtime_missing.is_empty(),
            "{peer} on the sources lacks runtime crates {runtime_missing:?}: is it reading Cargo.lock?"
        );
    }
}

#[test]
fn unsupported_spec_fails_before_writing() {
    let p = Project::hello();
    let err = run_err(p.kiln().args(["build", "--sbom-spec", "2.0"]));
    assert!(
        err.contains("--sbom-spec")
            && err.contains("2.0")
            && err.contains("1.6")
            && err.contains("1.5"),
        "{err}"
    );
    assert!(
        !err.contains("compiling"),
        "checked before compiling: {err}"
    );
    assert!(p.out_entries().is_empty());
}

#[test]
fn stale_cargo_lock_is_named() {
    let p = Project::hello();
    p.build();
    // A new dependency the lock does not have: `cargo build --locked` would refuse it.
    let manifest = p.path().join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest)
        .unwrap()
        .replace("itoa = \"1\"", "itoa = \"1\"\nryu = \"1\"");
    std::fs::write(&manifest, text).unwrap();
    let err = run_err(p.kiln().arg("sbom"));
    assert!(
        err.contains(&format!("{}", p.path().join("Cargo.lock").display()))
            || err.contains("Cargo.lock"),
        "{err}"
    );
    assert!(
        err.contains("stale") && err.contains("cargo update"),
        "{err}"
    );
}

#[test]
fn bad_dpkg_status_in_base_layer_names_layer_file_and_line() {
    let p = Project::hello();
    let mut layer = kiln_oci::Layer::new();
    layer
        .add_bytes(
            "var/lib/dpkg/status",
            b"Package: libc6\nStatus: install ok installed\nVersion: 2.36\n\n@@not a field@@\n"
                .to_vec(),
            0o644,
        )
        .unwrap();
    let image = kiln_oci::Image {
        sde: 0,
        base: None,
        layers: vec![(layer, "base".into())],
        config: kiln_oci::ImageConfig::new(kiln_oci::Platform::host()),
    };
    let built = image
        .write_layout(&p.path().join("base"), "latest")
        .unwrap();
    let layer_digest = built.layers[0].digest.to_string();
    let toml = format!(
        "{}base = {{ layout = \"base\", digest = \"{}\" }}\n",
        HELLO_TOML
            .replace("[[image.files]]", "__FILES__")
            .split("__FILES__")
            .next()
            .unwrap(),
        built.manifest.digest
    );
    std::fs::write(p.path().join("kiln.toml"), toml).unwrap();
    let err = run_err(p.kiln().arg("build"));
    assert!(
        err.contains(&layer_digest) && err.contains("/var/lib/dpkg/status:5"),
        "{err}"
    );
    assert!(p.out_entries().is_empty());
}
