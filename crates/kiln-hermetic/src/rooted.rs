//! The rooted sandbox: a build that runs inside a toolchain root directory instead of against
//! the host's `/usr`, so that the host contributes only the kernel and kiln itself.
//!
//! The root is a read-only, content-addressed tree (`usr/bin/cc`, `usr/local/bin/rustc`,
//! glibc, the usrmerge symlinks `bin -> usr/bin`, ...). It must never be modified, so nothing
//! is written into it: the new `/` is a fresh tmpfs, mounted over the root's own path in a
//! private mount namespace (a path that exists by definition and covers nothing else of the
//! host's; the root's entries and the binds' sources are opened first, and bound from those
//! descriptors through `/proc/self/fd`). A tmpfs rather than the root itself as `/`,
//! because the mountpoints for `/proc`, `/dev`, `/tmp` and the binds would otherwise have to
//! exist in the read-only root. Into it
//!
//! * each top-level entry of the root is bind-mounted read-only (a symlink is recreated);
//!   entries named `dev`, `proc` and `tmp` are left out, the sandbox provides those;
//! * `/proc` is a fresh procfs of a new PID namespace (rustc finds its sysroot through
//!   `/proc/self/exe`; the host's processes stay invisible);
//! * `/dev` holds only `null`, `zero`, `full`, `random` and `urandom` (bind-mounted from the
//!   host), the `fd`/`stdin`/`stdout`/`stderr` links and a tmpfs `/dev/shm`;
//! * `/tmp` is a fresh, empty tmpfs;
//! * each [`Bind`] appears at its `inside` path, read-only unless it is writable;
//!
//! after which the process `pivot_root`s into it, the old root is detached, the new `/` is
//! made read-only and the program is executed from inside: an in-root path such as
//! `/usr/local/bin/cargo`. No `/etc` is made: a tool that needs one gets it from the root.
//! The network namespace is new as well, with only `lo` (up), as [`crate::Sandbox::Netns`].
//!
//! Everything happens between `fork` and `exec` (a `pre_exec` hook), on a plan computed
//! before the fork: only async-signal-safe system calls, no allocation. The hook first
//! unshares the user, mount, network and PID namespaces and maps the caller's uid and gid to
//! themselves (the build sees the owners the host sees and, for a non-root caller, loses its
//! capabilities at `exec`, so it cannot undo the read-only mounts; files owned by ids other
//! than the caller's appear owned by `nobody`, as in any user namespace, and only their
//! "other" permission bits apply); a new PID namespace only
//! takes effect for children, so the hook then forks: the forked child is PID 1 of the new
//! namespace, builds the root and becomes the program, while the process `std` forked stays
//! outside, waits for it and exits the same way, so the `Child` a caller holds reports the
//! program's status. A small re-exec'd helper binary would avoid this second fork, but kiln
//! is a library here and has no helper to re-exec: the waiter is a few system calls instead.
//! The program, as PID 1, dies with the waiter (`PR_SET_PDEATHSIG`) and takes the whole
//! namespace with it; like any PID 1 it ignores signals it has no handler for when they come
//! from inside, and reaps only its own children.

use std::ffi::{CStr, CString, OsStr, OsString};
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use crate::SandboxError;
use crate::sandbox::{loopback_up, write_proc};

/// A host path made visible inside a [`RootedSandbox`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Bind {
    /// The existing host file or directory.
    pub host: PathBuf,
    /// Where it appears inside the sandbox: absolute and normalized. Missing directories
    /// above it are made: in the sandbox's tmpfs, or (on the host) in a writable bind it
    /// lies in; inside a read-only tree the mountpoint must exist already.
    pub inside: PathBuf,
    /// Whether the build may write through it (the build root, the output directory);
    /// everything else it reads (the project's sources) is mounted read-only.
    pub writable: bool,
}

impl Bind {
    pub fn read_only(host: impl Into<PathBuf>, inside: impl Into<PathBuf>) -> Self {
        Bind {
            host: host.into(),
            inside: inside.into(),
            writable: false,
        }
    }
    pub fn writable(host: impl Into<PathBuf>, inside: impl Into<PathBuf>) -> Self {
        Bind {
            host: host.into(),
            inside: inside.into(),
            writable: true,
        }
    }
}

/// Builds run inside a toolchain root, cut off from the network and from every host path
/// that is not bound in (see the module documentation for what it mounts and why).
///
/// [`RootedSandbox::new`] checks every path and plans every mount before anything runs;
/// [`RootedSandbox::check`] proves the kernel lets it build that root here;
/// [`RootedSandbox::apply`] (or [`RootedSandbox::command`], which also checks the program
/// exists inside) makes a `Command` start in it. `Display` (`root:<path>`) names the mode
/// for the outputs, as [`crate::Sandbox`]'s does; `Serialize` records root, binds and
/// working directory for the provenance.
#[derive(Debug, Clone)]
pub struct RootedSandbox {
    root: PathBuf,
    /// Canonical host paths, sorted by `inside` (parents mount before what lies in them).
    binds: Vec<Bind>,
    workdir: PathBuf,
    entries: Vec<Entry>,
    plan: Arc<Plan>,
}

/// A top-level entry of the root, as it was when the sandbox was planned.
#[derive(Debug, Clone)]
struct Entry {
    name: OsString,
    kind: EntryKind,
}

#[derive(Debug, Clone)]
enum EntryKind {
    Dir,
    File,
    Symlink(PathBuf),
}

/// What the sandbox provides itself, whatever the root holds.
const PROVIDED: &[&str] = &["dev", "proc", "tmp"];
/// The host devices a build may use: sinks and sources of bytes, nothing with state.
const DEV_NODES: &[&str] = &["full", "null", "random", "urandom", "zero"];
const DEV_LINKS: &[(&str, &str)] = &[
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
];

impl RootedSandbox {
    /// Plans a sandbox whose `/` is `root`, with `binds` and the working directory
    /// `workdir` (an in-root path), checking now everything that can be checked without
    /// running: the root is an existing directory other than the host's `/`, each bind's
    /// host path exists, its `inside` path is absolute, normalized, outside `/proc`, passes
    /// through no symlink and, inside a read-only tree, names an existing mountpoint; the
    /// working directory exists inside.
    pub fn new(
        root: impl Into<PathBuf>,
        binds: Vec<Bind>,
        workdir: impl Into<PathBuf>,
    ) -> Result<Self, SandboxError> {
        let given = root.into();
        let root_err = |source| SandboxError::Root {
            path: given.clone(),
            source,
        };
        let root = given.canonicalize().map_err(root_err)?;
        if !root.is_dir() {
            return Err(root_err(io::Error::from_raw_os_error(libc::ENOTDIR)));
        }
        if root == Path::new("/") {
            return Err(root_err(invalid("the host's `/` cannot be a sandbox root")));
        }
        let entries = read_entries(&root).map_err(root_err)?;

        let mut planned = Vec::with_capacity(binds.len());
        for b in binds {
            let bind_err = |source| SandboxError::Bind {
                host: b.host.clone(),
                inside: b.inside.clone(),
                source,
            };
            let inside = normalized(&b.inside).map_err(bind_err)?;
            if inside == Path::new("/") {
                return Err(bind_err(invalid(
                    "a bind cannot replace `/`: that is the root's place",
                )));
            }
            if inside.starts_with("/proc") {
                return Err(bind_err(invalid("/proc is the sandbox's own procfs")));
            }
            let host = b.host.canonicalize().map_err(bind_err)?;
            planned.push(Bind {
                host,
                inside,
                writable: b.writable,
            });
        }
        planned.sort_by(|a, b| a.inside.cmp(&b.inside));
        if let Some(w) = planned.windows(2).find(|w| w[0].inside == w[1].inside) {
            return Err(SandboxError::Bind {
                host: w[1].host.clone(),
                inside: w[1].inside.clone(),
                source: invalid("another bind already appears there"),
            });
        }

        let mut sb = RootedSandbox {
            root,
            binds: Vec::with_capacity(planned.len()),
            workdir: PathBuf::new(),
            entries,
            plan: Arc::new(Plan::default()),
        };
        // Each bind is checked against what exists once those before it are mounted.
        for b in planned {
            sb.check_mountpoint(&b)?;
            sb.binds.push(b);
        }
        let workdir = workdir.into();
        let wd_err = |source| SandboxError::Workdir {
            path: workdir.clone(),
            source,
        };
        let wd = normalized(&workdir).map_err(wd_err)?;
        match sb.locate(&wd) {
            Some(Place::Provided) => {}
            Some(Place::Host(p, _)) if p.is_dir() => {}
            Some(Place::Host(..)) => {
                return Err(wd_err(io::Error::from_raw_os_error(libc::ENOTDIR)));
            }
            _ => return Err(wd_err(not_found("no such directory inside the sandbox"))),
        }
        sb.workdir = wd;
        sb.plan = Arc::new(sb.make_plan().map_err(|source| SandboxError::Root {
            path: sb.root.clone(),
            source,
        })?);
        Ok(sb)
    }

