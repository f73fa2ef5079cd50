//! The three VEX documents, built from one model so they can never disagree:
//! `vex.csaf.json` (CSAF 2.0, profile csaf_vex), `vex.openvex.json` (OpenVEX v0.2.0) and
//! `vex.cdx.json` (CycloneDX VEX, the SBOM's spec version, BOM-Links into the SBOM).
//!
//! Determinism: the only time is `SOURCE_DATE_EPOCH`; every id (CSAF tracking id, OpenVEX
//! `@id`, CycloneDX serial number, CSAF product ids) is a hash of content; every list is
//! sorted; the bytes go through kiln-core's canonical JSON.

use std::collections::{BTreeMap, BTreeSet};

use kiln_core::time::rfc3339;
use kiln_core::{Digest, canonical};
use serde_json::{Value, json};

use crate::error::{Result, VexError};
use crate::findings::Finding;
use crate::sbom::{Component, Sbom};
use crate::severity::Severity;
use crate::statements::{Justification, Statements, Status};

/// One vulnerability and what is known about each component it concerns.
#[derive(Debug, Clone)]
pub struct VexVulnerability {
    pub id: String,
    pub aliases: BTreeSet<String>,
    pub summary: Option<String>,
    pub severity: Option<Severity>,
    pub score: Option<f64>,
    /// Sorted by component purl.
    pub entries: Vec<VexEntry>,
}

#[derive(Debug, Clone)]
pub struct VexEntry {
    pub component: Component,
    pub status: Status,
    pub justification: Option<Justification>,
    pub impact_statement: Option<String>,
    pub action_statement: Option<String>,
    /// True when no statement covers it and it comes from a matched advisory.
    pub from_advisory: bool,
}

/// The model every document is written from.
#[derive(Debug, Clone)]
pub struct Model {
    pub image: Component,
    pub sbom: Sbom,
    pub author: String,
    pub namespace: String,
    pub timestamp: String,
    pub vulnerabilities: Vec<VexVulnerability>,
}

/// Builds the model: every statement, expanded to the SBOM components it designates, plus
/// `under_investigation` for every advisory finding (affected version, in the SBOM) that no
/// statement answers — a known vulnerability is never left out of the VEX just because
/// nobody has triaged it yet.
pub fn model(
    sbom: &Sbom,
    statements: &Statements,
    findings: &[Finding],
    sde: u64,
) -> Result<Model> {
    let mut vulns: BTreeMap<String, VexVulnerability> = BTreeMap::new();
    let mut covered: BTreeMap<(String, String), usize> = BTreeMap::new();
    for s in &statements.statements {
        let related: Vec<&Finding> = findings
            .iter()
            .filter(|f| f.ids().any(|i| s.ids().any(|j| i == j)))
            .collect();
        let v = vulns
            .entry(s.vulnerability.clone())
            .or_insert_with(|| VexVulnerability {
                id: s.vulnerability.clone(),
                aliases: BTreeSet::new(),
                summary: None,
                severity: None,
                score: None,
                entries: Vec::new(),
            });
        v.aliases.extend(s.aliases.iter().cloned());
        for f in &related {
            v.aliases.extend(f.ids().filter(|i| **i != v.id).cloned());
            absorb(v, f);
        }
        for c in sbom.designated(&s.component) {
            for id in s.ids() {
                if let Some(prev) = covered.insert((id.clone(), c.purl_text.clone()), s.index)
                    && prev != s.index
                {
                    return Err(VexError::invalid(
                        &statements.path,
                        format!("statement[{}] ({})", s.index, s.vulnerability),
                        format!("statement[{prev}] already covers {id} for {}", c.purl_text),
                        "keep one statement per vulnerability and component",
                    ));
                }
            }
            v.entries.push(VexEntry {
                component: c.clone(),
                status: s.status,
                justification: s.justification,
                impact_statement: s.impact_statement.clone(),
                action_statement: s.action_statement.clone(),
                from_advisory: false,
            });
        }
    }
    for f in findings.iter().filter(|f| f.affected) {
        let Some(c) = &f.component else { continue };
        if f.ids()
            .any(|i| covered.contains_key(&(i.clone(), c.purl_text.clone())))
        {
            continue;
        }
        let v = vulns
            .entry(f.id.clone())
            .or_insert_with(|| VexVulnerability {
                id: f.id.clone(),
                aliases: f.aliases.clone(),
                summary: None,
                severity: None,
                score: None,
                entries: Vec::new(),
            });
        absorb(v, f);
        if v.entries
            .iter()
            .all(|e| e.component.purl_text != c.purl_text)
        {
            v.entries.push(VexEntry {
                component: c.clone(),
                status: Status::UnderInvestigation,
                justification: None,
                impact_statement: None,
                action_statement: None,
                from_advisory: true,
            });
        }
    }
    let mut vulnerabilities: Vec<VexVulnerability> = vulns.into_values().collect();
    for v in &mut vulnerabilities {
        v.entries
            .sort_by(|a, b| a.component.purl_text.cmp(&b.component.purl_text));
        v.aliases.remove(&v.id);
    }
    Ok(Model {
        image: sbom.image.clone(),
        sbom: sbom.clone(),
        author: statements.author.clone(),
        namespace: statements.namespace.clone(),
        timestamp: rfc3339(sde),
        vulnerabilities,
    })
}

