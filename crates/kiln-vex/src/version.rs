//! Version ordering for advisory ranges: semver for crates.io, dpkg's algorithm for Debian.

use std::cmp::Ordering;

/// How versions of one ecosystem compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Semantic Versioning 2.0 (crates.io, and OSV's `SEMVER` ranges).
    Semver,
    /// Debian's `[epoch:]upstream[-revision]` ordering.
    Debian,
}

/// Why a string is not a version of a [`Scheme`]. Its message is complete (the semver
/// parser's reason is part of it, not a source): callers put it into a `VexError`'s
/// message naming the advisory and the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    #[error("`{version}` is not a semantic version ({reason})")]
    Semver { version: String, reason: String },
    #[error("`{version}` is not a Debian version ({rule})")]
    Debian {
        version: String,
        /// The rule of Debian's version syntax it breaks.
        rule: &'static str,
    },
}

impl Scheme {
    /// Compares two versions, or says which one is not a version of this scheme.
    pub fn compare(self, a: &str, b: &str) -> Result<Ordering, VersionError> {
        match self {
            Scheme::Semver => {
                let p = |v: &str| {
                    semver::Version::parse(v).map_err(|e| VersionError::Semver {
                        version: v.to_string(),
                        reason: e.to_string(),
                    })
                };
                Ok(p(a)?.cmp(&p(b)?))
            }
            Scheme::Debian => {
                check_debian(a)?;
                check_debian(b)?;
                Ok(dpkg_compare(a, b))
            }
        }
    }
}

fn check_debian(v: &str) -> Result<(), VersionError> {
    let (epoch, rest) = split_epoch(v);
    let upstream = rest.rsplit_once('-').map_or(rest, |(u, _)| u);
    let bad = |rule| {
        Err(VersionError::Debian {
            version: v.to_string(),
            rule,
        })
    };
    if epoch.is_some_and(|e| e.is_empty() || !e.bytes().all(|b| b.is_ascii_digit())) {
        return bad("the epoch must be a number");
    }
    if !upstream.bytes().next().is_some_and(|b| b.is_ascii_digit()) {
        return bad("the upstream version must start with a digit");
    }
    if !v
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b".+-~:".contains(&b))
    {
        return bad("only letters, digits and . + - ~ : are allowed");
    }
    Ok(())
}

fn split_epoch(v: &str) -> (Option<&str>, &str) {
    match v.split_once(':') {
        Some((e, r)) => (Some(e), r),
        None => (None, v),
    }
}

/// dpkg's version comparison (`lib/dpkg/version.c`: `dpkg_version_compare` and
/// `verrevcmp`), written by hand because no well-kept crate does exactly this: epochs
/// numerically, then upstream and revision alternating non-digit runs (letters before
/// other characters, `~` before everything, even the end) and digit runs (numerically).
pub fn dpkg_compare(a: &str, b: &str) -> Ordering {
    let (ea, ra) = split_epoch(a);
    let (eb, rb) = split_epoch(b);
    let epoch = |e: Option<&str>| e.and_then(|e| e.parse::<u64>().ok()).unwrap_or(0);
    let (ua, va) = ra.rsplit_once('-').unwrap_or((ra, ""));
    let (ub, vb) = rb.rsplit_once('-').unwrap_or((rb, ""));
    epoch(ea)
        .cmp(&epoch(eb))
        .then_with(|| verrevcmp(ua.as_bytes(), ub.as_bytes()))
        .then_with(|| verrevcmp(va.as_bytes(), vb.as_bytes()))
}

fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(b'~') => -1,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => c as i32,
        Some(c) => c as i32 + 256,
    }
}

fn verrevcmp(a: &[u8], b: &[u8]) -> Ordering {
    let (mut i, mut j) = (0, 0);
    let digit = |s: &[u8], k: usize| s.get(k).is_some_and(u8::is_ascii_digit);
    while i < a.len() || j < b.len() {
        while (i < a.len() && !digit(a, i)) || (j < b.len() && !digit(b, j)) {
            let (ac, bc) = (order(a.get(i).copied()), order(b.get(j).copied()));
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        while a.get(i) == Some(&b'0') {
            i += 1;
        }
        while b.get(j) == Some(&b'0') {
            j += 1;
        }
        let mut first_diff = Ordering::Equal;
        while digit(a, i) && digit(b, j) {
            if first_diff == Ordering::Equal {
                first_diff = a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
        if digit(a, i) {
            return Ordering::Greater;
        }
        if digit(b, j) {
            return Ordering::Less;
        }
        if first_diff != Ordering::Equal {
            return first_diff;
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering::*;

    /// Vectors from dpkg's `lib/dpkg/t/t-version.c` and Debian Policy §5.6.12.
    #[test]
    fn dpkg_vectors() {
        let cases: &[(&str, &str, Ordering)] = &[
            ("0", "0", Equal),
            ("0:0", "0", Equal),
            ("0:0-", "0", Equal),
            ("0:0-0", "0:0", Equal),
            ("0:0.0-0.0", "0:0.0-0.0", Equal),
            ("1.0", "1.0-0", Equal),
            ("1:0", "0:0", Greater),
            ("2:0.1", "1:9.9", Greater),
            ("0:0-0", "0:0-1", Less),
            ("0:0.0-0.0", "0:0.0-0.1", Less),
            ("0:a", "0:b", Less),
            ("0:1a", "0:1b", Less),
            ("0:1.0~rc1", "0:1.0", Less),
            ("1.0~~", "1.0~", Less),
            ("1.0~", "1.0", Less),
            ("1.0", "1.0a", Less),
            ("1.0a", "1.0+", Less),
            ("1.0", "1.0.0", Less),
            ("1.0+dfsg", "1.0", Greater),
            ("1.10", "1.9", Greater),
            ("1.001", "1.1", Equal),
            ("2.36-9+deb12u4", "2.36-9+deb12u10", Less),
            ("2.36-9+deb12u4", "2.36-9", Greater),
            ("1.2.3-1~bpo12+1", "1.2.3-1", Less),
        ];
        for (a, b, want) in cases {
            assert_eq!(dpkg_compare(a, b), *want, "{a} vs {b}");
            assert_eq!(dpkg_compare(b, a), want.reverse(), "{b} vs {a}");
        }
    }

    #[test]
    fn schemes_reject_what_is_not_a_version() {
        assert_eq!(Scheme::Semver.compare("1.0.19", "1.0.2"), Ok(Greater));
        assert_eq!(Scheme::Semver.compare("1.0.0-alpha", "1.0.0"), Ok(Less));
        assert!(Scheme::Semver.compare("1.0", "1.0.0").is_err());
        assert!(Scheme::Debian.compare("x1.0", "1.0").is_err());
        assert!(Scheme::Debian.compare("a:1.0", "1.0").is_err());
        assert_eq!(Scheme::Debian.compare("1:1.0", "2.0"), Ok(Greater));
    }
}
