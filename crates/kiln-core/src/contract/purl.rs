//! Package URLs (<https://github.com/package-url/purl-spec>):
//! `pkg:type/namespace/name@version?qualifiers#subpath`.
//!
//! kiln-sbom writes purls into the SBOM and kiln-vex reads them back (from the SBOM, from
//! VEX statements, from SARIF) to match advisories to components. When the builder and the
//! parser were two pieces of code in two crates nothing checked that one read what the
//! other wrote; here they are one type, [`Purl`], whose [`Display`](std::fmt::Display) is
//! the builder and [`Purl::parse`] the parser, and the tests round-trip one through the other.
//!
//! Spelling: the type and qualifier keys are lowercase; namespace segments, name, version,
//! qualifier values and subpath segments are percent-encoded except for the unreserved
//! characters `A-Za-z0-9-._~` (so `:` in `sha256:…` is `%3A` and `+` is `%2B`, as the spec's
//! own examples do); qualifiers are sorted by key and empty values are dropped. SBOM bytes
//! depend on this spelling (the golden SBOM digest pins it).

use std::collections::BTreeMap;
use std::fmt;

/// A package URL, every component percent-decoded, so `pkg:cargo/itoa@1.0.19` and an
/// over-encoded spelling of it are equal.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Purl {
    /// `cargo`, `deb`, `apk`, `oci`, ...; lowercase.
    pub ty: String,
    /// `/`-separated segments, decoded (`debian`, `alpine`).
    pub namespace: Option<String>,
    pub name: String,
    pub version: Option<String>,
    /// Decoded values by lowercase key; never an empty value.
    pub qualifiers: BTreeMap<String, String>,
    /// `/`-separated segments, decoded.
    pub subpath: Option<String>,
}

/// Why a string is not a package URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PurlError {
    #[error(
        "`{purl}` is not a package URL: it must start with `pkg:` (e.g. pkg:cargo/itoa@1.0.19)"
    )]
    Scheme { purl: String },
    #[error(
        "`{purl}` has no package name: expected pkg:TYPE/NAME@VERSION (e.g. pkg:cargo/itoa@1.0.19)"
    )]
    NoName { purl: String },
    #[error(
        "`{purl}` has an invalid type `{ty}`: a type is ASCII letters, digits, `.`, `+` and `-`, not starting with a digit"
    )]
    Type { purl: String, ty: String },
}

impl Purl {
    /// `pkg:ty/name`, no version, qualifiers or subpath; see the `with_*` builders.
    pub fn new(ty: &str, name: &str) -> Self {
        Purl {
            ty: ty.to_ascii_lowercase(),
            namespace: None,
            name: name.to_string(),
            version: None,
            qualifiers: BTreeMap::new(),
            subpath: None,
        }
    }
    pub fn with_namespace(mut self, namespace: &str) -> Self {
        self.namespace = Some(namespace.to_string()).filter(|s| !s.is_empty());
        self
    }
    pub fn with_version(mut self, version: &str) -> Self {
        self.version = Some(version.to_string());
        self
    }
    /// Adds a qualifier; an empty value is no qualifier (the spec drops it).
    pub fn with_qualifier(mut self, key: &str, value: &str) -> Self {
        if !value.is_empty() {
            self.qualifiers
                .insert(key.to_ascii_lowercase(), value.to_string());
        }
        self
    }
    pub fn with_subpath(mut self, subpath: &str) -> Self {
        self.subpath = Some(subpath.to_string()).filter(|s| !s.is_empty());
        self
    }

