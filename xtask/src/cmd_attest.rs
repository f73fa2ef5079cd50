//! `cargo xtask keygen` and `cargo xtask verify` (being written).

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct KeygenArgs {}

#[derive(clap::Args)]
pub struct VerifyArgs {}

pub fn keygen(_args: &KeygenArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`keygen` is not implemented yet")
}

pub fn verify(_project: PathBuf, _args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`verify` is not implemented yet")
}
