//! A shifted wall clock for the build's process tree (cargo, rustc, build scripts,
//! proc-macros, the linker), through libfaketime — only on request (`kiln repro` asks for
//! it in its second build, to expose builds that record the time).
//!
//! libfaketime alone deadlocks rustc: rustc's jemalloc asks for the time and makes a
//! condition variable while it initialises (from a C++ static constructor, before
//! libfaketime's own constructor), and libfaketime's lazy initialisation then allocates (a
//! failed `dlsym` message, `sem_open`) — re-entering jemalloc, whose init lock it already
//! holds (wolfcw/libfaketime#130). A tiny shim preloaded in front of libfaketime answers
//! `clock_gettime` with the real clock (a raw system call) and `pthread_cond_init` with a
//! default condition variable until the shim's constructor has run, and forwards to
//! libfaketime after; its constructor first allocates, so jemalloc finishes initialising
//! before libfaketime is ever entered. The shim is compiled with the build's verified C compiler
//! into the build root.
//!
//! The variables are set on the build's commands only, not recorded in the environment
//! allowlist: the outputs of a build whose clock is shifted must be comparable byte for
//! byte with those of one whose clock is not.

use std::path::{Path, PathBuf};
use std::process::Command;

const SHIM_C: &str = r#"/* kiln: lets libfaketime run inside programs whose malloc reads the clock
   while initialising (rustc's jemalloc). See kiln-hermetic/src/clock.rs. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static volatile int kiln_ready;
static int (*kiln_next)(clockid_t, struct timespec *);

int clock_gettime(clockid_t id, struct timespec *tp) {
    if (!kiln_ready) {
        return (int)syscall(SYS_clock_gettime, id, tp);
    }
    if (!kiln_next) {
        kiln_next = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
        if (!kiln_next) {
            return (int)syscall(SYS_clock_gettime, id, tp);
        }
    }
    return kiln_next(id, tp);
}

/* jemalloc makes its background thread's condition variable while initialising too, and
   libfaketime wraps pthread_cond_init: a default one is all zeros until then. */
int pthread_cond_init(pthread_cond_t *c, const pthread_condattr_t *a) {
    static int (*next)(pthread_cond_t *, const pthread_condattr_t *);
    if (!kiln_ready && a == NULL) {
        memset(c, 0, sizeof *c);
        return 0;
    }
    if (!next) {
        next = (int (*)(pthread_cond_t *, const pthread_condattr_t *))dlsym(RTLD_NEXT, "pthread_cond_init");
    }
    return next(c, a);
}

__attribute__((constructor)) static void kiln_faketime_shim_init(void) {
    /* Initialise the program's malloc while the clock is still the real one. */
    free(malloc(1));
    kiln_ready = 1;
}
"#;

/// Where distributions install libfaketime.
const LIBFAKETIME: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib64/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
    "/usr/local/lib/faketime/libfaketime.so.1",
];

/// Why the clock shift cannot be prepared.
#[derive(Debug, thiserror::Error)]
pub enum ClockShiftError {
    #[error(
        "clock shift `{0}` is not a libfaketime FAKETIME value such as `+94694400` (seconds) or `@2030-01-01 00:00:00`"
    )]
    BadValue(String),
    #[error("libfaketime is not installed")]
    NoLibfaketime,
    #[error("the toolchain root {} has no libfaketime", .0.display())]
    NoLibfaketimeInRoot(PathBuf),
    #[error("cannot compile the libfaketime shim inside the toolchain root")]
    Sandbox(#[source] crate::SandboxError),
    #[error("{what} {}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// The C compiler's own messages are `stderr`: not an error chain, so part of this one.
    #[error("{} could not compile the libfaketime shim {}: {stderr}", cc.display(), src.display())]
    Compile {
        cc: PathBuf,
        src: PathBuf,
        stderr: String,
    },
}

impl kiln_core::Hint for ClockShiftError {
    fn hint(&self) -> Option<String> {
        match self {
            ClockShiftError::NoLibfaketime => Some(
                "install it (apt-get install faketime), or set $KILN_LIBFAKETIME to libfaketime.so.1".into(),
            ),
            ClockShiftError::Sandbox(e) => e.hint(),
            ClockShiftError::NoLibfaketimeInRoot(_) => Some(
                "pin the root again (`kiln toolchain pin`: its default packages include libfaketime), then `kiln toolchain pack`".into(),
            ),
            _ => None,
        }
    }
}

/// A clock shift ready to be applied to commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClockShift {
    /// libfaketime's `FAKETIME` (e.g. `+94694400`: seconds ahead).
    pub faketime: String,
    pub libfaketime: PathBuf,
    pub shim: PathBuf,
}

