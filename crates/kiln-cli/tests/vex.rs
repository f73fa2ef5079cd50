//! VEX and the gate, end to end: a hello project with the triage statements and OSV
//! advisories of `testdata/vex` and `testdata/osv` (made-up TEST DATA), built by the real
//! CLI. Every VEX document kiln writes is checked by the independent validators (BSI's
//! csaf-validator-lib schema + mandatory tests, vexipy, CycloneDX's strict validator); the
//! gate passes or blocks exactly as the fixtures say; two builds write the same bytes.

use std::path::{Path, PathBuf};

use crate::support::*;

const VEX_FILES: [&str; 3] = ["vex.csaf.json", "vex.openvex.json", "vex.cdx.json"];

/// The hello project with statements in vex/ and advisories in advisories/.
fn vex_project() -> Project {
    let p = Project::hello();
    add_vex(&p);
    p
}

fn sarif() -> PathBuf {
    repo().join("testdata/vex/hello/scan.sarif.json")
}

const CSAF_CHECK: &str = r#"
import fs from 'node:fs'
import validate from '@secvisogram/csaf-validator-lib/validate.js'
import * as schema from '@secvisogram/csaf-validator-lib/schemaTests.js'
import * as mandatory from '@secvisogram/csaf-validator-lib/mandatoryTests.js'
const doc = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'))
const tests = [...Object.values(schema), ...Object.values(mandatory)]
const res = await validate(tests, doc)
const bad = res.tests.filter((t) => !t.isValid || t.errors.length > 0)
console.log(JSON.stringify({ isValid: res.isValid, ran: res.tests.length, bad }))
process.exit(res.isValid && bad.length === 0 && tests.length > 40 ? 0 : 1)
"#;

const OPENVEX_CHECK: &str = r#"
import sys
from vexipy.document import Document
doc = Document.model_validate_json(open(sys.argv[1]).read())
assert len(doc.statements) > 0
print("ok", len(doc.statements))
"#;

const CDX_CHECK: &str = r#"
import json, sys
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
raw = open(sys.argv[1]).read()
doc = json.loads(raw)
errors = JsonStrictValidator(SchemaVersion.from_version(doc["specVersion"])).validate_str(raw, all_errors=True)
if errors is not None:
    sys.exit(f"invalid: {errors!r}")
print("ok")
"#;

/// Runs all three validators on the VEX documents in `dir`.
fn validate_all(dir: &Path) {
    let out = node(CSAF_CHECK, &[dir.join("vex.csaf.json").as_os_str()]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"isValid\":true"));
    python(OPENVEX_CHECK, &[dir.join("vex.openvex.json").as_os_str()]);
    python(CDX_CHECK, &[dir.join("vex.cdx.json").as_os_str()]);
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(
        &std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap()
}

#[test]
fn fixture_documents_pass_the_validators() {
    // The golden documents (built from a fixed SBOM by kiln-vex's own tests) and the same
    // inputs run through the library here.
    validate_all(&repo().join("testdata/golden/vex"));
}

