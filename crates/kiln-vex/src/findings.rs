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
///
/// Overlap is transitive (CVE ~ GHSA and GHSA ~ RUSTSEC make one group even when CVE and
/// RUSTSEC never appear together): a union-find over (target, id) pairs, so the groups, and
/// every field of a merged finding, are the same whatever order the inputs came in. Linear
/// in the number of ids (plus a sort), not quadratic in findings.
pub fn merge(findings: Vec<Finding>) -> Vec<Finding> {
    use std::collections::HashMap;
    use std::collections::hash_map::Entry;

    fn find(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }

    let n = findings.len();
    let mut parent: Vec<usize> = (0..n).collect();
    {
        // Lookups only: the map is never iterated, so its order cannot reach the output.
        let mut first: HashMap<(bool, &str, &str), usize> = HashMap::with_capacity(n);
        for (i, f) in findings.iter().enumerate() {
            let target = (f.component.is_some(), f.target());
            for id in f.ids() {
                match first.entry((target.0, target.1, id.as_str())) {
                    Entry::Vacant(v) => {
                        v.insert(i);
                    }
                    Entry::Occupied(o) => {
                        let (a, b) = (find(&mut parent, i), find(&mut parent, *o.get()));
                        if a != b {
                            parent[a.max(b)] = a.min(b);
                        }
                    }
                }
            }
        }
    }
    let mut groups: Vec<Vec<Finding>> = (0..n).map(|_| Vec::new()).collect();
    for (i, f) in findings.into_iter().enumerate() {
        let r = find(&mut parent, i);
        groups[r].push(f);
    }
    let mut out: Vec<Finding> = groups
        .into_iter()
        .filter(|g| !g.is_empty())
        .map(merge_group)
        .collect();
    out.sort_by(|a, b| (&a.id, a.target()).cmp(&(&b.id, b.target())));
    out
}

/// Folds one group of overlapping findings (same target) into one, after putting its
/// members in a canonical order so that no field depends on the input order.
fn merge_group(mut group: Vec<Finding>) -> Finding {
    group.sort_by(|a, b| {
        (
            &a.id,
            &a.aliases,
            a.severity,
            a.score.map(f64::to_bits),
            !a.affected,
            &a.summary,
            &a.why,
            &a.sources,
            &a.package,
        )
            .cmp(&(
                &b.id,
                &b.aliases,
                b.severity,
                b.score.map(f64::to_bits),
                !b.affected,
                &b.summary,
                &b.why,
                &b.sources,
                &b.package,
            ))
    });
    let mut members = group.into_iter();
    let mut m = members.next().expect("groups are never empty");
    for f in members {
        // The advisory's own id over an alias: the smallest id of the group.
        m.aliases.extend(f.aliases);
        m.aliases.insert(f.id.clone());
        if f.id < m.id {
            m.aliases.insert(std::mem::replace(&mut m.id, f.id));
        }
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
    }
    m.aliases.remove(&m.id.clone());
    m
}
