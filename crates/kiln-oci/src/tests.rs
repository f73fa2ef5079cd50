//! Tests of the image/layout/base/archive layers of the crate (layer and gzip tests live
//! next to their code).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use kiln_core::Digest;
use serde_json::Value;

use crate::*;

const SDE: u64 = 1_700_000_000;

fn image(base: Option<BaseImage>, env: &[&str]) -> Image {
    let mut layer = Layer::new();
    layer
        .add_bytes("app/hello.txt", b"hello\n".to_vec(), 0o644)
        .unwrap();
    let mut config = ImageConfig::new(Platform::linux_amd64());
    config.entrypoint = Some(vec!["/app/run".into()]);
    config.env = env.iter().map(|s| s.to_string()).collect();
    config.labels.insert("org.example.k".into(), "v".into());
    config.exposed_ports.insert("8080/tcp".into());
    Image {
        sde: SDE,
        base,
        layers: vec![(layer, "kiln: app".into())],
        config,
    }
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn blob(dir: &Path, d: &Digest) -> std::path::PathBuf {
    dir.join("blobs/sha256").join(d.hex())
}

#[test]
fn layout_files_are_canonical_and_consistent() {
    let d = tempfile::tempdir().unwrap();
    let built = image(None, &["PATH=/usr/bin", "A=1"])
        .write_layout(d.path(), "latest")
        .unwrap();
    assert_eq!(
        std::fs::read(d.path().join("oci-layout")).unwrap(),
        br#"{"imageLayoutVersion":"1.0.0"}"#
    );
    let index_bytes = std::fs::read(d.path().join("index.json")).unwrap();
    let index: Value = serde_json::from_slice(&index_bytes).unwrap();
    assert_eq!(
        kiln_core::canonical::to_vec(&index).unwrap(),
        index_bytes,
        "index.json not canonical"
    );
    assert_eq!(
        index["manifests"][0]["digest"],
        built.manifest.digest.to_string()
    );
    assert_eq!(
        index["manifests"][0]["annotations"][ANNOTATION_REF_NAME],
        "latest"
    );

    let mbytes = std::fs::read(blob(d.path(), &built.manifest.digest)).unwrap();
    assert_eq!(Digest::of(&mbytes), built.manifest.digest);
    let m: Value = serde_json::from_slice(&mbytes).unwrap();
    assert_eq!(kiln_core::canonical::to_vec(&m).unwrap(), mbytes);
    assert_eq!(m["schemaVersion"], 2);
    assert_eq!(m["mediaType"], MEDIA_TYPE_MANIFEST);
    assert_eq!(m["config"]["digest"], built.config_digest.to_string());
    assert!(
        m.get("annotations").is_none(),
        "empty annotations must be omitted"
    );

    let c = json(&blob(d.path(), &built.config_digest));
    assert_eq!(c["created"], "2023-11-14T22:13:20Z");
    assert_eq!(
        (c["os"].as_str(), c["architecture"].as_str()),
        (Some("linux"), Some("amd64"))
    );
    assert!(c.get("variant").is_none());
    assert_eq!(c["config"]["Entrypoint"], serde_json::json!(["/app/run"]));
    assert!(c["config"].get("Cmd").is_none() && c["config"].get("User").is_none());
    assert_eq!(
        c["config"]["ExposedPorts"],
        serde_json::json!({"8080/tcp": {}})
    );
    assert_eq!(
        c["rootfs"]["diff_ids"][0],
        built.layers[0].diff_id.to_string()
    );
    assert_eq!(c["history"][0]["created_by"], "kiln: app");
    assert_eq!(c["history"][0]["created"], "2023-11-14T22:13:20Z");

    // The layer blob is what its descriptor says.
    let l = &built.layers[0];
    let lb = std::fs::read(blob(d.path(), &l.digest)).unwrap();
    assert_eq!((Digest::of(&lb), lb.len() as u64), (l.digest, l.size));
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(&lb[..])
        .read_to_end(&mut tar)
        .unwrap();
    assert_eq!(Digest::of(&tar), l.diff_id);

    // Rebuilding elsewhere gives the same digests; no temp files are left.
    let d2 = tempfile::tempdir().unwrap();
    assert_eq!(
        image(None, &["PATH=/usr/bin", "A=1"])
            .write_layout(d2.path(), "latest")
            .unwrap(),
        built
    );
    for e in std::fs::read_dir(d.path().join("blobs/sha256")).unwrap() {
        assert!(!e.unwrap().file_name().to_string_lossy().starts_with('.'));
    }
}

#[test]
fn bad_config_values_are_errors() {
    let d = tempfile::tempdir().unwrap();
    let e = image(None, &["NOEQUALS"])
        .write_layout(d.path(), "x")
        .unwrap_err();
    assert!(e.to_string().contains("NOEQUALS"), "{e}");
    let e = image(None, &[])
        .write_layout(d.path(), "bad ref")
        .unwrap_err();
    assert!(e.to_string().contains("bad ref"), "{e}");
}

fn base_layout() -> (tempfile::TempDir, BuiltImage) {
    let d = tempfile::tempdir().unwrap();
    let mut layer = Layer::new();
    layer
        .add_bytes("etc/os-release", b"ID=base\n".to_vec(), 0o644)
        .unwrap();
    let mut config = ImageConfig::new(Platform::linux_amd64());
    config.env = vec!["PATH=/bin".into(), "KEEP=1".into()];
    config.cmd = Some(vec!["sh".into()]);
    config.user = Some("1000".into());
    let img = Image {
        sde: 0,
        base: None,
        layers: vec![(layer, "base layer".into())],
        config,
    };
    let built = img.write_layout(d.path(), "base").unwrap();
    (d, built)
}

#[test]
fn base_image_is_reused_and_config_merged() {
    let (bd, bb) = base_layout();
    let base = BaseImage::open(bd.path(), &bb.manifest.digest).unwrap();
    assert_eq!(base.digest(), bb.manifest.digest);
    let out = tempfile::tempdir().unwrap();
    let built = image(Some(base), &["PATH=/app:/bin", "NEW=2"])
        .write_layout(out.path(), "app")
        .unwrap();
    assert_eq!(built.base, Some(bb.manifest.digest));
    assert_eq!(built.layers.len(), 2);
    assert_eq!(built.layers[0], bb.layers[0]);
    assert_eq!(
        std::fs::read(blob(out.path(), &bb.layers[0].digest)).unwrap(),
        std::fs::read(blob(bd.path(), &bb.layers[0].digest)).unwrap()
    );
    let c = json(&blob(out.path(), &built.config_digest));
    assert_eq!(
        c["config"]["Env"],
        serde_json::json!(["PATH=/app:/bin", "KEEP=1", "NEW=2"])
    );
    assert!(
        c["config"].get("Cmd").is_none(),
        "new entrypoint drops the base Cmd"
    );
    assert_eq!(c["config"]["User"], "1000");
    let hist: Vec<&str> = c["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["created_by"].as_str().unwrap())
        .collect();
    assert_eq!(hist, ["base layer", "kiln: app"]);
    assert_eq!(c["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);
    let m = json(&blob(out.path(), &built.manifest.digest));
    assert_eq!(
        m["annotations"]["org.opencontainers.image.base.digest"],
        bb.manifest.digest.to_string()
    );
}

#[test]
fn base_image_found_through_nested_index() {
    let (bd, bb) = base_layout();
    // Move the manifest one index deeper.
    let inner = std::fs::read(bd.path().join("index.json")).unwrap();
    let inner_digest = Digest::of(&inner);
    std::fs::write(blob(bd.path(), &inner_digest), &inner).unwrap();
    let outer = serde_json::json!({"schemaVersion": 2, "mediaType": MEDIA_TYPE_INDEX, "manifests": [
        {"mediaType": MEDIA_TYPE_INDEX, "digest": inner_digest.to_string(), "size": inner.len()}]});
    std::fs::write(
        bd.path().join("index.json"),
        serde_json::to_vec(&outer).unwrap(),
    )
    .unwrap();
    assert_eq!(
        BaseImage::open(bd.path(), &bb.manifest.digest)
            .unwrap()
            .layers()
            .len(),
        1
    );
}

#[test]
fn base_image_errors_name_layout_and_digest() {
    let (bd, bb) = base_layout();
    let wrong = Digest::of(b"not a manifest");
    let e = BaseImage::open(bd.path(), &wrong).unwrap_err();
    assert!(matches!(e, Error::ManifestNotFound { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains(&wrong.to_string()) && msg.contains(&bd.path().display().to_string()),
        "{msg}"
    );

    // Tampered layer.
    let layer_path = blob(bd.path(), &bb.layers[0].digest);
    let good = std::fs::read(&layer_path).unwrap();
    let mut bad = good.clone();
    *bad.last_mut().unwrap() ^= 1;
    std::fs::write(&layer_path, &bad).unwrap();
    let e = BaseImage::open(bd.path(), &bb.manifest.digest).unwrap_err();
    assert!(matches!(e, Error::BlobDigestMismatch { .. }), "{e}");
    assert!(
        e.to_string().contains(&bb.layers[0].digest.to_string()),
        "{e}"
    );

    // Missing layer.
    std::fs::remove_file(&layer_path).unwrap();
    let e = BaseImage::open(bd.path(), &bb.manifest.digest).unwrap_err();
    assert!(matches!(e, Error::BlobMissing { .. }), "{e}");
    std::fs::write(&layer_path, &good).unwrap();

    // Tampered config.
    let cfg = blob(bd.path(), &bb.config_digest);
    let mut c = std::fs::read(&cfg).unwrap();
    c[0] = b' ';
    std::fs::write(&cfg, &c).unwrap();
    assert!(matches!(
        BaseImage::open(bd.path(), &bb.manifest.digest),
        Err(Error::BlobDigestMismatch { .. })
    ));

    // Not a layout at all.
    let empty = tempfile::tempdir().unwrap();
    let e = BaseImage::open(empty.path(), &bb.manifest.digest).unwrap_err();
    assert!(e.to_string().contains("oci-layout"), "{e}");
}

fn tar_listing(path: &Path) -> BTreeMap<String, (u64, Vec<u8>)> {
    let f = std::fs::File::open(path).unwrap();
    let mut a = tar::Archive::new(f);
    a.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let p = e.path().unwrap().to_string_lossy().into_owned();
            let mtime = e.header().mtime().unwrap();
            let mut c = Vec::new();
            e.read_to_end(&mut c).unwrap();
            (p, (mtime, c))
        })
        .collect()
}

#[test]
fn oci_archive_is_deterministic_tar_of_layout() {
    let d = tempfile::tempdir().unwrap();
    let layout = d.path().join("layout");
    let built = image(None, &[]).write_layout(&layout, "v1").unwrap();
    let (a1, a2) = (d.path().join("a1.tar"), d.path().join("a2.tar"));
    write_oci_archive(&layout, &a1, SDE).unwrap();
    write_oci_archive(&layout, &a2, SDE).unwrap();
    assert_eq!(std::fs::read(&a1).unwrap(), std::fs::read(&a2).unwrap());
    let listing = tar_listing(&a1);
    assert!(listing.values().all(|(m, _)| *m == SDE));
    assert!(listing.contains_key("oci-layout") && listing.contains_key("index.json"));
    let mpath = format!("blobs/sha256/{}", built.manifest.digest.hex());
    assert_eq!(Digest::of(&listing[&mpath].1), built.manifest.digest);
}

#[test]
fn docker_archive_manifest_json() {
    let d = tempfile::tempdir().unwrap();
    let layout = d.path().join("layout");
    let built = image(None, &[]).write_layout(&layout, "v1").unwrap();
    let out = d.path().join("docker.tar");
    let tags = vec!["example.com/app:1.0".to_string()];
    write_docker_archive(&layout, &built.manifest.digest, &tags, &out, SDE).unwrap();
    let listing = tar_listing(&out);
    let mj: Value = serde_json::from_slice(&listing["manifest.json"].1).unwrap();
    let cfg = format!("blobs/sha256/{}", built.config_digest.hex());
    let layer = format!("blobs/sha256/{}", built.layers[0].digest.hex());
    assert_eq!(
        mj,
        serde_json::json!([{"Config": cfg, "RepoTags": ["example.com/app:1.0"], "Layers": [layer]}])
    );
    assert_eq!(Digest::of(&listing[&cfg].1), built.config_digest);
    assert_eq!(Digest::of(&listing[&layer].1), built.layers[0].digest);

    let e = write_docker_archive(
        &layout,
        &built.manifest.digest,
        &["bad tag".into()],
        &out,
        SDE,
    )
    .unwrap_err();
    assert!(e.to_string().contains("bad tag"), "{e}");
    let missing = Digest::of(b"nope");
    let e = write_docker_archive(&layout, &missing, &tags, &out, SDE).unwrap_err();
    assert!(matches!(e, Error::BlobMissing { .. }), "{e}");
}

/// The error and its sources, as the CLI prints them (a message never repeats its source).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cur = c.source();
    }
    out
}

/// Garbage in a base's index.json: the error names the file, where in the JSON (path and
/// line) and what was expected, not only "serde failed".
#[test]
fn base_index_garbage_names_file_json_path_line_and_expectation() {
    let (bd, bb) = base_layout();
    let index = bd.path().join("index.json");
    let index_text = index.display().to_string();
    std::fs::write(&index, "{\n  \"schemaVersion\": 2,\n  \"manifests\": [\n    {\"mediaType\": \"application/vnd.oci.image.manifest.v1+json\", \"digest\": 17, \"size\": 3}\n  ]\n}\n").unwrap();
    let e = chain(&BaseImage::open(bd.path(), &bb.manifest.digest).unwrap_err());
    assert!(
        e.contains(&index_text)
            && e.contains("manifests[0].digest")
            && e.contains("line 4")
            && e.contains("expected"),
        "{e}"
    );
    assert!(!e.contains("serde failed"), "{e}");

    std::fs::write(&index, "not json at all").unwrap();
    let e = chain(&BaseImage::open(bd.path(), &bb.manifest.digest).unwrap_err());
    assert!(
        e.contains(&index_text) && e.contains("line 1") && e.contains("index"),
        "{e}"
    );
}

/// A base layout whose layers are the given uncompressed tars; returns it and its pinned
/// manifest digest.
fn raw_base(layers: &[Vec<u8>]) -> (tempfile::TempDir, Digest) {
    let d = tempfile::tempdir().unwrap();
    let blobs = d.path().join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| {
        let dg = Digest::of(bytes);
        std::fs::write(blobs.join(dg.hex()), bytes).unwrap();
        dg
    };
    let descs: Vec<Value> = layers
        .iter()
        .map(|l| serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": put(l).to_string(), "size": l.len()}))
        .collect();
    let diff_ids: Vec<String> = layers.iter().map(|l| Digest::of(l).to_string()).collect();
    let config = serde_json::to_vec(&serde_json::json!({"architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids}}))
    .unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({"schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": put(&config).to_string(), "size": config.len()},
        "layers": descs})).unwrap();
    let md = put(&manifest);
    std::fs::write(
        d.path().join("index.json"),
        serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md.to_string(), "size": manifest.len()}]}))
        .unwrap(),
    )
    .unwrap();
    std::fs::write(
        d.path().join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    (d, md)
}

