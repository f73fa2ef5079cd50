//! Two builds from scratch, the second under varied conditions.
//!
//! Each build is the kiln CLI itself run as a subprocess on its own copy of the project,
//! with its own build root (HOME, cargo home, target dir) and output directory, so every
//! variation — environment, umask, hostname, CPU affinity, clock — applies to the whole
//! kiln process and whatever it starts. The only thing the two builds share is the set of
//! fetched `.crate` files, checksummed against `Cargo.lock` (copied into each root).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use kiln_core::contract::ProjectLayout;

use crate::error::{Error, Result, io};
use crate::explain::Hints;
use crate::git::GitIdentity;
use crate::report::{BuildFailure, CompareContext};
use crate::variations::{VariationRecord, Variations};

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

/// A small deterministic generator for the shuffled copy (seeded from variations.toml so
/// an order that breaks a build can be replayed).
pub struct Rng(pub u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Copies a project tree, leaving out build outputs and VCS metadata. With `rng`, entries
/// of each directory are created in a shuffled order (on file systems that list in creation
/// order, such as tmpfs, this shuffles `readdir`).
pub fn copy_project(from: &Path, to: &Path, mut rng: Option<&mut Rng>) -> Result<()> {
    std::fs::create_dir_all(to).map_err(io("cannot create", to))?;
    let mut entries: Vec<_> = std::fs::read_dir(from)
        .map_err(io("cannot list", from))?
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(io("cannot list", from))?;
    entries.sort_by_key(|e| e.file_name());
    if let Some(r) = rng.as_deref_mut() {
        for i in (1..entries.len()).rev() {
            let j = (r.next() % (i as u64 + 1)) as usize;
            entries.swap(i, j);
        }
    }
    for e in entries {
        let name = e.file_name();
        if name == "target" || name == ".git" {
            continue;
        }
        let src = e.path();
        let dst = to.join(&name);
        let ty = e.file_type().map_err(io("cannot stat", &src))?;
        if ty.is_dir() {
            copy_project(&src, &dst, rng.as_deref_mut())?;
        } else if ty.is_symlink() {
            let target = std::fs::read_link(&src).map_err(io("cannot read link", &src))?;
            std::os::unix::fs::symlink(&target, &dst).map_err(io("cannot create link", &dst))?;
        } else if ty.is_file() {
            std::fs::copy(&src, &dst).map_err(io("cannot copy", &src))?;
        }
    }
    Ok(())
}

/// A disorderfs mount, unmounted when dropped.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        for (prog, args) in [
            ("fusermount", &["-u"][..]),
            ("fusermount3", &["-u"][..]),
            ("umount", &[][..]),
        ] {
            if let Some(p) = find_program(prog)
                && quiet_ok(Command::new(p).args(args).arg(&self.0))
            {
                return;
            }
        }
    }
}

fn remove_dir(p: &Path) -> Result<()> {
    match std::fs::remove_dir_all(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::Io {
            what: "cannot remove",
            path: p.to_path_buf(),
            source: e,
        }),
    }
}

/// The first directory from `dir` up to `/` that would capture a project copied below it:
/// one holding a `Cargo.toml` with a `[workspace]` table (cargo would take the copy for a
/// member it does not list: "current package believes it's in a workspace when it's
/// not"), or a `.git` (a build script asking git would see that repository instead of the
/// project's). A `Cargo.toml` that does not parse counts as capturing.
pub fn enclosing_workspace(dir: &Path) -> Option<PathBuf> {
    dir.ancestors().find_map(|d| {
        let manifest = d.join("Cargo.toml");
        let captures = match std::fs::read_to_string(&manifest) {
            Ok(text) => text
                .parse::<toml::Table>()
                .map_or(true, |t| t.contains_key("workspace")),
            Err(_) => false,
        };
        (captures || d.join(".git").exists()).then(|| d.to_path_buf())
    })
}

/// The scratch directory of one run, removed (with anything mounted in it) when dropped.
pub struct WorkDir {
    path: PathBuf,
}

impl WorkDir {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        unmount_leftovers(&self.path);
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Unmounts whatever is mounted under `work` (a disorderfs view of a copy), deepest first.
fn unmount_leftovers(work: &Path) {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") else {
        return;
    };
    let mut points: Vec<PathBuf> = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(1))
        // /proc/mounts escapes spaces and the like as octal; such paths are not ours.
        .map(PathBuf::from)
        .filter(|p| p.starts_with(work) && p != work)
        .collect();
    points.sort();
    for p in points.into_iter().rev() {
        drop(Mount(p));
    }
}

