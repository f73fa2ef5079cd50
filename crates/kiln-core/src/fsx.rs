//! Atomic output: nothing kiln writes is ever seen half-written.
//!
//! Files are written to a temporary sibling and renamed into place; directories are
//! assembled in a temporary sibling directory and swapped in. A failure at any point leaves
//! whatever was there before untouched.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Creates `path` and any missing parents with mode 0755 whatever the umask, so an output
/// tree built under `umask 077` is as readable as one built under `umask 022`.
pub fn create_dir_all(path: &Path) -> io::Result<()> {
    let missing: Vec<&Path> = path
        .ancestors()
        .take_while(|p| !p.as_os_str().is_empty() && !p.exists())
        .collect();
    std::fs::create_dir_all(path)?;
    for dir in missing {
        set_mode(dir, 0o755)?;
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically (temp file in the same directory, fsync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = parent_of(path);
    create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".kiln-tmp-")
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    set_mode(tmp.path(), 0o644)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Creates (truncating) the log file a child process streams into, and its parents.
///
/// A log is not an artifact: it is written while the child runs, so it cannot appear by a
/// rename, and a half-written one after a crash is what the user needs to read. Every other
/// file goes through [`write_atomic`]; the tidy test holds `File::create` to this one place.
pub fn create_log(path: &Path) -> io::Result<std::fs::File> {
    create_dir_all(parent_of(path))?;
    std::fs::File::create(path)
}

/// A directory being assembled next to its final location. Dropping it without
/// [`StagingDir::commit`] removes it, so an error leaves nothing behind.
///
/// Its name, `.<dest>.staging-<pid>-<random>`, carries the owner's process id, as does
/// `.kiln-old-<pid>-<random>` (a replaced directory on its way out): a process that is
/// killed cannot clean up after itself, so [`StagingDir::new`] removes the leftovers of
/// owners that no longer run ([`remove_stale`]), never those of a live one.
pub struct StagingDir {
    tmp: Option<tempfile::TempDir>,
    dest: PathBuf,
}

const STAGING_MARK: &str = ".staging-";
const OLD_PREFIX: &str = ".kiln-old-";

impl StagingDir {
    /// Starts staging the directory that will become `dest`, first removing stale
    /// leftovers of killed builds next to it.
    pub fn new(dest: &Path) -> io::Result<Self> {
        let parent = parent_of(dest);
        create_dir_all(parent)?;
        remove_stale(parent)?;
        let name = dest.file_name().and_then(|n| n.to_str()).unwrap_or("out");
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}{STAGING_MARK}{}-", std::process::id()))
            .tempdir_in(parent)?;
        set_mode(tmp.path(), 0o755)?;
        Ok(StagingDir {
            tmp: Some(tmp),
            dest: dest.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        self.tmp
            .as_ref()
            .expect("staging dir present until commit")
            .path()
    }

    /// Swaps the staged directory into place, replacing any previous one. At every
    /// instant `dest` is either the complete old directory or the complete new one (an
    /// atomic exchange where the file system offers it). On failure the staged directory
    /// is removed and `dest` is left as it was.
    pub fn commit(self) -> io::Result<PathBuf> {
        self.commit_with(&SystemRename)
    }

    fn commit_with(mut self, fs: &dyn Rename) -> io::Result<PathBuf> {
        let tmp = self.tmp.take().expect("staging dir present until commit");
        let staged = tmp.keep();
        match swap_in(&staged, &self.dest, fs) {
            Ok(()) => Ok(self.dest.clone()),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&staged);
                Err(e)
            }
        }
    }
}

/// The renames [`StagingDir::commit`] needs (a seam, so tests can make them fail).
trait Rename {
    /// Atomically exchanges `a` and `b`; `Unsupported` where the system cannot.
    fn exchange(&self, a: &Path, b: &Path) -> io::Result<()>;
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
}

struct SystemRename;

impl Rename for SystemRename {
    #[cfg(target_os = "linux")]
    fn exchange(&self, a: &Path, b: &Path) -> io::Result<()> {
        use std::os::unix::ffi::OsStrExt;
        let c = |p: &Path| {
            std::ffi::CString::new(p.as_os_str().as_bytes())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
        };
        let (a, b) = (c(a)?, c(b)?);
        // SAFETY: both are valid NUL-terminated paths that outlive the call.
        let r = unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                a.as_ptr(),
                libc::AT_FDCWD,
                b.as_ptr(),
                libc::RENAME_EXCHANGE,
            )
        };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP) => {
                Err(io::Error::new(io::ErrorKind::Unsupported, e))
            }
            _ => Err(e),
        }
    }
    #[cfg(not(target_os = "linux"))]
    fn exchange(&self, _: &Path, _: &Path) -> io::Result<()> {
        Err(io::ErrorKind::Unsupported.into())
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }
}