    /// The root directory (canonical) that becomes `/`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The binds, with canonical host paths, in the order they are mounted.
    pub fn binds(&self) -> &[Bind] {
        &self.binds
    }

    /// The in-root working directory programs start in.
    pub fn workdir(&self) -> &Path {
        &self.workdir
    }

    /// Arranges for `cmd` to start inside the sandbox, with `umask 022`, in [`Self::workdir`].
    ///
    /// `cmd`'s program is looked up inside the root (an in-root path; a bare name is searched
    /// on the command's `PATH`, inside). A `current_dir` set on `cmd` is entered on the host
    /// before the sandbox is built, so it must exist there and does not matter inside. The
    /// environment is `cmd`'s own: start from [`crate::Hermetic::command`] for a scrubbed one.
    ///
    /// If the kernel refuses a step, spawning fails with its errno and the step is written
    /// to the command's stderr; [`Self::check`] reports the same as a [`SandboxError`].
    /// Killing the process `spawn` returns kills everything in the sandbox.
    pub fn apply(&self, cmd: &mut Command) {
        self.install(cmd, -1);
    }

    /// Whether `path` (an absolute in-root path) will be a regular file inside the sandbox,
    /// symlinks followed as the kernel will follow them there.
    pub fn provides_file(&self, path: &Path) -> bool {
        path.is_absolute() && matches!(self.locate(path), Some(Place::Host(p, _)) if p.is_file())
    }

    /// A command running `program` (an absolute in-root path) inside the sandbox, after
    /// checking that the root or a bind provides it as an executable file: a clear error
    /// instead of a bare "No such file or directory" from `spawn`.
    pub fn command(&self, program: &Path) -> Result<Command, SandboxError> {
        let err = |source| SandboxError::Program {
            program: program.to_path_buf(),
            root: self.root.clone(),
            source,
        };
        if !program.is_absolute() {
            return Err(err(invalid("name it by its absolute path inside the root")));
        }
        match self.locate(program) {
            Some(Place::Host(p, _)) => match std::fs::metadata(&p) {
                Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => {}
                Ok(_) => return Err(err(invalid("not an executable file"))),
                Err(e) => return Err(err(e)),
            },
            _ => return Err(err(not_found("no such file inside the sandbox"))),
        }
        let mut cmd = kiln_core::process::command(program);
        self.apply(&mut cmd);
        Ok(cmd)
    }

    /// Builds the sandbox once in a throwaway process, without running anything in it,
    /// so that a kernel that refuses any step (user namespaces disabled, `/proc` masked
    /// in a container, no `mount_setattr`) is reported before a build starts, naming the
    /// system call, the path, the errno and the fix.
    pub fn check(&self) -> Result<(), SandboxError> {
        let probe_err = |source| SandboxError::RootRefused {
            root: self.root.clone(),
            call: "spawn",
            about: "the sandbox probe".into(),
            fix: GENERIC_FIX.into(),
            source,
        };
        let (mut reader, writer) = io::pipe().map_err(probe_err)?;
        // The program is never executed: the probe exits once the root is built.
        let mut cmd = kiln_core::process::command("kiln-rooted-sandbox-probe");
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.install(&mut cmd, writer.as_raw_fd());
        let status = cmd.status();
        drop(cmd);
        drop(writer);
        let mut record = Vec::new();
        let _ = reader.read_to_end(&mut record);
        if let Some(rec) = record.get(..8) {
            let step = u32::from_ne_bytes([rec[0], rec[1], rec[2], rec[3]]) as usize;
            let errno = i32::from_ne_bytes([rec[4], rec[5], rec[6], rec[7]]);
            if let Some(op) = self.plan.ops.get(step) {
                return Err(SandboxError::RootRefused {
                    root: self.root.clone(),
                    call: op.step.call(),
                    about: op.about.clone(),
                    fix: op.step.fix(errno),
                    source: io::Error::from_raw_os_error(errno),
                });
            }
        }
        match status {
            Ok(s) if s.success() => Ok(()),
            Ok(s) => Err(probe_err(io::Error::other(format!(
                "probe exited with {s}"
            )))),
            Err(e) => Err(probe_err(e)),
        }
    }

    fn install(&self, cmd: &mut Command, report: libc::c_int) {
        let plan = Arc::clone(&self.plan);
        // The opened sources' descriptors, written by index in the child: allocated here.
        let mut fds: Vec<libc::c_int> = vec![-1; plan.slots];
        // SAFETY: the closure runs between fork and exec; `enter` only makes
        // async-signal-safe system calls on the plan computed before the fork and on `fds`,
        // allocated before it too; it allocates nothing.
        unsafe {
            cmd.pre_exec(move || enter(&plan, &mut fds, report));
        }
    }

    /// Where `path` (absolute, normalized) is, given the binds planned so far.
    fn place(&self, path: &Path) -> Place {
        if let Some(b) = self
            .binds
            .iter()
            .filter(|b| path.starts_with(&b.inside))
            .max_by_key(|b| b.inside.components().count())
        {
            let host = match path.strip_prefix(&b.inside) {
                Ok(rest) if !rest.as_os_str().is_empty() => b.host.join(rest),
                _ => b.host.clone(),
            };
            return Place::Host(host, !b.writable);
        }
        let rel: Vec<&OsStr> = path
            .components()
            .filter_map(|c| match c {
                Component::Normal(s) => Some(s),
                _ => None,
            })
            .collect();
        let Some(first) = rel.first() else {
            return Place::Provided;
        };
        if self.entries.iter().any(|e| e.name == *first) {
            return Place::Host(self.root.join(rel.iter().collect::<PathBuf>()), true);
        }
        if self.binds.iter().any(|b| b.inside.starts_with(path)) {
            return Place::Provided;
        }
        match (
            first.to_str(),
            rel.get(1).and_then(|s| s.to_str()),
            rel.len(),
        ) {
            (Some(p), _, 1) if PROVIDED.contains(&p) => Place::Provided,
            (Some("dev"), Some("shm"), 2) => Place::Provided,
            (Some("dev"), Some(n), 2) if DEV_NODES.contains(&n) => {
                Place::Host(Path::new("/dev").join(n), true)
            }
            _ => Place::Absent,
        }
    }

