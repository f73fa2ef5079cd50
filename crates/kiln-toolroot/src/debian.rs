//! Debian's indexes: deb822 stanzas of a `Packages` file, the `SHA256` list of a `Release`
//! file, dpkg's version order, and the dependency closure of a set of packages.
//!
//! The closure follows what dpkg needs before it would unpack a package: `Pre-Depends`
//! and `Depends`, never `Recommends` or `Suggests` (a toolchain root is as small as the
//! build needs). Version constraints are not solved: one suite's index has one version of
//! each package (the highest, in dpkg's order, if a stanza appears twice), and that is the
//! one taken. Of alternatives (`a | b`) the first satisfiable one is taken, as apt does by
//! default. A virtual package (`Provides`) resolves to a requested provider, else to its
//! only provider; several candidates is an error asking the user to pick one, never a
//! guess.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::error::{Result, ToolrootError};

/// Packages that exist to manage a full system and that nothing in a toolchain root runs:
/// left out of the closure even where another package depends on them. `dpkg` is pulled in
/// by `dash` (whose maintainer scripts kiln does not run) and would bring `tar`, `libacl1`,
/// `libselinux1`, `libpcre2-8-0`, `libbz2-1.0` and `libmd0` with it; a root has no dpkg
/// database to manage.
pub const FULL_SYSTEM_ONLY: &[&str] = &["dpkg"];

/// One binary package stanza, with the fields kiln uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Package {
    pub name: String,
    pub version: String,
    pub architecture: String,
    pub filename: String,
    pub size: u64,
    pub sha256: String,
    /// `Pre-Depends` then `Depends`: each entry a list of alternatives, each a bare name
    /// (arch qualifier and version constraint removed) with its arch qualifier.
    pub depends: Vec<Vec<(String, Option<String>)>>,
    /// Virtual package names this one provides.
    pub provides: Vec<String>,
}

/// A parsed `Packages` index.
#[derive(Debug, Default)]
pub(crate) struct Index {
    pub packages: BTreeMap<String, Package>,
    /// Virtual name → providers (sorted).
    pub providers: BTreeMap<String, BTreeSet<String>>,
}

/// The fields of each deb822 stanza in `text` (continuation lines joined with `\n`).
/// Errors say which line is not a field.
pub(crate) fn stanzas(text: &str) -> std::result::Result<Vec<BTreeMap<String, String>>, String> {
    let mut out = Vec::new();
    let mut cur: BTreeMap<String, String> = BTreeMap::new();
    let mut last: Option<String> = None;
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            last = None;
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            let Some(k) = &last else {
                return Err(format!(
                    "line {}: a continuation line with no field before it",
                    n + 1
                ));
            };
            let v = cur.get_mut(k).expect("last field exists");
            v.push('\n');
            v.push_str(line.trim());
            continue;
        }
        let Some((k, v)) = line.split_once(':') else {
            return Err(format!("line {}: `{line}` is not `Field: value`", n + 1));
        };
        let k = k.trim();
        if k.is_empty() || k.contains(char::is_whitespace) {
            return Err(format!("line {}: `{k}` is not a field name", n + 1));
        }
        cur.insert(k.to_string(), v.trim().to_string());
        last = Some(k.to_string());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

/// A dependency field (`a (>= 1) | b:any, c`) → alternatives of (name, arch qualifier).
fn parse_relations(field: &str) -> Vec<Vec<(String, Option<String>)>> {
    field
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|group| {
            group
                .split('|')
                .filter_map(|alt| {
                    // Name ends at whitespace, `(`, `[` or `<`.
                    let alt = alt.trim();
                    let end = alt
                        .find(|c: char| c.is_whitespace() || "([<".contains(c))
                        .unwrap_or(alt.len());
                    let token = &alt[..end];
                    if token.is_empty() {
                        return None;
                    }
                    Some(match token.split_once(':') {
                        Some((n, a)) => (n.to_string(), Some(a.to_string())),
                        None => (token.to_string(), None),
                    })
                })
                .collect::<Vec<_>>()
        })
        .filter(|g| !g.is_empty())
        .collect()
}

