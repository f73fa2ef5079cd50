//! The whole flow on a small hand-made layout: write → verify passes; any single flipped
//! byte in a blob, the SBOM, an envelope or a bundle → verify fails naming the file.

use std::collections::BTreeMap;
use std::path::Path;

use kiln_core::{Digest, canonical};

use crate::attach::Descriptor;
use crate::provenance::tests::inputs;
use crate::*;

const BIN: &[u8] = b"\x7fELF pretend binary";

fn blob(layout: &Path, bytes: &[u8]) -> Digest {
    let d = Digest::of(bytes);
    let p = layout.join("blobs/sha256").join(d.hex());
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
    d
}

/// An output directory with a one-layer image, an SBOM, and a key pair; returns the
/// image manifest descriptor and the policy.
pub(crate) fn fixture(out: &Path, keys: &Path) -> (Descriptor, Policy) {
    let layout = out.join("oci");
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(BIN.len() as u64);
    h.set_mode(0o755);
    h.set_cksum();
    tar.append_data(&mut h, "usr/local/bin/hello", BIN).unwrap();
    let tar = tar.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &tar).unwrap();
    let gz = gz.finish().unwrap();
    let layer = blob(&layout, &gz);
    let config = canonical::to_vec(&serde_json::json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [Digest::of(&tar)]}})).unwrap();
    let config = config.as_slice();
    let config_d = blob(&layout, config);
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_d, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer, "size": gz.len()}],
    });
    let mbytes = canonical::to_vec(&manifest).unwrap();
    let md = blob(&layout, &mbytes);
    let image = Descriptor {
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        digest: md,
        size: mbytes.len() as u64,
        artifact_type: None,
        annotations: BTreeMap::from([(
            "org.opencontainers.image.ref.name".to_string(),
            "latest".to_string(),
        )]),
    };
    let mut entry = serde_json::to_value(&image).unwrap();
    entry["platform"] = serde_json::json!({"architecture": "amd64", "os": "linux"});
    let index = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [entry]});
    std::fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    std::fs::write(
        layout.join("index.json"),
        canonical::to_vec(&index).unwrap(),
    )
    .unwrap();
    std::fs::write(
        out.join("sbom.cdx.json"),
        canonical::to_vec_pretty(
            &serde_json::json!({"bomFormat": "CycloneDX", "specVersion": "1.6", "version": 1}),
        )
        .unwrap(),
    )
    .unwrap();
    if !keys.join("kiln.key").exists() {
        keygen(&keys.join("kiln")).unwrap();
    }
    let policy_path = keys.join("policy.toml");
    std::fs::write(&policy_path, POLICY).unwrap();
    (image, Policy::load(&policy_path).unwrap())
}

const POLICY: &str = r#"
[[keys]]
path = "kiln.pub"

[[require]]
predicate_type = "https://slsa.dev/provenance/v1"
build_type = "https://github.com/kiln-build/kiln/buildtypes/oci-image/v1"
builder_id = "https://github.com/kiln-build/kiln/builders/local/v1"
lineage = ["source", "transform"]
sbom = true

[[require]]
predicate_type = "https://cyclonedx.org/bom"
"#;

fn provenance_inputs(image: &Descriptor) -> provenance::ProvenanceInputs {
    let mut i = inputs();
    i.manifest_digest = image.digest;
    i.binaries = vec![("/usr/local/bin/hello".into(), Digest::of(BIN))];
    i
}

fn build(out: &Path, keys: &Path) -> (Descriptor, Policy) {
    let (image, policy) = fixture(out, keys);
    let key = SigningKey::load(&keys.join("kiln.key")).unwrap();
    let w = write(
        out,
        &out.join("oci"),
        &image,
        provenance_inputs(&image),
        &Signer::Key(&key),
    )
    .unwrap();
    assert_eq!(
        w.files,
        [
            "provenance.intoto.json",
            "provenance.sigstore.json",
            "sbom.cdx.intoto.json",
            "sbom.cdx.sigstore.json"
        ]
    );
    assert_eq!(w.referrers.len(), 3, "two bundles and the raw SBOM");
    crate::verify::write_derived(out);
    (image, policy)
}