#[test]
fn build_writes_valid_deterministic_vex_and_the_gate_follows_the_fixtures() {
    let a = vex_project();
    let b = vex_project();
    a.build();
    b.build();
    let out_a = a.out().join("hello");
    let out_b = b.out().join("hello");
    assert!(
        out_a.join("sbom.cdx.json").is_file(),
        "the SBOM step did not write sbom.cdx.json"
    );
    for f in VEX_FILES {
        let (x, y) = (
            std::fs::read(out_a.join(f)).unwrap(),
            std::fs::read(out_b.join(f)).unwrap(),
        );
        assert!(x == y, "{f} differs between two builds of the same inputs");
    }
    validate_all(&out_a);
    // The attestation step attaches the VEX documents to the image as referrers.
    for f in VEX_FILES {
        let digest = kiln_core::Digest::of(&std::fs::read(out_a.join(f)).unwrap());
        assert!(
            out_a.join("oci/blobs/sha256").join(digest.hex()).is_file(),
            "{f} is not attached to the image in oci/"
        );
    }

    // The CycloneDX VEX points into this build's SBOM: its serial, its bom-refs.
    let sbom = json(&out_a.join("sbom.cdx.json"));
    let cdx = json(&out_a.join("vex.cdx.json"));
    let serial = sbom["serialNumber"]
        .as_str()
        .unwrap()
        .strip_prefix("urn:uuid:")
        .unwrap();
    let refs: Vec<String> = sbom["components"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["bom-ref"].as_str().map(String::from))
        .collect();
    for v in cdx["vulnerabilities"].as_array().unwrap() {
        let r = v["affects"][0]["ref"].as_str().unwrap();
        let frag = r
            .strip_prefix(&format!("urn:cdx:{serial}/{}#", sbom["version"]))
            .unwrap_or_else(|| panic!("{r} is not a BOM-Link into the SBOM"));
        assert!(
            refs.iter().any(|x| x == frag),
            "{frag} is not a bom-ref of the SBOM"
        );
    }
    // The CSAF product tree names the image by the SBOM's purl.
    let csaf = json(&out_a.join("vex.csaf.json"));
    let image_purl = sbom["metadata"]["component"]["purl"].as_str().unwrap();
    assert!(
        csaf["product_tree"]["full_product_names"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["product_identification_helper"]["purl"] == image_purl)
    );

    // The gate: the critical with no statement blocks, everything else does not.
    let out = a
        .kiln()
        .args(["gate", "--sarif"])
        .arg(sarif())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "gate should block:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("KILN-TEST-2026-0002") && stdout.contains("BLOCKED"),
        "{stdout}"
    );
    let gate = json(&out_a.join("gate.json"));
    assert_eq!(gate["blocked"], true);
    let row = |id: &str| {
        gate["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .unwrap_or_else(|| panic!("{id} missing from gate.json"))
            .clone()
    };
    let cleared = row("CVE-2099-0001");
    assert_eq!(
        (
            cleared["severity"].as_str(),
            cleared["status"].as_str(),
            cleared["blocking"].as_bool()
        ),
        (Some("critical"), Some("not_affected"), Some(false))
    );
    let open = row("KILN-TEST-2026-0002");
    assert_eq!(
        (
            open["severity"].as_str(),
            open["status"].as_str(),
            open["blocking"].as_bool()
        ),
        (Some("critical"), Some("none"), Some(true))
    );
    assert_eq!(
        row("KILN-TEST-2026-0003")["blocking"],
        false,
        "a medium is under the high threshold"
    );
    assert_eq!(row("KILN-TEST-2026-0004")["status"], "fixed");
    let absent = row("CVE-2099-0009");
    assert_eq!(
        (absent["status"].as_str(), absent["in_sbom"].as_bool()),
        (Some("not_in_sbom"), Some(false))
    );
    assert!(
        stdout.contains("serde@1.0.228 is not in the SBOM"),
        "{stdout}"
    );
    assert_eq!(gate["counts"]["blocking"], 1);

    // --fail-on critical still blocks on it; --fail-on medium adds the medium ones.
    let out = a
        .kiln()
        .args(["gate", "--fail-on", "medium", "--sarif"])
        .arg(sarif())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json(&out_a.join("gate.json"))["counts"]["blocking"], 3);

    // Triage the open critical as not_affected: the gate passes.
    let mut st = std::fs::read_to_string(a.path().join("vex/statements.toml")).unwrap();
    st.push_str("\n[[statement]]\nvulnerability = \"CVE-2099-0002\"\ncomponent = \"pkg:cargo/itoa@1.0.19\"\nstatus = \"not_affected\"\njustification = \"vulnerable_code_cannot_be_controlled_by_adversary\"\nimpact_statement = \"hello is single-threaded; no second thread can reuse the buffer.\"\n");
    std::fs::write(a.path().join("vex/statements.toml"), st).unwrap();
    let out = run_ok(a.kiln().args(["gate", "--sarif"]).arg(sarif()));
    assert!(String::from_utf8_lossy(&out.stdout).contains("gate: passed"));
    assert_eq!(json(&out_a.join("gate.json"))["blocked"], false);
}

