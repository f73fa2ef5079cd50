//! End-to-end: `kiln build --keyless` against a local Sigstore (@sigstore/mock's Fulcio
//! and Rekor behind `testdata/sigstore-mock/server.mjs`, with a GitHub-Actions-style OIDC
//! token service), then the bundles checked by @sigstore/verify and by `kiln verify`
//! with a keyless identity policy.
//!
//! Keyless bundles are not byte-for-byte reproducible (a fresh key per signature, the
//! log's integrated time), so there is no determinism check here.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::*;

const LINEAGE: &str = "\n[lineage]\nsource = \"https://github.com/kiln-build/kiln\"\ntransform = \"release-build\"\npolicy_version = \"2024.1\"\n";

/// The CLI with no ambient signing settings; the Sigstore URLs and the Actions token
/// service are the mock's.
fn keyless_build(project: &Project, mock: &SigstoreMock) -> Command {
    let mut c = keyless_env(project, mock);
    c.args(["build", "--keyless"]);
    c
}

/// `kiln` in the project with the mock's Sigstore URLs and token service, no arguments.
fn keyless_env(project: &Project, mock: &SigstoreMock) -> Command {
    let mut c = without_ambient(project.kiln());
    c.env_remove("KILN_OIDC_TOKEN");
    c.env("KILN_FULCIO_URL", mock.url())
        .env("KILN_REKOR_URL", mock.url())
        .env("ACTIONS_ID_TOKEN_REQUEST_URL", mock.get("token_url"))
        .env(
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
            mock.get("token_request_token"),
        );
    c
}

/// `testdata/policy/keyless.toml` (or it with `subject_regexp` replaced) next to the
/// mock's Fulcio root and Rekor key.
fn policy(dir: &Path, mock: &SigstoreMock, subject_regexp: Option<&str>) -> PathBuf {
    std::fs::write(dir.join("fulcio-root.pem"), mock.get("fulcio_root_pem")).unwrap();
    std::fs::write(dir.join("rekor.pub"), mock.get("rekor_public_key_pem")).unwrap();
    let mut text = std::fs::read_to_string(repo().join("testdata/policy/keyless.toml")).unwrap();
    if let Some(re) = subject_regexp {
        let line = text
            .lines()
            .find(|l| l.starts_with("subject_regexp"))
            .unwrap()
            .to_string();
        text = text.replace(&line, &format!("subject_regexp = {}", toml_str(re)));
    }
    let p = dir.join("keyless.toml");
    std::fs::write(&p, text).unwrap();
    p
}

fn toml_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn verify(dir: &Path, policy: &Path) -> std::process::Output {
    let mut c = kiln();
    c.arg("verify").arg(dir).arg("--policy").arg(policy);
    c.output().unwrap()
}

fn bundles(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".sigstore.json"))
        .collect();
    v.sort();
    v
}

/// @sigstore/verify with trust material made of the mock's Fulcio root, Rekor key and CT
/// log key: one tlog entry (inclusion promise and proof), one embedded SCT, and the
/// expected identity. Exits non-zero naming any bundle it rejects.
const SIGSTORE_VERIFY: &str = r#"
import fs from 'node:fs';
import crypto from 'node:crypto';
import { Verifier, toSignedEntity, toTrustMaterial } from '@sigstore/verify';
import { bundleFromJSON } from '@sigstore/bundle';
const [infoFile, ...files] = process.argv.slice(2);
const info = JSON.parse(fs.readFileSync(infoFile, 'utf8'));
const der = (pem) => Buffer.from(pem.replace(/-----(BEGIN|END) [A-Z ]+-----/g, '').replace(/\s/g, ''), 'base64');
const sha256 = (b) => crypto.createHash('sha256').update(b).digest();
const rekor = Buffer.from(info.rekor_public_key_der, 'base64');
const ct = Buffer.from(info.ctlog_public_key_der, 'base64');
const start = new Date(0);
const tm = toTrustMaterial({
  certificateAuthorities: [{ certChain: { certificates: [{ rawBytes: der(info.fulcio_root_pem) }] }, validFor: { start } }],
  tlogs: [{ baseUrl: info.url, logId: { keyId: sha256(rekor) }, publicKey: { rawBytes: rekor, validFor: { start } } }],
  ctlogs: [{ baseUrl: info.url, logId: { keyId: sha256(ct) }, publicKey: { rawBytes: ct, validFor: { start } } }],
  timestampAuthorities: [],
});
const v = new Verifier(tm, { tlogThreshold: 1, ctlogThreshold: 1, timestampThreshold: 1 });
const policy = { subjectAlternativeName: info.subject, extensions: { issuer: info.issuer } };
let failed = 0;
for (const f of files) {
  try {
    const signer = v.verify(toSignedEntity(bundleFromJSON(JSON.parse(fs.readFileSync(f, 'utf8')))), policy);
    console.log('verified', f, signer.identity.subjectAlternativeName);
  } catch (e) { console.log('REJECTED', f, e.code || '', e.message); failed++; }
}
process.exit(failed ? 1 : 0);
"#;

