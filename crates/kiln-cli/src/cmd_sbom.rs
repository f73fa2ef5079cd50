//! `kiln sbom`: regenerate `sbom.cdx.json` and `sbom.spdx.json` for images already
//! built into `target/kiln/out/<image>/` (the build writes them too; this is for a new
//! `--sbom-spec` or after kiln itself changed). The work is `kiln_build::regenerate_sbom`.

use std::path::PathBuf;
use std::process::ExitCode;

use kiln_build::BuildOptions;

#[derive(clap::Args)]
pub struct Args {
    /// Only this image (repeatable); default all images in kiln.toml.
    #[arg(long = "image")]
    images: Vec<String>,
    /// CycloneDX version of sbom.cdx.json: 1.6 (default) or 1.5.
    #[arg(long, value_name = "VERSION")]
    sbom_spec: Option<String>,
    /// Output directory the images were built into (default: <project>/target/kiln/out).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Build root whose cargo home the build used (default: <project>/target/kiln/root).
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
}

pub fn run(project: PathBuf, args: &Args) -> anyhow::Result<ExitCode> {
    let mut opts = BuildOptions::new(project);
    opts.out_dir = args.out.clone();
    opts.root_dir = args.root.clone();
    opts.evidence.sbom_spec = args.sbom_spec.clone();
    let images = if args.images.is_empty() {
        kiln_config::Config::load(&opts.project)?
            .images
            .iter()
            .map(|i| i.name.clone())
            .collect()
    } else {
        args.images.clone()
    };
    for image in images {
        for path in kiln_build::regenerate_sbom(&opts, &image)? {
            println!("wrote {}", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