/// A gate project whose "build" is the fixture SBOM put where the build would write it:
/// bad input needs no compiler.
fn gate_project() -> Project {
    let p = vex_project();
    let out = p.out().join("hello");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::copy(
        repo().join("testdata/vex/sbom.cdx.json"),
        out.join("sbom.cdx.json"),
    )
    .unwrap();
    p
}

#[track_caller]
fn gate_fails(p: &Project, extra: &[&std::ffi::OsStr], expect: &[&str]) {
    let out = p.kiln().arg("gate").args(extra).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "bad input must exit 2:\n{err}");
    for e in expect {
        assert!(err.contains(e), "expected `{e}` in:\n{err}");
    }
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        !p.out().join("hello/gate.json").exists(),
        "gate.json written despite bad input"
    );
}

#[test]
fn gate_bad_input_names_file_and_entry_and_writes_nothing() {
    let p = gate_project();
    let st = p.path().join("vex/statements.toml");
    let good = std::fs::read_to_string(&st).unwrap();

    std::fs::write(
        &st,
        good.replace("status = \"fixed\"", "status = \"wontfix\""),
    )
    .unwrap();
    gate_fails(
        &p,
        &[],
        &[
            "vex/statements.toml",
            "statement[2] (CVE-2099-0004)",
            "unknown status `wontfix`",
        ],
    );
    std::fs::write(
        &st,
        good.replace(
            "justification = \"vulnerable_code_not_in_execute_path\"\n",
            "",
        ),
    )
    .unwrap();
    gate_fails(
        &p,
        &[],
        &[
            "statement[0] (CVE-2099-0001)",
            "not_affected needs justification",
            "component_not_present",
        ],
    );
    std::fs::write(
        &st,
        good.replace("action_statement =", "# action_statement ="),
    )
    .unwrap();
    gate_fails(
        &p,
        &[],
        &[
            "statement[1] (KILN-TEST-2026-0003)",
            "affected needs an action_statement",
        ],
    );
    std::fs::write(
        &st,
        good.replace(
            "component = \"pkg:cargo/itoa@1.0.19\"\nstatus = \"under_investigation\"",
            "component = \"pkg:cargo/serde@1.0.228\"\nstatus = \"under_investigation\"",
        ),
    )
    .unwrap();
    gate_fails(
        &p,
        &[],
        &[
            "statement[3] (RUSTSEC-2099-0005)",
            "pkg:cargo/serde@1.0.228` is not in the SBOM",
        ],
    );
    std::fs::write(&st, &good).unwrap();

    let bad = tempfile::tempdir().unwrap();
    let sarif_bad = bad.path().join("scan.sarif.json");
    std::fs::write(
        &sarif_bad,
        std::fs::read_to_string(sarif())
            .unwrap()
            .replace("\"ruleIndex\": 2,", "\"ruleIndex\": 7,"),
    )
    .unwrap();
    gate_fails(
        &p,
        &["--sarif".as_ref(), sarif_bad.as_os_str()],
        &["scan.sarif.json", "runs[0].results[2]", "ruleIndex 7"],
    );
    std::fs::write(&sarif_bad, "{\"version\": \"2.1.0\", \"runs\": [").unwrap();
    gate_fails(
        &p,
        &["--sarif".as_ref(), sarif_bad.as_os_str()],
        &["scan.sarif.json", "line 1"],
    );
    let osv_bad = bad.path().join("KILN-TEST-BAD.json");
    std::fs::write(
        &osv_bad,
        std::fs::read_to_string(repo().join("testdata/osv/hello/KILN-TEST-2026-0001.json"))
            .unwrap()
            .replace("\"fixed\": \"1.0.20\"", "\"fixed\": \"one\""),
    )
    .unwrap();
    gate_fails(
        &p,
        &["--osv".as_ref(), osv_bad.as_os_str()],
        &[
            "KILN-TEST-BAD.json",
            "KILN-TEST-2026-0001: affected[0].ranges[0].events[1]",
            "`one`",
        ],
    );
    std::fs::copy(&osv_bad, p.path().join("advisories/KILN-TEST-BAD.json")).unwrap();
    gate_fails(&p, &[], &["advisories/KILN-TEST-BAD.json", "events[1]"]);
    std::fs::remove_file(p.path().join("advisories/KILN-TEST-BAD.json")).unwrap();

    // With the inputs good again, the fixture SBOM gates like a build's.
    let out = p
        .kiln()
        .args(["gate", "--fail-on", "critical", "--sarif"])
        .arg(sarif())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(p.out().join("hello/gate.json").is_file());
}

