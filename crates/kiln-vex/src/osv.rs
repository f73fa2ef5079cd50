//! OSV advisories (<https://ossf.github.io/osv-schema/>): single files given to the gate and
//! the project's local advisory directory, matched against SBOM components by ecosystem,
//! name and affected version ranges.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::error::{Result, VexError, from_json, read};
use crate::findings::Finding;
use crate::sbom::{Component, Sbom};
use crate::severity::{Severity, cvss3_base_score};
use crate::version::Scheme;

/// The project's advisory directory, relative to the directory of `kiln.toml`.
pub const ADVISORIES_DIR: &str = "advisories";

/// A validated OSV advisory.
#[derive(Debug, Clone)]
pub struct Advisory {
    pub path: PathBuf,
    pub id: String,
    pub aliases: BTreeSet<String>,
    pub summary: Option<String>,
    pub severity: Severity,
    pub score: Option<f64>,
    pub affected: Vec<Affected>,
}

/// One `affected[]` entry: a package and the versions of it the advisory is about.
#[derive(Debug, Clone)]
pub struct Affected {
    pub ecosystem: String,
    /// purl type and namespace of the ecosystem (`cargo`, `deb`+`debian`), when kiln knows it.
    pub purl_type: Option<(&'static str, Option<&'static str>)>,
    pub name: String,
    pub ranges: Vec<Range>,
    pub versions: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Range {
    pub scheme: Scheme,
    pub events: Vec<Event>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Introduced(String),
    Fixed(String),
    LastAffected(String),
    Limit(String),
}

impl Event {
    fn version(&self) -> &str {
        match self {
            Event::Introduced(v) | Event::Fixed(v) | Event::LastAffected(v) | Event::Limit(v) => v,
        }
    }
}

#[derive(Deserialize)]
struct RawAdvisory {
    id: String,
    #[serde(default)]
    aliases: Vec<String>,
    summary: Option<String>,
    #[serde(default)]
    severity: Vec<RawSeverity>,
    #[serde(default)]
    affected: Vec<RawAffected>,
    database_specific: Option<Value>,
}

#[derive(Deserialize)]
struct RawSeverity {
    #[serde(rename = "type")]
    kind: String,
    score: String,
}

#[derive(Deserialize)]
struct RawAffected {
    package: Option<RawPackage>,
    #[serde(default)]
    ranges: Vec<RawRange>,
    #[serde(default)]
    versions: Vec<String>,
    #[serde(default)]
    severity: Vec<RawSeverity>,
    database_specific: Option<Value>,
    ecosystem_specific: Option<Value>,
}

#[derive(Deserialize)]
struct RawPackage {
    ecosystem: String,
    name: String,
}

#[derive(Deserialize)]
struct RawRange {
    #[serde(rename = "type")]
    kind: String,
    events: Vec<std::collections::BTreeMap<String, String>>,
}

/// The ecosystems kiln can match: their purl type/namespace and version ordering.
fn ecosystem(eco: &str) -> Option<(&'static str, Option<&'static str>, Scheme)> {
    let base = eco.split(':').next().unwrap_or(eco);
    Some(match base {
        "crates.io" => ("cargo", None, Scheme::Semver),
        "Debian" => ("deb", Some("debian"), Scheme::Debian),
        "Ubuntu" => ("deb", Some("ubuntu"), Scheme::Debian),
        _ => return None,
    })
}

impl Advisory {
    pub fn load(path: &Path) -> Result<Advisory> {
        Self::parse(path, &read(path)?)
    }

