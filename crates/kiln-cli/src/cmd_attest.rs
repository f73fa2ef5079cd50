//! `kiln keygen` and `kiln verify`: thin wrappers over kiln-attest.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use kiln_core::contract::{OutputDir, ProjectLayout};

#[derive(clap::Args)]
pub struct KeygenArgs {
    /// Where to write: PREFIX.key (private, mode 0600) and PREFIX.pub.
    #[arg(long, value_name = "PREFIX", default_value = "kiln")]
    out: PathBuf,
}

#[derive(clap::Args)]
pub struct VerifyArgs {
    /// An image's output directory (default: target/kiln/out/<the only image>), or an
    /// image in a registry, REGISTRY/REPOSITORY:TAG or @sha256:... (pulled with its
    /// referrers, then verified exactly as a local one).
    #[arg(value_name = "DIR|REF")]
    image_dir: Option<PathBuf>,
    /// The policy (TOML): trusted keys/identities and required attestations.
    #[arg(long, value_name = "FILE")]
    policy: PathBuf,
    /// The tag (`org.opencontainers.image.ref.name` in oci/index.json) to verify
    /// (default: the layout's only image).
    #[arg(long = "ref", value_name = "TAG")]
    reference: Option<String>,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// An evidence pack to check too: whole, its control attestation signed by the
    /// policy's keys, about this image, and the one attached to it.
    #[arg(long, value_name = "DIR")]
    pack: Option<PathBuf>,
    #[command(flatten)]
    registry: crate::cmd_publish::RegistryArgs,
}

pub fn keygen(args: &KeygenArgs) -> anyhow::Result<ExitCode> {
    let kp = kiln_attest::keygen(&args.out)?;
    // Paths and the key id only: the private key itself is never printed.
    println!(
        "wrote {} (private, mode 0600) and {} (public)",
        kp.private.display(),
        kp.public.display()
    );
    println!("keyid {}", kp.keyid);
    Ok(ExitCode::SUCCESS)
}

pub fn verify(project: PathBuf, args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let policy = kiln_attest::Policy::load(&args.policy)?;
    // A registry reference: anything that is not a directory here and reads as one.
    let remote = args
        .image_dir
        .as_ref()
        .filter(|p| !p.exists())
        .and_then(|p| p.to_str())
        .filter(|s| s.contains('/') && (s.contains(':') || s.contains('@')))
        .map(String::from);
    if let Some(reference) = remote {
        let r = kiln_build::publish::verify(
            &reference,
            &policy,
            &args.registry.options(),
            args.pack.as_deref(),
            &|m| eprintln!("kiln: verify: {m}"),
        )
        .with_context(|| format!("pulling {reference}"))?;
        if let Some(t) = &r.resolved {
            println!("resolved {t}");
        }
        return print_report(&r.report, args.json);
    }
    let dir = match &args.image_dir {
        Some(d) => d.clone(),
        None => {
            let config = kiln_config::Config::load(&project)?;
            match config.images.as_slice() {
                [one] => ProjectLayout::new(&project)
                    .output(&one.name)
                    .path()
                    .to_path_buf(),
                many => bail!(
                    "kiln.toml has {} images; name the one to verify: {} target/kiln/out/<{}> --policy FILE",
                    many.len(),
                    kiln_core::cli::cmd("verify"),
                    many.iter()
                        .map(|i| i.name.as_str())
                        .collect::<Vec<_>>()
                        .join("|")
                ),
            }
        }
    };
    if !OutputDir::new(&dir).oci().join("index.json").is_file() {
        bail!(
            "{} is not a kiln image output directory (no oci/index.json)\n  fix: pass target/kiln/out/<image> after `{}`",
            dir.display(),
            kiln_core::cli::cmd("build")
        );
    }
    let opts = kiln_attest::Options {
        reference: args.reference.clone(),
        registry_copy: false,
    };
    let mut report = kiln_attest::verify_with(&dir, &policy, &opts);
    if let Some(pack) = &args.pack {
        let digest = kiln_core::contract::Summary::read(&OutputDir::new(&dir).summary())
            .ok()
            .map(|s| s.digest);
        let checks =
            kiln_compliance::audit::release_checks(pack, &policy, digest.as_ref(), Some(&dir));
        report.ok &= checks.iter().all(|c| c.pass);
        report.checks.extend(checks);
    }
    print_report(&report, args.json)
}

fn print_report(report: &kiln_attest::Report, json: bool) -> anyhow::Result<ExitCode> {
    if json {
        println!(
            "{}",
            String::from_utf8(
                kiln_core::canonical::to_vec_pretty(report).context("report serializes")?
            )?
            .trim_end()
        );
    } else {
        for line in report.lines() {
            println!("{line}");
        }
    }
    if report.ok {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "kiln: verification failed: {} of {} rules failed",
            report.checks.iter().filter(|c| !c.pass).count(),
            report.checks.len()
        );
        Ok(ExitCode::FAILURE)
    }
}
