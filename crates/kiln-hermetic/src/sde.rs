use std::path::Path;

/// Where the build's `SOURCE_DATE_EPOCH` came from; recorded next to the value so a
/// verifier knows whether it reflects the source or a configured constant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SdeSource {
    /// `$SOURCE_DATE_EPOCH` in kiln's environment.
    Env,
    /// The commit time of the project's last git commit.
    GitCommit,
    /// `[project] source_date_epoch` in `kiln.toml`.
    Config,
    /// Nothing was given: 0, as `buildah commit --timestamp 0` does.
    Default,
}

impl SdeSource {
    /// The name `summary.json` and provenance record (the serde spelling).
    pub fn as_str(self) -> &'static str {
        match self {
            SdeSource::Env => "env",
            SdeSource::GitCommit => "git_commit",
            SdeSource::Config => "config",
            SdeSource::Default => "default",
        }
    }
}

impl std::fmt::Display for SdeSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The single timestamp every artifact of a build carries
/// (<https://reproducible-builds.org/specs/source-date-epoch/>).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SourceDateEpoch {
    pub value: u64,
    pub source: SdeSource,
}

/// Why `$SOURCE_DATE_EPOCH` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SdeError {
    #[error("SOURCE_DATE_EPOCH=`{value}` is not a non-negative integer number of seconds")]
    NotSeconds {
        value: String,
        source: std::num::ParseIntError,
    },
}

impl kiln_core::Hint for SdeError {
    fn hint(&self) -> Option<String> {
        Some("set it to e.g. `$(git log -1 --format=%ct)` or unset it".into())
    }
}

impl SourceDateEpoch {
    /// Resolves the epoch: `$SOURCE_DATE_EPOCH`, else the last git commit time of
    /// `project`, else `configured`, else 0.
    ///
    /// A malformed `$SOURCE_DATE_EPOCH` is an error rather than silently ignored: a
    /// release pipeline that sets it means it.
    pub fn resolve(
        env_value: Option<&str>,
        project: &Path,
        configured: Option<u64>,
    ) -> Result<Self, SdeError> {
        if let Some(v) = env_value {
            let value = v
                .trim()
                .parse::<u64>()
                .map_err(|source| SdeError::NotSeconds {
                    value: v.to_string(),
                    source,
                })?;
            return Ok(SourceDateEpoch {
                value,
                source: SdeSource::Env,
            });
        }
        if let Some(value) = git_commit_time(project) {
            return Ok(SourceDateEpoch {
                value,
                source: SdeSource::GitCommit,
            });
        }
        if let Some(value) = configured {
            return Ok(SourceDateEpoch {
                value,
                source: SdeSource::Config,
            });
        }
        Ok(SourceDateEpoch {
            value: 0,
            source: SdeSource::Default,
        })
    }
}

fn git_commit_time(dir: &Path) -> Option<u64> {
    let out = kiln_core::process::command("git")
        .args(["log", "-1", "--format=%ct", "--", "."])
        .current_dir(dir)
        .env_remove("GIT_DIR")
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    std::str::from_utf8(&out.stdout).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_env_git_config_default() {
        let d = tempfile::tempdir().unwrap();
        let r = SourceDateEpoch::resolve(Some("42"), d.path(), Some(7)).unwrap();
        assert_eq!((r.value, r.source), (42, SdeSource::Env));
        let r = SourceDateEpoch::resolve(None, d.path(), Some(7)).unwrap();
        assert_eq!((r.value, r.source), (7, SdeSource::Config));
        let r = SourceDateEpoch::resolve(None, d.path(), None).unwrap();
        assert_eq!((r.value, r.source), (0, SdeSource::Default));
        assert!(
            SourceDateEpoch::resolve(Some("yesterday"), d.path(), None)
                .unwrap_err()
                .to_string()
                .contains("SOURCE_DATE_EPOCH")
        );
    }

    /// `as_str` is what summary.json and provenance record: the serde spelling.
    #[test]
    fn names_are_the_serde_names() {
        for s in [
            SdeSource::Env,
            SdeSource::GitCommit,
            SdeSource::Config,
            SdeSource::Default,
        ] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }

    #[test]
    fn git_commit_time_is_used() {
        let d = tempfile::tempdir().unwrap();
        let git = |args: &[&str]| {
            let s = kiln_core::process::command("git")
                .args(args)
                .current_dir(d.path())
                .env("GIT_COMMITTER_DATE", "@1234567890 +0000")
                .env("GIT_AUTHOR_DATE", "@1234567890 +0000")
                .env("GIT_AUTHOR_NAME", "t")
                .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
                .env("GIT_COMMITTER_NAME", "t")
                .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
                .status()
                .unwrap();
            assert!(s.success());
        };
        git(&["init", "-q"]);
        std::fs::write(d.path().join("f"), "x").unwrap();
        git(&["add", "f"]);
        git(&["commit", "-q", "-m", "x"]);
        let r = SourceDateEpoch::resolve(None, d.path(), Some(7)).unwrap();
        assert_eq!((r.value, r.source), (1234567890, SdeSource::GitCommit));
    }
}
