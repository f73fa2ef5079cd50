//! Two builds from scratch, the second under varied conditions.
//!
//! Each build is the kiln CLI itself run as a subprocess on its own copy of the project,
//! with its own build root (HOME, cargo home, target dir) and output directory, so every
//! variation — environment, umask, hostname, CPU affinity, clock — applies to the whole
//! kiln process and whatever it starts. The only thing the two builds share is the set of
//! fetched `.crate` files, checksummed against `Cargo.lock` (copied into each root).
//!
//! [`rebuild`] reads as its steps; `scratch` owns the work directory and the copies,
//! `vary` the variations of build B.

mod scratch;
mod vary;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use kiln_core::contract::ProjectLayout;

use crate::error::{Error, Result, io};
use crate::explain::Hints;
use crate::git::GitIdentity;
use crate::report::{BuildFailure, CompareContext};
use crate::variations::{VariationRecord, Variations};

pub use scratch::{Rng, WorkDir, copy_project, enclosing_workspace, work_dir};

use scratch::remove_dir;

/// What to rebuild and where.
#[derive(Debug, Clone)]
pub struct RebuildPlan {
    /// The kiln CLI (normally `std::env::current_exe()`).
    pub kiln: PathBuf,
    pub project: PathBuf,
    /// Images to build; empty means all of kiln.toml's.
    pub images: Vec<String>,
    pub variations: Variations,
    /// Scratch space for the copies and build roots (created empty, removed after). `None`:
    /// a fresh directory under the temporary directory that no Cargo workspace or git
    /// repository encloses (see [`work_dir`]). A directory given here is checked the same way.
    pub work: Option<PathBuf>,
    /// Where the two output trees go (`<trees>/a`, `<trees>/b`), kept for `compare`.
    pub trees: PathBuf,
    /// Where the fetch and build logs go (kept, and quoted in the report on failure).
    pub logs: PathBuf,
}

