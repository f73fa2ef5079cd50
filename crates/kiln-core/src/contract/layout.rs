//! Where things are on disk: the project's files, kiln's working directories under
//! `target/kiln/`, and the names of the files in one image's output directory.
//!
//! kiln's crates talk to each other through files (kiln-vex reads the SBOM kiln-sbom wrote,
//! kiln-attest signs whatever evidence exists, `repro` and `verify` judge the output tree),
//! so these names are the real API between them. They are defined here, once, below every
//! crate: a crate that needs to find another's output asks [`ProjectLayout`] or
//! [`OutputDir`] instead of spelling the name again.

use std::path::{Path, PathBuf};

/// The project's configuration, at its root.
pub const KILN_TOML: &str = "kiln.toml";
/// Cargo's manifest file name.
pub const CARGO_TOML: &str = "Cargo.toml";
/// Cargo's lock file name, beside the (workspace) manifest.
pub const CARGO_LOCK: &str = "Cargo.lock";
/// The directory of pinned toolchain locks, relative to the project root.
pub const TOOLCHAINS_DIR: &str = "toolchains";
/// The project's VEX statements, relative to the project root.
pub const VEX_STATEMENTS: &str = "vex/statements.toml";
/// The reproducibility variations `repro` applies, relative to the project root.
pub const REPRO_VARIATIONS: &str = "reproducibility/variations.toml";
/// kiln's working directory, relative to the project root.
pub const KILN_TARGET_DIR: &str = "target/kiln";

/// The files of one image's output directory (`target/kiln/out/<image>/`).
pub mod file {
    /// The OCI image layout directory.
    pub const OCI_DIR: &str = "oci";
    /// `summary.json`: see [`crate::contract::summary::Summary`].
    pub const SUMMARY: &str = "summary.json";
    /// The OCI layout as one tar archive.
    pub const OCI_ARCHIVE: &str = "image.oci.tar";
    /// The `docker load` archive.
    pub const DOCKER_ARCHIVE: &str = "image.docker.tar";
    /// The CycloneDX SBOM (kiln-sbom writes it, kiln-vex reads it).
    pub const SBOM_CDX: &str = "sbom.cdx.json";
    /// The SPDX SBOM.
    pub const SBOM_SPDX: &str = "sbom.spdx.json";
    /// The CSAF 2.0 VEX document.
    pub const VEX_CSAF: &str = "vex.csaf.json";
    /// The OpenVEX document.
    pub const VEX_OPENVEX: &str = "vex.openvex.json";
    /// The CycloneDX VEX document.
    pub const VEX_CDX: &str = "vex.cdx.json";
    /// The gate's verdict (`gate`), written after the build.
    pub const GATE: &str = "gate.json";
    /// What `push` sent where (`kiln_registry::push::Report`), written after the build.
    pub const PUSH: &str = "push.json";
    /// Unsigned provenance (the in-toto statement itself).
    pub const PROVENANCE: &str = "provenance.json";
    /// The DSSE envelope of signed provenance: `envelope_file(PROVENANCE)`.
    pub const PROVENANCE_ENVELOPE: &str = "provenance.intoto.json";
    /// The Sigstore bundle of signed provenance: `bundle_file(PROVENANCE)`.
    pub const PROVENANCE_BUNDLE: &str = "provenance.sigstore.json";
    /// The control attestation (`kiln controls attest`, after the build): the statement's
    /// name, from which its envelope and bundle are named.
    pub const CONTROLS: &str = "controls.json";
    /// `envelope_file(CONTROLS)`.
    pub const CONTROLS_ENVELOPE: &str = "controls.intoto.json";
    /// `bundle_file(CONTROLS)`: attached to the image as a referrer after the build.
    pub const CONTROLS_BUNDLE: &str = "controls.sigstore.json";
}

/// Inside `image.docker.tar`: the file `docker load` reads first (kiln-oci writes it,
/// `verify` recomputes it).
pub mod docker_archive {
    pub const MANIFEST: &str = "manifest.json";
}

/// The files of an evidence pack (`kiln evidence pack --out DIR`).
pub mod pack {
    /// Every file of the pack with its sha256, size and role.
    pub const MANIFEST: &str = "manifest.json";
    /// Where `kiln controls attest` writes the attestation of the pack; not listed in the
    /// manifest (it is written after it, about it).
    pub const ATTESTATION_DIR: &str = "attestation";
    /// The human reports of the attestation, in `ATTESTATION_DIR`.
    pub const REPORT_HTML: &str = "controls.html";
    pub const REPORT_PDF: &str = "controls.pdf";
}

