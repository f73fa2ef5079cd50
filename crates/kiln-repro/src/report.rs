//! The report: per-target status like the distribution rebuilders use, the ratio with its
//! denominators stated, and three renderings — JSON (versioned, deterministic order),
//! Markdown (a GitHub job summary) and self-contained HTML with an inline SVG trend chart.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::diff::{ArtifactDiff, Verdict, diff_dirs};
use crate::error::{Error, Result, io};
use crate::explain::{Cause, Hints};
use crate::variations::VariationRecord;

/// `schema` of `report.json`; bump on any incompatible change.
pub const SCHEMA: &str = "https://kiln.dev/repro/report/v1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Reproducible,
    Unreproducible,
    FailedToBuild,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Reproducible => "reproducible",
            Status::Unreproducible => "unreproducible",
            Status::FailedToBuild => "failed to build",
        }
    }
}

/// A root cause found in a target or artifact, and which applied variations can expose it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CauseSummary {
    pub cause: Cause,
    /// How many differences were put down to it.
    pub count: usize,
    /// Variations that can expose it, restricted to the ones that applied in this run
    /// (`rebuild` always applies: two builds from scratch). When comparing trees built
    /// elsewhere, every variation that could.
    pub exposed_by: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactReport {
    #[serde(flatten)]
    pub diff: ArtifactDiff,
    pub causes: Vec<CauseSummary>,
    /// The diffoscope report for this pair (relative to the report directory), with
    /// `--diffoscope`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub diffoscope: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetReport {
    pub name: String,
    pub status: Status,
    /// Why it failed to build (which side), when it did.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub note: Option<String>,
    /// The failing build's error lines (its log's tail when it printed no `error`).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub error: Vec<String>,
    pub artifacts: Vec<ArtifactReport>,
    /// Root causes over all artifacts (derived differences left out).
    pub causes: Vec<CauseSummary>,
}

