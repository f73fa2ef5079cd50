//! Conventions that check themselves (as rust-analyzer's `xtask/src/tidy.rs`): tests that read
//! the source tree and fail, naming file and line, when code breaks a rule ARCHITECTURE.md
//! states. They run with every `cargo test --workspace` (so with `cargo xtask test`); clippy
//! enforces the rest (`Command::new` and `fs::write` through clippy.toml's
//! `disallowed-methods`, the workspace `[lints]`).
//!
//! "Product code" below is the non-test code of `crates/*/src`: a file stops being product
//! code at its first `#[cfg(test)]` line (kiln keeps unit tests at the bottom), and files
//! that are test modules (`tests.rs`, `fixtures.rs`, a `#[cfg(test)] mod x;`) are skipped.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::util::repo_root;

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Names of modules declared as `#[cfg(test)] mod name;` in `text`.
fn test_modules(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut cfg_test = false;
    for line in text.lines().map(str::trim) {
        if line == "#[cfg(test)]" {
            cfg_test = true;
            continue;
        }
        if cfg_test
            && let Some(name) = line
                .strip_prefix("mod ")
                .or_else(|| line.strip_prefix("pub(crate) mod "))
                .and_then(|r| r.strip_suffix(';'))
        {
            out.insert(name.to_string());
        }
        cfg_test = false;
    }
    out
}

/// The product code of every library crate: (file relative to the repository, lines
/// numbered from 1), test code left out.
fn product_code() -> Vec<(String, Vec<(usize, String)>)> {
    let repo = repo_root().unwrap();
    let mut out = Vec::new();
    for krate in crate_dirs(&repo) {
        let files = rust_files(&krate.join("src"));
        let mut test_files: BTreeSet<PathBuf> = BTreeSet::new();
        for f in &files {
            let text = std::fs::read_to_string(f).unwrap();
            let dir = if f
                .file_name()
                .is_some_and(|n| n == "mod.rs" || n == "lib.rs")
            {
                f.parent().unwrap().to_path_buf()
            } else {
                f.with_extension("")
            };
            for m in test_modules(&text) {
                test_files.insert(dir.join(format!("{m}.rs")));
                test_files.insert(dir.join(&m).join("mod.rs"));
            }
        }
        for f in files {
            let name = f.file_name().unwrap().to_string_lossy();
            let is_test = name == "tests.rs"
                || name == "fixtures.rs"
                || test_files.contains(&f)
                || test_files.iter().any(|t| {
                    t.file_name().is_some_and(|n| n == "mod.rs")
                        && f.starts_with(t.parent().unwrap())
                });
            if is_test {
                continue;
            }
            let text = std::fs::read_to_string(&f).unwrap();
            let lines = text
                .lines()
                .enumerate()
                .take_while(|(_, l)| l.trim() != "#[cfg(test)]")
                .filter(|(_, l)| !l.trim_start().starts_with("//"))
                .map(|(i, l)| (i + 1, l.to_string()))
                .collect();
            let rel = f
                .strip_prefix(&repo)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            out.push((rel, lines));
        }
    }
    out
}