fn absorb(v: &mut VexVulnerability, f: &Finding) {
    if v.summary.is_none() {
        v.summary = f.summary.clone();
    }
    if f.severity != Severity::Unknown && v.severity.is_none_or(|s| f.severity > s) {
        v.severity = Some(f.severity);
    }
    if let Some(s) = f.score {
        v.score = Some(v.score.map_or(s, |m: f64| m.max(s)));
    }
}

/// The three documents' bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Documents {
    pub csaf: Vec<u8>,
    pub openvex: Vec<u8>,
    pub cdx: Vec<u8>,
}

impl Model {
    pub fn documents(&self) -> Documents {
        let bytes = |v: &Value| canonical::to_vec_pretty(v).expect("a JSON value serializes");
        Documents {
            csaf: bytes(&self.csaf()),
            openvex: bytes(&self.openvex()),
            cdx: bytes(&self.cyclonedx()),
        }
    }

    /// `KILN-` and 12 hex digits of the sha256 of `key`: stable, short, and unique in
    /// practice for the few hundred products of an image.
    fn product_id(key: &str) -> String {
        format!("KILN-{}", &Digest::of(key.as_bytes()).hex()[..12])
    }

    fn component_in_image(&self, c: &Component) -> String {
        Self::product_id(&format!("{} in {}", c.purl_text, self.image.purl_text))
    }