    /// Parses and checks an OSV record: every range event must name exactly one of
    /// introduced/fixed/last_affected/limit, and every version must be a version of the
    /// ecosystem, so that matching later cannot silently skip a malformed range.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Advisory> {
        let raw: RawAdvisory = from_json(path, bytes)?;
        let id = raw.id.trim().to_string();
        if id.is_empty() {
            return Err(VexError::invalid(
                path,
                "id",
                "empty advisory id",
                "give the advisory an id (OSV `id`)",
            ));
        }
        let entry = |at: String| format!("{id}: {at}");
        let mut affected = Vec::new();
        let mut sev_words = Vec::new();
        let mut scores = Vec::new();
        for s in &raw.severity {
            if s.kind.starts_with("CVSS_V3") {
                scores.push(cvss3_base_score(&s.score).ok_or_else(|| {
                    VexError::invalid(
                        path,
                        entry("severity".into()),
                        format!("`{}` is not a CVSS v3 vector", s.score),
                        "write CVSS:3.1/AV:.../A:...",
                    )
                })?);
            }
        }
        if let Some(w) = raw
            .database_specific
            .as_ref()
            .and_then(|d| d.get("severity"))
            .and_then(Value::as_str)
        {
            sev_words.push(w.to_string());
        }
        for (i, a) in raw.affected.into_iter().enumerate() {
            let at = |f: &str| entry(format!("affected[{i}]{f}"));
            let pkg = a.package.ok_or_else(|| {
                VexError::invalid(
                    path,
                    at(""),
                    "no package",
                    "add package = {ecosystem, name}",
                )
            })?;
            for s in &a.severity {
                if s.kind.starts_with("CVSS_V3") {
                    scores.extend(cvss3_base_score(&s.score));
                }
            }
            for extra in [&a.database_specific, &a.ecosystem_specific]
                .into_iter()
                .flatten()
            {
                if let Some(w) = extra.get("severity").and_then(Value::as_str) {
                    sev_words.push(w.to_string());
                }
            }
            let eco = ecosystem(&pkg.ecosystem);
            let mut ranges = Vec::new();
            for (j, r) in a.ranges.into_iter().enumerate() {
                let scheme = match (r.kind.as_str(), eco) {
                    ("GIT", _) => continue, // commit ranges say nothing about released versions
                    ("SEMVER", _) => Scheme::Semver,
                    ("ECOSYSTEM", Some((_, _, s))) => s,
                    ("ECOSYSTEM", None) => continue, // an ecosystem kiln cannot order; explicit `versions` still match
                    (other, _) => {
                        return Err(VexError::invalid(
                            path,
                            at(&format!(".ranges[{j}].type")),
                            format!("unknown range type `{other}`"),
                            "use SEMVER, ECOSYSTEM or GIT",
                        ));
                    }
                };
                let mut events = Vec::new();
                for (k, e) in r.events.into_iter().enumerate() {
                    let eat = at(&format!(".ranges[{j}].events[{k}]"));
                    if e.len() != 1 {
                        return Err(VexError::invalid(
                            path,
                            eat,
                            "an event must have exactly one key",
                            "write {\"introduced\": V}, {\"fixed\": V}, {\"last_affected\": V} or {\"limit\": V}",
                        ));
                    }
                    let (key, v) = e.into_iter().next().unwrap_or_default();
                    let ev = match key.as_str() {
                        "introduced" => Event::Introduced(v),
                        "fixed" => Event::Fixed(v),
                        "last_affected" => Event::LastAffected(v),
                        "limit" => Event::Limit(v),
                        other => {
                            return Err(VexError::invalid(
                                path,
                                eat,
                                format!("unknown event `{other}`"),
                                "use introduced, fixed, last_affected or limit",
                            ));
                        }
                    };
                    let zero = matches!(&ev, Event::Introduced(v) if v == "0");
                    if !zero && ev.version() != "*" {
                        scheme.compare(ev.version(), ev.version()).map_err(|e| {
                            VexError::invalid(
                                path,
                                eat.clone(),
                                e.to_string(),
                                format!("write a {} version", scheme_name(scheme)),
                            )
                        })?;
                    }
                    events.push(ev);
                }
                if !events.iter().any(|e| matches!(e, Event::Introduced(_))) {
                    return Err(VexError::invalid(
                        path,
                        at(&format!(".ranges[{j}]")),
                        "no `introduced` event",
                        "add {\"introduced\": \"0\"} for \"every version before the fix\"",
                    ));
                }
                ranges.push(Range { scheme, events });
            }
            affected.push(Affected {
                purl_type: eco.map(|(t, ns, _)| (t, ns)),
                ecosystem: pkg.ecosystem,
                name: pkg.name,
                ranges,
                versions: a.versions,
            });
        }
        let score = scores
            .iter()
            .copied()
            .fold(None, |m: Option<f64>, s| Some(m.map_or(s, |m| m.max(s))));
        let severity = match score {
            Some(s) => Severity::from_score(s),
            None => sev_words
                .iter()
                .filter_map(|w| Severity::from_word(w))
                .max()
                .unwrap_or(Severity::Unknown),
        };
        let aliases = raw
            .aliases
            .into_iter()
            .map(|a| a.trim().to_string())
            .filter(|a| !a.is_empty() && *a != id)
            .collect();
        Ok(Advisory {
            path: path.to_path_buf(),
            id,
            aliases,
            summary: raw.summary,
            severity,
            score,
            affected,
        })
    }

