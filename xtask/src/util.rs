//! Helpers shared by the developer tasks.

use std::path::PathBuf;

use anyhow::{Context, Result};

/// kiln's source tree. Developer tasks run only from it (`cargo xtask` lives at
/// `<repo>/xtask`), so baking this path in is right here and wrong in the product.
pub fn repo_root() -> Result<PathBuf> {
    Ok(std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("xtask has no parent directory")?
        .to_path_buf())
}

/// Whether `tool` is on `$PATH`.
pub fn on_path(tool: &str) -> bool {
    kiln_core::process::which(tool).is_some()
}
