//! `kiln repro`: two builds under varied conditions, diffed and explained. One repro of
//! `hello` (must be reproducible) and one of `unrepro` (must be flagged, with the right
//! causes); their output trees are reused for `repro compare`, `--min-ratio` and the
//! verdict-vs-diffoscope check, so the whole file costs four builds.

use std::collections::BTreeSet;
use std::path::Path;

use crate::support::*;
use serde_json::Value;

const UNREPRO_TOML: &str = r#"[project]
source_date_epoch = 1700000000

[[image]]
name = "unrepro"
package = "unrepro"
binaries = ["unrepro"]

[[image.files]]
source = "note.txt"
path = "/etc/unrepro/note.txt"
"#;

/// The files every image's output tree has today; evidence files (SBOM, provenance, VEX)
/// join them as they land.
const BASE_ARTIFACTS: usize = 8;

fn repro(p: &Project, out: &Path, extra: &[&str]) -> Value {
    let o = run_ok(
        p.kiln()
            .arg("repro")
            .arg("--json")
            .arg("--out")
            .arg(out)
            .args(extra),
    );
    serde_json::from_slice(&o.stdout).expect("repro --json prints the report")
}

fn artifacts(report: &Value) -> Vec<Value> {
    report["targets"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["artifacts"].as_array().unwrap().clone())
        .collect()
}

