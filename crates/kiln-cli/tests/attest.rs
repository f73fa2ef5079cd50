//! End-to-end: signed provenance and evidence from `kiln build --key`, checked by kiln's
//! `verify` and by independent verifiers (securesystemslib, @sigstore/verify,
//! in-toto-attestation), plus tampering, determinism and bad input.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::*;

const LINEAGE: &str = "\n[lineage]\nsource = \"https://github.com/kiln-build/kiln\"\ntransform = \"release-build\"\npolicy_version = \"2024.1\"\n";

/// A hello project with `[lineage]`, and a fresh key pair from `kiln keygen`.
struct Signed {
    project: Project,
    keys: tempfile::TempDir,
}

impl Signed {
    fn new() -> Self {
        let project = Project::from_testdata("hello", &format!("{HELLO_TOML}{LINEAGE}"));
        let keys = tempfile::tempdir().unwrap();
        keygen(keys.path());
        Signed { project, keys }
    }
    fn key(&self) -> PathBuf {
        self.keys.path().join("kiln.key")
    }
    fn build(&self) -> PathBuf {
        run_ok(
            without_ambient(self.project.kiln())
                .arg("build")
                .arg("--key")
                .arg(self.key()),
        );
        self.project.out().join("hello")
    }
    /// `testdata/policy/<name>` copied next to the key pair (its `kiln.pub` is relative).
    fn policy(&self, name: &str) -> PathBuf {
        let p = self.keys.path().join(name);
        std::fs::copy(repo().join("testdata/policy").join(name), &p).unwrap();
        p
    }
}

fn verify(dir: &Path, policy: &Path) -> Command {
    let mut c = without_ambient(kiln());
    c.arg("verify").arg(dir).arg("--policy").arg(policy);
    c
}

fn evidence_files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    v.sort();
    v
}

