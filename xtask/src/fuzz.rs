//! `cargo xtask fuzz`: kiln's parsers under random and mutated inputs (the `fuzz/` crate).

use std::process::ExitCode;

use anyhow::{Context, Result};

/// Arguments of `fuzz`.
#[derive(clap::Args)]
pub struct FuzzArgs {
    /// Seconds per target.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    time: u64,
    /// Seed of the random stream (the same seed and time explore the same inputs first).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Targets to run (default: all; `--list` shows them).
    #[arg(value_name = "TARGET")]
    targets: Vec<String>,
    /// List the targets.
    #[arg(long)]
    list: bool,
}

/// `cargo xtask fuzz`: runs the fuzz crate's driver (`fuzz/`, proptest on stable; the
/// dependency stays out of this CLI) with `cargo run -p kiln-fuzz`.
pub fn run(args: &FuzzArgs) -> Result<ExitCode> {
    let repo = crate::util::repo_root()?;
    if !repo.join("fuzz/Cargo.toml").is_file() {
        anyhow::bail!(
            "{} has no fuzz/ crate: `fuzz` runs from kiln's source tree",
            repo.display()
        );
    }
    let mut cmd =
        kiln_core::process::command(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(&repo)
        .args(["run", "--quiet", "--locked", "-p", "kiln-fuzz", "--"])
        .args([
            "--time",
            &args.time.to_string(),
            "--seed",
            &args.seed.to_string(),
        ])
        .args(&args.targets);
    if args.list {
        cmd.arg("--list");
    }
    let status = cmd.status().context("cannot run cargo run -p kiln-fuzz")?;
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
