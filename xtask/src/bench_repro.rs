//! `cargo xtask bench repro`: what `repro` costs, and how fast its diff is.
//!
//! 1. `kiln repro` of testdata/hello (two kiln builds under the variations, the diff, the
//!    reports) against two plain `cargo build --release` of the same project from cold
//!    target dirs — the floor any rebuild check pays.
//! 2. The diff step alone, `kiln repro compare` on two OCI layouts, against `diffoscope`
//!    on the same pair, for a reproducible pair (hello) and a differing one (unrepro).
//!
//! With `--corpus NAME`, a real project of testdata/corpus/corpus.toml instead: `repro`
//! against two plain `cargo build --release --locked` runs, `kiln build` against one.
//!
//! Figures, not a pass/fail test: wall time and peak RSS (from `wait4`) per candidate.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Result;
use kiln_core::contract::layout::TOOLCHAINS_DIR;
use kiln_core::contract::{OutputDir, ProjectLayout};

#[derive(clap::Args)]
pub struct ReproBenchArgs {
    /// Work directory (default: a temporary directory, removed afterwards).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Measure on this project of testdata/corpus/corpus.toml instead of testdata/hello:
    /// `kiln repro` against two plain `cargo build --release --locked` runs, and one
    /// `kiln build` against one plain build (all cold, crates fetched beforehand).
    #[arg(long, value_name = "NAME")]
    corpus: Option<String>,
}

use crate::bench::Measured;

/// Runs `cmd` with its output discarded, accepting the exit codes in `ok`.
fn measured(mut cmd: Command, ok: &[i32]) -> Result<Measured> {
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    crate::bench::run_measured_accepting(cmd, ok)
}

/// A copy of `testdata/<name>` in `dir` with `toml` as its kiln.toml and the repository's
/// toolchain locks (shared with `bench cache`).
pub(crate) fn project(repo: &Path, dir: &Path, name: &str, toml: &str) -> Result<PathBuf> {
    let p = dir.join(name);
    let _ = std::fs::remove_dir_all(&p);
    kiln_repro::copy_project(&repo.join("testdata").join(name), &p, None)?;
    std::fs::write(ProjectLayout::new(&p).kiln_toml(), toml)?;
    let locks = repo.join(TOOLCHAINS_DIR);
    kiln_repro::copy_project(&locks, &p.join(TOOLCHAINS_DIR), None)?;
    Ok(p)
}

pub(crate) const HELLO: &str = "[project]\nsource_date_epoch = 1700000000\n\n[[image]]\nname = \"hello\"\npackage = \"hello\"\nbinaries = [\"hello\"]\n\n[[image.files]]\nsource = \"greeting.txt\"\npath = \"/etc/hello/greeting.txt\"\n";
const UNREPRO: &str = "[project]\nsource_date_epoch = 1700000000\n\n[[image]]\nname = \"unrepro\"\npackage = \"unrepro\"\nbinaries = [\"unrepro\"]\n\n[[image.files]]\nsource = \"note.txt\"\npath = \"/etc/unrepro/note.txt\"\n";

