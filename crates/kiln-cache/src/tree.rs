//! The source tree's digest: what cargo would read under the project root.

use std::io;
use std::path::Path;

use kiln_core::{Digest, canonical};
use serde::Serialize;

/// `schema` of the hashed file list.
const TREE_SCHEMA: &str = "https://kiln.dev/source-tree/v1";

#[derive(Serialize)]
struct Tree<'a> {
    schema: &'a str,
    files: Vec<FileEntry>,
}

#[derive(Serialize, PartialEq, Eq, PartialOrd, Ord)]
struct FileEntry {
    /// Relative to the root, `/`-separated.
    path: String,
    /// `file` or `symlink`.
    kind: &'static str,
    /// The owner's executable bit (the one a umask never takes away).
    executable: bool,
    /// Hex sha256 of the contents, or of the target path for a symlink.
    sha256: String,
}

/// Merkle digest of the files cargo would read under `root`.
///
/// The walk (the `ignore` crate) honours `.gitignore`, `.ignore` and `.git/info/exclude`
/// files inside `root` — not those above it, nor the user's global excludes, which differ
/// between machines — and includes hidden files unless ignored. `.git/` at any depth and
/// `root/target/` are always left out. Symlinks are never followed: a link contributes its
/// target path. Each file contributes its path relative to `root`, its owner executable bit
/// and the sha256 of its contents; the list, sorted by path bytes, is hashed as canonical
/// JSON. Directories contribute nothing of their own, nor do mtimes, owners or other mode
/// bits, so the same tree gives the same digest in any directory on any machine.
///
/// A path that is not UTF-8 is an error (`InvalidData`): it cannot be named in the list
/// without ambiguity.
pub fn source_tree_digest(root: &Path) -> io::Result<Digest> {
    let walker = ignore::WalkBuilder::new(root)
        .hidden(false)
        .parents(false)
        .ignore(true)
        .git_ignore(true)
        .git_exclude(true)
        .git_global(false)
        .require_git(false)
        .follow_links(false)
        .filter_entry(|e| {
            let is_dir = e.file_type().is_some_and(|t| t.is_dir());
            !(is_dir && (e.file_name() == ".git" || (e.depth() == 1 && e.file_name() == "target")))
        })
        .build();
    let mut files = Vec::new();
    for entry in walker {
        let entry = entry.map_err(walk_error)?;
        let Some(ft) = entry.file_type() else {
            continue; // stdin; never in a directory walk
        };
        if ft.is_dir() {
            continue;
        }
        let path = entry.path();
        let rel = relative_name(root, path)?;
        let meta = std::fs::symlink_metadata(path)?;
        let (kind, executable, sha256) = if ft.is_symlink() {
            let target = std::fs::read_link(path)?;
            ("symlink", false, Digest::of(os_bytes(target.as_os_str())))
        } else if ft.is_file() {
            ("file", is_executable(&meta), Digest::of_file(path)?)
        } else {
            // Sockets, fifos, devices: cargo reads none of them.
            continue;
        };
        files.push(FileEntry {
            path: rel,
            kind,
            executable,
            sha256: sha256.hex(),
        });
    }
    // `String`'s order is its UTF-8 bytes' order.
    files.sort();
    let bytes = canonical::to_vec(&Tree {
        schema: TREE_SCHEMA,
        files,
    })
    .expect("a file list serializes");
    Ok(Digest::of(&bytes))
}

fn walk_error(e: ignore::Error) -> io::Error {
    let text = e.to_string();
    match e.into_io_error() {
        Some(io) => io::Error::new(io.kind(), text),
        None => io::Error::other(text),
    }
}

fn relative_name(root: &Path, path: &Path) -> io::Result<String> {
    let rel = path.strip_prefix(root).map_err(|_| {
        io::Error::other(format!(
            "{} is not under {}",
            path.display(),
            root.display()
        ))
    })?;
    let mut parts = Vec::new();
    for c in rel.components() {
        let s = c.as_os_str().to_str().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: the path is not UTF-8", path.display()),
            )
        })?;
        parts.push(s);
    }
    Ok(parts.join("/"))
}

#[cfg(unix)]
fn os_bytes(s: &std::ffi::OsStr) -> &[u8] {
    use std::os::unix::ffi::OsStrExt;
    s.as_bytes()
}

#[cfg(not(unix))]
fn os_bytes(s: &std::ffi::OsStr) -> &[u8] {
    s.as_encoded_bytes()
}

#[cfg(unix)]
fn is_executable(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o100 != 0
}

