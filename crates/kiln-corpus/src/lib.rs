//! kiln on real-world projects: `cargo xtask corpus`.
//!
//! `testdata/corpus/corpus.toml` pins popular open-source Rust CLIs as crates.io packages
//! (name, exact version, sha256 of the `.crate`, which is the checksum a `Cargo.lock` would
//! record). For each one selected this crate
//!
//! 1. downloads the `.crate` from crates.io as kiln fetches a locked crate (the one
//!    explicit networked step, pinned by digest), verifies its sha256 against the pin as it
//!    arrives, and unpacks it
//!    (binary crates ship their `Cargo.lock`), optionally wrapped in a virtual workspace;
//! 2. writes a five-line `kiln.toml` and the repository's toolchain lock next to it;
//! 3. times a plain `cargo build --release --locked` and a `kiln build` (both cold, crates
//!    fetched beforehand), then runs `kiln repro` (default variations) and reads its report;
//! 4. writes one report, `report.json` and `report.md`: verdict and ratio per project, the
//!    causes repro named, and kiln's build overhead over the plain build.
//!
//! Like `kiln repro`, it drives the kiln CLI as a subprocess and judges from the outside.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use kiln_core::contract::layout;
use kiln_core::{Digest, canonical, fsx};
use serde::{Deserialize, Serialize};

/// Where the corpus is described, relative to the repository.
pub const CORPUS_FILE: &str = "testdata/corpus/corpus.toml";
/// The `SOURCE_DATE_EPOCH` every generated kiln.toml falls back to (the projects are
/// unpacked archives, with no git history to take one from).
pub const SOURCE_DATE_EPOCH: u64 = 1_700_000_000;

#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error(
        "{file}: sha256 {found} does not match the pin {pinned} for {krate} in {corpus}\n  fix: if the registry really serves other bytes, investigate before re-pinning"
    )]
    Checksum {
        file: PathBuf,
        krate: String,
        pinned: String,
        found: String,
        corpus: PathBuf,
    },
    #[error("`{command}` failed ({status}){detail}")]
    Failed {
        command: String,
        status: String,
        detail: String,
    },
    #[error("{what} {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

pub type Result<T, E = CorpusError> = std::result::Result<T, E>;

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> CorpusError + 'a {
    move |source| CorpusError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// `corpus.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Corpus {
    #[serde(rename = "project")]
    pub projects: Vec<Entry>,
    #[serde(skip)]
    pub path: PathBuf,
}

/// One pinned project.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// The crates.io package (and the image's name).
    pub name: String,
    /// The exact version.
    pub version: String,
    /// sha256 of the `.crate` archive, hex.
    pub sha256: String,
    /// Cargo features to build with.
    #[serde(default)]
    pub features: Vec<String>,
    /// Unpack the package as the only member of a virtual workspace (`<name>/` under a root
    /// `Cargo.toml` with `[workspace]`, its `Cargo.lock` at the root): published crates
    /// never ship their workspace, so this is how the corpus covers one.
    #[serde(default)]
    pub workspace: bool,
    /// What this project exercises (documentation, copied into the report).
    #[serde(default)]
    pub covers: Vec<String>,
}

