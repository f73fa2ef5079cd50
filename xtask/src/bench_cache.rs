//! `cargo xtask bench cache`: what the attested build cache saves, on a corpus project
//! (bat, 168 crates, by default) and on testdata/hello.
//!
//! 1. The kiln binary is the release build of kiln-cli (`cargo build --release -p
//!    kiln-cli`, then `<target>/release/kiln`): the cache's figures are dominated by
//!    hashing and image packing, which the dev profile would slow down.
//! 2. Each project is prepared as `bench repro` prepares it (the corpus crate fetched by
//!    its pinned sha256, its kiln.toml, the toolchain lock; hello as testdata/hello plus a
//!    kiln.toml) and `kiln fetch`ed, untimed: every timed build runs `--offline`.
//!    A throwaway signing key comes from `kiln keygen`.
//! 3. Per run, each timed as its own child process (wall from `Instant`, peak RSS from
//!    `wait4(2)`), `sync(2)` before each:
//!    - cold: an empty cache dir and no cargo target dir in the build root
//!      (`<project>/target/kiln/root/target`): `kiln build --cache` misses, compiles,
//!      stores (stderr must say `cache: miss` and `cache: stored`);
//!    - warm: the output directory removed (the cache and the build root kept, as on a
//!      branch switched back), the same command again: a hit, the compile skipped
//!      (stderr must say `cache: hit`, else the bench fails), the image packed from the
//!      cached binaries;
//!    - no-op: the same command once more, nothing changed: answered from the last
//!      build's record (stderr must say `cache: no-op`);
//!    - warm from the registry: the local store and the outputs removed (another machine
//!      sharing the registry): the entry is pulled from a `docker-registry` on 127.0.0.1,
//!      verified and used (stderr must say `from registry`). Every cached build names that
//!      registry (`--cache-registry`, one repository per run), so cold also pushes;
//!
//!    then, per run, `kiln build --no-cache` with the build root's target dir removed: the
//!    full compile the cache replaces.
//! 4. Every image digest of a project must be the same (a hit gives the image a compile
//!    gives). The targets, printed next to the figures, met or not: warm ≤ 3 s end to
//!    end (image packing included) and the no-op ≤ 0.2 s.
//!
//! The table goes to stdout, the figures to target/kiln/bench/cache.json.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, Result, bail};
use kiln_core::contract::ProjectLayout;
use serde_json::{Value, json};

use crate::bench::{Measured, log_tail, median, run_logged, run_measured};

/// Arguments of `bench cache`.
#[derive(clap::Args, Debug, Clone)]
pub struct CacheBenchArgs {
    /// The project of testdata/corpus/corpus.toml to measure (testdata/hello is measured too).
    #[arg(long, value_name = "NAME", default_value = "bat")]
    pub corpus: String,
    /// Runs of each measurement (min and median are reported).
    #[arg(long, default_value_t = 3)]
    pub runs: u32,
    /// Work directory, kept afterwards (default: a temporary directory, removed).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// The targets.
const WARM_TARGET_S: f64 = 3.0;
const NOOP_TARGET_S: f64 = 0.2;
/// The figures file, under `target/kiln/bench/`.
const REPORT_FILE: &str = "cache.json";

/// The timed steps, in table order.
const STEPS: [Step; 5] = [
    Step::Cold,
    Step::Warm,
    Step::Noop,
    Step::WarmRegistry,
    Step::NoCache,
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Step {
    Cold,
    Warm,
    Noop,
    WarmRegistry,
    NoCache,
}

impl Step {
    fn id(self) -> &'static str {
        match self {
            Step::Cold => "cold",
            Step::Warm => "warm",
            Step::Noop => "noop",
            Step::WarmRegistry => "warm-registry",
            Step::NoCache => "no-cache",
        }
    }
    fn describe(self) -> &'static str {
        match self {
            Step::Cold => "cold: --cache, empty store (miss, compile, store)",
            Step::Warm => "warm: --cache again, outputs removed (hit, compile skipped)",
            Step::Noop => "no-op: --cache, nothing changed (last build's record)",
            Step::WarmRegistry => {
                "warm from the registry: empty local store, outputs removed (pulled, verified, hit)"
            }
            Step::NoCache => "--no-cache, cold target dir (full compile)",
        }
    }
    fn target_s(self) -> Option<f64> {
        match self {
            Step::Warm | Step::WarmRegistry => Some(WARM_TARGET_S),
            Step::Noop => Some(NOOP_TARGET_S),
            _ => None,
        }
    }
}