    /// Matches the advisory against the SBOM. Each component of an affected package
    /// yields a finding, `affected: false` when its version is outside every range (shown
    /// by the gate as fixed by version). With `report_absent`, a package the SBOM does not
    /// contain yields a finding without a component, so that it is reported, not dropped.
    pub fn findings(&self, sbom: &Sbom, report_absent: bool) -> Vec<Finding> {
        let mut out = Vec::new();
        for a in &self.affected {
            let comps: Vec<&Component> = match a.purl_type {
                Some((ty, ns)) => sbom
                    .components
                    .iter()
                    .filter(|c| {
                        c.purl.ty == ty
                            && c.purl.name == a.name
                            && (ns.is_none() || c.purl.namespace.as_deref() == ns)
                    })
                    .collect(),
                None => Vec::new(),
            };
            if comps.is_empty() {
                if report_absent {
                    let mut f = self.finding(None, true, String::new());
                    f.package = format!("{}/{}", a.ecosystem, a.name);
                    out.push(f);
                }
                continue;
            }
            for c in comps {
                let version = c
                    .purl
                    .version
                    .clone()
                    .or_else(|| c.version.clone())
                    .unwrap_or_default();
                let (hit, why) = a.affects(&version);
                out.push(self.finding(Some(c), hit, why));
            }
        }
        out
    }

    fn finding(&self, c: Option<&Component>, affected: bool, why: String) -> Finding {
        Finding {
            id: self.id.clone(),
            aliases: self.aliases.clone(),
            severity: self.severity,
            score: self.score,
            summary: self.summary.clone(),
            package: c.map(|c| c.purl_text.clone()).unwrap_or_default(),
            component: c.cloned(),
            affected,
            why,
            sources: [self.path.display().to_string()].into(),
        }
    }
}

fn scheme_name(s: Scheme) -> &'static str {
    match s {
        Scheme::Semver => "semantic",
        Scheme::Debian => "Debian",
    }
}

impl Affected {
    /// Is `version` affected? With the reason, for the gate's `why` column.
    pub fn affects(&self, version: &str) -> (bool, String) {
        if self.versions.iter().any(|v| v == version) {
            return (true, format!("{version} is listed as affected"));
        }
        for r in &self.ranges {
            if let Some(true) = r.contains(version) {
                return (true, format!("{version} is in an affected range"));
            }
        }
        (false, format!("{version} is outside the affected versions"))
    }
}

impl Range {
    /// OSV's evaluation: sort the events by version (`introduced: 0` first), then walk
    /// them; `None` when `version` is not a version of this range's scheme.
    pub fn contains(&self, version: &str) -> Option<bool> {
        self.scheme.compare(version, version).ok()?;
        let cmp = |a: &str, b: &str| {
            if a == b {
                return std::cmp::Ordering::Equal;
            }
            match (a, b) {
                ("0", _) => std::cmp::Ordering::Less,
                (_, "0") => std::cmp::Ordering::Greater,
                _ => self
                    .scheme
                    .compare(a, b)
                    .unwrap_or(std::cmp::Ordering::Equal),
            }
        };
        let mut events: Vec<&Event> = self
            .events
            .iter()
            .filter(|e| !matches!(e, Event::Limit(_)))
            .collect();
        events.sort_by(|a, b| cmp(a.version(), b.version()));
        let mut affected = false;
        for e in events {
            match e {
                Event::Introduced(v) if v == "0" || cmp(version, v).is_ge() => affected = true,
                Event::Fixed(v) if cmp(version, v).is_ge() => affected = false,
                Event::LastAffected(v) if cmp(version, v).is_gt() => affected = false,
                _ => {}
            }
        }
        for e in &self.events {
            if let Event::Limit(v) = e
                && v != "*"
                && cmp(version, v).is_ge()
            {
                affected = false;
            }
        }
        Some(affected)
    }
}

