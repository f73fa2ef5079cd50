//! `kiln rebuild PROVENANCE`: rebuild a release from its provenance alone and say whether
//! every subject digest is reproduced (kiln-build's `rebuild` does the work; with
//! `--original DIR` a difference is explained as `repro compare` explains it).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use kiln_build::rebuild::{RebuildRequest, rebuild};

#[derive(clap::Args)]
pub struct Args {
    /// The provenance: `provenance.intoto.json` (DSSE envelope) or `provenance.json`.
    provenance: PathBuf,
    /// Use this source tree instead of cloning the repository the provenance names.
    #[arg(long, value_name = "DIR")]
    source: Option<PathBuf>,
    /// Work directory (checkout, build root, outputs); default a new directory under
    /// target/kiln/rebuild of the current directory.
    #[arg(long, value_name = "DIR")]
    work: Option<PathBuf>,
    /// The original output directory (`target/kiln/out/<image>`): on a difference, explain
    /// it artifact by artifact, as `repro compare` does.
    #[arg(long, value_name = "DIR")]
    original: Option<PathBuf>,
}

pub fn run(args: &Args) -> Result<ExitCode> {
    let work = match &args.work {
        Some(w) => w.clone(),
        None => kiln_core::contract::ProjectLayout::new(std::env::current_dir()?)
            .kiln_dir()
            .join("rebuild"),
    };
    let req = RebuildRequest {
        provenance: args.provenance.clone(),
        source: args.source.clone(),
        work,
    };
    let r = rebuild(&req, &crate::Stderr)?;
    let matched = r
        .subjects
        .iter()
        .filter(|s| s.rebuilt == Some(s.expected))
        .count();
    for s in &r.subjects {
        let state = match s.rebuilt {
            Some(d) if d == s.expected => "reproduced".to_string(),
            Some(d) => format!("DIFFERS: rebuilt {d}"),
            None => "MISSING from the rebuild".to_string(),
        };
        println!("  {:<40} {}  {state}", s.name, s.expected);
    }
    if r.reproduced() {
        println!(
            "reproduced: {matched}/{} subjects of image {} match (outputs in {})",
            r.subjects.len(),
            r.image,
            r.out.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "not reproduced: {matched}/{} subjects of image {} match (outputs in {})",
        r.subjects.len(),
        r.image,
        r.out.display()
    );
    if let Some(original) = &args.original {
        let ctx = kiln_repro::CompareContext {
            mode: "compare".into(),
            a_label: original.display().to_string(),
            b_label: r.out.display().to_string(),
            hints: kiln_repro::Hints {
                now: kiln_repro::now(),
                ..Default::default()
            },
            ..Default::default()
        };
        let report = kiln_repro::report::compare(original, &r.out, &ctx)?;
        let line = report.history_line(kiln_repro::now());
        let written = report.write(&req.work.join("report"), &[line])?;
        print!("{}", written.markdown);
    }
    Ok(ExitCode::FAILURE)
}