impl Corpus {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(io("cannot read", path))?;
        let mut c: Corpus =
            kiln_core::strict_toml::from_str(&text).map_err(|e| CorpusError::Invalid {
                path: path.to_path_buf(),
                message: e.into_message(),
            })?;
        c.path = path.to_path_buf();
        c.validate()?;
        Ok(c)
    }

    fn validate(&self) -> Result<()> {
        let bad = |i: usize, field: &str, message: String| CorpusError::Invalid {
            path: self.path.clone(),
            message: format!("project[{i}].{field}: {message}"),
        };
        let mut seen = BTreeSet::new();
        for (i, e) in self.projects.iter().enumerate() {
            if e.name.is_empty()
                || !e
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_".contains(&b))
            {
                return Err(bad(i, "name", format!("`{}` is not a crate name", e.name)));
            }
            if !seen.insert(e.name.as_str()) {
                return Err(bad(i, "name", format!("`{}` is listed twice", e.name)));
            }
            if e.version.is_empty()
                || !e
                    .version
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-+".contains(&b))
            {
                return Err(bad(
                    i,
                    "version",
                    format!("`{}` is not a version", e.version),
                ));
            }
            if e.sha256.len() != 64 || !e.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad(
                    i,
                    "sha256",
                    "expected 64 hex digits (the .crate's checksum)".into(),
                ));
            }
        }
        Ok(())
    }

    /// The entries named in `only` (all when empty), in corpus order.
    pub fn select(&self, only: &[String]) -> Result<Vec<&Entry>> {
        for n in only {
            if !self.projects.iter().any(|e| &e.name == n) {
                let known: Vec<_> = self.projects.iter().map(|e| e.name.as_str()).collect();
                return Err(CorpusError::Invalid {
                    path: self.path.clone(),
                    message: format!("no project `{n}` (the corpus has: {})", known.join(", ")),
                });
            }
        }
        Ok(self
            .projects
            .iter()
            .filter(|e| only.is_empty() || only.contains(&e.name))
            .collect())
    }
}

impl Entry {
    /// The generated kiln.toml: five lines (six with features).
    pub fn kiln_toml(&self) -> String {
        self.kiln_toml_in(None)
    }

    /// The generated kiln.toml, building inside the provided toolchain root `root` (a
    /// `toolchain_root` line) when one is given.
    pub fn kiln_toml_in(&self, root: Option<&str>) -> String {
        let root = root
            .map(|r| format!("toolchain_root = \"{r}\"\n"))
            .unwrap_or_default();
        let mut s = format!(
            "[project]\nsource_date_epoch = {SOURCE_DATE_EPOCH}\n{root}[[image]]\nname = \"{}\"\npackage = \"{}\"\n",
            self.name, self.name
        );
        if self.workspace {
            s.push_str(&format!("manifest = \"{}/Cargo.toml\"\n", self.name));
        }
        if !self.features.is_empty() {
            let f: Vec<String> = self.features.iter().map(|f| format!("\"{f}\"")).collect();
            s.push_str(&format!("features = [{}]\n", f.join(", ")));
        }
        s
    }

    fn file_name(&self) -> String {
        format!("{}-{}.crate", self.name, self.version)
    }
}

/// How to run the tools.
#[derive(Debug, Clone)]
pub struct Tools {
    /// The kiln CLI.
    pub kiln: PathBuf,
    /// `cargo` (a rustup proxy is fine: `rustup_toolchain` selects the pinned toolchain).
    pub cargo: PathBuf,
    /// The rustup toolchain the toolchain lock pins, for the plain builds and the fetch.
    pub rustup_toolchain: Option<String>,
}

impl Tools {
    fn cargo(&self, cargo_home: &Path) -> Command {
        let mut c = kiln_core::process::command(&self.cargo);
        c.env("CARGO_HOME", cargo_home)
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS");
        if let Some(t) = &self.rustup_toolchain {
            c.env("RUSTUP_TOOLCHAIN", t)
                .env_remove("RUSTUP_TOOLCHAIN_SOURCE");
        }
        c
    }
}

/// Runs `cmd` with output to `log`; an error quotes the log's last lines.
fn run_logged(cmd: &mut Command, shown: &str, log: &Path) -> Result<f64> {
    let file = fsx::create_log(log).map_err(io("cannot create", log))?;
    let file2 = file.try_clone().map_err(io("cannot create", log))?;
    cmd.stdin(Stdio::null()).stdout(file).stderr(file2);
    let start = Instant::now();
    let status = cmd.status().map_err(|source| CorpusError::Io {
        what: "cannot run",
        path: PathBuf::from(shown),
        source,
    })?;
    let secs = start.elapsed().as_secs_f64();
    if !status.success() {
        return Err(CorpusError::Failed {
            command: shown.to_string(),
            status: status.to_string(),
            detail: tail(log),
        });
    }
    Ok(secs)
}