fn keyid(keys: &Path) -> String {
    // hex sha256 of the SPKI DER, computed independently of kiln.
    let out = python(
        "import sys,hashlib\nfrom cryptography.hazmat.primitives import serialization as s\nk=s.load_pem_public_key(open(sys.argv[1],'rb').read())\nprint(hashlib.sha256(k.public_bytes(s.Encoding.DER,s.PublicFormat.SubjectPublicKeyInfo)).hexdigest())",
        &[keys.join("kiln.pub").as_os_str()],
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

const SSLIB: &str = r#"
import sys, json
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey
key = SSlibKey.from_crypto(load_pem_public_key(open(sys.argv[1], 'rb').read()), keyid=sys.argv[2])
for f in sys.argv[3:]:
    env = Envelope.from_dict(json.load(open(f)))
    env.verify([key], threshold=1)
    print('verified', f)
"#;

const INTOTO: &str = r#"
import sys, json, base64
from google.protobuf import json_format
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.statement import Statement
from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
env = json.load(open(sys.argv[1]))
stmt = json.loads(base64.b64decode(env['payload']))
Statement.copy_from_pb(json_format.ParseDict(stmt, statement_pb2.Statement())).validate()
json_format.ParseDict(stmt['predicate'], provenance_pb2.Provenance())
print(stmt['predicateType'], len(stmt['subject']))
"#;

#[test]
fn signed_build_passes_kiln_verify_and_independent_verifiers() {
    let s = Signed::new();
    let dir = s.build();
    let id = keyid(s.keys.path());

    // kiln verify: one PASS line per rule.
    let out = run_ok(&mut verify(&dir, &s.policy("default.toml")));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.lines().all(|l| l.starts_with("PASS ")), "{text}");
    for rule in [
        "PASS image:",
        "PASS signature provenance.sigstore.json",
        "PASS subjects provenance.sigstore.json",
        "PASS require[0] https://slsa.dev/provenance/v1",
    ] {
        assert!(text.contains(rule), "{rule} missing:\n{text}");
    }
    let json = run_ok(verify(&dir, &s.policy("default.toml")).arg("--json"));
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["ok"], true);

    // The envelope keyid and bundle hint are the key's SPKI sha256.
    let env: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("provenance.intoto.json")).unwrap())
            .unwrap();
    assert_eq!(env["signatures"][0]["keyid"], id.as_str());
    let bundle: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("provenance.sigstore.json")).unwrap())
            .unwrap();
    assert_eq!(
        bundle["mediaType"],
        "application/vnd.dev.sigstore.bundle.v0.3+json"
    );
    assert_eq!(
        bundle["verificationMaterial"]["publicKey"]["hint"],
        id.as_str()
    );

    // securesystemslib: every DSSE envelope.
    let envelopes = evidence_files(&dir, ".intoto.json");
    assert!(!envelopes.is_empty());
    let mut args: Vec<&OsStr> = vec![
        s.keys.path().join("kiln.pub").into_os_string().leak(),
        OsStr::new(id.as_str()),
    ];
    args.extend(envelopes.iter().map(|p| p.as_os_str()));
    let out = python(SSLIB, &args);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .matches("verified")
            .count(),
        envelopes.len()
    );

    // @sigstore/verify: every bundle, offline.
    let bundles = evidence_files(&dir, ".sigstore.json");
    assert_eq!(bundles.len(), envelopes.len());
    let mut args: Vec<&OsStr> = vec![
        s.keys.path().join("kiln.pub").into_os_string().leak(),
        OsStr::new(id.as_str()),
    ];
    args.extend(bundles.iter().map(|p| p.as_os_str()));
    node(SIGSTORE_VERIFY_KEYED, &args);

    // in-toto-attestation: the statement and the SLSA v1 predicate, strictly.
    let out = python(INTOTO, &[dir.join("provenance.intoto.json").as_os_str()]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("https://slsa.dev/provenance/v1"));
    let stmt: serde_json::Value = {
        use crate::support::base64_decode::decode;
        serde_json::from_slice(&decode(env["payload"].as_str().unwrap())).unwrap()
    };
    let pred = &stmt["predicate"];
    assert_eq!(
        pred["buildDefinition"]["externalParameters"]["lineage"]["transform"],
        "release-build"
    );
    assert!(
        pred["runDetails"]["metadata"].get("startedOn").is_none(),
        "no wall clock by default"
    );
    let text = stmt.to_string();
    assert!(
        !text.contains(s.project.path().to_str().unwrap()),
        "absolute project path in provenance"
    );
    assert!(
        pred["buildDefinition"]["resolvedDependencies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["uri"] == "pkg:cargo/itoa@1.0.19")
    );

    // The referrers ride along without disturbing the image: skopeo still resolves it, and
    // every referrer names the image manifest as subject.
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap();
    let inspect = run_ok(
        kiln_core::process::command(tool("skopeo"))
            .arg("inspect")
            .arg("--raw")
            .arg(format!("oci:{}:0.1.0", dir.join("oci").display())),
    );
    let m: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert!(m.get("subject").is_none() && m["layers"].as_array().unwrap().len() == 1);
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("oci/index.json")).unwrap()).unwrap();
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests[0]["digest"], summary["digest"]);
    assert!(manifests.len() > 2);
    // Last, cosign's attestations image (`kind` annotations as cosign lays out a local
    // image, for `cosign verify-attestation --local-image`): one DSSE envelope a layer.
    let (atts, referrers) = manifests[1..].split_last().unwrap();
    assert_eq!(
        atts["annotations"],
        serde_json::json!({"kind": "dev.cosignproject.cosign/atts"})
    );
    assert_eq!(
        manifests[0]["annotations"]["kind"],
        "dev.cosignproject.cosign/image"
    );
    let att: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            dir.join("oci/blobs/sha256").join(
                atts["digest"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches("sha256:"),
            ),
        )
        .unwrap(),
    )
    .unwrap();
    let envelopes = evidence_files(&dir, ".intoto.json");
    assert_eq!(att["layers"].as_array().unwrap().len(), envelopes.len());
    for l in att["layers"].as_array().unwrap() {
        assert_eq!(l["mediaType"], "application/vnd.dsse.envelope.v1+json");
        let bytes = std::fs::read(
            dir.join("oci/blobs/sha256")
                .join(l["digest"].as_str().unwrap().trim_start_matches("sha256:")),
        )
        .unwrap();
        assert!(
            envelopes.iter().any(|e| std::fs::read(e).unwrap() == bytes),
            "an .att layer is not an envelope file"
        );
    }
    for r in referrers {
        assert!(r["artifactType"].is_string());
        let blob = std::fs::read(
            dir.join("oci/blobs/sha256")
                .join(r["digest"].as_str().unwrap().trim_start_matches("sha256:")),
        )
        .unwrap();
        let am: serde_json::Value = serde_json::from_slice(&blob).unwrap();
        assert_eq!(am["subject"]["digest"], summary["digest"]);
        assert_eq!(
            am["config"]["digest"],
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
    }

    // Tampering through the CLI: a flipped byte in a layer, the envelope, the bundle and
    // (when the SBOM step has written one) the SBOM each fail, naming the file. The
    // exhaustive property test over positions is kiln-attest's unit test.
    let layer = m["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let mut targets = vec![
        format!("oci/blobs/sha256/{layer}"),
        "provenance.intoto.json".into(),
        "provenance.sigstore.json".into(),
    ];
    if dir.join("sbom.cdx.json").is_file() {
        targets.push("sbom.cdx.json".into());
    }
    for (n, t) in targets.iter().enumerate() {
        let copy = tempfile::tempdir().unwrap();
        copy_tree(&dir, copy.path());
        let f = copy.path().join(t);
        let mut bytes = std::fs::read(&f).unwrap();
        let pos = (bytes.len() * (2 * n + 1)) / (2 * targets.len() + 1);
        bytes[pos] ^= 0x20;
        std::fs::write(&f, &bytes).unwrap();
        let out = verify(copy.path(), &s.policy("default.toml"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            !out.status.success(),
            "{t}: flipped byte {pos} went unnoticed:\n{text}"
        );
        let name = t.rsplit('/').next().unwrap();
        assert!(
            text.lines()
                .any(|l| l.starts_with("FAIL") && l.contains(name)),
            "{t}: no FAIL line names {name}:\n{text}"
        );
    }
}

/// Same inputs, same key, different directories → identical envelope and bundle bytes.
#[test]
fn same_inputs_and_key_give_identical_signed_evidence() {
    let a = Signed::new();
    let b = Project::from_testdata("hello", &format!("{HELLO_TOML}{LINEAGE}"));
    let da = a.build();
    run_ok(
        without_ambient(b.kiln())
            .arg("build")
            .arg("--key")
            .arg(a.key()),
    );
    let db = b.out().join("hello");
    let files: Vec<_> = evidence_files(&da, ".intoto.json")
        .into_iter()
        .chain(evidence_files(&da, ".sigstore.json"))
        .collect();
    assert!(files.len() >= 2);
    for f in files
        .iter()
        .map(|p| p.file_name().unwrap().to_owned())
        .chain([std::ffi::OsString::from("oci/index.json")])
    {
        assert!(
            std::fs::read(da.join(&f)).unwrap() == std::fs::read(db.join(&f)).unwrap(),
            "{f:?} differs between the builds"
        );
    }
}

#[test]
fn bad_keys_policies_and_missing_attestations_fail_clearly() {
    let s = Signed::new();

    // An insecure key file: refused before anything is written, naming file and fix.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(s.key(), std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = run_err(
        without_ambient(s.project.kiln())
            .arg("build")
            .arg("--key")
            .arg(s.key()),
    );
    assert!(
        err.contains(&s.key().display().to_string()) && err.contains("chmod 600"),
        "{err}"
    );
    assert!(
        s.project.out_entries().is_empty(),
        "a refused build wrote {:?}",
        s.project.out_entries()
    );
    // Not a key at all.
    let junk = s.keys.path().join("junk.key");
    std::fs::write(&junk, "not a key").unwrap();
    std::fs::set_permissions(&junk, std::fs::Permissions::from_mode(0o600)).unwrap();
    let err = run_err(
        without_ambient(s.project.kiln())
            .arg("build")
            .arg("--key")
            .arg(&junk),
    );
    assert!(err.contains("junk.key") && err.contains("keygen"), "{err}");
    std::fs::set_permissions(s.key(), std::fs::Permissions::from_mode(0o600)).unwrap();

    let dir = s.build();

    // A policy trusting another key.
    let other = tempfile::tempdir().unwrap();
    keygen(other.path());
    std::fs::copy(
        repo().join("testdata/policy/default.toml"),
        other.path().join("p.toml"),
    )
    .unwrap();
    let out = verify(&dir, &other.path().join("p.toml")).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        text.contains("FAIL signature provenance.sigstore.json") && text.contains("does not trust"),
        "{text}"
    );

    // Unknown field in the policy: an error naming it and the line.
    let bad = s.keys.path().join("bad.toml");
    std::fs::write(&bad, "[[keys]]\npath = \"kiln.pub\"\n\n[[require]]\npredicate_type = \"https://slsa.dev/provenance/v1\"\nbulder_id = \"x\"\n").unwrap();
    let err = run_err(&mut verify(&dir, &bad));
    assert!(
        err.contains("bulder_id") && err.contains("line 6") && err.contains("bad.toml"),
        "{err}"
    );

    // A required attestation that is not there.
    let missing = s.keys.path().join("missing.toml");
    std::fs::write(&missing, "[[keys]]\npath = \"kiln.pub\"\n\n[[require]]\npredicate_type = \"https://example.com/never-attached/v1\"\n").unwrap();
    let out = verify(&dir, &missing).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        text.contains("FAIL require[0] https://example.com/never-attached/v1: missing attestation"),
        "{text}"
    );

    // Without a key: provenance.json unsigned, and verify says so.
    let unsigned = Project::from_testdata("hello", &format!("{HELLO_TOML}{LINEAGE}"));
    run_ok(without_ambient(unsigned.kiln()).arg("build"));
    let udir = unsigned.out().join("hello");
    assert!(
        udir.join("provenance.json").is_file() && !udir.join("provenance.sigstore.json").exists()
    );
    let out = verify(&udir, &s.policy("default.toml")).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success() && text.contains("no signature"),
        "{text}"
    );
}
