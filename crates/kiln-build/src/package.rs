//! What kiln needs to know about the package an image builds, before anything is fetched
//! or compiled: that it exists, which binaries it has, and which rustc it needs.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use kiln_config::{Config, ImageSpec};
use kiln_hermetic::CargoLock;

use crate::error::{BuildError, io};

/// A workspace package as `cargo metadata --no-deps` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PackageInfo {
    pub name: String,
    /// `package.rust-version` (inheritance resolved), if set.
    pub rust_version: Option<String>,
    /// Its `[[bin]]` targets, explicit and auto-discovered (`src/main.rs`, `src/bin/*.rs`),
    /// in cargo's order.
    pub bins: Vec<String>,
    pub manifest_path: PathBuf,
}

/// Checks `spec.package` against the path packages `Cargo.lock` lists (the workspace's own):
/// a typo must fail here, naming kiln.toml's field, not after a fetch.
pub(crate) fn check_in_lock(
    config: &Config,
    index: usize,
    spec: &ImageSpec,
    lock: &CargoLock,
) -> Result<(), BuildError> {
    let local: Vec<&str> = lock
        .crates
        .iter()
        .filter(|c| c.source.is_none())
        .map(|c| c.name.as_str())
        .collect();
    if local.contains(&spec.package.as_str()) {
        return Ok(());
    }
    Err(BuildError::Config(config.error_at(
        format!("image[{index}].package"),
        format!(
            "`{}` is not a package of the workspace locked by {}",
            spec.package,
            lock.path.display()
        ),
        if local.is_empty() {
            "point `manifest` at the Cargo.toml of the package to build".to_string()
        } else {
            format!("use one of: {}", local.join(", "))
        },
    )))
}

/// `cargo metadata --no-deps` for the workspace of `manifest`, offline, returning
/// `package`'s entry. Reads manifests only: no resolution, no network, no compiler.
pub(crate) fn describe(
    cargo: &Path,
    cargo_home: &Path,
    manifest: &Path,
    package: &str,
    rooted: Option<&kiln_hermetic::RootedSandbox>,
) -> Result<PackageInfo, BuildError> {
    // Inside a provided toolchain root, `cargo` is the root's (an in-root path).
    let mut cmd = match rooted {
        Some(r) => r.command(cargo)?,
        None => kiln_core::process::command(cargo),
    };
    cmd.env_clear()
        .env("CARGO_HOME", cargo_home)
        .env("PATH", "/usr/bin:/bin")
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
            "--manifest-path",
        ])
        .arg(manifest)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let command = format!(
        "cargo metadata --no-deps --manifest-path {}",
        manifest.display()
    );
    let out = cmd.output().map_err(io("cannot run", cargo))?;
    if !out.status.success() {
        return Err(BuildError::Metadata {
            command,
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    parse(&out.stdout, package, &command)
}

/// `package`'s entry in `cargo metadata`'s JSON; `command` is what printed it.
fn parse(json: &[u8], package: &str, command: &str) -> Result<PackageInfo, BuildError> {
    #[derive(serde::Deserialize)]
    struct Meta {
        packages: Vec<Pkg>,
    }
    #[derive(serde::Deserialize)]
    struct Pkg {
        name: String,
        rust_version: Option<String>,
        targets: Vec<Target>,
        manifest_path: PathBuf,
    }
    #[derive(serde::Deserialize)]
    struct Target {
        name: String,
        kind: Vec<String>,
    }
    let meta: Meta = serde_json::from_slice(json).map_err(|source| BuildError::MetadataOutput {
        command: command.to_string(),
        source,
    })?;
    let names: Vec<String> = meta.packages.iter().map(|p| p.name.clone()).collect();
    let pkg = meta
        .packages
        .into_iter()
        .find(|p| p.name == package)
        .ok_or_else(|| BuildError::NoPackage {
            command: command.to_string(),
            package: package.to_string(),
            found: names,
        })?;
    Ok(PackageInfo {
        name: pkg.name,
        rust_version: pkg.rust_version,
        bins: pkg
            .targets
            .into_iter()
            .filter(|t| t.kind.iter().any(|k| k == "bin"))
            .map(|t| t.name)
            .collect(),
        manifest_path: pkg.manifest_path,
    })
}

/// `major.minor.patch` of a Rust version (`1.88`, `1.95.0`, `1.97.0-nightly`); missing
/// parts are 0 and a pre-release tag is ignored, as cargo compares `rust-version`.
pub(crate) fn rust_version(v: &str) -> Option<(u64, u64, u64)> {
    let core = v.trim().split(['-', '+']).next()?;
    let mut parts = core.split('.').map(|p| p.parse::<u64>().ok());
    let major = parts.next()??;
    let minor = parts.next().unwrap_or(Some(0))?;
    let patch = parts.next().unwrap_or(Some(0))?;
    if parts.next().is_some() {
        return None;
    }
    Some((major, minor, patch))
}

/// Whether rustc `have` satisfies `rust-version = need` (unparseable versions pass: cargo
/// has already rejected a malformed `rust-version`, and a toolchain version kiln cannot
/// read is for the lock's verification to judge).
pub(crate) fn satisfies(have: &str, need: &str) -> bool {
    match (rust_version(have), rust_version(need)) {
        (Some(h), Some(n)) => h >= n,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_versions_compare_like_cargo() {
        assert_eq!(rust_version("1.88"), Some((1, 88, 0)));
        assert_eq!(rust_version("1.97.0-nightly"), Some((1, 97, 0)));
        assert!(satisfies("1.95.0", "1.95"));
        assert!(satisfies("1.95.0", "1.88.0"));
        assert!(!satisfies("1.95.0", "1.95.1"));
        assert!(!satisfies("1.95.0", "1.96"));
        assert!(satisfies("1.97.0-nightly", "1.96"));
    }

    #[test]
    fn bins_are_cargos_including_auto_discovered_ones() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::create_dir_all(p.join("src/bin")).unwrap();
        std::fs::write(
            p.join("Cargo.toml"),
            "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\nrust-version = \"1.80\"\n\n[[bin]]\nname = \"explicit\"\npath = \"tools/explicit.rs\"\n",
        )
        .unwrap();
        std::fs::create_dir_all(p.join("tools")).unwrap();
        for f in ["src/main.rs", "src/bin/helper.rs", "tools/explicit.rs"] {
            std::fs::write(p.join(f), "fn main() {}\n").unwrap();
        }
        std::fs::write(p.join("src/lib.rs"), "").unwrap();
        let cargo = kiln_toolchain::Toolchain::detect(None).unwrap().cargo;
        let info = describe(
            &cargo,
            &p.join("cargo-home"),
            &p.join("Cargo.toml"),
            "app",
            None,
        )
        .unwrap();
        let mut bins = info.bins.clone();
        bins.sort();
        assert_eq!(bins, ["app", "explicit", "helper"]);
        assert_eq!(info.rust_version.as_deref(), Some("1.80"));
        let err = describe(
            &cargo,
            &p.join("cargo-home"),
            &p.join("Cargo.toml"),
            "nope",
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("no package `nope`") && err.contains("app"),
            "{err}"
        );
    }
}
