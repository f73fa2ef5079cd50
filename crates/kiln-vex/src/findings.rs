//! A finding: "vulnerability X is reported for package Y", from any input, tied to the
//! SBOM component it is about (or marked as not in the SBOM).

use std::collections::BTreeSet;

use crate::sbom::Component;
use crate::severity::Severity;

#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub id: String,
    pub aliases: BTreeSet<String>,
    pub severity: Severity,
    pub score: Option<f64>,
    pub summary: Option<String>,
    /// The SBOM component it is about; `None`: the input names a package the SBOM does not
    /// contain (see `package`).
    pub component: Option<Component>,
    /// The package as the input named it (purl, `name@version`, `ecosystem/name`).
    pub package: String,
    /// False when an advisory names the package but the SBOM's version is outside its
    /// affected ranges.
    pub affected: bool,
    /// Why it matched or did not, for the gate's table.
    pub why: String,
    /// The files that reported it.
    pub sources: BTreeSet<String>,
}

impl Finding {
    /// Every id this finding answers to.
    pub fn ids(&self) -> impl Iterator<Item = &String> {
        std::iter::once(&self.id).chain(self.aliases.iter())
    }

    fn same_target(&self, other: &Finding) -> bool {
        match (&self.component, &other.component) {
            (Some(a), Some(b)) => a.purl_text == b.purl_text,
            (None, None) => self.package == other.package,
            _ => false,
        }
    }

    /// The component's purl, or what the input named.
    pub fn target(&self) -> &str {
        self.component
            .as_ref()
            .map_or(self.package.as_str(), |c| c.purl_text.as_str())
    }
}

/// Merges findings about the same component whose ids or aliases overlap (a scanner's
/// RUSTSEC id and an advisory's CVE alias are one problem, reported once), keeping the
/// highest severity, every alias and every source; then sorts by id and target.
pub fn merge(findings: Vec<Finding>) -> Vec<Finding> {
    let mut out: Vec<Finding> = Vec::new();
    for f in findings {
        let ids: BTreeSet<&String> = f.ids().collect();
        if let Some(m) = out
            .iter_mut()
            .find(|m| m.same_target(&f) && m.ids().any(|i| ids.contains(i)))
        {
            // Prefer the advisory's own id over an alias: the lexicographically smaller
            // of the two keeps the choice independent of input order.
            let mut all: BTreeSet<String> = m.aliases.union(&f.aliases).cloned().collect();
            all.insert(m.id.clone());
            all.insert(f.id.clone());
            let keep = std::cmp::min(m.id.clone(), f.id.clone());
            all.remove(&keep);
            m.id = keep;
            m.aliases = all;
            if f.severity != Severity::Unknown
                && (m.severity == Severity::Unknown || f.severity > m.severity)
            {
                m.severity = f.severity;
            }
            m.score = match (m.score, f.score) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            if m.summary.is_none() {
                m.summary = f.summary;
            }
            // An affected match wins over "outside the ranges" from another source.
            if f.affected && !m.affected {
                m.affected = true;
                m.why = f.why;
            }
            m.sources.extend(f.sources);
        } else {
            out.push(f);
        }
    }
    out.sort_by(|a, b| (&a.id, a.target()).cmp(&(&b.id, b.target())));
    out
}