/// The result of the two builds: the trees to compare and what is known about them.
#[derive(Debug, Clone)]
pub struct Rebuilt {
    pub tree_a: PathBuf,
    pub tree_b: PathBuf,
    pub context: CompareContext,
}

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn quiet_ok(cmd: &mut Command) -> bool {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Copies the fetched inputs (registry index and `.crate` files, not the unpacked sources)
/// into a build root's cargo home.
fn seed_cargo_home(registry: &Path, root: &Path) -> Result<()> {
    if !registry.is_dir() {
        return Ok(());
    }
    let dest = root.join("cargo-home/registry");
    for sub in ["cache", "index"] {
        let from = registry.join(sub);
        if from.is_dir() {
            copy_project(&from, &dest.join(sub), None)?;
        }
    }
    Ok(())
}

/// One build: its copy of the project, its build root, its output tree and its log.
struct Side {
    /// The directory holding the copy and the root (for B also its HOME); A's is removed
    /// once A is built.
    dir: PathBuf,
    project: PathBuf,
    root: PathBuf,
    tree: PathBuf,
    log: PathBuf,
}

/// What both builds start from: the project, its source identity, the fetched crates and
/// the environment every build gets.
struct Inputs {
    project: PathBuf,
    /// The source identity both copies get (the copies leave `.git` behind).
    identity: Option<GitIdentity>,
    /// The cargo registry the one fetch filled.
    registry: PathBuf,
    base_env: Vec<(String, OsString)>,
}

impl Inputs {
    /// Gives a copied project its source identity and its root the fetched crates, so a
    /// build that asks git or cargo sees what the original project would.
    fn populate(&self, side: &Side) -> Result<()> {
        if let Some(id) = &self.identity {
            id.plant(&side.dir.join("project"), &side.dir.join("git"))?;
        }
        seed_cargo_home(&self.registry, &side.root)
    }
}

/// Builds the project twice — plainly, then with the variations — and returns the two
/// output trees with everything the diff needs to know to explain them.
pub fn rebuild(plan: &RebuildPlan, progress: &dyn Fn(&str)) -> Result<Rebuilt> {
    let v = &plan.variations;
    let (project, expected, sde) = load_project(plan)?;
    let work_guard = work_dir(plan.work.as_deref())?;
    let logs = fresh_outputs(plan)?;
    let identity = GitIdentity::of(&project);
    let registry = fetch_once(plan, &project, &logs, progress)?;
    let inputs = Inputs {
        base_env: base_env(sde.value),
        project,
        identity,
        registry,
    };
    let (a, b) = sides(plan, work_guard.path(), &logs, inputs.identity.as_ref())?;
    let mut records = Vec::new();
    let mut hints = first_hints(v, &inputs.project);

    // The two builds run side by side when nothing forces an order: their work trees
    // differ (build_path) and B's clock is shifted (so a wall-clock leak still differs
    // even when both builds embed the same second). Then `repro` costs about what two
    // plain builds cost (B, often pinned to one CPU, would alone be the slowest build),
    // and A and B competing for the CPUs is one more perturbation. Otherwise A runs first
    // and B is prepared after it, in A's directory.
    let (failed_a, failed_b, home_b, mount);
    let mut side_by_side = false;
    if v.build_path.enabled {
        let pb = prepare_b(plan, &inputs, &a, &b, &mut records, &mut hints)?;
        let (env, home, argv, shift_secs) = (pb.env, pb.home, pb.argv, pb.shift_secs);
        mount = pb.mount;
        side_by_side = shift_secs != 0;
        let (ra, rb) = if side_by_side {
            progress(&format!(
                "builds A in {} and B in {} (varied), side by side",
                a.project.display(),
                b.project.display()
            ));
            std::thread::scope(|s| {
                let ta = s.spawn(|| build_a(plan, &inputs, &a));
                let rb = build_b(&argv, &env, &b, shift_secs);
                let ra = ta.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
                (ra, rb)
            })
        } else {
            progress(&format!("build A in {}", a.project.display()));
            let ra = build_a(plan, &inputs, &a);
            progress(&format!("build B in {} (varied)", b.project.display()));
            (ra, build_b(&argv, &env, &b, shift_secs))
        };
        let ((fa, ha), (fb, hb)) = (ra?, rb?);
        hints.absorb(ha);
        hints.absorb(hb);
        (failed_a, failed_b, home_b) = (fa, fb, home);
        remove_dir(&a.dir)?;
    } else {
        progress(&format!("build A in {}", a.project.display()));
        let (fa, ha) = build_a(plan, &inputs, &a)?;
        hints.absorb(ha);
        remove_dir(&a.dir)?;
        let pb = prepare_b(plan, &inputs, &a, &b, &mut records, &mut hints)?;
        let (env, home, argv, shift_secs) = (pb.env, pb.home, pb.argv, pb.shift_secs);
        mount = pb.mount;
        progress(&format!("build B in {} (varied)", b.project.display()));
        let (fb, hb) = build_b(&argv, &env, &b, shift_secs)?;
        hints.absorb(hb);
        (failed_a, failed_b, home_b) = (fa, fb, home);
    }
    // B's HOME is a build directory too, named after B's copy and root as it always was.
    hints.build_dirs.push(home_b.display().to_string());
    drop(mount);
    drop(work_guard);

    records.sort_by(|x, y| x.name.cmp(&y.name));
    records.insert(0, VariationRecord::new("rebuild", "applied", format!("two builds from scratch: separate copies, build roots, cargo homes and target dirs; only the fetched, checksummed crates shared; {}", if side_by_side { "run side by side, competing for the CPUs" } else { "run one after the other" })));
    Ok(Rebuilt {
        tree_a: a.tree,
        tree_b: b.tree,
        context: CompareContext {
            mode: "rebuild".into(),
            a_label: "build A (plain)".into(),
            b_label: "build B (varied)".into(),
            hints,
            variations: records,
            expected,
            failed_a,
            failed_b,
        },
    })
}

/// Loads kiln.toml once, for what both builds must agree on: the images expected (all of
/// kiln.toml's when none are named), where the project really is (canonical, so the
/// copies' paths are the only build paths that differ) and the SOURCE_DATE_EPOCH both
/// builds get.
fn load_project(
    plan: &RebuildPlan,
) -> Result<(PathBuf, Vec<String>, kiln_hermetic::SourceDateEpoch)> {
    let config = kiln_config::Config::load(&plan.project)?;
    let expected: Vec<String> = if plan.images.is_empty() {
        config.images.iter().map(|i| i.name.clone()).collect()
    } else {
        plan.images.clone()
    };
    let project = config
        .root
        .canonicalize()
        .map_err(io("cannot resolve", &config.root))?;
    let sde = kiln_hermetic::SourceDateEpoch::resolve(
        std::env::var("SOURCE_DATE_EPOCH").ok().as_deref(),
        &project,
        config.project.source_date_epoch,
    )
    .map_err(|e| Error::Variations {
        path: ProjectLayout::new(&project).kiln_toml(),
        // kiln-repro's errors carry their fix in the message.
        message: match kiln_core::Hint::hint(&e) {
            Some(fix) => format!("{e}\n  fix: {fix}"),
            None => e.to_string(),
        },
    })?;
    Ok((project, expected, sde))
}

/// Removes the previous run's trees and logs (a stale tree must not pass for this run's)
/// and makes the log directory; returns it, canonical.
fn fresh_outputs(plan: &RebuildPlan) -> Result<PathBuf> {
    remove_dir(&plan.trees)?;
    remove_dir(&plan.logs)?;
    std::fs::create_dir_all(&plan.logs).map_err(io("cannot create", &plan.logs))?;
    plan.logs
        .canonicalize()
        .map_err(io("cannot resolve", &plan.logs))
}

/// Fetches the locked crates once, before either build: the one networked step, so both
/// builds can run `--offline` on the same checksummed inputs. Returns the registry the
/// builds' cargo homes are seeded from.
fn fetch_once(
    plan: &RebuildPlan,
    project: &Path,
    logs: &Path,
    progress: &dyn Fn(&str),
) -> Result<PathBuf> {
    progress("fetching locked crates once (the inputs both builds share)");
    let fetch_log = logs.join("fetch.log");
    let mut fetch: Vec<OsString> = vec![
        plan.kiln.clone().into(),
        "-C".into(),
        project.into(),
        "fetch".into(),
    ];
    for i in &plan.images {
        fetch.extend(["--image".into(), i.into()]);
    }
    let fetch_side = Side {
        dir: PathBuf::new(),
        project: project.to_path_buf(),
        root: PathBuf::new(),
        tree: PathBuf::new(),
        log: fetch_log.clone(),
    };
    if let Some(why) = run_build(&fetch, &[], &fetch_side)? {
        return Err(Error::Failed {
            command: "kiln fetch".into(),
            status: format!("{}: {}", why.status, why.error.join("\n  ")),
            log: fetch_log,
        });
    }
    Ok(
        kiln_hermetic::BuildRoot::new(ProjectLayout::new(project).build_root())
            .cargo_home()
            .join("registry"),
    )
}

/// The environment both builds get: the project's SOURCE_DATE_EPOCH, and the tools that
/// outlive a HOME change (rustup finds its toolchains through RUSTUP_HOME and CARGO_HOME).
fn base_env(source_date_epoch: u64) -> Vec<(String, OsString)> {
    let mut base_env: Vec<(String, OsString)> = vec![(
        "SOURCE_DATE_EPOCH".into(),
        source_date_epoch.to_string().into(),
    )];
    let home = std::env::var_os("HOME").map(PathBuf::from);
    for (var, dir) in [("RUSTUP_HOME", ".rustup"), ("CARGO_HOME", ".cargo")] {
        let val = std::env::var_os(var)
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(dir)).filter(|p| p.is_dir()));
        if let Some(val) = val {
            base_env.push((var.into(), val.into()));
        }
    }
    base_env
}