impl TargetReport {
    /// How many of this target's artifacts rebuilt byte for byte (the ratio's numerator).
    pub fn identical(&self) -> usize {
        self.artifacts
            .iter()
            .filter(|a| a.diff.verdict == Verdict::Identical)
            .count()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Ratio {
    pub numerator: usize,
    pub denominator: usize,
    /// numerator / denominator; 0 when there is nothing to compare.
    pub value: f64,
}

impl Ratio {
    fn new(n: usize, d: usize) -> Self {
        Ratio {
            numerator: n,
            denominator: d,
            value: if d == 0 { 0.0 } else { n as f64 / d as f64 },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Ratios {
    /// Identical artifacts / all artifacts of all targets (each file of an output tree;
    /// blobs paired by role; a file on one side only counts as not identical).
    pub artifacts: Ratio,
    /// Reproducible targets / all targets (a target that failed to build on either side is
    /// in the denominator, not the numerator).
    pub targets: Ratio,
}

/// `report.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub schema: String,
    pub kiln_version: String,
    /// `rebuild` (two builds here) or `compare` (two trees built elsewhere).
    pub mode: String,
    /// Labels of the two sides.
    pub a: String,
    pub b: String,
    pub ratio: Ratios,
    pub targets: Vec<TargetReport>,
    pub variations: Vec<VariationRecord>,
}

/// What the caller knows about the two sides beyond their files.
#[derive(Debug, Clone, Default)]
pub struct CompareContext {
    pub mode: String,
    pub a_label: String,
    pub b_label: String,
    pub hints: Hints,
    pub variations: Vec<VariationRecord>,
    /// Targets that must exist (from kiln.toml); missing ones failed to build.
    pub expected: Vec<String>,
    /// Why each side's build failed, when it did.
    pub failed_a: Option<BuildFailure>,
    pub failed_b: Option<BuildFailure>,
}

/// A build that exited non-zero: its status, its log and what the log says failed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildFailure {
    pub status: String,
    pub log: String,
    pub error: Vec<String>,
}

/// The targets of an output tree: `DIR` itself when it is one image's outputs, else each
/// subdirectory holding a summary.json or an OCI layout.
fn targets_of(dir: &Path) -> Result<BTreeMap<String, PathBuf>> {
    let mut out = BTreeMap::new();
    if !dir.is_dir() {
        return Ok(out);
    }
    let is_target = |d: &Path| {
        let out = kiln_core::contract::OutputDir::new(d);
        out.summary().is_file()
            || d.join("oci-layout").is_file()
            || out.oci().join("oci-layout").is_file()
    };
    if is_target(dir) {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "image".into());
        out.insert(name, dir.to_path_buf());
        return Ok(out);
    }
    for e in std::fs::read_dir(dir).map_err(io("cannot list", dir))? {
        let e = e.map_err(io("cannot list", dir))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') && e.path().is_dir() && is_target(&e.path()) {
            out.insert(name, e.path());
        }
    }
    Ok(out)
}

fn summarize(
    causes: impl Iterator<Item = (Cause, Option<String>)>,
    applied: Option<&[String]>,
) -> Vec<CauseSummary> {
    let mut m: BTreeMap<Cause, (usize, std::collections::BTreeSet<String>)> = BTreeMap::new();
    for (c, var) in causes.filter(|(c, _)| c.is_root()) {
        let e = m.entry(c).or_default();
        e.0 += 1;
        let candidates: Vec<String> = match var {
            Some(v) => vec![v],
            None => c.exposed_by().iter().map(|s| s.to_string()).collect(),
        };
        for v in candidates {
            if applied.is_none_or(|a| a.contains(&v)) {
                e.1.insert(v);
            }
        }
    }
    m.into_iter()
        .map(|(cause, (count, vars))| CauseSummary {
            cause,
            count,
            exposed_by: vars.into_iter().collect(),
        })
        .collect()
}

/// Compares two output trees and builds the report.
pub fn compare(a: &Path, b: &Path, ctx: &CompareContext) -> Result<Report> {
    let (ta, tb) = (targets_of(a)?, targets_of(b)?);
    if ta.is_empty() && tb.is_empty() && ctx.expected.is_empty() {
        return Err(Error::NotATree(a.to_path_buf()));
    }
    let applied: Option<Vec<String>> = (ctx.mode == "rebuild").then(|| {
        let mut v: Vec<String> = ctx
            .variations
            .iter()
            .filter(|v| v.applied())
            .map(|v| v.name.clone())
            .collect();
        v.push("rebuild".into());
        v
    });
    let mut names: Vec<String> = ta
        .keys()
        .chain(tb.keys())
        .cloned()
        .chain(ctx.expected.iter().cloned())
        .collect();
    names.sort();
    names.dedup();
    let mut targets = Vec::new();
    for name in names {
        let (da, db) = (ta.get(&name), tb.get(&name));
        let diffs = match (da, db) {
            (Some(x), Some(y)) => diff_dirs(x, y, &ctx.hints)?,
            (Some(x), None) => diff_dirs(x, &missing_side(a), &ctx.hints)?,
            (None, Some(y)) => diff_dirs(&missing_side(b), y, &ctx.hints)?,
            (None, None) => Vec::new(),
        };
        let artifacts: Vec<ArtifactReport> = diffs
            .into_iter()
            .map(|d| {
                let causes = summarize(
                    d.differences.iter().map(|x| (x.cause, x.variation.clone())),
                    applied.as_deref(),
                );
                ArtifactReport {
                    diff: d,
                    causes,
                    diffoscope: None,
                }
            })
            .collect();
        let causes = summarize(
            artifacts.iter().flat_map(|a| {
                a.diff
                    .differences
                    .iter()
                    .map(|x| (x.cause, x.variation.clone()))
            }),
            applied.as_deref(),
        );
        let (status, note, error) = match (da, db) {
            (Some(_), Some(_))
                if artifacts
                    .iter()
                    .all(|a| a.diff.verdict == Verdict::Identical) =>
            {
                (Status::Reproducible, None, Vec::new())
            }
            (Some(_), Some(_)) => (Status::Unreproducible, None, Vec::new()),
            (x, _) => {
                let (side, failure) = if x.is_none() {
                    ("A", &ctx.failed_a)
                } else {
                    ("B", &ctx.failed_b)
                };
                let (why, error) = match failure {
                    Some(f) => (
                        format!("kiln build {}; log {}", f.status, f.log),
                        f.error.clone(),
                    ),
                    None => ("no outputs".to_string(), Vec::new()),
                };
                (
                    Status::FailedToBuild,
                    Some(format!(
                        "build {side} produced no outputs for this target: {why}"
                    )),
                    error,
                )
            }
        };
        targets.push(TargetReport {
            name,
            status,
            note,
            error,
            artifacts,
            causes,
        });
    }
    let total: usize = targets.iter().map(|t| t.artifacts.len()).sum();
    let identical: usize = targets.iter().map(TargetReport::identical).sum();
    let reproducible = targets
        .iter()
        .filter(|t| t.status == Status::Reproducible)
        .count();
    Ok(Report {
        schema: SCHEMA.into(),
        kiln_version: env!("CARGO_PKG_VERSION").into(),
        mode: ctx.mode.clone(),
        a: ctx.a_label.clone(),
        b: ctx.b_label.clone(),
        ratio: Ratios {
            artifacts: Ratio::new(identical, total),
            targets: Ratio::new(reproducible, targets.len()),
        },
        targets,
        variations: ctx.variations.clone(),
    })
}

/// A path that does not exist: `diff_dirs` treats it as an empty side.
fn missing_side(tree: &Path) -> PathBuf {
    tree.join(".kiln-repro-missing-target")
}

/// The report files [`Report::write`] puts in a directory.
pub const REPORT_FILES: [&str; 3] = [
    kiln_core::contract::layout::repro::REPORT_JSON,
    kiln_core::contract::layout::repro::REPORT_MD,
    kiln_core::contract::layout::repro::REPORT_HTML,
];

/// What [`Report::write`] wrote, for the caller to print.
pub struct Written {
    pub json: Vec<u8>,
    pub markdown: String,
}

impl Report {
    /// Writes `report.json`, `report.md` and `report.html` (with the trend of `history`)
    /// into `out`. Each file is written atomically (temp file, fsync, rename), and the
    /// three side by side so their syncs overlap; all three are attempted, and the first
    /// error in that order is returned.
    pub fn write(&self, out: &Path, history: &[HistoryLine]) -> Result<Written> {
        kiln_core::fsx::create_dir_all(out).map_err(io("cannot create", out))?;
        let (json, markdown) = (self.to_json(), self.to_markdown());
        let [json_name, md_name, html_name] = REPORT_FILES;
        let write = |name: &str, bytes: &[u8]| {
            let path = out.join(name);
            kiln_core::fsx::write_atomic(&path, bytes).map_err(io("cannot write", &path))
        };
        let (json_written, (md_written, html_written)) = std::thread::scope(|s| {
            let json = s.spawn(|| write(json_name, &json));
            let html = s.spawn(|| write(html_name, self.to_html(history).as_bytes()));
            let md = write(md_name, markdown.as_bytes());
            let join = |h: std::thread::ScopedJoinHandle<'_, Result<()>>| {
                h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
            };
            (join(json), (md, join(html)))
        });
        json_written?;
        md_written?;
        html_written?;
        Ok(Written { json, markdown })
    }