/// Parses a `Packages` index for `arch` (stanzas of other architectures are skipped;
/// `all` is kept). `url` names the index in errors.
pub(crate) fn parse_packages(text: &str, arch: &str, url: &str) -> Result<Index> {
    let bad = |problem: String| ToolrootError::Index {
        url: url.to_string(),
        problem,
    };
    let mut index = Index::default();
    for s in stanzas(text).map_err(bad)? {
        let get = |k: &str| -> Result<String> {
            s.get(k).cloned().ok_or_else(|| {
                bad(format!(
                    "the stanza of `{}` has no `{k}` field",
                    s.get("Package").map(String::as_str).unwrap_or("?")
                ))
            })
        };
        let name = get("Package")?;
        let architecture = get("Architecture")?;
        if architecture != arch && architecture != "all" {
            continue;
        }
        let size: u64 = get("Size")?
            .parse()
            .map_err(|_| bad(format!("`{name}`: `Size` is not a number")))?;
        let sha256 = get("SHA256")?;
        crate::lock::check_hex(&sha256).map_err(|p| bad(format!("`{name}`: SHA256 {p}")))?;
        let mut depends = Vec::new();
        for f in ["Pre-Depends", "Depends"] {
            if let Some(v) = s.get(f) {
                depends.extend(parse_relations(v));
            }
        }
        let provides = s
            .get("Provides")
            .map(|p| {
                parse_relations(p)
                    .into_iter()
                    .flatten()
                    .map(|(n, _)| n)
                    .collect()
            })
            .unwrap_or_default();
        let pkg = Package {
            name: name.clone(),
            version: get("Version")?,
            architecture,
            filename: get("Filename")?,
            size,
            sha256,
            depends,
            provides,
        };
        match index.packages.get(&name) {
            Some(old) if compare_versions(&old.version, &pkg.version) != Ordering::Less => {}
            _ => {
                index.packages.insert(name, pkg);
            }
        }
    }
    for p in index.packages.values() {
        for v in &p.provides {
            index
                .providers
                .entry(v.clone())
                .or_default()
                .insert(p.name.clone());
        }
    }
    Ok(index)
}

impl Index {
    /// The package that satisfies `name` (real first, then a provider), or why none does.
    fn satisfy(
        &self,
        name: &str,
        arch_qual: Option<&str>,
        arch: &str,
        requested: &BTreeSet<String>,
        needed_by: &str,
    ) -> std::result::Result<Option<String>, ToolrootError> {
        if let Some(q) = arch_qual
            && q != "any"
            && q != "native"
            && q != arch
        {
            return Ok(None);
        }
        if self.packages.contains_key(name) {
            return Ok(Some(name.to_string()));
        }
        let Some(providers) = self.providers.get(name) else {
            return Ok(None);
        };
        let chosen: Vec<&String> = providers
            .iter()
            .filter(|p| requested.contains(*p))
            .collect();
        match (chosen.as_slice(), providers.len()) {
            ([one], _) => Ok(Some((*one).clone())),
            ([], 1) => Ok(providers.iter().next().cloned()),
            _ => Err(ToolrootError::AmbiguousVirtual {
                name: name.to_string(),
                needed_by: needed_by.to_string(),
                providers: providers.iter().cloned().collect(),
            }),
        }
    }

    /// The dependency closure of `requested`, sorted by name, without `skip`. `index_url`
    /// names the index in errors.
    pub(crate) fn closure(
        &self,
        requested: &[String],
        arch: &str,
        skip: &[&str],
        index_url: &str,
    ) -> Result<Vec<&Package>> {
        let req: BTreeSet<String> = requested.iter().cloned().collect();
        let mut seen: BTreeSet<String> = BTreeSet::new();
        let mut queue: VecDeque<(String, Option<String>)> = VecDeque::new();
        for r in requested {
            let Some(found) = self.satisfy(r, None, arch, &req, "the request")? else {
                return Err(ToolrootError::MissingPackage {
                    package: r.clone(),
                    needed_by: None,
                    index: index_url.to_string(),
                });
            };
            queue.push_back((found, None));
        }
        while let Some((name, _by)) = queue.pop_front() {
            if !seen.insert(name.clone()) {
                continue;
            }
            let pkg = &self.packages[&name];
            for group in &pkg.depends {
                if group
                    .iter()
                    .any(|(n, _)| skip.contains(&n.as_str()) && self.packages.contains_key(n))
                {
                    continue;
                }
                let mut picked = None;
                for (n, q) in group {
                    if let Some(p) = self.satisfy(n, q.as_deref(), arch, &req, &name)? {
                        picked = Some(p);
                        break;
                    }
                }
                match picked {
                    Some(p) if skip.contains(&p.as_str()) => {}
                    Some(p) => queue.push_back((p, Some(name.clone()))),
                    None => {
                        return Err(ToolrootError::MissingPackage {
                            package: group
                                .iter()
                                .map(|(n, _)| n.as_str())
                                .collect::<Vec<_>>()
                                .join(" | "),
                            needed_by: Some(name.clone()),
                            index: index_url.to_string(),
                        });
                    }
                }
            }
        }
        Ok(seen.iter().map(|n| &self.packages[n]).collect())
    }
}

