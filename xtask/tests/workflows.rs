//! The GitHub Actions workflows are linted by zizmor (offline) and actionlint, and every
//! action is pinned by full commit SHA with least-privilege permissions.

use crate::support::*;

fn workflows() -> Vec<std::path::PathBuf> {
    let dir = repo().join(".github/workflows");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no workflows in {}", dir.display());
    files
}

#[test]
fn zizmor_finds_nothing() {
    let out = run_ok(
        kiln_core::process::command(tool("zizmor"))
            .args(["--offline", "--no-progress"])
            .arg(repo().join(".github/workflows")),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("No findings"), "{text}");
}

#[test]
fn actionlint_is_clean() {
    run_ok(kiln_core::process::command(tool("actionlint")).args(workflows()));
}

#[test]
fn actions_pinned_by_sha_with_least_privilege() {
    for wf in workflows() {
        let text = std::fs::read_to_string(&wf).unwrap();
        assert!(
            text.contains("\npermissions:"),
            "{}: no top-level permissions",
            wf.display()
        );
        for line in text.lines().map(str::trim) {
            let Some(uses) = line
                .strip_prefix("- uses:")
                .or_else(|| line.strip_prefix("uses:"))
            else {
                continue;
            };
            let uses = uses.trim();
            if uses.starts_with("./") {
                continue;
            }
            let sha = uses
                .split('@')
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
                .unwrap_or("");
            assert!(
                sha.len() == 40 && sha.bytes().all(|b| b.is_ascii_hexdigit()),
                "{}: `{uses}` is not pinned by commit SHA",
                wf.display()
            );
        }
    }
}