impl ClockShift {
    /// Finds libfaketime (`$KILN_LIBFAKETIME`, else the distributions' places) and
    /// compiles the shim with `cc` into `dir`. `faketime` is libfaketime's `FAKETIME`
    /// syntax; only relative offsets (`+N`/`-N` seconds, optionally with a unit suffix)
    /// and absolute `@` dates are accepted.
    pub fn prepare(faketime: &str, cc: &Path, dir: &Path) -> Result<ClockShift, ClockShiftError> {
        check_value(faketime)?;
        let libfaketime = std::env::var_os("KILN_LIBFAKETIME")
            .map(PathBuf::from)
            .into_iter()
            .chain(LIBFAKETIME.iter().map(PathBuf::from))
            .find(|p| p.is_file())
            .ok_or(ClockShiftError::NoLibfaketime)?;
        let shim = compile_shim(kiln_core::process::command(cc), cc, dir)?;
        Ok(ClockShift {
            faketime: faketime.to_string(),
            libfaketime,
            shim,
        })
    }

    /// The same inside a provided toolchain root: the build's tools see only the root, so
    /// libfaketime must be the root's own (Debian's `libfaketime` package, pinned with the
    /// rest) and the shim is compiled by the root's `cc` (an in-root path) inside `sandbox`.
    /// `dir` must be a writable bind at its own path (the build root is), so the shim's path
    /// means the same inside and out. Host libraries and `$KILN_LIBFAKETIME` are never used:
    /// a host library would not even load against the root's glibc reliably.
    pub fn prepare_in_root(
        faketime: &str,
        sandbox: &crate::RootedSandbox,
        cc: &Path,
        dir: &Path,
    ) -> Result<ClockShift, ClockShiftError> {
        check_value(faketime)?;
        let libfaketime = LIBFAKETIME
            .iter()
            .map(PathBuf::from)
            .find(|p| sandbox.provides_file(p))
            .ok_or_else(|| ClockShiftError::NoLibfaketimeInRoot(sandbox.root().to_path_buf()))?;
        let cmd = sandbox.command(cc).map_err(ClockShiftError::Sandbox)?;
        let shim = compile_shim(cmd, cc, dir)?;
        Ok(ClockShift {
            faketime: faketime.to_string(),
            libfaketime,
            shim,
        })
    }

    /// The variables that shift the clock of a command and everything it starts:
    /// the wall clock and file times (libfaketime's defaults), not the monotonic clock
    /// (cargo's job timing and timeouts stay real).
    pub fn vars(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "LD_PRELOAD",
                format!("{}:{}", self.shim.display(), self.libfaketime.display()),
            ),
            ("FAKETIME", self.faketime.clone()),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1".into()),
        ]
    }

    /// Sets [`ClockShift::vars`] on `cmd`.
    pub fn apply(&self, cmd: &mut Command) {
        for (k, v) in self.vars() {
            cmd.env(k, v);
        }
    }

    /// What is shifted, for logs and reports.
    pub fn describe(&self) -> String {
        format!(
            "wall clock and file times shifted by FAKETIME={} for cargo, rustc, build scripts and proc-macros (LD_PRELOAD={}:{}; monotonic clock real)",
            self.faketime,
            self.shim.display(),
            self.libfaketime.display()
        )
    }
}

/// Only relative offsets (`+N`/`-N` seconds, optionally with a unit suffix) and absolute
/// `@` dates are accepted.
fn check_value(faketime: &str) -> Result<(), ClockShiftError> {
    let valid = faketime.strip_prefix(['+', '-']).is_some_and(|n| {
        let n = n.trim_end_matches(['s', 'm', 'h', 'd', 'y']);
        !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit() || b == b'.')
    }) || faketime.starts_with('@');
    if valid {
        Ok(())
    } else {
        Err(ClockShiftError::BadValue(faketime.to_string()))
    }
}