/// The `SHA256` entries of a `Release` file: path → (hex, size).
pub(crate) fn release_sha256(text: &str) -> BTreeMap<String, (String, u64)> {
    let mut out = BTreeMap::new();
    let Ok(st) = stanzas(text) else {
        return out;
    };
    let Some(list) = st.first().and_then(|s| s.get("SHA256")) else {
        return out;
    };
    for line in list.lines() {
        let mut it = line.split_whitespace();
        if let (Some(h), Some(sz), Some(p)) = (it.next(), it.next(), it.next())
            && let Ok(sz) = sz.parse()
        {
            out.insert(p.to_string(), (h.to_string(), sz));
        }
    }
    out
}

/// dpkg's version order (`deb-version(7)`): epoch, then upstream and revision compared
/// by alternating non-digit parts (letters before non-letters, `~` before everything,
/// even the end) and numeric parts.
pub(crate) fn compare_versions(a: &str, b: &str) -> Ordering {
    fn split(v: &str) -> (u64, &str, &str) {
        let (epoch, rest) = match v.split_once(':') {
            Some((e, r)) if e.bytes().all(|b| b.is_ascii_digit()) => (e.parse().unwrap_or(0), r),
            _ => (0, v),
        };
        match rest.rsplit_once('-') {
            Some((u, r)) => (epoch, u, r),
            None => (epoch, rest, ""),
        }
    }
    fn order(c: Option<u8>) -> i32 {
        match c {
            None => 0,
            Some(b'~') => -1,
            Some(c) if c.is_ascii_alphabetic() => c as i32,
            Some(c) => c as i32 + 256,
        }
    }
    fn part(a: &str, b: &str) -> Ordering {
        let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
        while !a.is_empty() || !b.is_empty() {
            // Non-digit prefix.
            loop {
                let ca = a.first().copied().filter(|c| !c.is_ascii_digit());
                let cb = b.first().copied().filter(|c| !c.is_ascii_digit());
                if ca.is_none() && cb.is_none() {
                    break;
                }
                match order(ca).cmp(&order(cb)) {
                    Ordering::Equal => {
                        a = &a[ca.is_some() as usize..];
                        b = &b[cb.is_some() as usize..];
                    }
                    o => return o,
                }
            }
            // Numeric part.
            let da = a.iter().take_while(|c| c.is_ascii_digit()).count();
            let db = b.iter().take_while(|c| c.is_ascii_digit()).count();
            let na = std::str::from_utf8(&a[..da])
                .unwrap_or("0")
                .trim_start_matches('0');
            let nb = std::str::from_utf8(&b[..db])
                .unwrap_or("0")
                .trim_start_matches('0');
            match na.len().cmp(&nb.len()).then_with(|| na.cmp(nb)) {
                Ordering::Equal => {}
                o => return o,
            }
            a = &a[da..];
            b = &b[db..];
        }
        Ordering::Equal
    }
    let (ea, ua, ra) = split(a);
    let (eb, ub, rb) = split(b);
    ea.cmp(&eb)
        .then_with(|| part(ua, ub))
        .then_with(|| part(ra, rb))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stanza(name: &str, extra: &str) -> String {
        format!(
            "Package: {name}\nVersion: 1.0-1\nArchitecture: amd64\n{extra}Filename: pool/main/{name}_1.0-1_amd64.deb\nSize: 10\nSHA256: {}\nDescription: {name}\n continued line\n .\n more\n\n",
            "0".repeat(64)
        )
    }

    fn index() -> Index {
        let mut text = String::new();
        text += &stanza(
            "top",
            "Depends: liba (>= 2), missing-virt | libb:any, mta\n",
        );
        text += &stanza("liba", "Pre-Depends: libc\n");
        text += &stanza("libb", "Depends: libc (>= 1) [amd64]\n");
        text += &stanza("libc", "");
        text += &stanza("exim", "Provides: mta, mail-transport-agent (= 1)\n");
        text += &stanza("uses-awk", "Depends: awk\n");
        text += &stanza("mawk", "Provides: awk\n");
        text += &stanza("gawk", "Provides: awk\n");
        text += &stanza("needs-dpkg", "Depends: dpkg (>= 1.19), libc\n");
        text += &stanza("dpkg", "Depends: tar\n");
        text += &stanza("tar", "");
        text += &stanza("broken", "Depends: libc, nowhere (>= 1) | nothing\n");
        // Another architecture's stanza is skipped; a second version of libc, lower, too.
        text += "Package: libc\nVersion: 0.9-1\nArchitecture: amd64\nFilename: pool/old.deb\nSize: 1\nSHA256: "
            .to_string()
            .as_str();
        text += &"1".repeat(64);
        text += "\n\nPackage: armonly\nVersion: 1\nArchitecture: arm64\nFilename: x.deb\nSize: 1\nSHA256: ";
        text += &"2".repeat(64);
        text += "\n";
        parse_packages(&text, "amd64", "test://Packages").unwrap()
    }

    fn names(v: Vec<&Package>) -> Vec<&str> {
        v.into_iter().map(|p| p.name.as_str()).collect()
    }

    #[test]
    fn stanzas_join_continuations_and_reject_garbage() {
        let s = stanzas("A: 1\nB: x\n y\n\nC: 3\n").unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0]["B"], "x\ny");
        assert!(stanzas(" orphan\n").unwrap_err().contains("line 1"));
        assert!(stanzas("no colon here\n").unwrap_err().contains("line 1"));
    }

    #[test]
    fn closure_follows_pre_depends_alternatives_and_provides() {
        let idx = index();
        assert!(!idx.packages.contains_key("armonly"));
        assert_eq!(
            idx.packages["libc"].version, "1.0-1",
            "the higher version wins"
        );
        let got = idx
            .closure(&["top".into()], "amd64", &[], "test://Packages")
            .unwrap();
        // missing-virt is unsatisfiable, so the alternative libb is taken; mta → exim.
        assert_eq!(names(got), ["exim", "liba", "libb", "libc", "top"]);
    }

    #[test]
    fn skipped_packages_are_left_out_with_their_dependencies() {
        let idx = index();
        let got = idx
            .closure(&["needs-dpkg".into()], "amd64", FULL_SYSTEM_ONLY, "t")
            .unwrap();
        assert_eq!(names(got), ["libc", "needs-dpkg"]);
        let all = idx
            .closure(&["needs-dpkg".into()], "amd64", &[], "t")
            .unwrap();
        assert_eq!(names(all), ["dpkg", "libc", "needs-dpkg", "tar"]);
    }

    #[test]
    fn ambiguous_virtual_needs_a_choice() {
        let idx = index();
        let e = idx
            .closure(&["uses-awk".into()], "amd64", &[], "t")
            .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("`awk`") && msg.contains("`gawk`") && msg.contains("`mawk`"),
            "{msg}"
        );
        assert!(msg.contains("needed by `uses-awk`"), "{msg}");
        let got = idx
            .closure(&["uses-awk".into(), "mawk".into()], "amd64", &[], "t")
            .unwrap();
        assert_eq!(names(got), ["mawk", "uses-awk"]);
    }

    #[test]
    fn missing_packages_are_named() {
        let idx = index();
        let e = idx
            .closure(&["no-such-package".into()], "amd64", &[], "test://Packages")
            .unwrap_err();
        assert!(
            e.to_string().contains("`no-such-package`")
                && e.to_string().contains("test://Packages"),
            "{e}"
        );
        let e = idx
            .closure(&["broken".into()], "amd64", &[], "t")
            .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("`nowhere | nothing`") && msg.contains("needed by `broken`"),
            "{msg}"
        );
    }

    #[test]
    fn bad_stanzas_are_errors() {
        let e = parse_packages("Package: x\nArchitecture: amd64\n", "amd64", "u").unwrap_err();
        assert!(e.to_string().contains("`x`"), "{e}");
        let e = parse_packages(
            "Package: x\nArchitecture: amd64\nVersion: 1\nFilename: f\nSize: big\nSHA256: 0\n",
            "amd64",
            "u",
        )
        .unwrap_err();
        assert!(e.to_string().contains("Size"), "{e}");
    }

    #[test]
    fn release_lists_hashes() {
        let text =
            "Origin: Debian\nSHA256:\n 9e0b 8790396 main/binary-amd64/Packages.xz\n abcd 1 other\n";
        let r = release_sha256(text);
        assert_eq!(
            r["main/binary-amd64/Packages.xz"],
            ("9e0b".to_string(), 8790396)
        );
    }

    #[test]
    fn dpkg_version_order() {
        use Ordering::*;
        for (a, b, o) in [
            ("1.0", "1.0", Equal),
            ("1.0", "1.1", Less),
            ("1.10", "1.9", Greater),
            ("1.0~rc1", "1.0", Less),
            ("1.0", "1.0+b1", Less),
            ("1:0.1", "2.0", Greater),
            ("12.2.0-14", "12.2.0-14+deb12u1", Less),
            ("2.36-9+deb12u4", "2.36-9+deb12u14", Less),
            ("1.0a", "1.0-", Greater),
            ("1.0-1", "1.0-1~bpo1", Greater),
        ] {
            assert_eq!(compare_versions(a, b), o, "{a} vs {b}");
            assert_eq!(compare_versions(b, a), o.reverse(), "{b} vs {a}");
        }
    }
}