fn crate_dirs(repo: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(repo.join("crates"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("Cargo.toml").is_file())
        .collect();
    dirs.sort();
    dirs
}

/// Every workspace member's manifest: `crates/*`, `xtask`, `fuzz`.
fn members(repo: &Path) -> Vec<PathBuf> {
    let mut m = crate_dirs(repo);
    m.push(repo.join("xtask"));
    m.push(repo.join("fuzz"));
    m
}

fn manifest(dir: &Path) -> toml::Table {
    std::fs::read_to_string(dir.join("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap()
}

fn fail_with(what: &str, hits: &[String]) {
    assert!(hits.is_empty(), "{what}:\n  {}\n", hits.join("\n  "));
}

/// ARCHITECTURE.md's dependency list is the crate graph, edge for edge, in both directions:
/// code cannot grow an edge the document does not show, and the document cannot show an
/// edge the code does not have.
#[test]
fn architecture_md_lists_every_dependency_edge() {
    let repo = repo_root().unwrap();
    let doc = std::fs::read_to_string(repo.join("ARCHITECTURE.md")).unwrap();
    let start = doc
        .find("<!-- tidy:dependencies -->")
        .expect("ARCHITECTURE.md has a `<!-- tidy:dependencies -->` list");
    let mut documented: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in doc[start..].lines().skip(1) {
        let Some(item) = line.strip_prefix("- ") else {
            break;
        };
        let item = item.replace('`', "");
        let (from, to) = item
            .split_once(" → ")
            .unwrap_or_else(|| panic!("ARCHITECTURE.md: `{line}` is not `- a → b, c`"));
        let to = to.trim().trim_end_matches('.');
        documented.insert(
            from.trim().to_string(),
            if to == "(none)" {
                BTreeSet::new()
            } else {
                to.split(',').map(|s| s.trim().to_string()).collect()
            },
        );
    }
    let mut actual: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for dir in members(&repo) {
        let m = manifest(&dir);
        let name = m["package"]["name"].as_str().unwrap().to_string();
        let deps = m
            .get("dependencies")
            .and_then(|d| d.as_table())
            .map(|d| {
                d.keys()
                    .filter(|k| k.starts_with("kiln-"))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        actual.insert(name, deps);
    }
    assert_eq!(
        documented, actual,
        "ARCHITECTURE.md's dependency list (left) and the Cargo.toml files (right) disagree: \
         change the code or the document, so that the document stays true"
    );
}

/// Every crate inherits the workspace lints, so one `[workspace.lints]` governs all.
#[test]
fn every_member_inherits_the_workspace_lints() {
    let repo = repo_root().unwrap();
    let mut hits = Vec::new();
    for dir in members(&repo) {
        let m = manifest(&dir);
        let inherits = m
            .get("lints")
            .and_then(|l| l.get("workspace"))
            .and_then(|w| w.as_bool())
            == Some(true);
        if !inherits {
            hits.push(format!(
                "{}/Cargo.toml: add `[lints]\\nworkspace = true`",
                dir.strip_prefix(&repo).unwrap().display()
            ));
        }
    }
    fail_with("members without the workspace lints", &hits);
}

/// Every crate has its Code Map entry in ARCHITECTURE.md, ending with its invariant.
#[test]
fn every_crate_has_a_code_map_entry() {
    let repo = repo_root().unwrap();
    let doc = std::fs::read_to_string(repo.join("ARCHITECTURE.md")).unwrap();
    let mut hits = Vec::new();
    for dir in crate_dirs(&repo) {
        let name = dir.file_name().unwrap().to_string_lossy();
        if !doc.contains(&format!("### `crates/{name}`")) {
            hits.push(format!("ARCHITECTURE.md: no `### `crates/{name}`` section"));
        }
    }
    fail_with("crates missing from the Code Map", &hits);
}

/// The product never bakes the build machine's source path into itself.
#[test]
fn no_source_path_in_product_code() {
    let mut hits = Vec::new();
    for (file, lines) in product_code() {
        for (n, l) in lines {
            if l.contains("env!(\"CARGO_MANIFEST_DIR\")") {
                hits.push(format!("{file}:{n}: {}", l.trim()));
            }
        }
    }
    fail_with(
        "env!(\"CARGO_MANIFEST_DIR\") in product code (the installed binary would carry the \
         build machine's source path; find files relative to the project instead)",
        &hits,
    );
}

/// Files are written and JSON is serialized only through kiln-core (`fsx::write_atomic`,
/// `canonical`): that is how every output appears via a rename and every byte is canonical.
#[test]
fn writes_and_json_only_through_kiln_core() {
    const FORBIDDEN: &[(&str, &str)] = &[
        ("fs::write(", "kiln_core::fsx::write_atomic"),
        (
            "File::create(",
            "kiln_core::fsx (write_atomic, or a staging dir)",
        ),
        ("serde_json::to_vec", "kiln_core::canonical::to_vec"),
        ("serde_json::to_string", "kiln_core::canonical::to_vec"),
        ("serde_json::to_writer", "kiln_core::canonical::to_vec"),
    ];
    let mut hits = Vec::new();
    for (file, lines) in product_code() {
        if file.starts_with("crates/kiln-core/") {
            continue;
        }
        for (n, l) in lines {
            for (pat, instead) in FORBIDDEN {
                if l.contains(pat) {
                    hits.push(format!("{file}:{n}: `{pat}`: use {instead}"));
                }
            }
        }
    }
    fail_with("writes or JSON serialization outside kiln-core", &hits);
}

/// Output paths and file names are spelled once, in `kiln_core::contract::layout`: a
/// literal equal to one of its file-name constants (or starting with `target/kiln`)
/// anywhere else in product code is a second definition waiting to disagree.
#[test]
fn output_names_only_in_the_contract() {
    let repo = repo_root().unwrap();
    let layout = "crates/kiln-core/src/contract/layout.rs";
    let text = std::fs::read_to_string(repo.join(layout)).unwrap();
    // kiln's own file names and paths: constants whose value has an extension or a
    // slash. Bare words (`oci`, `toolchains`) also mean other things (a purl type, rustup's
    // directory), and `Cargo.toml`/`Cargo.lock` are cargo's names, not kiln's contract.
    let mut names: BTreeSet<String> = BTreeSet::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with("pub const ")
            && !line.starts_with("pub const CARGO_")
            && line.contains(": &str = \"")
            && let Some(v) = line.split('"').nth(1)
            && (v.contains('.') || v.contains('/'))
        {
            names.insert(format!("\"{v}\""));
        }
    }
    assert!(
        names.contains("\"summary.json\""),
        "{layout}: no file-name constants found (did the contract move?)"
    );
    let mut hits = Vec::new();
    for (file, lines) in product_code() {
        if file == layout {
            continue;
        }
        for (n, l) in lines {
            if l.contains("\"target/kiln") {
                hits.push(format!("{file}:{n}: `\"target/kiln...\"`"));
            }
            for name in &names {
                if l.contains(name.as_str()) {
                    hits.push(format!("{file}:{n}: {name}"));
                }
            }
        }
    }
    fail_with(
        "output paths or file names spelled outside kiln_core::contract::layout (use its \
         ProjectLayout/OutputDir or constants)",
        &hits,
    );
}

/// End-to-end tests are one test binary per crate (as ripgrep's `tests/tests.rs`): each
/// extra binary links every dependency again.
#[test]
fn one_integration_test_binary_per_crate() {
    let repo = repo_root().unwrap();
    let mut hits = Vec::new();
    for dir in members(&repo) {
        let Ok(entries) = std::fs::read_dir(dir.join("tests")) else {
            continue;
        };
        let mut top: Vec<String> = entries
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "rs"))
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        top.sort();
        let m = manifest(&dir);
        let autotests = m["package"].get("autotests").and_then(|v| v.as_bool()) != Some(false);
        if autotests && top.len() > 1 {
            hits.push(format!(
                "{}/tests: {} test binaries ({}): make one tests.rs with a module per file",
                dir.strip_prefix(&repo).unwrap().display(),
                top.len(),
                top.join(", ")
            ));
        }
    }
    fail_with("crates with several integration-test binaries", &hits);
}

#[test]
fn test_modules_are_found() {
    let text = "mod a;\n#[cfg(test)]\nmod tests;\n#[cfg(test)]\nmod fixtures;\nmod b;\n";
    assert_eq!(
        test_modules(text),
        ["fixtures", "tests"].map(String::from).into()
    );
}
