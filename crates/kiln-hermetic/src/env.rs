use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Sandbox, SourceDateEpoch, VerifiedSources};

/// The directory a build owns: its HOME, CARGO_HOME, TMPDIR and cargo target dir all live
/// here, at fixed relative places, so nothing from the invoking user's home leaks in.
#[derive(Debug, Clone)]
pub struct BuildRoot {
    path: PathBuf,
}

impl BuildRoot {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        BuildRoot { path: path.into() }
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn home(&self) -> PathBuf {
        self.path.join("home")
    }
    /// The kiln-owned cargo home that `fetch` fills and the build reads offline.
    pub fn cargo_home(&self) -> PathBuf {
        self.path.join("cargo-home")
    }
    /// Every locked registry crate, unpacked from its verified archive
    /// ([`crate::unpack_verified`]: afresh, unless its stamp shows the crate untouched since
    /// it was): the only crate sources cargo compiles, and the ones the SBOM reads
    /// manifests from.
    pub fn verified_sources(&self) -> PathBuf {
        self.path.join("verified-src")
    }
    pub fn tmp(&self) -> PathBuf {
        self.path.join("tmp")
    }
    pub fn target_dir(&self) -> PathBuf {
        self.path.join("target")
    }
    /// Creates the directories (the cargo home is left to `fetch`).
    pub fn create(&self) -> std::io::Result<()> {
        for d in [
            self.home(),
            self.tmp(),
            self.target_dir(),
            self.cargo_home(),
        ] {
            std::fs::create_dir_all(d)?;
        }
        Ok(())
    }
}

/// A scrubbed, fixed environment for build commands.
///
/// Commands start from an empty environment; only the variables listed by [`Hermetic::env`]
/// are set. That list is the allowlist recorded in the build outputs.
#[derive(Debug, Clone)]
pub struct Hermetic {
    pub root: BuildRoot,
    pub sandbox: Sandbox,
    pub sde: SourceDateEpoch,
    vars: BTreeMap<String, String>,
    /// A shifted clock for the build's commands (`kiln repro`'s clock variation); set on
    /// the commands, not part of the recorded allowlist.
    clock: Option<crate::ClockShift>,
}

/// Where the build root and the project appear in compiled artifacts, whatever their real
/// location (`--remap-path-prefix`).
pub const REMAPPED_ROOT: &str = "/kiln";
pub const REMAPPED_SOURCE: &str = "/kiln/src";

impl Hermetic {
    /// `tool_dirs` are prepended to a minimal PATH (the C compiler's directory, which
    /// rustc needs to find the linker driver).
    pub fn new(
        root: BuildRoot,
        sandbox: Sandbox,
        sde: SourceDateEpoch,
        tool_dirs: &[&Path],
    ) -> Self {
        let mut path: Vec<String> = Vec::new();
        for d in tool_dirs
            .iter()
            .map(|d| d.display().to_string())
            .chain(["/usr/bin".into(), "/bin".into()])
        {
            if !path.contains(&d) {
                path.push(d);
            }
        }
        let mut vars = BTreeMap::new();
        let s = |p: PathBuf| p.display().to_string();
        vars.insert("PATH".into(), path.join(":"));
        vars.insert("HOME".into(), s(root.home()));
        vars.insert("CARGO_HOME".into(), s(root.cargo_home()));
        vars.insert("TMPDIR".into(), s(root.tmp()));
        vars.insert("CARGO_TARGET_DIR".into(), s(root.target_dir()));
        vars.insert("TZ".into(), "UTC".into());
        vars.insert("LC_ALL".into(), "C.UTF-8".into());
        vars.insert("LANG".into(), "C.UTF-8".into());
        vars.insert("SOURCE_DATE_EPOCH".into(), sde.value.to_string());
        vars.insert("CARGO_INCREMENTAL".into(), "0".into());
        vars.insert("CARGO_TERM_COLOR".into(), "never".into());
        vars.insert("CARGO_NET_OFFLINE".into(), "true".into());
        Hermetic {
            root,
            sandbox,
            sde,
            vars,
            clock: None,
        }
    }

    /// Sets (or overrides) a variable; it becomes part of the recorded allowlist.
    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        self.vars.insert(key.to_string(), value.into());
    }

    /// Runs the build's commands under `shift` (see [`crate::ClockShift`]).
    pub fn shift_clock(&mut self, shift: crate::ClockShift) {
        self.clock = Some(shift);
    }

    /// The clock shift applied to the build's commands, if any.
    pub fn clock(&self) -> Option<&crate::ClockShift> {
        self.clock.as_ref()
    }

    /// The complete environment of build commands, sorted (a clock shift aside).
    pub fn env(&self) -> &BTreeMap<String, String> {
        &self.vars
    }

    /// The rustc flags that keep host paths out of binaries. rustc applies the last
    /// matching prefix, so the more specific build root comes after the project, and the
    /// verified sources (inside the build root) last: they appear where cargo would have
    /// unpacked the crates in the build root's cargo home.
    pub fn remap_flags(&self, project: &Path, verified: Option<&VerifiedSources>) -> Vec<String> {
        let mut flags = vec![
            format!(
                "--remap-path-prefix={}={REMAPPED_SOURCE}",
                project.display()
            ),
            format!(
                "--remap-path-prefix={}={REMAPPED_ROOT}",
                self.root.path().display()
            ),
        ];
        if let Some(v) = verified {
            flags.push(format!(
                "--remap-path-prefix={}={REMAPPED_ROOT}/{}",
                v.dir.display(),
                v.remapped()
            ));
        }
        flags
    }

    /// A command that runs `program` with exactly this environment, inside the sandbox.
    pub fn command(&self, program: &Path) -> Command {
        let mut cmd = kiln_core::process::command(program);
        cmd.env_clear()
            .envs(&self.vars)
            .current_dir(self.root.path());
        if let Some(c) = &self.clock {
            c.apply(&mut cmd);
        }
        self.sandbox.apply(&mut cmd);
        cmd
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SdeSource;

    #[test]
    fn environment_is_scrubbed_and_fixed() {
        let d = tempfile::tempdir().unwrap();
        let root = BuildRoot::new(d.path());
        root.create().unwrap();
        let sde = SourceDateEpoch {
            value: 99,
            source: SdeSource::Config,
        };
        let h = Hermetic::new(root, Sandbox::None, sde, &[]);
        // SAFETY: tests in this module do not read the variable concurrently.
        unsafe { std::env::set_var("KILN_LEAK_PROBE", "leaked") };
        let out = h.command(Path::new("/usr/bin/env")).output().unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(!text.contains("KILN_LEAK_PROBE"), "{text}");
        let mut lines: Vec<&str> = text.lines().collect();
        lines.sort();
        let expected: Vec<String> = h.env().iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(lines, expected);
        assert!(text.contains("SOURCE_DATE_EPOCH=99") && text.contains("TZ=UTC"));
        assert!(text.contains(&format!("HOME={}/home", d.path().display())));
    }
}
