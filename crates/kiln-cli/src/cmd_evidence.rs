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
    /// Re-verify a random, seeded sample of past releases' packs and control attestations
    /// (the quarterly audit): prints a table, exits 1 on any failure.
    Audit(AuditArgs),
}

#[derive(clap::Args)]
pub struct AuditArgs {
    /// How many of the packs to audit: `10%` (rounded up, at least one) or `all`.
    #[arg(long, value_name = "PERCENT", default_value = "100%")]
    sample: String,
    /// The seed that picks the sample (default: random, printed so the audit can be
    /// repeated).
    #[arg(long)]
    seed: Option<u64>,
    /// The policy whose keys or identities must have signed each attestation.
    #[arg(long, value_name = "FILE")]
    policy: PathBuf,
    /// Print the audit as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Evidence packs, or directories holding packs (one level down).
    #[arg(value_name = "DIR", required = true)]
    dirs: Vec<PathBuf>,
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
    let args = match command {
        EvidenceCommand::Pack(args) => args,
        EvidenceCommand::Audit(args) => return audit(args),
    };
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

fn parse_percent(s: &str) -> anyhow::Result<f64> {
    if s == "all" {
        return Ok(100.0);
    }
    let v: f64 = s.strip_suffix('%').unwrap_or(s).parse().map_err(|_| {
        anyhow::anyhow!("--sample `{s}`: expected a percentage such as `10%`, or `all`")
    })?;
    if !(v > 0.0 && v <= 100.0) {
        bail!("--sample `{s}`: the percentage must be above 0 and at most 100");
    }
    Ok(v)
}

fn audit(args: &AuditArgs) -> anyhow::Result<ExitCode> {
    let percent = parse_percent(&args.sample)?;
    let policy = kiln_attest::Policy::load(&args.policy)?;
    // A directory with manifest.json is a pack; otherwise each subdirectory that has one.
    let mut packs = Vec::new();
    for d in &args.dirs {
        if d.join(kiln_compliance::pack::MANIFEST).is_file() {
            packs.push(d.clone());
            continue;
        }
        let mut found: Vec<PathBuf> = std::fs::read_dir(d)
            .map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", d.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join(kiln_compliance::pack::MANIFEST).is_file())
            .collect();
        if found.is_empty() {
            bail!(
                "{}: neither an evidence pack nor a directory of packs (no manifest.json)",
                d.display()
            );
        }
        found.sort();
        packs.extend(found);
    }
    // The seed is the one random thing; it is printed, so the same sample can be drawn again.
    let seed = args.seed.unwrap_or_else(|| {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default(),
        );
        h.finish()
    });
    let a = kiln_compliance::audit::audit(&packs, percent, seed, &policy);
    if args.json {
        println!(
            "{}",
            String::from_utf8(kiln_core::canonical::to_vec_pretty(&a)?)?
        );
    } else {
        print!("{}", a.table());
    }
    Ok(if a.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
