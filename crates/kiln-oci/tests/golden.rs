//! Golden digests: the image built from `testdata/golden/files` must have exactly the
//! digests pinned in `testdata/golden/digests.json`.
//!
//! A mismatch means the bytes kiln writes changed: every user's pinned image digest would
//! change with them. Update the golden file only deliberately (a reviewed format change),
//! by running this test with `KILN_BLESS_GOLDEN=1`.
//!
//! Set `KILN_GOLDEN_OUT=DIR` to also keep the layout, an oci-archive and a docker-archive
//! of the golden image in DIR (for checking with skopeo/umoci by hand).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kiln_oci::{Image, ImageConfig, Layer, Platform};

const SDE: u64 = 1_700_000_000;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/golden")
}

fn add_tree(layer: &mut Layer, dir: &Path, prefix: &str) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().into_string().unwrap();
        let image_path = format!("{prefix}/{name}");
        if e.file_type().unwrap().is_dir() {
            add_tree(layer, &e.path(), &image_path);
        } else {
            layer.add_file(&image_path, e.path(), None).unwrap();
        }
    }
}

#[test]
fn golden_image_digests() {
    let mut layer = Layer::new();
    add_tree(&mut layer, &golden_dir().join("files"), "app");
    let mut config = ImageConfig::new(Platform::linux_amd64());
    config.entrypoint = Some(vec!["/app/bin/run.sh".into()]);
    config.labels.insert(
        "org.opencontainers.image.title".into(),
        "kiln-golden".into(),
    );
    let image = Image {
        sde: SDE,
        base: None,
        layers: vec![(layer, "kiln golden layer".into())],
        config,
    };

    let keep = std::env::var_os("KILN_GOLDEN_OUT").map(PathBuf::from);
    let tmp = tempfile::tempdir().unwrap();
    let out = keep.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    let layout = out.join("layout");
    let built = image.write_layout(&layout, "golden").unwrap();
    if keep.is_some() {
        kiln_oci::write_oci_archive(&layout, &out.join("oci-archive.tar"), SDE).unwrap();
        let tags = ["kiln.test/golden:latest".to_string()];
        kiln_oci::write_docker_archive(
            &layout,
            &built.manifest.digest,
            &tags,
            &out.join("docker-archive.tar"),
            SDE,
        )
        .unwrap();
    }

    let actual: BTreeMap<&str, String> = BTreeMap::from([
        ("layer_digest", built.layers[0].digest.to_string()),
        ("layer_diff_id", built.layers[0].diff_id.to_string()),
        ("config_digest", built.config_digest.to_string()),
        ("manifest_digest", built.manifest.digest.to_string()),
    ]);
    let path = golden_dir().join("digests.json");
    if std::env::var_os("KILN_BLESS_GOLDEN").is_some() {
        std::fs::write(&path, kiln_core::canonical::to_vec_pretty(&actual).unwrap()).unwrap();
        return;
    }
    let expected: BTreeMap<String, String> = serde_json::from_slice(
        &std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display())),
    )
    .unwrap();
    let actual_owned: BTreeMap<String, String> = actual
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    assert!(
        expected == actual_owned,
        "golden digests changed!\nexpected: {expected:#?}\nactual:   {actual_owned:#?}\n\
         The bytes of kiln's images changed. {} must only change deliberately (a reviewed \
         format change): rerun with KILN_BLESS_GOLDEN=1 to rewrite it.",
        path.display()
    );
}
