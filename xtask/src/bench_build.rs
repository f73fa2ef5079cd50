//! `cargo xtask bench build`: what building inside the provided toolchain root costs.
//!
//! 1. The kiln binary is the release build of kiln-cli.
//! 2. First time: `kiln fetch` of testdata/hello with `toolchain_root =
//!    "bookworm-rust-1.95.0"` into an empty store and an empty download cache: the root's
//!    171 MiB of pinned inputs downloaded, packed and installed (timed), and the store's
//!    size on disk.
//! 3. Per project (testdata/hello, `--hello-runs` times, and a corpus project, bat with 168
//!    crates by default, `--runs` times), prepared as `bench repro` prepares it plus the
//!    provided root, fetched (untimed), then per run, each a child process timed by wall
//!    clock with peak RSS, `sync(2)` before:
//!    - `kiln build --offline --no-cache` inside the root, its target dir removed first
//!      (the whole command: root check, crate unpack, compile, SBOM, image, provenance);
//!    - plain `cargo build --release --locked` of the same package on the host, with a
//!      fresh target dir and its own fetched cargo home;
//!    - the same with what kiln asks cargo for: `--target <host>` and crt-static (build
//!      scripts and proc-macros then compile apart from the target code, so shared
//!      dependencies compile twice: the price of a static binary, not of kiln).
//!
//!    The overhead is median(kiln) / median(plain) − 1 (the target is ≤ 5 %), split
//!    into the static `--target` build's share and kiln's own (kiln over that build).
//!
//! The table goes to stdout, the figures to target/kiln/bench/build.json.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use kiln_core::contract::ProjectLayout;
use serde_json::json;

use crate::bench::{Measured, median, run_logged, run_measured};