/// The last lines of a log, for an error message.
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(15);
    format!("; log {}:\n{}", log.display(), lines[from..].join("\n"))
}

/// Downloads `entry`'s `.crate` from crates.io (or `$KILN_CRATES_DL`), checked against
/// the pin as it arrives, into `work/crates/` (unless a verified copy is there already),
/// and returns the verified copy. One pinned download, as kiln fetches a locked crate:
/// no throwaway manifest, no registry index, none of the crate's dependencies (the
/// project's own `Cargo.lock` governs those, and `kiln fetch` obtains them).
pub fn obtain(entry: &Entry, corpus: &Path, work: &Path) -> Result<PathBuf> {
    let crates = work.join("crates");
    fsx::create_dir_all(&crates).map_err(io("cannot create", &crates))?;
    let kept = crates.join(entry.file_name());
    if kept.is_file() && verify(&kept, entry, corpus).is_ok() {
        return Ok(kept);
    }
    let checksum = entry.sha256.to_ascii_lowercase();
    let bytes = kiln_hermetic::CratesDl::from_env()
        .get_crate(&entry.name, &entry.version, &checksum)
        .map_err(|e| match e {
            // Named by where the bytes came from: nothing was written.
            kiln_hermetic::FetchError::DownloadChecksum { url, found, .. } => {
                CorpusError::Checksum {
                    file: PathBuf::from(url),
                    krate: format!("{}@{}", entry.name, entry.version),
                    pinned: entry.sha256.clone(),
                    found,
                    corpus: corpus.to_path_buf(),
                }
            }
            other => CorpusError::Invalid {
                path: corpus.to_path_buf(),
                message: format!("{}@{}: {other}", entry.name, entry.version),
            },
        })?;
    // `get_crate` checked these bytes against the pin; hashing the written file again
    // would only repeat it.
    fsx::write_atomic(&kept, &bytes).map_err(io("cannot write", &kept))?;
    Ok(kept)
}

fn verify(file: &Path, entry: &Entry, corpus: &Path) -> Result<()> {
    let found = Digest::of_file(file).map_err(io("cannot read", file))?;
    if !found.hex().eq_ignore_ascii_case(&entry.sha256) {
        return Err(CorpusError::Checksum {
            file: file.to_path_buf(),
            krate: format!("{}@{}", entry.name, entry.version),
            pinned: entry.sha256.clone(),
            found: found.hex().to_string(),
            corpus: corpus.to_path_buf(),
        });
    }
    Ok(())
}

/// Unpacks a `.crate` (a gzip tar whose entries sit under `<name>-<version>/`) into `dest`,
/// refusing entries outside that prefix.
pub fn unpack(crate_file: &Path, entry: &Entry, dest: &Path) -> Result<()> {
    let f = std::fs::File::open(crate_file).map_err(io("cannot read", crate_file))?;
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(f));
    let prefix = PathBuf::from(format!("{}-{}", entry.name, entry.version));
    let bad = |message: String| CorpusError::Invalid {
        path: crate_file.to_path_buf(),
        message,
    };
    fsx::create_dir_all(dest).map_err(io("cannot create", dest))?;
    for e in ar.entries().map_err(io("cannot read", crate_file))? {
        let mut e = e.map_err(io("cannot read", crate_file))?;
        let path = e
            .path()
            .map_err(io("cannot read", crate_file))?
            .into_owned();
        let rel = path
            .strip_prefix(&prefix)
            .map_err(|_| {
                bad(format!(
                    "entry {} is outside {}",
                    path.display(),
                    prefix.display()
                ))
            })?
            .to_path_buf();
        if rel
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            if rel.as_os_str().is_empty() {
                continue;
            }
            return Err(bad(format!("entry {} is not a plain path", path.display())));
        }
        let target = dest.join(&rel);
        match e.header().entry_type() {
            tar::EntryType::Directory => {
                fsx::create_dir_all(&target).map_err(io("cannot create", &target))?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                if let Some(p) = target.parent() {
                    fsx::create_dir_all(p).map_err(io("cannot create", p))?;
                }
                let mut bytes = Vec::new();
                e.read_to_end(&mut bytes)
                    .map_err(io("cannot read", crate_file))?;
                fsx::write_atomic(&target, &bytes).map_err(io("cannot write", &target))?;
                let exec = e.header().mode().map(|m| m & 0o111 != 0).unwrap_or(false);
                let mode = if exec { 0o755 } else { 0o644 };
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode))
                    .map_err(io("cannot write", &target))?;
            }
            // Packaged crates hold only files and directories.
            other => return Err(bad(format!("entry {} has type {other:?}", path.display()))),
        }
    }
    Ok(())
}

