//! Build B's variations, each applied the way it reaches the whole kiln process and what
//! it starts: the build path (where B's copy lives), the file order (how B's copy is made),
//! environment variables, and process-level wrappers in front of kiln (a shell for the
//! hostname and umask, `taskset`, `faketime`). Each records whether it was applied, fell
//! back or is unavailable here, and tells the diff the values it introduced.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::error::{Result, io};
use crate::explain::Hints;
use crate::variations::{VariationRecord, Variations};

use super::scratch::{Mount, Rng, copy_project, remove_dir};
use super::{RebuildPlan, Side, find_program, kiln_build_args, quiet_ok};

/// The build path variation: it is applied by where [`super::sides`] put the two builds;
/// this only records it.
pub(super) fn build_path(v: &Variations, a: &Side, b: &Side) -> VariationRecord {
    if v.build_path.enabled {
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
    }
}

/// B's copy of the project, under the file order variation: a disorderfs view of a copy
/// (directory listings shuffled by the file system), else a copy made in shuffled order.
/// Returns the mount, which must outlive build B.
pub(super) fn copy_project_b(
    v: &Variations,
    project: &Path,
    b: &Side,
    records: &mut Vec<VariationRecord>,
    hints: &mut Hints,
) -> Result<Option<Mount>> {
    if !v.file_order.enabled {
        copy_project(project, &b.project, None)?;
        records.push(VariationRecord::new("file_order", "disabled", ""));
        return Ok(None);
    }
    let mut mount = None;
    let backing = b.dir.join("project-backing");
    let disorderfs = v
        .file_order
        .disorderfs
        .then(|| find_program("disorderfs"))
        .flatten();
    let mut mounted = false;
    let mut why = "disorderfs is switched off in variations.toml".to_string();
    if let Some(dfs) = disorderfs {
        copy_project(project, &backing, None)?;
        std::fs::create_dir_all(&b.project).map_err(io("cannot create", &b.project))?;
        let ok = Path::new("/dev/fuse").exists()
            && quiet_ok(
                kiln_core::process::command(dfs)
                    .args(["--shuffle-dirents=yes", "--reverse-dirents=no", "-q"])
                    .arg(&backing)
                    .arg(&b.project),
            );
        if ok {
            mounted = true;
            mount = Some(Mount(b.project.clone()));
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
        copy_project(project, &b.project, Some(&mut Rng(v.file_order.seed | 1)))?;
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
    Ok(mount)
}

/// B's environment: `base_env` plus the environment variations (TZ, locale, user and
/// HOME, an extra variable, an extra PATH entry). Returns it with B's HOME, which is
/// created when the user varies.
pub(super) fn environment(
    v: &Variations,
    base_env: &[(String, OsString)],
    b: &Side,
    records: &mut Vec<VariationRecord>,
    hints: &mut Hints,
) -> Result<(Vec<(String, OsString)>, PathBuf)> {
    let mut env = base_env.to_vec();
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
    let home_b = b.dir.join("home-of-user-b");
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
    Ok((env, home_b))
}

/// B's command line: the process-level variations in front of kiln — a shell wrapper
/// (hostname, umask), then taskset and faketime — then `kiln build`, told the clock
/// shift. Returns it with the clock shift in seconds (B's times, as B saw them).
pub(super) fn command(
    plan: &RebuildPlan,
    b: &Side,
    records: &mut Vec<VariationRecord>,
    hints: &mut Hints,
) -> (Vec<OsString>, i64) {
    let v = &plan.variations;
    let mut argv = shell_wrapper(v, records, hints);
    argv.extend(cpus(v, records));
    let (faketime, shift_secs, faketime_value) = clock(v, records);
    argv.extend(faketime);
    argv.extend(kiln_build_args(plan, b));
    if let Some(value) = &faketime_value {
        argv.push(format!("--faketime={value}").into());
    }
    (argv, shift_secs)
}

/// The hostname (in a new UTS namespace, when `unshare --uts` works here) and umask
/// variations: both must be set by the process that then becomes kiln, so they are a
/// `/bin/sh -c` script that ends in `exec "$@"`.
fn shell_wrapper(
    v: &Variations,
    records: &mut Vec<VariationRecord>,
    hints: &mut Hints,
) -> Vec<OsString> {
    let mut argv: Vec<OsString> = Vec::new();
    let mut script = String::new();
    let mut script_args: Vec<OsString> = Vec::new();
    if v.hostname.enabled {
        match find_program("unshare")
            .filter(|u| quiet_ok(kiln_core::process::command(u).args(["--uts", "true"])))
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
    argv
}

/// The CPU count variation: `taskset -c LIST`, when taskset accepts the list here (cargo's
/// job count and kiln's threads follow the affinity).
fn cpus(v: &Variations, records: &mut Vec<VariationRecord>) -> Vec<OsString> {
    if !v.cpus.enabled {
        records.push(VariationRecord::new("cpus", "disabled", ""));
        return Vec::new();
    }
    match find_program("taskset")
        .filter(|t| quiet_ok(kiln_core::process::command(t).args(["-c", &v.cpus.list, "true"])))
    {
        Some(t) => {
            records.push(VariationRecord::new(
                "cpus",
                "applied",
                format!(
                    "taskset -c {} (cargo's job count and kiln's threads follow the affinity)",
                    v.cpus.list
                ),
            ));
            vec![t.into(), "-c".into(), v.cpus.list.clone().into()]
        }
        None => {
            records.push(VariationRecord::new(
                "cpus",
                "unavailable",
                format!(
                    "taskset is missing or CPU list `{}` is invalid here",
                    v.cpus.list
                ),
            ));
            Vec::new()
        }
    }
}

/// The clock variation: `faketime OFFSET` in front of kiln, when faketime is installed.
/// Returns the wrapper, the shift in seconds and the `FAKETIME` value faketime resolved
/// the offset to (kiln passes it on to the build's own process tree).
fn clock(
    v: &Variations,
    records: &mut Vec<VariationRecord>,
) -> (Vec<OsString>, i64, Option<String>) {
    if !v.clock.enabled {
        records.push(VariationRecord::new("clock", "disabled", ""));
        return (Vec::new(), 0, None);
    }
    // kiln itself runs under the faketime wrapper (it must not leak its own clock) and
    // strips the preload from the tools it asks questions of; the build's process tree
    // (cargo, rustc, build scripts, proc-macros) gets the same shift explicitly
    // (`build --faketime`, through kiln-hermetic's shim that keeps rustc from
    // deadlocking in libfaketime).
    let resolved = find_program("faketime").and_then(|f| {
        let out = kiln_core::process::command(&f)
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
            let shift_secs = value.trim_start_matches('+').parse().unwrap_or(0);
            records.push(VariationRecord::new(
                "clock",
                "applied",
                format!(
                    "faketime '{}' = FAKETIME={value}: the wall clock and file times of kiln and of cargo, rustc, build scripts and proc-macros of build B (LD_PRELOAD libfaketime, behind kiln's shim for rustc); the monotonic clock is not shifted",
                    v.clock.offset
                ),
            ));
            (
                vec![f.into(), v.clock.offset.clone().into()],
                shift_secs,
                Some(value),
            )
        }
        None => {
            records.push(VariationRecord::new("clock", "unavailable", "faketime is not installed (apt-get install faketime); only the time between the builds differs"));
            (Vec::new(), 0, None)
        }
    }
}