/// Every `*.json` file under `dir`, in sorted path order, parsed. A missing directory is
/// no advisories.
pub fn load_dir(dir: &Path) -> Result<Vec<Advisory>> {
    advisory_files(dir)?
        .iter()
        .map(|f| Advisory::load(f))
        .collect()
}

/// The advisory files of `dir` (every `*.json`, recursively), sorted: what [`load_dir`]
/// reads, and what provenance records as the VEX step's inputs. None when `dir` is absent.
pub fn advisory_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let rd = match std::fs::read_dir(&d) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && d == dir => return Ok(Vec::new()),
            Err(source) => return Err(VexError::Read { path: d, source }),
        };
        for e in rd {
            let e = e.map_err(|source| VexError::Read {
                path: d.clone(),
                source,
            })?;
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "json") {
                files.push(p);
            }
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(scheme: Scheme, events: &[Event]) -> Range {
        Range {
            scheme,
            events: events.to_vec(),
        }
    }
    use Event::*;

    #[test]
    fn semver_ranges() {
        let r = range(
            Scheme::Semver,
            &[Introduced("0".into()), Fixed("1.0.20".into())],
        );
        assert_eq!(r.contains("1.0.19"), Some(true));
        assert_eq!(r.contains("1.0.20"), Some(false));
        assert_eq!(r.contains("2.0.0"), Some(false));
        let r = range(
            Scheme::Semver,
            &[Introduced("1.0.0".into()), LastAffected("1.0.10".into())],
        );
        assert_eq!(r.contains("0.9.0"), Some(false));
        assert_eq!(r.contains("1.0.10"), Some(true));
        assert_eq!(r.contains("1.0.19"), Some(false));
        // Two windows, events unsorted.
        let r = range(
            Scheme::Semver,
            &[
                Fixed("1.0.5".into()),
                Introduced("2.0.0".into()),
                Introduced("1.0.0".into()),
                Fixed("2.1.0".into()),
            ],
        );
        assert_eq!(r.contains("1.0.4"), Some(true));
        assert_eq!(r.contains("1.5.0"), Some(false));
        assert_eq!(r.contains("2.0.3"), Some(true));
        assert_eq!(r.contains("not-a-version"), None);
    }

    #[test]
    fn debian_ranges() {
        let r = range(
            Scheme::Debian,
            &[Introduced("0".into()), Fixed("2.36-9+deb12u7".into())],
        );
        assert_eq!(r.contains("2.36-9+deb12u4"), Some(true));
        assert_eq!(r.contains("2.36-9+deb12u10"), Some(false));
        assert_eq!(r.contains("2.36-9+deb12u7~bpo1"), Some(true));
    }

    #[test]
    fn malformed_records_name_the_entry() {
        let p = Path::new("advisories/x.json");
        let bad = br#"{"id":"KILN-TEST-1","affected":[{"package":{"ecosystem":"crates.io","name":"itoa"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"one"}]}]}]}"#;
        let e = Advisory::parse(p, bad).unwrap_err().to_string();
        assert!(
            e.contains("advisories/x.json")
                && e.contains("KILN-TEST-1: affected[0].ranges[0].events[1]")
                && e.contains("`one`"),
            "{e}"
        );
        let e = Advisory::parse(p, br#"{"id": 3}"#).unwrap_err().to_string();
        assert!(e.contains("advisories/x.json") && e.contains("id"), "{e}");
        let e = Advisory::parse(p, b"{not json").unwrap_err().to_string();
        assert!(e.contains("line 1"), "{e}");
    }
}
