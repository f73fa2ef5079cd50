//! `cargo xtask sbom` (being written).

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {}

pub fn run(_project: PathBuf, _args: &Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`sbom` is not implemented yet")
}