#[test]
fn keyless_build_is_verified_by_sigstore_verify_and_kiln_verify() {
    let mock = SigstoreMock::start();
    let project = Project::from_testdata("hello", &format!("{HELLO_TOML}{LINEAGE}"));
    let out = run_ok(&mut keyless_build(&project, &mock));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("unsigned"), "{stderr}");
    let dir = project.out().join("hello");

    // The bundle: the Fulcio leaf, no key hint, one Rekor entry with promise and proof.
    let bundle: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("provenance.sigstore.json")).unwrap())
            .unwrap();
    let vm = &bundle["verificationMaterial"];
    assert!(vm.get("publicKey").is_none(), "{vm}");
    assert!(vm["certificate"]["rawBytes"].as_str().unwrap().len() > 500);
    let tlog = vm["tlogEntries"].as_array().unwrap();
    assert_eq!(tlog.len(), 1, "{vm}");
    let e = &tlog[0];
    assert_eq!(e["kindVersion"]["kind"], "intoto");
    assert_eq!(e["kindVersion"]["version"], "0.0.2");
    assert!(
        e["inclusionPromise"]["signedEntryTimestamp"].is_string(),
        "{e}"
    );
    assert!(
        e["inclusionProof"]["checkpoint"]["envelope"].is_string(),
        "{e}"
    );
    assert!(
        e["logIndex"].is_string() && e["integratedTime"].is_string(),
        "{e}"
    );
    assert_eq!(
        bundle["dsseEnvelope"]["signatures"][0].get("keyid"),
        None,
        "keyless envelopes name no key"
    );

    // @sigstore/verify: every bundle, with the mock's trust material.
    let info = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(info.path(), mock.info.to_string()).unwrap();
    let files = bundles(&dir);
    assert!(!files.is_empty());
    let mut args: Vec<&OsStr> = vec![info.path().as_os_str()];
    args.extend(files.iter().map(|p| p.as_os_str()));
    let out = node(SIGSTORE_VERIFY, &args);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .matches("verified")
            .count(),
        files.len()
    );

    // kiln verify with the keyless identity: every rule passes.
    let pol = tempfile::tempdir().unwrap();
    let p = policy(pol.path(), &mock, None);
    let out = verify(&dir, &p);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.lines().all(|l| l.starts_with("PASS ")), "{text}");
    let sig_line = text
        .lines()
        .find(|l| l.starts_with("PASS signature provenance.sigstore.json"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        sig_line.contains(mock.get("subject")) && sig_line.contains("inclusion proof"),
        "{sig_line}"
    );
    assert!(
        text.contains("PASS require[0] https://slsa.dev/provenance/v1"),
        "{text}"
    );

    // A subject regexp the certificate does not match: FAIL naming the identity.
    let wrong = tempfile::tempdir().unwrap();
    let p = policy(
        wrong.path(),
        &mock,
        Some("^https://github\\.com/someone-else/.*$"),
    );
    let out = verify(&dir, &p);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("FAIL signature provenance.sigstore.json")
            && text.contains("matches no policy identity")
            && text.contains(mock.get("subject")),
        "{text}"
    );

    // Another Sigstore's trust material (its own Fulcio root and Rekor key): refused.
    let other = SigstoreMock::start();
    let od = tempfile::tempdir().unwrap();
    let p = policy(od.path(), &other, None);
    let out = verify(&dir, &p);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("not a Rekor key the policy trusts"), "{text}");
    // ... and with the right Rekor key but the other Fulcio root: the chain fails.
    std::fs::write(
        od.path().join("rekor.pub"),
        mock.get("rekor_public_key_pem"),
    )
    .unwrap();
    let out = verify(&dir, &p);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("does not lead to a trusted Fulcio root"),
        "{text}"
    );

    // The control attestation signed keyless too: packed, attested with --keyless,
    // verified with the identity policy and required by it.
    let work = tempfile::tempdir().unwrap();
    let pack = work.path().join("pack");
    run_ok(
        project
            .kiln()
            .args(["evidence", "pack", "--out"])
            .arg(&pack),
    );
    let catalog = pol.path().join("catalog.yaml");
    std::fs::write(
        &catalog,
        "version: 1\ncontrols:\n  - id: SC-02\n    name: Provenance signed keyless by the release workflow\n    evidence: [\"provenance.sigstore.json\"]\n    assert:\n      - type: signed_provenance\n        policy: keyless.toml\n",
    )
    .unwrap();
    let mut attest = keyless_env(&project, &mock);
    attest
        .args(["controls", "attest", "--keyless", "--catalog"])
        .arg(&catalog)
        .arg("--pack")
        .arg(&pack);
    let out = attest.output().unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(
        pol.path().join("controls.toml"),
        format!(
            "{}\n[[require]]\npredicate_type = \"https://kiln.dev/attestations/controls/v1\"\ncontrols_pass = [\"SC-02\"]\n",
            std::fs::read_to_string(pol.path().join("keyless.toml")).unwrap()
        ),
    )
    .unwrap();
    let mut c = kiln();
    c.arg("verify")
        .arg(&dir)
        .arg("--policy")
        .arg(pol.path().join("controls.toml"))
        .arg("--pack")
        .arg(&pack);
    let out = c.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let sig = text
        .lines()
        .find(|l| l.starts_with("PASS signature controls.sigstore.json"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(sig.contains(mock.get("subject")), "{sig}");
    assert!(text.contains("PASS pack attestation files"), "{text}");
}

#[test]
fn keyless_without_a_token_or_with_a_key_fails_clearly() {
    let mock = SigstoreMock::start();
    let project = Project::from_testdata("hello", &format!("{HELLO_TOML}{LINEAGE}"));
    // Not on Actions and no $KILN_OIDC_TOKEN.
    let err = run_err(
        keyless_build(&project, &mock)
            .env_remove("ACTIONS_ID_TOKEN_REQUEST_URL")
            .env_remove("ACTIONS_ID_TOKEN_REQUEST_TOKEN"),
    );
    assert!(
        err.contains("no OIDC identity token") && err.contains("id-token: write"),
        "{err}"
    );
    assert!(
        project.out_entries().is_empty(),
        "{:?}",
        project.out_entries()
    );
    // The token service refusing the request token.
    let err =
        run_err(keyless_build(&project, &mock).env("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "wrong"));
    assert!(
        err.contains("OIDC token service") && err.contains("401"),
        "{err}"
    );
    // A key and --keyless at once: refused, nothing written.
    let keys = tempfile::tempdir().unwrap();
    run_ok(
        kiln()
            .arg("keygen")
            .arg("--out")
            .arg(keys.path().join("kiln")),
    );
    let err = run_err(
        keyless_build(&project, &mock)
            .arg("--key")
            .arg(keys.path().join("kiln.key")),
    );
    assert!(err.contains("--keyless") && err.contains("fix:"), "{err}");
    assert!(
        project.out_entries().is_empty(),
        "{:?}",
        project.out_entries()
    );
    // $KILN_OIDC_TOKEN is used instead of the token service when set.
    run_ok(
        keyless_build(&project, &mock)
            .env_remove("ACTIONS_ID_TOKEN_REQUEST_URL")
            .env("KILN_OIDC_TOKEN", mock.get("token")),
    );
    assert!(
        project
            .out()
            .join("hello/provenance.sigstore.json")
            .is_file()
    );
}
