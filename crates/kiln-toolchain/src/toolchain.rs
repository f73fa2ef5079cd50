//! Finding the toolchain on this machine and computing its lock.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use kiln_core::HashingWriter;

use crate::error::{Error, Result};
use crate::lock::{CcInfo, FileEntry, SCHEMA, TargetCfg, ToolVersion, ToolchainLock};

/// Programs the C driver runs, asked for with `cc -print-prog-name=NAME`. `ld` and
/// `collect2` are the linker path; `as` and `cc1` compile the C that build scripts hand
/// to the `cc` crate, which ends up linked into the output just the same.
const CC_PROGRAMS: &[&str] = &["ld", "collect2", "as", "cc1"];

/// C runtime objects and libraries, asked for with `cc -print-file-name=NAME`; those that
/// resolve to an existing file are pinned.
const CC_FILES: &[&str] = &[
    "crt1.o",
    "Scrt1.o",
    "rcrt1.o",
    "crti.o",
    "crtn.o",
    "crtbegin.o",
    "crtbeginS.o",
    "crtbeginT.o",
    "crtend.o",
    "crtendS.o",
    "libc.a",
    "libc.so",
    "libc.so.6",
    "libc_nonshared.a",
    "libm.a",
    "libm.so.6",
    "libpthread.a",
    "libdl.a",
    "librt.a",
    "libutil.a",
    "libgcc.a",
    "libgcc_eh.a",
    "libgcc_s.so.1",
    "ld-linux-x86-64.so.2",
];

/// Files directly in `<sysroot>/lib` that rustc loads: the compiler itself
/// (`librustc_driver-*`), the LLVM it generates code with (`libLLVM*`), and `libstd-*` on
/// older layouts. Matched by prefix because a distro sysroot such as `/usr` keeps the
/// whole system's libraries in the same directory.
const SYSROOT_LIB_PREFIXES: &[&str] = &["librustc_driver", "libLLVM", "libstd-"];

/// The resolved toolchain kiln will invoke (absolute paths; never rustup proxies).
///
/// The fields are public so a caller (or a test) can point kiln at a specific toolchain;
/// [`Toolchain::detect`] fills them in from the environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Toolchain {
    /// Canonical `rustc --print sysroot`.
    pub sysroot: PathBuf,
    /// `<sysroot>/bin/rustc`.
    pub rustc: PathBuf,
    /// `<sysroot>/bin/cargo`.
    pub cargo: PathBuf,
    /// The C compiler driver, canonical (e.g. `/usr/bin/x86_64-linux-gnu-gcc-12`).
    pub cc: PathBuf,
    /// rustc's host triple.
    pub host: String,
    /// The triple being built for (the host unless asked otherwise).
    pub target: String,
    /// The rustup toolchain this is (`1.95.0-x86_64-unknown-linux-gnu`, `nightly-...`): the
    /// sysroot's directory name when it sits in rustup's `toolchains/`; `None` for a
    /// toolchain rustup does not manage.
    pub rustup_toolchain: Option<String>,
}

impl Toolchain {
    /// Finds rustc via `$RUSTC` or `rustc` on `PATH` and asks it for `--print sysroot` and
    /// `-vV`. rustc and cargo are then the sysroot's own `bin/rustc` and `bin/cargo`, so
    /// neither rustup proxies nor `PATH` can swap them later. cc is `$CC`, else `cc` on
    /// `PATH`, canonicalized (`$CC` must name a single program; wrappers with arguments
    /// are not supported).
    ///
    /// `target` defaults to the host; its standard library must be installed. rustup
    /// resolves the toolchain for the working directory; see [`Toolchain::detect_for`].
    pub fn detect(target: Option<&str>) -> Result<Self> {
        Self::detect_for(Path::new("."), None, target)
    }