/// Puts `staged` at `dest`. Whatever fails, `dest` ends as it was (or as `staged`).
fn swap_in(staged: &Path, dest: &Path, fs: &dyn Rename) -> io::Result<()> {
    if std::fs::symlink_metadata(dest).is_err() {
        return fs.rename(staged, dest);
    }
    match fs.exchange(staged, dest) {
        // `staged` now holds the old directory.
        Ok(()) => {
            // Best effort: the new output is in place; a leftover is removed by the next
            // run (its owner, this process, will be gone).
            let _ = std::fs::remove_dir_all(staged);
            return Ok(());
        }
        Err(e) if e.kind() != io::ErrorKind::Unsupported => return Err(e),
        Err(_) => {}
    }
    // No atomic exchange: rename(2) cannot replace a non-empty directory, so the old one
    // is moved aside first (a short window in which `dest` is absent).
    let old = tempfile::Builder::new()
        .prefix(&format!("{OLD_PREFIX}{}-", std::process::id()))
        .tempdir_in(parent_of(dest))?
        .keep();
    std::fs::remove_dir(&old)?;
    fs.rename(dest, &old)?;
    if let Err(e) = fs.rename(staged, dest) {
        let _ = fs.rename(&old, dest);
        return Err(e);
    }
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

/// Removes, from `dir`, the staging (`.<name>.staging-<pid>-*`) and replaced
/// (`.kiln-old-<pid>-*`) directories whose owner process no longer exists — what a killed
/// build leaves. Entries of live processes (another build running now) and names without
/// an owner are left alone. Returns the paths removed.
pub fn remove_stale(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(removed),
        Err(e) => return Err(e),
    };
    for e in entries {
        let e = e?;
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(leftover_owner) else {
            continue;
        };
        if pid == std::process::id() || process_exists(pid) {
            continue;
        }
        let path = e.path();
        match std::fs::remove_dir_all(&path) {
            Ok(()) => removed.push(path),
            // Another run removed it first.
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(err),
        }
    }
    removed.sort();
    Ok(removed)
}

/// The owner pid in a leftover's name: `.<name>.staging-<pid>-<rand>` or
/// `.kiln-old-<pid>-<rand>`.
fn leftover_owner(name: &str) -> Option<u32> {
    let rest = if let Some(rest) = name.strip_prefix(OLD_PREFIX) {
        rest
    } else if name.starts_with('.') {
        let at = name.rfind(STAGING_MARK)?;
        &name[at + STAGING_MARK.len()..]
    } else {
        return None;
    };
    let (pid, unique) = rest.split_once('-')?;
    if unique.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok().filter(|&p| p > 0)
}

/// True unless the kernel says no process `pid` exists (a process of another user, or one
/// we cannot ask about, counts as existing: never remove what might be in use).
#[cfg(unix)]
fn process_exists(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return true;
    };
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