    /// CSAF 2.0, profile VEX (`csaf_vex`): products are "component in image" relationships
    /// (`default_component_of`) over full product names carrying the SBOM's purls, so
    /// every product id in a status list is defined in the product tree (test 6.1.1).
    pub fn csaf(&self) -> Value {
        let display = |c: &Component| match &c.version {
            Some(v) => format!("{} {v}", c.name),
            None => c.name.clone(),
        };
        let mut comps: BTreeMap<&str, &Component> = BTreeMap::new();
        for c in &self.sbom.components {
            if c.purl_text != self.image.purl_text {
                comps.entry(c.purl_text.as_str()).or_insert(c);
            }
        }
        let image_id = Self::product_id(&self.image.purl_text);
        let mut names = vec![json!({
            "name": display(&self.image),
            "product_id": image_id,
            "product_identification_helper": {"purl": self.image.purl_text},
        })];
        let mut relationships = Vec::new();
        for c in comps.values() {
            names.push(json!({
                "name": display(c),
                "product_id": Self::product_id(&c.purl_text),
                "product_identification_helper": {"purl": c.purl_text},
            }));
            relationships.push(json!({
                "category": "default_component_of",
                "full_product_name": {"name": format!("{} in {}", display(c), self.image.name), "product_id": self.component_in_image(c)},
                "product_reference": Self::product_id(&c.purl_text),
                "relates_to_product_reference": image_id,
            }));
        }
        names.sort_by(|a, b| a["product_id"].as_str().cmp(&b["product_id"].as_str()));
        relationships.sort_by(|a, b| {
            a["full_product_name"]["product_id"]
                .as_str()
                .cmp(&b["full_product_name"]["product_id"].as_str())
        });

        let mut used_cves = BTreeSet::new();
        let mut vulnerabilities = Vec::new();
        for v in &self.vulnerabilities {
            let mut status: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
            let mut flags: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
            let mut threats: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
            let mut remediations: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
            for e in &v.entries {
                let pid = self.component_in_image(&e.component);
                let key = match e.status {
                    Status::NotAffected => "known_not_affected",
                    Status::Affected => "known_affected",
                    Status::Fixed => "fixed",
                    Status::UnderInvestigation => "under_investigation",
                };
                status.entry(key).or_default().insert(pid.clone());
                if let Some(j) = e.justification {
                    flags.entry(j.as_str()).or_default().insert(pid.clone());
                }
                if let (Status::NotAffected, Some(i)) = (e.status, &e.impact_statement) {
                    threats.entry(i.as_str()).or_default().insert(pid.clone());
                }
                if let (Status::Affected, Some(a)) = (e.status, &e.action_statement) {
                    remediations
                        .entry(a.as_str())
                        .or_default()
                        .insert(pid.clone());
                }
            }
            let ids_all: Vec<&String> = std::iter::once(&v.id).chain(v.aliases.iter()).collect();
            let cve = ids_all
                .iter()
                .find(|i| is_cve(i) && !used_cves.contains(**i))
                .map(|s| s.to_string());
            if let Some(c) = &cve {
                used_cves.insert(c.clone());
            }
            let ids: Vec<Value> = ids_all
                .iter()
                .filter(|i| Some(i.as_str()) != cve.as_deref())
                .map(|i| json!({"system_name": system_name(i), "text": i}))
                .collect();
            let mut vuln = json!({
                "notes": [{
                    "category": "description",
                    "title": "Summary",
                    "text": v.summary.clone().unwrap_or_else(|| format!("{} as it concerns the components of {}.", v.id, self.image.name)),
                }],
                "product_status": status.into_iter().map(|(k, s)| (k.to_string(), json!(s))).collect::<serde_json::Map<_, _>>(),
            });
            if let Some(c) = cve {
                vuln["cve"] = json!(c);
            }
            if !ids.is_empty() {
                vuln["ids"] = json!(ids);
            }
            if !flags.is_empty() {
                vuln["flags"] = flags
                    .into_iter()
                    .map(|(l, p)| json!({"label": l, "product_ids": p}))
                    .collect();
            }
            if !threats.is_empty() {
                vuln["threats"] = threats
                    .into_iter()
                    .map(|(d, p)| json!({"category": "impact", "details": d, "product_ids": p}))
                    .collect();
            }
            if !remediations.is_empty() {
                vuln["remediations"] = remediations
                    .into_iter()
                    .map(|(d, p)| json!({"category": "mitigation", "details": d, "product_ids": p}))
                    .collect();
            }
            vulnerabilities.push(vuln);
        }
        let mut doc = json!({
            "document": {
                "category": "csaf_vex",
                "csaf_version": "2.0",
                "lang": "en",
                "title": format!("VEX for image {}", self.image.name),
                "publisher": {"category": "vendor", "name": self.author, "namespace": self.namespace},
                "notes": [{
                    "category": "summary",
                    "title": "About this document",
                    "text": format!("Which known vulnerabilities affect the components of image {} ({}), written by kiln from the project's triage statements and its SBOM.", self.image.name, self.image.purl_text),
                }],
                "tracking": {
                    "id": "",
                    "status": "final",
                    "version": "1",
                    "initial_release_date": self.timestamp,
                    "current_release_date": self.timestamp,
                    "revision_history": [{"date": self.timestamp, "number": "1", "summary": "Initial version."}],
                    "generator": {"engine": {"name": "kiln"}},
                },
            },
            "product_tree": {"full_product_names": names, "relationships": relationships},
            "vulnerabilities": vulnerabilities,
        });
        let id = format!("KILN-VEX-{}", &content_digest(&doc).hex()[..16]);
        doc["document"]["tracking"]["id"] = json!(id);
        doc
    }

