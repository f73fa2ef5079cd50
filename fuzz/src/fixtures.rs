//! What the targets share: the repository, a fixture SBOM, a signing key, and a scratch
//! OCI layout per thread whose index, manifest or layer a target replaces.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use kiln_core::Digest;

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `testdata/vex/sbom.cdx.json`, what the VEX parsers match against.
pub fn sbom() -> &'static kiln_vex::Sbom {
    static SBOM: OnceLock<kiln_vex::Sbom> = OnceLock::new();
    SBOM.get_or_init(|| {
        kiln_vex::Sbom::load(&repo().join("testdata/vex/sbom.cdx.json")).expect("fixture SBOM")
    })
}

/// A signing key for the DSSE seeds (fresh per run: only the seeds depend on it).
pub fn key() -> &'static kiln_attest::keys::SigningKey {
    static KEY: OnceLock<kiln_attest::keys::SigningKey> = OnceLock::new();
    KEY.get_or_init(kiln_attest::keys::SigningKey::generate)
}

/// `testdata/layers/ok-normalized.tar`, the default layer of the scratch layout.
pub fn ok_layer() -> &'static [u8] {
    static LAYER: OnceLock<Vec<u8>> = OnceLock::new();
    LAYER.get_or_init(|| {
        std::fs::read(repo().join("testdata/layers/ok-normalized.tar")).expect("layer fixture")
    })
}

/// The parts of a one-image OCI layout, as bytes.
pub struct LayoutParts {
    pub layer: Vec<u8>,
    pub config: Vec<u8>,
    pub manifest: Vec<u8>,
    pub index: Vec<u8>,
}

/// A valid layout around `layer` (uncompressed tar).
pub fn parts(layer: &[u8]) -> LayoutParts {
    let config = serde_json::to_vec(&serde_json::json!({"architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [Digest::of(layer).to_string()]}}))
    .unwrap();
    let manifest = manifest_for(layer, &config);
    let index = index_for(&manifest);
    LayoutParts {
        layer: layer.to_vec(),
        config,
        manifest,
        index,
    }
}

pub fn manifest_for(layer: &[u8], config: &[u8]) -> Vec<u8> {
    serde_json::to_vec_pretty(&serde_json::json!({"schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": Digest::of(config).to_string(), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": Digest::of(layer).to_string(), "size": layer.len()}]}))
    .unwrap()
}

pub fn index_for(manifest: &[u8]) -> Vec<u8> {
    serde_json::to_vec_pretty(&serde_json::json!({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": Digest::of(manifest).to_string(), "size": manifest.len(),
         "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}))
    .unwrap()
}

thread_local! {
    /// In memory where the machine has a tmpfs: a disk write per case is most of the cost.
    static SCRATCH: tempfile::TempDir = tempfile::tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .expect("a scratch directory");
    /// Blobs already in this thread's scratch layout (content-addressed: never stale).
    static WRITTEN: std::cell::RefCell<std::collections::BTreeSet<Digest>> =
        const { std::cell::RefCell::new(std::collections::BTreeSet::new()) };
}

/// Writes `p` as an OCI layout in this thread's scratch directory (blobs are named by
/// digest, so earlier ones can stay) and calls `f` with its path and the manifest digest.
pub fn with_layout<T>(p: &LayoutParts, f: impl FnOnce(&Path, &Digest) -> T) -> T {
    SCRATCH.with(|d| {
        let root = d.path().join("layout");
        let blobs = root.join("blobs/sha256");
        WRITTEN.with(|w| {
            let mut w = w.borrow_mut();
            if w.is_empty() {
                std::fs::create_dir_all(&blobs).unwrap();
                std::fs::write(
                    root.join("oci-layout"),
                    br#"{"imageLayoutVersion":"1.0.0"}"#,
                )
                .unwrap();
            }
            for b in [&p.layer, &p.config, &p.manifest] {
                let dg = Digest::of(b);
                if w.insert(dg) {
                    std::fs::write(blobs.join(dg.hex()), b).unwrap();
                }
            }
        });
        std::fs::write(root.join("index.json"), &p.index).unwrap();
        f(&root, &Digest::of(&p.manifest))
    })
}
