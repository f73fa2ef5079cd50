//! The project's source identity (git commit, branch, origin), carried into both copies.
//!
//! The copies of the project leave the original `.git` behind (it can be large, and a
//! build must not write into it). Each copy instead gets a small repository of its own that
//! shares the original's objects (`objects/info/alternates`, as `git clone --shared`)
//! and has the same `HEAD` commit and branch, tags, `remote.origin.url` and shallow
//! boundary, with an index of `HEAD` refreshed against the copied files — so
//! `git rev-parse HEAD`, `git describe --tags --dirty` and the provenance's `source` see
//! on both sides what they see in the original tree, whatever directory each build runs in.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{Error, Result};

/// What identifies the project's source in git.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitIdentity {
    /// The commit `HEAD` names.
    pub commit: String,
    /// The branch `HEAD` is on (`None`: detached).
    pub branch: Option<String>,
    /// `remote.origin.url`, as configured.
    pub origin: Option<String>,
    /// The project directory relative to the repository's top level (empty at the top).
    pub subdir: PathBuf,
    /// The original repository's object directory, shared by the copies.
    objects: PathBuf,
    /// The original's `shallow` file, if it is a shallow clone.
    shallow: Option<PathBuf>,
    /// `<commit> <refname>` of every tag.
    tags: Vec<(String, String)>,
}

fn git(dir: &Path) -> Command {
    let mut c = kiln_core::process::command("git");
    c.arg("-C").arg(dir).stdin(Stdio::null());
    for v in [
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_INDEX_FILE",
        "GIT_OBJECT_DIRECTORY",
        "GIT_ALTERNATE_OBJECT_DIRECTORIES",
        "GIT_CEILING_DIRECTORIES",
    ] {
        c.env_remove(v);
    }
    c
}

/// Output of a git query, trimmed; `None` when git fails or prints nothing.
fn query(dir: &Path, args: &[&str]) -> Option<String> {
    let out = git(dir).args(args).stderr(Stdio::null()).output().ok()?;
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !s.is_empty()).then_some(s)
}