    /// Like [`Toolchain::detect`], as if run inside `project`: rustup picks the toolchain
    /// from `project`'s `rust-toolchain.toml` or directory override, not the caller's.
    ///
    /// A toolchain the *caller's* directory chose (rustup passes `RUSTUP_TOOLCHAIN` down to
    /// `cargo xtask` with `RUSTUP_TOOLCHAIN_SOURCE=toolchain-file`) is dropped, while one
    /// the user asked for (`cargo +nightly`, `RUSTUP_TOOLCHAIN=...`) is kept, exactly as it
    /// would be inside `project`. With `pinned` (the rustup toolchain a lock names), that
    /// toolchain is selected, without installing it.
    pub fn detect_for(project: &Path, pinned: Option<&str>, target: Option<&str>) -> Result<Self> {
        let rustc_cmd = env_program("RUSTC", "rustc");
        let args = ["--print", "sysroot"];
        let mut cmd = kiln_core::process::command(&rustc_cmd);
        cmd.args(args)
            .current_dir(project)
            .stdin(Stdio::null())
            .env("LC_ALL", "C");
        rustup_env(&mut cmd, pinned);
        let shown = describe(Path::new(&rustc_cmd), &args);
        let out = cmd.output().map_err(|error| Error::Spawn {
            command: shown.clone(),
            error,
        })?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
            return Err(match pinned {
                Some(name) => Error::PinnedToolchainUnavailable {
                    name: name.to_string(),
                    detail: stderr,
                },
                None => Error::CommandFailed {
                    command: shown,
                    status: out.status,
                    stderr,
                },
            });
        }
        let sysroot_out = String::from_utf8_lossy(&out.stdout);
        let sysroot_str = sysroot_out.trim();
        if sysroot_str.is_empty() {
            return Err(Error::UnexpectedOutput {
                command: format!("{} --print sysroot", rustc_cmd.to_string_lossy()),
                detail: "empty output".into(),
            });
        }
        let sysroot = canonical(Path::new(sysroot_str))?;
        let rustc = sysroot.join("bin").join("rustc");
        let cargo = sysroot.join("bin").join("cargo");
        for (what, p) in [("rustc", &rustc), ("cargo", &cargo)] {
            if !p.is_file() {
                return Err(Error::NotFound {
                    what,
                    detail: format!(
                        "{} does not exist (sysroot {})",
                        p.display(),
                        sysroot.display()
                    ),
                });
            }
        }
        let rustc_vv = run(&rustc, &["-vV"])?;
        let host = vv_field(&rustc_vv, "host").ok_or_else(|| Error::UnexpectedOutput {
            command: format!("{} -vV", rustc.display()),
            detail: "no `host:` line".into(),
        })?;
        let target = target.unwrap_or(&host).to_string();
        // rustup's name for it: what a lock records and a build selects. The directory
        // name alone can be another name's target (a toolchain linked to another).
        let rustup_toolchain = match pinned {
            Some(name) => Some(name.to_string()),
            None => rustup_name(&sysroot).map(|dir| active_toolchain(project).unwrap_or(dir)),
        };
        let tc = Toolchain {
            rustup_toolchain,
            sysroot,
            rustc,
            cargo,
            cc: resolve_cc()?,
            host,
            target,
        };
        tc.check_target()?;
        Ok(tc)
    }

    /// Computes the lock for this toolchain: runs `-vV` on rustc and cargo and
    /// `--version`/`-dumpmachine` on cc, and hashes every file in
    /// [`Toolchain::pinned_files`] (in parallel; the result does not depend on the order).
    pub fn lock(&self) -> Result<ToolchainLock> {
        self.check_target()?;
        let files = hash_files(self.pinned_files()?)?;
        self.describe(&|program, args| run(program, args), files)
    }

    /// The lock of this toolchain with `files` as its pinned files, the rest asked of the
    /// tools through `run` (program, arguments → stdout): `-vV` of rustc and cargo,
    /// `--version` and `-dumpmachine` of cc, and rustc's `--print cfg` for the target and
    /// the host. [`Toolchain::lock`] runs them on this machine; a provided toolchain root
    /// runs them inside the root, where these paths are the root's own.
    pub fn describe(
        &self,
        run: &dyn Fn(&Path, &[&str]) -> Result<String>,
        files: BTreeMap<String, FileEntry>,
    ) -> Result<ToolchainLock> {
        let rustc_vv = run(&self.rustc, &["-vV"])?;
        let rustc = parse_vv(&rustc_vv, &self.rustc)?;
        match vv_field(&rustc_vv, "host") {
            Some(h) if h == self.host => {}
            other => {
                return Err(Error::UnexpectedOutput {
                    command: format!("{} -vV", self.rustc.display()),
                    detail: format!("host is {other:?}, expected `{}`", self.host),
                });
            }
        }
        let cargo = parse_vv(&run(&self.cargo, &["-vV"])?, &self.cargo)?;
        let cc_version = run(&self.cc, &["--version"])?;
        let cc = CcInfo {
            version: cc_version.lines().next().unwrap_or("").trim().to_string(),
            machine: run(&self.cc, &["-dumpmachine"])?.trim().to_string(),
        };
        let print_cfg = |triple: &str| -> Result<Vec<String>> {
            let out = run(&self.rustc, &["--print", "cfg", "--target", triple])?;
            let mut cfg: Vec<String> = out
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect();
            cfg.sort();
            Ok(cfg)
        };
        let cfg = TargetCfg {
            target: print_cfg(&self.target)?,
            host: print_cfg(&self.host)?,
        };
        Ok(ToolchainLock {
            schema: SCHEMA,
            rustup_toolchain: self.rustup_toolchain.clone(),
            host: self.host.clone(),
            target: self.target.clone(),
            rustc,
            cargo,
            cc,
            cfg,
            files,
        })
    }

    /// Reads the lock at `lock_path`, computes the machine's lock and compares them.
    ///
    /// On success returns the lock as read (record its [`ToolchainLock::digest`]); on a
    /// difference returns [`Error::Mismatch`] naming `lock_path`.
    pub fn verify(&self, lock_path: &Path) -> Result<ToolchainLock> {
        let expected = ToolchainLock::read(lock_path)?;
        let actual = self.lock()?;
        expected.verify_against(&actual).map_err(|mut m| {
            m.lock_path = Some(lock_path.to_path_buf());
            Error::Mismatch(m)
        })?;
        Ok(expected)
    }

    /// Every file the lock pins, by key, with the path to read it from.
    ///
    /// Keys:
    /// - `sysroot/<relative path>` for the sysroot: `bin/rustc`, `bin/cargo`, the
    ///   compiler's shared libraries in `lib/` (see `SYSROOT_LIB_PREFIXES`), every file
    ///   under `lib/rustlib/<target>/lib/` (rust-std) and, when cross-compiling, under
    ///   `lib/rustlib/<host>/lib/` too (build scripts and proc macros link against the host
    ///   std, and proc macros write code), and everything under `lib/rustlib/<host>/bin/`
    ///   (`rust-lld` and the `gcc-ld/` wrappers that rustc's default linker flavour runs)
    ///   and `lib/rustlib/<host>/codegen-backends/` if present. These keys are the same on
    ///   every machine with the same toolchain, wherever rustup put it.
    /// - `cc:<canonical absolute path>` for the C toolchain: the driver, the programs in
    ///   `CC_PROGRAMS` (a bare name from `-print-prog-name` is looked up on `PATH`), and
    ///   the C runtime in `CC_FILES` that `-print-file-name` resolves.
    ///
    /// Symlinks are followed: a sysroot symlink is pinned by its target's content under the
    /// link's key; a `cc:` key is the canonical path. Directories, dangling links and other
    /// non-regular files are skipped (symlinked directories are not descended into).
    pub fn pinned_files(&self) -> Result<BTreeMap<String, PathBuf>> {
        let mut files = BTreeMap::new();
        let sys = &self.sysroot;
        for bin in ["rustc", "cargo"] {
            let p = sys.join("bin").join(bin);
            if !is_regular(&p) {
                return Err(Error::NotFound {
                    what: "sysroot binary",
                    detail: p.display().to_string(),
                });
            }
            files.insert(format!("sysroot/bin/{bin}"), p);
        }
        let lib = sys.join("lib");
        let entries = std::fs::read_dir(&lib).map_err(|error| Error::Io {
            path: lib.clone(),
            error,
        })?;
        for entry in entries {
            let entry = entry.map_err(|error| Error::Io {
                path: lib.clone(),
                error,
            })?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if SYSROOT_LIB_PREFIXES.iter().any(|p| name.starts_with(p)) && is_regular(&entry.path())
            {
                files.insert(format!("sysroot/lib/{name}"), entry.path());
            }
        }
        let rustlib = lib.join("rustlib");
        let mut trees = vec![rustlib.join(&self.target).join("lib")];
        if self.host != self.target {
            trees.push(rustlib.join(&self.host).join("lib"));
        }
        trees.push(rustlib.join(&self.host).join("bin"));
        trees.push(rustlib.join(&self.host).join("codegen-backends"));
        for tree in trees {
            if tree.is_dir() {
                walk_into(sys, &tree, &mut files)?;
            }
        }

        for (key, path) in self.cc_files()? {
            files.insert(key, path);
        }
        Ok(files)
    }

    fn cc_files(&self) -> Result<Vec<(String, PathBuf)>> {
        let mut out = Vec::new();
        let mut add = |p: &Path| -> Result<()> {
            if let Ok(c) = std::fs::canonicalize(p)
                && is_regular(&c)
            {
                out.push((format!("cc:{}", utf8(&c)?), c));
            }
            Ok(())
        };
        add(&self.cc)?;
        // Start every query first and collect afterwards: ~30 short processes run
        // concurrently instead of one after another.
        let progs: Vec<String> = CC_PROGRAMS
            .iter()
            .map(|n| format!("-print-prog-name={n}"))
            .collect();
        let libs: Vec<String> = CC_FILES
            .iter()
            .map(|n| format!("-print-file-name={n}"))
            .collect();
        let children = progs
            .iter()
            .chain(&libs)
            .map(|arg| Ok((arg, spawn(&self.cc, &[arg.as_str()])?)))
            .collect::<Result<Vec<_>>>()?;
        for (i, (arg, child)) in children.into_iter().enumerate() {
            let printed = finish(&self.cc, &[arg.as_str()], child)?;
            let printed = printed.trim();
            let path = if printed.contains('/') {
                Some(PathBuf::from(printed))
            } else if i < progs.len() && !printed.is_empty() {
                // Programs: a bare name means "whatever is on PATH".
                find_in_path(OsStr::new(printed))
            } else {
                // Files: -print-file-name echoes the bare name when it finds nothing.
                None
            };
            if let Some(p) = path {
                add(&p)?;
            }
        }
        Ok(out)
    }

    fn check_target(&self) -> Result<()> {
        for t in [&self.target, &self.host] {
            if t.is_empty()
                || t.starts_with('.')
                || !t
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            {
                return Err(Error::BadTarget { target: t.clone() });
            }
        }
        let dir = self
            .sysroot
            .join("lib")
            .join("rustlib")
            .join(&self.target)
            .join("lib");
        if !dir.is_dir() {
            return Err(Error::TargetNotInstalled {
                target: self.target.clone(),
                dir,
            });
        }
        Ok(())
    }
}