/// Lays the project out in `dir` (emptied first): the unpacked crate (or a virtual
/// workspace holding it), the generated kiln.toml and the toolchain lock (`lock_file`: the
/// host's, or the provided root `root`'s).
pub fn lay_out(
    entry: &Entry,
    crate_file: &Path,
    lock_file: &Path,
    root: Option<&str>,
    dir: &Path,
) -> Result<PathBuf> {
    let _ = std::fs::remove_dir_all(dir);
    fsx::create_dir_all(dir).map_err(io("cannot create", dir))?;
    if entry.workspace {
        let member = dir.join(&entry.name);
        unpack(crate_file, entry, &member)?;
        let lock = member.join(layout::CARGO_LOCK);
        std::fs::rename(&lock, dir.join(layout::CARGO_LOCK)).map_err(io("cannot move", &lock))?;
        let root = format!(
            "[workspace]\nmembers = [\"{}\"]\nresolver = \"2\"\n",
            entry.name
        );
        fsx::write_atomic(&dir.join("Cargo.toml"), root.as_bytes())
            .map_err(io("cannot write", dir))?;
        // A workspace's profiles come from its root.
        copy_profiles(&member.join("Cargo.toml"), &dir.join("Cargo.toml"))?;
    } else {
        unpack(crate_file, entry, dir)?;
    }
    fsx::write_atomic(
        &dir.join(layout::KILN_TOML),
        entry.kiln_toml_in(root).as_bytes(),
    )
    .map_err(io("cannot write", dir))?;
    let toolchains = dir.join(layout::TOOLCHAINS_DIR);
    fsx::create_dir_all(&toolchains).map_err(io("cannot create", &toolchains))?;
    let name = lock_file.file_name().unwrap_or_default();
    std::fs::copy(lock_file, toolchains.join(name)).map_err(io("cannot copy", lock_file))?;
    Ok(dir.to_path_buf())
}

/// Appends the member's `[profile.*]` tables to the workspace root (cargo ignores them in
/// a member, and the project's release settings must not change by being wrapped).
fn copy_profiles(member: &Path, root: &Path) -> Result<()> {
    let text = std::fs::read_to_string(member).map_err(io("cannot read", member))?;
    let value: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| CorpusError::Invalid {
            path: member.to_path_buf(),
            message: e.message().to_string(),
        })?;
    if let Some(p) = value.get("profile") {
        let mut t = toml::Table::new();
        t.insert("profile".into(), p.clone());
        let mut out = std::fs::read_to_string(root).map_err(io("cannot read", root))?;
        out.push('\n');
        out.push_str(&toml::to_string(&t).unwrap_or_default());
        fsx::write_atomic(root, out.as_bytes()).map_err(io("cannot write", root))?;
    }
    Ok(())
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub corpus: PathBuf,
    pub only: Vec<String>,
    /// Scratch space: verified `.crate` files, the corpus cargo home, the projects, the
    /// repro work. Keep it outside any git repository and Cargo workspace.
    pub work: PathBuf,
    /// Where report.json and report.md go.
    pub out: PathBuf,
    /// The toolchain lock copied into every project.
    pub lock_file: PathBuf,
    /// Build inside this provided toolchain root (`lock_file` is then its lock): the same
    /// toolchain bytes on any machine, `repro`'s clock variation included.
    pub toolchain_root: Option<String>,
    /// Also time a plain cargo build and a kiln build (the overhead figures).
    pub overhead: bool,
    /// Pass `--diffoscope` to repro.
    pub diffoscope: bool,
}

