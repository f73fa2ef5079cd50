//! End-to-end: `kiln push`, `kiln pull` and `kiln verify REF` against a real registry
//! (CNCF distribution 2.8, `docker-registry`, which has no referrers API, so kiln keeps the
//! referrers tag schema's `sha256-<hex>` index), read back by skopeo, checked by an
//! independent ECDSA verifier, through a proxy that injects faults, and against a registry
//! an attacker has written to.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::support::registry::{Action, Fault, FaultProxy, Registry};
use crate::support::*;

const TAGGED: &str = "tag = \"0.1.0\"\n";
const LINEAGE: &str = "\n[lineage]\nsource = \"https://github.com/kiln-build/kiln\"\ntransform = \"release-build\"\npolicy_version = \"2024.1\"\n";

/// One signed hello build, tagged 0.1.0, with VEX (so SBOM, VEX, provenance and their
/// bundles are all attached), shared by the tests here: each pushes it to a registry of
/// its own.
struct Built {
    project: Project,
    keys: tempfile::TempDir,
}

fn built() -> &'static Built {
    static B: OnceLock<Built> = OnceLock::new();
    B.get_or_init(|| {
        let toml = HELLO_TOML.replace(
            "binaries = [\"hello\"]\n",
            &format!("binaries = [\"hello\"]\n{TAGGED}"),
        );
        let project = Project::from_testdata("hello", &format!("{toml}{LINEAGE}"));
        add_vex(&project);
        let keys = tempfile::tempdir().unwrap();
        keygen(keys.path());
        std::fs::copy(
            repo().join("testdata/policy/default.toml"),
            keys.path().join("default.toml"),
        )
        .unwrap();
        run_ok(
            without_ambient(project.kiln())
                .arg("build")
                .arg("--key")
                .arg(keys.path().join("kiln.key")),
        );
        Built { project, keys }
    })
}

impl Built {
    fn out(&self) -> PathBuf {
        self.project.out().join("hello")
    }
    fn key(&self) -> PathBuf {
        self.keys.path().join("kiln.key")
    }
    fn policy(&self) -> PathBuf {
        self.keys.path().join("default.toml")
    }
    fn digest(&self) -> String {
        let s: serde_json::Value =
            serde_json::from_slice(&std::fs::read(self.out().join("summary.json")).unwrap())
                .unwrap();
        s["digest"].as_str().unwrap().to_string()
    }
    /// Neither kiln's output nor push.json holds `secret`.
    #[track_caller]
    fn assert_no_secret(&self, out: &std::process::Output, secret: &str) {
        for text in [&out.stdout, &out.stderr] {
            let t = String::from_utf8_lossy(text);
            assert!(!t.contains(secret), "the password was printed: {t}");
        }
        let report = std::fs::read_to_string(self.out().join("push.json")).unwrap_or_default();
        assert!(!report.contains(secret), "push.json holds the password");
    }
    fn push(&self, reference: &str) -> std::process::Command {
        let mut c = without_ambient(self.project.kiln());
        c.args(["push", reference, "--insecure-http", "--json"]);
        c
    }
}

fn skopeo_raw(reference: &str) -> Vec<u8> {
    run_ok(
        kiln_core::process::command(tool("skopeo"))
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{reference}")),
    )
    .stdout
}

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(bytes)))
}

fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    std::fs::read(
        layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:")),
    )
    .unwrap()
}

fn verify_ref(reference: &str, policy: &Path) -> std::process::Output {
    without_ambient(kiln())
        .args(["verify", reference, "--insecure-http", "--policy"])
        .arg(policy)
        .output()
        .unwrap()
}