    /// Follows `path` inside the sandbox as the kernel will once it is built (symlinks in
    /// the root and the binds resolve inside), to where it ends; `None` when nothing is
    /// there.
    fn locate(&self, path: &Path) -> Option<Place> {
        fn parts(p: &Path) -> impl DoubleEndedIterator<Item = OsString> + '_ {
            p.components().filter_map(|c| match c {
                Component::Normal(s) => Some(s.to_os_string()),
                Component::ParentDir => Some("..".into()),
                _ => None,
            })
        }
        let mut todo: Vec<OsString> = parts(path).rev().collect();
        let mut cur = PathBuf::from("/");
        let mut hops = 0;
        while let Some(c) = todo.pop() {
            if c == ".." {
                cur.pop();
                continue;
            }
            cur.push(&c);
            match self.place(&cur) {
                Place::Host(h, _) => {
                    let meta = std::fs::symlink_metadata(&h).ok()?;
                    if meta.file_type().is_symlink() {
                        hops += 1;
                        if hops > 40 {
                            return None;
                        }
                        let target = std::fs::read_link(&h).ok()?;
                        cur.pop();
                        if target.is_absolute() {
                            cur = PathBuf::from("/");
                        }
                        todo.extend(parts(&target).rev().collect::<Vec<_>>());
                    }
                }
                Place::Provided => {}
                Place::Absent => return None,
            }
        }
        Some(self.place(&cur))
    }

    /// A bind's mountpoint must be creatable: every directory above it is made on the way
    /// (in the sandbox's tmpfs or a writable bind), but a read-only tree (the root, a
    /// read-only bind) has to hold it already. And no component may be a symlink: the
    /// mounts are made before `pivot_root`, where an absolute link would point into the
    /// host.
    fn check_mountpoint(&self, b: &Bind) -> Result<(), SandboxError> {
        let err = |msg: String| SandboxError::Bind {
            host: b.host.clone(),
            inside: b.inside.clone(),
            source: invalid(msg),
        };
        let mut p = PathBuf::from("/");
        for c in b.inside.components().skip(1) {
            p.push(c);
            if let Place::Host(h, read_only) = self.place(&p) {
                match std::fs::symlink_metadata(&h) {
                    Ok(m) if m.file_type().is_symlink() => {
                        return Err(err(format!(
                            "{} is a symlink inside the sandbox; bind at the path it points to",
                            p.display()
                        )));
                    }
                    Ok(_) => {}
                    Err(_) if read_only => {
                        return Err(err(format!(
                            "{} does not exist in the read-only tree it lies in ({}), so it \
                             cannot be created as a mountpoint",
                            p.display(),
                            h.display()
                        )));
                    }
                    // Created in a writable bind, with whatever lies below it.
                    Err(_) => return Ok(()),
                }
            }
        }
        Ok(())
    }

    /// Every system call the child makes, in order, with what it is about.
    fn make_plan(&self) -> io::Result<Plan> {
        // SAFETY: geteuid/getegid have no preconditions and cannot fail.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        // The host path of an in-root path while the new root is mounted over the root's
        // own path, before pivot_root.
        let at = |inside: &Path| -> io::Result<CString> {
            cstring(&self.root.join(inside.strip_prefix("/").unwrap_or(inside)))
        };
        let mut ops = vec![
            Op::new(
                Step::Unshare,
                "for the user, mount, network and PID namespaces",
            ),
            Op::new(
                Step::WriteProc {
                    path: c"/proc/self/setgroups",
                    data: b"deny".to_vec(),
                },
                "/proc/self/setgroups",
            ),
            Op::new(
                Step::WriteProc {
                    path: c"/proc/self/uid_map",
                    data: format!("{uid} {uid} 1\n").into_bytes(),
                },
                "/proc/self/uid_map",
            ),
            Op::new(
                Step::WriteProc {
                    path: c"/proc/self/gid_map",
                    data: format!("{gid} {gid} 1\n").into_bytes(),
                },
                "/proc/self/gid_map",
            ),
            Op::new(Step::Fork, "PID 1 of the new PID namespace"),
            Op::new(Step::MakePrivate, "/ (so no mount reaches the host)"),
        ];
        // Sources are opened first: the tmpfs mounted over the root's path hides the
        // root's entries (and anything bound from below it) from path lookups.
        let mut opens = Vec::new();
        let mut open = |host: &Path| -> io::Result<usize> {
            opens.push(Op::new(
                Step::Open {
                    path: cstring(host)?,
                    slot: opens.len(),
                },
                host.display().to_string(),
            ));
            Ok(opens.len() - 1)
        };
        let mut mounts = Vec::new();
        let ro = libc::MOUNT_ATTR_RDONLY | libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV;
        for e in &self.entries {
            let inside = Path::new("/").join(&e.name);
            let about = inside.display().to_string();
            match &e.kind {
                EntryKind::Symlink(target) => mounts.push(Op::new(
                    Step::Symlink {
                        target: cstring(target)?,
                        path: at(&inside)?,
                    },
                    format!("{about} -> {}", target.display()),
                )),
                kind => {
                    let slot = open(&self.root.join(&e.name))?;
                    let make = if matches!(kind, EntryKind::Dir) {
                        Step::Mkdir {
                            path: at(&inside)?,
                            mode: 0o755,
                        }
                    } else {
                        Step::Mknod { path: at(&inside)? }
                    };
                    mounts.push(Op::new(make, about.clone()));
                    mounts.push(Op::new(
                        Step::Bind {
                            slot,
                            target: at(&inside)?,
                        },
                        format!("{} at {about}", self.root.join(&e.name).display()),
                    ));
                    mounts.push(Op::new(
                        Step::SetAttr {
                            target: at(&inside)?,
                            set: ro,
                            recursive: true,
                        },
                        format!("{about} (read-only)"),
                    ));
                }
            }
        }
        let dir = |inside: &str, mode| -> io::Result<Op> {
            Ok(Op::new(
                Step::Mkdir {
                    path: at(Path::new(inside))?,
                    mode,
                },
                inside,
            ))
        };
        mounts.push(dir("/proc", 0o555)?);
        mounts.push(Op::new(
            Step::Proc {
                target: at(Path::new("/proc"))?,
            },
            "/proc",
        ));
        mounts.push(dir("/dev", 0o755)?);
        for n in DEV_NODES {
            let inside = Path::new("/dev").join(n);
            let slot = open(&inside)?;
            let about = inside.display().to_string();
            mounts.push(Op::new(Step::Mknod { path: at(&inside)? }, about.clone()));
            mounts.push(Op::new(
                Step::Bind {
                    slot,
                    target: at(&inside)?,
                },
                format!("{about} at {about}"),
            ));
            mounts.push(Op::new(
                Step::SetAttr {
                    target: at(&inside)?,
                    set: libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NOEXEC,
                    recursive: false,
                },
                about,
            ));
        }
        for (name, target) in DEV_LINKS {
            let inside = Path::new("/dev").join(name);
            mounts.push(Op::new(
                Step::Symlink {
                    target: cstring(Path::new(target))?,
                    path: at(&inside)?,
                },
                format!("{} -> {target}", inside.display()),
            ));
        }
        for inside in ["/dev/shm", "/tmp"] {
            mounts.push(dir(inside, 0o755)?);
            mounts.push(Op::new(
                Step::Tmpfs {
                    target: at(Path::new(inside))?,
                    options: c"mode=1777",
                },
                inside,
            ));
        }
        for b in &self.binds {
            let slot = open(&b.host)?;
            let mut p = PathBuf::from("/");
            let mut parents = b.inside.components().skip(1).peekable();
            while let Some(c) = parents.next() {
                p.push(c);
                if parents.peek().is_some() {
                    mounts.push(Op::new(
                        Step::Mkdir {
                            path: at(&p)?,
                            mode: 0o755,
                        },
                        p.display().to_string(),
                    ));
                }
            }
            let about = b.inside.display().to_string();
            let make = if b.host.is_dir() {
                Step::Mkdir {
                    path: at(&b.inside)?,
                    mode: 0o755,
                }
            } else {
                Step::Mknod {
                    path: at(&b.inside)?,
                }
            };
            mounts.push(Op::new(make, about.clone()));
            mounts.push(Op::new(
                Step::Bind {
                    slot,
                    target: at(&b.inside)?,
                },
                format!("{} at {about}", b.host.display()),
            ));
            let (set, how) = if b.writable {
                (libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV, "writable")
            } else {
                (ro, "read-only")
            };
            mounts.push(Op::new(
                Step::SetAttr {
                    target: at(&b.inside)?,
                    set,
                    recursive: true,
                },
                format!("{about} ({how})"),
            ));
        }
        let slots = opens.len();
        let root = self.root.display().to_string();
        ops.extend(opens);
        ops.push(Op::new(
            Step::Tmpfs {
                target: cstring(&self.root)?,
                options: c"mode=0755",
            },
            format!("as the new / (over {root})"),
        ));
        ops.extend(mounts);
        ops.push(Op::new(
            Step::PivotRoot {
                new_root: cstring(&self.root)?,
            },
            format!("into the new / (at {root})"),
        ));
        ops.push(Op::new(Step::DetachOld, "the host's /"));
        ops.push(Op::new(
            Step::SetAttr {
                target: c"/".to_owned(),
                set: libc::MOUNT_ATTR_RDONLY,
                recursive: false,
            },
            "/ (read-only)",
        ));
        ops.push(Op::new(
            Step::Chdir {
                path: cstring(&self.workdir)?,
            },
            self.workdir.display().to_string(),
        ));
        ops.push(Op::new(Step::Loopback, "lo"));
        Ok(Plan { ops, slots })
    }
}