#[test]
fn signed_output_verifies_and_reruns_are_identical() {
    let d = tempfile::tempdir().unwrap();
    let keys = d.path().join("keys");
    let out = d.path().join("out");
    let (_, policy) = build(&out, &keys);
    let r = verify(&out, &policy);
    assert!(r.ok, "{:#?}", r.lines());
    assert_eq!(
        r.lines()
            .iter()
            .filter(|l| l.starts_with("PASS require"))
            .count(),
        2,
        "{:#?}",
        r.lines()
    );

    // Same inputs and key, another directory: identical bytes, index included.
    let out2 = d.path().join("elsewhere/out");
    build(&out2, &keys);
    for f in [
        "provenance.intoto.json",
        "provenance.sigstore.json",
        "sbom.cdx.sigstore.json",
        "oci/index.json",
    ] {
        assert_eq!(
            std::fs::read(out.join(f)).unwrap(),
            std::fs::read(out2.join(f)).unwrap(),
            "{f}"
        );
    }
    // Re-attaching replaces rather than duplicates the referrers.
    build(&out2, &keys);
    assert_eq!(
        std::fs::read(out.join("oci/index.json")).unwrap(),
        std::fs::read(out2.join("oci/index.json")).unwrap()
    );
}

#[test]
fn wrong_key_missing_lineage_and_missing_attestation_fail_with_reasons() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    let (_, _) = build(&out, &d.path().join("keys"));

    let other = d.path().join("other");
    keygen(&other.join("kiln")).unwrap();
    std::fs::write(
        other.join("p.toml"),
        POLICY.replace(
            "lineage = [\"source\", \"transform\"]",
            "lineage = [\"policy_version\"]",
        ),
    )
    .unwrap();
    let r = verify(&out, &Policy::load(&other.join("p.toml")).unwrap());
    assert!(!r.ok);
    let text = r.lines().join("\n");
    assert!(
        text.contains("FAIL signature provenance.sigstore.json") && text.contains("does not trust"),
        "{text}"
    );
    assert!(text.contains("missing attestation"), "{text}");

    let keys = d.path().join("keys");
    std::fs::write(
        keys.join("p2.toml"),
        POLICY.replace(
            "lineage = [\"source\", \"transform\"]",
            "lineage = [\"policy_version\"]",
        ) + "\n[[require]]\npredicate_type = \"https://openvex.dev/ns\"\n",
    )
    .unwrap();
    let r = verify(&out, &Policy::load(&keys.join("p2.toml")).unwrap());
    let text = r.lines().join("\n");
    assert!(
        text.contains("FAIL require[0]") && text.contains("policy_version"),
        "{text}"
    );
    assert!(
        text.contains("PASS require[1]")
            && text.contains("FAIL require[2] https://openvex.dev/ns: missing attestation"),
        "{text}"
    );
}

#[test]
fn unsigned_provenance_is_attached_and_verify_says_no_signature() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    let (image, policy) = fixture(&out, &d.path().join("keys"));
    let w = write(
        &out,
        &out.join("oci"),
        &image,
        provenance_inputs(&image),
        &Signer::Unsigned,
    )
    .unwrap();
    assert_eq!(w.files, ["provenance.json"]);
    let r = verify(&out, &policy);
    assert!(!r.ok);
    assert!(r.lines().iter().any(|l| l.starts_with("FAIL signature provenance.json: provenance.json: no signature")), "{:#?}", r.lines());
}

/// A deterministic xorshift, so failures name reproducible positions.
fn positions(seed: u64, len: usize, n: usize) -> Vec<usize> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % len as u64) as usize
        })
        .collect()
}

