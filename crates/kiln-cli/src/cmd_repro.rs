//! `kiln repro`: rebuild twice under varied conditions (or `repro compare` two trees
//! built elsewhere), diff every artifact, explain it, report the ratio. The work is in
//! `kiln-repro`; this file parses arguments and writes the report files.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use kiln_core::contract::ProjectLayout;
use kiln_repro::{CompareContext, Report, Variations};

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = false)]
pub struct Args {
    #[command(subcommand)]
    command: Option<Sub>,
    /// Only this image (repeatable); default all of kiln.toml's.
    #[arg(long = "image")]
    images: Vec<String>,
    /// Variations file (default: <project>/reproducibility/variations.toml if present,
    /// else every variation on with built-in values).
    #[arg(long, value_name = "FILE")]
    variations: Option<PathBuf>,
    /// Append this run to a JSON-lines history (the HTML chart reads it).
    #[arg(long, value_name = "FILE", global = true)]
    history: Option<PathBuf>,
    /// Exit non-zero when identical artifacts / artifacts is below R.
    #[arg(long, value_name = "R", global = true)]
    min_ratio: Option<f64>,
    /// Attach a diffoscope report per differing artifact.
    #[arg(long, global = true)]
    diffoscope: bool,
    /// Report directory (default: <project>/target/kiln/repro).
    #[arg(long, value_name = "DIR", global = true)]
    out: Option<PathBuf>,
    /// Print report.json on stdout instead of the Markdown summary.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(clap::Subcommand)]
enum Sub {
    /// Compare two output trees built elsewhere (e.g. on two CI runners): each is a
    /// `target/kiln/out` (one directory per image) or one image's output directory.
    Compare { a: PathBuf, b: PathBuf },
}

pub fn run(project: PathBuf, args: &Args) -> Result<ExitCode> {
    if let Some(r) = args.min_ratio
        && !(0.0..=1.0).contains(&r)
    {
        bail!("--min-ratio {r} is not between 0 and 1");
    }
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| ProjectLayout::new(&project).repro_dir());
    let (report, tree_a, tree_b) = match &args.command {
        Some(Sub::Compare { a, b }) => {
            for d in [a, b] {
                if !d.is_dir() {
                    bail!("{} is not a directory of build outputs", d.display());
                }
            }
            let ctx = CompareContext {
                mode: "compare".into(),
                a_label: a.display().to_string(),
                b_label: b.display().to_string(),
                hints: kiln_repro::Hints {
                    now: kiln_repro::now(),
                    ..Default::default()
                },
                ..Default::default()
            };
            (
                kiln_repro::report::compare(a, b, &ctx)?,
                a.clone(),
                b.clone(),
            )
        }
        None => {
            let default_file = ProjectLayout::new(&project).repro_variations();
            let variations = match &args.variations {
                Some(f) => Variations::load(f)?,
                None if default_file.is_file() => Variations::load(&default_file)?,
                None => Variations::default(),
            };
            let plan = kiln_repro::RebuildPlan {
                kiln: std::env::current_exe().context("cannot find the kiln executable")?,
                project: project.clone(),
                images: args.images.clone(),
                variations,
                work: None,
                trees: out.join("trees"),
                logs: out.join("logs"),
            };
            let rebuilt = kiln_repro::rebuild(&plan, &|m| eprintln!("kiln: repro: {m}"))?;
            eprintln!("kiln: repro: comparing the two output trees");
            let report =
                kiln_repro::report::compare(&rebuilt.tree_a, &rebuilt.tree_b, &rebuilt.context)?;
            (report, rebuilt.tree_a, rebuilt.tree_b)
        }
    };
    write_reports(report, &tree_a, &tree_b, &out, args)
}

fn write_reports(
    mut report: Report,
    tree_a: &Path,
    tree_b: &Path,
    out: &Path,
    args: &Args,
) -> Result<ExitCode> {
    if args.diffoscope {
        match kiln_core::process::which("diffoscope") {
            Some(d) => {
                let n =
                    kiln_repro::report::attach_diffoscope(&mut report, tree_a, tree_b, out, &d)?;
                eprintln!(
                    "kiln: repro: {n} diffoscope report(s) in {}",
                    out.join("diffoscope").display()
                );
            }
            None => eprintln!(
                "kiln: repro: --diffoscope: diffoscope is not installed (apt-get install diffoscope-minimal); skipped"
            ),
        }
    }
    let line = report.history_line(kiln_repro::now());
    let history = match &args.history {
        Some(h) => kiln_repro::report::append_history(h, &line)?,
        None => vec![line],
    };
    let written = report.write(out, &history)?;
    if args.json {
        print!("{}", String::from_utf8_lossy(&written.json));
    } else {
        print!("{}", written.markdown);
    }
    eprintln!("kiln: repro: reports in {}", out.display());
    let failed = report.failed_to_build();
    if !failed.is_empty() {
        for t in &report.targets {
            if failed.contains(&t.name.as_str()) {
                eprintln!(
                    "error: target `{}` failed to build: {}",
                    t.name,
                    t.note.as_deref().unwrap_or("no outputs")
                );
                for l in &t.error {
                    eprintln!("  | {l}");
                }
            }
        }
        eprintln!(
            "error: {} of {} target(s) failed to build; nothing to compare for them (report in {})",
            failed.len(),
            report.targets.len(),
            out.display()
        );
        return Ok(ExitCode::FAILURE);
    }
    let ratio = report.ratio.artifacts;
    if let Some(min) = args.min_ratio
        && ratio.value < min
    {
        eprintln!(
            "error: reproducibility ratio {:.3} ({} of {} artifacts identical) is below --min-ratio {min}",
            ratio.value, ratio.numerator, ratio.denominator
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
