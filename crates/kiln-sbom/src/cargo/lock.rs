//! `Cargo.lock`: the exact packages cargo resolved and the edges between them.
//!
//! Written by hand on top of `toml` + serde rather than with the `cargo-lock` crate: that
//! crate parses every source into a `url::Url`, which pulls `url`, `idna` and the ICU
//! tables into kiln for a field kiln only classifies (crates.io, path or other). The format
//! itself is small: `[[package]]` tables with `name`, `version`, optional `source` and
//! `checksum`, and `dependencies` entries of the form `name`, `name version` or
//! `name version (source)` (cargo writes the shortest unambiguous one).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Result, SbomError};

/// One `[[package]]` of the lock, with its dependencies resolved to indices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LockedPackage {
    pub name: String,
    pub version: String,
    /// `None` for path packages (workspace members and path dependencies).
    pub source: Option<String>,
    pub checksum: Option<String>,
    /// Indices into [`Lock::packages`]: every dependency cargo locked for this package, of
    /// every kind and for every platform.
    pub deps: Vec<usize>,
}

impl LockedPackage {
    pub fn key(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }
    pub fn is_crates_io(&self) -> bool {
        self.source
            .as_deref()
            .is_some_and(|s| s.starts_with("registry+") || s.starts_with("sparse+"))
    }
}

/// A parsed `Cargo.lock`.
#[derive(Debug, Clone)]
pub(crate) struct Lock {
    pub path: PathBuf,
    pub packages: Vec<LockedPackage>,
}

#[derive(Deserialize)]
struct Raw {
    #[serde(default)]
    package: Vec<RawPackage>,
}

#[derive(Deserialize)]
struct RawPackage {
    name: String,
    version: String,
    source: Option<String>,
    checksum: Option<String>,
    #[serde(default)]
    dependencies: Vec<String>,
}

impl Lock {
    /// Reads and links a lock file. Errors name the file and, for syntax errors and
    /// dangling dependency entries, the line.
    pub fn read(path: &Path) -> Result<Lock> {
        let bytes = std::fs::read(path).map_err(|source| SbomError::MissingLock {
            path: path.to_path_buf(),
            source,
        })?;
        let text = String::from_utf8(bytes).map_err(|e| SbomError::BadLock {
            path: path.to_path_buf(),
            line: None,
            message: format!("not UTF-8 ({e})"),
        })?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Lock> {
        let raw: Raw = toml::from_str(text).map_err(|e| SbomError::BadLock {
            path: path.to_path_buf(),
            line: e
                .span()
                .map(|s| kiln_core::strict_toml::line_at(text, s.start)),
            message: format!("not a Cargo.lock: {}", e.message()),
        })?;
        let mut by_name: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, p) in raw.package.iter().enumerate() {
            by_name.entry(p.name.as_str()).or_default().push(i);
        }
        let mut packages = Vec::with_capacity(raw.package.len());
        for p in &raw.package {
            let mut deps = Vec::with_capacity(p.dependencies.len());
            for entry in &p.dependencies {
                let mut parts = entry.splitn(3, ' ');
                let name = parts.next().unwrap_or_default();
                let version = parts.next();
                let source = parts
                    .next()
                    .map(|s| s.trim_start_matches('(').trim_end_matches(')'));
                let found: Vec<usize> = by_name
                    .get(name)
                    .into_iter()
                    .flatten()
                    .copied()
                    .filter(|&i| {
                        let q = &raw.package[i];
                        version.is_none_or(|v| q.version == v)
                            && source.is_none_or(|s| q.source.as_deref() == Some(s))
                    })
                    .collect();
                match found[..] {
                    [i] => deps.push(i),
                    _ => {
                        return Err(SbomError::BadLock {
                            path: path.to_path_buf(),
                            line: line_of(text, &format!("\"{entry}\"")),
                            message: format!(
                                "dependency `{entry}` of {}@{} matches {} packages (expected exactly one)",
                                p.name,
                                p.version,
                                found.len()
                            ),
                        });
                    }
                }
            }
            packages.push(LockedPackage {
                name: p.name.clone(),
                version: p.version.clone(),
                source: p.source.clone(),
                checksum: p.checksum.clone(),
                deps,
            });
        }
        Ok(Lock {
            path: path.to_path_buf(),
            packages,
        })
    }

    /// The path package (workspace member or path dependency) called `name`, if locked.
    pub fn path_package(&self, name: &str) -> Option<usize> {
        self.packages
            .iter()
            .position(|p| p.source.is_none() && p.name == name)
    }
}

fn line_of(text: &str, needle: &str) -> Option<usize> {
    text.find(needle)
        .map(|at| kiln_core::strict_toml::line_at(text, at))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CRATES_IO: &str = "registry+https://github.com/rust-lang/crates.io-index";

    #[test]
    fn dependency_entries_of_every_form_resolve() {
        let text = format!(
            r#"version = 4

[[package]]
name = "app"
version = "0.1.0"
dependencies = ["itoa", "rand_core 0.5.1", "rand_core 0.6.4 ({CRATES_IO})"]

[[package]]
name = "itoa"
version = "1.0.15"
source = "{CRATES_IO}"
checksum = "aa"

[[package]]
name = "rand_core"
version = "0.5.1"
source = "{CRATES_IO}"
checksum = "bb"

[[package]]
name = "rand_core"
version = "0.6.4"
source = "{CRATES_IO}"
checksum = "cc"
"#
        );
        let lock = Lock::parse(Path::new("/x/Cargo.lock"), &text).unwrap();
        let app = &lock.packages[0];
        let keys: Vec<String> = app.deps.iter().map(|&i| lock.packages[i].key()).collect();
        assert_eq!(keys, ["itoa@1.0.15", "rand_core@0.5.1", "rand_core@0.6.4"]);
        assert!(app.source.is_none() && !app.is_crates_io());
        assert!(lock.packages[1].is_crates_io());
        assert_eq!(lock.packages[1].checksum.as_deref(), Some("aa"));
        assert_eq!(lock.path_package("app"), Some(0));
        assert_eq!(lock.path_package("itoa"), None);
    }

    #[test]
    fn dangling_dependency_names_file_line_and_entry() {
        let text = "version = 4\n\n[[package]]\nname = \"app\"\nversion = \"0.1.0\"\ndependencies = [\n \"ghost\",\n]\n";
        let e = Lock::parse(Path::new("/x/Cargo.lock"), text)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/x/Cargo.lock:7") && e.contains("`ghost`") && e.contains("app@0.1.0"),
            "{e}"
        );
    }

    #[test]
    fn syntax_error_names_the_line() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("Cargo.lock");
        std::fs::write(
            &p,
            "version = 4\n\n[[package]]\nname = \"a\"\nversion = = \"1\"\n",
        )
        .unwrap();
        let e = Lock::read(&p).unwrap_err().to_string();
        assert!(e.contains(&format!("{}:5", p.display())), "{e}");
    }
}
