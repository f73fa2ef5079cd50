//! `pin`: from a release number and a package list to a [`RootLock`]. The only step that
//! reads indexes from the network, and it reads nothing it does not pin: the Rust channel
//! manifest gives each tarball's URL and sha256, Debian's `Release` gives the sha256 of
//! `Packages.xz` (checked), and `Packages` gives each `.deb`'s file name, size and sha256.
//!
//! Trust: the indexes are fetched over HTTPS from the given hosts; the `Release` file's
//! OpenPGP signature is not checked (that needs an OpenPGP implementation and Debian's
//! keyring), so a pin is as good as the TLS connection it was made over. The lock it
//! writes is what is reviewed and committed; everything after `pin` checks bytes against
//! it and never trusts a server again.

use std::collections::BTreeMap;
use std::io::Read;

use serde::Deserialize;

use crate::debian::{self, FULL_SYSTEM_ONLY};
use crate::error::{Result, ToolrootError};
use crate::lock::{DebPackage, DebianPin, RootLock, RustComponent, RustPin, SCHEMA};
use crate::net::Net;

/// The packages a default root starts from: the C compiler driver and `cc1`, glibc's
/// headers, crt objects and static + shared libraries, binutils (`as`, `ld`), and a
/// `/bin/sh`. Their closure brings libgcc, the compiler's own libraries and the rest.
/// `libfaketime` is there for `kiln repro`'s clock variation: inside a root the build's
/// tools only see the root, so the library that shifts their clock must be part of it (it
/// is preloaded only when a build asks for `--faketime`, and shapes no output otherwise).
pub const DEFAULT_PACKAGES: &[&str] = &["gcc-12", "libc6-dev", "binutils", "dash", "libfaketime"];
/// The Debian suite and mirror a default root pins from.
pub const DEFAULT_SUITE: &str = "bookworm";
pub const DEFAULT_MIRROR: &str = "https://deb.debian.org/debian";
/// Where Rust's channel manifests are.
pub const RUST_DIST: &str = "https://static.rust-lang.org/dist";

/// The largest index kiln reads into memory (Packages.xz is ~9 MiB, the channel ~1 MiB).
const INDEX_LIMIT: u64 = 256 << 20;

/// What to pin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinRequest {
    /// The root's name (lock file name, layout ref name).
    pub name: String,
    pub target: String,
    /// A released Rust version, e.g. `1.95.0`.
    pub rust_version: String,
    pub debian_mirror: String,
    pub suite: String,
    /// Binary packages to start the closure from.
    pub packages: Vec<String>,
}

impl PinRequest {
    /// The default root for `rust_version`: `bookworm-rust-<version>` for
    /// x86_64-unknown-linux-gnu from [`DEFAULT_PACKAGES`].
    pub fn new(rust_version: &str) -> Self {
        PinRequest {
            name: format!("{DEFAULT_SUITE}-rust-{rust_version}"),
            target: "x86_64-unknown-linux-gnu".into(),
            rust_version: rust_version.into(),
            debian_mirror: DEFAULT_MIRROR.into(),
            suite: DEFAULT_SUITE.into(),
            packages: DEFAULT_PACKAGES.iter().map(|s| s.to_string()).collect(),
        }
    }
}

/// The Debian architecture of a target triple kiln can provide a root for.
pub(crate) fn arch_of(target: &str) -> Result<&'static str> {
    let unsupported = |why: &str| ToolrootError::UnsupportedTarget {
        target: target.to_string(),
        why: why.to_string(),
    };
    let mut parts = target.split('-');
    let arch = parts.next().unwrap_or_default();
    if !target.ends_with("-unknown-linux-gnu") {
        return Err(unsupported(
            "only `<arch>-unknown-linux-gnu` targets (Debian's glibc) are provided",
        ));
    }
    match arch {
        "x86_64" => Ok("amd64"),
        "aarch64" => Ok("arm64"),
        _ => Err(unsupported("only x86_64 and aarch64 are provided")),
    }
}

/// The OCI architecture of a supported target.
pub(crate) fn oci_arch(target: &str) -> Result<(&'static str, Option<&'static str>)> {
    Ok(match arch_of(target)? {
        "arm64" => ("arm64", Some("v8")),
        _ => ("amd64", None),
    })
}