/// Runs git in `dir`, failing with its message.
fn run(dir: &Path, args: &[&OsStr], stdin: Option<&[u8]>) -> Result<String> {
    let mut cmd = git(dir);
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    if stdin.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let shown = format!(
        "git -C {} {}",
        dir.display(),
        args.iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let mut child = cmd.spawn().map_err(|source| Error::Spawn {
        command: shown.clone(),
        source,
    })?;
    if let Some(input) = stdin {
        use std::io::Write;
        let mut w = child.stdin.take().expect("piped stdin");
        w.write_all(input).map_err(|source| Error::Spawn {
            command: shown.clone(),
            source,
        })?;
    }
    let out = child.wait_with_output().map_err(|source| Error::Spawn {
        command: shown.clone(),
        source,
    })?;
    if !out.status.success() {
        return Err(Error::Git {
            command: shown,
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl GitIdentity {
    /// The identity of the git work tree `project` is in; `None` when it is in none (or
    /// has no commit yet).
    pub fn of(project: &Path) -> Option<GitIdentity> {
        let commit = query(project, &["rev-parse", "--verify", "-q", "HEAD^{commit}"])?;
        let top = PathBuf::from(query(project, &["rev-parse", "--show-toplevel"])?);
        let top = top.canonicalize().unwrap_or(top);
        let project = project.canonicalize().ok()?;
        let subdir = project.strip_prefix(&top).ok()?.to_path_buf();
        let common = PathBuf::from(query(
            project.as_path(),
            &["rev-parse", "--path-format=absolute", "--git-common-dir"],
        )?);
        let branch = query(&project, &["symbolic-ref", "-q", "HEAD"]);
        let origin = query(&project, &["config", "--get", "remote.origin.url"]);
        let tags = query(
            &project,
            &[
                "for-each-ref",
                "--format=%(objectname) %(refname)",
                "refs/tags",
            ],
        )
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(o, r)| (o.to_string(), r.to_string()))
        .collect();
        let shallow = Some(common.join("shallow")).filter(|p| p.is_file());
        Some(GitIdentity {
            commit,
            branch,
            origin,
            subdir,
            objects: common.join("objects"),
            shallow,
            tags,
        })
    }

    /// Makes `worktree` (a copy of the repository's top level, or the part of it that
    /// holds the project) a work tree of a new repository in `git_dir` with this identity.
    /// Files outside [`GitIdentity::subdir`] were not copied: they are marked
    /// skip-worktree, so they do not count as deleted.
    pub fn plant(&self, worktree: &Path, git_dir: &Path) -> Result<()> {
        fn os(s: &str) -> &OsStr {
            s.as_ref()
        }
        run(
            worktree,
            &[
                os("init"),
                os("-q"),
                os("--separate-git-dir"),
                git_dir.as_os_str(),
                worktree.as_os_str(),
            ],
            None,
        )?;
        let info = git_dir.join("objects/info");
        std::fs::create_dir_all(&info).map_err(crate::error::io("cannot create", &info))?;
        let alternates = info.join("alternates");
        kiln_core::fsx::write_atomic(
            &alternates,
            format!("{}\n", self.objects.display()).as_bytes(),
        )
        .map_err(crate::error::io("cannot write", &alternates))?;
        if let Some(s) = &self.shallow {
            let dest = git_dir.join("shallow");
            std::fs::copy(s, &dest).map_err(crate::error::io("cannot copy", s))?;
        }
        let mut refs = String::new();
        for (obj, name) in &self.tags {
            refs.push_str(&format!("create {name} {obj}\n"));
        }
        if let Some(b) = &self.branch {
            refs.push_str(&format!("create {b} {}\n", self.commit));
        }
        if !refs.is_empty() {
            run(
                worktree,
                &[os("update-ref"), os("--stdin")],
                Some(refs.as_bytes()),
            )?;
        }
        match &self.branch {
            Some(b) => run(worktree, &[os("symbolic-ref"), os("HEAD"), os(b)], None)?,
            None => run(
                worktree,
                &[
                    os("update-ref"),
                    os("--no-deref"),
                    os("HEAD"),
                    os(&self.commit),
                ],
                None,
            )?,
        };
        if let Some(url) = &self.origin {
            run(
                worktree,
                &[os("config"), os("remote.origin.url"), os(url)],
                None,
            )?;
        }
        run(worktree, &[os("read-tree"), os("HEAD")], None)?;
        if !self.subdir.as_os_str().is_empty() {
            let inside = format!("{}/", self.subdir.display());
            let listed = run(worktree, &[os("ls-files"), os("-z")], None)?;
            let outside: Vec<&str> = listed
                .split('\0')
                .filter(|p| !p.is_empty() && !p.starts_with(&inside))
                .collect();
            if !outside.is_empty() {
                let mut input = outside.join("\0");
                input.push('\0');
                run(
                    worktree,
                    &[
                        os("update-index"),
                        os("-z"),
                        os("--skip-worktree"),
                        os("--stdin"),
                    ],
                    Some(input.as_bytes()),
                )?;
            }
        }
        // Stat information for the copied files, so they are not all "modified"; the
        // exit status says whether any is, which is not an error.
        let _ = git(worktree)
            .args(["update-index", "-q", "--refresh"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(dir: &Path, args: &[&str]) -> String {
        let out = git(dir)
            .args(args)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    #[test]
    fn a_copy_has_the_originals_commit_branch_origin_tags_and_dirty_state() {
        let d = tempfile::tempdir().unwrap();
        let repo = d.path().join("repo");
        std::fs::create_dir_all(repo.join("app/src")).unwrap();
        std::fs::write(repo.join("README"), "top\n").unwrap();
        std::fs::write(repo.join("app/src/main.rs"), "fn main() {}\n").unwrap();
        sh(&repo, &["init", "-q", "-b", "trunk"]);
        sh(&repo, &["add", "."]);
        sh(&repo, &["commit", "-q", "-m", "one"]);
        sh(&repo, &["tag", "v1.2.3"]);
        sh(
            &repo,
            &["remote", "add", "origin", "https://example.invalid/r.git"],
        );
        let head = sh(&repo, &["rev-parse", "HEAD"]);

        // The project is the subdirectory `app`; only it is copied.
        let id = GitIdentity::of(&repo.join("app")).unwrap();
        assert_eq!(id.commit, head);
        assert_eq!(id.subdir, Path::new("app"));
        let copy = d.path().join("side/project");
        crate::run::copy_project(&repo.join("app"), &copy.join("app"), None).unwrap();
        id.plant(&copy, &d.path().join("side/git")).unwrap();
        let inside = copy.join("app");
        assert_eq!(sh(&inside, &["rev-parse", "HEAD"]), head);
        assert_eq!(sh(&inside, &["rev-parse", "--abbrev-ref", "HEAD"]), "trunk");
        assert_eq!(
            sh(&inside, &["config", "--get", "remote.origin.url"]),
            "https://example.invalid/r.git"
        );
        assert_eq!(
            sh(&inside, &["describe", "--tags", "--dirty"]),
            "v1.2.3",
            "files outside the copied subdirectory must not count as deleted"
        );
        // A change in the copy is a change.
        std::fs::write(inside.join("src/main.rs"), "fn main() { }\n").unwrap();
        assert_eq!(
            sh(&inside, &["describe", "--tags", "--dirty"]),
            "v1.2.3-dirty"
        );
        // Not in a repository: no identity.
        let plain = tempfile::tempdir().unwrap();
        if crate::run::enclosing_workspace(plain.path()).is_none() {
            assert!(GitIdentity::of(plain.path()).is_none());
        }
    }
}