#[test]
fn build_refuses_a_statement_for_a_component_not_in_the_sbom() {
    let p = vex_project();
    let st = p.path().join("vex/statements.toml");
    std::fs::write(
        &st,
        std::fs::read_to_string(&st).unwrap().replace(
            "component = \"pkg:cargo/itoa\"\n",
            "component = \"pkg:cargo/itoa@0.4.8\"\n",
        ),
    )
    .unwrap();
    let err = run_err(p.kiln().arg("build"));
    assert!(
        err.contains("vex/statements.toml")
            && err.contains("statement[2] (CVE-2099-0004)")
            && err.contains("is not in the SBOM"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        p.out_entries().is_empty(),
        "a failed build left {:?}",
        p.out_entries()
    );
}

/// Three advisories for one component, CVE ~ GHSA and GHSA ~ RUSTSEC aliasing pairwise (CVE
/// and RUSTSEC never side by side), a statement clearing the CVE: in every one of the 6
/// `--osv` orders they are one finding, the gate passes, and gate.json has the same bytes.
/// (Grouping by the first overlapping group used to split them in some orders, and the
/// RUSTSEC half then blocked.)
#[test]
fn gate_alias_groups_are_transitive_and_independent_of_osv_order() {
    let p = gate_project();
    let st = p.path().join("vex/statements.toml");
    let mut text = std::fs::read_to_string(&st).unwrap();
    text.push_str("\n[[statement]]\nvulnerability = \"CVE-2099-0100\"\ncomponent = \"pkg:cargo/itoa@1.0.19\"\nstatus = \"not_affected\"\njustification = \"vulnerable_code_not_present\"\nimpact_statement = \"TEST DATA: the chain of aliases names one problem.\"\n");
    std::fs::write(&st, text).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let advisory = |id: &str, aliases: &[&str]| {
        let path = dir.path().join(format!("{id}.json"));
        let doc = serde_json::json!({
            "schema_version": "1.6.0",
            "id": id,
            "modified": "2026-01-01T00:00:00Z",
            "aliases": aliases,
            "summary": format!("TEST DATA — not a real advisory ({id})"),
            "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
            "affected": [{"package": {"ecosystem": "crates.io", "name": "itoa"},
                "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "9.0.0"}]}]}],
        });
        std::fs::write(&path, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
        path
    };
    let osv = [
        advisory("CVE-2099-0100", &[]),
        advisory(
            "GHSA-k1n0-te57-0100",
            &["CVE-2099-0100", "RUSTSEC-2099-0100"],
        ),
        advisory("RUSTSEC-2099-0100", &[]),
    ];
    let orders = [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ];
    let gate_json = p.out().join("hello/gate.json");
    let mut first: Option<(Option<i32>, Vec<u8>)> = None;
    for order in orders {
        let mut cmd = p.kiln();
        cmd.arg("gate");
        for i in order {
            cmd.arg("--osv").arg(&osv[i]);
        }
        let out = cmd.output().unwrap();
        let got = (out.status.code(), std::fs::read(&gate_json).unwrap());
        let report: serde_json::Value = serde_json::from_slice(&got.1).unwrap();
        let rows: Vec<&serde_json::Value> = report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["id"].as_str().unwrap().ends_with("2099-0100"))
            .collect();
        assert_eq!(rows.len(), 1, "order {order:?}: not one group: {rows:#?}");
        assert_eq!(rows[0]["status"], "not_affected", "order {order:?}");
        match &first {
            None => first = Some(got),
            Some(f) => {
                assert_eq!(f.0, got.0, "exit code differs for order {order:?}");
                assert!(f.1 == got.1, "gate.json differs for order {order:?}");
            }
        }
    }
}