impl std::fmt::Display for RootedSandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "root:{}", self.root.display())
    }
}

impl serde::Serialize for RootedSandbox {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("RootedSandbox", 4)?;
        st.serialize_field("mode", "root")?;
        st.serialize_field("root", &self.root)?;
        st.serialize_field("binds", &self.binds)?;
        st.serialize_field("workdir", &self.workdir)?;
        st.end()
    }
}

/// Where an in-sandbox path is.
enum Place {
    /// On the host, through the root or a bind (read-only or not).
    Host(PathBuf, bool),
    /// A directory the sandbox makes: `/`, `/proc`, `/dev`, `/tmp`, a bind's parents.
    Provided,
    /// Nothing: not in the root, no bind, nothing the sandbox makes.
    Absent,
}

fn read_entries(root: &Path) -> io::Result<Vec<Entry>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(root)? {
        let e = e?;
        let name = e.file_name();
        if name.to_str().is_some_and(|n| PROVIDED.contains(&n)) {
            continue;
        }
        let ft = e.file_type()?;
        let kind = if ft.is_symlink() {
            EntryKind::Symlink(std::fs::read_link(e.path())?)
        } else if ft.is_dir() {
            EntryKind::Dir
        } else {
            EntryKind::File
        };
        out.push(Entry { name, kind });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// `p` as an absolute path made of plain names only.
fn normalized(p: &Path) -> io::Result<PathBuf> {
    if !p.is_absolute() {
        return Err(invalid("must be an absolute path inside the sandbox"));
    }
    if p.as_os_str().as_bytes().contains(&0) {
        return Err(invalid("contains a NUL byte"));
    }
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(s) => out.push(s),
            Component::ParentDir | Component::Prefix(_) => {
                return Err(invalid("must not contain `..`"));
            }
        }
    }
    Ok(out)
}

fn cstring(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| invalid("contains a NUL byte"))
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg.into())
}

fn not_found(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, msg)
}

const GENERIC_FIX: &str = "the rooted sandbox needs Linux 5.12 or later with user namespaces \
                           allowed (sysctl user.max_user_namespaces > 0; on Debian \
                           kernel.unprivileged_userns_clone=1, on Ubuntu \
                           kernel.apparmor_restrict_unprivileged_userns=0); inside a container, \
                           one that permits unshare and mount (e.g. Docker's \
                           --security-opt seccomp=unconfined --security-opt systempaths=unconfined)";

/// Every system call the sandbox makes, planned before the fork.
#[derive(Debug, Default)]
struct Plan {
    ops: Vec<Op>,
    /// How many sources [`Step::Open`] opens.
    slots: usize,
}

#[derive(Debug)]
struct Op {
    step: Step,
    /// What the call is about, for the error: the path, in-root where that is clearer.
    about: String,
}

impl Op {
    fn new(step: Step, about: impl Into<String>) -> Self {
        Op {
            step,
            about: about.into(),
        }
    }
}

#[derive(Debug)]
enum Step {
    Unshare,
    WriteProc {
        path: &'static CStr,
        data: Vec<u8>,
    },
    /// The ops before it run in the process std forked, which stays outside the new PID
    /// namespace and waits; the ones after in its child, PID 1 of the namespace.
    Fork,
    MakePrivate,
    /// `open(O_PATH)` into the child's descriptor table `slot`.
    Open {
        path: CString,
        slot: usize,
    },
    Tmpfs {
        target: CString,
        options: &'static CStr,
    },
    /// An existing directory is fine (it may already be in the tree).
    Mkdir {
        path: CString,
        mode: libc::mode_t,
    },
    /// An empty file to bind a file over; an existing one is fine.
    Mknod {
        path: CString,
    },
    Symlink {
        target: CString,
        path: CString,
    },
    /// A recursive bind of the source opened into `slot`.
    Bind {
        slot: usize,
        target: CString,
    },
    SetAttr {
        target: CString,
        set: u64,
        recursive: bool,
    },
    Proc {
        target: CString,
    },
    PivotRoot {
        new_root: CString,
    },
    DetachOld,
    Chdir {
        path: CString,
    },
    Loopback,
}