fn layer_fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../testdata/layers")
            .join(name),
    )
    .unwrap()
}

/// Hand-made hostile base layers (testdata/layers/make.py) are refused before anything of
/// the base is reused, naming the layer digest, the entry and the reason; what OCI allows
/// (`./`, a leading `/`, whiteouts, a hard link inside the layer set) still opens.
#[test]
fn hostile_base_layers_are_refused_naming_layer_entry_and_reason() {
    let ok = layer_fixture("ok-normalized.tar");
    let (d, m) = raw_base(std::slice::from_ref(&ok));
    BaseImage::open(d.path(), &m).unwrap();
    for (file, entry, reason) in [
        ("hostile-dotdot.tar", "../../../../tmp/kiln-escape", "`..`"),
        (
            "hostile-symlink.tar",
            "etc/cron.d/evil",
            "symlink `/etc/cron.d` -> `../../../../etc/cron.d`",
        ),
        (
            "hostile-hardlink.tar",
            "etc/shadow-copy",
            "hard link to `/etc/shadow`",
        ),
        ("hostile-device.tar", "dev/mem", "character device"),
    ] {
        let bad = layer_fixture(file);
        let (d, m) = raw_base(&[ok.clone(), bad.clone()]);
        let e = BaseImage::open(d.path(), &m).unwrap_err();
        assert!(matches!(e, Error::HostileLayer { .. }), "{file}: {e}");
        let msg = e.to_string();
        assert!(
            msg.contains(&Digest::of(&bad).to_string())
                && msg.contains(&format!("entry `{entry}`"))
                && msg.contains(reason),
            "{file}: {msg}"
        );
    }
}
