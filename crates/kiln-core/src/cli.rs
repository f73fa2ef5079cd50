//! How the user runs kiln, for the commands error messages suggest.
//!
//! Inside kiln's own repository the CLI is `cargo xtask` (an alias in `.cargo/config.toml`);
//! everywhere else it is the installed `kiln` binary. A message that says "run `cargo xtask
//! fetch`" in a project without that alias sends the user to a command that does not exist,
//! so every suggested command is spelled through [`cmd`]. The CLI decides once, at start-up,
//! with [`set_program`]; library callers get `kiln`.

use std::path::Path;
use std::sync::OnceLock;

static PROGRAM: OnceLock<String> = OnceLock::new();

/// The program the suggested commands start with: `kiln` unless [`set_program`] said
/// otherwise.
pub fn program() -> &'static str {
    PROGRAM.get().map(String::as_str).unwrap_or("kiln")
}

/// Sets the program for the rest of the process (the first call wins).
pub fn set_program(program: &str) {
    let _ = PROGRAM.set(program.to_string());
}

/// `<program> <sub>`, e.g. `kiln toolchain lock` or `cargo xtask toolchain lock`.
pub fn cmd(sub: &str) -> String {
    format!("{} {sub}", program())
}

/// The program to suggest for a CLI binary named `binary` (`argv[0]`'s file name) working on
/// `project`: `cargo xtask` when the binary is the `xtask` one and the project (or an
/// ancestor, as cargo searches) defines an `xtask` alias in `.cargo/config.toml` or
/// `.cargo/config`; `kiln` otherwise.
pub fn program_for(binary: &str, project: &Path) -> &'static str {
    if binary != "xtask" {
        return "kiln";
    }
    let project = project
        .canonicalize()
        .unwrap_or_else(|_| project.to_path_buf());
    for dir in project.ancestors() {
        for name in ["config.toml", "config"] {
            let Ok(text) = std::fs::read_to_string(dir.join(".cargo").join(name)) else {
                continue;
            };
            let Ok(value) = text.parse::<toml::Table>() else {
                continue;
            };
            if value.get("alias").and_then(|a| a.get("xtask")).is_some() {
                return "cargo xtask";
            }
        }
    }
    "kiln"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cargo_xtask_only_where_the_project_has_the_alias() {
        let repo = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(repo.path().join(".cargo")).unwrap();
        std::fs::write(
            repo.path().join(".cargo/config.toml"),
            "[alias]\nxtask = \"run --package xtask --\"\n",
        )
        .unwrap();
        let inner = repo.path().join("testdata/hello");
        std::fs::create_dir_all(&inner).unwrap();
        assert_eq!(program_for("xtask", repo.path()), "cargo xtask");
        assert_eq!(program_for("xtask", &inner), "cargo xtask");
        // The installed binary is `kiln` wherever it runs.
        assert_eq!(program_for("kiln", repo.path()), "kiln");
        let other = tempfile::tempdir().unwrap();
        assert_eq!(program_for("xtask", other.path()), "kiln");
        // A config without the alias does not count.
        std::fs::create_dir_all(other.path().join(".cargo")).unwrap();
        std::fs::write(
            other.path().join(".cargo/config.toml"),
            "[alias]\nb = \"build\"\n",
        )
        .unwrap();
        assert_eq!(program_for("xtask", other.path()), "kiln");
    }
}
