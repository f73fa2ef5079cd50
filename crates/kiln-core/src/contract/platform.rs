//! The machine kiln runs on, named the ways kiln's outputs name it: Rust's
//! `target_arch`/`target_os` → OCI `os`/`architecture`/`variant` (GOOS/GOARCH spelling) and
//! the Debian architecture.
//!
//! kiln builds images for the host only, so `kiln.toml`'s `platform` check, the image
//! config's `architecture` and anything else that names the host must agree. They used to
//! carry two tables (kiln-config's and kiln-oci's) that disagreed on 32-bit x86 (`x86` vs
//! `386`); this is the one table.

/// Rust's `target_arch` → OCI (GOARCH) `architecture` and `variant`.
///
/// `little_endian` matters for `powerpc64` only (`ppc64le` vs `ppc64`). Unknown
/// architectures keep Rust's name, so a new one is at worst spelled Rust's way.
pub fn oci_arch(rust_arch: &str, little_endian: bool) -> (&str, Option<&'static str>) {
    match rust_arch {
        "x86_64" => ("amd64", None),
        "aarch64" => ("arm64", Some("v8")),
        "x86" => ("386", None),
        "arm" => ("arm", Some("v7")),
        "powerpc64" if little_endian => ("ppc64le", None),
        "powerpc64" => ("ppc64", None),
        "loongarch64" => ("loong64", None),
        "mips64" if little_endian => ("mips64le", None),
        other => (other, None),
    }
}

/// Rust's `target_os` → OCI (GOOS) `os`.
pub fn oci_os(rust_os: &str) -> &str {
    match rust_os {
        "macos" => "darwin",
        other => other,
    }
}

/// Rust's `target_arch` → the Debian architecture dpkg records (`Architecture:`).
pub fn debian_arch(rust_arch: &str, little_endian: bool) -> &str {
    match rust_arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "i386",
        "arm" => "armhf",
        "powerpc64" if little_endian => "ppc64el",
        "powerpc64" => "ppc64",
        "loongarch64" => "loong64",
        "mips64" if little_endian => "mips64el",
        other => other,
    }
}

/// An OCI platform, in the spelling of an image config / index entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPlatform {
    pub os: &'static str,
    pub architecture: &'static str,
    pub variant: Option<&'static str>,
}

impl HostPlatform {
    /// `os/architecture`: how `kiln.toml`'s `platform` names it (the variant is implied
    /// by the architecture).
    pub fn os_arch(&self) -> String {
        format!("{}/{}", self.os, self.architecture)
    }
    /// The host's Debian architecture.
    pub fn debian_arch(&self) -> &'static str {
        debian_arch(std::env::consts::ARCH, cfg!(target_endian = "little"))
    }
}

/// The machine kiln runs on. Images are Linux images, so the OS is `linux` whatever
/// the host calls itself (kiln builds on Linux only).
pub fn host() -> HostPlatform {
    let (architecture, variant) = oci_arch(std::env::consts::ARCH, cfg!(target_endian = "little"));
    HostPlatform {
        os: oci_os("linux"),
        architecture,
        variant,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        assert_eq!(oci_arch("x86_64", true), ("amd64", None));
        assert_eq!(oci_arch("aarch64", true), ("arm64", Some("v8")));
        assert_eq!(oci_arch("powerpc64", true), ("ppc64le", None));
        assert_eq!(oci_arch("powerpc64", false), ("ppc64", None));
        assert_eq!(oci_arch("s390x", false), ("s390x", None));
        assert_eq!(oci_arch("riscv64", true), ("riscv64", None));
        assert_eq!(debian_arch("x86_64", true), "amd64");
        assert_eq!(debian_arch("powerpc64", true), "ppc64el");
        assert_eq!(oci_os("linux"), "linux");
    }

    /// kiln-config said `x86` and kiln-oci `386` for 32-bit x86: one answer now, the OCI one.
    #[test]
    fn where_the_two_tables_disagreed() {
        assert_eq!(oci_arch("x86", true), ("386", None));
        assert_eq!(debian_arch("x86", true), "i386");
    }

    #[test]
    fn host_is_linux() {
        let h = host();
        assert_eq!(h.os, "linux");
        assert_eq!(h.os_arch(), format!("linux/{}", h.architecture));
        #[cfg(target_arch = "x86_64")]
        assert_eq!(
            h,
            HostPlatform {
                os: "linux",
                architecture: "amd64",
                variant: None
            }
        );
    }
}
