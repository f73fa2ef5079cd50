//! The real-world corpus end to end: the projects of testdata/corpus/corpus.toml with the
//! smallest dependency graphs are fetched by digest, built and rebuilt by `kiln corpus`
//! inside the committed toolchain root under the default variations (the clock included), and must come out reproducible — with diffoscope agreeing
//! on every artifact pair. (The nightly workflow runs the whole corpus.)
//!
//! `SMALL` holds hexyl (33 crates) and ripgrep (34: a workspace whose optional grep-pcre2 is
//! locked but never compiled, so the SBOM step must read its manifest from the verified
//! archive, issue 10 defect 2).

use std::path::{Path, PathBuf};

use crate::support::*;

fn files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path().strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

/// The projects the suite runs (each costs two release builds, one on a single core).
const SMALL: &[&str] = &["hexyl", "ripgrep"];

#[test]
fn the_smallest_corpus_projects_are_reproducible_and_diffoscope_agrees() {
    let work = tempfile::Builder::new()
        .prefix("kiln-corpus-test-")
        .tempdir()
        .unwrap();
    let out = work.path().join("report");
    // Inside the committed toolchain root: the same toolchain on any machine, and repro's
    // clock variation through the root's own libfaketime.
    let mut cmd = with_toolroot(kiln(), None);
    cmd.current_dir(repo())
        .args(["corpus", "--no-overhead", "--toolchain-root", PROVIDED_ROOT]);
    for name in SMALL {
        cmd.args(["--only", name]);
    }
    run_ok(
        cmd.arg("--work")
            .arg(work.path().join("work"))
            .arg("--out")
            .arg(&out),
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert!(
        std::fs::read_to_string(out.join("report.md"))
            .unwrap()
            .contains(&format!(
                "{n} of {n} projects reproducible",
                n = SMALL.len()
            ))
    );
    let projects = report["projects"].as_array().unwrap();
    assert_eq!(projects.len(), SMALL.len());
    for p in projects {
        assert_eq!(p["verdict"], "reproducible", "{p:#}");
        assert!(p["artifacts_total"].as_u64().unwrap() > 0, "{p:#}");
        assert_eq!(p["artifacts_identical"], p["artifacts_total"], "{p:#}");
        assert_eq!(p["causes"].as_array().unwrap().len(), 0, "{p:#}");
    }

    // diffoscope's verdict on every artifact pair of hexyl equals kiln's (identical).
    let hexyl = &projects[0];
    assert_eq!(hexyl["name"], "hexyl");
    let repro_dir = Path::new(hexyl["repro_dir"].as_str().unwrap());
    let trees = repro_dir.join("trees");
    let (a, b) = (trees.join("a"), trees.join("b"));
    // Both builds ran inside the root, the second with its clock shifted.
    let repro: serde_json::Value =
        serde_json::from_slice(&std::fs::read(repro_dir.join("report.json")).unwrap()).unwrap();
    let clock = repro["variations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "clock")
        .unwrap();
    assert_eq!(clock["status"], "applied", "{clock}");
    for t in [&a, &b] {
        let summary: serde_json::Value =
            serde_json::from_slice(&std::fs::read(t.join("hexyl/summary.json")).unwrap()).unwrap();
        assert_eq!(summary["sandbox"], "root", "{}", t.display());
    }
    let pairs = files(&a);
    assert_eq!(pairs, files(&b), "the two trees hold different files");
    assert!(pairs.len() >= 8, "{pairs:?}");
    let diffoscope = tool("diffoscope");
    for rel in &pairs {
        let status = kiln_core::process::command(&diffoscope)
            .args(["--no-progress", "--text", "/dev/null"])
            .arg(a.join(rel))
            .arg(b.join(rel))
            .status()
            .unwrap();
        assert_eq!(
            status.code(),
            Some(0),
            "kiln says identical, diffoscope says {rel:?} differs"
        );
    }
}