impl Step {
    fn call(&self) -> &'static str {
        match self {
            Step::Unshare => "unshare(CLONE_NEWUSER|CLONE_NEWNS|CLONE_NEWNET|CLONE_NEWPID)",
            Step::WriteProc { .. } => "write",
            Step::Fork => "fork",
            Step::MakePrivate => "mount(MS_REC|MS_PRIVATE)",
            Step::Open { .. } => "open(O_PATH)",
            Step::Tmpfs { .. } => "mount(\"tmpfs\")",
            Step::Mkdir { .. } => "mkdir",
            Step::Mknod { .. } => "mknod(S_IFREG)",
            Step::Symlink { .. } => "symlink",
            Step::Bind { .. } => "mount(MS_BIND|MS_REC)",
            Step::SetAttr { .. } => "mount_setattr",
            Step::Proc { .. } => "mount(\"proc\")",
            Step::PivotRoot { .. } => "pivot_root",
            Step::DetachOld => "umount2(MNT_DETACH)",
            Step::Chdir { .. } => "chdir",
            Step::Loopback => "ioctl(SIOCSIFFLAGS)",
        }
    }

    /// The fix for this step failing with `errno`.
    fn fix(&self, errno: i32) -> String {
        match (self, errno) {
            (Step::Unshare | Step::WriteProc { .. }, _) => GENERIC_FIX.into(),
            (Step::Fork, _) => "the process limit is reached (ulimit -u); retry when fewer \
                                processes run"
                .into(),
            (Step::Proc { .. }, _) => "a fresh /proc can only be mounted where the host's \
                                       /proc is fully visible: in a container whose /proc has \
                                       masked paths (Docker's default) run with \
                                       --security-opt systempaths=unconfined, or run kiln on \
                                       the host"
                .into(),
            (Step::SetAttr { .. }, libc::ENOSYS) => {
                "read-only binds use mount_setattr(2), which needs Linux 5.12 or later".into()
            }
            (Step::Open { .. }, _) => "a path the sandbox binds changed after the sandbox was \
                                       planned: restore it, or plan the sandbox again"
                .into(),
            (Step::Mkdir { .. } | Step::Mknod { .. } | Step::Symlink { .. }, _) => {
                "a mountpoint could not be made in the new root: bind at a path outside the \
                 root's read-only directories, or one that exists in them"
                    .into()
            }
            (Step::PivotRoot { .. }, libc::EINVAL) => "pivot_root refuses when kiln itself \
                                                       runs inside a chroot: run it from a \
                                                       real root (the host or a container)"
                .into(),
            (Step::Chdir { .. }, _) => "the working directory disappeared after the sandbox \
                                        was planned: restore it, or plan the sandbox again"
                .into(),
            _ => GENERIC_FIX.into(),
        }
    }
}

// ---- between fork and exec: async-signal-safe system calls only, nothing allocates ----

fn errno() -> libc::c_int {
    // SAFETY: __errno_location returns this thread's errno slot, always valid.
    unsafe { *libc::__errno_location() }
}

/// Runs the plan in the child `std` forked. Returns only in PID 1 of the new namespace,
/// inside the new root, ready for `std` to exec the program; the waiter never returns.
///
/// `report` is the probe's pipe ([`RootedSandbox::check`]), or -1: the failing step's
/// index and errno are written there; without it, a line naming them goes to stderr.
///
/// # Safety
/// Only between fork and exec, in a single-threaded child.
unsafe fn enter(plan: &Plan, fds: &mut [libc::c_int], report: libc::c_int) -> io::Result<()> {
    // SAFETY: plain system calls on data prepared before the fork (see the module docs).
    unsafe {
        // Modes of what the plan makes are exact; the program gets 022, as in every mode.
        libc::umask(0);
        for (i, op) in plan.ops.iter().enumerate() {
            let r = match &op.step {
                Step::Fork => fork_into_pid_ns(),
                step => run(step, fds),
            };
            if let Err(e) = r {
                fail(i, op, e, report);
                return Err(io::Error::from_raw_os_error(e));
            }
        }
        libc::umask(0o022);
        if report >= 0 {
            // The probe: the root is built, nothing is to run in it.
            libc::_exit(0);
        }
        Ok(())
    }
}

/// Forks; the parent waits for the child and exits as it did (it never returns), the
/// child (PID 1 of the new PID namespace) returns to go on with the plan.
unsafe fn fork_into_pid_ns() -> Result<(), libc::c_int> {
    // SAFETY: async-signal-safe calls on stack data; see each comment.
    unsafe {
        // The waiter must be able to wait, whatever the parent did with SIGCHLD.
        libc::signal(libc::SIGCHLD, libc::SIG_DFL);
        let mut sync = [-1; 2];
        if libc::pipe2(sync.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
            return Err(errno());
        }
        let pid = libc::fork();
        if pid < 0 {
            let e = errno();
            libc::close(sync[0]);
            libc::close(sync[1]);
            return Err(e);
        }
        if pid > 0 {
            libc::close(sync[1]);
            wait_and_exit_as(pid, sync[0]);
        }
        libc::close(sync[0]);
        // Dies with the waiter: killing the process the caller holds kills the sandbox
        // (and, as PID 1 of its namespace, everything in it).
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
        // The waiter may have died before that: then the pipe has no reader any more.
        let mut p = libc::pollfd {
            fd: sync[1],
            events: 0,
            revents: 0,
        };
        if libc::poll(&mut p, 1, 0) == 1 && p.revents & libc::POLLERR != 0 {
            libc::_exit(1);
        }
        // sync[1] stays open until exec (or exit) closes it: that is the waiter's signal.
        Ok(())
    }
}

/// The waiter: once the child has exec'd (or died), it does what its own exec would have
/// done (close close-on-exec descriptors, above all std's error pipe, whose closing tells
/// the caller's `spawn` the program started; reset handled signals), then relays the
/// child's exit status or signal.
unsafe fn wait_and_exit_as(child: libc::pid_t, sync: libc::c_int) -> ! {
    // SAFETY: async-signal-safe calls on stack data.
    unsafe {
        let mut b = 0u8;
        while libc::read(sync, (&raw mut b).cast(), 1) < 0 && errno() == libc::EINTR {}
        // A child that failed wrote its errno to std's pipe before exiting, so closing our
        // copy now loses nothing.
        if libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) != 0 {
            let mut lim: libc::rlimit = std::mem::zeroed();
            let max = if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
                lim.rlim_cur.min(1 << 16) as libc::c_int
            } else {
                1024
            };
            for fd in 3..max {
                libc::close(fd);
            }
        }
        for sig in 1..65 {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut old) == 0
                && old.sa_sigaction != libc::SIG_IGN
                && old.sa_sigaction != libc::SIG_DFL
            {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        let mut status = 0;
        loop {
            if libc::waitpid(child, &mut status, 0) == child {
                break;
            }
            if errno() != libc::EINTR {
                libc::_exit(127);
            }
        }
        if libc::WIFEXITED(status) {
            libc::_exit(libc::WEXITSTATUS(status));
        }
        let sig = libc::WTERMSIG(status);
        // Die of the same signal (without a second core dump), so the caller sees it.
        let no_core = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::setrlimit(libc::RLIMIT_CORE, &no_core);
        libc::signal(sig, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::raise(sig);
        libc::_exit(128 + sig)
    }
}