    /// Parses `s` (the spec's parsing rules, right to left: `#subpath`, `?qualifiers`,
    /// `@version`, then type, namespace and name). Percent-escapes are decoded; a malformed
    /// escape is kept as written.
    pub fn parse(s: &str) -> Result<Purl, PurlError> {
        let err_name = || PurlError::NoName { purl: s.into() };
        let rest = s
            .strip_prefix("pkg:")
            .ok_or_else(|| PurlError::Scheme { purl: s.into() })?;
        let (rest, subpath) = match rest.rsplit_once('#') {
            Some((a, sp)) => (a, segments(sp, true)),
            None => (rest, None),
        };
        let (rest, quals) = match rest.rsplit_once('?') {
            Some((a, q)) => (a, q),
            None => (rest, ""),
        };
        let rest = rest.trim_matches('/');
        let (path, version) = match rest.rsplit_once('@') {
            Some((p, v)) if !p.is_empty() => (p, Some(decode(v))),
            _ => (rest, None),
        };
        let (ty, path) = path.split_once('/').ok_or_else(err_name)?;
        if ty.is_empty()
            || ty.as_bytes()[0].is_ascii_digit()
            || !ty
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        {
            return Err(PurlError::Type {
                purl: s.into(),
                ty: ty.into(),
            });
        }
        let path = path.trim_matches('/');
        let (namespace, name) = match path.rsplit_once('/') {
            Some((ns, n)) => (segments(ns, false), decode(n)),
            None => (None, decode(path)),
        };
        if name.is_empty() {
            return Err(err_name());
        }
        let qualifiers = quals
            .split('&')
            .filter_map(|q| {
                let (k, v) = q.split_once('=')?;
                let v = decode(v);
                (!k.is_empty() && !v.is_empty()).then(|| (k.to_ascii_lowercase(), v))
            })
            .collect();
        Ok(Purl {
            ty: ty.to_ascii_lowercase(),
            namespace,
            name,
            version,
            qualifiers,
            subpath,
        })
    }
}

/// Decodes `/`-separated segments, dropping empty ones (and, in a subpath, `.` and `..`).
fn segments(s: &str, subpath: bool) -> Option<String> {
    let v: Vec<String> = s
        .split('/')
        .filter(|seg| !seg.is_empty() && !(subpath && (*seg == "." || *seg == "..")))
        .map(decode)
        .collect();
    (!v.is_empty()).then(|| v.join("/"))
}

impl std::str::FromStr for Purl {
    type Err = PurlError;
    fn from_str(s: &str) -> Result<Self, PurlError> {
        Purl::parse(s)
    }
}

/// The canonical spelling (see the module docs).
impl fmt::Display for Purl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pkg:{}/", self.ty)?;
        if let Some(ns) = &self.namespace {
            for seg in ns.split('/').filter(|s| !s.is_empty()) {
                write!(f, "{}/", encode(seg))?;
            }
        }
        f.write_str(&encode(&self.name))?;
        if let Some(v) = &self.version {
            write!(f, "@{}", encode(v))?;
        }
        let mut sep = '?';
        for (k, v) in self.qualifiers.iter().filter(|(_, v)| !v.is_empty()) {
            write!(f, "{sep}{k}={}", encode(v))?;
            sep = '&';
        }
        if let Some(sp) = &self.subpath {
            let segs: Vec<String> = sp
                .split('/')
                .filter(|s| !s.is_empty())
                .map(encode)
                .collect();
            if !segs.is_empty() {
                write!(f, "#{}", segs.join("/"))?;
            }
        }
        Ok(())
    }
}