/// Adds every regular file under `tree` as `sysroot/<path relative to sysroot>`.
fn walk_into(sysroot: &Path, tree: &Path, files: &mut BTreeMap<String, PathBuf>) -> Result<()> {
    for entry in walkdir::WalkDir::new(tree).follow_links(false) {
        let entry = entry.map_err(|e| {
            let path = e.path().unwrap_or(tree).to_path_buf();
            Error::Io {
                path,
                error: e.into(),
            }
        })?;
        let ft = entry.file_type();
        if !(ft.is_file() || (ft.is_symlink() && is_regular(entry.path()))) {
            continue;
        }
        let rel = entry
            .path()
            .strip_prefix(sysroot)
            .expect("walkdir yields paths under its root");
        let mut key = String::from("sysroot");
        for c in rel.components() {
            key.push('/');
            key.push_str(utf8(Path::new(c.as_os_str()))?);
        }
        files.insert(key, entry.into_path());
    }
    Ok(())
}

/// Hashes `files` in parallel (largest first, over all cores) into a sorted map: a lock's
/// `files` (a provided root's describe step hashes the root's tools with it too).
pub fn hash_files(files: BTreeMap<String, PathBuf>) -> Result<BTreeMap<String, FileEntry>> {
    let items: Vec<(String, PathBuf)> = files.into_iter().collect();
    let mut order: Vec<(u64, usize)> = items
        .iter()
        .enumerate()
        .map(|(i, (_, p))| (std::fs::metadata(p).map(|m| m.len()).unwrap_or(0), i))
        .collect();
    order.sort_by(|a, b| b.cmp(a));
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8)
        .min(items.len())
        .max(1);
    let next = AtomicUsize::new(0);
    let mut results: Vec<Option<io::Result<FileEntry>>> = (0..items.len()).map(|_| None).collect();
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut done = Vec::new();
                    let mut buf = vec![0u8; 1 << 20];
                    loop {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&(_, i)) = order.get(n) else { break };
                        done.push((i, hash_file(&items[i].1, &mut buf)));
                    }
                    done
                })
            })
            .collect();
        for w in workers {
            for (i, r) in w.join().expect("hashing thread panicked") {
                results[i] = Some(r);
            }
        }
    });
    let mut out = BTreeMap::new();
    for ((key, path), r) in items.into_iter().zip(results) {
        let entry = r
            .expect("every file was hashed")
            .map_err(|error| Error::Io { path, error })?;
        out.insert(key, entry);
    }
    Ok(out)
}