/// One project's row of the report.
#[derive(Debug, Clone, Serialize)]
pub struct ProjectReport {
    pub name: String,
    pub version: String,
    pub covers: Vec<String>,
    /// `reproducible`, `unreproducible` or `failed`.
    pub verdict: String,
    pub artifacts_identical: u64,
    pub artifacts_total: u64,
    pub targets_reproducible: u64,
    pub targets_total: u64,
    /// Causes repro named (`timestamp (exposed by clock)`), sorted.
    pub causes: Vec<String>,
    /// Why the project failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Seconds; absent when not measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plain_build_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kiln_build_seconds: Option<f64>,
    /// kiln build / plain build.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build_overhead: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repro_seconds: Option<f64>,
    /// The project directory and the repro report directory.
    pub project_dir: String,
    pub repro_dir: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema: String,
    pub projects: Vec<ProjectReport>,
    pub reproducible: usize,
    pub total: usize,
}

impl Report {
    /// Every project reproducible.
    pub fn passed(&self) -> bool {
        self.total > 0 && self.reproducible == self.total
    }

    pub fn markdown(&self) -> String {
        let mut s = format!(
            "# kiln corpus: {} of {} projects reproducible\n\n| project | verdict | artifacts | causes | plain build | kiln build | overhead |\n| --- | --- | --- | --- | --- | --- | --- |\n",
            self.reproducible, self.total
        );
        let secs = |v: Option<f64>| v.map(|v| format!("{v:.1} s")).unwrap_or_else(|| "-".into());
        for p in &self.projects {
            s.push_str(&format!(
                "| {} {} | {} | {}/{} | {} | {} | {} | {} |\n",
                p.name,
                p.version,
                p.verdict,
                p.artifacts_identical,
                p.artifacts_total,
                if p.causes.is_empty() {
                    "-".to_string()
                } else {
                    p.causes.join(", ")
                },
                secs(p.plain_build_seconds),
                secs(p.kiln_build_seconds),
                p.build_overhead
                    .map(|o| format!("{o:.3}x"))
                    .unwrap_or_else(|| "-".into()),
            ));
        }
        for p in self.projects.iter().filter(|p| p.error.is_some()) {
            s.push_str(&format!(
                "\n## {} failed\n\n```\n{}\n```\n",
                p.name,
                p.error.as_deref().unwrap_or("")
            ));
        }
        s
    }

    /// Writes `report.json` (canonical) and `report.md` into `out`.
    pub fn write(&self, out: &Path) -> Result<()> {
        fsx::create_dir_all(out).map_err(io("cannot create", out))?;
        let json = canonical::to_vec_pretty(self).expect("the corpus report serializes");
        let p = out.join(layout::repro::REPORT_JSON);
        fsx::write_atomic(&p, &json).map_err(io("cannot write", &p))?;
        let p = out.join(layout::repro::REPORT_MD);
        fsx::write_atomic(&p, self.markdown().as_bytes()).map_err(io("cannot write", &p))?;
        Ok(())
    }
}

