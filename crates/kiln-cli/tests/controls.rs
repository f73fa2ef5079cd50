//! End-to-end: compliance controls on a signed hello build. `evidence pack` → `controls
//! attest` (signed, attached as a post-build referrer, HTML and PDF) → `verify` with
//! `all_controls_pass`/`controls_pass` and `--pack`; securesystemslib, @sigstore/verify and
//! in-toto-attestation accept the attestation; pdftoppm renders its PDF; tampering with any
//! pack file afterwards makes `verify --pack` and `evidence audit` fail.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::support::*;

const LINEAGE: &str = "\n[lineage]\nsource = \"https://github.com/kiln-build/kiln\"\ntransform = \"release-build\"\npolicy_version = \"2024.1\"\n";

/// A catalog every control of which the hello build passes (TEST DATA).
const PASSING: &str = r#"version: 1
controls:
  - id: SC-01
    name: No critical or high findings in the scans
    evidence: ["scans/clean.sarif"]
    assert:
      - type: sarif_no_levels
        levels: [CRITICAL, HIGH]
  - id: SC-02
    name: Provenance signed by the release key
    evidence: ["provenance.sigstore.json"]
    assert:
      - type: signed_provenance
        policy: policy.toml
  - id: SC-03
    name: An SBOM is published
    evidence: ["sbom.*.json"]
    assert:
      - type: sbom_present
  - id: SC-04
    name: No latest tag, an allowed base
    evidence: ["summary.json", "provenance.sigstore.json"]
    assert:
      - type: no_latest_tag
      - type: base_image_allowed
        allowlist: ["ghcr.io/acme/*"]
  - id: SC-05
    name: The release evidence is complete
    evidence: ["*.json"]
    assert:
      - type: evidence_present
        roles: [sbom, provenance, vex, toolchain-lock]
"#;

/// A hello project with VEX inputs, `[lineage]` and a key pair; built signed.
struct Release {
    project: Project,
    keys: tempfile::TempDir,
    work: tempfile::TempDir,
}