#[test]
fn flipping_any_byte_of_blobs_sbom_envelope_or_bundle_fails_naming_the_file() {
    let d = tempfile::tempdir().unwrap();
    let keys = d.path().join("keys");
    let out = d.path().join("out");
    let (_, policy) = build(&out, &keys);
    let mut targets: Vec<String> = [
        "sbom.cdx.json",
        "provenance.intoto.json",
        "provenance.sigstore.json",
        "sbom.cdx.intoto.json",
        "sbom.cdx.sigstore.json",
    ]
    .map(String::from)
    .to_vec();
    for e in std::fs::read_dir(out.join("oci/blobs/sha256")).unwrap() {
        targets.push(format!(
            "oci/blobs/sha256/{}",
            e.unwrap().file_name().to_string_lossy()
        ));
    }
    let mut runs = 0;
    for (t, target) in targets.iter().enumerate() {
        let orig = std::fs::read(out.join(target)).unwrap();
        let name = target.rsplit('/').next().unwrap();
        for pos in positions(0x9e37_79b9 + t as u64, orig.len(), 24) {
            for flip in [0x01u8, 0x80] {
                let mut bytes = orig.clone();
                bytes[pos] ^= flip;
                std::fs::write(out.join(target), &bytes).unwrap();
                let r = verify(&out, &policy);
                runs += 1;
                let fails: Vec<_> = r.checks.iter().filter(|c| !c.pass).collect();
                assert!(
                    !r.ok,
                    "{target}: flipping byte {pos} ({flip:#x}) went unnoticed"
                );
                assert!(
                    fails
                        .iter()
                        .any(|c| c.detail.contains(name) || c.rule.contains(name)),
                    "{target} byte {pos}: no failure names {name}: {:#?}",
                    r.lines()
                );
            }
        }
        std::fs::write(out.join(target), &orig).unwrap();
    }
    assert!(verify(&out, &policy).ok);
    assert!(runs > 400, "{runs}");
}

/// The policy's admission rules judge what the signed provenance says about the base and
/// the tag: an allowlisted base passes, another is refused, a base without a recorded
/// reference cannot pass an allowlist, and `deny_latest` refuses a `latest` base.
#[test]
fn admission_rules_judge_the_base_and_tag_the_provenance_records() {
    let base = Digest::of(b"base manifest");
    let run = |base_ref: Option<&str>, rules: &str| -> String {
        let d = tempfile::tempdir().unwrap();
        let keys = d.path().join("keys");
        let out = d.path().join("out");
        let (image, _) = fixture(&out, &keys);
        let key = SigningKey::load(&keys.join("kiln.key")).unwrap();
        let mut i = provenance_inputs(&image);
        i.base = Some(base);
        i.base_ref = base_ref.map(String::from);
        write(&out, &out.join("oci"), &image, i, &Signer::Key(&key)).unwrap();
        crate::verify::write_derived(&out);
        std::fs::write(keys.join("a.toml"), format!("{rules}\n{POLICY}")).unwrap();
        let r = verify(&out, &Policy::load(&keys.join("a.toml")).unwrap());
        r.lines()
            .into_iter()
            .find(|l| l.contains(" admission: "))
            .unwrap_or_else(|| panic!("no admission line: {:#?}", r.lines()))
    };
    let allow = format!("base_allowlist = [\"ghcr.io/acme/base@{base}\"]");
    let l = run(Some("ghcr.io/acme/base:1.2"), &allow);
    assert!(
        l.starts_with("PASS admission:") && l.contains("is allowed by"),
        "{l}"
    );
    let l = run(Some("ghcr.io/other/base:1.2"), &allow);
    assert!(
        l.starts_with("FAIL admission:") && l.contains("not in the base-image allowlist"),
        "{l}"
    );
    let l = run(None, &allow);
    assert!(
        l.starts_with("FAIL admission:") && l.contains("recorded without a reference"),
        "{l}"
    );
    let l = run(Some("ghcr.io/acme/base:latest"), "deny_latest = true");
    assert!(
        l.starts_with("FAIL admission:") && l.contains("latest"),
        "{l}"
    );
    // The fixture's image itself is tagged `latest`.
    let l = run(Some("ghcr.io/acme/base:1.2"), "deny_latest = true");
    assert!(
        l.starts_with("FAIL admission: image hello:latest is tagged `latest`"),
        "{l}"
    );
    let e = Policy::parse(
        Path::new("p.toml"),
        "base_allowlist = [\"debian:12\"]\n[[keys]]\npath = \"k.pub\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("base_allowlist[0]") && e.contains("names no digest"),
        "{e}"
    );
}
