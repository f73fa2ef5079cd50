//! Listing one output tree: every regular file and symlink, by the name it is paired
//! with across the two trees (its relative path, or an OCI blob's role, see [`super::oci`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Result, io};

use super::oci::blob_roles;

/// A file of one tree, with the name it is paired by.
pub(super) struct Listed {
    pub(super) logical: String,
    pub(super) rel: String,
    pub(super) abs: PathBuf,
    /// The file's bytes, when listing already read them (index.json, JSON blobs).
    pub(super) read: Option<Vec<u8>>,
    /// The target, when the entry is a symlink.
    pub(super) link: Option<PathBuf>,
}

/// Lists the regular files and symlinks under `dir` (relative, `/`-separated, sorted),
/// skipping kiln's hidden staging leftovers. A symlink is an entry of its own (compared by
/// its target), never followed: a loop or a link out of the tree is still listed.
pub fn list_files(dir: &Path) -> Result<Vec<String>> {
    fn walk(base: &Path, d: &Path, out: &mut Vec<String>) -> Result<()> {
        for e in std::fs::read_dir(d).map_err(io("cannot list", d))? {
            let e = e.map_err(io("cannot list", d))?;
            let name = e.file_name();
            if name.to_string_lossy().starts_with(".kiln-")
                || name.to_string_lossy().contains(".staging-")
            {
                continue;
            }
            let ty = e.file_type().map_err(io("cannot stat", &e.path()))?;
            if ty.is_dir() {
                walk(base, &e.path(), out)?;
            } else if ty.is_file() || ty.is_symlink() {
                let p = e.path();
                let rel = p.strip_prefix(base).unwrap_or(&p);
                out.push(
                    rel.components()
                        .map(|c| c.as_os_str().to_string_lossy())
                        .collect::<Vec<_>>()
                        .join("/"),
                );
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out)?;
    out.sort();
    Ok(out)
}

pub(super) fn listed(dir: &Path) -> Result<Vec<Listed>> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let files = list_files(dir)?;
    let mut read = BTreeMap::new();
    let roles = blob_roles(dir, &files, &mut read);
    files
        .into_iter()
        .map(|rel| {
            let abs = dir.join(&rel);
            let link = std::fs::symlink_metadata(&abs)
                .is_ok_and(|m| m.file_type().is_symlink())
                .then(|| std::fs::read_link(&abs))
                .transpose()
                .map_err(io("cannot read link", &abs))?;
            Ok(Listed {
                logical: roles.get(&rel).cloned().unwrap_or_else(|| rel.clone()),
                read: if link.is_some() {
                    None
                } else {
                    read.remove(&rel)
                },
                abs,
                link,
                rel,
            })
        })
        .collect::<Result<Vec<_>>>()
}