fn hash_file(path: &Path, buf: &mut [u8]) -> io::Result<FileEntry> {
    let mut f = std::fs::File::open(path)?;
    let mut h = HashingWriter::new(io::sink());
    loop {
        let n = match f.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.write_all(&buf[..n])?;
    }
    let (sha256, size, _) = h.finish();
    Ok(FileEntry { sha256, size })
}

fn parse_vv(out: &str, program: &Path) -> Result<ToolVersion> {
    let need = |key: &str| {
        vv_field(out, key).ok_or_else(|| Error::UnexpectedOutput {
            command: format!("{} -vV", program.display()),
            detail: format!("no `{key}:` line"),
        })
    };
    Ok(ToolVersion {
        version: need("release")?,
        commit_hash: need("commit-hash")?,
        commit_date: need("commit-date")?,
        llvm_version: vv_field(out, "LLVM version"),
    })
}

/// The value of a `key: value` line in `-vV` output.
fn vv_field(out: &str, key: &str) -> Option<String> {
    out.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == key).then(|| v.trim().to_string())
    })
}

/// `$VAR` if set and non-empty, else `default`.
fn env_program(var: &str, default: &str) -> std::ffi::OsString {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.into())
}

fn resolve_cc() -> Result<PathBuf> {
    let cc = env_program("CC", "cc");
    let found = if Path::new(&cc).components().count() > 1 {
        Some(PathBuf::from(&cc))
    } else {
        find_in_path(&cc)
    };
    let detail = || {
        let how = if std::env::var_os("CC").is_some_and(|v| !v.is_empty()) {
            "$CC"
        } else {
            "default"
        };
        format!(
            "`{}` ({how}) is not an executable on PATH; install a C compiler or set CC",
            cc.to_string_lossy()
        )
    };
    let found = found.ok_or_else(|| Error::NotFound {
        what: "C compiler",
        detail: detail(),
    })?;
    let c = std::fs::canonicalize(&found).map_err(|_| Error::NotFound {
        what: "C compiler",
        detail: detail(),
    })?;
    if !is_regular(&c) {
        return Err(Error::NotFound {
            what: "C compiler",
            detail: detail(),
        });
    }
    Ok(c)
}