    /// Canonical JSON (sorted keys), pretty.
    pub fn to_json(&self) -> Vec<u8> {
        kiln_core::canonical::to_vec_pretty(self).expect("a report serializes")
    }

    /// Markdown for `$GITHUB_STEP_SUMMARY`: ratios, a table of targets, the differing
    /// artifacts with their causes, the variations.
    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        let r = &self.ratio;
        let _ = writeln!(
            s,
            "## kiln reproducibility: {:.1}% of artifacts identical\n",
            r.artifacts.value * 100.0
        );
        let _ = writeln!(
            s,
            "| measure | identical / total | ratio |\n| --- | --- | --- |"
        );
        let _ = writeln!(
            s,
            "| artifacts | {} / {} | {:.3} |",
            r.artifacts.numerator, r.artifacts.denominator, r.artifacts.value
        );
        let _ = writeln!(
            s,
            "| targets | {} / {} reproducible | {:.3} |\n",
            r.targets.numerator, r.targets.denominator, r.targets.value
        );
        let _ = writeln!(
            s,
            "Mode `{}`: A = {}, B = {}.\n",
            self.mode,
            md(&self.a),
            md(&self.b)
        );
        let _ = writeln!(
            s,
            "| target | status | identical artifacts | root causes |\n| --- | --- | --- | --- |"
        );
        for t in &self.targets {
            let ident = t.identical();
            let _ = writeln!(
                s,
                "| {} | {} | {} / {} | {} |",
                md(&t.name),
                t.status.as_str(),
                ident,
                t.artifacts.len(),
                cause_list(&t.causes)
            );
        }
        for t in &self.targets {
            if let Some(n) = &t.note {
                let _ = writeln!(s, "\n**{}**: {}", md(&t.name), md(n));
            }
            if !t.error.is_empty() {
                let _ = writeln!(s, "\n```text\n{}\n```", fence(&t.error.join("\n")));
            }
            let differing: Vec<&ArtifactReport> = t
                .artifacts
                .iter()
                .filter(|a| a.diff.verdict != Verdict::Identical)
                .collect();
            if differing.is_empty() {
                continue;
            }
            let _ = writeln!(s, "\n### {}: differing artifacts\n", md(&t.name));
            let _ = writeln!(
                s,
                "| artifact | kind | verdict | causes | first differences |\n| --- | --- | --- | --- | --- |"
            );
            for a in differing {
                let first: Vec<String> = a
                    .diff
                    .differences
                    .iter()
                    .filter(|d| d.cause.is_root())
                    .chain(a.diff.differences.iter().filter(|d| !d.cause.is_root()))
                    .take(3)
                    .map(|d| format!("{} ({}){}", md(&d.location), d.cause.as_str(), values(d)))
                    .collect();
                let causes = artifact_causes(a);
                let _ = writeln!(
                    s,
                    "| `{}` | {} | {:?} | {} | {} |",
                    a.diff.path,
                    a.diff.kind,
                    a.diff.verdict,
                    causes,
                    first.join("<br>")
                );
            }
        }
        if !self.variations.is_empty() {
            let _ = writeln!(
                s,
                "\n### Variations\n\n| variation | status | detail |\n| --- | --- | --- |"
            );
            for v in &self.variations {
                let _ = writeln!(s, "| {} | {} | {} |", v.name, v.status, md(&v.detail));
            }
        }
        s
    }

    /// A self-contained HTML page (inline CSS and SVG, no scripts, no network).
    pub fn to_html(&self, history: &[HistoryLine]) -> String {
        let mut s = String::new();
        let _ = write!(
            s,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>kiln reproducibility report</title>\n<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:75em}}table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top;font-size:.9em}}.reproducible{{color:#17692c}}.unreproducible,.failed{{color:#b00020}}code{{word-break:break-all}}</style></head><body>\n"
        );
        let r = &self.ratio;
        let _ = writeln!(
            s,
            "<h1>kiln reproducibility</h1><p><strong>{:.1}%</strong> of artifacts identical ({} of {}); {} of {} targets reproducible. Mode <code>{}</code>: A = {}, B = {}.</p>",
            r.artifacts.value * 100.0,
            r.artifacts.numerator,
            r.artifacts.denominator,
            r.targets.numerator,
            r.targets.denominator,
            esc(&self.mode),
            esc(&self.a),
            esc(&self.b)
        );
        let _ = writeln!(s, "<h2>Trend</h2>{}", trend_svg(history));
        let _ = writeln!(
            s,
            "<h2>Targets</h2><table><tr><th>target</th><th>status</th><th>identical</th><th>root causes</th></tr>"
        );
        for t in &self.targets {
            let ident = t.identical();
            let class = match t.status {
                Status::Reproducible => "reproducible",
                Status::Unreproducible => "unreproducible",
                Status::FailedToBuild => "failed",
            };
            let _ = writeln!(
                s,
                "<tr><td>{}</td><td class=\"{class}\">{}</td><td>{ident} / {}</td><td>{}</td></tr>",
                esc(&t.name),
                t.status.as_str(),
                t.artifacts.len(),
                esc(&cause_list(&t.causes))
            );
        }
        s.push_str("</table>\n");
        for t in &self.targets {
            let _ = writeln!(s, "<h2>{}</h2>", esc(&t.name));
            if let Some(n) = &t.note {
                let _ = writeln!(s, "<p>{}</p>", esc(n));
            }
            if !t.error.is_empty() {
                let _ = writeln!(s, "<pre>{}</pre>", esc(&t.error.join("\n")));
            }
            s.push_str(
                "<table><tr><th>artifact</th><th>kind</th><th>verdict</th><th>causes</th></tr>\n",
            );
            for a in &t.artifacts {
                let _ = writeln!(
                    s,
                    "<tr><td><code>{}</code></td><td>{}</td><td>{:?}</td><td>{}</td></tr>",
                    esc(&a.diff.path),
                    a.diff.kind,
                    a.diff.verdict,
                    esc(&artifact_causes(a))
                );
            }
            s.push_str("</table>\n");
            for a in t
                .artifacts
                .iter()
                .filter(|a| !a.diff.differences.is_empty())
            {
                let _ = writeln!(
                    s,
                    "<h3><code>{}</code></h3><table><tr><th>where</th><th>what</th><th>A</th><th>B</th><th>cause</th></tr>",
                    esc(&a.diff.path)
                );
                for d in &a.diff.differences {
                    let _ = writeln!(
                        s,
                        "<tr><td><code>{}</code></td><td>{}</td><td><code>{}</code></td><td><code>{}</code></td><td>{}{}</td></tr>",
                        esc(&d.location),
                        esc(&d.what),
                        esc(d.a.as_deref().unwrap_or("")),
                        esc(d.b.as_deref().unwrap_or("")),
                        d.cause.as_str(),
                        d.variation
                            .as_deref()
                            .map(|v| format!(" ({})", esc(v)))
                            .unwrap_or_default()
                    );
                }
                s.push_str("</table>\n");
                if let Some(p) = &a.diffoscope {
                    let _ = writeln!(
                        s,
                        "<p>diffoscope: <a href=\"{}\">{}</a></p>",
                        esc(p),
                        esc(p)
                    );
                }
            }
        }
        if !self.variations.is_empty() {
            s.push_str("<h2>Variations</h2><table><tr><th>variation</th><th>status</th><th>detail</th></tr>\n");
            for v in &self.variations {
                let _ = writeln!(
                    s,
                    "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&v.name),
                    esc(&v.status),
                    esc(&v.detail)
                );
            }
            s.push_str("</table>\n");
        }
        s.push_str("</body></html>\n");
        s
    }

    /// The targets that failed to build on either side.
    pub fn failed_to_build(&self) -> Vec<&str> {
        self.targets
            .iter()
            .filter(|t| t.status == Status::FailedToBuild)
            .map(|t| t.name.as_str())
            .collect()
    }

    /// The history line for this run, stamped with `unix_time` (the history is a log of
    /// runs, not a build artifact, so a wall-clock time belongs there).
    pub fn history_line(&self, unix_time: u64) -> HistoryLine {
        HistoryLine {
            time: rfc3339(unix_time),
            mode: self.mode.clone(),
            artifacts_identical: self.ratio.artifacts.numerator,
            artifacts_total: self.ratio.artifacts.denominator,
            artifacts_ratio: self.ratio.artifacts.value,
            targets_reproducible: self.ratio.targets.numerator,
            targets_total: self.ratio.targets.denominator,
            targets_ratio: self.ratio.targets.value,
        }
    }
}

