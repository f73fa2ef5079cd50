//! kiln-vex against the fixtures in `testdata/` (no compiler, no SBOM step): golden
//! digests of the three documents, the gate's verdict row by row, and every kind of bad
//! input failing with a message that names the file and the entry.
//!
//! Golden digests live in `testdata/golden/vex/digests.json`, next to the documents
//! themselves (for review). Update them only deliberately, with `KILN_BLESS_GOLDEN=1`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kiln_vex::{Advisory, Documents, Sbom, Severity, Statements, findings, gate, osv, sarif};

const SDE: u64 = 1_700_000_000;

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
}

fn sbom() -> Sbom {
    Sbom::load(&testdata().join("vex/sbom.cdx.json")).unwrap()
}

fn statements(sbom: &Sbom) -> Statements {
    Statements::load(&testdata().join("vex/hello/statements.toml"), sbom).unwrap()
}

fn advisories() -> Vec<Advisory> {
    osv::load_dir(&testdata().join("osv/hello")).unwrap()
}

fn documents() -> Documents {
    let sbom = sbom();
    kiln_vex::documents(&sbom, &statements(&sbom), &advisories(), SDE).unwrap()
}

#[test]
fn golden_documents() {
    let docs = documents();
    let dir = testdata().join("golden/vex");
    let files = [
        (kiln_vex::CSAF_FILE, &docs.csaf),
        (kiln_vex::OPENVEX_FILE, &docs.openvex),
        (kiln_vex::CDX_FILE, &docs.cdx),
    ];
    let digests: BTreeMap<&str, String> = files
        .iter()
        .map(|(n, b)| (*n, kiln_core::Digest::of(b).to_string()))
        .collect();
    if std::env::var_os("KILN_BLESS_GOLDEN").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        for (n, b) in files {
            std::fs::write(dir.join(n), b).unwrap();
        }
        std::fs::write(
            dir.join("digests.json"),
            kiln_core::canonical::to_vec_pretty(&digests).unwrap(),
        )
        .unwrap();
        return;
    }
    let pinned: BTreeMap<String, String> =
        serde_json::from_slice(&std::fs::read(dir.join("digests.json")).unwrap()).unwrap();
    for (n, b) in files {
        let got = kiln_core::Digest::of(b).to_string();
        assert_eq!(
            Some(&got),
            pinned.get(n),
            "{n} changed; its new content is:\n{}\n(re-pin deliberately with KILN_BLESS_GOLDEN=1)",
            String::from_utf8_lossy(b)
        );
        assert_eq!(
            std::fs::read(dir.join(n)).unwrap(),
            *b,
            "testdata/golden/vex/{n} is stale"
        );
    }
}

#[test]
fn documents_are_deterministic_and_depend_on_their_inputs() {
    assert_eq!(documents(), documents());
    let sbom = sbom();
    let other_time =
        kiln_vex::documents(&sbom, &statements(&sbom), &advisories(), SDE + 1).unwrap();
    assert_ne!(other_time.csaf, documents().csaf);
    // Advisory order does not matter.
    let mut rev = advisories();
    rev.reverse();
    assert_eq!(
        kiln_vex::documents(&sbom, &statements(&sbom), &rev, SDE).unwrap(),
        documents()
    );
}

