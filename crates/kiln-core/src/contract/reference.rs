//! Image references: `[REGISTRY/]REPOSITORY[:TAG][@sha256:HEX]`, read as the docker CLI,
//! skopeo and cosign read them (distribution's `reference` grammar), so a reference a user
//! copies from any of them means the same registry and repository here.
//!
//! Also the rules every image reference kiln is given must follow, defined once for the
//! build (kiln.toml's base), `verify`'s admission policy and the compliance controls:
//! [`Reference::require_pinned_tag`] (no `:latest`, no missing tag) and [`Allowlist`].

use std::fmt;

use crate::Digest;

/// Docker Hub's name in references, and the host its API answers on.
const DOCKER_HUB: &str = "docker.io";
const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// `host[:port]` as written (`docker.io` when the reference names none).
    pub registry: String,
    /// The repository path (`library/` added to a one-component Docker Hub name).
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

#[derive(Debug, thiserror::Error)]
#[error("`{reference}` is not an image reference: {why}")]
pub struct ReferenceError {
    pub reference: String,
    pub why: String,
}

impl Reference {
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        let bad = |why: &str| ReferenceError {
            reference: s.to_string(),
            why: why.to_string(),
        };
        if s.is_empty() || s.len() > 4096 {
            return Err(bad("empty or too long"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (
                r,
                Some(d.parse::<Digest>().map_err(|_| {
                    bad("the part after `@` must be `sha256:` and 64 lowercase hex digits")
                })?),
            ),
            None => (s, None),
        };
        // A tag follows the last `:` after the last `/` (a `:` before it is a port).
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (
                &rest[..last_slash + i],
                Some(rest[last_slash + i + 1..].to_string()),
            ),
            None => (rest, None),
        };
        if let Some(t) = &tag
            && !valid_tag(t)
        {
            return Err(bad(
                "a tag is 1-128 characters of letters, digits, `_`, `.` and `-`, not starting with `.` or `-`",
            ));
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, path))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), path.to_string())
            }
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        if !valid_host(&registry) {
            return Err(bad("the registry must be `host` or `host:port`"));
        }
        if repository.is_empty() || !repository.split('/').all(valid_path_component) {
            return Err(bad(
                "repository path components are lowercase letters and digits, separated by `.`, `_`, `__` or `-`",
            ));
        }
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// The host the registry API answers on (Docker Hub's API is not at `docker.io`).
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.registry
        }
    }

    /// `registry/repository`, without tag or digest: cosign's `docker-reference`.
    pub fn repository_name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// Whether the registry is on this machine (the only place plain HTTP is allowed).
    pub fn is_loopback(&self) -> bool {
        let host = match self.registry.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or_default(),
            None => self.registry.split(':').next().unwrap_or_default(),
        };
        host == "localhost"
            || host == "::1"
            || host
                .parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| ip.is_loopback())
    }

    /// The same repository with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Reference {
        Reference {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.repository_name())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl Reference {
    /// `:latest`, or no tag and no digest (which means `latest`), is refused: a release's
    /// inputs and outputs are named so that the name keeps meaning the same bytes.
    pub fn require_pinned_tag(&self) -> Result<(), String> {
        match (&self.tag, &self.digest) {
            (Some(t), _) if t == "latest" => Err(format!(
                "`{self}` uses the tag `latest`, which names whatever was pushed last"
            )),
            (None, None) => Err(format!(
                "`{self}` has no tag and no digest, so it means `latest`"
            )),
            _ => Ok(()),
        }
    }
}

/// `[policy] base_allowlist`: the base images a build (or an admission check) accepts.
///
/// An entry is either `registry/repository@sha256:HEX` (exactly that image) or a prefix
/// ending in `/*` (`registry/org/*`: any repository under it, at any depth, when pinned by
/// digest). Entries are read with the reference grammar, so `debian` and
/// `docker.io/library/debian` are the same repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowlist {
    entries: Vec<AllowEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum AllowEntry {
    Exact(Reference),
    /// `registry/prefix` (without the `/*`).
    Prefix {
        registry: String,
        prefix: String,
    },
}

impl Allowlist {
    /// Parses the entries; an entry that is neither form is an error naming it (index
    /// `i` of the list) and the fix.
    pub fn parse(entries: &[String]) -> Result<Allowlist, String> {
        let mut out = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            if let Some(prefix) = e.strip_suffix("/*") {
                // Parse `prefix/x` to normalize the registry (docker.io, ports, case rules).
                let r = Reference::parse(&format!("{prefix}/x"))
                    .map_err(|err| format!("[{i}] `{e}`: {}", err.why))?;
                let prefix = r
                    .repository
                    .strip_suffix("/x")
                    .unwrap_or_default()
                    .to_string();
                out.push(AllowEntry::Prefix {
                    registry: r.registry,
                    prefix,
                });
                continue;
            }
            let r = Reference::parse(e).map_err(|err| format!("[{i}] `{e}`: {}", err.why))?;
            if r.digest.is_none() {
                return Err(format!(
                    "[{i}] `{e}` names no digest: an entry is `registry/repository@sha256:...` (one image) or `registry/org/*` (any repository under it, pinned by digest)"
                ));
            }
            out.push(AllowEntry::Exact(r));
        }
        Ok(Allowlist { entries: out })
    }

    /// Whether `r` is allowed: it must be pinned by digest, and match an entry (same
    /// repository and digest, or a repository under a prefix). `Err` says why not.
    pub fn permits(&self, r: &Reference) -> Result<String, String> {
        let Some(digest) = &r.digest else {
            return Err(format!(
                "`{r}` is not pinned by digest: a base image is named `registry/repository@sha256:...`"
            ));
        };
        for e in &self.entries {
            match e {
                AllowEntry::Exact(a)
                    if a.registry == r.registry
                        && a.repository == r.repository
                        && a.digest.as_ref() == Some(digest) =>
                {
                    return Ok(format!("`{r}` is allowed by `{a}`"));
                }
                AllowEntry::Prefix { registry, prefix }
                    if *registry == r.registry
                        && (prefix.is_empty()
                            || r.repository
                                .strip_prefix(prefix.as_str())
                                .is_some_and(|rest| rest.starts_with('/'))) =>
                {
                    return Ok(format!("`{r}` is allowed by `{registry}/{prefix}/*`"));
                }
                _ => {}
            }
        }
        Err(format!(
            "`{r}` is not in the base-image allowlist ({} entries)",
            self.entries.len()
        ))
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

pub fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

fn valid_host(h: &str) -> bool {
    let (host, port) = match h.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((addr, rest)) => (addr, rest.strip_prefix(':')),
            None => return false,
        },
        None => match h.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (h, None),
        },
    };
    !host.is_empty()
        && host
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b':'))
        && port
            .is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|c| c.is_ascii_digit()))
}

fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        let ch = b[i];
        if ch.is_ascii_lowercase() || ch.is_ascii_digit() {
            i += 1;
            continue;
        }
        // Separators: `.`, `_`, `__`, or any run of `-`; each between alphanumerics.
        let start = i;
        match ch {
            b'.' => i += 1,
            b'_' => i += if b.get(i + 1) == Some(&b'_') { 2 } else { 1 },
            b'-' => {
                while b.get(i) == Some(&b'-') {
                    i += 1;
                }
            }
            _ => return false,
        }
        if start == 0 || i >= b.len() || !b[i].is_ascii_alphanumeric() {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_docker_and_skopeo_accept() {
        let r = Reference::parse("127.0.0.1:5000/team/hello:0.1.0").unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "team/hello");
        assert_eq!(r.tag.as_deref(), Some("0.1.0"));
        assert!(r.is_loopback());
        assert_eq!(r.to_string(), "127.0.0.1:5000/team/hello:0.1.0");

        let r = Reference::parse("hello").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("docker.io", "library/hello")
        );
        assert_eq!(r.api_host(), "registry-1.docker.io");
        assert!(!r.is_loopback());

        let d = "sha256:".to_string() + &"ab".repeat(32);
        let r = Reference::parse(&format!("localhost:5000/a/b@{d}")).unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.digest.unwrap().to_string(), d);
        assert!(r.is_loopback());
        let r = Reference::parse(&format!("ghcr.io/o/r:v1@{d}")).unwrap();
        assert_eq!(r.tag.as_deref(), Some("v1"));
        assert!(Reference::parse("[::1]:5000/x:y").unwrap().is_loopback());
        assert!(!Reference::parse("10.0.0.1:5000/x:y").unwrap().is_loopback());
    }

    #[test]
    fn rejects_what_the_grammar_rejects() {
        for bad in [
            "",
            "Upper/Case:tag",
            "reg.io/a//b:t",
            "reg.io/a/b:",
            "reg.io/a/b:-x",
            "reg.io/a/b@sha256:12",
            "reg.io/-a:t",
            "reg.io/a-:t",
            "reg.io:port/a:t",
            "reg.io/a b:t",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad:?} was accepted");
        }
        let e = Reference::parse("reg.io/a/b:").unwrap_err();
        assert!(e.to_string().contains("reg.io/a/b:"), "{e}");
    }

    #[test]
    fn latest_and_no_tag_are_refused_a_version_or_digest_is_not() {
        let d = "sha256:".to_string() + &"ab".repeat(32);
        for bad in [
            "debian:latest",
            "debian",
            "ghcr.io/o/r:latest",
            &format!("ghcr.io/o/r:latest@{d}"),
        ] {
            let e = Reference::parse(bad)
                .unwrap()
                .require_pinned_tag()
                .unwrap_err();
            assert!(e.contains("latest"), "{bad}: {e}");
        }
        for good in [
            "debian:12",
            &format!("ghcr.io/o/r@{d}"),
            &format!("ghcr.io/o/r:1.2@{d}"),
        ] {
            Reference::parse(good)
                .unwrap()
                .require_pinned_tag()
                .unwrap();
        }
    }

    #[test]
    fn the_allowlist_matches_exact_digests_and_prefixes_and_nothing_else() {
        let d = "sha256:".to_string() + &"ab".repeat(32);
        let other = "sha256:".to_string() + &"cd".repeat(32);
        let a = Allowlist::parse(&[format!("debian@{d}"), "ghcr.io/acme/*".to_string()]).unwrap();
        let r = |s: &str| Reference::parse(s).unwrap();
        a.permits(&r(&format!("docker.io/library/debian:12@{d}")))
            .unwrap();
        a.permits(&r(&format!("ghcr.io/acme/base/static@{other}")))
            .unwrap();
        for bad in [
            format!("debian@{other}"),
            format!("ghcr.io/acmecorp/base@{d}"),
            format!("ghcr.io/acme@{d}"),
            format!("quay.io/acme/base@{d}"),
        ] {
            let e = a.permits(&r(&bad)).unwrap_err();
            assert!(e.contains("not in the base-image allowlist"), "{bad}: {e}");
        }
        let e = a.permits(&r("ghcr.io/acme/base:1")).unwrap_err();
        assert!(e.contains("not pinned by digest"), "{e}");
        let e = Allowlist::parse(&["debian:12".into()]).unwrap_err();
        assert!(e.contains("[0] `debian:12` names no digest"), "{e}");
        assert!(Allowlist::parse(&["Bad Name/*".into()]).is_err());
    }
}