fn values(d: &crate::diff::Difference) -> String {
    match (&d.a, &d.b) {
        (Some(a), Some(b)) => format!(": `{}` → `{}`", md(&short(a)), md(&short(b))),
        _ => String::new(),
    }
}

fn short(s: &str) -> String {
    let s = s.replace('\n', " ");
    if s.chars().count() > 60 {
        format!("{}…", s.chars().take(60).collect::<String>())
    } else {
        s
    }
}

fn md(s: &str) -> String {
    s.replace('|', "\\|").replace('`', "'").replace('\n', " ")
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// An artifact's causes as both renderings show them: `none` when it is identical,
/// `derived` when it differs only because content it covers differs.
fn artifact_causes(a: &ArtifactReport) -> String {
    match (a.diff.verdict, a.causes.is_empty()) {
        (Verdict::Identical, _) => "none".into(),
        (_, true) => "derived".into(),
        (_, false) => cause_list(&a.causes),
    }
}

/// Text inside a Markdown code fence cannot close it.
fn fence(s: &str) -> String {
    s.replace("```", "` ` `")
}

fn cause_list(c: &[CauseSummary]) -> String {
    if c.is_empty() {
        return "none".into();
    }
    c.iter()
        .map(|c| {
            format!(
                "{} ×{} (exposed by {})",
                c.cause.as_str(),
                c.count,
                if c.exposed_by.is_empty() {
                    "—".to_string()
                } else {
                    c.exposed_by.join(", ")
                }
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// One line of `reproducibility/history.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryLine {
    /// When the run happened (UTC, RFC 3339).
    pub time: String,
    pub mode: String,
    pub artifacts_identical: usize,
    pub artifacts_total: usize,
    pub artifacts_ratio: f64,
    pub targets_reproducible: usize,
    pub targets_total: usize,
    pub targets_ratio: f64,
}

/// Reads a history file (a missing file is an empty history).
pub fn read_history(path: &Path) -> Result<Vec<HistoryLine>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(Error::Io {
                what: "cannot read",
                path: path.to_path_buf(),
                source: e,
            });
        }
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| Error::History {
                path: path.to_path_buf(),
                line: i + 1,
                message: e.to_string(),
            })
        })
        .collect()
}