const WORK_PREFIX: &str = "kiln-repro-";

/// Makes the run's scratch directory: `explicit` if given, else a fresh
/// `kiln-repro-<pid>-<n>` under `$TMPDIR`, `/var/tmp` or `/tmp` — the first that no Cargo
/// workspace or git repository encloses ([`enclosing_workspace`]), so the copies build
/// as the project does, whatever the project and wherever it lives. Leftovers of killed
/// runs (their process gone) are removed first.
pub fn work_dir(explicit: Option<&Path>) -> Result<WorkDir> {
    if let Some(dir) = explicit {
        remove_dir(dir)?;
        std::fs::create_dir_all(dir).map_err(io("cannot create", dir))?;
        let path = dir.canonicalize().map_err(io("cannot resolve", dir))?;
        if let Some(ws) = enclosing_workspace(&path) {
            let _ = std::fs::remove_dir(&path);
            return Err(Error::Captured { work: path, by: ws });
        }
        return Ok(WorkDir { path });
    }
    let mut tried = Vec::new();
    for base in [std::env::temp_dir(), "/var/tmp".into(), "/tmp".into()] {
        let Ok(base) = base.canonicalize() else {
            continue;
        };
        if tried.iter().any(|(b, _): &(PathBuf, PathBuf)| *b == base) {
            continue;
        }
        if let Some(ws) = enclosing_workspace(&base) {
            tried.push((base, ws));
            continue;
        }
        remove_stale(&base);
        for n in 0u32.. {
            let path = base.join(format!("{WORK_PREFIX}{}-{n}", std::process::id()));
            match std::fs::create_dir(&path) {
                Ok(()) => return Ok(WorkDir { path }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io("cannot create", &path)(e)),
            }
        }
    }
    let (work, by) = tried
        .into_iter()
        .next()
        .unwrap_or_else(|| (std::env::temp_dir(), PathBuf::from("/")));
    Err(Error::Captured { work, by })
}