fn cause_names(v: &Value) -> BTreeSet<String> {
    v["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["cause"].as_str().unwrap().to_string())
        .collect()
}

/// diffoscope's verdict on a pair: 0 same, 1 different.
fn diffoscope_differs(a: &Path, b: &Path) -> bool {
    let out = kiln_core::process::command(tool("diffoscope"))
        .args(["--no-progress", "--text", "/dev/null"])
        .arg(a)
        .arg(b)
        .output()
        .unwrap();
    match out.status.code() {
        Some(0) => false,
        Some(1) => true,
        other => panic!(
            "diffoscope {} {} exited {other:?}: {}",
            a.display(),
            b.display(),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// For every artifact pair of the report, kiln's verdict equals diffoscope's exit code.
fn verdicts_agree_with_diffoscope(report: &Value, tree_a: &Path, tree_b: &Path) {
    for t in report["targets"].as_array().unwrap() {
        let name = t["name"].as_str().unwrap();
        for a in t["artifacts"].as_array().unwrap() {
            let (pa, pb) = (
                a["a"]["path"].as_str().unwrap(),
                a["b"]["path"].as_str().unwrap(),
            );
            let differs =
                diffoscope_differs(&tree_a.join(name).join(pa), &tree_b.join(name).join(pb));
            let verdict = a["verdict"].as_str().unwrap();
            assert_eq!(
                differs,
                verdict == "different",
                "{}: kiln says {verdict}, diffoscope says differs={differs}",
                a["path"]
            );
        }
    }
}

/// kiln's own default job layout (kiln.toml at the root of a Cargo workspace, the image a
/// package the workspace excludes), in a git repository, with a build script that needs
/// the commit: both copies build (outside any enclosing workspace), both see the same
/// source identity, and every artifact is identical.
#[test]
fn hello_is_reproducible_under_every_variation() {
    let p = Project::hello_in_workspace();
    let head = git(p.path(), &["rev-parse", "HEAD"]);
    let out = p.path().join("target/kiln/repro");
    let history = p.path().join("history.jsonl");
    let r = repro(
        &p,
        &out,
        &["--history", history.to_str().unwrap(), "--min-ratio", "1"],
    );

    assert_eq!(r["schema"], "https://kiln.dev/repro/report/v1");
    let total = artifacts(&r).len();
    assert!(total >= BASE_ARTIFACTS, "{total}");
    assert_eq!(
        r["ratio"]["artifacts"],
        serde_json::json!({"numerator": total, "denominator": total, "value": 1.0})
    );
    assert_eq!(
        r["ratio"]["targets"],
        serde_json::json!({"numerator": 1, "denominator": 1, "value": 1.0})
    );
    assert_eq!(r["targets"][0]["status"], "reproducible");
    let paths: Vec<&str> = r["targets"][0]["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["path"].as_str().unwrap())
        .collect();
    // The image's own files; evidence (SBOMs, provenance, their referrer manifests in the
    // layout) comes on top and is just as identical.
    for base in [
        "image.docker.tar",
        "image.oci.tar",
        "oci/blobs/manifests[0]",
        "oci/blobs/manifests[0]/config",
        "oci/blobs/manifests[0]/layers[0]",
        "oci/index.json",
        "oci/oci-layout",
        "summary.json",
    ] {
        assert!(paths.contains(&base), "{base} missing from {paths:?}");
    }

    // Every variation was applied here (root, FUSE, faketime, taskset present); the list
    // says how.
    let vars: Vec<(String, String)> = r["variations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["name"].as_str().unwrap().into(),
                v["status"].as_str().unwrap().into(),
            )
        })
        .collect();
    let names: Vec<&str> = vars.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "rebuild",
            "build_path",
            "clock",
            "cpus",
            "env",
            "file_order",
            "hostname",
            "locale",
            "path",
            "tz",
            "umask",
            "user"
        ]
    );
    for (n, s) in &vars {
        // faketime is installed by `cargo xtask test`, and kiln keeps its preload away from
        // the tools it starts, so the clock variation must apply. disorderfs needs FUSE,
        // which a container may lack: a shuffled copy stands in and says so.
        assert!(
            s == "applied" || (n == "file_order" && s == "fallback"),
            "{n}: {s}"
        );
    }
    // Different trees and a shifted clock: the two builds ran side by side (repro's cost
    // is then about two plain builds'), and the report says so.
    let rebuild = r["variations"][0]["detail"].as_str().unwrap_or_default();
    assert!(
        rebuild.contains("run side by side"),
        "rebuild record: {}",
        r["variations"][0]
    );

    // Reports and history.
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        html.contains("<svg")
            && !html.contains("<script")
            && !html.contains("http://cdn")
            && !html.contains("https://cdn")
    );
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        md.contains(&format!("| artifacts | {total} / {total} | 1.000 |")),
        "{md}"
    );
    assert_eq!(
        std::fs::read_to_string(&history).unwrap().lines().count(),
        1
    );

    let (ta, tb) = (out.join("trees/a"), out.join("trees/b"));
    verdicts_agree_with_diffoscope(&r, &ta, &tb);

    // Both builds name the original tree's commit and origin as their source.
    for tree in [&ta, &tb] {
        let prov: Value =
            serde_json::from_slice(&std::fs::read(tree.join("hello/provenance.json")).unwrap())
                .unwrap();
        let def = &prov["predicate"]["buildDefinition"];
        assert_eq!(
            def["resolvedDependencies"][0]["digest"]["gitCommit"],
            head,
            "{}: {def}",
            tree.display()
        );
        assert_eq!(
            def["resolvedDependencies"][0]["uri"],
            format!("git+https://example.invalid/kiln-test.git@{head}")
        );
        assert_eq!(def["externalParameters"]["source"]["revision"], head);
    }

    // compare on the two kept trees: the same verdicts.
    let c = serde_json::from_slice::<Value>(
        &run_ok(
            p.kiln()
                .args(["repro", "compare"])
                .arg(&ta)
                .arg(&tb)
                .arg("--json")
                .arg("--out")
                .arg(p.path().join("cmp")),
        )
        .stdout,
    )
    .unwrap();
    assert_eq!(c["mode"], "compare");
    assert_eq!(c["ratio"], r["ratio"]);
}