/// The whole round trip: push, what skopeo reads back, the cosign tags, an idempotent
/// re-push, a pull that reproduces the layout byte for byte, and `verify REF`.
#[test]
fn push_pull_and_verify_from_a_registry() {
    let b = built();
    let reg = Registry::start();
    let repo_ref = format!("{}/team/hello", reg.addr);
    let out = run_ok(b.push(&repo_ref).arg("--key").arg(b.key()));
    let report = json(&out.stdout);
    let digest = b.digest();
    let hex = digest.trim_start_matches("sha256:");
    assert_eq!(report["reference"], format!("{repo_ref}:0.1.0@{digest}"));
    assert_eq!(
        report["referrers"],
        format!("referrers tag schema (sha256-{hex})"),
        "docker-registry 2.8 has no referrers API: {report}"
    );
    let pushed_json = std::fs::read(b.out().join("push.json")).unwrap();
    assert_eq!(
        json(&pushed_json),
        report,
        "push.json is what --json printed"
    );

    // The registry holds the exact bytes: skopeo reads the image manifest back.
    let layout = b.out().join("oci");
    let index = json(&std::fs::read(layout.join("index.json")).unwrap());
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(
        skopeo_raw(&format!("{repo_ref}:0.1.0")),
        blob(&layout, &digest)
    );
    // Every referrer of the layout is listed in the tag-schema index, with the artifact
    // manifest's artifactType and annotations, and fetchable by digest.
    let referrers = json(&skopeo_raw(&format!("{repo_ref}:sha256-{hex}")));
    assert_eq!(
        referrers["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let listed: Vec<&str> = referrers["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["digest"].as_str().unwrap())
        .collect();
    let attached: Vec<&serde_json::Value> = entries
        .iter()
        .filter(|e| e.get("artifactType").is_some())
        .collect();
    assert!(
        attached.len() >= 8,
        "SBOMs, VEX, provenance and their bundles: {index}"
    );
    for e in &attached {
        let d = e["digest"].as_str().unwrap();
        assert!(
            listed.contains(&d),
            "{d} is not in the referrers index {referrers}"
        );
        assert_eq!(skopeo_raw(&format!("{repo_ref}@{d}")), blob(&layout, d));
        let listed_entry = referrers["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["digest"] == d)
            .unwrap();
        let m = json(&blob(&layout, d));
        assert_eq!(listed_entry["artifactType"], m["artifactType"]);
        assert_eq!(listed_entry["annotations"], m["annotations"]);
    }

    // cosign's legacy tags: every DSSE envelope as a layer of `.att`; `.sig` a simple
    // signing payload whose signature the public key verifies (Python's cryptography).
    let att_raw = skopeo_raw(&format!("{repo_ref}:sha256-{hex}.att"));
    let local_att = entries
        .iter()
        .find(|e| e["annotations"]["kind"] == "dev.cosignproject.cosign/atts")
        .expect("the layout lists cosign's attestations image");
    assert_eq!(
        kiln_core::Digest::of(&att_raw).to_string(),
        local_att["digest"].as_str().unwrap(),
        "the pushed .att is not the layout's"
    );
    let att = json(&att_raw);
    let att_layers = att["layers"].as_array().unwrap();
    let envelopes = std::fs::read_dir(b.out())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".intoto.json")
        })
        .count();
    assert_eq!(att_layers.len(), envelopes, "{att}");
    for l in att_layers {
        assert_eq!(l["mediaType"], "application/vnd.dsse.envelope.v1+json");
        assert!(
            l["annotations"]["predicateType"]
                .as_str()
                .unwrap()
                .starts_with("https://")
        );
    }
    let sig = json(&skopeo_raw(&format!("{repo_ref}:sha256-{hex}.sig")));
    let layer = &sig["layers"][0];
    assert_eq!(
        layer["mediaType"],
        "application/vnd.dev.cosign.simplesigning.v1+json"
    );
    let payload = run_ok(
        kiln_core::process::command(tool("skopeo"))
            .args(["copy", "--src-tls-verify=false"])
            .arg(format!("docker://{repo_ref}:sha256-{hex}.sig"))
            .arg(format!(
                "oci:{}:sig",
                b.keys.path().join("sig-layout").display()
            )),
    );
    drop(payload);
    let payload = blob(
        &b.keys.path().join("sig-layout"),
        layer["digest"].as_str().unwrap(),
    );
    let p = json(&payload);
    assert_eq!(p["critical"]["image"]["docker-manifest-digest"], digest);
    assert_eq!(p["critical"]["identity"]["docker-reference"], repo_ref);
    let payload_file = b.keys.path().join("sig-payload");
    std::fs::write(&payload_file, &payload).unwrap();
    python(
        "import sys,base64\nfrom cryptography.hazmat.primitives import serialization as s, hashes\nfrom cryptography.hazmat.primitives.asymmetric import ec\nk=s.load_pem_public_key(open(sys.argv[1],'rb').read())\nk.verify(base64.b64decode(sys.argv[3]), open(sys.argv[2],'rb').read(), ec.ECDSA(hashes.SHA256()))\nprint('ok')",
        &[
            b.keys.path().join("kiln.pub").as_os_str(),
            payload_file.as_os_str(),
            std::ffi::OsStr::new(
                layer["annotations"]["dev.cosignproject.cosign/signature"]
                    .as_str()
                    .unwrap(),
            ),
        ],
    );

    // Pushing the same build again uploads nothing and moves no tag.
    let again = json(&run_ok(b.push(&repo_ref).arg("--key").arg(b.key())).stdout);
    for kind in ["blobs", "manifests"] {
        for p in again[kind].as_array().unwrap() {
            assert_eq!(p["outcome"], "present", "re-push uploaded {p}");
        }
    }
    for t in again["tags"].as_array().unwrap() {
        assert_eq!(t["outcome"], "unchanged", "re-push moved {t}");
    }

    // Pull: the layout comes back byte for byte, the evidence files beside it too.
    let pulled = tempfile::tempdir().unwrap();
    let dest = pulled.path().join("hello");
    run_ok(
        without_ambient(kiln())
            .args(["pull", &format!("{repo_ref}:0.1.0")])
            .arg(&dest)
            .arg("--insecure-http"),
    );
    assert_eq!(
        std::fs::read(dest.join("oci/index.json")).unwrap(),
        std::fs::read(layout.join("index.json")).unwrap(),
        "the pulled index.json differs from the built one"
    );
    let local = read_tree(&b.out());
    for (rel, bytes) in read_tree(&dest) {
        assert_eq!(
            local.get(&rel),
            Some(&bytes),
            "{rel} differs from the build's"
        );
    }

    // @sigstore/verify accepts every bundle pulled back (offline, the policy's key).
    let bundles: Vec<PathBuf> = std::fs::read_dir(&dest)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".sigstore.json"))
        .collect();
    assert!(bundles.len() >= 6, "{bundles:?}");
    let hint =
        json(&std::fs::read(&bundles[0]).unwrap())["verificationMaterial"]["publicKey"]["hint"]
            .as_str()
            .unwrap()
            .to_string();
    let public = b.keys.path().join("kiln.pub");
    let mut args: Vec<&std::ffi::OsStr> = vec![public.as_os_str(), hint.as_ref()];
    args.extend(bundles.iter().map(|p| p.as_os_str()));
    let out = node(SIGSTORE_VERIFY_KEYED, &args);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .matches("verified ")
            .count(),
        bundles.len()
    );

    // verify REF: the same checks as on a layout, all passing.
    let v = verify_ref(&format!("{repo_ref}:0.1.0"), &b.policy());
    let text = String::from_utf8_lossy(&v.stdout);
    assert!(
        v.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&v.stderr)
    );
    assert!(
        text.contains(&format!("resolved tag 0.1.0 → {digest}")),
        "{text}"
    );
    assert!(
        text.contains("PASS require[0] https://slsa.dev/provenance/v1"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "PASS cosign signature (.sig): sha256-{hex}.sig: simple signing of {digest} by key"
        )),
        "{text}"
    );
    assert!(text.contains("PASS cosign attestations: "), "{text}");
    assert!(!text.contains("FAIL"), "{text}");
    // ... and by digest.
    let v = verify_ref(&format!("{repo_ref}@{digest}"), &b.policy());
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stdout));
}

