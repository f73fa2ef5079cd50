//! Just enough of the package-URL spec to compare the purls of statements, findings and
//! SBOM components: `pkg:type/namespace/name@version?qualifiers#subpath`.

/// A parsed purl. Components are kept percent-decoded so `pkg:cargo/itoa@1.0.19` and an
/// over-encoded spelling of it compare equal.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Purl {
    pub ty: String,
    pub namespace: Option<String>,
    pub name: String,
    pub version: Option<String>,
    /// Sorted `key=value` pairs, decoded.
    pub qualifiers: Vec<(String, String)>,
}

impl Purl {
    /// Parses `s`, or says what is wrong with it.
    pub fn parse(s: &str) -> Result<Purl, String> {
        let rest = s
            .strip_prefix("pkg:")
            .ok_or_else(|| format!("`{s}` is not a package URL (it must start with `pkg:`)"))?;
        let rest = rest.split_once('#').map_or(rest, |(a, _)| a);
        let (rest, quals) = match rest.split_once('?') {
            Some((a, q)) => (a, Some(q)),
            None => (rest, None),
        };
        let (path, version) = match rest.rsplit_once('@') {
            Some((p, v)) if !p.is_empty() => (p, Some(decode(v))),
            _ => (rest, None),
        };
        let path = path.trim_matches('/');
        let (ty, path) = path
            .split_once('/')
            .ok_or_else(|| format!("`{s}` has no package name (expected pkg:TYPE/NAME@VERSION)"))?;
        if ty.is_empty()
            || !ty
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        {
            return Err(format!("`{s}` has an invalid type `{ty}`"));
        }
        let (namespace, name) = match path.rsplit_once('/') {
            Some((ns, n)) => (Some(decode(ns)), decode(n)),
            None => (None, decode(path)),
        };
        if name.is_empty() {
            return Err(format!("`{s}` has an empty package name"));
        }
        let mut qualifiers: Vec<(String, String)> = quals
            .unwrap_or("")
            .split('&')
            .filter(|q| !q.is_empty())
            .map(|q| match q.split_once('=') {
                Some((k, v)) => (k.to_ascii_lowercase(), decode(v)),
                None => (q.to_ascii_lowercase(), String::new()),
            })
            .collect();
        qualifiers.sort();
        Ok(Purl {
            ty: ty.to_ascii_lowercase(),
            namespace,
            name,
            version,
            qualifiers,
        })
    }

    /// Does this purl (from a statement) designate `component`? Type, namespace and name
    /// must be equal; a version, when given, must be equal; qualifiers, when given, must all
    /// be present on the component. So `pkg:cargo/itoa` names every itoa in the SBOM.
    pub fn designates(&self, component: &Purl) -> bool {
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
                .all(|q| component.qualifiers.contains(q))
    }
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && b[i + 1].is_ascii_hexdigit()
            && b[i + 2].is_ascii_hexdigit()
        {
            let hex = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
            out.push(hex(b[i + 1]) * 16 + hex(b[i + 2]));
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::Purl;

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
            oci.qualifiers,
            vec![
                ("arch".into(), "amd64".into()),
                ("tag".into(), "latest".into())
            ]
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
        assert!(Purl::parse("cargo/itoa").is_err());
        assert!(Purl::parse("pkg:cargo").is_err());
    }
}