/// The same inside the committed provided toolchain root, as kiln's own default job builds:
/// every variation applies, the clock included (the root's own libfaketime, preloaded behind
/// a shim the root's cc compiled), and every artifact is identical.
#[test]
fn hello_in_the_provided_root_is_reproducible_under_every_variation() {
    let p = Project::provided_hello();
    let out = p.path().join("target/kiln/repro");
    let r = repro(&p, &out, &["--min-ratio", "1"]);
    assert_eq!(r["targets"][0]["status"], "reproducible", "{r:#}");
    let total = artifacts(&r).len();
    assert!(total >= BASE_ARTIFACTS, "{total}");
    assert_eq!(r["ratio"]["artifacts"]["numerator"], total);
    for v in r["variations"].as_array().unwrap() {
        let (n, s) = (v["name"].as_str().unwrap(), v["status"].as_str().unwrap());
        assert!(
            s == "applied" || (n == "file_order" && s == "fallback"),
            "{n}: {s}: {v}"
        );
    }
    let (ta, tb) = (out.join("trees/a"), out.join("trees/b"));
    for tree in [&ta, &tb] {
        let summary: Value =
            serde_json::from_slice(&std::fs::read(tree.join("hello/summary.json")).unwrap())
                .unwrap();
        assert_eq!(summary["sandbox"], "root", "{}", tree.display());
    }
    // Build B's log shows the shift came from inside the root.
    let log = std::fs::read_to_string(out.join("logs/build-b.log")).unwrap();
    assert!(
        log.contains("FAKETIME=")
            && log.contains(":/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"),
        "{log}"
    );
    verdicts_agree_with_diffoscope(&r, &ta, &tb);
}

