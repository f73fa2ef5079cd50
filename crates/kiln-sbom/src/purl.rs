//! Package URLs (<https://github.com/package-url/purl-spec>): percent-encoding and the
//! qualifier order the spec requires (sorted keys), so a purl is one string, not many.

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

/// `pkg:TYPE/[NAMESPACE/]NAME@VERSION[?k=v&...]`, qualifiers sorted by key, empty values
/// dropped.
pub fn build(
    ty: &str,
    namespace: Option<&str>,
    name: &str,
    version: &str,
    qualifiers: &[(&str, &str)],
) -> String {
    let mut s = format!("pkg:{ty}/");
    if let Some(ns) = namespace {
        s.push_str(&encode(ns));
        s.push('/');
    }
    s.push_str(&encode(name));
    s.push('@');
    s.push_str(&encode(version));
    let mut q: Vec<_> = qualifiers.iter().filter(|(_, v)| !v.is_empty()).collect();
    q.sort();
    for (i, (k, v)) in q.iter().enumerate() {
        s.push(if i == 0 { '?' } else { '&' });
        s.push_str(k);
        s.push('=');
        s.push_str(&encode(v));
    }
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn encodes_and_sorts() {
        assert_eq!(
            super::build(
                "deb",
                Some("debian"),
                "libc6",
                "2.36-9+deb12u4",
                &[("distro", "debian-12"), ("arch", "amd64")]
            ),
            "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12"
        );
        assert_eq!(
            super::build("oci", None, "hello", "sha256:ab", &[("tag", "latest")]),
            "pkg:oci/hello@sha256%3Aab?tag=latest"
        );
        assert_eq!(super::encode("1:2.3"), "1%3A2.3");
    }
}