unsafe fn run(step: &Step, fds: &mut [libc::c_int]) -> Result<(), libc::c_int> {
    let ok = |r: libc::c_int| if r == 0 { Ok(()) } else { Err(errno()) };
    let null = std::ptr::null::<libc::c_char>();
    // SAFETY: every pointer is a NUL-terminated string of the plan, a static, or a stack
    // buffer that outlives the call.
    unsafe {
        match step {
            Step::Unshare => ok(libc::unshare(
                libc::CLONE_NEWUSER | libc::CLONE_NEWNS | libc::CLONE_NEWNET | libc::CLONE_NEWPID,
            )),
            Step::WriteProc { path, data } => {
                write_proc(path, data).map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))
            }
            Step::Fork => Err(libc::EINVAL),
            Step::MakePrivate => ok(libc::mount(
                null,
                c"/".as_ptr(),
                null,
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            )),
            Step::Open { path, slot } => {
                let fd = libc::open(path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC);
                if fd < 0 {
                    return Err(errno());
                }
                let Some(s) = fds.get_mut(*slot) else {
                    return Err(libc::EINVAL);
                };
                *s = fd;
                Ok(())
            }
            Step::Tmpfs { target, options } => ok(libc::mount(
                c"tmpfs".as_ptr(),
                target.as_ptr(),
                c"tmpfs".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                options.as_ptr().cast(),
            )),
            Step::Mkdir { path, mode } => {
                if libc::mkdir(path.as_ptr(), *mode) == 0 || errno() == libc::EEXIST {
                    Ok(())
                } else {
                    Err(errno())
                }
            }
            Step::Mknod { path } => {
                if libc::mknod(path.as_ptr(), libc::S_IFREG | 0o644, 0) == 0
                    || errno() == libc::EEXIST
                {
                    Ok(())
                } else {
                    Err(errno())
                }
            }
            Step::Symlink { target, path } => ok(libc::symlink(target.as_ptr(), path.as_ptr())),
            Step::Bind { slot, target } => {
                let Some(&fd) = fds.get(*slot) else {
                    return Err(libc::EINVAL);
                };
                let mut buf = [0u8; 32];
                let src = fd_path(fd, &mut buf);
                ok(libc::mount(
                    src,
                    target.as_ptr(),
                    null,
                    libc::MS_BIND | libc::MS_REC,
                    std::ptr::null(),
                ))
            }
            Step::SetAttr {
                target,
                set,
                recursive,
            } => {
                let attr = libc::mount_attr {
                    attr_set: *set,
                    attr_clr: 0,
                    propagation: 0,
                    userns_fd: 0,
                };
                let flags = if *recursive { libc::AT_RECURSIVE } else { 0 };
                let r = libc::syscall(
                    libc::SYS_mount_setattr,
                    libc::AT_FDCWD,
                    target.as_ptr(),
                    flags as libc::c_uint,
                    &attr,
                    std::mem::size_of::<libc::mount_attr>(),
                );
                ok(r as libc::c_int)
            }
            Step::Proc { target } => ok(libc::mount(
                c"proc".as_ptr(),
                target.as_ptr(),
                c"proc".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                std::ptr::null(),
            )),
            Step::PivotRoot { new_root } => {
                ok(libc::chdir(new_root.as_ptr()))?;
                // pivot_root(".", "."): the old root ends up stacked on the new one, where
                // DetachOld unmounts it; no directory for it is needed in the new root.
                ok(
                    libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr())
                        as libc::c_int,
                )
            }
            Step::DetachOld => {
                ok(libc::umount2(c".".as_ptr(), libc::MNT_DETACH))?;
                ok(libc::chdir(c"/".as_ptr()))
            }
            Step::Chdir { path } => ok(libc::chdir(path.as_ptr())),
            Step::Loopback => loopback_up().map_err(|e| e.raw_os_error().unwrap_or(libc::EIO)),
        }
    }
}

/// `/proc/self/fd/<fd>` in `buf`, NUL-terminated: the bind source for an opened path.
fn fd_path(fd: libc::c_int, buf: &mut [u8; 32]) -> *const libc::c_char {
    let prefix = b"/proc/self/fd/";
    buf[..prefix.len()].copy_from_slice(prefix);
    let mut digits = [0u8; 12];
    let n = decimal(fd.max(0) as u32, &mut digits);
    buf[prefix.len()..prefix.len() + n].copy_from_slice(&digits[..n]);
    buf[prefix.len() + n] = 0;
    buf.as_ptr().cast()
}

