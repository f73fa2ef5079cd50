//! `kiln evidence pack`: a thin wrapper over kiln-compliance.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use kiln_core::contract::ProjectLayout;

#[derive(clap::Subcommand)]
pub enum EvidenceCommand {
    /// Assemble the evidence pack of a built image: SBOMs, provenance and signatures, VEX,
    /// gate.json, the scans given, the repro report, the toolchain lock, push.json, and a
    /// manifest.json listing every file with its sha256 and role.
    Pack(PackArgs),
}

#[derive(clap::Args)]
pub struct PackArgs {
    /// The image of kiln.toml (default: the only one).
    #[arg(long)]
    image: Option<String>,
    /// The pack directory to write (replaced whole).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// A SARIF scan to include (repeatable).
    #[arg(long, value_name = "FILE")]
    sarif: Vec<PathBuf>,
    /// An OSV advisory or scan result to include (repeatable).
    #[arg(long, value_name = "FILE")]
    osv: Vec<PathBuf>,
    /// The repro report to include (default: target/kiln/repro/report.json when present).
    #[arg(long, value_name = "FILE")]
    repro_report: Option<PathBuf>,
}

pub fn run(project: PathBuf, command: &EvidenceCommand) -> anyhow::Result<ExitCode> {
    let EvidenceCommand::Pack(args) = command;
    let config = kiln_config::Config::load(&project)?;
    let image = match (&args.image, config.images.as_slice()) {
        (Some(n), _) => config.image(n)?.name.clone(),
        (None, [one]) => one.name.clone(),
        (None, many) => bail!(
            "kiln.toml has {} images; choose one with --image NAME",
            many.len()
        ),
    };
    let layout = ProjectLayout::new(&project);
    let default_report = layout
        .repro_dir()
        .join(kiln_core::contract::layout::repro::REPORT_JSON);
    let lock = kiln_build::host_target()
        .ok()
        .map(|t| layout.toolchain_lock(&t))
        .filter(|p| p.is_file());
    let input = kiln_compliance::PackInput {
        image: image.clone(),
        output: layout.output(&image).path().to_path_buf(),
        toolchain_lock: lock,
        repro_report: args
            .repro_report
            .clone()
            .or_else(|| default_report.is_file().then_some(default_report)),
        scans: args.sarif.iter().chain(&args.osv).cloned().collect(),
    };
    let manifest = kiln_compliance::pack::pack(&input, &args.out)?;
    println!(
        "wrote the evidence pack of {image} ({}) to {}: {} files",
        manifest.digest,
        args.out.display(),
        manifest.files.len()
    );
    for f in &manifest.files {
        println!(
            "  {:<14} {:<36} {}",
            format!("{:?}", f.role).to_lowercase(),
            f.path,
            f.sha256
        );
    }
    Ok(ExitCode::SUCCESS)
}
