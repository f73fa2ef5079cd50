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

/// A directory being assembled next to its final location. Dropping it without
/// [`StagingDir::commit`] removes it, so an error leaves nothing behind.
pub struct StagingDir {
    tmp: Option<tempfile::TempDir>,
    dest: PathBuf,
}

impl StagingDir {
    /// Starts staging the directory that will become `dest`.
    pub fn new(dest: &Path) -> io::Result<Self> {
        let parent = parent_of(dest);
        create_dir_all(parent)?;
        let name = dest.file_name().and_then(|n| n.to_str()).unwrap_or("out");
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}.staging-"))
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

    /// Swaps the staged directory into place, replacing any previous one.
    pub fn commit(mut self) -> io::Result<PathBuf> {
        let tmp = self.tmp.take().expect("staging dir present until commit");
        let staged = tmp.keep();
        if self.dest.exists() {
            // rename(2) cannot replace a non-empty directory: move the old one aside first.
            let old = tempfile::Builder::new()
                .prefix(".kiln-old-")
                .tempdir_in(parent_of(&self.dest))?
                .keep();
            std::fs::remove_dir(&old)?;
            std::fs::rename(&self.dest, &old)?;
            if let Err(e) = std::fs::rename(&staged, &self.dest) {
                let _ = std::fs::rename(&old, &self.dest);
                let _ = std::fs::remove_dir_all(&staged);
                return Err(e);
            }
            std::fs::remove_dir_all(&old)?;
        } else if let Err(e) = std::fs::rename(&staged, &self.dest) {
            let _ = std::fs::remove_dir_all(&staged);
            return Err(e);
        }
        Ok(self.dest.clone())
    }
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_: &Path, _: u32) -> io::Result<()> {
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
}
