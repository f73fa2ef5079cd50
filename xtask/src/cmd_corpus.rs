//! `cargo xtask corpus`: kiln on the real-world projects of testdata/corpus/corpus.toml.
//! The work is in `kiln-corpus`; this file parses arguments and prints.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use kiln_core::contract::ProjectLayout;

#[derive(clap::Args)]
pub struct Args {
    /// Only this project (repeatable); default all of them.
    #[arg(long = "only", value_name = "NAME")]
    only: Vec<String>,
    /// The corpus file (default: <repo>/testdata/corpus/corpus.toml).
    #[arg(long, value_name = "FILE")]
    corpus: Option<PathBuf>,
    /// Scratch space for archives, projects and builds; outside any git repository or
    /// Cargo workspace (default: $TMPDIR/kiln-corpus).
    #[arg(long, value_name = "DIR")]
    work: Option<PathBuf>,
    /// Report directory (default: <repo>/target/kiln/corpus).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Skip the plain cargo build and kiln build timings (repro only).
    #[arg(long)]
    no_overhead: bool,
    /// Attach diffoscope reports for differing artifacts.
    #[arg(long)]
    diffoscope: bool,
    /// Print report.json instead of the Markdown table.
    #[arg(long)]
    json: bool,
    /// Build every project inside this provided toolchain root (toolchains/NAME.lock.json)
    /// instead of with the host's toolchain (checked against the host lock).
    #[arg(long, value_name = "NAME")]
    toolchain_root: Option<String>,
}

pub fn run(repo: PathBuf, args: &Args) -> Result<ExitCode> {
    let layout = ProjectLayout::new(&repo);
    // The plain builds and the corpus fetch run the host's cargo, at the Rust the lock pins.
    let (lock_file, rustup_toolchain) = match &args.toolchain_root {
        Some(name) => {
            let file = layout
                .toolchains_dir()
                .join(kiln_core::contract::layout::toolroot::lock_file(name));
            let lock = kiln_toolroot::RootLock::read(&file)?;
            (file, Some(lock.rust.version))
        }
        None => {
            let file = layout.toolchain_lock(&kiln_build::host_target()?);
            let lock = kiln_toolchain::ToolchainLock::read(&file)?;
            (file, lock.rustup_toolchain)
        }
    };
    let opts = kiln_corpus::Options {
        corpus: args
            .corpus
            .clone()
            .unwrap_or_else(|| repo.join(kiln_corpus::CORPUS_FILE)),
        only: args.only.clone(),
        work: args
            .work
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join("kiln-corpus")),
        out: args.out.clone().unwrap_or_else(|| layout.corpus_dir()),
        lock_file,
        toolchain_root: args.toolchain_root.clone(),
        overhead: !args.no_overhead,
        diffoscope: args.diffoscope,
    };
    let tools = kiln_corpus::Tools {
        kiln: std::env::current_exe().context("cannot find the kiln executable")?,
        cargo: std::env::var_os("CARGO")
            .map(PathBuf::from)
            .unwrap_or_else(|| "cargo".into()),
        rustup_toolchain,
    };
    let report = kiln_corpus::run(&opts, &tools, &|m| eprintln!("kiln: corpus: {m}"))?;
    report.write(&opts.out)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.markdown());
    }
    eprintln!(
        "kiln: corpus: {} of {} reproducible; reports in {}",
        report.reproducible,
        report.total,
        opts.out.display()
    );
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