/// Runs the selected projects one after another and returns the report (written by the
/// caller with [`Report::write`]). A project that fails is reported, not fatal.
pub fn run(opts: &Options, tools: &Tools, progress: &dyn Fn(&str)) -> Result<Report> {
    let corpus = Corpus::load(&opts.corpus)?;
    let entries = corpus.select(&opts.only)?;
    fsx::create_dir_all(&opts.work).map_err(io("cannot create", &opts.work))?;
    let work = opts
        .work
        .canonicalize()
        .map_err(io("cannot resolve", &opts.work))?;
    let mut projects = Vec::new();
    for entry in entries {
        progress(&format!("{} {}", entry.name, entry.version));
        projects.push(run_one(entry, opts, &work, tools, progress));
    }
    let reproducible = projects
        .iter()
        .filter(|p| p.verdict == "reproducible")
        .count();
    Ok(Report {
        schema: "https://kiln.dev/corpus/report/v1".into(),
        total: projects.len(),
        reproducible,
        projects,
    })
}

fn run_one(
    entry: &Entry,
    opts: &Options,
    work: &Path,
    tools: &Tools,
    progress: &dyn Fn(&str),
) -> ProjectReport {
    let dir = work.join("projects").join(&entry.name);
    let repro_dir = work.join("repro").join(&entry.name);
    let mut r = ProjectReport {
        name: entry.name.clone(),
        version: entry.version.clone(),
        covers: entry.covers.clone(),
        verdict: "failed".into(),
        artifacts_identical: 0,
        artifacts_total: 0,
        targets_reproducible: 0,
        targets_total: 0,
        causes: Vec::new(),
        error: None,
        plain_build_seconds: None,
        kiln_build_seconds: None,
        build_overhead: None,
        repro_seconds: None,
        project_dir: dir.display().to_string(),
        repro_dir: repro_dir.display().to_string(),
    };
    if let Err(e) = measure(entry, opts, work, tools, progress, &dir, &repro_dir, &mut r) {
        r.error = Some(e.to_string());
        r.verdict = "failed".into();
    }
    r
}