#[test]
fn documents_say_what_the_fixtures_say() {
    let docs = documents();
    let csaf: serde_json::Value = serde_json::from_slice(&docs.csaf).unwrap();
    assert_eq!(csaf["document"]["category"], "csaf_vex");
    assert_eq!(
        csaf["document"]["tracking"]["current_release_date"],
        "2023-11-14T22:13:20Z"
    );
    assert!(
        csaf["document"]["tracking"]["id"]
            .as_str()
            .unwrap()
            .starts_with("KILN-VEX-")
    );
    assert!(csaf.get("$schema").is_none());
    let vulns = csaf["vulnerabilities"].as_array().unwrap();
    let by_name = |n: &str| {
        vulns
            .iter()
            .find(|v| {
                v["cve"] == n
                    || v["ids"]
                        .as_array()
                        .is_some_and(|ids| ids.iter().any(|i| i["text"] == n))
            })
            .unwrap_or_else(|| panic!("{n} missing"))
    };
    let v1 = by_name("CVE-2099-0001");
    assert_eq!(
        v1["flags"][0]["label"],
        "vulnerable_code_not_in_execute_path"
    );
    assert_eq!(
        v1["product_status"]["known_not_affected"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(v1["ids"][0]["text"], "KILN-TEST-2026-0001");
    // The critical without a statement is listed as under investigation, not left out.
    assert!(by_name("KILN-TEST-2026-0002")["product_status"]["under_investigation"].is_array());
    assert!(
        by_name("KILN-TEST-2026-0003")["remediations"][0]["details"]
            .as_str()
            .unwrap()
            .starts_with("Upgrade itoa")
    );
    assert!(by_name("CVE-2099-0004")["product_status"]["fixed"].is_array());
    // Status product ids are relationship ids defined in the product tree.
    let rel_ids: Vec<&str> = csaf["product_tree"]["relationships"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["full_product_name"]["product_id"].as_str().unwrap())
        .collect();
    for v in vulns {
        for (_, ids) in v["product_status"].as_object().unwrap() {
            for id in ids.as_array().unwrap() {
                assert!(rel_ids.contains(&id.as_str().unwrap()));
            }
        }
    }

    let ov: serde_json::Value = serde_json::from_slice(&docs.openvex).unwrap();
    assert_eq!(ov["@context"], "https://openvex.dev/ns/v0.2.0");
    assert!(
        ov["@id"]
            .as_str()
            .unwrap()
            .starts_with("https://kiln.dev/vex/")
    );
    let st = ov["statements"].as_array().unwrap();
    assert_eq!(st.len(), 5);
    assert!(st.iter().all(|s| {
        s["products"][0]["@id"]
            .as_str()
            .unwrap()
            .starts_with("pkg:oci/hello@")
    }));
    let under = st
        .iter()
        .find(|s| s["vulnerability"]["name"] == "RUSTSEC-2099-0005")
        .unwrap();
    assert_eq!(under["status"], "under_investigation");

    let cdx: serde_json::Value = serde_json::from_slice(&docs.cdx).unwrap();
    assert_eq!(cdx["specVersion"], "1.6");
    assert!(
        cdx["serialNumber"]
            .as_str()
            .unwrap()
            .starts_with("urn:uuid:")
    );
    let v1 = cdx["vulnerabilities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["id"] == "CVE-2099-0001")
        .unwrap();
    assert_eq!(v1["analysis"]["state"], "not_affected");
    assert_eq!(v1["analysis"]["justification"], "code_not_reachable");
    assert_eq!(
        v1["affects"][0]["ref"],
        "urn:cdx:3f1c2a8e-5b7d-5e41-9c0a-6d2e8f4b1a07/1#pkg:cargo/itoa@1.0.19"
    );
    assert_eq!(v1["ratings"][0]["severity"], "critical");
}

fn gate_report(fail_on: Severity) -> gate::GateReport {
    let sbom = sbom();
    let st = statements(&sbom);
    let mut all: Vec<_> = advisories()
        .iter()
        .flat_map(|a| a.findings(&sbom, true))
        .collect();
    all.extend(sarif::load(&testdata().join("vex/hello/scan.sarif.json"), &sbom).unwrap());
    gate::evaluate(
        &sbom,
        Some(&st),
        &findings::merge(all),
        fail_on,
        &testdata(),
    )
}

#[test]
fn gate_rows_follow_the_fixtures() {
    let r = gate_report(Severity::High);
    let rows: Vec<(&str, &str, &str, bool)> = r
        .findings
        .iter()
        .map(|f| {
            (
                f.id.as_str(),
                f.component.as_str(),
                f.status.as_str(),
                f.blocking,
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            // The scanner's CVE and the advisory's KILN id are one finding.
            (
                "CVE-2099-0001",
                "pkg:cargo/itoa@1.0.19",
                "not_affected",
                false
            ),
            ("CVE-2099-0009", "serde@1.0.228", "not_in_sbom", false),
            ("KILN-TEST-2026-0002", "pkg:cargo/itoa@1.0.19", "none", true),
            (
                "KILN-TEST-2026-0003",
                "pkg:cargo/itoa@1.0.19",
                "affected",
                false
            ),
            (
                "KILN-TEST-2026-0004",
                "pkg:cargo/itoa@1.0.19",
                "fixed",
                false
            ),
            (
                "RUSTSEC-2099-0005",
                "pkg:cargo/itoa@1.0.19",
                "under_investigation",
                false
            ),
        ]
    );
    assert!(r.blocked);
    assert_eq!(
        (r.counts.findings, r.counts.blocking, r.counts.not_in_sbom),
        (6, 1, 1)
    );
    let first = &r.findings[0];
    assert_eq!(first.severity, Severity::Critical);
    assert!(first.aliases.contains("KILN-TEST-2026-0001"));
    assert_eq!(first.sources.len(), 2, "{:?}", first.sources);
    assert!(
        first.sources.contains("osv/hello/KILN-TEST-2026-0001.json"),
        "sources are relative to the project: {:?}",
        first.sources
    );
    let table = r.table();
    assert!(
        table.contains("KILN-TEST-2026-0002")
            && table.contains("BLOCKS")
            && table.contains("BLOCKED"),
        "{table}"
    );
    assert!(
        table.contains("serde@1.0.228 is not in the SBOM"),
        "{table}"
    );

    // At `medium`, the affected medium blocks too, and the under-investigation one.
    let r = gate_report(Severity::Medium);
    let blocking: Vec<&str> = r
        .findings
        .iter()
        .filter(|f| f.blocking)
        .map(|f| f.id.as_str())
        .collect();
    assert_eq!(
        blocking,
        [
            "KILN-TEST-2026-0002",
            "KILN-TEST-2026-0003",
            "RUSTSEC-2099-0005"
        ]
    );
}

#[test]
fn gate_passes_once_the_critical_is_triaged() {
    let sbom = sbom();
    let mut text = std::fs::read_to_string(testdata().join("vex/hello/statements.toml")).unwrap();
    text.push_str("\n[[statement]]\nvulnerability = \"CVE-2099-0002\"\ncomponent = \"pkg:cargo/itoa@1.0.19\"\nstatus = \"not_affected\"\njustification = \"vulnerable_code_cannot_be_controlled_by_adversary\"\nimpact_statement = \"hello is single-threaded.\"\n");
    let st = Statements::parse(Path::new("vex/statements.toml"), text.as_bytes(), &sbom).unwrap();
    let all: Vec<_> = advisories()
        .iter()
        .flat_map(|a| a.findings(&sbom, true))
        .collect();
    let r = gate::evaluate(
        &sbom,
        Some(&st),
        &findings::merge(all),
        Severity::High,
        &testdata(),
    );
    assert!(!r.blocked, "{}", r.table());
    assert!(r.table().contains("gate: passed"));
}

/// The error as the CLI shows it: the message, then the fix on its own line.
fn shown(e: kiln_vex::VexError) -> String {
    match kiln_core::Hint::hint(&e) {
        Some(fix) => format!("{e}\n  fix: {fix}"),
        None => e.to_string(),
    }
}

#[track_caller]
fn statements_error(body: &str, expect: &[&str]) {
    let text = format!("author = \"t\"\n{body}");
    let e = Statements::parse(Path::new("vex/statements.toml"), text.as_bytes(), &sbom())
        .map_err(shown)
        .unwrap_err();
    assert!(e.starts_with("vex/statements.toml: "), "{e}");
    for x in expect {
        assert!(e.contains(x), "expected `{x}` in: {e}");
    }
}

#[test]
fn bad_statements_name_file_and_entry() {
    let head =
        "[[statement]]\nvulnerability = \"CVE-2099-0001\"\ncomponent = \"pkg:cargo/itoa@1.0.19\"\n";
    statements_error(
        &format!("{head}status = \"wontfix\"\n"),
        &[
            "statement[0] (CVE-2099-0001)",
            "unknown status `wontfix`",
            "not_affected, affected, fixed, under_investigation",
        ],
    );
    statements_error(
        &format!("{head}status = \"not_affected\"\nimpact_statement = \"x\"\n"),
        &[
            "statement[0] (CVE-2099-0001)",
            "not_affected needs justification",
            "vulnerable_code_not_in_execute_path",
        ],
    );
    statements_error(
        &format!("{head}status = \"not_affected\"\njustification = \"component_not_present\"\n"),
        &["not_affected needs an impact_statement"],
    );
    statements_error(
        &format!(
            "{head}status = \"not_affected\"\njustification = \"because\"\nimpact_statement = \"x\"\n"
        ),
        &[
            "unknown justification `because`",
            "inline_mitigations_already_exist",
        ],
    );
    statements_error(
        &format!("{head}status = \"affected\"\n"),
        &["affected needs an action_statement"],
    );
    statements_error(
        &format!(
            "{head}status = \"fixed\"\n{head}status = \"affected\"\naction_statement = \"a\"\n"
        ),
        &["statement[1] (CVE-2099-0001)", "second statement"],
    );
    statements_error(
        "[[statement]]\nvulnerability = \"CVE-2099-0001\"\ncomponent = \"pkg:cargo/itoa@9.9.9\"\nstatus = \"fixed\"\n",
        &[
            "statement[0]",
            "pkg:cargo/itoa@9.9.9` is not in the SBOM",
            "the SBOM has pkg:cargo/itoa@1.0.19",
        ],
    );
    statements_error(
        "[[statement]]\nvulnerability = \"CVE-2099-0001\"\ncomponent = \"itoa\"\nstatus = \"fixed\"\n",
        &["statement[0]", "not a package URL"],
    );
    statements_error(
        &format!("{head}status = \"fixed\"\nseverity = \"high\"\n"),
        &["line 6", "unknown field `severity`"],
    );
    statements_error(
        &format!("{head}status = 3\n"),
        &["statement[0].status", "line 5"],
    );
    statements_error("", &["no [[statement]]"]);
    // Two statements designating the same component for the same vulnerability contradict.
    let sbom = sbom();
    let text = format!(
        "author = \"t\"\n{head}status = \"fixed\"\n[[statement]]\nvulnerability = \"CVE-2099-0001\"\ncomponent = \"pkg:cargo/itoa\"\nstatus = \"under_investigation\"\n"
    );
    let st = Statements::parse(Path::new("vex/statements.toml"), text.as_bytes(), &sbom).unwrap();
    let e = kiln_vex::documents(&sbom, &st, &[], SDE)
        .map_err(shown)
        .unwrap_err();
    assert!(
        e.contains("statement[1]") && e.contains("statement[0] already covers CVE-2099-0001"),
        "{e}"
    );
}

#[test]
fn malformed_sarif_and_osv_name_file_and_entry() {
    let sbom = sbom();
    let p = Path::new("scan.sarif.json");
    let e = sarif::parse(p, b"{\"version\": \"2.1.0\", \"runs\": [{\"tool\": {\"driver\": {}}, \"results\": [{\"ruleId\": \"X\", \"level\": 3}]}]}", &sbom).map_err(shown).unwrap_err();
    assert!(
        e.contains("scan.sarif.json") && e.contains("runs[0].results[0].level"),
        "{e}"
    );
    let e = sarif::parse(p, b"{\"version\": \"2.1.0\", \"runs\": [{\"tool\": {\"driver\": {}}, \"results\": [{\"ruleId\": \"X\", \"message\": {\"text\": \"?\"}}]}]}", &sbom).map_err(shown).unwrap_err();
    assert!(
        e.contains("runs[0].results[0]") && e.contains("cannot tell which package"),
        "{e}"
    );
    let e = sarif::parse(p, b"{\"version\": \"2.0.0\", \"runs\": []}", &sbom)
        .map_err(shown)
        .unwrap_err();
    assert!(e.contains("SARIF 2.1.0"), "{e}");
    let e = sarif::parse(p, b"[1,2", &sbom).map_err(shown).unwrap_err();
    assert!(e.contains("scan.sarif.json") && e.contains("line 1"), "{e}");

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.json"), br#"{"id": "KILN-TEST-X", "affected": [{"package": {"ecosystem": "crates.io", "name": "itoa"}, "ranges": [{"type": "SEMVER", "events": [{"fixed": "1.0.20"}]}]}]}"#).unwrap();
    let e = osv::load_dir(dir.path()).map_err(shown).unwrap_err();
    assert!(
        e.contains("bad.json")
            && e.contains("KILN-TEST-X: affected[0].ranges[0]")
            && e.contains("introduced"),
        "{e}"
    );
}

#[test]
fn debian_advisory_matches_by_dpkg_order() {
    let sbom_json = br#"{"bomFormat":"CycloneDX","specVersion":"1.6","serialNumber":"urn:uuid:00000000-0000-5000-8000-000000000001","version":1,
      "metadata":{"component":{"name":"app","purl":"pkg:oci/app@sha256%3A00"}},
      "components":[
        {"bom-ref":"deb-libc6","name":"libc6","version":"2.36-9+deb12u4","purl":"pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12"},
        {"bom-ref":"deb-libc6-new","name":"libc6","version":"2.36-9+deb12u10","purl":"pkg:deb/debian/libc6@2.36-9%2Bdeb12u10?arch=arm64&distro=debian-12"},
        {"bom-ref":"cargo-libc6","name":"libc6","version":"2.36.0","purl":"pkg:cargo/libc6@2.36.0"}]}"#;
    let sbom = Sbom::parse(Path::new("sbom.cdx.json"), sbom_json).unwrap();
    let adv = Advisory::load(&testdata().join("osv/debian/KILN-TEST-2026-0101.json")).unwrap();
    assert_eq!(adv.severity, Severity::High);
    let f = adv.findings(&sbom, true);
    let mut got: Vec<(&str, bool)> = f
        .iter()
        .map(|f| (f.component.as_ref().unwrap().bom_ref.as_str(), f.affected))
        .collect();
    got.sort();
    assert_eq!(got, [("deb-libc6", true), ("deb-libc6-new", false)]);
}

#[test]
fn write_for_project_opts_in_by_statements_and_writes_nothing_on_error() {
    let project = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    std::fs::copy(
        testdata().join("vex/sbom.cdx.json"),
        out.path().join("sbom.cdx.json"),
    )
    .unwrap();
    // No statements file: no VEX.
    assert!(
        kiln_vex::write_for_project(project.path(), out.path(), SDE)
            .unwrap()
            .is_empty()
    );
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 1);

    // A bad advisory: an error, and still nothing written.
    std::fs::create_dir_all(project.path().join("vex")).unwrap();
    std::fs::copy(
        testdata().join("vex/hello/statements.toml"),
        project.path().join("vex/statements.toml"),
    )
    .unwrap();
    std::fs::create_dir_all(project.path().join("advisories")).unwrap();
    std::fs::write(
        project.path().join("advisories/bad.json"),
        "{\"id\": \"X\", \"affected\": 1}",
    )
    .unwrap();
    let e = kiln_vex::write_for_project(project.path(), out.path(), SDE)
        .map_err(shown)
        .unwrap_err();
    assert!(
        e.contains("advisories/bad.json") && e.contains("affected"),
        "{e}"
    );
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 1);

    // With the fixture advisories: the golden documents.
    std::fs::remove_file(project.path().join("advisories/bad.json")).unwrap();
    for e in std::fs::read_dir(testdata().join("osv/hello")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(
            e.path(),
            project.path().join("advisories").join(e.file_name()),
        )
        .unwrap();
    }
    let written = kiln_vex::write_for_project(project.path(), out.path(), SDE).unwrap();
    assert_eq!(written.len(), 3);
    let docs = documents();
    assert_eq!(
        std::fs::read(out.path().join(kiln_vex::CSAF_FILE)).unwrap(),
        docs.csaf
    );
    assert_eq!(
        std::fs::read(out.path().join(kiln_vex::CDX_FILE)).unwrap(),
        docs.cdx
    );
}
