//! The `kiln` command: what a user of kiln runs (`cargo install --path crates/kiln-cli`).
//! It parses arguments, calls the kiln crates and prints; no build logic lives here.
//!
//! This repository's `cargo xtask` embeds the same [`Command`]s (so `cargo xtask build`
//! works) next to developer tasks (test, bench, corpus, fuzz, tidy) that the product never
//! ships: nothing here installs packages, runs benchmarks or knows where kiln's own source is.

// Doc comments on the clap types are `--help` text, printed verbatim: `<image>` there is a
// placeholder a user reads, not an HTML tag (escaping it would show in `--help`).
#![allow(rustdoc::invalid_html_tags)]

mod cmd_attest;
mod cmd_controls;
mod cmd_evidence;
mod cmd_publish;
mod cmd_rebuild;
mod cmd_repro;
mod cmd_sbom;
mod cmd_vex;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use kiln_build::{BuildOptions, Progress, Summary};
use kiln_core::contract::ProjectLayout;
use kiln_hermetic::Sandbox;

#[derive(Parser)]
#[command(
    name = "kiln",
    version,
    about = "Hermetic, reproducible builds with evidence a verifier can check"
)]
struct Cli {
    /// Run as if started in DIR (the project holding kiln.toml).
    #[arg(short = 'C', global = true, value_name = "DIR")]
    dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

/// kiln's user commands. `cargo xtask` flattens this enum into its own, so every command
/// here is also `cargo xtask <command>` in this repository.
#[derive(Subcommand)]
pub enum Command {
    /// Build the images in kiln.toml: verify the toolchain, fetch if needed, compile offline
    /// in a sandbox, pack deterministic OCI images into target/kiln/out/<image>/.
    Build(BuildArgs),
    /// Fill kiln's cargo home from Cargo.lock, and obtain the provided toolchain root if
    /// kiln.toml names one (the only step that uses the network).
    Fetch {
        /// Only this image's project (repeatable).
        #[arg(long = "image")]
        images: Vec<String>,
        /// The build root whose cargo home to fill (default target/kiln/root), as `build
        /// --root`.
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
        /// Build inside this provided toolchain root (toolchains/NAME.lock.json), whatever
        /// kiln.toml's `toolchain_root` says.
        #[arg(long, value_name = "NAME")]
        toolchain_root: Option<String>,
    },
    /// Manage the pinned toolchain in toolchains/.
    Toolchain {
        #[command(subcommand)]
        command: ToolchainCommand,
    },
    /// Regenerate the SBOMs of an already-built image.
    Sbom(cmd_sbom::Args),
    /// Write an ECDSA P-256 signing key pair (PKCS#8 PEM).
    Keygen(cmd_attest::KeygenArgs),
    /// Verify an image's signatures, subjects and attestations against a policy.
    Verify(cmd_attest::VerifyArgs),
    /// Match findings (SARIF, OSV) to the SBOM, apply the VEX, fail on unresolved severe ones.
    Gate(cmd_vex::GateArgs),
    /// Rebuild twice under varied conditions, diff every artifact, report the ratio.
    Repro(cmd_repro::Args),
    /// Rebuild a release from its provenance alone and compare every subject digest.
    Rebuild(cmd_rebuild::Args),
    /// Push a built image and all its evidence to an OCI registry (cosign-compatible).
    Push(cmd_publish::PushArgs),
    /// Pull an image and its evidence from a registry into an output directory.
    Pull(cmd_publish::PullArgs),
    /// Compliance evidence of a built image: pack it, audit past packs.
    Evidence {
        #[command(subcommand)]
        command: cmd_evidence::EvidenceCommand,
    },
    /// Compliance controls: judge an evidence pack with a catalog, sign and attach the verdict.
    Controls {
        #[command(subcommand)]
        command: cmd_controls::ControlsCommand,
    },
    /// The attested build cache.
    Cache {
        #[command(subcommand)]
        command: CacheCommand,
    },
}

#[derive(Subcommand)]
pub enum CacheCommand {
    /// Rebuild without the cache and compare the binaries with the cache entry of the same
    /// key: proves the cache changes nothing (exit 1 if it would).
    Check {
        /// Only this image (repeatable); default all.
        #[arg(long = "image")]
        images: Vec<String>,
        /// The key whose public half is trusted for entries; default $KILN_SIGNING_KEY.
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
        /// The cache store.
        #[arg(long, value_name = "DIR")]
        cache_dir: Option<PathBuf>,
        #[command(flatten)]
        cache_registry: CacheRegistryArgs,
        /// Build inside this provided toolchain root (toolchains/NAME.lock.json), whatever
        /// kiln.toml's `toolchain_root` says.
        #[arg(long, value_name = "NAME")]
        toolchain_root: Option<String>,
    },
}

#[derive(clap::Args)]
pub struct BuildArgs {
    /// Only this image (repeatable); default all.
    #[arg(long = "image")]
    images: Vec<String>,
    /// `netns` (default): no network during the build. `none`: no isolation, recorded.
    #[arg(long, default_value = "netns")]
    sandbox: Sandbox,
    /// Never fetch; fail naming any crate missing from kiln's cargo home.
    #[arg(long)]
    offline: bool,
    /// Print the build summaries as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Output directory (default: <project>/target/kiln/out).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Build root for HOME, CARGO_HOME, TMPDIR and cargo's target dir (default:
    /// <project>/target/kiln/root).
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// CycloneDX version of sbom.cdx.json: 1.6 (default) or 1.5.
    #[arg(long, value_name = "VERSION")]
    sbom_spec: Option<String>,
    /// Signing key (PKCS#8 PEM, mode 0600); else $KILN_SIGNING_KEY.
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    /// Sign keyless with Sigstore (Fulcio + Rekor) using the GitHub Actions OIDC token.
    #[arg(long)]
    keyless: bool,
    /// Add startedOn/finishedOn wall-clock times to the provenance.
    #[arg(long)]
    timestamps: bool,
    /// After a successful build, push the image and its evidence here, as `kiln push REF`
    /// does (one image only; the signing key, if any, also signs cosign's `.sig`).
    #[arg(long, value_name = "REF")]
    push: Option<String>,
    /// With --push: plain HTTP, for a registry on this machine only.
    #[arg(long, requires = "push")]
    insecure_http: bool,
    /// Shift the wall clock of cargo, rustc, build scripts and proc-macros by this
    /// libfaketime FAKETIME value (e.g. `+94694400`); `repro` uses it. Not recorded.
    #[arg(long, value_name = "FAKETIME", hide = true)]
    faketime: Option<String>,
    /// Use the attested build cache (a verified entry replaces the compile; a fresh
    /// compile is stored, signed with --key); kiln.toml's `[cache] enabled` does the same.
    #[arg(long, conflicts_with = "no_cache")]
    cache: bool,
    /// Do not use the build cache, whatever kiln.toml says.
    #[arg(long)]
    no_cache: bool,
    /// The cache store (default: [cache] dir, else $KILN_CACHE_DIR, else ~/.cache/kiln).
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    #[command(flatten)]
    cache_registry: CacheRegistryArgs,
    /// Build inside this provided toolchain root (toolchains/NAME.lock.json), whatever
    /// kiln.toml's `toolchain_root` says.
    #[arg(long, value_name = "NAME")]
    toolchain_root: Option<String>,
}

/// The cache's registry tier.
#[derive(clap::Args)]
pub struct CacheRegistryArgs {
    /// Share the cache through this OCI registry, REGISTRY/REPOSITORY (no tag): a local
    /// miss pulls the entry tagged kiln-cache-<key hex> (used only if it verifies), a fresh
    /// entry is pushed there; unreachable is a warning. Default: [cache] registry.
    #[arg(long, value_name = "REF")]
    cache_registry: Option<String>,
    /// Plain HTTP to the cache registry: only for a registry on this machine.
    #[arg(long)]
    cache_insecure_http: bool,
}

#[derive(Subcommand)]
pub enum ToolchainCommand {
    /// Pin the host toolchain: write toolchains/<target>.lock.json.
    Lock,
    /// Pin a toolchain root kiln provides (Rust dist tarballs + Debian bookworm's C
    /// toolchain, every input by sha256): write toolchains/<NAME>.lock.json. Uses the
    /// network; set `[project] toolchain_root = "NAME"` in kiln.toml, then `pack` it.
    Pin {
        /// The Rust release to pin (default: the rustc the project builds with now).
        #[arg(long, value_name = "VERSION")]
        rust: Option<String>,
        /// The root's name (default: bookworm-rust-<VERSION>).
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
    },
    /// Fetch a pinned root's inputs, pack the root deterministically, install it in the
    /// store and record its digests and its tools' versions in the lock (a lock that
    /// already names a root must be reproduced exactly).
    Pack {
        /// The lock (default: the one `[project] toolchain_root` names).
        #[arg(long, value_name = "FILE")]
        lock: Option<PathBuf>,
        /// Use no network: every input must be in the download cache or --inputs.
        #[arg(long)]
        offline: bool,
        /// A directory holding input files by name (`.deb`s, Rust `.tar.xz`s), searched
        /// before the network. Repeatable.
        #[arg(long, value_name = "DIR")]
        inputs: Vec<PathBuf>,
        /// Push the packed root to this `registry/repository` (tagged with its name), for
        /// `fetch` elsewhere to pull by digest (`$KILN_TOOLROOT_REGISTRY`).
        #[arg(long, value_name = "REPOSITORY")]
        push: Option<String>,
        /// With --push: plain HTTP, for a registry on this machine only.
        #[arg(long, requires = "push")]
        insecure_http: bool,
    },
}

struct Stderr;

impl Progress for Stderr {
    fn step(&self, image: &str, what: &str) {
        if image == "*" {
            eprintln!("kiln: {what}");
        } else {
            eprintln!("kiln: [{image}] {what}");
        }
    }
}

/// Entry point of the `kiln` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    execute(cli.dir, cli.command)
}

