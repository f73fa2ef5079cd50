//! The tamper property test: on one keyed build with VEX, every file of the output is
//! changed as an attacker would — single bytes flipped at seeded positions in every file,
//! and coordinated rewrites that keep every digest consistent (retag, an extra unsigned
//! manifest, a rewritten raw VEX document, removed referrers, swapped archives, a
//! rewritten summary). `verify` (in-process, for speed) must fail on each, naming what
//! broke. README "What `verify` checks" lists what each output's integrity rests on.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::support::*;
use kiln_attest::{Options, Policy, Report};
use kiln_core::{Digest, canonical};
use serde_json::Value;

const LINEAGE: &str = "\n[lineage]\nsource = \"https://github.com/kiln-build/kiln\"\ntransform = \"release-build\"\npolicy_version = \"2024.1\"\n";

struct Built {
    _project: Project,
    keys: tempfile::TempDir,
    out: PathBuf,
    policy: Policy,
}

/// One keyed build of hello with VEX statements and advisories.
fn build() -> Built {
    let project = Project::from_testdata("hello", &format!("{HELLO_TOML}{LINEAGE}"));
    add_vex(&project);
    let keys = tempfile::tempdir().unwrap();
    keygen(keys.path());
    let mut c = without_ambient(project.kiln());
    run_ok(
        c.arg("build")
            .arg("--key")
            .arg(keys.path().join("kiln.key")),
    );
    let policy_path = keys.path().join("default.toml");
    std::fs::copy(repo().join("testdata/policy/default.toml"), &policy_path).unwrap();
    let out = project.out().join("hello");
    for f in ["vex.openvex.json", "vex.csaf.json", "vex.cdx.json"] {
        assert!(out.join(f).is_file(), "{f} missing: the build wrote no VEX");
    }
    Built {
        _project: project,
        policy: Policy::load(&policy_path).unwrap(),
        keys,
        out,
    }
}

fn verify(out: &Path, policy: &Policy, reference: Option<&str>) -> Report {
    kiln_attest::verify_with(
        out,
        policy,
        &Options {
            reference: reference.map(String::from),
            ..Options::default()
        },
    )
}

/// Asserts `r` failed with a FAIL line containing each of `names`.
#[track_caller]
fn assert_fails(r: &Report, what: &str, names: &[&str]) {
    let text = r.lines().join("\n");
    assert!(!r.ok, "{what}: verify passed:\n{text}");
    for name in names {
        assert!(
            r.checks
                .iter()
                .any(|c| !c.pass && (c.rule.contains(name) || c.detail.contains(name))),
            "{what}: no FAIL line names `{name}`:\n{text}"
        );
    }
}

/// Every regular file under `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<String> {
    read_tree(dir).into_keys().collect()
}

/// A deterministic xorshift64: the same positions and masks on every run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn every_single_byte_flip_in_every_output_file_fails_naming_the_file() {
    let b = build();
    let base = verify(&b.out, &b.policy, None);
    assert!(base.ok, "{:#?}", base.lines());
    let started = std::time::Instant::now();
    let all = files(&b.out);
    assert!(all.len() > 40, "{all:?}");
    for must in [
        "image.oci.tar",
        "image.docker.tar",
        "summary.json",
        "oci/index.json",
        "oci/oci-layout",
        "provenance.intoto.json",
        "vex.openvex.json",
    ] {
        assert!(all.iter().any(|f| f == must), "{must} not in {all:?}");
    }
    let mut rng = Rng(0x5eed_1e55_c0ff_ee01);
    let mut runs = 0;
    for file in &all {
        let path = b.out.join(file);
        let orig = std::fs::read(&path).unwrap();
        let name = file.rsplit('/').next().unwrap();
        // Small files get every position; large ones a seeded sample (headers and
        // trailers of the archives included).
        let mut positions: Vec<usize> = if orig.len() <= 24 {
            (0..orig.len()).collect()
        } else {
            (0..16)
                .map(|_| (rng.next() % orig.len() as u64) as usize)
                .collect()
        };
        if orig.len() > 24 {
            positions.extend([0, orig.len() - 1, orig.len() / 2]);
        }
        for pos in positions {
            let mask = (rng.next() % 255) as u8 + 1;
            let mut bytes = orig.clone();
            bytes[pos] ^= mask;
            std::fs::write(&path, &bytes).unwrap();
            let r = verify(&b.out, &b.policy, None);
            runs += 1;
            assert_fails(&r, &format!("{file}: byte {pos} ^ {mask:#04x}"), &[name]);
        }
        std::fs::write(&path, &orig).unwrap();
    }
    assert!(verify(&b.out, &b.policy, None).ok, "restored output fails");
    eprintln!(
        "{runs} flips over {} files, each caught, in {:.1?}",
        all.len(),
        started.elapsed()
    );
    coordinated_rewrites(&b);
}