impl Release {
    fn build() -> Self {
        let project = Project::from_testdata("hello", &format!("{HELLO_TOML}{LINEAGE}"));
        add_vex(&project);
        let keys = tempfile::tempdir().unwrap();
        keygen(keys.path());
        run_ok(
            without_ambient(project.kiln())
                .arg("build")
                .arg("--key")
                .arg(keys.path().join("kiln.key")),
        );
        let work = tempfile::tempdir().unwrap();
        std::fs::copy(
            repo().join("testdata/policy/default.toml"),
            keys.path().join("policy.toml"),
        )
        .unwrap();
        std::fs::write(work.path().join("clean.sarif"), CLEAN_SARIF).unwrap();
        Release {
            project,
            keys,
            work,
        }
    }
    fn key(&self) -> PathBuf {
        self.keys.path().join("kiln.key")
    }
    fn out(&self) -> PathBuf {
        self.project.out().join("hello")
    }
    /// A catalog next to the policy (its `policy.toml` is relative to the catalog).
    fn catalog(&self, name: &str, text: &str) -> PathBuf {
        let p = self.keys.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
    /// The verify policy with `extra` appended.
    fn policy(&self, name: &str, extra: &str) -> PathBuf {
        let p = self.keys.path().join(name);
        let base = std::fs::read_to_string(self.keys.path().join("policy.toml")).unwrap();
        std::fs::write(&p, format!("{base}\n{extra}")).unwrap();
        p
    }
    fn pack(&self, dir: &Path, scans: &[&Path]) {
        let mut c = self.project.kiln();
        c.args(["evidence", "pack", "--out"]).arg(dir);
        for s in scans {
            c.arg("--sarif").arg(s);
        }
        run_ok(&mut c);
    }
    fn attest(&self, catalog: &Path, pack: &Path) -> std::process::Output {
        without_ambient(self.project.kiln())
            .args(["controls", "attest", "--catalog"])
            .arg(catalog)
            .arg("--pack")
            .arg(pack)
            .arg("--key")
            .arg(self.key())
            .output()
            .unwrap()
    }
    fn verify(&self, policy: &Path, pack: Option<&Path>) -> std::process::Output {
        let mut c = without_ambient(kiln());
        c.arg("verify").arg(self.out()).arg("--policy").arg(policy);
        if let Some(p) = pack {
            c.arg("--pack").arg(p);
        }
        c.output().unwrap()
    }
}

const CLEAN_SARIF: &str =
    r#"{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"Trivy","rules":[]}},"results":[]}]}"#;

const ALL_PASS: &str = "[[require]]\npredicate_type = \"https://kiln.dev/attestations/controls/v1\"\nall_controls_pass = true\n";

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

const SSLIB_AND_INTOTO: &str = r#"
import sys, json, base64
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey
from google.protobuf import json_format
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.statement import Statement
key = SSlibKey.from_crypto(load_pem_public_key(open(sys.argv[1], 'rb').read()), keyid=sys.argv[2])
raw = json.load(open(sys.argv[3]))
Envelope.from_dict(raw).verify([key], threshold=1)
stmt = json.loads(base64.b64decode(raw['payload']))
Statement.copy_from_pb(json_format.ParseDict(stmt, statement_pb2.Statement())).validate()
print('ok', stmt['predicateType'], stmt['subject'][0]['name'], len(stmt['predicate']['controls']))
"#;

#[test]
fn attested_controls_verify_and_tampering_with_the_pack_is_caught() {
    let r = Release::build();
    let pack = r.work.path().join("pack");
    let clean = r.work.path().join("clean.sarif");
    r.pack(&pack, &[&clean]);
    let catalog = r.catalog("catalog.yaml", PASSING);

    // Before attesting, a policy requiring the controls fails: nothing is attached.
    let all_pass = r.policy("all-pass.toml", ALL_PASS);
    let o = r.verify(&all_pass, None);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("missing attestation: no signed, verified statement with predicateType https://kiln.dev/attestations/controls/v1"),
        "{}",
        text(&o)
    );