/// Runs one user command as if started in `dir` (`-C`), printing errors: what both the
/// `kiln` binary and `cargo xtask <command>` do.
pub fn execute(dir: Option<PathBuf>, command: Command) -> ExitCode {
    set_program(dir.as_deref());
    report(run(dir, command))
}

/// Tells kiln's messages how to spell a suggested command: `cargo xtask ...` only where
/// that works (this repository, through the `xtask` binary), `kiln ...` everywhere else.
pub fn set_program(dir: Option<&Path>) {
    let binary = std::env::args_os()
        .next()
        .and_then(|a| {
            Path::new(&a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    if let Ok(project) = project_dir(dir.map(Path::to_path_buf)) {
        kiln_core::cli::set_program(kiln_core::cli::program_for(&binary, &project));
    }
}

/// The process exit code for a command's result, printing the error (with its causes) on
/// stderr.
pub fn report(result: Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", render_error(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, joined by ": " as anyhow's `{:#}` does (kiln's errors never
/// repeat their source in their own message), then each distinct fix a cause gives
/// ([`kiln_core::Hint`]) on its own indented `fix:` line, as uv prints `hint:`.
pub(crate) fn render_error(e: &anyhow::Error) -> String {
    let mut out = e
        .chain()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ");
    let mut fixes: Vec<String> = Vec::new();
    for fix in e.chain().filter_map(hint) {
        if !fixes.contains(&fix) {
            out.push_str("\n  fix: ");
            out.push_str(&fix);
            fixes.push(fix);
        }
    }
    out
}

/// The fix `cause` gives, if it is one of kiln's errors that keeps its fix apart from its
/// message. (A wrapper delegates to what it wraps, so the same fix may come twice.)
fn hint(cause: &(dyn std::error::Error + 'static)) -> Option<String> {
    use kiln_core::Hint;
    macro_rules! hint_of {
        ($($t:ty),* $(,)?) => {
            $(if let Some(e) = cause.downcast_ref::<$t>() {
                return e.hint();
            })*
        };
    }
    hint_of!(
        kiln_build::BuildError,
        kiln_config::ConfigError,
        kiln_core::contract::SummaryError,
        kiln_core::contract::CargoLockError,
        kiln_hermetic::FetchError,
        kiln_hermetic::SandboxError,
        kiln_hermetic::SdeError,
        kiln_hermetic::ClockShiftError,
        kiln_vex::VexError,
        kiln_repro::Error,
        kiln_build::publish::PublishError,
        kiln_registry::Error,
        kiln_compliance::PackError,
    );
    None
}

/// The project directory: `-C DIR`, else the nearest ancestor of the working directory
/// that has a kiln.toml.
pub fn project_dir(dir: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(d) = dir {
        return Ok(d);
    }
    let cwd = std::env::current_dir().context("cannot read the working directory")?;
    Ok(cwd
        .ancestors()
        .find(|d| d.join(kiln_config::FILE_NAME).is_file())
        .unwrap_or(&cwd)
        .to_path_buf())
}

fn run(dir: Option<PathBuf>, command: Command) -> Result<ExitCode> {
    match command {
        Command::Build(args) => {
            let mut opts = BuildOptions::new(project_dir(dir)?);
            opts.images = args.images;
            opts.sandbox = args.sandbox;
            opts.offline = args.offline;
            opts.sde_env = std::env::var("SOURCE_DATE_EPOCH").ok();
            opts.out_dir = args.out;
            opts.root_dir = args.root;
            opts.clock_shift = args.faketime;
            opts.evidence = kiln_build::EvidenceOptions {
                sbom_spec: args.sbom_spec,
                signing_key: args.key,
                keyless: args.keyless,
                timestamps: args.timestamps,
            };
            opts.cache = match (args.cache, args.no_cache) {
                (true, _) => Some(true),
                (_, true) => Some(false),
                _ => None,
            };
            opts.cache_dir = args.cache_dir;
            opts.cache_registry = args.cache_registry.cache_registry;
            opts.cache_insecure_http = args.cache_registry.cache_insecure_http;
            opts.toolchain_root = args.toolchain_root;
            if args.push.is_some() && opts.images.len() != 1 {
                let config = kiln_config::Config::load(&opts.project)?;
                if config.images.len() != 1 {
                    anyhow::bail!(
                        "--push sends one image, and kiln.toml has {}: choose it with --image NAME",
                        config.images.len()
                    );
                }
            }
            let summaries = kiln_build::build(&opts, &Stderr)?;
            if let Some(target) = &args.push {
                let push = kiln_build::publish::PushOptions {
                    project: opts.project.clone(),
                    image: Some(summaries[0].image.clone()),
                    out_dir: opts.out_dir.clone(),
                    target: target.clone(),
                    registry: kiln_build::publish::RegistryOptions {
                        insecure_http: args.insecure_http,
                        chunk_size: None,
                        parallel: None,
                        timeout: None,
                    },
                    signing_key: opts.evidence.signing_key.clone(),
                    mount_from: Vec::new(),
                };
                let report = kiln_build::publish::push(&push, &Stderr)?;
                eprintln!("kiln: pushed {}", report.reference);
            }
            if args.json {
                let v = if summaries.len() == 1 {
                    serde_json::to_value(&summaries[0])?
                } else {
                    serde_json::to_value(&summaries)?
                };
                println!(
                    "{}",
                    String::from_utf8(kiln_core::canonical::to_vec_pretty(&v)?)?.trim_end()
                );
            } else {
                print_table(&opts, &summaries);
            }
        }
        Command::Fetch {
            images,
            root,
            toolchain_root,
        } => {
            let mut opts = BuildOptions::new(project_dir(dir)?);
            opts.images = images;
            opts.root_dir = root;
            opts.toolchain_root = toolchain_root;
            kiln_build::fetch(&opts, &Stderr)?;
            eprintln!("kiln: every locked crate is in kiln's cargo home, checksums verified");
        }
        Command::Toolchain {
            command: ToolchainCommand::Pin { rust, name },
        } => {
            let (path, lock) =
                kiln_build::provided::pin(&project_dir(dir)?, name.as_deref(), rust.as_deref())?;
            println!(
                "wrote {} (rust {}, {} Debian packages from {} {}; pack it with `kiln toolchain pack`)",
                path.display(),
                lock.rust.version,
                lock.debian.packages.len(),
                lock.debian.mirror,
                lock.debian.suite
            );
        }
        Command::Toolchain {
            command:
                ToolchainCommand::Pack {
                    lock,
                    offline,
                    inputs,
                    push,
                    insecure_http,
                },
        } => {
            let project = project_dir(dir)?;
            let lock_file = match lock {
                Some(l) => l,
                None => kiln_build::provided::configured_lock(&project)?,
            };
            let places = kiln_build::provided::RootPlaces::from_env()?;
            let push = push.map(|repository| kiln_build::provided::RootRegistry {
                repository,
                insecure_http,
            });
            let p =
                kiln_build::provided::pack(&lock_file, &places, offline, &inputs, push.as_ref())?;
            if let Some(r) = &push {
                eprintln!(
                    "kiln: toolchain root pushed to {}:{} ({})",
                    r.repository,
                    p.lock.name.replace('+', "_"),
                    p.root.digests.manifest
                );
            }
            let d = p.root.digests;
            println!(
                "toolchain root {}: manifest {}, tree {} (rustc {}, {} inputs downloaded)\n  installed at {}\n  recorded in {}",
                p.lock.name,
                d.manifest,
                d.tree,
                p.lock
                    .toolchain
                    .as_ref()
                    .map(|t| t.rustc.version.as_str())
                    .unwrap_or("?"),
                p.downloaded,
                p.root.path.display(),
                p.lock_file.display()
            );
        }
        Command::Toolchain {
            command: ToolchainCommand::Lock,
        } => {
            let (path, lock) = kiln_build::lock_toolchain(&project_dir(dir)?)?;
            println!(
                "wrote {} ({} files pinned, {})",
                path.display(),
                lock.files.len(),
                lock.digest()
            );
        }
        Command::Sbom(args) => return cmd_sbom::run(project_dir(dir)?, &args),
        Command::Keygen(args) => return cmd_attest::keygen(&args),
        Command::Verify(args) => return cmd_attest::verify(project_dir(dir)?, &args),
        Command::Gate(args) => return cmd_vex::gate(project_dir(dir)?, &args),
        Command::Repro(args) => return cmd_repro::run(project_dir(dir)?, &args),
        Command::Rebuild(args) => return cmd_rebuild::run(&args),
        Command::Push(args) => return cmd_publish::push(project_dir(dir)?, &args),
        Command::Pull(args) => return cmd_publish::pull(&args),
        Command::Evidence { command } => return cmd_evidence::run(project_dir(dir)?, &command),
        Command::Controls { command } => return cmd_controls::run(project_dir(dir)?, &command),
        Command::Cache {
            command:
                CacheCommand::Check {
                    images,
                    key,
                    cache_dir,
                    cache_registry,
                    toolchain_root,
                },
        } => {
            let mut opts = BuildOptions::new(project_dir(dir)?);
            opts.images = images;
            opts.toolchain_root = toolchain_root;
            opts.cache_check = true;
            opts.cache_dir = cache_dir;
            opts.cache_registry = cache_registry.cache_registry;
            opts.cache_insecure_http = cache_registry.cache_insecure_http;
            opts.evidence.signing_key = key;
            kiln_build::build(&opts, &Stderr)?;
            eprintln!("kiln: every cache entry checked is what a build without the cache gives");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_table(opts: &BuildOptions, summaries: &[Summary]) {
    let out = opts
        .out_dir
        .clone()
        .unwrap_or_else(|| ProjectLayout::new(&opts.project).out_dir());
    for s in summaries {
        println!("image {}  {}", s.image, s.digest);
        println!(
            "  sandbox {}, SOURCE_DATE_EPOCH {} ({}), toolchain {} {}",
            s.sandbox,
            s.source_date_epoch.value,
            s.source_date_epoch.source,
            s.toolchain.rustc,
            s.toolchain.lock_digest
        );
        for b in &s.binaries {
            println!("  binary {:<28} {:>10} bytes  {}", b.path, b.size, b.sha256);
        }
        for a in s
            .artifacts
            .iter()
            .filter(|a| !a.path.starts_with("oci/blobs/"))
        {
            println!("  {:<35} {:>10} bytes  {}", a.path, a.size, a.sha256);
        }
        println!("  outputs in {}", display_rel(&out.join(&s.image)));
    }
}

fn display_rel(p: &Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|c| p.strip_prefix(c).ok().map(|r| r.display().to_string()))
        .unwrap_or_else(|| p.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The product ships user commands only: no package installer, benchmark, corpus or
    /// fuzz driver (those are `cargo xtask` tasks of kiln's own repository).
    #[test]
    fn kiln_help_lists_only_user_commands() {
        use clap::CommandFactory;
        let cli = Cli::command();
        let mut names: Vec<&str> = cli
            .get_subcommands()
            .filter(|c| !c.is_hide_set())
            .map(|c| c.get_name())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "build",
                "cache",
                "controls",
                "evidence",
                "fetch",
                "gate",
                "keygen",
                "pull",
                "push",
                "rebuild",
                "repro",
                "sbom",
                "toolchain",
                "verify"
            ]
        );
        let help = Cli::command().render_long_help().to_string();
        for dev in ["test", "bench", "corpus", "fuzz", "tidy"] {
            assert!(
                !help.lines().any(|l| l.trim_start().starts_with(dev)),
                "`kiln --help` offers the developer task `{dev}`:\n{help}"
            );
        }
    }

    #[derive(Debug, thiserror::Error)]
    #[error("{path}: cannot read")]
    struct Unreadable {
        path: String,
        source: std::io::Error,
    }

    #[test]
    fn the_chain_is_joined_and_a_source_printed_once() {
        let e = anyhow::Error::new(Unreadable {
            path: "/x/Cargo.lock".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        })
        .context("resolving `app`");
        assert_eq!(
            render_error(&e),
            format!(
                "resolving `app`: /x/Cargo.lock: cannot read: {}",
                std::io::Error::from(std::io::ErrorKind::NotFound)
            )
        );
        let e = anyhow::anyhow!("inner").context("outer");
        assert_eq!(render_error(&e), "outer: inner");
    }

    /// One `error:` chain naming the file and the field, then the fix on its own line,
    /// once, although both the build error and the config error it wraps give it.
    #[test]
    fn the_fix_follows_the_chain_on_its_own_line() {
        let d = std::env::temp_dir().join("kiln-cli-render-error-test-no-project");
        let config = kiln_config::Config::load(&d).unwrap_err();
        let build = kiln_build::BuildError::from(config);
        let e = anyhow::Error::new(build);
        let text = render_error(&e);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0].starts_with("cannot read ") && lines[0].contains("kiln.toml: "),
            "{text}"
        );
        // The I/O error is printed once, after the message, not inside it as well.
        assert_eq!(lines[0].matches("No such file").count(), 1, "{text}");
        assert_eq!(
            lines[1],
            "  fix: run kiln from a project that has a kiln.toml, or pass -C DIR"
        );
        // A wrapped error that is in the chain itself: its fix comes once.
        let e = anyhow::Error::new(kiln_build::BuildError::ClockShift(
            kiln_hermetic::ClockShiftError::NoLibfaketime,
        ));
        assert_eq!(
            render_error(&e),
            "--faketime: libfaketime is not installed\n  fix: install it (apt-get install faketime), or set $KILN_LIBFAKETIME to libfaketime.so.1"
        );
    }
}