/// Removes `kiln-repro-<pid>-*` directories under `base` whose process is gone.
fn remove_stale(base: &Path) {
    let Ok(rd) = std::fs::read_dir(base) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(WORK_PREFIX)
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            unmount_leftovers(&e.path());
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
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

struct Side {
    project: PathBuf,
    root: PathBuf,
    tree: PathBuf,
    log: PathBuf,
}

/// Runs `argv` (program first) with `env`, logging to `side.log`; says why it failed.
fn run_build(
    argv: &[OsString],
    env: &[(String, OsString)],
    side: &Side,
) -> Result<Option<BuildFailure>> {
    let log = std::fs::File::create(&side.log).map_err(io("cannot create", &side.log))?;
    let log2 = log.try_clone().map_err(io("cannot create", &side.log))?;
    let mut cmd = Command::new(&argv[0]);
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

/// Builds the project twice — plainly, then with the variations — and returns the two
/// output trees with everything the diff needs to know to explain them.
pub fn rebuild(plan: &RebuildPlan, progress: &dyn Fn(&str)) -> Result<Rebuilt> {
    let v = &plan.variations;
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
    .map_err(|message| Error::Variations {
        path: ProjectLayout::new(&project).kiln_toml(),
        message,
    })?;

    let work_guard = work_dir(plan.work.as_deref())?;
    let work = work_guard.path().to_path_buf();
    remove_dir(&plan.trees)?;
    remove_dir(&plan.logs)?;
    std::fs::create_dir_all(&plan.logs).map_err(io("cannot create", &plan.logs))?;
    let logs = plan
        .logs
        .canonicalize()
        .map_err(io("cannot resolve", &plan.logs))?;
    // The source identity both copies get (the copies leave `.git` behind).
    let identity = GitIdentity::of(&project);
    let subdir = identity
        .as_ref()
        .map(|i| i.subdir.clone())
        .unwrap_or_default();

    // The one networked step, before either build; both then build --offline.
    progress("fetching locked crates once (the inputs both builds share)");
    let fetch_log = logs.join("fetch.log");
    let mut fetch: Vec<OsString> = vec![
        plan.kiln.clone().into(),
        "-C".into(),
        project.clone().into(),
        "fetch".into(),
    ];
    for i in &plan.images {
        fetch.extend(["--image".into(), i.into()]);
    }
    let fetch_side = Side {
        project: project.clone(),
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
    let registry = kiln_hermetic::BuildRoot::new(ProjectLayout::new(&project).build_root())
        .cargo_home()
        .join("registry");

    // Tools that outlive a HOME change: rustup finds its toolchains through these.
    let mut base_env: Vec<(String, OsString)> =
        vec![("SOURCE_DATE_EPOCH".into(), sde.value.to_string().into())];
    let home = std::env::var_os("HOME").map(PathBuf::from);
    for (var, dir) in [("RUSTUP_HOME", ".rustup"), ("CARGO_HOME", ".cargo")] {
        let val = std::env::var_os(var)
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(dir)).filter(|p| p.is_dir()));
        if let Some(val) = val {
            base_env.push((var.into(), val.into()));
        }
    }

    let trees = {
        std::fs::create_dir_all(&plan.trees).map_err(io("cannot create", &plan.trees))?;
        plan.trees
            .canonicalize()
            .map_err(io("cannot resolve", &plan.trees))?
    };
    let (dir_a, dir_b) = if v.build_path.enabled {
        (work.join("a"), work.join("b/varied-build-path"))
    } else {
        (work.join("build"), work.join("build"))
    };
    let a = Side {
        project: dir_a.join("project").join(&subdir),
        root: dir_a.join("root"),
        tree: trees.join("a"),
        log: logs.join("build-a.log"),
    };
    let b = Side {
        project: dir_b.join("project").join(&subdir),
        root: dir_b.join("root"),
        tree: trees.join("b"),
        log: logs.join("build-b.log"),
    };
    let plant = |dir: &Path| -> Result<()> {
        match &identity {
            Some(id) => id.plant(&dir.join("project"), &dir.join("git")),
            None => Ok(()),
        }
    };
    let mut records = Vec::new();
    let mut hints = Hints {
        now: now(),
        source_names: source_names(&project),
        ..Default::default()
    };
    if v.hostname.enabled
        && let Ok(h) = std::fs::read_to_string("/proc/sys/kernel/hostname")
        && !h.trim().is_empty()
    {
        hints.host_names.push(h.trim().to_string());
    }

    // Build A: plain.
    progress(&format!("build A in {}", a.project.display()));
    copy_project(&project, &a.project, None)?;
    plant(&dir_a)?;
    seed_cargo_home(&registry, &a.root)?;
    let started_a = now();
    let failed_a = run_build(&kiln_build_args(plan, &a), &base_env, &a)?;
    hints.build_times.push((started_a, now()));
    hints.build_dirs.extend([
        a.project.display().to_string(),
        a.root.display().to_string(),
    ]);
    remove_dir(&dir_a)?;

    // Build B: varied.
    records.push(if v.build_path.enabled {
        VariationRecord::new(
            "build_path",
            "applied",
            format!("A in {}, B in {}", a.project.display(), b.project.display()),
        )
    } else {
        VariationRecord::new(
            "build_path",
            "disabled",
            "both builds in the same directory, one after the other",
        )
    });
    let mut _mount = None;
    if v.file_order.enabled {
        let backing = dir_b.join("project-backing");
        let disorderfs = v
            .file_order
            .disorderfs
            .then(|| find_program("disorderfs"))
            .flatten();
        let mut mounted = false;
        let mut why = "disorderfs is switched off in variations.toml".to_string();
        if let Some(dfs) = disorderfs {
            copy_project(&project, &backing, None)?;
            std::fs::create_dir_all(&b.project).map_err(io("cannot create", &b.project))?;
            let ok = Path::new("/dev/fuse").exists()
                && quiet_ok(
                    Command::new(dfs)
                        .args(["--shuffle-dirents=yes", "--reverse-dirents=no", "-q"])
                        .arg(&backing)
                        .arg(&b.project),
                );
            if ok {
                mounted = true;
                _mount = Some(Mount(b.project.clone()));
                records.push(VariationRecord::new(
                    "file_order",
                    "applied",
                    "disorderfs --shuffle-dirents=yes over a copy of the project",
                ));
            } else {
                why = "disorderfs could not mount (no FUSE here?)".into();
                remove_dir(&b.project)?;
            }
        } else if v.file_order.disorderfs {
            why = "disorderfs is not installed (apt-get install disorderfs)".into();
        }
        if !mounted {
            copy_project(&project, &b.project, Some(&mut Rng(v.file_order.seed | 1)))?;
            records.push(VariationRecord::new(
                "file_order",
                "fallback",
                format!(
                    "{why}; copied the project in shuffled order instead (seed {})",
                    v.file_order.seed
                ),
            ));
        }
        hints.build_dirs.push(backing.display().to_string());
    } else {
        copy_project(&project, &b.project, None)?;
        records.push(VariationRecord::new("file_order", "disabled", ""));
    }
    plant(&dir_b)?;
    seed_cargo_home(&registry, &b.root)?;

    let mut env = base_env.clone();
    let mut env_var = |name: &str,
                       on: bool,
                       key_vals: Vec<(&str, OsString)>,
                       detail: String,
                       hint: Option<String>| {
        if on {
            for (k, val) in key_vals {
                env.push((k.to_string(), val));
            }
            records.push(VariationRecord::new(name, "applied", detail));
            if let Some(h) = hint {
                hints.env_values.push((name.to_string(), h));
            }
        } else {
            records.push(VariationRecord::new(name, "disabled", ""));
        }
    };
    env_var(
        "tz",
        v.tz.enabled,
        vec![("TZ", v.tz.value.clone().into())],
        format!("TZ={}", v.tz.value),
        Some(v.tz.value.clone()),
    );
    env_var(
        "locale",
        v.locale.enabled,
        vec![
            ("LC_ALL", v.locale.value.clone().into()),
            ("LANG", v.locale.value.clone().into()),
        ],
        format!("LC_ALL=LANG={}", v.locale.value),
        Some(v.locale.value.clone()),
    );
    let home_b = dir_b.join("home-of-user-b");
    if v.user.enabled {
        std::fs::create_dir_all(&home_b).map_err(io("cannot create", &home_b))?;
    }
    env_var(
        "user",
        v.user.enabled,
        vec![
            ("USER", v.user.name.clone().into()),
            ("LOGNAME", v.user.name.clone().into()),
            ("HOME", home_b.clone().into()),
        ],
        format!(
            "USER=LOGNAME={}, HOME={} (same uid)",
            v.user.name,
            home_b.display()
        ),
        Some(v.user.name.clone()),
    );
    env_var(
        "env",
        v.env.enabled,
        vec![(v.env.name.as_str(), v.env.value.clone().into())],
        format!("{}={}", v.env.name, v.env.value),
        Some(v.env.value.clone()),
    );
    let path = {
        let mut p = vec![PathBuf::from(&v.path.entry)];
        p.extend(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        ));
        std::env::join_paths(p).unwrap_or_default()
    };
    env_var(
        "path",
        v.path.enabled,
        vec![("PATH", path)],
        format!("PATH={}:$PATH", v.path.entry),
        Some(v.path.entry.clone()),
    );

    // Process-level variations: a shell wrapper (hostname, umask), then taskset and
    // faketime in front of kiln.
    let mut argv: Vec<OsString> = Vec::new();
    let mut script = String::new();
    let mut script_args: Vec<OsString> = Vec::new();
    if v.hostname.enabled {
        match find_program("unshare").filter(|u| quiet_ok(Command::new(u).args(["--uts", "true"])))
        {
            Some(u) => {
                argv.extend([u.into(), "--uts".into(), "--".into()]);
                script.push_str("hostname \"$1\" || exit 97; shift; ");
                script_args.push(v.hostname.value.clone().into());
                records.push(VariationRecord::new(
                    "hostname",
                    "applied",
                    format!("{} (unshare --uts)", v.hostname.value),
                ));
                hints.host_names.push(v.hostname.value.clone());
            }
            None => records.push(VariationRecord::new(
                "hostname",
                "unavailable",
                "`unshare --uts` failed here (needs root or user namespaces)",
            )),
        }
    } else {
        records.push(VariationRecord::new("hostname", "disabled", ""));
    }
    if v.umask.enabled {
        script.push_str("umask \"$1\" || exit 97; shift; ");
        script_args.push(v.umask.value.clone().into());
        records.push(VariationRecord::new(
            "umask",
            "applied",
            format!("umask {}", v.umask.value),
        ));
    } else {
        records.push(VariationRecord::new("umask", "disabled", ""));
    }
    script.push_str("exec \"$@\"");
    argv.extend([
        "/bin/sh".into(),
        "-c".into(),
        script.into(),
        "kiln-repro".into(),
    ]);
    argv.extend(script_args);
    if v.cpus.enabled {
        match find_program("taskset")
            .filter(|t| quiet_ok(Command::new(t).args(["-c", &v.cpus.list, "true"])))
        {
            Some(t) => {
                argv.extend([t.into(), "-c".into(), v.cpus.list.clone().into()]);
                records.push(VariationRecord::new(
                    "cpus",
                    "applied",
                    format!(
                        "taskset -c {} (cargo's job count and kiln's threads follow the affinity)",
                        v.cpus.list
                    ),
                ));
            }
            None => records.push(VariationRecord::new(
                "cpus",
                "unavailable",
                format!(
                    "taskset is missing or CPU list `{}` is invalid here",
                    v.cpus.list
                ),
            )),
        }
    } else {
        records.push(VariationRecord::new("cpus", "disabled", ""));
    }
    let mut shift_secs: i64 = 0;
    let mut faketime_value = None;
    if v.clock.enabled {
        // kiln itself runs under the faketime wrapper (it must not leak its own clock) and
        // strips the preload from the tools it asks questions of; the build's process tree
        // (cargo, rustc, build scripts, proc-macros) gets the same shift explicitly
        // (`build --faketime`, through kiln-hermetic's shim that keeps rustc from
        // deadlocking in libfaketime).
        let resolved = find_program("faketime").and_then(|f| {
            let out = Command::new(&f)
                .arg(&v.clock.offset)
                .args(["/bin/sh", "-c", "printf %s \"$FAKETIME\""])
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .output()
                .ok()?;
            let value = String::from_utf8(out.stdout).ok()?;
            (out.status.success() && !value.is_empty()).then_some((f, value))
        });
        match resolved {
            Some((f, value)) => {
                shift_secs = value.trim_start_matches('+').parse().unwrap_or(0);
                argv.extend([f.into(), v.clock.offset.clone().into()]);
                records.push(VariationRecord::new(
                    "clock",
                    "applied",
                    format!(
                        "faketime '{}' = FAKETIME={value}: the wall clock and file times of kiln and of cargo, rustc, build scripts and proc-macros of build B (LD_PRELOAD libfaketime, behind kiln's shim for rustc); the monotonic clock is not shifted",
                        v.clock.offset
                    ),
                ));
                faketime_value = Some(value);
            }
            None => records.push(VariationRecord::new("clock", "unavailable", "faketime is not installed (apt-get install faketime); only the time between the builds differs")),
        }
    } else {
        records.push(VariationRecord::new("clock", "disabled", ""));
    }
    argv.extend(kiln_build_args(plan, &b));
    if let Some(value) = &faketime_value {
        argv.push(format!("--faketime={value}").into());
    }

    progress(&format!("build B in {} (varied)", b.project.display()));
    let started_b = now();
    let failed_b = run_build(&argv, &env, &b)?;
    let shifted = |t: u64| t.saturating_add_signed(shift_secs);
    hints.build_times.push((shifted(started_b), shifted(now())));
    hints.build_dirs.extend([
        b.project.display().to_string(),
        b.root.display().to_string(),
        home_b.display().to_string(),
    ]);
    drop(_mount);
    drop(work_guard);
    records.sort_by(|x, y| x.name.cmp(&y.name));
    records.insert(0, VariationRecord::new("rebuild", "applied", "two builds from scratch: separate copies, build roots, cargo homes and target dirs; only the fetched, checksummed crates shared"));

    Ok(Rebuilt {
        tree_a: a.tree.clone(),
        tree_b: b.tree.clone(),
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
    fn shuffled_copy_has_same_files_and_skips_target() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("src");
        std::fs::create_dir_all(src.join("target/x")).unwrap();
        std::fs::create_dir_all(src.join("sub")).unwrap();
        for n in ["a", "b", "c", "d", "sub/e"] {
            std::fs::write(src.join(n), n).unwrap();
        }
        copy_project(&src, &d.path().join("dst"), Some(&mut Rng(7))).unwrap();
        let files = crate::diff::list_files(&d.path().join("dst")).unwrap();
        assert_eq!(files, ["a", "b", "c", "d", "sub/e"]);
    }

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

    #[test]
    fn the_work_dir_is_outside_any_workspace_and_a_captured_one_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let w = work_dir(None).unwrap();
        assert!(
            enclosing_workspace(w.path()).is_none(),
            "{}",
            w.path().display()
        );
        let kept = w.path().to_path_buf();
        drop(w);
        assert!(!kept.exists());
        // Inside a workspace (as target/kiln/repro/work of a workspace root would be).
        std::fs::write(d.path().join("Cargo.toml"), "[workspace]\nmembers = []\n").unwrap();
        let inside = d.path().join("target/kiln/repro/work");
        let e = work_dir(Some(&inside)).err().unwrap().to_string();
        assert!(e.contains("Cargo workspace") && e.contains("TMPDIR"), "{e}");
        assert_eq!(
            enclosing_workspace(&inside),
            Some(d.path().canonicalize().unwrap())
        );
        // A package manifest alone does not capture.
        std::fs::write(d.path().join("Cargo.toml"), "[package]\nname = \"p\"\n").unwrap();
        if enclosing_workspace(d.path().parent().unwrap()).is_none() {
            assert!(work_dir(Some(&inside)).is_ok());
        }
    }
}
