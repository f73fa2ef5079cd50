//! Triage statements: `vex/statements.toml`, the project's own word on which known
//! vulnerabilities affect its images.
//!
//! ```toml
//! author = "Example security team <security@example.com>"
//! # namespace = "https://example.com"   # the CSAF publisher namespace (default https://kiln.dev)
//!
//! [[statement]]
//! vulnerability = "CVE-2099-0001"
//! # aliases = ["GHSA-xxxx-xxxx-xxxx"]
//! component = "pkg:cargo/itoa@1.0.19"    # a purl in the SBOM; without @version: every version
//! status = "not_affected"                # not_affected | affected | fixed | under_investigation
//! justification = "vulnerable_code_not_in_execute_path"
//! impact_statement = "hello never formats 128-bit integers"
//! # action_statement = "..."            # required for affected
//! # author = "..."                      # overrides the document's author
//! ```
//!
//! Parsing is strict (unknown keys, wrong types: key, line, file), and validation is
//! complete: every rule a VEX format imposes is checked here, so a file that loads always
//! yields documents the CSAF, OpenVEX and CycloneDX validators accept.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Result, VexError, read};
use crate::purl::Purl;
use crate::sbom::Sbom;

/// Where a project keeps its statements, relative to the directory of `kiln.toml`.
pub const STATEMENTS_FILE: &str = kiln_core::contract::layout::VEX_STATEMENTS;

/// The default CSAF publisher namespace when the file names none.
pub const DEFAULT_NAMESPACE: &str = "https://kiln.dev";

/// VEX status, the four every format shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    NotAffected,
    Affected,
    Fixed,
    UnderInvestigation,
}

impl Status {
    pub const ALL: [(&'static str, Status); 4] = [
        ("not_affected", Status::NotAffected),
        ("affected", Status::Affected),
        ("fixed", Status::Fixed),
        ("under_investigation", Status::UnderInvestigation),
    ];
    pub fn as_str(self) -> &'static str {
        Status::ALL
            .iter()
            .find(|(_, s)| *s == self)
            .map(|(n, _)| *n)
            .unwrap_or("?")
    }
}

/// Why a component is not affected: the five labels CSAF 2.0 (flags) and OpenVEX share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Justification {
    ComponentNotPresent,
    VulnerableCodeNotPresent,
    VulnerableCodeNotInExecutePath,
    VulnerableCodeCannotBeControlledByAdversary,
    InlineMitigationsAlreadyExist,
}

impl Justification {
    pub const ALL: [(&'static str, Justification); 5] = [
        ("component_not_present", Justification::ComponentNotPresent),
        (
            "vulnerable_code_not_present",
            Justification::VulnerableCodeNotPresent,
        ),
        (
            "vulnerable_code_not_in_execute_path",
            Justification::VulnerableCodeNotInExecutePath,
        ),
        (
            "vulnerable_code_cannot_be_controlled_by_adversary",
            Justification::VulnerableCodeCannotBeControlledByAdversary,
        ),
        (
            "inline_mitigations_already_exist",
            Justification::InlineMitigationsAlreadyExist,
        ),
    ];
    pub fn as_str(self) -> &'static str {
        Justification::ALL
            .iter()
            .find(|(_, s)| *s == self)
            .map(|(n, _)| *n)
            .unwrap_or("?")
    }
    fn names() -> String {
        Justification::ALL
            .iter()
            .map(|(n, _)| *n)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The CycloneDX `analysis.justification` closest in meaning. CycloneDX has its own,
    /// finer vocabulary; the mapping (also in the README) is:
    ///
    /// | CSAF / OpenVEX | CycloneDX |
    /// | --- | --- |
    /// | component_not_present | code_not_present |
    /// | vulnerable_code_not_present | code_not_present |
    /// | vulnerable_code_not_in_execute_path | code_not_reachable |
    /// | vulnerable_code_cannot_be_controlled_by_adversary | requires_environment |
    /// | inline_mitigations_already_exist | protected_by_mitigating_control |
    pub fn cyclonedx(self) -> &'static str {
        match self {
            Justification::ComponentNotPresent | Justification::VulnerableCodeNotPresent => {
                "code_not_present"
            }
            Justification::VulnerableCodeNotInExecutePath => "code_not_reachable",
            Justification::VulnerableCodeCannotBeControlledByAdversary => "requires_environment",
            Justification::InlineMitigationsAlreadyExist => "protected_by_mitigating_control",
        }
    }
}

/// One validated statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// Position in the file (`statement[N]`), for messages.
    pub index: usize,
    pub vulnerability: String,
    pub aliases: BTreeSet<String>,
    pub component: Purl,
    pub component_text: String,
    pub status: Status,
    pub justification: Option<Justification>,
    pub impact_statement: Option<String>,
    pub action_statement: Option<String>,
    pub author: String,
}

impl Statement {
    /// Every id this statement answers to.
    pub fn ids(&self) -> impl Iterator<Item = &String> {
        std::iter::once(&self.vulnerability).chain(self.aliases.iter())
    }
}

/// A validated statements file.
#[derive(Debug, Clone)]
pub struct Statements {
    pub path: PathBuf,
    pub author: String,
    pub namespace: String,
    pub statements: Vec<Statement>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    author: Option<String>,
    namespace: Option<String>,
    #[serde(default, rename = "statement")]
    statements: Vec<RawStatement>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStatement {
    vulnerability: String,
    #[serde(default)]
    aliases: Vec<String>,
    component: String,
    status: String,
    justification: Option<String>,
    impact_statement: Option<String>,
    action_statement: Option<String>,
    author: Option<String>,
}

impl Statements {
    /// Reads and validates the statements file at `path` against `sbom`.
    pub fn load(path: &Path, sbom: &Sbom) -> Result<Statements> {
        Self::parse(path, &read(path)?, sbom)
    }