// ---- coordinated rewrites: an attacker who keeps every digest consistent ----

fn read_json(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

fn blob_path(out: &Path, d: &str) -> PathBuf {
    out.join("oci/blobs/sha256")
        .join(d.trim_start_matches("sha256:"))
}

/// Writes `bytes` as a blob; returns `(digest, size)`.
fn put_blob(out: &Path, bytes: &[u8]) -> (String, u64) {
    let d = Digest::of(bytes);
    std::fs::write(blob_path(out, &d.to_string()), bytes).unwrap();
    (d.to_string(), bytes.len() as u64)
}

fn index(out: &Path) -> Value {
    read_json(&out.join("oci/index.json"))
}

fn write_index(out: &Path, v: &Value) {
    std::fs::write(out.join("oci/index.json"), canonical::to_vec(v).unwrap()).unwrap();
}

/// The index entry of the referrer titled `title`.
fn referrer<'a>(index: &'a mut Value, title: &str) -> &'a mut Value {
    index["manifests"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|m| m["annotations"]["org.opencontainers.image.title"] == title)
        .unwrap_or_else(|| panic!("no referrer {title}"))
}

/// Replaces the document `title` (file and attached blob) with `new`, re-linking the
/// artifact manifest and the index, as `oras attach` would.
fn replace_document(out: &Path, title: &str, new: &[u8]) {
    std::fs::write(out.join(title), new).unwrap();
    let (ld, ls) = put_blob(out, new);
    let mut idx = index(out);
    let entry = referrer(&mut idx, title);
    let mut m = read_json(&blob_path(out, entry["digest"].as_str().unwrap()));
    m["layers"][0]["digest"] = ld.into();
    m["layers"][0]["size"] = ls.into();
    let (md, ms) = put_blob(out, &canonical::to_vec(&m).unwrap());
    entry["digest"] = md.into();
    entry["size"] = ms.into();
    write_index(out, &idx);
}

/// Recuts both archives from the (modified) layout and rewrites summary.json's list of
/// artifacts, so nothing is left stale but what the attacker cannot re-sign.
fn recut(out: &Path) {
    let layout = out.join("oci");
    let summary = read_json(&out.join("summary.json"));
    let sde = summary["source_date_epoch"]["value"].as_u64().unwrap();
    kiln_oci::write_oci_archive(&layout, &out.join("image.oci.tar"), sde).unwrap();
    let idx = index(out);
    let image = idx["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m.get("artifactType").is_none())
        .unwrap();
    let tag = image["annotations"]["org.opencontainers.image.ref.name"]
        .as_str()
        .unwrap();
    kiln_oci::write_docker_archive(
        &layout,
        &image["digest"].as_str().unwrap().parse().unwrap(),
        &[format!("hello:{tag}")],
        &out.join("image.docker.tar"),
        sde,
    )
    .unwrap();
    rewrite_summary(out, |_| {});
}

/// Applies `edit` to summary.json and recomputes its artifacts from the files on disk.
fn rewrite_summary(out: &Path, edit: impl FnOnce(&mut Value)) {
    let mut s = read_json(&out.join("summary.json"));
    edit(&mut s);
    let artifacts: Vec<Value> = read_tree(out)
        .into_iter()
        .filter(|(p, _)| p != "summary.json")
        .map(|(p, bytes)| {
            serde_json::json!({"path": p, "sha256": Digest::of(&bytes), "size": bytes.len()})
        })
        .collect();
    s["artifacts"] = Value::Array(artifacts);
    std::fs::write(
        out.join("summary.json"),
        canonical::to_vec_pretty(&s).unwrap(),
    )
    .unwrap();
}

fn fresh(b: &Built) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    copy_tree(&b.out, d.path());
    d
}

