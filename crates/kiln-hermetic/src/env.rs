use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{RootedSandbox, Sandbox, SourceDateEpoch, VerifiedSources};

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
    /// When set, commands run inside this toolchain root instead of `sandbox` (which
    /// it supersedes: it cuts the network too).
    rooted: Option<RootedSandbox>,
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
            rooted: None,
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

    /// Runs the build's commands inside `rooted` (a toolchain root) instead of
    /// [`Hermetic::sandbox`]. The variables name host paths (HOME, CARGO_HOME, TMPDIR, the
    /// target dir under the build root; the tool dirs on PATH): bind the build root at its
    /// own path and give in-root tool paths, so they mean the same inside. Check the
    /// sandbox first ([`RootedSandbox::check`]): a command that cannot enter it fails to
    /// spawn.
    pub fn enter_root(&mut self, rooted: RootedSandbox) {
        self.rooted = Some(rooted);
    }

    /// The isolation build commands run under, as the outputs record it: the rooted
    /// sandbox (`root:<path>`) when there is one, else [`Hermetic::sandbox`].
    pub fn isolation(&self) -> String {
        match &self.rooted {
            Some(r) => r.to_string(),
            None => self.sandbox.to_string(),
        }
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

    /// A command that runs `program` with exactly this environment, inside the sandbox
    /// (the rooted one, if [`Hermetic::enter_root`] set it: then `program` is an in-root path).
    pub fn command(&self, program: &Path) -> Command {
        let mut cmd = kiln_core::process::command(program);
        cmd.env_clear()
            .envs(&self.vars)
            .current_dir(self.root.path());
        if let Some(c) = &self.clock {
            c.apply(&mut cmd);
        }
        match &self.rooted {
            Some(r) => r.apply(&mut cmd),
            None => self.sandbox.apply(&mut cmd),
        }
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

    /// With a toolchain root entered, commands keep exactly the allowlist and run inside
    /// the root, where the build root is bound at its own path so the variables hold.
    #[test]
    fn commands_run_inside_an_entered_root() {
        let d = tempfile::tempdir().unwrap();
        let build = d.path().join("build");
        let toolroot = d.path().join("toolroot");
        std::fs::create_dir_all(toolroot.join("usr")).unwrap();
        for (link, target) in [
            ("bin", "usr/bin"),
            ("lib", "usr/lib"),
            ("lib64", "usr/lib64"),
        ] {
            std::os::unix::fs::symlink(target, toolroot.join(link)).unwrap();
        }
        let root = BuildRoot::new(&build);
        root.create().unwrap();
        let build = build.canonicalize().unwrap();
        let toolroot = toolroot.canonicalize().unwrap();
        let rooted = crate::RootedSandbox::new(
            &toolroot,
            vec![
                crate::Bind::read_only("/usr", "/usr"),
                crate::Bind::writable(&build, &build),
            ],
            &build,
        )
        .unwrap();
        rooted.check().unwrap();
        let sde = SourceDateEpoch {
            value: 7,
            source: SdeSource::Config,
        };
        let mut h = Hermetic::new(BuildRoot::new(&build), Sandbox::Netns, sde, &[]);
        assert_eq!(h.isolation(), "netns");
        h.enter_root(rooted);
        assert_eq!(h.isolation(), format!("root:{}", toolroot.display()));

        let out = h.command(Path::new("/usr/bin/env")).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        lines.sort();
        let expected: Vec<String> = h.env().iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(lines, expected);

        let mut cmd = h.command(Path::new("/bin/sh"));
        cmd.args([
            "-c",
            "test -d \"$HOME\" && touch \"$TMPDIR/t\" && test ! -e /work && pwd && umask",
        ]);
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            format!("{}\n0022\n", build.display())
        );
        assert!(build.join("tmp/t").exists());
    }
}
