//! `kiln push` and `kiln pull`: thin wrappers over kiln-build's publish step.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use kiln_build::publish::{PushOptions, RegistryOptions};

#[derive(clap::Args)]
pub struct RegistryArgs {
    /// Plain HTTP instead of HTTPS: only for a registry on this machine (127.0.0.1,
    /// localhost, [::1]).
    #[arg(long)]
    pub insecure_http: bool,
}

impl RegistryArgs {
    pub fn options(&self) -> RegistryOptions {
        RegistryOptions {
            insecure_http: self.insecure_http,
            chunk_size: std::env::var("KILN_PUSH_CHUNK_SIZE")
                .ok()
                .and_then(|v| v.parse().ok()),
            parallel: std::env::var("KILN_PUSH_PARALLEL")
                .ok()
                .and_then(|v| v.parse().ok()),
            timeout: std::env::var("KILN_REGISTRY_TIMEOUT")
                .ok()
                .and_then(|v| v.parse().ok())
                .map(std::time::Duration::from_secs_f64),
        }
    }
}

#[derive(clap::Args)]
pub struct PushArgs {
    /// Where to: REGISTRY/REPOSITORY[:TAG] (without a tag: the tag the image was built
    /// and signed with; `latest` is refused).
    #[arg(value_name = "REF")]
    reference: String,
    /// The image of kiln.toml to push (default: the only one).
    #[arg(long)]
    image: Option<String>,
    /// Output directory root the image was built into (default: <project>/target/kiln/out).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Also sign cosign's legacy `sha256-<hex>.sig` with this key (else $KILN_SIGNING_KEY
    /// when it names a file); without one, no `.sig` is pushed.
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    /// Mount blobs from this repository of the same registry when it has them (for
    /// example the base image's) instead of uploading them.
    #[arg(long = "mount-from", value_name = "REPOSITORY")]
    mount_from: Option<String>,
    /// Print push.json on stdout.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    registry: RegistryArgs,
}

#[derive(clap::Args)]
pub struct PullArgs {
    /// REGISTRY/REPOSITORY:TAG or REGISTRY/REPOSITORY@sha256:...
    #[arg(value_name = "REF")]
    reference: String,
    /// The directory to write (an output directory: oci/ and the evidence beside it).
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    #[command(flatten)]
    registry: RegistryArgs,
}

pub fn push(project: PathBuf, args: &PushArgs) -> anyhow::Result<ExitCode> {
    let key = args.key.clone().or_else(|| {
        std::env::var_os("KILN_SIGNING_KEY")
            .map(PathBuf::from)
            .filter(|p| p.is_file())
    });
    let opts = PushOptions {
        project,
        image: args.image.clone(),
        out_dir: args.out.clone(),
        target: args.reference.clone(),
        registry: args.registry.options(),
        signing_key: key,
        mount_from: args.mount_from.iter().cloned().collect(),
    };
    let report = kiln_build::publish::push(&opts, &crate::Stderr)?;
    if args.json {
        println!("{}", String::from_utf8(report.to_json())?);
    } else {
        let uploaded = report
            .blobs
            .iter()
            .filter(|b| b.outcome == "uploaded")
            .count();
        println!("pushed {}", report.reference);
        println!(
            "  {} blob(s), {} uploaded ({} bytes); {} manifest(s); referrers via {}",
            report.blobs.len(),
            uploaded,
            report.uploaded_bytes,
            report.manifests.len(),
            report.referrers
        );
        for t in &report.tags {
            println!("  tag {} → {} ({})", t.tag, t.digest, t.outcome);
        }
        if !report.changed_anything() {
            println!("  nothing changed: the registry already had all of it");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn pull(args: &PullArgs) -> anyhow::Result<ExitCode> {
    let pulled =
        kiln_build::publish::pull(&args.reference, &args.dir, &args.registry.options(), &|m| {
            eprintln!("kiln: pull: {m}")
        })
        .with_context(|| format!("pulling {}", args.reference))?;
    println!(
        "pulled {} into {} ({} referrer(s) via {}; files: {})",
        pulled.registry.image,
        pulled.dir.display(),
        pulled.registry.referrers.len(),
        pulled.registry.referrers_from,
        pulled.files.join(", ")
    );
    for (t, d) in &pulled.registry.legacy_tags {
        println!("  cosign tag {t} → {d}");
    }
    Ok(ExitCode::SUCCESS)
}
