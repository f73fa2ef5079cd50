//! `kiln controls attest`: a thin wrapper over kiln-build's compliance step.

use std::path::PathBuf;
use std::process::ExitCode;

use kiln_core::contract::controls::Verdict;

#[derive(clap::Subcommand)]
pub enum ControlsCommand {
    /// Judge an evidence pack with a control catalog, sign the verdict as an in-toto
    /// statement (https://kiln.dev/attestations/controls/v1), write it with HTML and PDF
    /// reports into the pack's attestation/, and attach it to the image as a referrer.
    /// Exits 1 when a control failed (the attestation is still written: it records why).
    Attest(AttestArgs),
}

#[derive(clap::Args)]
pub struct AttestArgs {
    /// The control catalog (YAML).
    #[arg(
        long,
        value_name = "FILE",
        default_value = "compliance/control_catalog.yaml"
    )]
    catalog: PathBuf,
    /// The evidence pack (`kiln evidence pack --out DIR`).
    #[arg(long, value_name = "DIR")]
    pack: PathBuf,
    /// Signing key (PKCS#8 PEM); default $KILN_SIGNING_KEY.
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    /// Sign keyless with Sigstore (Fulcio + Rekor) using the GitHub Actions OIDC token.
    #[arg(long)]
    keyless: bool,
    /// Only write the pack's attestation/, do not attach it to the built image.
    #[arg(long)]
    no_attach: bool,
    /// Output directory root (default: <project>/target/kiln/out).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Print the predicate as JSON on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(project: PathBuf, command: &ControlsCommand) -> anyhow::Result<ExitCode> {
    let ControlsCommand::Attest(args) = command;
    // The catalog is named relative to where the user is, like every other path argument,
    // except the default, which is the project's.
    let catalog = if args.catalog.is_relative() && !args.catalog.exists() {
        project.join(&args.catalog)
    } else {
        args.catalog.clone()
    };
    let opts = kiln_build::compliance::AttestOptions {
        project,
        catalog,
        pack: args.pack.clone(),
        signing_key: args.key.clone(),
        keyless: args.keyless,
        attach: !args.no_attach,
        out_dir: args.out.clone(),
    };
    let r = kiln_build::compliance::attest(&opts)?;
    let p = &r.attestation.predicate;
    if args.json {
        println!(
            "{}",
            String::from_utf8(kiln_core::canonical::to_vec_pretty(p)?)?
        );
    } else {
        println!(
            "controls of {} {} (catalog {}): {} passed, {} failed",
            p.pack.image, p.pack.digest, p.catalog.path, p.summary.passed, p.summary.failed
        );
        for c in &p.controls {
            println!(
                "  {} {:<10} {}",
                if c.result == Verdict::Pass {
                    "PASS"
                } else {
                    "FAIL"
                },
                c.id,
                c.name
            );
            for f in &c.failures {
                println!("         {}", f.replace('\n', " "));
            }
        }
    }
    eprintln!(
        "kiln: wrote {} (signed by {})",
        r.attestation.dir.display(),
        r.attestation.signer
    );
    if let Some((out, d)) = &r.attached {
        eprintln!(
            "kiln: attached to the image in {} as referrer {d}",
            out.display()
        );
    }
    Ok(if p.all_pass() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
