//! Scratch space and copies: the run's work directory (outside any Cargo workspace or git
//! repository, removed with anything mounted in it), the project copies each build gets
//! (in shuffled order for the file order variation) and the disorderfs mount.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result, io};

use super::{find_program, quiet_ok};

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
pub(super) struct Mount(pub(super) PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        for (prog, args) in [
            ("fusermount", &["-u"][..]),
            ("fusermount3", &["-u"][..]),
            ("umount", &[][..]),
        ] {
            if let Some(p) = find_program(prog)
                && quiet_ok(kiln_core::process::command(p).args(args).arg(&self.0))
            {
                return;
            }
        }
    }
}

pub(super) fn remove_dir(p: &Path) -> Result<()> {
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