/// Where each build happens: in the same directory one after the other, or (the build
/// path variation) in two directories of different depth; each writes its own output tree
/// under `plan.trees` and its own log.
fn sides(
    plan: &RebuildPlan,
    work: &Path,
    logs: &Path,
    identity: Option<&GitIdentity>,
) -> Result<(Side, Side)> {
    let subdir = identity.map(|i| i.subdir.clone()).unwrap_or_default();
    let trees = {
        std::fs::create_dir_all(&plan.trees).map_err(io("cannot create", &plan.trees))?;
        plan.trees
            .canonicalize()
            .map_err(io("cannot resolve", &plan.trees))?
    };
    let (dir_a, dir_b) = if plan.variations.build_path.enabled {
        (work.join("a"), work.join("b/varied-build-path"))
    } else {
        (work.join("build"), work.join("build"))
    };
    let a = Side {
        project: dir_a.join("project").join(&subdir),
        root: dir_a.join("root"),
        tree: trees.join("a"),
        log: logs.join("build-a.log"),
        dir: dir_a,
    };
    let b = Side {
        project: dir_b.join("project").join(&subdir),
        root: dir_b.join("root"),
        tree: trees.join("b"),
        log: logs.join("build-b.log"),
        dir: dir_b,
    };
    Ok((a, b))
}