/// `latest` is refused, and so is a tag the signed provenance does not name; nothing
/// reaches the registry.
#[test]
fn push_refuses_latest_and_unsigned_tags() {
    let b = built();
    let reg = Registry::start();
    let e = run_err(&mut b.push(&format!("{}/team/hello:latest", reg.addr)));
    assert!(e.contains("refusing to push the tag `latest`"), "{e}");
    assert!(e.contains("fix: give the image a release tag"), "{e}");
    let e = run_err(&mut b.push(&format!("{}/team/hello:9.9.9", reg.addr)));
    assert!(
        e.contains("built and signed as tag `0.1.0`") && e.contains("fix: push REPOSITORY:0.1.0"),
        "{e}"
    );
    let e = run_err(
        b.push(&format!("{}/team/hello", reg.addr))
            .args(["--image", "nope"]),
    );
    assert!(
        e.contains("no image named `nope`") && e.contains("fix: use one of: hello"),
        "{e}"
    );
    let e = run_err(&mut b.push("registry.example.com/team/hello"));
    assert!(
        e.contains("plain HTTP is allowed only for a registry on this machine"),
        "{e}"
    );
    assert!(!b.out().join("push.json").exists() || b.out().join("push.json").is_file());
    let catalog = get_body(&reg.addr, "/v2/_catalog");
    assert_eq!(
        json(&catalog)["repositories"],
        serde_json::json!([]),
        "something was pushed"
    );
}

/// Faults between kiln and the registry: 5xx, dropped connections before and after the
/// registry acted, a truncated answer and a chunked upload cut mid-way. The push
/// retries or resumes and ends with exactly what a clean push stores; a registry that
/// keeps failing makes the push fail, and no tag then points at an incomplete image.
#[test]
fn push_survives_faults_and_never_tags_an_incomplete_image() {
    let b = built();
    let reg = Registry::start();
    let faults = vec![
        // The first request stalls past the client's timeout (1 s here): it is retried.
        Fault {
            method: Some("GET"),
            path_contains: "/v2/",
            nth: 1,
            action: Action::Stall(std::time::Duration::from_secs(3)),
        },
        Fault {
            method: Some("HEAD"),
            path_contains: "/blobs/",
            nth: 1,
            action: Action::Status(503),
        },
        Fault {
            method: Some("PATCH"),
            path_contains: "/blobs/uploads/",
            nth: 2,
            action: Action::DropAfterForward,
        },
        Fault {
            method: Some("PATCH"),
            path_contains: "/blobs/uploads/",
            nth: 4,
            action: Action::Drop,
        },
        Fault {
            method: Some("PUT"),
            path_contains: "/blobs/uploads/",
            nth: 1,
            action: Action::Status(500),
        },
        // The layer's one streamed PUT is cut: the push falls back to resumable chunks.
        Fault {
            method: Some("PUT"),
            path_contains: "/blobs/uploads/",
            nth: 3,
            action: Action::Drop,
        },
        Fault {
            method: Some("PUT"),
            path_contains: "/manifests/sha256:",
            nth: 1,
            action: Action::DropAfterForward,
        },
        Fault {
            method: Some("GET"),
            path_contains: "/manifests/sha256-",
            nth: 1,
            action: Action::Truncate(10),
        },
    ];
    let proxy = FaultProxy::start(&reg.addr, faults.clone());
    let repo_ref = format!("{}/team/hello", proxy.addr);
    // Small chunks, so the binary's layer is larger than one: it is streamed in one PUT
    // (cut by the proxy), then sent again in several PATCHes, two of them cut.
    // One blob at a time, so the faults land on the requests the script names.
    let out = run_ok(
        b.push(&repo_ref)
            .env("KILN_PUSH_CHUNK_SIZE", "65536")
            .env("KILN_PUSH_PARALLEL", "1")
            .env("KILN_REGISTRY_TIMEOUT", "1"),
    );
    let report = json(&out.stdout);
    // One retry per fault scripted: the stall, the 503, the dropped streamed PUT, the 500,
    // the manifest PUT dropped after the registry took it, the truncated answer (the PATCH
    // cuts restart or resume the upload instead).
    assert!(report["retries"].as_u64().unwrap() >= 6, "{report}");
    let log = proxy.requests();
    assert!(
        log.iter().filter(|(m, _, _)| m == "PATCH").count() >= 3,
        "{log:?}"
    );
    // What the registry holds equals what a clean push gives.
    let direct = format!("{}/team/hello", reg.addr);
    let digest = b.digest();
    assert_eq!(
        skopeo_raw(&format!("{direct}:0.1.0")),
        blob(&b.out().join("oci"), &digest)
    );
    let v = verify_ref(&format!("{direct}:0.1.0"), &b.policy());
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stdout));

    // The same faults with the default parallel uploads: whichever request they hit,
    // the push ends with the same bytes in the registry.
    let reg_p = Registry::start();
    let proxy_p = FaultProxy::start(&reg_p.addr, faults.clone());
    run_ok(
        b.push(&format!("{}/team/hello", proxy_p.addr))
            .env("KILN_PUSH_CHUNK_SIZE", "65536"),
    );
    assert_eq!(
        skopeo_raw(&format!("{}/team/hello:0.1.0", reg_p.addr)),
        blob(&b.out().join("oci"), &digest)
    );

    // A registry that fails every manifest PUT by tag: the push fails, the tag is absent.
    let reg2 = Registry::start();
    let faults = (1..=20)
        .map(|nth| Fault {
            method: Some("PUT"),
            path_contains: "/manifests/0.1.0",
            nth,
            action: Action::Status(503),
        })
        .collect();
    let proxy2 = FaultProxy::start(&reg2.addr, faults);
    let e = run_err(&mut b.push(&format!("{}/team/hello", proxy2.addr)));
    assert!(e.contains("HTTP 503") && e.contains("attempt"), "{e}");
    let status =
        crate::support::registry::get_status(&reg2.addr, "/v2/team/hello/manifests/0.1.0", None)
            .unwrap();
    assert_eq!(status, 404, "a failed push left the tag behind");
}