#[allow(clippy::too_many_arguments)]
fn measure(
    entry: &Entry,
    opts: &Options,
    work: &Path,
    tools: &Tools,
    progress: &dyn Fn(&str),
    dir: &Path,
    repro_dir: &Path,
    r: &mut ProjectReport,
) -> Result<()> {
    let crate_file = obtain(entry, &opts.corpus, work)?;
    lay_out(
        entry,
        &crate_file,
        &opts.lock_file,
        opts.toolchain_root.as_deref(),
        dir,
    )?;
    let logs = work.join("logs").join(&entry.name);
    let _ = std::fs::remove_dir_all(&logs);
    fsx::create_dir_all(&logs).map_err(io("cannot create", &logs))?;
    let kiln = |args: &[&str]| {
        let mut c = kiln_core::process::command(&tools.kiln);
        c.arg("-C").arg(dir).args(args);
        c
    };
    // The networked step for the project's own lock, untimed: kiln's cargo home.
    run_logged(
        &mut kiln(&["fetch"]),
        &format!("kiln -C {} fetch", dir.display()),
        &logs.join("fetch.log"),
    )?;
    if opts.overhead {
        let cargo_home = work.join("cargo-home");
        // The root manifest: the package's own, or the virtual workspace's.
        let manifest = dir.join("Cargo.toml");
        run_logged(
            tools
                .cargo(&cargo_home)
                .args(["fetch", "--locked", "--manifest-path"])
                .arg(&manifest),
            "cargo fetch --locked",
            &logs.join("plain-fetch.log"),
        )?;
        progress(&format!(
            "{}: plain cargo build --release --locked",
            entry.name
        ));
        let target = work.join("plain-target").join(&entry.name);
        let _ = std::fs::remove_dir_all(&target);
        let mut plain = tools.cargo(&cargo_home);
        plain
            .args(["build", "--release", "--locked", "--manifest-path"])
            .arg(&manifest)
            .args(["--package", &entry.name])
            .env("CARGO_TARGET_DIR", &target);
        if !entry.features.is_empty() {
            plain.args(["--features", &entry.features.join(",")]);
        }
        let plain_s = run_logged(
            &mut plain,
            "cargo build --release --locked",
            &logs.join("plain.log"),
        )?;
        let _ = std::fs::remove_dir_all(&target);
        progress(&format!("{}: kiln build", entry.name));
        let kiln_s = run_logged(
            &mut kiln(&["build", "--offline"]),
            &format!("kiln -C {} build --offline", dir.display()),
            &logs.join("build.log"),
        )?;
        r.plain_build_seconds = Some(round(plain_s));
        r.kiln_build_seconds = Some(round(kiln_s));
        r.build_overhead = Some(round(kiln_s / plain_s));
        // repro builds from the project's sources; the build's outputs are not its input.
        let _ = std::fs::remove_dir_all(dir.join("target"));
    }
    progress(&format!("{}: kiln repro", entry.name));
    let _ = std::fs::remove_dir_all(repro_dir);
    let out = repro_dir.display().to_string();
    let mut args = vec!["repro", "--json", "--out", out.as_str()];
    if opts.diffoscope {
        args.push("--diffoscope");
    }
    let mut repro = kiln(&args);
    let log = logs.join("repro.log");
    let file = fsx::create_log(&log).map_err(io("cannot create", &log))?;
    let start = Instant::now();
    let status = repro
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(file)
        .status()
        .map_err(io("cannot run", &tools.kiln))?;
    r.repro_seconds = Some(round(start.elapsed().as_secs_f64()));
    let report_path = repro_dir.join(layout::repro::REPORT_JSON);
    let report: serde_json::Value = match std::fs::read(&report_path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| CorpusError::Invalid {
            path: report_path.clone(),
            message: e.to_string(),
        })?,
        Err(_) => {
            return Err(CorpusError::Failed {
                command: format!("kiln -C {} repro", dir.display()),
                status: status.to_string(),
                detail: tail(&log),
            });
        }
    };
    read_repro(&report, r);
    if !status.success() && r.verdict == "reproducible" {
        r.verdict = "failed".into();
        r.error = Some(format!("kiln repro exited with {status}{}", tail(&log)));
    }
    Ok(())
}

fn round(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// Fills the verdict, ratios and causes from a repro `report.json`.
pub fn read_repro(report: &serde_json::Value, r: &mut ProjectReport) {
    let n = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
    let ratio = &report["ratio"];
    r.artifacts_identical = n(&ratio["artifacts"]["numerator"]);
    r.artifacts_total = n(&ratio["artifacts"]["denominator"]);
    r.targets_reproducible = n(&ratio["targets"]["numerator"]);
    r.targets_total = n(&ratio["targets"]["denominator"]);
    let mut causes = BTreeSet::new();
    let mut errors = Vec::new();
    let mut failed = false;
    for t in report["targets"].as_array().into_iter().flatten() {
        if t["status"] == "failed_to_build" {
            failed = true;
            for l in t["error"].as_array().into_iter().flatten() {
                errors.push(l.as_str().unwrap_or_default().to_string());
            }
        }
        for c in t["causes"].as_array().into_iter().flatten() {
            let name = c["cause"].as_str().unwrap_or("unknown");
            let by: Vec<&str> = c["exposed_by"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str())
                .collect();
            causes.insert(if by.is_empty() {
                name.to_string()
            } else {
                format!("{name} (exposed by {})", by.join(", "))
            });
        }
    }
    r.causes = causes.into_iter().collect();
    r.verdict = if failed || r.targets_total == 0 {
        "failed"
    } else if r.targets_reproducible == r.targets_total
        && r.artifacts_identical == r.artifacts_total
    {
        "reproducible"
    } else {
        "unreproducible"
    }
    .into();
    if failed {
        r.error = Some(if errors.is_empty() {
            "a target failed to build (see the repro report)".into()
        } else {
            errors.join("\n")
        });
    }
}

#[cfg(test)]
mod tests;
