//! End-to-end: `kiln evidence pack` on a built image: every file hashed and given a role,
//! the same bytes twice, and bad input (a missing scan, two scans of one name, an image
//! not built) failing clearly with nothing written.

use crate::support::*;

#[test]
fn evidence_pack_lists_every_file_and_is_reproducible() {
    let p = Project::hello();
    let work = tempfile::tempdir().unwrap();
    let scan = work.path().join("trivy.sarif");
    std::fs::write(&scan, r#"{"version":"2.1.0","runs":[]}"#).unwrap();

    // Not built yet: a clear error, nothing written.
    let dest = work.path().join("pack");
    let e = run_err(
        p.kiln()
            .args(["evidence", "pack", "--out"])
            .arg(&dest)
            .arg("--sarif")
            .arg(&scan),
    );
    assert!(
        e.contains("image `hello` is not built") && e.contains("fix: build it first"),
        "{e}"
    );
    assert!(!dest.exists());

    p.build();
    let out = run_ok(
        p.kiln()
            .args(["evidence", "pack", "--out"])
            .arg(&dest)
            .arg("--sarif")
            .arg(&scan),
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("wrote the evidence pack of hello"));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dest.join("manifest.json")).unwrap()).unwrap();
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(p.out().join("hello/summary.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["schema"], "https://kiln.dev/evidence-pack/v1");
    assert_eq!(manifest["digest"], summary["digest"]);
    let files = manifest["files"].as_array().unwrap();
    let paths: Vec<&str> = files.iter().map(|f| f["path"].as_str().unwrap()).collect();
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(paths, sorted, "manifest.json lists files by path");
    for (path, role) in [
        ("summary.json", "summary"),
        ("sbom.cdx.json", "sbom"),
        ("sbom.spdx.json", "sbom"),
        ("provenance.json", "provenance"),
        ("scans/trivy.sarif", "scan"),
    ] {
        let f = files
            .iter()
            .find(|f| f["path"] == path)
            .unwrap_or_else(|| panic!("{path} missing: {manifest}"));
        assert_eq!(f["role"], role, "{f}");
    }
    assert!(
        files.iter().any(|f| f["role"] == "toolchain-lock"),
        "{manifest}"
    );
    assert!(
        !paths
            .iter()
            .any(|p| p.starts_with("oci") || p.ends_with(".tar")),
        "{paths:?}"
    );
    // Every file is there, with the sha256 and size the manifest gives; nothing else is.
    let tree = read_tree(&dest);
    assert_eq!(tree.len(), files.len() + 1, "{:?}", tree.keys());
    for f in files {
        let bytes = &tree[f["path"].as_str().unwrap()];
        assert_eq!(f["sha256"], kiln_core::Digest::of(bytes).to_string());
        assert_eq!(f["size"], bytes.len());
    }
    assert_eq!(
        tree["sbom.cdx.json"],
        std::fs::read(p.out().join("hello/sbom.cdx.json")).unwrap()
    );

    // The same inputs give the same bytes.
    let again = work.path().join("pack2");
    run_ok(
        p.kiln()
            .args(["evidence", "pack", "--out"])
            .arg(&again)
            .arg("--sarif")
            .arg(&scan),
    );
    assert_eq!(read_tree(&again), tree);

    // A scan that is not there, or two scans of one name: errors, the old pack untouched.
    let e = run_err(
        p.kiln()
            .args(["evidence", "pack", "--out"])
            .arg(&dest)
            .arg("--osv")
            .arg(work.path().join("missing.json")),
    );
    assert!(e.contains("missing.json: cannot read"), "{e}");
    std::fs::create_dir_all(work.path().join("other")).unwrap();
    let twin = work.path().join("other/trivy.sarif");
    std::fs::write(&twin, "{}").unwrap();
    let e = run_err(
        p.kiln()
            .args(["evidence", "pack", "--out"])
            .arg(&dest)
            .arg("--sarif")
            .arg(&scan)
            .arg("--sarif")
            .arg(&twin),
    );
    assert!(e.contains("would both be `scans/trivy.sarif`"), "{e}");
    assert_eq!(read_tree(&dest), tree, "a failed pack changed the old one");
}