#[derive(Deserialize)]
struct Channel {
    #[serde(default)]
    pkg: BTreeMap<String, ChannelPkg>,
}

#[derive(Deserialize)]
struct ChannelPkg {
    #[serde(default)]
    target: BTreeMap<String, ChannelTarget>,
}

#[derive(Deserialize)]
struct ChannelTarget {
    #[serde(default)]
    available: bool,
    xz_url: Option<String>,
    xz_hash: Option<String>,
}

/// The tarballs of `rustc`, `cargo` and `rust-std` for `target` in a channel manifest,
/// as lock components (sizes not yet known).
pub(crate) fn components_from_channel(
    text: &str,
    target: &str,
    url: &str,
) -> Result<Vec<RustComponent>> {
    let bad = |problem: String| ToolrootError::Channel {
        url: url.to_string(),
        problem,
    };
    let channel: Channel = toml::from_str(text).map_err(|e| bad(format!("not TOML: {e}")))?;
    let mut out = Vec::new();
    for (pkg, name) in [
        ("rustc", "rustc".to_string()),
        ("cargo", "cargo".to_string()),
        ("rust-std", format!("rust-std-{target}")),
    ] {
        let t = channel
            .pkg
            .get(pkg)
            .and_then(|p| p.target.get(target))
            .filter(|t| t.available)
            .ok_or_else(|| {
                bad(format!(
                    "`[pkg.{pkg}.target.{target}]` is missing or not available"
                ))
            })?;
        let (Some(xz_url), Some(xz_hash)) = (&t.xz_url, &t.xz_hash) else {
            return Err(bad(format!(
                "`[pkg.{pkg}.target.{target}]` has no `xz_url`/`xz_hash`"
            )));
        };
        crate::lock::check_hex(xz_hash).map_err(|p| bad(format!("`pkg.{pkg}` xz_hash {p}")))?;
        out.push(RustComponent {
            name,
            url: xz_url.clone(),
            sha256: xz_hash.clone(),
            size: None,
        });
    }
    Ok(out)
}