#[cfg(not(unix))]
fn process_exists(_: u32) -> bool {
    true
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// A file's identity as the kernel keeps it: size, inode, device, mtime and ctime (in
/// nanoseconds) and mode. kiln's metadata stamps (the verified toolchain, the verified crate
/// sources, installed toolchain roots, the no-op record) compare these to skip re-hashing
/// what nothing touched: changing a file's bytes, mode or links moves its ctime, which no
/// unprivileged process can set back (the rule Bazel's digest cache and cargo's fingerprints
/// rely on).
#[cfg(unix)]
pub fn identity(m: &std::fs::Metadata) -> [i128; 6] {
    use std::os::unix::fs::MetadataExt;
    [
        m.size() as i128,
        m.ino() as i128,
        m.dev() as i128,
        m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
        m.ctime() as i128 * 1_000_000_000 + m.ctime_nsec() as i128,
        m.mode() as i128,
    ]
}

/// Sets `path`'s permission bits exactly (whatever the umask was when it was created).
#[cfg(unix)]
pub fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
pub fn set_mode(_: &Path, _: u32) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn created_directories_are_0755_under_any_umask() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let deep = d.path().join("a/b/c");
        // SAFETY: umask is process-wide; this test restores it before any assertion.
        let old = unsafe { libc::umask(0o077) };
        let r = create_dir_all(&deep);
        // SAFETY: as above.
        unsafe { libc::umask(old) };
        r.unwrap();
        for p in [d.path().join("a"), d.path().join("a/b"), deep] {
            assert_eq!(
                std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o755,
                "{}",
                p.display()
            );
        }
    }

    #[test]
    fn write_atomic_replaces_and_leaves_no_temp() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn staging_dropped_leaves_nothing_and_commit_replaces() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("out");
        {
            let s = StagingDir::new(&dest).unwrap();
            std::fs::write(s.path().join("f"), b"x").unwrap();
        }
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);

        let s = StagingDir::new(&dest).unwrap();
        std::fs::write(s.path().join("f"), b"1").unwrap();
        s.commit().unwrap();
        let s = StagingDir::new(&dest).unwrap();
        std::fs::write(s.path().join("g"), b"2").unwrap();
        s.commit().unwrap();
        assert!(!dest.join("f").exists());
        assert_eq!(std::fs::read(dest.join("g")).unwrap(), b"2");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }

    /// A pid no process has: a child that has exited and been reaped.
    fn dead_pid() -> u32 {
        let mut child = crate::process::command("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn names_carry_the_owner_pid() {
        let d = tempfile::tempdir().unwrap();
        let s = StagingDir::new(&d.path().join("hello.v1")).unwrap();
        let name = s.path().file_name().unwrap().to_str().unwrap().to_string();
        assert!(
            name.starts_with(&format!(".hello.v1.staging-{}-", std::process::id())),
            "{name}"
        );
        assert_eq!(leftover_owner(&name), Some(std::process::id()));
        assert_eq!(leftover_owner(".kiln-old-42-x1Yz"), Some(42));
        for not_ours in [
            "hello",
            ".hello.staging-abc",
            ".hello.staging-12-",
            ".kiln-old-",
            ".kiln-tmp-123-x",
            "x.staging-12-ab",
        ] {
            assert_eq!(leftover_owner(not_ours), None, "{not_ours}");
        }
    }

    #[test]
    fn leftovers_of_dead_owners_are_removed_live_ones_kept() {
        let d = tempfile::tempdir().unwrap();
        let dead = dead_pid();
        let live = std::process::id();
        // The parent of this test process is alive too (another build, say).
        let other_live = std::os::unix::process::parent_id();
        for n in [
            format!(".hello.staging-{dead}-aaaa"),
            format!(".kiln-old-{dead}-bbbb"),
            format!(".my.image.staging-{dead}-cccc"),
            format!(".hello.staging-{other_live}-dddd"),
            format!(".kiln-old-{other_live}-eeee"),
            ".hello.staging-legacy".to_string(),
            "hello".to_string(),
        ] {
            std::fs::create_dir_all(d.path().join(&n).join("oci")).unwrap();
            std::fs::write(d.path().join(&n).join("oci/blob"), b"x").unwrap();
        }
        let s = StagingDir::new(&d.path().join("hello")).unwrap();
        let mine = s.path().file_name().unwrap().to_string_lossy().into_owned();
        let mut want = vec![
            format!(".hello.staging-{other_live}-dddd"),
            format!(".kiln-old-{other_live}-eeee"),
            ".hello.staging-legacy".to_string(),
            "hello".to_string(),
            mine,
        ];
        want.sort();
        assert_eq!(names(d.path()), want);
        assert!(live != dead);
        drop(s);
    }

    /// Renames that fail on demand.
    struct Failing {
        exchange: Option<io::ErrorKind>,
        rename_fails_on: usize,
        calls: std::cell::Cell<usize>,
    }

    impl Rename for Failing {
        fn exchange(&self, a: &Path, b: &Path) -> io::Result<()> {
            match self.exchange {
                Some(k) => Err(k.into()),
                None => SystemRename.exchange(a, b),
            }
        }
        fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
            let n = self.calls.get() + 1;
            self.calls.set(n);
            if n == self.rename_fails_on {
                return Err(io::Error::other("injected rename failure"));
            }
            std::fs::rename(from, to)
        }
    }

    #[test]
    fn a_failed_commit_removes_the_staging_dir_and_keeps_the_old_output() {
        for (exchange, rename_fails_on, had_old) in [
            (None, 1, false),                                 // first build
            (Some(io::ErrorKind::PermissionDenied), 0, true), // exchange refused
            (Some(io::ErrorKind::Unsupported), 1, true),      // moving the old aside
            (Some(io::ErrorKind::Unsupported), 2, true),      // moving the new in
        ] {
            let d = tempfile::tempdir().unwrap();
            let dest = d.path().join("out");
            if had_old {
                std::fs::create_dir(&dest).unwrap();
                std::fs::write(dest.join("old"), b"old").unwrap();
            }
            let s = StagingDir::new(&dest).unwrap();
            std::fs::write(s.path().join("new"), b"new").unwrap();
            let fs = Failing {
                exchange,
                rename_fails_on,
                calls: Default::default(),
            };
            let case = format!("{exchange:?}, rename #{rename_fails_on}");
            s.commit_with(&fs).unwrap_err();
            let want: Vec<String> = if had_old { vec!["out".into()] } else { vec![] };
            assert_eq!(names(d.path()), want, "{case}");
            if had_old {
                assert_eq!(names(&dest), ["old"], "{case}");
            }
        }
    }

    #[test]
    fn commit_without_atomic_exchange_replaces_and_leaves_nothing() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("out");
        for content in ["1", "2"] {
            let s = StagingDir::new(&dest).unwrap();
            std::fs::write(s.path().join(content), content).unwrap();
            let fs = Failing {
                exchange: Some(io::ErrorKind::Unsupported),
                rename_fails_on: 0,
                calls: Default::default(),
            };
            s.commit_with(&fs).unwrap();
            assert_eq!(names(&dest), [content]);
            assert_eq!(names(d.path()), ["out"]);
        }
    }
}
