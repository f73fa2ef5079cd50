//! Starting processes: every tool kiln runs (rustc, cc, cargo, git, the build itself, the
//! kiln CLI under `repro`) starts through [`command`]. clippy.toml's `disallowed-methods`
//! forbids `std::process::Command::new` everywhere else, so no caller can forget to keep the
//! interposers out.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::Command;

/// A [`Command`] for `program` without dynamic-loader interposers ([`without_interposers`]).
/// A caller that wants one on purpose (`repro`'s clock variation) sets it on the returned
/// command, where it shows.
#[allow(clippy::disallowed_methods)] // the one place processes are created
pub fn command(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(program);
    without_interposers(&mut cmd);
    cmd
}

/// The first `name` on `$PATH` that is a file, as a shell would find it: how kiln decides
/// whether an optional tool (diffoscope, a registry, a validator) is present before it
/// offers or runs it.
pub fn which(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Removes dynamic-loader interposers from `cmd`'s environment: `LD_PRELOAD`, `LD_AUDIT`
/// and libfaketime's `FAKETIME*` settings.
///
/// kiln is itself run under such tools on purpose (`repro` varies the clock with
/// libfaketime), and they must not reach the toolchain: libfaketime deadlocks rustc
/// (jemalloc, wolfcw/libfaketime#130), and any preload could change what the compiler
/// produces. The build proper already starts from an empty environment; this covers the
/// queries and the fetch that run before it.
pub fn without_interposers(cmd: &mut Command) -> &mut Command {
    cmd.env_remove("LD_PRELOAD").env_remove("LD_AUDIT");
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("FAKETIME") {
            cmd.env_remove(&key);
        }
    }
    cmd
}

#[cfg(test)]
mod tests {
    #[test]
    fn interposers_are_removed_and_the_rest_kept() {
        // SAFETY: this test is the only one in this crate that touches these variables.
        unsafe {
            std::env::set_var("LD_PRELOAD", "/nonexistent/libfaketime.so.1");
            std::env::set_var("FAKETIME", "+3y");
            std::env::set_var("FAKETIME_DONT_RESET", "1");
            std::env::set_var("KILN_KEEP_ME", "kept");
        }
        let mut cmd = super::command("/usr/bin/env");
        let out = String::from_utf8(cmd.output().unwrap().stdout).unwrap();
        assert!(
            !out.contains("LD_PRELOAD") && !out.contains("FAKETIME"),
            "{out}"
        );
        assert!(out.contains("KILN_KEEP_ME=kept"), "{out}");
    }
}