fn find_in_path(name: &OsStr) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

#[cfg(unix)]
fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(p: &Path) -> bool {
    is_regular(p)
}

/// A regular file, following symlinks.
fn is_regular(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file())
}

fn canonical(p: &Path) -> Result<PathBuf> {
    std::fs::canonicalize(p).map_err(|error| Error::Io {
        path: p.to_path_buf(),
        error,
    })
}

fn utf8(p: &Path) -> Result<&str> {
    p.to_str().ok_or_else(|| Error::NonUtf8Path {
        path: p.to_path_buf(),
    })
}

/// True when `RUSTUP_TOOLCHAIN` in our environment was chosen by rustup from the caller's
/// directory (a `rust-toolchain.toml`, a directory override or the default) rather than by
/// the user (`+toolchain` on the command line, or the variable set by hand).
fn inherited_toolchain_choice() -> bool {
    std::env::var_os("RUSTUP_TOOLCHAIN").is_some()
        && matches!(
            std::env::var("RUSTUP_TOOLCHAIN_SOURCE").as_deref(),
            Ok("toolchain-file" | "override" | "default")
        )
}

/// Makes `cmd` (a rustup proxy or rustup) resolve the toolchain as inside its working
/// directory, or select `pinned`; see [`Toolchain::detect_for`].
fn rustup_env(cmd: &mut Command, pinned: Option<&str>) {
    match pinned {
        Some(name) => {
            cmd.env("RUSTUP_TOOLCHAIN", name)
                .env("RUSTUP_AUTO_INSTALL", "0")
                .env_remove("RUSTUP_TOOLCHAIN_SOURCE");
        }
        None if inherited_toolchain_choice() => {
            cmd.env_remove("RUSTUP_TOOLCHAIN")
                .env_remove("RUSTUP_TOOLCHAIN_SOURCE");
        }
        None => {}
    }
}