    let o = r.attest(&catalog, &pack);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    for id in ["SC-01", "SC-02", "SC-03", "SC-04", "SC-05"] {
        assert!(t.contains(&format!("PASS {id}")), "{id}: {t}");
    }
    assert!(t.contains("5 passed, 0 failed"), "{t}");
    let att = pack.join("attestation");
    let mut names: Vec<String> = std::fs::read_dir(&att)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "controls.html",
            "controls.intoto.json",
            "controls.json",
            "controls.pdf",
            "controls.sigstore.json"
        ]
    );
    // Attached as a referrer, listed last, after the build's own.
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(r.out().join("oci/index.json")).unwrap()).unwrap();
    let last = index["manifests"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        last["annotations"]["org.opencontainers.image.title"], "controls.sigstore.json",
        "{index}"
    );
    assert_eq!(
        last["annotations"]["dev.sigstore.bundle.predicateType"],
        "https://kiln.dev/attestations/controls/v1"
    );

    // verify: every check passes, including the archives and summary (cut from the layout
    // as built, before this referrer), and the requirement.
    let o = r.verify(&all_pass, Some(&pack));
    let t = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{t}");
    assert!(t.lines().all(|l| l.starts_with("PASS ")), "{t}");
    for rule in [
        "PASS signature controls.sigstore.json",
        "PASS subjects controls.sigstore.json",
        "PASS archive image.oci.tar",
        "PASS summary.json",
        "PASS files",
        "PASS require[1] https://kiln.dev/attestations/controls/v1",
        "PASS pack pack",
        "PASS pack signature",
        "PASS pack evidence",
        "PASS pack attestation files",
        "PASS pack attached",
    ] {
        assert!(t.contains(rule), "{rule} missing:\n{t}");
    }

    // Independent verifiers: securesystemslib (the DSSE signature), in-toto-attestation
    // (the statement), @sigstore/verify (the bundle).
    let bundle: serde_json::Value =
        serde_json::from_slice(&std::fs::read(att.join("controls.sigstore.json")).unwrap())
            .unwrap();
    let hint = bundle["verificationMaterial"]["publicKey"]["hint"]
        .as_str()
        .unwrap()
        .to_string();
    let pubkey = r.keys.path().join("kiln.pub");
    let o = python(
        SSLIB_AND_INTOTO,
        &[
            pubkey.as_os_str(),
            OsStr::new(&hint),
            att.join("controls.intoto.json").as_os_str(),
        ],
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.starts_with("ok https://kiln.dev/attestations/controls/v1 hello:0.1.0 5"),
        "{out}"
    );
    node(
        SIGSTORE_VERIFY_KEYED,
        &[
            pubkey.as_os_str(),
            OsStr::new(&hint),
            att.join("controls.sigstore.json").as_os_str(),
        ],
    );

    // The PDF opens: pdftoppm renders page 1.
    let png = r.work.path().join("page");
    run_ok(
        kiln_core::process::command(tool("pdftoppm"))
            .args(["-png", "-r", "50", "-f", "1", "-l", "1"])
            .arg(att.join("controls.pdf"))
            .arg(&png),
    );
    let rendered = std::fs::read_dir(r.work.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension() == Some(OsStr::new("png")))
        .expect("pdftoppm wrote no page");
    assert!(std::fs::metadata(&rendered).unwrap().len() > 1000);
    let html = std::fs::read_to_string(att.join("controls.html")).unwrap();
    assert!(
        html.contains("SC-05") && html.contains("hello:0.1.0"),
        "{html}"
    );

    // Attesting again gives the same bytes (keyed ECDSA is deterministic, RFC 6979) and
    // replaces the referrer instead of adding one.
    let before = read_tree(&pack);
    let layout_before = read_tree(&r.out());
    assert!(r.attest(&catalog, &pack).status.success());
    assert_eq!(read_tree(&pack), before);
    assert_eq!(read_tree(&r.out()), layout_before);

    // Tampering with any pack file after attestation: verify --pack fails naming it.
    for victim in ["scans/clean.sarif", "sbom.cdx.json", "manifest.json"] {
        let p = pack.join(victim);
        let orig = std::fs::read(&p).unwrap();
        let mut bad = orig.clone();
        bad.extend_from_slice(b" ");
        std::fs::write(&p, &bad).unwrap();
        let o = r.verify(&all_pass, Some(&pack));
        let t = text(&o);
        assert!(!o.status.success(), "{victim}: {t}");
        assert!(t.contains("FAIL pack"), "{victim}: {t}");
        if victim != "manifest.json" {
            assert!(
                t.contains(victim) && t.contains("modified after packing"),
                "{victim}: {t}"
            );
        }
        std::fs::write(&p, &orig).unwrap();
    }
    // A file added to the pack, or a doctored report beside the attestation.
    std::fs::write(pack.join("scans/extra.sarif"), CLEAN_SARIF).unwrap();
    let t = text(&r.verify(&all_pass, Some(&pack)));
    assert!(
        t.contains("scans/extra.sarif") && t.contains("not listed in manifest.json"),
        "{t}"
    );
    std::fs::remove_file(pack.join("scans/extra.sarif")).unwrap();
    let pdf = att.join("controls.pdf");
    let orig = std::fs::read(&pdf).unwrap();
    std::fs::write(&pdf, [&orig[..], b"%doctored"].concat()).unwrap();
    let t = text(&r.verify(&all_pass, Some(&pack)));
    assert!(
        t.contains("FAIL pack attestation files") && t.contains("controls.pdf"),
        "{t}"
    );
    std::fs::write(&pdf, &orig).unwrap();
    // Everything restored: whole again.
    let o = r.verify(&all_pass, Some(&pack));
    assert!(o.status.success(), "{}", text(&o));

    // Attacks on the attached attestation. Its bytes changed beside the image:
    let attached = r.out().join("controls.sigstore.json");
    let orig = std::fs::read(&attached).unwrap();
    std::fs::write(&attached, [&orig[..], b" "].concat()).unwrap();
    let t = text(&r.verify(&all_pass, None));
    assert!(
        t.contains("FAIL") && t.contains("controls.sigstore.json"),
        "{t}"
    );
    std::fs::write(&attached, &orig).unwrap();
    // Moved before the build's own referrers (so the archives would seem to include it):
    let index_path = r.out().join("oci/index.json");
    let index_bytes = std::fs::read(&index_path).unwrap();
    let mut index: serde_json::Value = serde_json::from_slice(&index_bytes).unwrap();
    let m = index["manifests"].as_array_mut().unwrap();
    let last = m.pop().unwrap();
    m.insert(1, last);
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
    let t = text(&r.verify(&all_pass, None));
    assert!(
        t.contains("FAIL post-build referrers") && t.contains("not the last entries"),
        "{t}"
    );
    std::fs::write(&index_path, &index_bytes).unwrap();
    // Re-attested by someone else's key: the policy does not trust it, and a requirement
    // cannot be met by it.
    let attacker = tempfile::tempdir().unwrap();
    keygen(attacker.path());
    let o = without_ambient(r.project.kiln())
        .args(["controls", "attest", "--catalog"])
        .arg(&catalog)
        .arg("--pack")
        .arg(&pack)
        .arg("--key")
        .arg(attacker.path().join("kiln.key"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&r.verify(&all_pass, Some(&pack)));
    assert!(
        t.contains("FAIL signature controls.sigstore.json") && t.contains("does not trust"),
        "{t}"
    );
    assert!(
        t.contains("FAIL require[1]") && t.contains("FAIL pack signature"),
        "{t}"
    );
    assert!(r.attest(&catalog, &pack).status.success());
    let o = r.verify(&all_pass, Some(&pack));
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        read_tree(&r.out()),
        layout_before,
        "re-attesting left the old referrer's blobs"
    );

    // The audit: two releases' packs, one tampered; the sample is reported with its seed.
    let releases = r.work.path().join("releases");
    copy_tree(&pack, &releases.join("0.1.0"));
    copy_tree(&pack, &releases.join("0.1.1"));
    std::fs::write(releases.join("0.1.1/scans/clean.sarif"), "{}").unwrap();
    let policy = r.keys.path().join("policy.toml");
    let o = kiln()
        .args([
            "evidence", "audit", "--sample", "100%", "--seed", "7", "--policy",
        ])
        .arg(&policy)
        .arg(&releases)
        .output()
        .unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        t.contains("audited 2 of 2 pack(s) (sample 100%, seed 7)"),
        "{t}"
    );
    let row = |v: &str| {
        t.lines()
            .find(|l| l.ends_with(v))
            .unwrap_or_else(|| panic!("{v}: {t}"))
            .to_string()
    };
    assert!(row("0.1.0").starts_with("PASS    5/5"), "{t}");
    assert!(row("0.1.1").starts_with("FAIL"), "{t}");
    assert!(t.contains("clean.sarif: modified after packing"), "{t}");
    let o = kiln()
        .args([
            "evidence", "audit", "--sample", "50%", "--seed", "7", "--policy",
        ])
        .arg(&policy)
        .arg(&releases)
        .output()
        .unwrap();
    let t1 = text(&o);
    assert!(
        t1.contains("audited 1 of 2 pack(s) (sample 50%, seed 7)"),
        "{t1}"
    );
    let again = text(
        &kiln()
            .args([
                "evidence", "audit", "--sample", "50%", "--seed", "7", "--policy",
            ])
            .arg(&policy)
            .arg(&releases)
            .output()
            .unwrap(),
    );
    assert_eq!(t1, again, "the same seed must pick the same sample");
    let o = kiln()
        .args(["evidence", "audit", "--policy"])
        .arg(&policy)
        .arg(releases.join("0.1.0"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("seed "), "the random seed is reported");

    // Pushed, the attestation goes along as a referrer; `verify REF --pack` checks it there.
    let reg = crate::support::registry::Registry::start();
    let repo_ref = format!("{}/team/hello", reg.addr);
    let o = without_ambient(r.project.kiln())
        .args(["push", &repo_ref, "--insecure-http"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let o = without_ambient(kiln())
        .args([
            "verify",
            &format!("{repo_ref}:0.1.0"),
            "--insecure-http",
            "--policy",
        ])
        .arg(&all_pass)
        .arg("--pack")
        .arg(&pack)
        .output()
        .unwrap();
    let t = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{t}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for rule in [
        "PASS signature controls.sigstore.json",
        "PASS require[1] https://kiln.dev/attestations/controls/v1",
        "PASS pack attached",
    ] {
        assert!(t.contains(rule), "{rule} missing:\n{t}");
    }
}

#[test]
fn failing_controls_are_attested_with_their_reasons_and_verify_says_which() {
    let r = Release::build();
    let pack = r.work.path().join("pack");
    let scan = repo().join("testdata/vex/hello/scan.sarif.json");
    // The gate blocks on this fixture's unresolved critical (see the vex tests).
    let o = r
        .project
        .kiln()
        .args(["gate", "--sarif"])
        .arg(&scan)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    r.pack(&pack, &[&scan]);
    let catalog = r.catalog(
        "failing.yaml",
        r#"version: 1
controls:
  - id: OK-01
    name: An SBOM is published
    evidence: ["sbom.cdx.json"]
    assert:
      - type: sbom_present
  - id: SC-01
    name: No critical findings
    evidence: ["scans/*"]
    assert:
      - type: sarif_no_levels
        levels: [CRITICAL]
  - id: SC-06
    name: The gate passed
    evidence: ["gate.json"]
    assert:
      - type: gate_passed
  - id: SC-07
    name: A reproducibility report is attached
    evidence: ["repro/*.json"]
    assert:
      - type: repro_ratio_at_least
        ratio: 1.0
  - id: SC-08
    name: The base is on the allowlist
    evidence: ["provenance.sigstore.json"]
    assert:
      - type: base_image_allowed
        allowlist: ["ghcr.io/acme/base@sha256:0000000000000000000000000000000000000000000000000000000000000000"]
"#,
    );
    let o = r.attest(&catalog, &pack);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    // SC-08 passes: a scratch image has no base to be off the allowlist.
    assert!(t.contains("2 passed, 3 failed"), "{t}");
    assert!(t.contains("PASS SC-08"), "{t}");
    assert!(t.contains("PASS OK-01"), "{t}");
    assert!(
        t.contains("FAIL SC-01") && t.contains("CVE-2099-0001"),
        "{t}"
    );
    assert!(
        t.contains("FAIL SC-06") && t.contains("KILN-TEST-2026-0002"),
        "{t}"
    );
    assert!(
        t.contains("FAIL SC-07") && t.contains("repro/*.json"),
        "{t}"
    );
    // The attestation is still written and attached: it records the failures.
    let stmt: serde_json::Value =
        serde_json::from_slice(&std::fs::read(pack.join("attestation/controls.json")).unwrap())
            .unwrap();
    let c = stmt["predicate"]["controls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "SC-06")
        .unwrap()
        .clone();
    assert_eq!(c["result"], "fail");
    assert!(!c["failures"].as_array().unwrap().is_empty(), "{c}");
    assert_eq!(stmt["predicate"]["summary"]["failed"], 3);

    let o = r.verify(&r.policy("all.toml", ALL_PASS), Some(&pack));
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(
        t.contains("FAIL require[1]") && t.contains("SC-01 failed") && t.contains("SC-06 failed"),
        "{t}"
    );
    // Only the controls named: OK-01 passed, so this holds; an id the catalog lacks does not.
    let only = "[[require]]\npredicate_type = \"https://kiln.dev/attestations/controls/v1\"\ncontrols_pass = [\"OK-01\"]\n";
    let o = r.verify(&r.policy("only.toml", only), Some(&pack));
    assert!(o.status.success(), "{}", text(&o));
    let missing = "[[require]]\npredicate_type = \"https://kiln.dev/attestations/controls/v1\"\ncontrols_pass = [\"OK-01\", \"XX-99\"]\n";
    let t = text(&r.verify(&r.policy("missing.toml", missing), None));
    assert!(t.contains("XX-99 is not in the attestation"), "{t}");

    // A bad catalog: an unknown assertion type is an error with its line, nothing written.
    let before = read_tree(&pack);
    let bad = r.catalog(
        "bad.yaml",
        "version: 1\ncontrols:\n  - id: X-1\n    name: x\n    evidence: [\"*.json\"]\n    assert:\n      - type: always_pass\n",
    );
    let o = r.attest(&bad, &pack);
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(
        t.contains("bad.yaml:7:") && t.contains("always_pass"),
        "{t}"
    );
    assert_eq!(read_tree(&pack), before, "a bad catalog changed the pack");
    // Unsigned: refused before anything is written.
    let o = kiln()
        .current_dir(r.project.path())
        .env_remove("KILN_SIGNING_KEY")
        .args(["controls", "attest", "--catalog"])
        .arg(&catalog)
        .arg("--pack")
        .arg(&pack)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(text(&o).contains("must be signed"), "{}", text(&o));
    assert_eq!(read_tree(&pack), before);
}

/// `[compliance] pack = true` with a catalog: the build itself packs, attests and
/// attaches; `verify --pack` passes on what it left.
#[test]
fn a_configured_build_packs_and_attests_by_itself() {
    let toml = format!(
        "{HELLO_TOML}{LINEAGE}\n[compliance]\npack = true\nscans = [\"clean.sarif\"]\ncatalog = \"catalog.yaml\"\n"
    );
    let project = Project::from_testdata("hello", &toml);
    add_vex(&project);
    std::fs::write(project.path().join("clean.sarif"), CLEAN_SARIF).unwrap();
    let keys = tempfile::tempdir().unwrap();
    keygen(keys.path());
    std::fs::copy(
        repo().join("testdata/policy/default.toml"),
        keys.path().join("policy.toml"),
    )
    .unwrap();
    let policy = keys.path().join("policy.toml");
    std::fs::write(
        project.path().join("catalog.yaml"),
        PASSING.replace(
            "policy: policy.toml",
            &format!("policy: {}", policy.display()),
        ),
    )
    .unwrap();
    let o = without_ambient(project.kiln())
        .arg("build")
        .arg("--key")
        .arg(keys.path().join("kiln.key"))
        .output()
        .unwrap();
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains("controls: 5 passed, 0 failed; attestation attached"),
        "{t}"
    );
    let pack = project.path().join("target/kiln/evidence/hello");
    assert!(pack.join("manifest.json").is_file());
    assert!(pack.join("attestation/controls.pdf").is_file());
    std::fs::write(
        keys.path().join("all.toml"),
        format!("{}\n{ALL_PASS}", std::fs::read_to_string(&policy).unwrap()),
    )
    .unwrap();
    let o = without_ambient(kiln())
        .arg("verify")
        .arg(project.out().join("hello"))
        .arg("--policy")
        .arg(keys.path().join("all.toml"))
        .arg("--pack")
        .arg(&pack)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
}