/// Writes `v` in decimal to the start of `out`; returns the length.
fn decimal(mut v: u32, out: &mut [u8; 12]) -> usize {
    let mut tmp = [0u8; 12];
    let mut n = 0;
    loop {
        tmp[n] = b'0' + (v % 10) as u8;
        n += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for i in 0..n {
        out[i] = tmp[n - 1 - i];
    }
    n
}

/// Reports the failing step: to the probe's pipe, else as one line on stderr.
unsafe fn fail(index: usize, op: &Op, errno: libc::c_int, report: libc::c_int) {
    // SAFETY: write(2) of live buffers.
    unsafe {
        if report >= 0 {
            let mut rec = [0u8; 8];
            rec[..4].copy_from_slice(&(index as u32).to_ne_bytes());
            rec[4..].copy_from_slice(&errno.to_ne_bytes());
            libc::write(report, rec.as_ptr().cast(), rec.len());
            return;
        }
        let mut digits = [0u8; 12];
        let n = decimal(errno.max(0) as u32, &mut digits);
        for part in [
            b"kiln: rooted sandbox: ".as_slice(),
            op.step.call().as_bytes(),
            b" ",
            op.about.as_bytes(),
            b": os error ",
            &digits[..n],
            b"\n",
        ] {
            libc::write(2, part.as_ptr().cast(), part.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;
    use std::process::Output;

    /// A toolchain root made of nothing but usrmerge symlinks, an empty `usr` (the host's
    /// `/usr` is bound over it) and a marker file, next to host directories the tests bind
    /// (or deliberately do not).
    struct Fixture {
        dir: tempfile::TempDir,
        root: PathBuf,
        out: PathBuf,
        ro: PathBuf,
        conf: PathBuf,
        secret: PathBuf,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("usr")).unwrap();
        for (link, target) in [
            ("bin", "usr/bin"),
            ("lib", "usr/lib"),
            ("lib64", "usr/lib64"),
            ("sbin", "usr/sbin"),
        ] {
            std::os::unix::fs::symlink(target, root.join(link)).unwrap();
        }
        std::fs::write(root.join("root-marker"), "in the root\n").unwrap();
        let out = dir.path().join("out");
        let ro = dir.path().join("ro");
        let secret = dir.path().join("secret");
        for d in [&out, &ro, &secret] {
            std::fs::create_dir(d).unwrap();
        }
        std::fs::write(ro.join("file"), "read me\n").unwrap();
        std::fs::write(secret.join("marker"), "host only\n").unwrap();
        let conf = dir.path().join("kiln.conf");
        std::fs::write(&conf, "conf\n").unwrap();
        Fixture {
            root: root.canonicalize().unwrap(),
            out: out.canonicalize().unwrap(),
            ro: ro.canonicalize().unwrap(),
            conf: conf.canonicalize().unwrap(),
            secret: secret.canonicalize().unwrap(),
            dir,
        }
    }

    impl Fixture {
        fn binds(&self) -> Vec<Bind> {
            vec![
                Bind::read_only("/usr", "/usr"),
                Bind::writable(&self.out, "/out"),
                Bind::read_only(&self.ro, "/ro"),
                Bind::read_only(&self.ro, "/nested/deeper/ro"),
                Bind::read_only(&self.conf, "/cfg/kiln.conf"),
            ]
        }
        fn sandbox(&self) -> RootedSandbox {
            RootedSandbox::new(&self.root, self.binds(), "/out").unwrap()
        }
        fn root_listing(&self) -> Vec<String> {
            let mut v: Vec<String> = std::fs::read_dir(&self.root)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        }
    }

    fn sh(sb: &RootedSandbox, script: &str) -> Output {
        let mut cmd = sb.command(Path::new("/bin/sh")).unwrap();
        cmd.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .args(["-c", script]);
        cmd.output().unwrap()
    }

    fn stdout(o: &Output) -> String {
        assert!(
            o.status.success(),
            "{}\n{}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout.clone()).unwrap()
    }

    #[test]
    fn the_kernel_lets_this_machine_build_the_root() {
        fixture().sandbox().check().expect("rooted sandbox refused");
    }

    /// Only the root's entries, the binds and what the sandbox makes exist inside.
    #[test]
    fn sees_the_root_and_the_binds_and_nothing_else() {
        let f = fixture();
        let sb = f.sandbox();
        let script = format!(
            "ls -A /; echo ---; cat /root-marker /ro/file /nested/deeper/ro/file /cfg/kiln.conf; \
             pwd; id -u; test -x /usr/bin/sh && echo usr-bound; \
             for p in /work /etc /root /home {secret} {secret}/marker {root}; do \
               test -e $p && echo LEAK $p; done; echo done",
            secret = f.secret.display(),
            root = f.root.display(),
        );
        let out = stdout(&sh(&sb, &script));
        let (ls, rest) = out.split_once("---\n").unwrap();
        assert_eq!(
            ls.lines().collect::<Vec<_>>(),
            [
                "bin",
                "cfg",
                "dev",
                "lib",
                "lib64",
                "nested",
                "out",
                "proc",
                "ro",
                "root-marker",
                "sbin",
                "tmp",
                "usr"
            ]
        );
        // SAFETY: geteuid has no preconditions.
        let uid = unsafe { libc::geteuid() };
        assert_eq!(
            rest,
            format!("in the root\nread me\nread me\nconf\n/out\n{uid}\nusr-bound\ndone\n")
        );
    }

    #[test]
    fn writes_land_only_in_writable_binds() {
        let f = fixture();
        let before = f.root_listing();
        let sb = f.sandbox();
        let script = "echo persisted > /out/result && echo wrote-out; \
                      for p in /new-file /usr/kiln-probe /ro/new /ro/file /root-marker /cfg/kiln.conf /nested/x; do \
                        (echo x > $p) 2>/dev/null && echo WROTE $p; done; \
                      mkdir /bin/kiln-probe 2>/dev/null && echo WROTE /bin/kiln-probe; echo done";
        assert_eq!(stdout(&sh(&sb, script)), "wrote-out\ndone\n");
        assert_eq!(
            std::fs::read_to_string(f.out.join("result")).unwrap(),
            "persisted\n"
        );
        assert!(!Path::new("/usr/kiln-probe").exists());
        assert_eq!(
            std::fs::read_to_string(f.ro.join("file")).unwrap(),
            "read me\n"
        );
        assert!(!f.ro.join("new").exists());
        // The root is untouched: no mountpoints were made in it.
        assert_eq!(f.root_listing(), before);
        assert_eq!(std::fs::read_dir(f.root.join("usr")).unwrap().count(), 0);
    }

    #[test]
    fn the_network_is_cut() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let f = fixture();
        let sb = f.sandbox();
        let script = format!(
            "bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port}' 2>/dev/null && echo REACHED-HOST; \
             getent hosts example.com >/dev/null && echo RESOLVED; \
             cat /proc/net/dev; \
             python3 -c 'import socket; s=socket.socket(); s.bind((\"127.0.0.1\",0)); s.listen(); \
             socket.create_connection(s.getsockname()); print(\"LOOPBACK-OK\")'"
        );
        let out = stdout(&sh(&sb, &script));
        assert!(!out.contains("REACHED-HOST"), "{out}");
        assert!(!out.contains("RESOLVED"), "{out}");
        let ifaces: Vec<&str> = out
            .lines()
            .filter(|l| l.contains(':') && !l.contains('|'))
            .filter_map(|l| l.split(':').next())
            .map(str::trim)
            .collect();
        assert_eq!(ifaces, ["lo"], "{out}");
        assert!(out.contains("LOOPBACK-OK"), "{out}");
    }

    #[test]
    fn proc_dev_and_tmp_work() {
        let f = fixture();
        let sb = f.sandbox();
        let script = "readlink /proc/self/exe; echo pid $$; \
                      ls /proc | grep -c '^[0-9]'; \
                      echo gone > /dev/null && wc -c < /dev/null; \
                      head -c 8 /dev/urandom | wc -c; head -c 8 /dev/random | wc -c; \
                      head -c 4 /dev/zero | od -An -tx1; \
                      (echo x > /dev/full) 2>/dev/null || echo full-refused; \
                      ls -A /tmp | wc -l; echo t > /tmp/t && cat /tmp/t; \
                      echo s > /dev/shm/s && cat /dev/shm/s; \
                      echo via-fd > /dev/stdout; umask";
        let out = stdout(&sh(&sb, script));
        let lines: Vec<&str> = out.lines().map(str::trim).collect();
        assert_eq!(
            lines,
            [
                "/usr/bin/readlink",
                "pid 1",
                // sh, ls and grep: the host's processes are not there.
                "3",
                "0",
                "8",
                "8",
                "00 00 00 00",
                "full-refused",
                "0",
                "t",
                "s",
                "via-fd",
                "0022"
            ],
            "{out}"
        );
    }

    #[test]
    fn status_and_output_pass_through() {
        let f = fixture();
        let sb = f.sandbox();
        let out = sh(&sb, "echo to-stdout; echo to-stderr >&2; exit 7");
        assert_eq!(out.status.code(), Some(7));
        assert_eq!(out.stdout, b"to-stdout\n");
        assert_eq!(out.stderr, b"to-stderr\n");
        // More than a pipe buffer of output flows while the program runs.
        let big = sh(&sb, "head -c 1000000 /dev/zero");
        assert!(big.status.success());
        assert_eq!(big.stdout.len(), 1_000_000);
    }

    /// The host pids of processes whose command line contains `needle`.
    fn host_pids(needle: &str) -> Vec<i32> {
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).contains(needle))
            })
            .collect()
    }

    fn wait_until_gone(needle: &str) {
        for _ in 0..100 {
            if host_pids(needle).is_empty() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("{needle}: still running: {:?}", host_pids(needle));
    }

    fn start_sleeper(sb: &RootedSandbox, secs: &str) -> (std::process::Child, i32) {
        let mut cmd = sb.command(Path::new("/usr/bin/sleep")).unwrap();
        let mut child = cmd.arg(secs).spawn().unwrap();
        for _ in 0..100 {
            // The waiter (child.id()) has the same command line: the program is the other.
            if let Some(pid) = host_pids(secs)
                .into_iter()
                .find(|p| *p != child.id() as i32)
            {
                return (child, pid);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("the sandboxed sleep never appeared");
    }

    #[test]
    fn signals_pass_through_and_killing_the_sandbox_kills_everything() {
        let f = fixture();
        let sb = f.sandbox();
        // The program dies of a signal: the caller's child reports that signal.
        let (mut child, program) = start_sleeper(&sb, "987.651");
        // SAFETY: kill(2) of a pid that this test just found.
        unsafe { libc::kill(program, libc::SIGKILL) };
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
        wait_until_gone("987.651");
        // The caller kills the child it holds: the program inside goes with it.
        let (mut child, _) = start_sleeper(&sb, "987.652");
        // SAFETY: kill(2) of our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGTERM));
        wait_until_gone("987.652");
    }

    #[test]
    fn a_missing_program_is_a_clear_error() {
        let f = fixture();
        let sb = f.sandbox();
        let err = sb
            .command(Path::new("/usr/bin/kiln-no-such-tool"))
            .unwrap_err();
        assert!(matches!(err, SandboxError::Program { .. }), "{err:?}");
        let msg = format!("{err}: {}", std::error::Error::source(&err).unwrap());
        assert!(
            msg.contains("/usr/bin/kiln-no-such-tool")
                && msg.contains(&f.root.display().to_string())
                && msg.contains("no such file inside the sandbox"),
            "{msg}"
        );
        assert!(kiln_core::Hint::hint(&err).is_some());
        // A host program outside the root and binds is missing too.
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "/root/.cargo/bin/cargo".into());
        assert!(sb.command(Path::new(&cargo)).is_err());
        // Not executable, and relative, are refused as well.
        assert!(sb.command(Path::new("/root-marker")).is_err());
        assert!(sb.command(Path::new("bin/sh")).is_err());
        // Without the check, spawning fails (it does not run something else).
        let mut raw = kiln_core::process::command("/usr/bin/kiln-no-such-tool");
        sb.apply(&mut raw);
        let e = raw.output().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
    }

    #[test]
    fn a_root_that_is_not_a_directory_is_refused_before_anything_runs() {
        let f = fixture();
        let missing = f.dir.path().join("no-such-root");
        let e = RootedSandbox::new(&missing, vec![], "/").unwrap_err();
        assert!(matches!(e, SandboxError::Root { .. }), "{e:?}");
        assert!(e.to_string().contains("no-such-root"), "{e}");
        let e = RootedSandbox::new(&f.conf, vec![], "/").unwrap_err();
        assert_eq!(
            std::error::Error::source(&e)
                .and_then(|s| s.downcast_ref::<io::Error>())
                .and_then(io::Error::raw_os_error),
            Some(libc::ENOTDIR),
            "{e:?}"
        );
        assert!(RootedSandbox::new("/", vec![], "/").is_err());
        assert!(kiln_core::Hint::hint(&e).is_some());
    }

    #[test]
    fn binds_and_workdirs_it_cannot_make_are_refused_up_front() {
        let f = fixture();
        let try_bind =
            |b: Bind| RootedSandbox::new(&f.root, vec![Bind::read_only("/usr", "/usr"), b], "/");
        let refused = |b: Bind| {
            let e = try_bind(b).unwrap_err();
            assert!(matches!(e, SandboxError::Bind { .. }), "{e:?}");
        };
        refused(Bind::read_only(&f.ro, "relative"));
        refused(Bind::read_only(&f.ro, "/a/../b"));
        refused(Bind::read_only(&f.ro, "/"));
        refused(Bind::read_only(&f.ro, "/proc/x"));
        refused(Bind::read_only(f.dir.path().join("missing"), "/m"));
        // Inside the read-only /usr, a mountpoint that does not exist cannot be made.
        refused(Bind::read_only(&f.ro, "/usr/kiln-no-such-dir"));
        // /bin is a symlink in the root: bind at /usr/bin instead.
        refused(Bind::read_only(&f.ro, "/bin/kiln"));
        refused(Bind::read_only(&f.ro, "/usr"));
        // Existing directories inside read-only trees are fine mountpoints.
        assert!(try_bind(Bind::read_only(&f.ro, "/usr/share")).is_ok());
        let e = RootedSandbox::new(&f.root, f.binds(), "/nowhere").unwrap_err();
        assert!(matches!(e, SandboxError::Workdir { .. }), "{e:?}");
        assert!(RootedSandbox::new(&f.root, f.binds(), "/root-marker").is_err());
        for ok in ["/", "/tmp", "/nested/deeper", "/usr/bin", "/bin"] {
            assert!(RootedSandbox::new(&f.root, f.binds(), ok).is_ok(), "{ok}");
        }
    }

    /// What the kernel refuses while the root is built comes back naming the call, the
    /// path and the errno, with a fix.
    #[test]
    fn check_names_the_call_that_failed() {
        let f = fixture();
        let gone = f.dir.path().join("gone");
        std::fs::create_dir(&gone).unwrap();
        let sb = RootedSandbox::new(&f.root, vec![Bind::read_only(&gone, "/gone")], "/").unwrap();
        std::fs::remove_dir(&gone).unwrap();
        let e = sb.check().unwrap_err();
        let SandboxError::RootRefused {
            call,
            about,
            source,
            ..
        } = &e
        else {
            panic!("{e:?}");
        };
        assert_eq!(*call, "open(O_PATH)");
        assert!(about.contains("gone"), "{about}");
        assert_eq!(source.raw_os_error(), Some(libc::ENOENT));
        assert!(kiln_core::Hint::hint(&e).is_some_and(|h| h.contains("plan the sandbox again")));
        // Run anyway, spawning fails with the errno and stderr names the step.
        let log = f.dir.path().join("stderr.log");
        let mut cmd = kiln_core::process::command("/usr/bin/true");
        cmd.stderr(std::fs::File::create(&log).unwrap());
        sb.apply(&mut cmd);
        let e = cmd.spawn().unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            format!(
                "kiln: rooted sandbox: open(O_PATH) {}: os error 2\n",
                gone.display()
            )
        );
    }

    /// A kernel that refuses the user namespace (here: a user namespace, made for the test
    /// process alone, whose limit for nested ones is 0) is reported by `check`, naming the
    /// call, the errno and the fix, before anything runs.
    #[test]
    fn a_kernel_refusal_is_reported_before_anything_runs() {
        const NAME: &str = "rooted::tests::a_kernel_refusal_is_reported_before_anything_runs";
        if std::env::var_os("KILN_TEST_NO_USERNS").is_some() {
            let e = fixture().sandbox().check().unwrap_err();
            let SandboxError::RootRefused { call, source, .. } = &e else {
                panic!("{e:?}");
            };
            assert!(call.starts_with("unshare(CLONE_NEWUSER"), "{call}");
            assert_eq!(source.raw_os_error(), Some(libc::ENOSPC));
            let fix = kiln_core::Hint::hint(&e).unwrap();
            assert!(fix.contains("user.max_user_namespaces"), "{fix}");
            println!("REFUSED {e}: {source}");
            return;
        }
        let exe = std::env::current_exe().unwrap();
        let out = kiln_core::process::command("unshare")
            .args(["--user", "--map-root-user", "sh", "-c"])
            .arg(format!(
                "echo 0 > /proc/sys/user/max_user_namespaces && \
                 exec \"$0\" --exact {NAME} --nocapture --test-threads=1"
            ))
            .arg(exe)
            .env("KILN_TEST_NO_USERNS", "1")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains("REFUSED rooted sandbox /")
                && text.contains(
                    ": unshare(CLONE_NEWUSER|CLONE_NEWNS|CLONE_NEWNET|CLONE_NEWPID) for the user, \
                 mount, network and PID namespaces: No space left on device (os error 28)"
                ),
            "{text}"
        );
    }

    #[test]
    fn display_and_record_name_the_mode() {
        let f = fixture();
        let sb = f.sandbox();
        assert_eq!(sb.to_string(), format!("root:{}", f.root.display()));
        let v = serde_json::to_value(&sb).unwrap();
        assert_eq!(v["mode"], "root");
        assert_eq!(v["root"], f.root.display().to_string());
        assert_eq!(v["workdir"], "/out");
        assert_eq!(v["binds"][0]["inside"], "/cfg/kiln.conf");
        assert_eq!(v["binds"].as_array().unwrap().len(), 5);
    }

    /// The real thing: the toolchain's own rustc, bound read-only at its own path, finds its
    /// sysroot through /proc/self/exe, compiles with the root's gcc and the result runs.
    /// (`cc` is a Debian alternative, a link into the host's /etc, which is not there.)
    #[test]
    fn rustc_compiles_and_runs_inside_the_root() {
        let Ok(out) = kiln_core::process::command("rustc")
            .args(["--print", "sysroot"])
            .output()
        else {
            panic!("rustc is needed for this test");
        };
        let sysroot = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
        let f = fixture();
        std::fs::write(
            f.out.join("hello.rs"),
            "fn main() { println!(\"hello from the root\"); }\n",
        )
        .unwrap();
        let mut binds = f.binds();
        binds.push(Bind::read_only(&sysroot, &sysroot));
        let sb = RootedSandbox::new(&f.root, binds, "/out").unwrap();
        sb.check().unwrap();
        let mut cmd = sb.command(&sysroot.join("bin/rustc")).unwrap();
        cmd.env_clear().env("PATH", "/usr/bin:/bin").args([
            "--edition=2021",
            "-Clinker=gcc",
            "hello.rs",
            "-o",
            "hello",
        ]);
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = sb
            .command(Path::new("/out/hello"))
            .unwrap()
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            "hello from the root\n"
        );
    }
}