#[cfg(not(unix))]
fn is_executable(_: &std::fs::Metadata) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn put(root: &Path, rel: &str, bytes: &[u8]) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }

    #[cfg(unix)]
    fn chmod(root: &Path, rel: &str, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(root.join(rel), std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// A small project, its files written in `order`.
    fn project(order: &[usize]) -> (tempfile::TempDir, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("proj");
        let files: [(&str, &[u8]); 5] = [
            ("Cargo.toml", b"[package]\nname = \"hello\"\n"),
            ("src/main.rs", b"fn main() {}\n"),
            ("src/bin/tool.rs", b"fn main() { println!(\"t\"); }\n"),
            (".cargo/config.toml", b"[build]\n"),
            (".gitignore", b"/secret.txt\n*.log\n"),
        ];
        for &i in order {
            put(&root, files[i].0, files[i].1);
        }
        (d, root)
    }

    fn digest(root: &Path) -> Digest {
        source_tree_digest(root).unwrap()
    }

    #[test]
    fn same_tree_in_two_directories_same_digest() {
        let (_a, ra) = project(&[0, 1, 2, 3, 4]);
        let (_b, rb) = project(&[4, 3, 2, 1, 0]);
        assert_eq!(digest(&ra), digest(&rb));
    }

    #[test]
    fn mtime_and_non_owner_mode_bits_do_not_matter() {
        let (_a, ra) = project(&[0, 1, 2, 3, 4]);
        let before = digest(&ra);
        std::thread::sleep(std::time::Duration::from_millis(20));
        // Rewriting the same bytes changes only the mtime.
        put(&ra, "src/main.rs", b"fn main() {}\n");
        assert_eq!(digest(&ra), before);
        #[cfg(unix)]
        {
            // What a umask of 077 or 002 would have produced.
            chmod(&ra, "src/main.rs", 0o600);
            chmod(&ra, "Cargo.toml", 0o664);
            assert_eq!(digest(&ra), before);
        }
    }

    #[test]
    fn content_rename_and_exec_bit_each_change_the_digest() {
        let (_a, ra) = project(&[0, 1, 2, 3, 4]);
        let base = digest(&ra);

        put(&ra, "src/main.rs", b"fn main() { }\n");
        assert_ne!(digest(&ra), base, "content");
        put(&ra, "src/main.rs", b"fn main() {}\n");
        assert_eq!(digest(&ra), base);

        std::fs::rename(ra.join("src/bin/tool.rs"), ra.join("src/bin/tool2.rs")).unwrap();
        assert_ne!(digest(&ra), base, "rename");
        std::fs::rename(ra.join("src/bin/tool2.rs"), ra.join("src/bin/tool.rs")).unwrap();
        assert_eq!(digest(&ra), base);

        #[cfg(unix)]
        {
            chmod(&ra, "src/main.rs", 0o755);
            assert_ne!(digest(&ra), base, "exec bit");
            chmod(&ra, "src/main.rs", 0o644);
            assert_eq!(digest(&ra), base);
        }

        put(&ra, "src/new.rs", b"");
        assert_ne!(digest(&ra), base, "a new empty file");
    }

    #[test]
    fn ignored_files_target_and_git_do_not_count() {
        let (_a, ra) = project(&[0, 1, 2, 3, 4]);
        let base = digest(&ra);
        put(&ra, "secret.txt", b"ignored by /secret.txt");
        put(&ra, "src/debug.log", b"ignored by *.log");
        put(&ra, "target/release/hello", b"\x7fELF");
        put(&ra, "target/CACHEDIR.TAG", b"x");
        put(&ra, ".git/HEAD", b"ref: refs/heads/main\n");
        put(&ra, "sub/.git/config", b"[core]\n");
        assert_eq!(digest(&ra), base);
        // A hidden file that is not ignored counts, and so does a nested `target` (only
        // the root's is cargo's output directory).
        put(&ra, ".env", b"A=1\n");
        let with_hidden = digest(&ra);
        assert_ne!(with_hidden, base, "hidden file");
        put(&ra, "src/target/mod.rs", b"");
        assert_ne!(digest(&ra), with_hidden, "nested target/");
    }

    #[test]
    fn ignore_files_and_git_excludes_are_honoured() {
        let (_a, ra) = project(&[0, 1, 2, 3, 4]);
        put(&ra, ".ignore", b"scratch/\n");
        put(&ra, ".git/info/exclude", b"local.txt\n");
        let base = digest(&ra);
        put(&ra, "scratch/notes.md", b"x");
        put(&ra, "local.txt", b"x");
        assert_eq!(digest(&ra), base);
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_are_hashed_by_target_never_followed() {
        let (_a, ra) = project(&[0, 1, 2, 3, 4]);
        let outside = ra.parent().unwrap().join("outside");
        put(&outside, "big.rs", b"one");
        std::os::unix::fs::symlink(&outside, ra.join("linkdir")).unwrap();
        std::os::unix::fs::symlink("main.rs", ra.join("src/alias.rs")).unwrap();
        let base = digest(&ra);
        // Changing what a link points at (outside the tree) is not seen...
        put(&outside, "big.rs", b"two");
        assert_eq!(digest(&ra), base);
        // ...changing where it points is.
        std::fs::remove_file(ra.join("src/alias.rs")).unwrap();
        std::os::unix::fs::symlink("bin/tool.rs", ra.join("src/alias.rs")).unwrap();
        assert_ne!(digest(&ra), base);
    }
}