/// An attacker with push rights attaches a forged SBOM (a consistent artifact manifest,
/// listed in the referrers index) and moves the tag to an unsigned image: `verify REF`
/// fails on both.
#[test]
fn verify_ref_fails_on_a_tampered_registry() {
    let b = built();
    let reg = Registry::start();
    let repo_ref = format!("{}/team/hello", reg.addr);
    run_ok(b.push(&repo_ref).arg("--key").arg(b.key()));

    // cosign's `.sig` replaced by one an attacker signed with a key of their own.
    let r = kiln_registry::Reference::parse(&repo_ref).unwrap();
    let client = kiln_registry::Client::new(
        &r,
        kiln_registry::Options {
            insecure_http: true,
            credentials: Some(kiln_registry::Credentials::Anonymous),
            ..Default::default()
        },
    )
    .unwrap();
    let image: kiln_core::Digest = b.digest().parse().unwrap();
    let evil = kiln_attest::cosign::signature_tag(
        &image,
        &r.repository_name(),
        &kiln_attest::SigningKey::generate(),
    );
    for bytes in std::iter::once(&evil.config).chain(evil.layers.iter().map(|(_, b)| b)) {
        let d = kiln_core::Digest::of(bytes);
        client
            .push_blob(
                &d,
                bytes.len() as u64,
                kiln_registry::BlobSource::Bytes(bytes),
                &[],
            )
            .unwrap();
    }
    client
        .put_manifest(
            &evil.tag,
            "application/vnd.oci.image.manifest.v1+json",
            &evil.manifest,
        )
        .unwrap();
    let v = verify_ref(&format!("{repo_ref}:0.1.0"), &b.policy());
    let text = String::from_utf8_lossy(&v.stdout);
    assert!(
        !v.status.success(),
        "a .sig by an untrusted key passed:\n{text}"
    );
    assert!(text.contains("FAIL cosign signature (.sig)"), "{text}");
    assert_eq!(
        text.lines().filter(|l| l.starts_with("FAIL")).count(),
        1,
        "{text}"
    );
    // Put kiln's back for what follows.
    run_ok(b.push(&repo_ref).arg("--key").arg(b.key()));

    // A forged SBOM attached to the same image, pushed with kiln itself from a layout
    // rewritten consistently (new blob, new artifact manifest, index.json updated).
    let forged = tempfile::tempdir().unwrap();
    copy_tree(b.project.path(), forged.path());
    let out = forged.path().join("target/kiln/out/hello");
    copy_tree(&b.out(), &out);
    let layout = out.join("oci");
    let mut index = json(&std::fs::read(layout.join("index.json")).unwrap());
    let entries = index["manifests"].as_array_mut().unwrap();
    let pos = entries
        .iter()
        .position(|e| e["annotations"]["org.opencontainers.image.title"] == "sbom.cdx.json")
        .unwrap();
    let old = entries[pos]["digest"].as_str().unwrap().to_string();
    let mut m = json(&blob(&layout, &old));
    let mut sbom = json(&blob(&layout, m["layers"][0]["digest"].as_str().unwrap()));
    sbom["components"] = serde_json::json!([]);
    let sbom_bytes = serde_json::to_vec(&sbom).unwrap();
    let sbom_digest = kiln_core::Digest::of(&sbom_bytes);
    std::fs::write(
        layout.join("blobs/sha256").join(sbom_digest.hex()),
        &sbom_bytes,
    )
    .unwrap();
    m["layers"][0]["digest"] = serde_json::json!(sbom_digest.to_string());
    m["layers"][0]["size"] = serde_json::json!(sbom_bytes.len());
    let m_bytes = kiln_core::canonical::to_vec(&m).unwrap();
    let m_digest = kiln_core::Digest::of(&m_bytes);
    std::fs::write(layout.join("blobs/sha256").join(m_digest.hex()), &m_bytes).unwrap();
    entries[pos]["digest"] = serde_json::json!(m_digest.to_string());
    entries[pos]["size"] = serde_json::json!(m_bytes.len());
    std::fs::write(
        layout.join("index.json"),
        kiln_core::canonical::to_vec(&index).unwrap(),
    )
    .unwrap();
    run_ok(without_ambient(kiln()).arg("-C").arg(forged.path()).args([
        "push",
        &repo_ref,
        "--insecure-http",
    ]));
    let v = verify_ref(&format!("{repo_ref}:0.1.0"), &b.policy());
    let text = String::from_utf8_lossy(&v.stdout);
    assert!(!v.status.success(), "a forged SBOM passed:\n{text}");
    assert!(
        text.contains("FAIL") && text.contains("sbom.cdx.json"),
        "{text}"
    );

    // The tag moved to an image without evidence (an unsigned copy under the same tag).
    let reg2 = Registry::start();
    let repo2 = format!("{}/team/hello", reg2.addr);
    let bare = tempfile::tempdir().unwrap();
    let bare_layout = bare.path().join("oci");
    run_ok(
        kiln_core::process::command(tool("skopeo"))
            .arg("copy")
            .arg(format!("oci:{}:0.1.0", b.out().join("oci").display()))
            .arg(format!("oci:{}:0.1.0", bare_layout.display())),
    );
    run_ok(
        kiln_core::process::command(tool("skopeo"))
            .args(["copy", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:0.1.0", bare_layout.display()))
            .arg(format!("docker://{repo2}:0.1.0")),
    );
    let v = verify_ref(&format!("{repo2}:0.1.0"), &b.policy());
    let text = String::from_utf8_lossy(&v.stdout);
    assert!(
        !v.status.success(),
        "an image without evidence passed:\n{text}"
    );
    assert!(text.contains("FAIL signature: no signature"), "{text}");
}

/// The body of a plain `GET` (HTTP/1.0, so the answer ends with the connection).
fn get_body(addr: &str, path: &str) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let at = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    raw[at + 4..].to_vec()
}

/// A registry that wants credentials: none configured is a clear error; the environment,
/// docker's `config.json` and a docker credential helper each work; a wrong password
/// fails; no secret ever appears in kiln's output or in push.json.
#[test]
fn push_authenticates_and_never_prints_a_secret() {
    let b = built();
    let (user, password) = ("kiln-ci", "s3cr3t-Pa55word");
    let reg = Registry::start_with_auth(user, password);
    let repo_ref = format!("{}/team/hello", reg.addr);
    let no_secret = |out: &std::process::Output| b.assert_no_secret(out, password);

    let out = b.push(&repo_ref).output().unwrap();
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("authentication failed") && e.contains("none is configured"),
        "{e}"
    );
    assert!(
        e.contains("fix: log in with `docker login REGISTRY`"),
        "{e}"
    );

    let out = b
        .push(&repo_ref)
        .env("KILN_REGISTRY_USERNAME", user)
        .env("KILN_REGISTRY_PASSWORD", "wrong")
        .output()
        .unwrap();
    assert!(!out.status.success(), "a wrong password was accepted");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("401"),
        "{out:?}"
    );

    let out = run_ok(
        b.push(&repo_ref)
            .env("KILN_REGISTRY_USERNAME", user)
            .env("KILN_REGISTRY_PASSWORD", password),
    );
    no_secret(&out);

    // docker's config.json, as `docker login` writes it.
    let docker = tempfile::tempdir().unwrap();
    let auth = crate::support::registry::base64(format!("{user}:{password}").as_bytes());
    std::fs::write(
        docker.path().join("config.json"),
        format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, reg.addr),
    )
    .unwrap();
    let out = run_ok(b.push(&repo_ref).env("DOCKER_CONFIG", docker.path()));
    no_secret(&out);
    assert_eq!(json(&out.stdout)["tags"][0]["outcome"], "unchanged");

    // A credential helper (`credHelpers`), as docker-credential-* programs answer `get`.
    let helper = docker.path().join("docker-credential-kilntest");
    std::fs::write(
        &helper,
        format!("#!/bin/sh\nread server\nprintf '{{\"ServerURL\":\"%s\",\"Username\":\"{user}\",\"Secret\":\"{password}\"}}' \"$server\"\n"),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::write(
        docker.path().join("config.json"),
        format!(r#"{{"credHelpers":{{"{}":"kilntest"}}}}"#, reg.addr),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        docker.path().display(),
        std::env::var("PATH").unwrap()
    );
    let out = run_ok(
        b.push(&repo_ref)
            .env("DOCKER_CONFIG", docker.path())
            .env("PATH", path),
    );
    no_secret(&out);
}

/// A registry with distribution's token authentication (as Docker Hub, GHCR and Harbor
/// have it): kiln answers the `Bearer realm=...,service=...` challenge by asking the
/// token service for a `repository:team/hello:pull,push` token with the credentials, and
/// pushes with it. Without credentials, or with a wrong password, the token service turns
/// kiln away and kiln says so; no secret ever appears in kiln's output or in push.json.
#[test]
fn push_answers_a_bearer_token_challenge() {
    let b = built();
    let (user, password) = ("kiln-ci", "t0ken-Pa55word");
    let reg = Registry::start_with_token_auth(user, password);
    let realm = reg.token_realm.clone().unwrap();
    let repo_ref = format!("{}/team/hello", reg.addr);
    let no_secret = |out: &std::process::Output| b.assert_no_secret(out, password);

    let out = b.push(&repo_ref).output().unwrap();
    no_secret(&out);
    assert!(!out.status.success(), "an anonymous push was accepted");
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("authentication failed") && e.contains(&realm) && e.contains("401"),
        "{e}\n{}",
        reg.logs()
    );
    assert!(
        e.contains("fix: log in with `docker login REGISTRY`"),
        "{e}"
    );

    let out = b
        .push(&repo_ref)
        .env("KILN_REGISTRY_USERNAME", user)
        .env("KILN_REGISTRY_PASSWORD", "wrong")
        .output()
        .unwrap();
    no_secret(&out);
    assert!(!out.status.success(), "a wrong password was accepted");
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains(&realm) && e.contains("401"), "{e}");
    let log = reg.token_requests();
    assert_eq!(
        log.iter()
            .map(|r| (r["user"].clone(), r["status"].clone()))
            .collect::<Vec<_>>(),
        [
            (serde_json::Value::Null, 401.into()),
            (user.into(), 401.into())
        ],
        "the token service turned both away: {log:#?}"
    );

    let out = b
        .push(&repo_ref)
        .env("KILN_REGISTRY_USERNAME", user)
        .env("KILN_REGISTRY_PASSWORD", password)
        .output()
        .unwrap();
    no_secret(&out);
    assert!(
        out.status.success(),
        "{}\n--- token service requests\n{:#?}\n{}",
        String::from_utf8_lossy(&out.stderr),
        reg.token_requests(),
        reg.logs()
    );
    let report = json(&out.stdout);
    let digest = b.digest();
    assert_eq!(report["reference"], format!("{repo_ref}:0.1.0@{digest}"));
    let log = reg.token_requests();
    assert!(
        log[2..]
            .iter()
            .all(|r| r["status"] == 200 && r["user"] == user),
        "{log:#?}"
    );
    // A token per scope kiln needs (pull, then pull and push), not one per request.
    assert!(log.len() - 2 <= 3, "{log:#?}");
    assert!(
        log.iter().any(|r| {
            r["scope"] == serde_json::json!(["repository:team/hello:pull,push"])
                && r["granted"]
                    == serde_json::json!([
                        {"type": "repository", "name": "team/hello", "actions": ["pull", "push"]}
                    ])
        }),
        "kiln asked for (and got) pull and push on team/hello: {log:#?}"
    );
    // What the registry holds, read back with a token of skopeo's own.
    let raw = run_ok(
        kiln_core::process::command(tool("skopeo"))
            .args(["inspect", "--raw", "--tls-verify=false", "--creds"])
            .arg(format!("{user}:{password}"))
            .arg(format!("docker://{repo_ref}:0.1.0")),
    )
    .stdout;
    assert_eq!(raw, blob(&b.out().join("oci"), &digest));
}