/// The files `repro` writes in its output directory (`target/kiln/repro` or `--out`);
/// `corpus` reads the JSON one.
pub mod repro {
    pub const REPORT_JSON: &str = "report.json";
    pub const REPORT_MD: &str = "report.md";
    pub const REPORT_HTML: &str = "report.html";
}

/// A pinned toolchain root (kiln-toolroot): its lock file, the download cache and the
/// store of unpacked roots.
pub mod toolroot {
    /// The store of installed roots, relative to the user's cache directory
    /// (`$XDG_CACHE_HOME`, else `~/.cache`).
    pub const STORE_DIR: &str = "kiln/toolroots";
    /// Beside the store: the download cache of the roots' pinned inputs.
    pub const INPUTS_DIR: &str = "toolroot-inputs";
    /// Inside the store, `<manifest hex>/rootfs`: the unpacked root itself.
    pub const ROOTFS_DIR: &str = "rootfs";
    /// Inside the store, `<manifest hex>/stamp.json`: what the last full verification saw.
    pub const STAMP: &str = "stamp.json";
    /// Inside a download cache, `sha256/<hex>`: every input by the digest it is pinned to.
    pub const CACHE_BLOBS_DIR: &str = "sha256";

    /// `<name>.lock.json`: the lock file of the root called `name`.
    pub fn lock_file(name: &str) -> String {
        format!("{name}.lock.json")
    }
}

/// `sbom.cdx.json` → `sbom.cdx.intoto.json`: the DSSE envelope that signs an evidence file.
pub fn envelope_file(evidence: &str) -> String {
    format!("{}.intoto.json", evidence.trim_end_matches(".json"))
}

/// `sbom.cdx.json` → `sbom.cdx.sigstore.json`: the Sigstore bundle that signs an evidence
/// file.
pub fn bundle_file(evidence: &str) -> String {
    format!("{}.sigstore.json", evidence.trim_end_matches(".json"))
}

/// `toolchains/<target>.lock.json`, relative to the project root, `/`-separated.
pub fn toolchain_lock_rel(target: &str) -> String {
    format!("{TOOLCHAINS_DIR}/{target}.lock.json")
}

/// A project's directory and everything kiln reads or writes inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectLayout {
    root: PathBuf,
}

impl ProjectLayout {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        ProjectLayout { root: root.into() }
    }
    /// The project root (where `kiln.toml` is).
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// `kiln.toml`.
    pub fn kiln_toml(&self) -> PathBuf {
        self.root.join(KILN_TOML)
    }
    /// `Cargo.toml` at the root.
    pub fn cargo_toml(&self) -> PathBuf {
        self.root.join(CARGO_TOML)
    }
    /// `Cargo.lock` at the root.
    pub fn cargo_lock(&self) -> PathBuf {
        self.root.join(CARGO_LOCK)
    }
    /// `toolchains/`: the project's toolchain locks (host and provided).
    pub fn toolchains_dir(&self) -> PathBuf {
        self.root.join(TOOLCHAINS_DIR)
    }
    /// `toolchains/<target>.lock.json`: where the project pins the toolchain for `target`.
    pub fn toolchain_lock(&self, target: &str) -> PathBuf {
        self.root.join(toolchain_lock_rel(target))
    }
    /// `vex/statements.toml`.
    pub fn vex_statements(&self) -> PathBuf {
        self.root.join(VEX_STATEMENTS)
    }
    /// `reproducibility/variations.toml`.
    pub fn repro_variations(&self) -> PathBuf {
        self.root.join(REPRO_VARIATIONS)
    }
    /// `target/kiln`: everything kiln writes in the project.
    pub fn kiln_dir(&self) -> PathBuf {
        self.root.join(KILN_TARGET_DIR)
    }
    /// `target/kiln/out`: one [`OutputDir`] per image.
    pub fn out_dir(&self) -> PathBuf {
        self.kiln_dir().join("out")
    }
    /// `target/kiln/out/<image>`.
    pub fn output(&self, image: &str) -> OutputDir {
        OutputDir::new(self.out_dir().join(image))
    }
    /// `target/kiln/root`: the build root (kiln's cargo home, verified sources, cargo's
    /// target directory).
    pub fn build_root(&self) -> PathBuf {
        self.kiln_dir().join("root")
    }
    /// `target/kiln/repro`: `repro`'s work directory and reports.
    pub fn repro_dir(&self) -> PathBuf {
        self.kiln_dir().join("repro")
    }
    /// `target/kiln/evidence/<image>`: the evidence pack a build writes when kiln.toml's
    /// `[compliance] pack = true`.
    pub fn evidence(&self, image: &str) -> PathBuf {
        self.kiln_dir().join("evidence").join(image)
    }
    /// `target/kiln/corpus`: the corpus run's work directory.
    pub fn corpus_dir(&self) -> PathBuf {
        self.kiln_dir().join("corpus")
    }
    /// `target/kiln/tools`: the test tools `cargo xtask test` installs.
    pub fn tools_dir(&self) -> PathBuf {
        self.kiln_dir().join("tools")
    }
    /// `target/kiln/fuzz`: the fuzz driver's state (crashes).
    pub fn fuzz_dir(&self) -> PathBuf {
        self.kiln_dir().join("fuzz")
    }
}

