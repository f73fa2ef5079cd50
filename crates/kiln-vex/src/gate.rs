//! The vulnerability gate: findings matched to the SBOM, the VEX applied, and a verdict.
//!
//! A finding blocks when it is about a component in the SBOM whose version is affected,
//! its severity is at or above the threshold, and no statement says `fixed` or
//! `not_affected`. A finding for a package the SBOM does not contain is listed (status
//! `not_in_sbom`) but does not block: it is not in what is being released, and saying so
//! beats dropping it silently.

use std::collections::BTreeSet;
use std::path::Path;

use serde::Serialize;

use crate::findings::Finding;
use crate::purl::Designates;
use crate::sbom::Sbom;
use crate::severity::Severity;
use crate::statements::{Statements, Status};

/// `gate.json`.
#[derive(Debug, Clone, Serialize)]
pub struct GateReport {
    pub schema: u32,
    pub image: String,
    pub image_purl: String,
    pub fail_on: Severity,
    pub blocked: bool,
    pub counts: Counts,
    pub findings: Vec<GateRow>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    pub findings: usize,
    pub blocking: usize,
    pub not_in_sbom: usize,
}

/// One line of the gate's table.
#[derive(Debug, Clone, Serialize)]
pub struct GateRow {
    pub id: String,
    pub aliases: BTreeSet<String>,
    pub severity: Severity,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// The component's purl, or the package as the input named it.
    pub component: String,
    pub in_sbom: bool,
    /// A VEX status, `none` (no statement), `not_in_sbom`, or `fixed` for a version outside
    /// the affected ranges.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub justification: Option<String>,
    pub why: String,
    pub blocking: bool,
    /// Input files, relative to the project when inside it.
    pub sources: BTreeSet<String>,
}

/// Evaluates `findings` (already merged) against the statements.
pub fn evaluate(
    sbom: &Sbom,
    statements: Option<&Statements>,
    findings: &[Finding],
    fail_on: Severity,
    project: &Path,
) -> GateReport {
    let mut rows = Vec::new();
    let rel = |s: &String| {
        let p = Path::new(s);
        p.strip_prefix(project)
            .map(|r| r.display().to_string())
            .unwrap_or_else(|_| s.clone())
    };
    for f in findings {
        let sources = f.sources.iter().map(rel).collect();
        let base = GateRow {
            id: f.id.clone(),
            aliases: f.aliases.clone(),
            severity: f.severity,
            score: f.score,
            component: f.target().to_string(),
            in_sbom: f.component.is_some(),
            status: String::new(),
            justification: None,
            why: String::new(),
            blocking: false,
            sources,
        };
        let row = match &f.component {
            None => GateRow {
                status: "not_in_sbom".into(),
                why: format!("{} is not in the SBOM of {}", f.package, sbom.image.name),
                ..base
            },
            Some(_) if !f.affected => GateRow {
                status: "fixed".into(),
                why: f.why.clone(),
                ..base
            },
            Some(c) => {
                let st = statements.and_then(|s| {
                    s.statements.iter().find(|s| {
                        s.component.designates(&c.purl) && s.ids().any(|i| f.ids().any(|j| i == j))
                    })
                });
                let severe = f.severity >= fail_on;
                match st {
                    None => GateRow {
                        status: "none".into(),
                        why: format!(
                            "no VEX statement; {}",
                            if severe {
                                format!("{} is at or above {fail_on}", f.severity)
                            } else {
                                format!("{} is below {fail_on}", f.severity)
                            }
                        ),
                        blocking: severe,
                        ..base
                    },
                    Some(s) => {
                        let cleared = matches!(s.status, Status::Fixed | Status::NotAffected);
                        let why = match s.status {
                            Status::NotAffected => s.impact_statement.clone().unwrap_or_default(),
                            Status::Affected => format!(
                                "affected: {}",
                                s.action_statement.clone().unwrap_or_default()
                            ),
                            Status::Fixed => "fixed, per the VEX statement".into(),
                            Status::UnderInvestigation => "under investigation".into(),
                        };
                        let where_ = format!(
                            " ({}: statement[{}])",
                            crate::statements::STATEMENTS_FILE,
                            s.index
                        );
                        GateRow {
                            status: s.status.as_str().into(),
                            justification: s.justification.map(|j| j.as_str().to_string()),
                            why: format!("{why}{where_}"),
                            blocking: severe && !cleared,
                            ..base
                        }
                    }
                }
            }
        };
        rows.push(row);
    }
    let counts = Counts {
        findings: rows.len(),
        blocking: rows.iter().filter(|r| r.blocking).count(),
        not_in_sbom: rows.iter().filter(|r| !r.in_sbom).count(),
    };
    GateReport {
        schema: 1,
        image: sbom.image.name.clone(),
        image_purl: sbom.image.purl_text.clone(),
        fail_on,
        blocked: counts.blocking > 0,
        counts,
        findings: rows,
    }
}

impl GateReport {
    /// The table `cargo xtask gate` prints.
    pub fn table(&self) -> String {
        let head = ["ID", "SEVERITY", "COMPONENT", "VEX STATUS", "WHY"];
        let mut lines: Vec<[String; 5]> = vec![head.map(String::from)];
        for r in &self.findings {
            let sev = match r.score {
                Some(s) => format!("{} ({s:.1})", r.severity),
                None => r.severity.to_string(),
            };
            let status = if r.blocking {
                format!("{} BLOCKS", r.status)
            } else {
                r.status.clone()
            };
            lines.push([
                r.id.clone(),
                sev,
                r.component.clone(),
                status,
                r.why.clone(),
            ]);
        }
        let width = |k: usize| {
            lines
                .iter()
                .map(|l| l[k].chars().count())
                .max()
                .unwrap_or(0)
        };
        let w = [width(0), width(1), width(2), width(3)];
        let mut out = String::new();
        for l in &lines {
            out.push_str(&format!(
                "{:<w0$}  {:<w1$}  {:<w2$}  {:<w3$}  {}\n",
                l[0],
                l[1],
                l[2],
                l[3],
                l[4],
                w0 = w[0],
                w1 = w[1],
                w2 = w[2],
                w3 = w[3]
            ));
        }
        let verdict = if self.blocked {
            format!(
                "gate: BLOCKED: {} finding(s) at or above {} neither fixed nor not_affected",
                self.counts.blocking, self.fail_on
            )
        } else {
            format!(
                "gate: passed: no finding at or above {} is open",
                self.fail_on
            )
        };
        out.push_str(&format!(
            "{} finding(s), {} not in the SBOM\n{verdict}\n",
            self.counts.findings, self.counts.not_in_sbom
        ));
        out
    }
}