/// Appends one line to the history, atomically (the whole file is rewritten via a rename,
/// so a crash never leaves half a line).
pub fn append_history(path: &Path, line: &HistoryLine) -> Result<Vec<HistoryLine>> {
    let mut lines = read_history(path)?;
    lines.push(line.clone());
    let mut bytes = Vec::new();
    for l in &lines {
        bytes.extend(kiln_core::canonical::to_vec(l).expect("history serializes"));
        bytes.push(b'\n');
    }
    kiln_core::fsx::write_atomic(path, &bytes).map_err(io("cannot write", path))?;
    Ok(lines)
}

/// An inline SVG line chart of the artifact and target ratios over the history.
pub fn trend_svg(history: &[HistoryLine]) -> String {
    let (w, h, pad) = (720.0, 240.0, 40.0);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"reproducibility ratio over time\">"
    );
    let _ = write!(
        s,
        "<rect x=\"0\" y=\"0\" width=\"{w}\" height=\"{h}\" fill=\"#fff\"/>"
    );
    for (frac, label) in [(0.0, "0"), (0.5, "0.5"), (0.8, "0.8"), (1.0, "1.0")] {
        let y = h - pad - frac * (h - 2.0 * pad);
        let _ = write!(
            s,
            "<line x1=\"{pad}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/><text x=\"4\" y=\"{:.1}\" font-size=\"11\">{label}</text>",
            w - pad,
            y + 4.0
        );
    }
    let n = history.len();
    let x = |i: usize| {
        if n <= 1 {
            w / 2.0
        } else {
            pad + i as f64 * (w - 2.0 * pad) / (n - 1) as f64
        }
    };
    let y = |v: f64| h - pad - v.clamp(0.0, 1.0) * (h - 2.0 * pad);
    for (color, pick) in [("#1f6feb", 0usize), ("#d97706", 1)] {
        let pts: Vec<String> = history
            .iter()
            .enumerate()
            .map(|(i, l)| {
                format!(
                    "{:.1},{:.1}",
                    x(i),
                    y(if pick == 0 {
                        l.artifacts_ratio
                    } else {
                        l.targets_ratio
                    })
                )
            })
            .collect();
        if !pts.is_empty() {
            let _ = write!(
                s,
                "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>",
                pts.join(" ")
            );
            for p in &pts {
                let (px, py) = p.split_once(',').unwrap_or(("0", "0"));
                let _ = write!(
                    s,
                    "<circle cx=\"{px}\" cy=\"{py}\" r=\"3\" fill=\"{color}\"/>"
                );
            }
        }
    }
    if let (Some(first), Some(last)) = (history.first(), history.last()) {
        let _ = write!(
            s,
            "<text x=\"{pad}\" y=\"{:.1}\" font-size=\"11\">{}</text><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{}</text>",
            h - 12.0,
            esc(&first.time),
            w - pad,
            h - 12.0,
            esc(&last.time)
        );
    } else {
        let _ = write!(
            s,
            "<text x=\"{pad}\" y=\"{:.1}\" font-size=\"12\">no history yet</text>",
            h / 2.0
        );
    }
    let _ = write!(
        s,
        "<text x=\"{:.1}\" y=\"16\" font-size=\"12\" fill=\"#1f6feb\">artifacts</text><text x=\"{:.1}\" y=\"30\" font-size=\"12\" fill=\"#d97706\">targets</text></svg>",
        w - pad - 60.0,
        w - pad - 60.0
    );
    s
}