/// `rustup show active-toolchain` in `project`: the name rustup resolved
/// (`1.95.0-x86_64-unknown-linux-gnu`), or `None` when rustup cannot say.
fn active_toolchain(project: &Path) -> Option<String> {
    let rustup = find_in_path(OsStr::new("rustup"))?;
    let mut cmd = kiln_core::process::command(rustup);
    rustup_env(&mut cmd, None);
    let out = cmd
        .args(["show", "active-toolchain"])
        .current_dir(project)
        .env("RUSTUP_AUTO_INSTALL", "0")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let name = text.split_whitespace().next()?;
    Some(name.to_string())
}

/// The rustup toolchain a sysroot is: its directory name under rustup's `toolchains/`.
pub(crate) fn rustup_name(sysroot: &Path) -> Option<String> {
    let parent = sysroot.parent()?;
    if parent.file_name()? != "toolchains" {
        return None;
    }
    sysroot.file_name()?.to_str().map(str::to_string)
}

fn describe(program: &Path, args: &[&str]) -> String {
    let mut s = program.display().to_string();
    for a in args {
        s.push(' ');
        s.push_str(a);
    }
    s
}

/// Starts `program args` with a fixed locale (so `cc --version` is not translated) and
/// stdout/stderr captured. Retries briefly on ETXTBSY, which a freshly written
/// executable can report while another thread is forking.
fn spawn(program: &Path, args: &[&str]) -> Result<Child> {
    let mut attempt = 0;
    loop {
        let r = kiln_core::process::command(program)
            .args(args)
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        match r {
            Ok(c) => return Ok(c),
            Err(e) if e.kind() == io::ErrorKind::ExecutableFileBusy && attempt < 20 => {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(error) => {
                return Err(Error::Spawn {
                    command: describe(program, args),
                    error,
                });
            }
        }
    }
}

fn finish(program: &Path, args: &[&str], child: Child) -> Result<String> {
    let out = child.wait_with_output().map_err(|error| Error::Spawn {
        command: describe(program, args),
        error,
    })?;
    if !out.status.success() {
        return Err(Error::CommandFailed {
            command: describe(program, args),
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    String::from_utf8(out.stdout).map_err(|_| Error::UnexpectedOutput {
        command: describe(program, args),
        detail: "output is not UTF-8".into(),
    })
}

fn run(program: &Path, args: &[&str]) -> Result<String> {
    finish(program, args, spawn(program, args)?)
}