/// What the diff is told before any build: the time, the project's own file names (their
/// order in an artifact is a directory order) and, when the hostname varies, this host's
/// name (so it is recognized in A's artifacts).
fn first_hints(v: &Variations, project: &Path) -> Hints {
    let mut hints = Hints {
        now: now(),
        source_names: source_names(project),
        ..Default::default()
    };
    if v.hostname.enabled
        && let Ok(h) = std::fs::read_to_string("/proc/sys/kernel/hostname")
        && !h.trim().is_empty()
    {
        hints.host_names.push(h.trim().to_string());
    }
    hints
}

/// Build A: plain, on a plain copy. Its time and directories become hints (a timestamp or
/// path of A's in an artifact is recognized as one); its directory is removed afterwards,
/// so B may reuse the same path when the build path does not vary.
fn build_a(
    plan: &RebuildPlan,
    inputs: &Inputs,
    a: &Side,
) -> Result<(Option<BuildFailure>, SideHints)> {
    copy_project(&inputs.project, &a.project, None)?;
    inputs.populate(a)?;
    let started_a = now();
    let failed_a = run_build(&kiln_build_args(plan, a), &inputs.base_env, a)?;
    let hints = SideHints {
        build_time: (started_a, now()),
        build_dirs: [
            a.project.display().to_string(),
            a.root.display().to_string(),
        ],
    };
    Ok((failed_a, hints))
}

/// Build B: the varied command line and environment [`vary`] made. Its time, shifted by
/// the clock variation as B saw it, and its directories become hints.
fn build_b(
    argv: &[OsString],
    env: &[(String, OsString)],
    b: &Side,
    shift_secs: i64,
) -> Result<(Option<BuildFailure>, SideHints)> {
    let started_b = now();
    let failed_b = run_build(argv, env, b)?;
    let shifted = |t: u64| t.saturating_add_signed(shift_secs);
    let hints = SideHints {
        build_time: (shifted(started_b), shifted(now())),
        build_dirs: [
            b.project.display().to_string(),
            b.root.display().to_string(),
        ],
    };
    Ok((failed_b, hints))
}

/// What one build adds to the diff's hints: its time window (as the build saw the clock)
/// and its two directories. Returned rather than pushed, so the builds can run on two
/// threads and the hints still come out in A, B order.
struct SideHints {
    build_time: (u64, u64),
    build_dirs: [String; 2],
}

impl Hints {
    fn absorb(&mut self, side: SideHints) {
        self.build_times.push(side.build_time);
        self.build_dirs.extend(side.build_dirs);
    }
}

/// Build B, ready to start: its copy (on disorderfs when file order varies), cargo home,
/// environment and command line — everything [`vary`] changes, with the records and hints
/// that say so.
struct PreparedB {
    argv: Vec<OsString>,
    env: Vec<(String, OsString)>,
    home: PathBuf,
    shift_secs: i64,
    mount: Option<scratch::Mount>,
}

fn prepare_b(
    plan: &RebuildPlan,
    inputs: &Inputs,
    a: &Side,
    b: &Side,
    records: &mut Vec<VariationRecord>,
    hints: &mut Hints,
) -> Result<PreparedB> {
    let v = &plan.variations;
    records.push(vary::build_path(v, a, b));
    let mount = vary::copy_project_b(v, &inputs.project, b, records, hints)?;
    inputs.populate(b)?;
    let (env, home) = vary::environment(v, &inputs.base_env, b, records, hints)?;
    let (argv, shift_secs) = vary::command(plan, b, records, hints);
    Ok(PreparedB {
        argv,
        env,
        home,
        shift_secs,
        mount,
    })
}

