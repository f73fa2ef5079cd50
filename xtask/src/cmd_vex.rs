//! `cargo xtask gate` (being written).

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct GateArgs {}

pub fn gate(_project: PathBuf, _args: &GateArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`gate` is not implemented yet")
}
