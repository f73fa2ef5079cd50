//! Scanner findings from SARIF 2.1.0 (trivy, grype and similar): the rule id is the
//! vulnerability id, the severity is `security-severity` (a CVSS number) or the level, and
//! the package comes from the result's `purl` property, a `pkg:` logical location, or the
//! `Package: NAME` / `Installed Version: V` lines (trivy) or `package: NAME, version V`
//! (grype) of the message.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use crate::error::{Result, VexError, from_json, read};
use crate::findings::Finding;
use crate::purl::{Designates, Purl};
use crate::sbom::Sbom;
use crate::severity::Severity;

#[derive(Deserialize)]
struct RawSarif {
    version: String,
    runs: Vec<RawRun>,
}

#[derive(Deserialize)]
struct RawRun {
    tool: RawTool,
    #[serde(default)]
    results: Vec<RawResult>,
}

#[derive(Deserialize)]
struct RawTool {
    driver: RawDriver,
}

#[derive(Deserialize)]
struct RawDriver {
    #[serde(default)]
    rules: Vec<RawRule>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRule {
    id: String,
    short_description: Option<RawMessage>,
    default_configuration: Option<RawConfiguration>,
    properties: Option<BTreeMap<String, Value>>,
}

#[derive(Deserialize)]
struct RawConfiguration {
    level: Option<String>,
}

#[derive(Deserialize)]
struct RawMessage {
    text: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawResult {
    rule_id: Option<String>,
    rule_index: Option<usize>,
    level: Option<String>,
    message: Option<RawMessage>,
    #[serde(default)]
    locations: Vec<RawLocation>,
    properties: Option<BTreeMap<String, Value>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawLocation {
    #[serde(default)]
    logical_locations: Vec<RawLogical>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawLogical {
    name: Option<String>,
    fully_qualified_name: Option<String>,
}

/// What a result says about its package.
enum Package {
    Purl(Purl, String),
    NameVersion(String, String),
}

/// Reads a SARIF file and matches each result to the SBOM. A result for a package the SBOM
/// does not contain becomes a finding without a component.
pub fn load(path: &Path, sbom: &Sbom) -> Result<Vec<Finding>> {
    parse(path, &read(path)?, sbom)
}

pub fn parse(path: &Path, bytes: &[u8], sbom: &Sbom) -> Result<Vec<Finding>> {
    let raw = read_sarif(path, bytes)?;
    let mut out = Vec::new();
    // Components by package name, so matching a result is not a scan of the whole SBOM.
    let mut by_name: HashMap<&str, Vec<&crate::sbom::Component>> = HashMap::new();
    for c in &sbom.components {
        by_name.entry(c.purl.name.as_str()).or_default().push(c);
    }
    for (r, run) in raw.runs.iter().enumerate() {
        // The first rule of each id (a lookup table: never iterated).
        let mut rule_by_id: HashMap<&str, &RawRule> = HashMap::new();
        for rule in run.tool.driver.rules.iter().rev() {
            rule_by_id.insert(rule.id.as_str(), rule);
        }
        for (i, res) in run.results.iter().enumerate() {
            // Formatted only for an error: 250k results must not cost 250k strings.
            let bad = |m: String, fix: &str| {
                VexError::invalid(path, format!("runs[{r}].results[{i}]"), m, fix)
            };
            let (rule, id) = rule_of(run, &rule_by_id, res).map_err(|(m, fix)| bad(m, fix))?;
            let package = package_of(res).ok_or_else(|| {
                bad(format!("cannot tell which package `{id}` is reported for"), "give the result a `purl` property, a logical location named by purl, or a message with `Package:` and `Installed Version:`")
            })?;
            // grype names rules `CVE-...-<package>`; the vulnerability is the prefix.
            let pkg_name = match &package {
                Package::Purl(p, _) => p.name.clone(),
                Package::NameVersion(n, _) => n.clone(),
            };
            let id = match id
                .strip_suffix(pkg_name.as_str())
                .and_then(|s| s.strip_suffix('-'))
            {
                Some(s) => s.to_string(),
                None => id,
            };
            let (severity, score) = severity_of(res, rule).map_err(|m| {
                bad(
                    m,
                    "security-severity must be a CVSS score between 0.0 and 10.0",
                )
            })?;
            let summary = rule
                .and_then(|x| x.short_description.as_ref())
                .and_then(|d| d.text.clone());
            let source = path.display().to_string();
            let mut push = |component, package: String, why: String| {
                out.push(Finding {
                    id: id.clone(),
                    aliases: Default::default(),
                    severity,
                    score,
                    summary: summary.clone(),
                    component,
                    package,
                    affected: true,
                    why,
                    sources: [source.clone()].into(),
                })
            };
            match &package {
                Package::Purl(p, text) => {
                    let comps: Vec<_> = by_name
                        .get(p.name.as_str())
                        .into_iter()
                        .flatten()
                        .filter(|c| p.designates(&c.purl))
                        .collect();
                    if comps.is_empty() {
                        push(None, text.clone(), "reported by the scanner".into());
                    }
                    for c in comps {
                        push(
                            Some((*c).clone()),
                            c.purl_text.clone(),
                            "reported by the scanner".into(),
                        );
                    }
                }
                Package::NameVersion(n, v) => {
                    let comps: Vec<_> = by_name
                        .get(n.as_str())
                        .into_iter()
                        .flatten()
                        .filter(|c| {
                            &c.purl.name == n
                                && c.purl.version.as_ref().or(c.version.as_ref()) == Some(v)
                        })
                        .collect();
                    if comps.is_empty() {
                        push(None, format!("{n}@{v}"), "reported by the scanner".into());
                    }
                    for c in comps {
                        push(
                            Some((*c).clone()),
                            c.purl_text.clone(),
                            "reported by the scanner".into(),
                        );
                    }
                }
            }
        }
    }
    Ok(out)
}

fn read_sarif(path: &Path, bytes: &[u8]) -> Result<RawSarif> {
    let raw: RawSarif = from_json(path, bytes)?;
    if raw.version != "2.1.0" {
        return Err(VexError::invalid(
            path,
            "version",
            format!("SARIF version `{}`", raw.version),
            "give a SARIF 2.1.0 file",
        ));
    }
    Ok(raw)
}

/// The rule of a result (by `ruleIndex`, else by `ruleId`) and the result's rule id;
/// `Err((message, fix))` for an index out of range or a result that names no rule.
fn rule_of<'a>(
    run: &'a RawRun,
    rule_by_id: &HashMap<&str, &'a RawRule>,
    res: &RawResult,
) -> std::result::Result<(Option<&'a RawRule>, String), (String, &'static str)> {
    let rule = match (&res.rule_id, res.rule_index) {
        (_, Some(k)) => Some(run.tool.driver.rules.get(k).ok_or_else(|| {
            (
                format!("ruleIndex {k} is out of range"),
                "fix the scanner output",
            )
        })?),
        (Some(id), None) => rule_by_id.get(id.as_str()).copied(),
        (None, None) => None,
    };
    let id = res
        .rule_id
        .clone()
        .or_else(|| rule.map(|x| x.id.clone()))
        .ok_or_else(|| {
            (
                "no ruleId".to_string(),
                "each result must name its vulnerability as ruleId",
            )
        })?;
    Ok((rule, id))
}

/// One result of a SARIF file as read without an SBOM: what a check that judges scans by
/// level or severity needs (kiln-compliance's `sarif_no_levels` and `vex_covers_findings`).
#[derive(Debug, Clone, PartialEq)]
pub struct ResultSummary {
    /// Where it is: `runs[R].results[I]`.
    pub entry: String,
    /// The rule id as the result (or its rule) writes it; grype's `CVE-...-<package>`
    /// is left as it is.
    pub rule_id: String,
    /// The result's `level`, else its rule's `defaultConfiguration.level`; `None` when
    /// neither states one (SARIF then means `warning`).
    pub level: Option<String>,
    /// The first that states one: `properties.security-severity` (a CVSS score, of the
    /// result, then of the rule), `properties.severity` (a word), a severity word among
    /// `properties.tags` (trivy: `["vulnerability", "security", "HIGH"]`; the highest),
    /// the level (as the gate reads it). [`Severity::Unknown`] when nothing does.
    pub severity: Severity,
    /// The CVSS score, when `security-severity` gave the severity.
    pub score: Option<f64>,
}

/// Reads every result of a SARIF 2.1.0 file with its rule id, level and severity (see
/// [`ResultSummary`]), without matching results to packages.
pub fn results(path: &Path, bytes: &[u8]) -> Result<Vec<ResultSummary>> {
    let raw = read_sarif(path, bytes)?;
    let mut out = Vec::new();
    for (r, run) in raw.runs.iter().enumerate() {
        let mut rule_by_id: HashMap<&str, &RawRule> = HashMap::new();
        for rule in run.tool.driver.rules.iter().rev() {
            rule_by_id.insert(rule.id.as_str(), rule);
        }
        for (i, res) in run.results.iter().enumerate() {
            let entry = format!("runs[{r}].results[{i}]");
            let (rule, rule_id) = rule_of(run, &rule_by_id, res)
                .map_err(|(m, fix)| VexError::invalid(path, entry.clone(), m, fix))?;
            let (mut severity, score) = severity_of(res, rule).map_err(|m| {
                VexError::invalid(
                    path,
                    entry.clone(),
                    m,
                    "security-severity must be a CVSS score between 0.0 and 10.0",
                )
            })?;
            if score.is_none()
                && let Some(s) = stated_severity(res, rule)
            {
                severity = s;
            }
            let level = res.level.clone().or_else(|| {
                rule.and_then(|x| x.default_configuration.as_ref())
                    .and_then(|c| c.level.clone())
            });
            out.push(ResultSummary {
                entry,
                rule_id,
                level,
                severity,
                score,
            });
        }
    }
    Ok(out)
}

/// A severity stated in words: `properties.severity`, else the highest severity word
/// among `properties.tags` (of the result, then of the rule).
fn stated_severity(res: &RawResult, rule: Option<&RawRule>) -> Option<Severity> {
    let props = [
        res.properties.as_ref(),
        rule.and_then(|r| r.properties.as_ref()),
    ];
    for p in props.into_iter().flatten() {
        if let Some(s) = p
            .get("severity")
            .and_then(Value::as_str)
            .and_then(Severity::from_word)
        {
            return Some(s);
        }
        let tagged = p
            .get("tags")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter_map(Severity::from_word)
            .max();
        if tagged.is_some() {
            return tagged;
        }
    }
    None
}

fn package_of(res: &RawResult) -> Option<Package> {
    let from_purl = |s: &str| Purl::parse(s).ok().map(|p| Package::Purl(p, s.to_string()));
    if let Some(p) = res
        .properties
        .as_ref()
        .and_then(|p| p.get("purl"))
        .and_then(Value::as_str)
        .and_then(from_purl)
    {
        return Some(p);
    }
    for l in res.locations.iter().flat_map(|l| &l.logical_locations) {
        for n in [&l.fully_qualified_name, &l.name].into_iter().flatten() {
            if n.starts_with("pkg:")
                && let Some(p) = from_purl(n)
            {
                return Some(p);
            }
        }
    }
    let text = res.message.as_ref()?.text.as_deref()?;
    let line = |key: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(key))
            .map(|v| v.trim().to_string())
    };
    if let (Some(n), Some(v)) = (line("Package:"), line("Installed Version:")) {
        return Some(Package::NameVersion(n, v));
    }
    // grype: "... in cargo package: itoa, version 1.0.19 was found at: ..."
    let after = text.split_once("package: ")?.1;
    let (n, rest) = after.split_once(", version ")?;
    let v = rest.split_whitespace().next()?;
    Some(Package::NameVersion(n.trim().to_string(), v.to_string()))
}

fn severity_of(
    res: &RawResult,
    rule: Option<&RawRule>,
) -> std::result::Result<(Severity, Option<f64>), String> {
    let props = [
        res.properties.as_ref(),
        rule.and_then(|r| r.properties.as_ref()),
    ];
    for p in props.into_iter().flatten() {
        if let Some(v) = p.get("security-severity") {
            let score = match v {
                Value::String(s) => s.trim().parse::<f64>().ok(),
                Value::Number(n) => n.as_f64(),
                _ => None,
            }
            .filter(|s| (0.0..=10.0).contains(s))
            .ok_or_else(|| format!("security-severity `{v}` is not a CVSS score"))?;
            return Ok((Severity::from_score(score), Some(score)));
        }
    }
    let level = res.level.clone().or_else(|| {
        rule.and_then(|r| r.default_configuration.as_ref())
            .and_then(|c| c.level.clone())
    });
    Ok(match level.as_deref() {
        Some("error") => (Severity::High, None),
        Some("warning") => (Severity::Medium, None),
        Some("note") => (Severity::Low, None),
        Some("none") => (Severity::None, None),
        Some(other) => return Err(format!("unknown level `{other}`")),
        None => (Severity::Unknown, None),
    })
}