/// Runs `argv` (program first) with `env`, logging to `side.log`; says why it failed.
fn run_build(
    argv: &[OsString],
    env: &[(String, OsString)],
    side: &Side,
) -> Result<Option<BuildFailure>> {
    let log = kiln_core::fsx::create_log(&side.log).map_err(io("cannot create", &side.log))?;
    let log2 = log.try_clone().map_err(io("cannot create", &side.log))?;
    let mut cmd = kiln_core::process::command(&argv[0]);
    cmd.args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let shown = argv
        .iter()
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    let status = cmd.status().map_err(|source| Error::Spawn {
        command: shown,
        source,
    })?;
    if status.success() {
        return Ok(None);
    }
    let text = std::fs::read(&side.log).unwrap_or_default();
    Ok(Some(BuildFailure {
        status: status.to_string(),
        log: side.log.display().to_string(),
        error: error_lines(&String::from_utf8_lossy(&text)),
    }))
}

/// The lines of a build log that say what failed: each `error` line with the lines that
/// belong to it (up to a blank line or the next message), at most [`MAX_ERROR_LINES`];
/// the log's last lines when it has no `error` line.
pub fn error_lines(log: &str) -> Vec<String> {
    const TAIL: usize = 20;
    let lines: Vec<&str> = log.lines().map(str::trim_end).collect();
    let is_msg = |l: &str| {
        let t = l.trim_start();
        t.starts_with("error") || t.starts_with("warning") || t.starts_with("kiln: ")
    };
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < lines.len() && out.len() < MAX_ERROR_LINES {
        if lines[i].trim_start().starts_with("error") {
            out.push(lines[i].to_string());
            let mut j = i + 1;
            while j < lines.len()
                && j - i < 12
                && !lines[j].trim().is_empty()
                && !is_msg(lines[j])
                && out.len() < MAX_ERROR_LINES
            {
                out.push(lines[j].to_string());
                j += 1;
            }
            i = j;
        } else {
            i += 1;
        }
    }
    if out.is_empty() {
        let start = lines.len().saturating_sub(TAIL);
        out = lines[start..]
            .iter()
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.to_string())
            .collect();
    }
    out
}

/// At most this many lines of a failed build's log are quoted in the report.
pub const MAX_ERROR_LINES: usize = 40;

fn kiln_build_args(plan: &RebuildPlan, side: &Side) -> Vec<OsString> {
    let mut v: Vec<OsString> = vec![
        plan.kiln.clone().into(),
        "-C".into(),
        side.project.clone().into(),
        "build".into(),
        "--json".into(),
        "--offline".into(),
        // Both sides compile: a cache hit on one side would compare the cache with itself.
        "--no-cache".into(),
    ];
    v.extend([
        "--root".into(),
        side.root.clone().into(),
        "--out".into(),
        side.tree.clone().into(),
    ]);
    for i in &plan.images {
        v.extend(["--image".into(), i.into()]);
    }
    v
}

/// The names of the project's files and directories (an order of these in an artifact is
/// a directory order; an order of other words is a hash order).
fn source_names(project: &Path) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    let mut stack = vec![project.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name == "target" || name == ".git" || out.len() > 100_000 {
                continue;
            }
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            }
            out.insert(name);
        }
    }
    out
}

/// Unix time now (0 if the clock is before 1970).
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_lines_quote_each_error_with_its_context_else_the_tail() {
        let log = "kiln: [hello] compiling hello\n   Compiling itoa v1.0.0\nerror[E0425]: cannot find value `x` in this scope\n --> src/main.rs:2:20\n  |\n2 |     println!(\"{}\", x);\n\nwarning: unused\nerror: could not compile `hello` (bin \"hello\")\n";
        assert_eq!(
            error_lines(log),
            [
                "error[E0425]: cannot find value `x` in this scope",
                " --> src/main.rs:2:20",
                "  |",
                "2 |     println!(\"{}\", x);",
                "error: could not compile `hello` (bin \"hello\")",
            ]
        );
        let quiet: String = (0..30).map(|i| format!("line {i}\n")).collect();
        let tail = error_lines(&quiet);
        assert_eq!(tail.len(), 20);
        assert_eq!(tail.last().unwrap(), "line 29");
    }
}