/// The symlinks kiln adds to a root from `packages` (the requested list): the usrmerge
/// links, `cc`/`gcc` for the requested `gcc-N`, and `sh` (accepted as is if a package
/// ships the same link, as dash does).
pub(crate) fn default_links(packages: &[String]) -> BTreeMap<String, String> {
    let mut links: BTreeMap<String, String> = crate::unpack::USRMERGE
        .iter()
        .map(|d| (d.to_string(), format!("usr/{d}")))
        .collect();
    if let Some(gcc) = packages
        .iter()
        .filter(|p| {
            p.strip_prefix("gcc-")
                .is_some_and(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
        })
        .max()
    {
        links.insert("usr/bin/cc".into(), gcc.clone());
        links.insert("usr/bin/gcc".into(), gcc.clone());
    }
    if packages.iter().any(|p| p == "dash") {
        links.insert("usr/bin/sh".into(), "dash".into());
    }
    links
}

/// Pins a root: downloads the Rust channel manifest and Debian's `Release` and
/// `Packages.xz` (checked against `Release`), resolves the packages' closure (see the
/// `debian` module) and returns the lock, without `root` (that is `pack`'s).
pub fn pin(req: &PinRequest) -> Result<RootLock> {
    let arch = arch_of(&req.target)?;
    let net = Net::new();

    let channel_url = format!("{RUST_DIST}/channel-rust-{}.toml", req.rust_version);
    let channel = net.get_bytes(&channel_url, INDEX_LIMIT)?;
    let channel = String::from_utf8(channel).map_err(|_| ToolrootError::Channel {
        url: channel_url.clone(),
        problem: "not UTF-8".into(),
    })?;
    let mut components = components_from_channel(&channel, &req.target, &channel_url)?;
    for c in &mut components {
        c.size = net.head_size(&c.url);
    }

    let mirror = req.debian_mirror.trim_end_matches('/');
    let release_url = format!("{mirror}/dists/{}/Release", req.suite);
    let release = net.get_bytes(&release_url, INDEX_LIMIT)?;
    let rel_path = format!("main/binary-{arch}/Packages.xz");
    let (want_hex, want_size) = debian::release_sha256(&String::from_utf8_lossy(&release))
        .remove(&rel_path)
        .ok_or_else(|| ToolrootError::Index {
            url: release_url.clone(),
            problem: format!("its SHA256 list has no `{rel_path}`"),
        })?;
    let packages_url = format!("{mirror}/dists/{}/{rel_path}", req.suite);
    let xz = net.get_bytes(&packages_url, INDEX_LIMIT)?;
    let got = kiln_core::Digest::of(&xz);
    if got.hex() != want_hex || xz.len() as u64 != want_size {
        return Err(ToolrootError::DigestMismatch {
            input: "Debian's Packages index".into(),
            source_name: packages_url,
            expected: format!("{want_hex} ({want_size} bytes, from {release_url})"),
            found: format!("{} ({} bytes)", got.hex(), xz.len()),
        });
    }
    let mut text = String::new();
    liblzma::read::XzDecoder::new(&xz[..])
        .read_to_string(&mut text)
        .map_err(|e| ToolrootError::Index {
            url: packages_url.clone(),
            problem: format!("cannot decompress: {e}"),
        })?;
    let index = debian::parse_packages(&text, arch, &packages_url)?;
    let closure = index.closure(&req.packages, arch, FULL_SYSTEM_ONLY, &packages_url)?;
    let packages = closure
        .into_iter()
        .map(|p| DebPackage {
            name: p.name.clone(),
            version: p.version.clone(),
            architecture: p.architecture.clone(),
            filename: p.filename.clone(),
            size: p.size,
            sha256: p.sha256.clone(),
        })
        .collect();

    let lock = RootLock {
        schema: SCHEMA.into(),
        name: req.name.clone(),
        target: req.target.clone(),
        rust: RustPin {
            version: req.rust_version.clone(),
            channel_url,
            components,
        },
        debian: DebianPin {
            mirror: mirror.to_string(),
            suite: req.suite.clone(),
            packages,
        },
        links: default_links(&req.packages),
        root: None,
        toolchain: None,
    };
    lock.validate("the pinned lock")?;
    Ok(lock)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHANNEL: &str = r#"
manifest-version = "2"
[pkg.rustc.target.x86_64-unknown-linux-gnu]
available = true
xz_url = "https://static.rust-lang.org/dist/d/rustc-1.0.0-x86_64-unknown-linux-gnu.tar.xz"
xz_hash = "1111111111111111111111111111111111111111111111111111111111111111"
[pkg.cargo.target.x86_64-unknown-linux-gnu]
available = true
xz_url = "https://static.rust-lang.org/dist/d/cargo-1.0.0-x86_64-unknown-linux-gnu.tar.xz"
xz_hash = "2222222222222222222222222222222222222222222222222222222222222222"
[pkg.rust-std.target.x86_64-unknown-linux-gnu]
available = true
xz_url = "https://static.rust-lang.org/dist/d/rust-std-1.0.0-x86_64-unknown-linux-gnu.tar.xz"
xz_hash = "3333333333333333333333333333333333333333333333333333333333333333"
[pkg.rust-std.target.aarch64-unknown-linux-gnu]
available = false
"#;

    #[test]
    fn channel_components() {
        let c = components_from_channel(CHANNEL, "x86_64-unknown-linux-gnu", "u").unwrap();
        let names: Vec<_> = c.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            ["rustc", "cargo", "rust-std-x86_64-unknown-linux-gnu"]
        );
        assert!(c[2].sha256.starts_with('3'));
        let e = components_from_channel(CHANNEL, "aarch64-unknown-linux-gnu", "u").unwrap_err();
        assert!(e.to_string().contains("pkg.rustc.target.aarch64"), "{e}");
    }

    #[test]
    fn targets() {
        assert_eq!(arch_of("x86_64-unknown-linux-gnu").unwrap(), "amd64");
        assert_eq!(arch_of("aarch64-unknown-linux-gnu").unwrap(), "arm64");
        assert!(arch_of("x86_64-unknown-linux-musl").is_err());
        assert!(arch_of("riscv64gc-unknown-linux-gnu").is_err());
    }

    #[test]
    fn links_follow_the_request() {
        let l = default_links(&PinRequest::new("1.95.0").packages);
        assert_eq!(l["usr/bin/cc"], "gcc-12");
        assert_eq!(l["usr/bin/sh"], "dash");
        assert_eq!(l["lib64"], "usr/lib64");
        assert_eq!(l.len(), 7);
    }
}