    /// OpenVEX v0.2.0: one statement per vulnerability and component, the product being the
    /// image and the component a subcomponent of it.
    pub fn openvex(&self) -> Value {
        let mut statements = Vec::new();
        for v in &self.vulnerabilities {
            for e in &v.entries {
                let mut vuln = json!({"name": v.id});
                if !v.aliases.is_empty() {
                    vuln["aliases"] = json!(v.aliases);
                }
                let mut s = json!({
                    "vulnerability": vuln,
                    "products": [{"@id": self.image.purl_text, "subcomponents": [{"@id": e.component.purl_text}]}],
                    "status": e.status.as_str(),
                });
                if let Some(j) = e.justification {
                    s["justification"] = json!(j.as_str());
                }
                if let (Status::NotAffected, Some(i)) = (e.status, &e.impact_statement) {
                    s["impact_statement"] = json!(i);
                }
                if let Some(a) = &e.action_statement {
                    s["action_statement"] = json!(a);
                }
                if e.status == Status::UnderInvestigation && e.from_advisory {
                    s["status_notes"] =
                        json!("Matched by a local OSV advisory; no triage statement yet.");
                }
                statements.push(s);
            }
        }
        let mut doc = json!({
            "@context": "https://openvex.dev/ns/v0.2.0",
            "@id": "",
            "author": self.author,
            "role": "Document Creator",
            "timestamp": self.timestamp,
            "version": 1,
            "tooling": "kiln",
            "statements": statements,
        });
        doc["@id"] = json!(format!(
            "https://kiln.dev/vex/{}",
            content_digest(&doc).hex()
        ));
        doc
    }