    /// Parses and validates statements found at `path`. Every statement's component must be
    /// in the SBOM: a statement about something the image does not contain is a mistake
    /// (a typo, a stale version) that would otherwise go unnoticed.
    pub fn parse(path: &Path, bytes: &[u8], sbom: &Sbom) -> Result<Statements> {
        let text = std::str::from_utf8(bytes)
            .map_err(|e| VexError::parse(path, format!("not UTF-8 text ({e})")))?;
        let raw: RawFile = kiln_core::strict_toml::from_str(text)
            .map_err(|e| VexError::parse(path, e.into_message()))?;
        let nonblank = |s: &Option<String>| {
            s.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let namespace = nonblank(&raw.namespace).unwrap_or_else(|| DEFAULT_NAMESPACE.to_string());
        if !namespace.contains(':') || namespace.contains(char::is_whitespace) {
            return Err(VexError::invalid(
                path,
                "namespace",
                format!("`{namespace}` is not a URI"),
                "use the publisher's web address, e.g. https://example.com",
            ));
        }
        let doc_author = nonblank(&raw.author);
        if raw.statements.is_empty() {
            return Err(VexError::invalid(
                path,
                "statement",
                "no [[statement]] entries",
                "add at least one [[statement]], or delete the file to write no VEX",
            ));
        }
        let mut statements = Vec::new();
        let mut seen = BTreeSet::new();
        for (i, s) in raw.statements.into_iter().enumerate() {
            let entry = format!("statement[{i}] ({})", s.vulnerability);
            let bad = |m: String, fix: String| VexError::invalid(path, entry.clone(), m, fix);
            let vulnerability = s.vulnerability.trim().to_string();
            if vulnerability.is_empty() || vulnerability.contains(char::is_whitespace) {
                return Err(bad(
                    "`vulnerability` must be an id such as CVE-2024-1234, GHSA-... or RUSTSEC-..."
                        .into(),
                    "write the advisory's id without spaces".into(),
                ));
            }
            let status = Status::ALL
                .iter()
                .find(|(n, _)| *n == s.status)
                .map(|(_, st)| *st)
                .ok_or_else(|| {
                    bad(
                        format!("unknown status `{}`", s.status),
                        "use one of not_affected, affected, fixed, under_investigation".into(),
                    )
                })?;
            let justification = match &s.justification {
                None => None,
                Some(j) => Some(
                    Justification::ALL
                        .iter()
                        .find(|(n, _)| n == j)
                        .map(|(_, v)| *v)
                        .ok_or_else(|| {
                            bad(
                                format!("unknown justification `{j}`"),
                                format!("use one of {}", Justification::names()),
                            )
                        })?,
                ),
            };
            let impact_statement = nonblank(&s.impact_statement);
            let action_statement = nonblank(&s.action_statement);
            match status {
                Status::NotAffected => {
                    if justification.is_none() {
                        return Err(bad(
                            "not_affected needs justification".into(),
                            format!("add justification = one of {}", Justification::names()),
                        ));
                    }
                    if impact_statement.is_none() {
                        return Err(bad(
                            "not_affected needs an impact_statement".into(),
                            "add impact_statement = \"why this image is not affected\"".into(),
                        ));
                    }
                }
                Status::Affected if action_statement.is_none() => {
                    return Err(bad(
                        "affected needs an action_statement".into(),
                        "add action_statement = \"what users should do (upgrade, mitigate, ...)\""
                            .into(),
                    ));
                }
                _ => {}
            }
            if status != Status::NotAffected && justification.is_some() {
                return Err(bad(
                    format!(
                        "justification only applies to not_affected, not {}",
                        status.as_str()
                    ),
                    "remove justification, or set status = \"not_affected\"".into(),
                ));
            }
            let author = nonblank(&s.author)
                .or_else(|| doc_author.clone())
                .ok_or_else(|| {
                    bad(
                        "no author".into(),
                        "set author = \"...\" at the top of the file or in the statement".into(),
                    )
                })?;
            let component = Purl::parse(s.component.trim()).map_err(|m| {
                bad(
                    m.to_string(),
                    "write the component's purl as in the SBOM, e.g. pkg:cargo/itoa@1.0.19".into(),
                )
            })?;
            if sbom.designated(&component).next().is_none() {
                let near: Vec<_> = sbom
                    .components
                    .iter()
                    .filter(|c| c.purl.name == component.name)
                    .map(|c| c.purl_text.as_str())
                    .collect();
                let fix = if near.is_empty() {
                    "remove the statement, or fix its purl to one in sbom.cdx.json".to_string()
                } else {
                    format!("the SBOM has {}", near.join(", "))
                };
                return Err(bad(
                    format!(
                        "component `{}` is not in the SBOM of image `{}`",
                        s.component.trim(),
                        sbom.image.name
                    ),
                    fix,
                ));
            }
            let aliases: BTreeSet<String> = s
                .aliases
                .iter()
                .map(|a| a.trim().to_string())
                .filter(|a| !a.is_empty() && *a != vulnerability)
                .collect();
            if !seen.insert((vulnerability.clone(), s.component.trim().to_string())) {
                return Err(bad(
                    format!(
                        "a second statement for {vulnerability} and {}",
                        s.component.trim()
                    ),
                    "keep one statement per vulnerability and component".into(),
                ));
            }
            statements.push(Statement {
                index: i,
                vulnerability,
                aliases,
                component,
                component_text: s.component.trim().to_string(),
                status,
                justification,
                impact_statement,
                action_statement,
                author,
            });
        }
        Ok(Statements {
            path: path.to_path_buf(),
            author: doc_author.unwrap_or_else(|| statements[0].author.clone()),
            namespace,
            statements,
        })
    }
}