/// `build --push` pushes what it just built; a second repository of the same registry
/// then gets every blob by cross-repository mount (`--mount-from`), none uploaded.
#[test]
fn build_push_and_mount_from_another_repository() {
    let toml = HELLO_TOML.replace(
        "binaries = [\"hello\"]\n",
        &format!("binaries = [\"hello\"]\n{TAGGED}"),
    );
    let p = Project::from_testdata("hello", &toml);
    let reg = Registry::start();
    let a = format!("{}/team/a", reg.addr);
    let out = run_ok(without_ambient(p.kiln()).args(["build", "--push", &a, "--insecure-http"]));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("kiln: pushed {a}:0.1.0@sha256:")),
        "{out:?}"
    );
    let digest =
        json(&std::fs::read(p.out().join("hello/summary.json")).unwrap())["digest"].clone();
    assert_eq!(
        kiln_core::Digest::of(&skopeo_raw(&format!("{a}:0.1.0"))).to_string(),
        digest.as_str().unwrap()
    );
    let b = format!("{}/team/b", reg.addr);
    let report = json(
        &run_ok(without_ambient(p.kiln()).args([
            "push",
            &b,
            "--insecure-http",
            "--json",
            "--mount-from",
            "team/a",
        ]))
        .stdout,
    );
    let blobs = report["blobs"].as_array().unwrap();
    assert!(!blobs.is_empty());
    for blob in blobs {
        assert_eq!(blob["outcome"], "mounted from team/a", "{blob}");
    }
}