#[derive(clap::Args, Debug, Clone)]
pub struct BuildBenchArgs {
    /// The project of testdata/corpus/corpus.toml to measure (testdata/hello is measured too).
    #[arg(long, value_name = "NAME", default_value = "bat")]
    pub corpus: String,
    /// Runs of each build of the corpus project (min and median are reported).
    #[arg(long, default_value_t = 2)]
    pub runs: u32,
    /// Runs of each build of hello: each takes under a second, and its overhead is a fixed
    /// cost of tens of milliseconds, so more runs are what make its median steady.
    #[arg(long, default_value_t = 10)]
    pub hello_runs: u32,
    /// Measure hello only.
    #[arg(long)]
    pub no_corpus: bool,
    /// Work directory, kept afterwards (default: a temporary directory, removed).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

const ROOT: &str = "bookworm-rust-1.95.0";
const OVERHEAD_TARGET: f64 = 0.05;

/// `project`'s kiln.toml naming the provided root, and the root's lock beside it.
fn provide(repo: &Path, project: &Path) -> Result<()> {
    let toml_path = ProjectLayout::new(project).kiln_toml();
    let toml = std::fs::read_to_string(&toml_path)?;
    let line = format!("toolchain_root = \"{ROOT}\"\n");
    let toml = match toml.find("[project]\n") {
        Some(i) => format!("{}{line}{}", &toml[..i + 10], &toml[i + 10..]),
        None => format!("[project]\n{line}\n{toml}"),
    };
    kiln_core::fsx::write_atomic(&toml_path, toml.as_bytes())?;
    let lock = kiln_core::contract::layout::toolroot::lock_file(ROOT);
    let dest = ProjectLayout::new(project).toolchains_dir();
    kiln_core::fsx::create_dir_all(&dest)?;
    std::fs::copy(
        ProjectLayout::new(repo).toolchains_dir().join(&lock),
        dest.join(&lock),
    )
    .with_context(|| format!("copying {lock}"))?;
    Ok(())
}

/// Bytes of the regular files under `path` (symlinks not followed).
fn du(path: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(path) else {
        return 0;
    };
    rd.filter_map(|e| e.ok())
        .map(|e| match std::fs::symlink_metadata(e.path()) {
            Ok(m) if m.is_dir() => du(&e.path()),
            Ok(m) if m.is_file() => m.len(),
            _ => 0,
        })
        .sum()
}

pub fn build(args: &BuildBenchArgs) -> Result<()> {
    if args.runs == 0 || args.hello_runs == 0 {
        bail!("--runs and --hello-runs must be at least 1");
    }
    let repo = crate::util::repo_root()?;
    let work = crate::bench::WorkDir::new(args.dir.as_deref(), "kiln-bench-build-")?;
    let dir = work.path.clone();
    let cargo = PathBuf::from(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    let target = kiln_build::host_target()?;
    let kiln = crate::bench_cache::release_kiln(&repo, &cargo)?;
    let logs = dir.join("logs");
    kiln_core::fsx::create_dir_all(&logs)?;
    let store = dir.join("toolroot-store");
    let cache = dir.join("toolroot-cache");
    let kiln_cmd = |project: &Path| {
        let mut c = kiln_core::process::command(&kiln);
        c.env("KILN_TOOLROOT_STORE", &store)
            .env("KILN_TOOLROOT_CACHE", &cache)
            .env_remove("KILN_SIGNING_KEY")
            .arg("-C")
            .arg(project);
        c
    };

    eprintln!("bench build: preparing the projects (untimed)");
    let hello = crate::bench_repro::project(&repo, &dir, "hello", crate::bench_repro::HELLO)?;
    provide(&repo, &hello)?;
    // (name, package, project, features, runs)
    let mut projects = vec![(
        "hello".to_string(),
        "hello".to_string(),
        hello.clone(),
        Vec::new(),
        args.hello_runs,
    )];
    if !args.no_corpus {
        let corpus = crate::bench_repro::prepare_corpus(&repo, &dir, &args.corpus)?;
        provide(&repo, &corpus.project)?;
        projects.push((
            corpus.entry.name.clone(),
            corpus.entry.name.clone(),
            corpus.project.clone(),
            corpus.entry.features.clone(),
            args.runs,
        ));
    }

    // First time: the root from nothing (its inputs downloaded, packed, installed).
    let _ = std::fs::remove_dir_all(&store);
    let _ = std::fs::remove_dir_all(&cache);
    eprintln!("bench build: first-time fetch of the provided root (timed)");
    let mut f = kiln_cmd(&hello);
    f.arg("fetch");
    let first = run_logged(f, &logs.join("first-fetch.log"))?;
    let store_bytes = du(&store);
    let cache_bytes = du(&cache);

    let mut rows = Vec::new();
    for (name, package, project, features, runs) in &projects {
        let mut f = kiln_cmd(project);
        f.arg("fetch");
        run_logged(f, &logs.join(format!("{name}-fetch.log")))?;
        let plain_home = dir.join(format!("plain-home-{name}"));
        let manifest = project.join("Cargo.toml");
        let mut f = kiln_core::process::command(&cargo);
        f.args(["fetch", "--locked", "--manifest-path"])
            .arg(&manifest)
            .env("CARGO_HOME", &plain_home);
        run_logged(f, &logs.join(format!("{name}-plain-fetch.log")))?;
        let target_dir = ProjectLayout::new(project).build_root().join("target");
        let plain_target = dir.join(format!("plain-target-{name}"));
        let (mut kiln_runs, mut plain_runs, mut same_runs): (
            Vec<Measured>,
            Vec<Measured>,
            Vec<Measured>,
        ) = (vec![], vec![], vec![]);
        for run in 1..=*runs {
            let _ = std::fs::remove_dir_all(&target_dir);
            let mut c = kiln_cmd(project);
            c.args(["build", "--offline", "--no-cache"]);
            // SAFETY: sync(2) takes no arguments and cannot fail.
            unsafe { libc::sync() };
            let m = run_logged(c, &logs.join(format!("{name}-kiln-{run}.log")))?;
            let log = std::fs::read_to_string(logs.join(format!("{name}-kiln-{run}.log")))?;
            if !log.contains("root sandbox") {
                bail!("{name}: the kiln build did not run inside the provided root:\n{log}");
            }
            eprintln!(
                "bench build: {name} kiln (in root) #{run}: {:.3} s",
                m.wall.as_secs_f64()
            );
            kiln_runs.push(m);

            for (kind, same) in [("plain cargo", false), ("static --target cargo", true)] {
                let _ = std::fs::remove_dir_all(&plain_target);
                let mut c = kiln_core::process::command(&cargo);
                c.args([
                    "build",
                    "--release",
                    "--locked",
                    "--offline",
                    "--manifest-path",
                ])
                .arg(&manifest)
                .args(["--package", package])
                .env("CARGO_HOME", &plain_home)
                .env("CARGO_TARGET_DIR", &plain_target)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null());
                if same {
                    // What kiln asks cargo for: an explicit --target (so the static CRT
                    // reaches the binaries but not build scripts and proc-macros, which
                    // then compile separately for the host) and crt-static.
                    c.args(["--target", &target])
                        .env("CARGO_ENCODED_RUSTFLAGS", "-Ctarget-feature=+crt-static");
                }
                if !features.is_empty() {
                    c.args(["--features", &features.join(",")]);
                }
                // SAFETY: as above.
                unsafe { libc::sync() };
                let m = run_measured(c)?;
                eprintln!(
                    "bench build: {name} {kind} #{run}: {:.3} s",
                    m.wall.as_secs_f64()
                );
                if same {
                    same_runs.push(m);
                } else {
                    plain_runs.push(m);
                }
            }
        }
        rows.push((name.clone(), kiln_runs, plain_runs, same_runs));
    }

    let secs = |ms: &[Measured]| ms.iter().map(|m| m.wall.as_secs_f64()).collect::<Vec<_>>();
    let min = |xs: &[f64]| xs.iter().copied().fold(f64::INFINITY, f64::min);
    println!();
    println!(
        "bench build: {} run(s) of hello{}; kiln {} (release) `build --offline --no-cache` inside the provided root {ROOT}, next to plain `cargo build --release --locked --offline` on the host; cold target dirs",
        args.hello_runs,
        if args.no_corpus {
            String::new()
        } else {
            format!(", {} of {}", args.runs, args.corpus)
        },
        kiln.display()
    );
    println!(
        "first-time root fetch + pack + install: {:.1} s; store {:.1} MiB, download cache {:.1} MiB",
        first.wall.as_secs_f64(),
        store_bytes as f64 / (1 << 20) as f64,
        cache_bytes as f64 / (1 << 20) as f64
    );
    println!();
    println!(
        "| project | kiln in root s (min / median) | plain cargo s (min / median) | static --target cargo s (min / median) | overhead vs plain (medians) | of which static --target | kiln itself (vs static --target cargo) | target ≤ 5 % |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |");
    let mut figures = Vec::new();
    for (name, k, p, t) in &rows {
        let (ks, ps, ts) = (secs(k), secs(p), secs(t));
        let overhead = median(&ks) / median(&ps) - 1.0;
        let static_cost = median(&ts) / median(&ps) - 1.0;
        let kiln_own = median(&ks) / median(&ts) - 1.0;
        let met = overhead <= OVERHEAD_TARGET;
        println!(
            "| {name} | {:.2} / {:.2} | {:.2} / {:.2} | {:.2} / {:.2} | {:+.1} % | {:+.1} % | {:+.1} % | {} |",
            min(&ks),
            median(&ks),
            min(&ps),
            median(&ps),
            min(&ts),
            median(&ts),
            overhead * 100.0,
            static_cost * 100.0,
            kiln_own * 100.0,
            if met { "met" } else { "NOT met" }
        );
        figures.push(json!({
            "project": name, "kiln_s": ks, "plain_s": ps, "static_target_s": ts,
            "overhead": overhead, "static_target_overhead": static_cost,
            "kiln_over_static_target": kiln_own, "met": met,
        }));
    }
    let report = json!({
        "schema": "kiln-bench-build/1",
        "runs": args.runs,
        "hello_runs": args.hello_runs,
        "root": ROOT,
        "first_fetch_s": first.wall.as_secs_f64(),
        "store_bytes": store_bytes,
        "download_cache_bytes": cache_bytes,
        "projects": figures,
    });
    let path = ProjectLayout::new(&repo)
        .kiln_dir()
        .join("bench")
        .join("build.json");
    kiln_core::fsx::write_atomic(&path, &kiln_core::canonical::to_vec_pretty(&report)?)?;
    println!();
    println!("figures: {}", path.display());
    Ok(())
}