#[test]
fn unrepro_is_flagged_with_each_cause() {
    let p = Project::from_testdata("unrepro", UNREPRO_TOML);
    let out = p.path().join("target/kiln/repro");
    let history = p.path().join("history.jsonl");
    // A previous run in the history, so the chart has a line.
    std::fs::write(&history, "{\"artifacts_identical\":8,\"artifacts_ratio\":1.0,\"artifacts_total\":8,\"mode\":\"rebuild\",\"targets_ratio\":1.0,\"targets_reproducible\":1,\"targets_total\":1,\"time\":\"2025-01-01T00:00:00Z\"}\n").unwrap();
    let r = repro(&p, &out, &["--history", history.to_str().unwrap()]);

    // The binary differs, so its layer does; the config names the layer's diff_id, the
    // manifest the config, index.json the manifest; both archives carry those blobs and
    // summary.json every digest. Only oci-layout stays the same.
    let arts = artifacts(&r);
    let differing: BTreeSet<&str> = arts
        .iter()
        .filter(|a| a["verdict"] == "different")
        .map(|a| a["path"].as_str().unwrap())
        .collect();
    let base_differing: BTreeSet<&str> = [
        "image.docker.tar",
        "image.oci.tar",
        "oci/blobs/manifests[0]",
        "oci/blobs/manifests[0]/config",
        "oci/blobs/manifests[0]/layers[0]",
        "oci/index.json",
        "summary.json",
    ]
    .into();
    assert!(differing.is_superset(&base_differing), "{differing:?}");
    let total = arts.len();
    let identical = arts.iter().filter(|a| a["verdict"] == "identical").count();
    // What must stay identical: oci-layout, and the config blobs of the evidence referrer
    // manifests (the fixed empty config of OCI 1.1 artifacts). Everything else carries
    // the binary's digest, directly or through another digest.
    let same: BTreeSet<&str> = arts
        .iter()
        .filter(|a| a["verdict"] == "identical")
        .map(|a| a["path"].as_str().unwrap())
        .collect();
    let expected_same: BTreeSet<&str> = arts
        .iter()
        .map(|a| a["path"].as_str().unwrap())
        .filter(|p| {
            *p == "oci/oci-layout"
                || (p.starts_with("oci/blobs/manifests[")
                    && !p.starts_with("oci/blobs/manifests[0]")
                    && p.ends_with("]/config"))
        })
        .collect();
    assert_eq!(same, expected_same);
    match total {
        // The image alone: 1 identical (oci/oci-layout) of 8.
        BASE_ARTIFACTS => {
            assert_eq!(
                r["ratio"]["artifacts"],
                serde_json::json!({"numerator": 1, "denominator": 8, "value": 0.125})
            );
            assert_eq!(differing, base_differing);
        }
        // With SBOMs (CycloneDX, SPDX) and provenance, each as a file and as a referrer
        // manifest in the layout: 2 identical (oci-layout, the referrers' empty config) of 18.
        18 => assert_eq!(
            r["ratio"]["artifacts"],
            serde_json::json!({"numerator": 2, "denominator": 18, "value": 2.0 / 18.0})
        ),
        other => panic!("unexpected artifact count {other}: update this test with the new outputs"),
    }
    assert_eq!(r["ratio"]["artifacts"]["numerator"], identical);
    assert_eq!(r["ratio"]["artifacts"]["denominator"], total);
    assert_eq!(
        r["ratio"]["targets"],
        serde_json::json!({"numerator": 0, "denominator": 1, "value": 0.0})
    );
    assert_eq!(r["targets"][0]["status"], "unreproducible");

    // The causes, each pointed at a variation that exposes it.
    let t = &r["targets"][0];
    let causes = cause_names(t);
    // Every leak named by its own cause, and nothing else: the HashMap's per-process order
    // is randomness (not a directory order), the host name is `hostname`.
    assert_eq!(
        causes,
        ["build_path", "hostname", "randomness", "timestamp"]
            .map(String::from)
            .into(),
        "{t}"
    );
    for c in t["causes"].as_array().unwrap() {
        assert!(!c["exposed_by"].as_array().unwrap().is_empty(), "{c}");
    }
    let exposed = |cause: &str| -> Vec<String> {
        t["causes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["cause"] == cause)
            .unwrap()["exposed_by"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    let clock_applied = r["variations"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v["name"] == "clock" && v["status"] == "applied");
    assert!(exposed("timestamp").contains(&"rebuild".to_string()));
    assert_eq!(
        exposed("timestamp").contains(&"clock".to_string()),
        clock_applied
    );
    assert_eq!(exposed("build_path"), ["build_path"]);
    assert_eq!(exposed("hostname"), ["hostname"]);
    assert_eq!(exposed("randomness"), ["rebuild"]);
    let clock = r["variations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "clock")
        .unwrap()["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        clock.contains("FAKETIME=+") && clock.contains("build scripts and proc-macros"),
        "{clock}"
    );

    // The layer: found inside the tar, in the binary, in .rodata; the config, manifest,
    // index and summary only carry derived (digest) differences.
    let layer = arts
        .iter()
        .find(|a| a["path"] == "oci/blobs/manifests[0]/layers[0]")
        .unwrap();
    assert_eq!(layer["kind"], "gzip");
    let locs: Vec<&str> = layer["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["location"].as_str().unwrap())
        .collect();
    assert!(
        locs.iter()
            .any(|l| l.starts_with("usr/local/bin/unrepro ▸ ELF section .rodata")),
        "{locs:?}"
    );
    let by_cause = |cause: &str| {
        layer["differences"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["cause"] == cause)
            .cloned()
            .unwrap_or_else(|| panic!("no {cause} in the layer"))
    };
    let ts = by_cause("timestamp");
    assert!(
        ts["a"].as_str().unwrap().len() >= 10 && ts["a"] != ts["b"],
        "{ts}"
    );
    // The build time stored as an integer is found as one, and build B's is about three
    // years later: the clock variation reached the build script.
    let int = layer["differences"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["what"].as_str().unwrap().starts_with("integer timestamp"))
        .unwrap_or_else(|| panic!("no integer timestamp in {layer}"));
    assert_eq!(int["cause"], "timestamp");
    let secs = |v: &Value| -> u64 {
        v.as_str()
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let shifted = secs(&int["b"]) as i64 - secs(&int["a"]) as i64;
    assert!(
        (2 * 365 * 86400..4 * 366 * 86400).contains(&shifted),
        "build B's clock was shifted by {shifted} s: {int}"
    );
    assert!(
        by_cause("hostname")["b"]
            .as_str()
            .unwrap()
            .contains("kiln-repro-host")
    );
    assert!(
        by_cause("build_path")["b"]
            .as_str()
            .unwrap()
            .contains("varied-build-path")
    );
    for path in [
        "oci/blobs/manifests[0]/config",
        "oci/blobs/manifests[0]",
        "oci/index.json",
        "summary.json",
    ] {
        let a = arts.iter().find(|a| a["path"] == path).unwrap();
        assert!(
            a["differences"]
                .as_array()
                .unwrap()
                .iter()
                .all(|d| d["cause"] == "derived"),
            "{path}: {a}"
        );
        assert!(a["causes"].as_array().unwrap().is_empty(), "{path}");
    }
    let config = arts
        .iter()
        .find(|a| a["path"] == "oci/blobs/manifests[0]/config")
        .unwrap();
    assert_eq!(config["differences"][0]["location"], "$.rootfs.diff_ids[0]");

    // History appended; the chart has both runs.
    assert_eq!(
        std::fs::read_to_string(&history).unwrap().lines().count(),
        2
    );
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        html.contains("<svg")
            && html.contains("<polyline")
            && html.contains("2025-01-01T00:00:00Z")
    );

    let (ta, tb) = (out.join("trees/a"), out.join("trees/b"));
    verdicts_agree_with_diffoscope(&r, &ta, &tb);

    // `compare` of the same trees, as if built elsewhere: same verdicts and, without
    // knowing the build dirs, still a build path (an absolute path under /tmp).
    let cmp_out = p.path().join("cmp");
    let c = serde_json::from_slice::<Value>(
        &run_ok(
            p.kiln()
                .args(["repro", "compare"])
                .arg(&ta)
                .arg(&tb)
                .args(["--json", "--diffoscope", "--out"])
                .arg(&cmp_out),
        )
        .stdout,
    )
    .unwrap();
    assert_eq!(c["ratio"], r["ratio"]);
    let ccauses = cause_names(&c["targets"][0]);
    for cause in ["timestamp", "randomness", "build_path"] {
        assert!(
            ccauses.contains(cause),
            "compare: {cause} not among {ccauses:?}"
        );
    }
    // --diffoscope attached a report to every differing artifact.
    for a in artifacts(&c).iter().filter(|a| a["verdict"] == "different") {
        let rel = a["diffoscope"]
            .as_str()
            .unwrap_or_else(|| panic!("no diffoscope for {}", a["path"]));
        assert!(cmp_out.join(rel).is_file());
    }

    // --min-ratio: 0.125 < 0.8 fails, naming the ratio; 0.1 passes.
    let err = run_err(
        p.kiln()
            .args(["repro", "compare"])
            .arg(&ta)
            .arg(&tb)
            .args(["--min-ratio", "0.8", "--out"])
            .arg(p.path().join("cmp2")),
    );
    assert!(err.contains("below --min-ratio 0.8"), "{err}");
    run_ok(
        p.kiln()
            .args(["repro", "compare"])
            .arg(&ta)
            .arg(&tb)
            .args(["--min-ratio", "0.1", "--out"])
            .arg(p.path().join("cmp3")),
    );
}

#[test]
fn bad_variations_file_names_key_and_file() {
    let p = Project::hello();
    let f = p.path().join("v.toml");
    std::fs::write(&f, "[tz]\nenabled = true\nvalue = \"UTC\"\nzone = 1\n").unwrap();
    let err = run_err(p.kiln().arg("repro").arg("--variations").arg(&f));
    assert!(err.contains("v.toml") && err.contains("zone"), "{err}");
}

/// A target that fails to build makes `repro` fail, and every report quotes the error.
#[test]
fn a_failed_build_fails_the_run_and_the_report_quotes_the_error() {
    let p = Project::hello();
    std::fs::write(
        p.path().join("src/main.rs"),
        "fn main() {\n    println!(\"{}\", no_such_value);\n}\n",
    )
    .unwrap();
    let out = p.path().join("target/kiln/repro");
    let err = run_err(p.kiln().arg("repro").arg("--out").arg(&out));
    assert!(err.contains("target `hello` failed to build"), "{err}");
    assert!(err.contains("cannot find value `no_such_value`"), "{err}");
    let r: Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    let t = &r["targets"][0];
    assert_eq!(t["status"], "failed_to_build");
    let error: Vec<&str> = t["error"]
        .as_array()
        .unwrap_or_else(|| panic!("no error lines: {t}"))
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(
        error
            .iter()
            .any(|l| l.contains("cannot find value `no_such_value`")),
        "{error:?}"
    );
    for f in ["report.md", "report.html"] {
        let text = std::fs::read_to_string(out.join(f)).unwrap();
        assert!(text.contains("no_such_value"), "{f}: {text}");
    }
    // The logs stay for a closer look.
    assert!(out.join("logs/build-a.log").is_file());
}