/// A bundle `@sigstore/oci` (the writer GitHub's attest actions use) attached to the
/// pushed image: `verify REF` reads it apart from kiln's own evidence — one signed by a key
/// the policy does not trust is listed and not counted; one signed by a trusted key
/// satisfies a `[[require]]` of its predicate type. kiln's re-push keeps the other tool's
/// entries in the referrers index.
#[test]
fn verify_ref_reads_bundles_another_tool_attached() {
    let b = built();
    let reg = Registry::start();
    let repo_ref = format!("{}/team/hello", reg.addr);
    run_ok(&mut b.push(&repo_ref));
    let digest = b.digest();
    let review = "https://example.com/code-review/v1";
    let statement = serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": repo_ref, "digest": {"sha256": digest.trim_start_matches("sha256:")}}],
        "predicateType": review,
        "predicate": {"reviewer": "alice", "approved": true},
    });
    let payload = kiln_core::canonical::to_vec(&statement).unwrap();
    let bundle_of = |key: &kiln_attest::SigningKey| {
        let env = kiln_attest::dsse::Envelope::sign(&payload, key);
        kiln_core::canonical::to_vec(&kiln_attest::dsse::Bundle::keyed(env, key.public())).unwrap()
    };
    let work = tempfile::tempdir().unwrap();
    let attach = |bundle: Vec<u8>| {
        let f = work.path().join(format!(
            "bundle-{}.json",
            kiln_core::Digest::of(&bundle).hex()
        ));
        std::fs::write(&f, &bundle).unwrap();
        node(
            "import { attachArtifactToImage } from '@sigstore/oci';\nimport { readFileSync } from 'node:fs';\nconst [image, digest, file, predicateType] = process.argv.slice(2);\nconst d = await attachArtifactToImage({ imageName: image, imageDigest: digest, artifact: readFileSync(file), mediaType: 'application/vnd.dev.sigstore.bundle.v0.3+json', annotations: { 'dev.sigstore.bundle.content': 'dsse-envelope', 'dev.sigstore.bundle.predicateType': predicateType } });\nconsole.log(d.digest);",
            &[
                repo_ref.as_ref(),
                digest.as_ref(),
                f.as_os_str(),
                review.as_ref(),
            ],
        )
    };
    let policy = b.keys.path().join("review.toml");
    std::fs::write(
        &policy,
        format!(
            "{}\n[[require]]\npredicate_type = \"{review}\"\n",
            std::fs::read_to_string(b.policy()).unwrap()
        ),
    )
    .unwrap();

    // Signed by a key the policy does not trust: listed, not counted.
    let untrusted = attach(bundle_of(&kiln_attest::SigningKey::generate()));
    let untrusted = String::from_utf8(untrusted.stdout)
        .unwrap()
        .trim()
        .to_string();
    let v = verify_ref(&format!("{repo_ref}:0.1.0"), &policy);
    let text = String::from_utf8_lossy(&v.stdout);
    assert!(
        !v.status.success(),
        "an untrusted bundle satisfied a requirement:\n{text}"
    );
    assert!(
        text.contains(&format!("PASS foreign {untrusted}: not counted: "))
            && text.contains("does not trust"),
        "{text}"
    );
    assert!(
        text.contains(&format!("FAIL require[1] {review}: missing attestation")),
        "{text}"
    );
    // kiln's own checks are untouched by the other tool's referrer.
    assert_eq!(
        text.lines().filter(|l| l.starts_with("FAIL")).count(),
        1,
        "{text}"
    );

    // Signed by the trusted key: it satisfies the requirement.
    let key = kiln_attest::SigningKey::load(&b.key()).unwrap();
    let trusted = attach(bundle_of(&key));
    let trusted = String::from_utf8(trusted.stdout)
        .unwrap()
        .trim()
        .to_string();
    let v = verify_ref(&format!("{repo_ref}:0.1.0"), &policy);
    let text = String::from_utf8_lossy(&v.stdout);
    assert!(v.status.success(), "{text}");
    assert!(text.contains(&format!("PASS foreign {trusted}: a bundle another tool attached: {review} about this image, signed by key")), "{text}");
    assert!(
        text.contains(&format!("PASS require[1] {review}: foreign {trusted}")),
        "{text}"
    );

    // kiln pushing again keeps what the other tool listed.
    run_ok(&mut b.push(&repo_ref));
    let index = json(&skopeo_raw(&format!(
        "{repo_ref}:sha256-{}",
        digest.trim_start_matches("sha256:")
    )));
    let listed: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["digest"].as_str().unwrap())
        .collect();
    assert!(
        listed.contains(&trusted.as_str()) && listed.contains(&untrusted.as_str()),
        "{index}"
    );
}