/// One image's output directory, `target/kiln/out/<image>/` (or wherever `--out` put it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputDir {
    dir: PathBuf,
}

impl OutputDir {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        OutputDir { dir: dir.into() }
    }
    pub fn path(&self) -> &Path {
        &self.dir
    }
    /// Any file of the directory by name (one of [`file`](mod@file)'s, or an envelope/bundle name).
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
    /// `oci/`: the OCI image layout.
    pub fn oci(&self) -> PathBuf {
        self.file(file::OCI_DIR)
    }
    /// `summary.json`.
    pub fn summary(&self) -> PathBuf {
        self.file(file::SUMMARY)
    }
    /// `sbom.cdx.json`.
    pub fn sbom_cdx(&self) -> PathBuf {
        self.file(file::SBOM_CDX)
    }
    /// `sbom.spdx.json`.
    pub fn sbom_spdx(&self) -> PathBuf {
        self.file(file::SBOM_SPDX)
    }
    /// `image.oci.tar`.
    pub fn image_oci_tar(&self) -> PathBuf {
        self.file(file::OCI_ARCHIVE)
    }
    /// `image.docker.tar`.
    pub fn image_docker_tar(&self) -> PathBuf {
        self.file(file::DOCKER_ARCHIVE)
    }
    /// `gate.json`.
    pub fn gate(&self) -> PathBuf {
        self.file(file::GATE)
    }
    /// `vex.csaf.json`.
    pub fn vex_csaf(&self) -> PathBuf {
        self.file(file::VEX_CSAF)
    }
    /// `vex.openvex.json`.
    pub fn vex_openvex(&self) -> PathBuf {
        self.file(file::VEX_OPENVEX)
    }
    /// `vex.cdx.json`.
    pub fn vex_cdx(&self) -> PathBuf {
        self.file(file::VEX_CDX)
    }
    /// `provenance.json` (unsigned provenance).
    pub fn provenance(&self) -> PathBuf {
        self.file(file::PROVENANCE)
    }
    /// The DSSE envelope of an evidence file (`<stem>.intoto.json`).
    pub fn envelope(&self, evidence: &str) -> PathBuf {
        self.file(&envelope_file(evidence))
    }
    /// The Sigstore bundle of an evidence file (`<stem>.sigstore.json`).
    pub fn bundle(&self, evidence: &str) -> PathBuf {
        self.file(&bundle_file(evidence))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_paths() {
        let p = ProjectLayout::new("/p");
        assert_eq!(p.out_dir(), Path::new("/p/target/kiln/out"));
        assert_eq!(p.build_root(), Path::new("/p/target/kiln/root"));
        assert_eq!(p.repro_dir(), Path::new("/p/target/kiln/repro"));
        assert_eq!(p.tools_dir(), Path::new("/p/target/kiln/tools"));
        assert_eq!(p.corpus_dir(), Path::new("/p/target/kiln/corpus"));
        assert_eq!(p.fuzz_dir(), Path::new("/p/target/kiln/fuzz"));
        assert_eq!(
            p.toolchain_lock("x86_64-unknown-linux-gnu"),
            Path::new("/p/toolchains/x86_64-unknown-linux-gnu.lock.json")
        );
        assert_eq!(p.kiln_toml(), Path::new("/p/kiln.toml"));
        assert_eq!(p.vex_statements(), Path::new("/p/vex/statements.toml"));
    }

    #[test]
    fn output_paths() {
        let o = ProjectLayout::new("/p").output("hello");
        assert_eq!(o.path(), Path::new("/p/target/kiln/out/hello"));
        assert_eq!(
            o.summary(),
            Path::new("/p/target/kiln/out/hello/summary.json")
        );
        assert_eq!(o.oci(), Path::new("/p/target/kiln/out/hello/oci"));
        assert_eq!(
            o.sbom_cdx(),
            Path::new("/p/target/kiln/out/hello/sbom.cdx.json")
        );
        assert_eq!(
            o.envelope(file::SBOM_CDX),
            Path::new("/p/target/kiln/out/hello/sbom.cdx.intoto.json")
        );
        assert_eq!(bundle_file(file::PROVENANCE), file::PROVENANCE_BUNDLE);
        assert_eq!(envelope_file(file::PROVENANCE), file::PROVENANCE_ENVELOPE);
    }
}