/// Writes the shim's source into `dir` and compiles it with `cmd` (a C compiler, on the
/// host or inside a root; `cc` names it in errors). Returns the shared object's path.
fn compile_shim(mut cmd: Command, cc: &Path, dir: &Path) -> Result<PathBuf, ClockShiftError> {
    let io = |what, path: &Path| {
        let path = path.to_path_buf();
        move |source| ClockShiftError::Io { what, path, source }
    };
    kiln_core::fsx::create_dir_all(dir).map_err(io("cannot create", dir))?;
    let src = dir.join("kiln-faketime-shim.c");
    let shim = dir.join("kiln-faketime-shim.so");
    kiln_core::fsx::write_atomic(&src, SHIM_C.as_bytes()).map_err(io("cannot write", &src))?;
    let out = cmd
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&shim)
        .arg(&src)
        .arg("-ldl")
        .output()
        .map_err(io("cannot run", cc))?;
    if !out.status.success() {
        return Err(ClockShiftError::Compile {
            cc: cc.to_path_buf(),
            src,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(shim)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_values_are_refused() {
        let d = tempfile::tempdir().unwrap();
        for bad in ["3 years", "", "+", "+3 years"] {
            let e = ClockShift::prepare(bad, Path::new("cc"), d.path())
                .unwrap_err()
                .to_string();
            assert!(e.contains("FAKETIME"), "{bad}: {e}");
        }
    }

    /// Runs `cmd`, killing it after `secs` (a deadlock must fail the test, not hang it).
    fn output_within(cmd: &mut Command, secs: u64) -> std::process::Output {
        let mut child = cmd
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                child.kill().unwrap();
                panic!("{cmd:?} did not finish within {secs} s (libfaketime deadlock?)");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        child.wait_with_output().unwrap()
    }

    #[test]
    fn the_shifted_clock_reaches_tools_and_rustc_still_runs() {
        let d = tempfile::tempdir().unwrap();
        let shift = ClockShift::prepare("+94694400", Path::new("cc"), d.path()).unwrap();
        assert!(shift.describe().contains("FAKETIME=+94694400"));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let mut date = kiln_core::process::command("date");
        date.arg("+%s");
        shift.apply(&mut date);
        let out = output_within(&mut date, 30);
        let seen: u64 = String::from_utf8(out.stdout)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(
            seen.abs_diff(now + 94_694_400) < 120,
            "date saw {seen}, now is {now}"
        );
        // rustc (jemalloc) under libfaketime alone deadlocks; with the shim it answers.
        let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
        let mut cmd = kiln_core::process::command(rustc);
        cmd.arg("-vV");
        shift.apply(&mut cmd);
        let out = output_within(&mut cmd, 60);
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains("host:"),
            "{out:?}"
        );
    }

    /// A root of nothing but the usrmerge links, with `usr` bound from `usr` (or nothing),
    /// and `work` bound writable at its own path, as a build root is.
    fn root_sandbox(dir: &Path, usr: Option<&Path>, work: &Path) -> crate::RootedSandbox {
        let root = dir.join("root");
        std::fs::create_dir_all(root.join("usr")).unwrap();
        for (link, target) in [
            ("bin", "usr/bin"),
            ("lib", "usr/lib"),
            ("lib64", "usr/lib64"),
        ] {
            std::os::unix::fs::symlink(target, root.join(link)).unwrap();
        }
        let mut binds = vec![crate::Bind::writable(work, work)];
        if let Some(usr) = usr {
            binds.push(crate::Bind::read_only(usr, "/usr"));
        }
        crate::RootedSandbox::new(root.canonicalize().unwrap(), binds, work).unwrap()
    }

    /// Inside a root the root's own libfaketime is preloaded (an in-root path) behind a shim
    /// the root's cc compiled, and a program inside sees the shifted clock. (The root here
    /// is the host's /usr, which `cargo xtask test` gives libfaketime.)
    #[test]
    fn the_shifted_clock_reaches_tools_inside_a_root() {
        let d = tempfile::tempdir().unwrap();
        let work = d.path().join("work");
        std::fs::create_dir(&work).unwrap();
        let work = work.canonicalize().unwrap();
        let sb = root_sandbox(d.path(), Some(Path::new("/usr")), &work);
        let shift = ClockShift::prepare_in_root(
            "+94694400",
            &sb,
            Path::new("/usr/bin/gcc"),
            &work.join("ft"),
        )
        .unwrap();
        assert!(shift.libfaketime.starts_with("/usr/lib"), "{shift:?}");
        assert!(shift.shim.starts_with(&work) && shift.shim.is_file());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let mut date = sb.command(Path::new("/usr/bin/date")).unwrap();
        date.env_clear().arg("+%s");
        shift.apply(&mut date);
        let out = output_within(&mut date, 30);
        let seen: u64 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{out:?}"));
        assert!(
            seen.abs_diff(now + 94_694_400) < 120,
            "date inside the root saw {seen}, now is {now}"
        );
    }

    /// A root without libfaketime (one pinned before it was in the default packages) is a
    /// clear error naming the root and the fix; the host's library is never used instead.
    #[test]
    fn a_root_without_libfaketime_is_named() {
        let d = tempfile::tempdir().unwrap();
        let work = d.path().join("work");
        std::fs::create_dir(&work).unwrap();
        let sb = root_sandbox(d.path(), None, &work.canonicalize().unwrap());
        let e =
            ClockShift::prepare_in_root("+1", &sb, Path::new("/usr/bin/cc"), &work).unwrap_err();
        let fix = kiln_core::Hint::hint(&e).unwrap_or_default();
        assert!(
            e.to_string().contains("has no libfaketime") && fix.contains("kiln toolchain pin"),
            "{e}: {fix}"
        );
        assert!(!work.join("kiln-faketime-shim.so").exists());
    }
}
