//! Tests of this repository's developer tasks (one test binary):
//!
//! - `corpus`    — `cargo xtask corpus` on the smallest real-world projects
//! - `workflows` — the GitHub Actions workflows lint clean and pin every action
//!
//! They share kiln-cli's test support module, so there is one helper for starting real
//! tools, not two.

/// The binary under test: `cargo xtask`, which embeds every `kiln` command.
const KILN: &str = env!("CARGO_BIN_EXE_xtask");

#[path = "../../crates/kiln-cli/tests/support/mod.rs"]
mod support;

mod corpus;
mod workflows;
