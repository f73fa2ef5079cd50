//! `kiln gate`: findings matched to the SBOM, the VEX applied, a verdict.
//!
//! Exit status: 0 passed, 1 blocked (a finding at or above `--fail-on` is neither `fixed`
//! nor `not_affected`), 2 bad input (the message names the file and the entry; no
//! gate.json is written).

use std::path::PathBuf;
use std::process::ExitCode;

use kiln_core::contract::ProjectLayout;
use kiln_vex::Severity;

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum FailOn {
    Critical,
    High,
    Medium,
    Low,
}

#[derive(clap::Args)]
pub struct GateArgs {
    /// The image whose SBOM to gate (default: the only image in kiln.toml).
    #[arg(long, value_name = "NAME")]
    image: Option<String>,
    /// Block on unresolved findings of this severity or worse. Findings of unknown
    /// severity always count as severe.
    #[arg(long, value_enum, default_value = "high", value_name = "SEVERITY")]
    fail_on: FailOn,
    /// A scanner's SARIF 2.1.0 output (repeatable).
    #[arg(long = "sarif", value_name = "FILE")]
    sarif: Vec<PathBuf>,
    /// An OSV advisory (repeatable).
    #[arg(long = "osv", value_name = "FILE")]
    osv: Vec<PathBuf>,
    /// Directory of OSV advisories matched against the SBOM (default: <project>/advisories).
    #[arg(long, value_name = "DIR")]
    advisories: Option<PathBuf>,
    /// Output directory (default: <project>/target/kiln/out).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

pub fn gate(project: PathBuf, args: &GateArgs) -> anyhow::Result<ExitCode> {
    match run(project, args) {
        Ok(true) => Ok(ExitCode::SUCCESS),
        Ok(false) => Ok(ExitCode::from(1)),
        Err(e) => {
            eprintln!("error: {}", crate::render_error(&e));
            Ok(ExitCode::from(2))
        }
    }
}

/// True when the gate passes.
fn run(project: PathBuf, args: &GateArgs) -> anyhow::Result<bool> {
    let config = kiln_config::Config::load(&project)?;
    let image = match &args.image {
        Some(n) => config.image(n)?.name.clone(),
        None if config.images.len() == 1 => config.images[0].name.clone(),
        None => {
            let names: Vec<_> = config.images.iter().map(|i| i.name.as_str()).collect();
            anyhow::bail!(
                "kiln.toml has several images ({}): pick one with --image",
                names.join(", ")
            );
        }
    };
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| ProjectLayout::new(&config.root).out_dir())
        .join(&image);
    let fail_on = match args.fail_on {
        FailOn::Critical => Severity::Critical,
        FailOn::High => Severity::High,
        FailOn::Medium => Severity::Medium,
        FailOn::Low => Severity::Low,
    };
    let inputs = kiln_vex::GateInputs {
        project: config.root.clone(),
        sbom: out.join(kiln_vex::SBOM_FILE),
        sarif: args.sarif.clone(),
        osv: args.osv.clone(),
        advisories: args.advisories.clone(),
        fail_on,
    };
    let report = kiln_vex::run_gate(&inputs)?;
    report.write(&out.join(kiln_vex::GATE_FILE))?;
    print!("{}", report.table());
    Ok(!report.blocked)
}