/// One project's samples of one step.
#[derive(Default)]
struct Samples {
    walls: Vec<f64>,
    rss_mib: Vec<f64>,
}

impl Samples {
    fn push(&mut self, m: &Measured) {
        self.walls.push(m.wall.as_secs_f64());
        self.rss_mib.push(m.max_rss_kib as f64 / 1024.0);
    }
    fn min(&self) -> f64 {
        self.walls.iter().copied().fold(f64::INFINITY, f64::min)
    }
    fn median(&self) -> f64 {
        median(&self.walls)
    }
}

/// What the bench measured of one project.
struct ProjectResult {
    name: String,
    version: String,
    steps: Vec<(Step, Samples)>,
    digest: Value,
}

/// Runs the bench and prints a table.
pub fn cache(args: &CacheBenchArgs) -> Result<()> {
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let repo = crate::util::repo_root()?;
    let work = crate::bench::WorkDir::new(args.dir.as_deref(), "kiln-bench-cache-")?;
    let dir = work.path.clone();
    let cargo = PathBuf::from(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    let kiln = release_kiln(&repo, &cargo)?;
    let logs = dir.join("logs");
    kiln_core::fsx::create_dir_all(&logs)?;

    let key_prefix = dir.join("keys/kiln");
    let key = key_prefix.with_extension("key");
    if !key.is_file() {
        let mut c = kiln_core::process::command(&kiln);
        c.arg("keygen").arg("--out").arg(&key_prefix);
        run_logged(c, &logs.join("keygen.log"))?;
    }

    eprintln!("bench cache: preparing {} and hello (untimed)", args.corpus);
    let corpus = crate::bench_repro::prepare_corpus(&repo, &dir, &args.corpus)?;
    let hello = crate::bench_repro::project(&repo, &dir, "hello", crate::bench_repro::HELLO)?;
    let projects = [
        ("hello".to_string(), "(testdata)".to_string(), hello),
        (
            corpus.entry.name.clone(),
            corpus.entry.version.clone(),
            corpus.project.clone(),
        ),
    ];
    let mut results = Vec::new();
    for (name, version, project) in &projects {
        results.push(bench_project(
            &kiln, &key, &dir, &logs, name, version, project, args.runs,
        )?);
    }

    println!();
    println!(
        "bench cache: {} run(s) per step; kiln {} (release); each build `kiln build --offline` \
         with the default sandbox, a fresh signing key; wall = the whole command (toolchain \
         check, cache lookup or compile, SBOM, image packing, signing)",
        args.runs,
        kiln.display()
    );
    println!();
    println!(
        "| project | step | wall s (min) | wall s (median) | peak RSS MiB (median) | target |"
    );
    println!("| --- | --- | ---: | ---: | ---: | --- |");
    let mut targets = Vec::new();
    for r in &results {
        for (step, s) in &r.steps {
            let target = match step.target_s() {
                Some(t) => {
                    let met = s.median() <= t;
                    targets.push(json!({
                        "project": r.name,
                        "step": step.id(),
                        "target_s": t,
                        "median_s": s.median(),
                        "met": met,
                    }));
                    format!("≤ {t} s: {}", if met { "met" } else { "NOT met" })
                }
                None => String::new(),
            };
            println!(
                "| {} {} | {} | {:.3} | {:.3} | {:.1} | {target} |",
                r.name,
                r.version,
                step.describe(),
                s.min(),
                s.median(),
                median(&s.rss_mib),
            );
        }
    }
    println!();
    for r in &results {
        let get = |want: Step| {
            r.steps
                .iter()
                .find(|(s, _)| *s == want)
                .map(|(_, s)| s.median())
                .unwrap_or(f64::NAN)
        };
        println!(
            "{}: --no-cache / warm hit {:.1}×, cold (compile + store) / --no-cache {:.3}×; image {}",
            r.name,
            get(Step::NoCache) / get(Step::Warm),
            get(Step::Cold) / get(Step::NoCache),
            r.digest.as_str().unwrap_or("?"),
        );
    }

    let report = json!({
        "schema": "kiln-bench-cache/1",
        "runs": args.runs,
        "kiln": kiln.display().to_string(),
        "projects": results.iter().map(|r| json!({
            "name": r.name,
            "version": r.version,
            "image_digest": r.digest,
            "steps": r.steps.iter().map(|(step, s)| json!({
                "step": step.id(),
                "description": step.describe(),
                "wall_s": s.walls,
                "wall_s_min": s.min(),
                "wall_s_median": s.median(),
                "peak_rss_mib": s.rss_mib,
                "target_s": step.target_s(),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "targets": targets,
    });
    let path = ProjectLayout::new(&repo)
        .kiln_dir()
        .join("bench")
        .join(REPORT_FILE);
    kiln_core::fsx::write_atomic(&path, &kiln_core::canonical::to_vec_pretty(&report)?)?;
    println!();
    println!("figures: {}", path.display());
    if args.dir.is_some() {
        println!("kept: {}", dir.display());
    }
    Ok(())
}

/// `cargo build --release -p kiln-cli`, and the binary it leaves.
pub(crate) fn release_kiln(repo: &Path, cargo: &Path) -> Result<PathBuf> {
    eprintln!("bench cache: cargo build --release -p kiln-cli");
    let mut c = kiln_core::process::command(cargo);
    c.current_dir(repo)
        .args(["build", "--release", "--quiet", "-p", "kiln-cli"]);
    let status = c.status().with_context(|| format!("starting {c:?}"))?;
    if !status.success() {
        bail!("{c:?} failed ({status})");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join("target"));
    let kiln = target.join("release/kiln");
    if !kiln.is_file() {
        bail!("{} is missing after the release build", kiln.display());
    }
    Ok(kiln)
}

/// The cold, warm and no-op cached builds and the `--no-cache` build of one project.
#[allow(clippy::too_many_arguments)]
fn bench_project(
    kiln: &Path,
    key: &Path,
    dir: &Path,
    logs: &Path,
    name: &str,
    version: &str,
    project: &Path,
    runs: u32,
) -> Result<ProjectResult> {
    let layout = ProjectLayout::new(project);
    // The build root's cargo target dir (kiln-hermetic's `BuildRoot::target_dir`).
    let target_dir = layout.build_root().join("target");
    let store = dir.join(format!("cache-{name}"));
    let out = dir.join(format!("out-{name}"));
    // The registry tier: a docker-registry on 127.0.0.1, one repository per run so each
    // cold build starts from an empty registry too.
    let registry_exe = kiln_core::process::which("docker-registry").context(
        "docker-registry is not installed (apt-get install docker-registry; `cargo xtask test` installs it too)",
    )?;
    let registry =
        crate::bench_push::Registry::start(&registry_exe, &dir.join(format!("registry-{name}")))?;
    let kiln_cmd = || {
        let mut c = kiln_core::process::command(kiln);
        for v in ["KILN_SIGNING_KEY", "KILN_CACHE_DIR", "GITHUB_ACTIONS"] {
            c.env_remove(v);
        }
        c.arg("-C").arg(project);
        c
    };
    // The network, untimed: every timed build is --offline.
    eprintln!("bench cache: kiln fetch of {name} (untimed)");
    let mut f = kiln_cmd();
    f.arg("fetch");
    run_logged(f, &logs.join(format!("{name}-fetch.log")))?;

    let build = |step: Step, run: u32| -> Result<(Measured, Value)> {
        let log = logs.join(format!("{name}-{}-{run}.log", step.id()));
        let json_out = logs.join(format!("{name}-{}-{run}.json", step.id()));
        let mut c = kiln_cmd();
        c.args(["build", "--offline", "--json", "--key"])
            .arg(key)
            .arg("--out")
            .arg(&out);
        if step == Step::NoCache {
            c.arg("--no-cache");
        } else {
            c.arg("--cache").arg("--cache-dir").arg(&store);
            c.args(["--cache-insecure-http", "--cache-registry"])
                .arg(format!("{}/cache-{name}-{run}", registry.addr));
        }
        c.stdin(Stdio::null())
            .stdout(kiln_core::fsx::create_log(&json_out)?)
            .stderr(kiln_core::fsx::create_log(&log)?);
        // SAFETY: sync(2) takes no arguments and cannot fail.
        unsafe { libc::sync() };
        let m = run_measured(c).map_err(|e| e.context(log_tail(&log)))?;
        let err = std::fs::read_to_string(&log)?;
        let summary: Value = serde_json::from_slice(&std::fs::read(&json_out)?)
            .with_context(|| format!("parsing {}", json_out.display()))?;
        let digest = match &summary {
            Value::Array(a) => Value::Array(a.iter().map(|s| s["digest"].clone()).collect()),
            s => s["digest"].clone(),
        };
        let expect: &[&str] = match step {
            Step::Cold => &["cache: miss", "cache: stored"],
            Step::Warm => &["cache: hit", "compile skipped"],
            Step::Noop => &["cache: no-op"],
            Step::WarmRegistry => &["cache: hit", "from registry", "compile skipped"],
            Step::NoCache => &[],
        };
        for e in expect {
            if !err.contains(e) {
                bail!(
                    "{name}: {} build #{run}: stderr has no `{e}`\n{}",
                    step.id(),
                    log_tail(&log)
                );
            }
        }
        if step == Step::NoCache && err.contains("cache:") {
            bail!(
                "{name}: --no-cache build #{run} used the cache\n{}",
                log_tail(&log)
            );
        }
        eprintln!(
            "bench cache: {name} {} #{run}: {:.3} s",
            step.id(),
            m.wall.as_secs_f64()
        );
        Ok((m, digest))
    };

    let mut samples: Vec<(Step, Samples)> =
        STEPS.iter().map(|s| (*s, Samples::default())).collect();
    let mut record = |step: Step, m: &Measured| {
        if let Some((_, s)) = samples.iter_mut().find(|(s, _)| *s == step) {
            s.push(m);
        }
    };
    let mut digests: Vec<(String, Value)> = Vec::new();
    for run in 1..=runs {
        let _ = std::fs::remove_dir_all(&store);
        let _ = std::fs::remove_dir_all(&target_dir);
        for step in [Step::Cold, Step::Warm, Step::Noop, Step::WarmRegistry] {
            if step == Step::WarmRegistry {
                // Another machine: only the registry has the entry.
                let _ = std::fs::remove_dir_all(&store);
            }
            if step != Step::Noop {
                // Cold and warm builds have no outputs yet (warm: a checkout that has the
                // cache but not the outputs); else the last build's record answers them
                // as a no-op.
                let _ = std::fs::remove_dir_all(&out);
            }
            let (m, d) = build(step, run)?;
            record(step, &m);
            digests.push((format!("{} #{run}", step.id()), d));
        }
    }
    for run in 1..=runs {
        let _ = std::fs::remove_dir_all(&target_dir);
        let (m, d) = build(Step::NoCache, run)?;
        record(Step::NoCache, &m);
        digests.push((format!("no-cache #{run}"), d));
    }
    let digest = digests[0].1.clone();
    if let Some((which, d)) = digests.iter().find(|(_, d)| *d != digest) {
        bail!(
            "{name}: the {which} build gave image {d}, the first cold build {digest}: a cache hit must give the image a compile gives"
        );
    }
    Ok(ProjectResult {
        name: name.to_string(),
        version: version.to_string(),
        steps: samples,
        digest,
    })
}