/// A registry with the OCI 1.1 referrers API (ferro-oci-server): kiln sees its listing
/// show what was pushed and keeps no `sha256-<hex>` tag; pull and `verify REF` read the
/// referrers from the API; skopeo reads every referrer back by digest.
#[test]
fn push_uses_the_referrers_api_where_the_registry_has_it() {
    let b = built();
    let reg = crate::support::registry::ReferrersRegistry::start();
    let repo_ref = format!("{}/team/hello", reg.addr);
    let report = json(&run_ok(b.push(&repo_ref).arg("--key").arg(b.key())).stdout);
    assert_eq!(report["referrers"], "referrers API", "{report}");
    let digest = b.digest();
    let hex = digest.trim_start_matches("sha256:");
    let tags: Vec<&str> = report["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tag"].as_str().unwrap())
        .collect();
    assert!(
        !tags.contains(&format!("sha256-{hex}").as_str()),
        "a tag-schema index was written: {tags:?}"
    );
    assert_eq!(
        crate::support::registry::get_status(
            &reg.addr,
            &format!("/v2/team/hello/manifests/sha256-{hex}"),
            None
        )
        .unwrap(),
        404
    );
    let listing = json(&get_body(
        &reg.addr,
        &format!("/v2/team/hello/referrers/{digest}"),
    ));
    let layout = b.out().join("oci");
    let index = json(&std::fs::read(layout.join("index.json")).unwrap());
    for e in index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e.get("artifactType").is_some())
    {
        let d = e["digest"].as_str().unwrap();
        assert!(
            listing["manifests"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["digest"] == d),
            "{d} missing from {listing}"
        );
        assert_eq!(skopeo_raw(&format!("{repo_ref}@{d}")), blob(&layout, d));
    }
    let again = json(&run_ok(b.push(&repo_ref).arg("--key").arg(b.key())).stdout);
    assert!(
        again["blobs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["outcome"] == "present"),
        "{again}"
    );
    let v = verify_ref(&format!("{repo_ref}:0.1.0"), &b.policy());
    let text = String::from_utf8_lossy(&v.stdout);
    assert!(v.status.success(), "{text}");
    let pulled = tempfile::tempdir().unwrap();
    run_ok(
        without_ambient(kiln())
            .args(["pull", &format!("{repo_ref}:0.1.0")])
            .arg(pulled.path().join("h"))
            .arg("--insecure-http"),
    );
    assert_eq!(
        std::fs::read(pulled.path().join("h/oci/index.json")).unwrap(),
        std::fs::read(layout.join("index.json")).unwrap()
    );
}