fn coordinated_rewrites(b: &Built) {
    let policy = &b.policy;
    let _ = b.keys.path();

    // A consistent re-cut of the untouched output passes: the rewrites below fail for what
    // they change, not for how the test rewrites.
    let d = fresh(b);
    recut(d.path());
    let r = verify(d.path(), policy, None);
    assert!(r.ok, "recut alone: {:#?}", r.lines());

    // Retag the signed image `signed`.
    let d = fresh(b);
    let mut idx = index(d.path());
    idx["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] = "signed".into();
    write_index(d.path(), &idx);
    recut(d.path());
    assert_fails(
        &verify(d.path(), policy, None),
        "retag",
        &["tags", "signed"],
    );
    assert_fails(
        &verify(d.path(), policy, Some("0.1.0")),
        "retag --ref 0.1.0",
        &["no image manifest is tagged `0.1.0`"],
    );

    // ...and add an unsigned manifest, tagged `0.1.0`, that runs something else.
    let orig_manifest = index(&b.out)["manifests"][0].clone();
    let m = read_json(&blob_path(
        d.path(),
        orig_manifest["digest"].as_str().unwrap(),
    ));
    let mut config = read_json(&blob_path(
        d.path(),
        m["config"]["digest"].as_str().unwrap(),
    ));
    config["config"]["Entrypoint"] = serde_json::json!(["/bin/sh", "-c", "echo evil"]);
    let (cd, cs) = put_blob(d.path(), &canonical::to_vec(&config).unwrap());
    let mut evil = m.clone();
    evil["config"]["digest"] = cd.into();
    evil["config"]["size"] = cs.into();
    let (ed, es) = put_blob(d.path(), &canonical::to_vec(&evil).unwrap());
    let mut entry = orig_manifest.clone();
    entry["digest"] = ed.clone().into();
    entry["size"] = es.into();
    let mut idx = index(d.path());
    idx["manifests"].as_array_mut().unwrap().insert(1, entry);
    write_index(d.path(), &idx);
    recut(d.path());
    assert_fails(
        &verify(d.path(), policy, None),
        "extra manifest",
        &["ambiguous", "signed", "0.1.0"],
    );
    assert_fails(
        &verify(d.path(), policy, Some("0.1.0")),
        "extra manifest --ref 0.1.0",
        &["tags"],
    );
    assert_fails(
        &verify(d.path(), policy, Some("signed")),
        "extra manifest --ref signed",
        &[&format!("{ed} (tag `0.1.0`) is not the subject")],
    );

    // Rewrite the attached OpenVEX: `affected` becomes `fixed`, blob, manifest and index
    // re-linked, archives and summary re-cut.
    let d = fresh(b);
    let text = std::fs::read_to_string(d.path().join("vex.openvex.json")).unwrap();
    assert!(text.contains("\"status\": \"affected\""), "{text}");
    let new = text.replace("\"status\": \"affected\"", "\"status\": \"fixed\"");
    replace_document(d.path(), "vex.openvex.json", new.as_bytes());
    recut(d.path());
    assert_fails(
        &verify(d.path(), policy, None),
        "VEX rewrite",
        &["document vex.openvex.json", "modified"],
    );

    // Remove every VEX referrer, document and signature (the provenance still records
    // the VEX inputs).
    let d = fresh(b);
    let mut idx = index(d.path());
    idx["manifests"].as_array_mut().unwrap().retain(|m| {
        !m["annotations"]["org.opencontainers.image.title"]
            .as_str()
            .unwrap_or("")
            .starts_with("vex.")
    });
    write_index(d.path(), &idx);
    for f in files(d.path()) {
        if f.starts_with("vex.") {
            std::fs::remove_file(d.path().join(f)).unwrap();
        }
    }
    remove_unreferenced_blobs(d.path());
    recut(d.path());
    assert_fails(
        &verify(d.path(), policy, None),
        "VEX removal",
        &["vex inputs"],
    );

    // Remove one raw document's referrer and file, keeping its signature.
    let d = fresh(b);
    let mut idx = index(d.path());
    idx["manifests"]
        .as_array_mut()
        .unwrap()
        .retain(|m| m["annotations"]["org.opencontainers.image.title"] != "vex.csaf.json");
    write_index(d.path(), &idx);
    std::fs::remove_file(d.path().join("vex.csaf.json")).unwrap();
    remove_unreferenced_blobs(d.path());
    recut(d.path());
    assert_fails(
        &verify(d.path(), policy, None),
        "raw document removal",
        &["document vex.csaf.json"],
    );

    // Rename an artifactType (manifest and index consistently): never skipped.
    let d = fresh(b);
    let mut idx = index(d.path());
    let entry = referrer(&mut idx, "vex.cdx.json");
    let mut m = read_json(&blob_path(d.path(), entry["digest"].as_str().unwrap()));
    m["artifactType"] = "application/vnd.cyclonedx+json;v=2".into();
    let (md, ms) = put_blob(d.path(), &canonical::to_vec(&m).unwrap());
    entry["digest"] = md.into();
    entry["size"] = ms.into();
    entry["artifactType"] = "application/vnd.cyclonedx+json;v=2".into();
    write_index(d.path(), &idx);
    remove_unreferenced_blobs(d.path());
    recut(d.path());
    assert_fails(
        &verify(d.path(), policy, None),
        "renamed artifactType",
        &["index.json", "application/vnd.cyclonedx+json;v=2"],
    );

    // Swap the OCI archive for one of another layout (the evil manifest added), and the
    // docker archive for one carrying another tag; summary re-cut to match.
    let d = fresh(b);
    let other = tempfile::tempdir().unwrap();
    copy_tree(&d.path().join("oci"), other.path());
    let mut idx = read_json(&other.path().join("index.json"));
    idx["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] = "other".into();
    std::fs::write(
        other.path().join("index.json"),
        canonical::to_vec(&idx).unwrap(),
    )
    .unwrap();
    kiln_oci::write_oci_archive(other.path(), &d.path().join("image.oci.tar"), 1_700_000_000)
        .unwrap();
    rewrite_summary(d.path(), |_| {});
    assert_fails(
        &verify(d.path(), policy, None),
        "OCI archive swap",
        &["archive image.oci.tar"],
    );
    let d = fresh(b);
    kiln_oci::write_docker_archive(
        &d.path().join("oci"),
        &orig_manifest["digest"].as_str().unwrap().parse().unwrap(),
        &["hello:evil".to_string()],
        &d.path().join("image.docker.tar"),
        1_700_000_000,
    )
    .unwrap();
    rewrite_summary(d.path(), |_| {});
    assert_fails(
        &verify(d.path(), policy, None),
        "docker archive swap",
        &["archive image.docker.tar"],
    );

    // Rewrite the summary: no sandbox, another epoch source, a fake binary digest.
    for (what, edit) in [
        (
            "sandbox",
            Box::new(|s: &mut Value| s["sandbox"] = "none".into()) as Box<dyn Fn(&mut Value)>,
        ),
        (
            "source_date_epoch",
            Box::new(|s: &mut Value| s["source_date_epoch"]["source"] = "env".into()),
        ),
        (
            "binaries",
            Box::new(|s: &mut Value| {
                s["binaries"][0]["sha256"] = Digest::of(b"x").to_string().into()
            }),
        ),
    ] {
        let d = fresh(b);
        rewrite_summary(d.path(), edit);
        assert_fails(
            &verify(d.path(), policy, None),
            &format!("summary rewrite ({what})"),
            &["summary.json", what],
        );
    }

    // Whitespace only: the index is hashed as bytes, so pretty-printing it is a change.
    let d = fresh(b);
    let pretty = serde_json::to_vec_pretty(&index(d.path())).unwrap();
    std::fs::write(d.path().join("oci/index.json"), pretty).unwrap();
    recut(d.path());
    assert_fails(
        &verify(d.path(), policy, None),
        "pretty index.json",
        &["index.json", "canonical"],
    );

    // gate.json (what `cargo xtask gate` writes beside the image) is outside verification
    // by design, and listed as such; any other extra file is not.
    let d = fresh(b);
    std::fs::write(d.path().join("gate.json"), b"{}").unwrap();
    let r = verify(d.path(), policy, None);
    assert!(r.ok, "gate.json beside: {:#?}", r.lines());
    assert!(
        kiln_attest::verify::UNVERIFIED
            .iter()
            .any(|(f, _)| *f == "gate.json")
    );

    // An extra file the outputs do not account for.
    let d = fresh(b);
    std::fs::write(d.path().join("oci/blobs/sha256/extra"), b"payload").unwrap();
    assert_fails(
        &verify(d.path(), policy, None),
        "extra file",
        &["files", "extra"],
    );
}

/// Deletes blobs no manifest reachable from index.json references (what `oras`/`skopeo`
/// garbage collection leaves).
fn remove_unreferenced_blobs(out: &Path) {
    let mut keep = BTreeMap::new();
    for e in index(out)["manifests"].as_array().unwrap() {
        let d = e["digest"].as_str().unwrap().to_string();
        let m = read_json(&blob_path(out, &d));
        keep.insert(d, ());
        keep.insert(m["config"]["digest"].as_str().unwrap().to_string(), ());
        for l in m["layers"].as_array().unwrap() {
            keep.insert(l["digest"].as_str().unwrap().to_string(), ());
        }
    }
    for e in std::fs::read_dir(out.join("oci/blobs/sha256")).unwrap() {
        let e = e.unwrap();
        let d = format!("sha256:{}", e.file_name().to_string_lossy());
        if !keep.contains_key(&d) {
            std::fs::remove_file(e.path()).unwrap();
        }
    }
}