/// UTC RFC 3339 from Unix seconds: kiln's one date formatter.
pub use kiln_core::time::rfc3339;

/// Runs diffoscope on every differing pair and records where its text report went
/// (`<out>/diffoscope/<target>/<artifact>.txt`, relative to `out`). Returns how many ran.
pub fn attach_diffoscope(
    report: &mut Report,
    tree_a: &Path,
    tree_b: &Path,
    out: &Path,
    diffoscope: &Path,
) -> Result<usize> {
    let (ta, tb) = (targets_of(tree_a)?, targets_of(tree_b)?);
    let mut ran = 0;
    for t in &mut report.targets {
        let (Some(da), Some(db)) = (ta.get(&t.name), tb.get(&t.name)) else {
            continue;
        };
        for a in t
            .artifacts
            .iter_mut()
            .filter(|a| a.diff.verdict == Verdict::Different)
        {
            let (Some(sa), Some(sb)) = (&a.diff.a, &a.diff.b) else {
                continue;
            };
            let name: String = a
                .diff
                .path
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            let rel = format!("diffoscope/{}/{name}.txt", t.name);
            let dest = out.join(&rel);
            if let Some(parent) = dest.parent() {
                kiln_core::fsx::create_dir_all(parent).map_err(io("cannot create", parent))?;
            }
            let status = kiln_core::process::command(diffoscope)
                .arg("--text")
                .arg(&dest)
                .arg(da.join(&sa.path))
                .arg(db.join(&sb.path))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .map_err(|source| Error::Spawn {
                    command: format!("{} --text", diffoscope.display()),
                    source,
                })?;
            // 1 = differences found (the expected case); anything else is worth saying.
            if status.code() != Some(1) {
                kiln_core::fsx::write_atomic(
                    &dest,
                    format!("diffoscope exited {status} on this pair\n").as_bytes(),
                )
                .map_err(io("cannot write", &dest))?;
            }
            a.diffoscope = Some(rel);
            ran += 1;
        }
    }
    Ok(ran)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_round_trip_and_chart() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("h.jsonl");
        let line = HistoryLine {
            time: rfc3339(1),
            mode: "rebuild".into(),
            artifacts_identical: 1,
            artifacts_total: 8,
            artifacts_ratio: 0.125,
            targets_reproducible: 0,
            targets_total: 1,
            targets_ratio: 0.0,
        };
        append_history(&p, &line).unwrap();
        let all = append_history(&p, &line).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(read_history(&p).unwrap(), all);
        let svg = trend_svg(&all);
        assert!(svg.starts_with("<svg") && svg.contains("polyline"), "{svg}");
        std::fs::write(&p, "{\"nope\":1}\n").unwrap();
        assert!(read_history(&p).unwrap_err().to_string().contains("line 1"));
    }

    #[test]
    fn compare_identical_and_different_trees() {
        let d = tempfile::tempdir().unwrap();
        for side in ["a", "b"] {
            let t = d.path().join(side).join("img");
            std::fs::create_dir_all(&t).unwrap();
            std::fs::write(t.join("summary.json"), "{\"x\":1}").unwrap();
            std::fs::write(t.join("same.txt"), "same").unwrap();
        }
        std::fs::write(d.path().join("b/img/summary.json"), "{\"x\":2}").unwrap();
        let ctx = CompareContext {
            mode: "compare".into(),
            ..Default::default()
        };
        let r = compare(&d.path().join("a"), &d.path().join("b"), &ctx).unwrap();
        assert_eq!(
            (r.ratio.artifacts.numerator, r.ratio.artifacts.denominator),
            (1, 2)
        );
        assert_eq!(r.targets[0].status, Status::Unreproducible);
        assert!(r.to_markdown().contains("| img | unreproducible | 1 / 2 |"));
        assert!(r.to_html(&[]).contains("<svg"));
        let back: Report = serde_json::from_slice(&r.to_json()).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn markdown_and_html_name_an_artifacts_causes_alike() {
        let d = tempfile::tempdir().unwrap();
        for side in ["a", "b"] {
            let t = d.path().join(side).join("img");
            std::fs::create_dir_all(&t).unwrap();
            std::fs::write(t.join("same.txt"), "same").unwrap();
        }
        let digest = |c: char| format!("{{\"layer\":\"sha256:{}\"}}", c.to_string().repeat(64));
        std::fs::write(d.path().join("a/img/summary.json"), digest('a')).unwrap();
        std::fs::write(d.path().join("b/img/summary.json"), digest('b')).unwrap();
        let ctx = CompareContext {
            mode: "compare".into(),
            ..Default::default()
        };
        let r = compare(&d.path().join("a"), &d.path().join("b"), &ctx).unwrap();
        let md = r.to_markdown();
        let html = r.to_html(&[]);
        assert!(
            md.contains("| `summary.json` | json | Different | derived |"),
            "{md}"
        );
        assert!(
            html.contains(
                "<td><code>summary.json</code></td><td>json</td><td>Different</td><td>derived</td>"
            ),
            "{html}"
        );
        assert!(
            html.contains(
                "<td><code>same.txt</code></td><td>text</td><td>Identical</td><td>none</td>"
            ),
            "{html}"
        );
    }

    #[test]
    fn a_failed_side_is_quoted_in_every_rendering() {
        let d = tempfile::tempdir().unwrap();
        let t = d.path().join("a/img");
        std::fs::create_dir_all(&t).unwrap();
        std::fs::write(t.join("summary.json"), "{}").unwrap();
        let ctx = CompareContext {
            mode: "rebuild".into(),
            expected: vec!["img".into()],
            failed_b: Some(BuildFailure {
                status: "exit status: 1".into(),
                log: "/logs/build-b.log".into(),
                error: vec![
                    "error[E0425]: cannot find value `x` in this scope".into(),
                    " --> src/main.rs:2:20".into(),
                ],
            }),
            ..Default::default()
        };
        let r = compare(&d.path().join("a"), &d.path().join("b"), &ctx).unwrap();
        assert_eq!(r.failed_to_build(), ["img"]);
        let t = &r.targets[0];
        assert_eq!(t.status, Status::FailedToBuild);
        assert!(t.note.as_deref().unwrap().contains("/logs/build-b.log"));
        let json = String::from_utf8(r.to_json()).unwrap();
        for text in [json, r.to_markdown(), r.to_html(&[])] {
            assert!(
                text.contains("cannot find value `x` in this scope"),
                "{text}"
            );
            assert!(text.contains("src/main.rs:2:20"), "{text}");
        }
    }
}