/// An independent reader: the `oci-client` crate (oras-project's Rust client, not kiln's
/// code) reads back from a registry with the referrers API what kiln pushed — the image
/// manifest by tag, byte for byte; the referrers listing of the image, exactly kiln's
/// evidence with the artifact types kiln set; and the provenance bundle, a referrer's
/// layer, equal to the file beside the layout.
#[test]
fn oci_client_reads_back_what_kiln_pushed() {
    use oci_client::client::{ClientConfig, ClientProtocol};
    use oci_client::manifest::{OCI_IMAGE_MEDIA_TYPE, OciManifest};
    use oci_client::secrets::RegistryAuth;
    use oci_client::{Client, Reference};
    use std::collections::BTreeSet;

    let b = built();
    let reg = crate::support::registry::ReferrersRegistry::start();
    let repo_ref = format!("{}/team/hello", reg.addr);
    let report = json(&run_ok(b.push(&repo_ref).arg("--key").arg(b.key())).stdout);
    assert_eq!(report["referrers"], "referrers API", "{report}");
    let digest = b.digest();
    let layout = b.out().join("oci");
    let index = json(&std::fs::read(layout.join("index.json")).unwrap());
    // What kiln attached, as the layout lists it: digest → artifactType.
    let attached: BTreeSet<(String, String)> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| {
            let t = e.get("artifactType")?;
            Some((
                e["digest"].as_str().unwrap().to_string(),
                t.as_str().unwrap().to_string(),
            ))
        })
        .collect();
    assert!(
        attached.len() >= 8,
        "SBOMs, VEX, provenance, bundles: {index}"
    );

    // reqwest builds a rustls config even for plain HTTP; ring is the provider in the tree.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = Client::new(ClientConfig {
        protocol: ClientProtocol::HttpsExcept(vec![reg.addr.clone()]),
        ..Default::default()
    });
    let auth = RegistryAuth::Anonymous;
    let tagged: Reference = format!("{repo_ref}:0.1.0").parse().unwrap();
    let image = Reference::with_digest(reg.addr.clone(), "team/hello".into(), digest.clone());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (raw, got) = client
            .pull_manifest_raw(&tagged, &auth, &[OCI_IMAGE_MEDIA_TYPE])
            .await
            .unwrap();
        assert_eq!(got, digest, "oci-client resolved 0.1.0 elsewhere");
        assert_eq!(raw.as_ref(), blob(&layout, &digest), "the image manifest");

        let referrers = client.pull_referrers(&image, None).await.unwrap();
        let listed: BTreeSet<(String, String)> = referrers
            .manifests
            .iter()
            .map(|m| {
                (
                    m.digest.clone(),
                    m.artifact_type.clone().unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(
            listed, attached,
            "the referrers listing is not the layout's referrers: {referrers:#?}"
        );

        // The provenance bundle: the referrer whose one layer is titled so.
        let mut found = None;
        for m in &referrers.manifests {
            let r = Reference::with_digest(reg.addr.clone(), "team/hello".into(), m.digest.clone());
            let (manifest, _) = client.pull_manifest(&r, &auth).await.unwrap();
            let OciManifest::Image(manifest) = manifest else {
                panic!("{} is not an image manifest", m.digest);
            };
            assert_eq!(
                manifest.subject.as_ref().map(|s| s.digest.as_str()),
                Some(digest.as_str()),
                "{} has another subject",
                m.digest
            );
            let title = manifest.layers[0]
                .annotations
                .as_ref()
                .and_then(|a| a.get("org.opencontainers.image.title"));
            if title.map(String::as_str) == Some("provenance.sigstore.json") {
                found = Some((r, manifest.layers[0].clone()));
            }
        }
        let (r, layer) = found.expect("no referrer's layer is provenance.sigstore.json");
        let mut bytes = Vec::new();
        client.pull_blob(&r, &layer, &mut bytes).await.unwrap();
        assert_eq!(
            bytes,
            std::fs::read(b.out().join("provenance.sigstore.json")).unwrap(),
            "the provenance bundle oci-client pulled"
        );
    });
}

/// A layout whose layer was modified after the build: the push fails naming it (the
/// registry refuses a blob that does not hash to its name), and the tag is not set.
#[test]
fn push_refuses_a_modified_layout() {
    let b = built();
    let forged = tempfile::tempdir().unwrap();
    copy_tree(b.project.path(), forged.path());
    let out = forged.path().join("target/kiln/out/hello");
    copy_tree(&b.out(), &out);
    let layout = out.join("oci");
    let manifest = json(&blob(&layout, &b.digest()));
    let layer = manifest["layers"][0]["digest"].as_str().unwrap();
    let path = layout
        .join("blobs/sha256")
        .join(layer.trim_start_matches("sha256:"));
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x5a;
    std::fs::write(&path, &bytes).unwrap();
    let reg = Registry::start();
    let repo_ref = format!("{}/team/hello", reg.addr);
    for chunk in [None, Some("65536")] {
        let mut c = without_ambient(kiln());
        c.arg("-C")
            .arg(forged.path())
            .args(["push", &repo_ref, "--insecure-http"]);
        if let Some(n) = chunk {
            c.env("KILN_PUSH_CHUNK_SIZE", n);
        }
        let e = run_err(&mut c);
        assert!(e.contains(layer) && e.contains("modified"), "{e}");
    }
    let status =
        crate::support::registry::get_status(&reg.addr, "/v2/team/hello/manifests/0.1.0", None)
            .unwrap();
    assert_eq!(
        status, 404,
        "a tag points at an image whose layer was refused"
    );
}