pub fn repro(args: &ReproBenchArgs) -> Result<()> {
    let repo = crate::util::repo_root()?;
    let work = crate::bench::WorkDir::new(args.dir.as_deref(), "kiln-bench-repro-")?;
    let dir = work.path.clone();
    let kiln = std::env::current_exe()?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    if let Some(name) = &args.corpus {
        return corpus(&repo, &dir, name, &kiln, Path::new(&cargo));
    }
    let mut rows: Vec<(String, Measured)> = Vec::new();

    let hello = project(&repo, &dir, "hello", HELLO)?;
    let unrepro = project(&repo, &dir, "unrepro", UNREPRO)?;
    // Warm the shared crate cache, so neither side pays the network.
    let mut fetch = kiln_core::process::command(&kiln);
    fetch.arg("-C").arg(&hello).arg("fetch");
    measured(fetch, &[0])?;

    eprintln!("bench repro: two plain cargo builds of hello");
    let mut plain = Duration::ZERO;
    let mut plain_rss = 0;
    for i in 1..=2 {
        let mut c = kiln_core::process::command(&cargo);
        c.args(["build", "--release", "--locked", "--manifest-path"])
            .arg(hello.join("Cargo.toml"))
            .arg("--target-dir")
            .arg(dir.join(format!("plain-{i}")));
        let m = measured(c, &[0])?;
        plain += m.wall;
        plain_rss = plain_rss.max(m.max_rss_kib);
    }
    rows.push((
        "2 × cargo build --release (hello)".into(),
        Measured {
            wall: plain,
            max_rss_kib: plain_rss,
            code: 0,
        },
    ));

    eprintln!("bench repro: kiln repro of hello and of unrepro");
    for p in [&hello, &unrepro] {
        let name = p
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let mut c = kiln_core::process::command(&kiln);
        c.arg("-C")
            .arg(p)
            .arg("repro")
            .arg("--out")
            .arg(dir.join(format!("repro-{name}")));
        rows.push((format!("kiln repro ({name})"), measured(c, &[0])?));
    }

    eprintln!("bench repro: the diff step against diffoscope on the same layouts");
    for name in ["hello", "unrepro"] {
        let trees = dir.join(format!("repro-{name}/trees"));
        let (a, b) = (
            OutputDir::new(trees.join("a").join(name)).oci(),
            OutputDir::new(trees.join("b").join(name)).oci(),
        );
        // Best of five: both finish in well under a second, so process start-up and the
        // page cache would otherwise dominate one sample.
        let best = |make: &dyn Fn() -> Command, ok: &[i32]| -> Result<Measured> {
            let mut best: Option<Measured> = None;
            for _ in 0..5 {
                let m = measured(make(), ok)?;
                if best.as_ref().is_none_or(|b| m.wall < b.wall) {
                    best = Some(m);
                }
            }
            Ok(best.expect("five samples"))
        };
        let cmp_out = dir.join(format!("cmp-{name}"));
        let k = best(
            &|| {
                let mut c = kiln_core::process::command(&kiln);
                c.args(["repro", "compare"])
                    .arg(&a)
                    .arg(&b)
                    .arg("--out")
                    .arg(&cmp_out);
                c
            },
            &[0],
        )?;
        let report: serde_json::Value =
            serde_json::from_slice(&std::fs::read(cmp_out.join("report.json"))?)?;
        let kiln_verdict = if report["ratio"]["artifacts"]["value"] == 1.0 {
            "same"
        } else {
            "differ"
        };
        if crate::util::on_path("diffoscope") {
            // Contents only: the varied umask gives build B's layout directories other
            // modes, which diffoscope would otherwise report (and kiln does not compare).
            let m = best(
                &|| {
                    let mut d = kiln_core::process::command("diffoscope");
                    d.args([
                        "--no-progress",
                        "--exclude-directory-metadata=recursive",
                        "--text",
                        "/dev/null",
                    ])
                    .arg(&a)
                    .arg(&b);
                    d
                },
                &[0, 1],
            )?;
            let verdict = if m.code == 0 { "same" } else { "differ" };
            rows.push((
                format!("kiln repro compare, layouts ({name}: {kiln_verdict})"),
                k,
            ));
            rows.push((format!("diffoscope, layouts ({name}: {verdict})"), m));
        } else {
            rows.push((format!("kiln repro compare, layouts ({name})"), k));
            eprintln!("(diffoscope not installed: skipping it)");
        }
    }

    // Milliseconds: the diff step takes a few, which seconds to two places would hide.
    println!(
        "{:<44} {:>10} {:>13}",
        "candidate", "wall ms", "peak RSS MiB"
    );
    for (name, m) in &rows {
        println!(
            "{name:<44} {:>10.1} {:>13.1}",
            m.wall.as_secs_f64() * 1e3,
            m.max_rss_kib as f64 / 1024.0
        );
    }
    let find = |prefix: &str| {
        rows.iter()
            .find(|(n, _)| n.starts_with(prefix))
            .map(|(_, m)| m.wall.as_secs_f64())
    };
    if let (Some(r), Some(p)) = (find("kiln repro (hello)"), find("2 × cargo")) {
        println!("repro / two plain builds (hello): {:.2}×", r / p);
    }
    for name in ["hello", "unrepro"] {
        if let (Some(k), Some(d)) = (
            find(&format!("kiln repro compare, layouts ({name}")),
            find(&format!("diffoscope, layouts ({name}")),
        ) {
            println!(
                "diffoscope / kiln compare ({name}): {:.1}× (target ≥ 10×)",
                d / k
            );
        }
    }
    Ok(())
}

/// A project of testdata/corpus/corpus.toml, laid out for a bench.
pub(crate) struct CorpusProject {
    pub(crate) entry: kiln_corpus::Entry,
    /// The host's toolchain lock (the one the project was given).
    pub(crate) lock: kiln_toolchain::ToolchainLock,
    /// The project: the published crate, its kiln.toml, the toolchain lock.
    pub(crate) project: PathBuf,
    /// The work directory: the verified `.crate` in `crates/`, and `cargo-home`, the plain
    /// builds' cargo home.
    pub(crate) work: PathBuf,
}

