//! Purls as kiln-vex matches them. The type (and its parser) is the one kiln-sbom writes
//! the SBOM with, [`kiln_core::contract::purl`]; what is kiln-vex's own is the rule for
//! which components a statement's or scanner's purl designates ([`Designates`]).

pub use kiln_core::contract::purl::{Purl, PurlError};

/// Which components a purl designates.
pub trait Designates {
    /// Does this purl (from a statement) designate `component`? Type, namespace and name
    /// must be equal; a version, when given, must be equal; qualifiers, when given, must
    /// all be present on the component with the same value. So `pkg:cargo/itoa` names
    /// every itoa in the SBOM. The subpath is not compared (a package is matched whole).
    fn designates(&self, component: &Purl) -> bool;
}

impl Designates for Purl {
    fn designates(&self, component: &Purl) -> bool {
        self.ty == component.ty
            && self.namespace == component.namespace
            && self.name == component.name
            && self
                .version
                .as_ref()
                .is_none_or(|v| Some(v) == component.version.as_ref())
            && self
                .qualifiers
                .iter()
                .all(|(k, v)| component.qualifiers.get(k) == Some(v))
    }
}

#[cfg(test)]
mod tests {
    use super::{Designates, Purl};

    #[test]
    fn parses_and_designates() {
        let itoa = Purl::parse("pkg:cargo/itoa@1.0.19").unwrap();
        assert_eq!(
            (
                itoa.ty.as_str(),
                itoa.name.as_str(),
                itoa.version.as_deref()
            ),
            ("cargo", "itoa", Some("1.0.19"))
        );
        assert!(Purl::parse("pkg:cargo/itoa").unwrap().designates(&itoa));
        assert!(
            !Purl::parse("pkg:cargo/itoa@1.0.18")
                .unwrap()
                .designates(&itoa)
        );
        assert!(
            !Purl::parse("pkg:cargo/ryu@1.0.19")
                .unwrap()
                .designates(&itoa)
        );
        let oci = Purl::parse("pkg:oci/hello@sha256%3Aab?tag=latest&arch=amd64").unwrap();
        assert_eq!(oci.version.as_deref(), Some("sha256:ab"));
        assert_eq!(
            oci.qualifiers.iter().collect::<Vec<_>>(),
            [
                (&"arch".to_string(), &"amd64".to_string()),
                (&"tag".to_string(), &"latest".to_string())
            ]
        );
        assert!(
            Purl::parse("pkg:oci/hello?arch=amd64")
                .unwrap()
                .designates(&oci)
        );
        assert!(
            !Purl::parse("pkg:oci/hello?arch=arm64")
                .unwrap()
                .designates(&oci)
        );
        let deb = Purl::parse("pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64").unwrap();
        assert_eq!(
            (deb.namespace.as_deref(), deb.version.as_deref()),
            (Some("debian"), Some("2.36-9+deb12u4"))
        );
        assert!(
            Purl::parse("pkg:deb/debian/libc6")
                .unwrap()
                .designates(&deb)
        );
        assert!(
            !Purl::parse("pkg:deb/ubuntu/libc6")
                .unwrap()
                .designates(&deb)
        );
        assert!(Purl::parse("cargo/itoa").is_err());
        assert!(Purl::parse("pkg:cargo").is_err());
    }

    /// What kiln-sbom writes, kiln-vex reads back as the same package.
    #[test]
    fn reads_what_the_sbom_writes() {
        let written = Purl::new("deb", "libc6")
            .with_namespace("debian")
            .with_version("2.36-9+deb12u4")
            .with_qualifier("arch", "amd64")
            .with_qualifier("distro", "debian-12")
            .to_string();
        let read = Purl::parse(&written).unwrap();
        assert!(
            Purl::parse("pkg:deb/debian/libc6@2.36-9+deb12u4")
                .unwrap()
                .designates(&read)
        );
    }
}
