//! `cargo xtask`: this repository's developer tasks, as rust-analyzer's `xtask/` does.
//!
//! Every user command of kiln (`build`, `repro`, `verify`, ...) is embedded from
//! [`kiln_cli::Command`] and runs exactly as the installed `kiln` binary runs it, so
//! `cargo xtask build` needs no install. Next to them live the tasks that only make sense
//! in kiln's own source tree and must never ship in the product: `test` (installs the tools
//! the suite drives, then runs it), `bench`, `corpus`, `fuzz`.

// Doc comments on the clap types are `--help` text, printed verbatim: `<image>` there is a
// placeholder a user reads, not an HTML tag (escaping it would show in `--help`).
#![allow(rustdoc::invalid_html_tags)]

mod bench;
mod bench_build;
mod bench_cache;
mod bench_gate;
mod bench_push;
mod bench_repro;
mod bench_sbom;
mod cmd_corpus;
mod fuzz;
mod test_env;
#[cfg(test)]
mod tidy;
mod util;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "kiln's commands plus this repository's developer tasks (test, bench, corpus, fuzz)"
)]
struct Cli {
    /// Run as if started in DIR (the project holding kiln.toml).
    #[arg(short = 'C', global = true, value_name = "DIR")]
    dir: Option<PathBuf>,
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    #[command(flatten)]
    Kiln(kiln_cli::Command),
    /// Build and repro every project of testdata/corpus/corpus.toml (real-world CLIs) and
    /// report verdicts, causes and build overhead under target/kiln/corpus/.
    Corpus(cmd_corpus::Args),
    /// Install what the test suite needs (apt, pip, npm), then run every test.
    Test(test_env::TestArgs),
    /// Fuzz kiln's parsers (fuzz/: random and mutated inputs, crashes shrunk and saved).
    Fuzz(fuzz::FuzzArgs),
    /// Benchmarks (figures, not pass/fail).
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Cost of `repro` over two plain cargo builds; its diff against diffoscope.
    Repro(bench_repro::ReproBenchArgs),
    /// Pack a ~1 GiB tree into a layer and an OCI layout, against tar|gzip and buildah.
    Image(bench::ImageBenchArgs),
    #[command(hide = true)]
    ImagePack(bench::ImagePackArgs),
    /// Generate an SBOM for a Cargo workspace (kiln's own by default) with kiln,
    /// cargo-cyclonedx, syft, trivy and cdxgen: wall time, peak RSS, crates found.
    Sbom(bench_sbom::SbomBenchArgs),
    #[command(hide = true)]
    SbomGen(bench_sbom::SbomGenArgs),
    /// The gate on a generated 250k-result SARIF: wall time and peak RSS.
    Gate(bench_gate::GateBenchArgs),
    /// `kiln push` of an image with a ~500 MiB incompressible layer to a local
    /// docker-registry, against `skopeo copy`, and the re-push: wall, MB/s, peak RSS.
    Push(bench_push::PushBenchArgs),
    /// The attested build cache on a corpus project (bat by default) and testdata/hello:
    /// cold miss + store, warm hit, the no-op hit, against a `--no-cache` full compile.
    Cache(bench_cache::CacheBenchArgs),
    /// A build inside the provided toolchain root next to a plain `cargo build --release
    /// --locked` (hello and a corpus project), and the root's first-time fetch.
    Build(bench_build::BuildBenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.task {
        Task::Kiln(command) => kiln_cli::execute(cli.dir, command),
        task => {
            kiln_cli::set_program(cli.dir.as_deref());
            kiln_cli::report(run(cli.dir, task))
        }
    }
}

fn run(dir: Option<PathBuf>, task: Task) -> Result<ExitCode> {
    match task {
        Task::Kiln(_) => unreachable!("handled by kiln_cli::execute"),
        Task::Test(args) => return test_env::run(&args),
        Task::Corpus(args) => return cmd_corpus::run(kiln_cli::project_dir(dir)?, &args),
        Task::Fuzz(args) => return fuzz::run(&args),
        Task::Bench { command } => match command {
            BenchCommand::Image(args) => bench::image(&args)?,
            BenchCommand::Repro(args) => bench_repro::repro(&args)?,
            BenchCommand::ImagePack(args) => bench::image_pack(&args.src, &args.out)?,
            BenchCommand::Sbom(args) => bench_sbom::sbom(&args)?,
            BenchCommand::SbomGen(args) => bench_sbom::sbom_gen(&args)?,
            BenchCommand::Gate(args) => bench_gate::gate(&args)?,
            BenchCommand::Push(args) => bench_push::push(&args)?,
            BenchCommand::Cache(args) => bench_cache::cache(&args)?,
            BenchCommand::Build(args) => bench_build::build(&args)?,
        },
    }
    Ok(ExitCode::SUCCESS)
}