/// Percent-encodes everything but the unreserved characters (`A-Za-z0-9-._~`).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes; a malformed escape, or bytes that are not UTF-8 once decoded,
/// leave the text as written.
pub fn decode(s: &str) -> String {
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
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Canonical spellings and what they mean: each parses to the value and the value
    /// prints back to exactly the string.
    #[test]
    fn round_trip_table() {
        let cases: Vec<(&str, Purl)> = vec![
            (
                "pkg:cargo/itoa@1.0.19",
                Purl::new("cargo", "itoa").with_version("1.0.19"),
            ),
            (
                "pkg:deb/debian/libc6@2.36-9?arch=amd64&distro=debian-12",
                Purl::new("deb", "libc6")
                    .with_namespace("debian")
                    .with_version("2.36-9")
                    .with_qualifier("distro", "debian-12")
                    .with_qualifier("arch", "amd64"),
            ),
            (
                "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12",
                Purl::new("deb", "libc6")
                    .with_namespace("debian")
                    .with_version("2.36-9+deb12u4")
                    .with_qualifier("arch", "amd64")
                    .with_qualifier("distro", "debian-12"),
            ),
            (
                "pkg:oci/hello@sha256%3Aab?arch=amd64&tag=latest",
                Purl::new("oci", "hello")
                    .with_version("sha256:ab")
                    .with_qualifier("tag", "latest")
                    .with_qualifier("arch", "amd64"),
            ),
            (
                "pkg:apk/alpine/musl@1.2.4-r2?arch=x86_64&distro=alpine-3.19.1",
                Purl::new("apk", "musl")
                    .with_namespace("alpine")
                    .with_version("1.2.4-r2")
                    .with_qualifier("arch", "x86_64")
                    .with_qualifier("distro", "alpine-3.19.1"),
            ),
            (
                "pkg:golang/github.com/gorilla/context@234fd47e07d1004f0aed9c#api/v1",
                Purl::new("golang", "context")
                    .with_namespace("github.com/gorilla")
                    .with_version("234fd47e07d1004f0aed9c")
                    .with_subpath("api/v1"),
            ),
            (
                "pkg:generic/a%20b%2Fc@1%3A2.3~rc1%40x?k=v%26w%3D",
                Purl::new("generic", "a b/c")
                    .with_version("1:2.3~rc1@x")
                    .with_qualifier("k", "v&w="),
            ),
            ("pkg:cargo/itoa", Purl::new("cargo", "itoa")),
            (
                "pkg:npm/%40scope%2Fname@1.0.0",
                Purl::new("npm", "@scope/name").with_version("1.0.0"),
            ),
        ];
        for (text, purl) in cases {
            assert_eq!(purl.to_string(), text, "build {purl:?}");
            assert_eq!(Purl::parse(text).unwrap(), purl, "parse {text}");
            assert_eq!(Purl::parse(&purl.to_string()).unwrap(), purl);
        }
    }

    /// Non-canonical spellings parse to the canonical value.
    #[test]
    fn normalizes() {
        let p = Purl::parse("pkg:CarGo/it%6Fa@1.0.19?B=2&a=1&empty=&novalue").unwrap();
        assert_eq!(p.ty, "cargo");
        assert_eq!(p.name, "itoa");
        assert_eq!(p.qualifiers, q(&[("a", "1"), ("b", "2")]));
        assert_eq!(p.to_string(), "pkg:cargo/itoa@1.0.19?a=1&b=2");
        let p = Purl::parse("pkg:/cargo//itoa@1#/./a//../b/").unwrap();
        assert_eq!(p.to_string(), "pkg:cargo/itoa@1#a/b");
        // A malformed escape is kept literally (and re-encoded).
        assert_eq!(Purl::parse("pkg:cargo/a%zz").unwrap().name, "a%zz");
        assert_eq!(Purl::parse("pkg:cargo/a%2").unwrap().name, "a%2");
    }

    #[test]
    fn refuses() {
        assert!(matches!(
            Purl::parse("cargo/itoa"),
            Err(PurlError::Scheme { .. })
        ));
        assert!(matches!(
            Purl::parse("pkg:cargo"),
            Err(PurlError::NoName { .. })
        ));
        assert!(matches!(
            Purl::parse("pkg:cargo/"),
            Err(PurlError::NoName { .. })
        ));
        assert!(matches!(
            Purl::parse("pkg:c%41rgo/x"),
            Err(PurlError::Type { .. })
        ));
        assert!(matches!(
            Purl::parse("pkg:1cargo/x"),
            Err(PurlError::Type { .. })
        ));
        let e = Purl::parse("itoa").unwrap_err().to_string();
        assert!(e.contains("`itoa`") && e.contains("pkg:"), "{e}");
    }
}