    /// CycloneDX VEX in the SBOM's spec version. Components are referenced by BOM-Link
    /// (`urn:cdx:<serial>/<version>#<bom-ref>`) into the SBOM, as CycloneDX's guide does for
    /// a VEX kept apart from its BOM; an SBOM without a serial number cannot be linked to,
    /// so then the components are embedded and referenced locally.
    pub fn cyclonedx(&self) -> Value {
        let serial = self
            .sbom
            .serial_number
            .as_deref()
            .and_then(|s| s.strip_prefix("urn:uuid:"));
        let link = |c: &Component| match serial {
            Some(s) => format!(
                "urn:cdx:{s}/{}#{}",
                self.sbom.version,
                encode_fragment(&c.bom_ref)
            ),
            None => c.bom_ref.clone(),
        };
        let mut vulnerabilities = Vec::new();
        let mut embedded: BTreeMap<&str, &Component> = BTreeMap::new();
        for v in &self.vulnerabilities {
            for e in &v.entries {
                let state = match e.status {
                    Status::NotAffected => "not_affected",
                    Status::Affected => "exploitable",
                    Status::Fixed => "resolved",
                    Status::UnderInvestigation => "in_triage",
                };
                let mut analysis = json!({"state": state});
                if let Some(j) = e.justification {
                    analysis["justification"] = json!(j.cyclonedx());
                }
                let detail = match e.status {
                    Status::NotAffected => {
                        e.impact_statement.clone().map(|i| match e.justification {
                            Some(j) => format!("{} ({}): {i}", j.as_str(), j.cyclonedx()),
                            None => i,
                        })
                    }
                    Status::Affected => e.action_statement.clone(),
                    _ => e.action_statement.clone().or_else(|| {
                        e.from_advisory.then(|| {
                            "Matched by a local OSV advisory; no triage statement yet.".to_string()
                        })
                    }),
                };
                if let Some(d) = detail {
                    analysis["detail"] = json!(d);
                }
                let mut vuln = json!({
                    "id": v.id,
                    "analysis": analysis,
                    "affects": [{"ref": link(&e.component)}],
                });
                if let Some(src) = source_of(&v.id) {
                    vuln["source"] = src;
                }
                if !v.aliases.is_empty() {
                    vuln["references"] = v
                        .aliases
                        .iter()
                        .map(|a| {
                            let mut r = json!({"id": a});
                            r["source"] =
                                source_of(a).unwrap_or_else(|| json!({"name": system_name(a)}));
                            r
                        })
                        .collect();
                }
                if let Some(s) = v.severity {
                    let mut r = json!({"severity": s.as_str()});
                    if let Some(score) = v.score {
                        r["score"] = json!(score);
                        r["method"] = json!("other");
                    }
                    vuln["ratings"] = json!([r]);
                }
                if let Some(d) = &v.summary {
                    vuln["description"] = json!(d);
                }
                embedded.insert(&e.component.bom_ref, &e.component);
                vulnerabilities.push(vuln);
            }
        }
        let tool = json!({"type": "application", "name": "kiln"});
        let tools = if matches!(self.sbom.spec_version.as_str(), "1.2" | "1.3" | "1.4") {
            json!([{"name": "kiln"}])
        } else {
            json!({"components": [tool]})
        };
        let mut doc = json!({
            "bomFormat": "CycloneDX",
            "specVersion": self.sbom.spec_version,
            "serialNumber": "",
            "version": 1,
            "metadata": {"timestamp": self.timestamp, "tools": tools},
            "vulnerabilities": vulnerabilities,
        });
        if serial.is_none() {
            doc["components"] = embedded
                .values()
                .map(|c| {
                    let mut j = json!({"type": "library", "bom-ref": c.bom_ref, "name": c.name, "purl": c.purl_text});
                    if let Some(v) = &c.version {
                        j["version"] = json!(v);
                    }
                    j
                })
                .collect();
        }
        let digest = content_digest(&doc);
        doc["serialNumber"] = json!(format!(
            "urn:uuid:{}",
            uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, digest.hex().as_bytes())
        ));
        doc
    }
}

/// sha256 of a document's canonical bytes with its own id still blank: the id says what
/// the document contains and nothing else.
fn content_digest(doc: &Value) -> Digest {
    Digest::of(&canonical::to_vec(doc).expect("a JSON value serializes"))
}

fn is_cve(id: &str) -> bool {
    let mut p = id.splitn(3, '-');
    p.next() == Some("CVE")
        && p.next()
            .is_some_and(|y| y.len() == 4 && y.bytes().all(|b| b.is_ascii_digit()))
        && p.next()
            .is_some_and(|n| n.len() >= 4 && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The naming system of an id: its prefix (`RUSTSEC`, `GHSA`, `CVE`, `KILN`...).
fn system_name(id: &str) -> String {
    id.split('-')
        .next()
        .filter(|p| !p.is_empty())
        .unwrap_or("OSV")
        .to_string()
}

/// CycloneDX `source` for ids whose database kiln knows.
fn source_of(id: &str) -> Option<Value> {
    let (name, url) = match system_name(id).as_str() {
        "CVE" => ("NVD", format!("https://nvd.nist.gov/vuln/detail/{id}")),
        "GHSA" => ("GitHub", format!("https://github.com/advisories/{id}")),
        "RUSTSEC" => ("RustSec", format!("https://rustsec.org/advisories/{id}")),
        _ => return None,
    };
    Some(json!({"name": name, "url": url}))
}

/// Percent-encodes a bom-ref for the fragment of a BOM-Link (RFC 3986 fragment characters
/// are kept).
fn encode_fragment(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