/// Prepares corpus project `name` under `dir/name`: fetches the published crate (checked
/// against its pinned sha256) into `dir/work`, writes its kiln.toml and locks the toolchain
/// (shared with `bench cache`).
pub(crate) fn prepare_corpus(repo: &Path, dir: &Path, name: &str) -> Result<CorpusProject> {
    let target = kiln_build::host_target()?;
    let lock_file = ProjectLayout::new(repo).toolchain_lock(&target);
    let lock = kiln_toolchain::ToolchainLock::read(&lock_file)?;
    let corpus_file = repo.join(kiln_corpus::CORPUS_FILE);
    let corpus = kiln_corpus::Corpus::load(&corpus_file)?;
    let entry = corpus.select(&[name.to_string()])?[0].clone();
    // Sources outside any repository or workspace (the bench dir is a temporary one).
    let work = dir.join("work");
    let krate = kiln_corpus::obtain(&entry, &corpus_file, &work)?;
    let project = kiln_corpus::lay_out(&entry, &krate, &lock_file, None, &dir.join(name))?;
    Ok(CorpusProject {
        entry,
        lock,
        project,
        work,
    })
}

/// `bench repro --corpus NAME`: the targets are repro ≤ 1.10 × two plain builds
/// and kiln build ≤ 1.05 × one plain build.
fn corpus(repo: &Path, dir: &Path, name: &str, kiln: &Path, cargo: &Path) -> Result<()> {
    let CorpusProject {
        entry,
        lock,
        project,
        work,
    } = prepare_corpus(repo, dir, name)?;
    let cargo_home = work.join("cargo-home");
    let manifest = project.join("Cargo.toml");
    let plain_cmd = |target_dir: &Path| {
        let mut c = kiln_core::process::command(cargo);
        c.args(["build", "--release", "--locked", "--manifest-path"])
            .arg(&manifest)
            .args(["--package", &entry.name])
            .env("CARGO_HOME", &cargo_home)
            .env("CARGO_TARGET_DIR", target_dir);
        if let Some(t) = &lock.rustup_toolchain {
            c.env("RUSTUP_TOOLCHAIN", t)
                .env_remove("RUSTUP_TOOLCHAIN_SOURCE");
        }
        if !entry.features.is_empty() {
            c.args(["--features", &entry.features.join(",")]);
        }
        c
    };
    // The network, untimed: the plain builds' cargo home and kiln's.
    let mut f = kiln_core::process::command(cargo);
    f.args(["fetch", "--locked", "--manifest-path"])
        .arg(&manifest)
        .env("CARGO_HOME", &cargo_home);
    measured(f, &[0])?;
    let mut f = kiln_core::process::command(kiln);
    f.arg("-C").arg(&project).arg("fetch");
    measured(f, &[0])?;

    let mut rows: Vec<(String, Measured)> = Vec::new();
    let mut plain = Vec::new();
    for i in 1..=2 {
        eprintln!("bench repro: plain cargo build {i} of {name}");
        let t = dir.join(format!("plain-{i}"));
        let _ = std::fs::remove_dir_all(&t);
        let m = measured(plain_cmd(&t), &[0])?;
        plain.push(m.wall.as_secs_f64());
        rows.push((format!("cargo build --release --locked #{i}"), m));
        let _ = std::fs::remove_dir_all(&t);
    }
    eprintln!("bench repro: kiln build of {name}");
    let mut b = kiln_core::process::command(kiln);
    // The default build root: where `kiln fetch` put the crates (its target dir is cold).
    b.arg("-C")
        .arg(&project)
        .args(["build", "--offline", "--out"])
        .arg(dir.join("out"));
    let build = measured(b, &[0])?;
    let build_s = build.wall.as_secs_f64();
    rows.push(("kiln build".into(), build));
    let _ = std::fs::remove_dir_all(project.join("target"));
    eprintln!("bench repro: kiln repro of {name}");
    let mut r = kiln_core::process::command(kiln);
    r.arg("-C")
        .arg(&project)
        .arg("repro")
        .arg("--out")
        .arg(dir.join("repro"));
    let repro = measured(r, &[0])?;
    let repro_s = repro.wall.as_secs_f64();
    rows.push(("kiln repro".into(), repro));

    println!("{name} {}", entry.version);
    println!(
        "{:<40} {:>10} {:>13}",
        "candidate", "wall s", "peak RSS MiB"
    );
    for (n, m) in &rows {
        println!(
            "{n:<40} {:>10.1} {:>13.1}",
            m.wall.as_secs_f64(),
            m.max_rss_kib as f64 / 1024.0
        );
    }
    let two = plain[0] + plain[1];
    let one = two / 2.0;
    println!(
        "repro / two plain builds: {:.3}× (target ≤ 1.10×)",
        repro_s / two
    );
    println!(
        "kiln build / one plain build (mean of two): {:.3}× (target ≤ 1.05×)",
        build_s / one
    );
    Ok(())
}
